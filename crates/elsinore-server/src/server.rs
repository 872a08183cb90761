//! The server core: connections, sessions, routing, iq handlers.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use elsinore_jid::{BareJid, Jid};
use elsinore_sasl::{Mechanism, StoredCredentials};
use elsinore_stanza::{
    DefinedCondition, NS_CLIENT, NS_DISCO_INFO, NS_PRIVATE, NS_ROSTER, StanzaError, StreamError,
    StreamErrorCondition,
};
use elsinore_storage::private;
use elsinore_storage::{Effect, EffectId, EffectResult, Key, Op};
use elsinore_stream::{
    BindError, Connection, Event, Instant, Limits, Rng, ServerConfig as StreamConfig, TlsInfo,
    TlsPolicy,
};
use elsinore_xml::{Attr, Element, Node, Scratch};

use crate::accounts;
use crate::guard::{AbuseLimits, AuthVerdict, Guard, IpKey};
use crate::roster::Roster;

/// Identifies one connection of a [`Server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What the adapter must do for a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Flush what was transmitted before, run the TLS server handshake, then
    /// call [`Server::handle_tls_ready`].
    UpgradeTls(ConnId),
    /// Flush what was transmitted before, then close the socket.
    Close(ConnId),
    /// Open an outgoing server-to-server connection `conn` to `domain` (the
    /// adapter maps domains to addresses), then call [`Server::handle_connected`]
    /// or [`Server::handle_connect_failed`]. Its TLS upgrades are client-side.
    Connect {
        /// The new connection.
        conn: ConnId,
        /// The remote domain.
        domain: String,
    },
}

/// Sizes of a [`Server`]'s internal state ([`Server::footprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Footprint {
    /// Open client connections.
    pub connections: usize,
    /// Established sessions.
    pub sessions: usize,
    /// Accounts with at least one session.
    pub accounts_online: usize,
    /// Rosters held in memory (only for accounts online).
    pub cached_rosters: usize,
    /// Storage keys whose read-modify-write is in flight.
    pub locked_keys: usize,
    /// Jobs waiting for such a key (or handed it and not yet run).
    pub waiting_jobs: usize,
    /// Storage effects emitted and not yet answered.
    pub pending_effects: usize,
    /// Storage effects not yet taken with [`Server::poll_effect`].
    pub queued_effects: usize,
    /// Byte chunks not yet taken with [`Server::poll_transmit`].
    pub queued_transmit: usize,
    /// Events not yet taken with [`Server::poll_event`].
    pub queued_events: usize,
    /// Stored values held by the value cache ([`ServerConfig::value_cache`]).
    pub cached_values: usize,
    /// Bytes the value cache counts for them.
    pub cached_value_bytes: usize,
    /// Verified XEP-0115 capability sets cached.
    pub cached_caps: usize,
    /// disco#info queries for capabilities waiting for an answer.
    pub caps_queries: usize,
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The domain served.
    pub domain: String,
    /// In-band registration (XEP-0077) before authentication.
    pub allow_registration: bool,
    /// Allow SASL without TLS (loopback tests, benchmarks).
    pub allow_plaintext_auth: bool,
    /// Offer SASL ANONYMOUS: temporary accounts (off by default).
    pub allow_anonymous: bool,
    /// Offer SASL DIGEST-MD5 and store its secret whenever a password is set (off by
    /// default: RFC 6331 made it Historic and the secret is password-equivalent).
    pub sasl_digest_md5: bool,
    /// Accept XEP-0078 `<digest/>` logins on pre-1.0 streams and keep every password set
    /// from now on for them (off by default: the stored password is plaintext-equivalent).
    /// Accounts whose password was set before cannot use the digest form until it is set
    /// again.
    pub legacy_auth_digest: bool,
    /// Whether the adapter can do TLS (a certificate is configured).
    pub tls_available: bool,
    /// Per-connection limits.
    pub limits: Limits,
    /// PBKDF2 iterations for credentials created here.
    pub scram_iterations: u32,
    /// XEP-0049 limits.
    pub private_limits: private::Limits,
    /// Sessions one account may have at once.
    pub max_sessions_per_account: usize,
    /// Offline messages kept per account; past it, messages bounce.
    pub max_offline_messages: usize,
    /// Per-installation secret for SCRAM decoys of unknown accounts; the
    /// binary keeps one in its data directory.
    pub decoy_secret: Option<[u8; 32]>,
    /// Group chat at `conference.<domain>`.
    pub muc_enabled: bool,
    /// Group chat messages kept per room for joiners.
    pub muc_history: usize,
    /// Rooms existing at once.
    pub muc_max_rooms: usize,
    /// Occupants per room.
    pub muc_max_occupants: usize,
    /// The guide's "X has arrived." / "X has left." room messages.
    pub muc_join_messages: bool,
    /// Largest vCard stored, in serialized bytes.
    pub max_vcard_bytes: usize,
    /// Items in one jabber:iq:search result (past it: `<truncated/>`).
    pub search_max_results: usize,
    /// Accounts listed in the searchable user directory.
    pub max_directory_entries: usize,
    /// Releases served by the update service at `update.<domain>` (none: no service).
    pub releases: Vec<crate::autoupdate::Release>,
    /// Server-to-server (off by default).
    pub s2s: crate::s2s::S2sSettings,
    /// Redirect every new c2s stream elsewhere with `see-other-host` (`host`,
    /// `host:port`, `[ipv6]:port`); `None` serves normally.
    pub redirect: Option<String>,
    /// Limits across connections: per source address, failed authentication.
    pub abuse: AbuseLimits,
    /// Domains no longer hosted here: client and server streams to them get `host-gone`.
    pub gone_domains: Vec<String>,
    /// Bounds of the in-memory cache of private XML and PEP nodes, which answers
    /// private-storage gets and PEP node loads without a storage effect.
    pub value_cache: crate::cache::CacheLimits,
}

