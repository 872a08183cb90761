//! The server side of one SASL exchange.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use subtle::{Choice, ConstantTimeEq};

use crate::crypto::{HashAlg, xor};
use crate::scram::{self, Attrs, CbindFlag};
use crate::{MAX_MESSAGE_BYTES, MIN_ITERATIONS, Mechanism, SaslFailure, StoredCredentials, prep};

/// What the server must do next in an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerStep {
    /// Load the account's credentials for `authcid` and call
    /// [`ServerSession::provide_credentials`] (with `None` if there is no such account).
    NeedCredentials {
        /// The SASLprep'd authentication identity (for XMPP, the localpart to look up).
        authcid: String,
        /// The SASLprep'd authorization identity the client asked for, if any.
        authzid: Option<String>,
    },
    /// Send this challenge (raw bytes; possibly empty) and pass the client's answer to
    /// [`ServerSession::response`].
    Challenge(Vec<u8>),
    /// Authentication succeeded; send `<success/>` with the additional data, if any.
    Success {
        /// The authenticated identity.
        authcid: String,
        /// The requested authorization identity, still to be checked by the caller.
        authzid: Option<String>,
        /// Additional data for `<success/>` (the SCRAM server-final message).
        additional: Option<Vec<u8>>,
    },
    /// Authentication failed; send `<failure/>` with this condition. The session is over.
    Failure(SaslFailure),
}

/// The server side of one authentication exchange.
///
/// Created by [`ServerSession::start`]; every method returns the next [`ServerStep`]. After
/// `Success` or `Failure` every further call fails with `malformed-request`.
pub struct ServerSession {
    mech: Mechanism,
    server_nonce: String,
    decoy_secret: Vec<u8>,
    decoy_iterations: u32,
    state: State,
}

#[derive(Clone)]
struct Identity {
    authcid: String,
    authzid: Option<String>,
}

enum State {
    /// PLAIN without initial response: the empty challenge was sent.
    PlainAwaitResponse,
    PlainAwaitCredentials {
        ident: Identity,
        password: String,
    },
    /// SCRAM without initial response: the empty challenge was sent.
    ScramAwaitFirst(HashAlg),
    ScramAwaitCredentials {
        alg: HashAlg,
        ident: Identity,
        gs2_header: String,
        client_first_bare: String,
        client_nonce: String,
    },
    ScramAwaitFinal {
        alg: HashAlg,
        ident: Identity,
        gs2_header: String,
        /// `client-first-message-bare "," server-first-message ","`.
        auth_prefix: String,
        nonce: String,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        /// `false` for a decoy exchange (unknown account): it must fail at the end.
        known: bool,
    },
    Done,
}

/// Salt length of decoy challenges (the usual length of real salts).
const DECOY_SALT_BYTES: usize = 16;

impl core::fmt::Debug for ServerSession {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let state = match &self.state {
            State::PlainAwaitResponse => "PlainAwaitResponse",
            State::PlainAwaitCredentials { .. } => "PlainAwaitCredentials",
            State::ScramAwaitFirst(_) => "ScramAwaitFirst",
            State::ScramAwaitCredentials { .. } => "ScramAwaitCredentials",
            State::ScramAwaitFinal { .. } => "ScramAwaitFinal",
            State::Done => "Done",
        };
        f.debug_struct("ServerSession")
            .field("mech", &self.mech)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    /// Starts an exchange for `mech` with the client's initial response, if it sent one.
    ///
    /// `nonce` is this server's SCRAM nonce part: fresh random printable ASCII without `,`
    /// (1..=[`MAX_NONCE_BYTES`](crate::MAX_NONCE_BYTES) bytes; 18+ random bytes in base64 is
    /// usual). An invalid nonce is a local error: the step is `temporary-auth-failure`.
    pub fn start(
        mech: Mechanism,
        initial_response: Option<&[u8]>,
        nonce: &str,
    ) -> (ServerSession, ServerStep) {
        let mut session = ServerSession {
            mech,
            server_nonce: String::from(nonce),
            decoy_secret: Vec::new(),
            decoy_iterations: MIN_ITERATIONS,
            state: State::Done,
        };
        if mech.scram_hash().is_some() && !scram::valid_nonce(nonce) {
            return (
                session,
                ServerStep::Failure(SaslFailure::TemporaryAuthFailure),
            );
        }
        let step = match (mech.scram_hash(), initial_response) {
            (None, None) => {
                session.state = State::PlainAwaitResponse;
                ServerStep::Challenge(Vec::new())
            }
            (None, Some(data)) => session.plain_message(data),
            (Some(alg), None) => {
                session.state = State::ScramAwaitFirst(alg);
                ServerStep::Challenge(Vec::new())
            }
            (Some(alg), Some(data)) => session.scram_first(alg, data),
        };
        (session, step)
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mech
    }

