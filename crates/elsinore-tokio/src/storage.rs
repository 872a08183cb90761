//! The storage worker: a dedicated OS thread that executes the core's storage effects.
//!
//! Stores such as redb block (fsync), so they must not run on the async executor. The worker
//! takes everything queued at once and hands it to the store in one call, so a store that
//! supports group commit makes many clients' writes durable with one fsync.
//!
//! Gathering: a durable commit costs about the same for one effect as for fifty, so after a
//! group of `n` effects the worker waits for up to `n` effects again before the next commit
//! (clients answered by the last group tend to send their next request at once), but never
//! longer than the last group took, nor [`MAX_GATHER`]. After a group of one it does not wait
//! at all, so a lone client sees no added latency. Producers wake the worker once per
//! gathered group, not once per effect.

use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use elsinore_storage::{Effect, EffectResult, Op, Store};

/// How many effects the worker takes from its queue for one group commit at most.
pub(crate) const MAX_GROUP: usize = 512;
/// Longest wait for more effects before a commit.
pub(crate) const MAX_GATHER: Duration = Duration::from_millis(2);
/// Most effects queued for the worker; beyond it the core's effects fail at once
/// (the core bounds its outstanding effects well below this).
const MAX_QUEUED: usize = 65_536;

/// The storage worker's inbox.
#[derive(Default)]
pub(crate) struct EffectQueue {
    state: Mutex<QueueState>,
    wake: Condvar,
}

#[derive(Default)]
struct QueueState {
    effects: Vec<Effect>,
    stopped: bool,
    /// The worker sleeps until this many effects are queued; 0: it is not sleeping.
    wake_at: usize,
}

impl EffectQueue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // The state is a plain list: whatever a panicking holder left is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues every effect of `effects` (emptying it). After [`EffectQueue::stop`], or over
    /// the bound, nothing is queued: the caller must answer what `effects` still holds.
    pub(crate) fn push(&self, effects: &mut Vec<Effect>) {
        if effects.is_empty() {
            return;
        }
        let mut st = self.lock();
        if st.stopped || st.effects.len() + effects.len() > MAX_QUEUED {
            return;
        }
        st.effects.append(effects);
        if st.wake_at != 0 && st.effects.len() >= st.wake_at {
            st.wake_at = 0;
            drop(st);
            self.wake.notify_one();
        }
    }

    /// No more effects are accepted; the worker runs what is queued, then ends.
    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.wake.notify_one();
    }

    /// The next group: blocks until an effect is queued, then until `want` are or `gather`
    /// has passed; at most `max` effects. `None`: stopped and nothing left.
    pub(crate) fn take(&self, want: usize, gather: Duration, max: usize) -> Option<Vec<Effect>> {
        let mut st = self.lock();
        while st.effects.is_empty() {
            if st.stopped {
                return None;
            }
            st.wake_at = 1;
            st = self.wake.wait(st).unwrap_or_else(|p| p.into_inner());
        }
        if st.effects.len() < want && !gather.is_zero() {
            let until = Instant::now() + gather;
            while st.effects.len() < want && !st.stopped {
                let Some(left) = until.checked_duration_since(Instant::now()) else {
                    break;
                };
                st.wake_at = want;
                st = self
                    .wake
                    .wait_timeout(st, left)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        }
        st.wake_at = 0;
        let n = st.effects.len().min(max);
        Some(st.effects.drain(..n).collect())
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use elsinore_storage::{Key, Space};
    use std::sync::Arc;

    fn effect(id: u64) -> Effect {
        Effect {
            id,
            op: Op::Get(Key::new("a@x", Space::Private, "n")),
        }
    }

    #[test]
    fn take_gathers_until_enough_or_timeout() {
        let q = Arc::new(EffectQueue::default());
        q.push(&mut vec![effect(1)]);
        // Not enough and nobody adds: returns after the gather time with what is there.
        let got = q
            .take(3, Duration::from_millis(20), MAX_GROUP)
            .expect("group");
        assert_eq!(got.len(), 1);
        // Enough arrive from another thread: returns once they are there. The gather time is
        // far beyond any test timeout, so returning at all shows it did not wait it out.
        let producer = {
            let q = Arc::clone(&q);
            std::thread::spawn(move || {
                for id in 2..5 {
                    std::thread::sleep(Duration::from_millis(5));
                    q.push(&mut vec![effect(id)]);
                }
            })
        };
        q.push(&mut vec![effect(1)]);
        let got = q
            .take(4, Duration::from_secs(24 * 3600), MAX_GROUP)
            .expect("group");
        assert_eq!(got.len(), 4);
        producer.join().expect("producer");
        let ids: Vec<u64> = got.iter().map(|e| e.id).collect();
        assert_eq!(ids, [1, 2, 3, 4], "in the order pushed");
    }

    #[test]
    fn stop_runs_what_is_queued_and_refuses_more() {
        let q = EffectQueue::default();
        q.push(&mut vec![effect(1), effect(2)]);
        q.stop();
        let mut late = vec![effect(3)];
        q.push(&mut late);
        assert_eq!(late.len(), 1, "refused after stop");
        assert_eq!(q.take(1, Duration::ZERO, 1).map(|g| g.len()), Some(1));
        assert_eq!(
            q.take(5, Duration::from_secs(10), 8).map(|g| g.len()),
            Some(1)
        );
        assert!(q.take(1, Duration::ZERO, 8).is_none());
    }
}
