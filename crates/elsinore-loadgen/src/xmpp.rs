//! A minimal raw c2s client: plaintext TCP, stream parsing with `elsinore_xml::StreamParser`,
//! SASL with `elsinore_sasl::ClientSession`, optional in-band registration, resource binding.
//!
//! It writes stanzas as preformatted strings (every value we put in them is our own ASCII,
//! escaped where it could matter) so the client side stays cheap next to the server it drives.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use elsinore_sasl::{ClientSession, Mechanism};
use elsinore_xml::{Element, StreamParser, XmlEvent, XmlLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::time::timeout;

const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
const NS_REGISTER: &str = "jabber:iq:register";
const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// Read buffer per connection.
const READ_BUF: usize = 16 * 1024;
/// Stanzas skipped while waiting for one reply before we give up on the server.
const MAX_SKIPPED: usize = 10_000;

/// Which SASL mechanism to log in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    /// PLAIN (the server computes PBKDF2 itself: the expensive side is the server's).
    Plain,
    /// The strongest SCRAM the server offers.
    Scram,
}

/// How to log in.
#[derive(Debug, Clone)]
pub struct LoginSpec {
    /// Server address (loopback).
    pub addr: SocketAddr,
    /// XMPP domain.
    pub domain: String,
    /// Local part of the account.
    pub user: String,
    /// Password.
    pub password: String,
    /// Resource to bind.
    pub resource: String,
    /// Mechanism preference.
    pub mech: Mech,
    /// Register the account in band first (an existing account is fine).
    pub register: bool,
    /// Bound on every single wait for the server.
    pub io_timeout: Duration,
}

/// The reading side of a connection: socket half, parser and unparsed bytes.
pub struct Reader {
    rd: OwnedReadHalf,
    parser: StreamParser,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
    io_timeout: Duration,
}

impl Reader {
    /// The next stream-level event, waiting at most the I/O timeout for bytes.
    pub async fn event(&mut self) -> Result<XmlEvent> {
        loop {
            if self.start < self.end {
                let mut rest = &self.buf[self.start..self.end];
                let r = self.parser.parse(&mut rest);
                self.start = self.end - rest.len();
                match r {
                    Ok(Some(ev)) => return Ok(ev),
                    Ok(None) => {}
                    Err(e) => bail!("server sent bad XML: {e:?}"),
                }
            }
            self.start = 0;
            self.end = 0;
            let n = timeout(self.io_timeout, self.rd.read(&mut self.buf))
                .await
                .map_err(|_| anyhow!("server silent for {:?}", self.io_timeout))??;
            if n == 0 {
                bail!("server closed the connection");
            }
            self.end = n;
        }
    }

    /// The next top-level element; a stream close is an error.
    pub async fn element(&mut self) -> Result<Element> {
        match self.event().await? {
            XmlEvent::Element(el) => Ok(el),
            // Never asked for (no `keep_raw`), but a tree all the same.
            XmlEvent::Raw(raw) => Ok(raw.to_element()?),
            XmlEvent::StreamClose => bail!("server closed the stream"),
            XmlEvent::StreamOpen(_) => bail!("unexpected stream header"),
        }
    }

    /// Waits for the iq reply with this id; other stanzas are passed to `other`.
    pub async fn iq_reply(&mut self, id: &str, mut other: impl FnMut(&Element)) -> Result<Element> {
        for _ in 0..MAX_SKIPPED {
            let el = self.element().await?;
            if el.name == "iq"
                && el.attr("id") == Some(id)
                && matches!(el.attr("type"), Some("result" | "error"))
            {
                return Ok(el);
            }
            other(&el);
        }
        bail!("no reply to iq {id} after {MAX_SKIPPED} other stanzas")
    }

    /// Expects a stream header, then the features element.
    async fn header_and_features(&mut self) -> Result<Element> {
        match self.event().await? {
            XmlEvent::StreamOpen(h) if h.is_stream() => {}
            other => bail!("expected a stream header, got {other:?}"),
        }
        let features = self.element().await?;
        if features.name != "features" {
            bail!("expected stream features, got <{}>", features.name);
        }
        Ok(features)
    }

