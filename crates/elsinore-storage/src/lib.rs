//! Storage effects as values, and the storage semantics built on them.
//!
//! The core never touches a database. It describes what it needs as an [`Op`] inside an
//! [`Effect`]; an adapter executes the op on some [`Store`] (the in-memory [`MemoryStore`]
//! here, the durable `RedbStore` in `elsinore-redb`) and feeds the [`EffectResult`] back.
//!
//! Every [`Store`] applies one [`Op`] atomically: a [`Op::Batch`] is one transaction, so a
//! failure never leaves half of it written.
//!
//! Protocol semantics that are pure functions over these values live in submodules:
//! [`private`] (XEP-0049 Private XML Storage), [`pep`] (XEP-0163 / XEP-0223 PEP nodes),
//! [`annotations`] (XEP-0145 notes, the client-side model of a private-storage bundle),
//! [`bookmarks`] (XEP-0048 / XEP-0402 bookmarks kept consistent across private XML and PEP).

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

use alloc::{boxed::Box, string::String, vec::Vec};

pub mod annotations;
pub mod bookmarks;
mod key;
mod memory;
pub mod pep;
pub mod private;

pub use key::{Space, decode_key, encode_key, encode_prefix};
pub use memory::{FailingStore, MemoryStore};

use core::fmt;

/// Identifies one effect so its completion can be routed back to whoever asked for it.
pub type EffectId = u64;

/// One unit of storage work the core asks an adapter to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Chosen by the emitter; echoed back with the result.
    pub id: EffectId,
    /// What to do.
    pub op: Op,
}

/// Where a value lives: the account it belongs to, the kind of data, and a name inside that.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// Canonical bare JID of the owning account (`Display` of `BareJid`).
    pub account: String,
    /// Which kind of data.
    pub space: Space,
    /// Name inside the space (e.g. the XML namespace for private storage).
    pub name: String,
}

impl Key {
    /// Build a key.
    pub fn new(account: impl Into<String>, space: Space, name: impl Into<String>) -> Self {
        Key {
            account: account.into(),
            space,
            name: name.into(),
        }
    }
}

/// A storage operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Read one value; result is [`EffectResult::Value`].
    Get(Key),
    /// Create or replace one value; result is [`EffectResult::Done`].
    Put(Key, Vec<u8>),
    /// Remove one value (absent is fine); result is [`EffectResult::Done`].
    Delete(Key),
    /// Several ops applied in order as one atomic transaction: all or nothing. Later ops see
    /// the writes of earlier ones. The result is [`EffectResult::Batch`] with one slot per op
    /// (a `Get` inside a batch returns its value in its slot), or a single
    /// [`EffectResult::Failed`] for the whole batch.
    Batch(Vec<Op>),
    /// Remove every value of one account, in every space (account deletion); absent is
    /// fine. The string is the account as in [`Key::account`]; result is
    /// [`EffectResult::Done`].
    DeleteAccount(String),
}

impl Op {
    /// Whether this op (or any op nested in it) puts or deletes `key`.
    pub fn writes_key(&self, key: &Key) -> bool {
        match self {
            Op::Put(k, _) | Op::Delete(k) => k == key,
            Op::Batch(ops) => ops.iter().any(|op| op.writes_key(key)),
            Op::Get(_) | Op::DeleteAccount(_) => false,
        }
    }

    /// Whether this op (or any op nested in it) writes.
    pub fn is_write(&self) -> bool {
        match self {
            Op::Get(_) => false,
            Op::Put(..) | Op::Delete(_) | Op::DeleteAccount(_) => true,
            Op::Batch(ops) => ops.iter().any(Op::is_write),
        }
    }
}

/// The outcome of one [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EffectResult {
    /// Result of [`Op::Get`]: the stored bytes, or `None` if absent.
    Value(Option<Vec<u8>>),
    /// Result of [`Op::Put`] / [`Op::Delete`].
    Done,
    /// Result of [`Op::Batch`]: one result per op, in order.
    Batch(Vec<EffectResult>),
    /// The op failed and had no effect at all.
    Failed(StoreError),
}

