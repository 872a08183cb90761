//! PEP service (XEP-0163 / XEP-0223): glue between pubsub iqs and `elsinore_storage::pep`.
//!
//! Every operation on a node is a read-modify-write of one storage key, so operations on
//! one (account, node) run one at a time under the server's keyed lock
//! ([`Server::exclusive`]): the lock is taken before the node is loaded and released after
//! the write completed (or failed) and the reply was sent. Later operations on that key
//! wait in order; other keys are not held up. A failed load or write becomes an
//! `internal-server-error` reply and sends no notification; the write is a single op, so
//! it is never half done.

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

    /// Who receives `owner`'s PEP notifications: the owner's available resources and the
    /// available resources of local contacts with a presence subscription to the owner
    /// (from the cached roster), and such contacts on other servers by bare JID (when s2s
    /// is on: their server hands a headline to each available resource, as it does the
    /// owner's presence; XEP-0163 4.3). The access model narrows this per node in
    /// [`Server::pep_notify`].
    fn pep_subscribers(&self, owner: &BareJid) -> (Vec<Jid>, Vec<BareJid>) {
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
                    local.push(full);
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

    pub(crate) fn pep_notify(&mut self, owner: &BareJid, notes: Vec<Notification>, now: Instant) {
        if notes.is_empty() {
            return;
        }
        let (recipients, remote) = self.pep_subscribers(owner);
        for note in notes {
            let to_contacts =
                matches!(note.access_model, AccessModel::Presence | AccessModel::Open);
            for to in &recipients {
                if !(to_contacts || to.bare() == owner) {
                    continue;
                }
                let Some(conn) = self.sessions.get(to.bare()).and_then(|o| {
                    o.conns
                        .iter()
                        .find(|(r, _)| Some(&**r) == to.resource())
                        .map(|(_, c)| *c)
                }) else {
                    continue;
                };
                let msg = self.pep_message(owner, to.to_string(), &note.event);
                self.deliver_to_conn(conn, &msg, now);
            }
            for contact in remote.iter().filter(|_| to_contacts) {
                let msg = self.pep_message(owner, contact.to_string(), &note.event);
                self.s2s_send(msg, now);
            }
        }
    }
}
