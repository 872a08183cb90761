//! Our own incremental parser for the XML subset XMPP uses.
//!
//! # How input is consumed
//!
//! Input is cut into tokens: a tag (`<…>`, found by a quote-aware scan for
//! its final `>`), a CDATA section, or a run of character data. Complete
//! tokens are parsed straight from the caller's slice; a start tag is first
//! read at once, its end found as it is read, and scanned for only if that
//! fails (see `Parser::start_tag_at_once`). A token cut off by the
//! end of the slice is copied into `pending` and the whole slice is reported
//! consumed (`Ok(None)`); the next call appends to it. The scan for a tag's
//! end resumes where it stopped ([`Scan`]), so a tag trickling in one byte at
//! a time costs linear, not quadratic, time. An event is returned as soon as
//! the token that completes it (the element's final `>`) is parsed, and no
//! byte after that token is consumed: the caller may [`reset`] right there.
//!
//! Character data is consumed as far as it can be decoded; only an
//! unfinished tail (a partial UTF-8 sequence or reference, a `\r` that may be
//! followed by `\n`, a `]` or `]]` that may start `]]>`) waits in `pending`.
//!
//! # What is accepted
//!
//! XML 1.0 well-formedness as far as a stream needs it: name characters,
//! matching end tags, unique attributes (after namespace resolution, and
//! namespace declarations among themselves), no `<` in attribute values, no
//! `]]>` in text, only XML characters, UTF-8 only, the five predefined
//! entities and character references, CDATA sections (as text), end-of-line
//! and attribute-value normalization. Comments, processing instructions (other
//! than the XML declaration at the very start), DOCTYPE and other markup
//! declarations are restricted XML. Limits are counted while parsing, before
//! any tree is built.
//!
//! [`reset`]: crate::StreamParser::reset

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ops::Range;

use crate::error::{Limit, XmlError};
use crate::raw::{RawElement, Span};
use crate::stream::{StreamHeader, XmlEvent, XmlLimits};
use crate::tree::{Attr, Element, Node, XML_NS};

/// The namespace of namespace declarations; no element or attribute may be in it.
const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";

/// Longest name or digit string inside a reference (as rxml, whose
/// behaviour the differential tests pin).
const MAX_REFERENCE_LENGTH: usize = 8;

/// Where the document is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Doc {
    /// Nothing read yet: the XML declaration may come.
    Start,
    /// Before the root element.
    Prolog,
    /// Inside the root element.
    Root,
    /// The root element has been closed.
    After,
}

/// Resumable state of the scan for the end of a tag held in `pending`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Scan {
    /// Offset (from the token start) where scanning resumes.
    pos: usize,
    /// The open quote inside a start tag, or 0.
    quote: u8,
}

/// Result of trying to read one token.
enum Tok {
    /// `used` bytes were consumed, possibly completing an event.
    Done(usize, Option<XmlEvent>),
    /// The token at the start of the input is unfinished.
    Incomplete(Scan),
}

/// One namespace declaration: `buf[start..mid]` is the prefix (empty for the
/// default namespace: a declared prefix is never empty), `buf[mid..end]` the URI.
/// `u32` offsets: every stream keeps its root's declarations while idle, and the
/// arena stays far below 4 GiB (bounded by the token, attribute and depth limits).
#[derive(Debug, Clone, Copy)]
struct Decl {
    start: u32,
    mid: u32,
    end: u32,
}

impl Decl {
    fn prefixed(&self) -> bool {
        self.mid > self.start
    }

    fn prefix<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        buf.get(self.start as usize..self.mid as usize)
    }

    fn uri<'a>(&self, buf: &'a [u8]) -> Option<&'a [u8]> {
        buf.get(self.mid as usize..self.end as usize)
    }
}

/// `n` as an arena offset; saturates (a later slice is then `None`, never a panic).
fn offset(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// In-scope namespace declarations in one arena (of UTF-8 checked with the start tags
/// they came from); each open element records where its own begin ([`Frame::decls`]),
/// so that opening and closing elements allocates nothing.
#[derive(Debug, Default)]
struct Scopes {
    buf: Vec<u8>,
    decls: Vec<Decl>,
}

impl Scopes {
    /// Where the declarations of the next element will begin.
    fn mark(&self) -> u32 {
        offset(self.decls.len())
    }

    /// Forgets the declarations from `mark` on.
    fn truncate(&mut self, mark: u32) {
        self.decls.truncate(mark as usize);
        self.buf
            .truncate(self.decls.last().map_or(0, |d| d.end as usize));
    }

    fn push(&mut self, prefix: Option<&[u8]>, uri: &[u8]) {
        let start = offset(self.buf.len());
        self.buf.extend_from_slice(prefix.unwrap_or_default());
        let mid = offset(self.buf.len());
        self.buf.extend_from_slice(uri);
        self.decls.push(Decl {
            start,
            mid,
            end: offset(self.buf.len()),
        });
    }

    /// Index in `decls` of the declaration that binds `prefix` (the innermost one).
    fn position(&self, prefix: &[u8]) -> Option<usize> {
        self.decls
            .iter()
            .rposition(|d| d.prefixed() && d.prefix(&self.buf) == Some(prefix))
    }

    /// Namespace bound to `prefix` (`None` = default namespace, `""` if unbound).
    fn resolve(&self, prefix: Option<&[u8]>) -> Option<&[u8]> {
        match prefix {
            Some(b"xml") => Some(XML_NS.as_bytes()),
            Some(p) => self
                .position(p)
                .and_then(|i| self.decls.get(i))
                .and_then(|d| d.uri(&self.buf)),
            None => Some(
                self.decls
                    .iter()
                    .rev()
                    .find(|d| !d.prefixed())
                    .and_then(|d| d.uri(&self.buf))
                    .unwrap_or_default(),
            ),
        }
    }
}

/// An open element: where its name ends in `Parser::names` and where its
/// namespace declarations begin in `Scopes::decls`.
#[derive(Debug, Clone, Copy)]
struct Frame {
    name_end: u32,
    decls: u32,
}

/// An attribute of the start tag being parsed; ranges into the tag and into
/// `Parser::values`.
#[derive(Debug, Clone)]
struct RawAttr {
    prefix: Option<Range<usize>>,
    local: Range<usize>,
    value: Range<usize>,
    /// Just after the closing quote, in the tag.
    end: usize,
    kind: Kind,
}

/// What an attribute is by its name, judged once while the tag is read, so that the
/// namespace steps after it compare no names again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Unprefixed, not `xmlns`.
    Plain,
    /// `xmlns`: declares the default namespace.
    Default,
    /// `xmlns:p`: declares a prefix.
    Decl,
    /// `xml:p`.
    Xml,
    /// Any other prefix.
    Prefixed,
}

impl Kind {
    fn of(tag: &[u8], prefix: Option<&Range<usize>>, local: &Range<usize>) -> Kind {
        match prefix {
            None if tag.get(local.clone()) == Some(b"xmlns") => Kind::Default,
            None => Kind::Plain,
            Some(p) => match tag.get(p.clone()) {
                Some(b"xmlns") => Kind::Decl,
                Some(b"xml") => Kind::Xml,
                _ => Kind::Prefixed,
            },
        }
    }

    fn declares(self) -> bool {
        matches!(self, Kind::Default | Kind::Decl)
    }
}

/// Byte equality by a plain loop: names are short, and a `memcmp` call costs more.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}

/// Whether one of the `earlier` attributes of `tag` has `a`'s kind and local name (the
/// duplicate check where kind and local name decide the attribute's key).
#[inline]
fn repeats_earlier(earlier: &[RawAttr], a: &RawAttr, tag: &[u8]) -> bool {
    let part = |r: &Range<usize>| tag.get(r.clone()).unwrap_or_default();
    let al = part(&a.local);
    earlier
        .iter()
        .any(|b| b.kind == a.kind && same_bytes(part(&b.local), al))
}

/// Which top-level elements the parser keeps raw ([`crate::RawElement`]): this name in
/// this namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawSpec {
    /// Local name (`message`).
    pub name: &'static str,
    /// Namespace (`jabber:client`).
    pub ns: &'static str,
}

/// The top-level element being kept raw.
#[derive(Debug)]
struct Capture {
    spec: &'static RawSpec,
    /// Declarations before this index lie outside the element.
    outer: u32,
    /// Where the content begins and ends in `Work::raw`.
    content: Range<u32>,
    /// No prefix inside resolves to a declaration outside the element.
    contained: bool,
}

/// The parser's buffers for the stanza or token in progress. Between stanzas they hold
/// nothing, so they live in one box that an idle parser gives back (to a [`Scratch`]) or
/// drops: an idle parser then carries one pointer instead of five buffers.
#[derive(Debug, Default)]
pub(crate) struct Work {
    /// One start tag's attributes and decoded values.
    attrs: Vec<RawAttr>,
    values: Vec<u8>,
    /// How many of `attrs` declare a namespace, and how many have a prefix other than
    /// `xml` and `xmlns`: when none, the namespace steps have nothing to look at.
    decl_attrs: usize,
    prefixed_attrs: usize,
    /// Text outside of trees.
    text: String,
    /// Elements under construction, outermost first.
    stack: Vec<Element>,
    /// An unfinished token (see the module docs).
    pending: Vec<u8>,
    /// The element being kept raw: its state, its bytes so far, its start tag's
    /// attributes and their decoded values.
    capture: Option<Capture>,
    raw: Vec<u8>,
    raw_attrs: Vec<Span>,
    raw_values: Vec<u8>,
}

impl Work {
    /// Only dead buffers: nothing of a stanza or token in progress.
    fn is_idle(&self) -> bool {
        self.stack.is_empty() && self.pending.is_empty() && self.capture.is_none()
    }

    /// Keeps what ordinary stanzas need, not what one huge stanza needed.
    fn trim(&mut self) {
        const KEEP: usize = 16 * 1024;
        self.attrs.clear();
        self.values.clear();
        self.text.clear();
        self.raw.clear();
        self.raw_attrs.clear();
        self.raw_values.clear();
        if self.raw.capacity() > KEEP {
            self.raw = Vec::new();
        }
        if self.values.capacity() > KEEP {
            self.values = Vec::new();
        }
        // `open_capture` may swap it with `values`.
        if self.raw_values.capacity() > KEEP {
            self.raw_values = Vec::new();
        }
        if self.text.capacity() > KEEP {
            self.text = String::new();
        }
        if self.pending.capacity() > KEEP {
            self.pending = Vec::new();
        }
        if self.attrs.capacity() > 64 {
            self.attrs = Vec::new();
        }
        if self.stack.capacity() > 64 {
            self.stack = Vec::new();
        }
    }
}

/// Parser buffers that hold nothing between calls, lent by the owner of many parsers
/// (one per connection) so that an idle parser owns none of them. See
/// [`crate::StreamParser::borrow_scratch`].
#[derive(Debug, Default)]
pub struct Scratch {
    work: Option<Box<Work>>,
}

impl Scratch {
    /// An empty scratch; it grows to the largest tag or text run it has served.
    pub fn new() -> Self {
        Scratch::default()
    }
}

