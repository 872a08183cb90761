//! Stream error conditions not covered elsewhere, each where it is raised: one test per
//! condition (RFC 6120 4.9.3 names; the draft's older names are read as these).
#![allow(clippy::unwrap_used)]

use elsinore_jid::Jid;
use elsinore_stanza::{StreamError, StreamErrorCondition};
use elsinore_stream::{
    ClientConfig, Connection, Event, Instant, Limits, S2sConfig, S2sConnection, S2sEvent,
    ServerConfig, TlsPolicy,
};
use elsinore_xml::Element;

const T0: Instant = Instant::from_millis(1_000);
const HEADER: &str = "<?xml version='1.0'?><stream:stream to='capulet.lit' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";
const S2S_HEADER: &str = "<stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='one.example' to='two.example' version='1.0'>";

fn server(cfg: ServerConfig) -> Connection {
    Connection::new_server(cfg, Limits::default(), [3; 32], T0)
}

/// Juliet's client connection, with the given TLS policy.
fn client(tls: TlsPolicy) -> Connection {
    Connection::new_client(
        ClientConfig {
            jid: Jid::parse("juliet@capulet.lit").unwrap(),
            password: "r0meo".into(),
            tls,
        },
        Limits::default(),
        [1; 32],
        T0,
    )
}

fn plaintext_config() -> ServerConfig {
    let mut cfg = ServerConfig::new("capulet.lit");
    cfg.tls = TlsPolicy::Optional;
    cfg
}

fn output(c: &mut Connection) -> String {
    String::from_utf8(c.take_transmit()).unwrap()
}

/// The stream error in `out` (which must end with our close).
fn stream_error(out: &str) -> StreamError {
    let start = out
        .find("<error")
        .unwrap_or_else(|| panic!("no stream error: {out}"));
    let end = out.find("</error>").expect("error end") + "</error>".len();
    assert!(
        out.ends_with("</stream:stream>"),
        "closed after the error: {out}"
    );
    StreamError::from_element(&Element::parse(&out.as_bytes()[start..end]).unwrap()).unwrap()
}

#[test]
fn unknown_top_level_element_is_unsupported_stanza_type() {
    // During negotiation.
    let mut s = server(plaintext_config());
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    s.handle_input(b"<foo xmlns='urn:example:foo'/>", T0);
    let e = stream_error(&output(&mut s));
    assert_eq!(e.condition, StreamErrorCondition::UnsupportedStanzaType);
    assert!(s.is_closed());

    // Client role: an unknown element from the server during negotiation.
    let mut c = client(TlsPolicy::Optional);
    let _ = output(&mut c);
    c.handle_input(
        b"<stream:stream from='capulet.lit' id='i' version='1.0' xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams'><bar xmlns='urn:example:bar'/>",
        T0,
    );
    let e = stream_error(&output(&mut c));
    assert_eq!(e.condition, StreamErrorCondition::UnsupportedStanzaType);
}

#[test]
fn unknown_element_on_an_s2s_stream_is_unsupported_stanza_type() {
    let mut cfg = S2sConfig::new("two.example", [9; 32]);
    cfg.tls = TlsPolicy::Optional;
    let mut r = S2sConnection::new_receiving(cfg, Limits::default(), [2; 32], T0);
    r.handle_input(S2S_HEADER.as_bytes(), T0);
    let _ = r.take_transmit();
    r.handle_input(b"<foo xmlns='urn:example:foo'/>", T0);
    let out = String::from_utf8(r.take_transmit()).unwrap();
    assert!(out.contains("<unsupported-stanza-type"), "{out}");
    let closed = std::iter::from_fn(|| r.poll_event()).any(|e| {
        matches!(e, S2sEvent::Closed { error: Some(t) } if t.contains("unsupported-stanza-type"))
    });
    assert!(closed);
}

