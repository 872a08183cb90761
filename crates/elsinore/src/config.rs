//! Configuration: defaults, the TOML file, command-line overrides.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// The TOML configuration file. Every key is optional; unknown keys are an error so that a
/// typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// The served domain.
    pub domain: Option<String>,
    /// `ADDR:PORT` for client-to-server connections.
    pub listen: Option<String>,
    /// `ADDR:PORT` for direct TLS client connections (XEP-0368); off when absent.
    pub listen_tls: Option<String>,
    /// Answer every client stream with `see-other-host` naming this `host[:port]`.
    pub redirect: Option<String>,
    /// Data directory.
    pub data: Option<PathBuf>,
    /// Allow in-band registration (XEP-0077).
    pub allow_registration: Option<bool>,
    /// Allow authentication without TLS (loopback tests, benchmarks).
    pub allow_plaintext_auth: Option<bool>,
    /// Offer SASL ANONYMOUS (temporary accounts).
    pub allow_anonymous: Option<bool>,
    /// Offer SASL DIGEST-MD5 and store its secret when passwords are set (default off).
    pub sasl_digest_md5: Option<bool>,
    /// PEM certificate chain.
    pub cert: Option<PathBuf>,
    /// PEM private key.
    pub key: Option<PathBuf>,
    /// PEM files of the CAs whose client certificates log in with SASL EXTERNAL (c2s).
    #[serde(default)]
    pub client_ca: Vec<PathBuf>,
    /// PBKDF2 iterations for new SCRAM credentials.
    pub scram_iterations: Option<u32>,
    /// Group chat at `conference.<domain>` (default on).
    pub muc: Option<bool>,
    /// Group chat messages kept per room for joiners (default 20).
    pub muc_history: Option<usize>,
    /// Releases served by the update service at `update.<domain>` (`[[release]]` tables).
    #[serde(default)]
    pub release: Vec<ReleaseConfig>,
    /// `ADDR:PORT` for incoming server-to-server connections; off when absent.
    pub listen_s2s: Option<String>,
    /// Server dialback (default on).
    pub s2s_dialback: Option<bool>,
    /// Dialback secret, 64 hex digits (default: generated and kept in the store).
    pub s2s_secret: Option<String>,
    /// PEM files of the CAs that identify peer servers (SASL EXTERNAL).
    #[serde(default)]
    pub s2s_ca: Vec<PathBuf>,
    /// Test-only: accept unverifiable peer certificates (dialback, never EXTERNAL).
    pub s2s_insecure: Option<bool>,
    /// `[s2s.peers]`: remote domain → `ADDR:PORT` (there is no DNS lookup).
    pub s2s: Option<crate::s2s::S2sTable>,
}

/// One `[[release]]` table: release information for the update service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReleaseConfig {
    /// The software's name (`client` of `client@update.<domain>`).
    pub client: String,
    /// Its version.
    pub version: String,
    /// `release` (default), `beta` or `dev`.
    pub kind: Option<String>,
    /// `optional` (default) or `mandatory`.
    pub priority: Option<String>,
    /// Description.
    pub desc: Option<String>,
    /// Download address.
    pub url: String,
}

impl FileConfig {
    /// Reads and parses `path`; relative paths inside are taken relative to the file's
    /// directory.
    pub fn load(path: &Path) -> Result<FileConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config file {}", path.display()))?;
        let mut config: FileConfig = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        let base = path.parent().unwrap_or(Path::new(""));
        for p in [&mut config.data, &mut config.cert, &mut config.key]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        for p in config.s2s_ca.iter_mut().chain(&mut config.client_ca) {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        }
        Ok(config)
    }

    /// Loads `path` if given, else the empty configuration.
    pub fn load_opt(path: Option<&Path>) -> Result<FileConfig> {
        path.map_or_else(|| Ok(FileConfig::default()), FileConfig::load)
    }
}

