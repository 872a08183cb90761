//! Crash-test scenarios (driven by `cargo xtask crashtest`):
//! - `crash-write`: `--sessions` writers (accounts `0..n`) store XEP-0049 private XML, add
//!   roster items and leave offline messages for their mailbox account (`n + w`), until the
//!   server dies or the phase ends. Every write is logged to `--ack-log` when sent (`PS`) and
//!   when acknowledged (`PA`, `RA`, `MA`);
//! - `crash-verify`: reads the whole log (every round so far) and checks, through the
//!   protocol, that every acknowledged write is there with its exact content.
//!
//! An acknowledgement is the iq result of a private or roster set. A message has no
//! acknowledgement of its own: it counts as acknowledged when [`BARRIER`] private sets sent
//! after it on the same stream were all acknowledged and no bounce came back. The server
//! stores an offline message with a chain of three storage effects (account lookup, queue
//! read, queue write) and runs effects of one stream in order, so by then its write is
//! durable or has bounced.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use elsinore_xml::Element;
use tokio::task::JoinSet;
use tokio::time::sleep;

use crate::xmpp::{self, Session};
use crate::{Ctx, Outcome};

/// Private XML namespaces written (one key each per account).
const NAMESPACES: usize = 4;
/// Acknowledged private sets after a message that make it count as acknowledged.
const BARRIER: usize = 4;
const NS_PRIVATE: &str = "jabber:iq:private";
const NS_ROSTER: &str = "jabber:iq:roster";

fn ns(k: usize) -> String {
    format!("urn:elsinore:crashtest:{k}")
}

/// Append-only log of what was sent and acknowledged, one line per event, written at once.
#[derive(Clone)]
struct AckLog(Arc<Mutex<File>>);

impl AckLog {
    fn open(path: &Path) -> Result<Self> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        Ok(AckLog(Arc::new(Mutex::new(f))))
    }

    fn line(&self, s: &str) -> Result<()> {
        let mut f = self
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("log lock poisoned"))?;
        f.write_all(format!("{s}\n").as_bytes())
            .context("write ack log")
    }
}

#[derive(Default)]
struct WriterCounts {
    private: usize,
    roster: usize,
    messages: usize,
    bounced: usize,
    end: String,
}

pub async fn crash_write(ctx: Arc<Ctx>) -> Result<Outcome> {
    let path = ctx.cli.ack_log.clone().context("--ack-log is required")?;
    let log = AckLog::open(&path)?;
    let n = ctx.cli.sessions;
    let t0 = Instant::now();
    let deadline = ctx.deadline();
    let mut set = JoinSet::new();
    for w in 0..n {
        let ctx = Arc::clone(&ctx);
        let log = log.clone();
        set.spawn(async move {
            let mut c = WriterCounts::default();
            c.end = match writer(&ctx, w, &log, deadline, &mut c).await {
                Ok(()) => "deadline".into(),
                Err(e) => format!("{e:#}"),
            };
            c
        });
    }
    let mut out = Outcome {
        status: "ok",
        ..Outcome::default()
    };
    let (mut private, mut roster, mut messages, mut bounced) = (0, 0, 0, 0);
    let mut ends = BTreeMap::<String, usize>::new();
    while let Some(r) = set.join_next().await {
        let c = r.context("writer task panicked")?;
        private += c.private;
        roster += c.roster;
        messages += c.messages;
        bounced += c.bounced;
        // The first words say why a writer stopped (e.g. the server was killed).
        let why: String = c
            .end
            .split_whitespace()
            .take(4)
            .collect::<Vec<_>>()
            .join("_");
        *ends.entry(why).or_default() += 1;
    }
    out.ops = private + roster + messages;
    out.wall = t0.elapsed();
    out.note = format!(
        "acked_private={private} acked_roster={roster} acked_messages={messages} \
         bounced={bounced} writers_ended={ends:?}"
    );
    Ok(out)
}

