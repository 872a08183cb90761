//! Isolation: nobody reaches another account's private XML (XEP-0049), PEP whitelist
//! nodes, roster, offline messages or vCard, whatever the addressing: other bare and full
//! JIDs, case and stringprep variants that name the same account, malformed and overlong
//! JIDs, resources named like other users, a forged `from` on c2s, and spoofed `from` over
//! server-to-server. Everything Alice keeps carries a sentinel string; the attacker's whole
//! inbox is searched for it after every attempt.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::{Net, T0, error_condition};
use elsinore_jid::{BareJid, Jid};
use elsinore_server::{ConnId, ServerConfig};
use elsinore_xml::Element;

const D: &str = "localhost";
const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const SECRETS: [&str; 4] = [
    "ALICE-PRIVATE-SENTINEL",
    "ALICE-ROSTER-SENTINEL",
    "ALICE-PEP-SENTINEL",
    "ALICE-OFFLINE-SENTINEL",
];

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

fn text_of(e: &Element) -> String {
    String::from_utf8_lossy(&e.to_bytes()).into_owned()
}

/// Sends `xml` from `conn`; the reply with the same id, if the server sent one.
fn request(net: &mut Net, conn: ConnId, xml: &str) -> Option<Element> {
    let e = el(xml);
    let want = e.attr("id").map(str::to_string);
    net.send(conn, &e);
    let inbox = net.inbox.entry(conn).or_default();
    let pos = inbox
        .iter()
        .position(|r| r.name == e.name && r.attr("id").map(str::to_string) == want)?;
    Some(inbox.remove(pos))
}

/// Nothing Alice keeps ever reached `conn` (every element it received, kept or not).
fn assert_nothing_leaked(net: &Net, conn: ConnId, what: &str) {
    for ev in net.client_events.get(&conn).into_iter().flatten() {
        let s = format!("{ev:?}");
        for secret in SECRETS {
            assert!(
                !s.contains(secret),
                "{what}: {secret} leaked to {conn:?}: {s}"
            );
        }
    }
}

