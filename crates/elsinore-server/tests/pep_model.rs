//! PEP nodes through the whole server against a model written here from XEP-0060 and
//! `docs/conformance.md` ("XEP-0223 / XEP-0060 subset"), not from the storage crate:
//! random sequences of publish (with and without publish-options), retract, create,
//! configure, item reads by the owner, a subscribed contact and a stranger, writes by
//! others, delete, purge and restarts (a new `Server` on the same store: every cache
//! cold), with storage effects completed after random delays. After every step: each
//! iq's reply exactly, the items returned, and the event notifications each session got
//! (the owner's sessions get all; the contact only those of the node its XEP-0115 caps
//! ask for with `+notify`).

mod common;

use std::collections::HashMap;

use common::{Net, Schedule, error_condition};
use elsinore_server::{CacheLimits, ConnId, ServerConfig};
use elsinore_xml::Element;
use proptest::prelude::*;

const PUBSUB: &str = "http://jabber.org/protocol/pubsub";
const OWNER_NS: &str = "http://jabber.org/protocol/pubsub#owner";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";
const ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
const DATA: &str = "jabber:x:data";
const PAYLOAD_NS: &str = "urn:test:v";

const OWNER: &str = "juliet@capulet.lit";
/// Item ids given by the client (some need escaping); the last is never published.
const IDS: [&str; 5] = ["i0", "i1", "a&b", "'q' <x>", "never"];
const NODES: [&str; 2] = ["urn:test:a", "urn:test:b"];
/// `max` in a form, and the highest `max_items` (docs/conformance.md).
const CAP: u32 = 256;

// ---- the model ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Access {
    Open,
    Presence,
    Whitelist,
}