/// The parser behind [`StreamParser`](crate::StreamParser) and
/// [`Element::parse`].
#[derive(Debug)]
pub(crate) struct Parser {
    pub(crate) limits: XmlLimits,
    /// Depth at which elements become trees: 1 for streams, 0 for documents.
    tree_depth: usize,
    /// Boxed: a stream fails once, and every idle connection carries the field.
    pub(crate) error: Option<Box<XmlError>>,
    /// The root element has been closed.
    pub(crate) closed: bool,
    doc: Doc,
    /// Number of open elements.
    depth: usize,
    /// Raw qualified names of the open elements, back to back, for matching
    /// end tags.
    names: Vec<u8>,
    /// One per open element, outermost first.
    frames: Vec<Frame>,
    scopes: Scopes,
    /// Wire bytes of the current top-level element (or stream header).
    element_bytes: usize,
    scan: Scan,
    /// The stream root was an empty-element tag: `StreamClose` is due.
    close_due: bool,
    /// Buffers of the stanza or token in progress; `None` between calls when idle.
    work: Option<Box<Work>>,
    /// Top-level elements to keep raw.
    keep_raw: Option<&'static RawSpec>,
}

impl Parser {
    pub(crate) fn new(limits: XmlLimits, tree_depth: usize) -> Self {
        Parser {
            limits,
            tree_depth,
            error: None,
            closed: false,
            doc: Doc::Start,
            depth: 0,
            names: Vec::new(),
            frames: Vec::new(),
            scopes: Scopes::default(),
            element_bytes: 0,
            scan: Scan::default(),
            close_due: false,
            work: None,
            keep_raw: None,
        }
    }

    /// From the next top-level element on, keep elements that `spec` names raw.
    pub(crate) fn keep_raw(&mut self, spec: Option<&'static RawSpec>) {
        self.keep_raw = spec;
    }

    /// Declare the default namespace around the document (for parsing a raw element
    /// again outside its stream).
    pub(crate) fn declare_default(&mut self, ns: &str) {
        self.scopes.push(None, ns.as_bytes());
    }

    /// See `StreamParser::release_scratch`. The work buffers are dead between calls
    /// unless a stanza or token is in progress.
    pub(crate) fn release_scratch(&mut self) {
        if self.work.as_ref().is_some_and(|w| w.is_idle()) {
            self.work = None;
        }
        self.trim_names();
    }

    /// The open elements' names outlive a call, but a stanza's nested names need not stay
    /// allocated; some slack avoids a reallocation per stanza.
    fn trim_names(&mut self) {
        if self.names.capacity() > self.names.len() + 64 {
            self.names.shrink_to_fit();
        }
        if self.frames.capacity() > self.frames.len() + 8 {
            self.frames.shrink_to_fit();
        }
    }

    /// Takes `scratch`'s work buffers for the calls until [`Parser::return_scratch`],
    /// unless this parser holds its own (a stanza or token in progress).
    pub(crate) fn borrow_scratch(&mut self, scratch: &mut Scratch) {
        if self.work.is_none() {
            self.work = scratch.work.take();
        }
    }

    /// Gives the work buffers back to `scratch` (or drops them) when idle; a parser that
    /// stopped inside an element or token keeps them.
    pub(crate) fn return_scratch(&mut self, scratch: &mut Scratch) {
        if let Some(mut w) = self.work.take() {
            if w.is_idle() {
                if scratch.work.is_none() {
                    w.trim();
                    scratch.work = Some(w);
                }
            } else {
                self.work = Some(w);
            }
        }
        self.trim_names();
    }

    pub(crate) fn fail(&mut self, e: XmlError) -> XmlError {
        self.error = Some(Box::new(e.clone()));
        e
    }

    /// Consume bytes from the front of `buf` until an event completes.
    /// `at_eof`: `buf` is the last input (an unfinished token is an error).
    pub(crate) fn next(
        &mut self,
        buf: &mut &[u8],
        at_eof: bool,
    ) -> Result<Option<XmlEvent>, XmlError> {
        if let Some(e) = &self.error {
            return Err(XmlError::clone(e));
        }
        let mut w = self.work.take().unwrap_or_default();
        let result = self.next_inner(&mut w, buf, at_eof);
        self.work = Some(w);
        match result {
            Ok(ev) => Ok(ev),
            Err(e) => Err(self.fail(e)),
        }
    }

    fn next_inner(
        &mut self,
        w: &mut Work,
        buf: &mut &[u8],
        at_eof: bool,
    ) -> Result<Option<XmlEvent>, XmlError> {
        if self.close_due {
            self.close_due = false;
            return Ok(Some(
                self.close_element(w)?.unwrap_or(XmlEvent::StreamClose),
            ));
        }
        if !w.pending.is_empty() {
            if let Some(ev) = self.resume(w, buf, at_eof)? {
                return Ok(Some(ev));
            }
            if !w.pending.is_empty() {
                return Ok(None);
            }
        }
        loop {
            if buf.is_empty() {
                return Ok(None);
            }
            match self.token(w, buf, at_eof, Scan::default())? {
                Tok::Done(used, ev) => {
                    *buf = buf.get(used..).unwrap_or_default();
                    if ev.is_some() {
                        return Ok(ev);
                    }
                }
                Tok::Incomplete(scan) => {
                    if at_eof {
                        return Err(XmlError::UnexpectedEof);
                    }
                    self.check_pending(buf.len())?;
                    w.pending.extend_from_slice(buf);
                    self.scan = scan;
                    *buf = &[];
                    return Ok(None);
                }
            }
        }
    }

    /// Finish the token held in `pending` with bytes from `buf`. Leaves
    /// `pending` empty unless all of `buf` was taken and more is needed.
    fn resume(
        &mut self,
        w: &mut Work,
        buf: &mut &[u8],
        at_eof: bool,
    ) -> Result<Option<XmlEvent>, XmlError> {
        let old = w.pending.len();
        self.check_pending(old.saturating_add(buf.len()))?;
        let mut data = core::mem::take(&mut w.pending);
        data.extend_from_slice(buf);
        let mut pos = 0;
        let mut scan = self.scan;
        let result = loop {
            let rest = data.get(pos..).unwrap_or_default();
            if rest.is_empty() {
                *buf = &[];
                break Ok(None);
            }
            match self.token(w, rest, at_eof, scan) {
                Ok(Tok::Done(used, ev)) => {
                    pos += used;
                    scan = Scan::default();
                    if pos >= old {
                        // The held token is finished; the rest is still in `buf`.
                        *buf = buf.get(pos - old..).unwrap_or_default();
                        data.clear();
                        break Ok(ev);
                    }
                    if ev.is_some() {
                        // Not reached (held bytes never finish an event by
                        // themselves), but keep the contract if it were.
                        data.truncate(old);
                        data.drain(..pos);
                        break Ok(ev);
                    }
                }
                Ok(Tok::Incomplete(s)) => {
                    if at_eof {
                        break Err(XmlError::UnexpectedEof);
                    }
                    data.drain(..pos);
                    self.scan = s;
                    *buf = &[];
                    break Ok(None);
                }
                Err(e) => break Err(e),
            }
        };
        w.pending = data;
        result
    }

    /// Bound the bytes held for one unfinished token.
    fn check_pending(&self, len: usize) -> Result<(), XmlError> {
        let base = if self.depth > self.tree_depth {
            self.element_bytes
        } else {
            0
        };
        if base.saturating_add(len) > self.limits.max_element_bytes {
            return Err(XmlError::LimitExceeded(Limit::ElementBytes));
        }
        Ok(())
    }

    fn count(&mut self, len: usize) -> Result<(), XmlError> {
        self.element_bytes = self.element_bytes.saturating_add(len);
        if self.element_bytes > self.limits.max_element_bytes {
            return Err(XmlError::LimitExceeded(Limit::ElementBytes));
        }
        Ok(())
    }

    /// Read one token from the start of `data` (non-empty).
    fn token(
        &mut self,
        w: &mut Work,
        data: &[u8],
        at_eof: bool,
        scan: Scan,
    ) -> Result<Tok, XmlError> {
        if data.first() != Some(&b'<') {
            return self.text(w, data, at_eof);
        }
        if self.doc == Doc::After {
            // As rxml: PIs and declarations are judged as such, the rest is
            // content after the root.
            let judged = match data.get(1) {
                // Too short to tell: wait, whatever the chunking.
                None => return Ok(Tok::Incomplete(scan)),
                Some(b'!') if data.len() < 3 => return Ok(Tok::Incomplete(scan)),
                Some(b'?') => {
                    const DECL: &[u8] = b"<?xml";
                    let n = data.len().min(DECL.len());
                    if data.get(..n) != DECL.get(..n) {
                        return Err(XmlError::RestrictedXml("processing instructions"));
                    }
                    if n < DECL.len() {
                        return Ok(Tok::Incomplete(scan));
                    }
                    false
                }
                Some(b'!') => !matches!(data.get(2), Some(b'-' | b'[')),
                _ => false,
            };
            if !judged {
                return Err(nwf("content after the root element"));
            }
        }
        let Some(&second) = data.get(1) else {
            return Ok(Tok::Incomplete(scan));
        };
        match second {
            b'/' => {
                let from = scan.pos.max(2);
                match find(b'>', data, from) {
                    Some(end) => self.end_tag(w, data.get(..=end).unwrap_or_default()),
                    None => Ok(Tok::Incomplete(Scan {
                        pos: data.len(),
                        quote: 0,
                    })),
                }
            }
            b'?' => self.question(data, scan),
            b'!' => self.bang(w, data, scan),
            b if is_name_start_byte(b) => {
                if scan.pos == 0
                    && let Some(done) = self.start_tag_at_once(w, data)
                {
                    return done;
                }
                self.start_tag_scanned(w, data, scan)
            }
            _ => Err(nwf("invalid character after '<'")),
        }
    }

    /// A start tag once [`find_tag_end`] has found its end.
    fn start_tag_scanned(
        &mut self,
        w: &mut Work,
        data: &[u8],
        scan: Scan,
    ) -> Result<Tok, XmlError> {
        match find_tag_end(data, scan) {
            Ok(end) => self.start_tag(w, data.get(..=end).unwrap_or_default()),
            Err(s) => Ok(Tok::Incomplete(s)),
        }
    }

    // ---- character data ----

