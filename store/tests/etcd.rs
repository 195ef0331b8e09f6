//! The etcd backend against a real etcd: every test spawns its own private etcd (Debian's
//! `etcd`, free loopback ports) and skips when etcd is not installed (fails on CI instead).

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use futures::StreamExt;
use tugboat_store::etcd::{EtcdOptions, EtcdStore};
use tugboat_store::{
    Event, EventKind, KeyValue, ListOptions, MAX_VALUE_BYTES, Revision, Store, StoreError,
    WatchStream,
};
use tugboat_testkit::etcd::{EtcdProcess, etcd_or_skip, spawn_etcd};

/// Bound on a whole test.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on waiting for one watch event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Run a test body with a store connected to a private etcd (whose endpoint it also gets),
/// bounded in time. The etcd lives until the body is done.
async fn with_etcd<F, Fut>(body: F)
where
    F: FnOnce(String, EtcdStore) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let Some(etcd) = spawn_etcd().expect("spawning etcd") else {
        return;
    };
    let store = EtcdStore::connect(&[etcd.endpoint()])
        .await
        .expect("connecting to the fresh etcd");
    tokio::time::timeout(TEST_TIMEOUT, body(etcd.endpoint(), store))
        .await
        .expect("test timed out")
        .expect("test failed");
    drop(etcd);
}

fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

async fn next_event(watch: &mut WatchStream) -> anyhow::Result<Event> {
    let item = tokio::time::timeout(EVENT_TIMEOUT, watch.next())
        .await
        .context("no watch event in time")?
        .context("watch stream ended")?;
    Ok(item?)
}

/// Asserts that the watch yields nothing more for a short while.
async fn assert_quiet(watch: &mut WatchStream) {
    let extra = tokio::time::timeout(Duration::from_millis(300), watch.next()).await;
    assert!(extra.is_err(), "unexpected watch item: {extra:?}");
}

async fn page(
    store: &EtcdStore,
    prefix: &str,
    limit: usize,
    continue_from: Option<String>,
    at_revision: Option<Revision>,
) -> tugboat_store::Result<tugboat_store::ListResult> {
    store
        .list(
            prefix,
            ListOptions {
                limit: Some(limit),
                continue_from,
                at_revision,
            },
        )
        .await
}

fn keys(items: &[KeyValue]) -> Vec<&str> {
    items.iter().map(|kv| kv.key.as_str()).collect()
}