/// One writer: its own session, one request at a time.
async fn writer(
    ctx: &Ctx,
    w: usize,
    log: &AckLog,
    deadline: Instant,
    c: &mut WriterCounts,
) -> Result<()> {
    let round = ctx.cli.round;
    let account = format!("{}{w}", ctx.cli.user_prefix);
    let mailbox = format!("{}{}", ctx.cli.user_prefix, ctx.cli.sessions + w);
    let mut s = xmpp::login(&ctx.spec(w, format!("crash{round}"), false)).await?;
    let mut seq = 0usize;
    while Instant::now() < deadline {
        seq += 1;
        let tag = format!("w{w}r{round}n{seq}");
        match seq % 4 {
            0 | 1 => {
                if private_set(&mut s, log, &account, seq % NAMESPACES, &tag).await? {
                    c.private += 1;
                }
            }
            2 => {
                let item = format!("{tag}@contacts.invalid");
                let id = format!("r{seq}");
                s.send(
                    format!(
                        "<iq type='set' id='{id}'><query xmlns='{NS_ROSTER}'>\
                         <item jid='{item}' name='{tag}'/></query></iq>"
                    )
                    .as_bytes(),
                )
                .await?;
                let reply = s.rd.iq_reply(&id, |_| {}).await?;
                if reply.attr("type") == Some("result") {
                    log.line(&format!("RA {account} {item} {tag}"))?;
                    c.roster += 1;
                }
            }
            _ => {
                let body = format!("msg-{tag}");
                s.send(
                    format!(
                        "<message type='chat' id='m{seq}' to='{mailbox}@{}'>\
                         <body>{body}</body></message>",
                        ctx.cli.domain
                    )
                    .as_bytes(),
                )
                .await?;
                let mut all_acked = true;
                let bounced = Arc::new(Mutex::new(false));
                for b in 0..BARRIER {
                    let k = (seq + b) % NAMESPACES;
                    let btag = format!("{tag}b{b}");
                    let flag = Arc::clone(&bounced);
                    let body2 = body.clone();
                    let ok = private_set_watching(&mut s, log, &account, k, &btag, move |el| {
                        if el.name == "message"
                            && el.attr("type") == Some("error")
                            && el.get_child("body", "jabber:client").map(Element::text)
                                == Some(body2.clone())
                            && let Ok(mut f) = flag.lock()
                        {
                            *f = true;
                        }
                    })
                    .await?;
                    if ok {
                        c.private += 1;
                    } else {
                        all_acked = false;
                    }
                }
                let was_bounced = bounced.lock().map(|b| *b).unwrap_or(true);
                if was_bounced {
                    c.bounced += 1;
                } else if all_acked {
                    log.line(&format!("MA {mailbox} {body}"))?;
                    c.messages += 1;
                }
            }
        }
    }
    s.close().await;
    Ok(())
}

async fn private_set(
    s: &mut Session,
    log: &AckLog,
    account: &str,
    k: usize,
    value: &str,
) -> Result<bool> {
    private_set_watching(s, log, account, k, value, |_| {}).await
}

/// One XEP-0049 set, logged when sent and when acknowledged; other stanzas go to `other`.
async fn private_set_watching(
    s: &mut Session,
    log: &AckLog,
    account: &str,
    k: usize,
    value: &str,
    other: impl FnMut(&Element),
) -> Result<bool> {
    let ns = ns(k);
    let id = format!("p-{value}");
    log.line(&format!("PS {account} {k} {value}"))?;
    s.send(
        format!(
            "<iq type='set' id='{id}'><query xmlns='{NS_PRIVATE}'>\
             <v xmlns='{ns}' at='{value}'>{value}</v></query></iq>"
        )
        .as_bytes(),
    )
    .await?;
    let reply = s.rd.iq_reply(&id, other).await?;
    if reply.attr("type") == Some("result") {
        log.line(&format!("PA {account} {k} {value}"))?;
        return Ok(true);
    }
    Ok(false)
}

/// What the log says must be stored.
#[derive(Default)]
struct Expected {
    /// (account, ns) → the last acknowledged value, and values sent after it (any of which
    /// may have been applied before the crash without its acknowledgement arriving).
    private: BTreeMap<(String, usize), (Option<String>, BTreeSet<String>)>,
    /// account → (item JID, name) acknowledged.
    roster: BTreeMap<String, Vec<(String, String)>>,
    /// mailbox → message bodies acknowledged and not yet verified (delivery consumes them).
    messages: BTreeMap<String, BTreeSet<String>>,
}

