//! The node lifecycle controller: notices nodes whose agent stopped reporting, marks them and
//! their pods, taints them, and evicts their pods once the pods' tolerations run out, so the
//! workload controllers replace them elsewhere. The decisions are in [`decide`].
//!
//! Heartbeats are timed by when this controller *observed* them change (the Lease's renewTime
//! or the Ready condition's heartbeat), never by comparing the agent's clock with ours.

pub mod decide;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use parking_lot::Mutex;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use self::decide::{Disruption, Health};
use crate::error::kube_status_is;
use crate::framework::events::{self, EventType};
use crate::framework::runner::{Reconciler, Requeue, run_workers};
use crate::framework::{Informer, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Namespace of the node Leases.
const LEASE_NAMESPACE: &str = "kube-node-lease";

/// Settings of the node lifecycle controller.
#[derive(Debug, Clone)]
pub struct NodeLifecycleConfig {
    /// How long a node may go without a heartbeat before it is unreachable (upstream
    /// `--node-monitor-grace-period`, 50 s since Kubernetes 1.32).
    pub grace_period: Duration,
    /// How often every node is looked at (upstream `--node-monitor-period`, 5 s).
    pub monitor_period: Duration,
    /// Concurrent syncs.
    pub workers: usize,
}

impl Default for NodeLifecycleConfig {
    fn default() -> Self {
        Self {
            grace_period: Duration::from_secs(50),
            monitor_period: Duration::from_secs(5),
            workers: 2,
        }
    }
}

/// See the module documentation.
pub struct NodeLifecycleController {
    client: Client,
    nodes: Store<Node>,
    leases: Store<Lease>,
    pods: Store<Pod>,
    queue: WorkQueue<ObjectKey>,
    config: NodeLifecycleConfig,
    /// Per node: the last heartbeat signature seen and when we saw it change.
    heartbeats: Mutex<HashMap<String, (String, Instant)>>,
    /// The cluster's disruption state, and when it was computed (not at every sync: it looks
    /// at every node).
    disruption: Mutex<Option<(Instant, Disruption, usize)>>,
    /// When a node was last given an eviction taint (the eviction rate limiter).
    last_eviction_taint: Mutex<Option<Instant>>,
    /// Since when each unhealthy node has been seen unhealthy.
    unhealthy_since: Mutex<HashMap<String, Instant>>,
}

/// Runs the node lifecycle controller, with informers of its own, until `cancel` fires.
pub async fn run(
    client: Client,
    config: NodeLifecycleConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the node lifecycle controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: NodeLifecycleConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let node_informer = informers.informer::<Node>();
    let lease_informer = Informer::new(Api::<Lease>::namespaced(
        informers.client().clone(),
        LEASE_NAMESPACE,
    ));
    let pod_informer = informers.informer::<Pod>();
    let controller = NodeLifecycleController {
        client: informers.client().clone(),
        nodes: node_informer.store(),
        leases: lease_informer.store(),
        pods: pod_informer.store(),
        queue: WorkQueue::default(),
        config,
        heartbeats: Mutex::new(HashMap::new()),
        disruption: Mutex::new(None),
        last_eviction_taint: Mutex::new(None),
        unhealthy_since: Mutex::new(HashMap::new()),
    };
    let workers = async {
        controller.wait_for_caches(&cancel).await?;
        info!("node lifecycle controller caches synced; starting workers");
        run_workers(
            &controller,
            &controller.queue,
            controller.config.workers,
            &cancel,
        )
        .await;
        Ok::<_, Error>(())
    };
    let enqueue = |name: Option<String>| {
        if let Some(name) = name {
            controller.queue.add(ObjectKey::new("", name));
        }
    };
    let (result, (), ()) = tokio::join!(
        workers,
        node_informer.run(
            |change| enqueue(change.object().metadata.name.clone()),
            &cancel
        ),
        lease_informer.run(
            |change| enqueue(change.object().metadata.name.clone()),
            &cancel
        ),
    );
    controller.queue.shut_down();
    result
}

impl Reconciler for NodeLifecycleController {
    fn name(&self) -> &'static str {
        "node-lifecycle"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(node) = self.nodes.get(&ObjectRef::new(&key.name)) else {
            self.heartbeats.lock().remove(&key.name);
            self.unhealthy_since.lock().remove(&key.name);
            return Ok(Requeue::Never);
        };
        let since_heartbeat = self.since_heartbeat(&node);
        let health = decide::health(&node, since_heartbeat, self.config.grace_period);
        let now = Timestamp::now();
        let nodes: Api<Node> = Api::all(self.client.clone());
        if health == Health::Unreachable
            && let Some(conditions) = decide::unknown_conditions(&node, now)
        {
            warn!(node = %key.name, ?since_heartbeat, "node stopped reporting; marking it Unknown");
            nodes
                .patch_status(
                    &key.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"conditions": conditions}})),
                )
                .await?;
            events::record(
                &self.client,
                "node-controller",
                node.as_ref(),
                EventType::Normal,
                "NodeNotReady",
                &format!("Node {} status is now: NodeNotReady", key.name),
            )
            .await;
            self.mark_pods_not_ready(&key.name).await?;
        }
        let mut taints = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.clone())
            .unwrap_or_default();
        let (state, node_count) = self.disruption();
        let unhealthy_for = self.unhealthy_for(&key.name, health);
        let no_execute = match state {
            // Every node down: this controller is more likely cut off than the nodes dead.
            Disruption::Full => false,
            _ if health == Health::Ready || decide::has_eviction_taint(&node) => true,
            // Unhealthy for a whole monitor period first, so that nodes failing together are
            // seen together (upstream looks at every node in one pass per period).
            _ if unhealthy_for < self.config.monitor_period => false,
            _ => self.may_taint_for_eviction(state, node_count),
        };
        if let Some(desired) = decide::desired_taints(&node, health, no_execute, now) {
            info!(node = %key.name, ?health, "updating lifecycle taints");
            nodes
                .patch(
                    &key.name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"taints": desired}})),
                )
                .await?;
            taints = desired;
        }
        let mut next = self.config.monitor_period;
        if state != Disruption::Full
            && taints.iter().any(|t| t.effect == "NoExecute")
            && let Some(soonest) = self.evict(&key.name, &taints, now).await?
        {
            next = next.min(soonest.max(Duration::from_millis(100)));
        }
        Ok(Requeue::After(next))
    }
}

