//! A deterministic simulation of the server core (no sockets, no clock, no threads).
//!
//! One seed drives everything: clients that log in with SASL PLAIN and then store and read
//! XEP-0049 private XML, edit their roster, publish to PEP, send presence and messages to
//! each other; every client's bytes reach the server in random chunks; clients vanish in
//! the middle of a stanza and come back; storage effects complete late (in order, or out of
//! order with the store applying them when they complete) or fail; time jumps forward; the
//! server itself restarts (crash: effects not yet applied are lost, the store is kept).
//!
//! What the clients were told is recorded in a model, and after every step the run checks
//! its invariants: no acknowledged write lost, nothing delivered to the wrong account, no
//! account's data visible to another (every value carries its owner in a marker), every
//! emitted effect is known and answered once, the server's tables stay bounded and empty
//! out when everyone has left. A violation panics with the seed and step.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use base64::Engine as _;
use elsinore_jid::BareJid;
use elsinore_server::{ConnId, Instant, Server, ServerConfig, ServerEvent, accounts};
use elsinore_storage::{Effect, EffectResult, MemoryStore, Op, Store, StoreError, private};
use elsinore_xml::{Element, StreamParser, XmlEvent, XmlLimits};

const DOMAIN: &str = "sim.lit";
const SASL_NS: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const STREAMS_NS: &str = "http://etherx.jabber.org/streams";
const BIND_NS: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const PRIVATE_NS: &str = "jabber:iq:private";
const ROSTER_NS: &str = "jabber:iq:roster";
const PUBSUB_NS: &str = "http://jabber.org/protocol/pubsub";
const PUBSUB_EVENT_NS: &str = "http://jabber.org/protocol/pubsub#event";
const PEP_NODE: &str = "urn:sim:pep";
/// Namespaces stored as private XML.
const PRIVATE_NSS: [&str; 3] = ["urn:sim:a", "urn:sim:b", "urn:sim:c"];
/// Resources clients ask for: few, so sessions of one account replace each other.
const RESOURCES: [&str; 3] = ["r0", "r1", "r2"];
/// Requests one client keeps in flight at most (a well-behaved client).
const MAX_INFLIGHT: usize = 4;
/// The store's queue and the server's pending effects stay under this.
const MAX_PENDING_EFFECTS: usize = 400;
/// Rounds of draining outputs before the run counts as livelocked.
const MAX_PUMP_ROUNDS: usize = 10_000;
const T0: Instant = Instant::from_millis(1_000_000);

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='sim.lit' version='1.0'>";

/// SplitMix64: small, fast, and the same sequence on every platform.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `per_mille / 1000`.
    pub fn chance(&mut self, per_mille: u32) -> bool {
        self.below(1000) < per_mille as usize
    }
}

/// How one run behaves, drawn from its seed.
#[derive(Debug, Clone)]
pub struct Params {
    pub accounts: usize,
    pub clients: usize,
    pub steps: usize,
    /// Effects failing, per mille.
    pub fail_per_mille: u32,
    /// Effects complete up to this many steps after they were emitted.
    pub max_delay: usize,
    /// Effects may complete (and apply) in any order, not only the emitted one.
    pub out_of_order: bool,
    /// Server restarts (a crash), per mille of steps.
    pub restart_per_mille: u32,
}

impl Params {
    pub fn from_rng(rng: &mut Rng, steps: usize) -> Self {
        Params {
            accounts: rng.range(2, 8),
            clients: rng.range(3, 16),
            steps,
            fail_per_mille: [0, 20, 80, 200][rng.below(4)],
            max_delay: [0, 2, 6, 20][rng.below(4)],
            out_of_order: rng.chance(500),
            restart_per_mille: [0, 2, 5][rng.below(3)],
        }
    }
}

fn account_jid(a: usize) -> String {
    format!("a{a}@{DOMAIN}")
}

fn password(a: usize) -> String {
    format!("pw-{a}-secret")
}

/// Stored credentials of account `a` (PBKDF2 is slow in debug builds: derive once).
fn credentials(a: usize) -> Op {
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<BTreeMap<usize, Op>>> = OnceLock::new();
    let cache = CACHE.get_or_init(|| Mutex::new(BTreeMap::new()));
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry(a)
        .or_insert_with(|| {
            let jid = BareJid::parse(&account_jid(a)).expect("valid account JID");
            let salt = [u8::try_from(a % 256).unwrap_or(0); 32];
            accounts::create_account_op(&jid, &password(a), salt, 4096).expect("account op")
        })
        .clone()
}

/// A request waiting for its iq reply.
#[derive(Debug, Clone)]
enum Req {
    Bind,
    PrivateSet {
        ns: usize,
        value: String,
    },
    PrivateGet {
        ns: usize,
    },
    /// A private get addressed to another account: must be refused.
    ForeignPrivateGet {
        owner: usize,
    },
    RosterSet {
        item: String,
    },
    RosterGet,
    PepPublish,
    /// PEP items of another account (no subscription): must be refused.
    ForeignPepGet {
        owner: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Features1,
    Success,
    Features2,
    Bind,
    Bound,
}

#[derive(Debug)]
struct Client {
    account: usize,
    resource: &'static str,
    conn: Option<ConnId>,
    stage: Stage,
    out: Vec<u8>,
    sent: usize,
    parser: StreamParser,
    pending: BTreeMap<String, Req>,
    available: bool,
    /// Messages this connection sent (serials), complete in `out`.
    sent_messages: Vec<u64>,
    next_iq: u64,
}

impl Client {
    fn new(account: usize) -> Self {
        Client {
            account,
            resource: RESOURCES[0],
            conn: None,
            stage: Stage::Features1,
            out: Vec::new(),
            sent: 0,
            parser: reader(),
            pending: BTreeMap::new(),
            available: false,
            sent_messages: Vec::new(),
            next_iq: 0,
        }
    }