/// The effective configuration after defaults, file and command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The served domain.
    pub domain: String,
    /// Listen address.
    pub listen: String,
    /// Direct TLS listen address, if any.
    pub listen_tls: Option<String>,
    /// `see-other-host` target for every client stream (normalized), if redirecting.
    pub redirect: Option<String>,
    /// Data directory.
    pub data: PathBuf,
    /// In-band registration.
    pub allow_registration: bool,
    /// Authentication without TLS.
    pub allow_plaintext_auth: bool,
    /// SASL ANONYMOUS.
    pub allow_anonymous: bool,
    /// SASL DIGEST-MD5 offered, and its secret stored with new passwords.
    pub sasl_digest_md5: bool,
    /// Certificate and key files, if configured (else a generated self-signed pair).
    pub cert_key: Option<(PathBuf, PathBuf)>,
    /// CA files for c2s client certificates (SASL EXTERNAL); empty: none asked for.
    pub client_ca: Vec<PathBuf>,
    /// SCRAM iterations for new credentials.
    pub scram_iterations: u32,
    /// Group chat on.
    pub muc: bool,
    /// Group chat history length.
    pub muc_history: usize,
    /// Update service releases.
    pub releases: Vec<elsinore_server::Release>,
    /// Server-to-server.
    pub s2s: crate::s2s::S2sFile,
}

/// Command-line overrides (all optional).
#[derive(Debug, Default)]
pub struct Overrides {
    pub domain: Option<String>,
    pub listen: Option<String>,
    pub listen_tls: Option<String>,
    pub redirect: Option<String>,
    pub data: Option<PathBuf>,
    pub allow_registration: bool,
    pub allow_plaintext_auth: bool,
    pub allow_anonymous: bool,
    pub allow_digest_md5: bool,
    pub client_ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub listen_s2s: Option<String>,
}

/// Default domain.
pub const DEFAULT_DOMAIN: &str = "localhost";
/// Default c2s listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:5222";
/// Default data directory.
pub const DEFAULT_DATA: &str = "./elsinore-data";

impl Settings {
    /// Defaults, overridden by the file, overridden by the command line.
    pub fn resolve(file: FileConfig, cli: Overrides) -> Result<Settings> {
        let cert = cli.cert.or(file.cert);
        let key = cli.key.or(file.key);
        let cert_key = match (cert, key) {
            (Some(c), Some(k)) => Some((c, k)),
            (None, None) => None,
            (Some(_), None) => anyhow::bail!("a certificate was given without its key (--key)"),
            (None, Some(_)) => anyhow::bail!("a key was given without its certificate (--cert)"),
        };
        let scram_iterations = file
            .scram_iterations
            .unwrap_or(elsinore_server::accounts::DEFAULT_SCRAM_ITERATIONS);
        if scram_iterations < 4096 {
            anyhow::bail!(
                "scram_iterations must be at least 4096 (RFC 7677), got {scram_iterations}"
            );
        }
        let s2s = crate::s2s::S2sFile {
            listen: cli.listen_s2s.or(file.listen_s2s),
            dialback: file.s2s_dialback.unwrap_or(true),
            secret: file.s2s_secret,
            ca: file.s2s_ca,
            insecure: file.s2s_insecure.unwrap_or(false),
            peers: file.s2s.map(|t| t.peers).unwrap_or_default(),
        };
        let mut releases = Vec::new();
        for r in file.release {
            let kind = match r.kind.as_deref().unwrap_or("release") {
                "release" => elsinore_server::ReleaseKind::Release,
                "beta" => elsinore_server::ReleaseKind::Beta,
                "dev" => elsinore_server::ReleaseKind::Dev,
                other => anyhow::bail!("release kind must be release, beta or dev, got {other:?}"),
            };
            releases.push(elsinore_server::Release {
                client: r.client.to_lowercase(),
                version: r.version,
                kind,
                priority: r.priority.unwrap_or_else(|| "optional".into()),
                desc: r.desc.unwrap_or_default(),
                url: r.url,
            });
        }
        Ok(Settings {
            muc: file.muc.unwrap_or(true),
            muc_history: file.muc_history.unwrap_or(20),
            releases,
            domain: cli
                .domain
                .or(file.domain)
                .unwrap_or_else(|| DEFAULT_DOMAIN.into()),
            listen: cli
                .listen
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.into()),
            listen_tls: cli.listen_tls.or(file.listen_tls),
            redirect: cli
                .redirect
                .or(file.redirect)
                .map(|r| redirect_target(&r))
                .transpose()?,
            data: cli
                .data
                .or(file.data)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA)),
            allow_registration: cli.allow_registration || file.allow_registration.unwrap_or(false),
            allow_plaintext_auth: cli.allow_plaintext_auth
                || file.allow_plaintext_auth.unwrap_or(false),
            allow_anonymous: cli.allow_anonymous || file.allow_anonymous.unwrap_or(false),
            sasl_digest_md5: cli.allow_digest_md5 || file.sasl_digest_md5.unwrap_or(false),
            cert_key,
            client_ca: match cli.client_ca {
                Some(p) => vec![p],
                None => file.client_ca,
            },
            scram_iterations,
            s2s,
        })
    }

    /// The redb file inside the data directory.
    pub fn store_path(&self) -> PathBuf {
        self.data.join("elsinore.redb")
    }
}

