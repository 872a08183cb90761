//! `elsinore`: the XMPP server command line.
//!
//! `elsinore` alone serves with defaults (domain `localhost`, c2s on `127.0.0.1:5222`, data in
//! `./elsinore-data`); `elsinore adduser JID` and friends manage accounts in the same store.

// jemalloc: routing a stanza allocates and frees a few dozen small blocks, often on another
// thread than the one that allocated them; glibc's malloc spent a third of the chat path's
// user time on that (docs/benchmarks.md). One arena, as the core runs under one lock anyway,
// keeps an idle session's memory below glibc's; the larger thread cache keeps the usual
// stanza-sized blocks off the arena (both set in `.cargo/config.toml`, as jemalloc's built-in
// options). Off with `--no-default-features` (for valgrind/dhat).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod config;
mod s2s;
mod tls;

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use elsinore_jid::BareJid;
use elsinore_redb::RedbStore;
use elsinore_server::{Server, ServerConfig, accounts};
use elsinore_storage::{EffectResult, Op, Store};
use elsinore_tokio::{Clock, Serve, Storage, random_seed};
use tokio::net::TcpListener;
use tracing::info;

use crate::config::{FileConfig, Overrides, Settings};

/// An XMPP server with a sans-IO core.
#[derive(Debug, Parser)]
#[command(name = "elsinore", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (the default when no command is given).
    Serve(ServeArgs),
    /// Create an account; the password is read from stdin.
    Adduser(UserArgs),
    /// Change an account's password; the new password is read from stdin.
    Passwd(UserArgs),
    /// Delete an account: all its stored data, its search directory entry, and its
    /// subscriptions in local contacts' rosters (run it on a stopped server's data).
    Deluser(UserArgs),
}

