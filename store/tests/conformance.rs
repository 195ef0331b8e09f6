//! Runs the store conformance suite against every backend.
//!
//! Every check gets a fresh, empty store and must finish within [`CHECK_TIMEOUT`].

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod conformance {
    pub mod suite;
}

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use conformance::suite;
use tugboat_store::Store;
use tugboat_store::embedded::{EmbeddedConfig, EmbeddedStore};
use tugboat_store::etcd::EtcdStore;

const CHECK_TIMEOUT: Duration = Duration::from_secs(120);

/// A store plus whatever must live as long as it (a temp dir, a spawned etcd).
struct Backend {
    store: Arc<dyn Store>,
    _keep: Box<dyn Any + Send>,
}

async fn memory() -> Option<Backend> {
    Some(Backend {
        store: Arc::new(tugboat_store::memory::memory_store().unwrap()),
        _keep: Box::new(()),
    })
}

async fn embedded() -> Option<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(EmbeddedConfig::new(dir.path().join("store"))).unwrap();
    Some(Backend {
        store: Arc::new(store),
        _keep: Box::new(dir),
    })
}

/// A private etcd on free loopback ports, one per check; `None` (the check skips, saying why)
/// when etcd is not installed outside CI.
async fn etcd() -> Option<Backend> {
    let process = tugboat_testkit::etcd::spawn_etcd().unwrap()?;
    let store = EtcdStore::connect(&[process.endpoint()]).await.unwrap();
    Some(Backend {
        store: Arc::new(store),
        _keep: Box::new(process),
    })
}

macro_rules! conformance {
    ($backend:ident: $($check:ident),* $(,)?) => {
        mod $backend {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    let Some(backend) = super::$backend().await else { return };
                    tokio::time::timeout(CHECK_TIMEOUT, suite::$check(&*backend.store))
                        .await
                        .expect("check timed out");
                }
            )*

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_writers_on_one_key() {
                let Some(backend) = super::$backend().await else { return };
                tokio::time::timeout(CHECK_TIMEOUT, suite::concurrent_writers_on_one_key(backend.store.clone()))
                    .await
                    .expect("check timed out");
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn concurrent_creates_of_one_name() {
                let Some(backend) = super::$backend().await else { return };
                tokio::time::timeout(CHECK_TIMEOUT, suite::concurrent_creates_of_one_name(backend.store.clone()))
                    .await
                    .expect("check timed out");
            }
        }
    };
}

macro_rules! all_checks {
    ($backend:ident) => {
        conformance!($backend:
            create_then_get,
            create_existing_fails,
            update_is_compare_and_swap,
            delete_with_and_without_precondition,
            every_write_takes_one_revision,
            list_by_prefix_in_key_order,
            pagination_reads_one_snapshot_across_writes,
            list_at_an_old_revision,
            compaction_drops_old_revisions,
            watch_from_the_past,
            watch_from_now_sees_only_new_changes,
            watch_from_a_compacted_revision_fails,
            many_watchers_see_the_same_order,
            large_values_up_to_the_limit,
            empty_key_is_invalid,
        );
    };
}

all_checks!(memory);
all_checks!(embedded);
all_checks!(etcd);
