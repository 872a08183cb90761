//! DIGEST-MD5 (RFC 2831 example), SCRAM -PLUS channel binding and downgrade protection,
//! EXTERNAL, ANONYMOUS, legacy jabber:iq:auth helpers, credential record versions; both
//! directions, failure conditions, and no-panic properties.

use std::sync::OnceLock;

use base64::Engine as _;
use elsinore_sasl::{
    ChannelBinding, ClientSession, Mechanism, OfferContext, SaslError, SaslFailure, ServerContext,
    ServerSession, ServerStep, StoredCredentials, client_preference,
    client_preference_with_binding, legacy_digest, offered_mechanisms, verify_plain,
};
use hmac::{KeyInit, Mac};
use proptest::prelude::*;
use sha2::Digest as _;

// -- DIGEST-MD5 ------------------------------------------------------------------------------

const RFC2831_CHALLENGE: &str = r#"realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8"#;
const RFC2831_RESPONSE: &str = r#"charset=utf-8,username="chris",realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",nc=00000001,cnonce="OA6MHXh6VqTrRk",digest-uri="imap/elwood.innosoft.com",response=d388dad90d4bbd760a152321f2143af7,qop=auth"#;
const RFC2831_RSPAUTH: &str = "rspauth=ea40f60335c427b5527b84dbabcdfffd";

/// chris / secret in realm elwood.innosoft.com, with the DIGEST-MD5 secret.
fn chris() -> &'static StoredCredentials {
    static C: OnceLock<StoredCredentials> = OnceLock::new();
    C.get_or_init(|| {
        StoredCredentials::derive_with_digest_md5(
            "chris",
            "elwood.innosoft.com",
            "secret",
            b"salt-1",
            b"salt-256",
            4096,
        )
        .expect("valid parameters")
    })
}

fn rfc_ctx() -> ServerContext {
    ServerContext {
        realm: "elwood.innosoft.com".into(),
        service: "imap".into(),
        ..ServerContext::new("OA6MG9tEQGm2hh")
    }
}

fn rfc_client() -> ClientSession {
    ClientSession::new(
        Mechanism::DigestMd5,
        "chris",
        "secret",
        None,
        "OA6MHXh6VqTrRk",
    )
    .expect("valid")
    .with_digest_uri("imap", "elwood.innosoft.com")
}

/// Starts a DIGEST-MD5 server with the RFC context and feeds it `response`.
fn digest_server_step(response: &str) -> (ServerSession, ServerStep) {
    let (mut s, step) = ServerSession::start_with(Mechanism::DigestMd5, None, rfc_ctx());
    assert!(matches!(step, ServerStep::Challenge(_)), "{step:?}");
    let step = s.response(response.as_bytes());
    (s, step)
}

#[test]
fn rfc2831_example_client_side() {
    let mut c = rfc_client();
    assert!(!c.has_initial_response());
    assert!(c.initial_response().is_empty());
    let resp = c.challenge(RFC2831_CHALLENGE.as_bytes()).expect("accepted");
    assert_eq!(String::from_utf8(resp).expect("utf-8"), RFC2831_RESPONSE);
    assert_eq!(c.challenge(RFC2831_RSPAUTH.as_bytes()), Ok(Vec::new()));
    assert_eq!(c.success(None), Ok(()));
}

#[test]
fn rfc2831_example_client_rspauth_in_success() {
    let mut c = rfc_client();
    c.challenge(RFC2831_CHALLENGE.as_bytes()).expect("accepted");
    assert_eq!(c.success(Some(RFC2831_RSPAUTH.as_bytes())), Ok(()));
}

#[test]
fn rfc2831_example_server_side() {
    let (mut s, step) = ServerSession::start_with(Mechanism::DigestMd5, None, rfc_ctx());
    // Same directives as the RFC's challenge (our order puts charset before algorithm).
    assert_eq!(
        step,
        ServerStep::Challenge(
            br#"realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",charset=utf-8,algorithm=md5-sess"#.to_vec()
        )
    );
    assert_eq!(
        s.response(RFC2831_RESPONSE.as_bytes()),
        ServerStep::NeedCredentials {
            authcid: "chris".into(),
            authzid: None
        }
    );
    assert_eq!(
        s.provide_credentials(Some(chris())),
        ServerStep::Challenge(RFC2831_RSPAUTH.as_bytes().to_vec())
    );
    assert_eq!(
        s.response(b""),
        ServerStep::Success {
            authcid: "chris".into(),
            authzid: None,
            additional: None
        }
    );
}

