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
//!
//! ```
//! use elsinore_stanza::{DefinedCondition, NS_CLIENT, Stanza, StanzaError};
//! use elsinore_xml::Element;
//!
//! let el = Element::parse(
//!     b"<iq xmlns='jabber:client' from='juliet@example.com/balcony' id='p1' type='get'>\
//!       <query xmlns='jabber:iq:private'><prefs xmlns='urn:example'/></query></iq>",
//! )
//! .map_err(|e| format!("{e:?}"))?;
//! let stanza = Stanza::try_from(el)?;
//! let reply = stanza
//!     .error_reply(StanzaError::new(DefinedCondition::ServiceUnavailable))
//!     .ok_or("requests are answerable")?;
//! let mut out = Vec::new();
//! reply.into_element(NS_CLIENT).write_to(&mut out, NS_CLIENT);
//! let text = String::from_utf8(out)?;
//! assert!(text.starts_with("<iq to='juliet@example.com/balcony' id='p1' type='error'>"));
//! assert!(text.contains("<error type='cancel' code='503'>"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod datetime;
mod error;
mod ns;
mod stanza;
mod stream_error;

pub use error::{DefinedCondition, ErrorType, StanzaError};
pub use ns::*;
pub use stanza::{
    Iq, IqPayload, JidAttr, Message, MessageType, Presence, PresenceType, RawHeader, Show, Stanza,
    StanzaParseError, StanzaParseErrorKind,
};
pub use stream_error::{StreamError, StreamErrorCondition, StreamErrorParseError};
