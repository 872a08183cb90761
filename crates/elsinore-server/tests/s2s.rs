//! Two `Server`s federating in memory: dialback (verification over the second
//! stream), messages both ways, presence subscriptions across domains, iq,
//! bounces when the remote server cannot be reached.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;

use common::{Net, T0, error_condition};
use elsinore_server::{ConnId, ServerConfig};
use elsinore_xml::Element;

const ONE: &str = "one.example";
const TWO: &str = "two.example";

fn el(xml: &str) -> Element {
    Element::parse(xml.as_bytes()).expect("test XML parses")
}

struct Fed {
    nets: [Net; 2],
    /// (net, conn) ↔ (net, conn) of the two ends of an s2s link.
    links: HashMap<(usize, ConnId), (usize, ConnId)>,
    /// Streams each server accepted: (accepting net, its connection, connecting net).
    accepted: Vec<(usize, ConnId, usize)>,
}

fn config(domain: &str, secret: u8) -> ServerConfig {
    let mut c = ServerConfig::new(domain);
    c.scram_iterations = 4096;
    c.s2s.enabled = true;
    c.s2s.secret = [secret; 32];
    c
}

impl Fed {
    fn new() -> Self {
        let mut one = Net::with_config(config(ONE, 1));
        let mut two = Net::with_config(config(TWO, 2));
        one.server.set_wall_clock(T0, 1_700_000_000_000);
        two.server.set_wall_clock(T0, 1_700_000_000_000);
        one.add_user("romeo@one.example", "r");
        two.add_user("juliet@two.example", "j");
        Fed {
            nets: [one, two],
            links: HashMap::new(),
            accepted: Vec::new(),
        }
    }

    fn pump(&mut self) {
        for _ in 0..200 {
            let mut progress = false;
            for i in 0..2 {
                self.nets[i].drive();
            }
            for i in 0..2 {
                let j = 1 - i;
                for (conn, domain) in std::mem::take(&mut self.nets[i].connects) {
                    progress = true;
                    if self.nets[j].server.config().domain == domain {
                        let peer = self.nets[j].server.accept_s2s(T0);
                        self.accepted.push((j, peer, i));
                        self.links.insert((i, conn), (j, peer));
                        self.links.insert((j, peer), (i, conn));
                        self.nets[i].server.handle_connected(conn, T0);
                    } else {
                        self.nets[i].server.handle_connect_failed(conn, T0);
                    }
                }
                for (conn, bytes) in std::mem::take(&mut self.nets[i].s2s_out) {
                    progress = true;
                    if let Some(&(j, peer)) = self.links.get(&(i, conn)) {
                        self.nets[j].server.handle_input(peer, &bytes, T0);
                    }
                }
                for conn in std::mem::take(&mut self.nets[i].s2s_closed) {
                    progress = true;
                    if let Some((j, peer)) = self.links.remove(&(i, conn)) {
                        self.links.remove(&(j, peer));
                        self.nets[j].server.handle_eof(peer, T0);
                    }
                }
            }
            if !progress {
                return;
            }
        }
        panic!("federation did not settle");
    }

    fn send(&mut self, net: usize, conn: ConnId, xml: &str) {
        self.nets[net].send(conn, &el(xml));
        self.pump();
    }
}

fn online() -> (Fed, ConnId, ConnId) {
    let mut fed = Fed::new();
    let romeo = fed.nets[0].connect("romeo@one.example/orchard", "r");
    let juliet = fed.nets[1].connect("juliet@two.example/balcony", "j");
    fed.send(0, romeo, "<presence xmlns='jabber:client'/>");
    fed.send(1, juliet, "<presence xmlns='jabber:client'/>");
    fed.nets[0].take_inbox(romeo);
    fed.nets[1].take_inbox(juliet);
    (fed, romeo, juliet)
}

fn bodies(inbox: &[Element]) -> Vec<(String, String)> {
    inbox
        .iter()
        .filter(|e| e.name == "message")
        .filter_map(|e| {
            Some((
                e.attr("from")?.to_string(),
                e.get_child("body", "jabber:client")?.text(),
            ))
        })
        .collect()
}

