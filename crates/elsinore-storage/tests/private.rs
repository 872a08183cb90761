//! XEP-0049 listings and error cases replayed against `private::handle` + `MemoryStore`.

use std::collections::HashMap;

use elsinore_jid::{BareJid, Jid};
use elsinore_storage::private::{self, IqKind, Limits, PrivateAction, PrivateError};
use elsinore_storage::{
    EffectResult, FailingStore, Key, MemoryStore, Op, Space, Store, StoreError, StoreLimits,
};
use elsinore_xml::{Element, Node};
use proptest::prelude::*;

fn hamlet() -> BareJid {
    BareJid::parse("hamlet@shakespeare.lit").expect("valid JID")
}

fn xml(s: &str) -> Element {
    Element::parse(s.as_bytes()).expect("test XML is well-formed")
}

fn query(inner: &str) -> Element {
    xml(&format!("<query xmlns='jabber:iq:private'>{inner}</query>"))
}

/// Run one request for hamlet (no `to`) with default limits against `store`.
fn run(store: &mut impl Store, kind: IqKind, inner: &str) -> Result<Option<Element>, PrivateError> {
    private::handle(&hamlet(), None, kind, &query(inner), &Limits::default()).run_on(store)
}

const EXODUS: &str = "<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus>";

#[test]
fn listing_1_and_2_store_then_retrieve() {
    let mut store = MemoryStore::new();
    // Listing 1: a set is answered with an empty result.
    assert_eq!(run(&mut store, IqKind::Set, EXODUS), Ok(None));
    // Listing 2: the get returns the stored element inside the query.
    let got = run(&mut store, IqKind::Get, "<exodus xmlns='exodus:prefs'/>");
    assert_eq!(got, Ok(Some(query(EXODUS))));
    // Stored under the account's canonical bare JID and the namespace.
    let key = Key::new("hamlet@shakespeare.lit", Space::Private, "exodus:prefs");
    assert!(store.get(&key).is_some());
}

#[test]
fn listing_3_other_users_jid_is_forbidden_for_get_and_set() {
    let mut store = MemoryStore::new();
    let q = query("<exodus xmlns='exodus:prefs'><defaultnick>Macbeth</defaultnick></exodus>");
    for to in [
        "macbeth@shakespeare.lit",
        "macbeth@shakespeare.lit/x",
        "shakespeare.lit",
    ] {
        let to = Jid::parse(to).expect("valid JID");
        for kind in [IqKind::Get, IqKind::Set] {
            let action = private::handle(&hamlet(), Some(&to), kind, &q, &Limits::default());
            assert_eq!(action, PrivateAction::Reply(Err(PrivateError::Forbidden)));
        }
    }
    // Own bare and full JIDs (in any case the JID preparation folds) count as self.
    for to in ["hamlet@shakespeare.lit", "Hamlet@Shakespeare.lit/denmark"] {
        let to = Jid::parse(to).expect("valid JID");
        let action = private::handle(&hamlet(), Some(&to), IqKind::Set, &q, &Limits::default());
        assert_eq!(action.run_on(&mut store), Ok(None));
    }
    assert_eq!(store.len(), 1);
}

#[test]
fn listing_4_query_without_child_is_bad_format() {
    let mut store = MemoryStore::new();
    for kind in [IqKind::Set, IqKind::Get] {
        assert_eq!(run(&mut store, kind, ""), Err(PrivateError::BadFormat));
        assert_eq!(
            run(&mut store, kind, "\n  \t"),
            Err(PrivateError::BadFormat)
        );
    }
    assert!(store.is_empty());
    let e = PrivateError::BadFormat;
    assert_eq!(
        (e.condition(), e.error_type(), e.legacy_code()),
        ("not-acceptable", "modify", 406)
    );
}

