//! The server's TLS certificate: configured files, or a self-signed one made on first start.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tracing::{info, warn};

/// Loads the configured certificate, or the generated one under `data/tls/` (making it on
/// first use), and builds the rustls server configuration.
pub fn server_config(
    cert_key: Option<&(PathBuf, PathBuf)>,
    data: &Path,
    domain: &str,
) -> Result<Arc<rustls::ServerConfig>> {
    let (cert_path, key_path) = match cert_key {
        Some((c, k)) => (c.clone(), k.clone()),
        None => self_signed(data, domain)?,
    };
    let cert_pem = fs::read(&cert_path)
        .with_context(|| format!("cannot read certificate {}", cert_path.display()))?;
    let key_pem =
        fs::read(&key_path).with_context(|| format!("cannot read key {}", key_path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("invalid PEM in {}", cert_path.display()))?;
    if certs.is_empty() {
        bail!("no certificate found in {}", cert_path.display());
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .with_context(|| format!("no usable private key in {}", key_path.display()))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS protocol versions")?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .context("certificate and key do not fit together")?;
    Ok(Arc::new(config))
}

/// Every certificate in the PEM files `paths` (CA certificates).
pub fn load_cas(paths: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>> {
    let mut out = Vec::new();
    for path in paths {
        let pem = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let before = out.len();
        for c in CertificateDer::pem_slice_iter(&pem) {
            out.push(c.with_context(|| format!("invalid PEM in {}", path.display()))?);
        }
        if out.len() == before {
            bail!("no certificate found in {}", path.display());
        }
    }
    Ok(out)
}

/// Paths of the generated self-signed pair, generating it if missing.
fn self_signed(data: &Path, domain: &str) -> Result<(PathBuf, PathBuf)> {
    let dir = data.join("tls");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let generated = rcgen::generate_simple_self_signed(vec![domain.to_string()])
        .context("cannot generate a self-signed certificate")?;
    write_private(&key, generated.signing_key.serialize_pem().as_bytes())?;
    fs::write(&cert, generated.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    info!(cert = %cert.display(), "generated a self-signed certificate for {domain}");
    warn!(
        "clients will not trust a self-signed certificate; configure cert and key for production"
    );
    Ok((cert, key))
}

/// Writes a secret file readable by its owner only (where the platform has permissions).
fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    std::io::Write::write_all(&mut file, bytes)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
