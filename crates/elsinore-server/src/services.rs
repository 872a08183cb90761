//! Service queries the server answers for itself and for accounts: jabber:iq:version,
//! jabber:iq:time and urn:xmpp:time (XEP-0202), vcard-temp (XEP-0054), jabber:iq:last
//! (XEP-0012), disco#items, the guide's jabber:iq:agents / jabber:iq:agent, jabber:iq:search
//! over the user directory (XEP-0055), and jabber:iq:register after authentication
//! (password change, `<remove/>`, the guide's `key`).
//!
//! Also the entry point for the components (group chat, update service): [`Server::intercept`]
//! runs before the ordinary routing and takes what belongs to them.

use std::collections::HashMap;

use elsinore_jid::{BareJid, Jid};
use elsinore_stanza::datetime::{format_datetime, format_legacy_stamp};
use elsinore_stanza::{
    DefinedCondition, NS_DATA_FORMS, NS_DISCO_ITEMS, NS_REGISTER, NS_VERSION, StanzaError,
    StreamError, StreamErrorCondition,
};
use elsinore_storage::{EffectResult, Key, Op, Space};
use elsinore_xml::Element;

use crate::accounts;
use crate::im::RosterUpdate;
use crate::iq::{IqHead, iq_error, iq_result};
use crate::muc::Rooms;
use crate::server::{ConnId, Server};
use elsinore_stream::Instant;

/// jabber:iq:time (the guide).
pub const NS_TIME: &str = "jabber:iq:time";
/// XEP-0202 Entity Time.
pub const NS_URN_TIME: &str = "urn:xmpp:time";
/// XEP-0012 Last Activity.
pub const NS_LAST: &str = "jabber:iq:last";
/// XEP-0054 vcard-temp.
pub const NS_VCARD: &str = "vcard-temp";
/// The guide's list of agents.
pub const NS_AGENTS: &str = "jabber:iq:agents";
/// The guide's description of one agent.
pub const NS_AGENT: &str = "jabber:iq:agent";
/// jabber:iq:search (XEP-0055, the guide's fields).
pub const NS_SEARCH: &str = "jabber:iq:search";

/// Features the server itself adds to its disco#info.
pub(crate) const SERVER_FEATURES: &[&str] = &[
    NS_DISCO_ITEMS,
    NS_VERSION,
    NS_TIME,
    NS_URN_TIME,
    NS_LAST,
    NS_VCARD,
    NS_SEARCH,
    // XEP-0004 §6: data forms are understood (the search form of XEP-0055).
    NS_DATA_FORMS,
    NS_REGISTER,
    NS_AGENTS,
];

/// Longest directory field kept (bytes); longer values are cut at a char boundary.
const MAX_FIELD: usize = 128;
const DIRECTORY_NS: &str = "urn:elsinore:directory";
const SEARCH_FIELDS: [&str; 4] = ["first", "last", "nick", "email"];

/// State of the service modules kept in the server.
#[derive(Debug)]
pub(crate) struct Extras {
    /// When the server started (jabber:iq:last on the server: uptime).
    pub(crate) started: Instant,
    /// Group chat rooms (in memory).
    pub(crate) rooms: Rooms,
    /// The guide's registration `key` handed to each connection.
    pub(crate) register_keys: HashMap<ConnId, String>,
}

impl Extras {
    pub(crate) fn new(now: Instant) -> Self {
        Extras {
            started: now,
            rooms: Rooms::default(),
            register_keys: HashMap::new(),
        }
    }
}

/// One entry of the service list (disco#items, jabber:iq:agents).
pub(crate) struct Service {
    pub(crate) jid: String,
    pub(crate) name: &'static str,
    pub(crate) description: &'static str,
    pub(crate) service: &'static str,
    pub(crate) groupchat: bool,
    pub(crate) register: bool,
    pub(crate) search: bool,
}

impl Service {
    /// The guide's `<agent>` (or `<query xmlns='jabber:iq:agent'>` when `ns` is that).
    pub(crate) fn agent_element(&self, name: &str, ns: &str) -> Element {
        let mut a = Element::new(name, ns);
        if ns == NS_AGENTS {
            a.set_attr("jid", self.jid.clone());
        }
        a = a
            .with_child(Element::new("name", ns).with_text(self.name))
            .with_child(Element::new("description", ns).with_text(self.description))
            .with_child(Element::new("service", ns).with_text(self.service));
        if self.groupchat {
            a = a.with_child(Element::new("groupchat", ns));
        }
        if self.register {
            a = a.with_child(Element::new("register", ns));
        }
        if self.search {
            a = a.with_child(Element::new("search", ns));
        }
        a
    }
}

/// Where a service iq is addressed.
enum Target {
    Server,
    Account(BareJid),
}

