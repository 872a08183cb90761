//! Stanza and stream error conditions: element round trips, legacy codes, old forms.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use elsinore_stanza::{
    DefinedCondition, ErrorType, NS_CLIENT, NS_SERVER, NS_STANZAS, NS_STREAM, NS_STREAMS,
    StanzaError, StreamError, StreamErrorCondition, StreamErrorParseError,
};
use elsinore_xml::{Element, XML_NS};

/// XEP-0086 §3 (plus our documented choices for policy-violation and undefined-condition):
/// condition name, default type, legacy code.
const TABLE: &[(&str, ErrorType, u16)] = &[
    ("bad-request", ErrorType::Modify, 400),
    ("conflict", ErrorType::Cancel, 409),
    ("feature-not-implemented", ErrorType::Cancel, 501),
    ("forbidden", ErrorType::Auth, 403),
    ("gone", ErrorType::Modify, 302),
    ("internal-server-error", ErrorType::Wait, 500),
    ("item-not-found", ErrorType::Cancel, 404),
    ("jid-malformed", ErrorType::Modify, 400),
    ("not-acceptable", ErrorType::Modify, 406),
    ("not-allowed", ErrorType::Cancel, 405),
    ("not-authorized", ErrorType::Auth, 401),
    ("payment-required", ErrorType::Auth, 402),
    ("policy-violation", ErrorType::Modify, 406),
    ("recipient-unavailable", ErrorType::Wait, 404),
    ("redirect", ErrorType::Modify, 302),
    ("registration-required", ErrorType::Auth, 407),
    ("remote-server-error", ErrorType::Wait, 502),
    ("remote-server-not-found", ErrorType::Cancel, 404),
    ("remote-server-timeout", ErrorType::Wait, 504),
    ("resource-constraint", ErrorType::Wait, 500),
    ("service-unavailable", ErrorType::Cancel, 503),
    ("subscription-required", ErrorType::Auth, 407),
    ("undefined-condition", ErrorType::Cancel, 500),
    ("unexpected-request", ErrorType::Wait, 400),
];

#[test]
fn table_covers_every_condition() {
    assert_eq!(TABLE.len(), DefinedCondition::ALL.len());
    for (name, ty, code) in TABLE {
        let c = DefinedCondition::from_name(name, None).unwrap();
        assert_eq!(c.name(), *name);
        assert_eq!(c.default_type(), *ty, "{name}");
        assert_eq!(c.legacy_code(), *code, "{name}");
    }
}

#[test]
fn every_condition_round_trips_through_element_and_bytes() {
    let mut conds: Vec<DefinedCondition> = DefinedCondition::ALL.to_vec();
    conds.push(DefinedCondition::Gone(Some(
        "xmpp:romeo@afterlife.example.net".into(),
    )));
    conds.push(DefinedCondition::Redirect(Some(
        "xmpp:rooms@example.com".into(),
    )));
    for cond in conds {
        for ty in ErrorType::ALL {
            let err = StanzaError::new(cond.clone())
                .with_type(ty)
                .with_text_lang("some text", "en")
                .with_by("example.com")
                .with_app(Element::new("too-many", "urn:example:app"));
            for ns in [NS_CLIENT, NS_SERVER] {
                let el = err.to_element(ns);
                assert!(el.is("error", ns));
                assert_eq!(
                    el.attr("code"),
                    Some(cond.legacy_code().to_string().as_str())
                );
                assert_eq!(el.attr("type"), Some(ty.as_str()));
                assert_eq!(StanzaError::from_element(&el), err, "{cond}");
                let back = Element::parse(&el.to_bytes()).unwrap();
                assert_eq!(StanzaError::from_element(&back), err, "{cond}");
            }
            // Minimal form too.
            let bare = StanzaError::new(cond.clone());
            assert_eq!(StanzaError::from_element(&bare.to_element(NS_CLIENT)), bare);
        }
    }
}

