//! `cargo xtask interop`: XEP-0049 interop between elsinore, Prosody, slixmpp and our
//! `private_xml` example.
//!
//! - slixmpp (`xtask/interop/slixmpp_private.py`) against elsinore and against Prosody;
//! - slixmpp bookmarks, XEP-0048 and XEP-0402 (`xtask/interop/slixmpp_bookmarks.py`), against
//!   elsinore and against Prosody with `mod_bookmarks`;
//! - the `private_xml`, `bookmarks`, `annotations` and `pep_private` examples against
//!   elsinore and against Prosody;
//! - against elsinore only: slixmpp with each SASL mechanism forced and go-sendxmpp
//!   ([`clients`]); slixmpp search with XEP-0055 data forms
//!   (`xtask/interop/slixmpp_search.py`); federation over s2s with another elsinore and
//!   with Prosody ([`federation`]).
//!
//! Running the script against Prosody validates the script itself; running the example
//! against Prosody validates our client side against a server we did not write.
//! Every child is stopped on the way out (guards with `Drop`), every wait is bounded.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proc::{self, Finished, Service, TempDir};
use crate::report::Report;
use crate::terminal::{self, Tmux};
use crate::workspace;

mod clients;
mod federation;

/// Building a crate of this workspace from scratch on 2 cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// A server's start, up to its "ready" signal.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// One client run (script or example), login included.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// Small admin commands (adduser, prosodyctl, openssl, pip show).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Package installation (apt, pip).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// The two accounts every server gets: (user, password). `alice` logs in, `bob` is the
/// "other user" of listing 3.
const USERS: [(&str, &str); 2] = [("alice", "alice-interop-pw"), ("bob", "bob-interop-pw")];
/// The XMPP domain every server serves.
const DOMAIN: &str = "localhost";

/// Which server side(s) to run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Elsinore,
    Prosody,
    /// s2s: elsinore ↔ elsinore and elsinore ↔ Prosody.
    Federation,
}

/// Command-line options of `cargo xtask interop`.
pub struct Options {
    only: Option<Side>,
    keep: bool,
}

impl Options {
    /// Parses `[--only elsinore|prosody|federation] [--keep]`.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut opts = Options {
            only: None,
            keep: false,
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--keep" => opts.keep = true,
                "--only" => {
                    opts.only = Some(match it.next().map(String::as_str) {
                        Some("elsinore") => Side::Elsinore,
                        Some("prosody") => Side::Prosody,
                        Some("federation") => Side::Federation,
                        other => {
                            bail!("--only takes elsinore, prosody or federation, got {other:?}")
                        }
                    })
                }
                other => bail!("unknown interop option {other:?} (try --only, --keep)"),
            }
        }
        Ok(opts)
    }

    fn runs(&self, side: Side) -> bool {
        self.only.is_none_or(|s| s == side)
    }
}

/// State shared by both sides: the report, the temp dir, the example build (done once).
struct Ctx {
    report: Report,
    tmp: TempDir,
    /// `None` until first needed; then whether `cargo build` of the example succeeded.
    example_built: Option<bool>,
    /// Whether slixmpp is importable.
    slixmpp: bool,
}

/// Runs the interop suite; returns the exit code (0 only when every check passed).
pub fn run(opts: Options) -> Result<i32> {
    let mut ctx = Ctx {
        report: Report::default(),
        tmp: TempDir::new("elsinore-interop", opts.keep)?,
        example_built: None,
        slixmpp: false,
    };
    println!("interop: working in {}", ctx.tmp.path().display());

    section("peers");
    ctx.slixmpp = ctx
        .report
        .record_result("setup: slixmpp installed", ensure_slixmpp());

    if opts.runs(Side::Elsinore) {
        section("elsinore");
        if let Err(e) = elsinore_side(&mut ctx) {
            ctx.report
                .record("elsinore: setup", false, format!("{e:#}"));
        }
    }
    if opts.runs(Side::Prosody) {
        section("prosody");
        if let Err(e) = prosody_side(&mut ctx) {
            ctx.report.record("prosody: setup", false, format!("{e:#}"));
        }
    }

    if opts.runs(Side::Federation) {
        section("federation");
        if let Some(bin) = clients::elsinore_bin(&mut ctx) {
            federation::elsinore_pair(&mut ctx, &bin);
            let prosody = ensure_apt_package("prosody", "prosody");
            if ctx
                .report
                .record_result("setup: prosody installed (federation)", prosody)
            {
                federation::with_prosody(&mut ctx, &bin);
            }
        }
    }

    ctx.report.print_summary("interop");
    Ok(if ctx.report.failed() == 0 { 0 } else { 1 })
}

