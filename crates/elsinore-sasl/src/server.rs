//! The server side of one SASL exchange.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use subtle::{Choice, ConstantTimeEq};

use crate::crypto::{HashAlg, xor};
use crate::digest;
use crate::scram::{self, Attrs, CbindFlag};
use crate::{
    ChannelBinding, MAX_MESSAGE_BYTES, MAX_NONCE_BYTES, MIN_ITERATIONS, Mechanism, SaslFailure,
    StoredCredentials, prep,
};

/// What the server knows about the connection, for [`ServerSession::start_with`].
#[derive(Debug, Clone, Default)]
pub struct ServerContext {
    /// This server's nonce part (SCRAM) or nonce (DIGEST-MD5): fresh random printable ASCII
    /// without `,`, 1..=[`MAX_NONCE_BYTES`] bytes.
    pub nonce: String,
    /// Channel bindings of the TLS connection (the adapter computes them; empty or
    /// [`ChannelBinding::None`] entries when there is none). A `p=` naming a type not here
    /// fails with `not-authorized`.
    pub channel_bindings: Vec<ChannelBinding>,
    /// Whether the advertised mechanism list contained a -PLUS mechanism. Then a client
    /// sending the GS2 flag `y` ("I could bind but you do not offer it") is under a
    /// downgrade attack and fails with `not-authorized` (RFC 5802 §6).
    pub plus_offered: bool,
    /// The identity the TLS adapter verified from the client certificate (a JID for c2s, a
    /// domain for s2s), for EXTERNAL. `None`: EXTERNAL fails with `not-authorized`.
    pub external_identity: Option<String>,
    /// The DIGEST-MD5 realm: the server's domain (the realm the accounts' DIGEST-MD5
    /// secrets were stored for). Empty: DIGEST-MD5 fails with `temporary-auth-failure`.
    pub realm: String,
    /// The DIGEST-MD5 `digest-uri` service type; empty means `xmpp`.
    pub service: String,
}

impl ServerContext {
    /// A context with just a nonce: no channel binding, no EXTERNAL identity, no realm.
    pub fn new(nonce: &str) -> ServerContext {
        ServerContext {
            nonce: String::from(nonce),
            ..ServerContext::default()
        }
    }
}

/// Longest ANONYMOUS trace kept, in characters (RFC 4505 §3).
const MAX_TRACE_CHARS: usize = 255;
/// Longest EXTERNAL authzid (a full JID is at most 3071 bytes).
const MAX_AUTHZID_BYTES: usize = 3071;

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
    ///
    /// For EXTERNAL `authcid` is the identity from [`ServerContext::external_identity`]. For
    /// ANONYMOUS `authcid` is empty and [`ServerSession::is_anonymous`] is true: the caller
    /// creates a temporary identity (an empty authcid is never a valid account, so a caller
    /// unaware of ANONYMOUS fails closed).
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
    ctx: ServerContext,
    decoy_secret: Vec<u8>,
    decoy_iterations: u32,
    anonymous: bool,
    trace: Option<String>,
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
        /// The expected `c=` content: GS2 header, then the binding data for `p=`.
        cbind: Vec<u8>,
        client_first_bare: String,
        client_nonce: String,
    },
    ScramAwaitFinal {
        alg: HashAlg,
        ident: Identity,
        cbind: Vec<u8>,
        /// `client-first-message-bare "," server-first-message ","`.
        auth_prefix: String,
        nonce: String,
        stored_key: Vec<u8>,
        server_key: Vec<u8>,
        /// `false` for a decoy exchange (unknown account): it must fail at the end.
        known: bool,
    },
    /// DIGEST-MD5: the digest-challenge was sent.
    DigestAwaitResponse,
    DigestAwaitCredentials {
        ident: Identity,
        resp: DigestResponse,
    },
    /// DIGEST-MD5: `rspauth` was sent; the client answers with an empty response.
    DigestAwaitAck(Identity),
    /// XEP-0078 `<digest/>`: waiting for the account's stored legacy password.
    LegacyDigestAwaitCredentials {
        ident: Identity,
        stream_id: String,
        /// Lower-case hex, as the client sent it (case folded).
        digest: String,
    },
    /// EXTERNAL or ANONYMOUS without initial response: the empty challenge was sent.
    ExternalAwaitResponse,
    AnonymousAwaitResponse,
    Done,
}

