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