    /// Keys the decoy challenge sent for unknown accounts with a server secret, and sets
    /// its iteration count (use the count real accounts are created with).
    ///
    /// Without a secret the decoy salt is a public function of the username, so an attacker
    /// who knows it can tell decoys from real accounts; with one, a decoy looks like a real
    /// account whose salt never changes.
    pub fn set_unknown_user_decoy(&mut self, secret: &[u8], iterations: u32) {
        self.decoy_secret = secret.to_vec();
        self.decoy_iterations = iterations.clamp(1, crate::MAX_ITERATIONS);
    }

    /// Resumes after [`ServerStep::NeedCredentials`] with the account's credentials, or
    /// `None` if there is no such account (the exchange then fails with `not-authorized`
    /// at the point where a wrong password would).
    pub fn provide_credentials(&mut self, creds: Option<&StoredCredentials>) -> ServerStep {
        if creds.is_some_and(|c| !c.is_valid()) {
            // Corrupt store entry: a server problem, not the client's.
            return self.fail(SaslFailure::TemporaryAuthFailure);
        }
        match core::mem::replace(&mut self.state, State::Done) {
            State::PlainAwaitCredentials { ident, password } => {
                self.plain_verify(ident, &password, creds)
            }
            State::ScramAwaitCredentials {
                alg,
                ident,
                gs2_header,
                client_first_bare,
                client_nonce,
            } => self.scram_server_first(
                alg,
                ident,
                gs2_header,
                client_first_bare,
                &client_nonce,
                creds,
            ),
            // Credentials were not asked for: the caller misused the session.
            _ => ServerStep::Failure(SaslFailure::TemporaryAuthFailure),
        }
    }

    /// Handles a `<response/>` from the client (raw bytes, base64 already decoded).
    pub fn response(&mut self, data: &[u8]) -> ServerStep {
        if data.len() > MAX_MESSAGE_BYTES {
            return self.fail(SaslFailure::MalformedRequest);
        }
        match core::mem::replace(&mut self.state, State::Done) {
            State::PlainAwaitResponse => self.plain_message(data),
            State::ScramAwaitFirst(alg) => self.scram_first(alg, data),
            State::ScramAwaitFinal {
                alg,
                ident,
                gs2_header,
                auth_prefix,
                nonce,
                stored_key,
                server_key,
                known,
            } => {
                let verifier = Verifier {
                    alg,
                    gs2_header: &gs2_header,
                    auth_prefix: &auth_prefix,
                    nonce: &nonce,
                    stored_key: &stored_key,
                    server_key: &server_key,
                    known,
                };
                match verifier.verify(data) {
                    Ok(server_final) => ServerStep::Success {
                        authcid: ident.authcid,
                        authzid: ident.authzid,
                        additional: Some(server_final),
                    },
                    Err(failure) => ServerStep::Failure(failure),
                }
            }
            // A response while waiting for credentials, or after the end.
            _ => ServerStep::Failure(SaslFailure::MalformedRequest),
        }
    }

    /// Ends the exchange because the client sent `<abort/>` (answer `aborted`).
    pub fn abort(&mut self) {
        self.state = State::Done;
    }

    fn fail(&mut self, failure: SaslFailure) -> ServerStep {
        self.state = State::Done;
        ServerStep::Failure(failure)
    }

    // -- PLAIN (RFC 4616) ------------------------------------------------------------------

    /// Parses `[authzid] NUL authcid NUL passwd`.
    fn plain_message(&mut self, data: &[u8]) -> ServerStep {
        if data.len() > MAX_MESSAGE_BYTES {
            return self.fail(SaslFailure::MalformedRequest);
        }
        let Ok(text) = core::str::from_utf8(data) else {
            return self.fail(SaslFailure::MalformedRequest);
        };
        let mut parts = text.split('\0');
        let (Some(authzid), Some(authcid), Some(password), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return self.fail(SaslFailure::MalformedRequest);
        };
        if authcid.is_empty() || password.is_empty() {
            return self.fail(SaslFailure::MalformedRequest);
        }
        let Ok(authcid) = prep::saslprep(authcid) else {
            return self.fail(SaslFailure::MalformedRequest);
        };
        let authzid = if authzid.is_empty() {
            None
        } else {
            match prep::saslprep(authzid) {
                Ok(a) => Some(String::from(a)),
                Err(_) => return self.fail(SaslFailure::InvalidAuthzid),
            }
        };
        // A password that cannot be prepared cannot match any stored key.
        let Ok(password) = prep::saslprep(password) else {
            return self.fail(SaslFailure::NotAuthorized);
        };
        if authcid.is_empty() || password.is_empty() {
            return self.fail(SaslFailure::MalformedRequest);
        }
        let ident = Identity {
            authcid: String::from(authcid),
            authzid,
        };
        self.state = State::PlainAwaitCredentials {
            ident: ident.clone(),
            password: String::from(password),
        };
        ServerStep::NeedCredentials {
            authcid: ident.authcid,
            authzid: ident.authzid,
        }
    }

