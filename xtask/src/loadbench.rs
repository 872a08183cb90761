//! `cargo xtask loadbench [--quick]`: the same load scenarios against elsinore, Prosody and
//! ejabberd, one after another, and a table of ratios elsinore / peer.
//!
//! Every server gets: loopback only, plaintext c2s (no TLS), PLAIN allowed, in-band
//! registration on (the accounts are created by the load generator the same way on all
//! three), hashed password storage with 4096 PBKDF2 iterations, throttles off (elsinore's
//! rate limits 0, no Prosody `mod_limits`, ejabberd shaper `none`), and warning-level
//! logging. Each server is restarted between registering the accounts and the measured
//! scenarios. The load generator (`crates/elsinore-loadgen`) samples the server's process
//! group from /proc.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::interop::{ensure_apt_package, lua_str, run_cargo_build, tail_file};
use crate::proc::{self, Service, TempDir};
use crate::workspace;

/// A server's start, up to accepting connections.
const START_TIMEOUT: Duration = Duration::from_secs(90);
/// The XMPP domain every server serves.
const DOMAIN: &str = "localhost";
/// Every load-test account's password (accounts are `lb0`, `lb1`, ...).
const PASSWORD: &str = "loadbench-pw";
/// The load generator's first run: creating the accounts.
const REGISTER: &str = "register";
/// Its second run, against the restarted server: everything measured.
const MEASURED: &str = "idle,logins,chat,chat-serial,private,pep";
/// What the further runs against the same server repeat (see `--repeat`).
const REPEATED: &str = "chat,chat-serial,private,pep";
/// The scenarios with a per-operation CPU figure, in table order.
const OP_SCENARIOS: [&str; 5] = ["logins", "chat", "chat-serial", "private", "pep"];

/// Which servers exist.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Side {
    Elsinore,
    Prosody,
    Ejabberd,
}

impl Side {
    const ALL: [Side; 3] = [Side::Elsinore, Side::Prosody, Side::Ejabberd];

    fn name(self) -> &'static str {
        match self {
            Side::Elsinore => "elsinore",
            Side::Prosody => "prosody",
            Side::Ejabberd => "ejabberd",
        }
    }
}

/// Command-line options of `cargo xtask loadbench`.
pub struct Options {
    quick: bool,
    only: Vec<Side>,
    keep: bool,
    /// Runs of the chat, chat-serial, private and pep phases per server; the table shows
    /// the median.
    repeat: usize,
    /// Chat messages a sender may have in flight (the load generator's default when `None`).
    window: Option<usize>,
}

impl Options {
    /// Parses `[--quick] [--only elsinore|prosody|ejabberd]... [--keep] [--repeat N]
    /// [--window N]`.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut opts = Options {
            quick: false,
            only: Vec::new(),
            keep: false,
            repeat: 0,
            window: None,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--quick" => opts.quick = true,
                "--keep" => opts.keep = true,
                "--repeat" => {
                    let n = it.next().map(String::as_str).unwrap_or_default();
                    opts.repeat = match n.parse::<usize>() {
                        Ok(n @ 1..=9) => n,
                        _ => bail!("--repeat takes a number of runs from 1 to 9, got {n:?}"),
                    };
                }
                "--window" => {
                    let n = it.next().map(String::as_str).unwrap_or_default();
                    opts.window = match n.parse::<usize>() {
                        Ok(n @ 1..=64) => Some(n),
                        _ => bail!("--window takes a number of messages from 1 to 64, got {n:?}"),
                    };
                }
                "--only" => {
                    let name = it.next().map(String::as_str);
                    let side = Side::ALL
                        .into_iter()
                        .find(|s| Some(s.name()) == name)
                        .with_context(|| {
                            format!("--only takes elsinore, prosody or ejabberd, got {name:?}")
                        })?;
                    opts.only.push(side);
                }
                other => bail!(
                    "unknown loadbench option {other:?} (try --quick, --only, --keep, --repeat, --window)"
                ),
            }
        }
        if opts.repeat == 0 {
            // Single runs on a shared machine move by up to 2x: by default the table
            // gives the median of three (one with --quick).
            opts.repeat = if opts.quick { 1 } else { 3 };
        }
        Ok(opts)
    }

    fn runs(&self, side: Side) -> bool {
        self.only.is_empty() || self.only.contains(&side)
    }

    /// Load generator arguments: the workload size.
    fn workload(&self) -> Vec<String> {
        let pairs: &[(&str, usize)] = if self.quick {
            &[
                ("--accounts", 200),
                ("--idle", 200),
                ("--logins", 300),
                ("--pairs", 10),
                ("--messages", 100),
                ("--sessions", 10),
                ("--private-rounds", 50),
                ("--publishes", 20),
                ("--phase-secs", 20),
            ]
        } else {
            &[
                ("--accounts", 1000),
                ("--idle", 1000),
                ("--logins", 1500),
                ("--pairs", 50),
                ("--messages", 1500),
                ("--sessions", 50),
                ("--private-rounds", 240),
                ("--publishes", 120),
                ("--phase-secs", 90),
            ]
        };
        let mut args = Vec::new();
        for (k, v) in pairs {
            args.push((*k).to_string());
            args.push(v.to_string());
        }
        if let Some(w) = self.window {
            args.push("--window".into());
            args.push(w.to_string());
        }
        args
    }

    /// The bound on one load generator run (all scenarios against one server).
    fn loadgen_timeout(&self) -> Duration {
        Duration::from_secs(if self.quick { 150 } else { 420 })
    }
}

