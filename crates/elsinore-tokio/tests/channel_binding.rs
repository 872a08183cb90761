//! SCRAM-*-PLUS over TLS 1.2 with `tls-server-end-point` (RFC 5929 §4.1), over loopback.
//!
//! A STARTTLS-aware relay sits between our client and our server and terminates TLS on both
//! sides, so the client binds to the relay's certificate: with the server's own certificate
//! (a relay that holds the server's key) the login succeeds and the relay sees which
//! mechanism and binding were used; with another certificate the server refuses the login.
#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{DOMAIN, TestServer};
use elsinore_tokio::Client;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// base64("p=tls-server-end-point,,"): the start of a client-first message that binds
/// with `tls-server-end-point` and no authzid (24 bytes, so it encodes on its own).
const GS2_END_POINT_B64: &str = "cD10bHMtc2VydmVyLWVuZC1wb2ludCws";

/// A self-signed certificate for the test domain and its key.
fn identity() -> (CertificateDer<'static>, PrivatePkcs8KeyDer<'static>) {
    let key = rcgen::generate_simple_self_signed(vec![DOMAIN.to_string()]).unwrap();
    let der = PrivatePkcs8KeyDer::from(key.signing_key.serialize_der());
    (key.cert.der().clone(), der)
}

/// A server configuration that speaks TLS 1.2 only.
fn tls12(
    (cert, key): &(CertificateDer<'static>, PrivatePkcs8KeyDer<'static>),
) -> Arc<rustls::ServerConfig> {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_protocol_versions(&[&rustls::version::TLS12])
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key.clone_key()))
    .unwrap();
    Arc::new(config)
}

/// Relays one client connection to `server`: plaintext until the server's `<proceed/>`,
/// then TLS with the client (presenting `tls`) and TLS with the server. Everything the
/// client sends inside TLS is appended to `seen`.
async fn relay(
    listener: TcpListener,
    server: SocketAddr,
    tls: Arc<rustls::ServerConfig>,
    seen: Arc<Mutex<Vec<u8>>>,
) -> std::io::Result<()> {
    let (mut client, _) = listener.accept().await?;
    let mut upstream = TcpStream::connect(server).await?;
    let mut from_server = Vec::new();
    let (mut buf, mut buf2) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    // The client sends nothing after <starttls/> until it has <proceed/>, so nothing of
    // its TLS handshake is read here.
    while !String::from_utf8_lossy(&from_server).contains("<proceed") {
        tokio::select! {
            n = client.read(&mut buf) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                upstream.write_all(&buf[..n]).await?;
            }
            n = upstream.read(&mut buf2) => {
                let n = n?;
                if n == 0 {
                    return Ok(());
                }
                client.write_all(&buf2[..n]).await?;
                from_server.extend_from_slice(&buf2[..n]);
            }
        }
    }
    let client_side = tokio_rustls::TlsAcceptor::from(tls).accept(client).await?;
    let server_side = tokio_rustls::TlsConnector::from(elsinore_tokio::insecure_client_config())
        .connect(ServerName::try_from(DOMAIN).unwrap(), upstream)
        .await?;
    let (mut client_read, mut client_write) = tokio::io::split(client_side);
    let (mut server_read, mut server_write) = tokio::io::split(server_side);
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            seen.lock().unwrap().extend_from_slice(&buf[..n]);
            server_write.write_all(&buf[..n]).await?;
        }
        server_write.shutdown().await
    };
    let down = async {
        tokio::io::copy(&mut server_read, &mut client_write).await?;
        client_write.shutdown().await
    };
    let (up, down) = tokio::join!(up, down);
    up.and(down)
}

/// A TLS 1.2 server with `server_identity`, and a relay in front of it presenting
/// `relay_identity`.
async fn server_behind_relay(
    server_identity: &(CertificateDer<'static>, PrivatePkcs8KeyDer<'static>),
    relay_identity: &(CertificateDer<'static>, PrivatePkcs8KeyDer<'static>),
) -> (TestServer, SocketAddr, Arc<Mutex<Vec<u8>>>, JoinHandle<()>) {
    let server =
        TestServer::start_with_tls(&[("alice", "wonderland")], tls12(server_identity)).await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let task = tokio::spawn({
        let (tls, seen) = (tls12(relay_identity), Arc::clone(&seen));
        async move {
            let _ = relay(listener, server.addr, tls, seen).await;
        }
    });
    (server, addr, seen, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_plus_binds_to_the_server_certificate_on_tls12() {
    let identity = identity();
    let (server, relay_addr, seen, relay_task) = server_behind_relay(&identity, &identity).await;
    let mut opts = server.options("alice@localhost", "wonderland");
    opts.addr = relay_addr.to_string();
    let client = Client::connect(opts).await.unwrap();
    assert!(client.jid().to_string().starts_with("alice@localhost/"));
    client.close().await.unwrap();
    drop(client);
    tokio::time::timeout(Duration::from_secs(15), relay_task)
        .await
        .expect("relay done in time")
        .unwrap();
    let seen = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(
        seen.contains("mechanism='SCRAM-SHA-256-PLUS'>"),
        "not -PLUS: {seen}"
    );
    assert!(
        seen.contains(&format!("SCRAM-SHA-256-PLUS'>{GS2_END_POINT_B64}")),
        "not tls-server-end-point: {seen}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scram_plus_over_tls12_refuses_another_certificate() {
    // The relay presents its own certificate (the client accepts any): a man in the middle.
    let (server, relay_addr, seen, relay_task) =
        server_behind_relay(&identity(), &identity()).await;
    let mut opts = server.options("alice@localhost", "wonderland");
    opts.addr = relay_addr.to_string();
    let err = Client::connect(opts).await.unwrap_err().to_string();
    assert!(err.contains("not-authorized"), "{err}");
    tokio::time::timeout(Duration::from_secs(15), relay_task)
        .await
        .expect("relay done in time")
        .unwrap();
    let seen = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert!(seen.contains("SCRAM-SHA-256-PLUS"), "{seen}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_login_over_tls12() {
    let server = TestServer::start_with_tls(&[("alice", "wonderland")], tls12(&identity())).await;
    let client = server.login("alice@localhost", "wonderland").await;
    client.close().await.unwrap();
    server.stop().await;
}
