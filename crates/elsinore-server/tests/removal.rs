//! Account removal (XEP-0077 §3.2 `<remove/>`): the contacts are told (RFC 6121 2.5.2
//! semantics, both directions), and no write that raced the deletion brings data back.

mod common;

use common::Net;
use elsinore_jid::BareJid;
use elsinore_server::ConnId;
use elsinore_server::roster::{Item, Roster, Subscription};
use elsinore_storage::{EffectResult, Key, Op, Space, Store};
use elsinore_xml::Element;

const ROMEO: &str = "romeo@verona.lit";

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

fn jid(s: &str) -> BareJid {
    BareJid::parse(s).expect("valid JID")
}

fn item(contact: &str, subscription: Subscription, ask: bool) -> Item {
    Item {
        jid: jid(contact),
        name: None,
        groups: Vec::new(),
        subscription,
        ask,
    }
}

fn roster_key(account: &str) -> Key {
    Key::new(account, Space::Roster, "")
}

fn put_roster(net: &mut Net, account: &str, items: Vec<Item>, pending_in: &[&str]) {
    let r = Roster {
        items,
        pending_in: pending_in
            .iter()
            .map(|j| (jid(j), Default::default()))
            .collect(),
        version: 1,
    };
    let done = net.store.apply(&Op::Put(roster_key(account), r.to_bytes()));
    assert_eq!(done, EffectResult::Done);
}

fn stored_roster(net: &mut Net, account: &str) -> Roster {
    match net.store.apply(&Op::Get(roster_key(account))) {
        EffectResult::Value(Some(b)) => Roster::from_bytes(&b).expect("stored roster decodes"),
        other => panic!("no roster for {account}: {other:?}"),
    }
}

fn keys_of(net: &Net, account: &str) -> usize {
    net.store
        .iter()
        .filter(|(k, _)| k.account == account)
        .count()
}

