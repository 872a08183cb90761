//! JID parsing and preparation for elsinore.
//!
//! A JID (`node@domain/resource`) is split per RFC 7622 §3.1 (the same rules as RFC 6122):
//! the resourcepart is everything after the first `/`, the localpart is everything before
//! the first `@` of what remains, and the rest is the domainpart. Each part is then prepared
//! and checked to be 1..=1023 bytes long. [`Jid`] and [`BareJid`] only ever hold prepared
//! parts, so comparison, hashing and ordering work on the normalised form and
//! [`Display`](core::fmt::Display) writes the canonical string.
//!
//! ```
//! use elsinore_jid::{BareJid, Jid};
//!
//! let jid: Jid = "Juliet@Capulet.LIT/Balcony".parse()?;
//! assert_eq!(jid.to_string(), "juliet@capulet.lit/Balcony");
//! assert_eq!(jid.to_bare(), BareJid::parse("juliet@capulet.lit")?);
//! # Ok::<(), elsinore_jid::JidError>(())
//! ```
//!
//! # Stringprep, not PRECIS
//!
//! Parts are prepared with the RFC 6122 stringprep profiles (Nodeprep, Nameprep,
//! Resourceprep, Unicode 3.2 tables) from the `stringprep` crate. This is a deliberate
//! choice: it is what Prosody, ejabberd and xmpp-rs deployments apply, so JIDs stored or
//! routed by those servers compare equal here. RFC 7622 (PRECIS: UsernameCaseMapped for the
//! localpart, OpaqueString for the resourcepart, IDNA2008/UTS #46 for the domain) is the
//! current standard; the two agree on ASCII and most Latin text but differ on real inputs:
//! compatibility characters such as U+FB00 (`ﬀ`) are mapped to `ff` by Nodeprep (NFKC) but
//! rejected by PRECIS, PRECIS allows symbols and emoji that stringprep's Unicode 3.2 tables
//! treat as unassigned, and PRECIS does not fold width or case in resources the same way.
//! `tests/precis.rs` checks that both agree on ASCII and Latin input and pins the known
//! disagreements.
//!
//! # Domain rules
//!
//! The domainpart is Nameprep'd (which lowercases it), one trailing dot is stripped (as are
//! the IDNA label separators U+3002, U+FF0E and U+FF61, mapped to `.`), and ASCII characters
//! are restricted to letters, digits, `-`, `_` and `.` with no empty label (IDNA2003's STD3
//! rules, plus `_` which real deployments use); a prepared domain that contains an IDNA
//! label separator other than `.` (Nameprep makes U+3002 of U+FE12) is refused. IPv4 literals pass these rules unchanged;
//! IPv6 literals are accepted in brackets (`[2001:db8::1]`) and written in RFC 5952
//! canonical form so that equal addresses compare equal.
//!
//! # ASCII fast path
//!
//! Most JIDs are ASCII. For an ASCII part that the profile neither prohibits nor maps beyond
//! ASCII case folding, the result of stringprep is known (lowercase for node and domain,
//! unchanged for the resource), so the stringprep call and its intermediate allocations are
//! skipped. A property test checks that the fast path agrees with the full profile.
//!
//! # Without `std`
//!
//! The `stringprep` crate needs std, so it sits behind the default `std` feature. Without
//! it the crate is `no_std` + `alloc` and prepares only what the ASCII fast path covers
//! (ASCII input whose preparation is case folding or nothing, exactly as above, and ASCII
//! with prohibited characters still fails with the profile's error); any non-ASCII part is
//! refused with [`JidError::PrepUnavailable`] rather than prepared differently from a std
//! build. A device that talks to one known server with ASCII addresses loses nothing.
//!
//! # Limits
//!
//! Each prepared part is at most [`MAX_PART_BYTES`] (1023) bytes. A raw part longer than
//! [`MAX_RAW_PART_BYTES`] is rejected before preparation, so an oversized input costs no
//! Unicode processing (preparation can shrink a string, but not by that much in practice).

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::borrow::Cow;
use alloc::format;
use alloc::string::String;
use alloc::sync::Arc;
use core::fmt;
use core::net::Ipv6Addr;
use core::str::FromStr;

