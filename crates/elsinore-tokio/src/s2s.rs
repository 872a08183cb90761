//! Server-to-server glue: the s2s listener's connections, outgoing connections the
//! core asks for ([`elsinore_server::ServerEvent::Connect`]), and the TLS of both
//! with certificate checks whose results the core uses (SASL EXTERNAL only for a
//! verified certificate, dialback otherwise).
//!
//! There is no DNS here: domains map to addresses through [`S2sOptions::peers`].

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use elsinore_server::ConnId;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DistinguishedName, RootCertStore};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use tracing::{debug, warn};

use crate::clock::Clock;
use crate::conn_io::{ConnMsg, Inbox, mailbox, read_with};
use crate::server::{BoxStream, Core, Shared};
use crate::tls::handshake_signatures;

/// How long connecting to a peer may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a TLS handshake may take.
const TLS_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one write may block.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);

/// Server-to-server settings of the runtime.
pub struct S2sOptions {
    /// Domain → address of its server (no DNS: only these domains are reachable).
    pub peers: HashMap<String, SocketAddr>,
    /// Certificate authorities whose certificates identify peer servers.
    pub ca: Vec<CertificateDer<'static>>,
    /// **Test-only**: accept peer certificates that do not verify (self-signed). Such a
    /// peer is never authenticated by its certificate: dialback is used instead.
    pub insecure: bool,
    /// Our certificate chain (presented to peers in both roles).
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// Its private key.
    pub key: PrivateKeyDer<'static>,
}

impl std::fmt::Debug for S2sOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S2sOptions")
            .field("peers", &self.peers)
            .field("ca", &self.ca.len())
            .field("insecure", &self.insecure)
            .finish_non_exhaustive()
    }
}

/// What the runtime keeps for s2s.
pub(crate) struct S2sRuntime {
    peers: HashMap<String, SocketAddr>,
    insecure: bool,
    roots: Arc<RootCertStore>,
    cert_chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    acceptor: TlsAcceptor,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// Set once the runtime's shared state exists (outgoing tasks need it).
    pub(crate) shared: OnceLock<Weak<Shared>>,
}

impl S2sRuntime {
    pub(crate) fn new(options: S2sOptions) -> io::Result<Arc<S2sRuntime>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = RootCertStore::empty();
        for ca in &options.ca {
            roots
                .add(ca.clone())
                .map_err(|e| io::Error::other(format!("s2s CA certificate: {e}")))?;
        }
        let roots = Arc::new(roots);
        let verifier = Arc::new(AnyClientCertificate {
            algorithms: provider.signature_verification_algorithms,
        });
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .with_client_cert_verifier(verifier)
            .with_single_cert(options.cert_chain.clone(), options.key.clone_key())
            .map_err(|e| io::Error::other(format!("s2s certificate: {e}")))?;
        Ok(Arc::new(S2sRuntime {
            peers: options.peers,
            insecure: options.insecure,
            roots,
            cert_chain: options.cert_chain,
            key: options.key,
            acceptor: TlsAcceptor::from(Arc::new(server)),
            provider,
            shared: OnceLock::new(),
        }))
    }

    /// A TLS client configuration for one outgoing connection; `verified` records
    /// whether the peer's certificate verified for the domain.
    fn client_config(&self, verified: Arc<AtomicBool>) -> io::Result<rustls::ClientConfig> {
        let inner = if self.roots.is_empty() {
            None
        } else {
            Some(
                WebPkiServerVerifier::builder_with_provider(
                    Arc::clone(&self.roots),
                    Arc::clone(&self.provider),
                )
                .build()
                .map_err(io::Error::other)?,
            )
        };
        let verifier = RecordingVerifier {
            inner,
            insecure: self.insecure,
            verified,
            algorithms: self.provider.signature_verification_algorithms,
        };
        rustls::ClientConfig::builder_with_provider(Arc::clone(&self.provider))
            .with_safe_default_protocol_versions()
            .map_err(io::Error::other)?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(self.cert_chain.clone(), self.key.clone_key())
            .map_err(io::Error::other)
    }

    /// The DNS names of a client certificate chain that verifies against our CAs.
    fn verified_names(&self, chain: &[CertificateDer<'static>]) -> Vec<String> {
        let Some((end, intermediates)) = chain.split_first() else {
            return Vec::new();
        };
        if self.roots.is_empty() {
            return Vec::new();
        }
        let Ok(verifier) = WebPkiClientVerifier::builder_with_provider(
            Arc::clone(&self.roots),
            Arc::clone(&self.provider),
        )
        .build() else {
            return Vec::new();
        };
        if verifier
            .verify_client_cert(end, intermediates, UnixTime::now())
            .is_err()
        {
            return Vec::new();
        }
        dns_names(end)
    }
}

