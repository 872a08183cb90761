//! One c2s stream, initiating (client) or receiving (server) role.
//!
//! All negotiation transitions live in this module: `on_element_*` decide, the
//! XML and stanza crates only translate.

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use core::time::Duration;

use elsinore_jid::{BareJid, Jid};
use elsinore_sasl::{
    ChannelBinding, ClientSession, Mechanism, OfferContext, SaslFailure, ServerContext,
    ServerSession, ServerStep, StoredCredentials, offered_mechanisms,
};
use elsinore_stanza::{
    DefinedCondition, ErrorType, NS_AUTH, NS_BIND, NS_CLIENT, NS_PING, NS_REGISTER,
    NS_REGISTER_FEATURE, NS_SASL, NS_SESSION, NS_STANZAS, NS_STREAM, NS_TLS, StanzaError,
    StreamError, StreamErrorCondition,
};
use elsinore_xml::{
    Element, RawElement, RawSpec, Scratch, StreamHeader, StreamParser, XmlError, XmlEvent,
    XmlLimits,
};

/// What [`Connection::keep_raw_messages`] keeps raw.
static RAW_MESSAGE: RawSpec = RawSpec {
    name: "message",
    ns: NS_CLIENT,
};

use crate::{Instant, Rng};

/// XEP-0440: the stream feature naming the channel-binding types the server supports.
const NS_SASL_CB: &str = "urn:xmpp:sasl-cb:0";

/// Whether TLS is used on the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// Never negotiate TLS (the server offers no STARTTLS; the client ignores it).
    Disabled,
    /// Negotiate TLS when the peer offers it; authentication may happen without.
    Optional,
    /// TLS must be in place before authentication.
    Required,
}

/// Limits of one connection. Exceeding one ends the stream with a stream error.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Limits of the XML tokenizer (element size, depth, attributes, tokens).
    pub xml: XmlLimits,
    /// Output the peer has not read yet; a `send` past it fails with [`SendError::Backlog`].
    pub max_unsent_bytes: usize,
    /// Input held back while the connection waits for its owner (credentials, bind).
    pub max_held_input: usize,
    /// Time from the start of the connection to an established session.
    pub negotiation_timeout: Duration,
    /// Time to wait for the peer's `</stream:stream>` after ours.
    pub close_timeout: Duration,
    /// Failed SASL attempts on one stream before it is closed.
    pub max_auth_failures: u32,
    /// Server role: silence from an established client before we ping it (XEP-0199).
    pub ping_after: Duration,
    /// Server role: silence after that ping before the stream ends with `connection-timeout`.
    pub ping_timeout: Duration,
    /// Client role and outgoing s2s streams: a whitespace keepalive is sent after this
    /// much silence while established (keeps NAT and firewall state alive; one byte).
    pub keepalive_interval: Duration,
    /// Server role: top-level elements (stanzas and negotiation elements) a peer may
    /// send; past it the stream reads nothing more until the bucket refills (`None`:
    /// no limit). See [`Connection::input_paused_until`].
    pub stanza_rate: Option<Rate>,
    /// Server role: the same for received bytes.
    pub byte_rate: Option<Rate>,
}

/// A token bucket: `burst` at once, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Sustained rate, units per second.
    pub per_second: u32,
    /// Units available at once (the bucket's size).
    pub burst: u32,
}

/// A token bucket in thousandths of a unit; it may go into debt by one charge, and
/// input waits until the debt is paid.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    milli: i64,
    at: Instant,
}

impl Bucket {
    fn full(rate: Option<Rate>, now: Instant) -> Self {
        Bucket {
            milli: rate.map_or(0, |r| i64::from(r.burst) * 1000),
            at: now,
        }
    }

    /// Takes `units` at `now`; `Some(t)`: in debt, input must wait until `t`.
    fn charge(&mut self, rate: Option<Rate>, units: u64, now: Instant) -> Option<Instant> {
        let r = rate?;
        let per_ms = i64::from(r.per_second); // thousandths of a unit per millisecond
        let elapsed =
            i64::try_from(now.as_millis().saturating_sub(self.at.as_millis())).unwrap_or(i64::MAX);
        self.at = self.at.max(now);
        self.milli = self
            .milli
            .saturating_add(elapsed.saturating_mul(per_ms))
            .min(i64::from(r.burst) * 1000);
        let cost = i64::try_from(units)
            .unwrap_or(i64::MAX)
            .saturating_mul(1000);
        self.milli = self.milli.saturating_sub(cost);
        if self.milli >= 0 {
            return None;
        }
        if per_ms == 0 {
            // Nothing refills it: wait "forever" (the negotiation or ping timeout ends it).
            return Some(Instant::from_millis(u64::MAX));
        }
        let wait = (-self.milli + per_ms - 1) / per_ms;
        Some(Instant::from_millis(
            now.as_millis()
                .saturating_add(u64::try_from(wait).unwrap_or(u64::MAX)),
        ))
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            xml: XmlLimits::default(),
            max_unsent_bytes: 1 << 20,
            max_held_input: 64 * 1024,
            negotiation_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(10),
            max_auth_failures: 3,
            ping_after: Duration::from_secs(300),
            ping_timeout: Duration::from_secs(60),
            keepalive_interval: Duration::from_secs(90),
            stanza_rate: Some(Rate {
                per_second: 100,
                burst: 500,
            }),
            byte_rate: Some(Rate {
                per_second: 256 * 1024,
                burst: 1024 * 1024,
            }),
        }
    }
}

/// Configuration of the receiving (server) role.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The domain this server answers for (the stream's `to`).
    pub domain: String,
    /// STARTTLS policy. `Required` refuses authentication before TLS.
    pub tls: TlsPolicy,
    /// SASL mechanisms offered, in order of preference.
    pub mechanisms: Vec<Mechanism>,
    /// Offer SASL ANONYMOUS (RFC 4505): a temporary account per session.
    pub allow_anonymous: bool,
    /// Offer in-band registration (XEP-0077) before authentication.
    pub allow_registration: bool,
    /// Offer and accept the `<digest/>` form of `jabber:iq:auth` on pre-1.0 streams (the
    /// server must store passwords for it; see `ServerSession::start_legacy_digest`).
    pub legacy_digest: bool,
    /// Per-installation secret keying the SCRAM decoy answers for unknown
    /// accounts (so salts do not reveal which accounts exist), with the
    /// iteration count real accounts use.
    pub decoy: Option<([u8; 32], u32)>,
    /// Answer every new stream with the `see-other-host` stream error naming this
    /// `host`, `host:port` or `[ipv6]:port` (RFC 6120 4.9.3.19), e.g. while this server
    /// is moved or drained.
    pub redirect: Option<String>,
    /// Domains this server no longer hosts: a stream addressed to one gets `host-gone`
    /// instead of `host-unknown` (RFC 6120 4.9.3.5).
    pub gone_domains: Vec<String>,
}

impl ServerConfig {
    /// Defaults for `domain`: TLS required, SCRAM-SHA-256, SCRAM-SHA-1 and PLAIN.
    pub fn new(domain: impl Into<String>) -> Self {
        ServerConfig {
            domain: domain.into(),
            tls: TlsPolicy::Required,
            // -PLUS is offered only with a channel binding from the adapter, EXTERNAL only
            // with a verified client certificate, ANONYMOUS only when allowed.
            mechanisms: vec![
                Mechanism::ScramSha256Plus,
                Mechanism::ScramSha1Plus,
                Mechanism::ScramSha256,
                Mechanism::ScramSha1,
                Mechanism::Plain,
                Mechanism::External,
            ],
            allow_anonymous: false,
            allow_registration: false,
            legacy_digest: false,
            decoy: None,
            redirect: None,
            gone_domains: Vec::new(),
        }
    }
}

/// What the adapter learned from the TLS handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsInfo {
    /// Channel-binding data for SCRAM-*-PLUS (RFC 9266 `tls-exporter` on TLS 1.3). The
    /// client role binds with this one.
    pub channel_binding: ChannelBinding,
    /// Further binding types the server role also accepts, e.g. `tls-server-end-point`
    /// next to `tls-exporter` on TLS 1.3, for clients that only know that one.
    pub more_channel_bindings: Vec<ChannelBinding>,
    /// The identity (JID) of a client certificate the adapter verified, for EXTERNAL.
    pub peer_identity: Option<String>,
}

/// Configuration of the initiating (client) role.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The account; a full JID asks the server for that resource.
    pub jid: Jid,
    /// The password, used for SASL only.
    pub password: String,
    /// STARTTLS policy. `Required` ends the stream if the server offers no TLS.
    pub tls: TlsPolicy,
}

/// What happened on the connection, drained with [`Connection::poll_event`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Flush all pending output, run the TLS handshake, then call
    /// [`Connection::handle_tls_ready`].
    UpgradeTls,
    /// Server role: load the stored credentials of `username` and answer with
    /// [`Connection::provide_credentials`] (`None` when there is no such account). For
    /// SASL EXTERNAL it asks only whether the certificate's account exists.
    NeedCredentials {
        /// The SASL authentication identity (the JID's node part, prepared).
        username: String,
    },
    /// SASL succeeded for this account.
    Authenticated {
        /// The authenticated account.
        jid: BareJid,
    },
    /// Server role: the client asks to bind a resource (`None`: server chooses).
    /// Answer with [`Connection::complete_bind`].
    BindRequest {
        /// The requested resource, already prepared.
        resource: Option<String>,
    },
    /// Server role: an iq the client sent before authenticating, allowed by
    /// the configuration (in-band registration). Answer with [`Connection::send`].
    PreAuthIq(Element),
    /// The session is established: stanzas may flow.
    Established {
        /// The full JID of the session.
        jid: Jid,
    },
    /// A stanza from the peer (message, presence or iq in `jabber:client`).
    Stanza(Element),
    /// Server role, after [`Connection::keep_raw_messages`]: a message from the peer
    /// kept as received (the parser checked it as for [`Event::Stanza`]), for a router
    /// that forwards it without building its tree.
    RawStanza(RawElement),
    /// The stream is closed; write out what is pending, then close the socket.
    Closed {
        /// Why, when it was not a clean close.
        error: Option<String>,
    },
}

