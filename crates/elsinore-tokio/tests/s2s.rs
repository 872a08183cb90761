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
    tweak: fn(&mut ServerConfig),
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
    tweak(&mut config);
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
        |_| {},
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
        |_| {},
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
        |_| {},
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

/// How long the raw peer below waits for any one thing from the server.
const RAW_WAIT: Duration = Duration::from_secs(20);

/// The test's side of one s2s connection, played on a plain socket: it acts as
/// two.localhost's receiving server.
struct RawPeer {
    sock: tokio::net::TcpStream,
    /// Read and not yet consumed.
    buf: Vec<u8>,
}

impl RawPeer {
    /// Accepts the server's next outgoing connection and authenticates it (dialback,
    /// taken on trust: the test is the peer).
    async fn accept(listener: &TcpListener) -> RawPeer {
        let (sock, _) = tokio::time::timeout(RAW_WAIT, listener.accept())
            .await
            .expect("the server connects in time")
            .unwrap();
        let mut peer = RawPeer {
            sock,
            buf: Vec::new(),
        };
        peer.read_until("<stream:stream").await;
        peer.read_until(">").await;
        peer.write(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
             from='two.localhost' to='one.localhost' id='raw-stream' version='1.0'>\
             <stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>",
        )
        .await;
        // `</db:result>` or `</result>`: the opening tag has attributes.
        peer.read_until("result>").await;
        peer.write("<db:result type='valid' from='two.localhost' to='one.localhost'/>")
            .await;
        peer
    }

    async fn write(&mut self, text: &str) {
        use tokio::io::AsyncWriteExt;
        self.sock.write_all(text.as_bytes()).await.unwrap();
    }

    /// Everything up to and including `needle` (which must come within `RAW_WAIT`).
    async fn read_until(&mut self, needle: &str) -> String {
        use tokio::io::AsyncReadExt;
        let found = tokio::time::timeout(RAW_WAIT, async {
            loop {
                if let Some(at) = self
                    .buf
                    .windows(needle.len())
                    .position(|w| w == needle.as_bytes())
                {
                    let rest = self.buf.split_off(at + needle.len());
                    return Some(std::mem::replace(&mut self.buf, rest));
                }
                let mut chunk = [0u8; 4096];
                match self.sock.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no {needle:?} in time; got {:?}", self.text()));
        let found = found.unwrap_or_else(|| panic!("closed before {needle:?}: {:?}", self.text()));
        String::from_utf8(found).unwrap()
    }

    /// Waits (bounded) until the server closes the socket; what came before must be
    /// nothing.
    async fn expect_eof(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 64];
        let n = tokio::time::timeout(RAW_WAIT, self.sock.read(&mut chunk))
            .await
            .expect("the server closes the socket in time")
            .unwrap_or(0);
        assert_eq!(n, 0, "nothing after the close: {:?}", &chunk[..n]);
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.buf).into_owned()
    }
}

/// An outgoing s2s stream over a real socket (the remote server is the test, on a raw
/// socket): once its stanza is out it sends whitespace keepalives, closes with the
/// close handshake when idle, and a later stanza for that domain opens a new stream.
/// Timeouts are short (idle 2 s, keepalive 1 s); every wait is bounded and none asserts
/// how fast anything happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_outgoing_stream_sends_keepalives_then_closes_and_reopens() {
    let c2s = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s2s = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remote = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s1 = start(
        ONE,
        "romeo",
        c2s,
        s2s,
        (TWO, remote.local_addr().unwrap()),
        self_signed(ONE),
        vec![],
        true,
        |c| {
            c.s2s.idle_timeout = Duration::from_secs(2);
            c.s2s.keepalive_interval = Duration::from_secs(1);
            // The client is not pinged meanwhile.
            c.limits.ping_after = Duration::from_secs(3600);
        },
    )
    .await;
    let romeo = login(s1.c2s, "romeo@one.localhost/r").await;
    let message = |body: &str| {
        Element::new("message", "jabber:client")
            .with_attr("to", "juliet@two.localhost")
            .with_attr("type", "chat")
            .with_child(Element::new("body", "jabber:client").with_text(body))
    };
    romeo.send(message("first")).await.unwrap();
    let mut peer = RawPeer::accept(&remote).await;
    let got = peer.read_until("</message>").await;
    assert!(got.contains("first"), "{got}");
    // Then silence from both sides: keepalives, then the close.
    let before_close = peer.read_until("</stream:stream>").await;
    let gap = before_close.trim_end_matches("</stream:stream>");
    assert!(
        gap.contains(' ') && gap.bytes().all(|b| b.is_ascii_whitespace()),
        "only whitespace keepalives before the close: {before_close:?}"
    );
    // Our half of the handshake; then the server closes the socket.
    peer.write("</stream:stream>").await;
    peer.expect_eof().await;
    drop(peer);
    // The domain's stream is gone from the routing table: the next stanza opens a new one.
    romeo.send(message("second")).await.unwrap();
    let mut peer = RawPeer::accept(&remote).await;
    let got = peer.read_until("</message>").await;
    assert!(got.contains("second"), "{got}");
    romeo.close().await.unwrap();
    let _ = s1.stop.send(());
    let _ = tokio::time::timeout(RAW_WAIT, s1.task).await;
}