/// One `RESULT` line of the load generator.
#[derive(Debug, Clone, Default)]
struct Row {
    status: String,
    ops: f64,
    errors: f64,
    wall_ms: f64,
    p50_us: f64,
    p99_us: f64,
    cpu_ms: f64,
    /// The kernel's part of `cpu_ms` (0 from a load generator that did not report it).
    sys_ms: f64,
    rss_before_kib: f64,
    rss_after_kib: f64,
    note: String,
}

impl Row {
    fn parse(line: &str) -> Option<(String, String, Row)> {
        let rest = line.strip_prefix("RESULT ")?;
        // `note=` is last and free text.
        let (fields, note) = rest.split_once(" note=").unwrap_or((rest, ""));
        let mut map = BTreeMap::new();
        for kv in fields.split_whitespace() {
            if let Some((k, v)) = kv.split_once('=') {
                map.insert(k, v);
            }
        }
        let num = |k: &str| {
            map.get(k)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        Some((
            map.get("server")?.to_string(),
            map.get("scenario")?.to_string(),
            Row {
                status: map.get("status")?.to_string(),
                ops: num("ops"),
                errors: num("errors"),
                wall_ms: num("wall_ms"),
                p50_us: num("p50_us"),
                p99_us: num("p99_us"),
                cpu_ms: num("cpu_ms"),
                sys_ms: num("sys_ms"),
                rss_before_kib: num("rss_before_kib"),
                rss_after_kib: num("rss_after_kib"),
                note: note.to_string(),
            },
        ))
    }

    fn ok(&self) -> bool {
        self.status == "ok" && self.ops > 0.0
    }

    fn per_sec(&self) -> f64 {
        if self.wall_ms > 0.0 {
            self.ops * 1000.0 / self.wall_ms
        } else {
            0.0
        }
    }

    fn cpu_per_1000(&self) -> f64 {
        self.cpu_ms * 1000.0 / self.ops.max(1.0)
    }

    fn sys_per_1000(&self) -> f64 {
        self.sys_ms * 1000.0 / self.ops.max(1.0)
    }

    /// The idle scenario's memory per session ((RSS after - RSS before) / N), from its note.
    fn bytes_per_session(&self) -> Option<f64> {
        self.note_value("bytes_per_session")
    }

    /// The idle scenario's marginal memory per session (second half of the sessions only).
    fn marginal_bytes(&self) -> Option<f64> {
        self.note_value("marginal_bytes_per_session")
    }

    fn note_value(&self, key: &str) -> Option<f64> {
        self.note
            .split_whitespace()
            .filter_map(|w| w.split_once('='))
            .find(|(k, _)| *k == key)
            .and_then(|(_, v)| v.parse().ok())
    }
}

/// Results per server, then per scenario (one row per run); plus why a server has none.
#[derive(Default)]
struct Results {
    rows: BTreeMap<(String, String), Vec<Row>>,
    missing: Vec<(Side, String)>,
}

impl Results {
    /// The run with the median CPU per operation (the lower middle one of an even number)
    /// among the successful runs, else the last run.
    fn median(&self, side: Side, scenario: &str) -> Option<&Row> {
        let runs = self
            .rows
            .get(&(side.name().to_string(), scenario.to_string()))?;
        let mut ok: Vec<&Row> = runs.iter().filter(|r| r.ok()).collect();
        if ok.is_empty() {
            return runs.last();
        }
        ok.sort_by(|a, b| a.cpu_per_1000().total_cmp(&b.cpu_per_1000()));
        ok.get((ok.len() - 1) / 2).copied()
    }

