//! XEP-0115 entity capabilities of local sessions, for PEP notification filtering
//! (XEP-0163 §4.2): which nodes each available resource wants events of (`NODE+notify`).
//!
//! A session's available presence names its capabilities by (hash, ver). A known pair is
//! answered from a shared cache; an unknown one is asked for with a disco#info query to
//! the session (`node='NODE#VER'`), matched by iq id. An answer enters the shared cache only
//! when its `ver` checks out by the XEP-0115 §5 algorithm (`sha-1`); any other answer
//! (legacy caps without `hash`, another hash, a mismatch) serves that session alone. Only
//! the `+notify` features are kept. Everything is bounded: cache entries, nodes per entry,
//! node length, outstanding queries, and each query waits `QUERY_TIMEOUT` (30 s) at most.

use std::collections::VecDeque;
use std::sync::Arc;

use base64::Engine as _;
use core::time::Duration;
use elsinore_stanza::{NS_CLIENT, NS_DISCO_INFO};
use elsinore_stream::Instant;
use elsinore_xml::Element;
use sha1::{Digest, Sha1};

use crate::server::{ConnId, FastMap, Server};

/// `http://jabber.org/protocol/caps`.
pub const NS_CAPS: &str = "http://jabber.org/protocol/caps";
const NS_DATA: &str = "jabber:x:data";
const NOTIFY: &str = "+notify";

/// Verified (hash, ver) pairs kept; the oldest goes first.
const MAX_CACHE_ENTRIES: usize = 1024;
/// `+notify` nodes kept per capability set; an answer with more is not used.
const MAX_NOTIFY_NODES: usize = 128;
/// Longest node name taken from a `NODE+notify` feature (the PEP node name limit).
const MAX_NODE_BYTES: usize = 1024;
/// Longest `hash`, `node` and `ver` of a `<c/>` taken from a presence.
const MAX_CAPS_ATTR_BYTES: usize = 1024;
/// disco#info queries waiting for an answer, across every session.
const MAX_QUERIES: usize = 256;
/// How long a query waits for its answer; then the session stays without known features.
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a disco#info answer gives no verification string (XEP-0115 §5.4: ill-formed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapsError {
    /// Two identities with the same category, type, language and name.
    DuplicateIdentity,
    /// Two features with the same var.
    DuplicateFeature,
    /// Two forms with the same FORM_TYPE, or a FORM_TYPE with differing values.
    DuplicateFormType,
}

/// The XEP-0115 §5.1 verification string S of a disco#info `<query/>`: identities
/// (`category/type/lang/name<`), features (`var<`) and extended forms (FORM_TYPE, then each
/// field's var and values), each sorted by octets.
pub fn verification_string(query: &Element) -> Result<String, CapsError> {
    let mut identities: Vec<String> = query
        .elements()
        .filter(|e| e.is("identity", NS_DISCO_INFO))
        .map(|i| {
            let a = |n: &str| i.attr(n).unwrap_or_default();
            format!(
                "{}/{}/{}/{}",
                a("category"),
                a("type"),
                i.lang().unwrap_or_default(),
                a("name")
            )
        })
        .collect();
    identities.sort_unstable();
    if identities.windows(2).any(|w| w[0] == w[1]) {
        return Err(CapsError::DuplicateIdentity);
    }
    let mut features: Vec<&str> = query
        .elements()
        .filter(|e| e.is("feature", NS_DISCO_INFO))
        .map(|f| f.attr("var").unwrap_or_default())
        .collect();
    features.sort_unstable();
    if features.windows(2).any(|w| w[0] == w[1]) {
        return Err(CapsError::DuplicateFeature);
    }
    let mut forms: Vec<(String, String)> = Vec::new();
    for form in query.elements().filter(|e| e.is("x", NS_DATA)) {
        if let Some(f) = form_string(form)? {
            forms.push(f);
        }
    }
    forms.sort_unstable();
    if forms.windows(2).any(|w| w[0].0 == w[1].0) {
        return Err(CapsError::DuplicateFormType);
    }
    let mut s = String::new();
    for part in identities.iter().map(String::as_str).chain(features) {
        s.push_str(part);
        s.push('<');
    }
    for (_, f) in forms {
        s.push_str(&f);
    }
    Ok(s)
}

