//! tokio + rustls adapter for elsinore's sans-IO core.
//!
//! Two halves:
//!
//! - [`serve`] / [`Serve`] run an [`elsinore_server::Server`] on a TCP listener: one task per
//!   socket, one storage worker thread, one timer task, the core behind one mutex that is never
//!   held across an `.await`.
//! - [`Client`] is an async XMPP client over [`elsinore_stream::Connection`] in the client
//!   role: STARTTLS, SASL, bind, stanzas, iq request/response, XEP-0049 helpers, and
//!   the private data calls (annotations, PEP as node owner, bookmarks).
//!
//! Time: every `elsinore_stream::Instant` handed to the core comes from one [`Clock`], i.e.
//! milliseconds since a `std::time::Instant` epoch taken when the clock was made.
#![warn(missing_docs)]

mod client;
mod clock;
pub mod coalesce;
mod conn_io;
mod private_data;
mod s2s;
mod server;
mod storage;
mod tls;

pub use client::{Client, ClientError, ClientOptions};
pub use clock::{Clock, random_seed};
pub use coalesce::coalesce_wakeups;
/// XEP-0145 note model and requests (from `elsinore-client`).
pub use elsinore_client::annotations::{self, Annotations, Note};
/// Bookmark model and XEP-0402 / XEP-0048 request builders (from `elsinore-client`).
pub use elsinore_client::bookmarks;
/// PEP request builders, event notification parser and support check (from
/// `elsinore-client`).
pub use elsinore_client::pep::{self, AccessModel, ConfigChange, SendLastItem};
pub use private_data::PepItem;
pub use s2s::S2sOptions;
pub use server::{DEFAULT_MAX_BACKLOG, DEFAULT_MAX_CONNECTIONS, Serve, serve};
pub use storage::Storage;
pub use tls::insecure_client_config;
