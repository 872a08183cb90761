//! Chat room bookmarks kept consistent across the three places clients look for them, as
//! pure functions over values:
//!
//! - XEP-0048 `<storage xmlns='storage:bookmarks'>` in XEP-0049 private XML
//!   ([`crate::private::key`] of [`NS_LEGACY`]);
//! - the same `<storage/>` as item `current` of the PEP node `storage:bookmarks`
//!   (XEP-0048 §3 over XEP-0223);
//! - XEP-0402: PEP node `urn:xmpp:bookmarks:1`, one item per room, item id = room JID,
//!   payload `<conference xmlns='urn:xmpp:bookmarks:1'/>`.
//!
//! Each place keeps its own stored copy. A write through any of them is planned by its own
//! module ([`crate::private`] or [`crate::pep`]) as usual; [`sync`] then looks at the write
//! and the two other copies as loaded, and returns the writes that bring those copies to the
//! same bookmarks. The caller applies the original write and the derived ones as one
//! [`Op::Batch`] ([`Sync::combine`]), so no copy is ever updated without the others, and
//! sends [`Sync::notifications`] once that batch is durable.
//!
//! # Serialization
//!
//! All three keys are read-modified-written together: the caller holds one lock,
//! [`lock_key`], for every write to any of them (from before [`load_op`] until the batch
//! completed). Reads need no lock: every batch is atomic.
//!
//! # What cannot be carried over
//!
//! XEP-0402 holds conferences only. XEP-0048 `<url/>` bookmarks, other children of
//! `<storage/>`, and `<conference/>` elements without a valid room JID stay in the two
//! XEP-0048 copies ([`Bookmarks::legacy_only`]), and survive writes made through XEP-0402.
//! Children of a XEP-0048 `<conference/>` other than `<nick/>` and `<password/>` travel as
//! XEP-0402 `<extensions/>` children, and back. Decisions are listed in
//! `docs/conformance.md` ("Bookmarks: XEP-0048 and XEP-0402").

use alloc::{string::String, string::ToString, vec::Vec};
use elsinore_jid::BareJid;
use elsinore_xml::{Element, Node};

use crate::pep::{self, NS_PUBSUB_EVENT, NodeConfig, NodeState, Notification, StoredItem};
use crate::{EffectResult, Key, Op, private};

/// XEP-0048 namespace; also the name of its PEP node.
pub const NS_LEGACY: &str = "storage:bookmarks";
/// XEP-0402 namespace; also the name of its PEP node.
pub const NS_NATIVE: &str = "urn:xmpp:bookmarks:1";
/// The item id XEP-0048 uses for its single PEP item.
pub const LEGACY_ITEM_ID: &str = "current";
/// XEP-0402: bookmarks are unified between XEP-0049 private XML and XEP-0402.
pub const FEATURE_COMPAT: &str = "urn:xmpp:bookmarks:1#compat";
/// XEP-0402: bookmarks are unified between XEP-0048 over XEP-0223 (PEP) and XEP-0402.
pub const FEATURE_COMPAT_PEP: &str = "urn:xmpp:bookmarks:1#compat-pep";

/// XEP-0411 (deprecated, superseded by XEP-0402's compat features, still looked for by
/// older clients): XEP-0048 is converted between private XML and PEP.
pub const FEATURE_CONVERSION: &str = "urn:xmpp:bookmarks-conversion:0";

/// Which copy a write went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// XEP-0049 private XML, namespace `storage:bookmarks`.
    Private,
    /// The XEP-0048 PEP node `storage:bookmarks`.
    LegacyPep,
    /// The XEP-0402 PEP node `urn:xmpp:bookmarks:1`.
    Native,
}

impl Source {
    /// The copy a PEP node name stands for, if it is one of the two bookmark nodes.
    pub fn of_node(node: &str) -> Option<Source> {
        match node {
            NS_LEGACY => Some(Source::LegacyPep),
            NS_NATIVE => Some(Source::Native),
            _ => None,
        }
    }
}

