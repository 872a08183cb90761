//! Executes `elsinore-storage` effects on [redb], an embedded ACID key-value store.
//!
//! All data lives in one table from encoded keys ([`encode_key`]) to value bytes. Every
//! write op is one redb write transaction committed with redb's default
//! `Durability::Immediate`: when [`Store::apply`] returns, the data is on disk (fsync'd).
//! [`RedbStore::apply_many`] commits several effects in one transaction, so one fsync covers
//! many clients' writes (group commit).

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::path::Path;

use elsinore_storage::{
    EffectResult, Op, Store, StoreError, StoreLimits, encode_key, encode_prefix,
};
use redb::{
    Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, TableError,
};

/// Encoded key → value.
const DATA: TableDefinition<&[u8], &[u8]> = TableDefinition::new("elsinore_data");
/// The open data table inside a write transaction.
type DataTable<'txn> = redb::Table<'txn, &'static [u8], &'static [u8]>;
/// Facts about the file itself, so a foreign or future database is refused instead of misread.
const META: TableDefinition<&str, u64> = TableDefinition::new("elsinore_meta");
/// Meta key holding the layout version of `DATA`.
const LAYOUT_KEY: &str = "layout";
/// Layout version written by this code: keys from `encode_key` format 1, raw values.
const LAYOUT: u64 = 1;

/// How to open a [`RedbStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedbOptions {
    /// Verify every page's checksum when opening, so a damaged file is an error rather than a
    /// later panic inside redb. Reads the whole file once. Default `true`.
    pub check_integrity_on_open: bool,
    /// Limits applied to every op before it touches the database.
    pub limits: StoreLimits,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            check_integrity_on_open: true,
            limits: StoreLimits::default(),
        }
    }
}

/// A durable [`Store`] in one redb file.
pub struct RedbStore {
    db: Database,
    limits: StoreLimits,
}

impl core::fmt::Debug for RedbStore {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RedbStore")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Map any redb error onto the store's error kinds.
fn store_err(e: impl Into<redb::Error>) -> StoreError {
    match e.into() {
        redb::Error::Corrupted(why) => StoreError::Corrupt(why),
        redb::Error::ValueTooLarge(_) => StoreError::TooLarge,
        redb::Error::UpgradeRequired(v) => {
            StoreError::Corrupt(format!("redb file format {v} needs an upgrade"))
        }
        redb::Error::TableTypeMismatch { table, .. } => {
            StoreError::Corrupt(format!("table {table} has foreign types"))
        }
        other => StoreError::Unavailable(other.to_string()),
    }
}

impl RedbStore {
    /// Open the database at `path`, creating the file if it does not exist, with default
    /// [`RedbOptions`]. A file that is not a redb database, is damaged, or holds another
    /// layout is an error, never a panic.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, RedbOptions::default())
    }

    /// [`RedbStore::open`] with explicit options.
    pub fn open_with(path: &Path, options: RedbOptions) -> Result<Self, StoreError> {
        let db = Database::builder()
            .set_check_integrity_on_open(options.check_integrity_on_open)
            .create(path)
            .map_err(store_err)?;
        let store = RedbStore {
            db,
            limits: options.limits,
        };
        store.init_layout()?;
        Ok(store)
    }

