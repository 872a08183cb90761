//! An async XMPP client: a thin tokio driver over [`elsinore_client::Client`].
//!
//! One task owns the socket and the sans-IO client core; the [`Client`] handle talks to it
//! through channels. Every protocol decision (iq ids and matching, timeouts, the bounded
//! inbound queue, XEP-0049 request shapes) lives in the core; the task moves bytes, time and
//! results. It follows the core's run rule: after every input or command it writes all
//! pending bytes, then drains the events.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use elsinore_client::{ClientEvent, IqError, IqId, Options, private};
use elsinore_jid::Jid;
use elsinore_stanza::StreamError;
use elsinore_stream::{ClientConfig, TlsPolicy};
use elsinore_xml::Element;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::clock::{Clock, random_seed, sleep_until_opt};
use crate::server::BoxStream;

const READ_BUF: usize = 16 * 1024;
/// Inbound stanzas handed to [`Client::recv`] ahead of time (the core queues the rest).
const HANDOFF_CAPACITY: usize = 16;
/// How long [`Client::close`] waits for the server's `</stream:stream>`.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client operation failed.
#[derive(Debug)]
pub enum ClientError {
    /// A socket error.
    Io(io::Error),
    /// TLS could not be set up (configuration or handshake).
    Tls(String),
    /// The operation did not finish in time.
    Timeout(&'static str),
    /// The server ended the stream with a stream error: its condition (e.g. `conflict`,
    /// `policy-violation`, `see-other-host` with the other host, `system-shutdown`), text
    /// and application element. Every call after the end returns it too.
    Stream(StreamError),
    /// The stream ended without a stream error from the server; `error` is the
    /// negotiation failure (e.g. SASL `not-authorized` for a bad password) or our own
    /// stream error, if any.
    Closed {
        /// What the core reported when the stream closed.
        error: Option<String>,
    },
    /// The server answered an iq with an error.
    Stanza {
        /// The defined condition, e.g. `forbidden` (derived from a legacy `code` if needed).
        condition: String,
        /// The error type (`cancel`, `modify`, `auth`, `wait`, `continue`), if given.
        error_type: Option<String>,
        /// The human-readable text, if given.
        text: Option<String>,
    },
    /// The core refused to send the stanza.
    Send(String),
    /// The server's answer did not have the expected shape.
    UnexpectedResponse(String),
    /// The connection task is gone (the stream closed earlier).
    Disconnected,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::Tls(e) => write!(f, "TLS error: {e}"),
            ClientError::Timeout(what) => write!(f, "timed out: {what}"),
            ClientError::Stream(e) => write!(f, "server closed the stream: {e}"),
            ClientError::Closed { error: Some(e) } => write!(f, "stream closed: {e}"),
            ClientError::Closed { error: None } => write!(f, "stream closed"),
            ClientError::Stanza {
                condition, text, ..
            } => {
                write!(f, "stanza error: {condition}")?;
                if let Some(text) = text {
                    write!(f, " ({text})")?;
                }
                Ok(())
            }
            ClientError::Send(e) => write!(f, "cannot send: {e}"),
            ClientError::UnexpectedResponse(e) => write!(f, "unexpected response: {e}"),
            ClientError::Disconnected => write!(f, "disconnected"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Io(e) => Some(e),
            ClientError::Stream(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// How to connect and log in.
pub struct ClientOptions {
    /// `host:port` to connect to.
    pub addr: String,
    /// The account; a full JID requests that resource.
    pub jid: Jid,
    /// The account's password.
    pub password: String,
    /// Whether to use STARTTLS.
    pub tls: TlsPolicy,
    /// The rustls configuration for STARTTLS. Required unless `tls` is `Disabled` (this crate
    /// ships no root certificates); see [`ClientOptions::insecure_tls`] for tests.
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// The name the server certificate is checked against; defaults to the JID's domain.
    pub server_name: Option<String>,
    /// Bound on connecting + logging in, each iq round trip and other waits.
    pub timeout: Duration,
}

impl ClientOptions {
    /// Options with STARTTLS required, no TLS configuration yet, and a 30 s timeout.
    pub fn new(addr: impl Into<String>, jid: Jid, password: impl Into<String>) -> Self {
        ClientOptions {
            addr: addr.into(),
            jid,
            password: password.into(),
            tls: TlsPolicy::Required,
            tls_config: None,
            server_name: None,
            timeout: Duration::from_secs(30),
        }
    }

    /// **Test-only**: accept any server certificate (see [`crate::insecure_client_config`]).
    /// This gives no protection against an active attacker; use it only against test
    /// servers with self-signed certificates.
    #[must_use]
    pub fn insecure_tls(mut self) -> Self {
        self.tls_config = Some(crate::tls::insecure_client_config());
        self
    }
}

/// Commands from the handle to the connection task.
enum Cmd {
    Send(Element, oneshot::Sender<Result<(), ClientError>>),
    Iq(Element, oneshot::Sender<Result<Element, ClientError>>),
    Close(oneshot::Sender<()>),
}

/// A logged-in XMPP client session.
///
/// All methods take `&self`, so a `Client` can be shared (e.g. in an `Arc`) between a task
/// that calls [`Client::recv`] and others that send. Dropping it closes the stream.
pub struct Client {
    jid: Jid,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    inbound: tokio::sync::Mutex<mpsc::Receiver<Element>>,
    timeout: Duration,
    /// Set by the connection task before it ends, when the server sent a stream error.
    stream_error: Arc<OnceLock<StreamError>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("jid", &self.jid.to_string())
            .finish()
    }
}

impl Client {
    /// Connects, negotiates (STARTTLS, SASL, bind) and returns once the session is
    /// established, or fails within `opts.timeout`.
    pub async fn connect(opts: ClientOptions) -> Result<Client, ClientError> {
        let timeout = opts.timeout;
        tokio::time::timeout(timeout, Self::connect_inner(opts))
            .await
            .map_err(|_| ClientError::Timeout("connecting and logging in"))?
    }

    async fn connect_inner(opts: ClientOptions) -> Result<Client, ClientError> {
        let ClientOptions {
            addr,
            jid,
            password,
            tls,
            tls_config,
            server_name,
            timeout,
        } = opts;
        if tls_config.is_none() && !matches!(tls, TlsPolicy::Disabled) {
            // Fail before connecting rather than after the server offers STARTTLS.
            return Err(ClientError::Tls(
                "no TLS configuration (set ClientOptions::tls_config, or tls: Disabled)".into(),
            ));
        }
        let name = server_name.unwrap_or_else(|| jid.domain().to_string());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| ClientError::Tls(format!("invalid server name {name:?}: {e}")))?;
        let socket = TcpStream::connect(addr.as_str()).await?;
        let _ = socket.set_nodelay(true);
        let clock = Clock::new();
        let options = Options {
            iq_timeout: timeout,
            ..Options::default()
        };
        let core = elsinore_client::Client::new(
            ClientConfig { jid, password, tls },
            options,
            random_seed()?,
            clock.now(),
        );
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (inbound_tx, inbound_rx) = mpsc::channel(HANDOFF_CAPACITY);
        let (established_tx, established_rx) = oneshot::channel();
        let stream_error = Arc::new(OnceLock::new());
        let driver = Driver {
            core,
            stream_error: Arc::clone(&stream_error),
            clock,
            tls_config,
            server_name,
            waiters: HashMap::new(),
            next_inbound: None,
            established: Some(established_tx),
            close_waiters: Vec::new(),
            closed: false,
        };
        tokio::spawn(driver.run(Box::new(socket), cmd_rx, inbound_tx));
        let jid = established_rx
            .await
            .map_err(|_| ClientError::Disconnected)??;
        Ok(Client {
            jid,
            cmd_tx,
            inbound: tokio::sync::Mutex::new(inbound_rx),
            timeout,
            stream_error,
        })
    }

    /// The full JID the server bound for this session.
    pub fn jid(&self) -> &Jid {
        &self.jid
    }

    /// The stream error the server ended the session with, if it did (e.g. once
    /// [`Client::recv`] returned `None`).
    pub fn stream_error(&self) -> Option<&StreamError> {
        self.stream_error.get()
    }

    /// Why the connection task is gone: the server's stream error if it sent one.
    fn gone(&self) -> ClientError {
        self.stream_error
            .get()
            .map_or(ClientError::Disconnected, |e| {
                ClientError::Stream(e.clone())
            })
    }

    /// Sends a stanza (`message`, `presence` or `iq` in `jabber:client`).
    pub async fn send(&self, stanza: Element) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Cmd::Send(stanza, tx))
            .map_err(|_| self.gone())?;
        rx.await.map_err(|_| self.gone())?
    }

