//! elsinore client driver over [`embedded_io_async`] `Read + Write`: `no_std` + `alloc`,
//! runtime-agnostic (embassy, RTIC, a host executor, `block_on`).
//!
//! [`Client`] owns a transport and an [`elsinore_client::Client`]; it moves bytes between
//! them and passes the time it is given. Every protocol decision is the core's.
//!
//! # Buffers and time
//!
//! The caller supplies the receive buffer (`&mut [u8]`, a few hundred bytes is enough: the
//! core parses incrementally) and a clock (`Fn() -> Instant`, e.g. from `embassy_time`).
//! The core's own deadlines (negotiation, iq timeouts) are checked whenever the driver wakes
//! up; a transport `read` that never returns cannot be interrupted from here, so wrap calls
//! in your executor's timeout (`embassy_time::with_timeout`) for a hard bound.
//!
//! # TLS
//!
//! Out of scope: this driver speaks plaintext XMPP, so use it over a link you trust (a
//! local network segment, a VPN, a TLS-terminating transport you wrap as `Read + Write`) and
//! configure the server with `allow_plaintext_auth`. The client is created with
//! `TlsPolicy::Disabled`; a server that requires STARTTLS ends the stream.
//!
//! # Cancel safety
//!
//! The methods are **not** cancel-safe: dropping a future mid-call can leave a stanza
//! half-written on the transport (the core only forgets bytes the transport acknowledged),
//! after which the stream is corrupt. Cancel by closing the transport, not by dropping a
//! pending call. Reads are safe to cancel: the core only sees bytes `read` returned.
//!
//! ```
//! use elsinore_embedded::{Client, Error};
//! use elsinore_stream::Instant;
//!
//! /// A transport whose peer hung up at once.
//! struct Gone;
//! impl embedded_io_async::ErrorType for Gone {
//!     type Error = embedded_io_async::ErrorKind;
//! }
//! impl embedded_io_async::Read for Gone {
//!     async fn read(&mut self, _: &mut [u8]) -> Result<usize, Self::Error> {
//!         Ok(0)
//!     }
//! }
//! impl embedded_io_async::Write for Gone {
//!     async fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
//!         Ok(buf.len())
//!     }
//!     async fn flush(&mut self) -> Result<(), Self::Error> {
//!         Ok(())
//!     }
//! }
//!
//! let mut buf = [0u8; 512];
//! let jid = "sensor@home.lan".parse().unwrap();
//! let mut client = Client::new(Gone, &mut buf, jid, "s3cret", [7; 32], || Instant::from_millis(0));
//! let result = embassy_futures::block_on(client.connect());
//! assert!(matches!(result, Err(Error::Closed { .. })));
//! ```

#![no_std]
#![warn(missing_docs)]

extern crate alloc;

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use elsinore_client::{ClientEvent, IqError, IqId, Options, private};
use elsinore_jid::Jid;
use elsinore_stream::{ClientConfig, Instant, TlsPolicy};
use elsinore_xml::Element;
use embedded_io_async::{Read, Write};

