//! Requirements of draft-ietf-xmpp-core-11 §7 (stanzas) that no other test showed, one
//! test per behaviour; each names its section. The table in `docs/conformance.md` points
//! here.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;

use common::{Net, error_condition};
use elsinore_server::{ConnId, ServerConfig};
use elsinore_xml::Element;

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

fn two_users() -> (Net, ConnId, ConnId) {
    let mut net = Net::new("shakespeare.lit");
    net.add_user("hamlet@shakespeare.lit", "to-be");
    net.add_user("ophelia@shakespeare.lit", "nunnery");
    let hamlet = net.connect("hamlet@shakespeare.lit/denmark", "to-be");
    let ophelia = net.connect("ophelia@shakespeare.lit/castle", "nunnery");
    (net, hamlet, ophelia)
}

/// §7.7.1: a message of type `error` is never answered with another error, even when it
/// cannot be delivered (the same message without the type bounces).
#[test]
fn undeliverable_error_message_is_not_answered() {
    let (mut net, hamlet, _) = two_users();
    net.send(
        hamlet,
        &el(
            "<message xmlns='jabber:client' to='yorick@shakespeare.lit' id='m1'>\
             <body>Alas</body></message>",
        ),
    );
    let got = net.take_inbox(hamlet);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("type"), Some("error"));
    net.send(
        hamlet,
        &el(
            "<message xmlns='jabber:client' type='error' to='yorick@shakespeare.lit' id='m2'>\
             <error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             </error></message>",
        ),
    );
    assert_eq!(net.take_inbox(hamlet), Vec::<Element>::new());
}

/// §7.2.3 and §7.5.1: an iq error keeps the request's `id`; §7.5.3 and §7.7.1 (SHOULD):
/// it carries the request's child back, followed by the `<error/>`.
#[test]
fn iq_error_keeps_the_id_and_the_request() {
    let (mut net, hamlet, _) = two_users();
    let reply = net.iq(
        hamlet,
        "<iq type='get' id='q-17' xmlns='jabber:client'>\
         <query xmlns='urn:example:unknown'><x/></query></iq>",
    );
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(reply.attr("id"), Some("q-17"));
    let children: Vec<&Element> = reply.elements().collect();
    assert_eq!(children.len(), 2, "{reply:?}");
    assert!(children[0].is("query", "urn:example:unknown"));
    assert!(children[0].get_child("x", "urn:example:unknown").is_some());
    assert!(children[1].is("error", "jabber:client"));
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("service-unavailable")
    );
}

/// §7.5.3: an iq get or set needs a child element; one without is `bad-request`.
#[test]
fn iq_get_without_a_child_is_bad_request() {
    let (mut net, hamlet, _) = two_users();
    let reply = net.iq(hamlet, "<iq type='get' id='empty' xmlns='jabber:client'/>");
    assert_eq!(reply.attr("type"), Some("error"));
    assert_eq!(error_condition(&reply).as_deref(), Some("bad-request"));
}

