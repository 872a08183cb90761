//! PEP node semantics (`elsinore_storage::pep`) against `MemoryStore`: error cases, and a
//! property test comparing any sequence of operations with a simple model, run over the
//! redb store so that its restart steps close and reopen the database file.

mod common;

use elsinore_jid::BareJid;
use elsinore_storage::pep::{
    self, AccessModel, ConfigChange, IqKind, Limits, NodeConfig, NodeState, PepError, Request,
    Requester, SendLastItem,
};
use elsinore_storage::{EffectResult, FailingStore, MemoryStore, Op, Store};
use elsinore_xml::Element;
use proptest::prelude::*;

fn juliet() -> BareJid {
    BareJid::parse("juliet@capulet.lit").expect("valid JID")
}

fn xml(s: &str) -> Element {
    Element::parse(s.as_bytes()).expect("test XML is well-formed")
}

fn run_as(
    store: &mut impl Store,
    requester: Requester,
    kind: IqKind,
    pubsub: &str,
    limits: &Limits,
) -> (Result<Option<Element>, PepError>, Vec<pep::Notification>) {
    let owner = juliet();
    let el = xml(pubsub);
    let req = Request {
        owner: &owner,
        requester,
        kind,
        pubsub: &el,
        fresh_id: "fresh-1",
    };
    pep::handle(&req, limits).run_on(store)
}

fn run(
    store: &mut impl Store,
    kind: IqKind,
    pubsub: &str,
) -> (Result<Option<Element>, PepError>, Vec<pep::Notification>) {
    run_as(store, Requester::Owner, kind, pubsub, &Limits::default())
}

const PS: &str = "xmlns='http://jabber.org/protocol/pubsub'";
const OWNER: &str = "xmlns='http://jabber.org/protocol/pubsub#owner'";

fn publish(node: &str, id: Option<&str>, text: &str, options: Option<&ConfigChange>) -> String {
    let id = id.map(|i| format!(" id='{i}'")).unwrap_or_default();
    let opts = options
        .map(|o| {
            let form = o.to_submit_form(pep::FORM_PUBLISH_OPTIONS).to_bytes();
            format!(
                "<publish-options>{}</publish-options>",
                String::from_utf8_lossy(&form)
            )
        })
        .unwrap_or_default();
    format!(
        "<pubsub {PS}><publish node='{node}'><item{id}><v xmlns='urn:test'>{text}</v></item></publish>{opts}</pubsub>"
    )
}

