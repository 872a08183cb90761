//! The server core routing one chat message between two established sessions, no IO:
//! the sender's bytes go into `Server::handle_input`, the recipient's bytes come out of
//! `Server::poll_transmit`. Everything a deployment adds on top (sockets, TLS, the store
//! thread) is left out, so this is the floor of the per-message cost of the load benchmark.
//!
//! `cargo bench -p elsinore-benches --bench routing -- --warm-up-time 1 --measurement-time 3`

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use elsinore_jid::{BareJid, Jid};
use elsinore_server::{ConnId, Instant, Server, ServerConfig, ServerEvent, accounts};
use elsinore_storage::{EffectResult, MemoryStore, Store};
use elsinore_stream::{ClientConfig, Connection, Limits, TlsPolicy};

const T0: Instant = Instant::from_millis(1_000);
const PASSWORD: &str = "routing-bench-pw";

/// A server with two logged-in, available sessions, driven to quiescence.
struct Pair {
    server: Server,
    alice: ConnId,
    bob: ConnId,
}

fn settle(server: &mut Server, store: &mut MemoryStore, clients: &mut HashMap<ConnId, Connection>) {
    for _ in 0..1000 {
        let mut progress = false;
        for (id, c) in clients.iter_mut() {
            let out = c.take_transmit();
            if !out.is_empty() {
                progress = true;
                server.handle_input(*id, &out, T0);
            }
        }
        while let Some((id, bytes)) = server.poll_transmit() {
            progress = true;
            if let Some(c) = clients.get_mut(&id) {
                c.handle_input(&bytes, T0);
            }
        }
        while let Some(ev) = server.poll_event() {
            progress = true;
            if let ServerEvent::Close(id) = ev {
                panic!("bench setup: connection {id:?} closed");
            }
        }
        while let Some(effect) = server.poll_effect() {
            progress = true;
            let r = store.apply(&effect.op);
            server.handle_effect_done(effect.id, r, T0);
        }
        for c in clients.values_mut() {
            while c.poll_event().is_some() {
                progress = true;
            }
        }
        if !progress {
            return;
        }
    }
    panic!("bench setup did not settle");
}

fn pair() -> Pair {
    let mut cfg = ServerConfig::new("localhost");
    cfg.tls_available = false;
    cfg.allow_plaintext_auth = true;
    cfg.scram_iterations = 4096;
    // The clock never moves here: with the default stanza rate (a burst of 500) alice
    // would be paused after 500 messages and every later one would only be held.
    cfg.limits.stanza_rate = None;
    cfg.limits.byte_rate = None;
    let mut server = Server::new(cfg, [3; 32], T0);
    let mut store = MemoryStore::default();
    let mut clients = HashMap::new();
    let mut ids = Vec::new();
    for (i, user) in ["alice", "bob"].into_iter().enumerate() {
        let bare = BareJid::parse(&format!("{user}@localhost")).expect("valid JID");
        let op = accounts::create_account_op(&bare, PASSWORD, [5; 32], 4096).expect("op");
        assert!(matches!(store.apply(&op), EffectResult::Done));
        let id = server.accept(T0);
        let client = Connection::new_client(
            ClientConfig {
                jid: Jid::parse(&format!("{user}@localhost/bench")).expect("valid JID"),
                password: PASSWORD.into(),
                tls: TlsPolicy::Disabled,
            },
            Limits::default(),
            [i as u8 + 1; 32],
            T0,
        );
        clients.insert(id, client);
        ids.push(id);
    }
    settle(&mut server, &mut store, &mut clients);
    for id in &ids {
        server.handle_input(*id, b"<presence/>", T0);
    }
    settle(&mut server, &mut store, &mut clients);
    assert_eq!(server.session_count(), 2, "both sessions established");
    Pair {
        server,
        alice: ids[0],
        bob: ids[1],
    }
}

/// Route one message; returns the bytes that went to bob (0 if it went elsewhere).
/// Not inlined: callgrind's `--toggle-collect=*route` then counts exactly this.
#[inline(never)]
fn route(p: &mut Pair, msg: &[u8]) -> usize {
    p.server.handle_input(p.alice, msg, T0);
    let mut n = 0;
    while let Some((id, bytes)) = p.server.poll_transmit() {
        if id == p.bob {
            n += bytes.len();
        }
    }
    n
}

/// A chat message to bob's full JID, as a client would send it.
const MSG: &[u8] = b"<message to='bob@localhost/bench' type='chat' id='r1'><body>Wherefore art \
    thou, Romeo? Deny thy father &amp; refuse thy name.</body>\
    <active xmlns='http://jabber.org/protocol/chatstates'/></message>";
/// A chat message to bob's bare JID (delivered to his available resource).
const BARE: &[u8] =
    b"<message to='bob@localhost' type='chat' id='r2'><body>to the bare JID</body></message>";

fn bench(c: &mut Criterion) {
    let mut p = pair();
    // Not a timing assertion: a message that is not delivered would measure an error path.
    assert!(route(&mut p, MSG) > 0, "the message reaches bob");
    assert!(
        route(&mut p, BARE) > 0,
        "a message to the bare JID reaches bob"
    );

    let mut g = c.benchmark_group("core_routing");
    g.throughput(Throughput::Elements(1));
    g.bench_function("chat_to_full_jid", |b| {
        b.iter(|| route(&mut p, black_box(MSG)))
    });
    g.bench_function("chat_to_bare_jid", |b| {
        b.iter(|| route(&mut p, black_box(BARE)))
    });
    g.finish();
    // Still delivering after millions of messages: nothing above measured a dead end.
    assert!(route(&mut p, MSG) > 0, "the last message reaches bob");
    assert!(
        p.server.poll_effect().is_none(),
        "online delivery needs no storage"
    );
}

criterion_group!(benches, bench);

fn main() {
    // Instruction-count mode for callgrind (repeatable on a noisy machine):
    // ELSINORE_ROUTING_COUNT=<full|bare|setup> routes 1000 messages and exits (`setup`
    // only logs the two sessions in, to subtract it).
    if let Ok(which) = std::env::var("ELSINORE_ROUTING_COUNT") {
        let mut p = pair();
        let msg = if which == "bare" { BARE } else { MSG };
        if which != "setup" {
            for _ in 0..1000 {
                // Every one delivered, or the count would include cheap dead ends.
                assert!(black_box(route(&mut p, black_box(msg))) > 0, "delivered");
            }
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