/// Maximum length in bytes of each prepared part (RFC 6122 §2.1, RFC 7622 §3.1).
pub const MAX_PART_BYTES: usize = 1023;

/// Maximum length in bytes of a raw (unprepared) part; longer input is rejected unprepared.
pub const MAX_RAW_PART_BYTES: usize = 4 * MAX_PART_BYTES;

/// Why a JID could not be parsed or built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JidError {
    /// There is an `@` but nothing before it (or the localpart prepared to nothing).
    EmptyNode,
    /// The domainpart is empty.
    EmptyDomain,
    /// There is a `/` but nothing after it (or the resourcepart prepared to nothing).
    EmptyResource,
    /// The localpart is over 1023 bytes.
    NodeTooLong,
    /// The domainpart is over 1023 bytes.
    DomainTooLong,
    /// The resourcepart is over 1023 bytes.
    ResourceTooLong,
    /// The localpart failed Nodeprep (prohibited character, bidi rule, unassigned code point).
    NodePrep,
    /// The domainpart failed Nameprep.
    NamePrep,
    /// The resourcepart failed Resourceprep.
    ResourcePrep,
    /// The domainpart is not a valid host name or IP literal (bad character, empty label,
    /// malformed `[IPv6]` literal).
    InvalidDomain,
    /// A full JID was given where a bare JID was expected.
    UnexpectedResource,
    /// The part is not ASCII and this build has no stringprep tables (the `std` feature is
    /// off), so it cannot be prepared.
    PrepUnavailable,
}

impl JidError {
    fn describe(self) -> &'static str {
        match self {
            JidError::EmptyNode => "empty localpart",
            JidError::EmptyDomain => "empty domainpart",
            JidError::EmptyResource => "empty resourcepart",
            JidError::NodeTooLong => "localpart longer than 1023 bytes",
            JidError::DomainTooLong => "domainpart longer than 1023 bytes",
            JidError::ResourceTooLong => "resourcepart longer than 1023 bytes",
            JidError::NodePrep => "localpart fails nodeprep",
            JidError::NamePrep => "domainpart fails nameprep",
            JidError::ResourcePrep => "resourcepart fails resourceprep",
            JidError::InvalidDomain => "domainpart is not a valid domain name or IP literal",
            JidError::UnexpectedResource => "a bare JID must not have a resourcepart",
            JidError::PrepUnavailable => "non-ASCII JID part and no stringprep in this build",
        }
    }
}

impl fmt::Display for JidError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

impl core::error::Error for JidError {}

/// A bare JID: optional localpart and a domainpart, both prepared.
///
/// Held as one shared allocation, `node@domain` (or `domain`), with the localpart's length:
/// a JID is cloned and compared on every routed stanza, and every session keeps a few
/// copies (stream, routing table, roster cache), which then cost no memory of their own.
#[derive(Clone)]
pub struct BareJid {
    /// The canonical text: both parts prepared.
    s: Arc<str>,
    /// Bytes of the localpart; 0 when there is none (a localpart is never empty).
    node_len: u16,
}

/// A JID with an optional resourcepart; a `Jid` without resource is a bare JID.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    bare: BareJid,
    resource: Option<Arc<str>>,
}

impl BareJid {
    /// Builds a bare JID from unprepared parts, preparing each.
    pub fn new(node: Option<&str>, domain: &str) -> Result<BareJid, JidError> {
        let node = match node {
            Some(n) => Some(prep_node(n)?),
            None => None,
        };
        let domain = prep_domain(domain)?;
        Ok(BareJid::from_prepared(node.as_deref(), &domain))
    }

    /// Joins prepared parts (each at most [`MAX_PART_BYTES`], so the length fits).
    fn from_prepared(node: Option<&str>, domain: &str) -> BareJid {
        match node {
            None => BareJid {
                s: domain.into(),
                node_len: 0,
            },
            Some(node) => BareJid {
                s: join3(node, "@", domain),
                node_len: u16::try_from(node.len()).unwrap_or(u16::MAX),
            },
        }
    }