/// §7.5.3: an iq get or set MUST contain one and only one child: with several (or none)
/// it is `bad-request` (type `modify`) whoever it is addressed to, and goes no further;
/// results and errors may be empty.
#[test]
fn iq_get_or_set_with_several_children_is_bad_request() {
    let (mut net, hamlet, ophelia) = two_users();
    for (id, xml) in [
        (
            "two-pings",
            "<iq type='get' id='two-pings' to='shakespeare.lit' xmlns='jabber:client'>\
             <ping xmlns='urn:xmpp:ping'/><ping xmlns='urn:xmpp:ping'/></iq>",
        ),
        (
            "roster-and-ping",
            "<iq type='set' id='roster-and-ping' xmlns='jabber:client'>\
             <query xmlns='jabber:iq:roster'><item jid='yorick@shakespeare.lit'/></query>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        ),
        (
            "routed",
            "<iq type='get' id='routed' to='ophelia@shakespeare.lit/castle' \
             xmlns='jabber:client'><query xmlns='jabber:iq:version'/>\
             <query xmlns='jabber:iq:version'/></iq>",
        ),
        (
            "routed-empty",
            "<iq type='set' id='routed-empty' to='ophelia@shakespeare.lit/castle' \
             xmlns='jabber:client'/>",
        ),
    ] {
        net.send_raw(hamlet, xml);
        let got = net.take_inbox(hamlet);
        assert_eq!(got.len(), 1, "{id}: {got:?}");
        assert_eq!(got[0].attr("id"), Some(id));
        assert_eq!(got[0].attr("type"), Some("error"));
        assert_eq!(error_condition(&got[0]).as_deref(), Some("bad-request"));
        let error = got[0]
            .get_child("error", "jabber:client")
            .expect("an error");
        assert_eq!(error.attr("type"), Some("modify"));
    }
    // Nothing reached Ophelia, and the roster set was not applied.
    assert_eq!(net.take_inbox(ophelia), Vec::<Element>::new());
    let roster = net.iq(
        hamlet,
        "<iq type='get' id='r' xmlns='jabber:client'><query xmlns='jabber:iq:roster'/></iq>",
    );
    let query = roster
        .get_child("query", "jabber:iq:roster")
        .expect("a roster");
    assert_eq!(query.elements().count(), 0, "{roster:?}");
    // An empty result to Ophelia is routed (only get and set need a payload).
    net.send_raw(
        hamlet,
        "<iq type='result' id='ok' to='ophelia@shakespeare.lit/castle' xmlns='jabber:client'/>",
    );
    assert_eq!(net.take_inbox(hamlet), Vec::<Element>::new());
    let got = net.take_inbox(ophelia);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("id"), Some("ok"));
}

/// §7.5.1: iq results and errors addressed to the server get no answer.
#[test]
fn iq_result_or_error_to_the_server_is_not_answered() {
    let (mut net, hamlet, _) = two_users();
    net.send(
        hamlet,
        &el("<iq type='result' id='r1' to='shakespeare.lit' xmlns='jabber:client'/>"),
    );
    net.send(
        hamlet,
        &el(
            "<iq type='error' id='r2' to='shakespeare.lit' xmlns='jabber:client'>\
             <error type='cancel'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             </error></iq>",
        ),
    );
    assert_eq!(net.take_inbox(hamlet), Vec::<Element>::new());
}

/// §7.2.1: a `to` that is not a valid JID is answered with an error to the sender
/// (`jid-malformed`), nothing is delivered.
#[test]
fn malformed_to_is_answered_with_jid_malformed() {
    let (mut net, hamlet, ophelia) = two_users();
    net.send_raw(
        hamlet,
        "<message xmlns='jabber:client' to='ophelia@@shakespeare.lit' id='bad'>\
         <body>x</body></message>",
    );
    let got = net.take_inbox(hamlet);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("id"), Some("bad"));
    assert_eq!(error_condition(&got[0]).as_deref(), Some("jid-malformed"));
    assert_eq!(net.take_inbox(ophelia), Vec::<Element>::new());
}

/// §7.2.5 and §7.3.2: `xml:lang` on a stanza and on its body, and several bodies in
/// other languages, reach the recipient unchanged.
#[test]
fn xml_lang_is_delivered_unchanged() {
    let (mut net, hamlet, ophelia) = two_users();
    let msg = el(
        "<message xmlns='jabber:client' to='ophelia@shakespeare.lit/castle' type='chat' \
         xml:lang='en'><body>Get thee to a nunnery</body>\
         <body xml:lang='de'>Geh in ein Kloster</body>\
         <subject xml:lang='fr'>Couvent</subject><thread>t-1</thread></message>",
    );
    net.send(hamlet, &msg);
    let got = net.take_inbox(ophelia);
    let m = got.iter().find(|e| e.name == "message").expect("delivered");
    assert_eq!(m.lang(), Some("en"));
    let sent: Vec<&Element> = msg.elements().collect();
    let recv: Vec<&Element> = m.elements().collect();
    assert_eq!(sent, recv);
}

