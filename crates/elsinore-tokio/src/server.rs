//! Running an [`elsinore_server::Server`] on tokio sockets.
//!
//! Shape: the sans-IO `Server` lives behind one `std::sync::Mutex` (it is single-threaded and
//! fast; the lock is never held across an `.await`). Three kinds of actors feed it:
//!
//! - one task per socket: reads bytes, and under the lock hands them to the core and drains
//!   every output the core produced (bytes and events go to the connection tasks' channels,
//!   storage effects to the storage worker);
//! - the storage worker, an OS thread: executes effects in groups, then under the lock reports
//!   their results and drains;
//! - the timer task: sleeps until `poll_timeout()`, then calls `handle_timeout` and drains.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Poll;
use std::time::Duration;

use elsinore_server::{ChannelBinding, ConnId, Server, ServerEvent, TlsInfo};
use elsinore_storage::{Effect, EffectResult, Op, Store, StoreError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use crate::clock::Clock;
use crate::conn_io::{ConnHandle, ConnMsg, Inbox, mailbox, read_with};
use crate::storage::{EffectQueue, MAX_GATHER, MAX_GROUP, Storage};

/// How long a TLS handshake may take.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection task waits for the core's `Close` after the peer went away.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// How long one socket write may block before the peer is considered dead.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// The timer never sleeps longer than this, so a deadline the core sets while the timer
/// sleeps fires at most this late (the core's timeouts are seconds long). Polling the
/// deadline on a tick, rather than after every input, keeps the per-input cost flat.
const TIMER_TICK: Duration = Duration::from_millis(250);
/// Most bytes written at once when coalescing queued output.
const MAX_COALESCE: usize = 64 * 1024;
/// Default bound on bytes queued for one connection but not yet written.
pub const DEFAULT_MAX_BACKLOG: usize = 1024 * 1024;
/// Default bound on simultaneously open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// A byte stream the connection task can read and write: plain TCP, or TLS over it.
pub(crate) trait AsyncStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> AsyncStream for T {}
pub(crate) type BoxStream = Box<dyn AsyncStream>;

/// The core plus where its outputs go.
pub(crate) struct Core {
    pub(crate) server: Server,
    /// Keyed by the core's own sequential ids: a fast hash, nothing a peer could steer.
    pub(crate) conns: HashMap<ConnId, ConnHandle, foldhash::fast::RandomState>,
    /// The storage worker's inbox.
    storage: Arc<EffectQueue>,
    /// Effects taken from the core in one drain, handed over together.
    effect_buf: Vec<Effect>,
    max_backlog: usize,
    /// Server-to-server runtime, when configured.
    pub(crate) s2s: Option<Arc<crate::s2s::S2sRuntime>>,
}

pub(crate) struct Shared {
    pub(crate) core: Mutex<Core>,
    pub(crate) clock: Clock,
    /// The c2s TLS acceptor (STARTTLS and direct TLS), shared by every connection task.
    pub(crate) acceptor: Option<Acceptor>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves the core in an unknown state, but it was a bug
        // in the core, not input; keep serving the other connections rather than cascade.
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the core under the lock, then drains every output.
    pub(crate) fn with_core<R>(&self, f: impl FnOnce(&mut Server) -> R) -> R {
        let mut core = self.lock();
        let r = f(&mut core.server);
        core.drain(&self.clock);
        r
    }
}

impl Core {
    /// Moves every output of the core to where it belongs. Sending on the channels never
    /// blocks, so this is fine under the lock.
    fn drain(&mut self, clock: &Clock) {
        loop {
            let mut progressed = false;
            // Transmits first, then events: bytes the core queued before an UpgradeTls or
            // Close (e.g. `<proceed/>`, a stream error) reach the connection's channel first.
            while let Some((conn, bytes)) = self.server.poll_transmit() {
                progressed = true;
                let Some(handle) = self.conns.get(&conn) else {
                    continue;
                };
                let queued = handle.add_queued(bytes.len());
                if queued > self.max_backlog {
                    // The peer does not read what we send: drop it rather than buffer
                    // without bound (the core's own output limit ends at this hand-off).
                    warn!(
                        ?conn,
                        queued, "peer is not reading; dropping the connection"
                    );
                    let _ = handle.send(ConnMsg::Abort);
                    self.conns.remove(&conn);
                    self.server.handle_eof(conn, clock.now());
                    continue;
                }
                let _ = handle.send(ConnMsg::Bytes(bytes));
            }
            while let Some(event) = self.server.poll_event() {
                progressed = true;
                match event {
                    ServerEvent::UpgradeTls(conn) => {
                        if let Some(handle) = self.conns.get(&conn) {
                            let _ = handle.send(ConnMsg::UpgradeTls);
                        }
                    }
                    ServerEvent::Close(conn) => {
                        // The core is done with this connection: no more bytes for it.
                        if let Some(handle) = self.conns.remove(&conn) {
                            let _ = handle.send(ConnMsg::Close);
                        }
                    }
                    ServerEvent::Connect { conn, domain } => self.connect_s2s(conn, domain, clock),
                }
            }
            while let Some(effect) = self.server.poll_effect() {
                progressed = true;
                self.effect_buf.push(effect);
            }
            // One hand-over (and at most one wakeup of the worker) per drain.
            self.storage.push(&mut self.effect_buf);
            for effect in std::mem::take(&mut self.effect_buf) {
                // The worker is gone (shutting down), but every effect must be answered.
                let failed =
                    EffectResult::Failed(StoreError::Unavailable("storage worker stopped".into()));
                self.server
                    .handle_effect_done(effect.id, failed, clock.now());
            }
            if !progressed {
                break;
            }
        }
    }
}

/// Serves `server` on `listener` until `shutdown` resolves, executing storage effects on
/// `store` one by one.
///
/// The server should have been created with `Instant::from_millis(0)` as `now`: the runtime's
/// clock starts at zero when this is called. Use [`Serve`] to pass your own [`Clock`] or a
/// group-committing store.
pub async fn serve<S: Store + Send + 'static>(
    listener: TcpListener,
    server: Server,
    store: S,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future,
) -> io::Result<()> {
    let mut serve = Serve::new(server, Clock::new(), Storage::per_op(store));
    if let Some(tls) = tls {
        serve = serve.tls(tls);
    }
    serve.run(listener, shutdown).await
}

