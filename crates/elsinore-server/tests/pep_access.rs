//! PEP access models with real contacts (XEP-0163, XEP-0060 §4.5): subscriptions made
//! through the server's roster, then reads and event notifications per access model.

mod common;

use common::{Net, error_condition};
use elsinore_server::ConnId;
use elsinore_xml::Element;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const TUNE: &str = "http://jabber.org/protocol/tune";

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

struct World {
    net: Net,
    /// Juliet, the node owner.
    juliet: ConnId,
    /// Romeo: subscribed to Juliet's presence (Juliet's roster: `from`), available.
    romeo: ConnId,
    /// A second session of Romeo that never sent presence.
    romeo_quiet: ConnId,
    /// The nurse: Juliet is subscribed to her, not the other way (Juliet's roster: `to`).
    nurse: ConnId,
    /// Tybalt: no relation to Juliet.
    tybalt: ConnId,
}

fn subscribe(net: &mut Net, from: ConnId, from_jid: &str, to: ConnId, to_jid: &str) {
    net.send(
        from,
        &el(&format!(
            "<presence xmlns='jabber:client' to='{to_jid}' type='subscribe'/>"
        )),
    );
    net.send(
        to,
        &el(&format!(
            "<presence xmlns='jabber:client' to='{from_jid}' type='subscribed'/>"
        )),
    );
}

fn world() -> World {
    let mut net = Net::new("capulet.lit");
    for (user, pw) in [
        ("juliet", "r0m30"),
        ("romeo", "jul13t"),
        ("nurse", "n4n"),
        ("tybalt", "pr1nce"),
    ] {
        net.add_user(&format!("{user}@capulet.lit"), pw);
    }
    // The contacts' clients want every node's events (XEP-0163 +notify): what decides here
    // is the access model.
    let nodes = [TUNE, "urn:example:open-tune", "urn:example:diary"];
    let juliet = net.connect_available("juliet@capulet.lit/balcony", "r0m30");
    let romeo = net.connect_notify("romeo@capulet.lit/orchard", "jul13t", &nodes);
    let romeo_quiet = net.connect("romeo@capulet.lit/pocket", "jul13t");
    let nurse = net.connect_notify("nurse@capulet.lit/kitchen", "n4n", &nodes);
    let tybalt = net.connect_notify("tybalt@capulet.lit/street", "pr1nce", &nodes);
    subscribe(
        &mut net,
        romeo,
        "romeo@capulet.lit",
        juliet,
        "juliet@capulet.lit",
    );
    subscribe(
        &mut net,
        juliet,
        "juliet@capulet.lit",
        nurse,
        "nurse@capulet.lit",
    );
    for c in [juliet, romeo, romeo_quiet, nurse, tybalt] {
        net.take_inbox(c);
    }
    World {
        net,
        juliet,
        romeo,
        romeo_quiet,
        nurse,
        tybalt,
    }
}