    fn unsent(&self) -> usize {
        self.out.len() - self.sent
    }

    fn queue(&mut self, xml: &str) {
        self.out.extend_from_slice(xml.as_bytes());
    }

    fn iq(&mut self, req: Req, body: &str) {
        self.next_iq += 1;
        let id = format!("q{}", self.next_iq);
        let xml = body.replace("{ID}", &id);
        self.queue(&xml);
        self.pending.insert(id, req);
    }
}

fn reader() -> StreamParser {
    StreamParser::new(XmlLimits {
        // What the server sends may be larger than what it accepts.
        max_element_bytes: usize::MAX,
        max_token_length: 1 << 20,
        ..XmlLimits::default()
    })
}

/// One private XML key: the account's view of it.
#[derive(Debug, Default, Clone)]
struct KeyModel {
    /// The value of the last acknowledged set (`None`: never set).
    committed: Option<String>,
    /// Values of sets whose outcome nobody will learn (the client left, the server
    /// crashed): each may or may not be in the store.
    lost: BTreeSet<String>,
}

#[derive(Debug, Default, Clone)]
struct RosterModel {
    acked: BTreeSet<String>,
    lost: BTreeSet<String>,
}

#[derive(Debug, Clone)]
struct MsgModel {
    from: usize,
    to: usize,
    delivered: usize,
    bounced: usize,
}

/// A storage effect in the simulated store's queue.
#[derive(Debug)]
struct Queued {
    effect: Effect,
    due: usize,
}

pub struct Sim {
    seed: u64,
    rng: Rng,
    p: Params,
    server: Server,
    store: MemoryStore,
    queue: VecDeque<Queued>,
    clients: Vec<Client>,
    /// Live connection → client index.
    by_conn: BTreeMap<ConnId, usize>,
    now: Instant,
    step: usize,
    serial: u64,
    private: BTreeMap<(usize, usize), KeyModel>,
    rosters: Vec<RosterModel>,
    messages: BTreeMap<u64, MsgModel>,
    /// Presence subscription requests sent: (requester, contact).
    subs: BTreeSet<(usize, usize)>,
    /// Approvals sent: (subscriber, owner): the subscriber may see the owner's PEP events.
    approved: BTreeSet<(usize, usize)>,
    restarts: u64,
    /// Counters for the report.
    pub stats: Stats,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub logins: u64,
    pub acked_private_sets: u64,
    pub private_gets_checked: u64,
    pub acked_roster_sets: u64,
    pub messages_delivered: u64,
    pub messages_bounced: u64,
    pub effects_failed: u64,
    pub effects_done: u64,
    pub kills: u64,
    pub restarts: u64,
    /// Subscriptions approved, and PEP events delivered to such a subscriber.
    pub approvals: u64,
    pub pep_events_to_contacts: u64,
    /// FNV-1a over everything the server wrote and every effect it emitted: equal for two
    /// runs of one seed exactly when they behaved the same.
    pub trace: u64,
}

impl Stats {
    fn trace(&mut self, bytes: &[u8]) {
        let mut h = if self.trace == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.trace
        };
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        self.trace = h;
    }
}

impl Sim {
    pub fn new(seed: u64, steps: usize) -> Self {
        let mut rng = Rng::new(seed);
        let p = Params::from_rng(&mut rng, steps);
        let mut store = MemoryStore::default();
        for a in 0..p.accounts {
            let r = store.apply(&credentials(a));
            assert!(matches!(r, EffectResult::Done), "{r:?}");
        }
        let clients = (0..p.clients)
            .map(|i| Client::new(i % p.accounts))
            .collect();
        let server = Self::new_server(&mut rng);
        Sim {
            seed,
            rng,
            server,
            store,
            queue: VecDeque::new(),
            clients,
            by_conn: BTreeMap::new(),
            now: T0,
            step: 0,
            serial: 0,
            private: BTreeMap::new(),
            rosters: vec![RosterModel::default(); p.accounts],
            messages: BTreeMap::new(),
            subs: BTreeSet::new(),
            approved: BTreeSet::new(),
            restarts: 0,
            p,
            stats: Stats::default(),
        }
    }

    fn new_server(rng: &mut Rng) -> Server {
        let mut cfg = ServerConfig::new(DOMAIN);
        cfg.allow_plaintext_auth = true;
        cfg.max_offline_messages = 8;
        let mut seed = [0u8; 32];
        for chunk in seed.chunks_mut(8) {
            chunk.copy_from_slice(&rng.next_u64().to_le_bytes());
        }
        let mut server = Server::new(cfg, seed, T0);
        server.set_wall_clock(T0, 1_800_000_000_000);
        server
    }

    fn fail(&self, what: impl core::fmt::Display) -> ! {
        panic!(
            "simulation invariant violated (seed {}, step {}, {:?}): {what}",
            self.seed, self.step, self.p
        );
    }

    /// Run every step, then the final checks.
    pub fn run(&mut self) {
        for step in 0..self.p.steps {
            self.step = step;
            self.one_step();
            self.complete_due_effects();
            self.check();
        }
        self.finish();
    }