    /// Parses and prepares a bare JID; a resourcepart is [`JidError::UnexpectedResource`].
    pub fn parse(s: &str) -> Result<BareJid, JidError> {
        let jid = Jid::parse(s)?;
        if jid.resource.is_some() {
            return Err(JidError::UnexpectedResource);
        }
        Ok(jid.bare)
    }

    /// The prepared localpart, if any.
    pub fn node(&self) -> Option<&str> {
        match self.node_len {
            0 => None,
            n => self.s.get(..usize::from(n)),
        }
    }

    /// The prepared domainpart.
    pub fn domain(&self) -> &str {
        match self.node_len {
            0 => &self.s,
            n => self.s.get(usize::from(n) + 1..).unwrap_or_default(),
        }
    }

    /// The canonical text, `node@domain` or `domain` (what `Display` writes).
    pub fn as_str(&self) -> &str {
        &self.s
    }

    /// A full JID made of this bare JID and the given (unprepared) resource.
    pub fn with_resource(&self, res: &str) -> Result<Jid, JidError> {
        Ok(Jid {
            bare: self.clone(),
            resource: Some(Arc::from(&*prep_resource(res)?)),
        })
    }

    /// A bare JID made of the domainpart only (the server's own JID).
    pub fn domain_jid(&self) -> BareJid {
        BareJid {
            s: self.domain().into(),
            node_len: 0,
        }
    }
}

// Equal and hashed as the canonical text (the localpart's length follows from it: a
// domainpart has no '@'), so a table keyed by `BareJid` can be searched with a `&str`
// (`Borrow<str>`) without preparing it first.
impl PartialEq for BareJid {
    fn eq(&self, other: &Self) -> bool {
        self.s == other.s
    }
}

impl Eq for BareJid {}

impl core::hash::Hash for BareJid {
    fn hash<H: core::hash::Hasher>(&self, state: &mut H) {
        str::hash(&self.s, state);
    }
}

impl core::borrow::Borrow<str> for BareJid {
    fn borrow(&self) -> &str {
        &self.s
    }
}

// Ordered by localpart (none first), then domainpart: the order of the parts, not of the
// joined text (where '@' would sort among the characters).
impl Ord for BareJid {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        self.node()
            .cmp(&other.node())
            .then_with(|| self.domain().cmp(other.domain()))
    }
}

impl PartialOrd for BareJid {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BareJid({:?})", &*self.s)
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jid({:?})", self.to_text())
    }
}

impl Jid {
    /// Builds a JID from unprepared parts, preparing each.
    pub fn new(node: Option<&str>, domain: &str, resource: Option<&str>) -> Result<Jid, JidError> {
        let bare = BareJid::new(node, domain)?;
        let resource = match resource {
            Some(r) => Some(Arc::from(&*prep_resource(r)?)),
            None => None,
        };
        Ok(Jid { bare, resource })
    }

    /// Parses and prepares a JID (bare or full) per RFC 7622 §3.1.
    pub fn parse(s: &str) -> Result<Jid, JidError> {
        // The resourcepart may itself contain '/' and '@': split at the first '/' only.
        // Byte searches: both separators are ASCII, and a JID is too short for memchr's
        // set-up to pay (`split_once` with a char goes through it).
        let (rest, resource) = match split_at_byte(s, b'/') {
            Some((rest, res)) => (rest, Some(res)),
            None => (s, None),
        };
        let (node, domain) = match split_at_byte(rest, b'@') {
            Some((node, domain)) => (Some(node), domain),
            None => (None, rest),
        };
        // Check the domain before the resource: its error is the more telling one.
        Jid::new(node, domain, resource)
    }

    /// The prepared localpart, if any.
    pub fn node(&self) -> Option<&str> {
        self.bare.node()
    }

    /// The prepared domainpart.
    pub fn domain(&self) -> &str {
        self.bare.domain()
    }

    /// The prepared resourcepart, if any.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The resourcepart's shared allocation, for a copy that costs no memory of its own.
    pub fn resource_shared(&self) -> Option<&Arc<str>> {
        self.resource.as_ref()
    }

