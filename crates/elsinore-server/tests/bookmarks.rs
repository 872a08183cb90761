//! Bookmarks both ways, against the server core: the examples of XEP-0048 (private XML and
//! PEP) and XEP-0402 replayed, and every path reading what the others wrote.

mod common;

use common::{Net, error_condition};
use elsinore_server::ConnId;
use elsinore_xml::Element;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const PRIVATE: &str = "jabber:iq:private";
const LEGACY: &str = "storage:bookmarks";
const NATIVE: &str = "urn:xmpp:bookmarks:1";
const DISCO: &str = "http://jabber.org/protocol/disco#info";

/// Juliet with two available resources, balcony and chamber.
fn juliet() -> (Net, ConnId, ConnId) {
    let mut net = Net::new("capulet.lit");
    net.add_user("juliet@capulet.lit", "r0m30");
    net.add_user("romeo@capulet.lit", "jul13t");
    let balcony = net.connect_available("juliet@capulet.lit/balcony", "r0m30");
    let chamber = net.connect_available("juliet@capulet.lit/chamber", "r0m30");
    (net, balcony, chamber)
}

/// XEP-0048 example: a conference and a URL.
const STORAGE: &str = "<storage xmlns='storage:bookmarks'>\
    <conference name='The Play&apos;s the Thing' autojoin='true' \
      jid='theplay@conference.shakespeare.lit'>\
      <nick>JC</nick><password>G10b3</password></conference>\
    <url name='Complete Works of Shakespeare' url='http://the-tech.mit.edu/Shakespeare/'/>\
  </storage>";

fn private_set(net: &mut Net, conn: ConnId, storage: &str, id: &str) -> Element {
    net.iq(
        conn,
        &format!(
            "<iq type='set' id='{id}' xmlns='jabber:client'>\
             <query xmlns='jabber:iq:private'>{storage}</query></iq>"
        ),
    )
}

