//! Requirements of draft-ietf-xmpp-core-11 (§4–6) that no other test showed, one test
//! per behaviour; each names its section. The table in `docs/conformance.md` points here.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use elsinore_jid::Jid;
use elsinore_stanza::StreamErrorCondition;
use elsinore_stream::{
    ClientConfig, Connection, Event, Instant, Limits, S2sConfig, S2sConnection, S2sEvent,
    ServerConfig, TlsPolicy,
};

const T0: Instant = Instant::from_millis(1_000);

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='capulet.lit' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn server(tls: TlsPolicy) -> Connection {
    let mut cfg = ServerConfig::new("capulet.lit");
    cfg.tls = tls;
    Connection::new_server(cfg, Limits::default(), [3; 32], T0)
}

fn output(c: &mut Connection) -> String {
    String::from_utf8(c.take_transmit()).expect("utf-8 output")
}

/// The value of attribute `name` in the first start tag of `xml` named `tag`.
fn attr_of(xml: &str, tag: &str, name: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag} "))?;
    let end = start + xml[start..].find('>')?;
    let tag_text = &xml[start..end];
    for quote in ['\'', '"'] {
        let key = format!(" {name}={quote}");
        if let Some(p) = tag_text.find(&key) {
            let rest = &tag_text[p + key.len()..];
            return rest.find(quote).map(|q| rest[..q].to_string());
        }
    }
    None
}

// ---- §4 XML streams (c2s) -----------------------------------------------

/// §4.1 the server answers with a stream of its own; §4.2 its header carries `from`
/// (its domain), a fresh `id` and `version='1.0'` in reply to ours, and the client's
/// `id` is ignored; §4.3 the default namespace is the same in both directions.
#[test]
fn server_header_has_from_id_and_version() {
    let mut s = server(TlsPolicy::Required);
    s.handle_input(
        HEADER
            .replace("to='capulet.lit'", "to='capulet.lit' id='client-chosen'")
            .as_bytes(),
        T0,
    );
    let out = output(&mut s);
    assert_eq!(
        attr_of(&out, "stream:stream", "from").as_deref(),
        Some("capulet.lit")
    );
    assert_eq!(
        attr_of(&out, "stream:stream", "version").as_deref(),
        Some("1.0")
    );
    let id = attr_of(&out, "stream:stream", "id").expect("a stream id");
    assert!(!id.is_empty() && id != "client-chosen", "{out}");
    assert_eq!(s.stream_id(), Some(id.as_str()));
    assert_eq!(
        attr_of(&out, "stream:stream", "xmlns").as_deref(),
        Some("jabber:client")
    );
    assert!(out.contains("features"), "{out}");
    assert!(!s.is_closed());
}

/// §4.2 the initiating header carries `to` (the server's domain) and no `id` or `from`; §5.1 item
/// 1 and §6.1.1 item 2: it says `version='1.0'`.
#[test]
fn client_header_has_to_and_version() {
    let mut c = Connection::new_client(
        ClientConfig {
            jid: Jid::parse("juliet@capulet.lit/balcony").unwrap(),
            password: "r0meo".into(),
            tls: TlsPolicy::Required,
        },
        Limits::default(),
        [1; 32],
        T0,
    );
    let out = output(&mut c);
    assert_eq!(
        attr_of(&out, "stream:stream", "to").as_deref(),
        Some("capulet.lit")
    );
    assert_eq!(
        attr_of(&out, "stream:stream", "version").as_deref(),
        Some("1.0")
    );
    assert_eq!(attr_of(&out, "stream:stream", "id"), None, "{out}");
    assert_eq!(attr_of(&out, "stream:stream", "from"), None, "{out}");
}

/// §4.3: any prefix for the stream namespace is accepted, not only `stream:`.
#[test]
fn any_stream_prefix_is_accepted() {
    let mut s = server(TlsPolicy::Required);
    s.handle_input(
        b"<s:stream to='capulet.lit' version='1.0' xmlns='jabber:client' \
          xmlns:s='http://etherx.jabber.org/streams'>",
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("starttls"), "{out}");
    assert!(!out.contains("error"), "{out}");
    assert!(!s.is_closed());
}

/// §4.3: the stream namespace must be `http://etherx.jabber.org/streams`.
#[test]
fn wrong_stream_namespace_is_invalid_namespace() {
    let mut s = server(TlsPolicy::Required);
    s.handle_input(
        HEADER
            .replace("http://etherx.jabber.org/streams", "urn:example:streams")
            .as_bytes(),
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("invalid-namespace"), "{out}");
    assert!(s.is_closed());
}

