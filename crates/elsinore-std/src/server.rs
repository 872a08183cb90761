//! A thread-per-connection server over [`elsinore_server::Server`].
//!
//! The core sits behind one mutex. A connection thread reads its socket (with a short read
//! timeout), hands the bytes to the core under the lock, and between reads carries out what
//! the core queued for it (bytes, TLS upgrade, close) on a channel. Because the core's
//! outputs are drained under the lock right after each input, an `UpgradeTls` caused by a
//! read is in the channel before the thread reads again: no byte after `<proceed/>` is ever
//! read as plaintext. A storage thread executes effects, a timer thread fires deadlines.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use elsinore_server::{ConnId, Server, ServerEvent};
use elsinore_storage::{Effect, EffectResult, Store, StoreError};

use crate::Clock;

const READ_BUF: usize = 16 * 1024;
/// How long a connection thread blocks in `read` before looking at its channel: the most
/// latency a stanza routed from another connection waits.
const POLL: Duration = Duration::from_millis(10);
/// The timer thread never sleeps longer than this.
const TIMER_TICK: Duration = Duration::from_millis(100);
/// Bound on one socket write and on a TLS handshake.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections served at once by default; more are refused at accept.
pub const MAX_CONNECTIONS: usize = 1024;

/// What the core asks a connection thread to do.
enum ConnMsg {
    Bytes(Vec<u8>),
    UpgradeTls,
    Close,
}

struct Core {
    server: Server,
    conns: HashMap<ConnId, Sender<ConnMsg>>,
    storage: Sender<Effect>,
}

struct Shared {
    core: Mutex<Core>,
    clock: Clock,
    stop: AtomicBool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Core> {
        // A poisoned lock means a bug in the core, not input: keep serving the others.
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the core, then drains every output to where it belongs.
    fn with_core<R>(&self, f: impl FnOnce(&mut Server) -> R) -> R {
        let mut core = self.lock();
        let r = f(&mut core.server);
        let core = &mut *core;
        loop {
            let mut moved = false;
            while let Some((conn, bytes)) = core.server.poll_transmit() {
                moved = true;
                if let Some(tx) = core.conns.get(&conn) {
                    let _ = tx.send(ConnMsg::Bytes(bytes));
                }
            }
            while let Some(event) = core.server.poll_event() {
                moved = true;
                match event {
                    ServerEvent::UpgradeTls(conn) => {
                        if let Some(tx) = core.conns.get(&conn) {
                            let _ = tx.send(ConnMsg::UpgradeTls);
                        }
                    }
                    ServerEvent::Close(conn) => {
                        if let Some(tx) = core.conns.remove(&conn) {
                            let _ = tx.send(ConnMsg::Close);
                        }
                    }
                    // This adapter has no server-to-server: remote domains bounce.
                    ServerEvent::Connect { conn, .. } => {
                        core.server.handle_connect_failed(conn, self.clock.now());
                        moved = true;
                    }
                }
            }
            while let Some(effect) = core.server.poll_effect() {
                moved = true;
                if let Err(mpsc::SendError(effect)) = core.storage.send(effect) {
                    // The storage thread is gone; every effect must still be answered.
                    let failed = EffectResult::Failed(StoreError::Unavailable("stopped".into()));
                    core.server
                        .handle_effect_done(effect.id, failed, self.clock.now());
                }
            }
            if !moved {
                break;
            }
        }
        r
    }
}

/// A running server; [`ServerHandle::shutdown`] stops it.
pub struct ServerHandle {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl ServerHandle {
    /// The address the listener is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, sends every stream `system-shutdown`, waits (bounded) for the
    /// connection threads, then stops the storage and timer threads.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Serves `server` on `listener` in background threads, executing storage effects on
/// `store`. `tls` enables STARTTLS. Create the server with `Instant::from_millis(0)`: the
/// clock starts when this is called.
///
/// ```no_run
/// use elsinore_server::{Server, ServerConfig};
/// use elsinore_storage::MemoryStore;
/// use elsinore_stream::Instant;
///
/// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
/// let server = Server::new(ServerConfig::new("localhost"), [7; 32], Instant::from_millis(0));
/// let handle = elsinore_std::spawn_server(listener, server, MemoryStore::new(), None)?;
/// println!("serving on {}", handle.local_addr());
/// handle.shutdown();
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn spawn_server<S: Store + Send + 'static>(
    listener: TcpListener,
    server: Server,
    store: S,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> io::Result<ServerHandle> {
    spawn_server_with_cap(listener, server, store, tls, MAX_CONNECTIONS)
}

/// [`spawn_server`] serving at most `max_connections` connections (one thread each) at
/// once; a connection over the cap gets our stream header and `resource-constraint`.
pub fn spawn_server_with_cap<S: Store + Send + 'static>(
    listener: TcpListener,
    server: Server,
    store: S,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_connections: usize,
) -> io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    let (storage_tx, storage_rx) = mpsc::channel();
    let shared = Arc::new(Shared {
        core: Mutex::new(Core {
            server,
            conns: HashMap::new(),
            storage: storage_tx,
        }),
        clock: Clock::new(),
        stop: AtomicBool::new(false),
    });
    let storage = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("elsinore-storage".into())
            .spawn(move || storage_thread(&shared, store, &storage_rx))?
    };
    let timer = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("elsinore-timer".into())
            .spawn(move || timer_thread(&shared))?
    };
    let accept = {
        let shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name("elsinore-accept".into())
            .spawn(move || {
                accept_thread(&shared, &listener, tls, storage, timer, max_connections);
            })?
    };
    Ok(ServerHandle {
        addr,
        shared,
        accept: Some(accept),
    })
}