#[test]
fn digest_md5_our_client_and_server_agree_with_authzid() {
    let creds = StoredCredentials::derive_with_digest_md5(
        "juliet",
        "example.com",
        "r0m30",
        b"s1",
        b"s2",
        4096,
    )
    .expect("valid");
    let ctx = ServerContext {
        realm: "example.com".into(),
        ..ServerContext::new("servernonce")
    };
    let mut c = ClientSession::new(
        Mechanism::DigestMd5,
        "juliet",
        "r0m30",
        Some("juliet@example.com"),
        "cn\"o\\nce",
    )
    .expect("valid");
    // An empty initial response (`=`) is the same as none for a server-first mechanism.
    let (mut s, step) = ServerSession::start_with(Mechanism::DigestMd5, Some(b""), ctx);
    let ServerStep::Challenge(ch) = step else {
        panic!("{step:?}")
    };
    let resp = c.challenge(&ch).expect("accepted");
    assert_eq!(
        s.response(&resp),
        ServerStep::NeedCredentials {
            authcid: "juliet".into(),
            authzid: Some("juliet@example.com".into())
        }
    );
    let ServerStep::Challenge(rspauth) = s.provide_credentials(Some(&creds)) else {
        panic!("rspauth expected")
    };
    assert_eq!(c.challenge(&rspauth), Ok(Vec::new()));
    assert!(matches!(s.response(b""), ServerStep::Success { .. }));
}

#[test]
fn digest_md5_failures() {
    use SaslFailure::*;
    let with = |from: &str, to: &str| RFC2831_RESPONSE.replacen(from, to, 1);
    let cases: Vec<(String, SaslFailure)> = vec![
        (with("qop=auth", "qop=auth-int"), MalformedRequest),
        (
            with("qop=auth", "qop=auth-conf,cipher=rc4"),
            MalformedRequest,
        ),
        (format!("{RFC2831_RESPONSE},cipher=rc4"), MalformedRequest),
        (format!("{RFC2831_RESPONSE},nc=00000001"), MalformedRequest),
        (
            format!("{RFC2831_RESPONSE},username=\"x\""),
            MalformedRequest,
        ),
        (with("charset=utf-8", "charset=latin-1"), MalformedRequest),
        (
            with(",response=d388dad90d4bbd760a152321f2143af7", ""),
            MalformedRequest,
        ),
        (
            with("d388dad90d4bbd760a152321f2143af7", "d388"),
            MalformedRequest,
        ),
        (with("username=\"chris\",", ""), MalformedRequest),
        (with("cnonce=\"OA6MHXh6VqTrRk\",", ""), MalformedRequest),
        (with("nc=00000001", "nc=1"), MalformedRequest),
        (with("\"chris\"", "\"chris"), MalformedRequest),
        (
            with("nonce=\"OA6MG9tEQGm2hh\"", "nonce=\"replayed\""),
            NotAuthorized,
        ),
        (with("nc=00000001", "nc=00000002"), NotAuthorized),
        (with("imap/elwood", "smtp/elwood"), NotAuthorized),
        (
            with("imap/elwood.innosoft.com", "imap/evil.example"),
            NotAuthorized,
        ),
        (with("realm=\"elwood.innosoft.com\",", ""), NotAuthorized),
        (
            with("realm=\"elwood.innosoft.com\"", "realm=\"other\""),
            NotAuthorized,
        ),
        (
            with("charset=utf-8,", "").replace("chris", "chr\u{e9}s"),
            MalformedRequest,
        ),
    ];
    for (msg, failure) in cases {
        let (_, step) = digest_server_step(&msg);
        assert_eq!(step, ServerStep::Failure(failure), "{msg}");
    }
}

#[test]
fn digest_md5_credential_failures_look_alike() {
    let no_digest = StoredCredentials::derive("secret", b"s1", b"s2", 4096).expect("valid");
    let wrong = StoredCredentials::derive_with_digest_md5(
        "chris",
        "elwood.innosoft.com",
        "secret2",
        b"s1",
        b"s2",
        4096,
    )
    .expect("valid");
    for creds in [None, Some(&no_digest), Some(&wrong)] {
        let (mut s, step) = digest_server_step(RFC2831_RESPONSE);
        assert!(matches!(step, ServerStep::NeedCredentials { .. }));
        assert_eq!(
            s.provide_credentials(creds),
            ServerStep::Failure(SaslFailure::NotAuthorized)
        );
    }
    // A non-empty answer to rspauth is not the protocol.
    let (mut s, _) = digest_server_step(RFC2831_RESPONSE);
    s.provide_credentials(Some(chris()));
    assert_eq!(
        s.response(b"x"),
        ServerStep::Failure(SaslFailure::MalformedRequest)
    );
}

