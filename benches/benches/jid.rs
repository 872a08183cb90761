//! JID parsing and normalisation (nodeprep / nameprep / resourceprep): elsinore's
//! `Jid::parse` against the `jid` crate of xmpp-rs (as re-exported by `xmpp-parsers`) on
//! the same strings.
//!
//! `cargo bench -p elsinore-benches --bench jid -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use xmpp_parsers::jid as peer;

/// Inputs by kind. Each group is parsed as a whole per iteration; the result is checked to
/// be the same normalised string on both sides before measuring.
const ASCII_LOWER: &[&str] = &[
    "juliet@capulet.lit/balcony",
    "romeo@montague.lit/orchard",
    "nurse@capulet.lit",
    "capulet.lit",
    "room@chat.capulet.lit/Mercutio",
    "benvolio@montague.lit/laptop-7f3a",
];
const ASCII_MIXED: &[&str] = &[
    "Juliet@Capulet.LIT/Balcony",
    "ROMEO@montague.lit/Orchard",
    "Nurse@CAPULET.lit",
    "Room@Chat.Capulet.Lit/Mercutio",
];
const UNICODE: &[&str] = &[
    "jürgen@exämple.de/Büro",
    "ΣΊΣΥΦΟΣ@example.com/Ψ",
    "ﬁnn@example.com/ﬂat",
    "Ǆudit@éxample.org/résumé",
];

fn ours(input: &[&str]) -> usize {
    input
        .iter()
        .filter_map(|s| elsinore_jid::Jid::parse(s).ok())
        .map(|j| j.to_string().len())
        .sum()
}

fn theirs(input: &[&str]) -> usize {
    input
        .iter()
        .filter_map(|s| peer::Jid::new(s).ok())
        .map(|j| j.to_string().len())
        .sum()
}

fn bench(c: &mut Criterion) {
    for (name, input) in [
        ("ascii_lower", ASCII_LOWER),
        ("ascii_mixed_case", ASCII_MIXED),
        ("unicode", UNICODE),
    ] {
        // Not a timing assertion: both sides must accept every input and agree on the
        // normalised form, or the comparison would measure different work.
        for s in input {
            let a = elsinore_jid::Jid::parse(s).map(|j| j.to_string());
            let b = peer::Jid::new(s).map(|j| j.to_string());
            assert_eq!(a.ok(), b.ok(), "both sides normalise {s} the same way");
        }
        let mut g = c.benchmark_group(format!("jid_{name}"));
        g.throughput(Throughput::Elements(input.len() as u64));
        g.bench_function("elsinore", |b| b.iter(|| ours(black_box(input))));
        g.bench_function("xmpp_rs_jid", |b| b.iter(|| theirs(black_box(input))));
        g.finish();
    }
}

criterion_group!(benches, bench);

fn main() {
    // Instruction-count mode for callgrind (repeatable on a noisy machine):
    // ELSINORE_JID_COUNT=<ascii_lower|ascii_mixed_case|unicode>/<elsinore|peer|setup> parses
    // the group 1000 times and exits (`setup` parses nothing, to subtract start-up).
    if let Ok(spec) = std::env::var("ELSINORE_JID_COUNT") {
        let (group, side) = spec.split_once('/').unwrap_or((spec.as_str(), "elsinore"));
        let input = match group {
            "ascii_mixed_case" => ASCII_MIXED,
            "unicode" => UNICODE,
            _ => ASCII_LOWER,
        };
        for _ in 0..1000 {
            match side {
                "elsinore" => black_box(ours(black_box(input))),
                "peer" => black_box(theirs(black_box(input))),
                _ => 0,
            };
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
