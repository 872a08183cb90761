//! The listings of XEP-0049 (Private XML Storage) parse to the expected trees.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use elsinore_xml::{Element, XmlEvent};

fn elements(events: &[XmlEvent]) -> Vec<&Element> {
    events
        .iter()
        .filter_map(|e| match e {
            XmlEvent::Element(e) => Some(e),
            _ => None,
        })
        .collect()
}

#[test]
fn client_listings() {
    let (evs, err) = common::feed([common::SAMPLES[0].as_bytes()]);
    assert_eq!(err, None);
    assert!(matches!(&evs[0], XmlEvent::StreamOpen(h) if h.is_stream()));
    assert_eq!(evs.last(), Some(&XmlEvent::StreamClose));
    let iqs = elements(&evs);
    assert_eq!(iqs.len(), 5);
    let ids: Vec<_> = iqs.iter().map(|e| e.attr("id").unwrap()).collect();
    assert_eq!(ids, ["1001", "1002", "1003", "1004", "1005"]);
    let query = iqs[0].get_child("query", "jabber:iq:private").unwrap();
    let exodus = query.get_child("exodus", "exodus:prefs").unwrap();
    let nick = exodus.get_child("defaultnick", "exodus:prefs").unwrap();
    assert_eq!(nick.text(), "Hamlet");
    // Whitespace inside the stanza is kept as text.
    assert_eq!(exodus.children.len(), 3);
    assert!(
        iqs[3]
            .get_child("query", "jabber:iq:private")
            .unwrap()
            .is_empty()
    );
    let vcard = iqs[4]
        .get_child("query", "jabber:iq:private")
        .unwrap()
        .get_child("vCard", "vcard-temp")
        .unwrap();
    assert_eq!(
        vcard.get_child("FN", "vcard-temp").unwrap().text(),
        "Hamlet"
    );
}

#[test]
fn server_listings() {
    let (evs, err) = common::feed([common::SAMPLES[1].as_bytes()]);
    assert_eq!(err, None);
    let iqs = elements(&evs);
    assert_eq!(iqs.len(), 5);
    assert_eq!(iqs[0].attr("to"), Some("hamlet@shakespeare.lit/denmark"));
    assert!(iqs[0].is_empty());
    let error = iqs[2].get_child("error", "jabber:client").unwrap();
    assert_eq!(error.attr("code"), Some("403"));
    assert!(
        error
            .get_child("forbidden", "urn:ietf:params:xml:ns:xmpp-stanzas")
            .is_some()
    );
    // Listing 5 has a mis-cased namespace; namespaces are compared exactly.
    let error = iqs[4].get_child("error", "jabber:client").unwrap();
    assert!(
        error
            .get_child("not-acceptable", "urn:iETF:params:xml:ns:xmpp-stanzas")
            .is_some()
    );
}

#[test]
fn listings_survive_serialization() {
    for sample in common::SAMPLES {
        let (evs, err) = common::feed([sample.as_bytes()]);
        assert_eq!(err, None);
        for e in elements(&evs) {
            // Inside a jabber:client stream, stanzas are written without xmlns.
            let mut inner = Vec::new();
            e.write_to(&mut inner, "jabber:client");
            if e.ns == "jabber:client" {
                assert!(!inner.starts_with(b"<iq xmlns"), "{}", e);
            }
            assert_eq!(&Element::parse(&e.to_bytes()).unwrap(), e);
        }
    }
}
