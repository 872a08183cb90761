//! Sans-IO tests of `S2sConnection` pairs: dialback, SASL EXTERNAL, address checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use elsinore_stanza::{NS_CLIENT, StreamErrorCondition};
use elsinore_stream::s2s::dialback_key;
use elsinore_stream::{Instant, Limits, S2sAuth, S2sConfig, S2sConnection, S2sEvent, TlsPolicy};
use elsinore_xml::Element;

const ONE: &str = "one.example";
const TWO: &str = "two.example";

fn now() -> Instant {
    Instant::from_millis(1_000)
}

fn config(domain: &str, secret: u8) -> S2sConfig {
    let mut c = S2sConfig::new(domain, [secret; 32]);
    c.tls = TlsPolicy::Optional;
    c
}

/// Moves bytes both ways until both sides are quiet; collects events; answers TLS
/// upgrades with `verified_*` as the certificate check results.
struct Pair {
    a: S2sConnection,
    b: S2sConnection,
    a_events: Vec<S2sEvent>,
    b_events: Vec<S2sEvent>,
    verified_for_a: Vec<String>,
    verified_for_b: Vec<String>,
    wire_ab: Vec<u8>,
}

impl Pair {
    fn new(a: S2sConnection, b: S2sConnection) -> Self {
        Pair {
            a,
            b,
            a_events: Vec::new(),
            b_events: Vec::new(),
            verified_for_a: Vec::new(),
            verified_for_b: Vec::new(),
            wire_ab: Vec::new(),
        }
    }

    fn pump(&mut self) {
        for _ in 0..50 {
            let mut progressed = false;
            let ab = self.a.take_transmit();
            if !ab.is_empty() {
                progressed = true;
                self.wire_ab.extend_from_slice(&ab);
                // Feed byte by byte half of the time: any split must work.
                if ab.len().is_multiple_of(2) {
                    for b in &ab {
                        self.b.handle_input(std::slice::from_ref(b), now());
                    }
                } else {
                    self.b.handle_input(&ab, now());
                }
            }
            let ba = self.b.take_transmit();
            if !ba.is_empty() {
                progressed = true;
                self.a.handle_input(&ba, now());
            }
            let mut tls = (false, false);
            while let Some(e) = self.a.poll_event() {
                progressed = true;
                tls.0 |= e == S2sEvent::UpgradeTls;
                self.a_events.push(e);
            }
            while let Some(e) = self.b.poll_event() {
                progressed = true;
                tls.1 |= e == S2sEvent::UpgradeTls;
                self.b_events.push(e);
            }
            if tls.0 && tls.1 {
                // Both sides asked for the handshake: it "runs" now.
                self.a.handle_tls_ready(self.verified_for_a.clone(), now());
                self.b.handle_tls_ready(self.verified_for_b.clone(), now());
            }
            if !progressed {
                return;
            }
        }
        panic!("pair did not settle");
    }
}

fn verify_request(events: &[S2sEvent]) -> Option<(String, String, String)> {
    events.iter().find_map(|e| match e {
        S2sEvent::VerifyRequest {
            from,
            stream_id,
            key,
            ..
        } => Some((from.clone(), stream_id.clone(), key.clone())),
        _ => None,
    })
}

fn closed_with(events: &[S2sEvent], cond: StreamErrorCondition) -> bool {
    events.iter().any(|e| match e {
        S2sEvent::Closed { error: Some(t) } => t.contains(cond.name()),
        _ => false,
    })
}

/// one.example → two.example with dialback; two.example asks one.example's
/// authoritative server over a second stream.
fn dialback_pair(secret_of_originator: u8, secret_of_authority: u8) -> (Pair, Pair) {
    let origin = S2sConnection::new_initiating(
        config(ONE, secret_of_originator),
        TWO,
        Limits::default(),
        [1; 32],
        now(),
    );
    let receiver = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    let mut main = Pair::new(origin, receiver);
    main.pump();
    let (from, stream_id, key) = verify_request(&main.b_events).expect("a verify request");
    assert_eq!(from, ONE);
    // The receiving server opens a stream to the authoritative server of one.example.
    let verifier =
        S2sConnection::new_initiating(config(TWO, 9), ONE, Limits::default(), [3; 32], now());
    let authority = S2sConnection::new_receiving(
        config(ONE, secret_of_authority),
        Limits::default(),
        [4; 32],
        now(),
    );
    let mut check = Pair::new(verifier, authority);
    check.a.send_verify(&stream_id, &key, now()).unwrap();
    check.pump();
    (main, check)
}