impl NodeLifecycleController {
    /// The cluster's disruption state and node count, recomputed at most twice a monitor
    /// period (and once a second).
    fn disruption(&self) -> (Disruption, usize) {
        let max_age = (self.config.monitor_period / 2).min(Duration::from_secs(1));
        let mut cached = self.disruption.lock();
        if let Some((at, state, count)) = *cached
            && at.elapsed() < max_age
        {
            return (state, count);
        }
        let nodes = self.nodes.state();
        let grace = self.config.grace_period;
        let state = decide::disruption(
            nodes
                .iter()
                .map(|node| decide::health(node, self.since_heartbeat(node), grace)),
        );
        let before = cached.map_or(Disruption::Normal, |(_, before, _)| before);
        if before != state {
            info!(
                ?state,
                nodes = nodes.len(),
                "cluster disruption state changed"
            );
            // A new state gets a fresh rate limiter, as upstream's zones do.
            *self.last_eviction_taint.lock() = None;
        }
        *cached = Some((Instant::now(), state, nodes.len()));
        (state, nodes.len())
    }

    /// How long the node has been unhealthy, as seen here (zero when it is Ready).
    fn unhealthy_for(&self, node: &str, health: Health) -> Duration {
        let mut since = self.unhealthy_since.lock();
        if health == Health::Ready {
            since.remove(node);
            return Duration::ZERO;
        }
        since
            .entry(node.to_owned())
            .or_insert_with(Instant::now)
            .elapsed()
    }

