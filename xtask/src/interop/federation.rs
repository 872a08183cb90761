//! Federation on loopback: two elsinore servers over s2s (dialback; STARTTLS + SASL
//! EXTERNAL with certificates made here by openssl; an untrusted certificate, whose
//! stanzas must bounce), and elsinore ↔ Prosody (dialback, each side writing first;
//! SASL EXTERNAL).
//!
//! There is no DNS. elsinore maps domains to addresses with `[s2s.peers]`. Prosody
//! resolves s2s targets through libunbound (Debian's lua-unbound); its `unbound`
//! option passes `local-data` to libunbound, so an SRV record
//! `_xmpp-server._tcp.elsinore.test` pointing at our s2s port on `localhost` (a name
//! libunbound answers itself) exists only inside that Prosody process — nothing on
//! the machine changes. `.test` names are reserved (RFC 6761) and libunbound answers
//! every other `.test` query with NXDOMAIN at once, so no lookup waits on a network.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::clients::{Instance, start_elsinore};
use super::{Ctx, START_TIMEOUT, lua_str, run_admin, run_checks, tail_file};
use crate::proc::{self, Service};
use crate::workspace;

const ONE: &str = "one.elsinore.test";
const TWO: &str = "two.elsinore.test";
const ELSINORE: &str = "elsinore.test";
const PROSODY: &str = "prosody.test";
const ALICE: (&str, &str) = ("alice", "alice-s2s-pw");
const BOB: (&str, &str) = ("bob", "bob-s2s-pw");

/// How the two elsinore servers authenticate each other.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Auth {
    /// No CA configured, unverifiable self-signed certificates accepted for TLS:
    /// only dialback can authenticate.
    Dialback,
    /// Each server trusts the other's CA; dialback is off, so only SASL EXTERNAL can.
    External,
    /// As `External`, but the second server trusts only its own CA: the first cannot
    /// authenticate, so its stanzas must bounce (no fallback to dialback).
    Untrusted,
}

/// elsinore ↔ elsinore, once with dialback and once with SASL EXTERNAL.
pub(super) fn elsinore_pair(ctx: &mut Ctx, bin: &Path) {
    for auth in [Auth::Dialback, Auth::External, Auth::Untrusted] {
        let label = match auth {
            Auth::Dialback => "s2s dialback",
            Auth::External => "s2s SASL EXTERNAL",
            Auth::Untrusted => "s2s SASL EXTERNAL, untrusted certificate",
        };
        if let Err(e) = pair(ctx, bin, auth, label) {
            ctx.report.record(
                format!("federation: {label} setup"),
                false,
                format!("{e:#}"),
            );
        }
    }
}

fn pair(ctx: &mut Ctx, bin: &Path, auth: Auth, label: &str) -> Result<()> {
    let base = ctx.tmp.path().join(match auth {
        Auth::Dialback => "s2s-dialback",
        Auth::External => "s2s-external",
        Auth::Untrusted => "s2s-untrusted",
    });
    std::fs::create_dir_all(&base)?;
    let s2s_one = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    let s2s_two = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    let config = |domain: &str, listen: SocketAddr, peer: &str, peer_addr: SocketAddr| {
        let mut c = String::new();
        let _ = writeln!(c, "domain = \"{domain}\"");
        let _ = writeln!(c, "listen_s2s = \"{listen}\"");
        match auth {
            Auth::Dialback => {
                let _ = writeln!(c, "s2s_insecure = true");
            }
            Auth::External | Auth::Untrusted => {
                // Untrusted: the second server trusts only its own CA.
                let ca = if auth == Auth::Untrusted && domain == TWO {
                    domain
                } else {
                    peer
                };
                let _ = writeln!(c, "cert = \"../certs/{domain}.crt\"");
                let _ = writeln!(c, "key = \"../certs/{domain}.key\"");
                let _ = writeln!(c, "s2s_ca = [\"../certs/{ca}-ca.crt\"]");
                let _ = writeln!(c, "s2s_dialback = false");
            }
        }
        let _ = writeln!(c, "[s2s.peers]\n\"{peer}\" = \"{peer_addr}\"");
        c
    };
    if auth != Auth::Dialback {
        let certs = base.join("certs");
        std::fs::create_dir_all(&certs)?;
        for domain in [ONE, TWO] {
            ca_signed_cert(&certs, domain).with_context(|| format!("certificate for {domain}"))?;
        }
    }
    let alice = (format!("{}@{ONE}", ALICE.0), ALICE.1);
    let bob = (format!("{}@{TWO}", BOB.0), BOB.1);
    let one = start_elsinore(
        bin,
        &base.join("one"),
        ONE,
        &config(ONE, s2s_one, TWO, s2s_two),
        &[],
        std::slice::from_ref(&alice),
    )?;
    let two = start_elsinore(
        bin,
        &base.join("two"),
        TWO,
        &config(TWO, s2s_two, ONE, s2s_one),
        &[],
        std::slice::from_ref(&bob),
    )?;
    exchange(
        ctx,
        label,
        (&alice.0, alice.1, one.c2s),
        (&bob.0, bob.1, two.c2s),
        if auth == Auth::Untrusted {
            Flow::Bounce
        } else {
            Flow::AFirst
        },
    );
    if auth == Auth::External {
        // Evidence that the certificates did the work: each side verified the other's.
        for (dir, domain, peer) in [("one", ONE, TWO), ("two", TWO, ONE)] {
            let log =
                std::fs::read_to_string(base.join(dir).join("elsinore.log")).unwrap_or_default();
            let needle = format!("verified=[\"{peer}\"]");
            let seen = log.lines().filter(|l| l.contains(&needle)).count();
            ctx.report.record(
                format!("federation: {label}: {domain} verified {peer}'s certificate"),
                seen >= 2,
                format!("{seen} TLS handshakes logged {needle} (outgoing and incoming expected)"),
            );
        }
    }
    drop(one);
    drop(two);
    Ok(())
}

