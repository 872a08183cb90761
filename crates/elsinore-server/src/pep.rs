//! PEP service (XEP-0163 / XEP-0223): glue between pubsub iqs and `elsinore_storage::pep`.
//!
//! Every operation on a node is a read-modify-write of one storage key, so operations on
//! one (account, node) run one at a time under the server's keyed lock
//! ([`Server::exclusive`]): the lock is taken before the node is loaded and released after
//! the write completed (or failed) and the reply was sent. Later operations on that key
//! wait in order; other keys are not held up. A failed load or write becomes an
//! `internal-server-error` reply and sends no notification; the write is a single op, so
//! it is never half done.

use std::collections::BTreeMap;

use elsinore_jid::{BareJid, Jid};
use elsinore_stanza::{
    DefinedCondition, ErrorType, NS_CLIENT, NS_DISCO_INFO, NS_PUBSUB, NS_PUBSUB_OWNER, StanzaError,
};
use elsinore_storage::pep::{
    self, AccessModel, Action, IqKind, Notification, PepError, Request, Requester,
};
use elsinore_storage::{EffectResult, bookmarks};
use elsinore_stream::Instant;
use elsinore_xml::Element;

use crate::im::RosterUpdate;
use crate::iq::{IqHead, iq_error, iq_result};
use crate::server::{ConnId, Server};

/// Whether an iq belongs to the PEP service: its payload is in the pubsub or pubsub#owner
/// namespace and it is addressed to no one (the sender's own service) or to a bare JID of
/// an account of `domain`.
pub(crate) fn addressed_to_pep(iq: &Element, to: Option<&Jid>, domain: &str) -> bool {
    let pubsub = iq
        .elements()
        .next()
        .is_some_and(|p| p.ns == NS_PUBSUB || p.ns == NS_PUBSUB_OWNER);
    pubsub
        && to.is_none_or(|t| t.node().is_some() && t.resource().is_none() && t.domain() == domain)
}

/// The disco#info identity of the PEP service (on the account's bare JID and the server).
pub(crate) fn disco_identity() -> Element {
    Element::new("identity", NS_DISCO_INFO)
        .with_attr("category", "pubsub")
        .with_attr("type", "pep")
}

/// The disco#info features of the PEP service: exactly what is implemented.
pub(crate) fn disco_features() -> &'static [&'static str] {
    pep::FEATURES
}

/// The RFC 6120 stanza error for a PEP error.
pub(crate) fn pep_error(e: &PepError) -> StanzaError {
    let cond = DefinedCondition::from_name(e.condition(), None)
        .unwrap_or(DefinedCondition::UndefinedCondition);
    let mut err = StanzaError::new(cond).with_text(e.text());
    if let Some(t) = ErrorType::from_attr(e.error_type()) {
        err = err.with_type(t);
    }
    if let Some(app) = e.app_condition() {
        err = err.with_app(app);
    }
    err
}

/// A bookmark write that cannot be carried over to the other copies.
fn bookmark_pep_error(e: bookmarks::BookmarkError) -> PepError {
    match e {
        bookmarks::BookmarkError::Invalid(_) => PepError::InvalidPayload,
        bookmarks::BookmarkError::TooLarge => PepError::ResourceConstraint,
        bookmarks::BookmarkError::Store => PepError::InternalServerError,
    }
}

impl Server {
    pub(crate) fn handle_pep(
        &mut self,
        id: ConnId,
        from: &Jid,
        to: Option<&Jid>,
        el: Element,
        now: Instant,
    ) {
        let head = IqHead {
            id: el.attr("id").unwrap_or_default().to_string(),
            from: Some(from.clone()),
            to: el.attr("to").map(str::to_string),
        };
        let kind = match el.attr("type") {
            Some("get") => IqKind::Get,
            Some("set") => IqKind::Set,
            _ => return,
        };
        let Some(pubsub) = crate::iq::into_payload(el) else {
            return;
        };
        let owner = to.map_or_else(|| from.to_bare(), Jid::to_bare);
        let requester_bare = from.to_bare();
        if requester_bare == owner {
            self.pep_request(id, owner, Requester::Owner, kind, pubsub, head, now);
            return;
        }
        // Someone else: their relation to the owner comes from the owner's roster.
        self.with_roster(owner.clone(), now, move |_, roster, _| RosterUpdate {
            save: None,
            then: Box::new(move |s: &mut Server, _, now| {
                // Unread, the roster says nothing about the requester: answering as to a
                // stranger would tell a contact it has no subscription.
                let Ok(roster) = roster else {
                    let reply = Err(PepError::InternalServerError);
                    s.pep_reply(id, &head, pubsub, reply, now);
                    return;
                };
                let subscribed = roster.presence_subscribers().any(|c| *c == requester_bare);
                let requester = if subscribed {
                    Requester::PresenceSubscriber
                } else {
                    Requester::Other
                };
                s.pep_request(id, owner, requester, kind, pubsub, head, now);
            }),
        });
    }