fn verdict(check: &Pair) -> Option<(String, bool)> {
    check.a_events.iter().find_map(|e| match e {
        S2sEvent::Verified {
            from,
            valid,
            stream_id,
        } => {
            assert!(!stream_id.is_empty());
            Some((from.clone(), *valid))
        }
        _ => None,
    })
}

#[test]
fn dialback_happy_path_then_stanzas() {
    let (mut main, check) = dialback_pair(7, 7);
    let (from, valid) = verdict(&check).expect("verify answer");
    assert_eq!(from, ONE);
    assert!(valid);
    main.b.dialback_result(ONE, true, now());
    main.pump();
    assert!(main.a_events.contains(&S2sEvent::Authenticated {
        domain: TWO.into(),
        method: S2sAuth::Dialback
    }));
    assert!(main.b_events.contains(&S2sEvent::Authenticated {
        domain: ONE.into(),
        method: S2sAuth::Dialback
    }));
    assert!(main.a.is_tls() && main.b.is_tls());
    // The header declares the dialback namespace (draft 6.2.1 step 1).
    let wire = String::from_utf8_lossy(&main.wire_ab).to_string();
    assert!(wire.contains("xmlns:db='jabber:server:dialback'"), "{wire}");
    let msg = Element::new("message", NS_CLIENT)
        .with_attr("from", "alice@one.example/x")
        .with_attr("to", "bob@two.example")
        .with_child(Element::new("body", NS_CLIENT).with_text("hi"));
    main.a.send(&msg, now()).unwrap();
    main.pump();
    let got = main
        .b_events
        .iter()
        .find_map(|e| match e {
            S2sEvent::Stanza(s) => Some(s.clone()),
            _ => None,
        })
        .expect("stanza delivered");
    assert_eq!(got, msg, "namespace rewritten back to jabber:client");
    assert!(
        String::from_utf8_lossy(&main.wire_ab).contains("<message xmlns='jabber:server'")
            || !String::from_utf8_lossy(&main.wire_ab).contains("jabber:client")
    );
}

#[test]
fn bad_key_is_not_authorized() {
    let (mut main, check) = dialback_pair(7, 8);
    let (_, valid) = verdict(&check).expect("verify answer");
    assert!(!valid, "a key made with another secret must not verify");
    main.b.dialback_result(ONE, false, now());
    main.pump();
    assert!(closed_with(
        &main.b_events,
        StreamErrorCondition::NotAuthorized
    ));
    assert!(main.a.is_closed() && main.b.is_closed());
    assert!(
        !main
            .a_events
            .iter()
            .any(|e| matches!(e, S2sEvent::Authenticated { .. }))
    );
}

#[test]
fn key_construction_is_xep0185() {
    // Same inputs, same key; any input changes it.
    let k = dialback_key(&[7; 32], TWO, ONE, "abc");
    assert_eq!(k.len(), 64);
    assert_eq!(k, dialback_key(&[7; 32], TWO, ONE, "abc"));
    assert_ne!(k, dialback_key(&[7; 32], ONE, TWO, "abc"));
    assert_ne!(k, dialback_key(&[7; 32], TWO, ONE, "abd"));
    assert_ne!(k, dialback_key(&[8; 32], TWO, ONE, "abc"));
}

fn established_dialback() -> Pair {
    let (mut main, _) = dialback_pair(7, 7);
    main.b.dialback_result(ONE, true, now());
    main.pump();
    main
}

fn raw_stanza(main: &mut Pair, xml: &str) {
    main.b.handle_input(xml.as_bytes(), now());
    main.pump();
}

#[test]
fn wrong_from_is_invalid_from() {
    let mut main = established_dialback();
    raw_stanza(
        &mut main,
        "<message from='mallory@evil.example' to='bob@two.example'><body>x</body></message>",
    );
    assert!(closed_with(
        &main.b_events,
        StreamErrorCondition::InvalidFrom
    ));
}

#[test]
fn wrong_to_is_host_unknown() {
    let mut main = established_dialback();
    raw_stanza(
        &mut main,
        "<message from='alice@one.example' to='bob@three.example'><body>x</body></message>",
    );
    assert!(closed_with(
        &main.b_events,
        StreamErrorCondition::HostUnknown
    ));
}

#[test]
fn missing_to_is_improper_addressing() {
    let mut main = established_dialback();
    raw_stanza(&mut main, "<message from='alice@one.example'/>");
    assert!(closed_with(
        &main.b_events,
        StreamErrorCondition::ImproperAddressing
    ));
}

