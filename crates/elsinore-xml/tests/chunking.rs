//! Any split of the input into chunks gives the same events as the whole input.
#![allow(clippy::unwrap_used)] // a panic is how a test fails

mod common;

use elsinore_xml::{Element, StreamHeader, XmlError};
use proptest::prelude::*;

fn error_class(e: &Option<XmlError>) -> Option<core::mem::Discriminant<XmlError>> {
    e.as_ref().map(core::mem::discriminant)
}

#[test]
fn one_byte_at_a_time() {
    for sample in common::SAMPLES {
        let whole = common::feed([sample.as_bytes()]);
        assert_eq!(whole.1, None);
        let bytes = common::feed(sample.as_bytes().chunks(1));
        assert_eq!(whole, bytes);
    }
}

/// A stream of generated stanzas written by our own serializer.
fn generated_stream(stanzas: &[Element]) -> Vec<u8> {
    let mut out = Vec::new();
    StreamHeader::new("jabber:client")
        .with_attr("to", "example.com")
        .write_to(&mut out);
    for (i, s) in stanzas.iter().enumerate() {
        if i % 2 == 0 {
            out.extend_from_slice(b"\n ");
        }
        s.write_to(&mut out, "jabber:client");
    }
    elsinore_xml::write_stream_close(&mut out);
    out
}

fn stanza() -> impl Strategy<Value = Element> {
    let name = prop::sample::select(vec!["message", "presence", "iq"]);
    let text = "[\\PC\t\n\r]{0,30}";
    let child_ns = prop::sample::select(vec!["jabber:client", "urn:x", ""]);
    (name, text, child_ns, "[a-z0-9'&<]{0,8}").prop_map(|(name, text, ns, id)| {
        Element::new(name, "jabber:client")
            .with_attr("id", id)
            .with_child(Element::new("body", ns).with_text(text))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn samples_split_anywhere(which in 0..common::SAMPLES.len(),
                              cuts in prop::collection::vec(any::<usize>(), 0..40)) {
        let input = common::SAMPLES[which].as_bytes();
        let whole = common::feed([input]);
        prop_assert_eq!(&whole.1, &None);
        let split = common::feed(common::split(input, &cuts));
        prop_assert_eq!(whole, split);
    }

    #[test]
    fn generated_streams_split_anywhere(stanzas in prop::collection::vec(stanza(), 0..8),
                                        cuts in prop::collection::vec(any::<usize>(), 0..40)) {
        let input = generated_stream(&stanzas);
        let whole = common::feed([&input[..]]);
        prop_assert_eq!(&whole.1, &None);
        prop_assert_eq!(whole.0.len(), stanzas.len() + 2);
        let split = common::feed(common::split(&input, &cuts));
        prop_assert_eq!(whole, split);
    }

    /// Damaged input: the split version fails at the same event with the same
    /// kind of error (or both succeed).
    #[test]
    fn damaged_samples_split_anywhere(which in 0..common::SAMPLES.len(),
                                      pos in any::<usize>(), byte in any::<u8>(),
                                      cuts in prop::collection::vec(any::<usize>(), 0..20)) {
        let mut input = common::SAMPLES[which].as_bytes().to_vec();
        let at = pos % input.len();
        input[at] = byte;
        let whole = common::feed([&input[..]]);
        let split = common::feed(common::split(&input, &cuts));
        prop_assert_eq!(error_class(&whole.1), error_class(&split.1));
        prop_assert_eq!(whole.0, split.0);
    }
}
