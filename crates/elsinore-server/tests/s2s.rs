//! Two `Server`s federating in memory: dialback (verification over the second
//! stream), messages both ways, presence subscriptions across domains, iq,
//! bounces when the remote server cannot be reached.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Net, T0, error_condition};
use elsinore_server::{ConnId, Instant, ServerConfig};
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
    /// Virtual time of everything `pump` feeds.
    now: Instant,
    /// Servers that cannot be reached: connects to them fail.
    down: [bool; 2],
    /// Servers that do not read: bytes for them are held (and not reported written)
    /// until [`Fed::resume`].
    stalled: [bool; 2],
    /// Bytes held for a stalled server: (sending net, its connection, bytes).
    held: Vec<(usize, ConnId, Vec<u8>)>,
    /// A server that stops reading where this text first comes in what is written to
    /// it (it reads what comes before), as if it stopped in the middle of a flush.
    stall_at: [Option<String>; 2],
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
        Self::with(|_| {})
    }

    /// Both servers with `tweak` applied to their configuration.
    fn with(tweak: impl Fn(&mut ServerConfig)) -> Self {
        let (mut a, mut b) = (config(ONE, 1), config(TWO, 2));
        tweak(&mut a);
        tweak(&mut b);
        let mut one = Net::with_config(a);
        let mut two = Net::with_config(b);
        one.server.set_wall_clock(T0, 1_700_000_000_000);
        two.server.set_wall_clock(T0, 1_700_000_000_000);
        one.add_user("romeo@one.example", "r");
        two.add_user("juliet@two.example", "j");
        Fed {
            nets: [one, two],
            links: HashMap::new(),
            accepted: Vec::new(),
            now: T0,
            down: [false; 2],
            stalled: [false; 2],
            held: Vec::new(),
            stall_at: [None, None],
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
                    if self.nets[j].server.config().domain == domain && !self.down[j] {
                        let peer = self.nets[j].server.accept_s2s(self.now);
                        self.accepted.push((j, peer, i));
                        self.links.insert((i, conn), (j, peer));
                        self.links.insert((j, peer), (i, conn));
                        self.nets[i].server.handle_connected(conn, self.now);
                    } else {
                        self.nets[i].server.handle_connect_failed(conn, self.now);
                    }
                }
                for (conn, bytes) in std::mem::take(&mut self.nets[i].s2s_out) {
                    progress = true;
                    self.offer(i, conn, bytes);
                }
                for conn in std::mem::take(&mut self.nets[i].s2s_closed) {
                    progress = true;
                    if let Some((j, peer)) = self.links.remove(&(i, conn)) {
                        self.links.remove(&(j, peer));
                        self.nets[j].server.handle_eof(peer, self.now);
                    }
                }
            }
            if !progress {
                return;
            }
        }
        panic!("federation did not settle");
    }

    /// Hands `bytes` that net `i` wrote on `conn` to the other end, and tells net `i`
    /// they were written (a connection closed meanwhile loses them, as a socket would).
    fn deliver(&mut self, i: usize, conn: ConnId, bytes: &[u8]) {
        if let Some(&(j, peer)) = self.links.get(&(i, conn)) {
            self.nets[j].server.handle_input(peer, bytes, self.now);
            self.nets[i]
                .server
                .handle_written(conn, bytes.len(), self.now);
        }
    }

    /// Bytes net `i` wrote on `conn`: delivered, or held while the other server does
    /// not read (from its `stall_at` text on).
    fn offer(&mut self, i: usize, conn: ConnId, mut bytes: Vec<u8>) {
        let j = 1 - i;
        if self.stalled[j] {
            self.held.push((i, conn, bytes));
            return;
        }
        let at = self.stall_at[j]
            .as_ref()
            .and_then(|m| bytes.windows(m.len()).position(|w| w == m.as_bytes()));
        if let Some(at) = at {
            let rest = bytes.split_off(at);
            self.stall_at[j] = None;
            self.stalled[j] = true;
            self.held.push((i, conn, rest));
        }
        if !bytes.is_empty() {
            self.deliver(i, conn, &bytes);
        }
    }

    /// Server `net` reads again: what was held for it arrives, in order.
    fn resume(&mut self, net: usize) {
        self.stalled[net] = false;
        for (i, conn, bytes) in std::mem::take(&mut self.held) {
            self.offer(i, conn, bytes);
        }
        self.pump();
    }

    /// Moves virtual time to `t`, firing every deadline of both servers on the way.
    fn advance_to(&mut self, t: Instant) {
        for _ in 0..10_000 {
            let next = self
                .nets
                .iter()
                .filter_map(|n| n.server.poll_timeout())
                .min()
                .filter(|&d| d <= t);
            self.now = next.unwrap_or(t).max(self.now);
            for net in &mut self.nets {
                net.now = self.now;
            }
            let Some(d) = next else {
                return;
            };
            for net in &mut self.nets {
                net.server.handle_timeout(d);
            }
            self.pump();
        }
        panic!("deadlines did not settle");
    }

    fn send(&mut self, net: usize, conn: ConnId, xml: &str) {
        self.nets[net].send(conn, &el(xml));
        self.pump();
    }
}

