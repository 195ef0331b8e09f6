//! [`Runtime`] over containerd's CRI: a private containerd (or an existing socket), the
//! busybox image bootstrap, and image import.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;

use crate::cni::NetworkConfig;
use crate::config::{BUSYBOX_IMAGE, ContainerdConfig};
use crate::cri::{self, CriClient, v1};
use crate::error::{Error, Result};
use crate::image::{self, Archive};
use crate::logs::{self, LogLine, LogOptions};
use crate::runtime::Runtime;
use crate::supervisor::Supervisor;
use crate::types::{
    self, Container, ContainerConfig, ContainerFilter, ContainerState, ContainerStats,
    ContainerStatus, ExecResult, ExecStreams, ImageInfo, Labels, PodSandboxConfig, RuntimeVersion,
    Sandbox, SandboxFilter, SandboxState,
};

/// Deadline of a CRI call (kubelet's default runtime request timeout).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// How long CRI may take to see an image that `ctr` just imported.
const IMAGE_VISIBLE_TIMEOUT: Duration = Duration::from_secs(15);

/// How to get a containerd.
#[derive(Debug, Clone)]
pub struct ContainerdOptions {
    /// The data dir; the private containerd lives in `<data_dir>/containerd`.
    pub data_dir: PathBuf,
    /// An existing CRI socket to use instead of a private containerd.
    pub endpoint: Option<PathBuf>,
    /// The pod network of the private containerd.
    pub network: NetworkConfig,
    /// Where CNI plugins are.
    pub cni_bin_dir: PathBuf,
    /// The static busybox the default image is built from.
    pub busybox: PathBuf,
}

impl ContainerdOptions {
    /// The defaults for a data dir: private containerd, `tug0`, `/bin/busybox`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            data_dir: data_dir.to_path_buf(),
            endpoint: None,
            network: NetworkConfig::default(),
            cni_bin_dir: PathBuf::from(crate::config::DEFAULT_CNI_BIN_DIR),
            busybox: PathBuf::from("/bin/busybox"),
        }
    }

    /// The private containerd's config these options give.
    pub fn containerd_config(&self) -> ContainerdConfig {
        let mut c = ContainerdConfig::new(&self.data_dir);
        c.network = self.network.clone();
        c.cni_bin_dir = self.cni_bin_dir.clone();
        c
    }

    /// Where pod logs go: `<data_dir>/pod-logs/<ns>_<name>_<uid>/<container>/<attempt>.log`.
    pub fn log_root(&self) -> PathBuf {
        self.data_dir.join("pod-logs")
    }
}

/// The containerd runtime.
#[derive(Debug)]
pub struct ContainerdRuntime {
    client: CriClient,
    supervisor: Option<Supervisor>,
    /// Whether this instance spawned the containerd (rather than adopting one).
    spawned: bool,
    log_root: PathBuf,
}

impl ContainerdRuntime {
    /// Starts (or adopts) the private containerd, or connects to `endpoint`, and makes sure
    /// the busybox image exists.
    pub async fn start(opts: &ContainerdOptions) -> Result<Self> {
        let rt = match &opts.endpoint {
            Some(endpoint) => Self {
                client: CriClient::connect(endpoint).await?,
                supervisor: None,
                spawned: false,
                log_root: opts.log_root(),
            },
            None => {
                let was_running = crate::supervisor::running_pid(&opts.containerd_config());
                let (sup, client) = Supervisor::start(opts.containerd_config()).await?;
                let spawned = was_running.is_none_or(|pid| pid.as_raw_nonzero().get() != sup.pid());
                Self {
                    client,
                    supervisor: Some(sup),
                    spawned,
                    log_root: opts.log_root(),
                }
            }
        };
        if let Err(e) = rt.ensure_busybox(&opts.busybox).await {
            rt.close().await;
            return Err(e);
        }
        Ok(rt)
    }

    /// A runtime over an already connected client (no supervisor, no image bootstrap).
    pub(crate) fn from_parts(client: CriClient, opts: &ContainerdOptions) -> Self {
        Self {
            client,
            supervisor: None,
            spawned: false,
            log_root: opts.log_root(),
        }
    }

    /// The CRI client, for calls this API does not wrap.
    pub fn client(&self) -> &CriClient {
        &self.client
    }

    /// The private containerd's PID, if we run one.
    pub fn containerd_pid(&self) -> Option<i32> {
        self.supervisor.as_ref().map(Supervisor::pid)
    }