#[tokio::test]
async fn create_then_get_and_create_again_is_already_exists() {
    with_etcd(|_endpoint, store| async move {
        let before = store.current_revision().await?;
        let revision = store.create("/registry/pods/a", bytes("one")).await?;
        assert!(revision > before);
        assert_eq!(store.current_revision().await?, revision);

        let kv = store
            .get("/registry/pods/a")
            .await?
            .context("key missing")?;
        assert_eq!(
            kv,
            KeyValue {
                key: "/registry/pods/a".into(),
                value: bytes("one"),
                create_revision: revision,
                mod_revision: revision,
                version: 1,
            }
        );

        let again = store.create("/registry/pods/a", bytes("two")).await;
        assert!(
            matches!(&again, Err(StoreError::AlreadyExists { key }) if key == "/registry/pods/a"),
            "{again:?}"
        );
        let kv = store
            .get("/registry/pods/a")
            .await?
            .context("key missing")?;
        assert_eq!(kv.value, bytes("one"), "a failed create must not write");
        assert_eq!(store.current_revision().await?, revision);

        assert_eq!(store.get("/registry/pods/missing").await?, None);
        let empty = store.get("").await;
        assert!(matches!(empty, Err(StoreError::Invalid(_))), "{empty:?}");
        let empty = store.create("", bytes("x")).await;
        assert!(matches!(empty, Err(StoreError::Invalid(_))), "{empty:?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn update_is_compare_and_swap_on_mod_revision() {
    with_etcd(|_endpoint, store| async move {
        let created = store.create("/k", bytes("v1")).await?;
        let updated = store.update("/k", bytes("v2"), created).await?;
        assert!(updated > created);
        let kv = store.get("/k").await?.context("key missing")?;
        assert_eq!(
            (kv.value, kv.create_revision, kv.mod_revision, kv.version),
            (bytes("v2"), created, updated, 2)
        );

        let stale = store.update("/k", bytes("v3"), created).await;
        assert!(
            matches!(&stale, Err(StoreError::Conflict { key, current_revision })
                if key == "/k" && *current_revision == updated),
            "{stale:?}"
        );
        let zero = store.update("/k", bytes("v3"), 0).await;
        assert!(
            matches!(&zero, Err(StoreError::Conflict { current_revision, .. }) if *current_revision == updated),
            "{zero:?}"
        );
        assert_eq!(store.get("/k").await?.context("key missing")?.value, bytes("v2"));

        let missing = store.update("/nope", bytes("x"), created).await;
        assert!(
            matches!(&missing, Err(StoreError::NotFound { key }) if key == "/nope"),
            "{missing:?}"
        );
        // A mod revision of 0 must not match (and so create) an absent key.
        let missing_zero = store.update("/nope", bytes("x"), 0).await;
        assert!(matches!(missing_zero, Err(StoreError::NotFound { .. })), "{missing_zero:?}");
        assert_eq!(store.get("/nope").await?, None);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn concurrent_updates_with_one_expected_revision_let_exactly_one_win() {
    with_etcd(|_endpoint, store| async move {
        let created = store.create("/race", bytes("0")).await?;
        let attempts = (0..8).map(|i| {
            let store = store.clone();
            async move { store.update("/race", bytes(&i.to_string()), created).await }
        });
        let outcomes = futures::future::join_all(attempts).await;
        let wins = outcomes.iter().filter(|outcome| outcome.is_ok()).count();
        assert_eq!(wins, 1, "{outcomes:?}");
        assert!(
            outcomes
                .iter()
                .all(|o| o.is_ok() || matches!(o, Err(StoreError::Conflict { .. }))),
            "{outcomes:?}"
        );
        assert_eq!(store.get("/race").await?.context("key missing")?.version, 2);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn delete_with_and_without_expected_revision() {
    with_etcd(|_endpoint, store| async move {
        let created = store.create("/d/1", bytes("one")).await?;
        let updated = store.update("/d/1", bytes("uno"), created).await?;
        let before = store.get("/d/1").await?.context("key missing")?;

        let stale = store.delete("/d/1", Some(created)).await;
        assert!(
            matches!(&stale, Err(StoreError::Conflict { current_revision, .. }) if *current_revision == updated),
            "{stale:?}"
        );
        assert!(store.get("/d/1").await?.is_some(), "a failed delete must not delete");

        let deleted = store.delete("/d/1", Some(updated)).await?;
        assert!(deleted.revision > updated);
        assert_eq!(deleted.prev, before);
        assert_eq!(store.current_revision().await?, deleted.revision);
        assert_eq!(store.get("/d/1").await?, None);

        let again = store.delete("/d/1", None).await;
        assert!(
            matches!(&again, Err(StoreError::NotFound { key }) if key == "/d/1"),
            "{again:?}"
        );
        let again_expected = store.delete("/d/1", Some(updated)).await;
        assert!(matches!(again_expected, Err(StoreError::NotFound { .. })), "{again_expected:?}");

        let second = store.create("/d/2", bytes("two")).await?;
        let deleted = store.delete("/d/2", None).await?;
        assert_eq!(deleted.prev.mod_revision, second);
        assert_eq!(deleted.prev.value, bytes("two"));
        assert_eq!(store.get("/d/2").await?, None);

        let empty = store.delete("", None).await;
        assert!(matches!(empty, Err(StoreError::Invalid(_))), "{empty:?}");
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn list_pages_through_one_snapshot_while_writes_go_on() {
    with_etcd(|_endpoint, store| async move {
        for name in ["a", "b", "c", "d", "e"] {
            store.create(&format!("/p/{name}"), bytes(name)).await?;
        }
        // Neighbours that share a string prefix but are not under "/p/".
        store.create("/p", bytes("parent")).await?;
        store.create("/pa", bytes("sibling")).await?;
        store.create("/q/x", bytes("other")).await?;

        let first = page(&store, "/p/", 2, None, None).await?;
        assert_eq!(keys(&first.items), ["/p/a", "/p/b"]);
        assert_eq!(first.remaining, Some(3));
        let snapshot = first.revision;
        assert_eq!(snapshot, store.current_revision().await?);
        let next = first
            .next_key
            .clone()
            .context("first page has no next key")?;
        assert!(next.starts_with("/p/b"), "{next:?}");

        // Writes between pages must not show in the snapshot.
        let d = store.get("/p/d").await?.context("missing /p/d")?;
        let e = store.get("/p/e").await?.context("missing /p/e")?;
        store.create("/p/bb", bytes("new")).await?;
        store.delete("/p/d", None).await?;
        store
            .update("/p/e", bytes("changed"), e.mod_revision)
            .await?;

        let second = page(&store, "/p/", 2, Some(next), Some(snapshot)).await?;
        assert_eq!(keys(&second.items), ["/p/c", "/p/d"]);
        assert_eq!(second.items[1], d);
        assert_eq!(second.revision, snapshot);
        assert_eq!(second.remaining, Some(1));

        let next = second.next_key.context("second page has no next key")?;
        let third = page(&store, "/p/", 2, Some(next), Some(snapshot)).await?;
        assert_eq!(third.items, [e]);
        assert_eq!(third.next_key, None);
        assert_eq!(third.remaining, Some(0));

        // Now, without a limit: the current state, all in one page.
        let now = store.list("/p/", ListOptions::default()).await?;
        assert_eq!(keys(&now.items), ["/p/a", "/p/b", "/p/bb", "/p/c", "/p/e"]);
        assert_eq!(now.items[4].value, bytes("changed"));
        assert_eq!(now.next_key, None);
        assert_eq!(now.revision, store.current_revision().await?);

        // The empty prefix lists everything; a continue key before the prefix is clamped to it.
        let everything = store.list("", ListOptions::default()).await?;
        assert_eq!(everything.items.len(), 8);
        let clamped = page(&store, "/p/", 10, Some("/a".into()), None).await?;
        assert_eq!(keys(&clamped.items), keys(&now.items));
        let past_the_end = page(&store, "/p/", 10, Some("/p0".into()), None).await?;
        assert_eq!(keys(&past_the_end.items), Vec::<&str>::new());
        assert_eq!(past_the_end.next_key, None);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn list_at_compacted_or_future_revision_fails_with_the_real_revisions() {
    with_etcd(|_endpoint, store| async move {
        let first = store.create("/c/k", bytes("1")).await?;
        let second = store.update("/c/k", bytes("2"), first).await?;
        let third = store.update("/c/k", bytes("3"), second).await?;
        store.compact(second).await?;

        let old = page(&store, "/c/", 10, None, Some(first)).await;
        assert!(
            matches!(old, Err(StoreError::Compacted { compact_revision }) if compact_revision == second),
            "{old:?}"
        );
        let kept = page(&store, "/c/", 10, None, Some(second)).await?;
        assert_eq!(kept.items[0].value, bytes("2"));
        assert_eq!(kept.revision, second);

        // Compacting again at or below the compaction revision is fine.
        store.compact(second).await?;
        store.compact(first).await?;
        store.compact(third).await?;
        let old = page(&store, "/c/", 10, None, Some(second)).await;
        assert!(
            matches!(old, Err(StoreError::Compacted { compact_revision }) if compact_revision == third),
            "{old:?}"
        );

        let future = page(&store, "/c/", 10, None, Some(third + 5)).await;
        assert!(
            matches!(future, Err(StoreError::FutureRevision { requested, current })
                if requested == third + 5 && current == third),
            "{future:?}"
        );
        let compact_future = store.compact(third + 5).await;
        assert!(
            matches!(compact_future, Err(StoreError::FutureRevision { requested, current })
                if requested == third + 5 && current == third),
            "{compact_future:?}"
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn watch_from_the_past_replays_puts_and_deletes_with_prev() {
    with_etcd(|_endpoint, store| async move {
        let start = store.current_revision().await?;
        let created = store.create("/w/a", bytes("1")).await?;
        store.create("/x/outside", bytes("no")).await?;
        let updated = store.update("/w/a", bytes("2"), created).await?;
        let deleted = store.delete("/w/a", None).await?;

        let mut watch = store.watch("/w/", start).await?;
        let put = next_event(&mut watch).await?;
        assert_eq!(put.kind, EventKind::Put);
        assert_eq!(put.revision(), created);
        assert_eq!(put.kv.value, bytes("1"));
        assert_eq!((put.kv.create_revision, put.kv.version), (created, 1));
        assert_eq!(put.prev, None);

        let update = next_event(&mut watch).await?;
        assert_eq!(update.kind, EventKind::Put);
        assert_eq!(update.revision(), updated);
        assert_eq!(update.kv.version, 2);
        assert_eq!(update.prev, Some(put.kv.clone()));

        let delete = next_event(&mut watch).await?;
        assert_eq!(delete.kind, EventKind::Delete);
        assert_eq!(
            delete.kv,
            KeyValue {
                key: "/w/a".into(),
                value: Bytes::new(),
                create_revision: 0,
                mod_revision: deleted.revision,
                version: 0,
            }
        );
        assert_eq!(delete.prev, Some(update.kv.clone()));
        assert_eq!(delete.prev, Some(deleted.prev));
        assert_quiet(&mut watch).await;

        // From the middle of history: only what came after.
        let mut later = store.watch("/w/", created).await?;
        assert_eq!(next_event(&mut later).await?.revision(), updated);
        assert_eq!(next_event(&mut later).await?.revision(), deleted.revision);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn watch_from_now_sees_only_new_changes_in_order() {
    with_etcd(|endpoint, store| async move {
        store.create("/n/old", bytes("old")).await?;
        let now = store.current_revision().await?;
        let mut watch = store.watch("/n/", now).await?;
        assert_quiet(&mut watch).await;

        let mut expected = Vec::new();
        for i in 0..5 {
            expected.push(store.create(&format!("/n/{i}"), bytes("x")).await?);
        }
        for revision in expected {
            let event = next_event(&mut watch).await?;
            assert_eq!(event.revision(), revision);
            assert_eq!(event.kind, EventKind::Put);
        }
        // The empty prefix watches every key.
        let mut everything = store.watch("", store.current_revision().await?).await?;
        let outside = store.create("/elsewhere", bytes("z")).await?;
        assert_eq!(next_event(&mut everything).await?.revision(), outside);
        drop(everything);
        assert_quiet(&mut watch).await;

        // The watch keeps working with nothing else of this store alive.
        drop(store);
        let writer = EtcdStore::connect(&[endpoint]).await?;
        let after = writer.create("/n/after-drop", bytes("y")).await?;
        assert_eq!(next_event(&mut watch).await?.revision(), after);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn watch_from_a_compacted_revision_fails_with_the_compaction_revision() {
    with_etcd(|_endpoint, store| async move {
        let first = store.create("/wc/a", bytes("1")).await?;
        let second = store.update("/wc/a", bytes("2"), first).await?;
        let third = store.update("/wc/a", bytes("3"), second).await?;
        store.compact(third).await?;

        let compacted = store.watch("/wc/", first).await;
        assert!(
            matches!(compacted, Err(StoreError::Compacted { compact_revision }) if compact_revision == third),
            "{:?}",
            compacted.err()
        );
        let from_start = store.watch("/wc/", 0).await;
        assert!(matches!(from_start, Err(StoreError::Compacted { .. })));

        // Starting exactly at the compaction revision is still possible.
        let mut watch = store.watch("/wc/", second).await?;
        let event = next_event(&mut watch).await?;
        assert_eq!(event.revision(), third);
        assert_eq!(event.kv.value, bytes("3"));
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn values_up_to_the_limit_round_trip_and_larger_ones_are_refused() {
    with_etcd(|_endpoint, store| async move {
        let start = store.current_revision().await?;
        let big = Bytes::from(vec![b'x'; MAX_VALUE_BYTES]);
        let created = store.create("/big/a", big.clone()).await?;
        let other = Bytes::from(vec![b'y'; MAX_VALUE_BYTES]);
        store.update("/big/a", other.clone(), created).await?;
        assert_eq!(
            store.get("/big/a").await?.context("key missing")?.value,
            other
        );

        // Two 1.5 MiB events plus a 1.5 MiB prev: more than gRPC's default 4 MiB message.
        let mut watch = store.watch("/big/", start).await?;
        assert_eq!(next_event(&mut watch).await?.kv.value, big);
        let update = next_event(&mut watch).await?;
        assert_eq!(update.kv.value, other);
        assert_eq!(update.prev.context("no prev")?.value, big);
        let listed = store.list("/big/", ListOptions::default()).await?;
        assert_eq!(listed.items[0].value, other);

        let too_big = Bytes::from(vec![b'z'; MAX_VALUE_BYTES + 1]);
        let refused = store.create("/big/b", too_big.clone()).await;
        assert!(
            matches!(refused, Err(StoreError::TooLarge { size, limit })
                if size == MAX_VALUE_BYTES + 1 && limit == MAX_VALUE_BYTES),
            "{refused:?}"
        );
        let refused = store
            .update("/big/a", too_big, store.current_revision().await?)
            .await;
        assert!(
            matches!(refused, Err(StoreError::TooLarge { .. })),
            "{refused:?}"
        );
        assert_eq!(store.get("/big/b").await?, None);
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn lost_connection_gives_unavailable_not_a_hang() {
    let Some(mut etcd) = spawn_etcd().expect("spawning etcd") else {
        return;
    };
    let options = EtcdOptions {
        request_timeout: Duration::from_secs(2),
        read_attempts: 2,
        retry_backoff: Duration::from_millis(50),
        ..EtcdOptions::default()
    };
    let body = async {
        let store = EtcdStore::connect_with(&[etcd.endpoint()], options).await?;
        let created = store.create("/lost/a", bytes("1")).await?;
        let mut watch = store.watch("/lost/", created).await?;

        etcd.kill()?;
        let started = Instant::now();

        let broken = tokio::time::timeout(EVENT_TIMEOUT, watch.next())
            .await
            .context("the watch did not notice the lost connection")?;
        assert!(
            matches!(broken, Some(Err(StoreError::Unavailable { .. }))),
            "{broken:?}"
        );
        assert!(
            watch.next().await.is_none(),
            "the watch must end after its error"
        );

        let get = store.get("/lost/a").await;
        assert!(
            matches!(get, Err(StoreError::Unavailable { .. })),
            "{get:?}"
        );
        let list = store.list("/lost/", ListOptions::default()).await;
        assert!(
            matches!(list, Err(StoreError::Unavailable { .. })),
            "{list:?}"
        );
        let revision = store.current_revision().await;
        assert!(
            matches!(revision, Err(StoreError::Unavailable { .. })),
            "{revision:?}"
        );
        let update = store.update("/lost/a", bytes("2"), created).await;
        assert!(
            matches!(update, Err(StoreError::Unavailable { .. })),
            "{update:?}"
        );
        let watch_again = store.watch("/lost/", created).await;
        assert!(matches!(watch_again, Err(StoreError::Unavailable { .. })));

        let message = get.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(&etcd.endpoint()), "{message}");
        // Each read: two attempts of at most 2 s; far below this bound.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            started.elapsed()
        );
        anyhow::Ok(())
    };
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out")
        .expect("test failed");
}

#[tokio::test]
async fn connecting_to_nothing_is_unavailable_naming_the_endpoint() {
    let port = tugboat_testkit::net::free_port().expect("free port");
    let endpoint = format!("http://127.0.0.1:{port}");
    let options = EtcdOptions {
        connect_timeout: Duration::from_secs(2),
        ..EtcdOptions::default()
    };
    let started = Instant::now();
    let outcome = tokio::time::timeout(
        TEST_TIMEOUT,
        EtcdStore::connect_with(std::slice::from_ref(&endpoint), options),
    )
    .await
    .expect("connect did not give up in time");
    let error = outcome.expect_err("connected to nothing");
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains(&endpoint), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));

    let none = EtcdStore::connect(&[]).await;
    assert!(matches!(none, Err(StoreError::Invalid(_))), "{none:?}");
    let malformed = EtcdStore::connect(&["http://127.0.0.1:bad port".into()]).await;
    assert!(
        matches!(malformed, Err(StoreError::Invalid(_))),
        "{malformed:?}"
    );
}

#[tokio::test]
async fn a_frozen_etcd_gives_unavailable_within_the_timeouts() {
    let Some(etcd) = spawn_etcd().expect("spawning etcd") else {
        return;
    };
    let options = EtcdOptions {
        request_timeout: Duration::from_secs(1),
        read_attempts: 2,
        retry_backoff: Duration::from_millis(50),
        // etcd tolerates pings every 5 s; one unanswered for 1 s marks the connection dead.
        keep_alive_interval: Duration::from_secs(5),
        keep_alive_timeout: Duration::from_secs(1),
        ..EtcdOptions::default()
    };
    let body = async {
        let store = EtcdStore::connect_with(&[etcd.endpoint()], options).await?;
        let created = store.create("/frozen/a", bytes("1")).await?;
        let mut watch = store.watch("/frozen/", created).await?;

        // Nothing answers, yet the connection stays open: only timeouts can tell.
        etcd.pause()?;
        let started = Instant::now();
        let get = store.get("/frozen/a").await;
        assert!(
            matches!(get, Err(StoreError::Unavailable { .. })),
            "{get:?}"
        );
        let update = store.update("/frozen/a", bytes("2"), created).await;
        let message = match update {
            Err(StoreError::Unavailable { message, .. }) => message,
            other => anyhow::bail!("expected Unavailable, got {other:?}"),
        };
        assert!(message.contains("outcome unknown"), "{message}");
        // Two reads of two 1 s attempts, one write of 1 s, with slack for a busy machine.
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{:?}",
            started.elapsed()
        );

        let broken = tokio::time::timeout(Duration::from_secs(20), watch.next())
            .await
            .context("the watch did not notice the frozen server")?;
        assert!(
            matches!(broken, Some(Err(StoreError::Unavailable { .. }))),
            "{broken:?}"
        );

        etcd.resume()?;
        let kv = store.get("/frozen/a").await?.context("key missing")?;
        // The update may have landed once etcd woke up: its outcome was unknown.
        assert!(kv.mod_revision >= created);
        anyhow::Ok(())
    };
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out")
        .expect("test failed");
}

#[tokio::test]
async fn the_store_recovers_when_etcd_comes_back() {
    let Some(mut etcd) = spawn_etcd().expect("spawning etcd") else {
        return;
    };
    let options = EtcdOptions {
        request_timeout: Duration::from_secs(2),
        read_attempts: 2,
        retry_backoff: Duration::from_millis(50),
        ..EtcdOptions::default()
    };
    let body = async {
        let store = EtcdStore::connect_with(&[etcd.endpoint()], options).await?;
        let created = store.create("/again/a", bytes("1")).await?;

        etcd.kill()?;
        let down = store.get("/again/a").await;
        assert!(
            matches!(down, Err(StoreError::Unavailable { .. })),
            "{down:?}"
        );

        etcd.restart()?;
        // The client reconnects on its own; give it a bounded number of tries.
        let mut value = None;
        for _ in 0..50 {
            match store.get("/again/a").await {
                Ok(kv) => {
                    value = kv;
                    break;
                }
                Err(StoreError::Unavailable { .. }) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(other) => return Err(other.into()),
            }
        }
        let kv = value.context("the store did not recover after etcd restarted")?;
        assert_eq!(kv.mod_revision, created, "data survives the restart");
        let updated = store.update("/again/a", bytes("2"), created).await?;
        let mut watch = store.watch("/again/", created).await?;
        assert_eq!(next_event(&mut watch).await?.revision(), updated);
        anyhow::Ok(())
    };
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out")
        .expect("test failed");
}

#[tokio::test]
async fn etcd_refusing_a_request_as_too_large_is_too_large() {
    if etcd_or_skip().is_none() {
        return;
    }
    // An etcd left at a smaller request limit than the store's value limit.
    let etcd = EtcdProcess::builder()
        .max_request_bytes(1024 * 1024)
        .spawn()
        .expect("spawning etcd");
    let body = async {
        let store = EtcdStore::connect(&[etcd.endpoint()]).await?;
        let value = Bytes::from(vec![b'v'; 1024 * 1024 + 1024]);
        let refused = store.create("/limit/a", value.clone()).await;
        assert!(
            matches!(refused, Err(StoreError::TooLarge { size, limit })
                if size == value.len() && limit == MAX_VALUE_BYTES),
            "{refused:?}"
        );
        let created = store.create("/limit/a", bytes("small")).await?;
        let refused = store.update("/limit/a", value, created).await;
        assert!(
            matches!(refused, Err(StoreError::TooLarge { .. })),
            "{refused:?}"
        );
        anyhow::Ok(())
    };
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out")
        .expect("test failed");
}

#[tokio::test]
async fn writes_and_reads_go_on_when_one_member_of_three_is_dead() {
    let Some(mut cluster) =
        tugboat_testkit::etcd::spawn_etcd_cluster(3).expect("spawning the etcd cluster")
    else {
        return;
    };
    let body = async {
        let store = EtcdStore::connect(&cluster.endpoints()).await?;
        store.create("/members/before", bytes("0")).await?;
        // A follower dies: its connection is refused from now on, and the client must send
        // every request to the two members left (a request that never left is safe to resend,
        // even a write).
        let leader = cluster.wait_for_leader(Duration::from_secs(10))?;
        let follower = (leader + 1) % 3;
        cluster.member_mut(follower).kill()?;
        // A request racing the kill may go out on the dying connection; its outcome is unknown,
        // as for any connection lost mid-request. This test is about every request after that.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut failures = Vec::new();
        for n in 0..60 {
            if let Err(error) = store.create(&format!("/members/{n}"), bytes("1")).await {
                failures.push(error.to_string());
            }
            if let Err(error) = store.get("/members/before").await {
                failures.push(error.to_string());
            }
        }
        assert!(
            failures.is_empty(),
            "{} failed: {failures:#?}",
            failures.len()
        );
        let listed = store.list("/members/", ListOptions::default()).await?;
        assert_eq!(listed.items.len(), 61);
        anyhow::Ok(())
    };
    tokio::time::timeout(TEST_TIMEOUT, body)
        .await
        .expect("test timed out")
        .expect("test failed");
}
