//! Two servers federating on loopback: dialback with self-signed certificates (test-only
//! `insecure`), and SASL EXTERNAL with certificates signed by a test CA.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use elsinore_jid::{BareJid, Jid};
use elsinore_server::{Server, ServerConfig, accounts};
use elsinore_storage::{MemoryStore, Store};
use elsinore_stream::Instant;
use elsinore_tokio::{Client, ClientOptions, Clock, S2sOptions, Serve, Storage};
use elsinore_xml::Element;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

const ONE: &str = "one.localhost";
const TWO: &str = "two.localhost";

struct Cert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn self_signed(domain: &str) -> Cert {
    let k = rcgen::generate_simple_self_signed(vec![domain.to_string()]).unwrap();
    Cert {
        chain: vec![k.cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(k.signing_key.serialize_der())),
    }
}

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn issue(&self, domain: &str) -> Cert {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec![domain.to_string()])
            .unwrap()
            .signed_by(&key, &self.issuer)
            .unwrap();
        Cert {
            chain: vec![cert.der().clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        }
    }
}

fn tls_config(cert: &Cert) -> Arc<rustls::ServerConfig> {
    Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(cert.chain.clone(), cert.key.clone_key())
        .unwrap(),
    )
}

struct Running {
    c2s: SocketAddr,
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

#[allow(clippy::too_many_arguments)]
async fn start(
    domain: &str,
    user: &str,
    c2s: TcpListener,
    s2s: TcpListener,
    peer: (&str, SocketAddr),
    cert: Cert,
    ca: Vec<CertificateDer<'static>>,
    dialback: bool,
) -> Running {
    let mut store = MemoryStore::new();
    let jid = BareJid::from_str(&format!("{user}@{domain}")).unwrap();
    let op = accounts::create_account_op(&jid, "pw", [3; 32], 4096).unwrap();
    assert!(!store.apply(&op).is_failed());
    let mut config = ServerConfig::new(domain);
    config.scram_iterations = 4096;
    config.s2s.enabled = true;
    config.s2s.dialback = dialback;
    config.s2s.secret = [domain.len() as u8; 32];
    let clock = Clock::new();
    let server = Server::new(config, [5; 32], clock.now());
    let _ = Instant::from_millis(0);
    let options = S2sOptions {
        peers: HashMap::from([(peer.0.to_string(), peer.1)]),
        insecure: ca.is_empty(),
        ca,
        cert_chain: cert.chain.clone(),
        key: cert.key.clone_key(),
    };
    let addr = c2s.local_addr().unwrap();
    let serve = Serve::new(server, clock, Storage::per_op(store))
        .tls(tls_config(&cert))
        .s2s(Some(s2s), options);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve.run(c2s, async move {
        let _ = stopped.await;
    }));
    Running {
        c2s: addr,
        stop,
        task,
    }
}

async fn login(addr: SocketAddr, jid: &str) -> Client {
    let mut opts =
        ClientOptions::new(addr.to_string(), Jid::from_str(jid).unwrap(), "pw").insecure_tls();
    opts.timeout = Duration::from_secs(20);
    Client::connect(opts).await.unwrap()
}

async fn next_message(client: &Client) -> Element {
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            let s = client.recv().await.expect("stream open");
            if s.name == "message" {
                return s;
            }
        }
    })
    .await
    .expect("message in time")
}

/// Romeo (one) and Juliet (two) exchange a message each way.
async fn exchange(
    one: (Cert, Vec<CertificateDer<'static>>),
    two: (Cert, Vec<CertificateDer<'static>>),
    dialback: bool,
) {
    let c2s_one = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let c2s_two = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s2s_one = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s2s_two = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (a1, a2) = (s2s_one.local_addr().unwrap(), s2s_two.local_addr().unwrap());
    let s1 = start(
        ONE,
        "romeo",
        c2s_one,
        s2s_one,
        (TWO, a2),
        one.0,
        one.1,
        dialback,
    )
    .await;
    let s2 = start(
        TWO,
        "juliet",
        c2s_two,
        s2s_two,
        (ONE, a1),
        two.0,
        two.1,
        dialback,
    )
    .await;
    let romeo = login(s1.c2s, "romeo@one.localhost/r").await;
    let juliet = login(s2.c2s, "juliet@two.localhost/j").await;
    let msg = Element::new("message", "jabber:client")
        .with_attr("to", "juliet@two.localhost/j")
        .with_attr("type", "chat")
        .with_child(Element::new("body", "jabber:client").with_text("across"));
    romeo.send(msg).await.unwrap();
    let got = next_message(&juliet).await;
    assert_eq!(got.attr("from"), Some("romeo@one.localhost/r"), "{got:?}");
    assert_eq!(got.attr("type"), Some("chat"), "{got:?}");
    let reply = Element::new("message", "jabber:client")
        .with_attr("to", "romeo@one.localhost/r")
        .with_attr("type", "chat")
        .with_child(Element::new("body", "jabber:client").with_text("back"));
    juliet.send(reply).await.unwrap();
    let got = next_message(&romeo).await;
    assert_eq!(got.attr("from"), Some("juliet@two.localhost/j"), "{got:?}");
    romeo.close().await.unwrap();
    juliet.close().await.unwrap();
    for s in [s1, s2] {
        let _ = s.stop.send(());
        tokio::time::timeout(Duration::from_secs(15), s.task)
            .await
            .expect("stopped in time")
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialback_over_loopback() {
    exchange((self_signed(ONE), vec![]), (self_signed(TWO), vec![]), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sasl_external_with_ca_certificates() {
    let ca = Ca::new();
    // Dialback off: only EXTERNAL can authenticate, so the exchange proves it worked.
    exchange(
        (ca.issue(ONE), vec![ca.der()]),
        (ca.issue(TWO), vec![ca.der()]),
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_domain_bounces() {
    let c2s = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s2s = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let nowhere = closed.local_addr().unwrap();
    drop(closed);
    let s1 = start(
        ONE,
        "romeo",
        c2s,
        s2s,
        (TWO, nowhere),
        self_signed(ONE),
        vec![],
        true,
    )
    .await;
    let romeo = login(s1.c2s, "romeo@one.localhost/r").await;
    for to in ["juliet@two.localhost", "x@unmapped.localhost"] {
        let msg = Element::new("message", "jabber:client")
            .with_attr("to", to)
            .with_attr("id", "m1")
            .with_child(Element::new("body", "jabber:client").with_text("?"));
        romeo.send(msg).await.unwrap();
        let got = next_message(&romeo).await;
        assert_eq!(got.attr("type"), Some("error"), "{got:?}");
        let cond = got
            .get_child("error", "jabber:client")
            .and_then(|e| e.elements().next().map(|c| c.name.clone()));
        assert_eq!(cond.as_deref(), Some("remote-server-not-found"), "{got:?}");
    }
    romeo.close().await.unwrap();
    let _ = s1.stop.send(());
    let _ = s1.task.await;
}
