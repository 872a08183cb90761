//! A virtual network: one `Server`, several client `Connection`s, a
//! `MemoryStore` answering effects, TLS simulated. No sockets, no clock.

#![allow(dead_code)]

use std::collections::HashMap;

use elsinore_jid::{BareJid, Jid};
use elsinore_server::{ConnId, Instant, Server, ServerConfig, ServerEvent, accounts};
use elsinore_storage::{MemoryStore, Store};
use elsinore_stream::{ClientConfig, Connection, Event, Limits, TlsPolicy};
use elsinore_xml::Element;

pub const T0: Instant = Instant::from_millis(5_000);

pub struct Net {
    pub server: Server,
    pub store: MemoryStore,
    pub clients: HashMap<ConnId, Connection>,
    pub inbox: HashMap<ConnId, Vec<Element>>,
    pub client_events: HashMap<ConnId, Vec<Event>>,
    /// Set to make every storage effect fail.
    pub fail_store: bool,
    /// Set to make the storage effects it selects fail.
    pub fail_if: Option<fn(&elsinore_storage::Op) -> bool>,
    /// Server-to-server (tests/s2s.rs): connections the server asked for, bytes and
    /// closes for connections that are not clients.
    pub connects: Vec<(ConnId, String)>,
    pub s2s_out: Vec<(ConnId, Vec<u8>)>,
    pub s2s_closed: Vec<ConnId>,
    /// Virtual time of everything `drive` feeds (T0 unless a test moves it).
    pub now: Instant,
    /// Set to `Some` to keep every byte the server writes to each connection.
    pub wire: Option<HashMap<ConnId, Vec<u8>>>,
    /// Set to hold effects and complete them later (see [`Schedule`]); `None`: each
    /// effect completes as soon as it is polled.
    pub schedule: Option<Schedule>,
    held: Vec<elsinore_storage::Effect>,
    /// Effects failed by [`Schedule::fail_one_in`] so far.
    pub failed: usize,
    seed: u8,
    restarts: u8,
}

/// Storage effects held by `drive` and completed later, chosen by a seeded generator: one
/// at a time, each round with probability 1/2 (always when nothing else moves), so the
/// server handles other input while effects are outstanding. The store applies an effect
/// when it completes.
pub struct Schedule {
    /// Generator state (xorshift64; must not be 0).
    pub state: u64,
    /// Complete any held effect, not only the oldest. The run loop asks for emission
    /// order; `tests/simulation.rs` also tries any order.
    pub any_order: bool,
    /// Fail about one effect in this many with `Unavailable` (the store changes nothing);
    /// 0: none fails. Failures are counted in [`Net::failed`].
    pub fail_one_in: u64,
}

impl Schedule {
    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }
}

impl Net {
    pub fn new(domain: &str) -> Self {
        let mut cfg = ServerConfig::new(domain);
        cfg.scram_iterations = 4096;
        Self::with_config(cfg)
    }

    pub fn with_config(cfg: ServerConfig) -> Self {
        Net {
            server: Server::new(cfg, [9; 32], T0),
            store: MemoryStore::default(),
            clients: HashMap::new(),
            inbox: HashMap::new(),
            client_events: HashMap::new(),
            fail_store: false,
            fail_if: None,
            connects: Vec::new(),
            s2s_out: Vec::new(),
            s2s_closed: Vec::new(),
            now: T0,
            wire: None,
            schedule: None,
            held: Vec::new(),
            failed: 0,
            seed: 1,
            restarts: 0,
        }
    }

    pub fn add_user(&mut self, jid: &str, password: &str) {
        let jid = BareJid::parse(jid).expect("valid bare JID");
        let op = accounts::create_account_op(&jid, password, [7; 32], 4096).expect("op");
        let r = self.store.apply(&op);
        assert!(matches!(r, elsinore_storage::EffectResult::Done), "{r:?}");
    }

    /// Open a client connection and drive it to the end of negotiation.
    pub fn connect(&mut self, jid: &str, password: &str) -> ConnId {
        self.connect_from(None, jid, password)
    }