fn online() -> (Fed, ConnId, ConnId) {
    online_in(Fed::new())
}

fn online_in(mut fed: Fed) -> (Fed, ConnId, ConnId) {
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

/// `xml:lang` and text of each `<status/>` of the one `subscribe` from `from` in `inbox`.
fn request_statuses(inbox: &[Element], from: &str) -> Vec<(Option<String>, String)> {
    let mut requests = inbox.iter().filter(|p| {
        p.name == "presence" && p.attr("type") == Some("subscribe") && p.attr("from") == Some(from)
    });
    let req = requests
        .next()
        .unwrap_or_else(|| panic!("request delivered: {inbox:?}"));
    assert!(requests.next().is_none(), "delivered once: {inbox:?}");
    req.elements()
        .filter(|c| c.is("status", "jabber:client"))
        .map(|c| (c.lang().map(str::to_string), c.text()))
        .collect()
}

/// A subscription request keeps every `<status/>` and its `xml:lang` on its way out
/// and in: to an online contact (one to two), and to an offline one whose server keeps
/// it until she comes (two to one).
#[test]
fn subscription_request_statuses_cross_with_their_languages() {
    let (mut fed, romeo, juliet) = online();
    fed.send(
        0,
        romeo,
        "<presence xmlns='jabber:client' to='juliet@two.example' type='subscribe' xml:lang='it'>\
         <status xml:lang='en'>It is the east</status><status>\u{c8} l'oriente</status></presence>",
    );
    let got = fed.nets[1].take_inbox(juliet);
    assert_eq!(
        request_statuses(&got, "romeo@one.example"),
        vec![
            (Some("en".into()), "It is the east".into()),
            (Some("it".into()), "\u{c8} l'oriente".into()),
        ]
    );

    fed.nets[0].server.handle_eof(romeo, fed.now);
    fed.pump();
    fed.send(
        1,
        juliet,
        "<presence xmlns='jabber:client' to='romeo@one.example' type='subscribe'>\
         <status xml:lang='en'>Wherefore art thou</status>\
         <status xml:lang='de'>Warum bist du</status></presence>",
    );
    let romeo = fed.nets[0].connect("romeo@one.example/study", "r");
    fed.send(0, romeo, "<presence xmlns='jabber:client'/>");
    let got = fed.nets[0].take_inbox(romeo);
    assert_eq!(
        request_statuses(&got, "juliet@two.example"),
        vec![
            (Some("en".into()), "Wherefore art thou".into()),
            (Some("de".into()), "Warum bist du".into()),
        ]
    );
}

/// XEP-0172: the requester's nickname crosses to the remote contact with the request.
#[test]
fn a_subscription_request_crosses_with_its_nickname() {
    let (mut fed, romeo, juliet) = online();
    fed.send(
        0,
        romeo,
        "<presence xmlns='jabber:client' to='juliet@two.example' type='subscribe'>\
         <nick xmlns='http://jabber.org/protocol/nick'>Romeo</nick></presence>",
    );
    let got = fed.nets[1].take_inbox(juliet);
    let req = got
        .iter()
        .find(|e| {
            e.name == "presence"
                && e.attr("type") == Some("subscribe")
                && e.attr("from") == Some("romeo@one.example")
        })
        .unwrap_or_else(|| panic!("request delivered: {got:?}"));
    assert_eq!(
        req.get_child("nick", "http://jabber.org/protocol/nick")
            .map(|n| n.text())
            .as_deref(),
        Some("Romeo")
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
fn disco_info_on_a_remote_account_is_answered_by_its_server() {
    let (mut fed, romeo, _) = online();
    fed.send(
        0,
        romeo,
        "<iq xmlns='jabber:client' type='get' id='d1' to='juliet@two.example'>\
         <query xmlns='http://jabber.org/protocol/disco#info'/></iq>",
    );
    let got = fed.nets[0].take_inbox(romeo);
    let reply = got
        .iter()
        .find(|e| e.name == "iq" && e.attr("id") == Some("d1"))
        .expect("reply");
    assert_eq!(reply.attr("type"), Some("result"), "{reply:?}");
    assert_eq!(reply.attr("from"), Some("juliet@two.example"));
    let q = reply
        .get_child("query", "http://jabber.org/protocol/disco#info")
        .expect("query");
    assert!(q.elements().any(|e| e.name == "identity"
        && e.attr("category") == Some("pubsub")
        && e.attr("type") == Some("pep")));
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

fn message(to: &str, id: &str) -> String {
    format!("<message xmlns='jabber:client' to='{to}' id='{id}'><body>{id}</body></message>")
}

fn bounce_condition(inbox: &[Element], id: &str) -> Option<String> {
    let bounce = inbox.iter().find(|e| e.attr("id") == Some(id))?;
    assert_eq!(bounce.attr("type"), Some("error"), "{bounce:?}");
    error_condition(bounce)
}

#[test]
fn stanzas_past_the_queue_while_connecting_bounce_resource_constraint() {
    let (mut fed, romeo, juliet) = online();
    let max_queue = fed.nets[0].server.config().s2s.max_queue;
    // The adapter has not connected yet (`connects` waits until the next pump).
    for i in 0..=max_queue {
        let xml = message("juliet@two.example", &format!("m{i}"));
        fed.nets[0].send(romeo, &el(&xml));
    }
    let got = fed.nets[0].take_inbox(romeo);
    assert_eq!(got.len(), 1, "only the one past the queue bounces: {got:?}");
    assert_eq!(
        bounce_condition(&got, &format!("m{max_queue}")).as_deref(),
        Some("resource-constraint")
    );
    fed.pump();
    let delivered: Vec<String> = bodies(&fed.nets[1].take_inbox(juliet))
        .into_iter()
        .map(|(_, body)| body)
        .collect();
    let expected: Vec<String> = (0..max_queue).map(|i| format!("m{i}")).collect();
    assert_eq!(delivered, expected, "the queued ones arrive, in order");
}

#[test]
fn at_the_outgoing_cap_the_least_recently_used_idle_stream_makes_room() {
    let (mut fed, romeo, juliet) = online_in(Fed::with(|c| c.s2s.max_outgoing = 1));
    fed.send(0, romeo, &message("juliet@two.example", "m1"));
    assert_eq!(bodies(&fed.nets[1].take_inbox(juliet)).len(), 1);
    let streams = fed.accepted.len();
    // The stream to two.example is idle: it is closed for the new domain, which then
    // fails as an unknown domain does, not with resource-constraint.
    fed.now = fed.now + Duration::from_secs(1);
    fed.nets[0].now = fed.now;
    fed.send(0, romeo, &message("nobody@nowhere.example", "m2"));
    assert_eq!(
        bounce_condition(&fed.nets[0].take_inbox(romeo), "m2").as_deref(),
        Some("remote-server-not-found")
    );
    // two.example's stream went through the close handshake: a new one carries m3.
    fed.send(0, romeo, &message("juliet@two.example", "m3"));
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    assert_eq!(
        bodies(&fed.nets[1].take_inbox(juliet)),
        vec![("romeo@one.example/orchard".to_string(), "m3".to_string())]
    );
    assert!(fed.accepted.len() > streams, "a new stream was opened");
}

#[test]
fn at_the_outgoing_cap_with_no_idle_stream_new_domains_bounce_resource_constraint() {
    let (mut fed, romeo, juliet) = online_in(Fed::with(|c| c.s2s.max_outgoing = 1));
    // The stream to two.example is still connecting (busy): nothing can make room.
    fed.nets[0].send(romeo, &el(&message("juliet@two.example", "m1")));
    fed.nets[0].send(romeo, &el(&message("nobody@three.example", "m2")));
    assert_eq!(
        bounce_condition(&fed.nets[0].take_inbox(romeo), "m2").as_deref(),
        Some("resource-constraint")
    );
    fed.pump();
    assert_eq!(bodies(&fed.nets[1].take_inbox(juliet)).len(), 1);
}

#[test]
fn negotiation_timeout_bounces_remote_server_timeout() {
    let (mut fed, romeo, _) = online();
    fed.nets[0].send(romeo, &el(&message("juliet@two.example", "m1")));
    // Connected, but the peer never answers our stream header.
    let (conn, _) = fed.nets[0].connects.pop().expect("a connect request");
    fed.nets[0].server.handle_connected(conn, T0);
    fed.nets[0].drive();
    assert!(
        fed.nets[0].take_inbox(romeo).is_empty(),
        "queued, not bounced"
    );
    let deadline = fed.nets[0]
        .server
        .poll_timeout()
        .expect("negotiation deadline");
    assert_eq!(
        deadline,
        T0 + fed.nets[0].server.config().limits.negotiation_timeout
    );
    fed.nets[0].now = deadline;
    fed.nets[0].server.handle_timeout(deadline);
    fed.nets[0].drive();
    assert_eq!(
        bounce_condition(&fed.nets[0].take_inbox(romeo), "m1").as_deref(),
        Some("remote-server-timeout")
    );
    assert_eq!(fed.nets[0].s2s_closed, vec![conn]);
}

#[test]
fn idle_streams_close_both_ways_and_the_next_stanza_reopens() {
    // Clients are not pinged during the test (they do not answer pings here).
    let (mut fed, romeo, juliet) = online_in(Fed::with(|c| {
        c.limits.ping_after = Duration::from_secs(24 * 3600)
    }));
    fed.send(0, romeo, &message("juliet@two.example", "m1"));
    fed.send(1, juliet, &message("romeo@one.example", "r1"));
    assert_eq!(bodies(&fed.nets[1].take_inbox(juliet)).len(), 1);
    assert_eq!(bodies(&fed.nets[0].take_inbox(romeo)).len(), 1);
    let streams = fed.accepted.len();
    assert!(!fed.links.is_empty());
    let idle = fed.nets[0].server.config().s2s.idle_timeout;
    // Until the idle timeout (outgoing streams send keepalives meanwhile) they stay up.
    fed.advance_to(fed.now + (idle - Duration::from_secs(1)));
    assert!(!fed.links.is_empty(), "still up before the idle timeout");
    fed.advance_to(fed.now + Duration::from_secs(2));
    assert!(
        fed.links.is_empty(),
        "every s2s stream closed: {:?}",
        fed.links
    );
    // No s2s deadline is left (only the clients' far-off ping).
    let clients_ping = T0 + Duration::from_secs(24 * 3600);
    assert!(
        fed.nets
            .iter()
            .all(|n| n.server.poll_timeout() >= Some(clients_ping))
    );
    // Nothing bounced; a new stanza opens a new stream and arrives.
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    fed.send(0, romeo, &message("juliet@two.example", "m2"));
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    assert_eq!(
        bodies(&fed.nets[1].take_inbox(juliet)),
        vec![("romeo@one.example/orchard".to_string(), "m2".to_string())]
    );
    assert!(fed.accepted.len() > streams);
}

/// XEP-0163 4.3 across servers: a contact on another server with a subscription to the
/// owner's presence gets the notifications of `presence` nodes (through its own server,
/// to each available resource), and none of a whitelist node.
#[test]
fn pep_notifications_reach_contacts_on_other_servers() {
    let (mut fed, romeo, juliet) = online();
    romeo_subscribes_to_juliet(&mut fed, romeo, juliet);
    let publish = |node: &str, id: &str, options: &str| {
        format!(
            "<iq xmlns='jabber:client' type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='{node}'><item id='current'><tune xmlns='http://jabber.org/protocol/tune'>\
             <title>{id}</title></tune></item></publish>{options}</pubsub></iq>"
        )
    };
    // The tune node is created with XEP-0163's default access model, presence.
    fed.send(
        1,
        juliet,
        &publish("http://jabber.org/protocol/tune", "t1", ""),
    );
    let got = fed.nets[0].take_inbox(romeo);
    let events: Vec<&Element> = got
        .iter()
        .filter(|m| {
            m.name == "message"
                && m.get_child("event", "http://jabber.org/protocol/pubsub#event")
                    .is_some()
        })
        .collect();
    assert_eq!(events.len(), 1, "{got:?}");
    assert_eq!(events[0].attr("from"), Some("juliet@two.example"));
    assert_eq!(events[0].attr("type"), Some("headline"));
    assert!(
        String::from_utf8_lossy(&events[0].to_bytes()).contains("<title>t1</title>"),
        "{:?}",
        events[0]
    );
    // A whitelist node's items stay at home.
    let whitelist = "<publish-options><x xmlns='jabber:x:data' type='submit'>\
        <field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
        <field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>";
    fed.send(1, juliet, &publish("urn:example:diary", "t2", whitelist));
    let got = fed.nets[0].take_inbox(romeo);
    assert!(
        !got.iter().any(|m| m.name == "message"),
        "nothing from a whitelist node: {got:?}"
    );
}

/// PEP notifications to remote contacts are the server's own stanzas (RFC 6120 8.3.1: an
/// error goes to the sender, and the owner sent none). When the contact's server cannot
/// be reached nothing comes back to the owner, while the owner's own message there still
/// bounces; an error a remote server returns for a notification (to the owner's bare JID)
/// is not delivered either, while one for a stanza the owner sent (to her full JID) is.
#[test]
fn pep_notifications_do_not_bring_the_owner_errors() {
    let (mut fed, romeo, juliet) = online_in(Fed::with(|c| {
        // Clients are not pinged while time advances (they do not answer pings here).
        c.limits.ping_after = Duration::from_secs(24 * 3600)
    }));
    romeo_subscribes_to_juliet(&mut fed, romeo, juliet);
    let publish = |id: &str| {
        format!(
            "<iq xmlns='jabber:client' type='set' id='{id}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>\
             <publish node='http://jabber.org/protocol/tune'><item id='current'>\
             <tune xmlns='http://jabber.org/protocol/tune'><title>{id}</title></tune></item>\
             </publish></pubsub></iq>"
        )
    };
    let event = |m: &Element| {
        m.get_child("event", "http://jabber.org/protocol/pubsub#event")
            .is_some()
    };
    fed.send(1, juliet, &publish("t1"));
    let notification = fed.nets[0]
        .take_inbox(romeo)
        .into_iter()
        .find(|m| event(m))
        .expect("Romeo is notified");
    fed.nets[1].take_inbox(juliet);

    // Romeo's side refuses the notification, as a server without such a user would:
    // the error comes back to Juliet's bare JID and stays there (RFC 6121 8.5.2.1.1).
    let id = notification.attr("id").unwrap();
    fed.send(
        0,
        romeo,
        &format!(
            "<message xmlns='jabber:client' to='juliet@two.example' type='error' id='{id}'>\
             <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
             </error></message>"
        ),
    );
    assert!(fed.nets[1].take_inbox(juliet).is_empty());
    // An error for a message Juliet sent reaches her.
    fed.send(1, juliet, &message("romeo@one.example/orchard", "m1"));
    assert_eq!(bodies(&fed.nets[0].take_inbox(romeo)).len(), 1);
    fed.send(
        0,
        romeo,
        "<message xmlns='jabber:client' to='juliet@two.example/balcony' type='error' id='m1'>\
         <error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>\
         </error></message>",
    );
    assert_eq!(
        bounce_condition(&fed.nets[1].take_inbox(juliet), "m1").as_deref(),
        Some("service-unavailable")
    );

    // one.example goes away: the idle streams close, and new connects to it fail.
    let idle = fed.nets[0].server.config().s2s.idle_timeout;
    fed.advance_to(fed.now + idle + Duration::from_secs(1));
    assert!(fed.links.is_empty(), "{:?}", fed.links);
    fed.down[0] = true;
    fed.send(1, juliet, &publish("t2"));
    let got = fed.nets[1].take_inbox(juliet);
    assert!(
        got.iter()
            .any(|m| event(m) && m.attr("from") == Some("juliet@two.example")),
        "the owner's own resources are notified: {got:?}"
    );
    assert!(
        !got.iter().any(|m| m.attr("type") == Some("error")),
        "no error for the notification Romeo's server did not get: {got:?}"
    );
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    // Juliet's own message to that server still bounces.
    fed.send(1, juliet, &message("romeo@one.example", "m2"));
    assert_eq!(
        bounce_condition(&fed.nets[1].take_inbox(juliet), "m2").as_deref(),
        Some("remote-server-not-found")
    );
}

/// Dialback checks are bounded: past `max_verifications` in flight, and past what the
/// not yet connected outgoing stream can hold (64), an incoming stream's check fails at
/// once with `remote-connection-failed` rather than wait for an answer never asked for.
#[test]
fn dialback_checks_past_the_bounds_fail_at_once() {
    let mut cfg = config(ONE, 1);
    cfg.s2s.max_verifications = 70;
    let mut net = Net::with_config(cfg);
    let mut incoming = Vec::new();
    for i in 0..71 {
        let id = net.server.accept_s2s(T0);
        let xml = format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
             from='two.example' to='one.example' version='1.0'>\
             <db:result from='two.example' to='one.example'>key{i}</db:result>"
        );
        net.server.handle_input(id, xml.as_bytes(), T0);
        net.drive();
        incoming.push(id);
    }
    // One outgoing connection to two.example is asked for; nothing is connected yet.
    assert_eq!(net.connects.len(), 1, "{:?}", net.connects);
    let failed = |net: &Net| -> Vec<ConnId> {
        incoming
            .iter()
            .copied()
            .filter(|id| {
                net.s2s_out.iter().any(|(c, bytes)| {
                    c == id && String::from_utf8_lossy(bytes).contains("remote-connection-failed")
                })
            })
            .collect()
    };
    assert_eq!(failed(&net), vec![incoming[70]], "past max_verifications");
    let (out, _) = net.connects.pop().unwrap();
    net.server.handle_connected(out, T0);
    net.drive();
    assert_eq!(
        failed(&net),
        incoming[64..71].to_vec(),
        "the 64 the stream holds wait, the rest fail"
    );
    for id in &incoming[64..71] {
        assert!(net.s2s_closed.contains(id), "{id:?} closed");
    }
    assert!(!net.s2s_closed.contains(&incoming[0]));
}

/// XEP-0077 §3.2 across servers: when Romeo removes his account, his server sends
/// Juliet's server his unavailable presence and the `unsubscribe` and `unsubscribed`
/// that cancel both subscriptions; her server updates her roster and pushes it.
#[test]
fn account_removal_unsubscribes_contacts_on_other_servers() {
    let (mut fed, romeo, juliet) = online();
    fed.send(
        1,
        juliet,
        "<iq xmlns='jabber:client' type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>",
    );
    // Subscriptions both ways.
    for (net, conn, to, ty) in [
        (0, romeo, "juliet@two.example", "subscribe"),
        (1, juliet, "romeo@one.example", "subscribed"),
        (1, juliet, "romeo@one.example", "subscribe"),
        (0, romeo, "juliet@two.example", "subscribed"),
    ] {
        fed.send(
            net,
            conn,
            &format!("<presence xmlns='jabber:client' to='{to}' type='{ty}'/>"),
        );
    }
    assert_eq!(
        fed.nets[1].roster(juliet),
        vec![("romeo@one.example".to_string(), "both".to_string())]
    );
    fed.nets[1].take_inbox(juliet);

    fed.send(
        0,
        romeo,
        "<iq xmlns='jabber:client' type='set' id='rm'><query xmlns='jabber:iq:register'><remove/></query></iq>",
    );
    assert!(fed.nets[0].closed_error(romeo).is_some(), "session closed");
    let got = fed.nets[1].take_inbox(juliet);
    let presences = common::presence_types(&got);
    for want in [
        ("unavailable", "romeo@one.example/orchard"),
        ("unsubscribe", "romeo@one.example"),
        ("unsubscribed", "romeo@one.example"),
    ] {
        assert!(presences.contains(&want), "{want:?} in {presences:?}");
    }
    assert!(
        got.iter()
            .any(|e| e.name == "iq" && e.attr("type") == Some("set")),
        "roster push: {got:?}"
    );
    assert_eq!(
        fed.nets[1].roster(juliet),
        vec![("romeo@one.example".to_string(), "none".to_string())]
    );
}

/// Both servers with a small output limit, so a few messages fill it.
fn small_output() -> Fed {
    Fed::with(|c| c.limits.max_unsent_bytes = 16 * 1024)
}

/// A chat message from romeo to juliet with id `id` and a 2000-byte body.
fn big_message(id: &str) -> String {
    format!(
        "<message xmlns='jabber:client' to='juliet@two.example' id='{id}'><body>{}</body></message>",
        "x".repeat(2000)
    )
}

#[test]
fn a_stanza_past_the_output_limit_of_an_established_stream_bounces_and_the_next_reopens() {
    let (mut fed, romeo, juliet) = online_in(small_output());
    // The stream to two.example is up and two.example reads.
    fed.send(0, romeo, &big_message("warm"));
    assert_eq!(bodies(&fed.nets[1].take_inbox(juliet)).len(), 1);
    assert_eq!(fed.links.len(), 4);
    // two.example stops reading: what romeo sends stays unwritten until the limit.
    fed.stalled[1] = true;
    let mut bounced = None;
    for n in 0..20 {
        let id = format!("m{n}");
        fed.send(0, romeo, &big_message(&id));
        let got = fed.nets[0].take_inbox(romeo);
        if let Some(e) = got.first() {
            assert_eq!(got.len(), 1, "{got:?}");
            assert_eq!(
                e.attr("id"),
                Some(id.as_str()),
                "only the stanza that did not fit"
            );
            bounced = Some((n, e.clone()));
            break;
        }
    }
    let (n, bounce) = bounced.expect("a stanza past the output limit bounces");
    // 16 KiB hold seven of these (and the first is not refused for what came before).
    assert_eq!(n, 7, "{bounce:?}");
    assert_eq!(bounce.attr("type"), Some("error"));
    assert_eq!(bounce.attr("from"), Some("juliet@two.example"));
    assert_eq!(
        error_condition(&bounce).as_deref(),
        Some("resource-constraint")
    );
    // The stream whose peer does not read is ended (its connection closed); the one
    // two.example opened to us is untouched.
    assert_eq!(fed.links.len(), 2, "{:?}", fed.links);
    // An error is never answered with an error, however full the output is.
    fed.send(
        0,
        romeo,
        "<message xmlns='jabber:client' to='juliet@two.example' type='error' id='e1'/>",
    );
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    // The next stanza opens a new stream and waits in its queue while it is set up
    // (two.example still does not read): no bounce.
    fed.send(
        0,
        romeo,
        "<message xmlns='jabber:client' to='juliet@two.example' id='later'><body>Later</body></message>",
    );
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    // two.example reads again: the new stream authenticates and carries it. What the
    // ended stream held unwritten is lost with its connection (no XEP-0198 on s2s).
    fed.resume(1);
    let got = bodies(&fed.nets[1].take_inbox(juliet));
    assert_eq!(
        got,
        vec![("romeo@one.example/orchard".into(), "Later".into())],
        "{got:?}"
    );
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
}

#[test]
fn stanzas_queued_past_the_output_limit_are_sent_as_the_peer_reads() {
    let (mut fed, romeo, juliet) = online_in(small_output());
    assert!(fed.links.is_empty(), "no stream yet");
    // While the stream to two.example is set up (it does not read yet), twelve messages
    // of 2 KiB wait in the queue: more than the 16 KiB the stream may hold unwritten.
    fed.stalled[1] = true;
    for n in 0..12 {
        fed.send(0, romeo, &big_message(&format!("q{n}")));
    }
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    // At authentication those that fit are sent, the rest as the peer reads them: all
    // arrive in order, none bounces, and the stream stays.
    fed.resume(1);
    let got = message_ids(&fed.nets[1].take_inbox(juliet));
    let want: Vec<String> = (0..12).map(|n| format!("q{n}")).collect();
    assert_eq!(got, want);
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    assert_eq!(fed.links.len(), 4, "{:?}", fed.links);
}

/// Romeo subscribes to Juliet's presence across the servers and she approves: she is in
/// his roster with subscription `to`, he in hers with `from`.
fn romeo_subscribes_to_juliet(fed: &mut Fed, romeo: ConnId, juliet: ConnId) {
    fed.send(
        0,
        romeo,
        "<presence xmlns='jabber:client' to='juliet@two.example' type='subscribe'/>",
    );
    fed.send(
        1,
        juliet,
        "<presence xmlns='jabber:client' to='romeo@one.example' type='subscribed'/>",
    );
    fed.nets[0].take_inbox(romeo);
    fed.nets[1].take_inbox(juliet);
}

/// The ids of the messages in `inbox`.
fn message_ids(inbox: &[Element]) -> Vec<String> {
    inbox
        .iter()
        .filter(|e| e.name == "message")
        .filter_map(|e| e.attr("id").map(str::to_string))
        .collect()
}

#[test]
fn stanzas_waiting_behind_output_the_peer_stopped_reading_bounce_remote_server_timeout() {
    let (mut fed, romeo, juliet) = online_in(Fed::with(|c| {
        c.limits.max_unsent_bytes = 16 * 1024;
        // Clients are not pinged while time advances (they do not answer pings here).
        c.limits.ping_after = Duration::from_secs(24 * 3600);
    }));
    let write_timeout = fed.nets[0].server.config().s2s.write_timeout;
    assert_eq!(write_timeout, Duration::from_secs(60), "the default");
    // Sixteen messages of 2 KiB wait while the stream to two.example is set up; it
    // authenticates, and two.example stops reading in the middle of the flush.
    fed.stalled[1] = true;
    for n in 0..16 {
        fed.send(0, romeo, &big_message(&format!("q{n}")));
    }
    fed.stall_at[1] = Some("id='q3'".into());
    fed.resume(1);
    assert_eq!(
        message_ids(&fed.nets[1].take_inbox(juliet)),
        ["q0", "q1", "q2"]
    );
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    // one.example's stream to two.example (two.example's stream the other way, for its
    // own dialback, never authenticates: one.example's check waits behind the stall).
    let out = fed
        .accepted
        .iter()
        .find(|&&(j, _, _)| j == 1)
        .map(|&(j, peer, _)| fed.links[&(j, peer)].1)
        .expect("one.example's outgoing stream");
    // Waiting behind them: an error, which must never be answered with one.
    fed.send(
        0,
        romeo,
        "<message xmlns='jabber:client' to='juliet@two.example' type='error' id='e1'/>",
    );

    // Reading a little before the timeout starts the wait over.
    fed.advance_to(fed.now + (write_timeout - Duration::from_secs(1)));
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    fed.stall_at[1] = Some("id='q5'".into());
    fed.resume(1);
    assert_eq!(message_ids(&fed.nets[1].take_inbox(juliet)), ["q3", "q4"]);
    fed.advance_to(fed.now + (write_timeout - Duration::from_secs(1)));
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
    assert!(fed.links.contains_key(&(0, out)), "still up");

    // A whole timeout without progress: the stream ends and what still waited for room
    // bounces remote-server-timeout (the error is dropped), well before the idle close.
    fed.advance_to(fed.now + Duration::from_secs(2));
    let got = fed.nets[0].take_inbox(romeo);
    assert!(
        got.iter().all(|e| e.attr("type") == Some("error")),
        "{got:?}"
    );
    assert!(
        got.iter()
            .all(|e| error_condition(e).as_deref() == Some("remote-server-timeout")),
        "{got:?}"
    );
    assert_eq!(message_ids(&got), ["q12", "q13", "q14", "q15"]);
    assert!(!fed.links.contains_key(&(0, out)), "ended");
    // two.example reads again: the ended stream's unwritten output is lost with it (no
    // XEP-0198 on s2s), and the next message opens a new stream.
    fed.resume(1);
    assert!(fed.nets[1].take_inbox(juliet).is_empty());
    fed.send(0, romeo, &message("juliet@two.example", "later"));
    assert_eq!(message_ids(&fed.nets[1].take_inbox(juliet)), ["later"]);
    assert!(fed.nets[0].take_inbox(romeo).is_empty());
}
