//! Client and server `Connection`s negotiating with each other in memory.
//!
//! TLS is simulated: on `UpgradeTls` both sides get `handle_tls_ready` once the
//! bytes before it were delivered, as a real adapter would after the handshake.

use elsinore_jid::Jid;
use elsinore_sasl::StoredCredentials;
use elsinore_stream::{
    BindError, ClientConfig, Connection, Event, Instant, Limits, ServerConfig, TlsInfo, TlsPolicy,
};
use elsinore_xml::Element;

const T0: Instant = Instant::from_millis(1_000);

fn creds(password: &str) -> StoredCredentials {
    // PBKDF2 is slow in debug builds: derive each password once per test binary.
    static CACHE: std::sync::Mutex<Vec<(String, StoredCredentials)>> =
        std::sync::Mutex::new(Vec::new());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, c)) = cache.iter().find(|(p, _)| p == password) {
        return c.clone();
    }
    let c = StoredCredentials::derive(password, b"salt-sha1-16byte", b"salt-sha256-16by", 4096)
        .expect("derivable");
    cache.push((password.to_string(), c.clone()));
    c
}

struct Pair {
    client: Connection,
    server: Connection,
    client_events: Vec<Event>,
    server_events: Vec<Event>,
    /// Password the simulated store knows for "juliet".
    stored: Option<StoredCredentials>,
    chunk: usize,
    /// What each side's (simulated) TLS handshake establishes.
    client_tls: TlsInfo,
    server_tls: TlsInfo,
}

impl Pair {
    fn new(client_tls: TlsPolicy, server: ServerConfig, password: &str, chunk: usize) -> Self {
        let client = Connection::new_client(
            ClientConfig {
                jid: Jid::parse("juliet@capulet.lit/balcony").expect("valid"),
                password: password.into(),
                tls: client_tls,
            },
            Limits::default(),
            [1; 32],
            T0,
        );
        let server = Connection::new_server(server, Limits::default(), [2; 32], T0);
        Pair {
            client,
            server,
            client_events: Vec::new(),
            server_events: Vec::new(),
            stored: Some(creds("r0meo")),
            client_tls: TlsInfo::default(),
            server_tls: TlsInfo::default(),
            chunk,
        }
    }

    /// Move bytes and answer events until nothing happens; bounded so a
    /// livelock fails instead of hanging.
    fn drive(&mut self) {
        for _ in 0..200 {
            let mut progress = false;
            let c2s = self.client.take_transmit();
            if !c2s.is_empty() {
                progress = true;
                for part in c2s.chunks(self.chunk) {
                    self.server.handle_input(part, T0);
                }
            }
            let s2c = self.server.take_transmit();
            if !s2c.is_empty() {
                progress = true;
                for part in s2c.chunks(self.chunk) {
                    self.client.handle_input(part, T0);
                }
            }
            while let Some(ev) = self.server.poll_event() {
                progress = true;
                match &ev {
                    Event::UpgradeTls => {
                        // Deliver <proceed/> first, then both sides "finish" TLS.
                        let s2c = self.server.take_transmit();
                        self.client.handle_input(&s2c, T0);
                        self.server
                            .handle_tls_ready_with(self.server_tls.clone(), T0);
                    }
                    Event::NeedCredentials { username } => {
                        let c = if username == "juliet" {
                            self.stored.clone()
                        } else {
                            None
                        };
                        self.server.provide_credentials(c.as_ref(), T0);
                    }
                    Event::BindRequest { resource } => {
                        let r = resource.clone().unwrap_or_else(|| "generated".into());
                        let jid = Jid::parse(&format!("juliet@capulet.lit/{r}")).expect("valid");
                        self.server.complete_bind(Ok(jid), T0);
                    }
                    _ => {}
                }
                self.server_events.push(ev);
            }
            while let Some(ev) = self.client.poll_event() {
                progress = true;
                if ev == Event::UpgradeTls {
                    self.client
                        .handle_tls_ready_with(self.client_tls.clone(), T0);
                }
                self.client_events.push(ev);
            }
            if !progress {
                return;
            }
        }
        panic!("negotiation did not settle in 200 rounds");
    }
}

fn established(events: &[Event]) -> Option<Jid> {
    events.iter().find_map(|e| match e {
        Event::Established { jid } => Some(jid.clone()),
        _ => None,
    })
}

fn closed_error(events: &[Event]) -> Option<Option<String>> {
    events.iter().find_map(|e| match e {
        Event::Closed { error } => Some(error.clone()),
        _ => None,
    })
}

#[test]
fn starttls_scram_bind_at_every_chunk_size() {
    for chunk in [1, 2, 3, 7, 64, 100_000] {
        let mut p = Pair::new(
            TlsPolicy::Required,
            ServerConfig::new("capulet.lit"),
            "r0meo",
            chunk,
        );
        p.drive();
        let jid = established(&p.client_events).expect("client established");
        assert_eq!(
            jid.to_string(),
            "juliet@capulet.lit/balcony",
            "chunk {chunk}"
        );
        assert_eq!(established(&p.server_events), Some(jid));
        assert!(p.client.is_tls() && p.server.is_tls());
        assert!(p.server_events.contains(&Event::UpgradeTls));
    }
}

#[test]
fn stanzas_flow_both_ways_after_establishment() {
    let mut p = Pair::new(
        TlsPolicy::Required,
        ServerConfig::new("capulet.lit"),
        "r0meo",
        5,
    );
    p.drive();
    let msg = Element::new("message", "jabber:client")
        .with_attr("to", "romeo@montague.lit")
        .with_child(Element::new("body", "jabber:client").with_text("Wherefore art thou? <&>"));
    p.client.send(&msg).expect("established");
    p.drive();
    let got = p.server_events.iter().find_map(|e| match e {
        Event::Stanza(s) => Some(s.clone()),
        _ => None,
    });
    assert_eq!(got, Some(msg.clone()));
    p.server.send(&msg).expect("established");
    p.drive();
    assert!(p.client_events.contains(&Event::Stanza(msg)));
}

