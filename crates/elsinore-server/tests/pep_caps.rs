//! XEP-0163 §4 with XEP-0115 capabilities: the server learns what each local session wants
//! (`NODE+notify`) from its caps, through a verified shared cache or a disco#info query;
//! contacts get a node's notifications only when they want them; a session that becomes
//! available (or whose interest becomes known), or whose account's presence subscription
//! the owner approves while it is online, gets the last published item of the nodes it
//! wants and may see.

mod common;

use common::{NS_DISCO_INFO, Net, caps_info, caps_presence};
use elsinore_server::{ConnId, Instant};
use elsinore_xml::Element;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const TUNE: &str = "http://jabber.org/protocol/tune";
const MOOD: &str = "http://jabber.org/protocol/mood";

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

/// Juliet (the owner, available, no caps) and her contact Romeo (Juliet's roster: `from`;
/// no session yet), and Tybalt, who has no relation to her.
fn world() -> (Net, ConnId) {
    let mut net = Net::new("capulet.lit");
    for (user, pw) in [
        ("juliet", "r0m30"),
        ("romeo", "jul13t"),
        ("tybalt", "pr1nce"),
    ] {
        net.add_user(&format!("{user}@capulet.lit"), pw);
    }
    let juliet = net.connect_available("juliet@capulet.lit/balcony", "r0m30");
    let romeo = net.connect("romeo@capulet.lit/setup", "jul13t");
    net.send(
        romeo,
        &el("<presence xmlns='jabber:client' to='juliet@capulet.lit' type='subscribe'/>"),
    );
    net.send(
        juliet,
        &el("<presence xmlns='jabber:client' to='romeo@capulet.lit' type='subscribed'/>"),
    );
    net.server.handle_eof(romeo, net.now);
    net.clients.remove(&romeo);
    net.drive();
    net.take_inbox(juliet);
    (net, juliet)
}

