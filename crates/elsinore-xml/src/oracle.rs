//! The previous, rxml-based stream parser, kept as a differential oracle for
//! our own parser (unit tests here; the `xml_stream` fuzz target includes
//! this file by path). Written against the public API only, so that it
//! compiles in both places; not part of the library.
//!
//! Known, accepted differences from [`crate::StreamParser`] (each pinned by
//! a test in `tests/differential.rs` or the unit tests of `parser`):
//! see `docs/benchmarks.md`, "Differences from the rxml oracle".
#![allow(dead_code)]

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use elsinore_xml::{
    Attr, Element, Limit, Node, StreamHeader, XML_NS, XmlError, XmlEvent, XmlLimits,
};
use rxml::error::EndOrError;
use rxml::{NcName, Options, Parse, RawEvent, RawParser, WithOptions};

const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Translate an `rxml` error into our classification.
pub fn from_rxml(e: rxml::Error) -> XmlError {
    use rxml::Error as E;
    match e {
        E::RestrictedXml("long name or reference") => XmlError::LimitExceeded(Limit::TokenLength),
        E::RestrictedXml("event too long") => XmlError::LimitExceeded(Limit::ElementBytes),
        E::RestrictedXml(m) => XmlError::RestrictedXml(m),
        // `<!` not followed by `--` or `[CDATA[` can only start a markup
        // declaration (DOCTYPE, ENTITY, ...): DTDs are restricted in XMPP.
        E::InvalidSyntax("malformed cdata or comment section start") => {
            XmlError::RestrictedXml("DTD or markup declaration")
        }
        E::InvalidEof(_) => XmlError::UnexpectedEof,
        E::UndeclaredNamespacePrefix(_)
        | E::ReservedNamespacePrefix
        | E::ReservedNamespaceName
        | E::EmptyNamespaceUri => XmlError::InvalidNamespace(e.to_string()),
        other => XmlError::NotWellFormed(other.to_string()),
    }
}

/// The rxml-based stream parser, same contract as `StreamParser`.
#[derive(Debug)]
pub struct RxmlStreamParser {
    core: Core,
}

impl RxmlStreamParser {
    /// A parser for a new stream.
    pub fn new(limits: XmlLimits) -> Self {
        RxmlStreamParser {
            core: Core::new(limits, 1),
        }
    }

    /// As `StreamParser::parse`.
    pub fn parse(&mut self, buf: &mut &[u8]) -> Result<Option<XmlEvent>, XmlError> {
        self.core.next(buf, false)
    }

    /// As `StreamParser::handle_eof`.
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

    /// As `StreamParser::reset`.
    pub fn reset(&mut self) {
        self.core = Core::new(self.core.limits, 1);
    }
}

/// As `Element::parse_with_limits`.
pub fn rxml_parse_element(bytes: &[u8], limits: XmlLimits) -> Result<Element, XmlError> {
    let mut core = Core::new(limits, 0);
    let mut buf = bytes;
    match core.next(&mut buf, true)? {
        Some(XmlEvent::Element(e)) => {
            core.finish(&mut buf)?;
            Ok(e)
        }
        Some(_) => Err(XmlError::NotWellFormed("unexpected event".to_owned())),
        None => Err(XmlError::UnexpectedEof),
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
                Err(EndOrError::Error(e)) => return Err(self.fail(from_rxml(e))),
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
            Err(EndOrError::Error(e)) => Err(self.fail(from_rxml(e))),
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

/// What feeding a parser produced: events, then the first error (if any)
/// and whether it came from `handle_eof` rather than from `parse`.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Events in order.
    pub events: Vec<XmlEvent>,
    /// The first error.
    pub error: Option<XmlError>,
    /// The error was only reported at end of input.
    pub at_eof: bool,
}

/// Feed `chunks` to our parser, then signal end of input.
pub fn run_ours<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut p = elsinore_xml::StreamParser::new(XmlLimits::default());
    let mut events = Vec::new();
    for chunk in chunks {
        let mut buf = chunk;
        loop {
            match p.parse(&mut buf) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => {
                    assert!(buf.is_empty(), "Ok(None) left {} bytes", buf.len());
                    break;
                }
                Err(e) => {
                    assert_eq!(p.parse(&mut buf), Err(e.clone()), "errors are sticky");
                    return Outcome {
                        events,
                        error: Some(e),
                        at_eof: false,
                    };
                }
            }
        }
    }
    let error = p.handle_eof().err();
    Outcome {
        events,
        error,
        at_eof: true,
    }
}