/// §4.5.1: an error during setup still opens our stream (with our domain in `from`),
/// then the error, then the closing tag.
#[test]
fn setup_error_opens_our_stream_with_our_domain() {
    let mut s = server(TlsPolicy::Required);
    s.handle_input(HEADER.replace("capulet.lit", "nowhere.lit").as_bytes(), T0);
    let out = output(&mut s);
    assert_eq!(
        attr_of(&out, "stream:stream", "from").as_deref(),
        Some("capulet.lit")
    );
    let header_at = out.find("<stream:stream").expect("header");
    let error_at = out.find("host-unknown").expect("error");
    assert!(header_at < error_at, "{out}");
    assert!(out.ends_with("</stream:stream>"), "{out}");
    assert!(s.is_closed());
}

/// §4.4: features the client does not know are ignored; §4.2: a `to` on the server's
/// header is ignored by the client.
#[test]
fn client_ignores_unknown_features_and_header_to() {
    let mut c = Connection::new_client(
        ClientConfig {
            jid: Jid::parse("juliet@capulet.lit/balcony").unwrap(),
            password: "r0meo".into(),
            tls: TlsPolicy::Disabled,
        },
        Limits::default(),
        [1; 32],
        T0,
    );
    let _ = output(&mut c);
    c.handle_input(
        b"<stream:stream from='capulet.lit' to='someone@else.example' id='s1' version='1.0' \
          xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>\
          <stream:features><frobnicate xmlns='urn:example:unknown'><x/></frobnicate>\
          <mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism>\
          </mechanisms></stream:features>",
        T0,
    );
    let out = output(&mut c);
    assert!(out.contains("<auth") && out.contains("PLAIN"), "{out}");
    assert!(!c.is_closed());
}

// ---- §5 STARTTLS (c2s) --------------------------------------------------

