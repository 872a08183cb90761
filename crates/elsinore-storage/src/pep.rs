//! PEP nodes for private data (XEP-0163 / XEP-0223) with the XEP-0060 subset they need, as
//! pure functions over values.
//!
//! [`handle`] looks at one iq's `<pubsub/>` element and either answers at once
//! ([`Action::Reply`]) or asks for the node's stored value ([`Action::Load`]). The returned
//! [`Pending`] turns that value into an [`Outcome`]: at most one write ([`Op::Put`] or
//! [`Op::Delete`] of the same key), the reply, and the event notifications to send once the
//! write is durable ([`Outcome::finish`]).
//!
//! # Serialization
//!
//! Every operation is a read-modify-write of one key ([`node_key`]). The caller must run the
//! operations of one key strictly one after another: from the moment its `Op::Get` is
//! emitted until the write (if any) has completed, no other operation on that key may load
//! it. Operations on different keys are independent. There is no in-memory state here: a
//! restart loses nothing that was acknowledged.
//!
//! # Data model
//!
//! One value per (account, node) in [`Space::PubSub`]: the [`NodeState`] (configuration and
//! items, oldest first, at most `max_items`) written as a small XML document
//! ([`NodeState::encode`]), so payloads keep their escaping and namespaces exactly.
//!
//! Decisions where XEP-0060 leaves room are listed in `docs/conformance.md`
//! ("XEP-0223 / XEP-0060 subset").

use alloc::{format, string::String, string::ToString, vec, vec::Vec};
use elsinore_jid::BareJid;
use elsinore_xml::{Element, Node, XmlLimits};

pub use crate::private::IqKind;
use crate::{EffectResult, Key, Op, Space, Store};

/// `http://jabber.org/protocol/pubsub`.
pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// `http://jabber.org/protocol/pubsub#owner`.
pub const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// `http://jabber.org/protocol/pubsub#event`.
pub const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";
/// `http://jabber.org/protocol/pubsub#errors`.
pub const NS_PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
/// `jabber:x:data` (XEP-0004 data forms).
pub const NS_DATA_FORMS: &str = "jabber:x:data";
/// FORM_TYPE of publish options.
pub const FORM_PUBLISH_OPTIONS: &str = "http://jabber.org/protocol/pubsub#publish-options";
/// FORM_TYPE of node configuration.
pub const FORM_NODE_CONFIG: &str = "http://jabber.org/protocol/pubsub#node_config";
/// Namespace of the stored node document (never on the wire).
const NS_STORED: &str = "urn:elsinore:pep:1";

/// The `http://jabber.org/protocol/pubsub#…` features this module implements, for
/// disco#info on the account's bare JID. Exactly what [`handle`] supports.
pub const FEATURES: &[&str] = &[
    "http://jabber.org/protocol/pubsub#access-open",
    "http://jabber.org/protocol/pubsub#access-presence",
    "http://jabber.org/protocol/pubsub#access-whitelist",
    "http://jabber.org/protocol/pubsub#auto-create",
    "http://jabber.org/protocol/pubsub#config-node",
    "http://jabber.org/protocol/pubsub#create-and-configure",
    "http://jabber.org/protocol/pubsub#create-nodes",
    "http://jabber.org/protocol/pubsub#delete-items",
    "http://jabber.org/protocol/pubsub#delete-nodes",
    "http://jabber.org/protocol/pubsub#filtered-notifications",
    "http://jabber.org/protocol/pubsub#item-ids",
    "http://jabber.org/protocol/pubsub#last-published",
    "http://jabber.org/protocol/pubsub#persistent-items",
    "http://jabber.org/protocol/pubsub#publish",
    "http://jabber.org/protocol/pubsub#publish-options",
    "http://jabber.org/protocol/pubsub#purge-nodes",
    "http://jabber.org/protocol/pubsub#retract-items",
    "http://jabber.org/protocol/pubsub#retrieve-default",
    "http://jabber.org/protocol/pubsub#retrieve-items",
];

/// Who may retrieve a node's items (`pubsub#access_model`). The owner always may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessModel {
    /// Anyone.
    Open,
    /// Contacts with a presence subscription to the owner (the XEP-0163 default).
    Presence,
    /// Only the owner (XEP-0223 private storage; the whitelist holds only the owner).
    Whitelist,
}

impl AccessModel {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessModel::Open => "open",
            AccessModel::Presence => "presence",
            AccessModel::Whitelist => "whitelist",
        }
    }

    /// Parse a form value; `authorize` and `roster` are not implemented (`None`).
    pub fn from_value(v: &str) -> Option<AccessModel> {
        match v {
            "open" => Some(AccessModel::Open),
            "presence" => Some(AccessModel::Presence),
            "whitelist" => Some(AccessModel::Whitelist),
            _ => None,
        }
    }
}

/// When the node's last item goes to a subscriber on its own
/// (`pubsub#send_last_published_item`). PEP subscriptions come from presence, so
/// `on_sub_and_presence` means: to a contact's available, interested resources when the
/// owner approves its presence subscription, and whenever an entitled, interested resource
/// becomes available (XEP-0163 §4.3.4). `on_sub` (on approval only) is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SendLastItem {
    /// Never.
    Never,
    /// On subscription and when a subscriber's resource becomes available.
    OnSubAndPresence,
}

impl SendLastItem {
    /// The form value.
    pub fn as_str(self) -> &'static str {
        match self {
            SendLastItem::Never => "never",
            SendLastItem::OnSubAndPresence => "on_sub_and_presence",
        }
    }

    /// Parse a form value; `on_sub` is not implemented (`None`).
    pub fn from_value(v: &str) -> Option<SendLastItem> {
        match v {
            "never" => Some(SendLastItem::Never),
            "on_sub_and_presence" => Some(SendLastItem::OnSubAndPresence),
            _ => None,
        }
    }

    /// The value a node gets when nobody chose one: `never` for a whitelist node (private
    /// data, XEP-0223; the bookmark nodes), else `on_sub_and_presence` (XEP-0163 §4.3.4).
    /// Also what a node stored before this setting existed loads with.
    pub fn default_for(access_model: AccessModel) -> SendLastItem {
        match access_model {
            AccessModel::Whitelist => SendLastItem::Never,
            AccessModel::Open | AccessModel::Presence => SendLastItem::OnSubAndPresence,
        }
    }
}

/// The relation of the requester to the node's owner, decided by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requester {
    /// The account itself (any of its resources).
    Owner,
    /// A contact with a presence subscription to the owner.
    PresenceSubscriber,
    /// Anyone else.
    Other,
}

