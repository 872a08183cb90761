//! The roster model (RFC 6121 §2, §3, Appendix A): items, subscription states
//! and their transitions, as pure values. The server stores one roster per
//! account and applies these transitions under a per-account lock.

use elsinore_jid::BareJid;
use elsinore_stanza::{NS_CLIENT, NS_ROSTER};
use elsinore_xml::{Element, XML_NS, XmlLimits};

/// Most items one roster holds.
pub const MAX_ITEMS: usize = 1000;
/// Most groups one item is in.
pub const MAX_GROUPS: usize = 32;
/// Longest item name or group name, in bytes.
pub const MAX_NAME_BYTES: usize = 1023;
/// Most inbound subscription requests kept waiting for an answer.
pub const MAX_PENDING_IN: usize = 1000;
/// Longest XEP-0172 nickname kept with a subscription stanza, in bytes; a longer one is
/// dropped (the stanza goes on without it).
pub const MAX_NICK_BYTES: usize = 1023;
/// XEP-0172 User Nickname.
pub const NS_NICK: &str = "http://jabber.org/protocol/nick";
/// Most `<status/>` elements kept of one subscription stanza (RFC 6121 allows one per
/// language); further ones are dropped.
pub const MAX_STATUSES: usize = 8;
/// Most bytes of status text and `xml:lang` values, all statuses of one subscription
/// stanza together; a status that would take the total past it is dropped. With
/// [`MAX_PENDING_IN`] this bounds what waiting requests add to a stored roster.
pub const MAX_STATUS_BYTES: usize = 4096;

/// The subscription part of a roster item's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Subscription {
    /// Neither side sees the other's presence.
    #[default]
    None,
    /// The user sees the contact's presence.
    To,
    /// The contact sees the user's presence.
    From,
    /// Both.
    Both,
}

impl Subscription {
    /// The `subscription` attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Subscription::None => "none",
            Subscription::To => "to",
            Subscription::From => "from",
            Subscription::Both => "both",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "none" => Subscription::None,
            "to" => Subscription::To,
            "from" => Subscription::From,
            "both" => Subscription::Both,
            _ => return None,
        })
    }

    /// The user receives the contact's presence.
    pub fn has_to(self) -> bool {
        matches!(self, Subscription::To | Subscription::Both)
    }

    /// The contact receives the user's presence.
    pub fn has_from(self) -> bool {
        matches!(self, Subscription::From | Subscription::Both)
    }

    fn with_to(self, on: bool) -> Self {
        Self::from_flags(on, self.has_from())
    }

    fn with_from(self, on: bool) -> Self {
        Self::from_flags(self.has_to(), on)
    }

    fn from_flags(to: bool, from: bool) -> Self {
        match (to, from) {
            (false, false) => Subscription::None,
            (true, false) => Subscription::To,
            (false, true) => Subscription::From,
            (true, true) => Subscription::Both,
        }
    }
}

/// One contact on the roster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// The contact.
    pub jid: BareJid,
    /// Display name chosen by the user.
    pub name: Option<String>,
    /// Groups, in the order the user gave them.
    pub groups: Vec<String>,
    /// Subscription state.
    pub subscription: Subscription,
    /// The user asked to see the contact's presence and waits ("Pending Out").
    pub ask: bool,
}

impl Item {
    pub(crate) fn new(jid: BareJid) -> Self {
        Item {
            jid,
            name: None,
            groups: Vec::new(),
            subscription: Subscription::None,
            ask: false,
        }
    }

    /// The `<item/>` as sent in roster results and pushes.
    pub fn to_element(&self) -> Element {
        let mut el = Element::new("item", NS_ROSTER)
            .with_attr("jid", self.jid.to_string())
            .with_attr("subscription", self.subscription.as_str());
        if let Some(n) = &self.name {
            el.set_attr("name", n.clone());
        }
        if self.ask {
            el.set_attr("ask", "subscribe");
        }
        for g in &self.groups {
            el = el.with_child(Element::new("group", NS_ROSTER).with_text(g.clone()));
        }
        el
    }
}

