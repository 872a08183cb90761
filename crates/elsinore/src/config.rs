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
    /// Domains no longer served here: client and server streams to them get `host-gone`.
    #[serde(default)]
    pub gone_domains: Vec<String>,
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
    /// Accept XEP-0078 `<digest/>` logins on pre-1.0 streams, keeping the passwords set
    /// from then on (default off: a stored password is plaintext-equivalent).
    pub legacy_auth_digest: Option<bool>,
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
    /// Threads running connections (default 1; see `Settings::worker_threads`).
    pub worker_threads: Option<usize>,
    /// Microseconds a busy runtime thread waits before polling the sockets again (default
    /// 50, 0 off, at most 1000; see `Settings::coalesce_us`).
    pub coalesce_us: Option<u64>,
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
    /// Seconds without a stanza after which an s2s stream is closed (default 600).
    pub s2s_idle_timeout_secs: Option<u64>,
    /// Seconds of silence after which an outgoing s2s stream sends a whitespace keepalive
    /// (default 90; below the idle timeout).
    pub s2s_keepalive_interval_secs: Option<u64>,
    /// Seconds an outgoing s2s stream may make no write progress while stanzas wait for
    /// room in its output before it is ended and they bounce (default 60).
    pub s2s_write_timeout_secs: Option<u64>,
    /// Stanzas queued per remote domain while its stream is set up (default 100).
    pub s2s_max_queue: Option<usize>,
    /// Outgoing s2s streams at once (default 256).
    pub s2s_max_outgoing: Option<usize>,
    /// Dialback verifications of incoming streams in flight at once (default 256).
    pub s2s_max_verifications: Option<usize>,
    /// `[s2s.peers]`: remote domain → `ADDR:PORT` (there is no DNS lookup).
    pub s2s: Option<crate::s2s::S2sTable>,
    /// `[limits]`: resource limits (docs/reliability.md, "Limits").
    #[serde(default)]
    pub limits: LimitsFile,
}

/// The `[limits]` table. Every key is optional; absent keys keep the defaults documented
/// in docs/reliability.md. A rate of 0 turns that rate limit off; a count of 0 where noted
/// means "no limit".
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Largest stanza (top-level element) in bytes.
    pub max_stanza_bytes: Option<usize>,
    /// Deepest element nesting.
    pub max_depth: Option<usize>,
    /// Most attributes on one element.
    pub max_attributes: Option<usize>,
    /// Longest name or attribute value in bytes.
    pub max_token_bytes: Option<usize>,
    /// Output one connection may leave unread before the server gives up on it.
    pub max_unsent_bytes: Option<usize>,
    /// Connections open at once (all addresses).
    pub max_connections: Option<usize>,
    /// Connections open at once from one address (IPv6: one /64); 0 = no limit.
    pub connections_per_ip: Option<usize>,
    /// Whether loopback connections are exempt from the per-address limits.
    pub exempt_loopback: Option<bool>,
    /// Sessions (bound resources) one account may have at once.
    pub sessions_per_account: Option<usize>,
    /// Sustained stanzas per second per connection; 0 = no limit.
    pub stanzas_per_second: Option<u32>,
    /// Stanzas a connection may send at once.
    pub stanza_burst: Option<u32>,
    /// Sustained bytes per second per connection; 0 = no limit.
    pub bytes_per_second: Option<u32>,
    /// Bytes a connection may send at once.
    pub byte_burst: Option<u32>,
    /// Failed authentications on one stream before it is closed.
    pub auth_failures_per_stream: Option<u32>,
    /// Failures (per address or account, within the window) after which attempts are
    /// delayed; 0 = never.
    pub auth_delay_after: Option<u32>,
    /// Failures from one address after which attempts are refused; 0 = never.
    pub auth_refuse_after_ip: Option<u32>,
    /// Failures against one account after which attempts are refused; 0 = never.
    pub auth_refuse_after_account: Option<u32>,
    /// How long failures are remembered, seconds.
    pub auth_window_secs: Option<u64>,
    /// Time from connect to an established session (unauthenticated lifetime), seconds.
    pub negotiation_timeout_secs: Option<u64>,
}

/// Limits resolved from `[limits]`: the core's part and the adapter's.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Per-connection limits.
    pub conn: elsinore_server::Limits,
    /// Limits across connections.
    pub abuse: elsinore_server::AbuseLimits,
    /// Sessions per account.
    pub sessions_per_account: usize,
    /// Connections at once (the adapter's cap).
    pub max_connections: usize,
}

