//! The client core against the server core, bytes moved in memory (no sockets, no clock).
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use elsinore_client::{Client, ClientEvent, IqError, IqId, Options, Reconnect, private};
use elsinore_jid::{BareJid, Jid};
use elsinore_server::{ConnId, Server, ServerConfig, ServerEvent, accounts};
use elsinore_storage::{MemoryStore, Store};
use elsinore_stream::{ClientConfig, Instant, TlsPolicy};
use elsinore_xml::Element;

const DOMAIN: &str = "elsinore.lit";

struct World {
    server: Server,
    store: MemoryStore,
    now: Instant,
    /// Every chunk each client wrote, in order.
    sent: HashMap<ConnId, Vec<Vec<u8>>>,
}

impl World {
    fn new(users: &[(&str, &str)]) -> World {
        let mut store = MemoryStore::new();
        for (i, (user, password)) in users.iter().enumerate() {
            let jid = BareJid::from_str(&format!("{user}@{DOMAIN}")).unwrap();
            let op = accounts::create_account_op(&jid, password, [i as u8; 32], 4096).unwrap();
            assert!(!store.apply(&op).is_failed());
        }
        let mut config = ServerConfig::new(DOMAIN);
        config.allow_plaintext_auth = true;
        config.scram_iterations = 4096;
        World {
            server: Server::new(config, [1; 32], Instant::from_millis(0)),
            store,
            now: Instant::from_millis(0),
            sent: HashMap::new(),
        }
    }

    fn client(&mut self, jid: &str, password: &str, options: Options) -> (Client, ConnId) {
        let config = ClientConfig {
            jid: Jid::from_str(jid).unwrap(),
            password: password.into(),
            tls: TlsPolicy::Disabled,
        };
        let client = Client::new(config, options, [9; 32], self.now);
        (client, self.server.accept(self.now))
    }

    /// Moves bytes both ways and runs storage until nothing moves; returns client events.
    fn pump(&mut self, clients: &mut [(&mut Client, ConnId)]) -> Vec<Vec<ClientEvent>> {
        let mut events: Vec<Vec<ClientEvent>> = vec![Vec::new(); clients.len()];
        loop {
            let mut moved = false;
            for (client, conn) in clients.iter_mut() {
                let out = client.take_transmit();
                if !out.is_empty() {
                    moved = true;
                    self.server.handle_input(*conn, &out, self.now);
                    self.sent.entry(*conn).or_default().push(out);
                }
            }
            while let Some(effect) = self.server.poll_effect() {
                moved = true;
                let result = self.store.apply(&effect.op);
                self.server.handle_effect_done(effect.id, result, self.now);
            }
            while let Some((to, bytes)) = self.server.poll_transmit() {
                moved = true;
                if let Some((c, _)) = clients.iter_mut().find(|(_, id)| *id == to) {
                    c.handle_input(&bytes, self.now);
                }
            }
            while let Some(event) = self.server.poll_event() {
                moved = true;
                if let ServerEvent::Close(to) = event
                    && let Some((c, _)) = clients.iter_mut().find(|(_, id)| *id == to)
                {
                    c.handle_eof(self.now);
                }
            }
            for (i, (client, _)) in clients.iter_mut().enumerate() {
                while let Some(e) = client.poll_event() {
                    moved = true;
                    events[i].push(e);
                }
            }
            if !moved {
                return events;
            }
        }
    }
}

fn response(events: &[ClientEvent], want: IqId) -> Result<Element, IqError> {
    events
        .iter()
        .find_map(|e| match e {
            ClientEvent::IqResponse { id, result } if *id == want => Some(result.clone()),
            _ => None,
        })
        .expect("response reported")
}