/// Alice's account with one of everything: private XML, a roster item, a whitelist PEP
/// node, a vCard, and (after she logs off) an offline message from Horatio.
fn world() -> Net {
    let mut c = ServerConfig::new(D);
    c.scram_iterations = 4096;
    // Mallory's hundreds of requests arrive at one virtual instant: no rate limit here
    // (tests/limits.rs covers it), so every request is answered at once.
    c.limits.stanza_rate = None;
    c.limits.byte_rate = None;
    let mut net = Net::with_config(c);
    net.server.set_wall_clock(T0, 1_700_000_000_000);
    for u in ["alice", "mallory", "horatio"] {
        net.add_user(&format!("{u}@{D}"), &format!("{u}-pw"));
    }
    let alice = net.connect_available("alice@localhost/home", "alice-pw");
    let r = net.iq(
        alice,
        "<iq xmlns='jabber:client' type='set' id='p1'><query xmlns='jabber:iq:private'>\
         <secret xmlns='x:secret'>ALICE-PRIVATE-SENTINEL</secret></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let r = net.iq(
        alice,
        "<iq xmlns='jabber:client' type='set' id='r1'><query xmlns='jabber:iq:roster'>\
         <item jid='horatio@localhost' name='ALICE-ROSTER-SENTINEL'/></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let r = net.iq(
        alice,
        &format!(
            "<iq xmlns='jabber:client' type='set' id='n1'><pubsub xmlns='{PUBSUB}'>\
             <publish node='x:diary'><item id='d1'><entry xmlns='x:diary'>ALICE-PEP-SENTINEL\
             </entry></item></publish><publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>\
             <field var='pubsub#access_model'><value>whitelist</value></field>\
             <field var='pubsub#persist_items'><value>true</value></field></x>\
             </publish-options></pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let r = net.iq(
        alice,
        "<iq xmlns='jabber:client' type='set' id='v1'><vCard xmlns='vcard-temp'>\
         <FN>Alice</FN></vCard></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    // Alice leaves; Horatio writes to her.
    net.server.handle_eof(alice, T0);
    net.clients.remove(&alice);
    net.drive();
    let horatio = net.connect_available("horatio@localhost/desk", "horatio-pw");
    net.send(
        horatio,
        &el(
            "<message xmlns='jabber:client' to='alice@localhost' id='o1' type='chat'>\
             <body>ALICE-OFFLINE-SENTINEL</body></message>",
        ),
    );
    net.server.handle_eof(horatio, T0);
    net.clients.remove(&horatio);
    net.drive();
    net
}

/// Alice logs in again: everything is still hers and unchanged (and the offline message
/// still waits for her, when `offline_waiting`).
fn alice_checks_her_data(net: &mut Net, offline_waiting: bool) {
    let alice = net.connect("alice@localhost/home", "alice-pw");
    let got = net.iq(
        alice,
        "<iq xmlns='jabber:client' type='get' id='cp'><query xmlns='jabber:iq:private'>\
         <secret xmlns='x:secret'/></query></iq>",
    );
    let secret = got
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("secret", "x:secret"))
        .map(|s| s.text());
    assert_eq!(secret.as_deref(), Some("ALICE-PRIVATE-SENTINEL"), "{got:?}");
    let roster = net.iq(
        alice,
        "<iq xmlns='jabber:client' type='get' id='cr'><query xmlns='jabber:iq:roster'/></iq>",
    );
    let items: Vec<(String, String)> = roster
        .get_child("query", "jabber:iq:roster")
        .map(|q| {
            q.elements()
                .map(|i| {
                    (
                        i.attr("jid").unwrap_or_default().to_string(),
                        i.attr("name").unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        items,
        vec![("horatio@localhost".into(), "ALICE-ROSTER-SENTINEL".into())],
        "roster unchanged"
    );
    let pep = net.iq(
        alice,
        &format!(
            "<iq xmlns='jabber:client' type='get' id='cn'><pubsub xmlns='{PUBSUB}'>\
             <items node='x:diary'/></pubsub></iq>"
        ),
    );
    let ids: Vec<String> = pep
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .map(|i| {
            i.elements()
                .filter_map(|x| x.attr("id").map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(ids, vec!["d1".to_string()], "{pep:?}");
    assert!(text_of(&pep).contains("ALICE-PEP-SENTINEL"));
    // Still her whitelist node, and no node planted in her service.
    let config = net.iq(
        alice,
        &format!(
            "<iq xmlns='jabber:client' type='get' id='cc'><pubsub xmlns='{PUBSUB}#owner'>\
             <configure node='x:diary'/></pubsub></iq>"
        ),
    );
    let access = config
        .get_child("pubsub", &format!("{PUBSUB}#owner"))
        .and_then(|p| p.get_child("configure", &format!("{PUBSUB}#owner")))
        .and_then(|c| c.get_child("x", "jabber:x:data"))
        .and_then(|x| {
            x.elements()
                .find(|f| f.attr("var") == Some("pubsub#access_model"))
                .and_then(|f| f.get_child("value", "jabber:x:data"))
                .map(|v| v.text())
        });
    assert_eq!(access.as_deref(), Some("whitelist"), "{config:?}");
    let planted = net.iq(
        alice,
        &format!(
            "<iq xmlns='jabber:client' type='get' id='cq'><pubsub xmlns='{PUBSUB}'>\
             <items node='x:planted'/></pubsub></iq>"
        ),
    );
    assert_eq!(
        error_condition(&planted).as_deref(),
        Some("item-not-found"),
        "{planted:?}"
    );
    let vcard = net.iq(
        alice,
        "<iq xmlns='jabber:client' type='get' id='cv'><vCard xmlns='vcard-temp'/></iq>",
    );
    let fname = vcard
        .get_child("vCard", "vcard-temp")
        .and_then(|v| v.get_child("FN", "vcard-temp"))
        .map(|f| f.text());
    assert_eq!(
        fname.as_deref(),
        Some("Alice"),
        "vCard unchanged: {vcard:?}"
    );
    if !offline_waiting {
        return;
    }
    // The offline message is still there, for her alone.
    net.send(alice, &el("<presence xmlns='jabber:client'/>"));
    let inbox = net.take_inbox(alice);
    let offline: Vec<&Element> = inbox
        .iter()
        .filter(|m| m.name == "message" && text_of(m).contains("ALICE-OFFLINE-SENTINEL"))
        .collect();
    assert_eq!(offline.len(), 1, "{inbox:?}");
    assert_eq!(offline[0].attr("from"), Some("horatio@localhost/desk"));
}

/// Ways to write Alice's address, or something near it.
fn variants() -> Vec<String> {
    let mut v: Vec<String> = [
        "alice@localhost",
        "alice@localhost/home",
        "alice@localhost/elsewhere",
        "ALICE@LOCALHOST",
        "Alice@LocalHost.",
        "alice@localhost.",
        "alice@localhost\u{3002}", // ideographic full stop as the label separator
        "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}@localhost", // fullwidth "alice"
        "alice@\u{FF4C}\u{FF4F}\u{FF43}\u{FF41}\u{FF4C}\u{FF48}\u{FF4F}\u{FF53}\u{FF54}",
        "al\u{00AD}ice@localhost", // soft hyphen: mapped to nothing by nodeprep
        "al\u{200B}ice@localhost", // zero width space: likewise
        "ALICE@localhost/HOME",
        "alice@localhost/",
        "@localhost",
        "alice@",
        "alice@@localhost",
        "localhost",
        "localhost/alice",
        "alice%localhost@localhost",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(format!("{}@localhost", "a".repeat(1100)));
    v.push(format!("alice@localhost/{}", "r".repeat(1100)));
    v.push(format!("alice@{}", "l".repeat(1100)));
    v
}

/// Every request Mallory can make about the account at `to`.
fn attacks(to: &str, n: usize) -> Vec<(String, String)> {
    let t = to;
    vec![
        (
            "private get".into(),
            format!(
                "<iq xmlns='jabber:client' type='get' id='a{n}-1' to='{t}'><query xmlns='jabber:iq:private'>\
                 <secret xmlns='x:secret'/></query></iq>"
            ),
        ),
        (
            "private set".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-2' to='{t}'><query xmlns='jabber:iq:private'>\
                 <secret xmlns='x:secret'>MALLORY-WAS-HERE</secret></query></iq>"
            ),
        ),
        (
            "roster get".into(),
            format!(
                "<iq xmlns='jabber:client' type='get' id='a{n}-3' to='{t}'>\
                 <query xmlns='jabber:iq:roster'/></iq>"
            ),
        ),
        (
            "roster set".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-4' to='{t}'><query xmlns='jabber:iq:roster'>\
                 <item jid='mallory@localhost' name='friend'/></query></iq>"
            ),
        ),
        (
            "pep items".into(),
            format!(
                "<iq xmlns='jabber:client' type='get' id='a{n}-5' to='{t}'><pubsub xmlns='{PUBSUB}'>\
                 <items node='x:diary'/></pubsub></iq>"
            ),
        ),
        (
            "pep items by id".into(),
            format!(
                "<iq xmlns='jabber:client' type='get' id='a{n}-6' to='{t}'><pubsub xmlns='{PUBSUB}'>\
                 <items node='x:diary'><item id='d1'/></items></pubsub></iq>"
            ),
        ),
        (
            "pep publish".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-7' to='{t}'><pubsub xmlns='{PUBSUB}'>\
                 <publish node='x:diary'><item id='d1'><entry xmlns='x:diary'>forged</entry></item>\
                 </publish></pubsub></iq>"
            ),
        ),
        (
            "pep subscribe".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-8' to='{t}'><pubsub xmlns='{PUBSUB}'>\
                 <subscribe node='x:diary' jid='mallory@localhost'/></pubsub></iq>"
            ),
        ),
        (
            "pep owner configure".into(),
            format!(
                "<iq xmlns='jabber:client' type='get' id='a{n}-9' to='{t}'>\
                 <pubsub xmlns='{PUBSUB}#owner'><configure node='x:diary'/></pubsub></iq>"
            ),
        ),
        (
            "pep retract".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-11' to='{t}'><pubsub xmlns='{PUBSUB}'>\
                 <retract node='x:diary'><item id='d1'/></retract></pubsub></iq>"
            ),
        ),
        (
            "pep create".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-12' to='{t}'><pubsub xmlns='{PUBSUB}'>\
                 <create node='x:planted'/></pubsub></iq>"
            ),
        ),
        (
            "pep owner configure set".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-13' to='{t}'>\
                 <pubsub xmlns='{PUBSUB}#owner'><configure node='x:diary'><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#node_config</value></field>\
                 <field var='pubsub#access_model'><value>open</value></field></x></configure></pubsub></iq>"
            ),
        ),
        (
            "pep owner purge".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-14' to='{t}'>\
                 <pubsub xmlns='{PUBSUB}#owner'><purge node='x:diary'/></pubsub></iq>"
            ),
        ),
        (
            "pep owner delete".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-15' to='{t}'>\
                 <pubsub xmlns='{PUBSUB}#owner'><delete node='x:diary'/></pubsub></iq>"
            ),
        ),
        (
            "vcard set".into(),
            format!(
                "<iq xmlns='jabber:client' type='set' id='a{n}-10' to='{t}'>\
                 <vCard xmlns='vcard-temp'><FN>Mallory</FN></vCard></iq>"
            ),
        ),
    ]
}

