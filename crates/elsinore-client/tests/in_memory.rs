//! The client core against the server core, bytes moved in memory (no sockets, no clock).
#![allow(clippy::unwrap_used)]

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