/// One `<status/>` of a subscription stanza (RFC 6121 3.1.1, 4.7.2.2): its text and
/// its language, kept with a request that waits for an answer and delivered with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The `xml:lang` that applies: the element's own, else the stanza's (RFC 6120
    /// 8.1.5); `None` when neither has one.
    pub lang: Option<String>,
    /// The direct text; markup inside is not kept (draft-ietf-xmpp-core-11 7.4.2.2).
    pub text: String,
}

impl Status {
    /// The `<status/>` children of a presence stanza, in order, within [`MAX_STATUSES`]
    /// and [`MAX_STATUS_BYTES`]: those past either bound are dropped.
    pub fn from_presence(presence: &Element) -> Vec<Status> {
        let mut kept = Vec::new();
        let mut bytes = 0;
        for el in presence.elements().filter(|e| e.is("status", NS_CLIENT)) {
            if kept.len() == MAX_STATUSES {
                break;
            }
            let lang = el.lang().or(presence.lang());
            let text = el.text();
            let size = text.len() + lang.map_or(0, str::len);
            if bytes + size > MAX_STATUS_BYTES {
                continue;
            }
            bytes += size;
            kept.push(Status {
                lang: lang.map(str::to_string),
                text,
            });
        }
        kept
    }

    /// The `<status/>` of a presence stanza in `jabber:client`: the text, and an
    /// `xml:lang` when it has a language.
    pub fn to_element(&self) -> Element {
        self.to_element_in(NS_CLIENT)
    }

    fn to_element_in(&self, ns: &str) -> Element {
        let mut el = Element::new("status", ns).with_text(self.text.clone());
        if let Some(lang) = &self.lang {
            el.set_attr_ns(XML_NS, "lang", lang.clone());
        }
        el
    }
}

/// What a subscription stanza carries to the contact besides its type: its statuses and
/// the sender's XEP-0172 nickname (§4.2: a client includes it in a subscription request so
/// the contact sees who asks). Kept with a request that waits, delivered with it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SubPayload {
    /// The stanza's `<status/>` elements, within the bounds of [`Status::from_presence`].
    pub statuses: Vec<Status>,
    /// The `<nick/>` text, at most [`MAX_NICK_BYTES`].
    pub nick: Option<String>,
}

impl SubPayload {
    /// What `presence` (a subscription stanza) carries.
    pub fn from_presence(presence: &Element) -> SubPayload {
        let nick = presence
            .get_child("nick", NS_NICK)
            .map(Element::text)
            .filter(|n| !n.is_empty() && n.len() <= MAX_NICK_BYTES);
        SubPayload {
            statuses: Status::from_presence(presence),
            nick,
        }
    }

    /// The subscription stanza of `kind` from `from` (in `jabber:client`, no `to`), with
    /// this payload's statuses and nickname.
    pub fn presence(&self, kind: SubKind, from: &BareJid) -> Element {
        let mut presence = Element::new("presence", NS_CLIENT)
            .with_attr("type", kind.as_type())
            .with_attr("from", from.to_string());
        for s in &self.statuses {
            presence = presence.with_child(s.to_element());
        }
        if let Some(nick) = &self.nick {
            presence = presence.with_child(Element::new("nick", NS_NICK).with_text(nick.clone()));
        }
        presence
    }
}

/// A stored roster: the items, plus inbound subscription requests not yet
/// answered ("Pending In"), which are not roster items (RFC 6121 3.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Roster {
    /// Items in insertion order.
    pub items: Vec<Item>,
    /// Contacts waiting for the user's answer, with the statuses and nickname they sent.
    pub pending_in: Vec<(BareJid, SubPayload)>,
    /// Version counter, bumped on every change (XEP-0237 style `ver`).
    pub version: u64,
}

/// Why a roster set is refused (the stanza error to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// Malformed item (RFC 6121 2.3.3: `bad-request`).
    BadRequest,
    /// An empty or oversized group or name (`not-acceptable`).
    NotAcceptable,
    /// The user's own JID, or the roster is full (`not-allowed`).
    NotAllowed,
    /// Removing an item that is not there (`item-not-found`).
    ItemNotFound,
}