    /// Character data up to the next `<`, or as far as it is complete.
    fn text(&mut self, w: &mut Work, data: &[u8], at_eof: bool) -> Result<Tok, XmlError> {
        let lt = memchr::memchr(b'<', data);
        let run = data.get(..lt.unwrap_or(data.len())).unwrap_or_default();
        let in_tree = self.depth > self.tree_depth;
        // Raw: checked like any text, kept as received.
        let capturing = in_tree && w.capture.is_some();
        if matches!(self.doc, Doc::Start | Doc::Prolog) && memchr::memchr(b'&', run).is_some() {
            // Before the root only literal whitespace may appear (`Misc`);
            // after it, rxml let references to whitespace through, and so
            // do we.
            return Err(nwf("reference outside of the root element"));
        }
        if capturing && run.is_ascii() {
            // Kept as received: checked as below, but with no UTF-8 to check (ASCII) and
            // nothing decoded.
            let used = scan_text(run, lt.is_some() || at_eof, &mut ())?;
            if used == 0 {
                return Ok(Tok::Incomplete(Scan::default()));
            }
            self.count(used)?;
            w.raw.extend_from_slice(run.get(..used).unwrap_or_default());
            return Ok(Tok::Done(used, None));
        }
        // Decode into the open element's last text node, or into scratch.
        let mut scratch = core::mem::take(&mut w.text);
        scratch.clear();
        let out: &mut String = if in_tree && !capturing {
            let top = w.stack.last_mut().ok_or_else(order)?;
            if !matches!(top.children.last(), Some(Node::Text(_))) {
                top.children
                    .push(Node::Text(String::with_capacity(run.len())));
            }
            match top.children.last_mut() {
                Some(Node::Text(t)) => t,
                // Pushed right above.
                _ => return Err(order()),
            }
        } else {
            &mut scratch
        };
        let used = decode_text(run, lt.is_some() || at_eof, out)?;
        let whitespace = scratch
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
        w.text = scratch;
        if used == 0 {
            if in_tree && !capturing {
                // Drop the empty node pushed above.
                if let Some(top) = w.stack.last_mut()
                    && matches!(top.children.last(), Some(Node::Text(t)) if t.is_empty())
                {
                    top.children.pop();
                }
            }
            return Ok(Tok::Incomplete(Scan::default()));
        }
        if self.doc == Doc::Start {
            // The XML declaration may only be the very first thing.
            self.doc = Doc::Prolog;
        }
        if in_tree {
            self.count(used)?;
            if capturing {
                w.raw.extend_from_slice(run.get(..used).unwrap_or_default());
            }
        } else if !whitespace {
            return Err(nwf(match self.doc {
                Doc::After => "content after the root element",
                _ => "character data at stream level",
            }));
        }
        Ok(Tok::Done(used, None))
    }

    // ---- markup other than element tags ----

    /// `<?`: the XML declaration at the very start, else a processing
    /// instruction.
    fn question(&mut self, data: &[u8], scan: Scan) -> Result<Tok, XmlError> {
        const DECL: &[u8] = b"<?xml";
        let n = data.len().min(DECL.len());
        if self.doc != Doc::Start || data.get(..n) != DECL.get(..n) {
            return Err(XmlError::RestrictedXml("processing instructions"));
        }
        if data.len() < DECL.len() {
            return Ok(Tok::Incomplete(scan));
        }
        // Quote-aware, as a value may contain `?>`.
        match find_tag_end(data, scan) {
            Ok(end) => {
                let closed = end > DECL.len() && data.get(end - 1) == Some(&b'?');
                let body_end = if closed { end - 1 } else { end };
                parse_decl(data.get(DECL.len()..body_end).unwrap_or_default())?;
                if !closed {
                    return Err(nwf("malformed XML declaration"));
                }
                self.doc = Doc::Prolog;
                Ok(Tok::Done(end + 1, None))
            }
            Err(s) => Ok(Tok::Incomplete(s)),
        }
    }

    /// `<!`: a CDATA section; comments and declarations are restricted.
    fn bang(&mut self, w: &mut Work, data: &[u8], scan: Scan) -> Result<Tok, XmlError> {
        const CDATA: &[u8] = b"<![CDATA[";
        match data.get(2) {
            None => Ok(Tok::Incomplete(scan)),
            Some(b'-') => match data.get(3) {
                None => Ok(Tok::Incomplete(scan)),
                Some(b'-') => Err(XmlError::RestrictedXml("comments")),
                Some(_) => Err(nwf("malformed comment start")),
            },
            Some(b'[') => {
                let n = data.len().min(CDATA.len());
                if data.get(..n) != CDATA.get(..n) {
                    return Err(nwf("malformed CDATA section start"));
                }
                if data.len() < CDATA.len() {
                    return Ok(Tok::Incomplete(scan));
                }
                let from = scan.pos.max(CDATA.len() + 2) - 2;
                match memchr::memmem::find(data.get(from..).unwrap_or_default(), b"]]>") {
                    Some(i) => {
                        let end = from + i + 3;
                        self.cdata(w, data.get(CDATA.len()..end - 3).unwrap_or_default(), end)?;
                        if w.capture.is_some() {
                            w.raw.extend_from_slice(data.get(..end).unwrap_or_default());
                        }
                        Ok(Tok::Done(end, None))
                    }
                    None => Ok(Tok::Incomplete(Scan {
                        pos: data.len(),
                        quote: 0,
                    })),
                }
            }
            Some(_) => Err(XmlError::RestrictedXml("DTD or markup declaration")),
        }
    }

    /// The content of a CDATA section (`wire` bytes in all).
    fn cdata(&mut self, w: &mut Work, content: &[u8], wire: usize) -> Result<(), XmlError> {
        let s = core::str::from_utf8(content).map_err(|_| nwf("invalid UTF-8"))?;
        if self.doc != Doc::Root {
            return Err(nwf("CDATA section outside of the root element"));
        }
        let mut scratch = core::mem::take(&mut w.text);
        scratch.clear();
        let in_tree = self.depth > self.tree_depth;
        let result = if in_tree && w.capture.is_some() {
            self.count(wire)?;
            push_cdata(s, &mut scratch)
        } else if in_tree {
            self.count(wire)?;
            let top = w.stack.last_mut().ok_or_else(order)?;
            if let Some(Node::Text(t)) = top.children.last_mut() {
                push_cdata(s, t)
            } else {
                let mut t = String::with_capacity(s.len());
                let r = push_cdata(s, &mut t);
                if !t.is_empty() {
                    top.children.push(Node::Text(t));
                }
                r
            }
        } else {
            let r = push_cdata(s, &mut scratch);
            if r.is_ok()
                && !scratch
                    .bytes()
                    .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
            {
                Err(nwf("character data at stream level"))
            } else {
                r
            }
        };
        w.text = scratch;
        result
    }

    // ---- element tags ----

    /// A complete start tag or empty-element tag, `<` to `>`.
    fn start_tag(&mut self, w: &mut Work, tag: &[u8]) -> Result<Tok, XmlError> {
        self.enter_element()?;
        // Invalid UTF-8 ends the tag early: errors in the attributes before
        // it are reported first, as a byte-wise parser would. The tag is read as
        // bytes, so an ASCII one (the usual) needs no further UTF-8 check.
        let b = if tag.is_ascii() {
            tag
        } else {
            match core::str::from_utf8(tag) {
                Ok(_) => tag,
                Err(e) => tag.get(..e.valid_up_to()).unwrap_or_default(),
            }
        };
        let (prefix, local, i) = qname(b, 1, self.limits.max_token_length)?;
        if !ends_name_token(b.get(i)) {
            // After these bytes rxml reports the element (and we the
            // limits) before judging the syntax; after any other, syntax
            // first (pinned in differential.rs, `regressions`).
            return Err(nwf("invalid character after the element name"));
        }
        self.check_open(tag.len())?;
        // `b` holds the final `>` unless it was cut short, and then it has no `>`
        // outside a value (that is what found the tag's end): an error.
        let (empty, _) = self.attributes::<false>(w, b, i)?;
        self.open_tag(w, tag, b, prefix, local, empty)
    }

    /// A start tag read straight from `data`, its end found by reading it rather than by
    /// a scan first, which reads every byte twice. `None` when the tag is unfinished,
    /// not ASCII or UTF-8, or has any error: [`Parser::start_tag`] then takes it once its
    /// end is found, and judges it (and orders its errors) as ever. When this succeeds
    /// the other would have read the same tag the same way (a name, then attributes whose
    /// quoted values hold any `>`, up to the first `>` outside them), with no error
    /// before its limits.
    fn start_tag_at_once(&mut self, w: &mut Work, data: &[u8]) -> Option<Result<Tok, XmlError>> {
        let (prefix, local, i) = ascii_qname(data, 1, self.limits.max_token_length)?.ok()?;
        if !ends_name_token(data.get(i)) {
            return None;
        }
        let (empty, end) = self.attributes::<true>(w, data, i).ok()?;
        let tag = data.get(..=end)?;
        if !tag.is_ascii() && core::str::from_utf8(tag).is_err() {
            return None;
        }
        Some(
            self.enter_element()
                .and_then(|()| self.check_open(tag.len()))
                .and_then(|()| self.open_tag(w, tag, tag, prefix, local, empty)),
        )
    }

    /// A start tag begins: where the document allows one.
    fn enter_element(&mut self) -> Result<(), XmlError> {
        match self.doc {
            Doc::After => return Err(nwf("content after the root element")),
            Doc::Start | Doc::Prolog => self.doc = Doc::Root,
            Doc::Root => {}
        }
        Ok(())
    }

    /// Limits on a new element of `tag_len` start tag bytes, judged once its name is
    /// read (as the previous parser, on rxml's element-open event). The new element's
    /// depth is the number of open elements.
    fn check_open(&mut self, tag_len: usize) -> Result<(), XmlError> {
        if self.depth > self.limits.max_depth {
            return Err(XmlError::LimitExceeded(Limit::Depth));
        }
        if self.depth <= self.tree_depth {
            self.element_bytes = 0;
        }
        self.count(tag_len)
    }

    /// The attributes of the start tag `b` from `i` (after its name) on, into
    /// `w.attrs` and `w.values`: (whether the tag is empty-element, where its `>` is).
    /// `AT_ONCE`: `b` runs on past the tag, maybe not UTF-8, so that only ASCII names are
    /// read (any other is an error, which sends the tag to [`Parser::start_tag`]).
    fn attributes<const AT_ONCE: bool>(
        &self,
        w: &mut Work,
        b: &[u8],
        mut i: usize,
    ) -> Result<(bool, usize), XmlError> {
        let max_token = self.limits.max_token_length;
        w.attrs.clear();
        w.values.clear();
        w.decl_attrs = 0;
        w.prefixed_attrs = 0;
        loop {
            let j = skip_ws(b, i);
            match b.get(j) {
                Some(b'>') => return Ok((false, j)),
                Some(b'/') => {
                    if b.get(j + 1) == Some(&b'>') {
                        return Ok((true, j + 1));
                    }
                    return Err(nwf("'/' not followed by '>'"));
                }
                Some(_) if j == i => return Err(nwf("whitespace required before an attribute")),
                Some(_) => {}
                None => return Err(nwf("invalid UTF-8")),
            }
            let (ap, al, k) = if AT_ONCE {
                ascii_qname(b, j, max_token).ok_or_else(order)??
            } else {
                qname(b, j, max_token)?
            };
            let kind = Kind::of(b, ap.as_ref(), &al);
            if kind == Kind::Decl
                && b.get(al.clone()) == Some(b"xmlns")
                && ends_name_token(b.get(k))
            {
                // Judged on the name alone, before the value (as rxml).
                return Err(XmlError::InvalidNamespace(
                    "the xmlns prefix cannot be declared".to_owned(),
                ));
            }
            let k = skip_ws(b, k);
            if b.get(k) != Some(&b'=') {
                return Err(nwf("'=' expected after an attribute name"));
            }
            let k = skip_ws(b, k + 1);
            let quote = match b.get(k) {
                Some(&q @ (b'\'' | b'"')) => q,
                _ => return Err(nwf("attribute value must be quoted")),
            };
            let vstart = k + 1;
            let start = w.values.len();
            let rest = b.get(vstart..).unwrap_or_default();
            let vend = match decode_attr(rest, quote, &mut w.values) {
                Ok(Some(n)) => vstart + n,
                // No closing quote before the tag was cut at a byte that is not UTF-8:
                // judged before the value, as when it was looked for first.
                Ok(None) => return Err(order()),
                Err(e) => return Err(find(quote, b, vstart).map_or_else(order, |_| e)),
            };
            if w.values.len() - start > max_token {
                return Err(XmlError::LimitExceeded(Limit::TokenLength));
            }
            // Declarations of reserved names are judged as soon as they are
            // read (the XMLNS namespace only once the tag is complete), as
            // the previous parser did. Other attributes pass `check_decl` anyway.
            if kind.declares() {
                check_decl(
                    ap.as_ref().and_then(|r| b.get(r.clone())),
                    b.get(al.clone()).unwrap_or_default(),
                    w.values.get(start..).unwrap_or_default(),
                )?;
                w.decl_attrs += 1;
            }
            if w.attrs.len() >= self.limits.max_attributes {
                return Err(XmlError::LimitExceeded(Limit::Attributes));
            }
            w.prefixed_attrs += usize::from(kind == Kind::Prefixed);
            w.attrs.push(RawAttr {
                prefix: ap,
                local: al,
                value: start..w.values.len(),
                end: vend + 1,
                kind,
            });
            i = vend + 1;
        }
    }

