//! XEP-0049 listings replayed against the server core.

mod common;

use common::{Net, error_condition};
use elsinore_xml::Element;

fn hamlet() -> (Net, elsinore_server::ConnId) {
    let mut net = Net::new("shakespeare.lit");
    net.add_user("hamlet@shakespeare.lit", "to-be");
    net.add_user("macbeth@shakespeare.lit", "thane");
    let id = net.connect("hamlet@shakespeare.lit/denmark", "to-be");
    assert_eq!(
        net.jid_of(id).map(|j| j.to_string()).as_deref(),
        Some("hamlet@shakespeare.lit/denmark")
    );
    (net, id)
}

const LISTING_1: &str = r#"<iq type="set" id="1001" xmlns="jabber:client">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs">
      <defaultnick>Hamlet</defaultnick>
    </exodus>
  </query>
</iq>"#;

const LISTING_2: &str = r#"<iq type="get" id="1002" xmlns="jabber:client">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs"/>
  </query>
</iq>"#;

#[test]
fn listing_1_and_2_store_and_retrieve() {
    let (mut net, id) = hamlet();
    let r = net.iq(id, LISTING_1);
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    assert_eq!(r.attr("to"), Some("hamlet@shakespeare.lit/denmark"));
    assert!(r.elements().next().is_none(), "set result is empty");

    let r = net.iq(id, LISTING_2);
    assert_eq!(r.attr("type"), Some("result"), "{r:?}");
    let query = r.get_child("query", "jabber:iq:private").expect("query");
    let exodus = query
        .get_child("exodus", "exodus:prefs")
        .expect("stored data");
    let nick = exodus
        .get_child("defaultnick", "exodus:prefs")
        .expect("nick");
    assert_eq!(nick.text(), "Hamlet");
}

#[test]
fn data_survives_a_new_session() {
    let (mut net, id) = hamlet();
    net.iq(id, LISTING_1);
    let id2 = net.connect("hamlet@shakespeare.lit/elsinore", "to-be");
    let r = net.iq(id2, LISTING_2);
    let q = r.get_child("query", "jabber:iq:private").expect("query");
    assert!(q.get_child("exodus", "exodus:prefs").is_some(), "{r:?}");
}

#[test]
fn listing_3_other_users_data_is_forbidden() {
    let (mut net, id) = hamlet();
    let r = net.iq(
        id,
        r#"<iq type="set" to="macbeth@shakespeare.lit" id="1003" xmlns="jabber:client">
  <query xmlns="jabber:iq:private"><exodus xmlns="exodus:prefs"><defaultnick>Macbeth</defaultnick></exodus></query>
</iq>"#,
    );
    assert_eq!(r.attr("type"), Some("error"));
    assert_eq!(error_condition(&r).as_deref(), Some("forbidden"));
    let err = r.get_child("error", "jabber:client").expect("error");
    assert_eq!(err.attr("code"), Some("403"));
    // Nothing was written for macbeth.
    let mac = net.connect("macbeth@shakespeare.lit/inverness", "thane");
    let r = net.iq(mac, LISTING_2);
    let q = r.get_child("query", "jabber:iq:private").expect("query");
    let stored = q.get_child("exodus", "exodus:prefs");
    assert!(
        stored.is_none_or(|e| e.elements().next().is_none()),
        "{r:?}"
    );
}

