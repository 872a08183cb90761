//! XEP-0049 private XML storage: glue between the iq and `elsinore_storage::private`.

use elsinore_jid::{BareJid, Jid};
use elsinore_stanza::{DefinedCondition, StanzaError};
use elsinore_storage::Op;
use elsinore_storage::bookmarks::{self, BookmarkError, NS_LEGACY, Source};
use elsinore_storage::private::{self, IqKind, Pending, PrivateAction, PrivateError};
use elsinore_xml::Element;

use crate::iq::{IqHead, iq_error, iq_result};
use crate::server::{ConnId, Server};
use elsinore_stream::Instant;

impl Server {
    pub(crate) fn handle_private(
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
        let Some(query) = crate::iq::into_payload(el) else {
            return;
        };
        let account = from.to_bare();
        match private::handle(&account, to, kind, &query, &self.config.private_limits) {
            PrivateAction::Reply(Ok(payload)) => {
                self.deliver_to_conn(id, &iq_result(&head, payload), now);
            }
            PrivateAction::Reply(Err(e)) => {
                self.deliver_to_conn(id, &iq_error(&head, Some(query), private_error(e)), now);
            }
            PrivateAction::Run { ops, pending }
                if kind == IqKind::Set && ops.writes_key(&private::key(&account, NS_LEGACY)) =>
            {
                self.bookmark_private_set(id, account, ops, pending, head, query, now);
            }
            PrivateAction::Run { ops, pending } => {
                let k = move |s: &mut Server, result, now| {
                    let reply = match pending.complete(result) {
                        Ok(payload) => iq_result(&head, payload),
                        Err(e) => iq_error(&head, Some(query), private_error(e)),
                    };
                    s.deliver_to_conn(id, &reply, now);
                };
                match ops {
                    // A get is answered from memory when the cache holds the value.
                    Op::Get(key) => self.load(key, now, k),
                    ops => self.run_effect(ops, k),
                }
            }
        }
    }
}

impl Server {
    /// A set that writes XEP-0048 bookmarks: the PEP copies follow in the same batch,
    /// under the account's bookmark lock (see `elsinore_storage::bookmarks`).
    #[allow(clippy::too_many_arguments)] // one request's parts, passed along once
    fn bookmark_private_set(
        &mut self,
        id: ConnId,
        account: BareJid,
        ops: Op,
        pending: Pending,
        head: IqHead,
        query: Element,
        now: Instant,
    ) {
        let lock = bookmarks::lock_key(&account);
        self.exclusive(lock.clone(), now, move |s: &mut Server, _now| {
            let load = bookmarks::load_op(&account);
            s.run_effect(load, move |s: &mut Server, loaded, now| {
                let limits = s.bookmark_limits();
                let planned = bookmarks::Loaded::from_result(loaded).and_then(|loaded| {
                    bookmarks::sync(&account, Source::Private, &ops, &loaded, &limits)
                });
                let sync = match planned {
                    Ok(sync) => sync,
                    Err(e) => {
                        let err = match e {
                            BookmarkError::TooLarge => PrivateError::ResourceConstraint,
                            BookmarkError::Invalid(_) => PrivateError::BadRequest,
                            BookmarkError::Store => PrivateError::InternalServerError,
                        };
                        let reply = iq_error(&head, Some(query), private_error(err));
                        s.deliver_to_conn(id, &reply, now);
                        s.release(&lock);
                        return;
                    }
                };
                let op = sync.combine(ops);
                s.run_effect(op, move |s: &mut Server, result, now| {
                    let reply = match pending.complete(sync.primary_result(result)) {
                        Ok(payload) => {
                            s.pep_notify(&account, sync.notifications, now);
                            iq_result(&head, payload)
                        }
                        Err(e) => iq_error(&head, Some(query), private_error(e)),
                    };
                    s.deliver_to_conn(id, &reply, now);
                    s.release(&lock);
                });
            });
        });
    }
}

fn private_error(e: PrivateError) -> StanzaError {
    let (cond, text) = match e {
        PrivateError::Forbidden => (
            DefinedCondition::Forbidden,
            "private XML belongs to its owner only",
        ),
        PrivateError::BadFormat => (
            DefinedCondition::NotAcceptable,
            "the query must contain one element qualified by the namespace to store or retrieve",
        ),
        PrivateError::NotAcceptable => (
            DefinedCondition::NotAcceptable,
            "this namespace cannot be stored as private XML",
        ),
        PrivateError::BadRequest => (
            DefinedCondition::BadRequest,
            "malformed private XML request",
        ),
        PrivateError::ResourceConstraint => (
            DefinedCondition::ResourceConstraint,
            "private XML storage limit reached",
        ),
        PrivateError::InternalServerError => (
            DefinedCondition::InternalServerError,
            "the store could not complete the request",
        ),
    };
    StanzaError::new(cond).with_text(text)
}