fn accept_thread(
    shared: &Arc<Shared>,
    listener: &TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    storage: JoinHandle<()>,
    timer: JoinHandle<()>,
    max_connections: usize,
) {
    let mut threads: Vec<JoinHandle<()>> = Vec::new();
    while !shared.stop.load(Ordering::SeqCst) {
        threads.retain(|t| !t.is_finished());
        match listener.accept() {
            Ok((socket, peer)) if threads.len() < max_connections => {
                let (tx, rx) = mpsc::channel();
                let conn = {
                    let mut core = shared.lock();
                    // Over the per-address limit the core answers with a stream error and
                    // closes the connection through the usual messages.
                    let conn = core.server.accept_from(peer.ip(), shared.clock.now());
                    core.conns.insert(conn, tx);
                    conn
                };
                shared.with_core(|_| {});
                let for_thread = Arc::clone(shared);
                let tls = tls.clone();
                let spawned = std::thread::Builder::new()
                    .name("elsinore-conn".into())
                    .spawn(move || connection_thread(&for_thread, conn, socket, &rx, tls));
                match spawned {
                    Ok(t) => threads.push(t),
                    // Out of threads: the core forgets the connection, the socket is dropped.
                    Err(_) => {
                        let now = shared.clock.now();
                        shared.with_core(|s| s.handle_eof(conn, now));
                    }
                }
            }
            Ok((mut socket, _)) => {
                // Over the limit: our header and `resource-constraint`, like the tokio
                // adapter. One non-blocking write (a few hundred bytes fit any socket
                // buffer), so a flood of connections cannot stall this thread.
                let refusal = shared.lock().server.refusal();
                if socket.set_nonblocking(true).is_ok() {
                    let _ = io::Write::write(&mut socket, &refusal);
                }
                let _ = socket.shutdown(std::net::Shutdown::Write);
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(_) => std::thread::sleep(POLL),
        }
    }
    let now = shared.clock.now();
    shared.with_core(|s| s.shutdown(now));
    let give_up = std::time::Instant::now() + Duration::from_secs(5);
    while threads.iter().any(|t| !t.is_finished()) && std::time::Instant::now() < give_up {
        std::thread::sleep(POLL);
    }
    // Dropping the channels ends the remaining threads at their next poll.
    shared.lock().conns.clear();
    for t in threads {
        let _ = t.join();
    }
    // The storage thread ends when its channel closes: replace the sender.
    shared.lock().storage = mpsc::channel().0;
    let _ = storage.join();
    let _ = timer.join();
}

/// The socket, plain or with TLS over it.
enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Stream {
    fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => &s.sock,
        }
    }
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(buf).and_then(|()| s.flush()),
            Stream::Tls(s) => s.write_all(buf).and_then(|()| s.flush()),
        }
    }
}

/// What a connection thread does after a message from the core.
enum Flow {
    Continue,
    Stop,
}

