//! Top-level elements kept as received ([`RawElement`]), for a router that forwards a
//! stanza without building its tree.
//!
//! The parser still checks every byte of such an element exactly as for a tree
//! (well-formedness, namespaces, limits); it only skips building the children. It keeps
//! an element raw only when the bytes mean the same in any stream whose default
//! namespace is the element's own: the element is unprefixed, its start tag declares no
//! prefix, and nothing inside uses a prefix declared outside the element. Otherwise it
//! builds the tree as usual.

use alloc::vec::Vec;
use core::ops::Range;

use crate::error::XmlError;
use crate::parser::Parser;
use crate::stream::{XmlEvent, XmlLimits};
use crate::tree::Element;
use crate::writer::{attr_needs_escape, escape_attr};

/// One attribute of a raw element's start tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Span {
    /// `xml:` prefixed (else unqualified).
    pub(crate) xml: bool,
    /// The local name, in the element's bytes.
    pub(crate) name: Range<u32>,
    /// The whole attribute, name to closing quote, in the element's bytes.
    pub(crate) whole: Range<u32>,
    /// The decoded value, in the bytes after the element.
    pub(crate) value: Range<u32>,
}

/// A top-level element as received: its wire bytes plus its name, namespace and the
/// attributes of its start tag. Only the parser makes one (see the module docs), so the
/// bytes are always a well-formed, self-contained element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawElement {
    pub(crate) name: &'static str,
    pub(crate) ns: &'static str,
    /// The element from `<` to its final `>`, then the decoded attribute values.
    pub(crate) bytes: Vec<u8>,
    /// Where the element ends in `bytes`.
    pub(crate) len: u32,
    /// The content between the tags (empty for an empty-element tag), in `bytes`.
    pub(crate) content: Range<u32>,
    pub(crate) attrs: Vec<Span>,
}

fn slice<'a>(bytes: &'a [u8], r: &Range<u32>) -> &'a [u8] {
    bytes
        .get(r.start as usize..r.end as usize)
        .unwrap_or_default()
}

fn text<'a>(bytes: &'a [u8], r: &Range<u32>) -> &'a str {
    // Values and names were checked UTF-8 when parsed; the fallback is never taken.
    core::str::from_utf8(slice(bytes, r)).unwrap_or_default()
}

impl RawElement {
    /// Local name.
    pub fn name(&self) -> &str {
        self.name
    }

    /// Namespace.
    pub fn ns(&self) -> &str {
        self.ns
    }

    /// Whether this is `name` in namespace `ns`.
    pub fn is(&self, name: &str, ns: &str) -> bool {
        self.name == name && self.ns == ns
    }

    /// Bytes on the wire, start tag to end tag.
    pub fn wire_len(&self) -> usize {
        self.len as usize
    }

    /// Value of an unqualified attribute of the start tag.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.find(false, name)
    }

    /// The element's own `xml:lang`, if present.
    pub fn lang(&self) -> Option<&str> {
        self.find(true, "lang")
    }

    fn find(&self, xml: bool, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.xml == xml && slice(&self.bytes, &a.name) == name.as_bytes())
            .map(|a| text(&self.bytes, &a.value))
    }

    /// Write the element into a stream whose default namespace is `default_ns`, with the
    /// unqualified attribute `set.0` set to `set.1` (replacing the received one, as a
    /// server stamps `from`). The start tag is rewritten; the content is copied as received.
    pub fn write_to(&self, out: &mut Vec<u8>, default_ns: &str, set: (&str, &str)) {
        self.write_to_parts(out, default_ns, set.0, &[set.1]);
    }

    /// [`RawElement::write_to`] with the value of `name` given in pieces, written one
    /// after the other: a router stamping a JID passes its parts and builds no string for
    /// every stanza. The bytes are those of `write_to` with the pieces concatenated.
    pub fn write_to_parts(&self, out: &mut Vec<u8>, default_ns: &str, name: &str, value: &[&str]) {
        let bytes = &self.bytes;
        let value_len: usize = value.iter().map(|p| p.len()).sum();
        out.reserve(self.len as usize + value_len + 16);
        out.push(b'<');
        out.extend_from_slice(self.name.as_bytes());
        if self.ns != default_ns {
            out.extend_from_slice(b" xmlns='");
            escape_attr(out, self.ns);
            out.push(b'\'');
        }
        let write_set = |out: &mut Vec<u8>| {
            out.push(b' ');
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"='");
            // Values to stamp (JIDs) rarely need escaping: copied as they are and checked
            // once, rather than escaped piece by piece.
            let start = out.len();
            for piece in value {
                out.extend_from_slice(piece.as_bytes());
            }
            if attr_needs_escape(out.get(start..).unwrap_or_default()) {
                out.truncate(start);
                // Escaping works character by character and every piece is whole
                // characters: the pieces escaped one by one give the escaped concatenation.
                for piece in value {
                    escape_attr(out, piece);
                }
            }
            out.push(b'\'');
        };
        // Where the received attribute was, as `Element::set_attr` replaces in place.
        let mut replaced = false;
        for a in &self.attrs {
            if !a.xml && slice(bytes, &a.name) == name.as_bytes() {
                write_set(out);
                replaced = true;
                continue;
            }
            out.push(b' ');
            out.extend_from_slice(slice(bytes, &a.whole));
        }
        if !replaced {
            write_set(out);
        }
        if self.content.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        out.extend_from_slice(slice(bytes, &self.content));
        out.extend_from_slice(b"</");
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'>');
    }

    /// The element's tree (parsed again from the kept bytes), for a handler that needs
    /// more than the start tag.
    pub fn to_element(&self) -> Result<Element, XmlError> {
        let limits = XmlLimits {
            max_element_bytes: usize::MAX,
            max_depth: usize::MAX,
            max_attributes: usize::MAX,
            max_token_length: usize::MAX,
        };
        let mut p = Parser::new(limits, 0);
        p.declare_default(self.ns);
        let mut buf = self.bytes.get(..self.len as usize).unwrap_or_default();
        match p.next(&mut buf, true)? {
            Some(XmlEvent::Element(e)) => Ok(e),
            _ => Err(XmlError::NotWellFormed("raw element did not parse".into())),
        }
    }
}
