//! The built `elsinore` binary: accounts, serving, and data surviving a crash and restart.
#![allow(clippy::unwrap_used)] // a failed setup step should fail the test loudly

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use elsinore_jid::{BareJid, Jid};
use elsinore_redb::RedbStore;
use elsinore_server::roster::{Item, Roster, Subscription};
use elsinore_storage::{EffectResult, Key, Op, Space, Store};
use elsinore_tokio::{
    AccessModel, Client, ClientError, ClientOptions, ConfigChange, SendLastItem, pep,
};
use elsinore_xml::Element;

const BIN: &str = env!("CARGO_BIN_EXE_elsinore");
const WAIT: Duration = Duration::from_secs(30);

/// Runs the binary to completion with `stdin`, bounded by `WAIT`.
fn run(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("elsinore {args:?} did not finish in time");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// A running server process, killed when dropped.
struct Running {
    child: Child,
    addr: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Running {
    /// Starts `elsinore serve` on a free port and waits for its "listening" line.
    fn start(data: &Path) -> Running {
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        // Owns the child from here on, so a failed wait below still kills it.
        let mut running = Running {
            child,
            addr: String::new(),
        };
        let line = rx.recv_timeout(WAIT).expect("server printed its address");
        // "elsinore: listening on 127.0.0.1:PORT (domain localhost, data DIR)"
        let addr = line
            .strip_prefix("elsinore: listening on ")
            .and_then(|rest| rest.split(' ').next())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        assert!(line.contains("(domain localhost, data "), "{line:?}");
        running.addr = addr;
        running
    }

    /// SIGTERM, then a bounded wait for a clean exit.
    fn terminate(mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "clean shutdown, got {status}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn options(addr: &str, jid: &str, password: &str) -> ClientOptions {
    let mut opts = ClientOptions::new(addr, Jid::from_str(jid).unwrap(), password).insecure_tls();
    opts.timeout = WAIT;
    opts
}

const DIARY: &str = "urn:example:diary";

fn diary(text: &str) -> Element {
    Element::new("entry", DIARY).with_text(text)
}

/// XEP-0223 private data: persistent, whitelist, two items kept.
fn private2() -> ConfigChange {
    ConfigChange {
        max_items: Some(2),
        // A node created whitelist never sends its last item (docs/conformance.md, PEP defaults).
        send_last_item: Some(SendLastItem::Never),
        ..ConfigChange::private()
    }
}

fn exodus(nick: &str) -> Element {
    Element::new("exodus", "exodus:prefs")
        .with_child(Element::new("defaultnick", "exodus:prefs").with_text(nick))
}

#[test]
fn accounts_serving_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    let out = run(
        &["adduser", "hamlet@localhost", "--data", data_s],
        "s3cret\n",
    );
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("created account hamlet@localhost"));

    let out = run(
        &["adduser", "hamlet@localhost", "--data", data_s],
        "other\n",
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already exists"),
        "{out:?}"
    );

    let out = run(&["adduser", "ham@let@localhost", "--data", data_s], "x\n");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("invalid JID"),
        "{out:?}"
    );

    let out = run(
        &["adduser", "ophelia@localhost", "--data", data_s],
        "n0nnery\n",
    );
    assert!(out.status.success(), "{out:?}");

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();

    // First run: store private XML, annotations and PEP items, then crash the server
    // (SIGKILL, no clean shutdown).
    let horatio = BareJid::from_str("horatio@elsinore.lit").unwrap();
    let server = Running::start(&data);
    assert!(data.join("tls/cert.pem").exists() && data.join("tls/key.pem").exists());
    let notes = rt.block_on(async {
        let client = Client::connect(options(&server.addr, "hamlet@localhost", "s3cret"))
            .await
            .unwrap();
        client.private_set(exodus("Hamlet")).await.unwrap();
        let notes = client
            .annotations_set_note(&horatio, "true <&> 'loyal'")
            .await
            .unwrap();
        for (id, text) in [("1", "act one"), ("2", "act two"), ("3", "act three")] {
            client
                .pep_publish(DIARY, Some(id), diary(text), Some(&private2()))
                .await
                .unwrap();
        }
        let mut ghost = ConfigChange::private();
        ghost.max_items = Some(5);
        client
            .pep_create("urn:example:ghost", Some(&ghost))
            .await
            .unwrap();
        // Bad password is refused by the same server.
        assert!(
            Client::connect(options(&server.addr, "ophelia@localhost", "wrong"))
                .await
                .is_err()
        );
        notes
    });
    drop(server); // SIGKILL: what was acknowledged must be durable

    // Second run on the same data: the data is back, and the certificate is reused.
    let cert_before = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let server = Running::start(&data);
    assert_eq!(
        std::fs::read(data.join("tls/cert.pem")).unwrap(),
        cert_before
    );
    rt.block_on(async {
        let client = Client::connect(options(&server.addr, "hamlet@localhost", "s3cret"))
            .await
            .unwrap();
        let got = client.private_get("exodus", "exodus:prefs").await.unwrap();
        assert_eq!(got, vec![exodus("Hamlet")]);
        assert_eq!(client.annotations_get().await.unwrap(), notes);
        // The node, its configuration and its newest two items.
        let items = client.pep_items(DIARY).await.unwrap();
        let got: Vec<_> = items.iter().map(|i| (i.id.as_str(), i.payload.clone())).collect();
        assert_eq!(
            got,
            [("2", Some(diary("act two"))), ("3", Some(diary("act three")))]
        );
        assert_eq!(client.pep_items_last(DIARY, 1).await.unwrap()[0].id, "3");
        assert_eq!(client.pep_config(DIARY).await.unwrap(), private2());
        let config = client.pep_config("urn:example:ghost").await.unwrap();
        assert_eq!(config.max_items, Some(5));
        assert_eq!(config.access_model, Some(AccessModel::Whitelist));
        assert!(client.pep_items("urn:example:ghost").await.unwrap().is_empty());
        // Still whitelist after the restart: another account is refused.
        let ophelia = Client::connect(options(&server.addr, "ophelia@localhost", "n0nnery"))
            .await
            .unwrap();
        let read = ophelia
            .iq(pep::items_request(DIARY, &pep::Select::All).with_attr("to", "hamlet@localhost"))
            .await;
        assert!(
            matches!(&read, Err(ClientError::Stanza { condition, .. }) if condition == "not-allowed"),
            "{read:?}"
        );
        // A vCard puts her in the jabber:iq:search directory.
        let vcard = Element::parse(
            b"<iq xmlns='jabber:client' type='set'><vCard xmlns='vcard-temp'>\
              <NICKNAME>Nymph</NICKNAME></vCard></iq>",
        )
        .unwrap();
        ophelia.iq(vcard).await.unwrap();
        ophelia.close().await.unwrap();
        client.close().await.unwrap();
    });
    server.terminate();

    // Subscriptions of Ophelia's, as a running server would have stored them: with Hamlet
    // both ways, and one with a contact on another server.
    let store_path = data.join("elsinore.redb");
    {
        let mut store = RedbStore::open(&store_path).unwrap();
        let item = |jid: &str, subscription| Item {
            jid: BareJid::from_str(jid).unwrap(),
            name: None,
            groups: Vec::new(),
            subscription,
            ask: false,
        };
        let mut put = |account: &str, items: Vec<Item>| {
            let roster = Roster {
                items,
                ..Roster::default()
            };
            let op = Op::Put(Key::new(account, Space::Roster, ""), roster.to_bytes());
            assert_eq!(store.apply(&op), EffectResult::Done);
        };
        put(
            "ophelia@localhost",
            vec![
                item("hamlet@localhost", Subscription::Both),
                item("laertes@paris.example", Subscription::To),
            ],
        );
        put(
            "hamlet@localhost",
            vec![item("ophelia@localhost", Subscription::Both)],
        );
    }
    let directory_mentions_ophelia = |store: &mut RedbStore| {
        let op = Op::Get(Key::new("localhost", Space::VCard, "directory"));
        match store.apply(&op) {
            EffectResult::Value(v) => {
                String::from_utf8_lossy(&v.unwrap_or_default()).contains("ophelia@localhost")
            }
            other => panic!("{other:?}"),
        }
    };
    assert!(directory_mentions_ophelia(
        &mut RedbStore::open(&store_path).unwrap()
    ));

    // passwd and deluser on the stopped server's data.
    let out = run(
        &["passwd", "ophelia@localhost", "--data", data_s],
        "new-pass\n",
    );
    assert!(out.status.success(), "{out:?}");
    let out = run(&["deluser", "ophelia@localhost", "--data", data_s], "");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 local contact") && stdout.contains("laertes@paris.example"),
        "{stdout}"
    );
    {
        // Her data, her directory entry and Hamlet's subscriptions with her are gone;
        // his item for her stays, with subscription none (as a running server leaves it).
        let mut store = RedbStore::open(&store_path).unwrap();
        assert!(!directory_mentions_ophelia(&mut store));
        let op = Op::Get(Key::new("hamlet@localhost", Space::Roster, ""));
        let EffectResult::Value(Some(bytes)) = store.apply(&op) else {
            panic!("Hamlet's roster is kept");
        };
        let roster = Roster::from_bytes(&bytes).unwrap();
        let her = BareJid::from_str("ophelia@localhost").unwrap();
        assert_eq!(
            roster.get(&her).map(|i| (i.subscription, i.ask)),
            Some((Subscription::None, false))
        );
        let op = Op::Get(Key::new("ophelia@localhost", Space::Roster, ""));
        assert_eq!(store.apply(&op), EffectResult::Value(None));
    }
    let out = run(&["deluser", "ophelia@localhost", "--data", data_s], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no account"),
        "{out:?}"
    );
}

#[test]
fn unknown_config_keys_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("elsinore.toml");
    std::fs::write(&config, "domian = 'typo.example'\n").unwrap();
    let out = run(&["serve", "--config", config.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("domian") && stderr.contains("invalid config file"),
        "{stderr}"
    );
}

#[test]
fn bad_s2s_limits_are_reported_by_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("elsinore.toml");
    std::fs::write(
        &config,
        "s2s_idle_timeout_secs = 20\ns2s_keepalive_interval_secs = 20\n",
    )
    .unwrap();
    let out = run(&["serve", "--config", config.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "s2s_keepalive_interval_secs (20) must be less than s2s_idle_timeout_secs (20)"
        ),
        "{stderr}"
    );
}
