//! SASL EXTERNAL for c2s (XEP-0178): the server asks for an optional client certificate
//! on STARTTLS and direct TLS, verifies it against the configured CA, and offers EXTERNAL
//! for the XMPP address in it (id-on-xmppAddr, else rfc822Name) when that account exists.
#![allow(clippy::unwrap_used)]

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use elsinore_jid::BareJid;
use elsinore_server::{Server, ServerConfig, accounts};
use elsinore_storage::{MemoryStore, Store};
use elsinore_stream::Instant;
use elsinore_tokio::{Clock, Serve, Storage};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair, OtherNameValue, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DOMAIN: &str = "localhost";
const ID_ON_XMPP_ADDR: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];
const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
const AUTH_EXTERNAL: &[u8] =
    b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>";

struct Cert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

struct Ca(CertifiedIssuer<'static, KeyPair>);

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca(CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap())
    }

    fn der(&self) -> CertificateDer<'static> {
        self.0.der().clone()
    }

    fn issue(&self, sans: Vec<SanType>) -> Cert {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.subject_alt_names = sans;
        let cert = params.signed_by(&key, &self.0).unwrap();
        Cert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }

    fn xmpp_addr(&self, jid: &str) -> Cert {
        self.issue(vec![SanType::OtherName((
            ID_ON_XMPP_ADDR.to_vec(),
            OtherNameValue::Utf8String(jid.into()),
        ))])
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn server_tls(cert: &Cert) -> Arc<rustls::ServerConfig> {
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(cert.chain.clone(), cert.key.clone_key())
            .unwrap(),
    )
}

/// A client trusting `ca` for the server, presenting `cert` if given.
fn client_tls(ca: &Ca, cert: Option<&Cert>) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some(c) => builder
            .with_client_auth_cert(c.chain.clone(), c.key.clone_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn read_until(stream: &mut (impl AsyncRead + Unpin), needle: &str) -> String {
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

struct Running {
    starttls: std::net::SocketAddr,
    direct: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(15), self.task)
            .await
            .expect("shutdown in time")
            .unwrap()
            .unwrap();
    }
}