/// Why a write cannot be carried over to the other copies. Nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BookmarkError {
    /// An XEP-0402 item that is not a `<conference/>` with a room JID as id.
    Invalid(&'static str),
    /// A derived copy would be over a size or item limit.
    TooLarge,
    /// A copy could not be read back (store failure or damaged data).
    Store,
}

impl core::fmt::Display for BookmarkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BookmarkError::Invalid(why) => f.write_str(why),
            BookmarkError::TooLarge => f.write_str("bookmarks over a storage limit"),
            BookmarkError::Store => f.write_str("stored bookmarks could not be read"),
        }
    }
}

impl core::error::Error for BookmarkError {}

/// One bookmarked room, in the form both XEPs can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conference {
    /// The room's bare JID (prepared).
    pub jid: BareJid,
    /// Display name.
    pub name: Option<String>,
    /// Join on login.
    pub autojoin: bool,
    /// Preferred nickname in the room.
    pub nick: Option<String>,
    /// Room password.
    pub password: Option<String>,
    /// Extension elements (XEP-0402 `<extensions/>` children; in XEP-0048, children of
    /// `<conference/>` other than `<nick/>` and `<password/>`).
    pub extensions: Vec<Element>,
}

fn parse_bool(v: Option<&str>) -> Option<bool> {
    match v {
        None | Some("false") | Some("0") => Some(false),
        Some("true") | Some("1") => Some(true),
        Some(_) => None,
    }
}

impl Conference {
    /// Read a XEP-0048 `<conference xmlns='storage:bookmarks'/>`; `None` if it has no valid
    /// room JID (such an element stays in the XEP-0048 copies only). An autojoin value other
    /// than `true`/`1`/`false`/`0` reads as false, as clients do.
    pub fn from_legacy(el: &Element) -> Option<Conference> {
        if !el.is("conference", NS_LEGACY) {
            return None;
        }
        let jid = BareJid::parse(el.attr("jid")?).ok()?;
        let mut c = Conference {
            jid,
            name: el.attr("name").map(str::to_string),
            autojoin: parse_bool(el.attr("autojoin")).unwrap_or(false),
            nick: None,
            password: None,
            extensions: Vec::new(),
        };
        for child in el.elements() {
            if child.is("nick", NS_LEGACY) && c.nick.is_none() {
                c.nick = Some(child.text());
            } else if child.is("password", NS_LEGACY) && c.password.is_none() {
                c.password = Some(child.text());
            } else {
                c.extensions.push(child.clone());
            }
        }
        Some(c)
    }

    /// The XEP-0048 `<conference/>` element.
    pub fn to_legacy(&self) -> Element {
        let mut el = Element::new("conference", NS_LEGACY).with_attr("jid", self.jid.to_string());
        if let Some(name) = &self.name {
            el.set_attr("name", name.clone());
        }
        el.set_attr("autojoin", if self.autojoin { "true" } else { "false" });
        if let Some(nick) = &self.nick {
            el = el.with_child(Element::new("nick", NS_LEGACY).with_text(nick.clone()));
        }
        if let Some(pw) = &self.password {
            el = el.with_child(Element::new("password", NS_LEGACY).with_text(pw.clone()));
        }
        for x in &self.extensions {
            el = el.with_child(x.clone());
        }
        el
    }