#[test]
fn wrong_password_fails_with_not_authorized() {
    let mut p = Pair::new(
        TlsPolicy::Required,
        ServerConfig::new("capulet.lit"),
        "nurse",
        16,
    );
    p.drive();
    assert_eq!(established(&p.client_events), None);
    let err = closed_error(&p.client_events)
        .expect("client closed")
        .expect("with error");
    assert!(err.contains("not-authorized"), "{err}");
}

#[test]
fn unknown_user_fails_like_a_wrong_password() {
    let mut p = Pair::new(
        TlsPolicy::Required,
        ServerConfig::new("capulet.lit"),
        "r0meo",
        16,
    );
    p.stored = None;
    p.drive();
    let err = closed_error(&p.client_events)
        .expect("client closed")
        .expect("with error");
    assert!(err.contains("not-authorized"), "{err}");
}

#[test]
fn client_requiring_tls_refuses_a_server_without_it() {
    let mut cfg = ServerConfig::new("capulet.lit");
    cfg.tls = TlsPolicy::Disabled;
    let mut p = Pair::new(TlsPolicy::Required, cfg, "r0meo", 16);
    p.drive();
    assert_eq!(established(&p.client_events), None);
    let err = closed_error(&p.client_events)
        .expect("closed")
        .expect("error");
    assert!(err.contains("STARTTLS"), "{err}");
}

#[test]
fn plaintext_auth_when_tls_is_optional() {
    let mut cfg = ServerConfig::new("capulet.lit");
    cfg.tls = TlsPolicy::Disabled;
    let mut p = Pair::new(TlsPolicy::Disabled, cfg, "r0meo", 16);
    p.drive();
    assert!(established(&p.client_events).is_some());
    assert!(!p.client.is_tls());
}

fn server_alone() -> Connection {
    Connection::new_server(
        ServerConfig::new("capulet.lit"),
        Limits::default(),
        [3; 32],
        T0,
    )
}

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='capulet.lit' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn output(c: &mut Connection) -> String {
    String::from_utf8(c.take_transmit()).expect("utf-8 output")
}

#[test]
fn auth_before_tls_is_refused_when_tls_is_required() {
    let mut s = server_alone();
    s.handle_input(HEADER.as_bytes(), T0);
    let features = output(&mut s);
    assert!(features.contains("<required"), "{features}");
    assert!(
        !features.contains("mechanisms"),
        "no SASL before TLS: {features}"
    );
    s.handle_input(
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG1lbw==</auth>",
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("encryption-required"), "{out}");
}

#[test]
fn a_lent_event_queue_comes_back_once_drained() {
    let mut spare = std::collections::VecDeque::with_capacity(4);
    let mut s = server_alone();
    s.lend_events(&mut spare);
    assert_eq!(spare.capacity(), 0, "the connection holds the spare queue");
    s.handle_input(HEADER.as_bytes(), T0);
    s.handle_input(b"</stream:stream>", T0);
    assert!(matches!(
        s.poll_event_with(&mut spare),
        Some(Event::Closed { error: None })
    ));
    assert!(s.poll_event_with(&mut spare).is_none());
    assert!(spare.is_empty() && spare.capacity() >= 4, "given back");
    // With a spare already held the drained queue is freed, as `poll_event` does.
    let mut other = server_alone();
    other.handle_input(b"<bad/>", T0);
    let before = spare.capacity();
    assert!(other.poll_event_with(&mut spare).is_some(), "closed");
    assert!(other.poll_event_with(&mut spare).is_none());
    assert_eq!(spare.capacity(), before);
}

#[test]
fn plaintext_after_proceed_is_an_attack() {
    let mut s = server_alone();
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    // Injected stanza in the same read as <starttls/>.
    s.handle_input(
        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><iq type='get' id='x'/>",
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("<proceed"), "{out}");
    assert!(out.contains("policy-violation"), "{out}");
    assert!(s.is_closed());
}

#[test]
fn whitespace_after_starttls_is_not_an_attack() {
    // go-xmpp (go-sendxmpp) writes "<starttls/>\n" in one write: the newline arrives
    // with the command, before <proceed/> was sent.
    let mut s = server_alone();
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    s.handle_input(
        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n \t\r\n",
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("<proceed"), "{out}");
    assert!(!out.contains("policy-violation"), "{out}");
    assert!(!s.is_closed());
    assert_eq!(s.poll_event(), Some(Event::UpgradeTls));
    // Whitespace followed by an element is still the injection.
    let mut s = server_alone();
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    s.handle_input(
        b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\n<iq type='get' id='x'/>",
        T0,
    );
    assert!(output(&mut s).contains("policy-violation"));
    assert!(s.is_closed());
}

#[test]
fn redirect_answers_every_new_stream_with_see_other_host() {
    for target in ["xmpp.capulet.lit:5222", "[2001:db8::1]:5222"] {
        let mut cfg = ServerConfig::new("capulet.lit");
        cfg.redirect = Some(target.into());
        let mut s = Connection::new_server(cfg, Limits::default(), [3; 32], T0);
        s.handle_input(HEADER.as_bytes(), T0);
        let out = output(&mut s);
        assert!(out.contains("<stream:stream"), "header first: {out}");
        assert!(!out.contains("features"), "no negotiation: {out}");
        let start = out.find("<error").expect("stream error");
        let end = out.find("</error>").expect("error end") + "</error>".len();
        let el = Element::parse(&out.as_bytes()[start..end]).expect("parses");
        let err = elsinore_stanza::StreamError::from_element(&el).expect("a stream error");
        assert_eq!(
            err.condition,
            elsinore_stanza::StreamErrorCondition::SeeOtherHost(target.into())
        );
        assert!(out.ends_with("</stream:stream>"), "{out}");
        assert!(s.is_closed());
        let closed = std::iter::from_fn(|| s.poll_event()).last();
        assert!(
            matches!(closed, Some(Event::Closed { error: Some(ref e) }) if e.contains("see-other-host")),
            "{closed:?}"
        );
    }
}

#[test]
fn system_shutdown_closes_an_established_stream() {
    let mut p = Pair::new(
        TlsPolicy::Required,
        ServerConfig::new("capulet.lit"),
        "r0meo",
        64,
    );
    p.drive();
    assert!(established(&p.client_events).is_some());
    p.server
        .send_stream_error(elsinore_stanza::StreamError::new(
            elsinore_stanza::StreamErrorCondition::SystemShutdown,
        ));
    p.drive();
    assert!(p.server.is_closed());
    let err = closed_error(&p.client_events)
        .expect("client saw the close")
        .expect("with an error");
    assert!(err.contains("system-shutdown"), "{err}");
}

