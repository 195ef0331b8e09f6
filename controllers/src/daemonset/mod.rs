//! The DaemonSet controller: one pod on every eligible node (nodeSelector, required node
//! affinity, taints against the tolerations upstream gives daemons), rolling updates with
//! maxUnavailable or maxSurge, OnDelete, and the ControllerRevision history that
//! `kubectl rollout history|undo daemonset` reads (upstream's `pkg/controller/daemon`).
//!
//! `mod.rs` wires informers to the queue; `sync.rs` converges one DaemonSet; `decide.rs` is
//! the pure decision; the history is `framework::history`.

pub mod decide;
mod sync;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::framework::ownership::cached_controller;
use crate::framework::runner::run_workers;
use crate::framework::{Change, Expectations, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Settings of the DaemonSet controller.
#[derive(Debug, Clone)]
pub struct DaemonSetConfig {
    /// Concurrent syncs (upstream `--concurrent-daemonset-syncs`, default 2).
    pub workers: usize,
}

impl Default for DaemonSetConfig {
    fn default() -> Self {
        Self { workers: 2 }
    }
}

/// See the module documentation.
pub struct DaemonSetController {
    client: Client,
    daemon_sets: Store<DaemonSet>,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    queue: WorkQueue<ObjectKey>,
    expectations: Expectations,
    config: DaemonSetConfig,
}

/// Runs the DaemonSet controller, with informers of its own, until `cancel` fires.
pub async fn run(client: Client, config: DaemonSetConfig, cancel: CancellationToken) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the DaemonSet controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: DaemonSetConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let ds_informer = informers.informer::<DaemonSet>();
    let pod_informer = informers.informer::<Pod>();
    let node_informer = informers.informer::<Node>();
    let revision_informer = informers.informer::<ControllerRevision>();
    let controller = DaemonSetController {
        client: informers.client().clone(),
        daemon_sets: ds_informer.store(),
        pods: pod_informer.store(),
        nodes: node_informer.store(),
        revisions: revision_informer.store(),
        queue: WorkQueue::default(),
        expectations: Expectations::default(),
        config,
    };
    let workers = async {
        controller.wait_for_caches(&cancel).await?;
        info!("daemonset controller caches synced; starting workers");
        run_workers(
            &controller,
            &controller.queue,
            controller.config.workers,
            &cancel,
        )
        .await;
        Ok::<_, Error>(())
    };
    let (result, (), (), ()) = tokio::join!(
        workers,
        ds_informer.run(|change| controller.on_daemon_set_change(change), &cancel),
        pod_informer.run(|change| controller.on_pod_change(change), &cancel),
        node_informer.run(|change| controller.on_node_change(change), &cancel),
    );
    controller.queue.shut_down();
    result
}

impl DaemonSetController {
    /// A controller over hand-filled caches, for sync tests.
    #[cfg(test)]
    pub(crate) fn with_caches(
        client: Client,
        daemon_sets: Store<DaemonSet>,
        pods: Store<Pod>,
        nodes: Store<Node>,
        revisions: Store<ControllerRevision>,
    ) -> Self {
        Self {
            client,
            daemon_sets,
            pods,
            nodes,
            revisions,
            queue: WorkQueue::default(),
            expectations: Expectations::default(),
            config: DaemonSetConfig::default(),
        }
    }

    async fn wait_for_caches(&self, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            () = cancel.cancelled() => Err(Error::CacheNotSynced("daemonset")),
            ready = async {
                self.daemon_sets.wait_until_ready().await?;
                self.pods.wait_until_ready().await?;
                self.nodes.wait_until_ready().await?;
                self.revisions.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced("daemonset")),
        }
    }

    fn on_daemon_set_change(&self, change: Change<DaemonSet>) {
        let key = ObjectKey::of(change.object().as_ref());
        if let Change::Deleted(_) = change {
            self.expectations.delete(&key.to_string());
        }
        self.queue.add(key);
    }

    fn on_pod_change(&self, change: Change<Pod>) {
        if let Some(owner) = self.controlling_daemon_set(change.object())
            && self
                .expectations
                .observe_pod_change(&owner.to_string(), &change)
        {
            self.queue.add(owner);
        }
    }

    /// Nodes that join, leave, or change labels, taints or readiness change where daemons run.
    fn on_node_change(&self, change: Change<Node>) {
        if let Change::Updated { old, new } = &change {
            let placement = |n: &Node| {
                (
                    n.metadata.labels.clone(),
                    n.spec.as_ref().map(|s| (s.taints.clone(), s.unschedulable)),
                )
            };
            if placement(old) == placement(new) {
                return;
            }
        }
        for ds in self.daemon_sets.state() {
            self.queue.add(ObjectKey::of(ds.as_ref()));
        }
    }

    fn controlling_daemon_set(&self, pod: &Pod) -> Option<ObjectKey> {
        cached_controller(&self.daemon_sets, &pod.metadata)
    }

    fn cached_daemon_set(&self, key: &ObjectKey) -> Option<Arc<DaemonSet>> {
        self.daemon_sets
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }
}