#[test]
fn a_former_domain_is_host_gone_others_host_unknown() {
    let mut cfg = plaintext_config();
    cfg.gone_domains = vec!["montague.lit".into()];
    let mut s = server(cfg.clone());
    s.handle_input(HEADER.replace("capulet.lit", "Montague.lit").as_bytes(), T0);
    let out = output(&mut s);
    assert!(
        out.contains("from='capulet.lit'"),
        "our header first: {out}"
    );
    assert_eq!(stream_error(&out).condition, StreamErrorCondition::HostGone);
    let mut s = server(cfg);
    s.handle_input(HEADER.replace("capulet.lit", "verona.lit").as_bytes(), T0);
    assert_eq!(
        stream_error(&output(&mut s)).condition,
        StreamErrorCondition::HostUnknown
    );
}

#[test]
fn s2s_stream_to_a_former_domain_is_host_gone() {
    let mut cfg = S2sConfig::new("two.example", [9; 32]);
    cfg.tls = TlsPolicy::Optional;
    cfg.gone_domains = vec!["old.example".into()];
    for (to, condition) in [
        ("old.example", "<host-gone"),
        ("three.example", "<host-unknown"),
    ] {
        let mut r = S2sConnection::new_receiving(cfg.clone(), Limits::default(), [2; 32], T0);
        r.handle_input(S2S_HEADER.replace("two.example", to).as_bytes(), T0);
        let out = String::from_utf8(r.take_transmit()).unwrap();
        assert!(out.contains(condition), "{to}: {out}");
        assert!(out.ends_with("</stream:stream>"), "{out}");
        assert!(r.is_closed());
    }
}

#[test]
fn client_without_tls_facing_required_starttls_is_unsupported_feature() {
    let mut c = client(TlsPolicy::Disabled);
    let _ = output(&mut c);
    c.handle_input(
        b"<stream:stream from='capulet.lit' id='i' version='1.0' xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams'><stream:features>\
          <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
          </stream:features>",
        T0,
    );
    let e = stream_error(&output(&mut c));
    assert_eq!(e.condition, StreamErrorCondition::UnsupportedFeature);
    assert!(c.is_closed());

    // STARTTLS offered but not required: the client goes on without it.
    let mut c = client(TlsPolicy::Disabled);
    let _ = output(&mut c);
    c.handle_input(
        b"<stream:stream from='capulet.lit' id='i' version='1.0' xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams'><stream:features>\
          <starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><mechanisms \
          xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-256</mechanism>\
          </mechanisms></stream:features>",
        T0,
    );
    let out = output(&mut c);
    assert!(out.contains("<auth"), "{out}");
    assert!(!c.is_closed());
}

#[test]
fn refusal_is_header_resource_constraint_and_close() {
    let out = Connection::refusal(
        ServerConfig::new("capulet.lit"),
        StreamError::new(StreamErrorCondition::ResourceConstraint),
        [5; 32],
    );
    let out = String::from_utf8(out).unwrap();
    assert!(out.starts_with("<?xml"), "{out}");
    assert!(out.contains("from='capulet.lit'"), "{out}");
    assert_eq!(
        stream_error(&out).condition,
        StreamErrorCondition::ResourceConstraint
    );
}

#[test]
fn too_many_sasl_failures_is_policy_violation() {
    let mut s = server(plaintext_config());
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    let mut out = String::new();
    for _ in 0..Limits::default().max_auth_failures {
        // An unoffered mechanism fails at once (invalid-mechanism).
        s.handle_input(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-NONE'/>",
            T0,
        );
        out.push_str(&output(&mut s));
    }
    assert!(out.contains("invalid-mechanism"), "{out}");
    assert_eq!(
        stream_error(&out).condition,
        StreamErrorCondition::PolicyViolation
    );
    assert!(s.is_closed());
}

#[test]
fn input_held_over_its_limit_is_policy_violation() {
    let mut s = server(plaintext_config());
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    // PLAIN with an initial response: the connection waits for the credentials...
    s.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG1lbw==</auth>",
        T0,
    );
    assert!(matches!(
        s.poll_event(),
        Some(Event::NeedCredentials { .. })
    ));
    // ... while the client keeps sending.
    let chunk = vec![b' '; 16 * 1024];
    for _ in 0..=(Limits::default().max_held_input / chunk.len()) {
        s.handle_input(&chunk, T0);
    }
    assert_eq!(
        stream_error(&output(&mut s)).condition,
        StreamErrorCondition::PolicyViolation
    );
}