/// Options every command shares.
#[derive(Debug, Default, Args)]
struct Common {
    /// TOML configuration file (keys: domain, listen, listen_tls, redirect, gone_domains, data, allow_registration,
    /// allow_plaintext_auth, allow_anonymous, sasl_digest_md5, legacy_auth_digest, cert, key, client_ca,
    /// scram_iterations, muc, muc_history, worker_threads, coalesce_us, release tables, listen_s2s, s2s_dialback, s2s_secret, s2s_ca, s2s_insecure, s2s_idle_timeout_secs,
    /// s2s_keepalive_interval_secs, s2s_write_timeout_secs, s2s_max_queue, s2s_max_outgoing, s2s_max_verifications, tables s2s.peers and limits).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory [default: ./elsinore-data].
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

#[derive(Debug, Default, Args)]
struct ServeArgs {
    #[command(flatten)]
    common: Common,
    /// The served domain [default: localhost].
    #[arg(long, value_name = "D")]
    domain: Option<String>,
    /// Address for client connections [default: 127.0.0.1:5222].
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Address for direct TLS client connections (XEP-0368), e.g. 127.0.0.1:5223 [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    listen_tls: Option<String>,
    /// Redirect every client stream to this `host[:port]` with the `see-other-host` stream
    /// error (IPv6 addresses in brackets) instead of serving it.
    #[arg(long, value_name = "HOST:PORT")]
    redirect: Option<String>,
    /// Address for incoming server-to-server connections, e.g. 127.0.0.1:5269 [default: off].
    #[arg(long, value_name = "ADDR:PORT")]
    listen_s2s: Option<String>,
    /// Allow in-band registration (XEP-0077).
    #[arg(long)]
    allow_registration: bool,
    /// Allow authentication without TLS (for loopback tests and benchmarks only).
    #[arg(long)]
    allow_plaintext_auth: bool,
    /// Offer SASL ANONYMOUS: anyone may log in to a temporary account.
    #[arg(long)]
    allow_anonymous: bool,
    /// Offer SASL DIGEST-MD5 (Historic, RFC 6331) to accounts whose password was set while
    /// it was enabled (config `sasl_digest_md5`; `adduser`/`passwd` need it too).
    #[arg(long)]
    allow_digest_md5: bool,
    /// PEM certificate chain (with --key); default: a generated self-signed certificate.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key (with --cert).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// PEM CA certificate(s): clients may present a certificate it issued and log in with
    /// SASL EXTERNAL as the XMPP address in it [default: no client certificates].
    #[arg(long, value_name = "FILE")]
    client_ca: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct UserArgs {
    /// The account, `user@domain`.
    jid: String,
    #[command(flatten)]
    common: Common,
    /// Also store the DIGEST-MD5 secret for the password (as config `sasl_digest_md5`).
    #[arg(long)]
    allow_digest_md5: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args),
        Command::Adduser(args) => adduser(args),
        Command::Passwd(args) => passwd(args),
        Command::Deluser(args) => deluser(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("elsinore: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn settings(common: &Common, mut overrides: Overrides) -> Result<Settings> {
    let file = FileConfig::load_opt(common.config.as_deref())?;
    overrides.data = common.data.clone();
    Settings::resolve(file, overrides)
}

fn open_store(settings: &Settings) -> Result<RedbStore> {
    std::fs::create_dir_all(&settings.data)
        .with_context(|| format!("cannot create data directory {}", settings.data.display()))?;
    let path = settings.store_path();
    RedbStore::open(&path).with_context(|| {
        format!(
            "cannot open the store {} (is an elsinore server already running on this data directory?)",
            path.display()
        )
    })
}

fn serve(args: ServeArgs) -> Result<()> {
    let settings = settings(
        &args.common,
        Overrides {
            domain: args.domain,
            listen: args.listen,
            listen_tls: args.listen_tls,
            redirect: args.redirect,
            data: None,
            allow_registration: args.allow_registration,
            allow_plaintext_auth: args.allow_plaintext_auth,
            allow_anonymous: args.allow_anonymous,
            allow_digest_md5: args.allow_digest_md5,
            client_ca: args.client_ca,
            cert: args.cert,
            key: args.key,
            listen_s2s: args.listen_s2s,
        },
    )?;
    elsinore_jid::BareJid::from_str(&settings.domain)
        .map_err(|e| anyhow::anyhow!("invalid domain {:?}: {e}", settings.domain))?;
    let mut store = open_store(&settings)?;
    let tls = tls::server_config(settings.cert_key.as_ref(), &settings.data, &settings.domain)?;
    let client_ca = tls::load_cas(&settings.client_ca)?;

    let mut config = ServerConfig::new(settings.domain.clone());
    config.allow_registration = settings.allow_registration;
    config.allow_plaintext_auth = settings.allow_plaintext_auth;
    config.allow_anonymous = settings.allow_anonymous;
    config.sasl_digest_md5 = settings.sasl_digest_md5;
    config.legacy_auth_digest = settings.legacy_auth_digest;
    config.redirect = settings.redirect.clone();
    config.gone_domains = settings.gone_domains.clone();
    config.tls_available = true;
    config.scram_iterations = settings.scram_iterations;
    config.muc_enabled = settings.muc;
    config.muc_history = settings.muc_history;
    config.releases = settings.releases.clone();
    config.decoy_secret = Some(server_secret(&mut store)?);
    config.limits = settings.limits.conn.clone();
    config.abuse = settings.limits.abuse.clone();
    config.max_sessions_per_account = settings.limits.sessions_per_account;
    if settings.s2s.enabled() {
        config.s2s.enabled = true;
        config.s2s.dialback = settings.s2s.dialback;
        config.s2s.idle_timeout = settings.s2s.idle_timeout;
        config.s2s.keepalive_interval = settings.s2s.keepalive_interval;
        config.s2s.write_timeout = settings.s2s.write_timeout;
        config.s2s.max_queue = settings.s2s.max_queue;
        config.s2s.max_outgoing = settings.s2s.max_outgoing;
        config.s2s.max_verifications = settings.s2s.max_verifications;
        config.s2s.secret = s2s::secret(settings.s2s.secret.as_deref(), &mut store)?;
    }
    // The certificate files (configured or generated by tls::server_config) for s2s.
    let (cert_file, key_file) = settings.cert_key.clone().unwrap_or_else(|| {
        (
            settings.data.join("tls").join("cert.pem"),
            settings.data.join("tls").join("key.pem"),
        )
    });

    // One thread: tokio's current-thread scheduler, which runs the connections on this
    // thread without the work-stealing machinery (less CPU per routed message, see
    // docs/benchmarks.md); more: the multi-thread one.
    let mut builder = if settings.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(settings.worker_threads);
        b
    };
    elsinore_tokio::coalesce_wakeups(&mut builder, settings.coalesce);
    let runtime = builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        let local = listener.local_addr().context("listener address")?;
        let direct_tls = match &settings.listen_tls {
            None => None,
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (direct TLS)"))?;
                let local_tls = l.local_addr().context("listener address")?;
                println!("elsinore: listening for direct TLS on {local_tls}");
                Some(l)
            }
        };
        let clock = Clock::new();
        let server = Server::new(config, random_seed()?, clock.now());
        // Group commit: everything the storage worker has queued is one durable transaction.
        let storage = Storage::batched(move |ops: &[Op]| store.apply_many(ops));
        println!(
            "elsinore: listening on {local} (domain {}, data {})",
            settings.domain,
            settings.data.display()
        );
        std::io::stdout().flush().context("stdout")?;
        info!(%local, domain = %settings.domain, "serving");
        let mut serve = Serve::new(server, clock, storage)
            .tls(tls)
            .client_ca(client_ca)
            .max_connections(settings.limits.max_connections)
            // The core hands its output over at once; the adapter's queue is what fills up.
            .max_backlog(settings.limits.conn.max_unsent_bytes);
        if let Some((l, options)) = s2s::runtime(&settings.s2s, &cert_file, &key_file).await? {
            serve = serve.s2s(l, options);
        }
        if let Some(l) = direct_tls {
            serve = serve.direct_tls(l);
        }
        serve
            .run(listener, shutdown_signal())
            .await
            .context("server failed")?;
        info!("stopped");
        Ok(())
    })
}