fn section(name: &str) {
    println!("\n=== interop: {name} ===");
}

/// The elsinore side: build, add users, serve, run slixmpp and the example.
/// Returns `Err` only for a failed step that stops this side (already recorded or to
/// be recorded by the caller).
fn elsinore_side(ctx: &mut Ctx) -> Result<()> {
    let built = run_cargo_build(&["build", "-p", "elsinore"]);
    if !ctx
        .report
        .record_result("elsinore: cargo build -p elsinore", built)
    {
        return Ok(());
    }
    let bin = workspace::target_dir()?.join("debug").join("elsinore");
    if !bin.is_file() {
        bail!("built, but {} does not exist", bin.display());
    }

    let dir = ctx.tmp.path().join("elsinore");
    std::fs::create_dir_all(&dir)?;
    let data = dir.join("elsinore-data");

    // Users are added before the server starts: the store may be opened exclusively.
    // adduser runs in `dir`, so its default ./elsinore-data is the `--data` given below.
    let mut all_added = true;
    for (user, password) in USERS {
        let jid = format!("{user}@{DOMAIN}");
        let added = run_admin(
            Command::new(&bin)
                .arg("adduser")
                .arg(&jid)
                // Store the DIGEST-MD5 secret too, for the slixmpp DIGEST-MD5 login.
                .arg("--allow-digest-md5")
                .current_dir(&dir),
            Some(format!("{password}\n").as_bytes()),
        );
        all_added &= ctx
            .report
            .record_result(&format!("elsinore: adduser {jid}"), added);
    }
    if !all_added {
        return Ok(());
    }

    let port = proc::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut server = Service::spawn(
        "elsinore",
        Command::new(&bin)
            .arg("serve")
            .args(["--domain", DOMAIN])
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data")
            .arg(&data)
            .arg("--allow-digest-md5")
            .current_dir(&dir),
        &dir.join("elsinore.log"),
    )?;
    let started = server
        .wait_for_line("listening on", START_TIMEOUT)
        .and_then(|line| {
            server.wait_for_port(addr, Duration::from_secs(10))?;
            Ok(line.trim().to_string())
        });
    if !ctx.report.record_result("elsinore: serve", started) {
        return Ok(());
    }

    run_slixmpp(ctx, "elsinore", addr, None);
    alive_check(ctx, "elsinore", &mut server, addr);
    // The draft's mandatory mechanism (off by default, enabled above).
    run_slixmpp_script(
        ctx,
        "elsinore",
        addr,
        None,
        "slixmpp_sasl.py",
        "DIGEST-MD5",
        &["--mech", "DIGEST-MD5"],
    );
    run_slixmpp_im(ctx, "elsinore", addr, None);
    clients::sasl_mechanisms(ctx, &bin, addr, USERS[0], DOMAIN);
    let (sender, sender_password) = USERS[1];
    let (receiver, receiver_password) = USERS[0];
    clients::go_sendxmpp(
        ctx,
        addr,
        (&format!("{sender}@{DOMAIN}"), sender_password),
        (&format!("{receiver}@{DOMAIN}"), receiver_password),
    );
    run_slixmpp_script(
        ctx,
        "elsinore",
        addr,
        None,
        "slixmpp_pep.py",
        "XEP-0223",
        &[],
    );
    // elsinore keeps XEP-0048 URL bookmarks that XEP-0402 cannot hold; Prosody drops them.
    run_slixmpp_script(
        ctx,
        "elsinore",
        addr,
        None,
        "slixmpp_bookmarks.py",
        "bookmarks",
        &["--urls-kept"],
    );
    // XEP-0055 §3 data forms on the user directory (elsinore only: not set up on Prosody).
    run_slixmpp_script(
        ctx,
        "elsinore",
        addr,
        None,
        "slixmpp_search.py",
        "search",
        &[],
    );
    // Group chat at conference.<domain> (elsinore only: the Prosody side has no MUC component).
    let (other, other_password) = USERS[1];
    let other = format!("{other}@{DOMAIN}");
    let muc_args = ["--other", &other, "--other-password", other_password];
    run_slixmpp_script(
        ctx,
        "elsinore",
        addr,
        None,
        "slixmpp_muc.py",
        "MUC",
        &muc_args,
    );
    run_xmppjs(ctx, "elsinore", addr);
    run_profanity(ctx, "elsinore", addr);
    alive_check(ctx, "elsinore", &mut server, addr);
    run_example(ctx, "elsinore", addr);
    alive_check(ctx, "elsinore", &mut server, addr);
    server.stop();
    Ok(())
}

