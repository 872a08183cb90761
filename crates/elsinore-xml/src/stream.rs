//! The incremental stream tokenizer: bytes in, stream header / top-level
//! elements / stream close out.
//!
//! The public face of [`crate::parser`], which does the work: see there for
//! how input is consumed. When [`StreamParser::parse`] returns an event, no
//! byte after that event has been consumed from the caller's slice; bytes are
//! only held internally inside an unfinished token, which is exactly what
//! `Ok(None)` ("need more data") reports. The tests check this with a stream
//! restart inside one slice.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use crate::error::XmlError;
use crate::parser::{Parser, RawSpec, Scratch};
use crate::raw::RawElement;
use crate::tree::{Attr, Element, XML_NS};

/// The XMPP stream namespace (`stream:` prefix).
pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";

/// Resource limits, enforced while parsing (before any tree is built).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XmlLimits {
    /// Maximum bytes of one top-level element (a stanza), counted on the wire
    /// from its `<` to its final `>`; also bounds the stream header.
    /// Default 256 KiB.
    pub max_element_bytes: usize,
    /// Maximum nesting depth; the stream root is depth 0, stanzas depth 1.
    /// Default 48.
    pub max_depth: usize,
    /// Maximum attributes on one element, namespace declarations included.
    /// Default 64.
    pub max_attributes: usize,
    /// Maximum bytes of a name or (decoded) attribute value; text is not
    /// bounded by it, only by `max_element_bytes`. Default 8192.
    pub max_token_length: usize,
}

impl Default for XmlLimits {
    fn default() -> Self {
        XmlLimits {
            max_element_bytes: 256 * 1024,
            max_depth: 48,
            max_attributes: 64,
            max_token_length: 8192,
        }
    }
}

/// What the stream parser reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum XmlEvent {
    /// The stream root's start tag. Reported for whatever the first element
    /// is, even if it is not `<stream:stream>` in [`STREAM_NS`]: the stream
    /// layer checks [`StreamHeader::is_stream`] and answers with
    /// `invalid-namespace` / `bad-format` itself.
    StreamOpen(StreamHeader),
    /// A complete top-level element (depth 1), namespaces resolved.
    Element(Element),
    /// A complete top-level element kept as received, for elements named by
    /// [`StreamParser::keep_raw`] (and only when self-contained; see [`RawElement`]).
    Raw(RawElement),
    /// The stream root's end tag (`</stream:stream>`).
    StreamClose,
}

/// The stream root's start tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHeader {
    /// Local name (`stream`).
    pub name: String,
    /// Resolved namespace ([`STREAM_NS`] for a proper header).
    pub ns: String,
    /// The default namespace declared on the header (`xmlns='jabber:client'`),
    /// i.e. the content namespace; `None` if none was declared.
    pub default_ns: Option<String>,
    /// Attributes (namespace declarations excluded), in document order.
    pub attrs: Vec<Attr>,
}

impl StreamHeader {
    /// A `<stream:stream>` header with the given content namespace.
    pub fn new(default_ns: impl Into<String>) -> Self {
        StreamHeader {
            name: "stream".to_owned(),
            ns: STREAM_NS.to_owned(),
            default_ns: Some(default_ns.into()),
            attrs: Vec::new(),
        }
    }

    /// Builder: set an unqualified attribute (`to`, `from`, `id`, `version`).
    #[must_use]
    pub fn with_attr(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_attr(name, value);
        self
    }

    /// Builder: set `xml:lang`.
    #[must_use]
    pub fn with_lang(mut self, lang: impl Into<String>) -> Self {
        set_attr_in(
            &mut self.attrs,
            XML_NS.to_owned(),
            "lang".to_owned(),
            lang.into(),
        );
        self
    }

    /// Set (or replace) an unqualified attribute.
    pub fn set_attr(&mut self, name: impl Into<String>, value: impl Into<String>) {
        set_attr_in(&mut self.attrs, String::new(), name.into(), value.into());
    }

