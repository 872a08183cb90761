//! A bounded write-through cache of the stored values that hot requests read: XEP-0049
//! private XML (one value per account and namespace) and PEP nodes (one value per account
//! and node).
//!
//! Why: without it a private-storage get, or the node load before every PEP publish, is a
//! trip through the storage worker and a share of a group commit.
//!
//! The cache never answers with something the store would not answer at that point:
//! - it is filled only from effects that completed: a successful write puts what it wrote,
//!   a successful read what it read; nothing a client was not yet told is durable is seen;
//! - a key with a write in flight, or whose account has a deletion in flight, is neither
//!   answered nor filled: the load goes to the store, queued behind that write as before;
//! - a failed write drops every key it touched; an account deletion drops the account's
//!   keys when it is emitted and again when it completes;
//! - a read fills only if no write of a cached value completed while it was in flight and
//!   none of its key is in flight when it completes, so a read answered out of order never
//!   puts back an older value.
//!
//! Keys carry their account, so one account's values are never an answer for another's.

use std::collections::VecDeque;

use elsinore_storage::{EffectResult, Key, Op, Space};

use crate::server::FastMap;

/// Bounds of the value cache ([`crate::ServerConfig::value_cache`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheLimits {
    /// Most values held; 0 turns the cache off.
    pub max_entries: usize,
    /// Most bytes held, counting keys, values and a fixed per-entry overhead.
    pub max_bytes: usize,
    /// Larger values are not cached (they are read from the store each time).
    pub max_value_bytes: usize,
}

impl Default for CacheLimits {
    /// 10 000 values, 8 MiB, values up to 64 KiB (XEP-0049's per-namespace limit): the
    /// bookmarks, notes and PEP nodes of the accounts in use fit, a heavy user's big node
    /// does not push everyone else out.
    fn default() -> Self {
        CacheLimits {
            max_entries: 10_000,
            max_bytes: 8 * 1024 * 1024,
            max_value_bytes: 64 * 1024,
        }
    }
}

/// Bytes counted per entry besides its key and value: the map slot, the clock slot
/// (another copy of the key's strings is counted with the key) and allocator overhead.
const ENTRY_OVERHEAD: usize = 96;

/// Whether values of `space` are cached.
fn cached_space(space: Space) -> bool {
    matches!(space, Space::Private | Space::PubSub)
}

struct Slot {
    space: Space,
    name: String,
    /// `None`: known to be absent from the store.
    value: Option<Vec<u8>>,
    /// Read or written since the clock hand last passed (second chance).
    used: bool,
    cost: usize,
}

/// See the module documentation.
pub(crate) struct ValueCache {
    limits: CacheLimits,
    /// Values by account, only for accounts with a session (like the roster cache): an
    /// account's values go when its last session ends. A short list per account, capped
    /// at [`MAX_PER_ACCOUNT`], so a lookup is a short scan. Only accounts with values have
    /// an entry: who is online is asked of the routing table when a value is filled, so
    /// an idle session costs the cache nothing.
    accounts: FastMap<String, Vec<Slot>>,
    entries: usize,
    /// Eviction order (CLOCK). May hold keys that were dropped since, or twice; such
    /// slots are skipped, and the queue is rebuilt when they pile up.
    clock: VecDeque<Key>,
    bytes: usize,
    /// Writes in flight per key.
    writing: FastMap<Key, u32>,
    /// Account deletions in flight per account.
    wiping: FastMap<String, u32>,
    /// Writes of cached values (and account deletions) completed so far.
    writes_done: u64,
}

/// What the cache remembers of an effect in flight ([`ValueCache::begin`]).
#[derive(Debug)]
pub(crate) struct Tracked {
    op: Op,
    /// [`ValueCache::writes_done`] when the effect was emitted.
    epoch: u64,
}

/// Most values cached for one account (one with thousands of private namespaces is
/// served from the store beyond this).
const MAX_PER_ACCOUNT: usize = 64;

impl core::fmt::Debug for ValueCache {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ValueCache")
            .field("entries", &self.entries)
            .field("bytes", &self.bytes)
            .finish_non_exhaustive()
    }
}

impl ValueCache {
    pub(crate) fn new(limits: CacheLimits) -> Self {
        ValueCache {
            limits,
            accounts: FastMap::default(),
            entries: 0,
            clock: VecDeque::new(),
            bytes: 0,
            writing: FastMap::default(),
            wiping: FastMap::default(),
            writes_done: 0,
        }
    }

