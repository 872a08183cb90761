//! Sans-IO XMPP server: many client connections, sessions, routing and the
//! server's own iq handlers, over storage effects.
//!
//! The [`Server`] owns every connection (identified by [`ConnId`]); adapters
//! feed it bytes and drain its outputs, never routing anything themselves.
//!
//! # Run loop
//!
//! After every `handle_*` call or `accept`, drain in this order:
//! 1. [`Server::poll_transmit`]: write each `(conn, bytes)` to that connection;
//! 2. [`Server::poll_event`]: [`ServerEvent::UpgradeTls`] (start TLS on the
//!    socket once everything transmitted before it is flushed, then call
//!    [`Server::handle_tls_ready`]) and [`ServerEvent::Close`] (flush, close);
//! 3. [`Server::poll_effect`]: run each storage effect and answer it, in order,
//!    with [`Server::handle_effect_done`] — every effect must be answered;
//! 4. [`Server::poll_timeout`]: call [`Server::handle_timeout`] then.

pub mod accounts;
mod autoupdate;
mod cache;
pub mod caps;
mod guard;
mod im;
mod iq;
mod muc;
mod pep;
mod private_xml;
mod register;
mod removal;
pub mod roster;
mod s2s;
mod server;
mod server_iq;
mod services;

pub use autoupdate::{Release, ReleaseKind};
pub use cache::CacheLimits;
pub use elsinore_stream::{ChannelBinding, Instant, Limits, Rate, TlsInfo};
pub use guard::AbuseLimits;
pub use s2s::S2sSettings;
pub use server::{ConnId, Footprint, Server, ServerConfig, ServerEvent};