fn read_log(path: &Path) -> Result<Expected> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    let mut e = Expected::default();
    for (n, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split(' ').collect();
        match f.as_slice() {
            ["PS", acct, k, v] => {
                let k: usize = k.parse().context("namespace index")?;
                e.private
                    .entry((acct.to_string(), k))
                    .or_default()
                    .1
                    .insert(v.to_string());
            }
            ["PA", acct, k, v] => {
                let k: usize = k.parse().context("namespace index")?;
                let slot = e.private.entry((acct.to_string(), k)).or_default();
                // Everything sent before this acknowledged set is overwritten by it.
                slot.0 = Some(v.to_string());
                slot.1.clear();
            }
            ["RA", acct, item, name] => e
                .roster
                .entry(acct.to_string())
                .or_default()
                .push((item.to_string(), name.to_string())),
            ["MA", mailbox, body] => {
                e.messages
                    .entry(mailbox.to_string())
                    .or_default()
                    .insert(body.to_string());
            }
            // Messages already verified by an earlier round's check.
            ["MV", mailbox, body] => {
                if let Some(set) = e.messages.get_mut(*mailbox) {
                    set.remove(*body);
                }
            }
            _ => bail!("ack log line {}: {line:?}", n + 1),
        }
    }
    Ok(e)
}

