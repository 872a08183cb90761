//! XEP-0223 private data via PEP, as the owner of the account's nodes: check support,
//! publish a bookmark privately, see the notification on a second resource, read it back,
//! retract it; then create a private node with options, read and change its configuration,
//! retrieve items by id and by `max_items`, purge it and delete it, with the event each
//! change sends to the other resource.
//!
//! ```text
//! cargo run -p elsinore-examples --example pep_private -- \
//!     --addr HOST:PORT --jid USER@DOMAIN --password PW --insecure-tls
//! ```
//!
//! Prints one line per check and exits 0 only if all hold. `cargo xtask interop` runs
//! exactly this command line against Prosody and against elsinore.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use base64::Engine as _;
use elsinore_jid::Jid;
use elsinore_tokio::pep::{self, Change};
use elsinore_tokio::{AccessModel, Client, ClientError, ClientOptions, ConfigChange};
use elsinore_xml::Element;
use sha1::{Digest, Sha1};

mod common;

const USAGE: &str =
    "usage: pep_private --addr HOST:PORT --jid USER@DOMAIN --password PW --insecure-tls";
const NODE: &str = "urn:xmpp:bookmarks:1";
/// A private node of this example's own.
const DIARY: &str = "urn:example:elsinore:diary";
const DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
const CAPS: &str = "http://jabber.org/protocol/caps";
const CAPS_NODE: &str = "https://github.com/elsinore/examples";
/// How long a resource still waits for the server to ask what its caps mean once the
/// server has answered a ping sent after its presence.
const QUERY_GRACE: Duration = Duration::from_millis(300);
const EVENT_WAIT: Duration = Duration::from_secs(5);

/// What this client's XEP-0115 caps stand for: interest (`+notify`, XEP-0163) in both
/// nodes, so servers that filter notifications by caps (Prosody) send them.
fn features() -> Vec<String> {
    let mut f = vec![
        DISCO_INFO.to_string(),
        CAPS.to_string(),
        format!("{NODE}+notify"),
        format!("{DIARY}+notify"),
    ];
    f.sort();
    f
}

/// XEP-0115 §5.1 verification string of [`features`] with identity client/pc.
fn caps_ver() -> String {
    let mut s = String::from("client/pc//elsinore example<");
    for f in features() {
        s.push_str(&f);
        s.push('<');
    }
    base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes()))
}

/// The answer to a disco#info request (the server resolving our caps), if `st` is one.
fn disco_answer(st: &Element) -> Option<Element> {
    let query = st.get_child("query", DISCO_INFO)?;
    if st.name != "iq" || st.attr("type") != Some("get") {
        return None;
    }
    let mut answer = Element::new("query", DISCO_INFO).with_child(
        Element::new("identity", DISCO_INFO)
            .with_attr("category", "client")
            .with_attr("type", "pc")
            .with_attr("name", "elsinore example"),
    );
    if let Some(node) = query.attr("node") {
        answer.set_attr("node", node);
    }
    for f in features() {
        answer = answer.with_child(Element::new("feature", DISCO_INFO).with_attr("var", f));
    }
    let mut iq = Element::new("iq", "jabber:client")
        .with_attr("type", "result")
        .with_child(answer);
    for (ours, theirs) in [("id", "id"), ("to", "from")] {
        if let Some(v) = st.attr(theirs) {
            iq.set_attr(ours, v);
        }
    }
    Some(iq)
}

async fn login(addr: &str, jid: &Jid, resource: &str, password: &str) -> Result<Client> {
    let full = jid
        .bare()
        .with_resource(resource)
        .map_err(|e| anyhow!("{e}"))?;
    let client = Client::connect(ClientOptions::new(addr, full, password).insecure_tls())
        .await
        .with_context(|| format!("logging in as {jid}/{resource}"))?;
    // Available, so PEP notifications reach this resource (XEP-0163), with caps.
    client
        .send(
            Element::new("presence", "jabber:client").with_child(
                Element::new("c", CAPS)
                    .with_attr("hash", "sha-1")
                    .with_attr("node", CAPS_NODE)
                    .with_attr("ver", caps_ver()),
            ),
        )
        .await?;
    // A server that filters by caps asks what they mean, unless it knows them already (a
    // second resource with the same caps); one that does not filter never asks. It asks
    // while handling our presence, so by the answer to a ping sent after the presence the
    // query, if any, has arrived.
    let domain = jid.domain().to_string();
    let ping = Element::new("iq", "jabber:client")
        .with_attr("type", "get")
        .with_attr("to", domain)
        .with_child(Element::new("ping", "urn:xmpp:ping"));
    // An error answer (a server without XEP-0199) orders things just as well.
    let _ = client.iq(ping).await;
    let _ = tokio::time::timeout(QUERY_GRACE, async {
        while let Some(st) = client.recv().await {
            if let Some(answer) = disco_answer(&st) {
                let _ = client.send(answer).await;
                return;
            }
        }
    })
    .await;
    Ok(client)
}