    /// (values held, bytes counted).
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.entries, self.bytes)
    }

    /// `account`'s last session ended: its values are dropped.
    pub(crate) fn account_offline(&mut self, account: &str) {
        if let Some(slots) = self.accounts.remove(account) {
            self.forget(&slots);
        }
    }

    /// The stored value of `key` (`Some(None)`: known absent), if the cache may answer.
    pub(crate) fn get(&mut self, key: &Key) -> Option<Option<Vec<u8>>> {
        if self.busy(key) {
            return None;
        }
        let slot = self.slot_mut(key)?;
        slot.used = true;
        Some(slot.value.clone())
    }

    fn slot_mut(&mut self, key: &Key) -> Option<&mut Slot> {
        self.accounts
            .get_mut(&key.account)?
            .iter_mut()
            .find(|s| s.space == key.space && s.name == key.name)
    }

    /// An effect with `op` is emitted. Returns what [`ValueCache::finish`] needs at its
    /// completion, or `None` when the op touches nothing cached (most effects).
    pub(crate) fn begin(&mut self, op: &Op) -> Option<Tracked> {
        if self.limits.max_entries == 0 || !touches(op) {
            return None;
        }
        self.begin_walk(op);
        Some(Tracked {
            op: op.clone(),
            epoch: self.writes_done,
        })
    }

    fn begin_walk(&mut self, op: &Op) {
        match op {
            Op::Put(key, _) | Op::Delete(key) if cached_space(key.space) => {
                *self.writing.entry(key.clone()).or_insert(0) += 1;
            }
            Op::DeleteAccount(account) => {
                *self.wiping.entry(account.clone()).or_insert(0) += 1;
                self.purge(account);
            }
            Op::Batch(ops) => ops.iter().for_each(|op| self.begin_walk(op)),
            Op::Get(_) | Op::Put(..) | Op::Delete(_) => {}
        }
    }

    /// The effect whose op [`ValueCache::begin`] returned completed with `result`.
    /// `online`: whether an account has a session now (only those have values cached).
    pub(crate) fn finish(
        &mut self,
        tracked: Tracked,
        result: &EffectResult,
        online: &dyn Fn(&str) -> bool,
    ) {
        // Reads first: they must be judged against the writes done before this effect.
        let fresh = tracked.epoch == self.writes_done;
        self.finish_walk(tracked.op, Some(result), fresh, online);
    }

    /// `result`: `None` when the op did not succeed (a failed batch fails every op in it).
    /// `fresh`: no write completed since the effect was emitted.
    fn finish_walk(
        &mut self,
        op: Op,
        result: Option<&EffectResult>,
        fresh: bool,
        online: &dyn Fn(&str) -> bool,
    ) {
        let result = result.filter(|r| !r.is_failed());
        match op {
            Op::Get(key) => {
                if let Some(EffectResult::Value(value)) = result
                    && fresh
                    && cached_space(key.space)
                    && !self.busy(&key)
                {
                    self.insert(key, value.clone(), online);
                }
            }
            Op::Put(key, bytes) if cached_space(key.space) => {
                let done = matches!(result, Some(EffectResult::Done));
                self.write_done(key, done.then_some(Some(bytes)), online);
            }
            Op::Delete(key) if cached_space(key.space) => {
                let done = matches!(result, Some(EffectResult::Done));
                self.write_done(key, done.then_some(None), online);
            }
            Op::Put(..) | Op::Delete(_) => {}
            Op::DeleteAccount(account) => {
                self.writes_done += 1;
                if let Some(n) = self.wiping.get_mut(&account) {
                    *n -= 1;
                    if *n == 0 {
                        self.wiping.remove(&account);
                    }
                }
                self.purge(&account);
            }
            Op::Batch(ops) => {
                let results = match result {
                    Some(EffectResult::Batch(results)) if results.len() == ops.len() => {
                        Some(results)
                    }
                    _ => None,
                };
                for (i, op) in ops.into_iter().enumerate() {
                    self.finish_walk(op, results.and_then(|r| r.get(i)), fresh, online);
                }
            }
        }
    }

    /// A write of `key` completed: `Some(value)` what is now stored, `None` it failed.
    fn write_done(
        &mut self,
        key: Key,
        stored: Option<Option<Vec<u8>>>,
        online: &dyn Fn(&str) -> bool,
    ) {
        self.writes_done += 1;
        if let Some(n) = self.writing.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.writing.remove(&key);
            }
        }
        match stored {
            // While the account's deletion is in flight the value is about to go.
            Some(value) if !self.wiping.contains_key(&key.account) => {
                self.insert(key, value, online)
            }
            // A failed write had no effect, but dropping the key costs only a reload.
            _ => self.remove(&key),
        }
    }

    fn busy(&self, key: &Key) -> bool {
        (!self.writing.is_empty() && self.writing.contains_key(key))
            || (!self.wiping.is_empty() && self.wiping.contains_key(&key.account))
    }

    fn insert(&mut self, key: Key, value: Option<Vec<u8>>, online: &dyn Fn(&str) -> bool) {
        let len = value.as_ref().map_or(0, Vec::len);
        let cost = 2 * (key.account.len() + key.name.len()) + len + ENTRY_OVERHEAD;
        if len > self.limits.max_value_bytes || cost > self.limits.max_bytes {
            // Not cacheable: an older value must not stay behind.
            self.remove(&key);
            return;
        }
        if !self.accounts.contains_key(&key.account) && !online(&key.account) {
            return; // no session: not cached
        }
        let slots = self.accounts.entry(key.account.clone()).or_default();
        if let Some(slot) = slots
            .iter_mut()
            .find(|s| s.space == key.space && s.name == key.name)
        {
            self.bytes = self.bytes - slot.cost + cost;
            slot.value = value;
            slot.cost = cost;
            slot.used = true;
        } else {
            if slots.len() >= MAX_PER_ACCOUNT {
                return;
            }
            slots.push(Slot {
                space: key.space,
                name: key.name.clone(),
                value,
                used: false,
                cost,
            });
            self.entries += 1;
            self.bytes += cost;
            self.clock.push_back(key);
        }
        self.evict();
    }

    /// Drops values, oldest unused first, until both bounds hold.
    fn evict(&mut self) {
        while self.entries > self.limits.max_entries || self.bytes > self.limits.max_bytes {
            let Some(key) = self.clock.pop_front() else {
                break; // unreachable while entries exist: every entry has a clock slot
            };
            let Some(slot) = self.slot_mut(&key) else {
                continue;
            };
            if slot.used {
                slot.used = false;
                self.clock.push_back(key);
            } else {
                self.remove(&key);
            }
        }
        if self.clock.len() > 2 * self.entries + 64 {
            self.clock = self
                .accounts
                .iter()
                .flat_map(|(account, slots)| {
                    slots
                        .iter()
                        .map(|s| Key::new(account.as_str(), s.space, s.name.as_str()))
                })
                .collect();
        }
    }

    fn remove(&mut self, key: &Key) {
        let Some(slots) = self.accounts.get_mut(&key.account) else {
            return;
        };
        if let Some(i) = slots
            .iter()
            .position(|s| s.space == key.space && s.name == key.name)
        {
            let slot = slots.swap_remove(i);
            if slots.is_empty() {
                // Only accounts with values keep an entry.
                self.accounts.remove(&key.account);
            }
            self.entries -= 1;
            self.bytes -= slot.cost;
        }
    }

    /// Drops every value of `account` (it stays online).
    fn purge(&mut self, account: &str) {
        if let Some(slots) = self.accounts.remove(account) {
            self.forget(&slots);
        }
    }

    fn forget(&mut self, slots: &[Slot]) {
        self.entries -= slots.len();
        self.bytes -= slots.iter().map(|s| s.cost).sum::<usize>();
    }
}

