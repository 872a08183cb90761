//! Sans-IO XMPP client core, shared by every adapter (tokio, std, embedded).
//!
//! [`Client`] wraps an [`elsinore_stream::Connection`] in the client role and makes every
//! protocol decision a client needs beyond stream negotiation, so adapters only move bytes,
//! time and results:
//!
//! - **iq tracking**: [`Client::send_iq`] assigns an id, remembers the request in a bounded
//!   table with a deadline, and reports the matching response (or a timeout, or the end of
//!   the stream) as [`ClientEvent::IqResponse`]. A response only matches if it comes from
//!   the entity the request was addressed to (RFC 6120 §8.1.2.1: our server answers for our
//!   own account), so a third party cannot forge answers by guessing ids.
//! - **inbound queue**: every other stanza waits in a bounded queue for [`Client::recv`];
//!   [`Client::wants_read`] tells the adapter to stop reading while it is full.
//! - **XEP-0049**: [`private`] builds requests and parses answers; [`Client::private_set`]
//!   and [`Client::private_get`] send them.
//! - **bookmarks** (XEP-0402, XEP-0048): [`bookmarks`] builds requests and parses answers
//!   and event notifications.
//! - **annotations** (XEP-0145): [`annotations`] reads and stores the note bundle.
//! - **PEP** (XEP-0163 / XEP-0223, as the node owner): [`pep`] builds publish, retrieve,
//!   retract, create, configure, delete and purge requests, parses their answers and event
//!   notifications, and checks XEP-0223 support.
//! - **reconnect policy**: [`ClientEvent::Closed`] carries when to try again under the
//!   configured [`Reconnect`] policy; the adapter waits (the core never sleeps), opens a new
//!   socket and calls [`Client::reconnect`].
//!
//! # Run loop
//!
//! The same shape as `Connection`: after every `handle_*` call or command, write
//! [`Client::pending_transmit`] (acknowledge with [`Client::advance_transmit`]), drain
//! [`Client::poll_event`], take stanzas with [`Client::recv`], and arm a timer for
//! [`Client::poll_timeout`].
//!
//! ```
//! use elsinore_client::{Client, ClientEvent, Options};
//! use elsinore_stream::{ClientConfig, Instant, TlsPolicy};
//!
//! let config = ClientConfig {
//!     jid: "hamlet@elsinore.lit".parse()?,
//!     password: "s3cret".into(),
//!     tls: TlsPolicy::Disabled,
//! };
//! let mut client = Client::new(config, Options::default(), [7; 32], Instant::from_millis(0));
//! // The stream header is ready to be written to the socket at once.
//! assert!(client.pending_transmit().starts_with(b"<?xml"));
//! let n = client.pending_transmit().len();
//! client.advance_transmit(n);
//! // The server went away before answering.
//! client.handle_eof(Instant::from_millis(5));
//! assert!(matches!(client.poll_event(), Some(ClientEvent::Closed { .. })));
//! # Ok::<(), elsinore_jid::JidError>(())
//! ```
//!
//! # Without `std`
//!
//! The crate is `no_std` + `alloc` with the default `std` feature off; only JID and SASL
//! preparation of non-ASCII strings is lost (see `elsinore-jid`).

#![warn(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod annotations;
pub mod bookmarks;
pub mod pep;
pub mod private;

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, VecDeque};
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::time::Duration;

use elsinore_jid::Jid;
use elsinore_stanza::{NS_CLIENT, StanzaError, StreamError};
pub use elsinore_stream::{ClientConfig, Instant, Limits, SendError, TlsPolicy};
use elsinore_stream::{Connection, Event, Rng};
use elsinore_xml::Element;

/// When to reconnect after the stream ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reconnect {
    /// Never: [`ClientEvent::Closed`] has no `retry_in`.
    Never,
    /// Exponential backoff: `initial`, doubled after every failed attempt up to `max`, at
    /// most `max_attempts` attempts in a row (the count resets once a session is
    /// established). A stream that ended for a SASL failure is never retried: the same
    /// password would fail again.
    Backoff {
        /// The first delay.
        initial: Duration,
        /// The largest delay.
        max: Duration,
        /// Attempts without an established session before giving up.
        max_attempts: u32,
    },
}

