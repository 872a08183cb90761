//! Message, presence and iq stanzas.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::string::ToString;
use alloc::vec;
use alloc::vec::Vec;

use core::fmt;

use elsinore_jid::{Jid, JidError};
use elsinore_xml::{Attr, Element, Node, XML_NS};

use crate::error::{DefinedCondition, StanzaError};
use crate::ns::{NS_CLIENT, NS_SERVER};
use crate::stream_error::StreamErrorCondition;

/// A top-level stanza.
///
/// Payload elements in the stanza's own namespace (`<body/>`, `<subject/>`, `<thread/>`,
/// `<show/>`, `<status/>`, `<priority/>`) are stored with `ns == NS_CLIENT` whichever stream
/// (`jabber:client` or `jabber:server`) they came from, and written back in the namespace
/// passed to [`Stanza::into_element`]; foreign payloads are kept untouched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stanza {
    /// `<message/>`.
    Message(Message),
    /// `<presence/>`.
    Presence(Presence),
    /// `<iq/>`.
    Iq(Iq),
}

/// `<message/>` (RFC 6120 §8.2.1, RFC 6121 §5).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Message {
    /// Sender.
    pub from: Option<Jid>,
    /// Recipient.
    pub to: Option<Jid>,
    /// Stanza id.
    pub id: Option<String>,
    /// `xml:lang`.
    pub lang: Option<String>,
    /// Message type (an unknown `type` value reads as `normal`, RFC 6121 §5.2.2).
    pub type_: MessageType,
    /// The error, written only when `type_` is [`MessageType::Error`] (then always: an
    /// error stanza without one gets `undefined-condition`). Parsed only from error stanzas.
    pub error: Option<StanzaError>,
    /// Child elements: body, subject, thread, extensions, in document order.
    pub payloads: Vec<Element>,
    /// Attributes other than `from`, `to`, `id`, `type` and `xml:lang`, kept verbatim.
    pub extra_attrs: Vec<Attr>,
}

/// Message `type` (RFC 6121 §5.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MessageType {
    /// `normal` (also no `type` attribute).
    #[default]
    Normal,
    /// `chat`.
    Chat,
    /// `groupchat`.
    Groupchat,
    /// `headline`.
    Headline,
    /// `error`.
    Error,
}

/// `<presence/>` (RFC 6120 §8.2.2, RFC 6121 §4).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    /// Sender.
    pub from: Option<Jid>,
    /// Recipient.
    pub to: Option<Jid>,
    /// Stanza id.
    pub id: Option<String>,
    /// `xml:lang`.
    pub lang: Option<String>,
    /// Presence type.
    pub type_: PresenceType,
    /// The error, written only when `type_` is [`PresenceType::Error`] (see [`Message::error`]).
    pub error: Option<StanzaError>,
    /// Child elements: show, status, priority, extensions, in document order.
    pub payloads: Vec<Element>,
    /// Attributes other than `from`, `to`, `id`, `type` and `xml:lang`, kept verbatim.
    pub extra_attrs: Vec<Attr>,
}

/// Presence `type` (RFC 6121 §4.7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PresenceType {
    /// No `type` attribute: available.
    #[default]
    Available,
    /// `unavailable`.
    Unavailable,
    /// `subscribe`.
    Subscribe,
    /// `subscribed`.
    Subscribed,
    /// `unsubscribe`.
    Unsubscribe,
    /// `unsubscribed`.
    Unsubscribed,
    /// `probe`.
    Probe,
    /// `error`.
    Error,
}

/// The availability sub-state of `<show/>` (draft-ietf-xmpp-core-11 7.4.2.1, RFC 6121
/// §4.7.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Show {
    /// `away`: temporarily away.
    Away,
    /// `chat`: interested in chatting.
    Chat,
    /// `dnd`: do not disturb.
    Dnd,
    /// `xa`: extended away.
    Xa,
}

impl Show {
    /// The wire value; other values are not a `Show` (the spec has them ignored).
    pub fn from_text(s: &str) -> Option<Show> {
        match s {
            "away" => Some(Show::Away),
            "chat" => Some(Show::Chat),
            "dnd" => Some(Show::Dnd),
            "xa" => Some(Show::Xa),
            _ => None,
        }
    }

    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Show::Away => "away",
            Show::Chat => "chat",
            Show::Dnd => "dnd",
            Show::Xa => "xa",
        }
    }
}

