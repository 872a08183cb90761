//! Limits across and within connections, on the server core with virtual time: connections
//! per address, stanza and byte rates, failed authentication per address and per account,
//! the unauthenticated connection lifetime. Each test checks the documented error and that
//! another session keeps working.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use core::time::Duration;
use std::net::IpAddr;

use common::{Net, T0};
use elsinore_jid::Jid;
use elsinore_server::{ConnId, Instant, Rate, ServerConfig};
use elsinore_stream::{ClientConfig, Connection, Limits, TlsPolicy};

const DOMAIN: &str = "elsinore.lit";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn config() -> ServerConfig {
    let mut c = ServerConfig::new(DOMAIN);
    c.scram_iterations = 4096;
    c
}

fn net_with(c: ServerConfig) -> Net {
    let mut net = Net::with_config(c);
    net.add_user("hamlet@elsinore.lit", "hamlet-pw");
    net.add_user("ophelia@elsinore.lit", "ophelia-pw");
    net
}

/// The bytes the server sent to a connection that has no client object (raw tests).
fn raw_out(net: &mut Net, id: ConnId) -> String {
    let mut s = String::new();
    for (_, b) in net.s2s_out.iter().filter(|(c, _)| *c == id) {
        s.push_str(&String::from_utf8_lossy(b));
    }
    net.s2s_out.retain(|(c, _)| *c != id);
    s
}