fn remove(net: &mut Net, conn: ConnId) {
    let r = net.iq(
        conn,
        "<iq type='set' id='rm' xmlns='jabber:client'><query xmlns='jabber:iq:register'>\
         <remove/></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let closed = net.closed_error(conn).flatten().unwrap_or_default();
    assert!(closed.contains("not-authorized"), "{closed:?}");
}

/// Romeo's contacts on verona.lit, each in another relation with him: Juliet (both ways,
/// online), the Nurse (subscribed to him, offline), Tybalt (asked to see him, no answer
/// yet), Benvolio (Romeo asked to see him, no answer yet), Mercutio (on Romeo's roster
/// only, no subscription).
fn verona() -> Net {
    let mut net = Net::new("verona.lit");
    for u in [
        ROMEO,
        "juliet@verona.lit",
        "nurse@verona.lit",
        "tybalt@verona.lit",
    ] {
        net.add_user(u, "pw");
    }
    net.add_user("benvolio@verona.lit", "pw");
    net.add_user("mercutio@verona.lit", "pw");
    put_roster(
        &mut net,
        ROMEO,
        vec![
            item("juliet@verona.lit", Subscription::Both, false),
            item("nurse@verona.lit", Subscription::From, false),
            item("benvolio@verona.lit", Subscription::None, true),
            item("mercutio@verona.lit", Subscription::None, false),
        ],
        &["tybalt@verona.lit"],
    );
    put_roster(
        &mut net,
        "juliet@verona.lit",
        vec![item(ROMEO, Subscription::Both, false)],
        &[],
    );
    put_roster(
        &mut net,
        "nurse@verona.lit",
        vec![item(ROMEO, Subscription::To, false)],
        &[],
    );
    put_roster(
        &mut net,
        "tybalt@verona.lit",
        vec![item(ROMEO, Subscription::None, true)],
        &[],
    );
    put_roster(&mut net, "benvolio@verona.lit", Vec::new(), &[ROMEO]);
    put_roster(
        &mut net,
        "mercutio@verona.lit",
        vec![item(ROMEO, Subscription::None, false)],
        &[],
    );
    net
}

/// An available session that asked for the roster (so it gets roster pushes).
fn interested(net: &mut Net, full: &str) -> ConnId {
    let c = net.connect(full, "pw");
    let r = net.iq(
        c,
        "<iq type='get' id='r' xmlns='jabber:client'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    net.send(c, &el("<presence xmlns='jabber:client'/>"));
    c
}

/// (type, from) of the presence stanzas in `inbox`.
fn presences(inbox: &[Element]) -> Vec<(String, String)> {
    inbox
        .iter()
        .filter(|e| e.name == "presence")
        .map(|e| {
            (
                e.attr("type").unwrap_or("available").to_string(),
                e.attr("from").unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The (subscription, ask) of the roster pushes about `contact` in `inbox`, in order.
fn pushes_about(inbox: &[Element], contact: &str) -> Vec<(String, Option<String>)> {
    inbox
        .iter()
        .filter(|e| e.name == "iq" && e.attr("type") == Some("set"))
        .filter_map(|e| e.get_child("query", "jabber:iq:roster"))
        .flat_map(|q| q.elements())
        .filter(|i| i.attr("jid") == Some(contact))
        .map(|i| {
            (
                i.attr("subscription").unwrap_or_default().to_string(),
                i.attr("ask").map(str::to_string),
            )
        })
        .collect()
}

#[test]
fn removal_cancels_every_subscription_of_the_account_with_local_contacts() {
    let mut net = verona();
    let juliet = interested(&mut net, "juliet@verona.lit/balcony");
    let romeo = interested(&mut net, "romeo@verona.lit/orchard");
    let got = net.take_inbox(juliet);
    assert!(
        presences(&got).contains(&("available".into(), "romeo@verona.lit/orchard".into())),
        "Juliet sees Romeo online: {got:?}"
    );

    remove(&mut net, romeo);

    // Juliet, online: Romeo's session goes unavailable, then his unsubscribe and
    // unsubscribed reach her, each with the roster push of its change.
    let got = net.take_inbox(juliet);
    let p = presences(&got);
    for want in [
        ("unavailable", "romeo@verona.lit/orchard"),
        ("unsubscribed", ROMEO),
        ("unsubscribe", ROMEO),
    ] {
        assert!(
            p.contains(&(want.0.into(), want.1.into())),
            "{want:?} in {p:?}"
        );
    }
    let pushes = pushes_about(&got, ROMEO);
    assert_eq!(
        pushes.last(),
        Some(&("none".to_string(), None)),
        "pushes: {pushes:?}"
    );
    assert_eq!(
        net.roster(juliet),
        vec![(ROMEO.to_string(), "none".to_string())]
    );

    // Offline contacts: their stored rosters follow.
    let romeo_jid = jid(ROMEO);
    let nurse = stored_roster(&mut net, "nurse@verona.lit");
    assert_eq!(
        nurse.get(&romeo_jid).map(|i| (i.subscription, i.ask)),
        Some((Subscription::None, false)),
        "the Nurse no longer sees Romeo"
    );
    let tybalt = stored_roster(&mut net, "tybalt@verona.lit");
    assert_eq!(
        tybalt.get(&romeo_jid).map(|i| (i.subscription, i.ask)),
        Some((Subscription::None, false)),
        "Tybalt's request is answered with unsubscribed"
    );
    let benvolio = stored_roster(&mut net, "benvolio@verona.lit");
    assert!(
        benvolio.pending_in.is_empty(),
        "Romeo's request to Benvolio is withdrawn"
    );
    let mercutio = stored_roster(&mut net, "mercutio@verona.lit");
    assert_eq!(
        mercutio.version, 1,
        "nothing to cancel with Mercutio: his roster is not rewritten"
    );
    assert_eq!(keys_of(&net, ROMEO), 0, "nothing of Romeo is left");
}

#[test]
fn a_failed_removal_tells_no_one() {
    let mut net = verona();
    let juliet = interested(&mut net, "juliet@verona.lit/balcony");
    let romeo = interested(&mut net, "romeo@verona.lit/orchard");
    net.take_inbox(juliet);
    net.fail_if = Some(|op| matches!(op, Op::Batch(_)));
    let r = net.iq(
        romeo,
        "<iq type='set' id='rm' xmlns='jabber:client'><query xmlns='jabber:iq:register'>\
         <remove/></query></iq>",
    );
    assert_eq!(
        common::error_condition(&r).as_deref(),
        Some("internal-server-error")
    );
    net.fail_if = None;
    assert!(presences(&net.take_inbox(juliet)).is_empty());
    assert_eq!(
        stored_roster(&mut net, "nurse@verona.lit")
            .get(&jid(ROMEO))
            .map(|i| i.subscription),
        Some(Subscription::To)
    );
    // Romeo's data is all there and still writable.
    let r = net.iq(
        romeo,
        "<iq type='set' id='p' xmlns='jabber:client'><query xmlns='jabber:iq:private'>\
         <n xmlns='x:notes'>still here</n></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
}

const PUBLISH: &str = "<iq type='set' id='ID' xmlns='jabber:client'>\
    <pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:x:diary'>\
    <item id='ID'><entry xmlns='urn:x:diary'>ID</entry></item></publish></pubsub></iq>";

const PRIVATE: &str = "<iq type='set' id='ID' xmlns='jabber:client'>\
    <query xmlns='jabber:iq:private'><n xmlns='x:notes'>ID</n></query></iq>";

const REMOVE: &str = "<iq type='set' id='rm' xmlns='jabber:client'>\
    <query xmlns='jabber:iq:register'><remove/></query></iq>";

/// Writes that were waiting for the node's lock, or that the client sent after
/// `<remove/>` in the same packet, would land after the deletion: none may.
#[test]
fn writes_racing_the_removal_bring_nothing_back() {
    let mut net = Net::new("verona.lit");
    net.add_user(ROMEO, "pw");
    let romeo = net.connect("romeo@verona.lit/orchard", "pw");
    let mut burst = String::new();
    // Three publishes to one node: the second and third wait for its lock and run while
    // the removal is under way.
    for i in 1..=3 {
        burst.push_str(&PUBLISH.replace("ID", &format!("a{i}")));
    }
    burst.push_str(REMOVE);
    // Sent before the session is closed, after the removal started.
    burst.push_str(&PUBLISH.replace("ID", "b1"));
    burst.push_str(&PRIVATE.replace("ID", "b2"));
    net.send_raw(romeo, &burst);
    let inbox = net.take_inbox(romeo);
    let rm = inbox
        .iter()
        .find(|e| e.attr("id") == Some("rm"))
        .expect("the removal is answered");
    assert_eq!(rm.attr("type"), Some("result"), "{rm:?}");
    let left: Vec<&Key> = net
        .store
        .iter()
        .map(|(k, _)| k)
        .filter(|k| k.account == ROMEO)
        .collect();
    assert!(left.is_empty(), "resurrected after the deletion: {left:?}");
    // The name registered again starts empty and can write.
    net.add_user(ROMEO, "again");
    let back = net.connect("romeo@verona.lit/back", "again");
    let r = net.iq(back, &PRIVATE.replace("ID", "c1"));
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let r = net.iq(
        back,
        "<iq type='get' id='g' xmlns='jabber:client'><query xmlns='jabber:iq:private'>\
         <n xmlns='x:notes'/></query></iq>",
    );
    let text = r
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("n", "x:notes"))
        .map(|n| n.text());
    assert_eq!(text.as_deref(), Some("c1"));
    assert_eq!(net.server.footprint().locked_keys, 0);
}