/// The largest event queue [`Connection::poll_event_with`] hands back for reuse.
const SPARE_EVENTS: usize = 32;

/// Why a command could not be carried out (the local caller's fault).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// The session is not established (or already closed).
    NotEstablished,
    /// The peer is not reading: the unsent output is over its limit.
    Backlog,
}

impl core::fmt::Display for SendError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SendError::NotEstablished => f.write_str("stream not established"),
            SendError::Backlog => f.write_str("peer is not reading: output backlog over limit"),
        }
    }
}

impl core::error::Error for SendError {}

/// Why the server refuses a resource binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindError {
    /// The resource is in use and the policy is to refuse.
    Conflict,
    /// Too many sessions for this account.
    ResourceConstraint,
    /// The account may not bind now.
    NotAllowed,
}

#[derive(Debug)]
enum Side {
    Server(Arc<ServerConfig>),
    Client(Box<ClientConfig>),
}

/// Where the negotiation stands.
#[derive(Debug)]
enum State {
    /// Waiting for the peer's stream header (first one or after a restart).
    AwaitHeader,
    /// Header exchanged; waiting for the next negotiation element.
    Negotiating,
    /// Client: `<starttls/>` sent, waiting for `<proceed/>`.
    AwaitProceed,
    /// `<proceed/>` exchanged: no more plaintext may arrive.
    TlsPending,
    /// Server: SASL exchange in progress; `true` while waiting for credentials.
    ServerSasl(Box<ServerSession>, bool),
    /// Server: EXTERNAL verified the certificate's JID; waiting to learn whether that
    /// account exists (asked with [`Event::NeedCredentials`]).
    ExternalAccount(Box<BareJid>),
    /// Client: SASL exchange in progress.
    ClientSasl(Box<ClientSession>),
    /// Server: bind request handed to the owner. Client: bind iq sent.
    Binding,
    /// Client: session iq sent.
    AwaitSession,
    /// Stanzas flow.
    Established,
    /// Our `</stream:stream>` is sent; waiting for the peer's.
    Closing,
    /// Finished.
    Closed,
}

/// What only the negotiation needs. Boxed and dropped once the session is established
/// (or the stream ends), so that an idle session does not carry it.
#[derive(Debug, Default)]
struct Negotiation {
    /// Time allowed until the session is established.
    deadline: Option<Instant>,
    /// The id of the current stream (the server's).
    stream_id: Option<String>,
    /// The id of our bind iq (client), or of the bind request handed to the owner.
    bind_iq_id: Option<String>,
    /// The `xml:lang` of the peer's header, echoed in ours.
    peer_lang: Option<String>,
    /// What the TLS handshake gave us (channel binding, verified identity).
    tls_info: Option<TlsInfo>,
    /// Server: the jabber:iq:auth request in progress (iq id, resource).
    legacy_auth: Option<(String, String)>,
}

/// One XMPP c2s stream (see the crate documentation for the run loop).
#[derive(Debug)]
pub struct Connection {
    side: Side,
    limits: Arc<Limits>,
    rng: Rng,
    parser: StreamParser,
    state: State,
    out: Vec<u8>,
    out_pos: usize,
    events: VecDeque<Event>,
    // Boxed: input is held only while paused; an idle connection carries one word.
    #[allow(clippy::box_collection)]
    held: Option<Box<Vec<u8>>>,
    /// Input must wait (credentials or bind pending on the owner).
    paused: bool,
    /// The parser must restart at the current element boundary.
    restart: bool,
    /// After a restart, until the first other byte: whitespace is dropped.
    restart_whitespace: bool,
    header_sent: bool,
    tls_done: bool,
    authenticated: Option<BareJid>,
    /// The account is a temporary one from SASL ANONYMOUS (RFC 4505).
    anonymous: bool,
    jid: Option<Jid>,
    auth_failures: u16,
    /// The failed attempts among them that got as far as checking credentials.
    credential_failures: u16,
    /// The current attempt has been given the account's credentials.
    checking_credentials: bool,
    close_deadline: Option<Instant>,
    /// Negotiation-only state; `None` once the session is established.
    neg: Option<Box<Negotiation>>,
    /// Client: the server requires the RFC 3921 session iq after binding.
    session_needed: bool,
    /// Server: a pre-1.0 stream (no `version`): no features, jabber:iq:auth login.
    legacy: bool,
    /// The stream error the peer ended the stream with (boxed: rare, and every
    /// connection carries the field).
    peer_stream_error: Option<Box<StreamError>>,
    /// Last time bytes arrived from the peer.
    last_input: Instant,
    /// Last time a keepalive (or the stream header) was queued for the peer.
    last_output: Instant,
    /// Server: when our keepalive ping was sent, while unanswered.
    ping_sent: Option<Instant>,
    /// BOM and UTF-16 detection at the very start of the connection.
    encoding: EncodingCheck,
    /// Server role: rate limits on received elements and bytes.
    stanza_bucket: Bucket,
    byte_bucket: Bucket,
    /// Over a rate: no input is processed before this.
    throttled_until: Option<Instant>,
}

impl Connection {
    /// A receiving (server-side) connection; it waits for the client's header.
    ///
    /// A server passes the same `Arc`s to all its connections (they are read-only), so a
    /// connection does not carry its own copy; a plain value works too.
    pub fn new_server(
        config: impl Into<Arc<ServerConfig>>,
        limits: impl Into<Arc<Limits>>,
        seed: [u8; 32],
        now: Instant,
    ) -> Self {
        Self::new(Side::Server(config.into()), limits.into(), seed, now)
    }

    /// A receiving connection whose socket is already TLS (XEP-0368 direct TLS):
    /// STARTTLS is not offered and authentication may start at once.
    pub fn new_server_direct_tls(
        config: impl Into<Arc<ServerConfig>>,
        limits: impl Into<Arc<Limits>>,
        seed: [u8; 32],
        now: Instant,
    ) -> Self {
        let mut c = Self::new(Side::Server(config.into()), limits.into(), seed, now);
        c.tls_done = true;
        c
    }

    /// The whole answer to a connection the server will not serve at all (e.g. over its
    /// connection limit): our stream header, `error` and the close, to be written
    /// without waiting for the peer's header (RFC 6120 4.9.1.1).
    pub fn refusal(
        config: impl Into<Arc<ServerConfig>>,
        error: StreamError,
        seed: [u8; 32],
    ) -> Vec<u8> {
        let mut c = Self::new(
            Side::Server(config.into()),
            Arc::new(Limits::default()),
            seed,
            Instant::from_millis(0),
        );
        c.fail(error);
        c.take_transmit()
    }

    /// The negotiation state, again if the stream somehow negotiates after it was dropped.
    fn neg(&mut self) -> &mut Negotiation {
        self.neg.get_or_insert_with(Box::default)
    }

    fn negotiation_deadline(&self) -> Option<Instant> {
        self.neg.as_ref().and_then(|n| n.deadline)
    }

    /// What the TLS handshake established (nothing without TLS). Boxed in the
    /// connection: only negotiation reads it, and every idle connection carries the field.
    fn tls(&self) -> &TlsInfo {
        static NONE: TlsInfo = TlsInfo {
            channel_binding: ChannelBinding::None,
            more_channel_bindings: Vec::new(),
            peer_identity: None,
        };
        self.neg
            .as_ref()
            .and_then(|n| n.tls_info.as_ref())
            .unwrap_or(&NONE)
    }

    /// Direct TLS: what the handshake established, given before any input.
    pub fn set_tls_info(&mut self, info: TlsInfo) {
        if self.tls_done && !self.header_sent {
            self.neg().tls_info = Some(info);
        }
    }

    /// An initiating (client-side) connection; its stream header is queued at once.
    pub fn new_client(config: ClientConfig, limits: Limits, seed: [u8; 32], now: Instant) -> Self {
        let mut c = Self::new(Side::Client(Box::new(config)), Arc::new(limits), seed, now);
        c.send_client_header();
        c
    }

    fn new(side: Side, limits: Arc<Limits>, seed: [u8; 32], now: Instant) -> Self {
        let parser = StreamParser::new(limits.xml);
        let deadline = now + limits.negotiation_timeout;
        Connection {
            side,
            rng: Rng::new(seed),
            parser,
            state: State::AwaitHeader,
            out: Vec::new(),
            out_pos: 0,
            events: VecDeque::new(),
            held: None,
            paused: false,
            restart: false,
            restart_whitespace: false,
            header_sent: false,
            tls_done: false,
            authenticated: None,
            anonymous: false,
            jid: None,
            auth_failures: 0,
            credential_failures: 0,
            checking_credentials: false,
            neg: Some(Box::new(Negotiation {
                deadline: Some(deadline),
                ..Negotiation::default()
            })),
            close_deadline: None,
            session_needed: false,
            legacy: false,
            peer_stream_error: None,
            last_input: now,
            last_output: now,
            ping_sent: None,
            encoding: EncodingCheck::default(),
            stanza_bucket: Bucket::full(limits.stanza_rate, now),
            byte_bucket: Bucket::full(limits.byte_rate, now),
            throttled_until: None,
            limits,
        }
    }