impl ServerConfig {
    /// Defaults for `domain`: TLS available and required, no registration.
    pub fn new(domain: impl Into<String>) -> Self {
        ServerConfig {
            domain: domain.into(),
            allow_registration: false,
            allow_plaintext_auth: false,
            allow_anonymous: false,
            sasl_digest_md5: false,
            legacy_auth_digest: false,
            tls_available: true,
            limits: Limits::default(),
            scram_iterations: accounts::DEFAULT_SCRAM_ITERATIONS,
            private_limits: private::Limits::default(),
            max_sessions_per_account: 16,
            max_offline_messages: 100,
            decoy_secret: None,
            muc_enabled: true,
            muc_history: 20,
            muc_max_rooms: 1000,
            muc_max_occupants: 200,
            muc_join_messages: false,
            max_vcard_bytes: 64 * 1024,
            search_max_results: 50,
            max_directory_entries: 10_000,
            releases: Vec::new(),
            s2s: crate::s2s::S2sSettings::default(),
            redirect: None,
            abuse: AbuseLimits::default(),
            gone_domains: Vec::new(),
            value_cache: crate::cache::CacheLimits::default(),
        }
    }

    /// How passwords set on this server are turned into stored credentials.
    pub fn credential_policy(&self) -> accounts::CredentialPolicy {
        accounts::CredentialPolicy {
            iterations: self.scram_iterations,
            digest_md5: self.sasl_digest_md5,
            legacy_digest: self.legacy_auth_digest,
        }
    }

    fn stream_config(&self) -> StreamConfig {
        let mut c = StreamConfig::new(self.domain.clone());
        c.tls = match (self.tls_available, self.allow_plaintext_auth) {
            (false, _) => TlsPolicy::Disabled,
            (true, true) => TlsPolicy::Optional,
            (true, false) => TlsPolicy::Required,
        };
        if !self.tls_available && !self.allow_plaintext_auth {
            // No TLS and no plaintext auth would make login impossible: the
            // adapter must not build such a server; refuse every mechanism.
            c.mechanisms.clear();
        }
        c.mechanisms
            .retain(|m| *m != Mechanism::Plain || self.allow_plaintext_auth || self.tls_available);
        if self.sasl_digest_md5 && !c.mechanisms.is_empty() {
            // After SCRAM (stronger, and what every current client picks), before PLAIN.
            let at = c
                .mechanisms
                .iter()
                .position(|m| *m == Mechanism::Plain)
                .unwrap_or(c.mechanisms.len());
            c.mechanisms.insert(at, Mechanism::DigestMd5);
        }
        c.allow_registration = self.allow_registration;
        c.allow_anonymous = self.allow_anonymous;
        c.legacy_digest = self.legacy_auth_digest;
        c.decoy = self.decoy_secret.map(|s| (s, self.scram_iterations));
        c.redirect = self.redirect.clone();
        c.gone_domains = self.gone_domains.clone();
        c
    }
}

/// What a storage completion resumes.
pub(crate) type Continuation = Box<dyn FnOnce(&mut Server, EffectResult, Instant) + Send>;

enum Pending {
    Credentials(ConnId),
    Then(Continuation),
}

impl core::fmt::Debug for Pending {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Pending::Credentials(c) => f.debug_tuple("Credentials").field(c).finish(),
            Pending::Then(_) => f.write_str("Then(..)"),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Conn {
    pub(crate) stream: Connection,
    /// The last available presence broadcast by this session (RFC 6121 4.2);
    /// `None` while the session is not available.
    pub(crate) presence: Option<StoredPresence>,
    /// Priority of that presence.
    pub(crate) priority: i8,
    /// The session asked for the roster: it gets roster pushes (RFC 6121 2.1.6).
    pub(crate) interested: bool,
    /// Entities that got directed presence from this session (RFC 6121 4.6).
    pub(crate) directed: Box<[Jid]>,
    /// The source address as counted by the abuse limits (`None`: not counted).
    pub(crate) peer: Option<IpKey>,
    /// The account the authentication attempt in progress names (boxed: only while
    /// authenticating).
    pub(crate) auth_user: Option<Box<BareJid>>,
    /// Failures of this stream already reported to the abuse limits.
    pub(crate) auth_failures_seen: u32,
    /// The deadline this connection has in [`Server::timers`] (never later than its
    /// stream's `poll_timeout`); `None`: not scheduled.
    pub(crate) timer: Option<Instant>,
    /// Its XEP-0115 capabilities, for PEP notification filtering; boxed and only once
    /// it sends caps, so that a session without them stays small.
    pub(crate) caps: Option<Box<crate::caps::ConnCaps>>,
}

/// A session's available presence as kept between broadcasts: what it says, without the
/// element's name and namespace (always `presence` in `jabber:client`) and without `from`
/// and `to` (set for each recipient), so that a plain `<presence/>` costs no allocation.
impl Conn {
    /// Bound full JID once established (the stream's: not kept twice).
    pub(crate) fn jid(&self) -> Option<&Jid> {
        self.stream.jid()
    }
}

#[derive(Debug)]
pub(crate) struct StoredPresence {
    attrs: Vec<Attr>,
    children: Vec<Node>,
}

impl StoredPresence {
    /// Keeps `el` minus its `from` and `to`.
    pub(crate) fn new(el: &Element) -> Self {
        let attrs: Vec<Attr> = el
            .attrs
            .iter()
            .filter(|a| !(a.ns.is_empty() && (a.name == "from" || a.name == "to")))
            .cloned()
            .collect();
        StoredPresence {
            attrs,
            children: el.children.clone(),
        }
    }

    /// The presence element again, without `from` and `to`.
    pub(crate) fn to_element(&self) -> Element {
        Element {
            name: "presence".to_owned(),
            ns: NS_CLIENT.to_owned(),
            attrs: self.attrs.clone(),
            children: self.children.clone(),
        }
    }
}

/// Work waiting for a keyed lock.
pub(crate) struct Job(JobFn);

type JobFn = Box<dyn FnOnce(&mut Server, Instant) + Send>;

impl core::fmt::Debug for Job {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Job(..)")
    }
}

