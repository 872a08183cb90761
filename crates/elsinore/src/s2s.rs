//! Server-to-server settings: the `listen_s2s`, `s2s_*` keys and the `[s2s.peers]` table,
//! the dialback secret, and the runtime options for the tokio adapter.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use elsinore_redb::RedbStore;
use elsinore_storage::{EffectResult, Op, Store};
use elsinore_tokio::{S2sOptions, random_seed};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;
use tokio::net::TcpListener;

/// The `[s2s]` table of the configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S2sTable {
    /// `[s2s.peers]`: remote domain → `ADDR:PORT` of its server (there is no DNS lookup).
    #[serde(default)]
    pub peers: BTreeMap<String, String>,
}

/// Effective server-to-server settings.
#[derive(Debug, Clone)]
pub struct S2sFile {
    /// Listen address for incoming s2s connections (off when absent).
    pub listen: Option<String>,
    /// Use and offer dialback (default on).
    pub dialback: bool,
    /// Dialback secret as 64 hex digits (default: generated and kept in the store).
    pub secret: Option<String>,
    /// CA certificates (PEM files) that identify peer servers.
    pub ca: Vec<PathBuf>,
    /// Test-only: accept unverifiable peer certificates (then dialback, never EXTERNAL).
    pub insecure: bool,
    /// Remote domain → address.
    pub peers: BTreeMap<String, String>,
    /// No stanza on a stream for this long closes it.
    pub idle_timeout: std::time::Duration,
    /// Silence after which an outgoing stream sends a whitespace keepalive.
    pub keepalive_interval: std::time::Duration,
    /// No write progress for this long while stanzas wait for room ends an outgoing stream.
    pub write_timeout: std::time::Duration,
    /// Stanzas queued per remote domain while its stream is set up.
    pub max_queue: usize,
    /// Outgoing streams at once.
    pub max_outgoing: usize,
    /// Dialback verifications in flight at once.
    pub max_verifications: usize,
}

impl S2sFile {
    /// Server-to-server is on when it listens or has peers.
    pub fn enabled(&self) -> bool {
        self.listen.is_some() || !self.peers.is_empty()
    }
}

/// The dialback secret: configured, or made on first start and kept in the store
/// (keys issued before a restart must still verify).
pub fn secret(configured: Option<&str>, store: &mut RedbStore) -> Result<[u8; 32]> {
    if let Some(hex) = configured {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.is_ascii() {
            bail!("s2s_secret must be 64 hexadecimal digits");
        }
        let mut out = [0u8; 32];
        for (i, b) in out.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).context("s2s_secret")?;
            *b = u8::from_str_radix(pair, 16).context("s2s_secret must be hexadecimal")?;
        }
        return Ok(out);
    }
    let key = elsinore_storage::Key::new("", elsinore_storage::Space::Account, "s2s-secret");
    match store.apply(&Op::Get(key.clone())) {
        EffectResult::Value(Some(v)) => {
            <[u8; 32]>::try_from(v.as_slice()).context("the stored s2s secret is corrupt")
        }
        EffectResult::Value(None) => {
            let secret = random_seed()?;
            match store.apply(&Op::Put(key, secret.to_vec())) {
                EffectResult::Done => Ok(secret),
                EffectResult::Failed(e) => Err(e).context("cannot store the s2s secret"),
                other => bail!("unexpected store result {other:?}"),
            }
        }
        EffectResult::Failed(e) => Err(e).context("cannot read the store"),
        other => bail!("unexpected store result {other:?}"),
    }
}

/// The adapter's options and the s2s listener, when server-to-server is on.
pub async fn runtime(
    s2s: &S2sFile,
    cert: &Path,
    key: &Path,
) -> Result<Option<(Option<TcpListener>, S2sOptions)>> {
    if !s2s.enabled() {
        return Ok(None);
    }
    let mut peers = std::collections::HashMap::new();
    for (domain, addr) in &s2s.peers {
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("[s2s.peers] {domain:?}: {addr:?} is not ADDR:PORT"))?;
        peers.insert(domain.to_ascii_lowercase(), addr);
    }
    let mut ca = Vec::new();
    for path in &s2s.ca {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        for c in CertificateDer::pem_slice_iter(&pem) {
            ca.push(c.with_context(|| format!("invalid PEM in {}", path.display()))?);
        }
    }
    let cert_pem =
        std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
    let cert_chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in {}", cert.display()))?;
    let key_pem = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("no usable private key in {}", key.display()))?;
    let listener = match &s2s.listen {
        None => None,
        Some(addr) => {
            let l = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (server-to-server)"))?;
            println!(
                "elsinore: listening for servers on {}",
                l.local_addr().context("listener address")?
            );
            Some(l)
        }
    };
    Ok(Some((
        listener,
        S2sOptions {
            peers,
            ca,
            insecure: s2s.insecure,
            cert_chain,
            key,
        },
    )))
}