#[test]
fn listing_5_reserved_namespaces_are_not_acceptable() {
    let mut store = MemoryStore::new();
    for child in [
        "<vCard xmlns='vcard-temp'><FN>Hamlet</FN></vCard>",
        "<query xmlns='jabber:iq:roster'/>",
        "<query xmlns='jabber:iq:private'/>",
        "<x xmlns='http://jabber.org/protocol/muc'/>",
    ] {
        for kind in [IqKind::Set, IqKind::Get] {
            assert_eq!(
                run(&mut store, kind, child),
                Err(PrivateError::NotAcceptable),
                "{child}"
            );
        }
    }
    // One reserved child spoils the whole set: nothing is stored.
    let mixed = format!("{EXODUS}<vCard xmlns='vcard-temp'/>");
    assert_eq!(
        run(&mut store, IqKind::Set, &mixed),
        Err(PrivateError::NotAcceptable)
    );
    assert!(store.is_empty());
    // Namespaces real clients use are not reserved.
    for ns in [
        "storage:bookmarks",
        "storage:rosternotes",
        "exodus:prefs",
        "jabberd:x",
        "urn:xmpp:x",
    ] {
        assert!(!private::is_reserved(ns), "{ns}");
        let child = format!("<storage xmlns='{ns}'/>");
        assert_eq!(run(&mut store, IqKind::Set, &child), Ok(None));
    }
}

#[test]
fn several_namespaces_in_one_set_are_one_batch_and_kept_apart() {
    let mut store = MemoryStore::new();
    let bookmarks = "<storage xmlns='storage:bookmarks'><conference jid='elsinore@conference.shakespeare.lit' autojoin='true'/></storage>";
    let q = query(&format!("{EXODUS}{bookmarks}"));
    let action = private::handle(&hamlet(), None, IqKind::Set, &q, &Limits::default());
    match &action {
        PrivateAction::Run {
            ops: Op::Batch(ops),
            ..
        } => assert_eq!(ops.len(), 2),
        other => panic!("expected one batch, got {other:?}"),
    }
    assert_eq!(action.run_on(&mut store), Ok(None));
    assert_eq!(
        run(&mut store, IqKind::Get, "<exodus xmlns='exodus:prefs'/>"),
        Ok(Some(query(EXODUS)))
    );
    assert_eq!(
        run(
            &mut store,
            IqKind::Get,
            "<storage xmlns='storage:bookmarks'/>"
        ),
        Ok(Some(query(bookmarks)))
    );
}

#[test]
fn a_set_replaces_what_its_namespace_held_and_nothing_else() {
    let mut store = MemoryStore::new();
    let notes1 = "<storage xmlns='storage:rosternotes'><note jid='a@b'>one</note></storage>";
    let notes2 = "<storage xmlns='storage:rosternotes'><note jid='c@d'>two</note></storage>";
    assert_eq!(run(&mut store, IqKind::Set, EXODUS), Ok(None));
    assert_eq!(run(&mut store, IqKind::Set, notes1), Ok(None));
    assert_eq!(run(&mut store, IqKind::Set, notes2), Ok(None));
    let get = "<storage xmlns='storage:rosternotes'/>";
    assert_eq!(run(&mut store, IqKind::Get, get), Ok(Some(query(notes2))));
    assert_eq!(
        run(&mut store, IqKind::Get, "<exodus xmlns='exodus:prefs'/>"),
        Ok(Some(query(EXODUS)))
    );
}

#[test]
fn several_elements_of_one_namespace_are_kept_in_order() {
    let mut store = MemoryStore::new();
    let three = "<a xmlns='x:y'>1</a><b xmlns='x:y'/><a xmlns='x:y'>3</a>";
    let action = private::handle(
        &hamlet(),
        None,
        IqKind::Set,
        &query(three),
        &Limits::default(),
    );
    // One namespace: a single put, not a batch.
    assert!(matches!(
        action,
        PrivateAction::Run {
            ops: Op::Put(..),
            ..
        }
    ));
    assert_eq!(action.run_on(&mut store), Ok(None));
    // Any element name of the namespace retrieves all of it.
    assert_eq!(
        run(&mut store, IqKind::Get, "<b xmlns='x:y'/>"),
        Ok(Some(query(three)))
    );
    // A get may name several elements as long as they share one namespace.
    assert_eq!(
        run(&mut store, IqKind::Get, "<a xmlns='x:y'/><b xmlns='x:y'/>"),
        Ok(Some(query(three)))
    );
}

