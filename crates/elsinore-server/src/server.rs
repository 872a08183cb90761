//! The server core: connections, sessions, routing, iq handlers.

use std::collections::{HashMap, HashSet, VecDeque};

use elsinore_jid::{BareJid, Jid};
use elsinore_sasl::{Mechanism, StoredCredentials};
use elsinore_stanza::{
    DefinedCondition, NS_CLIENT, NS_DISCO_INFO, NS_PING, NS_PRIVATE, NS_REGISTER, StanzaError,
    StreamError, StreamErrorCondition,
};
use elsinore_storage::private::{self, IqKind, PrivateAction, PrivateError};
use elsinore_storage::{Effect, EffectId, EffectResult, Op};
use elsinore_stream::{
    BindError, Connection, Event, Instant, Limits, Rng, ServerConfig as StreamConfig, TlsPolicy,
};
use elsinore_xml::Element;

use crate::accounts;

/// Identifies one connection of a [`Server`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// What the adapter must do for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerEvent {
    /// Flush what was transmitted before, run the TLS server handshake, then
    /// call [`Server::handle_tls_ready`].
    UpgradeTls(ConnId),
    /// Flush what was transmitted before, then close the socket.
    Close(ConnId),
}

/// Server configuration.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The domain served.
    pub domain: String,
    /// In-band registration (XEP-0077) before authentication.
    pub allow_registration: bool,
    /// Allow SASL without TLS (loopback tests, benchmarks).
    pub allow_plaintext_auth: bool,
    /// Whether the adapter can do TLS (a certificate is configured).
    pub tls_available: bool,
    /// Per-connection limits.
    pub limits: Limits,
    /// PBKDF2 iterations for credentials created here.
    pub scram_iterations: u32,
    /// XEP-0049 limits.
    pub private_limits: private::Limits,
    /// Sessions one account may have at once.
    pub max_sessions_per_account: usize,
    /// Per-installation secret for SCRAM decoys of unknown accounts; the
    /// binary keeps one in its data directory.
    pub decoy_secret: Option<[u8; 32]>,
}

impl ServerConfig {
    /// Defaults for `domain`: TLS available and required, no registration.
    pub fn new(domain: impl Into<String>) -> Self {
        ServerConfig {
            domain: domain.into(),
            allow_registration: false,
            allow_plaintext_auth: false,
            tls_available: true,
            limits: Limits::default(),
            scram_iterations: accounts::DEFAULT_SCRAM_ITERATIONS,
            private_limits: private::Limits::default(),
            max_sessions_per_account: 16,
            decoy_secret: None,
        }
    }

    fn stream_config(&self) -> StreamConfig {
        let mut c = StreamConfig::new(self.domain.clone());
        c.tls = match (self.tls_available, self.allow_plaintext_auth) {
            (false, _) => TlsPolicy::Disabled,
            (true, true) => TlsPolicy::Optional,
            (true, false) => TlsPolicy::Required,
        };
        if !self.tls_available && !self.allow_plaintext_auth {
            // No TLS and no plaintext auth would make login impossible: the
            // adapter must not build such a server; refuse every mechanism.
            c.mechanisms.clear();
        }
        c.mechanisms
            .retain(|m| *m != Mechanism::Plain || self.allow_plaintext_auth || self.tls_available);
        c.allow_registration = self.allow_registration;
        c.decoy = self.decoy_secret.map(|s| (s, self.scram_iterations));
        c
    }
}

/// What a storage completion resumes.
#[derive(Debug)]
enum Pending {
    Credentials(ConnId),
    Private {
        conn: ConnId,
        reply_to: IqHead,
        query: Element,
        pending: private::Pending,
    },
    RegisterCheck {
        conn: ConnId,
        reply_to: IqHead,
        jid: BareJid,
        password: String,
    },
    RegisterPut {
        conn: ConnId,
        reply_to: IqHead,
        jid: BareJid,
    },
}

/// What a reply to an iq needs.
#[derive(Debug, Clone)]
struct IqHead {
    id: String,
    /// The requester (becomes the reply's `to`), absent before binding.
    from: Option<Jid>,
    /// The addressee (becomes the reply's `from`).
    to: Option<String>,
}

#[derive(Debug)]
struct Conn {
    stream: Connection,
    /// Bound full JID once established.
    jid: Option<Jid>,
}