/// `<iq/>` (RFC 6120 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iq {
    /// Sender.
    pub from: Option<Jid>,
    /// Recipient.
    pub to: Option<Jid>,
    /// Stanza id (required for iq).
    pub id: String,
    /// `xml:lang`.
    pub lang: Option<String>,
    /// Type and content.
    pub payload: IqPayload,
    /// Attributes other than `from`, `to`, `id`, `type` and `xml:lang`, kept verbatim.
    pub extra_attrs: Vec<Attr>,
}

/// The type of an iq together with what that type allows as content.
// Not boxed: callers match error iqs by value, and iqs are built once and moved little.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IqPayload {
    /// `get` with its one child.
    Get(Element),
    /// `set` with its one child.
    Set(Element),
    /// `result`, with zero or one child.
    Result(Option<Element>),
    /// `error`, with the error and the original request's child if the peer echoed it.
    Error {
        /// The error.
        error: StanzaError,
        /// The echoed request payload.
        original: Option<Element>,
    },
}

impl MessageType {
    /// The `type` attribute value; `None` for `normal` (the default, written as no attribute).
    pub fn as_attr(self) -> Option<&'static str> {
        match self {
            MessageType::Normal => None,
            MessageType::Chat => Some("chat"),
            MessageType::Groupchat => Some("groupchat"),
            MessageType::Headline => Some("headline"),
            MessageType::Error => Some("error"),
        }
    }

    /// Read a `type` attribute: unknown values are `normal` (RFC 6121 §5.2.2).
    pub fn from_attr(value: Option<&str>) -> MessageType {
        match value {
            Some("chat") => MessageType::Chat,
            Some("groupchat") => MessageType::Groupchat,
            Some("headline") => MessageType::Headline,
            Some("error") => MessageType::Error,
            _ => MessageType::Normal,
        }
    }
}

impl PresenceType {
    /// The `type` attribute value; `None` for available.
    pub fn as_attr(self) -> Option<&'static str> {
        match self {
            PresenceType::Available => None,
            PresenceType::Unavailable => Some("unavailable"),
            PresenceType::Subscribe => Some("subscribe"),
            PresenceType::Subscribed => Some("subscribed"),
            PresenceType::Unsubscribe => Some("unsubscribe"),
            PresenceType::Unsubscribed => Some("unsubscribed"),
            PresenceType::Probe => Some("probe"),
            PresenceType::Error => Some("error"),
        }
    }

    /// Read a `type` attribute; `None` for an unknown value (RFC 6121 §4.7.1: bad-request).
    pub fn from_attr(value: Option<&str>) -> Option<PresenceType> {
        Some(match value {
            None => PresenceType::Available,
            Some("unavailable") => PresenceType::Unavailable,
            Some("subscribe") => PresenceType::Subscribe,
            Some("subscribed") => PresenceType::Subscribed,
            Some("unsubscribe") => PresenceType::Unsubscribe,
            Some("unsubscribed") => PresenceType::Unsubscribed,
            Some("probe") => PresenceType::Probe,
            Some("error") => PresenceType::Error,
            Some(_) => return None,
        })
    }
}

impl IqPayload {
    /// The `type` attribute value.
    pub fn type_str(&self) -> &'static str {
        match self {
            IqPayload::Get(_) => "get",
            IqPayload::Set(_) => "set",
            IqPayload::Result(_) => "result",
            IqPayload::Error { .. } => "error",
        }
    }

    /// The request child of a get or set.
    pub fn request(&self) -> Option<&Element> {
        match self {
            IqPayload::Get(e) | IqPayload::Set(e) => Some(e),
            IqPayload::Result(_) | IqPayload::Error { .. } => None,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Parse errors

/// Which address attribute held a malformed JID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JidAttr {
    /// `from`.
    From,
    /// `to`.
    To,
}

impl JidAttr {
    /// The attribute name.
    pub fn as_str(self) -> &'static str {
        match self {
            JidAttr::From => "from",
            JidAttr::To => "to",
        }
    }
}

/// What is wrong with an element that should have been a stanza.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StanzaParseErrorKind {
    /// Not `message`/`presence`/`iq` in `jabber:client` or `jabber:server`.
    NotAStanza,
    /// An `iq` without `id` (RFC 6120 §8.1.3 makes it required).
    MissingIqId,
    /// An `iq` without `type`.
    MissingIqType,
    /// A `type` value not defined for this stanza kind (iq, presence); the value is in
    /// [`RawHeader::type_`].
    UnknownType,
    /// `to` or `from` is not a valid JID.
    InvalidJid {
        /// Which attribute.
        attr: JidAttr,
        /// Why.
        error: JidError,
    },
    /// An iq with the wrong number of child elements: get/set need exactly one, result
    /// at most one.
    IqChildCount {
        /// How many child elements there were.
        found: usize,
    },
}

