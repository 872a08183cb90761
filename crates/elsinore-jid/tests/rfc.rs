//! JID examples from RFC 6122 / RFC 7622 §3.5, limits, case folding, IP literals.

use elsinore_jid::{BareJid, Jid, JidError, MAX_PART_BYTES};

fn canon(s: &str) -> String {
    match Jid::parse(s) {
        Ok(j) => j.to_string(),
        Err(e) => panic!("{s:?} should parse: {e}"),
    }
}

#[test]
fn rfc7622_valid_examples() {
    let cases = [
        ("juliet@example.com", "juliet@example.com"),
        ("juliet@example.com/foo", "juliet@example.com/foo"),
        ("juliet@example.com/foo bar", "juliet@example.com/foo bar"),
        ("juliet@example.com/foo@bar", "juliet@example.com/foo@bar"),
        ("foo\\20bar@example.com", "foo\\20bar@example.com"),
        ("fussball@example.com", "fussball@example.com"),
        ("π@example.com", "π@example.com"),
        ("Σ@example.com/foo", "σ@example.com/foo"),
        ("σ@example.com/foo", "σ@example.com/foo"),
        ("king@example.com/♚", "king@example.com/♚"),
        ("example.com", "example.com"),
        ("example.com/foobar", "example.com/foobar"),
        ("a.example.com/b@example.net", "a.example.com/b@example.net"),
    ];
    for (input, want) in cases {
        assert_eq!(canon(input), want, "input {input:?}");
    }
}

#[test]
fn stringprep_specific_mappings() {
    // Nodeprep case-folds ß to "ss" (PRECIS would keep ß): the two name the same account.
    assert_eq!(canon("fußball@example.com"), "fussball@example.com");
    // NFKC maps U+2163 ROMAN NUMERAL FOUR to "iv" (PRECIS rejects it).
    assert_eq!(canon("henryⅣ@example.com"), "henryiv@example.com");
    // U+FB00 LATIN SMALL LIGATURE FF becomes "ff".
    assert_eq!(canon("\u{FB00}@example.com"), "ff@example.com");
    // Characters mapped to nothing disappear (U+00AD SOFT HYPHEN).
    assert_eq!(canon("ju\u{AD}liet@example.com"), "juliet@example.com");
}

#[test]
fn rfc7622_invalid_examples() {
    let cases = [
        ("\"juliet\"@example.com", JidError::NodePrep),
        ("foo bar@example.com", JidError::NodePrep),
        ("juliet@example.com/", JidError::EmptyResource),
        ("@example.com/", JidError::EmptyNode),
        ("@example.com", JidError::EmptyNode),
        ("juliet@", JidError::EmptyDomain),
        ("/foobar", JidError::EmptyDomain),
        ("", JidError::EmptyDomain),
        ("a@b@example.com", JidError::InvalidDomain),
        ("juliet@exa mple.com", JidError::InvalidDomain),
        ("juliet@example..com", JidError::InvalidDomain),
        ("juliet@.example.com", JidError::InvalidDomain),
        ("juliet@example.com/\u{7}", JidError::ResourcePrep),
        ("jul\u{7}iet@example.com", JidError::NodePrep),
        // Private use code point in a resource.
        ("juliet@example.com/\u{E000}", JidError::ResourcePrep),
        // Mixed right-to-left and left-to-right text violates the bidi rule.
        ("\u{05D0}a@example.com", JidError::NodePrep),
    ];
    for (input, want) in cases {
        assert_eq!(Jid::parse(input), Err(want), "input {input:?}");
    }
}

#[test]
fn case_folding() {
    let jid = Jid::parse("Juliet@Capulet.LIT/Balcony").expect("valid");
    assert_eq!(jid.to_string(), "juliet@capulet.lit/Balcony");
    assert_eq!(jid.node(), Some("juliet"));
    assert_eq!(jid.domain(), "capulet.lit");
    assert_eq!(jid.resource(), Some("Balcony"));
    assert_eq!(
        jid,
        Jid::parse("juliet@capulet.lit/Balcony").expect("valid")
    );
    assert_ne!(
        jid,
        Jid::parse("juliet@capulet.lit/balcony").expect("valid")
    );
    // Non-ASCII case folding in the domain too.
    assert_eq!(canon("ÄBC.example"), "äbc.example");
}

#[test]
fn trailing_dot_is_stripped_once() {
    assert_eq!(canon("juliet@example.com."), "juliet@example.com");
    assert_eq!(canon("juliet@example.com。"), "juliet@example.com");
    assert_eq!(canon("juliet@example。com"), "juliet@example.com");
    assert_eq!(
        Jid::parse("juliet@example.com.."),
        Err(JidError::InvalidDomain)
    );
    assert_eq!(Jid::parse("juliet@."), Err(JidError::EmptyDomain));
}

