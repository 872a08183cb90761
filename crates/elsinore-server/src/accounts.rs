//! Accounts: where credentials live and how they are made.
//!
//! Salted SCRAM keys are stored (SHA-1 and SHA-256), by default never the password. When
//! DIGEST-MD5 is enabled ([`CredentialPolicy::digest_md5`]), the RFC 2831 secret
//! `H(localpart:domain:password)` is stored next to them (credential encoding version 2;
//! records without it stay readable and simply cannot use DIGEST-MD5). When XEP-0078 digest
//! logins are enabled ([`CredentialPolicy::legacy_digest`]) the password itself is kept too
//! (version 3), as that digest cannot be checked otherwise.

use elsinore_jid::BareJid;
use elsinore_sasl::StoredCredentials;
use elsinore_storage::{Key, Op, Space};
use elsinore_stream::Rng;

pub use crate::removal::{StoredRemoval, StoredRemovalError, remove_stored_account};

/// Default PBKDF2 iteration count for new credentials.
pub const DEFAULT_SCRAM_ITERATIONS: u32 = 4096;

/// Why an account operation cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountError {
    /// The JID has no node part (`user@domain` is needed).
    NoNode,
    /// The password is empty or cannot be prepared with SASLprep.
    BadPassword(String),
}

impl core::fmt::Display for AccountError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AccountError::NoNode => f.write_str("an account JID needs a user part (user@domain)"),
            AccountError::BadPassword(why) => write!(f, "unusable password: {why}"),
        }
    }
}

impl std::error::Error for AccountError {}

/// The storage key of an account's credentials.
pub fn credentials_key(jid: &BareJid) -> Key {
    Key {
        account: jid.to_string(),
        space: Space::Account,
        name: "credentials".to_string(),
    }
}

/// How credentials are made when a password is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CredentialPolicy {
    /// PBKDF2 iterations of the SCRAM keys.
    pub iterations: u32,
    /// Also store the DIGEST-MD5 secret `H(localpart:domain:password)` (RFC 2831), with the
    /// served domain as realm. It is password-equivalent for DIGEST-MD5, so it is only
    /// stored when the server offers that mechanism.
    pub digest_md5: bool,
    /// Also keep the password itself, for XEP-0078 `<digest/>` logins on pre-1.0 streams
    /// (no stored verifier can check that digest). Plaintext-equivalent: off by default.
    pub legacy_digest: bool,
}

impl CredentialPolicy {
    /// SCRAM keys only, with `iterations`.
    pub fn scram(iterations: u32) -> Self {
        CredentialPolicy {
            iterations,
            digest_md5: false,
            legacy_digest: false,
        }
    }
}

/// Derive stored credentials for `password` with fresh salts from `salt_seed`.
pub fn derive_credentials(
    password: &str,
    salt_seed: [u8; 32],
    iterations: u32,
) -> Result<StoredCredentials, AccountError> {
    derive_for(
        None,
        password,
        salt_seed,
        CredentialPolicy::scram(iterations),
    )
}

/// Derive `jid`'s credentials under `policy` (the DIGEST-MD5 secret needs the JID).
fn derive_for(
    jid: Option<&BareJid>,
    password: &str,
    salt_seed: [u8; 32],
    policy: CredentialPolicy,
) -> Result<StoredCredentials, AccountError> {
    if password.is_empty() {
        return Err(AccountError::BadPassword("empty".into()));
    }
    let mut rng = Rng::new(salt_seed);
    let s1 = rng.next_block();
    let s256 = rng.next_block();
    let creds = match jid.filter(|_| policy.digest_md5) {
        // DIGEST-MD5 clients send the localpart as username and the domain as realm.
        Some(jid) => StoredCredentials::derive_with_digest_md5(
            jid.node().unwrap_or_default(),
            jid.domain(),
            password,
            &s1[..16],
            &s256[..16],
            policy.iterations,
        ),
        None => StoredCredentials::derive(password, &s1[..16], &s256[..16], policy.iterations),
    };
    let creds = match creds {
        Ok(c) if policy.legacy_digest => c.with_legacy_password(password),
        other => other,
    };
    creds.map_err(|e| AccountError::BadPassword(e.to_string()))
}

/// The effect that stores (creates or replaces) `jid`'s credentials.
///
/// Whether the account already exists is the caller's question (a `Get` of
/// [`credentials_key`] first): the command line refuses to overwrite.
pub fn create_account_op(
    jid: &BareJid,
    password: &str,
    salt_seed: [u8; 32],
    iterations: u32,
) -> Result<Op, AccountError> {
    set_password_op(
        jid,
        password,
        salt_seed,
        CredentialPolicy::scram(iterations),
    )
}

/// Like [`create_account_op`], making the credentials under `policy` (with the
/// DIGEST-MD5 secret when it says so).
pub fn set_password_op(
    jid: &BareJid,
    password: &str,
    salt_seed: [u8; 32],
    policy: CredentialPolicy,
) -> Result<Op, AccountError> {
    if jid.node().is_none() {
        return Err(AccountError::NoNode);
    }
    let creds = derive_for(Some(jid), password, salt_seed, policy)?;
    Ok(Op::Put(credentials_key(jid), creds.to_bytes()))
}

/// The effect that deletes `jid`'s account: credentials and every other stored value
/// (private XML, roster, offline messages, vCard, ...).
pub fn delete_account_op(jid: &BareJid) -> Op {
    Op::DeleteAccount(jid.to_string())
}