pub(crate) fn directory_key(domain: &str) -> Key {
    Key::new(domain, Space::VCard, "directory")
}

fn vcard_key(account: &BareJid) -> Key {
    Key::new(account.to_string(), Space::VCard, "vcard")
}

fn last_key(account: &BareJid) -> Key {
    Key::new(account.to_string(), Space::Last, "")
}

fn clip(s: &str) -> String {
    let s = s.trim();
    let mut end = s.len().min(MAX_FIELD);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_string()
}

/// The searchable fields of a vCard: first, last, nick, email.
fn directory_fields(vcard: &Element) -> [String; 4] {
    let child_text = |parent: Option<&Element>, name: &str| {
        parent
            .and_then(|p| p.get_child(name, NS_VCARD))
            .map(|e| clip(&e.text()))
            .unwrap_or_default()
    };
    let n = vcard.get_child("N", NS_VCARD);
    let email = vcard.get_child("EMAIL", NS_VCARD).map(|e| {
        // XEP-0054 puts the address in USERID; the guide writes it as text.
        match e.get_child("USERID", NS_VCARD) {
            Some(u) => clip(&u.text()),
            None => clip(&e.text()),
        }
    });
    [
        child_text(n, "GIVEN"),
        child_text(n, "FAMILY"),
        child_text(Some(vcard), "NICKNAME"),
        email.unwrap_or_default(),
    ]
}

/// Parse the stored directory (absent or damaged: empty).
pub(crate) fn parse_directory(bytes: Option<&[u8]>) -> Element {
    bytes
        .and_then(|b| Element::parse(b).ok())
        .filter(|e| e.is("directory", DIRECTORY_NS))
        .unwrap_or_else(|| Element::new("directory", DIRECTORY_NS))
}

/// Replace (or with `None` remove) `account`'s entry in the directory.
pub(crate) fn set_directory_entry(
    dir: &mut Element,
    account: &BareJid,
    fields: Option<[String; 4]>,
) {
    let jid = account.to_string();
    dir.children.retain(|n| match n {
        elsinore_xml::Node::Element(e) => e.attr("jid") != Some(jid.as_str()),
        _ => false,
    });
    if let Some(fields) = fields {
        if fields.iter().all(String::is_empty) {
            return;
        }
        let mut item = Element::new("item", DIRECTORY_NS).with_attr("jid", jid);
        for (name, value) in SEARCH_FIELDS.iter().zip(fields) {
            item.set_attr(*name, value);
        }
        dir.children.push(elsinore_xml::Node::Element(item));
    }
}

fn err(cond: DefinedCondition, text: &str) -> StanzaError {
    StanzaError::new(cond).with_text(text)
}

/// Most `<field/>`s read from a submitted search form. The form has five (XEP-0055 §3), so
/// a longer one is refused rather than walked.
const MAX_FORM_FIELDS: usize = 16;
/// Labels of [`SEARCH_FIELDS`] in the data forms.
const SEARCH_LABELS: [&str; 4] = ["Given Name", "Family Name", "Nickname", "Email"];

/// The guide's search: a child per field, clipped, lowercased; blanks are not searched.
fn legacy_fields(query: &Element) -> Vec<(&'static str, String)> {
    SEARCH_FIELDS
        .iter()
        .filter_map(|f| {
            let v = query.get_child(f, NS_SEARCH)?.text();
            let v = clip(&v).to_lowercase();
            (!v.is_empty()).then_some((*f, v))
        })
        .collect()
}

fn form_field(var: &str, kind: &str, label: &str) -> Element {
    Element::new("field", NS_DATA_FORMS)
        .with_attr("var", var)
        .with_attr("type", kind)
        .with_attr("label", label)
}

fn form_value(var: &str, value: &str) -> Element {
    Element::new("field", NS_DATA_FORMS)
        .with_attr("var", var)
        .with_child(Element::new("value", NS_DATA_FORMS).with_text(value))
}

fn form_type() -> Element {
    form_value("FORM_TYPE", NS_SEARCH).with_attr("type", "hidden")
}

/// XEP-0055 §3 search form: the legacy fields as text-single fields.
fn search_form() -> Element {
    let mut x = Element::new("x", NS_DATA_FORMS)
        .with_attr("type", "form")
        .with_child(Element::new("title", NS_DATA_FORMS).with_text("User Directory Search"))
        .with_child(Element::new("instructions", NS_DATA_FORMS).with_text(
            "Fill in at least one field; every field filled in must match part of an entry.",
        ))
        .with_child(form_type());
    for (f, label) in SEARCH_FIELDS.iter().zip(SEARCH_LABELS) {
        x = x.with_child(form_field(f, "text-single", label));
    }
    x
}

