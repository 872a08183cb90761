//! Stored credentials: SCRAM keys per hash; the password itself only where an operator
//! opted into XEP-0078 digest authentication, which cannot work without it.

use alloc::string::String;
use alloc::vec::Vec;

use crate::crypto::HashAlg;
use crate::{MAX_ITERATIONS, MAX_SALT_BYTES, MIN_ITERATIONS, SaslError, prep};

/// The SCRAM verifier for one hash function (RFC 5802 §3).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredScram {
    /// The salt given to the client.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// `H(ClientKey)`.
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`.
    pub server_key: Vec<u8>,
}

// Keys are secrets: keep them out of logs.
impl core::fmt::Debug for StoredScram {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StoredScram")
            .field("salt_len", &self.salt.len())
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

/// What the store keeps for an account: SCRAM-SHA-1 and SCRAM-SHA-256 verifiers, and
/// optionally the DIGEST-MD5 secret.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredentials {
    /// The SCRAM-SHA-1 verifier.
    pub sha1: StoredScram,
    /// The SCRAM-SHA-256 verifier (also used to check PLAIN passwords).
    pub sha256: StoredScram,
    /// `H(username ":" realm ":" password)` (RFC 2831) for the server's realm, if the account
    /// was created with one ([`StoredCredentials::derive_with_digest_md5`]). It is
    /// password-equivalent for DIGEST-MD5 in that realm (not for SCRAM or PLAIN). Without it
    /// DIGEST-MD5 fails for the account with `not-authorized`.
    pub digest_md5: Option<[u8; 16]>,
    /// The password as it was set, for XEP-0078 `<digest/>` (SHA1 of the stream id and the
    /// password), which no stored verifier can check. Only kept when the server enables
    /// that form ([`StoredCredentials::with_legacy_password`]); plaintext-equivalent.
    pub legacy_password: Option<String>,
}

// Keys are secrets: keep them out of logs.
impl core::fmt::Debug for StoredCredentials {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("StoredCredentials")
            .field("sha1", &self.sha1)
            .field("sha256", &self.sha256)
            .field("digest_md5", &self.digest_md5.is_some())
            .field("legacy_password", &self.legacy_password.is_some())
            .finish()
    }
}

/// First byte of the version 1 encoding (SCRAM verifiers only).
const ENCODING_V1: u8 = 1;
/// First byte of the version 2 encoding (SCRAM verifiers and the DIGEST-MD5 secret).
const ENCODING_V2: u8 = 2;
/// First byte of the version 3 encoding: the verifiers, then a flags byte saying which of
/// the DIGEST-MD5 secret and the legacy password follow.
const ENCODING_V3: u8 = 3;
const FLAG_DIGEST_MD5: u8 = 1;
const FLAG_LEGACY_PASSWORD: u8 = 2;
/// Longest legacy password kept (bytes); longer ones are refused when set.
pub const MAX_LEGACY_PASSWORD_BYTES: usize = 1024;

impl StoredScram {
    fn derive(alg: HashAlg, password: &[u8], salt: &[u8], iterations: u32) -> StoredScram {
        let keys = alg.keys(password, salt, iterations);
        StoredScram {
            salt: salt.to_vec(),
            iterations,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
        }
    }

    fn is_valid_for(&self, alg: HashAlg) -> bool {
        !self.salt.is_empty()
            && self.salt.len() <= MAX_SALT_BYTES
            && (1..=MAX_ITERATIONS).contains(&self.iterations)
            && self.stored_key.len() == alg.len()
            && self.server_key.len() == alg.len()
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.iterations.to_be_bytes());
        // Salt length is at most MAX_SALT_BYTES (checked at derive/decode), so it fits in u16;
        // a hand-built oversized salt is truncated in the length and rejected on decode.
        let salt_len = u16::try_from(self.salt.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&salt_len.to_be_bytes());
        out.extend_from_slice(&self.salt);
        out.extend_from_slice(&self.stored_key);
        out.extend_from_slice(&self.server_key);
    }

    fn decode(alg: HashAlg, input: &mut &[u8]) -> Result<StoredScram, SaslError> {
        let iterations = u32::from_be_bytes(take_array(input)?);
        let salt_len = usize::from(u16::from_be_bytes(take_array(input)?));
        let salt = take(input, salt_len)?.to_vec();
        let stored_key = take(input, alg.len())?.to_vec();
        let server_key = take(input, alg.len())?.to_vec();
        let s = StoredScram {
            salt,
            iterations,
            stored_key,
            server_key,
        };
        if s.is_valid_for(alg) {
            Ok(s)
        } else {
            Err(SaslError::InvalidCredentials)
        }
    }
}

fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], SaslError> {
    if input.len() < n {
        return Err(SaslError::InvalidCredentials);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn take_array<const N: usize>(input: &mut &[u8]) -> Result<[u8; N], SaslError> {
    let mut out = [0u8; N];
    out.copy_from_slice(take(input, N)?);
    Ok(out)
}

impl StoredCredentials {
    /// Derives both verifiers from a password (SASLprep'd first).
    ///
    /// Salts must be 1..=[`MAX_SALT_BYTES`] bytes (16 random bytes is usual) and `iterations`
    /// within [`MIN_ITERATIONS`]`..=`[`MAX_ITERATIONS`].
    pub fn derive(
        password: &str,
        salt_sha1: &[u8],
        salt_sha256: &[u8],
        iterations: u32,
    ) -> Result<StoredCredentials, SaslError> {
        let password = prep::saslprep(password)?;
        if password.is_empty() {
            return Err(SaslError::EmptyPassword);
        }
        let salt_ok = |s: &[u8]| !s.is_empty() && s.len() <= MAX_SALT_BYTES;
        if !salt_ok(salt_sha1) || !salt_ok(salt_sha256) {
            return Err(SaslError::InvalidSalt);
        }
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(SaslError::InvalidIterations(iterations));
        }
        Ok(StoredCredentials {
            sha1: StoredScram::derive(HashAlg::Sha1, password.as_bytes(), salt_sha1, iterations),
            sha256: StoredScram::derive(
                HashAlg::Sha256,
                password.as_bytes(),
                salt_sha256,
                iterations,
            ),
            digest_md5: None,
            legacy_password: None,
        })
    }

    /// Like [`derive`](Self::derive), and also stores the DIGEST-MD5 secret
    /// `H(username ":" realm ":" password)` so the account can use DIGEST-MD5 in `realm`
    /// (the server's domain). `username` is the authcid clients send (the account's
    /// localpart); username and password are SASLprep'd as the mechanisms do.
    pub fn derive_with_digest_md5(
        username: &str,
        realm: &str,
        password: &str,
        salt_sha1: &[u8],
        salt_sha256: &[u8],
        iterations: u32,
    ) -> Result<StoredCredentials, SaslError> {
        let mut creds = StoredCredentials::derive(password, salt_sha1, salt_sha256, iterations)?;
        let username = prep::saslprep(username)?;
        if username.is_empty() {
            return Err(SaslError::EmptyAuthcid);
        }
        let password = prep::saslprep(password)?;
        creds.digest_md5 = Some(crate::digest::user_hash(&username, realm, &password));
        Ok(creds)
    }

    /// Also keeps `password` for XEP-0078 digest authentication. It is stored as given (the
    /// client hashes what the user typed); at most [`MAX_LEGACY_PASSWORD_BYTES`] bytes.
    pub fn with_legacy_password(mut self, password: &str) -> Result<Self, SaslError> {
        if password.is_empty() {
            return Err(SaslError::EmptyPassword);
        }
        if password.len() > MAX_LEGACY_PASSWORD_BYTES {
            return Err(SaslError::InvalidCredentials);
        }
        self.legacy_password = Some(String::from(password));
        Ok(self)
    }

    /// Compact binary encoding for the store.
    ///
    /// Layout: a version byte, then for SHA-1 and SHA-256 in turn: iterations (u32 BE),
    /// salt length (u16 BE), salt, StoredKey, ServerKey (hash-length each). Version 1
    /// (`0x01`) ends there and is written when there is nothing else (so older readers keep
    /// working); version 2 (`0x02`) appends the 16-byte DIGEST-MD5 secret; version 3
    /// (`0x03`, only with a legacy password) appends a flags byte, the DIGEST-MD5 secret if
    /// flagged, and the password (u16 BE length, UTF-8).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + 2 * (6 + 16) + 2 * (20 + 32) + 16);
        let version = match (&self.digest_md5, &self.legacy_password) {
            (_, Some(_)) => ENCODING_V3,
            (Some(_), None) => ENCODING_V2,
            (None, None) => ENCODING_V1,
        };
        out.push(version);
        self.sha1.encode(&mut out);
        self.sha256.encode(&mut out);
        if version == ENCODING_V3 {
            let mut flags = 0;
            if self.digest_md5.is_some() {
                flags |= FLAG_DIGEST_MD5;
            }
            if self.legacy_password.is_some() {
                flags |= FLAG_LEGACY_PASSWORD;
            }
            out.push(flags);
        }
        if let Some(d) = &self.digest_md5 {
            out.extend_from_slice(d);
        }
        if let Some(p) = &self.legacy_password {
            // Bounded by `with_legacy_password`; clamp anyway so the length always fits.
            let p = &p.as_bytes()[..p.len().min(MAX_LEGACY_PASSWORD_BYTES)];
            out.extend_from_slice(&(p.len() as u16).to_be_bytes());
            out.extend_from_slice(p);
        }
        out
    }

    /// Decodes [`to_bytes`](Self::to_bytes) output, either version (version 1 records decode
    /// with `digest_md5: None`); anything else is [`SaslError::InvalidCredentials`].
    pub fn from_bytes(bytes: &[u8]) -> Result<StoredCredentials, SaslError> {
        let mut input = bytes;
        let version = take_array::<1>(&mut input)?[0];
        if !(ENCODING_V1..=ENCODING_V3).contains(&version) {
            return Err(SaslError::InvalidCredentials);
        }
        let sha1 = StoredScram::decode(HashAlg::Sha1, &mut input)?;
        let sha256 = StoredScram::decode(HashAlg::Sha256, &mut input)?;
        let flags = match version {
            ENCODING_V1 => 0,
            ENCODING_V2 => FLAG_DIGEST_MD5,
            _ => take_array::<1>(&mut input)?[0],
        };
        if flags & !(FLAG_DIGEST_MD5 | FLAG_LEGACY_PASSWORD) != 0 {
            return Err(SaslError::InvalidCredentials);
        }
        let digest_md5 = if flags & FLAG_DIGEST_MD5 != 0 {
            Some(take_array::<16>(&mut input)?)
        } else {
            None
        };
        let legacy_password = if flags & FLAG_LEGACY_PASSWORD != 0 {
            let len = u16::from_be_bytes(take_array::<2>(&mut input)?) as usize;
            if len == 0 || len > MAX_LEGACY_PASSWORD_BYTES {
                return Err(SaslError::InvalidCredentials);
            }
            let bytes = take(&mut input, len)?;
            let text = core::str::from_utf8(bytes).map_err(|_| SaslError::InvalidCredentials)?;
            Some(String::from(text))
        } else {
            None
        };
        if !input.is_empty() {
            return Err(SaslError::InvalidCredentials);
        }
        Ok(StoredCredentials {
            sha1,
            sha256,
            digest_md5,
            legacy_password,
        })
    }

    /// The verifier for a SCRAM hash.
    pub(crate) fn for_alg(&self, alg: HashAlg) -> &StoredScram {
        match alg {
            HashAlg::Sha1 => &self.sha1,
            HashAlg::Sha256 => &self.sha256,
        }
    }

    /// Whether both verifiers have the right shapes (key lengths, salt, iterations).
    pub(crate) fn is_valid(&self) -> bool {
        self.sha1.is_valid_for(HashAlg::Sha1) && self.sha256.is_valid_for(HashAlg::Sha256)
    }
}
