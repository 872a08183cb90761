//! Inputs found by the `stanza` fuzz target (fuzz/fuzz_targets/stanza.rs), minimised.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use elsinore_stanza::{NS_CLIENT, NS_SERVER, Stanza};
use elsinore_xml::Element;

/// `Stanza → Element → Stanza` and `Stanza → bytes → Element → Stanza` in both namespaces.
fn assert_round_trip(xml: &str) {
    let stanza = Stanza::try_from(Element::parse(xml.as_bytes()).unwrap()).unwrap();
    for ns in [NS_CLIENT, NS_SERVER] {
        let el = stanza.clone().into_element(ns);
        assert_eq!(Stanza::try_from(el.clone()).as_ref(), Ok(&stanza), "{ns}");
        let back = Element::parse(&el.to_bytes()).unwrap();
        assert_eq!(
            Stanza::try_from(back).as_ref(),
            Ok(&stanza),
            "{ns} via bytes"
        );
    }
}

/// Found 2026-11-22: with two `<error/>` children the first was taken as the error and the
/// second kept as the echoed original, which is written *before* the error, so the
/// re-parsed stanza swapped them. The error is now the last `<error/>` child, which is
/// where serialization puts it.
#[test]
fn fuzz_iq_error_with_two_error_children_round_trips() {
    assert_round_trip(
        "<iq xmlns='jabber:client' id='e1' type='error'>\
         <error type='modify'><bad-request xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>\
         <error type='cancel' code='500'/></iq>",
    );
}

/// Same shape for messages: extra `<error/>` payloads stay payloads, in order.
#[test]
fn fuzz_message_error_with_two_error_children_round_trips() {
    assert_round_trip(
        "<message xmlns='jabber:client' type='error'><error type='auth'/><body>x</body>\
         <error type='wait'><resource-constraint \
         xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>",
    );
}

/// A `jabber:server` element inside a `jabber:client` error stanza (CI fuzz smoke,
/// 2026-11-22): it must read back the same after the stanza is written in either namespace.
#[test]
fn fuzz_server_namespace_child_in_a_client_stanza_round_trips() {
    let xml = b"<iq xmlns='jabber:client' id='e0' type='error'><query xmlns='jabber:iq:private'/>\
<error type='modify'><bad-request xmlns='jabber:server'/></error></iq>";
    let stanza = Stanza::try_from(Element::parse(xml).unwrap()).unwrap();
    for ns in [NS_CLIENT, NS_SERVER] {
        let el = stanza.clone().into_element(ns);
        assert_eq!(Stanza::try_from(el).unwrap(), stanza, "{ns}");
    }
}
