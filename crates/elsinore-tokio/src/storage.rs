//! The storage worker: a dedicated OS thread that executes the core's storage effects.
//!
//! Stores such as redb block (fsync), so they must not run on the async executor. The worker
//! takes everything queued at once and hands it to the store in one call, so a store that
//! supports group commit makes many clients' writes durable with one fsync.

use elsinore_storage::{EffectResult, Op, Store};

/// How many effects the worker takes from its queue for one group commit at most.
pub(crate) const MAX_GROUP: usize = 512;

type ApplyMany = dyn FnMut(&[Op]) -> Vec<EffectResult> + Send;

/// Something that executes storage operations: the back end of the storage worker.
pub struct Storage {
    apply_many: Box<ApplyMany>,
}

impl Storage {
    /// Executes each operation on its own with [`Store::apply`] (fine for `MemoryStore`).
    pub fn per_op<S: Store + Send + 'static>(mut store: S) -> Self {
        Storage {
            apply_many: Box::new(move |ops: &[Op]| ops.iter().map(|op| store.apply(op)).collect()),
        }
    }

    /// Executes a group of operations with one call, e.g. `RedbStore::apply_many` (one durable
    /// commit for the group). The closure must return exactly one result per operation, in
    /// order; missing results are reported to the core as failures.
    pub fn batched(f: impl FnMut(&[Op]) -> Vec<EffectResult> + Send + 'static) -> Self {
        Storage {
            apply_many: Box::new(f),
        }
    }

    /// Runs a group of operations.
    pub(crate) fn apply_many(&mut self, ops: &[Op]) -> Vec<EffectResult> {
        (self.apply_many)(ops)
    }
}
