//! XML tokenizer throughput: elsinore's `StreamParser` against `minidom`
//! (the tree builder xmpp-rs streams use, and per-stanza `Element::from_reader`)
//! and bare `rxml::Parser` events, on the same bytes.
//!
//! `cargo bench -p elsinore-benches --bench xml -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group};
use elsinore_xml::{Element, StreamHeader, StreamParser, XmlEvent, XmlLimits};
use rxml::Parse;

const CLIENT: &str = "jabber:client";

/// A stream as bytes plus its stanzas as standalone documents.
struct Input {
    stream: Vec<u8>,
    stanzas: Vec<Vec<u8>>,
}

fn build(stanzas: &[Element]) -> Input {
    let mut stream = Vec::new();
    StreamHeader::new(CLIENT)
        .with_attr("to", "example.com")
        .with_attr("version", "1.0")
        .with_lang("en")
        .write_to(&mut stream);
    for s in stanzas {
        stream.push(b'\n');
        s.write_to(&mut stream, CLIENT);
    }
    elsinore_xml::write_stream_close(&mut stream);
    Input {
        stream,
        stanzas: stanzas.iter().map(Element::to_bytes).collect(),
    }
}

/// ~500 small stanzas: chat messages, presences with caps, roster and private iqs.
fn small_stanzas() -> Input {
    let mut v = Vec::new();
    for i in 0..500 {
        let id = format!("id{i}");
        let e = match i % 4 {
            0 | 1 => Element::new("message", CLIENT)
                .with_attr("type", "chat")
                .with_attr("to", "juliet@capulet.lit/balcony")
                .with_attr("id", id)
                .with_child(Element::new("body", CLIENT).with_text(format!(
                    "Wherefore art thou, Romeo? Deny thy father & refuse thy name <{i}>"
                )))
                .with_child(Element::new(
                    "active",
                    "http://jabber.org/protocol/chatstates",
                )),
            2 => Element::new("presence", CLIENT)
                .with_child(Element::new("show", CLIENT).with_text("away"))
                .with_child(Element::new("status", CLIENT).with_text("In the garden"))
                .with_child(
                    Element::new("c", "http://jabber.org/protocol/caps")
                        .with_attr("hash", "sha-1")
                        .with_attr("node", "https://elsinore.example")
                        .with_attr("ver", "QgayPKawpkPSDYmwT/WM94uAlu0="),
                ),
            _ => Element::new("iq", CLIENT)
                .with_attr("type", "set")
                .with_attr("id", id)
                .with_child(Element::new("query", "jabber:iq:private").with_child(
                    Element::new("exodus", "exodus:prefs").with_child(
                        Element::new("defaultnick", "exodus:prefs").with_text("Hamlet"),
                    ),
                )),
        };
        v.push(e);
    }
    build(&v)
}

/// A few ~200 KiB private-XML stanzas (bookmark storage with many entries).
fn large_stanzas() -> Input {
    let mut v = Vec::new();
    for n in 0..3 {
        let mut storage = Element::new("storage", "storage:bookmarks");
        let mut i = 0;
        while storage.to_bytes().len() < 200 * 1024 && i < 10_000 {
            storage = storage.with_child(
                Element::new("conference", "storage:bookmarks")
                    .with_attr("name", format!("Council of Oberon #{i}"))
                    .with_attr("autojoin", "true")
                    .with_attr("jid", format!("council{i}@conference.underhill.lit"))
                    .with_child(Element::new("nick", "storage:bookmarks").with_text("Puck")),
            );
            i += 64;
            // Grow in batches to keep setup cheap.
            for j in 1..64 {
                storage = storage.with_child(
                    Element::new("url", "storage:bookmarks")
                        .with_attr("name", format!("Link {}", i + j))
                        .with_attr("url", format!("https://example.org/{}?a=1&b=2", i + j)),
                );
            }
        }
        v.push(
            Element::new("iq", CLIENT)
                .with_attr("type", "set")
                .with_attr("id", format!("big{n}"))
                .with_child(Element::new("query", "jabber:iq:private").with_child(storage)),
        );
    }
    build(&v)
}

