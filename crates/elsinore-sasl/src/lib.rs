//! SASL for elsinore, both sides, without IO: PLAIN (RFC 4616), SCRAM-SHA-1 (RFC 5802),
//! SCRAM-SHA-256 (RFC 7677), their -PLUS channel-binding variants, DIGEST-MD5 (RFC 2831,
//! `qop=auth` only), EXTERNAL (RFC 4422 appendix A, XEP-0178) and ANONYMOUS (RFC 4505);
//! plus the legacy `jabber:iq:auth` helpers [`legacy_digest`] and [`verify_plain`].
//!
//! Messages are raw bytes; the XMPP stream layer does the base64 of `<auth/>`,
//! `<challenge/>`, `<response/>` and `<success/>`.
//!
//! # Server
//!
//! [`ServerSession::start`] parses the client's first message and asks for the account's
//! [`StoredCredentials`] ([`ServerStep::NeedCredentials`]); the caller loads them (a storage
//! effect) and resumes with [`ServerSession::provide_credentials`], then feeds each client
//! response to [`ServerSession::response`] until [`ServerStep::Success`] or
//! [`ServerStep::Failure`]. The store holds SCRAM keys only, never the password; PLAIN is
//! verified by deriving the SCRAM-SHA-256 StoredKey from the offered password and comparing
//! it in constant time. An unknown account gets a decoy SCRAM challenge (salt derived
//! deterministically from the username) and fails only at the end, so the exchange does not
//! reveal which accounts exist ([`ServerSession::set_unknown_user_decoy`] keys it with a
//! server secret).
//!
//! [`ServerSession::start_with`] takes a [`ServerContext`]: the connection's channel
//! bindings, whether -PLUS was offered, the EXTERNAL identity and the DIGEST-MD5 realm;
//! [`ServerSession::start`] is the same with only a nonce. [`offered_mechanisms`] filters the
//! configured list by what the transport supports (-PLUS only with a channel binding,
//! EXTERNAL only with a verified certificate identity).
//!
//! # Authorization identities
//!
//! PLAIN, SCRAM and DIGEST-MD5 report the SASLprep'd authzid (an empty one is `None`);
//! deciding whether the authcid may act as it is the caller's job (answer
//! [`SaslFailure::InvalidAuthzid`] if not). EXTERNAL checks it here: empty, or equal (ASCII
//! case-insensitively) to the verified identity, else `invalid-authzid`; its
//! [`ServerStep::Success`] carries the identity as `authcid` and no authzid. ANONYMOUS
//! succeeds with an empty `authcid` and [`ServerSession::is_anonymous`] set: the caller
//! creates a temporary identity.
//!
//! # Failure conditions
//!
//! The server answers: `malformed-request` for syntax errors, messages at the wrong step and
//! mechanism/flag contradictions; `not-authorized` for wrong credentials, unknown accounts,
//! channel-binding mismatches, downgrades and replayed DIGEST-MD5 nonces; `invalid-authzid`
//! for an authzid that fails SASLprep (or, for EXTERNAL, names someone else);
//! `temporary-auth-failure` for server-side problems (bad nonce, corrupt credentials, no
//! DIGEST-MD5 realm configured). `incorrect-encoding` (base64), `invalid-mechanism`,
//! `encryption-required` and `aborted` belong to the stream layer, which sees the XML.
//! After [`ServerSession::abort`] every further message is `malformed-request`.
//!
//! ```
//! use elsinore_sasl::{ClientSession, Mechanism, ServerSession, ServerStep, StoredCredentials};
//!
//! let creds = StoredCredentials::derive("pencil", b"salt-sha1", b"salt-sha256", 4096)?;
//! let mut client = ClientSession::new(Mechanism::ScramSha256, "user", "pencil", None, "cnonce")?;
//! let (mut server, step) =
//!     ServerSession::start(Mechanism::ScramSha256, Some(&client.initial_response()), "snonce");
//! assert!(matches!(step, ServerStep::NeedCredentials { ref authcid, .. } if authcid == "user"));
//! // ... the caller loads the credentials of "user" from its store ...
//! let ServerStep::Challenge(server_first) = server.provide_credentials(Some(&creds)) else {
//!     unreachable!()
//! };
//! let client_final = client.challenge(&server_first)?;
//! let ServerStep::Success { additional, .. } = server.response(&client_final) else {
//!     unreachable!()
//! };
//! client.success(additional.as_deref())?;
//! # Ok::<(), elsinore_sasl::SaslError>(())
//! ```
//!
//! # Client
//!
//! [`ClientSession::new`] (or [`ClientSession::new_with_binding`] with the TLS channel
//! binding, [`ClientSession::external`], [`ClientSession::anonymous`]),
//! [`ClientSession::initial_response`] (none for DIGEST-MD5:
//! [`ClientSession::has_initial_response`]), then [`ClientSession::challenge`] per challenge
//! and [`ClientSession::success`], which verifies the SCRAM server signature or the
//! DIGEST-MD5 `rspauth`. [`client_preference`] picks the strongest offered password
//! mechanism, [`client_preference_with_binding`] prefers -PLUS when a binding exists.
//!
//! # Channel binding
//!
//! The TLS adapter computes the binding data ([`ChannelBinding::TlsExporter`] per RFC 9266,
//! [`ChannelBinding::TlsServerEndPoint`] per RFC 5929); the core never sees TLS. A -PLUS
//! client sends the GS2 header `p=tls-exporter,,` or `p=tls-server-end-point,,` and
//! `c=` = base64(GS2 header ‖ binding data), which the server compares with its own data.
//! Downgrade protection (RFC 5802 §6): a client that has a binding but uses a non-PLUS
//! mechanism sends `y`, and a server that offered -PLUS ([`ServerContext::plus_offered`])
//! refuses `y` with `not-authorized`. A `p=` naming a type the server does not have is
//! `not-authorized`; `p=` with a non-PLUS mechanism, or `n`/`y` with a -PLUS one, is
//! `malformed-request`.
//!
//! # DIGEST-MD5
//!
//! The draft's mandatory mechanism, obsoleted by RFC 6331; kept for old clients. The server
//! needs `H(username:realm:password)`, stored as [`StoredCredentials::digest_md5`] by
//! [`StoredCredentials::derive_with_digest_md5`] (it is password-equivalent for that realm).
//! An account without it (including any version 1 credential record) fails DIGEST-MD5 with
//! `not-authorized`, like an unknown account, so the answer does not reveal which accounts
//! exist. Only `qop=auth`: `auth-int`, `auth-conf` and `cipher` are refused with
//! `malformed-request`; `nc` must be `00000001` (no subsequent authentication); the
//! `digest-uri` must be `<service>/<realm>` (service `xmpp` unless configured). The server
//! sends `rspauth` as a challenge and succeeds on the empty response; the client accepts it
//! either as a challenge or in `<success/>`. Directive lists are parsed strictly: quoted
//! strings with backslash escapes, duplicate directives refused, at most
//! 32 directives and 4096 bytes.
//!
//! # Legacy authentication (XEP-0078)
//!
//! The `<digest/>` form needs the plaintext password on the server, which is never stored:
//! servers support `<password/>` only (check it with [`verify_plain`]), do not offer
//! `<digest/>` in the fields, and refuse it. Clients compute it with [`legacy_digest`].
//!
//! # Limits
//!
//! Every message is at most [`MAX_MESSAGE_BYTES`]; nonces at most [`MAX_NONCE_BYTES`]; salts
//! at most [`MAX_SALT_BYTES`]. A client refuses iteration counts outside
//! [`MIN_ITERATIONS`]`..=`[`MAX_ITERATIONS`]: fewer makes the password cheap to brute-force
//! from a captured exchange, more lets a hostile server burn the client's CPU.
//! [`StoredCredentials::derive`] uses the same range.
//!
//! # `no_std`
//!
//! The crate is `no_std` + `alloc`. The default `std` feature enables full SASLprep through
//! the `stringprep` crate (which needs std); without it, ASCII strings are prepared (SASLprep
//! does not change printable ASCII) and non-ASCII authcids, authzids and passwords are
//! refused with [`SaslError::PrepUnavailable`].