/// The raw top-level attributes of a rejected stanza, kept so a reply can be addressed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RawHeader {
    /// Element name.
    pub name: String,
    /// Element namespace.
    pub ns: String,
    /// `id`.
    pub id: Option<String>,
    /// `from`, unparsed.
    pub from: Option<String>,
    /// `to`, unparsed.
    pub to: Option<String>,
    /// `type`, unparsed.
    pub type_: Option<String>,
}

/// An element that is not a valid stanza, with enough context to answer it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StanzaParseError {
    /// What is wrong.
    pub kind: StanzaParseErrorKind,
    /// The offending element's header (boxed: keeps `Result`s small on the happy path).
    pub header: Box<RawHeader>,
}

impl StanzaParseError {
    /// The stanza error condition to answer with: `jid-malformed` for a bad address,
    /// `bad-request` otherwise.
    pub fn condition(&self) -> DefinedCondition {
        match self.kind {
            StanzaParseErrorKind::InvalidJid { .. } => DefinedCondition::JidMalformed,
            _ => DefinedCondition::BadRequest,
        }
    }

    /// A stream-level condition when the problem is not a stanza at all
    /// (`unsupported-stanza-type`); `None` when a stanza error reply is the answer.
    pub fn stream_condition(&self) -> Option<StreamErrorCondition> {
        match self.kind {
            StanzaParseErrorKind::NotAStanza => Some(StreamErrorCondition::UnsupportedStanzaType),
            _ => None,
        }
    }

    /// Whether answering with a stanza error is allowed: never for non-stanzas, for stanzas
    /// of type `error`, or for iq results (RFC 6120 §8.2.3, §8.3.1), and not for an iq
    /// without `id` (the reply would be an invalid iq the peer cannot match; drop it).
    pub fn may_reply(&self) -> bool {
        if matches!(self.kind, StanzaParseErrorKind::NotAStanza) {
            return false;
        }
        if self.header.name == "iq" && self.header.id.is_none() {
            return false;
        }
        match self.header.type_.as_deref() {
            Some("error") => false,
            Some("result") => self.header.name != "iq",
            _ => true,
        }
    }

    /// The error stanza to send back (in namespace `ns`), or `None` if no reply is allowed
    /// ([`may_reply`](Self::may_reply)). It goes to the original `from` and comes from the
    /// original `to`, leaving out any that is not a valid JID; it keeps the `id`, and
    /// the error text says what was wrong.
    pub fn error_reply(&self, ns: &str) -> Option<Element> {
        if !self.may_reply() {
            return None;
        }
        let mut el = Element::new(self.header.name.as_str(), ns);
        // Only addresses that are valid JIDs are echoed (in normalised form): whatever the
        // reported problem, a malformed address must not be sent on.
        let valid = |raw: &Option<String>| raw.as_deref().and_then(|s| Jid::parse(s).ok());
        if let Some(to) = valid(&self.header.from) {
            el.set_attr("to", to.to_string());
        }
        if let Some(from) = valid(&self.header.to) {
            el.set_attr("from", from.to_string());
        }
        if let Some(id) = &self.header.id {
            el.set_attr("id", id.as_str());
        }
        el.set_attr("type", "error");
        let err = StanzaError::new(self.condition()).with_text_lang(self.to_string(), "en");
        el.children.push(Node::Element(err.to_element(ns)));
        Some(el)
    }
}

impl fmt::Display for StanzaParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = self.header.name.as_str();
        match &self.kind {
            StanzaParseErrorKind::NotAStanza => {
                write!(
                    f,
                    "<{name}/> in namespace '{}' is not a stanza",
                    self.header.ns
                )
            }
            StanzaParseErrorKind::MissingIqId => f.write_str("iq without 'id' attribute"),
            StanzaParseErrorKind::MissingIqType => f.write_str("iq without 'type' attribute"),
            StanzaParseErrorKind::UnknownType => write!(
                f,
                "unknown {name} type '{}'",
                self.header.type_.as_deref().unwrap_or_default()
            ),
            StanzaParseErrorKind::InvalidJid { attr, error } => {
                write!(f, "malformed JID in '{}': {error:?}", attr.as_str())
            }
            StanzaParseErrorKind::IqChildCount { found } => {
                let want = match self.header.type_.as_deref() {
                    Some("result") => "at most one child element",
                    _ => "exactly one child element",
                };
                let ty = self.header.type_.as_deref().unwrap_or_default();
                write!(f, "iq of type '{ty}' needs {want}, found {found}")
            }
        }
    }
}

