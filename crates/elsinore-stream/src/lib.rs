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

use core::num::NonZeroU64;
use core::time::Duration;

/// A point in monotonic time, in milliseconds since an epoch the adapter chooses.
///
/// Kept as milliseconds + 1 in a `NonZeroU64`, so that an `Option<Instant>` (a deadline
/// that may be unset, of which every connection keeps several) takes 8 bytes, not 16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Instant(NonZeroU64);

impl Default for Instant {
    fn default() -> Self {
        Instant::from_millis(0)
    }
}

impl Instant {
    /// The instant `ms` milliseconds after the epoch (`u64::MAX` reads back as
    /// `u64::MAX - 1`).
    pub const fn from_millis(ms: u64) -> Self {
        Instant(NonZeroU64::MIN.saturating_add(ms))
    }

    /// Milliseconds since the epoch.
    pub const fn as_millis(self) -> u64 {
        self.0.get() - 1
    }

    /// This instant plus `d`, saturating instead of overflowing.
    pub fn saturating_add(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(ms))
    }

    /// Time elapsed since `earlier` (zero if `earlier` is later).
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_millis(self.0.get().saturating_sub(earlier.0.get()))
    }
}

impl core::ops::Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, d: Duration) -> Instant {
        self.saturating_add(d)
    }
}

#[cfg(test)]
mod instant_tests {
    use super::*;

    #[test]
    fn instants_read_back_and_order_as_milliseconds() {
        assert_eq!(Instant::default().as_millis(), 0);
        assert_eq!(Instant::from_millis(1234).as_millis(), 1234);
        let t = Instant::from_millis(10);
        assert_eq!((t + Duration::from_millis(5)).as_millis(), 15);
        assert_eq!(
            (t + Duration::from_secs(1)).saturating_since(t),
            Duration::from_secs(1)
        );
        assert_eq!(
            t.saturating_since(t + Duration::from_secs(1)),
            Duration::ZERO
        );
        assert!(Instant::from_millis(0) < Instant::from_millis(1));
        // Saturation instead of overflow, at either end of the range.
        let end = Instant::from_millis(u64::MAX);
        assert_eq!(end.as_millis(), u64::MAX - 1);
        assert_eq!(end + Duration::MAX, end);
        // The point of the representation: an unset deadline costs no extra word.
        assert_eq!(core::mem::size_of::<Option<Instant>>(), 8);
    }
}