/// For every variant and request: no success that touches Alice's data, no secret out.
fn attack_all(net: &mut Net, mallory: ConnId, alice_online: bool) {
    let alice = BareJid::parse("alice@localhost").unwrap();
    for (n, to) in variants().iter().enumerate() {
        let names_alice = Jid::parse(to).is_ok_and(|j| j.to_bare() == alice);
        for (what, xml) in attacks(to, n) {
            let reply = request(net, mallory, &xml);
            let ctx = format!("{what} to {to:?} (alice online: {alice_online})");
            assert_nothing_leaked(net, mallory, &ctx);
            let Some(reply) = reply else {
                // No answer from the server: only acceptable where the request went to
                // Alice's own client (a full JID of an online session), which answers
                // for itself.
                assert!(
                    alice_online && Jid::parse(to).is_ok_and(|j| j.resource() == Some("home")),
                    "{ctx}: no reply"
                );
                continue;
            };
            if what.starts_with("pep items") && !names_alice {
                // Another entity's (empty or absent) node: not Alice's business.
                assert!(!text_of(&reply).contains("ALICE"), "{ctx}: {reply:?}");
                continue;
            }
            assert_eq!(
                reply.attr("type"),
                Some("error"),
                "{ctx}: must be refused: {reply:?}"
            );
            if names_alice && what.starts_with("private") {
                assert_eq!(
                    error_condition(&reply).as_deref(),
                    Some("forbidden"),
                    "{ctx}"
                );
            }
            if names_alice && what == "vcard set" && Jid::parse(to).is_ok_and(|j| j.is_bare()) {
                assert_eq!(
                    error_condition(&reply).as_deref(),
                    Some("forbidden"),
                    "{ctx}"
                );
            }
        }
    }
}

