//! SCRAM message syntax (RFC 5802 §7) shared by the client and the server.

use alloc::string::String;

use crate::{MAX_NONCE_BYTES, MAX_SALT_BYTES};

/// The GS2 channel-binding flag of a client-first message (RFC 5802 §7, `gs2-cbind-flag`).
///
/// Channel binding (-PLUS) is not implemented yet; the variant `Required` is parsed so that a
/// server can reject it explicitly, and so that -PLUS support only adds a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CbindFlag {
    /// `n`: the client does not support channel binding.
    No,
    /// `y`: the client supports it but believes the server does not.
    ClientOnly,
    /// `p=<name>`: the client requires channel binding of the given type.
    Required(String),
}

/// A parsed GS2 header (`flag,[a=authzid],`).
#[derive(Debug, Clone)]
pub(crate) struct Gs2Header<'a> {
    pub(crate) flag: CbindFlag,
    /// The authzid, still escaped as a saslname.
    pub(crate) authzid: Option<&'a str>,
    /// The header text exactly as sent, including the trailing comma.
    pub(crate) raw: &'a str,
}

/// Splits a client-first message into its GS2 header and the client-first-message-bare.
pub(crate) fn split_gs2(msg: &str) -> Option<(Gs2Header<'_>, &str)> {
    let (flag_text, rest) = msg.split_once(',')?;
    let flag = match flag_text {
        "n" => CbindFlag::No,
        "y" => CbindFlag::ClientOnly,
        _ => {
            let name = flag_text.strip_prefix("p=")?;
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return None;
            }
            CbindFlag::Required(String::from(name))
        }
    };
    let (authz_text, bare) = rest.split_once(',')?;
    let authzid = if authz_text.is_empty() {
        None
    } else {
        Some(authz_text.strip_prefix("a=")?)
    };
    let header_len = flag_text.len() + 1 + authz_text.len() + 1;
    let raw = msg.get(..header_len)?;
    Some((Gs2Header { flag, authzid, raw }, bare))
}

/// Iterates over `x=value` attributes separated by commas.
pub(crate) struct Attrs<'a> {
    rest: Option<&'a str>,
}

impl<'a> Attrs<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Attrs { rest: Some(s) }
    }
}

impl<'a> Iterator for Attrs<'a> {
    /// `Some((name, value))`, or `None` inside `Some` for a malformed attribute.
    type Item = Option<(u8, &'a str)>;

    fn next(&mut self) -> Option<Self::Item> {
        let s = self.rest?;
        let (attr, rest) = match s.split_once(',') {
            Some((a, r)) => (a, Some(r)),
            None => (s, None),
        };
        self.rest = rest;
        let bytes = attr.as_bytes();
        match (bytes.first(), bytes.get(1)) {
            (Some(&name), Some(b'=')) if name.is_ascii_alphabetic() => {
                Some(attr.get(2..).map(|v| (name, v)))
            }
            _ => Some(None),
        }
    }
}

/// Whether `n` is a valid nonce (printable ASCII except `,`) within the length limit.
pub(crate) fn valid_nonce(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= MAX_NONCE_BYTES
        && n.bytes().all(|b| matches!(b, 0x21..=0x7e) && b != b',')
}

/// Decodes a `saslname`: `=2C` is `,`, `=3D` is `=`; any other `=` or a bare `,` is invalid.
pub(crate) fn unescape_saslname(s: &str) -> Option<String> {
    if s.is_empty() || s.contains('\0') || s.contains(',') {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('=') {
        out.push_str(rest.get(..pos)?);
        let code = rest.get(pos + 1..pos + 3)?;
        match code {
            "2C" => out.push(','),
            "3D" => out.push('='),
            _ => return None,
        }
        rest = rest.get(pos + 3..)?;
    }
    out.push_str(rest);
    Some(out)
}

/// Encodes a `saslname`, escaping `,` and `=`.
pub(crate) fn escape_saslname(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            ',' => out.push_str("=2C"),
            '=' => out.push_str("=3D"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes standard padded base64, bounding the decoded length.
pub(crate) fn decode_b64(s: &str, max: usize) -> Option<alloc::vec::Vec<u8>> {
    use base64::Engine as _;
    // Base64 takes 4 characters per 3 bytes: longer text cannot decode within `max`.
    if s.len() > max.div_ceil(3) * 4 {
        return None;
    }
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Encodes standard padded base64.
pub(crate) fn encode_b64(data: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Decodes a salt attribute: base64, 1..=[`MAX_SALT_BYTES`] bytes.
pub(crate) fn decode_salt(s: &str) -> Option<alloc::vec::Vec<u8>> {
    decode_b64(s, MAX_SALT_BYTES).filter(|salt| !salt.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saslname_round_trip() {
        for s in ["user", "a,b", "a=b", "=,=,", "é=2C"] {
            assert_eq!(unescape_saslname(&escape_saslname(s)).as_deref(), Some(s));
        }
        assert_eq!(escape_saslname("a,b=c"), "a=2Cb=3Dc");
        assert_eq!(unescape_saslname("a=2Cb=3Dc").as_deref(), Some("a,b=c"));
        for bad in ["", "a=", "a=2", "a=2c", "a=3d", "a=41", "a\0b", "a,b", "=="] {
            assert_eq!(unescape_saslname(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn gs2_headers() {
        let (h, bare) = split_gs2("n,,n=user,r=abc").expect("valid");
        assert_eq!(h.flag, CbindFlag::No);
        assert_eq!(h.authzid, None);
        assert_eq!(h.raw, "n,,");
        assert_eq!(bare, "n=user,r=abc");

        let (h, bare) = split_gs2("y,a=admin,n=user,r=abc").expect("valid");
        assert_eq!(h.flag, CbindFlag::ClientOnly);
        assert_eq!(h.authzid, Some("admin"));
        assert_eq!(h.raw, "y,a=admin,");
        assert_eq!(bare, "n=user,r=abc");

        let (h, _) = split_gs2("p=tls-exporter,,n=u,r=x").expect("valid");
        assert_eq!(h.flag, CbindFlag::Required("tls-exporter".into()));

        for bad in [
            "",
            "n",
            "n,",
            "x,,n=u",
            "p=,,n=u",
            "n,b=x,n=u",
            "p=a b,,n=u",
        ] {
            assert!(split_gs2(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn attrs() {
        let v: alloc::vec::Vec<_> = Attrs::new("r=abc,s=QQ==,i=4096").collect();
        assert_eq!(
            v,
            [
                Some((b'r', "abc")),
                Some((b's', "QQ==")),
                Some((b'i', "4096"))
            ]
        );
        let v: alloc::vec::Vec<_> = Attrs::new("r=a,,1=b,x").collect();
        assert_eq!(v, [Some((b'r', "a")), None, None, None]);
    }

    #[test]
    fn nonces() {
        assert!(valid_nonce("fyko+d2lbbFgONRv9qkxdawL"));
        assert!(!valid_nonce(""));
        assert!(!valid_nonce("a,b"));
        assert!(!valid_nonce("a b"));
        assert!(!valid_nonce("é"));
        assert!(!valid_nonce(&"a".repeat(MAX_NONCE_BYTES + 1)));
    }
}