/// §7.2.5: `xml:lang` MUST be an RFC 3066 tag. Stanzas with one pass unchanged; one with
/// anything else is refused with `bad-request` and not delivered.
#[test]
fn xml_lang_must_be_a_language_tag() {
    let (mut net, hamlet, ophelia) = two_users();
    for (n, lang) in ["en", "pt-BR", "i-klingon", "x-elsinore-1", "zh-Hant-TW", ""]
        .iter()
        .enumerate()
    {
        net.send(
            hamlet,
            &el(&format!(
                "<message xmlns='jabber:client' to='ophelia@shakespeare.lit/castle' \
                 id='ok{n}' xml:lang='{lang}'><body>b</body></message>"
            )),
        );
        let got = net.take_inbox(ophelia);
        let m = got
            .iter()
            .find(|e| e.attr("id") == Some(&format!("ok{n}")))
            .unwrap_or_else(|| panic!("{lang:?} delivered"));
        assert_eq!(m.lang(), Some(*lang));
    }
    for (n, lang) in [
        "en_US",
        "en-",
        "-en",
        "toolongtag",
        "en-toolongsub",
        "1en",
        "en us",
    ]
    .iter()
    .enumerate()
    {
        for stanza in ["message", "presence"] {
            let id = format!("bad{n}{stanza}");
            net.send(
                hamlet,
                &el(&format!(
                    "<{stanza} xmlns='jabber:client' to='ophelia@shakespeare.lit/castle' \
                     id='{id}' xml:lang='{lang}'/>"
                )),
            );
            let got = net.take_inbox(hamlet);
            let bounced = got
                .iter()
                .find(|e| e.attr("id") == Some(id.as_str()))
                .unwrap_or_else(|| panic!("{lang:?} refused"));
            assert_eq!(bounced.attr("type"), Some("error"));
            assert_eq!(error_condition(bounced).as_deref(), Some("bad-request"));
            assert!(net.take_inbox(ophelia).is_empty(), "{lang:?} not delivered");
        }
        let reply = net.iq(
            hamlet,
            &format!(
                "<iq xmlns='jabber:client' type='get' id='q{n}' xml:lang='{lang}'>\
                 <ping xmlns='urn:xmpp:ping'/></iq>"
            ),
        );
        assert_eq!(error_condition(&reply).as_deref(), Some("bad-request"));
    }
}

/// §7.6: a message to the server itself (here with only an unknown payload) is ignored:
/// no reply, nothing delivered.
#[test]
fn message_to_the_server_is_ignored() {
    let (mut net, hamlet, ophelia) = two_users();
    net.send(
        hamlet,
        &el(
            "<message xmlns='jabber:client' to='shakespeare.lit' id='m3'>\
             <x xmlns='urn:example:unknown'/></message>",
        ),
    );
    assert_eq!(net.take_inbox(hamlet), Vec::<Element>::new());
    assert_eq!(net.take_inbox(ophelia), Vec::<Element>::new());
    // The server is still there.
    let pong = net.iq(
        hamlet,
        "<iq type='get' id='p' to='shakespeare.lit' xmlns='jabber:client'>\
         <ping xmlns='urn:xmpp:ping'/></iq>",
    );
    assert_eq!(pong.attr("type"), Some("result"));
}

/// §7.5.1: an iq result is never answered, also when its recipient is gone (an iq get
/// to the same address bounces).
#[test]
fn iq_result_to_an_unavailable_resource_is_not_answered() {
    let (mut net, hamlet, _) = two_users();
    net.send(
        hamlet,
        &el("<iq type='result' id='r9' to='ophelia@shakespeare.lit/gone' xmlns='jabber:client'/>"),
    );
    assert_eq!(net.take_inbox(hamlet), Vec::<Element>::new());
    let reply = net.iq(
        hamlet,
        "<iq type='get' id='g9' to='ophelia@shakespeare.lit/gone' xmlns='jabber:client'>\
         <query xmlns='jabber:iq:version'/></iq>",
    );
    assert_eq!(
        error_condition(&reply).as_deref(),
        Some("service-unavailable")
    );
}

/// §7.3.2.3 and §7.7.1: an undeliverable message comes back with every child of the
/// original, `<thread/>` included.
#[test]
fn bounce_carries_the_thread_back() {
    let (mut net, hamlet, _) = two_users();
    net.send(
        hamlet,
        &el(
            "<message xmlns='jabber:client' to='yorick@shakespeare.lit' id='t1' type='chat'>\
             <body>Alas</body><thread>skull-1</thread></message>",
        ),
    );
    let got = net.take_inbox(hamlet);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("type"), Some("error"));
    assert_eq!(
        got[0]
            .get_child("thread", "jabber:client")
            .map(|t| t.text())
            .as_deref(),
        Some("skull-1")
    );
}