/// Draft 6.2.1 asks for `not-authorized` when a domain that already has a connection
/// authenticates again; elsinore applies it per stream (a second `db:result` for an
/// authenticated domain on the same stream) and lets a new stream authenticate on its own
/// (docs/conformance.md).
#[test]
fn second_db_result_for_an_authenticated_domain_is_not_authorized() {
    let mut main = established_dialback();
    raw_stanza(
        &mut main,
        "<db:result from='one.example' to='two.example'>0123456789abcdef</db:result>",
    );
    assert!(closed_with(
        &main.b_events,
        StreamErrorCondition::NotAuthorized
    ));
}

#[test]
fn stanza_before_authentication_is_not_authorized() {
    let receiver = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    let mut r = receiver;
    r.handle_input(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback' from='one.example' to='two.example' version='1.0'>\
          <message from='a@one.example' to='b@two.example'/>",
        now(),
    );
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(closed_with(&events, StreamErrorCondition::NotAuthorized));
}

#[test]
fn db_result_for_unknown_host() {
    let mut r = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    r.handle_input(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback' version='1.0'>\
          <db:result from='one.example' to='three.example'>abcd</db:result>",
        now(),
    );
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(closed_with(&events, StreamErrorCondition::HostUnknown));
}

#[test]
fn header_to_unknown_host() {
    let mut r = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    r.handle_input(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          to='nowhere.example' version='1.0'>",
        now(),
    );
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(closed_with(&events, StreamErrorCondition::HostUnknown));
    let out = String::from_utf8(r.take_transmit()).unwrap();
    assert!(out.contains("<stream:stream") && out.ends_with("</stream:stream>"));
}

#[test]
fn client_namespace_is_invalid_namespace() {
    let mut r = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    r.handle_input(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
          to='two.example' version='1.0'>",
        now(),
    );
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(closed_with(&events, StreamErrorCondition::InvalidNamespace));
}

#[test]
fn external_with_verified_certificates() {
    let a = S2sConnection::new_initiating(config(ONE, 7), TWO, Limits::default(), [1; 32], now());
    let b = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    let mut p = Pair::new(a, b);
    p.verified_for_a = vec![TWO.into()];
    p.verified_for_b = vec![ONE.into()];
    p.pump();
    assert!(p.a_events.contains(&S2sEvent::Authenticated {
        domain: TWO.into(),
        method: S2sAuth::External
    }));
    assert!(p.b_events.contains(&S2sEvent::Authenticated {
        domain: ONE.into(),
        method: S2sAuth::External
    }));
    assert!(
        verify_request(&p.b_events).is_none(),
        "no dialback with EXTERNAL"
    );
    let msg = Element::new("message", NS_CLIENT)
        .with_attr("from", "alice@one.example")
        .with_attr("to", "bob@two.example");
    p.a.send(&msg, now()).unwrap();
    p.pump();
    assert!(p.b_events.contains(&S2sEvent::Stanza(msg)));
}

#[test]
fn unverified_peer_certificate_falls_back_to_dialback() {
    // The receiver verified our certificate, but we could not verify its: no EXTERNAL.
    let a = S2sConnection::new_initiating(config(ONE, 7), TWO, Limits::default(), [1; 32], now());
    let b = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    let mut p = Pair::new(a, b);
    p.verified_for_b = vec![ONE.into()];
    p.pump();
    assert!(verify_request(&p.b_events).is_some());
    assert!(
        !p.a_events
            .iter()
            .any(|e| matches!(e, S2sEvent::Authenticated { .. }))
    );
}

#[test]
fn external_for_another_domain_fails() {
    let mut r = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    r.handle_input(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          from='one.example' to='two.example' version='1.0'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>",
        now(),
    );
    r.take_transmit();
    r.handle_tls_ready(vec![ONE.into()], now());
    // authzid evil.example (base64) does not match the header's from.
    r.handle_input(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          from='one.example' to='two.example' version='1.0'>\
          <auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>ZXZpbC5leGFtcGxl</auth>",
        now(),
    );
    let out = String::from_utf8(r.take_transmit()).unwrap();
    assert!(out.contains("<mechanism>EXTERNAL</mechanism>"), "{out}");
    assert!(out.contains("invalid-authzid"), "{out}");
    assert!(
        !r.poll_event()
            .into_iter()
            .any(|e| matches!(e, S2sEvent::Authenticated { .. }))
    );
}

