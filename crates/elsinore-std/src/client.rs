//! The blocking client: one socket, one [`elsinore_client::Client`], no threads.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use elsinore_client::annotations::{self, Annotations};
use elsinore_client::{ClientEvent, IqError, IqId, Options, private};
use elsinore_jid::BareJid;
use elsinore_jid::Jid;
use elsinore_stream::{ClientConfig, Instant, TlsPolicy};
use elsinore_xml::Element;
use rustls::pki_types::ServerName;

use crate::{Clock, random_seed};

const READ_BUF: usize = 16 * 1024;

/// Why a client call failed.
#[derive(Debug)]
pub enum ClientError {
    /// A socket error.
    Io(io::Error),
    /// TLS could not be set up (configuration or handshake).
    Tls(String),
    /// The call did not finish within [`ClientOptions::timeout`].
    Timeout,
    /// The stream ended; `error` is why (e.g. SASL `not-authorized`), if known.
    Closed {
        /// What the core reported.
        error: Option<String>,
    },
    /// The core refused the request (not established, too many outstanding, …).
    Send(String),
    /// The iq was answered with an error, or not at all.
    Iq(IqError),
    /// The answer did not have the expected shape.
    UnexpectedResponse(String),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "I/O error: {e}"),
            ClientError::Tls(e) => write!(f, "TLS error: {e}"),
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::Closed { error: Some(e) } => write!(f, "stream closed: {e}"),
            ClientError::Closed { error: None } => f.write_str("stream closed"),
            ClientError::Send(e) => write!(f, "cannot send: {e}"),
            ClientError::Iq(e) => write!(f, "{e}"),
            ClientError::UnexpectedResponse(e) => write!(f, "unexpected response: {e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        ClientError::Io(e)
    }
}

/// How to connect and log in.
#[derive(Clone)]
pub struct ClientOptions {
    /// `host:port` to connect to.
    pub addr: String,
    /// The account; a full JID requests that resource.
    pub jid: Jid,
    /// The account's password.
    pub password: String,
    /// Whether to use STARTTLS.
    pub tls: TlsPolicy,
    /// The rustls configuration for STARTTLS (required unless `tls` is `Disabled`).
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// The name the certificate is checked against; defaults to the JID's domain.
    pub server_name: Option<String>,
    /// Bound on logging in and on each call.
    pub timeout: Duration,
    /// The core's options (iq table and inbound queue sizes, reconnect policy).
    pub core: Options,
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
            core: Options::default(),
        }
    }
}

/// The socket, plain or with TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    /// Only during the swap to TLS.
    Gone,
}

impl Stream {
    fn tcp(&self) -> Option<&TcpStream> {
        match self {
            Stream::Plain(s) => Some(s),
            Stream::Tls(s) => Some(&s.sock),
            Stream::Gone => None,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
            Stream::Gone => Err(io::ErrorKind::NotConnected.into()),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
            Stream::Gone => Ok(()),
        }
    }
}

/// A logged-in, blocking XMPP client session.
///
/// ```no_run
/// use elsinore_std::{Client, ClientOptions};
/// use elsinore_stream::TlsPolicy;
/// use elsinore_xml::Element;
///
/// let mut opts = ClientOptions::new("127.0.0.1:5222", "hamlet@localhost".parse()?, "s3cret");
/// opts.tls = TlsPolicy::Disabled; // plaintext: only on a trusted link
/// let mut client = Client::connect(opts)?;
/// client.private_set(Element::new("exodus", "exodus:prefs").with_text("Hamlet"))?;
/// let stored = client.private_get("exodus", "exodus:prefs")?;
/// assert_eq!(stored[0].text(), "Hamlet");
/// client.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Client {
    core: elsinore_client::Client,
    stream: Stream,
    clock: Clock,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    server_name: ServerName<'static>,
    timeout: Duration,
    buf: Vec<u8>,
    /// Answers that arrived while waiting for another.
    answers: Vec<(IqId, Result<Element, IqError>)>,
    closed: Option<Option<String>>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("jid", &self.core.jid().map(Jid::to_string))
            .finish()
    }
}

