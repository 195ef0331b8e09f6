//! The StatefulSet controller: pods with stable names `<set>-<ordinal>` and host names under
//! the governing Service, created and removed in order (or in parallel), rolled out from the
//! highest ordinal down to the partition, a PersistentVolumeClaim per pod and claim template,
//! and the ControllerRevision history kubectl's `rollout history|undo` reads (upstream's
//! `pkg/controller/statefulset`).
//!
//! `mod.rs` wires informers to the queue; `sync.rs` converges one StatefulSet; `decide.rs` is
//! the pure decision.

pub mod decide;
mod sync;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::framework::ownership::cached_controller;
use crate::framework::runner::run_workers;
use crate::framework::{Change, Expectations, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Settings of the StatefulSet controller.
#[derive(Debug, Clone)]
pub struct StatefulSetConfig {
    /// Concurrent syncs (upstream `--concurrent-statefulset-syncs`, default 5).
    pub workers: usize,
}

impl Default for StatefulSetConfig {
    fn default() -> Self {
        Self { workers: 5 }
    }
}

/// See the module documentation.
pub struct StatefulSetController {
    client: Client,
    sets: Store<StatefulSet>,
    pods: Store<Pod>,
    revisions: Store<ControllerRevision>,
    queue: WorkQueue<ObjectKey>,
    expectations: Expectations,
    config: StatefulSetConfig,
}

/// Runs the StatefulSet controller, with informers of its own, until `cancel` fires.
pub async fn run(
    client: Client,
    config: StatefulSetConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the StatefulSet controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: StatefulSetConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let set_informer = informers.informer::<StatefulSet>();
    let pod_informer = informers.informer::<Pod>();
    let revision_informer = informers.informer::<ControllerRevision>();
    let controller = StatefulSetController {
        client: informers.client().clone(),
        sets: set_informer.store(),
        pods: pod_informer.store(),
        revisions: revision_informer.store(),
        queue: WorkQueue::default(),
        expectations: Expectations::default(),
        config,
    };
    let workers = async {
        controller.wait_for_caches(&cancel).await?;
        info!("statefulset controller caches synced; starting workers");
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
        set_informer.run(|change| controller.on_set_change(change), &cancel),
        pod_informer.run(|change| controller.on_pod_change(change), &cancel),
    );
    controller.queue.shut_down();
    result
}

impl StatefulSetController {
    /// A controller over hand-filled caches, for sync tests.
    #[cfg(test)]
    pub(crate) fn with_caches(
        client: Client,
        sets: Store<StatefulSet>,
        pods: Store<Pod>,
        revisions: Store<ControllerRevision>,
    ) -> Self {
        Self {
            client,
            sets,
            pods,
            revisions,
            queue: WorkQueue::default(),
            expectations: Expectations::default(),
            config: StatefulSetConfig::default(),
        }
    }

    async fn wait_for_caches(&self, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            () = cancel.cancelled() => Err(Error::CacheNotSynced("statefulset")),
            ready = async {
                self.sets.wait_until_ready().await?;
                self.pods.wait_until_ready().await?;
                self.revisions.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced("statefulset")),
        }
    }

    fn on_set_change(&self, change: Change<StatefulSet>) {
        let key = ObjectKey::of(change.object().as_ref());
        if let Change::Deleted(_) = change {
            self.expectations.delete(&key.to_string());
        }
        self.queue.add(key);
    }

    fn on_pod_change(&self, change: Change<Pod>) {
        if let Some(owner) = self.controlling_set(change.object())
            && self
                .expectations
                .observe_pod_change(&owner.to_string(), &change)
        {
            self.queue.add(owner);
        }
    }

    fn controlling_set(&self, pod: &Pod) -> Option<ObjectKey> {
        cached_controller(&self.sets, &pod.metadata)
    }

    fn cached_set(&self, key: &ObjectKey) -> Option<Arc<StatefulSet>> {
        self.sets
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }
}
