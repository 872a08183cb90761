//! Blocking client over std threads and rustls (no async runtime): log in over
//! STARTTLS, store private XML (XEP-0049) and read it back.
//!
//! ```sh
//! cargo run -p elsinore-examples --example std_client -- \
//!     --addr 127.0.0.1:5222 --jid alice@localhost --password secret --insecure-tls
//! ```

use std::str::FromStr;

use anyhow::{Context, Result, bail};
use elsinore_jid::Jid;
use elsinore_std::{Client, ClientOptions};
use elsinore_stream::TlsPolicy;
use elsinore_xml::Element;

fn main() -> Result<()> {
    let mut addr = "127.0.0.1:5222".to_string();
    let (mut jid, mut password, mut insecure) = (None, None, false);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().context("--addr needs a value")?,
            "--jid" => jid = Some(args.next().context("--jid needs a value")?),
            "--password" => password = Some(args.next().context("--password needs a value")?),
            "--insecure-tls" => insecure = true,
            other => bail!("unknown argument {other:?}"),
        }
    }
    let jid = Jid::from_str(&jid.context("--jid is required")?).context("invalid --jid")?;
    let password = password.context("--password is required")?;
    if !insecure {
        bail!("this example has no CA store: pass --insecure-tls (test servers only)");
    }
    let mut opts = ClientOptions::new(addr, jid, password);
    opts.tls = TlsPolicy::Required;
    // Accepts any certificate: a rustls config, shared with the tokio adapter's tests.
    opts.tls_config = Some(elsinore_tokio::insecure_client_config());
    let mut client = Client::connect(opts).context("login")?;
    if let Some(jid) = client.jid() {
        println!("logged in as {jid}");
    }
    let prefs = Element::new("exodus", "exodus:prefs")
        .with_child(Element::new("defaultnick", "exodus:prefs").with_text("Hamlet"));
    client.private_set(prefs.clone()).context("store")?;
    let got = client
        .private_get("exodus", "exodus:prefs")
        .context("retrieve")?;
    if got != vec![prefs] {
        bail!("read back something else: {got:?}");
    }
    println!("stored and read back exodus:prefs");
    client.close().context("close")?;
    Ok(())
}