    fn one_step(&mut self) {
        let roll = self.rng.below(1000);
        let c = self.rng.below(self.clients.len());
        match roll {
            0..=449 => {
                // Bytes of a client that has some to send.
                let ready: Vec<usize> = (0..self.clients.len())
                    .filter(|&i| self.clients[i].conn.is_some() && self.clients[i].unsent() > 0)
                    .collect();
                if !ready.is_empty() {
                    let c = ready[self.rng.below(ready.len())];
                    self.send_chunk(c);
                }
            }
            450..=799 => self.client_action(c),
            800..=869 => self.connect(c),
            870..=884 => self.kill(c),
            885..=989 => self.advance_time(),
            _ => {
                if self.rng.chance(self.p.restart_per_mille * 100) {
                    self.restart();
                }
            }
        }
    }

    // ---- actions ---------------------------------------------------------------

    fn connect(&mut self, c: usize) {
        if self.clients[c].conn.is_some() {
            return;
        }
        let id = self.server.accept(self.now);
        let resource = RESOURCES[self.rng.below(RESOURCES.len())];
        let client = &mut self.clients[c];
        let account = client.account;
        *client = Client::new(account);
        client.resource = resource;
        client.conn = Some(id);
        client.queue(HEADER);
        self.by_conn.insert(id, c);
        self.pump();
    }

    /// Deliver a random prefix of a client's unsent bytes: any split, also inside a tag.
    fn send_chunk(&mut self, c: usize) {
        let Some(id) = self.clients[c].conn else {
            return;
        };
        let left = self.clients[c].unsent();
        if left == 0 {
            return;
        }
        let n = match self.rng.below(10) {
            0..=3 => left,
            4..=6 => self.rng.range(1, left.min(200)),
            _ => self.rng.range(1, left.min(8)),
        };
        let client = &mut self.clients[c];
        let bytes = client.out[client.sent..client.sent + n].to_vec();
        client.sent += n;
        self.server.handle_input(id, &bytes, self.now);
        self.pump();
    }

    /// The client vanishes (EOF), whatever it was in the middle of.
    fn kill(&mut self, c: usize) {
        let Some(id) = self.clients[c].conn else {
            return;
        };
        self.stats.kills += 1;
        self.client_gone(c);
        self.server.handle_eof(id, self.now);
        self.pump();
    }

    fn advance_time(&mut self) {
        // Mostly short; now and then long enough for pings and negotiation timeouts.
        let ms = match self.rng.below(40) {
            0 => self.rng.range(60_000, 400_000),
            1..=6 => self.rng.range(1_000, 20_000),
            _ => self.rng.range(0, 1_000),
        };
        self.now = Instant::from_millis(self.now.as_millis() + ms as u64);
        if self.server.poll_timeout().is_some_and(|t| t <= self.now) {
            self.server.handle_timeout(self.now);
            self.pump();
        }
    }

    /// A crash: the process dies, effects not yet applied are lost, the store stays.
    fn restart(&mut self) {
        self.stats.restarts += 1;
        self.restarts += 1;
        for c in 0..self.clients.len() {
            if self.clients[c].conn.is_some() {
                self.client_gone(c);
            }
        }
        self.queue.clear();
        self.server = Self::new_server(&mut self.rng);
    }

