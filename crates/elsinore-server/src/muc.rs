//! Group chat at `conference.<domain>`: the guide's groupchat 1.0 (presence to
//! `room@conference.<domain>/nick` joins) made compatible with the basic XEP-0045 join:
//! `muc#user` items with affiliation and role, status codes 110 / 201 / 303, nick conflict,
//! history with delay stamps, the subject. Rooms live in memory: they are temporary, made by
//! the first join and destroyed when the last occupant leaves.

use std::collections::{HashMap, VecDeque};

use elsinore_jid::Jid;
use elsinore_stanza::datetime::format_datetime;
use elsinore_stanza::{
    DefinedCondition, NS_CLIENT, NS_DELAY, NS_DISCO_INFO, NS_DISCO_ITEMS, StanzaError,
};
use elsinore_xml::{Element, Node};

use crate::iq::{IqHead, iq_error, iq_result};
use crate::server::{ConnId, Server};
use crate::services::{NS_AGENT, Service};
use elsinore_stream::Instant;

/// XEP-0045 join element.
pub const NS_MUC: &str = "http://jabber.org/protocol/muc";
/// XEP-0045 occupant information.
pub const NS_MUC_USER: &str = "http://jabber.org/protocol/muc#user";
/// XEP-0045 owner use cases.
pub const NS_MUC_OWNER: &str = "http://jabber.org/protocol/muc#owner";
/// The guide's invitation (XEP-0249 keeps the namespace).
pub const NS_X_CONFERENCE: &str = "jabber:x:conference";

/// Longest room subject kept, in bytes.
const MAX_SUBJECT: usize = 1024;

/// Every room, by its node (`room` of `room@conference.<domain>`).
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    rooms: HashMap<String, Room>,
}

#[derive(Debug)]
struct Room {
    occupants: Vec<Occupant>,
    /// The subject message as last set, `from` the room or the nick that set it.
    subject: Option<(String, String)>,
    /// The last messages with their wall-clock time, oldest first.
    history: VecDeque<(Element, Option<u64>)>,
}

#[derive(Debug, Clone)]
struct Occupant {
    nick: String,
    jid: Jid,
    conn: ConnId,
    /// The occupant's own presence children (show, status, caps...).
    presence: Vec<Node>,
    owner: bool,
}

impl Occupant {
    fn affiliation(&self) -> &'static str {
        if self.owner { "owner" } else { "none" }
    }
    fn role(&self) -> &'static str {
        if self.owner {
            "moderator"
        } else {
            "participant"
        }
    }
}

fn is_muc_x(n: &Node) -> bool {
    matches!(n, Node::Element(e) if e.ns == NS_MUC || e.ns == NS_MUC_USER)
}

fn muc_error(cond: DefinedCondition, text: &str) -> StanzaError {
    StanzaError::new(cond).with_text(text)
}

impl Server {
    fn muc_domain(&self) -> String {
        format!("conference.{}", self.config.domain)
    }

    fn room_jid(&self, room: &str) -> String {
        format!("{room}@{}", self.muc_domain())
    }

    /// The presence of `o` as `to` sees it (`unavailable`: leaving).
    fn occupant_presence(
        &self,
        room: &str,
        o: &Occupant,
        to: &Occupant,
        unavailable: bool,
        codes: &[&str],
        new_nick: Option<&str>,
    ) -> Element {
        let mut p = Element::new("presence", NS_CLIENT)
            .with_attr("from", format!("{}/{}", self.room_jid(room), o.nick))
            .with_attr("to", to.jid.to_string());
        if unavailable {
            p.set_attr("type", "unavailable");
        } else {
            p.children.extend(o.presence.iter().cloned());
        }
        let mut item = Element::new("item", NS_MUC_USER)
            .with_attr("affiliation", o.affiliation())
            .with_attr(
                "role",
                if unavailable && new_nick.is_none() {
                    "none"
                } else {
                    o.role()
                },
            );
        // Semi-anonymous: real JIDs are shown to moderators only.
        if to.owner {
            item.set_attr("jid", o.jid.to_string());
        }
        if let Some(n) = new_nick {
            item.set_attr("nick", n);
        }
        let mut x = Element::new("x", NS_MUC_USER).with_child(item);
        for c in codes {
            x = x.with_child(Element::new("status", NS_MUC_USER).with_attr("code", *c));
        }
        p.with_child(x)
    }

