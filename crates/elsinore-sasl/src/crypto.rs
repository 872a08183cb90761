//! The hash functions SCRAM is built on, chosen at run time by mechanism.

use alloc::vec::Vec;

use hmac::{Hmac, KeyInit, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// The hash function of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha1,
    Sha256,
}

/// SCRAM keys derived from a salted password (RFC 5802 §3).
pub(crate) struct Keys {
    pub(crate) client_key: Vec<u8>,
    pub(crate) stored_key: Vec<u8>,
    pub(crate) server_key: Vec<u8>,
}

impl HashAlg {
    /// Output length in bytes.
    pub(crate) fn len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha256 => 32,
        }
    }

    /// `H(data)`.
    pub(crate) fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => Sha1::digest(data).to_vec(),
            HashAlg::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, parts[0] || parts[1] || ...)`.
    pub(crate) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
        match self {
            HashAlg::Sha1 => {
                // HMAC accepts keys of any length (long keys are hashed), so this cannot fail.
                let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                for p in parts {
                    mac.update(p);
                }
                mac.finalize().into_bytes().to_vec()
            }
            HashAlg::Sha256 => {
                // Same invariant as above.
                let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
                    .expect("HMAC accepts keys of any length");
                for p in parts {
                    mac.update(p);
                }
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    /// `Hi(password, salt, i)`: PBKDF2 with HMAC of this hash, one block of output.
    pub(crate) fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = alloc::vec![0u8; self.len()];
        match self {
            HashAlg::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            HashAlg::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
        }
        out
    }

    /// ClientKey, StoredKey and ServerKey for a (SASLprep'd) password.
    pub(crate) fn keys(self, password: &[u8], salt: &[u8], iterations: u32) -> Keys {
        let salted = self.hi(password, salt, iterations);
        let client_key = self.hmac(&salted, &[b"Client Key"]);
        let stored_key = self.hash(&client_key);
        let server_key = self.hmac(&salted, &[b"Server Key"]);
        Keys {
            client_key,
            stored_key,
            server_key,
        }
    }
}

/// `a XOR b` over the common length (callers pass equal lengths).
pub(crate) fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
    a.iter().zip(b).map(|(x, y)| x ^ y).collect()
}