/// §5.1 items 5 and 7, §5.2 step 7: after TLS the stream restarts from nothing (a new
/// stream id), STARTTLS is not offered again, and a second `<starttls/>` is refused.
#[test]
fn no_starttls_after_tls_and_a_new_stream() {
    let mut s = server(TlsPolicy::Required);
    s.handle_input(HEADER.as_bytes(), T0);
    let before = output(&mut s);
    assert!(before.contains("starttls"), "{before}");
    let first_id = s.stream_id().expect("id").to_string();
    s.handle_input(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", T0);
    assert!(output(&mut s).contains("<proceed"));
    assert_eq!(s.poll_event(), Some(Event::UpgradeTls));
    s.handle_tls_ready(T0);
    // Before the client's new header, nothing is answered.
    assert_eq!(output(&mut s), "");
    s.handle_input(HEADER.as_bytes(), T0);
    let after = output(&mut s);
    assert!(!after.contains("starttls"), "{after}");
    assert!(after.contains("mechanisms"), "{after}");
    assert_ne!(s.stream_id(), Some(first_id.as_str()));
    s.handle_input(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", T0);
    let again = output(&mut s);
    assert!(again.contains("<failure"), "{again}");
    assert!(s.is_closed());
}

/// §5.2 step 5 and §5.1 item 9: `<starttls/>` the server cannot honour is answered with
/// `<failure/>` in the TLS namespace, then the stream is closed.
#[test]
fn starttls_refused_with_failure_and_close() {
    let mut s = server(TlsPolicy::Disabled);
    s.handle_input(HEADER.as_bytes(), T0);
    let features = output(&mut s);
    assert!(!features.contains("starttls"), "{features}");
    s.handle_input(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", T0);
    let out = output(&mut s);
    assert!(
        out.contains("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
        "{out}"
    );
    assert!(out.ends_with("</stream:stream>"), "{out}");
    assert!(s.is_closed());
    assert!(matches!(s.poll_event(), Some(Event::Closed { .. })));
}

// ---- §6.1 SASL (c2s) ----------------------------------------------------

/// §6.1.2: a `<failure/>` names its cause in a child element; SASL data must be base64
/// (bad base64 is `incorrect-encoding`).
#[test]
fn sasl_failures_carry_a_condition() {
    let mut s = server(TlsPolicy::Optional);
    s.handle_input(HEADER.as_bytes(), T0);
    let features = output(&mut s);
    assert!(
        features.contains("<mechanism>PLAIN</mechanism>"),
        "{features}"
    );
    s.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='X-UNKNOWN'/>",
        T0,
    );
    let out = output(&mut s);
    assert!(
        out.contains("<failure") && out.contains("<invalid-mechanism/>"),
        "{out}"
    );
    s.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>not*base64!</auth>",
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("<incorrect-encoding/>"), "{out}");
    assert_eq!(s.poll_event(), None, "no credential lookup for bad data");
}

// ---- §6.2 dialback (s2s) ------------------------------------------------

const S2S_HEADER: &str = "<stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='one.example' to='two.example' version='1.0'>";

fn s2s_config(domain: &str) -> S2sConfig {
    let mut c = S2sConfig::new(domain, [9; 32]);
    c.tls = TlsPolicy::Optional;
    c
}

fn receiving() -> S2sConnection {
    S2sConnection::new_receiving(s2s_config("two.example"), Limits::default(), [2; 32], T0)
}

fn events(s: &mut S2sConnection) -> Vec<S2sEvent> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn closed_with(events: &[S2sEvent], cond: StreamErrorCondition) -> bool {
    events.iter().any(|e| match e {
        S2sEvent::Closed { error: Some(t) } => t.contains(cond.name()),
        _ => false,
    })
}

/// §6.2.1 step 3: the receiving server answers with a header carrying a stream id (the
/// dialback key depends on it) and the dialback namespace.
#[test]
fn s2s_receiving_header_has_an_id() {
    let mut r = receiving();
    r.handle_input(S2S_HEADER.as_bytes(), T0);
    let out = String::from_utf8(r.take_transmit()).unwrap();
    let id = attr_of(&out, "stream:stream", "id").expect("stream id");
    assert!(id.len() >= 16, "{out}");
    assert_eq!(r.stream_id(), Some(id.as_str()));
    assert!(out.contains("xmlns:db='jabber:server:dialback'"), "{out}");
    assert!(!r.is_closed());
}

/// §5.4 step 3: a receiving server that requires TLS says so with `<required/>`, and
/// offers no authentication before it.
#[test]
fn s2s_required_tls_is_signalled() {
    let mut cfg = s2s_config("two.example");
    cfg.tls = TlsPolicy::Required;
    let mut r = S2sConnection::new_receiving(cfg, Limits::default(), [2; 32], T0);
    r.handle_input(S2S_HEADER.as_bytes(), T0);
    let out = String::from_utf8(r.take_transmit()).unwrap();
    assert!(
        out.contains("<starttls") && out.contains("<required/>"),
        "{out}"
    );
    assert!(
        !out.contains("urn:xmpp:features:dialback") && !out.contains("mechanisms"),
        "{out}"
    );
}

/// §6.2.1 step 8: a `<db:verify/>` addressed to a domain the authoritative server does
/// not serve is `host-unknown`.
#[test]
fn s2s_verify_for_unknown_host_is_host_unknown() {
    let mut r = receiving();
    r.handle_input(S2S_HEADER.as_bytes(), T0);
    r.handle_input(
        b"<db:verify from='one.example' to='three.example' id='abc'>00</db:verify>",
        T0,
    );
    assert!(closed_with(
        &events(&mut r),
        StreamErrorCondition::HostUnknown
    ));
}

/// §6.2.1 step 8: a `<db:verify/>` whose `from` is not the domain of the stream is the
/// draft's `nonmatching-hosts`, sent as RFC 6120 `invalid-from`.
#[test]
fn s2s_verify_from_another_domain_is_invalid_from() {
    let mut r = receiving();
    r.handle_input(S2S_HEADER.as_bytes(), T0);
    r.handle_input(
        b"<db:verify from='three.example' to='two.example' id='abc'>00</db:verify>",
        T0,
    );
    assert!(closed_with(
        &events(&mut r),
        StreamErrorCondition::InvalidFrom
    ));
}

/// §6.2.1 steps 3 and 7: an initiating server that gets a header in the wrong namespace
/// answers `invalid-namespace` and closes.
#[test]
fn s2s_initiating_wrong_namespace_is_invalid_namespace() {
    let mut a = S2sConnection::new_initiating(
        s2s_config("one.example"),
        "two.example",
        Limits::default(),
        [1; 32],
        T0,
    );
    let _ = a.take_transmit();
    a.handle_input(
        b"<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' \
          from='two.example' id='x1' version='1.0'>",
        T0,
    );
    assert!(closed_with(
        &events(&mut a),
        StreamErrorCondition::InvalidNamespace
    ));
    let out = String::from_utf8(a.take_transmit()).unwrap();
    assert!(out.contains("invalid-namespace") && out.ends_with("</stream:stream>"));
}

/// §6.2.1 step 9: a `<db:verify/>` answer from a domain other than the one asked is
/// `invalid-from` (the draft's `nonmatching-hosts`); one without an id is `bad-format`
/// (the draft's `invalid-id`, which RFC 6120 does not define); one addressed to a domain
/// we do not serve is `host-unknown`.
#[test]
fn s2s_verify_answers_are_checked() {
    let pre_1_0 = |reply: &str| {
        let mut a = S2sConnection::new_initiating(
            s2s_config("one.example"),
            "two.example",
            Limits::default(),
            [1; 32],
            T0,
        );
        a.send_verify("stream-1", "00", T0).unwrap();
        let _ = a.take_transmit();
        // A pre-1.0 peer: no features, dialback starts at once and verifies may flow.
        a.handle_input(
            b"<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
              xmlns:db='jabber:server:dialback' from='two.example' id='s2'>",
            T0,
        );
        let sent = String::from_utf8(a.take_transmit()).unwrap();
        assert!(
            sent.contains("<db:verify") || sent.contains("verify"),
            "{sent}"
        );
        a.handle_input(reply.as_bytes(), T0);
        events(&mut a)
    };
    let ok = pre_1_0("<db:verify from='two.example' to='one.example' id='stream-1' type='valid'/>");
    assert!(ok.contains(&S2sEvent::Verified {
        from: "two.example".into(),
        stream_id: "stream-1".into(),
        valid: true
    }));
    let other =
        pre_1_0("<db:verify from='three.example' to='one.example' id='stream-1' type='valid'/>");
    assert!(closed_with(&other, StreamErrorCondition::InvalidFrom));
    let no_id = pre_1_0("<db:verify from='two.example' to='one.example' type='valid'/>");
    assert!(closed_with(&no_id, StreamErrorCondition::BadFormat));
    let not_ours =
        pre_1_0("<db:verify from='two.example' to='three.example' id='stream-1' type='valid'/>");
    assert!(closed_with(&not_ours, StreamErrorCondition::HostUnknown));
}

/// A receiving stream from one.example on which one.example's dialback key is waiting
/// for verification (the `VerifyRequest` event drained).
fn awaiting_verification() -> S2sConnection {
    let mut r = receiving();
    r.handle_input(S2S_HEADER.as_bytes(), T0);
    r.handle_input(
        b"<db:result from='one.example' to='two.example'>0123abcd</db:result>",
        T0,
    );
    let evs = events(&mut r);
    assert!(
        evs.iter()
            .any(|e| matches!(e, S2sEvent::VerifyRequest { from, .. } if from == "one.example")),
        "{evs:?}"
    );
    let _ = r.take_transmit();
    r
}

/// §6.2.1 step 7 (last paragraph): when the authoritative server cannot be asked, the
/// originating server's stream ends with `remote-connection-failed`.
#[test]
fn s2s_unreachable_authority_is_remote_connection_failed() {
    let mut r = awaiting_verification();
    r.dialback_failed("one.example");
    assert!(closed_with(
        &events(&mut r),
        StreamErrorCondition::RemoteConnectionFailed
    ));
    let out = String::from_utf8(r.take_transmit()).unwrap();
    assert!(out.contains("remote-connection-failed") && out.ends_with("</stream:stream>"));
}

/// §7.2.2 and §6.2.1 (last paragraph): a stanza between servers without `from` ends the
/// stream (the draft's `invalid-xml`, RFC 6120 `improper-addressing`).
#[test]
fn s2s_missing_from_is_improper_addressing() {
    let mut r = awaiting_verification();
    r.dialback_result("one.example", true, T0);
    assert!(events(&mut r).contains(&S2sEvent::Authenticated {
        domain: "one.example".into(),
        method: elsinore_stream::S2sAuth::Dialback,
    }));
    r.handle_input(
        b"<message to='bob@two.example'><body>x</body></message>",
        T0,
    );
    assert!(closed_with(
        &events(&mut r),
        StreamErrorCondition::ImproperAddressing
    ));
}

// ---- §8 XML usage -------------------------------------------------------

/// §8.1 and §8.4: a comment, or an encoding other than UTF-8 declared, ends the stream
/// with `restricted-xml` (RFC 6120 11.1; the draft said to ignore such data).
#[test]
fn comment_and_foreign_encoding_are_restricted_xml() {
    let mut s = server(TlsPolicy::Required);
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    s.handle_input(b"<!-- hello -->", T0);
    let out = output(&mut s);
    assert!(out.contains("restricted-xml"), "{out}");
    assert!(s.is_closed());

    let mut s = server(TlsPolicy::Required);
    s.handle_input(
        HEADER
            .replace(
                "<?xml version='1.0'?>",
                "<?xml version='1.0' encoding='ISO-8859-1'?>",
            )
            .as_bytes(),
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("restricted-xml"), "{out}");
    assert!(s.is_closed());
}