    /// CPU-ms per 1000 operations of each successful run, in run order.
    fn cpu_runs(&self, side: Side, scenario: &str) -> Vec<f64> {
        self.rows
            .get(&(side.name().to_string(), scenario.to_string()))
            .map(|runs| {
                runs.iter()
                    .filter(|r| r.ok())
                    .map(Row::cpu_per_1000)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Runs the benchmark; returns the exit code.
pub fn run(opts: Options) -> Result<i32> {
    let started = Instant::now();
    let tmp = TempDir::new("elsinore-loadbench", opts.keep)?;
    println!("loadbench: working in {}", tmp.path().display());
    println!("\n=== loadbench: build (release) ===");
    run_cargo_build(&[
        "build",
        "--release",
        "-p",
        "elsinore",
        "-p",
        "elsinore-loadgen",
    ])?;
    let release = workspace::target_dir()?.join("release");
    let elsinore = release.join("elsinore");
    let loadgen = release.join("elsinore-loadgen");
    for bin in [&elsinore, &loadgen] {
        if !bin.is_file() {
            bail!("built, but {} does not exist", bin.display());
        }
    }

    let mut results = Results::default();
    for side in Side::ALL {
        if !opts.runs(side) {
            continue;
        }
        println!("\n=== loadbench: {} ===", side.name());
        let dir = tmp.path().join(side.name());
        std::fs::create_dir_all(&dir)?;
        // Accounts are registered first, then the server restarts on the same data (and
        // port: ejabberd's node name carries it) before anything is measured, so that
        // memory freed by the registration phase does not absorb the idle sessions.
        let outcome = start_server(side, &dir, &elsinore, None)
            .and_then(|(mut server, addr)| {
                let r = run_loadgen(&opts, &loadgen, side, &server, addr, REGISTER, &mut results);
                server.stop();
                r.map(|()| addr.port())
            })
            .and_then(|port| start_server(side, &dir, &elsinore, Some(port)))
            .and_then(|(mut server, addr)| {
                let mut r =
                    run_loadgen(&opts, &loadgen, side, &server, addr, MEASURED, &mut results);
                for _ in 1..opts.repeat {
                    if r.is_err() {
                        break;
                    }
                    r = run_loadgen(&opts, &loadgen, side, &server, addr, REPEATED, &mut results);
                }
                // A server that died under load is a finding, not a setup error: its
                // figures stay in the table, and the command fails.
                let survived = server.wait_for_port(addr, Duration::from_secs(5));
                server.stop();
                r.and(survived.context("the server did not survive the run"))
            });
        if let Err(e) = outcome {
            println!("loadbench: {} failed: {e:#}", side.name());
            results.missing.push((side, format!("{e:#}")));
        }
    }

    println!(
        "\n=== loadbench: results ({:.0} s) ===\n",
        started.elapsed().as_secs_f64()
    );
    print!("{}", table(&results, &opts));
    Ok(if results.missing.is_empty() { 0 } else { 1 })
}

/// Starts one server on a fresh port with its accounts store empty; returns it and its address.
fn start_server(
    side: Side,
    dir: &Path,
    elsinore: &Path,
    port: Option<u16>,
) -> Result<(Service, SocketAddr)> {
    let port = match port {
        Some(p) => p,
        None => proc::free_port()?,
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = match side {
        Side::Elsinore => Service::spawn(
            "elsinore",
            Command::new(elsinore)
                .arg("serve")
                .arg("--config")
                .arg(elsinore_config(dir)?)
                .args(["--domain", DOMAIN])
                .arg("--listen")
                .arg(addr.to_string())
                .arg("--data")
                .arg(dir.join("data"))
                .args(["--allow-plaintext-auth", "--allow-registration"])
                .env("RUST_LOG", "warn")
                .current_dir(dir),
            &dir.join("elsinore.log"),
        )?,
        Side::Prosody => {
            ensure_apt_package("prosody", "prosody")?;
            let data = dir.join("data");
            std::fs::create_dir_all(&data)?;
            let config = dir.join("prosody.cfg.lua");
            std::fs::write(&config, prosody_config(dir, &data, port))?;
            Service::spawn(
                "prosody",
                Command::new("prosody")
                    .arg("--config")
                    .arg(&config)
                    .arg("-F")
                    .current_dir(dir),
                &dir.join("prosody.out"),
            )?
        }
        Side::Ejabberd => {
            ensure_apt_package("ejabberdctl", "ejabberd")?;
            let erl = proc::find_in_path("erl")
                .context("ejabberd is installed but erl is not on PATH")?;
            let lib = ejabberd_lib_dir()?;
            let spool = dir.join("spool");
            std::fs::create_dir_all(&spool)?;
            let config = dir.join("ejabberd.yml");
            std::fs::write(&config, ejabberd_config(port))?;
            let dist_port = proc::free_port()?;
            let mut cmd = Command::new(erl);
            cmd.args(["-sname", &format!("loadbench{port}@localhost")])
                // No epmd: the node listens on a fixed loopback port for distribution.
                .args([
                    "-start_epmd",
                    "false",
                    "-erl_epmd_port",
                    &dist_port.to_string(),
                ])
                .args(["-kernel", "inet_dist_use_interface", "{127,0,0,1}"])
                // Schedulers must not spin while idle, or CPU time counts busy-waiting.
                .args(["+sbwt", "none", "+sbwtdcpu", "none", "+sbwtdio", "none"])
                .args(["+K", "true", "-noinput"])
                .arg("-mnesia")
                .arg("dir")
                .arg(format!("\"{}\"", spool.display()))
                .args(["-s", "ejabberd"])
                .env("HOME", dir)
                .env("ERL_LIBS", lib)
                .env("EJABBERD_CONFIG_PATH", &config)
                .env("EJABBERD_LOG_PATH", dir.join("ejabberd.log"))
                .current_dir(dir);
            Service::spawn("ejabberd", &mut cmd, &dir.join("ejabberd.out"))?
        }
    };
    if let Err(e) = server.wait_for_port(addr, START_TIMEOUT) {
        let log = match side {
            Side::Prosody => tail_file(&dir.join("prosody.log")),
            Side::Ejabberd => tail_file(&dir.join("ejabberd.log")),
            Side::Elsinore => String::new(),
        };
        bail!("{e:#}\n{log}");
    }
    println!("{} accepting on {addr} (pid {})", side.name(), server.id());
    Ok((server, addr))
}

/// Where Debian's ejabberd keeps its Erlang applications (the `ERL_LIBS` ejabberdctl sets).
fn ejabberd_lib_dir() -> Result<PathBuf> {
    let script = std::fs::read_to_string("/usr/sbin/ejabberdctl")
        .context("cannot read /usr/sbin/ejabberdctl")?;
    let line = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("ERL_LIBS="))
        .context("ejabberdctl sets no ERL_LIBS")?;
    Ok(PathBuf::from(line.trim_matches(|c| c == '\'' || c == '"')))
}

/// Runs the load generator against one server and stores its result lines.
fn run_loadgen(
    opts: &Options,
    loadgen: &Path,
    side: Side,
    server: &Service,
    addr: SocketAddr,
    scenarios: &str,
    results: &mut Results,
) -> Result<()> {
    let mut cmd = Command::new(loadgen);
    cmd.arg("--addr")
        .arg(addr.to_string())
        .args(["--scenarios", scenarios])
        .args(["--domain", DOMAIN, "--password", PASSWORD])
        .args(["--label", side.name()])
        .args(["--pgid", &server.id().to_string()])
        .args(opts.workload());
    let f = proc::run_bounded(&mut cmd, opts.loadgen_timeout(), Some("  | "), None)?;
    let mut any = false;
    for line in f.stdout.lines() {
        if let Some((srv, scenario, row)) = Row::parse(line) {
            any = true;
            results.rows.entry((srv, scenario)).or_default().push(row);
        }
    }
    if !any {
        bail!("load generator {}: no results\n{}", f.describe(), f.tail());
    }
    if !f.success() {
        println!(
            "(load generator {}: some scenarios failed, see above)",
            f.describe()
        );
    }
    Ok(())
}

/// elsinore's config: its per-connection rate limits off, as the peers' shapers are (the
/// chat senders go past the default stanza burst; loopback is already exempt from the
/// per-address limits).
fn elsinore_config(dir: &Path) -> Result<PathBuf> {
    let path = dir.join("elsinore.toml");
    std::fs::write(
        &path,
        "[limits]\nstanzas_per_second = 0\nbytes_per_second = 0\n",
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// Prosody's config: like interop's, but plaintext c2s with PLAIN allowed, registration
/// on, no TLS module, warning-level logging, and no mod_limits (not loaded).
fn prosody_config(dir: &Path, data: &Path, port: u16) -> String {
    let mut c = String::new();
    let _ = writeln!(c, "run_as_root = true");
    let _ = writeln!(c, "daemonize = false");
    let _ = writeln!(c, "pidfile = {}", lua_str(&dir.join("prosody.pid")));
    let _ = writeln!(c, "data_path = {}", lua_str(data));
    let _ = writeln!(
        c,
        "log = {{ warn = {} }}",
        lua_str(&dir.join("prosody.log"))
    );
    let _ = writeln!(c, "interfaces = {{ \"127.0.0.1\" }}");
    let _ = writeln!(c, "local_interfaces = {{ \"127.0.0.1\" }}");
    let _ = writeln!(c, "c2s_ports = {{ {port} }}");
    let _ = writeln!(c, "c2s_interfaces = {{ \"127.0.0.1\" }}");
    let _ = writeln!(c, "s2s_ports = {{ }}");
    // No "tls" and no "limits": plaintext, and no c2s rate limiting.
    let _ = writeln!(
        c,
        "modules_enabled = {{ \"disco\", \"roster\", \"saslauth\", \"private\", \"pep\", \"register\", \"posix\" }}"
    );
    let _ = writeln!(c, "modules_disabled = {{ \"s2s\" }}");
    let _ = writeln!(c, "authentication = \"internal_hashed\"");
    let _ = writeln!(c, "default_iteration_count = 4096");
    let _ = writeln!(c, "c2s_require_encryption = false");
    let _ = writeln!(c, "allow_unencrypted_plain_auth = true");
    let _ = writeln!(c, "allow_registration = true");
    // Loopback is on mod_register_limits' allowlist by default; say so explicitly.
    let _ = writeln!(c, "registration_allowlist = {{ \"127.0.0.1\", \"::1\" }}");
    let _ = writeln!(c, "VirtualHost \"{DOMAIN}\"");
    c
}

/// ejabberd's config: one plaintext c2s listener on loopback with shaper `none`, SCRAM
/// password storage (4096 iterations is ejabberd's fixed count), registration without
/// per-IP timeout, PEP through mod_pubsub's `pep` plugin, warning-level logging.
fn ejabberd_config(port: u16) -> String {
    format!(
        "hosts:
  - {DOMAIN}
loglevel: warning
log_rotate_count: 0
listen:
  -
    port: {port}
    ip: \"127.0.0.1\"
    module: ejabberd_c2s
    shaper: none
    access: c2s
    starttls_required: false
    max_stanza_size: 262144
    backlog: 1024
auth_method: internal
auth_password_format: scram
registration_timeout: infinity
acl:
  local:
    user_regexp: \"\"
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  register:
    allow: all
  pubsub_createnode:
    allow: local
shaper_rules:
  c2s_shaper: none
  max_user_sessions: 10000
  max_user_offline_messages: 100
modules:
  mod_caps: {{}}
  mod_disco: {{}}
  mod_private: {{}}
  mod_roster: {{}}
  mod_pubsub:
    access_createnode: pubsub_createnode
    plugins:
      - flat
      - pep
  mod_register:
    ip_access: all
    access: register
"
    )
}

fn fmt_ms(us: f64) -> String {
    if us >= 10_000.0 {
        format!("{:.0}", us / 1000.0)
    } else {
        format!("{:.2}", us / 1000.0)
    }
}

fn fmt_ratio(ours: f64, theirs: f64) -> String {
    if ours > 0.0 && theirs > 0.0 {
        format!("{:.2}", ours / theirs)
    } else {
        "n/a".into()
    }
}

/// The result table (Markdown, so it can go into docs/benchmarks.md as is).
fn table(results: &Results, opts: &Options) -> String {
    let mut out = String::new();
    let get = |side: Side, scenario: &str| results.median(side, scenario);
    let peers: Vec<Side> = [Side::Prosody, Side::Ejabberd]
        .into_iter()
        .filter(|s| opts.runs(*s))
        .collect();
    let _ = writeln!(
        out,
        "| scenario | server | ops | errors | ops/s | p50 ms | p99 ms | CPU-ms / 1000 ops | of which kernel | each run | elsinore / this |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
    for scenario in OP_SCENARIOS {
        let ours = get(Side::Elsinore, scenario).filter(|r| r.ok());
        for side in Side::ALL {
            if !opts.runs(side) {
                continue;
            }
            let Some(row) = get(side, scenario) else {
                let _ = writeln!(
                    out,
                    "| {scenario} | {} | — | | | | | | | | not run |",
                    side.name()
                );
                continue;
            };
            if !row.ok() {
                let _ = writeln!(
                    out,
                    "| {scenario} | {} | n/a | | | | | | | | {} {} |",
                    side.name(),
                    row.status,
                    row.note.chars().take(100).collect::<String>()
                );
                continue;
            }
            let ratio = match (side, ours) {
                (Side::Elsinore, _) => "—".to_string(),
                (_, Some(o)) => fmt_ratio(o.cpu_per_1000(), row.cpu_per_1000()),
                (_, None) => "n/a".into(),
            };
            let _ = writeln!(
                out,
                "| {scenario} | {} | {:.0} | {:.0} | {:.0} | {} | {} | {:.1} | {:.1} | {} | {ratio} |",
                side.name(),
                row.ops,
                row.errors,
                row.per_sec(),
                fmt_ms(row.p50_us),
                fmt_ms(row.p99_us),
                row.cpu_per_1000(),
                row.sys_per_1000(),
                results
                    .cpu_runs(side, scenario)
                    .iter()
                    .map(|c| format!("{c:.1}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            );
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "| idle sessions | server | sessions | RSS before KiB | RSS after KiB | bytes / session | marginal bytes / session | elsinore / this (both) |"
    );
    let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
    let ours = get(Side::Elsinore, "idle").and_then(Row::bytes_per_session);
    let ours_marginal = get(Side::Elsinore, "idle").and_then(Row::marginal_bytes);
    let show = |v: Option<f64>| v.map_or("n/a".to_string(), |p| format!("{p:.0}"));
    for side in Side::ALL {
        if !opts.runs(side) {
            continue;
        }
        let Some(row) = get(side, "idle") else {
            let _ = writeln!(out, "| idle | {} | — | | | | | not run |", side.name());
            continue;
        };
        let (per, marginal) = (row.bytes_per_session(), row.marginal_bytes());
        let ratio = match side {
            Side::Elsinore => "—".to_string(),
            _ => format!(
                "{} / {}",
                fmt_ratio(ours.unwrap_or(0.0), per.unwrap_or(0.0)),
                fmt_ratio(ours_marginal.unwrap_or(0.0), marginal.unwrap_or(0.0))
            ),
        };
        let _ = writeln!(
            out,
            "| idle | {} | {:.0} | {:.0} | {:.0} | {} | {} | {ratio} |",
            side.name(),
            row.ops,
            row.rss_before_kib,
            row.rss_after_kib,
            show(per),
            show(marginal),
        );
    }
    let _ = writeln!(out);
    if opts.repeat > 1 {
        let _ = writeln!(
            out,
            "chat, chat-serial, private and pep: each server ran them {} times; every figure of a row is from its median run.\n",
            opts.repeat
        );
    }
    // Headline: work per CPU-second against the faster peer.
    for scenario in ["chat", "chat-serial", "private", "pep"] {
        let Some(o) = get(Side::Elsinore, scenario).filter(|r| r.ok()) else {
            let _ = writeln!(out, "- {scenario}: elsinore has no result (n/a)");
            continue;
        };
        let best = peers
            .iter()
            .filter_map(|p| {
                get(*p, scenario)
                    .filter(|r| r.ok())
                    .map(|r| (*p, r.cpu_per_1000()))
            })
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((peer, cost)) = best {
            let _ = write!(
                out,
                "- {scenario}: elsinore does {:.1}x the work per CPU-second of the faster peer ({}); target 7x",
                cost / o.cpu_per_1000().max(f64::MIN_POSITIVE),
                peer.name()
            );
            // What the kernel's share alone allows: a server spending no user time at all
            // but making the same system calls would still cost this much.
            if o.sys_ms > 0.0 {
                let _ = write!(
                    out,
                    " (kernel alone {:.0} % of ours: at most {:.1}x with zero user time)",
                    100.0 * o.sys_ms / o.cpu_ms.max(f64::MIN_POSITIVE),
                    cost / o.sys_per_1000()
                );
            }
            let _ = writeln!(out);
        }
    }
    if let Some(o) = ours {
        let leanest = peers
            .iter()
            .filter_map(|p| {
                get(*p, "idle")
                    .and_then(Row::bytes_per_session)
                    .map(|b| (*p, b))
            })
            .filter(|(_, b)| *b > 0.0)
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((peer, b)) = leanest {
            let _ = writeln!(
                out,
                "- idle: an elsinore session costs {:.3} of the leaner peer's ({}); target <= 0.1",
                o / b,
                peer.name()
            );
        }
    }
    for (side, why) in &results.missing {
        let _ = writeln!(
            out,
            "- {}: not measured: {}",
            side.name(),
            why.lines().next().unwrap_or("")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_result_lines() {
        let line = "RESULT server=elsinore scenario=chat status=ok ops=2000 errors=0 \
                    wall_ms=500.0 p50_us=120 p99_us=900 cpu_ms=40.0 sys_ms=30.0 rss_before_kib=1 \
                    rss_after_kib=2 note=expected=2000 (free text)";
        let (srv, sc, row) = Row::parse(line).expect("well-formed line");
        assert_eq!((srv.as_str(), sc.as_str()), ("elsinore", "chat"));
        assert!(row.ok());
        assert_eq!(row.per_sec(), 4000.0);
        assert_eq!(row.cpu_per_1000(), 20.0);
        assert_eq!(row.sys_per_1000(), 15.0);
        assert_eq!(row.note, "expected=2000 (free text)");
        assert!(Row::parse("not a result").is_none());
        let idle = Row::parse(
            "RESULT server=p scenario=idle status=ok ops=10 note=bytes_per_session=3300 \
             marginal_bytes_per_session=2900 procs=1",
        )
        .expect("well-formed line");
        assert_eq!(idle.2.bytes_per_session(), Some(3300.0));
        assert_eq!(idle.2.marginal_bytes(), Some(2900.0));
    }

    #[test]
    fn the_table_takes_the_median_run_of_the_successful_ones() {
        let mut results = Results::default();
        for line in [
            "RESULT server=elsinore scenario=chat status=ok ops=1000 cpu_ms=9.0",
            "RESULT server=elsinore scenario=chat status=failed ops=0 cpu_ms=1.0",
            "RESULT server=elsinore scenario=chat status=ok ops=1000 cpu_ms=5.0",
            "RESULT server=elsinore scenario=chat status=ok ops=1000 cpu_ms=7.0",
        ] {
            let (srv, sc, row) = Row::parse(line).expect("well-formed line");
            results.rows.entry((srv, sc)).or_default().push(row);
        }
        let median = results.median(Side::Elsinore, "chat").expect("runs");
        assert_eq!(median.cpu_per_1000(), 7.0);
        assert_eq!(results.cpu_runs(Side::Elsinore, "chat"), [9.0, 5.0, 7.0]);
        assert!(results.median(Side::Prosody, "chat").is_none());
        let opts = Options::parse(&["--repeat".into(), "2".into()]).expect("valid");
        assert_eq!(opts.repeat, 2);
        assert!(Options::parse(&["--repeat".into(), "0".into()]).is_err());
        assert_eq!(Options::parse(&[]).expect("valid").repeat, 3);
    }
}
