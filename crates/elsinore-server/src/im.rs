//! Instant messaging (RFC 6121): roster, presence, subscriptions, message
//! delivery rules and offline storage, for accounts of this server.

use elsinore_jid::{BareJid, Jid};
use elsinore_stanza::datetime::{format_datetime, format_legacy_stamp};
use elsinore_stanza::{DefinedCondition, NS_CLIENT, NS_DELAY, NS_ROSTER, StanzaError};
use elsinore_storage::{EffectResult, Key, Op, Space};
use elsinore_stream::Instant;
use elsinore_xml::{Element, Node, RawElement, XmlLimits};

use crate::accounts;
use crate::iq::{IqHead, iq_error, iq_result};
use crate::roster::{Inbound, Item, Roster, SetError, SetRequest, SubKind, SubPayload};
use crate::server::{ConnId, Server, backlog_full, is_language_tag};

/// Legacy delayed-delivery namespace (XEP-0091, the guide's jabber:x:delay).
const NS_LEGACY_DELAY: &str = "jabber:x:delay";
/// Most directed-presence targets remembered per session.
const MAX_DIRECTED: usize = 256;
/// Namespace of the stored offline queue wrapper.
const NS_OFFLINE_STORE: &str = "urn:elsinore:offline-store:0";

/// What a roster transaction wants done after its function ran.
pub(crate) struct RosterUpdate {
    /// The new roster to store durably before `then` runs (`None`: unchanged).
    pub(crate) save: Option<Roster>,
    /// Runs after the save (with `true` when durable) or at once when unchanged.
    pub(crate) then: AfterSave,
}

type AfterSave = Box<dyn FnOnce(&mut Server, bool, Instant) + Send>;

impl RosterUpdate {
    pub(crate) fn unchanged(
        then: impl FnOnce(&mut Server, bool, Instant) + Send + 'static,
    ) -> Self {
        RosterUpdate {
            save: None,
            then: Box::new(then),
        }
    }
}

pub(crate) fn roster_key(account: &BareJid) -> Key {
    Key::new(account.to_string(), Space::Roster, "")
}

fn offline_key(account: &BareJid) -> Key {
    Key::new(account.to_string(), Space::Offline, "")
}

fn presence_type(el: &Element) -> Option<&str> {
    el.attr("type")
}

fn priority_of(el: &Element) -> i8 {
    el.get_child("priority", NS_CLIENT)
        .and_then(|p| p.text().trim().parse::<i8>().ok())
        .unwrap_or(0)
}

impl Server {
    // ---- sessions ---------------------------------------------------------