    /// The next inbound stanza that is not the response to an [`Client::iq`] call; `None`
    /// once the stream has ended.
    ///
    /// Up to a bounded number of stanzas are buffered; beyond that the client stops reading
    /// the socket until `recv` is called, so a program that never calls `recv` while the
    /// server pushes stanzas will see its iq calls time out.
    pub async fn recv(&self) -> Option<Element> {
        self.inbound.lock().await.recv().await
    }

    /// Sends an iq request and waits for the response with the same id (one is assigned if
    /// missing). A `type='error'` response becomes [`ClientError::Stanza`].
    pub async fn iq(&self, iq: Element) -> Result<Element, ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx.send(Cmd::Iq(iq, tx)).map_err(|_| self.gone())?;
        // The core times the request out itself; this outer bound is a backstop.
        tokio::time::timeout(self.timeout + CLOSE_TIMEOUT, rx)
            .await
            .map_err(|_| ClientError::Timeout("iq response"))?
            .map_err(|_| self.gone())?
    }

    /// XEP-0049: stores `payload` (an element in its own namespace) in private XML storage,
    /// replacing what was stored under the same name and namespace.
    pub async fn private_set(&self, payload: Element) -> Result<(), ClientError> {
        self.iq(private::set_request(payload)).await.map(|_| ())
    }

    /// XEP-0049: retrieves what is stored under `name` in namespace `ns`. The server returns
    /// the stored element, or the empty element if nothing is stored.
    pub async fn private_get(&self, name: &str, ns: &str) -> Result<Vec<Element>, ClientError> {
        let response = self.iq(private::get_request(name, ns)).await?;
        private::parse_get_response(&response)
            .map_err(|e| ClientError::UnexpectedResponse(e.to_string()))
    }

    /// Closes the stream (`</stream:stream>`) and waits, bounded, for the server to close its
    /// side.
    pub async fn close(&self) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        if self.cmd_tx.send(Cmd::Close(tx)).is_err() {
            return Ok(()); // already closed
        }
        // The task bounds its own wait; this outer bound is a backstop.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT * 2, rx).await;
        Ok(())
    }
}