/// One extended form's part of S with its FORM_TYPE; `None` for a form without a hidden
/// FORM_TYPE, which is left out (XEP-0115 §5.4).
fn form_string(form: &Element) -> Result<Option<(String, String)>, CapsError> {
    let values = |f: &Element| -> Vec<String> {
        f.elements()
            .filter(|v| v.is("value", NS_DATA))
            .map(Element::text)
            .collect()
    };
    let fields: Vec<&Element> = form.elements().filter(|f| f.is("field", NS_DATA)).collect();
    let Some(form_type) = fields.iter().find(|f| f.attr("var") == Some("FORM_TYPE")) else {
        return Ok(None);
    };
    if form_type.attr("type").is_some_and(|t| t != "hidden") {
        return Ok(None);
    }
    let mut type_values = values(form_type);
    type_values.dedup();
    let form_type = match type_values.as_slice() {
        [v] => v.clone(),
        [] => return Ok(None),
        _ => return Err(CapsError::DuplicateFormType),
    };
    let mut rest: Vec<(&str, Vec<String>)> = fields
        .iter()
        .filter_map(|f| {
            f.attr("var")
                .filter(|v| *v != "FORM_TYPE")
                .map(|v| (v, values(f)))
        })
        .collect();
    rest.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut s = format!("{form_type}<");
    for (var, mut vals) in rest {
        s.push_str(var);
        s.push('<');
        vals.sort_unstable();
        for v in vals {
            s.push_str(&v);
            s.push('<');
        }
    }
    Ok(Some((form_type, s)))
}

/// The `ver` a `sha-1` capability set of this disco#info `<query/>` has (XEP-0115 §5.1:
/// base64 of the SHA-1 of the verification string).
pub fn ver_sha1(query: &Element) -> Result<String, CapsError> {
    let s = verification_string(query)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(Sha1::digest(s.as_bytes())))
}

/// The nodes a capability set wants notifications of, sorted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Interest {
    nodes: Vec<String>,
}

impl Interest {
    /// The `NODE+notify` features of a disco#info `<query/>`; `None` when over the bounds
    /// (the session is then treated as interested in nothing).
    fn of(query: &Element) -> Option<Interest> {
        let mut nodes = Vec::new();
        for f in query.elements().filter(|e| e.is("feature", NS_DISCO_INFO)) {
            let Some(node) = f.attr("var").and_then(|v| v.strip_suffix(NOTIFY)) else {
                continue;
            };
            if node.is_empty() {
                continue; // names no node
            }
            if node.len() > MAX_NODE_BYTES || nodes.len() >= MAX_NOTIFY_NODES {
                return None;
            }
            nodes.push(node.to_string());
        }
        nodes.sort_unstable();
        nodes.dedup();
        Some(Interest { nodes })
    }

    /// Whether `node+notify` was advertised.
    pub(crate) fn wants(&self, node: &str) -> bool {
        self.nodes
            .binary_search_by(|n| n.as_str().cmp(node))
            .is_ok()
    }

    pub(crate) fn nodes(&self) -> &[String] {
        &self.nodes
    }
}

/// The `<c/>` of a presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Advertised {
    /// `None`: legacy caps (XEP-0115 before 1.5), never verified.
    hash: Option<String>,
    node: String,
    ver: String,
}

impl Advertised {
    /// The `<c/>` of `presence`, if there is a usable one.
    fn of(presence: &Element) -> Option<Advertised> {
        let c = presence.get_child("c", NS_CAPS)?;
        let attr = |n: &str| {
            c.attr(n)
                .filter(|v| !v.is_empty() && v.len() <= MAX_CAPS_ATTR_BYTES)
                .map(str::to_string)
        };
        Some(Advertised {
            hash: attr("hash"),
            node: attr("node")?,
            ver: attr("ver")?,
        })
    }

    fn cache_key(&self) -> Option<(String, String)> {
        Some((self.hash.clone()?, self.ver.clone()))
    }
}

