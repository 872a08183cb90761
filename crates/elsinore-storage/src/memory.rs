//! An in-memory [`Store`] and a fault-injecting wrapper for tests.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::{EffectResult, Key, Op, Store, StoreError, StoreLimits};

/// A [`Store`] over a `BTreeMap`: atomic per op, not durable. For tests, examples and
/// servers that need no persistence.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    map: BTreeMap<Key, Vec<u8>>,
    limits: StoreLimits,
    /// Sum of key and value lengths currently held, checked against `max_total_bytes`.
    bytes: usize,
    max_entries: usize,
    max_total_bytes: usize,
}

/// Undo log of one op: the previous value of every key written, oldest first.
type Undo = Vec<(Key, Option<Vec<u8>>)>;

impl MemoryStore {
    /// Default cap on entries.
    pub const DEFAULT_MAX_ENTRIES: usize = 1_000_000;
    /// Default cap on the bytes held (keys plus values).
    pub const DEFAULT_MAX_TOTAL_BYTES: usize = 1 << 30;

    /// An empty store with default limits (same as `Default`).
    pub fn new() -> Self {
        Self::with_limits(
            StoreLimits::default(),
            Self::DEFAULT_MAX_ENTRIES,
            Self::DEFAULT_MAX_TOTAL_BYTES,
        )
    }

    /// An empty store with the given per-op limits and caps on entries and total bytes;
    /// a write that would exceed a cap fails with [`StoreError::Full`].
    pub fn with_limits(limits: StoreLimits, max_entries: usize, max_total_bytes: usize) -> Self {
        MemoryStore {
            map: BTreeMap::new(),
            limits,
            bytes: 0,
            max_entries,
            max_total_bytes,
        }
    }

    /// The value stored under `key`.
    pub fn get(&self, key: &Key) -> Option<&[u8]> {
        self.map.get(key).map(Vec::as_slice)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the store holds nothing.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// All entries in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&Key, &[u8])> {
        self.map.iter().map(|(k, v)| (k, v.as_slice()))
    }

    fn entry_size(key: &Key, value: &[u8]) -> usize {
        key.account.len() + key.name.len() + value.len()
    }

    /// Replace (or remove, for `None`) the value at `key`, keeping `bytes` exact, and
    /// return the previous value.
    fn set(&mut self, key: Key, value: Option<Vec<u8>>) -> Option<Vec<u8>> {
        let old = match value {
            Some(v) => {
                self.bytes += Self::entry_size(&key, &v);
                let k = key.clone();
                self.map.insert(k, v)
            }
            None => self.map.remove(&key),
        };
        if let Some(o) = &old {
            self.bytes -= Self::entry_size(&key, o);
        }
        old
    }

    fn apply_inner(&mut self, op: &Op, undo: &mut Undo) -> Result<EffectResult, StoreError> {
        match op {
            Op::Get(key) => Ok(EffectResult::Value(self.map.get(key).cloned())),
            Op::Put(key, value) => {
                let old_size = self.map.get(key).map(|o| Self::entry_size(key, o));
                if old_size.is_none() && self.map.len() >= self.max_entries {
                    return Err(StoreError::Full);
                }
                let after = self.bytes - old_size.unwrap_or(0) + Self::entry_size(key, value);
                if after > self.max_total_bytes {
                    return Err(StoreError::Full);
                }
                let old = self.set(key.clone(), Some(value.clone()));
                undo.push((key.clone(), old));
                Ok(EffectResult::Done)
            }
            Op::Delete(key) => {
                let old = self.set(key.clone(), None);
                undo.push((key.clone(), old));
                Ok(EffectResult::Done)
            }
            Op::DeleteAccount(account) => {
                let keys: Vec<Key> = self
                    .map
                    .keys()
                    .filter(|k| k.account == *account)
                    .cloned()
                    .collect();
                for key in keys {
                    let old = self.set(key.clone(), None);
                    undo.push((key, old));
                }
                Ok(EffectResult::Done)
            }
            Op::Batch(ops) => {
                let mut results = Vec::with_capacity(ops.len());
                for op in ops {
                    results.push(self.apply_inner(op, undo)?);
                }
                Ok(EffectResult::Batch(results))
            }
        }
    }
}