#[test]
fn get_of_nothing_stored_echoes_the_requested_child() {
    let mut store = MemoryStore::new();
    let req = "<storage xmlns='storage:bookmarks'/>";
    assert_eq!(run(&mut store, IqKind::Get, req), Ok(Some(query(req))));
}

#[test]
fn empty_element_is_stored_as_given() {
    let mut store = MemoryStore::new();
    assert_eq!(
        run(
            &mut store,
            IqKind::Set,
            "<storage xmlns='storage:bookmarks' v='1'/>"
        ),
        Ok(None)
    );
    assert_eq!(
        run(
            &mut store,
            IqKind::Get,
            "<other xmlns='storage:bookmarks'/>"
        ),
        Ok(Some(query("<storage xmlns='storage:bookmarks' v='1'/>")))
    );
}

#[test]
fn get_naming_two_namespaces_is_not_acceptable() {
    let mut store = MemoryStore::new();
    let two = "<exodus xmlns='exodus:prefs'/><storage xmlns='storage:bookmarks'/>";
    assert_eq!(
        run(&mut store, IqKind::Get, two),
        Err(PrivateError::NotAcceptable)
    );
}

#[test]
fn malformed_queries() {
    let mut store = MemoryStore::new();
    // A child in no namespace.
    assert_eq!(
        run(&mut store, IqKind::Set, "<prefs/>"),
        Err(PrivateError::NotAcceptable)
    );
    assert_eq!(
        run(&mut store, IqKind::Get, "<prefs xmlns=''/>"),
        Err(PrivateError::NotAcceptable)
    );
    // Text where the schema allows only elements.
    assert_eq!(
        run(&mut store, IqKind::Set, &format!("hello{EXODUS}")),
        Err(PrivateError::BadRequest)
    );
    // Not a jabber:iq:private query at all.
    let wrong = xml("<query xmlns='jabber:iq:roster'><item xmlns='a:b'/></query>");
    let action = private::handle(&hamlet(), None, IqKind::Get, &wrong, &Limits::default());
    assert_eq!(action, PrivateAction::Reply(Err(PrivateError::BadRequest)));
    assert!(store.is_empty());
}

#[test]
fn escaping_and_namespaces_survive_the_round_trip() {
    let mut store = MemoryStore::new();
    let tricky = r#"<prefs xmlns='my:prefs' xmlns:o='other:ns' note='a "quoted" &apos;x&apos; &lt;&amp;&gt;' xml:lang='da'><o:nick o:kind='&amp;'>Ham&lt;let&gt; &amp; ]]&gt; ünïcødé</o:nick><plain xmlns=''>bare</plain>text &#x9;tail</prefs>"#;
    assert_eq!(run(&mut store, IqKind::Set, tricky), Ok(None));
    let got = run(&mut store, IqKind::Get, "<prefs xmlns='my:prefs'/>")
        .expect("get succeeds")
        .expect("get has a payload");
    assert_eq!(got, query(tricky));
    let prefs = got.get_child("prefs", "my:prefs").expect("stored element");
    assert_eq!(prefs.lang(), Some("da"));
    assert_eq!(prefs.attr("note"), Some("a \"quoted\" 'x' <&>"));
    let nick = prefs
        .get_child("nick", "other:ns")
        .expect("nested namespace kept");
    assert_eq!(nick.text(), "Ham<let> & ]]> ünïcødé");
    assert_eq!(nick.attr_ns("other:ns", "kind"), Some("&"));
    assert!(prefs.get_child("plain", "").is_some());
}

