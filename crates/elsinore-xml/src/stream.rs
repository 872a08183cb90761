//! The incremental stream tokenizer: bytes in, stream header / top-level
//! elements / stream close out.
//!
//! Built on [`rxml::RawParser`] plus our own namespace resolution, so that the
//! stream header's default namespace (`xmlns='jabber:client'`) is visible and
//! every limit is enforced on raw events, before anything is resolved or built.
//!
//! # Where rxml stops
//!
//! rxml's lexer returns as soon as a token is complete and its parser as soon
//! as an event is queued; the token that ends an element is its final `>`.
//! So when [`StreamParser::parse`] returns an event, no byte after that event
//! has been consumed from the caller's slice, and no byte is held inside rxml
//! (its event queue is empty after an element end, the last event of its
//! token). Bytes are only held internally *inside* an unfinished token, which
//! is exactly what `Ok(None)` ("need more data") reports. The tests check this
//! with a stream restart inside one slice.

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use rxml::error::EndOrError;
use rxml::{NcName, Options, Parse, RawEvent, RawParser, WithOptions};

use crate::error::{Limit, XmlError};
use crate::tree::{Attr, Element, Node, XML_NS};

/// The XMPP stream namespace (`stream:` prefix).
pub const STREAM_NS: &str = "http://etherx.jabber.org/streams";

/// The namespace of namespace declarations; no element or attribute may be in it.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

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
    /// Maximum bytes of a name or attribute value (longer text is split, not
    /// rejected). Default 8192. rxml reserves buffers of about this size per
    /// parser, so keep it modest.
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
    core: Core,
}

