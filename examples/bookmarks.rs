//! Chat room bookmarks: add and remove rooms with XEP-0402 (one PEP item per room), and see
//! them through XEP-0048 private XML as older clients do (and the other way round), on a
//! server that keeps both consistent (`urn:xmpp:bookmarks:1#compat`).
//!
//! ```text
//! cargo run -p elsinore-examples --example bookmarks -- \
//!     --addr HOST:PORT --jid USER@DOMAIN --password PW --insecure-tls
//! ```
//!
//! Prints one line per check and exits 0 only if all hold. The account's XEP-0048 list is put
//! back as it was at the end.

use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow};
use elsinore_jid::{BareJid, Jid};
use elsinore_tokio::bookmarks::Conference;
use elsinore_tokio::{Client, ClientOptions};

mod common;

const USAGE: &str =
    "usage: bookmarks --addr HOST:PORT --jid USER@DOMAIN --password PW --insecure-tls";

fn room(jid: &str, name: &str, nick: &str) -> Result<Conference> {
    Ok(Conference {
        jid: BareJid::from_str(jid).map_err(|e| anyhow!("{e}"))?,
        name: Some(name.into()),
        autojoin: true,
        nick: Some(nick.into()),
        password: None,
        extensions: Vec::new(),
    })
}

fn rooms(list: &[Conference]) -> Vec<String> {
    list.iter().map(|c| c.jid.to_string()).collect()
}

async fn run(addr: String, jid: Jid, password: String) -> Result<usize> {
    let client = Client::connect(ClientOptions::new(addr, jid, password).insecure_tls())
        .await
        .context("logging in")?;
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: String| {
        println!("{} {name}: {detail}", if ok { "ok  " } else { "FAIL" });
        failed += usize::from(!ok);
    };
    let before = client.bookmarks_get_legacy().await?;

    // XEP-0402: one item per room.
    let council = room(
        "council@conference.underhill.org",
        "Council of Oberon",
        "Puck",
    )?;
    client.bookmarks_set(&council).await?;
    let native = client.bookmarks_get().await?;
    check(
        "XEP-0402 add, read back",
        native.contains(&council),
        format!("{:?}", rooms(&native)),
    );
    let legacy = client.bookmarks_get_legacy().await?;
    check(
        "seen through XEP-0048 private XML",
        legacy.conferences.iter().any(|c| c.jid == council.jid),
        format!("{:?}", rooms(&legacy.conferences)),
    );

    // XEP-0048: an older client rewrites the whole list, adding a room.
    let play = room(
        "theplay@conference.shakespeare.lit",
        "The Play's the Thing",
        "JC",
    )?;
    let mut list = legacy.clone();
    list.conferences.push(play.clone());
    client.bookmarks_set_legacy(&list).await?;
    let native = client.bookmarks_get().await?;
    check(
        "XEP-0048 write seen through XEP-0402",
        native.contains(&play) && native.contains(&council),
        format!("{:?}", rooms(&native)),
    );

    // XEP-0402 removal reaches the XEP-0048 list.
    let removed = client.bookmarks_remove(&council.jid).await?;
    let legacy = client.bookmarks_get_legacy().await?;
    check(
        "XEP-0402 remove, gone from XEP-0048",
        removed && !legacy.conferences.iter().any(|c| c.jid == council.jid),
        format!("{:?}", rooms(&legacy.conferences)),
    );

    // Put the XEP-0048 list back as it was (the XEP-0402 items follow on the server).
    client.bookmarks_set_legacy(&before).await?;
    let native = client.bookmarks_get().await?;
    let (mut now, mut then) = (rooms(&native), rooms(&before.conferences));
    now.sort();
    then.sort();
    check("restored", now == then, format!("{now:?}"));
    client.close().await?;
    Ok(failed)
}

fn main() -> ExitCode {
    let (addr, jid, password) = match common::parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bookmarks: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bookmarks: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(addr, jid, password)) {
        Ok(0) => ExitCode::SUCCESS,
        Ok(n) => {
            println!("{n} check(s) failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("bookmarks: {e:#}");
            ExitCode::FAILURE
        }
    }
}
