//! Serializer: escaping, namespace declarations, parse(serialize(e)) == e.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use elsinore_xml::{Attr, Element, Node, XML_NS, XmlError};
use proptest::prelude::*;

#[test]
fn escaping_round_trip() {
    let tricky = "a & b < c > d ' \" ]]> \r\n \r \t end";
    let e = Element::new("m", "urn:x")
        .with_attr("v", tricky)
        .with_text(tricky)
        .with_child(Element::new("c", "urn:x").with_attr("w", " lead\ttab\nnl"));
    let bytes = e.to_bytes();
    let s = core::str::from_utf8(&bytes).unwrap();
    assert_eq!(
        s,
        "<m xmlns='urn:x' v='a &amp; b &lt; c &gt; d &apos; &quot; ]]&gt; &#xD;&#xA; &#xD; &#x9; end'>\
         a &amp; b &lt; c &gt; d ' \" ]]&gt; &#xD;\n &#xD; \t end\
         <c w=' lead&#x9;tab&#xA;nl'/></m>"
    );
    assert_eq!(Element::parse(&bytes).unwrap(), e);
    assert_eq!(e.to_string(), s);
}

#[test]
fn namespace_declarations_only_where_needed() {
    let e = Element::new("iq", "jabber:client")
        .with_child(
            Element::new("query", "jabber:iq:private")
                .with_child(Element::new("exodus", "exodus:prefs"))
                .with_child(Element::new("plain", "")),
        )
        .with_child(Element::new("error", "jabber:client"));
    let mut out = Vec::new();
    e.write_to(&mut out, "jabber:client");
    assert_eq!(
        core::str::from_utf8(&out).unwrap(),
        "<iq><query xmlns='jabber:iq:private'><exodus xmlns='exodus:prefs'/>\
         <plain xmlns=''/></query><error/></iq>"
    );
    assert!(e.to_bytes().starts_with(b"<iq xmlns='jabber:client'>"));
    assert_eq!(Element::parse(&e.to_bytes()).unwrap(), e);
}

#[test]
fn prefixed_attributes() {
    let mut e = Element::new("m", "jabber:client");
    e.set_attr_ns(XML_NS, "lang", "en");
    e.set_attr_ns("urn:a", "x", "1");
    e.set_attr_ns("urn:b", "x", "2");
    e.set_attr_ns("urn:a", "y", "3");
    e.set_attr("x", "4");
    let s = e.to_string();
    assert_eq!(
        s,
        "<m xmlns='jabber:client' xmlns:ns0='urn:a' xmlns:ns1='urn:b' xml:lang='en' \
         ns0:x='1' ns1:x='2' ns0:y='3' x='4'/>"
    );
    assert_eq!(Element::parse(s.as_bytes()).unwrap(), e);
}

#[test]
fn invalid_characters_are_replaced() {
    let e = Element::new("m", "").with_text("a\u{0}b\u{FFFE}c\u{FFFF}d\u{1F}");
    let back = Element::parse(&e.to_bytes()).unwrap();
    assert_eq!(back.text(), "a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}");
}

#[test]
fn parse_standalone() {
    let e = Element::parse(b"<?xml version='1.0'?>\n<a xmlns='u'><b/></a>\n").unwrap();
    assert!(e.is("a", "u"));
    assert_eq!(e.elements().count(), 1);
    assert_eq!(Element::parse(b"<a>"), Err(XmlError::UnexpectedEof));
    assert_eq!(Element::parse(b""), Err(XmlError::UnexpectedEof));
    assert!(matches!(
        Element::parse(b"<a/><b/>"),
        Err(XmlError::NotWellFormed(_))
    ));
    assert!(matches!(
        Element::parse(b"<a/>text"),
        Err(XmlError::NotWellFormed(_))
    ));
    assert!(matches!(
        Element::parse(b"<p:a/>"),
        Err(XmlError::InvalidNamespace(_))
    ));
}

fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec!["a", "body", "x-y", "ns0", "ns1", "é", "_n.1", "日本"])
            .prop_map(String::from),
        "[a-zA-Z_][a-zA-Z0-9_.-]{0,6}",
    ]
}

fn namespace() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "",
        "jabber:client",
        "urn:a",
        "urn:b",
        "urn:q'&\"<>",
        "http://jabber.org/protocol/caps",
    ])
    .prop_map(String::from)
}

fn attr_namespace() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just(String::new()),
        1 => Just(XML_NS.to_owned()),
        2 => namespace(),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof!["[\\PC\t\n\r]{0,16}", "[ \t\r\n&<>'\"\\]]{0,8}"]
}

fn attrs() -> impl Strategy<Value = Vec<Attr>> {
    prop::collection::vec((attr_namespace(), name(), text()), 0..5).prop_map(|list| {
        let mut out: Vec<Attr> = Vec::new();
        for (ns, name, value) in list {
            if !out.iter().any(|a| a.ns == ns && a.name == name) {
                out.push(Attr { ns, name, value });
            }
        }
        out
    })
}

/// Adjacent text nodes merge and empty ones vanish when parsed; generate
/// trees already in that form.
fn normalized(children: Vec<Node>) -> Vec<Node> {
    let mut out: Vec<Node> = Vec::new();
    for c in children {
        match (out.last_mut(), c) {
            (_, Node::Text(t)) if t.is_empty() => {}
            (Some(Node::Text(prev)), Node::Text(t)) => prev.push_str(&t),
            (_, c) => out.push(c),
        }
    }
    out
}

fn element() -> impl Strategy<Value = Element> {
    let leaf = (name(), namespace(), attrs()).prop_map(|(name, ns, attrs)| Element {
        name,
        ns,
        attrs,
        children: Vec::new(),
    });
    leaf.prop_recursive(5, 48, 6, |inner| {
        (
            name(),
            namespace(),
            attrs(),
            prop::collection::vec(
                prop_oneof![inner.prop_map(Node::Element), text().prop_map(Node::Text)],
                0..6,
            ),
        )
            .prop_map(|(name, ns, attrs, children)| Element {
                name,
                ns,
                attrs,
                children: normalized(children),
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parse_of_serialize_is_identity(e in element()) {
        let bytes = e.to_bytes();
        let back = Element::parse(&bytes);
        prop_assert_eq!(back, Ok(e.clone()), "{}", String::from_utf8_lossy(&bytes));
        // Written inside a stream with some default namespace, too.
        let mut out = Vec::new();
        e.write_to(&mut out, "jabber:client");
        let wrapped = [&b"<w xmlns='jabber:client'>"[..], &out, b"</w>"].concat();
        let w = Element::parse(&wrapped).unwrap();
        prop_assert_eq!(w.elements().next(), Some(&e));
    }
}
