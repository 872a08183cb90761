//! In-band registration (XEP-0077) before authentication, when enabled.

mod common;

use common::{Net, T0};
use elsinore_server::{ServerConfig, ServerEvent};

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='verona.lit' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn raw_exchange(net: &mut Net, conn: elsinore_server::ConnId, xml: &str) -> String {
    use elsinore_storage::Store;
    net.server.handle_input(conn, xml.as_bytes(), T0);
    let mut out = Vec::new();
    for _ in 0..100 {
        while let Some((id, bytes)) = net.server.poll_transmit() {
            assert_eq!(id, conn);
            out.extend(bytes);
        }
        let Some(effect) = net.server.poll_effect() else {
            break;
        };
        let result = net.store.apply(&effect.op);
        net.server.handle_effect_done(effect.id, result, T0);
    }
    String::from_utf8(out).expect("utf-8")
}

fn server(allow: bool) -> Net {
    let mut cfg = ServerConfig::new("verona.lit");
    cfg.allow_registration = allow;
    cfg.tls_available = false;
    cfg.allow_plaintext_auth = true;
    Net::with_config(cfg)
}

#[test]
fn register_then_log_in() {
    let mut net = server(true);
    let conn = net.server.accept(T0);
    let features = raw_exchange(&mut net, conn, HEADER);
    assert!(
        features.contains("http://jabber.org/features/iq-register"),
        "{features}"
    );
    let form = raw_exchange(
        &mut net,
        conn,
        "<iq type='get' id='g'><query xmlns='jabber:iq:register'/></iq>",
    );
    assert!(
        form.contains("<username") && form.contains("<password"),
        "{form}"
    );
    let ok = raw_exchange(
        &mut net,
        conn,
        "<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>Mercutio</username><password>queen mab</password></query></iq>",
    );
    assert!(
        ok.contains("type='result'") && ok.contains("id='r'"),
        "{ok}"
    );
    let again = raw_exchange(
        &mut net,
        conn,
        "<iq type='set' id='r2'><query xmlns='jabber:iq:register'><username>mercutio</username><password>x</password></query></iq>",
    );
    assert!(again.contains("conflict"), "{again}");
    let bad = raw_exchange(
        &mut net,
        conn,
        "<iq type='set' id='r3'><query xmlns='jabber:iq:register'><username>a@b</username><password>x</password></query></iq>",
    );
    assert!(bad.contains("jid-malformed"), "{bad}");
    // The new account logs in (usernames are case-folded by nodeprep).
    let mut cfg = ServerConfig::new("verona.lit");
    cfg.tls_available = true;
    let mut login = Net::with_config(cfg);
    login.store = std::mem::take(&mut net.store);
    let id = login.connect("mercutio@verona.lit/street", "queen mab");
    assert_eq!(
        login.jid_of(id).map(|j| j.to_string()).as_deref(),
        Some("mercutio@verona.lit/street")
    );
}

#[test]
fn registration_is_off_by_default() {
    let mut net = server(false);
    let conn = net.server.accept(T0);
    let features = raw_exchange(&mut net, conn, HEADER);
    assert!(!features.contains("iq-register"), "{features}");
    let out = raw_exchange(
        &mut net,
        conn,
        "<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>x</username><password>y</password></query></iq>",
    );
    assert!(out.contains("not-authorized"), "{out}");
    assert!(matches!(
        net.server.poll_event(),
        None | Some(ServerEvent::Close(_))
    ));
}

mod digest_md5 {
    //! DIGEST-MD5 (`ServerConfig::sasl_digest_md5`): the secret is stored whenever a
    //! password is set while it is enabled, and the mechanism offered.

    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use elsinore_jid::BareJid;
    use elsinore_sasl::{ClientSession, Mechanism, StoredCredentials};
    use elsinore_server::accounts;
    use elsinore_storage::{EffectResult, Key, Op, Space, Store};

    fn server(digest: bool) -> Net {
        let mut net = super::server(true);
        let mut cfg = net.server.config().clone();
        cfg.sasl_digest_md5 = digest;
        // TLS optional: raw exchanges stay plaintext, `Net::connect` clients use TLS.
        cfg.tls_available = true;
        net.server = elsinore_server::Server::new(cfg, [9; 32], T0);
        net
    }

