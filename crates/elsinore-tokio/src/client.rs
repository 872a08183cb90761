//! An async XMPP client over [`elsinore_stream::Connection`] in the client role.
//!
//! One task owns the socket and the `Connection`; the [`Client`] handle talks to it through
//! channels. The task follows the core's run rule: after every input or command it writes
//! all pending bytes, then drains the events.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use elsinore_jid::Jid;
use elsinore_stream::{ClientConfig, Connection, Event, Limits, TlsPolicy};
use elsinore_xml::Element;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tracing::debug;

use crate::clock::{Clock, random_seed, sleep_until_opt};
use crate::server::BoxStream;

/// Namespace of stanza error conditions (RFC 6120 §8.3).
const STANZAS_NS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// Namespace of XEP-0049 private XML storage.
const PRIVATE_NS: &str = "jabber:iq:private";
/// Inbound stanzas buffered for [`Client::recv`] before the client stops reading the socket.
const INBOUND_CAPACITY: usize = 256;
const READ_BUF: usize = 16 * 1024;
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
    /// The stream ended; `error` is the stream error or negotiation failure (e.g. SASL
    /// `not-authorized` for a bad password), if any.
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
    Close(oneshot::Sender<()>),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Element>>>>;

/// A logged-in XMPP client session.
///
/// All methods take `&self`, so a `Client` can be shared (e.g. in an `Arc`) between a task
/// that calls [`Client::recv`] and others that send. Dropping it closes the stream.
pub struct Client {
    jid: Jid,
    cmd_tx: mpsc::UnboundedSender<Cmd>,
    inbound: tokio::sync::Mutex<mpsc::Receiver<Element>>,
    pending: Pending,
    next_id: AtomicU64,
    id_prefix: String,
    timeout: Duration,
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
        let seed = random_seed()?;
        let clock = Clock::new();
        let conn = Connection::new_client(
            ClientConfig { jid, password, tls },
            Limits::default(),
            seed,
            clock.now(),
        );
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOUND_CAPACITY);
        let (established_tx, established_rx) = oneshot::channel();
        let pending: Pending = Arc::default();
        let driver = Driver {
            conn,
            clock,
            tls_config,
            server_name,
            pending: Arc::clone(&pending),
            backlog: VecDeque::new(),
            established: Some(established_tx),
            close_waiters: Vec::new(),
            closed: false,
        };
        tokio::spawn(driver.run(Box::new(socket), cmd_rx, inbound_tx));
        let jid = established_rx
            .await
            .map_err(|_| ClientError::Disconnected)??;
        let id_prefix = {
            let r = random_seed()?;
            format!("el{:02x}{:02x}{:02x}{:02x}-", r[0], r[1], r[2], r[3])
        };
        Ok(Client {
            jid,
            cmd_tx,
            inbound: tokio::sync::Mutex::new(inbound_rx),
            pending,
            next_id: AtomicU64::new(1),
            id_prefix,
            timeout,
        })
    }

    /// The full JID the server bound for this session.
    pub fn jid(&self) -> &Jid {
        &self.jid
    }

    /// Sends a stanza (`message`, `presence` or `iq` in `jabber:client`).
    pub async fn send(&self, stanza: Element) -> Result<(), ClientError> {
        let (tx, rx) = oneshot::channel();
        self.cmd_tx
            .send(Cmd::Send(stanza, tx))
            .map_err(|_| ClientError::Disconnected)?;
        rx.await.map_err(|_| ClientError::Disconnected)?
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
    pub async fn iq(&self, mut iq: Element) -> Result<Element, ClientError> {
        let id = match iq.attr("id") {
            Some(id) => id.to_owned(),
            None => {
                let id = format!(
                    "{}{}",
                    self.id_prefix,
                    self.next_id.fetch_add(1, Ordering::Relaxed)
                );
                iq.set_attr("id", id.clone());
                id
            }
        };
        let (tx, rx) = oneshot::channel();
        // Registered before sending, so a fast response cannot overtake the registration.
        self.lock_pending().insert(id.clone(), tx);
        let result = async {
            self.send(iq).await?;
            let response = tokio::time::timeout(self.timeout, rx)
                .await
                .map_err(|_| ClientError::Timeout("iq response"))?
                .map_err(|_| ClientError::Disconnected)?;
            match response.attr("type") {
                Some("error") => Err(stanza_error(&response)),
                _ => Ok(response),
            }
        }
        .await;
        self.lock_pending().remove(&id);
        result
    }

    /// XEP-0049: stores `payload` (an element in its own namespace) in private XML storage,
    /// replacing what was stored under the same name and namespace.
    pub async fn private_set(&self, payload: Element) -> Result<(), ClientError> {
        let iq = Element::new("iq", "jabber:client")
            .with_attr("type", "set")
            .with_child(Element::new("query", PRIVATE_NS).with_child(payload));
        self.iq(iq).await.map(|_| ())
    }

    /// XEP-0049: retrieves what is stored under `name` in namespace `ns`. The server returns
    /// the stored element, or the empty element if nothing is stored.
    pub async fn private_get(&self, name: &str, ns: &str) -> Result<Vec<Element>, ClientError> {
        let iq = Element::new("iq", "jabber:client")
            .with_attr("type", "get")
            .with_child(Element::new("query", PRIVATE_NS).with_child(Element::new(name, ns)));
        let response = self.iq(iq).await?;
        let query = response.get_child("query", PRIVATE_NS).ok_or_else(|| {
            ClientError::UnexpectedResponse("private storage result without <query/>".into())
        })?;
        Ok(query.elements().cloned().collect())
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

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<String, oneshot::Sender<Element>>> {
        // Only map operations happen under this lock; a poisoned map is still consistent.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Reads the condition, type and text out of an error stanza.
fn stanza_error(stanza: &Element) -> ClientError {
    let Some(error) = stanza.get_child("error", "jabber:client").or_else(|| {
        // Be lenient about the error element's namespace.
        stanza.elements().find(|e| e.name == "error")
    }) else {
        return ClientError::Stanza {
            condition: "undefined-condition".into(),
            error_type: None,
            text: None,
        };
    };
    let condition = error
        .elements()
        .find(|e| e.ns == STANZAS_NS && e.name != "text")
        .map(|e| e.name.clone())
        .or_else(|| {
            error
                .attr("code")
                .and_then(legacy_condition)
                .map(String::from)
        })
        .unwrap_or_else(|| "undefined-condition".into());
    let text = error
        .get_child("text", STANZAS_NS)
        .map(Element::text)
        .or_else(|| Some(error.text()).filter(|t| !t.trim().is_empty()));
    ClientError::Stanza {
        condition,
        error_type: error.attr("type").map(String::from),
        text,
    }
}

/// The RFC 6120 condition for a legacy (jabber:client) numeric error code.
fn legacy_condition(code: &str) -> Option<&'static str> {
    Some(match code {
        "302" => "redirect",
        "400" => "bad-request",
        "401" => "not-authorized",
        "402" => "payment-required",
        "403" => "forbidden",
        "404" => "item-not-found",
        "405" => "not-allowed",
        "406" => "not-acceptable",
        "407" => "registration-required",
        "408" => "remote-server-timeout",
        "409" => "conflict",
        "500" => "internal-server-error",
        "501" => "feature-not-implemented",
        "502" => "service-unavailable",
        "503" => "service-unavailable",
        "504" => "remote-server-timeout",
        _ => return None,
    })
}

/// The connection task's state.
struct Driver {
    conn: Connection,
    clock: Clock,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    server_name: ServerName<'static>,
    pending: Pending,
    /// Stanzas for `recv` not yet accepted by the bounded channel.
    backlog: VecDeque<Element>,
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
            let deadline = self.conn.poll_timeout().map(|t| self.clock.to_tokio(t));
            tokio::select! {
                biased;
                cmd = cmd_rx.recv(), if commands_open => match cmd {
                    Some(Cmd::Send(stanza, reply)) => {
                        let result = self
                            .conn
                            .send(&stanza)
                            .map_err(|e| ClientError::Send(format!("{e:?}")));
                        let _ = reply.send(result);
                    }
                    Some(Cmd::Close(waiter)) => {
                        self.close_waiters.push(waiter);
                        start_close(&mut self.conn, &self.clock, &mut close_deadline);
                    }
                    None => {
                        // The handle was dropped: close the stream.
                        commands_open = false;
                        start_close(&mut self.conn, &self.clock, &mut close_deadline);
                    }
                },
                permit = inbound_tx.reserve(), if !self.backlog.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(stanza) = self.backlog.pop_front() {
                            permit.send(stanza);
                        }
                    }
                    // Nobody will ever call recv again.
                    Err(_) => self.backlog.clear(),
                },
                // Stop reading while the backlog is full: TCP back-pressure instead of an
                // unbounded buffer.
                read = stream.read(&mut buf), if reading && self.backlog.len() < INBOUND_CAPACITY => {
                    let now = self.clock.now();
                    match read {
                        Ok(0) | Err(_) => {
                            reading = false;
                            self.conn.handle_eof(now);
                        }
                        // `n <= buf.len()` by `read`'s contract.
                        Ok(n) => self.conn.handle_input(&buf[..n], now),
                    }
                }
                _ = sleep_until_opt(deadline) => {
                    self.conn.handle_timeout(self.clock.now());
                }
                _ = sleep_until_opt(close_deadline) => {
                    debug!("server did not close its stream in time");
                    break;
                }
            }
        }
        // Best effort: send what is still pending (e.g. our `</stream:stream>`), then close.
        let pending = self.conn.pending_transmit().to_vec();
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            stream.write_all(&pending).await?;
            stream.shutdown().await
        })
        .await;
        if let Some(tx) = self.established.take() {
            let _ = tx.send(Err(failure.unwrap_or(ClientError::Closed { error: None })));
        }
        // Dropping the senders wakes every `iq` waiter with `Disconnected`.
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        // Deliver what was received before the end, as far as the channel takes it.
        for stanza in self.backlog.drain(..) {
            if inbound_tx.try_send(stanza).is_err() {
                break;
            }
        }
        for waiter in self.close_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Writes everything pending, then handles every event (the core's run rule).
    async fn process(&mut self, stream: &mut BoxStream) -> Result<(), ClientError> {
        loop {
            while !self.conn.pending_transmit().is_empty() {
                let n = stream.write(self.conn.pending_transmit()).await?;
                if n == 0 {
                    return Err(ClientError::Io(io::ErrorKind::WriteZero.into()));
                }
                self.conn.advance_transmit(n);
            }
            stream.flush().await?;
            let Some(event) = self.conn.poll_event() else {
                return Ok(());
            };
            match event {
                Event::UpgradeTls => {
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
                    *stream = Box::new(tls);
                    self.conn.handle_tls_ready(self.clock.now());
                }
                Event::Established { jid } => {
                    if let Some(tx) = self.established.take() {
                        let _ = tx.send(Ok(jid));
                    }
                }
                Event::Stanza(stanza) => self.route(stanza),
                Event::Closed { error } => {
                    self.closed = true;
                    if let Some(tx) = self.established.take() {
                        let _ = tx.send(Err(ClientError::Closed { error }));
                    }
                }
                _ => {}
            }
        }
    }

    /// An awaited iq response goes to its waiter, anything else to `recv`.
    fn route(&mut self, stanza: Element) {
        if stanza.name == "iq"
            && matches!(stanza.attr("type"), Some("result" | "error"))
            && let Some(id) = stanza.attr("id")
        {
            let waiter = self
                .pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
            if let Some(waiter) = waiter {
                let _ = waiter.send(stanza);
                return;
            }
        }
        self.backlog.push_back(stanza);
    }
}

fn start_close(conn: &mut Connection, clock: &Clock, deadline: &mut Option<tokio::time::Instant>) {
    if deadline.is_none() {
        conn.close(clock.now());
        *deadline = Some(tokio::time::Instant::now() + CLOSE_TIMEOUT);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn iq_error(error: Element) -> Element {
        Element::new("iq", "jabber:client")
            .with_attr("type", "error")
            .with_child(error)
    }

    #[test]
    fn modern_stanza_error() {
        let e = iq_error(
            Element::new("error", "jabber:client")
                .with_attr("type", "cancel")
                .with_child(Element::new("forbidden", STANZAS_NS))
                .with_child(Element::new("text", STANZAS_NS).with_text("not yours")),
        );
        match stanza_error(&e) {
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
        let e = iq_error(
            Element::new("error", "jabber:client")
                .with_attr("code", "406")
                .with_text("Not Acceptable"),
        );
        match stanza_error(&e) {
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
        let e = Element::new("iq", "jabber:client").with_attr("type", "error");
        assert!(matches!(
            stanza_error(&e),
            ClientError::Stanza { condition, .. } if condition == "undefined-condition"
        ));
    }
}