    /// Tell every occupant of `room` about `o`; `o` itself gets `self_codes` plus 110.
    fn broadcast_occupant(
        &mut self,
        room: &str,
        o: &Occupant,
        unavailable: bool,
        self_codes: &[&str],
        new_nick: Option<&str>,
        now: Instant,
    ) {
        let Some(r) = self.ext.rooms.rooms.get(room) else {
            return;
        };
        let mut out = Vec::new();
        for to in &r.occupants {
            let own = to.jid == o.jid;
            let mut codes: Vec<&str> = if own { vec!["110"] } else { Vec::new() };
            if own {
                codes.extend_from_slice(self_codes);
            } else if new_nick.is_some() {
                codes.push("303");
            }
            out.push((
                to.conn,
                self.occupant_presence(room, o, to, unavailable, &codes, new_nick),
            ));
        }
        // A leaving occupant is no longer in the list but still gets its own presence.
        if !r.occupants.iter().any(|x| x.jid == o.jid) {
            let mut codes = vec!["110"];
            codes.extend_from_slice(self_codes);
            out.push((
                o.conn,
                self.occupant_presence(room, o, o, unavailable, &codes, new_nick),
            ));
        }
        for (c, p) in out {
            self.deliver_to_conn(c, &p, now);
        }
    }

    /// A server message to everyone in the room (the guide's "has arrived" notices).
    fn room_notice(&mut self, room: &str, text: String, now: Instant) {
        let Some(r) = self.ext.rooms.rooms.get(room) else {
            return;
        };
        let from = self.room_jid(room);
        let targets: Vec<(ConnId, String)> = r
            .occupants
            .iter()
            .map(|o| (o.conn, o.jid.to_string()))
            .collect();
        for (c, to) in targets {
            let m = Element::new("message", NS_CLIENT)
                .with_attr("type", "groupchat")
                .with_attr("from", from.clone())
                .with_attr("to", to)
                .with_child(Element::new("body", NS_CLIENT).with_text(text.clone()));
            self.deliver_to_conn(c, &m, now);
        }
    }

    pub(crate) fn handle_muc(
        &mut self,
        id: ConnId,
        from: &Jid,
        el: Element,
        to: Jid,
        now: Instant,
    ) {
        match (el.name.as_str(), to.node()) {
            ("iq", None) => self.muc_service_iq(id, from, el, now),
            ("iq", Some(room)) => {
                let room = room.to_string();
                self.muc_room_iq(id, from, el, &room, to.resource().is_some(), now);
            }
            ("presence", Some(room)) => {
                let room = room.to_string();
                self.muc_presence(id, from, el, &room, to.resource(), now);
            }
            ("message", Some(room)) => {
                let room = room.to_string();
                self.muc_message(id, from, el, &room, to.resource(), now);
            }
            ("message", None) if el.attr("type") != Some("error") => {
                let e = muc_error(DefinedCondition::ServiceUnavailable, "address a room");
                self.bounce(id, &el, e, now);
            }
            _ => {}
        }
    }

    fn muc_service(&self) -> Service {
        Service {
            jid: self.muc_domain(),
            name: "Conference Server",
            description: "You can create and participate in group conferences.",
            service: "public",
            groupchat: true,
            register: false,
            search: false,
        }
    }

