//! One server-to-server (`jabber:server`) stream, initiating or receiving role.
//!
//! Authentication is either SASL EXTERNAL over TLS, when the adapter verified the peer's
//! certificate for the domain (XEP-0178), or server dialback (draft-ietf-xmpp-core-11 6.2,
//! XEP-0220) with keys from XEP-0185's construction. Stanzas cross the owner boundary in the
//! `jabber:client` namespace (the server core's), and are rewritten to `jabber:server` on
//! the wire.
//!
//! Roles, in the dialback vocabulary: an *initiating* stream goes from us (Originating
//! Server) to a peer (Receiving Server) and carries our stanzas; it also carries our
//! `<db:verify/>` requests when we check a key for someone who connected to us. A
//! *receiving* stream accepts stanzas from the domains authenticated on it, and answers
//! `<db:verify/>` requests for keys we issued (we are the Authoritative Server of our domain).

use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use elsinore_jid::Jid;
use elsinore_stanza::{
    NS_CLIENT, NS_DIALBACK, NS_SASL, NS_SERVER, NS_STREAM, NS_TLS, StreamError,
    StreamErrorCondition,
};
use elsinore_xml::{Element, Node, StreamHeader, StreamParser, XmlEvent};

use crate::connection::{
    EncodingCheck, StreamVersion, decode_sasl_data, domain_eq, encoding_error, stream_error_for,
    stream_version, whitespace_prefix,
};
use crate::{Instant, Limits, Rng, SendError, TlsPolicy};

/// The stream feature announcing dialback (XEP-0220 section 2.5).
pub const NS_DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";

/// `<db:verify/>` requests one initiating stream holds while it is not ready to send them.
const MAX_PENDING_VERIFIES: usize = 64;
/// Domains one receiving stream may authenticate (piggybacking is limited to this).
const MAX_DOMAINS: usize = 8;
/// Longest dialback key accepted (ours are 64 hex digits).
const MAX_KEY_LEN: usize = 256;

/// Configuration of both s2s roles.
#[derive(Debug, Clone)]
pub struct S2sConfig {
    /// Our domain.
    pub domain: String,
    /// STARTTLS policy. `Required` refuses authentication before TLS in both roles.
    pub tls: TlsPolicy,
    /// Whether dialback is offered and used (SASL EXTERNAL needs verified certificates).
    pub dialback: bool,
    /// Secret of our dialback keys (XEP-0185); kept across restarts so that keys
    /// issued before a restart still verify.
    pub secret: [u8; 32],
    /// Domains no longer hosted here: a stream addressed to one gets `host-gone`
    /// instead of `host-unknown` (RFC 6120 4.9.3.5).
    pub gone_domains: Vec<String>,
    /// An established stream with no element either way for this long is closed with
    /// the close handshake (whitespace keepalives do not count). Outgoing streams also
    /// send a whitespace keepalive after [`Limits::keepalive_interval`] of silence.
    pub idle_timeout: Duration,
}

/// Default of [`S2sConfig::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(600);

impl S2sConfig {
    /// Defaults for `domain`: TLS optional, dialback on, with `secret`.
    pub fn new(domain: impl Into<String>, secret: [u8; 32]) -> Self {
        S2sConfig {
            domain: domain.into(),
            tls: TlsPolicy::Optional,
            dialback: true,
            secret,
            gone_domains: Vec::new(),
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
        }
    }
}

/// How a domain was authenticated on a stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S2sAuth {
    /// SASL EXTERNAL with a certificate the adapter verified.
    External,
    /// Server dialback.
    Dialback,
}

/// What happened on an s2s stream, drained with [`S2sConnection::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum S2sEvent {
    /// Flush all pending output, run the TLS handshake (client side for an
    /// initiating stream, server side for a receiving one), then call
    /// [`S2sConnection::handle_tls_ready`].
    UpgradeTls,
    /// Receiving role: a peer claims `from` with a dialback key. Ask `from`'s
    /// authoritative server (an initiating stream's [`S2sConnection::send_verify`]),
    /// then answer with [`S2sConnection::dialback_result`].
    VerifyRequest {
        /// The domain the peer claims (the Originating Server).
        from: String,
        /// Our domain as the peer addressed it.
        to: String,
        /// The id of this stream (part of the key).
        stream_id: String,
        /// The key to check.
        key: String,
    },
    /// Initiating role: the answer to a [`S2sConnection::send_verify`].
    Verified {
        /// The domain whose key was checked (the peer of this stream).
        from: String,
        /// The stream id the key was for.
        stream_id: String,
        /// Whether the key is valid.
        valid: bool,
    },
    /// A domain is authenticated. Initiating role: we may now send stanzas from our
    /// domain to the peer. Receiving role: the peer may send stanzas from `domain`.
    Authenticated {
        /// The authenticated domain (the peer's, receiving role; the peer's we talk to, initiating).
        domain: String,
        /// How.
        method: S2sAuth,
    },
    /// Receiving role: a stanza whose addresses were checked (`from` in an
    /// authenticated domain, `to` in ours), in the `jabber:client` namespace.
    Stanza(Element),
    /// The stream is closed; write out what is pending, then close the socket.
    Closed {
        /// Why, when it was not a clean close.
        error: Option<String>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Initiating,
    Receiving,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's stream header.
    AwaitHeader,
    /// Receiving: header and features sent. Initiating: waiting for features.
    Negotiating,
    /// Initiating: `<starttls/>` sent.
    AwaitProceed,
    /// `<proceed/>` exchanged: no more plaintext may arrive.
    TlsPending,
    /// Initiating: `<auth mechanism='EXTERNAL'/>` sent.
    AwaitSasl,
    /// Initiating: `<db:result/>` sent, waiting for its verdict.
    AwaitDialback,
    /// Initiating: authenticated, stanzas may be sent. Receiving: at least one
    /// domain authenticated.
    Established,
    /// Our `</stream:stream>` is sent.
    Closing,
    /// Finished.
    Closed,
}