#[test]
fn wrong_host_gets_host_unknown() {
    let mut s = server_alone();
    s.handle_input(HEADER.replace("capulet.lit", "montague.lit").as_bytes(), T0);
    let out = output(&mut s);
    assert!(out.contains("<stream:stream"), "header first: {out}");
    assert!(out.contains("host-unknown"), "{out}");
    assert!(out.ends_with("</stream:stream>"), "{out}");
    assert!(s.is_closed());
}

#[test]
fn wrong_namespace_gets_invalid_namespace() {
    let mut s = server_alone();
    s.handle_input(
        HEADER.replace("jabber:client", "jabber:fake").as_bytes(),
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("invalid-namespace"), "{out}");
}

#[test]
fn unknown_major_version_gets_unsupported_version() {
    let mut s = server_alone();
    s.handle_input(
        HEADER
            .replace(
                "to='capulet.lit' version='1.0'",
                "to='capulet.lit' version='2.0'",
            )
            .as_bytes(),
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("unsupported-version"), "{out}");
}

const LEGACY_HEADER: &str = "<?xml version='1.0'?><stream:stream to='capulet.lit' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

fn legacy_server() -> Connection {
    let mut cfg = ServerConfig::new("capulet.lit");
    cfg.tls = TlsPolicy::Optional;
    Connection::new_server(cfg, Limits::default(), [3; 32], T0)
}

/// Answers credential and bind requests the way the server core would.
fn serve_events(s: &mut Connection) -> Vec<Event> {
    let mut seen = Vec::new();
    while let Some(ev) = s.poll_event() {
        match &ev {
            Event::NeedCredentials { username } => {
                let c = (username == "juliet").then(|| creds("r0meo"));
                s.provide_credentials(c.as_ref(), T0);
            }
            Event::BindRequest { resource } => {
                let r = resource.clone().unwrap_or_default();
                let jid = Jid::parse(&format!("juliet@capulet.lit/{r}")).expect("valid");
                s.complete_bind(Ok(jid), T0);
            }
            _ => {}
        }
        seen.push(ev);
    }
    seen
}

#[test]
fn pre_1_0_streams_get_whitespace_keepalives_not_pings() {
    let mut s = legacy_server();
    s.handle_input(LEGACY_HEADER.as_bytes(), T0);
    s.handle_input(
        b"<iq type='set' id='a'><query xmlns='jabber:iq:auth'><username>juliet</username><password>r0meo</password><resource>balcony</resource></query></iq>",
        T0,
    );
    serve_events(&mut s);
    assert!(output(&mut s).contains("type='result'"));
    let ping_after = Limits::default().ping_after;
    let mut now = T0;
    // Hours of silence from an old client: a space now and then, never an iq, never an
    // end of the stream.
    for _ in 0..20 {
        let at = s.poll_timeout().expect("keepalive deadline");
        assert_eq!(at, now + ping_after);
        now = at;
        s.handle_timeout(now);
        assert_eq!(output(&mut s), " ");
        assert!(!s.is_closed());
    }
    // Input moves the next keepalive.
    let later = now + std::time::Duration::from_secs(10);
    s.handle_input(b" ", later);
    assert_eq!(s.poll_timeout(), Some(later + ping_after));
}

#[test]
fn pre_1_0_stream_logs_in_with_jabber_iq_auth() {
    let mut s = legacy_server();
    s.handle_input(LEGACY_HEADER.as_bytes(), T0);
    let header = output(&mut s);
    assert!(header.contains("id='"), "{header}");
    let stream_tag = header.split("?>").nth(1).expect("declaration then header");
    assert!(
        !stream_tag.contains("version="),
        "no version for a pre-1.0 peer: {header}"
    );
    assert!(
        !header.contains("features"),
        "no features on a pre-1.0 stream: {header}"
    );
    s.handle_input(
        b"<iq type='get' id='auth1'><query xmlns='jabber:iq:auth'><username>juliet</username></query></iq>",
        T0,
    );
    let fields = output(&mut s);
    assert!(
        fields.contains("<password/>") && fields.contains("<resource/>"),
        "{fields}"
    );
    assert!(
        !fields.contains("digest"),
        "digest is not offered: {fields}"
    );
    // Wrong password: 401 not-authorized.
    s.handle_input(
        b"<iq type='set' id='auth2'><query xmlns='jabber:iq:auth'><username>juliet</username><password>nurse</password><resource>balcony</resource></query></iq>",
        T0,
    );
    serve_events(&mut s);
    let out = output(&mut s);
    assert!(
        out.contains("not-authorized") && out.contains("code='401'"),
        "{out}"
    );
    // Missing resource: not-acceptable.
    s.handle_input(
        b"<iq type='set' id='auth3'><query xmlns='jabber:iq:auth'><username>juliet</username><password>r0meo</password></query></iq>",
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("not-acceptable"), "{out}");
    // Right password: result, then stanzas flow.
    s.handle_input(
        b"<iq type='set' id='auth4'><query xmlns='jabber:iq:auth'><username>juliet</username><password>r0meo</password><resource>balcony</resource></query></iq>",
        T0,
    );
    let events = serve_events(&mut s);
    let out = output(&mut s);
    assert!(
        out.contains("type='result'") && out.contains("id='auth4'"),
        "{out}"
    );
    assert_eq!(
        established(&events).map(|j| j.to_string()).as_deref(),
        Some("juliet@capulet.lit/balcony")
    );
    s.handle_input(
        b"<message to='romeo@montague.lit'><body>hi</body></message>",
        T0,
    );
    assert!(matches!(s.poll_event(), Some(Event::Stanza(_))));
}

