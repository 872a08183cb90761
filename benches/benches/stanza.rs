//! A stanza parsed from bytes into the typed model and serialized back, per stanza:
//! elsinore (`Element::parse` → `Stanza` → `Element` → bytes) against xmpp-parsers
//! (`minidom::Element` → `Message`/`Presence`/`Iq` → `Element` → bytes) on the same input.
//!
//! `cargo bench -p elsinore-benches --bench stanza -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use elsinore_stanza::Stanza;
use elsinore_xml::Element;
use xmpp_parsers::iq::Iq as PeerIq;
use xmpp_parsers::message::Message as PeerMessage;
use xmpp_parsers::minidom::Element as PeerElement;
use xmpp_parsers::presence::Presence as PeerPresence;

const CLIENT: &str = "jabber:client";

/// Realistic stanzas, each a standalone document with its namespace.
const INPUTS: &[(&str, &str)] = &[
    (
        "chat_message",
        "<message xmlns='jabber:client' type='chat' id='m1' from='romeo@montague.lit/orchard' \
         to='juliet@capulet.lit/balcony'><body>Wherefore art thou, Romeo? Deny thy father &amp; \
         refuse thy name.</body><thread>e0ffe42b28561960c6b12b944a092794b9683a38</thread>\
         <active xmlns='http://jabber.org/protocol/chatstates'/></message>",
    ),
    (
        "presence_caps",
        "<presence xmlns='jabber:client' from='juliet@capulet.lit/balcony' id='p1'>\
         <show>away</show><status>In the garden</status><priority>5</priority>\
         <c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' \
         ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>",
    ),
    (
        "iq_private_get",
        "<iq xmlns='jabber:client' type='get' id='p2'><query xmlns='jabber:iq:private'>\
         <storage xmlns='storage:bookmarks'/></query></iq>",
    ),
];

fn ours(bytes: &[u8]) -> usize {
    let Ok(el) = Element::parse(bytes) else {
        return 0;
    };
    let Ok(stanza) = Stanza::try_from(el) else {
        return 0;
    };
    let el = match stanza {
        Stanza::Message(m) => m.into_element(CLIENT),
        Stanza::Presence(p) => p.into_element(CLIENT),
        Stanza::Iq(i) => i.into_element(CLIENT),
    };
    el.to_bytes().len()
}

fn theirs(text: &str) -> usize {
    let Ok(el) = text.parse::<PeerElement>() else {
        return 0;
    };
    let el: PeerElement = match el.name() {
        "message" => match PeerMessage::try_from(el) {
            Ok(m) => m.into(),
            Err(_) => return 0,
        },
        "presence" => match PeerPresence::try_from(el) {
            Ok(p) => p.into(),
            Err(_) => return 0,
        },
        _ => match PeerIq::try_from(el) {
            Ok(i) => i.into(),
            Err(_) => return 0,
        },
    };
    let mut out = Vec::new();
    if el.write_to(&mut out).is_err() {
        return 0;
    }
    out.len()
}

fn bench(c: &mut Criterion) {
    for (name, text) in INPUTS {
        // Not a timing assertion: a side that rejects the input would measure an error path.
        assert!(ours(text.as_bytes()) > 0, "elsinore handles {name}");
        assert!(theirs(text) > 0, "xmpp-parsers handles {name}");
        let mut g = c.benchmark_group(format!("stanza_{name}"));
        g.throughput(Throughput::Bytes(text.len() as u64));
        g.bench_function("elsinore", |b| b.iter(|| ours(black_box(text.as_bytes()))));
        g.bench_function("xmpp_parsers", |b| b.iter(|| theirs(black_box(text))));
        g.finish();
    }
}

criterion_group!(benches, bench);

fn main() {
    // Instruction-count mode for callgrind (repeatable on a noisy machine):
    // ELSINORE_STANZA_COUNT=<input name>/<elsinore|peer|setup> handles that stanza 1000
    // times and exits (`setup` handles none, to subtract start-up).
    if let Ok(spec) = std::env::var("ELSINORE_STANZA_COUNT") {
        let (name, side) = spec.split_once('/').unwrap_or((spec.as_str(), "elsinore"));
        let text = INPUTS
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(INPUTS[0].1, |(_, t)| t);
        for _ in 0..1000 {
            match side {
                "elsinore" => black_box(ours(black_box(text.as_bytes()))),
                "peer" => black_box(theirs(black_box(text))),
                _ => 0,
            };
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