/// A node's configuration: the implemented subset of `pubsub#node_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NodeConfig {
    /// `pubsub#persist_items`: whether published items are stored.
    pub persist_items: bool,
    /// `pubsub#access_model`.
    pub access_model: AccessModel,
    /// `pubsub#max_items`: how many items are kept (oldest dropped first); 1 ..= the cap.
    pub max_items: u32,
    /// `pubsub#send_last_published_item`.
    pub send_last_item: SendLastItem,
}

impl NodeConfig {
    /// The configuration of a node created without options: persistent, `presence` access
    /// (XEP-0163), `max_items` from [`Limits::default_max_items`].
    pub fn default_for(limits: &Limits) -> NodeConfig {
        NodeConfig {
            persist_items: true,
            access_model: AccessModel::Presence,
            max_items: limits
                .default_max_items
                .clamp(1, limits.max_items_cap.max(1)),
            send_last_item: SendLastItem::OnSubAndPresence,
        }
    }

    /// The configuration of node `node` created without options: [`NodeConfig::default_for`],
    /// except the two bookmark nodes (they hold room passwords), which get the profile their
    /// XEPs require even when a client omits the publish options: whitelist, and for
    /// XEP-0402 (`urn:xmpp:bookmarks:1`) as many items as allowed (XEP-0048 §3, XEP-0402 §3).
    pub fn initial_for(node: &str, limits: &Limits) -> NodeConfig {
        let default = NodeConfig::default_for(limits);
        match node {
            crate::bookmarks::NS_LEGACY => NodeConfig {
                access_model: AccessModel::Whitelist,
                send_last_item: SendLastItem::Never,
                ..default
            },
            crate::bookmarks::NS_NATIVE => NodeConfig {
                access_model: AccessModel::Whitelist,
                max_items: limits.max_items_cap.max(1),
                send_last_item: SendLastItem::Never,
                ..default
            },
            _ => default,
        }
    }

    /// The `pubsub#node_config` form (`type='form'`) describing this configuration.
    pub fn to_form(&self, limits: &Limits) -> Element {
        let mut x = Element::new("x", NS_DATA_FORMS).with_attr("type", "form");
        x = x.with_child(field("FORM_TYPE", Some("hidden"), FORM_NODE_CONFIG));
        x = x.with_child(field(
            "pubsub#persist_items",
            Some("boolean"),
            if self.persist_items { "1" } else { "0" },
        ));
        let mut access = field(
            "pubsub#access_model",
            Some("list-single"),
            self.access_model.as_str(),
        );
        for m in [
            AccessModel::Open,
            AccessModel::Presence,
            AccessModel::Whitelist,
        ] {
            access = access.with_child(
                Element::new("option", NS_DATA_FORMS)
                    .with_child(Element::new("value", NS_DATA_FORMS).with_text(m.as_str())),
            );
        }
        x = x.with_child(access);
        let mut max = field(
            "pubsub#max_items",
            Some("text-single"),
            &self.max_items.to_string(),
        );
        max.set_attr(
            "label",
            format!("Items kept (1 to {}, or max)", limits.max_items_cap),
        );
        x = x.with_child(max);
        let mut send_last = field(
            "pubsub#send_last_published_item",
            Some("list-single"),
            self.send_last_item.as_str(),
        );
        for v in [SendLastItem::Never, SendLastItem::OnSubAndPresence] {
            send_last = send_last.with_child(
                Element::new("option", NS_DATA_FORMS)
                    .with_child(Element::new("value", NS_DATA_FORMS).with_text(v.as_str())),
            );
        }
        x.with_child(send_last)
    }

    /// The configuration of a new node: `initial` (see [`NodeConfig::initial_for`]) with
    /// `change` applied; a node made whitelist without a choice of
    /// `send_last_published_item` gets `never` ([`SendLastItem::default_for`]).
    pub fn created(initial: NodeConfig, change: &ConfigChange) -> NodeConfig {
        let mut config = change.apply(initial);
        if change.send_last_item.is_none() {
            config.send_last_item = match config.access_model {
                AccessModel::Whitelist => SendLastItem::Never,
                _ => initial.send_last_item,
            };
        }
        config
    }
}

fn field(var: &str, ty: Option<&str>, value: &str) -> Element {
    let mut f = Element::new("field", NS_DATA_FORMS).with_attr("var", var);
    if let Some(ty) = ty {
        f.set_attr("type", ty);
    }
    f.with_child(Element::new("value", NS_DATA_FORMS).with_text(value))
}

/// Configuration values given in publish options or a configuration form; `None` leaves a
/// value as it is (or as the default, for a new node).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConfigChange {
    /// `pubsub#persist_items`.
    pub persist_items: Option<bool>,
    /// `pubsub#access_model`.
    pub access_model: Option<AccessModel>,
    /// `pubsub#max_items` (`max` is the cap).
    pub max_items: Option<u32>,
    /// `pubsub#send_last_published_item`.
    pub send_last_item: Option<SendLastItem>,
}

impl ConfigChange {
    /// XEP-0223's options for private data: persistent items, whitelist access.
    pub fn private() -> ConfigChange {
        ConfigChange {
            persist_items: Some(true),
            access_model: Some(AccessModel::Whitelist),
            max_items: None,
            send_last_item: None,
        }
    }

    /// Apply to `config`.
    pub fn apply(&self, mut config: NodeConfig) -> NodeConfig {
        if let Some(p) = self.persist_items {
            config.persist_items = p;
        }
        if let Some(a) = self.access_model {
            config.access_model = a;
        }
        if let Some(m) = self.max_items {
            config.max_items = m;
        }
        if let Some(l) = self.send_last_item {
            config.send_last_item = l;
        }
        config
    }

    /// Whether `config` already has every value given here (publish-options preconditions).
    pub fn is_met_by(&self, config: &NodeConfig) -> bool {
        self.apply(*config) == *config
    }

    /// Whether every value given here is also given, equal, in `read` (a configuration read
    /// back from a server, which may report fields that were not asked for).
    pub fn is_subset_of(&self, read: &ConfigChange) -> bool {
        fn same<T: PartialEq>(asked: Option<T>, got: Option<T>) -> bool {
            asked.is_none() || asked == got
        }
        same(self.persist_items, read.persist_items)
            && same(self.access_model, read.access_model)
            && same(self.max_items, read.max_items)
            && same(self.send_last_item, read.send_last_item)
    }

