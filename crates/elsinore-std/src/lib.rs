//! Blocking adapter for elsinore over `std::net` and rustls, with no async runtime.
//!
//! - [`Client`] drives an [`elsinore_client::Client`] on one `TcpStream` (STARTTLS through
//!   `rustls::StreamOwned`): every call blocks until its answer, bounded by a timeout.
//! - [`spawn_server`] runs an [`elsinore_server::Server`] with a thread per connection, one
//!   storage thread and one timer thread, the core behind one mutex (as the tokio adapter).
//!
//! Nothing here decides protocol: the cores do; this crate moves bytes and time.

#![warn(missing_docs)]

mod client;
mod server;

pub use client::{Client, ClientError, ClientOptions};
pub use server::{MAX_CONNECTIONS, ServerHandle, spawn_server, spawn_server_with_cap};

use std::io;

use elsinore_stream::Instant;

/// Monotonic milliseconds since an epoch taken at [`Clock::new`]: the core's time.
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
        Instant::from_millis(u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
    }
}

/// 32 bytes from the operating system's CSPRNG, for the cores' seeds.
pub fn random_seed() -> io::Result<[u8; 32]> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| io::Error::other(format!("getrandom: {e}")))?;
    Ok(seed)
}
