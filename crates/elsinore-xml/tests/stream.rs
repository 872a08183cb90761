//! Stream-level behaviour of `StreamParser`.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

use elsinore_xml::{
    Element, Limit, Node, STREAM_NS, StreamHeader, StreamParser, XML_NS, XmlError, XmlEvent,
    XmlLimits,
};

const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
    xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' \
    xml:lang='en'>";

/// Parse all of `input` in one go, collecting events until more data is needed.
fn events(input: &[u8]) -> Result<Vec<XmlEvent>, XmlError> {
    let mut p = StreamParser::new(XmlLimits::default());
    let mut buf = input;
    let mut out = Vec::new();
    while let Some(ev) = p.parse(&mut buf)? {
        out.push(ev);
    }
    assert!(buf.is_empty(), "Ok(None) must mean all input was consumed");
    Ok(out)
}

fn first_error(input: &[u8]) -> XmlError {
    match events(input) {
        Err(e) => e,
        Ok(evs) => panic!("expected an error, got {evs:?}"),
    }
}

#[test]
fn header_reports_namespaces_and_attributes() {
    let evs = events(HEADER.as_bytes()).unwrap();
    let [XmlEvent::StreamOpen(h)] = &evs[..] else {
        panic!("{evs:?}")
    };
    assert_eq!(h.name, "stream");
    assert_eq!(h.ns, STREAM_NS);
    assert!(h.is_stream());
    assert_eq!(h.default_ns.as_deref(), Some("jabber:client"));
    assert_eq!(h.attr("to"), Some("example.com"));
    assert_eq!(h.attr("version"), Some("1.0"));
    assert_eq!(h.lang(), Some("en"));
    assert_eq!(
        h.attrs.len(),
        3,
        "namespace declarations are not attributes"
    );
}

#[test]
fn header_without_default_namespace() {
    let evs = events(b"<stream:stream xmlns:stream='http://etherx.jabber.org/streams'>").unwrap();
    let [XmlEvent::StreamOpen(h)] = &evs[..] else {
        panic!("{evs:?}")
    };
    assert_eq!(h.default_ns, None);
    assert!(h.is_stream());
}

#[test]
fn wrong_root_is_still_reported_as_stream_open() {
    let evs = events(b"<stream xmlns='jabber:client'><message/>").unwrap();
    let XmlEvent::StreamOpen(h) = &evs[0] else {
        panic!("{evs:?}")
    };
    assert_eq!(
        (h.name.as_str(), h.ns.as_str()),
        ("stream", "jabber:client")
    );
    assert!(!h.is_stream());
    assert!(matches!(&evs[1], XmlEvent::Element(e) if e.is("message", "jabber:client")));
}

#[test]
fn header_write_round_trip() {
    let h = StreamHeader::new("jabber:client")
        .with_attr("to", "a'b&c.example")
        .with_attr("version", "1.0")
        .with_lang("en");
    let mut out = Vec::new();
    h.write_to(&mut out);
    assert!(out.starts_with(
        b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams' to='a&apos;b&amp;c.example'"
    ));
    let evs = events(&out).unwrap();
    assert_eq!(evs, vec![XmlEvent::StreamOpen(h)]);
    let mut close = Vec::new();
    elsinore_xml::write_stream_close(&mut close);
    assert_eq!(close, b"</stream:stream>");
}