    /// Open the element of the read start tag `tag` (`b`: its UTF-8 checked part).
    fn open_tag(
        &mut self,
        w: &mut Work,
        tag: &[u8],
        b: &[u8],
        prefix: Option<Range<usize>>,
        local: Range<usize>,
        empty: bool,
    ) -> Result<Tok, XmlError> {
        let name_range = 1..local.end;
        let decls = self.scopes.mark();
        let ev = if w.capture.is_some() {
            self.open_in_capture(w, b, prefix.as_ref())?;
            w.raw.extend_from_slice(tag);
            None
        } else if let Some(spec) = self.capturable(w, b, prefix.as_ref(), &local) {
            self.open_capture(w, b, spec)?;
            None
        } else {
            self.open_element(w, b, prefix, local)?
        };
        self.names
            .extend_from_slice(b.get(name_range).unwrap_or_default());
        self.frames.push(Frame {
            name_end: offset(self.names.len()),
            decls,
        });
        if empty {
            if ev.is_some() {
                // The stream header was an empty-element tag: report it, and
                // its close on the next call.
                self.close_due = true;
                return Ok(Tok::Done(tag.len(), ev));
            }
            return Ok(Tok::Done(tag.len(), self.close_element(w)?));
        }
        Ok(Tok::Done(tag.len(), ev))
    }

    /// Resolve the parsed start tag and open the element.
    fn open_element(
        &mut self,
        w: &mut Work,
        tag: &[u8],
        prefix: Option<Range<usize>>,
        local: Range<usize>,
    ) -> Result<Option<XmlEvent>, XmlError> {
        let part = |r: &Range<usize>| tag.get(r.clone()).unwrap_or_default();
        self.depth += 1;
        let (default_decl, decl_count) = self.declare(w, tag)?;
        let default_decl = default_decl.and_then(|r| w.values.get(r));
        let ns = match prefix.as_ref().map(part) {
            Some(b"xmlns") => {
                return Err(XmlError::InvalidNamespace(
                    "element with the xmlns prefix".to_owned(),
                ));
            }
            p => text(self.scopes.resolve(p).ok_or_else(|| undeclared(p))?)?,
        };
        // A stanza (an element right under the stream) gets room for one more attribute:
        // a server stamps `from` on every one it routes.
        let spare = usize::from(self.depth == self.tree_depth + 1);
        let mut elem = Element {
            name: text(part(&local))?.to_owned(),
            ns: ns.to_owned(),
            attrs: Vec::with_capacity(w.attrs.len() - decl_count + spare),
            children: Vec::new(),
        };
        for a in &w.attrs {
            let ans = match a.kind {
                Kind::Default | Kind::Decl => continue,
                Kind::Plain => "",
                _ => {
                    let p = a.prefix.as_ref().map(part);
                    text(self.scopes.resolve(p).ok_or_else(|| undeclared(p))?)?
                }
            };
            let al = text(part(&a.local))?;
            if elem
                .attrs
                .iter()
                .any(|x| crate::tree::same(&x.name, al) && crate::tree::same(&x.ns, ans))
            {
                return Err(nwf("duplicate attribute"));
            }
            elem.attrs.push(Attr {
                ns: ans.to_owned(),
                name: al.to_owned(),
                value: text(w.values.get(a.value.clone()).unwrap_or_default())?.to_owned(),
            });
        }
        let depth = self.depth - 1;
        if depth >= self.tree_depth {
            w.stack.push(elem);
            Ok(None)
        } else {
            Ok(Some(XmlEvent::StreamOpen(StreamHeader {
                name: elem.name,
                ns: elem.ns,
                default_ns: default_decl.map(text).transpose()?.map(ToOwned::to_owned),
                attrs: elem.attrs,
            })))
        }
    }

    /// Push the namespace declarations of the start tag in `w.attrs`: (the default
    /// namespace's value in `w.values` if declared, number of declarations).
    fn declare(&mut self, w: &Work, tag: &[u8]) -> Result<(Option<Range<usize>>, usize), XmlError> {
        if w.decl_attrs == 0 {
            return Ok((None, 0));
        }
        let part = |r: &Range<usize>| tag.get(r.clone()).unwrap_or_default();
        let mut default_decl = None;
        let mut decl_count = 0;
        for a in &w.attrs {
            if !a.kind.declares() {
                continue;
            }
            let value = w.values.get(a.value.clone()).unwrap_or_default();
            let al = part(&a.local);
            let declared = match a.kind {
                Kind::Default => {
                    if value == XMLNS_NS.as_bytes() {
                        return Err(XmlError::InvalidNamespace(
                            "the xmlns namespace cannot be the default".to_owned(),
                        ));
                    }
                    default_decl = Some(a.value.clone());
                    None
                }
                Kind::Decl => {
                    if al == b"xml" {
                        // May only restate the fixed binding (checked above).
                        continue;
                    }
                    if value == XMLNS_NS.as_bytes() {
                        return Err(XmlError::InvalidNamespace(
                            "the xmlns namespace cannot be bound".to_owned(),
                        ));
                    }
                    Some(al)
                }
                _ => continue,
            };
            decl_count += 1;
            self.scopes.push(declared, value);
        }
        // Two declarations of the same prefix on one element are duplicate
        // attributes.
        if decl_count > 1 {
            let new = self.scopes.decls.len() - decl_count;
            let decls = self.scopes.decls.get(new..).unwrap_or_default();
            let key = |d: &Decl| d.prefix(&self.scopes.buf);
            for (n, d) in decls.iter().enumerate() {
                if decls.iter().skip(n + 1).any(|e| key(e) == key(d)) {
                    return Err(nwf("duplicate namespace declaration"));
                }
            }
        }
        Ok((default_decl, decl_count))
    }

