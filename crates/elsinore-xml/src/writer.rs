//! Serialization of elements (and helpers for the stream header).
//!
//! Elements are always written in the default namespace (`xmlns='…'` where it
//! changes), so stanzas need no prefixes. Attributes in other namespaces get
//! generated prefixes (`ns0`, `ns1`, …) declared on the element that uses
//! them; `xml:` attributes use the predefined `xml` prefix.
//!
//! Limitations, by design of the model: names must be valid XML names (they
//! are written as they are); attributes in the `xmlns` namespace and
//! unqualified attributes named `xmlns` are namespace declarations, not data,
//! and are skipped; characters XML 1.0 cannot carry (C0 controls other than
//! tab, LF, CR; U+FFFE, U+FFFF) are written as U+FFFD.

use alloc::vec::Vec;
use core::fmt;

use crate::tree::{Attr, Element, Node, XML_NS};

const XMLNS_NS: &str = "http://www.w3.org/2000/xmlns/";
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

impl Element {
    /// Serialize, declaring `xmlns` only where the namespace differs from the
    /// inherited default (`default_ns` for this element): a `jabber:client`
    /// stanza inside a `jabber:client` stream is written without one.
    pub fn write_to(&self, out: &mut Vec<u8>, default_ns: &str) {
        out.push(b'<');
        let xml_prefixed = self.ns == XML_NS;
        if xml_prefixed {
            // The xml namespace cannot be the default; it has its own prefix.
            out.extend_from_slice(b"xml:");
        }
        out.extend_from_slice(self.name.as_bytes());
        let mut inner_default = default_ns;
        if !xml_prefixed && self.ns != default_ns {
            out.extend_from_slice(b" xmlns='");
            escape_attr(out, &self.ns);
            out.push(b'\'');
            inner_default = &self.ns;
        }
        write_attrs(out, &self.attrs);
        if self.children.is_empty() {
            out.extend_from_slice(b"/>");
            return;
        }
        out.push(b'>');
        for child in &self.children {
            match child {
                Node::Element(e) => e.write_to(out, inner_default),
                Node::Text(t) => escape_text(out, t),
            }
        }
        out.extend_from_slice(b"</");
        if xml_prefixed {
            out.extend_from_slice(b"xml:");
        }
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'>');
    }

    /// Serialize as a standalone fragment (every namespace declared), which
    /// [`Element::parse`] reads back to an equal element.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.write_to(&mut out, "");
        out
    }
}

/// UTF-8 text of [`Element::to_bytes`].
impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bytes = self.to_bytes();
        // Input is UTF-8 and every substitution is ASCII or U+FFFD.
        let s = core::str::from_utf8(&bytes).map_err(|_| fmt::Error)?;
        f.write_str(s)
    }
}

/// Write ` name='value'` for each attribute, preceded by declarations of the
/// generated prefixes they need.
pub(crate) fn write_attrs(out: &mut Vec<u8>, attrs: &[Attr]) {
    // Distinct foreign namespaces, in first-use order; index = prefix number.
    let mut foreign: Vec<&str> = Vec::new();
    for a in attrs {
        if needs_prefix(&a.ns) && !foreign.contains(&a.ns.as_str()) {
            foreign.push(&a.ns);
        }
    }
    for (i, ns) in foreign.iter().enumerate() {
        write_prefix_decl(out, i, ns);
    }
    for a in attrs {
        if a.ns == XMLNS_NS || (a.ns.is_empty() && a.name == "xmlns") {
            continue;
        }
        out.push(b' ');
        if a.ns == XML_NS {
            out.extend_from_slice(b"xml:");
        } else if let Some(i) = foreign.iter().position(|ns| *ns == a.ns) {
            write_prefix(out, i);
            out.push(b':');
        }
        out.extend_from_slice(a.name.as_bytes());
        out.extend_from_slice(b"='");
        escape_attr(out, &a.value);
        out.push(b'\'');
    }
}

fn needs_prefix(ns: &str) -> bool {
    !ns.is_empty() && ns != XML_NS && ns != XMLNS_NS
}

fn write_prefix(out: &mut Vec<u8>, i: usize) {
    out.extend_from_slice(b"ns");
    // Decimal digits of i without core::fmt (this runs per attribute).
    let mut digits = [0u8; 20];
    let mut n = i;
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[..len].iter().rev());
}

fn write_prefix_decl(out: &mut Vec<u8>, i: usize, ns: &str) {
    out.extend_from_slice(b" xmlns:");
    write_prefix(out, i);
    out.extend_from_slice(b"='");
    escape_attr(out, ns);
    out.push(b'\'');
}

/// Escape character data: `& < >` and CR (which a parser would otherwise
/// normalize away).
pub(crate) fn escape_text(out: &mut Vec<u8>, s: &str) {
    escape(out, s, false);
}