/// One s2s stream (see the module documentation).
#[derive(Debug)]
pub struct S2sConnection {
    role: Role,
    config: S2sConfig,
    limits: Limits,
    rng: Rng,
    parser: StreamParser,
    encoding: EncodingCheck,
    state: State,
    out: Vec<u8>,
    /// Bytes taken by [`S2sConnection::take_transmit`] that the adapter has not reported
    /// written ([`S2sConnection::handle_written`]): with `out`, what the peer has not read.
    unwritten: usize,
    events: VecDeque<S2sEvent>,
    restart: bool,
    /// After a restart, until the first other byte: whitespace is dropped.
    restart_whitespace: bool,
    header_sent: bool,
    tls_done: bool,
    /// Domains the adapter verified in the peer's certificate.
    verified: Vec<String>,
    /// Initiating: the peer's domain. Receiving: the `from` of the peer's header.
    peer: Option<String>,
    stream_id: Option<String>,
    /// Receiving: domains authenticated on this stream.
    authenticated: Vec<String>,
    /// Receiving: domains whose dialback verification is in progress.
    verifying: Vec<String>,
    /// SASL EXTERNAL succeeded (the stream restarted or is about to).
    sasl_done: bool,
    /// Initiating: `<db:verify/>` requests waiting until the stream can carry them.
    pending_verifies: VecDeque<Element>,
    /// Initiating: the stream ids of `<db:verify/>` requests sent or held and not yet
    /// answered; an answer naming another id is `invalid-id` (draft 6.2.1 step 8).
    awaited_ids: VecDeque<String>,
    /// Initiating: whether the peer offers dialback (or is pre-1.0, where it is implied).
    peer_dialback: bool,
    auth_failures: u32,
    negotiation_deadline: Option<Instant>,
    close_deadline: Option<Instant>,
    timed_out: bool,
    /// Last element received or stanza sent: the idle timeout counts from here.
    last_activity: Instant,
    /// Last element either way or keepalive sent: the keepalive counts from here.
    last_traffic: Instant,
}

impl S2sConnection {
    /// An initiating stream from our domain to `remote`; its header is queued at once.
    pub fn new_initiating(
        config: S2sConfig,
        remote: &str,
        limits: Limits,
        seed: [u8; 32],
        now: Instant,
    ) -> Self {
        let mut c = Self::new(Role::Initiating, config, limits, seed, now);
        c.peer = Some(remote.to_string());
        c.send_header();
        c
    }

    /// A receiving stream; it waits for the peer's header.
    pub fn new_receiving(config: S2sConfig, limits: Limits, seed: [u8; 32], now: Instant) -> Self {
        Self::new(Role::Receiving, config, limits, seed, now)
    }

    fn new(role: Role, config: S2sConfig, limits: Limits, seed: [u8; 32], now: Instant) -> Self {
        S2sConnection {
            role,
            parser: StreamParser::new(limits.xml),
            encoding: EncodingCheck::default(),
            negotiation_deadline: Some(now + limits.negotiation_timeout),
            config,
            limits,
            rng: Rng::new(seed),
            state: State::AwaitHeader,
            out: Vec::new(),
            unwritten: 0,
            events: VecDeque::new(),
            restart: false,
            restart_whitespace: false,
            header_sent: false,
            tls_done: false,
            verified: Vec::new(),
            peer: None,
            stream_id: None,
            authenticated: Vec::new(),
            verifying: Vec::new(),
            sasl_done: false,
            pending_verifies: VecDeque::new(),
            awaited_ids: VecDeque::new(),
            peer_dialback: false,
            auth_failures: 0,
            close_deadline: None,
            timed_out: false,
            last_activity: now,
            last_traffic: now,
        }
    }

    // ---- getters -------------------------------------------------------

    /// Whether this is an initiating (outgoing) stream.
    pub fn is_initiating(&self) -> bool {
        self.role == Role::Initiating
    }

    /// Initiating: the peer domain. Receiving: the `from` of the peer's header.
    pub fn peer(&self) -> Option<&str> {
        self.peer.as_deref()
    }

    /// Whether stanzas may flow (initiating: we may send; receiving: a domain is authenticated).
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether our `</stream:stream>` is sent and the peer's awaited: nothing more
    /// may be sent, stanzas from the peer are still read.
    pub fn is_closing(&self) -> bool {
        self.state == State::Closing
    }

    /// When the last element arrived or the last stanza was sent (the idle clock).
    pub fn last_activity(&self) -> Instant {
        self.last_activity
    }

    /// Whether the stream is finished.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether TLS is in place.
    pub fn is_tls(&self) -> bool {
        self.tls_done
    }

    /// Receiving role: the domains authenticated on this stream.
    pub fn authenticated_domains(&self) -> &[String] {
        &self.authenticated
    }

    /// The stream id (ours when receiving, the peer's when initiating).
    pub fn stream_id(&self) -> Option<&str> {
        self.stream_id.as_deref()
    }

    /// Whether the stream ended because negotiation took too long.
    pub fn timed_out(&self) -> bool {
        self.timed_out
    }

    // ---- inputs --------------------------------------------------------

