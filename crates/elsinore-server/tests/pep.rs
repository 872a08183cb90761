//! XEP-0223 (private data via PEP) and XEP-0145 (annotations) listings replayed against the
//! server core, plus the XEP-0060 subset around them: access control, persistence across
//! reconnects and restarts, per-node serialization, store failures.

mod common;

use common::{Net, error_condition};
use elsinore_server::ConnId;
use elsinore_xml::Element;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const DISCO: &str = "http://jabber.org/protocol/disco#info";

/// Juliet with two available resources, balcony and chamber; Romeo exists.
fn juliet() -> (Net, ConnId, ConnId) {
    let mut net = Net::new("capulet.lit");
    net.add_user("juliet@capulet.lit", "r0m30");
    net.add_user("romeo@capulet.lit", "jul13t");
    let balcony = net.connect_available("juliet@capulet.lit/balcony", "r0m30");
    let chamber = net.connect_available("juliet@capulet.lit/chamber", "r0m30");
    (net, balcony, chamber)
}

fn app_condition(el: &Element) -> Option<String> {
    let err = el.get_child("error", "jabber:client")?;
    err.elements()
        .find(|c| c.ns == ERRORS)
        .map(|c| c.name.clone())
}

const CONFERENCE: &str = r#"<conference xmlns='storage:bookmarks'
          autojoin='true'
          jid='theplay@conference.shakespeare.lit'
          name='The_Play&apos;s_the_Thing'>
          <nick>JC</nick>
          <password>G10b3</password>
        </conference>"#;

/// Listing 1 (= listing 4 with the value typo fixed): store bookmarks with publish options.
fn listing_1() -> String {
    format!(
        r#"<iq from='juliet@capulet.lit/balcony' type='set' id='pdp1' xmlns='jabber:client'>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'>
    <publish node='storage:bookmarks'>
      <item>
        {CONFERENCE}
      </item>
    </publish>
    <publish-options>
      <x xmlns='jabber:x:data' type='submit'>
        <field var='FORM_TYPE' type='hidden'>
          <value>http://jabber.org/protocol/pubsub#publish-options</value>
        </field>
        <field var='pubsub#persist_items'>
          <value>true</value>
        </field>
        <field var='pubsub#access_model'>
          <value>whitelist</value>
        </field>
      </x>
    </publish-options>
  </pubsub>
</iq>"#
    )
}

fn check_conference(conference: &Element) {
    assert_eq!(conference.attr("autojoin"), Some("true"));
    assert_eq!(
        conference.attr("jid"),
        Some("theplay@conference.shakespeare.lit")
    );
    assert_eq!(conference.attr("name"), Some("The_Play's_the_Thing"));
    let nick = conference
        .get_child("nick", "storage:bookmarks")
        .expect("nick");
    assert_eq!(nick.text(), "JC");
    let pw = conference
        .get_child("password", "storage:bookmarks")
        .expect("password");
    assert_eq!(pw.text(), "G10b3");
}

/// The published item id from a publish result.
fn published_id(reply: &Element) -> String {
    reply
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("publish", PUBSUB))
        .and_then(|p| p.get_child("item", PUBSUB))
        .and_then(|i| i.attr("id"))
        .expect("publish result names the item")
        .to_string()
}

fn items(net: &mut Net, id: ConnId, node: &str, extra: &str, iq_id: &str) -> Element {
    net.iq(
        id,
        &format!(
            "<iq type='get' id='{iq_id}' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <items node='{node}'{extra}/></pubsub></iq>"
        ),
    )
}