/// The parts of a DIGEST-MD5 digest-response needed after the credentials arrive.
struct DigestResponse {
    cnonce: String,
    digest_uri: String,
    /// Lower-case hex.
    response: String,
    /// The authzid exactly as sent (it enters A1 unprepared).
    authzid_raw: Option<String>,
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
            State::DigestAwaitResponse => "DigestAwaitResponse",
            State::DigestAwaitCredentials { .. } => "DigestAwaitCredentials",
            State::DigestAwaitAck(_) => "DigestAwaitAck",
            State::LegacyDigestAwaitCredentials { .. } => "LegacyDigestAwaitCredentials",
            State::ExternalAwaitResponse => "ExternalAwaitResponse",
            State::AnonymousAwaitResponse => "AnonymousAwaitResponse",
            State::Done => "Done",
        };
        f.debug_struct("ServerSession")
            .field("mech", &self.mech)
            .field("state", &state)
            .finish_non_exhaustive()
    }
}

impl ServerSession {
    /// A session for `mech` that has not started (state `Done` until a start sets it).
    fn idle(mech: Mechanism, ctx: ServerContext) -> ServerSession {
        ServerSession {
            mech,
            server_nonce: ctx.nonce.clone(),
            ctx,
            decoy_secret: Vec::new(),
            decoy_iterations: MIN_ITERATIONS,
            anonymous: false,
            trace: None,
            state: State::Done,
        }
    }

    /// Starts an exchange for `mech` with the client's initial response, if it sent one.
    ///
    /// `nonce` is this server's SCRAM nonce part: fresh random printable ASCII without `,`
    /// (1..=[`MAX_NONCE_BYTES`](crate::MAX_NONCE_BYTES) bytes; 18+ random bytes in base64 is
    /// usual). An invalid nonce is a local error: the step is `temporary-auth-failure`.
    /// Same as [`start_with`](Self::start_with) with [`ServerContext::new`]`(nonce)`: no
    /// channel binding (-PLUS fails), no EXTERNAL identity, no DIGEST-MD5 realm.
    pub fn start(
        mech: Mechanism,
        initial_response: Option<&[u8]>,
        nonce: &str,
    ) -> (ServerSession, ServerStep) {
        ServerSession::start_with(mech, initial_response, ServerContext::new(nonce))
    }

    /// Starts an exchange for `mech` with the client's initial response (`Some(&[])` for
    /// the empty response `=`), knowing the connection's channel bindings, EXTERNAL identity
    /// and DIGEST-MD5 realm.
    ///
    /// Mechanisms without an initial response (DIGEST-MD5) accept `Some(&[])` like `None`
    /// and refuse a non-empty one with `malformed-request`; client-first mechanisms
    /// without one get an empty challenge.
    pub fn start_with(
        mech: Mechanism,
        initial_response: Option<&[u8]>,
        ctx: ServerContext,
    ) -> (ServerSession, ServerStep) {
        let mut session = ServerSession::idle(mech, ctx);
        let needs_nonce = mech.scram_hash().is_some() || mech == Mechanism::DigestMd5;
        if needs_nonce && !scram::valid_nonce(&session.server_nonce) {
            return (
                session,
                ServerStep::Failure(SaslFailure::TemporaryAuthFailure),
            );
        }
        if initial_response.is_some_and(|d| d.len() > MAX_MESSAGE_BYTES) {
            return (session, ServerStep::Failure(SaslFailure::MalformedRequest));
        }
        let step = match (mech, initial_response) {
            (Mechanism::Plain, None) => {
                session.state = State::PlainAwaitResponse;
                ServerStep::Challenge(Vec::new())
            }
            (Mechanism::Plain, Some(data)) => session.plain_message(data),
            (Mechanism::DigestMd5, Some(data)) if !data.is_empty() => {
                session.fail(SaslFailure::MalformedRequest)
            }
            (Mechanism::DigestMd5, _) => session.digest_challenge(),
            (Mechanism::External, _) if session.ctx.external_identity.is_none() => {
                session.fail(SaslFailure::NotAuthorized)
            }
            (Mechanism::External, None) => {
                session.state = State::ExternalAwaitResponse;
                ServerStep::Challenge(Vec::new())
            }
            (Mechanism::External, Some(data)) => session.external_finish(data),
            (Mechanism::Anonymous, None) => {
                session.state = State::AnonymousAwaitResponse;
                ServerStep::Challenge(Vec::new())
            }
            (Mechanism::Anonymous, Some(data)) => session.anonymous_finish(data),
            (
                Mechanism::ScramSha1
                | Mechanism::ScramSha256
                | Mechanism::ScramSha1Plus
                | Mechanism::ScramSha256Plus,
                data,
            ) => match (mech.scram_hash(), data) {
                (Some(alg), None) => {
                    session.state = State::ScramAwaitFirst(alg);
                    ServerStep::Challenge(Vec::new())
                }
                (Some(alg), Some(data)) => session.scram_first(alg, data),
                // Every SCRAM mechanism has a hash.
                (None, _) => session.fail(SaslFailure::TemporaryAuthFailure),
            },
        };
        (session, step)
    }

