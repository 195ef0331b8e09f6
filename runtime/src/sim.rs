//! The simulated runtime (`tug up --runtime sim`): nothing is executed. Sandboxes are ready
//! at once with a fake IP, containers run as soon as they start, exec probes pass, and CPU
//! use is what the pod's annotation says.
//!
//! Pod annotations it reads (from the sandbox config, or the container config):
//! - `tugboat.dev/sim-cpu-millicores`: CPU use of each container (default 0).
//! - `tugboat.dev/sim-memory-bytes`: working-set memory of each container (default 0).
//! - `tugboat.dev/sim-exec-exit-code`: exit code of every exec, so a pod can make its exec
//!   probes fail (default 0). HTTP and TCP probes are answered the same way: the fake pod
//!   IPs are never dialled.
//! - `tugboat.dev/sim-run-millis`: each container exits this long after it starts (default:
//!   it runs until stopped), with
//! - `tugboat.dev/sim-exit-code`: the code it exits with then (default 0). Jobs use these.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;

use crate::clock::WallClock;
use crate::error::{Error, Result};
use crate::logs::{LogLine, LogOptions};
use crate::runtime::Runtime;
use crate::types::{
    Container, ContainerConfig, ContainerFilter, ContainerState, ContainerStats, ContainerStatus,
    ExecResult, ExecStreams, ImageInfo, Labels, PodSandboxConfig, RuntimeVersion, Sandbox,
    SandboxFilter, SandboxState, labels_match,
};

/// Annotation: CPU use of each container, in millicores.
pub const CPU_ANNOTATION: &str = "tugboat.dev/sim-cpu-millicores";
/// Annotation: working-set memory of each container, in bytes.
pub const MEMORY_ANNOTATION: &str = "tugboat.dev/sim-memory-bytes";
/// Annotation: the exit code every exec returns.
pub const EXEC_EXIT_ANNOTATION: &str = "tugboat.dev/sim-exec-exit-code";
/// Annotation: how long each container runs before it exits by itself, in milliseconds.
pub const RUN_MILLIS_ANNOTATION: &str = "tugboat.dev/sim-run-millis";
/// Annotation: the code a container exits with when its run time is over.
pub const EXIT_CODE_ANNOTATION: &str = "tugboat.dev/sim-exit-code";

/// 198.18.0.0/15 (RFC 2544, benchmarking): never routed, so a fake pod IP that something
/// tries to reach by mistake never meets a real host.
const SIM_NET: u32 = u32::from_be_bytes([198, 18, 0, 0]);
const SIM_NET_SIZE: u32 = 1 << 17;

/// Fake pod IPs, shared by every simulated node of a process so IPs stay unique.
#[derive(Debug, Default)]
pub struct SimNetwork {
    inner: Mutex<IpPool>,
}

#[derive(Debug, Default)]
struct IpPool {
    next: u32,
    free: Vec<u32>,
}

impl SimNetwork {
    /// A new, empty pool.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    fn allocate(&self) -> Option<Ipv4Addr> {
        let mut p = self.inner.lock();
        let offset = match p.free.pop() {
            Some(o) => o,
            None => {
                // Skip the network address; stop before the broadcast one.
                if p.next + 2 >= SIM_NET_SIZE {
                    return None;
                }
                p.next += 1;
                p.next
            }
        };
        Some(Ipv4Addr::from(SIM_NET + offset))
    }

    fn release(&self, ip: Ipv4Addr) {
        let offset = u32::from(ip).wrapping_sub(SIM_NET);
        if offset < SIM_NET_SIZE {
            self.inner.lock().free.push(offset);
        }
    }
}

#[derive(Debug, Clone)]
struct SimSandbox {
    name: String,
    namespace: String,
    uid: String,
    attempt: u32,
    state: SandboxState,
    ip: Option<Ipv4Addr>,
    labels: Labels,
    annotations: Labels,
    created_at: SystemTime,
}