    /// Read a XEP-0402 item: `id` is the room JID, `payload` the `<conference/>`.
    pub fn from_native(id: &str, payload: &Element) -> Result<Conference, BookmarkError> {
        if !payload.is("conference", NS_NATIVE) {
            return Err(BookmarkError::Invalid(
                "a bookmark item holds one <conference xmlns='urn:xmpp:bookmarks:1'/>",
            ));
        }
        let jid = BareJid::parse(id)
            .map_err(|_| BookmarkError::Invalid("a bookmark's item id is the room's bare JID"))?;
        let autojoin = parse_bool(payload.attr("autojoin"))
            .ok_or(BookmarkError::Invalid("autojoin is a boolean"))?;
        let mut c = Conference {
            jid,
            name: payload.attr("name").map(str::to_string),
            autojoin,
            nick: None,
            password: None,
            extensions: Vec::new(),
        };
        for child in payload.elements() {
            if child.is("nick", NS_NATIVE) {
                c.nick = Some(child.text());
            } else if child.is("password", NS_NATIVE) {
                c.password = Some(child.text());
            } else if child.is("extensions", NS_NATIVE) {
                c.extensions.extend(child.elements().cloned());
            }
            // Other children are not defined by XEP-0402: they stay in the stored item but
            // are not carried over.
        }
        Ok(c)
    }

    /// The XEP-0402 item id and `<conference/>` payload.
    pub fn to_native(&self) -> (String, Element) {
        let mut el = Element::new("conference", NS_NATIVE);
        if let Some(name) = &self.name {
            el.set_attr("name", name.clone());
        }
        el.set_attr("autojoin", if self.autojoin { "true" } else { "false" });
        if let Some(nick) = &self.nick {
            el = el.with_child(Element::new("nick", NS_NATIVE).with_text(nick.clone()));
        }
        if let Some(pw) = &self.password {
            el = el.with_child(Element::new("password", NS_NATIVE).with_text(pw.clone()));
        }
        if !self.extensions.is_empty() {
            let mut ext = Element::new("extensions", NS_NATIVE);
            ext.children = self.extensions.iter().cloned().map(Node::Element).collect();
            el = el.with_child(ext);
        }
        (self.jid.to_string(), el)
    }
}

/// A set of bookmarks: what all three copies agree on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bookmarks {
    /// Bookmarked rooms, at most one per room JID, in stored order.
    pub conferences: Vec<Conference>,
    /// Children of the XEP-0048 `<storage/>` that XEP-0402 cannot hold: `<url/>`, elements
    /// of other namespaces, conferences without a valid room JID. Kept verbatim in the
    /// XEP-0048 copies.
    pub legacy_only: Vec<Element>,
}

impl Bookmarks {
    /// Read a XEP-0048 `<storage/>`. A room listed twice keeps its first entry; the second
    /// stays in [`Bookmarks::legacy_only`].
    pub fn from_legacy(storage: &Element) -> Bookmarks {
        let mut b = Bookmarks::default();
        for child in storage.elements() {
            match Conference::from_legacy(child) {
                Some(c) if !b.conferences.iter().any(|o| o.jid == c.jid) => b.conferences.push(c),
                _ => b.legacy_only.push(child.clone()),
            }
        }
        b
    }

    /// The XEP-0048 `<storage/>`: conferences first, then [`Bookmarks::legacy_only`].
    pub fn to_legacy(&self) -> Element {
        let mut storage = Element::new("storage", NS_LEGACY);
        for c in &self.conferences {
            storage = storage.with_child(c.to_legacy());
        }
        for e in &self.legacy_only {
            storage = storage.with_child(e.clone());
        }
        storage
    }

    /// Read the items of the XEP-0402 node.
    pub fn from_native(items: &[StoredItem]) -> Result<Bookmarks, BookmarkError> {
        let mut b = Bookmarks::default();
        for item in items {
            let c = Conference::from_native(&item.id, &item.payload)?;
            // Item ids are unique in a node, but two spellings may prepare to one JID.
            if !b.conferences.iter().any(|o| o.jid == c.jid) {
                b.conferences.push(c);
            }
        }
        Ok(b)
    }
}

/// The key all bookmark writes of `account` hold while they run (see the module docs).
pub fn lock_key(account: &BareJid) -> Key {
    pep::node_key(account, NS_NATIVE)
}

