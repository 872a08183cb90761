//! SASL ANONYMOUS (RFC 4505) sessions: a temporary account whose stored data goes with
//! its session.

mod common;

use common::{Net, T0};
use elsinore_server::{ConnId, ServerConfig, ServerEvent};
use elsinore_storage::Store;

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='verona.lit' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Feeds `xml` to the server and answers its effects from the store until it is quiet;
/// returns what it wrote to `conn`.
fn raw_exchange(net: &mut Net, conn: ConnId, xml: &str) -> String {
    net.server.handle_input(conn, xml.as_bytes(), T0);
    settle(net, conn)
}

fn settle(net: &mut Net, conn: ConnId) -> String {
    let mut out = Vec::new();
    for _ in 0..100 {
        while let Some((id, bytes)) = net.server.poll_transmit() {
            if id == conn {
                out.extend(bytes);
            }
        }
        while let Some(ev) = net.server.poll_event() {
            // TLS is simulated: the handshake completes at once.
            if let ServerEvent::UpgradeTls(id) = ev {
                net.server.handle_tls_ready(id, T0);
            }
        }
        let Some(effect) = net.server.poll_effect() else {
            break;
        };
        let result = net.store.apply(&effect.op);
        net.server.handle_effect_done(effect.id, result, T0);
    }
    assert_eq!(net.server.outstanding_effects(), 0, "dangling effects");
    String::from_utf8(out).expect("utf-8")
}

fn server() -> Net {
    let mut cfg = ServerConfig::new("verona.lit");
    cfg.scram_iterations = 4096;
    cfg.allow_anonymous = true;
    Net::with_config(cfg)
}

/// Logs in with ANONYMOUS and binds; returns the connection and the account's bare JID.
fn anonymous_session(net: &mut Net) -> (ConnId, String) {
    let conn = net.server.accept(T0);
    raw_exchange(net, conn, HEADER);
    let out = raw_exchange(
        net,
        conn,
        "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
    );
    assert!(out.contains("<proceed"), "{out}");
    let features = raw_exchange(net, conn, HEADER);
    assert!(features.contains(">ANONYMOUS<"), "{features}");
    // Initial response: the RFC 4505 trace "sirhc", base64.
    let out = raw_exchange(
        net,
        conn,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'>c2lyaGM=</auth>",
    );
    assert!(out.contains("<success"), "{out}");
    raw_exchange(net, conn, HEADER);
    let bound = raw_exchange(
        net,
        conn,
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
    );
    let start = bound.find("<jid>").expect("bound JID") + 5;
    let end = bound.find("</jid>").expect("bound JID end");
    let full = &bound[start..end];
    let bare = full.split('/').next().expect("bare part").to_string();
    assert!(
        bare.starts_with("anon-") && bare.ends_with("@verona.lit"),
        "{bare}"
    );
    (conn, bare)
}

/// Stores private XML, a vCard (which also enters the search directory) and a PEP item.
fn store_things(net: &mut Net, conn: ConnId) {
    for (id, payload) in [
        (
            "p",
            "<query xmlns='jabber:iq:private'><n xmlns='x:notes'>left behind?</n></query>",
        ),
        (
            "v",
            "<vCard xmlns='vcard-temp'><NICKNAME>Ghost</NICKNAME></vCard>",
        ),
        (
            "e",
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:x:mood'>\
             <item id='current'><mood xmlns='urn:x:mood'>pale</mood></item></publish></pubsub>",
        ),
    ] {
        let out = raw_exchange(
            net,
            conn,
            &format!("<iq type='set' id='{id}'>{payload}</iq>"),
        );
        assert!(out.contains("type='result'"), "{id}: {out}");
    }
}

fn keys_of(net: &Net, account: &str) -> usize {
    net.store
        .iter()
        .filter(|(k, _)| k.account == account)
        .count()
}

/// The search directory (jabber:iq:search over vCards) mentions `account`.
fn directory_mentions(net: &Net, account: &str) -> bool {
    net.store
        .iter()
        .any(|(_, v)| String::from_utf8_lossy(v).contains(account))
}