#![no_std]
#![forbid(unsafe_code)]
#![warn(missing_docs)]

extern crate alloc;

mod cb;
mod client;
mod creds;
mod crypto;
mod digest;
mod legacy;
mod prep;
mod scram;
mod server;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use cb::{ChannelBinding, MAX_CHANNEL_BINDING_BYTES};
pub use client::ClientSession;
pub use creds::{MAX_LEGACY_PASSWORD_BYTES, StoredCredentials, StoredScram};
pub use legacy::{legacy_digest, verify_plain};
pub use server::{ServerContext, ServerSession, ServerStep};

/// Maximum size of any SASL message, in either direction.
pub const MAX_MESSAGE_BYTES: usize = 8 * 1024;
/// Maximum length of a nonce part (client nonce, server nonce) in bytes.
pub const MAX_NONCE_BYTES: usize = 512;
/// Maximum length of a salt in bytes.
pub const MAX_SALT_BYTES: usize = 1024;
/// Smallest SCRAM iteration count accepted (RFC 7677 §4 recommends at least 4096).
pub const MIN_ITERATIONS: u32 = 4096;
/// Largest SCRAM iteration count accepted.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// A SASL mechanism this crate implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mechanism {
    /// `PLAIN` (RFC 4616).
    Plain,
    /// `SCRAM-SHA-1` (RFC 5802).
    ScramSha1,
    /// `SCRAM-SHA-256` (RFC 7677).
    ScramSha256,
    /// `SCRAM-SHA-1-PLUS` (RFC 5802 with channel binding).
    ScramSha1Plus,
    /// `SCRAM-SHA-256-PLUS` (RFC 7677 with channel binding).
    ScramSha256Plus,
    /// `DIGEST-MD5` (RFC 2831, `qop=auth` only; the draft's mandatory mechanism).
    DigestMd5,
    /// `EXTERNAL` (RFC 4422 appendix A, XEP-0178): identity established outside SASL (TLS).
    External,
    /// `ANONYMOUS` (RFC 4505).
    Anonymous,
}

