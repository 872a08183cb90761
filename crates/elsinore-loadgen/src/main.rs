//! `elsinore-loadgen`: drives one XMPP server on loopback through load scenarios and prints
//! one `RESULT` line per scenario (parsed by `cargo xtask loadbench`).
//!
//! Scenarios, in the order given by `--scenarios`:
//! - `register`: creates the accounts in band (XEP-0077); not measured;
//! - `idle`: N authenticated sessions with initial presence, then nothing (memory);
//! - `logins`: connect + SASL + bind + close, `--concurrency` at a time;
//! - `chat`: N pairs online, each side sends M chat messages to its peer (a window of
//!   messages in flight per sender); latency from a timestamp in the body;
//! - `chat-serial`: the same with one message in flight per sender (each waits for the
//!   delivery of its previous one) and M/2 messages: every message costs the server a read
//!   and a write of its own, as in the conditions of the reference figures;
//! - `private`: XEP-0049 set then get round trips, sequential per session;
//! - `pep`: XEP-0223 private PEP publishes (whitelist, persistent) with owner
//!   notifications (the client advertises `+notify` through entity capabilities);
//! - `crash-write`, `crash-verify`: durability under SIGKILL (`src/durability.rs`, driven
//!   by `cargo xtask crashtest`);
//! - `soak`: many sessions with steady traffic, memory sampled over time (`src/soak.rs`,
//!   driven by `cargo xtask soak`).
//!
//! CPU is the utime+stime of the server's whole process group (`--pgid`), sampled right
//! before and right after each measured phase; memory is the group's VmRSS.
//! Every loop is bounded in count and every phase by `--phase-secs`.

mod durability;
mod procstat;
mod soak;
mod xmpp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use clap::Parser;
use elsinore_xml::Element;
use sha1::Digest as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout_at};

use crate::procstat::Sample;
use crate::xmpp::{LoginSpec, Mech, Session, escape};

/// Drive an XMPP server through load scenarios (plaintext, loopback).
#[derive(Debug, Parser)]
#[command(name = "elsinore-loadgen", version, about)]
struct Cli {
    /// Server c2s address.
    #[arg(long)]
    addr: SocketAddr,
    /// XMPP domain.
    #[arg(long, default_value = "localhost")]
    domain: String,
    /// Process group of the server (its CPU and memory are sampled from /proc).
    #[arg(long)]
    pgid: u32,
    /// Label printed in every result line.
    #[arg(long, default_value = "server")]
    label: String,
    /// Account names are PREFIX0, PREFIX1, ...
    #[arg(long, default_value = "lb")]
    user_prefix: String,
    /// Password of every account.
    #[arg(long, default_value = "loadbench-pw")]
    password: String,
    /// Number of accounts (the register scenario creates them; others use them).
    #[arg(long, default_value_t = 200)]
    accounts: usize,
    /// Scenarios to run, comma-separated, in order.
    #[arg(long, default_value = "register,idle,logins,chat,private,pep")]
    scenarios: String,
    /// SASL mechanism for logins: plain or scram.
    #[arg(long, default_value = "plain")]
    mech: String,
    /// Sessions held in the idle scenario.
    #[arg(long, default_value_t = 200)]
    idle: usize,
    /// Logins in the logins scenario.
    #[arg(long, default_value_t = 500)]
    logins: usize,
    /// Connections opened at once (logins, and logging sessions in).
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Pairs in the chat scenario.
    #[arg(long, default_value_t = 20)]
    pairs: usize,
    /// Messages each chat session sends to its peer.
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Chat messages one sender may have in flight.
    #[arg(long, default_value_t = 8)]
    window: usize,
    /// Sessions in the private and pep scenarios.
    #[arg(long, default_value_t = 20)]
    sessions: usize,
    /// XEP-0049 set+get round trips per session.
    #[arg(long, default_value_t = 100)]
    private_rounds: usize,
    /// PEP publishes per session.
    #[arg(long, default_value_t = 50)]
    publishes: usize,
    /// Time limit of one phase, seconds (the phase stops early and reports what it did).
    #[arg(long, default_value_t = 60)]
    phase_secs: u64,
    /// Time limit of any single wait for the server, seconds.
    #[arg(long, default_value_t = 20)]
    io_secs: u64,
    /// crash-write / crash-verify: the log of sent and acknowledged writes (appended to).
    #[arg(long)]
    ack_log: Option<std::path::PathBuf>,
    /// crash-write / crash-verify: the round number (tags values and resources).
    #[arg(long, default_value_t = 0)]
    round: u64,
    /// soak: seconds of steady traffic.
    #[arg(long, default_value_t = 60)]
    soak_secs: u64,
    /// soak: operations per second over all sessions.
    #[arg(long, default_value_t = 200)]
    rate: u64,
    /// soak: seconds between memory samples.
    #[arg(long, default_value_t = 5)]
    sample_secs: u64,
}