/// §7.2.5: the iqs the server writes carry no `xml:lang`, even when the request did.
#[test]
fn server_iq_answers_have_no_xml_lang() {
    let (mut net, hamlet, _) = two_users();
    for xml in [
        "<iq type='get' id='l1' to='shakespeare.lit' xml:lang='de' xmlns='jabber:client'>\
         <ping xmlns='urn:xmpp:ping'/></iq>",
        "<iq type='get' id='l2' xml:lang='de' xmlns='jabber:client'>\
         <query xmlns='urn:example:unknown'/></iq>",
    ] {
        let reply = net.iq(hamlet, xml);
        assert!(reply.lang().is_none(), "{reply:?}");
        assert!(
            !String::from_utf8_lossy(&reply.to_bytes()).contains("xml:lang"),
            "{reply:?}"
        );
    }
}

/// §7.5.2: an iq without a type, or with one that is not get, set, result or error, is
/// answered with `bad-request` and goes no further (RFC 6120 8.2.3; the draft would have
/// it ignored).
#[test]
fn iq_without_a_valid_type_is_bad_request() {
    let (mut net, hamlet, ophelia) = two_users();
    for (id, xml) in [
        (
            "t1",
            "<iq id='t1' to='shakespeare.lit' xmlns='jabber:client'>\
             <ping xmlns='urn:xmpp:ping'/></iq>",
        ),
        (
            "t2",
            "<iq id='t2' type='fetch' to='ophelia@shakespeare.lit/castle' xmlns='jabber:client'>\
             <query xmlns='jabber:iq:version'/></iq>",
        ),
    ] {
        net.send_raw(hamlet, xml);
        let got = net.take_inbox(hamlet);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].attr("id"), Some(id));
        assert_eq!(got[0].attr("type"), Some("error"));
        assert_eq!(error_condition(&got[0]).as_deref(), Some("bad-request"));
    }
    assert_eq!(net.take_inbox(ophelia), Vec::<Element>::new());
}

