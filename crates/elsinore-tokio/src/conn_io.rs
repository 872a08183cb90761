//! What a connection task holds while it waits, kept small: an idle connection owns no read
//! buffer (reads go through one buffer per runtime thread, lent only for the duration of a
//! poll) and its mailbox from the core holds no allocation while empty.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker, ready};

use tokio::io::{AsyncRead, ReadBuf};

/// Bytes read from a socket at once.
const READ_BUF: usize = 16 * 1024;

thread_local! {
    /// The read buffer of every connection polled on this thread. Only borrowed inside one
    /// `poll_read` and the synchronous hand-off of its bytes, never across an `.await`.
    static READ_SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_BUF].into_boxed_slice());
}

/// Waits for bytes on `stream`, reads them into this thread's buffer and gives them to
/// `consume` (synchronously, before the buffer is lent to anyone else). `Ok(0)`: end of file.
///
/// Works for any `AsyncRead`, TLS included: a TLS stream keeps its own record buffers, and
/// what it decrypts is copied out during the poll as for a plain socket.
///
/// The future is the poll function itself (no `async fn` around it, which would keep the
/// arguments twice): it is part of every waiting connection task's state.
pub(crate) fn read_with<'a, S: AsyncRead + Unpin + ?Sized>(
    stream: &'a mut S,
    mut consume: impl FnMut(&[u8]) + 'a,
) -> impl Future<Output = io::Result<usize>> + 'a {
    std::future::poll_fn(move |cx| {
        READ_SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let mut buf = ReadBuf::new(&mut scratch[..]);
            ready!(Pin::new(&mut *stream).poll_read(cx, &mut buf))?;
            let filled = buf.filled();
            if !filled.is_empty() {
                consume(filled);
            }
            Poll::Ready(Ok(filled.len()))
        })
    })
}

/// What the core asks a connection task to do, in the order it asked.
pub(crate) enum ConnMsg {
    /// Write these bytes.
    Bytes(Vec<u8>),
    /// Everything before this was the plaintext; run the TLS server handshake now.
    UpgradeTls,
    /// Flush, shut the socket down, stop.
    Close,
    /// Drop the socket without flushing (the peer does not read; the core already knows).
    Abort,
}

/// The queue between the core (one sender, under the core's lock) and one connection task.
/// Unbounded like an unbounded channel (the core bounds bytes per connection through
/// `queued`), but without a channel's preallocated block: empty, it owns no heap memory.
struct Mailbox {
    state: Mutex<MailState>,
    /// Bytes sent to the task and not yet written by it.
    queued: AtomicUsize,
}