/// Limits and policies of a [`Client`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Stream limits (XML sizes, negotiation and close timeouts).
    pub limits: Limits,
    /// How long an iq request waits for its response.
    pub iq_timeout: Duration,
    /// Most iq requests awaiting a response at once; [`Client::send_iq`] refuses more.
    pub max_outstanding_iqs: usize,
    /// Most inbound stanzas waiting for [`Client::recv`].
    pub max_inbound: usize,
    /// What to do when the stream ends.
    pub reconnect: Reconnect,
}

impl Default for Options {
    /// 30 s iq timeout, 64 outstanding iqs, 256 queued stanzas, no reconnect.
    fn default() -> Self {
        Options {
            limits: Limits::default(),
            iq_timeout: Duration::from_secs(30),
            max_outstanding_iqs: 64,
            max_inbound: 256,
            reconnect: Reconnect::Never,
        }
    }
}

/// Identifies one request sent with [`Client::send_iq`]; its answer carries the same value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IqId(pub u64);

/// Why an iq request got no `result`.
#[derive(Debug, Clone, PartialEq)]
pub enum IqError {
    /// The peer answered with `type='error'`.
    Stanza(Box<StanzaError>),
    /// No answer within [`Options::iq_timeout`].
    Timeout,
    /// The stream ended before the answer came.
    Disconnected,
}

impl fmt::Display for IqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IqError::Stanza(e) => {
                write!(f, "stanza error: {}", e.condition)?;
                if let Some(text) = &e.text {
                    write!(f, " ({text})")?;
                }
                Ok(())
            }
            IqError::Timeout => f.write_str("no iq response in time"),
            IqError::Disconnected => f.write_str("stream ended before the iq response"),
        }
    }
}

impl core::error::Error for IqError {}

/// Why [`Client::send_iq`] refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendIqError {
    /// The stream refused it (not established, or the peer does not read).
    Send(SendError),
    /// [`Options::max_outstanding_iqs`] requests already await answers.
    TooManyOutstanding,
    /// The element is not an `<iq type='get'/'set'>` in `jabber:client`.
    NotARequest,
    /// A request with the same id already awaits its answer.
    DuplicateId,
}

impl fmt::Display for SendIqError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendIqError::Send(e) => write!(f, "{e}"),
            SendIqError::TooManyOutstanding => f.write_str("too many iq requests outstanding"),
            SendIqError::NotARequest => f.write_str("not an iq get or set"),
            SendIqError::DuplicateId => f.write_str("an iq with this id is outstanding"),
        }
    }
}

impl core::error::Error for SendIqError {}

/// What happened, drained with [`Client::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum ClientEvent {
    /// Flush all pending output, run the TLS client handshake on the socket, then call
    /// [`Client::handle_tls_ready`].
    UpgradeTls,
    /// The session is established: stanzas may flow.
    Established {
        /// The full JID the server bound.
        jid: Jid,
    },
    /// The answer to the request [`Client::send_iq`] returned `id` for.
    IqResponse {
        /// The request.
        id: IqId,
        /// The `result` iq, or why there is none.
        result: Result<Element, IqError>,
    },
    /// The stream ended; write out what is pending and close the socket. Every outstanding
    /// request was answered with [`IqError::Disconnected`] before this event.
    Closed {
        /// Why, when it was not a clean close (e.g. SASL `not-authorized`).
        error: Option<String>,
        /// The reconnect hook: under [`Options::reconnect`], wait this long, connect a new
        /// socket and call [`Client::reconnect`]. `None`: do not reconnect.
        retry_in: Option<Duration>,
    },
}

/// One request awaiting its answer.
#[derive(Debug)]
struct Outstanding {
    id: IqId,
    /// The `to` the request was sent to (`None`: our own account).
    to: Option<Jid>,
    deadline: Instant,
}

/// An XMPP client session without IO (see the crate documentation).
#[derive(Debug)]
pub struct Client {
    config: ClientConfig,
    options: Options,
    conn: Connection,
    rng: Rng,
    /// Prefix of generated iq ids, random per client so ids of two sessions differ.
    id_prefix: String,
    next_id: u64,
    /// Outstanding requests by their iq `id` attribute.
    outstanding: BTreeMap<String, Outstanding>,
    events: VecDeque<ClientEvent>,
    inbound: VecDeque<Element>,
    dropped_inbound: u64,
    /// Reconnect attempts since the last established session.
    attempts: u32,
    /// The stream ended on a SASL failure (retrying cannot help).
    auth_failed: bool,
}

