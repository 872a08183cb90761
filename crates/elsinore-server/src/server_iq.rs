//! Iqs the server answers itself: XEP-0199 ping, XEP-0030 disco#info.

use elsinore_jid::{BareJid, Jid};
use elsinore_stanza::{DefinedCondition, NS_DISCO_INFO, NS_PING, NS_PRIVATE, StanzaError};
use elsinore_xml::Element;

use crate::iq::{IqHead, iq_error, iq_result};
use crate::server::{ConnId, Server};
use elsinore_stream::Instant;

impl Server {
    /// disco#info on local `account`'s bare JID from anyone but the account: the same answer
    /// the account gets (identities and features, never node names), if the account exists;
    /// else `service-unavailable` (RFC 6121 8.5.1), a store failure `internal-server-error`.
    pub(crate) fn handle_account_disco(
        &mut self,
        id: ConnId,
        from: &Jid,
        el: Element,
        account: BareJid,
        now: Instant,
    ) {
        let from = from.clone();
        self.account_exists(account, now, move |s: &mut Server, exists, now| {
            let condition = match exists {
                Some(true) => return s.handle_server_iq(id, &from, el, now),
                Some(false) => DefinedCondition::ServiceUnavailable,
                None => DefinedCondition::InternalServerError,
            };
            s.bounce(id, &el, StanzaError::new(condition), now);
        });
    }

    pub(crate) fn handle_server_iq(&mut self, id: ConnId, from: &Jid, el: Element, now: Instant) {
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
            // PEP (XEP-0163) on the account's bare JID; XEP-0223 listing 6 shows it on the
            // server's JID too.
            q = q.with_child(crate::pep::disco_identity());
            let mut features = vec![NS_DISCO_INFO, NS_PRIVATE];
            if !for_account {
                features.push(NS_PING);
                features.extend_from_slice(crate::services::SERVER_FEATURES);
            } else {
                features.push(crate::services::NS_VCARD);
                // Bookmarks are unified across private XML, XEP-0048 PEP and XEP-0402.
                features.push(elsinore_storage::bookmarks::FEATURE_COMPAT);
                features.push(elsinore_storage::bookmarks::FEATURE_COMPAT_PEP);
                features.push(elsinore_storage::bookmarks::FEATURE_CONVERSION);
            }
            features.extend_from_slice(crate::pep::disco_features());
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