#[test]
fn part_length_limits() {
    let ok = "a".repeat(MAX_PART_BYTES);
    let long = "a".repeat(MAX_PART_BYTES + 1);

    assert!(Jid::new(Some(&ok), "example.com", Some(&ok)).is_ok());
    assert_eq!(
        Jid::new(Some(&long), "example.com", None),
        Err(JidError::NodeTooLong)
    );
    assert_eq!(
        Jid::new(None, "example.com", Some(&long)),
        Err(JidError::ResourceTooLong)
    );

    // A 1023-byte domain made of labels.
    let domain_ok = format!("{}.{}", "b".repeat(511), "c".repeat(511));
    assert_eq!(domain_ok.len(), 1023);
    assert!(BareJid::new(None, &domain_ok).is_ok());
    let domain_long = format!("{domain_ok}d");
    assert_eq!(
        BareJid::new(None, &domain_long),
        Err(JidError::DomainTooLong)
    );
    // The trailing dot does not count.
    assert!(BareJid::new(None, &format!("{domain_ok}.")).is_ok());

    // The limit applies after preparation: 'ß' (2 bytes) prepares to "ss" (2 bytes), but
    // U+FB03 (3 bytes) prepares to "ffi" (3 bytes) and 'Σ' (2 bytes) to 'σ' (2 bytes).
    let sigmas = "Σ".repeat(511); // 1022 bytes
    assert!(Jid::new(Some(&sigmas), "example.com", None).is_ok());
    let sigmas_long = "Σ".repeat(512); // 1024 bytes
    assert_eq!(
        Jid::new(Some(&sigmas_long), "example.com", None),
        Err(JidError::NodeTooLong)
    );
    // Soft hyphens map to nothing: a long raw part can prepare to a short one.
    let shy = format!("{}x", "\u{AD}".repeat(600)); // 1201 raw bytes
    assert_eq!(
        Jid::new(Some(&shy), "example.com", None)
            .expect("prepares to one char")
            .node(),
        Some("x")
    );
    // Huge raw input is rejected before preparation.
    let huge = "\u{AD}".repeat(5000);
    assert_eq!(
        Jid::new(Some(&huge), "example.com", None),
        Err(JidError::NodeTooLong)
    );
    // A part that prepares to nothing is empty.
    assert_eq!(
        Jid::new(Some("\u{AD}"), "example.com", None),
        Err(JidError::EmptyNode)
    );
}

#[test]
fn ip_literals() {
    assert_eq!(canon("juliet@192.0.2.1/r"), "juliet@192.0.2.1/r");
    assert_eq!(canon("juliet@[2001:DB8::1]/r"), "juliet@[2001:db8::1]/r");
    assert_eq!(canon("[2001:db8:0:0:0:0:0:1]"), "[2001:db8::1]");
    assert_eq!(
        Jid::parse("[2001:db8::1]").expect("v6"),
        Jid::parse("[2001:0db8::0:1]").expect("v6")
    );
    assert_eq!(canon("[::ffff:192.0.2.1]"), "[::ffff:192.0.2.1]");
    for bad in [
        "juliet@[2001:db8::1",
        "juliet@[not-an-ip]",
        "juliet@2001:db8::1",
        "juliet@[192.0.2.1]",
        "juliet@[]",
    ] {
        assert_eq!(Jid::parse(bad), Err(JidError::InvalidDomain), "{bad:?}");
    }
}

#[test]
fn split_rules() {
    // Resource is everything after the first '/', even if it contains '@' and '/'.
    let jid = Jid::parse("a@b.example/c@d/e").expect("valid");
    assert_eq!(jid.node(), Some("a"));
    assert_eq!(jid.domain(), "b.example");
    assert_eq!(jid.resource(), Some("c@d/e"));
    // No node when the '@' comes after the '/'.
    let jid = Jid::parse("b.example/c@d").expect("valid");
    assert_eq!(jid.node(), None);
    assert_eq!(jid.resource(), Some("c@d"));
}