/// Escape an attribute value for single or double quotes; tab, LF and CR
/// become character references so that attribute normalization keeps them.
pub(crate) fn escape_attr(out: &mut Vec<u8>, s: &str) {
    escape(out, s, true);
}

/// Whether [`escape_attr`] would change `bytes` (a byte of them needs a look).
pub(crate) fn attr_needs_escape(bytes: &[u8]) -> bool {
    // Without early exit: most values need nothing, and a loop without a branch per byte
    // is faster over those.
    bytes
        .iter()
        .fold(false, |any, &b| any | ATTR_ESC[usize::from(b)])
}

/// Bytes that may need replacing in text (`true`): `& < >`, C0 controls
/// other than tab and LF, and 0xEF (which starts U+FFFE / U+FFFF).
static TEXT_ESC: [bool; 256] = esc_table(false);
/// The same for attribute values: also quotes, tab and LF.
static ATTR_ESC: [bool; 256] = esc_table(true);

const fn esc_table(attr: bool) -> [bool; 256] {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = attr || !matches!(i, 0x09 | 0x0A);
        i += 1;
    }
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'>' as usize] = true;
    t[0xEF] = true;
    if attr {
        t[b'\'' as usize] = true;
        t[b'"' as usize] = true;
    }
    t
}

fn escape(out: &mut Vec<u8>, s: &str, attr: bool) {
    let bytes = s.as_bytes();
    let table = if attr { &ATTR_ESC } else { &TEXT_ESC };
    out.reserve(bytes.len());
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Fast path: ordinary bytes are copied in runs.
        while let Some(&b) = bytes.get(i) {
            if table[usize::from(b)] {
                break;
            }
            i += 1;
        }
        let Some(&b) = bytes.get(i) else { break };
        let rep: &[u8] = match b {
            b'&' => b"&amp;",
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'\r' => b"&#xD;",
            b'\'' => b"&apos;",
            b'"' => b"&quot;",
            b'\n' => b"&#xA;",
            b'\t' => b"&#x9;",
            // U+FFFE and U+FFFF are EF BF BE / EF BF BF in UTF-8.
            0xEF if matches!(bytes.get(i + 1..i + 3), Some([0xBF, 0xBE | 0xBF])) => {
                out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
                out.extend_from_slice(REPLACEMENT);
                i += 3;
                start = i;
                continue;
            }
            0xEF => {
                i += 1;
                continue;
            }
            _ => REPLACEMENT,
        };
        out.extend_from_slice(bytes.get(start..i).unwrap_or_default());
        out.extend_from_slice(rep);
        i += 1;
        start = i;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec;

    fn esc(s: &str, attr: bool) -> String {
        let mut out = Vec::new();
        escape(&mut out, s, attr);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn text_escapes_only_what_it_must() {
        assert_eq!(esc("plain", false), "plain");
        assert_eq!(esc("a&b<c>d'e\"f", false), "a&amp;b&lt;c&gt;d'e\"f");
        assert_eq!(esc("\t\n\r", false), "\t\n&#xD;");
        assert_eq!(esc("", false), "");
    }

    #[test]
    fn attributes_escape_quotes_and_whitespace() {
        assert_eq!(esc("'\"", true), "&apos;&quot;");
        assert_eq!(esc("\t\n\r", true), "&#x9;&#xA;&#xD;");
    }

    #[test]
    fn unrepresentable_characters() {
        assert_eq!(esc("\u{0}\u{8}\u{B}\u{1F}", false), "\u{FFFD}".repeat(4));
        assert_eq!(
            esc("x\u{FFFE}y\u{FFFF}z\u{FFFD}", true),
            "x\u{FFFD}y\u{FFFD}z\u{FFFD}"
        );
        // Neighbours of the non-characters are fine.
        assert_eq!(
            esc("\u{FFFC}\u{EFFF}\u{10000}", false),
            "\u{FFFC}\u{EFFF}\u{10000}"
        );
    }

    #[test]
    fn generated_prefix_numbers() {
        let mut out = Vec::new();
        for i in [0, 9, 10, 123] {
            write_prefix(&mut out, i);
            out.push(b' ');
        }
        assert_eq!(out, b"ns0 ns9 ns10 ns123 ");
    }

    #[test]
    fn declaration_attributes_are_not_written() {
        let attrs = vec![
            Attr {
                ns: String::new(),
                name: "xmlns".into(),
                value: "urn:evil".into(),
            },
            Attr {
                ns: XMLNS_NS.into(),
                name: "p".into(),
                value: "urn:evil".into(),
            },
        ];
        let mut out = Vec::new();
        write_attrs(&mut out, &attrs);
        assert!(out.is_empty());
    }
}
