//! Client helpers for private data: XEP-0145 annotations (over XEP-0049), XEP-0223
//! private PEP nodes (publish, retrieve, retract), and bookmarks (XEP-0402, XEP-0048).

use std::time::{SystemTime, UNIX_EPOCH};

use elsinore_client::bookmarks::{self, Bookmarks, Conference};
use elsinore_jid::BareJid;
use elsinore_storage::annotations::{self, Annotations};
use elsinore_storage::pep::{ConfigChange, FORM_PUBLISH_OPTIONS, NS_PUBSUB};
use elsinore_xml::Element;

use crate::client::{Client, ClientError};

/// One item of a PEP node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PepItem {
    /// The item id.
    pub id: String,
    /// The payload element (absent in notification-only answers).
    pub payload: Option<Element>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn iq(kind: &str, payload: Element) -> Element {
    Element::new("iq", "jabber:client")
        .with_attr("type", kind)
        .with_child(payload)
}

impl Client {
    /// XEP-0145: the account's annotations (empty when none are stored). A stored bundle
    /// that does not parse strictly is an [`ClientError::UnexpectedResponse`], so callers
    /// never overwrite notes they could not read.
    pub async fn annotations_get(&self) -> Result<Annotations, ClientError> {
        let stored = self.private_get("storage", annotations::NS).await?;
        match stored.iter().find(|e| e.is("storage", annotations::NS)) {
            None => Ok(Annotations::new()),
            Some(storage) => Annotations::parse(storage)
                .map_err(|e| ClientError::UnexpectedResponse(format!("stored annotations: {e}"))),
        }
    }

    /// XEP-0145: replace the stored annotations with `notes`.
    pub async fn annotations_set(&self, notes: &Annotations) -> Result<(), ClientError> {
        self.private_set(notes.to_element()).await
    }

    /// XEP-0145: add a note about `jid`, or update its text (`mdate` now, `cdate` kept),
    /// and store the bundle. Returns the bundle as stored. Read-modify-write over XEP-0049:
    /// a concurrent change from another client between the read and the write is lost.
    pub async fn annotations_set_note(
        &self,
        jid: &BareJid,
        text: &str,
    ) -> Result<Annotations, ClientError> {
        let mut notes = self.annotations_get().await?;
        notes
            .set_note(jid.clone(), text, now_ms())
            .map_err(|e| ClientError::Send(e.to_string()))?;
        self.annotations_set(&notes).await?;
        Ok(notes)
    }

    /// XEP-0145: remove the note about `jid` (if any) and store the bundle. Returns whether
    /// there was a note.
    pub async fn annotations_remove_note(&self, jid: &BareJid) -> Result<bool, ClientError> {
        let mut notes = self.annotations_get().await?;
        if notes.remove(jid).is_none() {
            return Ok(false);
        }
        self.annotations_set(&notes).await?;
        Ok(true)
    }

    /// XEP-0060/0223: publish `payload` to the account's PEP node `node` (auto-created),
    /// as item `item_id` (the server picks one if `None`), with `options` as publish
    /// options (preconditions; [`ConfigChange::private`] for XEP-0223 private data).
    /// Returns the item id.
    pub async fn pep_publish(
        &self,
        node: &str,
        item_id: Option<&str>,
        payload: Element,
        options: Option<&ConfigChange>,
    ) -> Result<String, ClientError> {
        let mut item = Element::new("item", NS_PUBSUB).with_child(payload);
        if let Some(id) = item_id {
            item.set_attr("id", id);
        }
        let mut pubsub = Element::new("pubsub", NS_PUBSUB).with_child(
            Element::new("publish", NS_PUBSUB)
                .with_attr("node", node)
                .with_child(item),
        );
        if let Some(o) = options {
            pubsub = pubsub.with_child(
                Element::new("publish-options", NS_PUBSUB)
                    .with_child(o.to_submit_form(FORM_PUBLISH_OPTIONS)),
            );
        }
        let response = self.iq(iq("set", pubsub)).await?;
        let id = response
            .get_child("pubsub", NS_PUBSUB)
            .and_then(|p| p.get_child("publish", NS_PUBSUB))
            .and_then(|p| p.get_child("item", NS_PUBSUB))
            .and_then(|i| i.attr("id"))
            .map(str::to_string);
        // A server may answer with an empty result (XEP-0060 7.1.2) when the id was ours.
        match (id, item_id) {
            (Some(id), _) => Ok(id),
            (None, Some(ours)) => Ok(ours.to_string()),
            (None, None) => Err(ClientError::UnexpectedResponse(
                "publish result names no item id".into(),
            )),
        }
    }

