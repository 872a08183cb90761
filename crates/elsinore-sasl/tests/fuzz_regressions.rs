//! Inputs found by the `sasl_client` / `sasl_server` fuzz targets (fuzz/), kept as tests.

use elsinore_sasl::{
    ClientSession, Mechanism, ServerContext, ServerSession, ServerStep, StoredCredentials,
};

/// `sasl_client`, 2026-12-03: an authzid that SASLprep maps to nothing (U+00AD SOFT HYPHEN)
/// was kept as `Some("")`: the DIGEST-MD5 client sent `authzid=""` and hashed `":"` into A1
/// while the server (rightly) treats an empty authzid as none, so the exchange failed; SCRAM
/// sent an empty `a=`. It is now the same as no authzid.
#[test]
fn fuzz_authzid_that_prepares_to_nothing_is_none() {
    let creds = StoredCredentials::derive_with_digest_md5(
        "user",
        "example.com",
        "pencil",
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
        "user",
        "pencil",
        Some("\u{ad}"),
        "cnonce",
    )
    .expect("valid");
    let (mut s, step) = ServerSession::start_with(Mechanism::DigestMd5, None, ctx);
    let ServerStep::Challenge(ch) = step else {
        panic!("{step:?}")
    };
    let resp = c.challenge(&ch).expect("accepted");
    assert!(
        !String::from_utf8_lossy(&resp).contains("authzid"),
        "{}",
        String::from_utf8_lossy(&resp)
    );
    assert_eq!(
        s.response(&resp),
        ServerStep::NeedCredentials {
            authcid: "user".into(),
            authzid: None
        }
    );
    let ServerStep::Challenge(rspauth) = s.provide_credentials(Some(&creds)) else {
        panic!("rspauth expected")
    };
    assert_eq!(c.challenge(&rspauth), Ok(Vec::new()));
    assert!(matches!(
        s.response(b""),
        ServerStep::Success { authzid: None, .. }
    ));

    for mech in [Mechanism::ScramSha1, Mechanism::ScramSha256] {
        let mut c =
            ClientSession::new(mech, "user", "pencil", Some("\u{ad}"), "cnonce").expect("valid");
        assert_eq!(c.initial_response(), b"n,,n=user,r=cnonce".to_vec());
    }
}