#[test]
fn whitespace_after_starttls_is_not_an_attack() {
    let header = "<stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' from='one.example' to='two.example' \
        version='1.0'><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>";
    let mut r = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    r.handle_input(format!("{header}\n ").as_bytes(), now());
    let out = String::from_utf8(r.take_transmit()).unwrap();
    assert!(out.contains("<proceed"), "{out}");
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(events.contains(&S2sEvent::UpgradeTls), "{events:?}");
    assert!(!events.iter().any(|e| matches!(e, S2sEvent::Closed { .. })));
    // Anything but whitespace before the handshake is still refused.
    let mut r = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    r.handle_input(format!("{header}\n<db:result/>").as_bytes(), now());
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(closed_with(&events, StreamErrorCondition::PolicyViolation));
}

#[test]
fn tls_required_refuses_dialback_before_tls() {
    let mut cfg = config(TWO, 9);
    cfg.tls = TlsPolicy::Required;
    let mut r = S2sConnection::new_receiving(cfg, Limits::default(), [2; 32], now());
    r.handle_input(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback' version='1.0'>\
          <db:result from='one.example' to='two.example'>abcd</db:result>",
        now(),
    );
    let events: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert!(closed_with(&events, StreamErrorCondition::NotAuthorized));
}

#[test]
fn negotiation_timeout() {
    let mut a =
        S2sConnection::new_initiating(config(ONE, 7), TWO, Limits::default(), [1; 32], now());
    let t = a.poll_timeout().unwrap();
    a.handle_timeout(t);
    assert!(a.is_closed() && a.timed_out());
}

#[test]
fn garbage_never_panics() {
    let inputs: [&[u8]; 5] = [
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'><db:verify/>",
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'><db:verify from='x' to='two.example' id='1'/><db:result/>",
        b"<a><b>",
        b"\xff\xfe<",
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'><auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>!!</auth>",
    ];
    for input in inputs {
        let mut r = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
        r.handle_input(input, now());
        let mut a =
            S2sConnection::new_initiating(config(ONE, 7), TWO, Limits::default(), [1; 32], now());
        a.handle_input(input, now());
    }
}

fn at(secs: u64) -> Instant {
    Instant::from_millis(now().as_millis() + secs * 1000)
}

/// Moves what each side wrote to the other, at `t`; returns (a→b, b→a).
fn exchange(p: &mut Pair, t: Instant) -> (String, String) {
    let ab = p.a.take_transmit();
    p.b.handle_input(&ab, t);
    let ba = p.b.take_transmit();
    p.a.handle_input(&ba, t);
    p.a_events.extend(std::iter::from_fn(|| p.a.poll_event()));
    p.b_events.extend(std::iter::from_fn(|| p.b.poll_event()));
    (
        String::from_utf8(ab).unwrap(),
        String::from_utf8(ba).unwrap(),
    )
}

#[test]
fn outgoing_stream_sends_whitespace_keepalives_then_closes_when_idle() {
    let mut p = established_dialback();
    let keepalive = Limits::default().keepalive_interval.as_secs();
    // Only the outgoing side keeps alive, with one space per quiet interval.
    assert_eq!(p.a.poll_timeout(), Some(at(keepalive)));
    p.a.handle_timeout(at(keepalive));
    assert_eq!(exchange(&mut p, at(keepalive)).0, " ");
    assert_eq!(p.a.poll_timeout(), Some(at(2 * keepalive)));
    // A keepalive is not activity: both sides reach the idle timeout at once.
    let idle = S2sConfig::new(ONE, [0; 32]).idle_timeout.as_secs();
    assert_eq!(p.b.poll_timeout(), Some(at(idle)));
    let mut t = at(keepalive);
    while let Some(next) = p.a.poll_timeout() {
        if p.a.is_closing() {
            break;
        }
        t = next;
        p.a.handle_timeout(t);
    }
    assert_eq!(t, at(idle));
    let (ab, ba) = exchange(&mut p, t);
    assert!(
        ab.ends_with("</stream:stream>") && !ab.contains("<error"),
        "{ab}"
    );
    assert_eq!(ba, "</stream:stream>");
    exchange(&mut p, t);
    assert!(p.a.is_closed() && p.b.is_closed());
    for events in [&p.a_events, &p.b_events] {
        assert!(
            events.contains(&S2sEvent::Closed { error: None }),
            "{events:?}"
        );
    }
}

