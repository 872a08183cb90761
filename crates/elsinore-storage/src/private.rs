//! XEP-0049 Private XML Storage (`jabber:iq:private`) as pure functions over values.
//!
//! [`handle`] looks at one iq's `<query/>` and either answers at once
//! ([`PrivateAction::Reply`]) or asks for one storage [`Op`] and returns a [`Pending`]
//! continuation that turns the op's [`EffectResult`] into the reply payload.
//!
//! Data model: one entry per (account, namespace) in [`Space::Private`]. Its value is the
//! serialized `<query xmlns='jabber:iq:private'>` wrapping every stored element of that
//! namespace, written with [`Element::to_bytes`] and read back with [`Element::parse`], so
//! escaping, attributes and nested namespaces survive. The decisions taken where the XEP is
//! loose are listed in `docs/conformance.md` ("XEP-0049 Private XML Storage").

use alloc::{borrow::ToOwned, string::String, string::ToString, vec, vec::Vec};
use elsinore_jid::{BareJid, Jid};
use elsinore_xml::{Element, Node, XmlLimits};

use crate::{EffectResult, Key, Op, Space, Store};

/// The `jabber:iq:private` namespace.
pub const NS: &str = "jabber:iq:private";

/// The iq type of the request (`result` and `error` iqs are not requests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IqKind {
    /// Retrieve the data stored for one namespace.
    Get,
    /// Store (replace) the data of one or more namespaces.
    Set,
}

/// Why a private-storage request is refused. Map to a stanza error with
/// [`condition`](PrivateError::condition), [`error_type`](PrivateError::error_type) and
/// [`legacy_code`](PrivateError::legacy_code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrivateError {
    /// The iq is addressed to another user's JID (listing 3).
    Forbidden,
    /// The query has no child element (listing 4).
    BadFormat,
    /// Reserved namespace (listing 5), a child without a namespace, or a get naming more than
    /// one namespace.
    NotAcceptable,
    /// The element is not a `jabber:iq:private` `<query/>`, or it holds non-whitespace text.
    BadRequest,
    /// Over a [`Limits`] bound.
    ResourceConstraint,
    /// The store failed or returned unreadable data; nothing was half-written.
    InternalServerError,
}

impl PrivateError {
    /// The RFC 6120 defined condition (element name in `urn:ietf:params:xml:ns:xmpp-stanzas`).
    ///
    /// XEP-0049's listing 4 shows `<bad-format/>`, which RFC 6120 does not define, while §2.3
    /// says a query without a properly namespaced child MUST get "Not Acceptable"; so
    /// [`PrivateError::BadFormat`] is sent as `not-acceptable` (the listing's legacy code 406).
    pub fn condition(self) -> &'static str {
        match self {
            PrivateError::Forbidden => "forbidden",
            PrivateError::BadFormat | PrivateError::NotAcceptable => "not-acceptable",
            PrivateError::BadRequest => "bad-request",
            PrivateError::ResourceConstraint => "resource-constraint",
            PrivateError::InternalServerError => "internal-server-error",
        }
    }

    /// The error `type` attribute: `cancel`, `modify` or `wait`.
    pub fn error_type(self) -> &'static str {
        match self {
            PrivateError::Forbidden => "cancel",
            PrivateError::BadFormat | PrivateError::NotAcceptable | PrivateError::BadRequest => {
                "modify"
            }
            // Resending the same oversized data cannot succeed.
            PrivateError::ResourceConstraint => "cancel",
            // A store outage may pass.
            PrivateError::InternalServerError => "wait",
        }
    }

    /// The legacy (pre-RFC) numeric error code, as in the XEP's listings.
    pub fn legacy_code(self) -> u16 {
        match self {
            PrivateError::Forbidden => 403,
            PrivateError::BadFormat | PrivateError::NotAcceptable => 406,
            PrivateError::BadRequest => 400,
            PrivateError::ResourceConstraint | PrivateError::InternalServerError => 500,
        }
    }
}

impl core::fmt::Display for PrivateError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let what = match self {
            PrivateError::Forbidden => "private data of another user",
            PrivateError::BadFormat => "query without a child element",
            PrivateError::NotAcceptable => "namespace not acceptable",
            PrivateError::BadRequest => "malformed private query",
            PrivateError::ResourceConstraint => "private data over a limit",
            PrivateError::InternalServerError => "private storage failed",
        };
        f.write_str(what)
    }
}

impl core::error::Error for PrivateError {}

