//! Legacy `jabber:iq:auth` (XEP-0078) helpers.
//!
//! XEP-0078 has two credential forms: `<password/>` (plaintext) and `<digest/>` =
//! hex(SHA1(stream id + password)). `<password/>` is verified with [`verify_plain`] against
//! the SCRAM keys, like SASL PLAIN. The digest can only be checked by a server that has the
//! password itself, so a server keeps it only when the operator enables the digest form
//! ([`StoredCredentials::with_legacy_password`]) and checks it with
//! [`ServerSession::start_legacy_digest`](crate::ServerSession::start_legacy_digest).
//! [`legacy_digest`] computes the digest (client side, and for that check).

use alloc::string::String;

use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

use crate::crypto::HashAlg;
use crate::{StoredCredentials, prep};

/// The XEP-0078 digest: lower-case hex of SHA1(`stream_id` ‖ `password`), UTF-8 bytes.
pub fn legacy_digest(stream_id: &str, password: &str) -> String {
    let mut h = Sha1::new();
    h.update(stream_id.as_bytes());
    h.update(password.as_bytes());
    crate::digest::hex(&h.finalize())
}

/// Whether `password` (SASLprep'd first) matches the stored SCRAM-SHA-256 StoredKey; for
/// PLAIN-like checks such as the `<password/>` of XEP-0078. Constant time in the key
/// comparison; costs one PBKDF2 at the stored iteration count.
pub fn verify_plain(creds: &StoredCredentials, password: &str) -> bool {
    if !creds.is_valid() || password.len() > crate::MAX_MESSAGE_BYTES {
        return false;
    }
    let Ok(password) = prep::saslprep(password) else {
        return false;
    };
    if password.is_empty() {
        return false;
    }
    let s = &creds.sha256;
    let keys = HashAlg::Sha256.keys(password.as_bytes(), &s.salt, s.iterations);
    bool::from(keys.stored_key.ct_eq(&s.stored_key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xep0078_example_digest() {
        // XEP-0078 example 6: stream id 3EE948B0, password Calli0pe.
        assert_eq!(
            legacy_digest("3EE948B0", "Calli0pe"),
            "48fc78be9ec8f86d8ce1c39c320c97c21d62334d"
        );
    }

    fn digest_login(creds: Option<&StoredCredentials>, digest: &str) -> crate::ServerStep {
        let (mut session, step) =
            crate::ServerSession::start_legacy_digest("juliet", "3EE948B0", digest);
        assert!(
            matches!(step, crate::ServerStep::NeedCredentials { ref authcid, .. } if authcid == "juliet"),
            "{step:?}"
        );
        session.provide_credentials(creds)
    }

    #[test]
    fn digest_login_checks_the_stored_legacy_password() {
        let creds = StoredCredentials::derive("Calli0pe", b"s1", b"s256", 4096)
            .and_then(|c| c.with_legacy_password("Calli0pe"))
            .expect("valid");
        let good = "48fc78be9ec8f86d8ce1c39c320c97c21d62334d";
        assert!(matches!(
            digest_login(Some(&creds), good),
            crate::ServerStep::Success { ref authcid, .. } if authcid == "juliet"
        ));
        // Hex digits in either case are the same digest.
        assert!(matches!(
            digest_login(Some(&creds), &good.to_ascii_uppercase()),
            crate::ServerStep::Success { .. }
        ));
        let wrong = "48fc78be9ec8f86d8ce1c39c320c97c21d62334e";
        let refused = crate::ServerStep::Failure(crate::SaslFailure::NotAuthorized);
        assert_eq!(digest_login(Some(&creds), wrong), refused);
        // No such account, or an account stored without the password: refused the same way.
        assert_eq!(digest_login(None, good), refused);
        let scram_only =
            StoredCredentials::derive("Calli0pe", b"s1", b"s256", 4096).expect("valid");
        assert_eq!(digest_login(Some(&scram_only), good), refused);
    }

    #[test]
    fn a_malformed_digest_is_refused_before_any_lookup() {
        for bad in ["", "48fc", "zz".repeat(20).as_str(), &"a".repeat(41)] {
            let (_, step) = crate::ServerSession::start_legacy_digest("juliet", "id", bad);
            assert_eq!(
                step,
                crate::ServerStep::Failure(crate::SaslFailure::MalformedRequest),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn legacy_password_survives_the_store_encoding() {
        let plain = StoredCredentials::derive("pencil", b"s1", b"s256", 4096).expect("valid");
        assert_eq!(plain.to_bytes()[0], 1, "unchanged encoding without extras");
        for creds in [
            plain.clone().with_legacy_password("pencil").expect("ok"),
            StoredCredentials::derive_with_digest_md5("u", "realm", "pencil", b"s1", b"s2", 4096)
                .and_then(|c| c.with_legacy_password("pencil"))
                .expect("ok"),
        ] {
            let bytes = creds.to_bytes();
            assert_eq!(bytes[0], 3);
            assert_eq!(
                StoredCredentials::from_bytes(&bytes).expect("decodes"),
                creds
            );
            // Every truncation is an error, never a panic or a shorter password.
            for n in 0..bytes.len() {
                assert!(
                    StoredCredentials::from_bytes(&bytes[..n]).is_err(),
                    "cut at {n}"
                );
            }
        }
        assert!(plain.clone().with_legacy_password("").is_err());
        assert!(plain.with_legacy_password(&"p".repeat(1025)).is_err());
    }

    #[test]
    fn verify_plain_matches_only_the_password() {
        let creds = StoredCredentials::derive("pencil", b"s1", b"s256", 4096).expect("valid");
        assert!(verify_plain(&creds, "pencil"));
        assert!(!verify_plain(&creds, "pencil "));
        assert!(!verify_plain(&creds, ""));
        assert!(!verify_plain(&creds, "\u{7}"));
    }
}