/// Hard caps on the counts a command line may ask for.
const MAX_SESSIONS: usize = 20_000;
const MAX_OPS_PER_SESSION: usize = 1_000_000;

/// The PEP node the scenario publishes to, and our caps advertisement of `+notify` for it.
const PEP_NODE: &str = "urn:xmpp:loadbench:0";
const CAPS_NODE: &str = "https://elsinore.invalid/loadgen";
const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const NS_PUBSUB_EVENT: &str = "http://jabber.org/protocol/pubsub#event";

/// Process-wide time origin for timestamps carried in stanzas.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

fn now_us() -> u64 {
    u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// What one scenario measured.
#[derive(Debug, Default)]
struct Outcome {
    status: &'static str,
    ops: usize,
    errors: usize,
    wall: Duration,
    latencies_us: Vec<u64>,
    cpu_ms: f64,
    /// The kernel's part of `cpu_ms`.
    sys_ms: f64,
    rss_before_kib: u64,
    rss_after_kib: u64,
    note: String,
}

impl Outcome {
    fn print(&self, label: &str, scenario: &str) {
        let (p50, p99) = percentiles(&mut self.latencies_us.clone());
        println!(
            "RESULT server={label} scenario={scenario} status={} ops={} errors={} wall_ms={:.1} \
             p50_us={p50} p99_us={p99} cpu_ms={:.1} sys_ms={:.1} rss_before_kib={} rss_after_kib={} note={}",
            self.status,
            self.ops,
            self.errors,
            self.wall.as_secs_f64() * 1000.0,
            self.cpu_ms,
            self.sys_ms,
            self.rss_before_kib,
            self.rss_after_kib,
            self.note.replace('\n', " ")
        );
    }
}

/// (p50, p99) by nearest rank; zeros when empty.
fn percentiles(v: &mut [u64]) -> (u64, u64) {
    if v.is_empty() {
        return (0, 0);
    }
    v.sort_unstable();
    let rank = |p: usize| {
        v[(v.len() * p)
            .div_ceil(100)
            .saturating_sub(1)
            .min(v.len() - 1)]
    };
    (rank(50), rank(99))
}

/// Shared settings for every scenario.
struct Ctx {
    cli: Cli,
    mech: Mech,
    ticks_per_sec: u64,
}

impl Ctx {
    fn spec(&self, account: usize, resource: String, register: bool) -> LoginSpec {
        LoginSpec {
            addr: self.cli.addr,
            domain: self.cli.domain.clone(),
            user: format!("{}{account}", self.cli.user_prefix),
            password: self.cli.password.clone(),
            resource,
            mech: self.mech,
            register,
            io_timeout: Duration::from_secs(self.cli.io_secs),
        }
    }

    fn io(&self) -> Duration {
        Duration::from_secs(self.cli.io_secs)
    }

    fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.cli.phase_secs)
    }

    fn sample(&self) -> Result<Sample> {
        procstat::sample_group(self.cli.pgid)
    }

    fn cpu_ms(&self, before: &Sample, after: &Sample) -> f64 {
        after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 * 1000.0 / self.ticks_per_sec as f64
    }

    fn sys_ms(&self, before: &Sample, after: &Sample) -> f64 {
        after.sys_ticks.saturating_sub(before.sys_ticks) as f64 * 1000.0 / self.ticks_per_sec as f64
    }
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let mech = match cli.mech.as_str() {
        "plain" => Mech::Plain,
        "scram" => Mech::Scram,
        other => {
            eprintln!("elsinore-loadgen: --mech takes plain or scram, got {other:?}");
            return std::process::ExitCode::from(2);
        }
    };
    let too_many = [
        cli.accounts,
        cli.idle,
        cli.pairs * 2,
        cli.sessions,
        cli.concurrency,
    ]
    .iter()
    .any(|&n| n > MAX_SESSIONS)
        || [
            cli.logins,
            cli.messages,
            cli.private_rounds,
            cli.publishes,
            cli.window,
        ]
        .iter()
        .any(|&n| n > MAX_OPS_PER_SESSION);
    if too_many || cli.concurrency == 0 || cli.window == 0 {
        eprintln!(
            "elsinore-loadgen: counts out of range (sessions <= {MAX_SESSIONS}, ops <= {MAX_OPS_PER_SESSION}, concurrency and window >= 1)"
        );
        return std::process::ExitCode::from(2);
    }
    let _ = epoch();
    let ctx = Arc::new(Ctx {
        cli,
        mech,
        ticks_per_sec: procstat::ticks_per_sec(),
    });
    // One thread: the generator takes one core, the server the other.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("elsinore-loadgen: runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut failed = false;
    let scenarios: Vec<String> = ctx
        .cli
        .scenarios
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    for name in scenarios {
        let result = rt.block_on(run_scenario(Arc::clone(&ctx), &name));
        let outcome = result.unwrap_or_else(|e| {
            failed = true;
            Outcome {
                status: "error",
                note: format!("{e:#}"),
                ..Outcome::default()
            }
        });
        outcome.print(&ctx.cli.label, &name);
        // Let the server finish tearing down the previous phase's sessions.
        rt.block_on(async { sleep(Duration::from_millis(500)).await });
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

async fn run_scenario(ctx: Arc<Ctx>, name: &str) -> Result<Outcome> {
    match name {
        "register" => register(ctx).await,
        "idle" => idle(ctx).await,
        "logins" => logins(ctx).await,
        "chat" => {
            let (window, m) = (ctx.cli.window, ctx.cli.messages);
            chat(ctx, window, m).await
        }
        "chat-serial" => {
            let m = ctx.cli.messages.div_ceil(2);
            chat(ctx, 1, m).await
        }
        "private" => private(ctx).await,
        "pep" => pep(ctx).await,
        "crash-write" => durability::crash_write(ctx).await,
        "crash-verify" => durability::crash_verify(ctx).await,
        "soak" => soak::soak(ctx).await,
        other => bail!("unknown scenario {other:?}"),
    }
}

/// Logs in accounts `offset..offset + n` (resource `{tag}{i}`), `concurrency` at a time, optionally
/// registering them first; sessions in account order.
async fn login_many(
    ctx: &Arc<Ctx>,
    n: usize,
    tag: &str,
    register: bool,
    offset: usize,
) -> Result<Vec<Session>> {
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = ctx.deadline();
    let mut set = JoinSet::new();
    for _ in 0..ctx.cli.concurrency.min(n.max(1)) {
        let ctx = Arc::clone(ctx);
        let next = Arc::clone(&next);
        let tag = tag.to_string();
        set.spawn(async move {
            let mut got = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return Ok::<_, anyhow::Error>(got);
                }
                if Instant::now() > deadline {
                    bail!("logging {n} sessions in took longer than the phase limit");
                }
                let account = (offset + i) % ctx.cli.accounts.max(1);
                let s = xmpp::login(&ctx.spec(account, format!("{tag}{i}"), register))
                    .await
                    .with_context(|| format!("session {i}"))?;
                got.push((i, s));
            }
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(r) = set.join_next().await {
        all.extend(r.context("login task panicked")??);
    }
    all.sort_by_key(|(i, _)| *i);
    Ok(all.into_iter().map(|(_, s)| s).collect())
}

/// Closes sessions concurrently (each close is bounded by the I/O timeout).
async fn close_all(sessions: Vec<Session>) {
    let mut set = JoinSet::new();
    for s in sessions {
        set.spawn(s.close());
    }
    while set.join_next().await.is_some() {}
}

async fn register(ctx: Arc<Ctx>) -> Result<Outcome> {
    let t0 = Instant::now();
    let n = ctx.cli.accounts;
    let sessions = login_many(&ctx, n, "reg", true, 0).await?;
    let wall = t0.elapsed();
    close_all(sessions).await;
    Ok(Outcome {
        status: "ok",
        ops: n,
        wall,
        note: "accounts created in band (not measured)".into(),
        ..Outcome::default()
    })
}

async fn idle(ctx: Arc<Ctx>) -> Result<Outcome> {
    let n = ctx.cli.idle;
    let half = n / 2;
    let before = ctx.sample()?;
    let t0 = Instant::now();
    // Two steps, so the marginal cost of a session can be told apart from one-off growth
    // (code loaded, pools and tables sized on first use).
    let mut sessions = login_many(&ctx, half, "idle", false, 0).await?;
    for s in &mut sessions {
        s.send(b"<presence/>").await?;
    }
    sleep(Duration::from_secs(2)).await;
    let mid = ctx.sample()?;
    let mut rest = login_many(&ctx, n - half, "idle", false, half).await?;
    for s in &mut rest {
        s.send(b"<presence/>").await?;
    }
    let wall = t0.elapsed();
    sessions.extend(rest);
    // Let the server settle (presence processing, buffers) before reading its memory.
    sleep(Duration::from_secs(2)).await;
    let after = ctx.sample()?;
    close_all(sessions).await;
    let per_session = (after.rss_kib as f64 - before.rss_kib as f64) * 1024.0 / n.max(1) as f64;
    let marginal = (after.rss_kib as f64 - mid.rss_kib as f64) * 1024.0 / (n - half).max(1) as f64;
    Ok(Outcome {
        status: "ok",
        ops: n,
        wall,
        cpu_ms: ctx.cpu_ms(&before, &after),
        sys_ms: ctx.sys_ms(&before, &after),
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
        note: format!(
            "bytes_per_session={per_session:.0} marginal_bytes_per_session={marginal:.0} \
             rss_mid_kib={} procs={}",
            mid.rss_kib, after.procs
        ),
        ..Outcome::default()
    })
}

async fn logins(ctx: Arc<Ctx>) -> Result<Outcome> {
    let n = ctx.cli.logins;
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = ctx.deadline();
    let before = ctx.sample()?;
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for _ in 0..ctx.cli.concurrency.min(n.max(1)) {
        let ctx = Arc::clone(&ctx);
        let next = Arc::clone(&next);
        set.spawn(async move {
            let mut lat = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            while Instant::now() < deadline {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let t = Instant::now();
                match xmpp::login(&ctx.spec(i % ctx.cli.accounts.max(1), format!("l{i}"), false))
                    .await
                {
                    Ok(s) => {
                        lat.push(t.elapsed().as_micros() as u64);
                        s.close().await;
                    }
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| format!("{e:#}"));
                    }
                }
            }
            (lat, errors, first_error)
        });
    }
    let mut out = Outcome {
        status: "ok",
        ..Outcome::default()
    };
    let mut first_error = None;
    while let Some(r) = set.join_next().await {
        let (lat, errors, fe) = r.context("login task panicked")?;
        out.ops += lat.len();
        out.latencies_us.extend(lat);
        out.errors += errors;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    out.wall = t0.elapsed();
    let after = ctx.sample()?;
    out.cpu_ms = ctx.cpu_ms(&before, &after);
    out.sys_ms = ctx.sys_ms(&before, &after);
    out.note = format!("mech={}", ctx.cli.mech);
    if let Some(e) = first_error {
        out.note.push_str(&format!(" first_error={e}"));
    }
    Ok(out)
}

async fn chat(ctx: Arc<Ctx>, window: usize, m: usize) -> Result<Outcome> {
    let pairs = ctx.cli.pairs;
    let sessions = login_many(&ctx, pairs * 2, "chat", false, 0).await?;
    let jids: Vec<String> = sessions.iter().map(|s| s.jid.clone()).collect();
    let peer = |i: usize| i ^ 1;
    let sems: Vec<Arc<Semaphore>> = (0..sessions.len())
        .map(|_| Arc::new(Semaphore::new(window)))
        .collect();
    let mut halves = Vec::with_capacity(sessions.len());
    for mut s in sessions {
        s.send(b"<presence/>").await?;
        halves.push(s);
    }
    sleep(Duration::from_millis(500)).await;
    let deadline = ctx.deadline();
    let io = ctx.io();
    let before = ctx.sample()?;
    let t0 = Instant::now();
    let mut readers = JoinSet::new();
    let mut writers = JoinSet::new();
    for (i, s) in halves.into_iter().enumerate() {
        let Session {
            mut rd,
            mut wr,
            jid,
        } = s;
        let to = escape(&jids[peer(i)]);
        let my_sem = Arc::clone(&sems[i]);
        let peer_sem = Arc::clone(&sems[peer(i)]);
        writers.spawn(async move {
            for k in 0..m {
                let permit = timeout_at(deadline.into(), my_sem.acquire()).await;
                match permit {
                    Ok(Ok(p)) => p.forget(),
                    _ => break,
                }
                let msg = format!(
                    "<message to='{to}' type='chat' id='m{k}'><body>t{}</body></message>",
                    now_us()
                );
                if xmpp::send(&mut wr, msg.as_bytes(), io).await.is_err() {
                    break;
                }
            }
            (i, wr)
        });
        readers.spawn(async move {
            let mut lat = Vec::with_capacity(m);
            let mut last = t0;
            let mut err = None;
            // Each stanza read is bounded by the I/O timeout, the whole loop by the phase.
            while lat.len() < m && Instant::now() < deadline {
                let el = match timeout_at(deadline.into(), rd.element()).await {
                    Ok(Ok(el)) => el,
                    Ok(Err(e)) => {
                        err = Some(format!("{e:#}"));
                        break;
                    }
                    Err(_) => break,
                };
                if let Some(sent) = body_stamp(&el, "message") {
                    lat.push(now_us().saturating_sub(sent));
                    last = Instant::now();
                    peer_sem.add_permits(1);
                }
            }
            (i, rd, jid, lat, last, err)
        });
    }
    let mut out = Outcome {
        status: "ok",
        ..Outcome::default()
    };
    let mut last = t0;
    let mut rds = Vec::new();
    let mut first_error = None;
    while let Some(r) = readers.join_next().await {
        let (i, rd, jid, lat, l, err) = r.context("reader panicked")?;
        out.ops += lat.len();
        out.latencies_us.extend(lat);
        last = last.max(l);
        if err.is_some() {
            out.errors += 1;
            first_error = first_error.or(err);
        }
        rds.push((i, rd, jid));
    }
    let after = ctx.sample()?;
    out.wall = last.duration_since(t0);
    out.cpu_ms = ctx.cpu_ms(&before, &after);
    out.sys_ms = ctx.sys_ms(&before, &after);
    // Writers are done or blocked on permits that will never come: stop them.
    for s in &sems {
        s.close();
    }
    let mut wrs = Vec::new();
    while let Some(r) = writers.join_next().await {
        wrs.push(r.context("writer panicked")?);
    }
    let expected = pairs * 2 * m;
    out.note = format!("expected={expected}");
    if out.ops < expected {
        out.errors += expected - out.ops;
        out.note
            .push_str(" (some messages not delivered within the phase limit)");
    }
    if let Some(e) = first_error {
        out.note.push_str(&format!(" first_error={e}"));
    }
    rds.sort_by_key(|(i, ..)| *i);
    wrs.sort_by_key(|(i, _)| *i);
    let sessions = rds
        .into_iter()
        .zip(wrs)
        .map(|((_, rd, jid), (_, wr))| Session { rd, wr, jid })
        .collect();
    close_all(sessions).await;
    Ok(out)
}

/// The microsecond stamp `t<digits>` in a `<message><body>` or, for PEP notifications,
/// in the published `<entry>`.
fn body_stamp(el: &Element, kind: &str) -> Option<u64> {
    if el.name != "message" {
        return None;
    }
    let text = match kind {
        "message" => el.elements().find(|e| e.name == "body")?.text(),
        _ => el
            .get_child("event", NS_PUBSUB_EVENT)?
            .elements()
            .find(|e| e.name == "items" && e.attr("node") == Some(PEP_NODE))?
            .elements()
            .find(|e| e.name == "item")?
            .elements()
            .next()?
            .text(),
    };
    text.strip_prefix('t')?.parse().ok()
}

async fn private(ctx: Arc<Ctx>) -> Result<Outcome> {
    let n = ctx.cli.sessions;
    let rounds = ctx.cli.private_rounds;
    let sessions = login_many(&ctx, n, "priv", false, 0).await?;
    let deadline = ctx.deadline();
    let before = ctx.sample()?;
    let t0 = Instant::now();
    let mut set = JoinSet::new();
    for mut s in sessions {
        set.spawn(async move {
            let mut lat = Vec::with_capacity(rounds);
            let mut err = None;
            for k in 0..rounds {
                if Instant::now() > deadline {
                    break;
                }
                let t = Instant::now();
                match private_round(&mut s, k).await {
                    Ok(()) => lat.push(t.elapsed().as_micros() as u64),
                    Err(e) => {
                        err = Some(format!("{e:#}"));
                        break;
                    }
                }
            }
            (s, lat, err, Instant::now())
        });
    }
    let mut out = Outcome {
        status: "ok",
        ..Outcome::default()
    };
    let mut sessions = Vec::new();
    let mut first_error = None;
    let mut last = t0;
    while let Some(r) = set.join_next().await {
        let (s, lat, err, l) = r.context("private task panicked")?;
        out.ops += lat.len();
        out.latencies_us.extend(lat);
        last = last.max(l);
        if err.is_some() {
            out.errors += 1;
            first_error = first_error.or(err);
        }
        sessions.push(s);
    }
    let after = ctx.sample()?;
    out.wall = last.duration_since(t0);
    out.cpu_ms = ctx.cpu_ms(&before, &after);
    out.sys_ms = ctx.sys_ms(&before, &after);
    out.note = format!("expected={} (one op = set + get)", n * rounds);
    if let Some(e) = first_error {
        out.note.push_str(&format!(" first_error={e}"));
    }
    close_all(sessions).await;
    Ok(out)
}

/// One XEP-0049 set followed by a get that must return what was set.
async fn private_round(s: &mut Session, k: usize) -> Result<()> {
    let value = format!("value-{k}-{}", now_us());
    let set = format!(
        "<iq type='set' id='s{k}'><query xmlns='jabber:iq:private'>\
         <lb xmlns='urn:xmpp:loadbench:private'>{value}</lb></query></iq>"
    );
    s.send(set.as_bytes()).await?;
    let reply = s.rd.iq_reply(&format!("s{k}"), |_| {}).await?;
    if reply.attr("type") != Some("result") {
        bail!("private set refused: {}", xmpp::brief(&reply));
    }
    let get = format!(
        "<iq type='get' id='g{k}'><query xmlns='jabber:iq:private'>\
         <lb xmlns='urn:xmpp:loadbench:private'/></query></iq>"
    );
    s.send(get.as_bytes()).await?;
    let reply = s.rd.iq_reply(&format!("g{k}"), |_| {}).await?;
    let got = reply
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("lb", "urn:xmpp:loadbench:private"))
        .map(Element::text);
    if got.as_deref() != Some(value.as_str()) {
        bail!("private get returned {got:?}, expected {value:?}");
    }
    Ok(())
}