/// §11.2: a client's IP address is not made available. The adapter gives the core each
/// connection's address (for the per-address limits); nothing the server writes to any
/// connection names one: stream headers and features, a SASL failure, a stream error,
/// the refusal of a connection over the per-address limit, service answers and bounces,
/// and the presence, messages and iq answers one user gets from or about another.
#[test]
fn no_reply_names_a_client_address() {
    let mut cfg = ServerConfig::new("shakespeare.lit");
    cfg.scram_iterations = 4096;
    cfg.abuse.max_connections_per_ip = 1;
    let mut net = Net::with_config(cfg);
    net.wire = Some(HashMap::new());
    net.add_user("hamlet@shakespeare.lit", "to-be");
    net.add_user("ophelia@shakespeare.lit", "nunnery");
    let hamlet_ip: IpAddr = "203.0.113.77".parse().expect("ip");
    let ophelia_ip: IpAddr = "2001:db8:77::1234".parse().expect("ip");
    let guesser_ip: IpAddr = "198.51.100.23".parse().expect("ip");

    let guesser = net.connect_from(Some(guesser_ip), "hamlet@shakespeare.lit/x", "not-to-be");
    assert!(net.jid_of(guesser).is_none(), "wrong password");
    let hamlet = net.connect_from(Some(hamlet_ip), "hamlet@shakespeare.lit/denmark", "to-be");
    let ophelia = net.connect_from(
        Some(ophelia_ip),
        "ophelia@shakespeare.lit/castle",
        "nunnery",
    );
    assert!(net.jid_of(hamlet).is_some() && net.jid_of(ophelia).is_some());
    // Mutual subscriptions, then available presence both ways.
    net.mutual_subscription(
        hamlet,
        "hamlet@shakespeare.lit",
        ophelia,
        "ophelia@shakespeare.lit",
    );
    for id in [hamlet, ophelia] {
        net.send(
            id,
            &el("<presence xmlns='jabber:client'><status>here</status></presence>"),
        );
    }
    net.send(
        hamlet,
        &el(
            "<message xmlns='jabber:client' to='ophelia@shakespeare.lit' type='chat'>\
             <body>Nymph, in thy orisons</body></message>",
        ),
    );
    net.send(
        hamlet,
        &el(
            "<message xmlns='jabber:client' to='yorick@shakespeare.lit' id='gone'>\
             <body>Alas</body></message>",
        ),
    );
    for (n, (to, ns)) in [
        ("shakespeare.lit", "http://jabber.org/protocol/disco#info"),
        ("shakespeare.lit", "http://jabber.org/protocol/disco#items"),
        ("shakespeare.lit", "jabber:iq:version"),
        ("shakespeare.lit", "jabber:iq:last"),
        ("ophelia@shakespeare.lit", "jabber:iq:last"),
        ("ophelia@shakespeare.lit", "vcard-temp"),
        ("ophelia@shakespeare.lit/castle", "jabber:iq:version"),
    ]
    .into_iter()
    .enumerate()
    {
        let q = if ns == "vcard-temp" { "vCard" } else { "query" };
        net.send(
            hamlet,
            &el(&format!(
                "<iq xmlns='jabber:client' type='get' id='q{n}' to='{to}'><{q} xmlns='{ns}'/></iq>"
            )),
        );
    }
    // Ophelia answers the version query routed to her.
    net.send(
        ophelia,
        &el(
            "<iq xmlns='jabber:client' type='result' id='q6' to='hamlet@shakespeare.lit/denmark'>\
             <query xmlns='jabber:iq:version'><name>orisons</name></query></iq>",
        ),
    );
    // Over the per-address limit: refused with a stream error. This also shows that the
    // core did see Hamlet's address.
    let over = net.server.accept_from(hamlet_ip, net.now);
    net.drive();
    let refused = String::from_utf8_lossy(&net.wire.as_ref().expect("kept")[&over]).to_string();
    assert!(refused.contains("policy-violation"), "{refused}");
    // A stream error on an established stream.
    net.send_raw(ophelia, "<message><unclosed></message>");
    assert!(
        net.closed_error(ophelia).is_some(),
        "not well-formed ends the stream"
    );

    let wire = net.wire.take().expect("kept");
    for id in [guesser, hamlet, ophelia, over] {
        assert!(
            wire.get(&id).is_some_and(|w| w.len() > 100),
            "{id:?} got answers"
        );
    }
    let addresses: Vec<String> = [hamlet_ip, ophelia_ip, guesser_ip]
        .iter()
        .flat_map(|ip| {
            let mut forms = vec![ip.to_string()];
            if let IpAddr::V6(v6) = ip {
                // Written out in full as well as compressed.
                let full: Vec<String> = v6.segments().iter().map(|s| format!("{s:x}")).collect();
                forms.push(full.join(":"));
            }
            forms
        })
        .collect();
    for (id, bytes) in &wire {
        let text = String::from_utf8_lossy(bytes);
        for a in &addresses {
            assert!(!text.contains(a.as_str()), "{a} sent to {id:?}: {text}");
        }
    }
}

/// The `<body/>`, `<subject/>` and `<status/>` children (jabber:client) of `stanza` have no
/// attribute but `xml:lang` and text only; returns their text, in order.
fn plain_texts(stanza: &Element) -> Vec<String> {
    let mut texts = Vec::new();
    for c in stanza.elements() {
        if c.ns != "jabber:client" || !matches!(c.name.as_str(), "body" | "subject" | "status") {
            continue;
        }
        for a in &c.attrs {
            let xml_lang = a.ns == elsinore_xml::XML_NS && a.name == "lang";
            assert!(
                xml_lang,
                "attribute {} on <{}/>: {stanza:?}",
                a.name, c.name
            );
        }
        for n in &c.children {
            assert!(
                matches!(n, elsinore_xml::Node::Text(_)),
                "mixed content in <{}/>: {stanza:?}",
                c.name
            );
        }
        texts.push(c.text());
    }
    texts
}