/// The three keys, in the order [`load_op`] reads them: private, XEP-0048 node, XEP-0402
/// node.
pub fn keys(account: &BareJid) -> [Key; 3] {
    [
        private::key(account, NS_LEGACY),
        pep::node_key(account, NS_LEGACY),
        pep::node_key(account, NS_NATIVE),
    ]
}

/// One batch reading the three copies; its result goes to [`Loaded::from_result`].
pub fn load_op(account: &BareJid) -> Op {
    Op::Batch(keys(account).into_iter().map(Op::Get).collect())
}

/// The three copies as stored (raw bytes; absent is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Loaded {
    /// Private XML value of namespace `storage:bookmarks`.
    pub private: Option<Vec<u8>>,
    /// The XEP-0048 PEP node.
    pub legacy: Option<Vec<u8>>,
    /// The XEP-0402 PEP node.
    pub native: Option<Vec<u8>>,
}

impl Loaded {
    /// Split the result of [`load_op`]; a failed or malformed result is
    /// [`BookmarkError::Store`].
    pub fn from_result(result: EffectResult) -> Result<Loaded, BookmarkError> {
        let EffectResult::Batch(slots) = result else {
            return Err(BookmarkError::Store);
        };
        let mut values = slots.into_iter().map(|r| match r {
            EffectResult::Value(v) => Ok(v),
            _ => Err(BookmarkError::Store),
        });
        let (Some(private), Some(legacy), Some(native), None) =
            (values.next(), values.next(), values.next(), values.next())
        else {
            return Err(BookmarkError::Store);
        };
        Ok(Loaded {
            private: private?,
            legacy: legacy?,
            native: native?,
        })
    }

    /// The stored value of `source`'s copy, as a `Get` of its key would return it.
    pub fn result_for(&self, source: Source) -> EffectResult {
        EffectResult::Value(self.raw(source).clone())
    }

    fn raw(&self, source: Source) -> &Option<Vec<u8>> {
        match source {
            Source::Private => &self.private,
            Source::LegacyPep => &self.legacy,
            Source::Native => &self.native,
        }
    }
}

/// The derived writes of one bookmark write.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sync {
    /// Writes to the other copies (empty: nothing to change).
    pub ops: Vec<Op>,
    /// Event notifications for the changed PEP nodes, to send once the batch is durable.
    pub notifications: Vec<Notification>,
}

impl Sync {
    /// The op to run: `primary` alone when nothing is derived, else one batch of `primary`
    /// followed by the derived writes.
    pub fn combine(&self, primary: Op) -> Op {
        if self.ops.is_empty() {
            return primary;
        }
        let mut all = Vec::with_capacity(1 + self.ops.len());
        all.push(primary);
        all.extend(self.ops.iter().cloned());
        Op::Batch(all)
    }

    /// The result of `primary` from the result of [`Sync::combine`]'s op: a batch that did
    /// not apply completely is a failure of the whole write.
    pub fn primary_result(&self, result: EffectResult) -> EffectResult {
        if self.ops.is_empty() {
            return result;
        }
        match result {
            EffectResult::Batch(mut slots)
                if slots.len() == 1 + self.ops.len()
                    && slots[1..].iter().all(|r| *r == EffectResult::Done) =>
            {
                slots.swap_remove(0)
            }
            EffectResult::Failed(e) => EffectResult::Failed(e),
            _ => EffectResult::Failed(crate::StoreError::Corrupt(
                "unexpected result of a bookmark batch".into(),
            )),
        }
    }
}

/// Bounds on the derived copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncLimits {
    /// PEP node limits (node size, `max_items` cap).
    pub pep: pep::Limits,
    /// Private XML limits (size of one namespace).
    pub private: private::Limits,
}