    /// XEP-0060: every item of the account's PEP node `node`, as the server returns them.
    pub async fn pep_items(&self, node: &str) -> Result<Vec<PepItem>, ClientError> {
        let pubsub = Element::new("pubsub", NS_PUBSUB)
            .with_child(Element::new("items", NS_PUBSUB).with_attr("node", node));
        let response = self.iq(iq("get", pubsub)).await?;
        let items = response
            .get_child("pubsub", NS_PUBSUB)
            .and_then(|p| p.get_child("items", NS_PUBSUB))
            .ok_or_else(|| {
                ClientError::UnexpectedResponse("items result without <items/>".into())
            })?;
        Ok(items
            .elements()
            .filter(|e| e.is("item", NS_PUBSUB))
            .map(|e| PepItem {
                id: e.attr("id").unwrap_or_default().to_string(),
                payload: e.elements().next().cloned(),
            })
            .collect())
    }

    /// XEP-0060: retract item `item_id` from the account's PEP node `node`; with `notify`
    /// the account's resources get a retract notification.
    pub async fn pep_retract(
        &self,
        node: &str,
        item_id: &str,
        notify: bool,
    ) -> Result<(), ClientError> {
        let mut retract = Element::new("retract", NS_PUBSUB)
            .with_attr("node", node)
            .with_child(Element::new("item", NS_PUBSUB).with_attr("id", item_id));
        if notify {
            retract.set_attr("notify", "true");
        }
        let pubsub = Element::new("pubsub", NS_PUBSUB).with_child(retract);
        self.iq(iq("set", pubsub)).await.map(|_| ())
    }
}

impl Client {
    /// XEP-0402: every bookmark of the account (none yet: empty). An item that is not a
    /// valid bookmark is an [`ClientError::UnexpectedResponse`].
    pub async fn bookmarks_get(&self) -> Result<Vec<Conference>, ClientError> {
        match self.iq(bookmarks::items_request()).await {
            Ok(response) => bookmarks::parse_items_response(&response)
                .map_err(|e| ClientError::UnexpectedResponse(e.to_string())),
            // No node yet: no bookmarks.
            Err(ClientError::Stanza { condition, .. }) if condition == "item-not-found" => {
                Ok(Vec::new())
            }
            Err(e) => Err(e),
        }
    }

    /// XEP-0402: add `room`, or replace the bookmark of the same room. Only this room's
    /// item is written, so concurrent changes to other rooms are not lost.
    pub async fn bookmarks_set(&self, room: &Conference) -> Result<(), ClientError> {
        self.iq(bookmarks::publish_request(room)).await.map(|_| ())
    }

    /// XEP-0402: remove the bookmark of `room`. Returns whether there was one.
    pub async fn bookmarks_remove(&self, room: &BareJid) -> Result<bool, ClientError> {
        match self.iq(bookmarks::retract_request(room)).await {
            Ok(_) => Ok(true),
            Err(ClientError::Stanza { condition, .. }) if condition == "item-not-found" => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// XEP-0048 over XEP-0049 (for servers without XEP-0402 compatibility): the stored
    /// list, URL bookmarks included.
    pub async fn bookmarks_get_legacy(&self) -> Result<Bookmarks, ClientError> {
        let response = self.iq(bookmarks::legacy_get_request()).await?;
        bookmarks::parse_legacy_response(&response)
            .map_err(|e| ClientError::UnexpectedResponse(e.to_string()))
    }

    /// XEP-0048 over XEP-0049: replace the whole stored list.
    pub async fn bookmarks_set_legacy(&self, list: &Bookmarks) -> Result<(), ClientError> {
        self.iq(bookmarks::legacy_set_request(list))
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_reads_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }
}