impl core::error::Error for StanzaParseError {}

// ---------------------------------------------------------------------------------------
// Parsing

/// The attributes every stanza shares, parsed.
struct Common {
    from: Option<Jid>,
    to: Option<Jid>,
    id: Option<String>,
    lang: Option<String>,
    type_: Option<String>,
    extra: Vec<Attr>,
}

fn header_of(el: &Element) -> RawHeader {
    RawHeader {
        name: el.name.clone(),
        ns: el.ns.clone(),
        id: el.attr("id").map(Into::into),
        from: el.attr("from").map(Into::into),
        to: el.attr("to").map(Into::into),
        type_: el.attr("type").map(Into::into),
    }
}

fn fail(el: &Element, kind: StanzaParseErrorKind) -> StanzaParseError {
    StanzaParseError {
        kind,
        header: Box::new(header_of(el)),
    }
}

fn parse_jid(el: &Element, attr: JidAttr, value: &str) -> Result<Jid, StanzaParseError> {
    value
        .parse::<Jid>()
        .map_err(|error| fail(el, StanzaParseErrorKind::InvalidJid { attr, error }))
}

/// Split the attributes into the common ones and the rest (moving, not copying, the rest).
fn take_common(el: &mut Element) -> Result<Common, StanzaParseError> {
    let from = match el.attr("from") {
        Some(v) => Some(parse_jid(el, JidAttr::From, v)?),
        None => None,
    };
    let to = match el.attr("to") {
        Some(v) => Some(parse_jid(el, JidAttr::To, v)?),
        None => None,
    };
    let mut common = Common {
        from,
        to,
        id: None,
        lang: None,
        type_: None,
        extra: Vec::new(),
    };
    for attr in core::mem::take(&mut el.attrs) {
        if attr.ns.is_empty() {
            match attr.name.as_str() {
                "from" | "to" => continue,
                "id" => {
                    common.id = Some(attr.value);
                    continue;
                }
                "type" => {
                    common.type_ = Some(attr.value);
                    continue;
                }
                _ => {}
            }
        } else if attr.ns == XML_NS && attr.name == "lang" {
            common.lang = Some(attr.value);
            continue;
        }
        common.extra.push(attr);
    }
    Ok(common)
}

/// Rewrite `el` and its descendants in namespace `from` to namespace `to`, stopping at
/// elements in other namespaces (whose content keeps its own namespaces, e.g. a forwarded
/// `jabber:client` message inside a foreign wrapper). Iterative: depth is input-controlled.
fn rename_ns(el: &mut Element, from: &str, to: &str) {
    if from == to || el.ns != from {
        return;
    }
    let mut stack: Vec<&mut Element> = vec![el];
    while let Some(e) = stack.pop() {
        e.ns = to.into();
        for child in e.elements_mut() {
            if child.ns == from {
                stack.push(child);
            }
        }
    }
}

/// The child elements (text dropped: stanzas have no mixed content), with those in
/// either stanza namespace renamed to the canonical [`NS_CLIENT`]. Both count: a
/// `jabber:server` element inside a `jabber:client` stanza would otherwise read back
/// differently after the stanza is written into a `jabber:server` stream (found by fuzzing).
fn child_elements(el: Element) -> Vec<Element> {
    let mut out = Vec::with_capacity(el.children.len());
    for node in el.children {
        if let Node::Element(mut child) = node {
            canonical_ns(&mut child);
            out.push(child);
        }
    }
    out
}

/// Rename `el` and its descendants in `jabber:client` or `jabber:server` to
/// [`NS_CLIENT`], stopping at elements in other namespaces. Iterative: depth is
/// input-controlled.
fn canonical_ns(el: &mut Element) {
    let is_stanza_ns = |ns: &str| ns == NS_CLIENT || ns == NS_SERVER;
    if !is_stanza_ns(&el.ns) {
        return;
    }
    let mut stack: Vec<&mut Element> = vec![el];
    while let Some(e) = stack.pop() {
        e.ns = NS_CLIENT.into();
        for child in e.elements_mut() {
            if is_stanza_ns(&child.ns) {
                stack.push(child);
            }
        }
    }
}