/// The tables looked up on every stanza. foldhash instead of SipHash: several lookups per
/// stanza, and its per-process random seed still keeps keys a peer chooses (JIDs) from
/// being aimed at one bucket.
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// What the core holds for an account with sessions: one routing-table entry carries the
/// roster cache too, instead of a second table keyed by the same JID.
#[derive(Debug)]
pub(crate) struct Online {
    /// Its sessions: (resource, shared with the session's JID, connection).
    pub(crate) conns: Vec<(Arc<str>, ConnId)>,
    /// Its roster once loaded (the store stays the truth). Boxed: the table's slots (which
    /// it keeps spare) then hold a pointer, not the roster's three fields.
    pub(crate) roster: Option<Box<Roster>>,
}

impl Online {
    /// The session bound to resource `res`.
    pub(crate) fn conn_of_resource(&self, res: &str) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|(r, _)| **r == *res)
            .map(|(_, id)| *id)
    }
}

/// The sans-IO server (see the crate documentation for the run loop).
#[derive(Debug)]
pub struct Server {
    pub(crate) config: ServerConfig,
    /// Shared by every connection (read-only).
    pub(crate) stream_config: Arc<StreamConfig>,
    stream_limits: Arc<Limits>,
    pub(crate) rng: Rng,
    /// Boxed: the table then holds a pointer per connection, not its whole state twice
    /// over (a hash table keeps spare capacity).
    pub(crate) conns: FastMap<ConnId, Box<Conn>>,
    pub(crate) next_conn: u64,
    /// Routing table: account → its sessions and cached roster.
    pub(crate) sessions: FastMap<BareJid, Online>,
    pub(crate) transmit: VecDeque<(ConnId, Vec<u8>)>,
    pub(crate) events: VecDeque<ServerEvent>,
    pub(crate) effects: VecDeque<Effect>,
    pub(crate) next_effect: EffectId,
    pending: FastMap<EffectId, Pending>,
    /// Cached private XML and PEP nodes (see `cache.rs`).
    cache: crate::cache::ValueCache,
    /// The pending effects the cache must see complete.
    cache_ops: FastMap<EffectId, crate::cache::Tracked>,
    /// Usernames with a registration in flight (guards the check-then-put race).
    pub(crate) registering: HashSet<BareJid>,
    /// Keys whose read-modify-write is in flight, with the jobs waiting for them.
    pub(crate) locked: FastMap<Key, VecDeque<Job>>,
    /// Jobs whose lock was handed over, run at the end of the current input.
    pub(crate) ready: VecDeque<Job>,
    /// Wall-clock calibration: Unix milliseconds at `Instant` zero.
    pub(crate) wall_epoch_ms: Option<u64>,
    /// State of the services and components (group chat rooms, uptime).
    pub(crate) ext: crate::services::Extras,
    /// Server-to-server connections.
    pub(crate) s2s: crate::s2s::S2sState,
    /// Connections per address, failed authentications.
    pub(crate) guard: Guard,
    /// Credential loads held back after recent failures: (when, connection, account).
    delayed_auth: Vec<(Instant, ConnId, BareJid)>,
    /// Connection deadlines, earliest first, so that neither `poll_timeout` nor
    /// `handle_timeout` looks at idle connections. Lazy: an entry is live only while it
    /// equals its connection's `timer`; a deadline that moves later (every input moves
    /// the keepalive) is re-queued only when its entry comes to the top, an earlier one
    /// is pushed at once. After every change the top entry is exact (see `settle_timers`).
    timers: BinaryHeap<Reverse<(Instant, ConnId)>>,
    /// Parser buffers lent to the connection whose input is being read.
    scratch: Scratch,
    /// An empty event queue lent the same way (`Connection::lend_events`).
    spare_events: VecDeque<Event>,
    /// Capability sets of sessions and the disco#info queries for them (`caps.rs`).
    pub(crate) caps: crate::caps::CapsState,
    /// Accounts just deleted, whose values no later write may bring back (`removal.rs`).
    pub(crate) removed: crate::removal::Tombstones,
}