/// Juliet publishes `title` to `node`, with `options` as publish-options fields.
fn publish(net: &mut Net, juliet: ConnId, node: &str, title: &str, options: &[(&str, &str)]) {
    let options = if options.is_empty() {
        String::new()
    } else {
        let fields: String = options
            .iter()
            .map(|(var, v)| format!("<field var='{var}'><value>{v}</value></field>"))
            .collect();
        format!(
            "<publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>\
             {fields}</x></publish-options>"
        )
    };
    let r = net.iq(
        juliet,
        &format!(
            "<iq type='set' id='pub' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <publish node='{node}'><item><tune xmlns='{TUNE}'><title>{title}</title></tune>\
             </item></publish>{options}</pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
}

/// (node, title) of each event in `conn`'s inbox, all from Juliet's bare JID.
fn events(net: &mut Net, conn: ConnId) -> Vec<(String, String)> {
    net.take_events(conn)
        .iter()
        .map(|m| {
            assert_eq!(m.attr("from"), Some("juliet@capulet.lit"), "{m:?}");
            assert_eq!(m.attr("type"), Some("headline"), "{m:?}");
            let items = m
                .get_child("event", EVENT)
                .and_then(|e| e.get_child("items", EVENT))
                .expect("items event");
            let node = items.attr("node").unwrap_or_default().to_string();
            let titles: Vec<String> = items
                .elements()
                .filter_map(|i| i.get_child("tune", TUNE)?.get_child("title", TUNE))
                .map(Element::text)
                .collect();
            assert_eq!(titles.len(), 1, "one item per event: {m:?}");
            (node, titles[0].clone())
        })
        .collect()
}

fn ev(node: &str, title: &str) -> (String, String) {
    (node.to_string(), title.to_string())
}

#[test]
fn unknown_caps_are_queried_then_verified_answers_are_shared() {
    let (mut net, _) = world();
    let orchard = net.connect("romeo@capulet.lit/orchard", "jul13t");
    let (info, ver) = caps_info(&[TUNE]);
    net.send(orchard, &caps_presence(Some("sha-1"), &ver));
    let q = net.take_caps_query(orchard).expect("the server asks");
    assert_eq!(q.attr("from"), Some("capulet.lit"));
    assert_eq!(q.attr("to"), Some("romeo@capulet.lit/orchard"));
    let query = q.get_child("query", NS_DISCO_INFO).expect("disco#info");
    assert_eq!(
        query.attr("node"),
        Some(format!("urn:elsinore:test#{ver}").as_str())
    );
    assert_eq!(net.server.footprint().caps_queries, 1);
    net.answer_caps(orchard, &q, &info);
    let f = net.server.footprint();
    assert_eq!((f.cached_caps, f.caps_queries), (1, 0));
    // The answer is not passed on as a stanza to anyone.
    assert!(
        net.take_inbox(orchard)
            .iter()
            .all(|e| e.name != "iq" || e.attr("type") != Some("result"))
    );

    // Another resource, even of another account, with the same ver is not asked again,
    // and its interest is known at once.
    let pocket = net.connect("romeo@capulet.lit/pocket", "jul13t");
    net.send(pocket, &caps_presence(Some("sha-1"), &ver));
    assert_eq!(net.take_caps_query(pocket), None);
    let street = net.connect("tybalt@capulet.lit/street", "pr1nce");
    net.send(street, &caps_presence(Some("sha-1"), &ver));
    assert_eq!(net.take_caps_query(street), None);
    let juliet = net.connect_available("juliet@capulet.lit/chamber", "r0m30");
    publish(&mut net, juliet, TUNE, "Greensleeves", &[]);
    assert_eq!(events(&mut net, pocket), [ev(TUNE, "Greensleeves")]);
    assert_eq!(events(&mut net, orchard), [ev(TUNE, "Greensleeves")]);
    // Tybalt wants the node but has no presence subscription.
    assert!(events(&mut net, street).is_empty());
}

#[test]
fn unverifiable_answers_serve_their_session_only() {
    let (mut net, juliet) = world();
    // A ver that is not the hash of the answer, legacy caps (no hash), an unsupported hash.
    let cases = [
        ("orchard", Some("sha-1"), "bm90IHRoZSBoYXNo"),
        ("garden", None, "1.0"),
        ("pocket", Some("md5"), "bm90IHRoZSBoYXNo"),
    ];
    let (info, _) = caps_info(&[TUNE]);
    let mut conns = Vec::new();
    for (res, hash, ver) in cases {
        let c = net.connect(&format!("romeo@capulet.lit/{res}"), "jul13t");
        net.send(c, &caps_presence(hash, ver));
        let q = net.take_caps_query(c).expect("asked");
        net.answer_caps(c, &q, &info);
        conns.push(c);
    }
    assert_eq!(net.server.footprint().cached_caps, 0);
    publish(&mut net, juliet, TUNE, "Heart's Ease", &[]);
    for c in &conns {
        assert_eq!(events(&mut net, *c), [ev(TUNE, "Heart's Ease")], "{c:?}");
    }
    // The same bad ver again: asked again, since nothing was cached.
    let again = net.connect("romeo@capulet.lit/again", "jul13t");
    net.send(again, &caps_presence(Some("sha-1"), "bm90IHRoZSBoYXNo"));
    assert!(net.take_caps_query(again).is_some());
}

#[test]
fn an_error_a_timeout_or_someone_elses_answer_leaves_no_interest() {
    let (mut net, juliet) = world();
    let (_, ver) = caps_info(&[TUNE]);
    // An error answer.
    let orchard = net.connect("romeo@capulet.lit/orchard", "jul13t");
    net.send(orchard, &caps_presence(Some("sha-1"), &ver));
    let q = net.take_caps_query(orchard).expect("asked");
    net.send(
        orchard,
        &el(&format!(
            "<iq xmlns='jabber:client' type='error' to='capulet.lit' id='{}'>\
             <error type='cancel'><service-unavailable \
             xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>",
            q.attr("id").unwrap_or_default()
        )),
    );
    // Another session answers the query meant for Romeo's garden: not taken.
    let garden = net.connect("romeo@capulet.lit/garden", "jul13t");
    let (other_info, other_ver) = caps_info(&[TUNE, MOOD]);
    net.send(garden, &caps_presence(Some("sha-1"), &other_ver));
    let gq = net.take_caps_query(garden).expect("asked");
    let tybalt = net.connect("tybalt@capulet.lit/street", "pr1nce");
    net.answer_caps(tybalt, &gq, &other_info);
    assert_eq!(net.server.footprint().caps_queries, 1);
    assert_eq!(net.server.footprint().cached_caps, 0);
    // No answer at all: after the timeout the query is gone and a late answer is ignored.
    net.now = Instant::from_millis(net.now.as_millis() + 31_000);
    net.server.handle_timeout(net.now);
    net.drive();
    assert_eq!(net.server.footprint().caps_queries, 0);
    net.answer_caps(garden, &gq, &other_info);
    assert_eq!(net.server.footprint().cached_caps, 0);
    publish(&mut net, juliet, TUNE, "Pastime", &[]);
    assert!(events(&mut net, orchard).is_empty());
    assert!(events(&mut net, garden).is_empty());
}

#[test]
fn contacts_get_only_what_they_asked_for_the_owner_everything() {
    let (mut net, balcony) = world();
    let wants = net.connect_notify("romeo@capulet.lit/orchard", "jul13t", &[TUNE]);
    let other = net.connect_notify("romeo@capulet.lit/garden", "jul13t", &[MOOD]);
    let silent = net.connect_available("romeo@capulet.lit/pocket", "jul13t");
    let away = net.connect("romeo@capulet.lit/away", "jul13t");
    net.announce(away, &[TUNE]);
    net.send(
        away,
        &el("<presence xmlns='jabber:client'><priority>-1</priority></presence>"),
    );
    // The owner's sessions: one without caps, one interested in another node only.
    let chamber = net.connect_notify("juliet@capulet.lit/chamber", "r0m30", &[MOOD]);
    for c in [wants, other, silent, away, balcony, chamber] {
        net.take_inbox(c);
    }
    publish(&mut net, balcony, TUNE, "Greensleeves", &[]);
    assert_eq!(events(&mut net, wants), [ev(TUNE, "Greensleeves")]);
    for c in [other, silent, away] {
        assert!(events(&mut net, c).is_empty(), "{c:?}");
    }
    // XEP-0163 §3: the owner's available resources get the notification whatever they
    // advertise (docs/conformance.md says why).
    assert_eq!(events(&mut net, balcony), [ev(TUNE, "Greensleeves")]);
    assert_eq!(events(&mut net, chamber), [ev(TUNE, "Greensleeves")]);

    // New caps replace the old interest.
    net.announce(wants, &[MOOD]);
    net.take_inbox(wants);
    publish(&mut net, balcony, TUNE, "Heart's Ease", &[]);
    assert!(events(&mut net, wants).is_empty());
}

#[test]
fn the_last_item_goes_to_interested_entitled_sessions_when_they_become_available() {
    let (mut net, juliet) = world();
    publish(&mut net, juliet, TUNE, "First", &[]);
    publish(&mut net, juliet, TUNE, "Second", &[]);
    let never = "urn:example:quiet";
    publish(
        &mut net,
        juliet,
        never,
        "Quiet",
        &[("pubsub#send_last_published_item", "never")],
    );
    let diary = "urn:example:diary";
    publish(
        &mut net,
        juliet,
        diary,
        "Private",
        &[("pubsub#access_model", "whitelist")],
    );
    // Private, but asked to send its last item: still only to the owner.
    let diary2 = "urn:example:diary2";
    publish(
        &mut net,
        juliet,
        diary2,
        "Owner only",
        &[
            ("pubsub#access_model", "whitelist"),
            ("pubsub#send_last_published_item", "on_sub_and_presence"),
        ],
    );
    net.take_inbox(juliet);
    let nodes = [TUNE, never, diary, diary2];

    // Initial presence with caps the server must ask for: the last item follows the answer.
    let orchard = net.connect("romeo@capulet.lit/orchard", "jul13t");
    assert!(net.announce(orchard, &nodes));
    assert_eq!(events(&mut net, orchard), [ev(TUNE, "Second")]);
    // Caps already known: at once, on initial presence.
    let pocket = net.connect("romeo@capulet.lit/pocket", "jul13t");
    assert!(!net.announce(pocket, &nodes));
    assert_eq!(events(&mut net, pocket), [ev(TUNE, "Second")]);
    // A presence update is not a new availability: nothing again.
    let (_, ver) = caps_info(&nodes);
    let mut away = caps_presence(Some("sha-1"), &ver);
    away.children.push(elsinore_xml::Node::Element(
        Element::new("show", "jabber:client").with_text("away"),
    ));
    net.send(orchard, &away);
    assert!(events(&mut net, orchard).is_empty());
    // Unavailable, then available again: sent again.
    net.send(
        orchard,
        &el("<presence xmlns='jabber:client' type='unavailable'/>"),
    );
    net.send(orchard, &caps_presence(Some("sha-1"), &ver));
    assert_eq!(events(&mut net, orchard), [ev(TUNE, "Second")]);
    // Caps that add a node: only that node's last item.
    let tune2 = "urn:example:tune2";
    publish(&mut net, juliet, tune2, "Third", &[]);
    net.take_inbox(orchard);
    net.take_inbox(pocket);
    net.announce(orchard, &[TUNE, tune2]);
    assert_eq!(events(&mut net, orchard), [ev(tune2, "Third")]);

    // Not for uninterested sessions, nor for those not entitled.
    let silent = net.connect_available("romeo@capulet.lit/silent", "jul13t");
    assert!(events(&mut net, silent).is_empty());
    let tybalt = net.connect("tybalt@capulet.lit/street", "pr1nce");
    net.announce(tybalt, &nodes);
    assert!(events(&mut net, tybalt).is_empty());
    // Negative priority: not available for PEP (XEP-0163 §4.3.2).
    let hidden = net.connect("romeo@capulet.lit/hidden", "jul13t");
    let mut p = caps_presence(Some("sha-1"), &ver);
    p.children.push(elsinore_xml::Node::Element(
        Element::new("priority", "jabber:client").with_text("-5"),
    ));
    net.send(hidden, &p);
    assert!(events(&mut net, hidden).is_empty());

    // The owner's own interested session gets her last items too, a private one
    // included unless it is `never` (whitelist nodes default to never).
    let chamber = net.connect("juliet@capulet.lit/chamber", "r0m30");
    net.announce(chamber, &nodes);
    let mut got = events(&mut net, chamber);
    got.sort();
    assert_eq!(got, [ev(TUNE, "Second"), ev(diary2, "Owner only")]);
}

#[test]
fn send_last_published_item_is_configurable() {
    let (mut net, juliet) = world();
    publish(&mut net, juliet, TUNE, "First", &[]);
    let configure = |value: &str| {
        format!(
            "<iq type='set' id='cfg' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}#owner'>\
             <configure node='{TUNE}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#node_config</value></field>\
             <field var='pubsub#send_last_published_item'><value>{value}</value></field></x>\
             </configure></pubsub></iq>"
        )
    };
    let get = format!(
        "<iq type='get' id='cg' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}#owner'>\
         <configure node='{TUNE}'/></pubsub></iq>"
    );
    let value = |r: &Element| -> Option<String> {
        r.get_child("pubsub", &format!("{PUBSUB}#owner"))?
            .get_child("configure", &format!("{PUBSUB}#owner"))?
            .get_child("x", "jabber:x:data")?
            .elements()
            .find(|f| f.attr("var") == Some("pubsub#send_last_published_item"))?
            .get_child("value", "jabber:x:data")
            .map(Element::text)
    };
    let r = net.iq(juliet, &get);
    assert_eq!(value(&r).as_deref(), Some("on_sub_and_presence"), "{r:?}");
    // `on_sub` (on approval only) is not offered.
    let r = net.iq(juliet, &configure("on_sub"));
    assert_eq!(
        common::error_condition(&r).as_deref(),
        Some("not-acceptable")
    );
    let r = net.iq(juliet, &configure("never"));
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(value(&net.iq(juliet, &get)).as_deref(), Some("never"));
    let orchard = net.connect("romeo@capulet.lit/orchard", "jul13t");
    net.announce(orchard, &[TUNE]);
    assert!(events(&mut net, orchard).is_empty());
    // Publish options are preconditions now: `never` is met, the other value is not.
    publish(
        &mut net,
        juliet,
        TUNE,
        "Second",
        &[("pubsub#send_last_published_item", "never")],
    );
    assert_eq!(events(&mut net, orchard), [ev(TUNE, "Second")]);
    let r = net.iq(
        juliet,
        &format!(
            "<iq type='set' id='pub2' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <publish node='{TUNE}'><item><tune xmlns='{TUNE}'/></item></publish>\
             <publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>\
             <field var='pubsub#send_last_published_item'><value>on_sub_and_presence</value>\
             </field></x></publish-options></pubsub></iq>"
        ),
    );
    assert_eq!(common::error_condition(&r).as_deref(), Some("conflict"));
}

/// Juliet (available, no caps) and Romeo, with no subscription between them: Juliet's
/// nodes, published before Romeo asks to see her presence.
fn strangers() -> (Net, ConnId) {
    let mut net = Net::new("capulet.lit");
    for (user, pw) in [("juliet", "r0m30"), ("romeo", "jul13t")] {
        net.add_user(&format!("{user}@capulet.lit"), pw);
    }
    let juliet = net.connect_available("juliet@capulet.lit/balcony", "r0m30");
    (net, juliet)
}

const QUIET: &str = "urn:example:quiet";
const DIARY: &str = "urn:example:diary";
const OPEN: &str = "urn:example:open";

/// A `presence` node with two items, an `open` one, a `never` one and a whitelist one
/// that asks to send its last item.
fn publish_all(net: &mut Net, juliet: ConnId) {
    publish(net, juliet, TUNE, "First", &[]);
    publish(net, juliet, TUNE, "Second", &[]);
    publish(
        net,
        juliet,
        OPEN,
        "Open",
        &[("pubsub#access_model", "open")],
    );
    let never = [("pubsub#send_last_published_item", "never")];
    publish(net, juliet, QUIET, "Quiet", &never);
    publish(
        net,
        juliet,
        DIARY,
        "Private",
        &[
            ("pubsub#access_model", "whitelist"),
            ("pubsub#send_last_published_item", "on_sub_and_presence"),
        ],
    );
    net.take_inbox(juliet);
}

/// Romeo asks to see Juliet's presence and she approves.
fn approve(net: &mut Net, romeo: ConnId, juliet: ConnId) {
    net.send(
        romeo,
        &el("<presence xmlns='jabber:client' to='juliet@capulet.lit' type='subscribe'/>"),
    );
    net.send(
        juliet,
        &el("<presence xmlns='jabber:client' to='romeo@capulet.lit' type='subscribed'/>"),
    );
}

fn sorted_events(net: &mut Net, conn: ConnId) -> Vec<(String, String)> {
    let mut got = events(net, conn);
    got.sort();
    got
}

#[test]
fn an_approved_subscription_brings_online_interested_sessions_the_last_items() {
    let (mut net, juliet) = strangers();
    publish_all(&mut net, juliet);
    let nodes = [TUNE, OPEN, QUIET, DIARY];
    // Online before the approval, each wanting every node (caps known or asked for).
    let orchard = net.connect_notify("romeo@capulet.lit/orchard", "jul13t", &nodes);
    let pocket = net.connect_notify("romeo@capulet.lit/pocket", "jul13t", &nodes);
    // Not for these: no caps, interest in another node, negative priority, no presence.
    let silent = net.connect_available("romeo@capulet.lit/silent", "jul13t");
    let mood = net.connect_notify("romeo@capulet.lit/mood", "jul13t", &[MOOD]);
    let hidden = net.connect("romeo@capulet.lit/hidden", "jul13t");
    let (_, ver) = caps_info(&nodes);
    let mut p = caps_presence(Some("sha-1"), &ver);
    p.children.push(elsinore_xml::Node::Element(
        Element::new("priority", "jabber:client").with_text("-1"),
    ));
    net.send(hidden, &p);
    let setup = net.connect("romeo@capulet.lit/setup", "jul13t");
    let all = [orchard, pocket, silent, mood, hidden, setup];
    for c in all {
        assert!(
            events(&mut net, c).is_empty(),
            "not a subscriber yet: {c:?}"
        );
    }

    approve(&mut net, orchard, juliet);
    // Exactly one event per node the session may see and whose last item goes out:
    // not the `never` node, not the whitelist one.
    let expected = [ev(TUNE, "Second"), ev(OPEN, "Open")];
    assert_eq!(sorted_events(&mut net, orchard), expected);
    assert_eq!(sorted_events(&mut net, pocket), expected);
    for c in [silent, mood, hidden, setup] {
        assert!(events(&mut net, c).is_empty(), "{c:?}");
    }
    // The owner's sessions get nothing from it.
    assert!(events(&mut net, juliet).is_empty());
    // Nothing more afterwards: a presence update, or another approval that changes nothing.
    net.send(orchard, &caps_presence(Some("sha-1"), &ver));
    net.send(
        juliet,
        &el("<presence xmlns='jabber:client' to='romeo@capulet.lit' type='subscribed'/>"),
    );
    for c in all {
        assert!(events(&mut net, c).is_empty(), "{c:?}");
    }
    // And later items as notifications, as to any subscriber.
    publish(&mut net, juliet, TUNE, "Third", &[]);
    assert_eq!(events(&mut net, orchard), [ev(TUNE, "Third")]);
}

#[test]
fn an_approval_while_caps_are_asked_for_sends_the_last_items_once() {
    let (mut net, juliet) = strangers();
    publish_all(&mut net, juliet);
    let orchard = net.connect("romeo@capulet.lit/orchard", "jul13t");
    let (info, ver) = caps_info(&[TUNE]);
    net.send(orchard, &caps_presence(Some("sha-1"), &ver));
    let q = net.take_caps_query(orchard).expect("asked");
    approve(&mut net, orchard, juliet);
    assert!(events(&mut net, orchard).is_empty());
    // The answer makes the interest known: the last item comes then, once.
    net.answer_caps(orchard, &q, &info);
    assert_eq!(events(&mut net, orchard), [ev(TUNE, "Second")]);
}

#[test]
fn a_removed_subscription_stops_the_events_and_a_new_approval_sends_the_last_items_again() {
    let (mut net, juliet) = strangers();
    publish_all(&mut net, juliet);
    let orchard = net.connect_notify("romeo@capulet.lit/orchard", "jul13t", &[TUNE, OPEN]);
    approve(&mut net, orchard, juliet);
    assert_eq!(
        sorted_events(&mut net, orchard),
        [ev(TUNE, "Second"), ev(OPEN, "Open")]
    );

    // Juliet cancels Romeo's subscription: no event, not on publish, not when Romeo is
    // available again.
    net.send(
        juliet,
        &el("<presence xmlns='jabber:client' to='romeo@capulet.lit' type='unsubscribed'/>"),
    );
    assert!(events(&mut net, orchard).is_empty());
    publish(&mut net, juliet, TUNE, "Third", &[]);
    publish(&mut net, juliet, OPEN, "Open 2", &[]);
    assert!(events(&mut net, orchard).is_empty());
    net.send(
        orchard,
        &el("<presence xmlns='jabber:client' type='unavailable'/>"),
    );
    net.announce(orchard, &[TUNE, OPEN]);
    assert!(events(&mut net, orchard).is_empty());

    // Approved again: a new subscriber again, with the items published meanwhile.
    approve(&mut net, orchard, juliet);
    assert_eq!(
        sorted_events(&mut net, orchard),
        [ev(TUNE, "Third"), ev(OPEN, "Open 2")]
    );

    // Romeo cancels it himself: nothing either.
    net.send(
        orchard,
        &el("<presence xmlns='jabber:client' to='juliet@capulet.lit' type='unsubscribe'/>"),
    );
    publish(&mut net, juliet, TUNE, "Fourth", &[]);
    assert!(events(&mut net, orchard).is_empty());
}