/// The handle's error for an iq the core reports as failed.
fn iq_error(e: IqError) -> ClientError {
    match e {
        IqError::Stanza(e) => ClientError::Stanza {
            condition: e.condition.name().to_string(),
            error_type: Some(e.type_.as_str().to_string()),
            text: e.text,
        },
        IqError::Timeout => ClientError::Timeout("iq response"),
        IqError::Disconnected => ClientError::Disconnected,
    }
}

/// The connection task's state.
struct Driver {
    core: elsinore_client::Client,
    /// Shared with the handle: the server's stream error, once the stream ended with one.
    stream_error: Arc<OnceLock<StreamError>>,
    clock: Clock,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    server_name: ServerName<'static>,
    waiters: HashMap<IqId, oneshot::Sender<Result<Element, ClientError>>>,
    /// The stanza taken from the core's queue, waiting for room in the hand-off channel.
    next_inbound: Option<Element>,
    established: Option<oneshot::Sender<Result<Jid, ClientError>>>,
    close_waiters: Vec<oneshot::Sender<()>>,
    closed: bool,
}

impl Driver {
    async fn run(
        mut self,
        mut stream: BoxStream,
        mut cmd_rx: mpsc::UnboundedReceiver<Cmd>,
        inbound_tx: mpsc::Sender<Element>,
    ) {
        let mut buf = vec![0u8; READ_BUF];
        let mut reading = true;
        let mut commands_open = true;
        let mut close_deadline: Option<tokio::time::Instant> = None;
        let mut failure: Option<ClientError> = None;
        loop {
            if let Err(e) = self.process(&mut stream).await {
                debug!("client connection failed: {e}");
                failure = Some(e);
                break;
            }
            if self.closed {
                break;
            }
            if self.next_inbound.is_none() {
                self.next_inbound = self.core.recv();
            }
            let deadline = self.core.poll_timeout().map(|t| self.clock.to_tokio(t));
            tokio::select! {
                biased;
                cmd = cmd_rx.recv(), if commands_open => {
                    let now = self.clock.now();
                    match cmd {
                        Some(Cmd::Send(stanza, reply)) => {
                            let result = self
                                .core
                                .send(&stanza)
                                .map_err(|e| ClientError::Send(e.to_string()));
                            let _ = reply.send(result);
                        }
                        Some(Cmd::Iq(iq, reply)) => match self.core.send_iq(iq, now) {
                            Ok(id) => {
                                self.waiters.insert(id, reply);
                            }
                            Err(e) => {
                                let _ = reply.send(Err(ClientError::Send(e.to_string())));
                            }
                        },
                        Some(Cmd::Close(waiter)) => {
                            self.close_waiters.push(waiter);
                            self.start_close(&mut close_deadline);
                        }
                        None => {
                            // The handle was dropped: close the stream.
                            commands_open = false;
                            self.start_close(&mut close_deadline);
                        }
                    }
                }
                permit = inbound_tx.reserve(), if self.next_inbound.is_some() => match permit {
                    Ok(permit) => {
                        if let Some(stanza) = self.next_inbound.take() {
                            permit.send(stanza);
                        }
                    }
                    // Nobody will ever call recv again: drop what arrives.
                    Err(_) => {
                        self.next_inbound = None;
                        while self.core.recv().is_some() {}
                    }
                },
                // The core says when to stop reading (its inbound queue is full):
                // TCP back-pressure instead of an unbounded buffer.
                read = stream.read(&mut buf), if reading && self.core.wants_read() => {
                    let now = self.clock.now();
                    match read {
                        Ok(0) | Err(_) => {
                            reading = false;
                            self.core.handle_eof(now);
                        }
                        // `n <= buf.len()` by `read`'s contract.
                        Ok(n) => self.core.handle_input(&buf[..n], now),
                    }
                }
                _ = sleep_until_opt(deadline) => {
                    self.core.handle_timeout(self.clock.now());
                }
                _ = sleep_until_opt(close_deadline) => {
                    debug!("server did not close its stream in time");
                    break;
                }
            }
        }
        // Best effort: send what is still pending (e.g. our `</stream:stream>`), then close.
        let pending = self.core.take_transmit();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            stream.write_all(&pending).await?;
            stream.shutdown().await
        })
        .await;
        if let Some(tx) = self.established.take() {
            let _ = tx.send(Err(failure.unwrap_or(ClientError::Closed { error: None })));
        }
        // Dropping the senders wakes every `iq` waiter with `Disconnected`.
        self.waiters.clear();
        // Deliver what was received before the end, as far as the channel takes it.
        let rest = self.next_inbound.take().into_iter();
        for stanza in rest.chain(std::iter::from_fn(|| self.core.recv())) {
            if inbound_tx.try_send(stanza).is_err() {
                break;
            }
        }
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    fn start_close(&mut self, deadline: &mut Option<tokio::time::Instant>) {
        if deadline.is_none() {
            self.core.close(self.clock.now());
            *deadline = Some(tokio::time::Instant::now() + CLOSE_TIMEOUT);
        }
    }

    /// Writes everything pending, then handles every event (the core's run rule).
    async fn process(&mut self, stream: &mut BoxStream) -> Result<(), ClientError> {
        loop {
            while !self.core.pending_transmit().is_empty() {
                let n = stream.write(self.core.pending_transmit()).await?;
                if n == 0 {
                    return Err(ClientError::Io(io::ErrorKind::WriteZero.into()));
                }
                self.core.advance_transmit(n);
            }
            stream.flush().await?;
            let Some(event) = self.core.poll_event() else {
                return Ok(());
            };
            match event {
                ClientEvent::UpgradeTls => {
                    // Everything queued before the event is written and flushed above; the
                    // handshake runs on the same socket before anything else is read.
                    let config = self.tls_config.clone().ok_or_else(|| {
                        ClientError::Tls(
                            "STARTTLS negotiated but no TLS configuration given".into(),
                        )
                    })?;
                    let connector = tokio_rustls::TlsConnector::from(config);
                    let plain = std::mem::replace(stream, Box::new(tokio::io::duplex(1).0));
                    let tls = connector
                        .connect(self.server_name.clone(), plain)
                        .await
                        .map_err(|e| ClientError::Tls(e.to_string()))?;
                    let info = elsinore_stream::TlsInfo {
                        channel_binding: client_channel_binding(tls.get_ref().1),
                        peer_identity: None,
                        more_channel_bindings: Vec::new(),
                    };
                    *stream = Box::new(tls);
                    self.core.handle_tls_ready_with(info, self.clock.now());
                }
                ClientEvent::Established { jid } => {
                    if let Some(tx) = self.established.take() {
                        let _ = tx.send(Ok(jid));
                    }
                }
                ClientEvent::IqResponse { id, result } => {
                    if let Some(waiter) = self.waiters.remove(&id) {
                        // Requests outstanding when the server ended the stream learn why.
                        let peer = self.core.peer_stream_error();
                        let result = result.map_err(|e| match (e, peer) {
                            (IqError::Disconnected, Some(e)) => ClientError::Stream(e.clone()),
                            (e, _) => iq_error(e),
                        });
                        let _ = waiter.send(result);
                    }
                }
                ClientEvent::Closed { error, .. } => {
                    // This adapter does not reconnect: `Client::connect` again instead.
                    self.closed = true;
                    let peer = self.core.peer_stream_error().cloned();
                    if let Some(e) = &peer {
                        let _ = self.stream_error.set(e.clone());
                    }
                    if let Some(tx) = self.established.take() {
                        let _ = tx.send(Err(match peer {
                            Some(e) => ClientError::Stream(e),
                            None => ClientError::Closed { error },
                        }));
                    }
                }
            }
        }
    }
}