/// Plan the writes that make the two other copies agree with a write to `source`.
///
/// `primary` is the op the source's module planned (a `Put`/`Delete` of the source key, or
/// a batch holding one); `loaded` the three copies as read under [`lock_key`]. When the
/// write does not change the source's bookmarks (a read, a configuration change, a
/// republish of the same data, creating an empty node), nothing is derived.
pub fn sync(
    account: &BareJid,
    source: Source,
    primary: &Op,
    loaded: &Loaded,
    limits: &SyncLimits,
) -> Result<Sync, BookmarkError> {
    let source_key = &keys(account)[index(source)];
    let Some(written) = find_write(primary, source_key) else {
        return Ok(Sync::default());
    };
    let new = read_copy(source, written)?;
    // Whatever was stored before is read leniently: data from before this module (or a
    // damaged copy) must not block the write that replaces it.
    let old = read_copy(source, loaded.raw(source).as_deref()).unwrap_or_default();
    if new == old {
        return Ok(Sync::default());
    }
    let mut bookmarks = new;
    if source == Source::Native {
        // XEP-0402 cannot hold these: keep what the XEP-0048 copies had.
        bookmarks.legacy_only = [Source::Private, Source::LegacyPep]
            .into_iter()
            .find_map(|s| {
                loaded.raw(s).as_deref().and_then(|bytes| {
                    read_copy(s, Some(bytes))
                        .ok()
                        .filter(|b| *b != Bookmarks::default())
                })
            })
            .map(|b| b.legacy_only)
            .unwrap_or_default();
    }
    let mut out = Sync::default();
    if source != Source::Private {
        sync_private(account, &bookmarks, loaded, limits, &mut out)?;
    }
    if source != Source::LegacyPep {
        sync_legacy(account, &bookmarks, loaded, limits, &mut out)?;
    }
    if source != Source::Native {
        sync_native(account, &bookmarks, loaded, limits, &mut out)?;
    }
    Ok(out)
}

fn index(source: Source) -> usize {
    match source {
        Source::Private => 0,
        Source::LegacyPep => 1,
        Source::Native => 2,
    }
}

/// What `op` leaves at `key`: `Some(Some(bytes))` for a put, `Some(None)` for a delete,
/// `None` if `op` does not write `key`. The last write wins, as in a batch.
fn find_write<'o>(op: &'o Op, key: &Key) -> Option<Option<&'o [u8]>> {
    match op {
        Op::Put(k, v) if k == key => Some(Some(v.as_slice())),
        Op::Delete(k) if k == key => Some(None),
        Op::Batch(ops) => ops.iter().rev().find_map(|o| find_write(o, key)),
        _ => None,
    }
}

/// The bookmarks a stored copy holds (absent: none).
fn read_copy(source: Source, bytes: Option<&[u8]>) -> Result<Bookmarks, BookmarkError> {
    let Some(bytes) = bytes else {
        return Ok(Bookmarks::default());
    };
    match source {
        Source::Private => {
            let stored = private::decode(bytes, NS_LEGACY).map_err(|_| BookmarkError::Store)?;
            Ok(merge_storages(stored.iter()))
        }
        Source::LegacyPep => {
            let state = NodeState::decode(bytes).map_err(|_| BookmarkError::Store)?;
            // The newest item holding a <storage/> is the current list (XEP-0048 uses one
            // item, `current`; a client may have published under another id).
            Ok(state
                .items
                .iter()
                .rev()
                .find(|i| i.payload.is("storage", NS_LEGACY))
                .map(|i| Bookmarks::from_legacy(&i.payload))
                .unwrap_or_default())
        }
        Source::Native => {
            let state = NodeState::decode(bytes).map_err(|_| BookmarkError::Store)?;
            Bookmarks::from_native(&state.items)
        }
    }
}

/// Private XML may hold several `<storage/>` elements in the namespace: read them as one
/// list, in order.
fn merge_storages<'a>(elements: impl Iterator<Item = &'a Element>) -> Bookmarks {
    let mut storage = Element::new("storage", NS_LEGACY);
    for e in elements.filter(|e| e.is("storage", NS_LEGACY)) {
        storage.children.extend(e.children.iter().cloned());
    }
    Bookmarks::from_legacy(&storage)
}