/// The next event notification about `node` that `client` receives (bounded wait).
async fn next_event(client: &Client, node: &str) -> Option<Change> {
    tokio::time::timeout(EVENT_WAIT, async {
        while let Some(st) = client.recv().await {
            if let Some(answer) = disco_answer(&st) {
                let _ = client.send(answer).await;
                continue;
            }
            match pep::parse_event(&st) {
                Some(e) if e.node == node => return Some(e.change),
                _ => {}
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

fn ids(items: &[elsinore_tokio::PepItem]) -> Vec<&str> {
    items.iter().map(|i| i.id.as_str()).collect()
}

fn entry(text: &str) -> Element {
    Element::new("entry", DIARY).with_text(text)
}

async fn run(addr: String, jid: Jid, password: String) -> Result<usize> {
    let balcony = login(&addr, &jid, "balcony", &password).await?;
    let chamber = login(&addr, &jid, "chamber", &password).await?;
    let mut failed = 0;
    let mut check = |name: &str, ok: bool, detail: String| {
        println!("{} {name}: {detail}", if ok { "ok  " } else { "FAIL" });
        failed += usize::from(!ok);
    };

    // XEP-0223 §5: PEP on the account, with publish options.
    let support = balcony.pep_support().await?;
    check(
        "support (pubsub/pep, publish-options)",
        support.private_storage(),
        format!("{support:?}"),
    );

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
    let got = next_event(&chamber, NODE).await;
    let published = match &got {
        Some(Change::Items { published, .. }) => ids(published),
        _ => Vec::new(),
    };
    check(
        "notification to second resource",
        published == [id.as_str()],
        format!("published {published:?}"),
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
    let got = next_event(&chamber, NODE).await;
    check(
        "retract notification",
        matches!(&got, Some(Change::Items { retracted, .. }) if *retracted == [id.clone()]),
        format!("{got:?}"),
    );
    let items = chamber.pep_items(NODE).await?;
    check(
        "retract",
        items.iter().all(|i| i.id != id),
        format!("{} item(s) left", items.len()),
    );

    // A node of our own, created with its configuration (left over from an earlier run:
    // deleted first).
    match balcony.pep_delete(DIARY).await {
        Ok(()) => {
            let _ = next_event(&chamber, DIARY).await;
        }
        Err(ClientError::Stanza { condition, .. }) if condition == "item-not-found" => {}
        Err(e) => return Err(e.into()),
    }
    let private3 = ConfigChange {
        max_items: Some(3),
        ..ConfigChange::private()
    };
    balcony.pep_create(DIARY, Some(&private3)).await?;
    let config = balcony.pep_config(DIARY).await?;
    check(
        "create with configuration",
        private3.is_subset_of(&config),
        format!("{config:?}"),
    );
    let again = balcony.pep_create(DIARY, None).await;
    check(
        "create again is a conflict",
        matches!(&again, Err(ClientError::Stanza { condition, .. }) if condition == "conflict"),
        format!("{again:?}"),
    );

    for (id, text) in [("act1", "To be"), ("act2", "or not"), ("act3", "to be")] {
        balcony
            .pep_publish(DIARY, Some(id), entry(text), Some(&private3))
            .await?;
        let _ = next_event(&chamber, DIARY).await;
    }
    let by_id = chamber.pep_items_by_id(DIARY, &["act3", "act1"]).await?;
    let mut got = ids(&by_id);
    got.sort_unstable();
    check(
        "retrieve by id",
        got == ["act1", "act3"]
            && by_id
                .iter()
                .any(|i| i.id == "act3" && i.payload == Some(entry("to be"))),
        format!("{got:?}"),
    );
    let last = chamber.pep_items_last(DIARY, 1).await?;
    check(
        "retrieve max_items=1",
        ids(&last) == ["act3"],
        format!("{:?}", ids(&last)),
    );

    let fewer = ConfigChange {
        max_items: Some(2),
        ..ConfigChange::default()
    };
    balcony.pep_configure(DIARY, &fewer).await?;
    let config = balcony.pep_config(DIARY).await?;
    check(
        "configure max_items",
        config.max_items == Some(2) && config.access_model == Some(AccessModel::Whitelist),
        format!("{config:?}"),
    );

    balcony.pep_purge(DIARY).await?;
    let got = next_event(&chamber, DIARY).await;
    let left = balcony.pep_items(DIARY).await?;
    check(
        "purge (notified, no items left)",
        got == Some(Change::Purged) && left.is_empty(),
        format!("{got:?}, {} item(s)", left.len()),
    );

    balcony.pep_delete(DIARY).await?;
    let got = next_event(&chamber, DIARY).await;
    let gone = balcony.pep_items(DIARY).await;
    check(
        "delete (notified, node gone)",
        matches!(got, Some(Change::Deleted { .. }))
            && matches!(&gone, Err(ClientError::Stanza { condition, .. }) if condition == "item-not-found"),
        format!("{got:?}, then {gone:?}"),
    );

    balcony.close().await?;
    chamber.close().await?;
    Ok(failed)
}

fn main() -> ExitCode {
    let (addr, jid, password) = match common::parse_args() {
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