fn item_ids(reply: &Element) -> Vec<String> {
    reply
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .map(|i| {
            i.elements()
                .filter_map(|e| e.attr("id").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn listings_1_and_2_publish_with_options_notifies_every_resource() {
    let (mut net, balcony, chamber) = juliet();
    let r = net.iq(balcony, &listing_1());
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let id = published_id(&r);
    assert!(!id.is_empty());

    // Listing 2: both resources get the notification from the bare JID.
    for (conn, res) in [(balcony, "balcony"), (chamber, "chamber")] {
        let events = net.take_events(conn);
        assert_eq!(events.len(), 1, "{res}: {events:?}");
        let msg = &events[0];
        assert_eq!(msg.attr("from"), Some("juliet@capulet.lit"));
        let to = format!("juliet@capulet.lit/{res}");
        assert_eq!(msg.attr("to"), Some(to.as_str()));
        assert_eq!(msg.attr("type"), Some("headline"));
        assert!(msg.attr("id").is_some());
        let items = msg
            .get_child("event", EVENT)
            .and_then(|e| e.get_child("items", EVENT))
            .expect("items");
        assert_eq!(items.attr("node"), Some("storage:bookmarks"));
        let item = items.get_child("item", EVENT).expect("item");
        assert_eq!(item.attr("id"), Some(id.as_str()));
        check_conference(
            item.get_child("conference", "storage:bookmarks")
                .expect("payload"),
        );
    }
}

#[test]
fn listing_3_publish_without_options_auto_creates() {
    let (mut net, balcony, chamber) = juliet();
    let r = net.iq(
        balcony,
        &format!(
            r#"<iq from='juliet@capulet.lit/balcony' type='set' id='pdp1' xmlns='jabber:client'>
  <pubsub xmlns='http://jabber.org/protocol/pubsub'>
    <publish node='storage:bookmarks'>
      <item>
        {CONFERENCE}
      </item>
    </publish>
  </pubsub>
</iq>"#
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(net.take_events(chamber).len(), 1);
    // Auto-created persistent, but whitelist rather than XEP-0163's presence default: the
    // node holds bookmarks (room passwords), see docs/conformance.md. Other nodes get
    // presence (tests/pep_access.rs).
    let r = net.iq(
        balcony,
        &format!(
            "<iq type='get' id='c1' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}#owner'>\
             <configure node='storage:bookmarks'/></pubsub></iq>"
        ),
    );
    let form = r
        .get_child("pubsub", &format!("{PUBSUB}#owner"))
        .and_then(|p| p.get_child("configure", &format!("{PUBSUB}#owner")))
        .and_then(|c| c.get_child("x", "jabber:x:data"))
        .expect("form");
    let value = |var: &str| {
        form.elements()
            .find(|f| f.attr("var") == Some(var))
            .and_then(|f| f.get_child("value", "jabber:x:data"))
            .map(Element::text)
    };
    assert_eq!(
        value("FORM_TYPE").as_deref(),
        Some("http://jabber.org/protocol/pubsub#node_config")
    );
    assert_eq!(value("pubsub#access_model").as_deref(), Some("whitelist"));
    assert_eq!(value("pubsub#persist_items").as_deref(), Some("1"));
    assert_eq!(value("pubsub#max_items").as_deref(), Some("1"));
}

#[test]
fn listing_4_as_printed_has_a_malformed_boolean() {
    // The listing's `<value>>true</value>` is a transcription slip: ">true" is not an
    // XEP-0004 boolean, so the request is malformed and nothing is published.
    let (mut net, balcony, chamber) = juliet();
    let printed = listing_1().replace("<value>true</value>", "<value>>true</value>");
    assert!(printed.contains(">>true<"));
    let r = net.iq(balcony, &printed);
    assert_eq!(r.attr("type"), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("bad-request"));
    assert!(net.take_events(chamber).is_empty());
    let r = items(&mut net, balcony, "storage:bookmarks", "", "i1");
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[test]
fn listings_5_and_6_disco_shows_pep_and_publish_options() {
    let (mut net, balcony, _) = juliet();
    for (to, iq_id) in [("capulet.lit", "disco1"), ("juliet@capulet.lit", "disco2")] {
        let r = net.iq(
            balcony,
            &format!(
                "<iq from='juliet@capulet.lit/balcony' to='{to}' id='{iq_id}' type='get' xmlns='jabber:client'>\
                 <query xmlns='{DISCO}'/></iq>"
            ),
        );
        assert_eq!(r.attr("type"), Some("result"), "{r:?}");
        let q = r.get_child("query", DISCO).expect("query");
        let identities: Vec<(String, String)> = q
            .elements()
            .filter(|e| e.name == "identity")
            .map(|e| {
                (
                    e.attr("category").unwrap_or_default().to_string(),
                    e.attr("type").unwrap_or_default().to_string(),
                )
            })
            .collect();
        assert!(
            identities.contains(&("pubsub".into(), "pep".into())),
            "{to}: {identities:?}"
        );
        if to == "capulet.lit" {
            // Listing 6 shows the server's own identity beside the PEP one.
            assert!(
                identities.contains(&("server".into(), "im".into())),
                "{identities:?}"
            );
        }
        let features: Vec<&str> = q
            .elements()
            .filter(|e| e.name == "feature")
            .filter_map(|e| e.attr("var"))
            .collect();
        for f in [
            "http://jabber.org/protocol/pubsub#publish-options",
            "http://jabber.org/protocol/pubsub#auto-create",
            "http://jabber.org/protocol/pubsub#persistent-items",
            "http://jabber.org/protocol/pubsub#retrieve-items",
            "http://jabber.org/protocol/pubsub#retract-items",
            "http://jabber.org/protocol/pubsub#access-whitelist",
            // XEP-0163 §4.2 (tests/pep_caps.rs) and §4.3.4.
            "http://jabber.org/protocol/pubsub#filtered-notifications",
            "http://jabber.org/protocol/pubsub#last-published",
        ] {
            assert!(features.contains(&f), "{to} lacks {f}");
        }
        // Nothing unimplemented is claimed.
        for f in [
            "http://jabber.org/protocol/pubsub#subscribe",
            "http://jabber.org/protocol/pubsub#access-roster",
            "http://jabber.org/protocol/pubsub#auto-subscribe",
        ] {
            assert!(!features.contains(&f), "{to} claims {f}");
        }
    }
}

#[test]
fn disco_info_on_an_account_answers_any_sender_without_node_names() {
    let (mut net, balcony, _) = juliet();
    let r = net.iq(balcony, &listing_1());
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let romeo = net.connect_available("romeo@capulet.lit/orchard", "jul13t");
    let r = net.iq(
        romeo,
        &format!(
            "<iq to='juliet@capulet.lit' id='d1' type='get' xmlns='jabber:client'>\
             <query xmlns='{DISCO}'/></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(r.attr("from"), Some("juliet@capulet.lit"));
    let q = r.get_child("query", DISCO).expect("query");
    let identities: Vec<(&str, &str)> = q
        .elements()
        .filter(|e| e.name == "identity")
        .map(|e| {
            (
                e.attr("category").unwrap_or_default(),
                e.attr("type").unwrap_or_default(),
            )
        })
        .collect();
    assert!(
        identities.contains(&("account", "registered")),
        "{identities:?}"
    );
    assert!(identities.contains(&("pubsub", "pep")), "{identities:?}");
    // Juliet's private node is not named anywhere in the answer.
    let text = String::from_utf8(r.to_bytes()).expect("utf-8");
    assert!(!text.contains("storage:bookmarks"), "{text}");

    // No such account: service-unavailable (RFC 6121 8.5.1), as before.
    let r = net.iq(
        romeo,
        &format!(
            "<iq to='nobody@capulet.lit' id='d2' type='get' xmlns='jabber:client'>\
             <query xmlns='{DISCO}'/></iq>"
        ),
    );
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}

#[test]
fn retrieve_all_by_id_and_max_items_then_retract() {
    let (mut net, balcony, chamber) = juliet();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let r = net.iq(
            balcony,
            &format!(
                "<iq type='set' id='p{i}' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
                 <publish node='urn:xmpp:bookmarks:1'><item id='{name}'><conference xmlns='urn:xmpp:bookmarks:1' name='{name}'/></item></publish>\
                 <publish-options><x xmlns='jabber:x:data' type='submit'>\
                 <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>\
                 <field var='pubsub#persist_items'><value>1</value></field>\
                 <field var='pubsub#max_items'><value>max</value></field>\
                 <field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>\
                 </pubsub></iq>"
            ),
        );
        assert_eq!(r.attr("type"), Some("result"), "{r:?}");
        assert_eq!(published_id(&r), *name);
    }
    // Each publish notifies once on its node (the derived XEP-0048 copy notifies on its
    // own node, tests/bookmarks.rs).
    let on_node = |events: Vec<Element>| {
        events
            .iter()
            .filter(|m| {
                m.get_child("event", EVENT)
                    .and_then(|e| e.get_child("items", EVENT))
                    .and_then(|i| i.attr("node"))
                    == Some("urn:xmpp:bookmarks:1")
            })
            .count()
    };
    assert_eq!(on_node(net.take_events(chamber)), 3);
    let all = items(&mut net, chamber, "urn:xmpp:bookmarks:1", "", "g1");
    assert_eq!(item_ids(&all), ["a", "b", "c"]);
    let last2 = items(
        &mut net,
        chamber,
        "urn:xmpp:bookmarks:1",
        " max_items='2'",
        "g2",
    );
    assert_eq!(item_ids(&last2), ["b", "c"]);
    let by_id = net.iq(
        chamber,
        &format!(
            "<iq type='get' id='g3' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <items node='urn:xmpp:bookmarks:1'><item id='b'/><item id='zz'/></items></pubsub></iq>"
        ),
    );
    assert_eq!(item_ids(&by_id), ["b"]);

    // Republish with the same id overwrites (and becomes the newest).
    let r = net.iq(
        balcony,
        &format!(
            "<iq type='set' id='p9' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <publish node='urn:xmpp:bookmarks:1'><item id='a'><conference xmlns='urn:xmpp:bookmarks:1' name='A2'/></item></publish>\
             </pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"));
    let all = items(&mut net, chamber, "urn:xmpp:bookmarks:1", "", "g4");
    assert_eq!(item_ids(&all), ["b", "c", "a"]);

    // Retract with notify.
    net.take_events(chamber);
    let r = net.iq(
        balcony,
        &format!(
            "<iq type='set' id='r1' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <retract node='urn:xmpp:bookmarks:1' notify='true'><item id='b'/></retract></pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let events: Vec<Element> = net
        .take_events(chamber)
        .into_iter()
        .filter(|m| {
            m.get_child("event", EVENT)
                .and_then(|e| e.get_child("items", EVENT))
                .and_then(|i| i.attr("node"))
                == Some("urn:xmpp:bookmarks:1")
        })
        .collect();
    assert_eq!(events.len(), 1);
    let retract = events[0]
        .get_child("event", EVENT)
        .and_then(|e| e.get_child("items", EVENT))
        .and_then(|i| i.get_child("retract", EVENT))
        .expect("retract event");
    assert_eq!(retract.attr("id"), Some("b"));
    let all = items(&mut net, chamber, "urn:xmpp:bookmarks:1", "", "g5");
    assert_eq!(item_ids(&all), ["c", "a"]);
    // Retracting it again: item-not-found.
    let r = net.iq(
        balcony,
        &format!(
            "<iq type='set' id='r2' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <retract node='urn:xmpp:bookmarks:1'><item id='b'/></retract></pubsub></iq>"
        ),
    );
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[test]
fn conflicting_publish_options_fail_with_precondition_not_met() {
    let (mut net, balcony, chamber) = juliet();
    // A presence node (auto-created by a plain publish; not a bookmark node, which would be
    // whitelist from the start).
    let listing = || listing_1().replace("node='storage:bookmarks'", "node='urn:example:prefs'");
    let r = net.iq(
        balcony,
        &format!(
            "<iq type='set' id='p1' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <publish node='urn:example:prefs'><item id='current'><x xmlns='storage:bookmarks'/></item></publish></pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"));
    net.take_events(chamber);
    let r = net.iq(balcony, &listing());
    assert_eq!(r.attr("type"), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("conflict"));
    assert_eq!(app_condition(&r).as_deref(), Some("precondition-not-met"));
    assert!(net.take_events(chamber).is_empty(), "no notification");
    // An unknown option is refused the same way.
    let r = net.iq(
        balcony,
        &listing().replace("pubsub#access_model", "pubsub#secret_sauce"),
    );
    assert_eq!(error_condition(&r).as_deref(), Some("conflict"));
    assert_eq!(app_condition(&r).as_deref(), Some("precondition-not-met"));
}

#[test]
fn other_accounts_cannot_read_or_write_private_nodes() {
    let (mut net, balcony, _) = juliet();
    let r = net.iq(balcony, &listing_1());
    assert_eq!(r.attr("type"), Some("result"));
    let romeo = net.connect_available("romeo@capulet.lit/orchard", "jul13t");
    let r = net.iq(
        romeo,
        &format!(
            "<iq type='get' id='x1' to='juliet@capulet.lit' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <items node='storage:bookmarks'/></pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"));
    assert_eq!(app_condition(&r).as_deref(), Some("closed-node"));
    assert_eq!(r.attr("from"), Some("juliet@capulet.lit"));
    for body in [
        format!(
            "<pubsub xmlns='{PUBSUB}'><publish node='storage:bookmarks'><item id='x'><y xmlns='storage:bookmarks'/></item></publish></pubsub>"
        ),
        format!(
            "<pubsub xmlns='{PUBSUB}'><retract node='storage:bookmarks'><item id='x'/></retract></pubsub>"
        ),
        format!("<pubsub xmlns='{PUBSUB}#owner'><delete node='storage:bookmarks'/></pubsub>"),
        format!("<pubsub xmlns='{PUBSUB}#owner'><purge node='storage:bookmarks'/></pubsub>"),
    ] {
        let r = net.iq(
            romeo,
            &format!(
                "<iq type='set' id='x2' to='juliet@capulet.lit' xmlns='jabber:client'>{body}</iq>"
            ),
        );
        assert_eq!(error_condition(&r).as_deref(), Some("forbidden"), "{body}");
    }
    // A configure get by someone else is forbidden too.
    let r = net.iq(
        romeo,
        &format!(
            "<iq type='get' id='x3' to='juliet@capulet.lit' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}#owner'>\
             <configure node='storage:bookmarks'/></pubsub></iq>"
        ),
    );
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    // Romeo's own service has no such node: his requests never reach Juliet's data.
    let r = items(&mut net, romeo, "storage:bookmarks", "", "x4");
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
    // Juliet still has her item.
    let r = items(&mut net, balcony, "storage:bookmarks", "", "x5");
    assert_eq!(item_ids(&r).len(), 1);
}

#[test]
fn items_survive_reconnect_and_restart() {
    let (mut net, balcony, _) = juliet();
    let r = net.iq(balcony, &listing_1());
    let id = published_id(&r);
    net.restart();
    let again = net.connect_available("juliet@capulet.lit/balcony", "r0m30");
    let r = items(&mut net, again, "storage:bookmarks", "", "after");
    assert_eq!(item_ids(&r), [id]);
    let item = r
        .get_child("pubsub", PUBSUB)
        .and_then(|p| p.get_child("items", PUBSUB))
        .and_then(|i| i.get_child("item", PUBSUB))
        .expect("item");
    check_conference(
        item.get_child("conference", "storage:bookmarks")
            .expect("payload"),
    );
}

#[test]
fn concurrent_publishes_to_one_node_are_serialized() {
    let (mut net, balcony, chamber) = juliet();
    // Create the node keeping many items, then send two publishes in one read: without
    // per-node serialization both would load the same state and one item would be lost.
    let r = net.iq(
        balcony,
        &format!(
            "<iq type='set' id='c' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'><create node='n'/>\
             <configure><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>{PUBSUB}#node_config</value></field>\
             <field var='pubsub#max_items'><value>10</value></field></x></configure></pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let pubs: String = (1..=3)
        .map(|i| {
            format!(
                "<iq type='set' id='q{i}'><pubsub xmlns='{PUBSUB}'><publish node='n'><item id='{i}'><v xmlns='urn:t'/></item></publish></pubsub></iq>"
            )
        })
        .collect();
    net.send_raw(chamber, &pubs);
    let inbox = net.take_inbox(chamber);
    let results = inbox
        .iter()
        .filter(|e| e.name == "iq" && e.attr("type") == Some("result"))
        .count();
    assert_eq!(results, 3, "{inbox:?}");
    let r = items(&mut net, balcony, "n", "", "all");
    assert_eq!(item_ids(&r), ["1", "2", "3"]);
}

#[test]
fn store_failure_is_an_error_and_sends_nothing() {
    let (mut net, balcony, chamber) = juliet();
    net.fail_store = true;
    let r = net.iq(balcony, &listing_1());
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("internal-server-error")
    );
    assert!(net.take_events(chamber).is_empty());
    net.fail_store = false;
    // The lock was released: the next operation works.
    let r = net.iq(balcony, &listing_1());
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
}

#[test]
fn delete_node_notifies_and_forgets() {
    let (mut net, balcony, chamber) = juliet();
    net.iq(balcony, &listing_1());
    net.take_events(chamber);
    let r = net.iq(
        balcony,
        &format!(
            "<iq type='set' id='d' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}#owner'><delete node='storage:bookmarks'/></pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let events = net.take_events(chamber);
    assert_eq!(events.len(), 1);
    assert!(
        events[0]
            .get_child("event", EVENT)
            .and_then(|e| e.get_child("delete", EVENT))
            .is_some()
    );
    let r = items(&mut net, balcony, "storage:bookmarks", "", "g");
    assert_eq!(error_condition(&r).as_deref(), Some("item-not-found"));
}

#[test]
fn unavailable_resources_get_no_notification() {
    let mut net = Net::new("capulet.lit");
    net.add_user("juliet@capulet.lit", "r0m30");
    let balcony = net.connect_available("juliet@capulet.lit/balcony", "r0m30");
    // Bound but never sent presence: not available (XEP-0163).
    let hidden = net.connect("juliet@capulet.lit/hidden", "r0m30");
    net.iq(balcony, &listing_1());
    assert_eq!(net.take_events(balcony).len(), 1);
    assert!(net.take_events(hidden).is_empty());
}

// ---- XEP-0145 annotations over XEP-0049 -------------------------------------------

const EXAMPLE_1: &str = r#"<iq type='set' id='a1' xmlns='jabber:client'>
  <query xmlns='jabber:iq:private'>
    <storage xmlns='storage:rosternotes'>
      <note jid='hamlet@shakespeare.lit'
            mdate='2004-09-24T15:23:21Z'>Seems to be a good writer</note>
      <note jid='juliet@capulet.com'
            mdate='2004-09-28T12:43:12Z'>Oh my sweetest love ...</note>
    </storage>
  </query>
</iq>"#;

const EXAMPLE_2: &str = r#"<iq type='get' id='a2' xmlns='jabber:client'>
  <query xmlns='jabber:iq:private'>
    <storage xmlns='storage:rosternotes'/>
  </query>
</iq>"#;

#[test]
fn xep0145_examples_1_to_3_store_and_retrieve_annotations() {
    let (mut net, balcony, chamber) = juliet();
    let r = net.iq(balcony, EXAMPLE_1);
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let r = net.iq(chamber, EXAMPLE_2);
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(r.attr("id"), Some("a2"));
    let storage = r
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("storage", "storage:rosternotes"))
        .expect("storage");
    let notes: Vec<(&str, &str, String)> = storage
        .elements()
        .map(|n| {
            (
                n.attr("jid").unwrap_or_default(),
                n.attr("mdate").unwrap_or_default(),
                n.text(),
            )
        })
        .collect();
    assert_eq!(
        notes,
        [
            (
                "hamlet@shakespeare.lit",
                "2004-09-24T15:23:21Z",
                "Seems to be a good writer".to_string()
            ),
            (
                "juliet@capulet.com",
                "2004-09-28T12:43:12Z",
                "Oh my sweetest love ...".to_string()
            ),
        ]
    );
}

#[test]
fn xep0145_bundle_is_stored_intact_duplicates_and_escaping_included() {
    // The server does not interpret private XML: a set with two notes for one JID is
    // stored and returned as sent; the client model (elsinore_stanza::annotations)
    // resolves duplicates when reading.
    let (mut net, balcony, _) = juliet();
    let r = net.iq(
        balcony,
        "<iq type='set' id='d1' xmlns='jabber:client'><query xmlns='jabber:iq:private'>\
         <storage xmlns='storage:rosternotes'>\
         <note jid='romeo@montague.lit' cdate='2004-09-24T15:23:21Z'>first &lt;&amp;&gt; &apos;</note>\
         <note jid='romeo@montague.lit' mdate='2004-09-25T15:23:21Z'>second</note>\
         </storage></query></iq>",
    );
    assert_eq!(r.attr("type"), Some("result"));
    let r = net.iq(balcony, EXAMPLE_2);
    let storage = r
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("storage", "storage:rosternotes"))
        .expect("storage");
    let texts: Vec<String> = storage.elements().map(Element::text).collect();
    assert_eq!(texts, ["first <&> '", "second"]);
}
