//! The embedded (`embedded-io-async`, `no_std`) client driven on the host: a std TCP
//! socket wrapped as an async transport, run with `embassy_futures::block_on`. It logs in
//! (plaintext: the server must run with `--allow-plaintext-auth` and on a trusted link),
//! stores private XML and reads it back.
//!
//! ```sh
//! cargo run -p elsinore-examples --example embedded_client -- \
//!     --addr 127.0.0.1:5222 --jid alice@localhost --password secret
//! ```

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use elsinore_embedded::Client;
use elsinore_jid::Jid;
use elsinore_stream::Instant;
use elsinore_xml::Element;
use embedded_io_async::ErrorKind;

/// A std socket as an async transport (each call blocks, then completes).
struct Tcp(TcpStream);

impl embedded_io_async::ErrorType for Tcp {
    type Error = ErrorKind;
}

impl embedded_io_async::Read for Tcp {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        self.0.read(buf).map_err(|_| ErrorKind::Other)
    }
}

impl embedded_io_async::Write for Tcp {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        self.0.write(buf).map_err(|_| ErrorKind::Other)
    }
    async fn flush(&mut self) -> Result<(), ErrorKind> {
        self.0.flush().map_err(|_| ErrorKind::Other)
    }
}

/// Milliseconds since the first call: the embedded clock of this host run.
fn now() -> Instant {
    static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();
    let epoch = EPOCH.get_or_init(std::time::Instant::now);
    Instant::from_millis(u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX))
}

fn main() -> Result<()> {
    let mut addr = "127.0.0.1:5222".to_string();
    let (mut jid, mut password) = (None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--addr" => addr = args.next().context("--addr needs a value")?,
            "--jid" => jid = Some(args.next().context("--jid needs a value")?),
            "--password" => password = Some(args.next().context("--password needs a value")?),
            other => bail!("unknown argument {other:?}"),
        }
    }
    let jid = Jid::from_str(&jid.context("--jid is required")?).context("invalid --jid")?;
    let password = password.context("--password is required")?;
    let socket = TcpStream::connect(&addr).with_context(|| format!("connect to {addr}"))?;
    socket.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    // The receive buffer is the caller's: a few hundred bytes is enough.
    let mut buf = [0u8; 512];
    let mut client = Client::new(Tcp(socket), &mut buf, jid, &password, seed, now);
    embassy_futures::block_on(async {
        let bound = client
            .connect()
            .await
            .map_err(|e| anyhow::anyhow!("login: {e:?}"))?;
        println!("logged in as {bound}");
        let prefs = Element::new("exodus", "exodus:prefs")
            .with_child(Element::new("defaultnick", "exodus:prefs").with_text("Hamlet"));
        client
            .private_set(prefs.clone())
            .await
            .map_err(|e| anyhow::anyhow!("store: {e:?}"))?;
        let got = client
            .private_get("exodus", "exodus:prefs")
            .await
            .map_err(|e| anyhow::anyhow!("retrieve: {e:?}"))?;
        if got != vec![prefs] {
            bail!("read back something else: {got:?}");
        }
        println!("stored and read back exodus:prefs");
        client
            .close()
            .await
            .map_err(|e| anyhow::anyhow!("close: {e:?}"))?;
        Ok(())
    })
}
