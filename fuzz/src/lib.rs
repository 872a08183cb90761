//! Helpers shared by the fuzz targets: an independent SCRAM oracle (RFC 5802 §3, written
//! from the RFC, not from `elsinore-sasl`) and credentials built with it at any iteration
//! count, so targets do not pay 4096 PBKDF2 rounds per execution.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::Engine as _;
use elsinore_sasl::{StoredCredentials, StoredScram};
use hmac::{Hmac, KeyInit, Mac};
use sha1::{Digest, Sha1};
use sha2::Sha256;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hash {
    /// SCRAM-SHA-1.
    Sha1,
    /// SCRAM-SHA-256.
    Sha256,
}

impl Hash {
    /// Output length in bytes.
    pub fn output_len(self) -> usize {
        match self {
            Hash::Sha1 => 20,
            Hash::Sha256 => 32,
        }
    }

    /// `H(data)`.
    pub fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha1 => Sha1::digest(data).to_vec(),
            Hash::Sha256 => Sha256::digest(data).to_vec(),
        }
    }

    /// `HMAC(key, data)`.
    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        // new_from_slice cannot fail: HMAC takes keys of any length.
        match self {
            Hash::Sha1 => {
                let mut m = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Hash::Sha256 => {
                let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    /// `Hi(password, salt, i)`.
    pub fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        let mut out = vec![0; self.output_len()];
        match self {
            Hash::Sha1 => pbkdf2::pbkdf2_hmac::<Sha1>(password, salt, iterations, &mut out),
            Hash::Sha256 => pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out),
        }
        out
    }

    /// ClientKey, StoredKey, ServerKey.
    pub fn keys(self, password: &[u8], salt: &[u8], iterations: u32) -> Keys {
        let salted = self.salted_password_cached(password, salt, iterations);
        let client_key = self.hmac(&salted, b"Client Key");
        Keys {
            stored_key: self.hash(&client_key),
            server_key: self.hmac(&salted, b"Server Key"),
            client_key,
        }
    }

    /// [`Hash::salted_password`], remembered for a few recent inputs (seeds reuse salts).
    fn salted_password_cached(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        type Cache = HashMap<(Hash, Vec<u8>, Vec<u8>, u32), Vec<u8>>;
        thread_local! {
            static CACHE: RefCell<Cache> = RefCell::new(HashMap::new());
        }
        let key = (self, password.to_vec(), salt.to_vec(), iterations);
        if let Some(v) = CACHE.with(|c| c.borrow().get(&key).cloned()) {
            return v;
        }
        let v = self.salted_password(password, salt, iterations);
        CACHE.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= 256 {
                c.clear();
            }
            c.insert(key, v.clone());
        });
        v
    }
}

/// SCRAM keys of one password.
#[derive(Debug, Clone)]
pub struct Keys {
    /// ClientKey.
    pub client_key: Vec<u8>,
    /// StoredKey = H(ClientKey).
    pub stored_key: Vec<u8>,
    /// ServerKey.
    pub server_key: Vec<u8>,
}

/// Stored credentials for `password` (already SASLprep'd) at any iteration count, built
/// with the oracle: `StoredCredentials::derive` refuses fewer than 4096 rounds.
pub fn credentials(
    password: &str,
    salt1: &[u8],
    salt256: &[u8],
    iterations: u32,
) -> StoredCredentials {
    let scram = |h: Hash, salt: &[u8]| {
        let k = h.keys(password.as_bytes(), salt, iterations);
        StoredScram {
            salt: salt.to_vec(),
            iterations,
            stored_key: k.stored_key,
            server_key: k.server_key,
        }
    };
    StoredCredentials {
        sha1: scram(Hash::Sha1, salt1),
        sha256: scram(Hash::Sha256, salt256),
        digest_md5: None,
    }
}

/// Standard padded base64.
pub fn b64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes standard padded base64.
pub fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// The value of attribute `name` in a SCRAM message `a=...,b=...`.
pub fn attr(msg: &str, name: char) -> Option<&str> {
    msg.split(',').find_map(|a| {
        let mut it = a.chars();
        (it.next() == Some(name) && it.next() == Some('=')).then(|| &a[2..])
    })
}

/// The parts of a server-first message `r=..,s=..,i=..`.
pub struct ServerFirst {
    /// Combined nonce.
    pub nonce: String,
    /// Salt.
    pub salt: Vec<u8>,
    /// Iteration count.
    pub iterations: u32,
}

impl ServerFirst {
    /// Parses the attributes the oracle needs (leniently: it only recomputes values).
    pub fn parse(msg: &str) -> Option<ServerFirst> {
        Some(ServerFirst {
            nonce: attr(msg, 'r')?.to_string(),
            salt: unb64(attr(msg, 's')?)?,
            iterations: attr(msg, 'i')?.parse().ok()?,
        })
    }
}

/// A client-final message (with proof) and the ServerSignature the server must send back.
pub struct ClientFinal {
    /// `c=...,r=...,p=...`.
    pub message: String,
    /// The expected `v=` value, raw.
    pub server_signature: Vec<u8>,
}

/// Computes the client-final message for `password` from the exchange so far.
pub fn client_final(
    h: Hash,
    password: &str,
    gs2_header: &str,
    client_first_bare: &str,
    server_first: &str,
) -> Option<ClientFinal> {
    let sf = ServerFirst::parse(server_first)?;
    let keys = h.keys(password.as_bytes(), &sf.salt, sf.iterations);
    let without_proof = format!("c={},r={}", b64(gs2_header.as_bytes()), sf.nonce);
    let auth = format!("{client_first_bare},{server_first},{without_proof}");
    let sig = h.hmac(&keys.stored_key, auth.as_bytes());
    let proof: Vec<u8> = keys
        .client_key
        .iter()
        .zip(&sig)
        .map(|(a, b)| a ^ b)
        .collect();
    Some(ClientFinal {
        message: format!("{without_proof},p={}", b64(&proof)),
        server_signature: h.hmac(&keys.server_key, auth.as_bytes()),
    })
}

/// Reads a front-to-back, length-prefixed input format (simple to write seeds for by hand,
/// see `seeds/make_seeds.py`): bytes are taken from the front, lengths are one byte (two,
/// little-endian, for [`Reader::long_bytes`]), and a short input reads as zeros / empty.
pub struct Reader<'a>(arbitrary::Unstructured<'a>);

impl<'a> Reader<'a> {
    /// Reads `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Reader(arbitrary::Unstructured::new(data))
    }

    /// Whether all input was read.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One byte (0 at the end).
    pub fn byte(&mut self) -> u8 {
        self.0.arbitrary().unwrap_or(0)
    }

    /// `n` bytes or what is left.
    fn take(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        self.0.bytes(n).unwrap_or_default()
    }

    /// A byte string of at most 255 bytes.
    pub fn bytes(&mut self) -> &'a [u8] {
        let n = self.byte();
        self.take(usize::from(n))
    }

    /// A byte string of at most 65535 bytes.
    pub fn long_bytes(&mut self) -> &'a [u8] {
        let n = u16::from_le_bytes([self.byte(), self.byte()]);
        self.take(usize::from(n))
    }

    /// A string (invalid UTF-8 replaced).
    pub fn string(&mut self) -> String {
        String::from_utf8_lossy(self.bytes()).into_owned()
    }

    /// A flag byte then, if odd, a string.
    pub fn opt_string(&mut self) -> Option<String> {
        (self.byte() % 2 == 1).then(|| self.string())
    }
}