impl Store for MemoryStore {
    fn apply(&mut self, op: &Op) -> EffectResult {
        if let Err(e) = self.limits.check(op) {
            return EffectResult::Failed(e);
        }
        let mut undo = Undo::new();
        match self.apply_inner(op, &mut undo) {
            Ok(result) => result,
            Err(e) => {
                // Roll back newest first so a key written twice ends at its original value.
                while let Some((key, old)) = undo.pop() {
                    self.set(key, old);
                }
                EffectResult::Failed(e)
            }
        }
    }
}

/// Wraps a [`Store`] and makes chosen ops fail with [`StoreError::Unavailable`] without
/// reaching the inner store, to test that failures never leave half writes.
#[derive(Debug, Clone)]
pub struct FailingStore<S> {
    inner: S,
    every: u64,
    calls: u64,
    fail_all: bool,
}

impl<S: Store> FailingStore<S> {
    /// Fail every `n`-th call to [`Store::apply`] (the `n`-th, `2n`-th, ...); `n == 0` never
    /// fails by count.
    pub fn every(inner: S, n: u64) -> Self {
        FailingStore {
            inner,
            every: n,
            calls: 0,
            fail_all: false,
        }
    }

    /// Make every following call fail (`true`) or go back to counting (`false`).
    pub fn set_fail_all(&mut self, fail: bool) {
        self.fail_all = fail;
    }

