//! RFC 6121 behaviour against the server core: roster, subscriptions,
//! presence, message delivery rules, offline storage.

mod common;

use common::{Net, T0, error_condition};
use elsinore_server::ConnId;
use elsinore_xml::Element;

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

fn two_users() -> (Net, ConnId, ConnId) {
    let mut net = Net::new("verona.lit");
    net.server.set_wall_clock(T0, 1_700_000_000_000);
    net.add_user("romeo@verona.lit", "r");
    net.add_user("juliet@verona.lit", "j");
    let romeo = net.connect("romeo@verona.lit/orchard", "r");
    let juliet = net.connect("juliet@verona.lit/balcony", "j");
    (net, romeo, juliet)
}

fn presences(inbox: &[Element]) -> Vec<(Option<String>, Option<String>)> {
    inbox
        .iter()
        .filter(|e| e.name == "presence")
        .map(|e| {
            (
                e.attr("type").map(str::to_string),
                e.attr("from").map(str::to_string),
            )
        })
        .collect()
}

fn roster_items(reply: &Element) -> Vec<(String, String, Option<String>)> {
    reply
        .get_child("query", "jabber:iq:roster")
        .map(|q| {
            q.elements()
                .map(|i| {
                    (
                        i.attr("jid").unwrap_or_default().to_string(),
                        i.attr("subscription").unwrap_or_default().to_string(),
                        i.attr("ask").map(str::to_string),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn get_roster(net: &mut Net, id: ConnId) -> Vec<(String, String, Option<String>)> {
    let r = net.iq(
        id,
        "<iq type='get' id='r1' xmlns='jabber:client'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    roster_items(&r)
}

#[test]
fn roster_set_get_push_remove() {
    let (mut net, romeo, _) = two_users();
    assert!(get_roster(&mut net, romeo).is_empty());
    let r = net.iq(
        romeo,
        "<iq type='set' id='s1' xmlns='jabber:client'><query xmlns='jabber:iq:roster'><item jid='nurse@verona.lit' name='Nurse'><group>Capulets</group></item></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let pushes: Vec<Element> = net
        .take_inbox(romeo)
        .into_iter()
        .filter(|e| e.attr("type") == Some("set"))
        .collect();
    assert_eq!(pushes.len(), 1, "one roster push to the interested session");
    assert_eq!(
        get_roster(&mut net, romeo),
        vec![("nurse@verona.lit".into(), "none".into(), None)]
    );
    let r = net.iq(
        romeo,
        "<iq type='set' id='s2' xmlns='jabber:client'><query xmlns='jabber:iq:roster'><item jid='nurse@verona.lit' subscription='remove'/></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"));
    assert!(get_roster(&mut net, romeo).is_empty());
    let r = net.iq(
        romeo,
        "<iq type='set' id='s3' xmlns='jabber:client'><query xmlns='jabber:iq:roster'><item jid='romeo@verona.lit'/></query></iq>",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"));
}

#[test]
fn initial_presence_comes_back_to_the_resource_that_sent_it() {
    // RFC 6121 4.2.2: initial presence goes to all of the user's available resources,
    // "including the resource that generated the presence notification"; clients use the
    // echo to confirm their status.
    let (mut net, _romeo, juliet) = two_users();
    get_roster(&mut net, juliet);
    net.send(
        juliet,
        &el("<presence xmlns='jabber:client'><show>chat</show></presence>"),
    );
    let got = net.take_inbox(juliet);
    let own: Vec<_> = got
        .iter()
        .filter(|e| e.name == "presence" && e.attr("from") == Some("juliet@verona.lit/balcony"))
        .collect();
    assert_eq!(own.len(), 1, "{got:?}");
    assert_eq!(own[0].attr("to"), Some("juliet@verona.lit/balcony"));
    assert_eq!(
        own[0]
            .get_child("show", "jabber:client")
            .map(|s| s.text())
            .as_deref(),
        Some("chat")
    );
    // Going unavailable: the resource is no longer available, so nothing comes back.
    net.send(
        juliet,
        &el("<presence xmlns='jabber:client' type='unavailable'/>"),
    );
    assert!(presences(&net.take_inbox(juliet)).is_empty());
}

#[test]
fn subscription_handshake_and_presence() {
    let (mut net, romeo, juliet) = two_users();
    get_roster(&mut net, romeo);
    get_roster(&mut net, juliet);
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    net.send(romeo, &el("<presence xmlns='jabber:client'/>"));
    net.take_inbox(romeo);
    net.take_inbox(juliet);

    net.send(
        romeo,
        &el("<presence xmlns='jabber:client' to='juliet@verona.lit' type='subscribe'/>"),
    );
    let got = net.take_inbox(juliet);
    assert!(
        presences(&got).contains(&(Some("subscribe".into()), Some("romeo@verona.lit".into()))),
        "{got:?}"
    );
    assert_eq!(
        get_roster(&mut net, romeo),
        vec![(
            "juliet@verona.lit".into(),
            "none".into(),
            Some("subscribe".into())
        )]
    );

    net.send(
        juliet,
        &el("<presence xmlns='jabber:client' to='romeo@verona.lit' type='subscribed'/>"),
    );
    let got = net.take_inbox(romeo);
    let p = presences(&got);
    assert!(
        p.contains(&(Some("subscribed".into()), Some("juliet@verona.lit".into()))),
        "{got:?}"
    );
    assert!(
        p.contains(&(None, Some("juliet@verona.lit/balcony".into()))),
        "the new subscriber gets the contact's presence: {got:?}"
    );
    assert_eq!(
        get_roster(&mut net, romeo),
        vec![("juliet@verona.lit".into(), "to".into(), None)]
    );
    assert_eq!(
        get_roster(&mut net, juliet),
        vec![("romeo@verona.lit".into(), "from".into(), None)]
    );

    // Juliet's presence updates reach Romeo; Romeo's do not reach Juliet.
    net.send(
        juliet,
        &el("<presence xmlns='jabber:client'><show>away</show></presence>"),
    );
    let got = net.take_inbox(romeo);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0]
            .get_child("show", "jabber:client")
            .map(|s| s.text())
            .as_deref(),
        Some("away")
    );
    // RFC 6121 4.4.2: the sending resource gets its own update too.
    let own = net.take_inbox(juliet);
    assert!(
        presences(&own).contains(&(None, Some("juliet@verona.lit/balcony".into()))),
        "{own:?}"
    );
    net.send(
        romeo,
        &el("<presence xmlns='jabber:client'><show>dnd</show></presence>"),
    );
    assert!(presences(&net.take_inbox(juliet)).is_empty());

    // Juliet's connection drops: Romeo sees her unavailable.
    net.server.handle_eof(juliet, T0);
    net.drive();
    let got = net.take_inbox(romeo);
    assert!(
        presences(&got).contains(&(
            Some("unavailable".into()),
            Some("juliet@verona.lit/balcony".into())
        )),
        "{got:?}"
    );
}

#[test]
fn subscription_request_waits_for_an_offline_contact() {
    let mut net = Net::new("verona.lit");
    net.add_user("romeo@verona.lit", "r");
    net.add_user("juliet@verona.lit", "j");
    let romeo = net.connect("romeo@verona.lit/orchard", "r");
    net.send(
        romeo,
        &el("<presence xmlns='jabber:client' to='juliet@verona.lit' type='subscribe'><status>It is the east</status></presence>"),
    );
    let juliet = net.connect("juliet@verona.lit/balcony", "j");
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    let got = net.take_inbox(juliet);
    let req = got
        .iter()
        .find(|e| e.attr("type") == Some("subscribe"))
        .unwrap_or_else(|| panic!("pending request delivered: {got:?}"));
    assert_eq!(req.attr("from"), Some("romeo@verona.lit"));
    assert_eq!(
        req.get_child("status", "jabber:client")
            .map(|s| s.text())
            .as_deref(),
        Some("It is the east")
    );
}

/// A subscription request with a status in each of two languages (RFC 6121 3.1.1, the
/// second inheriting the stanza's `xml:lang`), and a markup child that is not kept.
const TWO_STATUSES: &str = "<presence xmlns='jabber:client' to='juliet@verona.lit' \
    type='subscribe' xml:lang='it'><status xml:lang='en'>It is the east</status>\
    <status>\u{c8} l'oriente</status></presence>";

/// The `<status/>` children of a presence: `xml:lang` and text.
fn statuses(p: &Element) -> Vec<(Option<String>, String)> {
    p.elements()
        .filter(|c| c.is("status", "jabber:client"))
        .map(|c| (c.lang().map(str::to_string), c.text()))
        .collect()
}

fn two_statuses_expected() -> Vec<(Option<String>, String)> {
    vec![
        (Some("en".into()), "It is the east".into()),
        (Some("it".into()), "\u{c8} l'oriente".into()),
    ]
}

/// The one `subscribe` from Romeo in `inbox`.
fn request_from_romeo(inbox: &[Element]) -> &Element {
    let mut requests = inbox.iter().filter(|e| {
        e.name == "presence"
            && e.attr("type") == Some("subscribe")
            && e.attr("from") == Some("romeo@verona.lit")
    });
    let req = requests
        .next()
        .unwrap_or_else(|| panic!("request delivered: {inbox:?}"));
    assert!(requests.next().is_none(), "delivered once: {inbox:?}");
    req
}

#[test]
fn a_request_reaches_an_online_contact_with_every_status_and_its_language() {
    let (mut net, romeo, juliet) = two_users();
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    net.take_inbox(juliet);
    net.send(romeo, &el(TWO_STATUSES));
    let got = net.take_inbox(juliet);
    assert_eq!(statuses(request_from_romeo(&got)), two_statuses_expected());
}

#[test]
fn a_request_kept_for_an_offline_contact_keeps_every_status_and_its_language() {
    let (mut net, romeo, juliet) = two_users();
    net.send(romeo, &el(TWO_STATUSES));
    // Juliet's session is not available: the request waits for her initial presence.
    assert!(net.take_inbox(juliet).is_empty());
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    let got = net.take_inbox(juliet);
    assert_eq!(statuses(request_from_romeo(&got)), two_statuses_expected());
}

/// Romeo sends `request` while Juliet is away; the server restarts; Juliet logs in and
/// sends initial presence. The request as she receives it.
fn request_after_a_restart(request: &str) -> Element {
    let mut net = Net::new("verona.lit");
    net.add_user("romeo@verona.lit", "r");
    net.add_user("juliet@verona.lit", "j");
    let romeo = net.connect("romeo@verona.lit/orchard", "r");
    net.send(romeo, &el(request));
    net.restart();
    let juliet = net.connect("juliet@verona.lit/balcony", "j");
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    let got = net.take_inbox(juliet);
    request_from_romeo(&got).clone()
}

#[test]
fn a_waiting_request_keeps_every_status_across_a_server_restart() {
    let req = request_after_a_restart(TWO_STATUSES);
    assert_eq!(statuses(&req), two_statuses_expected());
}

/// A roster stored before statuses had languages (one status, the text of its
/// `<pending/>`): the waiting request is delivered with that status.
#[test]
fn a_request_stored_by_an_earlier_version_is_delivered_with_its_status() {
    use elsinore_storage::{Key, Op, Space, Store};
    let mut net = Net::new("verona.lit");
    net.add_user("romeo@verona.lit", "r");
    net.add_user("juliet@verona.lit", "j");
    let old = "<query xmlns='jabber:iq:roster' ver='1'>\
        <pending xmlns='urn:elsinore:roster-store:0' jid='romeo@verona.lit'>It is the east</pending>\
        </query>";
    let key = Key::new("juliet@verona.lit", Space::Roster, "");
    net.store.apply(&Op::Put(key, old.as_bytes().to_vec()));
    let juliet = net.connect("juliet@verona.lit/balcony", "j");
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    let got = net.take_inbox(juliet);
    assert_eq!(
        statuses(request_from_romeo(&got)),
        vec![(None, "It is the east".into())]
    );
}

const NS_NICK: &str = "http://jabber.org/protocol/nick";

fn nick_of(p: &Element) -> Option<String> {
    p.get_child("nick", NS_NICK).map(|n| n.text())
}

/// XEP-0172 §4.2: a request carries the requester's nickname, so the contact's client can
/// show who asks; it reaches an online contact, and one who logs in later (also after a
/// restart), with the request.
#[test]
fn a_request_carries_its_nickname_online_offline_and_across_a_restart() {
    const WITH_NICK: &str = "<presence xmlns='jabber:client' to='juliet@verona.lit' \
        type='subscribe'><status>It is the east</status>\
        <nick xmlns='http://jabber.org/protocol/nick'>Romeo &amp; co</nick></presence>";
    let (mut net, romeo, juliet) = two_users();
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    net.take_inbox(juliet);
    net.send(romeo, &el(WITH_NICK));
    let got = net.take_inbox(juliet);
    assert_eq!(
        nick_of(request_from_romeo(&got)).as_deref(),
        Some("Romeo & co")
    );

    let req = request_after_a_restart(WITH_NICK);
    assert_eq!(nick_of(&req).as_deref(), Some("Romeo & co"));
    assert_eq!(statuses(&req), vec![(None, "It is the east".into())]);
}

/// A nickname past the bound is dropped; the request still goes through.
#[test]
fn a_request_with_an_overlong_nickname_goes_without_it() {
    let (mut net, romeo, juliet) = two_users();
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    net.take_inbox(juliet);
    let long = "r".repeat(elsinore_server::roster::MAX_NICK_BYTES + 1);
    net.send(
        romeo,
        &el(&format!(
            "<presence xmlns='jabber:client' to='juliet@verona.lit' type='subscribe'>\
             <nick xmlns='http://jabber.org/protocol/nick'>{long}</nick></presence>"
        )),
    );
    let got = net.take_inbox(juliet);
    assert_eq!(nick_of(request_from_romeo(&got)), None);
}

#[test]
fn subscribe_to_a_missing_account_is_refused() {
    let (mut net, romeo, _) = two_users();
    net.send(romeo, &el("<presence xmlns='jabber:client'/>"));
    net.take_inbox(romeo);
    net.send(
        romeo,
        &el("<presence xmlns='jabber:client' to='rosaline@verona.lit' type='subscribe'/>"),
    );
    let got = net.take_inbox(romeo);
    assert!(
        presences(&got).contains(&(
            Some("unsubscribed".into()),
            Some("rosaline@verona.lit".into())
        )),
        "{got:?}"
    );
}

#[test]
fn offline_messages_are_stored_and_delivered_with_delay() {
    let mut net = Net::new("verona.lit");
    net.server.set_wall_clock(T0, 1_031_701_267_000);
    net.add_user("romeo@verona.lit", "r");
    net.add_user("juliet@verona.lit", "j");
    let romeo = net.connect("romeo@verona.lit/orchard", "r");
    for i in 0..3 {
        net.send(
            romeo,
            &el(&format!(
                "<message xmlns='jabber:client' to='juliet@verona.lit' type='chat' id='m{i}'><body>Parting is such sweet sorrow {i}</body><x xmlns='urn:example:ext' a='1'/></message>"
            )),
        );
    }
    assert!(
        net.take_inbox(romeo).is_empty(),
        "no bounce for stored messages"
    );
    let juliet = net.connect("juliet@verona.lit/balcony", "j");
    assert!(
        net.take_inbox(juliet).is_empty(),
        "nothing before initial presence"
    );
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    let msgs: Vec<Element> = net
        .take_inbox(juliet)
        .into_iter()
        .filter(|e| e.name == "message")
        .collect();
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.attr("id"), Some(format!("m{i}").as_str()), "in order");
        assert_eq!(m.attr("from"), Some("romeo@verona.lit/orchard"));
        let delay = m.get_child("delay", "urn:xmpp:delay").expect("delay stamp");
        assert_eq!(delay.attr("stamp"), Some("2002-09-10T23:41:07Z"));
        let legacy = m.get_child("x", "jabber:x:delay").expect("legacy stamp");
        assert_eq!(legacy.attr("stamp"), Some("20020910T23:41:07"));
        assert!(
            m.get_child("x", "urn:example:ext").is_some(),
            "extension kept"
        );
    }
    // Delivered once: a second session does not get them again.
    let again = net.connect("juliet@verona.lit/garden", "j");
    net.send(again, &el("<presence xmlns='jabber:client'/>"));
    assert!(net.take_inbox(again).iter().all(|e| e.name != "message"));
}

#[test]
fn offline_storage_limit_bounces_service_unavailable() {
    let mut net = Net::new("verona.lit");
    net.add_user("romeo@verona.lit", "r");
    net.add_user("juliet@verona.lit", "j");
    let romeo = net.connect("romeo@verona.lit/orchard", "r");
    let limit = net.server.config().max_offline_messages;
    for i in 0..=limit {
        net.send(
            romeo,
            &el(&format!(
                "<message xmlns='jabber:client' to='juliet@verona.lit' id='m{i}'><body>{i}</body></message>"
            )),
        );
    }
    let got = net.take_inbox(romeo);
    assert_eq!(
        got.len(),
        1,
        "only the message past the limit bounces: {got:?}"
    );
    assert_eq!(got[0].attr("id"), Some(format!("m{limit}").as_str()));
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("service-unavailable")
    );
}

#[test]
fn message_to_bare_jid_goes_to_the_highest_priority() {
    let (mut net, romeo, juliet) = two_users();
    let juliet2 = net.connect("juliet@verona.lit/garden", "j");
    net.send(
        juliet,
        &el("<presence xmlns='jabber:client'><priority>1</priority></presence>"),
    );
    net.send(
        juliet2,
        &el("<presence xmlns='jabber:client'><priority>5</priority></presence>"),
    );
    net.take_inbox(juliet);
    net.take_inbox(juliet2);
    net.send(
        romeo,
        &el("<message xmlns='jabber:client' to='juliet@verona.lit' type='chat'><body>hi</body></message>"),
    );
    assert!(net.take_inbox(juliet).is_empty());
    assert_eq!(net.take_inbox(juliet2).len(), 1);
    // A full JID reaches exactly that resource.
    net.send(
        romeo,
        &el("<message xmlns='jabber:client' to='juliet@verona.lit/balcony'><body>hi</body></message>"),
    );
    assert_eq!(net.take_inbox(juliet).len(), 1);
    assert!(net.take_inbox(juliet2).is_empty());
}

#[test]
fn a_forwarded_message_carries_the_senders_jid_and_its_content_intact() {
    // Forwarded as received (no tree): `from` is still the server's stamp, never the
    // client's, and the content reads back the same, references and CDATA included.
    let (mut net, romeo, juliet) = two_users();
    net.send_raw(
        romeo,
        "<message to='juliet@verona.lit/balcony' from='iago@verona.lit/lie' type='chat' \
         id='m&amp;1' xml:lang='en'><body>a &amp; b<![CDATA[ <c> ]]>&#x41;</body>\
         <x xmlns='urn:x' p='&apos;1&apos;'><y xmlns:q='urn:q' q:z='2'/></x></message>",
    );
    let inbox = net.take_inbox(juliet);
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    let m = &inbox[0];
    assert_eq!(m.attr("from"), Some("romeo@verona.lit/orchard"));
    assert_eq!(m.attr("id"), Some("m&1"));
    assert_eq!(m.lang(), Some("en"));
    assert_eq!(
        m.get_child("body", "jabber:client").map(|b| b.text()),
        Some("a & b <c> A".to_string())
    );
    let x = m.get_child("x", "urn:x").expect("x kept");
    assert_eq!(x.attr("p"), Some("'1'"));
    let y = x.get_child("y", "urn:x").expect("y kept");
    assert_eq!(y.attr_ns("urn:q", "z"), Some("2"));
    // An empty message too.
    net.send_raw(romeo, "<message to='juliet@verona.lit/balcony'/>");
    let inbox = net.take_inbox(juliet);
    assert_eq!(inbox.len(), 1);
    assert_eq!(inbox[0].attr("from"), Some("romeo@verona.lit/orchard"));
}

#[test]
fn a_message_reaches_its_session_whether_its_address_is_written_prepared_or_not() {
    // Canonical text is looked up as it is; any other spelling is prepared first, and
    // both name the same session.
    let (mut net, romeo, juliet) = two_users();
    // Available, so that the bare JID reaches her too.
    net.send(juliet, &el("<presence xmlns='jabber:client'/>"));
    net.take_inbox(juliet);
    for to in [
        "juliet@verona.lit/balcony",
        "Juliet@Verona.LIT/balcony",
        "juliet@verona.lit",
        "JULIET@verona.lit",
    ] {
        net.send_raw(
            romeo,
            &format!("<message to='{to}' type='chat'><body>hi</body></message>"),
        );
        let inbox = net.take_inbox(juliet);
        assert_eq!(inbox.len(), 1, "to={to}: {inbox:?}");
        assert_eq!(inbox[0].attr("from"), Some("romeo@verona.lit/orchard"));
    }
    // The resource is compared exactly: `Balcony` is another, offline resource, and a
    // chat message to one goes to the account's available session (the tree path's rule).
    net.send_raw(
        romeo,
        "<message to='juliet@verona.lit/Balcony' type='chat'><body>hi</body></message>",
    );
    let inbox = net.take_inbox(juliet);
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0].attr("to"), Some("juliet@verona.lit/Balcony"));
}

#[test]
fn messages_that_need_their_tree_are_routed_as_before() {
    let (mut net, romeo, juliet) = two_users();
    // A prefix declared on the message itself: delivered with its namespace.
    net.send_raw(
        romeo,
        "<message xmlns:p='urn:p' to='juliet@verona.lit/balcony'><p:thing a='1'/></message>",
    );
    let inbox = net.take_inbox(juliet);
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert!(inbox[0].get_child("thing", "urn:p").is_some(), "{inbox:?}");
    assert_eq!(inbox[0].attr("from"), Some("romeo@verona.lit/orchard"));
    // A broken xml:lang is refused, a malformed `to` bounced: the tree path's answers.
    net.send_raw(
        romeo,
        "<message to='juliet@verona.lit/balcony' id='l' xml:lang='not a tag'><body/></message>",
    );
    let back = net.take_inbox(romeo);
    assert_eq!(error_condition(&back[0]).as_deref(), Some("bad-request"));
    net.send_raw(romeo, "<message to='@verona.lit' id='j'><body/></message>");
    let back = net.take_inbox(romeo);
    assert_eq!(error_condition(&back[0]).as_deref(), Some("jid-malformed"));
    assert!(net.take_inbox(juliet).is_empty());
}

#[test]
fn roster_survives_a_server_restart() {
    let (mut net, romeo, _) = two_users();
    net.iq(
        romeo,
        "<iq type='set' id='s1' xmlns='jabber:client'><query xmlns='jabber:iq:roster'><item jid='nurse@verona.lit'/></query></iq>",
    );
    let store = std::mem::take(&mut net.store);
    let mut net2 = Net::new("verona.lit");
    net2.store = store;
    let romeo = net2.connect("romeo@verona.lit/orchard", "r");
    assert_eq!(
        get_roster(&mut net2, romeo),
        vec![("nurse@verona.lit".into(), "none".into(), None)]
    );
}