    /// The spec under which the top-level start tag in `w.attrs` is kept raw, if any:
    /// the element is unprefixed, in the spec's namespace, and its attributes are
    /// unqualified or `xml:` (a default declaration may only restate the namespace).
    fn capturable(
        &self,
        w: &Work,
        tag: &[u8],
        prefix: Option<&Range<usize>>,
        local: &Range<usize>,
    ) -> Option<&'static RawSpec> {
        let spec = self.keep_raw?;
        if self.depth != self.tree_depth
            || prefix.is_some()
            || tag.get(local.clone()) != Some(spec.name.as_bytes())
            || self.scopes.resolve(None) != Some(spec.ns.as_bytes())
        {
            return None;
        }
        let plain = w.attrs.iter().all(|a| match a.kind {
            Kind::Default => w.values.get(a.value.clone()) == Some(spec.ns.as_bytes()),
            Kind::Plain | Kind::Xml => true,
            Kind::Decl | Kind::Prefixed => false,
        });
        plain.then_some(spec)
    }

    /// Open a top-level element kept raw (`capturable` said yes): the start tag's
    /// attributes are checked and noted, no tree is built.
    fn open_capture(
        &mut self,
        w: &mut Work,
        tag: &[u8],
        spec: &'static RawSpec,
    ) -> Result<(), XmlError> {
        let outer = self.scopes.mark();
        self.depth += 1;
        self.declare(w, tag)?;
        w.raw.clear();
        w.raw.extend_from_slice(tag);
        w.raw_attrs.clear();
        w.raw_values.clear();
        // Without a default declaration to leave out, the values are back to back in
        // `w.values` already, as they are to be kept: take that buffer, copy nothing.
        // Only plain, `xml:` and default declaration attributes get here (`capturable`).
        let whole = w.decl_attrs == 0;
        for (n, a) in w.attrs.iter().enumerate() {
            let xml = a.kind == Kind::Xml;
            if a.kind == Kind::Default {
                continue;
            }
            if repeats_earlier(w.attrs.get(..n).unwrap_or_default(), a, tag) {
                return Err(nwf("duplicate attribute"));
            }
            let value = if whole {
                offset(a.value.start)..offset(a.value.end)
            } else {
                let start = offset(w.raw_values.len());
                w.raw_values
                    .extend_from_slice(w.values.get(a.value.clone()).unwrap_or_default());
                start..offset(w.raw_values.len())
            };
            let first = a.prefix.as_ref().map_or(a.local.start, |p| p.start);
            w.raw_attrs.push(Span {
                xml,
                name: offset(a.local.start)..offset(a.local.end),
                whole: offset(first)..offset(a.end),
                value,
            });
        }
        if whole {
            // `w.values` is cleared before the next start tag uses it.
            core::mem::swap(&mut w.raw_values, &mut w.values);
        }
        let end = offset(tag.len());
        w.capture = Some(Capture {
            spec,
            outer,
            content: end..end,
            contained: true,
        });
        Ok(())
    }

    /// Open an element inside one kept raw: the same checks as [`Parser::open_element`]
    /// (declarations, prefixes, duplicate attributes), without building it.
    fn open_in_capture(
        &mut self,
        w: &mut Work,
        tag: &[u8],
        prefix: Option<&Range<usize>>,
    ) -> Result<(), XmlError> {
        let part = |r: &Range<usize>| tag.get(r.clone()).unwrap_or_default();
        self.depth += 1;
        self.declare(w, tag)?;
        let outer = w.capture.as_ref().map_or(0, |c| c.outer as usize);
        let mut contained = true;
        // Where `p` is bound; a prefix bound outside the raw element makes its bytes
        // mean something else elsewhere.
        let mut resolve = |p: &[u8]| -> Result<(), XmlError> {
            if p == b"xml" {
                return Ok(());
            }
            match self.scopes.position(p) {
                None => Err(undeclared(Some(p))),
                Some(i) => {
                    contained &= i >= outer;
                    Ok(())
                }
            }
        };
        match prefix.map(part) {
            Some(b"xmlns") => {
                return Err(XmlError::InvalidNamespace(
                    "element with the xmlns prefix".to_owned(),
                ));
            }
            Some(p) => resolve(p)?,
            None => {}
        }
        // Attribute (namespace, name) pairs must be unique once resolved.
        let key = |a: &RawAttr| -> Option<(&[u8], &[u8])> {
            let al = part(&a.local);
            match a.prefix.as_ref().map(part) {
                None if al == b"xmlns" => None,
                Some(b"xmlns") => None,
                None => Some((b"", al)),
                Some(p) => Some((self.scopes.resolve(Some(p)).unwrap_or_default(), al)),
            }
        };
        if w.prefixed_attrs == 0 {
            // Unprefixed attributes are in no namespace and `xml:` ones in the XML
            // namespace, which no other prefix may be bound to: the same key is the same
            // kind and local name.
            for (n, a) in w.attrs.iter().enumerate() {
                if a.kind.declares() {
                    continue;
                }
                if repeats_earlier(w.attrs.get(..n).unwrap_or_default(), a, tag) {
                    return Err(nwf("duplicate attribute"));
                }
            }
        } else {
            // In attribute order, each one's prefix and then its key, as a tree is built
            // (`open_element`): the first error is the same either way.
            for (n, a) in w.attrs.iter().enumerate() {
                // `xml` resolves to itself, `xmlns` is not resolved: only other prefixes
                // need a look.
                if a.kind == Kind::Prefixed
                    && let Some(p) = a.prefix.as_ref().map(part)
                {
                    resolve(p)?;
                }
                let Some(k) = key(a) else { continue };
                if w.attrs.iter().take(n).any(|b| key(b) == Some(k)) {
                    return Err(nwf("duplicate attribute"));
                }
            }
        }
        if let Some(c) = w.capture.as_mut() {
            c.contained &= contained;
        }
        Ok(())
    }

    /// An element inside a raw one closed; if it was the raw element itself, report it
    /// (or its tree, if it is not self-contained).
    fn close_in_capture(&mut self, w: &mut Work) -> Result<Option<XmlEvent>, XmlError> {
        if self.depth > self.tree_depth {
            return Ok(None);
        }
        let Some(cap) = w.capture.take() else {
            return Err(order());
        };
        if self.depth == 0 {
            self.closed = true;
        }
        if !cap.contained {
            // A prefix declared around it: parse it again with those declarations in
            // scope, into a tree (rare: clients declare prefixes on their stanzas).
            let mut p = Parser::new(self.limits, 0);
            p.scopes.buf.clone_from(&self.scopes.buf);
            p.scopes.decls.clone_from(&self.scopes.decls);
            let mut buf = w.raw.as_slice();
            let ev = p.next(&mut buf, true)?;
            w.raw.clear();
            return match ev {
                Some(ev @ XmlEvent::Element(_)) => Ok(Some(ev)),
                _ => Err(order()),
            };
        }
        // Copied out at their exact size (one allocation each); the buffers stay for
        // the next element.
        let len = offset(w.raw.len());
        let mut bytes = Vec::with_capacity(w.raw.len() + w.raw_values.len());
        bytes.extend_from_slice(&w.raw);
        bytes.extend_from_slice(&w.raw_values);
        w.raw.clear();
        let mut attrs = w.raw_attrs.clone();
        for a in &mut attrs {
            a.value = a.value.start + len..a.value.end + len;
        }
        Ok(Some(XmlEvent::Raw(RawElement {
            name: cap.spec.name,
            ns: cap.spec.ns,
            bytes,
            len,
            content: cap.content,
            attrs,
        })))
    }

    /// A complete end tag, `</` to `>`.
    fn end_tag(&mut self, w: &mut Work, tag: &[u8]) -> Result<Tok, XmlError> {
        if self.doc != Doc::Root {
            return Err(nwf("end tag outside of the root element"));
        }
        let max = self.limits.max_token_length;
        // An ASCII name, whitespace and `>` are all ASCII: no UTF-8 check needed. Any
        // other tag takes the general path, which judges it (and orders errors) as ever.
        let name_end = match ascii_qname(tag, 2, max) {
            Some(Ok((_, local, i))) if skip_ws(tag, i) == tag.len() - 1 => local.end,
            _ => {
                let s = core::str::from_utf8(tag).map_err(|_| nwf("invalid UTF-8"))?;
                let (_, local, i) = qname(s.as_bytes(), 2, max)?;
                if skip_ws(tag, i) != tag.len() - 1 {
                    return Err(nwf("malformed end tag"));
                }
                local.end
            }
        };
        let start = match self.frames.len() {
            0 | 1 => 0,
            n => self.frames.get(n - 2).map_or(0, |f| f.name_end as usize),
        };
        if self.names.get(start..) != tag.get(2..name_end) {
            return Err(nwf("end tag does not match the start tag"));
        }
        if self.depth > self.tree_depth {
            self.count(tag.len())?;
        }
        if let Some(c) = w.capture.as_mut() {
            if self.depth == self.tree_depth + 1 {
                c.content.end = offset(w.raw.len());
            }
            w.raw.extend_from_slice(tag);
        }
        Ok(Tok::Done(tag.len(), self.close_element(w)?))
    }

    /// Close the innermost open element.
    fn close_element(&mut self, w: &mut Work) -> Result<Option<XmlEvent>, XmlError> {
        if let Some(f) = self.frames.pop() {
            self.scopes.truncate(f.decls);
        }
        self.names
            .truncate(self.frames.last().map_or(0, |f| f.name_end as usize));
        self.depth = self.depth.saturating_sub(1);
        if self.depth == 0 {
            self.doc = Doc::After;
        }
        if w.capture.is_some() {
            return self.close_in_capture(w);
        }
        if self.depth >= self.tree_depth {
            let done = w.stack.pop().ok_or_else(order)?;
            if self.depth == self.tree_depth {
                if self.depth == 0 {
                    self.closed = true;
                }
                return Ok(Some(XmlEvent::Element(done)));
            }
            let parent = w.stack.last_mut().ok_or_else(order)?;
            parent.children.push(Node::Element(done));
            Ok(None)
        } else {
            // Only the stream root lies above the tree depth.
            self.closed = true;
            Ok(Some(XmlEvent::StreamClose))
        }
    }

    /// Document mode, after the root closed: only whitespace may follow.
    pub(crate) fn finish(&mut self, buf: &mut &[u8]) -> Result<(), XmlError> {
        match self.next(buf, true)? {
            None => Ok(()),
            Some(_) => Err(self.fail(nwf("content after the root element"))),
        }
    }
}

/// Namespace constraints on one declaration (Namespaces in XML 1.0, 3):
/// `xml` keeps its namespace, which no other prefix (nor the default) gets,
/// and a prefix cannot be undeclared.
fn check_decl(prefix: Option<&[u8]>, local: &[u8], value: &[u8]) -> Result<(), XmlError> {
    let bad = |m: &str| Err(XmlError::InvalidNamespace(m.to_owned()));
    let xml_ns = XML_NS.as_bytes();
    match prefix {
        Some(b"xmlns") if local == b"xml" && value != xml_ns => {
            bad("the xml prefix cannot be rebound")
        }
        Some(b"xmlns") if local != b"xml" && value == xml_ns => {
            bad("the xml namespace bound to another prefix")
        }
        Some(b"xmlns") if value.is_empty() => bad("a prefix cannot be undeclared"),
        None if local == b"xmlns" && value == xml_ns => {
            bad("the xml namespace cannot be the default")
        }
        _ => Ok(()),
    }
}

fn nwf(m: &str) -> XmlError {
    XmlError::NotWellFormed(m.to_owned())
}

fn order() -> XmlError {
    // The tokenizer guarantees this never happens; guard a broken invariant.
    XmlError::NotWellFormed("unexpected parser state".to_owned())
}

fn undeclared(prefix: Option<&[u8]>) -> XmlError {
    let p = String::from_utf8_lossy(prefix.unwrap_or_default());
    XmlError::InvalidNamespace(format!("undeclared prefix {p}"))
}

/// Names and values cut from a start tag at ASCII bytes, out of its UTF-8 checked part:
/// always UTF-8; the error guards a broken invariant.
fn text(b: &[u8]) -> Result<&str, XmlError> {
    core::str::from_utf8(b).map_err(|_| order())
}

fn find(needle: u8, hay: &[u8], from: usize) -> Option<usize> {
    // Usually a few bytes away (a closing quote, `>`): a plain loop before memchr's call
    // and dispatch.
    const HEAD: usize = 16;
    let hay = hay.get(from..)?;
    let head = hay.get(..HEAD).unwrap_or(hay);
    if let Some(i) = head.iter().position(|&c| c == needle) {
        return Some(i + from);
    }
    memchr::memchr(needle, hay.get(HEAD..)?).map(|i| i + HEAD + from)
}