#[test]
fn login_private_storage_and_close() {
    let mut world = World::new(&[("hamlet", "s3cret")]);
    let (mut c, id) = world.client(&format!("hamlet@{DOMAIN}"), "s3cret", Options::default());
    let ev = world.pump(&mut [(&mut c, id)]);
    assert!(
        matches!(&ev[0][..], [ClientEvent::Established { .. }]),
        "{ev:?}"
    );
    assert!(c.is_established());

    let prefs = Element::new("exodus", "exodus:prefs").with_text("Hamlet");
    let set = c.private_set(prefs.clone(), world.now).unwrap();
    let get = c.private_get("exodus", "exodus:prefs", world.now).unwrap();
    assert_eq!(c.outstanding_iqs(), 2);
    let ev = world.pump(&mut [(&mut c, id)]);
    response(&ev[0], set).unwrap();
    let got = private::parse_get_response(&response(&ev[0], get).unwrap()).unwrap();
    assert_eq!(got, vec![prefs]);
    assert_eq!(c.outstanding_iqs(), 0);

    c.close(world.now);
    let ev = world.pump(&mut [(&mut c, id)]);
    assert!(
        matches!(
            &ev[0][..],
            [ClientEvent::Closed {
                error: None,
                retry_in: None
            }]
        ),
        "{ev:?}"
    );
}

#[test]
fn stanza_errors_and_timeouts_are_reported() {
    let mut world = World::new(&[("hamlet", "s3cret")]);
    let options = Options {
        iq_timeout: Duration::from_secs(5),
        ..Options::default()
    };
    let (mut c, id) = world.client(&format!("hamlet@{DOMAIN}"), "s3cret", options);
    world.pump(&mut [(&mut c, id)]);

    // Listing 4: a query without child is an error.
    let bad = Element::new("iq", "jabber:client")
        .with_attr("type", "get")
        .with_child(Element::new("query", private::NS));
    let bad = c.send_iq(bad, world.now).unwrap();
    let ev = world.pump(&mut [(&mut c, id)]);
    assert!(matches!(response(&ev[0], bad), Err(IqError::Stanza(_))));

    // A request whose bytes never reach the server gets no answer.
    let lost = c.private_get("a", "b", world.now).unwrap();
    c.take_transmit(); // the bytes are lost on the way
    assert_eq!(
        c.poll_timeout(),
        Some(world.now + Duration::from_secs(5)),
        "the iq deadline is the next timeout"
    );
    world.now = world.now + Duration::from_secs(5);
    c.handle_timeout(world.now);
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::IqResponse {
            id: lost,
            result: Err(IqError::Timeout)
        })
    );
}

#[test]
fn forged_response_from_a_third_party_does_not_match() {
    let mut world = World::new(&[("hamlet", "s3cret")]);
    let (mut c, id) = world.client(&format!("hamlet@{DOMAIN}"), "s3cret", Options::default());
    world.pump(&mut [(&mut c, id)]);
    let get = private::get_request("a", "b").with_attr("id", "guess");
    let req = c.send_iq(get, world.now).unwrap();
    c.take_transmit();
    // A result from someone else with the guessed id arrives first (as a server would route
    // it from another account).
    let forged =
        format!("<iq xmlns='jabber:client' type='result' id='guess' from='claudius@{DOMAIN}/x'/>");
    c.handle_input(forged.as_bytes(), world.now);
    assert_eq!(c.poll_event(), None, "not taken as the answer");
    assert_eq!(
        c.recv().unwrap().attr("from"),
        Some(format!("claudius@{DOMAIN}/x").as_str())
    );
    // The real answer (no from: our own server) still matches.
    c.handle_input(
        b"<iq xmlns='jabber:client' type='result' id='guess'/>",
        world.now,
    );
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::IqResponse { id, result: Ok(_) }) if id == req
    ));
}

#[test]
fn messages_flow_between_two_clients() {
    let mut world = World::new(&[("hamlet", "s3cret"), ("ophelia", "n0nnery")]);
    let (mut h, hid) = world.client(
        &format!("hamlet@{DOMAIN}/castle"),
        "s3cret",
        Options::default(),
    );
    let (mut o, oid) = world.client(
        &format!("ophelia@{DOMAIN}/garden"),
        "n0nnery",
        Options::default(),
    );
    world.pump(&mut [(&mut h, hid), (&mut o, oid)]);
    assert!(h.is_established() && o.is_established());
    let msg = Element::new("message", "jabber:client")
        .with_attr("to", format!("ophelia@{DOMAIN}/garden"))
        .with_attr("type", "chat")
        .with_child(Element::new("body", "jabber:client").with_text("Nymph"));
    h.send(&msg).unwrap();
    world.pump(&mut [(&mut h, hid), (&mut o, oid)]);
    let got = std::iter::from_fn(|| o.recv())
        .find(|s| s.name == "message")
        .expect("delivered");
    assert_eq!(
        got.attr("from"),
        Some(format!("hamlet@{DOMAIN}/castle").as_str())
    );
}