/// What a roster set asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SetRequest {
    /// Add or update the item (name and groups only; subscription is not the client's to set).
    Update {
        /// The contact.
        jid: BareJid,
        /// New name.
        name: Option<String>,
        /// New groups.
        groups: Vec<String>,
    },
    /// `subscription='remove'`.
    Remove(BareJid),
}

/// Subscription-related presence types (RFC 6121 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubKind {
    /// Request to see the other's presence.
    Subscribe,
    /// Approval of a request.
    Subscribed,
    /// Cancel one's own subscription.
    Unsubscribe,
    /// Cancel or deny the other's subscription.
    Unsubscribed,
}

impl SubKind {
    /// From a presence `type` attribute.
    pub fn from_type(t: &str) -> Option<Self> {
        Some(match t {
            "subscribe" => SubKind::Subscribe,
            "subscribed" => SubKind::Subscribed,
            "unsubscribe" => SubKind::Unsubscribe,
            "unsubscribed" => SubKind::Unsubscribed,
            _ => return None,
        })
    }

    /// The presence `type` attribute.
    pub fn as_type(self) -> &'static str {
        match self {
            SubKind::Subscribe => "subscribe",
            SubKind::Subscribed => "subscribed",
            SubKind::Unsubscribe => "unsubscribe",
            SubKind::Unsubscribed => "unsubscribed",
        }
    }
}

/// The effect of an inbound subscription stanza on the receiver's roster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// Ignore the stanza (no state change, nothing delivered).
    Ignore,
    /// Deliver it to the receiver's available resources (state may have changed).
    Deliver,
    /// Answer `subscribed` on the receiver's behalf (already subscribed, RFC 6121 3.1.3).
    AutoReplySubscribed,
}

impl Roster {
    /// The item for `jid`.
    pub fn get(&self, jid: &BareJid) -> Option<&Item> {
        self.items.iter().find(|i| &i.jid == jid)
    }

    fn get_mut(&mut self, jid: &BareJid) -> Option<&mut Item> {
        self.items.iter_mut().find(|i| &i.jid == jid)
    }

    fn get_or_add(&mut self, jid: &BareJid) -> Result<&mut Item, SetError> {
        if let Some(pos) = self.items.iter().position(|i| &i.jid == jid) {
            return Ok(&mut self.items[pos]);
        }
        if self.items.len() >= MAX_ITEMS {
            return Err(SetError::NotAllowed);
        }
        self.items.push(Item::new(jid.clone()));
        let last = self.items.len() - 1;
        Ok(&mut self.items[last])
    }

    /// Contacts that receive the user's presence (subscription from/both).
    pub fn presence_subscribers(&self) -> impl Iterator<Item = &BareJid> {
        self.items
            .iter()
            .filter(|i| i.subscription.has_from())
            .map(|i| &i.jid)
    }

    /// Contacts whose presence the user receives (subscription to/both).
    pub fn presence_sources(&self) -> impl Iterator<Item = &BareJid> {
        self.items
            .iter()
            .filter(|i| i.subscription.has_to())
            .map(|i| &i.jid)
    }

    /// The `<query xmlns='jabber:iq:roster'/>` result.
    pub fn to_query(&self) -> Element {
        let mut q = Element::new("query", NS_ROSTER).with_attr("ver", self.version.to_string());
        for i in &self.items {
            q = q.with_child(i.to_element());
        }
        q
    }