/// The sans-IO server (see the crate documentation for the run loop).
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    stream_config: StreamConfig,
    rng: Rng,
    conns: HashMap<ConnId, Conn>,
    next_conn: u64,
    /// Routing table: account → (resource, connection).
    sessions: HashMap<BareJid, Vec<(String, ConnId)>>,
    transmit: VecDeque<(ConnId, Vec<u8>)>,
    events: VecDeque<ServerEvent>,
    effects: VecDeque<Effect>,
    next_effect: EffectId,
    pending: HashMap<EffectId, Pending>,
    /// Usernames with a registration in flight (guards the check-then-put race).
    registering: HashSet<BareJid>,
}

impl Server {
    /// A server with no connections.
    pub fn new(config: ServerConfig, seed: [u8; 32], _now: Instant) -> Self {
        Server {
            stream_config: config.stream_config(),
            config,
            rng: Rng::new(seed),
            conns: HashMap::new(),
            next_conn: 1,
            sessions: HashMap::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            effects: VecDeque::new(),
            next_effect: 1,
            pending: HashMap::new(),
            registering: HashSet::new(),
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Number of established sessions.
    pub fn session_count(&self) -> usize {
        self.sessions.values().map(Vec::len).sum()
    }

    /// Number of storage effects emitted and not yet answered.
    pub fn outstanding_effects(&self) -> usize {
        self.pending.len()
    }

    // ---- inputs --------------------------------------------------------

    /// A new connection was accepted by the adapter.
    pub fn accept(&mut self, now: Instant) -> ConnId {
        let id = ConnId(self.next_conn);
        self.next_conn += 1;
        let seed = self.rng.fork();
        let stream = Connection::new_server(
            self.stream_config.clone(),
            self.config.limits.clone(),
            seed,
            now,
        );
        self.conns.insert(id, Conn { stream, jid: None });
        id
    }

    /// Bytes read from connection `conn`.
    pub fn handle_input(&mut self, conn: ConnId, bytes: &[u8], now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stream.handle_input(bytes, now);
            self.after(conn, now);
        }
    }

    /// Connection `conn` reached end of file (or failed).
    pub fn handle_eof(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stream.handle_eof(now);
            self.after(conn, now);
        }
    }