/// The Prosody side: install, generate a cert and config, register users, start, run
/// slixmpp and the example.
fn prosody_side(ctx: &mut Ctx) -> Result<()> {
    let installed = ensure_apt_package("prosody", "prosody")
        .and_then(|d| ensure_apt_package("prosodyctl", "prosody").map(|_| d));
    if !ctx
        .report
        .record_result("setup: prosody installed", installed)
    {
        return Ok(());
    }
    ensure_apt_package("openssl", "openssl")?;

    let dir = ctx.tmp.path().join("prosody");
    let certs = dir.join("certs");
    let data = dir.join("data");
    std::fs::create_dir_all(&certs)?;
    std::fs::create_dir_all(&data)?;

    let cert = certs.join(format!("{DOMAIN}.crt"));
    let key = certs.join(format!("{DOMAIN}.key"));
    let made = run_admin(
        Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            ])
            .args(["-subj", &format!("/CN={DOMAIN}")])
            .args(["-addext", &format!("subjectAltName=DNS:{DOMAIN}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert),
        None,
    );
    made.context("openssl could not make a self-signed certificate")?;

    let port = proc::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let config = dir.join("prosody.cfg.lua");
    std::fs::write(&config, prosody_config(&dir, &certs, &data, port))?;

    let mut all_added = true;
    for (user, password) in USERS {
        let added = run_admin(
            Command::new("prosodyctl")
                .arg("--config")
                .arg(&config)
                .args(["register", user, DOMAIN, password]),
            None,
        );
        all_added &= ctx
            .report
            .record_result(&format!("prosody: register {user}@{DOMAIN}"), added);
    }
    if !all_added {
        return Ok(());
    }

    let mut server = Service::spawn(
        "prosody",
        Command::new("prosody")
            .arg("--config")
            .arg(&config)
            .arg("-F")
            .current_dir(&dir),
        &dir.join("prosody.out"),
    )?;
    let started = server
        .wait_for_port(addr, START_TIMEOUT)
        .map(|()| format!("accepting on {addr}"));
    if !ctx.report.record_result("prosody: start", started) {
        println!("{}", tail_file(&dir.join("prosody.log")));
        return Ok(());
    }

    // Prosody's cert is ours: the script verifies it for real.
    run_slixmpp(ctx, "prosody", addr, Some(&cert));
    run_slixmpp_im(ctx, "prosody", addr, Some(&cert));
    run_slixmpp_script(
        ctx,
        "prosody",
        addr,
        Some(&cert),
        "slixmpp_pep.py",
        "XEP-0223",
        &[],
    );
    run_slixmpp_script(
        ctx,
        "prosody",
        addr,
        Some(&cert),
        "slixmpp_bookmarks.py",
        "bookmarks",
        &[],
    );
    alive_check(ctx, "prosody", &mut server, addr);
    run_example(ctx, "prosody", addr);
    alive_check(ctx, "prosody", &mut server, addr);
    server.stop();
    Ok(())
}

/// Prosody's config: loopback only, our port, our dirs, TLS required before auth,
/// hashed passwords, mod_private, mod_pep, mod_bookmarks, no s2s, no throttling, foreground.
fn prosody_config(dir: &Path, certs: &Path, data: &Path, port: u16) -> String {
    let mut c = String::new();
    // `run_as_root`: CI runs as root and prosodyctl would otherwise switch to the
    // `prosody` user, which cannot write our temp dir.
    let _ = writeln!(c, "run_as_root = true");
    let _ = writeln!(c, "daemonize = false");
    let _ = writeln!(c, "pidfile = {}", lua_str(&dir.join("prosody.pid")));
    let _ = writeln!(c, "data_path = {}", lua_str(data));
    let _ = writeln!(
        c,
        "log = {{ debug = {} }}",
        lua_str(&dir.join("prosody.log"))
    );
    let _ = writeln!(c, "interfaces = {{ \"127.0.0.1\" }}");
    let _ = writeln!(c, "local_interfaces = {{ \"127.0.0.1\" }}");
    let _ = writeln!(c, "c2s_ports = {{ {port} }}");
    let _ = writeln!(c, "c2s_interfaces = {{ \"127.0.0.1\" }}");
    let _ = writeln!(c, "s2s_ports = {{ }}");
    let _ = writeln!(
        c,
        "modules_enabled = {{ \"disco\", \"roster\", \"saslauth\", \"tls\", \"private\", \"pep\", \"bookmarks\", \"ping\", \"posix\" }}"
    );
    let _ = writeln!(c, "modules_disabled = {{ \"s2s\" }}");
    let _ = writeln!(c, "authentication = \"internal_hashed\"");
    let _ = writeln!(c, "c2s_require_encryption = true");
    let _ = writeln!(c, "allow_registration = false");
    let _ = writeln!(c, "certificates = {}", lua_str(certs));
    let _ = writeln!(c, "VirtualHost \"{DOMAIN}\"");
    c
}

/// A path as a Lua string literal.
pub(crate) fn lua_str(path: &Path) -> String {
    let s = path.to_string_lossy();
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Runs the slixmpp script against `addr` and records each of its check lines.
fn run_slixmpp(ctx: &mut Ctx, side: &str, addr: SocketAddr, cafile: Option<&Path>) {
    let (other, _) = USERS[1];
    run_slixmpp_script(
        ctx,
        side,
        addr,
        cafile,
        "slixmpp_private.py",
        "XEP-0049",
        &["--other", &format!("{other}@{DOMAIN}")],
    );
}

/// Two slixmpp clients: roster, subscriptions, presence, chat, offline delivery.
fn run_slixmpp_im(ctx: &mut Ctx, side: &str, addr: SocketAddr, cafile: Option<&Path>) {
    let (other, other_password) = USERS[1];
    run_slixmpp_script(
        ctx,
        side,
        addr,
        cafile,
        "slixmpp_im.py",
        "IM",
        &[
            "--other",
            &format!("{other}@{DOMAIN}"),
            "--other-password",
            other_password,
        ],
    );
}

/// Runs `xtask/interop/SCRIPT` as the first user and records each `[PASS]`/`[FAIL]` line.
fn run_slixmpp_script(
    ctx: &mut Ctx,
    side: &str,
    addr: SocketAddr,
    cafile: Option<&Path>,
    script: &str,
    what: &str,
    extra: &[&str],
) {
    let name = format!("{side}: slixmpp {what}");
    if !ctx.slixmpp {
        ctx.report
            .record(name, false, "skipped: slixmpp not installed");
        return;
    }
    let script = workspace::root().join("xtask/interop").join(script);
    let (user, password) = USERS[0];
    let mut cmd = Command::new("python3");
    cmd.arg(&script)
        .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
        .args(["--jid", &format!("{user}@{DOMAIN}"), "--password", password])
        .args(extra);
    match cafile {
        Some(ca) => cmd.arg("--cafile").arg(ca),
        None => cmd.arg("--insecure"),
    };
    run_checks(ctx, &name, &format!("{side}: slixmpp"), &mut cmd);
}

/// Two xmpp.js (`@xmpp/client`, npm) clients log in and exchange messages.
fn run_xmppjs(ctx: &mut Ctx, side: &str, addr: SocketAddr) {
    let name = format!("{side}: xmpp.js chat");
    let dir = workspace::root().join("xtask/interop/xmppjs");
    if !dir.join("node_modules/@xmpp/client").is_dir() {
        let installed = run_admin(
            Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--no-package-lock"])
                .current_dir(&dir),
            None,
        );
        if !ctx
            .report
            .record_result("setup: npm install (@xmpp/client)", installed)
        {
            return;
        }
    }
    let (user, password) = USERS[0];
    let (other, other_password) = USERS[1];
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("chat.mjs"))
        .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
        .args(["--jid", &format!("{user}@{DOMAIN}"), "--password", password])
        .args(["--other", &format!("{other}@{DOMAIN}")])
        .args(["--other-password", other_password, "--insecure"]);
    run_checks(ctx, &name, &format!("{side}:"), &mut cmd);
}

/// Debian's profanity, driven with tmux, logs in as the first user, sends the second
/// a message (answered by a slixmpp peer) and must show the answer on screen.
fn run_profanity(ctx: &mut Ctx, side: &str, addr: SocketAddr) {
    let installed = ensure_apt_package("tmux", "tmux")
        .and_then(|_| ensure_apt_package("profanity", "profanity"));
    if !ctx
        .report
        .record_result("setup: profanity and tmux installed", installed)
    {
        return;
    }
    let home = ctx.tmp.path().join("profanity-home");
    if let Err(e) = std::fs::create_dir_all(&home) {
        ctx.report
            .record(format!("{side}: profanity"), false, e.to_string());
        return;
    }
    let (user, password) = USERS[0];
    let (other, other_password) = USERS[1];
    let result = (|| -> Result<(bool, String, bool, String)> {
        let tmux = Tmux::start(&terminal::profanity_command(&home))?;
        let (up, screen) = tmux.wait_for("/help", Duration::from_secs(20));
        if !up {
            bail!(
                "profanity did not start: {}",
                terminal::screen_tail(&screen)
            );
        }
        // `tls trust`: STARTTLS required, the server's self-signed certificate accepted.
        tmux.type_line(&format!(
            "/connect {user}@{DOMAIN} server 127.0.0.1 port {} tls trust",
            addr.port()
        ))?;
        let (asked, screen) = tmux.wait_for("password", Duration::from_secs(20));
        if !asked {
            bail!("no password prompt: {}", terminal::screen_tail(&screen));
        }
        tmux.type_line(password)?;
        let (logged_in, screen) = tmux.wait_for("logged in successfully", Duration::from_secs(30));
        let login_detail = terminal::screen_tail(&screen);
        if !logged_in {
            return Ok((false, login_detail, false, String::new()));
        }
        tmux.type_line(&format!("/msg {other}@{DOMAIN} hello from profanity"))?;
        let peer = proc::run_bounded(
            Command::new("python3")
                .arg(workspace::root().join("xtask/interop/slixmpp_peer.py"))
                .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
                .args([
                    "--jid",
                    &format!("{other}@{DOMAIN}"),
                    "--password",
                    other_password,
                ])
                .args(["--expect", "hello from profanity"])
                .args(["--reply", "hello from slixmpp", "--insecure"]),
            CLIENT_TIMEOUT,
            None,
            None,
        )?;
        let (shown, screen) = tmux.wait_for("hello from slixmpp", Duration::from_secs(20));
        let detail = format!(
            "peer {}: {} / screen: {}",
            peer.describe(),
            peer.stdout.lines().collect::<Vec<_>>().join("; "),
            terminal::screen_tail(&screen)
        );
        let _ = tmux.type_line("/quit");
        Ok((true, login_detail, shown && peer.success(), detail))
    })();
    match result {
        Ok((logged_in, login_detail, exchanged, detail)) => {
            ctx.report.record(
                format!("{side}: profanity logs in"),
                logged_in,
                login_detail,
            );
            if logged_in {
                ctx.report.record(
                    format!("{side}: profanity sends and receives a message"),
                    exchanged,
                    detail,
                );
            }
        }
        Err(e) => ctx
            .report
            .record(format!("{side}: profanity"), false, format!("{e:#}")),
    }
}

/// Runs a check script and records each `[PASS] name -- detail` / `[FAIL] …` line
/// it prints under `prefix`; a script that dies without a verdict is a failure.
fn run_checks(ctx: &mut Ctx, name: &str, prefix: &str, cmd: &mut Command) {
    let finished = match proc::run_bounded(cmd, CLIENT_TIMEOUT, None, None) {
        Ok(f) => f,
        Err(e) => {
            ctx.report.record(name.to_string(), false, format!("{e:#}"));
            return;
        }
    };
    let mut saw_fail = false;
    let mut saw_any = false;
    for line in finished.stdout.lines() {
        let (pass, rest) = if let Some(rest) = line.strip_prefix("[PASS] ") {
            (true, rest)
        } else if let Some(rest) = line.strip_prefix("[FAIL] ") {
            (false, rest)
        } else {
            continue;
        };
        saw_any = true;
        saw_fail |= !pass;
        let (check, detail) = rest.split_once(" -- ").unwrap_or((rest, ""));
        ctx.report.record(format!("{prefix} {check}"), pass, detail);
    }
    if (!finished.success() && !saw_fail) || !saw_any {
        // The script died or was killed without saying which check failed.
        ctx.report.record(
            name.to_string(),
            false,
            format!("script {}\n{}", finished.describe(), finished.tail()),
        );
    } else if !finished.success() && !finished.stderr.trim().is_empty() {
        println!("{name} stderr:\n{}", finished.stderr.trim_end());
    }
}

/// Runs the `private_xml`, `bookmarks`, `annotations` and `pep_private` examples against
/// `addr`, building them first (once). Each exits 0 only if all its checks hold.
fn run_example(ctx: &mut Ctx, side: &str, addr: SocketAddr) {
    let built = *ctx.example_built.get_or_insert_with(|| {
        let r = run_cargo_build(&[
            "build",
            "-p",
            "elsinore-examples",
            "--example",
            "private_xml",
            "--example",
            "bookmarks",
            "--example",
            "annotations",
            "--example",
            "pep_private",
        ]);
        ctx.report.record_result(
            "build: examples private_xml, bookmarks, annotations, pep_private",
            r,
        )
    });
    let (user, password) = USERS[0];
    let other = format!("{}@{DOMAIN}", USERS[1].0);
    for (example, extra) in [
        ("private_xml", vec!["--other", other.as_str()]),
        ("bookmarks", vec![]),
        ("annotations", vec![]),
        ("pep_private", vec![]),
    ] {
        let name = format!("{side}: example {example}");
        if !built {
            ctx.report
                .record(name, false, "skipped: the example does not build");
            continue;
        }
        let mut cmd = workspace::cargo();
        cmd.args([
            "run",
            "--quiet",
            "-p",
            "elsinore-examples",
            "--example",
            example,
            "--",
        ])
        .args(["--addr", &addr.to_string()])
        .args(["--jid", &format!("{user}@{DOMAIN}"), "--password", password])
        .args(&extra)
        .arg("--insecure-tls");
        let result = proc::run_bounded(&mut cmd, CLIENT_TIMEOUT, Some("  | "), None).and_then(
            |f: Finished| {
                if f.success() {
                    Ok("exit 0".to_string())
                } else {
                    bail!("{}", f.describe())
                }
            },
        );
        ctx.report.record_result(&name, result);
    }
}

/// Records whether the server survived the clients (a crash would otherwise show only
/// as confusing client failures).
fn alive_check(ctx: &mut Ctx, side: &str, server: &mut Service, addr: SocketAddr) {
    if let Err(e) = server.wait_for_port(addr, Duration::from_secs(5)) {
        ctx.report
            .record(format!("{side}: server still up"), false, format!("{e:#}"));
    }
}

/// `cargo <args>` with output echoed, bounded by [`BUILD_TIMEOUT`].
pub(crate) fn run_cargo_build(args: &[&str]) -> Result<String> {
    let mut cmd = workspace::cargo();
    cmd.args(args);
    let f = proc::run_bounded(&mut cmd, BUILD_TIMEOUT, Some("  | "), None)?;
    if f.success() {
        Ok("ok".to_string())
    } else {
        bail!("cargo {} {}", args.join(" "), f.describe())
    }
}

/// A short admin command; `Ok` with its first output line when it exits 0.
fn run_admin(cmd: &mut Command, stdin: Option<&[u8]>) -> Result<String> {
    let shown = format!("{cmd:?}");
    let f = proc::run_bounded(cmd, ADMIN_TIMEOUT, None, stdin)?;
    if f.success() {
        Ok(f.stdout.lines().next().unwrap_or("ok").trim().to_string())
    } else {
        bail!("{shown}: {}\n{}", f.describe(), f.tail())
    }
}

/// Makes sure `python3 -c 'import slixmpp'` works, installing slixmpp 1.x with pip if not.
fn ensure_slixmpp() -> Result<String> {
    let version = || -> Option<String> {
        let f = proc::run_bounded(
            Command::new("python3").args(["-c", "import slixmpp; print(slixmpp.__version__)"]),
            ADMIN_TIMEOUT,
            None,
            None,
        )
        .ok()?;
        f.success().then(|| f.stdout.trim().to_string())
    };
    if let Some(v) = version() {
        return Ok(format!("slixmpp {v}"));
    }
    println!("installing slixmpp with pip");
    let pip = |extra: &[&str]| -> Result<Finished> {
        proc::run_bounded(
            Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(extra)
                .arg("slixmpp==1.*"),
            INSTALL_TIMEOUT,
            Some("  | "),
            None,
        )
    };
    let mut f = pip(&[])?;
    if !f.success() && f.stderr.contains("externally-managed-environment") {
        // Debian's own python3 refuses system-wide pip installs (PEP 668); this is a
        // throwaway test machine, so install anyway rather than set up a venv.
        f = pip(&["--break-system-packages"])?;
    }
    if !f.success() {
        bail!("pip install slixmpp failed: {}\n{}", f.describe(), f.tail());
    }
    version()
        .map(|v| format!("slixmpp {v} (installed)"))
        .context("pip reported success but slixmpp does not import")
}

/// Makes sure `program` is on PATH, installing Debian package `package` if not (root only).
pub(crate) fn ensure_apt_package(program: &str, package: &str) -> Result<String> {
    if let Some(path) = proc::find_in_path(program) {
        return Ok(path.display().to_string());
    }
    if !proc::is_root() {
        bail!("{program} is not installed and we are not root: run `apt-get install {package}`");
    }
    println!("installing {package} with apt-get");
    let apt = |args: &[&str]| -> Result<()> {
        let f = proc::run_bounded(
            Command::new("apt-get")
                .args(args)
                .env("DEBIAN_FRONTEND", "noninteractive"),
            INSTALL_TIMEOUT,
            None,
            None,
        )?;
        if !f.success() {
            bail!("apt-get {} {}\n{}", args.join(" "), f.describe(), f.tail());
        }
        Ok(())
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", package])?;
    proc::find_in_path(program)
        .map(|p| format!("{} (installed)", p.display()))
        .with_context(|| format!("installed {package} but {program} is still not on PATH"))
}

/// The last lines of a file, for failure output.
pub(crate) fn tail_file(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail: Vec<&str> = lines
        .iter()
        .skip(lines.len().saturating_sub(30))
        .copied()
        .collect();
    format!("--- {} ---\n{}", path.display(), tail.join("\n"))
}
