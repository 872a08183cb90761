//! Sans-IO XMPP client-to-server stream negotiation, both roles.
//!
//! A [`Connection`] consumes the bytes read from a socket and the time, and
//! produces the bytes to write, [`Event`]s and the next deadline. It never
//! touches a socket, a clock, a thread or a file.
//!
//! # Run loop
//!
//! After every input (`handle_*`) or command (`send`, `close`, answers such as
//! `provide_credentials`), the caller drains the outputs in this order:
//!
//! 1. write all of [`Connection::pending_transmit`] and acknowledge it with
//!    [`Connection::advance_transmit`];
//! 2. drain [`Connection::poll_event`] until it returns `None`; on
//!    [`Event::UpgradeTls`] make sure step 1 was completely flushed to the socket,
//!    run the TLS handshake on it, then call [`Connection::handle_tls_ready`];
//! 3. arm a timer for [`Connection::poll_timeout`] and call
//!    [`Connection::handle_timeout`] when it fires.
//!
//! Time is an [`Instant`] the caller passes in (milliseconds since an epoch
//! of its choosing); randomness (stream ids, SASL nonces, generated resources)
//! comes from the seed given at construction.

#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

mod connection;
mod rng;
pub mod s2s;

pub use connection::{
    BindError, ClientConfig, Connection, Event, Limits, Rate, SendError, ServerConfig, TlsInfo,
    TlsPolicy,
};
pub use elsinore_sasl::ChannelBinding;
pub use rng::Rng;
pub use s2s::{S2sAuth, S2sConfig, S2sConnection, S2sEvent};

use core::time::Duration;

/// A point in monotonic time, in milliseconds since an epoch the adapter chooses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The instant `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: u64) -> Self {
        Instant(ms)
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// This instant plus `d`, saturating instead of overflowing.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }

    /// Time elapsed since `earlier` (zero if `earlier` is later).
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}
