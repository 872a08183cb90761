//! RFC test vectors, both directions: RFC 5802 §5 (SCRAM-SHA-1), RFC 7677 §3
//! (SCRAM-SHA-256), RFC 4616 §4 (PLAIN).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use elsinore_sasl::{ClientSession, Mechanism, ServerSession, ServerStep, StoredCredentials};

struct Vector {
    mech: Mechanism,
    client_nonce: &'static str,
    server_nonce: &'static str,
    salt_b64: &'static str,
    client_first: &'static str,
    server_first: &'static str,
    client_final: &'static str,
    server_final: &'static str,
}

const SHA1: Vector = Vector {
    mech: Mechanism::ScramSha1,
    client_nonce: "fyko+d2lbbFgONRv9qkxdawL",
    server_nonce: "3rfcNHYJY1ZVvWVs7j",
    salt_b64: "QSXCR+Q6sek8bf92",
    client_first: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    server_first: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    client_final: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,\
                   p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    server_final: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
};

const SHA256: Vector = Vector {
    mech: Mechanism::ScramSha256,
    client_nonce: "rOprNGfwEbeRWgbNEkqO",
    server_nonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    salt_b64: "W22ZaJ0SNY7soEsUEjb6gQ==",
    client_first: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                   s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    client_final: "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
                   p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    server_final: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
};

fn salt(v: &Vector) -> Vec<u8> {
    STANDARD.decode(v.salt_b64).expect("vector salt is base64")
}

fn creds_for(v: &Vector) -> StoredCredentials {
    let s = salt(v);
    StoredCredentials::derive("pencil", &s, &s, 4096).expect("valid parameters")
}

fn client_side(v: &Vector) {
    let mut c = ClientSession::new(v.mech, "user", "pencil", None, v.client_nonce).expect("ok");
    assert_eq!(c.initial_response(), v.client_first.as_bytes());
    let final_msg = c
        .challenge(v.server_first.as_bytes())
        .expect("server-first accepted");
    assert_eq!(String::from_utf8(final_msg).expect("utf8"), v.client_final);
    c.success(Some(v.server_final.as_bytes()))
        .expect("server signature verifies");
}

fn server_side(v: &Vector) {
    let creds = creds_for(v);
    let (mut s, step) =
        ServerSession::start(v.mech, Some(v.client_first.as_bytes()), v.server_nonce);
    assert_eq!(
        step,
        ServerStep::NeedCredentials {
            authcid: "user".into(),
            authzid: None
        }
    );
    assert_eq!(
        s.provide_credentials(Some(&creds)),
        ServerStep::Challenge(v.server_first.as_bytes().to_vec())
    );
    assert_eq!(
        s.response(v.client_final.as_bytes()),
        ServerStep::Success {
            authcid: "user".into(),
            authzid: None,
            additional: Some(v.server_final.as_bytes().to_vec()),
        }
    );
}

#[test]
fn rfc5802_scram_sha1_client() {
    client_side(&SHA1);
}

#[test]
fn rfc5802_scram_sha1_server() {
    server_side(&SHA1);
}

#[test]
fn rfc7677_scram_sha256_client() {
    client_side(&SHA256);
}

#[test]
fn rfc7677_scram_sha256_server() {
    server_side(&SHA256);
}

#[test]
fn server_final_sent_as_challenge_is_accepted() {
    let v = &SHA256;
    let mut c = ClientSession::new(v.mech, "user", "pencil", None, v.client_nonce).expect("ok");
    c.initial_response();
    c.challenge(v.server_first.as_bytes()).expect("ok");
    assert_eq!(c.challenge(v.server_final.as_bytes()), Ok(Vec::new()));
    assert_eq!(c.success(None), Ok(()));
}

#[test]
fn rfc4616_plain_client_messages() {
    let mut c =
        ClientSession::new(Mechanism::Plain, "tim", "tanstaaftanstaaf", None, "x").expect("ok");
    assert_eq!(c.initial_response(), b"\0tim\0tanstaaftanstaaf");
    assert_eq!(c.success(None), Ok(()));

    let mut c =
        ClientSession::new(Mechanism::Plain, "Kurt", "xipj3plmq", Some("Ursel"), "x").expect("ok");
    assert_eq!(c.initial_response(), b"Ursel\0Kurt\0xipj3plmq");
}

fn plain_server(message: &[u8], password: &str, authcid: &str, authzid: Option<&str>) {
    let salt = b"0123456789abcdef";
    let creds = StoredCredentials::derive(password, salt, salt, 4096).expect("ok");
    let (mut s, step) = ServerSession::start(Mechanism::Plain, Some(message), "nonce");
    assert_eq!(
        step,
        ServerStep::NeedCredentials {
            authcid: authcid.into(),
            authzid: authzid.map(Into::into)
        }
    );
    assert_eq!(
        s.provide_credentials(Some(&creds)),
        ServerStep::Success {
            authcid: authcid.into(),
            authzid: authzid.map(Into::into),
            additional: None
        }
    );
}

#[test]
fn rfc4616_plain_server() {
    plain_server(b"\0tim\0tanstaaftanstaaf", "tanstaaftanstaaf", "tim", None);
    plain_server(
        b"Ursel\0Kurt\0xipj3plmq",
        "xipj3plmq",
        "Kurt",
        Some("Ursel"),
    );
}

#[test]
fn plain_without_initial_response() {
    let salt = b"0123456789abcdef";
    let creds = StoredCredentials::derive("pw", salt, salt, 4096).expect("ok");
    let (mut s, step) = ServerSession::start(Mechanism::Plain, None, "nonce");
    assert_eq!(step, ServerStep::Challenge(Vec::new()));

    let mut c = ClientSession::new(Mechanism::Plain, "tim", "pw", None, "x").expect("ok");
    let answer = c
        .challenge(b"")
        .expect("empty challenge asks for the message");
    assert!(matches!(
        s.response(&answer),
        ServerStep::NeedCredentials { .. }
    ));
    assert!(matches!(
        s.provide_credentials(Some(&creds)),
        ServerStep::Success { .. }
    ));
    assert_eq!(c.success(None), Ok(()));
}

#[cfg(feature = "std")]
#[test]
fn saslprep_applies_to_plain_password() {
    // RFC 4013: U+00AD is mapped to nothing, U+2168 (ROMAN NUMERAL NINE) to "IX".
    let salt = b"0123456789abcdef";
    let creds = StoredCredentials::derive("I\u{AD}X", salt, salt, 4096).expect("ok");
    let (mut s, _) = ServerSession::start(Mechanism::Plain, Some("\0u\0\u{2168}".as_bytes()), "n");
    assert!(matches!(
        s.provide_credentials(Some(&creds)),
        ServerStep::Success { .. }
    ));
}

/// Without `std`, non-ASCII strings cannot be SASLprep'd and are refused, never passed raw.
#[cfg(not(feature = "std"))]
#[test]
fn non_ascii_needs_std() {
    use elsinore_sasl::SaslError;
    let salt = b"0123456789abcdef";
    assert_eq!(
        StoredCredentials::derive("I\u{AD}X", salt, salt, 4096).err(),
        Some(SaslError::PrepUnavailable)
    );
    assert_eq!(
        ClientSession::new(Mechanism::Plain, "us\u{E9}r", "pw", None, "n").err(),
        Some(SaslError::PrepUnavailable)
    );
    let (_, step) = ServerSession::start(Mechanism::Plain, Some("\0u\0\u{2168}".as_bytes()), "n");
    assert_eq!(
        step,
        ServerStep::Failure(elsinore_sasl::SaslFailure::NotAuthorized)
    );
}