    /// The bare part of this JID.
    pub fn bare(&self) -> &BareJid {
        &self.bare
    }

    /// A copy of the bare part of this JID.
    pub fn to_bare(&self) -> BareJid {
        self.bare.clone()
    }

    /// The bare part of this JID, dropping the resource.
    pub fn into_bare(self) -> BareJid {
        self.bare
    }

    /// Whether this JID has no resourcepart.
    pub fn is_bare(&self) -> bool {
        self.resource.is_none()
    }

    /// This JID with its resource replaced by the given (unprepared) one.
    pub fn with_resource(&self, res: &str) -> Result<Jid, JidError> {
        self.bare.with_resource(res)
    }

    /// The canonical text, as `to_string` gives it, allocated once at its final size
    /// (the server writes it into every stanza it routes).
    pub fn to_text(&self) -> String {
        let bare = self.bare.as_str();
        match self.resource() {
            None => bare.into(),
            Some(res) => {
                let mut s = String::with_capacity(bare.len() + 1 + res.len());
                s.push_str(bare);
                s.push('/');
                s.push_str(res);
                s
            }
        }
    }
}

/// `s` split around the first `sep` (an ASCII byte, so both sides are `str`s).
fn split_at_byte(s: &str, sep: u8) -> Option<(&str, &str)> {
    let at = s.bytes().position(|b| b == sep)?;
    Some((s.get(..at)?, s.get(at + 1..)?))
}

/// `a + b + c` in one shared allocation (see [`with_joined`]).
fn join3(a: &str, b: &str, c: &str) -> Arc<str> {
    with_joined(a, b, c, |s| Arc::from(s))
}

/// Calls `f` with `a + b + c`, joined on the stack when short (nearly every JID), so that
/// a caller that copies the text (into an `Arc`, or a `String` through `Display`) allocates
/// once, at the final size.
fn with_joined<R>(a: &str, b: &str, c: &str, f: impl FnOnce(&str) -> R) -> R {
    const STACK: usize = 128;
    let len = a.len() + b.len() + c.len();
    if len <= STACK {
        let mut buf = [0u8; STACK];
        let mut at = 0;
        for part in [a, b, c] {
            if let Some(dst) = buf.get_mut(at..at + part.len()) {
                dst.copy_from_slice(part.as_bytes());
            }
            at += part.len();
        }
        // Concatenated strs are UTF-8; the fallback is never taken.
        if let Some(joined) = buf.get(..len).and_then(|b| core::str::from_utf8(b).ok()) {
            return f(joined);
        }
    }
    let mut s = String::with_capacity(len);
    s.push_str(a);
    s.push_str(b);
    s.push_str(c);
    f(&s)
}

impl From<BareJid> for Jid {
    fn from(bare: BareJid) -> Jid {
        Jid {
            bare,
            resource: None,
        }
    }
}

impl fmt::Display for BareJid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.s)
    }
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.resource {
            None => fmt::Display::fmt(&self.bare, f),
            // One write: `to_string` then allocates once instead of growing three times.
            Some(res) => with_joined(self.bare.as_str(), "/", res, |s| f.write_str(s)),
        }
    }
}

impl FromStr for Jid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<Jid, JidError> {
        Jid::parse(s)
    }
}

impl FromStr for BareJid {
    type Err = JidError;
    fn from_str(s: &str) -> Result<BareJid, JidError> {
        BareJid::parse(s)
    }
}

// ---------------------------------------------------------------------------------------
// Preparation
// ---------------------------------------------------------------------------------------

/// Characters Nodeprep prohibits in addition to the stringprep tables (RFC 6122 A.5).
fn node_extra_prohibited(b: u8) -> bool {
    matches!(b, b'"' | b'&' | b'\'' | b'/' | b':' | b'<' | b'>' | b'@')
}

/// ASCII input that Resourceprep leaves unchanged: printable ASCII including space.
fn resource_fast_path_ok(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' '..=b'~'))
}

