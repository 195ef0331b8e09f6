//! The store conformance suite: one set of checks every backend must pass.
//!
//! Each check takes a fresh, empty store. The backends instantiate it in `conformance.rs`.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use tugboat_store::{
    Event, EventKind, ListOptions, MAX_VALUE_BYTES, Revision, Store, StoreError, WatchStream,
};

/// How long a check may wait for one watch event.
const EVENT_WAIT: Duration = Duration::from_secs(10);

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn next_event(watch: &mut WatchStream) -> Event {
    match tokio::time::timeout(EVENT_WAIT, watch.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(Some(Err(err))) => panic!("watch failed: {err}"),
        Ok(None) => panic!("watch ended"),
        Err(_) => panic!("no watch event within {EVENT_WAIT:?}"),
    }
}

async fn expect_quiet(watch: &mut WatchStream) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(300), watch.next()).await {
        panic!("expected no event, got {item:?}");
    }
}

/// A watch from a compacted revision fails either at once or with its first item.
async fn expect_watch_compacted(store: &dyn Store, prefix: &str, after: Revision) {
    match store.watch(prefix, after).await {
        Err(StoreError::Compacted { compact_revision }) => assert!(compact_revision > after),
        Err(other) => panic!("expected Compacted, got {other:?}"),
        Ok(mut watch) => match tokio::time::timeout(EVENT_WAIT, watch.next()).await {
            Ok(Some(Err(StoreError::Compacted { compact_revision }))) => {
                assert!(compact_revision > after)
            }
            other => panic!("expected a Compacted error from the watch, got {other:?}"),
        },
    }
}

pub async fn create_then_get(store: &dyn Store) {
    assert_eq!(store.get("/registry/pods/default/web").await.unwrap(), None);
    let rev = store
        .create("/registry/pods/default/web", b("v1"))
        .await
        .unwrap();
    assert!(rev > 0);
    let kv = store
        .get("/registry/pods/default/web")
        .await
        .unwrap()
        .expect("created key is readable");
    assert_eq!(kv.key, "/registry/pods/default/web");
    assert_eq!(kv.value, b("v1"));
    assert_eq!(kv.create_revision, rev);
    assert_eq!(kv.mod_revision, rev);
    assert_eq!(kv.version, 1);
    assert_eq!(store.current_revision().await.unwrap(), rev);
}

