//! Client-side checks against elsinore: slixmpp with each SASL mechanism forced, and
//! go-sendxmpp (a second real client program) sending a message to a slixmpp user.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Result, bail};

use super::{ADMIN_TIMEOUT, CLIENT_TIMEOUT, Ctx, START_TIMEOUT, run_checks};
use crate::proc::{self, Service};
use crate::workspace;

/// An elsinore server started for one scenario; stopped when dropped.
pub(super) struct Instance {
    pub service: Service,
    /// Client-to-server address.
    pub c2s: SocketAddr,
}

/// Starts `bin serve` in `dir` with `config` (TOML, written to `dir/elsinore.toml`)
/// after adding `users` (`(jid, password)`); waits until the c2s port accepts.
pub(super) fn start_elsinore(
    bin: &Path,
    dir: &Path,
    name: &str,
    config: &str,
    extra_args: &[&str],
    users: &[(String, &str)],
) -> Result<Instance> {
    std::fs::create_dir_all(dir)?;
    let config_path = dir.join("elsinore.toml");
    let c2s = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    std::fs::write(
        &config_path,
        format!("listen = \"{c2s}\"\ndata = \"data\"\n{config}"),
    )?;
    for (jid, password) in users {
        let f = proc::run_bounded(
            Command::new(bin)
                .arg("adduser")
                .arg(jid)
                .arg("--config")
                .arg(&config_path),
            ADMIN_TIMEOUT,
            None,
            Some(format!("{password}\n").as_bytes()),
        )?;
        if !f.success() {
            bail!("{name}: adduser {jid}: {}\n{}", f.describe(), f.tail());
        }
    }
    let mut service = Service::spawn(
        name,
        Command::new(bin)
            .arg("serve")
            .arg("--config")
            .arg(&config_path)
            .args(extra_args)
            // The s2s adapter logs its TLS and peer-certificate results at debug level.
            .env("RUST_LOG", "info,elsinore_tokio::s2s=debug")
            .current_dir(dir),
        &dir.join("elsinore.log"),
    )?;
    service.wait_for_line("listening on", START_TIMEOUT)?;
    if config.contains("listen_s2s") {
        // Printed after the c2s line, once the s2s listener is bound: a peer started
        // next may connect at once.
        service.wait_for_line("listening for servers", START_TIMEOUT)?;
    }
    service.wait_for_port(c2s, Duration::from_secs(10))?;
    Ok(Instance { service, c2s })
}

/// slixmpp logs in with each mechanism it supports, forced through its own
/// `feature_mechanisms` configuration: the password mechanisms on TLS 1.3 and 1.2,
/// the -PLUS ones (offered on TLS 1.3 only), and ANONYMOUS refused here (the server at
/// `addr` runs without `--allow-anonymous`) and accepted by a second server with it.
pub(super) fn sasl_mechanisms(
    ctx: &mut Ctx,
    bin: &Path,
    addr: SocketAddr,
    user: (&str, &str),
    domain: &str,
) {
    if !ctx.slixmpp {
        ctx.report.record(
            "elsinore: slixmpp SASL mechanisms",
            false,
            "skipped: slixmpp not installed",
        );
        return;
    }
    let jid = format!("{}@{domain}", user.0);
    // (mechanism, expectation, highest TLS version slixmpp may use)
    let cases = [
        ("PLAIN", "login", "1.3"),
        ("SCRAM-SHA-1", "login", "1.3"),
        ("SCRAM-SHA-256", "login", "1.3"),
        ("SCRAM-SHA-1-PLUS", "plus", "1.3"),
        ("SCRAM-SHA-256-PLUS", "plus", "1.3"),
        ("SCRAM-SHA-256", "login", "1.2"),
        ("SCRAM-SHA-256-PLUS", "plus", "1.2"),
    ];
    for (mech, expect, tls) in cases {
        let label = format!("TLS {tls}");
        run_sasl(ctx, addr, &label, &jid, user.1, mech, expect, tls);
    }
    let label = "without --allow-anonymous";
    run_sasl(ctx, addr, label, domain, "", "ANONYMOUS", "refused", "1.3");

    // A second server, with --allow-anonymous.
    let dir = ctx.tmp.path().join("elsinore-anonymous");
    let started = start_elsinore(
        bin,
        &dir,
        "elsinore (anonymous)",
        &format!("domain = \"{domain}\"\n"),
        &["--allow-anonymous"],
        &[],
    );
    match started {
        Ok(mut inst) => {
            run_sasl(
                ctx,
                inst.c2s,
                "with --allow-anonymous",
                domain,
                "",
                "ANONYMOUS",
                "login",
                "1.3",
            );
            inst.service.stop();
        }
        Err(e) => ctx.report.record(
            "elsinore: start with --allow-anonymous",
            false,
            format!("{e:#}"),
        ),
    }

    external(ctx, bin, user, domain);
}