#[test]
fn pre_1_0_password_needs_tls_when_tls_is_required() {
    let mut s = server_alone();
    s.handle_input(LEGACY_HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    s.handle_input(
        b"<iq type='set' id='a'><query xmlns='jabber:iq:auth'><username>juliet</username><password>r0meo</password><resource>b</resource></query></iq>",
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("not-acceptable"), "{out}");
    assert_eq!(s.poll_event(), None, "no credential lookup without TLS");
}

#[test]
fn utf16_gets_unsupported_encoding_and_utf8_bom_is_accepted() {
    let mut s = server_alone();
    let utf16: Vec<u8> = HEADER.encode_utf16().flat_map(u16::to_be_bytes).collect();
    let mut with_bom = vec![0xFE, 0xFF];
    with_bom.extend(&utf16);
    s.handle_input(&with_bom, T0);
    let out = output(&mut s);
    assert!(out.contains("unsupported-encoding"), "{out}");
    assert!(s.is_closed());

    let mut s = server_alone();
    s.handle_input(&utf16, T0);
    assert!(output(&mut s).contains("unsupported-encoding"));

    // A UTF-8 BOM, even split across reads, is allowed by XML 1.0.
    let mut s = server_alone();
    s.handle_input(&[0xEF], T0);
    s.handle_input(&[0xBB, 0xBF], T0);
    s.handle_input(HEADER.as_bytes(), T0);
    let out = output(&mut s);
    assert!(
        out.contains("features") && out.contains("starttls"),
        "{out}"
    );
}

#[test]
fn silent_client_is_pinged_then_timed_out() {
    let mut p = Pair::new(
        TlsPolicy::Required,
        ServerConfig::new("capulet.lit"),
        "r0meo",
        64,
    );
    p.drive();
    assert!(p.server.is_established());
    let ping_at = p.server.poll_timeout().expect("keepalive deadline");
    assert_eq!(ping_at, T0 + Limits::default().ping_after);
    p.server.handle_timeout(ping_at);
    let out = String::from_utf8(p.server.take_transmit()).expect("utf-8");
    assert!(out.contains("urn:xmpp:ping"), "{out}");
    // Any input counts as an answer and re-arms the timer.
    let later = ping_at + std::time::Duration::from_secs(10);
    p.server.handle_input(b" ", later);
    assert_eq!(
        p.server.poll_timeout(),
        Some(later + Limits::default().ping_after)
    );
    // Silence after the next ping ends the stream.
    let t = p.server.poll_timeout().expect("deadline");
    p.server.handle_timeout(t);
    let _ = p.server.take_transmit();
    let t2 = p.server.poll_timeout().expect("ping timeout deadline");
    p.server.handle_timeout(t2);
    let out = String::from_utf8(p.server.take_transmit()).expect("utf-8");
    assert!(out.contains("connection-timeout"), "{out}");
    assert!(p.server.is_closed());
}

#[test]
fn client_sends_whitespace_keepalives() {
    let mut p = Pair::new(
        TlsPolicy::Required,
        ServerConfig::new("capulet.lit"),
        "r0meo",
        64,
    );
    p.drive();
    let t = p.client.poll_timeout().expect("keepalive deadline");
    p.client.handle_timeout(t);
    assert_eq!(p.client.take_transmit(), b" ");
    assert!(p.client.poll_timeout().expect("next") > t);
}

#[test]
fn malformed_xml_gets_not_well_formed() {
    let mut s = server_alone();
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    s.handle_input(b"<a></b>", T0);
    let out = output(&mut s);
    assert!(out.contains("not-well-formed"), "{out}");
    assert!(s.is_closed());
}

#[test]
fn stanza_before_auth_gets_not_authorized() {
    let mut cfg = ServerConfig::new("capulet.lit");
    cfg.tls = TlsPolicy::Optional;
    let mut s = Connection::new_server(cfg, Limits::default(), [3; 32], T0);
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    s.handle_input(
        b"<message to='romeo@montague.lit'><body>hi</body></message>",
        T0,
    );
    let out = output(&mut s);
    assert!(out.contains("not-authorized"), "{out}");
}

#[test]
fn negotiation_timeout_closes_with_connection_timeout() {
    let mut s = server_alone();
    s.handle_input(HEADER.as_bytes(), T0);
    let _ = output(&mut s);
    let deadline = s.poll_timeout().expect("a negotiation deadline");
    s.handle_timeout(deadline);
    let out = output(&mut s);
    assert!(out.contains("connection-timeout"), "{out}");
    assert!(s.is_closed());
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn closing_handshake() {
    let mut p = Pair::new(
        TlsPolicy::Required,
        ServerConfig::new("capulet.lit"),
        "r0meo",
        9,
    );
    p.drive();
    p.client.close(T0);
    p.drive();
    assert_eq!(closed_error(&p.server_events), Some(None));
    assert_eq!(closed_error(&p.client_events), Some(None));
}

#[test]
fn bind_conflict_is_reported_to_the_client() {
    let mut p = Pair::new(
        TlsPolicy::Required,
        ServerConfig::new("capulet.lit"),
        "r0meo",
        64,
    );
    // Drive manually up to the bind request, then refuse it.
    for _ in 0..50 {
        let c2s = p.client.take_transmit();
        p.server.handle_input(&c2s, T0);
        let s2c = p.server.take_transmit();
        p.client.handle_input(&s2c, T0);
        while let Some(ev) = p.server.poll_event() {
            match ev {
                Event::UpgradeTls => {
                    let s2c = p.server.take_transmit();
                    p.client.handle_input(&s2c, T0);
                    p.server.handle_tls_ready(T0);
                }
                Event::NeedCredentials { .. } => {
                    p.server.provide_credentials(p.stored.clone().as_ref(), T0)
                }
                Event::BindRequest { .. } => p.server.complete_bind(Err(BindError::Conflict), T0),
                _ => {}
            }
        }
        while let Some(ev) = p.client.poll_event() {
            if ev == Event::UpgradeTls {
                p.client.handle_tls_ready(T0);
            }
            p.client_events.push(ev);
        }
    }
    let err = closed_error(&p.client_events)
        .expect("closed")
        .expect("error");
    assert!(err.contains("conflict"), "{err}");
}

mod chunking {
    use super::*;
    use proptest::prelude::*;

    /// Feed a whole client session (negotiation, stanzas, close) to a server
    /// connection split at arbitrary points; the events and output must not
    /// depend on the split.
    fn run(splits: &[usize]) -> (Vec<Event>, Vec<u8>) {
        let mut cfg = ServerConfig::new("capulet.lit");
        cfg.tls = TlsPolicy::Disabled;
        let mut s = Connection::new_server(cfg, Limits::default(), [5; 32], T0);
        // PLAIN with an initial response: authzid empty, juliet / r0meo.
        let input = format!(
            "{HEADER}<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG1lbw==</auth>\
             {HEADER}<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind></iq>\
             <message to='romeo@montague.lit'><body>a &amp; b</body></message>\
             <iq type='get' id='q'><query xmlns='jabber:iq:private'><x xmlns='y'/></query></iq></stream:stream>"
        );
        let bytes = input.as_bytes();
        let mut events = Vec::new();
        let mut out = Vec::new();
        let mut pos = 0;
        let mut cuts: Vec<usize> = splits.iter().map(|s| s % (bytes.len() + 1)).collect();
        cuts.push(bytes.len());
        cuts.sort_unstable();
        for cut in cuts {
            if cut < pos {
                continue;
            }
            s.handle_input(&bytes[pos..cut], T0);
            pos = cut;
            out.extend(s.take_transmit());
            while let Some(ev) = s.poll_event() {
                match &ev {
                    Event::NeedCredentials { .. } => {
                        s.provide_credentials(Some(&creds("r0meo")), T0)
                    }
                    Event::BindRequest { .. } => {
                        s.complete_bind(Ok(Jid::parse("juliet@capulet.lit/r").expect("valid")), T0)
                    }
                    _ => {}
                }
                out.extend(s.take_transmit());
                events.push(ev);
            }
        }
        (events, out)
    }

    #[test]
    fn whole_input_reaches_the_end() {
        let (events, _) = run(&[]);
        assert!(
            matches!(events.last(), Some(Event::Closed { error: None })),
            "{events:?}"
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::Stanza(_)))
                .count(),
            2,
            "{events:?}"
        );
    }

    #[test]
    fn one_byte_at_a_time_equals_whole() {
        let whole = run(&[]);
        let n = 2000;
        let splits: Vec<usize> = (0..n).collect();
        assert_eq!(run(&splits), whole);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_split_gives_the_same_events(splits in proptest::collection::vec(0usize..4000, 0..40)) {
            prop_assert_eq!(run(&splits), run(&[]));
        }
    }
}