/// The subjectAltName dNSName entries of a certificate (no wildcards).
fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(cert.as_ref()) else {
        return Vec::new();
    };
    let Ok(Some(san)) = parsed.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) if !d.contains('*') => Some(d.to_ascii_lowercase()),
            _ => None,
        })
        .take(16)
        .collect()
}

/// Outgoing: checks the server certificate with the CA roots, records the result, and
/// (test-only `insecure`) lets an unverified one through for dialback.
#[derive(Debug)]
struct RecordingVerifier {
    inner: Option<Arc<WebPkiServerVerifier>>,
    insecure: bool,
    verified: Arc<AtomicBool>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let result = match &self.inner {
            Some(v) => {
                v.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            }
            None => Err(rustls::Error::General("no s2s CA configured".into())),
        };
        match result {
            Ok(ok) => {
                self.verified.store(true, Ordering::Relaxed);
                Ok(ok)
            }
            Err(_) if self.insecure => Ok(ServerCertVerified::assertion()),
            Err(e) => Err(e),
        }
    }

    handshake_signatures!(algorithms);
}

/// Incoming: asks for a client certificate but accepts any (the handshake signatures
/// are still checked); the chain is judged after the handshake, so that a peer with an
/// unverifiable certificate can still use dialback.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    handshake_signatures!(algorithms);
}

/// Which side of the s2s connection we are.
#[derive(Clone)]
enum Role {
    Incoming,
    Outgoing(String),
}

impl Core {
    /// The core asked for an outgoing s2s connection to `domain`.
    pub(crate) fn connect_s2s(&mut self, conn: ConnId, domain: String, clock: &Clock) {
        let shared = self
            .s2s
            .as_ref()
            .and_then(|rt| rt.shared.get())
            .and_then(Weak::upgrade);
        let (Some(rt), Some(shared)) = (self.s2s.clone(), shared) else {
            debug!(?conn, %domain, "no server-to-server runtime configured");
            self.server.handle_connect_failed(conn, clock.now());
            return;
        };
        let Some(addr) = rt.peers.get(&domain).copied() else {
            debug!(?conn, %domain, "no address configured for this domain");
            self.server.handle_connect_failed(conn, clock.now());
            return;
        };
        let (handle, rx) = mailbox();
        self.conns.insert(conn, handle);
        tokio::spawn(async move {
            let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    warn!(%domain, %addr, "s2s connect: {e}");
                    let now = shared.clock.now();
                    shared.lock().conns.remove(&conn);
                    shared.with_core(|s| s.handle_connect_failed(conn, now));
                    return;
                }
                Err(_) => {
                    warn!(%domain, %addr, "s2s connect timed out");
                    let now = shared.clock.now();
                    shared.lock().conns.remove(&conn);
                    shared.with_core(|s| s.handle_connect_failed(conn, now));
                    return;
                }
            };
            let _ = stream.set_nodelay(true);
            debug!(?conn, %domain, %addr, "s2s connected");
            let now = shared.clock.now();
            shared.with_core(|s| s.handle_connected(conn, now));
            s2s_task(
                shared,
                conn,
                Box::new(stream),
                rx,
                Role::Outgoing(domain),
                rt,
            )
            .await;
        });
    }
}