/// The stored `<storage/>` via XEP-0049.
fn private_get(net: &mut Net, conn: ConnId, id: &str) -> Element {
    let r = net.iq(
        conn,
        &format!(
            "<iq type='get' id='{id}' xmlns='jabber:client'>\
             <query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    r.get_child("query", PRIVATE)
        .and_then(|q| q.get_child("storage", LEGACY))
        .expect("storage")
        .clone()
}

/// The items of `node` as (id, payload).
fn pep_items(net: &mut Net, conn: ConnId, node: &str, id: &str) -> Vec<(String, Element)> {
    let r = net.iq(
        conn,
        &format!(
            "<iq type='get' id='{id}' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <items node='{node}'/></pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    r.get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .expect("items")
        .elements()
        .map(|i| {
            let payload = i.elements().next().expect("payload").clone();
            (i.attr("id").unwrap_or_default().to_string(), payload)
        })
        .collect()
}

/// XEP-0048 §3 (PEP): the `<storage/>` of item `current`.
fn legacy_pep(net: &mut Net, conn: ConnId, id: &str) -> Element {
    let items = pep_items(net, conn, LEGACY, id);
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(items[0].0, "current");
    assert!(items[0].1.is("storage", LEGACY));
    items[0].1.clone()
}

const PUBLISH_OPTIONS_0402: &str = "<publish-options><x xmlns='jabber:x:data' type='submit'>\
    <field var='FORM_TYPE' type='hidden'>\
      <value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
    <field var='pubsub#persist_items'><value>true</value></field>\
    <field var='pubsub#max_items'><value>max</value></field>\
    <field var='pubsub#send_last_published_item'><value>never</value></field>\
    <field var='pubsub#access_model'><value>whitelist</value></field>\
  </x></publish-options>";

fn publish_0402(net: &mut Net, conn: ConnId, room: &str, conference: &str, id: &str) -> Element {
    net.iq(
        conn,
        &format!(
            "<iq type='set' id='{id}' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <publish node='urn:xmpp:bookmarks:1'><item id='{room}'>{conference}</item></publish>\
             {PUBLISH_OPTIONS_0402}</pubsub></iq>"
        ),
    )
}

fn retract_0402(net: &mut Net, conn: ConnId, room: &str, id: &str) -> Element {
    net.iq(
        conn,
        &format!(
            "<iq type='set' id='{id}' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <retract node='urn:xmpp:bookmarks:1' notify='true'><item id='{room}'/></retract>\
             </pubsub></iq>"
        ),
    )
}

/// (node, child element) of each event notification in `conn`'s inbox.
fn events(net: &mut Net, conn: ConnId) -> Vec<(String, Element)> {
    net.take_events(conn)
        .iter()
        .filter_map(|m| {
            let items = m.get_child("event", EVENT)?.get_child("items", EVENT)?;
            let child = items.elements().next()?.clone();
            Some((items.attr("node")?.to_string(), child))
        })
        .collect()
}

fn conference_jids(storage: &Element) -> Vec<String> {
    storage
        .elements()
        .filter(|e| e.is("conference", LEGACY))
        .filter_map(|e| e.attr("jid").map(str::to_string))
        .collect()
}

#[test]
fn disco_on_the_account_advertises_both_compat_features() {
    let (mut net, balcony, _) = juliet();
    let r = net.iq(
        balcony,
        &format!(
            "<iq type='get' id='d1' to='juliet@capulet.lit' xmlns='jabber:client'>\
             <query xmlns='{DISCO}'/></iq>"
        ),
    );
    let features: Vec<&str> = r
        .get_child("query", DISCO)
        .expect("query")
        .elements()
        .filter_map(|f| f.attr("var"))
        .collect();
    assert!(
        features.contains(&"urn:xmpp:bookmarks:1#compat"),
        "{features:?}"
    );
    assert!(
        features.contains(&"urn:xmpp:bookmarks:1#compat-pep"),
        "{features:?}"
    );
}

#[test]
fn private_xml_bookmarks_appear_in_both_pep_nodes() {
    let (mut net, balcony, chamber) = juliet();
    // XEP-0048 example 1 (private XML storage).
    let r = private_set(&mut net, balcony, STORAGE, "s1");
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");

    // The private copy is what was stored, URL included.
    let stored = private_get(&mut net, chamber, "g1");
    assert_eq!(
        conference_jids(&stored),
        ["theplay@conference.shakespeare.lit"]
    );
    assert!(stored.get_child("url", LEGACY).is_some());

    // XEP-0048 over PEP: the same list as item `current`.
    let storage = legacy_pep(&mut net, chamber, "g2");
    assert_eq!(
        conference_jids(&storage),
        ["theplay@conference.shakespeare.lit"]
    );
    let url = storage.get_child("url", LEGACY).expect("url kept");
    assert_eq!(
        url.attr("url"),
        Some("http://the-tech.mit.edu/Shakespeare/")
    );

    // XEP-0402: one item per room, the JID as item id; the URL cannot be represented.
    let items = pep_items(&mut net, chamber, NATIVE, "g3");
    assert_eq!(items.len(), 1);
    let (id, conf) = &items[0];
    assert_eq!(id, "theplay@conference.shakespeare.lit");
    assert!(conf.is("conference", NATIVE));
    assert_eq!(conf.attr("name"), Some("The Play's the Thing"));
    assert_eq!(conf.attr("autojoin"), Some("true"));
    assert_eq!(
        conf.get_child("nick", NATIVE).map(Element::text).as_deref(),
        Some("JC")
    );
    assert_eq!(
        conf.get_child("password", NATIVE)
            .map(Element::text)
            .as_deref(),
        Some("G10b3")
    );

    // Both resources are told about both PEP nodes (the private set itself has no event).
    for conn in [balcony, chamber] {
        let ev = events(&mut net, conn);
        let nodes: Vec<&str> = ev.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(nodes.len(), 2, "{ev:?}");
        assert!(
            nodes.contains(&LEGACY) && nodes.contains(&NATIVE),
            "{nodes:?}"
        );
    }

    // The same set again changes nothing and notifies nobody.
    let r = private_set(&mut net, balcony, STORAGE, "s2");
    assert_eq!(r.attr("type"), Some("result"));
    assert!(events(&mut net, chamber).is_empty());
}

#[test]
fn xep0402_examples_add_retrieve_remove_reach_the_xep0048_copies() {
    let (mut net, balcony, chamber) = juliet();
    // The URL bookmark lives only in XEP-0048; it must survive XEP-0402 writes.
    let r = private_set(
        &mut net,
        balcony,
        "<storage xmlns='storage:bookmarks'><url name='Works' url='http://example.org/'/></storage>",
        "s0",
    );
    assert_eq!(r.attr("type"), Some("result"));
    events(&mut net, chamber);

    // XEP-0402 "Adding a bookmark" (with its publish options).
    let r = publish_0402(
        &mut net,
        balcony,
        "theplay@conference.shakespeare.lit",
        "<conference xmlns='urn:xmpp:bookmarks:1' name='The Play&apos;s the Thing' \
           autojoin='true'><nick>JC</nick></conference>",
        "a1",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    // "Council of Oberon", with an extension element.
    let r = publish_0402(
        &mut net,
        balcony,
        "council@conference.underhill.org",
        "<conference xmlns='urn:xmpp:bookmarks:1' name='Council of Oberon' autojoin='true'>\
           <nick>Puck</nick><extensions>\
           <state xmlns='http://myclient.example/bookmark/state' minimized='true'/>\
           </extensions></conference>",
        "a2",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");

    // Notifications: each publish on its node, and the XEP-0048 node follows.
    let ev = events(&mut net, chamber);
    let native: Vec<&Element> = ev
        .iter()
        .filter(|(n, _)| n == NATIVE)
        .map(|(_, e)| e)
        .collect();
    assert_eq!(native.len(), 2, "{ev:?}");
    assert_eq!(
        native[0].attr("id"),
        Some("theplay@conference.shakespeare.lit")
    );
    assert_eq!(ev.iter().filter(|(n, _)| n == LEGACY).count(), 2, "{ev:?}");

    // "Retrieving all bookmarks".
    let items = pep_items(&mut net, chamber, NATIVE, "g1");
    let ids: Vec<&str> = items.iter().map(|(i, _)| i.as_str()).collect();
    assert_eq!(
        ids,
        [
            "theplay@conference.shakespeare.lit",
            "council@conference.underhill.org"
        ]
    );

    // XEP-0048 via private XML and via PEP: both rooms, the URL kept, the extension as a
    // child of the conference.
    for storage in [
        private_get(&mut net, chamber, "g2"),
        legacy_pep(&mut net, chamber, "g3"),
    ] {
        assert_eq!(
            conference_jids(&storage),
            [
                "theplay@conference.shakespeare.lit",
                "council@conference.underhill.org"
            ]
        );
        assert_eq!(
            storage.get_child("url", LEGACY).and_then(|u| u.attr("url")),
            Some("http://example.org/")
        );
        let council = storage
            .elements()
            .find(|e| e.attr("jid") == Some("council@conference.underhill.org"))
            .expect("council");
        assert_eq!(council.attr("name"), Some("Council of Oberon"));
        assert_eq!(council.attr("autojoin"), Some("true"));
        assert_eq!(
            council
                .get_child("nick", LEGACY)
                .map(Element::text)
                .as_deref(),
            Some("Puck")
        );
        assert!(
            council
                .get_child("state", "http://myclient.example/bookmark/state")
                .is_some()
        );
    }

    // "Removing a bookmark": retract with notify.
    let r = retract_0402(
        &mut net,
        balcony,
        "theplay@conference.shakespeare.lit",
        "r1",
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let ev = events(&mut net, chamber);
    let retract = ev
        .iter()
        .find(|(n, e)| n == NATIVE && e.name == "retract")
        .expect("retract event");
    assert_eq!(
        retract.1.attr("id"),
        Some("theplay@conference.shakespeare.lit")
    );
    for storage in [
        private_get(&mut net, chamber, "g4"),
        legacy_pep(&mut net, chamber, "g5"),
    ] {
        assert_eq!(
            conference_jids(&storage),
            ["council@conference.underhill.org"]
        );
        assert!(storage.get_child("url", LEGACY).is_some());
    }
}

#[test]
fn xep0048_pep_publish_updates_private_and_native_item_by_item() {
    let (mut net, balcony, chamber) = juliet();
    let publish = |storage: &str, id: &str| {
        format!(
            "<iq type='set' id='{id}' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <publish node='storage:bookmarks'><item id='current'>{storage}</item></publish>\
             <publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'>\
               <value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
             <field var='pubsub#persist_items'><value>true</value></field>\
             <field var='pubsub#access_model'><value>whitelist</value></field>\
             </x></publish-options></pubsub></iq>"
        )
    };
    let two = "<storage xmlns='storage:bookmarks'>\
        <conference jid='a@rooms.lit' name='A'/><conference jid='b@rooms.lit' name='B'/></storage>";
    let r = net.iq(balcony, &publish(two, "p1"));
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(
        conference_jids(&private_get(&mut net, chamber, "g1")),
        ["a@rooms.lit", "b@rooms.lit"]
    );
    let ids: Vec<String> = pep_items(&mut net, chamber, NATIVE, "g2")
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ids, ["a@rooms.lit", "b@rooms.lit"]);
    events(&mut net, chamber);

    // Replace the list: A unchanged, B renamed, C new, ... then B removed.
    let three = "<storage xmlns='storage:bookmarks'>\
        <conference jid='a@rooms.lit' name='A'/><conference jid='b@rooms.lit' name='B2'/>\
        <conference jid='c@rooms.lit'/></storage>";
    let r = net.iq(balcony, &publish(three, "p2"));
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    // No event for the unchanged A (XEP-0402 §5.3.2), one per changed or new item.
    let ev = events(&mut net, chamber);
    let native: Vec<&str> = ev
        .iter()
        .filter(|(n, _)| n == NATIVE)
        .filter_map(|(_, e)| e.attr("id"))
        .collect();
    assert_eq!(native, ["b@rooms.lit", "c@rooms.lit"], "{ev:?}");

    let one =
        "<storage xmlns='storage:bookmarks'><conference jid='a@rooms.lit' name='A'/></storage>";
    let r = net.iq(balcony, &publish(one, "p3"));
    assert_eq!(r.attr("type"), Some("result"));
    let ev = events(&mut net, chamber);
    let mut retracted: Vec<&str> = ev
        .iter()
        .filter(|(n, e)| n == NATIVE && e.name == "retract")
        .filter_map(|(_, e)| e.attr("id"))
        .collect();
    retracted.sort_unstable();
    assert_eq!(retracted, ["b@rooms.lit", "c@rooms.lit"]);
    let ids: Vec<String> = pep_items(&mut net, chamber, NATIVE, "g3")
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ids, ["a@rooms.lit"]);
    assert_eq!(
        conference_jids(&private_get(&mut net, chamber, "g4")),
        ["a@rooms.lit"]
    );

    // Deleting the XEP-0048 node empties the other copies.
    let r = net.iq(
        balcony,
        &format!(
            "<iq type='set' id='del' xmlns='jabber:client'>\
             <pubsub xmlns='{PUBSUB}#owner'><delete node='storage:bookmarks'/></pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert!(pep_items(&mut net, chamber, NATIVE, "g5").is_empty());
    assert!(conference_jids(&private_get(&mut net, chamber, "g6")).is_empty());
}

#[test]
fn invalid_native_items_are_refused_and_change_nothing() {
    let (mut net, balcony, _) = juliet();
    let r = private_set(&mut net, balcony, STORAGE, "s1");
    assert_eq!(r.attr("type"), Some("result"));
    // Item id that is not a room JID.
    let r = publish_0402(
        &mut net,
        balcony,
        "not a jid@",
        "<conference xmlns='urn:xmpp:bookmarks:1'/>",
        "bad1",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"), "{r:?}");
    // A payload that is not a conference.
    let r = publish_0402(
        &mut net,
        balcony,
        "room@rooms.lit",
        "<storage xmlns='storage:bookmarks'/>",
        "bad2",
    );
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"), "{r:?}");
    let items = pep_items(&mut net, balcony, NATIVE, "g1");
    assert_eq!(items.len(), 1);
    assert_eq!(
        conference_jids(&private_get(&mut net, balcony, "g2")),
        ["theplay@conference.shakespeare.lit"]
    );
}

#[test]
fn a_failed_batch_leaves_every_copy_as_it_was() {
    let (mut net, balcony, chamber) = juliet();
    let r = private_set(&mut net, balcony, STORAGE, "s1");
    assert_eq!(r.attr("type"), Some("result"));
    events(&mut net, chamber);
    net.fail_store = true;
    let r = retract_0402(
        &mut net,
        balcony,
        "theplay@conference.shakespeare.lit",
        "r1",
    );
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("internal-server-error")
    );
    let r = private_set(
        &mut net,
        balcony,
        "<storage xmlns='storage:bookmarks'/>",
        "s2",
    );
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("internal-server-error")
    );
    net.fail_store = false;
    assert!(events(&mut net, chamber).is_empty());
    assert_eq!(pep_items(&mut net, chamber, NATIVE, "g1").len(), 1);
    assert_eq!(
        conference_jids(&legacy_pep(&mut net, chamber, "g2")),
        ["theplay@conference.shakespeare.lit"]
    );
    assert_eq!(
        conference_jids(&private_get(&mut net, chamber, "g3")),
        ["theplay@conference.shakespeare.lit"]
    );
}

#[test]
fn bookmarks_survive_a_restart_on_every_path() {
    let (mut net, balcony, _) = juliet();
    let r = publish_0402(
        &mut net,
        balcony,
        "council@conference.underhill.org",
        "<conference xmlns='urn:xmpp:bookmarks:1' name='Council of Oberon'/>",
        "a1",
    );
    assert_eq!(r.attr("type"), Some("result"));
    net.restart();
    let c = net.connect_available("juliet@capulet.lit/garden", "r0m30");
    assert_eq!(
        conference_jids(&private_get(&mut net, c, "g1")),
        ["council@conference.underhill.org"]
    );
    assert_eq!(
        conference_jids(&legacy_pep(&mut net, c, "g2")),
        ["council@conference.underhill.org"]
    );
}

#[test]
fn another_account_reads_none_of_the_copies() {
    let (mut net, balcony, _) = juliet();
    let r = private_set(&mut net, balcony, STORAGE, "s1");
    assert_eq!(r.attr("type"), Some("result"));
    let romeo = net.connect_available("romeo@capulet.lit/orchard", "jul13t");
    for node in [LEGACY, NATIVE] {
        let r = net.iq(
            romeo,
            &format!(
                "<iq type='get' id='x' to='juliet@capulet.lit' xmlns='jabber:client'>\
                 <pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub></iq>"
            ),
        );
        assert_eq!(
            error_condition(&r).as_deref(),
            Some("not-allowed"),
            "{node}: {r:?}"
        );
    }
    let r = publish_0402(
        &mut net,
        romeo,
        "x@rooms.lit",
        "<conference xmlns='urn:xmpp:bookmarks:1'/>",
        "w",
    );
    // Romeo's own node: Juliet's copies are untouched.
    assert_eq!(r.attr("type"), Some("result"));
    assert_eq!(pep_items(&mut net, balcony, NATIVE, "g1").len(), 1);
}

#[test]
fn bookmark_nodes_are_whitelist_even_without_publish_options() {
    let (mut net, balcony, _) = juliet();
    for (node, payload, max) in [
        // An empty list first: nothing is derived, so each node is auto-created here.
        (LEGACY, "<storage xmlns='storage:bookmarks'/>", "1"),
        (NATIVE, "<conference xmlns='urn:xmpp:bookmarks:1'/>", "256"),
    ] {
        let r = net.iq(
            balcony,
            &format!(
                "<iq type='set' id='p' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
                 <publish node='{node}'><item id='room@rooms.lit'>{payload}</item></publish>\
                 </pubsub></iq>"
            ),
        );
        assert_eq!(r.attr("type"), Some("result"), "{node}: {r:?}");
        let r = net.iq(
            balcony,
            &format!(
                "<iq type='get' id='c' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}#owner'>\
                 <configure node='{node}'/></pubsub></iq>"
            ),
        );
        let form = r
            .get_child("pubsub", &format!("{PUBSUB}#owner"))
            .and_then(|p| p.get_child("configure", &format!("{PUBSUB}#owner")))
            .and_then(|c| c.get_child("x", "jabber:x:data"))
            .expect("form")
            .clone();
        let value = |var: &str| {
            form.elements()
                .find(|f| f.attr("var") == Some(var))
                .and_then(|f| f.get_child("value", "jabber:x:data"))
                .map(Element::text)
        };
        assert_eq!(
            value("pubsub#access_model").as_deref(),
            Some("whitelist"),
            "{node}"
        );
        assert_eq!(value("pubsub#max_items").as_deref(), Some(max), "{node}");
    }
}

#[test]
fn writes_through_different_paths_in_one_read_are_serialized() {
    let (mut net, balcony, chamber) = juliet();
    // Three writes arrive together: a private XML list, then two XEP-0402 publishes. Each
    // must see the one before it (without one lock for all paths the first publish would
    // load the node before the list's derived write and put it back without `a`).
    let publish = |id: &str, room: &str| {
        format!(
            "<iq type='set' id='{id}'><pubsub xmlns='{PUBSUB}'><publish node='urn:xmpp:bookmarks:1'>\
             <item id='{room}'><conference xmlns='urn:xmpp:bookmarks:1'/></item></publish>\
             {PUBLISH_OPTIONS_0402}</pubsub></iq>"
        )
    };
    let raw = format!(
        "<iq type='set' id='w1'><query xmlns='jabber:iq:private'>\
         <storage xmlns='storage:bookmarks'><conference jid='a@rooms.lit'/></storage></query></iq>{}{}",
        publish("w2", "b@rooms.lit"),
        publish("w3", "c@rooms.lit"),
    );
    net.send_raw(chamber, &raw);
    let inbox = net.take_inbox(chamber);
    let results: Vec<&str> = inbox
        .iter()
        .filter(|e| e.name == "iq" && e.attr("type") == Some("result"))
        .filter_map(|e| e.attr("id"))
        .collect();
    assert_eq!(results, ["w1", "w2", "w3"], "{inbox:?}");
    let want = ["a@rooms.lit", "b@rooms.lit", "c@rooms.lit"];
    let ids: Vec<String> = pep_items(&mut net, balcony, NATIVE, "g1")
        .into_iter()
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ids, want);
    assert_eq!(conference_jids(&private_get(&mut net, balcony, "g2")), want);
    assert_eq!(conference_jids(&legacy_pep(&mut net, balcony, "g3")), want);
}