/// The per-installation secret (kept in the store, made on first start) that keys
/// SCRAM decoys for unknown accounts, so their salts stay stable across restarts.
fn server_secret(store: &mut RedbStore) -> Result<[u8; 32]> {
    let key = elsinore_storage::Key::new("", elsinore_storage::Space::Account, "server-secret");
    match store.apply(&Op::Get(key.clone())) {
        EffectResult::Value(Some(v)) => {
            <[u8; 32]>::try_from(v.as_slice()).context("the stored server secret is corrupt")
        }
        EffectResult::Value(None) => {
            let secret = random_seed()?;
            match store.apply(&Op::Put(key, secret.to_vec())) {
                EffectResult::Done => Ok(secret),
                EffectResult::Failed(e) => Err(e).context("cannot store the server secret"),
                other => bail!("unexpected store result {other:?}"),
            }
        }
        EffectResult::Failed(e) => Err(e).context("cannot read the store"),
        other => bail!("unexpected store result {other:?}"),
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM: {e}");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    info!("shutdown requested");
}

/// Parses an account JID (a bare `user@domain`), warning when it is not in the served domain.
fn account_jid(text: &str, settings: &Settings) -> Result<BareJid> {
    let jid = BareJid::from_str(text).map_err(|e| anyhow::anyhow!("invalid JID {text:?}: {e}"))?;
    if jid.node().is_none() {
        bail!("invalid JID {text:?}: an account needs a user part (user@domain)");
    }
    if jid.domain() != settings.domain {
        tracing::warn!(
            "{jid} is not in the served domain {} (set it with --config or the domain key)",
            settings.domain
        );
    }
    Ok(jid)
}

fn account_exists(store: &mut RedbStore, jid: &BareJid) -> Result<bool> {
    match store.apply(&Op::Get(accounts::credentials_key(jid))) {
        EffectResult::Value(v) => Ok(v.is_some()),
        EffectResult::Failed(e) => Err(e).context("cannot read the store"),
        other => bail!("unexpected store result {other:?}"),
    }
}

fn apply_write(store: &mut RedbStore, op: &Op) -> Result<()> {
    match store.apply(op) {
        EffectResult::Failed(e) => Err(e).context("cannot write the store"),
        _ => Ok(()),
    }
}

/// The password: the first line of stdin, or typed at a prompt.
fn read_password(prompt: &str) -> Result<String> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // No extra dependency for echo-free input: say so rather than pretend.
        eprint!("{prompt} (input is echoed): ");
        std::io::stderr().flush().ok();
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        bail!("empty password (give it as the first line of stdin)");
    }
    Ok(password)
}

fn set_password(store: &mut RedbStore, jid: &BareJid, settings: &Settings) -> Result<()> {
    let password = read_password(&format!("Password for {jid}"))?;
    let policy = accounts::CredentialPolicy {
        iterations: settings.scram_iterations,
        digest_md5: settings.sasl_digest_md5,
        legacy_digest: settings.legacy_auth_digest,
    };
    let op = accounts::set_password_op(jid, &password, random_seed()?, policy)
        .with_context(|| format!("cannot set the password of {jid}"))?;
    apply_write(store, &op)
}

fn user_settings(args: &UserArgs) -> Result<Settings> {
    let overrides = Overrides {
        allow_digest_md5: args.allow_digest_md5,
        ..Overrides::default()
    };
    settings(&args.common, overrides)
}

fn adduser(args: UserArgs) -> Result<()> {
    let settings = user_settings(&args)?;
    let jid = account_jid(&args.jid, &settings)?;
    let mut store = open_store(&settings)?;
    if account_exists(&mut store, &jid)? {
        bail!("account {jid} already exists (use `elsinore passwd {jid}` to change its password)");
    }
    set_password(&mut store, &jid, &settings)?;
    println!("elsinore: created account {jid}");
    Ok(())
}

fn passwd(args: UserArgs) -> Result<()> {
    let settings = user_settings(&args)?;
    let jid = account_jid(&args.jid, &settings)?;
    let mut store = open_store(&settings)?;
    if !account_exists(&mut store, &jid)? {
        bail!("no account {jid}");
    }
    set_password(&mut store, &jid, &settings)?;
    println!("elsinore: changed the password of {jid}");
    Ok(())
}

fn deluser(args: UserArgs) -> Result<()> {
    let settings = user_settings(&args)?;
    let jid = account_jid(&args.jid, &settings)?;
    let mut store = open_store(&settings)?;
    let done = match accounts::remove_stored_account(&mut store, &jid) {
        Ok(done) => done,
        Err(accounts::StoredRemovalError::NoAccount) => bail!("no account {jid}"),
        Err(accounts::StoredRemovalError::Store(e)) => {
            return Err(e).context("cannot remove the account from the store");
        }
    };
    println!("elsinore: deleted account {jid}");
    if !done.contacts_updated.is_empty() {
        println!(
            "elsinore: ended its subscriptions in the rosters of {} local contact(s)",
            done.contacts_updated.len()
        );
    }
    if !done.remote_contacts.is_empty() {
        // The server is stopped: nothing can be sent to other servers now.
        let list: Vec<String> = done.remote_contacts.iter().map(|j| j.to_string()).collect();
        println!(
            "elsinore: contacts on other servers were not told (the server is stopped): {}",
            list.join(", ")
        );
    }
    Ok(())
}
