//! Connection deadlines through the server: negotiation timeout, keepalive ping and its
//! timeout, and `poll_timeout` as the earliest deadline of all connections while inputs
//! move them (the server keeps them in a timer queue rather than scanning connections).

mod common;

use common::{Net, T0};
use elsinore_server::{ConnId, Instant, ServerEvent};
use elsinore_stream::Limits;

const SECS: u64 = 1000;

fn at(secs: u64) -> Instant {
    Instant::from_millis(T0.as_millis() + secs * SECS)
}

/// Bytes the server queued for `id`, as text (the rest is dropped).
fn output_for(net: &mut Net, id: ConnId) -> String {
    let mut out = Vec::new();
    while let Some((to, bytes)) = net.server.poll_transmit() {
        if to == id {
            out.extend_from_slice(&bytes);
        }
    }
    String::from_utf8(out).expect("server output is UTF-8")
}

fn closed(net: &mut Net, id: ConnId) -> bool {
    let mut seen = false;
    while let Some(ev) = net.server.poll_event() {
        seen |= ev == ServerEvent::Close(id);
    }
    seen
}

#[test]
fn a_silent_new_connection_times_out_at_the_negotiation_deadline() {
    let mut net = Net::new("example.com");
    let limits = Limits::default();
    let id = net.server.accept(T0);
    assert_eq!(
        net.server.poll_timeout(),
        Some(T0 + limits.negotiation_timeout)
    );
    // Early: nothing happens, the deadline stays.
    let just_before = Instant::from_millis((T0 + limits.negotiation_timeout).as_millis() - 1);
    net.server.handle_timeout(just_before);
    assert!(!closed(&mut net, id));
    assert_eq!(
        net.server.poll_timeout(),
        Some(T0 + limits.negotiation_timeout)
    );
    net.server.handle_timeout(T0 + limits.negotiation_timeout);
    assert!(output_for(&mut net, id).contains("connection-timeout"));
    assert!(closed(&mut net, id));
    assert_eq!(net.server.poll_timeout(), None);
}

#[test]
fn input_postpones_the_keepalive_ping_and_an_unanswered_ping_ends_the_stream() {
    let mut net = Net::new("example.com");
    net.add_user("juliet@example.com", "pw");
    let id = net.connect("juliet@example.com/balcony", "pw");
    let limits = Limits::default();
    let ping_after = limits.ping_after.as_secs();
    let ping_timeout = limits.ping_timeout.as_secs();
    // Established at T0 (the last input): the next deadline is the keepalive.
    assert_eq!(net.server.poll_timeout(), Some(at(ping_after)));

    // Whitespace at +100 s moves the keepalive later.
    net.server.handle_input(id, b" ", at(100));
    assert_eq!(net.server.poll_timeout(), Some(at(100 + ping_after)));
    // The old deadline passing does nothing.
    net.server.handle_timeout(at(ping_after));
    assert_eq!(output_for(&mut net, id), "");
    assert_eq!(net.server.poll_timeout(), Some(at(100 + ping_after)));

    // Silence until the new deadline: a ping, then the ping timeout.
    net.server.handle_timeout(at(100 + ping_after));
    let ping = output_for(&mut net, id);
    assert!(ping.contains("urn:xmpp:ping"), "{ping}");
    assert_eq!(
        net.server.poll_timeout(),
        Some(at(100 + ping_after + ping_timeout))
    );
    net.server
        .handle_timeout(at(100 + ping_after + ping_timeout));
    assert!(output_for(&mut net, id).contains("connection-timeout"));
    assert!(closed(&mut net, id));
    assert_eq!(net.server.poll_timeout(), None);
}

#[test]
fn poll_timeout_is_the_earliest_deadline_across_many_connections() {
    let mut net = Net::new("example.com");
    let ping_after = Limits::default().ping_after.as_secs();
    let mut ids = Vec::new();
    for i in 0..20 {
        let jid = format!("user{i}@example.com");
        net.add_user(&jid, "pw");
        ids.push(net.connect(&format!("{jid}/r"), "pw"));
    }
    // Connection i last spoke at +(20 - i) s: the last one is the earliest to ping.
    for (i, id) in ids.iter().enumerate() {
        net.server.handle_input(*id, b" ", at(20 - i as u64));
    }
    assert_eq!(net.server.poll_timeout(), Some(at(1 + ping_after)));
    // Each time the earliest speaks again, the next one becomes the earliest.
    for k in 0..5u64 {
        let earliest = ids[ids.len() - 1 - k as usize];
        net.server.handle_input(earliest, b" ", at(30));
        assert_eq!(net.server.poll_timeout(), Some(at(2 + k + ping_after)));
    }
    // At +16 s past the keepalive, exactly the connections silent since +16 s or earlier
    // (connections 4..=14 by position) are pinged, in one call.
    net.server.handle_timeout(at(16 + ping_after));
    let mut pinged = Vec::new();
    while let Some((to, bytes)) = net.server.poll_transmit() {
        if String::from_utf8_lossy(&bytes).contains("urn:xmpp:ping") {
            pinged.push(to);
        }
    }
    pinged.sort_unstable();
    let want: Vec<ConnId> = ids[4..15].to_vec();
    assert_eq!(pinged, want);
    // Next: connection 3 (silent since +17 s).
    assert_eq!(net.server.poll_timeout(), Some(at(17 + ping_after)));
}
