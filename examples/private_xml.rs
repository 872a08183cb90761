//! Replays XEP-0049 (Private XML Storage) listings 1–4 against a server.
//!
//! ```text
//! cargo run -p elsinore-examples --example private_xml -- \
//!     --addr HOST:PORT --jid USER@DOMAIN --password PW --other OTHERUSER@DOMAIN [--insecure-tls]
//! ```
//!
//! Logs in over STARTTLS + SCRAM, prints one line per check and exits 0 only if all hold.
//! `cargo xtask interop` runs exactly this command line against Prosody and against elsinore.

use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use elsinore_jid::Jid;
use elsinore_tokio::{Client, ClientError, ClientOptions};
use elsinore_xml::Element;

const PRIVATE: &str = "jabber:iq:private";
const USAGE: &str = "usage: private_xml --addr HOST:PORT --jid USER@DOMAIN --password PW \
                     --other OTHERUSER@DOMAIN [--insecure-tls]";

struct Args {
    addr: String,
    jid: Jid,
    password: String,
    other: Jid,
    insecure_tls: bool,
}

fn parse_args() -> Result<Args> {
    let mut addr = None;
    let mut jid = None;
    let mut password = None;
    let mut other = None;
    let mut insecure_tls = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => addr = Some(value("--addr")?),
            "--jid" => jid = Some(value("--jid")?),
            "--password" => password = Some(value("--password")?),
            "--other" => other = Some(value("--other")?),
            "--insecure-tls" => insecure_tls = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    let parse_jid = |s: String| Jid::from_str(&s).map_err(|e| anyhow!("invalid JID {s:?}: {e}"));
    Ok(Args {
        addr: addr.ok_or_else(|| anyhow!("--addr is required"))?,
        jid: parse_jid(jid.ok_or_else(|| anyhow!("--jid is required"))?)?,
        password: password.ok_or_else(|| anyhow!("--password is required"))?,
        other: parse_jid(other.ok_or_else(|| anyhow!("--other is required"))?)?,
        insecure_tls,
    })
}

fn exodus(nick: &str) -> Element {
    Element::new("exodus", "exodus:prefs")
        .with_child(Element::new("defaultnick", "exodus:prefs").with_text(nick))
}

/// Prints a check's outcome and counts failures.
struct Report {
    failed: usize,
}

impl Report {
    fn check(&mut self, name: &str, ok: bool, detail: &str) {
        if ok {
            println!("ok   {name}: {detail}");
        } else {
            self.failed += 1;
            println!("FAIL {name}: {detail}");
        }
    }
}

/// The condition of an expected stanza error, or a description of what came instead.
fn error_condition(result: &Result<Element, ClientError>) -> std::result::Result<&str, String> {
    match result {
        Err(ClientError::Stanza { condition, .. }) => Ok(condition),
        Err(e) => Err(format!("expected a stanza error, got: {e}")),
        Ok(_) => Err("expected an error, got a result".to_string()),
    }
}

async fn run(args: Args) -> Result<usize> {
    let mut options = ClientOptions::new(args.addr.clone(), args.jid.clone(), args.password);
    if args.insecure_tls {
        options = options.insecure_tls();
    } else {
        bail!(
            "this example carries no trusted root certificates; pass --insecure-tls \
             to test against a server with a self-signed certificate"
        );
    }
    let client = Client::connect(options)
        .await
        .with_context(|| format!("cannot log in as {} at {}", args.jid, args.addr))?;
    println!("logged in as {}", client.jid());
    let mut report = Report { failed: 0 };

    // Listing 1: store private data.
    let stored = client.private_set(exodus("Hamlet")).await;
    report.check(
        "listing 1 (store)",
        stored.is_ok(),
        &match &stored {
            Ok(()) => "stored <exodus xmlns='exodus:prefs'/>".to_string(),
            Err(e) => e.to_string(),
        },
    );

    // Listing 2: retrieve it and compare.
    match client.private_get("exodus", "exodus:prefs").await {
        Ok(got) => {
            let nick = got
                .iter()
                .find(|e| e.is("exodus", "exodus:prefs"))
                .and_then(|e| e.get_child("defaultnick", "exodus:prefs"))
                .map(Element::text);
            report.check(
                "listing 2 (retrieve)",
                nick.as_deref() == Some("Hamlet"),
                &format!("defaultnick = {nick:?}"),
            );
        }
        Err(e) => report.check("listing 2 (retrieve)", false, &e.to_string()),
    }

    // Listing 3: another user's private data.
    let other_bare = args.other.bare().to_string();
    let iq = Element::new("iq", "jabber:client")
        .with_attr("type", "set")
        .with_attr("to", other_bare.clone())
        .with_child(Element::new("query", PRIVATE).with_child(exodus("Macbeth")));
    let result = client.iq(iq).await;
    match error_condition(&result) {
        Ok(c) => report.check(
            "listing 3 (other user)",
            c == "forbidden" || c == "service-unavailable",
            &format!("to {other_bare}: {c}"),
        ),
        Err(why) => report.check("listing 3 (other user)", false, &why),
    }

    // Listing 4: a query without a child element. RFC 6120 servers answer bad-request or
    // not-acceptable; the listing itself shows `bad-format` (not an RFC 6120 condition, but
    // what Prosody 0.12 sends), so it counts as the expected refusal too.
    let iq = Element::new("iq", "jabber:client")
        .with_attr("type", "set")
        .with_child(Element::new("query", PRIVATE));
    let result = client.iq(iq).await;
    match error_condition(&result) {
        Ok(c) => report.check(
            "listing 4 (empty query)",
            matches!(c, "bad-request" | "not-acceptable" | "bad-format"),
            c,
        ),
        Err(why) => report.check("listing 4 (empty query)", false, &why),
    }

    client.close().await.context("closing the stream")?;
    Ok(report.failed)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("private_xml: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("private_xml: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(0) => {
            println!("all checks passed");
            ExitCode::SUCCESS
        }
        Ok(n) => {
            println!("{n} check(s) failed");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("private_xml: {e:#}");
            ExitCode::FAILURE
        }
    }
}
