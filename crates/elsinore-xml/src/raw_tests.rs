//! Raw elements against trees: the same input, split anywhere, gives the same events
//! and errors whether the parser keeps `message` elements raw or builds their trees,
//! and a raw element written out reads back as the tree with `from` set.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use proptest::prelude::*;

use crate::{Element, RawSpec, StreamParser, XmlError, XmlEvent, XmlLimits};

static MESSAGE: RawSpec = RawSpec {
    name: "message",
    ns: "jabber:client",
};

const HEADER: &str = "<stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:s='urn:outer' to='example.com' \
    version='1.0'>";

/// Every event of `chunks` and the error that ended them, if any.
fn run(chunks: &[&[u8]], raw: bool, limits: XmlLimits) -> (Vec<XmlEvent>, Option<XmlError>) {
    let mut p = StreamParser::new(limits);
    if raw {
        p.keep_raw(Some(&MESSAGE));
    }
    let mut events = Vec::new();
    for chunk in chunks {
        let mut buf = *chunk;
        loop {
            match p.parse(&mut buf) {
                Ok(Some(ev)) => events.push(ev),
                Ok(None) => break,
                Err(e) => return (events, Some(e)),
            }
        }
    }
    (events, p.handle_eof().err())
}

/// The events with every raw element turned into its tree, after checking that its
/// written form reads back as that tree with `from` stamped.
fn as_trees(events: Vec<XmlEvent>) -> Result<Vec<XmlEvent>, TestCaseError> {
    let mut out = Vec::new();
    for ev in events {
        match ev {
            XmlEvent::Raw(r) => {
                let tree = r
                    .to_element()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(r.attr("to"), tree.attr("to"));
                prop_assert_eq!(r.lang(), tree.lang());
                let mut written = Vec::new();
                r.write_to(&mut written, "jabber:client", ("from", "a&b@x/'r'"));
                // In pieces, the same bytes.
                let mut pieces = Vec::new();
                r.write_to_parts(&mut pieces, "jabber:client", "from", &["a&b@x", "/", "'r'"]);
                prop_assert_eq!(&pieces, &written);
                let mut wrapped = Vec::from(&b"<w xmlns='jabber:client'>"[..]);
                wrapped.extend_from_slice(&written);
                wrapped.extend_from_slice(b"</w>");
                let back = Element::parse(&wrapped).map_err(|e| {
                    TestCaseError::fail(alloc::format!(
                        "{e}: {}",
                        String::from_utf8_lossy(&written)
                    ))
                })?;
                let mut stamped = tree.clone();
                stamped.set_attr("from", "a&b@x/'r'");
                prop_assert_eq!(back.elements().next(), Some(&stamped));
                out.push(XmlEvent::Element(tree));
            }
            other => out.push(other),
        }
    }
    Ok(out)
}

fn check(input: &[u8], cuts: &[usize], limits: XmlLimits) -> Result<bool, TestCaseError> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for c in cuts {
        chunks.push(&input[start..c]);
        start = c;
    }
    chunks.push(&input[start..]);
    let (trees, tree_err) = run(&chunks, false, limits);
    let (raws, raw_err) = run(&chunks, true, limits);
    let kept = raws.iter().any(|e| matches!(e, XmlEvent::Raw(_)));
    prop_assert_eq!(
        as_trees(raws)?,
        trees,
        "input {:?}",
        String::from_utf8_lossy(input)
    );
    prop_assert_eq!(raw_err, tree_err);
    Ok(kept)
}

const PIECES: &[&str] = &[
    "<message to='a@b/c' type='chat' id='1'>",
    "<message from='spoof@x' to=\"d@e\">",
    "<message xmlns='jabber:client' xml:lang='en'>",
    "<message xmlns:p='urn:p'>",
    "<message p:a='1'>",
    "<message to='a' to='b'>",
    "<message/>",
    "<message to='x&amp;y'/>",
    "</message>",
    "<body>",
    "</body>",
    "<p:x xmlns:p='urn:p' p:y='1' y='2'/>",
    "<s:x/>",
    "<q s:a='1'/>",
    "<x xmlns='urn:x'><y/></x>",
    "<a b='1' b='2'/>",
    "<a xmlns:p='urn:p' xmlns:q='urn:p' p:b='1' q:b='2'/>",
    "<u:x/>",
    "<presence/>",
    "<iq type='get' id='q'><query xmlns='jabber:iq:roster'/></iq>",
    "hi &amp; &lt;bye&gt; &#x41;",
    "<![CDATA[a<b]]>",
    "\r\n",
    " ",
    "é日本",
    "&#0;",
    "<!-- c -->",
    "<",
    ">",
    "'",
    "</stream:stream>",
];

fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(PIECES), 0..16).prop_map(|pieces| {
        let mut s = String::from(HEADER);
        for p in pieces {
            s.push_str(p);
        }
        s.into_bytes()
    })
}

const HEADS: &[&str] = &[
    "<message to='a@b/c' type='chat' id='1'>",
    "<message from='spoof@x' to=\"d@e\" xml:lang='en'>",
    "<message xmlns='jabber:client'>",
    "<message xmlns:p='urn:p'>",
    "<message>",
];

const CONTENT: &[&str] = &[
    "<body>hi &amp; &lt;bye&gt; &#x41;</body>",
    "<body><![CDATA[a<b]]>\r\n</body>",
    "<p:x xmlns:p='urn:p' p:y='1' y='2'/>",
    "<p:x/>",
    "<s:x/>",
    "<x xmlns='urn:x'><y a=\"'\"/>t</x>",
    "<thread>\u{e9}\u{65e5}</thread>",
    " ",
    "text",
];

/// Well-formed streams of messages (and a presence), so that most cases take the raw
/// path; `p:` is declared on some heads only, `s:` on the stream header.
fn messages() -> impl Strategy<Value = Vec<u8>> {
    let stanza = (
        prop::sample::select(HEADS),
        prop::collection::vec(prop::sample::select(CONTENT), 0..5),
    )
        .prop_map(|(head, content)| {
            let mut s = String::from(head);
            for c in content {
                s.push_str(c);
            }
            s.push_str("</message>");
            s
        });
    prop::collection::vec(
        prop_oneof![4 => stanza, 1 => Just(String::from("<presence/>"))],
        1..6,
    )
    .prop_map(|stanzas| {
        let mut s = String::from(HEADER);
        for st in stanzas {
            s.push_str(&st);
        }
        s.into_bytes()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn raw_and_tree_agree_on_messages(input in messages(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        check(&input, &cuts, XmlLimits::default())?;
    }

    #[test]
    fn raw_and_tree_agree(input in soup(), cuts in prop::collection::vec(any::<usize>(), 0..5)) {
        check(&input, &cuts, XmlLimits::default())?;
    }

    #[test]
    fn raw_and_tree_agree_on_limits(input in soup(), cuts in prop::collection::vec(any::<usize>(), 0..3),
                                    bytes in 40usize..400, depth in 1usize..5, attrs in 1usize..5) {
        let limits = XmlLimits {
            max_element_bytes: bytes,
            max_depth: depth,
            max_attributes: attrs,
            max_token_length: 16,
        };
        check(&input, &cuts, limits)?;
    }
}

fn events(input: &str) -> Vec<XmlEvent> {
    let (events, error) = run(&[input.as_bytes()], true, XmlLimits::default());
    assert_eq!(error, Some(XmlError::UnexpectedEof), "{events:?}");
    events
}

fn only(input: &str) -> XmlEvent {
    let mut evs = events(&alloc::format!("{HEADER}{input}"));
    assert_eq!(evs.len(), 2, "{evs:?}");
    evs.pop().unwrap()
}

#[test]
fn a_plain_message_is_kept_raw_and_forwarded_as_received() {
    let XmlEvent::Raw(r) = only(
        "<message to='b@x/r' from='forged@y' type='chat' id='m&amp;1' xml:lang='da'>\
         <body>hi &amp; &#x41;<![CDATA[<b>]]></body><active xmlns='urn:cs'/></message>",
    ) else {
        panic!("not raw")
    };
    assert_eq!((r.name(), r.ns()), ("message", "jabber:client"));
    assert_eq!(r.attr("id"), Some("m&1"));
    assert_eq!(r.lang(), Some("da"));
    let mut out = Vec::new();
    r.write_to(&mut out, "jabber:client", ("from", "a@x/home"));
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "<message to='b@x/r' from='a@x/home' type='chat' id='m&amp;1' xml:lang='da'>\
         <body>hi &amp; &#x41;<![CDATA[<b>]]></body><active xmlns='urn:cs'/></message>"
    );
    // Into a stream of another namespace it declares its own.
    let mut out = Vec::new();
    r.write_to(&mut out, "jabber:server", ("from", "a@x/home"));
    assert!(out.starts_with(b"<message xmlns='jabber:client' to="));
}

#[test]
fn an_empty_message_gets_from_appended() {
    let XmlEvent::Raw(r) = only("<message to='b@x'/>") else {
        panic!("not raw")
    };
    let mut out = Vec::new();
    r.write_to(&mut out, "jabber:client", ("from", "a@x/r"));
    assert_eq!(out, b"<message to='b@x' from='a@x/r'/>");
}

#[test]
fn messages_that_depend_on_outer_or_own_prefixes_become_trees() {
    // A prefix from the stream header, one declared on the start tag, a prefixed
    // attribute on it: each gives the usual tree.
    for m in [
        "<message><s:x/></message>",
        "<message><q s:a='1'/></message>",
        "<message xmlns:p='urn:p'><p:x/></message>",
        "<message s:a='1'/>",
    ] {
        match only(m) {
            XmlEvent::Element(e) => assert_eq!(e.name, "message", "{m}"),
            other => panic!("{m}: {other:?}"),
        }
    }
    // Other stanzas always are.
    assert!(matches!(only("<presence/>"), XmlEvent::Element(_)));
}

#[test]
fn errors_inside_a_raw_message_are_the_tree_errors() {
    for m in [
        "<message><a b='1' b='2'/></message>",
        "<message><u:x/></message>",
        "<message to='a' to='b'/>",
        "<message><body>&#0;</body></message>",
        "<message><body></message>",
    ] {
        let input = alloc::format!("{HEADER}{m}");
        let (_, tree) = run(&[input.as_bytes()], false, XmlLimits::default());
        let (_, raw) = run(&[input.as_bytes()], true, XmlLimits::default());
        assert!(tree.is_some(), "{m}");
        assert_eq!(raw, tree, "{m}");
    }
}

#[test]
fn the_proptest_soup_reaches_the_raw_path() {
    // Guard against a generator that never produces a raw element (the properties
    // above would then compare trees with trees).
    let input =
        alloc::format!("{HEADER}<message to='a@b/c' type='chat' id='1'><body>hi</body></message>");
    assert!(check(input.as_bytes(), &[7, 90], XmlLimits::default()).unwrap());
}

#[test]
fn long_text_in_raw_messages_is_judged_as_in_trees() {
    // Text of eight bytes and more is checked a word at a time in raw messages.
    for body in [
        "Wherefore art thou Romeo? Deny thy father and refuse thy name",
        "Wherefore art\tthou\nRomeo? Deny thy father",
        "Wherefore art thou \u{1} Romeo",
        "Wherefore art thou Romeo]]>",
        "Wherefore art thou Romeo]] and ]",
        "Wherefore art thou &amp; Romeo &#x41;",
        "Wherefore art thou &bogus; Romeo",
        "Wherefore art thou \u{e9}\u{65e5} Romeo",
        "Wherefore art thou \u{ffff} Romeo",
        "Wherefore art thou \r\n Romeo\r",
        "Wherefore art thou \u{7f}~ Romeo",
    ] {
        let input = alloc::format!("{HEADER}<message to='a@b'><body>{body}</body></message>");
        let n = input.len();
        let at = HEADER.len() + 30;
        for cuts in [&[][..], &[at], &[at, at + 9], &[n - 12, n - 3]] {
            check(input.as_bytes(), cuts, XmlLimits::default()).unwrap();
        }
    }
}
