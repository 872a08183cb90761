//! Property: `Stanza → Element → Stanza` is the identity, in both stream namespaces, and
//! so is `Stanza → bytes → Element → Stanza` (through elsinore-xml's writer and parser).
//! Likewise for stanza errors and stream errors.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use elsinore_jid::Jid;
use elsinore_stanza::{
    DefinedCondition, ErrorType, Iq, IqPayload, Message, MessageType, NS_CLIENT, NS_SERVER,
    Presence, PresenceType, Stanza, StanzaError, StreamError, StreamErrorCondition,
};
use elsinore_xml::{Attr, Element, Node, XML_NS};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

/// Text that XML can carry verbatim (no control characters, whose handling is the XML
/// layer's business), with the characters that need escaping.
fn text() -> impl Strategy<Value = String> {
    "[ -~äöß€😀<>&'\"]{0,12}"
}

fn nonempty_text() -> impl Strategy<Value = String> {
    "[ -~äöß€😀<>&'\"]{1,12}"
}

fn jid() -> impl Strategy<Value = Jid> {
    (
        option::of("[a-z0-9]{1,6}"),
        "[a-z]{1,6}(\\.[a-z]{2,3})?",
        option::of("[A-Za-z0-9]{1,6}"),
    )
        .prop_map(|(node, domain, res)| {
            let mut s = String::new();
            if let Some(n) = node {
                s.push_str(&n);
                s.push('@');
            }
            s.push_str(&domain);
            if let Some(r) = res {
                s.push('/');
                s.push_str(&r);
            }
            Jid::parse(&s).unwrap()
        })
}

/// Payload namespaces: foreign ones and the stanza namespace (stored as `NS_CLIENT`).
fn payload_ns() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(NS_CLIENT.to_string()),
        Just("urn:example:a".to_string()),
        Just("urn:example:b".to_string()),
        Just("jabber:iq:private".to_string()),
    ]
}

fn attrs(prefix: &'static str) -> impl Strategy<Value = Vec<Attr>> {
    vec(
        (
            prop_oneof![
                3 => Just(String::new()),
                1 => Just("urn:example:attr".to_string()),
                1 => Just(XML_NS.to_string()),
            ],
            "[a-z]{0,4}",
            text(),
        ),
        0..3,
    )
    .prop_map(move |v| {
        let mut out: Vec<Attr> = Vec::new();
        for (ns, name, value) in v {
            let name = format!("{prefix}{name}");
            if !out.iter().any(|a| a.ns == ns && a.name == name) {
                out.push(Attr { ns, name, value });
            }
        }
        out
    })
}

/// Element trees without empty or adjacent text nodes (which XML cannot tell apart).
fn element() -> impl Strategy<Value = Element> {
    let leaf = (
        payload_ns(),
        "p[a-z]{0,5}",
        attrs("a"),
        option::of(nonempty_text()),
    )
        .prop_map(|(ns, name, attrs, text)| Element {
            name,
            ns,
            attrs,
            children: text.into_iter().map(Node::Text).collect(),
        });
    leaf.prop_recursive(3, 12, 3, |inner| {
        (
            payload_ns(),
            "p[a-z]{0,5}",
            attrs("a"),
            vec((inner, option::of(nonempty_text())), 0..3),
        )
            .prop_map(|(ns, name, attrs, kids)| {
                let mut children = Vec::new();
                for (el, text) in kids {
                    children.push(Node::Element(el));
                    if let Some(t) = text {
                        children.push(Node::Text(t));
                    }
                }
                Element {
                    name,
                    ns,
                    attrs,
                    children,
                }
            })
    })
}

fn condition() -> impl Strategy<Value = DefinedCondition> {
    prop_oneof![
        4 => proptest::sample::select(DefinedCondition::ALL.to_vec()),
        1 => option::of("xmpp:[a-z]{1,6}@[a-z]{1,6}").prop_map(DefinedCondition::Gone),
        1 => option::of("xmpp:[a-z]{1,6}@[a-z]{1,6}").prop_map(DefinedCondition::Redirect),
    ]
}

fn stanza_error() -> impl Strategy<Value = StanzaError> {
    (
        condition(),
        proptest::sample::select(ErrorType::ALL.to_vec()),
        option::of((text(), option::of("[a-z]{2}"))),
        option::of(element().prop_filter("app is foreign", |e| e.ns != NS_CLIENT)),
        option::of(text()),
    )
        .prop_map(|(condition, type_, text, app, by)| {
            let (text, text_lang) = match text {
                Some((t, l)) => (Some(t), l),
                None => (None, None),
            };
            StanzaError {
                type_,
                condition,
                text,
                text_lang,
                app,
                by,
            }
        })
}

/// Extra attributes that do not collide with the common ones.
fn extra_attrs() -> impl Strategy<Value = Vec<Attr>> {
    attrs("x").prop_map(|v| {
        v.into_iter()
            .filter(|a| !(a.ns == XML_NS && a.name == "lang"))
            .collect()
    })
}

fn message() -> impl Strategy<Value = Message> {
    (
        (option::of(jid()), option::of(jid()), option::of(text())),
        option::of("[a-z]{2}"),
        proptest::sample::select(vec![
            MessageType::Normal,
            MessageType::Chat,
            MessageType::Groupchat,
            MessageType::Headline,
            MessageType::Error,
        ]),
        stanza_error(),
        vec(element(), 0..4),
        extra_attrs(),
    )
        .prop_map(
            |((from, to, id), lang, type_, error, payloads, extra_attrs)| Message {
                from,
                to,
                id,
                lang,
                type_,
                error: (type_ == MessageType::Error).then_some(error),
                payloads,
                extra_attrs,
            },
        )
}