/// XEP-0115 verification string of our disco#info answer, hashed.
fn caps_ver() -> String {
    let s = format!("client/pc//loadgen<{NS_DISCO_INFO}<{PEP_NODE}+notify<");
    base64::engine::general_purpose::STANDARD.encode(sha1::Sha1::digest(s.as_bytes()))
}

fn disco_answer(q: &Element) -> Option<String> {
    let query = q.get_child("query", NS_DISCO_INFO)?;
    if q.name != "iq" || q.attr("type") != Some("get") {
        return None;
    }
    let to = q
        .attr("from")
        .map(|f| format!(" to='{}'", escape(f)))
        .unwrap_or_default();
    let node = query
        .attr("node")
        .map(|n| format!(" node='{}'", escape(n)))
        .unwrap_or_default();
    Some(format!(
        "<iq type='result' id='{}'{to}><query xmlns='{NS_DISCO_INFO}'{node}>\
         <identity category='client' type='pc' name='loadgen'/>\
         <feature var='{NS_DISCO_INFO}'/><feature var='{PEP_NODE}+notify'/></query></iq>",
        escape(q.attr("id").unwrap_or(""))
    ))
}

/// What one PEP session did.
struct PepRun {
    session: Session,
    acks: Vec<u64>,
    notify_lat: Vec<u64>,
    last_ack: Instant,
    unsupported: Option<String>,
    err: Option<String>,
}