    /// Parse the payload of a roster set (RFC 6121 2.3.2: exactly one item).
    pub fn parse_set(query: &Element, owner: &BareJid) -> Result<SetRequest, SetError> {
        let mut items = query.elements().filter(|e| e.is("item", NS_ROSTER));
        let (Some(item), None) = (items.next(), items.next()) else {
            return Err(SetError::BadRequest);
        };
        let jid = item
            .attr("jid")
            .and_then(|j| BareJid::parse(j).ok())
            .ok_or(SetError::BadRequest)?;
        if &jid == owner {
            return Err(SetError::NotAllowed);
        }
        if item.attr("subscription") == Some("remove") {
            return Ok(SetRequest::Remove(jid));
        }
        let name = item
            .attr("name")
            .map(str::to_string)
            .filter(|n| !n.is_empty());
        if name.as_ref().is_some_and(|n| n.len() > MAX_NAME_BYTES) {
            return Err(SetError::NotAcceptable);
        }
        let mut groups: Vec<String> = Vec::new();
        for g in item.elements().filter(|e| e.is("group", NS_ROSTER)) {
            let g = g.text();
            if g.is_empty() || g.len() > MAX_NAME_BYTES {
                return Err(SetError::NotAcceptable);
            }
            if groups.contains(&g) {
                return Err(SetError::BadRequest);
            }
            groups.push(g);
        }
        if groups.len() > MAX_GROUPS {
            return Err(SetError::NotAcceptable);
        }
        Ok(SetRequest::Update { jid, name, groups })
    }

    /// Apply a roster set. `Ok(Some(item))` is the item to push (for a remove:
    /// the removed item with subscription `remove` semantics left to the caller).
    pub fn apply_set(&mut self, req: &SetRequest) -> Result<Item, SetError> {
        match req {
            SetRequest::Update { jid, name, groups } => {
                let item = self.get_or_add(jid)?;
                item.name = name.clone();
                item.groups = groups.clone();
                let out = item.clone();
                self.version += 1;
                Ok(out)
            }
            SetRequest::Remove(jid) => {
                let pos = self
                    .items
                    .iter()
                    .position(|i| &i.jid == jid)
                    .ok_or(SetError::ItemNotFound)?;
                let item = self.items.remove(pos);
                self.pending_in.retain(|(j, _)| j != jid);
                self.version += 1;
                Ok(item)
            }
        }
    }

    /// The user sends a subscription stanza to `contact` (RFC 6121 Appendix A.2).
    /// Returns whether the stanza is routed to the contact and the changed item to push.
    pub fn outbound(&mut self, kind: SubKind, contact: &BareJid) -> (bool, Option<Item>) {
        let before = self.get(contact).cloned();
        let route = match kind {
            SubKind::Subscribe => {
                let Ok(item) = self.get_or_add(contact) else {
                    return (false, None);
                };
                if !item.subscription.has_to() {
                    item.ask = true;
                }
                true
            }
            SubKind::Subscribed => {
                let pending = self.pending_in.iter().any(|(j, _)| j == contact);
                if !pending {
                    // No pre-approval support: an unsolicited approval is ignored (RFC 6121 3.4).
                    return (false, None);
                }
                self.pending_in.retain(|(j, _)| j != contact);
                let Ok(item) = self.get_or_add(contact) else {
                    return (false, None);
                };
                item.subscription = item.subscription.with_from(true);
                true
            }
            SubKind::Unsubscribe => {
                if let Some(item) = self.get_mut(contact) {
                    item.subscription = item.subscription.with_to(false);
                    item.ask = false;
                }
                true
            }
            SubKind::Unsubscribed => {
                let had_pending = self.pending_in.iter().any(|(j, _)| j == contact);
                self.pending_in.retain(|(j, _)| j != contact);
                let had_from = self.get(contact).is_some_and(|i| i.subscription.has_from());
                if let Some(item) = self.get_mut(contact) {
                    item.subscription = item.subscription.with_from(false);
                }
                had_pending || had_from
            }
        };
        let after = self.get(contact).cloned();
        let changed = after != before;
        if changed {
            self.version += 1;
        }
        (route, if changed { after } else { None })
    }