    fn muc_service_iq(&mut self, id: ConnId, from: &Jid, el: Element, now: Instant) {
        let head = IqHead {
            id: el.attr("id").unwrap_or_default().to_string(),
            from: Some(from.clone()),
            to: el.attr("to").map(str::to_string),
        };
        let get = el.attr("type") == Some("get");
        if !get && el.attr("type") != Some("set") {
            return;
        }
        let payload = el.elements().next();
        let reply = match payload {
            Some(p) if get && p.is("query", NS_DISCO_INFO) && p.attr("node").is_none() => {
                let mut q = Element::new("query", NS_DISCO_INFO).with_child(
                    Element::new("identity", NS_DISCO_INFO)
                        .with_attr("category", "conference")
                        .with_attr("type", "text")
                        .with_attr("name", "Conference Server"),
                );
                for f in [NS_DISCO_INFO, NS_DISCO_ITEMS, NS_MUC, NS_AGENT] {
                    q = q.with_child(Element::new("feature", NS_DISCO_INFO).with_attr("var", f));
                }
                iq_result(&head, Some(q))
            }
            Some(p) if get && p.is("query", NS_DISCO_ITEMS) && p.attr("node").is_none() => {
                let mut q = Element::new("query", NS_DISCO_ITEMS);
                let mut names: Vec<&String> = self.ext.rooms.rooms.keys().collect();
                names.sort();
                for name in names.into_iter().take(self.config.muc_max_rooms) {
                    q = q.with_child(
                        Element::new("item", NS_DISCO_ITEMS)
                            .with_attr("jid", self.room_jid(name))
                            .with_attr("name", name.clone()),
                    );
                }
                iq_result(&head, Some(q))
            }
            Some(p) if get && p.is("query", NS_AGENT) => iq_result(
                &head,
                Some(self.muc_service().agent_element("query", NS_AGENT)),
            ),
            _ => iq_error(
                &head,
                None,
                StanzaError::new(DefinedCondition::ServiceUnavailable),
            ),
        };
        self.deliver_to_conn(id, &reply, now);
    }

    fn muc_room_iq(
        &mut self,
        id: ConnId,
        from: &Jid,
        el: Element,
        room: &str,
        to_occupant: bool,
        now: Instant,
    ) {
        let ty = el.attr("type").unwrap_or_default();
        if ty != "get" && ty != "set" {
            return;
        }
        let head = IqHead {
            id: el.attr("id").unwrap_or_default().to_string(),
            from: Some(from.clone()),
            to: el.attr("to").map(str::to_string),
        };
        let payload = el.elements().next();
        let exists = self.ext.rooms.rooms.contains_key(room);
        let owner = self
            .ext
            .rooms
            .rooms
            .get(room)
            .is_some_and(|r| r.occupants.iter().any(|o| o.jid == *from && o.owner));
        let reply = match payload {
            _ if !exists => iq_error(
                &head,
                None,
                muc_error(DefinedCondition::ItemNotFound, "no such room"),
            ),
            _ if to_occupant => iq_error(
                &head,
                None,
                muc_error(
                    DefinedCondition::FeatureNotImplemented,
                    "iqs to occupants are not relayed",
                ),
            ),
            Some(p) if ty == "get" && p.is("query", NS_DISCO_INFO) && p.attr("node").is_none() => {
                let mut q = Element::new("query", NS_DISCO_INFO).with_child(
                    Element::new("identity", NS_DISCO_INFO)
                        .with_attr("category", "conference")
                        .with_attr("type", "text")
                        .with_attr("name", room),
                );
                for f in [
                    NS_MUC,
                    "muc_temporary",
                    "muc_open",
                    "muc_public",
                    "muc_semianonymous",
                    "muc_unmoderated",
                    "muc_unsecured",
                ] {
                    q = q.with_child(Element::new("feature", NS_DISCO_INFO).with_attr("var", f));
                }
                iq_result(&head, Some(q))
            }
            Some(p) if ty == "get" && p.is("query", NS_DISCO_ITEMS) => {
                iq_result(&head, Some(Element::new("query", NS_DISCO_ITEMS)))
            }
            // XEP-0045 10.1.2: an owner accepting the default configuration (instant room).
            Some(p) if ty == "set" && p.is("query", NS_MUC_OWNER) && owner => {
                let submit = p
                    .elements()
                    .any(|x| x.name == "x" && matches!(x.attr("type"), Some("submit" | "cancel")));
                if submit {
                    iq_result(&head, None)
                } else {
                    iq_error(
                        &head,
                        None,
                        muc_error(
                            DefinedCondition::FeatureNotImplemented,
                            "rooms are not configurable",
                        ),
                    )
                }
            }
            Some(p) if p.ns == NS_MUC_OWNER => iq_error(
                &head,
                None,
                muc_error(
                    if owner {
                        DefinedCondition::FeatureNotImplemented
                    } else {
                        DefinedCondition::Forbidden
                    },
                    "rooms are not configurable",
                ),
            ),
            _ => iq_error(
                &head,
                None,
                StanzaError::new(DefinedCondition::ServiceUnavailable),
            ),
        };
        self.deliver_to_conn(id, &reply, now);
    }

