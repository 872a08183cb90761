//! Namespace URIs used by stanzas and stream negotiation.

/// Default namespace of a client-to-server stream (RFC 6120 §4.8.3).
pub const NS_CLIENT: &str = "jabber:client";
/// Default namespace of a server-to-server stream (RFC 6120 §4.8.3).
pub const NS_SERVER: &str = "jabber:server";
/// The stream element's namespace, bound to the `stream:` prefix.
pub const NS_STREAM: &str = "http://etherx.jabber.org/streams";
/// Stream error conditions (RFC 6120 §4.9.3).
pub const NS_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// Stanza error conditions (RFC 6120 §8.3.3).
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
/// STARTTLS negotiation (RFC 6120 §5).
pub const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
/// SASL negotiation (RFC 6120 §6).
pub const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
/// Resource binding (RFC 6120 §7).
pub const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
/// Session establishment (RFC 3921 §3, optional since RFC 6121).
pub const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";
/// Server dialback (XEP-0220).
pub const NS_DIALBACK: &str = "jabber:server:dialback";
/// Private XML storage (XEP-0049).
pub const NS_PRIVATE: &str = "jabber:iq:private";
/// XMPP ping (XEP-0199).
pub const NS_PING: &str = "urn:xmpp:ping";
/// In-band registration (XEP-0077).
pub const NS_REGISTER: &str = "jabber:iq:register";
/// In-band registration stream feature (XEP-0077).
pub const NS_REGISTER_FEATURE: &str = "http://jabber.org/features/iq-register";
/// Legacy non-SASL authentication (XEP-0078).
pub const NS_AUTH: &str = "jabber:iq:auth";
/// Legacy non-SASL authentication stream feature (XEP-0078).
pub const NS_AUTH_FEATURE: &str = "http://jabber.org/features/iq-auth";
/// Roster management (RFC 6121 §2).
pub const NS_ROSTER: &str = "jabber:iq:roster";
/// Service discovery, info (XEP-0030).
pub const NS_DISCO_INFO: &str = "http://jabber.org/protocol/disco#info";
/// Service discovery, items (XEP-0030).
pub const NS_DISCO_ITEMS: &str = "http://jabber.org/protocol/disco#items";
/// Software version (XEP-0092).
pub const NS_VERSION: &str = "jabber:iq:version";
/// Roster item annotations (XEP-0145), stored through XEP-0049.
pub const NS_ROSTERNOTES: &str = "storage:rosternotes";
/// Publish-subscribe (XEP-0060), used by XEP-0223.
pub const NS_PUBSUB: &str = "http://jabber.org/protocol/pubsub";
/// Publish-subscribe owner use cases (XEP-0060).
pub const NS_PUBSUB_OWNER: &str = "http://jabber.org/protocol/pubsub#owner";
/// Publish-subscribe errors (XEP-0060).
pub const NS_PUBSUB_ERRORS: &str = "http://jabber.org/protocol/pubsub#errors";
/// Data forms (XEP-0004), e.g. XEP-0223 publish options.
pub const NS_DATA_FORMS: &str = "jabber:x:data";
/// Delayed delivery (XEP-0203).
pub const NS_DELAY: &str = "urn:xmpp:delay";
/// The `xml:` prefix namespace (for `xml:lang`).
pub const NS_XML: &str = elsinore_xml::XML_NS;
