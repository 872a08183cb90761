//! XEP-0049 private XML storage: request builders and response parsers.
//!
//! These are pure functions, so any adapter (or a caller driving [`crate::Client`] by hand)
//! builds the same requests and reads the same answers.
//!
//! ```
//! use elsinore_client::private;
//! use elsinore_xml::Element;
//!
//! let set = private::set_request(Element::new("exodus", "exodus:prefs"));
//! assert_eq!(set.attr("type"), Some("set"));
//! let get = private::get_request("exodus", "exodus:prefs");
//! assert_eq!(get.attr("type"), Some("get"));
//!
//! // What a server answers to the get: the stored element inside <query/>.
//! let result = Element::new("iq", "jabber:client")
//!     .with_attr("type", "result")
//!     .with_child(
//!         Element::new("query", private::NS)
//!             .with_child(Element::new("exodus", "exodus:prefs").with_text("x")),
//!     );
//! let stored = private::parse_get_response(&result)?;
//! assert_eq!(stored[0].text(), "x");
//! # Ok::<(), private::UnexpectedResponse>(())
//! ```

use alloc::vec::Vec;
use core::fmt;

use elsinore_stanza::NS_CLIENT;
use elsinore_xml::Element;

/// Namespace of XEP-0049 private XML storage.
pub const NS: &str = elsinore_stanza::NS_PRIVATE;

/// Most elements returned by [`parse_get_response`] (XEP-0049 asks for one; a server may
/// echo a few more).
pub const MAX_RESULT_ELEMENTS: usize = 64;

/// The server's answer did not have the shape XEP-0049 specifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnexpectedResponse {
    /// The result has no `<query xmlns='jabber:iq:private'/>`.
    MissingQuery,
    /// The result holds more than [`MAX_RESULT_ELEMENTS`] elements.
    TooManyElements,
}

impl fmt::Display for UnexpectedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnexpectedResponse::MissingQuery => "private storage result without <query/>",
            UnexpectedResponse::TooManyElements => "private storage result with too many elements",
        })
    }
}

impl core::error::Error for UnexpectedResponse {}

/// An `<iq type='set'>` storing `payload` (an element in its own namespace), replacing what
/// was stored under the same name and namespace (XEP-0049 listing 1). No `id`: the client
/// assigns one when it is sent with [`crate::Client::send_iq`].
pub fn set_request(payload: Element) -> Element {
    Element::new("iq", NS_CLIENT)
        .with_attr("type", "set")
        .with_child(Element::new("query", NS).with_child(payload))
}

/// An `<iq type='get'>` asking for what is stored under `name` in namespace `ns`
/// (XEP-0049 listing 2).
pub fn get_request(name: &str, ns: &str) -> Element {
    Element::new("iq", NS_CLIENT)
        .with_attr("type", "get")
        .with_child(Element::new("query", NS).with_child(Element::new(name, ns)))
}

/// The elements inside the `<query/>` of a get's result: the stored element, or the empty
/// element that was asked for when nothing is stored.
pub fn parse_get_response(response: &Element) -> Result<Vec<Element>, UnexpectedResponse> {
    let query = response
        .get_child("query", NS)
        .ok_or(UnexpectedResponse::MissingQuery)?;
    if query.elements().count() > MAX_RESULT_ELEMENTS {
        return Err(UnexpectedResponse::TooManyElements);
    }
    Ok(query.elements().cloned().collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn result_without_query_is_unexpected() {
        let iq = Element::new("iq", NS_CLIENT).with_attr("type", "result");
        assert_eq!(
            parse_get_response(&iq),
            Err(UnexpectedResponse::MissingQuery)
        );
    }

    #[test]
    fn empty_answer_is_the_empty_element() {
        let iq = Element::new("iq", NS_CLIENT)
            .with_attr("type", "result")
            .with_child(Element::new("query", NS).with_child(Element::new("a", "b")));
        let got = parse_get_response(&iq).unwrap();
        assert_eq!(got, alloc::vec![Element::new("a", "b")]);
        assert!(got[0].is_empty());
    }

    #[test]
    fn too_many_elements_are_refused() {
        let mut query = Element::new("query", NS);
        for _ in 0..=MAX_RESULT_ELEMENTS {
            query = query.with_child(Element::new("a", "b"));
        }
        let iq = Element::new("iq", NS_CLIENT)
            .with_attr("type", "result")
            .with_child(query);
        assert_eq!(
            parse_get_response(&iq),
            Err(UnexpectedResponse::TooManyElements)
        );
    }
}