fn sync_private(
    account: &BareJid,
    bookmarks: &Bookmarks,
    loaded: &Loaded,
    limits: &SyncLimits,
    out: &mut Sync,
) -> Result<(), BookmarkError> {
    if loaded.private.is_none() && *bookmarks == Bookmarks::default() {
        return Ok(());
    }
    let storage = bookmarks.to_legacy();
    let bytes = private::encode(&[&storage]);
    if bytes.len() > limits.private.max_bytes_per_namespace {
        return Err(BookmarkError::TooLarge);
    }
    if loaded.private.as_deref() != Some(bytes.as_slice()) {
        out.ops
            .push(Op::Put(private::key(account, NS_LEGACY), bytes));
    }
    Ok(())
}

fn load_node(bytes: &Option<Vec<u8>>) -> Option<NodeState> {
    // A damaged node is replaced, not kept: it could not be read by anyone anyway.
    bytes.as_deref().and_then(|b| NodeState::decode(b).ok())
}

fn put_node(
    account: &BareJid,
    node: &str,
    state: &NodeState,
    before: &Option<Vec<u8>>,
    limits: &SyncLimits,
    out: &mut Sync,
) -> Result<bool, BookmarkError> {
    let bytes = state.encode();
    if bytes.len() > limits.pep.max_node_bytes {
        return Err(BookmarkError::TooLarge);
    }
    if before.as_deref() == Some(bytes.as_slice()) {
        return Ok(false);
    }
    out.ops.push(Op::Put(pep::node_key(account, node), bytes));
    Ok(true)
}

fn event(node: &str, child: Element, config: &NodeConfig) -> Notification {
    Notification {
        node: node.to_string(),
        event: Element::new("event", NS_PUBSUB_EVENT).with_child(
            Element::new("items", NS_PUBSUB_EVENT)
                .with_attr("node", node)
                .with_child(child),
        ),
        access_model: config.access_model,
    }
}

fn sync_legacy(
    account: &BareJid,
    bookmarks: &Bookmarks,
    loaded: &Loaded,
    limits: &SyncLimits,
    out: &mut Sync,
) -> Result<(), BookmarkError> {
    let existing = load_node(&loaded.legacy);
    if existing.is_none() && *bookmarks == Bookmarks::default() {
        return Ok(());
    }
    let mut state = existing.unwrap_or_else(|| NodeState {
        config: NodeConfig::initial_for(NS_LEGACY, &limits.pep),
        items: Vec::new(),
    });
    let storage = bookmarks.to_legacy();
    state.publish(StoredItem {
        id: LEGACY_ITEM_ID.into(),
        payload: storage.clone(),
    });
    if put_node(account, NS_LEGACY, &state, &loaded.legacy, limits, out)? {
        let item = Element::new("item", NS_PUBSUB_EVENT)
            .with_attr("id", LEGACY_ITEM_ID)
            .with_child(storage);
        out.notifications
            .push(event(NS_LEGACY, item, &state.config));
    }
    Ok(())
}