impl LimitsFile {
    /// Defaults overridden by the keys present; nonsensical values are an error.
    pub fn resolve(&self) -> Result<LimitSettings> {
        use elsinore_server::Rate;
        let mut conn = elsinore_server::Limits::default();
        let mut abuse = elsinore_server::AbuseLimits::default();
        let positive = |name: &str, v: Option<usize>, into: &mut usize| -> Result<()> {
            if let Some(v) = v {
                anyhow::ensure!(v > 0, "limits.{name} must be at least 1");
                *into = v;
            }
            Ok(())
        };
        positive(
            "max_stanza_bytes",
            self.max_stanza_bytes,
            &mut conn.xml.max_element_bytes,
        )?;
        positive("max_depth", self.max_depth, &mut conn.xml.max_depth)?;
        positive(
            "max_attributes",
            self.max_attributes,
            &mut conn.xml.max_attributes,
        )?;
        positive(
            "max_token_bytes",
            self.max_token_bytes,
            &mut conn.xml.max_token_length,
        )?;
        positive(
            "max_unsent_bytes",
            self.max_unsent_bytes,
            &mut conn.max_unsent_bytes,
        )?;
        let mut max_connections = elsinore_tokio::DEFAULT_MAX_CONNECTIONS;
        positive(
            "max_connections",
            self.max_connections,
            &mut max_connections,
        )?;
        let mut sessions_per_account = 16;
        positive(
            "sessions_per_account",
            self.sessions_per_account,
            &mut sessions_per_account,
        )?;
        if let Some(n) = self.connections_per_ip {
            abuse.max_connections_per_ip = n;
        }
        if let Some(b) = self.exempt_loopback {
            abuse.exempt_loopback = b;
        }
        let rate = |name: &str, per: Option<u32>, burst: Option<u32>, current: Option<Rate>| {
            let per = per.unwrap_or(current.map_or(0, |r| r.per_second));
            let burst = burst.unwrap_or(current.map_or(0, |r| r.burst));
            if per == 0 {
                return Ok(None);
            }
            anyhow::ensure!(burst > 0, "limits.{name}_burst must be at least 1");
            Ok(Some(Rate {
                per_second: per,
                burst,
            }))
        };
        conn.stanza_rate = rate(
            "stanza",
            self.stanzas_per_second,
            self.stanza_burst,
            conn.stanza_rate,
        )?;
        conn.byte_rate = rate(
            "byte",
            self.bytes_per_second,
            self.byte_burst,
            conn.byte_rate,
        )?;
        if let Some(n) = self.auth_failures_per_stream {
            anyhow::ensure!(n > 0, "limits.auth_failures_per_stream must be at least 1");
            conn.max_auth_failures = n;
        }
        if let Some(n) = self.auth_delay_after {
            abuse.auth_delay_after = n;
        }
        if let Some(n) = self.auth_refuse_after_ip {
            abuse.auth_refuse_after_ip = n;
        }
        if let Some(n) = self.auth_refuse_after_account {
            abuse.auth_refuse_after_account = n;
        }
        if let Some(s) = self.auth_window_secs {
            anyhow::ensure!(s > 0, "limits.auth_window_secs must be at least 1");
            abuse.auth_window = std::time::Duration::from_secs(s);
        }
        if let Some(s) = self.negotiation_timeout_secs {
            anyhow::ensure!(s > 0, "limits.negotiation_timeout_secs must be at least 1");
            conn.negotiation_timeout = std::time::Duration::from_secs(s);
        }
        Ok(LimitSettings {
            conn,
            abuse,
            sessions_per_account,
            max_connections,
        })
    }
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
    /// Former domains (`host-gone`).
    pub gone_domains: Vec<String>,
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
    /// XEP-0078 digest logins accepted, and passwords kept for them.
    pub legacy_auth_digest: bool,
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
    /// Threads of the async runtime that runs the connections. One by default: the core
    /// handles every stanza under one lock, so more threads add cross-thread wakeups (about
    /// 15 % more CPU per routed message in the load benchmark) without running the core in
    /// parallel; they help only where socket and TLS work, outside the lock, is the limit.
    /// Storage runs on its own thread either way. One thread runs tokio's current-thread
    /// scheduler, more its multi-thread one.
    pub worker_threads: usize,
    /// Wake-up coalescing (`elsinore_tokio::coalesce`): under sustained load, when
    /// connections have had more than one stanza queued at once, a runtime thread waits this
    /// long before it polls the sockets again, so each read and write carries more stanzas
    /// (about a third less CPU per routed message in the load benchmark's pipelined chat, at
    /// up to this much more latency). A lightly loaded server never waits. Zero turns it off.
    pub coalesce: std::time::Duration,
    /// Update service releases.
    pub releases: Vec<elsinore_server::Release>,
    /// Server-to-server.
    pub s2s: crate::s2s::S2sFile,
    /// Resource limits.
    pub limits: LimitSettings,
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
        let mut s2s = s2s_file(&file)?;
        if let Some(listen) = cli.listen_s2s {
            s2s.listen = Some(listen);
        }
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
        let limits = file.limits.resolve()?;
        let worker_threads = file.worker_threads.unwrap_or(1);
        anyhow::ensure!(
            (1..=1024).contains(&worker_threads),
            "worker_threads must be from 1 to 1024, got {worker_threads}"
        );
        let coalesce_us = file
            .coalesce_us
            .unwrap_or(elsinore_tokio::coalesce::DEFAULT_DELAY.as_micros() as u64);
        let coalesce = std::time::Duration::from_micros(coalesce_us);
        anyhow::ensure!(
            coalesce <= elsinore_tokio::coalesce::MAX_DELAY,
            "coalesce_us must be from 0 to {}, got {coalesce_us}",
            elsinore_tokio::coalesce::MAX_DELAY.as_micros()
        );
        Ok(Settings {
            worker_threads,
            coalesce,
            limits,
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
            gone_domains: file.gone_domains,
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
            legacy_auth_digest: file.legacy_auth_digest.unwrap_or(false),
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

/// The server-to-server keys, checked: counts of at least 1, a keepalive interval below
/// the idle timeout (a stream idle for the timeout is closed, so a longer interval would
/// never send one).
fn s2s_file(file: &FileConfig) -> Result<crate::s2s::S2sFile> {
    let defaults = elsinore_server::S2sSettings::default();
    let secs = |name: &str, v: Option<u64>, default: std::time::Duration| match v {
        Some(0) => anyhow::bail!("{name} must be at least 1"),
        Some(s) => Ok(std::time::Duration::from_secs(s)),
        None => Ok(default),
    };
    let idle_timeout = secs(
        "s2s_idle_timeout_secs",
        file.s2s_idle_timeout_secs,
        defaults.idle_timeout,
    )?;
    let keepalive_interval = secs(
        "s2s_keepalive_interval_secs",
        file.s2s_keepalive_interval_secs,
        defaults.keepalive_interval,
    )?;
    let write_timeout = secs(
        "s2s_write_timeout_secs",
        file.s2s_write_timeout_secs,
        defaults.write_timeout,
    )?;
    if keepalive_interval >= idle_timeout {
        let (k, i) = (keepalive_interval.as_secs(), idle_timeout.as_secs());
        match file.s2s_keepalive_interval_secs {
            Some(_) => anyhow::bail!(
                "s2s_keepalive_interval_secs ({k}) must be less than s2s_idle_timeout_secs \
                 ({i}): an idle stream is closed before its keepalive would be sent"
            ),
            None => anyhow::bail!(
                "s2s_idle_timeout_secs ({i}) is not above the default keepalive interval \
                 ({k} s): set s2s_keepalive_interval_secs below it"
            ),
        }
    }
    let count = |name: &str, why: &str, v: Option<usize>, default: usize| match v {
        Some(0) => anyhow::bail!("{name} must be at least 1 ({why})"),
        Some(n) => Ok(n),
        None => Ok(default),
    };
    Ok(crate::s2s::S2sFile {
        listen: file.listen_s2s.clone(),
        dialback: file.s2s_dialback.unwrap_or(true),
        secret: file.s2s_secret.clone(),
        ca: file.s2s_ca.clone(),
        insecure: file.s2s_insecure.unwrap_or(false),
        peers: file
            .s2s
            .as_ref()
            .map(|t| t.peers.clone())
            .unwrap_or_default(),
        idle_timeout,
        keepalive_interval,
        write_timeout,
        max_queue: count(
            "s2s_max_queue",
            "0 would bounce every stanza sent while a stream is set up",
            file.s2s_max_queue,
            defaults.max_queue,
        )?,
        max_outgoing: count(
            "s2s_max_outgoing",
            "0 would bounce every stanza to another server; leave s2s off instead",
            file.s2s_max_outgoing,
            defaults.max_outgoing,
        )?,
        max_verifications: count(
            "s2s_max_verifications",
            "0 would refuse every dialback",
            file.s2s_max_verifications,
            defaults.max_verifications,
        )?,
    })
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
    fn legacy_auth_digest_is_off_unless_configured() {
        let off = Settings::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert!(!off.legacy_auth_digest);
        let on = Settings::resolve(
            parse("legacy_auth_digest = true\n").unwrap(),
            Overrides::default(),
        );
        assert!(on.unwrap().legacy_auth_digest);
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
        let s = Settings::resolve(
            parse("gone_domains = ['old.example']\n").unwrap(),
            Overrides::default(),
        );
        assert_eq!(s.unwrap().gone_domains, vec!["old.example".to_string()]);
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
    fn coalescing_defaults_on_and_is_bounded() {
        let s = Settings::resolve(parse("").unwrap(), Overrides::default()).unwrap();
        assert_eq!(s.coalesce, elsinore_tokio::coalesce::DEFAULT_DELAY);
        let s =
            Settings::resolve(parse("coalesce_us = 0\n").unwrap(), Overrides::default()).unwrap();
        assert!(s.coalesce.is_zero());
        let err = Settings::resolve(parse("coalesce_us = 5000\n").unwrap(), Overrides::default())
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err:#}").contains("coalesce_us"), "{err:#}");
    }

    #[test]
    fn worker_threads_default_to_one_and_zero_is_refused() {
        let s = Settings::resolve(parse("").unwrap(), Overrides::default()).unwrap();
        assert_eq!(s.worker_threads, 1);
        let s = Settings::resolve(parse("worker_threads = 4\n").unwrap(), Overrides::default())
            .unwrap();
        assert_eq!(s.worker_threads, 4);
        let err = Settings::resolve(parse("worker_threads = 0\n").unwrap(), Overrides::default())
            .map(|_| ())
            .unwrap_err();
        assert!(format!("{err:#}").contains("worker_threads"), "{err:#}");
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
    fn limits_table() {
        let d = Settings::resolve(FileConfig::default(), Overrides::default()).unwrap();
        assert_eq!(d.limits.abuse.max_connections_per_ip, 32);
        assert_eq!(
            d.limits.conn.negotiation_timeout,
            std::time::Duration::from_secs(60)
        );
        assert!(d.limits.conn.stanza_rate.is_some());
        let file = parse(
            "[limits]\nconnections_per_ip = 4\nexempt_loopback = false\n\
             negotiation_timeout_secs = 20\nstanzas_per_second = 5\nstanza_burst = 9\n\
             bytes_per_second = 0\nauth_delay_after = 1\nauth_refuse_after_ip = 2\n\
             auth_refuse_after_account = 3\nauth_window_secs = 60\nsessions_per_account = 2\n\
             max_stanza_bytes = 65536\nmax_connections = 100\nauth_failures_per_stream = 5\n",
        )
        .unwrap();
        let l = Settings::resolve(file, Overrides::default())
            .unwrap()
            .limits;
        assert_eq!(l.abuse.max_connections_per_ip, 4);
        assert!(!l.abuse.exempt_loopback);
        assert_eq!(
            l.conn.negotiation_timeout,
            std::time::Duration::from_secs(20)
        );
        assert_eq!(
            l.conn.stanza_rate,
            Some(elsinore_server::Rate {
                per_second: 5,
                burst: 9
            })
        );
        assert_eq!(l.conn.byte_rate, None, "0 turns it off");
        assert_eq!(
            (
                l.abuse.auth_delay_after,
                l.abuse.auth_refuse_after_ip,
                l.abuse.auth_refuse_after_account
            ),
            (1, 2, 3)
        );
        assert_eq!(l.abuse.auth_window, std::time::Duration::from_secs(60));
        assert_eq!(l.sessions_per_account, 2);
        assert_eq!(l.conn.xml.max_element_bytes, 65536);
        assert_eq!(l.max_connections, 100);
        assert_eq!(l.conn.max_auth_failures, 5);
        for bad in [
            "[limits]\nnegotiation_timeout_secs = 0\n",
            "[limits]\nmax_depth = 0\n",
            "[limits]\nstanzas_per_second = 3\nstanza_burst = 0\n",
            "[limits]\nconections_per_ip = 3\n",
        ] {
            let r = parse(bad).and_then(|f| Settings::resolve(f, Overrides::default()));
            assert!(r.is_err(), "{bad}");
        }
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
             s2s_ca = [\"ca.pem\"]\ns2s_idle_timeout_secs = 120\n\
             [s2s.peers]\n\"two.localhost\" = \"127.0.0.1:5270\"\n",
        )
        .unwrap();
        let s = Settings::resolve(file, Overrides::default()).unwrap();
        assert!(s.s2s.enabled());
        assert_eq!(s.s2s.idle_timeout, std::time::Duration::from_secs(120));
        assert!(!s.s2s.dialback && s.s2s.insecure);
        assert_eq!(
            s.s2s.peers.get("two.localhost").map(String::as_str),
            Some("127.0.0.1:5270")
        );
        let s = Settings::resolve(parse("").unwrap(), Overrides::default()).unwrap();
        assert!(!s.s2s.enabled(), "off by default");
        assert_eq!(s.s2s.idle_timeout, std::time::Duration::from_secs(600));
        let zero = parse("s2s_idle_timeout_secs = 0\n").unwrap();
        assert!(Settings::resolve(zero, Overrides::default()).is_err());
    }

    #[test]
    fn s2s_limits() {
        use std::time::Duration;
        let d = Settings::resolve(parse("").unwrap(), Overrides::default())
            .unwrap()
            .s2s;
        let core = elsinore_server::S2sSettings::default();
        assert_eq!(
            (d.max_queue, d.max_outgoing, d.max_verifications),
            (core.max_queue, core.max_outgoing, core.max_verifications)
        );
        assert_eq!(d.keepalive_interval, Duration::from_secs(90));
        assert_eq!(d.write_timeout, core.write_timeout);
        let file = parse(
            "s2s_idle_timeout_secs = 30\ns2s_keepalive_interval_secs = 10\n\
             s2s_write_timeout_secs = 20\n\
             s2s_max_queue = 5\ns2s_max_outgoing = 7\ns2s_max_verifications = 9\n",
        )
        .unwrap();
        let s = Settings::resolve(file, Overrides::default()).unwrap().s2s;
        assert_eq!(s.idle_timeout, Duration::from_secs(30));
        assert_eq!(s.keepalive_interval, Duration::from_secs(10));
        assert_eq!(s.write_timeout, Duration::from_secs(20));
        assert_eq!(
            (s.max_queue, s.max_outgoing, s.max_verifications),
            (5, 7, 9)
        );
        // A keepalive interval at or past the idle timeout (configured or default) would
        // never send a keepalive.
        for (bad, says) in [
            (
                "s2s_keepalive_interval_secs = 0\n",
                "s2s_keepalive_interval_secs must be at least 1",
            ),
            (
                "s2s_idle_timeout_secs = 60\ns2s_keepalive_interval_secs = 60\n",
                "s2s_keepalive_interval_secs (60) must be less than s2s_idle_timeout_secs (60)",
            ),
            (
                "s2s_keepalive_interval_secs = 900\n",
                "s2s_keepalive_interval_secs (900) must be less than s2s_idle_timeout_secs (600)",
            ),
            (
                "s2s_idle_timeout_secs = 30\n",
                "s2s_idle_timeout_secs (30) is not above the default keepalive interval (90 s): \
                 set s2s_keepalive_interval_secs below it",
            ),
            (
                "s2s_write_timeout_secs = 0\n",
                "s2s_write_timeout_secs must be at least 1",
            ),
            ("s2s_max_queue = 0\n", "s2s_max_queue must be at least 1"),
            (
                "s2s_max_outgoing = 0\n",
                "s2s_max_outgoing must be at least 1",
            ),
            (
                "s2s_max_verifications = 0\n",
                "s2s_max_verifications must be at least 1",
            ),
        ] {
            let err = Settings::resolve(parse(bad).unwrap(), Overrides::default())
                .map(|_| ())
                .unwrap_err();
            assert!(format!("{err:#}").contains(says), "{bad}: {err:#}");
        }
        let err = parse("s2s_max_queue = -1\n").map(|_| ()).unwrap_err();
        assert!(format!("{err:#}").contains("s2s_max_queue"), "{err:#}");
    }
}