/// A configured server runtime; see [`serve`] for the common case.
pub struct Serve {
    server: Server,
    clock: Clock,
    storage: Storage,
    tls: Option<Arc<rustls::ServerConfig>>,
    direct_tls: Option<TcpListener>,
    client_ca: Vec<rustls::pki_types::CertificateDer<'static>>,
    max_backlog: usize,
    max_connections: usize,
    s2s: Option<(Option<TcpListener>, crate::s2s::S2sOptions)>,
}

impl Serve {
    /// A runtime for `server`, whose `Instant`s come from `clock` (create the server with
    /// `clock.now()`), executing effects with `storage`.
    pub fn new(server: Server, clock: Clock, storage: Storage) -> Self {
        Serve {
            direct_tls: None,
            client_ca: Vec::new(),
            server,
            clock,
            storage,
            tls: None,
            max_backlog: DEFAULT_MAX_BACKLOG,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            s2s: None,
        }
    }

    /// Enables server-to-server: outgoing connections to the configured peers and, with
    /// `listener`, incoming ones. The server needs `config.s2s.enabled`.
    pub fn s2s(mut self, listener: Option<TcpListener>, options: crate::s2s::S2sOptions) -> Self {
        self.s2s = Some((listener, options));
        self
    }

    /// Bytes that may wait to be written to one connection before it is dropped as not
    /// reading (default [`DEFAULT_MAX_BACKLOG`]).
    #[must_use]
    pub fn max_backlog(mut self, bytes: usize) -> Self {
        self.max_backlog = bytes;
        self
    }