#[test]
fn serialized_form_matches_rfc_6120() {
    let err =
        StanzaError::new(DefinedCondition::ServiceUnavailable).with_text_lang("gone fishing", "en");
    let text = err.to_element(NS_CLIENT).to_string();
    assert_eq!(
        text,
        "<error xmlns='jabber:client' type='cancel' code='503'>\
         <service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         <text xmlns='urn:ietf:params:xml:ns:xmpp-stanzas' xml:lang='en'>gone fishing</text>\
         </error>"
    );
    let gone = StanzaError::new(DefinedCondition::Gone(Some("xmpp:a@b".into())));
    assert!(
        gone.to_element(NS_CLIENT)
            .to_string()
            .contains(">xmpp:a@b</gone>")
    );
}

/// XEP-0086 §4: an error with only a code maps to a condition and type.
#[test]
fn legacy_code_only_errors() {
    let cases: &[(&str, DefinedCondition, ErrorType)] = &[
        ("302", DefinedCondition::Redirect(None), ErrorType::Modify),
        ("400", DefinedCondition::BadRequest, ErrorType::Modify),
        ("401", DefinedCondition::NotAuthorized, ErrorType::Auth),
        ("402", DefinedCondition::PaymentRequired, ErrorType::Auth),
        ("403", DefinedCondition::Forbidden, ErrorType::Auth),
        ("404", DefinedCondition::ItemNotFound, ErrorType::Cancel),
        ("405", DefinedCondition::NotAllowed, ErrorType::Cancel),
        ("406", DefinedCondition::NotAcceptable, ErrorType::Modify),
        (
            "407",
            DefinedCondition::RegistrationRequired,
            ErrorType::Auth,
        ),
        (
            "408",
            DefinedCondition::RemoteServerTimeout,
            ErrorType::Wait,
        ),
        ("409", DefinedCondition::Conflict, ErrorType::Cancel),
        (
            "500",
            DefinedCondition::InternalServerError,
            ErrorType::Wait,
        ),
        (
            "501",
            DefinedCondition::FeatureNotImplemented,
            ErrorType::Cancel,
        ),
        ("502", DefinedCondition::ServiceUnavailable, ErrorType::Wait),
        (
            "503",
            DefinedCondition::ServiceUnavailable,
            ErrorType::Cancel,
        ),
        (
            "504",
            DefinedCondition::RemoteServerTimeout,
            ErrorType::Wait,
        ),
        (
            "510",
            DefinedCondition::ServiceUnavailable,
            ErrorType::Cancel,
        ),
        // Unlisted codes map by class.
        ("399", DefinedCondition::Redirect(None), ErrorType::Modify),
        ("418", DefinedCondition::BadRequest, ErrorType::Modify),
        (
            "599",
            DefinedCondition::UndefinedCondition,
            ErrorType::Cancel,
        ),
        // Garbage codes: nothing to go on.
        (
            "200",
            DefinedCondition::UndefinedCondition,
            ErrorType::Cancel,
        ),
        (
            "abc",
            DefinedCondition::UndefinedCondition,
            ErrorType::Cancel,
        ),
        (
            "99999",
            DefinedCondition::UndefinedCondition,
            ErrorType::Cancel,
        ),
    ];
    for (code, cond, ty) in cases {
        let el = Element::new("error", NS_CLIENT).with_attr("code", *code);
        let err = StanzaError::from_element(&el);
        assert_eq!((&err.condition, err.type_), (cond, *ty), "code {code}");
        assert_eq!(err.text, None);
    }
    // Jabber 1.x style: text content directly in <error/>.
    let el = Element::parse(b"<error xmlns='jabber:client' code='404'>Not Found</error>").unwrap();
    let err = StanzaError::from_element(&el);
    assert_eq!(err.condition, DefinedCondition::ItemNotFound);
    assert_eq!(err.text.as_deref(), Some("Not Found"));
    // A type attribute wins over the code's type; a defined condition wins over the code.
    let el = Element::parse(
        b"<error xmlns='jabber:client' code='404' type='wait'>\
          <recipient-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>",
    )
    .unwrap();
    let err = StanzaError::from_element(&el);
    assert_eq!(err.condition, DefinedCondition::RecipientUnavailable);
    assert_eq!(err.type_, ErrorType::Wait);
}