#[test]
fn normalisation_variants_name_the_same_account() {
    // The variants below are only a test of isolation if they really reach Alice.
    let alice = BareJid::parse("alice@localhost").unwrap();
    for v in [
        "ALICE@LOCALHOST",
        "Alice@LocalHost.",
        "alice@localhost\u{3002}",
        "\u{FF41}\u{FF4C}\u{FF49}\u{FF43}\u{FF45}@localhost",
        "alice@\u{FF4C}\u{FF4F}\u{FF43}\u{FF41}\u{FF4C}\u{FF48}\u{FF4F}\u{FF53}\u{FF54}",
        "al\u{00AD}ice@localhost",
        "al\u{200B}ice@localhost",
    ] {
        assert_eq!(
            Jid::parse(v).map(|j| j.to_bare()),
            Ok(alice.clone()),
            "{v:?}"
        );
    }
    for v in [
        "alice@localhost/",
        "@localhost",
        "alice@",
        "alice@@localhost",
    ] {
        assert!(Jid::parse(v).is_err(), "{v:?}");
    }
}

#[test]
fn addressing_tricks_never_reach_another_accounts_data() {
    let mut net = world();
    let mallory = net.connect_available("mallory@localhost/lair", "mallory-pw");
    attack_all(&mut net, mallory, false);
    // And again while Alice is online (full JIDs now name a live session). Her presence
    // brings her the offline message, once.
    let alice = net.connect("alice@localhost/home", "alice-pw");
    net.send(alice, &el("<presence xmlns='jabber:client'/>"));
    let offline = net
        .take_inbox(alice)
        .iter()
        .filter(|m| m.name == "message" && text_of(m).contains("ALICE-OFFLINE-SENTINEL"))
        .count();
    assert_eq!(offline, 1);
    attack_all(&mut net, mallory, true);
    assert_nothing_leaked(&net, mallory, "after everything");
    // Whatever reached Alice's client came from Mallory, stamped as such.
    for e in net.take_inbox(alice) {
        if e.name == "iq" {
            assert_eq!(e.attr("from"), Some("mallory@localhost/lair"), "{e:?}");
        }
    }
    net.server.handle_eof(alice, T0);
    net.clients.remove(&alice);
    net.drive();
    alice_checks_her_data(&mut net, false);
}