impl Mechanism {
    /// Every mechanism, in [`client_preference_with_binding`] order (strongest first).
    pub const ALL: [Mechanism; 8] = [
        Mechanism::ScramSha256Plus,
        Mechanism::ScramSha1Plus,
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::DigestMd5,
        Mechanism::Plain,
        Mechanism::External,
        Mechanism::Anonymous,
    ];

    /// Password mechanisms [`client_preference`] chooses from, strongest first.
    pub const PASSWORD: [Mechanism; 3] = [
        Mechanism::ScramSha256,
        Mechanism::ScramSha1,
        Mechanism::Plain,
    ];

    /// The mechanism with this IANA name (case-sensitive, as SASL names are upper case).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The IANA name of the mechanism.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha1 => "SCRAM-SHA-1",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha1Plus => "SCRAM-SHA-1-PLUS",
            Mechanism::ScramSha256Plus => "SCRAM-SHA-256-PLUS",
            Mechanism::DigestMd5 => "DIGEST-MD5",
            Mechanism::External => "EXTERNAL",
            Mechanism::Anonymous => "ANONYMOUS",
        }
    }

    /// Whether this is a channel-binding (`-PLUS`) mechanism: offer it only when the TLS
    /// layer provides a [`ChannelBinding`].
    pub fn is_plus(self) -> bool {
        matches!(self, Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus)
    }

    /// Whether the mechanism authenticates with the account's stored credentials (every
    /// mechanism but EXTERNAL and ANONYMOUS).
    pub fn uses_credentials(self) -> bool {
        !matches!(self, Mechanism::External | Mechanism::Anonymous)
    }

    /// Whether the mechanism sends the password in the clear (PLAIN): offer it only on TLS.
    pub fn is_plaintext(self) -> bool {
        self == Mechanism::Plain
    }

    /// The SCRAM hash, or `None` for other mechanisms.
    fn scram_hash(self) -> Option<crypto::HashAlg> {
        match self {
            Mechanism::ScramSha1 | Mechanism::ScramSha1Plus => Some(crypto::HashAlg::Sha1),
            Mechanism::ScramSha256 | Mechanism::ScramSha256Plus => Some(crypto::HashAlg::Sha256),
            _ => None,
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The strongest password mechanism without channel binding among those the server offers:
/// SCRAM-SHA-256, SCRAM-SHA-1, PLAIN. Never picks DIGEST-MD5 (deprecated by RFC 6331),
/// EXTERNAL, ANONYMOUS or a -PLUS mechanism; see [`client_preference_with_binding`].
pub fn client_preference(offered: &[&str]) -> Option<Mechanism> {
    Mechanism::PASSWORD
        .into_iter()
        .find(|m| offered.contains(&m.name()))
}

/// Like [`client_preference`], but prefers SCRAM-SHA-256-PLUS and SCRAM-SHA-1-PLUS when the
/// client has a channel binding (`has_binding`): with a binding and no -PLUS offered, the
/// client must still pass the binding to [`ClientSession::new_with_binding`] so that it
/// sends the `y` flag (downgrade detection, RFC 5802 §6).
pub fn client_preference_with_binding(offered: &[&str], has_binding: bool) -> Option<Mechanism> {
    let plus = [Mechanism::ScramSha256Plus, Mechanism::ScramSha1Plus];
    plus.into_iter()
        .filter(|_| has_binding)
        .chain(Mechanism::PASSWORD)
        .find(|m| offered.contains(&m.name()))
}

/// What the transport offers, for [`offered_mechanisms`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OfferContext {
    /// The TLS layer has channel-binding data (offer the -PLUS mechanisms).
    pub channel_binding: bool,
    /// The TLS layer verified a client certificate identity (offer EXTERNAL).
    pub external_identity: bool,
}

/// The mechanisms to advertise: `enabled` (in its order) minus those the transport cannot
/// support: -PLUS without a channel binding, EXTERNAL without a verified identity. Whether
/// PLAIN may be offered without TLS (and ANONYMOUS at all) stays the stream's policy.
pub fn offered_mechanisms(enabled: &[Mechanism], ctx: OfferContext) -> Vec<Mechanism> {
    let mut out: Vec<Mechanism> = Vec::with_capacity(enabled.len());
    for &m in enabled {
        let ok = match m {
            Mechanism::ScramSha1Plus | Mechanism::ScramSha256Plus => ctx.channel_binding,
            Mechanism::External => ctx.external_identity,
            _ => true,
        };
        if ok && !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

/// A SASL failure condition as sent in `<failure/>` (RFC 6120 §6.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SaslFailure {
    /// `aborted`: the client aborted.
    Aborted,
    /// `account-disabled`.
    AccountDisabled,
    /// `credentials-expired`.
    CredentialsExpired,
    /// `encryption-required`.
    EncryptionRequired,
    /// `incorrect-encoding`: bad base64.
    IncorrectEncoding,
    /// `invalid-authzid`.
    InvalidAuthzid,
    /// `invalid-mechanism`.
    InvalidMechanism,
    /// `malformed-request`.
    MalformedRequest,
    /// `mechanism-too-weak`.
    MechanismTooWeak,
    /// `not-authorized`: wrong credentials (or unknown account).
    NotAuthorized,
    /// `temporary-auth-failure`: a server-side problem.
    TemporaryAuthFailure,
}

impl SaslFailure {
    /// Every condition, in RFC 6120 order.
    pub const ALL: [SaslFailure; 11] = [
        SaslFailure::Aborted,
        SaslFailure::AccountDisabled,
        SaslFailure::CredentialsExpired,
        SaslFailure::EncryptionRequired,
        SaslFailure::IncorrectEncoding,
        SaslFailure::InvalidAuthzid,
        SaslFailure::InvalidMechanism,
        SaslFailure::MalformedRequest,
        SaslFailure::MechanismTooWeak,
        SaslFailure::NotAuthorized,
        SaslFailure::TemporaryAuthFailure,
    ];

    /// The RFC 6120 element name of the condition, e.g. `"not-authorized"`.
    pub fn condition(&self) -> &'static str {
        match self {
            SaslFailure::Aborted => "aborted",
            SaslFailure::AccountDisabled => "account-disabled",
            SaslFailure::CredentialsExpired => "credentials-expired",
            SaslFailure::EncryptionRequired => "encryption-required",
            SaslFailure::IncorrectEncoding => "incorrect-encoding",
            SaslFailure::InvalidAuthzid => "invalid-authzid",
            SaslFailure::InvalidMechanism => "invalid-mechanism",
            SaslFailure::MalformedRequest => "malformed-request",
            SaslFailure::MechanismTooWeak => "mechanism-too-weak",
            SaslFailure::NotAuthorized => "not-authorized",
            SaslFailure::TemporaryAuthFailure => "temporary-auth-failure",
        }
    }

    /// The condition with this element name: one of RFC 6120's, or one of the five that
    /// draft-ietf-xmpp-core-11 §6.1.2 defined under other names, read as the RFC 6120
    /// condition that took its place (`invalid-realm`, gone from RFC 6120, as
    /// `not-authorized`; `password-transition-required` as `credentials-expired`). We only
    /// send RFC 6120 names.
    pub fn from_condition(name: &str) -> Option<SaslFailure> {
        let draft = match name {
            "authentication-mechanism-too-weak" => Some(SaslFailure::MechanismTooWeak),
            "invalid-realm" => Some(SaslFailure::NotAuthorized),
            "password-transition-required" => Some(SaslFailure::CredentialsExpired),
            "temporary-authentication-failure" => Some(SaslFailure::TemporaryAuthFailure),
            _ => None,
        };
        draft.or_else(|| SaslFailure::ALL.into_iter().find(|f| f.condition() == name))
    }
}

impl fmt::Display for SaslFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.condition())
    }
}