    /// Starts checking a XEP-0078 `jabber:iq:auth` set with `<digest/>`: lower-case hex of
    /// SHA1(`stream_id` ‖ password). The next step asks for `username`'s credentials; only
    /// accounts stored with a legacy password
    /// ([`StoredCredentials::with_legacy_password`]) can pass, others fail with
    /// `not-authorized` like a wrong digest. [`mechanism`](Self::mechanism) reports PLAIN,
    /// the password login this stands in for.
    pub fn start_legacy_digest(
        username: &str,
        stream_id: &str,
        digest: &str,
    ) -> (ServerSession, ServerStep) {
        let mut session = ServerSession::idle(Mechanism::Plain, ServerContext::new(""));
        let well_formed = digest.len() == 40 && digest.bytes().all(|b| b.is_ascii_hexdigit());
        if !well_formed || username.len() > MAX_MESSAGE_BYTES || stream_id.len() > MAX_NONCE_BYTES {
            return (session, ServerStep::Failure(SaslFailure::MalformedRequest));
        }
        let authcid = match prep::saslprep(username) {
            Ok(a) if !a.is_empty() => String::from(a),
            _ => return (session, ServerStep::Failure(SaslFailure::MalformedRequest)),
        };
        let ident = Identity {
            authcid,
            authzid: None,
        };
        session.state = State::LegacyDigestAwaitCredentials {
            ident: ident.clone(),
            stream_id: String::from(stream_id),
            digest: digest.to_ascii_lowercase(),
        };
        let step = ServerStep::NeedCredentials {
            authcid: ident.authcid,
            authzid: None,
        };
        (session, step)
    }

    /// Whether the exchange succeeded as ANONYMOUS: the caller must create a temporary
    /// identity (a generated localpart or resource) instead of using the empty authcid.
    pub fn is_anonymous(&self) -> bool {
        self.anonymous
    }