/// The fields of a submitted search form, as [`legacy_fields`] gives them; `Err` names why
/// the form is a `bad-request`.
fn submitted_fields(x: &Element) -> Result<Vec<(&'static str, String)>, &'static str> {
    // XEP-0004 §3.1: only a submitted form asks for a search; `cancel` (or a `form` /
    // `result` sent back) gives nothing to search with.
    match x.attr("type") {
        Some("submit") => {}
        Some("cancel") => return Err("the search form was cancelled"),
        _ => return Err("expected a submitted search form"),
    }
    let mut wanted = Vec::new();
    let mut seen = [false; SEARCH_FIELDS.len()];
    let fields = x.elements().filter(|e| e.is("field", NS_DATA_FORMS));
    for (n, f) in fields.enumerate() {
        if n == MAX_FORM_FIELDS {
            return Err("too many fields in the search form");
        }
        let Some(var) = f.attr("var") else {
            return Err("a submitted field needs a var");
        };
        let mut values = f.elements().filter(|v| v.is("value", NS_DATA_FORMS));
        let value = values.next().map(Element::text).unwrap_or_default();
        if var == "FORM_TYPE" {
            if value.trim() != NS_SEARCH {
                return Err("the form is not a jabber:iq:search form");
            }
            continue;
        }
        // XEP-0004: a submitted field the processor does not understand is ignored.
        let Some(i) = SEARCH_FIELDS.iter().position(|s| *s == var) else {
            continue;
        };
        // text-single: one field, one value.
        if seen[i] || values.next().is_some() {
            return Err("a search field is repeated or has several values");
        }
        seen[i] = true;
        let v = clip(&value).to_lowercase();
        if !v.is_empty() {
            wanted.push((SEARCH_FIELDS[i], v));
        }
    }
    Ok(wanted)
}

/// XEP-0055 §3 results: `<reported/>` columns, then an `<item/>` per directory entry.
fn result_form(hits: &[&Element]) -> Element {
    let mut reported =
        Element::new("reported", NS_DATA_FORMS).with_child(form_field("jid", "jid-single", "JID"));
    for (f, label) in SEARCH_FIELDS.iter().zip(SEARCH_LABELS) {
        reported = reported.with_child(form_field(f, "text-single", label));
    }
    let mut x = Element::new("x", NS_DATA_FORMS)
        .with_attr("type", "result")
        .with_child(form_type())
        .with_child(reported);
    for entry in hits {
        let mut item = Element::new("item", NS_DATA_FORMS)
            .with_child(form_value("jid", entry.attr("jid").unwrap_or_default()));
        for f in SEARCH_FIELDS {
            item = item.with_child(form_value(f, entry.attr(f).unwrap_or_default()));
        }
        x = x.with_child(item);
    }
    x
}

impl Server {
    /// The services: the server itself (user directory), group chat, update service.
    pub(crate) fn service_list(&self) -> Vec<Service> {
        let d = &self.config.domain;
        let mut list = vec![Service {
            jid: d.clone(),
            name: "User Directory",
            description: "Search for the users of this server by name, nickname or email \
                          (from their vCards).",
            service: "jud",
            groupchat: false,
            register: true,
            search: true,
        }];
        if self.config.muc_enabled {
            list.push(Service {
                jid: format!("conference.{d}"),
                name: "Conference Server",
                description: "You can create and participate in group conferences.",
                service: "public",
                groupchat: true,
                register: false,
                search: false,
            });
        }
        if !self.config.releases.is_empty() {
            list.push(Service {
                jid: format!("update.{d}"),
                name: "Update Service",
                description: "Release information for Jabber software.",
                service: "update",
                groupchat: false,
                register: false,
                search: false,
            });
        }
        list
    }

    /// Take the stanzas that belong to a component or a service handler; give back
    /// the others for the ordinary dispatch.
    pub(crate) fn intercept(
        &mut self,
        id: ConnId,
        from: &Jid,
        el: Element,
        to: Option<&Jid>,
        now: Instant,
    ) -> Option<Element> {
        // `conference.<domain>` and `update.<domain>`, compared without building them.
        let sub = |t: &Jid, label: &str| {
            t.domain()
                .strip_prefix(label)
                .and_then(|rest| rest.strip_prefix('.'))
                == Some(self.config.domain.as_str())
        };
        if let Some(t) = to {
            if self.config.muc_enabled && sub(t, "conference") {
                self.handle_muc(id, from, el, t.clone(), now);
                return None;
            }
            if !self.config.releases.is_empty() && sub(t, "update") {
                self.handle_autoupdate(id, from, el, t.clone(), now);
                return None;
            }
        }
        if el.name == "presence" && to.is_none() && el.attr("type") == Some("unavailable") {
            // Broadcast unavailable also leaves every room (XEP-0045 7.14).
            self.muc_leave_all(from, now);
            return Some(el);
        }
        if el.name != "iq" || !matches!(el.attr("type"), Some("get" | "set")) {
            return Some(el);
        }
        let own_vcard = el.elements().next().is_some_and(|p| p.ns == NS_VCARD);
        let target = match to {
            // XEP-0054: a vCard iq without `to` is about the sender's own vCard.
            None if own_vcard => Target::Account(from.to_bare()),
            None => Target::Server,
            Some(t) if t.domain() != self.config.domain || t.resource().is_some() => {
                return Some(el);
            }
            Some(t) => match t.node() {
                None => Target::Server,
                Some(_) => Target::Account(t.to_bare()),
            },
        };
        let Some(payload) = el.elements().next() else {
            return Some(el);
        };
        let ns = payload.ns.as_str();
        let node_attr = payload.attr("node").is_some();
        match (&target, ns) {
            (Target::Server, NS_VERSION | NS_TIME | NS_URN_TIME | NS_AGENTS | NS_AGENT)
            | (Target::Server, NS_SEARCH | NS_REGISTER)
            | (_, NS_LAST | NS_VCARD) => {}
            (Target::Server, NS_DISCO_ITEMS) if !node_attr => {}
            _ => return Some(el),
        }
        self.handle_service_iq(id, from, el, target, now);
        None
    }

    fn handle_service_iq(&mut self, id: ConnId, from: &Jid, el: Element, to: Target, now: Instant) {
        let head = IqHead {
            id: el.attr("id").unwrap_or_default().to_string(),
            from: Some(from.clone()),
            to: el.attr("to").map(str::to_string),
        };
        let Some(payload) = el.elements().next().cloned() else {
            return;
        };
        let get = el.attr("type") == Some("get");
        let ns = payload.ns.clone();
        let reply = {
            let head = head.clone();
            move |s: &mut Server, r: Result<Option<Element>, StanzaError>, now| {
                let el = match r {
                    Ok(p) => iq_result(&head, p),
                    Err(e) => iq_error(&head, None, e),
                };
                s.deliver_to_conn(id, &el, now);
            }
        };
        let not_allowed = || err(DefinedCondition::NotAllowed, "only get is defined here");
        match (to, ns.as_str()) {
            (Target::Server, NS_VERSION) if get => {
                let q = Element::new("query", NS_VERSION)
                    .with_child(Element::new("name", NS_VERSION).with_text("elsinore"))
                    .with_child(
                        Element::new("version", NS_VERSION).with_text(env!("CARGO_PKG_VERSION")),
                    )
                    .with_child(Element::new("os", NS_VERSION).with_text(std::env::consts::OS));
                reply(self, Ok(Some(q)), now);
            }
            (Target::Server, NS_TIME | NS_URN_TIME) if get => {
                let r = match self.wall_ms(now) {
                    None => Err(err(
                        DefinedCondition::ServiceUnavailable,
                        "the server does not know the time",
                    )),
                    Some(ms) if ns == NS_TIME => Ok(Some(
                        Element::new("query", NS_TIME)
                            .with_child(
                                Element::new("utc", NS_TIME).with_text(format_legacy_stamp(ms)),
                            )
                            .with_child(Element::new("tz", NS_TIME).with_text("UTC"))
                            .with_child(
                                Element::new("display", NS_TIME)
                                    .with_text(format_datetime(ms - ms % 1000)),
                            ),
                    )),
                    Some(ms) => Ok(Some(
                        Element::new("time", NS_URN_TIME)
                            .with_child(Element::new("tzo", NS_URN_TIME).with_text("+00:00"))
                            .with_child(
                                Element::new("utc", NS_URN_TIME).with_text(format_datetime(ms)),
                            ),
                    )),
                };
                reply(self, r, now);
            }
            (Target::Server, NS_AGENTS) if get => {
                let mut q = Element::new("query", NS_AGENTS);
                for s in self.service_list() {
                    q = q.with_child(s.agent_element("agent", NS_AGENTS));
                }
                reply(self, Ok(Some(q)), now);
            }
            (Target::Server, NS_AGENT) if get => {
                let list = self.service_list();
                let q = list.first().map(|s| s.agent_element("query", NS_AGENT));
                reply(self, Ok(q), now);
            }
            (Target::Server, NS_DISCO_ITEMS) if get => {
                let mut q = Element::new("query", NS_DISCO_ITEMS);
                for s in self.service_list().into_iter().skip(1) {
                    q = q.with_child(
                        Element::new("item", NS_DISCO_ITEMS)
                            .with_attr("jid", s.jid)
                            .with_attr("name", s.name),
                    );
                }
                reply(self, Ok(Some(q)), now);
            }
            (Target::Server, NS_LAST) if get => {
                let secs = now.as_millis().saturating_sub(self.ext.started.as_millis()) / 1000;
                let q = Element::new("query", NS_LAST).with_attr("seconds", secs.to_string());
                reply(self, Ok(Some(q)), now);
            }
            (Target::Account(account), NS_LAST) if get => {
                self.last_activity(id, head, from, account, now);
            }
            (Target::Server, NS_VCARD) if get => {
                let q = Element::new("vCard", NS_VCARD)
                    .with_child(Element::new("FN", NS_VCARD).with_text("elsinore"))
                    .with_child(
                        Element::new("DESC", NS_VCARD)
                            .with_text(format!("XMPP server for {}", self.config.domain)),
                    );
                reply(self, Ok(Some(q)), now);
            }
            (Target::Account(account), NS_VCARD) if get => {
                self.run_effect(Op::Get(vcard_key(&account)), move |s, result, now| {
                    let r = match result {
                        EffectResult::Value(Some(b)) => Element::parse(&b)
                            .map(Some)
                            .map_err(|_| StanzaError::new(DefinedCondition::InternalServerError)),
                        // XEP-0054: no vCard is an empty one.
                        EffectResult::Value(None) => Ok(Some(Element::new("vCard", NS_VCARD))),
                        _ => Err(StanzaError::new(DefinedCondition::InternalServerError)),
                    };
                    reply(s, r, now);
                });
            }
            (target, NS_VCARD) => {
                let own = matches!(&target, Target::Account(a) if *a == from.to_bare());
                if !own || payload.name != "vCard" {
                    let e = err(
                        DefinedCondition::Forbidden,
                        "only your own vCard can be set",
                    );
                    reply(self, Err(e), now);
                    return;
                }
                self.set_vcard(from.to_bare(), payload, now, move |s, r, now| {
                    reply(s, r.map(|()| None), now)
                });
            }
            (Target::Server, NS_SEARCH) => self.search(id, head, &payload, get, now),
            (Target::Server, NS_REGISTER) => {
                self.register_authenticated(id, head, &payload, get, now)
            }
            _ => reply(self, Err(not_allowed()), now),
        }
    }

    // ---- vcard-temp -------------------------------------------------------------

    /// Store `vcard` as `account`'s and update the directory, atomically.
    fn set_vcard(
        &mut self,
        account: BareJid,
        vcard: Element,
        now: Instant,
        k: impl FnOnce(&mut Server, Result<(), StanzaError>, Instant) + Send + 'static,
    ) {
        let bytes = vcard.to_bytes();
        if bytes.len() > self.config.max_vcard_bytes {
            let e = err(
                DefinedCondition::NotAcceptable,
                "the vCard is larger than this server accepts",
            );
            k(self, Err(e), now);
            return;
        }
        let fields = directory_fields(&vcard);
        let key = directory_key(&self.config.domain);
        let max_entries = self.config.max_directory_entries;
        self.exclusive(key.clone(), now, move |s: &mut Server, _now| {
            s.run_effect(Op::Get(key.clone()), move |s, result, now| {
                let EffectResult::Value(old) = result else {
                    k(
                        s,
                        Err(StanzaError::new(DefinedCondition::InternalServerError)),
                        now,
                    );
                    s.release(&key);
                    return;
                };
                let mut dir = parse_directory(old.as_deref());
                set_directory_entry(&mut dir, &account, Some(fields));
                if dir.elements().count() > max_entries {
                    // The directory is full: the vCard is stored, just not searchable.
                    set_directory_entry(&mut dir, &account, None);
                }
                let op = Op::Batch(vec![
                    Op::Put(vcard_key(&account), bytes),
                    Op::Put(key.clone(), dir.to_bytes()),
                ]);
                s.run_effect(op, move |s, result, now| {
                    let r = match result {
                        EffectResult::Batch(_) => Ok(()),
                        _ => Err(StanzaError::new(DefinedCondition::InternalServerError)),
                    };
                    k(s, r, now);
                    s.release(&key);
                });
            });
        });
    }

    // ---- jabber:iq:last -----------------------------------------------------------

    fn last_activity(
        &mut self,
        id: ConnId,
        head: IqHead,
        from: &Jid,
        account: BareJid,
        now: Instant,
    ) {
        let requester = from.to_bare();
        let own = requester == account;
        let owner = account.clone();
        // `allowed`: `None` when the owner's roster could not be read (a store failure is
        // the server's problem, not a refusal).
        let answer = move |s: &mut Server, allowed: Option<bool>, now: Instant| {
            let Some(allowed) = allowed else {
                let e = StanzaError::new(DefinedCondition::InternalServerError);
                s.deliver_to_conn(id, &iq_error(&head, None, e), now);
                return;
            };
            if !allowed {
                let e = err(
                    DefinedCondition::Forbidden,
                    "last activity is shown to presence subscribers only",
                );
                s.deliver_to_conn(id, &iq_error(&head, None, e), now);
                return;
            }
            if !s.available_sessions(&account).is_empty() {
                // XEP-0012: an available account is active now.
                let q = Element::new("query", NS_LAST).with_attr("seconds", "0");
                s.deliver_to_conn(id, &iq_result(&head, Some(q)), now);
                return;
            }
            let wall = s.wall_ms(now);
            s.run_effect(Op::Get(last_key(&account)), move |s, result, now| {
                let stamp = match &result {
                    EffectResult::Value(Some(b)) => core::str::from_utf8(b)
                        .ok()
                        .and_then(|t| t.trim().parse::<u64>().ok()),
                    _ => None,
                };
                let el = match (stamp, wall) {
                    (Some(then), Some(wall)) => {
                        let secs = wall.saturating_sub(then) / 1000;
                        let q =
                            Element::new("query", NS_LAST).with_attr("seconds", secs.to_string());
                        iq_result(&head, Some(q))
                    }
                    _ if result.is_failed() => iq_error(
                        &head,
                        None,
                        StanzaError::new(DefinedCondition::InternalServerError),
                    ),
                    _ => iq_error(
                        &head,
                        None,
                        err(DefinedCondition::ItemNotFound, "no last activity is known"),
                    ),
                };
                s.deliver_to_conn(id, &el, now);
            });
        };
        if own {
            answer(self, Some(true), now);
            return;
        }
        // XEP-0012 4: only entities with a subscription to the account's presence.
        self.with_roster(owner, now, move |_, roster, _| RosterUpdate {
            save: None,
            then: Box::new(move |s: &mut Server, _, now| {
                let allowed = roster
                    .ok()
                    .map(|r| r.get(&requester).is_some_and(|i| i.subscription.has_from()));
                answer(s, allowed, now);
            }),
        });
    }

    /// A session ended: leave its rooms, forget its registration key, and when it was
    /// the account's last one, remember when (jabber:iq:last).
    /// After a session ended. `anonymous`: its account was made for it by SASL ANONYMOUS.
    pub(crate) fn session_closed(
        &mut self,
        jid: &Jid,
        conn: ConnId,
        anonymous: bool,
        now: Instant,
    ) {
        self.ext.register_keys.remove(&conn);
        self.muc_leave_all(jid, now);
        let account = jid.to_bare();
        if self.sessions.contains_key(&account) {
            return;
        }
        if anonymous {
            // RFC 4505 accounts live as long as their session: whatever it stored (private
            // XML, roster, PEP nodes, vCard) goes with it, or every anonymous login would
            // leave data behind for good. (If the store fails the batch, the data stays
            // unreachable: the name was random and no one can log in to it again.)
            // Its contacts are told as after an in-band removal (its sessions are gone:
            // they saw it go unavailable when the session closed).
            self.delete_account(account.clone(), now, move |s, roster, now| {
                if let Some(roster) = roster {
                    s.cancel_all_subscriptions(&account, &roster, now);
                }
            });
            return;
        }
        if let Some(ms) = self.wall_ms(now) {
            // Only for an account that still exists (a removal closes its sessions).
            let op = Op::Get(accounts::credentials_key(&account));
            self.run_effect(op, move |s, result, _| {
                if matches!(result, EffectResult::Value(Some(_))) {
                    let op = Op::Put(last_key(&account), ms.to_string().into_bytes());
                    // Best effort: a lost stamp only makes jabber:iq:last answer item-not-found.
                    s.run_effect(op, |_, _, _| {});
                }
            });
        }
    }

    // ---- jabber:iq:search -----------------------------------------------------------

    fn register_key(&mut self, id: ConnId) -> String {
        if let Some(k) = self.ext.register_keys.get(&id) {
            return k.clone();
        }
        let k = self.rng.token(40);
        self.ext.register_keys.insert(id, k.clone());
        k
    }

    fn search(&mut self, id: ConnId, head: IqHead, query: &Element, get: bool, now: Instant) {
        if get {
            let mut q = Element::new("query", NS_SEARCH).with_child(
                Element::new("instructions", NS_SEARCH)
                    .with_text("Fill in a field to search for any matching Jabber users."),
            );
            for f in SEARCH_FIELDS {
                q = q.with_child(Element::new(f, NS_SEARCH));
            }
            q = q.with_child(Element::new("key", NS_SEARCH).with_text(self.register_key(id)));
            // XEP-0055 §3: the same fields as a data form, for clients that prefer one.
            q = q.with_child(search_form());
            self.deliver_to_conn(id, &iq_result(&head, Some(q)), now);
            return;
        }
        // A data form, when sent, is what the client filled in (XEP-0055 §3); the legacy
        // children are then ignored. The key is ignored either way.
        let (wanted, form) = match query.get_child("x", NS_DATA_FORMS) {
            Some(x) => match submitted_fields(x) {
                Ok(w) => (w, true),
                Err(text) => {
                    let e = err(DefinedCondition::BadRequest, text);
                    self.deliver_to_conn(id, &iq_error(&head, None, e), now);
                    return;
                }
            },
            None => (legacy_fields(query), false),
        };
        if wanted.is_empty() {
            let e = err(DefinedCondition::BadRequest, "fill in at least one field");
            self.deliver_to_conn(id, &iq_error(&head, None, e), now);
            return;
        }
        let max = self.config.search_max_results;
        let op = Op::Get(directory_key(&self.config.domain));
        self.run_effect(op, move |s, result, now| {
            let EffectResult::Value(bytes) = result else {
                let e = StanzaError::new(DefinedCondition::InternalServerError);
                s.deliver_to_conn(id, &iq_error(&head, None, e), now);
                return;
            };
            let dir = parse_directory(bytes.as_deref());
            let mut hits = Vec::new();
            let mut truncated = false;
            for entry in dir.elements() {
                let hit = wanted.iter().all(|(f, v)| {
                    entry
                        .attr(f)
                        .is_some_and(|have| have.to_lowercase().contains(v.as_str()))
                });
                if !hit {
                    continue;
                }
                if hits.len() == max {
                    truncated = true;
                    break;
                }
                hits.push(entry);
            }
            let mut q = Element::new("query", NS_SEARCH);
            if form {
                q = q.with_child(result_form(&hits));
            } else {
                for entry in &hits {
                    let mut item = Element::new("item", NS_SEARCH)
                        .with_attr("jid", entry.attr("jid").unwrap_or_default());
                    for f in SEARCH_FIELDS {
                        item = item.with_child(
                            Element::new(f, NS_SEARCH).with_text(entry.attr(f).unwrap_or_default()),
                        );
                    }
                    q = q.with_child(item);
                }
            }
            if truncated {
                // The guide's flag for results cut short; XEP-0055 §3 has none for forms,
                // so a form result carries the same flag beside the `<x/>`.
                q = q.with_child(Element::new("truncated", NS_SEARCH));
            }
            s.deliver_to_conn(id, &iq_result(&head, Some(q)), now);
        });
    }

    // ---- jabber:iq:register after authentication -----------------------------------

    fn register_authenticated(
        &mut self,
        id: ConnId,
        head: IqHead,
        query: &Element,
        get: bool,
        now: Instant,
    ) {
        let Some(account) = head.from.as_ref().map(Jid::to_bare) else {
            return;
        };
        let fail = |s: &mut Server, e: StanzaError, now| {
            s.deliver_to_conn(id, &iq_error(&head, None, e), now);
        };
        let key = self.register_key(id);
        if get {
            // The guide's Example 9-4 form: registered, with the current username.
            let q = Element::new("query", NS_REGISTER)
                .with_child(Element::new("registered", NS_REGISTER))
                .with_child(
                    Element::new("username", NS_REGISTER)
                        .with_text(account.node().unwrap_or_default()),
                )
                .with_child(Element::new("password", NS_REGISTER))
                .with_child(Element::new("key", NS_REGISTER).with_text(key))
                .with_child(Element::new("instructions", NS_REGISTER).with_text(
                    "Send a new password to change it, or <remove/> to delete the account.",
                ));
            self.deliver_to_conn(id, &iq_result(&head, Some(q)), now);
            return;
        }
        // The guide keeps the key through the exchange: a key, when sent, must be ours.
        if let Some(k) = query.get_child("key", NS_REGISTER)
            && k.text().trim() != key
        {
            let e = err(
                DefinedCondition::NotAcceptable,
                "the registration key is not valid",
            );
            fail(self, e, now);
            return;
        }
        if query.get_child("remove", NS_REGISTER).is_some() {
            self.remove_account(id, head, account, now);
            return;
        }
        let username = query.get_child("username", NS_REGISTER).map(|e| e.text());
        let password = query.get_child("password", NS_REGISTER).map(|e| e.text());
        let Some(password) = password.filter(|p| !p.is_empty()) else {
            let e = err(
                DefinedCondition::BadRequest,
                "a password or <remove/> is required",
            );
            fail(self, e, now);
            return;
        };
        if let Some(u) = username
            && BareJid::new(Some(u.trim()), account.domain()).ok().as_ref() != Some(&account)
        {
            let e = err(
                DefinedCondition::NotAllowed,
                "the username cannot be changed",
            );
            fail(self, e, now);
            return;
        }
        let seed = self.rng.fork();
        match accounts::set_password_op(&account, &password, seed, self.config.credential_policy())
        {
            Err(e) => fail(
                self,
                err(DefinedCondition::NotAcceptable, &e.to_string()),
                now,
            ),
            Ok(op) => self.run_effect(op, move |s, result, now| {
                let el = match result {
                    EffectResult::Done => iq_result(&head, None),
                    _ => iq_error(
                        &head,
                        None,
                        StanzaError::new(DefinedCondition::InternalServerError),
                    ),
                };
                s.deliver_to_conn(id, &el, now);
            }),
        }
    }

    /// XEP-0077 3.2: delete every stored thing of the account, answer, cancel its
    /// subscriptions (its contacts see it go unavailable), then close its sessions.
    fn remove_account(&mut self, id: ConnId, head: IqHead, account: BareJid, now: Instant) {
        self.delete_account(account.clone(), now, move |s, roster, now| {
            let Some(roster) = roster else {
                let e = StanzaError::new(DefinedCondition::InternalServerError);
                s.deliver_to_conn(id, &iq_error(&head, None, e), now);
                return;
            };
            s.deliver_to_conn(id, &iq_result(&head, None), now);
            // While its sessions are still available, so former subscribers get their
            // unavailable presence.
            s.cancel_all_subscriptions(&account, &roster, now);
            if let Some(o) = s.sessions.get_mut(&account) {
                o.roster = None;
            }
            let conns: Vec<ConnId> = s
                .sessions
                .get(&account)
                .map(|o| o.conns.iter().map(|(_, c)| *c).collect())
                .unwrap_or_default();
            for c in conns {
                if let Some(conn) = s.conns.get_mut(&c) {
                    conn.stream.send_stream_error(
                        StreamError::new(StreamErrorCondition::NotAuthorized)
                            .with_text("the account was removed"),
                    );
                }
                s.after(c, now);
            }
        });
    }

    /// Deletes every stored thing of `account` (credentials, private XML, roster, offline
    /// messages, vCard, PEP nodes, ...) and its search directory entry, in one batch under
    /// the directory's lock; `then` learns whether the batch was done.
    pub(crate) fn delete_account_data(
        &mut self,
        account: BareJid,
        now: Instant,
        then: impl FnOnce(&mut Server, bool, Instant) + Send + 'static,
    ) {
        let key = directory_key(&self.config.domain);
        self.exclusive(key.clone(), now, move |s: &mut Server, _now| {
            s.run_effect(Op::Get(key.clone()), move |s, result, now| {
                let EffectResult::Value(old) = result else {
                    s.release(&key);
                    then(s, false, now);
                    return;
                };
                let mut dir = parse_directory(old.as_deref());
                set_directory_entry(&mut dir, &account, None);
                let op = Op::Batch(vec![
                    Op::DeleteAccount(account.to_string()),
                    Op::Put(key.clone(), dir.to_bytes()),
                ]);
                // Writes emitted from now on would land after the deletion (src/removal.rs).
                s.removed.mark(&account);
                s.run_effect(op, move |s, result, now| {
                    s.release(&key);
                    let done = matches!(result, EffectResult::Batch(_));
                    if !done {
                        s.removed.unmark(&account);
                    }
                    then(s, done, now);
                });
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directory_fields_read_both_email_forms() {
        let v = Element::parse(
            b"<vCard xmlns='vcard-temp'><N><GIVEN>Hamlet</GIVEN></N><NICKNAME>Ham</NICKNAME>\
              <EMAIL><INTERNET/><PREF/>hamlet@denmark</EMAIL></vCard>",
        )
        .expect("parses");
        assert_eq!(
            directory_fields(&v),
            ["Hamlet", "", "Ham", "hamlet@denmark"].map(String::from)
        );
        let v = Element::parse(
            b"<vCard xmlns='vcard-temp'><EMAIL><USERID>a@b</USERID></EMAIL></vCard>",
        )
        .expect("parses");
        assert_eq!(directory_fields(&v)[3], "a@b");
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        let long = "é".repeat(200);
        let c = clip(&long);
        assert!(c.len() <= MAX_FIELD && c.chars().all(|ch| ch == 'é'));
    }

    #[test]
    fn directory_entries_replace_and_remove() {
        let a = BareJid::parse("a@d").expect("jid");
        let mut dir = parse_directory(Some(b"garbage"));
        set_directory_entry(
            &mut dir,
            &a,
            Some(["x".into(), "".into(), "".into(), "".into()]),
        );
        set_directory_entry(
            &mut dir,
            &a,
            Some(["y".into(), "".into(), "".into(), "".into()]),
        );
        assert_eq!(dir.elements().count(), 1);
        assert_eq!(
            dir.elements().next().and_then(|e| e.attr("first")),
            Some("y")
        );
        set_directory_entry(&mut dir, &a, None);
        assert_eq!(dir.elements().count(), 0);
    }
}
