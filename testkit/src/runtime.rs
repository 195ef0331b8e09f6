//! [`RecordingRuntime`]: the simulated runtime of `tugboat-runtime`, on a clock that follows
//! tokio's (so a paused test clock drives exits and back-offs), recording every call with its
//! arguments and the time it came, with scripted outcomes: a container exits with code N
//! after T, an image is missing and its pulls fail, exec probes answer X, sandbox creation
//! fails.
//!
//! Only with the `runtime` feature: crates whose tests do not drive a runtime do not build
//! one.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::time::Instant;
use tugboat_runtime::sim::{EXIT_CODE_ANNOTATION, RUN_MILLIS_ANNOTATION};
use tugboat_runtime::{
    Container, ContainerConfig, ContainerFilter, ContainerStats, ContainerStatus, Error,
    ExecResult, ExecStreams, ImageInfo, LogLine, LogOptions, PodSandboxConfig, Result, Runtime,
    RuntimeVersion, Sandbox, SandboxFilter, SimNetwork, SimRuntime, WallClock,
};

/// One call the runtime received. Sandboxes are named by their pod's name, containers by
/// `pod/container`, as the test wrote them, instead of runtime IDs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `run_sandbox`.
    RunSandbox {
        /// Pod name.
        pod: String,
        /// Sandbox attempt.
        attempt: u32,
    },
    /// `stop_sandbox`.
    StopSandbox {
        /// Pod name.
        pod: String,
    },
    /// `remove_sandbox`.
    RemoveSandbox {
        /// Pod name.
        pod: String,
    },
    /// `create_container`.
    CreateContainer {
        /// `pod/container`.
        container: String,
        /// CRI attempt the agent asked for.
        attempt: u32,
        /// Its image.
        image: String,
    },
    /// `start_container`.
    StartContainer {
        /// `pod/container`.
        container: String,
    },
    /// `stop_container`.
    StopContainer {
        /// `pod/container`.
        container: String,
        /// Time between SIGTERM and SIGKILL.
        grace: Duration,
    },
    /// `remove_container`.
    RemoveContainer {
        /// `pod/container`.
        container: String,
    },
    /// `exec_sync` (probes and exec hooks).
    ExecSync {
        /// `pod/container`.
        container: String,
        /// The command.
        cmd: Vec<String>,
    },
    /// `pull_image`.
    PullImage {
        /// The image.
        image: String,
    },
    /// `image_status`.
    ImageStatus {
        /// The image.
        image: String,
    },
    /// A read that changes nothing: `list_sandboxes`, `sandbox_status`, `list_containers`,
    /// `container_status`, `version`, `ready`, logs, stats, URLs, `list_images`.
    Query {
        /// The method.
        op: &'static str,
    },
}

impl Call {
    /// Whether it asks the runtime to change something (or run something): everything but
    /// reads.
    pub fn is_action(&self) -> bool {
        !matches!(self, Call::Query { .. } | Call::ImageStatus { .. })
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::RunSandbox { pod, .. } => write!(f, "run_sandbox {pod}"),
            Call::StopSandbox { pod } => write!(f, "stop_sandbox {pod}"),
            Call::RemoveSandbox { pod } => write!(f, "remove_sandbox {pod}"),
            Call::CreateContainer { container, .. } => write!(f, "create {container}"),
            Call::StartContainer { container } => write!(f, "start {container}"),
            Call::StopContainer { container, .. } => write!(f, "stop {container}"),
            Call::RemoveContainer { container } => write!(f, "remove {container}"),
            Call::ExecSync { container, cmd } => write!(f, "exec {container} {}", cmd.join(" ")),
            Call::PullImage { image } => write!(f, "pull {image}"),
            Call::ImageStatus { image } => write!(f, "image_status {image}"),
            Call::Query { op } => f.write_str(op),
        }
    }
}

/// A call and when it came, as time since the runtime was made (on tokio's clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedCall {
    /// When.
    pub at: Duration,
    /// What.
    pub call: Call,
}

/// How one run of a container ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Exits by itself this long after it starts; `None`: runs until stopped.
    pub exits_after: Option<Duration>,
    /// The code it exits with then.
    pub exit_code: i32,
}

impl Run {
    /// Exits with `code` `after` it starts.
    pub fn exits(after: Duration, code: i32) -> Self {
        Run {
            exits_after: Some(after),
            exit_code: code,
        }
    }