#[test]
fn stanzas_with_nested_namespaces_and_prefixes() {
    let input = format!(
        "{HEADER}\n  <iq type='set' id='1'><query xmlns='jabber:iq:private'>\
         <p:exodus xmlns:p='exodus:prefs' p:attr='x'><defaultnick>Hamlet</defaultnick></p:exodus>\
         <storage xmlns='storage:bookmarks' xmlns:a='urn:a'><a:x/><y xmlns=''/></storage>\
         </query></iq>\n <message to='x'><body>  a &amp; b </body></message> </stream:stream>"
    );
    let evs = events(input.as_bytes()).unwrap();
    assert_eq!(evs.len(), 4, "{evs:?}");
    let XmlEvent::Element(iq) = &evs[1] else {
        panic!()
    };
    assert!(iq.is("iq", "jabber:client"));
    assert_eq!(iq.attr("type"), Some("set"));
    let query = iq.get_child("query", "jabber:iq:private").unwrap();
    let exodus = query.get_child("exodus", "exodus:prefs").unwrap();
    assert_eq!(exodus.attr_ns("exodus:prefs", "attr"), Some("x"));
    assert_eq!(exodus.attr("attr"), None);
    assert_eq!(exodus.attrs.len(), 1);
    let nick = exodus
        .get_child("defaultnick", "jabber:iq:private")
        .unwrap();
    assert_eq!(nick.text(), "Hamlet");
    let storage = query.get_child("storage", "storage:bookmarks").unwrap();
    assert!(storage.get_child("x", "urn:a").is_some());
    assert!(storage.get_child("y", "").is_some());
    let XmlEvent::Element(msg) = &evs[2] else {
        panic!()
    };
    let body = msg.get_child("body", "jabber:client").unwrap();
    assert_eq!(body.children, vec![Node::Text("  a & b ".into())]);
    assert_eq!(evs[3], XmlEvent::StreamClose);
}

#[test]
fn restart_at_element_boundary_within_one_slice() {
    let input = format!(
        "{HEADER}<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>\
         <?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='second'><presence/>"
    );
    let mut p = StreamParser::new(XmlLimits::default());
    let mut buf = input.as_bytes();
    assert!(matches!(
        p.parse(&mut buf),
        Ok(Some(XmlEvent::StreamOpen(_)))
    ));
    let Ok(Some(XmlEvent::Element(e))) = p.parse(&mut buf) else {
        panic!()
    };
    assert!(e.is("success", "urn:ietf:params:xml:ns:xmpp-sasl"));
    assert!(
        buf.starts_with(b"<?xml"),
        "nothing after the element may be consumed"
    );
    p.reset();
    let Ok(Some(XmlEvent::StreamOpen(h))) = p.parse(&mut buf) else {
        panic!()
    };
    assert_eq!(h.attr("to"), Some("second"));
    assert!(matches!(p.parse(&mut buf), Ok(Some(XmlEvent::Element(_)))));
    assert_eq!(p.parse(&mut buf), Ok(None));
}

#[test]
fn without_reset_a_second_header_is_an_error() {
    let input = format!("{HEADER}<a/>{HEADER}");
    assert_eq!(
        first_error(input.as_bytes()),
        XmlError::RestrictedXml("processing instructions")
    );
}

#[test]
fn eof_handling() {
    let mut p = StreamParser::new(XmlLimits::default());
    let mut buf = HEADER.as_bytes();
    p.parse(&mut buf).unwrap();
    assert_eq!(p.handle_eof(), Err(XmlError::UnexpectedEof));
    assert_eq!(p.handle_eof(), Err(XmlError::UnexpectedEof));

    let mut p = StreamParser::new(XmlLimits::default());
    let input = format!("{HEADER}</stream:stream>\n");
    let mut buf = input.as_bytes();
    while p.parse(&mut buf).unwrap().is_some() {}
    assert!(p.is_closed());
    assert_eq!(p.handle_eof(), Ok(None));
}