/// Registers a connection accepted on the s2s listener and runs it.
pub(crate) async fn accept_s2s(shared: Arc<Shared>, stream: TcpStream, rt: Arc<S2sRuntime>) {
    let _ = stream.set_nodelay(true);
    let (handle, rx) = mailbox();
    let conn = {
        let mut core = shared.lock();
        let conn = core.server.accept_s2s(shared.clock.now());
        core.conns.insert(conn, handle);
        conn
    };
    debug!(?conn, "s2s accepted");
    s2s_task(shared, conn, Box::new(stream), rx, Role::Incoming, rt).await;
}

/// One s2s socket: writes what the core sends, reads into the core, runs TLS.
async fn s2s_task(
    shared: Arc<Shared>,
    conn: ConnId,
    mut stream: BoxStream,
    rx: Inbox,
    role: Role,
    rt: Arc<S2sRuntime>,
) {
    let mut eof_known = false;
    loop {
        tokio::select! {
            // Core messages first: no byte after <proceed/> is read as plaintext.
            biased;
            msg = rx.recv() => match msg.unwrap_or(ConnMsg::Close) {
                ConnMsg::Bytes(bytes) => {
                    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
                        stream.write_all(&bytes).await?;
                        stream.flush().await
                    })
                    .await;
                    rx.written(bytes.len());
                    if !matches!(written, Ok(Ok(()))) {
                        break;
                    }
                    if matches!(role, Role::Outgoing(_)) {
                        // The core keeps an outgoing stream's unwritten stanzas within its
                        // limit (and sends waiting ones) by these reports; incoming
                        // streams carry no stanzas of ours.
                        let now = shared.clock.now();
                        shared.with_core(|s| s.handle_written(conn, bytes.len(), now));
                    }
                }
                ConnMsg::UpgradeTls => {
                    let plain = std::mem::replace(&mut stream, Box::new(tokio::io::duplex(1).0));
                    match upgrade(plain, &role, &rt).await {
                        Ok((tls, verified)) => {
                            stream = tls;
                            debug!(?conn, ?verified, "s2s TLS up");
                            let now = shared.clock.now();
                            shared.with_core(|s| s.handle_s2s_tls_ready(conn, verified, now));
                        }
                        Err(e) => {
                            debug!(?conn, "s2s TLS handshake: {e}");
                            break;
                        }
                    }
                }
                ConnMsg::Close => {
                    let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.shutdown()).await;
                    eof_known = true;
                    break;
                }
                ConnMsg::Abort => {
                    eof_known = true;
                    break;
                }
            },
            read = read_with(&mut stream, |bytes| {
                let now = shared.clock.now();
                shared.with_core(|s| s.handle_input(conn, bytes, now));
            }) => match read {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            },
        }
    }
    if !eof_known {
        let now = shared.clock.now();
        shared.with_core(|s| s.handle_eof(conn, now));
    }
    shared.lock().conns.remove(&conn);
}

/// The TLS handshake for `role`, and the domains the peer's certificate was verified for.
async fn upgrade(
    stream: BoxStream,
    role: &Role,
    rt: &S2sRuntime,
) -> io::Result<(BoxStream, Vec<String>)> {
    let timeout = |_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out");
    match role {
        Role::Outgoing(domain) => {
            let verified = Arc::new(AtomicBool::new(false));
            let config = rt.client_config(Arc::clone(&verified))?;
            let name = ServerName::try_from(domain.clone()).map_err(io::Error::other)?;
            let tls = tokio::time::timeout(
                TLS_TIMEOUT,
                TlsConnector::from(Arc::new(config)).connect(name, stream),
            )
            .await
            .map_err(timeout)??;
            let names = if verified.load(Ordering::Relaxed) {
                vec![domain.clone()]
            } else {
                Vec::new()
            };
            Ok((Box::new(tls), names))
        }
        Role::Incoming => {
            let tls = tokio::time::timeout(TLS_TIMEOUT, rt.acceptor.accept(stream))
                .await
                .map_err(timeout)??;
            let names = tls
                .get_ref()
                .1
                .peer_certificates()
                .map(|chain| rt.verified_names(chain))
                .unwrap_or_default();
            Ok((Box::new(tls), names))
        }
    }
}