    /// Runs until stopped (exits 0 on SIGTERM).
    pub fn until_stopped() -> Self {
        Run {
            exits_after: None,
            exit_code: 0,
        }
    }
}

#[derive(Debug, Default)]
struct Script {
    /// Runs per container name, in order of creation; the last one repeats.
    runs: HashMap<String, Vec<Run>>,
    /// Containers created so far per container name.
    created: HashMap<String, usize>,
    /// Exit codes of execs per (container name, command joined by spaces; "" = any).
    exec_codes: HashMap<(String, String), i32>,
    /// How long execs take, keyed the same way.
    exec_durations: HashMap<(String, String), Duration>,
    /// Images that are not there until pulled.
    missing_images: HashMap<String, Option<String>>,
    /// Failures of the next calls, per method name.
    failures: HashMap<&'static str, VecDeque<String>>,
}

#[derive(Debug, Default)]
struct Names {
    sandboxes: HashMap<String, String>,
    containers: HashMap<String, String>,
}

/// The simulated runtime with a record of every call and scripted outcomes (see the module
/// documentation). Make it inside the test's tokio runtime (paused or not): its clock starts
/// then.
#[derive(Debug)]
pub struct RecordingRuntime {
    sim: SimRuntime,
    started: Instant,
    wall_start: SystemTime,
    log: Mutex<Vec<RecordedCall>>,
    script: Mutex<Script>,
    names: Mutex<Names>,
}

impl RecordingRuntime {
    /// A runtime for node `node`, with nothing in it.
    pub fn new(node: &str) -> Self {
        let started = Instant::now();
        let wall_start = SystemTime::now();
        RecordingRuntime {
            sim: SimRuntime::new(node, SimNetwork::new())
                .with_clock(WallClock::new(move || wall_start + started.elapsed())),
            started,
            wall_start,
            log: Mutex::new(Vec::new()),
            script: Mutex::new(Script::default()),
            names: Mutex::new(Names::default()),
        }
    }

    /// Time since it was made, on tokio's clock.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The runtime's wall-clock time (start and exit times of containers are on it).
    pub fn now(&self) -> SystemTime {
        self.wall_start + self.elapsed()
    }

    /// The runtime's clock, for the agent to read the same time (see `AgentConfig::clock`).
    pub fn clock(&self) -> WallClock {
        let (started, wall_start) = (self.started, self.wall_start);
        WallClock::new(move || wall_start + started.elapsed())
    }

    /// The runtime's wall-clock time at `elapsed` since it was made.
    pub fn wall_time(&self, elapsed: Duration) -> SystemTime {
        self.wall_start + elapsed
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<RecordedCall> {
        self.log.lock().clone()
    }

    /// The calls that change something (see [`Call::is_action`]), in order.
    pub fn actions(&self) -> Vec<RecordedCall> {
        self.calls()
            .into_iter()
            .filter(|c| c.call.is_action())
            .collect()
    }

    /// The actions as text (`"start web/app"`, see [`Call`]'s `Display`), in order.
    pub fn action_log(&self) -> Vec<String> {
        self.actions().iter().map(|c| c.call.to_string()).collect()
    }

    /// Forgets the record so far (the script and the runtime's state stay).
    pub fn clear_log(&self) {
        self.log.lock().clear();
    }

    /// Runs of containers named `container` (in any pod), in order of creation; the last one
    /// repeats. Without a script a container runs until stopped.
    pub fn script_runs(&self, container: &str, runs: impl IntoIterator<Item = Run>) {
        self.script
            .lock()
            .runs
            .insert(container.to_string(), runs.into_iter().collect());
    }

    /// From now on, `command` (joined by spaces; `""` for every command) run in containers
    /// named `container` exits with `exit_code`. Unscripted commands exit 0.
    pub fn set_exec_result(&self, container: &str, command: &str, exit_code: i32) {
        self.script
            .lock()
            .exec_codes
            .insert((container.to_string(), command.to_string()), exit_code);
    }

    /// From now on, `command` (as in [`Self::set_exec_result`]) run in containers named
    /// `container` takes `duration` (on tokio's clock) before it answers.
    pub fn set_exec_duration(&self, container: &str, command: &str, duration: Duration) {
        self.script
            .lock()
            .exec_durations
            .insert((container.to_string(), command.to_string()), duration);
    }

    /// `image` is not present; pulling it fails with `error` (`None`: pulling succeeds).
    pub fn missing_image(&self, image: &str, error: Option<&str>) {
        self.script
            .lock()
            .missing_images
            .insert(image.to_string(), error.map(str::to_string));
    }

    /// The next sandbox creation fails with `message` (call again for more).
    pub fn fail_next_sandbox(&self, message: &str) {
        self.fail_next("run_sandbox", message);
    }

    /// The next call of `method` fails with `message` (call again for more). Methods:
    /// `run_sandbox`, `stop_sandbox`, `remove_sandbox`, `create_container`,
    /// `start_container`, `stop_container`, `remove_container`.
    pub fn fail_next(&self, method: &'static str, message: &str) {
        self.script
            .lock()
            .failures
            .entry(method)
            .or_default()
            .push_back(message.to_string());
    }

    /// An injected failure of `method`, if one is due.
    fn injected(&self, method: &'static str) -> Result<()> {
        match self
            .script
            .lock()
            .failures
            .get_mut(method)
            .and_then(VecDeque::pop_front)
        {
            Some(message) => Err(Error::Invalid(message)),
            None => Ok(()),
        }
    }

    fn record(&self, call: Call) {
        let at = self.elapsed();
        self.log.lock().push(RecordedCall { at, call });
    }

    fn sandbox_name(&self, id: &str) -> String {
        self.names
            .lock()
            .sandboxes
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }

    fn container_name(&self, id: &str) -> String {
        self.names
            .lock()
            .containers
            .get(id)
            .cloned()
            .unwrap_or_else(|| id.to_string())
    }
}

fn pod_name(config: &PodSandboxConfig) -> String {
    config
        .metadata
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default()
}

#[async_trait]
impl Runtime for RecordingRuntime {
    fn simulated(&self) -> bool {
        true
    }