/// Remove and parse the last `<error/>` child (already in [`NS_CLIENT`]): serialization
/// writes the error after the payloads / echoed original, so taking the last one keeps any
/// other `<error/>` child where it was and the round trip exact (found by fuzzing).
fn take_error(children: &mut Vec<Element>) -> StanzaError {
    match children.iter().rposition(|c| c.is("error", NS_CLIENT)) {
        Some(pos) => StanzaError::from_element(&children.remove(pos)),
        // RFC 6120 §8.3.1 requires the child; tolerate its absence rather than lose the stanza.
        None => StanzaError::new(DefinedCondition::UndefinedCondition),
    }
}

impl TryFrom<Element> for Stanza {
    type Error = StanzaParseError;

    fn try_from(mut el: Element) -> Result<Stanza, StanzaParseError> {
        if el.ns != NS_CLIENT && el.ns != NS_SERVER {
            return Err(fail(&el, StanzaParseErrorKind::NotAStanza));
        }
        match el.name.as_str() {
            "message" => {
                let c = take_common(&mut el)?;
                let type_ = MessageType::from_attr(c.type_.as_deref());
                let mut payloads = child_elements(el);
                let error = (type_ == MessageType::Error).then(|| take_error(&mut payloads));
                Ok(Stanza::Message(Message {
                    from: c.from,
                    to: c.to,
                    id: c.id,
                    lang: c.lang,
                    type_,
                    error,
                    payloads,
                    extra_attrs: c.extra,
                }))
            }
            "presence" => {
                let Some(type_) = PresenceType::from_attr(el.attr("type")) else {
                    return Err(fail(&el, StanzaParseErrorKind::UnknownType));
                };
                let c = take_common(&mut el)?;
                let mut payloads = child_elements(el);
                let error = (type_ == PresenceType::Error).then(|| take_error(&mut payloads));
                Ok(Stanza::Presence(Presence {
                    from: c.from,
                    to: c.to,
                    id: c.id,
                    lang: c.lang,
                    type_,
                    error,
                    payloads,
                    extra_attrs: c.extra,
                }))
            }
            "iq" => parse_iq(el).map(Stanza::Iq),
            _ => Err(fail(&el, StanzaParseErrorKind::NotAStanza)),
        }
    }
}

fn parse_iq(mut el: Element) -> Result<Iq, StanzaParseError> {
    #[derive(PartialEq)]
    enum Kind {
        Get,
        Set,
        Result,
        Error,
    }
    let kind = match el.attr("type") {
        None => return Err(fail(&el, StanzaParseErrorKind::MissingIqType)),
        Some("get") => Kind::Get,
        Some("set") => Kind::Set,
        Some("result") => Kind::Result,
        Some("error") => Kind::Error,
        Some(_) => return Err(fail(&el, StanzaParseErrorKind::UnknownType)),
    };
    if el.attr("id").is_none() {
        return Err(fail(&el, StanzaParseErrorKind::MissingIqId));
    }
    let count = el.elements().count();
    let count_ok = match kind {
        Kind::Get | Kind::Set => count == 1,
        Kind::Result => count <= 1,
        Kind::Error => true,
    };
    if !count_ok {
        return Err(fail(
            &el,
            StanzaParseErrorKind::IqChildCount { found: count },
        ));
    }
    let c = take_common(&mut el)?;
    let mut children = child_elements(el);
    let payload = match (kind, children.pop()) {
        (Kind::Get, Some(child)) => IqPayload::Get(child),
        (Kind::Set, Some(child)) => IqPayload::Set(child),
        (Kind::Error, last) => {
            children.extend(last);
            let error = take_error(&mut children);
            // Tolerant: a peer that echoes more than one element still gets its error
            // delivered; only the first echoed element is kept.
            let original = children.into_iter().next();
            IqPayload::Error { error, original }
        }
        // Get/Set have exactly one child (checked above), so this is a result.
        (_, child) => IqPayload::Result(child),
    };
    Ok(Iq {
        from: c.from,
        to: c.to,
        // Checked present above; take_common moved it into `c.id`.
        id: c.id.unwrap_or_default(),
        lang: c.lang,
        payload,
        extra_attrs: c.extra,
    })
}

// ---------------------------------------------------------------------------------------
// Serialization

