//! Building iq replies.

use elsinore_jid::Jid;
use elsinore_stanza::{NS_CLIENT, StanzaError};
use elsinore_xml::Element;

/// What a reply to an iq needs.
#[derive(Debug, Clone)]
pub(crate) struct IqHead {
    pub(crate) id: String,
    /// The requester (becomes the reply's `to`), absent before binding.
    pub(crate) from: Option<Jid>,
    /// The addressee (becomes the reply's `from`).
    pub(crate) to: Option<String>,
}

pub(crate) fn iq_result(head: &IqHead, payload: Option<Element>) -> Element {
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

pub(crate) fn iq_error(head: &IqHead, original: Option<Element>, err: StanzaError) -> Element {
    let mut iq = iq_result(head, original);
    iq.set_attr("type", "error");
    iq.with_child(err.to_element(NS_CLIENT))
}

/// The first child element of `el`, moved out (no copy of the payload tree).
pub(crate) fn into_payload(el: Element) -> Option<Element> {
    el.children.into_iter().find_map(|n| match n {
        elsinore_xml::Node::Element(e) => Some(e),
        elsinore_xml::Node::Text(_) => None,
    })
}