/// For ASCII input that Nodeprep maps only by case folding (printable, no space, not
/// prohibited), whether it has an uppercase letter; `None` when it needs Nodeprep proper.
fn ascii_node_scan(s: &str) -> Option<bool> {
    let mut upper = false;
    for b in s.bytes() {
        if !b.is_ascii_graphic() || node_extra_prohibited(b) {
            return None;
        }
        upper |= b.is_ascii_uppercase();
    }
    Some(upper)
}

fn check_len(s: &str, empty: JidError, too_long: JidError) -> Result<(), JidError> {
    if s.is_empty() {
        Err(empty)
    } else if s.len() > MAX_PART_BYTES {
        Err(too_long)
    } else {
        Ok(())
    }
}

fn prep_node(raw: &str) -> Result<Cow<'_, str>, JidError> {
    if raw.is_empty() {
        return Err(JidError::EmptyNode);
    }
    if raw.len() > MAX_RAW_PART_BYTES {
        return Err(JidError::NodeTooLong);
    }
    // One pass decides the fast path and whether it must copy.
    let out = match ascii_node_scan(raw) {
        Some(false) => Cow::Borrowed(raw),
        Some(true) => Cow::Owned(raw.to_ascii_lowercase()),
        None => Cow::Owned(nodeprep_slow(raw)?),
    };
    check_len(&out, JidError::EmptyNode, JidError::NodeTooLong)?;
    Ok(out)
}

#[cfg(feature = "std")]
fn nodeprep_slow(raw: &str) -> Result<String, JidError> {
    to_fixed_point(raw, JidError::NodePrep, stringprep::nodeprep)
}

/// Applies a stringprep profile until its output no longer changes (at most three times).
///
/// A profile is meant to be idempotent, but it maps case before it normalizes, and code
/// points unassigned in Unicode 3.2 (which the profiles pass through, as for queries) can
/// normalize to a capital: U+03F9 becomes U+03A3, which a second pass folds to U+03C3.
/// The prepared form must prepare to itself, or a JID would differ from its own printed
/// form (found by the `jid` fuzz target).
#[cfg(feature = "std")]
fn to_fixed_point<E>(
    raw: &str,
    failed: JidError,
    prep: impl Fn(&str) -> Result<Cow<'_, str>, E>,
) -> Result<String, JidError> {
    let mut out = prep(raw).map_err(|_| failed)?.into_owned();
    // Stringprep's tables make one pass stable for code points assigned in Unicode 3.2
    // (B.2 folds what NFKC can produce); only unassigned ones need the check, which
    // costs a second pass.
    if !raw.chars().any(stringprep::tables::unassigned_code_point) {
        return Ok(out);
    }
    for _ in 0..2 {
        let again = prep(&out).map_err(|_| failed)?;
        if again == out.as_str() {
            return Ok(out);
        }
        out = again.into_owned();
    }
    // Still changing: there is no stable form to compare by.
    Err(failed)
}

/// Without stringprep: ASCII outside the fast path has a prohibited character (Nodeprep
/// would fail too); anything else cannot be prepared here.
#[cfg(not(feature = "std"))]
fn nodeprep_slow(raw: &str) -> Result<String, JidError> {
    Err(if raw.is_ascii() {
        JidError::NodePrep
    } else {
        JidError::PrepUnavailable
    })
}

fn prep_resource(raw: &str) -> Result<Cow<'_, str>, JidError> {
    if raw.is_empty() {
        return Err(JidError::EmptyResource);
    }
    if raw.len() > MAX_RAW_PART_BYTES {
        return Err(JidError::ResourceTooLong);
    }
    let out = if resource_fast_path_ok(raw) {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(resourceprep_slow(raw)?)
    };
    check_len(&out, JidError::EmptyResource, JidError::ResourceTooLong)?;
    Ok(out)
}

#[cfg(feature = "std")]
fn resourceprep_slow(raw: &str) -> Result<String, JidError> {
    to_fixed_point(raw, JidError::ResourcePrep, stringprep::resourceprep)
}

