//! `cargo xtask fuzz`: smoke-runs every cargo-fuzz target in `fuzz/` for a few seconds.
//!
//! Stable toolchain, so no sanitizer (`-s none`); coverage guidance still works (see
//! docs/tooling.md). New inputs go to `fuzz/corpus/TARGET` (git-ignored); the committed
//! seeds in `fuzz/seeds/TARGET` are only read.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::proc;
use crate::report::Report;
use crate::workspace;

/// Default run time per target, seconds.
const DEFAULT_SECS: u64 = 20;
/// Upper bound on `--secs`, so a typo cannot hold CI for hours.
const MAX_SECS: u64 = 3600;
/// Installing cargo-fuzz or building a fuzz target on 2 cores.
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// Command-line options of `cargo xtask fuzz`.
pub struct Options {
    secs: u64,
    /// With `--runs N`: exactly N inputs per target from a fixed libFuzzer seed, so the
    /// smoke run in CI is the same on every machine instead of depending on its speed.
    runs: Option<u64>,
}

impl Options {
    /// Parses `[--secs N] [--runs N]`.
    pub fn parse(args: &[String]) -> Result<Options> {
        let mut secs = DEFAULT_SECS;
        let mut runs = None;
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--secs" => {
                    let v = it.next().context("--secs needs a number")?;
                    secs = v
                        .parse()
                        .with_context(|| format!("--secs: not a number: {v:?}"))?;
                    if secs == 0 || secs > MAX_SECS {
                        bail!("--secs must be between 1 and {MAX_SECS}");
                    }
                }
                "--runs" => {
                    let v = it.next().context("--runs needs a number")?;
                    let n: u64 = v
                        .parse()
                        .with_context(|| format!("--runs: not a number: {v:?}"))?;
                    if n == 0 {
                        bail!("--runs must be at least 1");
                    }
                    runs = Some(n);
                }
                other => bail!("unknown fuzz option {other:?} (try --secs N or --runs N)"),
            }
        }
        Ok(Options { secs, runs })
    }
}

/// Runs each target for `secs`; returns the exit code (0 only when none failed).
pub fn run(opts: Options) -> Result<i32> {
    let fuzz_dir = workspace::root().join("fuzz");
    if !fuzz_dir.join("Cargo.toml").is_file() {
        bail!("{} has no Cargo.toml: no fuzz crate", fuzz_dir.display());
    }
    let mut report = Report::default();

    println!("=== fuzz: cargo-fuzz ===");
    if !report.record_result("setup: cargo-fuzz installed", ensure_cargo_fuzz()) {
        report.print_summary("fuzz");
        return Ok(1);
    }

    let mut list = workspace::cargo();
    list.current_dir(&fuzz_dir).args(["fuzz", "list"]);
    let listed = proc::run_bounded(&mut list, Duration::from_secs(120), None, None)?;
    if !listed.success() {
        bail!("cargo fuzz list {}\n{}", listed.describe(), listed.tail());
    }
    let targets: Vec<String> = listed
        .stdout
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    if targets.is_empty() {
        bail!("cargo fuzz list found no targets in {}", fuzz_dir.display());
    }

    for target in &targets {
        let budget = match opts.runs {
            Some(n) => format!("{n} runs (seed 1), at most {} s", opts.secs),
            None => format!("{} s", opts.secs),
        };
        println!("\n=== fuzz: {target}: {budget} ===");
        let corpus = fuzz_dir.join("corpus").join(target);
        std::fs::create_dir_all(&corpus)
            .with_context(|| format!("cannot create {}", corpus.display()))?;
        let seeds = fuzz_dir.join("seeds").join(target);
        let mut cmd = workspace::cargo();
        cmd.current_dir(&fuzz_dir)
            .args(["fuzz", "run", "-s", "none", target])
            // libFuzzer writes new inputs to the first directory only.
            .arg(&corpus);
        if seeds.is_dir() {
            cmd.arg(&seeds);
        }
        cmd.arg("--").arg(format!("-max_total_time={}", opts.secs));
        if let Some(n) = opts.runs {
            cmd.arg(format!("-runs={n}")).arg("-seed=1");
        }
        let limit = BUILD_TIMEOUT + Duration::from_secs(opts.secs + 60);
        let echo = proc::Echo {
            prefix: "  | ",
            hide: is_progress_line,
        };
        let result = proc::run_bounded_filtered(&mut cmd, limit, Some(echo), None).and_then(|f| {
            if f.success() {
                Ok(format!("no crash ({budget})"))
            } else {
                // libFuzzer names the crashing input (fuzz/artifacts/...) in the output.
                bail!("{} (see the artifact named above)", f.describe())
            }
        });
        report.record_result(&format!("fuzz: {target}"), result);
    }

    report.print_summary("fuzz");
    Ok(if report.failed() == 0 { 0 } else { 1 })
}

