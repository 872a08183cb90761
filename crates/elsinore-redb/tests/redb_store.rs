//! RedbStore against real files in a temporary directory.

use std::path::Path;

use elsinore_redb::{RedbOptions, RedbStore};
use elsinore_storage::{EffectResult, Key, Op, Space, Store, StoreError, StoreLimits};

fn k(name: &str) -> Key {
    Key::new("hamlet@shakespeare.lit", Space::Private, name)
}

fn open(path: &Path) -> RedbStore {
    RedbStore::open(path).expect("open test database")
}

fn get(store: &mut RedbStore, name: &str) -> Option<Vec<u8>> {
    match store.apply(&Op::Get(k(name))) {
        EffectResult::Value(v) => v,
        other => panic!("get failed: {other:?}"),
    }
}

#[test]
fn put_get_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(&dir.path().join("db"));
    assert_eq!(get(&mut s, "a"), None);
    assert_eq!(s.apply(&Op::Put(k("a"), b"1".to_vec())), EffectResult::Done);
    assert_eq!(get(&mut s, "a"), Some(b"1".to_vec()));
    assert_eq!(s.apply(&Op::Put(k("a"), b"2".to_vec())), EffectResult::Done);
    assert_eq!(get(&mut s, "a"), Some(b"2".to_vec()));
    assert_eq!(s.apply(&Op::Delete(k("a"))), EffectResult::Done);
    assert_eq!(s.apply(&Op::Delete(k("a"))), EffectResult::Done);
    assert_eq!(get(&mut s, "a"), None);
    // Keys differing only in account or space are distinct.
    let other_account = Key::new("ophelia@shakespeare.lit", Space::Private, "a");
    let other_space = Key::new("hamlet@shakespeare.lit", Space::Account, "a");
    s.apply(&Op::Put(k("a"), b"mine".to_vec()));
    assert_eq!(s.apply(&Op::Get(other_account)), EffectResult::Value(None));
    assert_eq!(s.apply(&Op::Get(other_space)), EffectResult::Value(None));
}

#[test]
fn batch_results_per_slot_and_read_only_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(&dir.path().join("db"));
    let op = Op::Batch(vec![
        Op::Put(k("a"), b"1".to_vec()),
        Op::Get(k("a")),
        Op::Batch(vec![Op::Delete(k("a")), Op::Get(k("a"))]),
        Op::Put(k("b"), b"2".to_vec()),
    ]);
    assert_eq!(
        s.apply(&op),
        EffectResult::Batch(vec![
            EffectResult::Done,
            EffectResult::Value(Some(b"1".to_vec())),
            EffectResult::Batch(vec![EffectResult::Done, EffectResult::Value(None)]),
            EffectResult::Done,
        ])
    );
    let reads = Op::Batch(vec![Op::Get(k("a")), Op::Get(k("b"))]);
    assert_eq!(
        s.apply(&reads),
        EffectResult::Batch(vec![
            EffectResult::Value(None),
            EffectResult::Value(Some(b"2".to_vec())),
        ])
    );
}

#[test]
fn batch_is_all_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limits = StoreLimits {
        max_value_bytes: 8,
        ..StoreLimits::default()
    };
    let options = RedbOptions {
        limits,
        ..RedbOptions::default()
    };
    let mut s = RedbStore::open_with(&dir.path().join("db"), options).expect("open");
    s.apply(&Op::Put(k("a"), b"old".to_vec()));
    let op = Op::Batch(vec![
        Op::Put(k("a"), b"new".to_vec()),
        Op::Put(k("b"), b"fine".to_vec()),
        Op::Put(k("c"), b"much too large".to_vec()),
    ]);
    assert_eq!(s.apply(&op), EffectResult::Failed(StoreError::TooLarge));
    assert_eq!(get(&mut s, "a"), Some(b"old".to_vec()));
    assert_eq!(get(&mut s, "b"), None);
    assert_eq!(get(&mut s, "c"), None);
}