struct MailState {
    queue: Queue,
    /// One side is gone: the task gets what is queued, then `None`; sends fail.
    closed: bool,
    /// The task waiting for a message. Kept here, in the shared allocation, rather than
    /// in a wait future inside every idle task.
    waker: Option<Waker>,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, MailState> {
        // Nothing panics while holding this lock but a failed allocation; the queue is
        // still consistent then.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn close(&self) {
        let waker = {
            let mut st = self.lock();
            st.closed = true;
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// A mailbox's messages. Most often one waits at a time: it is held in place, and a
/// queue is allocated only while more than one wait (then kept until the task waits
/// again), rather than one allocated and freed for every message.
#[derive(Default)]
enum Queue {
    #[default]
    Empty,
    One(ConnMsg),
    Many(VecDeque<ConnMsg>),
}

impl Queue {
    fn push(&mut self, msg: ConnMsg) {
        match self {
            Queue::Empty => *self = Queue::One(msg),
            Queue::Many(q) => q.push_back(msg),
            Queue::One(_) => {
                let mut q = VecDeque::with_capacity(4);
                if let Queue::One(first) = std::mem::take(self) {
                    q.push_back(first);
                }
                q.push_back(msg);
                *self = Queue::Many(q);
            }
        }
    }

    fn pop(&mut self) -> Option<ConnMsg> {
        match self {
            Queue::Empty => None,
            Queue::Many(q) => q.pop_front(),
            Queue::One(_) => match std::mem::take(self) {
                Queue::One(msg) => Some(msg),
                _ => None,
            },
        }
    }

    /// The bytes `recv_coalesced` appends when `room` more fit: those of the `Bytes`
    /// messages at the front, up to the one that reaches `room`.
    fn bytes_ahead(&self, room: usize) -> usize {
        let Queue::Many(q) = self else {
            return 0;
        };
        let mut n = 0;
        for msg in q {
            match msg {
                ConnMsg::Bytes(b) if n < room => n += b.len(),
                _ => break,
            }
        }
        n
    }

    /// Whether the next message is `Bytes`.
    fn bytes_next(&self) -> bool {
        match self {
            Queue::Empty => false,
            Queue::One(msg) => matches!(msg, ConnMsg::Bytes(_)),
            Queue::Many(q) => matches!(q.front(), Some(ConnMsg::Bytes(_))),
        }
    }
}

/// The core's end of a connection's mailbox. Dropping it ends the task once it has taken
/// what was queued.
pub(crate) struct ConnHandle(Arc<Mailbox>);

/// The connection task's end.
pub(crate) struct Inbox(Arc<Mailbox>);

/// A new mailbox.
pub(crate) fn mailbox() -> (ConnHandle, Inbox) {
    let m = Arc::new(Mailbox {
        state: Mutex::new(MailState {
            queue: Queue::Empty,
            closed: false,
            waker: None,
        }),
        queued: AtomicUsize::new(0),
    });
    (ConnHandle(Arc::clone(&m)), Inbox(m))
}

impl ConnHandle {
    /// Queues `msg`; `false` if the task is gone.
    pub(crate) fn send(&self, msg: ConnMsg) -> bool {
        let waker = {
            let mut st = self.0.lock();
            if st.closed {
                return false;
            }
            st.queue.push(msg);
            st.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        true
    }

    /// Counts `n` more bytes as queued; returns the new total.
    pub(crate) fn add_queued(&self, n: usize) -> usize {
        self.0.queued.fetch_add(n, Ordering::Relaxed) + n
    }
}

impl Drop for ConnHandle {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Inbox {
    /// The next message; `None` once the core dropped its handle and the queue is empty.
    pub(crate) async fn recv(&self) -> Option<ConnMsg> {
        self.recv_coalesced(0).await
    }

    /// [`Inbox::recv`], with the bytes of the `Bytes` messages queued right behind a
    /// `Bytes` message appended to it while it is shorter than `max`: taken under the one
    /// lock, for one write. Another message met stays first in the queue.
    pub(crate) async fn recv_coalesced(&self, max: usize) -> Option<ConnMsg> {
        std::future::poll_fn(|cx| {
            let mut st = self.0.lock();
            if let Some(mut msg) = st.queue.pop() {
                if let ConnMsg::Bytes(out) = &mut msg {
                    // Grown once for what follows, not doubled along the way.
                    out.reserve(st.queue.bytes_ahead(max.saturating_sub(out.len())));
                    let mut batched = false;
                    while out.len() < max && st.queue.bytes_next() {
                        if let Some(ConnMsg::Bytes(more)) = st.queue.pop() {
                            out.extend_from_slice(&more);
                            batched = true;
                        }
                    }
                    if batched {
                        crate::coalesce::note_batch();
                    }
                }
                return Poll::Ready(Some(msg));
            }
            if st.closed {
                return Poll::Ready(None);
            }
            // About to wait: an idle connection keeps no queue capacity. The waker is
            // stored under the same lock a sender takes, so no message is missed.
            st.queue = Queue::Empty;
            if !st.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                st.waker = Some(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }

    /// `n` queued bytes were written (or dropped).
    pub(crate) fn written(&self, n: usize) {
        self.0.queued.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Drop for Inbox {
    fn drop(&mut self) {
        let mut st = self.0.lock();
        st.closed = true;
        st.queue = Queue::Empty;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn mailbox_delivers_in_order_then_ends_when_the_handle_is_dropped() {
        let (tx, rx) = mailbox();
        assert!(tx.send(ConnMsg::Bytes(b"a".to_vec())));
        assert!(tx.send(ConnMsg::Close));
        drop(tx);
        assert!(matches!(rx.recv().await, Some(ConnMsg::Bytes(b)) if b == b"a"));
        assert!(matches!(rx.recv().await, Some(ConnMsg::Close)));
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn mailbox_coalesces_the_bytes_queued_together_up_to_the_bound() {
        let (tx, rx) = mailbox();
        for part in [&b"ab"[..], b"c", b"de", b"f"] {
            assert!(tx.send(ConnMsg::Bytes(part.to_vec())));
        }
        assert!(tx.send(ConnMsg::Close));
        assert!(tx.send(ConnMsg::Bytes(b"g".to_vec())));
        // Appended while shorter than 3 bytes; `Close` ends a run and comes next.
        // A drain of more than one message marks this thread's load as batched (wake-up
        // coalescing); a single message does not.
        let _ = crate::coalesce::take_batch_mark();
        assert!(matches!(rx.recv_coalesced(3).await, Some(ConnMsg::Bytes(b)) if b == b"abc"));
        assert!(crate::coalesce::take_batch_mark());
        assert!(matches!(rx.recv_coalesced(3).await, Some(ConnMsg::Bytes(b)) if b == b"def"));
        assert!(crate::coalesce::take_batch_mark());
        assert!(matches!(rx.recv_coalesced(3).await, Some(ConnMsg::Close)));
        assert!(matches!(rx.recv_coalesced(3).await, Some(ConnMsg::Bytes(b)) if b == b"g"));
        assert!(!crate::coalesce::take_batch_mark());
        drop(tx);
        assert!(rx.recv_coalesced(3).await.is_none());
    }

    #[tokio::test]
    async fn mailbox_wakes_a_waiting_task_and_refuses_after_the_task_is_gone() {
        let (tx, rx) = mailbox();
        let waiter = tokio::spawn(async move {
            let got = rx.recv().await;
            matches!(got, Some(ConnMsg::UpgradeTls))
        });
        tokio::task::yield_now().await;
        assert!(tx.send(ConnMsg::UpgradeTls));
        assert!(waiter.await.expect("task ran"));
        // The inbox was dropped with the task.
        assert!(!tx.send(ConnMsg::Abort));
    }

    #[tokio::test]
    async fn read_with_hands_over_the_bytes_and_reports_eof() {
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"hello")
            .await
            .expect("write");
        drop(a);
        let mut b = b;
        let mut got = Vec::new();
        loop {
            let n = read_with(&mut b, |bytes| got.extend_from_slice(bytes))
                .await
                .expect("read");
            if n == 0 {
                break;
            }
        }
        assert_eq!(got, b"hello");
    }
}
