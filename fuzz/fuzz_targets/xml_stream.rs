//! Differential target for `StreamParser`: against itself on other chunkings,
//! and against the previous rxml-based parser (the oracle, included by path).
//!
//! Input layout: byte 0 = number of cut points (mod 8), then two bytes per cut
//! (little-endian u16, taken modulo the document length), then the document.
//! Checks:
//! - the chunked parse yields the same events as the unsplit one, and fails
//!   (if at all) with the same kind of error;
//! - the oracle, given the whole document, agrees (`oracle::compare`: same
//!   events, both fail or neither, same error class except the documented
//!   differences);
//! - `Ok(None)` always means the chunk was consumed completely;
//! - every parsed element and header survives serialize → parse unchanged;
//! - with `message` elements kept raw, the chunked parse gives the same events (each
//!   raw element's tree equal to the tree the plain parse built, its written form read
//!   back equal to that tree with `from` set) and the same error.
#![no_main]

extern crate alloc;

#[path = "../../crates/elsinore-xml/src/oracle.rs"]
mod oracle;

use elsinore_xml::{Element, RawSpec, StreamParser, XmlError, XmlEvent, XmlLimits};
use libfuzzer_sys::fuzz_target;

static MESSAGE: RawSpec = RawSpec {
    name: "message",
    ns: "jabber:client",
};

fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<XmlEvent>, Option<XmlError>) {
    feed_with(chunks, false)
}

fn feed_with<'a>(
    chunks: impl IntoIterator<Item = &'a [u8]>,
    raw: bool,
) -> (Vec<XmlEvent>, Option<XmlError>) {
    let mut p = StreamParser::new(XmlLimits::default());
    if raw {
        p.keep_raw(Some(&MESSAGE));
    }
    let mut out = Vec::new();
    for chunk in chunks {
        let mut buf = chunk;
        loop {
            match p.parse(&mut buf) {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => {
                    assert!(buf.is_empty(), "Ok(None) with unconsumed input");
                    break;
                }
                Err(e) => {
                    // Errors are sticky.
                    assert_eq!(p.parse(&mut buf), Err(e.clone()));
                    return (out, Some(e));
                }
            }
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 8);
    if rest.len() < 2 * n {
        return;
    }
    let (cut_bytes, doc) = rest.split_at(2 * n);
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| usize::from(u16::from_le_bytes([c[0], c[1]])) % (doc.len() + 1))
        .collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for c in cuts {
        chunks.push(&doc[start..c]);
        start = c;
    }
    chunks.push(&doc[start..]);

    let whole = feed([doc]);
    let split = feed(chunks.iter().copied());
    assert_eq!(whole.0, split.0);
    assert_eq!(
        whole.1.as_ref().map(std::mem::discriminant),
        split.1.as_ref().map(std::mem::discriminant),
        "{:?} vs {:?}",
        whole.1,
        split.1
    );

    let (raws, raw_error) = feed_with(chunks.iter().copied(), true);
    assert_eq!(raw_error, split.1);
    let trees: Vec<XmlEvent> = raws
        .into_iter()
        .map(|ev| match ev {
            XmlEvent::Raw(r) => {
                let tree = r.to_element().expect("a raw element parses again");
                let mut out = b"<w xmlns='jabber:client'>".to_vec();
                r.write_to(&mut out, "jabber:client", ("from", "a@b/c"));
                out.extend_from_slice(b"</w>");
                let back = Element::parse_with_limits(
                    &out,
                    XmlLimits {
                        max_element_bytes: usize::MAX,
                        max_depth: usize::MAX,
                        ..XmlLimits::default()
                    },
                )
                .expect("a written raw element parses");
                let mut stamped = tree.clone();
                stamped.set_attr("from", "a@b/c");
                assert_eq!(back.elements().next(), Some(&stamped));
                XmlEvent::Element(tree)
            }
            other => other,
        })
        .collect();
    assert_eq!(trees, split.0);

    let ours = oracle::run_ours(chunks.iter().copied());
    let theirs = oracle::run_oracle([&oracle::oracle_input(doc)[..]]);
    if let Err(m) = oracle::compare(&ours, &theirs) {
        panic!("{m}\ninput: {:?}", String::from_utf8_lossy(doc));
    }

    // Serialized output may be longer than the input (escaping), so read it
    // back without limits that the original met.
    let roomy = XmlLimits {
        max_element_bytes: usize::MAX,
        // rxml reserves buffers of this size: large, not huge.
        max_token_length: 1 << 20,
        ..XmlLimits::default()
    };
    for ev in &whole.0 {
        match ev {
            XmlEvent::Element(e) => {
                let bytes = e.to_bytes();
                assert_eq!(Element::parse_with_limits(&bytes, roomy).as_ref(), Ok(e));
            }
            XmlEvent::StreamOpen(h) => {
                let mut out = Vec::new();
                h.write_to(&mut out);
                let again = feed([&out[..]]);
                // Only a proper header is meant to be written back.
                if h.is_stream() {
                    assert_eq!(
                        again.0.first(),
                        Some(ev),
                        "{}",
                        String::from_utf8_lossy(&out)
                    );
                }
            }
            XmlEvent::StreamClose | XmlEvent::Raw(_) => {}
        }
    }
});