impl EffectResult {
    /// Whether this is [`EffectResult::Failed`].
    pub fn is_failed(&self) -> bool {
        matches!(self, EffectResult::Failed(_))
    }
}

/// Why a store could not apply an op. The op had no effect.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or written right now (IO error, injected fault, ...).
    Unavailable(String),
    /// Stored data is damaged or not in the expected format.
    Corrupt(String),
    /// A key or value is over the store's size limit.
    TooLarge,
    /// The store holds as many entries as its limit allows.
    Full,
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Unavailable(why) => write!(f, "store unavailable: {why}"),
            StoreError::Corrupt(why) => write!(f, "store corrupt: {why}"),
            StoreError::TooLarge => f.write_str("key or value too large for the store"),
            StoreError::Full => f.write_str("store full"),
        }
    }
}

impl core::error::Error for StoreError {}

/// Something that executes storage ops.
pub trait Store {
    /// Apply one op atomically and return its result. A [`Op::Batch`] is one transaction:
    /// if any part fails, nothing of it is applied and the result is
    /// [`EffectResult::Failed`]. A store that is durable has made the op durable when this
    /// returns.
    fn apply(&mut self, op: &Op) -> EffectResult;
}

impl<S: Store + ?Sized> Store for &mut S {
    fn apply(&mut self, op: &Op) -> EffectResult {
        (**self).apply(op)
    }
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn apply(&mut self, op: &Op) -> EffectResult {
        (**self).apply(op)
    }
}

/// Size and count limits every store enforces on the ops it is given, so that a bug or an
/// oversized request fails cleanly ([`StoreError::TooLarge`]) instead of exhausting memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Longest encoded key ([`encode_key`]), in bytes.
    pub max_key_bytes: usize,
    /// Largest value, in bytes.
    pub max_value_bytes: usize,
    /// Most ops in one batch, counted over all nesting levels.
    pub max_batch_ops: usize,
    /// Deepest nesting of batches inside batches.
    pub max_batch_depth: usize,
}

impl Default for StoreLimits {
    /// 4 KiB keys (three JID-sized parts fit), 16 MiB values, 4096 ops per batch, depth 4.
    fn default() -> Self {
        StoreLimits {
            max_key_bytes: 4096,
            max_value_bytes: 16 * 1024 * 1024,
            max_batch_ops: 4096,
            max_batch_depth: 4,
        }
    }
}

impl StoreLimits {
    /// Check `op` against these limits before applying any of it.
    pub fn check(&self, op: &Op) -> Result<(), StoreError> {
        let mut count = 0;
        self.check_at(op, 0, &mut count)
    }

    fn check_at(&self, op: &Op, depth: usize, count: &mut usize) -> Result<(), StoreError> {
        *count += 1;
        if *count > self.max_batch_ops.saturating_add(1) {
            return Err(StoreError::TooLarge);
        }
        match op {
            Op::Get(key) | Op::Delete(key) => self.check_key(key),
            Op::DeleteAccount(account) => {
                self.check_key(&Key::new(account.as_str(), Space::Account, ""))
            }
            Op::Put(key, value) => {
                self.check_key(key)?;
                if value.len() > self.max_value_bytes {
                    return Err(StoreError::TooLarge);
                }
                Ok(())
            }
            Op::Batch(ops) => {
                if depth >= self.max_batch_depth {
                    return Err(StoreError::TooLarge);
                }
                ops.iter()
                    .try_for_each(|op| self.check_at(op, depth + 1, count))
            }
        }
    }

    fn check_key(&self, key: &Key) -> Result<(), StoreError> {
        // Upper bound of the encoded length without allocating: every byte may double, plus
        // the format byte and three terminators.
        let raw = key.account.len() + key.space.as_str().len() + key.name.len();
        if raw.saturating_mul(2) + 7 <= self.max_key_bytes
            || encode_key(key).len() <= self.max_key_bytes
        {
            Ok(())
        } else {
            Err(StoreError::TooLarge)
        }
    }
}