/// SASL EXTERNAL on c2s: a server started with `--client-ca` and slixmpp presenting a
/// certificate from that CA whose subjectAltName is the account's address
/// (rfc822Name, XEP-0178); without a certificate EXTERNAL is not offered.
fn external(ctx: &mut Ctx, bin: &Path, user: (&str, &str), domain: &str) {
    let jid = format!("{}@{domain}", user.0);
    let result = (|| -> Result<Instance> {
        let pki = ctx.tmp.path().join("client-pki");
        std::fs::create_dir_all(&pki)?;
        super::federation::ca_signed(&pki, "client", &format!("email:{jid}"))?;
        start_elsinore(
            bin,
            &ctx.tmp.path().join("elsinore-client-ca"),
            "elsinore (client CA)",
            &format!("domain = \"{domain}\"\n"),
            &["--client-ca", &pki.join("client-ca.crt").to_string_lossy()],
            &[(jid.clone(), user.1)],
        )
    })();
    let mut inst = match result {
        Ok(inst) => inst,
        Err(e) => {
            ctx.report
                .record("elsinore: start with --client-ca", false, format!("{e:#}"));
            return;
        }
    };
    let pki = ctx.tmp.path().join("client-pki");
    let (cert, key) = (pki.join("client.crt"), pki.join("client.key"));
    for (label, with_cert, expect) in [
        ("client certificate", true, "login"),
        ("no client certificate", false, "refused"),
    ] {
        let mut cmd = Command::new("python3");
        cmd.arg(workspace::root().join("xtask/interop/slixmpp_mechanisms.py"))
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &inst.c2s.port().to_string(),
            ])
            .args(["--jid", &jid, "--mech", "EXTERNAL", "--expect", expect])
            .arg("--insecure");
        if with_cert {
            cmd.arg("--certfile").arg(&cert).arg("--keyfile").arg(&key);
        }
        run_checks(
            ctx,
            &format!("elsinore: slixmpp SASL EXTERNAL ({label})"),
            &format!("elsinore: slixmpp ({label})"),
            &mut cmd,
        );
    }
    inst.service.stop();
}

#[allow(clippy::too_many_arguments)]
fn run_sasl(
    ctx: &mut Ctx,
    addr: SocketAddr,
    label: &str,
    jid: &str,
    password: &str,
    mech: &str,
    expect: &str,
    max_tls: &str,
) {
    let mut cmd = Command::new("python3");
    cmd.arg(workspace::root().join("xtask/interop/slixmpp_mechanisms.py"))
        .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
        .args(["--jid", jid, "--password", password, "--mech", mech])
        .args(["--expect", expect, "--max-tls", max_tls, "--insecure"]);
    run_checks(
        ctx,
        &format!("elsinore: slixmpp SASL {mech} ({label})"),
        &format!("elsinore: slixmpp ({label})"),
        &mut cmd,
    );
}

/// go-sendxmpp (Debian) logs in as `sender` and sends `receiver` a message; a slixmpp
/// peer logged in as `receiver` must get it with that body and `sender` as `from`.
pub(super) fn go_sendxmpp(
    ctx: &mut Ctx,
    addr: SocketAddr,
    sender: (&str, &str),
    receiver: (&str, &str),
) {
    let name = "elsinore: go-sendxmpp sends a message to a slixmpp user";
    let installed = super::ensure_apt_package("go-sendxmpp", "go-sendxmpp");
    if !ctx
        .report
        .record_result("setup: go-sendxmpp installed", installed)
    {
        return;
    }
    let result = (|| -> Result<String> {
        let home = ctx.tmp.path().join("go-sendxmpp-home");
        std::fs::create_dir_all(&home)?;
        let body = "hello from go-sendxmpp";
        let mut peer = Service::spawn(
            "slixmpp peer",
            Command::new("python3")
                .arg(workspace::root().join("xtask/interop/slixmpp_peer.py"))
                .args(["--host", "127.0.0.1", "--port", &addr.port().to_string()])
                .args(["--jid", receiver.0, "--password", receiver.1])
                .args(["--expect", body, "--expect-from", sender.0])
                .args(["--ready", "--timeout", "60", "--insecure"]),
            &ctx.tmp.path().join("go-sendxmpp-peer.log"),
        )?;
        peer.wait_for_line("[PASS] peer logged in", CLIENT_TIMEOUT)?;
        let sent = proc::run_bounded(
            Command::new("go-sendxmpp")
                .args(["-u", sender.0, "-p", sender.1])
                .args(["-j", &addr.to_string()])
                // The server's certificate is self-signed.
                .arg("-n")
                .arg(receiver.0)
                // No ~/.config/go-sendxmpp/sendxmpprc of the machine's user is read.
                .env("HOME", &home),
            CLIENT_TIMEOUT,
            None,
            Some(format!("{body}\n").as_bytes()),
        )?;
        if !sent.success() {
            bail!("go-sendxmpp {}\n{}", sent.describe(), sent.tail());
        }
        let line = peer.wait_for_line("peer received the message", CLIENT_TIMEOUT)?;
        let line = line.trim().to_string();
        if !line.starts_with("[PASS]") {
            bail!("{line}");
        }
        Ok(line)
    })();
    ctx.report.record_result(name, result);
}

/// The path of the elsinore binary, building it first.
pub(super) fn elsinore_bin(ctx: &mut Ctx) -> Option<PathBuf> {
    let built = super::run_cargo_build(&["build", "-p", "elsinore"]);
    if !ctx
        .report
        .record_result("build: cargo build -p elsinore", built)
    {
        return None;
    }
    let bin = workspace::target_dir().map(|t| t.join("debug").join("elsinore"));
    match bin {
        Ok(bin) if bin.is_file() => Some(bin),
        other => {
            ctx.report.record(
                "build: elsinore binary",
                false,
                format!("built, but not found: {other:?}"),
            );
            None
        }
    }
}
