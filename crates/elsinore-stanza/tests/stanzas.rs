//! Stanza parsing, rejection with a reply, error replies.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use elsinore_jid::Jid;
use elsinore_stanza::{
    DefinedCondition, ErrorType, Iq, IqPayload, JidAttr, Message, MessageType, NS_CLIENT, NS_PING,
    NS_SERVER, Presence, PresenceType, Show, Stanza, StanzaError, StanzaParseErrorKind,
    StreamErrorCondition,
};
use elsinore_xml::{Element, XML_NS};

fn parse(xml: &str) -> Result<Stanza, elsinore_stanza::StanzaParseError> {
    Stanza::try_from(Element::parse(xml.as_bytes()).unwrap())
}

fn jid(s: &str) -> Jid {
    Jid::parse(s).unwrap()
}

#[test]
fn message_with_everything() {
    let s = parse(
        "<message xmlns='jabber:client' from='juliet@example.com/balcony' \
         to='romeo@example.net' id='m1' type='chat' xml:lang='en' foo='bar'>\
         <body>Wherefore art thou?</body>\
         <body xml:lang='de'>Warum?</body>\
         <thread>t1</thread>\
         <active xmlns='http://jabber.org/protocol/chatstates'/>\
         </message>",
    )
    .unwrap();
    let Stanza::Message(m) = &s else { panic!() };
    assert_eq!(m.from, Some(jid("juliet@example.com/balcony")));
    assert_eq!(m.to, Some(jid("romeo@example.net")));
    assert_eq!(m.id.as_deref(), Some("m1"));
    assert_eq!(m.lang.as_deref(), Some("en"));
    assert_eq!(m.type_, MessageType::Chat);
    assert_eq!(m.error, None);
    assert_eq!(m.payloads.len(), 4);
    assert_eq!(m.body().as_deref(), Some("Wherefore art thou?"));
    assert_eq!(m.extra_attrs.len(), 1);
    assert_eq!(
        (
            m.extra_attrs[0].name.as_str(),
            m.extra_attrs[0].value.as_str()
        ),
        ("foo", "bar")
    );
    // Written back: same attributes and payloads, in the target namespace.
    let el = s.clone().into_element(NS_SERVER);
    assert_eq!(el.ns, NS_SERVER);
    assert_eq!(el.attr("foo"), Some("bar"));
    assert_eq!(el.lang(), Some("en"));
    assert!(el.get_child("body", NS_SERVER).is_some());
    assert!(
        el.get_child("active", "http://jabber.org/protocol/chatstates")
            .is_some()
    );
    assert_eq!(Stanza::try_from(el).unwrap(), s);
}

#[test]
fn message_body_language_choice() {
    let mut de = Element::new("body", NS_CLIENT).with_text("Hallo");
    de.set_attr_ns(XML_NS, "lang", "de");
    let mut en = Element::new("body", NS_CLIENT).with_text("Hello");
    en.set_attr_ns(XML_NS, "lang", "en");
    let mut m = Message {
        payloads: vec![de, en],
        ..Message::default()
    };
    assert_eq!(m.body().as_deref(), Some("Hallo"));
    m.lang = Some("en".into());
    assert_eq!(m.body().as_deref(), Some("Hello"));
    assert_eq!(Message::default().body(), None);
    let m = Message::with_body(MessageType::Chat, Some(jid("a@b")), "hi");
    assert_eq!(m.body().as_deref(), Some("hi"));
}

#[test]
fn unknown_message_type_is_normal() {
    let Stanza::Message(m) = parse("<message xmlns='jabber:client' type='shout'/>").unwrap() else {
        panic!()
    };
    assert_eq!(m.type_, MessageType::Normal);
}

