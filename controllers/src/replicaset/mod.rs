//! The ReplicaSet controller: keeps `spec.replicas` pods matching each ReplicaSet running,
//! adopting orphans and releasing pods that stop matching (upstream's `pkg/controller/replicaset`).
//! The same controller runs for ReplicationControllers ([`owner`]).
//!
//! `mod.rs` wires informers to the queue; `sync.rs` converges one ReplicaSet; `pods.rs` and
//! `status.rs` are the pure decisions.

pub mod owner;
pub mod pods;
pub mod status;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;
use tracing::info;
use tugboat_api::selector::Selector;

use crate::framework::ownership::{cached_controller, controller_of};
use crate::framework::runner::run_workers;
use crate::framework::{Change, Expectations, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

pub use owner::ReplicaOwner;

/// Settings of the ReplicaSet controller.
#[derive(Debug, Clone)]
pub struct ReplicaSetConfig {
    /// Concurrent syncs (upstream `--concurrent-replicaset-syncs`, default 5).
    pub workers: usize,
    /// At most this many creations or deletions per sync (upstream `BurstReplicas`).
    pub burst_replicas: usize,
}

impl Default for ReplicaSetConfig {
    fn default() -> Self {
        Self {
            workers: 5,
            burst_replicas: 500,
        }
    }
}

/// See the module documentation; `K` is ReplicaSet or ReplicationController.
pub struct ReplicaSetController<K: ReplicaOwner = ReplicaSet> {
    client: Client,
    replica_sets: Store<K>,
    pods: Store<Pod>,
    queue: WorkQueue<ObjectKey>,
    expectations: Expectations,
    config: ReplicaSetConfig,
}

/// Runs the ReplicaSet controller until `cancel` fires.
pub async fn run(
    client: Client,
    config: ReplicaSetConfig,
    cancel: CancellationToken,
) -> Result<()> {
    run_for::<ReplicaSet>(client, config, cancel).await
}

/// Runs the replica controller for `K` (ReplicaSet or ReplicationController), with informers
/// of its own, until `cancel` fires.
pub async fn run_for<K: ReplicaOwner>(
    client: Client,
    config: ReplicaSetConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with::<K>(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the replica controller for `K` on `informers` (shared with the other controllers of
/// the process) until `cancel` fires.
pub async fn run_with<K: ReplicaOwner>(
    informers: &SharedInformers,
    config: ReplicaSetConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let rs_informer = informers.informer::<K>();
    let pod_informer = informers.informer::<Pod>();
    let controller = ReplicaSetController::new(
        informers.client().clone(),
        rs_informer.store(),
        pod_informer.store(),
        config,
    );
    let workers = async {
        controller.wait_for_caches(&cancel).await?;
        info!(
            controller = K::CONTROLLER,
            "caches synced; starting workers"
        );
        run_workers(
            &controller,
            &controller.queue,
            controller.config.workers,
            &cancel,
        )
        .await;
        Ok::<_, Error>(())
    };
    let (result, (), ()) = tokio::join!(
        workers,
        rs_informer.run(|change| controller.on_replica_set_change(change), &cancel),
        pod_informer.run(|change| controller.on_pod_change(change), &cancel),
    );
    controller.queue.shut_down();
    result
}

impl<K: ReplicaOwner> ReplicaSetController<K> {
    /// A controller reading the given caches and writing through `client`.
    pub fn new(
        client: Client,
        replica_sets: Store<K>,
        pods: Store<Pod>,
        config: ReplicaSetConfig,
    ) -> Self {
        Self {
            client,
            replica_sets,
            pods,
            queue: WorkQueue::default(),
            expectations: Expectations::default(),
            config,
        }
    }

    /// The controller's work queue (tests drive syncs through it).
    pub fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }

    async fn wait_for_caches(&self, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            () = cancel.cancelled() => Err(Error::CacheNotSynced(K::CONTROLLER)),
            ready = async {
                self.replica_sets.wait_until_ready().await?;
                self.pods.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced(K::CONTROLLER)),
        }
    }

    fn on_replica_set_change(&self, change: Change<K>) {
        match change {
            Change::Added(rs) | Change::Updated { new: rs, .. } => {
                self.queue.add(ObjectKey::of(rs.as_ref()))
            }
            Change::Deleted(rs) => {
                let key = ObjectKey::of(rs.as_ref());
                self.expectations.delete(&key.to_string());
                self.queue.add(key);
            }
        }
    }

    fn on_pod_change(&self, change: Change<Pod>) {
        match change {
            Change::Added(pod) => {
                if pod.metadata.deletion_timestamp.is_some() {
                    // Already being deleted (e.g. seen first on a relist): a deletion to count.
                    self.on_pod_deleted(&pod);
                } else if let Some(owner) = self.controlling_replica_set(&pod) {
                    self.expectations.creation_observed(&owner.to_string());
                    self.queue.add(owner);
                } else {
                    self.enqueue_possible_adopters(&pod);
                }
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let labels_changed = old.metadata.labels != new.metadata.labels;
                if new.metadata.deletion_timestamp.is_some() {
                    // Graceful deletion: the pod stops counting now, as upstream treats it.
                    self.on_pod_deleted(&new);
                    if labels_changed {
                        self.on_pod_deleted(&old);
                    }
                    return;
                }
                let owner_changed = controller_of(&old.metadata).map(|r| &r.uid)
                    != controller_of(&new.metadata).map(|r| &r.uid);
                if owner_changed && let Some(previous) = self.controlling_replica_set(&old) {
                    self.queue.add(previous);
                }
                if let Some(owner) = self.controlling_replica_set(&new) {
                    let became_ready = !pods::is_ready(&old) && pods::is_ready(&new);
                    let min_ready_seconds = self.min_ready_seconds(&owner);
                    self.queue.add(owner.clone());
                    if became_ready && min_ready_seconds > 0 {
                        // Look again when the pod turns available; no event will say so.
                        let delay =
                            Duration::from_secs(u64::from(min_ready_seconds.unsigned_abs()) + 1);
                        self.queue.add_after(owner, delay);
                    }
                    return;
                }
                if labels_changed || owner_changed {
                    self.enqueue_possible_adopters(&new);
                }
            }
            Change::Deleted(pod) => self.on_pod_deleted(&pod),
        }
    }

    fn on_pod_deleted(&self, pod: &Pod) {
        if let Some(owner) = self.controlling_replica_set(pod) {
            self.expectations
                .deletion_observed(&owner.to_string(), &ObjectKey::of(pod).to_string());
            self.queue.add(owner);
        }
    }

    /// The ReplicaSet the pod's controller reference points at, if it is in the cache with
    /// the same UID.
    fn controlling_replica_set(&self, pod: &Pod) -> Option<ObjectKey> {
        cached_controller(&self.replica_sets, &pod.metadata)
    }

    /// Every ReplicaSet whose selector matches an orphan pod: one of them may adopt it.
    fn enqueue_possible_adopters(&self, pod: &Pod) {
        let namespace = pod.metadata.namespace.as_deref();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for owner in self.replica_sets.state() {
            let rs = owner.to_replica_set();
            if rs.metadata.namespace.as_deref() != namespace {
                continue;
            }
            let selector = rs.spec.as_ref().map(|s| &s.selector);
            let Ok(selector) = Selector::from_label_selector(selector) else {
                continue;
            };
            // An empty selector would match every pod; upstream skips those too.
            if !selector.is_everything() && selector.matches(&labels) {
                self.queue.add(ObjectKey::of(owner.as_ref()));
            }
        }
    }

    fn min_ready_seconds(&self, key: &ObjectKey) -> i32 {
        self.replica_sets
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
            .and_then(|owner| owner.to_replica_set().spec?.min_ready_seconds)
            .unwrap_or(0)
    }

    fn cached_replica_set(&self, key: &ObjectKey) -> Option<Arc<K>> {
        self.replica_sets
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }
}