/// Whether `op` reads or writes a cached value, or deletes an account.
fn touches(op: &Op) -> bool {
    match op {
        Op::Get(key) | Op::Put(key, _) | Op::Delete(key) => cached_space(key.space),
        Op::DeleteAccount(_) => true,
        Op::Batch(ops) => ops.iter().any(touches),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(account: &str, name: &str) -> Key {
        Key::new(account, Space::Private, name)
    }

    fn cache(limits: CacheLimits) -> ValueCache {
        ValueCache::new(limits)
    }

    /// The accounts with a session in these tests.
    fn online(account: &str) -> bool {
        account == "a@x" || account == "b@x"
    }

    fn put(cache: &mut ValueCache, k: &Key, v: &[u8], result: EffectResult) {
        let op = Op::Put(k.clone(), v.to_vec());
        let tracked = cache.begin(&op).expect("tracked");
        cache.finish(tracked, &result, &online);
    }

    #[test]
    fn write_through_then_hit() {
        let mut c = cache(CacheLimits::default());
        let k = key("a@x", "ns");
        assert_eq!(c.get(&k), None);
        put(&mut c, &k, b"v1", EffectResult::Done);
        assert_eq!(c.get(&k), Some(Some(b"v1".to_vec())));
        // Another account's key with the same name is not answered.
        assert_eq!(c.get(&key("b@x", "ns")), None);
    }

    #[test]
    fn in_flight_write_hides_the_key_and_failure_drops_it() {
        let mut c = cache(CacheLimits::default());
        let k = key("a@x", "ns");
        put(&mut c, &k, b"v1", EffectResult::Done);
        let op = Op::Put(k.clone(), b"v2".to_vec());
        let tracked = c.begin(&op).expect("tracked");
        assert_eq!(c.get(&k), None, "a write is in flight");
        c.finish(
            tracked,
            &EffectResult::Failed(elsinore_storage::StoreError::Unavailable("x".into())),
            &online,
        );
        assert_eq!(c.get(&k), None, "dropped after a failure");
    }

    #[test]
    fn read_during_a_write_does_not_fill() {
        let mut c = cache(CacheLimits::default());
        let k = key("a@x", "ns");
        let read = c.begin(&Op::Get(k.clone())).expect("tracked");
        let write = c
            .begin(&Op::Put(k.clone(), b"new".to_vec()))
            .expect("tracked");
        c.finish(read, &EffectResult::Value(Some(b"old".to_vec())), &online);
        assert_eq!(c.get(&k), None);
        c.finish(write, &EffectResult::Done, &online);
        assert_eq!(c.get(&k), Some(Some(b"new".to_vec())));
    }

    #[test]
    fn read_answered_after_a_later_write_does_not_fill() {
        let mut c = cache(CacheLimits::default());
        let k = key("a@x", "ns");
        let read = c.begin(&Op::Get(k.clone())).expect("tracked");
        let write = c
            .begin(&Op::Put(k.clone(), b"new".to_vec()))
            .expect("tracked");
        c.finish(write, &EffectResult::Done, &online);
        // Out of order: the read ran before the write but is answered after it.
        c.finish(read, &EffectResult::Value(Some(b"old".to_vec())), &online);
        assert_eq!(c.get(&k), Some(Some(b"new".to_vec())));
    }

    #[test]
    fn read_fills_when_nothing_interferes() {
        let mut c = cache(CacheLimits::default());
        let k = key("a@x", "ns");
        let read = c.begin(&Op::Get(k.clone())).expect("tracked");
        c.finish(read, &EffectResult::Value(None), &online);
        assert_eq!(c.get(&k), Some(None));
    }

    #[test]
    fn account_deletion_purges_and_blocks() {
        let mut c = cache(CacheLimits::default());
        let k = key("a@x", "ns");
        let other = key("b@x", "ns");
        put(&mut c, &k, b"v", EffectResult::Done);
        put(&mut c, &other, b"w", EffectResult::Done);
        let del = Op::Batch(vec![Op::DeleteAccount("a@x".into())]);
        let tracked = c.begin(&del).expect("tracked");
        assert_eq!(c.get(&k), None);
        put(&mut c, &k, b"late", EffectResult::Done);
        assert_eq!(
            c.get(&k),
            None,
            "not filled while the deletion is in flight"
        );
        c.finish(
            tracked,
            &EffectResult::Batch(vec![EffectResult::Done]),
            &online,
        );
        assert_eq!(c.get(&k), None);
        assert_eq!(c.get(&other), Some(Some(b"w".to_vec())));
    }

    #[test]
    fn bounds_hold() {
        let limits = CacheLimits {
            max_entries: 8,
            max_bytes: 2000,
            max_value_bytes: 100,
        };
        let mut c = cache(limits);
        for i in 0..1000 {
            let k = key("a@x", &format!("ns{i}"));
            put(&mut c, &k, &[b'x'; 90], EffectResult::Done);
            if i % 3 == 0 {
                c.get(&k);
            }
            let (n, bytes) = c.size();
            assert!(n <= 8 && bytes <= 2000, "{n} {bytes}");
            assert!(c.clock.len() <= 2 * n + 64 + 1);
        }
        // Too large to cache: not held, and an older value is dropped.
        let k = key("a@x", "big");
        put(&mut c, &k, b"small", EffectResult::Done);
        put(&mut c, &k, &[b'x'; 101], EffectResult::Done);
        assert_eq!(c.get(&k), None);
    }

    #[test]
    fn offline_accounts_are_not_cached() {
        let mut c = cache(CacheLimits::default());
        let k = key("a@x", "ns");
        put(&mut c, &k, b"v", EffectResult::Done);
        c.account_offline("a@x");
        assert_eq!(c.size(), (0, 0));
        // Its session gone, its values are not filled again.
        let tracked = c
            .begin(&Op::Put(k.clone(), b"v".to_vec()))
            .expect("tracked");
        c.finish(tracked, &EffectResult::Done, &|a| a == "b@x");
        assert_eq!(c.get(&k), None);
        let k = key("c@x", "ns");
        put(&mut c, &k, b"v", EffectResult::Done);
        assert_eq!(c.get(&k), None);
    }

    #[test]
    fn other_spaces_are_not_tracked() {
        let mut c = cache(CacheLimits::default());
        let op = Op::Put(Key::new("a@x", Space::Roster, ""), b"r".to_vec());
        assert!(c.begin(&op).is_none());
    }
}