#[test]
fn incoming_stream_closes_when_idle() {
    let mut p = established_dialback();
    let idle = S2sConfig::new(ONE, [0; 32]).idle_timeout.as_secs();
    // A stanza restarts the idle clock of both sides.
    let msg = Element::new("message", NS_CLIENT)
        .with_attr("from", "alice@one.example/x")
        .with_attr("to", "bob@two.example");
    p.a.send(&msg, at(100)).unwrap();
    exchange(&mut p, at(100));
    assert_eq!(p.b.poll_timeout(), Some(at(100 + idle)));
    assert_eq!(p.a.last_activity(), at(100));
    // The receiving side sends no keepalive; at the deadline it closes cleanly.
    p.b.handle_timeout(at(100 + idle - 1));
    assert!(p.b.take_transmit().is_empty() && !p.b.is_closing());
    p.b.handle_timeout(at(100 + idle));
    assert!(p.b.is_closing());
    let (_, ba) = exchange(&mut p, at(100 + idle));
    assert_eq!(ba, "</stream:stream>");
    exchange(&mut p, at(100 + idle));
    assert!(p.a.is_closed() && p.b.is_closed());
    assert!(p.b_events.contains(&S2sEvent::Closed { error: None }));
}

#[test]
fn idle_timeout_is_configurable() {
    let mut cfg = config(TWO, 9);
    cfg.idle_timeout = std::time::Duration::from_secs(30);
    let mut b = S2sConnection::new_receiving(cfg, Limits::default(), [2; 32], now());
    // Not established: only the negotiation deadline.
    assert_eq!(
        b.poll_timeout(),
        Some(now() + Limits::default().negotiation_timeout)
    );
    b.handle_input(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback' from='one.example' to='two.example' version='1.0'>\
          <db:result from='one.example' to='two.example'>abcd</db:result>",
        at(1),
    );
    b.dialback_result(ONE, true, at(2));
    assert!(b.is_established());
    assert_eq!(b.poll_timeout(), Some(at(32)));
}

#[test]
fn dialback_feature_does_not_claim_dialback_errors() {
    // We never send XEP-0220 dialback errors (a failed check is a stream error, draft
    // 6.2), so the feature has no <errors/>.
    let mut b = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
    b.handle_input(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          xmlns:db='jabber:server:dialback' from='one.example' to='two.example' version='1.0'>",
        now(),
    );
    let out = String::from_utf8(b.take_transmit()).unwrap();
    assert!(out.contains("urn:xmpp:features:dialback"), "{out}");
    assert!(!out.contains("errors"), "{out}");
}

/// Draft 6.2.1 step 8: a verification answer for a stream id we never asked about (or a
/// second answer for one already answered) ends the stream (the draft's `invalid-id`,
/// `not-authorized` in RFC 6120's names) and reports no verdict.
#[test]
fn verify_answer_for_an_id_we_did_not_ask_about_ends_the_stream() {
    for forged_id in ["never-asked", ""] {
        let (_main, mut check) = dialback_pair(7, 7);
        let (_, valid) = verdict(&check).expect("the real answer");
        assert!(valid);
        let asked = check
            .a_events
            .iter()
            .filter(|e| matches!(e, S2sEvent::Verified { .. }))
            .count();
        // A replay of the real answer's id is as unknown as a made-up one.
        let id = if forged_id.is_empty() {
            check
                .a_events
                .iter()
                .find_map(|e| match e {
                    S2sEvent::Verified { stream_id, .. } => Some(stream_id.clone()),
                    _ => None,
                })
                .expect("answered id")
        } else {
            forged_id.to_string()
        };
        let forged = format!("<db:verify from='{ONE}' to='{TWO}' id='{id}' type='valid'/>");
        check.a.handle_input(forged.as_bytes(), now());
        let mut events = Vec::new();
        while let Some(e) = check.a.poll_event() {
            events.push(e);
        }
        let out = String::from_utf8_lossy(&check.a.take_transmit()).to_string();
        assert!(out.contains("<not-authorized"), "{out}");
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, S2sEvent::Verified { .. })),
            "{events:?}"
        );
        assert_eq!(asked, 1);
    }
}

/// RFC 6120 4.7.5 / draft 4.2: the receiving server answers a pre-1.0 header (no
/// `version`) with a header without one and no features (dialback only); a 1.0 header
/// gets `version='1.0'` and features.
#[test]
fn the_receiving_header_reciprocates_the_version() {
    for (version, expect) in [("", false), (" version='1.0'", true)] {
        let mut r = S2sConnection::new_receiving(config(TWO, 9), Limits::default(), [2; 32], now());
        let header = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' \
             xmlns:db='jabber:server:dialback' to='{TWO}'{version}>"
        );
        r.handle_input(header.as_bytes(), now());
        let out = String::from_utf8_lossy(&r.take_transmit()).to_string();
        let ours = &out[out.find("<stream:stream").expect("our header")..];
        let ours = &ours[..ours.find('>').expect("end of our header")];
        assert_eq!(ours.contains("version='1.0'"), expect, "{out}");
        assert_eq!(out.contains("features"), expect, "{out}");
    }
}
