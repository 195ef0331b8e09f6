//! The level-triggered sync of one pod: compare the spec with what the runtime reports, take
//! one step towards it (sandbox, image, init containers in order, app containers, probes,
//! restarts with back-off, termination), and write the status when it changed.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolume, PersistentVolumeClaim, Pod, PodStatus, Secret,
};
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;
use tugboat_runtime::{
    ContainerFilter, ContainerState, ContainerStatus, PodSandboxConfig, Runtime, SandboxFilter,
    SandboxState, WallClock,
};

use crate::backoff::Backoff;
use crate::config::AgentConfig;
use crate::env::{self, PodFacts, Sources};
use crate::error::{Error, Result};
use crate::events::{EventType, Recorder};
use crate::labels;
use crate::probe::{self, ProbeKind, ProbeState, ProbeTiming};
use crate::proxy::routed::RoutedView;
use crate::spec::{self, ContainerInputs};
use crate::status::{self, ContainerView, Observed, PodView, Terminated};
use crate::volumes;

/// `namespace/name`.
pub type PodKey = String;

/// The key of `pod`.
pub fn key_of(pod: &Pod) -> PodKey {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default()
    )
}

/// The agent's view of its pods, filled by the watch.
pub type PodStore = Arc<RwLock<HashMap<PodKey, Arc<Pod>>>>;

/// What the agent remembers about a pod between syncs (lost on restart, rebuilt from the
/// runtime: probes start over, restart counts live in the runtime).
#[derive(Debug, Default)]
struct PodMemory {
    /// Probe state per (container ID, probe).
    probes: HashMap<(String, ProbeKind), ProbeState>,
    /// Host paths of the pod's volumes, once prepared.
    volumes: Option<HashMap<String, PathBuf>>,
    /// The last status written, and the resourceVersion of the pod it was computed from.
    written: Option<(PodStatus, Option<String>)>,
    /// Back-offs already announced by an event, by container ID.
    announced: HashSet<String>,
    /// Service-account tokens of its projected volumes.
    tokens: HashMap<env::TokenKey, IssuedToken>,
}

/// A service-account token the agent requested for a pod.
#[derive(Debug, Clone)]
struct IssuedToken {
    value: Vec<u8>,
    /// When to ask for a new one: at 80 % of its life, as the kubelet.
    refresh_at: Instant,
}

/// The longest a terminating pod waits for the service rules to drop it (a proxy that cannot
/// apply rules must not hold every deletion for the whole grace period).
const UNROUTE_WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Syncs pods of one node; shared by the workers.
pub struct PodSyncer {
    client: kube::Client,
    runtime: Arc<dyn Runtime>,
    config: AgentConfig,
    node_ip: IpAddr,
    scheme: String,
    recorder: Recorder,
    store: PodStore,
    memory: Mutex<HashMap<String, PodMemory>>,
    backoff: Mutex<Backoff>,
    /// With the service proxy: a terminating pod's containers stop once no rule routes to it.
    routed: Option<RoutedView>,
    /// What pods' resolv.conf says.
    pod_dns: crate::dns::resolv::PodDns,
}

impl std::fmt::Debug for PodSyncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodSyncer")
            .field("node", &self.config.node_name)
            .finish_non_exhaustive()
    }
}

/// How one container's step went.
enum Step {
    /// It is running (or was just started).
    Running(Box<ContainerStatus>),
    /// It cannot run yet: reason and message.
    Waiting(String, String),
}

fn since_epoch(t: SystemTime) -> Duration {
    t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

/// The tokio instant at which wall-clock time `t` was on `clock` (for probe delays of adopted
/// containers).
fn instant_of(t: Option<SystemTime>, clock: &WallClock) -> Instant {
    let now = Instant::now();
    let ago = t
        .and_then(|t| clock.now().duration_since(t).ok())
        .unwrap_or_default();
    now.checked_sub(ago).unwrap_or(now)
}

fn restart_count_of(c: &ContainerStatus) -> i32 {
    c.annotations
        .get(labels::RESTART_COUNT)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn terminated_of(c: &ContainerStatus) -> Terminated {
    Terminated {
        exit_code: c.exit_code,
        reason: Terminated::reason_for(c.exit_code, &c.reason),
        message: c.message.clone(),
        started_at: c.started_at,
        finished_at: c.finished_at,
        container_id: c.id.clone(),
    }
}

fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Never" => false,
        "OnFailure" => exit_code != 0,
        _ => true,
    }
}

impl PodSyncer {
    /// A syncer for the pods in `store`.
    pub fn new(
        client: kube::Client,
        runtime: Arc<dyn Runtime>,
        config: AgentConfig,
        node_ip: IpAddr,
        scheme: String,
        store: PodStore,
    ) -> Self {
        let t = &config.timings;
        let backoff = Backoff::new(t.backoff_initial, t.backoff_max, t.backoff_reset);
        PodSyncer {
            recorder: Recorder::new(client.clone(), &config.node_name),
            client,
            runtime,
            node_ip,
            scheme,
            store,
            memory: Mutex::new(HashMap::new()),
            backoff: Mutex::new(backoff),
            pod_dns: crate::dns::resolv::PodDns {
                cluster: config.dns.as_ref().and_then(|d| d.pod_server()),
                host: crate::dns::resolv::ResolvConf::host_for_pods(),
            },
            config,
            routed: None,
        }
    }

