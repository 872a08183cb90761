//! Server-to-server: outgoing streams per remote domain (queue while connecting,
//! bounce on failure), incoming streams (dialback verification through the
//! authoritative server, stanza delivery by the local rules).
//!
//! The core stays sans-IO: it asks the adapter to connect with
//! [`ServerEvent::Connect`]; the adapter resolves the domain from its
//! configuration and answers [`Server::handle_connected`] or
//! [`Server::handle_connect_failed`].

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use elsinore_jid::Jid;
use elsinore_stanza::{
    DefinedCondition, NS_CLIENT, NS_DISCO_INFO, StanzaError, StreamError, StreamErrorCondition,
};
use elsinore_stream::{Instant, S2sConfig, S2sConnection, S2sEvent, TlsPolicy};
use elsinore_xml::{Element, Node};

use crate::roster::{SubKind, SubPayload};
use crate::server::{ConnId, Server, ServerEvent};

/// Server-to-server settings.
#[derive(Debug, Clone)]
pub struct S2sSettings {
    /// Route stanzas to remote domains and accept s2s streams (off: remote
    /// domains bounce `remote-server-not-found`).
    pub enabled: bool,
    /// Offer and use server dialback (SASL EXTERNAL needs verified certificates).
    pub dialback: bool,
    /// Secret of our dialback keys; keep it across restarts.
    pub secret: [u8; 32],
    /// Require TLS on s2s streams before authentication.
    pub require_tls: bool,
    /// Stanzas queued per remote domain while its stream is being set up.
    pub max_queue: usize,
    /// Outgoing streams at once; at the cap, the least recently used idle one is
    /// closed to make room (only when none is idle do new domains bounce).
    pub max_outgoing: usize,
    /// Dialback verifications in flight at once.
    pub max_verifications: usize,
    /// A stream with no stanza either way for this long is closed (both directions).
    pub idle_timeout: Duration,
    /// Silence after which an established outgoing stream sends a whitespace keepalive
    /// (used for s2s instead of `Limits::keepalive_interval`, which is the client
    /// role's). Meant to be below `idle_timeout`: keepalives do not keep a stream open.
    pub keepalive_interval: Duration,
    /// An established outgoing stream with stanzas waiting for room in its output and no
    /// write progress (`Server::handle_written`) for this long is ended with
    /// `connection-timeout`; the waiting stanzas bounce `remote-server-timeout`. Without
    /// it they would wait for the idle close. The same 60 s the tokio adapter allows one
    /// write.
    pub write_timeout: Duration,
}

impl Default for S2sSettings {
    fn default() -> Self {
        S2sSettings {
            enabled: false,
            dialback: true,
            secret: [0; 32],
            require_tls: false,
            max_queue: 100,
            max_outgoing: 256,
            max_verifications: 256,
            idle_timeout: elsinore_stream::s2s::DEFAULT_IDLE_TIMEOUT,
            keepalive_interval: Duration::from_secs(90),
            write_timeout: Duration::from_secs(60),
        }
    }
}

/// Who a stanza for another server comes from, which decides whether it may bounce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    /// A local user sent it (or it stands for what one sent): a failure bounces to them.
    User,
    /// The server made it on its own (a PEP event notification): no user sent it, so a
    /// failure is dropped instead of delivering an error for a stanza nobody sent
    /// (RFC 6120 8.3.1: the error goes to the sender; here the sender is the server).
    Server,
}

/// One s2s connection of the core.
#[derive(Debug)]
pub(crate) struct S2sConn {
    /// `None` while the adapter connects an outgoing stream.
    stream: Option<S2sConnection>,
    /// Outgoing: the remote domain.
    remote: Option<String>,
    /// Outgoing: stanzas waiting for the stream to be authenticated, then for room in
    /// its output (those flushed at authentication that did not fit at once).
    queue: VecDeque<(Element, Origin)>,
    /// Outgoing: dialback checks (stream id, key) asked for before the adapter
    /// connected; bounded by [`S2sSettings::max_verifications`].
    verify_backlog: Vec<(String, String)>,
    /// Outgoing, established: since when stanzas have waited in `queue` for room with no
    /// write progress (`None`: nothing waits). Bounded by [`S2sSettings::write_timeout`].
    write_wait: Option<Instant>,
}

