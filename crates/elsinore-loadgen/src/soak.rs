//! `soak` scenario (driven by `cargo xtask soak`): `--sessions` sessions (one per account)
//! stay online for `--soak-secs` with steady traffic: together they do `--rate` operations
//! per second, alternating a chat message to the next session and a XEP-0049 set that waits
//! for its result. The server's resident memory (its process group, from /proc) is sampled
//! every `--sample-secs` and printed as a `SOAK` line; the result compares the mean of the
//! last third of the samples with the mean of the middle third.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinSet;
use tokio::time::{sleep, sleep_until};

use crate::xmpp::{self, Session};
use crate::{Ctx, Outcome, login_many};

#[derive(Default)]
struct Counters {
    ops: AtomicU64,
    errors: AtomicU64,
    received: AtomicU64,
}

pub async fn soak(ctx: Arc<Ctx>) -> Result<Outcome> {
    let n = ctx.cli.sessions.max(2);
    let secs = ctx.cli.soak_secs;
    let t_login = Instant::now();
    let sessions = login_many(&ctx, n, "soak", false, 0).await?;
    println!(
        "SOAK logged_in={} in {:.1}s",
        sessions.len(),
        t_login.elapsed().as_secs_f64()
    );
    let counters = Arc::new(Counters::default());
    let start = tokio::time::Instant::now();
    let end = start + Duration::from_secs(secs);
    // Each session does one op every `period`, offset so the load is even over time.
    let rate = ctx.cli.rate.max(1) as f64;
    let period = Duration::from_secs_f64(n as f64 / rate);
    let mut set = JoinSet::new();
    for (i, s) in sessions.into_iter().enumerate() {
        let offset = period.mul_f64(i as f64 / n as f64);
        let peer = format!("{}{}@{}", ctx.cli.user_prefix, (i + 1) % n, ctx.cli.domain);
        let counters = Arc::clone(&counters);
        set.spawn(session_loop(
            s,
            i,
            peer,
            start + offset,
            period,
            end,
            counters,
        ));
    }
    let before = ctx.sample()?;
    let mut samples: Vec<(f64, u64)> = Vec::new();
    let sample_every = Duration::from_secs(ctx.cli.sample_secs.max(1));
    let mut next = start;
    while next <= end {
        sleep_until(next).await;
        let s = ctx.sample()?;
        let t = start.elapsed().as_secs_f64();
        samples.push((t, s.rss_kib));
        println!(
            "SOAK t={t:.0}s rss_kib={} ops={} received={} errors={}",
            s.rss_kib,
            counters.ops.load(Ordering::Relaxed),
            counters.received.load(Ordering::Relaxed),
            counters.errors.load(Ordering::Relaxed)
        );
        next += sample_every;
    }
    let mut alive = 0usize;
    let mut sessions = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Some(s) = r.context("soak task panicked")? {
            alive += 1;
            sessions.push(s);
        }
    }
    let after = ctx.sample()?;
    crate::close_all(sessions).await;
    let third = samples.len() / 3;
    let mean = |v: &[(f64, u64)]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().map(|(_, r)| *r as f64).sum::<f64>() / v.len() as f64
        }
    };
    let mid = mean(&samples[third..(2 * third).min(samples.len())]);
    let last = mean(&samples[(samples.len() - third).min(samples.len())..]);
    let growth = if mid > 0.0 {
        (last - mid) / mid * 100.0
    } else {
        0.0
    };
    // Flat: the last third is within 5% of the middle third.
    let flat = third > 0 && growth.abs() <= 5.0;
    let errors = counters.errors.load(Ordering::Relaxed);
    Ok(Outcome {
        status: if alive == n && errors == 0 {
            "ok"
        } else {
            "errors"
        },
        ops: counters.ops.load(Ordering::Relaxed) as usize,
        errors: errors as usize + (n - alive),
        wall: start.elapsed(),
        cpu_ms: ctx.cpu_ms(&before, &after),
        sys_ms: ctx.sys_ms(&before, &after),
        rss_before_kib: before.rss_kib,
        rss_after_kib: after.rss_kib,
        note: format!(
            "sessions={n} alive_at_end={alive} received={} samples={} \
             rss_mid_third_kib={mid:.0} rss_last_third_kib={last:.0} growth_pct={growth:.2} flat={}",
            counters.received.load(Ordering::Relaxed),
            samples.len(),
            if flat { "yes" } else { "no" }
        ),
        ..Outcome::default()
    })
}

/// One session's steady traffic; returns the session if it is still usable at the end.
async fn session_loop(
    mut s: Session,
    i: usize,
    peer: String,
    first: tokio::time::Instant,
    period: Duration,
    end: tokio::time::Instant,
    counters: Arc<Counters>,
) -> Option<Session> {
    let mut at = first;
    let mut k = 0u64;
    if s.send(b"<presence/>").await.is_err() {
        counters.errors.fetch_add(1, Ordering::Relaxed);
        return None;
    }
    while at < end {
        sleep_until(at).await;
        at += period;
        k += 1;
        let r = if k.is_multiple_of(2) {
            let msg = format!(
                "<message type='chat' to='{peer}' id='s{k}'><body>soak {i} {k}</body></message>"
            );
            s.send(msg.as_bytes()).await
        } else {
            private_set(&mut s, i, k, &counters).await
        };
        match r {
            Ok(()) => {
                counters.ops.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                eprintln!("soak session {i}: {e:#}");
                counters.errors.fetch_add(1, Ordering::Relaxed);
                return None;
            }
        }
    }
    // Anything still queued for us is read by close().
    sleep(Duration::from_millis(10)).await;
    Some(s)
}

async fn private_set(s: &mut Session, i: usize, k: u64, counters: &Counters) -> Result<()> {
    let id = format!("p{k}");
    // The value is overwritten each time: stored data stays the same size.
    s.send(
        format!(
            "<iq type='set' id='{id}'><query xmlns='jabber:iq:private'>\
             <soak xmlns='urn:elsinore:soak'>{i}-{k}</soak></query></iq>"
        )
        .as_bytes(),
    )
    .await?;
    let reply =
        s.rd.iq_reply(&id, |el| {
            if el.name == "message" {
                counters.received.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await?;
    if reply.attr("type") != Some("result") {
        anyhow::bail!("private set refused: {}", xmpp::brief(&reply));
    }
    Ok(())
}
