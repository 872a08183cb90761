//! Requirements of draft-ietf-xmpp-core-11 §7 that no other test showed; each names its
//! section. The table in `docs/conformance.md` points here.
#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use elsinore_stanza::{
    DefinedCondition, Message, MessageType, NS_CLIENT, Presence, PresenceType, StanzaError,
};

/// §7.7.1: an `<error/>` child is written only into stanzas of type `error`, even when
/// the value carries an error.
#[test]
fn error_child_only_in_error_stanzas() {
    let err = StanzaError::new(DefinedCondition::ItemNotFound);
    let chat = Message {
        type_: MessageType::Chat,
        error: Some(err.clone()),
        ..Message::default()
    };
    assert!(
        chat.into_element(NS_CLIENT)
            .get_child("error", NS_CLIENT)
            .is_none()
    );
    let available = Presence {
        error: Some(err.clone()),
        ..Presence::new(PresenceType::Available)
    };
    assert!(
        available
            .into_element(NS_CLIENT)
            .get_child("error", NS_CLIENT)
            .is_none()
    );
    let error = Message {
        type_: MessageType::Error,
        error: Some(err),
        ..Message::default()
    };
    assert!(
        error
            .into_element(NS_CLIENT)
            .get_child("error", NS_CLIENT)
            .is_some()
    );
}
