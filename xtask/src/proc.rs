//! Child processes with bounded waits, and a guard that kills long-running ones on drop.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How long a stopped child gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(3);
/// How many trailing output lines a failure message quotes.
const TAIL_LINES: usize = 30;

/// The outcome of [`run_bounded`].
pub struct Finished {
    /// `None` when the command was killed for running past its time limit.
    pub status: Option<ExitStatus>,
    /// Everything the command wrote to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything the command wrote to stderr (lossy UTF-8).
    pub stderr: String,
}

impl Finished {
    /// True when the command exited by itself with status 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// A short description of how it ended, for reports.
    pub fn describe(&self) -> String {
        match self.status {
            None => "timed out (killed)".to_string(),
            Some(s) => s.to_string(),
        }
    }

    /// The last lines of stdout and stderr, for failure messages.
    pub fn tail(&self) -> String {
        let mut lines: Vec<&str> = self.stdout.lines().chain(self.stderr.lines()).collect();
        let start = lines.len().saturating_sub(TAIL_LINES);
        lines.drain(..start);
        lines.join("\n")
    }
}

/// Runs a command to completion or until `timeout`, whichever comes first, then kills
/// its whole process group (so `cargo run`'s grandchild goes too). Output is captured;
/// with `echo`, each line is also printed as it arrives, after that prefix. `stdin`
/// bytes, when given, are written and the pipe closed; otherwise stdin is null.
pub fn run_bounded(
    cmd: &mut Command,
    timeout: Duration,
    echo: Option<&str>,
    stdin: Option<&[u8]>,
) -> Result<Finished> {
    run_bounded_filtered(
        cmd,
        timeout,
        echo.map(|p| Echo {
            prefix: p,
            hide: |_| false,
        }),
        stdin,
    )
}

/// What [`run_bounded_filtered`] prints as lines arrive: every line after `prefix`,
/// except those `hide` picks (they are still captured).
#[derive(Clone, Copy)]
pub struct Echo<'a> {
    pub prefix: &'a str,
    pub hide: fn(&str) -> bool,
}

/// [`run_bounded`] with some echoed lines left out of the terminal (chatty progress
/// output); a count of the hidden lines is printed at the end.
pub fn run_bounded_filtered(
    cmd: &mut Command,
    timeout: Duration,
    echo: Option<Echo<'_>>,
    stdin: Option<&[u8]>,
) -> Result<Finished> {
    let program = format!("{cmd:?}");
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        // Own process group: on timeout we kill the group, grandchildren included.
        .process_group(0);
    let mut child = cmd
        .spawn()
        .with_context(|| format!("cannot start {program}"))?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A child that exits without reading gives EPIPE; its exit status tells the story.
        let _ = pipe.write_all(bytes);
    }
    let hidden = Arc::new(AtomicUsize::new(0));
    let echo = echo.map(|e| (e.prefix.to_owned(), e.hide, Arc::clone(&hidden)));
    let out = collect(child.stdout.take(), echo.clone());
    let err = collect(child.stderr.take(), echo.clone());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            break None;
        }
        thread::sleep(Duration::from_millis(50));
    };
    let finished = Finished {
        status,
        stdout: join_collector(out),
        stderr: join_collector(err),
    };
    if let Some((prefix, _, _)) = echo {
        let n = hidden.load(Ordering::Relaxed);
        if n > 0 {
            println!("{prefix}({n} progress lines not shown)");
        }
    }
    Ok(finished)
}

/// A collector's echo: the prefix, which lines to hide, and the count of hidden ones.
type EchoTo = (String, fn(&str) -> bool, Arc<AtomicUsize>);

/// Text read from a pipe by a thread, and a signal that the pipe reached its end.
struct Collector {
    text: Arc<Mutex<String>>,
    done: Receiver<()>,
}

/// Reads a pipe to its end on a thread, echoing lines after `echo` when given.
fn collect<R: Read + Send + 'static>(pipe: Option<R>, echo: Option<EchoTo>) -> Collector {
    let text = Arc::new(Mutex::new(String::new()));
    let (tx, done) = mpsc::channel();
    if let Some(pipe) = pipe {
        let text = Arc::clone(&text);
        thread::spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = Vec::new();
            while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
                let chunk = String::from_utf8_lossy(&line);
                if let Some((prefix, hide, hidden)) = &echo {
                    let shown = chunk.trim_end();
                    if hide(shown) {
                        hidden.fetch_add(1, Ordering::Relaxed);
                    } else {
                        println!("{prefix}{shown}");
                    }
                }
                if let Ok(mut t) = text.lock() {
                    t.push_str(&chunk);
                }
                line.clear();
            }
            let _ = tx.send(());
        });
    }
    Collector { text, done }
}

/// The collected text. The wait is bounded: a daemon the command started (apt's
/// postinst may start one) can inherit the pipe and hold it open forever; then we take
/// what was read so far rather than hang.
fn join_collector(c: Collector) -> String {
    let _ = c.done.recv_timeout(Duration::from_secs(5));
    c.text.lock().map(|t| t.clone()).unwrap_or_default()
}

