//! Project automation, run as `cargo xtask <command>` (alias in `.cargo/config.toml`).
//!
//! Plain std + anyhow on purpose: this binary is built on every CI run, so it must stay
//! cheap to compile. Each subcommand lives in its own module; add new ones to
//! [`COMMANDS`] and the `match` in [`main`].

mod crashtest;
mod fuzz;
mod interop;
mod loadbench;
mod proc;
mod report;
mod soak;
mod terminal;
mod workspace;

use anyhow::{Result, bail};

/// Subcommands and their one-line help, printed by `cargo xtask help`.
const COMMANDS: &[(&str, &str)] = &[
    (
        "interop [--only elsinore|prosody|federation] [--keep]",
        "run slixmpp, other clients and the private_xml example against elsinore and Prosody; s2s federation",
    ),
    (
        "loadbench [--quick] [--only elsinore|prosody|ejabberd]... [--keep] [--repeat N] [--window N]",
        "load scenarios against elsinore, Prosody and ejabberd (release build); ratio table",
    ),
    (
        "crashtest [--rounds N] [--seed S] [--writers W] [--keep]",
        "write under load, SIGKILL the server, restart, verify every acknowledged write",
    ),
    (
        "soak [--minutes N] [--sessions N] [--rate OPS] [--keep]",
        "hold many sessions with steady traffic and report the server's memory over time",
    ),
    (
        "fuzz [--secs N]",
        "smoke-run every cargo-fuzz target in fuzz/ for N seconds (default 20)",
    ),
];

fn usage() -> String {
    let mut s = String::from("usage: cargo xtask <command> [options]\n\ncommands:\n");
    for (cmd, help) in COMMANDS {
        s.push_str(&format!("  {cmd}\n      {help}\n"));
    }
    s
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            1
        }
    };
    std::process::exit(code);
}

/// Dispatches to a subcommand; returns the process exit code.
fn run(args: &[String]) -> Result<i32> {
    let Some((cmd, rest)) = args.split_first() else {
        eprint!("{}", usage());
        return Ok(2);
    };
    match cmd.as_str() {
        "interop" => interop::run(interop::Options::parse(rest)?),
        "loadbench" => loadbench::run(loadbench::Options::parse(rest)?),
        "fuzz" => fuzz::run(fuzz::Options::parse(rest)?),
        "crashtest" => crashtest::run(crashtest::Options::parse(rest)?),
        "soak" => soak::run(soak::Options::parse(rest)?),
        "help" | "--help" | "-h" => {
            print!("{}", usage());
            Ok(0)
        }
        other => bail!("unknown command {other:?}\n{}", usage()),
    }
}