/// Bounds on what one account may store. (A cap on the number of namespaces per account is
/// left out: checking it would need a listing of the account's keys before every write.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest serialized data of one namespace (the stored value), in bytes.
    pub max_bytes_per_namespace: usize,
    /// Most distinct namespaces in one set.
    pub max_namespaces_per_set: usize,
    /// Longest namespace URI, in bytes.
    pub max_namespace_bytes: usize,
}

impl Default for Limits {
    /// 64 KiB per namespace (bookmarks of a heavy user fit many times), 16 namespaces per
    /// set, 1 KiB namespace URIs.
    fn default() -> Self {
        Limits {
            max_bytes_per_namespace: 64 * 1024,
            max_namespaces_per_set: 16,
            max_namespace_bytes: 1024,
        }
    }
}

/// What to do with one `jabber:iq:private` iq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrivateAction {
    /// Answer now: `Ok(payload)` is an iq result (with that payload, if any), `Err` an iq error.
    Reply(Result<Option<Element>, PrivateError>),
    /// Apply `ops` (as one [`Store::apply`], atomically), then give its result to
    /// [`Pending::complete`] for the reply.
    Run {
        /// The storage op.
        ops: Op,
        /// Continuation that builds the reply.
        pending: Pending,
    },
}

impl PrivateAction {
    /// Convenience for synchronous callers: run the op (if any) on `store` and return the
    /// reply.
    pub fn run_on(self, store: &mut impl Store) -> Result<Option<Element>, PrivateError> {
        match self {
            PrivateAction::Reply(reply) => reply,
            PrivateAction::Run { ops, pending } => pending.complete(store.apply(&ops)),
        }
    }
}

/// The part of a request that waits for its storage op.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    state: State,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// A get for `ns`; `requested` are the query's children, echoed when nothing is stored.
    Get { ns: String, requested: Vec<Element> },
    /// A set of `namespaces` namespaces (one `Put`, or a `Batch` of that many).
    Set { namespaces: usize },
}

impl Pending {
    /// Build the reply payload from the op's result: the `<query/>` for a get, `None` for a
    /// set. A failed op, or a result that does not fit the op, is
    /// [`PrivateError::InternalServerError`].
    pub fn complete(self, result: EffectResult) -> Result<Option<Element>, PrivateError> {
        match self.state {
            State::Get { ns, requested } => {
                let EffectResult::Value(value) = result else {
                    return Err(PrivateError::InternalServerError);
                };
                let mut query = Element::new("query", NS);
                let stored = match value {
                    Some(bytes) => decode(&bytes, &ns)?,
                    None => Vec::new(),
                };
                let children = if stored.is_empty() { requested } else { stored };
                query.children = children.into_iter().map(Node::Element).collect();
                Ok(Some(query))
            }
            State::Set { namespaces } => {
                let ok = match result {
                    EffectResult::Done => namespaces == 1,
                    EffectResult::Batch(results) => {
                        results.len() == namespaces
                            && results.iter().all(|r| *r == EffectResult::Done)
                    }
                    _ => false,
                };
                if ok {
                    Ok(None)
                } else {
                    Err(PrivateError::InternalServerError)
                }
            }
        }
    }
}

/// The storage key of `account`'s private data in namespace `ns`.
pub fn key(account: &BareJid, ns: &str) -> Key {
    Key::new(account.to_string(), Space::Private, ns)
}

/// Whether `ns` is reserved (XEP-0049 §2.3, listing 5): `jabber:*`, `http://jabber.org/*`
/// and `vcard-temp`.
pub fn is_reserved(ns: &str) -> bool {
    ns.starts_with("jabber:") || ns.starts_with("http://jabber.org/") || ns == "vcard-temp"
}

/// Decide what to do with one `jabber:iq:private` iq of `account`. `to` is the iq's `to`:
/// absent, the user's bare JID or any of the user's full JIDs all mean the user's own
/// storage; anything else is [`PrivateError::Forbidden`].
pub fn handle(
    account: &BareJid,
    to: Option<&Jid>,
    kind: IqKind,
    query: &Element,
    limits: &Limits,
) -> PrivateAction {
    match plan(account, to, kind, query, limits) {
        Ok((ops, state)) => PrivateAction::Run {
            ops,
            pending: Pending { state },
        },
        Err(e) => PrivateAction::Reply(Err(e)),
    }
}

