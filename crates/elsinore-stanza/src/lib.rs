//! Typed XMPP stanzas (`<message/>`, `<presence/>`, `<iq/>`), stanza errors and stream
//! errors, converting to and from the [`elsinore_xml::Element`] tree.
//!
//! Parsing is tolerant where the old specifications and today's peers disagree (legacy
//! `code`-only errors, draft-era `<condition/>` wrappers and condition names) and strict
//! where a reply is owed (an `iq` without `id`, an unknown `type`, a malformed JID), so the
//! stream and server layers can answer with the right stanza error
//! ([`StanzaParseError::error_reply`]). What we send always uses the RFC 6120 names plus the
//! XEP-0086 legacy `code` attribute.
//!
//! Round trip: for every [`Stanza`] `s`, `Stanza::try_from(s.clone().into_element(ns)) == Ok(s)`;
//! unknown attributes ([`Message::extra_attrs`], …) and unknown payload elements survive.

#![warn(missing_docs)]

mod error;
mod ns;
mod stanza;
mod stream_error;

pub use error::{DefinedCondition, ErrorType, StanzaError};
pub use ns::*;
pub use stanza::{
    Iq, IqPayload, JidAttr, Message, MessageType, Presence, PresenceType, RawHeader, Stanza,
    StanzaParseError, StanzaParseErrorKind,
};
pub use stream_error::{StreamError, StreamErrorCondition, StreamErrorParseError};