    /// As a submitted data form with FORM_TYPE `form_type` ([`FORM_PUBLISH_OPTIONS`] or
    /// [`FORM_NODE_CONFIG`]), for clients.
    pub fn to_submit_form(&self, form_type: &str) -> Element {
        let mut x = Element::new("x", NS_DATA_FORMS).with_attr("type", "submit");
        x = x.with_child(field("FORM_TYPE", Some("hidden"), form_type));
        if let Some(p) = self.persist_items {
            x = x.with_child(field(
                "pubsub#persist_items",
                None,
                if p { "true" } else { "false" },
            ));
        }
        if let Some(a) = self.access_model {
            x = x.with_child(field("pubsub#access_model", None, a.as_str()));
        }
        if let Some(m) = self.max_items {
            x = x.with_child(field("pubsub#max_items", None, &m.to_string()));
        }
        if let Some(l) = self.send_last_item {
            x = x.with_child(field("pubsub#send_last_published_item", None, l.as_str()));
        }
        x
    }
}

/// Bounds on nodes. Every stored count and size is bounded by these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `max_items` of a node created without that option. Default 1 (what Prosody does for
    /// PEP: the last item is the state).
    pub default_max_items: u32,
    /// Highest `max_items` a node may have; `max` means this. Default 256.
    pub max_items_cap: u32,
    /// Largest serialized payload of one item, in bytes. Default 64 KiB.
    pub max_item_bytes: usize,
    /// Largest stored node (configuration and all items), in bytes. Default 1 MiB.
    pub max_node_bytes: usize,
    /// Longest node name, in bytes. Default 1 KiB.
    pub max_node_name_bytes: usize,
    /// Longest item id, in bytes. Default 256.
    pub max_item_id_bytes: usize,
    /// Most `<item id/>` selectors in one items request. Default 64.
    pub max_ids_per_request: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            default_max_items: 1,
            max_items_cap: 256,
            max_item_bytes: 64 * 1024,
            max_node_bytes: 1024 * 1024,
            max_node_name_bytes: 1024,
            max_item_id_bytes: 256,
            max_ids_per_request: 64,
        }
    }
}

/// Why a request is refused. [`PepError::condition`] gives the RFC 6120 condition,
/// [`PepError::app_condition`] the `pubsub#errors` element, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PepError {
    /// Malformed request (wrong element, several actions, bad attribute, bad form value).
    BadRequest(&'static str),
    /// Publish or retract without an item: `bad-request` + `item-required`.
    ItemRequired,
    /// An item without payload: `bad-request` + `payload-required`.
    PayloadRequired,
    /// More than one payload element, or text in an item, or more than one item:
    /// `bad-request` + `invalid-payload`.
    InvalidPayload,
    /// No `node` attribute: `bad-request` + `nodeid-required` (`not-acceptable` for
    /// create, since instant nodes are not supported).
    NodeIdRequired {
        /// Whether the request was a create (instant node).
        create: bool,
    },
    /// A payload over [`Limits::max_item_bytes`]: `not-acceptable` + `payload-too-big`.
    PayloadTooBig,
    /// Node or item does not exist: `item-not-found`.
    ItemNotFound,
    /// Create of an existing node: `conflict`.
    NodeExists,
    /// Publish options the existing node does not match, or an unknown option:
    /// `conflict` + `precondition-not-met`.
    PreconditionNotMet(String),
    /// A configuration form with an unknown field or an unsupported value: `not-acceptable`.
    NotAcceptable(String),
    /// A write by anyone but the owner: `forbidden`.
    Forbidden,
    /// Items of a whitelist node requested by someone else: `not-allowed` + `closed-node`.
    ClosedNode,
    /// Items of a presence node requested without a subscription: `not-authorized` +
    /// `presence-subscription-required`.
    PresenceSubscriptionRequired,
    /// A pubsub feature not implemented: `feature-not-implemented` +
    /// `<unsupported feature='…'/>`.
    Unsupported(&'static str),
    /// Over a [`Limits`] bound other than the payload size: `resource-constraint`.
    ResourceConstraint,
    /// The store failed or holds unreadable data: `internal-server-error`. Nothing changed.
    InternalServerError,
}

impl PepError {
    /// The RFC 6120 defined condition name.
    pub fn condition(&self) -> &'static str {
        match self {
            PepError::BadRequest(_)
            | PepError::ItemRequired
            | PepError::PayloadRequired
            | PepError::InvalidPayload
            | PepError::NodeIdRequired { create: false } => "bad-request",
            PepError::NodeIdRequired { create: true }
            | PepError::PayloadTooBig
            | PepError::NotAcceptable(_) => "not-acceptable",
            PepError::ItemNotFound => "item-not-found",
            PepError::NodeExists | PepError::PreconditionNotMet(_) => "conflict",
            PepError::Forbidden => "forbidden",
            PepError::ClosedNode => "not-allowed",
            PepError::PresenceSubscriptionRequired => "not-authorized",
            PepError::Unsupported(_) => "feature-not-implemented",
            PepError::ResourceConstraint => "resource-constraint",
            PepError::InternalServerError => "internal-server-error",
        }
    }

    /// The error type: `modify`, `cancel`, `auth` or `wait`.
    pub fn error_type(&self) -> &'static str {
        match self.condition() {
            "bad-request" | "not-acceptable" => "modify",
            "forbidden" | "not-authorized" => "auth",
            "internal-server-error" => "wait",
            _ => "cancel",
        }
    }

    /// The application condition in `pubsub#errors` (element name), if any.
    pub fn app_condition(&self) -> Option<Element> {
        let name = match self {
            PepError::ItemRequired => "item-required",
            PepError::PayloadRequired => "payload-required",
            PepError::InvalidPayload => "invalid-payload",
            PepError::NodeIdRequired { .. } => "nodeid-required",
            PepError::PayloadTooBig => "payload-too-big",
            PepError::PreconditionNotMet(_) => "precondition-not-met",
            PepError::ClosedNode => "closed-node",
            PepError::PresenceSubscriptionRequired => "presence-subscription-required",
            PepError::Unsupported(feature) => {
                return Some(
                    Element::new("unsupported", NS_PUBSUB_ERRORS).with_attr("feature", *feature),
                );
            }
            _ => return None,
        };
        Some(Element::new(name, NS_PUBSUB_ERRORS))
    }

    /// Human-readable detail for the error's `<text/>`.
    pub fn text(&self) -> String {
        match self {
            PepError::BadRequest(why) => (*why).to_string(),
            PepError::ItemRequired => "an item is required".into(),
            PepError::PayloadRequired => "the item needs a payload element".into(),
            PepError::InvalidPayload => "exactly one item with exactly one payload element".into(),
            PepError::NodeIdRequired { .. } => "a node name is required".into(),
            PepError::PayloadTooBig => "the payload is over the size limit".into(),
            PepError::ItemNotFound => "no such node or item".into(),
            PepError::NodeExists => "the node already exists".into(),
            PepError::PreconditionNotMet(why) => why.clone(),
            PepError::NotAcceptable(why) => why.clone(),
            PepError::Forbidden => "only the owner may change this node".into(),
            PepError::ClosedNode => "this node is private to its owner".into(),
            PepError::PresenceSubscriptionRequired => {
                "a presence subscription to the owner is required".into()
            }
            PepError::Unsupported(f) => format!("pubsub feature {f} is not implemented"),
            PepError::ResourceConstraint => "the node is over a storage limit".into(),
            PepError::InternalServerError => "the store could not complete the request".into(),
        }
    }
}