/// Without stringprep: ASCII outside the fast path is a control character (Resourceprep
/// would fail too); anything else cannot be prepared here.
#[cfg(not(feature = "std"))]
fn resourceprep_slow(raw: &str) -> Result<String, JidError> {
    Err(if raw.is_ascii() {
        JidError::ResourcePrep
    } else {
        JidError::PrepUnavailable
    })
}

/// IDNA2003 label separators other than `.` (RFC 3490 §3.1).
fn is_label_separator(c: char) -> bool {
    matches!(c, '.' | '\u{3002}' | '\u{FF0E}' | '\u{FF61}')
}

fn prep_domain(raw: &str) -> Result<Cow<'_, str>, JidError> {
    if raw.len() > MAX_RAW_PART_BYTES {
        return Err(JidError::DomainTooLong);
    }
    if let Some(inner) = raw.strip_prefix('[') {
        return prep_ipv6_literal(inner).map(Cow::Owned);
    }
    // Map the IDNA dots first so that "example.com。" loses its trailing dot too.
    let mapped: Cow<'_, str> = if raw.is_ascii() {
        Cow::Borrowed(raw)
    } else {
        Cow::Owned(
            raw.chars()
                .map(|c| if is_label_separator(c) { '.' } else { c })
                .collect(),
        )
    };
    let out = match mapped {
        Cow::Borrowed(raw) => {
            let stripped = raw.strip_suffix('.').unwrap_or(raw);
            // Nameprep maps ASCII only by case folding and prohibits no ASCII character;
            // case folding keeps the length and the STD3 rules' verdict, so both are
            // checked on the input, in one pass with the search for uppercase.
            check_len(stripped, JidError::EmptyDomain, JidError::DomainTooLong)?;
            return Ok(if ascii_domain_scan(stripped)? {
                Cow::Owned(stripped.to_ascii_lowercase())
            } else {
                Cow::Borrowed(stripped)
            });
        }
        Cow::Owned(mapped) => {
            let stripped = mapped.strip_suffix('.').unwrap_or(&mapped);
            if stripped.is_ascii() {
                Cow::Owned(stripped.to_ascii_lowercase())
            } else {
                Cow::Owned(nameprep_slow(stripped)?)
            }
        }
    };
    check_len(&out, JidError::EmptyDomain, JidError::DomainTooLong)?;
    check_domain_chars(&out)?;
    Ok(out)
}

#[cfg(feature = "std")]
fn nameprep_slow(raw: &str) -> Result<String, JidError> {
    to_fixed_point(raw, JidError::NamePrep, stringprep::nameprep)
}

/// Only reached for non-ASCII input, which needs the stringprep tables.
#[cfg(not(feature = "std"))]
fn nameprep_slow(_raw: &str) -> Result<String, JidError> {
    Err(JidError::PrepUnavailable)
}

/// STD3 rules on the prepared domain: ASCII is letters, digits, `-`, `_`; no empty label.
/// No IDNA label separator either: Nameprep can produce one (U+FE12 becomes U+3002), and
/// the prepared form would then split differently when parsed again.
fn check_domain_chars(domain: &str) -> Result<(), JidError> {
    if domain.is_ascii() {
        return ascii_domain_scan(domain).map(|_| ());
    }
    for label in domain.split('.') {
        if label.is_empty() || (!label.is_ascii() && label.chars().any(is_label_separator)) {
            return Err(JidError::InvalidDomain);
        }
        let bad_ascii = label
            .bytes()
            .any(|b| b.is_ascii() && !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        if bad_ascii {
            return Err(JidError::InvalidDomain);
        }
    }
    Ok(())
}

/// [`check_domain_chars`] for an ASCII domain in one pass over its bytes (no splitting),
/// and whether it has an uppercase letter.
fn ascii_domain_scan(domain: &str) -> Result<bool, JidError> {
    let mut label_len = 0usize;
    let mut upper = false;
    for b in domain.bytes() {
        if b == b'.' {
            if label_len == 0 {
                return Err(JidError::InvalidDomain);
            }
            label_len = 0;
        } else if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            label_len += 1;
            upper |= b.is_ascii_uppercase();
        } else {
            return Err(JidError::InvalidDomain);
        }
    }
    if label_len == 0 {
        return Err(JidError::InvalidDomain);
    }
    Ok(upper)
}

