//! A durable store for the property tests: a `RedbStore` in a temporary directory that a
//! test can close and open again, so a "restart" step checks what survives on disk.

#![allow(dead_code)]

use elsinore_redb::RedbStore;
use elsinore_storage::{EffectResult, Key, Op, Store};

/// A `RedbStore` over a file in its own temporary directory (removed when dropped).
pub struct DiskStore {
    dir: tempfile::TempDir,
    store: Option<RedbStore>,
}

impl DiskStore {
    /// A new, empty database.
    pub fn new() -> DiskStore {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = RedbStore::open(&dir.path().join("data.redb")).expect("open a new store");
        DiskStore {
            dir,
            store: Some(store),
        }
    }

    /// Closes the database and opens the file again: only what was committed survives.
    pub fn reopen(&mut self) {
        // Dropped first: redb refuses a second open of a file that is still open.
        drop(self.store.take());
        let store = RedbStore::open(&self.dir.path().join("data.redb")).expect("reopen");
        self.store = Some(store);
    }

    /// The stored value of `key`, read through the store like any effect.
    pub fn get(&mut self, key: &Key) -> Option<Vec<u8>> {
        match self.apply(&Op::Get(key.clone())) {
            EffectResult::Value(v) => v,
            other => panic!("get {key:?}: {other:?}"),
        }
    }
}

impl Store for DiskStore {
    fn apply(&mut self, op: &Op) -> EffectResult {
        self.store.as_mut().expect("the store is open").apply(op)
    }
}