impl Client {
    /// Connects, negotiates (STARTTLS, SASL, bind) and returns once the session is
    /// established.
    pub fn connect(opts: ClientOptions) -> Result<Client, ClientError> {
        if opts.tls_config.is_none() && !matches!(opts.tls, TlsPolicy::Disabled) {
            return Err(ClientError::Tls(
                "no TLS configuration (set ClientOptions::tls_config, or tls: Disabled)".into(),
            ));
        }
        let name = opts
            .server_name
            .clone()
            .unwrap_or_else(|| opts.jid.domain().to_string());
        let server_name = ServerName::try_from(name.clone())
            .map_err(|e| ClientError::Tls(format!("invalid server name {name:?}: {e}")))?;
        let socket = TcpStream::connect(opts.addr.as_str())?;
        let _ = socket.set_nodelay(true);
        let clock = Clock::new();
        let core = elsinore_client::Client::new(
            ClientConfig {
                jid: opts.jid,
                password: opts.password,
                tls: opts.tls,
            },
            Options {
                iq_timeout: opts.timeout,
                ..opts.core
            },
            random_seed()?,
            clock.now(),
        );
        let mut client = Client {
            core,
            stream: Stream::Plain(socket),
            clock,
            tls_config: opts.tls_config,
            server_name,
            timeout: opts.timeout,
            buf: vec![0; READ_BUF],
            answers: Vec::new(),
            closed: None,
        };
        let deadline = client.deadline();
        while !client.core.is_established() {
            client.step(deadline)?;
        }
        Ok(client)
    }

    /// The full JID the server bound.
    pub fn jid(&self) -> Option<&Jid> {
        self.core.jid()
    }

    /// Sends a stanza.
    pub fn send(&mut self, stanza: &Element) -> Result<(), ClientError> {
        self.core
            .send(stanza)
            .map_err(|e| ClientError::Send(e.to_string()))?;
        self.flush()
    }

    /// Sends an iq get/set and blocks until its answer (an id is assigned if missing).
    pub fn iq(&mut self, iq: Element) -> Result<Element, ClientError> {
        let id = self
            .core
            .send_iq(iq, self.clock.now())
            .map_err(|e| ClientError::Send(e.to_string()))?;
        // The core times the request out itself; this deadline is a backstop.
        let deadline = self.deadline() + self.timeout;
        loop {
            if let Some(i) = self.answers.iter().position(|(a, _)| *a == id) {
                let (_, result) = self.answers.swap_remove(i);
                return result.map_err(ClientError::Iq);
            }
            self.step(deadline)?;
        }
    }

    /// XEP-0049: stores `payload` in private XML storage.
    pub fn private_set(&mut self, payload: Element) -> Result<(), ClientError> {
        self.iq(private::set_request(payload)).map(|_| ())
    }

    /// XEP-0049: what is stored under `name` in `ns` (the empty element if nothing).
    pub fn private_get(&mut self, name: &str, ns: &str) -> Result<Vec<Element>, ClientError> {
        let response = self.iq(private::get_request(name, ns))?;
        private::parse_get_response(&response)
            .map_err(|e| ClientError::UnexpectedResponse(e.to_string()))
    }

    /// XEP-0145: the account's annotations (none stored: empty). A bundle that does not
    /// parse strictly is [`ClientError::UnexpectedResponse`], so it is never overwritten.
    pub fn annotations_get(&mut self) -> Result<Annotations, ClientError> {
        let response = self.iq(annotations::get_request())?;
        annotations::parse_get_response(&response)
            .map_err(|e| ClientError::UnexpectedResponse(e.to_string()))
    }

    /// XEP-0145: add a note about `jid` or update its text (`cdate` kept, `mdate` now) and
    /// store the bundle; returns it as stored. Read-modify-write over XEP-0049.
    pub fn annotations_set_note(
        &mut self,
        jid: &BareJid,
        text: &str,
    ) -> Result<Annotations, ClientError> {
        let mut notes = self.annotations_get()?;
        notes
            .set_note(jid.clone(), text, unix_ms())
            .map_err(|e| ClientError::Send(e.to_string()))?;
        self.iq(annotations::set_request(&notes))?;
        Ok(notes)
    }

    /// XEP-0145: remove the note about `jid`; returns whether there was one.
    pub fn annotations_remove_note(&mut self, jid: &BareJid) -> Result<bool, ClientError> {
        let mut notes = self.annotations_get()?;
        if notes.remove(jid).is_none() {
            return Ok(false);
        }
        self.iq(annotations::set_request(&notes))?;
        Ok(true)
    }

