//! The client side of one SASL exchange.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use subtle::ConstantTimeEq;

use crate::crypto::{HashAlg, xor};
use crate::scram::{self, Attrs};
use crate::{
    MAX_ITERATIONS, MAX_MESSAGE_BYTES, MAX_NONCE_BYTES, MIN_ITERATIONS, Mechanism, SaslError, prep,
};

/// The client side of one authentication exchange.
///
/// Call [`initial_response`](Self::initial_response) for the `<auth/>` payload, then
/// [`challenge`](Self::challenge) for every `<challenge/>`, then
/// [`success`](Self::success) on `<success/>`. After an error the session stays failed.
pub struct ClientSession {
    mech: Mechanism,
    authcid: String,
    password: String,
    authzid: Option<String>,
    nonce: String,
    state: State,
}

enum State {
    Start,
    PlainSent,
    ScramFirstSent {
        alg: HashAlg,
        gs2_header: String,
        client_first_bare: String,
    },
    ScramFinalSent {
        alg: HashAlg,
        server_signature: Vec<u8>,
    },
    ScramVerified {
        alg: HashAlg,
        server_signature: Vec<u8>,
    },
    Failed,
}

/// Longest `e=` value kept in [`SaslError::ServerError`].
const MAX_SERVER_ERROR_BYTES: usize = 64;

impl core::fmt::Debug for ClientSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("ClientSession")
            .field("mech", &self.mech)
            .field("authcid", &self.authcid)
            .field("authzid", &self.authzid)
            .finish_non_exhaustive()
    }
}