    /// Takes a token of the eviction rate limiter: whether one more node may get an eviction
    /// taint now.
    fn may_taint_for_eviction(&self, state: Disruption, nodes: usize) -> bool {
        let Some(interval) = decide::taint_interval(state, nodes) else {
            return false;
        };
        let mut last = self.last_eviction_taint.lock();
        if last.is_some_and(|at| at.elapsed() < interval) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    async fn wait_for_caches(&self, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            () = cancel.cancelled() => Err(Error::CacheNotSynced("node lifecycle")),
            ready = async {
                self.nodes.wait_until_ready().await?;
                self.leases.wait_until_ready().await?;
                self.pods.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced("node lifecycle")),
        }
    }

    /// How long ago the node's heartbeat last changed, as observed here.
    fn since_heartbeat(&self, node: &Node) -> Duration {
        let name = node.metadata.name.clone().unwrap_or_default();
        let lease = self
            .leases
            .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE))
            .and_then(|l| {
                l.spec
                    .as_ref()?
                    .renew_time
                    .as_ref()
                    .map(|t| t.0.to_string())
            });
        let ready_heartbeat = node
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
            // In whole seconds: the API server keeps Time at that precision, so this controller's
            // own write of the conditions must not look like a heartbeat.
            .and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0.as_second()));
        let signature = format!("{lease:?}|{ready_heartbeat:?}");
        let mut heartbeats = self.heartbeats.lock();
        let entry = heartbeats
            .entry(name)
            .or_insert_with(|| (signature.clone(), Instant::now()));
        if entry.0 != signature {
            *entry = (signature, Instant::now());
        }
        entry.1.elapsed()
    }

    fn pods_on(&self, node: &str) -> Vec<Arc<Pod>> {
        self.pods
            .state()
            .into_iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node))
            .collect()
    }

    /// Upstream's `MarkPodsNotReady`: nobody can vouch for these pods any more.
    async fn mark_pods_not_ready(&self, node: &str) -> Result<()> {
        for pod in self.pods_on(node) {
            let Some(mut conditions) = pod.status.as_ref().and_then(|s| s.conditions.clone())
            else {
                continue;
            };
            let mut changed = false;
            for condition in conditions.iter_mut().filter(|c| c.type_ == "Ready") {
                if condition.status != "False" {
                    condition.status = "False".into();
                    condition.reason = Some("NodeNotReady".into());
                    condition.last_transition_time = Some(
                        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
                    );
                    changed = true;
                }
            }
            if !changed {
                continue;
            }
            let namespace = pod.metadata.namespace.clone().unwrap_or_default();
            let name = pod.metadata.name.clone().unwrap_or_default();
            let result = Api::<Pod>::namespaced(self.client.clone(), &namespace)
                .patch_status(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"status": {"conditions": conditions}})),
                )
                .await;
            ignore_not_found(result)?;
        }
        Ok(())
    }

    /// Deletes the pods whose tolerations of the node's NoExecute taints ran out; returns when
    /// the next one will.
    async fn evict(
        &self,
        node: &str,
        taints: &[k8s_openapi::api::core::v1::Taint],
        now: Timestamp,
    ) -> Result<Option<Duration>> {
        let mut soonest: Option<Duration> = None;
        for pod in self.pods_on(node) {
            if pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            match decide::eviction_delay(&pod, taints, now) {
                None => {}
                Some(delay) if delay.is_zero() => {
                    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    info!(pod = %format!("{namespace}/{name}"), %node, "evicting pod from a tainted node");
                    events::record(
                        &self.client,
                        "taint-eviction-controller",
                        pod.as_ref(),
                        EventType::Normal,
                        "TaintManagerEviction",
                        &format!("Marking for deletion Pod {namespace}/{name}"),
                    )
                    .await;
                    let result = Api::<Pod>::namespaced(self.client.clone(), &namespace)
                        .delete(&name, &DeleteParams::default())
                        .await
                        .map(|_| ());
                    ignore_not_found(result)?;
                }
                Some(delay) => soonest = Some(soonest.map_or(delay, |s| s.min(delay))),
            }
        }
        Ok(soonest)
    }
}

fn ignore_not_found<T>(result: std::result::Result<T, kube::Error>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(error) if kube_status_is(&error, 404) => Ok(()),
        Err(error) => Err(error.into()),
    }
}
