//! The value cache: private-storage gets and PEP node loads answered from memory, only
//! with what the store acknowledged, per account, within bounds.

mod common;

use common::{Net, error_condition};
use elsinore_server::{CacheLimits, ConnId, ServerConfig};
use elsinore_storage::Op;
use elsinore_xml::Element;

fn config() -> ServerConfig {
    let mut cfg = ServerConfig::new("shakespeare.lit");
    cfg.scram_iterations = 4096;
    cfg
}

fn hamlet_with(cfg: ServerConfig) -> (Net, ConnId) {
    let mut net = Net::with_config(cfg);
    net.add_user("hamlet@shakespeare.lit", "to-be");
    net.add_user("macbeth@shakespeare.lit", "thane");
    let id = net.connect("hamlet@shakespeare.lit/denmark", "to-be");
    (net, id)
}

fn set_xml(ns: &str, value: &str, iq_id: &str) -> String {
    format!(
        "<iq type='set' id='{iq_id}' xmlns='jabber:client'><query xmlns='jabber:iq:private'>\
         <v xmlns='{ns}'>{value}</v></query></iq>"
    )
}

fn get_xml(ns: &str, iq_id: &str) -> String {
    format!(
        "<iq type='get' id='{iq_id}' xmlns='jabber:client'><query xmlns='jabber:iq:private'>\
         <v xmlns='{ns}'/></query></iq>"
    )
}

fn set(net: &mut Net, id: ConnId, ns: &str, value: &str, iq_id: &str) -> Element {
    net.iq(id, &set_xml(ns, value, iq_id))
}

/// The text stored for `ns` (empty when nothing is), or the error condition.
fn get(net: &mut Net, id: ConnId, ns: &str, iq_id: &str) -> Result<String, String> {
    let r = net.iq(id, &get_xml(ns, iq_id));
    if r.attr("type") != Some("result") {
        return Err(error_condition(&r).unwrap_or_default());
    }
    Ok(r.get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("v", ns))
        .map(|v| v.text())
        .unwrap_or_default())
}

#[test]
fn get_after_an_acknowledged_set_is_answered_from_memory() {
    let (mut net, id) = hamlet_with(config());
    let r = set(&mut net, id, "urn:test:a", "one", "s1");
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(net.server.footprint().cached_values, 1);
    // With the store down, only memory can answer.
    net.fail_store = true;
    assert_eq!(get(&mut net, id, "urn:test:a", "g1").as_deref(), Ok("one"));
}

#[test]
fn a_failed_set_does_not_change_what_a_get_returns() {
    let (mut net, id) = hamlet_with(config());
    set(&mut net, id, "urn:test:a", "one", "s1");
    net.fail_store = true;
    let r = set(&mut net, id, "urn:test:a", "two", "s2");
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("internal-server-error")
    );
    net.fail_store = false;
    assert_eq!(get(&mut net, id, "urn:test:a", "g1").as_deref(), Ok("one"));
    assert_eq!(get(&mut net, id, "urn:test:a", "g2").as_deref(), Ok("one"));
}

#[test]
fn a_get_behind_a_set_in_flight_waits_for_it() {
    let (mut net, id) = hamlet_with(config());
    set(&mut net, id, "urn:test:a", "one", "s1");
    // Both iqs in one read: the set's write is not done when the get is handled.
    let both = set_xml("urn:test:a", "two", "s2") + &get_xml("urn:test:a", "g2");
    net.server.handle_input(id, both.as_bytes(), net.now);
    let mut effects = Vec::new();
    while let Some(e) = net.server.poll_effect() {
        effects.push(e);
    }
    assert!(
        matches!(
            effects.iter().map(|e| &e.op).collect::<Vec<_>>()[..],
            [Op::Put(..), Op::Get(_)]
        ),
        "the get goes to the store behind the write: {effects:?}"
    );
    assert!(
        net.server.poll_transmit().is_none(),
        "nothing answered before the write completed"
    );
    for e in effects {
        let result = elsinore_storage::Store::apply(&mut net.store, &e.op);
        net.server.handle_effect_done(e.id, result, net.now);
    }
    net.drive();
    let inbox = net.take_inbox(id);
    let ids: Vec<_> = inbox.iter().filter_map(|e| e.attr("id")).collect();
    assert_eq!(ids, ["s2", "g2"], "{inbox:?}");
    let got = inbox[1]
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("v", "urn:test:a"))
        .map(|v| v.text());
    assert_eq!(got.as_deref(), Some("two"));
}

