//! Property test: any sequence of bookmark writes through private XML, the XEP-0048 PEP
//! node and the XEP-0402 node (publish, retract, delete, restart) leaves the three copies
//! holding the bookmarks a simple model predicts, driven the way the server drives
//! `bookmarks::sync` (load the three copies, plan, one batch). It runs over the redb store,
//! so a restart closes and reopens the database file.

mod common;

use elsinore_jid::BareJid;
use elsinore_storage::bookmarks::{self, Bookmarks, Loaded, NS_LEGACY, NS_NATIVE, Source};
use elsinore_storage::pep::{self, IqKind, NodeState, Requester};
use elsinore_storage::private::{self, PrivateAction};
use elsinore_storage::{EffectResult, Op, Store};
use elsinore_xml::Element;
use proptest::prelude::*;

fn juliet() -> BareJid {
    BareJid::parse("juliet@capulet.lit").expect("valid JID")
}

fn xml(s: &str) -> Element {
    Element::parse(s.as_bytes()).expect("test XML parses")
}

fn room(n: u8) -> String {
    format!("room{n}@rooms.lit")
}

#[derive(Debug, Clone)]
enum Step {
    /// XEP-0048 list in private XML: (room, name) pairs and whether a URL is listed.
    PrivateSet(Vec<(u8, u8)>, bool),
    /// The same list published to the XEP-0048 PEP node.
    LegacyPublish(Vec<(u8, u8)>, bool),
    /// One XEP-0402 item.
    NativePublish(u8, u8),
    NativeRetract(u8),
    DeleteNode(Source),
    Restart,
}

/// A list naming each room once (a room listed twice keeps its first entry in the
/// XEP-0048 copies only; the unit tests cover that).
fn list() -> impl Strategy<Value = Vec<(u8, u8)>> {
    prop::collection::vec((0u8..5, 0u8..3), 0..5).prop_map(|mut l| {
        let mut seen = Vec::new();
        l.retain(|(r, _)| {
            let new = !seen.contains(r);
            seen.push(*r);
            new
        });
        l
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        2 => (list(), any::<bool>()).prop_map(|(l, u)| Step::PrivateSet(l, u)),
        2 => (list(), any::<bool>()).prop_map(|(l, u)| Step::LegacyPublish(l, u)),
        3 => (0u8..5, 0u8..3).prop_map(|(r, n)| Step::NativePublish(r, n)),
        2 => (0u8..5).prop_map(Step::NativeRetract),
        1 => prop::sample::select(vec![Source::LegacyPep, Source::Native]).prop_map(Step::DeleteNode),
        1 => Just(Step::Restart),
    ]
}

fn storage_xml(l: &[(u8, u8)], url: bool) -> String {
    let mut s = String::from("<storage xmlns='storage:bookmarks'>");
    for (r, n) in l {
        s += &format!("<conference jid='{}' name='n{n}'/>", room(*r));
    }
    if url {
        s += "<url name='w' url='http://example.org/'/>";
    }
    s + "</storage>"
}

/// The model: rooms with their names (first entry of a room wins, as XEP-0048 lists are
/// read), and whether the URL bookmark exists.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Model {
    rooms: Vec<(String, String)>,
    url: bool,
}

impl Model {
    fn from_list(l: &[(u8, u8)], url: bool) -> Model {
        let mut m = Model {
            rooms: Vec::new(),
            url,
        };
        for (r, n) in l {
            if !m.rooms.iter().any(|(j, _)| *j == room(*r)) {
                m.rooms.push((room(*r), format!("n{n}")));
            }
        }
        m
    }
}

fn rooms_of(b: &Bookmarks) -> Vec<(String, String)> {
    b.conferences
        .iter()
        .map(|c| (c.jid.to_string(), c.name.clone().unwrap_or_default()))
        .collect()
}

/// Run one write the way the server does; `Ok` if it was accepted.
fn write(store: &mut impl Store, source: Source, primary: Option<Op>) -> Result<(), String> {
    let owner = juliet();
    let loaded =
        Loaded::from_result(store.apply(&bookmarks::load_op(&owner))).map_err(|e| e.to_string())?;
    let Some(primary) = primary else {
        return Err("refused before any write".into());
    };
    let sync = bookmarks::sync(
        &owner,
        source,
        &primary,
        &loaded,
        &bookmarks::SyncLimits::default(),
    )
    .map_err(|e| e.to_string())?;
    let result = sync.primary_result(store.apply(&sync.combine(primary)));
    match result {
        EffectResult::Done | EffectResult::Batch(_) => Ok(()),
        other => Err(format!("{other:?}")),
    }
}

/// The primary write of a PEP request on `node`, planned against the loaded node.
fn pep_write(store: &mut impl Store, pubsub: &str, fresh: &str) -> Option<Op> {
    let owner = juliet();
    let el = xml(pubsub);
    let req = pep::Request {
        owner: &owner,
        requester: Requester::Owner,
        kind: IqKind::Set,
        pubsub: &el,
        fresh_id: fresh,
    };
    match pep::handle(&req, &pep::Limits::default()) {
        pep::Action::Reply(_) => None,
        pep::Action::Load(pending) => {
            let loaded = store.apply(&Op::Get(pending.key().clone()));
            let outcome = pending.complete(loaded);
            outcome.reply.as_ref().ok()?;
            outcome.write
        }
    }
}

const PS: &str = "xmlns='http://jabber.org/protocol/pubsub'";
const OWNER: &str = "xmlns='http://jabber.org/protocol/pubsub#owner'";
/// XEP-0402's publish options (a node auto-created without them would keep one item).
const OPTIONS_0402: &str = "<publish-options><x xmlns='jabber:x:data' type='submit'>\
    <field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>\
    <field var='pubsub#persist_items'><value>true</value></field>\
    <field var='pubsub#max_items'><value>max</value></field>\
    <field var='pubsub#send_last_published_item'><value>never</value></field>\
    <field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options>";