    fn muc_presence(
        &mut self,
        id: ConnId,
        from: &Jid,
        el: Element,
        room: &str,
        nick: Option<&str>,
        now: Instant,
    ) {
        let ty = el.attr("type").unwrap_or_default();
        let current = self
            .ext
            .rooms
            .rooms
            .get(room)
            .and_then(|r| r.occupants.iter().find(|o| o.jid == *from).cloned());
        if ty == "unavailable" {
            if current.is_some() {
                self.muc_leave(room, from, now);
            }
            return;
        }
        if !ty.is_empty() {
            // Subscriptions and probes to rooms are not meaningful here.
            return;
        }
        let Some(nick) = nick.filter(|n| !n.trim().is_empty()) else {
            let e = muc_error(
                DefinedCondition::JidMalformed,
                "join with your nickname as the resource",
            );
            self.bounce(id, &el, e, now);
            return;
        };
        let taken = self
            .ext
            .rooms
            .rooms
            .get(room)
            .is_some_and(|r| r.occupants.iter().any(|o| o.nick == nick && o.jid != *from));
        if taken {
            let e = muc_error(
                DefinedCondition::Conflict,
                "this nickname is in use in the room",
            );
            self.bounce(id, &el, e, now);
            return;
        }
        let presence: Vec<Node> = el
            .children
            .iter()
            .filter(|n| matches!(n, Node::Element(_)) && !is_muc_x(n))
            .cloned()
            .collect();
        match current {
            Some(old) if old.nick == nick => {
                // A presence change of an occupant (guide Example 6-5).
                let mut o = old;
                o.presence = presence;
                self.update_occupant(room, &o);
                self.broadcast_occupant(room, &o, false, &[], None, now);
            }
            Some(old) => {
                // Nick change: unavailable for the old nick with 303, then the new one.
                let mut o = old.clone();
                o.nick = nick.to_string();
                o.presence = presence;
                self.broadcast_occupant(room, &old, true, &["303"], Some(nick), now);
                self.update_occupant(room, &o);
                self.broadcast_occupant(room, &o, false, &[], None, now);
                if self.config.muc_join_messages {
                    self.room_notice(room, format!("{} is now known as {}.", old.nick, nick), now);
                }
            }
            None => self.muc_join(id, from, &el, room, nick, presence, now),
        }
    }