async fn pep(ctx: Arc<Ctx>) -> Result<Outcome> {
    let n = ctx.cli.sessions;
    let publishes = ctx.cli.publishes;
    let mut sessions = login_many(&ctx, n, "pep", false, 0).await?;
    let presence = format!(
        "<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='{CAPS_NODE}' \
         ver='{}'/></presence>",
        caps_ver()
    );
    for s in &mut sessions {
        s.send(presence.as_bytes()).await?;
    }
    // Until start_at, sessions only answer the server's caps queries.
    let settle_until = Instant::now() + Duration::from_millis(1500);
    let deadline = settle_until + Duration::from_secs(ctx.cli.phase_secs);
    // Node creation (the first publish of each account) runs one at a time before the
    // measured phase: ejabberd 23.01 answers item-not-found to most of 50 concurrent
    // first publishes, and steady-state publishing is what the scenario measures.
    let create = Arc::new(tokio::sync::Mutex::new(()));
    let ready = Arc::new(tokio::sync::Barrier::new(n + 1));
    let go = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut set = JoinSet::new();
    for s in sessions {
        let gate = PepGate {
            create: Arc::clone(&create),
            ready: Arc::clone(&ready),
            go: Arc::clone(&go),
            settle_until,
            deadline,
        };
        set.spawn(pep_session(s, publishes, gate));
    }
    ready.wait().await;
    let before = ctx.sample()?;
    let start_at = Instant::now();
    go.wait().await;
    let mut out = Outcome {
        status: "ok",
        ..Outcome::default()
    };
    let mut runs = Vec::new();
    while let Some(r) = set.join_next().await {
        runs.push(r.context("pep task panicked")?);
    }
    let after = ctx.sample()?;
    out.cpu_ms = ctx.cpu_ms(&before, &after);
    out.sys_ms = ctx.sys_ms(&before, &after);
    let mut notify_lat = Vec::new();
    let mut last = start_at;
    let mut unsupported = None;
    let mut refused = 0usize;
    let mut first_error = None;
    let mut done = Vec::new();
    for r in runs {
        out.ops += r.acks.len();
        out.latencies_us.extend(r.acks);
        notify_lat.extend(r.notify_lat);
        last = last.max(r.last_ack);
        if r.unsupported.is_some() {
            // Refused at the first publish: n/a if every session was refused, else errors.
            refused += 1;
            unsupported = unsupported.or(r.unsupported);
        }
        if r.err.is_some() {
            out.errors += 1;
            first_error = first_error.or(r.err);
        }
        done.push(r.session);
    }
    out.wall = last.duration_since(start_at);
    let notes = notify_lat.len();
    let (n50, n99) = percentiles(&mut notify_lat);
    out.note = format!(
        "expected={} notifications={notes} notify_p50_us={n50} notify_p99_us={n99}",
        n * publishes
    );
    if let Some(why) = unsupported {
        if out.ops == 0 {
            out.status = "na";
            out.note = format!("server lacks PEP publish: {why}");
        } else {
            out.errors += refused;
            out.note.push_str(&format!(
                " refused_first_publish={refused} first_refusal={why}"
            ));
        }
    }
    if let Some(e) = first_error {
        out.note.push_str(&format!(" first_error={e}"));
    }
    close_all(done).await;
    Ok(out)
}