#[test]
fn a_forged_from_is_overwritten_on_c2s() {
    let mut net = world();
    let mallory = net.connect_available("mallory@localhost/lair", "mallory-pw");
    let horatio = net.connect_available("horatio@localhost/desk", "horatio-pw");
    for (i, from) in [
        "alice@localhost",
        "alice@localhost/home",
        "ALICE@LOCALHOST/home",
        "localhost",
        "not a jid@@",
    ]
    .iter()
    .enumerate()
    {
        // Own-account requests without `to`: answered about Mallory's account, not Alice's.
        for (what, xml) in [
            (
                "private",
                format!(
                    "<iq xmlns='jabber:client' type='get' id='f{i}p' from='{from}'>\
                     <query xmlns='jabber:iq:private'><secret xmlns='x:secret'/></query></iq>"
                ),
            ),
            (
                "roster",
                format!(
                    "<iq xmlns='jabber:client' type='get' id='f{i}r' from='{from}'>\
                     <query xmlns='jabber:iq:roster'/></iq>"
                ),
            ),
            (
                "pep",
                format!(
                    "<iq xmlns='jabber:client' type='get' id='f{i}n' from='{from}'>\
                     <pubsub xmlns='{PUBSUB}'><items node='x:diary'/></pubsub></iq>"
                ),
            ),
        ] {
            let reply = request(&mut net, mallory, &xml).expect("answered");
            assert_eq!(reply.attr("to"), Some("mallory@localhost/lair"), "{what}");
            assert_nothing_leaked(&net, mallory, &format!("{what} from {from:?}"));
        }
        // A message with a forged sender arrives stamped with the real one.
        net.send(
            mallory,
            &el(&format!(
                "<message xmlns='jabber:client' to='horatio@localhost/desk' from='{from}' \
                 id='fm{i}'><body>hi</body></message>"
            )),
        );
        let got = net.take_inbox(horatio);
        let m = got
            .iter()
            .find(|m| m.attr("id") == Some(&format!("fm{i}")))
            .expect("delivered");
        assert_eq!(m.attr("from"), Some("mallory@localhost/lair"));
    }
    alice_checks_her_data(&mut net, true);
}

#[test]
fn resources_named_like_other_users_get_nothing_of_theirs() {
    let mut net = world();
    // Mallory binds resources that spell Alice's address; each session sends presence
    // (which is when offline messages are delivered) and asks for "its" data.
    for (i, res) in [
        "alice",
        "alice@localhost",
        "alice@localhost/home",
        "home",
        "ALICE",
        "..",
        "\u{FF41}lice",
    ]
    .iter()
    .enumerate()
    {
        let m = net.connect_available(&format!("mallory@localhost/{res}"), "mallory-pw");
        let jid = net.jid_of(m).expect("bound");
        assert_eq!(jid.to_bare(), BareJid::parse("mallory@localhost").unwrap());
        for xml in [
            format!(
                "<iq xmlns='jabber:client' type='get' id='r{i}p'><query xmlns='jabber:iq:private'>\
                 <secret xmlns='x:secret'/></query></iq>"
            ),
            format!(
                "<iq xmlns='jabber:client' type='get' id='r{i}r'><query xmlns='jabber:iq:roster'/></iq>"
            ),
        ] {
            let reply = request(&mut net, m, &xml).expect("answered");
            assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
        }
        assert_nothing_leaked(&net, m, &format!("resource {res:?}"));
        net.server.handle_eof(m, T0);
        net.clients.remove(&m);
        net.drive();
    }
    // Mail for Alice's full JIDs while she is away still goes to her offline store, not
    // to a session of Mallory's whose resource matches.
    let m = net.connect_available("mallory@localhost/home", "mallory-pw");
    let horatio = net.connect_available("horatio@localhost/desk", "horatio-pw");
    net.send(
        horatio,
        &el(
            "<message xmlns='jabber:client' to='alice@localhost/home' id='o2' type='chat'>\
             <body>ALICE-OFFLINE-SENTINEL 2</body></message>",
        ),
    );
    assert_nothing_leaked(&net, m, "full-JID mail");
    net.server.handle_eof(m, T0);
    net.clients.remove(&m);
    net.drive();
    // Alice finds both offline messages (the checker wants exactly the first one from
    // horatio's first session; count them here).
    let alice = net.connect("alice@localhost/home", "alice-pw");
    net.send(alice, &el("<presence xmlns='jabber:client'/>"));
    let n = net
        .take_inbox(alice)
        .iter()
        .filter(|e| e.name == "message" && text_of(e).contains("ALICE-OFFLINE-SENTINEL"))
        .count();
    assert_eq!(n, 2);
}