    #[allow(clippy::too_many_arguments)] // one request's parts, passed along once
    fn pep_request(
        &mut self,
        id: ConnId,
        owner: BareJid,
        requester: Requester,
        kind: IqKind,
        pubsub: Element,
        head: IqHead,
        now: Instant,
    ) {
        let fresh_id = self.rng.token(16);
        let req = Request {
            owner: &owner,
            requester,
            kind,
            pubsub: &pubsub,
            fresh_id: &fresh_id,
        };
        let pending = match pep::handle(&req, &pep::Limits::default()) {
            Action::Reply(reply) => {
                self.pep_reply(id, &head, pubsub, reply, now);
                return;
            }
            Action::Load(pending) => pending,
        };
        if let Some(source) = bookmarks::Source::of_node(&pending.key().name) {
            self.bookmark_pep_request(id, owner, source, pending, pubsub, head, now);
            return;
        }
        let key = pending.key().clone();
        self.exclusive(key.clone(), now, move |s: &mut Server, now| {
            s.load(key.clone(), now, move |s: &mut Server, loaded, now| {
                let outcome = pending.complete(loaded);
                let Some(write) = outcome.write.clone() else {
                    let (reply, notes) = outcome.finish(None);
                    s.pep_reply(id, &head, pubsub, reply, now);
                    s.pep_notify(&owner, notes, now);
                    s.release(&key);
                    return;
                };
                s.run_effect(write, move |s: &mut Server, written: EffectResult, now| {
                    let (reply, notes) = outcome.finish(Some(written));
                    s.pep_reply(id, &head, pubsub, reply, now);
                    s.pep_notify(&owner, notes, now);
                    s.release(&key);
                });
            });
        });
    }

    /// A request on one of the two bookmark nodes: the three bookmark copies are loaded
    /// and written together under the account's bookmark lock (see
    /// `elsinore_storage::bookmarks`), so the other copies follow every change.
    #[allow(clippy::too_many_arguments)] // one request's parts, passed along once
    fn bookmark_pep_request(
        &mut self,
        id: ConnId,
        owner: BareJid,
        source: bookmarks::Source,
        pending: pep::Pending,
        pubsub: Element,
        head: IqHead,
        now: Instant,
    ) {
        let lock = bookmarks::lock_key(&owner);
        self.exclusive(lock.clone(), now, move |s: &mut Server, _now| {
            let load = bookmarks::load_op(&owner);
            s.run_effect(load, move |s: &mut Server, loaded, now| {
                let loaded = match bookmarks::Loaded::from_result(loaded) {
                    Ok(l) => l,
                    Err(_) => {
                        let reply = Err(PepError::InternalServerError);
                        s.pep_reply(id, &head, pubsub, reply, now);
                        s.release(&lock);
                        return;
                    }
                };
                let outcome = pending.complete(loaded.result_for(source));
                let Some(write) = outcome.write.clone() else {
                    let (reply, notes) = outcome.finish(None);
                    s.pep_reply(id, &head, pubsub, reply, now);
                    s.pep_notify(&owner, notes, now);
                    s.release(&lock);
                    return;
                };
                let limits = s.bookmark_limits();
                let sync = match bookmarks::sync(&owner, source, &write, &loaded, &limits) {
                    Ok(sync) => sync,
                    Err(e) => {
                        s.pep_reply(id, &head, pubsub, Err(bookmark_pep_error(e)), now);
                        s.release(&lock);
                        return;
                    }
                };
                let op = sync.combine(write);
                s.run_effect(op, move |s: &mut Server, written: EffectResult, now| {
                    let written = sync.primary_result(written);
                    let (reply, mut notes) = outcome.finish(Some(written));
                    if reply.is_ok() {
                        notes.extend(sync.notifications);
                    }
                    s.pep_reply(id, &head, pubsub, reply, now);
                    s.pep_notify(&owner, notes, now);
                    s.release(&lock);
                });
            });
        });
    }

    pub(crate) fn bookmark_limits(&self) -> bookmarks::SyncLimits {
        bookmarks::SyncLimits {
            pep: pep::Limits::default(),
            private: self.config.private_limits,
        }
    }