/// The first byte of `hay` that is one of `needles`: eight bytes at a time over the first
/// bytes, then by `far` (memchr). What [`find_tag_end`] looks for (a quote, `>`) is usually
/// a few bytes away, where memchr's call and dispatch cost more.
#[inline(always)]
fn near(hay: &[u8], needles: [u8; 3], far: impl FnOnce(&[u8]) -> Option<usize>) -> Option<usize> {
    const NEAR: usize = 64;
    let [n0, n1, n2] = needles;
    let mut i = 0;
    while i < NEAR {
        let Some(Ok(word)) = hay.get(i..i + 8).map(<[u8; 8]>::try_from) else {
            // Fewer than eight bytes left.
            let rest = hay.get(i..).unwrap_or_default();
            return rest
                .iter()
                .position(|&c| c == n0 || c == n1 || c == n2)
                .map(|p| p + i);
        };
        let x = u64::from_le_bytes(word);
        let found = has_byte(x, n0) | has_byte(x, n1) | has_byte(x, n2);
        if found != 0 {
            // The lowest flagged byte is a match (false alarms lie only above one).
            return Some(i + (found.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    far(hay.get(i..)?).map(|p| p + i)
}

/// The final `>` of a start tag (skipping quoted values), or where to resume.
fn find_tag_end(data: &[u8], scan: Scan) -> Result<usize, Scan> {
    let mut pos = scan.pos.max(1);
    let mut quote = scan.quote;
    loop {
        let rest = data.get(pos..).unwrap_or_default();
        if quote != 0 {
            match near(rest, [quote; 3], |h| memchr::memchr(quote, h)) {
                Some(i) => {
                    pos += i + 1;
                    quote = 0;
                }
                None => {
                    return Err(Scan {
                        pos: data.len(),
                        quote,
                    });
                }
            }
        } else {
            let stops = [b'>', b'\'', b'"'];
            match near(rest, stops, |h| memchr::memchr3(b'>', b'\'', b'"', h)) {
                Some(i) => {
                    let at = pos + i;
                    match data.get(at) {
                        Some(b'>') => return Ok(at),
                        Some(&q) => {
                            quote = q;
                            pos = at + 1;
                        }
                        None => return Err(Scan { pos: at, quote: 0 }),
                    }
                }
                None => {
                    return Err(Scan {
                        pos: data.len(),
                        quote: 0,
                    });
                }
            }
        }
    }
}

/// Whether a name followed by this byte is reported (and judged) by rxml
/// before the syntax around it; pinned by the differential regressions.
fn ends_name_token(b: Option<&u8>) -> bool {
    matches!(
        b,
        Some(b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>' | b'\'' | b'"' | b'=')
    )
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

/// A qualified name starting at `start`: (prefix, local part, end).
#[allow(clippy::type_complexity)]
#[inline(always)]
fn qname(
    b: &[u8],
    start: usize,
    max: usize,
) -> Result<(Option<Range<usize>>, Range<usize>, usize), XmlError> {
    // Inlined for the ASCII names, with the rest out of line. `b` is UTF-8 (checked by
    // the caller), looked at as text only on that path.
    match ascii_qname(b, start, max) {
        Some(found) => found,
        None => unicode_qname(text(b)?, start, max),
    }
}

/// [`qname`] for a name with characters from U+0080 on (or no name).
#[allow(clippy::type_complexity)]
#[inline(never)]
fn unicode_qname(
    s: &str,
    start: usize,
    max: usize,
) -> Result<(Option<Range<usize>>, Range<usize>, usize), XmlError> {
    let end = name_end(s, start)?;
    if end == start {
        return Err(nwf("name expected"));
    }
    if end - start > max {
        return Err(XmlError::LimitExceeded(Limit::TokenLength));
    }
    let b = s.as_bytes();
    match memchr::memchr(b':', b.get(start..end).unwrap_or_default()) {
        None => Ok((None, start..end, end)),
        Some(i) => {
            let colon = start + i;
            let local = colon + 1..end;
            if i == 0
                || local.is_empty()
                || memchr::memchr(b':', b.get(local.clone()).unwrap_or_default()).is_some()
            {
                return Err(nwf("malformed qualified name"));
            }
            // The local part must itself start like a name.
            let first = s.get(local.clone()).and_then(|l| l.chars().next());
            if !first.is_some_and(is_name_start_char) {
                return Err(nwf("malformed qualified name"));
            }
            Ok((Some(start..colon), local, end))
        }
    }
}

/// Byte classes of ASCII name characters: bit 0, may start a name; bit 1, may continue
/// one; bit 2, may continue one and is not `:` (so that a name scan needs one test a
/// byte). Bytes from 0x80 on are 0 here and go to the Unicode path.
const NAME_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 128 {
        let b = c as u8;
        let start = b.is_ascii_alphabetic() || b == b'_' || b == b':';
        let more = start || b.is_ascii_digit() || b == b'-' || b == b'.';
        t[c] = start as u8 | ((more as u8) << 1) | (((more && b != b':') as u8) << 2);
        c += 1;
    }
    t
};

/// [`qname`] for a name of ASCII characters, scanned once with its colon noted (tag and
/// attribute names nearly always are); `None` to take the general path (a byte from 0x80
/// on in or right after the name, or no name at all).
#[allow(clippy::type_complexity)]
#[inline(always)]
fn ascii_qname(
    b: &[u8],
    start: usize,
    max: usize,
) -> Option<Result<(Option<Range<usize>>, Range<usize>, usize), XmlError>> {
    let rest = b.get(start..)?;
    let first = *rest.first()?;
    if NAME_CLASS[usize::from(first)] & 1 == 0 {
        return None;
    }
    let mut colon = None;
    let mut colons = 0usize;
    // Offsets in `rest`: runs of name bytes other than `:`, joined at colons.
    let mut end = 0;
    loop {
        let tail = rest.get(end..).unwrap_or_default();
        end += tail
            .iter()
            .position(|&c| NAME_CLASS[usize::from(c)] & 4 == 0)
            .unwrap_or(tail.len());
        match rest.get(end) {
            Some(b':') => {
                colons += 1;
                colon.get_or_insert(end);
                end += 1;
            }
            Some(&c) if c >= 0x80 => return None,
            _ => break,
        }
    }
    if end > max {
        return Some(Err(XmlError::LimitExceeded(Limit::TokenLength)));
    }
    let end = start + end;
    Some(match colon {
        None => Ok((None, start..end, end)),
        Some(c) => {
            let c = start + c;
            // Not `a:`, `:a` or `a:b:c`, and the local part must start like a name.
            let local_start = b.get(c + 1).copied().unwrap_or(0);
            if c == start || colons > 1 || NAME_CLASS[usize::from(local_start)] & 1 == 0 {
                Err(nwf("malformed qualified name"))
            } else {
                Ok((Some(start..c), c + 1..end, end))
            }
        }
    })
}

/// End of the XML name starting at `start` (`start` if there is none).
fn name_end(s: &str, start: usize) -> Result<usize, XmlError> {
    let b = s.as_bytes();
    let mut i = start;
    // ASCII fast path.
    while let Some(&c) = b.get(i) {
        let ok = if i == start {
            c.is_ascii_alphabetic() || c == b'_' || c == b':'
        } else {
            c.is_ascii_alphanumeric() || matches!(c, b'_' | b':' | b'-' | b'.')
        };
        if ok {
            i += 1;
        } else if c >= 0x80 {
            break;
        } else {
            return Ok(i);
        }
    }
    let rest = s.get(i..).unwrap_or_default();
    for (off, ch) in rest.char_indices() {
        let at = i + off;
        let ok = if ch.is_ascii() {
            if at == start {
                ch.is_ascii_alphabetic() || ch == '_' || ch == ':'
            } else {
                ch.is_ascii_alphanumeric() || matches!(ch, '_' | ':' | '-' | '.')
            }
        } else if at == start {
            is_name_start_char(ch)
        } else {
            is_name_char(ch)
        };
        if !ok {
            return Ok(at);
        }
    }
    Ok(s.len())
}

fn is_name_start_byte(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b':' || b >= 0x80
}

/// XML 1.0 (5th ed.) `NameStartChar`, without U+FDF0–U+FFFD as in rxml,
/// which the previous parser used (no name needs them).
fn is_name_start_char(c: char) -> bool {
    matches!(c,
        ':' | 'A'..='Z' | '_' | 'a'..='z'
        | '\u{C0}'..='\u{D6}' | '\u{D8}'..='\u{F6}' | '\u{F8}'..='\u{2FF}'
        | '\u{370}'..='\u{37D}' | '\u{37F}'..='\u{1FFF}' | '\u{200C}'..='\u{200D}'
        | '\u{2070}'..='\u{218F}' | '\u{2C00}'..='\u{2FEF}' | '\u{3001}'..='\u{D7FF}'
        | '\u{F900}'..='\u{FDCF}' | '\u{10000}'..='\u{EFFFF}')
}

fn is_name_char(c: char) -> bool {
    is_name_start_char(c)
        || matches!(c,
            '-' | '.' | '0'..='9' | '\u{B7}' | '\u{300}'..='\u{36F}' | '\u{203F}'..='\u{2040}')
}

/// Bytes that need a look in character data: `&`, `]`, CR, other C0
/// controls, and 0xEF (which starts U+FFFE / U+FFFF).
static TEXT_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = !matches!(i, 0x09 | 0x0A);
        i += 1;
    }
    t[b'&' as usize] = true;
    t[b']' as usize] = true;
    t[0xEF] = true;
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// Nonzero if a byte of `x` is `b`. Exact as a yes or no (a borrow only adds false
/// alarms in bytes above one that matches).
fn has_byte(x: u64, b: u8) -> u64 {
    let y = x ^ (ONES * u64::from(b));
    y.wrapping_sub(ONES) & !y & HIGH
}

/// The bytes of `x` that are not ASCII, or a control character, or one of `stops`, each
/// flagged by its high bit; none of the others needs a look from the text or attribute
/// value decoder (which looks at the rest of what it calls special, such as tab and LF in
/// text, one by one). The lowest flag is exact (false alarms lie only above one).
fn loud_bytes(x: u64, stops: [u8; 3]) -> u64 {
    let [p, q, r] = stops;
    // A byte of `x` below 0x20 (a byte from 0x80 on never borrows): as in `has_byte`.
    let control = x.wrapping_sub(ONES * 0x20) & !x & HIGH;
    x & HIGH | control | has_byte(x, p) | has_byte(x, q) | has_byte(x, r)
}

/// Whether no byte of `x` needs a look (see [`loud_bytes`]).
#[cfg(test)]
fn quiet_word(x: u64, stops: [u8; 3]) -> bool {
    loud_bytes(x, stops) == 0
}

/// Skips `b` from `i` on, eight bytes at a time, to the first byte that [`loud_bytes`]
/// flags, or to where fewer than eight are left: the caller's byte loop then starts at
/// what it has to look at, not at the start of its word.
fn skip_quiet(b: &[u8], mut i: usize, stops: [u8; 3]) -> usize {
    while let Some(word) = b.get(i..i + 8)
        && let Ok(word) = <[u8; 8]>::try_from(word)
    {
        let loud = loud_bytes(u64::from_le_bytes(word), stops);
        if loud != 0 {
            return i + (loud.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    i
}

/// Same for attribute values: also `<` and the whitespace that is normalized.
static ATTR_SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[0xEF] = true;
    t
};

/// Decode character data from `run` (no `<` in it) into `out`; returns the
/// bytes consumed. With `complete`, `run` is followed by `<` (or the input
/// ends) and must be consumed entirely; otherwise an unfinished tail is left.
fn decode_text(run: &[u8], complete: bool, out: &mut String) -> Result<usize, XmlError> {
    let valid = match core::str::from_utf8(run) {
        Ok(s) => s,
        Err(e) if !complete && e.error_len().is_none() => {
            // A UTF-8 sequence cut by the end of the input.
            let (ok, _) = run.split_at(e.valid_up_to());
            core::str::from_utf8(ok).map_err(|_| nwf("invalid UTF-8"))?
        }
        Err(_) => return Err(nwf("invalid UTF-8")),
    };
    scan_text(valid.as_bytes(), complete, &mut Decode { src: valid, out })
}

/// Where [`scan_text`] puts the text: pieces of its input and decoded characters.
trait TextOut {
    fn piece(&mut self, r: Range<usize>);
    fn char(&mut self, c: char);
}

/// Decoding into `out`, the input being `src`.
struct Decode<'a> {
    src: &'a str,
    out: &'a mut String,
}

impl TextOut for Decode<'_> {
    fn piece(&mut self, r: Range<usize>) {
        self.out.push_str(self.src.get(r).unwrap_or_default());
    }
    fn char(&mut self, c: char) {
        self.out.push(c);
    }
}

/// Checking only.
impl TextOut for () {
    fn piece(&mut self, _: Range<usize>) {}
    fn char(&mut self, _: char) {}
}

/// [`decode_text`] after the UTF-8 check (`b` is valid UTF-8), into any [`TextOut`].
fn scan_text(b: &[u8], complete: bool, out: &mut impl TextOut) -> Result<usize, XmlError> {
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        // Fast skip over ordinary bytes: ASCII ones eight at a time, then one by one.
        i = skip_quiet(b, i, [b'&', b']', b']']);
        while let Some(&c) = b.get(i) {
            if TEXT_SPECIAL[usize::from(c)] {
                break;
            }
            i += 1;
        }
        let Some(&c) = b.get(i) else { break };
        out.piece(start..i);
        match c {
            b'&' => match reference(b, i)? {
                Some((ch, next)) => {
                    out.char(ch);
                    i = next;
                }
                None if complete => return Err(nwf("unterminated reference")),
                None => return Ok(i),
            },
            b'\r' => match b.get(i + 1) {
                Some(b'\n') => i += 1,
                Some(_) => {
                    out.char('\n');
                    i += 1;
                }
                None if complete => {
                    out.char('\n');
                    i += 1;
                }
                None => return Ok(i),
            },
            b']' => match (b.get(i + 1), b.get(i + 2)) {
                (Some(b']'), Some(b'>')) => {
                    return Err(nwf("']]>' in character data"));
                }
                (Some(b']'), None) | (None, _) if !complete => return Ok(i),
                _ => {
                    out.char(']');
                    i += 1;
                }
            },
            0xEF => {
                if matches!(b.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) {
                    return Err(nwf("invalid character"));
                }
                // Not a non-character: copied with the next ordinary run.
                start = i;
                i += 1;
                continue;
            }
            _ => return Err(nwf("invalid character")),
        }
        start = i;
    }
    out.piece(start..b.len());
    Ok(b.len())
}

/// Decode an attribute value into `out`, normalizing whitespace to spaces as XML 1.0
/// §3.3.3 requires: `v` up to its first `quote` (then where that is), else all of it. One
/// pass finds the end of the value and decodes it.
/// `v` is UTF-8 (checked with its tag); so is what is added to `out`.
fn decode_attr(b: &[u8], quote: u8, out: &mut Vec<u8>) -> Result<Option<usize>, XmlError> {
    let mut i = 0;
    let mut start = 0;
    while i < b.len() {
        i = skip_quiet(b, i, [b'&', b'<', quote]);
        while let Some(&c) = b.get(i) {
            if ATTR_SPECIAL[usize::from(c)] || c == quote {
                break;
            }
            i += 1;
        }
        let Some(&c) = b.get(i) else { break };
        out.extend_from_slice(b.get(start..i).unwrap_or_default());
        match c {
            _ if c == quote => return Ok(Some(i)),
            // The reference sees the value only: it ends at the quote, if that comes
            // before the reference could have ended.
            b'&' => match reference(value_near(b, i, quote), i)? {
                Some((ch, next)) => {
                    out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                    i = next;
                }
                None => return Err(nwf("unterminated reference")),
            },
            b'<' => return Err(nwf("'<' in an attribute value")),
            b'\r' if b.get(i + 1) == Some(&b'\n') => {
                out.push(b' ');
                i += 2;
            }
            b'\t' | b'\n' | b'\r' => {
                out.push(b' ');
                i += 1;
            }
            0xEF => {
                if matches!(b.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) {
                    return Err(nwf("invalid character"));
                }
                start = i;
                i += 1;
                continue;
            }
            _ => return Err(nwf("invalid character")),
        }
        start = i;
    }
    out.extend_from_slice(b.get(start..).unwrap_or_default());
    Ok(None)
}

/// `b` cut at the first `quote` after `at`, looked for as far as a reference at `at` can
/// reach (`&#x`, the longest digits allowed and one more, `;`): the same reference.
fn value_near(b: &[u8], at: usize, quote: u8) -> &[u8] {
    let reach = (at + MAX_REFERENCE_LENGTH + 5).min(b.len());
    let window = b.get(at..reach).unwrap_or_default();
    match window.iter().position(|&c| c == quote) {
        Some(p) => b.get(..at + p).unwrap_or_default(),
        None => b.get(..reach).unwrap_or_default(),
    }
}

/// The reference starting at `b[at] == '&'`: the character and the offset
/// after `;`, or `None` if the input ends first.
fn reference(b: &[u8], at: usize) -> Result<Option<(char, usize)>, XmlError> {
    let body = at + 1;
    let (radix, digits) = match (b.get(body), b.get(body + 1)) {
        (Some(b'#'), Some(b'x')) => (16, body + 2),
        (Some(b'#'), Some(_)) => (10, body + 1),
        (Some(b'#'), None) | (None, _) => return Ok(None),
        (Some(_), _) => (0, body),
    };
    let mut i = digits;
    loop {
        match b.get(i) {
            None => {
                if i - digits > MAX_REFERENCE_LENGTH {
                    return Err(nwf("reference too long"));
                }
                return Ok(None);
            }
            Some(b';') => break,
            Some(&c) => {
                let ok = match radix {
                    16 => c.is_ascii_hexdigit(),
                    10 => c.is_ascii_digit(),
                    // Entity names: ASCII suffices, only five are known.
                    _ => {
                        c.is_ascii_alphanumeric()
                            || matches!(c, b'_' | b':' | b'-' | b'.')
                            || c >= 0x80
                    }
                };
                if !ok {
                    return Err(nwf("malformed reference"));
                }
                i += 1;
                if i - digits > MAX_REFERENCE_LENGTH {
                    return Err(nwf("reference too long"));
                }
            }
        }
    }
    let name = b.get(digits..i).unwrap_or_default();
    if name.is_empty() {
        return Err(nwf("empty reference"));
    }
    let ch = if radix == 0 {
        match name {
            b"amp" => '&',
            b"lt" => '<',
            b"gt" => '>',
            b"apos" => '\'',
            b"quot" => '"',
            _ => return Err(nwf("undeclared entity")),
        }
    } else {
        let mut n: u32 = 0;
        for &c in name {
            // At most 8 digits: no overflow in u32 for hex, nor for decimal.
            n = n * radix + char::from(c).to_digit(radix).unwrap_or(0);
        }
        match char::from_u32(n) {
            Some(ch) if is_xml_char(ch) => ch,
            _ => return Err(nwf("reference to an invalid character")),
        }
    };
    Ok(Some((ch, i + 1)))
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// CDATA content: verbatim apart from end-of-line normalization; characters
/// are checked.
fn push_cdata(s: &str, out: &mut String) -> Result<(), XmlError> {
    for ch in s.chars() {
        if !is_xml_char(ch) {
            return Err(nwf("invalid character"));
        }
    }
    let mut rest = s;
    while let Some(i) = memchr::memchr(b'\r', rest.as_bytes()) {
        out.push_str(rest.get(..i).unwrap_or_default());
        out.push('\n');
        rest = rest.get(i + 1..).unwrap_or_default();
        if rest.starts_with('\n') {
            rest = rest.get(1..).unwrap_or_default();
        }
    }
    out.push_str(rest);
    Ok(())
}

/// The pseudo-attributes of the XML declaration (between `<?xml` and `?>`).
fn parse_decl(body: &[u8]) -> Result<(), XmlError> {
    // As in start tags, invalid UTF-8 ends the declaration early, so that
    // errors before it are reported first.
    let (s, utf8_ok) = match core::str::from_utf8(body) {
        Ok(s) => (s, true),
        Err(e) => (
            core::str::from_utf8(body.get(..e.valid_up_to()).unwrap_or_default())
                .map_err(|_| nwf("invalid UTF-8"))?,
            false,
        ),
    };
    let b = s.as_bytes();
    let mut i = 0;
    let mut seen = 0;
    let names = ["version", "encoding", "standalone"];
    loop {
        let j = skip_ws(b, i);
        if j == b.len() {
            break;
        }
        if j == i {
            return Err(nwf("malformed XML declaration"));
        }
        let end = name_end(s, j)?;
        let name = s.get(j..end).unwrap_or_default();
        let Some(pos) = names.iter().position(|n| *n == name) else {
            return Err(nwf("malformed XML declaration"));
        };
        // version first and required; the others optional, in this order.
        if pos < seen || (seen == 0 && pos != 0) {
            return Err(nwf("malformed XML declaration"));
        }
        seen = pos + 1;
        let k = skip_ws(b, end);
        if b.get(k) != Some(&b'=') {
            return Err(nwf("malformed XML declaration"));
        }
        let k = skip_ws(b, k + 1);
        let quote = match b.get(k) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(nwf("malformed XML declaration")),
        };
        let vend = find(quote, b, k + 1).ok_or_else(|| nwf("malformed XML declaration"))?;
        let mut decoded = Vec::new();
        decode_attr(b.get(k + 1..vend).unwrap_or_default(), quote, &mut decoded)?;
        let value = decoded.as_slice();
        match pos {
            0 if value != b"1.0" => {
                return Err(XmlError::RestrictedXml("only XML version 1.0 is allowed"));
            }
            1 if !value.eq_ignore_ascii_case(b"utf-8") => {
                return Err(XmlError::RestrictedXml("only utf-8 encoding is allowed"));
            }
            2 if !value.eq_ignore_ascii_case(b"yes") => {
                return Err(XmlError::RestrictedXml(
                    "only standalone documents are allowed",
                ));
            }
            _ => {}
        }
        i = vend + 1;
    }
    if !utf8_ok {
        return Err(nwf("invalid UTF-8"));
    }
    if seen == 0 {
        return Err(nwf("XML declaration without version"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_shadow_and_unwind() {
        let mut s = Scopes::default();
        let ns = |s: &Scopes, p: Option<&str>| {
            s.resolve(p.map(str::as_bytes))
                .map(|u| core::str::from_utf8(u).unwrap_or("(not UTF-8)").to_owned())
        };
        fn p(s: &str) -> Option<&[u8]> {
            Some(s.as_bytes())
        }
        assert_eq!(ns(&s, None).as_deref(), Some(""));
        assert_eq!(ns(&s, Some("xml")).as_deref(), Some(XML_NS));
        assert_eq!(ns(&s, Some("p")), None);
        let outer = s.mark();
        s.push(None, b"outer");
        s.push(p("p"), b"urn:p1");
        let inner = s.mark();
        s.push(p("p"), b"urn:p2");
        s.push(None, b"");
        assert_eq!(ns(&s, Some("p")).as_deref(), Some("urn:p2"));
        assert_eq!(ns(&s, None).as_deref(), Some(""));
        s.truncate(inner);
        assert_eq!(ns(&s, Some("p")).as_deref(), Some("urn:p1"));
        assert_eq!(ns(&s, None).as_deref(), Some("outer"));
        s.truncate(outer);
        assert_eq!(ns(&s, Some("p")), None);
        assert!(s.buf.is_empty());
        s.truncate(outer); // a repeated truncation is harmless
    }

    #[test]
    fn references() {
        let r = |s: &str| reference(s.as_bytes(), 0);
        assert_eq!(r("&amp;x"), Ok(Some(('&', 5))));
        assert_eq!(r("&#x41;"), Ok(Some(('A', 6))));
        assert_eq!(r("&#65;"), Ok(Some(('A', 5))));
        assert_eq!(r("&am"), Ok(None));
        assert_eq!(r("&#"), Ok(None));
        assert!(r("&#0;").is_err());
        assert!(r("&#xD800;").is_err());
        assert!(r("&#xFFFE;").is_err());
        assert!(r("&nbsp;").is_err());
        assert!(r("&;").is_err());
        assert!(r("&#X41;").is_err());
        assert!(r("&#x0000000041;").is_err());
    }

    #[test]
    fn text_tails_wait_for_more() {
        let run = |s: &[u8], complete| {
            let mut out = String::new();
            decode_text(s, complete, &mut out).map(|n| (n, out))
        };
        assert_eq!(run(b"ab\r", false), Ok((2, "ab".into())));
        assert_eq!(run(b"ab\r", true), Ok((3, "ab\n".into())));
        assert_eq!(run(b"a\r\nb\rc", true), Ok((6, "a\nb\nc".into())));
        assert_eq!(run(b"x]]", false), Ok((1, "x".into())));
        assert_eq!(run(b"x]", false), Ok((1, "x".into())));
        assert_eq!(run(b"x]a]]]", false), Ok((4, "x]a]".into())));
        assert!(run(b"x]]>", false).is_err());
        assert_eq!(
            run("é".as_bytes().get(..1).unwrap_or_default(), false),
            Ok((0, String::new()))
        );
        assert!(run(b"\xC3", true).is_err());
        assert_eq!(run(b"a&lt", false), Ok((1, "a".into())));
        assert!(run(b"a\x01", true).is_err());
        assert!(run("\u{FFFF}".as_bytes(), true).is_err());
        assert_eq!(
            run("\u{FFFD}\u{EFFF}".as_bytes(), true),
            Ok((6, "\u{FFFD}\u{EFFF}".into()))
        );
    }

    #[test]
    fn word_tests_miss_nothing() {
        let quiet = |w: &[u8; 8]| {
            w.iter()
                .all(|&c| (0x20..0x80).contains(&c) && c != b'&' && c != b']')
        };
        let mut hay = [0u8; 70];
        for b in 0..=255u8 {
            for other in [
                b'a', b'&', b'\t', b']', 0x1F, 0x20, 0x7F, 0x80, 0xEF, 0xFF, 0,
            ] {
                for at in 0..8 {
                    let mut w = [b'a'; 8];
                    for (n, c) in w.iter_mut().enumerate() {
                        if n == at {
                            *c = b;
                        } else if n == (at + 3) % 8 {
                            *c = other;
                        }
                    }
                    let x = u64::from_le_bytes(w);
                    if quiet_word(x, [b'&', b']', b']']) {
                        assert!(quiet(&w), "{w:?}");
                    } else {
                        // The first flagged byte is the first that is not quiet.
                        let first = loud_bytes(x, [b'&', b']', b']']).trailing_zeros() / 8;
                        let want = w.iter().position(|&c| !quiet(&[c; 8]));
                        assert_eq!(Some(first as usize), want, "{w:?}");
                    }
                    assert_ne!(has_byte(x, b), 0);
                    assert_eq!(has_byte(x, b'>') != 0, w.contains(&b'>'), "{w:?}");
                }
            }
            // `near` against a plain search, the byte anywhere (also past the words).
            for at in 0..hay.len() {
                hay.fill(b'a');
                if let Some(c) = hay.get_mut(at) {
                    *c = b;
                }
                for len in [at + 1, hay.len()] {
                    let h = hay.get(..len).unwrap_or_default();
                    let stops = [b'>', b'\'', b'"'];
                    let want = h.iter().position(|c| stops.contains(c));
                    let far = |t: &[u8]| memchr::memchr3(b'>', b'\'', b'"', t);
                    assert_eq!(near(h, stops, far), want, "{at} {len}");
                    assert_eq!(find(b, h, 0), h.iter().position(|&c| c == b));
                }
            }
        }
    }

    #[test]
    fn ascii_names() {
        let q = |s: &str, start| ascii_qname(s.as_bytes(), start, 8);
        assert_eq!(q("<a:b c", 1), Some(Ok((Some(1..2), 3..4, 4))));
        assert_eq!(q("<abc>", 1), Some(Ok((None, 1..4, 4))));
        assert_eq!(q("<abc", 1), Some(Ok((None, 1..4, 4))));
        assert_eq!(q("<:abc", 1), Some(Err(nwf("malformed qualified name"))));
        assert_eq!(q("<a:b:c", 1), Some(Err(nwf("malformed qualified name"))));
        assert_eq!(q("<a:", 1), Some(Err(nwf("malformed qualified name"))));
        assert_eq!(q("<a:1", 1), Some(Err(nwf("malformed qualified name"))));
        assert_eq!(
            q("<abcdefghi", 1),
            Some(Err(XmlError::LimitExceeded(Limit::TokenLength)))
        );
        assert_eq!(q("<a\u{e9}", 1), None);
        assert_eq!(q("<1a", 1), None);
        assert_eq!(q("<", 1), None);
    }

    #[test]
    fn attribute_values_are_normalized() {
        let mut out = Vec::new();
        let r = decode_attr(b"a\tb\nc\r\nd\re&#x9;f&amp;&#xe9;", b'"', &mut out);
        assert_eq!(r, Ok(None));
        assert_eq!(out, "a b c d e\tf&\u{e9}".as_bytes());
        assert!(decode_attr(b"a<b", b'"', &mut out).is_err());
        // Up to the quote, which also ends a reference.
        let mut out = Vec::new();
        assert_eq!(decode_attr(b"a&amp;b'c<", b'\'', &mut out), Ok(Some(7)));
        assert_eq!(out, b"a&b");
        let mut out = Vec::new();
        let long = b"x&#x0000000041;'";
        assert_eq!(
            decode_attr(long, b'\'', &mut out),
            Err(nwf("reference too long"))
        );
        for (v, e) in [
            ("&am'p;'", "unterminated reference"),
            ("&#'", "unterminated reference"),
            ("&#x'", "unterminated reference"),
            ("&amp';'", "unterminated reference"),
            ("&12345678'", "unterminated reference"),
            ("&123456789'", "reference too long"),
            ("&#x12345678'", "unterminated reference"),
            ("&#x123456789'", "reference too long"),
        ] {
            let mut out = Vec::new();
            assert_eq!(
                decode_attr(v.as_bytes(), b'\'', &mut out),
                Err(nwf(e)),
                "{v}"
            );
            // As when the value was cut out first.
            let cut = v.get(..v.find('\'').unwrap_or(0)).unwrap_or_default();
            assert_eq!(
                decode_attr(cut.as_bytes(), b'\'', &mut out),
                Err(nwf(e)),
                "{v}"
            );
        }
    }

    #[test]
    fn tag_end_skips_quotes_and_resumes() {
        assert_eq!(find_tag_end(b"<a b='>' c=\">\">", Scan::default()), Ok(14));
        let s = find_tag_end(b"<a b='x>", Scan::default())
            .err()
            .unwrap_or_default();
        assert_eq!((s.pos, s.quote), (8, b'\''));
        assert_eq!(find_tag_end(b"<a b='x>'>", s), Ok(9));
    }

    /// Events and the error of `input` fed in `chunks` pieces (never at its end).
    fn run(input: &[u8], chunk: usize, limits: XmlLimits, raw: bool) -> Vec<String> {
        static SPEC: RawSpec = RawSpec {
            name: "m",
            ns: "jabber:client",
        };
        let mut p = Parser::new(limits, 1);
        p.keep_raw(raw.then_some(&SPEC));
        let mut out = Vec::new();
        for mut buf in input.chunks(chunk) {
            loop {
                match p.next(&mut buf, false) {
                    Ok(Some(ev)) => out.push(format!("{ev:?}")),
                    Ok(None) => break,
                    Err(e) => {
                        out.push(format!("{e:?}"));
                        return out;
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_kept_raw_element_fails_first_where_its_tree_would() {
        // Inside a kept element the attributes are checked in their order, prefix then
        // key, as when its tree is built (found by the `xml_stream` fuzz target).
        let cases: &[(&[u8], &str)] = &[
            (
                b"<s xmlns='jabber:client'><m><n a='1' a='2' q:b='3'/></m>",
                "duplicate attribute",
            ),
            (
                b"<s xmlns='jabber:client'><m><n q:b='3' a='1' a='2'/></m>",
                "undeclared prefix q",
            ),
            (
                b"<s xmlns='jabber:client'><m xmlns:q='urn:q'><n q:b='1' a='1' q:b='2' r:c='3'/></m>",
                "duplicate attribute",
            ),
        ];
        for (input, error) in cases {
            let tree = run(input, input.len(), XmlLimits::default(), false);
            let raw = run(input, input.len(), XmlLimits::default(), true);
            let last = |v: &[String]| v.last().cloned().unwrap_or_default();
            assert_eq!(last(&raw), last(&tree), "{input:?}");
            assert!(last(&tree).contains(error), "{input:?}: {}", last(&tree));
        }
    }

    #[test]
    fn start_tags_read_at_once_as_when_scanned_first() {
        // Whole, a start tag is read at once; a byte at a time, its end is found first.
        let tight = XmlLimits {
            max_element_bytes: 50,
            max_depth: 3,
            max_attributes: 2,
            max_token_length: 16,
        };
        let cases: &[&[u8]] = &[
            b"<s xmlns='jabber:client'><m a='1' b=\"x>y\" c='&amp;&#x41;'>t</m>",
            b"<s xmlns='jabber:client'><m a='1'/><m xmlns:p='urn:p' p:a='1'><n/></m>",
            b"<s xmlns='jabber:client'><x><m a='1' b",
            b"<s xmlns='jabber:client'><m a='1' a='2'>",
            b"<s xmlns='jabber:client'><m a='1'' b='2'>",
            b"<s xmlns='jabber:client'><m a='<' b='>'>",
            b"<s xmlns='jabber:client'><m a='&bogus;' b=>",
            b"<s xmlns='jabber:client'><m a='\xff' b=>",
            b"<s xmlns='jabber:client'><m a='\xc3\xa9'><m \xc3\xa9='1'/>",
            b"<s xmlns='jabber:client'><m a='1'/ >",
            b"<s xmlns='jabber:client'><m a='12345678901234567' b='1'/>",
            b"<s xmlns='jabber:client'><m a='1' b='2' c='3'/>",
            b"<s xmlns='jabber:client'><m xmlns:xml='urn:x' a=>",
            b"<s xmlns='jabber:client'><m xmlns:p='' a=>",
            b"<s xmlns='jabber:client'><m a='1' b='2'><n c='3' d='4'><o e='5'/></n></m>",
            b"<s xmlns='jabber:client'><a><b><c><d a='1' b=>",
            b"<s xmlns='jabber:client'/><m a='1'>",
            b"<s xmlns='jabber:client'><m a='1' b='2' c",
            // Limits on tags with nothing else wrong.
            b"<s xmlns='jabber:client'><a><b><c><d><e/>",
            b"<s xmlns='jabber:client'><m a='123456' b='123456'><n a='123456' b='123456'/></m>",
            b"<s xmlns='jabber:client'><m><n a='123456' b='123456'/><n a='123456' b='123456'/></m>",
            b"<s xmlns='jabber:client'><m a='123456' b='123456'><n/></m><m a='1'/><m/>",
        ];
        for input in cases {
            for limits in [XmlLimits::default(), tight] {
                for raw in [false, true] {
                    let whole = run(input, input.len(), limits, raw);
                    assert_eq!(whole, run(input, 1, limits, raw), "{input:?}");
                    assert_eq!(whole, run(input, 7, limits, raw), "{input:?}");
                }
            }
        }
    }

    #[test]
    fn xml_declarations() {
        assert_eq!(parse_decl(b" version='1.0'"), Ok(()));
        assert_eq!(
            parse_decl(b" version=\"1.0\" encoding='UTF-8' standalone='yes' "),
            Ok(())
        );
        assert_eq!(
            parse_decl(b" version='1.1'"),
            Err(XmlError::RestrictedXml("only XML version 1.0 is allowed"))
        );
        assert!(matches!(parse_decl(b""), Err(XmlError::NotWellFormed(_))));
        assert!(matches!(
            parse_decl(b" encoding='utf-8'"),
            Err(XmlError::NotWellFormed(_))
        ));
    }
}