    /// Stop a terminating pod's containers only after this node's service rules no longer
    /// route to it (bounded by its grace period), so no request reaches a stopping pod.
    pub fn stopping_after_unrouted(mut self, routed: RoutedView) -> Self {
        self.routed = Some(routed);
        self
    }

    /// The sandbox config of `pod`, with its resolv.conf.
    fn sandbox_config(&self, pod: &Pod, attempt: u32) -> PodSandboxConfig {
        let mut config = spec::sandbox_config(pod, attempt);
        config.dns_config = self.pod_dns.sandbox_config(pod);
        config
    }

    /// Syncs the pod `key`; returns when it wants to be looked at again.
    pub async fn sync(&self, key: &PodKey) -> Result<Option<Duration>> {
        let pod = self.store.read().get(key).cloned();
        let Some(pod) = pod else {
            self.remove_leftovers(key, None).await?;
            return Ok(None);
        };
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        // An older pod of the same name may have left sandboxes behind.
        self.remove_leftovers(key, Some(&uid)).await?;
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(&pod).await?;
            return Ok(None);
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        if matches!(phase, Some("Succeeded" | "Failed")) {
            self.stop_sandboxes(&uid).await?;
            return Ok(None);
        }
        let mut memory = self.memory.lock().remove(&uid).unwrap_or_default();
        let result = self.sync_live(&pod, &mut memory).await;
        self.memory.lock().insert(uid, memory);
        result
    }

    async fn sync_live(&self, pod: &Pod, memory: &mut PodMemory) -> Result<Option<Duration>> {
        let (_, name, uid) = spec::pod_identity(pod);
        let Some(pod_spec) = pod.spec.as_ref() else {
            return Err(Error::Spec(format!("pod {name} has no spec")));
        };
        let mut next = self.config.timings.pod_resync;

        // The sandbox: the newest ready one, else a new one.
        let sandboxes = self
            .runtime
            .list_sandboxes(&SandboxFilter {
                labels: labels::select_pod(uid),
                ..Default::default()
            })
            .await
            .map_err(Error::runtime("list sandboxes"))?;
        let ready = sandboxes
            .iter()
            .filter(|s| s.state == SandboxState::Ready)
            .max_by_key(|s| s.attempt);
        let (sandbox_id, sandbox_config) = match ready {
            Some(s) => (s.id.clone(), self.sandbox_config(pod, s.attempt)),
            None => {
                let attempt = sandboxes.iter().map(|s| s.attempt + 1).max().unwrap_or(0);
                let config = self.sandbox_config(pod, attempt);
                match self.runtime.run_sandbox(&config).await {
                    Ok(id) => (id, config),
                    Err(e) => {
                        let message = format!("Failed to create pod sandbox: {e}");
                        self.recorder
                            .emit(
                                pod,
                                None,
                                EventType::Warning,
                                "FailedCreatePodSandBox",
                                &message,
                            )
                            .await;
                        return Err(Error::runtime("run sandbox")(e));
                    }
                }
            }
        };
        let pod_ip = self
            .runtime
            .sandbox_status(&sandbox_id)
            .await
            .map_err(Error::runtime("sandbox status"))?
            .ip
            .map(|ip| ip.to_string());
        let facts = PodFacts {
            pod_ip: pod_ip.clone(),
            host_ip: Some(self.node_ip.to_string()),
        };

        // Every container of the pod, newest last per name.
        let listed = self
            .runtime
            .list_containers(&ContainerFilter {
                labels: labels::select_pod(uid),
                ..Default::default()
            })
            .await
            .map_err(Error::runtime("list containers"))?;
        let mut by_name: HashMap<String, Vec<ContainerStatus>> = HashMap::new();
        for c in listed {
            match self.runtime.container_status(&c.id).await {
                Ok(status) => by_name.entry(c.name.clone()).or_default().push(status),
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(Error::runtime("container status")(e)),
            }
        }
        for runs in by_name.values_mut() {
            runs.sort_by_key(|c| {
                (
                    restart_count_of(c),
                    c.created_at.map(since_epoch).unwrap_or_default(),
                )
            });
        }
        // Forget probe state of containers that are gone.
        let live_ids: HashSet<&str> = by_name
            .values()
            .flatten()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| c.id.as_str())
            .collect();
        memory
            .probes
            .retain(|(id, _), _| live_ids.contains(id.as_str()));

        let policy = pod_spec.restart_policy.as_deref().unwrap_or("Always");
        let ctx = SyncContext {
            pod,
            sandbox_id: &sandbox_id,
            sandbox_config: &sandbox_config,
            facts: &facts,
        };
        let mut view = PodView {
            pod_ip,
            host_ip: Some(self.node_ip.to_string()),
            runtime_scheme: self.scheme.clone(),
            ..Default::default()
        };