/// What `slixmpp_s2s.py` checks.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    /// `a` writes to `b`, `b` answers; iqs both ways; `a` subscribes to `b`'s presence.
    AFirst,
    /// `b` writes to `a`, `a` answers; iqs both ways; `b` subscribes to `a`'s presence.
    BFirst,
    /// `a`'s message to `b` comes back as an error; `b` does not get it.
    Bounce,
}

/// Runs `slixmpp_s2s.py` between `a` and `b` as `flow` says.
fn exchange(
    ctx: &mut Ctx,
    label: &str,
    a: (&str, &str, SocketAddr),
    b: (&str, &str, SocketAddr),
    flow: Flow,
) {
    if !ctx.slixmpp {
        ctx.report.record(
            format!("federation: {label}"),
            false,
            "skipped: slixmpp not installed",
        );
        return;
    }
    let mut cmd = Command::new("python3");
    cmd.arg(workspace::root().join("xtask/interop/slixmpp_s2s.py"))
        .args(["--a-jid", a.0, "--a-password", a.1])
        .args(["--a-port", &a.2.port().to_string()])
        .args(["--b-jid", b.0, "--b-password", b.1])
        .args(["--b-port", &b.2.port().to_string()])
        .args(["--label", label, "--timeout", "40"]);
    match flow {
        Flow::AFirst => {
            cmd.args(["--iq", "--presence"]);
        }
        Flow::BFirst => {
            cmd.args(["--b-first", "--iq", "--presence"]);
        }
        Flow::Bounce => {
            cmd.arg("--expect-bounce");
        }
    }
    run_checks(
        ctx,
        &format!("federation: {label}"),
        "federation:",
        &mut cmd,
    );
}

/// A CA (`<domain>-ca.crt`) and a certificate for `domain` it signed
/// (`<domain>.crt`, `<domain>.key`), usable for TLS server and client authentication.
fn ca_signed_cert(dir: &Path, domain: &str) -> Result<()> {
    ca_signed(dir, domain, &format!("DNS:{domain}"))
}

/// A CA (`<name>-ca.crt`) and a certificate it signed (`<name>.crt`, `<name>.key`)
/// with subjectAltName `san` (openssl syntax) and the serverAuth and clientAuth uses.
pub(super) fn ca_signed(dir: &Path, name: &str, san: &str) -> Result<()> {
    let domain = name;
    let p = |name: &str| dir.join(name);
    let ca_key = p(&format!("{domain}-ca.key"));
    let ca_crt = p(&format!("{domain}-ca.crt"));
    let key = p(&format!("{domain}.key"));
    let csr = p(&format!("{domain}.csr"));
    let crt = p(&format!("{domain}.crt"));
    let ext = p(&format!("{domain}.ext"));
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run_admin(
        Command::new("openssl")
            .args(["req", "-x509", "-days", "2"])
            .args(ec)
            .args(["-subj", &format!("/CN={domain} test CA")])
            .args(["-addext", "basicConstraints=critical,CA:TRUE"])
            .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca_crt),
        None,
    )?;
    run_admin(
        Command::new("openssl")
            .args(["req", "-new"])
            .args(ec)
            .args(["-subj", &format!("/CN={domain}")])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr),
        None,
    )?;
    // clientAuth too: the same certificate identifies us when we connect (XEP-0178).
    std::fs::write(
        &ext,
        format!(
            "subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n\
             basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
        ),
    )?;
    run_admin(
        Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-set_serial", "2"])
            .arg("-in")
            .arg(&csr)
            .arg("-CA")
            .arg(&ca_crt)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&crt),
        None,
    )?;
    Ok(())
}