#[test]
fn data_survives_close_and_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let mut s = open(&path);
        let batch = Op::Batch(vec![
            Op::Put(k("a"), b"alpha".to_vec()),
            Op::Put(k("b"), vec![0, 1, 2, 255]),
            Op::Put(k("gone"), b"x".to_vec()),
        ]);
        assert!(matches!(s.apply(&batch), EffectResult::Batch(_)));
        assert_eq!(s.apply(&Op::Delete(k("gone"))), EffectResult::Done);
    }
    let mut s = open(&path);
    assert_eq!(get(&mut s, "a"), Some(b"alpha".to_vec()));
    assert_eq!(get(&mut s, "b"), Some(vec![0, 1, 2, 255]));
    assert_eq!(get(&mut s, "gone"), None);
}

#[test]
fn second_open_of_the_same_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let _first = open(&path);
    assert!(RedbStore::open(&path).is_err());
}

#[test]
fn group_commit_gives_one_result_per_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let limits = StoreLimits {
        max_value_bytes: 8,
        ..StoreLimits::default()
    };
    let options = RedbOptions {
        limits,
        ..RedbOptions::default()
    };
    {
        let mut s = RedbStore::open_with(&path, options).expect("open");
        let ops = [
            Op::Put(k("a"), b"1".to_vec()),
            Op::Get(k("a")),
            Op::Put(k("big"), b"over the limit".to_vec()),
            Op::Batch(vec![Op::Put(k("b"), b"2".to_vec()), Op::Delete(k("a"))]),
            Op::Get(k("a")),
        ];
        assert_eq!(
            s.apply_many(&ops),
            vec![
                EffectResult::Done,
                EffectResult::Value(Some(b"1".to_vec())),
                EffectResult::Failed(StoreError::TooLarge),
                EffectResult::Batch(vec![EffectResult::Done, EffectResult::Done]),
                EffectResult::Value(None),
            ]
        );
        assert_eq!(s.apply_many(&[]), vec![]);
    }
    // Committed durably as one transaction: visible after reopening.
    let mut s = open(&path);
    assert_eq!(get(&mut s, "a"), None);
    assert_eq!(get(&mut s, "b"), Some(b"2".to_vec()));
    assert_eq!(get(&mut s, "big"), None);
}

#[test]
fn foreign_file_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("not-a-db");
    std::fs::write(
        &path,
        b"this is plainly not a redb database file".repeat(200),
    )
    .expect("write");
    assert!(RedbStore::open(&path).is_err());
    // And the file is left as it was.
    let after = std::fs::read(&path).expect("read");
    assert!(after.starts_with(b"this is plainly"));
}

#[test]
fn damaged_database_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let mut s = open(&path);
        let ops: Vec<Op> = (0..200)
            .map(|i| Op::Put(k(&format!("key{i}")), vec![i as u8; 500]))
            .collect();
        assert!(matches!(s.apply(&Op::Batch(ops)), EffectResult::Batch(_)));
    }
    let mut bytes = std::fs::read(&path).expect("read");
    let len = bytes.len();
    // Damage everything past the header region: every page the data lives in.
    for b in bytes.iter_mut().skip(4096).take(len.saturating_sub(4096)) {
        *b ^= 0x5A;
    }
    std::fs::write(&path, &bytes).expect("write");
    // Both commit slots and every data page are damaged: redb cannot recover a good
    // state, and the checksums on open report it instead of panicking later.
    assert!(matches!(
        RedbStore::open(&path),
        Err(StoreError::Corrupt(_))
    ));
}

#[test]
fn database_of_another_program_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    {
        let db = redb::Database::create(&path).expect("create");
        let txn = db.begin_write().expect("begin");
        {
            let def: redb::TableDefinition<&[u8], &[u8]> =
                redb::TableDefinition::new("elsinore_data");
            let mut t = txn.open_table(def).expect("table");
            t.insert(&b"foreign"[..], &b"row"[..]).expect("insert");
        }
        txn.commit().expect("commit");
    }
    assert!(matches!(
        RedbStore::open(&path),
        Err(StoreError::Corrupt(_))
    ));
}