    fn pep_reply(
        &mut self,
        id: ConnId,
        head: &IqHead,
        request: Element,
        reply: Result<Option<Element>, PepError>,
        now: Instant,
    ) {
        let el = match reply {
            Ok(payload) => iq_result(head, payload),
            Err(e) => iq_error(head, Some(request), pep_error(&e)),
        };
        self.deliver_to_conn(id, &el, now);
    }

    /// Who may receive `owner`'s PEP notifications: the owner's available resources and
    /// the available resources of local contacts with a presence subscription to the owner
    /// (from the cached roster), each with its connection, and such contacts on other
    /// servers by bare JID (when s2s is on: their server hands a headline to each available
    /// resource, as it does the owner's presence; XEP-0163 4.3). The access model and the
    /// contacts' `+notify` narrow this per node in [`Server::pep_notify`].
    fn pep_subscribers(&self, owner: &BareJid) -> (Vec<(Jid, ConnId)>, Vec<BareJid>) {
        let mut accounts = vec![owner.clone()];
        let mut remote = Vec::new();
        if let Some(roster) = self.roster(owner) {
            for contact in roster.presence_subscribers() {
                if contact.domain() == self.config.domain {
                    accounts.push(contact.clone());
                } else if self.config.s2s.enabled {
                    remote.push(contact.clone());
                }
            }
        }
        let mut local = Vec::new();
        for account in accounts {
            let available = self.available_sessions(&account);
            let Some(list) = self.sessions.get(&account).map(|o| &o.conns) else {
                continue;
            };
            for (res, conn) in list {
                if available.iter().any(|(c, _)| c == conn)
                    && let Ok(full) = account.with_resource(res)
                {
                    local.push((full, *conn));
                }
            }
        }
        (local, remote)
    }

    /// One event notification (XEP-0163 4.3): a headline from the owner's bare JID.
    fn pep_message(&mut self, owner: &BareJid, to: String, event: &Element) -> Element {
        Element::new("message", NS_CLIENT)
            .with_attr("from", owner.to_string())
            .with_attr("to", to)
            .with_attr("type", "headline")
            .with_attr("id", format!("pep-{}", self.rng.token(12)))
            .with_child(event.clone())
    }

    /// Send `notes` about `owner`'s nodes. The owner's available resources get every one
    /// (XEP-0163 §3: "as well as to any of the account owner's available resources"; a
    /// XEP-0223 client keeps its private data in step this way without advertising
    /// anything). A local contact's resource gets a `presence`/`open` node's notes only
    /// with a non-negative priority and `NODE+notify` in its capabilities (§4.2, §4.3.2).
    /// Remote contacts get them at their bare JID: we do not see their capabilities.
    pub(crate) fn pep_notify(&mut self, owner: &BareJid, notes: Vec<Notification>, now: Instant) {
        if notes.is_empty() {
            return;
        }
        let (recipients, remote) = self.pep_subscribers(owner);
        for note in notes {
            let to_contacts =
                matches!(note.access_model, AccessModel::Presence | AccessModel::Open);
            for (to, conn) in &recipients {
                let send = if to.bare() == owner {
                    true
                } else {
                    to_contacts
                        && self.wants_notify(*conn, &note.node)
                        && self.conns.get(conn).is_some_and(|c| c.priority >= 0)
                };
                if send {
                    let msg = self.pep_message(owner, to.to_string(), &note.event);
                    self.deliver_to_conn(*conn, &msg, now);
                }
            }
            for contact in remote.iter().filter(|_| to_contacts) {
                let msg = self.pep_message(owner, contact.to_string(), &note.event);
                // Generated here, not sent by the owner: an unreachable contact's server
                // must not bring the owner an error for it.
                self.s2s_send_generated(msg, now);
            }
        }
    }

    /// Session `id` newly wants some nodes (it became available, or its capabilities
    /// became known or changed): send it the last item of each such node of its own
    /// account and of the local accounts whose presence it receives, where it is entitled
    /// to the node and the node sends its last item (XEP-0163 §4.3.3-4). At most
    /// [`MAX_LAST_ITEM_LOADS`] nodes are looked at per occasion.
    pub(crate) fn pep_last_items(&mut self, id: ConnId, now: Instant) {
        let nodes = self.take_new_interest(id);
        if nodes.is_empty() {
            return;
        }
        let Some(to) = self.conns.get(&id).and_then(|c| c.jid().cloned()) else {
            return;
        };
        let user = to.to_bare();
        self.with_roster(user.clone(), now, move |s, roster, now| {
            let mut sources = vec![user.clone()];
            if let Ok(roster) = roster {
                let domain = s.config.domain.as_str();
                sources.extend(
                    roster
                        .presence_sources()
                        .filter(|c| c.domain() == domain && **c != user)
                        .cloned(),
                );
            }
            let pairs = sources
                .iter()
                .flat_map(|src| nodes.iter().map(move |n| (src.clone(), n.clone())))
                .take(MAX_LAST_ITEM_LOADS);
            for (source, node) in pairs.collect::<Vec<_>>() {
                s.pep_send_last(source, node, vec![(to.clone(), id)], now);
            }
            RosterUpdate::unchanged(|_, _, _| {})
        });
    }

