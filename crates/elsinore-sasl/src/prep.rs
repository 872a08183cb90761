//! SASLprep (RFC 4013) for authcid, authzid and password.

use alloc::borrow::Cow;

use crate::SaslError;

/// ASCII without controls: SASLprep maps and prohibits nothing here (RFC 4013 §2).
fn ascii_unchanged(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' '..=b'~'))
}

/// Prepares `s` with SASLprep ("stored strings": unassigned code points are rejected).
#[cfg(feature = "std")]
pub(crate) fn saslprep(s: &str) -> Result<Cow<'_, str>, SaslError> {
    if ascii_unchanged(s) {
        return Ok(Cow::Borrowed(s));
    }
    stringprep::saslprep(s).map_err(|_| SaslError::Prep)
}

/// Prepares `s` with SASLprep; without `std` only ASCII can be prepared.
#[cfg(not(feature = "std"))]
pub(crate) fn saslprep(s: &str) -> Result<Cow<'_, str>, SaslError> {
    if ascii_unchanged(s) {
        Ok(Cow::Borrowed(s))
    } else if s.is_ascii() {
        // ASCII control characters are prohibited (RFC 4013 §2.3, table C.2.1).
        Err(SaslError::Prep)
    } else {
        Err(SaslError::PrepUnavailable)
    }
}

#[cfg(all(test, feature = "std"))]
mod tests {
    use super::*;

    #[test]
    fn rfc4013_examples() {
        // RFC 4013 §3.
        assert_eq!(saslprep("I\u{AD}X").as_deref(), Ok("IX"));
        assert_eq!(saslprep("user").as_deref(), Ok("user"));
        assert_eq!(saslprep("USER").as_deref(), Ok("USER"));
        assert_eq!(saslprep("\u{AA}").as_deref(), Ok("a"));
        assert_eq!(saslprep("\u{2168}").as_deref(), Ok("IX"));
        assert_eq!(saslprep("\u{7}"), Err(SaslError::Prep));
        assert_eq!(saslprep("\u{627}\u{31}"), Err(SaslError::Prep));
    }
}