    /// Create the tables of a new file, or check that an existing file has our layout.
    fn init_layout(&self) -> Result<(), StoreError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        {
            let mut meta = txn.open_table(META).map_err(store_err)?;
            let data = txn.open_table(DATA).map_err(store_err)?;
            let layout = meta.get(LAYOUT_KEY).map_err(store_err)?.map(|g| g.value());
            match layout {
                Some(LAYOUT) => {}
                Some(other) => {
                    return Err(StoreError::Corrupt(format!(
                        "unknown data layout {other} (this build reads {LAYOUT})"
                    )));
                }
                None if data.is_empty().map_err(store_err)? => {
                    meta.insert(LAYOUT_KEY, LAYOUT).map_err(store_err)?;
                }
                None => {
                    return Err(StoreError::Corrupt("data without a layout marker".into()));
                }
            }
        }
        txn.commit().map_err(store_err)
    }

    /// Apply several independent ops in ONE durable write transaction (group commit). Each
    /// op gets its own result, in order, and sees the writes of the ops before it. An op that
    /// breaks the limits fails alone before anything is written; if the transaction itself
    /// fails (IO, corruption), every op fails and none is applied. A group without writes is
    /// read from one snapshot, with no commit.
    pub fn apply_many(&mut self, ops: &[Op]) -> Vec<EffectResult> {
        let checked: Vec<Result<(), StoreError>> =
            ops.iter().map(|op| self.limits.check(op)).collect();
        if !ops.iter().any(Op::is_write) {
            // Reads only (credential and roster loads at login): one read snapshot, no
            // commit and no fsync.
            return ops
                .iter()
                .zip(checked)
                .map(|(op, check)| {
                    check
                        .and_then(|()| self.apply_read(op))
                        .unwrap_or_else(EffectResult::Failed)
                })
                .collect();
        }
        let run = self.in_write_txn(|table| {
            let mut results = Vec::with_capacity(ops.len());
            for (op, check) in ops.iter().zip(&checked) {
                results.push(match check {
                    Ok(()) => apply_write(table, op)?,
                    Err(e) => EffectResult::Failed(e.clone()),
                });
            }
            Ok(results)
        });
        match run {
            Ok(results) => results,
            Err(e) => ops
                .iter()
                .map(|_| EffectResult::Failed(e.clone()))
                .collect(),
        }
    }

    fn apply_read(&self, op: &Op) -> Result<EffectResult, StoreError> {
        let txn = self.db.begin_read().map_err(store_err)?;
        let table = match txn.open_table(DATA) {
            Ok(table) => Some(table),
            // Created by `open`; treat a missing table as empty all the same.
            Err(TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(store_err(e)),
        };
        read_op(table.as_ref(), op)
    }

    /// Run `f` in one write transaction and commit it durably if `f` succeeds. If `f` fails,
    /// the transaction is dropped uncommitted, which aborts it: nothing `f` wrote remains.
    fn in_write_txn<T>(
        &self,
        f: impl FnOnce(&mut DataTable<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let txn = self.db.begin_write().map_err(store_err)?;
        let value = {
            let mut table = txn.open_table(DATA).map_err(store_err)?;
            f(&mut table)?
        };
        txn.commit().map_err(store_err)?;
        Ok(value)
    }
}

/// Evaluate a write-free op on a read snapshot.
fn read_op(
    table: Option<&redb::ReadOnlyTable<&[u8], &[u8]>>,
    op: &Op,
) -> Result<EffectResult, StoreError> {
    match op {
        Op::Get(key) => {
            let value = match table {
                Some(t) => t.get(encode_key(key).as_slice()).map_err(store_err)?,
                None => None,
            };
            Ok(EffectResult::Value(value.map(|g| g.value().to_vec())))
        }
        Op::Batch(ops) => ops
            .iter()
            .map(|op| read_op(table, op))
            .collect::<Result<_, _>>()
            .map(EffectResult::Batch),
        // Callers route writes to `apply_write`.
        Op::Put(..) | Op::Delete(_) | Op::DeleteAccount(_) => Err(StoreError::Unavailable(
            "write op on a read transaction".into(),
        )),
    }
}

/// Apply `op` inside an open write transaction. An error means the transaction must not be
/// committed.
fn apply_write(table: &mut DataTable<'_>, op: &Op) -> Result<EffectResult, StoreError> {
    match op {
        Op::Get(key) => {
            let value = table.get(encode_key(key).as_slice()).map_err(store_err)?;
            Ok(EffectResult::Value(value.map(|g| g.value().to_vec())))
        }
        Op::Put(key, value) => {
            table
                .insert(encode_key(key).as_slice(), value.as_slice())
                .map_err(store_err)?;
            Ok(EffectResult::Done)
        }
        Op::Delete(key) => {
            table
                .remove(encode_key(key).as_slice())
                .map_err(store_err)?;
            Ok(EffectResult::Done)
        }
        Op::DeleteAccount(account) => {
            // Keys sort by account first, so the account is one contiguous range.
            let prefix = encode_prefix(account, None);
            let mut doomed = Vec::new();
            for entry in table.range(prefix.as_slice()..).map_err(store_err)? {
                let (k, _) = entry.map_err(store_err)?;
                if !k.value().starts_with(&prefix) {
                    break;
                }
                doomed.push(k.value().to_vec());
            }
            for k in doomed {
                table.remove(k.as_slice()).map_err(store_err)?;
            }
            Ok(EffectResult::Done)
        }
        Op::Batch(ops) => ops
            .iter()
            .map(|op| apply_write(table, op))
            .collect::<Result<_, _>>()
            .map(EffectResult::Batch),
    }
}

impl Store for RedbStore {
    fn apply(&mut self, op: &Op) -> EffectResult {
        if let Err(e) = self.limits.check(op) {
            return EffectResult::Failed(e);
        }
        let result = if op.is_write() {
            self.in_write_txn(|table| apply_write(table, op))
        } else {
            self.apply_read(op)
        };
        result.unwrap_or_else(EffectResult::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elsinore_storage::{Key, Space};

    #[test]
    fn a_group_of_reads_sees_committed_data() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = RedbStore::open(&dir.path().join("db")).expect("open");
        let key = Key::new("a@b", Space::Private, "n");
        store.apply_many(&[Op::Put(key.clone(), b"v".to_vec())]);
        let results = store.apply_many(&[
            Op::Get(key.clone()),
            Op::Get(Key::new("a@b", Space::Private, "other")),
            Op::Get(Key::new("a@b", Space::Private, "x".repeat(10_000))),
        ]);
        assert_eq!(
            results,
            [
                EffectResult::Value(Some(b"v".to_vec())),
                EffectResult::Value(None),
                EffectResult::Failed(StoreError::TooLarge),
            ]
        );
    }

    #[test]
    fn failure_after_partial_writes_leaves_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut store = RedbStore::open(&dir.path().join("db")).expect("open");
        let key = Key::new("a@b", Space::Private, "n");
        let failed = store.in_write_txn(|table| {
            apply_write(table, &Op::Put(key.clone(), b"half".to_vec()))?;
            // Seen inside the transaction...
            assert_eq!(
                apply_write(table, &Op::Get(key.clone()))?,
                EffectResult::Value(Some(b"half".to_vec()))
            );
            Err::<(), _>(StoreError::Unavailable("fails after a write".into()))
        });
        assert!(failed.is_err());
        // ...and gone after the failure.
        assert_eq!(store.apply(&Op::Get(key)), EffectResult::Value(None));
    }
}
