//! `Jid::parse` / `BareJid::parse` on arbitrary text.
//!
//! Checks: never panics; when Ok, every part is at most 1023 bytes, the canonical form
//! parses back to an equal JID (preparation is idempotent), a bare JID also parses as a
//! full JID without resource, and the bare part of a full JID parses as a `BareJid`.
#![no_main]

use elsinore_jid::{BareJid, Jid, MAX_PART_BYTES};
use libfuzzer_sys::fuzz_target;

fn check_parts(node: Option<&str>, domain: &str, resource: Option<&str>) {
    for part in [node, Some(domain), resource].into_iter().flatten() {
        assert!(!part.is_empty(), "empty part");
        assert!(part.len() <= MAX_PART_BYTES, "part of {} bytes", part.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let full = Jid::parse(s);
    if let Ok(j) = &full {
        check_parts(j.node(), j.domain(), j.resource());
        let text = j.to_string();
        let again = Jid::parse(&text);
        assert_eq!(again.as_ref(), Ok(j), "{s:?} -> {text:?}");
        let bare_text = j.bare().to_string();
        assert_eq!(
            BareJid::parse(&bare_text).as_ref(),
            Ok(j.bare()),
            "{bare_text:?}"
        );
    }
    let bare = BareJid::parse(s);
    if let Ok(b) = &bare {
        check_parts(b.node(), b.domain(), None);
        let text = b.to_string();
        assert_eq!(BareJid::parse(&text).as_ref(), Ok(b), "{s:?} -> {text:?}");
        // A bare JID is a full JID without a resource.
        let as_full = full.as_ref().map_err(|e| format!("{e:?}"));
        assert_eq!(as_full.map(Jid::bare), Ok(b), "{s:?}");
        assert_eq!(full.as_ref().map(Jid::resource), Ok(None), "{s:?}");
    }
});
