//! Chat room bookmarks: request builders and response parsers for XEP-0402 (one PEP item
//! per room) and XEP-0048 over XEP-0049 private XML (one `<storage/>` with every bookmark).
//!
//! The bookmark model ([`Conference`], [`Bookmarks`]) is the one the server converts with
//! (`elsinore_storage::bookmarks`), so a client reads XEP-0048 and XEP-0402 data the same
//! way. On a server advertising [`FEATURE_COMPAT`] on the account, XEP-0402 alone is
//! enough: clients that still use XEP-0048 see the same bookmarks.
//!
//! ```
//! use elsinore_client::bookmarks::{self, Conference};
//! use elsinore_xml::Element;
//!
//! let room = Conference {
//!     jid: "council@conference.underhill.org".parse()?,
//!     name: Some("Council of Oberon".into()),
//!     autojoin: true,
//!     nick: Some("Puck".into()),
//!     password: None,
//!     extensions: Vec::new(),
//! };
//! let publish = bookmarks::publish_request(&room);
//! assert_eq!(publish.attr("type"), Some("set"));
//!
//! // The server's answer to `items_request()`: the item comes back as published.
//! let item = publish.elements().next().and_then(|p| p.elements().next())
//!     .and_then(|p| p.elements().next()).cloned().expect("item");
//! let result = Element::new("iq", "jabber:client").with_attr("type", "result").with_child(
//!     Element::new("pubsub", "http://jabber.org/protocol/pubsub").with_child(
//!         Element::new("items", "http://jabber.org/protocol/pubsub")
//!             .with_attr("node", bookmarks::NS_NATIVE)
//!             .with_child(item),
//!     ),
//! );
//! assert_eq!(bookmarks::parse_items_response(&result)?, vec![room]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::string::ToString;
use alloc::vec::Vec;
use core::fmt;

use elsinore_jid::BareJid;
use elsinore_stanza::NS_CLIENT;
pub use elsinore_storage::bookmarks::{
    BookmarkError, Bookmarks, Conference, FEATURE_COMPAT, FEATURE_COMPAT_PEP, NS_LEGACY, NS_NATIVE,
};
use elsinore_xml::Element;

use crate::private;

const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const NS_DATA: &str = "jabber:x:data";

/// Most items [`parse_items_response`] accepts (the server caps a node at 256).
pub const MAX_ITEMS: usize = 1024;

/// The server's answer did not have the shape the XEPs specify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnexpectedResponse {
    /// No `<pubsub><items/></pubsub>` (XEP-0402) or `<query/>` (XEP-0049).
    Missing,
    /// More than [`MAX_ITEMS`] items.
    TooManyItems,
    /// An item that is not a bookmark (see [`Conference::from_native`]).
    Invalid(BookmarkError),
}

impl fmt::Display for UnexpectedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnexpectedResponse::Missing => f.write_str("bookmark result without its payload"),
            UnexpectedResponse::TooManyItems => f.write_str("bookmark result with too many items"),
            UnexpectedResponse::Invalid(e) => write!(f, "bookmark result: {e}"),
        }
    }
}

impl core::error::Error for UnexpectedResponse {}

fn iq(kind: &str, payload: Element) -> Element {
    Element::new("iq", NS_CLIENT)
        .with_attr("type", kind)
        .with_child(payload)
}

fn field(var: &str, value: &str) -> Element {
    Element::new("field", NS_DATA)
        .with_attr("var", var)
        .with_child(Element::new("value", NS_DATA).with_text(value))
}

/// XEP-0402 "Adding a bookmark" (also updates one): publish `room` as the item named by
/// its JID, with the publish options XEP-0402 requires (persistent, `max_items` max, never
/// send the last item, whitelist).
pub fn publish_request(room: &Conference) -> Element {
    let (id, payload) = room.to_native();
    let form = Element::new("x", NS_DATA)
        .with_attr("type", "submit")
        .with_child(
            field(
                "FORM_TYPE",
                "http://jabber.org/protocol/pubsub#publish-options",
            )
            .with_attr("type", "hidden"),
        )
        .with_child(field("pubsub#persist_items", "true"))
        .with_child(field("pubsub#max_items", "max"))
        .with_child(field("pubsub#send_last_published_item", "never"))
        .with_child(field("pubsub#access_model", "whitelist"));
    iq(
        "set",
        Element::new("pubsub", NS_PUBSUB)
            .with_child(
                Element::new("publish", NS_PUBSUB)
                    .with_attr("node", NS_NATIVE)
                    .with_child(
                        Element::new("item", NS_PUBSUB)
                            .with_attr("id", id)
                            .with_child(payload),
                    ),
            )
            .with_child(Element::new("publish-options", NS_PUBSUB).with_child(form)),
    )
}

/// XEP-0402 "Removing a bookmark": retract the item of `room`, with `notify='true'` so the
/// account's other clients hear of it.
pub fn retract_request(room: &BareJid) -> Element {
    iq(
        "set",
        Element::new("pubsub", NS_PUBSUB).with_child(
            Element::new("retract", NS_PUBSUB)
                .with_attr("node", NS_NATIVE)
                .with_attr("notify", "true")
                .with_child(Element::new("item", NS_PUBSUB).with_attr("id", room.to_string())),
        ),
    )
}