/// XEP-0049 end to end on a real file: data stored through the private-storage semantics is
/// there, byte for byte, after a restart.
#[test]
fn private_xml_survives_restart() {
    use elsinore_jid::BareJid;
    use elsinore_storage::private::{self, IqKind, Limits};
    use elsinore_xml::Element;

    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("db");
    let hamlet = BareJid::parse("hamlet@shakespeare.lit").expect("valid JID");
    let parse = |s: &str| Element::parse(s.as_bytes()).expect("well-formed");
    let stored = parse(
        "<query xmlns='jabber:iq:private'>\
         <storage xmlns='storage:bookmarks'><conference jid='e@c.lit' name='&lt;Elsinore&gt;'/></storage>\
         <exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick></exodus></query>",
    );
    {
        let mut s = open(&path);
        let set = private::handle(&hamlet, None, IqKind::Set, &stored, &Limits::default());
        assert_eq!(set.run_on(&mut s), Ok(None));
    }
    let mut s = open(&path);
    let get =
        parse("<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>");
    let reply = private::handle(&hamlet, None, IqKind::Get, &get, &Limits::default())
        .run_on(&mut s)
        .expect("get succeeds");
    let want = parse(
        "<query xmlns='jabber:iq:private'>\
         <storage xmlns='storage:bookmarks'><conference jid='e@c.lit' name='&lt;Elsinore&gt;'/></storage></query>",
    );
    assert_eq!(reply, Some(want));
}

mod model {
    use super::*;
    use elsinore_storage::MemoryStore;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Key> {
        (
            0..2usize,
            prop::sample::select(Space::ALL),
            "[ab\u{0}]{0,2}",
        )
            .prop_map(|(account, space, name)| Key::new(["a@x", "b@x"][account], space, name))
    }

    fn simple_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            key().prop_map(Op::Get),
            (key(), prop::collection::vec(any::<u8>(), 0..16)).prop_map(|(k, v)| Op::Put(k, v)),
            key().prop_map(Op::Delete),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => simple_op(),
            1 => prop::collection::vec(simple_op(), 0..4).prop_map(Op::Batch),
        ]
    }

    proptest! {
        // Each case fsyncs every write; keep the count modest.
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// RedbStore gives the same results as MemoryStore for any op sequence, whether the
        /// ops are applied one by one or group-committed, and after a reopen.
        #[test]
        fn redb_matches_memory(ops in prop::collection::vec(op(), 1..12), grouped in any::<bool>()) {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("db");
            let mut memory = MemoryStore::new();
            let want: Vec<EffectResult> = ops.iter().map(|op| memory.apply(op)).collect();
            {
                let mut redb = open(&path);
                let got = if grouped {
                    redb.apply_many(&ops)
                } else {
                    ops.iter().map(|op| redb.apply(op)).collect()
                };
                prop_assert_eq!(got, want);
            }
            let mut redb = open(&path);
            for (key, value) in memory.iter() {
                prop_assert_eq!(
                    redb.apply(&Op::Get(key.clone())),
                    EffectResult::Value(Some(value.to_vec()))
                );
            }
        }
    }
}

#[test]
fn delete_account_removes_every_space_of_that_account_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = open(&dir.path().join("db"));
    let acct = "hamlet@shakespeare.lit";
    // A neighbour whose encoded account shares a byte prefix must survive.
    let near = "hamlet@shakespeare.li";
    let other = "hamlet@shakespeare.lit.example";
    let mut keys = Vec::new();
    for space in Space::ALL {
        for a in [acct, near, other] {
            let key = Key::new(a, *space, "n");
            assert_eq!(
                s.apply(&Op::Put(key.clone(), b"v".to_vec())),
                EffectResult::Done
            );
            keys.push(key);
        }
    }
    let op = Op::Batch(vec![
        Op::DeleteAccount(acct.to_string()),
        Op::Get(Key::new(acct, Space::Roster, "n")),
    ]);
    assert_eq!(
        s.apply(&op),
        EffectResult::Batch(vec![EffectResult::Done, EffectResult::Value(None)])
    );
    for key in keys {
        let want = (key.account != acct).then(|| b"v".to_vec());
        assert_eq!(
            s.apply(&Op::Get(key.clone())),
            EffectResult::Value(want),
            "{key:?}"
        );
    }
    // Deleting an absent account is fine.
    assert_eq!(
        s.apply(&Op::DeleteAccount("nobody@shakespeare.lit".into())),
        EffectResult::Done
    );
}
