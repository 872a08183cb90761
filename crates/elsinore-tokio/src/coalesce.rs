//! Wake-up coalescing: under sustained load, a runtime thread waits a little before it polls
//! the sockets again, so that each read and each write carries more stanzas.
//!
//! On loopback and fast links most of a routed message's CPU is the kernel's per-segment
//! and per-syscall work, not the core's. A server that answers every segment as soon as it
//! arrives reads a few stanzas per `recv`, writes a few per `send`, and makes the kernel send
//! a pure ACK for most reads. Waiting briefly before going back to `epoll` lets the peers'
//! segments pile up, as a network card's interrupt moderation does (see
//! `docs/benchmarks.md`, "Wake-up coalescing").
//!
//! The wait is only taken when it can pay for itself, so a lightly loaded server answers as
//! fast as before:
//! - the thread was idle only briefly last time ([`SUSTAINED`]): it is under steady load;
//! - and since it last woke, some connection's mailbox held more than one message when the
//!   task drained it: stanzas arrive faster than one at a time per connection, so waiting
//!   gathers more of them per syscall. With one message in flight per connection there is
//!   nothing to gather and no wait.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// An idle period shorter than this marks the load as sustained.
pub const SUSTAINED: Duration = Duration::from_millis(1);

/// The default wait (the kernel's timer slack, 50 µs for normal threads, may add to it).
pub const DEFAULT_DELAY: Duration = Duration::from_micros(50);

/// The longest wait accepted: beyond it the added latency outweighs what more batching saves.
pub const MAX_DELAY: Duration = Duration::from_millis(1);

thread_local! {
    static STATE: State = const {
        State { batched: Cell::new(false), parked_at: Cell::new(None), last_idle: Cell::new(None) }
    };
}

/// Per runtime thread: hooks and connection tasks of that thread see the same state.
struct State {
    /// A mailbox drained on this thread held more than one message since the last park.
    batched: Cell<bool>,
    /// When the thread last parked (after any wait).
    parked_at: Cell<Option<Instant>>,
    /// How long the last park lasted; `None` before the first.
    last_idle: Cell<Option<Duration>>,
}

/// A connection task drained more than one message from its mailbox at once.
pub(crate) fn note_batch() {
    STATE.with(|s| s.batched.set(true));
}

/// Installs wake-up coalescing with `delay` on a runtime builder (`delay` zero: nothing is
/// installed). Works with both schedulers; each worker thread decides for itself.
///
/// # Panics
/// If `delay` is over [`MAX_DELAY`] (a configuration error, checked when it is read).
pub fn coalesce_wakeups(builder: &mut tokio::runtime::Builder, delay: Duration) {
    assert!(delay <= MAX_DELAY, "wake-up delay over {MAX_DELAY:?}");
    if delay.is_zero() {
        return;
    }
    builder
        .on_thread_park(move || before_park(delay))
        .on_thread_unpark(after_unpark);
}

/// Takes this thread's batch mark (for tests of the code that sets it).
#[cfg(test)]
pub(crate) fn take_batch_mark() -> bool {
    STATE.with(|s| s.batched.replace(false))
}

fn before_park(delay: Duration) {
    if STATE.with(|s| s.should_wait()) {
        std::thread::sleep(delay);
    }
    STATE.with(|s| s.parked(Instant::now()));
}

fn after_unpark() {
    STATE.with(|s| s.unparked(Instant::now()));
}

impl State {
    /// About to park: whether to wait first (and the batch mark is used up).
    fn should_wait(&self) -> bool {
        let batched = self.batched.replace(false);
        batched && self.last_idle.get().is_some_and(|idle| idle < SUSTAINED)
    }

    /// Parked (after any wait) at `now`.
    fn parked(&self, now: Instant) {
        self.parked_at.set(Some(now));
    }

    /// Woken at `now`.
    fn unparked(&self, now: Instant) {
        if let Some(at) = self.parked_at.take() {
            self.last_idle.set(Some(now.saturating_duration_since(at)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_only_under_sustained_batched_load() {
        let s = State {
            batched: Cell::new(false),
            parked_at: Cell::new(None),
            last_idle: Cell::new(None),
        };
        let t0 = Instant::now();
        let at = |us: u64| t0 + Duration::from_micros(us);
        // First park: nothing known about the load yet.
        s.batched.set(true);
        assert!(!s.should_wait());
        s.parked(at(0));
        // Idle 100 µs, but no mailbox held more than one message: no wait.
        s.unparked(at(100));
        assert!(!s.should_wait());
        s.parked(at(150));
        // Idle 100 µs and a batch: wait.
        s.unparked(at(250));
        s.batched.set(true);
        assert!(s.should_wait());
        // That park used the batch up.
        s.parked(at(350));
        s.unparked(at(400));
        assert!(!s.should_wait());
        s.parked(at(450));
        // Idle 5 ms: the load is not sustained, so a batch does not wait.
        s.unparked(at(5_450));
        s.batched.set(true);
        assert!(!s.should_wait());
        s.parked(at(5_500));
        // Back to a short idle: it waits again.
        s.unparked(at(5_600));
        s.batched.set(true);
        assert!(s.should_wait());
    }

    #[test]
    fn a_delay_over_the_maximum_is_refused() {
        let mut b = tokio::runtime::Builder::new_current_thread();
        coalesce_wakeups(&mut b, MAX_DELAY);
        let refused = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            coalesce_wakeups(&mut b, MAX_DELAY + Duration::from_micros(1))
        }));
        assert!(refused.is_err());
    }

    #[test]
    fn a_runtime_with_coalescing_runs_tasks_and_timers() {
        let mut b = tokio::runtime::Builder::new_current_thread();
        b.enable_all();
        coalesce_wakeups(&mut b, DEFAULT_DELAY);
        let rt = b.build().expect("runtime");
        let got = rt.block_on(async {
            let (tx, rx) = tokio::sync::oneshot::channel();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                note_batch();
                tx.send(7).expect("receiver waits");
            });
            rx.await.expect("sender sends")
        });
        assert_eq!(got, 7);
    }
}
