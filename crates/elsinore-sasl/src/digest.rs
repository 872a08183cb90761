//! DIGEST-MD5 (RFC 2831) pieces shared by both sides: the directive-list syntax, the
//! response and `rspauth` computations. Only `qop=auth` is supported: no integrity or
//! confidentiality layer.

use alloc::borrow::Cow;
use alloc::string::String;
use alloc::vec::Vec;

use md5::{Digest, Md5};

/// Largest DIGEST-MD5 message accepted (RFC 2831 §2.1.2: responses are under 4096 bytes).
pub(crate) const MAX_DIGEST_MESSAGE_BYTES: usize = 4096;
/// Largest number of directives in one message.
pub(crate) const MAX_DIRECTIVES: usize = 32;
/// The only `nc` value of an exchange: no subsequent authentication (RFC 2831 §2.2).
pub(crate) const NONCE_COUNT: &str = "00000001";

/// One `name=value` directive; `name` as sent (compare case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Directive<'a> {
    pub(crate) name: &'a str,
    pub(crate) value: Cow<'a, str>,
}

/// RFC 2616 token characters: CHAR minus CTLs and separators.
fn is_token_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && !b"()<>@,;:\\\"/[]?={}".contains(&b)
}

fn is_lws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Parses `#( token "=" ( token | quoted-string ) )`: commas with optional white space,
/// empty elements allowed, backslash escapes in quoted strings. `None` on any syntax error,
/// over [`MAX_DIRECTIVES`] directives, or over [`MAX_DIGEST_MESSAGE_BYTES`].
pub(crate) fn parse_directives(s: &str) -> Option<Vec<Directive<'_>>> {
    if s.len() > MAX_DIGEST_MESSAGE_BYTES {
        return None;
    }
    let b = s.as_bytes();
    let mut i = 0;
    let mut out = Vec::new();
    let skip_ws = |mut i: usize| {
        while b.get(i).is_some_and(|&c| is_lws(c)) {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        match b.get(i) {
            None => break,
            Some(b',') => {
                i += 1;
                continue;
            }
            Some(_) => {}
        }
        let start = i;
        while b.get(i).is_some_and(|&c| is_token_byte(c)) {
            i += 1;
        }
        let name = s.get(start..i).filter(|n| !n.is_empty())?;
        i = skip_ws(i);
        if b.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_ws(i + 1);
        let value = if b.get(i) == Some(&b'"') {
            i += 1;
            let start = i;
            let mut unescaped: Option<String> = None;
            loop {
                match b.get(i)? {
                    b'"' => break,
                    b'\\' => {
                        // quoted-pair: the next character stands for itself.
                        let seg = s.get(start..i)?;
                        // From the first escape on, the value is built in `buf`.
                        let buf = unescaped.get_or_insert_with(|| String::from(seg));
                        let c = s.get(i + 1..)?.chars().next()?;
                        buf.push(c);
                        i += 1 + c.len_utf8();
                        continue;
                    }
                    _ => {
                        let c = s.get(i..)?.chars().next()?;
                        if let Some(buf) = unescaped.as_mut() {
                            buf.push(c);
                        }
                        i += c.len_utf8();
                    }
                }
            }
            let raw = s.get(start..i)?;
            i += 1;
            match unescaped {
                Some(v) => Cow::Owned(v),
                None => Cow::Borrowed(raw),
            }
        } else {
            let start = i;
            while b.get(i).is_some_and(|&c| is_token_byte(c)) {
                i += 1;
            }
            Cow::Borrowed(s.get(start..i).filter(|v| !v.is_empty())?)
        };
        out.push(Directive { name, value });
        if out.len() > MAX_DIRECTIVES {
            return None;
        }
        i = skip_ws(i);
        match b.get(i) {
            None => break,
            Some(b',') => i += 1,
            Some(_) => return None,
        }
    }
    Some(out)
}

/// The value of the directive `name`, if it occurs once; `Err` if it occurs more often
/// (RFC 2831 allows each directive at most once, realm in challenges aside).
pub(crate) fn unique<'d>(dirs: &'d [Directive<'_>], name: &str) -> Result<Option<&'d str>, ()> {
    let mut found = None;
    for d in dirs.iter().filter(|d| d.name.eq_ignore_ascii_case(name)) {
        if found.is_some() {
            return Err(());
        }
        found = Some(d.value.as_ref());
    }
    Ok(found)
}

/// Appends `"value"` with `"` and `\` escaped.
pub(crate) fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Lower-case hex.
pub(crate) fn hex(data: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(data.len() * 2);
    for &b in data {
        // Both indexes are nibbles, below 16.
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    out
}

/// Whether `s` is 32 hex digits (a response or rspauth value).
pub(crate) fn is_hex32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// RFC 2831 §2.1.2.1: with `charset=utf-8`, strings whose characters all fit ISO 8859-1
/// are hashed in ISO 8859-1, others in UTF-8.
fn latin1_or_utf8(s: &str) -> Cow<'_, [u8]> {
    if s.is_ascii() {
        return Cow::Borrowed(s.as_bytes());
    }
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => return Cow::Borrowed(s.as_bytes()),
        }
    }
    Cow::Owned(out)
}

