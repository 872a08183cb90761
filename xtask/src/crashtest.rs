//! `cargo xtask crashtest [--rounds N] [--seed S] [--writers W] [--keep]`: durability under
//! SIGKILL. Builds the release server and load generator, starts `elsinore serve` on a temp
//! data directory, and per round: runs writers (`elsinore-loadgen --scenarios crash-write`:
//! XEP-0049 sets, roster adds, offline messages, each acknowledged write logged), kills the
//! server with SIGKILL after a random delay drawn from the seed, restarts it on the same data
//! (the store's integrity check runs at open) and runs `crash-verify`, which reads every
//! acknowledged write of every round back through the protocol.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::interop::run_cargo_build;
use crate::proc::{self, Service, TempDir};
use crate::workspace;

const DOMAIN: &str = "localhost";
const PASSWORD: &str = "crashtest-pw";
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on one load generator run (a write round ends by itself when the server dies).
const LOADGEN_TIMEOUT: Duration = Duration::from_secs(300);

/// Command-line options of `cargo xtask crashtest`.
pub struct Options {
    rounds: u32,
    seed: u64,
    writers: usize,
    keep: bool,
}

impl Options {
    /// Parses `[--rounds N] [--seed S] [--writers W] [--keep]`.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            rounds: 5,
            seed: 1,
            writers: 8,
            keep: false,
        };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut num = |name: &str| -> Result<u64> {
                let v = it.next().with_context(|| format!("{name} needs a value"))?;
                v.parse()
                    .with_context(|| format!("{name} takes a number, got {v:?}"))
            };
            match a.as_str() {
                "--rounds" => o.rounds = u32::try_from(num("--rounds")?.clamp(1, 1000))?,
                "--seed" => o.seed = num("--seed")?,
                "--writers" => o.writers = usize::try_from(num("--writers")?.clamp(1, 500))?,
                "--keep" => o.keep = true,
                other => bail!("unknown crashtest option {other:?}"),
            }
        }
        Ok(o)
    }
}

/// Build the release server and load generator; their paths.
pub(crate) fn build_release() -> Result<(PathBuf, PathBuf)> {
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
    Ok((elsinore, loadgen))
}

/// `cmd` run through `sh` with the open-file limit raised to `nofile` (or the hard limit).
pub(crate) fn with_nofile(program: &Path, nofile: u64) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -n {nofile} 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"; exec \"$0\" \"$@\""
        ))
        .arg(program);
    cmd
}

/// Starts `elsinore serve` on `data` at `addr` (plaintext auth and registration on).
pub(crate) fn start_server(
    elsinore: &Path,
    dir: &Path,
    addr: SocketAddr,
    log_name: &str,
    nofile: u64,
) -> Result<Service> {
    let mut server = Service::spawn(
        "elsinore",
        with_nofile(elsinore, nofile)
            .arg("serve")
            .args(["--domain", DOMAIN])
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data")
            .arg(dir.join("data"))
            .args(["--allow-plaintext-auth", "--allow-registration"])
            .env("RUST_LOG", "warn")
            .current_dir(dir),
        &dir.join(log_name),
    )?;
    server.wait_for_port(addr, START_TIMEOUT)?;
    Ok(server)
}

pub(crate) fn loadgen_cmd(
    loadgen: &Path,
    addr: SocketAddr,
    server: &Service,
    nofile: u64,
) -> Command {
    let mut cmd = with_nofile(loadgen, nofile);
    cmd.arg("--addr")
        .arg(addr.to_string())
        .args(["--domain", DOMAIN, "--password", PASSWORD])
        .args(["--user-prefix", "ct"])
        .args(["--pgid", &server.id().to_string()]);
    cmd
}

/// The `RESULT` line of a scenario, if printed.
pub(crate) fn result_line<'a>(stdout: &'a str, scenario: &str) -> Option<&'a str> {
    let tag = format!("scenario={scenario} ");
    stdout
        .lines()
        .find(|l| l.starts_with("RESULT ") && l.contains(&tag))
}

/// `key=value` from a result line (the note's fields too).
pub(crate) fn field<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let tag = format!("{key}=");
    line.split_whitespace().find_map(|w| {
        // The note's first field shares its word with `note=`.
        w.strip_prefix("note=")
            .unwrap_or(w)
            .strip_prefix(tag.as_str())
    })
}

/// SplitMix64, for kill delays reproducible from `--seed`.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