#[test]
fn errors_are_classified() {
    let h = HEADER;
    let cases: Vec<(String, XmlError)> = vec![
        (
            format!("{h}<a><!-- c --></a>"),
            XmlError::RestrictedXml("comments"),
        ),
        (
            format!("{h}<?pi x?>"),
            XmlError::RestrictedXml("processing instructions"),
        ),
        (
            "<!DOCTYPE stream [<!ENTITY x 'y'>]><stream/>".into(),
            XmlError::RestrictedXml("DTD or markup declaration"),
        ),
        (
            format!("{h}<a><!ENTITY x 'y'></a>"),
            XmlError::RestrictedXml("DTD or markup declaration"),
        ),
        (
            "<?xml version='1.1'?><stream/>".into(),
            XmlError::RestrictedXml("only XML version 1.0 is allowed"),
        ),
    ];
    for (input, want) in cases {
        assert_eq!(first_error(input.as_bytes()), want, "{input}");
    }
    let nwf = [
        format!("{h}<a></b>"),
        format!("{h}<a x='1' x='2'/>"),
        format!("{h}<a xmlns:p='u' xmlns:q='u' p:x='1' q:x='2'/>"),
        format!("{h}hello<a/>"),
        format!("{h}<a>&unknown;</a>"),
        format!("{h}<a>\u{1}</a>"),
        format!("{h}</stream:stream>trailing<"),
        format!("{h}<a b=c/>"),
    ];
    for input in nwf {
        assert!(
            matches!(first_error(input.as_bytes()), XmlError::NotWellFormed(_)),
            "{input}"
        );
    }
    let mut bad_utf8 = HEADER.as_bytes().to_vec();
    bad_utf8.extend_from_slice(b"<a>\xff</a>");
    assert!(matches!(first_error(&bad_utf8), XmlError::NotWellFormed(_)));
    let ns = [
        format!("{h}<p:a/>"),
        format!("{h}<a p:x='1'/>"),
        format!("{h}<xmlns:a/>"),
        format!("{h}<a xmlns:p='http://www.w3.org/2000/xmlns/'/>"),
        format!("{h}<a xmlns:xml='urn:other'/>"),
        format!("{h}<a xmlns:p=''/>"),
    ];
    for input in ns {
        assert!(
            matches!(first_error(input.as_bytes()), XmlError::InvalidNamespace(_)),
            "{input}"
        );
    }
}

#[test]
fn errors_are_sticky() {
    let mut p = StreamParser::new(XmlLimits::default());
    let input = format!("{HEADER}<a></b>");
    let mut buf = input.as_bytes();
    p.parse(&mut buf).unwrap();
    let e = p.parse(&mut buf).unwrap_err();
    let mut more: &[u8] = b"<ok/>";
    assert_eq!(p.parse(&mut more), Err(e.clone()));
    assert_eq!(p.handle_eof(), Err(e));
}

#[test]
fn depth_limit_on_deep_nesting() {
    let mut input = HEADER.as_bytes().to_vec();
    for _ in 0..10_000 {
        input.extend_from_slice(b"<a>");
    }
    assert_eq!(first_error(&input), XmlError::LimitExceeded(Limit::Depth));
    // The limit is inclusive: stanza at depth 1, 48 levels allowed in total.
    let ok = format!("{HEADER}{}{}", "<a>".repeat(48), "</a>".repeat(48));
    assert_eq!(events(ok.as_bytes()).unwrap().len(), 2);
    let bad = format!("{HEADER}{}", "<a>".repeat(49));
    assert_eq!(
        first_error(bad.as_bytes()),
        XmlError::LimitExceeded(Limit::Depth)
    );
    // Element::parse counts from its root.
    let deep = "<a>".repeat(10_000);
    assert_eq!(
        Element::parse(deep.as_bytes()),
        Err(XmlError::LimitExceeded(Limit::Depth))
    );
}

#[test]
fn element_bytes_limit() {
    let limits = XmlLimits {
        max_element_bytes: 1000,
        ..XmlLimits::default()
    };
    let run = |input: &[u8]| {
        let mut p = StreamParser::new(limits);
        let mut buf = input;
        let mut n = 0;
        loop {
            match p.parse(&mut buf) {
                Ok(Some(_)) => n += 1,
                Ok(None) => return Ok(n),
                Err(e) => return Err(e),
            }
        }
    };
    let fits = format!("{HEADER}<m>{}</m>", "x".repeat(990));
    assert_eq!(run(fits.as_bytes()), Ok(2));
    let big = format!("{HEADER}<m>{}</m>", "x".repeat(1000));
    assert_eq!(
        run(big.as_bytes()),
        Err(XmlError::LimitExceeded(Limit::ElementBytes))
    );
    // Counted per element, not per stream.
    let many = format!(
        "{HEADER}{}",
        format!("<m>{}</m>", "x".repeat(900)).repeat(20)
    );
    assert_eq!(run(many.as_bytes()), Ok(21));
    // Also while still inside an unfinished element (no tree is built first).
    let endless = format!("{HEADER}<m>{}", "<b>xxxxxxxx</b>".repeat(1000));
    assert_eq!(
        run(endless.as_bytes()),
        Err(XmlError::LimitExceeded(Limit::ElementBytes))
    );
    // The header is bounded too.
    let long_header = format!(
        "<stream xmlns='jabber:client' {}>",
        (0..60)
            .map(|i| format!("a{i}='{}' ", "y".repeat(20)))
            .collect::<String>()
    );
    assert_eq!(
        run(long_header.as_bytes()),
        Err(XmlError::LimitExceeded(Limit::ElementBytes))
    );
}