/// denmark with group chat join messages and one release for update notices, so that
/// every kind of text and payload the server writes itself can be produced.
fn denmark_with_rooms_and_updates() -> ServerConfig {
    let mut cfg = ServerConfig::new("denmark");
    cfg.scram_iterations = 4096;
    cfg.muc_join_messages = true;
    cfg.releases = vec![elsinore_server::Release {
        client: "winjab".into(),
        version: "0.9.1.1".into(),
        kind: elsinore_server::ReleaseKind::Release,
        priority: "optional".into(),
        desc: String::new(),
        url: "http://update.denmark/winjab.exe".into(),
    }];
    cfg
}

/// §7.3.2.1, §7.3.2.2 and §7.4.2.2: every `<body/>`, `<subject/>` and `<status/>` the
/// server writes itself has no attribute but `xml:lang` and no mixed content, also where
/// its text comes from a client that sent attributes and markup: the status of
/// subscription requests (delivered at once and kept for an offline contact), the room
/// subject a late joiner gets, room notices, group chat invitations, and update notices.
#[test]
fn body_subject_and_status_the_server_writes_are_plain_text() {
    const MARKUP: &str = "xmlns:m='urn:example:markup'";
    let mut net = Net::with_config(denmark_with_rooms_and_updates());
    for u in ["hamlet", "ophelia", "horatio"] {
        net.add_user(&format!("{u}@denmark"), "pw");
    }
    let hamlet = net.connect_available("hamlet@denmark/castle", "pw");
    let ophelia = net.connect_available("ophelia@denmark/castle", "pw");

    // Subscription requests with a decorated status: to Ophelia (online) and to Horatio
    // (offline, kept until he comes).
    for to in ["ophelia", "horatio"] {
        net.send(
            hamlet,
            &el(&format!(
                "<presence xmlns='jabber:client' {MARKUP} to='{to}@denmark' type='subscribe'>\
                 <status xml:lang='en' m:style='bold'>Be my <m:em>friend</m:em></status></presence>"
            )),
        );
    }
    let got = net.take_inbox(ophelia);
    let request = got
        .iter()
        .find(|p| p.attr("type") == Some("subscribe"))
        .expect("request delivered");
    assert_eq!(plain_texts(request), ["Be my "]);
    let horatio = net.connect("horatio@denmark/study", "pw");
    net.send(horatio, &el("<presence xmlns='jabber:client'/>"));
    let got = net.take_inbox(horatio);
    let request = got
        .iter()
        .find(|p| p.attr("type") == Some("subscribe"))
        .expect("kept request delivered");
    assert_eq!(plain_texts(request), ["Be my "]);

    // Group chat: Hamlet sets a decorated subject; Ophelia joins and gets it from the room.
    let room = "act3@conference.denmark";
    let join = |nick: &str| {
        el(&format!(
            "<presence xmlns='jabber:client' to='{room}/{nick}'>\
             <x xmlns='http://jabber.org/protocol/muc'/></presence>"
        ))
    };
    net.send(hamlet, &join("Hamlet"));
    net.send(
        hamlet,
        &el(&format!(
            "<message xmlns='jabber:client' {MARKUP} to='{room}' type='groupchat'>\
             <subject xml:lang='en' m:style='bold'>The <m:em>play</m:em></subject></message>"
        )),
    );
    net.take_inbox(hamlet);
    net.send(ophelia, &join("Ophelia"));
    let got = net.take_inbox(ophelia);
    let subject = got
        .iter()
        .find(|m| m.name == "message" && m.get_child("subject", "jabber:client").is_some())
        .expect("the subject ends the join");
    assert_eq!(plain_texts(subject), ["The "]);
    let got = net.take_inbox(hamlet);
    let notice = got
        .iter()
        .find(|m| m.name == "message" && m.attr("from") == Some(room))
        .expect("join notice");
    assert_eq!(plain_texts(notice), ["Ophelia has arrived."]);

    // The guide's invitation, with a decorated reason.
    net.send(
        hamlet,
        &el(&format!(
            "<message xmlns='jabber:client' {MARKUP} to='{room}'>\
             <subject>invite:horatio@denmark</subject>\
             <body xml:lang='en' m:style='bold'>Come <m:em>now</m:em></body></message>"
        )),
    );
    let got = net.take_inbox(horatio);
    let invite = got
        .iter()
        .find(|m| m.name == "message" && m.attr("from") == Some(room))
        .expect("invitation");
    assert_eq!(plain_texts(invite), ["invite:horatio@denmark", "Come "]);

    // An update notice (the guide's Example 7-2).
    net.send(
        hamlet,
        &el("<presence xmlns='jabber:client' to='winjab@update.denmark/0.9.0.1'/>"),
    );
    let got = net.take_inbox(hamlet);
    let update = got
        .iter()
        .find(|m| m.name == "message")
        .expect("update notice");
    let texts = plain_texts(update);
    assert_eq!(texts.len(), 2, "{update:?}");
    assert!(texts[1].contains("0.9.1.1"), "{texts:?}");
}