#[test]
fn client_keeps_the_peers_stream_error() {
    let mut c = client(TlsPolicy::Disabled);
    let _ = output(&mut c);
    assert!(c.peer_stream_error().is_none());
    c.handle_input(
        b"<stream:stream from='capulet.lit' id='i' version='1.0' xmlns='jabber:client' \
          xmlns:stream='http://etherx.jabber.org/streams'><stream:error>\
          <policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>\
          <text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>too many connections</text>\
          </stream:error>",
        T0,
    );
    assert!(c.is_closed());
    let e = c.peer_stream_error().expect("kept");
    assert_eq!(e.condition, StreamErrorCondition::PolicyViolation);
    assert_eq!(e.text.as_deref(), Some("too many connections"));
}

fn s2s_receiving() -> S2sConnection {
    let mut cfg = S2sConfig::new("two.example", [9; 32]);
    cfg.tls = TlsPolicy::Optional;
    S2sConnection::new_receiving(cfg, Limits::default(), [2; 32], T0)
}

#[test]
fn s2s_version_2_is_unsupported_version() {
    let mut r = s2s_receiving();
    r.handle_input(S2S_HEADER.replace("'1.0'", "'2.0'").as_bytes(), T0);
    let out = String::from_utf8(r.take_transmit()).unwrap();
    assert_eq!(
        stream_error(&out).condition,
        StreamErrorCondition::UnsupportedVersion
    );
    assert!(r.is_closed());
    // 1.x is XMPP 1.0 (minor versions are compatible); no version is a pre-1.0 peer.
    for header in [
        S2S_HEADER.replace("'1.0'", "'1.1'"),
        S2S_HEADER.replace(" version='1.0'", ""),
    ] {
        let mut r = s2s_receiving();
        r.handle_input(header.as_bytes(), T0);
        let out = String::from_utf8(r.take_transmit()).unwrap();
        assert!(!out.contains("<error"), "{header}: {out}");
        assert!(!r.is_closed());
    }
}

#[test]
fn s2s_initiating_side_refuses_a_version_2_answer() {
    let mut cfg = S2sConfig::new("one.example", [7; 32]);
    cfg.tls = TlsPolicy::Optional;
    let mut a = S2sConnection::new_initiating(cfg, "two.example", Limits::default(), [1; 32], T0);
    let _ = a.take_transmit();
    a.handle_input(
        b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
          from='two.example' id='s1' version='2.0'>",
        T0,
    );
    let out = String::from_utf8(a.take_transmit()).unwrap();
    assert_eq!(
        stream_error(&out).condition,
        StreamErrorCondition::UnsupportedVersion
    );
}

#[test]
fn s2s_utf16_is_unsupported_encoding_and_a_utf8_bom_is_accepted() {
    let utf16: Vec<u8> = S2S_HEADER
        .encode_utf16()
        .flat_map(u16::to_be_bytes)
        .collect();
    let mut with_bom = vec![0xFE, 0xFF];
    with_bom.extend(&utf16);
    for input in [utf16.clone(), with_bom] {
        let mut r = s2s_receiving();
        r.handle_input(&input, T0);
        let out = String::from_utf8(r.take_transmit()).unwrap();
        assert!(
            out.starts_with("<?xml") || out.starts_with("<stream"),
            "{out}"
        );
        assert_eq!(
            stream_error(&out).condition,
            StreamErrorCondition::UnsupportedEncoding
        );
        assert!(r.is_closed());
    }
    // A UTF-8 BOM, split across reads, is skipped.
    let mut r = s2s_receiving();
    r.handle_input(&[0xEF, 0xBB], T0);
    r.handle_input(&[0xBF], T0);
    r.handle_input(S2S_HEADER.as_bytes(), T0);
    let out = String::from_utf8(r.take_transmit()).unwrap();
    assert!(
        out.contains("urn:xmpp:features:dialback"),
        "features follow: {out}"
    );
    assert!(!r.is_closed());
}