    fn update_occupant(&mut self, room: &str, o: &Occupant) {
        if let Some(r) = self.ext.rooms.rooms.get_mut(room)
            && let Some(slot) = r.occupants.iter_mut().find(|x| x.jid == o.jid)
        {
            *slot = o.clone();
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn muc_join(
        &mut self,
        id: ConnId,
        from: &Jid,
        el: &Element,
        room: &str,
        nick: &str,
        presence: Vec<Node>,
        now: Instant,
    ) {
        let created = !self.ext.rooms.rooms.contains_key(room);
        if created && self.ext.rooms.rooms.len() >= self.config.muc_max_rooms {
            let e = muc_error(DefinedCondition::ResourceConstraint, "too many rooms");
            self.bounce(id, el, e, now);
            return;
        }
        if !created
            && self
                .ext
                .rooms
                .rooms
                .get(room)
                .is_some_and(|r| r.occupants.len() >= self.config.muc_max_occupants)
        {
            let e = muc_error(DefinedCondition::ServiceUnavailable, "the room is full");
            self.bounce(id, el, e, now);
            return;
        }
        let o = Occupant {
            nick: nick.to_string(),
            jid: from.clone(),
            conn: id,
            presence,
            owner: created,
        };
        // The existing occupants' presence first (guide Example 6-3, XEP-0045 7.2.3).
        let existing: Vec<Occupant> = self
            .ext
            .rooms
            .rooms
            .get(room)
            .map(|r| r.occupants.clone())
            .unwrap_or_default();
        for other in &existing {
            let p = self.occupant_presence(room, other, &o, false, &[], None);
            self.deliver_to_conn(id, &p, now);
        }
        let r = self
            .ext
            .rooms
            .rooms
            .entry(room.to_string())
            .or_insert_with(|| Room {
                occupants: Vec::new(),
                subject: None,
                history: VecDeque::new(),
            });
        r.occupants.push(o.clone());
        // 201: a new room, unlocked at once (an instant room).
        let codes: &[&str] = if created { &["201"] } else { &[] };
        self.broadcast_occupant(room, &o, false, codes, None, now);
        if self.config.muc_join_messages {
            self.room_notice(room, format!("{nick} has arrived."), now);
        }
        // History: the last messages, as many as asked (`maxstanzas`), stamped.
        let wanted = el
            .get_child("x", NS_MUC)
            .and_then(|x| x.get_child("history", NS_MUC))
            .and_then(|h| {
                if h.attr("maxchars") == Some("0") {
                    return Some(0);
                }
                h.attr("maxstanzas").and_then(|v| v.parse::<usize>().ok())
            });
        let room_jid = self.room_jid(room);
        let Some(r) = self.ext.rooms.rooms.get(room) else {
            return;
        };
        let skip = r.history.len().saturating_sub(wanted.unwrap_or(usize::MAX));
        let mut out: Vec<Element> = r
            .history
            .iter()
            .skip(skip)
            .map(|(m, at)| {
                let mut m = m.clone();
                m.set_attr("to", from.to_string());
                if let Some(ms) = at {
                    m = m.with_child(
                        Element::new("delay", NS_DELAY)
                            .with_attr("from", room_jid.clone())
                            .with_attr("stamp", format_datetime(*ms)),
                    );
                }
                m
            })
            .collect();
        // Then the subject, always (XEP-0045 7.2.15: it ends the join).
        let (subject_from, subject) = match &r.subject {
            Some((who, text)) => (format!("{room_jid}/{who}"), text.clone()),
            None => (room_jid.clone(), String::new()),
        };
        out.push(
            Element::new("message", NS_CLIENT)
                .with_attr("type", "groupchat")
                .with_attr("from", subject_from)
                .with_attr("to", from.to_string())
                .with_child(Element::new("subject", NS_CLIENT).with_text(subject)),
        );
        for m in out {
            self.deliver_to_conn(id, &m, now);
        }
    }

    /// `who` leaves `room` (unavailable presence, or its session ended).
    fn muc_leave(&mut self, room: &str, who: &Jid, now: Instant) {
        let Some(r) = self.ext.rooms.rooms.get_mut(room) else {
            return;
        };
        let Some(pos) = r.occupants.iter().position(|o| o.jid == *who) else {
            return;
        };
        let o = r.occupants.remove(pos);
        let empty = r.occupants.is_empty();
        self.broadcast_occupant(room, &o, true, &[], None, now);
        if empty {
            // Temporary rooms end with their last occupant.
            self.ext.rooms.rooms.remove(room);
        } else if self.config.muc_join_messages {
            self.room_notice(room, format!("{} has left.", o.nick), now);
        }
    }

    /// `who` leaves every room it is in.
    pub(crate) fn muc_leave_all(&mut self, who: &Jid, now: Instant) {
        let rooms: Vec<String> = self
            .ext
            .rooms
            .rooms
            .iter()
            .filter(|(_, r)| r.occupants.iter().any(|o| o.jid == *who))
            .map(|(n, _)| n.clone())
            .collect();
        for room in rooms {
            self.muc_leave(&room, who, now);
        }
    }

    fn muc_message(
        &mut self,
        id: ConnId,
        from: &Jid,
        el: Element,
        room: &str,
        nick: Option<&str>,
        now: Instant,
    ) {
        let ty = el.attr("type").unwrap_or("normal").to_string();
        if ty == "error" {
            return;
        }
        let sender = self
            .ext
            .rooms
            .rooms
            .get(room)
            .and_then(|r| r.occupants.iter().find(|o| o.jid == *from).cloned());
        let room_jid = self.room_jid(room);
        if nick.is_none() && ty != "groupchat" {
            // Invitations: the guide's subject `invite:user@server`, or XEP-0045's mediated one.
            let guide = el
                .get_child("subject", NS_CLIENT)
                .and_then(|s| s.text().trim().strip_prefix("invite:").map(str::to_string));
            let mediated: Vec<String> = el
                .get_child("x", NS_MUC_USER)
                .map(|x| {
                    x.elements()
                        .filter(|i| i.name == "invite")
                        .filter_map(|i| i.attr("to").map(str::to_string))
                        .take(16)
                        .collect()
                })
                .unwrap_or_default();
            let invitees: Vec<String> = guide.into_iter().chain(mediated).collect();
            if invitees.is_empty() {
                let e = muc_error(
                    DefinedCondition::BadRequest,
                    "send groupchat messages to the room",
                );
                self.bounce(id, &el, e, now);
                return;
            }
            let reason = el
                .get_child("body", NS_CLIENT)
                .map(|b| b.text())
                .or_else(|| {
                    el.get_child("x", NS_MUC_USER)
                        .and_then(|x| x.get_child("invite", NS_MUC_USER))
                        .and_then(|i| i.get_child("reason", NS_MUC_USER))
                        .map(|r| r.text())
                })
                .unwrap_or_default();
            for invitee in invitees {
                let Ok(to) = Jid::parse(invitee.trim()) else {
                    let e = muc_error(DefinedCondition::JidMalformed, "bad invitee address");
                    self.bounce(id, &el, e, now);
                    continue;
                };
                let mut invite =
                    Element::new("invite", NS_MUC_USER).with_attr("from", from.to_string());
                if !reason.is_empty() {
                    invite = invite
                        .with_child(Element::new("reason", NS_MUC_USER).with_text(reason.clone()));
                }
                let mut m = Element::new("message", NS_CLIENT)
                    .with_attr("from", room_jid.clone())
                    .with_attr("to", to.to_string())
                    .with_child(
                        Element::new("subject", NS_CLIENT).with_text(format!("invite:{to}")),
                    );
                if !reason.is_empty() {
                    m = m.with_child(Element::new("body", NS_CLIENT).with_text(reason.clone()));
                }
                m = m
                    .with_child(Element::new("x", NS_MUC_USER).with_child(invite))
                    .with_child(
                        Element::new("x", NS_X_CONFERENCE).with_attr("jid", room_jid.clone()),
                    );
                self.route_message(id, m, Some(to), now);
            }
            return;
        }
        let Some(sender) = sender else {
            let e = muc_error(DefinedCondition::NotAcceptable, "join the room first");
            self.bounce(id, &el, e, now);
            return;
        };
        let mut out = el.clone();
        out.set_attr("from", format!("{room_jid}/{}", sender.nick));
        match nick {
            Some(target) => {
                // Private message between occupants (guide Example 6-9 / 6-10).
                if ty == "groupchat" {
                    let e = muc_error(DefinedCondition::BadRequest, "groupchat goes to the room");
                    self.bounce(id, &el, e, now);
                    return;
                }
                let dest = self
                    .ext
                    .rooms
                    .rooms
                    .get(room)
                    .and_then(|r| r.occupants.iter().find(|o| o.nick == target).cloned());
                let Some(dest) = dest else {
                    let e = muc_error(DefinedCondition::ItemNotFound, "no such occupant");
                    self.bounce(id, &el, e, now);
                    return;
                };
                out.set_attr("to", dest.jid.to_string());
                out = out.with_child(Element::new("x", NS_MUC_USER));
                self.deliver_to_conn(dest.conn, &out, now);
            }
            None => {
                let subject = el.get_child("subject", NS_CLIENT).map(|s| s.text());
                let has_body = el.get_child("body", NS_CLIENT).is_some();
                if let Some(mut text) = subject.filter(|_| !has_body) {
                    let mut end = text.len().min(MAX_SUBJECT);
                    while !text.is_char_boundary(end) {
                        end -= 1;
                    }
                    text.truncate(end);
                    if let Some(r) = self.ext.rooms.rooms.get_mut(room) {
                        r.subject = Some((sender.nick.clone(), text));
                    }
                } else if has_body {
                    let at = self.wall_ms(now);
                    let keep = self.config.muc_history;
                    if let Some(r) = self.ext.rooms.rooms.get_mut(room)
                        && keep > 0
                    {
                        let mut stored = out.clone();
                        stored.remove_attr("to");
                        r.history.push_back((stored, at));
                        while r.history.len() > keep {
                            r.history.pop_front();
                        }
                    }
                }
                let targets: Vec<(ConnId, String)> = self
                    .ext
                    .rooms
                    .rooms
                    .get(room)
                    .map(|r| {
                        r.occupants
                            .iter()
                            .map(|o| (o.conn, o.jid.to_string()))
                            .collect()
                    })
                    .unwrap_or_default();
                for (c, to) in targets {
                    let mut m = out.clone();
                    m.set_attr("to", to);
                    self.deliver_to_conn(c, &m, now);
                }
            }
        }
    }
}