    /// The ANONYMOUS trace information the client sent (at most 255 characters), if any.
    /// For logs only: it is unverified.
    pub fn anonymous_trace(&self) -> Option<&str> {
        self.trace.as_deref()
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
                cbind,
                client_first_bare,
                client_nonce,
            } => {
                self.scram_server_first(alg, ident, cbind, client_first_bare, &client_nonce, creds)
            }
            State::DigestAwaitCredentials { ident, resp } => {
                self.digest_verify(ident, &resp, creds)
            }
            State::LegacyDigestAwaitCredentials {
                ident,
                stream_id,
                digest,
            } => {
                let expected = creds
                    .and_then(|c| c.legacy_password.as_deref())
                    .map(|p| crate::legacy::legacy_digest(&stream_id, p));
                // Both are 40 hex digits here, so only the content comparison is timed.
                let ok =
                    expected.is_some_and(|e| bool::from(e.as_bytes().ct_eq(digest.as_bytes())));
                if ok {
                    ServerStep::Success {
                        authcid: ident.authcid,
                        authzid: None,
                        additional: None,
                    }
                } else {
                    ServerStep::Failure(SaslFailure::NotAuthorized)
                }
            }
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
            State::DigestAwaitResponse => self.digest_response(data),
            State::DigestAwaitAck(ident) if data.is_empty() => ServerStep::Success {
                authcid: ident.authcid,
                authzid: ident.authzid,
                additional: None,
            },
            State::ExternalAwaitResponse => self.external_finish(data),
            State::AnonymousAwaitResponse => self.anonymous_finish(data),
            State::ScramAwaitFinal {
                alg,
                ident,
                cbind,
                auth_prefix,
                nonce,
                stored_key,
                server_key,
                known,
            } => {
                let verifier = Verifier {
                    alg,
                    cbind: &cbind,
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
            // A response while waiting for credentials, a non-empty answer to rspauth, or
            // anything after the end.
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

    // -- EXTERNAL (RFC 4422 appendix A) and ANONYMOUS (RFC 4505) ---------------------------

    /// The EXTERNAL message is the authzid: empty (act as the verified identity) or equal
    /// to it (XEP-0178: anything else is `invalid-authzid`).
    fn external_finish(&mut self, data: &[u8]) -> ServerStep {
        self.state = State::Done;
        let Some(identity) = self.ctx.external_identity.clone() else {
            return ServerStep::Failure(SaslFailure::NotAuthorized);
        };
        if data.len() > MAX_AUTHZID_BYTES {
            return ServerStep::Failure(SaslFailure::InvalidAuthzid);
        }
        let Ok(authzid) = core::str::from_utf8(data) else {
            return ServerStep::Failure(SaslFailure::MalformedRequest);
        };
        if authzid.contains('\0') {
            return ServerStep::Failure(SaslFailure::MalformedRequest);
        }
        // JID domains (and ASCII localparts, after nodeprep) compare case-insensitively.
        if !authzid.is_empty() && !authzid.eq_ignore_ascii_case(&identity) {
            return ServerStep::Failure(SaslFailure::InvalidAuthzid);
        }
        ServerStep::Success {
            authcid: identity,
            authzid: None,
            additional: None,
        }
    }

    /// The ANONYMOUS message is optional trace information, kept (bounded) for logs.
    fn anonymous_finish(&mut self, data: &[u8]) -> ServerStep {
        self.state = State::Done;
        let Ok(trace) = core::str::from_utf8(data) else {
            return ServerStep::Failure(SaslFailure::MalformedRequest);
        };
        if trace.chars().count() > MAX_TRACE_CHARS || trace.chars().any(char::is_control) {
            return ServerStep::Failure(SaslFailure::MalformedRequest);
        }
        self.trace = (!trace.is_empty()).then(|| String::from(trace));
        self.anonymous = true;
        ServerStep::Success {
            authcid: String::new(),
            authzid: None,
            additional: None,
        }
    }

    // -- DIGEST-MD5 (RFC 2831) -------------------------------------------------------------

    /// The digest-challenge: our realm and nonce, `qop=auth` only, UTF-8, md5-sess.
    fn digest_challenge(&mut self) -> ServerStep {
        if self.ctx.realm.is_empty() || self.ctx.realm.len() > MAX_AUTHZID_BYTES {
            return self.fail(SaslFailure::TemporaryAuthFailure);
        }
        let mut out = String::from("realm=");
        digest::push_quoted(&mut out, &self.ctx.realm);
        out.push_str(",nonce=");
        digest::push_quoted(&mut out, &self.server_nonce);
        out.push_str(",qop=\"auth\",charset=utf-8,algorithm=md5-sess");
        self.state = State::DigestAwaitResponse;
        ServerStep::Challenge(out.into_bytes())
    }

    fn digest_response(&mut self, data: &[u8]) -> ServerStep {
        match self.parse_digest_response(data) {
            Ok((ident, resp)) => {
                self.state = State::DigestAwaitCredentials {
                    ident: ident.clone(),
                    resp,
                };
                ServerStep::NeedCredentials {
                    authcid: ident.authcid,
                    authzid: ident.authzid,
                }
            }
            Err(f) => self.fail(f),
        }
    }

    /// Parses and checks a digest-response up to the password check.
    fn parse_digest_response(
        &self,
        data: &[u8],
    ) -> Result<(Identity, DigestResponse), SaslFailure> {
        use SaslFailure::{InvalidAuthzid, MalformedRequest, NotAuthorized};
        if data.len() > digest::MAX_DIGEST_MESSAGE_BYTES {
            return Err(MalformedRequest);
        }
        let text = core::str::from_utf8(data).map_err(|_| MalformedRequest)?;
        let dirs = digest::parse_directives(text).ok_or(MalformedRequest)?;
        let get = |name: &str| digest::unique(&dirs, name).map_err(|()| MalformedRequest);
        for name in ["maxbuf", "stale", "algorithm"] {
            get(name)?;
        }
        let charset = get("charset")?;
        let utf8 = match charset {
            None => false,
            Some(c) if c.eq_ignore_ascii_case("utf-8") => true,
            Some(_) => return Err(MalformedRequest),
        };
        // Only qop=auth: no security layer (auth-int, auth-conf, or a cipher) is offered.
        match get("qop")? {
            None => {}
            Some(q) if q.eq_ignore_ascii_case("auth") => {}
            Some(_) => return Err(MalformedRequest),
        }
        if get("cipher")?.is_some() {
            return Err(MalformedRequest);
        }
        let username = get("username")?.ok_or(MalformedRequest)?;
        let realm = get("realm")?;
        let nonce = get("nonce")?.ok_or(MalformedRequest)?;
        let cnonce = get("cnonce")?.ok_or(MalformedRequest)?;
        let nc = get("nc")?.ok_or(MalformedRequest)?;
        let digest_uri = get("digest-uri")?.ok_or(MalformedRequest)?;
        let response = get("response")?.ok_or(MalformedRequest)?;
        let authzid_raw = get("authzid")?;
        if cnonce.is_empty() || cnonce.len() > MAX_NONCE_BYTES || !digest::is_hex32(response) {
            return Err(MalformedRequest);
        }
        if nc.len() != 8 || !nc.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MalformedRequest);
        }
        // Without charset=utf-8 the strings are ISO 8859-1; only ASCII reads the same.
        if !utf8 && (!username.is_ascii() || !authzid_raw.is_none_or(str::is_ascii)) {
            return Err(MalformedRequest);
        }
        let authcid = prep::saslprep(username).map_err(|_| MalformedRequest)?;
        if authcid.is_empty() {
            return Err(MalformedRequest);
        }
        let authzid = match authzid_raw {
            None | Some("") => None,
            Some(z) => Some(String::from(prep::saslprep(z).map_err(|_| InvalidAuthzid)?)),
        };
        // Our nonce, first use, our realm (the stored secret is for it), our service.
        if nonce != self.server_nonce || nc != digest::NONCE_COUNT {
            return Err(NotAuthorized);
        }
        if realm != Some(self.ctx.realm.as_str()) || !self.digest_uri_ok(digest_uri) {
            return Err(NotAuthorized);
        }
        Ok((
            Identity {
                authcid: String::from(authcid),
                authzid,
            },
            DigestResponse {
                cnonce: String::from(cnonce),
                digest_uri: String::from(digest_uri),
                response: response.to_ascii_lowercase(),
                authzid_raw: authzid_raw.filter(|z| !z.is_empty()).map(String::from),
            },
        ))
    }