#[test]
fn digest_md5_server_configuration_and_initial_response() {
    let (_, step) = ServerSession::start_with(Mechanism::DigestMd5, Some(b"x"), rfc_ctx());
    assert_eq!(step, ServerStep::Failure(SaslFailure::MalformedRequest));
    // No realm configured: the server cannot check any stored secret.
    let (_, step) = ServerSession::start(Mechanism::DigestMd5, None, "nonce");
    assert_eq!(step, ServerStep::Failure(SaslFailure::TemporaryAuthFailure));
}

#[test]
fn digest_md5_client_rejects_bad_challenges() {
    let bad = [
        r#"realm="r",qop="auth",algorithm=md5-sess"#,
        r#"realm="r",nonce="n",qop="auth""#,
        r#"realm="r",nonce="n",qop="auth-int,auth-conf",algorithm=md5-sess"#,
        r#"realm="r",nonce="n",nonce="m",algorithm=md5-sess"#,
        r#"realm="r",nonce="n",algorithm=md5-sess,charset=latin-1"#,
        r#"realm="r",nonce="n",algorithm=md5"#,
        r#"realm="r",nonce="n,algorithm=md5-sess"#,
        "",
    ];
    for ch in bad {
        let mut c = rfc_client();
        assert!(c.challenge(ch.as_bytes()).is_err(), "{ch}");
    }
    // Wrong or missing rspauth.
    let mut c = rfc_client();
    c.challenge(RFC2831_CHALLENGE.as_bytes()).expect("accepted");
    assert_eq!(
        c.challenge(b"rspauth=00000000000000000000000000000000"),
        Err(SaslError::ServerSignatureMismatch)
    );
    let mut c = rfc_client();
    c.challenge(RFC2831_CHALLENGE.as_bytes()).expect("accepted");
    assert_eq!(c.success(None), Err(SaslError::MissingServerSignature));
    // qop list with several options, auth among them; no charset: ASCII only.
    let mut c = rfc_client();
    let resp = c
        .challenge(
            br#"nonce="n",qop="auth-conf, auth",algorithm=md5-sess,realm="elwood.innosoft.com""#,
        )
        .expect("accepted");
    assert!(!resp.starts_with(b"charset"));
    // Non-ASCII names need full SASLprep (std).
    #[cfg(feature = "std")]
    {
        let mut c =
            ClientSession::new(Mechanism::DigestMd5, "chr\u{e9}s", "s", None, "cn").expect("ok");
        assert_eq!(
            c.challenge(br#"nonce="n",algorithm=md5-sess,realm="r""#),
            Err(SaslError::Prep)
        );
    }
}

#[test]
fn credential_records_v1_and_v2() {
    let v1 = StoredCredentials::derive("secret", b"salt-1", b"salt-256", 4096).expect("valid");
    let bytes = v1.to_bytes();
    assert_eq!(
        bytes[0], 1,
        "no DIGEST-MD5 secret: still written as version 1"
    );
    assert_eq!(StoredCredentials::from_bytes(&bytes), Ok(v1.clone()));
    let v2 = chris().clone();
    let bytes2 = v2.to_bytes();
    assert_eq!(bytes2[0], 2);
    assert_eq!(bytes2.len(), bytes.len() + 16);
    assert_eq!(StoredCredentials::from_bytes(&bytes2), Ok(v2.clone()));
    assert!(StoredCredentials::from_bytes(&bytes2[..bytes2.len() - 1]).is_err());
    let mut v3 = bytes2.clone();
    v3[0] = 3;
    assert!(StoredCredentials::from_bytes(&v3).is_err());
    let mut long_v1 = bytes.clone();
    long_v1.extend_from_slice(&[0; 16]);
    assert!(StoredCredentials::from_bytes(&long_v1).is_err());
    // H("chris:elwood.innosoft.com:secret").
    let expected: [u8; 16] = md5::Md5::digest(b"chris:elwood.innosoft.com:secret").into();
    assert_eq!(v2.digest_md5, Some(expected));
    // The Debug output keeps the secret out.
    assert!(!format!("{v2:?}").contains(&format!("{:?}", expected[0..4].to_vec())));
}

// -- SCRAM -PLUS ---------------------------------------------------------------------------

const CB_DATA: &[u8] = b"\x00\x01binding-bytes-from-the-adapter\xfe\xff";

fn creds() -> &'static StoredCredentials {
    static C: OnceLock<StoredCredentials> = OnceLock::new();
    C.get_or_init(|| {
        StoredCredentials::derive("pencil", b"salt-for-sha-1..", b"salt-for-sha-256", 4096)
            .expect("valid parameters")
    })
}

fn b64(d: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(d)
}

fn hmac256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut m = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any length");
    m.update(data);
    m.finalize().into_bytes().to_vec()
}