mod mechanisms {
    use super::*;
    use elsinore_stream::ChannelBinding;

    /// Drive a pair where both sides learn `client_tls` / `server_tls` from the handshake.
    fn drive_with(p: &mut Pair, client_tls: &TlsInfo, server_tls: &TlsInfo) {
        p.client_tls = client_tls.clone();
        p.server_tls = server_tls.clone();
        p.drive();
    }

    fn binding(b: u8) -> TlsInfo {
        TlsInfo {
            channel_binding: ChannelBinding::TlsExporter(vec![b; 32]),
            peer_identity: None,
            more_channel_bindings: Vec::new(),
        }
    }

    #[test]
    fn scram_plus_when_both_sides_have_the_same_binding() {
        let mut p = Pair::new(
            TlsPolicy::Required,
            ServerConfig::new("capulet.lit"),
            "r0meo",
            64,
        );
        drive_with(&mut p, &binding(7), &binding(7));
        assert!(
            established(&p.client_events).is_some(),
            "{:?}",
            p.client_events
        );
        assert_eq!(
            p.client.authenticated().map(|j| j.to_string()).as_deref(),
            Some("juliet@capulet.lit")
        );
    }

    #[test]
    fn scram_plus_with_different_bindings_fails() {
        // A man in the middle terminates TLS twice: the bindings differ.
        let mut p = Pair::new(
            TlsPolicy::Required,
            ServerConfig::new("capulet.lit"),
            "r0meo",
            64,
        );
        drive_with(&mut p, &binding(7), &binding(8));
        assert!(established(&p.client_events).is_none());
        let err = closed_error(&p.client_events)
            .expect("closed")
            .expect("error");
        assert!(err.contains("not-authorized"), "{err}");
    }

    #[test]
    fn downgrade_to_plain_scram_is_detected() {
        // The client can bind but the server offers no -PLUS: the client says `y`
        // and logs in; with the binding on the server side it would have been -PLUS.
        let mut p = Pair::new(
            TlsPolicy::Required,
            ServerConfig::new("capulet.lit"),
            "r0meo",
            64,
        );
        drive_with(&mut p, &binding(7), &TlsInfo::default());
        assert!(
            established(&p.client_events).is_some(),
            "{:?}",
            p.client_events
        );
    }

    fn end_point(b: u8) -> TlsInfo {
        TlsInfo {
            channel_binding: ChannelBinding::TlsServerEndPoint(vec![b; 32]),
            peer_identity: None,
            more_channel_bindings: Vec::new(),
        }
    }

    #[test]
    fn scram_plus_with_tls_server_end_point() {
        let mut p = Pair::new(
            TlsPolicy::Required,
            ServerConfig::new("capulet.lit"),
            "r0meo",
            64,
        );
        drive_with(&mut p, &end_point(5), &end_point(5));
        assert!(
            established(&p.client_events).is_some(),
            "{:?}",
            p.client_events
        );
    }

    #[test]
    fn scram_plus_with_another_binding_type_fails() {
        // Same bytes, other type: the server has no `tls-exporter` to check against.
        let mut p = Pair::new(
            TlsPolicy::Required,
            ServerConfig::new("capulet.lit"),
            "r0meo",
            64,
        );
        drive_with(&mut p, &binding(5), &end_point(5));
        assert!(established(&p.client_events).is_none());
        let err = closed_error(&p.client_events)
            .expect("closed")
            .expect("error");
        assert!(err.contains("not-authorized"), "{err}");
    }

    /// TLS 1.3 as the tokio adapter reports it: tls-exporter, and tls-server-end-point too.
    fn both(exporter: u8, end_point_byte: u8) -> TlsInfo {
        TlsInfo {
            more_channel_bindings: vec![ChannelBinding::TlsServerEndPoint(vec![
                end_point_byte;
                32
            ])],
            ..binding(exporter)
        }
    }

