//! Account removal: XEP-0077 `<remove/>`, the end of a SASL ANONYMOUS account, and
//! [`remove_stored_account`] for `elsinore deluser` on a stopped server's store.
//!
//! The account's roster is read (under its lock) before its data is deleted, so that
//! every contact can then be told: both subscription directions are cancelled as if the
//! account had sent `unsubscribe` and `unsubscribed` (RFC 6121 2.5.2, XEP-0077 3.2),
//! through the same code as a roster remove.
//!
//! Writes racing the deletion: work that started before it (a job waiting for a keyed
//! lock, the continuation of a read) could otherwise write after the account's
//! `Op::DeleteAccount` and bring part of the deleted account back. From the moment the
//! deletion is emitted, the account is *tombstoned* and every effect that would put a value
//! of it fails at once instead of reaching the store (see [`Tombstones`]).

use std::collections::{HashSet, VecDeque};

use elsinore_jid::BareJid;
use elsinore_storage::{EffectResult, Key, Op, Store, StoreError};
use elsinore_stream::Instant;

use crate::im::roster_key;
use crate::roster::{Item, MAX_ITEMS, MAX_PENDING_IN, Roster, SubKind, Subscription};
use crate::server::Server;

/// Most tombstones kept. They are dropped all at once whenever no work is in flight (no
/// effect pending, no lock held, no job ready), which on most servers is often; this only
/// bounds them on a server that is never idle, where a racing write would have to wait
/// behind this many later removals to slip through.
const MAX_TOMBSTONES: usize = 4096;

/// Accounts whose deletion was emitted while work started earlier may still be running.
#[derive(Debug, Default)]
pub(crate) struct Tombstones {
    set: HashSet<String>,
    /// Oldest first, to drop past [`MAX_TOMBSTONES`].
    order: VecDeque<String>,
}

impl Tombstones {
    pub(crate) fn mark(&mut self, account: &BareJid) {
        let a = account.to_string();
        if self.set.insert(a.clone()) {
            self.order.push_back(a);
        }
        while self.order.len() > MAX_TOMBSTONES {
            if let Some(old) = self.order.pop_front() {
                self.set.remove(&old);
            }
        }
    }

    /// The deletion failed, or the name was registered again: its writes are wanted.
    pub(crate) fn unmark(&mut self, account: &BareJid) {
        let a = account.to_string();
        if self.set.remove(&a) {
            self.order.retain(|o| *o != a);
        }
    }

    pub(crate) fn clear(&mut self) {
        self.set.clear();
        self.order.clear();
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Whether `op` puts a value of a tombstoned account. Deletes pass: they bring
    /// nothing back.
    pub(crate) fn resurrects(&self, op: &Op) -> bool {
        match op {
            Op::Put(k, _) => self.set.contains(&k.account),
            Op::Batch(ops) => ops.iter().any(|o| self.resurrects(o)),
            Op::Get(_) | Op::Delete(_) | Op::DeleteAccount(_) => false,
        }
    }
}

/// The result given instead of running a write refused by the tombstones.
pub(crate) fn refused() -> EffectResult {
    EffectResult::Failed(StoreError::Unavailable("the account was removed".into()))
}

impl Server {
    /// Deletes every stored value of `account` (see `delete_account_data`) holding its
    /// roster lock, and hands `then` the roster as it was before (`None`: nothing was
    /// deleted). A damaged stored roster does not stop the removal; its contacts are then
    /// unknown and not told.
    pub(crate) fn delete_account(
        &mut self,
        account: BareJid,
        now: Instant,
        then: impl FnOnce(&mut Server, Option<Roster>, Instant) + Send + 'static,
    ) {
        let key = roster_key(&account);
        self.exclusive(key.clone(), now, move |s: &mut Server, now| {
            if let Some(r) = s.roster(&account).cloned() {
                s.delete_holding_roster(account, key, r, then, now);
                return;
            }
            s.run_effect(Op::Get(key.clone()), move |s: &mut Server, result, now| {
                let roster = match result {
                    EffectResult::Value(Some(b)) => Roster::from_bytes(&b).unwrap_or_default(),
                    EffectResult::Value(None) => Roster::default(),
                    _ => {
                        // Without the roster the contacts could not be told: keep the
                        // account rather than leave them subscribed to nobody.
                        s.release(&key);
                        then(s, None, now);
                        return;
                    }
                };
                s.delete_holding_roster(account, key, roster, then, now);
            });
        });
    }