#[test]
fn attribute_limit() {
    let attrs = |n: usize| (0..n).map(|i| format!(" a{i}='v'")).collect::<String>();
    let ok = format!("{HEADER}<m{}/>", attrs(64));
    assert_eq!(events(ok.as_bytes()).unwrap().len(), 2);
    let bad = format!("{HEADER}<m{}/>", attrs(65));
    assert_eq!(
        first_error(bad.as_bytes()),
        XmlError::LimitExceeded(Limit::Attributes)
    );
}

#[test]
fn token_length_limit() {
    let name = "n".repeat(9000);
    let bad = format!("{HEADER}<{name}/>");
    assert_eq!(
        first_error(bad.as_bytes()),
        XmlError::LimitExceeded(Limit::TokenLength)
    );
    let bad = format!("{HEADER}<m a='{}'/>", "v".repeat(9000));
    assert_eq!(
        first_error(bad.as_bytes()),
        XmlError::LimitExceeded(Limit::TokenLength)
    );
    // Long text is split by rxml, and joined again into one node.
    let text = "t".repeat(20_000);
    let ok = format!("{HEADER}<m>{text}</m>");
    let evs = events(ok.as_bytes()).unwrap();
    let XmlEvent::Element(m) = &evs[1] else {
        panic!()
    };
    assert_eq!(m.children, vec![Node::Text(text)]);
}

#[test]
fn whitespace_rules() {
    let input = format!("{HEADER} \n\t <a>  <b/> </a>\r\n <c/>");
    let evs = events(input.as_bytes()).unwrap();
    assert_eq!(evs.len(), 3);
    let XmlEvent::Element(a) = &evs[1] else {
        panic!()
    };
    assert_eq!(a.children.len(), 3, "whitespace inside elements is kept");
    assert_eq!(a.children[0], Node::Text("  ".into()));
}

#[test]
fn xml_lang_attribute() {
    let input = format!("{HEADER}<message xml:lang='de'/>");
    let evs = events(input.as_bytes()).unwrap();
    let XmlEvent::Element(m) = &evs[1] else {
        panic!()
    };
    assert_eq!(m.lang(), Some("de"));
    assert_eq!(m.attr_ns(XML_NS, "lang"), Some("de"));
}

/// The restart works wherever the transport happened to cut the bytes: the
/// caller resets right after the `<success/>` element and goes on with the
/// rest of whatever chunk it is holding.
#[test]
fn restart_at_boundary_for_every_chunking() {
    let first = format!("{HEADER}<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>");
    let second = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
                  xmlns:stream='http://etherx.jabber.org/streams' to='second'><presence/>";
    let input = format!("{first}{second}");
    let bytes = input.as_bytes();
    for cut in 0..=bytes.len() {
        let mut p = StreamParser::new(XmlLimits::default());
        let mut got = Vec::new();
        for chunk in [&bytes[..cut], &bytes[cut..]] {
            let mut buf = chunk;
            while let Some(ev) = p.parse(&mut buf).unwrap() {
                let restart = matches!(&ev, XmlEvent::Element(e) if e.name == "success");
                got.push(ev);
                if restart {
                    p.reset();
                }
            }
        }
        assert_eq!(got.len(), 4, "cut at {cut}: {got:?}");
        assert!(matches!(&got[2], XmlEvent::StreamOpen(h) if h.attr("to") == Some("second")));
        assert!(matches!(&got[3], XmlEvent::Element(e) if e.is("presence", "jabber:client")));
    }
}