        // Init containers, one at a time, in order.
        let mut initialized = true;
        for container in pod_spec.init_containers.iter().flatten() {
            let runs = by_name
                .get(&container.name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let (cv, done, wait) = self
                .step_container(&ctx, container, runs, policy, false, memory)
                .await?;
            next = next.min(wait);
            view.init_containers.push(cv);
            if !done {
                initialized = false;
                break;
            }
        }

        for container in &pod_spec.containers {
            if !initialized {
                view.containers.push(ContainerView {
                    name: container.name.clone(),
                    image: container.image.clone().unwrap_or_default(),
                    image_id: String::new(),
                    state: Observed::Waiting {
                        reason: "PodInitializing".into(),
                        message: String::new(),
                    },
                    last_terminated: None,
                    restart_count: 0,
                    ready: false,
                    started: false,
                });
                continue;
            }
            let runs = by_name
                .get(&container.name)
                .map(Vec::as_slice)
                .unwrap_or_default();
            let (cv, _, wait) = self
                .step_container(&ctx, container, runs, policy, true, memory)
                .await?;
            next = next.min(wait);
            view.containers.push(cv);
        }

        if let Some(refresh) = self.refresh_tokens(pod, &facts, memory).await {
            next = next.min(refresh);
        }
        self.write_status(pod, &view, memory).await?;
        Ok(Some(next))
    }

    /// One step for one container; returns its view, whether it finished successfully (for
    /// init containers) and when to look again.
    async fn step_container(
        &self,
        ctx: &SyncContext<'_>,
        container: &Container,
        runs: &[ContainerStatus],
        policy: &str,
        is_app: bool,
        memory: &mut PodMemory,
    ) -> Result<(ContainerView, bool, Duration)> {
        let pod = ctx.pod;
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let backoff_key = format!("{uid}/{}", container.name);
        let latest = runs.last();
        let previous = runs.len().checked_sub(2).and_then(|i| runs.get(i));
        let mut wait = self.config.timings.pod_resync;
        let mut cv = ContainerView {
            name: container.name.clone(),
            image: container.image.clone().unwrap_or_default(),
            image_id: latest.map(|c| c.image_ref.clone()).unwrap_or_default(),
            state: Observed::Waiting {
                reason: "ContainerCreating".into(),
                message: String::new(),
            },
            last_terminated: previous
                .filter(|c| c.state == ContainerState::Exited)
                .map(terminated_of),
            restart_count: latest.map(restart_count_of).unwrap_or(0),
            ready: false,
            started: false,
        };

        let start_with =
            |restart_count: i32| (restart_count, u32::try_from(restart_count).unwrap_or(0));
        let step = match latest {
            None => {
                let (count, attempt) = start_with(0);
                Some(self.start(ctx, container, count, attempt, memory).await?)
            }
            Some(c) if c.state == ContainerState::Created => {
                // Created but never started (the agent stopped in between): start it.
                match self.runtime.start_container(&c.id).await {
                    Ok(()) => self
                        .fresh_status(&c.id)
                        .await?
                        .map(|s| Step::Running(Box::new(s))),
                    Err(e) => Some(Step::Waiting("RunContainerError".into(), e.to_string())),
                }
            }
            Some(c) if c.state == ContainerState::Running => {
                Some(Step::Running(Box::new(c.clone())))
            }
            Some(c) => {
                // Exited (or unknown): restart per policy, with back-off.
                let ended = terminated_of(c);
                let ran_for = match (c.started_at, c.finished_at) {
                    (Some(s), Some(f)) => f.duration_since(s).unwrap_or_default(),
                    _ => Duration::ZERO,
                };
                let done_ok = c.exit_code == 0;
                if !should_restart(policy, c.exit_code) || (!is_app && done_ok) {
                    cv.state = Observed::Terminated(ended);
                    return Ok((cv, done_ok, wait));
                }
                let now = Instant::now();
                // The delay counts from the exit, so "back-off 20s" is 20 s of waiting.
                let exited = match c.finished_at {
                    Some(f) => instant_of(Some(f), &self.config.clock),
                    None => now,
                };
                let remaining = {
                    let mut backoff = self.backoff.lock();
                    if ran_for >= backoff.reset_after() {
                        backoff.reset(&backoff_key);
                    }
                    backoff.remaining_since(&backoff_key, exited, now)
                };
                cv.last_terminated = Some(ended);
                match remaining {
                    Some(left) => {
                        let delay = self
                            .backoff
                            .lock()
                            .current_delay(&backoff_key)
                            .unwrap_or_default();
                        let message = format!(
                            "back-off {}s restarting failed container={} pod={}_{}({uid})",
                            delay.as_secs(),
                            container.name,
                            pod.metadata.name.as_deref().unwrap_or_default(),
                            pod.metadata.namespace.as_deref().unwrap_or_default(),
                        );
                        if !memory.announced.contains(&format!("backoff:{}", c.id)) {
                            memory.announced.insert(format!("backoff:{}", c.id));
                            self.recorder
                                .emit(
                                    pod,
                                    Some(&container.name),
                                    EventType::Warning,
                                    "BackOff",
                                    &format!(
                                        "Back-off restarting failed container {} in pod {}",
                                        container.name,
                                        pod.metadata.name.as_deref().unwrap_or_default()
                                    ),
                                )
                                .await;
                        }
                        cv.state = Observed::Waiting {
                            reason: "CrashLoopBackOff".into(),
                            message,
                        };
                        return Ok((cv, false, wait.min(left)));
                    }
                    None => {
                        self.backoff.lock().retried(&backoff_key, now);
                        // Keep only the run that just ended (for lastState and logs).
                        for old in &runs[..runs.len().saturating_sub(1)] {
                            if let Err(e) = self.runtime.remove_container(&old.id).await {
                                tracing::warn!(container.id = %old.id, error = %e, "cannot remove an old container");
                            }
                        }
                        let (count, attempt) = start_with(restart_count_of(c) + 1);
                        cv.restart_count = count;
                        Some(self.start(ctx, container, count, attempt, memory).await?)
                    }
                }
            }
        };

        match step {
            None => {}
            Some(Step::Waiting(reason, message)) => {
                cv.state = Observed::Waiting { reason, message };
            }
            Some(Step::Running(c)) => {
                cv.image_id = c.image_ref.clone();
                cv.restart_count = restart_count_of(&c);
                if c.state == ContainerState::Exited {
                    // Exited between start and now: the next sync handles it.
                    cv.state = Observed::Terminated(terminated_of(&c));
                    return Ok((cv, false, Duration::ZERO));
                }
                cv.state = Observed::Running {
                    container_id: c.id.clone(),
                    started_at: c.started_at,
                };
                if is_app {
                    let (started, ready, probe_wait, killed) =
                        self.run_probes(ctx, container, &c, memory).await?;
                    cv.started = started;
                    cv.ready = ready;
                    wait = wait.min(probe_wait);
                    if killed {
                        wait = Duration::ZERO;
                    }
                } else {
                    cv.started = true;
                }
            }
        }
        Ok((cv, false, wait))
    }

