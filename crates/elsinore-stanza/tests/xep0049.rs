//! Every stanza of every listing of XEP-0049 (Private XML Storage) parses as a [`Stanza`],
//! with the facts the listing shows, and survives a byte-level round trip.
//!
//! The listings are copied from /work/shared/specs/xep-0049-private-xml-storage.txt. The
//! PDF-to-text conversion split listing 3 at a page break, leaving a stray
//! `</query></iq>` between the client's (complete) stanza and the server's; the stray tags
//! close nothing and are left out. Listing 4's client sends a `set` although the prose says
//! `get`; it is kept as written. Listing 5's error writes the stanzas namespace as
//! `urn:iETF:…`, also kept as written.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use elsinore_jid::Jid;
use elsinore_stanza::{
    DefinedCondition, ErrorType, IqPayload, NS_CLIENT, NS_PRIVATE, NS_SERVER, Stanza,
};
use elsinore_xml::{Element, StreamParser, XmlEvent, XmlLimits};

/// What a listing's stanza must parse to.
struct Expect {
    listing: &'static str,
    xml: &'static str,
    /// `get`, `set`, `result` or `error`.
    type_: &'static str,
    id: &'static str,
    from: Option<&'static str>,
    to: Option<&'static str>,
    /// Namespace of the first child of `<query/>`, if any.
    stored_ns: Option<&'static str>,
    /// For errors: condition, type, legacy code we would send.
    error: Option<(DefinedCondition, ErrorType, u16)>,
}

const LISTINGS: &[Expect] = &[
    Expect {
        listing: "1 client",
        xml: r#"<iq type="set" id="1001">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs">
      <defaultnick>Hamlet</defaultnick>
    </exodus>
  </query>
</iq>"#,
        type_: "set",
        id: "1001",
        from: None,
        to: None,
        stored_ns: Some("exodus:prefs"),
        error: None,
    },
    Expect {
        listing: "1 server",
        xml: r#"<iq type="result"
  from="hamlet@shakespeare.lit/denmark"
  to="hamlet@shakespeare.lit/denmark"
  id="1001"/>"#,
        type_: "result",
        id: "1001",
        from: Some("hamlet@shakespeare.lit/denmark"),
        to: Some("hamlet@shakespeare.lit/denmark"),
        stored_ns: None,
        error: None,
    },
    Expect {
        listing: "2 client",
        xml: r#"<iq type="get" id="1002">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs"/>
  </query>
</iq>"#,
        type_: "get",
        id: "1002",
        from: None,
        to: None,
        stored_ns: Some("exodus:prefs"),
        error: None,
    },
    Expect {
        listing: "2 server",
        xml: r#"<iq type="result"
  from="hamlet@shakespeare.lit/denmark"
  to="hamlet@shakespeare.lit/denmark"
  id="1002">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs">
      <defaultnick>Hamlet</defaultnick>
    </exodus>
  </query>
</iq>"#,
        type_: "result",
        id: "1002",
        from: Some("hamlet@shakespeare.lit/denmark"),
        to: Some("hamlet@shakespeare.lit/denmark"),
        stored_ns: Some("exodus:prefs"),
        error: None,
    },
    Expect {
        listing: "3 client",
        xml: r#"<iq type="set" to="hamlet@shakespeare.lit" id="1003">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs">
      <defaultnick>Macbeth</defaultnick>
    </exodus>
  </query>
</iq>"#,
        type_: "set",
        id: "1003",
        from: None,
        to: Some("hamlet@shakespeare.lit"),
        stored_ns: Some("exodus:prefs"),
        error: None,
    },
    Expect {
        listing: "3 server",
        xml: r#"<iq type="error"
  from="hamlet@shakespeare.lit"
  to="macbeth@shakespeare.lit"
  id="1003">
  <query xmlns="jabber:iq:private">
    <exodus xmlns="exodus:prefs">
      <defaultnick>Macbeth</defaultnick>
    </exodus>
  </query>
  <error code="403" type="cancel">
    <forbidden
      xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' />
  </error>
</iq>"#,
        type_: "error",
        id: "1003",
        from: Some("hamlet@shakespeare.lit"),
        to: Some("macbeth@shakespeare.lit"),
        stored_ns: Some("exodus:prefs"),
        error: Some((DefinedCondition::Forbidden, ErrorType::Cancel, 403)),
    },
    Expect {
        listing: "4 client",
        xml: r#"<iq type="set" id="1004">
  <query xmlns="jabber:iq:private"/>
</iq>"#,
        type_: "set",
        id: "1004",
        from: None,
        to: None,
        stored_ns: None,
        error: None,
    },
    Expect {
        listing: "4 server",
        // `bad-format` is no stanza condition; code 406 decides (see DefinedCondition docs).
        xml: r#"<iq type="error" id="1004">
  <query xmlns="jabber:iq:private"/>
  <error code="406" type="modify">
    <bad-format
      xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' />
  </error>
</iq>"#,
        type_: "error",
        id: "1004",
        from: None,
        to: None,
        stored_ns: None,
        error: Some((DefinedCondition::NotAcceptable, ErrorType::Modify, 406)),
    },
    Expect {
        listing: "5 client",
        xml: r#"<iq type="set" id="1005">
  <query xmlns="jabber:iq:private">
    <vCard xmlns="vcard-temp">
      <FN>Hamlet</FN>
    </vCard>
  </query>
</iq>"#,
        type_: "set",
        id: "1005",
        from: None,
        to: None,
        stored_ns: Some("vcard-temp"),
        error: None,
    },
    Expect {
        listing: "5 server",
        xml: r#"<iq type="error" id="1005">
  <query xmlns="jabber:iq:private">
    <vCard xmlns="vcard-temp">
      <FN>Hamlet</FN>
    </vCard>
  </query>
  <error code="406" type="modify">
    <not-acceptable
      xmlns='urn:iETF:params:xml:ns:xmpp-stanzas' />
  </error>
</iq>"#,
        type_: "error",
        id: "1005",
        from: None,
        to: None,
        stored_ns: Some("vcard-temp"),
        error: Some((DefinedCondition::NotAcceptable, ErrorType::Modify, 406)),
    },
];