/// The s2s output limit over real sockets: the remote server (the test, on a raw socket
/// with a small receive buffer) authenticates the stream and then reads nothing. Once
/// the kernel buffers and the core's small output limit are full, a message bounces
/// `resource-constraint` to its sender and the stream ends; the server carries on (new
/// sessions log in and exchange a message) and a later message opens a new stream.
/// Every wait is bounded; nothing asserts how fast anything happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_server_that_stops_reading_brings_resource_constraint_and_the_server_carries_on() {
    let c2s = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s2s = TcpListener::bind("127.0.0.1:0").await.unwrap();
    // Accepted sockets take the listener's receive buffer: a small one fills fast.
    let remote = tokio::net::TcpSocket::new_v4().unwrap();
    remote.set_recv_buffer_size(4096).unwrap();
    remote.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let remote = remote.listen(16).unwrap();
    let s1 = start(
        ONE,
        "romeo",
        c2s,
        s2s,
        (TWO, remote.local_addr().unwrap()),
        self_signed(ONE),
        vec![],
        true,
        |c| {
            c.limits.max_unsent_bytes = 128 * 1024;
            // The sender is not slowed down (filling the kernel buffers takes megabytes).
            c.limits.stanza_rate = None;
            c.limits.byte_rate = None;
            c.limits.ping_after = Duration::from_secs(3600);
        },
    )
    .await;
    let romeo = login(s1.c2s, "romeo@one.localhost/r").await;
    let message = |id: String, body: String| {
        Element::new("message", "jabber:client")
            .with_attr("to", "juliet@two.localhost")
            .with_attr("type", "chat")
            .with_attr("id", id)
            .with_child(Element::new("body", "jabber:client").with_text(body))
    };
    romeo
        .send(message("first".into(), "first".into()))
        .await
        .unwrap();
    let mut peer = RawPeer::accept(&remote).await;
    let got = peer.read_until("</message>").await;
    assert!(got.contains("first"), "{got}");
    // From here on the peer reads nothing. 16 KiB messages in batches until one bounces;
    // bounded at 1000 (16 MB, far past any loopback buffer).
    let mut bounce = None;
    'send: for batch in 0..125 {
        for n in 0..8 {
            let id = format!("m{}", batch * 8 + n);
            romeo
                .send(message(id, "x".repeat(16 * 1024)))
                .await
                .unwrap();
        }
        if let Ok(got) = tokio::time::timeout(Duration::from_millis(200), romeo.recv()).await {
            bounce = got;
            break 'send;
        }
    }
    let bounce = bounce.expect("a message past the output limit bounces");
    assert_eq!(bounce.name, "message", "{bounce:?}");
    assert_eq!(bounce.attr("type"), Some("error"), "{bounce:?}");
    assert_eq!(
        bounce.attr("from"),
        Some("juliet@two.localhost"),
        "{bounce:?}"
    );
    let cond = bounce
        .get_child("error", "jabber:client")
        .and_then(|e| e.elements().next().map(|c| c.name.clone()));
    assert_eq!(cond.as_deref(), Some("resource-constraint"), "{bounce:?}");
    let text = bounce
        .get_child("error", "jabber:client")
        .and_then(|e| e.get_child("text", "urn:ietf:params:xml:ns:xmpp-stanzas"))
        .map(Element::text);
    assert!(
        text.as_deref().is_some_and(|t| t.contains("not reading")),
        "the output limit, not a full queue: {bounce:?}"
    );

    // The server carries on: new sessions log in and exchange a message.
    let a = login(s1.c2s, "romeo@one.localhost/a").await;
    let b = login(s1.c2s, "romeo@one.localhost/b").await;
    let hello = Element::new("message", "jabber:client")
        .with_attr("to", "romeo@one.localhost/b")
        .with_attr("type", "chat")
        .with_child(Element::new("body", "jabber:client").with_text("still here"));
    a.send(hello).await.unwrap();
    let got = next_message(&b).await;
    assert_eq!(got.attr("from"), Some("romeo@one.localhost/a"), "{got:?}");

    // The stream that was not read is over; a later message opens a new one (the
    // messages sent after the bounce wait in its queue and come first).
    drop(peer);
    romeo
        .send(message("later".into(), "later".into()))
        .await
        .unwrap();
    let mut peer = RawPeer::accept(&remote).await;
    peer.read_until("id='later'").await;
    for c in [romeo, a, b] {
        c.close().await.unwrap();
    }
    drop(peer);
    let _ = s1.stop.send(());
    let _ = tokio::time::timeout(RAW_WAIT, s1.task).await;
}