    fn client_action(&mut self, c: usize) {
        let client = &self.clients[c];
        if client.conn.is_none()
            || client.stage != Stage::Bound
            || client.pending.len() >= MAX_INFLIGHT
        {
            return;
        }
        let me = client.account;
        self.serial += 1;
        let serial = self.serial;
        let roll = self.rng.below(100);
        let other = self.rng.below(self.p.accounts);
        let ns = self.rng.below(PRIVATE_NSS.len());
        let client = &mut self.clients[c];
        match roll {
            0..=24 => {
                let value = format!("priv.a{me}.{serial}");
                client.iq(
                    Req::PrivateSet {
                        ns,
                        value: value.clone(),
                    },
                    &format!(
                        "<iq type='set' id='{{ID}}'><query xmlns='{PRIVATE_NS}'>\
                         <x xmlns='{}'>{value}</x></query></iq>",
                        PRIVATE_NSS[ns]
                    ),
                );
            }
            25..=39 => client.iq(
                Req::PrivateGet { ns },
                &format!(
                    "<iq type='get' id='{{ID}}'><query xmlns='{PRIVATE_NS}'>\
                     <x xmlns='{}'/></query></iq>",
                    PRIVATE_NSS[ns]
                ),
            ),
            40..=42 if other != me => client.iq(
                Req::ForeignPrivateGet { owner: other },
                &format!(
                    "<iq type='get' id='{{ID}}' to='{}'><query xmlns='{PRIVATE_NS}'>\
                     <x xmlns='{}'/></query></iq>",
                    account_jid(other),
                    PRIVATE_NSS[ns]
                ),
            ),
            43..=52 => {
                let item = format!("ros.a{me}.{serial}@elsewhere.lit");
                client.iq(
                    Req::RosterSet { item: item.clone() },
                    &format!(
                        "<iq type='set' id='{{ID}}'><query xmlns='{ROSTER_NS}'>\
                         <item jid='{item}'/></query></iq>"
                    ),
                );
            }
            53..=57 => client.iq(
                Req::RosterGet,
                &format!("<iq type='get' id='{{ID}}'><query xmlns='{ROSTER_NS}'/></iq>"),
            ),
            58..=64 => client.iq(
                Req::PepPublish,
                &format!(
                    "<iq type='set' id='{{ID}}'><pubsub xmlns='{PUBSUB_NS}'>\
                     <publish node='{PEP_NODE}'><item id='current'>\
                     <entry xmlns='{PEP_NODE}'>pep.a{me}.{serial}</entry>\
                     </item></publish></pubsub></iq>"
                ),
            ),
            65..=67 if other != me => client.iq(
                Req::ForeignPepGet { owner: other },
                &format!(
                    "<iq type='get' id='{{ID}}' to='{}'><pubsub xmlns='{PUBSUB_NS}'>\
                     <items node='{PEP_NODE}'/></pubsub></iq>",
                    account_jid(other)
                ),
            ),
            88..=91 if other != me => {
                // A subscription request; the contact's clients approve it (client_element).
                let to = account_jid(other);
                client.queue(&format!("<presence type='subscribe' to='{to}'/>"));
                self.subs.insert((me, other));
            }
            68..=91 => {
                let to = if self.rng.chance(700) {
                    account_jid(other)
                } else {
                    format!(
                        "{}/{}",
                        account_jid(other),
                        RESOURCES[self.rng.below(RESOURCES.len())]
                    )
                };
                let ty = if self.rng.chance(500) {
                    "chat"
                } else {
                    "normal"
                };
                let client = &mut self.clients[c];
                client.queue(&format!(
                    "<message to='{to}' type='{ty}' id='m{serial}'>\
                     <body>msg.{serial}.a{me}.a{other}.</body></message>"
                ));
                client.sent_messages.push(serial);
                self.messages.insert(
                    serial,
                    MsgModel {
                        from: me,
                        to: other,
                        delivered: 0,
                        bounced: 0,
                    },
                );
            }
            92..=96 => {
                let p = if client.available && self.rng.chance(300) {
                    client.available = false;
                    "<presence type='unavailable'/>".to_string()
                } else {
                    client.available = true;
                    format!(
                        "<presence><priority>{}</priority></presence>",
                        self.rng.below(3)
                    )
                };
                self.clients[c].queue(&p);
            }
            _ => {
                // Directed presence to another account: allowed to reach anyone.
                let to = account_jid(other);
                client.queue(&format!("<presence to='{to}'/>"));
            }
        }
    }

    /// A client's connection ended (it left, or the server closed it): outcomes it will
    /// never learn go into the model as "maybe applied".
    fn client_gone(&mut self, c: usize) {
        let client = &mut self.clients[c];
        if let Some(id) = client.conn.take() {
            self.by_conn.remove(&id);
        }
        let account = client.account;
        for req in core::mem::take(&mut client.pending).into_values() {
            match req {
                Req::PrivateSet { ns, value } => {
                    self.private
                        .entry((account, ns))
                        .or_default()
                        .lost
                        .insert(value);
                }
                Req::RosterSet { item } => {
                    self.rosters[account].lost.insert(item);
                }
                _ => {}
            }
        }
        client.sent_messages.clear();
        client.stage = Stage::Features1;
    }

    // ---- the run loop ------------------------------------------------------------

    /// Drain the server's outputs as an adapter would, until nothing moves.
    fn pump(&mut self) {
        for _ in 0..MAX_PUMP_ROUNDS {
            let mut progress = false;
            while let Some((id, bytes)) = self.server.poll_transmit() {
                progress = true;
                self.stats.trace(&id.0.to_le_bytes());
                self.stats.trace(&bytes);
                if let Some(&c) = self.by_conn.get(&id) {
                    self.client_input(c, &bytes);
                }
            }
            while let Some(ev) = self.server.poll_event() {
                progress = true;
                match ev {
                    ServerEvent::UpgradeTls(id) => self.server.handle_tls_ready(id, self.now),
                    ServerEvent::Close(id) => {
                        if let Some(&c) = self.by_conn.get(&id) {
                            self.client_gone(c);
                        }
                    }
                    ServerEvent::Connect { domain, .. } => {
                        self.fail(format!("s2s connect to {domain} with s2s disabled"))
                    }
                }
            }
            while let Some(effect) = self.server.poll_effect() {
                progress = true;
                self.stats.trace(format!("{:?}", effect).as_bytes());
                let delay = if self.p.max_delay == 0 {
                    0
                } else {
                    self.rng.range(0, self.p.max_delay)
                };
                self.queue.push_back(Queued {
                    effect,
                    due: self.step + delay,
                });
            }
            if !progress {
                return;
            }
        }
        self.fail("the run loop did not settle");
    }

    /// Complete the effects that are due: in emission order, or in a random order (the
    /// store then applies them in that order).
    fn complete_due_effects(&mut self) {
        loop {
            let pick = if self.p.out_of_order {
                let due: Vec<usize> = (0..self.queue.len())
                    .filter(|&i| self.queue[i].due <= self.step)
                    .collect();
                if due.is_empty() {
                    None
                } else {
                    Some(due[self.rng.below(due.len())])
                }
            } else {
                self.queue.front().filter(|q| q.due <= self.step).map(|_| 0)
            };
            let Some(i) = pick else {
                return;
            };
            let Some(q) = self.queue.remove(i) else {
                return;
            };
            self.complete(q.effect);
        }
    }

