//! A whole `elsinore_server::Server` on a `MemoryStore` (every effect answered in order,
//! TLS simulated) driven the way an adapter's run loop would, for the `server_connection`
//! and `s2s_connection` targets: scripted client logins, readers that check everything the
//! server writes is well-formed XML, and the checks that a bystander session is unharmed.

use std::collections::HashMap;
use std::sync::OnceLock;

use elsinore_jid::BareJid;
use elsinore_sasl::StoredCredentials;
use elsinore_server::{ConnId, Instant, Server, ServerConfig, ServerEvent, accounts};
use elsinore_storage::{EffectResult, MemoryStore, Op, Store};
use elsinore_xml::{Element, StreamParser, XmlEvent, XmlLimits};

use crate::{b64, credentials};

pub const T0: Instant = Instant::from_millis(5_000);
pub const DOMAIN: &str = "shakespeare.lit";
pub const HAMLET_PW: &str = "to-be";
/// Not in any seed: the fuzzer must not be able to log in as session 2's account.
pub const OPHELIA_PW: &str = "nymph, in thy orisons 0x5eed 7c1f";
/// Rounds of the run loop before it counts as not settling.
pub const MAX_ROUNDS: usize = 1000;
pub const SASL_NS: &str = "urn:ietf:params:xml:ns:xmpp-sasl";

pub const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='shakespeare.lit' version='1.0'>";

/// Credentials with 2 PBKDF2 rounds (PLAIN verification derives per login), made once.
pub fn creds() -> &'static [(&'static str, StoredCredentials); 2] {
    static C: OnceLock<[(&str, StoredCredentials); 2]> = OnceLock::new();
    C.get_or_init(|| {
        [
            (
                "hamlet",
                credentials(HAMLET_PW, b"salt-h-1", b"salt-h-256", 2),
            ),
            (
                "ophelia",
                credentials(OPHELIA_PW, b"salt-o-1", b"salt-o-256", 2),
            ),
        ]
    })
}

pub fn auth(user: &str, password: &str) -> String {
    let initial = b64(format!("\0{user}\0{password}").as_bytes());
    format!("<auth xmlns='{SASL_NS}' mechanism='PLAIN'>{initial}</auth>")
}

pub fn bind(resource: &str) -> String {
    format!(
        "<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
         <resource>{resource}</resource></bind></iq>"
    )
}

/// Reads what the server writes to one connection, as a client would.
pub struct Reader {
    pub parser: StreamParser,
    pub elements: Vec<Element>,
    pub closed: bool,
    /// Keep elements (session 2) or only check well-formedness (session 1).
    keep: bool,
}

impl Reader {
    pub fn new(keep: bool) -> Self {
        let limits = XmlLimits {
            // What the server sends may be larger than what it accepts (wrapping, escaping).
            max_element_bytes: usize::MAX,
            max_token_length: 1 << 20,
            ..XmlLimits::default()
        };
        Reader {
            parser: StreamParser::new(limits),
            elements: Vec::new(),
            closed: false,
            keep,
        }
    }

    pub fn feed(&mut self, mut buf: &[u8]) {
        loop {
            match self.parser.parse(&mut buf) {
                Ok(None) => return,
                Ok(Some(XmlEvent::StreamOpen(_))) => {}
                Ok(Some(XmlEvent::Raw(_))) => panic!("raw element without keep_raw"),
                Ok(Some(XmlEvent::StreamClose)) => {
                    self.closed = true;
                    assert!(buf.is_empty(), "bytes after </stream:stream>: {buf:?}");
                    return;
                }
                Ok(Some(XmlEvent::Element(e))) => {
                    // SASL success restarts the stream: the next bytes are a new header.
                    // (A TLS upgrade restarts it at the `UpgradeTls` event: after
                    // `<proceed/>` the server may still end the old stream.)
                    if e.is("success", SASL_NS) {
                        self.parser.reset();
                    }
                    if self.keep {
                        self.elements.push(e);
                    }
                }
                Err(e) => panic!(
                    "server wrote malformed XML ({e:?}): {}",
                    String::from_utf8_lossy(buf)
                ),
            }
        }
    }
}

pub struct Net {
    pub server: Server,
    pub store: MemoryStore,
    pub readers: HashMap<ConnId, Reader>,
    pub closed: Vec<ConnId>,
}

impl Net {
    /// Plaintext auth allowed, hamlet and ophelia registered.
    pub fn new() -> Self {
        let mut cfg = ServerConfig::new(DOMAIN);
        cfg.allow_plaintext_auth = true;
        cfg.scram_iterations = 4096;
        Net::with_config(cfg)
    }

    /// The same accounts on a server with `cfg`.
    pub fn with_config(cfg: ServerConfig) -> Self {
        let mut store = MemoryStore::default();
        for (user, c) in creds() {
            // Valid constant JIDs.
            let jid = BareJid::new(Some(user), DOMAIN).expect("valid JID");
            let r = store.apply(&Op::Put(accounts::credentials_key(&jid), c.to_bytes()));
            assert!(matches!(r, EffectResult::Done), "{r:?}");
        }
        Net {
            server: Server::new(cfg, [9; 32], T0),
            store,
            readers: HashMap::new(),
            closed: Vec::new(),
        }
    }

