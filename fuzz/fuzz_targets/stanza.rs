//! `Element::parse` → `Stanza::try_from` on arbitrary bytes.
//!
//! Checks, for an element that parses as a stanza, in both stream namespaces:
//! - `into_element` → `try_from` gives an equal stanza, and so does the trip through bytes
//!   (`to_bytes` → `Element::parse`);
//! - `error_reply` never panics, is `None` exactly for errors and iq results, and a reply
//!   is itself an error stanza addressed back to the sender, with the same id.
//!
//! For an element that is not a stanza, `StanzaParseError::error_reply` never panics and
//! never answers an error (or a non-stanza).
#![no_main]

use elsinore_stanza::{
    DefinedCondition, IqPayload, NS_CLIENT, NS_SERVER, Stanza, StanzaError, StanzaParseErrorKind,
};
use elsinore_xml::{Element, XmlLimits};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(el) = Element::parse(data) else {
        return;
    };
    let orig_type = el.attr("type").map(str::to_owned);
    let stanza = match Stanza::try_from(el) {
        Ok(s) => s,
        Err(e) => {
            let reply = e.error_reply(NS_CLIENT);
            if let Some(r) = &reply {
                assert_eq!(r.attr("type"), Some("error"));
                assert_ne!(
                    e.header.type_.as_deref(),
                    Some("error"),
                    "answered an error"
                );
                assert!(!matches!(e.kind, StanzaParseErrorKind::NotAStanza));
                // A reply must itself be well-formed and readable.
                assert_eq!(Element::parse(&r.to_bytes()).as_ref(), Ok(r));
            }
            return;
        }
    };
    for ns in [NS_CLIENT, NS_SERVER] {
        let el = stanza.clone().into_element(ns);
        assert_eq!(
            Stanza::try_from(el.clone()).as_ref(),
            Ok(&stanza),
            "{ns}: {el:?}"
        );
        let bytes = el.to_bytes();
        // Escaping can make the output longer than the input's limits allowed.
        let roomy = XmlLimits {
            max_element_bytes: usize::MAX,
            max_token_length: 1 << 20,
            ..XmlLimits::default()
        };
        let back = Element::parse_with_limits(&bytes, roomy)
            .map_err(|e| format!("{e:?}: {}", String::from_utf8_lossy(&bytes)));
        match back {
            Ok(b) => assert_eq!(Stanza::try_from(b).as_ref(), Ok(&stanza), "{ns}"),
            Err(e) => panic!("serialized stanza does not parse: {e}"),
        }
    }

    let is_iq_result =
        matches!(&stanza, Stanza::Iq(i) if matches!(i.payload, IqPayload::Result(_)));
    let reply = stanza.error_reply(StanzaError::new(DefinedCondition::ServiceUnavailable));
    assert_eq!(
        reply.is_none(),
        stanza.is_error() || is_iq_result,
        "{stanza:?}"
    );
    assert_eq!(stanza.is_error(), orig_type.as_deref() == Some("error"));
    if let Some(r) = reply {
        assert!(r.is_error());
        assert_eq!(r.name(), stanza.name());
        assert_eq!(r.id(), stanza.id());
        assert_eq!(r.to_jid(), stanza.from_jid());
        assert_eq!(r.from_jid(), stanza.to_jid());
        // The reply survives its own round trip.
        let el = r.clone().into_element(NS_CLIENT);
        assert_eq!(Stanza::try_from(el).as_ref(), Ok(&r));
    }
});
