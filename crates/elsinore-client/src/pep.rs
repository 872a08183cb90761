//! PEP (XEP-0163) as the owner of the account's nodes, for XEP-0223 private data: request
//! builders and response parsers for the XEP-0060 subset a PEP client needs, the parser of
//! event notifications, and the XEP-0223 §5 support check.
//!
//! Requests are addressed to nobody (the account itself, as XEP-0223 shows); send them with
//! any adapter's iq call. The configuration types ([`ConfigChange`], [`AccessModel`]) are the
//! server's own (`elsinore_storage::pep`).
//!
//! ```
//! use elsinore_client::pep::{self, ConfigChange, Select};
//! use elsinore_xml::Element;
//!
//! let note = Element::new("note", "urn:example:notes").with_text("To be");
//! let publish = pep::publish_request("urn:example:notes", Some("n1"), note, Some(&ConfigChange::private()));
//! assert_eq!(publish.attr("type"), Some("set"));
//! let get = pep::items_request("urn:example:notes", &Select::Last(1));
//! assert_eq!(get.attr("type"), Some("get"));
//!
//! // A notification another resource of the account receives after the publish.
//! let msg = Element::parse(
//!     b"<message xmlns='jabber:client' from='hamlet@elsinore.lit' type='headline'>\
//!       <event xmlns='http://jabber.org/protocol/pubsub#event'>\
//!       <items node='urn:example:notes'><item id='n1'><note xmlns='urn:example:notes'>To be</note>\
//!       </item></items></event></message>",
//! )?;
//! let event = pep::parse_event(&msg).expect("an event");
//! assert_eq!(event.node, "urn:example:notes");
//! assert!(matches!(event.change, pep::Change::Items { ref published, .. } if published[0].id == "n1"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;

use elsinore_jid::{BareJid, Jid};
use elsinore_stanza::{NS_CLIENT, NS_DISCO_INFO};
pub use elsinore_storage::pep::{
    AccessModel, ConfigChange, FORM_NODE_CONFIG, FORM_PUBLISH_OPTIONS, NS_PUBSUB, NS_PUBSUB_EVENT,
    NS_PUBSUB_OWNER, SendLastItem,
};
use elsinore_xml::Element;

const NS_DATA: &str = "jabber:x:data";

/// Most items [`parse_items_response`] and [`parse_event`] accept (elsinore caps a node at
/// 256).
pub const MAX_ITEMS: usize = 1024;

/// The feature XEP-0223 §5 requires on the account (with identity `pubsub/pep`).
pub const FEATURE_PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";

/// The server's answer did not have the shape XEP-0060 specifies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnexpectedResponse {
    /// The expected `<pubsub/>` (or disco `<query/>`) child is missing.
    Missing,
    /// More than [`MAX_ITEMS`] items.
    TooManyItems,
    /// A publish result without an item id, for a publish that gave none.
    NoItemId,
}

impl fmt::Display for UnexpectedResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnexpectedResponse::Missing => "pubsub result without its payload",
            UnexpectedResponse::TooManyItems => "pubsub result with too many items",
            UnexpectedResponse::NoItemId => "publish result names no item id",
        })
    }
}

impl core::error::Error for UnexpectedResponse {}

/// One item of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The item id.
    pub id: String,
    /// The payload (absent when a server sends ids only).
    pub payload: Option<Element>,
}

/// Which items an [`items_request`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Select<'a> {
    /// Every item (XEP-0060 6.5.2).
    All,
    /// The items with these ids; unknown ids are left out of the answer (6.5.8).
    Ids(&'a [&'a str]),
    /// The newest N items (`max_items`, 6.5.7).
    Last(u32),
}

fn iq(kind: &str, payload: Element) -> Element {
    Element::new("iq", NS_CLIENT)
        .with_attr("type", kind)
        .with_child(payload)
}

fn owner(kind: &str, action: Element) -> Element {
    iq(
        kind,
        Element::new("pubsub", NS_PUBSUB_OWNER).with_child(action),
    )
}

/// XEP-0060 7.1 publish (with XEP-0223 / 7.1.5 publish options as preconditions; the node
/// is auto-created with them if it does not exist). Without `item_id` the server picks
/// one: read it with [`parse_publish_response`].
pub fn publish_request(
    node: &str,
    item_id: Option<&str>,
    payload: Element,
    options: Option<&ConfigChange>,
) -> Element {
    let mut item = Element::new("item", NS_PUBSUB).with_child(payload);
    if let Some(id) = item_id {
        item.set_attr("id", id);
    }
    let mut pubsub = Element::new("pubsub", NS_PUBSUB).with_child(
        Element::new("publish", NS_PUBSUB)
            .with_attr("node", node)
            .with_child(item),
    );
    if let Some(o) = options {
        pubsub = pubsub.with_child(
            Element::new("publish-options", NS_PUBSUB)
                .with_child(o.to_submit_form(FORM_PUBLISH_OPTIONS)),
        );
    }
    iq("set", pubsub)
}