    async fn version(&self) -> Result<RuntimeVersion> {
        self.record(Call::Query { op: "version" });
        let mut version = self.sim.version().await?;
        version.runtime_name = "tugboat-recording-sim".to_string();
        Ok(version)
    }

    async fn ready(&self) -> Result<bool> {
        self.record(Call::Query { op: "ready" });
        self.sim.ready().await
    }

    async fn run_sandbox(&self, config: &PodSandboxConfig) -> Result<String> {
        let pod = pod_name(config);
        self.record(Call::RunSandbox {
            pod: pod.clone(),
            attempt: config.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
        });
        self.injected("run_sandbox")?;
        let id = self.sim.run_sandbox(config).await?;
        self.names.lock().sandboxes.insert(id.clone(), pod);
        Ok(id)
    }

    async fn stop_sandbox(&self, id: &str) -> Result<()> {
        self.record(Call::StopSandbox {
            pod: self.sandbox_name(id),
        });
        self.injected("stop_sandbox")?;
        self.sim.stop_sandbox(id).await
    }

    async fn remove_sandbox(&self, id: &str) -> Result<()> {
        self.record(Call::RemoveSandbox {
            pod: self.sandbox_name(id),
        });
        self.injected("remove_sandbox")?;
        self.sim.remove_sandbox(id).await
    }

    async fn sandbox_status(&self, id: &str) -> Result<Sandbox> {
        self.record(Call::Query {
            op: "sandbox_status",
        });
        self.sim.sandbox_status(id).await
    }

    async fn list_sandboxes(&self, filter: &SandboxFilter) -> Result<Vec<Sandbox>> {
        self.record(Call::Query {
            op: "list_sandboxes",
        });
        self.sim.list_sandboxes(filter).await
    }

    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> Result<String> {
        let name = config
            .metadata
            .as_ref()
            .map(|m| m.name.clone())
            .unwrap_or_default();
        let qualified = format!("{}/{name}", self.sandbox_name(sandbox_id));
        self.record(Call::CreateContainer {
            container: qualified.clone(),
            attempt: config.metadata.as_ref().map(|m| m.attempt).unwrap_or(0),
            image: config
                .image
                .as_ref()
                .map(|i| i.image.clone())
                .unwrap_or_default(),
        });
        self.injected("create_container")?;
        // This run's script, handed to the sim as its run-time annotations.
        let run = {
            let mut script = self.script.lock();
            let index = *script
                .created
                .entry(name.clone())
                .and_modify(|n| *n += 1)
                .or_insert(0);
            script
                .runs
                .get(&name)
                .and_then(|runs| runs.get(index).or(runs.last()).copied())
        };
        let mut config = config.clone();
        match run {
            Some(Run {
                exits_after: Some(after),
                exit_code,
            }) => {
                let millis = u64::try_from(after.as_millis()).unwrap_or(u64::MAX);
                config
                    .annotations
                    .insert(RUN_MILLIS_ANNOTATION.to_string(), millis.to_string());
                config
                    .annotations
                    .insert(EXIT_CODE_ANNOTATION.to_string(), exit_code.to_string());
            }
            Some(Run {
                exits_after: None, ..
            }) => {
                config.annotations.remove(RUN_MILLIS_ANNOTATION);
                config.annotations.remove(EXIT_CODE_ANNOTATION);
            }
            None => {}
        }
        let id = self
            .sim
            .create_container(sandbox_id, &config, sandbox)
            .await?;
        self.names.lock().containers.insert(id.clone(), qualified);
        Ok(id)
    }