    fn complete(&mut self, effect: Effect) {
        let result = if self.rng.chance(self.p.fail_per_mille) {
            self.stats.effects_failed += 1;
            EffectResult::Failed(StoreError::Unavailable("simulated fault".into()))
        } else {
            self.stats.effects_done += 1;
            self.store.apply(&effect.op)
        };
        self.server.handle_effect_done(effect.id, result, self.now);
        self.pump();
    }

    // ---- what a client reads -------------------------------------------------------

    fn client_input(&mut self, c: usize, bytes: &[u8]) {
        let mut buf = bytes;
        loop {
            let ev = match self.clients[c].parser.parse(&mut buf) {
                Ok(Some(ev)) => ev,
                Ok(None) => return,
                Err(e) => self.fail(format!(
                    "server wrote malformed XML to client {c} ({e:?}): {}",
                    String::from_utf8_lossy(bytes)
                )),
            };
            match ev {
                XmlEvent::StreamOpen(_) => {}
                XmlEvent::StreamClose => {
                    // The server ended the stream; its Close event follows.
                    if !buf.is_empty() {
                        self.fail("bytes after </stream:stream>");
                    }
                    return;
                }
                XmlEvent::Raw(_) => self.fail("a raw element where none was asked for"),
                XmlEvent::Element(el) => {
                    self.check_isolation(c, &el);
                    self.client_element(c, el);
                    if self.clients[c].conn.is_none() {
                        return;
                    }
                }
            }
        }
    }

    fn client_element(&mut self, c: usize, el: Element) {
        let stage = self.clients[c].stage;
        if el.is("features", STREAMS_NS) {
            let client = &mut self.clients[c];
            match stage {
                Stage::Features1 => {
                    let a = client.account;
                    let initial = base64::engine::general_purpose::STANDARD
                        .encode(format!("\0a{a}\0{}", password(a)));
                    client.queue(&format!(
                        "<auth xmlns='{SASL_NS}' mechanism='PLAIN'>{initial}</auth>"
                    ));
                    client.stage = Stage::Success;
                }
                Stage::Features2 => {
                    let r = client.resource;
                    client.iq(
                        Req::Bind,
                        &format!(
                            "<iq type='set' id='{{ID}}'><bind xmlns='{BIND_NS}'>\
                             <resource>{r}</resource></bind></iq>"
                        ),
                    );
                    client.stage = Stage::Bind;
                }
                _ => self.fail(format!("unexpected features at {stage:?}")),
            }
            return;
        }
        if el.is("success", SASL_NS) {
            if stage != Stage::Success {
                self.fail("SASL success out of turn");
            }
            let client = &mut self.clients[c];
            client.parser.reset();
            client.queue(HEADER);
            client.stage = Stage::Features2;
            return;
        }
        if el.is("failure", SASL_NS) {
            // Credentials could not be loaded (failed effect): give up this connection.
            let id = self.clients[c].conn;
            self.client_gone(c);
            if let Some(id) = id {
                self.server.handle_eof(id, self.now);
            }
            return;
        }
        if el.is("error", STREAMS_NS) {
            return;
        }
        if stage != Stage::Bound && stage != Stage::Bind {
            self.fail(format!("stanza before the session: {el:?}"));
        }
        match el.name.as_str() {
            "iq" => self.client_iq(c, el),
            "message" => self.client_message(c, &el),
            "presence" => {
                if el.attr("type") == Some("subscribe") {
                    let from = el.attr("from").unwrap_or_default();
                    let Some(x) = account_of(from) else {
                        self.fail(format!("subscription request from {from}"));
                    };
                    if !self.subs.contains(&(x, self.clients[c].account)) {
                        self.fail(format!("subscription request never sent: {el:?}"));
                    }
                    let me = self.clients[c].account;
                    self.approved.insert((x, me));
                    self.stats.approvals += 1;
                    self.clients[c].queue(&format!(
                        "<presence type='subscribed' to='{}'/>",
                        account_jid(x)
                    ));
                }
            }
            other => self.fail(format!("unexpected top-level element {other}")),
        }
    }

