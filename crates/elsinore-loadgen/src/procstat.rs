//! CPU time and resident memory of a server's whole process group, from /proc.
//!
//! Summing over the process group covers servers that fork helpers (ejabberd's
//! `beam.smp` with `erl_child_setup`); for a single-process server it is that process.

use std::fs;

use anyhow::{Context, Result, bail};

/// One sample of the group.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    /// utime + stime of every live process in the group, in clock ticks.
    pub cpu_ticks: u64,
    /// The stime part (time in the kernel on the group's behalf: syscalls, and the
    /// loopback TCP processing they run), in clock ticks.
    pub sys_ticks: u64,
    /// Sum of VmRSS over the group, KiB.
    pub rss_kib: u64,
    /// Processes found.
    pub procs: usize,
}

/// Clock ticks per second for /proc/PID/stat times. Linux has reported USER_HZ = 100 to
/// user space on every mainstream architecture for decades; std offers no sysconf, and
/// `getconf CLK_TCK` confirms it where available.
pub fn ticks_per_sec() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t: &u64| t > 0)
        .unwrap_or(100)
}

/// Samples every process whose process group is `pgid`.
pub fn sample_group(pgid: u32) -> Result<Sample> {
    let mut s = Sample::default();
    // /proc has one entry per process; bounded by the system's process count.
    for entry in fs::read_dir("/proc").context("read /proc")? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        // The process may exit between listing and reading: skip it then.
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((group, ticks, sys)) = parse_stat(&stat) else {
            continue;
        };
        if group != pgid {
            continue;
        }
        s.procs += 1;
        s.cpu_ticks += ticks;
        s.sys_ticks += sys;
        if let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) {
            s.rss_kib += parse_rss_kib(&status).unwrap_or(0);
        }
    }
    if s.procs == 0 {
        bail!("no process in group {pgid} (did the server exit?)");
    }
    Ok(s)
}

/// (pgrp, utime + stime, stime) from a /proc/PID/stat line. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(stat: &str) -> Option<(u32, u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state(3) ppid(4) pgrp(5) ... utime(14) stime(15).
    let pgrp = fields.get(2)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((pgrp, utime + stime, stime))
}

fn parse_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_odd_command_name() {
        let line = "4242 (beam.smp) (x) S 1 4200 4200 0 -1 4194560 100 0 0 0 731 42 0 0 20 0 \
                    30 0 1000 2000000 3000 18446744073709551615";
        assert_eq!(parse_stat(line), Some((4200, 773, 42)));
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) S 1"), None);
    }

    #[test]
    fn rss_line() {
        let status = "Name:\telsinore\nVmPeak:\t  9000 kB\nVmRSS:\t   12345 kB\n";
        assert_eq!(parse_rss_kib(status), Some(12345));
        assert_eq!(parse_rss_kib("Name: x\n"), None);
    }

    #[test]
    fn samples_own_group() {
        // The test runner is in some process group; sampling it finds at least itself.
        let own = fs::read_to_string("/proc/self/stat").expect("/proc exists on Linux");
        let (pgid, _, _) = parse_stat(&own).expect("our own stat line is well formed");
        let s = sample_group(pgid).expect("we are in that group");
        assert!(s.procs >= 1 && s.rss_kib > 0);
    }
}