impl core::fmt::Display for PepError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}: {}", self.condition(), self.text())
    }
}

impl core::error::Error for PepError {}

/// One stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredItem {
    /// The item id.
    pub id: String,
    /// The payload element.
    pub payload: Element,
}

/// Everything stored for one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeState {
    /// The configuration.
    pub config: NodeConfig,
    /// Items, oldest first; at most `config.max_items`, none unless `persist_items`.
    pub items: Vec<StoredItem>,
}

impl NodeState {
    /// The stored form: `<node xmlns='urn:elsinore:pep:1' …><item id='…'>payload</item>…`.
    pub fn encode(&self) -> Vec<u8> {
        let mut node = Element::new("node", NS_STORED)
            .with_attr(
                "persist_items",
                if self.config.persist_items { "1" } else { "0" },
            )
            .with_attr("access_model", self.config.access_model.as_str())
            .with_attr("max_items", self.config.max_items.to_string())
            .with_attr("send_last_item", self.config.send_last_item.as_str());
        for item in &self.items {
            node = node.with_child(
                Element::new("item", NS_STORED)
                    .with_attr("id", item.id.clone())
                    .with_child(item.payload.clone()),
            );
        }
        node.to_bytes()
    }

    /// Read a stored value back; anything unexpected is [`PepError::InternalServerError`].
    pub fn decode(bytes: &[u8]) -> Result<NodeState, PepError> {
        let defaults = XmlLimits::default();
        // Room for what was accepted on write: the size was checked then.
        let limits = XmlLimits {
            max_element_bytes: bytes.len().max(defaults.max_element_bytes),
            max_attributes: defaults.max_attributes.saturating_mul(4),
            ..defaults
        };
        let corrupt = |_| PepError::InternalServerError;
        let node = Element::parse_with_limits(bytes, limits).map_err(corrupt)?;
        if !node.is("node", NS_STORED) {
            return Err(PepError::InternalServerError);
        }
        let persist_items = match node.attr("persist_items") {
            Some("1") => true,
            Some("0") => false,
            _ => return Err(PepError::InternalServerError),
        };
        let access_model = node
            .attr("access_model")
            .and_then(AccessModel::from_value)
            .ok_or(PepError::InternalServerError)?;
        let max_items = node
            .attr("max_items")
            .and_then(|m| m.parse::<u32>().ok())
            .filter(|m| *m >= 1)
            .ok_or(PepError::InternalServerError)?;
        // Absent in nodes stored before the setting existed.
        let send_last_item = match node.attr("send_last_item") {
            None => SendLastItem::default_for(access_model),
            Some(v) => SendLastItem::from_value(v).ok_or(PepError::InternalServerError)?,
        };
        let mut items = Vec::new();
        for item in node.elements() {
            let id = item.attr("id").ok_or(PepError::InternalServerError)?;
            let mut payloads = item.elements();
            let (Some(payload), None) = (payloads.next(), payloads.next()) else {
                return Err(PepError::InternalServerError);
            };
            items.push(StoredItem {
                id: id.to_string(),
                payload: payload.clone(),
            });
        }
        Ok(NodeState {
            config: NodeConfig {
                persist_items,
                access_model,
                max_items,
                send_last_item,
            },
            items,
        })
    }

    /// The `<event/>` carrying the newest item, to send on its own to an entitled,
    /// interested resource that became available or whose subscription was just approved
    /// (XEP-0163 §4.3.4); `None` when the node
    /// holds no item or its `send_last_published_item` is `never`. Who is entitled is the
    /// caller's to decide from the access model.
    pub fn last_item_event(&self, node: &str) -> Option<Element> {
        if self.config.send_last_item == SendLastItem::Never {
            return None;
        }
        let item = self.items.last()?;
        let items = Element::new("items", NS_PUBSUB_EVENT)
            .with_attr("node", node)
            .with_child(
                Element::new("item", NS_PUBSUB_EVENT)
                    .with_attr("id", &item.id)
                    .with_child(item.payload.clone()),
            );
        Some(Element::new("event", NS_PUBSUB_EVENT).with_child(items))
    }

    /// Publish `item` (replacing an item with the same id, which becomes the newest), then
    /// drop the oldest items over `max_items`; nothing is kept unless `persist_items`.
    pub fn publish(&mut self, item: StoredItem) {
        self.items.retain(|i| i.id != item.id);
        if self.config.persist_items {
            self.items.push(item);
        }
        self.trim();
    }

    /// Enforce `persist_items` and `max_items` after a configuration change.
    pub fn trim(&mut self) {
        if !self.config.persist_items {
            self.items.clear();
        }
        let max = usize::try_from(self.config.max_items).unwrap_or(usize::MAX);
        if self.items.len() > max {
            let excess = self.items.len() - max;
            self.items.drain(..excess);
        }
    }
}

/// The storage key of `owner`'s node `node`.
pub fn node_key(owner: &BareJid, node: &str) -> Key {
    Key::new(owner.to_string(), Space::PubSub, node)
}

/// An event notification to send once the operation is durable: the
/// `<event xmlns='http://jabber.org/protocol/pubsub#event'>` payload, the node it is about
/// (contacts get it only if they asked for `NODE+notify`) and the node's access model
/// (which contacts may receive it, besides the owner's resources).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The node's name.
    pub node: String,
    /// The `<event/>` element for a `type='headline'` message from the owner's bare JID.
    pub event: Element,
    /// Access model of the node (after the operation).
    pub access_model: AccessModel,
}

