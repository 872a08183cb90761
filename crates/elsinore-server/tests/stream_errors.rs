//! Server-wide stream errors: `system-shutdown` to every stream on shutdown,
//! `see-other-host` for every new stream when redirecting.

mod common;

use common::{Net, T0};
use elsinore_server::{ServerConfig, ServerEvent};

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='verona.lit' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Feeds `xml` to `conn` and returns what the server wrote to it.
fn raw_exchange(net: &mut Net, conn: elsinore_server::ConnId, xml: &str) -> String {
    net.server.handle_input(conn, xml.as_bytes(), T0);
    let mut out = Vec::new();
    while let Some((id, bytes)) = net.server.poll_transmit() {
        assert_eq!(id, conn);
        out.extend(bytes);
    }
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn shutdown_sends_system_shutdown_to_every_stream() {
    let mut net = Net::new("verona.lit");
    net.add_user("romeo@verona.lit", "juliet");
    net.add_user("mercutio@verona.lit", "mab");
    let a = net.connect("romeo@verona.lit/a", "juliet");
    let b = net.connect("mercutio@verona.lit/b", "mab");
    // And one still negotiating (header only).
    let c = net.server.accept(T0);
    let _ = raw_exchange(&mut net, c, HEADER);
    assert!(net.jid_of(a).is_some() && net.jid_of(b).is_some());
    net.server.shutdown(T0);
    let mut raw_c = String::new();
    while let Some((id, bytes)) = net.server.poll_transmit() {
        if id == c {
            raw_c.push_str(&String::from_utf8_lossy(&bytes));
        } else if let Some(client) = net.clients.get_mut(&id) {
            client.handle_input(&bytes, T0);
        }
    }
    net.drive();
    for id in [a, b] {
        let err = net
            .closed_error(id)
            .expect("closed")
            .expect("with a stream error");
        assert!(err.contains("system-shutdown"), "{err}");
    }
    assert!(raw_c.contains("system-shutdown"), "{raw_c}");
    assert!(raw_c.ends_with("</stream:stream>"), "{raw_c}");
}

#[test]
fn redirect_sends_see_other_host() {
    let mut cfg = ServerConfig::new("verona.lit");
    cfg.redirect = Some("[::1]:5333".into());
    let mut net = Net::with_config(cfg);
    let conn = net.server.accept(T0);
    let out = raw_exchange(&mut net, conn, HEADER);
    assert!(out.contains(">[::1]:5333</see-other-host>"), "{out}");
    assert!(!out.contains("features"), "{out}");
    assert!(matches!(net.server.poll_event(), Some(ServerEvent::Close(id)) if id == conn));
}

#[test]
fn a_new_session_for_the_same_resource_gets_the_old_one_conflict() {
    let mut net = Net::new("verona.lit");
    net.add_user("romeo@verona.lit", "juliet");
    let old = net.connect("romeo@verona.lit/balcony", "juliet");
    assert!(net.jid_of(old).is_some());
    let new = net.connect("romeo@verona.lit/balcony", "juliet");
    assert_eq!(
        net.jid_of(new).map(|j| j.to_string()).as_deref(),
        Some("romeo@verona.lit/balcony")
    );
    let err = net
        .closed_error(old)
        .expect("old session closed")
        .expect("with a stream error");
    assert!(err.contains("conflict"), "{err}");
    assert!(net.closed_error(new).is_none(), "the new session lives");
}

#[test]
fn former_domains_get_host_gone() {
    let mut cfg = ServerConfig::new("verona.lit");
    cfg.gone_domains = vec!["mantua.lit".into()];
    let mut net = Net::with_config(cfg);
    let conn = net.server.accept(T0);
    let out = raw_exchange(&mut net, conn, &HEADER.replace("verona.lit", "mantua.lit"));
    assert!(out.contains("<host-gone"), "{out}");
    let conn = net.server.accept(T0);
    let out = raw_exchange(&mut net, conn, &HEADER.replace("verona.lit", "padua.lit"));
    assert!(out.contains("<host-unknown"), "{out}");
}

#[test]
fn refusal_is_resource_constraint() {
    let mut net = Net::new("verona.lit");
    let out = String::from_utf8(net.server.refusal()).expect("utf-8");
    assert!(out.contains("from='verona.lit'"), "{out}");
    assert!(out.contains("<resource-constraint"), "{out}");
    assert!(out.ends_with("</stream:stream>"), "{out}");
}
