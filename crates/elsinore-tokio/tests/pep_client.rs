//! The PEP owner and annotations client API against our server over loopback: every call,
//! the notifications another resource parses, and the errors another account gets.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{DOMAIN, TestServer, condition};
use elsinore_jid::BareJid;
use elsinore_tokio::pep::{self, Change, Event};
use elsinore_tokio::{AccessModel, Client, ConfigChange, SendLastItem};
use elsinore_xml::Element;

const NODE: &str = "urn:example:diary";

fn entry(text: &str) -> Element {
    Element::new("entry", NODE).with_text(text)
}

fn whitelist(max_items: u32) -> ConfigChange {
    ConfigChange {
        max_items: Some(max_items),
        ..ConfigChange::private()
    }
}

/// The next event notification `client` receives (bounded wait).
async fn next_event(client: &Client) -> Event {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), client.recv())
            .await
            .expect("a notification in time")
            .expect("stream open");
        if let Some(e) = pep::parse_event(&msg) {
            return e;
        }
    }
}

async fn available(client: &Client) {
    client
        .send(Element::new("presence", "jabber:client"))
        .await
        .unwrap();
    // One round trip: the presence is in before anything that should notify.
    client.pep_support().await.unwrap();
}

fn ids(items: &[elsinore_tokio::PepItem]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_calls_and_their_notifications() {
    let server = TestServer::start(&[("hamlet", "s3cret")]).await;
    let account: BareJid = format!("hamlet@{DOMAIN}").parse().unwrap();
    let desk = server
        .login(&format!("hamlet@{DOMAIN}/desk"), "s3cret")
        .await;
    let phone = server
        .login(&format!("hamlet@{DOMAIN}/phone"), "s3cret")
        .await;
    available(&phone).await;

    // XEP-0223 §5.
    let support = desk.pep_support().await.unwrap();
    assert!(support.pep && support.publish_options && support.private_storage());

    // Create with options; the configuration reads back; a second create conflicts.
    desk.pep_create(NODE, Some(&whitelist(3))).await.unwrap();
    assert_eq!(
        condition(desk.pep_create(NODE, None).await),
        "conflict".to_string()
    );
    // The server fills in the one field not asked for: a whitelist node never sends its
    // last item.
    assert_eq!(
        desk.pep_config(NODE).await.unwrap(),
        ConfigChange {
            send_last_item: Some(SendLastItem::Never),
            ..whitelist(3)
        }
    );

    // Publish four items into a node keeping three; the oldest goes.
    for (id, text) in [("a", "one"), ("b", "two"), ("c", "three"), ("d", "four")] {
        let got = desk
            .pep_publish(NODE, Some(id), entry(text), Some(&whitelist(3)))
            .await
            .unwrap();
        assert_eq!(got, id);
        let e = next_event(&phone).await;
        assert_eq!((e.from.as_ref(), e.node.as_str()), (Some(&account), NODE));
        match e.change {
            Change::Items {
                published,
                retracted,
            } => {
                assert!(retracted.is_empty());
                assert_eq!(published.len(), 1);
                assert_eq!(published[0].id, id);
                assert_eq!(published[0].payload, Some(entry(text)));
            }
            other => panic!("expected items, got {other:?}"),
        }
    }
    // A server-chosen id is returned.
    let generated = desk
        .pep_publish(NODE, None, entry("five"), None)
        .await
        .unwrap();
    assert!(!generated.is_empty());
    next_event(&phone).await;

    assert_eq!(
        ids(&desk.pep_items(NODE).await.unwrap()),
        ["c", "d", generated.as_str()]
    );
    let by_id = desk.pep_items_by_id(NODE, &["d", "a", "c"]).await.unwrap();
    assert_eq!(ids(&by_id), ["c", "d"]);
    assert_eq!(by_id[1].payload, Some(entry("four")));
    assert_eq!(
        ids(&desk.pep_items_last(NODE, 2).await.unwrap()),
        ["d", generated.as_str()]
    );

    // A publish whose options the node does not meet is refused.
    assert_eq!(
        condition(
            desk.pep_publish(NODE, Some("x"), entry("x"), Some(&whitelist(5)))
                .await
        ),
        "conflict".to_string()
    );

    // Reconfigure: fewer items kept, the rest dropped at once.
    let change = ConfigChange {
        max_items: Some(1),
        ..ConfigChange::default()
    };
    desk.pep_configure(NODE, &change).await.unwrap();
    let config = desk.pep_config(NODE).await.unwrap();
    assert_eq!(config.max_items, Some(1));
    assert_eq!(config.access_model, Some(AccessModel::Whitelist));
    assert_eq!(
        ids(&desk.pep_items(NODE).await.unwrap()),
        [generated.as_str()]
    );

    // Retract with notify.
    desk.pep_retract(NODE, &generated, true).await.unwrap();
    assert_eq!(
        next_event(&phone).await.change,
        Change::Items {
            published: Vec::new(),
            retracted: vec![generated.clone()],
        }
    );
    assert_eq!(
        condition(desk.pep_retract(NODE, &generated, true).await),
        "item-not-found".to_string()
    );

    // Purge keeps the node, delete removes it; both notify.
    desk.pep_publish(NODE, Some("e"), entry("six"), None)
        .await
        .unwrap();
    next_event(&phone).await;
    desk.pep_purge(NODE).await.unwrap();
    let e = next_event(&phone).await;
    assert_eq!((e.node.as_str(), e.change), (NODE, Change::Purged));
    assert!(desk.pep_items(NODE).await.unwrap().is_empty());
    desk.pep_delete(NODE).await.unwrap();
    let e = next_event(&phone).await;
    assert_eq!(
        (e.node.as_str(), e.change),
        (NODE, Change::Deleted { redirect: None })
    );
    for result in [
        desk.pep_items(NODE).await.map(|_| ()),
        desk.pep_config(NODE).await.map(|_| ()),
        desk.pep_purge(NODE).await,
        desk.pep_delete(NODE).await,
    ] {
        assert_eq!(condition(result), "item-not-found".to_string());
    }

    desk.close().await.unwrap();
    phone.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_is_kept_out_of_a_whitelist_node() {
    let server = TestServer::start(&[("hamlet", "s3cret"), ("claudius", "crown")]).await;
    let hamlet_jid = format!("hamlet@{DOMAIN}");
    let hamlet = server.login(&hamlet_jid, "s3cret").await;
    let claudius = server.login(&format!("claudius@{DOMAIN}"), "crown").await;
    hamlet
        .pep_publish(
            NODE,
            Some("secret"),
            entry("mousetrap"),
            Some(&whitelist(1)),
        )
        .await
        .unwrap();

    // docs/conformance.md: a read by another account is `not-allowed` (+ `closed-node`),
    // any write or owner request is `forbidden`.
    let to_hamlet = |iq: Element| iq.with_attr("to", hamlet_jid.as_str());
    let read = claudius
        .iq(to_hamlet(pep::items_request(NODE, &pep::Select::All)))
        .await;
    assert_eq!(condition(read), "not-allowed".to_string());
    let by_id = claudius
        .iq(to_hamlet(pep::items_request(
            NODE,
            &pep::Select::Ids(&["secret"]),
        )))
        .await;
    assert_eq!(condition(by_id), "not-allowed".to_string());
    for request in [
        pep::configure_get_request(NODE),
        pep::configure_set_request(NODE, &ConfigChange::default()),
        pep::purge_request(NODE),
        pep::delete_request(NODE),
        pep::retract_request(NODE, "secret", false),
        pep::publish_request(NODE, Some("secret"), entry("forged"), None),
    ] {
        let got = claudius.iq(to_hamlet(request)).await;
        assert_eq!(condition(got), "forbidden".to_string());
    }
    // The account itself is discoverable by anyone (XEP-0163), its nodes stay private.
    let hamlet_bare: BareJid = hamlet_jid.parse().unwrap();
    assert!(claudius.pep_support_of(&hamlet_bare).await.unwrap().pep);
    let nobody: BareJid = format!("nobody@{DOMAIN}").parse().unwrap();
    assert_eq!(
        condition(claudius.pep_support_of(&nobody).await),
        "service-unavailable"
    );
    // Claudius's own node of the same name is his, and empty.
    assert_eq!(condition(claudius.pep_items(NODE).await), "item-not-found");

    // Nothing changed.
    let items = hamlet.pep_items(NODE).await.unwrap();
    assert_eq!(ids(&items), ["secret"]);
    assert_eq!(items[0].payload, Some(entry("mousetrap")));

    hamlet.close().await.unwrap();
    claudius.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_add_update_read_remove() {
    let server = TestServer::start(&[("hamlet", "s3cret")]).await;
    let client = server.login(&format!("hamlet@{DOMAIN}"), "s3cret").await;
    let horatio: BareJid = "horatio@elsinore.lit".parse().unwrap();
    let ghost: BareJid = "ghost@elsinore.lit".parse().unwrap();

    assert!(client.annotations_get().await.unwrap().notes().is_empty());
    let notes = client
        .annotations_set_note(&horatio, "a friend <&> 'true'")
        .await
        .unwrap();
    let added = notes.get(&horatio).cloned().unwrap();
    assert_eq!(added.cdate, added.mdate);
    client
        .annotations_set_note(&ghost, "my father's spirit")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    client
        .annotations_set_note(&horatio, "the friend")
        .await
        .unwrap();

    let read = client.annotations_get().await.unwrap();
    assert_eq!(read.notes().len(), 2);
    let updated = read.get(&horatio).unwrap();
    assert_eq!(updated.text, "the friend");
    assert_eq!(updated.cdate, added.cdate);
    assert!(updated.mdate > added.mdate);

    assert!(client.annotations_remove_note(&ghost).await.unwrap());
    assert!(!client.annotations_remove_note(&ghost).await.unwrap());
    let read = client.annotations_get().await.unwrap();
    assert_eq!(read.notes().len(), 1);
    assert!(read.get(&ghost).is_none());

    // A bundle that does not parse strictly is reported, never rewritten.
    client
        .private_set(
            Element::new("storage", "storage:rosternotes").with_child(
                Element::new("note", "storage:rosternotes")
                    .with_attr("jid", "a@b.lit")
                    .with_attr("cdate", "yesterday"),
            ),
        )
        .await
        .unwrap();
    assert!(matches!(
        client.annotations_set_note(&ghost, "x").await,
        Err(elsinore_tokio::ClientError::UnexpectedResponse(_))
    ));

    client.close().await.unwrap();
    server.stop().await;
}