    fn delete_holding_roster(
        &mut self,
        account: BareJid,
        key: Key,
        roster: Roster,
        then: impl FnOnce(&mut Server, Option<Roster>, Instant) + Send + 'static,
        now: Instant,
    ) {
        self.delete_account_data(account, now, move |s, done, now| {
            s.release(&key);
            then(s, done.then_some(roster), now);
        });
    }

    /// After `account` was deleted: cancel every subscription its roster held, in both
    /// directions (see `cancel_subscriptions`), and every request waiting for its answer.
    pub(crate) fn cancel_all_subscriptions(
        &mut self,
        account: &BareJid,
        roster: &Roster,
        now: Instant,
    ) {
        let pending: HashSet<&BareJid> = roster
            .pending_in
            .iter()
            .take(MAX_PENDING_IN)
            .map(|(j, _)| j)
            .collect();
        for item in roster.items.iter().take(MAX_ITEMS) {
            let waiting = pending.contains(&item.jid);
            self.cancel_subscriptions(account, item, waiting, now);
        }
        for jid in pending {
            if roster.get(jid).is_none() {
                self.cancel_subscriptions(account, &Item::new(jid.clone()), true, now);
            }
        }
    }

    /// Drops the tombstones once no work that began before a deletion can still write.
    pub(crate) fn settle_tombstones(&mut self) {
        if !self.removed.is_empty() && self.is_idle() {
            self.removed.clear();
        }
    }
}

/// What [`remove_stored_account`] did besides deleting the account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredRemoval {
    /// Accounts of the same domain whose stored roster changed.
    pub contacts_updated: Vec<BareJid>,
    /// Contacts on other servers, which cannot be told while the server is stopped.
    pub remote_contacts: Vec<BareJid>,
}

/// Why [`remove_stored_account`] failed; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoredRemovalError {
    /// No such account (no stored credentials).
    NoAccount,
    /// The store failed.
    Store(StoreError),
}

impl core::fmt::Display for StoredRemovalError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            StoredRemovalError::NoAccount => f.write_str("no such account"),
            StoredRemovalError::Store(e) => write!(f, "the store failed: {e}"),
        }
    }
}

impl std::error::Error for StoredRemovalError {}