    fn stored(net: &mut Net, jid: &str) -> StoredCredentials {
        let key = accounts::credentials_key(&BareJid::parse(jid).expect("jid"));
        match net.store.apply(&Op::Get(key)) {
            EffectResult::Value(Some(b)) => StoredCredentials::from_bytes(&b).expect("decodes"),
            other => panic!("no credentials: {other:?}"),
        }
    }

    fn payload(out: &str, name: &str) -> Vec<u8> {
        let start = out
            .find(&format!("<{name}"))
            .unwrap_or_else(|| panic!("{out}"));
        let rest = &out[start..];
        let open_end = rest.find('>').expect("tag end");
        let close = rest.find(&format!("</{name}>")).expect("close");
        B64.decode(&rest[open_end + 1..close]).expect("base64")
    }

    /// A DIGEST-MD5 login on a fresh connection; returns the server's last answer.
    fn digest_login(net: &mut Net, user: &str, password: &str) -> String {
        digest_login_as(net, user, user, password).1
    }

    /// A DIGEST-MD5 login whose response is computed for `hashed` (the name in the secret
    /// `H(username:realm:password)`) but names `sent` as its `username`; returns the
    /// connection and the server's last answer.
    fn digest_login_as(
        net: &mut Net,
        sent: &str,
        hashed: &str,
        password: &str,
    ) -> (elsinore_server::ConnId, String) {
        let conn = net.server.accept(T0);
        let features = raw_exchange(net, conn, HEADER);
        assert!(features.contains(">DIGEST-MD5<"), "{features}");
        let out = raw_exchange(
            net,
            conn,
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>",
        );
        let mut client =
            ClientSession::new(Mechanism::DigestMd5, hashed, password, None, "c").expect("client");
        let resp = client.challenge(&payload(&out, "challenge")).expect("resp");
        let mut resp = String::from_utf8(resp).expect("utf-8");
        if sent != hashed {
            let named = format!("username=\"{hashed}\"");
            assert!(resp.contains(&named), "{resp}");
            resp = resp.replacen(&named, &format!("username=\"{sent}\""), 1);
        }
        let xml = format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(resp)
        );
        let out = raw_exchange(net, conn, &xml);
        if !out.contains("<challenge") {
            return (conn, out);
        }
        client
            .challenge(&payload(&out, "challenge"))
            .expect("rspauth verifies");
        let out = raw_exchange(
            net,
            conn,
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>",
        );
        (conn, out)
    }

    /// The JID bound on `conn` after a successful login (stream restart, then bind).
    fn bound_jid(net: &mut Net, conn: elsinore_server::ConnId) -> String {
        raw_exchange(net, conn, HEADER);
        let out = raw_exchange(
            net,
            conn,
            "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        );
        let start = out.find("<jid>").unwrap_or_else(|| panic!("{out}")) + 5;
        let end = out.find("</jid>").expect("jid end");
        out[start..end].to_string()
    }

    /// Stores DIGEST-MD5 credentials for `localpart@verona.lit` directly under the key the
    /// server would look up, also for a localpart no `BareJid` accepts.
    fn plant(net: &mut Net, localpart: &str, password: &str) {
        let creds = StoredCredentials::derive_with_digest_md5(
            localpart,
            "verona.lit",
            password,
            b"salt-1",
            b"salt-2",
            4096,
        )
        .expect("credentials");
        let key = Key {
            account: format!("{localpart}@verona.lit"),
            space: Space::Account,
            name: "credentials".into(),
        };
        assert!(matches!(
            net.store.apply(&Op::Put(key, creds.to_bytes())),
            EffectResult::Done
        ));
    }

    fn register(net: &mut Net, user: &str, password: &str) {
        let conn = net.server.accept(T0);
        raw_exchange(net, conn, HEADER);
        let ok = raw_exchange(
            net,
            conn,
            &format!(
                "<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>{user}</username><password>{password}</password></query></iq>"
            ),
        );
        assert!(ok.contains("type='result'"), "{ok}");
    }

    #[test]
    fn registered_account_logs_in_with_digest_md5() {
        let mut net = server(true);
        register(&mut net, "benvolio", "peace");
        assert!(stored(&mut net, "benvolio@verona.lit").digest_md5.is_some());
        let out = digest_login(&mut net, "benvolio", "peace");
        assert!(out.contains("<success"), "{out}");
        let out = digest_login(&mut net, "benvolio", "war");
        assert!(out.contains("not-authorized"), "{out}");
    }

    /// draft-ietf-xmpp-core-11 §6.1.1: the username-value is Nodeprep'd and at most 1023
    /// bytes. The account is the prepared localpart: a case-folded or fullwidth username
    /// whose response was computed for the prepared name logs in to that account. The
    /// stored secret is of the prepared name, so a client that hashes an unprepared name
    /// fails. A username over 1023 bytes is refused like an unknown account, even when
    /// credentials are stored under it.
    #[test]
    fn username_is_nodeprepped_and_at_most_1023_bytes() {
        let mut net = server(true);
        register(&mut net, "benvolio", "peace");
        for sent in ["BENVOLIO", "BenVolio", "\u{ff42}\u{ff45}\u{ff4e}volio"] {
            let (conn, out) = digest_login_as(&mut net, sent, "benvolio", "peace");
            assert!(out.contains("<success"), "{sent}: {out}");
            assert_eq!(
                bound_jid(&mut net, conn).split('/').next(),
                Some("benvolio@verona.lit")
            );
        }
        // Our client SASLpreps what the user typed (fullwidth → ASCII) before hashing it.
        let out = digest_login(&mut net, "\u{ff42}envolio", "peace");
        assert!(out.contains("<success"), "{out}");
        // Hashed as sent, an upper-case name cannot match the prepared name's secret.
        let out = digest_login(&mut net, "Benvolio", "peace");
        assert!(out.contains("not-authorized"), "{out}");

        // The planted key is the one the server derives for a valid localpart.
        let longest = "a".repeat(1023);
        let key_of = |l: &str| {
            accounts::credentials_key(&BareJid::parse(&format!("{l}@verona.lit")).expect("jid"))
        };
        assert_eq!(key_of(&longest).account, format!("{longest}@verona.lit"));
        plant(&mut net, &longest, "long");
        let out = digest_login(&mut net, &longest, "long");
        assert!(out.contains("<success"), "1023 bytes: {out}");
        let too_long = "a".repeat(1024);
        plant(&mut net, &too_long, "long");
        let refused = digest_login(&mut net, &too_long, "long");
        let unknown = digest_login(&mut net, "nobody", "long");
        assert!(unknown.contains("not-authorized"), "{unknown}");
        assert_eq!(refused, unknown);
    }

    #[test]
    fn off_by_default_and_no_secret_stored() {
        let mut net = server(false);
        let conn = net.server.accept(T0);
        let features = raw_exchange(&mut net, conn, HEADER);
        assert!(!features.contains("DIGEST-MD5"), "{features}");
        register(&mut net, "tybalt", "cat");
        assert!(stored(&mut net, "tybalt@verona.lit").digest_md5.is_none());
    }

    #[test]
    fn accounts_from_before_fail_until_the_password_is_set_again() {
        // Created with SCRAM keys only (version 1 record), then DIGEST-MD5 is enabled.
        let mut net = server(true);
        net.add_user("romeo@verona.lit", "juliet");
        assert!(stored(&mut net, "romeo@verona.lit").digest_md5.is_none());
        let out = digest_login(&mut net, "romeo", "juliet");
        assert!(out.contains("not-authorized"), "{out}");
        // SCRAM still works with the old record; a password change stores the secret.
        let id = net.connect("romeo@verona.lit/r", "juliet");
        assert!(net.jid_of(id).is_some(), "{:?}", net.client_events.get(&id));
        let reply = net.iq(
            id,
            "<iq type='set' id='pw' xmlns='jabber:client'><query xmlns='jabber:iq:register'><username>romeo</username><password>rosaline</password></query></iq>",
        );
        assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
        assert!(stored(&mut net, "romeo@verona.lit").digest_md5.is_some());
        let out = digest_login(&mut net, "romeo", "rosaline");
        assert!(out.contains("<success"), "{out}");
    }
}