    async fn fresh_status(&self, id: &str) -> Result<Option<ContainerStatus>> {
        match self.runtime.container_status(id).await {
            Ok(s) => Ok(Some(s)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(Error::runtime("container status")(e)),
        }
    }

    /// Makes sure the image is there, then creates and starts the container.
    async fn start(
        &self,
        ctx: &SyncContext<'_>,
        container: &Container,
        restart_count: i32,
        attempt: u32,
        memory: &mut PodMemory,
    ) -> Result<Step> {
        let pod = ctx.pod;
        if let Some(waiting) = self.ensure_image(pod, container).await {
            return Ok(waiting);
        }
        let sources = self.fetch_sources(pod, &mut memory.tokens).await?;
        if memory.volumes.is_none() {
            match volumes::prepare(pod, &sources, ctx.facts, &self.config.data_dir) {
                Ok(v) => memory.volumes = Some(v),
                Err(Error::VolumeNotReady(reason)) => {
                    // Upstream's kubelet keeps such a pod in ContainerCreating until it mounts.
                    return Ok(Step::Waiting("ContainerCreating".into(), reason));
                }
                Err(e) => {
                    return Ok(Step::Waiting(
                        "CreateContainerConfigError".into(),
                        e.to_string(),
                    ));
                }
            }
        }
        let env = match env::resolve(pod, container, &sources, ctx.facts) {
            Ok(env) => env,
            Err(e) => {
                return Ok(Step::Waiting(
                    "CreateContainerConfigError".into(),
                    e.to_string(),
                ));
            }
        };
        let mounts = match volumes::mounts(
            container,
            memory.volumes.as_ref().unwrap_or(&HashMap::new()),
        ) {
            Ok(m) => m,
            Err(e) => {
                return Ok(Step::Waiting(
                    "CreateContainerConfigError".into(),
                    e.to_string(),
                ));
            }
        };
        let inputs = ContainerInputs {
            env,
            mounts,
            attempt,
            restart_count,
        };
        let config = spec::container_config(pod, container, &inputs);
        let id = match self
            .runtime
            .create_container(ctx.sandbox_id, &config, ctx.sandbox_config)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                let message = format!("Error: {e}");
                self.recorder
                    .emit(
                        pod,
                        Some(&container.name),
                        EventType::Warning,
                        "Failed",
                        &message,
                    )
                    .await;
                return Ok(Step::Waiting("CreateContainerError".into(), message));
            }
        };
        self.recorder
            .emit(
                pod,
                Some(&container.name),
                EventType::Normal,
                "Created",
                &format!("Created container {}", container.name),
            )
            .await;
        if let Err(e) = self.runtime.start_container(&id).await {
            let message = format!("Error: {e}");
            self.recorder
                .emit(
                    pod,
                    Some(&container.name),
                    EventType::Warning,
                    "Failed",
                    &message,
                )
                .await;
            return Ok(Step::Waiting("RunContainerError".into(), message));
        }
        self.recorder
            .emit(
                pod,
                Some(&container.name),
                EventType::Normal,
                "Started",
                &format!("Started container {}", container.name),
            )
            .await;
        tracing::info!(pod.uid = %pod.metadata.uid.as_deref().unwrap_or_default(), container = %container.name, container.id = %id, restart_count, "container started");
        Ok(match self.fresh_status(&id).await? {
            Some(status) => Step::Running(Box::new(status)),
            None => Step::Waiting("ContainerCreating".into(), String::new()),
        })
    }

    /// `None` when the image is present (pulled now if needed); else the waiting state.
    async fn ensure_image(&self, pod: &Pod, container: &Container) -> Option<Step> {
        let image = container.image.clone().unwrap_or_default();
        match self.runtime.image_status(&image).await {
            Ok(Some(_)) => return None,
            Ok(None) => {}
            Err(e) => return Some(Step::Waiting("ErrImagePull".into(), e.to_string())),
        }
        if container.image_pull_policy.as_deref() == Some("Never") {
            return Some(Step::Waiting(
                "ErrImageNeverPull".into(),
                format!("Container image \"{image}\" is not present with pull policy of Never"),
            ));
        }
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let key = format!("{uid}/image:{image}");
        let now = Instant::now();
        if self.backoff.lock().remaining(&key, now).is_some() {
            return Some(Step::Waiting(
                "ImagePullBackOff".into(),
                format!("Back-off pulling image \"{image}\""),
            ));
        }
        self.backoff.lock().retried(&key, now);
        self.recorder
            .emit(
                pod,
                Some(&container.name),
                EventType::Normal,
                "Pulling",
                &format!("Pulling image \"{image}\""),
            )
            .await;
        let started = Instant::now();
        match self.runtime.pull_image(&image).await {
            Ok(_) => {
                self.backoff.lock().reset(&key);
                self.recorder
                    .emit(
                        pod,
                        Some(&container.name),
                        EventType::Normal,
                        "Pulled",
                        &format!(
                            "Successfully pulled image \"{image}\" in {:?}",
                            started.elapsed()
                        ),
                    )
                    .await;
                None
            }
            Err(e) => {
                let message = format!("Failed to pull image \"{image}\": {e}");
                self.recorder
                    .emit(
                        pod,
                        Some(&container.name),
                        EventType::Warning,
                        "Failed",
                        &message,
                    )
                    .await;
                Some(Step::Waiting("ErrImagePull".into(), message))
            }
        }
    }

    /// The ConfigMaps and Secrets the pod refers to (absent ones are left out), and the
    /// service-account tokens of its projected volumes (from `tokens`, requested anew when
    /// due; one that cannot be had is left out and its volume waits).
    async fn fetch_sources(
        &self,
        pod: &Pod,
        tokens: &mut HashMap<env::TokenKey, IssuedToken>,
    ) -> Result<Sources> {
        let refs = env::references(pod);
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let mut sources = Sources::default();
        let now = Instant::now();
        let wanted = env::token_keys(pod);
        tokens.retain(|key, _| wanted.contains(key));
        for key in wanted {
            if tokens.get(&key).is_none_or(|t| t.refresh_at <= now) {
                match self.request_token(pod, &key).await {
                    Ok(token) => {
                        tokens.insert(key.clone(), token);
                    }
                    Err(error) => {
                        tracing::warn!(pod = ?pod.metadata.name, %error, "cannot get a service account token");
                    }
                }
            }
            if let Some(token) = tokens.get(&key) {
                sources
                    .service_account_tokens
                    .insert(key, token.value.clone());
            }
        }
        let config_maps: Api<ConfigMap> = Api::namespaced(self.client.clone(), namespace);
        for name in &refs.config_maps {
            if let Some(cm) = config_maps
                .get_opt(name)
                .await
                .map_err(Error::api(format!("get configmap {namespace}/{name}")))?
            {
                let mut data: std::collections::BTreeMap<String, Vec<u8>> = cm
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes()))
                    .collect();
                for (k, v) in cm.binary_data.unwrap_or_default() {
                    data.insert(k, v.0);
                }
                sources.config_maps.insert(name.clone(), data);
            }
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), namespace);
        for name in &refs.secrets {
            if let Some(secret) = secrets
                .get_opt(name)
                .await
                .map_err(Error::api(format!("get secret {namespace}/{name}")))?
            {
                let mut data: std::collections::BTreeMap<String, Vec<u8>> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect();
                for (k, v) in secret.string_data.unwrap_or_default() {
                    data.insert(k, v.into_bytes());
                }
                sources.secrets.insert(name.clone(), data);
            }
        }
        for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
            if let Some(claim) = &volume.persistent_volume_claim {
                let source = self.claim_source(namespace, &claim.claim_name).await?;
                sources.claims.insert(claim.claim_name.clone(), source);
            }
        }
        Ok(sources)
    }

    /// A token for the pod's service account, bound to the pod (TokenRequest, as the
    /// kubelet asks for it).
    async fn request_token(&self, pod: &Pod, key: &env::TokenKey) -> Result<IssuedToken> {
        use k8s_openapi::api::authentication::v1::{
            BoundObjectReference, TokenRequest, TokenRequestSpec,
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.as_deref())
            .filter(|name| !name.is_empty())
            .unwrap_or("default");
        let (audience, seconds) = key;
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: if audience.is_empty() {
                    Vec::new()
                } else {
                    vec![audience.clone()]
                },
                expiration_seconds: Some(*seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
            Api::namespaced(self.client.clone(), namespace);
        let asked = Instant::now();
        let answer = accounts
            .create_token_request(account, &kube::api::PostParams::default(), &request)
            .await
            .map_err(Error::api(format!(
                "request a token for serviceaccount {namespace}/{account}"
            )))?;
        let value = answer.status.map(|s| s.token).unwrap_or_default();
        // The server may shorten the life it grants; refresh at 80 % of the asked one at most.
        let life = Duration::from_secs(u64::try_from(*seconds).unwrap_or(0));
        Ok(IssuedToken {
            value: value.into_bytes(),
            refresh_at: asked + life.mul_f64(0.8),
        })
    }

    /// Rewrite the volumes of a running pod whose tokens are due for a refresh; returns when
    /// the next one is due.
    async fn refresh_tokens(
        &self,
        pod: &Pod,
        facts: &PodFacts,
        memory: &mut PodMemory,
    ) -> Option<Duration> {
        memory.volumes.as_ref()?;
        let now = Instant::now();
        let due = memory.tokens.values().map(|t| t.refresh_at).min()?;
        if due <= now {
            let sources = match self.fetch_sources(pod, &mut memory.tokens).await {
                Ok(sources) => sources,
                Err(error) => {
                    tracing::warn!(pod = ?pod.metadata.name, %error, "cannot refresh the pod's volumes");
                    return Some(Duration::from_secs(1));
                }
            };
            if let Err(error) = volumes::prepare(pod, &sources, facts, &self.config.data_dir) {
                tracing::warn!(pod = ?pod.metadata.name, %error, "cannot refresh the pod's volumes");
            }
        }
        let next = memory.tokens.values().map(|t| t.refresh_at).min()?;
        Some(
            next.saturating_duration_since(Instant::now())
                .max(Duration::from_secs(1)),
        )
    }

    /// The directory behind a claim: its bound volume's hostPath or local path.
    async fn claim_source(&self, namespace: &str, name: &str) -> Result<env::ClaimSource> {
        use env::ClaimSource;
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        let Some(claim) = claims.get_opt(name).await.map_err(Error::api(format!(
            "get persistentvolumeclaim {namespace}/{name}"
        )))?
        else {
            return Ok(ClaimSource::Waiting(format!(
                "persistentvolumeclaim \"{name}\" not found"
            )));
        };
        let bound = claim.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
        let volume_name = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        let Some(volume_name) = volume_name.filter(|_| bound) else {
            return Ok(ClaimSource::Waiting(format!(
                "waiting for persistentvolumeclaim \"{name}\" to be bound"
            )));
        };
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let Some(volume) = volumes
            .get_opt(&volume_name)
            .await
            .map_err(Error::api(format!("get persistentvolume {volume_name}")))?
        else {
            return Ok(ClaimSource::Waiting(format!(
                "persistentvolume \"{volume_name}\" of claim \"{name}\" not found"
            )));
        };
        let spec = volume.spec.unwrap_or_default();
        let path = spec
            .host_path
            .map(|h| h.path)
            .or_else(|| spec.local.map(|l| l.path));
        Ok(match path {
            Some(path) => ClaimSource::Directory(PathBuf::from(path)),
            None => ClaimSource::Unsupported(format!(
                "persistentvolume \"{volume_name}\" is neither hostPath nor local: this node cannot mount it"
            )),
        })
    }

    /// Runs the probes that are due; returns (started, ready, next probe in, killed).
    async fn run_probes(
        &self,
        ctx: &SyncContext<'_>,
        container: &Container,
        running: &ContainerStatus,
        memory: &mut PodMemory,
    ) -> Result<(bool, bool, Duration, bool)> {
        let pod = ctx.pod;
        let started_at = instant_of(running.started_at, &self.config.clock);
        let now = Instant::now();
        let mut next = self.config.timings.pod_resync;
        let pod_ip = ctx.facts.pod_ip.clone().unwrap_or_default();

        let mut verdict = HashMap::new();
        for kind in [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ] {
            let Some(spec_probe) = kind.of(container) else {
                continue;
            };
            // Startup gates the other two.
            if kind != ProbeKind::Startup
                && verdict
                    .get(&ProbeKind::Startup)
                    .is_some_and(|passed| !passed)
            {
                continue;
            }
            let state = memory
                .probes
                .entry((running.id.clone(), kind))
                .or_insert_with(|| ProbeState::new(kind, ProbeTiming::of(spec_probe), started_at));
            // A startup probe is done once it passed (the kubelet stops it): failing it later
            // must not restart a container that liveness says is fine.
            let finished_startup = kind == ProbeKind::Startup && state.passing();
            if state.due(now) && !finished_startup {
                let outcome = match probe::action(spec_probe, container, &pod_ip) {
                    Ok(action) => {
                        probe::run(&action, self.runtime.as_ref(), &running.id, state.timeout())
                            .await
                    }
                    Err(why) => Err(why),
                };
                let flipped = state.record(outcome.is_ok(), Instant::now());
                if let Err(why) = &outcome {
                    self.recorder
                        .emit(
                            pod,
                            Some(&container.name),
                            EventType::Warning,
                            "Unhealthy",
                            &format!("{} probe failed: {why}", kind.name()),
                        )
                        .await;
                }
                if flipped == Some(false) && kind != ProbeKind::Readiness {
                    let what = if kind == ProbeKind::Liveness {
                        "liveness"
                    } else {
                        "startup"
                    };
                    let message = format!(
                        "Container {} failed {what} probe, will be restarted",
                        container.name
                    );
                    self.recorder
                        .emit(
                            pod,
                            Some(&container.name),
                            EventType::Normal,
                            "Killing",
                            &message,
                        )
                        .await;
                    tracing::info!(container = %container.name, container.id = %running.id, "{message}");
                    let grace = grace_of(pod, spec_probe.termination_grace_period_seconds);
                    self.runtime
                        .stop_container(&running.id, grace)
                        .await
                        .map_err(Error::runtime("stop container"))?;
                    memory.probes.retain(|(id, _), _| *id != running.id);
                    return Ok((false, false, Duration::ZERO, true));
                }
            }
            if !finished_startup {
                next = next.min(state.next_run().saturating_duration_since(Instant::now()));
            }
            verdict.insert(kind, state.passing());
        }
        let started = verdict.get(&ProbeKind::Startup).copied().unwrap_or(true);
        let ready = started && verdict.get(&ProbeKind::Readiness).copied().unwrap_or(true);
        Ok((started, ready, next, false))
    }

    async fn write_status(&self, pod: &Pod, view: &PodView, memory: &mut PodMemory) -> Result<()> {
        let status = status::compute(pod, view, self.config.clock.now());
        if pod.status.as_ref() == Some(&status) {
            return Ok(());
        }
        if let Some((written, rv)) = &memory.written
            && *written == status
            && *rv == pod.metadata.resource_version
        {
            // Written already; the watch has not brought it back yet.
            return Ok(());
        }
        let (namespace, name, _) = spec::pod_identity(pod);
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let patch = serde_json::json!({ "status": status });
        match pods
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {}
            // Deleted meanwhile: the watch will tell.
            Err(kube::Error::Api(e)) if e.code == 404 => return Ok(()),
            Err(e) => {
                return Err(Error::api(format!("update pod {namespace}/{name} status"))(
                    e,
                ));
            }
        }
        memory.written = Some((status, pod.metadata.resource_version.clone()));
        Ok(())
    }

    /// preStop hooks, stop every container with the grace period, remove the sandboxes and
    /// files, then finish the deletion.
    async fn terminate(&self, pod: &Pod) -> Result<()> {
        let (namespace, name, uid) = spec::pod_identity(pod);
        let grace = grace_of(pod, pod.metadata.deletion_grace_period_seconds);
        let deadline = Instant::now() + grace;
        let running = self
            .runtime
            .list_containers(&ContainerFilter {
                labels: labels::select_pod(uid),
                state: Some(ContainerState::Running),
                ..Default::default()
            })
            .await
            .map_err(Error::runtime("list containers"))?;
        let specs: HashMap<&str, &Container> = pod
            .spec
            .iter()
            .flat_map(|s| {
                s.containers
                    .iter()
                    .chain(s.init_containers.iter().flatten())
            })
            .map(|c| (c.name.as_str(), c))
            .collect();
        let pod_ip = self.pod_ip(uid).await;
        if let (Some(routed), Ok(ip), false) = (
            self.routed.as_ref(),
            pod_ip.parse::<Ipv4Addr>(),
            running.is_empty(),
        ) {
            let limit = deadline
                .saturating_duration_since(Instant::now())
                .min(UNROUTE_WAIT_LIMIT);
            if !routed.wait_unrouted(ip, limit).await {
                tracing::warn!(pod = %format!("{namespace}/{name}"), %ip, "still routed when the grace period ran out; stopping anyway");
            }
        }
        let stops = running.iter().map(|c| {
            let spec = specs.get(c.name.as_str()).copied();
            let pod_ip = pod_ip.clone();
            async move {
                self.recorder
                    .emit(
                        pod,
                        Some(&c.name),
                        EventType::Normal,
                        "Killing",
                        &format!("Stopping container {}", c.name),
                    )
                    .await;
                if let Some(hook) = spec
                    .and_then(|s| s.lifecycle.as_ref())
                    .and_then(|l| l.pre_stop.as_ref())
                {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let action = if let Some(exec) = &hook.exec {
                        Some(probe::ProbeAction::Exec(
                            exec.command.clone().unwrap_or_default(),
                        ))
                    } else {
                        hook.http_get.as_ref().and_then(|h| {
                            let probe = k8s_openapi::api::core::v1::Probe {
                                http_get: Some(h.clone()),
                                ..Default::default()
                            };
                            spec.and_then(|s| probe::action(&probe, s, &pod_ip).ok())
                        })
                    };
                    if let Some(action) = action
                        && let Err(why) =
                            probe::run(&action, self.runtime.as_ref(), &c.id, left).await
                    {
                        self.recorder
                            .emit(
                                pod,
                                Some(&c.name),
                                EventType::Warning,
                                "FailedPreStopHook",
                                &format!("PreStopHook failed: {why}"),
                            )
                            .await;
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                self.runtime.stop_container(&c.id, left).await
            }
        });
        for result in futures::future::join_all(stops).await {
            if let Err(e) = result
                && !e.is_not_found()
            {
                return Err(Error::runtime("stop container")(e));
            }
        }
        self.remove_sandboxes(uid).await?;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid.to_string()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match pods.delete(name, &params).await {
            Ok(_) => {}
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => {}
            Err(e) => return Err(Error::api(format!("delete pod {namespace}/{name}"))(e)),
        }
        tracing::info!(
            pod.namespace = namespace,
            pod.name = name,
            pod.uid = uid,
            "pod terminated"
        );
        Ok(())
    }

    async fn pod_ip(&self, uid: &str) -> String {
        let sandboxes = self
            .runtime
            .list_sandboxes(&SandboxFilter {
                labels: labels::select_pod(uid),
                state: Some(SandboxState::Ready),
            })
            .await
            .unwrap_or_default();
        for s in sandboxes {
            if let Ok(status) = self.runtime.sandbox_status(&s.id).await
                && let Some(ip) = status.ip
            {
                return ip.to_string();
            }
        }
        String::new()
    }

    /// Stops (but keeps) a finished pod's sandboxes.
    async fn stop_sandboxes(&self, uid: &str) -> Result<()> {
        let sandboxes = self
            .runtime
            .list_sandboxes(&SandboxFilter {
                labels: labels::select_pod(uid),
                state: Some(SandboxState::Ready),
            })
            .await
            .map_err(Error::runtime("list sandboxes"))?;
        for s in sandboxes {
            self.runtime
                .stop_sandbox(&s.id)
                .await
                .map_err(Error::runtime("stop sandbox"))?;
        }
        Ok(())
    }

    /// Stops and removes every sandbox of pod `uid` and its files, and forgets it.
    pub async fn remove_sandboxes(&self, uid: &str) -> Result<()> {
        let sandboxes = self
            .runtime
            .list_sandboxes(&SandboxFilter {
                labels: labels::select_pod(uid),
                ..Default::default()
            })
            .await
            .map_err(Error::runtime("list sandboxes"))?;
        for s in sandboxes {
            self.runtime
                .stop_sandbox(&s.id)
                .await
                .map_err(Error::runtime("stop sandbox"))?;
            self.runtime
                .remove_sandbox(&s.id)
                .await
                .map_err(Error::runtime("remove sandbox"))?;
        }
        volumes::remove(&self.config.data_dir, uid)?;
        self.memory.lock().remove(uid);
        self.backoff.lock().reset_prefix(&format!("{uid}/"));
        Ok(())
    }

    /// Removes sandboxes of pod `key` whose UID is not `keep` (a deleted or replaced pod).
    async fn remove_leftovers(&self, key: &PodKey, keep: Option<&str>) -> Result<()> {
        let Some((namespace, name)) = key.split_once('/') else {
            return Ok(());
        };
        let sandboxes = self
            .runtime
            .list_sandboxes(&SandboxFilter {
                labels: [
                    (labels::POD_NAMESPACE.to_string(), namespace.to_string()),
                    (labels::POD_NAME.to_string(), name.to_string()),
                ]
                .into(),
                ..Default::default()
            })
            .await
            .map_err(Error::runtime("list sandboxes"))?;
        let stale: HashSet<String> = sandboxes
            .into_iter()
            .map(|s| s.uid)
            .filter(|u| Some(u.as_str()) != keep)
            .collect();
        for uid in stale {
            tracing::info!(pod = %key, pod.uid = %uid, "removing the sandboxes of a pod that is gone");
            self.remove_sandboxes(&uid).await?;
        }
        Ok(())
    }

    /// Removes every managed sandbox whose pod is not in the store (after a full list).
    pub async fn sweep_orphans(&self) -> Result<()> {
        // Sandboxes first, then the store: a sandbox is only made for a pod already stored,
        // so a pod created meanwhile is never taken for an orphan.
        let sandboxes = self
            .runtime
            .list_sandboxes(&SandboxFilter {
                labels: labels::select_managed(),
                ..Default::default()
            })
            .await
            .map_err(Error::runtime("list sandboxes"))?;
        let known: HashSet<String> = self
            .store
            .read()
            .values()
            .filter_map(|p| p.metadata.uid.clone())
            .collect();
        let orphans: HashSet<String> = sandboxes
            .into_iter()
            .map(|s| s.uid)
            .filter(|uid| !known.contains(uid))
            .collect();
        for uid in orphans {
            tracing::info!(pod.uid = %uid, "removing sandboxes that have no pod");
            self.remove_sandboxes(&uid).await?;
        }
        Ok(())
    }
}

/// What one pod's sync works with.
struct SyncContext<'a> {
    pod: &'a Pod,
    sandbox_id: &'a str,
    sandbox_config: &'a PodSandboxConfig,
    facts: &'a PodFacts,
}

/// The grace period: an override (deletion or probe), else the pod's, else 30 s.
fn grace_of(pod: &Pod, override_seconds: Option<i64>) -> Duration {
    let seconds = override_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(seconds).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies() {
        assert!(should_restart("Always", 0));
        assert!(should_restart("OnFailure", 1));
        assert!(!should_restart("OnFailure", 0));
        assert!(!should_restart("Never", 1));
    }
}