/// `H({ username-value, ":", realm-value, ":", passwd })`: what a server may store.
pub(crate) fn user_hash(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = Md5::new();
    h.update(latin1_or_utf8(username));
    h.update(b":");
    h.update(latin1_or_utf8(realm));
    h.update(b":");
    h.update(latin1_or_utf8(password));
    h.finalize().into()
}

/// The values that enter the response computation (RFC 2831 §2.1.2.1).
pub(crate) struct ResponseInput<'a> {
    pub(crate) user_hash: &'a [u8; 16],
    pub(crate) nonce: &'a str,
    pub(crate) cnonce: &'a str,
    pub(crate) nc: &'a str,
    pub(crate) digest_uri: &'a str,
    pub(crate) authzid: Option<&'a str>,
}

impl ResponseInput<'_> {
    fn kd(&self, a2_prefix: &[u8]) -> String {
        let mut a1 = Md5::new();
        a1.update(self.user_hash);
        a1.update(b":");
        a1.update(self.nonce.as_bytes());
        a1.update(b":");
        a1.update(self.cnonce.as_bytes());
        if let Some(z) = self.authzid {
            a1.update(b":");
            a1.update(z.as_bytes());
        }
        let ha1 = hex(&a1.finalize());
        let mut a2 = Md5::new();
        a2.update(a2_prefix);
        a2.update(b":");
        a2.update(self.digest_uri.as_bytes());
        let ha2 = hex(&a2.finalize());
        // KD(k, s) = H(k ":" s) with s = nonce ":" nc ":" cnonce ":" qop ":" HEX(H(A2)).
        let mut kd = Md5::new();
        for part in [ha1.as_str(), self.nonce, self.nc, self.cnonce, "auth"] {
            kd.update(part.as_bytes());
            kd.update(b":");
        }
        kd.update(ha2.as_bytes());
        hex(&kd.finalize())
    }

    /// The client's `response` value (A2 = "AUTHENTICATE:" digest-uri).
    pub(crate) fn response(&self) -> String {
        self.kd(b"AUTHENTICATE")
    }

    /// The server's `rspauth` value (A2 = ":" digest-uri).
    pub(crate) fn rspauth(&self) -> String {
        self.kd(b"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2831_example() {
        let uh = user_hash("chris", "elwood.innosoft.com", "secret");
        let input = ResponseInput {
            user_hash: &uh,
            nonce: "OA6MG9tEQGm2hh",
            cnonce: "OA6MHXh6VqTrRk",
            nc: NONCE_COUNT,
            digest_uri: "imap/elwood.innosoft.com",
            authzid: None,
        };
        assert_eq!(input.response(), "d388dad90d4bbd760a152321f2143af7");
        assert_eq!(input.rspauth(), "ea40f60335c427b5527b84dbabcdfffd");
    }

    #[test]
    fn directives() {
        let d = parse_directives(
            r#"realm="elwood.innosoft.com",nonce="OA6MG9tEQGm2hh",qop="auth",algorithm=md5-sess,charset=utf-8"#,
        )
        .expect("valid");
        assert_eq!(d.len(), 5);
        assert_eq!(d[0].name, "realm");
        assert_eq!(d[0].value, "elwood.innosoft.com");
        assert_eq!(d[3].value, "md5-sess");
        let d = parse_directives(r#" a = "x\"y\\z" ,, b=c , "#).expect("valid");
        assert_eq!(d[0].value, "x\"y\\z");
        assert_eq!(d[1].value, "c");
        let d = parse_directives(r#"a="é\é""#).expect("valid");
        assert_eq!(d[0].value, "éé");
        assert_eq!(parse_directives("").map(|d| d.len()), Some(0));
        for bad in [
            "a", "a=", "=b", "a=\"x", "a=\"x\\", "a=b c=d", "a=\"x\"y", "a b=c", "a=b;c",
        ] {
            assert!(parse_directives(bad).is_none(), "{bad:?}");
        }
        let many = "a=b,".repeat(MAX_DIRECTIVES + 1);
        assert!(parse_directives(&many).is_none());
        assert!(unique(&parse_directives("a=1,A=2").expect("valid"), "a").is_err());
    }

    #[test]
    fn latin1_hashing() {
        // "é" fits ISO 8859-1: hashed as one byte.
        assert_eq!(
            user_hash("\u{e9}", "r", "p"),
            <[u8; 16]>::from(Md5::digest(b"\xe9:r:p"))
        );
        // "€" does not: UTF-8.
        assert_eq!(
            user_hash("\u{20ac}", "r", "p"),
            <[u8; 16]>::from(Md5::digest("\u{20ac}:r:p".as_bytes()))
        );
    }
}