impl Server {
    /// A server with no connections.
    pub fn new(config: ServerConfig, seed: [u8; 32], now: Instant) -> Self {
        Server {
            cache: crate::cache::ValueCache::new(config.value_cache),
            guard: Guard::new(config.abuse.clone()),
            delayed_auth: Vec::new(),
            timers: BinaryHeap::new(),
            scratch: Scratch::new(),
            spare_events: VecDeque::new(),
            caps: crate::caps::CapsState::default(),
            removed: crate::removal::Tombstones::default(),
            stream_config: Arc::new(config.stream_config()),
            stream_limits: Arc::new(config.limits.clone()),
            config,
            rng: Rng::new(seed),
            conns: FastMap::default(),
            next_conn: 1,
            sessions: FastMap::default(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            effects: VecDeque::new(),
            next_effect: 1,
            pending: FastMap::default(),
            cache_ops: FastMap::default(),
            registering: HashSet::new(),
            locked: FastMap::default(),
            ready: VecDeque::new(),
            wall_epoch_ms: None,
            ext: crate::services::Extras::new(now),
            s2s: crate::s2s::S2sState::default(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Number of established sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.values().map(|o| o.conns.len()).sum()
    }

    /// Over its stanza or byte rate, connection `conn` processes no input before this
    /// instant: the adapter should not read its socket until then (input passed anyway
    /// is held, boundedly).
    pub fn input_paused_until(&self, conn: ConnId) -> Option<Instant> {
        self.conns
            .get(&conn)
            .and_then(|c| c.stream.input_paused_until())
    }

    /// Entries in the abuse-limit tables: (addresses with connections, addresses with
    /// failed authentications, accounts with failed authentications). Each is bounded.
    pub fn abuse_table_sizes(&self) -> (usize, usize, usize) {
        self.guard.tracked()
    }

    /// Number of storage effects emitted and not yet answered.
    pub fn outstanding_effects(&self) -> usize {
        self.pending.len()
    }

    /// Sizes of the server's internal tables and queues, for tests and monitoring that
    /// check nothing grows without bound.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            connections: self.conns.len(),
            sessions: self.session_count(),
            accounts_online: self.sessions.len(),
            cached_rosters: self
                .sessions
                .values()
                .filter(|o| o.roster.is_some())
                .count(),
            locked_keys: self.locked.len(),
            waiting_jobs: self.locked.values().map(VecDeque::len).sum::<usize>() + self.ready.len(),
            pending_effects: self.pending.len(),
            queued_effects: self.effects.len(),
            queued_transmit: self.transmit.len(),
            queued_events: self.events.len(),
            cached_values: self.cache.size().0,
            cached_value_bytes: self.cache.size().1,
            cached_caps: self.caps.size().0,
            caps_queries: self.caps.size().1,
        }
    }

    // ---- inputs --------------------------------------------------------

    /// A new connection was accepted by the adapter, source address unknown (not
    /// counted by the per-address limits; adapters with sockets use [`Server::accept_from`]).
    pub fn accept(&mut self, now: Instant) -> ConnId {
        self.accept_with(None, now, Connection::new_server)
    }

    /// A new connection from `peer`. Over [`AbuseLimits::max_connections_per_ip`] it is
    /// answered with a stream header and a `policy-violation` stream error and closed
    /// (the usual [`ServerEvent::Close`]); failed authentications are counted per address.
    pub fn accept_from(&mut self, peer: IpAddr, now: Instant) -> ConnId {
        self.accept_with(Some(peer), now, Connection::new_server)
    }

    /// A new connection whose TLS handshake the adapter already completed
    /// (XEP-0368 direct TLS, e.g. port 5223).
    pub fn accept_direct_tls(&mut self, now: Instant) -> ConnId {
        self.accept_with(None, now, Connection::new_server_direct_tls)
    }

    /// [`Server::accept_direct_tls`] with what the handshake established.
    pub fn accept_direct_tls_with(&mut self, info: TlsInfo, now: Instant) -> ConnId {
        self.accept_direct_tls_inner(None, info, now)
    }

    /// [`Server::accept_direct_tls_with`] from `peer` (see [`Server::accept_from`]).
    pub fn accept_direct_tls_from(&mut self, peer: IpAddr, info: TlsInfo, now: Instant) -> ConnId {
        self.accept_direct_tls_inner(Some(peer), info, now)
    }

    fn accept_direct_tls_inner(
        &mut self,
        peer: Option<IpAddr>,
        info: TlsInfo,
        now: Instant,
    ) -> ConnId {
        let id = self.accept_with(peer, now, Connection::new_server_direct_tls);
        if let Some(c) = self.conns.get_mut(&id) {
            c.stream.set_tls_info(info);
        }
        id
    }

    fn accept_with(
        &mut self,
        peer: Option<IpAddr>,
        now: Instant,
        make: fn(Arc<StreamConfig>, Arc<Limits>, [u8; 32], Instant) -> Connection,
    ) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let seed = self.rng.fork();
        let stream = make(
            Arc::clone(&self.stream_config),
            Arc::clone(&self.stream_limits),
            seed,
            now,
        );
        self.conns.insert(
            id,
            Box::new(Conn {
                stream,
                presence: None,
                priority: 0,
                interested: false,
                directed: Box::default(),
                peer: None,
                auth_user: None,
                auth_failures_seen: 0,
                timer: None,
                caps: None,
            }),
        );
        self.schedule(id);
        if let Some(key) = peer.and_then(|ip| IpKey::of(ip, &self.guard.limits)) {
            if self.guard.connection_opened(key) {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.peer = Some(key);
                }
            } else if let Some(c) = self.conns.get_mut(&id) {
                c.stream.send_stream_error(
                    StreamError::new(StreamErrorCondition::PolicyViolation)
                        .with_text("too many connections from your address"),
                );
                self.after(id, now);
            }
        }
        id
    }

    /// Bytes read from connection `conn`.
    pub fn handle_input(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stream.lend_events(&mut self.spare_events);
            c.stream.handle_input_with(bytes, now, &mut self.scratch);
            self.after(conn, now);
        } else {
            self.s2s_input(conn, bytes, now);
        }
        self.run_ready(now);
    }

    /// The wall clock reads `unix_ms` at `now` (for delay stamps, XEP-0082 dates).
    /// Call it at start and from time to time; the core never reads a clock.
    pub fn set_wall_clock(&mut self, now: Instant, unix_ms: u64) {
        self.wall_epoch_ms = Some(unix_ms.saturating_sub(now.as_millis()));
    }

    /// Unix milliseconds at `now`, when the adapter told us the wall clock.
    pub(crate) fn wall_ms(&self, now: Instant) -> Option<u64> {
        self.wall_epoch_ms
            .map(|e| e.saturating_add(now.as_millis()))
    }

    /// Connection `conn` reached end of file (or failed).
    pub fn handle_eof(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stream.handle_eof(now);
            self.after(conn, now);
        } else {
            self.s2s_eof(conn, now);
        }
        self.run_ready(now);
    }

    /// The TLS handshake on `conn` completed.
    pub fn handle_tls_ready(&mut self, conn: ConnId, now: Instant) {
        self.handle_tls_ready_with(conn, TlsInfo::default(), now);
    }

    /// The TLS handshake on `conn` completed with this channel binding and
    /// verified client identity (c2s; for s2s see `handle_s2s_tls_ready`).
    pub fn handle_tls_ready_with(&mut self, conn: ConnId, info: TlsInfo, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stream.handle_tls_ready_with(info, now);
            self.after(conn, now);
        } else if self.is_s2s(conn) {
            // No certificate information: dialback only (see handle_s2s_tls_ready).
            return self.handle_s2s_tls_ready(conn, Vec::new(), now);
        }
        self.run_ready(now);
    }

    /// A deadline from [`Server::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut due: Vec<ConnId> = Vec::new();
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            if at > now {
                break;
            }
            self.timers.pop();
            let Some(c) = self.conns.get_mut(&id) else {
                continue; // closed since
            };
            if c.timer != Some(at) {
                continue; // superseded by an earlier entry
            }
            c.timer = None;
            if c.stream.poll_timeout().is_some_and(|t| t <= now) {
                due.push(id);
            } else {
                // The deadline moved later since it was queued.
                self.schedule(id);
            }
        }
        // Handled in connection order, as when every connection was scanned: runs stay
        // reproducible from the seed whatever order the deadlines came in.
        due.sort_unstable();
        for id in due {
            if let Some(c) = self.conns.get_mut(&id) {
                c.stream.handle_timeout(now);
                self.after(id, now);
            }
        }
        self.settle_timers();
        if self.delayed_auth.iter().any(|(t, _, _)| *t <= now) {
            let (due, rest) = core::mem::take(&mut self.delayed_auth)
                .into_iter()
                .partition(|(t, _, _)| *t <= now);
            self.delayed_auth = rest;
            for (_, id, account) in due {
                if self.conns.contains_key(&id) {
                    let op = Op::Get(accounts::credentials_key(&account));
                    self.emit_effect(op, Pending::Credentials(id));
                }
            }
        }
        self.s2s_timeouts(now);
        self.caps_timeouts(now);
        self.run_ready(now);
    }

    /// Storage effect `id` completed.
    pub fn handle_effect_done(&mut self, id: EffectId, result: EffectResult, now: Instant) {
        self.effect_done(id, result, now);
        self.run_ready(now);
    }

    fn effect_done(&mut self, id: EffectId, result: EffectResult, now: Instant) {
        // Before the continuation, which may load the same key again.
        if !self.cache_ops.is_empty()
            && let Some(op) = self.cache_ops.remove(&id)
        {
            // The routing table says who is online: the cache keeps no table of its own.
            let sessions = &self.sessions;
            let online = |account: &str| {
                BareJid::parse(account).is_ok_and(|bare| sessions.contains_key(&bare))
            };
            self.cache.finish(op, &result, &online);
        }
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        match p {
            Pending::Credentials(conn) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                match result {
                    EffectResult::Value(Some(bytes)) => match StoredCredentials::from_bytes(&bytes)
                    {
                        Ok(creds) => c.stream.provide_credentials(Some(&creds), now),
                        Err(_) => c.stream.credentials_unavailable(now),
                    },
                    EffectResult::Value(None) => c.stream.provide_credentials(None, now),
                    _ => {
                        c.stream.credentials_unavailable(now);
                        // Our store failed, not the client: not an authentication failure.
                        c.auth_failures_seen = c.stream.credential_failures();
                    }
                }
                self.after(conn, now);
            }
            Pending::Then(k) => k(self, result, now),
        }
    }

    /// What to write to a connection the adapter refuses before the core sees it (over
    /// its connection limit): our header, the `resource-constraint` stream error, the
    /// close. Write it without blocking, then close the socket.
    pub fn refusal(&mut self) -> Vec<u8> {
        Connection::refusal(
            Arc::clone(&self.stream_config),
            StreamError::new(StreamErrorCondition::ResourceConstraint)
                .with_text("too many connections; try again later"),
            self.rng.fork(),
        )
    }

    /// Close every connection with `system-shutdown`.
    pub fn shutdown(&mut self, now: Instant) {
        let mut ids: Vec<ConnId> = self.conns.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                c.stream.send_stream_error(
                    StreamError::new(StreamErrorCondition::SystemShutdown)
                        .with_text("the server is shutting down"),
                );
                self.after(id, now);
            }
        }
        self.s2s_shutdown(now);
    }

    // ---- outputs -------------------------------------------------------

    /// Bytes to write to a connection (for an outgoing s2s connection, report them with
    /// [`Server::handle_written`] once written).
    pub fn poll_transmit(&mut self) -> Option<(ConnId, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// What the adapter must do next for a connection.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The next storage effect to run.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When to call [`Server::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers
            .peek()
            .map(|Reverse((at, _))| *at)
            .into_iter()
            .chain(self.delayed_auth.iter().map(|(t, _, _)| *t))
            .chain(self.s2s_poll_timeout())
            .chain(self.caps.poll_timeout())
            .min()
    }

    // ---- internals -----------------------------------------------------

    fn emit_effect(&mut self, op: Op, pending: Pending) {
        if !self.removed.is_empty() && self.removed.resurrects(&op) {
            // It would land after the account's deletion: it fails without reaching the
            // store, answered at the end of this input as a completion would be.
            if let Pending::Then(k) = pending {
                let job = move |s: &mut Server, now| k(s, crate::removal::refused(), now);
                self.ready.push_back(Job(Box::new(job)));
            }
            return;
        }
        let id = self.next_effect;
        self.next_effect += 1;
        self.pending.insert(id, pending);
        if let Some(tracked) = self.cache.begin(&op) {
            self.cache_ops.insert(id, tracked);
        }
        self.effects.push_back(Effect { id, op });
    }

    /// Run `job` holding the lock on `key`: jobs for one key run one at a time,
    /// in order, so a read-modify-write of stored data never interleaves with
    /// another. The job must end with [`Server::release`] on every path.
    pub(crate) fn exclusive(
        &mut self,
        key: Key,
        now: Instant,
        job: impl FnOnce(&mut Server, Instant) + Send + 'static,
    ) {
        if let Some(waiting) = self.locked.get_mut(&key) {
            waiting.push_back(Job(Box::new(job)));
            return;
        }
        self.locked.insert(key, VecDeque::new());
        job(self, now);
    }

    /// Give the lock on `key` to the next waiting job (run before this input returns).
    pub(crate) fn release(&mut self, key: &Key) {
        let Some(waiting) = self.locked.get_mut(key) else {
            return;
        };
        match waiting.pop_front() {
            Some(job) => self.ready.push_back(job),
            None => {
                self.locked.remove(key);
            }
        }
    }

    /// Jobs handed a lock run here, iteratively, never nested in a release.
    pub(crate) fn run_ready(&mut self, now: Instant) {
        while let Some(job) = self.ready.pop_front() {
            (job.0)(self, now);
        }
        self.settle_tombstones();
    }

    /// No storage work in flight: no effect unanswered or queued, no lock held, no job
    /// waiting. Whatever runs next started after this moment.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.locked.is_empty() && self.ready.is_empty()
    }

    /// Run a storage op; `k` resumes with its result (effects complete in order).
    pub(crate) fn run_effect(
        &mut self,
        op: Op,
        k: impl FnOnce(&mut Server, EffectResult, Instant) + Send + 'static,
    ) {
        self.emit_effect(op, Pending::Then(Box::new(k)));
    }

    /// Read `key`: from the value cache when it may answer, else with a storage effect
    /// (queued behind any write of the key in flight). `k` gets the result either way; on
    /// a hit it runs before this returns.
    pub(crate) fn load(
        &mut self,
        key: Key,
        now: Instant,
        k: impl FnOnce(&mut Server, EffectResult, Instant) + Send + 'static,
    ) {
        match self.cache.get(&key) {
            Some(value) => k(self, EffectResult::Value(value), now),
            None => self.run_effect(Op::Get(key), k),
        }
    }

    /// Collect a connection's output and events after it was driven.
    pub(crate) fn after(&mut self, id: ConnId, now: Instant) {
        self.collect(id, now);
        // Every change to a connection's state ends here: keep its deadline scheduled.
        let deadline = self.schedule(id);
        // Only `id`'s deadline moved: the earliest entry needs checking only when it is
        // `id`'s (or a closed connection's). Most stanzas skip this, and so does an entry
        // of `id`'s that already is its exact deadline (then it is `id`'s timer, which
        // `settle_timers` would find unchanged).
        if self.timers.peek().is_some_and(|Reverse((at, top))| {
            if *top == id {
                deadline != Some(*at)
            } else {
                !self.conns.contains_key(top)
            }
        }) {
            self.settle_timers();
        }
    }

    /// Makes sure the heap has an entry for `id`'s deadline no later than the deadline;
    /// returns the deadline.
    fn schedule(&mut self, id: ConnId) -> Option<Instant> {
        let c = self.conns.get_mut(&id)?;
        // Without one, a live entry, if any, is re-checked when it comes up.
        let at = c.stream.poll_timeout()?;
        if c.timer.is_none_or(|t| at < t) {
            c.timer = Some(at);
            self.timers.push(Reverse((at, id)));
            if self.timers.len() > 2 * self.conns.len() + 64 {
                // Mostly dead entries (closed connections, superseded deadlines): rebuild
                // from the live ones so the heap stays proportional to the connections.
                self.timers = self
                    .conns
                    .iter()
                    .filter_map(|(id, c)| c.timer.map(|t| Reverse((t, *id))))
                    .collect();
            }
        }
        Some(at)
    }

    /// Pops dead entries and re-queues moved deadlines until the top entry is a live,
    /// exact deadline: then it is the earliest of all connections' deadlines.
    fn settle_timers(&mut self) {
        while let Some(&Reverse((at, id))) = self.timers.peek() {
            let Some(c) = self.conns.get_mut(&id) else {
                self.timers.pop();
                continue;
            };
            if c.timer != Some(at) {
                self.timers.pop();
                continue;
            }
            let actual = c.stream.poll_timeout();
            if actual == Some(at) {
                return;
            }
            self.timers.pop();
            c.timer = actual;
            if let Some(t) = actual {
                self.timers.push(Reverse((t, id)));
            }
        }
    }

    fn collect(&mut self, id: ConnId, now: Instant) {
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            // Only attempts that checked credentials count against the failed-login limits:
            // one that failed before (an unsupported mechanism or channel binding, as a
            // client trying -PLUS with a binding type we lack does on every login, or a
            // malformed message) guessed nothing. Each checked attempt loaded the
            // credentials of the account it names (one storage round trip each).
            let failures = c.stream.credential_failures();
            if failures > c.auth_failures_seen {
                let account = c.auth_user.take();
                for _ in c.auth_failures_seen..failures {
                    self.guard.auth_failed(c.peer, account.as_deref(), now);
                }
                c.auth_failures_seen = failures;
                continue;
            }
            let bytes = c.stream.take_transmit();
            if !bytes.is_empty() {
                self.transmit.push_back((id, bytes));
            }
            let Some(ev) = c.stream.poll_event_with(&mut self.spare_events) else {
                return;
            };
            match ev {
                Event::UpgradeTls => self.events.push_back(ServerEvent::UpgradeTls(id)),
                Event::NeedCredentials { username } => {
                    match BareJid::new(Some(&username), &self.config.domain) {
                        Ok(jid) => {
                            c.auth_user = Some(Box::new(jid.clone()));
                            match self.guard.auth_verdict(c.peer, &jid, now) {
                                AuthVerdict::Proceed => {
                                    let op = Op::Get(accounts::credentials_key(&jid));
                                    self.emit_effect(op, Pending::Credentials(id));
                                }
                                // The whole verdict waits, success too: delaying only
                                // failures would tell a guesser early that it missed.
                                AuthVerdict::Delay(d) => self.delayed_auth.push((now + d, id, jid)),
                                AuthVerdict::Refuse => {
                                    c.stream.refuse_auth(now);
                                    // A refusal checked nothing: not a new failure.
                                    c.auth_failures_seen = c.stream.credential_failures();
                                    c.auth_user = None;
                                }
                            }
                        }
                        Err(_) => c.stream.provide_credentials(None, now),
                    }
                }
                Event::Authenticated { jid } => {
                    c.auth_user = None;
                    self.guard.auth_succeeded(&jid);
                }
                Event::BindRequest { resource } => self.bind(id, resource, now),
                Event::Established { jid } => {
                    // Messages are forwarded as received where nothing needs their tree.
                    c.stream.keep_raw_messages();
                    if !self.sessions.contains_key(&jid.to_bare()) {
                        // First session: warm the roster cache for presence routing.
                        self.load_roster_cache(jid.to_bare(), now);
                    }
                    let res = jid.resource_shared().cloned().unwrap_or_else(|| "".into());
                    self.sessions
                        .entry(jid.to_bare())
                        .or_insert_with(|| Online {
                            // Most accounts have one session: room for one, not the four
                            // a first push would reserve.
                            conns: Vec::with_capacity(1),
                            roster: None,
                        })
                        .conns
                        .push((res, id));
                }
                Event::PreAuthIq(el) => self.handle_register(id, el, now),
                Event::Stanza(el) => self.handle_stanza(id, el, now),
                Event::RawStanza(raw) => self.handle_raw_message(id, raw, now),
                Event::Closed { .. } => {
                    if let Some(c) = self.conns.remove(&id) {
                        if let Some(ip) = c.peer {
                            self.guard.connection_closed(ip);
                        }
                        if c.auth_user.is_some() {
                            // A held-back credential check dies with its connection, so
                            // the list never outgrows the open connections.
                            self.delayed_auth.retain(|(_, conn, _)| *conn != id);
                        }
                        let anonymous = c.stream.is_anonymous();
                        let jid = c.jid().cloned();
                        let rest = {
                            let mut s = c.stream;
                            s.take_transmit()
                        };
                        if !rest.is_empty() {
                            self.transmit.push_back((id, rest));
                        }
                        self.caps_closed(c.caps.as_deref());
                        if let Some(jid) = jid {
                            if c.presence.is_some() {
                                // RFC 6121 4.5.2: a vanished session goes unavailable.
                                self.broadcast_unavailable(&jid, c.directed.into_vec(), now);
                            }
                            self.remove_session(&jid, id);
                            self.session_closed(&jid, id, anonymous, now);
                        }
                    }
                    self.events.push_back(ServerEvent::Close(id));
                    return;
                }
            }
        }
    }

    /// The cached roster of `account` (only accounts with sessions have one).
    pub(crate) fn roster(&self, account: &BareJid) -> Option<&Roster> {
        self.sessions.get(account)?.roster.as_deref()
    }

    fn remove_session(&mut self, jid: &Jid, id: ConnId) {
        let bare = jid.to_bare();
        if let Some(Online { conns: list, .. }) = self.sessions.get_mut(&bare) {
            list.retain(|(_, c)| *c != id);
            if list.is_empty() {
                // Its cached roster goes with it.
                self.sessions.remove(&bare);
                self.cache.account_offline(&bare.to_string());
            }
        }
    }

    fn bind(&mut self, id: ConnId, resource: Option<String>, now: Instant) {
        let Some(account) = self
            .conns
            .get(&id)
            .and_then(|c| c.stream.authenticated().cloned())
        else {
            return;
        };
        let existing = self
            .sessions
            .get(&account)
            .map(|o| o.conns.clone())
            .unwrap_or_default();
        let resource = match resource {
            Some(r) => r,
            None => loop {
                let r = format!("elsinore-{}", self.rng.token(10));
                if !existing.iter().any(|(e, _)| **e == *r) {
                    break r;
                }
            },
        };
        let result = match account.with_resource(&resource) {
            Err(_) => Err(BindError::NotAllowed),
            Ok(full) => {
                // A resource already bound: the new session wins and the old
                // one is closed with `conflict` (RFC 6120 7.7.2.2, first option).
                if let Some((_, old)) = existing.iter().find(|(r, _)| **r == *resource) {
                    let old = *old;
                    if let Some(c) = self.conns.get_mut(&old) {
                        c.stream.send_stream_error(
                            StreamError::new(StreamErrorCondition::Conflict)
                                .with_text("replaced by a new session with the same resource"),
                        );
                    }
                    self.after(old, now);
                    Ok(full)
                } else if existing.len() >= self.config.max_sessions_per_account {
                    Err(BindError::ResourceConstraint)
                } else {
                    Ok(full)
                }
            }
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.stream.complete_bind(result, now);
        }
    }

    pub(crate) fn deliver_to_conn(&mut self, id: ConnId, el: &Element, now: Instant) {
        if let Some(c) = self.conns.get_mut(&id) {
            if c.stream.send(el).is_err() {
                backlog_full(&mut c.stream);
            }
            self.after(id, now);
        } else if self.is_s2s(id) {
            // A reply to a stanza that came over s2s goes back through our outgoing stream.
            self.s2s_send(el.clone(), now);
        }
    }

    pub(crate) fn handle_stanza(&mut self, id: ConnId, mut el: Element, now: Instant) {
        let Some(from) = self.conns.get(&id).and_then(|c| c.jid().cloned()) else {
            return;
        };
        // The server stamps the sender (RFC 6120 8.1.2.1): never trust the client's `from`.
        el.set_attr("from", from.to_text());
        let to = match el.attr("to").map(Jid::parse) {
            None => None,
            Some(Ok(j)) => Some(j),
            Some(Err(e)) => {
                let err = StanzaError::new(DefinedCondition::JidMalformed).with_text(e.to_string());
                self.bounce(id, &el, err, now);
                return;
            }
        };
        if !self.stanza_rules_met(id, &el, now) {
            return;
        }
        // Components (group chat, updates) and service iqs (src/services.rs) first.
        let Some(el) = self.intercept(id, &from, el, to.as_ref(), now) else {
            return;
        };
        // Which stanza, decided before `el` moves on (no copy of its name).
        let (is_iq, is_presence, is_message) =
            (el.name == "iq", el.name == "presence", el.name == "message");
        let for_server = match &to {
            None => true,
            Some(t) => t.node().is_none() && t.domain() == self.config.domain,
        };
        let own_bare = to
            .as_ref()
            .is_some_and(|t| t.resource().is_none() && t.to_bare() == from.to_bare());
        if is_iq {
            let ty = el.attr("type").unwrap_or_default();
            if ty == "result" || ty == "error" {
                if for_server && self.caps_answer(id, &el, now) {
                    return;
                }
                if !for_server && !own_bare {
                    self.route(id, el, to, now);
                }
                return;
            }
            // jabber:iq:private is answered by the server whatever the `to`:
            // the handler refuses other accounts (XEP-0049 listing 3).
            let payload_ns = el.elements().next().map(|p| p.ns.clone());
            if payload_ns.as_deref() == Some(NS_PRIVATE) {
                self.handle_private(id, &from, to.as_ref(), el, now);
                return;
            }
            if crate::pep::addressed_to_pep(&el, to.as_ref(), &self.config.domain) {
                self.handle_pep(id, &from, to.as_ref(), el, now);
                return;
            }
            // XEP-0163 §1 / XEP-0030: a contact discovers the account (and its PEP service)
            // through disco#info on its bare JID; the server answers for the account.
            let account = to.as_ref().filter(|t| {
                !own_bare
                    && t.node().is_some()
                    && t.resource().is_none()
                    && t.domain() == self.config.domain
            });
            let disco_info = el
                .elements()
                .next()
                .is_some_and(|p| p.is("query", NS_DISCO_INFO) && p.attr("node").is_none());
            if let (Some(account), true) = (account, ty == "get" && disco_info) {
                let account = account.to_bare();
                self.handle_account_disco(id, &from, el, account, now);
                return;
            }
            if payload_ns.as_deref() == Some(NS_ROSTER) && (to.is_none() || own_bare) {
                self.handle_roster_iq(id, &from, el, now);
                return;
            }
            if for_server || own_bare {
                self.handle_server_iq(id, &from, el, now);
                return;
            }
        } else if is_presence {
            self.handle_presence(id, &from, el, to, now);
            return;
        } else if for_server {
            // Messages to the server itself: nothing to deliver them to.
            return;
        } else if is_message {
            self.route_message(id, el, to, now);
            return;
        }
        self.route(id, el, to, now);
    }

    pub(crate) fn route(&mut self, id: ConnId, el: Element, to: Option<Jid>, now: Instant) {
        let Some(to) = to else {
            return;
        };
        if to.domain() != self.config.domain && self.config.s2s.enabled {
            self.s2s_send(el, now);
            return;
        }
        if to.domain() != self.config.domain {
            let err = StanzaError::new(DefinedCondition::RemoteServerNotFound)
                .with_text("server-to-server is disabled on this server");
            self.bounce(id, &el, err, now);
            return;
        }
        let targets: Vec<ConnId> = match self.sessions.get(&to.to_bare()).map(|o| &o.conns) {
            None => Vec::new(),
            Some(list) => match to.resource() {
                Some(r) => list
                    .iter()
                    .filter(|(res, _)| **res == *r)
                    .map(|(_, c)| *c)
                    .collect(),
                None if el.name == "iq" => Vec::new(),
                None => list.iter().map(|(_, c)| *c).collect(),
            },
        };
        if targets.is_empty() {
            if el.name == "presence" {
                return;
            }
            let err = StanzaError::new(DefinedCondition::ServiceUnavailable);
            self.bounce(id, &el, err, now);
            return;
        }
        for t in targets {
            self.deliver_to_conn(t, &el, now);
        }
    }

    pub(crate) fn bounce(&mut self, id: ConnId, el: &Element, err: StanzaError, now: Instant) {
        if !may_bounce(el) {
            return;
        }
        let mut reply = Element::new(el.name.clone(), NS_CLIENT).with_attr("type", "error");
        if let Some(i) = el.attr("id") {
            reply.set_attr("id", i);
        }
        if let Some(t) = el.attr("to") {
            reply.set_attr("from", t);
        }
        if let Some(f) = el.attr("from") {
            reply.set_attr("to", f);
        }
        for child in el.elements() {
            reply
                .children
                .push(elsinore_xml::Node::Element(child.clone()));
        }
        reply
            .children
            .push(elsinore_xml::Node::Element(err.to_element(NS_CLIENT)));
        self.deliver_to_conn(id, &reply, now);
    }

    /// The rules every stanza meets, from a client or a remote server alike: an `xml:lang`
    /// is a language tag (draft-ietf-xmpp-core-11 7.2.5; the stanza's own attribute, not its
    /// children's); an iq has one of the four types, and a get or set carries exactly one
    /// payload (RFC 6120 8.2.3, draft 7.5.2-3: the recipient could not tell which one to
    /// answer). `false` when `el` breaks them: it was answered with `bad-request`, or
    /// dropped when no answer could be matched to it (an iq without id) or it may get none.
    pub(crate) fn stanza_rules_met(&mut self, id: ConnId, el: &Element, now: Instant) -> bool {
        let bad_lang = el.lang().is_some_and(|l| !is_language_tag(l));
        let broken = if bad_lang {
            Some("xml:lang must be a language tag (RFC 3066), such as en or pt-BR")
        } else if el.name != "iq" {
            None
        } else {
            match el.attr("type") {
                Some("get" | "set") => (el.elements().take(2).count() != 1)
                    .then_some("an iq get or set carries exactly one payload"),
                Some("result" | "error") => None,
                _ => Some("an iq needs the type get, set, result or error"),
            }
        };
        let Some(why) = broken else {
            return true;
        };
        if el.name != "iq" || el.attr("id").is_some() {
            let err = StanzaError::new(DefinedCondition::BadRequest).with_text(why);
            self.bounce(id, el, err, now);
        }
        false
    }
}

