//! XEP-0368 direct TLS: the handshake first, then a stream that offers SASL at once.
#![allow(clippy::unwrap_used)]

mod common;

use std::str::FromStr;
use std::time::Duration;

use common::{DOMAIN, tls_config};
use elsinore_jid::BareJid;
use elsinore_server::{Server, ServerConfig, accounts};
use elsinore_storage::{MemoryStore, Store};
use elsinore_stream::Instant;
use elsinore_tokio::{Clock, Serve, Storage, insecure_client_config};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn read_until(stream: &mut (impl AsyncReadExt + Unpin), needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !String::from_utf8_lossy(&got).contains(needle) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("server answered in time")
            .unwrap();
        assert!(
            n > 0,
            "server closed early: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_offers_sasl_without_starttls() {
    let mut store = MemoryStore::new();
    let jid = BareJid::from_str(&format!("hamlet@{DOMAIN}")).unwrap();
    let op = accounts::create_account_op(&jid, "s3cret", [1; 32], 4096).unwrap();
    assert!(!store.apply(&op).is_failed());
    let server = Server::new(ServerConfig::new(DOMAIN), [7; 32], Instant::from_millis(0));
    let starttls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let direct = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let direct_addr = direct.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve = Serve::new(server, Clock::new(), Storage::per_op(store))
        .tls(tls_config())
        .direct_tls(direct);
    let task = tokio::spawn(serve.run(starttls, async move {
        let _ = stopped.await;
    }));

    let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
    let tcp = TcpStream::connect(direct_addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .expect("TLS handshake on the direct TLS port");
    tls.write_all(
        format!(
            "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' \
             xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let features = read_until(&mut tls, "features>").await;
    assert!(features.contains("SCRAM-SHA-256"), "{features}");
    assert!(
        !features.contains("starttls"),
        "no STARTTLS inside TLS: {features}"
    );
    // PLAIN over the direct TLS channel authenticates (AGhhbWxldABzM2NyZXQ= is \0hamlet\0s3cret).
    tls.write_all(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGhhbWxldABzM2NyZXQ=</auth>",
    )
    .await
    .unwrap();
    let reply = read_until(&mut tls, "success").await;
    assert!(reply.contains("<success"), "{reply}");
    drop(tls);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("shutdown in time")
        .unwrap()
        .unwrap();
}

/// Over `max_connections`, the direct TLS port answers like the plain one: after the
/// handshake, our header, `resource-constraint`, and the close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_tls_over_the_cap_gets_resource_constraint() {
    let server = Server::new(ServerConfig::new(DOMAIN), [7; 32], Instant::from_millis(0));
    let starttls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let starttls_addr = starttls.local_addr().unwrap();
    let direct = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let direct_addr = direct.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve = Serve::new(server, Clock::new(), Storage::per_op(MemoryStore::new()))
        .tls(tls_config())
        .direct_tls(direct)
        .max_connections(1);
    let task = tokio::spawn(serve.run(starttls, async move {
        let _ = stopped.await;
    }));
    let header = format!(
        "<?xml version='1.0'?><stream:stream to='{DOMAIN}' version='1.0' \
         xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>"
    );
    // The one connection allowed.
    let mut first = TcpStream::connect(starttls_addr).await.unwrap();
    first.write_all(header.as_bytes()).await.unwrap();
    read_until(&mut first, "features>").await;

    let connector = tokio_rustls::TlsConnector::from(insecure_client_config());
    let tcp = TcpStream::connect(direct_addr).await.unwrap();
    let mut tls = connector
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .expect("TLS handshake over the cap");
    let _ = tls.write_all(header.as_bytes()).await;
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut got))
        .await
        .expect("closed in time");
    let got = String::from_utf8_lossy(&got);
    assert!(got.contains("<stream:stream"), "{got}");
    assert!(got.contains("<resource-constraint"), "{got}");
    assert!(got.ends_with("</stream:stream>"), "{got}");

    drop(first);
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("stopped in time")
        .unwrap()
        .unwrap();
}