    /// A subscription stanza from `contact` arrives for the user (RFC 6121 Appendix A.3).
    /// Returns what to do with it and the changed item to push.
    pub fn inbound(
        &mut self,
        kind: SubKind,
        contact: &BareJid,
        payload: &SubPayload,
    ) -> (Inbound, Option<Item>) {
        let before = self.get(contact).cloned();
        let pending_before = self.pending_in.len();
        let action = match kind {
            SubKind::Subscribe => {
                if self.get(contact).is_some_and(|i| i.subscription.has_from()) {
                    Inbound::AutoReplySubscribed
                } else {
                    if !self.pending_in.iter().any(|(j, _)| j == contact) {
                        if self.pending_in.len() >= MAX_PENDING_IN {
                            return (Inbound::Ignore, None);
                        }
                        self.pending_in.push((contact.clone(), payload.clone()));
                    }
                    Inbound::Deliver
                }
            }
            SubKind::Subscribed => match self.get_mut(contact) {
                Some(item) if item.ask => {
                    item.ask = false;
                    item.subscription = item.subscription.with_to(true);
                    Inbound::Deliver
                }
                _ => Inbound::Ignore,
            },
            SubKind::Unsubscribe => {
                let had_pending = self.pending_in.iter().any(|(j, _)| j == contact);
                self.pending_in.retain(|(j, _)| j != contact);
                match self.get_mut(contact) {
                    Some(item) if item.subscription.has_from() => {
                        item.subscription = item.subscription.with_from(false);
                        Inbound::Deliver
                    }
                    _ if had_pending => Inbound::Deliver,
                    _ => Inbound::Ignore,
                }
            }
            SubKind::Unsubscribed => match self.get_mut(contact) {
                Some(item) if item.subscription.has_to() || item.ask => {
                    item.subscription = item.subscription.with_to(false);
                    item.ask = false;
                    Inbound::Deliver
                }
                _ => Inbound::Ignore,
            },
        };
        let after = self.get(contact).cloned();
        let changed = after != before;
        if changed || self.pending_in.len() != pending_before {
            self.version += 1;
        }
        (action, if changed { after } else { None })
    }

    /// Encode for the store: the roster query plus pending requests, as XML. A request
    /// is `<pending jid='…'>` with one `<status/>` child per status (`xml:lang` kept) and
    /// the XEP-0172 `<nick/>` when it came with one.
    /// Before statuses had languages, a request kept one status as its own text; that
    /// text is still written (the first status's), so a server of that version reads
    /// the request as it did.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut q = self.to_query();
        for (jid, payload) in &self.pending_in {
            let mut p = Element::new("pending", NS_STORE).with_attr("jid", jid.to_string());
            if let Some(first) = payload.statuses.first().filter(|s| !s.text.is_empty()) {
                p = p.with_text(first.text.clone());
            }
            for s in &payload.statuses {
                p = p.with_child(s.to_element_in(NS_STORE));
            }
            // Earlier versions read only the statuses, and skip this.
            if let Some(nick) = &payload.nick {
                p = p.with_child(Element::new("nick", NS_NICK).with_text(nick.clone()));
            }
            q = q.with_child(p);
        }
        q.to_bytes()
    }

    /// Decode what [`Roster::to_bytes`] wrote, this version or an earlier one.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        let limits = XmlLimits {
            max_element_bytes: 64 << 20,
            ..XmlLimits::default()
        };
        let q = Element::parse_with_limits(bytes, limits).map_err(|e| e.to_string())?;
        if !q.is("query", NS_ROSTER) {
            return Err("not a stored roster".into());
        }
        let version = q.attr("ver").and_then(|v| v.parse().ok()).unwrap_or(0);
        let mut roster = Roster {
            version,
            ..Roster::default()
        };
        for el in q.elements() {
            if el.is("item", NS_ROSTER) {
                let jid = el
                    .attr("jid")
                    .and_then(|j| BareJid::parse(j).ok())
                    .ok_or("stored item without a valid jid")?;
                let subscription = el
                    .attr("subscription")
                    .and_then(Subscription::parse)
                    .ok_or("stored item without a valid subscription")?;
                roster.items.push(Item {
                    jid,
                    name: el.attr("name").map(str::to_string),
                    groups: el
                        .elements()
                        .filter(|g| g.is("group", NS_ROSTER))
                        .map(Element::text)
                        .collect(),
                    subscription,
                    ask: el.attr("ask") == Some("subscribe"),
                });
            } else if el.is("pending", NS_STORE) {
                let jid = el
                    .attr("jid")
                    .and_then(|j| BareJid::parse(j).ok())
                    .ok_or("stored request without a valid jid")?;
                let mut statuses: Vec<Status> = el
                    .elements()
                    .filter(|s| s.is("status", NS_STORE))
                    .map(|s| Status {
                        lang: s.lang().map(str::to_string),
                        text: s.text(),
                    })
                    .collect();
                let text = el.text();
                if statuses.is_empty() && !text.is_empty() {
                    // Written before statuses had languages: one status, its text only.
                    statuses.push(Status { lang: None, text });
                }
                let nick = el
                    .get_child("nick", NS_NICK)
                    .map(Element::text)
                    .filter(|n| !n.is_empty());
                roster.pending_in.push((jid, SubPayload { statuses, nick }));
            }
        }
        Ok(roster)
    }
}