impl Client {
    /// A client whose stream header is queued at once; connect a socket and write
    /// [`Client::pending_transmit`] to it. `seed` must be fresh randomness (SASL nonces and
    /// iq ids derive from it).
    pub fn new(config: ClientConfig, options: Options, seed: [u8; 32], now: Instant) -> Client {
        let mut rng = Rng::new(seed);
        let conn = Connection::new_client(config.clone(), options.limits.clone(), rng.fork(), now);
        let id_prefix = format!("el{}-", rng.token(8));
        Client {
            config,
            options,
            conn,
            rng,
            id_prefix,
            next_id: 1,
            outstanding: BTreeMap::new(),
            events: VecDeque::new(),
            inbound: VecDeque::new(),
            dropped_inbound: 0,
            attempts: 0,
            auth_failed: false,
        }
    }

    /// Starts over on a new socket after [`ClientEvent::Closed`]: a fresh stream (header
    /// queued), same account and options. Stanzas still queued for [`Client::recv`] stay.
    pub fn reconnect(&mut self, seed: [u8; 32], now: Instant) {
        self.fail_outstanding();
        self.rng = Rng::new(seed);
        self.conn = Connection::new_client(
            self.config.clone(),
            self.options.limits.clone(),
            self.rng.fork(),
            now,
        );
        self.attempts = self.attempts.saturating_add(1);
        self.auth_failed = false;
    }

    // ---- getters ---------------------------------------------------------------------

    /// The full JID of the established session.
    pub fn jid(&self) -> Option<&Jid> {
        self.conn.jid()
    }

    /// Whether stanzas may flow.
    pub fn is_established(&self) -> bool {
        self.conn.is_established()
    }

    /// Whether the stream has ended.
    pub fn is_closed(&self) -> bool {
        self.conn.is_closed()
    }

    /// The stream error the server ended the current stream with, if it sent one
    /// (e.g. `conflict`, `see-other-host` with the other host, `system-shutdown`).
    pub fn peer_stream_error(&self) -> Option<&StreamError> {
        self.conn.peer_stream_error()
    }

    /// Whether the adapter should read from the socket: `false` while the inbound queue is
    /// full (back-pressure instead of an unbounded buffer) or once the stream is closed.
    pub fn wants_read(&self) -> bool {
        !self.conn.is_closed() && self.inbound.len() < self.options.max_inbound
    }

    /// Requests awaiting their answers.
    pub fn outstanding_iqs(&self) -> usize {
        self.outstanding.len()
    }

    /// Inbound stanzas dropped because the queue was full (a read carried more stanzas than
    /// the queue had room for).
    pub fn dropped_inbound(&self) -> u64 {
        self.dropped_inbound
    }

    /// The options this client was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    // ---- inputs ----------------------------------------------------------------------