/// A server with accounts hamlet and ophelia, asking for client certificates from `ca`.
async fn start(ca: &Ca) -> Running {
    let mut store = MemoryStore::new();
    for user in ["hamlet", "ophelia"] {
        let jid = BareJid::from_str(&format!("{user}@{DOMAIN}")).unwrap();
        let op = accounts::create_account_op(&jid, "s3cret", [1; 32], 4096).unwrap();
        assert!(!store.apply(&op).is_failed());
    }
    let server = Server::new(ServerConfig::new(DOMAIN), [7; 32], Instant::from_millis(0));
    let starttls = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let direct = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addrs = (starttls.local_addr().unwrap(), direct.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serve = Serve::new(server, Clock::new(), Storage::per_op(store))
        .tls(server_tls(
            &ca.issue(vec![SanType::DnsName(DOMAIN.try_into().unwrap())]),
        ))
        .client_ca(vec![ca.der()])
        .direct_tls(direct);
    let task = tokio::spawn(serve.run(starttls, async move {
        let _ = stopped.await;
    }));
    Running {
        starttls: addrs.0,
        direct: addrs.1,
        stop,
        task,
    }
}

/// STARTTLS with `connector`; returns the TLS stream and the features after the restart.
async fn starttls(
    addr: std::net::SocketAddr,
    connector: tokio_rustls::TlsConnector,
) -> std::io::Result<(impl AsyncRead + AsyncWrite + Unpin, String)> {
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(HEADER.as_bytes()).await?;
    let features = read_until(&mut tcp, "features>").await;
    assert!(features.contains("starttls"), "{features}");
    tcp.write_all(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
        .await?;
    read_until(&mut tcp, "proceed").await;
    let mut tls = connector
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await?;
    tls.write_all(HEADER.as_bytes()).await?;
    let features = read_until(&mut tls, "features>").await;
    Ok((tls, features))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_with_a_client_certificate_on_starttls_and_direct_tls() {
    let ca = Ca::new();
    let server = start(&ca).await;

    // id-on-xmppAddr over STARTTLS.
    let hamlet = ca.xmpp_addr("hamlet@localhost");
    let (mut tls, features) = starttls(server.starttls, client_tls(&ca, Some(&hamlet)))
        .await
        .unwrap();
    assert!(features.contains(">EXTERNAL<"), "{features}");
    tls.write_all(AUTH_EXTERNAL).await.unwrap();
    let reply = read_until(&mut tls, "success").await;
    assert!(reply.contains("<success"), "{reply}");
    // The restarted stream offers binding: the session continues as hamlet.
    tls.write_all(HEADER.as_bytes()).await.unwrap();
    let features = read_until(&mut tls, "features>").await;
    assert!(features.contains("xmpp-bind"), "{features}");
    tls.write_all(b"<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>")
        .await
        .unwrap();
    let bound = read_until(&mut tls, "</iq>").await;
    assert!(bound.contains("hamlet@localhost/"), "{bound}");
    drop(tls);

    // rfc822Name over direct TLS.
    let ophelia = ca.issue(vec![SanType::Rfc822Name(
        "ophelia@localhost".try_into().unwrap(),
    )]);
    let tcp = TcpStream::connect(server.direct).await.unwrap();
    let mut tls = client_tls(&ca, Some(&ophelia))
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(HEADER.as_bytes()).await.unwrap();
    let features = read_until(&mut tls, "features>").await;
    assert!(features.contains(">EXTERNAL<"), "{features}");
    tls.write_all(AUTH_EXTERNAL).await.unwrap();
    let reply = read_until(&mut tls, "success").await;
    assert!(reply.contains("<success"), "{reply}");
    drop(tls);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_certificate_or_account_there_is_no_external_login() {
    let ca = Ca::new();
    let server = start(&ca).await;

    // No certificate: TLS works, passwords are offered, EXTERNAL is not.
    let (mut tls, features) = starttls(server.starttls, client_tls(&ca, None))
        .await
        .unwrap();
    assert!(features.contains("SCRAM-SHA-256"), "{features}");
    assert!(!features.contains("EXTERNAL"), "{features}");
    tls.write_all(AUTH_EXTERNAL).await.unwrap();
    let reply = read_until(&mut tls, "failure>").await;
    assert!(reply.contains("invalid-mechanism"), "{reply}");
    drop(tls);

    // A verified certificate for an account that does not exist.
    let nobody = ca.xmpp_addr("yorick@localhost");
    let (mut tls, features) = starttls(server.starttls, client_tls(&ca, Some(&nobody)))
        .await
        .unwrap();
    assert!(features.contains(">EXTERNAL<"), "{features}");
    tls.write_all(AUTH_EXTERNAL).await.unwrap();
    let reply = read_until(&mut tls, "failure>").await;
    assert!(reply.contains("not-authorized"), "{reply}");
    drop(tls);

    // A certificate from a CA the server does not trust: the handshake fails.
    let other = Ca::new();
    let forged = other.xmpp_addr("hamlet@localhost");
    let tcp = TcpStream::connect(server.direct).await.unwrap();
    let handshake = client_tls(&ca, Some(&forged))
        .connect(ServerName::try_from(DOMAIN).unwrap(), tcp)
        .await;
    // TLS 1.3: the client may finish before the server's alert arrives; the stream
    // then fails on first use.
    if let Ok(mut tls) = handshake {
        let _ = tls.write_all(HEADER.as_bytes()).await;
        let mut buf = [0u8; 512];
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf))
            .await
            .expect("server reacted in time");
        assert!(
            !matches!(read, Ok(n) if n > 0),
            "an untrusted certificate must not get a stream"
        );
    }
    server.stop().await;
}