#[test]
fn logging_in_as_someone_else_fails() {
    let mut net = world();
    // Alice's name with Mallory's password, in every spelling: never a session.
    for who in [
        "alice@localhost",
        "ALICE@localhost",
        "\u{FF41}lice@localhost",
    ] {
        let c = net.connect(&format!("{who}/x"), "mallory-pw");
        assert!(net.jid_of(c).is_none(), "{who}");
        let err = net.closed_error(c).flatten().unwrap_or_default();
        assert!(err.contains("not-authorized"), "{who}: {err}");
        assert_nothing_leaked(&net, c, who);
    }
    // Authenticating as Mallory but authorizing as Alice (SASL PLAIN authzid).
    let mut c = ServerConfig::new(D);
    c.allow_plaintext_auth = true;
    c.scram_iterations = 4096;
    let mut plain = Net::with_config(c);
    plain.add_user("alice@localhost", "alice-pw");
    plain.add_user("mallory@localhost", "mallory-pw");
    let id = plain.server.accept(T0);
    plain.server.handle_input(
        id,
        b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
          xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
        T0,
    );
    // "alice@localhost\0mallory\0mallory-pw"
    let payload = base64_plain("alice@localhost", "mallory", "mallory-pw");
    plain.server.handle_input(
        id,
        format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>{payload}</auth>"
        )
        .as_bytes(),
        T0,
    );
    plain.drive();
    let out: String = plain
        .s2s_out
        .iter()
        .filter(|(c, _)| *c == id)
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    assert!(out.contains("invalid-authzid"), "{out}");
    assert!(!out.contains("<success"), "{out}");
}

fn base64_plain(authzid: &str, authcid: &str, password: &str) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let raw = format!("{authzid}\0{authcid}\0{password}").into_bytes();
    let mut out = String::new();
    for chunk in raw.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---- server-to-server ------------------------------------------------------

const ONE: &str = "one.example";
const TWO: &str = "two.example";

struct Fed {
    nets: [Net; 2],
    links: HashMap<(usize, ConnId), (usize, ConnId)>,
    /// Streams each server accepted: (net, conn).
    accepted: Vec<(usize, ConnId)>,
}

fn s2s_config(domain: &str, secret: u8) -> ServerConfig {
    let mut c = ServerConfig::new(domain);
    c.scram_iterations = 4096;
    c.s2s.enabled = true;
    c.s2s.secret = [secret; 32];
    c
}

impl Fed {
    fn new() -> Self {
        let mut one = Net::with_config(s2s_config(ONE, 1));
        let mut two = Net::with_config(s2s_config(TWO, 2));
        one.server.set_wall_clock(T0, 1_700_000_000_000);
        two.server.set_wall_clock(T0, 1_700_000_000_000);
        one.add_user("alice@one.example", "alice-pw");
        one.add_user("horatio@one.example", "horatio-pw");
        two.add_user("mallory@two.example", "mallory-pw");
        Fed {
            nets: [one, two],
            links: HashMap::new(),
            accepted: Vec::new(),
        }
    }

    fn pump(&mut self) {
        for _ in 0..200 {
            let mut progress = false;
            for i in 0..2 {
                self.nets[i].drive();
            }
            for i in 0..2 {
                let j = 1 - i;
                for (conn, domain) in std::mem::take(&mut self.nets[i].connects) {
                    progress = true;
                    if self.nets[j].server.config().domain == domain {
                        let peer = self.nets[j].server.accept_s2s(T0);
                        self.accepted.push((j, peer));
                        self.links.insert((i, conn), (j, peer));
                        self.links.insert((j, peer), (i, conn));
                        self.nets[i].server.handle_connected(conn, T0);
                    } else {
                        self.nets[i].server.handle_connect_failed(conn, T0);
                    }
                }
                for (conn, bytes) in std::mem::take(&mut self.nets[i].s2s_out) {
                    progress = true;
                    if let Some(&(j, peer)) = self.links.get(&(i, conn)) {
                        self.nets[j].server.handle_input(peer, &bytes, T0);
                    }
                }
                for conn in std::mem::take(&mut self.nets[i].s2s_closed) {
                    progress = true;
                    if let Some((j, peer)) = self.links.remove(&(i, conn)) {
                        self.links.remove(&(j, peer));
                        self.nets[j].server.handle_eof(peer, T0);
                    }
                }
            }
            if !progress {
                return;
            }
        }
        panic!("federation did not settle");
    }
}

