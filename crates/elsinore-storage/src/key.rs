//! Byte encoding of [`Key`]s for ordered key-value stores.
//!
//! Layout: a format byte, then account, space name and key name, each escaped and terminated:
//! inside a part `0x00` is written as `0x00 0xFF`, and the part ends with `0x00 0x01`.
//! The encoding is unambiguous (any bytes in any part round-trip) and order-preserving:
//! encoded keys sort like `(account, space, name)` compared bytewise, so all keys of an account,
//! or of one space of an account, are one contiguous range starting with [`encode_prefix`].

use crate::{Key, StoreError};
use alloc::{format, string::String, vec::Vec};

/// Version of the layout, so a later change can be detected in stored data.
const FORMAT: u8 = 1;
const ESC: u8 = 0x00;
const ESCAPED_NUL: u8 = 0xFF;
const TERMINATOR: u8 = 0x01;

/// A kind of stored data. Stored by name ([`Space::as_str`]), so variants can be added or
/// reordered without changing existing keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Space {
    /// Account data: credentials and settings.
    Account,
    /// XEP-0049 private XML, one entry per namespace.
    Private,
    /// The roster (jabber:iq:roster), one entry per account.
    Roster,
    /// Offline messages, one entry per account.
    Offline,
    /// PEP nodes (XEP-0163 / XEP-0223), one entry per node: configuration and items.
    PubSub,
    /// The account's vCard (vcard-temp), and the server's user directory entry.
    VCard,
    /// Last activity (jabber:iq:last): when the account's last session ended.
    Last,
}

impl Space {
    /// Every space, for iteration in tests and tools.
    pub const ALL: &'static [Space] = &[
        Space::Account,
        Space::Private,
        Space::Roster,
        Space::Offline,
        Space::PubSub,
        Space::VCard,
        Space::Last,
    ];

    /// Stable name used in encoded keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Space::Account => "account",
            Space::Private => "private",
            Space::Roster => "roster",
            Space::Offline => "offline",
            Space::PubSub => "pubsub",
            Space::VCard => "vcard",
            Space::Last => "last",
        }
    }

    /// The space with this stable name.
    pub fn from_name(name: &str) -> Option<Space> {
        Space::ALL.iter().copied().find(|s| s.as_str() == name)
    }
}

impl core::fmt::Display for Space {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn push_part(out: &mut Vec<u8>, part: &[u8]) {
    for &b in part {
        out.push(b);
        if b == ESC {
            out.push(ESCAPED_NUL);
        }
    }
    out.extend_from_slice(&[ESC, TERMINATOR]);
}

/// Encode a key as bytes (see the module docs for the layout).
pub fn encode_key(key: &Key) -> Vec<u8> {
    let mut out =
        Vec::with_capacity(1 + key.account.len() + key.name.len() + key.space.as_str().len() + 6);
    out.push(FORMAT);
    push_part(&mut out, key.account.as_bytes());
    push_part(&mut out, key.space.as_str().as_bytes());
    push_part(&mut out, key.name.as_bytes());
    out
}

/// The encoded prefix shared by every key of `account` (and of `space`, if given): scan the
/// range of keys starting with it to list them.
pub fn encode_prefix(account: &str, space: Option<Space>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + account.len() + 2 + 12);
    out.push(FORMAT);
    push_part(&mut out, account.as_bytes());
    if let Some(space) = space {
        push_part(&mut out, space.as_str().as_bytes());
    }
    out
}

/// Read one part from the front of `input`, advancing it past the terminator.
fn take_part(input: &mut &[u8]) -> Result<String, StoreError> {
    let mut part = Vec::new();
    let mut i = 0;
    loop {
        let Some(&b) = input.get(i) else {
            return Err(StoreError::Corrupt("key part not terminated".into()));
        };
        if b != ESC {
            part.push(b);
            i += 1;
            continue;
        }
        match input.get(i + 1) {
            Some(&ESCAPED_NUL) => {
                part.push(ESC);
                i += 2;
            }
            Some(&TERMINATOR) => {
                *input = input.get(i + 2..).unwrap_or_default();
                return String::from_utf8(part)
                    .map_err(|_| StoreError::Corrupt("key part is not UTF-8".into()));
            }
            _ => return Err(StoreError::Corrupt("bad escape in key".into())),
        }
    }
}

/// Decode bytes produced by [`encode_key`]. Anything else is [`StoreError::Corrupt`].
pub fn decode_key(bytes: &[u8]) -> Result<Key, StoreError> {
    let Some((&format, mut rest)) = bytes.split_first() else {
        return Err(StoreError::Corrupt("empty key".into()));
    };
    if format != FORMAT {
        return Err(StoreError::Corrupt(format!("unknown key format {format}")));
    }
    let account = take_part(&mut rest)?;
    let space_name = take_part(&mut rest)?;
    let space = Space::from_name(&space_name)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown space {space_name:?}")))?;
    let name = take_part(&mut rest)?;
    if !rest.is_empty() {
        return Err(StoreError::Corrupt("trailing bytes after key".into()));
    }
    Ok(Key {
        account,
        space,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn space() -> impl Strategy<Value = Space> {
        prop::sample::select(Space::ALL)
    }

    fn key() -> impl Strategy<Value = Key> {
        // Include NUL and the escape bytes' neighbours so escaping is exercised.
        let part = "[a\u{0}\u{1}\u{7f}é@/:]{0,6}";
        (part, space(), part).prop_map(|(a, s, n)| Key::new(a, s, n))
    }

    #[test]
    fn known_layout() {
        let k = Key::new("a\0b", Space::Private, "");
        let mut want = vec![FORMAT, b'a', 0, 0xFF, b'b', 0, 1];
        want.extend_from_slice(b"private\0\x01\0\x01");
        assert_eq!(encode_key(&k), want);
        assert_eq!(decode_key(&want), Ok(k));
    }

    #[test]
    fn malformed_keys_are_corrupt_not_panics() {
        for bad in [
            &b""[..],
            b"\x02a\0\x01private\0\x01n\0\x01",
            b"\x01a",
            b"\x01a\0",
            b"\x01a\0\x02",
            b"\x01a\0\x01nospace\0\x01n\0\x01",
            b"\x01a\0\x01private\0\x01n\0\x01x",
            b"\x01\xff\0\x01private\0\x01n\0\x01",
        ] {
            assert!(
                matches!(decode_key(bad), Err(StoreError::Corrupt(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn prefix_covers_space_and_account() {
        let k = Key::new("juliet@capulet.lit", Space::Private, "storage:bookmarks");
        let enc = encode_key(&k);
        assert!(enc.starts_with(&encode_prefix(&k.account, None)));
        assert!(enc.starts_with(&encode_prefix(&k.account, Some(Space::Private))));
        assert!(!enc.starts_with(&encode_prefix(&k.account, Some(Space::Account))));
        // "juliet@capulet.li" must not be a prefix match of the longer account.
        assert!(!enc.starts_with(&encode_prefix("juliet@capulet.li", None)));
    }

    proptest! {
        #[test]
        fn round_trip(k in key()) {
            prop_assert_eq!(decode_key(&encode_key(&k)), Ok(k));
        }

        #[test]
        fn order_preserving(a in key(), b in key()) {
            let tuple = |k: &Key| (k.account.clone(), k.space.as_str(), k.name.clone());
            prop_assert_eq!(encode_key(&a).cmp(&encode_key(&b)), tuple(&a).cmp(&tuple(&b)));
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..40)) {
            let _ = decode_key(&bytes);
        }
    }
}