#[test]
fn presence_types_and_helpers() {
    for (attr, ty) in [
        (None, PresenceType::Available),
        (Some("unavailable"), PresenceType::Unavailable),
        (Some("subscribe"), PresenceType::Subscribe),
        (Some("subscribed"), PresenceType::Subscribed),
        (Some("unsubscribe"), PresenceType::Unsubscribe),
        (Some("unsubscribed"), PresenceType::Unsubscribed),
        (Some("probe"), PresenceType::Probe),
    ] {
        let mut el = Element::new("presence", NS_CLIENT);
        if let Some(a) = attr {
            el.set_attr("type", a);
        }
        let Stanza::Presence(p) = Stanza::try_from(el.clone()).unwrap() else {
            panic!()
        };
        assert_eq!(p.type_, ty);
        assert_eq!(Stanza::Presence(p).into_element(NS_CLIENT), el);
    }
    let Stanza::Presence(p) =
        parse("<presence xmlns='jabber:client'><show>dnd</show><priority>-5</priority></presence>")
            .unwrap()
    else {
        panic!()
    };
    assert_eq!(p.priority(), -5);
    assert_eq!(p.show(), Some(Show::Dnd));
    assert_eq!(Show::Dnd.as_str(), "dnd");
    // Draft 7.4.2.1: a value other than away, chat, dnd or xa is ignored.
    for (xml, want) in [
        ("<show>xa</show>", Some(Show::Xa)),
        ("<show> away </show>", Some(Show::Away)),
        ("<show>chat</show><show>dnd</show>", Some(Show::Chat)),
        ("<show>busy</show>", None),
        ("<show>DND</show>", None),
        ("<show/>", None),
        ("<status>dnd</status>", None),
    ] {
        let Stanza::Presence(p) =
            parse(&format!("<presence xmlns='jabber:client'>{xml}</presence>")).unwrap()
        else {
            panic!()
        };
        assert_eq!(p.show(), want, "{xml}");
    }
    assert_eq!(Presence::new(PresenceType::Probe).priority(), 0);
    let err = parse("<presence xmlns='jabber:client' type='invisible'/>").unwrap_err();
    assert_eq!(err.kind, StanzaParseErrorKind::UnknownType);
    assert_eq!(err.condition(), DefinedCondition::BadRequest);
}

#[test]
fn iq_types() {
    let s = parse("<iq xmlns='jabber:client' type='get' id='p1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>")
        .unwrap();
    let Stanza::Iq(iq) = &s else { panic!() };
    assert_eq!(iq.payload, IqPayload::Get(Element::new("ping", NS_PING)));
    let result = iq.result(None);
    assert_eq!(result.id, "p1");
    assert_eq!(result.from, Some(jid("example.com")));
    assert_eq!(result.to, None);
    assert_eq!(
        result.into_element(NS_CLIENT).to_string(),
        "<iq xmlns='jabber:client' from='example.com' id='p1' type='result'/>"
    );
    let s = parse("<iq xmlns='jabber:server' type='result' id='r'/>").unwrap();
    assert!(matches!(
        s,
        Stanza::Iq(Iq {
            payload: IqPayload::Result(None),
            ..
        })
    ));
    let s = parse("<iq xmlns='jabber:client' type='set' id='s'><a xmlns='urn:a'/></iq>").unwrap();
    assert!(matches!(
        s,
        Stanza::Iq(Iq {
            payload: IqPayload::Set(_),
            ..
        })
    ));
}

