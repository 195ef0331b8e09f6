//! The scheduling loop: watches pods and nodes, keeps the [`Cache`] and the
//! [`SchedulingQueue`] current, schedules one pod at a time with the [`Framework`], and runs
//! the API writes (bind, report, preempt) in tracked tasks whose outcomes come back here.
//!
//! One task owns the cache and the queue, so a decision always sees every earlier
//! decision (assumed pods) and never races a watch update.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use futures::{StreamExt, stream::BoxStream};
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::{
    Api, Client,
    runtime::{WatchStreamExt, watcher},
};
use tokio::{sync::mpsc, time::Instant};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tracing::{debug, info, warn};

use crate::{
    api_calls,
    cache::{Cache, PodInfo, PodKey, pod_key},
    error::{Error, Result},
    framework::{Framework, ScheduleError},
    plugins::default_framework,
    preemption::find_preemption,
    queue::{QueueConfig, SchedulingQueue},
};

/// How the scheduler runs.
#[derive(Debug, Clone)]
pub struct SchedulerConfig {
    /// Pods whose `spec.schedulerName` is this are ours.
    pub scheduler_name: String,
    /// kube-scheduler's `percentageOfNodesToScore`; 0 picks it from the cluster size.
    pub percentage_of_nodes_to_score: usize,
    pub queue: QueueConfig,
    /// How often back-off and long-unschedulable pods are re-examined.
    pub flush_interval: Duration,
    /// How long shutdown waits for API calls in flight.
    pub shutdown_grace: Duration,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            scheduler_name: "default-scheduler".into(),
            percentage_of_nodes_to_score: 0,
            queue: QueueConfig::default(),
            flush_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Runs the scheduler until `shutdown` is cancelled, then waits (up to the grace period)
/// for binds and status writes in flight.
pub async fn run(
    client: Client,
    config: SchedulerConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    // The cache drops managedFields, which the scheduler never reads, as upstream's informers do.
    let pods = watcher(Api::<Pod>::all(client.clone()), watcher::Config::default())
        .modify(|pod| pod.metadata.managed_fields = None)
        .default_backoff()
        .map(|item| WatchItem::Pod(Box::new(item)));
    let nodes = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
        .modify(|node| node.metadata.managed_fields = None)
        .default_backoff()
        .map(|item| WatchItem::Node(Box::new(item)));
    let claims = watcher(
        Api::<PersistentVolumeClaim>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|item| WatchItem::Claim(Box::new(item)));
    let volumes = watcher(
        Api::<PersistentVolume>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|item| WatchItem::Volume(Box::new(item)));
    let classes = watcher(
        Api::<StorageClass>::all(client.clone()),
        watcher::Config::default(),
    )
    .default_backoff()
    .map(|item| WatchItem::Class(Box::new(item)));
    let events = futures::stream::select_all([
        pods.boxed(),
        nodes.boxed(),
        claims.boxed(),
        volumes.boxed(),
        classes.boxed(),
    ])
    .boxed();
    let mut scheduler = Scheduler::new(client, config);
    scheduler.run(events, shutdown).await
}

/// One item from either watch; boxed, since Pod and Node events are large and unequal.
enum WatchItem {
    Pod(Box<Result<watcher::Event<Pod>, watcher::Error>>),
    Node(Box<Result<watcher::Event<Node>, watcher::Error>>),
    Claim(Box<Result<watcher::Event<PersistentVolumeClaim>, watcher::Error>>),
    Volume(Box<Result<watcher::Event<PersistentVolume>, watcher::Error>>),
    Class(Box<Result<watcher::Event<StorageClass>, watcher::Error>>),
}

/// What a finished API task reports back to the loop.
#[derive(Debug)]
enum Outcome {
    Bound { key: PodKey },
    BindFailed { pod: Arc<Pod>, error: Error },
    ReportFailed { key: PodKey, error: Error },
}

/// Tracks a relist (watch restart): every key seen until `InitDone`.
#[derive(Debug, Default)]
struct Relist {
    seen: Option<HashSet<String>>,
}

struct Scheduler {
    client: Client,
    config: SchedulerConfig,
    framework: Framework,
    cache: Cache,
    queue: SchedulingQueue,
    /// Every pod and node key the watches currently show, to find deletions on relist.
    known_pods: HashSet<PodKey>,
    known_nodes: HashSet<String>,
    pod_relist: Relist,
    node_relist: Relist,
    pods_synced: bool,
    nodes_synced: bool,
    /// The last message reported per pod, so an unchanged failure is not rewritten.
    reported: HashMap<PodKey, String>,
    tracker: TaskTracker,
    outcomes_tx: mpsc::UnboundedSender<Outcome>,
    outcomes_rx: mpsc::UnboundedReceiver<Outcome>,
}

impl Scheduler {
    fn new(client: Client, config: SchedulerConfig) -> Self {
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        Self {
            client,
            framework: default_framework(config.percentage_of_nodes_to_score),
            queue: SchedulingQueue::new(config.queue.clone()),
            config,
            cache: Cache::new(),
            known_pods: HashSet::new(),
            known_nodes: HashSet::new(),
            pod_relist: Relist::default(),
            node_relist: Relist::default(),
            pods_synced: false,
            nodes_synced: false,
            reported: HashMap::new(),
            tracker: TaskTracker::new(),
            outcomes_tx,
            outcomes_rx,
        }
    }