#[test]
fn inbound_queue_is_bounded_and_applies_back_pressure() {
    let mut world = World::new(&[("hamlet", "s3cret")]);
    let options = Options {
        max_inbound: 2,
        ..Options::default()
    };
    let (mut c, id) = world.client(&format!("hamlet@{DOMAIN}"), "s3cret", options);
    world.pump(&mut [(&mut c, id)]);
    let push = b"<message xmlns='jabber:client'/><message xmlns='jabber:client'/><message xmlns='jabber:client'/>";
    assert!(c.wants_read());
    c.handle_input(push, world.now);
    assert!(!c.wants_read(), "full: stop reading");
    assert_eq!(c.dropped_inbound(), 1);
    assert!(c.recv().is_some());
    assert!(c.wants_read());
}

#[test]
fn bad_password_closes_without_retry_even_with_a_reconnect_policy() {
    let mut world = World::new(&[("hamlet", "s3cret")]);
    let options = Options {
        reconnect: Reconnect::Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
            max_attempts: 3,
        },
        ..Options::default()
    };
    let (mut c, id) = world.client(&format!("hamlet@{DOMAIN}"), "wrong", options);
    let ev = world.pump(&mut [(&mut c, id)]);
    match &ev[0][..] {
        [
            ClientEvent::Closed {
                error: Some(e),
                retry_in: None,
            },
        ] => {
            assert!(e.contains("not-authorized"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn lost_connection_is_retried_with_backoff_and_outstanding_iqs_fail() {
    let mut world = World::new(&[("hamlet", "s3cret")]);
    let options = Options {
        reconnect: Reconnect::Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(3),
            max_attempts: 3,
        },
        ..Options::default()
    };
    let (mut c, id) = world.client(&format!("hamlet@{DOMAIN}"), "s3cret", options);
    world.pump(&mut [(&mut c, id)]);
    let req = c.private_get("a", "b", world.now).unwrap();
    c.handle_eof(world.now);
    assert_eq!(
        c.poll_event(),
        Some(ClientEvent::IqResponse {
            id: req,
            result: Err(IqError::Disconnected)
        })
    );
    let mut delays = Vec::new();
    match c.poll_event() {
        Some(ClientEvent::Closed { retry_in, .. }) => delays.push(retry_in),
        other => panic!("{other:?}"),
    }
    // Attempts that fail before a session: 1 s, 2 s, 3 s (capped), then give up.
    for _ in 0..3 {
        c.reconnect([3; 32], world.now);
        c.handle_eof(world.now);
        match c.poll_event() {
            Some(ClientEvent::Closed { retry_in, .. }) => delays.push(retry_in),
            other => panic!("{other:?}"),
        }
    }
    let s = Duration::from_secs;
    assert_eq!(delays, vec![Some(s(1)), Some(s(2)), Some(s(3)), None]);

    // A reconnect that succeeds resets the count.
    c.reconnect([4; 32], world.now);
    let id = world.server.accept(world.now);
    let ev = world.pump(&mut [(&mut c, id)]);
    assert!(
        matches!(&ev[0][..], [ClientEvent::Established { .. }]),
        "{ev:?}"
    );
    c.handle_eof(world.now);
    assert!(matches!(
        c.poll_event(),
        Some(ClientEvent::Closed { retry_in: Some(d), .. }) if d == s(1)
    ));
}

#[test]
fn send_iq_refuses_what_it_cannot_track() {
    use elsinore_client::SendIqError;
    let mut world = World::new(&[("hamlet", "s3cret")]);
    let options = Options {
        max_outstanding_iqs: 1,
        ..Options::default()
    };
    let (mut c, id) = world.client(&format!("hamlet@{DOMAIN}"), "s3cret", options);
    let early = c.private_get("a", "b", world.now);
    assert!(
        matches!(early, Err(SendIqError::Send(_))),
        "not established yet"
    );
    world.pump(&mut [(&mut c, id)]);
    let msg = Element::new("message", "jabber:client");
    assert_eq!(c.send_iq(msg, world.now), Err(SendIqError::NotARequest));
    c.private_get("a", "b", world.now).unwrap();
    assert_eq!(
        c.private_get("a", "b", world.now),
        Err(SendIqError::TooManyOutstanding)
    );
}

// ---- what the library writes (draft-ietf-xmpp-core-11 §7.2.2, §7.4.1, §7.6) ----------

/// The top-level elements in `chunks` as the server reads them; a chunk that opens a new
/// stream (the restart after SASL success) starts a new parse.
fn written_elements(chunks: &[Vec<u8>]) -> Vec<Element> {
    use elsinore_xml::{StreamParser, XmlEvent, XmlLimits};
    let mut parser = StreamParser::new(XmlLimits::default());
    let mut out = Vec::new();
    for chunk in chunks {
        if chunk.starts_with(b"<?xml") {
            parser.reset();
        }
        let mut buf = &chunk[..];
        while let Some(event) = parser.parse(&mut buf).expect("the client writes XML") {
            if let XmlEvent::Element(e) = event {
                out.push(e);
            }
        }
    }
    out
}

/// Negotiation with a scripted server that offers PLAIN and requires the RFC 3921 session
/// iq, which the real server makes optional; returns what the client wrote.
fn scripted_negotiation_with_session() -> Vec<Vec<u8>> {
    let config = ClientConfig {
        jid: Jid::from_str(&format!("hamlet@{DOMAIN}/desk")).unwrap(),
        password: "s3cret".into(),
        tls: TlsPolicy::Disabled,
    };
    let now = Instant::from_millis(0);
    let mut c = Client::new(config, Options::default(), [3; 32], now);
    let header = format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' from='{DOMAIN}' id='s1' version='1.0'>"
    );
    let mut sent = vec![c.take_transmit()];
    let answer = |c: &mut Client, sent: &mut Vec<Vec<u8>>, input: &str| {
        c.handle_input(input.as_bytes(), now);
        let out = c.take_transmit();
        assert!(!out.is_empty(), "the client answers {input}");
        sent.push(out);
    };
    answer(
        &mut c,
        &mut sent,
        &format!(
            "{header}<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
             <mechanism>PLAIN</mechanism></mechanisms></stream:features>"
        ),
    );
    answer(
        &mut c,
        &mut sent,
        "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
    );
    answer(
        &mut c,
        &mut sent,
        &format!(
            "{header}<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/>\
             <session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></stream:features>"
        ),
    );
    let bind = Element::parse(sent.last().unwrap()).unwrap();
    answer(
        &mut c,
        &mut sent,
        &format!(
            "<iq type='result' id='{}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>\
             <jid>hamlet@{DOMAIN}/desk</jid></bind></iq>",
            bind.attr("id").unwrap()
        ),
    );
    let session = Element::parse(sent.last().unwrap()).unwrap();
    assert!(
        session
            .get_child("session", "urn:ietf:params:xml:ns:xmpp-session")
            .is_some()
    );
    c.handle_input(
        format!("<iq type='result' id='{}'/>", session.attr("id").unwrap()).as_bytes(),
        now,
    );
    assert!(c.is_established());
    sent
}

/// Every top-level element the library writes in a session that uses each request builder
/// and command against the server, plus the scripted negotiation above. The application's
/// own stanzas are built, as an application would, without `from`.
fn everything_the_library_writes() -> Vec<Element> {
    use elsinore_client::{annotations, bookmarks, pep};
    let mut world = World::new(&[("hamlet", "s3cret")]);
    let (mut c, id) = world.client(
        &format!("hamlet@{DOMAIN}/desk"),
        "s3cret",
        Options::default(),
    );
    world.pump(&mut [(&mut c, id)]);
    assert!(c.is_established());
    let me = BareJid::from_str(&format!("hamlet@{DOMAIN}")).unwrap();
    let room = BareJid::from_str("act3@conference.elsinore.lit").unwrap();
    let node = "urn:example:notes";
    let note = Element::new("note", "urn:example:notes").with_text("remember");
    let conference = bookmarks::Conference {
        jid: room.clone(),
        name: Some("Act III".into()),
        autojoin: false,
        nick: None,
        password: None,
        extensions: Vec::new(),
    };
    let requests = [
        annotations::get_request(),
        annotations::set_request(&annotations::Annotations::new()),
        bookmarks::publish_request(&conference),
        bookmarks::items_request(),
        bookmarks::retract_request(&room),
        bookmarks::legacy_get_request(),
        bookmarks::legacy_set_request(&bookmarks::Bookmarks::default()),
        pep::publish_request(node, Some("n1"), note, Some(&pep::ConfigChange::private())),
        pep::items_request(node, &pep::Select::Last(1)),
        pep::retract_request(node, "n1", true),
        pep::configure_get_request(node),
        pep::configure_set_request(node, &pep::ConfigChange::private()),
        pep::purge_request(node),
        pep::delete_request(node),
        pep::create_request("urn:example:other", None),
        pep::disco_info_request(&me),
    ];
    for r in requests {
        c.send_iq(r, world.now).unwrap();
    }
    c.private_set(Element::new("prefs", "urn:example:prefs"), world.now)
        .unwrap();
    c.private_get("prefs", "urn:example:prefs", world.now)
        .unwrap();
    let version = Element::parse(
        format!("<iq xmlns='jabber:client' type='get' to='{DOMAIN}'><query xmlns='jabber:iq:version'/></iq>").as_bytes(),
    )
    .unwrap();
    c.send_iq(version, world.now).unwrap();
    for app in [
        "<presence xmlns='jabber:client'><status>reading</status></presence>",
        "<message xmlns='jabber:client' to='ophelia@elsinore.lit' type='chat'><body>Words</body></message>",
    ] {
        c.send(&Element::parse(app.as_bytes()).unwrap()).unwrap();
    }
    world.pump(&mut [(&mut c, id)]);
    assert_eq!(c.outstanding_iqs(), 0, "every request was answered");
    c.close(world.now);
    world.pump(&mut [(&mut c, id)]);
    let mut chunks = world.sent.remove(&id).unwrap();
    chunks.extend(scripted_negotiation_with_session());
    written_elements(&chunks)
}

/// §7.2.2: a client MUST NOT put `from` on the stanzas it sends. Nothing the library writes
/// carries one: negotiation (bind, session), every request builder and command, and the
/// application's stanzas passed through `send`.
#[test]
fn the_library_puts_no_from_on_its_stanzas() {
    let written = everything_the_library_writes();
    let stanzas: Vec<&Element> = written.iter().filter(|e| e.ns == "jabber:client").collect();
    // Bind and session, 19 requests, two of the application's stanzas.
    assert!(stanzas.len() >= 23, "{stanzas:?}");
    for s in stanzas {
        assert_eq!(s.attr("from"), None, "{s:?}");
    }
}

/// §7.4.1: a client SHOULD NOT send presence of type `probe` (the server probes contacts
/// for it). The library sends no presence of its own: the only one it writes is the
/// application's initial presence.
#[test]
fn the_library_sends_no_probe() {
    let written = everything_the_library_writes();
    let presences: Vec<&Element> = written.iter().filter(|e| e.name == "presence").collect();
    assert_eq!(presences.len(), 1, "{presences:?}");
    assert_eq!(presences[0].attr("type"), None);
}

/// §7.6: an extension child of a stanza is in a namespace of its own, not in no namespace
/// or a core one. Checked on every stanza the library writes: each child is a core child in
/// jabber:client (`<body/>`, `<status/>`, …) or a namespaced payload.
#[test]
fn the_library_namespaces_extension_children() {
    const CORE: [&str; 5] = [
        "jabber:client",
        "jabber:server",
        "http://etherx.jabber.org/streams",
        "urn:ietf:params:xml:ns:xmpp-stanzas",
        "urn:ietf:params:xml:ns:xmpp-streams",
    ];
    let written = everything_the_library_writes();
    let mut payloads = 0;
    for s in written.iter().filter(|e| e.ns == "jabber:client") {
        for c in s.elements() {
            if c.ns == "jabber:client" {
                let allowed = [
                    "body", "subject", "thread", "status", "show", "priority", "error",
                ];
                assert!(allowed.contains(&c.name.as_str()), "{s:?}");
            } else {
                assert!(!c.ns.is_empty() && !CORE.contains(&c.ns.as_str()), "{s:?}");
                payloads += 1;
            }
        }
    }
    assert!(payloads >= 21, "every request has a payload");
}