impl ClientSession {
    /// Prepares an exchange. `authcid` and `password` are SASLprep'd; an empty `authzid` is
    /// the same as none. `nonce` is the SCRAM client nonce: fresh random printable ASCII
    /// without `,`, 1..=[`MAX_NONCE_BYTES`] bytes (unused by PLAIN).
    pub fn new(
        mech: Mechanism,
        authcid: &str,
        password: &str,
        authzid: Option<&str>,
        nonce: &str,
    ) -> Result<ClientSession, SaslError> {
        let authcid = String::from(prep::saslprep(authcid)?);
        if authcid.is_empty() {
            return Err(SaslError::EmptyAuthcid);
        }
        let password = String::from(prep::saslprep(password)?);
        if password.is_empty() {
            return Err(SaslError::EmptyPassword);
        }
        let authzid = match authzid {
            Some(a) if !a.is_empty() => Some(String::from(prep::saslprep(a)?)),
            _ => None,
        };
        if mech.scram_hash().is_some() && !scram::valid_nonce(nonce) {
            return Err(SaslError::InvalidNonce);
        }
        // Escaping can triple a name; keep every message we send within the limit.
        let longest = 3 * (authcid.len() + authzid.as_ref().map_or(0, String::len))
            + password.len()
            + nonce.len()
            + 64;
        if longest > MAX_MESSAGE_BYTES {
            return Err(SaslError::TooLong);
        }
        Ok(ClientSession {
            mech,
            authcid,
            password,
            authzid,
            nonce: String::from(nonce),
            state: State::Start,
        })
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// The initial response for `<auth/>` (PLAIN message or SCRAM client-first message).
    ///
    /// Calling it again returns the same bytes without changing the state.
    pub fn initial_response(&mut self) -> Vec<u8> {
        match self.mech.scram_hash() {
            None => {
                let mut out = Vec::new();
                if let Some(a) = &self.authzid {
                    out.extend_from_slice(a.as_bytes());
                }
                out.push(0);
                out.extend_from_slice(self.authcid.as_bytes());
                out.push(0);
                out.extend_from_slice(self.password.as_bytes());
                if matches!(self.state, State::Start) {
                    self.state = State::PlainSent;
                }
                out
            }
            Some(alg) => {
                // No channel binding yet: flag `n` (a -PLUS variant would send `p=`).
                let gs2_header = match &self.authzid {
                    Some(a) => format!("n,a={},", scram::escape_saslname(a)),
                    None => String::from("n,,"),
                };
                let client_first_bare = format!(
                    "n={},r={}",
                    scram::escape_saslname(&self.authcid),
                    self.nonce
                );
                let out = format!("{gs2_header}{client_first_bare}").into_bytes();
                if matches!(self.state, State::Start) {
                    self.state = State::ScramFirstSent {
                        alg,
                        gs2_header,
                        client_first_bare,
                    };
                }
                out
            }
        }
    }

    /// Answers a `<challenge/>` (raw bytes).
    ///
    /// An empty challenge before anything was sent asks for the initial response. For SCRAM,
    /// a server-final message sent as a challenge (some servers do) is verified here and
    /// answered with an empty response.
    pub fn challenge(&mut self, data: &[u8]) -> Result<Vec<u8>, SaslError> {
        let result = self.challenge_inner(data);
        if result.is_err() {
            self.state = State::Failed;
        }
        result
    }

    fn challenge_inner(&mut self, data: &[u8]) -> Result<Vec<u8>, SaslError> {
        if data.len() > MAX_MESSAGE_BYTES {
            return Err(SaslError::TooLong);
        }
        match core::mem::replace(&mut self.state, State::Failed) {
            State::Start if data.is_empty() => {
                self.state = State::Start;
                Ok(self.initial_response())
            }
            State::ScramFirstSent {
                alg,
                gs2_header,
                client_first_bare,
            } => {
                let (response, server_signature) =
                    self.client_final(alg, &gs2_header, &client_first_bare, data)?;
                self.state = State::ScramFinalSent {
                    alg,
                    server_signature,
                };
                Ok(response)
            }
            State::ScramFinalSent {
                alg,
                server_signature,
            } => {
                verify_server_final(alg, &server_signature, data)?;
                self.state = State::ScramVerified {
                    alg,
                    server_signature,
                };
                Ok(Vec::new())
            }
            _ => Err(SaslError::UnexpectedMessage),
        }
    }

    /// Handles `<success/>` with its additional data. For SCRAM this verifies the server
    /// signature (`v=`), proving the server knows the password; success without it is
    /// [`SaslError::MissingServerSignature`]. PLAIN has nothing to check.
    pub fn success(&mut self, additional: Option<&[u8]>) -> Result<(), SaslError> {
        let additional = additional.filter(|d| !d.is_empty());
        let result = match (&self.state, additional) {
            (State::PlainSent, _) => Ok(()),
            (
                State::ScramFinalSent {
                    alg,
                    server_signature,
                },
                Some(data),
            )
            | (
                State::ScramVerified {
                    alg,
                    server_signature,
                },
                Some(data),
            ) => verify_server_final(*alg, server_signature, data),
            (State::ScramFinalSent { .. }, None) => Err(SaslError::MissingServerSignature),
            (State::ScramVerified { .. }, None) => Ok(()),
            // Success before the exchange completed (e.g. right after client-first) would
            // skip server authentication: refuse it.
            _ => Err(SaslError::UnexpectedMessage),
        };
        self.state = match result {
            Ok(()) => core::mem::replace(&mut self.state, State::Failed),
            Err(_) => State::Failed,
        };
        result
    }

    /// Builds the client-final message from the server-first message; returns it with the
    /// expected server signature.
    fn client_final(
        &self,
        alg: HashAlg,
        gs2_header: &str,
        client_first_bare: &str,
        data: &[u8],
    ) -> Result<(Vec<u8>, Vec<u8>), SaslError> {
        let server_first = core::str::from_utf8(data).map_err(|_| SaslError::MalformedChallenge)?;
        let mut attrs = Attrs::new(server_first);
        // `m=` in first position (mandatory extension) is not supported either.
        let Some(Some((b'r', nonce))) = attrs.next() else {
            return Err(SaslError::MalformedChallenge);
        };
        let Some(Some((b's', salt_b64))) = attrs.next() else {
            return Err(SaslError::MalformedChallenge);
        };
        let Some(Some((b'i', iter_text))) = attrs.next() else {
            return Err(SaslError::MalformedChallenge);
        };
        if attrs.any(|a| a.is_none()) {
            return Err(SaslError::MalformedChallenge);
        }
        // The server must extend our nonce with its own non-empty part.
        let server_part_ok = nonce
            .strip_prefix(self.nonce.as_str())
            .is_some_and(|s| scram::valid_nonce(s) && s.len() <= MAX_NONCE_BYTES);
        if !server_part_ok {
            return Err(SaslError::InvalidNonce);
        }
        let salt = scram::decode_salt(salt_b64).ok_or(SaslError::InvalidSalt)?;
        let iterations = parse_iterations(iter_text)?;

        let keys = alg.keys(self.password.as_bytes(), &salt, iterations);
        let without_proof = format!("c={},r={nonce}", scram::encode_b64(gs2_header.as_bytes()));
        let auth_message = [
            client_first_bare.as_bytes(),
            b",",
            server_first.as_bytes(),
            b",",
            without_proof.as_bytes(),
        ];
        let client_signature = alg.hmac(&keys.stored_key, &auth_message);
        let proof = xor(&keys.client_key, &client_signature);
        let server_signature = alg.hmac(&keys.server_key, &auth_message);
        let message = format!("{without_proof},p={}", scram::encode_b64(&proof));
        Ok((message.into_bytes(), server_signature))
    }
}

/// Parses `i=`: decimal digits only, within [`MIN_ITERATIONS`]`..=`[`MAX_ITERATIONS`].
fn parse_iterations(text: &str) -> Result<u32, SaslError> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SaslError::MalformedChallenge);
    }
    let n: u64 = text.parse().map_err(|_| SaslError::MalformedChallenge)?;
    let n = u32::try_from(n).map_err(|_| SaslError::InvalidIterations(u32::MAX))?;
    if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&n) {
        return Err(SaslError::InvalidIterations(n));
    }
    Ok(n)
}

/// Checks a server-final message (`v=` signature, or `e=` error).
fn verify_server_final(alg: HashAlg, expected: &[u8], data: &[u8]) -> Result<(), SaslError> {
    let text = core::str::from_utf8(data).map_err(|_| SaslError::MalformedChallenge)?;
    let mut attrs = Attrs::new(text);
    match attrs.next() {
        Some(Some((b'v', sig_b64))) => {
            let sig = scram::decode_b64(sig_b64, alg.len()).ok_or(SaslError::Base64)?;
            if bool::from(sig.ct_eq(expected)) {
                Ok(())
            } else {
                Err(SaslError::ServerSignatureMismatch)
            }
        }
        Some(Some((b'e', err))) => {
            let mut end = err.len().min(MAX_SERVER_ERROR_BYTES);
            while !err.is_char_boundary(end) {
                end -= 1;
            }
            Err(SaslError::ServerError(String::from(
                err.get(..end).unwrap_or(""),
            )))
        }
        _ => Err(SaslError::MalformedChallenge),
    }
}