/// Deletes `jid`'s account from a store no server is running on (`elsinore deluser`), in
/// one transaction: every stored value of the account, its entry in the jabber:iq:search
/// directory, and the account in its local contacts' rosters, where both subscription
/// directions end as they would on the `unsubscribe` and `unsubscribed` a running server
/// sends: the item stays, with subscription `none`, no pending request either way (as a
/// running server leaves it). No one is online to get a roster push; contacts on other
/// servers cannot be told and are listed in the result.
pub fn remove_stored_account(
    store: &mut impl Store,
    jid: &BareJid,
) -> Result<StoredRemoval, StoredRemovalError> {
    if read(store, crate::accounts::credentials_key(jid))?.is_none() {
        return Err(StoredRemovalError::NoAccount);
    }
    let roster = read(store, roster_key(jid))?
        .and_then(|b| Roster::from_bytes(&b).ok())
        .unwrap_or_default();
    // Everyone the account had a subscription or a request with, either way.
    let mut contacts: Vec<&BareJid> = roster
        .items
        .iter()
        .filter(|i| i.subscription != Subscription::None || i.ask)
        .map(|i| &i.jid)
        .collect();
    for (j, _) in &roster.pending_in {
        if !contacts.contains(&j) {
            contacts.push(j);
        }
    }
    let mut ops = vec![Op::DeleteAccount(jid.to_string())];
    let mut done = StoredRemoval::default();
    for contact in contacts.into_iter().take(MAX_ITEMS + MAX_PENDING_IN) {
        if contact.domain() != jid.domain() {
            done.remote_contacts.push(contact.clone());
            continue;
        }
        let key = roster_key(contact);
        // A contact without a (readable) roster has nothing to change.
        let Some(mut theirs) = read(store, key.clone())?.and_then(|b| Roster::from_bytes(&b).ok())
        else {
            continue;
        };
        // Their side of the account's `unsubscribe` and `unsubscribed`.
        let before = theirs.version;
        theirs.inbound(SubKind::Unsubscribe, jid, &Default::default());
        theirs.inbound(SubKind::Unsubscribed, jid, &Default::default());
        if theirs.version != before {
            ops.push(Op::Put(key, theirs.to_bytes()));
            done.contacts_updated.push(contact.clone());
        }
    }
    let dir_key = crate::services::directory_key(jid.domain());
    if let Some(old) = read(store, dir_key.clone())? {
        let mut dir = crate::services::parse_directory(Some(&old));
        let count = dir.elements().count();
        crate::services::set_directory_entry(&mut dir, jid, None);
        if dir.elements().count() != count {
            ops.push(Op::Put(dir_key, dir.to_bytes()));
        }
    }
    match store.apply(&Op::Batch(ops)) {
        EffectResult::Batch(_) => Ok(done),
        EffectResult::Failed(e) => Err(StoredRemovalError::Store(e)),
        other => Err(unexpected(&other)),
    }
}

fn read(store: &mut impl Store, key: Key) -> Result<Option<Vec<u8>>, StoredRemovalError> {
    match store.apply(&Op::Get(key)) {
        EffectResult::Value(v) => Ok(v),
        EffectResult::Failed(e) => Err(StoredRemovalError::Store(e)),
        other => Err(unexpected(&other)),
    }
}