    /// `serv-type "/" host [ "/" serv-name ]`: our service type, and our realm (domain) as
    /// host or serv-name.
    fn digest_uri_ok(&self, uri: &str) -> bool {
        let service = if self.ctx.service.is_empty() {
            "xmpp"
        } else {
            self.ctx.service.as_str()
        };
        let mut parts = uri.split('/');
        let (Some(serv_type), Some(host)) = (parts.next(), parts.next()) else {
            return false;
        };
        let serv_name = parts.next();
        if parts.next().is_some() || !serv_type.eq_ignore_ascii_case(service) {
            return false;
        }
        let realm = self.ctx.realm.as_str();
        host.eq_ignore_ascii_case(realm) || serv_name.is_some_and(|n| n.eq_ignore_ascii_case(realm))
    }

    /// Checks the response with the stored DIGEST-MD5 secret; answers with `rspauth`.
    ///
    /// An unknown account and an account without a DIGEST-MD5 secret (created without a
    /// realm, or decoded from a version 1 record) both fail with `not-authorized` after the
    /// same work, so the answer does not reveal which accounts exist.
    fn digest_verify(
        &mut self,
        ident: Identity,
        resp: &DigestResponse,
        creds: Option<&StoredCredentials>,
    ) -> ServerStep {
        let stored = creds.and_then(|c| c.digest_md5);
        let user_hash = stored.unwrap_or([0; 16]);
        let input = digest::ResponseInput {
            user_hash: &user_hash,
            nonce: &self.server_nonce,
            cnonce: &resp.cnonce,
            nc: digest::NONCE_COUNT,
            digest_uri: &resp.digest_uri,
            authzid: resp.authzid_raw.as_deref(),
        };
        let expected = input.response();
        let ok = expected.as_bytes().ct_eq(resp.response.as_bytes())
            & Choice::from(u8::from(stored.is_some()));
        if !bool::from(ok) {
            return self.fail(SaslFailure::NotAuthorized);
        }
        let rspauth = format!("rspauth={}", input.rspauth());
        self.state = State::DigestAwaitAck(ident);
        ServerStep::Challenge(rspauth.into_bytes())
    }