/// Why a call failed.
#[derive(Debug)]
pub enum Error<E> {
    /// The transport failed.
    Io(E),
    /// The stream ended; `error` is why (e.g. SASL `not-authorized`), if known.
    Closed {
        /// What the core reported.
        error: Option<String>,
    },
    /// The core refused the request (not established, too many outstanding, …).
    Send(String),
    /// The iq was answered with an error, or not in time.
    Iq(IqError),
    /// The answer did not have the expected shape.
    UnexpectedResponse(String),
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(e) => write!(f, "transport error: {e:?}"),
            Error::Closed { error: Some(e) } => write!(f, "stream closed: {e}"),
            Error::Closed { error: None } => f.write_str("stream closed"),
            Error::Send(e) => write!(f, "cannot send: {e}"),
            Error::Iq(e) => write!(f, "{e}"),
            Error::UnexpectedResponse(e) => write!(f, "unexpected response: {e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

/// A plaintext XMPP client over an `embedded-io-async` transport (see the crate docs).
pub struct Client<'b, T, C> {
    io: T,
    buf: &'b mut [u8],
    clock: C,
    core: elsinore_client::Client,
    /// Answers that arrived while waiting for another.
    answers: Vec<(IqId, Result<Element, IqError>)>,
    closed: Option<Option<String>>,
}

impl<'b, T, C> Client<'b, T, C>
where
    T: Read + Write,
    C: Fn() -> Instant,
{
    /// A client for `jid` over `io` (already connected), reading into `buf`. `seed` must be
    /// fresh randomness (from a hardware RNG): SASL nonces derive from it.
    pub fn new(
        io: T,
        buf: &'b mut [u8],
        jid: Jid,
        password: &str,
        seed: [u8; 32],
        clock: C,
    ) -> Self {
        Self::with_options(io, buf, jid, password, seed, clock, Options::default())
    }

    /// [`Client::new`] with the core's options (queue sizes, iq timeout).
    pub fn with_options(
        io: T,
        buf: &'b mut [u8],
        jid: Jid,
        password: &str,
        seed: [u8; 32],
        clock: C,
        options: Options,
    ) -> Self {
        let config = ClientConfig {
            jid,
            password: password.into(),
            tls: TlsPolicy::Disabled,
        };
        let core = elsinore_client::Client::new(config, options, seed, clock());
        Client {
            io,
            buf,
            clock,
            core,
            answers: Vec::new(),
            closed: None,
        }
    }

    /// Negotiates (SASL, bind) until the session is established; the bound JID.
    pub async fn connect(&mut self) -> Result<Jid, Error<T::Error>> {
        loop {
            if let Some(jid) = self.core.jid().filter(|_| self.core.is_established()) {
                return Ok(jid.clone());
            }
            self.step().await?;
        }
    }

    /// The full JID of the session, once established.
    pub fn jid(&self) -> Option<&Jid> {
        self.core.jid()
    }

    /// Sends a stanza.
    pub async fn send(&mut self, stanza: &Element) -> Result<(), Error<T::Error>> {
        self.core
            .send(stanza)
            .map_err(|e| Error::Send(e.to_string()))?;
        self.flush().await
    }

    /// Sends an iq get/set and waits for its answer.
    pub async fn iq(&mut self, iq: Element) -> Result<Element, Error<T::Error>> {
        let id = self
            .core
            .send_iq(iq, (self.clock)())
            .map_err(|e| Error::Send(e.to_string()))?;
        loop {
            if let Some(i) = self.answers.iter().position(|(a, _)| *a == id) {
                let (_, result) = self.answers.swap_remove(i);
                return result.map_err(Error::Iq);
            }
            self.step().await?;
        }
    }

    /// XEP-0049: stores `payload` in private XML storage.
    pub async fn private_set(&mut self, payload: Element) -> Result<(), Error<T::Error>> {
        self.iq(private::set_request(payload)).await.map(|_| ())
    }

    /// XEP-0049: what is stored under `name` in `ns` (the empty element if nothing).
    pub async fn private_get(
        &mut self,
        name: &str,
        ns: &str,
    ) -> Result<Vec<Element>, Error<T::Error>> {
        let response = self.iq(private::get_request(name, ns)).await?;
        private::parse_get_response(&response).map_err(|e| Error::UnexpectedResponse(e.to_string()))
    }

    /// The next inbound stanza that is not an iq answer.
    pub async fn recv(&mut self) -> Result<Element, Error<T::Error>> {
        loop {
            if let Some(stanza) = self.core.recv() {
                return Ok(stanza);
            }
            self.step().await?;
        }
    }

    /// Closes the stream and waits for the server's close; returns the transport.
    pub async fn close(mut self) -> Result<T, Error<T::Error>> {
        self.core.close((self.clock)());
        while self.closed.is_none() {
            match self.step().await {
                Ok(()) | Err(Error::Closed { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.io)
    }

    async fn flush(&mut self) -> Result<(), Error<T::Error>> {
        while !self.core.pending_transmit().is_empty() {
            let n = self
                .io
                .write(self.core.pending_transmit())
                .await
                .map_err(Error::Io)?;
            if n == 0 {
                // The transport accepts nothing more: treat it as gone.
                self.core.handle_eof((self.clock)());
                break;
            }
            self.core.advance_transmit(n);
        }
        self.io.flush().await.map_err(Error::Io)
    }

    /// One turn of the run loop: flush, handle events, one read.
    async fn step(&mut self) -> Result<(), Error<T::Error>> {
        self.flush().await?;
        // Events are handled before reading: a caller waiting for one returns at once.
        let mut handled = false;
        while let Some(event) = self.core.poll_event() {
            handled = true;
            match event {
                // Never offered to a `TlsPolicy::Disabled` client; if it were, fail closed.
                ClientEvent::UpgradeTls => self.core.handle_eof((self.clock)()),
                ClientEvent::Established { .. } => {}
                ClientEvent::IqResponse { id, result } => self.answers.push((id, result)),
                ClientEvent::Closed { error, .. } => self.closed = Some(error),
            }
        }
        if let Some(error) = &self.closed {
            return Err(Error::Closed {
                error: error.clone(),
            });
        }
        if handled {
            return Ok(());
        }
        let now = (self.clock)();
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.core.handle_timeout(now);
            return Ok(());
        }
        if !self.core.wants_read() {
            return Err(Error::Send("inbound queue full; call recv".into()));
        }
        let n = self.io.read(self.buf).await.map_err(Error::Io)?;
        let now = (self.clock)();
        match self.buf.get(..n) {
            Some(bytes) if n > 0 => self.core.handle_input(bytes, now),
            _ => self.core.handle_eof(now),
        }
        Ok(())
    }
}