fn sync_native(
    account: &BareJid,
    bookmarks: &Bookmarks,
    loaded: &Loaded,
    limits: &SyncLimits,
    out: &mut Sync,
) -> Result<(), BookmarkError> {
    let existing = load_node(&loaded.native);
    if existing.is_none() && bookmarks.conferences.is_empty() {
        return Ok(());
    }
    let cap = limits.pep.max_items_cap;
    if bookmarks.conferences.len() > usize::try_from(cap).unwrap_or(usize::MAX) {
        return Err(BookmarkError::TooLarge);
    }
    let mut state = existing.clone().unwrap_or_else(|| NodeState {
        config: NodeConfig::initial_for(NS_NATIVE, &limits.pep),
        items: Vec::new(),
    });
    let old_items = core::mem::take(&mut state.items);
    let mut published = Vec::new();
    for c in &bookmarks.conferences {
        let (id, payload) = c.to_native();
        // An unchanged bookmark keeps its stored item verbatim (and sends no event).
        let kept = old_items
            .iter()
            .find(|i| i.id == id && Conference::from_native(&i.id, &i.payload).as_ref() == Ok(c));
        match kept {
            Some(item) => state.items.push(item.clone()),
            None => {
                published.push(StoredItem {
                    id: id.clone(),
                    payload: payload.clone(),
                });
                state.items.push(StoredItem { id, payload });
            }
        }
    }
    let retracted: Vec<&StoredItem> = old_items
        .iter()
        .filter(|o| !state.items.iter().any(|i| i.id == o.id))
        .collect();
    // Room for every bookmark: a smaller max_items would silently drop some.
    let needed = u32::try_from(state.items.len()).unwrap_or(u32::MAX);
    if needed > state.config.max_items {
        state.config.max_items = needed;
    }
    state.trim();
    if !put_node(account, NS_NATIVE, &state, &loaded.native, limits, out)? {
        return Ok(());
    }
    for item in published {
        let el = Element::new("item", NS_PUBSUB_EVENT)
            .with_attr("id", item.id)
            .with_child(item.payload);
        out.notifications.push(event(NS_NATIVE, el, &state.config));
    }
    for item in retracted {
        let el = Element::new("retract", NS_PUBSUB_EVENT).with_attr("id", item.id.clone());
        out.notifications.push(event(NS_NATIVE, el, &state.config));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes()).expect("test XML parses")
    }

    #[test]
    fn legacy_conference_round_trips_through_native() {
        let legacy = el(
            "<conference xmlns='storage:bookmarks' jid='Council@Conference.underhill.org' \
             name='Council of Oberon' autojoin='1'><nick>Puck</nick><password>x</password>\
             <pinned xmlns='urn:example:pin'/></conference>",
        );
        let c = Conference::from_legacy(&legacy).expect("valid conference");
        assert_eq!(c.jid.to_string(), "council@conference.underhill.org");
        assert!(c.autojoin);
        let (id, native) = c.to_native();
        assert_eq!(id, "council@conference.underhill.org");
        assert!(
            native
                .get_child("extensions", NS_NATIVE)
                .expect("extensions")
                .get_child("pinned", "urn:example:pin")
                .is_some()
        );
        let back = Conference::from_native(&id, &native).expect("valid item");
        assert_eq!(back, c);
        assert_eq!(
            Conference::from_legacy(&back.to_legacy()).expect("valid conference"),
            c
        );
    }

    #[test]
    fn urls_and_conferences_without_jid_stay_legacy_only() {
        let storage = el("<storage xmlns='storage:bookmarks'>\
             <url name='Complete Works' url='http://the-tech.mit.edu/Shakespeare/'/>\
             <conference name='no jid'/>\
             <conference jid='a@rooms.lit'/><conference jid='A@rooms.lit' name='dup'/></storage>");
        let b = Bookmarks::from_legacy(&storage);
        assert_eq!(b.conferences.len(), 1);
        assert_eq!(b.legacy_only.len(), 3);
        assert_eq!(Bookmarks::from_legacy(&b.to_legacy()), b);
    }

    #[test]
    fn native_items_must_be_conferences_with_room_jids() {
        let conf = el("<conference xmlns='urn:xmpp:bookmarks:1'/>");
        assert!(Conference::from_native("not a jid@", &conf).is_err());
        assert!(Conference::from_native("a@b/res", &conf).is_err());
        let other = el("<storage xmlns='storage:bookmarks'/>");
        assert!(Conference::from_native("a@b", &other).is_err());
        let bad = el("<conference xmlns='urn:xmpp:bookmarks:1' autojoin='yes'/>");
        assert!(Conference::from_native("a@b", &bad).is_err());
    }
}