    /// [`Net::connect`] from `peer` (as the adapter reports it), or from an unknown address.
    pub fn connect_from(
        &mut self,
        peer: Option<std::net::IpAddr>,
        jid: &str,
        password: &str,
    ) -> ConnId {
        let id = match peer {
            Some(ip) => self.server.accept_from(ip, self.now),
            None => self.server.accept(self.now),
        };
        self.seed += 1;
        let client = Connection::new_client(
            ClientConfig {
                jid: Jid::parse(jid).expect("valid JID"),
                password: password.into(),
                tls: TlsPolicy::Required,
            },
            Limits::default(),
            [self.seed; 32],
            self.now,
        );
        self.clients.insert(id, client);
        self.drive();
        id
    }

    pub fn jid_of(&self, id: ConnId) -> Option<Jid> {
        self.clients.get(&id).and_then(|c| c.jid().cloned())
    }

    pub fn send(&mut self, id: ConnId, el: &Element) {
        self.clients
            .get_mut(&id)
            .expect("known client")
            .send(el)
            .expect("established");
        self.drive();
    }

    /// Send raw bytes from a client as if its stack wrote them.
    pub fn send_raw(&mut self, id: ConnId, xml: &str) {
        self.server.handle_input(id, xml.as_bytes(), self.now);
        self.drive();
    }

    /// Send an iq and return the reply with the same id.
    pub fn iq(&mut self, id: ConnId, xml: &str) -> Element {
        let el = Element::parse(xml.as_bytes()).expect("test XML parses");
        let want = el.attr("id").expect("iq has an id").to_string();
        self.send(id, &el);
        let inbox = self.inbox.entry(id).or_default();
        let pos = inbox
            .iter()
            .position(|e| e.name == "iq" && e.attr("id") == Some(want.as_str()))
            .unwrap_or_else(|| panic!("no reply to iq {want}; inbox: {inbox:?}"));
        inbox.remove(pos)
    }

    /// `a` (bare JID `a_bare`) and `b` subscribe to each other's presence, each approving
    /// the other's request.
    pub fn mutual_subscription(&mut self, a: ConnId, a_bare: &str, b: ConnId, b_bare: &str) {
        for (from, to, ty) in [
            (a, b_bare, "subscribe"),
            (b, a_bare, "subscribed"),
            (b, a_bare, "subscribe"),
            (a, b_bare, "subscribed"),
        ] {
            let p = format!("<presence xmlns='jabber:client' to='{to}' type='{ty}'/>");
            self.send(
                from,
                &Element::parse(p.as_bytes()).expect("test XML parses"),
            );
        }
    }

