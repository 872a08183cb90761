//! The bookmark client API against our server over loopback: XEP-0402 on one session,
//! XEP-0048 private XML on another, and the event notification parsed by the client core.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{DOMAIN, TestServer};
use elsinore_jid::BareJid;
use elsinore_tokio::Client;
use elsinore_tokio::bookmarks::{self, BookmarkEvent, Bookmarks, Conference};
use elsinore_xml::Element;

fn room(jid: &str, nick: &str) -> Conference {
    Conference {
        jid: jid.parse().unwrap(),
        name: Some(format!("{nick}'s room")),
        autojoin: true,
        nick: Some(nick.into()),
        password: Some("p<&>w".into()),
        extensions: vec![Element::new("pinned", "urn:xmpp:bookmarks-pinning:0")],
    }
}

/// The next bookmark events `client` receives (bounded wait).
async fn next_events(client: &Client, account: &BareJid) -> Vec<BookmarkEvent> {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), client.recv())
            .await
            .expect("a notification in time")
            .expect("stream open");
        let events = bookmarks::parse_event(&msg, account);
        if !events.is_empty() {
            return events;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn xep0402_and_xep0048_clients_see_each_other() {
    let server = TestServer::start(&[("hamlet", "s3cret")]).await;
    let account: BareJid = format!("hamlet@{DOMAIN}").parse().unwrap();
    let modern = server.login(&format!("hamlet@{DOMAIN}"), "s3cret").await;
    let legacy = server.login(&format!("hamlet@{DOMAIN}"), "s3cret").await;
    // Available sessions get event notifications.
    for c in [&modern, &legacy] {
        c.send(Element::new("presence", "jabber:client"))
            .await
            .unwrap();
    }
    // A round trip on each session: both presences are in before the first publish
    // (each session has its own connection task, so one round trip orders only its own).
    assert!(modern.bookmarks_get().await.unwrap().is_empty());
    assert!(
        legacy
            .bookmarks_get_legacy()
            .await
            .unwrap()
            .conferences
            .is_empty()
    );

    let council = room("council@conference.underhill.org", "Puck");
    modern.bookmarks_set(&council).await.unwrap();
    assert_eq!(
        next_events(&legacy, &account).await,
        vec![BookmarkEvent::Set(council.clone())]
    );
    let list = legacy.bookmarks_get_legacy().await.unwrap();
    assert_eq!(list.conferences, vec![council.clone()]);

    // The older client rewrites the list: a URL it keeps, a new room.
    let play = room("theplay@conference.shakespeare.lit", "JC");
    let url = Element::new("url", bookmarks::NS_LEGACY)
        .with_attr("name", "Works")
        .with_attr("url", "http://example.org/");
    let list = Bookmarks {
        conferences: vec![council.clone(), play.clone()],
        legacy_only: vec![url.clone()],
    };
    legacy.bookmarks_set_legacy(&list).await.unwrap();
    assert_eq!(
        modern.bookmarks_get().await.unwrap(),
        vec![council.clone(), play.clone()]
    );

    // Removal through XEP-0402 reaches the XEP-0048 list; the URL stays.
    assert!(modern.bookmarks_remove(&council.jid).await.unwrap());
    assert!(!modern.bookmarks_remove(&council.jid).await.unwrap());
    let list = legacy.bookmarks_get_legacy().await.unwrap();
    assert_eq!(list.conferences, vec![play]);
    assert_eq!(list.legacy_only, vec![url]);

    modern.close().await.unwrap();
    legacy.close().await.unwrap();
    server.stop().await;
}