/// How a PEP session lines up with the others around the measured phase.
struct PepGate {
    create: Arc<tokio::sync::Mutex<()>>,
    ready: Arc<tokio::sync::Barrier>,
    go: Arc<tokio::sync::Barrier>,
    settle_until: Instant,
    deadline: Instant,
}

/// The XEP-0223 publish of item `current` with a timestamp, as iq `id`.
fn pep_publish(id: &str) -> String {
    format!(
        "<iq type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
         <publish node='{PEP_NODE}'><item id='current'><entry xmlns='{PEP_NODE}'>t{}</entry>\
         </item></publish><publish-options><x xmlns='jabber:x:data' type='submit'>\
         <field var='FORM_TYPE' type='hidden'>\
         <value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
         <field var='pubsub#persist_items'><value>true</value></field>\
         <field var='pubsub#access_model'><value>whitelist</value></field>\
         </x></publish-options></pubsub></iq>",
        now_us()
    )
}

/// Before the measured phase: create the node (one session at a time), answer caps
/// queries until `settle_until`. Returns the refusal of the first publish, if any.
async fn pep_prepare(s: &mut Session, gate: &PepGate) -> Result<Option<String>> {
    let refused = {
        let _one_at_a_time = gate.create.lock().await;
        s.send(pep_publish("create").as_bytes()).await?;
        let mut answers = Vec::new();
        let reply =
            s.rd.iq_reply("create", |el| answers.extend(disco_answer(el)))
                .await?;
        for a in answers {
            s.send(a.as_bytes()).await?;
        }
        (reply.attr("type") != Some("result")).then(|| xmpp::brief(&reply))
    };
    while let Ok(r) = timeout_at(gate.settle_until.into(), s.rd.element()).await {
        if let Some(a) = disco_answer(&r?) {
            s.send(a.as_bytes()).await?;
        }
    }
    Ok(refused)
}