    /// The TLS handshake on `conn` completed.
    pub fn handle_tls_ready(&mut self, conn: ConnId, now: Instant) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.stream.handle_tls_ready(now);
            self.after(conn, now);
        }
    }

    /// A deadline from [`Server::poll_timeout`] passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.stream.poll_timeout().is_some_and(|t| t <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(c) = self.conns.get_mut(&id) {
                c.stream.handle_timeout(now);
                self.after(id, now);
            }
        }
    }

    /// Storage effect `id` completed.
    pub fn handle_effect_done(&mut self, id: EffectId, result: EffectResult, now: Instant) {
        let Some(p) = self.pending.remove(&id) else {
            return;
        };
        match p {
            Pending::Credentials(conn) => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                match result {
                    EffectResult::Value(Some(bytes)) => match StoredCredentials::from_bytes(&bytes)
                    {
                        Ok(creds) => c.stream.provide_credentials(Some(&creds), now),
                        Err(_) => c.stream.credentials_unavailable(now),
                    },
                    EffectResult::Value(None) => c.stream.provide_credentials(None, now),
                    _ => c.stream.credentials_unavailable(now),
                }
                self.after(conn, now);
            }
            Pending::Private {
                conn,
                reply_to,
                query,
                pending,
            } => {
                let reply = match pending.complete(result) {
                    Ok(payload) => iq_result(&reply_to, payload),
                    Err(e) => iq_error(&reply_to, Some(query), private_error(e)),
                };
                self.deliver_to_conn(conn, &reply, now);
            }
            Pending::RegisterCheck {
                conn,
                reply_to,
                jid,
                password,
            } => match result {
                EffectResult::Value(None) => {
                    let seed = self.rng.fork();
                    match accounts::create_account_op(
                        &jid,
                        &password,
                        seed,
                        self.config.scram_iterations,
                    ) {
                        Ok(op) => {
                            self.emit_effect(
                                op,
                                Pending::RegisterPut {
                                    conn,
                                    reply_to,
                                    jid,
                                },
                            );
                        }
                        Err(e) => {
                            self.registering.remove(&jid);
                            let err = StanzaError::new(DefinedCondition::NotAcceptable)
                                .with_text(e.to_string());
                            self.deliver_to_conn(conn, &iq_error(&reply_to, None, err), now);
                        }
                    }
                }
                EffectResult::Value(Some(_)) => {
                    self.registering.remove(&jid);
                    let err = StanzaError::new(DefinedCondition::Conflict)
                        .with_text("this username is taken");
                    self.deliver_to_conn(conn, &iq_error(&reply_to, None, err), now);
                }
                _ => {
                    self.registering.remove(&jid);
                    let err = StanzaError::new(DefinedCondition::InternalServerError);
                    self.deliver_to_conn(conn, &iq_error(&reply_to, None, err), now);
                }
            },
            Pending::RegisterPut {
                conn,
                reply_to,
                jid,
            } => {
                self.registering.remove(&jid);
                let reply = match result {
                    EffectResult::Done => iq_result(&reply_to, None),
                    _ => iq_error(
                        &reply_to,
                        None,
                        StanzaError::new(DefinedCondition::InternalServerError),
                    ),
                };
                self.deliver_to_conn(conn, &reply, now);
            }
        }
    }

    /// Close every connection with `system-shutdown`.
    pub fn shutdown(&mut self, now: Instant) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            if let Some(c) = self.conns.get_mut(&id) {
                c.stream.send_stream_error(
                    StreamError::new(StreamErrorCondition::SystemShutdown)
                        .with_text("the server is shutting down"),
                );
                self.after(id, now);
            }
        }
    }

    // ---- outputs -------------------------------------------------------

    /// Bytes to write to a connection.
    pub fn poll_transmit(&mut self) -> Option<(ConnId, Vec<u8>)> {
        self.transmit.pop_front()
    }

    /// What the adapter must do next for a connection.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// The next storage effect to run.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front()
    }

    /// When to call [`Server::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| c.stream.poll_timeout())
            .min()
    }

    // ---- internals -----------------------------------------------------

    fn emit_effect(&mut self, op: Op, pending: Pending) {
        let id = self.next_effect;
        self.next_effect += 1;
        self.pending.insert(id, pending);
        self.effects.push_back(Effect { id, op });
    }

    /// Collect a connection's output and events after it was driven.
    fn after(&mut self, id: ConnId, now: Instant) {
        loop {
            let Some(c) = self.conns.get_mut(&id) else {
                return;
            };
            let bytes = c.stream.take_transmit();
            if !bytes.is_empty() {
                self.transmit.push_back((id, bytes));
            }
            let Some(ev) = c.stream.poll_event() else {
                return;
            };
            match ev {
                Event::UpgradeTls => self.events.push_back(ServerEvent::UpgradeTls(id)),
                Event::NeedCredentials { username } => {
                    match BareJid::new(Some(&username), &self.config.domain) {
                        Ok(jid) => {
                            let op = Op::Get(accounts::credentials_key(&jid));
                            self.emit_effect(op, Pending::Credentials(id));
                        }
                        Err(_) => c.stream.provide_credentials(None, now),
                    }
                }
                Event::Authenticated { .. } => {}
                Event::BindRequest { resource } => self.bind(id, resource, now),
                Event::Established { jid } => {
                    c.jid = Some(jid.clone());
                    let res = jid.resource().unwrap_or_default().to_string();
                    self.sessions
                        .entry(jid.to_bare())
                        .or_default()
                        .push((res, id));
                }
                Event::PreAuthIq(el) => self.handle_register(id, el, now),
                Event::Stanza(el) => self.handle_stanza(id, el, now),
                Event::Closed { .. } => {
                    if let Some(c) = self.conns.remove(&id) {
                        let rest = {
                            let mut s = c.stream;
                            s.take_transmit()
                        };
                        if !rest.is_empty() {
                            self.transmit.push_back((id, rest));
                        }
                        if let Some(jid) = c.jid {
                            self.remove_session(&jid, id);
                        }
                    }
                    self.events.push_back(ServerEvent::Close(id));
                    return;
                }
            }
        }
    }

    fn remove_session(&mut self, jid: &Jid, id: ConnId) {
        let bare = jid.to_bare();
        if let Some(list) = self.sessions.get_mut(&bare) {
            list.retain(|(_, c)| *c != id);
            if list.is_empty() {
                self.sessions.remove(&bare);
            }
        }
    }

    fn bind(&mut self, id: ConnId, resource: Option<String>, now: Instant) {
        let Some(account) = self
            .conns
            .get(&id)
            .and_then(|c| c.stream.authenticated().cloned())
        else {
            return;
        };
        let existing = self.sessions.get(&account).cloned().unwrap_or_default();
        let resource = match resource {
            Some(r) => r,
            None => loop {
                let r = format!("elsinore-{}", self.rng.token(10));
                if !existing.iter().any(|(e, _)| *e == r) {
                    break r;
                }
            },
        };
        let result = match account.with_resource(&resource) {
            Err(_) => Err(BindError::NotAllowed),
            Ok(full) => {
                // A resource already bound: the new session wins and the old
                // one is closed with `conflict` (RFC 6120 7.7.2.2, first option).
                if let Some((_, old)) = existing.iter().find(|(r, _)| *r == resource) {
                    let old = *old;
                    if let Some(c) = self.conns.get_mut(&old) {
                        c.stream.send_stream_error(
                            StreamError::new(StreamErrorCondition::Conflict)
                                .with_text("replaced by a new session with the same resource"),
                        );
                    }
                    self.after(old, now);
                    Ok(full)
                } else if existing.len() >= self.config.max_sessions_per_account {
                    Err(BindError::ResourceConstraint)
                } else {
                    Ok(full)
                }
            }
        };
        if let Some(c) = self.conns.get_mut(&id) {
            c.stream.complete_bind(result, now);
        }
    }

    fn deliver_to_conn(&mut self, id: ConnId, el: &Element, now: Instant) {
        if let Some(c) = self.conns.get_mut(&id) {
            // A full backlog means the client does not read; dropping the reply
            // and closing is the only bounded choice.
            if c.stream.send(el).is_err() {
                c.stream.send_stream_error(
                    StreamError::new(StreamErrorCondition::PolicyViolation)
                        .with_text("output backlog over limit"),
                );
            }
            self.after(id, now);
        }
    }

    fn handle_register(&mut self, id: ConnId, el: Element, now: Instant) {
        let head = IqHead {
            id: el.attr("id").unwrap_or_default().to_string(),
            from: None,
            to: None,
        };
        let Some(query) = el.get_child("query", NS_REGISTER) else {
            let err = StanzaError::new(DefinedCondition::BadRequest);
            self.deliver_to_conn(id, &iq_error(&head, None, err), now);
            return;
        };
        match el.attr("type") {
            Some("get") => {
                let form =
                    Element::new("query", NS_REGISTER)
                        .with_child(Element::new("instructions", NS_REGISTER).with_text(
                            "Choose a username and password to register with this server.",
                        ))
                        .with_child(Element::new("username", NS_REGISTER))
                        .with_child(Element::new("password", NS_REGISTER));
                self.deliver_to_conn(id, &iq_result(&head, Some(form)), now);
            }
            Some("set") => {
                let username = query.get_child("username", NS_REGISTER).map(|e| e.text());
                let password = query.get_child("password", NS_REGISTER).map(|e| e.text());
                let (Some(username), Some(password)) = (username, password) else {
                    let err = StanzaError::new(DefinedCondition::NotAcceptable)
                        .with_text("username and password are required");
                    self.deliver_to_conn(id, &iq_error(&head, None, err), now);
                    return;
                };
                let jid = match BareJid::new(Some(username.trim()), &self.config.domain) {
                    Ok(j) => j,
                    Err(e) => {
                        let err = StanzaError::new(DefinedCondition::JidMalformed)
                            .with_text(e.to_string());
                        self.deliver_to_conn(id, &iq_error(&head, None, err), now);
                        return;
                    }
                };
                if password.is_empty() {
                    let err = StanzaError::new(DefinedCondition::NotAcceptable)
                        .with_text("the password must not be empty");
                    self.deliver_to_conn(id, &iq_error(&head, None, err), now);
                    return;
                }
                if !self.registering.insert(jid.clone()) {
                    let err = StanzaError::new(DefinedCondition::Conflict)
                        .with_text("this username is being registered");
                    self.deliver_to_conn(id, &iq_error(&head, None, err), now);
                    return;
                }
                let op = Op::Get(accounts::credentials_key(&jid));
                self.emit_effect(
                    op,
                    Pending::RegisterCheck {
                        conn: id,
                        reply_to: head,
                        jid,
                        password,
                    },
                );
            }
            _ => {
                let err = StanzaError::new(DefinedCondition::BadRequest);
                self.deliver_to_conn(id, &iq_error(&head, None, err), now);
            }
        }
    }

    fn handle_stanza(&mut self, id: ConnId, mut el: Element, now: Instant) {
        let Some(from) = self.conns.get(&id).and_then(|c| c.jid.clone()) else {
            return;
        };
        // The server stamps the sender (RFC 6120 8.1.2.1): never trust the client's `from`.
        el.set_attr("from", from.to_string());
        let to = match el.attr("to").map(Jid::parse) {
            None => None,
            Some(Ok(j)) => Some(j),
            Some(Err(e)) => {
                let err = StanzaError::new(DefinedCondition::JidMalformed).with_text(e.to_string());
                self.bounce(id, &el, err, now);
                return;
            }
        };
        let kind = el.name.clone();
        let for_server = match &to {
            None => true,
            Some(t) => t.node().is_none() && t.domain() == self.config.domain,
        };
        let own_bare = to
            .as_ref()
            .is_some_and(|t| t.resource().is_none() && t.to_bare() == from.to_bare());
        if kind == "iq" {
            let ty = el.attr("type").unwrap_or_default();
            if ty == "result" || ty == "error" {
                if !for_server && !own_bare {
                    self.route(id, el, to, now);
                }
                return;
            }
            // jabber:iq:private is answered by the server whatever the `to`:
            // the handler refuses other accounts (XEP-0049 listing 3).
            let payload_ns = el.elements().next().map(|p| p.ns.clone());
            if payload_ns.as_deref() == Some(NS_PRIVATE) {
                self.handle_private(id, &from, to.as_ref(), el, now);
                return;
            }
            if for_server || own_bare {
                self.handle_server_iq(id, &from, el, now);
                return;
            }
        } else if for_server || (own_bare && kind == "presence") {
            // Presence broadcast and messages to the server arrive with issue 5;
            // until then they are accepted and not routed.
            return;
        }
        self.route(id, el, to, now);
    }

    fn route(&mut self, id: ConnId, el: Element, to: Option<Jid>, now: Instant) {
        let Some(to) = to else {
            return;
        };
        if to.domain() != self.config.domain {
            let err = StanzaError::new(DefinedCondition::RemoteServerNotFound)
                .with_text("server-to-server connections are not supported yet");
            self.bounce(id, &el, err, now);
            return;
        }
        let targets: Vec<ConnId> = match self.sessions.get(&to.to_bare()) {
            None => Vec::new(),
            Some(list) => match to.resource() {
                Some(r) => list
                    .iter()
                    .filter(|(res, _)| res == r)
                    .map(|(_, c)| *c)
                    .collect(),
                None if el.name == "iq" => Vec::new(),
                None => list.iter().map(|(_, c)| *c).collect(),
            },
        };
        if targets.is_empty() {
            if el.name == "presence" {
                return;
            }
            let err = StanzaError::new(DefinedCondition::ServiceUnavailable);
            self.bounce(id, &el, err, now);
            return;
        }
        for t in targets {
            self.deliver_to_conn(t, &el, now);
        }
    }

    fn bounce(&mut self, id: ConnId, el: &Element, err: StanzaError, now: Instant) {
        // Never answer an error with an error (RFC 6120 8.3.1).
        if el.attr("type") == Some("error") {
            return;
        }
        let mut reply = Element::new(el.name.clone(), NS_CLIENT).with_attr("type", "error");
        if let Some(i) = el.attr("id") {
            reply.set_attr("id", i);
        }
        if let Some(t) = el.attr("to") {
            reply.set_attr("from", t);
        }
        if let Some(f) = el.attr("from") {
            reply.set_attr("to", f);
        }
        for child in el.elements() {
            reply
                .children
                .push(elsinore_xml::Node::Element(child.clone()));
        }
        reply
            .children
            .push(elsinore_xml::Node::Element(err.to_element(NS_CLIENT)));
        self.deliver_to_conn(id, &reply, now);
    }

    fn handle_private(
        &mut self,
        id: ConnId,
        from: &Jid,
        to: Option<&Jid>,
        el: Element,
        now: Instant,
    ) {
        let head = IqHead {
            id: el.attr("id").unwrap_or_default().to_string(),
            from: Some(from.clone()),
            to: el.attr("to").map(str::to_string),
        };
        let kind = match el.attr("type") {
            Some("get") => IqKind::Get,
            Some("set") => IqKind::Set,
            _ => return,
        };
        let Some(query) = el.elements().next().cloned() else {
            return;
        };
        let account = from.to_bare();
        match private::handle(&account, to, kind, &query, &self.config.private_limits) {
            PrivateAction::Reply(Ok(payload)) => {
                self.deliver_to_conn(id, &iq_result(&head, payload), now);
            }
            PrivateAction::Reply(Err(e)) => {
                self.deliver_to_conn(id, &iq_error(&head, Some(query), private_error(e)), now);
            }
            PrivateAction::Run { ops, pending } => {
                self.emit_effect(
                    ops,
                    Pending::Private {
                        conn: id,
                        reply_to: head,
                        query,
                        pending,
                    },
                );
            }
        }
    }

    fn handle_server_iq(&mut self, id: ConnId, from: &Jid, el: Element, now: Instant) {
        let head = IqHead {
            id: el.attr("id").unwrap_or_default().to_string(),
            from: Some(from.clone()),
            to: el.attr("to").map(str::to_string),
        };
        let Some(payload) = el.elements().next() else {
            let err = StanzaError::new(DefinedCondition::BadRequest)
                .with_text("an iq get or set carries exactly one payload");
            self.deliver_to_conn(id, &iq_error(&head, None, err), now);
            return;
        };
        let ty = el.attr("type").unwrap_or_default();
        let reply = if payload.is("ping", NS_PING) {
            iq_result(&head, None)
        } else if payload.is("query", NS_DISCO_INFO)
            && ty == "get"
            && payload.attr("node").is_none()
        {
            let mut q = Element::new("query", NS_DISCO_INFO);
            let for_account = head.to.as_deref().is_some_and(|t| t.contains('@'));
            let identity = if for_account {
                Element::new("identity", NS_DISCO_INFO)
                    .with_attr("category", "account")
                    .with_attr("type", "registered")
            } else {
                Element::new("identity", NS_DISCO_INFO)
                    .with_attr("category", "server")
                    .with_attr("type", "im")
                    .with_attr("name", "elsinore")
            };
            q = q.with_child(identity);
            let mut features = vec![NS_DISCO_INFO, NS_PRIVATE];
            if !for_account {
                features.push(NS_PING);
            }
            for f in features {
                q = q.with_child(Element::new("feature", NS_DISCO_INFO).with_attr("var", f));
            }
            iq_result(&head, Some(q))
        } else {
            iq_error(
                &head,
                Some(payload.clone()),
                StanzaError::new(DefinedCondition::ServiceUnavailable),
            )
        };
        self.deliver_to_conn(id, &reply, now);
    }
}

