//! Runtime limits: the connection cap, connections per address, rate backpressure.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use elsinore_server::{Server, ServerConfig};
use elsinore_storage::MemoryStore;
use elsinore_tokio::{Clock, Serve, Storage};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_are_refused() {
    let clock = Clock::new();
    let server = Server::new(ServerConfig::new(common::DOMAIN), [1; 32], clock.now());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(
        Serve::new(server, clock, Storage::per_op(MemoryStore::new()))
            .max_connections(1)
            .run(listener, async move {
                let _ = stopped.await;
            }),
    );

    let header = b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
        xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(header).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), first.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).contains("stream:stream"),
        "the first connection is served"
    );

    // The second connection gets a reason (RFC 6120 4.9.3.17), then the close.
    let mut second = TcpStream::connect(addr).await.unwrap();
    let _ = second.write_all(header).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), second.read_to_end(&mut got))
        .await
        .unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.contains("<resource-constraint"), "{got}");
    assert!(
        got.ends_with("</stream:stream>"),
        "the second connection is closed at once: {got}"
    );

    drop(first);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Starts `serve` with `config` and these accounts; returns the address and the stopper.
async fn start_with(
    config: ServerConfig,
    users: &[(&str, &str)],
    max_backlog: Option<usize>,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    use elsinore_storage::Store;
    let mut store = MemoryStore::new();
    for (user, password) in users {
        let jid = elsinore_jid::BareJid::parse(&format!("{user}@{}", common::DOMAIN)).unwrap();
        let op =
            elsinore_server::accounts::create_account_op(&jid, password, [3; 32], 4096).unwrap();
        assert!(!store.apply(&op).is_failed());
    }
    let clock = Clock::new();
    let server = Server::new(config, [1; 32], clock.now());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut serve = Serve::new(server, clock, Storage::per_op(store)).tls(common::tls_config());
    if let Some(b) = max_backlog {
        serve = serve.max_backlog(b);
    }
    let task = tokio::spawn(serve.run(listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

/// Reads until the peer closes (bounded), returning everything it sent.
async fn read_to_close(s: &mut TcpStream) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => all.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "the server did not close: {}",
                String::from_utf8_lossy(&all)
            ),
        }
    }
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_address_over_the_limit_get_policy_violation() {
    let mut config = ServerConfig::new(common::DOMAIN);
    config.abuse.max_connections_per_ip = 1;
    config.abuse.exempt_loopback = false; // all test traffic is loopback
    let (addr, stop, task) = start_with(config, &[], None).await;
    let header = b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
        xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

    let mut first = TcpStream::connect(addr).await.unwrap();
    first.write_all(header).await.unwrap();
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), first.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).contains("stream:stream"));

    let mut second = TcpStream::connect(addr).await.unwrap();
    let out = read_to_close(&mut second).await;
    assert!(out.contains("<stream:stream"), "header first: {out}");
    assert!(out.contains("policy-violation"), "{out}");

    // The first connection is unaffected, and once it is gone the address may connect.
    first.write_all(b"</stream:stream>").await.unwrap();
    let _ = read_to_close(&mut first).await;
    let mut third = None;
    for _ in 0..50 {
        // The server notices the close asynchronously: retry a bounded number of times.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(header).await.unwrap();
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .unwrap()
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !text.contains("policy-violation") && text.contains("features") {
            third = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        third.is_some(),
        "the address is served again after its connection closed"
    );
    drop(third);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_over_its_stanza_rate_is_slowed_not_dropped() {
    let mut config = ServerConfig::new(common::DOMAIN);
    config.scram_iterations = 4096;
    config.limits.stanza_rate = Some(elsinore_server::Rate {
        per_second: 40,
        burst: 10,
    });
    let (addr, stop, task) =
        start_with(config, &[("hamlet", "pw"), ("ophelia", "pw2")], None).await;
    let options = |jid: &str, pw: &str| {
        let mut o = elsinore_tokio::ClientOptions::new(
            addr.to_string(),
            elsinore_jid::Jid::parse(jid).unwrap(),
            pw,
        )
        .insecure_tls();
        o.timeout = Duration::from_secs(20);
        o
    };
    let hamlet = elsinore_tokio::Client::connect(options("hamlet@localhost/a", "pw"))
        .await
        .unwrap();
    let ophelia = elsinore_tokio::Client::connect(options("ophelia@localhost/b", "pw2"))
        .await
        .unwrap();
    let me = hamlet.jid().to_string();
    const N: usize = 60;
    for i in 0..N {
        let msg = elsinore_xml::Element::new("message", "jabber:client")
            .with_attr("to", me.clone())
            .with_attr("id", format!("m{i}"))
            .with_child(
                elsinore_xml::Element::new("body", "jabber:client").with_text(format!("{i}")),
            );
        hamlet.send(msg).await.unwrap();
    }
    // Meanwhile another session is served normally.
    ophelia
        .private_set(elsinore_xml::Element::new("n", "x:rate").with_text("ok"))
        .await
        .unwrap();
    let mut got = Vec::new();
    while got.len() < N {
        let el = tokio::time::timeout(Duration::from_secs(20), hamlet.recv())
            .await
            .expect("messages keep arriving")
            .expect("the session is not closed");
        if el.name == "message" {
            got.push(el.attr("id").unwrap_or_default().to_string());
        }
    }
    let want: Vec<String> = (0..N).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want, "all delivered, in order");
    let _ = hamlet.close().await;
    let _ = ophelia.close().await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_dropped_and_others_carry_on() {
    let mut config = ServerConfig::new(common::DOMAIN);
    config.scram_iterations = 4096;
    // The sender must not be slowed down for this test.
    config.limits.stanza_rate = None;
    config.limits.byte_rate = None;
    let (addr, stop, task) = start_with(
        config,
        &[("hamlet", "pw"), ("ophelia", "pw2")],
        Some(64 * 1024),
    )
    .await;
    let options = |jid: &str, pw: &str| {
        let mut o = elsinore_tokio::ClientOptions::new(
            addr.to_string(),
            elsinore_jid::Jid::parse(jid).unwrap(),
            pw,
        )
        .insecure_tls();
        o.timeout = Duration::from_secs(5);
        o
    };
    // Hamlet never calls `recv`: his client stops reading once its buffer is full.
    let hamlet = elsinore_tokio::Client::connect(options("hamlet@localhost/deaf", "pw"))
        .await
        .unwrap();
    let ophelia = elsinore_tokio::Client::connect(options("ophelia@localhost/b", "pw2"))
        .await
        .unwrap();
    let to = hamlet.jid().to_string();
    let body = "x".repeat(32 * 1024);
    let ping = |i: usize| {
        elsinore_xml::Element::new("iq", "jabber:client")
            .with_attr("type", "get")
            .with_attr("to", to.clone())
            .with_attr("id", format!("ping{i}"))
            .with_child(elsinore_xml::Element::new("ping", "urn:xmpp:ping"))
    };
    // Before the flood Hamlet's session is there: the iq reaches it (answered by his
    // client, or unanswered), it does not bounce.
    let before = ophelia.iq(ping(999)).await;
    assert!(
        !matches!(before, Err(elsinore_tokio::ClientError::Stanza { .. })),
        "{before:?}"
    );
    let mut dropped = false;
    // Well past socket buffers plus the 64 KiB backlog: 32 KiB messages, in rounds; after
    // each round, an iq to Hamlet's session tells whether it still exists.
    for round in 0..40 {
        for i in 0..20 {
            let msg = elsinore_xml::Element::new("message", "jabber:client")
                .with_attr("to", to.clone())
                .with_attr("id", format!("m{round}-{i}"))
                .with_child(
                    elsinore_xml::Element::new("body", "jabber:client").with_text(body.clone()),
                );
            ophelia.send(msg).await.unwrap();
        }
        // An iq to a session that is gone bounces at once; to a live one that does not
        // read, it times out.
        if let Err(elsinore_tokio::ClientError::Stanza { condition, .. }) =
            ophelia.iq(ping(round)).await
        {
            assert_eq!(condition, "service-unavailable");
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the server dropped the session that does not read");
    // Ophelia is fine.
    ophelia
        .private_set(elsinore_xml::Element::new("n", "x:backlog").with_text("ok"))
        .await
        .unwrap();
    let got = ophelia.private_get("n", "x:backlog").await.unwrap();
    assert_eq!(
        got.first().map(elsinore_xml::Element::text).as_deref(),
        Some("ok")
    );
    drop(hamlet);
    let _ = ophelia.close().await;
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
