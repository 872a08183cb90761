//! draft-ietf-xmpp-core-11 §5.1 item 9, through the tokio adapter: a TLS negotiation that
//! fails ends the stream and the TCP connection. The table in `docs/conformance.md`
//! points here.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::TestServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes the connection (`Ok(0)` or a reset); panics after 10 s.
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("the server closed the connection in time")
        {
            Ok(0) | Err(_) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_tls_handshake_closes_the_connection() {
    let server = TestServer::start(&[("hamlet", "s3cret")]).await;
    let mut tcp = TcpStream::connect(server.addr).await.unwrap();
    tcp.write_all(
        b"<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
          xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
    )
    .await
    .unwrap();
    // Wait for the features, then ask for TLS.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let features_done = |b: &[u8]| {
        let s = String::from_utf8_lossy(b);
        s.contains("</stream:features>") || s.contains("</features>")
    };
    while !features_done(&got) {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("features in time")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    tcp.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await
        .unwrap();
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("<proceed") {
        let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
            .await
            .expect("proceed in time")
            .unwrap();
        assert!(n > 0, "closed early: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    // Not a TLS ClientHello: the handshake fails and the server hangs up.
    tcp.write_all(b"this is not TLS at all\r\n\r\n")
        .await
        .unwrap();
    let rest = read_to_close(&mut tcp).await;
    assert!(
        !String::from_utf8_lossy(&rest).contains("<message"),
        "nothing but TLS alerts after <proceed/>"
    );
    server.stop().await;
}