/// Write the common attributes in a fixed order: from, to, id, type, xml:lang, extras.
fn write_common(
    el: &mut Element,
    from: Option<Jid>,
    to: Option<Jid>,
    id: Option<String>,
    type_: Option<&str>,
    lang: Option<String>,
    extra: Vec<Attr>,
) {
    el.attrs.reserve(5 + extra.len());
    if let Some(from) = from {
        el.attrs.push(plain_attr("from", from.to_string()));
    }
    if let Some(to) = to {
        el.attrs.push(plain_attr("to", to.to_string()));
    }
    if let Some(id) = id {
        el.attrs.push(plain_attr("id", id));
    }
    if let Some(t) = type_ {
        el.attrs.push(plain_attr("type", t.into()));
    }
    if let Some(lang) = lang {
        el.attrs.push(Attr {
            ns: XML_NS.into(),
            name: "lang".into(),
            value: lang,
        });
    }
    // An extra attribute that duplicates a common one (only possible if the caller built
    // it so) is dropped: a duplicate attribute would make the output not well-formed.
    for attr in extra {
        if !el
            .attrs
            .iter()
            .any(|a| a.ns == attr.ns && a.name == attr.name)
        {
            el.attrs.push(attr);
        }
    }
}

fn plain_attr(name: &str, value: String) -> Attr {
    Attr {
        ns: String::new(),
        name: name.into(),
        value,
    }
}

/// Append payloads, moving [`NS_CLIENT`] ones into `ns`.
fn push_payloads(el: &mut Element, payloads: Vec<Element>, ns: &str) {
    el.children.reserve(payloads.len() + 1);
    for mut p in payloads {
        rename_ns(&mut p, NS_CLIENT, ns);
        el.children.push(Node::Element(p));
    }
}

fn error_element(error: Option<&StanzaError>, ns: &str) -> Element {
    match error {
        Some(e) => e.to_element(ns),
        None => StanzaError::new(DefinedCondition::UndefinedCondition).to_element(ns),
    }
}

impl Message {
    /// The element in namespace `ns` (`jabber:client` or `jabber:server`).
    pub fn into_element(self, ns: &str) -> Element {
        let mut el = Element::new("message", ns);
        write_common(
            &mut el,
            self.from,
            self.to,
            self.id,
            self.type_.as_attr(),
            self.lang,
            self.extra_attrs,
        );
        push_payloads(&mut el, self.payloads, ns);
        if self.type_ == MessageType::Error {
            el.children
                .push(Node::Element(error_element(self.error.as_ref(), ns)));
        }
        el
    }

    /// The `<body/>` text: the one whose `xml:lang` matches the message's (or has none),
    /// else the first.
    pub fn body(&self) -> Option<String> {
        let mut first = None;
        for b in self.payloads.iter().filter(|p| p.is("body", NS_CLIENT)) {
            match b.lang() {
                None => return Some(b.text()),
                Some(l) if Some(l) == self.lang.as_deref() => return Some(b.text()),
                Some(_) => first = first.or(Some(b)),
            }
        }
        first.map(Element::text)
    }

    /// A message of this type to `to` with a `<body/>`.
    pub fn with_body(type_: MessageType, to: Option<Jid>, body: impl Into<String>) -> Message {
        Message {
            to,
            type_,
            payloads: vec![Element::new("body", NS_CLIENT).with_text(body)],
            ..Message::default()
        }
    }

    /// The error reply (swapped addresses, same id), or `None` for an error message. The
    /// original payloads are not echoed (RFC 6120 §8.3.1 makes it optional, and bouncing a
    /// body back only doubles the traffic).
    pub fn error_reply(&self, error: StanzaError) -> Option<Message> {
        if self.type_ == MessageType::Error {
            return None;
        }
        Some(Message {
            from: self.to.clone(),
            to: self.from.clone(),
            id: self.id.clone(),
            type_: MessageType::Error,
            error: Some(error),
            ..Message::default()
        })
    }
}

impl Presence {
    /// The element in namespace `ns` (`jabber:client` or `jabber:server`).
    pub fn into_element(self, ns: &str) -> Element {
        let mut el = Element::new("presence", ns);
        write_common(
            &mut el,
            self.from,
            self.to,
            self.id,
            self.type_.as_attr(),
            self.lang,
            self.extra_attrs,
        );
        push_payloads(&mut el, self.payloads, ns);
        if self.type_ == PresenceType::Error {
            el.children
                .push(Node::Element(error_element(self.error.as_ref(), ns)));
        }
        el
    }