#[test]
fn bare_and_full() {
    let full = Jid::parse("juliet@example.com/balcony").expect("valid");
    assert!(!full.is_bare());
    let bare = full.to_bare();
    assert_eq!(bare.to_string(), "juliet@example.com");
    assert_eq!(full.bare(), &bare);
    assert_eq!(bare.with_resource("balcony"), Ok(full.clone()));
    assert!(Jid::from(bare.clone()).is_bare());
    assert_eq!("juliet@example.com".parse::<BareJid>(), Ok(bare.clone()));
    assert_eq!(
        BareJid::parse("juliet@example.com/balcony"),
        Err(JidError::UnexpectedResource)
    );
    assert_eq!(
        "Juliet@Example.com".parse::<Jid>().map(Jid::into_bare),
        Ok(bare.clone())
    );
    assert_eq!(bare.domain_jid().to_string(), "example.com");
    assert_eq!(bare.with_resource(""), Err(JidError::EmptyResource));
}

#[test]
fn ordering_and_hash_use_normalised_form() {
    use std::collections::{BTreeSet, HashSet};
    let inputs = ["A@x.example", "a@X.example", "a@x.example.", "b@x.example"];
    let hashed: HashSet<Jid> = inputs.iter().map(|s| s.parse().expect("valid")).collect();
    assert_eq!(hashed.len(), 2);
    let ordered: BTreeSet<Jid> = inputs.iter().map(|s| s.parse().expect("valid")).collect();
    let names: Vec<String> = ordered.iter().map(Jid::to_string).collect();
    assert_eq!(names, ["a@x.example", "b@x.example"]);
}

#[test]
fn errors_display() {
    assert_eq!(
        JidError::NodeTooLong.to_string(),
        "localpart longer than 1023 bytes"
    );
    let e: Box<dyn std::error::Error> = Box::new(JidError::EmptyDomain);
    assert!(!e.to_string().is_empty());
}

/// JIDs order by localpart (none first), then domainpart, then resource: the order of
/// the parts, whatever the internal representation (sorted rosters rely on it).
#[test]
fn order_is_by_parts() {
    let sorted = [
        "a.example",
        "b.example",
        "a@b.example",
        "a@b.example/r",
        "a-b@a.example",
        "ab@a.example",
    ];
    let mut jids: Vec<Jid> = sorted
        .iter()
        .rev()
        .map(|s| Jid::parse(s).expect("valid JID"))
        .collect();
    jids.sort();
    let got: Vec<String> = jids.iter().map(ToString::to_string).collect();
    assert_eq!(got, sorted);
    // '-' (0x2d) sorts before '@' (0x40): comparing the joined text would put
    // "a-b@a.example" before "a@z.example"; by parts, localpart "a" < "a-b".
    let bare = |s: &str| BareJid::parse(s).expect("valid JID");
    assert!(bare("a@z.example") < bare("a-b@a.example"));
    assert!(bare("z.example") < bare("a@a.example"));
}

/// Fuzz finding (2026-12-04, `jid` target): U+FE12 (vertical ideographic full stop) is not a
/// label separator, but Nameprep maps it to U+3002, which is one. The prepared domain
/// would split differently when parsed again, so the domain is refused.
#[test]
fn fuzz_nameprep_output_with_a_label_separator_is_refused() {
    for raw in [
        "\u{FE0C}\u{FE12}",
        "\u{FE12}",
        "a\u{FE12}b",
        "juliet@capulet\u{FE12}lit",
    ] {
        assert!(Jid::parse(raw).is_err(), "{raw:?}");
        assert!(BareJid::parse(raw).is_err(), "{raw:?}");
    }
    // Characters Nameprep maps to an ASCII dot are a plain separator, and stable.
    let j = Jid::parse("juliet@capulet\u{FE52}lit").expect("small full stop");
    assert_eq!(j.to_string(), "juliet@capulet.lit");
    assert_eq!(Jid::parse(&j.to_string()), Ok(j));
}

/// Fuzz finding (2026-12-04, `jid` target): U+03F9 GREEK CAPITAL LUNATE SIGMA is unassigned
/// in Unicode 3.2, so the profiles pass it through, then NFKC turns it into a capital
/// sigma that the same pass had no chance to case-fold. The prepared form must prepare to
/// itself: every part is prepared to a fixed point.
#[test]
fn fuzz_preparation_is_idempotent_across_unassigned_code_points() {
    for raw in [
        "\u{3F9}",
        "\u{3F9}@capulet.lit",
        "juliet@\u{3F9}.lit",
        "juliet@capulet.lit/\u{3F9}",
    ] {
        let j = Jid::parse(raw).expect(raw);
        let printed = j.to_string();
        // Node and domain are case-folded; a resource keeps its case (no fold in
        // Resourceprep), so there the capital is the stable form.
        let folded = j.resource().is_none();
        assert!(
            !folded || !printed.contains('\u{3A3}'),
            "{raw:?} -> {printed:?}"
        );
        assert_eq!(Jid::parse(&printed), Ok(j), "{raw:?}");
    }
}