/// An error on the client side, or in local input (credentials, parameters).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SaslError {
    /// A string failed SASLprep (prohibited character, bidi rule, unassigned code point).
    Prep,
    /// The string is not ASCII and the crate was built without `std` (no full SASLprep).
    PrepUnavailable,
    /// The authentication identity is empty.
    EmptyAuthcid,
    /// The password is empty.
    EmptyPassword,
    /// A nonce is empty, too long, not printable ASCII, or contains `,`; or the server's
    /// nonce does not extend ours.
    InvalidNonce,
    /// A salt is empty, too long or not valid base64.
    InvalidSalt,
    /// The server's iteration count is outside [`MIN_ITERATIONS`]`..=`[`MAX_ITERATIONS`].
    InvalidIterations(u32),
    /// The server's message does not follow the mechanism's syntax.
    MalformedChallenge,
    /// A base64 field is invalid.
    Base64,
    /// A message is over [`MAX_MESSAGE_BYTES`].
    TooLong,
    /// The server's signature does not match: the server does not know the password.
    ServerSignatureMismatch,
    /// The server reported success without the SCRAM server signature.
    MissingServerSignature,
    /// The server sent a SCRAM `e=` error (its value, at most 64 bytes kept).
    ServerError(String),
    /// A message arrived (or a method was called) at a step where it is not expected.
    UnexpectedMessage,
    /// Stored credentials could not be decoded, or derivation parameters are out of range.
    InvalidCredentials,
    /// The constructor or parameters do not fit the mechanism: a -PLUS mechanism without a
    /// channel binding, or EXTERNAL/ANONYMOUS through the password constructor.
    MechanismMismatch,
}