    /// Makes sure `docker.io/library/busybox:latest` exists, building it from `busybox` and
    /// importing it when absent.
    pub async fn ensure_busybox(&self, busybox: &Path) -> Result<()> {
        if self.image_status(BUSYBOX_IMAGE).await?.is_some() {
            return Ok(());
        }
        tracing::info!(busybox = %busybox.display(), "building {BUSYBOX_IMAGE} from the host busybox");
        let archive = image::busybox_archive(busybox, BUSYBOX_IMAGE)?;
        self.import(Archive::Bytes(archive)).await?;
        Ok(())
    }

    /// Imports an OCI or docker archive (`tug image import`); returns the image names.
    pub async fn import_image(&self, file: &Path) -> Result<Vec<String>> {
        self.import(Archive::File(file)).await
    }

    async fn import(&self, archive: Archive<'_>) -> Result<Vec<String>> {
        let names = image::import(self.client.socket(), archive).await?;
        // CRI learns of new images from containerd's events: wait until it sees them.
        let deadline = tokio::time::Instant::now() + IMAGE_VISIBLE_TIMEOUT;
        for name in &names {
            while self.image_status(name).await?.is_none() {
                if tokio::time::Instant::now() >= deadline {
                    return Err(Error::NotFound(format!("imported image {name} in CRI")));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(names)
    }

    /// Leaves containerd running if it was already running when we started (another `tug`
    /// uses it); stops it if we started it. For short-lived commands such as `tug image`.
    pub async fn close(mut self) {
        if self.spawned
            && let Some(sup) = self.supervisor.as_mut()
        {
            sup.stop().await;
        }
    }

    /// Stops the private containerd, however it was found (for `tug up`'s shutdown). Pods
    /// keep running, and the next start adopts them.
    pub async fn shutdown(mut self) {
        if let Some(sup) = self.supervisor.as_mut() {
            sup.stop().await;
        }
    }

    /// Fills in CRI's log directory when the caller left it empty, so logs always land on
    /// disk: `<log_root>/<ns>_<name>_<uid>` (kubelet's layout).
    fn with_log_dir(&self, config: &PodSandboxConfig) -> PodSandboxConfig {
        let mut config = config.clone();
        if config.log_directory.is_empty()
            && let Some(m) = &config.metadata
        {
            config.log_directory = self
                .log_root
                .join(format!("{}_{}_{}", m.namespace, m.name, m.uid))
                .to_string_lossy()
                .into_owned();
        }
        config
    }
}

fn labels(map: HashMap<String, String>) -> Labels {
    map.into_iter().collect()
}

fn hash(labels: &Labels) -> HashMap<String, String> {
    labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn container_state(s: v1::ContainerState) -> ContainerState {
    match s {
        v1::ContainerState::ContainerCreated => ContainerState::Created,
        v1::ContainerState::ContainerRunning => ContainerState::Running,
        v1::ContainerState::ContainerExited => ContainerState::Exited,
        v1::ContainerState::ContainerUnknown => ContainerState::Unknown,
    }
}

fn cri_container_state(s: ContainerState) -> v1::ContainerState {
    match s {
        ContainerState::Created => v1::ContainerState::ContainerCreated,
        ContainerState::Running => v1::ContainerState::ContainerRunning,
        ContainerState::Exited => v1::ContainerState::ContainerExited,
        ContainerState::Unknown => v1::ContainerState::ContainerUnknown,
    }
}

fn sandbox_state(s: v1::PodSandboxState) -> SandboxState {
    match s {
        v1::PodSandboxState::SandboxReady => SandboxState::Ready,
        v1::PodSandboxState::SandboxNotready => SandboxState::NotReady,
    }
}

fn image_info(i: v1::Image) -> ImageInfo {
    ImageInfo {
        id: i.id,
        repo_tags: i.repo_tags,
        repo_digests: i.repo_digests,
        size: i.size,
    }
}

fn cri_container_filter(f: &ContainerFilter) -> v1::ContainerFilter {
    v1::ContainerFilter {
        id: String::new(),
        state: f.state.map(|s| v1::ContainerStateValue {
            state: cri_container_state(s) as i32,
        }),
        pod_sandbox_id: f.sandbox_id.clone().unwrap_or_default(),
        label_selector: hash(&f.labels),
    }
}

// === impl Runtime for ContainerdRuntime ===

#[async_trait]
impl Runtime for ContainerdRuntime {
    async fn version(&self) -> Result<RuntimeVersion> {
        let v = self
            .client
            .runtime
            .clone()
            .version(cri::request(v1::VersionRequest::default(), CALL_TIMEOUT))
            .await
            .map_err(|s| Error::rpc("Version", "runtime", s))?
            .into_inner();
        Ok(RuntimeVersion {
            runtime_name: v.runtime_name,
            runtime_version: v.runtime_version,
            runtime_api_version: v.runtime_api_version,
        })
    }

    async fn ready(&self) -> Result<bool> {
        let status = self
            .client
            .runtime
            .clone()
            .status(cri::request(v1::StatusRequest::default(), CALL_TIMEOUT))
            .await
            .map_err(|s| Error::rpc("Status", "runtime", s))?
            .into_inner();
        let conditions = status.status.map(|s| s.conditions).unwrap_or_default();
        let ok = |t: &str| conditions.iter().any(|c| c.r#type == t && c.status);
        Ok(ok("RuntimeReady") && ok("NetworkReady"))
    }

    async fn run_sandbox(&self, config: &PodSandboxConfig) -> Result<String> {
        if config.metadata.is_none() {
            return Err(Error::Invalid("sandbox config without metadata".into()));
        }
        let config = self.with_log_dir(config);
        if !config.log_directory.is_empty() {
            // containerd creates the log file, not its directory.
            std::fs::create_dir_all(&config.log_directory).map_err(|source| Error::Fs {
                path: PathBuf::from(&config.log_directory),
                source,
            })?;
        }
        let resp = self
            .client
            .runtime
            .clone()
            .run_pod_sandbox(cri::request(
                v1::RunPodSandboxRequest {
                    config: Some(config),
                    runtime_handler: String::new(),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("RunPodSandbox", "sandbox", s))?;
        Ok(resp.into_inner().pod_sandbox_id)
    }

    async fn stop_sandbox(&self, id: &str) -> Result<()> {
        let r = self
            .client
            .runtime
            .clone()
            .stop_pod_sandbox(cri::request(
                v1::StopPodSandboxRequest {
                    pod_sandbox_id: id.to_string(),
                },
                CALL_TIMEOUT,
            ))
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(Error::rpc("StopPodSandbox", id, s)),
        }
    }

    async fn remove_sandbox(&self, id: &str) -> Result<()> {
        let r = self
            .client
            .runtime
            .clone()
            .remove_pod_sandbox(cri::request(
                v1::RemovePodSandboxRequest {
                    pod_sandbox_id: id.to_string(),
                },
                CALL_TIMEOUT,
            ))
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(Error::rpc("RemovePodSandbox", id, s)),
        }
    }

    async fn sandbox_status(&self, id: &str) -> Result<Sandbox> {
        let status = self
            .client
            .runtime
            .clone()
            .pod_sandbox_status(cri::request(
                v1::PodSandboxStatusRequest {
                    pod_sandbox_id: id.to_string(),
                    verbose: false,
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("PodSandboxStatus", &format!("sandbox {id}"), s))?
            .into_inner()
            .status
            .ok_or_else(|| Error::NotFound(format!("sandbox {id}")))?;
        let state = sandbox_state(status.state());
        let meta = status.metadata.unwrap_or_default();
        let ip = status.network.and_then(|n| n.ip.parse::<IpAddr>().ok());
        Ok(Sandbox {
            id: status.id,
            name: meta.name,
            namespace: meta.namespace,
            uid: meta.uid,
            attempt: meta.attempt,
            state,
            ip,
            labels: labels(status.labels),
            annotations: labels(status.annotations),
            created_at: types::from_nanos(status.created_at),
        })
    }

    async fn list_sandboxes(&self, filter: &SandboxFilter) -> Result<Vec<Sandbox>> {
        let items = self
            .client
            .runtime
            .clone()
            .list_pod_sandbox(cri::request(
                v1::ListPodSandboxRequest {
                    filter: Some(v1::PodSandboxFilter {
                        id: String::new(),
                        state: filter.state.map(|s| v1::PodSandboxStateValue {
                            state: match s {
                                SandboxState::Ready => v1::PodSandboxState::SandboxReady,
                                SandboxState::NotReady => v1::PodSandboxState::SandboxNotready,
                            } as i32,
                        }),
                        label_selector: hash(&filter.labels),
                    }),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("ListPodSandbox", "sandboxes", s))?
            .into_inner()
            .items;
        Ok(items
            .into_iter()
            .map(|s| {
                let state = sandbox_state(s.state());
                let meta = s.metadata.unwrap_or_default();
                Sandbox {
                    id: s.id,
                    name: meta.name,
                    namespace: meta.namespace,
                    uid: meta.uid,
                    attempt: meta.attempt,
                    state,
                    ip: None,
                    labels: labels(s.labels),
                    annotations: labels(s.annotations),
                    created_at: types::from_nanos(s.created_at),
                }
            })
            .collect())
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> Result<String> {
        let mut config = config.clone();
        if config.log_path.is_empty()
            && let Some(m) = &config.metadata
        {
            config.log_path = format!("{}/{}.log", m.name, m.attempt);
        }
        let resp = self
            .client
            .runtime
            .clone()
            .create_container(cri::request(
                v1::CreateContainerRequest {
                    pod_sandbox_id: sandbox_id.to_string(),
                    config: Some(config),
                    sandbox_config: Some(self.with_log_dir(sandbox)),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("CreateContainer", &format!("sandbox {sandbox_id}"), s))?;
        Ok(resp.into_inner().container_id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.client
            .runtime
            .clone()
            .start_container(cri::request(
                v1::StartContainerRequest {
                    container_id: id.to_string(),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("StartContainer", &format!("container {id}"), s))?;
        Ok(())
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        let r = self
            .client
            .runtime
            .clone()
            .stop_container(cri::request(
                v1::StopContainerRequest {
                    container_id: id.to_string(),
                    timeout: i64::try_from(grace.as_secs()).unwrap_or(i64::MAX),
                },
                CALL_TIMEOUT + grace,
            ))
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(s) => Err(Error::rpc("StopContainer", &format!("container {id}"), s)),
        }
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        let r = self
            .client
            .runtime
            .clone()
            .remove_container(cri::request(
                v1::RemoveContainerRequest {
                    container_id: id.to_string(),
                },
                CALL_TIMEOUT,
            ))
            .await;
        match r {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(Error::rpc("RemoveContainer", id, s)),
        }
    }

    async fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<Container>> {
        let items = self
            .client
            .runtime
            .clone()
            .list_containers(cri::request(
                v1::ListContainersRequest {
                    filter: Some(cri_container_filter(filter)),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("ListContainers", "containers", s))?
            .into_inner()
            .containers;
        Ok(items
            .into_iter()
            .map(|c| {
                let state = container_state(c.state());
                let meta = c.metadata.unwrap_or_default();
                Container {
                    id: c.id,
                    sandbox_id: c.pod_sandbox_id,
                    name: meta.name,
                    attempt: meta.attempt,
                    image: c.image.map(|i| i.image).unwrap_or_default(),
                    image_ref: c.image_ref,
                    state,
                    labels: labels(c.labels),
                    annotations: labels(c.annotations),
                    created_at: types::from_nanos(c.created_at),
                }
            })
            .collect())
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        let s = self
            .client
            .runtime
            .clone()
            .container_status(cri::request(
                v1::ContainerStatusRequest {
                    container_id: id.to_string(),
                    verbose: false,
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("ContainerStatus", &format!("container {id}"), s))?
            .into_inner()
            .status
            .ok_or_else(|| Error::NotFound(format!("container {id}")))?;
        let state = container_state(s.state());
        let meta = s.metadata.unwrap_or_default();
        Ok(ContainerStatus {
            id: s.id,
            name: meta.name,
            attempt: meta.attempt,
            state,
            exit_code: s.exit_code,
            reason: s.reason,
            message: s.message,
            created_at: types::from_nanos(s.created_at),
            started_at: types::from_nanos(s.started_at),
            finished_at: types::from_nanos(s.finished_at),
            image: s.image.map(|i| i.image).unwrap_or_default(),
            image_ref: s.image_ref,
            log_path: (!s.log_path.is_empty()).then(|| PathBuf::from(s.log_path)),
            labels: labels(s.labels),
            annotations: labels(s.annotations),
        })
    }

    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecResult> {
        // CRI counts whole seconds; round up so a sub-second timeout is not "no timeout".
        let secs = if timeout.is_zero() {
            0
        } else {
            i64::try_from(timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0))
                .unwrap_or(i64::MAX)
        };
        let deadline = if timeout.is_zero() {
            CALL_TIMEOUT
        } else {
            timeout + Duration::from_secs(5)
        };
        let r = self
            .client
            .runtime
            .clone()
            .exec_sync(cri::request(
                v1::ExecSyncRequest {
                    container_id: id.to_string(),
                    cmd: cmd.to_vec(),
                    timeout: secs,
                },
                deadline,
            ))
            .await
            .map_err(|s| Error::rpc("ExecSync", &format!("container {id}"), s))?
            .into_inner();
        Ok(ExecResult {
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
        })
    }

    async fn exec_url(&self, id: &str, cmd: &[String], streams: ExecStreams) -> Result<String> {
        let r = self
            .client
            .runtime
            .clone()
            .exec(cri::request(
                v1::ExecRequest {
                    container_id: id.to_string(),
                    cmd: cmd.to_vec(),
                    tty: streams.tty,
                    stdin: streams.stdin,
                    stdout: streams.stdout,
                    // CRI: with a TTY, stderr is part of stdout.
                    stderr: streams.stderr && !streams.tty,
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("Exec", &format!("container {id}"), s))?;
        Ok(r.into_inner().url)
    }

    async fn port_forward_url(&self, sandbox_id: &str, ports: &[u16]) -> Result<String> {
        let r = self
            .client
            .runtime
            .clone()
            .port_forward(cri::request(
                v1::PortForwardRequest {
                    pod_sandbox_id: sandbox_id.to_string(),
                    port: ports.iter().map(|p| i32::from(*p)).collect(),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("PortForward", &format!("sandbox {sandbox_id}"), s))?;
        Ok(r.into_inner().url)
    }

    async fn read_logs(&self, id: &str, opts: &LogOptions) -> Result<Vec<LogLine>> {
        let status = self.container_status(id).await?;
        match status.log_path {
            Some(path) => Ok(logs::read(&path, opts).await?),
            None => Ok(Vec::new()),
        }
    }

    async fn container_stats(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStats>> {
        let f = cri_container_filter(filter);
        let stats = self
            .client
            .runtime
            .clone()
            .list_container_stats(cri::request(
                v1::ListContainerStatsRequest {
                    filter: Some(v1::ContainerStatsFilter {
                        id: String::new(),
                        pod_sandbox_id: f.pod_sandbox_id,
                        label_selector: f.label_selector,
                    }),
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("ListContainerStats", "stats", s))?
            .into_inner()
            .stats;
        Ok(stats
            .into_iter()
            .map(|s| {
                let attrs = s.attributes.unwrap_or_default();
                let cpu = s.cpu.unwrap_or_default();
                let mem = s.memory.unwrap_or_default();
                ContainerStats {
                    id: attrs.id,
                    name: attrs.metadata.map(|m| m.name).unwrap_or_default(),
                    labels: labels(attrs.labels),
                    timestamp: types::from_nanos(cpu.timestamp.max(mem.timestamp)),
                    cpu_usage_core_nanoseconds: cpu.usage_core_nano_seconds.map(|v| v.value),
                    cpu_usage_nano_cores: cpu.usage_nano_cores.map(|v| v.value),
                    memory_working_set_bytes: mem.working_set_bytes.map(|v| v.value),
                }
            })
            .collect())
    }

    async fn image_status(&self, image: &str) -> Result<Option<ImageInfo>> {
        let r = self
            .client
            .image
            .clone()
            .image_status(cri::request(
                v1::ImageStatusRequest {
                    image: Some(v1::ImageSpec {
                        image: image.to_string(),
                        ..Default::default()
                    }),
                    verbose: false,
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("ImageStatus", image, s))?;
        Ok(r.into_inner().image.map(image_info))
    }

    async fn pull_image(&self, image: &str) -> Result<String> {
        let r = self
            .client
            .image
            .clone()
            .pull_image(cri::request(
                v1::PullImageRequest {
                    image: Some(v1::ImageSpec {
                        image: image.to_string(),
                        ..Default::default()
                    }),
                    auth: None,
                    sandbox_config: None,
                },
                CALL_TIMEOUT,
            ))
            .await
            .map_err(|s| Error::rpc("PullImage", image, s))?;
        Ok(r.into_inner().image_ref)
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        let r = self
            .client
            .image
            .clone()
            .list_images(cri::request(v1::ListImagesRequest::default(), CALL_TIMEOUT))
            .await
            .map_err(|s| Error::rpc("ListImages", "images", s))?;
        Ok(r.into_inner().images.into_iter().map(image_info).collect())
    }
}
