//! A terminal XMPP client (Debian's `profanity`) driven through tmux: it logs in,
//! sends a message and must show the answer on its screen.

use std::path::Path;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

use crate::proc;

/// A private tmux server (own socket), killed when dropped.
pub struct Tmux {
    socket: String,
}

impl Tmux {
    /// Starts `command` in a detached 200×50 session on a private tmux server.
    pub fn start(command: &str) -> Result<Tmux> {
        let tmux = Tmux {
            socket: format!("elsinore-interop-{}", std::process::id()),
        };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "main",
            "-x",
            "200",
            "-y",
            "50",
            command,
        ])?;
        Ok(tmux)
    }

    fn run(&self, args: &[&str]) -> Result<String> {
        let f = proc::run_bounded(
            Command::new("tmux").arg("-L").arg(&self.socket).args(args),
            Duration::from_secs(10),
            None,
            None,
        )?;
        if !f.success() {
            bail!("tmux {}: {}\n{}", args.join(" "), f.describe(), f.tail());
        }
        Ok(f.stdout)
    }

    /// Types `text` and presses Enter.
    pub fn type_line(&self, text: &str) -> Result<()> {
        // `-l`: literal text, so words like "Enter" are not taken as key names.
        self.run(&["send-keys", "-t", "main", "-l", text])?;
        self.run(&["send-keys", "-t", "main", "Enter"])?;
        Ok(())
    }

    /// The visible screen.
    pub fn screen(&self) -> Result<String> {
        self.run(&["capture-pane", "-t", "main", "-p"])
    }

    /// Waits until the screen contains `needle`; returns the screen either way.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> (bool, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let screen = self.screen().unwrap_or_default();
            if screen.contains(needle) {
                return (true, screen);
            }
            if Instant::now() >= deadline {
                return (false, screen);
            }
            sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = proc::run_bounded(
            Command::new("tmux")
                .arg("-L")
                .arg(&self.socket)
                .arg("kill-server"),
            Duration::from_secs(10),
            None,
            None,
        );
    }
}

/// The shell command that runs profanity with its configuration kept under `home`.
pub fn profanity_command(home: &Path) -> String {
    let h = home.display();
    format!(
        "env HOME='{h}' XDG_CONFIG_HOME='{h}/.config' XDG_DATA_HOME='{h}/.local/share' profanity"
    )
}

/// The last non-empty lines of a screen, for failure details.
pub fn screen_tail(screen: &str) -> String {
    let lines: Vec<&str> = screen
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines[lines.len().saturating_sub(6)..].join(" | ")
}