    async fn run(
        &mut self,
        mut events: BoxStream<'static, WatchItem>,
        shutdown: CancellationToken,
    ) -> Result<()> {
        info!(scheduler = %self.config.scheduler_name, "scheduler starting");
        let mut flush = tokio::time::interval(self.config.flush_interval);
        flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let ready = self.pods_synced
                && self.nodes_synced
                && self.cache.volumes.synced()
                && self.queue.has_active();
            let backoff_expiry = self.queue.next_backoff_expiry();
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                Some(item) = events.next() => self.handle_watch(item),
                Some(outcome) = self.outcomes_rx.recv() => self.handle_outcome(outcome),
                () = sleep_until(backoff_expiry), if backoff_expiry.is_some() => {
                    self.queue.flush(Instant::now());
                }
                _ = flush.tick() => self.queue.flush(Instant::now()),
                () = std::future::ready(()), if ready => {
                    self.schedule_one();
                    // Let watch events and outcomes in between pods.
                    tokio::task::yield_now().await;
                }
            }
        }
        info!("scheduler stopping; waiting for API calls in flight");
        self.tracker.close();
        let grace = self.config.shutdown_grace;
        tokio::time::timeout(grace, self.tracker.wait())
            .await
            .map_err(|_| Error::ShutdownTimeout {
                grace_ms: grace.as_millis(),
            })
    }

    // === watch events ===

    /// Watch errors are logged once here; the watcher recovers on its own (relist after
    /// back-off).
    fn handle_watch(&mut self, item: WatchItem) {
        match item {
            WatchItem::Pod(item) => match *item {
                Ok(event) => self.handle_pod_event(event),
                Err(error) => warn!(%error, "pod watch failed; retrying"),
            },
            WatchItem::Node(item) => match *item {
                Ok(event) => self.handle_node_event(event),
                Err(error) => warn!(%error, "node watch failed; retrying"),
            },
            // Storage changes may let waiting pods fit (a claim created, a volume bound).
            WatchItem::Claim(item) => match *item {
                Ok(event) => {
                    self.cache.volumes.claims.apply(event);
                    self.queue.move_all_to_active_or_backoff(Instant::now());
                }
                Err(error) => warn!(%error, "persistentvolumeclaim watch failed; retrying"),
            },
            WatchItem::Volume(item) => match *item {
                Ok(event) => {
                    self.cache.volumes.volumes.apply(event);
                    self.queue.move_all_to_active_or_backoff(Instant::now());
                }
                Err(error) => warn!(%error, "persistentvolume watch failed; retrying"),
            },
            WatchItem::Class(item) => match *item {
                Ok(event) => {
                    self.cache.volumes.classes.apply(event);
                    self.queue.move_all_to_active_or_backoff(Instant::now());
                }
                Err(error) => warn!(%error, "storageclass watch failed; retrying"),
            },
        }
    }

    fn handle_pod_event(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.pod_relist.seen = Some(HashSet::new()),
            watcher::Event::InitApply(pod) => {
                if let Some(seen) = self.pod_relist.seen.as_mut() {
                    seen.insert(pod_key(&pod));
                }
                self.apply_pod(pod);
            }
            watcher::Event::InitDone => {
                let seen = self.pod_relist.seen.take().unwrap_or_default();
                let gone: Vec<PodKey> = self.known_pods.difference(&seen).cloned().collect();
                for key in gone {
                    self.remove_pod(&key);
                }
                self.pods_synced = true;
                debug!(pods = self.known_pods.len(), "pod watch synced");
            }
            watcher::Event::Apply(pod) => self.apply_pod(pod),
            watcher::Event::Delete(pod) => self.remove_pod(&pod_key(&pod)),
        }
    }

    fn apply_pod(&mut self, pod: Pod) {
        let key = pod_key(&pod);
        self.known_pods.insert(key.clone());
        let spec = pod.spec.as_ref();
        let bound = spec
            .and_then(|spec| spec.node_name.as_deref())
            .is_some_and(|node| !node.is_empty());
        let now = Instant::now();
        if bound {
            self.queue.delete(&key);
            self.reported.remove(&key);
            let was_placed = self.cache.placement_of(&key).is_some();
            let info = Arc::new(PodInfo::new(Arc::new(pod)));
            self.cache.set_bound_pod(info);
            if was_placed && self.cache.placement_of(&key).is_none() {
                // It finished: its room is free for waiting pods.
                self.queue.move_all_to_active_or_backoff(now);
            }
            return;
        }
        let ours = spec
            .and_then(|spec| spec.scheduler_name.as_deref())
            .unwrap_or("default-scheduler")
            == self.config.scheduler_name;
        let finished = pod.metadata.deletion_timestamp.is_some()
            || pod
                .status
                .as_ref()
                .and_then(|status| status.phase.as_deref())
                .is_some_and(|phase| phase == "Succeeded" || phase == "Failed");
        if !ours || finished {
            self.queue.delete(&key);
            return;
        }
        // While our bind is in flight the watch still shows the pod pending: not new work.
        if self.cache.is_assumed(&key) {
            return;
        }
        self.queue.add_or_update(Arc::new(pod), now);
    }

    fn remove_pod(&mut self, key: &str) {
        self.known_pods.remove(key);
        self.queue.delete(key);
        self.reported.remove(key);
        if self.cache.placement_of(key).is_some() {
            self.cache.remove_pod(key);
            self.queue.move_all_to_active_or_backoff(Instant::now());
        }
    }

    fn handle_node_event(&mut self, event: watcher::Event<Node>) {
        match event {
            watcher::Event::Init => self.node_relist.seen = Some(HashSet::new()),
            watcher::Event::InitApply(node) => {
                if let Some(seen) = self.node_relist.seen.as_mut() {
                    seen.insert(node.metadata.name.clone().unwrap_or_default());
                }
                self.apply_node(node);
            }
            watcher::Event::InitDone => {
                let seen = self.node_relist.seen.take().unwrap_or_default();
                let gone: Vec<String> = self.known_nodes.difference(&seen).cloned().collect();
                for name in gone {
                    self.known_nodes.remove(&name);
                    self.cache.remove_node(&name);
                }
                self.nodes_synced = true;
                debug!(nodes = self.cache.node_count(), "node watch synced");
            }
            watcher::Event::Apply(node) => self.apply_node(node),
            watcher::Event::Delete(node) => {
                let name = node.metadata.name.clone().unwrap_or_default();
                self.known_nodes.remove(&name);
                self.cache.remove_node(&name);
            }
        }
    }

    fn apply_node(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        self.known_nodes.insert(name.clone());
        // Heartbeats change only conditions; only scheduling-relevant changes wake pods.
        let relevant = self
            .cache
            .node(&name)
            .and_then(|info| info.node.as_deref())
            .is_none_or(|old| scheduling_fields_differ(old, &node));
        self.cache.set_node(node);
        if relevant {
            self.queue.move_all_to_active_or_backoff(Instant::now());
        }
    }

    // === scheduling ===

    fn schedule_one(&mut self) {
        let now = Instant::now();
        let Some(queued) = self.queue.pop(now) else {
            return;
        };
        let pod = queued.pod;
        let key = pod_key(&pod);
        let info = Arc::new(PodInfo::new(pod.clone()));
        match self.framework.schedule(&info, &self.cache) {
            Ok(result) => {
                debug!(pod = %key, node = %result.node_name, evaluated = result.evaluated_nodes,
                    feasible = result.feasible_nodes, "pod scheduled; binding");
                let claims = crate::plugins::volume_binding::claims_to_select_node(
                    &info,
                    &self.cache,
                    &result.node_name,
                );
                self.cache.assume(info, &result.node_name);
                self.queue.done(&key);
                self.reported.remove(&key);
                self.spawn_bind(pod, result.node_name, claims);
            }
            Err(ScheduleError::NoNodesAvailable) => {
                self.queue.add_unschedulable(&key, now);
                self.spawn_report(
                    pod,
                    "SchedulerError",
                    ScheduleError::NoNodesAvailable.to_string(),
                    None,
                );
            }
            Err(ScheduleError::Unfit(mut fit_error)) => {
                let mut nominated = None;
                match find_preemption(&self.framework, &info, &self.cache, &fit_error) {
                    Ok(plan) => {
                        info!(pod = %key, node = %plan.node_name, victims = plan.victims.len(),
                            "preempting lower-priority pods");
                        let victims = plan
                            .victims
                            .iter()
                            .map(|victim| (victim.key.clone(), (*victim.pod).clone()))
                            .collect();
                        self.spawn_preempt(pod.clone(), plan.node_name.clone(), victims);
                        nominated = Some(plan.node_name);
                    }
                    Err(message) => fit_error.post_filter_message = Some(message),
                }
                self.queue.add_unschedulable(&key, now);
                let message = fit_error.message();
                debug!(pod = %key, %message, "pod is unschedulable");
                self.spawn_report(pod, "Unschedulable", message, nominated);
            }
        }
    }

    /// Marks the pod's delayed-binding claims with the node (VolumeBinding's PreBind), binds
    /// the pod, then records the `Scheduled` event `kubectl describe pod` shows, as
    /// kube-scheduler does.
    fn spawn_bind(&self, pod: Arc<Pod>, node_name: String, claims: Vec<String>) {
        let client = self.client.clone();
        let outcomes = self.outcomes_tx.clone();
        let scheduler_name = self.config.scheduler_name.clone();
        self.tracker.spawn(async move {
            let key = pod_key(&pod);
            let bound = async {
                api_calls::select_node_for_claims(&client, &pod, &claims, &node_name).await?;
                api_calls::bind(&client, &pod, &node_name).await
            };
            match bound.await {
                Ok(()) => {
                    let message = format!("Successfully assigned {key} to {node_name}");
                    // The loop is gone only at shutdown, when outcomes no longer matter.
                    let _ = outcomes.send(Outcome::Bound { key });
                    let event = api_calls::record_event(
                        &client,
                        &scheduler_name,
                        &pod,
                        "Normal",
                        "Scheduled",
                        &message,
                    );
                    if let Err(error) = event.await {
                        debug!(%error, "recording the Scheduled event failed");
                    }
                }
                Err(error) => {
                    let _ = outcomes.send(Outcome::BindFailed { pod, error });
                }
            }
        });
    }

    fn spawn_report(
        &mut self,
        pod: Arc<Pod>,
        reason: &'static str,
        message: String,
        nominated: Option<String>,
    ) {
        let key = pod_key(&pod);
        if nominated.is_none()
            && (self.reported.get(&key) == Some(&message)
                || api_calls::already_reported(&pod, &message))
        {
            return;
        }
        self.reported.insert(key.clone(), message.clone());
        let client = self.client.clone();
        let scheduler_name = self.config.scheduler_name.clone();
        let outcomes = self.outcomes_tx.clone();
        self.tracker.spawn(async move {
            if let Err(error) = api_calls::report_failure(
                &client,
                &scheduler_name,
                &pod,
                reason,
                &message,
                nominated.as_deref(),
            )
            .await
            {
                let _ = outcomes.send(Outcome::ReportFailed { key, error });
            }
        });
    }

    fn spawn_preempt(&self, preemptor: Arc<Pod>, node_name: String, victims: Vec<(PodKey, Pod)>) {
        let client = self.client.clone();
        let scheduler_name = self.config.scheduler_name.clone();
        self.tracker.spawn(async move {
            if let Err(error) =
                api_calls::preempt(&client, &scheduler_name, &preemptor, &node_name, &victims).await
            {
                // The preemptor stays queued and retries; a later attempt preempts again.
                warn!(pod = %pod_key(&preemptor), %error, "preemption failed");
            }
        });
    }

    fn handle_outcome(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Bound { key } => debug!(pod = %key, "bound"),
            Outcome::BindFailed { pod, error } => {
                let key = pod_key(&pod);
                self.cache.forget(&key);
                let gone =
                    matches!(&error, Error::Api(kube::Error::Api(status)) if status.code == 404);
                if gone || !self.known_pods.contains(&key) {
                    debug!(pod = %key, %error, "bind failed for a pod that is gone");
                    return;
                }
                // 409 (already bound, or changed) and other errors: retry after back-off;
                // if the pod was bound meanwhile, the watch removes it from the queue.
                warn!(pod = %key, %error, "bind failed; will retry");
                self.queue.add_after_error(pod, Instant::now());
            }
            Outcome::ReportFailed { key, error } => {
                // Forget the message so the next failure writes it again.
                self.reported.remove(&key);
                warn!(pod = %key, %error, "could not record scheduling failure");
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// True when a node update can change scheduling decisions (not just a heartbeat).
fn scheduling_fields_differ(old: &Node, new: &Node) -> bool {
    old.metadata.labels != new.metadata.labels
        || old
            .spec
            .as_ref()
            .map(|spec| (&spec.taints, spec.unschedulable))
            != new
                .spec
                .as_ref()
                .map(|spec| (&spec.taints, spec.unschedulable))
        || old.status.as_ref().map(|status| &status.allocatable)
            != new.status.as_ref().map(|status| &status.allocatable)
}