    /// Number of `apply` calls so far, failed ones included.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped store, mutable (bypasses fault injection).
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Store> Store for FailingStore<S> {
    fn apply(&mut self, op: &Op) -> EffectResult {
        self.calls += 1;
        if self.fail_all || (self.every != 0 && self.calls.is_multiple_of(self.every)) {
            return EffectResult::Failed(StoreError::Unavailable("injected fault".into()));
        }
        self.inner.apply(op)
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Space;

    fn k(name: &str) -> Key {
        Key::new("romeo@montague.lit", Space::Private, name)
    }

    #[test]
    fn delete_account_is_per_account_and_undone_with_its_batch() {
        let mut s = MemoryStore::with_limits(StoreLimits::default(), 100, 1000);
        let a = |acct: &str, space| Key::new(acct, space, "n");
        for acct in ["h@x.lit", "h@x.li"] {
            for space in Space::ALL {
                assert_eq!(
                    s.apply(&Op::Put(a(acct, *space), b"v".to_vec())),
                    EffectResult::Done
                );
            }
        }
        let before: Vec<_> = s.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect();
        // A batch failing after the delete puts every deleted value back.
        let failing = Op::Batch(vec![
            Op::DeleteAccount("h@x.lit".into()),
            Op::Put(a("h@x.lit", Space::Private), vec![0; 2000]),
        ]);
        assert_eq!(s.apply(&failing), EffectResult::Failed(StoreError::Full));
        let after: Vec<_> = s.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect();
        assert_eq!(before, after);
        assert_eq!(
            s.apply(&Op::DeleteAccount("h@x.lit".into())),
            EffectResult::Done
        );
        assert_eq!(s.len(), Space::ALL.len());
        assert!(s.iter().all(|(k, _)| k.account == "h@x.li"));
        assert_eq!(s.bytes, Space::ALL.len() * ("h@x.li".len() + 2));
    }

    #[test]
    fn put_get_delete() {
        let mut s = MemoryStore::new();
        assert_eq!(s.apply(&Op::Get(k("a"))), EffectResult::Value(None));
        assert_eq!(s.apply(&Op::Put(k("a"), b"1".to_vec())), EffectResult::Done);
        assert_eq!(
            s.apply(&Op::Get(k("a"))),
            EffectResult::Value(Some(b"1".to_vec()))
        );
        assert_eq!(s.apply(&Op::Delete(k("a"))), EffectResult::Done);
        assert_eq!(s.apply(&Op::Delete(k("a"))), EffectResult::Done);
        assert_eq!(s.apply(&Op::Get(k("a"))), EffectResult::Value(None));
        assert!(s.is_empty());
        assert_eq!(s.bytes, 0);
    }

    #[test]
    fn batch_reads_its_own_writes_and_reports_per_slot() {
        let mut s = MemoryStore::new();
        let op = Op::Batch(vec![
            Op::Put(k("a"), b"1".to_vec()),
            Op::Get(k("a")),
            Op::Delete(k("a")),
            Op::Get(k("a")),
            Op::Batch(vec![Op::Put(k("b"), b"2".to_vec())]),
        ]);
        assert_eq!(
            s.apply(&op),
            EffectResult::Batch(vec![
                EffectResult::Done,
                EffectResult::Value(Some(b"1".to_vec())),
                EffectResult::Done,
                EffectResult::Value(None),
                EffectResult::Batch(vec![EffectResult::Done]),
            ])
        );
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn failed_batch_rolls_back_everything() {
        let mut s = MemoryStore::with_limits(StoreLimits::default(), 2, usize::MAX);
        s.apply(&Op::Put(k("a"), b"old".to_vec()));
        let before: Vec<_> = s.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect();
        let bytes_before = s.bytes;
        // Overwrites a, deletes then re-adds a, adds b, then c overflows max_entries.
        let op = Op::Batch(vec![
            Op::Put(k("a"), b"new".to_vec()),
            Op::Delete(k("a")),
            Op::Put(k("a"), b"newer".to_vec()),
            Op::Put(k("b"), b"2".to_vec()),
            Op::Put(k("c"), b"3".to_vec()),
        ]);
        assert_eq!(s.apply(&op), EffectResult::Failed(StoreError::Full));
        let after: Vec<_> = s.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect();
        assert_eq!(before, after);
        assert_eq!(s.bytes, bytes_before);
    }

    #[test]
    fn limits_reject_before_writing() {
        let limits = StoreLimits {
            max_value_bytes: 4,
            max_batch_ops: 2,
            max_batch_depth: 1,
            ..StoreLimits::default()
        };
        let mut s = MemoryStore::with_limits(limits, 100, usize::MAX);
        let big = Op::Batch(vec![
            Op::Put(k("a"), b"ok".to_vec()),
            Op::Put(k("b"), b"too big".to_vec()),
        ]);
        assert_eq!(s.apply(&big), EffectResult::Failed(StoreError::TooLarge));
        let many = Op::Batch(vec![Op::Get(k("a")), Op::Get(k("a")), Op::Get(k("a"))]);
        assert_eq!(s.apply(&many), EffectResult::Failed(StoreError::TooLarge));
        let deep = Op::Batch(vec![Op::Batch(vec![])]);
        assert_eq!(s.apply(&deep), EffectResult::Failed(StoreError::TooLarge));
        let huge_key = Op::Get(Key::new("x".repeat(5000), Space::Private, "n"));
        assert_eq!(
            s.apply(&huge_key),
            EffectResult::Failed(StoreError::TooLarge)
        );
        assert!(s.is_empty());
    }

    #[test]
    fn total_bytes_cap() {
        let mut s = MemoryStore::with_limits(StoreLimits::default(), 100, 40);
        let key_len = k("a").account.len() + 1;
        let fits = vec![0u8; 40 - key_len];
        assert_eq!(s.apply(&Op::Put(k("a"), fits.clone())), EffectResult::Done);
        // Replacing with the same size still fits; one more byte does not.
        assert_eq!(s.apply(&Op::Put(k("a"), fits)), EffectResult::Done);
        assert_eq!(
            s.apply(&Op::Put(k("a"), vec![0u8; 41 - key_len])),
            EffectResult::Failed(StoreError::Full)
        );
    }

    #[test]
    fn failing_store_fails_every_nth_without_touching_inner() {
        let mut s = FailingStore::every(MemoryStore::new(), 2);
        assert_eq!(s.apply(&Op::Put(k("a"), b"1".to_vec())), EffectResult::Done);
        assert!(s.apply(&Op::Put(k("b"), b"2".to_vec())).is_failed());
        assert_eq!(s.apply(&Op::Put(k("c"), b"3".to_vec())), EffectResult::Done);
        assert_eq!(s.inner().len(), 2);
        assert!(s.inner().get(&k("b")).is_none());
        s.set_fail_all(true);
        assert!(s.apply(&Op::Get(k("a"))).is_failed());
        assert_eq!(s.calls(), 4);
    }
}