/// What one session's capabilities are known to be.
#[derive(Debug, Default)]
pub(crate) struct ConnCaps {
    /// The `<c/>` of its latest presence that had one.
    advertised: Option<Advertised>,
    /// Its interest, once known.
    pub(crate) interest: Option<Arc<Interest>>,
    /// The id of its disco#info query in flight.
    query: Option<String>,
    /// The nodes whose last items were sent since it became available: only nodes newly
    /// wanted get theirs when its interest changes.
    last_sent: Vec<String>,
}

#[derive(Debug)]
struct Query {
    conn: ConnId,
    advertised: Advertised,
}

/// The server's capability cache and queries in flight.
#[derive(Debug, Default)]
pub(crate) struct CapsState {
    cache: FastMap<(String, String), Arc<Interest>>,
    /// Cache keys, oldest first.
    order: VecDeque<(String, String)>,
    queries: FastMap<String, Query>,
    /// Query deadlines in order (all wait the same time); entries of answered queries are
    /// dropped when they come up, or when the list outgrows the queries.
    deadlines: VecDeque<(Instant, String)>,
}

impl CapsState {
    fn remember(&mut self, key: (String, String), interest: Arc<Interest>) {
        if self.cache.contains_key(&key) {
            return;
        }
        if self.cache.len() >= MAX_CACHE_ENTRIES
            && let Some(old) = self.order.pop_front()
        {
            self.cache.remove(&old);
        }
        self.order.push_back(key.clone());
        self.cache.insert(key, interest);
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines.front().map(|(at, _)| *at)
    }

    /// Entries: (cached capability sets, queries in flight).
    pub(crate) fn size(&self) -> (usize, usize) {
        (self.cache.len(), self.queries.len())
    }
}

impl Server {
    /// Available presence from session `id`: learn its capabilities if its `<c/>` is new
    /// (a presence without `<c/>` keeps what is known), then send the last items it newly
    /// wants. `became_available` clears what was sent during an earlier availability.
    pub(crate) fn caps_presence(
        &mut self,
        id: ConnId,
        presence: &Element,
        became_available: bool,
        now: Instant,
    ) {
        let advertised = Advertised::of(presence);
        let Some(c) = self.conns.get_mut(&id) else {
            return;
        };
        if became_available && let Some(k) = c.caps.as_mut() {
            k.last_sent.clear();
        }
        if let Some(adv) = advertised
            && c.caps.as_ref().and_then(|k| k.advertised.as_ref()) != Some(&adv)
        {
            let k = c.caps.get_or_insert_default();
            // New capabilities: the old ones no longer say anything.
            k.interest = None;
            if let Some(q) = k.query.take() {
                self.caps.queries.remove(&q);
            }
            let cached = adv
                .cache_key()
                .and_then(|key| self.caps.cache.get(&key).cloned());
            k.advertised = Some(adv.clone());
            match cached {
                Some(interest) => k.interest = Some(interest),
                None => self.caps_query(id, adv, now),
            }
        }
        self.pep_last_items(id, now);
    }

    /// Ask session `id` for the features behind `adv`.
    fn caps_query(&mut self, id: ConnId, adv: Advertised, now: Instant) {
        if self.caps.queries.len() >= MAX_QUERIES {
            return; // the session stays without known features
        }
        let Some(to) = self.conns.get(&id).and_then(|c| c.jid().cloned()) else {
            return;
        };
        let qid = format!("caps-{}", self.rng.token(12));
        let iq = Element::new("iq", NS_CLIENT)
            .with_attr("type", "get")
            .with_attr("from", self.config.domain.clone())
            .with_attr("to", to.to_string())
            .with_attr("id", qid.clone())
            .with_child(
                Element::new("query", NS_DISCO_INFO)
                    .with_attr("node", format!("{}#{}", adv.node, adv.ver)),
            );
        if self.caps.deadlines.len() >= 2 * MAX_QUERIES {
            let live = &self.caps.queries;
            self.caps.deadlines.retain(|(_, q)| live.contains_key(q));
        }
        self.caps
            .deadlines
            .push_back((now + QUERY_TIMEOUT, qid.clone()));
        self.caps.queries.insert(
            qid.clone(),
            Query {
                conn: id,
                advertised: adv,
            },
        );
        if let Some(c) = self.conns.get_mut(&id) {
            c.caps.get_or_insert_default().query = Some(qid);
        }
        self.deliver_to_conn(id, &iq, now);
    }