#[test]
fn messages_cross_both_ways() {
    let (mut fed, romeo, juliet) = online();
    fed.send(
        0,
        romeo,
        "<message xmlns='jabber:client' to='juliet@two.example' type='chat'><body>Hello</body></message>",
    );
    let got = fed.nets[1].take_inbox(juliet);
    assert_eq!(
        bodies(&got),
        vec![("romeo@one.example/orchard".into(), "Hello".into())],
        "{got:?}"
    );
    fed.send(
        1,
        juliet,
        "<message xmlns='jabber:client' to='romeo@one.example/orchard' type='chat'><body>Hi</body></message>",
    );
    let got = fed.nets[0].take_inbox(romeo);
    assert_eq!(
        bodies(&got),
        vec![("juliet@two.example/balcony".into(), "Hi".into())]
    );
    // One outgoing stream each way (the reverse one also carried the dialback check).
    assert_eq!(fed.links.len(), 4, "{:?}", fed.links);
    // More messages reuse the streams.
    fed.send(
        0,
        romeo,
        "<message xmlns='jabber:client' to='juliet@two.example'><body>Again</body></message>",
    );
    assert_eq!(bodies(&fed.nets[1].take_inbox(juliet)).len(), 1);
    assert_eq!(fed.links.len(), 4);
}

#[test]
fn presence_subscription_across_domains() {
    let (mut fed, romeo, juliet) = online();
    fed.send(
        0,
        romeo,
        "<presence xmlns='jabber:client' to='juliet@two.example' type='subscribe'/>",
    );
    let got = fed.nets[1].take_inbox(juliet);
    assert!(
        got.iter()
            .any(|p| p.attr("type") == Some("subscribe")
                && p.attr("from") == Some("romeo@one.example")),
        "{got:?}"
    );
    fed.send(
        1,
        juliet,
        "<presence xmlns='jabber:client' to='romeo@one.example' type='subscribed'/>",
    );
    let got = fed.nets[0].take_inbox(romeo);
    assert!(
        got.iter().any(|p| p.attr("type") == Some("subscribed")
            && p.attr("from") == Some("juliet@two.example")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|p| p.attr("type").is_none()
                && p.attr("from") == Some("juliet@two.example/balcony")),
        "the new subscriber gets the contact's presence: {got:?}"
    );
    // Juliet's later presence changes reach Romeo through her server's fan-out.
    fed.send(
        1,
        juliet,
        "<presence xmlns='jabber:client'><show>away</show></presence>",
    );
    let got = fed.nets[0].take_inbox(romeo);
    assert!(
        got.iter().any(|p| p.name == "presence"
            && p.get_child("show", "jabber:client").map(|s| s.text()) == Some("away".into())),
        "{got:?}"
    );
    // When Romeo logs in again, his probe brings Juliet's presence.
    let romeo2 = fed.nets[0].connect("romeo@one.example/study", "r");
    fed.send(0, romeo2, "<presence xmlns='jabber:client'/>");
    let got = fed.nets[0].take_inbox(romeo2);
    assert!(
        got.iter()
            .any(|p| p.name == "presence" && p.attr("from") == Some("juliet@two.example/balcony")),
        "probe answered across servers: {got:?}"
    );
}

#[test]
fn iq_to_the_remote_server_is_answered() {
    let (mut fed, romeo, _) = online();
    fed.send(
        0,
        romeo,
        "<iq xmlns='jabber:client' type='get' id='v1' to='two.example'><query xmlns='jabber:iq:version'/></iq>",
    );
    let got = fed.nets[0].take_inbox(romeo);
    let reply = got
        .iter()
        .find(|e| e.name == "iq" && e.attr("id") == Some("v1"))
        .expect("reply");
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert_eq!(reply.attr("from"), Some("two.example"));
}

#[test]
fn unreachable_domain_bounces_remote_server_not_found() {
    let (mut fed, romeo, _) = online();
    fed.send(
        0,
        romeo,
        "<message xmlns='jabber:client' to='nobody@nowhere.example' id='m1'><body>x</body></message>",
    );
    let got = fed.nets[0].take_inbox(romeo);
    let bounce = got
        .iter()
        .find(|e| e.attr("id") == Some("m1"))
        .expect("bounce");
    assert_eq!(bounce.attr("type"), Some("error"));
    assert_eq!(
        error_condition(bounce).as_deref(),
        Some("remote-server-not-found")
    );
    // An error is never answered with an error.
    fed.send(
        0,
        romeo,
        "<message xmlns='jabber:client' to='nobody@nowhere.example' type='error' id='m2'/>",
    );
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    // Nor an iq result (draft-ietf-xmpp-core-11 7.5.1, RFC 6120 8.2.3).
    fed.send(
        0,
        romeo,
        "<iq xmlns='jabber:client' to='nobody@nowhere.example/r' type='result' id='r1'/>",
    );
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
}