#[test]
fn an_anonymous_accounts_data_is_deleted_when_its_session_ends() {
    let mut net = server();
    net.add_user("juliet@verona.lit", "r0m30");
    let juliet = net.connect("juliet@verona.lit/balcony", "r0m30");
    let iq = elsinore_xml::Element::parse(
        b"<iq type='set' id='j' xmlns='jabber:client'><query xmlns='jabber:iq:private'>\
          <n xmlns='x:notes'>mine</n></query></iq>",
    )
    .expect("parses");
    net.send(juliet, &iq);
    let juliet_keys = keys_of(&net, "juliet@verona.lit");
    assert!(juliet_keys >= 2, "credentials and private XML");

    let (conn, anon) = anonymous_session(&mut net);
    store_things(&mut net, conn);
    assert!(keys_of(&net, &anon) >= 3, "the session stored its data");
    assert!(directory_mentions(&net, &anon));

    // The connection drops without a close: the data goes all the same.
    net.server.handle_eof(conn, T0);
    settle(&mut net, conn);
    assert_eq!(keys_of(&net, &anon), 0, "nothing of {anon} is left");
    assert!(!directory_mentions(&net, &anon), "nor its directory entry");
    // Nobody else's data is touched.
    assert_eq!(keys_of(&net, "juliet@verona.lit"), juliet_keys);
}

#[test]
fn a_closed_anonymous_stream_leaves_nothing_and_a_new_login_is_a_new_account() {
    let mut net = server();
    let (conn, first) = anonymous_session(&mut net);
    store_things(&mut net, conn);
    let out = raw_exchange(&mut net, conn, "</stream:stream>");
    assert!(out.contains("</stream:stream>"), "{out}");
    assert_eq!(keys_of(&net, &first), 0);

    let (conn, second) = anonymous_session(&mut net);
    assert_ne!(first, second);
    // Its private storage starts empty, not with the previous session's notes.
    let got = raw_exchange(
        &mut net,
        conn,
        "<iq type='get' id='g'><query xmlns='jabber:iq:private'><n xmlns='x:notes'/></query></iq>",
    );
    assert!(
        got.contains("type='result'") && !got.contains("left behind"),
        "{got}"
    );
}

#[test]
fn a_registered_accounts_data_stays_when_its_session_ends() {
    let mut net = server();
    net.add_user("romeo@verona.lit", "j1l13t");
    let romeo = net.connect("romeo@verona.lit/orchard", "j1l13t");
    let iq = elsinore_xml::Element::parse(
        b"<iq type='set' id='r' xmlns='jabber:client'><query xmlns='jabber:iq:private'>\
          <n xmlns='x:notes'>kept</n></query></iq>",
    )
    .expect("parses");
    net.send(romeo, &iq);
    let before = keys_of(&net, "romeo@verona.lit");
    net.server.handle_eof(romeo, T0);
    net.drive();
    // Only the last-logout stamp (jabber:iq:last) may be added.
    assert!(keys_of(&net, "romeo@verona.lit") >= before);
}

/// The contacts of an anonymous account are told when it ends, as after `<remove/>`:
/// both subscription directions are cancelled and their rosters pushed.
#[test]
fn an_anonymous_accounts_contacts_are_unsubscribed_when_it_ends() {
    let mut net = server();
    net.add_user("juliet@verona.lit", "r0m30");
    let juliet = net.connect("juliet@verona.lit/balcony", "r0m30");
    let parse = |xml: &str| elsinore_xml::Element::parse(xml.as_bytes()).expect("parses");
    net.iq(
        juliet,
        "<iq type='get' id='r' xmlns='jabber:client'><query xmlns='jabber:iq:roster'/></iq>",
    );
    net.send(juliet, &parse("<presence xmlns='jabber:client'/>"));
    let (conn, anon) = anonymous_session(&mut net);
    // Each asks to see the other and each approves: subscription both.
    net.send_raw(conn, "<presence/>");
    net.send_raw(conn, "<presence to='juliet@verona.lit' type='subscribe'/>");
    net.send(
        juliet,
        &parse(&format!(
            "<presence xmlns='jabber:client' to='{anon}' type='subscribed'/>"
        )),
    );
    net.send(
        juliet,
        &parse(&format!(
            "<presence xmlns='jabber:client' to='{anon}' type='subscribe'/>"
        )),
    );
    net.send_raw(conn, "<presence to='juliet@verona.lit' type='subscribed'/>");
    assert_eq!(net.roster(juliet), vec![(anon.clone(), "both".into())]);
    net.take_inbox(juliet);

    net.server.handle_eof(conn, T0);
    net.drive();
    let got = net.take_inbox(juliet);
    let types = common::presence_types(&got);
    for want in ["unsubscribe", "unsubscribed"] {
        assert!(types.contains(&(want, anon.as_str())), "{want}: {types:?}");
    }
    assert!(
        types
            .iter()
            .any(|(t, f)| *t == "unavailable" && f.starts_with(anon.as_str())),
        "{types:?}"
    );
    let pushes = got
        .iter()
        .filter(|e| e.name == "iq" && e.attr("type") == Some("set"))
        .count();
    assert!(pushes >= 1, "roster pushes: {got:?}");
    assert_eq!(net.roster(juliet), vec![(anon.clone(), "none".into())]);
    assert_eq!(keys_of(&net, &anon), 0);
}