/// XEP-0402 "Retrieving all bookmarks".
pub fn items_request() -> Element {
    iq(
        "get",
        Element::new("pubsub", NS_PUBSUB)
            .with_child(Element::new("items", NS_PUBSUB).with_attr("node", NS_NATIVE)),
    )
}

/// The bookmarks of an [`items_request`] result. An item that is not a valid bookmark
/// makes the whole answer [`UnexpectedResponse::Invalid`], so a caller never rewrites a
/// list it could not read in full.
pub fn parse_items_response(response: &Element) -> Result<Vec<Conference>, UnexpectedResponse> {
    let items = response
        .get_child("pubsub", NS_PUBSUB)
        .and_then(|p| p.get_child("items", NS_PUBSUB))
        .ok_or(UnexpectedResponse::Missing)?;
    let mut out = Vec::new();
    for item in items.elements().filter(|e| e.is("item", NS_PUBSUB)) {
        if out.len() >= MAX_ITEMS {
            return Err(UnexpectedResponse::TooManyItems);
        }
        let id = item.attr("id").unwrap_or_default();
        let payload =
            item.elements()
                .next()
                .ok_or(UnexpectedResponse::Invalid(BookmarkError::Invalid(
                    "an item without payload",
                )))?;
        out.push(Conference::from_native(id, payload).map_err(UnexpectedResponse::Invalid)?);
    }
    Ok(out)
}

/// XEP-0048 over XEP-0049: read the `<storage xmlns='storage:bookmarks'/>`.
pub fn legacy_get_request() -> Element {
    private::get_request("storage", NS_LEGACY)
}

/// XEP-0048 over XEP-0049: replace the stored list with `bookmarks`.
pub fn legacy_set_request(bookmarks: &Bookmarks) -> Element {
    private::set_request(bookmarks.to_legacy())
}

/// The bookmarks of a [`legacy_get_request`] result (none stored: empty).
pub fn parse_legacy_response(response: &Element) -> Result<Bookmarks, UnexpectedResponse> {
    let stored = private::parse_get_response(response).map_err(|_| UnexpectedResponse::Missing)?;
    Ok(stored
        .iter()
        .find(|e| e.is("storage", NS_LEGACY))
        .map(Bookmarks::from_legacy)
        .unwrap_or_default())
}

/// A change announced by a XEP-0402 event notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BookmarkEvent {
    /// A bookmark was added or changed.
    Set(Conference),
    /// The bookmark of this room was removed.
    Removed(BareJid),
}

/// The bookmark changes in `message`, if it is a XEP-0402 event notification from
/// `account` (the account's own bare JID: notifications from anyone else are not ours).
/// Items that are not valid bookmarks are skipped.
pub fn parse_event(message: &Element, account: &BareJid) -> Vec<BookmarkEvent> {
    let from_account = message
        .attr("from")
        .and_then(|f| f.parse::<BareJid>().ok())
        .is_some_and(|f| f == *account);
    let Some(items) = message
        .get_child("event", NS_PUBSUB_EVENT)
        .and_then(|e| e.get_child("items", NS_PUBSUB_EVENT))
        .filter(|i| from_account && i.attr("node") == Some(NS_NATIVE))
    else {
        return Vec::new();
    };
    items
        .elements()
        .filter_map(|e| {
            let id = e.attr("id")?;
            if e.is("item", NS_PUBSUB_EVENT) {
                let payload = e.elements().next()?;
                Conference::from_native(id, payload)
                    .ok()
                    .map(BookmarkEvent::Set)
            } else if e.is("retract", NS_PUBSUB_EVENT) {
                id.parse().ok().map(BookmarkEvent::Removed)
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes()).expect("test XML parses")
    }

    #[test]
    fn events_from_the_account_only() {
        let me: BareJid = "juliet@capulet.lit".parse().expect("jid");
        let msg = |from: &str| {
            el(&alloc::format!(
                "<message xmlns='jabber:client' from='{from}' type='headline'>\
                 <event xmlns='{NS_PUBSUB_EVENT}'><items node='{NS_NATIVE}'>\
                 <item id='a@rooms.lit'><conference xmlns='{NS_NATIVE}' autojoin='1'/></item>\
                 <retract id='b@rooms.lit'/></items></event></message>"
            ))
        };
        let got = parse_event(&msg("juliet@capulet.lit"), &me);
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], BookmarkEvent::Set(c) if c.autojoin));
        assert!(matches!(&got[1], BookmarkEvent::Removed(j) if j.to_string() == "b@rooms.lit"));
        assert!(parse_event(&msg("tybalt@capulet.lit"), &me).is_empty());
    }

    #[test]
    fn an_invalid_item_fails_the_whole_list() {
        let r = el(&alloc::format!(
            "<iq xmlns='jabber:client' type='result'><pubsub xmlns='{NS_PUBSUB}'>\
             <items node='{NS_NATIVE}'><item id='a@rooms.lit'><x xmlns='urn:other'/></item>\
             </items></pubsub></iq>"
        ));
        assert!(matches!(
            parse_items_response(&r),
            Err(UnexpectedResponse::Invalid(_))
        ));
        let empty = el("<iq xmlns='jabber:client' type='result'/>");
        assert_eq!(
            parse_items_response(&empty),
            Err(UnexpectedResponse::Missing)
        );
    }
}
