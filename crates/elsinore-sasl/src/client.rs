//! The client side of one SASL exchange.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use subtle::ConstantTimeEq;

use crate::crypto::{HashAlg, xor};
use crate::digest;
use crate::scram::{self, Attrs};
use crate::{
    ChannelBinding, MAX_ITERATIONS, MAX_MESSAGE_BYTES, MAX_NONCE_BYTES, MIN_ITERATIONS, Mechanism,
    SaslError, prep,
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
    binding: ChannelBinding,
    digest_service: String,
    digest_host: Option<String>,
    /// ANONYMOUS trace information.
    trace: String,
    state: State,
}

enum State {
    Start,
    /// PLAIN, EXTERNAL or ANONYMOUS: the only message was sent.
    PlainSent,
    ScramFirstSent {
        alg: HashAlg,
        /// What `c=` carries: the GS2 header, plus the binding data for `p=`.
        cbind: Vec<u8>,
        client_first_bare: String,
    },
    /// DIGEST-MD5: the digest-response was sent; `rspauth` is expected.
    DigestSent {
        rspauth: String,
    },
    /// DIGEST-MD5: `rspauth` arrived as a challenge and matched.
    DigestVerified {
        rspauth: String,
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
    /// Prepares an exchange. `authcid` and `password` are SASLprep'd; an empty `authzid` (or
    /// one that SASLprep maps to nothing) is the same as none. `nonce` is the SCRAM client nonce or DIGEST-MD5 cnonce: fresh random
    /// printable ASCII without `,`, 1..=[`MAX_NONCE_BYTES`] bytes (unused by PLAIN).
    ///
    /// Same as [`new_with_binding`](Self::new_with_binding) without a channel binding: a
    /// -PLUS mechanism fails with [`SaslError::MechanismMismatch`], and so do EXTERNAL and
    /// ANONYMOUS (see [`external`](Self::external), [`anonymous`](Self::anonymous)).
    pub fn new(
        mech: Mechanism,
        authcid: &str,
        password: &str,
        authzid: Option<&str>,
        nonce: &str,
    ) -> Result<ClientSession, SaslError> {
        ClientSession::new_with_binding(
            mech,
            authcid,
            password,
            authzid,
            nonce,
            ChannelBinding::None,
        )
    }

    /// Prepares a password exchange with the TLS channel binding, if the adapter has one.
    ///
    /// -PLUS mechanisms need a binding and send `p=<type>`; the other SCRAM mechanisms send
    /// `y` when a binding is available (the client could bind but the server offered no
    /// -PLUS: a server that did offer it detects the downgrade) and `n` otherwise. Pick the
    /// mechanism with [`client_preference_with_binding`](crate::client_preference_with_binding)
    /// so that `y` is only sent when no -PLUS was offered.
    pub fn new_with_binding(
        mech: Mechanism,
        authcid: &str,
        password: &str,
        authzid: Option<&str>,
        nonce: &str,
        binding: ChannelBinding,
    ) -> Result<ClientSession, SaslError> {
        if !mech.uses_credentials() || (mech.is_plus() && !binding.is_available()) {
            return Err(SaslError::MechanismMismatch);
        }
        let authcid = String::from(prep::saslprep(authcid)?);
        if authcid.is_empty() {
            return Err(SaslError::EmptyAuthcid);
        }
        let password = String::from(prep::saslprep(password)?);
        if password.is_empty() {
            return Err(SaslError::EmptyPassword);
        }
        // An authzid that prepares to nothing (e.g. only U+00AD) is none as well: sent as
        // `authzid=""` (DIGEST-MD5) or `a=` (SCRAM) it would break the exchange.
        let authzid = match authzid {
            Some(a) if !a.is_empty() => Some(String::from(prep::saslprep(a)?)),
            _ => None,
        }
        .filter(|a| !a.is_empty());
        if mech != Mechanism::Plain && !scram::valid_nonce(nonce) {
            return Err(SaslError::InvalidNonce);
        }
        // Escaping can triple a name; keep every message we send within the limit.
        let longest = 3 * (authcid.len() + authzid.as_ref().map_or(0, String::len))
            + password.len()
            + nonce.len()
            + 4 * crate::MAX_CHANNEL_BINDING_BYTES / 3
            + 64;
        if longest > MAX_MESSAGE_BYTES {
            return Err(SaslError::TooLong);
        }
        // The binding data is only used when valid; drop an unusable one.
        let binding = if binding.is_available() {
            binding
        } else {
            ChannelBinding::None
        };
        Ok(ClientSession {
            mech,
            authcid,
            password,
            authzid,
            nonce: String::from(nonce),
            binding,
            digest_service: String::from("xmpp"),
            digest_host: None,
            trace: String::new(),
            state: State::Start,
        })
    }

    /// An EXTERNAL exchange (RFC 4422 appendix A): the identity comes from the TLS client
    /// certificate; `authzid` (empty or none: act as that identity) is the only message.
    pub fn external(authzid: Option<&str>) -> Result<ClientSession, SaslError> {
        let authzid = authzid.filter(|a| !a.is_empty()).map(String::from);
        if authzid
            .as_ref()
            .is_some_and(|a| a.len() > 3071 || a.contains('\0'))
        {
            return Err(SaslError::TooLong);
        }
        Ok(ClientSession::bare(
            Mechanism::External,
            authzid,
            String::new(),
        ))
    }

    /// An ANONYMOUS exchange (RFC 4505) with optional trace information (at most 255
    /// characters, no control characters).
    pub fn anonymous(trace: Option<&str>) -> Result<ClientSession, SaslError> {
        let trace = trace.unwrap_or("");
        if trace.chars().count() > 255 || trace.chars().any(char::is_control) {
            return Err(SaslError::TooLong);
        }
        Ok(ClientSession::bare(
            Mechanism::Anonymous,
            None,
            String::from(trace),
        ))
    }

    fn bare(mech: Mechanism, authzid: Option<String>, trace: String) -> ClientSession {
        ClientSession {
            mech,
            authcid: String::new(),
            password: String::new(),
            authzid,
            nonce: String::new(),
            binding: ChannelBinding::None,
            digest_service: String::from("xmpp"),
            digest_host: None,
            trace,
            state: State::Start,
        }
    }

    /// Sets the DIGEST-MD5 `digest-uri` (`service/host`); the default is `xmpp` and the
    /// realm the server offers (the server's domain). Longer than 1024 bytes: ignored.
    pub fn with_digest_uri(mut self, service: &str, host: &str) -> ClientSession {
        if service.len() + host.len() <= 1024 {
            self.digest_service = String::from(service);
            self.digest_host = Some(String::from(host));
        }
        self
    }

    /// Whether `<auth/>` carries an initial response (`false` for DIGEST-MD5, where the
    /// server speaks first: send `<auth/>` without text, not `=`).
    pub fn has_initial_response(&self) -> bool {
        self.mech != Mechanism::DigestMd5
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// The initial response for `<auth/>`: the PLAIN message, SCRAM client-first message,
    /// EXTERNAL authzid or ANONYMOUS trace (the last two may be empty: send `=`). Empty for
    /// DIGEST-MD5, which has none ([`has_initial_response`](Self::has_initial_response)).
    ///
    /// Calling it again returns the same bytes without changing the state.
    pub fn initial_response(&mut self) -> Vec<u8> {
        let first = matches!(self.state, State::Start);
        match (self.mech, self.mech.scram_hash()) {
            (Mechanism::DigestMd5, _) => Vec::new(),
            (_, Some(alg)) => {
                let flag = match self.binding.type_name() {
                    Some(name) if self.mech.is_plus() => format!("p={name}"),
                    // Able to bind, but the server offered no -PLUS (RFC 5802 §6).
                    Some(_) => String::from("y"),
                    None => String::from("n"),
                };
                let gs2_header = match &self.authzid {
                    Some(a) => format!("{flag},a={},", scram::escape_saslname(a)),
                    None => format!("{flag},,"),
                };
                let client_first_bare = format!(
                    "n={},r={}",
                    scram::escape_saslname(&self.authcid),
                    self.nonce
                );
                let out = format!("{gs2_header}{client_first_bare}").into_bytes();
                if first {
                    let mut cbind = gs2_header.into_bytes();
                    if self.mech.is_plus() {
                        cbind.extend_from_slice(self.binding.data());
                    }
                    self.state = State::ScramFirstSent {
                        alg,
                        cbind,
                        client_first_bare,
                    };
                }
                out
            }
            (mech, None) => {
                let out = match mech {
                    Mechanism::External => self.authzid.clone().unwrap_or_default().into_bytes(),
                    Mechanism::Anonymous => self.trace.clone().into_bytes(),
                    _ => {
                        let mut out = Vec::new();
                        if let Some(a) = &self.authzid {
                            out.extend_from_slice(a.as_bytes());
                        }
                        out.push(0);
                        out.extend_from_slice(self.authcid.as_bytes());
                        out.push(0);
                        out.extend_from_slice(self.password.as_bytes());
                        out
                    }
                };
                if first {
                    self.state = State::PlainSent;
                }
                out
            }
        }
    }

    /// Ends the exchange locally (after sending `<abort/>`); every later call fails.
    pub fn abort(&mut self) {
        self.state = State::Failed;
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
            State::Start if self.mech == Mechanism::DigestMd5 => {
                let (response, rspauth) = self.digest_response(data)?;
                self.state = State::DigestSent { rspauth };
                Ok(response)
            }
            State::Start if data.is_empty() => {
                self.state = State::Start;
                Ok(self.initial_response())
            }
            State::DigestSent { rspauth } => {
                verify_rspauth(&rspauth, data)?;
                self.state = State::DigestVerified { rspauth };
                Ok(Vec::new())
            }
            State::ScramFirstSent {
                alg,
                cbind,
                client_first_bare,
            } => {
                let (response, server_signature) =
                    self.client_final(alg, &cbind, &client_first_bare, data)?;
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
            (State::PlainSent, _) | (State::DigestVerified { .. }, None) => Ok(()),
            (State::DigestSent { rspauth }, Some(data))
            | (State::DigestVerified { rspauth }, Some(data)) => verify_rspauth(rspauth, data),
            (State::DigestSent { .. }, None) => Err(SaslError::MissingServerSignature),
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
        cbind: &[u8],
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
        let without_proof = format!("c={},r={nonce}", scram::encode_b64(cbind));
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

impl ClientSession {
    /// Answers a DIGEST-MD5 digest-challenge; returns the digest-response and the `rspauth`
    /// value the server must send back.
    fn digest_response(&self, data: &[u8]) -> Result<(Vec<u8>, String), SaslError> {
        use SaslError::MalformedChallenge;
        if data.len() > digest::MAX_DIGEST_MESSAGE_BYTES {
            return Err(SaslError::TooLong);
        }
        let text = core::str::from_utf8(data).map_err(|_| MalformedChallenge)?;
        let dirs = digest::parse_directives(text).ok_or(MalformedChallenge)?;
        let get = |name: &str| digest::unique(&dirs, name).map_err(|()| MalformedChallenge);
        let nonce = get("nonce")?.ok_or(MalformedChallenge)?;
        if nonce.is_empty() || nonce.len() > MAX_NONCE_BYTES {
            return Err(SaslError::InvalidNonce);
        }
        // algorithm=md5-sess is required; charset only utf-8; qop must allow auth.
        if !get("algorithm")?.is_some_and(|a| a.eq_ignore_ascii_case("md5-sess")) {
            return Err(MalformedChallenge);
        }
        let utf8 = match get("charset")? {
            None => false,
            Some(c) if c.eq_ignore_ascii_case("utf-8") => true,
            Some(_) => return Err(MalformedChallenge),
        };
        let qop_auth = get("qop")?.is_none_or(|q| {
            q.split(',')
                .any(|o| o.trim_matches([' ', '\t']).eq_ignore_ascii_case("auth"))
        });
        if !qop_auth {
            return Err(MalformedChallenge);
        }
        for name in ["stale", "maxbuf", "cipher"] {
            get(name)?;
        }
        let realms: Vec<&str> = dirs
            .iter()
            .filter(|d| d.name.eq_ignore_ascii_case("realm"))
            .map(|d| d.value.as_ref())
            .collect();
        // Our configured host if the server offers it, else its first realm, else the host.
        let realm = match &self.digest_host {
            Some(h) if realms.iter().any(|r| r.eq_ignore_ascii_case(h)) || realms.is_empty() => {
                h.as_str()
            }
            _ => realms.first().copied().ok_or(MalformedChallenge)?,
        };
        let host = self.digest_host.as_deref().unwrap_or(realm);
        let digest_uri = format!("{}/{host}", self.digest_service);
        // Without charset=utf-8 everything must be ISO 8859-1; ASCII is safe.
        let strings_ok = self.authcid.is_ascii()
            && self.password.is_ascii()
            && self.authzid.as_deref().is_none_or(str::is_ascii)
            && realm.is_ascii();
        if !utf8 && !strings_ok {
            return Err(SaslError::Prep);
        }
        let user_hash = digest::user_hash(&self.authcid, realm, &self.password);
        let input = digest::ResponseInput {
            user_hash: &user_hash,
            nonce,
            cnonce: &self.nonce,
            nc: digest::NONCE_COUNT,
            digest_uri: &digest_uri,
            authzid: self.authzid.as_deref(),
        };
        let mut out = String::new();
        if utf8 {
            out.push_str("charset=utf-8,");
        }
        out.push_str("username=");
        digest::push_quoted(&mut out, &self.authcid);
        out.push_str(",realm=");
        digest::push_quoted(&mut out, realm);
        out.push_str(",nonce=");
        digest::push_quoted(&mut out, nonce);
        out.push_str(",nc=");
        out.push_str(digest::NONCE_COUNT);
        out.push_str(",cnonce=");
        digest::push_quoted(&mut out, &self.nonce);
        out.push_str(",digest-uri=");
        digest::push_quoted(&mut out, &digest_uri);
        out.push_str(",response=");
        out.push_str(&input.response());
        out.push_str(",qop=auth");
        if let Some(z) = &self.authzid {
            out.push_str(",authzid=");
            digest::push_quoted(&mut out, z);
        }
        if out.len() > digest::MAX_DIGEST_MESSAGE_BYTES {
            return Err(SaslError::TooLong);
        }
        Ok((out.into_bytes(), input.rspauth()))
    }
}

/// Checks a DIGEST-MD5 `rspauth=` message against the expected value.
fn verify_rspauth(expected: &str, data: &[u8]) -> Result<(), SaslError> {
    let text = core::str::from_utf8(data).map_err(|_| SaslError::MalformedChallenge)?;
    let dirs = digest::parse_directives(text).ok_or(SaslError::MalformedChallenge)?;
    let got = digest::unique(&dirs, "rspauth")
        .map_err(|()| SaslError::MalformedChallenge)?
        .ok_or(SaslError::MalformedChallenge)?;
    if !digest::is_hex32(got) {
        return Err(SaslError::MalformedChallenge);
    }
    let got = got.to_ascii_lowercase();
    if bool::from(got.as_bytes().ct_eq(expected.as_bytes())) {
        Ok(())
    } else {
        Err(SaslError::ServerSignatureMismatch)
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