    // -- SCRAM (RFC 5802) ------------------------------------------------------------------

    /// Parses the client-first message.
    fn scram_first(&mut self, alg: HashAlg, data: &[u8]) -> ServerStep {
        let parsed = parse_client_first(data).and_then(|(first, flag)| {
            let cbind = self.expected_cbind(&flag, &first.gs2_header)?;
            Ok((first, cbind))
        });
        match parsed {
            Ok((first, cbind)) => {
                let ident = first.ident;
                self.state = State::ScramAwaitCredentials {
                    alg,
                    ident: ident.clone(),
                    cbind,
                    client_first_bare: first.bare,
                    client_nonce: first.nonce,
                };
                ServerStep::NeedCredentials {
                    authcid: ident.authcid,
                    authzid: ident.authzid,
                }
            }
            Err(failure) => self.fail(failure),
        }
    }

    /// Checks the GS2 channel-binding flag against the mechanism and the connection
    /// (RFC 5802 §6) and returns what `c=` must decode to.
    fn expected_cbind(&self, flag: &CbindFlag, gs2_header: &str) -> Result<Vec<u8>, SaslFailure> {
        let mut cbind = gs2_header.as_bytes().to_vec();
        match (self.mech.is_plus(), flag) {
            (true, CbindFlag::Required(name)) => {
                let binding = self
                    .ctx
                    .channel_bindings
                    .iter()
                    .find(|b| b.is_available() && b.type_name() == Some(name.as_str()))
                    .ok_or(SaslFailure::NotAuthorized)?;
                cbind.extend_from_slice(binding.data());
                Ok(cbind)
            }
            // A -PLUS mechanism without `p=` contradicts itself.
            (true, _) => Err(SaslFailure::MalformedRequest),
            // `p=` on a non-PLUS mechanism is a protocol violation.
            (false, CbindFlag::Required(_)) => Err(SaslFailure::MalformedRequest),
            // The client could bind but did not see -PLUS, which we offered: downgrade.
            (false, CbindFlag::ClientOnly) if self.ctx.plus_offered => {
                Err(SaslFailure::NotAuthorized)
            }
            (false, _) => Ok(cbind),
        }
    }

    /// Sends the server-first message (real or decoy).
    fn scram_server_first(
        &mut self,
        alg: HashAlg,
        ident: Identity,
        cbind: Vec<u8>,
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
            cbind,
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

/// A parsed SCRAM client-first message.
struct ClientFirst {
    ident: Identity,
    /// The GS2 header exactly as sent.
    gs2_header: String,
    /// The client-first-message-bare.
    bare: String,
    nonce: String,
}

/// Parses a client-first message; the channel-binding flag is returned for the caller to
/// check against the mechanism.
fn parse_client_first(data: &[u8]) -> Result<(ClientFirst, CbindFlag), SaslFailure> {
    use SaslFailure::{InvalidAuthzid, MalformedRequest};
    if data.len() > MAX_MESSAGE_BYTES {
        return Err(MalformedRequest);
    }
    let msg = core::str::from_utf8(data).map_err(|_| MalformedRequest)?;
    let (gs2, bare) = scram::split_gs2(msg).ok_or(MalformedRequest)?;
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
        ClientFirst {
            ident: Identity {
                authcid: String::from(authcid),
                authzid,
            },
            gs2_header: String::from(gs2.raw),
            bare: String::from(bare),
            nonce: String::from(client_nonce),
        },
        gs2.flag,
    ))
}

/// What is needed to check a client-final message.
struct Verifier<'a> {
    alg: HashAlg,
    /// What `c=` must decode to: the GS2 header, plus the binding data for `p=`.
    cbind: &'a [u8],
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
        // c= is the GS2 header, then the channel-binding data for `p=` (RFC 5802 §7).
        if !bool::from(cbind.ct_eq(self.cbind)) {
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