/// The id of the published item: the server's, or `ours` when the server answers with an
/// empty result (XEP-0060 7.1.2 allows it when the publisher chose the id).
pub fn parse_publish_response(
    response: &Element,
    ours: Option<&str>,
) -> Result<String, UnexpectedResponse> {
    let id = response
        .get_child("pubsub", NS_PUBSUB)
        .and_then(|p| p.get_child("publish", NS_PUBSUB))
        .and_then(|p| p.get_child("item", NS_PUBSUB))
        .and_then(|i| i.attr("id"));
    id.or(ours)
        .map(str::to_string)
        .ok_or(UnexpectedResponse::NoItemId)
}

/// XEP-0060 6.5 retrieve items of `node`.
pub fn items_request(node: &str, select: &Select<'_>) -> Element {
    let mut items = Element::new("items", NS_PUBSUB).with_attr("node", node);
    match select {
        Select::All => {}
        Select::Ids(ids) => {
            for id in *ids {
                items = items.with_child(Element::new("item", NS_PUBSUB).with_attr("id", *id));
            }
        }
        Select::Last(n) => items.set_attr("max_items", n.to_string()),
    }
    iq("get", Element::new("pubsub", NS_PUBSUB).with_child(items))
}

fn items_of(items: &Element, ns: &str) -> Result<Vec<Item>, UnexpectedResponse> {
    let mut out = Vec::new();
    for e in items.elements().filter(|e| e.is("item", ns)) {
        if out.len() >= MAX_ITEMS {
            return Err(UnexpectedResponse::TooManyItems);
        }
        out.push(Item {
            id: e.attr("id").unwrap_or_default().to_string(),
            payload: e.elements().next().cloned(),
        });
    }
    Ok(out)
}

/// The items of an [`items_request`] result, in the server's order (oldest first here).
pub fn parse_items_response(response: &Element) -> Result<Vec<Item>, UnexpectedResponse> {
    let items = response
        .get_child("pubsub", NS_PUBSUB)
        .and_then(|p| p.get_child("items", NS_PUBSUB))
        .ok_or(UnexpectedResponse::Missing)?;
    items_of(items, NS_PUBSUB)
}

/// XEP-0060 7.2 retract one item; with `notify` the subscribers (the account's resources)
/// get a retract event.
pub fn retract_request(node: &str, item_id: &str, notify: bool) -> Element {
    let mut retract = Element::new("retract", NS_PUBSUB)
        .with_attr("node", node)
        .with_child(Element::new("item", NS_PUBSUB).with_attr("id", item_id));
    if notify {
        retract.set_attr("notify", "true");
    }
    iq("set", Element::new("pubsub", NS_PUBSUB).with_child(retract))
}

/// XEP-0060 8.1 create `node`, configured with `config` (8.1.3) if given. An existing node
/// is a `conflict` error.
pub fn create_request(node: &str, config: Option<&ConfigChange>) -> Element {
    let mut pubsub = Element::new("pubsub", NS_PUBSUB)
        .with_child(Element::new("create", NS_PUBSUB).with_attr("node", node));
    if let Some(c) = config {
        pubsub = pubsub.with_child(
            Element::new("configure", NS_PUBSUB).with_child(c.to_submit_form(FORM_NODE_CONFIG)),
        );
    }
    iq("set", pubsub)
}

/// XEP-0060 8.2 request the configuration form of `node`.
pub fn configure_get_request(node: &str) -> Element {
    owner(
        "get",
        Element::new("configure", NS_PUBSUB_OWNER).with_attr("node", node),
    )
}