fn items_of(reply: &Element) -> Vec<(String, String)> {
    reply
        .get_child("items", pep::NS_PUBSUB)
        .map(|items| {
            items
                .elements()
                .map(|i| {
                    let text = i.elements().next().map(Element::text).unwrap_or_default();
                    (i.attr("id").unwrap_or_default().to_string(), text)
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn publish_without_id_uses_the_fresh_id_and_notifies() {
    let mut store = MemoryStore::new();
    let (r, notes) = run(&mut store, IqKind::Set, &publish("n", None, "a", None));
    let reply = r.expect("published").expect("payload");
    let item = reply
        .get_child("publish", pep::NS_PUBSUB)
        .and_then(|p| p.get_child("item", pep::NS_PUBSUB))
        .expect("item");
    assert_eq!(item.attr("id"), Some("fresh-1"));
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].access_model, AccessModel::Presence);
    let items = notes[0]
        .event
        .get_child("items", pep::NS_PUBSUB_EVENT)
        .expect("items");
    assert_eq!(items.attr("node"), Some("n"));
}

#[test]
fn unknown_publish_option_is_precondition_not_met_and_writes_nothing() {
    let mut store = MemoryStore::new();
    let body = format!(
        "<pubsub {PS}><publish node='n'><item><v xmlns='urn:test'/></item></publish><publish-options>\
         <x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>{}</value></field>\
         <field var='pubsub#frobnicate'><value>1</value></field></x></publish-options></pubsub>",
        pep::FORM_PUBLISH_OPTIONS
    );
    let (r, notes) = run(&mut store, IqKind::Set, &body);
    let e = r.expect_err("refused");
    assert_eq!(e.condition(), "conflict");
    assert_eq!(
        e.app_condition().map(|a| a.name),
        Some("precondition-not-met".into())
    );
    assert!(notes.is_empty());
    assert!(store.is_empty());
}

#[test]
fn conflicting_options_on_existing_node() {
    let mut store = MemoryStore::new();
    let (r, _) = run(&mut store, IqKind::Set, &publish("n", Some("1"), "a", None));
    r.expect("published");
    let before: Vec<_> = store.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect();
    let (r, _) = run(
        &mut store,
        IqKind::Set,
        &publish("n", Some("2"), "b", Some(&ConfigChange::private())),
    );
    assert!(matches!(r, Err(PepError::PreconditionNotMet(_))), "{r:?}");
    let after: Vec<_> = store.iter().map(|(k, v)| (k.clone(), v.to_vec())).collect();
    assert_eq!(before, after, "nothing written");
}

#[test]
fn whitelist_node_is_closed_to_others_and_writes_are_forbidden() {
    let mut store = MemoryStore::new();
    let (r, _) = run(
        &mut store,
        IqKind::Set,
        &publish("p", Some("1"), "secret", Some(&ConfigChange::private())),
    );
    r.expect("published");
    let limits = Limits::default();
    for who in [Requester::Other, Requester::PresenceSubscriber] {
        let (r, _) = run_as(
            &mut store,
            who,
            IqKind::Get,
            &format!("<pubsub {PS}><items node='p'/></pubsub>"),
            &limits,
        );
        assert_eq!(r, Err(PepError::ClosedNode));
        let (r, _) = run_as(
            &mut store,
            who,
            IqKind::Set,
            &publish("p", Some("1"), "x", None),
            &limits,
        );
        assert_eq!(r, Err(PepError::Forbidden));
        let (r, _) = run_as(
            &mut store,
            who,
            IqKind::Set,
            &format!("<pubsub {OWNER}><delete node='p'/></pubsub>"),
            &limits,
        );
        assert_eq!(r, Err(PepError::Forbidden));
    }
}

#[test]
fn presence_and_open_access() {
    let mut store = MemoryStore::new();
    let (r, _) = run(&mut store, IqKind::Set, &publish("p", Some("1"), "x", None));
    r.expect("published");
    let limits = Limits::default();
    let get = format!("<pubsub {PS}><items node='p'/></pubsub>");
    let (r, _) = run_as(&mut store, Requester::Other, IqKind::Get, &get, &limits);
    assert_eq!(r, Err(PepError::PresenceSubscriptionRequired));
    let (r, _) = run_as(
        &mut store,
        Requester::PresenceSubscriber,
        IqKind::Get,
        &get,
        &limits,
    );
    assert_eq!(items_of(&r.expect("ok").expect("payload")).len(), 1);
    let open = ConfigChange {
        access_model: Some(AccessModel::Open),
        ..ConfigChange::default()
    };
    let form = String::from_utf8_lossy(&open.to_submit_form(pep::FORM_NODE_CONFIG).to_bytes())
        .into_owned();
    let (r, _) = run(
        &mut store,
        IqKind::Set,
        &format!("<pubsub {OWNER}><configure node='p'>{form}</configure></pubsub>"),
    );
    r.expect("configured");
    let (r, _) = run_as(&mut store, Requester::Other, IqKind::Get, &get, &limits);
    assert_eq!(items_of(&r.expect("ok").expect("payload")).len(), 1);
}

#[test]
fn error_cases() {
    let mut store = MemoryStore::new();
    let cases: Vec<(IqKind, String, &str, Option<&str>)> = vec![
        (
            IqKind::Get,
            format!("<pubsub {PS}><items node='none'/></pubsub>"),
            "item-not-found",
            None,
        ),
        (
            IqKind::Set,
            format!("<pubsub {PS}><publish node='n'/></pubsub>"),
            "bad-request",
            Some("item-required"),
        ),
        (
            IqKind::Set,
            format!("<pubsub {PS}><publish node='n'><item/></publish></pubsub>"),
            "bad-request",
            Some("payload-required"),
        ),
        (
            IqKind::Set,
            format!(
                "<pubsub {PS}><publish node='n'><item><a xmlns='x'/><b xmlns='x'/></item></publish></pubsub>"
            ),
            "bad-request",
            Some("invalid-payload"),
        ),
        (
            IqKind::Set,
            format!("<pubsub {PS}><publish><item><a xmlns='x'/></item></publish></pubsub>"),
            "bad-request",
            Some("nodeid-required"),
        ),
        (
            IqKind::Set,
            format!("<pubsub {PS}><create/></pubsub>"),
            "not-acceptable",
            Some("nodeid-required"),
        ),
        (
            IqKind::Set,
            format!("<pubsub {PS}><retract node='n'><item id='1'/></retract></pubsub>"),
            "item-not-found",
            None,
        ),
        (
            IqKind::Set,
            format!("<pubsub {PS}><retract node='n'/></pubsub>"),
            "bad-request",
            Some("item-required"),
        ),
        (
            IqKind::Set,
            format!("<pubsub {PS}><subscribe node='n' jid='juliet@capulet.lit'/></pubsub>"),
            "feature-not-implemented",
            Some("unsupported"),
        ),
        (
            IqKind::Set,
            format!("<pubsub {OWNER}><delete node='none'/></pubsub>"),
            "item-not-found",
            None,
        ),
        (
            IqKind::Get,
            format!("<pubsub {OWNER}><configure node='none'/></pubsub>"),
            "item-not-found",
            None,
        ),
        (IqKind::Set, format!("<pubsub {PS}/>"), "bad-request", None),
    ];
    for (kind, body, cond, app) in cases {
        let (r, notes) = run(&mut store, kind, &body);
        let e = r.expect_err(&body);
        assert_eq!(e.condition(), cond, "{body}");
        assert_eq!(e.app_condition().map(|a| a.name).as_deref(), app, "{body}");
        assert!(notes.is_empty());
    }
    assert!(store.is_empty(), "no error case wrote anything");
}

#[test]
fn bad_configuration_values_are_refused() {
    let mut store = MemoryStore::new();
    run(&mut store, IqKind::Set, &publish("n", Some("1"), "a", None))
        .0
        .expect("published");
    for (var, value, cond) in [
        ("pubsub#max_items", "0", "not-acceptable"),
        ("pubsub#max_items", "100000", "not-acceptable"),
        ("pubsub#max_items", "many", "bad-request"),
        ("pubsub#access_model", "roster", "not-acceptable"),
        ("pubsub#persist_items", "yes", "bad-request"),
        ("pubsub#title", "x", "not-acceptable"),
    ] {
        let body = format!(
            "<pubsub {OWNER}><configure node='n'><x xmlns='jabber:x:data' type='submit'>\
             <field var='FORM_TYPE'><value>{}</value></field><field var='{var}'><value>{value}</value></field>\
             </x></configure></pubsub>",
            pep::FORM_NODE_CONFIG
        );
        let (r, _) = run(&mut store, IqKind::Set, &body);
        assert_eq!(r.expect_err(&body).condition(), cond, "{var}={value}");
    }
}

#[test]
fn store_failure_is_internal_server_error_without_notifications() {
    // The load (call 1) succeeds, the write (call 2) fails.
    let mut store = FailingStore::every(MemoryStore::new(), 2);
    let (r, notes) = run(&mut store, IqKind::Set, &publish("n", None, "a", None));
    assert_eq!(r, Err(PepError::InternalServerError));
    assert!(notes.is_empty());
    assert!(store.inner().is_empty());
    // A failed load fails the same way.
    store.set_fail_all(true);
    let (r, notes) = run(&mut store, IqKind::Set, &publish("n", None, "a", None));
    assert_eq!(r, Err(PepError::InternalServerError));
    assert!(notes.is_empty());
}

#[test]
fn corrupt_stored_node_is_internal_server_error() {
    let mut store = MemoryStore::new();
    let key = pep::node_key(&juliet(), "n");
    assert_eq!(
        store.apply(&Op::Put(key, b"<nonsense/>".to_vec())),
        EffectResult::Done
    );
    let (r, _) = run(
        &mut store,
        IqKind::Get,
        &format!("<pubsub {PS}><items node='n'/></pubsub>"),
    );
    assert_eq!(r, Err(PepError::InternalServerError));
}

#[test]
fn payload_escaping_survives_storage() {
    let mut store = MemoryStore::new();
    let body = format!(
        "<pubsub {PS}><publish node='n'><item id='x'><c xmlns='storage:bookmarks' name='The Play&apos;s &lt;&amp;&gt;'>\
         <nick xml:lang='en'>J&amp;C</nick></c></item></publish></pubsub>"
    );
    run(&mut store, IqKind::Set, &body).0.expect("published");
    let (r, _) = run(
        &mut store,
        IqKind::Get,
        &format!("<pubsub {PS}><items node='n'/></pubsub>"),
    );
    let reply = r.expect("ok").expect("payload");
    let c = reply
        .get_child("items", pep::NS_PUBSUB)
        .and_then(|i| i.get_child("item", pep::NS_PUBSUB))
        .and_then(|i| i.get_child("c", "storage:bookmarks"))
        .expect("payload");
    assert_eq!(c.attr("name"), Some("The Play's <&>"));
    let nick = c.get_child("nick", "storage:bookmarks").expect("nick");
    assert_eq!(nick.text(), "J&C");
    assert_eq!(nick.lang(), Some("en"));
}

// ---- property test: operations against a model --------------------------------------

#[derive(Debug, Clone)]
enum Step {
    Publish {
        id: Option<u8>,
        text: u8,
        options: Option<ConfigChange>,
    },
    Retract(u8),
    Configure(ConfigChange),
    Delete,
    /// Close the database and open the file again: only what was committed survives.
    Restart,
}

fn change() -> impl Strategy<Value = ConfigChange> {
    (
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec![
            AccessModel::Open,
            AccessModel::Presence,
            AccessModel::Whitelist,
        ])),
        prop::option::of(1u32..=4),
        prop::option::of(prop::sample::select(vec![
            SendLastItem::Never,
            SendLastItem::OnSubAndPresence,
        ])),
    )
        .prop_map(
            |(persist_items, access_model, max_items, send_last_item)| ConfigChange {
                persist_items,
                access_model,
                max_items,
                send_last_item,
            },
        )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (prop::option::of(0u8..4), any::<u8>(), prop::option::of(change()))
            .prop_map(|(id, text, options)| Step::Publish { id, text, options }),
        2 => (0u8..4).prop_map(Step::Retract),
        1 => change().prop_map(Step::Configure),
        1 => Just(Step::Delete),
        1 => Just(Step::Restart),
    ]
}