    /// Reads until the server closes the stream or the socket, bounded by the I/O timeout.
    pub async fn drain_to_close(&mut self) {
        for _ in 0..MAX_SKIPPED {
            match self.event().await {
                Ok(XmlEvent::StreamClose) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }
}

/// A bound session, split into its reading and writing halves.
pub struct Session {
    /// Reading half.
    pub rd: Reader,
    /// Writing half.
    pub wr: OwnedWriteHalf,
    /// The full JID the server bound.
    pub jid: String,
}

impl Session {
    /// Sends raw bytes.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<()> {
        send(&mut self.wr, bytes, self.rd.io_timeout).await
    }

    /// Closes the stream politely and waits (bounded) for the server to close its side.
    pub async fn close(mut self) {
        if self.send(b"</stream:stream>").await.is_ok() {
            self.rd.drain_to_close().await;
        }
    }
}

/// Writes all of `bytes` within `limit`.
pub async fn send(wr: &mut OwnedWriteHalf, bytes: &[u8], limit: Duration) -> Result<()> {
    timeout(limit, wr.write_all(bytes))
        .await
        .map_err(|_| anyhow!("write blocked for {limit:?}"))?
        .context("write")
}

fn stream_header(domain: &str) -> Vec<u8> {
    format!(
        "<?xml version='1.0'?><stream:stream to='{}' version='1.0' xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams'>",
        escape(domain)
    )
    .into_bytes()
}

/// Escapes text for an attribute value or character data.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// A fresh SCRAM client nonce.
fn nonce() -> Result<String> {
    let mut raw = [0u8; 18];
    getrandom::fill(&mut raw).map_err(|e| anyhow!("getrandom: {e}"))?;
    Ok(B64.encode(raw))
}

/// Connects, optionally registers, authenticates and binds.
pub async fn login(spec: &LoginSpec) -> Result<Session> {
    let t = spec.io_timeout;
    let stream = timeout(t, TcpStream::connect(spec.addr))
        .await
        .map_err(|_| anyhow!("connect timed out"))?
        .with_context(|| format!("connect {}", spec.addr))?;
    stream.set_nodelay(true)?;
    let (rd, mut wr) = stream.into_split();
    let mut rd = Reader {
        rd,
        parser: StreamParser::new(XmlLimits::default()),
        buf: vec![0u8; READ_BUF].into_boxed_slice(),
        start: 0,
        end: 0,
        io_timeout: t,
    };
    send(&mut wr, &stream_header(&spec.domain), t).await?;
    let features = rd.header_and_features().await?;

    if spec.register {
        let iq = format!(
            "<iq type='set' id='reg'><query xmlns='{NS_REGISTER}'><username>{}</username>\
             <password>{}</password></query></iq>",
            escape(&spec.user),
            escape(&spec.password)
        );
        send(&mut wr, iq.as_bytes(), t).await?;
        let reply = rd.iq_reply("reg", |_| {}).await?;
        if reply.attr("type") == Some("error") && !has_condition(&reply, "conflict") {
            bail!("registration of {} refused: {}", spec.user, brief(&reply));
        }
    }

    let offered: Vec<String> = features
        .get_child("mechanisms", NS_SASL)
        .map(|m| m.elements().map(Element::text).collect())
        .unwrap_or_default();
    let offered_ref: Vec<&str> = offered.iter().map(String::as_str).collect();
    let mech = match spec.mech {
        Mech::Plain if offered_ref.contains(&"PLAIN") => Mechanism::Plain,
        Mech::Plain => bail!("server does not offer PLAIN (offers {offered:?})"),
        Mech::Scram => elsinore_sasl::client_preference(&offered_ref)
            .filter(|m| *m != Mechanism::Plain)
            .with_context(|| format!("server offers no SCRAM (offers {offered:?})"))?,
    };
    let mut sasl = ClientSession::new(mech, &spec.user, &spec.password, None, &nonce()?)
        .map_err(|e| anyhow!("sasl client: {e:?}"))?;
    let initial = sasl.initial_response();
    let auth = format!(
        "<auth xmlns='{NS_SASL}' mechanism='{}'>{}</auth>",
        mech.name(),
        if initial.is_empty() {
            "=".to_string()
        } else {
            B64.encode(&initial)
        }
    );
    send(&mut wr, auth.as_bytes(), t).await?;
    // Bounded: SCRAM needs one challenge, PLAIN none.
    for _ in 0..4 {
        let el = rd.element().await?;
        if el.ns != NS_SASL {
            continue;
        }
        match el.name.as_str() {
            "challenge" => {
                let data = decode_b64(&el.text())?;
                let resp = sasl
                    .challenge(&data)
                    .map_err(|e| anyhow!("sasl challenge: {e:?}"))?;
                let out = format!(
                    "<response xmlns='{NS_SASL}'>{}</response>",
                    B64.encode(resp)
                );
                send(&mut wr, out.as_bytes(), t).await?;
            }
            "success" => {
                let text = el.text();
                let additional = if text.is_empty() || text == "=" {
                    None
                } else {
                    Some(decode_b64(&text)?)
                };
                sasl.success(additional.as_deref())
                    .map_err(|e| anyhow!("sasl success: {e:?}"))?;
                return bind(rd, wr, spec).await;
            }
            "failure" => bail!("authentication of {} failed: {}", spec.user, brief(&el)),
            other => bail!("unexpected SASL element <{other}>"),
        }
    }
    bail!("SASL exchange did not finish")
}

/// Restarts the stream after SASL success and binds the resource.
async fn bind(mut rd: Reader, mut wr: OwnedWriteHalf, spec: &LoginSpec) -> Result<Session> {
    let t = spec.io_timeout;
    // The parser stopped right after <success/>: restart it for the new stream.
    rd.parser.reset();
    send(&mut wr, &stream_header(&spec.domain), t).await?;
    let features = rd.header_and_features().await?;
    if features.get_child("bind", NS_BIND).is_none() {
        bail!("no resource binding offered after authentication");
    }
    let iq = format!(
        "<iq type='set' id='bind'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
        escape(&spec.resource)
    );
    send(&mut wr, iq.as_bytes(), t).await?;
    let reply = rd.iq_reply("bind", |_| {}).await?;
    let jid = reply
        .get_child("bind", NS_BIND)
        .and_then(|b| b.elements().find(|e| e.name == "jid"))
        .map(Element::text)
        .with_context(|| format!("bind failed: {}", brief(&reply)))?;
    // RFC 3921 sessions: only where the server still requires one.
    if let Some(s) = features.get_child("session", NS_SESSION)
        && !s.elements().any(|e| e.name == "optional")
    {
        let iq = format!("<iq type='set' id='sess'><session xmlns='{NS_SESSION}'/></iq>");
        send(&mut wr, iq.as_bytes(), t).await?;
        let reply = rd.iq_reply("sess", |_| {}).await?;
        if reply.attr("type") != Some("result") {
            bail!("session establishment failed: {}", brief(&reply));
        }
    }
    Ok(Session { rd, wr, jid })
}

fn decode_b64(text: &str) -> Result<Vec<u8>> {
    let text = text.trim();
    if text == "=" {
        return Ok(Vec::new());
    }
    B64.decode(text)
        .map_err(|e| anyhow!("bad base64 from server: {e:?}"))
}

/// Whether an error stanza carries this defined condition.
pub fn has_condition(stanza: &Element, condition: &str) -> bool {
    stanza
        .elements()
        .filter(|e| e.name == "error")
        .any(|e| e.get_child(condition, NS_STANZAS).is_some())
}

/// A one-line description of a failure element (its first condition), for messages.
pub fn brief(el: &Element) -> String {
    let cond = el
        .elements()
        .find(|e| e.name == "error")
        .and_then(|e| {
            e.elements()
                .find(|c| c.ns == NS_STANZAS && c.name != "text")
        })
        .or_else(|| el.elements().next())
        .map(|c| c.name.clone())
        .unwrap_or_default();
    format!(
        "<{} type={:?}> {cond}",
        el.name,
        el.attr("type").unwrap_or("")
    )
}