fn iq_result(head: &IqHead, payload: Option<Element>) -> Element {
    let mut iq = Element::new("iq", NS_CLIENT)
        .with_attr("type", "result")
        .with_attr("id", head.id.clone());
    if let Some(f) = &head.to {
        iq.set_attr("from", f.clone());
    }
    if let Some(t) = &head.from {
        iq.set_attr("to", t.to_string());
    }
    if let Some(p) = payload {
        iq = iq.with_child(p);
    }
    iq
}

fn iq_error(head: &IqHead, original: Option<Element>, err: StanzaError) -> Element {
    let mut iq = iq_result(head, original);
    iq.set_attr("type", "error");
    iq.with_child(err.to_element(NS_CLIENT))
}

fn private_error(e: PrivateError) -> StanzaError {
    let (cond, text) = match e {
        PrivateError::Forbidden => (
            DefinedCondition::Forbidden,
            "private XML belongs to its owner only",
        ),
        PrivateError::BadFormat => (
            DefinedCondition::NotAcceptable,
            "the query must contain one element qualified by the namespace to store or retrieve",
        ),
        PrivateError::NotAcceptable => (
            DefinedCondition::NotAcceptable,
            "this namespace cannot be stored as private XML",
        ),
        PrivateError::BadRequest => (
            DefinedCondition::BadRequest,
            "malformed private XML request",
        ),
        PrivateError::ResourceConstraint => (
            DefinedCondition::ResourceConstraint,
            "private XML storage limit reached",
        ),
        PrivateError::InternalServerError => (
            DefinedCondition::InternalServerError,
            "the store could not complete the request",
        ),
    };
    StanzaError::new(cond).with_text(text)
}