#[test]
fn rejections_with_their_conditions() {
    use StanzaParseErrorKind as K;
    let cases: &[(&str, StanzaParseErrorKind, DefinedCondition)] = &[
        (
            "<iq xmlns='jabber:client' type='get'><ping xmlns='urn:xmpp:ping'/></iq>",
            K::MissingIqId,
            DefinedCondition::BadRequest,
        ),
        (
            "<iq xmlns='jabber:client' id='1'><ping xmlns='urn:xmpp:ping'/></iq>",
            K::MissingIqType,
            DefinedCondition::BadRequest,
        ),
        (
            "<iq xmlns='jabber:client' id='1' type='fetch'/>",
            K::UnknownType,
            DefinedCondition::BadRequest,
        ),
        (
            "<iq xmlns='jabber:client' id='1' type='get'/>",
            K::IqChildCount { found: 0 },
            DefinedCondition::BadRequest,
        ),
        (
            "<iq xmlns='jabber:client' id='1' type='set'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
            K::IqChildCount { found: 2 },
            DefinedCondition::BadRequest,
        ),
        (
            "<iq xmlns='jabber:client' id='1' type='result'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
            K::IqChildCount { found: 2 },
            DefinedCondition::BadRequest,
        ),
        (
            "<presence xmlns='jabber:client' type='away'/>",
            K::UnknownType,
            DefinedCondition::BadRequest,
        ),
    ];
    for (xml, kind, cond) in cases {
        let err = parse(xml).unwrap_err();
        assert_eq!(&err.kind, kind, "{xml}");
        assert_eq!(&err.condition(), cond, "{xml}");
        assert_eq!(err.stream_condition(), None);
        assert!(!err.to_string().is_empty());
    }
    // Malformed JIDs: jid-malformed, and the bad address is left out of the reply.
    let err = parse("<message xmlns='jabber:client' from='a@b/c' to='@bad' id='x'/>").unwrap_err();
    assert!(matches!(
        err.kind,
        StanzaParseErrorKind::InvalidJid {
            attr: JidAttr::To,
            ..
        }
    ));
    assert_eq!(err.condition(), DefinedCondition::JidMalformed);
    let reply = err.error_reply(NS_CLIENT).unwrap();
    assert_eq!(reply.attr("to"), Some("a@b/c"));
    assert_eq!(reply.attr("from"), None);
    assert_eq!(reply.attr("id"), Some("x"));
    assert_eq!(reply.attr("type"), Some("error"));
    let reply = Stanza::try_from(reply).unwrap();
    assert_eq!(
        reply.error().unwrap().condition,
        DefinedCondition::JidMalformed
    );
    let err = parse("<iq xmlns='jabber:client' from='' to='Example.COM' id='1' type='get'><a xmlns='urn:a'/></iq>").unwrap_err();
    assert!(matches!(
        err.kind,
        StanzaParseErrorKind::InvalidJid {
            attr: JidAttr::From,
            ..
        }
    ));
    let reply = err.error_reply(NS_CLIENT).unwrap();
    assert_eq!(
        (reply.attr("to"), reply.attr("from")),
        (None, Some("example.com"))
    );
    // Another problem reported first: the malformed address is still not echoed.
    let err = parse("<iq xmlns='jabber:client' from='a@@b' to='example.com' id='1' type='get'/>")
        .unwrap_err();
    assert_eq!(err.kind, StanzaParseErrorKind::IqChildCount { found: 0 });
    let reply = err.error_reply(NS_CLIENT).unwrap();
    assert_eq!(
        (reply.attr("to"), reply.attr("from")),
        (None, Some("example.com"))
    );
}

#[test]
fn parse_error_replies_are_valid_stanzas_with_text() {
    let err = parse("<iq xmlns='jabber:client' from='a@b/c' id='7' type='get'/>").unwrap_err();
    let reply = Stanza::try_from(err.error_reply(NS_CLIENT).unwrap()).unwrap();
    let Stanza::Iq(Iq {
        id,
        payload: IqPayload::Error { error, original },
        to,
        ..
    }) = reply
    else {
        panic!()
    };
    assert_eq!(id, "7");
    assert_eq!(to, Some(jid("a@b/c")));
    assert_eq!(original, None);
    assert_eq!(error.condition, DefinedCondition::BadRequest);
    assert_eq!(error.type_, ErrorType::Modify);
    assert!(error.text.unwrap().contains("exactly one"));
}