/// How elsinore and Prosody authenticate each other, and who writes first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ProsodyMode {
    /// Self-signed certificates on both sides: STARTTLS, then dialback.
    Dialback { prosody_first: bool },
    /// Each trusts the other's CA; dialback off on both (Prosody without
    /// mod_dialback and with `s2s_secure_auth`): only SASL EXTERNAL can work.
    External,
}

impl ProsodyMode {
    fn label(self) -> &'static str {
        match self {
            ProsodyMode::Dialback {
                prosody_first: false,
            } => "elsinore <-> Prosody dialback (elsinore first)",
            ProsodyMode::Dialback {
                prosody_first: true,
            } => "elsinore <-> Prosody dialback (Prosody first)",
            ProsodyMode::External => "elsinore <-> Prosody SASL EXTERNAL",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            ProsodyMode::Dialback {
                prosody_first: false,
            } => "s2s-prosody-elsinore-first",
            ProsodyMode::Dialback {
                prosody_first: true,
            } => "s2s-prosody-prosody-first",
            ProsodyMode::External => "s2s-prosody-external",
        }
    }
}

/// elsinore (`elsinore.test`) ↔ Prosody (`prosody.test`): a message each way, each
/// making its server open an outgoing s2s stream that the other authenticates.
/// With dialback twice, with fresh servers: elsinore's user writes first, then
/// Prosody's. The order matters: the first sender's server opens the first stream, and
/// the other server's stream back is then opened for the dialback `<db:verify/>`
/// before any stanza. Then once with SASL EXTERNAL.
pub(super) fn with_prosody(ctx: &mut Ctx, bin: &Path) {
    for mode in [
        ProsodyMode::Dialback {
            prosody_first: false,
        },
        ProsodyMode::Dialback {
            prosody_first: true,
        },
        ProsodyMode::External,
    ] {
        if let Err(e) = prosody_pair(ctx, bin, mode) {
            ctx.report.record(
                format!("federation: {} setup", mode.label()),
                false,
                format!("{e:#}"),
            );
        }
    }
}