    /// Connections open at once; further sockets are closed at accept (default
    /// [`DEFAULT_MAX_CONNECTIONS`]).
    #[must_use]
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n;
        self
    }

    /// Enables STARTTLS with this rustls configuration. Without it an `UpgradeTls` request
    /// from the core ends that connection.
    #[must_use]
    pub fn tls(mut self, config: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Ask c2s clients for a certificate (optional: password clients still connect) on
    /// STARTTLS and direct TLS, verified against these CA certificates. A verified
    /// certificate's XMPP address (XEP-0178: its `id-on-xmppAddr`, else its rfc822Name)
    /// lets that account log in with SASL EXTERNAL; a presented certificate that does not
    /// verify fails the handshake. Needs [`Serve::tls`]; its certificate is reused.
    #[must_use]
    pub fn client_ca(mut self, ca: Vec<rustls::pki_types::CertificateDer<'static>>) -> Self {
        self.client_ca = ca;
        self
    }

    /// Also accept direct TLS connections (XEP-0368) on `listener`: the TLS handshake
    /// comes first, then the XMPP stream, with no STARTTLS. Needs [`Serve::tls`].
    pub fn direct_tls(mut self, listener: TcpListener) -> Self {
        self.direct_tls = Some(listener);
        self
    }

    /// Accepts connections on `listener` until `shutdown` resolves, then stops accepting,
    /// closes the connection tasks, stops the storage worker once the effects already queued
    /// have run, and returns.
    pub async fn run(self, listener: TcpListener, shutdown: impl Future) -> io::Result<()> {
        let queue = Arc::new(EffectQueue::default());
        let mut server = self.server;
        server.set_wall_clock(self.clock.now(), unix_ms());
        let (s2s_listener, s2s) = match self.s2s {
            Some((listener, options)) => (listener, Some(crate::s2s::S2sRuntime::new(options)?)),
            None => (None, None),
        };
        let client_auth = !self.client_ca.is_empty();
        let tls = match self.tls {
            Some(tls) if client_auth => Some(with_client_auth(&tls, self.client_ca)?),
            other => other,
        };
        let acceptor = tls.map(|config| Acceptor {
            config,
            client_auth,
        });
        let shared = Arc::new(Shared {
            acceptor: acceptor.clone(),
            core: Mutex::new(Core {
                server,
                conns: HashMap::default(),
                storage: Arc::clone(&queue),
                effect_buf: Vec::new(),
                max_backlog: self.max_backlog,
                s2s: s2s.clone(),
            }),
            clock: self.clock,
        });
        if let Some(rt) = &s2s {
            let _ = rt.shared.set(Arc::downgrade(&shared));
        }
        let worker = {
            let shared = Arc::clone(&shared);
            let storage = self.storage;
            std::thread::Builder::new()
                .name("elsinore-storage".into())
                .spawn({
                    let queue = Arc::clone(&queue);
                    move || storage_worker(shared, storage, &queue)
                })?
        };
        let timer = tokio::spawn(timer_task(Arc::clone(&shared)));
        let tasks = Arc::new(TaskCount::default());
        // Refusals on the direct TLS port over the connection limit (aborted when run ends).
        let mut refusing = tokio::task::JoinSet::new();
        let direct_tls = self.direct_tls;

        tokio::pin!(shutdown);
        let result = loop {
            tokio::select! {
                _ = &mut shutdown => break Ok(()),
                accepted = listener.accept() => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) if is_transient_accept_error(&e) => {
                            warn!("accept: {e}");
                            // Out of file descriptors and the like: back off instead of spinning.
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                        Err(e) => break Err(e),
                    };
                    if tasks.len() >= self.max_connections {
                        warn!(%peer, "connection limit reached; refusing");
                        // Header, resource-constraint, close: small enough for the empty
                        // send buffer of a new socket, so a non-blocking write suffices.
                        let refusal = shared.lock().server.refusal();
                        let _ = stream.try_write(&refusal);
                        // Closing with unread input sends a reset, which may discard the
                        // refusal at the peer: drop what already arrived (bounded).
                        let mut sink = [0u8; 4096];
                        for _ in 0..4 {
                            if !matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {
                                break;
                            }
                        }
                        drop(stream);
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let (handle, rx) = mailbox();
                    let conn = {
                        let mut core = shared.lock();
                        // Over the per-address limit the core answers with a stream error
                        // and a Close, like any other ending.
                        let conn = core.server.accept_from(peer.ip(), shared.clock.now());
                        core.conns.insert(conn, handle);
                        core.drain(&shared.clock);
                        conn
                    };
                    debug!(?conn, %peer, "accepted");
                    // Not `tasks.spawn`: the task holds its count itself (see `connection_task`).
                    tokio::spawn(connection_task(
                        tasks.enter(),
                        Arc::clone(&shared),
                        conn,
                        Box::new(stream),
                        rx,
                    ));
                }
                accepted = accept_opt(direct_tls.as_ref()) => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) if is_transient_accept_error(&e) => {
                            warn!("accept (direct TLS): {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                        Err(e) => break Err(e),
                    };
                    let Some(acceptor) = acceptor.clone() else {
                        warn!(%peer, "direct TLS connection but no TLS configured; refusing");
                        continue;
                    };
                    if tasks.len() >= self.max_connections {
                        warn!(%peer, "connection limit reached; refusing");
                        // The refusal needs a handshake: a few at a time, each bounded, in
                        // tasks outside the limit; beyond that the socket is just closed.
                        while refusing.try_join_next().is_some() {}
                        if refusing.len() < MAX_TLS_REFUSALS {
                            let refusal = shared.lock().server.refusal();
                            refusing.spawn(refuse_over_tls(stream, acceptor, refusal));
                        }
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    let counted = tasks.enter();
                    tokio::spawn(async move {
                        // The handshake runs before the core hears of the connection.
                        let (tls, info) = match upgrade(Box::new(stream), Some(&acceptor)).await {
                            Ok(s) => s,
                            Err(e) => {
                                debug!(%peer, "direct TLS handshake failed: {e}");
                                return;
                            }
                        };
                        let (handle, rx) = mailbox();
                        let conn = {
                            let mut core = shared.lock();
                            let conn = core.server.accept_direct_tls_from(peer.ip(), info, shared.clock.now());
                            core.conns.insert(conn, handle);
                            core.drain(&shared.clock);
                            conn
                        };
                        debug!(?conn, %peer, "accepted (direct TLS)");
                        connection_task(counted, shared, conn, tls, rx).await;
                    });
                }
                accepted = accept_opt(s2s_listener.as_ref()) => {
                    let (stream, peer) = match accepted {
                        Ok(a) => a,
                        Err(e) if is_transient_accept_error(&e) => {
                            warn!("accept (s2s): {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                        Err(e) => break Err(e),
                    };
                    let Some(rt) = s2s.clone() else { continue };
                    if tasks.len() >= self.max_connections {
                        warn!(%peer, "connection limit reached; refusing");
                        continue;
                    }
                    debug!(%peer, "s2s connection");
                    tasks.spawn(crate::s2s::accept_s2s(Arc::clone(&shared), stream, rt));
                }
            }
        };

        info!("shutting down");
        drop(listener);
        drop(direct_tls);
        drop(s2s_listener);
        // Every stream gets a `system-shutdown` stream error and is closed by its task.
        let now = shared.clock.now();
        shared.with_core(|s| s.shutdown(now));
        if tokio::time::timeout(CLOSE_GRACE, tasks.idle())
            .await
            .is_err()
        {
            // Dropping the senders ends the remaining tasks' loops; then stop waiting (a
            // task still stuck ends with the runtime).
            shared.lock().conns.clear();
            let _ = tokio::time::timeout(CLOSE_GRACE, tasks.idle()).await;
        }
        timer.abort();
        queue.stop();
        // The worker finishes its current group (so acknowledged writes are durable) and exits.
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
        result
    }
}

/// Accept on an optional listener; pending forever when there is none.
async fn accept_opt(
    listener: Option<&TcpListener>,
) -> io::Result<(tokio::net::TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    !matches!(
        e.kind(),
        io::ErrorKind::InvalidInput | io::ErrorKind::Unsupported
    )
}

/// One socket: reads into the core, writes what the core sends, upgrades to TLS on request.
///
/// While it waits, the task holds the stream, its mailbox and this future's small state: no
/// read or write buffer (see `conn_io`), and the rarely used states (TLS handshake, the close
/// grace period) are boxed when entered so they do not size every idle connection's future.
///
/// A function returning an `async move` block, not an `async fn`: an async fn keeps its
/// arguments twice in its state (captured, and moved into locals), and with them this
/// future crosses a 128-byte step of tokio's task cell. For the same reason it holds its
/// entry in the task count (`counted`) itself: a wrapping `async move` block, as
/// `TaskCount::spawn` makes, would keep this future twice (captured, and awaited).
#[allow(clippy::manual_async_fn)] // On purpose: see above.
fn connection_task(
    counted: Counted,
    shared: Arc<Shared>,
    conn: ConnId,
    mut stream: BoxStream,
    rx: Inbox,
) -> impl Future<Output = ()> + Send {
    async move {
        let mut eof_reported = false;
        // Over its stanza or byte rate the core reads nothing before this: neither do we, so
        // TCP slows the peer down instead of input piling up in the core.
        let mut resume_at: Option<tokio::time::Instant> = None;
        let peer_gone = loop {
            // `biased`: messages from the core always go before the next socket read. After
            // we hand bytes to the core we drain its outputs synchronously (in `with_core`),
            // so an `UpgradeTls` caused by those bytes is already queued when we loop;
            // taking `rx` first guarantees no byte after `<proceed/>` is read as plaintext.
            let msg = match resume_at {
                Some(at) => tokio::select! {
                    biased;
                    msg = rx.recv_coalesced(MAX_COALESCE) => msg.unwrap_or(ConnMsg::Close),
                    // Boxed: only connections over their rate wait here.
                    () = Box::pin(tokio::time::sleep_until(at)) => {
                        resume_at = None;
                        continue;
                    }
                },
                None => tokio::select! {
                    biased;
                    msg = rx.recv_coalesced(MAX_COALESCE) => msg.unwrap_or(ConnMsg::Close), // None: the runtime shuts down
                    read = read_with(&mut stream, |bytes| {
                        let now = shared.clock.now();
                        let paused = shared.with_core(|s| {
                            s.handle_input(conn, bytes, now);
                            s.input_paused_until(conn)
                        });
                        resume_at = paused.map(|t| shared.clock.to_tokio(t));
                    }) => match read {
                        Ok(0) | Err(_) => break true,
                        Ok(_) => continue,
                    },
                },
            };
            let flow = match msg {
                // The common case stays inline (and not through `handle_msg`, whose future
                // would again hold the arguments twice); the others are boxed while they last,
                // so their larger state does not size every waiting connection's task.
                // Already coalesced with the bytes queued behind it, under the lock it was
                // taken with (`recv_coalesced`).
                ConnMsg::Bytes(out) => {
                    let result = write_all(&mut stream, &out).await;
                    wrote(conn, &rx, out.len(), result)
                }
                other => Box::pin(handle_msg(other, &shared, conn, &mut stream, &rx)).await,
            };
            if let Flow::Stop { eof_known } = flow {
                eof_reported |= eof_known;
                break false;
            }
        };
        if peer_gone {
            report_eof(&shared, conn, &mut eof_reported);
            // The peer went away: carry out what the core still sends until its `Close`, for a
            // bounded time.
            let rest = async {
                loop {
                    let msg = rx
                        .recv_coalesced(MAX_COALESCE)
                        .await
                        .unwrap_or(ConnMsg::Close);
                    let flow = handle_msg(msg, &shared, conn, &mut stream, &rx).await;
                    if let Flow::Stop { .. } = flow {
                        break;
                    }
                }
            };
            // Boxed with its timer: a timer is large, and only ending connections need one.
            let _ = Box::pin(tokio::time::timeout(CLOSE_GRACE, rest)).await;
        }
        report_eof(&shared, conn, &mut eof_reported);
        forget(&shared, conn);
        // Off the count last, as when a wrapper held it: with everything else let go.
        drop(stream);
        drop(rx);
        drop(shared);
        drop(counted);
    }
}

/// What the connection loop does after a message from the core.
enum Flow {
    Continue,
    /// End the task; `eof_known`: the core already knows the connection is gone.
    Stop {
        eof_known: bool,
    },
}

/// Carries out one message from the core (`Bytes` taken with `recv_coalesced`: one write,
/// and one TLS record flush, for the bytes queued together).
async fn handle_msg(
    msg: ConnMsg,
    shared: &Shared,
    conn: ConnId,
    stream: &mut BoxStream,
    rx: &Inbox,
) -> Flow {
    match msg {
        ConnMsg::Bytes(out) => {
            let result = write_all(stream, &out).await;
            wrote(conn, rx, out.len(), result)
        }
        ConnMsg::UpgradeTls => {
            // Every byte queued before the event was written (and flushed) by the `Bytes`
            // messages before it; the handshake starts on a clean plaintext boundary.
            let plain = std::mem::replace(stream, Box::new(tokio::io::duplex(1).0));
            // Boxed: a handshake's state is large and needed once per connection.
            match Box::pin(upgrade(plain, shared.acceptor.as_ref())).await {
                Ok((tls, info)) => {
                    *stream = tls;
                    let now = shared.clock.now();
                    shared.with_core(|s| s.handle_tls_ready_with(conn, info, now));
                    Flow::Continue
                }
                Err(e) => {
                    debug!(?conn, "TLS handshake: {e}");
                    Flow::Stop { eof_known: false }
                }
            }
        }
        ConnMsg::Close => {
            // The core has finished the stream (it removed the connection itself).
            Box::pin(async {
                let _ = tokio::time::timeout(WRITE_TIMEOUT, stream.flush()).await;
                let _ = tokio::time::timeout(CLOSE_GRACE, stream.shutdown()).await;
                // The close handshake (RFC 6120 4.4): give the peer time to read our
                // `</stream:stream>` (after a stream error too) and close its side. Closing
                // with its input unread would reset the connection, and a reset can destroy
                // the error before the peer reads it.
                let _ = tokio::time::timeout(CLOSE_GRACE, discard_until_eof(stream)).await;
            })
            .await;
            Flow::Stop { eof_known: true }
        }
        ConnMsg::Abort => Flow::Stop { eof_known: true },
    }
}

/// Reads and drops what the peer still sends until it closes, at most [`MAX_DRAIN`] bytes.
async fn discard_until_eof(stream: &mut BoxStream) {
    let mut buf = [0u8; 1024];
    let mut left = MAX_DRAIN;
    while left > 0 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => left = left.saturating_sub(n),
        }
    }
}

