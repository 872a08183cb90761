//! In-band registration (XEP-0077) before authentication.

use elsinore_jid::BareJid;
use elsinore_stanza::{DefinedCondition, NS_REGISTER, StanzaError};
use elsinore_storage::{EffectResult, Op};
use elsinore_xml::Element;

use crate::accounts;
use crate::iq::{IqHead, iq_error, iq_result};
use crate::server::{ConnId, Server};
use elsinore_stream::Instant;

impl Server {
    pub(crate) fn handle_register(&mut self, id: ConnId, el: Element, now: Instant) {
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
                self.run_effect(op, move |s: &mut Server, result, now| {
                    s.register_checked(id, head, jid, password, result, now);
                });
            }
            _ => {
                let err = StanzaError::new(DefinedCondition::BadRequest);
                self.deliver_to_conn(id, &iq_error(&head, None, err), now);
            }
        }
    }

    /// The account's existence is known: create it, or refuse.
    fn register_checked(
        &mut self,
        conn: ConnId,
        head: IqHead,
        jid: BareJid,
        password: String,
        result: EffectResult,
        now: Instant,
    ) {
        let err = match result {
            EffectResult::Value(None) => {
                let seed = self.rng.fork();
                match accounts::set_password_op(
                    &jid,
                    &password,
                    seed,
                    self.config.credential_policy(),
                ) {
                    Ok(op) => {
                        // A new account under a name just removed: its writes are wanted.
                        self.removed.unmark(&jid);
                        self.run_effect(op, move |s: &mut Server, result, now| {
                            s.registering.remove(&jid);
                            let reply = match result {
                                EffectResult::Done => iq_result(&head, None),
                                _ => iq_error(
                                    &head,
                                    None,
                                    StanzaError::new(DefinedCondition::InternalServerError),
                                ),
                            };
                            s.deliver_to_conn(conn, &reply, now);
                        });
                        return;
                    }
                    Err(e) => {
                        StanzaError::new(DefinedCondition::NotAcceptable).with_text(e.to_string())
                    }
                }
            }
            EffectResult::Value(Some(_)) => {
                StanzaError::new(DefinedCondition::Conflict).with_text("this username is taken")
            }
            _ => StanzaError::new(DefinedCondition::InternalServerError),
        };
        self.registering.remove(&jid);
        self.deliver_to_conn(conn, &iq_error(&head, None, err), now);
    }
}