#[derive(Debug, Clone)]
struct SimContainer {
    sandbox_id: String,
    name: String,
    attempt: u32,
    image: String,
    state: ContainerState,
    exit_code: i32,
    reason: String,
    labels: Labels,
    annotations: Labels,
    created_at: SystemTime,
    started_at: Option<SystemTime>,
    finished_at: Option<SystemTime>,
    cpu_millicores: u64,
    memory_bytes: u64,
    exec_exit_code: i32,
    /// Exits by itself this long after starting, with `run_exit_code`.
    run_for: Option<Duration>,
    run_exit_code: i32,
}

impl SimContainer {
    /// A running container whose run time is over has exited by now.
    fn settle(&mut self, now: SystemTime) {
        let (ContainerState::Running, Some(run_for), Some(started)) =
            (self.state, self.run_for, self.started_at)
        else {
            return;
        };
        let ends = started + run_for;
        if now >= ends {
            self.state = ContainerState::Exited;
            self.exit_code = self.run_exit_code;
            self.reason = if self.run_exit_code == 0 {
                "Completed".into()
            } else {
                "Error".into()
            };
            self.finished_at = Some(ends);
        }
    }
}

#[derive(Debug, Default)]
struct State {
    sandboxes: HashMap<String, SimSandbox>,
    containers: HashMap<String, SimContainer>,
    images: Vec<String>,
}

/// One simulated node's runtime.
#[derive(Debug)]
pub struct SimRuntime {
    node: String,
    network: Arc<SimNetwork>,
    next_id: AtomicU64,
    state: Mutex<State>,
    clock: WallClock,
}

impl SimRuntime {
    /// A runtime for node `node`, taking pod IPs from `network`.
    pub fn new(node: &str, network: Arc<SimNetwork>) -> Self {
        Self {
            node: node.to_string(),
            network,
            next_id: AtomicU64::new(1),
            state: Mutex::new(State::default()),
            clock: WallClock::system(),
        }
    }

    /// The same runtime reading time from `clock` instead of the system's (creation, start
    /// and exit times, and when a container with a run time exits).
    pub fn with_clock(mut self, clock: WallClock) -> Self {
        self.clock = clock;
        self
    }

    /// Forgets every sandbox and container and frees their IPs (`tug reset`).
    pub fn reset(&self) {
        let mut st = self.state.lock();
        for sb in st.sandboxes.values() {
            if let Some(ip) = sb.ip {
                self.network.release(ip);
            }
        }
        st.sandboxes.clear();
        st.containers.clear();
    }

    fn new_id(&self) -> String {
        // Unique per node and process; shaped like a runtime's 64-hex ID.
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let node = self.node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        format!("{node:016x}{n:048x}")
    }
}