    /// Value of an unqualified attribute.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns.is_empty() && a.name == name)
            .map(|a| a.value.as_str())
    }

    /// The `xml:lang` attribute, if present.
    pub fn lang(&self) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.ns == XML_NS && a.name == "lang")
            .map(|a| a.value.as_str())
    }

    /// Whether this is `<stream>` in [`STREAM_NS`].
    pub fn is_stream(&self) -> bool {
        self.name == "stream" && self.ns == STREAM_NS
    }

    /// Write `<?xml version='1.0'?><stream:stream xmlns='…' xmlns:stream='…' …>`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"<?xml version='1.0'?><stream:");
        out.extend_from_slice(self.name.as_bytes());
        if let Some(ns) = &self.default_ns {
            out.extend_from_slice(b" xmlns='");
            crate::writer::escape_attr(out, ns);
            out.push(b'\'');
        }
        out.extend_from_slice(b" xmlns:stream='");
        crate::writer::escape_attr(out, &self.ns);
        out.push(b'\'');
        crate::writer::write_attrs(out, &self.attrs);
        out.push(b'>');
    }
}

fn set_attr_in(attrs: &mut Vec<Attr>, ns: String, name: String, value: String) {
    match attrs.iter_mut().find(|a| a.ns == ns && a.name == name) {
        Some(a) => a.value = value,
        None => attrs.push(Attr { ns, name, value }),
    }
}

/// Write `</stream:stream>`.
pub fn write_stream_close(out: &mut Vec<u8>) {
    out.extend_from_slice(b"</stream:stream>");
}

/// Incremental XMPP stream parser; one per stream, [`reset`](Self::reset) on
/// stream restart.
///
/// ```
/// use elsinore_xml::{StreamParser, XmlEvent, XmlLimits};
/// let mut p = StreamParser::new(XmlLimits::default());
/// let mut buf: &[u8] = b"<stream:stream xmlns='jabber:client' \
///     xmlns:stream='http://etherx.jabber.org/streams'><presence/>";
/// assert!(matches!(p.parse(&mut buf), Ok(Some(XmlEvent::StreamOpen(_)))));
/// assert!(matches!(p.parse(&mut buf), Ok(Some(XmlEvent::Element(_)))));
/// assert_eq!(p.parse(&mut buf), Ok(None));
/// assert!(buf.is_empty());
/// ```
#[derive(Debug)]
pub struct StreamParser {
    core: Parser,
}

impl StreamParser {
    /// A parser for a new stream.
    pub fn new(limits: XmlLimits) -> Self {
        StreamParser {
            core: Parser::new(limits, 1),
        }
    }

    /// Consume bytes from the front of `buf` until one event completes, and
    /// return it; the bytes after the event stay in `buf`. `Ok(None)`: all of
    /// `buf` was consumed and more input is needed.
    pub fn parse(&mut self, buf: &mut &[u8]) -> Result<Option<XmlEvent>, XmlError> {
        self.core.next(buf, false)
    }

    /// The input ended (connection closed). `Ok(None)` if the stream was
    /// closed properly; [`XmlError::UnexpectedEof`] otherwise.
    pub fn handle_eof(&mut self) -> Result<Option<XmlEvent>, XmlError> {
        if let Some(e) = &self.core.error {
            return Err(XmlError::clone(e));
        }
        if self.core.closed {
            Ok(None)
        } else {
            Err(self.core.fail(XmlError::UnexpectedEof))
        }
    }

    /// Start over with a fresh parser (same limits), e.g. for a stream
    /// restart after STARTTLS or SASL success.
    pub fn reset(&mut self) {
        self.core = Parser::new(self.core.limits, 1);
    }

    /// Frees the scratch memory kept from earlier input (attribute and text buffers, an
    /// empty element stack or unfinished-token buffer), so that a parser waiting between
    /// stanzas holds little; the next input allocates what it needs again. Parser state
    /// is untouched: any split of the input still gives the same events.
    pub fn release_scratch(&mut self) {
        self.core.release_scratch();
    }

    /// Lends `scratch`'s buffers to this parser for the calls to [`StreamParser::parse`]
    /// until [`StreamParser::return_scratch`]. One scratch shared by many parsers, one at
    /// a time, gives the speed of kept buffers and the footprint of released ones.
    pub fn borrow_scratch(&mut self, scratch: &mut Scratch) {
        self.core.borrow_scratch(scratch);
    }

    /// Gives the buffers back to `scratch`, leaving the parser in the state of
    /// [`StreamParser::release_scratch`]. Parser state is untouched.
    pub fn return_scratch(&mut self, scratch: &mut Scratch) {
        self.core.return_scratch(scratch);
    }