/// Namespace of elsinore's own bookkeeping inside stored rosters.
const NS_STORE: &str = "urn:elsinore:roster-store:0";

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> BareJid {
        BareJid::parse(s).expect("valid")
    }

    #[test]
    fn full_subscription_handshake_both_sides() {
        let (romeo, juliet) = (j("romeo@montague.lit"), j("juliet@capulet.lit"));
        let mut r = Roster::default(); // romeo's
        let mut jr = Roster::default(); // juliet's
        // Romeo asks.
        let (route, push) = r.outbound(SubKind::Subscribe, &juliet);
        assert!(route);
        let pushed = push.expect("item added with ask");
        assert!(pushed.ask && pushed.subscription == Subscription::None);
        let hi = [Status {
            lang: None,
            text: "hi".into(),
        }];
        let (act, push) = jr.inbound(SubKind::Subscribe, &romeo, &carrying(&hi));
        assert_eq!(act, Inbound::Deliver);
        assert!(push.is_none(), "pending-in is not a roster item");
        assert_eq!(jr.pending_in, vec![(romeo.clone(), carrying(&hi))]);
        // Juliet approves.
        let (route, push) = jr.outbound(SubKind::Subscribed, &romeo);
        assert!(route);
        assert_eq!(push.expect("item").subscription, Subscription::From);
        assert!(jr.pending_in.is_empty());
        let (act, push) = r.inbound(SubKind::Subscribed, &juliet, &SubPayload::default());
        assert_eq!(act, Inbound::Deliver);
        let item = push.expect("changed");
        assert_eq!((item.subscription, item.ask), (Subscription::To, false));
        // A second subscribe from Romeo is answered automatically.
        let (act, _) = jr.inbound(SubKind::Subscribe, &romeo, &SubPayload::default());
        assert_eq!(act, Inbound::AutoReplySubscribed);
        // Juliet subscribes back: both.
        r.inbound(SubKind::Subscribe, &juliet, &SubPayload::default());
        r.outbound(SubKind::Subscribed, &juliet);
        jr.outbound(SubKind::Subscribe, &romeo);
        jr.inbound(SubKind::Subscribed, &romeo, &SubPayload::default());
        assert_eq!(
            r.get(&juliet).map(|i| i.subscription),
            Some(Subscription::Both)
        );
        assert_eq!(
            jr.get(&romeo).map(|i| i.subscription),
            Some(Subscription::Both)
        );
        // Romeo unsubscribes: his side loses `to`, hers loses `from`.
        r.outbound(SubKind::Unsubscribe, &juliet);
        jr.inbound(SubKind::Unsubscribe, &romeo, &SubPayload::default());
        assert_eq!(
            r.get(&juliet).map(|i| i.subscription),
            Some(Subscription::From)
        );
        assert_eq!(
            jr.get(&romeo).map(|i| i.subscription),
            Some(Subscription::To)
        );
    }

    #[test]
    fn unsolicited_subscribed_is_ignored_both_ways() {
        let mut r = Roster::default();
        let c = j("iago@venice.lit");
        assert_eq!(r.outbound(SubKind::Subscribed, &c), (false, None));
        assert_eq!(
            r.inbound(SubKind::Subscribed, &c, &SubPayload::default()),
            (Inbound::Ignore, None)
        );
        assert!(r.items.is_empty());
    }

    #[test]
    fn denial_clears_pending_in_and_routes() {
        let mut r = Roster::default();
        let c = j("iago@venice.lit");
        r.inbound(SubKind::Subscribe, &c, &SubPayload::default());
        let (route, _) = r.outbound(SubKind::Unsubscribed, &c);
        assert!(route);
        assert!(r.pending_in.is_empty());
        // Nothing to deny any more: not routed.
        assert!(!r.outbound(SubKind::Unsubscribed, &c).0);
    }

    #[test]
    fn roster_set_rules() {
        let owner = j("romeo@montague.lit");
        let parse = |xml: &str| {
            let q = Element::parse(xml.as_bytes()).expect("xml");
            Roster::parse_set(&q, &owner)
        };
        let ok = parse("<query xmlns='jabber:iq:roster'><item jid='Nurse@Capulet.lit' name='Nurse'><group>Servants</group></item></query>")
            .expect("valid");
        assert_eq!(
            ok,
            SetRequest::Update {
                jid: j("nurse@capulet.lit"),
                name: Some("Nurse".into()),
                groups: vec!["Servants".into()]
            }
        );
        assert_eq!(
            parse("<query xmlns='jabber:iq:roster'/>"),
            Err(SetError::BadRequest)
        );
        assert_eq!(
            parse("<query xmlns='jabber:iq:roster'><item jid='a@b'/><item jid='c@d'/></query>"),
            Err(SetError::BadRequest)
        );
        assert_eq!(
            parse("<query xmlns='jabber:iq:roster'><item jid='romeo@montague.lit'/></query>"),
            Err(SetError::NotAllowed)
        );
        assert_eq!(
            parse("<query xmlns='jabber:iq:roster'><item jid='a@b'><group/></item></query>"),
            Err(SetError::NotAcceptable)
        );
        assert_eq!(
            parse(
                "<query xmlns='jabber:iq:roster'><item jid='a@b'><group>x</group><group>x</group></item></query>"
            ),
            Err(SetError::BadRequest)
        );
        let mut r = Roster::default();
        assert_eq!(
            r.apply_set(&SetRequest::Remove(j("a@b"))),
            Err(SetError::ItemNotFound)
        );
        r.apply_set(&ok).expect("added");
        assert_eq!(r.items.len(), 1);
        r.apply_set(&SetRequest::Remove(j("nurse@capulet.lit")))
            .expect("removed");
        assert!(r.items.is_empty());
    }

    #[test]
    fn stored_form_round_trips() {
        let mut r = Roster::default();
        r.apply_set(&SetRequest::Update {
            jid: j("nurse@capulet.lit"),
            name: Some("The <Nurse> & co".into()),
            groups: vec!["A".into(), "B".into()],
        })
        .expect("added");
        r.outbound(SubKind::Subscribe, &j("nurse@capulet.lit"));
        let statuses = [
            status(Some("en"), "let me in"),
            status(Some("fr"), "laisse-moi <entrer> & co"),
            status(None, " "),
            status(Some(""), ""),
        ];
        let tybalt = SubPayload {
            nick: Some("Prince of <Cats> & co".into()),
            ..carrying(&statuses)
        };
        r.inbound(SubKind::Subscribe, &j("tybalt@capulet.lit"), &tybalt);
        r.inbound(
            SubKind::Subscribe,
            &j("iago@venice.lit"),
            &SubPayload::default(),
        );
        let only_empty = [status(Some("de"), "")];
        r.inbound(
            SubKind::Subscribe,
            &j("cassio@venice.lit"),
            &carrying(&only_empty),
        );
        let back = Roster::from_bytes(&r.to_bytes()).expect("decodes");
        assert_eq!(back, r);
        assert_eq!(back.pending_in[0].1, tybalt);
        assert_eq!(back.pending_in[1].1.nick, None);
        assert!(Roster::from_bytes(b"<x/>").is_err());
        assert!(Roster::from_bytes(b"garbage").is_err());
    }

    fn carrying(statuses: &[Status]) -> SubPayload {
        SubPayload {
            statuses: statuses.to_vec(),
            nick: None,
        }
    }

    fn status(lang: Option<&str>, text: &str) -> Status {
        Status {
            lang: lang.map(str::to_string),
            text: text.into(),
        }
    }

    /// A roster as the versions before statuses had languages wrote it: a waiting
    /// request's one status is the text of its `<pending/>`.
    #[test]
    fn stored_form_without_languages_still_decodes() {
        let old = b"<query xmlns='jabber:iq:roster' ver='3'>\
            <item jid='nurse@capulet.lit' subscription='none' ask='subscribe'/>\
            <pending xmlns='urn:elsinore:roster-store:0' jid='tybalt@capulet.lit'>let me &lt;in&gt;</pending>\
            <pending xmlns='urn:elsinore:roster-store:0' jid='iago@venice.lit'/>\
            </query>";
        let r = Roster::from_bytes(old).expect("decodes");
        assert_eq!(r.version, 3);
        assert_eq!(r.items.len(), 1);
        assert_eq!(
            r.pending_in,
            vec![
                (
                    j("tybalt@capulet.lit"),
                    carrying(&[status(None, "let me <in>")])
                ),
                (j("iago@venice.lit"), SubPayload::default()),
            ]
        );
        // Written again, it reads back the same.
        assert_eq!(Roster::from_bytes(&r.to_bytes()).expect("decodes"), r);
    }

    /// What the versions before statuses had languages read of a request stored now: the
    /// first status's text, as they kept it.
    #[test]
    fn stored_form_keeps_the_first_status_for_earlier_versions() {
        let mut r = Roster::default();
        let statuses = [
            status(Some("en"), "let me in"),
            status(Some("fr"), "entrer"),
        ];
        r.inbound(
            SubKind::Subscribe,
            &j("tybalt@capulet.lit"),
            &carrying(&statuses),
        );
        let q = Element::parse(&r.to_bytes()).expect("xml");
        let pending = q.get_child("pending", NS_STORE).expect("request stored");
        // The decoding of those versions: `Some(el.text()).filter(|s| !s.is_empty())`.
        assert_eq!(pending.text(), "let me in");
    }

    #[test]
    fn statuses_of_a_presence_keep_their_languages_within_bounds() {
        let p = Element::parse(
            b"<presence xmlns='jabber:client' xmlns:m='urn:x' xml:lang='en' type='subscribe'>\
              <status>Hello <m:b>there</m:b></status>\
              <status xml:lang='fr' m:style='x'>Bonjour</status>\
              <show>away</show><m:status>not one</m:status></presence>",
        )
        .expect("xml");
        assert_eq!(
            Status::from_presence(&p),
            vec![status(Some("en"), "Hello "), status(Some("fr"), "Bonjour")]
        );
        let el = status(Some("fr"), "Bonjour").to_element();
        assert!(el.is("status", NS_CLIENT));
        assert_eq!((el.lang(), el.text().as_str()), (Some("fr"), "Bonjour"));
        assert_eq!(el.attrs.len(), 1);
        assert!(status(None, "x").to_element().attrs.is_empty());

        // Past MAX_STATUSES: dropped.
        let mut many = Element::new("presence", NS_CLIENT);
        for i in 0..MAX_STATUSES + 2 {
            many = many.with_child(status(Some(&format!("x-{i}")), "hi").to_element());
        }
        let kept = Status::from_presence(&many);
        assert_eq!(kept.len(), MAX_STATUSES);
        assert_eq!(kept[MAX_STATUSES - 1].lang.as_deref(), Some("x-7"));

        // Past MAX_STATUS_BYTES: the one that does not fit is dropped, later ones that
        // fit are kept.
        let big = "a".repeat(MAX_STATUS_BYTES - 10);
        let p = Element::new("presence", NS_CLIENT)
            .with_child(status(Some("en"), &big).to_element())
            .with_child(status(Some("fr"), "0123456789").to_element())
            .with_child(status(Some("de"), "hallo").to_element());
        let kept = Status::from_presence(&p);
        assert_eq!(
            kept,
            vec![status(Some("en"), &big), status(Some("de"), "hallo")]
        );
        let sizes: usize = kept
            .iter()
            .map(|s| s.text.len() + s.lang.as_ref().map_or(0, String::len))
            .sum();
        assert!(sizes <= MAX_STATUS_BYTES);
    }
}