#[test]
fn legacy_code_of_every_condition_maps_back_to_a_condition_with_that_code() {
    for cond in DefinedCondition::ALL {
        let (back, _) = DefinedCondition::from_legacy_code(cond.legacy_code()).unwrap();
        if cond == DefinedCondition::RemoteServerError {
            // XEP-0086 §4 maps 502 to service-unavailable (wait), not to the draft-era
            // condition that XEP-0086 §3 no longer lists.
            assert_eq!(back, DefinedCondition::ServiceUnavailable);
            continue;
        }
        assert_eq!(back.legacy_code(), cond.legacy_code(), "{cond}");
    }
}

#[test]
fn missing_or_bad_type_falls_back_to_default() {
    let el = Element::new("error", NS_CLIENT)
        .with_attr("type", "CANCEL")
        .with_child(Element::new("conflict", NS_STANZAS));
    let err = StanzaError::from_element(&el);
    assert_eq!(err.condition, DefinedCondition::Conflict);
    assert_eq!(err.type_, ErrorType::Cancel);
    let el = Element::new("error", NS_CLIENT).with_child(Element::new("forbidden", NS_STANZAS));
    assert_eq!(StanzaError::from_element(&el).type_, ErrorType::Auth);
    // Empty error: undefined-condition, cancel.
    let err = StanzaError::from_element(&Element::new("error", NS_CLIENT));
    assert_eq!(err, StanzaError::new(DefinedCondition::UndefinedCondition));
}

/// draft-ietf-xmpp-core-11 §7.7.2: `class` attribute, `<condition/>` wrapper.
#[test]
fn draft_11_stanza_error_syntax() {
    let el = Element::parse(
        b"<error xmlns='jabber:client' class='address'>\
          <condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'><jid-not-found/></condition>\
          </error>",
    )
    .unwrap();
    let err = StanzaError::from_element(&el);
    assert_eq!(err.condition, DefinedCondition::ItemNotFound);
    assert_eq!(err.type_, ErrorType::Cancel);
    assert_eq!(err.app, None);
    // App condition inside the wrapper (draft §7.7.4).
    let el = Element::parse(
        b"<error xmlns='jabber:client' class='app'>\
          <condition xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'>\
          <not-allowed/><x xmlns='urn:example'/></condition></error>",
    )
    .unwrap();
    let err = StanzaError::from_element(&el);
    assert_eq!(err.condition, DefinedCondition::NotAllowed);
    assert!(err.app.unwrap().is("x", "urn:example"));
}

#[test]
fn bad_format_alias() {
    // Without a code, XEP-0049's bad-format reads as bad-request.
    let el = Element::new("error", NS_CLIENT).with_child(Element::new("bad-format", NS_STANZAS));
    let err = StanzaError::from_element(&el);
    assert_eq!(err.condition, DefinedCondition::BadRequest);
    assert_eq!(err.type_, ErrorType::Modify);
    // With code 406 (XEP-0049 listing 4), the code decides.
    let el = el.with_attr("code", "406");
    assert_eq!(
        StanzaError::from_element(&el).condition,
        DefinedCondition::NotAcceptable
    );
}

#[test]
fn text_lang_and_first_wins() {
    let mut t = Element::new("text", NS_STANZAS).with_text("première");
    t.set_attr_ns(XML_NS, "lang", "fr");
    let el = Element::new("error", NS_CLIENT)
        .with_attr("type", "modify")
        .with_child(Element::new("not-acceptable", NS_STANZAS))
        .with_child(Element::new("conflict", NS_STANZAS))
        .with_child(t)
        .with_child(Element::new("text", NS_STANZAS).with_text("second"))
        .with_child(Element::new("a", "urn:a"))
        .with_child(Element::new("b", "urn:b"));
    let err = StanzaError::from_element(&el);
    assert_eq!(err.condition, DefinedCondition::NotAcceptable);
    assert_eq!(err.text.as_deref(), Some("première"));
    assert_eq!(err.text_lang.as_deref(), Some("fr"));
    assert!(err.app.unwrap().is("a", "urn:a"));
}

