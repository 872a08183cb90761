//! Helpers shared by the fuzz targets: an independent SCRAM oracle (RFC 5802 §3, written
//! from the RFC, not from `elsinore-sasl`) and credentials built with it at any iteration
//! count, so targets do not pay 4096 PBKDF2 rounds per execution.

use std::cell::RefCell;
use std::collections::HashMap;

use base64::Engine as _;
use elsinore_sasl::{StoredCredentials, StoredScram};
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
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
        legacy_password: None,
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
    client_final_cb(
        h,
        password,
        gs2_header.as_bytes(),
        client_first_bare,
        server_first,
    )
}

/// [`client_final`] with the `c=` content given: the GS2 header followed by the
/// channel-binding data (SCRAM-*-PLUS, RFC 5802 §7 `cbind-input`).
pub fn client_final_cb(
    h: Hash,
    password: &str,
    cbind_input: &[u8],
    client_first_bare: &str,
    server_first: &str,
) -> Option<ClientFinal> {
    let sf = ServerFirst::parse(server_first)?;
    let keys = h.keys(password.as_bytes(), &sf.salt, sf.iterations);
    let without_proof = format!("c={},r={}", b64(cbind_input), sf.nonce);
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

// ---- DIGEST-MD5 (RFC 2831 §2.1.2.1), written from the RFC -------------------------------

/// Lower-case hex.
pub fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 2831 §2.1.2.1: strings whose characters all fit ISO 8859-1 are hashed in ISO 8859-1,
/// others in UTF-8.
fn latin1_or_utf8(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| s.as_bytes().to_vec())
}

/// The secret a server stores: `H(username ":" realm ":" password)`.
pub fn digest_secret(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(latin1_or_utf8(username));
    h.update(b":");
    h.update(latin1_or_utf8(realm));
    h.update(b":");
    h.update(latin1_or_utf8(password));
    h.finalize().into()
}

/// The values of one DIGEST-MD5 exchange that enter `response` and `rspauth`.
pub struct DigestInput<'a> {
    /// `H(username ":" realm ":" password)`.
    pub secret: &'a [u8; 16],
    /// The server nonce.
    pub nonce: &'a str,
    /// The client nonce.
    pub cnonce: &'a str,
    /// The `nc` value.
    pub nc: &'a str,
    /// The `digest-uri` value.
    pub digest_uri: &'a str,
    /// The authzid as sent, if any.
    pub authzid: Option<&'a str>,
}

impl DigestInput<'_> {
    fn kd(&self, a2_method: &str) -> String {
        let mut a1 = self.secret.to_vec();
        a1.extend_from_slice(format!(":{}:{}", self.nonce, self.cnonce).as_bytes());
        if let Some(z) = self.authzid {
            a1.push(b':');
            a1.extend_from_slice(z.as_bytes());
        }
        let ha1 = hex(&Md5::digest(&a1));
        let ha2 = hex(&Md5::digest(format!("{a2_method}:{}", self.digest_uri)));
        let kd = format!(
            "{ha1}:{}:{}:{}:auth:{ha2}",
            self.nonce, self.nc, self.cnonce
        );
        hex(&Md5::digest(kd.as_bytes()))
    }

    /// The client's `response` (A2 = `AUTHENTICATE:digest-uri`).
    pub fn response(&self) -> String {
        self.kd("AUTHENTICATE")
    }

    /// The server's `rspauth` (A2 = `:digest-uri`).
    pub fn rspauth(&self) -> String {
        self.kd("")
    }
}

/// `"value"` with `"` and `\` escaped.
pub fn quote(value: &str) -> String {
    let mut out = String::from("\"");
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Parses an RFC 2831 directive list (`name=token` or `name="quoted"`, comma-separated,
/// optional linear white space, empty elements). `None` on a syntax error.
pub fn directives(text: &str) -> Option<Vec<(String, String)>> {
    let tspecial = |c: char| "()<>@,;:\\\"/[]?={}".contains(c);
    let token = |c: char| ('\x21'..='\x7e').contains(&c) && !tspecial(c);
    let ws = |c: char| matches!(c, ' ' | '\t' | '\r' | '\n');
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|&c| ws(c) || c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek().filter(|&&c| token(c)) {
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|&c| ws(c)) {
            chars.next();
        }
        if name.is_empty() || chars.next() != Some('=') {
            return None;
        }
        while chars.peek().is_some_and(|&c| ws(c)) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek().filter(|&&c| token(c)) {
                value.push(c);
                chars.next();
            }
        }
        while chars.peek().is_some_and(|&c| ws(c)) {
            chars.next();
        }
        match chars.peek() {
            None | Some(',') => {}
            Some(_) => return None,
        }
        out.push((name, value));
    }
}

/// The value of directive `name` (case-insensitive), if it occurs exactly once.
pub fn directive<'d>(dirs: &'d [(String, String)], name: &str) -> Option<&'d str> {
    let mut it = dirs.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name));
    let first = it.next()?;
    it.next().is_none().then_some(first.1.as_str())
}

pub mod server_harness;