/// The namespaces of draft-ietf-xmpp-core-11 itself, which an extension may not use.
const CORE_NAMESPACES: [&str; 8] = [
    "jabber:client",
    "jabber:server",
    "jabber:server:dialback",
    "http://etherx.jabber.org/streams",
    "urn:ietf:params:xml:ns:xmpp-tls",
    "urn:ietf:params:xml:ns:xmpp-sasl",
    "urn:ietf:params:xml:ns:xmpp-streams",
    "urn:ietf:params:xml:ns:xmpp-stanzas",
];

/// §7.6: a child of a stanza is one the core defines for it (in jabber:client) or an
/// extension in a namespace of its own, never in no namespace or a core namespace. Checked
/// on every stanza a session of each user receives while the server answers its services
/// (roster, disco, version, time, last, vCard, private XML, registration, agents, ping,
/// PEP and its events, caps queries), bounces, stores and delivers offline messages, runs
/// group chat (presence, history, subject, invitations) and sends update notices. What
/// the test's clients send is namespaced too, so what they route passes as well.
#[test]
fn extension_children_the_server_writes_are_namespaced() {
    const TUNE: &str = "http://jabber.org/protocol/tune";
    let mut net = Net::with_config(denmark_with_rooms_and_updates());
    net.server.set_wall_clock(common::T0, 1_700_000_000_000);
    for u in ["hamlet", "ophelia", "horatio"] {
        net.add_user(&format!("{u}@denmark"), "pw");
    }
    let hamlet = net.connect("hamlet@denmark/castle", "pw");
    let ophelia = net.connect("ophelia@denmark/castle", "pw");
    net.mutual_subscription(hamlet, "hamlet@denmark", ophelia, "ophelia@denmark");
    net.send(hamlet, &el("<presence xmlns='jabber:client'/>"));
    // Ophelia wants tune events: the server asks for her capabilities.
    let (info, ver) = common::caps_info(&[TUNE]);
    net.send(ophelia, &common::caps_presence(Some("sha-1"), &ver));
    let caps_query = net.inbox[&ophelia]
        .iter()
        .find(|e| e.name == "iq" && e.attr("type") == Some("get"))
        .cloned()
        .expect("a caps query");
    net.answer_caps(ophelia, &caps_query, &info);
    let requests = [
        "<query xmlns='jabber:iq:roster'/>".to_string(),
        format!(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='{TUNE}'>\
                 <item><tune xmlns='{TUNE}'><title>Yorick</title></tune></item></publish></pubsub>"
        ),
        format!(
            "<pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='{TUNE}'/></pubsub>"
        ),
        "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>x</prefs></query>"
            .to_string(),
        "<vCard xmlns='vcard-temp'><FN>Hamlet</FN></vCard>".to_string(),
    ];
    for (n, payload) in requests.iter().enumerate() {
        let ty = if n == 0 || n == 2 { "get" } else { "set" };
        net.send_raw(
            hamlet,
            &format!("<iq xmlns='jabber:client' type='{ty}' id='s{n}'>{payload}</iq>"),
        );
    }
    for (n, (to, payload)) in [
        (
            "",
            "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'/></query>",
        ),
        ("", "<vCard xmlns='vcard-temp'/>"),
        ("", "<query xmlns='jabber:iq:register'/>"),
        ("", "<query xmlns='jabber:iq:agents'/>"),
        (
            "denmark",
            "<query xmlns='http://jabber.org/protocol/disco#info'/>",
        ),
        (
            "denmark",
            "<query xmlns='http://jabber.org/protocol/disco#items'/>",
        ),
        ("denmark", "<query xmlns='jabber:iq:version'/>"),
        ("denmark", "<query xmlns='jabber:iq:time'/>"),
        ("denmark", "<time xmlns='urn:xmpp:time'/>"),
        ("denmark", "<query xmlns='jabber:iq:last'/>"),
        ("denmark", "<ping xmlns='urn:xmpp:ping'/>"),
        ("denmark", "<query xmlns='urn:example:unknown'/>"),
        ("ophelia@denmark", "<query xmlns='jabber:iq:last'/>"),
        ("ophelia@denmark", "<vCard xmlns='vcard-temp'/>"),
    ]
    .into_iter()
    .enumerate()
    {
        let to = if to.is_empty() {
            String::new()
        } else {
            format!(" to='{to}'")
        };
        net.send_raw(
            hamlet,
            &format!("<iq xmlns='jabber:client' type='get' id='g{n}'{to}>{payload}</iq>"),
        );
    }
    // A bounce, and a message kept for Horatio until he comes.
    net.send_raw(
        hamlet,
        "<message xmlns='jabber:client' to='yorick@denmark' id='gone'><body>Alas</body></message>",
    );
    net.send_raw(
        hamlet,
        "<message xmlns='jabber:client' to='horatio@denmark'><body>Come</body></message>",
    );
    let horatio = net.connect("horatio@denmark/study", "pw");
    net.send(horatio, &el("<presence xmlns='jabber:client'/>"));
    // Group chat: join, talk, a late joiner gets history and subject, an invitation.
    let room = "act3@conference.denmark";
    for (id, nick) in [(hamlet, "Hamlet"), (ophelia, "Ophelia")] {
        net.send_raw(
            id,
            &format!(
                "<presence xmlns='jabber:client' to='{room}/{nick}'>\
                 <x xmlns='http://jabber.org/protocol/muc'/></presence>"
            ),
        );
        net.send_raw(
            id,
            &format!(
                "<message xmlns='jabber:client' to='{room}' type='groupchat'>\
                 <body>{nick} speaks</body></message>"
            ),
        );
    }
    net.send_raw(
        hamlet,
        &format!(
            "<message xmlns='jabber:client' to='{room}'>\
             <subject>invite:horatio@denmark</subject><body>Come</body></message>"
        ),
    );
    net.send_raw(
        hamlet,
        "<presence xmlns='jabber:client' to='winjab@update.denmark/0.9.0.1'/>",
    );

    let mut seen = std::collections::BTreeSet::new();
    let mut count = 0;
    for id in [hamlet, ophelia, horatio] {
        for stanza in net.take_inbox(id) {
            count += 1;
            let core: &[&str] = match stanza.name.as_str() {
                "message" => &["subject", "body", "thread", "error"],
                "presence" => &["show", "status", "priority", "error"],
                _ => &["error"],
            };
            for c in stanza.elements() {
                if c.ns == "jabber:client" {
                    assert!(
                        core.contains(&c.name.as_str()),
                        "<{}/> in {stanza:?}",
                        c.name
                    );
                } else {
                    assert!(
                        !c.ns.is_empty() && !CORE_NAMESPACES.contains(&c.ns.as_str()),
                        "<{}/> in namespace {:?}: {stanza:?}",
                        c.name,
                        c.ns
                    );
                    seen.insert(c.ns.clone());
                }
            }
        }
    }
    // The scenario reached the payload writers it means to check.
    for ns in [
        "jabber:iq:roster",
        "http://jabber.org/protocol/pubsub",
        "http://jabber.org/protocol/pubsub#event",
        "http://jabber.org/protocol/disco#info",
        "http://jabber.org/protocol/disco#items",
        "jabber:iq:private",
        "vcard-temp",
        "jabber:iq:register",
        "jabber:iq:agents",
        "jabber:iq:version",
        "jabber:iq:time",
        "urn:xmpp:time",
        "jabber:iq:last",
        "urn:xmpp:delay",
        "jabber:x:delay",
        "http://jabber.org/protocol/muc#user",
        "jabber:x:conference",
        "jabber:x:autoupdate",
    ] {
        assert!(
            seen.contains(ns),
            "no {ns} payload among {count} stanzas: {seen:?}"
        );
    }
}
