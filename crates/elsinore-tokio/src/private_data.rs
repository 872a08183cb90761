//! Client helpers for private data: XEP-0145 annotations (over XEP-0049), XEP-0223
//! private PEP nodes (XEP-0060 owner use), and bookmarks (XEP-0402, XEP-0048). Requests and
//! answers are the sans-IO builders and parsers of `elsinore_client::{annotations, pep,
//! bookmarks}`; this file only sends them.

use std::time::{SystemTime, UNIX_EPOCH};

use elsinore_client::annotations::{self, Annotations};
use elsinore_client::bookmarks::{self, Bookmarks, Conference};
use elsinore_client::pep::{self, ConfigChange, Select, Support};
use elsinore_jid::BareJid;
use elsinore_xml::Element;

use crate::client::{Client, ClientError};

/// One item of a PEP node.
pub type PepItem = pep::Item;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn unexpected(e: impl std::fmt::Display) -> ClientError {
    ClientError::UnexpectedResponse(e.to_string())
}

impl Client {
    /// XEP-0145: the account's annotations (empty when none are stored). A stored bundle
    /// that does not parse strictly is an [`ClientError::UnexpectedResponse`], so callers
    /// never overwrite notes they could not read.
    pub async fn annotations_get(&self) -> Result<Annotations, ClientError> {
        let response = self.iq(annotations::get_request()).await?;
        annotations::parse_get_response(&response).map_err(unexpected)
    }

    /// XEP-0145: replace the stored annotations with `notes`.
    pub async fn annotations_set(&self, notes: &Annotations) -> Result<(), ClientError> {
        self.iq(annotations::set_request(notes)).await.map(|_| ())
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

    /// XEP-0223 §5: whether the account's server supports private data via PEP (disco#info
    /// on the account's bare JID: identity `pubsub/pep` and feature `publish-options`; see
    /// [`Support::private_storage`]).
    pub async fn pep_support(&self) -> Result<Support, ClientError> {
        self.pep_support_of(&self.jid().to_bare()).await
    }

    /// XEP-0163: what disco#info on `account` (a contact's bare JID) says about PEP.
    pub async fn pep_support_of(&self, account: &BareJid) -> Result<Support, ClientError> {
        let response = self.iq(pep::disco_info_request(account)).await?;
        pep::parse_support(&response).map_err(unexpected)
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
        let request = pep::publish_request(node, item_id, payload, options);
        let response = self.iq(request).await?;
        pep::parse_publish_response(&response, item_id).map_err(unexpected)
    }

    /// XEP-0060: every item of the account's PEP node `node`, as the server returns them.
    pub async fn pep_items(&self, node: &str) -> Result<Vec<PepItem>, ClientError> {
        self.pep_items_select(node, &Select::All).await
    }

    /// XEP-0060 6.5.8: the items of `node` with these ids (ids that do not exist are left
    /// out).
    pub async fn pep_items_by_id(
        &self,
        node: &str,
        ids: &[&str],
    ) -> Result<Vec<PepItem>, ClientError> {
        self.pep_items_select(node, &Select::Ids(ids)).await
    }

    /// XEP-0060 6.5.7: the newest `max_items` items of `node`.
    pub async fn pep_items_last(
        &self,
        node: &str,
        max_items: u32,
    ) -> Result<Vec<PepItem>, ClientError> {
        self.pep_items_select(node, &Select::Last(max_items)).await
    }

    /// XEP-0060 6.5: the items of the account's node `node` that `select` names.
    pub async fn pep_items_select(
        &self,
        node: &str,
        select: &Select<'_>,
    ) -> Result<Vec<PepItem>, ClientError> {
        let response = self.iq(pep::items_request(node, select)).await?;
        pep::parse_items_response(&response).map_err(unexpected)
    }

    /// XEP-0060: retract item `item_id` from the account's PEP node `node`; with `notify`
    /// the account's resources get a retract notification.
    pub async fn pep_retract(
        &self,
        node: &str,
        item_id: &str,
        notify: bool,
    ) -> Result<(), ClientError> {
        let request = pep::retract_request(node, item_id, notify);
        self.iq(request).await.map(|_| ())
    }

    /// XEP-0060 8.1: create `node` with `config` applied to the server's defaults (an
    /// existing node: [`ClientError::Stanza`] `conflict`).
    pub async fn pep_create(
        &self,
        node: &str,
        config: Option<&ConfigChange>,
    ) -> Result<(), ClientError> {
        self.iq(pep::create_request(node, config)).await.map(|_| ())
    }

    /// XEP-0060 8.2: the configuration of `node` (see [`pep::parse_configure_response`]
    /// for values outside the model).
    pub async fn pep_config(&self, node: &str) -> Result<ConfigChange, ClientError> {
        let response = self.iq(pep::configure_get_request(node)).await?;
        pep::parse_configure_response(&response).map_err(unexpected)
    }

    /// XEP-0060 8.2.4: change the configuration of `node` (fields left `None` keep their
    /// value).
    pub async fn pep_configure(
        &self,
        node: &str,
        change: &ConfigChange,
    ) -> Result<(), ClientError> {
        let request = pep::configure_set_request(node, change);
        self.iq(request).await.map(|_| ())
    }

    /// XEP-0060 8.4: delete `node` with its items (subscribers get a delete event).
    pub async fn pep_delete(&self, node: &str) -> Result<(), ClientError> {
        self.iq(pep::delete_request(node)).await.map(|_| ())
    }

    /// XEP-0060 8.5: remove every item of `node`, keeping the node (subscribers get a purge
    /// event).
    pub async fn pep_purge(&self, node: &str) -> Result<(), ClientError> {
        self.iq(pep::purge_request(node)).await.map(|_| ())
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