    /// Sessions of `account` that are available, with their priority.
    pub(crate) fn available_sessions(&self, account: &BareJid) -> Vec<(ConnId, i8)> {
        let Some(list) = self.sessions.get(account).map(|o| &o.conns) else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|(_, id)| {
                let c = self.conns.get(id)?;
                c.presence.as_ref().map(|_| (*id, c.priority))
            })
            .collect()
    }

    /// Where a normal or chat message to `account`'s bare JID goes (RFC 6121 8.5.2.1.1):
    /// its available sessions of the highest non-negative priority; none means offline.
    fn best_sessions(&self, account: &BareJid) -> Vec<ConnId> {
        let sessions = self.available_sessions(account);
        let Some(best) = sessions.iter().map(|(_, p)| *p).filter(|p| *p >= 0).max() else {
            return Vec::new();
        };
        sessions
            .into_iter()
            .filter(|(_, p)| *p == best)
            .map(|(c, _)| c)
            .collect()
    }

    fn interested_sessions(&self, account: &BareJid) -> Vec<ConnId> {
        let Some(list) = self.sessions.get(account).map(|o| &o.conns) else {
            return Vec::new();
        };
        list.iter()
            .filter(|(_, id)| self.conns.get(id).is_some_and(|c| c.interested))
            .map(|(_, id)| *id)
            .collect()
    }

    fn conn_of(&self, jid: &Jid) -> Option<ConnId> {
        self.sessions
            .get(jid.bare())?
            .conn_of_resource(jid.resource()?)
    }

    /// Whether `account` exists: at once when it has sessions, else from the store.
    pub(crate) fn account_exists(
        &mut self,
        account: BareJid,
        now: Instant,
        k: impl FnOnce(&mut Server, Option<bool>, Instant) + Send + 'static,
    ) {
        if account.domain() != self.config.domain {
            k(self, Some(false), now);
            return;
        }
        if self.sessions.contains_key(&account) {
            k(self, Some(true), now);
            return;
        }
        let op = Op::Get(accounts::credentials_key(&account));
        self.run_effect(op, move |s: &mut Server, result, now| {
            let exists = match result {
                EffectResult::Value(v) => Some(v.is_some()),
                _ => None,
            };
            k(s, exists, now);
        });
    }

    // ---- roster storage -----------------------------------------------------

    /// Run `f` on `account`'s roster under its lock. When `f` returns a new
    /// roster it is stored durably before `then` runs; the cache follows the store.
    pub(crate) fn with_roster(
        &mut self,
        account: BareJid,
        now: Instant,
        f: impl FnOnce(&mut Server, Result<Roster, ()>, Instant) -> RosterUpdate + Send + 'static,
    ) {
        let key = roster_key(&account);
        self.exclusive(key.clone(), now, move |s: &mut Server, now| {
            if let Some(r) = s.roster(&account).cloned() {
                s.roster_step(account, key, Ok(r), f, now);
                return;
            }
            s.run_effect(Op::Get(key.clone()), move |s: &mut Server, result, now| {
                let r = match result {
                    EffectResult::Value(Some(b)) => Roster::from_bytes(&b).map_err(|_| ()),
                    EffectResult::Value(None) => Ok(Roster::default()),
                    _ => Err(()),
                };
                if let Ok(r) = &r
                    && let Some(o) = s.sessions.get_mut(&account)
                {
                    o.roster = Some(Box::new(r.clone()));
                }
                s.roster_step(account, key, r, f, now);
            });
        });
    }

    fn roster_step(
        &mut self,
        account: BareJid,
        key: Key,
        roster: Result<Roster, ()>,
        f: impl FnOnce(&mut Server, Result<Roster, ()>, Instant) -> RosterUpdate,
        now: Instant,
    ) {
        let update = f(self, roster, now);
        match update.save {
            None => {
                (update.then)(self, true, now);
                self.release(&key);
            }
            Some(new) => {
                let op = Op::Put(key.clone(), new.to_bytes());
                self.run_effect(op, move |s: &mut Server, result, now| {
                    let ok = matches!(result, EffectResult::Done);
                    if let Some(o) = s.sessions.get_mut(&account) {
                        // After a failure the store may or may not hold the write: reload
                        // next time.
                        o.roster = ok.then(|| Box::new(new));
                    }
                    (update.then)(s, ok, now);
                    s.release(&key);
                });
            }
        }
    }

    pub(crate) fn load_roster_cache(&mut self, account: BareJid, now: Instant) {
        self.with_roster(account, now, |_, _, _| {
            RosterUpdate::unchanged(|_, _, _| {})
        });
    }

    fn push_roster_item(&mut self, account: &BareJid, item: &Item, removed: bool, now: Instant) {
        let mut el = item.to_element();
        if removed {
            el.set_attr("subscription", "remove");
            el.remove_attr("ask");
        }
        let ver = self.roster(account).map(|r| r.version);
        for id in self.interested_sessions(account) {
            let Some(to) = self.conns.get(&id).and_then(|c| c.jid().cloned()) else {
                continue;
            };
            let mut query = Element::new("query", NS_ROSTER).with_child(el.clone());
            if let Some(v) = ver {
                query.set_attr("ver", v.to_string());
            }
            let push = Element::new("iq", NS_CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("push-{}", self.rng.token(8)))
                .with_attr("to", to.to_string())
                .with_child(query);
            self.deliver_to_conn(id, &push, now);
        }
    }

    // ---- roster iq (RFC 6121 §2) -----------------------------------------------

    pub(crate) fn handle_roster_iq(&mut self, id: ConnId, from: &Jid, el: Element, now: Instant) {
        let head = IqHead {
            id: el.attr("id").unwrap_or_default().to_string(),
            from: Some(from.clone()),
            to: None,
        };
        let Some(query) = el.get_child("query", NS_ROSTER).cloned() else {
            let err = StanzaError::new(DefinedCondition::BadRequest);
            self.deliver_to_conn(id, &iq_error(&head, None, err), now);
            return;
        };
        let account = from.to_bare();
        match el.attr("type") {
            Some("get") => {
                if let Some(c) = self.conns.get_mut(&id) {
                    c.interested = true;
                }
                self.with_roster(account, now, move |_, roster, _| {
                    RosterUpdate::unchanged(move |s: &mut Server, _, now| {
                        let reply = match roster {
                            Ok(r) => iq_result(&head, Some(r.to_query())),
                            Err(()) => iq_error(
                                &head,
                                None,
                                StanzaError::new(DefinedCondition::InternalServerError),
                            ),
                        };
                        s.deliver_to_conn(id, &reply, now);
                    })
                });
            }
            Some("set") => {
                let req = match Roster::parse_set(&query, &account) {
                    Ok(r) => r,
                    Err(e) => {
                        self.deliver_to_conn(id, &iq_error(&head, None, set_error(e)), now);
                        return;
                    }
                };
                self.with_roster(account.clone(), now, move |_, roster, _| {
                    let mut roster = match roster {
                        Ok(r) => r,
                        Err(()) => {
                            return RosterUpdate::unchanged(move |s: &mut Server, _, now| {
                                let err = StanzaError::new(DefinedCondition::InternalServerError);
                                s.deliver_to_conn(id, &iq_error(&head, None, err), now);
                            });
                        }
                    };
                    // A request the user never answered is cancelled with the item.
                    let pending_in = matches!(&req, SetRequest::Remove(j)
                        if roster.pending_in.iter().any(|(p, _)| p == j));
                    match roster.apply_set(&req) {
                        Err(e) => RosterUpdate::unchanged(move |s: &mut Server, _, now| {
                            s.deliver_to_conn(id, &iq_error(&head, None, set_error(e)), now);
                        }),
                        Ok(item) => RosterUpdate {
                            save: Some(roster),
                            then: Box::new(move |s: &mut Server, ok, now| {
                                if !ok {
                                    let err =
                                        StanzaError::new(DefinedCondition::InternalServerError);
                                    s.deliver_to_conn(id, &iq_error(&head, None, err), now);
                                    return;
                                }
                                let removed = matches!(req, SetRequest::Remove(_));
                                s.deliver_to_conn(id, &iq_result(&head, None), now);
                                s.push_roster_item(&account, &item, removed, now);
                                if removed {
                                    // RFC 6121 2.5.2: cancel both directions.
                                    s.cancel_subscriptions(&account, &item, pending_in, now);
                                }
                            }),
                        },
                    }
                });
            }
            _ => {
                let err = StanzaError::new(DefinedCondition::BadRequest);
                self.deliver_to_conn(id, &iq_error(&head, None, err), now);
            }
        }
    }

    // ---- presence (RFC 6121 §3, §4) ------------------------------------------

    pub(crate) fn handle_presence(
        &mut self,
        id: ConnId,
        from: &Jid,
        mut el: Element,
        to: Option<Jid>,
        now: Instant,
    ) {
        let ty = presence_type(&el).map(str::to_string);
        let own_bare = to
            .as_ref()
            .is_some_and(|t| t.resource().is_none() && t.to_bare() == from.to_bare());
        if let Some(kind) = ty.as_deref().and_then(SubKind::from_type) {
            let Some(contact) = to.as_ref().map(Jid::to_bare) else {
                return;
            };
            if contact == from.to_bare() {
                return;
            }
            let payload = SubPayload::from_presence(&el);
            self.subscription_outbound(from.to_bare(), contact, kind, payload, now);
            return;
        }
        match ty.as_deref() {
            None | Some("unavailable") if to.is_none() || own_bare => {
                el.remove_attr("to");
                self.broadcast_presence(id, from, el, now);
            }
            None | Some("unavailable") => {
                let Some(target) = to else { return };
                if ty.is_none()
                    && let Some(c) = self.conns.get_mut(&id)
                    && !c.directed.contains(&target)
                    && c.directed.len() < MAX_DIRECTED
                {
                    // Rebuilt on change: directed presence is rare, and a boxed slice
                    // keeps every session's state 8 bytes smaller than a Vec.
                    let mut v = core::mem::take(&mut c.directed).into_vec();
                    v.push(target.clone());
                    c.directed = v.into_boxed_slice();
                }
                if ty.is_some()
                    && let Some(c) = self.conns.get_mut(&id)
                    && c.directed.contains(&target)
                {
                    let mut v = core::mem::take(&mut c.directed).into_vec();
                    v.retain(|j| j != &target);
                    c.directed = v.into_boxed_slice();
                }
                self.deliver_presence(&target, &el, now);
            }
            Some("probe") => {
                // Probes are the server's business (RFC 6121 4.3): a client's is ignored.
            }
            Some("error") => {
                if let Some(target) = to {
                    self.deliver_presence(&target, &el, now);
                }
            }
            Some(_) => {
                let err = StanzaError::new(DefinedCondition::BadRequest)
                    .with_text("unknown presence type");
                self.bounce(id, &el, err, now);
            }
        }
    }

    /// Deliver a presence stanza to a local JID: a full JID to that session, a
    /// bare JID to every available session (RFC 6121 8.5.2.1.2, 8.5.3.1).
    pub(crate) fn deliver_presence(&mut self, to: &Jid, el: &Element, now: Instant) {
        if to.domain() != self.config.domain {
            if self.config.s2s.enabled {
                let mut el = el.clone();
                el.set_attr("to", to.to_string());
                self.s2s_send(el, now);
            }
            return;
        }
        let mut el = el.clone();
        el.set_attr("to", to.to_string());
        let targets: Vec<ConnId> = match to.resource() {
            Some(_) => self.conn_of(to).into_iter().collect(),
            None => self
                .available_sessions(&to.to_bare())
                .into_iter()
                .map(|(c, _)| c)
                .collect(),
        };
        for t in targets {
            self.deliver_to_conn(t, &el, now);
        }
    }

    /// Available or unavailable presence from a session, without `to`.
    fn broadcast_presence(&mut self, id: ConnId, from: &Jid, el: Element, now: Instant) {
        let available = presence_type(&el).is_none();
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        let initial = available && c.presence.is_none();
        if available {
            c.priority = priority_of(&el);
            c.presence = Some(crate::server::StoredPresence::new(&el));
        } else {
            if c.presence.is_none() {
                return;
            }
            c.presence = None;
        }
        let directed = if available {
            Vec::new()
        } else {
            core::mem::take(&mut c.directed).into_vec()
        };
        let priority = c.priority;
        if available {
            // What the session wants of PEP (XEP-0163 §4.2), and the last items it newly
            // wants (§4.3.3).
            self.caps_presence(id, &el, initial, now);
        }
        let account = from.to_bare();
        let from = from.clone();
        self.with_roster(account.clone(), now, move |s, roster, now| {
            let roster = roster.unwrap_or_default();
            // To contacts with a subscription from the user, and to all of the user's
            // available sessions, the sending one included (RFC 6121 4.2.2, 4.4.2).
            let mut targets: Vec<BareJid> = roster.presence_subscribers().cloned().collect();
            targets.push(account.clone());
            for t in &targets {
                s.send_presence_to_account(t, &from, &el, now);
            }
            for d in directed {
                if !targets.contains(&d.to_bare()) {
                    s.deliver_presence(&d, &el, now);
                }
            }
            if initial {
                // Probes (RFC 6121 4.3): the contacts' and the user's own sessions' presence.
                let mut sources: Vec<BareJid> = roster.presence_sources().cloned().collect();
                sources.push(account.clone());
                for src in sources {
                    s.send_current_presence(&src, &from, id, now);
                }
                let pending = roster.pending_in.clone();
                RosterUpdate::unchanged(move |s: &mut Server, _, now| {
                    // Requests that arrived while the user was away (RFC 6121 3.1.3).
                    for (contact, payload) in pending {
                        let p = payload
                            .presence(SubKind::Subscribe, &contact)
                            .with_attr("to", from.to_bare().to_string());
                        s.deliver_to_conn(id, &p, now);
                    }
                    if priority >= 0 {
                        s.deliver_offline(from.to_bare(), id, now);
                    }
                })
            } else {
                RosterUpdate::unchanged(|_, _, _| {})
            }
        });
    }

    /// Send `el` (presence from `from`) to every available session of a local account.
    fn send_presence_to_account(
        &mut self,
        account: &BareJid,
        from: &Jid,
        el: &Element,
        now: Instant,
    ) {
        if account.domain() != self.config.domain {
            // A remote contact: its server fans the presence out (server-to-server).
            if self.config.s2s.enabled {
                let mut p = el.clone();
                p.set_attr("from", from.to_string());
                p.set_attr("to", account.to_string());
                self.s2s_send(p, now);
            }
            return;
        }
        for (t, _) in self.available_sessions(account) {
            let Some(to) = self.conns.get(&t).and_then(|c| c.jid().cloned()) else {
                continue;
            };
            let mut p = el.clone();
            p.set_attr("from", from.to_string());
            p.set_attr("to", to.to_string());
            self.deliver_to_conn(t, &p, now);
        }
    }

    /// Send the current presence of every available session of `source` to session `to_conn`.
    fn send_current_presence(&mut self, source: &BareJid, to: &Jid, to_conn: ConnId, now: Instant) {
        if source.domain() != self.config.domain {
            if self.config.s2s.enabled {
                self.s2s_probe(source, to, now);
            }
            return;
        }
        let sessions = self.available_sessions(source);
        for (c, _) in sessions {
            if c == to_conn {
                continue;
            }
            let Some((jid, presence)) = self
                .conns
                .get(&c)
                .and_then(|s| Some((s.jid()?.clone(), s.presence.as_ref()?.to_element())))
            else {
                continue;
            };
            let mut p = presence;
            p.set_attr("from", jid.to_string());
            p.set_attr("to", to.to_string());
            self.deliver_to_conn(to_conn, &p, now);
        }
    }

    /// A session ended while available: unavailable to subscribers, own sessions
    /// and directed-presence targets.
    pub(crate) fn broadcast_unavailable(&mut self, jid: &Jid, directed: Vec<Jid>, now: Instant) {
        let el = Element::new("presence", NS_CLIENT)
            .with_attr("type", "unavailable")
            .with_attr("from", jid.to_string());
        let account = jid.to_bare();
        let from = jid.clone();
        let subscribers: Vec<BareJid> = self
            .roster(&account)
            .map(|r| r.presence_subscribers().cloned().collect())
            .unwrap_or_default();
        for t in subscribers.iter().chain(core::iter::once(&account)) {
            self.send_presence_to_account(t, &from, &el, now);
        }
        for d in directed {
            if !subscribers.contains(&d.to_bare()) {
                self.deliver_presence(&d, &el, now);
            }
        }
    }

    // ---- subscriptions (RFC 6121 §3, Appendix A) --------------------------------

    /// The user sends a subscription stanza: update the user's roster, then the contact's.
    fn subscription_outbound(
        &mut self,
        user: BareJid,
        contact: BareJid,
        kind: SubKind,
        payload: SubPayload,
        now: Instant,
    ) {
        let u = user.clone();
        self.with_roster(user, now, move |_, roster, _| {
            let Ok(mut roster) = roster else {
                return RosterUpdate::unchanged(|_, _, _| {});
            };
            let (route, changed) = roster.outbound(kind, &contact);
            let save = changed.is_some().then_some(roster);
            RosterUpdate {
                save,
                then: Box::new(move |s: &mut Server, ok, now| {
                    if !ok {
                        return;
                    }
                    if let Some(item) = &changed {
                        s.push_roster_item(&u, item, false, now);
                    }
                    if !route {
                        return;
                    }
                    if kind == SubKind::Subscribed {
                        // RFC 6121 3.1.5: the new subscriber gets the user's presence.
                        let sessions = s.available_sessions(&u);
                        for (c, _) in sessions {
                            let Some((jid, p)) = s.conns.get(&c).and_then(|x| {
                                Some((x.jid()?.clone(), x.presence.as_ref()?.to_element()))
                            }) else {
                                continue;
                            };
                            s.send_presence_to_account(&contact, &jid, &p, now);
                        }
                    }
                    if kind == SubKind::Unsubscribed {
                        s.unavailable_to_former_subscriber(&u, &contact, now);
                    }
                    // Approved just now: a new subscriber to the user's PEP nodes.
                    let new_subscriber = kind == SubKind::Subscribed && changed.is_some();
                    if new_subscriber {
                        s.pep_new_subscriber(&u, &contact, now);
                    }
                    s.subscription_inbound(u, contact, kind, payload, now);
                }),
            }
        });
    }

    /// RFC 6121 3.2.3: a former subscriber sees every available session of `user` go away.
    fn unavailable_to_former_subscriber(
        &mut self,
        user: &BareJid,
        contact: &BareJid,
        now: Instant,
    ) {
        let el = Element::new("presence", NS_CLIENT).with_attr("type", "unavailable");
        for (c, _) in self.available_sessions(user) {
            if let Some(jid) = self.conns.get(&c).and_then(|x| x.jid().cloned()) {
                self.send_presence_to_account(contact, &jid, &el, now);
            }
        }
    }

    /// `user` drops `contact` (its roster item `item`, as it was; `pending_in`: the contact
    /// was waiting for the user's answer): both directions are cancelled as if the user
    /// had sent the stanzas (RFC 6121 2.5.2, XEP-0077 3.2). `unsubscribed` where the
    /// contact saw the user's presence (after unavailable from each available session,
    /// 3.2.3) or waited for an answer, `unsubscribe` where the user saw or asked to see
    /// the contact's. The contact's side is the ordinary inbound path: a local contact's
    /// roster is stored and pushed, a remote contact gets the stanzas over s2s. The user's
    /// own roster is the caller's (already without the item, or deleted).
    pub(crate) fn cancel_subscriptions(
        &mut self,
        user: &BareJid,
        item: &Item,
        pending_in: bool,
        now: Instant,
    ) {
        let contact = &item.jid;
        if item.subscription.has_from() {
            self.unavailable_to_former_subscriber(user, contact, now);
        }
        if item.subscription.has_from() || pending_in {
            let (u, c) = (user.clone(), contact.clone());
            self.subscription_inbound(u, c, SubKind::Unsubscribed, SubPayload::default(), now);
        }
        if item.subscription.has_to() || item.ask {
            let (u, c) = (user.clone(), contact.clone());
            self.subscription_inbound(u, c, SubKind::Unsubscribe, SubPayload::default(), now);
        }
    }

    /// A subscription stanza from `user`, with its statuses and nickname, reaches `contact` (a local
    /// account or not).
    pub(crate) fn subscription_inbound(
        &mut self,
        user: BareJid,
        contact: BareJid,
        kind: SubKind,
        payload: SubPayload,
        now: Instant,
    ) {
        if contact.domain() != self.config.domain {
            // The contact's server handles its side (server-to-server).
            if self.config.s2s.enabled {
                let p = payload
                    .presence(kind, &user)
                    .with_attr("to", contact.to_string());
                self.s2s_send(p, now);
            }
            return;
        }
        self.account_exists(contact.clone(), now, move |s: &mut Server, exists, now| {
            if exists != Some(true) {
                if exists == Some(false) && kind == SubKind::Subscribe {
                    // RFC 6121 3.1.3: no such contact, the request is refused.
                    s.subscription_inbound(
                        contact,
                        user,
                        SubKind::Unsubscribed,
                        SubPayload::default(),
                        now,
                    );
                }
                return;
            }
            let c = contact.clone();
            s.with_roster(contact, now, move |_, roster, _| {
                let Ok(mut roster) = roster else {
                    return RosterUpdate::unchanged(|_, _, _| {});
                };
                let version = roster.version;
                let (action, changed) = roster.inbound(kind, &user, &payload);
                // The version moves with any change, a request added or withdrawn too.
                let dirty = roster.version != version;
                RosterUpdate {
                    save: dirty.then_some(roster),
                    then: Box::new(move |s: &mut Server, ok, now| {
                        if !ok {
                            return;
                        }
                        if let Some(item) = &changed {
                            s.push_roster_item(&c, item, false, now);
                        }
                        match action {
                            Inbound::Ignore => {}
                            Inbound::AutoReplySubscribed => {
                                s.subscription_inbound(
                                    c,
                                    user,
                                    SubKind::Subscribed,
                                    SubPayload::default(),
                                    now,
                                );
                            }
                            Inbound::Deliver => {
                                let p = payload.presence(kind, &user);
                                s.deliver_presence(&Jid::from(c.clone()), &p, now);
                                if kind == SubKind::Unsubscribe {
                                    // The user no longer sees the contact: unavailable from each session.
                                    let el = Element::new("presence", NS_CLIENT)
                                        .with_attr("type", "unavailable");
                                    for (cid, _) in s.available_sessions(&c) {
                                        if let Some(jid) =
                                            s.conns.get(&cid).and_then(|x| x.jid().cloned())
                                        {
                                            s.send_presence_to_account(&user, &jid, &el, now);
                                        }
                                    }
                                }
                            }
                        }
                    }),
                }
            });
        });
    }

    // ---- messages (RFC 6121 §8.5) ---------------------------------------------

    /// A message kept as received: forwarded as it is (with `from` stamped) when it goes
    /// to online sessions of a local account and nothing on the way needs its tree;
    /// otherwise its tree takes the path of every other stanza.
    pub(crate) fn handle_raw_message(&mut self, id: ConnId, raw: RawElement, now: Instant) {
        match self.raw_targets(id, &raw) {
            Some((from, one, many)) => {
                for t in one.into_iter().chain(many) {
                    if let Some(c) = self.conns.get_mut(&t) {
                        if c.stream.send_raw(&raw, &from).is_err() {
                            backlog_full(&mut c.stream);
                        }
                        self.after(t, now);
                    }
                }
            }
            None => {
                // Always a tree: the parser checked these very bytes.
                if let Ok(el) = raw.to_element() {
                    self.handle_stanza(id, el, now);
                }
            }
        }
    }

    /// The sender's JID and the sessions [`Server::route_message`] would deliver `raw` to,
    /// when that is all that would happen to it: it names a local account's online
    /// session, or the account's best available ones for a normal or chat message; its
    /// `xml:lang` passes the stanza rules. `None` for everything else (bounces, offline
    /// storage, components, the server itself, other domains).
    #[allow(clippy::type_complexity)]
    fn raw_targets(
        &self,
        id: ConnId,
        raw: &RawElement,
    ) -> Option<(Jid, Option<ConnId>, Vec<ConnId>)> {
        let from = self.conns.get(&id)?.jid()?;
        let to_text = raw.attr("to")?;
        if raw.lang().is_some_and(|l| !is_language_tag(l)) {
            return None;
        }
        // Clients write the JIDs they were given, already prepared: text equal to an
        // online account's canonical JID names it (preparing is idempotent), so it needs
        // no preparing. Anything else is prepared first.
        // A byte search: `split_once` with a char pattern costs more on text this short.
        let (bare_text, res_text) = match to_text.bytes().position(|b| b == b'/') {
            Some(i) => (to_text.get(..i).unwrap_or_default(), to_text.get(i + 1..)),
            None => (to_text, None),
        };
        // (account, its session) for a full JID, (account, None) for a bare one.
        let fast = self
            .sessions
            .get_key_value(bare_text)
            .and_then(|(account, online)| match res_text {
                None => Some((account, None)),
                Some(r) => online.conn_of_resource(r).map(|c| (account, Some(c))),
            });
        let parsed;
        let (account, one) = match fast {
            Some(found) => found,
            None => {
                parsed = Jid::parse(to_text).ok()?;
                if parsed.domain() != self.config.domain || parsed.node().is_none() {
                    return None;
                }
                let one = match parsed.resource() {
                    Some(_) => Some(self.conn_of(&parsed)?),
                    None => None,
                };
                (parsed.bare(), one)
            }
        };
        // One session (no allocation) or the best of an account's.
        let mut many = Vec::new();
        if one.is_none() {
            if !matches!(raw.attr("type"), None | Some("normal" | "chat")) {
                return None;
            }
            many = self.best_sessions(account);
            if many.is_empty() {
                return None;
            }
        }
        // Shared parts: no text of the sender built per message (see `send_raw`).
        Some((from.clone(), one, many))
    }

    pub(crate) fn route_message(&mut self, id: ConnId, el: Element, to: Option<Jid>, now: Instant) {
        let Some(to) = to else { return };
        if to.domain() != self.config.domain {
            self.route(id, el, Some(to), now);
            return;
        }
        if to.resource().is_some()
            && let Some(c) = self.conn_of(&to)
        {
            self.deliver_to_conn(c, &el, now);
            return;
        }
        match el.attr("type").unwrap_or("normal") {
            "error" => {}
            "groupchat" => {
                let err = StanzaError::new(DefinedCondition::ServiceUnavailable);
                self.bounce(id, &el, err, now);
            }
            "headline" => {
                if to.resource().is_some() {
                    return;
                }
                for (c, p) in self.available_sessions(&to.to_bare()) {
                    if p >= 0 {
                        self.deliver_to_conn(c, &el, now);
                    }
                }
            }
            _ => {
                // normal and chat: highest non-negative priority, else offline storage.
                let best = self.best_sessions(&to.to_bare());
                if best.is_empty() {
                    self.store_offline(id, to.to_bare(), el, now);
                    return;
                }
                for c in best {
                    self.deliver_to_conn(c, &el, now);
                }
            }
        }
    }

    // ---- offline storage (the guide's offline delivery, XEP-0160) -----------------

    fn store_offline(&mut self, sender: ConnId, account: BareJid, mut el: Element, now: Instant) {
        let wall = self.wall_ms(now);
        let domain = self.config.domain.clone();
        let limit = self.config.max_offline_messages;
        self.account_exists(account.clone(), now, move |s: &mut Server, exists, now| {
            if exists != Some(true) {
                let cond = if exists.is_none() {
                    DefinedCondition::InternalServerError
                } else {
                    DefinedCondition::ServiceUnavailable
                };
                s.bounce(sender, &el, StanzaError::new(cond), now);
                return;
            }
            if let Some(ms) = wall {
                el.children.push(Node::Element(
                    Element::new("delay", NS_DELAY)
                        .with_attr("from", domain.clone())
                        .with_attr("stamp", format_datetime(ms))
                        .with_text("Offline Storage"),
                ));
                el.children.push(Node::Element(
                    // The guide (jabber:x:delay): for a stored message, `from` is the
                    // recipient, whose offline storage caused the stamp.
                    Element::new("x", NS_LEGACY_DELAY)
                        .with_attr("from", account.to_string())
                        .with_attr("stamp", format_legacy_stamp(ms))
                        .with_text("Offline Storage"),
                ));
            }
            let key = offline_key(&account);
            s.exclusive(key.clone(), now, move |s: &mut Server, _| {
                s.run_effect(Op::Get(key.clone()), move |s: &mut Server, result, now| {
                    let queue = match result {
                        EffectResult::Value(Some(b)) => decode_offline(&b),
                        EffectResult::Value(None) => Ok(Element::new("offline", NS_OFFLINE_STORE)),
                        _ => Err(()),
                    };
                    let Ok(mut queue) = queue else {
                        let err = StanzaError::new(DefinedCondition::InternalServerError);
                        s.bounce(sender, &el, err, now);
                        s.release(&key);
                        return;
                    };
                    if queue.elements().count() >= limit {
                        // RFC 6121 8.5.2.1.1: storage full, the message bounces.
                        let err = StanzaError::new(DefinedCondition::ServiceUnavailable)
                            .with_text("the recipient's offline storage is full");
                        s.bounce(sender, &el, err, now);
                        s.release(&key);
                        return;
                    }
                    let bounce_copy = el.clone();
                    queue.children.push(Node::Element(el));
                    s.run_effect(
                        Op::Put(key.clone(), queue.to_bytes()),
                        move |s: &mut Server, result, now| {
                            if !matches!(result, EffectResult::Done) {
                                let err = StanzaError::new(DefinedCondition::InternalServerError);
                                s.bounce(sender, &bounce_copy, err, now);
                            }
                            s.release(&key);
                        },
                    );
                });
            });
        });
    }

    /// Deliver and then delete `account`'s offline messages to session `to`.
    fn deliver_offline(&mut self, account: BareJid, to: ConnId, now: Instant) {
        let key = offline_key(&account);
        self.exclusive(key.clone(), now, move |s: &mut Server, _| {
            s.run_effect(Op::Get(key.clone()), move |s: &mut Server, result, now| {
                let queue = match result {
                    EffectResult::Value(Some(b)) => decode_offline(&b).ok(),
                    _ => None,
                };
                let Some(queue) = queue else {
                    s.release(&key);
                    return;
                };
                if !s.conns.contains_key(&to) {
                    // The session left meanwhile: keep the messages.
                    s.release(&key);
                    return;
                }
                for m in queue.elements() {
                    s.deliver_to_conn(to, m, now);
                }
                // Deleted only after the messages are queued to the session; a failed
                // delete delivers them again later rather than losing them.
                s.run_effect(Op::Delete(key.clone()), move |s: &mut Server, _, _| {
                    s.release(&key);
                });
            });
        });
    }
}

fn decode_offline(bytes: &[u8]) -> Result<Element, ()> {
    let limits = XmlLimits {
        max_element_bytes: 256 << 20,
        ..XmlLimits::default()
    };
    let el = Element::parse_with_limits(bytes, limits).map_err(|_| ())?;
    if el.is("offline", NS_OFFLINE_STORE) {
        Ok(el)
    } else {
        Err(())
    }
}

fn set_error(e: SetError) -> StanzaError {
    match e {
        SetError::BadRequest => StanzaError::new(DefinedCondition::BadRequest),
        SetError::NotAcceptable => StanzaError::new(DefinedCondition::NotAcceptable),
        SetError::NotAllowed => StanzaError::new(DefinedCondition::NotAllowed),
        SetError::ItemNotFound => StanzaError::new(DefinedCondition::ItemNotFound),
    }
}