    fn client_iq(&mut self, c: usize, el: Element) {
        let ty = el.attr("type").unwrap_or_default().to_string();
        let id = el.attr("id").unwrap_or_default().to_string();
        if ty == "get" || ty == "set" {
            // Roster pushes and pings from the server: answer them.
            if let Some(q) = el.get_child("query", ROSTER_NS) {
                for item in q.elements() {
                    let jid = item.attr("jid").unwrap_or_default();
                    self.check_roster_item(c, jid);
                }
            }
            let client = &mut self.clients[c];
            client.queue(&format!("<iq type='result' id='{id}'/>"));
            return;
        }
        let Some(req) = self.clients[c].pending.remove(&id) else {
            self.fail(format!(
                "reply to an iq never sent (or answered twice): {el:?}"
            ));
        };
        let ok = ty == "result";
        let account = self.clients[c].account;
        match req {
            Req::Bind => {
                if !ok {
                    // E.g. the account's session limit: leave.
                    return;
                }
                let jid = el
                    .get_child("bind", BIND_NS)
                    .and_then(|b| b.get_child("jid", BIND_NS))
                    .map(Element::text)
                    .unwrap_or_default();
                let want = format!("{}/{}", account_jid(account), self.clients[c].resource);
                if jid != want {
                    self.fail(format!("bound {jid}, asked for {want}"));
                }
                self.clients[c].stage = Stage::Bound;
                self.stats.logins += 1;
            }
            Req::PrivateSet { ns, value } => {
                if ok {
                    self.stats.acked_private_sets += 1;
                    let key = self.private.entry((account, ns)).or_default();
                    key.committed = Some(value);
                } else if condition(&el).as_deref() != Some("internal-server-error") {
                    self.fail(format!("private set refused: {el:?}"));
                }
            }
            Req::PrivateGet { ns } => {
                if !ok {
                    if condition(&el).as_deref() != Some("internal-server-error") {
                        self.fail(format!("private get refused: {el:?}"));
                    }
                    return;
                }
                let got = el
                    .get_child("query", PRIVATE_NS)
                    .and_then(|q| q.get_child("x", PRIVATE_NSS[ns]))
                    .map(Element::text);
                let Some(got) = got else {
                    self.fail(format!("private get result without the element: {el:?}"));
                };
                let got = (!got.is_empty()).then_some(got);
                self.stats.private_gets_checked += 1;
                self.check_private_value(c, account, ns, got.as_deref(), "get");
            }
            Req::ForeignPrivateGet { owner } => {
                if ok {
                    self.fail(format!("a{account} read a{owner}'s private XML: {el:?}"));
                }
            }
            Req::RosterSet { item } => {
                if ok {
                    self.stats.acked_roster_sets += 1;
                    self.rosters[account].acked.insert(item);
                } else if !matches!(
                    condition(&el).as_deref(),
                    Some("internal-server-error" | "resource-constraint" | "not-acceptable")
                ) {
                    self.fail(format!("roster set refused: {el:?}"));
                }
            }
            Req::RosterGet => {
                if !ok {
                    if condition(&el).as_deref() != Some("internal-server-error") {
                        self.fail(format!("roster get refused: {el:?}"));
                    }
                    return;
                }
                let items: BTreeSet<String> = el
                    .get_child("query", ROSTER_NS)
                    .map(|q| {
                        q.elements()
                            .filter_map(|i| i.attr("jid").map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                for item in &items {
                    self.check_roster_item(c, item);
                }
                self.check_roster_complete(account, &items, "roster get");
            }
            Req::PepPublish => {
                if !ok && condition(&el).as_deref() != Some("internal-server-error") {
                    self.fail(format!("PEP publish refused: {el:?}"));
                }
            }
            Req::ForeignPepGet { owner } => {
                let items = el
                    .get_child("pubsub", PUBSUB_NS)
                    .and_then(|p| p.get_child("items", PUBSUB_NS))
                    .map(|i| i.elements().count())
                    .unwrap_or(0);
                if ok && items > 0 && !self.approved.contains(&(account, owner)) {
                    self.fail(format!("a{account} read a{owner}'s PEP items: {el:?}"));
                }
            }
        }
    }

    fn client_message(&mut self, c: usize, el: &Element) {
        let account = self.clients[c].account;
        if el.get_child("event", PUBSUB_EVENT_NS).is_some() {
            let from = el.attr("from").unwrap_or_default();
            let allowed = account_of(from)
                .is_some_and(|f| f == account || self.approved.contains(&(account, f)));
            if !allowed {
                self.fail(format!("a{account} got PEP events of {from}: {el:?}"));
            }
            if account_of(from) != Some(account) {
                self.stats.pep_events_to_contacts += 1;
            }
            return;
        }
        let body = el
            .get_child("body", "jabber:client")
            .map(Element::text)
            .unwrap_or_default();
        let Some((serial, from, to)) = parse_msg_marker(&body) else {
            self.fail(format!("message without a marker: {el:?}"));
        };
        let Some(m) = self.messages.get_mut(&serial) else {
            self.fail(format!("message never sent: {el:?}"));
        };
        if (m.from, m.to) != (from, to) {
            self.fail(format!("message marker altered: {el:?}"));
        }
        if el.attr("type") == Some("error") {
            if from != account {
                self.fail(format!(
                    "a{account} got the bounce of a{from}'s message: {el:?}"
                ));
            }
            m.bounced += 1;
            self.stats.messages_bounced += 1;
            return;
        }
        if to != account {
            self.fail(format!("a{account} got a message for a{to}: {el:?}"));
        }
        let sender = el.attr("from").unwrap_or_default();
        let sender_bare = sender.split('/').next().unwrap_or_default();
        if sender_bare != account_jid(from) {
            self.fail(format!("message from a{from} stamped {sender}: {el:?}"));
        }
        m.delivered += 1;
        self.stats.messages_delivered += 1;
    }

    // ---- invariants ------------------------------------------------------------------

    /// Nothing that carries another account's private marker reaches this client.
    fn check_isolation(&self, c: usize, el: &Element) {
        let me = self.clients[c].account;
        let text = String::from_utf8_lossy(&el.to_bytes()).into_owned();
        for prefix in ["priv.a", "ros.a", "pep.a"] {
            for owner in markers(&text, prefix) {
                // PEP items reach subscribers the owner approved (presence access model).
                let allowed =
                    owner == me || (prefix == "pep.a" && self.approved.contains(&(me, owner)));
                if !allowed {
                    self.fail(format!("a{me} was sent a{owner}'s data ({prefix}): {text}"));
                }
            }
        }
        for part in text.split("msg.").skip(1) {
            if let Some((_, from, to)) = parse_msg_marker(&format!("msg.{part}"))
                && from != me
                && to != me
            {
                self.fail(format!(
                    "a{me} saw a message between a{from} and a{to}: {text}"
                ));
            }
        }
    }

    fn check_roster_item(&self, c: usize, jid: &str) {
        let me = self.clients[c].account;
        let ok = markers(jid, "ros.a").next() == Some(me) || self.is_contact(me, jid);
        if !ok {
            self.fail(format!("a{me}'s roster holds {jid}"));
        }
    }

    /// Whether `jid` is an account that `me` exchanged a subscription request with (the
    /// server adds such contacts to rosters itself).
    fn is_contact(&self, me: usize, jid: &str) -> bool {
        account_of(jid).is_some_and(|k| {
            jid == account_jid(k) && (self.subs.contains(&(me, k)) || self.subs.contains(&(k, me)))
        })
    }

    /// `items` (a roster read) holds every acknowledged add and nothing never asked for.
    fn check_roster_complete(&self, account: usize, items: &BTreeSet<String>, what: &str) {
        let m = &self.rosters[account];
        if let Some(missing) = m.acked.difference(items).next() {
            self.fail(format!(
                "{what}: a{account} lost acknowledged roster item {missing}"
            ));
        }
        let in_flight: BTreeSet<&String> = self
            .clients
            .iter()
            .filter(|c| c.account == account)
            .flat_map(|c| c.pending.values())
            .filter_map(|r| match r {
                Req::RosterSet { item } => Some(item),
                _ => None,
            })
            .collect();
        for item in items {
            if self.is_contact(account, item) {
                continue;
            }
            if !m.acked.contains(item) && !m.lost.contains(item) && !in_flight.contains(item) {
                self.fail(format!(
                    "{what}: a{account}'s roster has {item}, never added"
                ));
            }
        }
    }

    /// A value read for (account, ns) is one the model allows: the last acknowledged set,
    /// a set whose outcome was lost, or a set still in flight.
    fn check_private_value(
        &self,
        _c: usize,
        account: usize,
        ns: usize,
        got: Option<&str>,
        what: &str,
    ) {
        let key = self
            .private
            .get(&(account, ns))
            .cloned()
            .unwrap_or_default();
        if got == key.committed.as_deref() {
            return;
        }
        let Some(v) = got else {
            self.fail(format!(
                "{what}: a{account} {} is empty, acknowledged {:?}",
                PRIVATE_NSS[ns], key.committed
            ));
        };
        let in_flight = self
            .clients
            .iter()
            .filter(|c| c.account == account)
            .any(|c| {
                c.pending.values().any(
                    |r| matches!(r, Req::PrivateSet { ns: n, value } if *n == ns && value == v),
                )
            });
        if !key.lost.contains(v) && !in_flight {
            self.fail(format!(
                "{what}: a{account} {} reads {v:?}, acknowledged {:?} (lost write or stale read)",
                PRIVATE_NSS[ns], key.committed
            ));
        }
    }

    fn check(&mut self) {
        let f = self.server.footprint();
        let live = self.clients.iter().filter(|c| c.conn.is_some()).count();
        if f.queued_transmit != 0 || f.queued_events != 0 || f.queued_effects != 0 {
            self.fail(format!("outputs left after draining: {f:?}"));
        }
        if f.pending_effects != self.queue.len() {
            self.fail(format!(
                "server waits for {} effects, the store holds {}",
                f.pending_effects,
                self.queue.len()
            ));
        }
        if f.pending_effects > MAX_PENDING_EFFECTS {
            self.fail(format!("pending effects grow: {f:?}"));
        }
        if f.connections != live {
            self.fail(format!(
                "server has {} connections, {live} clients are connected",
                f.connections
            ));
        }
        if f.sessions > f.connections || f.accounts_online > f.sessions {
            self.fail(format!("sessions without connections: {f:?}"));
        }
        if f.cached_rosters > f.accounts_online {
            self.fail(format!("rosters cached for accounts offline: {f:?}"));
        }
        // A lock is only ever held across a storage effect.
        if f.locked_keys > f.pending_effects || (f.waiting_jobs > 0 && f.locked_keys == 0) {
            self.fail(format!("locks held with nothing in flight: {f:?}"));
        }
        let bound: usize = self
            .clients
            .iter()
            .filter(|c| c.stage == Stage::Bound && c.conn.is_some())
            .count();
        if f.sessions != bound {
            self.fail(format!(
                "server has {} sessions, {bound} clients are bound",
                f.sessions
            ));
        }
    }

    /// Stop the faults, let every client finish, then check with fresh sessions that every
    /// acknowledged write is there, and that the server empties out when all leave.
    fn finish(&mut self) {
        self.step = self.p.steps;
        self.p.fail_per_mille = 0;
        self.settle();
        // Every request of a client still connected has been answered.
        for (i, c) in self.clients.iter().enumerate() {
            if c.conn.is_some() && c.stage == Stage::Bound && !c.pending.is_empty() {
                self.fail(format!("client {i} never got answers to {:?}", c.pending));
            }
        }
        // The store itself holds the acknowledged values (or a lost later one).
        for a in 0..self.p.accounts {
            let jid = BareJid::parse(&account_jid(a)).expect("valid JID");
            for (ns, name) in PRIVATE_NSS.iter().enumerate() {
                let r = self.store.apply(&Op::Get(private::key(&jid, name)));
                let EffectResult::Value(v) = r else {
                    self.fail(format!("store read failed: {r:?}"));
                };
                let text = v.map(|b| String::from_utf8_lossy(&b).into_owned());
                if let Some(t) = &text
                    && markers(t, "priv.a").any(|owner| owner != a)
                {
                    self.fail(format!(
                        "a{a}'s stored private XML holds another's data: {t}"
                    ));
                }
                let stored = text.and_then(|t| markers_full(&t, &format!("priv.a{a}.")));
                self.check_private_value(0, a, ns, stored.as_deref(), "store");
            }
        }
        // A fresh session per account reads everything back and collects offline messages.
        let mut fresh = Vec::new();
        for a in 0..self.p.accounts {
            let mut c = Client::new(a);
            c.resource = "final";
            self.clients.push(c);
            let idx = self.clients.len() - 1;
            fresh.push(idx);
            self.connect_with(idx, "final");
        }
        self.settle();
        for &idx in &fresh {
            if self.clients[idx].stage != Stage::Bound {
                self.fail(format!("final login of client {idx} failed"));
            }
            let client = &mut self.clients[idx];
            client.available = true;
            client.queue("<presence/>");
            client.iq(
                Req::RosterGet,
                &format!("<iq type='get' id='{{ID}}'><query xmlns='{ROSTER_NS}'/></iq>"),
            );
            for (ns, name) in PRIVATE_NSS.iter().enumerate() {
                client.iq(
                    Req::PrivateGet { ns },
                    &format!(
                        "<iq type='get' id='{{ID}}'><query xmlns='{PRIVATE_NS}'>\
                         <x xmlns='{name}'/></query></iq>"
                    ),
                );
            }
        }
        self.settle();
        for &idx in &fresh {
            if !self.clients[idx].pending.is_empty() {
                self.fail(format!(
                    "final reads unanswered: {:?}",
                    self.clients[idx].pending
                ));
            }
        }
        // Messages whose sender is still connected were delivered or bounced.
        for (i, c) in self.clients.iter().enumerate() {
            if c.conn.is_none() || c.stage != Stage::Bound {
                continue;
            }
            for s in &c.sent_messages {
                let m = &self.messages[s];
                if m.delivered == 0 && m.bounced == 0 {
                    self.fail(format!(
                        "message {s} of client {i} (a{} → a{}) neither delivered nor bounced",
                        m.from, m.to
                    ));
                }
            }
        }
        // Everyone leaves: nothing may stay behind.
        for c in 0..self.clients.len() {
            self.kill(c);
        }
        self.settle();
        let f = self.server.footprint();
        if f != elsinore_server::Footprint::default() {
            self.fail(format!("server state left after everyone left: {f:?}"));
        }
    }

    fn connect_with(&mut self, c: usize, resource: &'static str) {
        let id = self.server.accept(self.now);
        let client = &mut self.clients[c];
        client.resource = resource;
        client.conn = Some(id);
        client.queue(HEADER);
        self.by_conn.insert(id, c);
        self.pump();
    }

    /// Deliver every byte and complete every effect until nothing moves.
    fn settle(&mut self) {
        for _ in 0..MAX_PUMP_ROUNDS {
            let mut moved = false;
            for c in 0..self.clients.len() {
                if self.clients[c].conn.is_some() && self.clients[c].unsent() > 0 {
                    let client = &mut self.clients[c];
                    let bytes = client.out[client.sent..].to_vec();
                    client.sent = client.out.len();
                    let id = client.conn.unwrap_or(ConnId(0));
                    self.server.handle_input(id, &bytes, self.now);
                    self.pump();
                    moved = true;
                }
            }
            while let Some(q) = self.queue.pop_front() {
                self.complete(q.effect);
                moved = true;
            }
            self.check();
            if !moved {
                return;
            }
        }
        self.fail("the simulation did not settle");
    }
}

/// `aN@sim.lit[/resource]` → N.
fn account_of(jid: &str) -> Option<usize> {
    let bare = jid.split('/').next()?;
    bare.strip_suffix(&format!("@{DOMAIN}"))?
        .strip_prefix('a')?
        .parse()
        .ok()
}

/// The stanza-error condition of an error reply.
fn condition(el: &Element) -> Option<String> {
    let err = el.get_child("error", "jabber:client")?;
    err.elements()
        .find(|c| c.ns == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name != "text")
        .map(|c| c.name.clone())
}

/// Account numbers of every `{prefix}{n}.` marker in `text`.
fn markers<'a>(text: &'a str, prefix: &'a str) -> impl Iterator<Item = usize> + 'a {
    text.split(prefix).skip(1).filter_map(|rest| {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if rest[digits.len()..].starts_with('.') {
            digits.parse().ok()
        } else {
            None
        }
    })
}

/// The whole marker starting with `prefix` (`priv.a3.` → `priv.a3.17`), if any.
fn markers_full(text: &str, prefix: &str) -> Option<String> {
    let at = text.find(prefix)?;
    let rest = &text[at + prefix.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let mut s = String::new();
    let _ = write!(s, "{prefix}{digits}");
    Some(s)
}

/// `msg.<serial>.a<from>.a<to>.` → (serial, from, to).
fn parse_msg_marker(text: &str) -> Option<(u64, usize, usize)> {
    let rest = text.strip_prefix("msg.")?;
    let mut parts = rest.splitn(4, '.');
    let serial = parts.next()?.parse().ok()?;
    let from = parts.next()?.strip_prefix('a')?.parse().ok()?;
    let to = parts.next()?.strip_prefix('a')?.parse().ok()?;
    Some((serial, from, to))
}