fn map(m: &HashMap<String, String>) -> Labels {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// An annotation's number from the container config, else the sandbox config.
fn annotation<T: std::str::FromStr + Default>(key: &str, c: &Labels, sb: &Labels) -> T {
    c.get(key)
        .or_else(|| sb.get(key))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_default()
}

fn sandbox_view(id: &str, s: &SimSandbox, with_ip: bool) -> Sandbox {
    Sandbox {
        id: id.to_string(),
        name: s.name.clone(),
        namespace: s.namespace.clone(),
        uid: s.uid.clone(),
        attempt: s.attempt,
        state: s.state,
        ip: if with_ip { s.ip.map(IpAddr::V4) } else { None },
        labels: s.labels.clone(),
        annotations: s.annotations.clone(),
        created_at: Some(s.created_at),
    }
}

fn stop(c: &mut SimContainer, now: SystemTime) {
    if matches!(c.state, ContainerState::Running | ContainerState::Created) {
        // A simulated process exits cleanly on SIGTERM.
        c.state = ContainerState::Exited;
        c.exit_code = 0;
        c.reason = "Completed".to_string();
        c.finished_at = Some(now);
    }
}

fn container_matches(id: &str, c: &SimContainer, f: &ContainerFilter) -> bool {
    let _ = id;
    f.sandbox_id.as_ref().is_none_or(|s| *s == c.sandbox_id)
        && f.state.is_none_or(|s| s == c.state)
        && labels_match(&c.labels, &f.labels)
}

// === impl Runtime for SimRuntime ===

#[async_trait]
impl Runtime for SimRuntime {
    fn simulated(&self) -> bool {
        true
    }

    async fn version(&self) -> Result<RuntimeVersion> {
        Ok(RuntimeVersion {
            runtime_name: "tugboat-sim".to_string(),
            runtime_version: env!("CARGO_PKG_VERSION").to_string(),
            runtime_api_version: "v1".to_string(),
        })
    }

    async fn ready(&self) -> Result<bool> {
        Ok(true)
    }

    async fn run_sandbox(&self, config: &PodSandboxConfig) -> Result<String> {
        let meta = config
            .metadata
            .as_ref()
            .ok_or_else(|| Error::Invalid("sandbox config without metadata".into()))?;
        let ip = self
            .network
            .allocate()
            .ok_or_else(|| Error::Invalid("simulated pod IPs exhausted".into()))?;
        let id = self.new_id();
        self.state.lock().sandboxes.insert(
            id.clone(),
            SimSandbox {
                name: meta.name.clone(),
                namespace: meta.namespace.clone(),
                uid: meta.uid.clone(),
                attempt: meta.attempt,
                state: SandboxState::Ready,
                ip: Some(ip),
                labels: map(&config.labels),
                annotations: map(&config.annotations),
                created_at: self.clock.now(),
            },
        );
        Ok(id)
    }

    async fn stop_sandbox(&self, id: &str) -> Result<()> {
        let mut st = self.state.lock();
        let Some(sb) = st.sandboxes.get_mut(id) else {
            return Ok(());
        };
        sb.state = SandboxState::NotReady;
        if let Some(ip) = sb.ip.take() {
            self.network.release(ip);
        }
        let now = self.clock.now();
        for c in st.containers.values_mut().filter(|c| c.sandbox_id == id) {
            // One that exited by itself before keeps its code.
            c.settle(now);
            stop(c, now);
        }
        Ok(())
    }

    async fn remove_sandbox(&self, id: &str) -> Result<()> {
        let mut st = self.state.lock();
        if let Some(sb) = st.sandboxes.remove(id)
            && let Some(ip) = sb.ip
        {
            self.network.release(ip);
        }
        st.containers.retain(|_, c| c.sandbox_id != id);
        Ok(())
    }

    async fn sandbox_status(&self, id: &str) -> Result<Sandbox> {
        let st = self.state.lock();
        st.sandboxes
            .get(id)
            .map(|s| sandbox_view(id, s, true))
            .ok_or_else(|| Error::NotFound(format!("sandbox {id}")))
    }

    async fn list_sandboxes(&self, filter: &SandboxFilter) -> Result<Vec<Sandbox>> {
        let st = self.state.lock();
        Ok(st
            .sandboxes
            .iter()
            .filter(|(_, s)| {
                filter.state.is_none_or(|f| f == s.state) && labels_match(&s.labels, &filter.labels)
            })
            .map(|(id, s)| sandbox_view(id, s, false))
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        _sandbox: &PodSandboxConfig,
    ) -> Result<String> {
        let meta = config
            .metadata
            .as_ref()
            .ok_or_else(|| Error::Invalid("container config without metadata".into()))?;
        let id = self.new_id();
        let mut st = self.state.lock();
        let sb = st
            .sandboxes
            .get(sandbox_id)
            .ok_or_else(|| Error::NotFound(format!("sandbox {sandbox_id}")))?;
        let annotations = map(&config.annotations);
        let container = SimContainer {
            sandbox_id: sandbox_id.to_string(),
            name: meta.name.clone(),
            attempt: meta.attempt,
            image: config
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
            state: ContainerState::Created,
            exit_code: 0,
            reason: String::new(),
            labels: map(&config.labels),
            cpu_millicores: annotation(CPU_ANNOTATION, &annotations, &sb.annotations),
            memory_bytes: annotation(MEMORY_ANNOTATION, &annotations, &sb.annotations),
            exec_exit_code: annotation(EXEC_EXIT_ANNOTATION, &annotations, &sb.annotations),
            run_for: annotations
                .get(RUN_MILLIS_ANNOTATION)
                .or_else(|| sb.annotations.get(RUN_MILLIS_ANNOTATION))
                .and_then(|v| v.trim().parse().ok())
                .map(Duration::from_millis),
            run_exit_code: annotation(EXIT_CODE_ANNOTATION, &annotations, &sb.annotations),
            annotations,
            created_at: self.clock.now(),
            started_at: None,
            finished_at: None,
        };
        st.containers.insert(id.clone(), container);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        let mut st = self.state.lock();
        let c = st
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("container {id}")))?;
        if c.state != ContainerState::Created {
            return Err(Error::Invalid(format!(
                "container {id} is not in created state"
            )));
        }
        c.state = ContainerState::Running;
        c.started_at = Some(self.clock.now());
        Ok(())
    }

    async fn stop_container(&self, id: &str, _grace: Duration) -> Result<()> {
        let mut st = self.state.lock();
        let c = st
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("container {id}")))?;
        let now = self.clock.now();
        c.settle(now);
        stop(c, now);
        Ok(())
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.state.lock().containers.remove(id);
        Ok(())
    }

    async fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<Container>> {
        let mut st = self.state.lock();
        let now = self.clock.now();
        st.containers.values_mut().for_each(|c| c.settle(now));
        Ok(st
            .containers
            .iter()
            .filter(|(id, c)| container_matches(id, c, filter))
            .map(|(id, c)| Container {
                id: id.clone(),
                sandbox_id: c.sandbox_id.clone(),
                name: c.name.clone(),
                attempt: c.attempt,
                image: c.image.clone(),
                image_ref: c.image.clone(),
                state: c.state,
                labels: c.labels.clone(),
                annotations: c.annotations.clone(),
                created_at: Some(c.created_at),
            })
            .collect())
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let mut st = self.state.lock();
        let c = st
            .containers
            .get_mut(id)
            .ok_or_else(|| Error::NotFound(format!("container {id}")))?;
        c.settle(self.clock.now());
        Ok(ContainerStatus {
            id: id.to_string(),
            name: c.name.clone(),
            attempt: c.attempt,
            state: c.state,
            exit_code: c.exit_code,
            reason: c.reason.clone(),
            message: String::new(),
            created_at: Some(c.created_at),
            started_at: c.started_at,
            finished_at: c.finished_at,
            image: c.image.clone(),
            image_ref: c.image.clone(),
            log_path: None,
            labels: c.labels.clone(),
            annotations: c.annotations.clone(),
        })
    }

    async fn exec_sync(&self, id: &str, _cmd: &[String], _timeout: Duration) -> Result<ExecResult> {
        let st = self.state.lock();
        let c = st
            .containers
            .get(id)
            .ok_or_else(|| Error::NotFound(format!("container {id}")))?;
        if c.state != ContainerState::Running {
            return Err(Error::Invalid(format!("container {id} is not running")));
        }
        Ok(ExecResult {
            exit_code: c.exec_exit_code,
            ..ExecResult::default()
        })
    }

    async fn exec_url(&self, id: &str, _cmd: &[String], _streams: ExecStreams) -> Result<String> {
        if !self.state.lock().containers.contains_key(id) {
            return Err(Error::NotFound(format!("container {id}")));
        }
        Err(Error::Invalid(
            "simulated containers run no processes: exec is not possible".into(),
        ))
    }

    async fn port_forward_url(&self, sandbox_id: &str, _ports: &[u16]) -> Result<String> {
        Err(Error::Invalid(format!(
            "sandbox {sandbox_id} is simulated and has no network: port-forward is not possible"
        )))
    }

    async fn read_logs(&self, id: &str, _opts: &LogOptions) -> Result<Vec<LogLine>> {
        // Nothing runs, so nothing is written.
        if self.state.lock().containers.contains_key(id) {
            Ok(Vec::new())
        } else {
            Err(Error::NotFound(format!("container {id}")))
        }
    }

    async fn container_stats(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStats>> {
        let now = self.clock.now();
        let st = self.state.lock();
        Ok(st
            .containers
            .iter()
            .filter(|(id, c)| {
                c.state == ContainerState::Running && container_matches(id, c, filter)
            })
            .map(|(id, c)| {
                let nano_cores = c.cpu_millicores.saturating_mul(1_000_000);
                let running = c
                    .started_at
                    .and_then(|s| now.duration_since(s).ok())
                    .unwrap_or_default();
                let used = u128::from(nano_cores) * running.as_nanos() / 1_000_000_000;
                ContainerStats {
                    id: id.clone(),
                    name: c.name.clone(),
                    labels: c.labels.clone(),
                    timestamp: Some(now),
                    cpu_usage_core_nanoseconds: Some(u64::try_from(used).unwrap_or(u64::MAX)),
                    cpu_usage_nano_cores: Some(nano_cores),
                    memory_working_set_bytes: Some(c.memory_bytes),
                }
            })
            .collect())
    }

    async fn image_status(&self, image: &str) -> Result<Option<ImageInfo>> {
        // Every image is "present": nothing is pulled or run.
        Ok(Some(sim_image(image)))
    }

    async fn pull_image(&self, image: &str) -> Result<String> {
        let mut st = self.state.lock();
        if !st.images.iter().any(|i| i == image) {
            st.images.push(image.to_string());
        }
        Ok(image.to_string())
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        Ok(self
            .state
            .lock()
            .images
            .iter()
            .map(|i| sim_image(i))
            .collect())
    }
}