/// Feed `chunks` to the rxml-based parser, then signal end of input.
pub fn run_oracle<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut p = RxmlStreamParser::new(XmlLimits::default());
    let mut events = Vec::new();
    for chunk in chunks {
        let mut buf = chunk;
        loop {
            match p.parse(&mut buf) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => {
                    return Outcome {
                        events,
                        error: Some(e),
                        at_eof: false,
                    };
                }
            }
        }
    }
    let error = p.handle_eof().err();
    Outcome {
        events,
        error,
        at_eof: true,
    }
}

/// The input to give the oracle for the input we parse: rxml mishandles a
/// few well-formed constructs, which are rewritten to equivalents here.
///
/// - End-of-line handling (XML 1.0, 2.11) is done here, before rxml sees the
///   input: CR LF and lone CR become LF, which is what every XML processor
///   must see. rxml gets two cases wrong: a lone CR in an attribute value
///   (dropped, or the next character rejected; it must be a space), and
///   CR LF right after `]` in a CDATA section (kept; it must be LF).
/// - Whitespace before the root element without an XML declaration: rxml
///   rejects it; the XML grammar (`prolog ::= XMLDecl? Misc*`) allows it, and
///   we accept it (an XML declaration after it is a processing instruction).
pub fn oracle_input(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    for (i, &b) in input.iter().enumerate() {
        match b {
            // CR LF: the CR goes.
            b'\r' if input.get(i + 1) == Some(&b'\n') => {}
            b'\r' => out.push(b'\n'),
            _ => out.push(b),
        }
    }
    let ws = out
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
        .count();
    if ws > 0 {
        if out.get(ws..ws + 2) == Some(b"<?") {
            // For rxml too, a declaration after something is a PI.
            out.splice(..0, b"<?xml version='1.0'?>".iter().copied());
        } else {
            out.drain(..ws);
        }
    }
    out
}

fn class(e: &XmlError) -> core::mem::Discriminant<XmlError> {
    core::mem::discriminant(e)
}

/// Compare our outcome with the oracle's: same events; both fail or both
/// succeed; the same class of error, except for the documented differences.
pub fn compare(ours: &Outcome, oracle: &Outcome) -> Result<(), String> {
    // Documented: we reject a namespace declared twice on one element (a
    // duplicate attribute); rxml's raw parser lets it through.
    if matches!(&ours.error, Some(XmlError::NotWellFormed(m)) if m == "duplicate namespace declaration")
        && oracle.events.starts_with(&ours.events)
    {
        return Ok(());
    }
    if ours.events != oracle.events {
        let i = ours
            .events
            .iter()
            .zip(&oracle.events)
            .take_while(|(a, b)| a == b)
            .count();
        return Err(format!(
            "events differ at {i} (ours {}, oracle {} events):\n ours   {:?}\n oracle {:?}\n errors {:?} / {:?}",
            ours.events.len(),
            oracle.events.len(),
            ours.events.get(i),
            oracle.events.get(i),
            ours.error,
            oracle.error
        ));
    }
    match (&ours.error, &oracle.error) {
        (None, None) => Ok(()),
        (Some(a), Some(b)) if class(a) == class(b) => Ok(()),
        // rxml reports some errors on the offending byte; we judge a tag
        // once its final `>` is in: if the input ends inside that tag, we
        // only see an unexpected end.
        (Some(XmlError::UnexpectedEof), Some(_)) if ours.at_eof => Ok(()),
        (Some(_), Some(XmlError::UnexpectedEof)) if oracle.at_eof => Ok(()),
        // Text after the stream closed: we fail at once, rxml waits for the
        // end of the text, which never comes.
        (Some(XmlError::NotWellFormed(_)), None)
            if oracle.events.last() == Some(&XmlEvent::StreamClose) =>
        {
            Ok(())
        }
        (a, b) => Err(format!(
            "errors differ: ours {a:?} (eof {}), oracle {b:?} (eof {})",
            ours.at_eof, oracle.at_eof
        )),
    }
}