/// The s2s part of the server state.
#[derive(Debug, Default)]
pub(crate) struct S2sState {
    pub(crate) conns: HashMap<ConnId, S2sConn>,
    /// Remote domain → its outgoing connection.
    out: HashMap<String, ConnId>,
    /// (remote domain, stream id) of a dialback check in flight → incoming stream asking.
    verifying: HashMap<(String, String), ConnId>,
}

impl Server {
    fn s2s_config(&self) -> S2sConfig {
        let s = &self.config.s2s;
        let mut c = S2sConfig::new(self.config.domain.clone(), s.secret);
        c.dialback = s.dialback;
        c.tls = match (self.config.tls_available, s.require_tls) {
            (false, _) => TlsPolicy::Disabled,
            (true, true) => TlsPolicy::Required,
            (true, false) => TlsPolicy::Optional,
        };
        c.gone_domains = self.config.gone_domains.clone();
        c.idle_timeout = s.idle_timeout;
        c
    }

    /// The connection limits with the s2s keepalive interval.
    fn s2s_limits(&self) -> elsinore_stream::Limits {
        let mut limits = self.config.limits.clone();
        // At least a second: a zero interval would make the keepalive due again at once,
        // and the adapter would spin on it.
        limits.keepalive_interval = self
            .config
            .s2s
            .keepalive_interval
            .max(Duration::from_secs(1));
        limits
    }

    /// Whether `conn` is a server-to-server connection.
    pub fn is_s2s(&self, conn: ConnId) -> bool {
        self.s2s.conns.contains_key(&conn)
    }

