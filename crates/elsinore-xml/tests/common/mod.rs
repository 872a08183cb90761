//! Helpers shared by the integration tests (included with `mod common;`).
#![allow(dead_code)] // each test file uses a different subset

use elsinore_xml::{StreamParser, XmlError, XmlEvent, XmlLimits};

/// Sample streams, also used as fuzz seeds.
pub const SAMPLES: &[&str] = &[
    include_str!("../data/xep0049-client.xml"),
    include_str!("../data/xep0049-server.xml"),
    include_str!("../data/c2s-session.xml"),
];

/// Feed `chunks` one after the other; events until the first error.
pub fn feed<'a>(chunks: impl IntoIterator<Item = &'a [u8]>) -> (Vec<XmlEvent>, Option<XmlError>) {
    let mut p = StreamParser::new(XmlLimits::default());
    let mut out = Vec::new();
    for chunk in chunks {
        let mut buf = chunk;
        loop {
            match p.parse(&mut buf) {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => {
                    assert!(buf.is_empty(), "Ok(None) left {} bytes", buf.len());
                    break;
                }
                Err(e) => return (out, Some(e)),
            }
        }
    }
    (out, None)
}

/// Split `input` at the given cut points (taken modulo the length, sorted).
pub fn split<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|c| if input.is_empty() { 0 } else { c % input.len() })
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    let mut out = Vec::new();
    let mut start = 0;
    for c in cuts {
        out.push(&input[start..c]);
        start = c;
    }
    out.push(&input[start..]);
    out
}