    /// An iq result or error from session `id` to the server: `true` when it answered a
    /// capability query (and was used), `false` when it is not ours.
    pub(crate) fn caps_answer(&mut self, id: ConnId, el: &Element, now: Instant) -> bool {
        let Some(qid) = el.attr("id") else {
            return false;
        };
        if self.caps.queries.get(qid).is_none_or(|q| q.conn != id) {
            return false;
        }
        let Some(q) = self.caps.queries.remove(qid) else {
            return false;
        };
        let Some(c) = self.conns.get_mut(&id) else {
            return true;
        };
        let k = c.caps.get_or_insert_default();
        k.query = None;
        let query = el
            .get_child("query", NS_DISCO_INFO)
            .filter(|_| el.attr("type") == Some("result"));
        let Some(interest) = query.and_then(Interest::of).map(Arc::new) else {
            return true; // an error or an unusable answer: no known features
        };
        k.interest = Some(Arc::clone(&interest));
        let verified = q.advertised.hash.as_deref() == Some("sha-1")
            && query.and_then(|q| ver_sha1(q).ok()).as_deref() == Some(q.advertised.ver.as_str());
        if verified && let Some(key) = q.advertised.cache_key() {
            self.caps.remember(key, interest);
        }
        self.pep_last_items(id, now);
        true
    }

    /// Queries past their deadline: their sessions stay without known features.
    pub(crate) fn caps_timeouts(&mut self, now: Instant) {
        while let Some((at, _)) = self.caps.deadlines.front() {
            if *at > now {
                break;
            }
            let Some((_, qid)) = self.caps.deadlines.pop_front() else {
                break;
            };
            if let Some(q) = self.caps.queries.remove(&qid)
                && let Some(k) = self.conns.get_mut(&q.conn).and_then(|c| c.caps.as_mut())
                && k.query.as_deref() == Some(qid.as_str())
            {
                k.query = None;
            }
        }
    }

    /// A session ended: its query in flight goes with it.
    pub(crate) fn caps_closed(&mut self, caps: Option<&ConnCaps>) {
        if let Some(q) = caps.and_then(|k| k.query.as_ref()) {
            self.caps.queries.remove(q);
        }
    }

    /// Whether session `id` wants `node`'s notifications (advertised `node+notify`).
    pub(crate) fn wants_notify(&self, id: ConnId, node: &str) -> bool {
        self.conns
            .get(&id)
            .and_then(|c| c.caps.as_ref()?.interest.as_ref())
            .is_some_and(|i| i.wants(node))
    }

    /// What session `id` wants while it takes PEP events from contacts: known interest,
    /// and available with a non-negative priority (XEP-0163 §4.3.2).
    pub(crate) fn pep_interest(&self, id: ConnId) -> Option<Arc<Interest>> {
        let c = self.conns.get(&id)?;
        if c.presence.is_none() || c.priority < 0 {
            return None;
        }
        c.caps.as_ref()?.interest.clone()
    }

