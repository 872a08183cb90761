//! XEP-0223 private data via PEP: publish a bookmark privately, see the notification on a
//! second resource, read it back, retract it.
//!
//! ```text
//! cargo run -p elsinore-examples --example pep_private -- \
//!     --addr HOST:PORT --jid USER@DOMAIN --password PW --insecure-tls
//! ```
//!
//! Prints one line per check and exits 0 only if all hold.

use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use elsinore_jid::Jid;
use elsinore_tokio::{Client, ClientOptions, ConfigChange};
use elsinore_xml::Element;

const USAGE: &str =
    "usage: pep_private --addr HOST:PORT --jid USER@DOMAIN --password PW --insecure-tls";
const NODE: &str = "urn:xmpp:bookmarks:1";
const EVENT: &str = "http://jabber.org/protocol/pubsub#event";

fn parse_args() -> Result<(String, Jid, String)> {
    let (mut addr, mut jid, mut password, mut insecure) = (None, None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| anyhow!("{name} needs a value"));
        match arg.as_str() {
            "--addr" => addr = Some(value("--addr")?),
            "--jid" => jid = Some(value("--jid")?),
            "--password" => password = Some(value("--password")?),
            "--insecure-tls" => insecure = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    if !insecure {
        bail!("this example carries no trusted roots; pass --insecure-tls");
    }
    let jid = jid.ok_or_else(|| anyhow!("--jid is required"))?;
    Ok((
        addr.ok_or_else(|| anyhow!("--addr is required"))?,
        Jid::from_str(&jid).map_err(|e| anyhow!("invalid JID {jid:?}: {e}"))?,
        password.ok_or_else(|| anyhow!("--password is required"))?,
    ))
}

async fn login(addr: &str, jid: &Jid, resource: &str, password: &str) -> Result<Client> {
    let full = jid
        .bare()
        .with_resource(resource)
        .map_err(|e| anyhow!("{e}"))?;
    let client = Client::connect(ClientOptions::new(addr, full, password).insecure_tls())
        .await
        .with_context(|| format!("logging in as {jid}/{resource}"))?;
    // Available, so PEP notifications reach this resource (XEP-0163).
    client
        .send(Element::new("presence", "jabber:client"))
        .await?;
    Ok(client)
}

async fn run(addr: String, jid: Jid, password: String) -> Result<usize> {
    let balcony = login(&addr, &jid, "balcony", &password).await?;
    let chamber = login(&addr, &jid, "chamber", &password).await?;
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: String| {
        println!("{} {name}: {detail}", if ok { "ok  " } else { "FAIL" });
        failed += usize::from(!ok);
    };
    let bookmark = Element::new("conference", NODE)
        .with_attr("name", "The Play's the Thing")
        .with_attr("autojoin", "true")
        .with_child(Element::new("nick", NODE).with_text("JC"));
    let options = ConfigChange {
        max_items: None,
        ..ConfigChange::private()
    };
    let id = balcony
        .pep_publish(
            NODE,
            Some("theplay@conference.shakespeare.lit"),
            bookmark,
            Some(&options),
        )
        .await?;
    check("publish (persist, whitelist)", !id.is_empty(), id.clone());

    // The other resource gets the notification.
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(st) = chamber.recv().await {
            if let Some(items) = st
                .get_child("event", EVENT)
                .and_then(|e| e.get_child("items", EVENT))
            {
                return Some(items.clone());
            }
        }
        None
    })
    .await
    .ok()
    .flatten();
    check(
        "notification to second resource",
        got.as_ref().and_then(|i| i.attr("node")) == Some(NODE),
        format!("{:?}", got.as_ref().map(|i| i.attr("node"))),
    );

    let items = chamber.pep_items(NODE).await?;
    let name = items
        .iter()
        .find(|i| i.id == id)
        .and_then(|i| i.payload.as_ref())
        .and_then(|p| p.attr("name"))
        .map(str::to_string);
    check(
        "retrieve",
        name.as_deref() == Some("The Play's the Thing"),
        format!("{name:?}"),
    );

    balcony.pep_retract(NODE, &id, true).await?;
    let items = chamber.pep_items(NODE).await?;
    check(
        "retract",
        items.iter().all(|i| i.id != id),
        format!("{} item(s) left", items.len()),
    );
    balcony.close().await?;
    chamber.close().await?;
    Ok(failed)
}

fn main() -> ExitCode {
    let (addr, jid, password) = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pep_private: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("pep_private: cannot start the runtime: {e}");
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
            eprintln!("pep_private: {e:#}");
            ExitCode::FAILURE
        }
    }
}