async fn pep_session(mut s: Session, publishes: usize, gate: PepGate) -> PepRun {
    let prepared = pep_prepare(&mut s, &gate).await;
    // Every session reaches both barriers, failed or not, so none waits forever.
    gate.ready.wait().await;
    gate.go.wait().await;
    let deadline = gate.deadline;
    let mut run = PepRun {
        acks: Vec::with_capacity(publishes),
        notify_lat: Vec::with_capacity(publishes),
        last_ack: Instant::now(),
        unsupported: None,
        err: None,
        session: s,
    };
    match prepared {
        Ok(None) => {}
        Ok(Some(refusal)) => {
            run.unsupported = Some(refusal);
            return run;
        }
        Err(e) => {
            run.err = Some(format!("{e:#}"));
            return run;
        }
    }
    let mut answers: Vec<String> = Vec::new();
    let mut notify_lat: Vec<u64> = Vec::new();
    let mut s = run.session;
    for k in 0..publishes {
        if Instant::now() > deadline {
            break;
        }
        let t = Instant::now();
        let iq = pep_publish(&format!("p{k}"));
        let reply = match s.send(iq.as_bytes()).await {
            Ok(()) => {
                s.rd.iq_reply(&format!("p{k}"), |el| {
                    if let Some(a) = disco_answer(el) {
                        answers.push(a);
                    } else if let Some(sent) = body_stamp(el, "pep") {
                        notify_lat.push(now_us().saturating_sub(sent));
                    }
                })
                .await
            }
            Err(e) => Err(e),
        };
        for a in answers.drain(..) {
            let _ = s.send(a.as_bytes()).await;
        }
        match reply {
            Ok(r) if r.attr("type") == Some("result") => {
                run.acks.push(t.elapsed().as_micros() as u64);
                run.last_ack = Instant::now();
            }
            Ok(r) => {
                if k == 0 {
                    run.unsupported = Some(xmpp::brief(&r));
                } else {
                    run.err = Some(format!("publish {k} refused: {}", xmpp::brief(&r)));
                }
                break;
            }
            Err(e) => {
                run.err = Some(format!("{e:#}"));
                break;
            }
        }
    }
    // Collect the notifications still on their way (bounded wait).
    let wait_until = (Instant::now() + Duration::from_secs(2)).min(deadline);
    while notify_lat.len() < run.acks.len() && run.err.is_none() {
        match timeout_at(wait_until.into(), s.rd.element()).await {
            Ok(Ok(el)) => {
                if let Some(a) = disco_answer(&el) {
                    let _ = s.send(a.as_bytes()).await;
                } else if let Some(sent) = body_stamp(&el, "pep") {
                    notify_lat.push(now_us().saturating_sub(sent));
                }
            }
            _ => break,
        }
    }
    run.notify_lat = notify_lat;
    run.session = s;
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_nearest_rank() {
        let mut v: Vec<u64> = (1..=100).rev().collect();
        assert_eq!(percentiles(&mut v), (50, 99));
        assert_eq!(percentiles(&mut [7]), (7, 7));
        assert_eq!(percentiles(&mut []), (0, 0));
    }

    #[test]
    fn caps_ver_matches_xep_0115_algorithm() {
        // SHA-1 of "client/pc//loadgen<http://jabber.org/protocol/disco#info<
        // urn:xmpp:loadbench:0+notify<" (XEP-0115 §5.1), computed independently with Python.
        assert_eq!(caps_ver(), "SJNpxHdnFrinrhLD/cTvGQX2JI8=");
    }

    #[test]
    fn stamps_from_message_and_notification() {
        let msg = Element::parse(b"<message xmlns='jabber:client'><body>t12345</body></message>")
            .expect("literal is well formed");
        assert_eq!(body_stamp(&msg, "message"), Some(12345));
        let ev = Element::parse(
            b"<message xmlns='jabber:client'><event xmlns='http://jabber.org/protocol/pubsub#event'>\
              <items node='urn:xmpp:loadbench:0'><item id='current'>\
              <entry xmlns='urn:xmpp:loadbench:0'>t99</entry></item></items></event></message>",
        )
        .expect("literal is well formed");
        assert_eq!(body_stamp(&ev, "pep"), Some(99));
        assert_eq!(body_stamp(&ev, "message"), None);
    }

    #[test]
    fn disco_answer_echoes_node_and_id() {
        let q = Element::parse(
            b"<iq xmlns='jabber:client' type='get' id='d1' from='a@b'>\
              <query xmlns='http://jabber.org/protocol/disco#info' node='n#v'/></iq>",
        )
        .expect("literal is well formed");
        let a = disco_answer(&q).expect("it is a disco#info get");
        assert!(a.contains("id='d1'") && a.contains("to='a@b'") && a.contains("node='n#v'"));
        assert!(a.contains("urn:xmpp:loadbench:0+notify"));
    }
}