fn presence() -> impl Strategy<Value = Presence> {
    (
        (option::of(jid()), option::of(jid()), option::of(text())),
        option::of("[a-z]{2}"),
        proptest::sample::select(vec![
            PresenceType::Available,
            PresenceType::Unavailable,
            PresenceType::Subscribe,
            PresenceType::Subscribed,
            PresenceType::Unsubscribe,
            PresenceType::Unsubscribed,
            PresenceType::Probe,
            PresenceType::Error,
        ]),
        stanza_error(),
        vec(element(), 0..4),
        extra_attrs(),
    )
        .prop_map(
            |((from, to, id), lang, type_, error, payloads, extra_attrs)| Presence {
                from,
                to,
                id,
                lang,
                type_,
                error: (type_ == PresenceType::Error).then_some(error),
                payloads,
                extra_attrs,
            },
        )
}

fn iq_payload() -> impl Strategy<Value = IqPayload> {
    prop_oneof![
        element().prop_map(IqPayload::Get),
        element().prop_map(IqPayload::Set),
        option::of(element()).prop_map(IqPayload::Result),
        (stanza_error(), option::of(element()))
            .prop_map(|(error, original)| IqPayload::Error { error, original }),
    ]
}

fn iq() -> impl Strategy<Value = Iq> {
    (
        (option::of(jid()), option::of(jid()), text()),
        option::of("[a-z]{2}"),
        iq_payload(),
        extra_attrs(),
    )
        .prop_map(|((from, to, id), lang, payload, extra_attrs)| Iq {
            from,
            to,
            id,
            lang,
            payload,
            extra_attrs,
        })
}

fn stanza() -> impl Strategy<Value = Stanza> {
    prop_oneof![
        message().prop_map(Stanza::Message),
        presence().prop_map(Stanza::Presence),
        iq().prop_map(Stanza::Iq),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn stanza_round_trips(s in stanza()) {
        for ns in [NS_CLIENT, NS_SERVER] {
            let el = s.clone().into_element(ns);
            prop_assert_eq!(&el.ns, ns);
            prop_assert_eq!(Stanza::try_from(el.clone()), Ok(s.clone()));
            let bytes = el.to_bytes();
            let back = Element::parse(&bytes).unwrap();
            prop_assert_eq!(Stanza::try_from(back), Ok(s.clone()));
        }
    }

    #[test]
    fn error_reply_is_never_answered(s in stanza(), e in stanza_error()) {
        match s.error_reply(e.clone()) {
            Some(reply) => {
                prop_assert!(!s.is_error());
                prop_assert!(reply.is_error());
                prop_assert_eq!(reply.id(), s.id());
                prop_assert_eq!(reply.to_jid(), s.from_jid());
                prop_assert_eq!(reply.from_jid(), s.to_jid());
                prop_assert_eq!(reply.error(), Some(&e));
                prop_assert_eq!(reply.error_reply(e.clone()), None);
                let back = Stanza::try_from(reply.into_element(NS_CLIENT)).unwrap();
                prop_assert_eq!(back.error_reply(e), None);
            }
            None => {
                let is_result = matches!(&s, Stanza::Iq(Iq { payload: IqPayload::Result(_), .. }));
                prop_assert!(s.is_error() || is_result, "unanswered: {:?}", s);
            }
        }
    }

    #[test]
    fn stanza_error_round_trips(e in stanza_error()) {
        let el = e.to_element(NS_CLIENT);
        prop_assert_eq!(&StanzaError::from_element(&el), &e);
        let back = Element::parse(&el.to_bytes()).unwrap();
        prop_assert_eq!(StanzaError::from_element(&back), e);
    }

    #[test]
    fn stream_error_round_trips(
        cond in prop_oneof![
            proptest::sample::select(StreamErrorCondition::ALL.to_vec()),
            "[a-z.]{1,10}".prop_map(StreamErrorCondition::SeeOtherHost),
        ],
        text in option::of(text()),
        app in option::of(element()),
    ) {
        let err = StreamError { condition: cond, text, app };
        let el = err.to_element();
        prop_assert_eq!(&StreamError::from_element(&el), &Ok(err.clone()));
        let back = Element::parse(&el.to_bytes()).unwrap();
        prop_assert_eq!(StreamError::from_element(&back), Ok(err));
    }

    /// Whatever element comes in, parsing returns (never panics) and, if it yields a stanza,
    /// that stanza round-trips.
    #[test]
    fn arbitrary_elements_never_panic(
        el in element(),
        name in prop_oneof![Just("message"), Just("presence"), Just("iq"), Just("other")],
        ty in option::of(prop_oneof![Just("get"), Just("set"), Just("result"), Just("error"), Just("chat"), Just("bogus")]),
        id in option::of("[a-z0-9]{1,4}"),
        from in option::of("[a-z@/.]{0,8}"),
    ) {
        let mut stanza = Element::new(name, NS_CLIENT);
        if let Some(t) = ty { stanza.set_attr("type", t); }
        if let Some(i) = id { stanza.set_attr("id", i); }
        if let Some(f) = from { stanza.set_attr("from", f); }
        stanza.children = el.children;
        match Stanza::try_from(stanza) {
            Ok(s) => {
                let again = Stanza::try_from(s.clone().into_element(NS_CLIENT));
                prop_assert_eq!(again, Ok(s));
            }
            Err(e) => {
                let _ = e.to_string();
                if let Some(reply) = e.error_reply(NS_CLIENT) {
                    let reply = Stanza::try_from(reply);
                    prop_assert!(reply.is_ok());
                    prop_assert!(reply.unwrap().is_error());
                }
            }
        }
    }
}