    /// Bytes read from the peer. Any split of the byte stream gives the same result.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        let Ok(mut buf) = self.encoding.strip(bytes) else {
            return self.fail(encoding_error());
        };
        while !buf.is_empty() {
            match self.state {
                State::Closed => return,
                State::TlsPending => {
                    // Whitespace between elements is harmless (and some peers write
                    // `<starttls/>\n` at once); anything else is the STARTTLS command
                    // injection attack.
                    let ws = whitespace_prefix(buf);
                    if ws > 0 {
                        buf = buf.get(ws..).unwrap_or_default();
                        continue;
                    }
                    self.fail(
                        StreamError::new(StreamErrorCondition::PolicyViolation)
                            .with_text("data after <proceed/> before the TLS handshake"),
                    );
                    return;
                }
                _ => {}
            }
            if self.restart {
                self.restart = false;
                self.parser.reset();
                self.restart_whitespace = true;
            }
            if self.restart_whitespace {
                // Whitespace after the peer's last element of the old stream is not
                // part of the new document (where an XML declaration must come first).
                let ws = whitespace_prefix(buf);
                buf = buf.get(ws..).unwrap_or_default();
                if buf.is_empty() {
                    return;
                }
                self.restart_whitespace = false;
            }
            match self.parser.parse(&mut buf) {
                Ok(Some(ev)) => self.on_xml(ev, now),
                Ok(None) => return,
                Err(e) => {
                    self.fail(stream_error_for(&e));
                    return;
                }
            }
        }
    }

    /// The peer closed the byte stream.
    pub fn handle_eof(&mut self, _now: Instant) {
        match self.state {
            State::Closed => {}
            State::Closing => self.finish(None),
            _ => self.finish(Some(
                "connection closed by peer without closing the stream".into(),
            )),
        }
    }

    /// The TLS handshake asked for by [`S2sEvent::UpgradeTls`] completed. `verified`:
    /// the domains the peer's certificate was verified for (empty when it presented
    /// none or it did not verify). Only these may authenticate with SASL EXTERNAL; an
    /// initiating stream uses EXTERNAL only when the peer's domain is among them.
    pub fn handle_tls_ready(&mut self, verified: Vec<String>, _now: Instant) {
        if self.state != State::TlsPending {
            return;
        }
        self.tls_done = true;
        self.verified = verified.into_iter().take(MAX_DOMAINS).collect();
        self.parser.reset();
        self.state = State::AwaitHeader;
        self.header_sent = false;
        if self.role == Role::Initiating {
            self.send_header();
        }
    }

    /// A deadline from [`S2sConnection::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Some(d) = self.close_deadline
            && now >= d
        {
            self.close_deadline = None;
            self.finish(Some("peer did not close the stream in time".into()));
            return;
        }
        if let Some(d) = self.negotiation_deadline
            && now >= d
            && !self.is_closed()
        {
            self.negotiation_deadline = None;
            self.timed_out = true;
            self.fail(
                StreamError::new(StreamErrorCondition::ConnectionTimeout)
                    .with_text("server-to-server negotiation took too long"),
            );
            return;
        }
        if self.state != State::Established {
            return;
        }
        if now >= self.last_activity + self.config.idle_timeout {
            // Idle: end cleanly; the owner opens a new stream when one is needed again.
            return self.close(now);
        }
        if self.role == Role::Initiating
            && now >= self.last_traffic + self.limits.keepalive_interval
        {
            // Whitespace between elements is allowed (draft 4.6): keeps NAT and firewall
            // state, and makes a vanished peer show up as a write error.
            self.out.push(b' ');
            self.last_traffic = now;
        }
    }

    // ---- commands ------------------------------------------------------

    /// Initiating role: send a stanza (in `jabber:client`, rewritten to `jabber:server`).
    pub fn send(&mut self, stanza: &Element, now: Instant) -> Result<(), SendError> {
        if self.role != Role::Initiating || self.state != State::Established {
            return Err(SendError::NotEstablished);
        }
        let el = rename_ns(stanza.clone(), NS_CLIENT, NS_SERVER);
        let mark = self.out.len();
        el.write_to(&mut self.out, NS_SERVER);
        if self.unsent() > self.limits.max_unsent_bytes {
            // All or nothing: a stanza cut short would break the stream, and the caller
            // can still bounce a stanza that was not sent.
            self.out.truncate(mark);
            return Err(SendError::Backlog);
        }
        self.last_activity = now;
        self.last_traffic = now;
        Ok(())
    }

    /// Initiating role: ask the peer (the authoritative server of its domain) whether
    /// `key` is valid for a stream with id `stream_id` that the peer's domain opened to
    /// us. Held until the stream can carry it; answered by [`S2sEvent::Verified`].
    pub fn send_verify(
        &mut self,
        stream_id: &str,
        key: &str,
        now: Instant,
    ) -> Result<(), SendError> {
        if self.role != Role::Initiating || matches!(self.state, State::Closing | State::Closed) {
            return Err(SendError::NotEstablished);
        }
        if self.pending_verifies.len() >= MAX_PENDING_VERIFIES
            || self.awaited_ids.len() >= MAX_PENDING_VERIFIES
        {
            return Err(SendError::Backlog);
        }
        let peer = self.peer.clone().unwrap_or_default();
        let el = Element::new("verify", NS_DIALBACK)
            .with_attr("from", self.config.domain.clone())
            .with_attr("to", peer)
            .with_attr("id", stream_id)
            .with_text(key);
        self.pending_verifies.push_back(el);
        self.awaited_ids.push_back(stream_id.to_string());
        // Its answer is awaited: not idle.
        self.last_activity = self.last_activity.max(now);
        if self.can_carry_verify() {
            self.flush_verifies();
        }
        Ok(())
    }

    /// Receiving role: the verdict on a [`S2sEvent::VerifyRequest`] for `domain`.
    pub fn dialback_result(&mut self, domain: &str, valid: bool, now: Instant) {
        let Some(pos) = self.verifying.iter().position(|d| d == domain) else {
            return;
        };
        self.verifying.swap_remove(pos);
        if self.is_closed() || self.state == State::Closing {
            return;
        }
        let el = Element::new("result", NS_DIALBACK)
            .with_attr("from", self.config.domain.clone())
            .with_attr("to", domain)
            .with_attr("type", if valid { "valid" } else { "invalid" });
        el.write_to(&mut self.out, NS_SERVER);
        self.last_activity = now;
        self.last_traffic = now;
        if valid {
            self.authenticate(domain.to_string(), S2sAuth::Dialback);
        } else {
            // draft 6.2.1 step 10: an invalid connection is terminated.
            self.fail(
                StreamError::new(StreamErrorCondition::NotAuthorized)
                    .with_text("dialback key is not valid"),
            );
        }
    }

    /// Receiving role: the authoritative server of `domain` could not be asked.
    pub fn dialback_failed(&mut self, domain: &str) {
        let Some(pos) = self.verifying.iter().position(|d| d == domain) else {
            return;
        };
        self.verifying.swap_remove(pos);
        self.fail(
            StreamError::new(StreamErrorCondition::RemoteConnectionFailed)
                .with_text("could not reach the authoritative server to verify the key"),
        );
    }

    /// Send a stream error and close the stream.
    pub fn send_stream_error(&mut self, error: StreamError) {
        self.fail(error);
    }

    /// Close the stream cleanly: `</stream:stream>`, then wait for the peer's.
    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::Closed | State::Closing => {}
            _ if !self.header_sent => self.finish(None),
            _ => {
                elsinore_xml::write_stream_close(&mut self.out);
                self.state = State::Closing;
                self.close_deadline = Some(now + self.limits.close_timeout);
            }
        }
    }

    // ---- outputs -------------------------------------------------------

    /// Take all pending output. It counts as unsent (toward
    /// [`Limits::max_unsent_bytes`], which [`S2sConnection::send`] keeps stanzas within)
    /// until reported with [`S2sConnection::handle_written`].
    pub fn take_transmit(&mut self) -> Vec<u8> {
        self.unwritten = self.unwritten.saturating_add(self.out.len());
        core::mem::take(&mut self.out)
    }

    /// `n` bytes taken by [`S2sConnection::take_transmit`] were written to the peer.
    pub fn handle_written(&mut self, n: usize) {
        self.unwritten = self.unwritten.saturating_sub(n);
    }

    /// Output the peer has not read yet: taken and not reported written, or not taken.
    pub fn unsent(&self) -> usize {
        self.unwritten.saturating_add(self.out.len())
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<S2sEvent> {
        self.events.pop_front()
    }

    /// When to call [`S2sConnection::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let (idle, keepalive) = if self.state == State::Established {
            let keepalive = (self.role == Role::Initiating)
                .then(|| self.last_traffic + self.limits.keepalive_interval);
            (
                Some(self.last_activity + self.config.idle_timeout),
                keepalive,
            )
        } else {
            (None, None)
        };
        [
            self.negotiation_deadline,
            self.close_deadline,
            idle,
            keepalive,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- internals -----------------------------------------------------

    fn write(&mut self, el: &Element) {
        el.write_to(&mut self.out, NS_SERVER);
    }

    fn fail(&mut self, error: StreamError) {
        if self.state == State::Closed {
            return;
        }
        if !self.header_sent {
            // A stream error needs an open stream: open ours first.
            self.send_header();
        }
        let text = error.to_string();
        self.write(&error.to_element());
        elsinore_xml::write_stream_close(&mut self.out);
        self.finish(Some(text));
    }

    fn finish(&mut self, error: Option<String>) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.negotiation_deadline = None;
        self.close_deadline = None;
        self.events.push_back(S2sEvent::Closed { error });
    }

    /// Initiating: end our side cleanly and report why.
    fn give_up(&mut self, msg: String) {
        elsinore_xml::write_stream_close(&mut self.out);
        self.finish(Some(msg));
    }

    /// Our stream header; `version='1.0'` unless we answer a pre-1.0 peer (RFC 6120 4.7.5:
    /// the lower of the two versions; a header without one is pre-1.0).
    fn send_header_versioned(&mut self, with_version: bool) {
        let mut header = StreamHeader::new(NS_SERVER)
            .with_attr("xmlns:db", NS_DIALBACK)
            .with_attr("from", self.config.domain.clone());
        if with_version {
            header = header.with_attr("version", "1.0");
        }
        if let Some(peer) = &self.peer {
            header = header.with_attr("to", peer.clone());
        }
        if self.role == Role::Receiving {
            let id = self.rng.token(20);
            header = header.with_attr("id", id.clone());
            self.stream_id = Some(id);
        }
        header.write_to(&mut self.out);
        self.header_sent = true;
    }

    fn send_header(&mut self) {
        self.send_header_versioned(true);
    }

    fn on_xml(&mut self, ev: XmlEvent, now: Instant) {
        match ev {
            // s2s streams never ask for raw elements; should one come, it is a tree.
            XmlEvent::Raw(raw) => match raw.to_element() {
                Ok(el) => self.on_xml(XmlEvent::Element(el), now),
                Err(e) => self.fail(crate::connection::stream_error_for(&e)),
            },
            XmlEvent::StreamOpen(header) => self.on_header(header),
            XmlEvent::StreamClose => {
                if self.state != State::Closing {
                    elsinore_xml::write_stream_close(&mut self.out);
                }
                self.finish(None);
            }
            XmlEvent::Element(el) => {
                self.last_activity = now;
                self.last_traffic = now;
                if self.state == State::AwaitHeader {
                    return self.fail(
                        StreamError::new(StreamErrorCondition::BadFormat)
                            .with_text("element before the stream header"),
                    );
                }
                if el.is("error", NS_STREAM) {
                    let text = match StreamError::from_element(&el) {
                        Ok(e) => e.to_string(),
                        Err(_) => "unparseable stream error".to_string(),
                    };
                    elsinore_xml::write_stream_close(&mut self.out);
                    self.finish(Some(format!("peer sent stream error: {text}")));
                    return;
                }
                match self.role {
                    Role::Initiating => self.on_element_initiating(el),
                    Role::Receiving => self.on_element_receiving(el, now),
                }
            }
        }
    }

    fn on_header(&mut self, header: StreamHeader) {
        if self.state != State::AwaitHeader {
            return self.fail(
                StreamError::new(StreamErrorCondition::BadFormat)
                    .with_text("unexpected stream header"),
            );
        }
        let stream_ok = header.is_stream();
        let ns_ok = header.default_ns.as_deref() == Some(NS_SERVER);
        let version = stream_version(header.attr("version"));
        let unsupported_version = || {
            StreamError::new(StreamErrorCondition::UnsupportedVersion)
                .with_text("this server speaks XMPP 1.0 and pre-1.0 streams")
        };
        match self.role {
            Role::Receiving => {
                if let Some(from) = header.attr("from")
                    && self.peer.is_none()
                    && valid_domain(from)
                {
                    self.peer = Some(from.to_ascii_lowercase());
                }
                let to_ok = header
                    .attr("to")
                    .is_none_or(|to| domain_eq(to, &self.config.domain));
                self.send_header_versioned(version != StreamVersion::Legacy);
                if !stream_ok || !ns_ok {
                    return self.fail(
                        StreamError::new(StreamErrorCondition::InvalidNamespace)
                            .with_text("expected a jabber:server stream"),
                    );
                }
                if !to_ok {
                    let gone = header.attr("to").is_some_and(|to| {
                        self.config.gone_domains.iter().any(|d| domain_eq(to, d))
                    });
                    return self.fail(if gone {
                        StreamError::new(StreamErrorCondition::HostGone)
                            .with_text("this server no longer serves that domain")
                    } else {
                        StreamError::new(StreamErrorCondition::HostUnknown)
                            .with_text("this server does not serve that domain")
                    });
                }
                if let Some(from) = header.attr("from")
                    && self.peer.as_deref() != Some(&from.to_ascii_lowercase())
                {
                    return self.fail(
                        StreamError::new(StreamErrorCondition::InvalidFrom)
                            .with_text("the stream's from changed or is not a domain"),
                    );
                }
                if version == StreamVersion::Unsupported {
                    return self.fail(unsupported_version());
                }
                self.state = if self.authenticated.is_empty() {
                    State::Negotiating
                } else {
                    State::Established
                };
                if version == StreamVersion::V1 {
                    self.send_features();
                }
            }
            Role::Initiating => {
                if !stream_ok || !ns_ok {
                    return self.fail(
                        StreamError::new(StreamErrorCondition::InvalidNamespace)
                            .with_text("peer did not open a jabber:server stream"),
                    );
                }
                self.stream_id = header.attr("id").map(str::to_string);
                match version {
                    StreamVersion::V1 => self.state = State::Negotiating,
                    StreamVersion::Legacy => {
                        // Pre-1.0 peer: no features; dialback is the only way.
                        self.peer_dialback = true;
                        self.start_dialback();
                    }
                    StreamVersion::Unsupported => self.fail(unsupported_version()),
                }
            }
        }
    }

    fn send_features(&mut self) {
        let mut features = Element::new("features", NS_STREAM);
        if self.sasl_done {
            // After SASL: nothing more to negotiate (XEP-0178 step 12).
            self.write(&features);
            return;
        }
        if self.config.tls != TlsPolicy::Disabled && !self.tls_done {
            let mut st = Element::new("starttls", NS_TLS);
            if self.config.tls == TlsPolicy::Required {
                st = st.with_child(Element::new("required", NS_TLS));
            }
            features = features.with_child(st);
        }
        let auth_ok = self.tls_done || self.config.tls != TlsPolicy::Required;
        if auth_ok && self.tls_done && !self.verified.is_empty() {
            features = features.with_child(
                Element::new("mechanisms", NS_SASL)
                    .with_child(Element::new("mechanism", NS_SASL).with_text("EXTERNAL")),
            );
        }
        if auth_ok && self.config.dialback {
            // No `<errors/>`: we never send XEP-0220 dialback errors, since a failed
            // verification is a stream error (draft 6.2, remote-connection-failed).
            features = features.with_child(Element::new("dialback", NS_DIALBACK_FEATURE));
        }
        self.write(&features);
    }

    // ---- initiating role -------------------------------------------------

    fn on_element_initiating(&mut self, el: Element) {
        match self.state {
            State::Negotiating if el.is("features", NS_STREAM) => self.on_features(&el),
            State::AwaitProceed if el.is("proceed", NS_TLS) => {
                self.state = State::TlsPending;
                self.events.push_back(S2sEvent::UpgradeTls);
            }
            State::AwaitProceed if el.is("failure", NS_TLS) => {
                self.give_up("peer refused STARTTLS".into());
            }
            State::AwaitSasl if el.is("success", NS_SASL) => {
                // Restart; the features after it complete the authentication.
                self.sasl_done = true;
                self.restart = true;
                self.state = State::AwaitHeader;
                self.send_header();
            }
            State::AwaitSasl if el.is("failure", NS_SASL) => {
                // XEP-0178: without EXTERNAL, dialback may still work.
                if self.config.dialback && self.peer_dialback {
                    self.start_dialback();
                } else {
                    self.give_up("peer refused SASL EXTERNAL".into());
                }
            }
            _ if el.is("result", NS_DIALBACK) => self.on_result_verdict(&el),
            _ if el.is("verify", NS_DIALBACK) => self.on_verify_answer(&el),
            State::Negotiating
            | State::AwaitHeader
            | State::AwaitProceed
            | State::AwaitSasl
            | State::AwaitDialback => self.fail(
                StreamError::new(StreamErrorCondition::UnsupportedStanzaType).with_text(format!(
                    "unexpected <{}/> in namespace '{}' during negotiation",
                    el.name, el.ns
                )),
            ),
            // Stanzas on our outgoing stream: the peer must use its own stream to us.
            _ => {}
        }
    }

    fn on_features(&mut self, features: &Element) {
        let starttls = features.get_child("starttls", NS_TLS).is_some();
        self.peer_dialback = features
            .get_child("dialback", NS_DIALBACK_FEATURE)
            .is_some();
        if starttls && !self.tls_done && self.config.tls != TlsPolicy::Disabled {
            self.write(&Element::new("starttls", NS_TLS));
            self.state = State::AwaitProceed;
            return;
        }
        if !self.tls_done && self.config.tls == TlsPolicy::Required {
            return self.give_up("peer offers no STARTTLS and TLS is required".into());
        }
        let peer = self.peer.clone().unwrap_or_default();
        if self.sasl_done {
            return self.established(peer, S2sAuth::External);
        }
        let external = features.get_child("mechanisms", NS_SASL).is_some_and(|m| {
            m.elements()
                .any(|c| c.is("mechanism", NS_SASL) && c.text().trim() == "EXTERNAL")
        });
        // EXTERNAL only when we verified the peer's certificate for its domain:
        // otherwise the peer might not be who we think it is.
        let peer_verified = self.verified.iter().any(|d| domain_eq(d, &peer));
        if external && self.tls_done && peer_verified {
            let authzid = B64.encode(self.config.domain.as_bytes());
            self.write(
                &Element::new("auth", NS_SASL)
                    .with_attr("mechanism", "EXTERNAL")
                    .with_text(authzid),
            );
            self.state = State::AwaitSasl;
            return;
        }
        if self.config.dialback {
            return self.start_dialback();
        }
        self.give_up("no common authentication method (dialback is disabled)".into());
    }

    fn start_dialback(&mut self) {
        let (Some(peer), Some(id)) = (self.peer.clone(), self.stream_id.clone()) else {
            return self.fail(
                StreamError::new(StreamErrorCondition::BadFormat)
                    .with_text("no stream id to compute a dialback key"),
            );
        };
        let key = dialback_key(&self.config.secret, &peer, &self.config.domain, &id);
        let el = Element::new("result", NS_DIALBACK)
            .with_attr("from", self.config.domain.clone())
            .with_attr("to", peer)
            .with_text(key);
        self.write(&el);
        self.state = State::AwaitDialback;
        self.flush_verifies();
    }

    fn can_carry_verify(&self) -> bool {
        matches!(self.state, State::AwaitDialback | State::Established)
    }

    fn flush_verifies(&mut self) {
        while let Some(v) = self.pending_verifies.pop_front() {
            self.write(&v);
        }
    }

    fn on_result_verdict(&mut self, el: &Element) {
        if self.state != State::AwaitDialback {
            return;
        }
        let peer = self.peer.clone().unwrap_or_default();
        let addressed = el.attr("from").is_none_or(|f| domain_eq(f, &peer))
            && el
                .attr("to")
                .is_none_or(|t| domain_eq(t, &self.config.domain));
        if !addressed {
            return self.fail(
                StreamError::new(StreamErrorCondition::InvalidFrom)
                    .with_text("dialback result for other domains"),
            );
        }
        match el.attr("type") {
            Some("valid") => self.established(peer, S2sAuth::Dialback),
            Some("error") => self.give_up("peer could not verify our dialback key".into()),
            _ => self.give_up("peer found our dialback key invalid".into()),
        }
    }

    fn established(&mut self, peer: String, method: S2sAuth) {
        self.state = State::Established;
        self.negotiation_deadline = None;
        self.events.push_back(S2sEvent::Authenticated {
            domain: peer,
            method,
        });
        self.flush_verifies();
    }

    fn on_verify_answer(&mut self, el: &Element) {
        let peer = self.peer.clone().unwrap_or_default();
        if el.attr("from").is_some_and(|f| !domain_eq(f, &peer)) {
            return self.fail(
                StreamError::new(StreamErrorCondition::InvalidFrom)
                    .with_text("dialback verification from another domain"),
            );
        }
        if el
            .attr("to")
            .is_some_and(|t| !domain_eq(t, &self.config.domain))
        {
            return self.fail(
                StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text("dialback verification for a domain we do not serve"),
            );
        }
        let Some(id) = el.attr("id") else {
            return self.fail(
                StreamError::new(StreamErrorCondition::BadFormat)
                    .with_text("dialback verification without an id"),
            );
        };
        let Some(pos) = self.awaited_ids.iter().position(|a| a == id) else {
            return self.fail(
                // The draft's `invalid-id`, which RFC 6120 dropped for `not-authorized`.
                StreamError::new(StreamErrorCondition::NotAuthorized)
                    .with_text("dialback verification for a stream id we did not ask about"),
            );
        };
        self.awaited_ids.remove(pos);
        self.events.push_back(S2sEvent::Verified {
            from: peer,
            stream_id: id.to_string(),
            valid: el.attr("type") == Some("valid"),
        });
    }

    // ---- receiving role ---------------------------------------------------

    fn on_element_receiving(&mut self, el: Element, now: Instant) {
        if el.is("starttls", NS_TLS) {
            if self.tls_done || self.config.tls == TlsPolicy::Disabled || self.sasl_done {
                self.write(&Element::new("failure", NS_TLS));
                elsinore_xml::write_stream_close(&mut self.out);
                return self.finish(Some("unexpected STARTTLS".into()));
            }
            self.write(&Element::new("proceed", NS_TLS));
            self.state = State::TlsPending;
            self.events.push_back(S2sEvent::UpgradeTls);
            return;
        }
        if el.is("auth", NS_SASL) {
            return self.on_auth(&el);
        }
        if el.is("result", NS_DIALBACK) {
            return self.on_result_request(&el);
        }
        if el.is("verify", NS_DIALBACK) {
            return self.on_verify_request(&el);
        }
        if el.ns == NS_SERVER && matches!(el.name.as_str(), "message" | "presence" | "iq") {
            return self.on_stanza(el);
        }
        let _ = now;
        self.fail(
            StreamError::new(StreamErrorCondition::UnsupportedStanzaType).with_text(format!(
                "unexpected <{}/> in namespace '{}'",
                el.name, el.ns
            )),
        );
    }

    fn auth_allowed(&self) -> bool {
        self.tls_done || self.config.tls != TlsPolicy::Required
    }

    fn on_auth(&mut self, el: &Element) {
        if self.sasl_done {
            return self.fail(
                StreamError::new(StreamErrorCondition::PolicyViolation)
                    .with_text("SASL is already done on this stream"),
            );
        }
        let sasl_failure = |c: &mut Self, cond: &str| {
            c.write(&Element::new("failure", NS_SASL).with_child(Element::new(cond, NS_SASL)));
            c.auth_failures += 1;
            if c.auth_failures >= c.limits.max_auth_failures {
                c.fail(
                    StreamError::new(StreamErrorCondition::PolicyViolation)
                        .with_text("too many failed authentication attempts"),
                );
            }
        };
        if el.attr("mechanism") != Some("EXTERNAL") || !self.tls_done || self.verified.is_empty() {
            return sasl_failure(self, "invalid-mechanism");
        }
        // The authorization identity, or the header's `from` when it is empty (XEP-0178).
        let authzid = match decode_sasl_data(&el.text()) {
            Err(()) => return sasl_failure(self, "incorrect-encoding"),
            Ok(Some(bytes)) if !bytes.is_empty() => match String::from_utf8(bytes) {
                Ok(s) => Some(s.to_ascii_lowercase()),
                Err(_) => return sasl_failure(self, "incorrect-encoding"),
            },
            Ok(_) => None,
        };
        let domain = match (authzid, self.peer.clone()) {
            (Some(a), Some(p)) if a != p => return sasl_failure(self, "invalid-authzid"),
            (Some(a), _) | (None, Some(a)) => a,
            (None, None) => return sasl_failure(self, "invalid-authzid"),
        };
        // Never our own domain: a peer presenting a certificate for it is not us.
        if !valid_domain(&domain)
            || !self.verified.iter().any(|d| domain_eq(d, &domain))
            || domain_eq(&domain, &self.config.domain)
        {
            return sasl_failure(self, "not-authorized");
        }
        self.write(&Element::new("success", NS_SASL));
        self.sasl_done = true;
        self.peer = Some(domain.clone());
        self.restart = true;
        self.state = State::AwaitHeader;
        self.header_sent = false;
        self.authenticate(domain, S2sAuth::External);
        // The header answer comes after the peer's restart; the state then is Established.
        self.state = State::AwaitHeader;
    }

    fn authenticate(&mut self, domain: String, method: S2sAuth) {
        if !self.authenticated.contains(&domain) {
            self.authenticated.push(domain.clone());
        }
        self.negotiation_deadline = None;
        self.state = State::Established;
        self.events
            .push_back(S2sEvent::Authenticated { domain, method });
    }

    fn on_result_request(&mut self, el: &Element) {
        if !self.config.dialback {
            return self.fail(
                StreamError::new(StreamErrorCondition::NotAuthorized)
                    .with_text("dialback is disabled on this server"),
            );
        }
        if !self.auth_allowed() {
            return self.fail(
                StreamError::new(StreamErrorCondition::NotAuthorized)
                    .with_text("TLS is required before dialback"),
            );
        }
        let (Some(from), Some(to)) = (el.attr("from"), el.attr("to")) else {
            return self.fail(
                StreamError::new(StreamErrorCondition::ImproperAddressing)
                    .with_text("db:result needs from and to"),
            );
        };
        if !domain_eq(to, &self.config.domain) {
            return self.fail(
                StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text("this server does not serve that domain"),
            );
        }
        let from = from.to_ascii_lowercase();
        if !valid_domain(&from) {
            return self.fail(
                StreamError::new(StreamErrorCondition::InvalidFrom)
                    .with_text("db:result from is not a domain"),
            );
        }
        if domain_eq(&from, &self.config.domain) {
            // Only we can speak for our domain: verifying would mean dialing ourselves.
            return self.fail(
                StreamError::new(StreamErrorCondition::InvalidFrom)
                    .with_text("db:result claims this server's own domain"),
            );
        }
        // Piggybacking is limited to the domain of the stream header.
        if self.peer.as_deref().is_some_and(|p| p != from) {
            return self.fail(
                StreamError::new(StreamErrorCondition::InvalidFrom)
                    .with_text("dialback for a domain other than the stream's"),
            );
        }
        if self.verifying.contains(&from) || self.authenticated.contains(&from) {
            return self.fail(
                StreamError::new(StreamErrorCondition::NotAuthorized)
                    .with_text("this domain is already being authenticated on this stream"),
            );
        }
        let key = el.text().trim().to_string();
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return self.fail(
                StreamError::new(StreamErrorCondition::NotAuthorized)
                    .with_text("missing or oversized dialback key"),
            );
        }
        let Some(stream_id) = self.stream_id.clone() else {
            return;
        };
        self.peer = Some(from.clone());
        self.verifying.push(from.clone());
        self.events.push_back(S2sEvent::VerifyRequest {
            from,
            to: self.config.domain.clone(),
            stream_id,
            key,
        });
    }

    /// We are the authoritative server: check a key we may have issued.
    fn on_verify_request(&mut self, el: &Element) {
        let (Some(from), Some(to), Some(id)) = (el.attr("from"), el.attr("to"), el.attr("id"))
        else {
            return self.fail(
                StreamError::new(StreamErrorCondition::ImproperAddressing)
                    .with_text("db:verify needs from, to and id"),
            );
        };
        if !domain_eq(to, &self.config.domain) {
            return self.fail(
                StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text("this server does not serve that domain"),
            );
        }
        if self.peer.as_deref().is_some_and(|p| !domain_eq(from, p)) {
            return self.fail(
                StreamError::new(StreamErrorCondition::InvalidFrom)
                    .with_text("db:verify from does not match the stream"),
            );
        }
        let expected = dialback_key(
            &self.config.secret,
            &from.to_ascii_lowercase(),
            &self.config.domain,
            id,
        );
        let valid = constant_time_eq(el.text().trim().as_bytes(), expected.as_bytes());
        let answer = Element::new("verify", NS_DIALBACK)
            .with_attr("from", self.config.domain.clone())
            .with_attr("to", from)
            .with_attr("id", id)
            .with_attr("type", if valid { "valid" } else { "invalid" });
        self.write(&answer);
    }

    fn on_stanza(&mut self, el: Element) {
        if self.authenticated.is_empty() {
            return self.fail(
                StreamError::new(StreamErrorCondition::NotAuthorized)
                    .with_text("stanza before authentication"),
            );
        }
        let (Some(from), Some(to)) = (el.attr("from"), el.attr("to")) else {
            return self.fail(
                StreamError::new(StreamErrorCondition::ImproperAddressing)
                    .with_text("stanzas between servers need from and to"),
            );
        };
        let from_domain = Jid::parse(from).ok().map(|j| j.domain().to_string());
        if !from_domain.is_some_and(|d| self.authenticated.iter().any(|a| domain_eq(&d, a))) {
            return self.fail(
                StreamError::new(StreamErrorCondition::InvalidFrom)
                    .with_text("from is not in a domain authenticated on this stream"),
            );
        }
        let to_ok = Jid::parse(to)
            .ok()
            .is_some_and(|j| domain_eq(j.domain(), &self.config.domain));
        if !to_ok {
            return self.fail(
                StreamError::new(StreamErrorCondition::HostUnknown)
                    .with_text("to is not in a domain this server serves"),
            );
        }
        self.events
            .push_back(S2sEvent::Stanza(rename_ns(el, NS_SERVER, NS_CLIENT)));
    }
}