pub async fn crash_verify(ctx: Arc<Ctx>) -> Result<Outcome> {
    let path = ctx.cli.ack_log.clone().context("--ack-log is required")?;
    let expected = read_log(&path)?;
    let log = AckLog::open(&path)?;
    let t0 = Instant::now();
    let mut problems: Vec<String> = Vec::new();
    let (mut private_ok, mut private_unacked_later, mut roster_ok, mut messages_ok) =
        (0usize, 0usize, 0usize, 0usize);
    let n = ctx.cli.sessions;
    let round = ctx.cli.round;
    for w in 0..n {
        let account = format!("{}{w}", ctx.cli.user_prefix);
        let mut s = xmpp::login(&ctx.spec(w, format!("verify{round}"), false))
            .await
            .with_context(|| format!("log in {account} to verify"))?;
        for k in 0..NAMESPACES {
            let Some((acked, later)) = expected.private.get(&(account.clone(), k)) else {
                continue;
            };
            let id = format!("v{k}");
            s.send(
                format!(
                    "<iq type='get' id='{id}'><query xmlns='{NS_PRIVATE}'>\
                     <v xmlns='{}'/></query></iq>",
                    ns(k)
                )
                .as_bytes(),
            )
            .await?;
            let reply = s.rd.iq_reply(&id, |_| {}).await?;
            if reply.attr("type") != Some("result") {
                problems.push(format!(
                    "{account} ns {k}: get failed: {}",
                    xmpp::brief(&reply)
                ));
                continue;
            }
            let v = reply
                .get_child("query", NS_PRIVATE)
                .and_then(|q| q.get_child("v", &ns(k)));
            let text = v.map(Element::text).filter(|t| !t.is_empty());
            // The exact content: text and attribute agree.
            let attr = v.and_then(|v| v.attr("at")).map(str::to_string);
            if text.is_some() && text != attr {
                problems.push(format!("{account} ns {k}: damaged value {v:?}"));
                continue;
            }
            match (&text, acked) {
                (Some(t), Some(a)) if t == a => private_ok += 1,
                (Some(t), _) if later.contains(t) => private_unacked_later += 1,
                (None, None) => {}
                _ => problems.push(format!(
                    "{account} ns {k}: stored {text:?}, last acknowledged {acked:?}"
                )),
            }
        }
        if let Some(items) = expected.roster.get(&account) {
            s.send(
                format!("<iq type='get' id='roster'><query xmlns='{NS_ROSTER}'/></iq>").as_bytes(),
            )
            .await?;
            let reply = s.rd.iq_reply("roster", |_| {}).await?;
            let have: BTreeMap<String, String> = reply
                .get_child("query", NS_ROSTER)
                .map(|q| {
                    q.elements()
                        .filter_map(|i| {
                            Some((i.attr("jid")?.to_string(), i.attr("name")?.to_string()))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if reply.attr("type") != Some("result") {
                problems.push(format!(
                    "{account}: roster get failed: {}",
                    xmpp::brief(&reply)
                ));
            }
            for (item, name) in items {
                match have.get(item) {
                    Some(got) if got == name => roster_ok += 1,
                    got => problems.push(format!(
                        "{account}: roster item {item} is {got:?}, acknowledged name {name}"
                    )),
                }
            }
        }
        s.close().await;
    }
    for m in 0..n {
        let mailbox = format!("{}{}", ctx.cli.user_prefix, n + m);
        let Some(want) = expected.messages.get(&mailbox).filter(|w| !w.is_empty()) else {
            continue;
        };
        let mut s = xmpp::login(&ctx.spec(n + m, format!("verify{round}"), false))
            .await
            .with_context(|| format!("log in {mailbox} to verify"))?;
        s.send(b"<presence/>").await?;
        let mut got = BTreeSet::new();
        // Offline messages come right after the initial presence; stop when every expected
        // one is in or nothing arrived for a while (bounded either way).
        let until = Instant::now() + ctx.io();
        while got.len() < want.len() && Instant::now() < until {
            match tokio::time::timeout(Duration::from_secs(3), s.rd.element()).await {
                Ok(Ok(el)) if el.name == "message" => {
                    if let Some(b) = el.get_child("body", "jabber:client") {
                        got.insert(b.text());
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => bail!("{mailbox}: {e:#}"),
                Err(_) => break,
            }
        }
        for body in want {
            if got.contains(body) {
                messages_ok += 1;
                log.line(&format!("MV {mailbox} {body}"))?;
            } else {
                problems.push(format!("{mailbox}: acknowledged message {body} missing"));
            }
        }
        s.close().await;
    }
    // Let the server write down that the mailboxes were emptied.
    sleep(Duration::from_millis(200)).await;
    let mut out = Outcome {
        status: if problems.is_empty() { "ok" } else { "lost" },
        ops: private_ok + private_unacked_later + roster_ok + messages_ok,
        errors: problems.len(),
        wall: t0.elapsed(),
        ..Outcome::default()
    };
    out.note = format!(
        "private_ok={private_ok} private_later_unacked={private_unacked_later} \
         roster_ok={roster_ok} messages_ok={messages_ok} problems={}",
        problems.len()
    );
    for p in problems.iter().take(20) {
        eprintln!("crash-verify: {p}");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected_from(lines: &str) -> Expected {
        let path = std::env::temp_dir().join(format!(
            "elsinore-acklog-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::write(&path, lines).expect("write temp log");
        let e = read_log(&path).expect("log parses");
        let _ = std::fs::remove_file(&path);
        e
    }

    #[test]
    fn an_acknowledged_set_supersedes_what_was_sent_before_it() {
        let e = expected_from("PS a 0 v1\nPA a 0 v1\nPS a 0 v2\nPS a 0 v3\nPA a 0 v3\nPS a 0 v4\n");
        let (acked, later) = &e.private[&("a".to_string(), 0)];
        assert_eq!(acked.as_deref(), Some("v3"));
        // v2 was overwritten by the acknowledged v3; v4 may or may not have landed.
        assert_eq!(later.iter().collect::<Vec<_>>(), ["v4"]);
    }

    #[test]
    fn verified_messages_are_not_expected_again() {
        let e = expected_from("MA mb m1\nMA mb m2\nMV mb m1\nRA a x@y n\n");
        assert_eq!(e.messages["mb"].iter().collect::<Vec<_>>(), ["m2"]);
        assert_eq!(e.roster["a"], [("x@y".to_string(), "n".to_string())]);
    }

    #[test]
    fn a_damaged_log_is_an_error() {
        let path = std::env::temp_dir().join(format!("elsinore-acklog-bad-{}", std::process::id()));
        std::fs::write(&path, "PA a 0\n").expect("write temp log");
        assert!(read_log(&path).is_err());
        let _ = std::fs::remove_file(&path);
    }
}