/// One request to the PEP service of `owner`.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The account whose PEP service is addressed.
    pub owner: &'a BareJid,
    /// Who asks, relative to `owner`.
    pub requester: Requester,
    /// The iq type.
    pub kind: IqKind,
    /// The `<pubsub/>` element (in `pubsub` or `pubsub#owner`).
    pub pubsub: &'a Element,
    /// The id given to a published item that has none: the caller generates it (e.g. a
    /// random token), so nothing here reads randomness.
    pub fresh_id: &'a str,
}

/// What to do with one pubsub iq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Answer now: `Ok(payload)` is an iq result (with that payload, if any).
    Reply(Result<Option<Element>, PepError>),
    /// Load the node (`Op::Get(pending.key())`) and give the result to
    /// [`Pending::complete`]. Serialize per key (see the module docs).
    Load(Pending),
}

impl Action {
    /// Convenience for synchronous callers (tests): run everything on `store`.
    pub fn run_on(
        self,
        store: &mut impl Store,
    ) -> (Result<Option<Element>, PepError>, Vec<Notification>) {
        match self {
            Action::Reply(r) => (r, Vec::new()),
            Action::Load(pending) => {
                let loaded = store.apply(&Op::Get(pending.key().clone()));
                let outcome = pending.complete(loaded);
                let written = outcome.write.as_ref().map(|op| store.apply(op));
                outcome.finish(written)
            }
        }
    }
}

/// What to do once the node was loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The write to run (a `Put` or `Delete` of the node's key), if any.
    pub write: Option<Op>,
    /// The reply, valid once `write` succeeded.
    pub reply: Result<Option<Element>, PepError>,
    /// Notifications to send once `write` succeeded.
    pub notifications: Vec<Notification>,
}

impl Outcome {
    /// The reply and notifications given the write's result (`None` when there was no
    /// write). A failed write becomes [`PepError::InternalServerError`] with no
    /// notifications: the single-op write had no effect.
    pub fn finish(
        self,
        written: Option<EffectResult>,
    ) -> (Result<Option<Element>, PepError>, Vec<Notification>) {
        match (self.write.is_some(), written) {
            (false, None) | (true, Some(EffectResult::Done)) => (self.reply, self.notifications),
            _ => (Err(PepError::InternalServerError), Vec::new()),
        }
    }

    fn reply(reply: Result<Option<Element>, PepError>) -> Outcome {
        Outcome {
            write: None,
            reply,
            notifications: Vec::new(),
        }
    }
}

/// The part of a request that waits for its node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    key: Key,
    node: String,
    requester: Requester,
    op: Operation,
    limits: Limits,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Operation {
    Publish {
        item: StoredItem,
        options: Option<ConfigChange>,
    },
    Items {
        ids: Vec<String>,
        max: Option<usize>,
    },
    Retract {
        id: String,
        notify: bool,
    },
    Create {
        config: ConfigChange,
    },
    ConfigureGet,
    ConfigureSet {
        change: Option<ConfigChange>,
    },
    Delete,
    Purge,
}

impl Pending {
    /// The key to load (and the only key the outcome writes).
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// Continue with the result of `Op::Get(self.key())`.
    pub fn complete(self, loaded: EffectResult) -> Outcome {
        let state = match loaded {
            EffectResult::Value(None) => None,
            EffectResult::Value(Some(bytes)) => match NodeState::decode(&bytes) {
                Ok(s) => Some(s),
                Err(e) => return Outcome::reply(Err(e)),
            },
            _ => return Outcome::reply(Err(PepError::InternalServerError)),
        };
        match self.run(state) {
            Ok(o) => o,
            Err(e) => Outcome::reply(Err(e)),
        }
    }

    fn put(&self, state: &NodeState) -> Result<Op, PepError> {
        let bytes = state.encode();
        if bytes.len() > self.limits.max_node_bytes {
            return Err(PepError::ResourceConstraint);
        }
        Ok(Op::Put(self.key.clone(), bytes))
    }

    fn event(&self, child: Element, access_model: AccessModel) -> Notification {
        Notification {
            node: self.node.clone(),
            event: Element::new("event", NS_PUBSUB_EVENT).with_child(child),
            access_model,
        }
    }

