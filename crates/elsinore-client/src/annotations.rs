//! XEP-0145 annotations over XEP-0049 private XML: the note model and the requests that read
//! and store the account's bundle.
//!
//! The model ([`Annotations`], [`Note`]) is `elsinore_storage::annotations`, re-exported so
//! a client needs only this crate. Adding or updating a note is a read-modify-write: read
//! with [`get_request`] / [`parse_get_response`], change with [`Annotations::set_note`] or
//! [`Annotations::remove`], store with [`set_request`].
//!
//! ```
//! use elsinore_client::annotations::{self, Annotations};
//!
//! let mut notes = Annotations::new();
//! notes.set_note("romeo@montague.lit".parse()?, "Wherefore art thou?", 1_000)?;
//! let set = annotations::set_request(&notes);
//! assert_eq!(set.attr("type"), Some("set"));
//!
//! // A server answers the get with what the set stored.
//! let stored = set.elements().next().cloned().expect("query");
//! let result = elsinore_xml::Element::new("iq", "jabber:client")
//!     .with_attr("type", "result")
//!     .with_child(stored);
//! assert_eq!(annotations::parse_get_response(&result)?, notes);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use core::fmt;

pub use elsinore_storage::annotations::{Annotations, AnnotationsError, MAX_NOTES, NS, Note};
use elsinore_xml::Element;

use crate::private;

/// The server's answer could not be read as annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnexpectedResponse {
    /// Not a XEP-0049 result (see [`private::UnexpectedResponse`]).
    Private(private::UnexpectedResponse),
    /// The stored bundle does not parse strictly; callers must not overwrite it.
    Invalid(AnnotationsError),
}

impl fmt::Display for UnexpectedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnexpectedResponse::Private(e) => e.fmt(f),
            UnexpectedResponse::Invalid(e) => write!(f, "stored annotations: {e}"),
        }
    }
}

impl core::error::Error for UnexpectedResponse {}

/// XEP-0145 "Retrieving annotations": the XEP-0049 get of `storage:rosternotes`.
pub fn get_request() -> Element {
    private::get_request("storage", NS)
}

/// XEP-0145 "Storing annotations": replaces the whole stored bundle with `notes`.
pub fn set_request(notes: &Annotations) -> Element {
    private::set_request(notes.to_element())
}

/// The notes of a [`get_request`] result (nothing stored: none).
pub fn parse_get_response(response: &Element) -> Result<Annotations, UnexpectedResponse> {
    let stored = private::parse_get_response(response).map_err(UnexpectedResponse::Private)?;
    match stored.iter().find(|e| e.is("storage", NS)) {
        None => Ok(Annotations::new()),
        Some(storage) => Annotations::parse(storage).map_err(UnexpectedResponse::Invalid),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_stored_date_is_refused() {
        let r = Element::parse(
            b"<iq xmlns='jabber:client' type='result'><query xmlns='jabber:iq:private'>\
              <storage xmlns='storage:rosternotes'>\
              <note jid='a@b.lit' cdate='yesterday'>x</note></storage></query></iq>",
        )
        .expect("test XML parses");
        assert!(matches!(
            parse_get_response(&r),
            Err(UnexpectedResponse::Invalid(_))
        ));
    }

    #[test]
    fn nothing_stored_is_no_notes() {
        let r = Element::parse(
            b"<iq xmlns='jabber:client' type='result'><query xmlns='jabber:iq:private'>\
              <storage xmlns='storage:rosternotes'/></query></iq>",
        )
        .expect("test XML parses");
        assert_eq!(parse_get_response(&r), Ok(Annotations::new()));
    }
}