/// Checks a `see-other-host` target and writes it as RFC 6120 4.9.3.19 wants: `host`,
/// `host:port`, an IPv4 address with or without port, an IPv6 address in brackets (added
/// when missing) with or without port.
pub fn redirect_target(text: &str) -> Result<String> {
    use std::net::{IpAddr, SocketAddr};
    let t = text.trim();
    let bad = || anyhow::anyhow!("redirect must be host, host:port or [ipv6]:port, got {text:?}");
    if t.is_empty()
        || t.len() > 1023
        || t.chars()
            .any(|c| c.is_whitespace() || "<>&'\"/".contains(c))
    {
        return Err(bad());
    }
    if let Ok(addr) = t.parse::<SocketAddr>() {
        return Ok(addr.to_string());
    }
    match t.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => return Ok(format!("[{v6}]")),
        Ok(IpAddr::V4(v4)) => return Ok(v4.to_string()),
        Err(_) => {}
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|v6| format!("[{v6}]"))
            .map_err(|_| bad());
    }
    let (host, port) = match t.split_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (t, None),
    };
    if host.is_empty() || host.starts_with('[') || port.is_some_and(|p| p.parse::<u16>().is_err()) {
        return Err(bad());
    }
    Ok(t.to_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<FileConfig> {
        Ok(toml::from_str(text)?)
    }

    #[test]
    fn defaults() {
        let s = Settings::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(s.domain, "localhost");
        assert_eq!(s.listen, "127.0.0.1:5222");
        assert_eq!(s.data, PathBuf::from("./elsinore-data"));
        assert_eq!(
            s.store_path(),
            PathBuf::from("./elsinore-data/elsinore.redb")
        );
        assert!(!s.allow_registration && !s.allow_plaintext_auth);
        assert!(!s.sasl_digest_md5, "DIGEST-MD5 is off by default");
        assert!(s.cert_key.is_none());
    }

    #[test]
    fn command_line_overrides_file() {
        let file =
            parse("domain = 'example.org'\nlisten = '0.0.0.0:5222'\nallow_registration = true\n")
                .unwrap();
        let cli = Overrides {
            domain: Some("elsinore.test".into()),
            ..Overrides::default()
        };
        let s = Settings::resolve(file, cli).unwrap();
        assert_eq!(s.domain, "elsinore.test");
        assert_eq!(s.listen, "0.0.0.0:5222");
        assert!(s.allow_registration);
    }

    #[test]
    fn digest_md5_from_file_or_flag() {
        let s = Settings::resolve(
            parse("sasl_digest_md5 = true\n").unwrap(),
            Overrides::default(),
        );
        assert!(s.unwrap().sasl_digest_md5);
        let cli = Overrides {
            allow_digest_md5: true,
            ..Overrides::default()
        };
        assert!(
            Settings::resolve(FileConfig::default(), cli)
                .unwrap()
                .sasl_digest_md5
        );
    }

    #[test]
    fn client_ca_from_file_or_flag() {
        let s = Settings::resolve(
            parse("client_ca = ['a.pem', 'b.pem']\n").unwrap(),
            Overrides::default(),
        );
        assert_eq!(s.unwrap().client_ca.len(), 2);
        let cli = Overrides {
            client_ca: Some(PathBuf::from("c.pem")),
            ..Overrides::default()
        };
        let s = Settings::resolve(parse("client_ca = ['a.pem']\n").unwrap(), cli).unwrap();
        assert_eq!(s.client_ca, vec![PathBuf::from("c.pem")]);
        let d = Settings::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert!(d.client_ca.is_empty(), "no client certificates by default");
    }

    #[test]
    fn redirect_targets() {
        for (given, sent) in [
            ("xmpp.example.net", "xmpp.example.net"),
            ("xmpp.example.net:5222", "xmpp.example.net:5222"),
            ("192.0.2.1:5222", "192.0.2.1:5222"),
            ("2001:db8::1", "[2001:db8::1]"),
            ("[2001:db8::1]", "[2001:db8::1]"),
            ("[2001:db8::1]:5222", "[2001:db8::1]:5222"),
        ] {
            assert_eq!(redirect_target(given).unwrap(), sent, "{given}");
        }
        for bad in [
            "",
            "a b",
            "host:port",
            "host:70000",
            "[nothost]:1",
            "[::1]x",
            "<x>",
        ] {
            assert!(redirect_target(bad).is_err(), "{bad:?}");
        }
        let s = Settings::resolve(parse("redirect = '::1'\n").unwrap(), Overrides::default());
        assert_eq!(s.unwrap().redirect.as_deref(), Some("[::1]"));
        assert!(
            Settings::resolve(parse("redirect = 'a b'\n").unwrap(), Overrides::default()).is_err()
        );
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let err = parse("domian = 'typo.example'\n").map(|_| ()).unwrap_err();
        assert!(format!("{err:#}").contains("domian"), "{err:#}");
    }

    #[test]
    fn cert_needs_key() {
        let file = parse("cert = '/tmp/c.pem'\n").unwrap();
        assert!(Settings::resolve(file, Overrides::default()).is_err());
    }

    #[test]
    fn services_keys() {
        let file = parse(
            "muc = false\nmuc_history = 5\n[[release]]\nclient = 'WinJab'\nversion = '0.9.1.1'\n\
             kind = 'beta'\nurl = 'http://update.denmark/w.exe'\n",
        )
        .unwrap();
        let s = Settings::resolve(file, Overrides::default()).unwrap();
        assert!(!s.muc);
        assert_eq!(s.muc_history, 5);
        assert_eq!(s.releases.len(), 1);
        assert_eq!(s.releases[0].client, "winjab");
        assert_eq!(s.releases[0].kind, elsinore_server::ReleaseKind::Beta);
        let bad = parse("[[release]]\nclient = 'a'\nversion = '1'\nkind = 'nightly'\nurl = 'u'\n")
            .unwrap();
        assert!(Settings::resolve(bad, Overrides::default()).is_err());
        let d = Settings::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert!(d.muc && d.releases.is_empty());
    }

    #[test]
    fn too_few_iterations_rejected() {
        let file = parse("scram_iterations = 10\n").unwrap();
        assert!(Settings::resolve(file, Overrides::default()).is_err());
    }

    #[test]
    fn s2s_keys() {
        let file = parse(
            "listen_s2s = \"127.0.0.1:5269\"\ns2s_dialback = false\ns2s_insecure = true\n\
             s2s_ca = [\"ca.pem\"]\n[s2s.peers]\n\"two.localhost\" = \"127.0.0.1:5270\"\n",
        )
        .unwrap();
        let s = Settings::resolve(file, Overrides::default()).unwrap();
        assert!(s.s2s.enabled());
        assert!(!s.s2s.dialback && s.s2s.insecure);
        assert_eq!(
            s.s2s.peers.get("two.localhost").map(String::as_str),
            Some("127.0.0.1:5270")
        );
        let s = Settings::resolve(parse("").unwrap(), Overrides::default()).unwrap();
        assert!(!s.s2s.enabled(), "off by default");
    }
}