fn prosody_pair(ctx: &mut Ctx, bin: &Path, mode: ProsodyMode) -> Result<()> {
    let label = mode.label();
    // Without lua-unbound Prosody falls back to its own DNS client, which ignores the
    // `unbound` option and cannot find elsinore.test.
    let unbound = run_admin(
        Command::new("dpkg-query").args(["-W", "-f", "${Status}", "lua-unbound"]),
        None,
    );
    if !unbound.as_deref().is_ok_and(|s| s.ends_with("installed")) {
        bail!(
            "Debian package lua-unbound is not installed (apt-get install lua-unbound): {unbound:?}"
        );
    }
    let base = ctx.tmp.path().join(mode.dir());
    let pdir = base.join("prosody");
    let certs = pdir.join("certs");
    let data = pdir.join("data");
    std::fs::create_dir_all(&certs)?;
    std::fs::create_dir_all(&data)?;
    // Prosody finds <host>.crt / <host>.key in `certificates` by itself.
    let pki = base.join("pki");
    if mode == ProsodyMode::External {
        std::fs::create_dir_all(&pki)?;
        for domain in [ELSINORE, PROSODY] {
            ca_signed_cert(&pki, domain).with_context(|| format!("certificate for {domain}"))?;
        }
        for ext in ["crt", "key"] {
            std::fs::copy(
                pki.join(format!("{PROSODY}.{ext}")),
                certs.join(format!("{PROSODY}.{ext}")),
            )?;
        }
    } else {
        run_admin(
            Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                ])
                .args(["-subj", &format!("/CN={PROSODY}")])
                .args(["-addext", &format!("subjectAltName=DNS:{PROSODY}")])
                .arg("-keyout")
                .arg(certs.join(format!("{PROSODY}.key")))
                .arg("-out")
                .arg(certs.join(format!("{PROSODY}.crt"))),
            None,
        )
        .context("openssl could not make Prosody's certificate")?;
    }

    let elsinore_s2s = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    let prosody_c2s = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    let prosody_s2s = SocketAddr::from(([127, 0, 0, 1], proc::free_port()?));
    let config = pdir.join("prosody.cfg.lua");
    let elsinore_ca = pki.join(format!("{ELSINORE}-ca.crt"));
    std::fs::write(
        &config,
        prosody_config(
            &pdir,
            prosody_c2s.port(),
            prosody_s2s.port(),
            elsinore_s2s.port(),
            (mode == ProsodyMode::External).then_some(elsinore_ca.as_path()),
        ),
    )?;
    run_admin(
        Command::new("prosodyctl")
            .arg("--config")
            .arg(&config)
            .args(["register", BOB.0, PROSODY, BOB.1]),
        None,
    )
    .context("prosodyctl register")?;

    let alice = (format!("{}@{ELSINORE}", ALICE.0), ALICE.1);
    let mut elsinore_config = format!("domain = \"{ELSINORE}\"\nlisten_s2s = \"{elsinore_s2s}\"\n");
    if mode == ProsodyMode::External {
        let _ = writeln!(
            elsinore_config,
            "cert = {}\nkey = {}\ns2s_ca = [{}]\ns2s_dialback = false",
            toml_str(&pki.join(format!("{ELSINORE}.crt"))),
            toml_str(&pki.join(format!("{ELSINORE}.key"))),
            toml_str(&pki.join(format!("{PROSODY}-ca.crt"))),
        );
    } else {
        // Prosody's certificate is self-signed: accepted for TLS, then dialback.
        let _ = writeln!(elsinore_config, "s2s_insecure = true");
    }
    let _ = writeln!(
        elsinore_config,
        "[s2s.peers]\n\"{PROSODY}\" = \"{prosody_s2s}\""
    );
    let elsinore: Instance = start_elsinore(
        bin,
        &base.join("elsinore"),
        ELSINORE,
        &elsinore_config,
        &[],
        std::slice::from_ref(&alice),
    )?;
    let mut prosody = Service::spawn(
        "prosody (s2s)",
        Command::new("prosody")
            .arg("--config")
            .arg(&config)
            .arg("-F")
            .current_dir(&pdir),
        &pdir.join("prosody.out"),
    )?;
    if let Err(e) = prosody
        .wait_for_port(prosody_c2s, START_TIMEOUT)
        .and_then(|()| prosody.wait_for_port(prosody_s2s, START_TIMEOUT))
    {
        bail!("{e:#}\n{}", tail_file(&pdir.join("prosody.log")));
    }
    let bob = format!("{}@{PROSODY}", BOB.0);
    let before = ctx.report.failed();
    exchange(
        ctx,
        label,
        (&alice.0, alice.1, elsinore.c2s),
        (&bob, BOB.1, prosody_c2s),
        if mode
            == (ProsodyMode::Dialback {
                prosody_first: true,
            })
        {
            Flow::BFirst
        } else {
            Flow::AFirst
        },
    );
    // Prosody's view: both of its s2s sessions with elsinore.test completed (and how).
    let log = std::fs::read_to_string(pdir.join("prosody.log")).unwrap_or_default();
    let mut expected = vec![
        (
            "Prosody accepted elsinore's stream",
            format!("Incoming s2s connection {ELSINORE}->{PROSODY} complete"),
        ),
        (
            "Prosody's stream to elsinore authenticated",
            format!("Outgoing s2s connection {PROSODY}->{ELSINORE} complete"),
        ),
    ];
    if mode == ProsodyMode::External {
        expected.push((
            "Prosody accepted SASL EXTERNAL from elsinore",
            format!("Accepting SASL EXTERNAL identity from {ELSINORE}"),
        ));
        expected.push((
            "elsinore accepted SASL EXTERNAL from Prosody",
            format!("SASL EXTERNAL with {ELSINORE} succeeded"),
        ));
    }
    for (what, needle) in expected {
        let seen = log.contains(&needle);
        ctx.report.record(
            format!("federation: {label}: {what}"),
            seen,
            format!("prosody.log: {needle:?}"),
        );
    }
    if ctx.report.failed() > before {
        println!("{}", tail_file(&pdir.join("prosody.log")));
        println!("{}", elsinore.service.log_tail());
    }
    // elsinore stops first (SIGTERM: graceful shutdown): Prosody must see both s2s
    // streams closed by our `system-shutdown` stream error.
    let mut elsinore = elsinore;
    elsinore.service.stop();
    let log_path = pdir.join("prosody.log");
    for dir in ["Incoming", "Outgoing"] {
        let (from, to) = if dir == "Incoming" {
            (ELSINORE, PROSODY)
        } else {
            (PROSODY, ELSINORE)
        };
        let needle = format!("{dir} s2s stream {from}->{to} closed");
        let line = wait_for_file_line(&log_path, &needle, Duration::from_secs(15));
        ctx.report.record(
            format!(
                "federation: {label}: elsinore's shutdown closes Prosody's {dir} stream with system-shutdown"
            ),
            line.as_deref().is_some_and(|l| l.contains("system-shutdown")),
            line.unwrap_or_else(|| format!("no {needle:?} in prosody.log within 15 s")),
        );
    }
    prosody.stop();
    Ok(())
}