/// Ophelia (a session on another address) still gets answers: a XEP-0049 round trip.
fn still_healthy(net: &mut Net, ophelia: ConnId, tag: &str) {
    let set = net.iq(
        ophelia,
        &format!(
            "<iq xmlns='jabber:client' type='set' id='s-{tag}'><query xmlns='jabber:iq:private'>\
             <note xmlns='x:health'>{tag}</note></query></iq>"
        ),
    );
    assert_eq!(set.attr("type"), Some("result"), "{set:?}");
    let get = net.iq(
        ophelia,
        &format!(
            "<iq xmlns='jabber:client' type='get' id='g-{tag}'><query xmlns='jabber:iq:private'>\
             <note xmlns='x:health'/></query></iq>"
        ),
    );
    let text = get
        .get_child("query", "jabber:iq:private")
        .and_then(|q| q.get_child("note", "x:health"))
        .map(|n| n.text());
    assert_eq!(text.as_deref(), Some(tag), "{get:?}");
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='elsinore.lit' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

#[test]
fn connections_per_address_over_the_limit_get_policy_violation() {
    let mut c = config();
    c.abuse.max_connections_per_ip = 2;
    let mut net = net_with(c);
    let ophelia = net.connect("ophelia@elsinore.lit/chamber", "ophelia-pw");

    let a1 = net.server.accept_from(ip("192.0.2.1"), T0);
    let a2 = net.server.accept_from(ip("192.0.2.1"), T0);
    // IPv6: one /64 counts as one address.
    let v6a = net.server.accept_from(ip("2001:db8:1:2::1"), T0);
    let v6b = net.server.accept_from(ip("2001:db8:1:2::2"), T0);
    net.drive();
    for id in [a1, a2, v6a, v6b] {
        assert!(!net.s2s_closed.contains(&id), "{id:?} within the limit");
    }
    let over = net.server.accept_from(ip("192.0.2.1"), T0);
    let over6 = net.server.accept_from(ip("2001:db8:1:2::ffff"), T0);
    net.drive();
    for id in [over, over6] {
        let out = raw_out(&mut net, id);
        assert!(out.contains("<stream:stream"), "our header first: {out}");
        assert!(out.contains("<policy-violation"), "{out}");
        assert!(out.ends_with("</stream:stream>"), "{out}");
        assert!(net.s2s_closed.contains(&id), "closed");
    }
    // Another address is not affected, and the first address may connect again once one
    // of its connections is gone.
    let other = net.server.accept_from(ip("198.51.100.7"), T0);
    net.server.handle_eof(a1, T0);
    let again = net.server.accept_from(ip("192.0.2.1"), T0);
    net.drive();
    net.s2s_out.clear();
    for id in [other, again] {
        net.server.handle_input(id, HEADER.as_bytes(), T0);
    }
    net.drive();
    for id in [other, again] {
        let out = raw_out(&mut net, id);
        assert!(out.contains("features"), "served: {out}");
    }
    still_healthy(&mut net, ophelia, "conns");
    // Closed connections leave no per-address entry behind.
    for id in [a2, v6a, v6b, other, again] {
        net.server.handle_eof(id, T0);
    }
    net.drive();
    assert_eq!(net.server.abuse_table_sizes().0, 0);
}

#[test]
fn loopback_is_exempt_by_default() {
    let mut c = config();
    c.abuse.max_connections_per_ip = 1;
    let mut net = net_with(c);
    let ids: Vec<ConnId> = (0..5)
        .map(|_| net.server.accept_from(ip("127.0.0.1"), T0))
        .collect();
    net.drive();
    assert!(ids.iter().all(|id| !net.s2s_closed.contains(id)));
    assert_eq!(net.server.abuse_table_sizes().0, 0);
}

fn ping(id: &str) -> String {
    format!(
        "<iq xmlns='jabber:client' type='get' id='{id}' to='elsinore.lit'>\
         <ping xmlns='urn:xmpp:ping'/></iq>"
    )
}

fn answered(net: &mut Net, conn: ConnId, prefix: &str) -> Vec<String> {
    net.inbox
        .get(&conn)
        .map(|v| {
            v.iter()
                .filter_map(|e| e.attr("id"))
                .filter(|i| i.starts_with(prefix))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Advance virtual time to the server's next deadline (bounded), `n` times at most or
/// until `done`.
fn advance_until(net: &mut Net, now: &mut Instant, mut done: impl FnMut(&mut Net) -> bool) {
    for _ in 0..200 {
        if done(net) {
            return;
        }
        let next = net.server.poll_timeout().expect("a deadline is pending");
        assert!(next >= *now, "deadlines do not go back");
        *now = next;
        net.now = next;
        net.server.handle_timeout(next);
        net.drive();
    }
    panic!("not done after 200 deadlines");
}

#[test]
fn stanza_rate_delays_input_and_other_sessions_keep_working() {
    let mut c = config();
    c.limits.stanza_rate = Some(Rate {
        per_second: 10,
        burst: 20,
    });
    c.limits.byte_rate = None;
    let mut net = net_with(c);
    let hamlet = net.connect("hamlet@elsinore.lit/castle", "hamlet-pw");
    let ophelia = net.connect("ophelia@elsinore.lit/chamber", "ophelia-pw");
    assert!(net.jid_of(hamlet).is_some() && net.jid_of(ophelia).is_some());

    // 60 pings in one read: the bucket (20, less the negotiation's elements) runs dry.
    let burst: String = (0..60).map(|i| ping(&format!("p{i:02}"))).collect();
    net.server.handle_input(hamlet, burst.as_bytes(), T0);
    net.drive();
    let first = answered(&mut net, hamlet, "p").len();
    assert!(first > 0 && first <= 20, "{first} answered at once");
    let paused = net.server.input_paused_until(hamlet).expect("throttled");
    assert!(paused > T0);
    // Ophelia is on her own bucket.
    still_healthy(&mut net, ophelia, "rate");

    // Time passes: the rest is read at 10 per second, in order, without an error.
    let mut now = T0;
    advance_until(&mut net, &mut now, |n| answered(n, hamlet, "p").len() == 60);
    let ids = answered(&mut net, hamlet, "p");
    let want: Vec<String> = (0..60).map(|i| format!("p{i:02}")).collect();
    assert_eq!(ids, want, "every ping answered once, in order");
    let waited = now.saturating_since(T0);
    let owed = u64::try_from(60 - first).unwrap();
    assert!(
        waited >= Duration::from_millis(owed * 100 - 100),
        "{owed} pings over the burst took {waited:?} of virtual time"
    );
    assert!(net.closed_error(hamlet).is_none(), "delayed, not closed");
    // The last element left a debt; once it is paid, input flows freely again.
    if let Some(t) = net.server.input_paused_until(hamlet) {
        net.now = t;
        net.server.handle_timeout(t);
        net.drive();
    }
    assert_eq!(net.server.input_paused_until(hamlet), None);
}

#[test]
fn input_beyond_the_held_limit_while_throttled_is_a_policy_violation() {
    let mut c = config();
    c.limits.stanza_rate = Some(Rate {
        per_second: 1,
        burst: 10,
    });
    c.limits.byte_rate = None;
    let mut net = net_with(c);
    let hamlet = net.connect("hamlet@elsinore.lit/castle", "hamlet-pw");
    let ophelia = net.connect("ophelia@elsinore.lit/chamber", "ophelia-pw");
    let burst: String = (0..20).map(|i| ping(&format!("q{i}"))).collect();
    net.server.handle_input(hamlet, burst.as_bytes(), T0);
    net.drive();
    assert!(net.server.input_paused_until(hamlet).is_some());
    // An adapter that keeps reading: 64 KiB more while throttled.
    let flood = ping("x").repeat(70 * 1024 / ping("x").len());
    net.server.handle_input(hamlet, flood.as_bytes(), T0);
    net.drive();
    let err = net
        .closed_error(hamlet)
        .expect("closed")
        .unwrap_or_default();
    assert!(err.contains("policy-violation"), "{err}");
    still_healthy(&mut net, ophelia, "held");
}

#[test]
fn byte_rate_delays_a_large_stanza() {
    let mut c = config();
    c.limits.stanza_rate = None;
    c.limits.byte_rate = Some(Rate {
        per_second: 1000,
        burst: 8000,
    });
    let mut net = net_with(c);
    let hamlet = net.connect("hamlet@elsinore.lit/castle", "hamlet-pw");
    let ophelia = net.connect_available("ophelia@elsinore.lit/chamber", "ophelia-pw");
    let body = "a".repeat(20_000);
    let msg = format!(
        "<message xmlns='jabber:client' to='ophelia@elsinore.lit/chamber' id='big'>\
         <body>{body}</body></message>"
    );
    net.server.handle_input(hamlet, msg.as_bytes(), T0);
    net.drive();
    let got = |n: &mut Net| {
        n.inbox
            .get(&ophelia)
            .is_some_and(|v| v.iter().any(|e| e.attr("id") == Some("big")))
    };
    assert!(!got(&mut net), "over the byte budget: not read yet");
    let paused = net.server.input_paused_until(hamlet).expect("throttled");
    // At least 20 000 - 8 000 bytes owed at 1000 per second.
    assert!(
        paused.saturating_since(T0) >= Duration::from_secs(12),
        "{paused:?}"
    );
    still_healthy(&mut net, ophelia, "bytes");
    let mut now = T0;
    advance_until(&mut net, &mut now, got);
    assert!(net.closed_error(hamlet).is_none());
}

/// One login attempt from `from` (SCRAM over simulated TLS), driven through any delay
/// the server imposes; returns how it ended and the virtual time it took.
fn attempt(
    net: &mut Net,
    now: &mut Instant,
    from: &str,
    jid: &str,
    password: &str,
) -> (Result<(), String>, Duration) {
    let start = *now;
    net.now = *now;
    let id = net.server.accept_from(ip(from), *now);
    let client = Connection::new_client(
        ClientConfig {
            jid: Jid::parse(jid).unwrap(),
            password: password.into(),
            tls: TlsPolicy::Required,
        },
        Limits::default(),
        [42; 32],
        *now,
    );
    net.clients.insert(id, client);
    net.drive();
    advance_until(net, now, |n| {
        n.jid_of(id).is_some() || n.closed_error(id).is_some()
    });
    let result = match net.closed_error(id) {
        None => Ok(()),
        Some(e) => Err(e.unwrap_or_default()),
    };
    // Done with it either way.
    net.clients.remove(&id);
    net.server.handle_eof(id, *now);
    net.drive();
    (result, now.saturating_since(start))
}

fn auth_config() -> ServerConfig {
    let mut c = config();
    c.abuse.auth_delay_after = 2;
    c.abuse.auth_refuse_after_ip = 5;
    c.abuse.auth_refuse_after_account = 8;
    c.abuse.auth_base_delay = Duration::from_secs(1);
    c.abuse.auth_max_delay = Duration::from_secs(4);
    c
}

#[test]
fn failed_logins_from_one_address_are_delayed_then_refused() {
    let mut net = net_with(auth_config());
    let ophelia = net.connect("ophelia@elsinore.lit/chamber", "ophelia-pw");
    let mut now = T0;
    let a = "192.0.2.66";
    let mut log = Vec::new();
    for _ in 0..2 {
        let (r, took) = attempt(&mut net, &mut now, a, "hamlet@elsinore.lit", "wrong");
        assert!(r.as_ref().unwrap_err().contains("not-authorized"), "{r:?}");
        log.push(took);
    }
    assert!(
        log.iter().all(|t| t.is_zero()),
        "no delay at first: {log:?}"
    );
    // From the third attempt on the verdict waits, success included.
    let (r, took) = attempt(&mut net, &mut now, a, "hamlet@elsinore.lit", "wrong");
    assert!(r.unwrap_err().contains("not-authorized"));
    assert_eq!(took, Duration::from_secs(1));
    // A connection that gives up while its attempt is held back leaves nothing behind.
    let id = net.server.accept_from(ip(a), now);
    let client = Connection::new_client(
        ClientConfig {
            jid: Jid::parse("hamlet@elsinore.lit/x").unwrap(),
            password: "wrong".into(),
            tls: TlsPolicy::Required,
        },
        Limits::default(),
        [43; 32],
        now,
    );
    net.clients.insert(id, client);
    net.drive();
    assert!(
        net.server
            .poll_timeout()
            .is_some_and(|t| t < now + Duration::from_secs(30))
    );
    net.clients.remove(&id);
    net.server.handle_eof(id, now);
    net.drive();
    assert!(
        net.server
            .poll_timeout()
            .is_none_or(|t| t >= now + Duration::from_secs(30)),
        "the held-back check went with its connection"
    );
    let (r, took) = attempt(&mut net, &mut now, a, "hamlet@elsinore.lit", "hamlet-pw");
    assert_eq!(r, Ok(()), "the right password still gets in, late");
    assert_eq!(took, Duration::from_secs(2));
    still_healthy(&mut net, ophelia, "auth1");
    // A different account from the same address: the address's count applies.
    let (r, took) = attempt(&mut net, &mut now, a, "ophelia@elsinore.lit", "wrong");
    assert!(r.unwrap_err().contains("not-authorized"));
    assert_eq!(took, Duration::from_secs(2));
    let (r, took) = attempt(&mut net, &mut now, a, "ophelia@elsinore.lit", "wrong");
    assert!(r.unwrap_err().contains("not-authorized"));
    assert_eq!(took, Duration::from_secs(4), "capped");
    // Five failures from this address: refused without a check, even the right password.
    let (r, took) = attempt(&mut net, &mut now, a, "hamlet@elsinore.lit", "hamlet-pw");
    assert!(r.unwrap_err().contains("temporary-auth-failure"));
    assert!(took.is_zero());
    // Another address logs in at once.
    let (r, took) = attempt(
        &mut net,
        &mut now,
        "203.0.113.5",
        "hamlet@elsinore.lit",
        "hamlet-pw",
    );
    assert_eq!(r, Ok(()));
    assert!(took.is_zero(), "{took:?}");
    still_healthy(&mut net, ophelia, "auth2");
    // The window passes: the address is forgiven.
    now = now + Duration::from_secs(15 * 60);
    let (r, _) = attempt(&mut net, &mut now, a, "hamlet@elsinore.lit", "hamlet-pw");
    assert_eq!(r, Ok(()));
}

#[test]
fn failed_logins_against_one_account_from_many_addresses_are_refused() {
    let mut net = net_with(auth_config());
    let mut now = T0;
    for i in 0..8 {
        let from = format!("198.51.100.{i}");
        let (r, _) = attempt(&mut net, &mut now, &from, "hamlet@elsinore.lit", "guess");
        assert!(r.unwrap_err().contains("not-authorized"));
    }
    let (r, took) = attempt(
        &mut net,
        &mut now,
        "198.51.100.200",
        "hamlet@elsinore.lit",
        "x",
    );
    assert!(r.unwrap_err().contains("temporary-auth-failure"));
    assert!(took.is_zero());
    // Other accounts are not affected.
    let (r, took) = attempt(
        &mut net,
        &mut now,
        "198.51.100.201",
        "ophelia@elsinore.lit",
        "ophelia-pw",
    );
    assert_eq!(r, Ok(()));
    assert!(took.is_zero());
    // Tables stay bounded: one entry per address and account seen.
    let (_, ips, accounts) = net.server.abuse_table_sizes();
    assert_eq!((ips, accounts), (8, 1));
}

#[test]
fn legacy_auth_failures_count_and_are_refused() {
    let mut c = auth_config();
    c.allow_plaintext_auth = true;
    let mut net = net_with(c);
    let ophelia = net.connect("ophelia@elsinore.lit/chamber", "ophelia-pw");
    let legacy_header = "<?xml version='1.0'?><stream:stream to='elsinore.lit' \
        xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
    let auth = |pw: &str| {
        format!(
            "<iq type='set' id='a1'><query xmlns='jabber:iq:auth'><username>hamlet</username>\
             <password>{pw}</password><resource>r</resource></query></iq>"
        )
    };
    let mut now = T0;
    let mut outcomes = Vec::new();
    for _ in 0..6 {
        let id = net.server.accept_from(ip("192.0.2.9"), now);
        net.server.handle_input(id, legacy_header.as_bytes(), now);
        net.server.handle_input(id, auth("wrong").as_bytes(), now);
        net.drive();
        if let Some(t) = net
            .server
            .poll_timeout()
            .filter(|t| *t < now + Duration::from_secs(30))
        {
            now = t;
            net.now = t;
            net.server.handle_timeout(t);
            net.drive();
        }
        outcomes.push(raw_out(&mut net, id));
        net.server.handle_eof(id, now);
        net.drive();
    }
    for o in &outcomes[..5] {
        assert!(o.contains("<not-authorized"), "{o}");
    }
    assert!(outcomes[5].contains("<policy-violation"), "{}", outcomes[5]);
    assert!(outcomes[5].contains("type='wait'") || outcomes[5].contains("type=\"wait\""));
    still_healthy(&mut net, ophelia, "legacy");
}

#[test]
fn unauthenticated_connections_end_at_the_configured_lifetime() {
    let mut c = config();
    c.limits.negotiation_timeout = Duration::from_secs(5);
    let mut net = net_with(c);
    let ophelia = net.connect("ophelia@elsinore.lit/chamber", "ophelia-pw");
    let idle = net.server.accept_from(ip("192.0.2.3"), T0);
    net.server.handle_input(idle, HEADER.as_bytes(), T0);
    net.drive();
    raw_out(&mut net, idle);
    let deadline = net.server.poll_timeout().unwrap();
    assert_eq!(deadline, T0 + Duration::from_secs(5));
    net.server.handle_timeout(deadline);
    net.drive();
    let out = raw_out(&mut net, idle);
    assert!(out.contains("<connection-timeout"), "{out}");
    assert!(net.s2s_closed.contains(&idle));
    // The established session has no such deadline.
    assert!(net.closed_error(ophelia).is_none());
    still_healthy(&mut net, ophelia, "lifetime");
    assert_eq!(net.server.connection_count(), 1);
}

#[test]
fn xml_limits_end_only_the_offending_stream() {
    let mut c = config();
    c.limits.xml.max_element_bytes = 4096;
    c.limits.xml.max_depth = 8;
    c.limits.xml.max_attributes = 8;
    let mut net = net_with(c);
    let ophelia = net.connect("ophelia@elsinore.lit/chamber", "ophelia-pw");
    let big = format!(
        "<message xmlns='jabber:client' to='ophelia@elsinore.lit'><body>{}</body></message>",
        "x".repeat(5000)
    );
    let deep = format!(
        "<message xmlns='jabber:client'>{}{}</message>",
        "<a xmlns='x:d'>".repeat(9),
        "</a>".repeat(9)
    );
    let attrs = format!(
        "<message xmlns='jabber:client' {}/>",
        (0..9)
            .map(|i| format!("a{i}='v'"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    for (what, xml) in [("size", big), ("depth", deep), ("attributes", attrs)] {
        let hamlet = net.connect(&format!("hamlet@elsinore.lit/{what}"), "hamlet-pw");
        assert!(net.jid_of(hamlet).is_some());
        net.send_raw(hamlet, &xml);
        let err = net.closed_error(hamlet).expect(what).unwrap_or_default();
        assert!(err.contains("policy-violation"), "{what}: {err}");
        still_healthy(&mut net, ophelia, what);
    }
    assert!(
        net.inbox
            .get(&ophelia)
            .is_none_or(|v| v.iter().all(|e| e.name != "message")),
        "nothing of the oversized stanza was delivered"
    );
}

#[test]
fn sessions_per_account_over_the_limit_get_resource_constraint() {
    let mut c = config();
    c.max_sessions_per_account = 2;
    let mut net = net_with(c);
    let ophelia = net.connect("ophelia@elsinore.lit/chamber", "ophelia-pw");
    let a = net.connect("hamlet@elsinore.lit/one", "hamlet-pw");
    let b = net.connect("hamlet@elsinore.lit/two", "hamlet-pw");
    assert!(net.jid_of(a).is_some() && net.jid_of(b).is_some());
    let third = net.connect("hamlet@elsinore.lit/three", "hamlet-pw");
    assert!(net.jid_of(third).is_none());
    let err = net
        .closed_error(third)
        .expect("the client gives up")
        .unwrap_or_default();
    assert!(err.contains("resource-constraint"), "{err}");
    // The two sessions and the other account are untouched.
    assert!(net.closed_error(a).is_none() && net.closed_error(b).is_none());
    assert_eq!(net.server.session_count(), 3);
    still_healthy(&mut net, ophelia, "sessions");
}

#[test]
fn three_failed_attempts_on_one_stream_are_a_policy_violation() {
    let mut c = config();
    c.allow_plaintext_auth = true;
    let mut net = net_with(c);
    let ophelia = net.connect("ophelia@elsinore.lit/chamber", "ophelia-pw");
    let id = net.server.accept_from(ip("192.0.2.50"), T0);
    net.server.handle_input(id, HEADER.as_bytes(), T0);
    // PLAIN, "\0hamlet\0wrong".
    let auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>\
                AGhhbWxldAB3cm9uZw==</auth>";
    let mut outs = Vec::new();
    for _ in 0..3 {
        raw_out(&mut net, id);
        net.server.handle_input(id, auth.as_bytes(), T0);
        net.drive();
        outs.push(raw_out(&mut net, id));
    }
    assert!(outs[0].contains("<not-authorized") && !outs[0].contains("policy-violation"));
    assert!(outs[1].contains("<not-authorized") && !outs[1].contains("policy-violation"));
    assert!(outs[2].contains("policy-violation"), "{}", outs[2]);
    assert!(net.s2s_closed.contains(&id));
    still_healthy(&mut net, ophelia, "per-stream");
}

#[test]
fn attempts_that_check_no_credentials_do_not_count_as_failed_logins() {
    // A client that tries a mechanism or channel binding the server cannot do (slixmpp on
    // TLS 1.2 tries -PLUS with tls-unique on every login) fails before any password is
    // checked: that guesses nothing, so it must not earn the address a delay or a refusal.
    let mut c = auth_config();
    c.allow_plaintext_auth = true;
    let mut net = net_with(c);
    let mut now = T0;
    let a = "192.0.2.77";
    // PLAIN with a message that is not base64: malformed, refused before any lookup.
    let attempts = [
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NOT-A-MECHANISM'/>",
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>!!!</auth>",
    ];
    for _ in 0..4 {
        let id = net.server.accept_from(ip(a), now);
        net.server.handle_input(id, HEADER.as_bytes(), now);
        for auth in attempts {
            raw_out(&mut net, id);
            net.server.handle_input(id, auth.as_bytes(), now);
            net.drive();
            let out = raw_out(&mut net, id);
            assert!(out.contains("<failure"), "{out}");
        }
        net.server.handle_eof(id, now);
        net.drive();
    }
    // Eight failures from the address, none of which checked a password: no delay, no refusal
    // (the limits are a delay after 2 and a refusal after 5).
    let (r, took) = attempt(&mut net, &mut now, a, "hamlet@elsinore.lit", "hamlet-pw");
    assert_eq!(r, Ok(()));
    assert!(took.is_zero(), "{took:?}");
    // A wrong password still counts: two of them, and the third verdict waits.
    for _ in 0..2 {
        let (r, _) = attempt(&mut net, &mut now, a, "hamlet@elsinore.lit", "wrong");
        assert!(r.unwrap_err().contains("not-authorized"));
    }
    let (r, took) = attempt(&mut net, &mut now, a, "hamlet@elsinore.lit", "wrong");
    assert!(r.unwrap_err().contains("not-authorized"));
    assert_eq!(took, Duration::from_secs(1));
}