    pub fn accept(&mut self, keep: bool) -> ConnId {
        let id = self.server.accept(T0);
        self.readers.insert(id, Reader::new(keep));
        id
    }

    pub fn input(&mut self, id: ConnId, bytes: &[u8]) {
        self.server.handle_input(id, bytes, T0);
        self.pump();
    }

    /// The adapter's run loop: transmit, events, effects, until nothing moves.
    pub fn pump(&mut self) {
        for _ in 0..MAX_ROUNDS {
            let mut progress = false;
            while let Some((id, bytes)) = self.server.poll_transmit() {
                progress = true;
                assert!(!self.closed.contains(&id), "bytes for closed {id:?}");
                if let Some(r) = self.readers.get_mut(&id) {
                    r.feed(&bytes);
                }
            }
            let mut failed = Vec::new();
            while let Some(ev) = self.server.poll_event() {
                progress = true;
                match ev {
                    // TLS is simulated: the handshake completes at once, and the stream
                    // inside TLS is a new one.
                    ServerEvent::UpgradeTls(id) => {
                        if let Some(r) = self.readers.get_mut(&id) {
                            r.parser.reset();
                        }
                        self.server.handle_tls_ready(id, T0);
                    }
                    ServerEvent::Close(id) => self.closed.push(id),
                    // No network: every outgoing server-to-server connection fails, as
                    // an adapter reports later (the bytes already queued go out first).
                    ServerEvent::Connect { conn, .. } => failed.push(conn),
                }
            }
            for conn in failed {
                progress = true;
                self.server.handle_connect_failed(conn, T0);
            }
            while let Some(effect) = self.server.poll_effect() {
                progress = true;
                let result = self.store.apply(&effect.op);
                self.server.handle_effect_done(effect.id, result, T0);
            }
            if !progress {
                assert_eq!(self.server.outstanding_effects(), 0, "dangling effects");
                return;
            }
        }
        panic!("run loop did not settle in {MAX_ROUNDS} rounds");
    }

    /// Session 2's replies so far.
    pub fn take(&mut self, id: ConnId) -> Vec<Element> {
        self.readers
            .get_mut(&id)
            .map(|r| std::mem::take(&mut r.elements))
            .unwrap_or_default()
    }
}

pub fn login(net: &mut Net, id: ConnId, user: &str, password: &str, resource: &str) {
    net.input(id, HEADER.as_bytes());
    net.input(id, auth(user, password).as_bytes());
    net.input(id, HEADER.as_bytes());
    net.input(id, bind(resource).as_bytes());
}

pub fn iq_reply(replies: &[Element], id: &str) -> Option<Element> {
    replies
        .iter()
        .find(|e| e.name == "iq" && e.attr("id") == Some(id))
        .cloned()
}

/// `doc` cut at the positions the little-endian `u16`s of `cut_bytes` name (modulo its length).
pub fn chunks(doc: &[u8], cut_bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (doc.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts {
        out.push((start, c));
        start = c;
    }
    out.push((start, doc.len()));
    out
}

/// Session 2 is unharmed: still open, and XEP-0049 still works for it.
pub fn check_bystander(net: &mut Net, s2: ConnId) {
    assert!(!net.closed.contains(&s2), "session 2 was closed");
    net.take(s2);
    net.input(
        s2,
        b"<iq type='set' id='h1'><query xmlns='jabber:iq:private'>\
          <health xmlns='urn:example:fuzz'><n>42</n></health></query></iq>",
    );
    net.input(
        s2,
        b"<iq type='get' id='h2'><query xmlns='jabber:iq:private'>\
          <health xmlns='urn:example:fuzz'/></query></iq>",
    );
    let replies = net.take(s2);
    let set = iq_reply(&replies, "h1").expect("reply to the set");
    assert_eq!(set.attr("type"), Some("result"), "{set:?}");
    let get = iq_reply(&replies, "h2").expect("reply to the get");
    assert_eq!(get.attr("type"), Some("result"), "{get:?}");
    let n = get
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("health", "urn:example:fuzz"))
        .and_then(|h| h.get_child("n", "urn:example:fuzz"))
        .map(Element::text);
    assert_eq!(n.as_deref(), Some("42"), "{get:?}");
    assert!(!net.closed.contains(&s2), "session 2 was closed");
}

/// The targets' input layout: byte 0 the mode, byte 1 the number of cuts (mod 8), a
/// little-endian `u16` per cut, then the stream bytes. `None` when too short.
pub fn split_input(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let [mode, n, rest @ ..] = data else {
        return None;
    };
    let n = usize::from(n % 8);
    if rest.len() < 2 * n {
        return None;
    }
    let (cut_bytes, doc) = rest.split_at(2 * n);
    Some((*mode, cut_bytes, doc))
}

/// Logs session 2 (ophelia, the bystander) in by script and checks it is bound.
pub fn bystander(net: &mut Net) -> ConnId {
    let s2 = net.accept(true);
    login(net, s2, "ophelia", OPHELIA_PW, "grave");
    let bound = iq_reply(&net.take(s2), "bind_1").expect("session 2 is bound");
    assert_eq!(bound.attr("type"), Some("result"), "{bound:?}");
    s2
}