impl StreamParser {
    /// A parser for a new stream.
    pub fn new(limits: XmlLimits) -> Self {
        StreamParser {
            core: Core::new(limits, 1),
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
            return Err(e.clone());
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
        self.core = Core::new(self.core.limits, 1);
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
        let mut core = Core::new(limits, 0);
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

/// An element start tag being read (attributes arrive one event at a time).
#[derive(Debug)]
struct Head {
    prefix: Option<NcName>,
    local: NcName,
    attrs: Vec<(Option<NcName>, NcName, String)>,
}

/// In-scope namespace declarations: a flat list plus one mark per open element.
#[derive(Debug, Default)]
struct Scopes {
    decls: Vec<(Option<String>, String)>,
    marks: Vec<usize>,
}

impl Scopes {
    fn open(&mut self) {
        self.marks.push(self.decls.len());
    }

    fn close(&mut self) {
        if let Some(m) = self.marks.pop() {
            self.decls.truncate(m);
        }
    }

    /// Namespace bound to `prefix` (`None` = default namespace, `""` if unbound).
    fn resolve(&self, prefix: Option<&str>) -> Option<&str> {
        if prefix == Some("xml") {
            return Some(XML_NS);
        }
        match self
            .decls
            .iter()
            .rev()
            .find(|(p, _)| p.as_deref() == prefix)
        {
            Some((_, uri)) => Some(uri),
            None if prefix.is_none() => Some(""),
            None => None,
        }
    }
}

#[derive(Debug)]
struct Core {
    limits: XmlLimits,
    raw: RawParser,
    /// Depth at which elements become trees: 1 for streams, 0 for documents.
    tree_depth: usize,
    error: Option<XmlError>,
    /// The root element has been closed.
    closed: bool,
    /// Number of open elements.
    depth: usize,
    head: Option<Head>,
    scopes: Scopes,
    /// Elements under construction, outermost first.
    stack: Vec<Element>,
    /// Wire bytes of the current top-level element (or stream header).
    element_bytes: usize,
}

impl Core {
    fn new(limits: XmlLimits, tree_depth: usize) -> Self {
        let options = Options {
            max_token_length: limits.max_token_length,
            ..Options::default()
        };
        Core {
            limits,
            raw: RawParser::with_options(options),
            tree_depth,
            error: None,
            closed: false,
            depth: 0,
            head: None,
            scopes: Scopes::default(),
            stack: Vec::new(),
            element_bytes: 0,
        }
    }

    fn fail(&mut self, e: XmlError) -> XmlError {
        self.error = Some(e.clone());
        e
    }

    fn next(&mut self, buf: &mut &[u8], at_eof: bool) -> Result<Option<XmlEvent>, XmlError> {
        if let Some(e) = &self.error {
            return Err(e.clone());
        }
        loop {
            match self.raw.parse(buf, at_eof) {
                Ok(Some(ev)) => match self.step(ev) {
                    Ok(Some(out)) => return Ok(Some(out)),
                    Ok(None) => {}
                    Err(e) => return Err(self.fail(e)),
                },
                // End of document (only with `at_eof`) or need more data.
                Ok(None) | Err(EndOrError::NeedMoreData) => return Ok(None),
                Err(EndOrError::Error(e)) => return Err(self.fail(XmlError::from_rxml(e))),
            }
        }
    }

    /// After the root closed in document mode: only whitespace may follow.
    fn finish(&mut self, buf: &mut &[u8]) -> Result<(), XmlError> {
        match self.raw.parse(buf, true) {
            Ok(None) => Ok(()),
            Ok(Some(_)) => Err(self.fail(XmlError::NotWellFormed(
                "content after the root element".to_owned(),
            ))),
            Err(EndOrError::NeedMoreData) => Err(self.fail(XmlError::UnexpectedEof)),
            Err(EndOrError::Error(e)) => Err(self.fail(XmlError::from_rxml(e))),
        }
    }

    fn count(&mut self, len: usize) -> Result<(), XmlError> {
        self.element_bytes = self.element_bytes.saturating_add(len);
        if self.element_bytes > self.limits.max_element_bytes {
            return Err(XmlError::LimitExceeded(Limit::ElementBytes));
        }
        Ok(())
    }

    fn step(&mut self, ev: RawEvent) -> Result<Option<XmlEvent>, XmlError> {
        match ev {
            RawEvent::XmlDeclaration(..) => Ok(None),
            RawEvent::ElementHeadOpen(m, (prefix, local)) => {
                // The new element's depth is the number of open elements.
                if self.depth > self.limits.max_depth {
                    return Err(XmlError::LimitExceeded(Limit::Depth));
                }
                if self.depth == 0 || self.depth == self.tree_depth {
                    self.element_bytes = 0;
                }
                self.count(m.len())?;
                self.head = Some(Head {
                    prefix,
                    local,
                    attrs: Vec::new(),
                });
                Ok(None)
            }
            RawEvent::Attribute(m, (prefix, local), value) => {
                self.count(m.len())?;
                let max = self.limits.max_attributes;
                let head = self.head.as_mut().ok_or_else(out_of_order)?;
                if head.attrs.len() >= max {
                    return Err(XmlError::LimitExceeded(Limit::Attributes));
                }
                head.attrs.push((prefix, local, value));
                Ok(None)
            }
            RawEvent::ElementHeadClose(m) => {
                self.count(m.len())?;
                let head = self.head.take().ok_or_else(out_of_order)?;
                self.open_element(head)
            }
            RawEvent::ElementFoot(m) => {
                self.count(m.len())?;
                self.scopes.close();
                self.depth = self.depth.saturating_sub(1);
                if self.depth >= self.tree_depth {
                    let done = self.stack.pop().ok_or_else(out_of_order)?;
                    if self.depth == self.tree_depth {
                        if self.depth == 0 {
                            self.closed = true;
                        }
                        return Ok(Some(XmlEvent::Element(done)));
                    }
                    let parent = self.stack.last_mut().ok_or_else(out_of_order)?;
                    parent.children.push(Node::Element(done));
                    Ok(None)
                } else {
                    // Only the stream root lies above the tree depth.
                    self.closed = true;
                    Ok(Some(XmlEvent::StreamClose))
                }
            }
            RawEvent::Text(m, text) => {
                if self.depth > self.tree_depth {
                    self.count(m.len())?;
                    let top = self.stack.last_mut().ok_or_else(out_of_order)?;
                    // rxml may split text anywhere; keep one node per run.
                    match top.children.last_mut() {
                        Some(Node::Text(t)) => t.push_str(&text),
                        _ => top.children.push(Node::Text(text)),
                    }
                    Ok(None)
                } else if text
                    .bytes()
                    .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
                {
                    // Whitespace between stanzas (keepalives) carries nothing.
                    Ok(None)
                } else {
                    Err(XmlError::NotWellFormed(
                        "character data at stream level".to_owned(),
                    ))
                }
            }
        }
    }

    /// Resolve a complete start tag and open the element.
    fn open_element(&mut self, head: Head) -> Result<Option<XmlEvent>, XmlError> {
        self.scopes.open();
        self.depth += 1;
        let mut default_decl = None;
        for (prefix, local, value) in &head.attrs {
            match pfx(prefix) {
                None if local.as_str() == "xmlns" => {
                    if value == XMLNS_NS {
                        return Err(XmlError::InvalidNamespace(
                            "the xmlns namespace cannot be the default".to_owned(),
                        ));
                    }
                    default_decl = Some(value.clone());
                    self.scopes.decls.push((None, value.clone()));
                }
                Some("xmlns") => {
                    if value == XMLNS_NS {
                        return Err(XmlError::InvalidNamespace(
                            "the xmlns namespace cannot be bound".to_owned(),
                        ));
                    }
                    // `xmlns:xml` may only restate the fixed binding (rxml checks).
                    if local.as_str() != "xml" {
                        self.scopes
                            .decls
                            .push((Some(local.as_str().to_owned()), value.clone()));
                    }
                }
                _ => {}
            }
        }
        let ns = match pfx(&head.prefix) {
            Some("xmlns") => {
                return Err(XmlError::InvalidNamespace(
                    "element with the xmlns prefix".to_owned(),
                ));
            }
            p => self.scopes.resolve(p).ok_or_else(|| undeclared(p))?,
        };
        let mut elem = Element::new(head.local.as_str(), ns);
        for (prefix, local, value) in head.attrs {
            let ans = match pfx(&prefix) {
                None if local.as_str() == "xmlns" => continue,
                Some("xmlns") => continue,
                None => "",
                p => self.scopes.resolve(p).ok_or_else(|| undeclared(p))?,
            };
            if elem
                .attrs
                .iter()
                .any(|a| a.ns == ans && a.name == local.as_str())
            {
                return Err(XmlError::NotWellFormed("duplicate attribute".to_owned()));
            }
            elem.attrs.push(Attr {
                ns: ans.to_owned(),
                name: local.as_str().to_owned(),
                value,
            });
        }
        let depth = self.depth - 1;
        if depth >= self.tree_depth {
            self.stack.push(elem);
            Ok(None)
        } else {
            Ok(Some(XmlEvent::StreamOpen(StreamHeader {
                name: elem.name,
                ns: elem.ns,
                default_ns: default_decl,
                attrs: elem.attrs,
            })))
        }
    }
}

fn pfx(prefix: &Option<NcName>) -> Option<&str> {
    prefix.as_ref().map(|p| p.as_str())
}

fn out_of_order() -> XmlError {
    // rxml guarantees event order; this only guards against a broken invariant.
    XmlError::NotWellFormed("unexpected event order".to_owned())
}

fn undeclared(prefix: Option<&str>) -> XmlError {
    XmlError::InvalidNamespace(format!("undeclared prefix {}", prefix.unwrap_or("")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_shadow_and_unwind() {
        let mut s = Scopes::default();
        assert_eq!(s.resolve(None), Some(""));
        assert_eq!(s.resolve(Some("xml")), Some(XML_NS));
        assert_eq!(s.resolve(Some("p")), None);
        s.open();
        s.decls.push((None, "outer".into()));
        s.decls.push((Some("p".into()), "urn:p1".into()));
        s.open();
        s.decls.push((Some("p".into()), "urn:p2".into()));
        s.decls.push((None, String::new()));
        assert_eq!(s.resolve(Some("p")), Some("urn:p2"));
        assert_eq!(s.resolve(None), Some(""));
        s.close();
        assert_eq!(s.resolve(Some("p")), Some("urn:p1"));
        assert_eq!(s.resolve(None), Some("outer"));
        s.close();
        assert_eq!(s.resolve(Some("p")), None);
        s.close(); // unbalanced close is harmless
    }

    #[test]
    fn rxml_errors_map_to_kinds() {
        use rxml::Error as E;
        assert_eq!(
            XmlError::from_rxml(E::RestrictedXml("comments")),
            XmlError::RestrictedXml("comments")
        );
        assert_eq!(
            XmlError::from_rxml(E::RestrictedXml("long name or reference")),
            XmlError::LimitExceeded(Limit::TokenLength)
        );
        assert!(matches!(
            XmlError::from_rxml(E::ElementMismatch),
            XmlError::NotWellFormed(_)
        ));
        assert!(matches!(
            XmlError::from_rxml(E::ReservedNamespacePrefix),
            XmlError::InvalidNamespace(_)
        ));
        assert_eq!(
            XmlError::from_rxml(E::InvalidEof(None)),
            XmlError::UnexpectedEof
        );
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