#[test]
fn listing_4_query_without_child_is_an_error() {
    let (mut net, id) = hamlet();
    for ty in ["set", "get"] {
        let r = net.iq(
            id,
            &format!(r#"<iq type="{ty}" id="1004" xmlns="jabber:client"><query xmlns="jabber:iq:private"/></iq>"#),
        );
        assert_eq!(r.attr("type"), Some("error"), "{r:?}");
        assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
    }
}

#[test]
fn listing_5_reserved_namespace_is_not_acceptable() {
    let (mut net, id) = hamlet();
    let r = net.iq(
        id,
        r#"<iq type="set" id="1005" xmlns="jabber:client"><query xmlns="jabber:iq:private"><vCard xmlns="vcard-temp"><FN>Hamlet</FN></vCard></query></iq>"#,
    );
    assert_eq!(error_condition(&r).as_deref(), Some("not-acceptable"));
}

#[test]
fn store_failure_gives_an_error_and_writes_nothing() {
    let (mut net, id) = hamlet();
    net.fail_store = true;
    let r = net.iq(id, LISTING_1);
    assert_eq!(
        error_condition(&r).as_deref(),
        Some("internal-server-error")
    );
    net.fail_store = false;
    let r = net.iq(id, LISTING_2);
    let q = r.get_child("query", "jabber:iq:private").expect("query");
    assert!(
        q.get_child("exodus", "exodus:prefs")
            .is_none_or(|e| e.elements().next().is_none()),
        "{r:?}"
    );
}

#[test]
fn namespaces_are_kept_apart_and_set_replaces() {
    let (mut net, id) = hamlet();
    net.iq(id, LISTING_1);
    net.iq(
        id,
        r#"<iq type="set" id="a" xmlns="jabber:client"><query xmlns="jabber:iq:private"><storage xmlns="storage:rosternotes"><note jid="ophelia@shakespeare.lit">fair</note></storage></query></iq>"#,
    );
    net.iq(
        id,
        r#"<iq type="set" id="b" xmlns="jabber:client"><query xmlns="jabber:iq:private"><exodus xmlns="exodus:prefs"><defaultnick>Prince</defaultnick></exodus></query></iq>"#,
    );
    let r = net.iq(id, LISTING_2);
    let text = format!("{r:?}");
    assert!(
        text.contains("Prince") && !text.contains("\"Hamlet\""),
        "{text}"
    );
    let r = net.iq(
        id,
        r#"<iq type="get" id="c" xmlns="jabber:client"><query xmlns="jabber:iq:private"><storage xmlns="storage:rosternotes"/></query></iq>"#,
    );
    let q = r.get_child("query", "jabber:iq:private").expect("query");
    let storage = q
        .get_child("storage", "storage:rosternotes")
        .expect("notes");
    assert_eq!(
        storage.elements().next().map(|n| n.text()).as_deref(),
        Some("fair")
    );
}

#[test]
fn messages_route_between_sessions_and_from_is_stamped() {
    let (mut net, hamlet) = hamlet();
    let mac = net.connect("macbeth@shakespeare.lit/inverness", "thane");
    let msg = Element::new("message", "jabber:client")
        .with_attr("to", "macbeth@shakespeare.lit/inverness")
        .with_attr("from", "ophelia@shakespeare.lit/forged")
        .with_attr("type", "chat")
        .with_child(Element::new("body", "jabber:client").with_text("Who's there?"));
    net.send(hamlet, &msg);
    let got = net.take_inbox(mac);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("from"), Some("hamlet@shakespeare.lit/denmark"));
    assert_eq!(
        got[0]
            .get_child("body", "jabber:client")
            .map(|b| b.text())
            .as_deref(),
        Some("Who's there?")
    );
}

#[test]
fn message_to_an_unavailable_user_bounces_service_unavailable() {
    let (mut net, hamlet) = hamlet();
    let msg = Element::new("message", "jabber:client")
        .with_attr("to", "yorick@shakespeare.lit")
        .with_attr("id", "m1")
        .with_child(Element::new("body", "jabber:client").with_text("Alas"));
    net.send(hamlet, &msg);
    let got = net.take_inbox(hamlet);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].attr("type"), Some("error"));
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("service-unavailable")
    );
}

#[test]
fn ping_and_unknown_iq() {
    let (mut net, id) = hamlet();
    let r = net.iq(
        id,
        r#"<iq type="get" id="p" to="shakespeare.lit" xmlns="jabber:client"><ping xmlns="urn:xmpp:ping"/></iq>"#,
    );
    assert_eq!(r.attr("type"), Some("result"));
    let r = net.iq(
        id,
        r#"<iq type="get" id="u" xmlns="jabber:client"><query xmlns="urn:example:unknown"/></iq>"#,
    );
    assert_eq!(error_condition(&r).as_deref(), Some("service-unavailable"));
}

#[test]
fn wrong_password_and_resource_conflict() {
    let (mut net, first) = hamlet();
    let bad = net.connect("hamlet@shakespeare.lit/other", "not-to-be");
    let err = net.closed_error(bad).expect("closed").expect("error");
    assert!(err.contains("not-authorized"), "{err}");
    // Same resource again: the new session wins, the old gets `conflict`.
    let second = net.connect("hamlet@shakespeare.lit/denmark", "to-be");
    assert!(net.jid_of(second).is_some());
    let err = net.closed_error(first).expect("old closed").expect("error");
    assert!(err.contains("conflict"), "{err}");
    assert_eq!(net.server.session_count(), 1);
}