/// The configuration in a [`configure_get_request`] result. Only the three fields modelled
/// by [`ConfigChange`] are read; a field that is absent or holds a value outside the model
/// (an access model such as `authorize`, `max_items` = `max`) is `None`.
pub fn parse_configure_response(response: &Element) -> Result<ConfigChange, UnexpectedResponse> {
    let form = response
        .get_child("pubsub", NS_PUBSUB_OWNER)
        .and_then(|p| p.get_child("configure", NS_PUBSUB_OWNER))
        .and_then(|c| c.get_child("x", NS_DATA))
        .ok_or(UnexpectedResponse::Missing)?;
    let mut config = ConfigChange::default();
    for f in form.elements().filter(|f| f.is("field", NS_DATA)) {
        let Some(value) = f.get_child("value", NS_DATA).map(Element::text) else {
            continue;
        };
        let value = value.trim();
        match f.attr("var") {
            Some("pubsub#persist_items") => {
                config.persist_items = match value {
                    "1" | "true" => Some(true),
                    "0" | "false" => Some(false),
                    _ => None,
                }
            }
            Some("pubsub#access_model") => config.access_model = AccessModel::from_value(value),
            Some("pubsub#max_items") => config.max_items = value.parse().ok(),
            Some("pubsub#send_last_published_item") => {
                config.send_last_item = SendLastItem::from_value(value);
            }
            _ => {}
        }
    }
    Ok(config)
}

/// XEP-0060 8.2.4 submit a new configuration of `node`: the values given in `change`, the
/// others left as they are.
pub fn configure_set_request(node: &str, change: &ConfigChange) -> Element {
    owner(
        "set",
        Element::new("configure", NS_PUBSUB_OWNER)
            .with_attr("node", node)
            .with_child(change.to_submit_form(FORM_NODE_CONFIG)),
    )
}

/// XEP-0060 8.4 delete `node` and its items.
pub fn delete_request(node: &str) -> Element {
    owner(
        "set",
        Element::new("delete", NS_PUBSUB_OWNER).with_attr("node", node),
    )
}

/// XEP-0060 8.5 purge every item of `node` (the node and its configuration stay).
pub fn purge_request(node: &str) -> Element {
    owner(
        "set",
        Element::new("purge", NS_PUBSUB_OWNER).with_attr("node", node),
    )
}

/// What an event notification says happened to a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Items were published (with payload, unless the node sends ids only) and/or
    /// retracted (their ids).
    Items {
        /// Published items.
        published: Vec<Item>,
        /// Ids of retracted items.
        retracted: Vec<String>,
    },
    /// Every item was removed (XEP-0060 8.5).
    Purged,
    /// The node was deleted (XEP-0060 8.4), possibly pointing to a replacement.
    Deleted {
        /// The `<redirect uri/>`, if any.
        redirect: Option<String>,
    },
}

/// A XEP-0060 event notification (`<message><event xmlns='…#event'/>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The bare JID of the node's owner (the message's `from`); `None` if absent or not a
    /// JID. Callers decide whom to believe: the account's own nodes come from its bare JID.
    pub from: Option<BareJid>,
    /// The node.
    pub node: String,
    /// What happened.
    pub change: Change,
}

/// The notification in `message`, or `None` if it carries no event this parser knows
/// (items, purge, delete) or more than [`MAX_ITEMS`] items.
pub fn parse_event(message: &Element) -> Option<Event> {
    let event = message.get_child("event", NS_PUBSUB_EVENT)?;
    let action = event.elements().next()?;
    let node = action.attr("node")?.to_string();
    let change = if action.is("items", NS_PUBSUB_EVENT) {
        let published = items_of(action, NS_PUBSUB_EVENT).ok()?;
        let retracted: Vec<String> = action
            .elements()
            .filter(|e| e.is("retract", NS_PUBSUB_EVENT))
            .filter_map(|e| e.attr("id"))
            .take(MAX_ITEMS)
            .map(str::to_string)
            .collect();
        Change::Items {
            published,
            retracted,
        }
    } else if action.is("purge", NS_PUBSUB_EVENT) {
        Change::Purged
    } else if action.is("delete", NS_PUBSUB_EVENT) {
        Change::Deleted {
            redirect: action
                .get_child("redirect", NS_PUBSUB_EVENT)
                .and_then(|r| r.attr("uri"))
                .map(str::to_string),
        }
    } else {
        return None;
    };
    let from = message
        .attr("from")
        .and_then(|f| f.parse::<Jid>().ok())
        .map(|j| j.to_bare());
    Some(Event { from, node, change })
}

/// XEP-0030 disco#info to `account` (the own bare JID for XEP-0223 §5, or a contact's).
pub fn disco_info_request(account: &BareJid) -> Element {
    iq("get", Element::new("query", NS_DISCO_INFO)).with_attr("to", account.to_string())
}

/// What a [`disco_info_request`] result says about PEP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Support {
    /// Identity `pubsub/pep`: the account has a PEP service (XEP-0163).
    pub pep: bool,
    /// Feature `…#publish-options`.
    pub publish_options: bool,
}

impl Support {
    /// XEP-0223 §5: private data may be stored via PEP only when both hold.
    pub fn private_storage(&self) -> bool {
        self.pep && self.publish_options
    }
}