// ---------------------------------------------------------------------------------------
// Stream errors

#[test]
fn every_stream_condition_round_trips() {
    let mut conds = StreamErrorCondition::ALL.to_vec();
    conds.push(StreamErrorCondition::SeeOtherHost(
        "[2001:db8::1]:5222".into(),
    ));
    for cond in conds {
        for err in [
            StreamError::new(cond.clone()),
            StreamError::new(cond.clone())
                .with_text("because")
                .with_app(Element::new("escape-your-data", "urn:example")),
        ] {
            let el = err.to_element();
            assert!(el.is("error", NS_STREAM));
            assert!(el.elements().next().unwrap().is(cond.name(), NS_STREAMS));
            assert_eq!(StreamError::from_element(&el), Ok(err.clone()));
            let back = Element::parse(&el.to_bytes()).unwrap();
            assert_eq!(StreamError::try_from(&back), Ok(err.clone()));
        }
    }
}

#[test]
fn stream_error_wire_form() {
    let err = StreamError::new(StreamErrorCondition::SeeOtherHost("other.example".into()));
    let mut out = Vec::new();
    err.to_element().write_to(&mut out, NS_CLIENT);
    // Inside a stream the writer chooses how to spell the namespace; what matters is that
    // it parses back in the right namespaces.
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("http://etherx.jabber.org/streams"), "{text}");
    assert!(text.contains(">other.example</see-other-host>"), "{text}");
}

/// The "session gone bad" example of draft-ietf-xmpp-core-11 §4.6, and RFC 3920 names.
#[test]
fn draft_11_stream_errors() {
    let el = Element::parse(
        b"<stream:error xmlns:stream='http://etherx.jabber.org/streams' class='client'>\
          <condition xmlns='urn:ietf:params:xml:ns:xmpp-streams'>\
          <xml-not-well-formed/>\
          </condition>\
          </stream:error>",
    )
    .unwrap();
    let err = StreamError::from_element(&el).unwrap();
    assert_eq!(err, StreamError::new(StreamErrorCondition::NotWellFormed));
    for (old, new) in [
        ("xml-not-well-formed", StreamErrorCondition::NotWellFormed),
        ("nonmatching-hosts", StreamErrorCondition::InvalidFrom),
        ("invalid-id", StreamErrorCondition::NotAuthorized),
    ] {
        let el = Element::new("error", NS_STREAM).with_child(Element::new(old, NS_STREAMS));
        assert_eq!(
            StreamError::from_element(&el).unwrap().condition,
            new,
            "{old}"
        );
        // We send the RFC 6120 name.
        let sent = StreamError::new(new.clone()).to_element();
        assert_ne!(sent.elements().next().unwrap().name, old);
    }
    let el = Element::new("error", NS_STREAM)
        .with_child(Element::new("see-other-host", NS_STREAMS).with_text(" \n other.example \n"));
    assert_eq!(
        StreamError::from_element(&el).unwrap().condition,
        StreamErrorCondition::SeeOtherHost("other.example".into())
    );
}

#[test]
fn stream_error_tolerance_and_rejection() {
    // Unknown or missing condition: undefined-condition.
    let el = Element::new("error", NS_STREAM).with_child(Element::new("frobnicated", NS_STREAMS));
    assert_eq!(
        StreamError::from_element(&el).unwrap().condition,
        StreamErrorCondition::UndefinedCondition
    );
    // Not a stream error at all.
    assert_eq!(
        StreamError::from_element(&Element::new("error", NS_CLIENT)),
        Err(StreamErrorParseError::NotStreamError)
    );
    assert_eq!(
        StreamError::from_element(&Element::new("features", NS_STREAM)),
        Err(StreamErrorParseError::NotStreamError)
    );
}