#[test]
fn store_failure_is_internal_server_error_and_writes_nothing() {
    let mut store = FailingStore::every(MemoryStore::new(), 0);
    assert_eq!(run(&mut store, IqKind::Set, EXODUS), Ok(None));
    let before: Vec<_> = store
        .inner()
        .iter()
        .map(|(k, v)| (k.clone(), v.to_vec()))
        .collect();
    store.set_fail_all(true);
    let two = "<exodus xmlns='exodus:prefs'>new</exodus><storage xmlns='storage:bookmarks'/>";
    assert_eq!(
        run(&mut store, IqKind::Set, two),
        Err(PrivateError::InternalServerError)
    );
    assert_eq!(
        run(&mut store, IqKind::Get, "<exodus xmlns='exodus:prefs'/>"),
        Err(PrivateError::InternalServerError)
    );
    let after: Vec<_> = store
        .inner()
        .iter()
        .map(|(k, v)| (k.clone(), v.to_vec()))
        .collect();
    assert_eq!(before, after);
}

#[test]
fn failure_inside_the_batch_rolls_back_the_other_namespaces() {
    // Room for exactly two entries: the third namespace of the set fails inside the batch.
    let mut store = MemoryStore::with_limits(StoreLimits::default(), 2, usize::MAX);
    assert_eq!(run(&mut store, IqKind::Set, EXODUS), Ok(None));
    let three = "<exodus xmlns='exodus:prefs'>changed</exodus><a xmlns='a:a'/><b xmlns='b:b'/>";
    assert_eq!(
        run(&mut store, IqKind::Set, three),
        Err(PrivateError::InternalServerError)
    );
    assert_eq!(store.len(), 1);
    assert_eq!(
        run(&mut store, IqKind::Get, "<exodus xmlns='exodus:prefs'/>"),
        Ok(Some(query(EXODUS)))
    );
}

#[test]
fn limits_give_resource_constraint_before_any_write() {
    let mut store = MemoryStore::new();
    let limits = Limits {
        max_bytes_per_namespace: 200,
        max_namespaces_per_set: 2,
        max_namespace_bytes: 20,
    };
    let mut go = |kind, inner: &str| {
        private::handle(&hamlet(), None, kind, &query(inner), &limits).run_on(&mut store)
    };
    let big = format!("<p xmlns='a:b'>{}</p>", "x".repeat(300));
    assert_eq!(go(IqKind::Set, &big), Err(PrivateError::ResourceConstraint));
    let many = "<a xmlns='a:a'/><b xmlns='b:b'/><c xmlns='c:c'/>";
    assert_eq!(go(IqKind::Set, many), Err(PrivateError::ResourceConstraint));
    let long_ns = format!("<a xmlns='urn:{}'/>", "n".repeat(30));
    assert_eq!(
        go(IqKind::Set, &long_ns),
        Err(PrivateError::ResourceConstraint)
    );
    assert_eq!(
        go(IqKind::Set, "<a xmlns='a:a'/><b xmlns='b:b'/>"),
        Ok(None)
    );
    assert_eq!(store.len(), 2);
}

#[test]
fn unreadable_or_mismatched_results_are_internal_server_error() {
    let get = private::handle(
        &hamlet(),
        None,
        IqKind::Get,
        &query("<exodus xmlns='exodus:prefs'/>"),
        &Limits::default(),
    );
    let PrivateAction::Run { pending, .. } = get else {
        panic!("get needs the store");
    };
    for bad in [
        EffectResult::Value(Some(b"<not-xml".to_vec())),
        EffectResult::Value(Some(b"<other xmlns='x:y'/>".to_vec())),
        EffectResult::Done,
        EffectResult::Failed(StoreError::Corrupt("bad page".into())),
    ] {
        assert_eq!(
            pending.clone().complete(bad),
            Err(PrivateError::InternalServerError)
        );
    }
    let set = private::handle(
        &hamlet(),
        None,
        IqKind::Set,
        &query(EXODUS),
        &Limits::default(),
    );
    let PrivateAction::Run { pending, .. } = set else {
        panic!("set needs the store");
    };
    for bad in [
        EffectResult::Value(None),
        EffectResult::Batch(vec![]),
        EffectResult::Failed(StoreError::Unavailable("down".into())),
    ] {
        assert_eq!(
            pending.clone().complete(bad),
            Err(PrivateError::InternalServerError)
        );
    }
    assert_eq!(pending.complete(EffectResult::Done), Ok(None));
}