fn unexpected(result: &EffectResult) -> StoredRemovalError {
    StoredRemovalError::Store(StoreError::Corrupt(format!(
        "unexpected store result {result:?}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use elsinore_storage::MemoryStore;

    fn j(s: &str) -> BareJid {
        BareJid::parse(s).expect("valid")
    }

    fn with_items(items: Vec<(&str, Subscription, bool)>, pending: &[&str]) -> Roster {
        Roster {
            items: items
                .into_iter()
                .map(|(jid, subscription, ask)| Item {
                    subscription,
                    ask,
                    ..Item::new(j(jid))
                })
                .collect(),
            pending_in: pending.iter().map(|p| (j(p), Default::default())).collect(),
            version: 7,
        }
    }

    fn put(store: &mut MemoryStore, key: Key, value: Vec<u8>) {
        assert_eq!(store.apply(&Op::Put(key, value)), EffectResult::Done);
    }

    fn roster_of(store: &mut MemoryStore, account: &str) -> Roster {
        match store.apply(&Op::Get(roster_key(&j(account)))) {
            EffectResult::Value(Some(b)) => Roster::from_bytes(&b).expect("decodes"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_stored_removal_ends_subscriptions_both_ways_in_one_batch() {
        let mut store = MemoryStore::default();
        let ham = j("hamlet@elsinore.lit");
        put(
            &mut store,
            crate::accounts::credentials_key(&ham),
            b"x".to_vec(),
        );
        let mine = with_items(
            vec![
                ("ophelia@elsinore.lit", Subscription::Both, false),
                ("horatio@elsinore.lit", Subscription::None, true),
                ("yorick@elsinore.lit", Subscription::None, false),
                ("laertes@paris.lit", Subscription::From, false),
            ],
            &["osric@elsinore.lit"],
        );
        put(&mut store, roster_key(&ham), mine.to_bytes());
        let ophelia = with_items(
            vec![("hamlet@elsinore.lit", Subscription::Both, false)],
            &[],
        );
        put(
            &mut store,
            roster_key(&j("ophelia@elsinore.lit")),
            ophelia.to_bytes(),
        );
        let horatio = with_items(vec![], &["hamlet@elsinore.lit"]);
        put(
            &mut store,
            roster_key(&j("horatio@elsinore.lit")),
            horatio.to_bytes(),
        );
        let osric = with_items(vec![("hamlet@elsinore.lit", Subscription::None, true)], &[]);
        put(
            &mut store,
            roster_key(&j("osric@elsinore.lit")),
            osric.to_bytes(),
        );
        let yorick = with_items(
            vec![("hamlet@elsinore.lit", Subscription::None, false)],
            &[],
        );
        put(
            &mut store,
            roster_key(&j("yorick@elsinore.lit")),
            yorick.to_bytes(),
        );
        let mut dir = crate::services::parse_directory(None);
        let fields = || {
            Some([
                "Hamlet".to_string(),
                String::new(),
                String::new(),
                String::new(),
            ])
        };
        crate::services::set_directory_entry(&mut dir, &ham, fields());
        crate::services::set_directory_entry(&mut dir, &j("ophelia@elsinore.lit"), fields());
        let dir_key = crate::services::directory_key("elsinore.lit");
        put(&mut store, dir_key.clone(), dir.to_bytes());

        // A store that fails the final transaction: nothing changes.
        struct NoBatch<'a>(&'a mut MemoryStore);
        impl Store for NoBatch<'_> {
            fn apply(&mut self, op: &Op) -> EffectResult {
                match op {
                    Op::Batch(_) => EffectResult::Failed(StoreError::Unavailable("down".into())),
                    op => self.0.apply(op),
                }
            }
        }
        let before = store.len();
        assert!(matches!(
            remove_stored_account(&mut NoBatch(&mut store), &ham),
            Err(StoredRemovalError::Store(_))
        ));
        assert_eq!(store.len(), before);
        assert_eq!(roster_of(&mut store, "ophelia@elsinore.lit"), ophelia);

        let done = remove_stored_account(&mut store, &ham).expect("removed");
        let mut updated = done.contacts_updated.clone();
        updated.sort_by_key(|c| c.to_string());
        assert_eq!(
            updated,
            vec![
                j("horatio@elsinore.lit"),
                j("ophelia@elsinore.lit"),
                j("osric@elsinore.lit")
            ]
        );
        assert_eq!(done.remote_contacts, vec![j("laertes@paris.lit")]);
        assert!(
            store
                .iter()
                .all(|(k, _)| k.account != "hamlet@elsinore.lit")
        );
        let o = roster_of(&mut store, "ophelia@elsinore.lit");
        assert_eq!(
            o.get(&ham).map(|i| (i.subscription, i.ask)),
            Some((Subscription::None, false))
        );
        assert!(
            roster_of(&mut store, "horatio@elsinore.lit")
                .pending_in
                .is_empty()
        );
        let o = roster_of(&mut store, "osric@elsinore.lit");
        assert_eq!(o.get(&ham).map(|i| i.ask), Some(false));
        assert_eq!(
            roster_of(&mut store, "yorick@elsinore.lit"),
            yorick,
            "nothing to end"
        );
        let EffectResult::Value(Some(d)) = store.apply(&Op::Get(dir_key)) else {
            panic!("directory kept");
        };
        let d = String::from_utf8_lossy(&d).into_owned();
        assert!(!d.contains("hamlet@") && d.contains("ophelia@"), "{d}");
        assert_eq!(
            remove_stored_account(&mut store, &ham),
            Err(StoredRemovalError::NoAccount)
        );
    }
}