/// Read the listing as a client stream would deliver it: inside a stream whose content
/// namespace is `ns`.
fn element_in_stream(xml: &str, ns: &str) -> Element {
    let doc = format!(
        "<stream:stream xmlns='{ns}' xmlns:stream='http://etherx.jabber.org/streams'>{xml}"
    );
    let mut parser = StreamParser::new(XmlLimits::default());
    let mut buf = doc.as_bytes();
    let mut out = None;
    while let Some(ev) = parser.parse(&mut buf).unwrap() {
        if let XmlEvent::Element(e) = ev {
            assert!(out.is_none(), "one element per listing stanza");
            out = Some(e);
        }
    }
    out.unwrap()
}

fn check(e: &Expect, stanza: &Stanza) {
    let Stanza::Iq(iq) = stanza else {
        panic!("listing {}: not an iq", e.listing)
    };
    assert_eq!(iq.id, e.id, "listing {}", e.listing);
    assert_eq!(iq.payload.type_str(), e.type_, "listing {}", e.listing);
    let jid = |s: Option<&str>| s.map(|s| Jid::parse(s).unwrap());
    assert_eq!(iq.from, jid(e.from), "listing {}", e.listing);
    assert_eq!(iq.to, jid(e.to), "listing {}", e.listing);
    let query = match &iq.payload {
        IqPayload::Get(q) | IqPayload::Set(q) => Some(q),
        IqPayload::Result(q) => q.as_ref(),
        IqPayload::Error { original, .. } => original.as_ref(),
    };
    if let Some(q) = query {
        assert!(q.is("query", NS_PRIVATE), "listing {}", e.listing);
    } else {
        assert!(e.stored_ns.is_none() && e.type_ == "result");
    }
    let stored = query
        .and_then(|q| q.elements().next())
        .map(|c| c.ns.as_str());
    assert_eq!(stored, e.stored_ns, "listing {}", e.listing);
    match (&iq.payload, &e.error) {
        (IqPayload::Error { error, .. }, Some((cond, ty, code))) => {
            assert_eq!(&error.condition, cond, "listing {}", e.listing);
            assert_eq!(error.type_, *ty, "listing {}", e.listing);
            assert_eq!(
                error.condition.legacy_code(),
                *code,
                "listing {}",
                e.listing
            );
            assert_eq!(error.app, None, "listing {}", e.listing);
        }
        (IqPayload::Error { .. }, None) | (_, Some(_)) => {
            panic!("listing {}: error expectation mismatch", e.listing)
        }
        _ => {}
    }
}