    /// The nodes session `id` newly wants while available with a non-negative priority
    /// (XEP-0163 §4.3.3), marked as sent.
    pub(crate) fn take_new_interest(&mut self, id: ConnId) -> Vec<String> {
        let Some(interest) = self.pep_interest(id) else {
            return Vec::new();
        };
        let Some(k) = self.conns.get_mut(&id).and_then(|c| c.caps.as_mut()) else {
            return Vec::new();
        };
        let new = interest
            .nodes()
            .iter()
            .filter(|n| !k.last_sent.contains(n))
            .cloned()
            .collect();
        k.last_sent = interest.nodes().to_vec();
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn el(xml: &str) -> Element {
        Element::parse(xml.as_bytes()).expect("test XML parses")
    }

    /// XEP-0115 §5.2, the simple example.
    #[test]
    fn simple_example_vector() {
        let q = el("<query xmlns='http://jabber.org/protocol/disco#info' \
                    node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>\
                    <identity category='client' name='Exodus 0.9.1' type='pc'/>\
                    <feature var='http://jabber.org/protocol/caps'/>\
                    <feature var='http://jabber.org/protocol/disco#info'/>\
                    <feature var='http://jabber.org/protocol/disco#items'/>\
                    <feature var='http://jabber.org/protocol/muc'/></query>");
        assert_eq!(
            verification_string(&q).as_deref(),
            Ok("client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<\
                http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<\
                http://jabber.org/protocol/muc<")
        );
        assert_eq!(ver_sha1(&q).as_deref(), Ok("QgayPKawpkPSDYmwT/WM94uAlu0="));
    }

    /// XEP-0115 §5.3, the complex example: two languages and an extended form, given out
    /// of order.
    #[test]
    fn complex_example_vector() {
        let q = el("<query xmlns='http://jabber.org/protocol/disco#info' \
                    node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>\
                    <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>\
                    <identity xml:lang='el' category='client' name='\u{3a8} 0.11' type='pc'/>\
                    <feature var='http://jabber.org/protocol/caps'/>\
                    <feature var='http://jabber.org/protocol/disco#info'/>\
                    <feature var='http://jabber.org/protocol/disco#items'/>\
                    <feature var='http://jabber.org/protocol/muc'/>\
                    <x xmlns='jabber:x:data' type='result'>\
                    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>\
                    <field var='ip_version' type='text-multi'><value>ipv6</value><value>ipv4</value></field>\
                    <field var='os'><value>Mac</value></field>\
                    <field var='os_version'><value>10.5.1</value></field>\
                    <field var='software'><value>Psi</value></field>\
                    <field var='software_version'><value>0.11</value></field>\
                    </x></query>");
        assert_eq!(
            verification_string(&q).as_deref(),
            Ok("client/pc/el/\u{3a8} 0.11<client/pc/en/Psi 0.11<\
                http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<\
                http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<\
                urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<os<Mac<os_version<\
                10.5.1<software<Psi<software_version<0.11<")
        );
        assert_eq!(ver_sha1(&q).as_deref(), Ok("q07IKJEyjvHSyhy//CH0CxmKi8w="));
    }

    #[test]
    fn ill_formed_answers_have_no_ver() {
        let dup_feature = el("<query xmlns='http://jabber.org/protocol/disco#info'>\
                              <feature var='a'/><feature var='a'/></query>");
        assert_eq!(ver_sha1(&dup_feature), Err(CapsError::DuplicateFeature));
        let dup_identity = el("<query xmlns='http://jabber.org/protocol/disco#info'>\
                               <identity category='client' type='pc'/>\
                               <identity category='client' type='pc'/></query>");
        assert_eq!(ver_sha1(&dup_identity), Err(CapsError::DuplicateIdentity));
        let form = "<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' \
                    type='hidden'><value>urn:x</value></field></x>";
        let dup_form = el(&format!(
            "<query xmlns='http://jabber.org/protocol/disco#info'>{form}{form}</query>"
        ));
        assert_eq!(ver_sha1(&dup_form), Err(CapsError::DuplicateFormType));
        // A form whose FORM_TYPE is not hidden is left out, not an error.
        let visible = el("<query xmlns='http://jabber.org/protocol/disco#info'>\
                          <feature var='a'/><x xmlns='jabber:x:data' type='result'>\
                          <field var='FORM_TYPE' type='text-single'><value>urn:x</value>\
                          </field></x></query>");
        assert_eq!(verification_string(&visible).as_deref(), Ok("a<"));
    }

    #[test]
    fn interest_is_the_notify_features_bounded() {
        let q = el("<query xmlns='http://jabber.org/protocol/disco#info'>\
                    <feature var='urn:b+notify'/><feature var='urn:a+notify'/>\
                    <feature var='urn:c'/><feature var='+notify'/></query>");
        let i = Interest::of(&q).expect("within bounds");
        assert_eq!(i.nodes(), ["urn:a", "urn:b"]);
        assert!(i.wants("urn:a") && !i.wants("urn:c"));
        let many: String = (0..=MAX_NOTIFY_NODES)
            .map(|n| format!("<feature var='urn:{n}+notify'/>"))
            .collect();
        let q = el(&format!(
            "<query xmlns='http://jabber.org/protocol/disco#info'>{many}</query>"
        ));
        assert_eq!(Interest::of(&q), None);
    }
}