    /// A presence of this type with nothing else.
    pub fn new(type_: PresenceType) -> Presence {
        Presence {
            type_,
            ..Presence::default()
        }
    }

    /// The `<priority/>` value (RFC 6121 §4.7.2.3): 0 when absent or not an integer in
    /// -128..=127.
    pub fn priority(&self) -> i8 {
        self.payloads
            .iter()
            .find(|p| p.is("priority", NS_CLIENT))
            .and_then(|p| p.text().trim().parse::<i8>().ok())
            .unwrap_or(0)
    }

    /// The `<show/>` value of the first `<show/>`; `None` when there is none or its value is
    /// none of `away`, `chat`, `dnd`, `xa` (draft 7.4.2.1: other values are ignored, so
    /// the presence reads as plainly available).
    pub fn show(&self) -> Option<Show> {
        self.payloads
            .iter()
            .find(|p| p.is("show", NS_CLIENT))
            .and_then(|p| Show::from_text(p.text().trim()))
    }

    /// The error reply (swapped addresses, same id), or `None` for an error presence.
    pub fn error_reply(&self, error: StanzaError) -> Option<Presence> {
        if self.type_ == PresenceType::Error {
            return None;
        }
        Some(Presence {
            from: self.to.clone(),
            to: self.from.clone(),
            id: self.id.clone(),
            type_: PresenceType::Error,
            error: Some(error),
            ..Presence::default()
        })
    }
}

impl Iq {
    /// A get request.
    pub fn get(id: impl Into<String>, payload: Element) -> Iq {
        Iq::with_payload(id, IqPayload::Get(payload))
    }

    /// A set request.
    pub fn set(id: impl Into<String>, payload: Element) -> Iq {
        Iq::with_payload(id, IqPayload::Set(payload))
    }

    /// An iq with this id and content, no addresses.
    pub fn with_payload(id: impl Into<String>, payload: IqPayload) -> Iq {
        Iq {
            from: None,
            to: None,
            id: id.into(),
            lang: None,
            payload,
            extra_attrs: Vec::new(),
        }
    }

    /// Builder: set the recipient.
    #[must_use]
    pub fn with_to(mut self, to: Jid) -> Iq {
        self.to = Some(to);
        self
    }

    /// Builder: set the sender.
    #[must_use]
    pub fn with_from(mut self, from: Jid) -> Iq {
        self.from = Some(from);
        self
    }

    /// A result for this iq: addresses swapped, same id.
    pub fn result(&self, payload: Option<Element>) -> Iq {
        Iq {
            from: self.to.clone(),
            to: self.from.clone(),
            id: self.id.clone(),
            lang: None,
            payload: IqPayload::Result(payload),
            extra_attrs: Vec::new(),
        }
    }

    /// An error reply: addresses swapped, same id, the request's child echoed (RFC 6120
    /// §8.3.1 allows it and clients use it to match). `None` for a result or error: those
    /// are never answered (RFC 6120 §8.2.3).
    pub fn error_reply(&self, error: StanzaError) -> Option<Iq> {
        let original = self.payload.request()?.clone();
        Some(Iq {
            from: self.to.clone(),
            to: self.from.clone(),
            id: self.id.clone(),
            lang: None,
            payload: IqPayload::Error {
                error,
                original: Some(original),
            },
            extra_attrs: Vec::new(),
        })
    }

    /// [`error_reply`](Self::error_reply) for an iq the caller no longer needs: moves the
    /// request child into the reply instead of cloning it.
    pub fn into_error_reply(self, error: StanzaError) -> Option<Iq> {
        let original = match self.payload {
            IqPayload::Get(e) | IqPayload::Set(e) => e,
            IqPayload::Result(_) | IqPayload::Error { .. } => return None,
        };
        Some(Iq {
            from: self.to,
            to: self.from,
            id: self.id,
            lang: None,
            payload: IqPayload::Error {
                error,
                original: Some(original),
            },
            extra_attrs: Vec::new(),
        })
    }