    fn run(&self, state: Option<NodeState>) -> Result<Outcome, PepError> {
        let node = self.node.as_str();
        match &self.op {
            Operation::Publish { item, options } => {
                let mut state = match (state, options) {
                    (Some(s), Some(opts)) if !opts.is_met_by(&s.config) => {
                        return Err(PepError::PreconditionNotMet(
                            "the node's configuration does not match the publish options".into(),
                        ));
                    }
                    (Some(s), _) => s,
                    // Auto-create (XEP-0163): the default configuration with the options.
                    (None, opts) => NodeState {
                        config: NodeConfig::created(
                            NodeConfig::initial_for(node, &self.limits),
                            &opts.unwrap_or_default(),
                        ),
                        items: Vec::new(),
                    },
                };
                state.publish(item.clone());
                let write = self.put(&state)?;
                let reply = Element::new("pubsub", NS_PUBSUB).with_child(
                    Element::new("publish", NS_PUBSUB)
                        .with_attr("node", node)
                        .with_child(Element::new("item", NS_PUBSUB).with_attr("id", &item.id)),
                );
                let event = Element::new("items", NS_PUBSUB_EVENT)
                    .with_attr("node", node)
                    .with_child(
                        Element::new("item", NS_PUBSUB_EVENT)
                            .with_attr("id", &item.id)
                            .with_child(item.payload.clone()),
                    );
                Ok(Outcome {
                    write: Some(write),
                    reply: Ok(Some(reply)),
                    notifications: vec![self.event(event, state.config.access_model)],
                })
            }
            Operation::Items { ids, max } => {
                let state = state.ok_or(PepError::ItemNotFound)?;
                match (self.requester, state.config.access_model) {
                    (Requester::Owner, _) | (_, AccessModel::Open) => {}
                    (Requester::PresenceSubscriber, AccessModel::Presence) => {}
                    (_, AccessModel::Whitelist) => return Err(PepError::ClosedNode),
                    (Requester::Other, AccessModel::Presence) => {
                        return Err(PepError::PresenceSubscriptionRequired);
                    }
                }
                let selected: Vec<&StoredItem> = if ids.is_empty() {
                    let skip = max.map_or(0, |m| state.items.len().saturating_sub(m));
                    state.items.iter().skip(skip).collect()
                } else {
                    state.items.iter().filter(|i| ids.contains(&i.id)).collect()
                };
                let mut items = Element::new("items", NS_PUBSUB).with_attr("node", node);
                for i in selected {
                    items = items.with_child(
                        Element::new("item", NS_PUBSUB)
                            .with_attr("id", &i.id)
                            .with_child(i.payload.clone()),
                    );
                }
                Ok(Outcome::reply(Ok(Some(
                    Element::new("pubsub", NS_PUBSUB).with_child(items),
                ))))
            }
            Operation::Retract { id, notify } => {
                let mut state = state.ok_or(PepError::ItemNotFound)?;
                let before = state.items.len();
                state.items.retain(|i| i.id != *id);
                if state.items.len() == before {
                    return Err(PepError::ItemNotFound);
                }
                let notifications = if *notify {
                    let event = Element::new("items", NS_PUBSUB_EVENT)
                        .with_attr("node", node)
                        .with_child(Element::new("retract", NS_PUBSUB_EVENT).with_attr("id", id));
                    vec![self.event(event, state.config.access_model)]
                } else {
                    Vec::new()
                };
                Ok(Outcome {
                    write: Some(self.put(&state)?),
                    reply: Ok(None),
                    notifications,
                })
            }
            Operation::Create { config } => {
                if state.is_some() {
                    return Err(PepError::NodeExists);
                }
                let state = NodeState {
                    config: NodeConfig::created(
                        NodeConfig::initial_for(node, &self.limits),
                        config,
                    ),
                    items: Vec::new(),
                };
                Ok(Outcome {
                    write: Some(self.put(&state)?),
                    reply: Ok(None),
                    notifications: Vec::new(),
                })
            }
            Operation::ConfigureGet => {
                let state = state.ok_or(PepError::ItemNotFound)?;
                let configure = Element::new("configure", NS_PUBSUB_OWNER)
                    .with_attr("node", node)
                    .with_child(state.config.to_form(&self.limits));
                Ok(Outcome::reply(Ok(Some(
                    Element::new("pubsub", NS_PUBSUB_OWNER).with_child(configure),
                ))))
            }
            Operation::ConfigureSet { change } => {
                let mut state = state.ok_or(PepError::ItemNotFound)?;
                let Some(change) = change else {
                    // A cancelled form changes nothing (XEP-0060 8.2.6).
                    return Ok(Outcome::reply(Ok(None)));
                };
                state.config = change.apply(state.config);
                state.trim();
                Ok(Outcome {
                    write: Some(self.put(&state)?),
                    reply: Ok(None),
                    notifications: Vec::new(),
                })
            }
            Operation::Delete => {
                let state = state.ok_or(PepError::ItemNotFound)?;
                let event = Element::new("delete", NS_PUBSUB_EVENT).with_attr("node", node);
                Ok(Outcome {
                    write: Some(Op::Delete(self.key.clone())),
                    reply: Ok(None),
                    notifications: vec![self.event(event, state.config.access_model)],
                })
            }
            Operation::Purge => {
                let mut state = state.ok_or(PepError::ItemNotFound)?;
                if !state.config.persist_items {
                    return Err(PepError::Unsupported("persistent-items"));
                }
                state.items.clear();
                let event = Element::new("purge", NS_PUBSUB_EVENT).with_attr("node", node);
                Ok(Outcome {
                    write: Some(self.put(&state)?),
                    reply: Ok(None),
                    notifications: vec![self.event(event, state.config.access_model)],
                })
            }
        }
    }
}

/// Decide what to do with one pubsub iq (see the module docs).
pub fn handle(req: &Request<'_>, limits: &Limits) -> Action {
    match plan(req, limits) {
        Ok(Planned::Reply(r)) => Action::Reply(Ok(r)),
        Ok(Planned::Load { node, op }) => Action::Load(Pending {
            key: node_key(req.owner, &node),
            node,
            requester: req.requester,
            op,
            limits: *limits,
        }),
        Err(e) => Action::Reply(Err(e)),
    }
}

enum Planned {
    Reply(Option<Element>),
    Load { node: String, op: Operation },
}

/// The child elements of `el`; non-whitespace text is a bad request.
fn children(el: &Element) -> Result<Vec<&Element>, PepError> {
    let mut out = Vec::new();
    for n in &el.children {
        match n {
            Node::Element(e) => out.push(e),
            Node::Text(t) if is_ws(t) => {}
            Node::Text(_) => return Err(PepError::BadRequest("unexpected text")),
        }
    }
    Ok(out)
}