/// What a closing connection reads from its peer at most while waiting for its close.
const MAX_DRAIN: usize = 64 * 1024;

/// After a write of `len` bytes: accounts for them, and whether the task goes on.
fn wrote(conn: ConnId, rx: &Inbox, len: usize, result: io::Result<()>) -> Flow {
    rx.written(len);
    match result {
        Ok(()) => Flow::Continue,
        Err(e) => {
            debug!(?conn, "write: {e}");
            Flow::Stop { eof_known: false }
        }
    }
}

/// Tells the core the peer is gone, once.
fn report_eof(shared: &Shared, conn: ConnId, reported: &mut bool) {
    if !*reported {
        *reported = true;
        let now = shared.clock.now();
        shared.with_core(|s| s.handle_eof(conn, now));
    }
}

/// Stops routing the core's output for `conn` to this (ending) task.
fn forget(shared: &Shared, conn: ConnId) {
    shared.lock().conns.remove(&conn);
}

/// Writes and flushes `bytes`, bounded by [`WRITE_TIMEOUT`]. (A function returning an
/// `async move` block, for the reason given at [`connection_task`].)
#[allow(clippy::manual_async_fn)] // On purpose: see above.
fn write_all<'a>(
    stream: &'a mut BoxStream,
    bytes: &'a [u8],
) -> impl Future<Output = io::Result<()>> + Send + 'a {
    async move {
        // Fast path: the socket takes it all at once, as it nearly always does. No timer is
        // armed, and the slow path's state (a timer is large) is boxed only when needed, so
        // it does not size every idle connection's task.
        let mut written = 0;
        let done = std::future::poll_fn(|cx| {
            while written < bytes.len() {
                match Pin::new(&mut *stream).poll_write(cx, &bytes[written..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => written += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Ready(Ok(false)),
                }
            }
            match Pin::new(&mut *stream).poll_flush(cx) {
                Poll::Ready(Ok(())) => Poll::Ready(Ok(true)),
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Ready(Ok(false)),
            }
        })
        .await?;
        if done {
            return Ok(());
        }
        let rest = bytes.get(written..).unwrap_or_default();
        Box::pin(tokio::time::timeout(WRITE_TIMEOUT, async {
            stream.write_all(rest).await?;
            stream.flush().await
        }))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
    }
}