    /// The session's roster as (jid, subscription) pairs, fetched with a roster get.
    pub fn roster(&mut self, id: ConnId) -> Vec<(String, String)> {
        let r = self.iq(
            id,
            "<iq type='get' id='roster-get' xmlns='jabber:client'>\
             <query xmlns='jabber:iq:roster'/></iq>",
        );
        let q = r.get_child("query", "jabber:iq:roster").expect("roster");
        q.elements()
            .map(|i| {
                (
                    i.attr("jid").unwrap_or_default().to_string(),
                    i.attr("subscription").unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    pub fn take_inbox(&mut self, id: ConnId) -> Vec<Element> {
        self.inbox.remove(&id).unwrap_or_default()
    }

    pub fn drive(&mut self) {
        for _ in 0..500 {
            let mut progress = false;
            // Client → server.
            let ids: Vec<ConnId> = self.clients.keys().copied().collect();
            for id in &ids {
                let out = self
                    .clients
                    .get_mut(id)
                    .map(|c| c.take_transmit())
                    .unwrap_or_default();
                if !out.is_empty() {
                    progress = true;
                    self.server.handle_input(*id, &out, self.now);
                }
            }
            // Server → clients.
            while let Some((id, bytes)) = self.server.poll_transmit() {
                progress = true;
                self.record(id, &bytes);
                if let Some(c) = self.clients.get_mut(&id) {
                    c.handle_input(&bytes, self.now);
                } else {
                    self.s2s_out.push((id, bytes));
                }
            }
            while let Some(ev) = self.server.poll_event() {
                progress = true;
                match ev {
                    ServerEvent::UpgradeTls(id) => {
                        while let Some((to, bytes)) = self.server.poll_transmit() {
                            self.record(to, &bytes);
                            if let Some(c) = self.clients.get_mut(&to) {
                                c.handle_input(&bytes, self.now);
                            } else {
                                self.s2s_out.push((to, bytes));
                            }
                        }
                        self.server.handle_tls_ready(id, self.now);
                    }
                    ServerEvent::Close(id) => {
                        if let Some(c) = self.clients.get_mut(&id) {
                            c.handle_eof(self.now);
                        } else {
                            self.s2s_closed.push(id);
                        }
                    }
                    ServerEvent::Connect { conn, domain } => self.connects.push((conn, domain)),
                }
            }
            while let Some(effect) = self.server.poll_effect() {
                progress = true;
                if self.schedule.is_some() {
                    self.held.push(effect);
                } else {
                    self.complete(effect);
                }
            }
            if let Some(schedule) = &mut self.schedule
                && !self.held.is_empty()
            {
                let r = schedule.next();
                if !progress || r & 1 == 0 {
                    let i = if schedule.any_order {
                        (r >> 1) as usize % self.held.len()
                    } else {
                        0
                    };
                    let fail = schedule.fail_one_in > 0 && (r >> 33) % schedule.fail_one_in == 0;
                    let effect = self.held.remove(i);
                    if fail {
                        self.failed += 1;
                        let result = elsinore_storage::EffectResult::Failed(
                            elsinore_storage::StoreError::Unavailable("injected".into()),
                        );
                        self.server.handle_effect_done(effect.id, result, self.now);
                    } else {
                        self.complete(effect);
                    }
                }
                progress = true;
            }
            for id in &ids {
                let Some(c) = self.clients.get_mut(id) else {
                    continue;
                };
                while let Some(ev) = c.poll_event() {
                    progress = true;
                    match &ev {
                        Event::UpgradeTls => c.handle_tls_ready(self.now),
                        Event::Stanza(el) => self.inbox.entry(*id).or_default().push(el.clone()),
                        _ => {}
                    }
                    self.client_events.entry(*id).or_default().push(ev);
                }
            }
            if !progress {
                assert_eq!(self.server.outstanding_effects(), 0, "dangling effects");
                return;
            }
        }
        panic!("virtual network did not settle in 500 rounds");
    }

    fn record(&mut self, id: ConnId, bytes: &[u8]) {
        if let Some(wire) = &mut self.wire {
            wire.entry(id).or_default().extend_from_slice(bytes);
        }
    }

    fn complete(&mut self, effect: elsinore_storage::Effect) {
        let result = if self.fail_store || self.fail_if.is_some_and(|f| f(&effect.op)) {
            elsinore_storage::EffectResult::Failed(elsinore_storage::StoreError::Unavailable(
                "test store is down".into(),
            ))
        } else {
            self.store.apply(&effect.op)
        };
        self.server.handle_effect_done(effect.id, result, self.now);
    }

    pub fn closed_error(&self, id: ConnId) -> Option<Option<String>> {
        self.client_events.get(&id)?.iter().find_map(|e| match e {
            Event::Closed { error } => Some(error.clone()),
            _ => None,
        })
    }
}

/// The defined condition of an error stanza.
pub fn error_condition(el: &Element) -> Option<String> {
    let err = el.get_child("error", "jabber:client")?;
    err.elements()
        .find(|c| c.ns == "urn:ietf:params:xml:ns:xmpp-stanzas" && c.name != "text")
        .map(|c| c.name.clone())
}

/// Helpers for PEP tests (tests/pep.rs).
impl Net {
    /// Simulate a server restart: a new `Server` with the same configuration; every
    /// connection is gone, the store is kept (held effects are lost, as in a crash).
    pub fn restart(&mut self) {
        let cfg = self.server.config().clone();
        // A new seed each time, as a real start gets: generated ids must not repeat.
        self.restarts = self.restarts.wrapping_add(1);
        self.server = Server::new(cfg, [10u8.wrapping_add(self.restarts); 32], T0);
        self.held.clear();
        self.clients.clear();
        self.inbox.clear();
        self.client_events.clear();
    }

    /// Connect and send initial presence, so the session is available; the inbox is
    /// emptied of what that presence brought.
    pub fn connect_available(&mut self, jid: &str, password: &str) -> ConnId {
        let id = self.connect(jid, password);
        let presence = Element::new("presence", "jabber:client");
        self.send(id, &presence);
        self.take_inbox(id);
        id
    }

    /// Headline messages in `id`'s inbox carrying a `pubsub#event`, removed from it.
    pub fn take_events(&mut self, id: ConnId) -> Vec<Element> {
        let inbox = self.inbox.entry(id).or_default();
        let (events, rest): (Vec<Element>, Vec<Element>) = inbox.drain(..).partition(|e| {
            e.name == "message"
                && e.get_child("event", "http://jabber.org/protocol/pubsub#event")
                    .is_some()
        });
        *inbox = rest;
        events
    }
}

pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";

/// The disco#info `<query/>` of a client that wants the events of `nodes`
/// (`NODE+notify`, XEP-0163 §4.2), and its XEP-0115 `sha-1` ver.
pub fn caps_info(nodes: &[&str]) -> (Element, String) {
    let mut q = Element::new("query", NS_DISCO_INFO)
        .with_child(
            Element::new("identity", NS_DISCO_INFO)
                .with_attr("category", "client")
                .with_attr("type", "pc")
                .with_attr("name", "test"),
        )
        .with_child(Element::new("feature", NS_DISCO_INFO).with_attr("var", NS_DISCO_INFO));
    for n in nodes {
        q = q.with_child(
            Element::new("feature", NS_DISCO_INFO).with_attr("var", format!("{n}+notify")),
        );
    }
    let ver = elsinore_server::caps::ver_sha1(&q).expect("well-formed");
    (q, ver)
}

/// Available presence carrying XEP-0115 caps `hash` / `ver`.
pub fn caps_presence(hash: Option<&str>, ver: &str) -> Element {
    let mut c = Element::new("c", NS_CAPS)
        .with_attr("node", "urn:elsinore:test")
        .with_attr("ver", ver);
    if let Some(h) = hash {
        c.set_attr("hash", h);
    }
    Element::new("presence", "jabber:client").with_child(c)
}

/// Helpers for capability-filtered PEP tests.
impl Net {
    /// The server's disco#info query for caps in `id`'s inbox, removed from it.
    pub fn take_caps_query(&mut self, id: ConnId) -> Option<Element> {
        let inbox = self.inbox.entry(id).or_default();
        let pos = inbox.iter().position(|e| {
            e.name == "iq"
                && e.attr("type") == Some("get")
                && e.get_child("query", NS_DISCO_INFO).is_some()
        })?;
        Some(inbox.remove(pos))
    }

    /// Answer the server's caps query `iq` with `info`.
    pub fn answer_caps(&mut self, id: ConnId, iq: &Element, info: &Element) {
        let mut info = info.clone();
        if let Some(node) = iq
            .get_child("query", NS_DISCO_INFO)
            .and_then(|q| q.attr("node"))
        {
            info.set_attr("node", node);
        }
        let reply = Element::new("iq", "jabber:client")
            .with_attr("type", "result")
            .with_attr("id", iq.attr("id").unwrap_or_default())
            .with_attr("to", iq.attr("from").unwrap_or_default())
            .with_child(info);
        self.send(id, &reply);
    }

    /// Send available presence advertising interest in `nodes` and answer the server's
    /// caps query if one comes; whether one came.
    pub fn announce(&mut self, id: ConnId, nodes: &[&str]) -> bool {
        let (info, ver) = caps_info(nodes);
        self.send(id, &caps_presence(Some("sha-1"), &ver));
        match self.take_caps_query(id) {
            Some(q) => {
                self.answer_caps(id, &q, &info);
                true
            }
            None => false,
        }
    }

    /// [`Net::connect_available`] with interest in `nodes` (XEP-0115 `+notify`).
    pub fn connect_notify(&mut self, jid: &str, password: &str, nodes: &[&str]) -> ConnId {
        let id = self.connect(jid, password);
        self.announce(id, nodes);
        self.take_inbox(id);
        id
    }
}

/// The (type, from) of each presence among `stanzas`, `available` for a presence
/// without a type.
pub fn presence_types(stanzas: &[Element]) -> Vec<(&str, &str)> {
    stanzas
        .iter()
        .filter(|e| e.name == "presence")
        .map(|e| {
            (
                e.attr("type").unwrap_or("available"),
                e.attr("from").unwrap_or_default(),
            )
        })
        .collect()
}