fn connection_thread(
    shared: &Shared,
    conn: ConnId,
    socket: TcpStream,
    rx: &Receiver<ConnMsg>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let _ = socket.set_nodelay(true);
    let _ = socket.set_nonblocking(false);
    let _ = socket.set_write_timeout(Some(IO_TIMEOUT));
    let mut stream = Some(Stream::Plain(socket));
    let mut buf = vec![0u8; READ_BUF];
    let mut eof_reported = false;
    // Over its stanza or byte rate the core reads nothing before this: neither do we,
    // so TCP slows the peer down.
    let mut resume_at: Option<elsinore_server::Instant> = None;
    while let Some(s) = stream.as_mut() {
        // Everything the core queued goes out before the next read (the STARTTLS rule).
        match rx.try_recv() {
            Ok(msg) => match handle_msg(shared, conn, &mut stream, msg, tls.as_ref()) {
                Flow::Continue => continue,
                Flow::Stop => {
                    eof_reported = true;
                    break;
                }
            },
            Err(mpsc::TryRecvError::Empty) => {}
            // The runtime dropped us (shutdown).
            Err(mpsc::TryRecvError::Disconnected) => break,
        }
        if let Some(at) = resume_at {
            let wait = at.saturating_since(shared.clock.now());
            if !wait.is_zero() {
                std::thread::sleep(wait.min(POLL));
                continue;
            }
            resume_at = None;
        }
        let _ = s.tcp().set_read_timeout(Some(POLL));
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let now = shared.clock.now();
                // `n <= buf.len()` by `read`'s contract.
                resume_at = shared.with_core(|core| {
                    core.handle_input(conn, &buf[..n], now);
                    core.input_paused_until(conn)
                });
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) => {}
            Err(_) => break,
        }
    }
    if !eof_reported {
        let now = shared.clock.now();
        shared.with_core(|core| core.handle_eof(conn, now));
    }
    shared.lock().conns.remove(&conn);
}

fn handle_msg(
    shared: &Shared,
    conn: ConnId,
    stream: &mut Option<Stream>,
    msg: ConnMsg,
    tls: Option<&Arc<rustls::ServerConfig>>,
) -> Flow {
    match msg {
        ConnMsg::Bytes(bytes) => {
            let ok = stream.as_mut().is_some_and(|s| s.write_all(&bytes).is_ok());
            if ok {
                Flow::Continue
            } else {
                let now = shared.clock.now();
                shared.with_core(|core| core.handle_eof(conn, now));
                Flow::Stop
            }
        }
        ConnMsg::UpgradeTls => match stream.take().and_then(|s| upgrade(s, tls)) {
            Some(tls) => {
                *stream = Some(tls);
                let now = shared.clock.now();
                shared.with_core(|core| core.handle_tls_ready(conn, now));
                Flow::Continue
            }
            None => {
                let now = shared.clock.now();
                shared.with_core(|core| core.handle_eof(conn, now));
                Flow::Stop
            }
        },
        ConnMsg::Close => {
            if let Some(s) = stream.as_ref() {
                let _ = s.tcp().shutdown(std::net::Shutdown::Both);
            }
            Flow::Stop
        }
    }
}

/// The TLS server handshake on the plaintext socket, bounded by [`IO_TIMEOUT`].
fn upgrade(stream: Stream, tls: Option<&Arc<rustls::ServerConfig>>) -> Option<Stream> {
    let (Stream::Plain(tcp), Some(config)) = (stream, tls) else {
        return None;
    };
    tcp.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    let conn = rustls::ServerConnection::new(Arc::clone(config)).ok()?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock).ok()?;
    }
    Some(Stream::Tls(Box::new(tls)))
}

/// Executes effects in order, one by one, and reports each result.
fn storage_thread<S: Store>(shared: &Shared, mut store: S, rx: &Receiver<Effect>) {
    while let Ok(effect) = rx.recv() {
        let result = store.apply(&effect.op);
        let now = shared.clock.now();
        shared.with_core(|core| core.handle_effect_done(effect.id, result, now));
    }
}

/// Fires the core's deadlines and keeps its wall clock current.
fn timer_thread(shared: &Shared) {
    while !shared.stop.load(Ordering::SeqCst) {
        let now = shared.clock.now();
        let deadline = shared.lock().server.poll_timeout();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        if deadline.is_some_and(|d| d <= now) {
            shared.with_core(|core| {
                core.set_wall_clock(now, wall);
                core.handle_timeout(now);
            });
        } else {
            shared.lock().server.set_wall_clock(now, wall);
        }
        let sleep = deadline.map_or(TIMER_TICK, |d| {
            Duration::from_millis(d.as_millis().saturating_sub(now.as_millis())).min(TIMER_TICK)
        });
        std::thread::sleep(sleep.max(Duration::from_millis(1)));
    }
}