/// The model: `None` when the node does not exist.
type Model = Option<(NodeConfig, Vec<(String, String)>)>;

fn model_trim(config: &NodeConfig, items: &mut Vec<(String, String)>) {
    if !config.persist_items {
        items.clear();
    }
    while items.len() > config.max_items as usize {
        items.remove(0);
    }
}

proptest! {
    // Every write is a durable redb commit; 48 cases keep the test to a few seconds.
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn node_follows_the_model(steps in prop::collection::vec(step(), 1..40)) {
        let limits = Limits { max_items_cap: 4, ..Limits::default() };
        let mut store = common::DiskStore::new();
        let mut model: Model = None;
        let mut fresh = 0u32;
        let owner = juliet();
        for step in steps {
            fresh += 1;
            let fresh_id = format!("g{fresh}");
            if let Step::Restart = step {
                // The node's bytes are exactly those before the reopen; the comparison with
                // the model below then also holds for what was read back from the file.
                let key = pep::node_key(&owner, "n");
                let before = store.get(&key);
                store.reopen();
                prop_assert_eq!(store.get(&key), before);
            } else {
                run_step(&mut store, &mut model, &step, &fresh_id, &limits)?;
            }
            // The stored node equals the model.
            let stored = store
                .get(&pep::node_key(&owner, "n"))
                .map(|b| NodeState::decode(&b).expect("stored node decodes"));
            match (&model, stored) {
                (None, None) => {}
                (Some((config, items)), Some(state)) => {
                    prop_assert_eq!(*config, state.config);
                    let got: Vec<(String, String)> = state
                        .items
                        .iter()
                        .map(|i| (i.id.clone(), i.payload.text()))
                        .collect();
                    prop_assert_eq!(items, &got);
                }
                (m, s) => prop_assert!(false, "model {:?} vs stored {:?}", m, s),
            }
        }
    }
}

