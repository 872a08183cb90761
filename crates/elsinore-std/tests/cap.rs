//! A connection over the std server's cap is told why (`resource-constraint` after our
//! stream header), and the connections within it keep working.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use elsinore_server::{Server, ServerConfig};
use elsinore_storage::MemoryStore;
use elsinore_stream::Instant;

const HEADER: &str = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' \
    xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

/// Reads until `needle` appears or the peer closes (bounded by the read timeout).
fn read_until(s: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_connection_over_the_cap_gets_resource_constraint() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let mut config = ServerConfig::new("localhost");
    config.allow_plaintext_auth = true;
    let server = Server::new(config, [7; 32], Instant::from_millis(0));
    let handle = elsinore_std::spawn_server_with_cap(listener, server, MemoryStore::new(), None, 2)
        .expect("server");
    let connect = || {
        let s = TcpStream::connect(handle.local_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        s
    };
    let mut within = Vec::new();
    for _ in 0..2 {
        let mut s = connect();
        s.write_all(HEADER.as_bytes()).expect("write");
        let got = read_until(&mut s, "</features>");
        assert!(got.contains("<mechanisms"), "{got}");
        within.push(s);
    }
    let mut over = connect();
    let got = read_until(&mut over, "</stream:stream>");
    assert!(got.contains("<stream:stream"), "{got}");
    assert!(got.contains("<resource-constraint"), "{got}");
    assert!(got.ends_with("</stream:stream>"), "{got}");
    // The two within the cap still get answers.
    for s in &mut within {
        s.write_all(b"<iq type='get' id='p'><ping xmlns='urn:xmpp:ping'/></iq>")
            .expect("write");
        let got = read_until(s, "</stream:stream>");
        assert!(
            got.contains("not-authorized") || got.contains("id='p'"),
            "{got}"
        );
    }
    drop(within);
    handle.shutdown();
}