    #[test]
    fn scram_plus_with_either_binding_the_server_offers() {
        for client in [binding(7), end_point(5)] {
            let mut p = Pair::new(
                TlsPolicy::Required,
                ServerConfig::new("capulet.lit"),
                "r0meo",
                64,
            );
            drive_with(&mut p, &client, &both(7, 5));
            assert!(
                established(&p.client_events).is_some(),
                "{client:?}: {:?}",
                p.client_events
            );
        }
        // Right type, wrong data (a man in the middle) still fails.
        let mut p = Pair::new(
            TlsPolicy::Required,
            ServerConfig::new("capulet.lit"),
            "r0meo",
            64,
        );
        drive_with(&mut p, &end_point(6), &both(7, 5));
        assert!(established(&p.client_events).is_none());
    }

    /// The features a server sends after TLS with this binding.
    fn features_after_tls(info: TlsInfo) -> String {
        let mut s = server_alone();
        s.handle_input(HEADER.as_bytes(), T0);
        let _ = output(&mut s);
        s.handle_input(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", T0);
        assert!(output(&mut s).contains("<proceed"));
        s.handle_tls_ready_with(info, T0);
        s.handle_input(HEADER.as_bytes(), T0);
        output(&mut s)
    }

    #[test]
    fn binding_type_is_advertised_with_plus() {
        // XEP-0440.
        let out = features_after_tls(end_point(5));
        assert!(out.contains("SCRAM-SHA-256-PLUS"), "{out}");
        assert!(
            out.contains(
                "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
                 <channel-binding type='tls-server-end-point'/></sasl-channel-binding>"
            ),
            "{out}"
        );
        let out = features_after_tls(binding(5));
        assert!(
            out.contains("<channel-binding type='tls-exporter'/>"),
            "{out}"
        );
        let out = features_after_tls(both(5, 6));
        assert!(
            out.contains(
                "<sasl-channel-binding xmlns='urn:xmpp:sasl-cb:0'>\
                 <channel-binding type='tls-exporter'/>\
                 <channel-binding type='tls-server-end-point'/></sasl-channel-binding>"
            ),
            "{out}"
        );
        let out = features_after_tls(TlsInfo::default());
        assert!(!out.contains("PLUS"), "{out}");
        assert!(!out.contains("sasl-channel-binding"), "{out}");
    }

    #[test]
    fn anonymous_only_when_allowed() {
        let mut cfg = ServerConfig::new("capulet.lit");
        cfg.tls = TlsPolicy::Optional;
        let mut s = Connection::new_server(cfg.clone(), Limits::default(), [3; 32], T0);
        s.handle_input(HEADER.as_bytes(), T0);
        assert!(!output(&mut s).contains("ANONYMOUS"));
        s.handle_input(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'>c2lyaGM=</auth>",
            T0,
        );
        assert!(output(&mut s).contains("invalid-mechanism"));

        cfg.allow_anonymous = true;
        let mut s = Connection::new_server(cfg, Limits::default(), [3; 32], T0);
        s.handle_input(HEADER.as_bytes(), T0);
        assert!(output(&mut s).contains("ANONYMOUS"));
        s.handle_input(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'>c2lyaGM=</auth>",
            T0,
        );
        assert!(output(&mut s).contains("<success"));
        let jid = s.authenticated().expect("temporary account").to_string();
        assert!(
            jid.starts_with("anon-") && jid.ends_with("@capulet.lit"),
            "{jid}"
        );
    }

    #[test]
    fn whitespace_before_the_restarted_stream_header() {
        // go-xmpp sends "<auth/>\n", then (after <success/>) a new header that begins
        // with an XML declaration: the newline belongs to the old stream.
        let mut cfg = ServerConfig::new("capulet.lit");
        cfg.tls = TlsPolicy::Optional;
        cfg.allow_anonymous = true;
        let mut s = Connection::new_server(cfg, Limits::default(), [3; 32], T0);
        s.handle_input(HEADER.as_bytes(), T0);
        let _ = output(&mut s);
        s.handle_input(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='ANONYMOUS'>c2lyaGM=</auth>\n",
            T0,
        );
        assert!(output(&mut s).contains("<success"));
        // More whitespace in a later read, then the header with its declaration.
        s.handle_input(b" \r\n", T0);
        s.handle_input(HEADER.as_bytes(), T0);
        let out = output(&mut s);
        assert!(out.contains("<bind"), "{out}");
        assert!(!out.contains("restricted-xml"), "{out}");
        assert!(!s.is_closed());
    }

    #[test]
    fn external_with_a_verified_certificate_identity() {
        let mut s = server_alone();
        s.handle_input(HEADER.as_bytes(), T0);
        let _ = output(&mut s);
        s.handle_input(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", T0);
        let _ = output(&mut s);
        assert_eq!(s.poll_event(), Some(Event::UpgradeTls));
        s.handle_tls_ready_with(
            TlsInfo {
                channel_binding: ChannelBinding::None,
                peer_identity: Some("juliet@capulet.lit".into()),
                more_channel_bindings: Vec::new(),
            },
            T0,
        );
        s.handle_input(HEADER.as_bytes(), T0);
        let features = output(&mut s);
        assert!(features.contains("EXTERNAL"), "{features}");
        s.handle_input(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
            T0,
        );
        // The account must exist: the store is asked.
        assert_eq!(
            s.poll_event(),
            Some(Event::NeedCredentials {
                username: "juliet".into()
            })
        );
        s.provide_credentials(Some(&creds("r0meo")), T0);
        let out = output(&mut s);
        assert!(out.contains("<success"), "{out}");
        assert_eq!(
            s.authenticated().map(|j| j.to_string()).as_deref(),
            Some("juliet@capulet.lit")
        );
    }

    /// A server after STARTTLS whose handshake verified a certificate for `identity`.
    fn server_with_certificate(identity: &str) -> Connection {
        let mut s = server_alone();
        s.handle_input(HEADER.as_bytes(), T0);
        s.handle_input(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", T0);
        let _ = output(&mut s);
        assert_eq!(s.poll_event(), Some(Event::UpgradeTls));
        s.handle_tls_ready_with(
            TlsInfo {
                channel_binding: ChannelBinding::None,
                peer_identity: Some(identity.into()),
                more_channel_bindings: Vec::new(),
            },
            T0,
        );
        s.handle_input(HEADER.as_bytes(), T0);
        let _ = output(&mut s);
        s
    }

    #[test]
    fn external_for_a_missing_account_is_not_authorized() {
        let mut s = server_with_certificate("juliet@capulet.lit");
        s.handle_input(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
            T0,
        );
        assert!(matches!(
            s.poll_event(),
            Some(Event::NeedCredentials { .. })
        ));
        s.provide_credentials(None, T0);
        let out = output(&mut s);
        assert!(out.contains("not-authorized"), "{out}");
        assert!(s.authenticated().is_none());
    }

    #[test]
    fn external_names_only_the_certificate_account() {
        // authzid for someone else: invalid-authzid, the store is never asked.
        let mut s = server_with_certificate("juliet@capulet.lit");
        let authzid = base64::engine::general_purpose::STANDARD.encode("romeo@capulet.lit");
        s.handle_input(
            format!(
                "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>{authzid}</auth>"
            )
            .as_bytes(),
            T0,
        );
        assert!(output(&mut s).contains("invalid-authzid"));
        assert_eq!(s.poll_event(), None);
        // A certificate for another domain: not-authorized.
        let mut s = server_with_certificate("juliet@montague.lit");
        s.handle_input(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
            T0,
        );
        assert!(output(&mut s).contains("not-authorized"));
        // Without a verified certificate EXTERNAL is neither offered nor accepted.
        let mut s = server_alone();
        s.handle_input(HEADER.as_bytes(), T0);
        s.handle_input(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", T0);
        let _ = output(&mut s);
        let _ = s.poll_event();
        s.handle_tls_ready(T0);
        s.handle_input(HEADER.as_bytes(), T0);
        assert!(!output(&mut s).contains("EXTERNAL"));
        s.handle_input(
            b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>",
            T0,
        );
        assert!(output(&mut s).contains("invalid-mechanism"));
    }

    // ---- DIGEST-MD5 (RFC 2831), server side --------------------------------------------

    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD as B64;
    use elsinore_sasl::{ClientSession, Mechanism};

    fn digest_creds() -> StoredCredentials {
        StoredCredentials::derive_with_digest_md5(
            "juliet",
            "capulet.lit",
            "r0meo",
            b"salt-sha1-16byte",
            b"salt-sha256-16by",
            4096,
        )
        .expect("derivable")
    }

    /// A server offering DIGEST-MD5 (plaintext allowed, so no TLS dance), after the header.
    fn digest_server() -> Connection {
        let mut cfg = ServerConfig::new("capulet.lit");
        cfg.tls = TlsPolicy::Optional;
        cfg.mechanisms.insert(4, Mechanism::DigestMd5);
        let mut s = Connection::new_server(cfg, Limits::default(), [3; 32], T0);
        s.handle_input(HEADER.as_bytes(), T0);
        let features = output(&mut s);
        assert!(
            features.contains("<mechanism>DIGEST-MD5</mechanism>"),
            "{features}"
        );
        s
    }

    /// The text of the one `<name>` element in `out`, base64-decoded.
    fn sasl_payload(out: &str, name: &str) -> Vec<u8> {
        let start = out
            .find(&format!("<{name}"))
            .unwrap_or_else(|| panic!("no <{name}> in {out}"));
        let rest = &out[start..];
        let open_end = rest.find('>').expect("tag end");
        if rest[..open_end].ends_with('/') {
            return Vec::new();
        }
        let close = rest.find(&format!("</{name}>")).expect("closing tag");
        let text = &rest[open_end + 1..close];
        if text == "=" {
            return Vec::new();
        }
        B64.decode(text).expect("base64")
    }

    fn answer_credentials(s: &mut Connection, creds: Option<&StoredCredentials>) {
        match s.poll_event() {
            Some(Event::NeedCredentials { username }) => {
                assert_eq!(username, "juliet");
                s.provide_credentials(creds, T0);
            }
            other => panic!("expected NeedCredentials, got {other:?}"),
        }
    }

    fn response(data: &[u8]) -> Vec<u8> {
        format!(
            "<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>{}</response>",
            B64.encode(data)
        )
        .into_bytes()
    }

    const AUTH_DIGEST: &[u8] =
        b"<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='DIGEST-MD5'/>";

    #[test]
    fn digest_md5_is_not_offered_by_default() {
        let mut cfg = ServerConfig::new("capulet.lit");
        cfg.tls = TlsPolicy::Optional;
        let mut s = Connection::new_server(cfg, Limits::default(), [3; 32], T0);
        s.handle_input(HEADER.as_bytes(), T0);
        assert!(!output(&mut s).contains("DIGEST-MD5"));
        s.handle_input(AUTH_DIGEST, T0);
        assert!(output(&mut s).contains("invalid-mechanism"));
    }

    #[test]
    fn digest_md5_full_exchange_then_bind() {
        let mut s = digest_server();
        s.handle_input(AUTH_DIGEST, T0);
        let challenge = sasl_payload(&output(&mut s), "challenge");
        let text = String::from_utf8(challenge.clone()).expect("ascii");
        // Realm = the served domain; only qop=auth; charset utf-8; algorithm md5-sess.
        assert!(text.contains("realm=\"capulet.lit\""), "{text}");
        assert!(text.contains("qop=\"auth\""), "{text}");
        assert!(text.contains("algorithm=md5-sess"), "{text}");
        let mut client = ClientSession::new(
            Mechanism::DigestMd5,
            "juliet",
            "r0meo",
            None,
            "OA6MHXh6VqTrRk",
        )
        .expect("client");
        let resp = client.challenge(&challenge).expect("digest-response");
        let resp_text = String::from_utf8(resp.clone()).expect("ascii");
        assert!(
            resp_text.contains("digest-uri=\"xmpp/capulet.lit\""),
            "{resp_text}"
        );
        s.handle_input(&response(&resp), T0);
        answer_credentials(&mut s, Some(&digest_creds()));
        // rspauth proves the server knows the secret; the client checks it.
        let rspauth = sasl_payload(&output(&mut s), "challenge");
        let empty = client.challenge(&rspauth).expect("rspauth verifies");
        assert!(empty.is_empty());
        s.handle_input(&response(&empty), T0);
        let out = output(&mut s);
        assert!(out.contains("<success"), "{out}");
        client.success(None).expect("client done");
        assert_eq!(
            s.authenticated().map(|j| j.to_string()).as_deref(),
            Some("juliet@capulet.lit")
        );
        // The stream restarts and binding follows as for any mechanism.
        s.handle_input(HEADER.as_bytes(), T0);
        assert!(output(&mut s).contains("urn:ietf:params:xml:ns:xmpp-bind"));
    }

    /// Runs an exchange up to the credentials with a hand-edited digest-response and
    /// returns the server's answer.
    fn digest_with(edit: impl Fn(String) -> String, creds: Option<&StoredCredentials>) -> String {
        let mut s = digest_server();
        s.handle_input(AUTH_DIGEST, T0);
        let challenge = sasl_payload(&output(&mut s), "challenge");
        let mut client =
            ClientSession::new(Mechanism::DigestMd5, "juliet", "r0meo", None, "cn0nce")
                .expect("client");
        let resp =
            String::from_utf8(client.challenge(&challenge).expect("response")).expect("ascii");
        s.handle_input(&response(edit(resp).as_bytes()), T0);
        if let Some(Event::NeedCredentials { .. }) = s.poll_event() {
            s.provide_credentials(creds, T0);
        }
        output(&mut s)
    }

    #[test]
    fn digest_md5_refuses_replays_foreign_nonces_and_wrong_uris() {
        let creds = digest_creds();
        // Unchanged: the server answers rspauth.
        assert!(digest_with(|r| r, Some(&creds)).contains("<challenge"));
        // nc other than 00000001: subsequent authentication is not supported.
        let out = digest_with(|r| r.replace("nc=00000001", "nc=00000002"), Some(&creds));
        assert!(out.contains("not-authorized"), "{out}");
        // A nonce the server did not issue (replay from another exchange).
        let out = digest_with(
            |r| {
                let start = r.find("nonce=\"").expect("nonce") + 7;
                let mut r = r;
                r.replace_range(start..start + 4, "AAAA");
                r
            },
            Some(&creds),
        );
        assert!(out.contains("not-authorized"), "{out}");
        // digest-uri for another service or host.
        let out = digest_with(
            |r| r.replace("xmpp/capulet.lit", "imap/capulet.lit"),
            Some(&creds),
        );
        assert!(out.contains("not-authorized"), "{out}");
        let out = digest_with(
            |r| r.replace("xmpp/capulet.lit", "xmpp/montague.lit"),
            Some(&creds),
        );
        assert!(out.contains("not-authorized"), "{out}");
        // Missing cnonce, or qop=auth-int (no security layers): malformed.
        let out = digest_with(|r| r.replace("cnonce=\"cn0nce\",", ""), Some(&creds));
        assert!(out.contains("malformed-request"), "{out}");
        let out = digest_with(|r| r.replace("qop=auth", "qop=auth-int"), Some(&creds));
        assert!(out.contains("malformed-request"), "{out}");
    }

    #[test]
    fn digest_md5_without_a_stored_secret_is_not_authorized() {
        // An account whose record predates DIGEST-MD5 (SCRAM keys only), and no account.
        let out = digest_with(|r| r, Some(&creds("r0meo")));
        assert!(out.contains("not-authorized"), "{out}");
        let out = digest_with(|r| r, None);
        assert!(out.contains("not-authorized"), "{out}");
        // A wrong password.
        let wrong = StoredCredentials::derive_with_digest_md5(
            "juliet",
            "capulet.lit",
            "other",
            b"salt-sha1-16byte",
            b"salt-sha256-16by",
            4096,
        )
        .expect("derivable");
        let out = digest_with(|r| r, Some(&wrong));
        assert!(out.contains("not-authorized"), "{out}");
    }

    #[test]
    fn digest_md5_authzid_must_be_the_account() {
        let creds = digest_creds();
        for (authzid, ok) in [
            ("juliet@capulet.lit", true),
            ("romeo@capulet.lit", false),
            ("juliet@montague.lit", false),
        ] {
            let mut s = digest_server();
            s.handle_input(AUTH_DIGEST, T0);
            let challenge = sasl_payload(&output(&mut s), "challenge");
            let mut client =
                ClientSession::new(Mechanism::DigestMd5, "juliet", "r0meo", Some(authzid), "cn")
                    .expect("client");
            let resp = client.challenge(&challenge).expect("response");
            s.handle_input(&response(&resp), T0);
            answer_credentials(&mut s, Some(&creds));
            let rspauth = sasl_payload(&output(&mut s), "challenge");
            let empty = client.challenge(&rspauth).expect("rspauth");
            s.handle_input(&response(&empty), T0);
            let out = output(&mut s);
            if ok {
                assert!(out.contains("<success"), "{authzid}: {out}");
            } else {
                assert!(out.contains("invalid-authzid"), "{authzid}: {out}");
                assert!(s.authenticated().is_none());
            }
        }
    }
}

/// RFC 6120 4.7.4: the receiving entity's header carries the `xml:lang` the initiating
/// entity asked for (else our default, `en`), on the first and the restarted stream, and
/// after TLS.
#[test]
fn our_header_echoes_the_peers_xml_lang() {
    let header_with = |lang: &str| {
        HEADER.replace(
            "to='capulet.lit'",
            &format!("to='capulet.lit' xml:lang='{lang}'"),
        )
    };
    let mut s = server_alone();
    s.handle_input(header_with("de").as_bytes(), T0);
    let out = output(&mut s);
    assert!(out.contains("xml:lang='de'"), "{out}");
    s.handle_input(b"<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>", T0);
    assert!(output(&mut s).contains("<proceed"));
    s.handle_tls_ready_with(TlsInfo::default(), T0);
    s.handle_input(header_with("pt-BR").as_bytes(), T0);
    let out = output(&mut s);
    assert!(out.contains("xml:lang='pt-BR'"), "{out}");
    let mut s = server_alone();
    s.handle_input(HEADER.as_bytes(), T0);
    let out = output(&mut s);
    assert!(out.contains("xml:lang='en'"), "{out}");
}
