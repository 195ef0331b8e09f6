//! The Deployment controller (upstream's `pkg/controller/deployment`): rolls ReplicaSets
//! forward and back, scales them proportionally, and reports rollout progress.
//!
//! `mod.rs` wires informers to the queue; `reconcile.rs` performs one sync against the API;
//! `sync.rs`, `rolling.rs`, `recreate.rs`, `progress.rs` and `util.rs` decide, as pure functions.

pub mod autorollback;
pub mod progress;
mod reconcile;
pub mod recreate;
pub mod rolling;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod util;

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;
use tracing::info;
use tugboat_api::selector::Selector;

use crate::framework::ownership::{cached_controller, controller_of};
use crate::framework::runner::run_workers;
use crate::framework::{Change, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Settings of the Deployment controller.
#[derive(Debug, Clone)]
pub struct DeploymentConfig {
    /// Concurrent syncs (upstream `--concurrent-deployment-syncs`, default 5).
    pub workers: usize,
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        Self { workers: 5 }
    }
}

/// See the module documentation.
pub struct DeploymentController {
    client: Client,
    deployments: Store<Deployment>,
    replica_sets: Store<ReplicaSet>,
    pods: Store<Pod>,
    queue: WorkQueue<ObjectKey>,
    config: DeploymentConfig,
}

/// Runs the Deployment controller, with informers of its own, until `cancel` fires.
pub async fn run(
    client: Client,
    config: DeploymentConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the Deployment controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: DeploymentConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let deployment_informer = informers.informer::<Deployment>();
    let rs_informer = informers.informer::<ReplicaSet>();
    let pod_informer = informers.informer::<Pod>();
    let controller = DeploymentController {
        client: informers.client().clone(),
        deployments: deployment_informer.store(),
        replica_sets: rs_informer.store(),
        pods: pod_informer.store(),
        queue: WorkQueue::default(),
        config,
    };
    let workers = async {
        controller.wait_for_caches(&cancel).await?;
        info!("deployment controller caches synced; starting workers");
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
        deployment_informer.run(|change| controller.on_deployment_change(change), &cancel),
        rs_informer.run(|change| controller.on_replica_set_change(change), &cancel),
        pod_informer.run(|change| controller.on_pod_change(change), &cancel),
    );
    controller.queue.shut_down();
    result
}

impl DeploymentController {
    /// A controller over hand-filled caches, for sync tests.
    #[cfg(test)]
    pub(crate) fn with_caches(
        client: Client,
        deployments: Store<Deployment>,
        replica_sets: Store<ReplicaSet>,
        pods: Store<Pod>,
    ) -> Self {
        Self {
            client,
            deployments,
            replica_sets,
            pods,
            queue: WorkQueue::default(),
            config: DeploymentConfig::default(),
        }
    }

    async fn wait_for_caches(&self, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            () = cancel.cancelled() => Err(Error::CacheNotSynced("deployment")),
            ready = async {
                self.deployments.wait_until_ready().await?;
                self.replica_sets.wait_until_ready().await?;
                self.pods.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced("deployment")),
        }
    }

    fn on_deployment_change(&self, change: Change<Deployment>) {
        match change {
            Change::Added(d) | Change::Updated { new: d, .. } | Change::Deleted(d) => {
                self.queue.add(ObjectKey::of(d.as_ref()));
            }
        }
    }

    fn on_replica_set_change(&self, change: Change<ReplicaSet>) {
        match change {
            Change::Added(rs) | Change::Deleted(rs) => {
                if let Some(owner) = self.controlling_deployment(&rs) {
                    self.queue.add(owner);
                } else if rs.metadata.deletion_timestamp.is_none() {
                    self.enqueue_possible_adopters(&rs);
                }
            }
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                let owner_changed = controller_of(&old.metadata).map(|r| &r.uid)
                    != controller_of(&new.metadata).map(|r| &r.uid);
                if owner_changed && let Some(previous) = self.controlling_deployment(&old) {
                    self.queue.add(previous);
                }
                if let Some(owner) = self.controlling_deployment(&new) {
                    self.queue.add(owner);
                } else if owner_changed || old.metadata.labels != new.metadata.labels {
                    self.enqueue_possible_adopters(&new);
                }
            }
        }
    }

    /// A Recreate rollout waits for old pods to be gone: their deletion wakes the Deployment.
    /// A pod crash-looping with more restarts wakes it too, for the automatic rollback.
    fn on_pod_change(&self, change: Change<Pod>) {
        let pod = match change {
            Change::Deleted(pod) => pod,
            Change::Updated { old, new }
                if crash_loop_restarts(&new).is_some()
                    && crash_loop_restarts(&new) != crash_loop_restarts(&old) =>
            {
                new
            }
            _ => return,
        };
        let Some(reference) = controller_of(&pod.metadata) else {
            return;
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
        let Some(rs) = self
            .replica_sets
            .get(&ObjectRef::new(&reference.name).within(namespace))
        else {
            return;
        };
        if rs.metadata.uid.as_deref() == Some(reference.uid.as_str())
            && let Some(owner) = self.controlling_deployment(&rs)
        {
            self.queue.add(owner);
        }
    }

    fn controlling_deployment(&self, rs: &ReplicaSet) -> Option<ObjectKey> {
        cached_controller(&self.deployments, &rs.metadata)
    }

    fn enqueue_possible_adopters(&self, rs: &ReplicaSet) {
        let labels = rs.metadata.labels.clone().unwrap_or_default();
        for deployment in self.deployments.state() {
            if deployment.metadata.namespace != rs.metadata.namespace {
                continue;
            }
            let selector = deployment.spec.as_ref().map(|s| &s.selector);
            let Ok(selector) = Selector::from_label_selector(selector) else {
                continue;
            };
            if !selector.is_everything() && selector.matches(&labels) {
                self.queue.add(ObjectKey::of(deployment.as_ref()));
            }
        }
    }

    fn cached_deployment(&self, key: &ObjectKey) -> Option<Arc<Deployment>> {
        self.deployments
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }
}

/// The most restarts among `pod`'s containers waiting in CrashLoopBackOff, if any is.
fn crash_loop_restarts(pod: &Pod) -> Option<i32> {
    pod.status
        .iter()
        .flat_map(|status| {
            status
                .container_statuses
                .iter()
                .flatten()
                .chain(status.init_container_statuses.iter().flatten())
                .filter(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.waiting.as_ref())
                        .and_then(|w| w.reason.as_deref())
                        == Some(autorollback::CRASH_LOOP_REASON)
                })
                .map(|c| c.restart_count)
        })
        .max()
}