fn is_ws(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

fn plan(req: &Request<'_>, limits: &Limits) -> Result<Planned, PepError> {
    let ps = req.pubsub;
    let owner_ns = if ps.is("pubsub", NS_PUBSUB) {
        false
    } else if ps.is("pubsub", NS_PUBSUB_OWNER) {
        true
    } else {
        return Err(PepError::BadRequest("expected <pubsub/>"));
    };
    let kids = children(ps)?;
    let Some(first) = kids.first().copied() else {
        return Err(PepError::BadRequest("<pubsub/> names no action"));
    };
    let second = kids.get(1).copied();
    if kids.len() > 2 {
        return Err(PepError::BadRequest("more than one pubsub action"));
    }
    // Element names are in the pubsub namespace of the wrapper.
    if kids.iter().any(|k| k.ns != ps.ns) {
        return Err(PepError::BadRequest("action in the wrong namespace"));
    }
    let is_owner = req.requester == Requester::Owner;
    let write = |op: Operation, node: String| -> Result<Planned, PepError> {
        if !is_owner {
            return Err(PepError::Forbidden);
        }
        Ok(Planned::Load { node, op })
    };
    let action = first.name.as_str();
    let companion = second.map(|s| s.name.as_str());
    match (owner_ns, req.kind, action, companion) {
        (false, IqKind::Set, "publish", None | Some("publish-options")) => {
            let node = node_name(first, limits, false)?;
            let options = match second {
                Some(po) => Some(publish_options(po, limits)?),
                None => None,
            };
            let item = publish_item(first, req.fresh_id, limits)?;
            write(Operation::Publish { item, options }, node)
        }
        (false, IqKind::Get, "items", None) => {
            let node = node_name(first, limits, false)?;
            let max = match first.attr("max_items") {
                None => None,
                Some(m) => Some(
                    m.parse::<usize>()
                        .map_err(|_| PepError::BadRequest("max_items is not a number"))?,
                ),
            };
            let mut ids = Vec::new();
            for item in children(first)? {
                if !item.is("item", NS_PUBSUB) {
                    return Err(PepError::BadRequest("only <item/> may select items"));
                }
                let id = item
                    .attr("id")
                    .ok_or(PepError::BadRequest("item selector without id"))?;
                if ids.len() >= limits.max_ids_per_request {
                    return Err(PepError::ResourceConstraint);
                }
                ids.push(id.to_string());
            }
            Ok(Planned::Load {
                node,
                op: Operation::Items { ids, max },
            })
        }
        (false, IqKind::Set, "retract", None) => {
            let node = node_name(first, limits, false)?;
            let notify = match first.attr("notify") {
                None | Some("0") | Some("false") => false,
                Some("1") | Some("true") => true,
                Some(_) => return Err(PepError::BadRequest("notify is not a boolean")),
            };
            let items = children(first)?;
            let id = match items.as_slice() {
                [] => return Err(PepError::ItemRequired),
                [item] if item.is("item", NS_PUBSUB) => item
                    .attr("id")
                    .filter(|id| !id.is_empty())
                    .ok_or(PepError::ItemRequired)?,
                [_] => return Err(PepError::BadRequest("retract holds <item/> only")),
                _ => return Err(PepError::BadRequest("retract one item at a time")),
            };
            write(
                Operation::Retract {
                    id: id.to_string(),
                    notify,
                },
                node,
            )
        }
        (false, IqKind::Set, "create", None | Some("configure")) => {
            let node = node_name(first, limits, true)?;
            let config = match second.map(children).transpose()?.as_deref() {
                None | Some([]) => ConfigChange::default(),
                Some([form]) => config_form(form, FORM_NODE_CONFIG, limits)?.unwrap_or_default(),
                Some(_) => return Err(PepError::BadRequest("configure holds one form")),
            };
            write(Operation::Create { config }, node)
        }
        (true, IqKind::Get, "configure", None) => {
            let node = node_name(first, limits, false)?;
            write(Operation::ConfigureGet, node)
        }
        (true, IqKind::Set, "configure", None) => {
            let node = node_name(first, limits, false)?;
            let change = match children(first)?.as_slice() {
                [form] => config_form(form, FORM_NODE_CONFIG, limits)?,
                _ => return Err(PepError::BadRequest("configure holds one form")),
            };
            write(Operation::ConfigureSet { change }, node)
        }
        (true, IqKind::Get, "default", None) => {
            if !is_owner {
                return Err(PepError::Forbidden);
            }
            let default = Element::new("default", NS_PUBSUB_OWNER)
                .with_child(NodeConfig::default_for(limits).to_form(limits));
            Ok(Planned::Reply(Some(
                Element::new("pubsub", NS_PUBSUB_OWNER).with_child(default),
            )))
        }
        (true, IqKind::Set, "delete", None) => {
            let node = node_name(first, limits, false)?;
            write(Operation::Delete, node)
        }
        (true, IqKind::Set, "purge", None) => {
            let node = node_name(first, limits, false)?;
            write(Operation::Purge, node)
        }
        (false, _, "subscribe", _) => Err(PepError::Unsupported("subscribe")),
        (false, _, "unsubscribe", _) => Err(PepError::Unsupported("subscribe")),
        (false, _, "options", _) => Err(PepError::Unsupported("subscription-options")),
        (false, _, "subscriptions", _) => Err(PepError::Unsupported("retrieve-subscriptions")),
        (false, _, "affiliations", _) => Err(PepError::Unsupported("retrieve-affiliations")),
        (true, _, "subscriptions", _) => Err(PepError::Unsupported("manage-subscriptions")),
        (true, _, "affiliations", _) => Err(PepError::Unsupported("modify-affiliations")),
        _ => Err(PepError::BadRequest("unsupported pubsub request")),
    }
}

fn node_name(action: &Element, limits: &Limits, create: bool) -> Result<String, PepError> {
    match action.attr("node") {
        None | Some("") => Err(PepError::NodeIdRequired { create }),
        Some(n) if n.len() > limits.max_node_name_bytes => Err(PepError::NotAcceptable(
            "node name over the length limit".into(),
        )),
        Some(n) => Ok(n.to_string()),
    }
}

fn publish_item(
    publish: &Element,
    fresh_id: &str,
    limits: &Limits,
) -> Result<StoredItem, PepError> {
    let items = children(publish)?;
    let item = match items.as_slice() {
        [] => return Err(PepError::ItemRequired),
        [item] if item.is("item", NS_PUBSUB) => *item,
        [_] => return Err(PepError::BadRequest("publish holds <item/> only")),
        _ => return Err(PepError::InvalidPayload),
    };
    let payloads = children(item).map_err(|_| PepError::InvalidPayload)?;
    let payload = match payloads.as_slice() {
        [] => return Err(PepError::PayloadRequired),
        [p] => (*p).clone(),
        _ => return Err(PepError::InvalidPayload),
    };
    if payload.to_bytes().len() > limits.max_item_bytes {
        return Err(PepError::PayloadTooBig);
    }
    let id = match item.attr("id") {
        None | Some("") => fresh_id.to_string(),
        Some(id) if id.len() > limits.max_item_id_bytes => {
            return Err(PepError::NotAcceptable(
                "item id over the length limit".into(),
            ));
        }
        Some(id) => id.to_string(),
    };
    Ok(StoredItem { id, payload })
}

fn publish_options(po: &Element, limits: &Limits) -> Result<ConfigChange, PepError> {
    match children(po)?.as_slice() {
        // An empty <publish-options/> sets no precondition.
        [] => Ok(ConfigChange::default()),
        [form] => {
            let fields = form_fields(form, FORM_PUBLISH_OPTIONS)?;
            let Some(fields) = fields else {
                return Err(PepError::BadRequest("publish options must be submitted"));
            };
            // Unknown options must be refused (XEP-0060 7.1.5): they are preconditions we
            // cannot check, so they are not met.
            to_change(&fields, limits, |var| {
                PepError::PreconditionNotMet(format!("unsupported publish option {var}"))
            })
        }
        _ => Err(PepError::BadRequest("publish-options holds one form")),
    }
}

/// A node configuration form: `None` for `type='cancel'`.
fn config_form(
    form: &Element,
    form_type: &str,
    limits: &Limits,
) -> Result<Option<ConfigChange>, PepError> {
    match form_fields(form, form_type)? {
        None => Ok(None),
        Some(fields) => to_change(&fields, limits, |var| {
            PepError::NotAcceptable(format!("unsupported configuration field {var}"))
        })
        .map(Some),
    }
}

/// The (var, value) pairs of a submitted form of FORM_TYPE `form_type`, without FORM_TYPE;
/// `None` for a cancelled form.
fn form_fields(form: &Element, form_type: &str) -> Result<Option<Vec<(String, String)>>, PepError> {
    if !form.is("x", NS_DATA_FORMS) {
        return Err(PepError::BadRequest("expected a jabber:x:data form"));
    }
    match form.attr("type") {
        Some("submit") => {}
        Some("cancel") => return Ok(None),
        _ => return Err(PepError::BadRequest("the form must be of type submit")),
    }
    let mut saw_type = false;
    let mut fields = Vec::new();
    for f in children(form)? {
        if !f.is("field", NS_DATA_FORMS) {
            continue; // <title/>, <instructions/>: informational
        }
        let var = f
            .attr("var")
            .ok_or(PepError::BadRequest("form field without var"))?;
        let mut values = f
            .elements()
            .filter(|v| v.is("value", NS_DATA_FORMS))
            .map(|v| v.text());
        let value = values.next().unwrap_or_default();
        if values.next().is_some() {
            return Err(PepError::BadRequest("one value per field"));
        }
        let value = value.trim_matches(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
        if var == "FORM_TYPE" {
            if value != form_type {
                return Err(PepError::BadRequest("wrong FORM_TYPE"));
            }
            saw_type = true;
            continue;
        }
        if fields.iter().any(|(v, _)| v == var) {
            return Err(PepError::BadRequest("a field is given twice"));
        }
        fields.push((var.to_string(), value.to_string()));
    }
    if !saw_type {
        return Err(PepError::BadRequest("the form has no FORM_TYPE"));
    }
    Ok(Some(fields))
}

fn to_change(
    fields: &[(String, String)],
    limits: &Limits,
    unknown: impl Fn(&str) -> PepError,
) -> Result<ConfigChange, PepError> {
    let mut change = ConfigChange::default();
    for (var, value) in fields {
        match var.as_str() {
            "pubsub#persist_items" => {
                change.persist_items = Some(match value.as_str() {
                    "1" | "true" => true,
                    "0" | "false" => false,
                    _ => return Err(PepError::BadRequest("pubsub#persist_items is a boolean")),
                });
            }
            "pubsub#access_model" => {
                change.access_model = Some(AccessModel::from_value(value).ok_or_else(|| {
                    PepError::NotAcceptable(format!("access model {value:?} is not supported"))
                })?);
            }
            "pubsub#max_items" => {
                let n = if value == "max" {
                    limits.max_items_cap
                } else {
                    value
                        .parse::<u32>()
                        .map_err(|_| PepError::BadRequest("pubsub#max_items is a number or max"))?
                };
                if n == 0 || n > limits.max_items_cap {
                    return Err(PepError::NotAcceptable(format!(
                        "pubsub#max_items must be 1 to {} (or max)",
                        limits.max_items_cap
                    )));
                }
                change.max_items = Some(n);
            }
            "pubsub#send_last_published_item" => {
                change.send_last_item = Some(SendLastItem::from_value(value).ok_or_else(|| {
                    PepError::NotAcceptable(format!(
                        "send_last_published_item {value:?} is not supported"
                    ))
                })?);
            }
            other => return Err(unknown(other)),
        }
    }
    Ok(change)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A node stored before `send_last_item` existed still loads: whitelist nodes (private
    /// data, bookmarks) get `never`, the others the XEP-0163 default.
    #[test]
    fn nodes_stored_without_send_last_item_decode() {
        let old = b"<node xmlns='urn:elsinore:pep:1' persist_items='1' access_model='presence' \
                    max_items='1'><item id='a'><tune xmlns='http://jabber.org/protocol/tune'/>\
                    </item></node>";
        let state = NodeState::decode(old).expect("old encoding decodes");
        assert_eq!(state.config.send_last_item, SendLastItem::OnSubAndPresence);
        assert_eq!(state.items.len(), 1);
        let old = b"<node xmlns='urn:elsinore:pep:1' persist_items='1' \
                    access_model='whitelist' max_items='256'/>";
        let state = NodeState::decode(old).expect("old encoding decodes");
        assert_eq!(state.config.send_last_item, SendLastItem::Never);
        // What is stored now keeps the setting, whatever the access model.
        let mut state = state;
        state.config.send_last_item = SendLastItem::OnSubAndPresence;
        assert_eq!(NodeState::decode(&state.encode()), Ok(state));
        let bad = b"<node xmlns='urn:elsinore:pep:1' persist_items='1' access_model='open' \
                    max_items='1' send_last_item='on_sub'/>";
        assert_eq!(NodeState::decode(bad), Err(PepError::InternalServerError));
    }

    #[test]
    fn a_configuration_read_back_may_say_more_than_was_asked() {
        let asked = ConfigChange {
            max_items: Some(3),
            ..ConfigChange::private()
        };
        let read = ConfigChange {
            send_last_item: Some(SendLastItem::Never),
            ..asked
        };
        assert!(asked.is_subset_of(&read));
        assert!(!read.is_subset_of(&asked));
        let other = ConfigChange {
            max_items: Some(2),
            ..read
        };
        assert!(!asked.is_subset_of(&other));
        assert!(ConfigChange::default().is_subset_of(&ConfigChange::default()));
    }

    #[test]
    fn last_item_event_is_the_newest_item_unless_never() {
        let item = |id: &str| StoredItem {
            id: id.into(),
            payload: Element::new("tune", "http://jabber.org/protocol/tune"),
        };
        let mut state = NodeState {
            config: NodeConfig::default_for(&Limits::default()),
            items: vec![item("a"), item("b")],
        };
        let event = state.last_item_event("n").expect("an event");
        let items = event.get_child("items", NS_PUBSUB_EVENT).expect("items");
        assert_eq!(items.attr("node"), Some("n"));
        let ids: Vec<_> = items.elements().filter_map(|i| i.attr("id")).collect();
        assert_eq!(ids, ["b"]);
        state.config.send_last_item = SendLastItem::Never;
        assert_eq!(state.last_item_event("n"), None);
        state.config.send_last_item = SendLastItem::OnSubAndPresence;
        state.items.clear();
        assert_eq!(state.last_item_event("n"), None);
    }
}
