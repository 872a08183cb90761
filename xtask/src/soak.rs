//! `cargo xtask soak [--minutes N] [--sessions N] [--rate OPS] [--keep]`: holds many
//! sessions on loopback with steady traffic (chat messages and XEP-0049 sets at a fixed rate
//! over all sessions) and reports the server's resident memory over time, from /proc, and
//! whether it is flat (the mean of the last third of the samples within 5% of the middle
//! third's). Not run in CI: it takes minutes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::crashtest::{build_release, field, loadgen_cmd, result_line, start_server};
use crate::proc::{self, TempDir};

/// Command-line options of `cargo xtask soak`.
pub struct Options {
    minutes: u64,
    sessions: usize,
    rate: u64,
    keep: bool,
}

impl Options {
    /// Parses `[--minutes N] [--sessions N] [--rate OPS] [--keep]`.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut o = Options {
            minutes: 5,
            sessions: 3000,
            rate: 300,
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
                "--minutes" => o.minutes = num("--minutes")?.clamp(1, 24 * 60),
                "--sessions" => o.sessions = usize::try_from(num("--sessions")?.clamp(2, 9000))?,
                "--rate" => o.rate = num("--rate")?.clamp(1, 100_000),
                "--keep" => o.keep = true,
                other => bail!("unknown soak option {other:?}"),
            }
        }
        Ok(o)
    }
}

pub fn run(opts: Options) -> Result<i32> {
    let started = Instant::now();
    let tmp = TempDir::new("elsinore-soak", opts.keep)?;
    println!("soak: working in {}", tmp.path().display());
    println!("\n=== soak: build (release) ===");
    let (elsinore, loadgen) = build_release()?;
    let dir = tmp.path().to_path_buf();
    let addr = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    // One descriptor per session on each side, plus slack for the store and logs.
    let nofile = (opts.sessions as u64) * 2 + 1024;
    let n = opts.sessions.to_string();
    let mut server = start_server(&elsinore, &dir, addr, "server.log", nofile)?;
    println!("\n=== soak: {} accounts ===", opts.sessions);
    let mut cmd = loadgen_cmd(&loadgen, addr, &server, nofile);
    cmd.args(["--scenarios", "register", "--accounts", &n])
        .args(["--concurrency", "32", "--phase-secs", "600"]);
    let f = proc::run_bounded(&mut cmd, Duration::from_secs(900), Some("  | "), None)?;
    if !f.success() {
        bail!(
            "registering the accounts failed: {}\n{}",
            f.describe(),
            f.tail()
        );
    }
    println!(
        "\n=== soak: {} sessions, {} ops/s, {} min ===",
        opts.sessions, opts.rate, opts.minutes
    );
    let secs = opts.minutes * 60;
    let mut cmd = loadgen_cmd(&loadgen, addr, &server, nofile);
    cmd.args(["--scenarios", "soak", "--accounts", &n, "--sessions", &n])
        .args([
            "--concurrency",
            "32",
            "--phase-secs",
            "600",
            "--io-secs",
            "30",
        ])
        .args([
            "--soak-secs",
            &secs.to_string(),
            "--rate",
            &opts.rate.to_string(),
        ])
        .args(["--sample-secs", "5"]);
    // Logging in, the soak itself, closing: bounded with room to spare.
    let f = proc::run_bounded(
        &mut cmd,
        Duration::from_secs(secs + 900),
        Some("  | "),
        None,
    )?;
    let alive = server.wait_for_port(addr, Duration::from_secs(5));
    server.stop();
    let line = result_line(&f.stdout, "soak")
        .with_context(|| format!("soak printed no result: {}\n{}", f.describe(), f.tail()))?;
    println!(
        "\n=== soak: results ({:.0} s) ===\n",
        started.elapsed().as_secs_f64()
    );
    println!("| t (s) | server RSS (MiB) | ops so far |");
    println!("|---|---|---|");
    for l in f.stdout.lines().filter(|l| l.starts_with("SOAK t=")) {
        let t = field(l, "t").unwrap_or("?");
        let rss: f64 = field(l, "rss_kib")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let ops = field(l, "ops").unwrap_or("?");
        println!("| {t} | {:.1} | {ops} |", rss / 1024.0);
    }
    println!("\n{line}");
    if let Err(e) = alive {
        println!("the server did not survive the soak: {e:#}");
        return Ok(1);
    }
    let flat = field(line, "flat") == Some("yes");
    let ok = field(line, "status") == Some("ok");
    println!(
        "\nmemory {} (last third vs middle third: {}%), status {}",
        if flat { "flat" } else { "NOT flat" },
        field(line, "growth_pct").unwrap_or("?"),
        field(line, "status").unwrap_or("?")
    );
    Ok(if flat && ok { 0 } else { 1 })
}