/// `inner` is what follows the opening `[`.
fn prep_ipv6_literal(inner: &str) -> Result<String, JidError> {
    let addr = inner
        .strip_suffix(']')
        .ok_or(JidError::InvalidDomain)?
        .parse::<Ipv6Addr>()
        .map_err(|_| JidError::InvalidDomain)?;
    Ok(format!("[{addr}]"))
}

#[cfg(test)]
mod fast_path_tests {
    use super::*;
    use proptest::prelude::*;

    /// Reference: always run the full profile (what the fast path must equal).
    fn node_slow(s: &str) -> Result<String, JidError> {
        nodeprep_slow(s)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn node_fast_path_matches_nodeprep(s in "[\\x00-\\x7f]{1,40}") {
            if let Some(upper) = ascii_node_scan(&s) {
                prop_assert_eq!(Ok(s.to_ascii_lowercase()), node_slow(&s));
                prop_assert_eq!(upper, s.bytes().any(|b| b.is_ascii_uppercase()));
            } else {
                // Outside the fast path, ASCII input with a prohibited byte must fail.
                prop_assert_eq!(node_slow(&s), Err(JidError::NodePrep));
            }
        }

        #[test]
        fn resource_fast_path_matches_resourceprep(s in "[\\x00-\\x7f]{1,40}") {
            if resource_fast_path_ok(&s) {
                prop_assert_eq!(Ok(s.clone()), resourceprep_slow(&s));
            } else {
                prop_assert_eq!(resourceprep_slow(&s), Err(JidError::ResourcePrep));
            }
        }

        #[test]
        fn domain_ascii_path_matches_nameprep(s in "[\\x00-\\x7f]{1,40}") {
            prop_assert_eq!(Ok(s.to_ascii_lowercase()), nameprep_slow(&s));
        }

        /// The one-pass scan of an ASCII domain against the STD3 rules applied label by
        /// label, as `check_domain_chars` does for other domains.
        #[test]
        fn ascii_domain_scan_matches_the_label_rules(s in prop_oneof![
            "[\\x00-\\x7f]{0,40}",
            "[a-zA-Z0-9._-]{0,40}",
        ]) {
            let by_labels = s.split('.').all(|label| {
                !label.is_empty()
                    && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
            let scanned = ascii_domain_scan(&s);
            prop_assert_eq!(scanned.is_ok(), by_labels, "{:?}", s);
            if let Ok(upper) = scanned {
                prop_assert_eq!(upper, s.bytes().any(|b| b.is_ascii_uppercase()));
            }
        }

        #[test]
        fn parse_never_panics_and_display_round_trips(s in prop_oneof![
            "\\PC{0,60}",
            "[a-zA-Z0-9@/.:_\\[\\] -]{0,40}",
            "[a-zA-Z\u{e0}-\u{ff}\u{3a3}\u{ad}\u{fb00}@/.]{0,30}",
        ]) {
            if let Ok(jid) = Jid::parse(&s) {
                let again = Jid::parse(&jid.to_string());
                prop_assert_eq!(again, Ok(jid));
            }
        }

        /// A server looks its sessions up by the canonical text a client sent, before
        /// preparing it: that finds exactly the JID the prepared text would.
        #[test]
        fn a_table_of_bare_jids_is_searched_by_canonical_text(s in prop_oneof![
            "[a-zA-Z0-9@.]{1,30}",
            "[a-zA-Z\u{e0}-\u{ff}\u{3a3}@.]{1,30}",
        ]) {
            if let Ok(jid) = BareJid::parse(&s) {
                let mut table = std::collections::HashMap::new();
                table.insert(jid.clone(), 1);
                prop_assert_eq!(table.get(jid.as_str()), Some(&1));
                // Text that is not canonical misses (and is prepared on the slow path).
                prop_assert_eq!(table.contains_key(s.as_str()), s == jid.as_str());
            }
        }
    }
}