/// The same choice as the server's: RFC 9266 `tls-exporter` on TLS 1.3, RFC 5929
/// `tls-server-end-point` (the hash of the certificate the server presented) on TLS 1.2.
fn client_channel_binding(conn: &rustls::ClientConnection) -> elsinore_stream::ChannelBinding {
    use elsinore_stream::ChannelBinding;
    match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => {
            let mut out = [0u8; 32];
            match conn.export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None) {
                Ok(_) => ChannelBinding::TlsExporter(out.to_vec()),
                Err(_) => ChannelBinding::None,
            }
        }
        Some(rustls::ProtocolVersion::TLSv1_2) => conn
            .peer_certificates()
            .and_then(<[_]>::first)
            .and_then(crate::tls::server_end_point)
            .map_or(ChannelBinding::None, ChannelBinding::TlsServerEndPoint),
        _ => ChannelBinding::None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use elsinore_client::stanza_error;

    const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";

    fn iq_error_of(error: Element) -> ClientError {
        let iq = Element::new("iq", "jabber:client")
            .with_attr("type", "error")
            .with_child(error);
        super::iq_error(IqError::Stanza(Box::new(stanza_error(&iq))))
    }

    #[test]
    fn modern_stanza_error() {
        let e = iq_error_of(
            Element::new("error", "jabber:client")
                .with_attr("type", "cancel")
                .with_child(Element::new("forbidden", STANZAS_NS))
                .with_child(Element::new("text", STANZAS_NS).with_text("not yours")),
        );
        match e {
            ClientError::Stanza {
                condition,
                error_type,
                text,
            } => {
                assert_eq!(condition, "forbidden");
                assert_eq!(error_type.as_deref(), Some("cancel"));
                assert_eq!(text.as_deref(), Some("not yours"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn legacy_code_only_error() {
        let e = iq_error_of(
            Element::new("error", "jabber:client")
                .with_attr("code", "406")
                .with_text("Not Acceptable"),
        );
        match e {
            ClientError::Stanza {
                condition, text, ..
            } => {
                assert_eq!(condition, "not-acceptable");
                assert_eq!(text.as_deref(), Some("Not Acceptable"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_error_element() {
        let iq = Element::new("iq", "jabber:client").with_attr("type", "error");
        let e = super::iq_error(IqError::Stanza(Box::new(stanza_error(&iq))));
        assert!(matches!(
            e,
            ClientError::Stanza { condition, .. } if condition == "undefined-condition"
        ));
    }
}