#[test]
fn every_listing_parses() {
    for e in LISTINGS {
        let stanza = Stanza::try_from(element_in_stream(e.xml, NS_CLIENT))
            .unwrap_or_else(|err| panic!("listing {}: {err}", e.listing));
        check(e, &stanza);
    }
}

#[test]
fn every_listing_parses_on_a_server_stream() {
    for e in LISTINGS {
        let stanza = Stanza::try_from(element_in_stream(e.xml, NS_SERVER)).unwrap();
        check(e, &stanza);
    }
}

#[test]
fn every_listing_round_trips_through_bytes() {
    for e in LISTINGS {
        let stanza = Stanza::try_from(element_in_stream(e.xml, NS_CLIENT)).unwrap();
        for ns in [NS_CLIENT, NS_SERVER] {
            let bytes = stanza.clone().into_element(ns).to_bytes();
            let back = Stanza::try_from(Element::parse(&bytes).unwrap()).unwrap();
            assert_eq!(back, stanza, "listing {} via {ns}", e.listing);
        }
        // Inside a stream of the same namespace the stanza is written without xmlns.
        let mut out = Vec::new();
        stanza
            .clone()
            .into_element(NS_CLIENT)
            .write_to(&mut out, NS_CLIENT);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("<iq "), "{text}");
        assert!(!text.contains("jabber:client"), "{text}");
        let back = Stanza::try_from(element_in_stream(&text, NS_CLIENT)).unwrap();
        assert_eq!(back, stanza, "listing {}", e.listing);
    }
}

#[test]
fn errors_we_send_for_the_listings_carry_code_and_rfc_condition() {
    // Listing 3: the error we would send for a set to another user.
    let req = Stanza::try_from(element_in_stream(LISTINGS[4].xml, NS_CLIENT)).unwrap();
    let reply = req
        .error_reply(elsinore_stanza::StanzaError::new(
            DefinedCondition::Forbidden,
        ))
        .unwrap();
    let text = reply.into_element(NS_CLIENT).to_string();
    assert!(text.contains("type='error'"), "{text}");
    assert!(text.contains("code='403'"), "{text}");
    assert!(text.contains("type='auth'"), "{text}");
    assert!(
        text.contains("<forbidden xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"),
        "{text}"
    );
    assert!(
        text.contains("<defaultnick>Macbeth</defaultnick>"),
        "{text}"
    );
    assert!(text.contains("id='1003'"), "{text}");
    // Listing 4: not-acceptable, as XEP-0049 §2.3 requires, with the listing's code.
    let req = Stanza::try_from(element_in_stream(LISTINGS[6].xml, NS_CLIENT)).unwrap();
    let reply = req
        .error_reply(elsinore_stanza::StanzaError::new(
            DefinedCondition::NotAcceptable,
        ))
        .unwrap();
    let text = reply.into_element(NS_CLIENT).to_string();
    assert!(
        text.contains("code='406'") && text.contains("type='modify'"),
        "{text}"
    );
}