#[test]
fn never_reply_to_errors_or_results_or_non_stanzas() {
    // Rejected stanzas of type error / iq results get no reply.
    for xml in [
        "<iq xmlns='jabber:client' type='error' from='@x'/>",
        "<iq xmlns='jabber:client' type='result' id='1'><a xmlns='urn:a'/><b xmlns='urn:b'/></iq>",
        "<message xmlns='jabber:client' type='error' to='@x'/>",
        "<presence xmlns='jabber:client' type='error' to='@x'/>",
        // An iq without id: a reply could not be matched and would be invalid itself.
        "<iq xmlns='jabber:client' type='get'><a xmlns='urn:a'/></iq>",
    ] {
        let err = parse(xml).unwrap_err();
        assert!(!err.may_reply(), "{xml}");
        assert_eq!(err.error_reply(NS_CLIENT), None, "{xml}");
    }
    // Non-stanzas are a stream-level matter.
    for xml in [
        "<foo xmlns='jabber:client'/>",
        "<message xmlns='urn:other'/>",
        "<iq xmlns='' type='get' id='1'/>",
    ] {
        let err = parse(xml).unwrap_err();
        assert_eq!(err.kind, StanzaParseErrorKind::NotAStanza);
        assert_eq!(
            err.stream_condition(),
            Some(StreamErrorCondition::UnsupportedStanzaType)
        );
        assert_eq!(err.error_reply(NS_CLIENT), None);
    }
    // Parsed error stanzas: error_reply is None.
    let err = StanzaError::new(DefinedCondition::ServiceUnavailable);
    for xml in [
        "<message xmlns='jabber:client' type='error'><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
        "<presence xmlns='jabber:client' type='error'/>",
        "<iq xmlns='jabber:client' type='error' id='1'/>",
        "<iq xmlns='jabber:client' type='result' id='1'/>",
    ] {
        let s = parse(xml).unwrap();
        assert_eq!(s.error_reply(err.clone()), None, "{xml}");
    }
    // And a reply to a non-error is itself an error that gets no reply.
    let s = parse(
        "<message xmlns='jabber:client' from='a@b/c' to='d@e' id='q'><body>x</body></message>",
    )
    .unwrap();
    let reply = s.error_reply(err.clone()).unwrap();
    assert!(reply.is_error());
    assert_eq!(reply.error_reply(err.clone()), None);
    let reparsed = Stanza::try_from(reply.into_element(NS_CLIENT)).unwrap();
    assert!(reparsed.is_error());
    assert_eq!(reparsed.error_reply(err), None);
}

#[test]
fn error_reply_swaps_addresses_and_echoes_iq_payload() {
    let s = parse(
        "<iq xmlns='jabber:client' from='a@b/c' to='b' id='q1' type='set'>\
         <query xmlns='jabber:iq:private'><x xmlns='urn:x'>data</x></query></iq>",
    )
    .unwrap();
    let err = StanzaError::new(DefinedCondition::Forbidden).with_text("not yours");
    let reply = s.error_reply(err.clone()).unwrap();
    assert_eq!(reply.from_jid(), Some(&jid("b")));
    assert_eq!(reply.to_jid(), Some(&jid("a@b/c")));
    assert_eq!(reply.id(), Some("q1"));
    let Stanza::Iq(Iq {
        payload: IqPayload::Error { error, original },
        ..
    }) = &reply
    else {
        panic!()
    };
    assert_eq!(error, &err);
    assert_eq!(original.as_ref(), s_request(&s));
    assert_eq!(
        Stanza::try_from(reply.clone().into_element(NS_CLIENT)).unwrap(),
        reply
    );
    let Stanza::Iq(iq) = s.clone() else { panic!() };
    assert_eq!(
        iq.into_error_reply(err.clone()).map(Stanza::Iq),
        Some(reply)
    );
    let result = Iq::with_payload("r", IqPayload::Result(None));
    assert_eq!(result.clone().into_error_reply(err.clone()), None);
    assert_eq!(result.error_reply(err), None);

    let p =
        parse("<presence xmlns='jabber:client' from='a@b/c' to='d@e' type='subscribe' id='s'/>")
            .unwrap();
    let reply = p
        .error_reply(StanzaError::new(DefinedCondition::RemoteServerNotFound))
        .unwrap();
    let Stanza::Presence(rp) = &reply else {
        panic!()
    };
    assert_eq!(rp.type_, PresenceType::Error);
    assert_eq!(rp.to, Some(jid("a@b/c")));
    assert_eq!(rp.from, Some(jid("d@e")));
    assert_eq!(rp.id.as_deref(), Some("s"));
    assert_eq!(
        Stanza::try_from(reply.clone().into_element(NS_SERVER)).unwrap(),
        reply
    );
}