    /// A new connection accepted on the s2s listener.
    pub fn accept_s2s(&mut self, now: Instant) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let seed = self.rng.fork();
        let stream = S2sConnection::new_receiving(self.s2s_config(), self.s2s_limits(), seed, now);
        self.s2s.conns.insert(
            id,
            S2sConn {
                stream: Some(stream),
                remote: None,
                queue: VecDeque::new(),
                verify_backlog: Vec::new(),
                write_wait: None,
            },
        );
        id
    }

    /// The adapter connected the outgoing connection `conn` (asked for by
    /// [`ServerEvent::Connect`]); the stream starts.
    pub fn handle_connected(&mut self, conn: ConnId, now: Instant) {
        let config = self.s2s_config();
        let limits = self.s2s_limits();
        let seed = self.rng.fork();
        if let Some(c) = self.s2s.conns.get_mut(&conn)
            && c.stream.is_none()
            && let Some(remote) = c.remote.clone()
        {
            let mut stream = S2sConnection::new_initiating(config, &remote, limits, seed, now);
            let mut refused = Vec::new();
            for (stream_id, key) in c.verify_backlog.drain(..) {
                // The stream holds fewer requests than `max_verifications` may allow.
                if stream.send_verify(&stream_id, &key, now).is_err() {
                    refused.push(stream_id);
                }
            }
            c.stream = Some(stream);
            self.s2s_after(conn, now);
            // Those it cannot hold fail now rather than wait for a verdict never asked for.
            for stream_id in refused {
                if let Some(incoming) = self.s2s.verifying.remove(&(remote.clone(), stream_id))
                    && let Some(s) = self
                        .s2s
                        .conns
                        .get_mut(&incoming)
                        .and_then(|c| c.stream.as_mut())
                {
                    s.dialback_failed(&remote);
                    self.s2s_after(incoming, now);
                }
            }
        }
        self.run_ready(now);
    }

    /// The adapter could not connect `conn` (unknown domain, refused, timed out).
    pub fn handle_connect_failed(&mut self, conn: ConnId, now: Instant) {
        self.s2s_gone(conn, DefinedCondition::RemoteServerNotFound, now);
        self.run_ready(now);
    }

    /// The TLS handshake on s2s connection `conn` completed; `verified`: the
    /// domains its peer's certificate was verified for (empty: none or unverified).
    pub fn handle_s2s_tls_ready(&mut self, conn: ConnId, verified: Vec<String>, now: Instant) {
        if let Some(s) = self
            .s2s
            .conns
            .get_mut(&conn)
            .and_then(|c| c.stream.as_mut())
        {
            s.handle_tls_ready(verified, now);
            self.s2s_after(conn, now);
        }
        self.run_ready(now);
    }

    /// The adapter wrote `n` more bytes of what it took for `conn` with
    /// [`Server::poll_transmit`]. An outgoing s2s stream keeps at most
    /// `Limits::max_unsent_bytes` unwritten, so an adapter driving s2s must report
    /// its writes on outgoing streams; other connections ignore this.
    pub fn handle_written(&mut self, conn: ConnId, n: usize, now: Instant) {
        if let Some(s) = self
            .s2s
            .conns
            .get_mut(&conn)
            .and_then(|c| c.stream.as_mut())
        {
            s.handle_written(n);
            if n > 0
                && let Some(c) = self.s2s.conns.get_mut(&conn)
            {
                // The peer reads: a wait for room starts over.
                c.write_wait = None;
            }
            // Room for stanzas that waited for it.
            self.s2s_flush(conn, now);
            self.s2s_after(conn, now);
        }
        self.run_ready(now);
    }

    pub(crate) fn s2s_input(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        if let Some(s) = self
            .s2s
            .conns
            .get_mut(&conn)
            .and_then(|c| c.stream.as_mut())
        {
            s.handle_input(bytes, now);
            self.s2s_after(conn, now);
        }
    }

    pub(crate) fn s2s_eof(&mut self, conn: ConnId, now: Instant) {
        match self.s2s.conns.get_mut(&conn).map(|c| c.stream.as_mut()) {
            Some(Some(s)) => {
                s.handle_eof(now);
                self.s2s_after(conn, now);
            }
            Some(None) => self.s2s_gone(conn, DefinedCondition::RemoteServerNotFound, now),
            None => {}
        }
    }

    pub(crate) fn s2s_timeouts(&mut self, now: Instant) {
        let write_timeout = self.config.s2s.write_timeout;
        let stalled: Vec<ConnId> = self
            .s2s
            .conns
            .iter()
            .filter(|(_, c)| c.write_wait.is_some_and(|t| t + write_timeout <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in stalled {
            self.s2s_stalled(id, now);
        }
        let due: Vec<ConnId> = self
            .s2s
            .conns
            .iter()
            .filter(|(_, c)| {
                c.stream
                    .as_ref()
                    .and_then(S2sConnection::poll_timeout)
                    .is_some_and(|t| t <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(s) = self.s2s.conns.get_mut(&id).and_then(|c| c.stream.as_mut()) {
                s.handle_timeout(now);
                self.s2s_after(id, now);
            }
        }
    }

    pub(crate) fn s2s_poll_timeout(&self) -> Option<Instant> {
        let write_timeout = self.config.s2s.write_timeout;
        self.s2s
            .conns
            .values()
            .flat_map(|c| {
                let stream = c.stream.as_ref().and_then(S2sConnection::poll_timeout);
                [stream, c.write_wait.map(|t| t + write_timeout)]
            })
            .flatten()
            .min()
    }

    /// Outgoing stream `id` made no write progress for the write timeout while stanzas
    /// waited for room: its peer has stopped reading. The stream ends and the waiting
    /// stanzas bounce `remote-server-timeout` (dropped where no error may be sent: errors,
    /// the server's own stanzas). What was already handed to the socket is lost with it.
    fn s2s_stalled(&mut self, id: ConnId, now: Instant) {
        let Some(c) = self.s2s.conns.get_mut(&id) else {
            return;
        };
        c.write_wait = None;
        let waiting = std::mem::take(&mut c.queue);
        if let Some(s) = c.stream.as_mut() {
            // Likely never read either; sent so that a peer that wakes up learns why.
            s.send_stream_error(
                StreamError::new(StreamErrorCondition::ConnectionTimeout)
                    .with_text("no output was read for too long"),
            );
        }
        // Closed first: a bounce that routes to the same domain opens a new stream.
        self.s2s_after(id, now);
        for (el, origin) in waiting {
            self.bounce_local(
                &el,
                origin,
                DefinedCondition::RemoteServerTimeout,
                "the remote server is not reading what was sent to it",
                now,
            );
        }
    }

    pub(crate) fn s2s_shutdown(&mut self, now: Instant) {
        let ids: Vec<ConnId> = self.s2s.conns.keys().copied().collect();
        for id in ids {
            match self.s2s.conns.get_mut(&id).map(|c| c.stream.as_mut()) {
                Some(Some(s)) => {
                    s.send_stream_error(
                        StreamError::new(StreamErrorCondition::SystemShutdown)
                            .with_text("the server is shutting down"),
                    );
                    self.s2s_after(id, now);
                }
                _ => self.s2s_gone(id, DefinedCondition::RemoteServerNotFound, now),
            }
        }
    }

    /// Route `el`, sent by or for a local user (their presence, a probe), to its remote
    /// `to` domain: at once when the stream is up, else queued (bounded) while it is set
    /// up; bounced to the sender when that cannot be.
    pub(crate) fn s2s_send(&mut self, el: Element, now: Instant) {
        self.s2s_route(el, Origin::User, now);
    }

    /// [`Server::s2s_send`] for a stanza the server generated: dropped where a user's
    /// would bounce.
    pub(crate) fn s2s_send_generated(&mut self, el: Element, now: Instant) {
        self.s2s_route(el, Origin::Server, now);
    }

    fn s2s_route(&mut self, el: Element, origin: Origin, now: Instant) {
        let Some(domain) = el
            .attr("to")
            .and_then(|t| Jid::parse(t).ok())
            .map(|j| j.domain().to_string())
        else {
            return;
        };
        if !self.config.s2s.enabled || domain == self.config.domain {
            return self.bounce_local(
                &el,
                origin,
                DefinedCondition::RemoteServerNotFound,
                "server-to-server is disabled",
                now,
            );
        }
        let id = match self.s2s.out.get(&domain) {
            Some(id) => *id,
            None => match self.s2s_connect(&domain, now) {
                Some(id) => id,
                None => {
                    return self.bounce_local(
                        &el,
                        origin,
                        DefinedCondition::ResourceConstraint,
                        "too many server-to-server connections",
                        now,
                    );
                }
            },
        };
        let max_queue = self.config.s2s.max_queue;
        let Some(c) = self.s2s.conns.get_mut(&id) else {
            return;
        };
        match c.stream.as_mut() {
            // Nothing waits before it (that would reorder): send now.
            Some(s) if s.is_established() && c.queue.is_empty() => {
                if s.send(&el, now).is_err() {
                    // Only `Backlog` here: the peer has not read `max_unsent_bytes` of
                    // what we sent. Buffering more for it is unbounded in time, so the
                    // stanza bounces and the stream ends; the next stanza for the domain
                    // opens a new stream (queued while it is set up).
                    s.send_stream_error(
                        StreamError::new(StreamErrorCondition::PolicyViolation)
                            .with_text("output backlog over limit"),
                    );
                    self.s2s_after(id, now);
                    return self.bounce_local(
                        &el,
                        origin,
                        DefinedCondition::ResourceConstraint,
                        "the remote server is not reading what was sent to it",
                        now,
                    );
                }
                self.s2s_after(id, now);
            }
            _ if c.queue.len() >= max_queue => self.bounce_local(
                &el,
                origin,
                DefinedCondition::ResourceConstraint,
                "too many stanzas waiting for the remote server",
                now,
            ),
            _ => c.queue.push_back((el, origin)),
        }
    }

    /// A new outgoing connection to `domain` (the adapter is asked to connect); at the
    /// cap, only when an idle one can be closed to make room.
    fn s2s_connect(&mut self, domain: &str, now: Instant) -> Option<ConnId> {
        if self.s2s.out.len() >= self.config.s2s.max_outgoing && !self.s2s_reap_idle(now) {
            return None;
        }
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        self.s2s.conns.insert(
            id,
            S2sConn {
                stream: None,
                remote: Some(domain.to_string()),
                queue: VecDeque::new(),
                verify_backlog: Vec::new(),
                write_wait: None,
            },
        );
        self.s2s.out.insert(domain.to_string(), id);
        self.events.push_back(ServerEvent::Connect {
            conn: id,
            domain: domain.to_string(),
        });
        Some(id)
    }

    /// Closes the least recently used outgoing stream that has nothing to do (established,
    /// nothing queued, no dialback check waiting on it); false when there is none.
    fn s2s_reap_idle(&mut self, now: Instant) -> bool {
        let verifying = &self.s2s.verifying;
        let victim = self
            .s2s
            .out
            .iter()
            .filter_map(|(domain, id)| {
                let c = self.s2s.conns.get(id)?;
                let s = c.stream.as_ref()?;
                let busy = !s.is_established()
                    || !c.queue.is_empty()
                    || verifying.keys().any(|(d, _)| d == domain);
                (!busy).then_some((s.last_activity(), *id))
            })
            .min();
        let Some((_, id)) = victim else {
            return false;
        };
        if let Some(s) = self.s2s.conns.get_mut(&id).and_then(|c| c.stream.as_mut()) {
            s.close(now);
        }
        // Detaches it from `out` (it finishes its close handshake on its own).
        self.s2s_after(id, now);
        true
    }

    /// An error reply to `el` (sent by a local user) delivered locally; never to an
    /// error or an iq result ([`crate::server::may_bounce`]), nor to a stanza the server
    /// generated ([`Origin::Server`]).
    fn bounce_local(
        &mut self,
        el: &Element,
        origin: Origin,
        cond: DefinedCondition,
        text: &str,
        now: Instant,
    ) {
        if origin == Origin::Server || !crate::server::may_bounce(el) {
            return;
        }
        let Some(sender) = el.attr("from").and_then(|f| Jid::parse(f).ok()) else {
            return;
        };
        if sender.domain() != self.config.domain {
            return;
        }
        let mut reply = Element::new(el.name.clone(), NS_CLIENT).with_attr("type", "error");
        if let Some(i) = el.attr("id") {
            reply.set_attr("id", i);
        }
        if let Some(t) = el.attr("to") {
            reply.set_attr("from", t);
        }
        reply.set_attr("to", sender.to_string());
        for child in el.elements() {
            reply.children.push(Node::Element(child.clone()));
        }
        let err = StanzaError::new(cond).with_text(text);
        reply
            .children
            .push(Node::Element(err.to_element(NS_CLIENT)));
        self.route(ConnId(0), reply, Some(sender), now);
    }

    /// An s2s connection ended (or never connected): forget it, bounce its queue,
    /// fail the dialback checks that waited for it.
    fn s2s_gone(&mut self, id: ConnId, cond: DefinedCondition, now: Instant) {
        let Some(c) = self.s2s.conns.remove(&id) else {
            return;
        };
        // A stream that was closing was detached from `out` when its close began (see
        // `s2s_after`): checks for its domain wait on its successor, not on it.
        let current = c
            .remote
            .as_ref()
            .is_some_and(|r| self.s2s.out.get(r) == Some(&id));
        if let Some(remote) = &c.remote
            && current
        {
            self.s2s.out.remove(remote);
        }
        for (el, origin) in c.queue {
            self.bounce_local(
                &el,
                origin,
                cond.clone(),
                "the remote server could not be reached",
                now,
            );
        }
        let waiting: Vec<((String, String), ConnId)> = self
            .s2s
            .verifying
            .iter()
            .filter(|((d, _), _)| current && Some(d) == c.remote.as_ref())
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for ((domain, key), incoming) in waiting {
            self.s2s.verifying.remove(&(domain.clone(), key));
            if let Some(s) = self
                .s2s
                .conns
                .get_mut(&incoming)
                .and_then(|c| c.stream.as_mut())
            {
                s.dialback_failed(&domain);
                self.s2s_after(incoming, now);
            }
        }
    }

    /// Collect an s2s connection's output and events after it was driven.
    pub(crate) fn s2s_after(&mut self, id: ConnId, now: Instant) {
        loop {
            let Some(c) = self.s2s.conns.get_mut(&id) else {
                return;
            };
            let Some(s) = c.stream.as_mut() else {
                return;
            };
            // A closing outgoing stream (idle, or reaped) carries nothing more: the next
            // stanza for its domain opens a new one.
            if s.is_closing()
                && let Some(remote) = &c.remote
                && self.s2s.out.get(remote) == Some(&id)
            {
                self.s2s.out.remove(remote);
            }
            let bytes = s.take_transmit();
            if !bytes.is_empty() {
                self.transmit.push_back((id, bytes));
            }
            let Some(ev) = s.poll_event() else {
                return;
            };
            match ev {
                S2sEvent::UpgradeTls => self.events.push_back(ServerEvent::UpgradeTls(id)),
                S2sEvent::VerifyRequest {
                    from,
                    stream_id,
                    key,
                    ..
                } => self.s2s_verify(id, from, stream_id, key, now),
                S2sEvent::Verified {
                    from,
                    stream_id,
                    valid,
                } => {
                    if let Some(incoming) = self.s2s.verifying.remove(&(from.clone(), stream_id))
                        && let Some(s) = self
                            .s2s
                            .conns
                            .get_mut(&incoming)
                            .and_then(|c| c.stream.as_mut())
                    {
                        s.dialback_result(&from, valid, now);
                        self.s2s_after(incoming, now);
                    }
                }
                // Outgoing: send what waited for the stream.
                S2sEvent::Authenticated { .. } => self.s2s_flush(id, now),
                S2sEvent::Stanza(el) => self.handle_s2s_stanza(id, el, now),
                S2sEvent::Closed { .. } => {
                    let timed_out = self
                        .s2s
                        .conns
                        .get(&id)
                        .and_then(|c| c.stream.as_ref())
                        .is_some_and(S2sConnection::timed_out);
                    if let Some(rest) = self
                        .s2s
                        .conns
                        .get_mut(&id)
                        .and_then(|c| c.stream.as_mut())
                        .map(S2sConnection::take_transmit)
                        && !rest.is_empty()
                    {
                        self.transmit.push_back((id, rest));
                    }
                    let cond = if timed_out {
                        DefinedCondition::RemoteServerTimeout
                    } else {
                        DefinedCondition::RemoteServerNotFound
                    };
                    self.s2s_gone(id, cond, now);
                    self.events.push_back(ServerEvent::Close(id));
                    return;
                }
            }
        }
    }

    /// Sends the queued stanzas of established outgoing stream `id` in order, as many as
    /// fit in its output; the rest wait for [`Server::handle_written`]. The queue can hold
    /// more than the output limit (`max_queue` stanzas of up to the element size limit),
    /// and a peer that just authenticated has had no chance to read: not a reason to end
    /// the stream.
    fn s2s_flush(&mut self, id: ConnId, now: Instant) {
        let Some(c) = self.s2s.conns.get_mut(&id) else {
            return;
        };
        let Some(s) = c.stream.as_mut() else {
            return;
        };
        if c.remote.is_none() || !s.is_established() {
            return;
        }
        while let Some((el, _)) = c.queue.front() {
            if s.send(el, now).is_err() {
                break;
            }
            c.queue.pop_front();
        }
        // The wait for room starts now unless one is already running (only write
        // progress restarts it, in `handle_written`).
        c.write_wait = match c.write_wait {
            _ if c.queue.is_empty() => None,
            Some(t) => Some(t),
            None => Some(now),
        };
    }

    /// An incoming stream claims `from` with a dialback key: ask `from`'s
    /// authoritative server over our outgoing stream to it.
    fn s2s_verify(
        &mut self,
        incoming: ConnId,
        from: String,
        stream_id: String,
        key: String,
        now: Instant,
    ) {
        let fail = |s: &mut Server| {
            if let Some(st) = s
                .s2s
                .conns
                .get_mut(&incoming)
                .and_then(|c| c.stream.as_mut())
            {
                st.dialback_failed(&from);
            }
        };
        if self.s2s.verifying.len() >= self.config.s2s.max_verifications {
            return fail(self);
        }
        let out = match self.s2s.out.get(&from) {
            Some(id) => *id,
            None => match self.s2s_connect(&from, now) {
                Some(id) => id,
                None => return fail(self),
            },
        };
        let Some(c) = self.s2s.conns.get_mut(&out) else {
            return fail(self);
        };
        match c.stream.as_mut() {
            // Not connected yet: the request waits inside the stream made at connect.
            None => c.verify_backlog.push((stream_id.clone(), key)),
            Some(s) => {
                if s.send_verify(&stream_id, &key, now).is_err() {
                    return fail(self);
                }
                self.s2s_after(out, now);
            }
        }
        self.s2s.verifying.insert((from, stream_id), incoming);
    }

    /// A stanza from a remote server, addresses checked by the stream: delivered
    /// by the same rules as a local one.
    fn handle_s2s_stanza(&mut self, id: ConnId, el: Element, now: Instant) {
        let (Some(from), Some(to)) = (
            el.attr("from").and_then(|f| Jid::parse(f).ok()),
            el.attr("to").and_then(|t| Jid::parse(t).ok()),
        ) else {
            return;
        };
        let for_server = to.node().is_none();
        match el.name.as_str() {
            "message" if for_server => {}
            "message" => self.route_message(id, el, Some(to), now),
            "presence" => self.s2s_presence(from, to, el, now),
            _ => {
                let ty = el.attr("type").unwrap_or_default().to_string();
                if !self.stanza_rules_met(id, &el, now) {
                    return;
                }
                if ty == "get" || ty == "set" {
                    // Service iqs (version, vCards, disco, ...) answer remote entities too.
                    let Some(el) = self.intercept(id, &from, el, Some(&to), now) else {
                        return;
                    };
                    let account_disco = ty == "get"
                        && to.resource().is_none()
                        && el.elements().next().is_some_and(|p| {
                            p.is("query", NS_DISCO_INFO) && p.attr("node").is_none()
                        });
                    if for_server {
                        self.handle_server_iq(id, &from, el, now);
                    } else if account_disco {
                        // A remote contact discovers the account as a local one does.
                        self.handle_account_disco(id, &from, el, to.to_bare(), now);
                    } else {
                        self.route(id, el, Some(to), now);
                    }
                } else if (ty == "result" || ty == "error") && !for_server {
                    self.route(id, el, Some(to), now);
                }
            }
        }
    }

    /// Presence from a remote entity to a local one.
    fn s2s_presence(&mut self, from: Jid, to: Jid, el: Element, now: Instant) {
        let ty = el.attr("type").map(str::to_string);
        if let Some(kind) = ty.as_deref().and_then(SubKind::from_type) {
            let payload = SubPayload::from_presence(&el);
            return self.subscription_inbound(from.to_bare(), to.to_bare(), kind, payload, now);
        }
        match ty.as_deref() {
            Some("probe") => {
                // RFC 6121 4.3.2: answer with the current presence when the prober
                // has a subscription to the user.
                let account = to.to_bare();
                let subscribed = self
                    .roster(&account)
                    .is_some_and(|r| r.presence_subscribers().any(|s| *s == from.to_bare()));
                if !subscribed {
                    return;
                }
                for (c, _) in self.available_sessions(&account) {
                    let Some((jid, p)) = self
                        .conns
                        .get(&c)
                        .and_then(|x| Some((x.jid()?.clone(), x.presence.as_ref()?.to_element())))
                    else {
                        continue;
                    };
                    let mut p = p;
                    p.set_attr("from", jid.to_string());
                    p.set_attr("to", from.to_string());
                    self.s2s_send(p, now);
                }
            }
            None | Some("unavailable") | Some("error") => self.deliver_presence(&to, &el, now),
            Some(_) => {}
        }
    }

    /// A probe for `source`'s presence (a remote contact) on behalf of local `to`.
    pub(crate) fn s2s_probe(&mut self, source: &elsinore_jid::BareJid, to: &Jid, now: Instant) {
        let probe = Element::new("presence", NS_CLIENT)
            .with_attr("type", "probe")
            .with_attr("from", to.to_bare().to_string())
            .with_attr("to", source.to_string());
        self.s2s_send(probe, now);
    }
}