    /// Checks a PLAIN password against the SCRAM-SHA-256 StoredKey.
    fn plain_verify(
        &mut self,
        ident: Identity,
        password: &str,
        creds: Option<&StoredCredentials>,
    ) -> ServerStep {
        let alg = HashAlg::Sha256;
        let (salt, iterations, stored_key, known) = match creds {
            Some(c) => (
                c.sha256.salt.clone(),
                c.sha256.iterations,
                c.sha256.stored_key.clone(),
                true,
            ),
            // Same work for an unknown account, so timing does not tell it apart.
            None => (
                self.decoy_salt(alg, &ident.authcid),
                self.decoy_iterations,
                self.decoy_key(alg, b"stored", &ident.authcid),
                false,
            ),
        };
        let keys = alg.keys(password.as_bytes(), &salt, iterations);
        let ok = keys.stored_key.ct_eq(&stored_key) & Choice::from(u8::from(known));
        self.state = State::Done;
        if bool::from(ok) {
            ServerStep::Success {
                authcid: ident.authcid,
                authzid: ident.authzid,
                additional: None,
            }
        } else {
            ServerStep::Failure(SaslFailure::NotAuthorized)
        }
    }

    // -- SCRAM (RFC 5802) ------------------------------------------------------------------

    /// Parses the client-first message.
    fn scram_first(&mut self, alg: HashAlg, data: &[u8]) -> ServerStep {
        match parse_client_first(data) {
            Ok((ident, gs2_header, client_first_bare, client_nonce)) => {
                self.state = State::ScramAwaitCredentials {
                    alg,
                    ident: ident.clone(),
                    gs2_header,
                    client_first_bare,
                    client_nonce,
                };
                ServerStep::NeedCredentials {
                    authcid: ident.authcid,
                    authzid: ident.authzid,
                }
            }
            Err(failure) => self.fail(failure),
        }
    }

    /// Sends the server-first message (real or decoy).
    fn scram_server_first(
        &mut self,
        alg: HashAlg,
        ident: Identity,
        gs2_header: String,
        client_first_bare: String,
        client_nonce: &str,
        creds: Option<&StoredCredentials>,
    ) -> ServerStep {
        let (salt, iterations, stored_key, server_key, known) = match creds {
            Some(c) => {
                let s = c.for_alg(alg);
                (
                    s.salt.clone(),
                    s.iterations,
                    s.stored_key.clone(),
                    s.server_key.clone(),
                    true,
                )
            }
            None => (
                self.decoy_salt(alg, &ident.authcid),
                self.decoy_iterations,
                self.decoy_key(alg, b"stored", &ident.authcid),
                self.decoy_key(alg, b"server", &ident.authcid),
                false,
            ),
        };
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!("r={nonce},s={},i={iterations}", scram::encode_b64(&salt));
        let auth_prefix = format!("{client_first_bare},{server_first},");
        self.state = State::ScramAwaitFinal {
            alg,
            ident,
            gs2_header,
            auth_prefix,
            nonce,
            stored_key,
            server_key,
            known,
        };
        ServerStep::Challenge(server_first.into_bytes())
    }

    /// A salt for an unknown account: stable per (secret, mechanism, username).
    fn decoy_salt(&self, alg: HashAlg, authcid: &str) -> Vec<u8> {
        let mut salt = HashAlg::Sha256.hmac(
            &self.decoy_secret,
            &[
                b"elsinore decoy salt\0",
                alg_label(alg),
                b"\0",
                authcid.as_bytes(),
            ],
        );
        salt.truncate(DECOY_SALT_BYTES);
        salt
    }

    /// A key-shaped value for a decoy exchange; never matches (the exchange is `known: false`).
    fn decoy_key(&self, alg: HashAlg, which: &[u8], authcid: &str) -> Vec<u8> {
        alg.hmac(
            &self.decoy_secret,
            &[b"elsinore decoy key\0", which, b"\0", authcid.as_bytes()],
        )
    }
}

fn alg_label(alg: HashAlg) -> &'static [u8] {
    match alg {
        HashAlg::Sha1 => b"SHA-1",
        HashAlg::Sha256 => b"SHA-256",
    }
}