impl fmt::Display for SaslError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslError::Prep => f.write_str("string fails SASLprep"),
            SaslError::PrepUnavailable => {
                f.write_str("non-ASCII string needs SASLprep, built without std")
            }
            SaslError::EmptyAuthcid => f.write_str("empty authentication identity"),
            SaslError::EmptyPassword => f.write_str("empty password"),
            SaslError::InvalidNonce => f.write_str("invalid nonce"),
            SaslError::InvalidSalt => f.write_str("invalid salt"),
            SaslError::InvalidIterations(i) => write!(
                f,
                "iteration count {i} outside {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ),
            SaslError::MalformedChallenge => f.write_str("malformed challenge"),
            SaslError::Base64 => f.write_str("invalid base64"),
            SaslError::TooLong => f.write_str("message too long"),
            SaslError::ServerSignatureMismatch => f.write_str("server signature mismatch"),
            SaslError::MissingServerSignature => f.write_str("missing server signature"),
            SaslError::ServerError(e) => write!(f, "server error: {e}"),
            SaslError::UnexpectedMessage => f.write_str("unexpected message"),
            SaslError::InvalidCredentials => f.write_str("invalid stored credentials"),
            SaslError::MechanismMismatch => f.write_str("parameters do not fit the mechanism"),
        }
    }
}

impl core::error::Error for SaslError {}