fn s_request(s: &Stanza) -> Option<&Element> {
    match s {
        Stanza::Iq(iq) => iq.payload.request(),
        _ => None,
    }
}

#[test]
fn error_stanzas_parse_tolerantly() {
    // Error iq with the original payload before or after the error, and without any error.
    let s = parse(
        "<iq xmlns='jabber:client' type='error' id='1'>\
         <error code='503'/><query xmlns='urn:q'/></iq>",
    )
    .unwrap();
    let Stanza::Iq(Iq {
        payload: IqPayload::Error { error, original },
        ..
    }) = s
    else {
        panic!()
    };
    assert_eq!(error.condition, DefinedCondition::ServiceUnavailable);
    assert!(original.unwrap().is("query", "urn:q"));
    let s = parse("<message xmlns='jabber:client' type='error'><body>hi</body></message>").unwrap();
    assert_eq!(
        s.error().unwrap().condition,
        DefinedCondition::UndefinedCondition
    );
    let Stanza::Message(m) = s else { panic!() };
    assert_eq!(m.body().as_deref(), Some("hi"));
    // An <error/> child in a non-error stanza is just a payload.
    let s = parse("<message xmlns='jabber:client'><error code='404'/></message>").unwrap();
    let Stanza::Message(m) = &s else { panic!() };
    assert_eq!((m.error.as_ref(), m.payloads.len()), (None, 1));
    assert_eq!(
        Stanza::try_from(s.clone().into_element(NS_CLIENT)).unwrap(),
        s
    );
}

#[test]
fn stanza_namespace_payloads_follow_the_stream_namespace() {
    let s = parse(
        "<message xmlns='jabber:server' from='a@b' to='c@d'><body>x</body>\
         <forwarded xmlns='urn:xmpp:forward:0'><message xmlns='jabber:client'><body>y</body></message></forwarded>\
         </message>",
    )
    .unwrap();
    let Stanza::Message(m) = &s else { panic!() };
    assert!(m.payloads[0].is("body", NS_CLIENT));
    let client = s.clone().into_element(NS_CLIENT);
    assert!(client.get_child("body", NS_CLIENT).is_some());
    let server = s.clone().into_element(NS_SERVER);
    assert!(server.get_child("body", NS_SERVER).is_some());
    // The forwarded message stays jabber:client (XEP-0297), on either stream.
    let fwd = server.get_child("forwarded", "urn:xmpp:forward:0").unwrap();
    assert!(fwd.get_child("message", NS_CLIENT).is_some());
    let mut out = Vec::new();
    server.write_to(&mut out, NS_SERVER);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.starts_with("<message from='a@b' to='c@d'><body>x</body>"),
        "{text}"
    );
}

#[test]
fn stanza_accessors_and_setters() {
    let mut s: Stanza = Iq::get("i", Element::new("ping", NS_PING))
        .with_to(jid("example.com"))
        .into();
    assert_eq!(s.name(), "iq");
    assert_eq!(s.id(), Some("i"));
    assert!(!s.is_error());
    s.set_from(Some(jid("u@example.com/r")));
    s.set_to(None);
    assert_eq!(s.from_jid(), Some(&jid("u@example.com/r")));
    assert_eq!(s.to_jid(), None);
    let s: Stanza = Presence::new(PresenceType::Unavailable).into();
    assert_eq!((s.name(), s.id()), ("presence", None));
    let s: Stanza = Message::default().into();
    assert_eq!(s.name(), "message");
    assert_eq!(
        s.clone().into_element(NS_CLIENT).to_string(),
        "<message xmlns='jabber:client'/>"
    );
}

#[test]
fn error_type_without_error_value_still_writes_an_error_child() {
    let m = Message {
        type_: MessageType::Error,
        ..Message::default()
    };
    let el = m.into_element(NS_CLIENT);
    let e = el.get_child("error", NS_CLIENT).unwrap();
    assert_eq!(e.attr("type"), Some("cancel"));
}
