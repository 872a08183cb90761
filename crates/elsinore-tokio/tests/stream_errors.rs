//! Server-wide stream errors over loopback sockets: `see-other-host` when redirecting,
//! `system-shutdown` to every open stream on graceful shutdown; our client keeps them.
#![allow(clippy::unwrap_used)]

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{DOMAIN, TestServer, tls_config};
use elsinore_jid::Jid;
use elsinore_server::{Server, ServerConfig};
use elsinore_stanza::StreamErrorCondition;
use elsinore_storage::MemoryStore;
use elsinore_stream::Instant;
use elsinore_tokio::{Client, ClientError, ClientOptions};
use elsinore_xml::Element;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Everything the server writes until it closes the socket (bounded in time).
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), stream.read_to_end(&mut got))
        .await
        .expect("server closed in time")
        .unwrap();
    String::from_utf8(got).unwrap()
}

async fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains(needle) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("server answered in time")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirect_answers_with_see_other_host_and_closes() {
    let mut config = ServerConfig::new(DOMAIN);
    config.redirect = Some("[::1]:5322".into());
    let server = Server::new(config, [7; 32], Instant::from_millis(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(elsinore_tokio::serve(
        listener,
        server,
        MemoryStore::new(),
        Some(tls_config()),
        async move {
            let _ = stopped.await;
        },
    ));
    for _ in 0..2 {
        let mut tcp = TcpStream::connect(addr).await.unwrap();
        tcp.write_all(HEADER.as_bytes()).await.unwrap();
        let got = read_to_close(&mut tcp).await;
        assert!(got.contains("<stream:stream"), "{got}");
        assert!(
            got.contains("<see-other-host xmlns='urn:ietf:params:xml:ns:xmpp-streams'>[::1]:5322</see-other-host>"),
            "{got}"
        );
        assert!(!got.contains("features"), "{got}");
        assert!(got.ends_with("</stream:stream>"), "{got}");
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("shutdown in time")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_sends_system_shutdown_to_every_stream() {
    // Established sessions get the same error: crates/elsinore-server/tests/stream_errors.rs.
    let server = TestServer::start(&[]).await;
    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut tcp = TcpStream::connect(server.addr).await.unwrap();
        tcp.write_all(HEADER.as_bytes()).await.unwrap();
        read_until(&mut tcp, "features>").await;
        streams.push(tcp);
    }
    let stopping = tokio::spawn(server.stop());
    for mut tcp in streams {
        let got = read_to_close(&mut tcp).await;
        assert!(got.contains("<system-shutdown"), "{got}");
        assert!(got.ends_with("</stream:stream>"), "{got}");
    }
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("stopped in time")
        .unwrap();
}

/// Our client keeps the server's stream error: the condition and the text, from
/// `stream_error()` once the stream ended and in the error of every later call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_keeps_the_servers_stream_error() {
    let server = TestServer::start(&[("alice", "wonderland")]).await;
    let client = server.login("alice@localhost", "wonderland").await;
    assert!(client.stream_error().is_none());
    let stopping = tokio::spawn(server.stop());
    let next = tokio::time::timeout(Duration::from_secs(15), client.recv())
        .await
        .expect("stream ended in time");
    assert!(next.is_none(), "{next:?}");
    let e = client.stream_error().expect("the server's stream error");
    assert_eq!(e.condition, StreamErrorCondition::SystemShutdown);
    assert_eq!(e.text.as_deref(), Some("the server is shutting down"));
    let ping = Element::new("iq", "jabber:client")
        .with_attr("type", "get")
        .with_child(Element::new("ping", "urn:xmpp:ping"));
    match client.iq(ping).await {
        Err(ClientError::Stream(e)) => {
            assert_eq!(e.condition, StreamErrorCondition::SystemShutdown);
            let shown = ClientError::Stream(e).to_string();
            assert!(shown.contains("system-shutdown"), "{shown}");
            assert!(shown.contains("the server is shutting down"), "{shown}");
        }
        other => panic!("expected the stream error, got {other:?}"),
    }
    tokio::time::timeout(Duration::from_secs(20), stopping)
        .await
        .expect("stopped in time")
        .unwrap();
}

/// A stream error during login is what `Client::connect` returns: here `see-other-host`
/// with the host to try instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_connect_returns_see_other_host() {
    let mut config = ServerConfig::new(DOMAIN);
    config.redirect = Some("[::1]:5322".into());
    let server = Server::new(config, [7; 32], Instant::from_millis(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(elsinore_tokio::serve(
        listener,
        server,
        MemoryStore::new(),
        Some(tls_config()),
        async move {
            let _ = stopped.await;
        },
    ));
    let mut opts = ClientOptions::new(
        addr.to_string(),
        Jid::from_str("alice@localhost").unwrap(),
        "wonderland",
    )
    .insecure_tls();
    opts.timeout = Duration::from_secs(15);
    match Client::connect(opts).await {
        Err(ClientError::Stream(e)) => assert_eq!(
            e.condition,
            StreamErrorCondition::SeeOtherHost("[::1]:5322".into())
        ),
        other => panic!("expected see-other-host, got {other:?}"),
    }
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("shutdown in time")
        .unwrap()
        .unwrap();
}

/// RFC 6120 4.4: after a stream error the server waits for our close before it closes the
/// socket. Until then what we still send is read (and dropped), not answered with a reset:
/// a reset can destroy an error the peer has not read yet when it pipelines its input.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_stream_error_the_server_waits_for_our_close() {
    let server = TestServer::start(&[]).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(HEADER.as_bytes()).await.unwrap();
    read_until(&mut tcp, "features>").await;
    tcp.write_all(b"<message><</message>").await.unwrap();
    let got = read_to_close(&mut tcp).await;
    assert!(got.contains("<not-well-formed"), "{got}");
    assert!(got.ends_with("</stream:stream>"), "{got}");
    // Our side of the close handshake, late and in pieces. On a socket the server had
    // already dropped, the first write would draw a reset and a later one fail.
    for piece in ["<presence/>", "</stream:", "stream>"] {
        tcp.write_all(piece.as_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(tcp);
    server.stop().await;
}