    /// `owner` approved `contact`'s presence subscription: the contact is a new
    /// subscriber to the owner's nodes (XEP-0163 §4.1, auto-subscribe), so each of its
    /// available sessions with a non-negative priority gets the last item of each node it
    /// wants, where it may see the node and the node sends its last item (§4.3.4: "to all
    /// new subscribers"). At most [`MAX_LAST_ITEM_LOADS`] nodes are looked at. Local
    /// contacts only: of a remote contact we know no sessions or capabilities, and the
    /// availability path does not send to them either. A session whose capabilities are
    /// still being asked for gets its last items with the answer, from the availability
    /// path ([`Server::pep_last_items`]), the contact's roster having `to` by then.
    pub(crate) fn pep_new_subscriber(&mut self, owner: &BareJid, contact: &BareJid, now: Instant) {
        if contact.domain() != self.config.domain || contact == owner {
            return;
        }
        // Each wanted node once, with every session that wants it.
        let mut wanted: BTreeMap<String, Vec<(Jid, ConnId)>> = BTreeMap::new();
        for (conn, _) in self.available_sessions(contact) {
            let Some(interest) = self.pep_interest(conn) else {
                continue;
            };
            let Some(to) = self.conns.get(&conn).and_then(|c| c.jid().cloned()) else {
                continue;
            };
            for node in interest.nodes() {
                wanted
                    .entry(node.clone())
                    .or_default()
                    .push((to.clone(), conn));
            }
        }
        for (node, sessions) in wanted.into_iter().take(MAX_LAST_ITEM_LOADS) {
            self.pep_send_last(owner.clone(), node, sessions, now);
        }
    }

    /// Send `owner`'s last item of `node` to `sessions` (full JIDs and connections of one
    /// account), each if it is still that available session, when that account is
    /// entitled to the node: the owner's own, or a `presence`/`open` node and a presence
    /// subscription in the owner's roster.
    fn pep_send_last(
        &mut self,
        owner: BareJid,
        node: String,
        sessions: Vec<(Jid, ConnId)>,
        now: Instant,
    ) {
        let Some(account) = sessions.first().map(|(to, _)| to.to_bare()) else {
            return;
        };
        let key = pep::node_key(&owner, &node);
        self.load(key, now, move |s: &mut Server, loaded, now| {
            let EffectResult::Value(Some(bytes)) = loaded else {
                return; // no node, or unreadable: nothing to send
            };
            let Ok(state) = pep::NodeState::decode(&bytes) else {
                return;
            };
            let Some(event) = state.last_item_event(&node) else {
                return;
            };
            if owner == account {
                s.pep_deliver_last(&owner, &sessions, &event, now);
                return;
            }
            if state.config.access_model == AccessModel::Whitelist {
                return;
            }
            // Entitled: a presence subscription in the owner's roster, as for notifications.
            s.with_roster(owner.clone(), now, move |s, roster, now| {
                if roster.is_ok_and(|r| r.presence_subscribers().any(|c| *c == account)) {
                    s.pep_deliver_last(&owner, &sessions, &event, now);
                }
                RosterUpdate::unchanged(|_, _, _| {})
            });
        });
    }

    fn pep_deliver_last(
        &mut self,
        owner: &BareJid,
        sessions: &[(Jid, ConnId)],
        event: &Element,
        now: Instant,
    ) {
        for (to, conn) in sessions {
            let same_session = self
                .conns
                .get(conn)
                .is_some_and(|c| c.presence.is_some() && c.jid() == Some(to));
            if same_session {
                let msg = self.pep_message(owner, to.to_string(), event);
                self.deliver_to_conn(*conn, &msg, now);
            }
        }
    }
}

/// Nodes looked at for last items on one occasion (the session's new interest times the
/// accounts it follows; or, on an approved subscription, the nodes the contact's sessions
/// want): a bound on the loads one presence or approval can cause.
const MAX_LAST_ITEM_LOADS: usize = 256;