    async fn start_container(&self, id: &str) -> Result<()> {
        self.record(Call::StartContainer {
            container: self.container_name(id),
        });
        self.injected("start_container")?;
        self.sim.start_container(id).await
    }

    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()> {
        self.record(Call::StopContainer {
            container: self.container_name(id),
            grace,
        });
        self.injected("stop_container")?;
        self.sim.stop_container(id, grace).await
    }

    async fn remove_container(&self, id: &str) -> Result<()> {
        self.record(Call::RemoveContainer {
            container: self.container_name(id),
        });
        self.injected("remove_container")?;
        self.sim.remove_container(id).await
    }

    async fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<Container>> {
        self.record(Call::Query {
            op: "list_containers",
        });
        self.sim.list_containers(filter).await
    }

    async fn container_status(&self, id: &str) -> Result<ContainerStatus> {
        self.record(Call::Query {
            op: "container_status",
        });
        self.sim.container_status(id).await
    }

    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecResult> {
        let qualified = self.container_name(id);
        self.record(Call::ExecSync {
            container: qualified.clone(),
            cmd: cmd.to_vec(),
        });
        // The sim says whether the container runs (and would answer 0).
        let answer = self.sim.exec_sync(id, cmd, timeout).await?;
        let name = qualified
            .split_once('/')
            .map_or(qualified.as_str(), |(_, c)| c);
        let (scripted, duration) = {
            let script = self.script.lock();
            let exact = (name.to_string(), cmd.join(" "));
            let any = (name.to_string(), String::new());
            let code = script
                .exec_codes
                .get(&exact)
                .or_else(|| script.exec_codes.get(&any))
                .copied();
            let duration = script
                .exec_durations
                .get(&exact)
                .or_else(|| script.exec_durations.get(&any))
                .copied();
            (code, duration)
        };
        if let Some(duration) = duration {
            tokio::time::sleep(duration).await;
        }
        Ok(match scripted {
            Some(code) => ExecResult {
                exit_code: code,
                ..ExecResult::default()
            },
            None => answer,
        })
    }

    async fn exec_url(&self, id: &str, cmd: &[String], streams: ExecStreams) -> Result<String> {
        self.record(Call::Query { op: "exec_url" });
        self.sim.exec_url(id, cmd, streams).await
    }

    async fn port_forward_url(&self, sandbox_id: &str, ports: &[u16]) -> Result<String> {
        self.record(Call::Query {
            op: "port_forward_url",
        });
        self.sim.port_forward_url(sandbox_id, ports).await
    }

    async fn read_logs(&self, id: &str, opts: &LogOptions) -> Result<Vec<LogLine>> {
        self.record(Call::Query { op: "read_logs" });
        self.sim.read_logs(id, opts).await
    }

    async fn container_stats(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStats>> {
        self.record(Call::Query {
            op: "container_stats",
        });
        self.sim.container_stats(filter).await
    }

    async fn image_status(&self, image: &str) -> Result<Option<ImageInfo>> {
        self.record(Call::ImageStatus {
            image: image.to_string(),
        });
        if self.script.lock().missing_images.contains_key(image) {
            return Ok(None);
        }
        self.sim.image_status(image).await
    }

    async fn pull_image(&self, image: &str) -> Result<String> {
        self.record(Call::PullImage {
            image: image.to_string(),
        });
        {
            let mut script = self.script.lock();
            if let Some(Some(error)) = script.missing_images.get(image) {
                return Err(Error::Rpc {
                    op: "PullImage",
                    status: tonic::Status::unknown(error.clone()),
                });
            }
            script.missing_images.remove(image);
        }
        self.sim.pull_image(image).await
    }

    async fn list_images(&self) -> Result<Vec<ImageInfo>> {
        self.record(Call::Query { op: "list_images" });
        self.sim.list_images().await
    }
}