/// A federation where two.example has an authenticated stream into one.example; returns
/// it with the connection id, on one.example, of that incoming stream.
fn federated() -> (Fed, ConnId, ConnId) {
    let mut fed = Fed::new();
    let alice = fed.nets[0].connect_available("alice@one.example/home", "alice-pw");
    let r = fed.nets[0].iq(
        alice,
        "<iq xmlns='jabber:client' type='set' id='p1'><query xmlns='jabber:iq:private'>\
         <secret xmlns='x:secret'>ALICE-PRIVATE-SENTINEL</secret></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"));
    let r = fed.nets[0].iq(
        alice,
        "<iq xmlns='jabber:client' type='set' id='r1'><query xmlns='jabber:iq:roster'>\
         <item jid='horatio@one.example' name='ALICE-ROSTER-SENTINEL'/></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"));
    let mallory = fed.nets[1].connect_available("mallory@two.example/lair", "mallory-pw");
    fed.nets[1].send(
        mallory,
        &el(
            "<message xmlns='jabber:client' to='alice@one.example/home' id='hello'>\
             <body>hello</body></message>",
        ),
    );
    fed.pump();
    assert!(
        fed.nets[0]
            .take_inbox(alice)
            .iter()
            .any(|m| m.attr("id") == Some("hello")),
        "the federation works"
    );
    // The stream two.example → one.example, as one.example sees it.
    let incoming = fed
        .accepted
        .iter()
        .find(|(net, c)| *net == 0 && fed.links.contains_key(&(0, *c)))
        .map(|(_, c)| *c)
        .expect("an incoming stream on one.example");
    (fed, alice, incoming)
}

/// What one.example wrote on its end of `conn` since the last call.
fn written(fed: &mut Fed, conn: ConnId) -> String {
    let out: String = fed.nets[0]
        .s2s_out
        .iter()
        .filter(|(c, _)| *c == conn)
        .map(|(_, b)| String::from_utf8_lossy(b).into_owned())
        .collect();
    fed.nets[0].s2s_out.retain(|(c, _)| *c != conn);
    out
}

#[test]
fn s2s_from_a_domain_the_stream_did_not_authenticate_is_invalid_from() {
    for (i, from) in [
        "alice@one.example/home", // our own domain
        "ALICE@ONE.EXAMPLE",
        "horatio@one.example",
        "one.example",
        "carol@three.example", // a third domain two.example never proved
        "not a jid@@",
    ]
    .iter()
    .enumerate()
    {
        for xml in [
            format!(
                "<iq xmlns='jabber:server' type='get' id='s{i}' from='{from}' to='alice@one.example'>\
                 <query xmlns='jabber:iq:private'><secret xmlns='x:secret'/></query></iq>"
            ),
            format!(
                "<message xmlns='jabber:server' from='{from}' to='alice@one.example/home' \
                 id='sm{i}'><body>spoofed</body></message>"
            ),
        ] {
            // Injected on the authenticated stream as if two.example had sent it (a fresh
            // federation each time: the first spoofed stanza ends the stream).
            let (mut fed, alice, incoming) = federated();
            fed.nets[0]
                .server
                .handle_input(incoming, xml.as_bytes(), T0);
            fed.nets[0].drive();
            let out = written(&mut fed, incoming);
            assert!(out.contains("invalid-from"), "{from:?}: {out}");
            assert!(
                fed.nets[0].s2s_closed.contains(&incoming),
                "{from:?}: stream closed"
            );
            for secret in SECRETS {
                assert!(!out.contains(secret), "{from:?}: {out}");
            }
            assert!(
                !fed.nets[0]
                    .take_inbox(alice)
                    .iter()
                    .any(|m| text_of(m).contains("spoofed")),
                "{from:?}: nothing delivered"
            );
            // Alice's session and data are untouched.
            let r = fed.nets[0].iq(
                alice,
                "<iq xmlns='jabber:client' type='get' id='c'><query xmlns='jabber:iq:private'>\
                 <secret xmlns='x:secret'/></query></iq>",
            );
            assert!(text_of(&r).contains("ALICE-PRIVATE-SENTINEL"));
        }
    }
}