#[test]
fn accounts_do_not_see_each_other() {
    let (mut net, hamlet) = hamlet_with(config());
    let macbeth = net.connect("macbeth@shakespeare.lit/castle", "thane");
    set(&mut net, hamlet, "urn:test:a", "hamlet's", "s1");
    assert_eq!(
        get(&mut net, macbeth, "urn:test:a", "g1").as_deref(),
        Ok("")
    );
    set(&mut net, macbeth, "urn:test:a", "macbeth's", "s2");
    assert_eq!(
        get(&mut net, hamlet, "urn:test:a", "g2").as_deref(),
        Ok("hamlet's")
    );
}

#[test]
fn account_removal_clears_the_cache() {
    let mut cfg = config();
    cfg.allow_registration = true;
    let (mut net, id) = hamlet_with(cfg);
    set(&mut net, id, "urn:test:a", "one", "s1");
    assert_eq!(net.server.footprint().cached_values, 1);
    let r = net.iq(
        id,
        "<iq type='set' id='rm' xmlns='jabber:client'><query xmlns='jabber:iq:register'>\
         <remove/></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(net.server.footprint().cached_values, 0);
    // A new account of the same name starts empty.
    net.add_user("hamlet@shakespeare.lit", "again");
    let id = net.connect("hamlet@shakespeare.lit/back", "again");
    assert_eq!(get(&mut net, id, "urn:test:a", "g1").as_deref(), Ok(""));
}

#[test]
fn values_go_when_the_last_session_ends() {
    let (mut net, id) = hamlet_with(config());
    set(&mut net, id, "urn:test:a", "one", "s1");
    net.server.handle_eof(id, net.now);
    net.drive();
    assert_eq!(net.server.footprint().cached_values, 0);
}

#[test]
fn bounds_are_respected() {
    let mut cfg = config();
    let limits = CacheLimits {
        max_entries: 4,
        max_bytes: 4096,
        max_value_bytes: 200,
    };
    cfg.value_cache = limits;
    let (mut net, id) = hamlet_with(cfg);
    for i in 0..20 {
        set(
            &mut net,
            id,
            &format!("urn:test:{i}"),
            &"x".repeat(i * 10),
            "s",
        );
        let f = net.server.footprint();
        assert!(f.cached_values <= limits.max_entries, "{f:?}");
        assert!(f.cached_value_bytes <= limits.max_bytes, "{f:?}");
    }
    // Evicted or never cached, every value still comes back (from the store).
    for i in 0..20 {
        let got = get(&mut net, id, &format!("urn:test:{i}"), "g");
        assert_eq!(got, Ok("x".repeat(i * 10)));
    }
}

#[test]
fn pep_node_loads_come_from_memory_after_a_publish() {
    let mut net = Net::new("capulet.lit");
    net.add_user("juliet@capulet.lit", "r0m30");
    let id = net.connect_available("juliet@capulet.lit/balcony", "r0m30");
    let r = net.iq(
        id,
        "<iq type='set' id='p1' xmlns='jabber:client'>\
         <pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:test:node'>\
         <item id='current'><entry xmlns='urn:test:node'>one</entry></item></publish>\
         </pubsub></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    net.take_inbox(id);
    net.fail_store = true;
    let r = net.iq(
        id,
        "<iq type='get' id='i1' xmlns='jabber:client'>\
         <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:test:node'/>\
         </pubsub></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    // A publish still needs its write: with the store down it fails, and the node is
    // read from the store again afterwards.
    let r = net.iq(
        id,
        "<iq type='set' id='p2' xmlns='jabber:client'>\
         <pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:test:node'>\
         <item id='current'><entry xmlns='urn:test:node'>two</entry></item></publish>\
         </pubsub></iq>",
    );
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("internal-server-error")
    );
    net.fail_store = false;
    let r = net.iq(
        id,
        "<iq type='get' id='i2' xmlns='jabber:client'>\
         <pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:test:node'/>\
         </pubsub></iq>",
    );
    let text = r
        .get_child("pubsub", "http://jabber.org/protocol/pubsub")
        .and_then(|p| p.get_child("items", "http://jabber.org/protocol/pubsub"))
        .and_then(|i| i.get_child("item", "http://jabber.org/protocol/pubsub"))
        .and_then(|i| i.get_child("entry", "urn:test:node"))
        .map(|e| e.text());
    assert_eq!(text.as_deref(), Some("one"));
}