    // ---- getters -------------------------------------------------------

    /// The full JID of the established session.
    pub fn jid(&self) -> Option<&Jid> {
        self.jid.as_ref()
    }

    /// The authenticated account, once SASL succeeded.
    pub fn authenticated(&self) -> Option<&BareJid> {
        self.authenticated.as_ref()
    }

    /// Whether the authenticated account is a temporary one made for this session by SASL
    /// ANONYMOUS: the server forgets its data when the session ends.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// The stream error the peer closed the stream with, once one arrived (its condition,
    /// text and application element; `Event::Closed` only carries a description).
    pub fn peer_stream_error(&self) -> Option<&StreamError> {
        self.peer_stream_error.as_deref()
    }

    /// Whether stanzas may flow.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established)
    }

    /// Whether the stream is finished.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether TLS was negotiated on this stream.
    pub fn is_tls(&self) -> bool {
        self.tls_done
    }

    /// The current stream id (server's) while the stream negotiates; `None` once the
    /// session is established (nothing after negotiation needs it, and every idle
    /// connection would keep it).
    pub fn stream_id(&self) -> Option<&str> {
        self.neg.as_ref().and_then(|n| n.stream_id.as_deref())
    }

    /// Server role, over [`Limits::stanza_rate`] or [`Limits::byte_rate`]: input is not
    /// processed before this instant. An adapter should stop reading the socket until
    /// then (TCP then slows the peer down); input it passes meanwhile is held, up to
    /// [`Limits::max_held_input`], past which the stream ends with `policy-violation`.
    pub fn input_paused_until(&self) -> Option<Instant> {
        self.throttled_until
    }

    /// Failed authentication attempts on this stream so far (SASL and jabber:iq:auth).
    pub fn auth_failures(&self) -> u32 {
        u32::from(self.auth_failures)
    }

    /// The failed attempts that had been given credentials to check (see
    /// [`Connection::provide_credentials`]): wrong passwords, proofs or authorization
    /// identities. Attempts that fail before that (an unsupported mechanism or channel
    /// binding type, a malformed message) guess nothing, so a server's failed-login limits
    /// should count only these.
    pub fn credential_failures(&self) -> u32 {
        u32::from(self.credential_failures)
    }

    // ---- inputs --------------------------------------------------------

    /// Bytes read from the peer. Any split of the byte stream gives the same result.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.input(bytes, now);
        // Most connections are idle most of the time: between reads, keep no scratch.
        self.parser.release_scratch();
    }

    /// [`Connection::handle_input`] with the parser's buffers lent by `scratch`: an owner
    /// of many connections keeps one scratch for all of them, so the buffers are neither
    /// kept per idle connection nor allocated again for every input.
    pub fn handle_input_with(&mut self, bytes: &[u8], now: Instant, scratch: &mut Scratch) {
        self.parser.borrow_scratch(scratch);
        self.input(bytes, now);
        self.parser.return_scratch(scratch);
    }

    fn input(&mut self, bytes: &[u8], now: Instant) {
        if !bytes.is_empty() {
            self.last_input = now;
            self.ping_sent = None;
        }
        let bytes = match self.strip_encoding_prefix(bytes) {
            Some(b) => b,
            None => return,
        };
        if self.throttled_until.is_some_and(|t| now >= t) {
            // The deadline passed before the timer fired: what waited goes first.
            self.throttled_until = None;
            self.resume(now);
        }
        if matches!(self.side, Side::Server(_)) && !bytes.is_empty() {
            let n = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
            if let Some(t) = self.byte_bucket.charge(self.limits.byte_rate, n, now) {
                // In debt: this input waits until the debt is paid.
                self.throttle(t);
            }
        }
        if self.input_waits() {
            self.hold(bytes);
            return;
        }
        let mut buf = bytes;
        self.process(&mut buf, now);
        if self.input_waits() && !buf.is_empty() {
            self.hold(buf);
        }
    }

    /// Input is held: the owner must answer first, or the peer is over a rate.
    fn input_waits(&self) -> bool {
        self.paused || self.throttled_until.is_some()
    }

    fn throttle(&mut self, until: Instant) {
        if !self.is_closed() {
            self.throttled_until = Some(self.throttled_until.map_or(until, |t| t.max(until)));
        }
    }

    /// The input after the encoding check; `None` when it is consumed (by a BOM, or by
    /// a refusal: see [`EncodingCheck`]).
    fn strip_encoding_prefix<'a>(&mut self, bytes: &'a [u8]) -> Option<&'a [u8]> {
        match self.encoding.strip(bytes) {
            Ok(rest) => Some(rest),
            Err(EncodingRefused) => {
                self.fail_encoding();
                None
            }
        }
    }

    fn fail_encoding(&mut self) {
        self.fail(encoding_error());
    }

    fn hold(&mut self, bytes: &[u8]) {
        let len = self.held.as_ref().map_or(0, |h| h.len());
        if len + bytes.len() > self.limits.max_held_input {
            self.fail(
                StreamError::new(StreamErrorCondition::PolicyViolation)
                    .with_text("too much input while authentication or binding is pending"),
            );
            return;
        }
        self.held
            .get_or_insert_with(Default::default)
            .extend_from_slice(bytes);
    }

    fn process(&mut self, buf: &mut &[u8], now: Instant) {
        while !buf.is_empty() {
            match self.state {
                State::Closed => {
                    *buf = &[];
                    return;
                }
                State::TlsPending => {
                    // Whitespace between elements carries nothing; some clients
                    // (go-xmpp) write `<starttls/>\n` in one go.
                    let ws = whitespace_prefix(buf);
                    if ws > 0 {
                        *buf = buf.get(ws..).unwrap_or_default();
                        continue;
                    }
                    // Other plaintext after <proceed/> would be processed as if it
                    // came over TLS: the STARTTLS command injection attack.
                    self.fail(
                        StreamError::new(StreamErrorCondition::PolicyViolation)
                            .with_text("data after <proceed/> before the TLS handshake"),
                    );
                    *buf = &[];
                    return;
                }
                _ => {}
            }
            if self.input_waits() {
                return;
            }
            if self.restart {
                // Stream restart (after SASL success): the next byte belongs to
                // a new document, possibly held back while we were paused.
                self.restart = false;
                self.parser.reset();
                self.restart_whitespace = true;
            }
            if self.restart_whitespace {
                // Whitespace that followed the peer's last element of the old stream
                // (go-xmpp ends `<auth/>` with a newline) is not part of the new
                // document, where it would make an XML declaration a processing
                // instruction.
                let ws = whitespace_prefix(buf);
                *buf = buf.get(ws..).unwrap_or_default();
                if buf.is_empty() {
                    return;
                }
                self.restart_whitespace = false;
            }
            match self.parser.parse(buf) {
                Ok(Some(ev)) => {
                    if matches!(ev, XmlEvent::Element(_) | XmlEvent::Raw(_))
                        && matches!(self.side, Side::Server(_))
                    {
                        let rate = self.limits.stanza_rate;
                        if let Some(t) = self.stanza_bucket.charge(rate, 1, now) {
                            self.throttle(t);
                        }
                    }
                    self.on_xml(ev, now);
                }
                Ok(None) => return,
                Err(e) => {
                    self.fail(stream_error_for(&e));
                    *buf = &[];
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

    /// A deadline from [`Connection::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.throttled_until.is_some_and(|t| now >= t) {
            self.throttled_until = None;
            self.resume(now);
        }
        self.keepalive(now);
        if let Some(d) = self.close_deadline
            && now >= d
        {
            self.close_deadline = None;
            self.finish(Some("peer did not close the stream in time".into()));
            return;
        }
        if let Some(d) = self.negotiation_deadline()
            && now >= d
            && !self.is_closed()
        {
            self.neg = None;
            self.fail(
                StreamError::new(StreamErrorCondition::ConnectionTimeout)
                    .with_text("stream negotiation took too long"),
            );
        }
    }

    /// Keepalive work due at `now`: the server pings a silent client and ends the
    /// stream when the ping goes unanswered; the client sends whitespace, and so does the
    /// server on a pre-1.0 stream (the draft's keepalive; clients of that age need not
    /// answer an XEP-0199 ping, so silence there is no reason to end the stream).
    fn keepalive(&mut self, now: Instant) {
        if !matches!(self.state, State::Established) {
            return;
        }
        match self.side {
            Side::Server(_) if self.legacy => {
                if now >= self.last_input.max(self.last_output) + self.limits.ping_after {
                    self.out.push(b' ');
                    self.last_output = now;
                }
            }
            Side::Server(_) => match self.ping_sent {
                Some(sent) if now >= sent + self.limits.ping_timeout => {
                    self.ping_sent = None;
                    self.fail(
                        StreamError::new(StreamErrorCondition::ConnectionTimeout)
                            .with_text("no answer to the keepalive ping"),
                    );
                }
                None if now >= self.last_input + self.limits.ping_after => {
                    let id = format!("ping-{}", self.rng.token(8));
                    let ping = Element::new("iq", NS_CLIENT)
                        .with_attr("type", "get")
                        .with_attr("id", id)
                        .with_child(Element::new("ping", NS_PING));
                    if let Some(jid) = &self.jid {
                        let ping = ping.with_attr("to", jid.to_string());
                        self.write_element(&ping);
                    }
                    self.ping_sent = Some(now);
                    self.last_output = now;
                }
                _ => {}
            },
            Side::Client(_) => {
                if now >= self.last_output + self.limits.keepalive_interval {
                    // Whitespace between stanzas is allowed (RFC 6120 4.6.1).
                    self.out.push(b' ');
                    self.last_output = now;
                }
            }
        }
    }

    /// The TLS handshake asked for by [`Event::UpgradeTls`] completed.
    pub fn handle_tls_ready(&mut self, now: Instant) {
        self.handle_tls_ready_with(TlsInfo::default(), now);
    }

    /// Like [`Connection::handle_tls_ready`], with what the handshake established.
    pub fn handle_tls_ready_with(&mut self, info: TlsInfo, _now: Instant) {
        if !matches!(self.state, State::TlsPending) {
            return;
        }
        self.neg().tls_info = Some(info);
        self.tls_done = true;
        self.parser.reset();
        self.state = State::AwaitHeader;
        self.header_sent = false;
        if matches!(self.side, Side::Client(_)) {
            self.send_client_header();
        }
    }

    /// Server role: the credentials asked for by [`Event::NeedCredentials`]
    /// (`None` when there is no such account).
    pub fn provide_credentials(&mut self, creds: Option<&StoredCredentials>, now: Instant) {
        if let State::ExternalAccount(account) = &self.state {
            // EXTERNAL: only an existing account may log in with its certificate.
            let account = BareJid::clone(account);
            self.paused = false;
            match creds {
                Some(_) => self.sasl_succeeded(account, None),
                None => self.sasl_failure(SaslFailure::NotAuthorized),
            }
            self.resume(now);
            return;
        }
        let step = match &mut self.state {
            State::ServerSasl(session, waiting @ true) => {
                *waiting = false;
                session.provide_credentials(creds)
            }
            _ => return,
        };
        self.paused = false;
        self.checking_credentials = true;
        self.on_server_step(step);
        self.resume(now);
    }

    /// Server role: the store could not be read; authentication fails temporarily.
    pub fn credentials_unavailable(&mut self, now: Instant) {
        if matches!(
            self.state,
            State::ServerSasl(_, true) | State::ExternalAccount(_)
        ) {
            self.paused = false;
            self.sasl_failure(SaslFailure::TemporaryAuthFailure);
            self.resume(now);
        }
    }

    /// Server role: instead of the credentials asked for by [`Event::NeedCredentials`],
    /// refuse the attempt unchecked (too many recent failures): SASL gets
    /// `<temporary-auth-failure/>`, jabber:iq:auth `policy-violation` (type `wait`).
    pub fn refuse_auth(&mut self, now: Instant) {
        if !matches!(self.state, State::ServerSasl(_, true)) {
            return;
        }
        self.paused = false;
        if let Some((iq_id, _)) = self.neg.as_mut().and_then(|n| n.legacy_auth.take()) {
            let err = iq_error(&iq_id, "policy-violation", "wait");
            self.write_element(&err);
            self.state = State::Negotiating;
            self.count_auth_failure();
        } else {
            self.sasl_failure(SaslFailure::TemporaryAuthFailure);
        }
        self.resume(now);
    }

    /// Server role: the answer to [`Event::BindRequest`].
    pub fn complete_bind(&mut self, result: Result<Jid, BindError>, now: Instant) {
        if !matches!(self.state, State::Binding) || !matches!(self.side, Side::Server(_)) {
            return;
        }
        let id = self
            .neg
            .as_mut()
            .and_then(|n| n.bind_iq_id.take())
            .unwrap_or_default();
        self.paused = false;
        match result {
            Ok(jid) => {
                let reply = if self.legacy {
                    iq_result(&id)
                } else {
                    iq_result(&id).with_child(
                        Element::new("bind", NS_BIND)
                            .with_child(Element::new("jid", NS_BIND).with_text(jid.to_string())),
                    )
                };
                self.write_element(&reply);
                self.jid = Some(jid.clone());
                self.state = State::Established;
                self.neg = None;
                self.events.push_back(Event::Established { jid });
            }
            Err(e) => {
                let (cond, ty) = match e {
                    BindError::Conflict => ("conflict", "cancel"),
                    BindError::ResourceConstraint => ("resource-constraint", "wait"),
                    BindError::NotAllowed => ("not-allowed", "cancel"),
                };
                self.write_element(&iq_error(&id, cond, ty));
                self.state = State::Negotiating;
            }
        }
        self.resume(now);
    }

    fn resume(&mut self, now: Instant) {
        if self.input_waits() {
            return;
        }
        let Some(held) = self.held.take() else {
            return;
        };
        let mut buf = held.as_slice();
        self.process(&mut buf, now);
        if self.input_waits() && !buf.is_empty() {
            self.held = Some(Box::new(buf.to_vec()));
        }
    }

    // ---- commands ------------------------------------------------------

    /// Send a stanza (or, server role before authentication, the answer to a
    /// [`Event::PreAuthIq`]). Written in the `jabber:client` default namespace.
    pub fn send(&mut self, stanza: &Element) -> Result<(), SendError> {
        self.may_send()?;
        self.write_element(stanza);
        Ok(())
    }

    /// Send a message kept as received ([`Event::RawStanza`]) with `from` set, as
    /// [`Connection::send`] sends its tree.
    pub fn send_raw(&mut self, stanza: &RawElement, from: &Jid) -> Result<(), SendError> {
        self.may_send()?;
        // The JID's parts as they are: no text of it built for every routed message.
        let bare = from.bare().as_str();
        match from.resource() {
            Some(res) => stanza.write_to_parts(&mut self.out, NS_CLIENT, "from", &[bare, "/", res]),
            None => stanza.write_to_parts(&mut self.out, NS_CLIENT, "from", &[bare]),
        }
        Ok(())
    }

    /// Whether a stanza may be written now: the stream is established (or, server role,
    /// our header is out, for answers before authentication) and the backlog is within
    /// its limit.
    fn may_send(&self) -> Result<(), SendError> {
        let allowed = match self.state {
            State::Established => true,
            State::Negotiating | State::AwaitHeader => {
                matches!(self.side, Side::Server(_)) && self.header_sent
            }
            _ => false,
        };
        if !allowed {
            return Err(SendError::NotEstablished);
        }
        if self.out.len() - self.out_pos > self.limits.max_unsent_bytes {
            return Err(SendError::Backlog);
        }
        Ok(())
    }

    /// Server role, established session: report the messages the peer sends from now on
    /// as [`Event::RawStanza`] instead of [`Event::Stanza`] (those that do not depend on
    /// prefixes declared around them; the others stay trees).
    pub fn keep_raw_messages(&mut self) {
        if matches!(self.side, Side::Server(_)) && matches!(self.state, State::Established) {
            self.parser.keep_raw(Some(&RAW_MESSAGE));
        }
    }

    /// Send a stream error and close the stream (e.g. `conflict` when another
    /// session takes this resource, `system-shutdown`).
    pub fn send_stream_error(&mut self, error: StreamError) {
        self.fail(error);
    }

    /// Close the stream cleanly: `</stream:stream>`, then wait for the peer's.
    pub fn close(&mut self, now: Instant) {
        match self.state {
            State::Closed | State::Closing => {}
            _ => {
                if !self.header_sent && matches!(self.side, Side::Server(_)) {
                    self.finish(None);
                    return;
                }
                elsinore_xml::write_stream_close(&mut self.out);
                self.state = State::Closing;
                self.close_deadline = Some(now + self.limits.close_timeout);
            }
        }
    }

    // ---- outputs -------------------------------------------------------

    /// Bytes to write to the peer.
    pub fn pending_transmit(&self) -> &[u8] {
        &self.out[self.out_pos..]
    }

    /// `n` bytes of [`Connection::pending_transmit`] were written.
    pub fn advance_transmit(&mut self, n: usize) {
        self.out_pos = (self.out_pos + n).min(self.out.len());
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
    }

    /// Take all pending output at once (for adapters that queue owned buffers).
    pub fn take_transmit(&mut self) -> Vec<u8> {
        let mut out = core::mem::take(&mut self.out);
        if self.out_pos > 0 {
            out.drain(..self.out_pos);
        }
        self.out_pos = 0;
        out
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let ev = self.events.pop_front();
        if ev.is_none() && self.events.capacity() > 0 {
            // Drained: an idle connection keeps no event queue.
            self.events = VecDeque::new();
        }
        ev
    }

    /// Before [`Connection::handle_input_with`]: an owner of many connections keeps one
    /// empty event queue, `spare`, and lends it to the connection it drives, so a stanza's
    /// event needs no queue allocated and freed again (see [`Connection::poll_event`]).
    /// Get it back with [`Connection::poll_event_with`].
    pub fn lend_events(&mut self, spare: &mut VecDeque<Event>) {
        if self.events.capacity() == 0 {
            core::mem::swap(&mut self.events, spare);
        }
    }

    /// [`Connection::poll_event`] that, once the queue is drained, gives it back to
    /// `spare` (when that holds none; see [`Connection::lend_events`]) rather than
    /// freeing it.
    pub fn poll_event_with(&mut self, spare: &mut VecDeque<Event>) -> Option<Event> {
        let ev = self.events.pop_front();
        if ev.is_none() && self.events.capacity() > 0 {
            // A queue a burst grew large is freed as before, not kept.
            if spare.capacity() == 0 && self.events.capacity() <= SPARE_EVENTS {
                core::mem::swap(&mut self.events, spare);
            } else {
                self.events = VecDeque::new();
            }
        }
        ev
    }

    /// When to call [`Connection::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        let keepalive = match (&self.side, &self.state) {
            (Side::Server(_), State::Established) if self.legacy => {
                Some(self.last_input.max(self.last_output) + self.limits.ping_after)
            }
            (Side::Server(_), State::Established) => Some(match self.ping_sent {
                Some(sent) => sent + self.limits.ping_timeout,
                None => self.last_input + self.limits.ping_after,
            }),
            (Side::Client(_), State::Established) => {
                Some(self.last_output + self.limits.keepalive_interval)
            }
            _ => None,
        };
        [
            self.negotiation_deadline(),
            self.close_deadline,
            keepalive,
            self.throttled_until,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- internals -----------------------------------------------------

    fn write_element(&mut self, el: &Element) {
        if self.out.capacity() == 0 {
            // The owner takes `out` with every transmit: start at a typical stanza's size
            // rather than growing from nothing.
            self.out.reserve(256);
        }
        el.write_to(&mut self.out, NS_CLIENT);
    }

    fn fail(&mut self, error: StreamError) {
        if matches!(self.state, State::Closed) {
            return;
        }
        if !self.header_sent && matches!(self.side, Side::Server(_)) {
            // A stream error needs an open stream: open ours first (RFC 6120 4.9.1.1).
            self.send_server_header(None, true);
        }
        let text = error.to_string();
        let el = error.to_element();
        el.write_to(&mut self.out, NS_CLIENT);
        elsinore_xml::write_stream_close(&mut self.out);
        self.finish(Some(text));
    }

    fn finish(&mut self, error: Option<String>) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.state = State::Closed;
        self.paused = false;
        self.throttled_until = None;
        self.held = None;
        self.neg = None;
        self.close_deadline = None;
        self.events.push_back(Event::Closed { error });
    }

    fn on_xml(&mut self, ev: XmlEvent, now: Instant) {
        match ev {
            XmlEvent::StreamOpen(header) => self.on_header(header),
            XmlEvent::StreamClose => match self.state {
                State::Closing => self.finish(None),
                _ => {
                    elsinore_xml::write_stream_close(&mut self.out);
                    self.finish(None);
                }
            },
            XmlEvent::Raw(raw) => match (&self.side, &self.state) {
                (Side::Server(_), State::Established) => {
                    self.events.push_back(Event::RawStanza(raw));
                }
                // Only an established server stream keeps messages raw; anywhere else the
                // tree takes the usual path.
                _ => match raw.to_element() {
                    Ok(el) => self.on_xml(XmlEvent::Element(el), now),
                    Err(e) => self.fail(stream_error_for(&e)),
                },
            },
            XmlEvent::Element(el) => {
                if el.is("error", NS_STREAM) {
                    let text = match StreamError::from_element(&el) {
                        Ok(e) => {
                            let text = e.to_string();
                            self.peer_stream_error = Some(Box::new(e));
                            text
                        }
                        Err(_) => "unparseable stream error".to_string(),
                    };
                    elsinore_xml::write_stream_close(&mut self.out);
                    self.finish(Some(format!("peer sent stream error: {text}")));
                    return;
                }
                match self.side {
                    Side::Server(_) => self.on_element_server(el, now),
                    Side::Client(_) => self.on_element_client(el, now),
                }
            }
        }
    }

    fn on_header(&mut self, header: StreamHeader) {
        if !matches!(self.state, State::AwaitHeader) {
            self.fail(
                StreamError::new(StreamErrorCondition::BadFormat)
                    .with_text("unexpected stream header"),
            );
            return;
        }
        let stream_ok = header.name == "stream" && header.ns == NS_STREAM;
        let ns_ok = header.default_ns.as_deref() == Some(NS_CLIENT);
        match &self.side {
            Side::Server(cfg) => {
                self.neg.get_or_insert_with(Box::default).peer_lang =
                    header.lang().map(str::to_string);
                let to_ok = match header.attr("to") {
                    None => true,
                    Some(to) => domain_eq(to, &cfg.domain),
                };
                let peer_from = header.attr("from").map(str::to_string);
                let legacy = stream_version(header.attr("version")) == StreamVersion::Legacy;
                // The first header of a connection already ends it, so no later one comes.
                let redirect = cfg.redirect.clone();
                let gone = header
                    .attr("to")
                    .is_some_and(|to| cfg.gone_domains.iter().any(|d| domain_eq(to, d)));
                self.send_server_header(peer_from.as_deref(), !legacy);
                if !stream_ok || !ns_ok {
                    self.fail(
                        StreamError::new(StreamErrorCondition::InvalidNamespace)
                            .with_text("expected a jabber:client stream"),
                    );
                    return;
                }
                if !to_ok {
                    let error = if gone {
                        StreamError::new(StreamErrorCondition::HostGone)
                            .with_text("this server no longer serves that domain")
                    } else {
                        StreamError::new(StreamErrorCondition::HostUnknown)
                            .with_text("this server does not serve that domain")
                    };
                    self.fail(error);
                    return;
                }
                if let Some(target) = redirect {
                    self.fail(
                        StreamError::new(StreamErrorCondition::SeeOtherHost(target))
                            .with_text("this service has moved: connect to the given host"),
                    );
                    return;
                }
                match stream_version(header.attr("version")) {
                    StreamVersion::V1 => {}
                    StreamVersion::Legacy if self.authenticated.is_none() => {
                        // Pre-1.0 stream (the Jabber Programmers Guide): no features,
                        // jabber:iq:auth instead of SASL and binding.
                        self.legacy = true;
                        self.state = State::Negotiating;
                        return;
                    }
                    _ => {
                        self.fail(
                            StreamError::new(StreamErrorCondition::UnsupportedVersion)
                                .with_text("this server speaks XMPP 1.0 and pre-1.0 streams"),
                        );
                        return;
                    }
                }
                self.state = State::Negotiating;
                self.send_features();
            }
            Side::Client(_) => {
                if !stream_ok || !ns_ok {
                    self.fail(
                        StreamError::new(StreamErrorCondition::InvalidNamespace)
                            .with_text("server did not open a jabber:client stream"),
                    );
                    return;
                }
                self.neg().stream_id = header.attr("id").map(str::to_string);
                self.state = State::Negotiating;
            }
        }
    }

    fn send_server_header(&mut self, peer_from: Option<&str>, version: bool) {
        let Side::Server(cfg) = &self.side else {
            return;
        };
        let id = self.rng.token(20);
        let mut header = StreamHeader::new(NS_CLIENT)
            .with_attr("from", cfg.domain.clone())
            .with_attr("id", id.clone())
            .with_lang(
                self.neg
                    .as_ref()
                    .and_then(|n| n.peer_lang.as_deref())
                    .unwrap_or("en"),
            );
        if version {
            header = header.with_attr("version", "1.0");
        }
        if let Some(from) = peer_from
            && Jid::parse(from).is_ok()
        {
            header = header.with_attr("to", from);
        }
        header.write_to(&mut self.out);
        self.neg().stream_id = Some(id);
        self.header_sent = true;
    }

    fn send_client_header(&mut self) {
        let Side::Client(cfg) = &self.side else {
            return;
        };
        let header = StreamHeader::new(NS_CLIENT)
            .with_attr("to", cfg.jid.domain().to_string())
            .with_attr("version", "1.0")
            .with_lang("en");
        header.write_to(&mut self.out);
        self.header_sent = true;
    }

    /// The SASL mechanisms this stream offers now (also what `<auth/>` may pick).
    fn offered(&self, cfg: &ServerConfig) -> Vec<Mechanism> {
        let ctx = OfferContext {
            channel_binding: self.tls_done && self.channel_bindings().next().is_some(),
            external_identity: self.tls_done && self.tls().peer_identity.is_some(),
        };
        let mut list = offered_mechanisms(&cfg.mechanisms, ctx);
        if cfg.allow_anonymous && !list.contains(&Mechanism::Anonymous) {
            list.push(Mechanism::Anonymous);
        }
        if !cfg.allow_anonymous {
            list.retain(|m| *m != Mechanism::Anonymous);
        }
        list
    }

    /// Every usable channel binding of this connection's TLS, the primary one first.
    fn channel_bindings(&self) -> impl Iterator<Item = &ChannelBinding> {
        let tls = self.tls();
        core::iter::once(&tls.channel_binding)
            .chain(&tls.more_channel_bindings)
            .filter(|b| b.is_available())
    }

    fn tls_allowed_auth(&self, cfg: &ServerConfig) -> bool {
        self.tls_done || cfg.tls != TlsPolicy::Required
    }

    fn send_features(&mut self) {
        let Side::Server(cfg) = &self.side else {
            return;
        };
        let mut features = Element::new("features", NS_STREAM);
        if self.authenticated.is_none() {
            if !self.tls_done && cfg.tls != TlsPolicy::Disabled {
                let mut st = Element::new("starttls", NS_TLS);
                if cfg.tls == TlsPolicy::Required {
                    st = st.with_child(Element::new("required", NS_TLS));
                }
                features = features.with_child(st);
            }
            if self.tls_allowed_auth(cfg) {
                let offered = self.offered(cfg);
                let mut mechs = Element::new("mechanisms", NS_SASL);
                for m in &offered {
                    mechs =
                        mechs.with_child(Element::new("mechanism", NS_SASL).with_text(m.name()));
                }
                features = features.with_child(mechs);
                // XEP-0440: with -PLUS offered, name the binding types this connection
                // has, so a client holding another type knows it cannot bind here.
                if offered.iter().any(|m| m.is_plus()) {
                    let mut list = Element::new("sasl-channel-binding", NS_SASL_CB);
                    for name in self
                        .channel_bindings()
                        .filter_map(ChannelBinding::type_name)
                    {
                        list = list.with_child(
                            Element::new("channel-binding", NS_SASL_CB).with_attr("type", name),
                        );
                    }
                    features = features.with_child(list);
                }
                if cfg.allow_registration {
                    features = features.with_child(Element::new("register", NS_REGISTER_FEATURE));
                }
            }
        } else {
            features = features
                .with_child(Element::new("bind", NS_BIND))
                .with_child(
                    Element::new("session", NS_SESSION)
                        .with_child(Element::new("optional", NS_SESSION)),
                );
        }
        features.write_to(&mut self.out, NS_CLIENT);
    }

    // ---- server role ---------------------------------------------------

    fn on_element_server(&mut self, el: Element, _now: Instant) {
        let Side::Server(cfg) = &self.side else {
            return;
        };
        match &self.state {
            State::Established if el.is("iq", NS_CLIENT) && is_session_iq(&el) => {
                // RFC 3921 session establishment: a no-op kept for old clients.
                let id = el.attr("id").unwrap_or_default().to_string();
                self.write_element(&iq_result(&id));
            }
            State::Established if is_stanza(&el) => self.events.push_back(Event::Stanza(el)),
            State::Established => self.fail(unsupported_stanza(&el)),
            State::Negotiating if el.is("starttls", NS_TLS) => {
                if self.tls_done || cfg.tls == TlsPolicy::Disabled || self.authenticated.is_some() {
                    // RFC 6120 5.4.2.2: failure, then close the stream.
                    self.out
                        .extend_from_slice(b"<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
                    elsinore_xml::write_stream_close(&mut self.out);
                    self.finish(Some("STARTTLS refused".into()));
                    return;
                }
                self.write_element(&Element::new("proceed", NS_TLS));
                self.state = State::TlsPending;
                self.events.push_back(Event::UpgradeTls);
            }
            State::Negotiating if el.is("auth", NS_SASL) => {
                if self.authenticated.is_some() {
                    self.fail(
                        StreamError::new(StreamErrorCondition::PolicyViolation)
                            .with_text("already authenticated"),
                    );
                    return;
                }
                if !self.tls_allowed_auth(cfg) {
                    self.sasl_failure(SaslFailure::EncryptionRequired);
                    return;
                }
                let offered = self.offered(cfg);
                let mech = el
                    .attr("mechanism")
                    .and_then(Mechanism::from_name)
                    .filter(|m| offered.contains(m));
                let Some(mech) = mech else {
                    self.sasl_failure(SaslFailure::InvalidMechanism);
                    return;
                };
                let initial = match decode_sasl_data(&el.text()) {
                    Ok(d) => d,
                    Err(()) => {
                        self.sasl_failure(SaslFailure::IncorrectEncoding);
                        return;
                    }
                };
                let nonce = self.rng.token(24);
                let ctx = ServerContext {
                    nonce,
                    channel_bindings: self.channel_bindings().cloned().collect(),
                    plus_offered: offered.iter().any(|m| m.is_plus()),
                    external_identity: self.tls().peer_identity.clone(),
                    realm: cfg.domain.clone(),
                    service: String::new(),
                };
                let (mut session, first) = ServerSession::start_with(mech, initial.as_deref(), ctx);
                if let Some((secret, iterations)) = &cfg.decoy {
                    session.set_unknown_user_decoy(secret, *iterations);
                }
                self.state = State::ServerSasl(Box::new(session), false);
                self.on_server_step(first);
            }
            State::ServerSasl(_, false) if el.is("response", NS_SASL) => {
                let data = match decode_sasl_data(&el.text()) {
                    Ok(d) => d.unwrap_or_default(),
                    Err(()) => {
                        self.sasl_failure(SaslFailure::IncorrectEncoding);
                        return;
                    }
                };
                let step = match &mut self.state {
                    State::ServerSasl(session, _) => session.response(&data),
                    _ => return,
                };
                self.on_server_step(step);
            }
            State::ServerSasl(_, false) if el.is("abort", NS_SASL) => {
                if let State::ServerSasl(session, _) = &mut self.state {
                    session.abort();
                }
                self.sasl_failure(SaslFailure::Aborted);
            }
            State::Negotiating
                if self.legacy
                    && self.authenticated.is_none()
                    && el.is("iq", NS_CLIENT)
                    && first_child_ns(&el) == Some(NS_AUTH) =>
            {
                self.on_legacy_auth(el);
            }
            State::Negotiating if self.authenticated.is_some() && el.is("iq", NS_CLIENT) => {
                self.on_server_bind_phase_iq(el);
            }
            State::Negotiating
                if self.authenticated.is_none()
                    && cfg.allow_registration
                    && self.tls_allowed_auth(cfg)
                    && el.is("iq", NS_CLIENT)
                    && first_child_ns(&el) == Some(NS_REGISTER) =>
            {
                self.events.push_back(Event::PreAuthIq(el));
            }
            State::Negotiating if is_stanza(&el) => {
                self.fail(
                    StreamError::new(StreamErrorCondition::NotAuthorized)
                        .with_text("stanzas are not accepted before authentication and binding"),
                );
            }
            _ => {
                self.fail(unsupported_stanza(&el));
            }
        }
    }

    /// jabber:iq:auth (XEP-0078, the Jabber Programmers Guide) on a pre-1.0 stream. The
    /// plaintext password form is checked like SASL PLAIN; the digest form only where the
    /// server keeps passwords for it (`ServerConfig::legacy_digest`).
    fn on_legacy_auth(&mut self, el: Element) {
        let Side::Server(cfg) = &self.side else {
            return;
        };
        let id = el.attr("id").unwrap_or_default().to_string();
        let query = el.get_child("query", NS_AUTH);
        let field = |name: &str| {
            query
                .and_then(|q| q.get_child(name, NS_AUTH))
                .map(|f| f.text().trim().to_string())
        };
        match el.attr("type") {
            Some("get") => {
                let mut q = Element::new("query", NS_AUTH)
                    .with_child(
                        Element::new("username", NS_AUTH)
                            .with_text(field("username").unwrap_or_default()),
                    )
                    .with_child(Element::new("resource", NS_AUTH));
                if self.tls_allowed_auth(cfg) {
                    q = q.with_child(Element::new("password", NS_AUTH));
                    if cfg.legacy_digest {
                        q = q.with_child(Element::new("digest", NS_AUTH));
                    }
                }
                let reply = iq_result(&id).with_child(q);
                self.write_element(&reply);
            }
            Some("set") => {
                if !self.tls_allowed_auth(cfg) {
                    // No STARTTLS on pre-1.0 streams: only direct TLS can carry a password.
                    self.write_element(&iq_error(&id, "not-acceptable", "modify"));
                    return;
                }
                let digest = field("digest").filter(|_| cfg.legacy_digest);
                let (Some(user), Some(resource)) = (field("username"), field("resource")) else {
                    // XEP-0078 3.1: a missing field is not-acceptable.
                    self.write_element(&iq_error(&id, "not-acceptable", "modify"));
                    return;
                };
                if user.is_empty() || resource.is_empty() {
                    self.write_element(&iq_error(&id, "not-acceptable", "modify"));
                    return;
                }
                let (session, first) = match (field("password"), digest) {
                    // Verified exactly like SASL PLAIN, against the stored SCRAM keys.
                    (Some(password), _) => {
                        let mut initial = Vec::with_capacity(user.len() + password.len() + 2);
                        initial.push(0);
                        initial.extend_from_slice(user.as_bytes());
                        initial.push(0);
                        initial.extend_from_slice(password.as_bytes());
                        let nonce = self.rng.token(24);
                        ServerSession::start(Mechanism::Plain, Some(&initial), &nonce)
                    }
                    // The digest is over the id we sent in our stream header.
                    (None, Some(digest)) => {
                        let stream_id = self.stream_id().unwrap_or_default().to_string();
                        ServerSession::start_legacy_digest(&user, &stream_id, &digest)
                    }
                    // Neither a password nor an accepted digest (digest not offered).
                    (None, None) => {
                        self.write_element(&iq_error(&id, "not-acceptable", "modify"));
                        return;
                    }
                };
                self.neg().legacy_auth = Some((id, resource));
                self.state = State::ServerSasl(Box::new(session), false);
                self.on_server_step(first);
            }
            _ => self.write_element(&iq_error(&id, "bad-request", "modify")),
        }
    }

    fn on_server_bind_phase_iq(&mut self, el: Element) {
        let id = el.attr("id").unwrap_or_default().to_string();
        if el.attr("type") == Some("set")
            && let Some(bind) = el.get_child("bind", NS_BIND)
        {
            let requested = bind
                .get_child("resource", NS_BIND)
                .map(|r| r.text())
                .filter(|r| !r.is_empty());
            let resource = match requested {
                None => None,
                Some(r) => {
                    let Some(account) = &self.authenticated else {
                        return;
                    };
                    match account.with_resource(&r) {
                        Ok(jid) => jid.resource().map(str::to_string),
                        Err(_) => {
                            self.write_element(&iq_error(&id, "bad-request", "modify"));
                            return;
                        }
                    }
                }
            };
            self.neg().bind_iq_id = Some(id);
            self.state = State::Binding;
            self.paused = true;
            self.events.push_back(Event::BindRequest { resource });
            return;
        }
        if is_session_iq(&el) {
            // RFC 3921 session before bind: not allowed yet.
            self.write_element(&iq_error(&id, "not-allowed", "cancel"));
            return;
        }
        self.fail(
            StreamError::new(StreamErrorCondition::NotAuthorized)
                .with_text("bind a resource before sending stanzas"),
        );
    }

    fn on_server_step(&mut self, step: ServerStep) {
        match step {
            ServerStep::NeedCredentials { authcid, .. } => {
                if let State::ServerSasl(_, waiting) = &mut self.state {
                    *waiting = true;
                }
                self.paused = true;
                self.events
                    .push_back(Event::NeedCredentials { username: authcid });
            }
            ServerStep::Challenge(data) => {
                let el = Element::new("challenge", NS_SASL).with_text(encode_sasl_data(&data));
                self.write_element(&el);
            }
            ServerStep::Success {
                authcid,
                authzid,
                additional,
            } => {
                let Side::Server(cfg) = &self.side else {
                    return;
                };
                let (anonymous, mech) = match &self.state {
                    State::ServerSasl(session, _) => {
                        (session.is_anonymous(), Some(session.mechanism()))
                    }
                    _ => (false, None),
                };
                let account = if anonymous {
                    // RFC 4505: a fresh, unguessable account name for this session only.
                    let node = self.rng.token(16).to_ascii_lowercase();
                    BareJid::new(Some(&format!("anon-{node}")), &cfg.domain)
                } else if mech == Some(Mechanism::External) {
                    // EXTERNAL: the identity is the certificate's JID, which must be ours.
                    BareJid::parse(&authcid).and_then(|j| {
                        if j.domain() == cfg.domain && j.node().is_some() {
                            Ok(j)
                        } else {
                            Err(elsinore_jid::JidError::EmptyNode)
                        }
                    })
                } else {
                    BareJid::new(Some(&authcid), &cfg.domain)
                };
                let account = match account {
                    Ok(j) => j,
                    Err(_) => {
                        self.sasl_failure(SaslFailure::NotAuthorized);
                        return;
                    }
                };
                if let Some(z) = authzid.filter(|z| !z.is_empty()) {
                    // Only self-authorization: authzid must name the same account.
                    let same = BareJid::parse(&z).map(|j| j == account).unwrap_or(false);
                    if !same {
                        self.sasl_failure(SaslFailure::InvalidAuthzid);
                        return;
                    }
                }
                if let Some((iq_id, resource)) =
                    self.neg.as_mut().and_then(|n| n.legacy_auth.take())
                {
                    // jabber:iq:auth: authentication and binding in one step, no restart.
                    let resource = match account.with_resource(&resource) {
                        Ok(j) => j.resource().map(str::to_string),
                        Err(_) => {
                            self.write_element(&iq_error(&iq_id, "not-acceptable", "modify"));
                            self.state = State::Negotiating;
                            return;
                        }
                    };
                    self.authenticated = Some(account.clone());
                    self.events.push_back(Event::Authenticated { jid: account });
                    self.neg().bind_iq_id = Some(iq_id);
                    self.state = State::Binding;
                    self.paused = true;
                    self.events.push_back(Event::BindRequest { resource });
                    return;
                }
                if mech == Some(Mechanism::External) {
                    // The certificate names the account; the store says whether it exists.
                    let username = account.node().unwrap_or_default().to_string();
                    self.state = State::ExternalAccount(Box::new(account));
                    self.paused = true;
                    self.events.push_back(Event::NeedCredentials { username });
                    return;
                }
                self.anonymous = anonymous;
                self.sasl_succeeded(account, additional);
            }
            ServerStep::Failure(f) => self.sasl_failure(f),
        }
    }

    /// `<success/>`, then the stream restarts.
    fn sasl_succeeded(&mut self, account: BareJid, additional: Option<Vec<u8>>) {
        let mut el = Element::new("success", NS_SASL);
        if let Some(a) = additional {
            el = el.with_text(encode_sasl_data(&a));
        }
        self.write_element(&el);
        self.checking_credentials = false;
        self.authenticated = Some(account.clone());
        self.events.push_back(Event::Authenticated { jid: account });
        self.state = State::AwaitHeader;
        self.header_sent = false;
        self.restart = true;
    }

    fn sasl_failure(&mut self, f: SaslFailure) {
        if let Some((iq_id, _)) = self.neg.as_mut().and_then(|n| n.legacy_auth.take()) {
            // XEP-0078 3.1: wrong credentials are not-authorized (401).
            let (cond, ty) = match f {
                SaslFailure::TemporaryAuthFailure => ("internal-server-error", "wait"),
                _ => ("not-authorized", "auth"),
            };
            self.write_element(&iq_error(&iq_id, cond, ty));
        } else {
            let el =
                Element::new("failure", NS_SASL).with_child(Element::new(f.condition(), NS_SASL));
            self.write_element(&el);
        }
        self.state = State::Negotiating;
        if core::mem::take(&mut self.checking_credentials) {
            self.credential_failures = self.credential_failures.saturating_add(1);
        }
        self.count_auth_failure();
    }

    fn count_auth_failure(&mut self) {
        self.auth_failures = self.auth_failures.saturating_add(1);
        if u32::from(self.auth_failures) >= self.limits.max_auth_failures {
            self.fail(
                StreamError::new(StreamErrorCondition::PolicyViolation)
                    .with_text("too many failed authentication attempts"),
            );
        }
    }

    // ---- client role ---------------------------------------------------

    fn on_element_client(&mut self, el: Element, _now: Instant) {
        let Side::Client(cfg) = &self.side else {
            return;
        };
        match &mut self.state {
            State::Established => {
                if is_stanza(&el) {
                    self.events.push_back(Event::Stanza(el));
                } else {
                    self.fail(unsupported_stanza(&el));
                }
            }
            State::Negotiating if el.is("features", NS_STREAM) => self.on_client_features(&el),
            State::AwaitProceed if el.is("proceed", NS_TLS) => {
                self.state = State::TlsPending;
                self.events.push_back(Event::UpgradeTls);
            }
            State::AwaitProceed if el.is("failure", NS_TLS) => {
                self.finish(Some("server refused STARTTLS".into()));
            }
            State::ClientSasl(session) if el.is("challenge", NS_SASL) => {
                let reply = decode_sasl_data(&el.text())
                    .map_err(|()| "challenge is not valid base64".to_string())
                    .and_then(|d| {
                        session
                            .challenge(&d.unwrap_or_default())
                            .map_err(|e| format!("SASL challenge rejected: {e}"))
                    });
                match reply {
                    Ok(data) => {
                        let r =
                            Element::new("response", NS_SASL).with_text(encode_sasl_data(&data));
                        self.write_element(&r);
                    }
                    Err(msg) => self.client_abort(msg),
                }
            }
            State::ClientSasl(session) if el.is("success", NS_SASL) => {
                let data = decode_sasl_data(&el.text()).ok().flatten();
                match session.success(data.as_deref()) {
                    Ok(()) => {
                        let Some(account) = Some(cfg.jid.to_bare()) else {
                            return;
                        };
                        self.authenticated = Some(account.clone());
                        self.events.push_back(Event::Authenticated { jid: account });
                        self.state = State::AwaitHeader;
                        self.restart = true;
                        self.send_client_header();
                    }
                    Err(e) => {
                        self.client_abort(format!("server failed SASL verification: {e}"));
                    }
                }
            }
            State::ClientSasl(_) if el.is("failure", NS_SASL) => {
                let cond = el
                    .elements()
                    .find(|c| c.ns == NS_SASL && c.name != "text")
                    .map(|c| c.name.clone())
                    .unwrap_or_else(|| "unknown".into());
                let text = el.get_child("text", NS_SASL).map(|t| t.text());
                let msg = match text {
                    Some(t) => format!("authentication failed: {cond} ({t})"),
                    None => format!("authentication failed: {cond}"),
                };
                self.close_with_error(msg);
            }
            State::Binding if el.is("iq", NS_CLIENT) => self.on_client_bind_result(&el),
            State::AwaitSession if el.is("iq", NS_CLIENT) => {
                if el.attr("type") == Some("result") {
                    self.establish_client();
                } else {
                    self.close_with_error("server refused the session".into());
                }
            }
            _ => {
                let what = format!("unexpected <{}/> from server during negotiation", el.name);
                self.fail(
                    StreamError::new(StreamErrorCondition::UnsupportedStanzaType).with_text(what),
                );
            }
        }
    }

    fn on_client_features(&mut self, features: &Element) {
        let Side::Client(cfg) = &self.side else {
            return;
        };
        let starttls = features.get_child("starttls", NS_TLS);
        let tls_required = starttls.is_some_and(|t| t.get_child("required", NS_TLS).is_some());
        if !self.tls_done && cfg.tls == TlsPolicy::Disabled && tls_required {
            // The server insists on a feature we do not do (RFC 6120 4.9.3.23).
            self.fail(
                StreamError::new(StreamErrorCondition::UnsupportedFeature)
                    .with_text("the server requires TLS, which this client has disabled"),
            );
            return;
        }
        let starttls = starttls.is_some();
        if !self.tls_done && cfg.tls != TlsPolicy::Disabled && starttls {
            self.write_element(&Element::new("starttls", NS_TLS));
            self.state = State::AwaitProceed;
            return;
        }
        if !self.tls_done && cfg.tls == TlsPolicy::Required {
            self.close_with_error("server does not offer STARTTLS and TLS is required".into());
            return;
        }
        if self.authenticated.is_none() {
            let offered: Vec<String> = features
                .get_child("mechanisms", NS_SASL)
                .map(|m| {
                    m.elements()
                        .filter(|e| e.is("mechanism", NS_SASL))
                        .map(|e| e.text().trim().to_string())
                        .collect()
                })
                .unwrap_or_default();
            let offered_refs: Vec<&str> = offered.iter().map(String::as_str).collect();
            let binding = self.tls().channel_binding.clone();
            let Some(mech) = elsinore_sasl::client_preference_with_binding(
                &offered_refs,
                binding.is_available(),
            ) else {
                self.close_with_error(format!(
                    "no common SASL mechanism (server offers: {})",
                    offered.join(", ")
                ));
                return;
            };
            let authcid = cfg.jid.node().unwrap_or_default().to_string();
            let nonce = self.rng.token(24);
            match ClientSession::new_with_binding(
                mech,
                &authcid,
                &cfg.password,
                None,
                &nonce,
                binding,
            ) {
                Ok(mut session) => {
                    let mut el = Element::new("auth", NS_SASL).with_attr("mechanism", mech.name());
                    if session.has_initial_response() {
                        let initial = session.initial_response();
                        el = el.with_text(encode_sasl_data(&initial));
                    }
                    self.write_element(&el);
                    self.state = State::ClientSasl(Box::new(session));
                }
                Err(e) => self.close_with_error(format!("cannot start SASL: {e}")),
            }
            return;
        }
        if features.get_child("bind", NS_BIND).is_none() {
            self.close_with_error("server offers no resource binding".into());
            return;
        }
        let id = self.rng.token(12);
        let mut bind = Element::new("bind", NS_BIND);
        if let Some(r) = cfg.jid.resource() {
            bind = bind.with_child(Element::new("resource", NS_BIND).with_text(r));
        }
        let iq = Element::new("iq", NS_CLIENT)
            .with_attr("type", "set")
            .with_attr("id", id.clone())
            .with_child(bind);
        self.write_element(&iq);
        self.neg().bind_iq_id = Some(id);
        // Whether the server requires the RFC 3921 session iq after binding.
        self.session_needed = features
            .get_child("session", NS_SESSION)
            .is_some_and(|s| s.get_child("optional", NS_SESSION).is_none());
        self.state = State::Binding;
    }

    fn on_client_bind_result(&mut self, el: &Element) {
        if el.attr("id") != self.neg.as_ref().and_then(|n| n.bind_iq_id.as_deref()) {
            return;
        }
        if el.attr("type") != Some("result") {
            let cond = el
                .get_child("error", NS_CLIENT)
                .and_then(|e| {
                    e.elements()
                        .find(|c| c.ns == NS_STANZAS)
                        .map(|c| c.name.clone())
                })
                .unwrap_or_else(|| "unknown".into());
            self.close_with_error(format!("resource binding failed: {cond}"));
            return;
        }
        let jid = el
            .get_child("bind", NS_BIND)
            .and_then(|b| b.get_child("jid", NS_BIND))
            .and_then(|j| Jid::parse(j.text().trim()).ok());
        let Some(jid) = jid else {
            self.close_with_error("server sent no valid JID in the bind result".into());
            return;
        };
        self.jid = Some(jid);
        if self.session_needed {
            let id = self.rng.token(12);
            let iq = Element::new("iq", NS_CLIENT)
                .with_attr("type", "set")
                .with_attr("id", id)
                .with_child(Element::new("session", NS_SESSION));
            self.write_element(&iq);
            self.state = State::AwaitSession;
        } else {
            self.establish_client();
        }
    }

    fn establish_client(&mut self) {
        let Some(jid) = self.jid.clone() else {
            return;
        };
        self.state = State::Established;
        self.neg = None;
        self.events.push_back(Event::Established { jid });
    }

    fn client_abort(&mut self, msg: String) {
        self.write_element(&Element::new("abort", NS_SASL));
        self.close_with_error(msg);
    }

    /// Client role: end negotiation on our side with a clean close and an error report.
    fn close_with_error(&mut self, msg: String) {
        elsinore_xml::write_stream_close(&mut self.out);
        self.finish(Some(msg));
    }
}

/// How many bytes at the start of `buf` are XML whitespace (`S` of XML 1.0).
pub(crate) fn whitespace_prefix(buf: &[u8]) -> usize {
    buf.iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count()
}

pub(crate) fn stream_error_for(e: &XmlError) -> StreamError {
    let cond = match e {
        XmlError::RestrictedXml(_) => StreamErrorCondition::RestrictedXml,
        XmlError::LimitExceeded(_) => StreamErrorCondition::PolicyViolation,
        // An undeclared prefix breaks namespace well-formedness; `invalid-namespace`
        // is reserved for the stream's own namespace (RFC 6120 4.9.3.10).
        XmlError::InvalidNamespace(_) => StreamErrorCondition::NotWellFormed,
        _ => StreamErrorCondition::NotWellFormed,
    };
    StreamError::new(cond).with_text(e.to_string())
}

fn unsupported_stanza(el: &Element) -> StreamError {
    StreamError::new(StreamErrorCondition::UnsupportedStanzaType).with_text(format!(
        "unexpected element <{}/> in namespace '{}'",
        el.name, el.ns
    ))
}

fn is_stanza(el: &Element) -> bool {
    el.ns == NS_CLIENT && matches!(el.name.as_str(), "message" | "presence" | "iq")
}

fn is_session_iq(el: &Element) -> bool {
    el.attr("type") == Some("set") && el.get_child("session", NS_SESSION).is_some()
}

fn first_child_ns(el: &Element) -> Option<&str> {
    el.elements().next().map(|c| c.ns.as_str())
}

fn iq_result(id: &str) -> Element {
    Element::new("iq", NS_CLIENT)
        .with_attr("type", "result")
        .with_attr("id", id)
}

/// An iq error with the RFC 6120 condition and its legacy code (XEP-0086).
fn iq_error(id: &str, condition: &str, ty: &str) -> Element {
    let condition = DefinedCondition::from_name(condition, None)
        .unwrap_or(DefinedCondition::UndefinedCondition);
    let mut err = StanzaError::new(condition);
    if let Some(t) = ErrorType::from_attr(ty) {
        err = err.with_type(t);
    }
    Element::new("iq", NS_CLIENT)
        .with_attr("type", "error")
        .with_attr("id", id)
        .with_child(err.to_element(NS_CLIENT))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamVersion {
    /// No `version`, or a 0.x one: the pre-XMPP Jabber protocol.
    Legacy,
    /// 1.x: XMPP (RFC 6120 4.7.5: minor versions are compatible).
    V1,
    /// A major version we do not speak.
    Unsupported,
}

pub(crate) fn stream_version(v: Option<&str>) -> StreamVersion {
    let Some(v) = v else {
        return StreamVersion::Legacy;
    };
    let mut parts = v.trim().splitn(2, '.');
    let major = parts.next().and_then(|m| m.parse::<u32>().ok());
    let minor_ok = parts.next().is_some_and(|m| m.parse::<u32>().is_ok());
    match major {
        Some(0) if minor_ok => StreamVersion::Legacy,
        Some(1) if minor_ok => StreamVersion::V1,
        _ => StreamVersion::Unsupported,
    }
}

/// The encoding check at the very start of a stream (c2s and s2s): a UTF-8 byte order
/// mark is skipped (XML 1.0 allows one); UTF-16, UTF-32 and a broken BOM are refused
/// (`unsupported-encoding`, RFC 6120 4.9.3.22), as we read only UTF-8.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EncodingCheck {
    /// Bytes of a UTF-8 byte order mark seen so far.
    bom_seen: u8,
    /// Whether the first byte after any BOM has been examined.
    done: bool,
}

/// The stream is not in UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EncodingRefused;

impl EncodingCheck {
    /// `bytes` without the part of a BOM it holds; any split of the input gives the same
    /// verdict.
    pub(crate) fn strip<'a>(&mut self, mut bytes: &'a [u8]) -> Result<&'a [u8], EncodingRefused> {
        const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];
        while !self.done
            && let Some((&b, rest)) = bytes.split_first()
        {
            if BOM.get(usize::from(self.bom_seen)) == Some(&b) {
                self.bom_seen += 1;
                bytes = rest;
                self.done = usize::from(self.bom_seen) == BOM.len();
                continue;
            }
            // A partial BOM followed by something else is not UTF-8; UTF-16 and UTF-32,
            // with or without a byte order mark, start with one of these.
            if self.bom_seen > 0 || matches!(b, 0x00 | 0xFE | 0xFF) {
                return Err(EncodingRefused);
            }
            self.done = true;
        }
        Ok(bytes)
    }
}

/// The stream error for input that is not UTF-8.
pub(crate) fn encoding_error() -> StreamError {
    StreamError::new(StreamErrorCondition::UnsupportedEncoding)
        .with_text("streams must be encoded in UTF-8")
}

pub(crate) fn domain_eq(to: &str, domain: &str) -> bool {
    let to = to.strip_suffix('.').unwrap_or(to);
    to.eq_ignore_ascii_case(domain)
}

/// SASL data on the wire: base64, with `=` meaning "present but empty" (RFC 6120 6.4.2).
pub(crate) fn decode_sasl_data(text: &str) -> Result<Option<Vec<u8>>, ()> {
    let t = text.trim();
    if t.is_empty() {
        return Ok(None);
    }
    if t == "=" {
        return Ok(Some(Vec::new()));
    }
    B64.decode(t).map(Some).map_err(|_| ())
}

fn encode_sasl_data(data: &[u8]) -> String {
    if data.is_empty() {
        "=".to_string()
    } else {
        B64.encode(data)
    }
}