proptest! {
    // Every write is a durable redb commit; 32 cases keep the test to a few seconds.
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn every_path_shows_the_same_bookmarks(steps in prop::collection::vec(step(), 1..30)) {
        let owner = juliet();
        let mut store = common::DiskStore::new();
        let mut model = Model::default();
        for (n, step) in steps.iter().enumerate() {
            let fresh = format!("g{n}");
            match step {
                Step::PrivateSet(l, url) => {
                    let q = xml(&format!(
                        "<query xmlns='jabber:iq:private'>{}</query>",
                        storage_xml(l, *url)
                    ));
                    let action = private::handle(
                        &owner, None, private::IqKind::Set, &q, &private::Limits::default());
                    let PrivateAction::Run { ops, .. } = action else {
                        panic!("a valid set is run: {action:?}");
                    };
                    prop_assert_eq!(write(&mut store, Source::Private, Some(ops)), Ok(()));
                    model = Model::from_list(l, *url);
                }
                Step::LegacyPublish(l, url) => {
                    let body = format!(
                        "<pubsub {PS}><publish node='{NS_LEGACY}'><item id='current'>{}</item>\
                         </publish></pubsub>",
                        storage_xml(l, *url)
                    );
                    let op = pep_write(&mut store, &body, &fresh);
                    prop_assert_eq!(write(&mut store, Source::LegacyPep, op), Ok(()));
                    model = Model::from_list(l, *url);
                }
                Step::NativePublish(r, name) => {
                    let body = format!(
                        "<pubsub {PS}><publish node='{NS_NATIVE}'><item id='{}'>\
                         <conference xmlns='{NS_NATIVE}' name='n{name}'/></item></publish>\
                         {OPTIONS_0402}</pubsub>",
                        room(*r)
                    );
                    let op = pep_write(&mut store, &body, &fresh);
                    prop_assert_eq!(write(&mut store, Source::Native, op), Ok(()));
                    model.rooms.retain(|(j, _)| *j != room(*r));
                    model.rooms.push((room(*r), format!("n{name}")));
                }
                Step::NativeRetract(r) => {
                    let body = format!(
                        "<pubsub {PS}><retract node='{NS_NATIVE}'><item id='{}'/></retract></pubsub>",
                        room(*r)
                    );
                    let op = pep_write(&mut store, &body, &fresh);
                    let present = model.rooms.iter().any(|(j, _)| *j == room(*r));
                    let r2 = room(*r);
                    // Retracting an absent room is item-not-found: nothing is written.
                    prop_assert_eq!(write(&mut store, Source::Native, op).is_ok(), present);
                    model.rooms.retain(|(j, _)| *j != r2);
                }
                Step::DeleteNode(source) => {
                    let node = if *source == Source::Native { NS_NATIVE } else { NS_LEGACY };
                    let body = format!("<pubsub {OWNER}><delete node='{node}'/></pubsub>");
                    let op = pep_write(&mut store, &body, &fresh);
                    let exists = store.get(&pep::node_key(&owner, node)).is_some();
                    prop_assert_eq!(write(&mut store, *source, op).is_ok(), exists);
                    if exists {
                        model.rooms.clear();
                        // XEP-0402 cannot hold the URL: deleting that node leaves it.
                        if *source == Source::LegacyPep {
                            model.url = false;
                        }
                    }
                }
                Step::Restart => {
                    // The three copies read back from the file byte for byte; the checks
                    // below then hold for what the reopened store holds.
                    let keys = [
                        private::key(&owner, NS_LEGACY),
                        pep::node_key(&owner, NS_LEGACY),
                        pep::node_key(&owner, NS_NATIVE),
                    ];
                    let before: Vec<_> = keys.iter().map(|k| store.get(k)).collect();
                    store.reopen();
                    let after: Vec<_> = keys.iter().map(|k| store.get(k)).collect();
                    prop_assert_eq!(after, before);
                }
            }

            // Private XML and the XEP-0048 node hold the model's list, URL included.
            let private_list = store
                .get(&private::key(&owner, NS_LEGACY))
                .map(|bytes| {
                    let q = Element::parse(&bytes).expect("stored private value parses");
                    q.get_child("storage", NS_LEGACY)
                        .map(Bookmarks::from_legacy)
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            let legacy_list = store
                .get(&pep::node_key(&owner, NS_LEGACY))
                .map(|bytes| {
                    let state = NodeState::decode(&bytes).expect("stored node decodes");
                    state
                        .items
                        .iter()
                        .rev()
                        .find(|i| i.payload.is("storage", NS_LEGACY))
                        .map(|i| Bookmarks::from_legacy(&i.payload))
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            let native_list = store
                .get(&pep::node_key(&owner, NS_NATIVE))
                .map(|bytes| {
                    let state = NodeState::decode(&bytes).expect("stored node decodes");
                    Bookmarks::from_native(&state.items).expect("stored items are bookmarks")
                })
                .unwrap_or_default();
            let mut want = model.rooms.clone();
            want.sort();
            for (path, b) in [("private", &private_list), ("legacy", &legacy_list)] {
                let mut got = rooms_of(b);
                got.sort();
                prop_assert_eq!(&got, &want, "{} after {:?}", path, step);
                prop_assert_eq!(!b.legacy_only.is_empty(), model.url, "{} url after {:?}", path, step);
            }
            let mut got = rooms_of(&native_list);
            got.sort();
            prop_assert_eq!(&got, &want, "native after {:?}", step);
        }
    }
}