/// SIGTERM to the child's process group (it is its leader), then SIGKILL after
/// [`STOP_GRACE`]; reaps it.
fn kill_group(child: &mut Child) {
    signal_group(child.id(), "TERM");
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            // The leader is gone; make sure nothing else in its group lingers.
            signal_group(child.id(), "KILL");
            return;
        }
        thread::sleep(Duration::from_millis(50));
    }
    signal_group(child.id(), "KILL");
    let _ = child.kill();
    let _ = child.wait();
}

/// Sends a signal to a process group through `sh`'s `kill` (no libc dependency).
fn signal_group(pgid: u32, signal: &str) {
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -s {signal} -- -{pgid} 2>/dev/null")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// A long-running child (a server) whose output goes to a log file and, line by line,
/// to a channel that [`Service::wait_for_line`] reads. Dropping it stops the process.
pub struct Service {
    name: String,
    child: Child,
    lines: Receiver<String>,
    log_path: PathBuf,
}

impl Service {
    /// Starts `cmd` with stdout and stderr appended to `log_path`.
    pub fn spawn(name: &str, cmd: &mut Command, log_path: &Path) -> Result<Service> {
        let log = File::create(log_path)
            .with_context(|| format!("cannot create {}", log_path.display()))?;
        let log = Arc::new(Mutex::new(log));
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null())
            // Own process group, so stop() reaches anything the server forks.
            .process_group(0);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot start {name}: {cmd:?}"))?;
        let (tx, rx) = mpsc::channel();
        // The reader threads are not joined: they end when the pipes close, and a
        // process that escaped the group could hold a pipe open; waiting on it would
        // break the bound on every wait.
        if let Some(out) = child.stdout.take() {
            forward(out, Arc::clone(&log), tx.clone());
        }
        if let Some(err) = child.stderr.take() {
            forward(err, log, tx);
        }
        Ok(Service {
            name: name.to_string(),
            child,
            lines: rx,
            log_path: log_path.to_path_buf(),
        })
    }

    /// Waits until an output line contains `needle`; fails if the process exits or
    /// `timeout` passes first. Returns the line.
    pub fn wait_for_line(&mut self, needle: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!(
                    "{} printed no line containing {needle:?} within {timeout:?}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(200)))
            {
                Ok(line) if line.contains(needle) => return Ok(line),
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                // Both pipes closed: the process is gone or about to be.
                Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(50)),
            }
            self.check_alive()?;
        }
    }

    /// Waits until `addr` accepts TCP connections; fails if the process exits or
    /// `timeout` passes first.
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} did not accept connections on {addr} within {timeout:?}\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            thread::sleep(Duration::from_millis(200));
        }
    }

    fn check_alive(&mut self) -> Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!("{} exited early ({status})\n{}", self.name, self.log_tail());
        }
        Ok(())
    }

    /// The last lines of the log, indented, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log_path).unwrap_or_default();
        let mut tail: VecDeque<&str> = VecDeque::with_capacity(TAIL_LINES);
        for line in text.lines() {
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(line);
        }
        let mut s = format!("--- last lines of {} ---", self.log_path.display());
        for line in tail {
            s.push_str("\n    ");
            s.push_str(line);
        }
        s
    }

    /// The process id; it leads its own process group, so this is also the group id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process group with SIGKILL at once (a crash, no shutdown) and reaps it.
    pub fn kill_now(&mut self) {
        signal_group(self.child.id(), "KILL");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the process (SIGTERM, then SIGKILL) and reaps it.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            kill_group(&mut self.child);
        } else {
            // Already exited: still reap and sweep its group.
            signal_group(self.child.id(), "KILL");
            let _ = self.child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies a pipe to the log and, line by line, to the channel, on its own thread.
fn forward<R: Read + Send + 'static>(pipe: R, log: Arc<Mutex<File>>, tx: Sender<String>) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while matches!(reader.read_until(b'\n', &mut line), Ok(n) if n > 0) {
            if let Ok(mut f) = log.lock() {
                let _ = f.write_all(&line);
            }
            // The receiver may be gone once nobody waits for lines; keep logging.
            let _ = tx.send(String::from_utf8_lossy(&line).into_owned());
            line.clear();
        }
    });
}

/// A loopback port that was free a moment ago (bound, read, released).
pub fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("cannot bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The full path of `program` if it is an executable file on `PATH`.
pub fn find_in_path(program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// True when running as uid 0 (asked of `id -u`; std has no getuid).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// A fresh directory under the system temp dir, removed on drop unless `keep`.
pub struct TempDir {
    path: PathBuf,
    keep: bool,
}

impl TempDir {
    /// Creates `<tmp>/<prefix>-<pid>-<nanos>`.
    pub fn new(prefix: &str, keep: bool) -> Result<TempDir> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        Ok(TempDir { path, keep })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if self.keep {
            println!("(kept {})", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