/// The c2s TLS configuration, and whether it verifies client certificates.
#[derive(Clone)]
pub(crate) struct Acceptor {
    config: Arc<rustls::ServerConfig>,
    /// The acceptor's configuration was built here with a `WebPkiClientVerifier`: a
    /// client certificate present after the handshake has verified.
    client_auth: bool,
}

/// `base` with an optional client certificate verified against `ca` (same server
/// certificate, ALPN and protocol versions as the provider's safe defaults).
fn with_client_auth(
    base: &Arc<rustls::ServerConfig>,
    ca: Vec<rustls::pki_types::CertificateDer<'static>>,
) -> io::Result<Arc<rustls::ServerConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in ca {
        roots
            .add(cert)
            .map_err(|e| io::Error::other(format!("client CA certificate: {e}")))?;
    }
    let provider = Arc::clone(base.crypto_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    // Password clients keep working: the certificate is only asked for.
    .allow_unauthenticated()
    .build()
    .map_err(|e| io::Error::other(format!("client certificate verifier: {e}")))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::clone(&base.cert_resolver));
    config.alpn_protocols = base.alpn_protocols.clone();
    Ok(Arc::new(config))
}

/// Direct TLS connections over the limit that are answered at once; more are closed
/// unanswered (each answer costs a handshake).
const MAX_TLS_REFUSALS: usize = 16;