/// RFC 3066 (draft-ietf-xmpp-core-11 7.2.5): 1-8 letters, then `-` and 1-8 letters or
/// digits, any number of times. Every BCP 47 tag has this form. The empty value, which XML
/// allows to say "no language", is accepted too.
/// A full backlog means the client does not read; dropping the stanza and closing is
/// the only bounded choice.
pub(crate) fn backlog_full(stream: &mut Connection) {
    stream.send_stream_error(
        StreamError::new(StreamErrorCondition::PolicyViolation)
            .with_text("output backlog over limit"),
    );
}

pub(crate) fn is_language_tag(tag: &str) -> bool {
    if tag.is_empty() {
        return true;
    }
    tag.split('-').enumerate().all(|(i, sub)| {
        (1..=8).contains(&sub.len())
            && sub
                .bytes()
                .all(|b| b.is_ascii_alphabetic() || (i > 0 && b.is_ascii_digit()))
    })
}

/// Whether an undeliverable stanza may be answered with an error: never an error
/// (RFC 6120 8.3.1), nor an iq result (RFC 6120 8.2.3, draft-ietf-xmpp-core-11 7.5.1).
pub(crate) fn may_bounce(el: &Element) -> bool {
    match el.attr("type") {
        Some("error") => false,
        Some("result") => el.name != "iq",
        _ => true,
    }
}

/// Every session holds one boxed `Conn`; the idle-memory target (docs/benchmarks.md) has
/// little margin, and the allocator's size classes here are 640, 768, 896 bytes.
#[cfg(all(test, target_pointer_width = "64"))]
mod size_guard {
    #[test]
    fn a_session_state_fits_the_640_byte_size_class() {
        let size = core::mem::size_of::<super::Conn>();
        assert!(
            size <= 640,
            "Conn grew to {size} bytes: box what idle sessions do not use"
        );
    }
}
