//! Tugboat's controllers. Each one watches the API server through `kube`, keeps read-only
//! caches, and converges objects from a keyed work queue.
//!
//! - [`framework`]: work queue, informers (shared by every controller of the process), worker
//!   loop, expectations, ownership.
//! - [`replicaset`]: the ReplicaSet controller, which also runs ReplicationControllers.
//! - [`deployment`]: the Deployment controller.
//! - [`endpoints`]: Endpoints and EndpointSlices of Services.
//! - [`hpa`]: the HorizontalPodAutoscaler controller.
//! - [`nodelifecycle`]: unreachable nodes, their taints and the eviction of their pods.
//! - [`nodepassword`]: node password Secrets tied to their Nodes, so they go with them.
//! - [`job`]: Jobs run to completion, and deleted after their TTL.
//! - [`cronjob`]: Jobs started on a cron schedule.
//! - [`daemonset`]: one pod per eligible node, rolled out node by node.
//! - [`statefulset`]: pods with stable names, created, removed and updated in order.
//! - [`volume`]: PersistentVolume binding, the local-path provisioner and reclaiming.
//!
//! [`run`] runs them all until its cancellation token fires.

pub mod cleanup;
pub mod cronjob;
pub mod daemonset;
pub mod deployment;
pub mod endpoints;
pub mod error;
pub mod framework;
pub mod hpa;
pub mod job;
pub mod nodelifecycle;
pub mod nodepassword;
pub mod replicaset;
pub mod statefulset;
pub mod volume;

#[cfg(test)]
mod stale_cache;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::ReplicationController;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::framework::SharedInformers;

pub use error::{Error, Result};

/// Settings of every controller [`run`] starts.
#[derive(Debug, Clone, Default)]
pub struct ControllersConfig {
    /// The ReplicaSet controller's settings.
    pub replica_set: replicaset::ReplicaSetConfig,
    /// The Deployment controller's settings.
    pub deployment: deployment::DeploymentConfig,
    /// Garbage collection and namespace deletion.
    pub cleanup: cleanup::CleanupConfig,
    /// The endpoints controller's settings.
    pub endpoints: endpoints::EndpointsConfig,
    /// The HorizontalPodAutoscaler controller's settings.
    pub hpa: hpa::HpaConfig,
    /// The node lifecycle controller's settings.
    pub node_lifecycle: nodelifecycle::NodeLifecycleConfig,
    /// The node password controller's settings.
    pub node_password: nodepassword::NodePasswordConfig,
    /// The Job controller's settings.
    pub job: job::JobConfig,
    /// The CronJob controller's settings.
    pub cron_job: cronjob::CronJobConfig,
    /// The DaemonSet controller's settings.
    pub daemon_set: daemonset::DaemonSetConfig,
    /// The StatefulSet controller's settings.
    pub stateful_set: statefulset::StatefulSetConfig,
    /// The PersistentVolume controller's settings (where local-path volumes live).
    pub volumes: volume::VolumeConfig,
}

/// Runs every controller against the API server behind `client` until `shutdown` fires, then
/// returns once each has finished the key it was working on. The first controller to fail
/// stops the others.
pub async fn run(
    client: Client,
    config: ControllersConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    // A child token: one controller failing stops its siblings without cancelling the caller.
    // Each controller's future is boxed: together they are too big for a thread's stack.
    let stop = shutdown.child_token();
    // One watch and one cache per resource, whichever controllers read it (client-go's
    // SharedInformerFactory): a pod is decoded and held once, not once per controller.
    let informers = SharedInformers::new(client.clone(), &stop);
    let stop_on_error = |result: Result<()>| {
        if result.is_err() {
            stop.cancel();
        }
        result
    };
    let (
        replica_sets,
        deployments,
        cleanup,
        endpoints,
        hpas,
        node_lifecycle,
        node_passwords,
        jobs,
        cron_jobs,
        daemon_sets,
        stateful_sets,
        replication_controllers,
        volumes,
    ) = tokio::join!(
        Box::pin(async {
            stop_on_error(
                replicaset::run_with::<ReplicaSet>(
                    &informers,
                    config.replica_set.clone(),
                    stop.clone(),
                )
                .await,
            )
        }),
        Box::pin(async {
            stop_on_error(deployment::run_with(&informers, config.deployment, stop.clone()).await)
        }),
        Box::pin(async {
            stop_on_error(cleanup::run(client.clone(), config.cleanup, stop.clone()).await)
        }),
        Box::pin(async {
            stop_on_error(endpoints::run_with(&informers, config.endpoints, stop.clone()).await)
        }),
        Box::pin(async {
            stop_on_error(hpa::run_with(&informers, config.hpa, stop.clone()).await)
        }),
        Box::pin(async {
            stop_on_error(
                nodelifecycle::run_with(&informers, config.node_lifecycle, stop.clone()).await,
            )
        }),
        Box::pin(async {
            stop_on_error(
                nodepassword::run_with(&informers, config.node_password, stop.clone()).await,
            )
        }),
        Box::pin(async {
            stop_on_error(job::run_with(&informers, config.job, stop.clone()).await)
        }),
        Box::pin(async {
            stop_on_error(cronjob::run_with(&informers, config.cron_job, stop.clone()).await)
        }),
        Box::pin(async {
            stop_on_error(daemonset::run_with(&informers, config.daemon_set, stop.clone()).await)
        }),
        Box::pin(async {
            stop_on_error(
                statefulset::run_with(&informers, config.stateful_set, stop.clone()).await,
            )
        }),
        Box::pin(async {
            stop_on_error(
                replicaset::run_with::<ReplicationController>(
                    &informers,
                    config.replica_set.clone(),
                    stop.clone(),
                )
                .await,
            )
        }),
        Box::pin(async {
            stop_on_error(volume::run_with(&informers, config.volumes.clone(), stop.clone()).await)
        }),
    );
    informers.shutdown().await;
    replica_sets
        .and(deployments)
        .and(cleanup)
        .and(endpoints)
        .and(hpas)
        .and(node_lifecycle)
        .and(node_passwords)
        .and(jobs)
        .and(cron_jobs)
        .and(daemon_sets)
        .and(stateful_sets)
        .and(replication_controllers)
        .and(volumes)
}