/// The client-final message per RFC 5802 §3 and §7, built independently of the crate.
fn reference_client_final(
    gs2_and_cb: &[u8],
    client_first_bare: &str,
    server_first: &str,
) -> String {
    let salted = {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(b"pencil", b"salt-for-sha-256", 4096, &mut out);
        out
    };
    let client_key = hmac256(&salted, b"Client Key");
    let stored_key = sha2::Sha256::digest(&client_key).to_vec();
    let nonce = server_first
        .split(',')
        .next()
        .expect("r=")
        .trim_start_matches("r=");
    let without_proof = format!("c={},r={nonce}", b64(gs2_and_cb));
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let sig = hmac256(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    format!("{without_proof},p={}", b64(&proof))
}

fn plus_ctx(bindings: Vec<ChannelBinding>) -> ServerContext {
    ServerContext {
        channel_bindings: bindings,
        plus_offered: true,
        ..ServerContext::new("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    }
}

#[test]
fn scram_plus_both_sides_match_hand_built_messages() {
    for (binding, name) in [
        (
            ChannelBinding::TlsExporter(CB_DATA.to_vec()),
            "tls-exporter",
        ),
        (
            ChannelBinding::TlsServerEndPoint(CB_DATA.to_vec()),
            "tls-server-end-point",
        ),
    ] {
        let mut c = ClientSession::new_with_binding(
            Mechanism::ScramSha256Plus,
            "user",
            "pencil",
            None,
            "rOprNGfwEbeRWgbNEkqO",
            binding.clone(),
        )
        .expect("valid");
        let first = c.initial_response();
        let header = format!("p={name},,");
        assert_eq!(
            first,
            format!("{header}n=user,r=rOprNGfwEbeRWgbNEkqO").as_bytes()
        );
        let (mut s, step) = ServerSession::start_with(
            Mechanism::ScramSha256Plus,
            Some(&first),
            plus_ctx(vec![ChannelBinding::None, binding.clone()]),
        );
        assert!(matches!(step, ServerStep::NeedCredentials { .. }));
        let ServerStep::Challenge(server_first) = s.provide_credentials(Some(creds())) else {
            panic!("server-first expected")
        };
        let server_first = String::from_utf8(server_first).expect("utf-8");
        let client_final = c.challenge(server_first.as_bytes()).expect("accepted");
        let mut cb = header.into_bytes();
        cb.extend_from_slice(CB_DATA);
        assert_eq!(
            String::from_utf8(client_final.clone()).expect("utf-8"),
            reference_client_final(&cb, "n=user,r=rOprNGfwEbeRWgbNEkqO", &server_first)
        );
        let ServerStep::Success { additional, .. } = s.response(&client_final) else {
            panic!("success expected")
        };
        assert_eq!(c.success(additional.as_deref()), Ok(()));
    }
}

/// Runs a -PLUS exchange where the client and server bindings may differ.
fn plus_exchange(
    client_binding: ChannelBinding,
    server_bindings: Vec<ChannelBinding>,
    authzid: Option<&str>,
) -> ServerStep {
    let mut c = ClientSession::new_with_binding(
        Mechanism::ScramSha1Plus,
        "user",
        "pencil",
        authzid,
        "clientnonce",
        client_binding,
    )
    .expect("valid");
    let (mut s, step) = ServerSession::start_with(
        Mechanism::ScramSha1Plus,
        Some(&c.initial_response()),
        plus_ctx(server_bindings),
    );
    if !matches!(step, ServerStep::NeedCredentials { .. }) {
        return step;
    }
    let ServerStep::Challenge(sf) = s.provide_credentials(Some(creds())) else {
        panic!("challenge expected")
    };
    let cf = c.challenge(&sf).expect("accepted");
    s.response(&cf)
}

#[test]
fn scram_plus_mismatches_fail() {
    let exporter = ChannelBinding::TlsExporter(CB_DATA.to_vec());
    assert!(matches!(
        plus_exchange(exporter.clone(), vec![exporter.clone()], Some("admin")),
        ServerStep::Success { authzid: Some(ref z), .. } if z == "admin"
    ));
    // Different binding data (a man in the middle terminates TLS): the c= check fails.
    assert_eq!(
        plus_exchange(
            exporter.clone(),
            vec![ChannelBinding::TlsExporter(b"other".to_vec())],
            None
        ),
        ServerStep::Failure(SaslFailure::NotAuthorized)
    );
    // A type the server does not have.
    assert_eq!(
        plus_exchange(
            ChannelBinding::TlsServerEndPoint(CB_DATA.to_vec()),
            vec![exporter.clone()],
            None
        ),
        ServerStep::Failure(SaslFailure::NotAuthorized)
    );
    assert_eq!(
        plus_exchange(exporter, vec![], None),
        ServerStep::Failure(SaslFailure::NotAuthorized)
    );
}

#[test]
fn scram_plus_stripped_binding_fails() {
    let binding = ChannelBinding::TlsExporter(CB_DATA.to_vec());
    let mut c = ClientSession::new_with_binding(
        Mechanism::ScramSha256Plus,
        "user",
        "pencil",
        None,
        "clientnonce",
        binding.clone(),
    )
    .expect("valid");
    let first = c.initial_response();
    let (mut s, _) = ServerSession::start_with(
        Mechanism::ScramSha256Plus,
        Some(&first),
        plus_ctx(vec![binding]),
    );
    let ServerStep::Challenge(sf) = s.provide_credentials(Some(creds())) else {
        panic!("challenge expected")
    };
    let sf = String::from_utf8(sf).expect("utf-8");
    // A correctly signed message whose c= holds only the GS2 header (no binding data).
    let forged = reference_client_final(b"p=tls-exporter,,", "n=user,r=clientnonce", &sf);
    assert_eq!(
        s.response(forged.as_bytes()),
        ServerStep::Failure(SaslFailure::NotAuthorized)
    );
}

#[test]
fn downgrade_protection() {
    let binding = ChannelBinding::TlsExporter(CB_DATA.to_vec());
    // A client able to bind that picks a non-PLUS mechanism sends `y`.
    let mut c = ClientSession::new_with_binding(
        Mechanism::ScramSha256,
        "user",
        "pencil",
        None,
        "clientnonce",
        binding.clone(),
    )
    .expect("valid");
    let first = c.initial_response();
    assert!(first.starts_with(b"y,,n=user,"));
    // The server offered -PLUS: `y` means someone removed it from the list.
    let (_, step) = ServerSession::start_with(
        Mechanism::ScramSha256,
        Some(&first),
        plus_ctx(vec![binding]),
    );
    assert_eq!(step, ServerStep::Failure(SaslFailure::NotAuthorized));
    // A server that offered no -PLUS accepts `y`, and the exchange completes.
    let (mut s, step) = ServerSession::start(Mechanism::ScramSha256, Some(&first), "snonce");
    assert!(matches!(step, ServerStep::NeedCredentials { .. }));
    let ServerStep::Challenge(sf) = s.provide_credentials(Some(creds())) else {
        panic!("challenge expected")
    };
    let cf = c.challenge(&sf).expect("accepted");
    assert!(
        cf.starts_with(format!("c={},", b64(b"y,,")).as_bytes()),
        "c= carries the y header"
    );
    assert!(matches!(s.response(&cf), ServerStep::Success { .. }));
    // `n` is still fine when -PLUS is offered (the client cannot bind at all).
    let n_first = b"n,,n=user,r=clientnonce";
    let (_, step) = ServerSession::start_with(
        Mechanism::ScramSha256,
        Some(n_first),
        plus_ctx(vec![ChannelBinding::TlsExporter(CB_DATA.to_vec())]),
    );
    assert!(matches!(step, ServerStep::NeedCredentials { .. }));
}

#[test]
fn channel_binding_flag_must_fit_the_mechanism() {
    let ctx = || plus_ctx(vec![ChannelBinding::TlsExporter(CB_DATA.to_vec())]);
    for first in [&b"n,,n=user,r=abc"[..], b"y,,n=user,r=abc"] {
        let (_, step) = ServerSession::start_with(Mechanism::ScramSha256Plus, Some(first), ctx());
        assert_eq!(step, ServerStep::Failure(SaslFailure::MalformedRequest));
    }
    let (_, step) = ServerSession::start_with(
        Mechanism::ScramSha256,
        Some(b"p=tls-exporter,,n=user,r=abc"),
        ctx(),
    );
    assert_eq!(step, ServerStep::Failure(SaslFailure::MalformedRequest));
    // A -PLUS client needs a binding.
    assert_eq!(
        ClientSession::new(Mechanism::ScramSha1Plus, "u", "p", None, "n").err(),
        Some(SaslError::MechanismMismatch)
    );
    assert_eq!(
        ClientSession::new_with_binding(
            Mechanism::ScramSha1Plus,
            "u",
            "p",
            None,
            "n",
            ChannelBinding::TlsExporter(vec![0; 10_000])
        )
        .err(),
        Some(SaslError::MechanismMismatch)
    );
    // An unusable binding is dropped: the client then says `n`.
    let mut c = ClientSession::new_with_binding(
        Mechanism::ScramSha1,
        "u",
        "p",
        None,
        "n",
        ChannelBinding::TlsExporter(Vec::new()),
    )
    .expect("valid");
    assert!(c.initial_response().starts_with(b"n,,"));
}

#[test]
fn mechanism_lists() {
    let all = Mechanism::ALL;
    assert_eq!(
        offered_mechanisms(&all, OfferContext::default()),
        [
            Mechanism::ScramSha256,
            Mechanism::ScramSha1,
            Mechanism::DigestMd5,
            Mechanism::Plain,
            Mechanism::Anonymous
        ]
    );
    let tls = OfferContext {
        channel_binding: true,
        external_identity: true,
    };
    assert_eq!(offered_mechanisms(&all, tls), all);
    for m in all {
        assert_eq!(Mechanism::from_name(m.name()), Some(m));
        assert_eq!(m.is_plus(), m.name().ends_with("-PLUS"));
    }
    let offered = [
        "PLAIN",
        "SCRAM-SHA-1",
        "SCRAM-SHA-1-PLUS",
        "SCRAM-SHA-256",
        "DIGEST-MD5",
    ];
    assert_eq!(client_preference(&offered), Some(Mechanism::ScramSha256));
    assert_eq!(
        client_preference_with_binding(&offered, true),
        Some(Mechanism::ScramSha1Plus)
    );
    assert_eq!(
        client_preference_with_binding(&offered, false),
        Some(Mechanism::ScramSha256)
    );
    assert_eq!(
        client_preference(&["DIGEST-MD5", "EXTERNAL", "ANONYMOUS"]),
        None
    );
}

// -- EXTERNAL and ANONYMOUS ------------------------------------------------------------------

fn external_ctx() -> ServerContext {
    ServerContext {
        external_identity: Some("juliet@example.com".into()),
        ..ServerContext::default()
    }
}

#[test]
fn external_both_sides() {
    let ok = ServerStep::Success {
        authcid: "juliet@example.com".into(),
        authzid: None,
        additional: None,
    };
    for authzid in [
        None,
        Some(""),
        Some("juliet@example.com"),
        Some("Juliet@Example.COM"),
    ] {
        let mut c = ClientSession::external(authzid).expect("valid");
        assert!(c.has_initial_response());
        let ir = c.initial_response();
        assert_eq!(ir, authzid.unwrap_or("").as_bytes());
        let (_, step) = ServerSession::start_with(Mechanism::External, Some(&ir), external_ctx());
        assert_eq!(step, ok, "{authzid:?}");
        assert_eq!(c.success(None), Ok(()));
    }
    // Without an initial response: empty challenge, then the authzid.
    let mut c = ClientSession::external(None).expect("valid");
    let (mut s, step) = ServerSession::start_with(Mechanism::External, None, external_ctx());
    assert_eq!(step, ServerStep::Challenge(Vec::new()));
    let resp = c.challenge(b"").expect("answered");
    assert_eq!(s.response(&resp), ok);
    assert_eq!(c.success(None), Ok(()));
    // For s2s the identity is a domain.
    let ctx = ServerContext {
        external_identity: Some("example.net".into()),
        ..ServerContext::default()
    };
    let (_, step) = ServerSession::start_with(Mechanism::External, Some(b"example.net"), ctx);
    assert!(matches!(step, ServerStep::Success { ref authcid, .. } if authcid == "example.net"));
}

#[test]
fn external_failures() {
    let (_, step) = ServerSession::start_with(
        Mechanism::External,
        Some(b"romeo@example.net"),
        external_ctx(),
    );
    assert_eq!(step, ServerStep::Failure(SaslFailure::InvalidAuthzid));
    let (_, step) = ServerSession::start_with(Mechanism::External, Some(b"\xff"), external_ctx());
    assert_eq!(step, ServerStep::Failure(SaslFailure::MalformedRequest));
    let (_, step) = ServerSession::start_with(Mechanism::External, Some(b"a\0b"), external_ctx());
    assert_eq!(step, ServerStep::Failure(SaslFailure::MalformedRequest));
    let (_, step) =
        ServerSession::start_with(Mechanism::External, Some(&[b'a'; 4000]), external_ctx());
    assert_eq!(step, ServerStep::Failure(SaslFailure::InvalidAuthzid));
    // No certificate identity: not authorized.
    let (_, step) = ServerSession::start(Mechanism::External, Some(b""), "n");
    assert_eq!(step, ServerStep::Failure(SaslFailure::NotAuthorized));
    // EXTERNAL and ANONYMOUS have their own constructors.
    assert_eq!(
        ClientSession::new(Mechanism::External, "u", "p", None, "n").err(),
        Some(SaslError::MechanismMismatch)
    );
}

#[test]
fn anonymous_both_sides() {
    // RFC 4505 §4: trace "sirhc".
    let mut c = ClientSession::anonymous(Some("sirhc")).expect("valid");
    let ir = c.initial_response();
    assert_eq!(ir, b"sirhc");
    let (s, step) = ServerSession::start(Mechanism::Anonymous, Some(&ir), "n");
    assert_eq!(
        step,
        ServerStep::Success {
            authcid: String::new(),
            authzid: None,
            additional: None
        }
    );
    assert!(s.is_anonymous());
    assert_eq!(s.anonymous_trace(), Some("sirhc"));
    assert_eq!(c.success(None), Ok(()));

    let mut c = ClientSession::anonymous(None).expect("valid");
    let (mut s, step) = ServerSession::start(Mechanism::Anonymous, None, "n");
    assert_eq!(step, ServerStep::Challenge(Vec::new()));
    assert!(!s.is_anonymous());
    let resp = c.challenge(b"").expect("answered");
    assert!(matches!(s.response(&resp), ServerStep::Success { .. }));
    assert!(s.is_anonymous());
    assert_eq!(s.anonymous_trace(), None);

    let long = "é".repeat(256);
    for bad in [long.as_bytes(), b"a\nb", b"\xc3"] {
        let (s, step) = ServerSession::start(Mechanism::Anonymous, Some(bad), "n");
        assert_eq!(step, ServerStep::Failure(SaslFailure::MalformedRequest));
        assert!(!s.is_anonymous());
    }
    let (_, step) =
        ServerSession::start(Mechanism::Anonymous, Some("é".repeat(255).as_bytes()), "n");
    assert!(matches!(step, ServerStep::Success { .. }));
    assert!(ClientSession::anonymous(Some(&long)).is_err());
    // Non-anonymous successes are not flagged.
    let (s, _) = ServerSession::start_with(Mechanism::External, Some(b""), external_ctx());
    assert!(!s.is_anonymous());
}

#[test]
fn abort_anywhere() {
    // Server: after abort every message is refused.
    let (mut s, _) = ServerSession::start_with(Mechanism::DigestMd5, None, rfc_ctx());
    s.abort();
    assert_eq!(
        s.response(RFC2831_RESPONSE.as_bytes()),
        ServerStep::Failure(SaslFailure::MalformedRequest)
    );
    let (mut s, _) = ServerSession::start(Mechanism::Anonymous, None, "n");
    s.abort();
    assert_eq!(
        s.response(b""),
        ServerStep::Failure(SaslFailure::MalformedRequest)
    );
    // Client: after abort it answers nothing and accepts no success.
    let mut c = rfc_client();
    c.abort();
    assert_eq!(
        c.challenge(RFC2831_CHALLENGE.as_bytes()),
        Err(SaslError::UnexpectedMessage)
    );
    assert_eq!(c.success(None), Err(SaslError::UnexpectedMessage));
}

// -- Legacy jabber:iq:auth -------------------------------------------------------------------

#[test]
fn legacy_iq_auth() {
    // XEP-0078 example.
    assert_eq!(
        legacy_digest("3EE948B0", "Calli0pe"),
        "48fc78be9ec8f86d8ce1c39c320c97c21d62334d"
    );
    assert!(verify_plain(creds(), "pencil"));
    assert!(!verify_plain(creds(), "Pencil"));
    assert!(!verify_plain(creds(), &"p".repeat(100_000)));
}

// -- No panics -------------------------------------------------------------------------------

/// Arbitrary bytes, printable noise and single-byte mutations / truncations of `valid`.
fn message(valid: &'static [u8]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..200),
        r#"[a-z=,"\\ 0-9/-]{0,120}"#.prop_map(String::into_bytes),
        (0..valid.len(), any::<u8>()).prop_map(move |(i, b)| {
            let mut v = valid.to_vec();
            v[i] = b;
            v
        }),
        (0..=valid.len()).prop_map(move |n| valid[..n].to_vec()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn digest_server_never_panics(msg in message(RFC2831_RESPONSE.as_bytes())) {
        let (mut s, step) = digest_server_step(core::str::from_utf8(&msg).unwrap_or("\u{0}"));
        if matches!(step, ServerStep::NeedCredentials { .. }) {
            let step = s.provide_credentials(Some(chris()));
            // Any accepted mutation must still be a correct response.
            if let ServerStep::Challenge(_) = step {
                let done = matches!(s.response(b""), ServerStep::Success { .. });
                prop_assert!(done);
            }
        }
        let _ = s.response(&msg);
        let (mut s, _) = ServerSession::start_with(Mechanism::DigestMd5, Some(&msg), rfc_ctx());
        let _ = s.response(&msg);
    }

    #[test]
    fn digest_client_never_panics(ch in message(RFC2831_CHALLENGE.as_bytes()),
            auth in message(RFC2831_RSPAUTH.as_bytes())) {
        let mut c = rfc_client();
        if c.challenge(&ch).is_ok() {
            let _ = c.challenge(&auth);
            let _ = c.success(Some(&auth));
        }
    }

    #[test]
    fn plus_server_never_panics(first in message(b"p=tls-exporter,a=admin,n=user,r=clientnonce"),
            fin in message(b"c=cD10bHMtZXhwb3J0ZXIsLEFCQ0Q=,r=clientnonceserver,p=AAAA")) {
        for mech in [Mechanism::ScramSha1Plus, Mechanism::ScramSha256Plus, Mechanism::ScramSha256] {
            let ctx = plus_ctx(vec![ChannelBinding::TlsExporter(b"ABCD".to_vec())]);
            let (mut s, step) = ServerSession::start_with(mech, Some(&first), ctx);
            if matches!(step, ServerStep::NeedCredentials { .. }) {
                let _ = s.provide_credentials(Some(creds()));
            }
            let _ = s.response(&fin);
        }
    }

    #[test]
    fn external_and_anonymous_never_panic(msg in message(b"juliet@example.com")) {
        let (mut s, _) = ServerSession::start_with(Mechanism::External, Some(&msg), external_ctx());
        let _ = s.response(&msg);
        let (mut s, _) = ServerSession::start_with(Mechanism::External, None, external_ctx());
        let _ = s.response(&msg);
        let (mut s, step) = ServerSession::start(Mechanism::Anonymous, Some(&msg), "n");
        prop_assert_eq!(s.is_anonymous(), matches!(step, ServerStep::Success { .. }));
        let _ = s.response(&msg);
    }

    #[test]
    fn credential_records_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..220),
            version in 1u8..=2) {
        let mut b = bytes;
        if let Some(first) = b.first_mut() {
            *first = version;
        }
        if let Ok(c) = StoredCredentials::from_bytes(&b) {
            prop_assert_eq!(c.to_bytes(), b);
        }
    }
}

proptest! {
    // Each case derives credentials (PBKDF2): few cases.
    #![proptest_config(ProptestConfig::with_cases(24))]

    // Non-ASCII names need full SASLprep.
    #[cfg(feature = "std")]
    #[test]
    fn digest_md5_round_trip(user in "[a-zA-Z0-9\u{e0}-\u{ff}\u{4e00}-\u{4e10}\"\\\\ ]{1,12}",
            pass in "[a-zA-Z0-9\u{e0}-\u{ff}\u{20ac}\"\\\\]{1,12}",
            authzid in proptest::option::of("[a-z@.]{1,10}"),
            cnonce in "[!-+.-~]{1,20}") {
        prop_assume!(user.trim() == user);
        let creds = StoredCredentials::derive_with_digest_md5(
            &user, "example.com", &pass, b"s1", b"s2", 4096,
        ).expect("valid");
        let ctx = ServerContext { realm: "example.com".into(), ..ServerContext::new("srv") };
        let mut c = ClientSession::new(Mechanism::DigestMd5, &user, &pass, authzid.as_deref(), &cnonce)
            .expect("valid");
        let (mut s, step) = ServerSession::start_with(Mechanism::DigestMd5, None, ctx);
        let ServerStep::Challenge(ch) = step else { panic!("challenge expected") };
        let resp = c.challenge(&ch).expect("accepted");
        let step = s.response(&resp);
        let named = matches!(step, ServerStep::NeedCredentials { ref authcid, .. } if *authcid == user);
        prop_assert!(named, "{:?}", step);
        let ServerStep::Challenge(rspauth) = s.provide_credentials(Some(&creds)) else {
            panic!("rspauth expected")
        };
        prop_assert_eq!(c.challenge(&rspauth), Ok(Vec::new()));
        let done = matches!(s.response(b""), ServerStep::Success { .. });
        prop_assert!(done);
    }

    #[test]
    fn scram_plus_round_trip(data in proptest::collection::vec(any::<u8>(), 1..=64),
            other in proptest::collection::vec(any::<u8>(), 1..=64),
            exporter in any::<bool>(),
            authzid in proptest::option::of("[a-z=,@]{1,10}")) {
        let make = |d: &[u8]| if exporter {
            ChannelBinding::TlsExporter(d.to_vec())
        } else {
            ChannelBinding::TlsServerEndPoint(d.to_vec())
        };
        let mut c = ClientSession::new_with_binding(
            Mechanism::ScramSha256Plus, "user", "pencil", authzid.as_deref(), "cn", make(&data),
        ).expect("valid");
        let (mut s, step) = ServerSession::start_with(
            Mechanism::ScramSha256Plus,
            Some(&c.initial_response()),
            plus_ctx(vec![make(&other)]),
        );
        let asks = matches!(step, ServerStep::NeedCredentials { .. });
        prop_assert!(asks);
        let ServerStep::Challenge(sf) = s.provide_credentials(Some(creds())) else {
            panic!("challenge expected")
        };
        let cf = c.challenge(&sf).expect("accepted");
        let step = s.response(&cf);
        // Success exactly when both ends see the same binding data.
        prop_assert_eq!(matches!(step, ServerStep::Success { .. }), data == other, "{:?}", step);
    }
}
