//! A whole `elsinore_server::Server` with server-to-server enabled, fed an *incoming*
//! server-to-server stream by the fuzzer (a hostile remote server), while a local client
//! session (ophelia) is logged in by script. Outgoing connections (dialback checks) fail
//! at once: there is no network.
//!
//! Input: byte 0 = mode (bits 0-1: what comes before the fuzzer's bytes: 0 nothing, 1 a
//! `jabber:server` header with the dialback namespace, 2 that header and a `db:result`
//! (the server then tries to verify it), 3 a header without `version` (pre-1.0
//! dialback); bit 2: end with EOF), byte 1 = number of cuts (mod 8), then a little-endian
//! `u16` per cut, then the stream bytes.
//!
//! Checks: never panics; the run loop settles after every input with no effect left
//! unanswered; everything the server writes to either connection is well-formed XML; the
//! local session is never closed and afterwards still stores and reads back private XML.
#![no_main]

use elsinore_fuzz::server_harness::{
    DOMAIN, Net, Reader, T0, bystander, check_bystander, chunks, split_input,
};
use elsinore_server::ServerConfig;
use libfuzzer_sys::fuzz_target;

const S2S_HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
    from='verona.lit' to='shakespeare.lit' version='1.0'>";
const S2S_HEADER_PRE_1_0: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
    xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback'>";
const DB_RESULT: &str = "<db:result from='verona.lit' to='shakespeare.lit'>0123456789abcdef0123456789abcdef</db:result>";

fuzz_target!(|data: &[u8]| {
    let Some((mode, cut_bytes, doc)) = split_input(data) else {
        return;
    };

    let mut cfg = ServerConfig::new(DOMAIN);
    cfg.allow_plaintext_auth = true;
    cfg.scram_iterations = 4096;
    cfg.s2s.enabled = true;
    cfg.s2s.secret = [5; 32];
    let mut net = Net::with_config(cfg);
    let s2 = bystander(&mut net);

    let remote = net.server.accept_s2s(T0);
    net.readers.insert(remote, Reader::new(false));
    match mode % 4 {
        1 => net.input(remote, S2S_HEADER.as_bytes()),
        2 => {
            net.input(remote, S2S_HEADER.as_bytes());
            net.input(remote, DB_RESULT.as_bytes());
        }
        3 => net.input(remote, S2S_HEADER_PRE_1_0.as_bytes()),
        _ => {}
    }
    for (a, b) in chunks(doc, cut_bytes) {
        // In range: chunks() yields a <= b <= doc.len().
        net.input(remote, &doc[a..b]);
    }
    if mode & 4 != 0 {
        net.server.handle_eof(remote, T0);
        net.pump();
    }

    check_bystander(&mut net, s2);
});
