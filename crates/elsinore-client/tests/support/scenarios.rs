//! The end-to-end scenarios every adapter must pass, written once.
//!
//! Included by each adapter's tests with
//! `#[path = "../../elsinore-client/tests/support/scenarios.rs"] mod scenarios;`; the adapter
//! implements [`Adapter`] (blocking calls; async adapters block on their executor) and calls
//! [`run_all`]. The server is the core `Server` on the std adapter over loopback TCP, with
//! STARTTLS offered (self-signed) and plaintext authentication allowed, so both TLS and
//! plaintext clients can log in.
#![allow(dead_code, clippy::unwrap_used)] // test support: a failed setup should panic loudly

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use elsinore_jid::BareJid;
use elsinore_server::{Server, ServerConfig, accounts};
use elsinore_storage::{MemoryStore, Store};
use elsinore_stream::Instant;
use elsinore_xml::Element;

pub const DOMAIN: &str = "localhost";

/// What a scenario needs from a client adapter. Errors are strings: scenarios only check
/// success and failure.
pub trait Adapter {
    /// One logged-in session.
    type Session;
    /// Connects to `addr` and logs in; `Err` if the stream closed (e.g. bad password).
    fn login(&mut self, addr: &str, jid: &str, password: &str) -> Result<Self::Session, String>;
    /// The bound full JID.
    fn jid(&mut self, s: &Self::Session) -> String;
    /// XEP-0049 set.
    fn private_set(&mut self, s: &mut Self::Session, payload: Element) -> Result<(), String>;
    /// XEP-0049 get.
    fn private_get(
        &mut self,
        s: &mut Self::Session,
        name: &str,
        ns: &str,
    ) -> Result<Vec<Element>, String>;
    /// Sends a stanza.
    fn send(&mut self, s: &mut Self::Session, stanza: Element) -> Result<(), String>;
    /// The next inbound message stanza within `wait`.
    fn recv_message(&mut self, s: &mut Self::Session, wait: Duration) -> Option<Element>;
    /// Closes the session.
    fn close(&mut self, s: Self::Session);
}

/// A self-signed certificate for `DOMAIN`.
pub fn tls_config() -> Arc<rustls::ServerConfig> {
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let key = rcgen::generate_simple_self_signed(vec![DOMAIN.to_string()]).unwrap();
    let cert = key.cert.der().clone();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.signing_key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert], private)
    .unwrap();
    Arc::new(config)
}

/// Starts the core server on the std adapter with hamlet/s3cret and ophelia/n0nnery.
pub fn start_server() -> elsinore_std::ServerHandle {
    let mut store = MemoryStore::new();
    for (i, (user, password)) in [("hamlet", "s3cret"), ("ophelia", "n0nnery")]
        .iter()
        .enumerate()
    {
        let jid = BareJid::from_str(&format!("{user}@{DOMAIN}")).unwrap();
        let op = accounts::create_account_op(&jid, password, [i as u8; 32], 4096).unwrap();
        assert!(!store.apply(&op).is_failed());
    }
    let mut config = ServerConfig::new(DOMAIN);
    config.tls_available = true;
    config.allow_plaintext_auth = true;
    config.scram_iterations = 4096;
    let server = Server::new(config, [7; 32], Instant::from_millis(0));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    elsinore_std::spawn_server(listener, server, store, Some(tls_config())).unwrap()
}

fn exodus(nick: &str) -> Element {
    Element::new("exodus", "exodus:prefs")
        .with_child(Element::new("defaultnick", "exodus:prefs").with_text(nick))
}

/// Runs every scenario against a fresh server.
pub fn run_all<A: Adapter>(adapter: &mut A) {
    let server = start_server();
    let addr = server.local_addr().to_string();
    login_and_private_storage(adapter, &addr);
    message_between_two_clients(adapter, &addr);
    bad_password(adapter, &addr);
    server.shutdown();
}

pub fn login_and_private_storage<A: Adapter>(a: &mut A, addr: &str) {
    let mut s = a
        .login(addr, &format!("hamlet@{DOMAIN}"), "s3cret")
        .unwrap();
    assert!(a.jid(&s).starts_with(&format!("hamlet@{DOMAIN}/")));
    a.private_set(&mut s, exodus("Hamlet")).unwrap();
    assert_eq!(
        a.private_get(&mut s, "exodus", "exodus:prefs").unwrap(),
        vec![exodus("Hamlet")]
    );
    a.private_set(&mut s, exodus("Prince")).unwrap();
    assert_eq!(
        a.private_get(&mut s, "exodus", "exodus:prefs").unwrap(),
        vec![exodus("Prince")]
    );
    let other = a
        .private_get(&mut s, "storage", "storage:bookmarks")
        .unwrap();
    assert!(other.iter().all(Element::is_empty), "{other:?}");
    a.close(s);
}

pub fn message_between_two_clients<A: Adapter>(a: &mut A, addr: &str) {
    let mut h = a
        .login(addr, &format!("hamlet@{DOMAIN}/castle"), "s3cret")
        .unwrap();
    let mut o = a
        .login(addr, &format!("ophelia@{DOMAIN}/garden"), "n0nnery")
        .unwrap();
    let message = Element::new("message", "jabber:client")
        .with_attr("to", format!("ophelia@{DOMAIN}/garden"))
        .with_attr("type", "chat")
        .with_child(Element::new("body", "jabber:client").with_text("Get thee to a nunnery"));
    a.send(&mut h, message).unwrap();
    let got = a
        .recv_message(&mut o, Duration::from_secs(10))
        .expect("message delivered in time");
    assert_eq!(
        got.attr("from"),
        Some(format!("hamlet@{DOMAIN}/castle").as_str())
    );
    assert_eq!(
        got.get_child("body", "jabber:client")
            .map(Element::text)
            .as_deref(),
        Some("Get thee to a nunnery")
    );
    a.close(h);
    a.close(o);
}

pub fn bad_password<A: Adapter>(a: &mut A, addr: &str) {
    assert!(a.login(addr, &format!("hamlet@{DOMAIN}"), "wrong").is_err());
    assert!(
        a.login(addr, &format!("claudius@{DOMAIN}"), "s3cret")
            .is_err()
    );
    // The server still serves after failed logins.
    let s = a
        .login(addr, &format!("hamlet@{DOMAIN}"), "s3cret")
        .unwrap();
    a.close(s);
}