pub fn run(opts: Options) -> Result<i32> {
    let started = Instant::now();
    let tmp = TempDir::new("elsinore-crashtest", opts.keep)?;
    println!("crashtest: working in {}", tmp.path().display());
    println!("\n=== crashtest: build (release) ===");
    let (elsinore, loadgen) = build_release()?;
    let dir = tmp.path().to_path_buf();
    let ack_log = dir.join("acks.log");
    let port = proc::free_port()?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let nofile = 4096;
    let writers = opts.writers.to_string();
    let accounts = (2 * opts.writers).to_string();

    let mut server = start_server(&elsinore, &dir, addr, "server-0.log", nofile)?;
    let mut cmd = loadgen_cmd(&loadgen, addr, &server, nofile);
    cmd.args(["--scenarios", "register", "--accounts", &accounts]);
    let f = proc::run_bounded(&mut cmd, LOADGEN_TIMEOUT, Some("  | "), None)?;
    if !f.success() {
        bail!(
            "registering the accounts failed: {}\n{}",
            f.describe(),
            f.tail()
        );
    }

    let mut rng = opts.seed;
    let (mut kills, mut lost) = (0u32, 0usize);
    let mut totals = [0usize; 3];
    let mut verified = String::new();
    for round in 1..=opts.rounds {
        println!("\n=== crashtest: round {round}/{} ===", opts.rounds);
        let mut cmd = loadgen_cmd(&loadgen, addr, &server, nofile);
        cmd.args(["--scenarios", "crash-write", "--accounts", &accounts])
            .args(["--sessions", &writers, "--round", &round.to_string()])
            .args(["--phase-secs", "120", "--io-secs", "10"])
            .arg("--ack-log")
            .arg(&ack_log);
        let writer = std::thread::spawn(move || {
            proc::run_bounded(&mut cmd, LOADGEN_TIMEOUT, Some("  | "), None)
        });
        // Between 1.5 s and 6 s of load, different every round.
        let delay = Duration::from_millis(1_500 + next(&mut rng) % 4_500);
        std::thread::sleep(delay);
        println!("crashtest: SIGKILL after {delay:?}");
        server.kill_now();
        kills += 1;
        let f = writer
            .join()
            .map_err(|_| anyhow::anyhow!("writer thread panicked"))??;
        let line = result_line(&f.stdout, "crash-write")
            .with_context(|| format!("crash-write printed no result\n{}", f.tail()))?;
        for (i, key) in ["acked_private", "acked_roster", "acked_messages"]
            .iter()
            .enumerate()
        {
            totals[i] += field(line, key).and_then(|v| v.parse().ok()).unwrap_or(0);
        }
        println!(
            "crashtest: writes acknowledged this round: {}",
            note_of(line)
        );

        server = start_server(
            &elsinore,
            &dir,
            addr,
            &format!("server-{round}.log"),
            nofile,
        )
        .with_context(|| format!("restart after kill {round}"))?;
        let mut cmd = loadgen_cmd(&loadgen, addr, &server, nofile);
        cmd.args(["--scenarios", "crash-verify", "--accounts", &accounts])
            .args(["--sessions", &writers, "--round", &round.to_string()])
            .arg("--ack-log")
            .arg(&ack_log);
        let f = proc::run_bounded(&mut cmd, LOADGEN_TIMEOUT, Some("  | "), None)?;
        let line = result_line(&f.stdout, "crash-verify")
            .with_context(|| format!("crash-verify printed no result\n{}", f.tail()))?;
        let problems: usize = field(line, "problems")
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX);
        lost += problems;
        verified = note_of(line).to_string();
        println!("crashtest: verified after restart: {verified}");
    }
    server.stop();
    println!(
        "\n=== crashtest: {} rounds, {kills} SIGKILLs, {:.0} s ===",
        opts.rounds,
        started.elapsed().as_secs_f64()
    );
    println!(
        "acknowledged: {} private sets, {} roster adds, {} offline messages; last check: {verified}",
        totals[0], totals[1], totals[2]
    );
    if lost > 0 {
        println!("LOST OR WRONG: {lost} acknowledged writes (see crash-verify lines above)");
        return Ok(1);
    }
    println!("every acknowledged write was found with its exact content");
    Ok(0)
}

fn note_of(line: &str) -> &str {
    line.split_once("note=").map_or(line, |(_, n)| n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_of_a_result_line_and_its_note() {
        let line = "RESULT server=server scenario=crash-write status=ok ops=9 errors=0 \
                    note=acked_private=6 acked_roster=2 acked_messages=1 bounced=0";
        assert_eq!(result_line(line, "crash-write"), Some(line));
        assert_eq!(result_line(line, "crash-verify"), None);
        assert_eq!(field(line, "status"), Some("ok"));
        assert_eq!(field(line, "acked_private"), Some("6"));
        assert_eq!(field(line, "acked_messages"), Some("1"));
        assert_eq!(field(line, "missing"), None);
    }
}
