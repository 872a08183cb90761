//! Legacy `jabber:iq:auth` (XEP-0078) helpers.
//!
//! XEP-0078 has two credential forms: `<password/>` (plaintext) and `<digest/>` =
//! hex(SHA1(stream id + password)). The digest can only be checked by a server that has the
//! plaintext password, which elsinore never stores (only SCRAM keys), so the server side
//! supports `<password/>` only, verified with [`verify_plain`] like SASL PLAIN; it must not
//! list `<digest/>` in its `jabber:iq:auth` get result and refuses a digest set (XEP-0078
//! lets a server omit it). [`legacy_digest`] is for clients talking to servers that do.

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

    #[test]
    fn verify_plain_matches_only_the_password() {
        let creds = StoredCredentials::derive("pencil", b"s1", b"s256", 4096).expect("valid");
        assert!(verify_plain(&creds, "pencil"));
        assert!(!verify_plain(&creds, "pencil "));
        assert!(!verify_plain(&creds, ""));
        assert!(!verify_plain(&creds, "\u{7}"));
    }
}