#[test]
fn unverifiable_dialback_bounces() {
    // two.example cannot reach one.example's authoritative server to check the key:
    // the stream from one.example fails and the queued message bounces.
    let mut fed = Fed::new();
    let romeo = fed.nets[0].connect("romeo@one.example/orchard", "r");
    // Route one.example's connect requests normally, but refuse two.example's.
    fed.nets[0].send(
        romeo,
        &el("<message xmlns='jabber:client' to='juliet@two.example' id='m1'><body>x</body></message>"),
    );
    for _ in 0..50 {
        for i in 0..2 {
            fed.nets[i].drive();
        }
        for (conn, domain) in std::mem::take(&mut fed.nets[0].connects) {
            let peer = fed.nets[1].server.accept_s2s(T0);
            assert_eq!(domain, TWO);
            fed.links.insert((0, conn), (1, peer));
            fed.links.insert((1, peer), (0, conn));
            fed.nets[0].server.handle_connected(conn, T0);
        }
        for (conn, _) in std::mem::take(&mut fed.nets[1].connects) {
            fed.nets[1].server.handle_connect_failed(conn, T0);
        }
        for i in 0..2 {
            for (conn, bytes) in std::mem::take(&mut fed.nets[i].s2s_out) {
                if let Some(&(j, peer)) = fed.links.get(&(i, conn)) {
                    fed.nets[j].server.handle_input(peer, &bytes, T0);
                }
            }
            for conn in std::mem::take(&mut fed.nets[i].s2s_closed) {
                if let Some((j, peer)) = fed.links.remove(&(i, conn)) {
                    fed.links.remove(&(j, peer));
                    fed.nets[j].server.handle_eof(peer, T0);
                }
            }
        }
    }
    let got = fed.nets[0].take_inbox(romeo);
    let bounce = got
        .iter()
        .find(|e| e.attr("id") == Some("m1"))
        .expect("bounce after failed dialback");
    assert_eq!(
        error_condition(bounce).as_deref(),
        Some("remote-server-not-found")
    );
}

#[test]
fn s2s_disabled_keeps_the_old_bounce() {
    let mut net = Net::new(ONE);
    net.add_user("romeo@one.example", "r");
    let romeo = net.connect("romeo@one.example/orchard", "r");
    net.send(
        romeo,
        &el("<message xmlns='jabber:client' to='juliet@two.example' id='m1'><body>x</body></message>"),
    );
    let got = net.take_inbox(romeo);
    assert_eq!(
        error_condition(&got[0]).as_deref(),
        Some("remote-server-not-found")
    );
    assert!(net.connects.is_empty());
}

#[test]
fn an_iq_over_s2s_breaking_the_iq_rules_is_bad_request() {
    let (mut fed, romeo, juliet) = online();
    // Open the link from one.example to two.example.
    fed.send(
        0,
        romeo,
        "<message xmlns='jabber:client' to='juliet@two.example/balcony' type='chat'><body>hi</body></message>",
    );
    assert_eq!(bodies(&fed.nets[1].take_inbox(juliet)).len(), 1);
    // two.example's end of a stream one.example opened (with dialback, two.example opens
    // one of its own towards one.example too).
    let peer = fed
        .accepted
        .iter()
        .find(|(j, _, i)| *j == 1 && *i == 0)
        .map(|(_, peer, _)| *peer)
        .expect("the stream from one.example");
    // What one.example's server might relay: no payload, two payloads, no valid type.
    let addr = "from='romeo@one.example/orchard' to='juliet@two.example/balcony'";
    for (id, iq) in [
        ("e0", format!("<iq type='get' id='e0' {addr}/>")),
        (
            "e2",
            format!(
                "<iq type='set' id='e2' {addr}><query xmlns='jabber:iq:version'/>\
                 <query xmlns='jabber:iq:last'/></iq>"
            ),
        ),
        (
            "t",
            format!("<iq type='query' id='t' {addr}><query xmlns='jabber:iq:version'/></iq>"),
        ),
    ] {
        fed.nets[1].server.handle_input(peer, iq.as_bytes(), T0);
        fed.pump();
        let got = fed.nets[0].take_inbox(romeo);
        let reply = got
            .iter()
            .find(|e| e.attr("id") == Some(id))
            .unwrap_or_else(|| panic!("{id}: an error comes back, got {got:?}"));
        assert_eq!(reply.attr("type"), Some("error"), "{reply:?}");
        assert_eq!(
            error_condition(reply).as_deref(),
            Some("bad-request"),
            "{reply:?}"
        );
        assert!(
            fed.nets[1].take_inbox(juliet).is_empty(),
            "{id}: not delivered"
        );
    }
}