/// Juliet publishes a tune on `node` with `access_model` (`None`: no options, the default).
fn publish(w: &mut World, node: &str, access_model: Option<&str>, title: &str) {
    let options = access_model.map_or(String::new(), |m| {
        format!(
            "<publish-options><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#publish-options</value></field>\
             <field var='pubsub#access_model'><value>{m}</value></field></x></publish-options>"
        )
    });
    let r = w.net.iq(
        w.juliet,
        &format!(
            "<iq type='set' id='pub' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}'>\
             <publish node='{node}'><item id='t'><tune xmlns='{TUNE}'><title>{title}</title>\
             </tune></item></publish>{options}</pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
}

/// `conn` asks for Juliet's items of `node`.
fn read(w: &mut World, conn: ConnId, node: &str) -> Element {
    w.net.iq(
        conn,
        &format!(
            "<iq type='get' id='rd' to='juliet@capulet.lit' xmlns='jabber:client'>\
             <pubsub xmlns='{PUBSUB}'><items node='{node}'/></pubsub></iq>"
        ),
    )
}

fn read_title(reply: &Element) -> Option<String> {
    reply
        .get_child("pubsub", PUBSUB)?
        .get_child("items", PUBSUB)?
        .get_child("item", PUBSUB)?
        .get_child("tune", TUNE)?
        .get_child("title", TUNE)
        .map(Element::text)
}

fn app_condition(el: &Element) -> Option<String> {
    el.get_child("error", "jabber:client")?
        .elements()
        .find(|c| c.ns == ERRORS)
        .map(|c| c.name.clone())
}

/// Titles of the tune events for `node` in `conn`'s inbox, with the sender.
fn tune_events(w: &mut World, conn: ConnId, node: &str) -> Vec<(String, String)> {
    w.net
        .take_events(conn)
        .iter()
        .filter_map(|m| {
            let items = m.get_child("event", EVENT)?.get_child("items", EVENT)?;
            if items.attr("node") != Some(node) {
                return None;
            }
            let title = items
                .get_child("item", EVENT)?
                .get_child("tune", TUNE)?
                .get_child("title", TUNE)?
                .text();
            Some((m.attr("from")?.to_string(), title))
        })
        .collect()
}

#[test]
fn presence_node_is_read_and_pushed_to_subscribed_contacts_only() {
    let mut w = world();
    let (juliet, romeo, romeo_quiet, nurse, tybalt) =
        (w.juliet, w.romeo, w.romeo_quiet, w.nurse, w.tybalt);
    // No options: the XEP-0163 default access model, presence.
    publish(&mut w, TUNE, None, "Pastime with Good Company");

    // The owner and Romeo's available session get the event, from Juliet's bare JID.
    let from_juliet = vec![(
        "juliet@capulet.lit".to_string(),
        "Pastime with Good Company".to_string(),
    )];
    assert_eq!(tune_events(&mut w, juliet, TUNE), from_juliet);
    assert_eq!(tune_events(&mut w, romeo, TUNE), from_juliet);
    // Not Romeo's session without presence, nor anyone without a subscription from Juliet.
    for c in [romeo_quiet, nurse, tybalt] {
        assert!(tune_events(&mut w, c, TUNE).is_empty(), "{c:?}");
    }

    // Romeo reads the item.
    let r = read(&mut w, romeo, TUNE);
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(read_title(&r).as_deref(), Some("Pastime with Good Company"));
    assert_eq!(r.attr("from"), Some("juliet@capulet.lit"));

    // The nurse (Juliet sees her presence, not the other way) and Tybalt are refused with
    // the documented error.
    for c in [nurse, tybalt] {
        let r = read(&mut w, c, TUNE);
        assert_eq!(
            error_condition(&r).as_deref(),
            Some("not-authorized"),
            "{r:?}"
        );
        assert_eq!(
            app_condition(&r).as_deref(),
            Some("presence-subscription-required")
        );
    }

    // Juliet cancels Romeo's subscription: he loses both reads and events.
    w.net.send(
        juliet,
        &el("<presence xmlns='jabber:client' to='romeo@capulet.lit' type='unsubscribed'/>"),
    );
    w.net.take_inbox(romeo);
    publish(&mut w, TUNE, None, "Greensleeves");
    assert!(tune_events(&mut w, romeo, TUNE).is_empty());
    let r = read(&mut w, romeo, TUNE);
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("not-authorized"),
        "{r:?}"
    );
}

#[test]
fn open_node_is_readable_by_any_account() {
    let mut w = world();
    let (juliet, romeo, romeo_quiet, nurse, tybalt) =
        (w.juliet, w.romeo, w.romeo_quiet, w.nurse, w.tybalt);
    let node = "urn:example:open-tune";
    publish(&mut w, node, Some("open"), "Heart's Ease");
    for c in [romeo, nurse, tybalt] {
        let r = read(&mut w, c, node);
        assert_eq!(r.attr("type"), Some("result"), "{c:?}: {r:?}");
        assert_eq!(read_title(&r).as_deref(), Some("Heart's Ease"));
    }
    // Events go where PEP has an implicit subscription (XEP-0163: the owner and presence
    // subscribers), not to every account that may read.
    assert_eq!(tune_events(&mut w, juliet, node).len(), 1);
    assert_eq!(tune_events(&mut w, romeo, node).len(), 1);
    for c in [romeo_quiet, nurse, tybalt] {
        assert!(tune_events(&mut w, c, node).is_empty(), "{c:?}");
    }
}

#[test]
fn whitelist_node_is_the_owners_alone_even_for_contacts() {
    let mut w = world();
    let (juliet, romeo, romeo_quiet, nurse, tybalt) =
        (w.juliet, w.romeo, w.romeo_quiet, w.nurse, w.tybalt);
    let node = "urn:example:diary";
    publish(&mut w, node, Some("whitelist"), "Wherefore");
    assert_eq!(tune_events(&mut w, juliet, node).len(), 1);
    assert!(tune_events(&mut w, romeo_quiet, node).is_empty());
    for c in [romeo, nurse, tybalt] {
        assert!(tune_events(&mut w, c, node).is_empty(), "{c:?}");
        let r = read(&mut w, c, node);
        assert_eq!(error_condition(&r).as_deref(), Some("not-allowed"), "{r:?}");
        assert_eq!(app_condition(&r).as_deref(), Some("closed-node"));
    }
    let r = read(&mut w, juliet, node);
    assert_eq!(read_title(&r).as_deref(), Some("Wherefore"));

    // Switching the node to presence (configure) opens it to Romeo only.
    let r = w.net.iq(
        juliet,
        &format!(
            "<iq type='set' id='cfg' xmlns='jabber:client'><pubsub xmlns='{PUBSUB}#owner'>\
             <configure node='{node}'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE' type='hidden'><value>{PUBSUB}#node_config</value></field>\
             <field var='pubsub#access_model'><value>presence</value></field></x>\
             </configure></pubsub></iq>"
        ),
    );
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(
        read_title(&read(&mut w, romeo, node)).as_deref(),
        Some("Wherefore")
    );
    let r = read(&mut w, tybalt, node);
    assert_eq!(error_condition(&r).as_deref(), Some("not-authorized"));
}

/// Found by tests/pep_model.rs: with the owner offline her roster is read from the store
/// for each request of another account; when that read failed the requester was judged a
/// stranger, so a subscribed contact was told `presence-subscription-required`.
#[test]
fn a_failed_roster_read_is_an_internal_error_not_a_refusal() {
    let mut w = world();
    let romeo = w.romeo;
    publish(&mut w, TUNE, None, "Pastime with Good Company");
    w.net.server.handle_eof(w.juliet, w.net.now);
    w.net.clients.remove(&w.juliet);
    w.net.drive();
    w.net.fail_if = Some(
        |op| matches!(op, elsinore_storage::Op::Get(k) if k.space == elsinore_storage::Space::Roster),
    );
    let r = read(&mut w, romeo, TUNE);
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("internal-server-error"),
        "{r:?}"
    );
    w.net.fail_if = None;
    let r = read(&mut w, romeo, TUNE);
    assert_eq!(read_title(&r).as_deref(), Some("Pastime with Good Company"));
}
