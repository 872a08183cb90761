//! XEP-0145 annotations: add, update, read all and remove notes about contacts.
//!
//! ```text
//! cargo run -p elsinore-examples --example annotations -- \
//!     --addr HOST:PORT --jid USER@DOMAIN --password PW --insecure-tls
//! ```
//!
//! Prints one line per check and exits 0 only if all hold. Notes stored before are kept.
//! `cargo xtask interop` runs exactly this command line against Prosody and against
//! elsinore.

use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow};
use elsinore_jid::{BareJid, Jid};
use elsinore_tokio::{Client, ClientOptions};

mod common;

const USAGE: &str =
    "usage: annotations --addr HOST:PORT --jid USER@DOMAIN --password PW --insecure-tls";

async fn run(addr: String, jid: Jid, password: String) -> Result<usize> {
    let client = Client::connect(ClientOptions::new(addr, jid, password).insecure_tls())
        .await
        .context("logging in")?;
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: String| {
        println!("{} {name}: {detail}", if ok { "ok  " } else { "FAIL" });
        failed += usize::from(!ok);
    };
    let romeo = BareJid::from_str("romeo@montague.lit").map_err(|e| anyhow!("{e}"))?;
    let tybalt = BareJid::from_str("tybalt@capulet.lit").map_err(|e| anyhow!("{e}"))?;
    let before = client.annotations_get().await?.notes().len();

    let notes = client
        .annotations_set_note(&romeo, "Wherefore art thou? <&>")
        .await?;
    let first = notes.get(&romeo).cloned();
    check(
        "add",
        first.as_ref().is_some_and(|n| n.cdate == n.mdate),
        format!("{first:?}"),
    );
    client
        .annotations_set_note(&tybalt, "Prince of Cats")
        .await?;

    let notes = client.annotations_set_note(&romeo, "Found him").await?;
    let updated = notes.get(&romeo).cloned();
    check(
        "update keeps cdate",
        updated.as_ref().map(|n| n.cdate) == first.as_ref().map(|n| n.cdate)
            && updated.as_ref().map(|n| n.text.as_str()) == Some("Found him"),
        format!("{updated:?}"),
    );

    // Every note, as stored (escaping and dates intact).
    let read = client.annotations_get().await?;
    for note in read.notes() {
        println!("     note on {}: {:?}", note.jid, note.text);
    }
    check(
        "read all",
        read.notes().len() == before + 2
            && read.get(&romeo).map(|n| n.text.as_str()) == Some("Found him")
            && read.get(&tybalt).map(|n| n.text.as_str()) == Some("Prince of Cats"),
        format!("{} note(s)", read.notes().len()),
    );

    let removed = client.annotations_remove_note(&romeo).await?
        && client.annotations_remove_note(&tybalt).await?;
    let again = client.annotations_remove_note(&romeo).await?;
    let read = client.annotations_get().await?;
    check(
        "remove",
        removed && !again && read.get(&romeo).is_none() && read.notes().len() == before,
        format!("{} note(s) left", read.notes().len()),
    );
    client.close().await?;
    Ok(failed)
}

fn main() -> ExitCode {
    let (addr, jid, password) = match common::parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("annotations: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("annotations: cannot start the runtime: {e}");
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
            eprintln!("annotations: {e:#}");
            ExitCode::FAILURE
        }
    }
}