/// The dialback key (XEP-0185): hex of HMAC-SHA256 keyed with SHA-256(secret) over
/// `receiving ' ' originating ' ' stream-id`.
pub fn dialback_key(
    secret: &[u8; 32],
    receiving: &str,
    originating: &str,
    stream_id: &str,
) -> String {
    let hashed = Sha256::digest(secret);
    // Invariant: HMAC accepts keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&hashed).expect("HMAC takes any key");
    mac.update(receiving.as_bytes());
    mac.update(b" ");
    mac.update(originating.as_bytes());
    mac.update(b" ");
    mac.update(stream_id.as_bytes());
    let tag = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(64);
    for b in tag.iter() {
        hex.push_str(&format!("{b:02x}"));
    }
    hex
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A domain as a JID domain part: non-empty, no node or resource.
fn valid_domain(d: &str) -> bool {
    Jid::parse(d).is_ok_and(|j| j.node().is_none() && j.resource().is_none())
}

/// `el` with every element of namespace `from` moved to `to` (stanzas cross
/// between the `jabber:server` wire and the core's `jabber:client`).
pub fn rename_ns(mut el: Element, from: &str, to: &str) -> Element {
    if el.ns == from {
        el.ns = to.to_string();
    }
    el.children = el
        .children
        .into_iter()
        .map(|n| match n {
            Node::Element(c) => Node::Element(rename_ns(c, from, to)),
            other => other,
        })
        .collect();
    el
}