impl Access {
    fn value(self) -> &'static str {
        match self {
            Access::Open => "open",
            Access::Presence => "presence",
            Access::Whitelist => "whitelist",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Conf {
    persist: bool,
    access: Access,
    max: u32,
}

/// A node created without options: persistent, presence access (XEP-0163), one item.
const DEFAULT: Conf = Conf {
    persist: true,
    access: Access::Presence,
    max: 1,
};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Payload {
    attr: String,
    text: String,
}

#[derive(Debug, Clone)]
struct Node {
    conf: Conf,
    /// Oldest first.
    items: Vec<(String, Payload)>,
}

type Model = [Option<Node>; 2];

// ---- generated steps ----

#[derive(Debug, Clone, Copy)]
enum MaxItems {
    N(u32),
    Max,
}

/// One field that must be refused (at most one per form, so which error wins is defined).
#[derive(Debug, Clone, Copy)]
enum Bad {
    /// `pubsub#persist_items` = `yes`: not an XEP-0004 boolean.
    Persist,
    /// `pubsub#access_model` = `authorize`: not implemented.
    Access,
    MaxZero,
    MaxOverCap,
    /// `pubsub#max_items` = `lots`.
    MaxText,
    /// `pubsub#title`: a field the service does not support.
    Unknown,
}

#[derive(Debug, Clone, Default)]
struct Form {
    /// (value, written as `1`/`0` rather than `true`/`false`)
    persist: Option<(bool, bool)>,
    access: Option<Access>,
    max: Option<MaxItems>,
    bad: Option<Bad>,
}

#[derive(Debug, Clone, Copy)]
enum IdRef {
    /// One of [`IDS`].
    Fixed(u8),
    /// The n-th item the model holds (modulo), e.g. one with a generated id.
    Existing(usize),
}

#[derive(Debug, Clone)]
enum Select {
    All,
    Newest(usize),
    Ids(Vec<IdRef>),
}

/// A request of the owner.
#[derive(Debug, Clone)]
enum Op {
    Publish {
        node: usize,
        id: Option<u8>,
        payload: (u8, u8),
        options: Option<Form>,
    },
    Retract {
        node: usize,
        id: IdRef,
        /// (notify, written as `1`/`0`); `None`: no attribute.
        notify: Option<(bool, bool)>,
    },
    Create {
        node: usize,
        form: Option<Form>,
    },
    Configure {
        node: usize,
        form: Form,
    },
    ConfigureGet {
        node: usize,
    },
    Items {
        node: usize,
        select: Select,
    },
    Delete {
        node: usize,
    },
    Purge {
        node: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Other {
    Contact,
    Stranger,
}

#[derive(Debug, Clone)]
enum Step {
    /// Sent in one write from one owner resource (several: pipelined); `addressed`: with
    /// `to` = the owner's bare JID, which means the same as no `to`.
    Owner {
        ops: Vec<Op>,
        chamber: bool,
        addressed: bool,
    },
    Read {
        who: Other,
        node: usize,
        select: Select,
    },
    /// A publish by someone else: always `forbidden`.
    ForeignPublish {
        who: Other,
        node: usize,
    },
    /// Both owner sessions end (her values leave the cache, her roster too); she comes
    /// back for her next request.
    OwnerOffline,
    /// Juliet cancels Romeo's subscription to her presence (`false`), or he asks again
    /// and she approves (`true`).
    Subscription(bool),
    Restart,
}

fn form() -> impl Strategy<Value = Form> {
    let access = prop_oneof![
        Just(Access::Open),
        Just(Access::Presence),
        Just(Access::Whitelist)
    ];
    let max = prop_oneof![
        3 => (1u32..=3).prop_map(MaxItems::N),
        2 => Just(MaxItems::Max),
    ];
    let bad = prop_oneof![
        Just(Bad::Persist),
        Just(Bad::Access),
        Just(Bad::MaxZero),
        Just(Bad::MaxOverCap),
        Just(Bad::MaxText),
        Just(Bad::Unknown),
    ];
    (
        prop::option::of((any::<bool>(), any::<bool>())),
        prop::option::of(access),
        prop::option::weighted(0.6, max),
        prop::option::weighted(0.1, bad),
    )
        .prop_map(|(persist, access, max, bad)| Form {
            persist,
            access,
            max,
            bad,
        })
}

fn id_ref() -> impl Strategy<Value = IdRef> {
    prop_oneof![
        (0u8..5).prop_map(IdRef::Fixed),
        any::<usize>().prop_map(IdRef::Existing),
    ]
}

fn select() -> impl Strategy<Value = Select> {
    prop_oneof![
        Just(Select::All),
        (0usize..5).prop_map(Select::Newest),
        prop::collection::vec(id_ref(), 1..4).prop_map(Select::Ids),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0usize..NODES.len();
    prop_oneof![
        8 => (
            node.clone(),
            prop::option::weighted(0.8, 0u8..4),
            (any::<u8>(), any::<u8>()),
            prop::option::weighted(0.4, form()),
        )
            .prop_map(|(node, id, payload, options)| Op::Publish { node, id, payload, options }),
        3 => (
            node.clone(),
            id_ref(),
            prop::option::of((any::<bool>(), any::<bool>())),
        )
            .prop_map(|(node, id, notify)| Op::Retract { node, id, notify }),
        1 => (node.clone(), prop::option::of(form()))
            .prop_map(|(node, form)| Op::Create { node, form }),
        2 => (node.clone(), form()).prop_map(|(node, form)| Op::Configure { node, form }),
        1 => node.clone().prop_map(|node| Op::ConfigureGet { node }),
        3 => (node.clone(), select()).prop_map(|(node, select)| Op::Items { node, select }),
        1 => node.clone().prop_map(|node| Op::Delete { node }),
        1 => node.prop_map(|node| Op::Purge { node }),
    ]
}

fn other() -> impl Strategy<Value = Other> {
    prop_oneof![2 => Just(Other::Contact), 1 => Just(Other::Stranger)]
}

fn step() -> impl Strategy<Value = Step> {
    let node = 0usize..NODES.len();
    prop_oneof![
        12 => (prop::collection::vec(op(), 1..2), any::<bool>(), any::<bool>())
            .prop_map(|(ops, chamber, addressed)| Step::Owner { ops, chamber, addressed }),
        3 => (prop::collection::vec(op(), 2..6), any::<bool>(), any::<bool>())
            .prop_map(|(ops, chamber, addressed)| Step::Owner { ops, chamber, addressed }),
        3 => (other(), node.clone(), select())
            .prop_map(|(who, node, select)| Step::Read { who, node, select }),
        1 => (other(), node).prop_map(|(who, node)| Step::ForeignPublish { who, node }),
        1 => Just(Step::OwnerOffline),
        1 => any::<bool>().prop_map(Step::Subscription),
        2 => Just(Step::Restart),
    ]
}

// ---- predictions ----

/// What a notification says (node, then what happened).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Item(String, String, String, String),
    Retract(String, String),
    Delete(String),
    Purge(String),
}

impl Ev {
    fn node(&self) -> &str {
        match self {
            Ev::Item(n, ..) | Ev::Retract(n, _) | Ev::Delete(n) | Ev::Purge(n) => n,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    Empty,
    Published(String, String),
    Items(String, Vec<(String, Payload)>),
    Config(Conf),
    Error(StanzaError),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct StanzaError {
    condition: String,
    kind: String,
    /// The `pubsub#errors` element and its `feature` attribute.
    app: Option<String>,
    feature: Option<String>,
}

fn error(condition: &str, app: Option<&str>) -> Reply {
    // The error types of RFC 6120 8.3.3 as XEP-0060's examples use them.
    let kind = match condition {
        "bad-request" | "not-acceptable" => "modify",
        "forbidden" | "not-authorized" => "auth",
        "internal-server-error" => "wait",
        _ => "cancel",
    };
    Reply::Error(StanzaError {
        condition: condition.into(),
        kind: kind.into(),
        app: app.map(Into::into),
        feature: None,
    })
}

/// Placeholder for the id the server generates for the `n`-th publish of a step; replaced
/// by the id from the reply.
fn generated(n: usize) -> String {
    format!("\u{1}gen{n}")
}

const TEXTS: [&str; 6] = ["", "a", "<&>", "'\"", "ü ∑ ☃", "  two  words "];

fn payload(p: (u8, u8)) -> Payload {
    Payload {
        attr: format!("{}{}", TEXTS[usize::from(p.1) % TEXTS.len()], p.1),
        text: format!("{}{}", TEXTS[usize::from(p.0) % TEXTS.len()], p.0),
    }
}

/// The error a form with `bad` gets; `publish`: in publish-options.
fn bad_form(bad: Bad, publish: bool) -> Reply {
    match bad {
        Bad::Persist | Bad::MaxText => error("bad-request", None),
        Bad::Access | Bad::MaxZero | Bad::MaxOverCap => error("not-acceptable", None),
        // XEP-0060 7.1.5: an option the service cannot check is a precondition not met.
        Bad::Unknown if publish => error("conflict", Some("precondition-not-met")),
        Bad::Unknown => error("not-acceptable", None),
    }
}

fn form_applied(form: &Form, mut conf: Conf) -> Conf {
    if let Some((p, _)) = form.persist {
        conf.persist = p;
    }
    if let Some(a) = form.access {
        conf.access = a;
    }
    if let Some(m) = form.max {
        conf.max = match m {
            MaxItems::N(n) => n,
            MaxItems::Max => CAP,
        };
    }
    conf
}

/// A configuration change takes effect on the items at once.
fn enforce(node: &mut Node) {
    if !node.conf.persist {
        node.items.clear();
    }
    let max = node.conf.max as usize;
    if node.items.len() > max {
        node.items.drain(..node.items.len() - max);
    }
}

fn resolve(model: &Model, node: usize, id: IdRef) -> String {
    match id {
        IdRef::Fixed(n) => IDS[usize::from(n)].to_string(),
        IdRef::Existing(k) => match &model[node] {
            // Not a generated id whose name this step has not learnt yet.
            Some(n)
                if !n.items.is_empty() && !n.items[k % n.items.len()].0.starts_with('\u{1}') =>
            {
                n.items[k % n.items.len()].0.clone()
            }
            _ => IDS[k % IDS.len()].to_string(),
        },
    }
}

/// An op with its references resolved against the model as it is when the op runs.
#[derive(Debug, Clone)]
enum Resolved {
    Op(Op),
    Retract(usize, String, Option<(bool, bool)>),
    Items(usize, Option<usize>, Vec<String>),
}

fn resolve_op(model: &Model, op: &Op) -> Resolved {
    match op {
        Op::Retract { node, id, notify } => {
            Resolved::Retract(*node, resolve(model, *node, *id), *notify)
        }
        Op::Items { node, select } => resolve_select(model, *node, select),
        other => Resolved::Op(other.clone()),
    }
}

fn resolve_select(model: &Model, node: usize, select: &Select) -> Resolved {
    match select {
        Select::All => Resolved::Items(node, None, Vec::new()),
        Select::Newest(n) => Resolved::Items(node, Some(*n), Vec::new()),
        Select::Ids(ids) => Resolved::Items(
            node,
            None,
            ids.iter().map(|i| resolve(model, node, *i)).collect(),
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Owner,
    Contact,
    Stranger,
}

/// Runs `op` on the model: the reply, and the notification with the node's access model.
fn predict(
    model: &mut Model,
    op: &Resolved,
    who: Who,
    fresh: &str,
) -> (Reply, Option<(Ev, Access)>) {
    let missing = error("item-not-found", None);
    match op {
        Resolved::Op(Op::Publish {
            node,
            id,
            payload: p,
            options,
        }) => {
            let name = NODES[*node].to_string();
            if let Some(bad) = options.as_ref().and_then(|o| o.bad) {
                return (bad_form(bad, true), None);
            }
            let slot = &mut model[*node];
            match (slot.as_ref(), options) {
                (Some(n), Some(o)) if form_applied(o, n.conf) != n.conf => {
                    return (error("conflict", Some("precondition-not-met")), None);
                }
                (Some(_), _) => {}
                (None, o) => {
                    let conf = o.as_ref().map_or(DEFAULT, |o| form_applied(o, DEFAULT));
                    *slot = Some(Node {
                        conf,
                        items: Vec::new(),
                    });
                }
            }
            let n = slot.as_mut().expect("exists now");
            let id = id.map_or_else(|| fresh.to_string(), |i| IDS[usize::from(i)].to_string());
            let p = payload(*p);
            // XEP-0060 7.1.2: a republished id replaces the item and becomes the newest.
            n.items.retain(|(i, _)| *i != id);
            if n.conf.persist {
                n.items.push((id.clone(), p.clone()));
            }
            enforce(n);
            let ev = Ev::Item(name.clone(), id.clone(), p.attr, p.text);
            (Reply::Published(name, id), Some((ev, n.conf.access)))
        }
        Resolved::Retract(node, id, notify) => {
            let Some(n) = model[*node].as_mut() else {
                return (missing, None);
            };
            let before = n.items.len();
            n.items.retain(|(i, _)| i != id);
            if n.items.len() == before {
                return (missing, None);
            }
            let ev = notify
                .is_some_and(|(yes, _)| yes)
                .then(|| (Ev::Retract(NODES[*node].into(), id.clone()), n.conf.access));
            (Reply::Empty, ev)
        }
        Resolved::Op(Op::Create { node, form }) => {
            if let Some(bad) = form.as_ref().and_then(|f| f.bad) {
                return (bad_form(bad, false), None);
            }
            if model[*node].is_some() {
                return (error("conflict", None), None);
            }
            let conf = form.as_ref().map_or(DEFAULT, |f| form_applied(f, DEFAULT));
            model[*node] = Some(Node {
                conf,
                items: Vec::new(),
            });
            (Reply::Empty, None)
        }
        Resolved::Op(Op::Configure { node, form }) => {
            if let Some(bad) = form.bad {
                return (bad_form(bad, false), None);
            }
            let Some(n) = model[*node].as_mut() else {
                return (missing, None);
            };
            n.conf = form_applied(form, n.conf);
            enforce(n);
            (Reply::Empty, None)
        }
        Resolved::Op(Op::ConfigureGet { node }) => match &model[*node] {
            Some(n) => (Reply::Config(n.conf), None),
            None => (missing, None),
        },
        Resolved::Items(node, newest, ids) => {
            let Some(n) = &model[*node] else {
                return (missing, None);
            };
            match (who, n.conf.access) {
                (Who::Owner, _) | (_, Access::Open) | (Who::Contact, Access::Presence) => {}
                (_, Access::Whitelist) => return (error("not-allowed", Some("closed-node")), None),
                (Who::Stranger, Access::Presence) => {
                    return (
                        error("not-authorized", Some("presence-subscription-required")),
                        None,
                    );
                }
            }
            let items: Vec<_> = if !ids.is_empty() {
                n.items
                    .iter()
                    .filter(|(i, _)| ids.contains(i))
                    .cloned()
                    .collect()
            } else {
                let skip = newest.map_or(0, |m| n.items.len().saturating_sub(m));
                n.items[skip..].to_vec()
            };
            (Reply::Items(NODES[*node].into(), items), None)
        }
        Resolved::Op(Op::Delete { node }) => match model[*node].take() {
            Some(n) => (
                Reply::Empty,
                Some((Ev::Delete(NODES[*node].into()), n.conf.access)),
            ),
            None => (missing, None),
        },
        Resolved::Op(Op::Purge { node }) => match model[*node].as_mut() {
            None => (missing, None),
            Some(n) if !n.conf.persist => {
                let mut e = error("feature-not-implemented", Some("unsupported"));
                if let Reply::Error(e) = &mut e {
                    e.feature = Some("persistent-items".into());
                }
                (e, None)
            }
            Some(n) => {
                n.items.clear();
                (
                    Reply::Empty,
                    Some((Ev::Purge(NODES[*node].into()), n.conf.access)),
                )
            }
        },
        Resolved::Op(Op::Retract { .. } | Op::Items { .. }) => unreachable!("resolved"),
    }
}

// ---- the wire ----

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('\'', "&apos;")
        .replace('"', "&quot;")
}

fn field(var: &str, value: &str) -> String {
    format!("<field var='{var}'><value>{value}</value></field>")
}

fn form_xml(form: &Form, form_type: &str) -> String {
    let mut x = format!(
        "<x xmlns='{DATA}' type='submit'><field var='FORM_TYPE' type='hidden'>\
         <value>{PUBSUB}#{form_type}</value></field>"
    );
    let bad_var = form.bad.map(|b| match b {
        Bad::Persist => "pubsub#persist_items",
        Bad::Access => "pubsub#access_model",
        Bad::MaxZero | Bad::MaxOverCap | Bad::MaxText => "pubsub#max_items",
        Bad::Unknown => "pubsub#title",
    });
    if let Some((p, digit)) = form.persist
        && bad_var != Some("pubsub#persist_items")
    {
        let v = match (p, digit) {
            (true, true) => "1",
            (true, false) => "true",
            (false, true) => "0",
            (false, false) => "false",
        };
        x += &field("pubsub#persist_items", v);
    }
    if let Some(a) = form.access
        && bad_var != Some("pubsub#access_model")
    {
        x += &field("pubsub#access_model", a.value());
    }
    if let Some(m) = form.max
        && bad_var != Some("pubsub#max_items")
    {
        let v = match m {
            MaxItems::N(n) => n.to_string(),
            MaxItems::Max => "max".into(),
        };
        x += &field("pubsub#max_items", &v);
    }
    if let (Some(bad), Some(var)) = (form.bad, bad_var) {
        let v = match bad {
            Bad::Persist => "yes",
            Bad::Access => "authorize",
            Bad::MaxZero => "0",
            Bad::MaxOverCap => "257",
            Bad::MaxText => "lots",
            Bad::Unknown => "A title",
        };
        x += &field(var, v);
    }
    x + "</x>"
}

fn items_xml(node: usize, newest: Option<usize>, ids: &[String]) -> String {
    let max = newest.map_or(String::new(), |m| format!(" max_items='{m}'"));
    let sel: String = ids
        .iter()
        .map(|i| format!("<item id='{}'/>", escape(i)))
        .collect();
    format!(
        "<pubsub xmlns='{PUBSUB}'><items node='{}'{max}>{sel}</items></pubsub>",
        NODES[node]
    )
}

/// The `<pubsub/>` request of `op` and the iq type.
fn request(op: &Resolved) -> (&'static str, String) {
    match op {
        Resolved::Op(Op::Publish {
            node,
            id,
            payload: p,
            options,
        }) => {
            let p = payload(*p);
            let id = id.map_or(String::new(), |i| {
                format!(" id='{}'", escape(IDS[usize::from(i)]))
            });
            let options = options.as_ref().map_or(String::new(), |o| {
                format!(
                    "<publish-options>{}</publish-options>",
                    form_xml(o, "publish-options")
                )
            });
            let body = format!(
                "<pubsub xmlns='{PUBSUB}'><publish node='{}'><item{id}>\
                 <v xmlns='{PAYLOAD_NS}' k='{}'>{}</v></item></publish>{options}</pubsub>",
                NODES[*node],
                escape(&p.attr),
                escape(&p.text)
            );
            ("set", body)
        }
        Resolved::Retract(node, id, notify) => {
            let notify = notify.map_or(String::new(), |n| {
                let v = match n {
                    (true, true) => "1",
                    (true, false) => "true",
                    (false, true) => "0",
                    (false, false) => "false",
                };
                format!(" notify='{v}'")
            });
            let body = format!(
                "<pubsub xmlns='{PUBSUB}'><retract node='{}'{notify}><item id='{}'/>\
                 </retract></pubsub>",
                NODES[*node],
                escape(id)
            );
            ("set", body)
        }
        Resolved::Op(Op::Create { node, form }) => {
            let configure = form.as_ref().map_or(String::new(), |f| {
                format!("<configure>{}</configure>", form_xml(f, "node_config"))
            });
            let body = format!(
                "<pubsub xmlns='{PUBSUB}'><create node='{}'/>{configure}</pubsub>",
                NODES[*node]
            );
            ("set", body)
        }
        Resolved::Op(Op::Configure { node, form }) => {
            let body = format!(
                "<pubsub xmlns='{OWNER_NS}'><configure node='{}'>{}</configure></pubsub>",
                NODES[*node],
                form_xml(form, "node_config")
            );
            ("set", body)
        }
        Resolved::Op(Op::ConfigureGet { node }) => (
            "get",
            format!(
                "<pubsub xmlns='{OWNER_NS}'><configure node='{}'/></pubsub>",
                NODES[*node]
            ),
        ),
        Resolved::Items(node, newest, ids) => ("get", items_xml(*node, *newest, ids)),
        Resolved::Op(Op::Delete { node }) => (
            "set",
            format!(
                "<pubsub xmlns='{OWNER_NS}'><delete node='{}'/></pubsub>",
                NODES[*node]
            ),
        ),
        Resolved::Op(Op::Purge { node }) => (
            "set",
            format!(
                "<pubsub xmlns='{OWNER_NS}'><purge node='{}'/></pubsub>",
                NODES[*node]
            ),
        ),
        Resolved::Op(Op::Retract { .. } | Op::Items { .. }) => unreachable!("resolved"),
    }
}

fn iq_xml(kind: &str, id: &str, to_owner: bool, body: &str) -> Element {
    let to = if to_owner {
        format!(" to='{OWNER}'")
    } else {
        String::new()
    };
    let xml = format!("<iq xmlns='jabber:client' type='{kind}' id='{id}'{to}>{body}</iq>");
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

fn observed_payload(item: &Element) -> Payload {
    let mut kids = item.elements();
    match (kids.next(), kids.next()) {
        (Some(v), None) if v.is("v", PAYLOAD_NS) => Payload {
            attr: v.attr("k").unwrap_or("<no k>").to_string(),
            text: v.text(),
        },
        _ => Payload {
            attr: "<not one payload>".into(),
            text: format!("{item:?}"),
        },
    }
}

/// The reply as the model describes it, shaped like `want`.
fn observe(reply: &Element, want: &Reply) -> Reply {
    if reply.attr("type") == Some("error") {
        let err = reply.get_child("error", "jabber:client");
        let app = err.and_then(|e| e.elements().find(|c| c.ns == ERRORS));
        return Reply::Error(StanzaError {
            condition: error_condition(reply).unwrap_or_default(),
            kind: err.and_then(|e| e.attr("type")).unwrap_or_default().into(),
            app: app.map(|a| a.name.clone()),
            feature: app.and_then(|a| a.attr("feature")).map(Into::into),
        });
    }
    if reply.attr("type") != Some("result") {
        return error("<not a result>", None);
    }
    match want {
        Reply::Published(..) => {
            let publish = reply
                .get_child("pubsub", PUBSUB)
                .and_then(|p| p.get_child("publish", PUBSUB));
            let node = publish.and_then(|p| p.attr("node")).unwrap_or_default();
            let id = publish
                .and_then(|p| p.get_child("item", PUBSUB))
                .and_then(|i| i.attr("id"))
                .unwrap_or_default();
            Reply::Published(node.into(), id.into())
        }
        Reply::Items(..) => {
            let items = reply
                .get_child("pubsub", PUBSUB)
                .and_then(|p| p.get_child("items", PUBSUB));
            let node = items.and_then(|i| i.attr("node")).unwrap_or_default();
            let list = items
                .map(|i| {
                    i.elements()
                        .map(|item| {
                            assert!(item.is("item", PUBSUB), "{item:?}");
                            let id = item.attr("id").unwrap_or_default().to_string();
                            (id, observed_payload(item))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Reply::Items(node.into(), list)
        }
        Reply::Config(_) => {
            let form = reply
                .get_child("pubsub", OWNER_NS)
                .and_then(|p| p.get_child("configure", OWNER_NS))
                .and_then(|c| c.get_child("x", DATA))
                .expect("a configuration form");
            let value = |var: &str| {
                form.elements()
                    .find(|f| f.attr("var") == Some(var))
                    .and_then(|f| f.get_child("value", DATA))
                    .map(Element::text)
                    .unwrap_or_default()
            };
            let access = match value("pubsub#access_model").as_str() {
                "open" => Access::Open,
                "presence" => Access::Presence,
                "whitelist" => Access::Whitelist,
                other => panic!("access model {other:?}"),
            };
            Reply::Config(Conf {
                persist: matches!(value("pubsub#persist_items").as_str(), "1" | "true"),
                access,
                max: value("pubsub#max_items").parse().expect("max_items number"),
            })
        }
        Reply::Empty => {
            assert!(reply.elements().next().is_none(), "empty result: {reply:?}");
            Reply::Empty
        }
        Reply::Error(..) => error("<a result>", None),
    }
}

/// The notifications in `conn`'s inbox, checked for their envelope.
fn take_events(net: &mut Net, conn: ConnId, to: &str) -> Vec<Ev> {
    let mut out = Vec::new();
    for msg in net.take_events(conn) {
        assert_eq!(msg.attr("from"), Some(OWNER), "{msg:?}");
        assert_eq!(msg.attr("to"), Some(to), "{msg:?}");
        assert_eq!(msg.attr("type"), Some("headline"), "{msg:?}");
        let event = msg.get_child("event", EVENT).expect("event");
        let kids: Vec<&Element> = event.elements().collect();
        assert_eq!(kids.len(), 1, "{msg:?}");
        let what = kids[0];
        let node = what.attr("node").unwrap_or_default().to_string();
        let ev = match what.name.as_str() {
            "items" => {
                let inner: Vec<&Element> = what.elements().collect();
                assert_eq!(inner.len(), 1, "{msg:?}");
                let id = inner[0].attr("id").unwrap_or_default().to_string();
                match inner[0].name.as_str() {
                    "item" => {
                        let p = observed_payload(inner[0]);
                        Ev::Item(node, id, p.attr, p.text)
                    }
                    "retract" => Ev::Retract(node, id),
                    other => panic!("{other} in {msg:?}"),
                }
            }
            "delete" => Ev::Delete(node),
            "purge" => Ev::Purge(node),
            other => panic!("{other} in {msg:?}"),
        };
        out.push(ev);
    }
    out
}

// ---- the world ----

struct World {
    net: Net,
    balcony: ConnId,
    chamber: ConnId,
    /// Romeo: subscribed to Juliet's presence.
    contact: ConnId,
    /// Tybalt: no relation to Juliet.
    stranger: ConnId,
    model: Model,
    /// Whether the owner's two sessions are there.
    owner_online: bool,
    /// Whether Romeo has a subscription to Juliet's presence.
    subscribed: bool,
    /// Whether single requests run with store failures injected.
    failures: bool,
    /// Ids given to generated items so far (they must never repeat).
    generated: Vec<String>,
    iq_seq: u32,
}

const SESSIONS: [(&str, &str); 4] = [
    ("juliet@capulet.lit/balcony", "r0m30"),
    ("juliet@capulet.lit/chamber", "r0m30"),
    ("romeo@capulet.lit/orchard", "jul13t"),
    ("tybalt@capulet.lit/street", "pr1nce"),
];

fn config(tiny_cache: bool) -> ServerConfig {
    let mut cfg = ServerConfig::new("capulet.lit");
    cfg.scram_iterations = 4096;
    // Bursts of requests are the point here, not the rate limit.
    cfg.limits.stanza_rate = None;
    if tiny_cache {
        // Evictions, and nodes with a few items too large to cache.
        cfg.value_cache = CacheLimits {
            max_entries: 1,
            max_bytes: 2048,
            max_value_bytes: 400,
        };
    }
    cfg
}

impl World {
    fn new(schedule: Schedule, tiny_cache: bool, failures: bool) -> World {
        let mut net = Net::with_config(config(tiny_cache));
        for (jid, pw) in SESSIONS {
            net.add_user(jid.split('/').next().expect("bare"), pw);
        }
        let mut w = World {
            net,
            balcony: ConnId(0),
            chamber: ConnId(0),
            contact: ConnId(0),
            stranger: ConnId(0),
            model: [None, None],
            owner_online: true,
            subscribed: false,
            failures,
            generated: Vec::new(),
            iq_seq: 0,
        };
        w.log_in();
        w.subscription(true);
        w.net.schedule = Some(schedule);
        w
    }

    fn log_in(&mut self) {
        let net = &mut self.net;
        // The owner's sessions advertise nothing (they get every notification); the
        // contact wants the events of the first node only (XEP-0163 +notify), the stranger
        // those of both.
        self.balcony = net.connect_available(SESSIONS[0].0, SESSIONS[0].1);
        self.chamber = net.connect_available(SESSIONS[1].0, SESSIONS[1].1);
        self.contact = net.connect_notify(SESSIONS[2].0, SESSIONS[2].1, &NODES[..1]);
        self.stranger = net.connect_notify(SESSIONS[3].0, SESSIONS[3].1, &NODES);
        self.owner_online = true;
        self.clear();
    }

    fn owner_offline(&mut self) {
        if !self.owner_online {
            return;
        }
        for id in [self.balcony, self.chamber] {
            self.net.server.handle_eof(id, self.net.now);
            self.net.clients.remove(&id);
            self.net.drive();
        }
        self.owner_online = false;
        self.clear();
    }

    fn owner_online(&mut self) {
        if self.owner_online {
            return;
        }
        self.balcony = self.net.connect_available(SESSIONS[0].0, SESSIONS[0].1);
        self.chamber = self.net.connect_available(SESSIONS[1].0, SESSIONS[1].1);
        self.owner_online = true;
        self.clear();
    }

    fn subscription(&mut self, on: bool) {
        if on == self.subscribed {
            return;
        }
        self.owner_online();
        let el = |xml: &str| Element::parse(xml.as_bytes()).expect("test XML parses");
        if on {
            // Romeo asks, Juliet approves: her roster says `from`.
            self.net.send(
                self.contact,
                &el(&format!(
                    "<presence xmlns='jabber:client' to='{OWNER}' type='subscribe'/>"
                )),
            );
        }
        let kind = if on { "subscribed" } else { "unsubscribed" };
        self.net.send(
            self.balcony,
            &el(&format!(
                "<presence xmlns='jabber:client' to='romeo@capulet.lit' type='{kind}'/>"
            )),
        );
        self.subscribed = on;
        self.clear();
    }

    fn clear(&mut self) {
        self.net.inbox.clear();
    }

    fn restart(&mut self) {
        self.net.restart();
        self.log_in();
    }

    fn next_id(&mut self) -> String {
        self.iq_seq += 1;
        format!("q{}", self.iq_seq)
    }

    /// Send `ops` from `from` in one write, settle, and check every reply and every
    /// session's notifications against the model. `to_owner`: addressed to the owner's
    /// bare JID; `foreign`: writes by someone else.
    fn run(&mut self, from: ConnId, who: Who, ops: &[Op], to_owner: bool, foreign: bool) {
        let before = self.model.clone();
        let mut bytes = Vec::new();
        let mut expected = Vec::new();
        let mut events: Vec<(Ev, Access)> = Vec::new();
        for (k, op) in ops.iter().enumerate() {
            let resolved = resolve_op(&self.model, op);
            let (kind, body) = request(&resolved);
            let id = self.next_id();
            bytes.extend(iq_xml(kind, &id, to_owner, &body).to_bytes());
            let (reply, ev) = if foreign {
                (error("forbidden", None), None)
            } else {
                predict(&mut self.model, &resolved, who, &generated(k))
            };
            expected.push((id, reply));
            events.extend(ev);
        }
        // Injected failures only for single requests of the owner or reads, where the
        // outcome is clear: the request fails, nothing changes, nobody is notified.
        let may_fail = self.failures && ops.len() == 1 && !foreign;
        if let Some(s) = &mut self.net.schedule {
            s.fail_one_in = if may_fail { 3 } else { 0 };
        }
        let failed_before = self.net.failed;
        self.net
            .send_raw(from, std::str::from_utf8(&bytes).expect("utf-8"));
        if let Some(s) = &mut self.net.schedule {
            s.fail_one_in = 0;
        }
        if self.net.failed > failed_before {
            self.model = before;
            events.clear();
            for (_, want) in &mut expected {
                *want = error("internal-server-error", None);
            }
        }

        // Replies, in any order; generated ids learnt from them.
        let mut inbox = self.net.take_inbox(from);
        let mut names = HashMap::new();
        for (k, (id, want)) in expected.iter().enumerate() {
            let pos = inbox
                .iter()
                .position(|e| e.name == "iq" && e.attr("id") == Some(id.as_str()))
                .unwrap_or_else(|| panic!("no reply to {id}: {inbox:?}"));
            let reply = inbox.remove(pos);
            if to_owner {
                assert_eq!(reply.attr("from"), Some(OWNER), "{reply:?}");
            }
            let got = observe(&reply, want);
            if let (Reply::Published(_, placeholder), Reply::Published(_, actual)) = (want, &got)
                && *placeholder == generated(k)
            {
                assert!(!actual.is_empty(), "generated id is empty");
                let fixed = IDS.contains(&actual.as_str());
                assert!(
                    !self.generated.contains(actual) && !fixed,
                    "generated id {actual} repeats"
                );
                self.generated.push(actual.clone());
                names.insert(placeholder.clone(), actual.clone());
            }
            let want = rename_reply(want, &names);
            assert_eq!(got, want, "reply to {id}: {reply:?}");
        }
        // What is left goes back: notifications are taken below.
        self.net.inbox.entry(from).or_default().extend(inbox);
        for (placeholder, actual) in &names {
            for node in self.model.iter_mut().flatten() {
                for (i, _) in &mut node.items {
                    if i == placeholder {
                        *i = actual.clone();
                    }
                }
            }
        }

        let events: Vec<(Ev, Access)> = events
            .into_iter()
            .map(|(ev, a)| (rename_ev(ev, &names), a))
            .collect();
        let sessions = [
            (self.balcony, SESSIONS[0].0, Who::Owner),
            (self.chamber, SESSIONS[1].0, Who::Owner),
            (self.contact, SESSIONS[2].0, Who::Contact),
            (self.stranger, SESSIONS[3].0, Who::Stranger),
        ];
        for (conn, jid, recipient) in sessions {
            if recipient == Who::Owner && !self.owner_online {
                continue;
            }
            let want: Vec<Ev> = events
                .iter()
                .filter(|(ev, access)| match recipient {
                    Who::Owner => true,
                    Who::Contact => {
                        self.subscribed
                            && matches!(access, Access::Presence | Access::Open)
                            && ev.node() == NODES[0]
                    }
                    Who::Stranger => false,
                })
                .map(|(ev, _)| ev.clone())
                .collect();
            let got = take_events(&mut self.net, conn, jid);
            // Operations on one node are serialized; different nodes may interleave.
            for node in NODES {
                let of = |list: &[Ev]| -> Vec<Ev> {
                    list.iter().filter(|e| e.node() == node).cloned().collect()
                };
                assert_eq!(of(&got), of(&want), "notifications to {jid} on {node}");
            }
            assert_eq!(got.len(), want.len(), "notifications to {jid}: {got:?}");
            let rest = self.net.take_inbox(conn);
            assert!(rest.is_empty(), "unexpected stanzas to {jid}: {rest:?}");
        }
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Owner {
                ops,
                chamber,
                addressed,
            } => {
                self.owner_online();
                let from = if *chamber { self.chamber } else { self.balcony };
                self.run(from, Who::Owner, ops, *addressed, false);
            }
            Step::Read { who, node, select } => {
                let (from, who) = self.other(*who);
                let op = Op::Items {
                    node: *node,
                    select: select.clone(),
                };
                self.run(from, who, &[op], true, false);
            }
            Step::ForeignPublish { who, node } => {
                let (from, who) = self.other(*who);
                let op = Op::Publish {
                    node: *node,
                    id: Some(0),
                    payload: (1, 1),
                    options: None,
                };
                self.run(from, who, &[op], true, true);
            }
            Step::OwnerOffline => self.owner_offline(),
            Step::Subscription(on) => self.subscription(*on),
            Step::Restart => self.restart(),
        }
    }

    fn other(&self, who: Other) -> (ConnId, Who) {
        match who {
            // Without a subscription Romeo is a stranger to Juliet's nodes.
            Other::Contact if self.subscribed => (self.contact, Who::Contact),
            Other::Contact => (self.contact, Who::Stranger),
            Other::Stranger => (self.stranger, Who::Stranger),
        }
    }
}

fn rename(s: &str, names: &HashMap<String, String>) -> String {
    names.get(s).cloned().unwrap_or_else(|| s.to_string())
}

fn rename_reply(r: &Reply, names: &HashMap<String, String>) -> Reply {
    match r {
        Reply::Published(n, id) => Reply::Published(n.clone(), rename(id, names)),
        Reply::Items(n, items) => Reply::Items(
            n.clone(),
            items
                .iter()
                .map(|(i, p)| (rename(i, names), p.clone()))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn rename_ev(ev: Ev, names: &HashMap<String, String>) -> Ev {
    match ev {
        Ev::Item(n, id, a, t) => Ev::Item(n, rename(&id, names), a, t),
        Ev::Retract(n, id) => Ev::Retract(n, rename(&id, names)),
        other => other,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn pep_nodes_follow_the_model(
        steps in prop::collection::vec(step(), 1..40),
        seed in 1u64..,
        any_order in any::<bool>(),
        tiny_cache in any::<bool>(),
        failures in any::<bool>(),
    ) {
        let schedule = Schedule { state: seed, any_order, fail_one_in: 0 };
        let mut w = World::new(schedule, tiny_cache, failures);
        for step in &steps {
            w.step(step);
        }
        // Whatever the last step was, a cold server must still agree with the model.
        w.restart();
        for node in 0..NODES.len() {
            let ops = [Op::ConfigureGet { node }, Op::Items { node, select: Select::All }];
            w.run(w.balcony, Who::Owner, &ops, false, false);
        }
    }
}