#[test]
fn s2s_authenticated_requests_for_private_data_are_refused() {
    // two.example did authenticate; its users still get nothing private of Alice's.
    let (mut fed, _alice, _) = federated();
    let mallory = fed.nets[1].connect_available("mallory@two.example/desk", "mallory-pw");
    for (n, to) in [
        "alice@one.example",
        "ALICE@one.example.",
        "alice@one.example\u{3002}",
        "\u{FF41}lice@one.example",
        "al\u{00AD}ice@ONE.EXAMPLE",
        "alice@one.example/home",
    ]
    .iter()
    .enumerate()
    {
        for (what, xml) in attacks(to, 100 + n) {
            fed.nets[1].send(mallory, &el(&xml));
            fed.pump();
            let ctx = format!("{what} to {to}");
            assert_nothing_leaked(&fed.nets[1], mallory, &ctx);
            let inbox = fed.nets[1].inbox.entry(mallory).or_default();
            let id = el(&xml).attr("id").unwrap().to_string();
            let Some(pos) = inbox.iter().position(|e| e.attr("id") == Some(id.as_str())) else {
                // Only a request to Alice's online session may go unanswered by the
                // server: it went to her client, which answers for itself.
                assert!(to.ends_with("/home"), "{ctx}: no reply");
                continue;
            };
            let reply = inbox.remove(pos);
            if what.starts_with("pep items") && reply.attr("type") == Some("result") {
                assert!(!text_of(&reply).contains("ALICE"), "{ctx}: {reply:?}");
            } else {
                assert_eq!(reply.attr("type"), Some("error"), "{ctx}: {reply:?}");
            }
        }
    }
}

#[test]
fn dialback_claiming_our_own_domain_is_refused() {
    let mut fed = Fed::new();
    let id = fed.nets[0].server.accept_s2s(T0);
    fed.nets[0].server.handle_input(
        id,
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback' from='one.example' to='one.example' version='1.0'>\
          <db:result from='ONE.example' to='one.example'>0123456789abcdef</db:result>\
          <message xmlns='jabber:server' from='horatio@one.example' to='alice@one.example'>\
          <body>spoofed</body></message>",
        T0,
    );
    fed.nets[0].drive();
    let out = written(&mut fed, id);
    assert!(out.contains("invalid-from"), "{out}");
    assert!(!out.contains("type='valid'"), "{out}");
    assert!(fed.nets[0].s2s_closed.contains(&id));
    assert!(
        fed.nets[0].connects.is_empty(),
        "no dialback check against ourselves: {:?}",
        fed.nets[0].connects
    );
    let alice = fed.nets[0].connect_available("alice@one.example/home", "alice-pw");
    let inbox = fed.nets[0].take_inbox(alice);
    assert!(
        !inbox.iter().any(|m| text_of(m).contains("spoofed")),
        "{inbox:?}"
    );
}

#[test]
fn whitelist_pep_items_reach_no_contact_even_a_subscribed_one() {
    let mut net = world();
    let alice = net.connect_available("alice@localhost/home", "alice-pw");
    // Mallory wants both nodes' events (XEP-0163 +notify): only the access model stands
    // between her and the diary.
    let mallory = net.connect_notify(
        "mallory@localhost/lair",
        "mallory-pw",
        &["x:diary", "x:mood"],
    );
    // Mallory becomes a presence subscriber of Alice's: a contact, not whitelisted.
    net.send(
        mallory,
        &el("<presence xmlns='jabber:client' type='subscribe' to='alice@localhost'/>"),
    );
    net.send(
        alice,
        &el("<presence xmlns='jabber:client' type='subscribed' to='mallory@localhost'/>"),
    );
    let publish = |node: &str, access: &str, text: &str, id: &str| {
        format!(
            "<iq xmlns='jabber:client' type='set' id='{id}'><pubsub xmlns='{PUBSUB}'>\
             <publish node='{node}'><item><entry xmlns='{node}'>{text}</entry></item></publish>\
             <publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>\
             <field var='pubsub#access_model'><value>{access}</value></field></x>\
             </publish-options></pubsub></iq>"
        )
    };
    let r = net.iq(
        alice,
        &publish("x:diary", "whitelist", "ALICE-PEP-SENTINEL again", "w2"),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    // The contrast that shows notifications do flow to Mallory: a presence-access node.
    let r = net.iq(alice, &publish("x:mood", "presence", "cheerful", "w3"));
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let events = net.take_events(mallory);
    assert!(
        events.iter().any(|e| text_of(e).contains("cheerful")),
        "presence-model items reach the subscriber: {events:?}"
    );
    assert_nothing_leaked(&net, mallory, "whitelist notification");
    // Asking for the items as a subscribed contact is still refused.
    let reply = request(
        &mut net,
        mallory,
        &format!(
            "<iq xmlns='jabber:client' type='get' id='wi' to='alice@localhost'>\
             <pubsub xmlns='{PUBSUB}'><items node='x:diary'/></pubsub></iq>"
        ),
    )
    .expect("answered");
    assert_eq!(reply.attr("type"), Some("error"), "{reply:?}");
    assert_nothing_leaked(&net, mallory, "whitelist items as a contact");
}