    /// The next inbound stanza that is not an iq answer, waiting at most `wait`;
    /// `Ok(None)` if none came in time.
    pub fn recv(&mut self, wait: Duration) -> Result<Option<Element>, ClientError> {
        let deadline = self.clock.now() + wait;
        loop {
            if let Some(stanza) = self.core.recv() {
                return Ok(Some(stanza));
            }
            match self.step(deadline) {
                Err(ClientError::Timeout) => return Ok(None),
                other => other?,
            }
        }
    }

    /// Closes the stream and waits (bounded) for the server's close.
    pub fn close(mut self) -> Result<(), ClientError> {
        self.core.close(self.clock.now());
        let deadline = self.deadline();
        while self.closed.is_none() {
            match self.step(deadline) {
                Ok(()) => {}
                Err(ClientError::Closed { .. }) => break,
                Err(e) => return Err(e),
            }
        }
        if let Some(tcp) = self.stream.tcp() {
            let _ = tcp.shutdown(std::net::Shutdown::Both);
        }
        Ok(())
    }

    fn deadline(&self) -> Instant {
        self.clock.now() + self.timeout
    }

    /// Writes everything the core has for the socket.
    fn flush(&mut self) -> Result<(), ClientError> {
        while !self.core.pending_transmit().is_empty() {
            let n = self.stream.write(self.core.pending_transmit())?;
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::WriteZero).into());
            }
            self.core.advance_transmit(n);
        }
        self.stream.flush()?;
        Ok(())
    }

    /// One turn of the run loop: flush, handle events, then one read (or timeout) bounded
    /// by `deadline`.
    fn step(&mut self, deadline: Instant) -> Result<(), ClientError> {
        self.flush()?;
        // Events are handled before reading: a caller waiting for one returns at once.
        let mut handled = false;
        while let Some(event) = self.core.poll_event() {
            handled = true;
            match event {
                ClientEvent::UpgradeTls => {
                    self.flush()?;
                    self.start_tls()?;
                    self.core.handle_tls_ready(self.clock.now());
                    self.flush()?;
                }
                ClientEvent::Established { .. } => {}
                ClientEvent::IqResponse { id, result } => self.answers.push((id, result)),
                ClientEvent::Closed { error, .. } => self.closed = Some(error),
            }
        }
        if let Some(error) = &self.closed {
            return Err(ClientError::Closed {
                error: error.clone(),
            });
        }
        if handled {
            return Ok(());
        }
        let now = self.clock.now();
        if now >= deadline {
            return Err(ClientError::Timeout);
        }
        let wake = self
            .core
            .poll_timeout()
            .map_or(deadline, |t| t.min(deadline));
        if wake <= now {
            self.core.handle_timeout(now);
            return Ok(());
        }
        if !self.core.wants_read() {
            // Only when the caller never takes stanzas with `recv`: nothing to read into.
            return Err(ClientError::Send("inbound queue full; call recv".into()));
        }
        let wait = Duration::from_millis(wake.as_millis().saturating_sub(now.as_millis()));
        if let Some(tcp) = self.stream.tcp() {
            tcp.set_read_timeout(Some(wait.max(Duration::from_millis(1))))?;
        }
        match self.stream.read(&mut self.buf) {
            Ok(0) => self.core.handle_eof(self.clock.now()),
            // `n <= buf.len()` by `read`'s contract.
            Ok(n) => self.core.handle_input(&self.buf[..n], self.clock.now()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                self.core.handle_timeout(self.clock.now());
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => self.core.handle_eof(self.clock.now()),
        }
        Ok(())
    }

    fn start_tls(&mut self) -> Result<(), ClientError> {
        let config = self
            .tls_config
            .clone()
            .ok_or_else(|| ClientError::Tls("STARTTLS negotiated but not configured".into()))?;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(ClientError::Tls("TLS requested twice".into()));
        };
        tcp.set_read_timeout(Some(self.timeout))?;
        let conn = rustls::ClientConnection::new(config, self.server_name.clone())
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        while tls.conn.is_handshaking() {
            tls.conn
                .complete_io(&mut tls.sock)
                .map_err(|e| ClientError::Tls(e.to_string()))?;
        }
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }
}

/// Wall-clock milliseconds for XEP-0145 dates (the only wall-clock read of the client).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