/// Read a [`disco_info_request`] result.
pub fn parse_support(response: &Element) -> Result<Support, UnexpectedResponse> {
    let query = response
        .get_child("query", NS_DISCO_INFO)
        .ok_or(UnexpectedResponse::Missing)?;
    let mut support = Support::default();
    for e in query.elements() {
        if e.is("identity", NS_DISCO_INFO)
            && e.attr("category") == Some("pubsub")
            && e.attr("type") == Some("pep")
        {
            support.pep = true;
        } else if e.is("feature", NS_DISCO_INFO) && e.attr("var") == Some(FEATURE_PUBLISH_OPTIONS) {
            support.publish_options = true;
        }
    }
    Ok(support)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes()).expect("test XML parses")
    }

    #[test]
    fn events_of_every_kind() {
        let msg = |inner: &str| {
            el(&alloc::format!(
                "<message xmlns='jabber:client' from='juliet@capulet.lit/balcony'>\
                 <event xmlns='{NS_PUBSUB_EVENT}'>{inner}</event></message>"
            ))
        };
        let e = parse_event(&msg(
            "<items node='n'><retract id='a'/><retract id='b'/></items>",
        ))
        .expect("event");
        assert_eq!(e.from, Some("juliet@capulet.lit".parse().expect("jid")));
        assert_eq!(
            e.change,
            Change::Items {
                published: Vec::new(),
                retracted: alloc::vec!["a".into(), "b".into()]
            }
        );
        let e = parse_event(&msg("<purge node='n'/>")).expect("event");
        assert_eq!((e.node.as_str(), e.change), ("n", Change::Purged));
        let e =
            parse_event(&msg("<delete node='n'><redirect uri='xmpp:x'/></delete>")).expect("event");
        assert_eq!(
            e.change,
            Change::Deleted {
                redirect: Some("xmpp:x".into())
            }
        );
        assert_eq!(parse_event(&msg("<subscription node='n'/>")), None);
        assert_eq!(parse_event(&msg("<purge/>")), None);
        assert_eq!(
            parse_event(&el(
                "<message xmlns='jabber:client'><body>hi</body></message>"
            )),
            None
        );
    }

    #[test]
    fn configuration_form_is_read_leniently() {
        let r = el(&alloc::format!(
            "<iq xmlns='jabber:client' type='result'><pubsub xmlns='{NS_PUBSUB_OWNER}'>\
             <configure node='n'><x xmlns='jabber:x:data' type='form'>\
             <field var='FORM_TYPE'><value>{FORM_NODE_CONFIG}</value></field>\
             <field var='pubsub#persist_items'><value>1</value></field>\
             <field var='pubsub#access_model'><value>authorize</value></field>\
             <field var='pubsub#max_items'><value>max</value></field>\
             <field var='pubsub#send_last_published_item'><value>never</value></field>\
             <field var='pubsub#title'><value>t</value></field>\
             </x></configure></pubsub></iq>"
        ));
        assert_eq!(
            parse_configure_response(&r),
            Ok(ConfigChange {
                persist_items: Some(true),
                access_model: None,
                max_items: None,
                send_last_item: Some(SendLastItem::Never),
            })
        );
    }

    #[test]
    fn item_selection_and_publish_id() {
        let ids = ["a", "b"];
        let r = items_request("n", &Select::Ids(&ids));
        let items = r
            .get_child("pubsub", NS_PUBSUB)
            .and_then(|p| p.get_child("items", NS_PUBSUB))
            .expect("items");
        assert_eq!(items.elements().count(), 2);
        assert_eq!(items.attr("max_items"), None);
        let empty = el("<iq xmlns='jabber:client' type='result'/>");
        assert_eq!(parse_publish_response(&empty, Some("x")), Ok("x".into()));
        assert_eq!(
            parse_publish_response(&empty, None),
            Err(UnexpectedResponse::NoItemId)
        );
        assert_eq!(
            parse_items_response(&empty),
            Err(UnexpectedResponse::Missing)
        );
    }

    #[test]
    fn support_needs_identity_and_feature() {
        let r = |inner: &str| {
            el(&alloc::format!(
                "<iq xmlns='jabber:client' type='result'>\
                 <query xmlns='{NS_DISCO_INFO}'>{inner}</query></iq>"
            ))
        };
        let both = r(&alloc::format!(
            "<identity category='pubsub' type='pep'/><feature var='{FEATURE_PUBLISH_OPTIONS}'/>"
        ));
        assert!(parse_support(&both).expect("query").private_storage());
        let pep_only = r("<identity category='pubsub' type='pep'/>");
        assert!(!parse_support(&pep_only).expect("query").private_storage());
    }
}