/// libFuzzer's per-input progress lines (`#123\tNEW    cov: …`, `REDUCE`, `pulse`, and the
/// `NEW_FUNC[…]` lines under them): tens
/// of thousands in a CI smoke run and no use once it passes; `INITED`, `DONE`, the
/// statistics and any crash report stay visible.
fn is_progress_line(line: &str) -> bool {
    // Printed under a NEW line for each function first covered.
    if line.trim_start().starts_with("NEW_FUNC[") {
        return true;
    }
    let Some(rest) = line.strip_prefix('#') else {
        return false;
    };
    let Some((count, event)) = rest.split_once('\t') else {
        return false;
    };
    !count.is_empty()
        && count.bytes().all(|b| b.is_ascii_digit())
        && ["NEW", "REDUCE", "pulse"]
            .iter()
            .any(|e| event.starts_with(e))
}

/// Makes sure `cargo fuzz` runs, installing cargo-fuzz if not.
fn ensure_cargo_fuzz() -> Result<String> {
    let version = || -> Option<String> {
        let mut cmd = workspace::cargo();
        cmd.args(["fuzz", "--version"]);
        let f = proc::run_bounded(&mut cmd, Duration::from_secs(60), None, None).ok()?;
        f.success().then(|| f.stdout.trim().to_string())
    };
    if let Some(v) = version() {
        return Ok(v);
    }
    println!("installing cargo-fuzz (a few minutes)");
    let mut cmd: Command = workspace::cargo();
    cmd.args(["install", "cargo-fuzz", "--locked"]);
    let f = proc::run_bounded(&mut cmd, BUILD_TIMEOUT, Some("  | "), None)?;
    if !f.success() {
        bail!("cargo install cargo-fuzz {}", f.describe());
    }
    version()
        .map(|v| format!("{v} (installed)"))
        .context("cargo-fuzz installed but `cargo fuzz --version` fails")
}

#[cfg(test)]
mod tests {
    use super::is_progress_line;

    #[test]
    fn only_libfuzzer_progress_lines_are_hidden() {
        assert!(is_progress_line(
            "#1024\tNEW    cov: 512 ft: 900 corp: 20/1Kb lim: 4 exec/s: 0 rss: 40Mb"
        ));
        assert!(is_progress_line("#3\tREDUCE cov: 2 ft: 2 corp: 1/1b"));
        assert!(is_progress_line("#65536\tpulse  cov: 9 ft: 9 corp: 3/5b"));
        assert!(is_progress_line("\tNEW_FUNC[1/3]: 0x564c69f411f1"));
        assert!(!is_progress_line(
            "#2\tINITED cov: 2 ft: 2 corp: 1/1b exec/s: 0"
        ));
        assert!(!is_progress_line("#100000\tDONE   cov: 9 ft: 9 corp: 3/5b"));
        assert!(!is_progress_line(
            "==1234== ERROR: libFuzzer: deadly signal"
        ));
        assert!(!is_progress_line("#NEW\tcov"));
        assert!(!is_progress_line("Done 100000 runs in 3 second(s)"));
    }
}