/// The live connection tasks: enough to hold to the connection limit and to wait for them
/// at shutdown, without a `JoinSet` (which keeps an entry of its own per task, 56 bytes).
#[derive(Default)]
struct TaskCount {
    live: AtomicUsize,
    /// Woken when `live` drops to zero.
    none_left: tokio::sync::Notify,
}

/// Held by a task's future: dropped when the task ends, or is dropped unfinished (runtime
/// shutdown), which takes it off the count.
struct Counted(Arc<TaskCount>);

impl Drop for Counted {
    fn drop(&mut self) {
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

impl TaskCount {
    fn len(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Counts one more task, until the returned guard is dropped.
    fn enter(self: &Arc<Self>) -> Counted {
        self.live.fetch_add(1, Ordering::AcqRel);
        Counted(Arc::clone(self))
    }

    fn spawn(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        let counted = self.enter();
        tokio::spawn(async move {
            let _counted = counted;
            task.await;
        });
    }

    /// Returns once no task is left.
    async fn idle(&self) {
        loop {
            let notified = self.none_left.notified();
            tokio::pin!(notified);
            // Registered before the check, so a wakeup between the two is not lost.
            notified.as_mut().enable();
            if self.len() == 0 {
                return;
            }
            notified.await;
        }
    }
}
/// Bound on one such answer: handshake, refusal, and waiting for the peer to close.
const TLS_REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers a direct TLS connection over the limit as the plain port does (our header,
/// `resource-constraint`, close), inside TLS, within [`TLS_REFUSAL_TIMEOUT`].
async fn refuse_over_tls(stream: TcpStream, acceptor: Acceptor, refusal: Vec<u8>) {
    let refused = tokio::time::timeout(TLS_REFUSAL_TIMEOUT, async {
        let mut tls = TlsAcceptor::from(acceptor.config).accept(stream).await?;
        tls.write_all(&refusal).await?;
        tls.shutdown().await?;
        // Closing with unread input sends a reset, which may discard the refusal at the
        // peer: read (and drop) until the peer closes too.
        let mut sink = [0u8; 4096];
        while tls.read(&mut sink).await? > 0 {}
        io::Result::Ok(())
    })
    .await;
    if let Ok(Err(e)) = refused {
        debug!("refusing a direct TLS connection: {e}");
    }
}

async fn upgrade(
    stream: BoxStream,
    acceptor: Option<&Acceptor>,
) -> io::Result<(BoxStream, TlsInfo)> {
    let acceptor = acceptor.ok_or_else(|| io::Error::other("TLS requested but not configured"))?;
    // A per-connection copy that records the certificate sent, for tls-server-end-point.
    let (config, chosen) = crate::tls::ChosenCert::wrap(&acceptor.config);
    let handshake = TlsAcceptor::from(config).accept(stream);
    let tls = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
    let conn = tls.get_ref().1;
    let peer_identity = if acceptor.client_auth {
        conn.peer_certificates()
            .and_then(<[_]>::first)
            .and_then(crate::tls::client_identity)
    } else {
        None
    };
    let end_point = || {
        chosen
            .end_entity()
            .and_then(|cert| crate::tls::server_end_point(&cert))
            .map_or(ChannelBinding::None, ChannelBinding::TlsServerEndPoint)
    };
    let (channel_binding, more_channel_bindings) = match conn.protocol_version() {
        // tls-exporter first (RFC 9266); the certificate hash too, for clients that only
        // know tls-server-end-point.
        Some(rustls::ProtocolVersion::TLSv1_3) => (tls_exporter(conn), vec![end_point()]),
        // RFC 5929 §4.1: the exporter is not bound to the whole handshake on TLS 1.2
        // (no extended master secret check here), the certificate hash is.
        Some(rustls::ProtocolVersion::TLSv1_2) => (end_point(), Vec::new()),
        _ => (ChannelBinding::None, Vec::new()),
    };
    let info = TlsInfo {
        channel_binding,
        peer_identity,
        more_channel_bindings,
    };
    Ok((Box::new(tls), info))
}

/// RFC 9266 `tls-exporter` channel binding (TLS 1.3): 32 bytes exported with the label
/// "EXPORTER-Channel-Binding" and no context.
fn tls_exporter(conn: &rustls::ServerConnection) -> ChannelBinding {
    let mut out = [0u8; 32];
    match conn.export_keying_material(&mut out, b"EXPORTER-Channel-Binding", None) {
        Ok(_) => ChannelBinding::TlsExporter(out.to_vec()),
        Err(_) => ChannelBinding::None,
    }
}

/// The wall clock in Unix milliseconds (0 if the system clock is before 1970).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Calls `handle_timeout` whenever the core's deadline passes (checked at least every
/// [`TIMER_TICK`]).
async fn timer_task(shared: Arc<Shared>) {
    loop {
        let deadline = shared.lock().server.poll_timeout();
        let tick = tokio::time::Instant::now() + TIMER_TICK;
        let at = deadline.map_or(tick, |d| shared.clock.to_tokio(d).min(tick));
        tokio::time::sleep_until(at).await;
        let now = shared.clock.now();
        // The core never reads a clock: tell it the wall time for delay stamps.
        let wall = unix_ms();
        if deadline.is_some_and(|d| d <= now) {
            shared.with_core(|s| {
                s.set_wall_clock(now, wall);
                s.handle_timeout(now);
            });
        } else {
            shared.lock().server.set_wall_clock(now, wall);
        }
    }
}

/// The storage worker thread: executes effects in groups and reports the results.
fn storage_worker(shared: Arc<Shared>, mut storage: Storage, queue: &EffectQueue) {
    // What the next group waits for (see `storage.rs`): as many effects as the last group
    // had, for no longer than it took.
    let (mut want, mut gather) = (1, Duration::ZERO);
    while let Some(group) = queue.take(want, gather, MAX_GROUP) {
        let started = std::time::Instant::now();
        want = group.len();
        let (ids, ops): (Vec<_>, Vec<Op>) = group.into_iter().map(|e| (e.id, e.op)).unzip();
        let mut results = storage.apply_many(&ops).into_iter();
        gather = if want > 1 {
            started.elapsed().min(MAX_GATHER)
        } else {
            Duration::ZERO
        };
        let now = shared.clock.now();
        shared.with_core(|s| {
            for id in ids {
                let result = results.next().unwrap_or_else(|| {
                    EffectResult::Failed(StoreError::Unavailable("storage worker stopped".into()))
                });
                s.handle_effect_done(id, result, now);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future a function returns, taken from its type without calling it.
    fn returned_size<A, B, C, D, E, F>(_: impl Fn(A, B, C, D, E) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A plain connection is spawned as this future itself, so its size picks the size
    /// class of tokio's task cell, one per connection: 384 bytes at 256. A few bytes more
    /// move every idle session up a class (an async block around it, which held it twice,
    /// once took the cell to 640 unnoticed).
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_connection_task_stays_small() {
        let size = returned_size(connection_task);
        println!("connection_task future: {size} bytes");
        assert!(size <= 288, "connection_task future grew to {size} bytes");
    }
}