    /// From the next top-level element on, report the elements `spec` names as
    /// [`XmlEvent::Raw`] instead of building their tree (`None`: trees again). A
    /// [`reset`](Self::reset) turns it off.
    pub fn keep_raw(&mut self, spec: Option<&'static RawSpec>) {
        self.core.keep_raw(spec);
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> &XmlLimits {
        &self.core.limits
    }

    /// Whether the stream root has been closed.
    pub fn is_closed(&self) -> bool {
        self.core.closed
    }
}

impl Element {
    /// Parse one standalone element (an optional XML declaration and
    /// surrounding whitespace are allowed), with default limits.
    pub fn parse(bytes: &[u8]) -> Result<Element, XmlError> {
        Self::parse_with_limits(bytes, XmlLimits::default())
    }

    /// [`Element::parse`] with explicit limits (depth counts from this element).
    pub fn parse_with_limits(bytes: &[u8], limits: XmlLimits) -> Result<Element, XmlError> {
        let mut core = Parser::new(limits, 0);
        let mut buf = bytes;
        match core.next(&mut buf, true)? {
            Some(XmlEvent::Element(e)) => {
                core.finish(&mut buf)?;
                Ok(e)
            }
            // With tree depth 0 the root becomes an element, never a header.
            Some(_) => Err(XmlError::NotWellFormed("unexpected event".to_owned())),
            None => Err(XmlError::UnexpectedEof),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every event of `input` fed in chunks of `chunk` bytes, releasing the scratch
    /// memory after each chunk when `release`.
    fn events_of(input: &[u8], chunk: usize, release: bool) -> Vec<XmlEvent> {
        let mut p = StreamParser::new(XmlLimits::default());
        let mut events = Vec::new();
        for mut piece in input.chunks(chunk) {
            while let Some(ev) = p.parse(&mut piece).expect("well-formed test input") {
                events.push(ev);
            }
            if release {
                p.release_scratch();
            }
        }
        events
    }

    #[test]
    fn releasing_scratch_between_inputs_changes_no_event() {
        let input = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>\
            <message to='a@example.com' id='m1' xml:lang='en'><body>hi &amp; bye</body>\
            <x xmlns='urn:test' a='1' b='two'>text<y/></x></message>  \
            <presence><status>away</status></presence></stream:stream>";
        let whole = events_of(input, input.len(), false);
        assert!(whole.len() >= 4, "{whole:?}");
        for chunk in [1, 2, 3, 7, 16, 64] {
            assert_eq!(events_of(input, chunk, true), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn a_scratch_shared_by_interleaved_parsers_changes_no_event() {
        // Two streams fed alternately through one lent scratch, split everywhere (inside
        // tags, attribute values, text and references): each gets the events it gets alone.
        let a: &[u8] = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0'>\
            <message to='a@example.com' id='m1'><body>hi &amp; bye</body></message>\
            <iq type='get' id='q'><query xmlns='jabber:iq:roster'/></iq></stream:stream>";
        let b: &[u8] = b"<stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>\
            <presence><status>a much longer status text, longer than the other's</status>\
            <x xmlns='urn:test' one='1' two='2' three='3'/></presence></stream:stream>";
        let alone_a = events_of(a, a.len(), false);
        let alone_b = events_of(b, b.len(), false);
        for chunk in [1, 2, 5, 13] {
            let mut scratch = Scratch::new();
            let (mut pa, mut pb) = (
                StreamParser::new(XmlLimits::default()),
                StreamParser::new(XmlLimits::default()),
            );
            let (mut ea, mut eb) = (Vec::new(), Vec::new());
            let mut ca = a.chunks(chunk);
            let mut cb = b.chunks(chunk);
            loop {
                let (na, nb) = (ca.next(), cb.next());
                if na.is_none() && nb.is_none() {
                    break;
                }
                for (p, piece, out) in [(&mut pa, na, &mut ea), (&mut pb, nb, &mut eb)] {
                    let Some(mut piece) = piece else { continue };
                    p.borrow_scratch(&mut scratch);
                    while let Some(ev) = p.parse(&mut piece).expect("well-formed") {
                        out.push(ev);
                    }
                    p.return_scratch(&mut scratch);
                }
            }
            assert_eq!(ea, alone_a, "chunk {chunk}");
            assert_eq!(eb, alone_b, "chunk {chunk}");
        }
    }

    #[test]
    fn limits_defaults_are_documented_values() {
        let l = XmlLimits::default();
        assert_eq!(
            (
                l.max_element_bytes,
                l.max_depth,
                l.max_attributes,
                l.max_token_length
            ),
            (262_144, 48, 64, 8192)
        );
    }
}