/// Parses a client-first message into (identity, gs2 header, client-first-bare, nonce).
fn parse_client_first(data: &[u8]) -> Result<(Identity, String, String, String), SaslFailure> {
    use SaslFailure::{InvalidAuthzid, MalformedRequest};
    if data.len() > MAX_MESSAGE_BYTES {
        return Err(MalformedRequest);
    }
    let msg = core::str::from_utf8(data).map_err(|_| MalformedRequest)?;
    let (gs2, bare) = scram::split_gs2(msg).ok_or(MalformedRequest)?;
    match gs2.flag {
        // `y`: the client could bind but thinks we cannot, which is true (no -PLUS offered).
        CbindFlag::No | CbindFlag::ClientOnly => {}
        // `p=` on a non-PLUS mechanism is a protocol violation.
        CbindFlag::Required(_) => return Err(MalformedRequest),
    }
    let authzid = match gs2.authzid {
        None => None,
        Some(escaped) => {
            let name = scram::unescape_saslname(escaped).ok_or(MalformedRequest)?;
            let prepped = prep::saslprep(&name).map_err(|_| InvalidAuthzid)?;
            if prepped.is_empty() {
                return Err(InvalidAuthzid);
            }
            Some(String::from(prepped))
        }
    };
    let mut attrs = Attrs::new(bare);
    // `m=` (reserved for mandatory extensions) in first position fails here too.
    let Some(Some((b'n', name))) = attrs.next() else {
        return Err(MalformedRequest);
    };
    let Some(Some((b'r', client_nonce))) = attrs.next() else {
        return Err(MalformedRequest);
    };
    if !scram::valid_nonce(client_nonce) {
        return Err(MalformedRequest);
    }
    // Optional extensions: ignored, but they must be well-formed.
    if attrs.any(|a| a.is_none()) {
        return Err(MalformedRequest);
    }
    let name = scram::unescape_saslname(name).ok_or(MalformedRequest)?;
    let authcid = prep::saslprep(&name).map_err(|_| MalformedRequest)?;
    if authcid.is_empty() {
        return Err(MalformedRequest);
    }
    Ok((
        Identity {
            authcid: String::from(authcid),
            authzid,
        },
        String::from(gs2.raw),
        String::from(bare),
        String::from(client_nonce),
    ))
}

/// What is needed to check a client-final message.
struct Verifier<'a> {
    alg: HashAlg,
    gs2_header: &'a str,
    auth_prefix: &'a str,
    nonce: &'a str,
    stored_key: &'a [u8],
    server_key: &'a [u8],
    known: bool,
}

impl Verifier<'_> {
    /// Checks the client-final message; returns the server-final message.
    fn verify(&self, data: &[u8]) -> Result<Vec<u8>, SaslFailure> {
        use SaslFailure::{MalformedRequest, NotAuthorized};
        let msg = core::str::from_utf8(data).map_err(|_| MalformedRequest)?;
        // The proof is the last attribute; everything before it is signed.
        let (without_proof, proof_b64) = msg.rsplit_once(",p=").ok_or(MalformedRequest)?;
        let mut attrs = Attrs::new(without_proof);
        let Some(Some((b'c', cbind_b64))) = attrs.next() else {
            return Err(MalformedRequest);
        };
        let Some(Some((b'r', nonce))) = attrs.next() else {
            return Err(MalformedRequest);
        };
        if attrs.any(|a| a.is_none()) {
            return Err(MalformedRequest);
        }
        let cbind = scram::decode_b64(cbind_b64, MAX_MESSAGE_BYTES).ok_or(MalformedRequest)?;
        // Without channel binding, c= is the GS2 header exactly (RFC 5802 §7).
        if cbind != self.gs2_header.as_bytes() {
            return Err(NotAuthorized);
        }
        if nonce != self.nonce {
            return Err(NotAuthorized);
        }
        let proof = scram::decode_b64(proof_b64, self.alg.len()).ok_or(MalformedRequest)?;
        if proof.len() != self.alg.len() {
            return Err(MalformedRequest);
        }
        let auth_message = [self.auth_prefix.as_bytes(), without_proof.as_bytes()];
        let client_signature = self.alg.hmac(self.stored_key, &auth_message);
        let client_key = xor(&proof, &client_signature);
        let ok =
            self.alg.hash(&client_key).ct_eq(self.stored_key) & Choice::from(u8::from(self.known));
        if !bool::from(ok) {
            return Err(NotAuthorized);
        }
        let server_signature = self.alg.hmac(self.server_key, &auth_message);
        Ok(format!("v={}", scram::encode_b64(&server_signature)).into_bytes())
    }
}