fn elsinore_stream(input: &[u8]) -> usize {
    let mut p = StreamParser::new(XmlLimits::default());
    let mut buf = input;
    let mut n = 0;
    loop {
        match p.parse(&mut buf) {
            Ok(Some(XmlEvent::Element(e))) => {
                black_box(&e);
                n += 1;
            }
            Ok(Some(_)) => {}
            Ok(None) => return n,
            Err(e) => panic!("bench input must parse: {e}"),
        }
    }
}

/// minidom's tree builder over rxml's raw parser, as xmpp-rs streams use it.
fn minidom_stream(input: &[u8]) -> usize {
    let mut parser = rxml::RawParser::new();
    let mut tree = minidom::tree_builder::TreeBuilder::new();
    let mut buf = input;
    let mut n = 0;
    loop {
        match parser.parse(&mut buf, true) {
            Ok(Some(ev)) => {
                let foot = matches!(ev, rxml::RawEvent::ElementFoot(_));
                tree.process_event(ev).expect("bench input must parse");
                if foot
                    && tree.depth() == 1
                    && let Some(e) = tree.unshift_child()
                {
                    black_box(&e);
                    n += 1;
                }
            }
            Ok(None) => return n,
            Err(e) => panic!("bench input must parse: {e:?}"),
        }
    }
}

fn minidom_per_stanza(stanzas: &[Vec<u8>]) -> usize {
    for s in stanzas {
        black_box(minidom::Element::from_reader(&s[..]).expect("bench input must parse"));
    }
    stanzas.len()
}

fn rxml_events(input: &[u8]) -> usize {
    let mut p = rxml::Parser::new();
    let mut buf = input;
    let mut n = 0;
    loop {
        match p.parse(&mut buf, true) {
            Ok(Some(ev)) => {
                black_box(&ev);
                n += 1;
            }
            Ok(None) => return n,
            Err(e) => panic!("bench input must parse: {e:?}"),
        }
    }
}

fn bench_input(c: &mut Criterion, name: &str, input: &Input) {
    let expected = input.stanzas.len();
    assert_eq!(elsinore_stream(&input.stream), expected);
    assert_eq!(minidom_stream(&input.stream), expected);
    let mut g = c.benchmark_group(name);
    g.throughput(Throughput::Bytes(input.stream.len() as u64));
    g.bench_function("elsinore_stream_parser", |b| {
        b.iter(|| elsinore_stream(black_box(&input.stream)))
    });
    g.bench_function("minidom_tree_builder", |b| {
        b.iter(|| minidom_stream(black_box(&input.stream)))
    });
    g.bench_function("minidom_per_stanza", |b| {
        b.iter(|| minidom_per_stanza(black_box(&input.stanzas)))
    });
    g.bench_function("rxml_parser_events", |b| {
        b.iter(|| rxml_events(black_box(&input.stream)))
    });
    g.finish();
}

fn xml(c: &mut Criterion) {
    let small = small_stanzas();
    let large = large_stanzas();
    eprintln!(
        "inputs: small stream {} bytes / {} stanzas, large stream {} bytes / {} stanzas",
        small.stream.len(),
        small.stanzas.len(),
        large.stream.len(),
        large.stanzas.len()
    );
    bench_input(c, "xml_small_stanzas", &small);
    bench_input(c, "xml_large_stanzas", &large);
}

criterion_group!(benches, xml);

/// Instruction counting for repeatable numbers on a noisy machine: with
/// `ELSINORE_XML_COUNT=<small|large>/<variant>` (variant `setup` runs nothing)
/// the binary runs that variant 10 times and exits, e.g. under
/// `valgrind --tool=callgrind`; subtract the `setup` count, divide by 10.
fn count_mode(spec: &str) {
    let (input, variant) = spec.split_once('/').unwrap_or((spec, "setup"));
    let input = if input == "large" {
        large_stanzas()
    } else {
        small_stanzas()
    };
    for _ in 0..10 {
        let n = match variant {
            "elsinore" => elsinore_stream(&input.stream),
            "minidom" => minidom_stream(&input.stream),
            "minidom_per_stanza" => minidom_per_stanza(&input.stanzas),
            "rxml" => rxml_events(&input.stream),
            _ => 0,
        };
        black_box(n);
    }
}

fn main() {
    if let Ok(spec) = std::env::var("ELSINORE_XML_COUNT") {
        count_mode(&spec);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
