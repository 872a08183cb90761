//! Command-line handling shared by the examples that `cargo xtask interop` runs with
//! `--addr HOST:PORT --jid USER@DOMAIN --password PW --insecure-tls`.

use std::str::FromStr;

use anyhow::{Result, anyhow, bail};
use elsinore_jid::Jid;

/// The server address, the account and its password from the command line. All three are
/// required, and so is `--insecure-tls`: the examples carry no trusted roots.
pub fn parse_args() -> Result<(String, Jid, String)> {
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
