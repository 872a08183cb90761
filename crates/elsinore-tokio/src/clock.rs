//! The one clock and the one randomness source the adapter gives the core.

use std::io;
use std::time::Duration;

use elsinore_stream::Instant;

/// Monotonic milliseconds since an epoch taken at [`Clock::new`].
///
/// The core only ever sees [`Instant`] values; this converts both ways so deadlines the core
/// returns can be slept on with tokio.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    epoch: std::time::Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock whose epoch (`Instant::from_millis(0)`) is now.
    pub fn new() -> Self {
        Clock {
            epoch: std::time::Instant::now(),
        }
    }

    /// The current time as the core's [`Instant`].
    pub fn now(&self) -> Instant {
        // u64 milliseconds last 584 million years; saturate instead of truncating anyway.
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        Instant::from_millis(ms)
    }

    /// The tokio instant at which the core's `at` falls.
    pub fn to_tokio(&self, at: Instant) -> tokio::time::Instant {
        let std_at = self
            .epoch
            .checked_add(Duration::from_millis(at.as_millis()))
            // A deadline too far away to represent is as good as "never"; a year is plenty.
            .unwrap_or_else(|| std::time::Instant::now() + Duration::from_secs(365 * 24 * 3600));
        tokio::time::Instant::from_std(std_at)
    }
}

/// 32 bytes from the operating system's CSPRNG, for the core's seeds.
pub fn random_seed() -> io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(seed)
}

/// Sleeps until `at`, or forever when there is no deadline (for `select!` branches).
pub(crate) async fn sleep_until_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
