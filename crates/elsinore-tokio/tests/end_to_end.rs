//! Our client against our server over loopback: STARTTLS + SCRAM, XEP-0049, messages.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{DOMAIN, TestServer, condition};
use elsinore_tokio::{Client, ClientError};
use elsinore_xml::Element;

const PRIVATE: &str = "jabber:iq:private";

fn exodus(nick: &str) -> Element {
    Element::new("exodus", "exodus:prefs")
        .with_child(Element::new("defaultnick", "exodus:prefs").with_text(nick))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_private_storage_round_trip() {
    let server = TestServer::start(&[("hamlet", "s3cret")]).await;
    let client = server.login(&format!("hamlet@{DOMAIN}"), "s3cret").await;
    assert_eq!(client.jid().bare().to_string(), format!("hamlet@{DOMAIN}"));
    assert!(client.jid().resource().is_some(), "bound to a resource");

    // XEP-0049 listing 1 and 2: store, then read back.
    client.private_set(exodus("Hamlet")).await.unwrap();
    let got = client.private_get("exodus", "exodus:prefs").await.unwrap();
    assert_eq!(got, vec![exodus("Hamlet")]);

    // Replacing works, and another namespace is independent.
    client.private_set(exodus("Prince")).await.unwrap();
    let got = client.private_get("exodus", "exodus:prefs").await.unwrap();
    assert_eq!(got, vec![exodus("Prince")]);
    let other = client
        .private_get("storage", "storage:bookmarks")
        .await
        .unwrap();
    assert!(
        other.iter().all(|e| e.is_empty()),
        "nothing stored there: {other:?}"
    );

    client.close().await.unwrap();
    assert!(matches!(
        client.private_get("exodus", "exodus:prefs").await,
        Err(ClientError::Disconnected)
    ));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_storage_errors() {
    let server = TestServer::start(&[("hamlet", "s3cret"), ("ophelia", "n0nnery")]).await;
    let client = server.login(&format!("hamlet@{DOMAIN}"), "s3cret").await;

    // Listing 3: someone else's private storage.
    let iq = Element::new("iq", "jabber:client")
        .with_attr("type", "set")
        .with_attr("to", format!("ophelia@{DOMAIN}"))
        .with_child(Element::new("query", PRIVATE).with_child(exodus("Hamlet")));
    let cond = condition(client.iq(iq).await);
    assert!(
        cond == "forbidden" || cond == "service-unavailable",
        "listing 3 gave {cond}"
    );

    // Listing 4: a query with no child.
    let iq = Element::new("iq", "jabber:client")
        .with_attr("type", "get")
        .with_child(Element::new("query", PRIVATE));
    let cond = condition(client.iq(iq).await);
    assert!(
        cond == "bad-request" || cond == "not-acceptable",
        "listing 4 gave {cond}"
    );

    // The session still works after errors.
    client.private_set(exodus("Hamlet")).await.unwrap();
    client.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_exchange_a_message() {
    let server = TestServer::start(&[("hamlet", "s3cret"), ("ophelia", "n0nnery")]).await;
    let hamlet = server
        .login(&format!("hamlet@{DOMAIN}/castle"), "s3cret")
        .await;
    let ophelia = server.login(&format!("ophelia@{DOMAIN}"), "n0nnery").await;
    assert_eq!(hamlet.jid().resource(), Some("castle"));

    let message = Element::new("message", "jabber:client")
        .with_attr("to", ophelia.jid().to_string())
        .with_attr("type", "chat")
        .with_child(Element::new("body", "jabber:client").with_text("Get thee to a nunnery"));
    hamlet.send(message).await.unwrap();

    let received = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let stanza = ophelia.recv().await.expect("stream still open");
            if stanza.name == "message" {
                return stanza;
            }
        }
    })
    .await
    .expect("message delivered in time");
    assert_eq!(
        received.attr("from"),
        Some(hamlet.jid().to_string().as_str())
    );
    assert_eq!(
        received
            .get_child("body", "jabber:client")
            .map(Element::text)
            .as_deref(),
        Some("Get thee to a nunnery")
    );

    hamlet.close().await.unwrap();
    ophelia.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_password_and_unknown_user_fail() {
    let server = TestServer::start(&[("hamlet", "s3cret")]).await;
    for (jid, password) in [("hamlet", "wrong"), ("claudius", "s3cret")] {
        let result = Client::connect(server.options(&format!("{jid}@{DOMAIN}"), password)).await;
        match result {
            Err(ClientError::Closed { .. }) => {}
            other => panic!("{jid}/{password}: expected the stream to close, got {other:?}"),
        }
    }
    // The server still serves after failed logins.
    let client = server.login(&format!("hamlet@{DOMAIN}"), "s3cret").await;
    client.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_connected_clients_is_bounded() {
    let server = TestServer::start(&[("hamlet", "s3cret")]).await;
    let client = server.login(&format!("hamlet@{DOMAIN}"), "s3cret").await;
    server.stop().await;
    // The client notices the end of the stream.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        while client.recv().await.is_some() {}
    })
    .await;
    assert!(end.is_ok(), "client saw the stream end");
}

#[tokio::test]
async fn tls_without_configuration_is_refused_before_connecting() {
    use std::str::FromStr;
    // Port 9 (discard) is never contacted: the options are refused first.
    let opts = elsinore_tokio::ClientOptions::new(
        "127.0.0.1:9",
        elsinore_jid::Jid::from_str("hamlet@localhost").unwrap(),
        "s3cret",
    );
    match Client::connect(opts).await {
        Err(ClientError::Tls(why)) => assert!(why.contains("no TLS configuration"), "{why}"),
        other => panic!("expected a TLS configuration error, got {other:?}"),
    }
}
