//! The guide's update service at `update.<domain>`: a client announces its version with
//! presence to `client@update.<domain>/version`; when a newer release is configured the
//! service answers with a jabber:x:autoupdate message, and jabber:iq:autoupdate to
//! `client@update.<domain>` lists the latest release of each kind.

use std::cmp::Ordering;

use elsinore_jid::Jid;
use elsinore_stanza::{DefinedCondition, NS_CLIENT, NS_DISCO_INFO, StanzaError};
use elsinore_xml::Element;

use crate::iq::{IqHead, iq_error, iq_result};
use crate::server::{ConnId, Server};
use elsinore_stream::Instant;

/// The guide's release-information query.
pub const NS_IQ_AUTOUPDATE: &str = "jabber:iq:autoupdate";
/// The guide's update notification.
pub const NS_X_AUTOUPDATE: &str = "jabber:x:autoupdate";

/// Which track a release is on (the guide's `release`, `beta`, `dev` elements).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseKind {
    /// A stable release (`<release>`).
    Release,
    /// A beta (`<beta>`).
    Beta,
    /// A development build (`<dev>`).
    Dev,
}

impl ReleaseKind {
    /// The element name in jabber:iq:autoupdate.
    pub fn as_str(self) -> &'static str {
        match self {
            ReleaseKind::Release => "release",
            ReleaseKind::Beta => "beta",
            ReleaseKind::Dev => "dev",
        }
    }
}

/// Release information served by the update service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// The software, the node of `client@update.<domain>` (lowercase).
    pub client: String,
    /// Its version, compared numerically by dot-separated parts.
    pub version: String,
    /// The track.
    pub kind: ReleaseKind,
    /// `optional` or `mandatory` (the guide's `priority` attribute).
    pub priority: String,
    /// A description (may be empty).
    pub desc: String,
    /// Where to download it.
    pub url: String,
}

/// Compare versions part by part: numeric parts as numbers, others as text.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let parts = |s: &str| -> Vec<String> {
        s.split(['.', '-', '_'])
            .map(str::to_string)
            .take(32)
            .collect()
    };
    let (pa, pb) = (parts(a), parts(b));
    for i in 0..pa.len().max(pb.len()) {
        let x = pa.get(i).map(String::as_str).unwrap_or("0");
        let y = pb.get(i).map(String::as_str).unwrap_or("0");
        let ord = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ => x.cmp(y),
        };
        if ord != Ordering::Equal {
            return ord;
        }
    }
    Ordering::Equal
}

impl Server {
    /// The newest configured release of `client` on each track.
    fn latest_releases(&self, client: &str) -> Vec<&Release> {
        let mut out: Vec<&Release> = Vec::new();
        for kind in [ReleaseKind::Release, ReleaseKind::Beta, ReleaseKind::Dev] {
            let best = self
                .config
                .releases
                .iter()
                .filter(|r| r.kind == kind && r.client.eq_ignore_ascii_case(client))
                .max_by(|a, b| compare_versions(&a.version, &b.version));
            out.extend(best);
        }
        out
    }

    pub(crate) fn handle_autoupdate(
        &mut self,
        id: ConnId,
        from: &Jid,
        el: Element,
        to: Jid,
        now: Instant,
    ) {
        let client = to.node().map(str::to_string);
        match el.name.as_str() {
            "presence" => {
                // Example 7-1: presence to client@update/<installed version>.
                if el.attr("type").is_some() {
                    return;
                }
                let (Some(client), Some(installed)) = (client, to.resource()) else {
                    return;
                };
                let newer = self
                    .latest_releases(&client)
                    .into_iter()
                    .find(|r| r.kind == ReleaseKind::Release)
                    .filter(|r| compare_versions(&r.version, installed) == Ordering::Greater)
                    .cloned();
                if let Some(r) = newer {
                    let service = to.to_bare().to_string();
                    let m =
                        Element::new("message", NS_CLIENT)
                            .with_attr("from", service.clone())
                            .with_attr("to", from.to_string())
                            .with_child(
                                Element::new("subject", NS_CLIENT)
                                    .with_text(format!("Upgrade available for {client}")),
                            )
                            .with_child(Element::new("body", NS_CLIENT).with_text(format!(
                                "Version {} is available: {}",
                                r.version, r.url
                            )))
                            .with_child(Element::new("x", NS_X_AUTOUPDATE).with_text(service));
                    self.deliver_to_conn(id, &m, now);
                }
            }
            "iq" => {
                let ty = el.attr("type").unwrap_or_default();
                if ty != "get" && ty != "set" {
                    return;
                }
                let head = IqHead {
                    id: el.attr("id").unwrap_or_default().to_string(),
                    from: Some(from.clone()),
                    to: el.attr("to").map(str::to_string),
                };
                let payload = el.elements().next();
                let reply = match (payload, &client) {
                    (Some(p), Some(client)) if ty == "get" && p.is("query", NS_IQ_AUTOUPDATE) => {
                        let releases = self.latest_releases(client);
                        if releases.is_empty() {
                            iq_error(
                                &head,
                                None,
                                StanzaError::new(DefinedCondition::ItemNotFound)
                                    .with_text("no release information for this software"),
                            )
                        } else {
                            let mut q = Element::new("query", NS_IQ_AUTOUPDATE);
                            for r in releases {
                                let ns = NS_IQ_AUTOUPDATE;
                                q = q.with_child(
                                    Element::new(r.kind.as_str(), ns)
                                        .with_attr("priority", r.priority.clone())
                                        .with_child(
                                            Element::new("ver", ns).with_text(r.version.clone()),
                                        )
                                        .with_child(
                                            Element::new("desc", ns).with_text(r.desc.clone()),
                                        )
                                        .with_child(
                                            Element::new("url", ns).with_text(r.url.clone()),
                                        ),
                                );
                            }
                            iq_result(&head, Some(q))
                        }
                    }
                    (Some(p), None) if ty == "get" && p.is("query", NS_DISCO_INFO) => {
                        let q = Element::new("query", NS_DISCO_INFO)
                            .with_child(
                                Element::new("identity", NS_DISCO_INFO)
                                    .with_attr("category", "component")
                                    .with_attr("type", "generic")
                                    .with_attr("name", "Update Service"),
                            )
                            .with_child(
                                Element::new("feature", NS_DISCO_INFO)
                                    .with_attr("var", NS_IQ_AUTOUPDATE),
                            );
                        iq_result(&head, Some(q))
                    }
                    _ => iq_error(
                        &head,
                        None,
                        StanzaError::new(DefinedCondition::ServiceUnavailable),
                    ),
                };
                self.deliver_to_conn(id, &reply, now);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert_eq!(compare_versions("0.9.1.1", "0.9.1.0"), Ordering::Greater);
        assert_eq!(compare_versions("0.10", "0.9.9"), Ordering::Greater);
        assert_eq!(compare_versions("1.0", "1"), Ordering::Equal);
        assert_eq!(compare_versions("1.0-beta", "1.0-alpha"), Ordering::Greater);
    }
}
