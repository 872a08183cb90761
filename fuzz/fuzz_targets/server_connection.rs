//! A whole `elsinore_server::Server` (MemoryStore answering every effect in order, TLS
//! simulated, plaintext auth allowed) with two connections:
//! - session 2 (ophelia) logs in with a scripted PLAIN + bind and behaves;
//! - session 1 (hamlet) logs in the same way up to a point chosen by the input, then the
//!   fuzzer's bytes are fed as the rest of its stream, in fuzzer-chosen chunks.
//!
//! Input: byte 0 = mode (bits 0-1: where the fuzzer takes over: 0/1 after bind, 2 after the
//! stream header, 3 from the first byte; bit 2: end with EOF), byte 1 = number of cuts
//! (mod 8), then a little-endian `u16` per cut, then the stream bytes.
//!
//! Checks: never panics; the run loop settles within a bounded number of rounds after every
//! input with no effect left unanswered; everything the server writes to either connection
//! is well-formed XML; session 2 is never closed, and after the fuzz input it still stores
//! and reads back private XML (XEP-0049 set + get).
#![no_main]

use elsinore_fuzz::server_harness::{
    HAMLET_PW, HEADER, Net, T0, bystander, check_bystander, chunks, login, split_input,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((mode, cut_bytes, doc)) = split_input(data) else {
        return;
    };

    let mut net = Net::new();
    let s2 = bystander(&mut net);
    let s1 = net.accept(false);

    match mode % 4 {
        0 | 1 => {
            login(&mut net, s1, "hamlet", HAMLET_PW, "denmark");
            assert_eq!(net.server.session_count(), 2, "session 1 is bound");
        }
        2 => net.input(s1, HEADER.as_bytes()),
        _ => {}
    }
    for (a, b) in chunks(doc, cut_bytes) {
        // In range: chunks() yields a <= b <= doc.len().
        net.input(s1, &doc[a..b]);
    }
    if mode & 4 != 0 {
        net.server.handle_eof(s1, T0);
        net.pump();
    }

    check_bystander(&mut net, s2);
});