pub async fn create_existing_fails(store: &dyn Store) {
    let rev = store.create("/k", b("a")).await.unwrap();
    match store.create("/k", b("b")).await {
        Err(StoreError::AlreadyExists { key }) => assert_eq!(key, "/k"),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(store.get("/k").await.unwrap().unwrap().value, b("a"));
    assert_eq!(
        store.current_revision().await.unwrap(),
        rev,
        "a failed create takes no revision"
    );
}

pub async fn update_is_compare_and_swap(store: &dyn Store) {
    let created = store.create("/k", b("a")).await.unwrap();
    let updated = store.update("/k", b("b"), created).await.unwrap();
    assert_eq!(updated, created + 1);
    let kv = store.get("/k").await.unwrap().unwrap();
    assert_eq!(
        (kv.value, kv.create_revision, kv.mod_revision, kv.version),
        (b("b"), created, updated, 2)
    );

    match store.update("/k", b("c"), created).await {
        Err(StoreError::Conflict {
            key,
            current_revision,
        }) => {
            assert_eq!(key, "/k");
            assert_eq!(current_revision, updated);
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(store.get("/k").await.unwrap().unwrap().value, b("b"));
    match store.update("/missing", b("x"), 1).await {
        Err(StoreError::NotFound { key }) => assert_eq!(key, "/missing"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(store.current_revision().await.unwrap(), updated);
}

pub async fn delete_with_and_without_precondition(store: &dyn Store) {
    let a = store.create("/a", b("1")).await.unwrap();
    match store.delete("/a", Some(a + 100)).await {
        Err(StoreError::Conflict {
            current_revision, ..
        }) => assert_eq!(current_revision, a),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let deleted = store.delete("/a", Some(a)).await.unwrap();
    assert_eq!(deleted.revision, a + 1);
    assert_eq!(deleted.prev.value, b("1"));
    assert_eq!(deleted.prev.mod_revision, a);
    assert_eq!(store.get("/a").await.unwrap(), None);
    assert!(matches!(
        store.delete("/a", None).await,
        Err(StoreError::NotFound { .. })
    ));

    let again = store.create("/a", b("2")).await.unwrap();
    let kv = store.get("/a").await.unwrap().unwrap();
    assert_eq!(
        (kv.create_revision, kv.version),
        (again, 1),
        "a re-created key starts anew"
    );
    let gone = store.delete("/a", None).await.unwrap();
    assert_eq!(gone.prev.value, b("2"));
}

pub async fn every_write_takes_one_revision(store: &dyn Store) {
    let start = store.current_revision().await.unwrap();
    let r1 = store.create("/x/1", b("a")).await.unwrap();
    let r2 = store.create("/x/2", b("a")).await.unwrap();
    let r3 = store.update("/x/1", b("b"), r1).await.unwrap();
    let _ = store.update("/x/1", b("c"), r1).await.unwrap_err();
    let r4 = store.delete("/x/2", None).await.unwrap().revision;
    assert_eq!(
        vec![r1, r2, r3, r4],
        vec![start + 1, start + 2, start + 3, start + 4]
    );
    assert_eq!(store.current_revision().await.unwrap(), r4);
}

pub async fn list_by_prefix_in_key_order(store: &dyn Store) {
    for key in [
        "/registry/pods/b/2",
        "/registry/pods/a/1",
        "/registry/pods/b/1",
        "/registry/podsx/1",
        "/registry/pod",
    ] {
        store.create(key, b(key)).await.unwrap();
    }
    let list = store
        .list("/registry/pods/", ListOptions::default())
        .await
        .unwrap();
    let keys: Vec<_> = list.items.iter().map(|kv| kv.key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "/registry/pods/a/1",
            "/registry/pods/b/1",
            "/registry/pods/b/2"
        ]
    );
    assert!(list.items.iter().all(|kv| kv.value == b(&kv.key)));
    assert_eq!(list.revision, store.current_revision().await.unwrap());
    assert_eq!(list.next_key, None);

    let empty = store
        .list("/nothing/", ListOptions::default())
        .await
        .unwrap();
    assert!(empty.items.is_empty());
}

pub async fn pagination_reads_one_snapshot_across_writes(store: &dyn Store) {
    let mut revs = Vec::new();
    for i in 0..10 {
        revs.push(store.create(&format!("/p/{i:02}"), b("old")).await.unwrap());
    }
    let first = store
        .list(
            "/p/",
            ListOptions {
                limit: Some(3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let snapshot = first.revision;
    let mut keys: Vec<String> = first.items.iter().map(|kv| kv.key.clone()).collect();
    let mut next = first.next_key.clone().expect("more pages");

    // Writes after the first page must not show in the later pages.
    store.update("/p/07", b("new"), revs[7]).await.unwrap();
    store.delete("/p/05", None).await.unwrap();
    store.create("/p/04a", b("new")).await.unwrap();
    store.create("/p/99", b("new")).await.unwrap();

    loop {
        let page = store
            .list(
                "/p/",
                ListOptions {
                    limit: Some(3),
                    continue_from: Some(next.clone()),
                    at_revision: Some(snapshot),
                },
            )
            .await
            .unwrap();
        assert_eq!(page.revision, snapshot);
        assert!(page.items.len() <= 3);
        assert!(
            page.items.iter().all(|kv| kv.value == b("old")),
            "pages read the snapshot"
        );
        keys.extend(page.items.iter().map(|kv| kv.key.clone()));
        match page.next_key {
            Some(k) => next = k,
            None => break,
        }
    }
    let expected: Vec<String> = (0..10).map(|i| format!("/p/{i:02}")).collect();
    assert_eq!(keys, expected);

    let now = store.list("/p/", ListOptions::default()).await.unwrap();
    let now_keys: Vec<_> = now.items.iter().map(|kv| kv.key.as_str()).collect();
    assert!(
        now_keys.contains(&"/p/04a") && now_keys.contains(&"/p/99") && !now_keys.contains(&"/p/05")
    );
}

pub async fn list_at_an_old_revision(store: &dyn Store) {
    let r1 = store.create("/h/a", b("1")).await.unwrap();
    store.update("/h/a", b("2"), r1).await.unwrap();
    store.create("/h/b", b("1")).await.unwrap();
    let old = store
        .list(
            "/h/",
            ListOptions {
                at_revision: Some(r1),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(old.revision, r1);
    assert_eq!(old.items.len(), 1);
    assert_eq!(old.items[0].value, b("1"));
    assert_eq!(old.items[0].mod_revision, r1);

    let current = store.current_revision().await.unwrap();
    match store
        .list(
            "/h/",
            ListOptions {
                at_revision: Some(current + 10),
                ..Default::default()
            },
        )
        .await
    {
        Err(StoreError::FutureRevision {
            requested,
            current: c,
        }) => {
            assert_eq!((requested, c), (current + 10, current))
        }
        other => panic!("expected FutureRevision, got {other:?}"),
    }
}

pub async fn compaction_drops_old_revisions(store: &dyn Store) {
    let r1 = store.create("/c/a", b("1")).await.unwrap();
    let r2 = store.update("/c/a", b("2"), r1).await.unwrap();
    let r3 = store.create("/c/b", b("1")).await.unwrap();
    let r4 = store.delete("/c/b", None).await.unwrap().revision;
    store.create("/c/c", b("1")).await.unwrap();
    store.compact(r3).await.unwrap();
    // Compacting again, or lower, is harmless.
    store.compact(r2).await.unwrap();

    match store
        .list(
            "/c/",
            ListOptions {
                at_revision: Some(r2),
                ..Default::default()
            },
        )
        .await
    {
        Err(StoreError::Compacted { compact_revision }) => assert!(compact_revision >= r3),
        other => panic!("expected Compacted, got {other:?}"),
    }
    let at_r3 = store
        .list(
            "/c/",
            ListOptions {
                at_revision: Some(r3),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let seen: Vec<_> = at_r3
        .items
        .iter()
        .map(|kv| (kv.key.as_str(), kv.value.clone()))
        .collect();
    assert_eq!(seen, vec![("/c/a", b("2")), ("/c/b", b("1"))]);
    let at_r4 = store
        .list(
            "/c/",
            ListOptions {
                at_revision: Some(r4),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(
        at_r4.items.len(),
        1,
        "the delete is visible after compaction"
    );
    assert_eq!(store.get("/c/a").await.unwrap().unwrap().value, b("2"));

    let current = store.current_revision().await.unwrap();
    assert!(matches!(
        store.compact(current + 5).await,
        Err(StoreError::FutureRevision { .. })
    ));
}

pub async fn watch_from_the_past(store: &dyn Store) {
    let r1 = store.create("/w/a", b("1")).await.unwrap();
    let r2 = store.update("/w/a", b("2"), r1).await.unwrap();
    let r3 = store.create("/w/b", b("1")).await.unwrap();
    store.create("/other/x", b("1")).await.unwrap();
    let r5 = store.delete("/w/a", Some(r2)).await.unwrap().revision;

    let mut watch = store.watch("/w/", r1).await.unwrap();
    let e = next_event(&mut watch).await;
    assert_eq!(
        (e.kind, e.kv.key.as_str(), e.kv.value.clone(), e.revision()),
        (EventKind::Put, "/w/a", b("2"), r2)
    );
    assert_eq!(e.kv.version, 2);
    assert_eq!(e.prev.as_ref().map(|p| p.value.clone()), Some(b("1")));
    let e = next_event(&mut watch).await;
    assert_eq!(
        (e.kind, e.kv.key.as_str(), e.revision()),
        (EventKind::Put, "/w/b", r3)
    );
    assert_eq!(e.prev, None);
    let e = next_event(&mut watch).await;
    assert_eq!(
        (e.kind, e.kv.key.as_str(), e.revision()),
        (EventKind::Delete, "/w/a", r5)
    );
    assert_eq!(
        e.prev.as_ref().map(|p| (p.value.clone(), p.mod_revision)),
        Some((b("2"), r2))
    );

    // Then live events, still in order.
    let r6 = store.create("/w/c", b("1")).await.unwrap();
    let e = next_event(&mut watch).await;
    assert_eq!((e.kv.key.as_str(), e.revision()), ("/w/c", r6));
    expect_quiet(&mut watch).await;
}

pub async fn watch_from_now_sees_only_new_changes(store: &dyn Store) {
    store.create("/n/old", b("1")).await.unwrap();
    let now = store.current_revision().await.unwrap();
    let mut watch = store.watch("/n/", now).await.unwrap();
    expect_quiet(&mut watch).await;
    let r = store.create("/n/new", b("1")).await.unwrap();
    store.create("/elsewhere", b("1")).await.unwrap();
    let e = next_event(&mut watch).await;
    assert_eq!((e.kv.key.as_str(), e.revision()), ("/n/new", r));
    expect_quiet(&mut watch).await;
}

pub async fn watch_from_a_compacted_revision_fails(store: &dyn Store) {
    let r1 = store.create("/z/a", b("1")).await.unwrap();
    let r2 = store.update("/z/a", b("2"), r1).await.unwrap();
    let r3 = store.update("/z/a", b("3"), r2).await.unwrap();
    store.compact(r3).await.unwrap();
    expect_watch_compacted(store, "/z/", r1).await;
    // From the compaction point on, watching works.
    let mut watch = store.watch("/z/", r3).await.unwrap();
    let r4 = store.update("/z/a", b("4"), r3).await.unwrap();
    assert_eq!(next_event(&mut watch).await.revision(), r4);
}

pub async fn many_watchers_see_the_same_order(store: &dyn Store) {
    let start = store.current_revision().await.unwrap();
    let mut watches = Vec::new();
    for _ in 0..20 {
        watches.push(store.watch("/m/", start).await.unwrap());
    }
    let mut written = Vec::new();
    for i in 0..50 {
        written.push(store.create(&format!("/m/{i}"), b("x")).await.unwrap());
    }
    for watch in &mut watches {
        let mut seen = Vec::new();
        for _ in 0..50 {
            seen.push(next_event(watch).await.revision());
        }
        assert_eq!(seen, written);
    }
}

pub async fn concurrent_writers_on_one_key(store: Arc<dyn Store>) {
    let base = store.create("/counter", b("0")).await.unwrap();

    // One round: 100 writers holding the same revision; exactly one wins.
    let mut round = Vec::new();
    for i in 0..100 {
        let store = Arc::clone(&store);
        round.push(tokio::spawn(async move {
            store.update("/counter", b(&format!("w{i}")), base).await
        }));
    }
    let mut winners = 0;
    for task in round {
        match task.await.unwrap() {
            Ok(_) => winners += 1,
            Err(StoreError::Conflict { .. }) => {}
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!(winners, 1);

    // Read-modify-write increments from 100 writers: none lost, one winner per revision.
    let reset = store.get("/counter").await.unwrap().unwrap();
    store
        .update("/counter", b("0"), reset.mod_revision)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut revisions = Vec::new();
            for _ in 0..3 {
                loop {
                    let kv = store.get("/counter").await.unwrap().unwrap();
                    let n: u64 = std::str::from_utf8(&kv.value).unwrap().parse().unwrap();
                    match store
                        .update("/counter", b(&(n + 1).to_string()), kv.mod_revision)
                        .await
                    {
                        Ok(rev) => {
                            revisions.push(rev);
                            break;
                        }
                        Err(StoreError::Conflict { .. }) => continue,
                        Err(other) => panic!("unexpected error {other:?}"),
                    }
                }
            }
            revisions
        }));
    }
    let mut all = BTreeSet::new();
    for task in tasks {
        for rev in task.await.unwrap() {
            assert!(all.insert(rev), "revision {rev} won twice");
        }
    }
    assert_eq!(all.len(), 300);
    let kv = store.get("/counter").await.unwrap().unwrap();
    assert_eq!(kv.value, b("300"));
    assert_eq!(Some(&kv.mod_revision), all.last());
}

pub async fn concurrent_creates_of_one_name(store: Arc<dyn Store>) {
    let mut tasks = Vec::new();
    for i in 0..50 {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            store.create("/once", b(&i.to_string())).await
        }));
    }
    let (mut created, mut exists) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(StoreError::AlreadyExists { .. }) => exists += 1,
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!((created, exists), (1, 49));
}

pub async fn large_values_up_to_the_limit(store: &dyn Store) {
    let big = Bytes::from(vec![b'x'; MAX_VALUE_BYTES]);
    let rev = store.create("/big", big.clone()).await.unwrap();
    assert_eq!(store.get("/big").await.unwrap().unwrap().value, big);
    let bigger = Bytes::from(vec![b'y'; MAX_VALUE_BYTES + 1]);
    match store.update("/big", bigger.clone(), rev).await {
        Err(StoreError::TooLarge { size, limit }) => {
            assert_eq!((size, limit), (MAX_VALUE_BYTES + 1, MAX_VALUE_BYTES))
        }
        other => panic!("expected TooLarge, got {other:?}"),
    }
    assert!(matches!(
        store.create("/bigger", bigger).await,
        Err(StoreError::TooLarge { .. })
    ));
    assert_eq!(store.current_revision().await.unwrap(), rev);
    let list = store.list("/big", ListOptions::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
}

pub async fn empty_key_is_invalid(store: &dyn Store) {
    assert!(matches!(
        store.create("", b("x")).await,
        Err(StoreError::Invalid(_))
    ));
}
