//! Shared setup: our `Server` over a `MemoryStore`, served by `serve` with a self-signed
//! certificate on a loopback port.
#![allow(dead_code, clippy::unwrap_used)] // test helpers: a failed setup should panic loudly

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use elsinore_jid::{BareJid, Jid};
use elsinore_server::{Server, ServerConfig, accounts};
use elsinore_storage::{MemoryStore, Store};
use elsinore_stream::Instant;
use elsinore_tokio::{Client, ClientError, ClientOptions};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const DOMAIN: &str = "localhost";
/// Low, to keep the tests fast; real deployments use the default.
pub const ITERATIONS: u32 = 4096;

pub fn tls_config() -> Arc<rustls::ServerConfig> {
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

/// A running server; dropping `stop` (or sending on it) shuts it down.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    /// Starts a server with these (localpart, password) accounts.
    pub async fn start(users: &[(&str, &str)]) -> TestServer {
        Self::start_with_tls(users, tls_config()).await
    }

    /// [`TestServer::start`] with this TLS configuration.
    pub async fn start_with_tls(
        users: &[(&str, &str)],
        tls: Arc<rustls::ServerConfig>,
    ) -> TestServer {
        let mut store = MemoryStore::new();
        for (i, (user, password)) in users.iter().enumerate() {
            let jid = BareJid::from_str(&format!("{user}@{DOMAIN}")).unwrap();
            let op =
                accounts::create_account_op(&jid, password, [i as u8; 32], ITERATIONS).unwrap();
            let result = store.apply(&op);
            assert!(!result.is_failed(), "creating {jid}: {result:?}");
        }
        let mut config = ServerConfig::new(DOMAIN);
        config.tls_available = true;
        config.scram_iterations = ITERATIONS;
        let server = Server::new(config, [7; 32], Instant::from_millis(0));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(elsinore_tokio::serve(
            listener,
            server,
            store,
            Some(tls),
            async move {
                let _ = stopped.await;
            },
        ));
        TestServer {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn options(&self, jid: &str, password: &str) -> ClientOptions {
        let mut opts =
            ClientOptions::new(self.addr.to_string(), Jid::from_str(jid).unwrap(), password)
                .insecure_tls();
        opts.timeout = Duration::from_secs(20);
        opts
    }

    pub async fn login(&self, jid: &str, password: &str) -> Client {
        Client::connect(self.options(jid, password)).await.unwrap()
    }

    /// Stops the server and checks that it shut down cleanly, in bounded time.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let result = tokio::time::timeout(Duration::from_secs(15), task)
                .await
                .expect("server shut down in time")
                .expect("server task did not panic");
            result.expect("serve returned Ok");
        }
    }
}

/// The condition of a stanza error, or a panic naming what came instead.
pub fn condition(result: Result<impl std::fmt::Debug, ClientError>) -> String {
    match result {
        Err(ClientError::Stanza { condition, .. }) => condition,
        other => panic!("expected a stanza error, got {other:?}"),
    }
}