/// Runs one request step on `store` and checks its outcome against the model, which it
/// advances.
fn run_step(
    store: &mut common::DiskStore,
    model: &mut Model,
    step: &Step,
    fresh_id: &str,
    limits: &Limits,
) -> Result<(), TestCaseError> {
    let body = match step {
        Step::Publish { id, text, options } => publish(
            "n",
            id.map(|i| format!("i{i}")).as_deref(),
            &text.to_string(),
            options.as_ref(),
        ),
        Step::Retract(id) => format!(
            "<pubsub {PS}><retract node='n' notify='1'><item id='i{id}'/></retract></pubsub>"
        ),
        Step::Configure(c) => format!(
            "<pubsub {OWNER}><configure node='n'>{}</configure></pubsub>",
            String::from_utf8_lossy(&c.to_submit_form(pep::FORM_NODE_CONFIG).to_bytes())
        ),
        Step::Delete => format!("<pubsub {OWNER}><delete node='n'/></pubsub>"),
        Step::Restart => unreachable!("restarts are not requests"),
    };
    let owner = juliet();
    let el = xml(&body);
    let req = Request {
        owner: &owner,
        requester: Requester::Owner,
        kind: IqKind::Set,
        pubsub: &el,
        fresh_id,
    };
    let (result, notes) = pep::handle(&req, limits).run_on(store);
    // What the model predicts.
    let expect_ok = match (step, model) {
        (Step::Publish { id, text, options }, m) => {
            let id = id.map(|i| format!("i{i}")).unwrap_or(fresh_id.to_string());
            match (m.as_mut(), options) {
                (Some((config, _)), Some(o)) if !o.is_met_by(config) => false,
                (Some((config, items)), _) => {
                    items.retain(|(i, _)| *i != id);
                    items.push((id, text.to_string()));
                    model_trim(config, items);
                    true
                }
                (None, o) => {
                    let o = o.unwrap_or_default();
                    let mut config = o.apply(NodeConfig::default_for(limits));
                    // Private data sends no last item unless asked to (XEP-0223).
                    if o.send_last_item.is_none() && config.access_model == AccessModel::Whitelist {
                        config.send_last_item = SendLastItem::Never;
                    }
                    let mut items = vec![(id, text.to_string())];
                    model_trim(&config, &mut items);
                    *m = Some((config, items));
                    true
                }
            }
        }
        (Step::Retract(id), Some((_, items))) => {
            let id = format!("i{id}");
            let before = items.len();
            items.retain(|(i, _)| *i != id);
            items.len() != before
        }
        (Step::Configure(c), Some((config, items))) => {
            *config = c.apply(*config);
            model_trim(config, items);
            true
        }
        (Step::Delete, m @ Some(_)) => {
            *m = None;
            true
        }
        (_, None) => false,
        (Step::Restart, _) => unreachable!("handled above"),
    };
    prop_assert_eq!(result.is_ok(), expect_ok, "{:?} -> {:?}", step, result);
    if !expect_ok {
        prop_assert!(notes.is_empty());
    }
    Ok(())
}