/// The `id` attribute of the stream header in `out`.
fn stream_id_of(out: &str) -> String {
    let header = &out[out.find("<stream:stream").expect("a stream header")..];
    let at = header.find(" id='").expect("an id") + 5;
    header[at..at + header[at..].find('\'').expect("quoted")].to_string()
}

const PRE_1_0_HEADER: &str = "<?xml version='1.0'?><stream:stream to='verona.lit' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Registers Romeo in band (so the password is stored the way the server's policy says).
fn register_romeo(net: &mut Net) {
    let conn = net.server.accept(T0);
    raw_exchange(net, conn, HEADER);
    let ok = raw_exchange(
        net,
        conn,
        "<iq type='set' id='r'><query xmlns='jabber:iq:register'><username>romeo</username><password>Calli0pe</password></query></iq>",
    );
    assert!(ok.contains("type='result'"), "{ok}");
}

fn digest_auth(stream_id: &str, password: &str) -> String {
    let digest = elsinore_sasl::legacy_digest(stream_id, password);
    format!(
        "<iq type='set' id='a'><query xmlns='jabber:iq:auth'><username>romeo</username>\
         <digest>{digest}</digest><resource>orchard</resource></query></iq>"
    )
}

#[test]
fn legacy_digest_login_when_the_server_keeps_passwords_for_it() {
    let mut cfg = ServerConfig::new("verona.lit");
    cfg.allow_registration = true;
    cfg.tls_available = false;
    cfg.allow_plaintext_auth = true;
    cfg.legacy_auth_digest = true;
    let mut net = Net::with_config(cfg);
    register_romeo(&mut net);

    // Guide / XEP-0078: the get lists every accepted field, digest included.
    let conn = net.server.accept(T0);
    let header = raw_exchange(&mut net, conn, PRE_1_0_HEADER);
    let stream_id = stream_id_of(&header);
    let fields = raw_exchange(
        &mut net,
        conn,
        "<iq type='get' id='f'><query xmlns='jabber:iq:auth'><username>romeo</username></query></iq>",
    );
    assert!(
        fields.contains("<digest") && fields.contains("<password"),
        "{fields}"
    );
    // A digest over another stream's id, or of another password, is refused (401).
    let wrong = raw_exchange(&mut net, conn, &digest_auth(&stream_id, "calliope"));
    assert!(
        wrong.contains("not-authorized") && wrong.contains("code='401'"),
        "{wrong}"
    );
    let conn = net.server.accept(T0);
    let header = raw_exchange(&mut net, conn, PRE_1_0_HEADER);
    let replayed = raw_exchange(&mut net, conn, &digest_auth(&stream_id, "Calli0pe"));
    assert!(replayed.contains("not-authorized"), "{replayed}");
    // The right digest over this stream's id logs in with the requested resource.
    let ok = raw_exchange(
        &mut net,
        conn,
        &digest_auth(&stream_id_of(&header), "Calli0pe"),
    );
    assert!(
        ok.contains("type='result'") && ok.contains("id='a'"),
        "{ok}"
    );
    let roster = raw_exchange(
        &mut net,
        conn,
        "<iq type='get' id='q'><query xmlns='jabber:iq:roster'/></iq>",
    );
    assert!(roster.contains("type='result'"), "logged in: {roster}");
}

#[test]
fn legacy_digest_is_neither_offered_nor_accepted_by_default() {
    let mut net = server(true);
    register_romeo(&mut net);
    let conn = net.server.accept(T0);
    let header = raw_exchange(&mut net, conn, PRE_1_0_HEADER);
    let fields = raw_exchange(
        &mut net,
        conn,
        "<iq type='get' id='f'><query xmlns='jabber:iq:auth'><username>romeo</username></query></iq>",
    );
    assert!(
        fields.contains("<password") && !fields.contains("<digest"),
        "{fields}"
    );
    // Without a password field the set lacks what the server asked for: 406.
    let refused = raw_exchange(
        &mut net,
        conn,
        &digest_auth(&stream_id_of(&header), "Calli0pe"),
    );
    assert!(
        refused.contains("not-acceptable") && refused.contains("code='406'"),
        "{refused}"
    );
}