fn sim_image(name: &str) -> ImageInfo {
    ImageInfo {
        id: format!("sim:{name}"),
        repo_tags: vec![name.to_string()],
        repo_digests: Vec::new(),
        size: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri::v1;

    fn pod(name: &str, cpu: Option<&str>) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: name.into(),
                namespace: "default".into(),
                uid: format!("uid-{name}"),
                attempt: 0,
            }),
            labels: [("tugboat.dev/pod-uid".to_string(), format!("uid-{name}"))].into(),
            annotations: cpu
                .map(|c| [(CPU_ANNOTATION.to_string(), c.to_string())].into())
                .unwrap_or_default(),
            ..Default::default()
        }
    }

    fn container(name: &str) -> ContainerConfig {
        ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: name.into(),
                attempt: 0,
            }),
            image: Some(v1::ImageSpec {
                image: "busybox".into(),
                ..Default::default()
            }),
            labels: [("tugboat.dev/container".to_string(), name.to_string())].into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn pods_run_at_once_with_fake_ips_and_annotated_cpu() {
        let net = SimNetwork::new();
        let a = SimRuntime::new("node-a", net.clone());
        let b = SimRuntime::new("node-b", net);
        let cfg = pod("web", Some("250"));
        let sa = a.run_sandbox(&cfg).await.expect("sandbox");
        let sb = b.run_sandbox(&pod("db", None)).await.expect("sandbox");
        let ipa = a.sandbox_status(&sa).await.expect("status").ip.expect("ip");
        let ipb = b.sandbox_status(&sb).await.expect("status").ip.expect("ip");
        assert_ne!(ipa, ipb, "IPs are unique across nodes");
        assert!(
            matches!(ipa, IpAddr::V4(v4) if v4.octets()[0] == 198 && (v4.octets()[1] & 0xfe) == 18)
        );

        let c = a
            .create_container(&sa, &container("app"), &cfg)
            .await
            .expect("create");
        a.start_container(&c).await.expect("start");
        let st = a.container_status(&c).await.expect("status");
        assert_eq!(st.state, ContainerState::Running);
        assert!(st.started_at.is_some());

        let ok = a
            .exec_sync(&c, &["true".into()], Duration::from_secs(1))
            .await
            .expect("exec");
        assert_eq!(ok.exit_code, 0);

        let stats = a
            .container_stats(&ContainerFilter::default())
            .await
            .expect("stats");
        assert_eq!(stats.len(), 1);
        assert_eq!(stats[0].cpu_usage_nano_cores, Some(250_000_000));

        // Adoption: the agent finds its objects by label.
        let by_label = a
            .list_sandboxes(&SandboxFilter {
                labels: [("tugboat.dev/pod-uid".to_string(), "uid-web".to_string())].into(),
                ..Default::default()
            })
            .await
            .expect("list");
        assert_eq!(by_label.len(), 1);
        assert_eq!(by_label[0].id, sa);

        a.stop_sandbox(&sa).await.expect("stop");
        let st = a.container_status(&c).await.expect("status");
        assert_eq!(st.state, ContainerState::Exited);
        assert_eq!(st.reason, "Completed");
        assert_eq!(a.sandbox_status(&sa).await.expect("status").ip, None);
        a.remove_sandbox(&sa).await.expect("remove");
        assert!(
            a.container_status(&c)
                .await
                .expect_err("gone")
                .is_not_found()
        );
        assert!(
            a.list_sandboxes(&SandboxFilter::default())
                .await
                .expect("list")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn containers_exit_by_themselves_when_the_pod_says_so() {
        let rt = SimRuntime::new("n", SimNetwork::new());
        let mut cfg = pod("p", None);
        cfg.annotations
            .insert(RUN_MILLIS_ANNOTATION.into(), "50".into());
        cfg.annotations
            .insert(EXIT_CODE_ANNOTATION.into(), "3".into());
        let s = rt.run_sandbox(&cfg).await.expect("sandbox");
        let c = rt
            .create_container(&s, &container("c"), &cfg)
            .await
            .expect("create");
        rt.start_container(&c).await.expect("start");
        assert_eq!(
            rt.container_status(&c).await.expect("status").state,
            ContainerState::Running
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        let st = rt.container_status(&c).await.expect("status");
        assert_eq!(st.state, ContainerState::Exited);
        assert_eq!(st.exit_code, 3);
        assert_eq!(st.reason, "Error");
        // Stopping it afterwards keeps the code it exited with.
        rt.stop_container(&c, Duration::ZERO).await.expect("stop");
        assert_eq!(rt.container_status(&c).await.expect("status").exit_code, 3);
    }

    #[tokio::test]
    async fn run_times_follow_the_clock_it_is_given() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let now = Arc::new(Mutex::new(start));
        let read = now.clone();
        let rt = SimRuntime::new("n", SimNetwork::new())
            .with_clock(WallClock::new(move || *read.lock()));
        let mut cfg = pod("p", None);
        cfg.annotations
            .insert(RUN_MILLIS_ANNOTATION.into(), "5000".into());
        cfg.annotations
            .insert(EXIT_CODE_ANNOTATION.into(), "2".into());
        let s = rt.run_sandbox(&cfg).await.expect("sandbox");
        let c = rt
            .create_container(&s, &container("c"), &cfg)
            .await
            .expect("create");
        rt.start_container(&c).await.expect("start");
        *now.lock() = start + Duration::from_millis(4999);
        let st = rt.container_status(&c).await.expect("status");
        assert_eq!(st.state, ContainerState::Running);
        assert_eq!(st.started_at, Some(start));
        *now.lock() = start + Duration::from_secs(60);
        let st = rt.container_status(&c).await.expect("status");
        assert_eq!(st.state, ContainerState::Exited);
        assert_eq!(st.exit_code, 2);
        assert_eq!(st.finished_at, Some(start + Duration::from_secs(5)));
        // Stopping the sandbox afterwards keeps the code it exited with.
        rt.stop_sandbox(&s).await.expect("stop");
        assert_eq!(rt.container_status(&c).await.expect("status").exit_code, 2);
    }

    #[tokio::test]
    async fn exec_probes_fail_when_the_pod_says_so() {
        let rt = SimRuntime::new("n", SimNetwork::new());
        let mut cfg = pod("p", None);
        cfg.annotations
            .insert(EXEC_EXIT_ANNOTATION.into(), "1".into());
        let s = rt.run_sandbox(&cfg).await.expect("sandbox");
        let c = rt
            .create_container(&s, &container("c"), &cfg)
            .await
            .expect("create");
        assert!(
            rt.exec_sync(&c, &[], Duration::ZERO).await.is_err(),
            "not running yet"
        );
        rt.start_container(&c).await.expect("start");
        let r = rt.exec_sync(&c, &[], Duration::ZERO).await.expect("exec");
        assert_eq!(r.exit_code, 1);
    }

    #[test]
    fn freed_ips_are_reused() {
        let net = SimNetwork::new();
        let a = net.allocate().expect("ip");
        net.release(a);
        assert_eq!(net.allocate(), Some(a));
        assert_eq!(a, Ipv4Addr::new(198, 18, 0, 1));
    }
}