    /// The element in namespace `ns` (`jabber:client` or `jabber:server`).
    pub fn into_element(self, ns: &str) -> Element {
        let mut el = Element::new("iq", ns);
        write_common(
            &mut el,
            self.from,
            self.to,
            Some(self.id),
            Some(self.payload.type_str()),
            self.lang,
            self.extra_attrs,
        );
        let push = |el: &mut Element, mut child: Element| {
            rename_ns(&mut child, NS_CLIENT, ns);
            el.children.push(Node::Element(child));
        };
        match self.payload {
            IqPayload::Get(child) | IqPayload::Set(child) | IqPayload::Result(Some(child)) => {
                push(&mut el, child);
            }
            IqPayload::Result(None) => {}
            IqPayload::Error { error, original } => {
                if let Some(child) = original {
                    push(&mut el, child);
                }
                el.children.push(Node::Element(error.to_element(ns)));
            }
        }
        el
    }
}

impl Stanza {
    /// The element in namespace `ns` (`jabber:client` or `jabber:server`).
    pub fn into_element(self, ns: &str) -> Element {
        match self {
            Stanza::Message(m) => m.into_element(ns),
            Stanza::Presence(p) => p.into_element(ns),
            Stanza::Iq(i) => i.into_element(ns),
        }
    }

    /// The error reply to this stanza (addresses swapped, same id, type `error`; an iq's
    /// request child is echoed). `None` if this stanza is an error, or an iq result: an
    /// error is never answered with an error, and responses are never answered.
    pub fn error_reply(&self, err: StanzaError) -> Option<Stanza> {
        match self {
            Stanza::Message(m) => m.error_reply(err).map(Stanza::Message),
            Stanza::Presence(p) => p.error_reply(err).map(Stanza::Presence),
            Stanza::Iq(i) => i.error_reply(err).map(Stanza::Iq),
        }
    }

    /// The element name: `message`, `presence` or `iq`.
    pub fn name(&self) -> &'static str {
        match self {
            Stanza::Message(_) => "message",
            Stanza::Presence(_) => "presence",
            Stanza::Iq(_) => "iq",
        }
    }

    /// The sender (`from`).
    pub fn from_jid(&self) -> Option<&Jid> {
        match self {
            Stanza::Message(m) => m.from.as_ref(),
            Stanza::Presence(p) => p.from.as_ref(),
            Stanza::Iq(i) => i.from.as_ref(),
        }
    }

    /// The recipient (`to`).
    pub fn to_jid(&self) -> Option<&Jid> {
        match self {
            Stanza::Message(m) => m.to.as_ref(),
            Stanza::Presence(p) => p.to.as_ref(),
            Stanza::Iq(i) => i.to.as_ref(),
        }
    }

    /// Set the sender (servers stamp it on stanzas from clients, RFC 6120 §8.1.2.1).
    pub fn set_from(&mut self, from: Option<Jid>) {
        match self {
            Stanza::Message(m) => m.from = from,
            Stanza::Presence(p) => p.from = from,
            Stanza::Iq(i) => i.from = from,
        }
    }

    /// Set the recipient.
    pub fn set_to(&mut self, to: Option<Jid>) {
        match self {
            Stanza::Message(m) => m.to = to,
            Stanza::Presence(p) => p.to = to,
            Stanza::Iq(i) => i.to = to,
        }
    }

    /// The `id` attribute.
    pub fn id(&self) -> Option<&str> {
        match self {
            Stanza::Message(m) => m.id.as_deref(),
            Stanza::Presence(p) => p.id.as_deref(),
            Stanza::Iq(i) => Some(&i.id),
        }
    }

    /// Whether this is a stanza of type `error`.
    pub fn is_error(&self) -> bool {
        match self {
            Stanza::Message(m) => m.type_ == MessageType::Error,
            Stanza::Presence(p) => p.type_ == PresenceType::Error,
            Stanza::Iq(i) => matches!(i.payload, IqPayload::Error { .. }),
        }
    }

    /// The error carried by an error stanza.
    pub fn error(&self) -> Option<&StanzaError> {
        match self {
            Stanza::Message(m) if m.type_ == MessageType::Error => m.error.as_ref(),
            Stanza::Presence(p) if p.type_ == PresenceType::Error => p.error.as_ref(),
            Stanza::Iq(Iq {
                payload: IqPayload::Error { error, .. },
                ..
            }) => Some(error),
            _ => None,
        }
    }
}

impl From<Message> for Stanza {
    fn from(m: Message) -> Stanza {
        Stanza::Message(m)
    }
}

impl From<Presence> for Stanza {
    fn from(p: Presence) -> Stanza {
        Stanza::Presence(p)
    }
}

impl From<Iq> for Stanza {
    fn from(i: Iq) -> Stanza {
        Stanza::Iq(i)
    }
}