#[test]
fn accounts_are_kept_apart() {
    let mut store = MemoryStore::new();
    assert_eq!(run(&mut store, IqKind::Set, EXODUS), Ok(None));
    let ophelia = BareJid::parse("ophelia@shakespeare.lit").expect("valid JID");
    let q = query("<exodus xmlns='exodus:prefs'/>");
    let got =
        private::handle(&ophelia, None, IqKind::Get, &q, &Limits::default()).run_on(&mut store);
    assert_eq!(got, Ok(Some(q)));
}

// Model test: any sequence of sets and gets over a few namespaces, with injected store
// failures, behaves like a map from namespace to element list.

const NAMESPACES: [&str; 3] = ["storage:bookmarks", "exodus:prefs", "a:b"];

#[derive(Debug, Clone)]
enum Step {
    /// (namespace index, element name index, text) per child.
    Set(Vec<(usize, usize, String)>),
    Get(usize),
}

fn step() -> impl Strategy<Value = Step> {
    let child = (0..NAMESPACES.len(), 0..2usize, "[a-z<&>'\" ]{0,4}");
    prop_oneof![
        prop::collection::vec(child, 1..5).prop_map(Step::Set),
        (0..NAMESPACES.len()).prop_map(Step::Get),
    ]
}

fn element(ns: usize, name: usize, text: &str) -> Element {
    let e = Element::new(["storage", "item"][name], NAMESPACES[ns]);
    if text.is_empty() {
        e
    } else {
        e.with_text(text)
    }
}

proptest! {
    #[test]
    fn matches_a_hashmap_model(steps in prop::collection::vec(step(), 1..25), fail_every in 0u64..5) {
        let mut store = FailingStore::every(MemoryStore::new(), fail_every);
        let mut model: HashMap<&str, Vec<Element>> = HashMap::new();
        for step in steps {
            match step {
                Step::Set(children) => {
                    let mut q = Element::new("query", private::NS);
                    let mut groups: Vec<(&str, Vec<Element>)> = Vec::new();
                    for (ns, name, text) in &children {
                        let e = element(*ns, *name, text);
                        q.children.push(Node::Element(e.clone()));
                        match groups.iter_mut().find(|(g, _)| *g == NAMESPACES[*ns]) {
                            Some((_, v)) => v.push(e),
                            None => groups.push((NAMESPACES[*ns], vec![e])),
                        }
                    }
                    let calls = store.calls();
                    let got = private::handle(&hamlet(), None, IqKind::Set, &q, &Limits::default())
                        .run_on(&mut store);
                    let fails = fail_every != 0 && (calls + 1) % fail_every == 0;
                    if fails {
                        prop_assert_eq!(got, Err(PrivateError::InternalServerError));
                    } else {
                        prop_assert_eq!(got, Ok(None));
                        model.extend(groups);
                    }
                }
                Step::Get(ns) => {
                    let requested = Element::new("storage", NAMESPACES[ns]);
                    let q = Element::new("query", private::NS).with_child(requested.clone());
                    let calls = store.calls();
                    let got = private::handle(&hamlet(), None, IqKind::Get, &q, &Limits::default())
                        .run_on(&mut store);
                    let fails = fail_every != 0 && (calls + 1) % fail_every == 0;
                    if fails {
                        prop_assert_eq!(got, Err(PrivateError::InternalServerError));
                    } else {
                        let stored = model.get(NAMESPACES[ns]).cloned().unwrap_or_else(|| vec![requested]);
                        let mut want = Element::new("query", private::NS);
                        want.children = stored.into_iter().map(Node::Element).collect();
                        prop_assert_eq!(got, Ok(Some(want)));
                    }
                }
            }
        }
    }
}