    /// Bytes read from the socket.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.conn.handle_input(bytes, now);
        self.pump();
    }

    /// The socket reached end of file or failed.
    pub fn handle_eof(&mut self, now: Instant) {
        self.conn.handle_eof(now);
        self.pump();
    }

    /// The TLS handshake asked for by [`ClientEvent::UpgradeTls`] completed.
    pub fn handle_tls_ready(&mut self, now: Instant) {
        self.conn.handle_tls_ready(now);
        self.pump();
    }

    /// [`Client::handle_tls_ready`] with what the handshake established (the channel
    /// binding lets the client use SCRAM-*-PLUS).
    pub fn handle_tls_ready_with(&mut self, info: elsinore_stream::TlsInfo, now: Instant) {
        self.conn.handle_tls_ready_with(info, now);
        self.pump();
    }

    /// The deadline from [`Client::poll_timeout`] passed (calling it early is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.conn.poll_timeout().is_some_and(|t| t <= now) {
            self.conn.handle_timeout(now);
        }
        let expired: Vec<String> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for key in expired {
            if let Some(o) = self.outstanding.remove(&key) {
                self.events.push_back(ClientEvent::IqResponse {
                    id: o.id,
                    result: Err(IqError::Timeout),
                });
            }
        }
        self.pump();
    }

    // ---- commands --------------------------------------------------------------------

    /// Sends a stanza (message, presence, or an iq whose answer you route yourself).
    pub fn send(&mut self, stanza: &Element) -> Result<(), SendError> {
        self.conn.send(stanza)
    }

    /// Sends an iq `get` or `set` and tracks its answer, reported as
    /// [`ClientEvent::IqResponse`] with the returned id. An `id` attribute is assigned if
    /// the element has none.
    pub fn send_iq(&mut self, mut iq: Element, now: Instant) -> Result<IqId, SendIqError> {
        if iq.name != "iq" || iq.ns != NS_CLIENT || !matches!(iq.attr("type"), Some("get" | "set"))
        {
            return Err(SendIqError::NotARequest);
        }
        if self.outstanding.len() >= self.options.max_outstanding_iqs {
            return Err(SendIqError::TooManyOutstanding);
        }
        if !self.conn.is_established() {
            return Err(SendIqError::Send(SendError::NotEstablished));
        }
        let handle = IqId(self.next_id);
        self.next_id = self.next_id.wrapping_add(1);
        let key = match iq.attr("id") {
            Some(id) => id.to_string(),
            None => {
                let id = format!("{}{}", self.id_prefix, handle.0);
                iq.set_attr("id", id.clone());
                id
            }
        };
        if self.outstanding.contains_key(&key) {
            return Err(SendIqError::DuplicateId);
        }
        // A `to` that is not a JID is bounced by our server without a `from` (it never
        // echoes malformed addresses), which the own-account rule below accepts.
        let to = iq.attr("to").and_then(|t| t.parse::<Jid>().ok());
        self.conn.send(&iq).map_err(SendIqError::Send)?;
        self.outstanding.insert(
            key,
            Outstanding {
                id: handle,
                to,
                deadline: now + self.options.iq_timeout,
            },
        );
        Ok(handle)
    }

    /// XEP-0049: stores `payload` (an element in its own namespace); the answer is an empty
    /// `result` (see [`private::set_request`]).
    pub fn private_set(&mut self, payload: Element, now: Instant) -> Result<IqId, SendIqError> {
        self.send_iq(private::set_request(payload), now)
    }

    /// XEP-0049: asks for what is stored under `name` in `ns`; read the answer with
    /// [`private::parse_get_response`].
    pub fn private_get(&mut self, name: &str, ns: &str, now: Instant) -> Result<IqId, SendIqError> {
        self.send_iq(private::get_request(name, ns), now)
    }

    /// Closes the stream cleanly (`</stream:stream>`), waiting boundedly for the server's.
    /// A closed-by-us stream is not retried.
    pub fn close(&mut self, now: Instant) {
        self.options.reconnect = Reconnect::Never;
        self.conn.close(now);
        self.pump();
    }

    // ---- outputs ---------------------------------------------------------------------

    /// Bytes to write to the socket.
    pub fn pending_transmit(&self) -> &[u8] {
        self.conn.pending_transmit()
    }

    /// `n` bytes of [`Client::pending_transmit`] were written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.conn.advance_transmit(n);
    }

    /// Takes all pending output at once.
    pub fn take_transmit(&mut self) -> Vec<u8> {
        self.conn.take_transmit()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// The next inbound stanza that is not an answer to a tracked request.
    pub fn recv(&mut self) -> Option<Element> {
        self.inbound.pop_front()
    }

    /// When to call [`Client::handle_timeout`]: the stream's deadline or the earliest iq
    /// deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let iq = self.outstanding.values().map(|o| o.deadline).min();
        match (self.conn.poll_timeout(), iq) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ---- internals -------------------------------------------------------------------

    /// Moves the connection's events into ours, deciding what each stanza is.
    fn pump(&mut self) {
        while let Some(event) = self.conn.poll_event() {
            match event {
                Event::UpgradeTls => self.events.push_back(ClientEvent::UpgradeTls),
                Event::Established { jid } => {
                    self.attempts = 0;
                    self.events.push_back(ClientEvent::Established { jid });
                }
                Event::Stanza(stanza) => self.route(stanza),
                Event::Closed { error } => {
                    self.fail_outstanding();
                    // The stream layer reports SASL failures by their condition.
                    self.auth_failed = error.as_deref().is_some_and(is_auth_failure);
                    let retry_in = self.retry_in();
                    self.events
                        .push_back(ClientEvent::Closed { error, retry_in });
                }
                // Server-role events never occur on a client connection.
                _ => {}
            }
        }
    }

    fn route(&mut self, stanza: Element) {
        if let Some((key, error)) = self.match_response(&stanza) {
            if let Some(o) = self.outstanding.remove(&key) {
                let result = match error {
                    None => Ok(stanza),
                    Some(e) => Err(IqError::Stanza(Box::new(e))),
                };
                self.events
                    .push_back(ClientEvent::IqResponse { id: o.id, result });
            }
            return;
        }
        if self.inbound.len() >= self.options.max_inbound {
            self.dropped_inbound = self.dropped_inbound.saturating_add(1);
            return;
        }
        self.inbound.push_back(stanza);
    }

    /// The outstanding key this stanza answers, with its error if it is one.
    fn match_response(&self, stanza: &Element) -> Option<(String, Option<StanzaError>)> {
        if stanza.name != "iq" {
            return None;
        }
        let error = match stanza.attr("type") {
            Some("result") => None,
            Some("error") => Some(stanza_error(stanza)),
            _ => return None,
        };
        let key = stanza.attr("id")?;
        let pending = self.outstanding.get(key)?;
        let from = match stanza.attr("from") {
            None => None,
            Some(f) => Some(f.parse::<Jid>().ok()?),
        };
        self.sender_matches(pending.to.as_ref(), from.as_ref())
            .then(|| (key.to_string(), error))
    }

    /// RFC 6120 §8.1.2.1 / §10.3.3: a request to our own account (no `to`, or our bare
    /// JID) is answered by our server, with no `from`, our bare or full JID, or (as some
    /// servers do) its domain; a request to anyone else is answered from that address.
    fn sender_matches(&self, to: Option<&Jid>, from: Option<&Jid>) -> bool {
        let own = self.conn.jid();
        let own_bare = own.map(Jid::to_bare);
        let to_self = match to {
            None => true,
            Some(t) => t.is_bare() && own_bare.as_ref() == Some(t.bare()),
        };
        if to_self {
            match from {
                None => true,
                Some(f) => {
                    own == Some(f)
                        || (f.is_bare() && own_bare.as_ref() == Some(f.bare()))
                        || (f.is_bare()
                            && f.node().is_none()
                            && own.is_some_and(|o| o.domain() == f.domain()))
                }
            }
        } else {
            to == from
        }
    }

    fn fail_outstanding(&mut self) {
        for (_, o) in core::mem::take(&mut self.outstanding) {
            self.events.push_back(ClientEvent::IqResponse {
                id: o.id,
                result: Err(IqError::Disconnected),
            });
        }
    }

    fn retry_in(&self) -> Option<Duration> {
        match self.options.reconnect {
            Reconnect::Never => None,
            Reconnect::Backoff { .. } if self.auth_failed => None,
            Reconnect::Backoff {
                initial,
                max,
                max_attempts,
            } => {
                if self.attempts >= max_attempts {
                    return None;
                }
                let factor = 1u32.checked_shl(self.attempts.min(31)).unwrap_or(u32::MAX);
                Some(initial.saturating_mul(factor).min(max))
            }
        }
    }
}

/// Whether the stream ended because the server refused our credentials: the stream layer
/// reports a SASL `<failure/>` as "authentication failed: <condition>", and retrying with the
/// same password repeats it.
fn is_auth_failure(error: &str) -> bool {
    error.starts_with("authentication failed")
}

/// The stanza error of an `<iq type='error'>`, leniently: the `<error/>` child in any
/// namespace, `undefined-condition` if there is none.
pub fn stanza_error(stanza: &Element) -> StanzaError {
    let error = stanza
        .get_child("error", NS_CLIENT)
        .or_else(|| stanza.elements().find(|e| e.name == "error"));
    match error {
        Some(e) => StanzaError::from_element(e),
        None => StanzaError::new(elsinore_stanza::DefinedCondition::UndefinedCondition),
    }
}