/// The first line of the file at `path` containing `needle`, polled until `timeout`.
fn wait_for_file_line(path: &Path, needle: &str, timeout: Duration) -> Option<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return Some(line.trim().to_string());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A path as a TOML basic string.
fn toml_str(path: &Path) -> String {
    let s = path.to_string_lossy();
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Prosody for `prosody.test` with s2s on: c2s and s2s on our ports, STARTTLS required
/// (its default), and `elsinore.test` resolved through an SRV record given to
/// libunbound (see the module documentation). Without `external_ca`: unverifiable
/// certificates fall back to dialback (`s2s_secure_auth = false`). With it: that CA
/// verifies elsinore, certificates must verify, and mod_dialback is not loaded. IPv6
/// off: `localhost` also has `::1`, where nothing listens.
fn prosody_config(
    dir: &Path,
    c2s: u16,
    s2s: u16,
    elsinore_s2s: u16,
    external_ca: Option<&Path>,
) -> String {
    let p = |name: &str| lua_str(&dir.join(name));
    let mut c = String::new();
    let _ = writeln!(c, "run_as_root = true");
    let _ = writeln!(c, "daemonize = false");
    let _ = writeln!(c, "pidfile = {}", p("prosody.pid"));
    let _ = writeln!(c, "data_path = {}", p("data"));
    let _ = writeln!(c, "log = {{ debug = {} }}", p("prosody.log"));
    let _ = writeln!(c, "interfaces = {{ \"127.0.0.1\" }}");
    let _ = writeln!(c, "local_interfaces = {{ \"127.0.0.1\" }}");
    let _ = writeln!(c, "c2s_ports = {{ {c2s} }}");
    let _ = writeln!(c, "s2s_ports = {{ {s2s} }}");
    let _ = writeln!(c, "use_ipv6 = false");
    let _ = writeln!(
        c,
        "unbound = {{ resolvconf = false; hoststxt = false; options = {{ [\"local-data\"] = \
         \"_xmpp-server._tcp.{ELSINORE}. 60 IN SRV 0 0 {elsinore_s2s} localhost.\" }} }}"
    );
    let dialback = if external_ca.is_some() {
        ""
    } else {
        " \"dialback\","
    };
    let _ = writeln!(
        c,
        "modules_enabled = {{ \"disco\", \"roster\", \"saslauth\", \"tls\",{dialback} \"ping\", \"posix\" }}"
    );
    let _ = writeln!(c, "authentication = \"internal_hashed\"");
    let _ = writeln!(c, "c2s_require_encryption = true");
    let _ = writeln!(c, "s2s_require_encryption = true");
    match external_ca {
        Some(ca) => {
            // Certificates must verify (against elsinore's CA, given as cafile).
            let _ = writeln!(c, "s2s_secure_auth = true");
            let _ = writeln!(c, "ssl = {{ cafile = {} }}", lua_str(ca));
        }
        None => {
            let _ = writeln!(c, "s2s_secure_auth = false");
        }
    }
    let _ = writeln!(c, "allow_registration = false");
    let _ = writeln!(c, "certificates = {}", p("certs"));
    let _ = writeln!(c, "VirtualHost \"{PROSODY}\"");
    c
}