fn plan(
    account: &BareJid,
    to: Option<&Jid>,
    kind: IqKind,
    query: &Element,
    limits: &Limits,
) -> Result<(Op, State), PrivateError> {
    // Authorization first: another user's data is refused whatever the payload (listing 3).
    if let Some(to) = to
        && to.bare() != account
    {
        return Err(PrivateError::Forbidden);
    }
    if !query.is("query", NS) {
        return Err(PrivateError::BadRequest);
    }
    let groups = match kind {
        // A get names exactly one namespace (§2.3: "MUST NOT query for more than one").
        IqKind::Get => group_by_namespace(query, limits, 1, PrivateError::NotAcceptable)?,
        IqKind::Set => group_by_namespace(
            query,
            limits,
            limits.max_namespaces_per_set,
            PrivateError::ResourceConstraint,
        )?,
    };
    match kind {
        IqKind::Get => {
            let mut groups = groups.into_iter();
            let (Some((ns, elements)), None) = (groups.next(), groups.next()) else {
                return Err(PrivateError::NotAcceptable);
            };
            let op = Op::Get(key(account, ns));
            let requested = elements.into_iter().cloned().collect();
            let ns = ns.to_owned();
            Ok((op, State::Get { ns, requested }))
        }
        IqKind::Set => {
            let namespaces = groups.len();
            let mut puts = Vec::with_capacity(namespaces);
            for (ns, elements) in groups {
                let bytes = encode(&elements);
                if bytes.len() > limits.max_bytes_per_namespace {
                    return Err(PrivateError::ResourceConstraint);
                }
                puts.push(Op::Put(key(account, ns), bytes));
            }
            // One namespace is a plain put; several are one atomic batch.
            let op = match <[Op; 1]>::try_from(puts) {
                Ok([put]) => put,
                Err(puts) => Op::Batch(puts),
            };
            Ok((op, State::Set { namespaces }))
        }
    }
}

/// The query's child elements grouped by namespace, in order of first appearance, after the
/// per-child checks. More than `max_groups` namespaces is `overflow`.
fn group_by_namespace<'q>(
    query: &'q Element,
    limits: &Limits,
    max_groups: usize,
    overflow: PrivateError,
) -> Result<Vec<(&'q str, Vec<&'q Element>)>, PrivateError> {
    let mut groups: Vec<(&str, Vec<&Element>)> = Vec::new();
    for node in &query.children {
        let child = match node {
            Node::Element(e) => e,
            Node::Text(t) if is_xml_whitespace(t) => continue,
            Node::Text(_) => return Err(PrivateError::BadRequest),
        };
        let ns = child.ns.as_str();
        if ns.is_empty() || is_reserved(ns) {
            return Err(PrivateError::NotAcceptable);
        }
        if ns.len() > limits.max_namespace_bytes {
            return Err(PrivateError::ResourceConstraint);
        }
        match groups.iter_mut().find(|(g, _)| *g == ns) {
            Some((_, elements)) => elements.push(child),
            None => {
                // Checked here so thousands of namespaces cost no quadratic scan.
                if groups.len() >= max_groups {
                    return Err(overflow);
                }
                groups.push((ns, vec![child]));
            }
        }
    }
    if groups.is_empty() {
        return Err(PrivateError::BadFormat);
    }
    Ok(groups)
}

fn is_xml_whitespace(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
}

/// Serialize the elements of one namespace as the stored value.
pub(crate) fn encode(elements: &[&Element]) -> Vec<u8> {
    let mut wrapper = Element::new("query", NS);
    wrapper.children = elements
        .iter()
        .map(|e| Node::Element((*e).clone()))
        .collect();
    wrapper.to_bytes()
}

/// Read a stored value back: the elements of namespace `ns` inside the wrapper.
pub(crate) fn decode(bytes: &[u8], ns: &str) -> Result<Vec<Element>, PrivateError> {
    // Read back with room for what was accepted on write: the serialized form can be longer
    // than the wire form (escapes, namespace declarations), and its size was checked then.
    let defaults = XmlLimits::default();
    let limits = XmlLimits {
        max_element_bytes: bytes.len().max(defaults.max_element_bytes),
        max_attributes: defaults.max_attributes.saturating_mul(4),
        ..defaults
    };
    let wrapper =
        Element::parse_with_limits(bytes, limits).map_err(|_| PrivateError::InternalServerError)?;
    if !wrapper.is("query", NS) {
        return Err(PrivateError::InternalServerError);
    }
    Ok(wrapper
        .children
        .into_iter()
        .filter_map(|n| match n {
            Node::Element(e) if e.ns == ns => Some(e),
            _ => None,
        })
        .collect())
}
