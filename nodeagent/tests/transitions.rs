//! Component tests of the node agent's pod transitions: the agent's real per-pod sync
//! ([`PodSyncer`]) against the fake API server and a runtime that records every call
//! ([`RecordingRuntime`]), on tokio's paused clock, so that back-off and probe timings are
//! asserted exactly and take no real time.
//!
//! Each test drives the sync the way the agent's worker does (again after the delay the sync
//! asks for, at once when the pod changed) and asserts what a user would see (pod status,
//! events) and the runtime calls the agent made.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use serde_json::{Value, json};
use tokio::time::Instant;
use tugboat_nodeagent::status::api_time;
use tugboat_nodeagent::sync::{PodStore, PodSyncer};
use tugboat_nodeagent::{AgentConfig, NodeResources, Timings};
use tugboat_runtime::{Runtime, SandboxFilter};
use tugboat_testkit::fake_api::FakeApi;
use tugboat_testkit::runtime::{Call, RecordingRuntime, Run};

const NODE: &str = "node-1";
const KEY: &str = "default/web";
/// What the agent's worker waits after a failed sync.
const SYNC_ERROR_RETRY: Duration = Duration::from_secs(2);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// One agent's pod sync over a store the test fills from the fake API (as the watch does).
struct Agent {
    syncer: PodSyncer,
    store: PodStore,
}

struct Harness {
    api: FakeApi,
    client: kube::Client,
    runtime: Arc<RecordingRuntime>,
    agent: Agent,
    /// Sync errors, in order.
    errors: Vec<String>,
    dir: tempfile::TempDir,
}

impl Harness {
    fn new() -> Harness {
        let (api, client) = FakeApi::new();
        let runtime = Arc::new(RecordingRuntime::new(NODE));
        let dir = tempfile::tempdir().unwrap();
        let agent = new_agent(&client, &runtime, &dir);
        Harness {
            api,
            client,
            runtime,
            agent,
            errors: Vec::new(),
            dir,
        }
    }

    /// The agent restarts: a new one (nothing remembered) over the same runtime.
    fn restart_agent(&mut self) {
        self.agent = new_agent(&self.client, &self.runtime, &self.dir);
    }

    /// Creates pod `web` bound to the node from `spec` (JSON).
    fn create_pod(&self, spec: Value) {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default", "uid": "uid-web"},
            "spec": spec,
            "status": {"phase": "Pending"},
        }))
        .unwrap();
        let mut pod = pod;
        pod.spec.as_mut().unwrap().node_name = Some(NODE.into());
        self.api.create(pod);
    }

    /// What the API server does on a graceful delete: it marks the pod, and the agent
    /// finishes the deletion.
    fn mark_deleted(&self, grace_seconds: i64) {
        let mut pod = self.pod();
        pod.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        pod.metadata.deletion_grace_period_seconds = Some(grace_seconds);
        self.api.update(pod);
    }

    /// The pod as the API has it.
    fn pod(&self) -> Pod {
        self.api.pod(KEY).expect("pod exists")
    }

    /// Brings the agent's store up to date with the API (what the watch does); returns the
    /// resourceVersion stored.
    fn refresh_store(&self) -> Option<String> {
        let pod = self.api.pod(KEY);
        let version = pod
            .as_ref()
            .and_then(|p| p.metadata.resource_version.clone());
        let mut store = self.agent.store.write();
        match pod {
            Some(pod) => store.insert(KEY.to_string(), Arc::new(pod)),
            None => store.remove(KEY),
        };
        version
    }

    /// One sync; returns when the worker would sync again on its own.
    async fn sync(&mut self) -> Option<Duration> {
        self.refresh_store();
        match self.agent.syncer.sync(&KEY.to_string()).await {
            Ok(after) => after,
            Err(error) => {
                self.errors.push(error.to_string());
                Some(SYNC_ERROR_RETRY)
            }
        }
    }

    /// Runs the worker for `total` on the paused clock: syncs, then again after the delay
    /// the sync asked for, or at once when the pod changed (the watch would queue it).
    async fn run_for(&mut self, total: Duration) {
        let end = Instant::now() + total;
        let mut in_a_row = 0;
        loop {
            let before = self.refresh_store();
            let wait = self.sync().await;
            let changed = self.api.pod(KEY).and_then(|p| p.metadata.resource_version) != before;
            let now = Instant::now();
            if now >= end {
                return;
            }
            let step = if changed {
                Duration::ZERO
            } else {
                wait.unwrap_or(end - now).min(end - now)
            };
            if step.is_zero() {
                in_a_row += 1;
                assert!(in_a_row < 50, "the sync never settles at {:?}", self.now());
            } else {
                in_a_row = 0;
                tokio::time::advance(step).await;
            }
        }
    }

    /// Runs the worker until `total` since the runtime was made.
    async fn run_until(&mut self, at: Duration) {
        let now = self.now();
        assert!(now <= at, "already at {now:?}, past {at:?}");
        self.run_for(at - now).await;
    }

    fn now(&self) -> Duration {
        self.runtime.elapsed()
    }

    /// Events about the pod, in order, as (reason, message).
    fn events(&self) -> Vec<(String, String)> {
        let mut events = self.api.objects("events");
        events.sort_by_key(|e| {
            e["metadata"]["resourceVersion"]
                .as_str()
                .and_then(|v| v.parse::<u64>().ok())
        });
        events
            .iter()
            .map(|e| {
                (
                    e["reason"].as_str().unwrap_or_default().to_string(),
                    e["message"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    }

    /// Events with one of `reasons`, in order.
    fn events_of(&self, reasons: &[&str]) -> Vec<(String, String)> {
        self.events()
            .into_iter()
            .filter(|(r, _)| reasons.contains(&r.as_str()))
            .collect()
    }

    fn phase(&self) -> String {
        self.pod().status.unwrap().phase.unwrap_or_default()
    }

    fn condition(&self, kind: &str) -> String {
        self.pod()
            .status
            .unwrap()
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == kind)
            .map(|c| c.status)
            .unwrap_or_default()
    }

    fn container(&self, name: &str) -> ContainerStatus {
        let status = self.pod().status.unwrap();
        status
            .container_statuses
            .into_iter()
            .flatten()
            .chain(status.init_container_statuses.into_iter().flatten())
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no status of container {name}"))
    }

    /// When the runtime was asked to start `pod/container`, in order.
    fn starts(&self, container: &str) -> Vec<Duration> {
        self.runtime
            .actions()
            .into_iter()
            .filter(|c| matches!(&c.call, Call::StartContainer { container: n } if n == container))
            .map(|c| c.at)
            .collect()
    }

    /// When `cmd` was run in `pod/container`, in order.
    fn execs(&self, container: &str, cmd: &str) -> Vec<Duration> {
        self.runtime
            .actions()
            .into_iter()
            .filter(|c| {
                matches!(&c.call, Call::ExecSync { container: n, cmd: c } if n == container && c.join(" ") == cmd)
            })
            .map(|c| c.at)
            .collect()
    }
}

fn new_agent(
    client: &kube::Client,
    runtime: &Arc<RecordingRuntime>,
    dir: &tempfile::TempDir,
) -> Agent {
    let mut config = AgentConfig::new(NODE, dir.path().join("agent"));
    config.resources = NodeResources::simulated();
    config.node_ip = Some("127.0.0.1".parse().unwrap());
    // The real timings: 10 s back-off doubling to 300 s, reset after 10 min, resync 1 s.
    config.timings = Timings::default();
    config.clock = runtime.clock();
    let store = PodStore::default();
    let syncer = PodSyncer::new(
        client.clone(),
        runtime.clone() as Arc<dyn Runtime>,
        config,
        "127.0.0.1".parse().unwrap(),
        "recording".to_string(),
        store.clone(),
    );
    Agent { syncer, store }
}

fn container(name: &str) -> Value {
    json!({"name": name, "image": "busybox"})
}

fn exec_probe(cmd: &str, period: u32) -> Value {
    json!({
        "exec": {"command": cmd.split(' ').collect::<Vec<_>>()},
        "periodSeconds": period,
    })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

fn event(reason: &str, message: &str) -> (String, String) {
    (reason.to_string(), message.to_string())
}

#[tokio::test(start_paused = true)]
async fn sandbox_then_init_containers_in_order_then_app_containers() {
    let mut h = Harness::new();
    h.runtime.script_runs("init-a", [Run::exits(secs(3), 0)]);
    h.runtime.script_runs("init-b", [Run::exits(secs(2), 0)]);
    h.create_pod(json!({
        "initContainers": [container("init-a"), container("init-b")],
        "containers": [container("app"), container("sidecar")],
    }));

    h.sync().await;
    assert_eq!(
        h.runtime.action_log(),
        strings(&["run_sandbox web", "create web/init-a", "start web/init-a"])
    );
    assert_eq!(h.phase(), "Pending");
    assert_eq!(h.condition("Initialized"), "False");
    let app = h.container("app");
    assert_eq!(
        app.state.unwrap().waiting.unwrap().reason.as_deref(),
        Some("PodInitializing")
    );

    h.run_for(secs(10)).await;
    assert_eq!(
        h.runtime.action_log(),
        strings(&[
            "run_sandbox web",
            "create web/init-a",
            "start web/init-a",
            "create web/init-b",
            "start web/init-b",
            "create web/app",
            "start web/app",
            "create web/sidecar",
            "start web/sidecar",
        ])
    );
    // Each one as soon as the one before exited (the agent looks every second).
    assert_eq!(h.starts("web/init-a"), [secs(0)]);
    assert_eq!(h.starts("web/init-b"), [secs(3)]);
    assert_eq!(h.starts("web/app"), [secs(5)]);
    assert_eq!(h.starts("web/sidecar"), [secs(5)]);

    assert_eq!(h.phase(), "Running");
    for kind in ["Initialized", "ContainersReady", "Ready"] {
        assert_eq!(h.condition(kind), "True", "{kind}");
    }
    let status = h.pod().status.unwrap();
    assert!(status.pod_ip.is_some_and(|ip| ip.starts_with("198.18.")));
    for name in ["init-a", "init-b"] {
        let done = h.container(name).state.unwrap().terminated.unwrap();
        assert_eq!(
            (done.exit_code, done.reason.as_deref()),
            (0, Some("Completed"))
        );
    }
    for name in ["app", "sidecar"] {
        let c = h.container(name);
        assert!(c.state.unwrap().running.is_some());
        assert!(c.ready);
        assert_eq!(c.restart_count, 0);
    }
    assert_eq!(
        h.events_of(&["Created", "Started"]),
        ["init-a", "init-b", "app", "sidecar"]
            .iter()
            .flat_map(|c| [
                event("Created", &format!("Created container {c}")),
                event("Started", &format!("Started container {c}")),
            ])
            .collect::<Vec<_>>()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failing_init_container_is_retried_with_back_off_before_any_app_container() {
    let mut h = Harness::new();
    let fail = Run::exits(secs(1), 1);
    h.runtime
        .script_runs("init", [fail, fail, Run::exits(secs(1), 0)]);
    h.create_pod(json!({"initContainers": [container("init")], "containers": [container("app")]}));

    h.run_until(secs(5)).await;
    let init = h.container("init");
    assert_eq!(init.restart_count, 1);
    assert_eq!(
        init.state.unwrap().waiting.unwrap().reason.as_deref(),
        Some("CrashLoopBackOff")
    );
    assert_eq!(h.phase(), "Pending");
    assert_eq!(h.condition("Initialized"), "False");
    assert!(h.starts("web/app").is_empty());

    h.run_until(secs(30)).await;
    // Exits at 1, again at once; exits at 2, waits 10 s; succeeds at 13.
    assert_eq!(h.starts("web/init"), [secs(0), secs(1), secs(12)]);
    assert_eq!(h.starts("web/app"), [secs(13)]);
    assert_eq!(h.container("init").restart_count, 2);
    assert_eq!(h.condition("Initialized"), "True");
    assert_eq!(h.phase(), "Running");
}

#[tokio::test(start_paused = true)]
async fn restart_policy_always_restarts_a_container_that_exited_cleanly() {
    let mut h = Harness::new();
    h.runtime
        .script_runs("app", [Run::exits(secs(5), 0), Run::until_stopped()]);
    h.create_pod(json!({"containers": [container("app")]}));
    h.run_for(secs(20)).await;

    assert_eq!(h.starts("web/app"), [secs(0), secs(5)]);
    let app = h.container("app");
    assert_eq!(app.restart_count, 1);
    assert!(app.state.unwrap().running.is_some());
    let last = app.last_state.unwrap().terminated.unwrap();
    assert_eq!(
        (last.exit_code, last.reason.as_deref()),
        (0, Some("Completed"))
    );
    assert_eq!(h.phase(), "Running");
}

#[tokio::test(start_paused = true)]
async fn restart_policy_on_failure_restarts_only_failures() {
    let mut h = Harness::new();
    h.runtime
        .script_runs("app", [Run::exits(secs(5), 1), Run::exits(secs(5), 0)]);
    h.create_pod(json!({"restartPolicy": "OnFailure", "containers": [container("app")]}));
    h.run_for(secs(60)).await;

    // The failure is restarted (the first restart is immediate), the success is not.
    assert_eq!(h.starts("web/app"), [secs(0), secs(5)]);
    assert_eq!(h.phase(), "Succeeded");
    let app = h.container("app");
    assert_eq!(app.restart_count, 1);
    let done = app.state.unwrap().terminated.unwrap();
    assert_eq!(
        (done.exit_code, done.reason.as_deref()),
        (0, Some("Completed"))
    );
    let log = h.runtime.action_log();
    // A finished pod's sandbox is stopped, and kept until the pod is deleted.
    assert_eq!(log.last().map(String::as_str), Some("stop_sandbox web"));
    assert!(!log.iter().any(|c| c.starts_with("remove_sandbox")));
}

#[tokio::test(start_paused = true)]
async fn restart_policy_never_leaves_a_failed_container_failed() {
    let mut h = Harness::new();
    h.runtime.script_runs("app", [Run::exits(secs(5), 3)]);
    h.create_pod(json!({"restartPolicy": "Never", "containers": [container("app")]}));
    h.run_for(secs(60)).await;

    assert_eq!(h.starts("web/app"), [secs(0)]);
    assert_eq!(h.phase(), "Failed");
    let app = h.container("app");
    assert_eq!(app.restart_count, 0);
    let done = app.state.unwrap().terminated.unwrap();
    assert_eq!((done.exit_code, done.reason.as_deref()), (3, Some("Error")));
    assert!(h.events_of(&["BackOff"]).is_empty());
}

#[tokio::test(start_paused = true)]
async fn crash_loop_back_off_doubles_from_10s_to_300s_and_resets_after_10_minutes_clean() {
    let mut h = Harness::new();
    let crash = Run::exits(secs(1), 1);
    let long = Run::exits(secs(11 * 60), 1);
    let runs = [
        crash,
        crash,
        crash,
        crash,
        crash,
        crash,
        crash,
        long,
        crash,
        Run::until_stopped(),
    ];
    h.runtime.script_runs("app", runs);
    h.create_pod(json!({"containers": [container("app")]}));

    // Started at 0, exits at 1, restarted at once; exits at 2, waits 10 s; exits at 13 and
    // waits 20 s: at 14 the user sees the back-off.
    h.run_until(secs(14)).await;
    let app = h.container("app");
    assert_eq!(app.restart_count, 2);
    let waiting = app.state.unwrap().waiting.unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CrashLoopBackOff"));
    assert_eq!(
        waiting.message.as_deref(),
        Some("back-off 20s restarting failed container=app pod=web_default(uid-web)")
    );
    let last = app.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (1, Some("Error")));
    assert_eq!(
        last.started_at,
        Some(api_time(h.runtime.wall_time(secs(12))))
    );
    assert_eq!(
        last.finished_at,
        Some(api_time(h.runtime.wall_time(secs(13))))
    );
    assert_eq!(h.phase(), "Running");

    h.run_until(secs(1400)).await;
    let starts = h.starts("web/app");
    assert_eq!(starts.len(), 10, "starts at {starts:?}");
    // How long each restart waited after the run before it ended.
    let gaps: Vec<u64> = starts
        .windows(2)
        .zip(runs)
        .map(|(pair, run)| (pair[1] - pair[0] - run.exits_after.unwrap()).as_secs())
        .collect();
    assert_eq!(
        gaps,
        [0, 10, 20, 40, 80, 160, 300, 0, 10],
        "starts at {starts:?}"
    );
    assert_eq!(h.container("app").restart_count, 9);
    // One BackOff event per run waited out, not one per look.
    assert_eq!(h.events_of(&["BackOff"]).len(), 7);
}

#[tokio::test(start_paused = true)]
async fn liveness_failure_kills_and_restarts_with_unhealthy_then_killing() {
    let mut h = Harness::new();
    let mut app = container("app");
    app["livenessProbe"] = exec_probe("cat /tmp/healthy", 5);
    h.create_pod(json!({"terminationGracePeriodSeconds": 7, "containers": [app]}));
    h.run_until(secs(12)).await;
    assert_eq!(
        h.execs("web/app", "cat /tmp/healthy"),
        [secs(0), secs(5), secs(10)]
    );
    assert!(h.events_of(&["Unhealthy"]).is_empty());

    // Failing from 12 s: probes at 15, 20 and 25 fail; the third kills the container.
    h.runtime.set_exec_result("app", "cat /tmp/healthy", 1);
    h.run_until(secs(25)).await;
    h.runtime.set_exec_result("app", "cat /tmp/healthy", 0);
    h.run_until(secs(40)).await;

    let stops: Vec<_> = h
        .runtime
        .actions()
        .into_iter()
        .filter(|c| matches!(c.call, Call::StopContainer { .. }))
        .collect();
    assert_eq!(stops.len(), 1, "{stops:?}");
    assert_eq!(stops[0].at, secs(25));
    assert_eq!(
        stops[0].call,
        Call::StopContainer {
            container: "web/app".into(),
            grace: secs(7)
        }
    );
    assert_eq!(h.starts("web/app"), [secs(0), secs(25)]);
    let events = h.events_of(&["Unhealthy", "Killing"]);
    let reasons: Vec<&str> = events.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        &reasons[..4],
        ["Unhealthy", "Unhealthy", "Unhealthy", "Killing"],
        "{events:?}"
    );
    assert!(
        events[0].1.starts_with("Liveness probe failed: "),
        "{events:?}"
    );
    assert_eq!(
        events[3].1,
        "Container app failed liveness probe, will be restarted"
    );
    let app = h.container("app");
    assert_eq!(app.restart_count, 1);
    assert!(app.state.unwrap().running.is_some());
    assert!(app.last_state.unwrap().terminated.is_some());
    assert_eq!(h.condition("Ready"), "True");
}

#[tokio::test(start_paused = true)]
async fn readiness_failure_clears_ready_without_a_restart() {
    let mut h = Harness::new();
    let mut app = container("app");
    app["readinessProbe"] = exec_probe("check ready", 5);
    h.create_pod(json!({"containers": [app]}));
    h.run_until(secs(7)).await;
    assert_eq!(h.condition("Ready"), "True");
    assert!(h.container("app").ready);

    // Probes at 10, 15 and 20 fail: not ready from the third on.
    h.runtime.set_exec_result("app", "check ready", 1);
    h.run_until(secs(19)).await;
    assert_eq!(
        h.condition("Ready"),
        "True",
        "two failures are below the threshold"
    );
    h.run_until(secs(21)).await;
    assert_eq!(h.condition("Ready"), "False");
    assert_eq!(h.condition("ContainersReady"), "False");
    let app = h.container("app");
    assert!(!app.ready);
    assert!(app.state.unwrap().running.is_some());
    assert_eq!(h.phase(), "Running");

    // Passing again at 25.
    h.runtime.set_exec_result("app", "check ready", 0);
    h.run_until(secs(26)).await;
    assert_eq!(h.condition("Ready"), "True");

    assert_eq!(h.starts("web/app"), [secs(0)]);
    assert!(
        !h.runtime
            .actions()
            .iter()
            .any(|c| matches!(c.call, Call::StopContainer { .. })),
        "never stopped"
    );
    assert_eq!(h.container("app").restart_count, 0);
    let unhealthy = h.events_of(&["Unhealthy", "Killing"]);
    assert_eq!(unhealthy.len(), 3, "{unhealthy:?}");
    assert!(
        unhealthy
            .iter()
            .all(|(r, m)| r == "Unhealthy" && m.starts_with("Readiness probe failed: "))
    );
}

#[tokio::test(start_paused = true)]
async fn a_probe_slower_than_its_timeout_fails() {
    let mut h = Harness::new();
    let mut app = container("app");
    app["readinessProbe"] = json!({
        "exec": {"command": ["check"]}, "periodSeconds": 5, "timeoutSeconds": 1,
        "failureThreshold": 1,
    });
    h.create_pod(json!({"containers": [app]}));
    h.run_until(secs(3)).await;
    assert_eq!(h.condition("Ready"), "True");

    // From 5 s on the check takes 4 s: far over its 1 s timeout.
    h.runtime.set_exec_duration("app", "check", secs(4));
    h.run_until(secs(9)).await;
    assert_eq!(h.condition("Ready"), "False");
    let unhealthy = h.events_of(&["Unhealthy"]);
    assert_eq!(unhealthy.len(), 1, "{unhealthy:?}");
    assert!(unhealthy[0].1.contains("timed out"), "{unhealthy:?}");
    assert_eq!(h.container("app").restart_count, 0);
}

#[tokio::test(start_paused = true)]
async fn startup_probe_gates_liveness_and_readiness() {
    let mut h = Harness::new();
    let mut app = container("app");
    app["startupProbe"] = json!({
        "exec": {"command": ["started"]}, "periodSeconds": 5, "failureThreshold": 10,
    });
    app["livenessProbe"] = exec_probe("alive", 5);
    app["readinessProbe"] = exec_probe("ready", 5);
    h.create_pod(json!({"containers": [app]}));
    // Not started yet; liveness would fail if it were asked.
    h.runtime.set_exec_result("app", "started", 1);
    h.runtime.set_exec_result("app", "alive", 1);
    h.run_until(secs(12)).await;
    assert_eq!(h.execs("web/app", "started"), [secs(0), secs(5), secs(10)]);
    assert!(h.execs("web/app", "alive").is_empty());
    assert!(h.execs("web/app", "ready").is_empty());
    let app = h.container("app");
    assert_eq!(app.started, Some(false));
    assert!(!app.ready);
    assert_eq!(h.condition("Ready"), "False");

    // Started at 15: the other two run from then on.
    h.runtime.set_exec_result("app", "started", 0);
    h.runtime.set_exec_result("app", "alive", 0);
    h.run_until(secs(16)).await;
    assert_eq!(h.execs("web/app", "alive"), [secs(15)]);
    assert_eq!(h.execs("web/app", "ready"), [secs(15)]);
    let app = h.container("app");
    assert_eq!(app.started, Some(true));
    assert!(app.ready);
    assert_eq!(h.condition("Ready"), "True");

    // Once it has passed, the startup probe is done: failing it later restarts nothing.
    h.runtime.set_exec_result("app", "started", 1);
    h.run_until(secs(120)).await;
    assert_eq!(h.starts("web/app"), [secs(0)]);
    assert_eq!(h.container("app").restart_count, 0);
    assert_eq!(
        h.execs("web/app", "started"),
        [secs(0), secs(5), secs(10), secs(15)]
    );
}

#[tokio::test(start_paused = true)]
async fn termination_runs_pre_stop_stops_with_the_grace_period_removes_the_sandbox_then_deletes() {
    let mut h = Harness::new();
    let mut app = container("app");
    app["lifecycle"] = json!({"preStop": {"exec": {"command": ["/bin/drain", "now"]}}});
    h.create_pod(
        json!({"terminationGracePeriodSeconds": 20, "containers": [app, container("side")]}),
    );
    h.run_for(secs(5)).await;
    assert_eq!(h.phase(), "Running");
    h.runtime.clear_log();
    let requests_before = h.api.requests().len();

    h.mark_deleted(20);
    h.sync().await;

    let log = h.runtime.action_log();
    let position = |call: &str| {
        log.iter()
            .position(|c| c == call)
            .unwrap_or_else(|| panic!("no {call} in {log:?}"))
    };
    assert!(position("exec web/app /bin/drain now") < position("stop web/app"));
    assert!(position("stop web/app") < position("stop_sandbox web"));
    assert!(position("stop web/side") < position("stop_sandbox web"));
    assert!(position("stop_sandbox web") < position("remove_sandbox web"));
    assert_eq!(log.len(), 5, "{log:?}");
    for call in h.runtime.actions() {
        if let Call::StopContainer { grace, .. } = call.call {
            assert_eq!(
                grace,
                secs(20),
                "the whole grace period (the hook took no time)"
            );
        }
    }
    assert!(
        h.runtime
            .list_sandboxes(&SandboxFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
    // Then the deletion is finished: a delete with grace 0 for this very pod.
    let deletes: Vec<_> = h.api.requests()[requests_before..]
        .iter()
        .filter(|r| r.method == "DELETE")
        .cloned()
        .collect();
    assert_eq!(deletes.len(), 1);
    assert_eq!(deletes[0].path, "/api/v1/namespaces/default/pods/web");
    let body = deletes[0].body.clone().unwrap();
    assert_eq!(body["gracePeriodSeconds"], 0);
    assert_eq!(body["preconditions"]["uid"], "uid-web");
    assert!(h.api.pod(KEY).is_none());
    // The containers are stopped together, in no particular order.
    let mut killing = h.events_of(&["Killing"]);
    killing.sort();
    assert_eq!(
        killing,
        [
            event("Killing", "Stopping container app"),
            event("Killing", "Stopping container side")
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_pre_stop_hook_leaves_the_rest_of_the_grace_period_to_the_stop() {
    let mut h = Harness::new();
    let mut app = container("app");
    app["lifecycle"] = json!({"preStop": {"exec": {"command": ["/bin/drain"]}}});
    h.create_pod(json!({"terminationGracePeriodSeconds": 20, "containers": [app]}));
    h.run_for(secs(5)).await;
    h.runtime.set_exec_duration("app", "/bin/drain", secs(8));
    h.runtime.clear_log();
    h.mark_deleted(20);
    h.sync().await;

    let stops: Vec<_> = h
        .runtime
        .actions()
        .into_iter()
        .filter(|c| matches!(c.call, Call::StopContainer { .. }))
        .collect();
    assert_eq!(stops.len(), 1, "{stops:?}");
    // The hook ran from 5 s to 13 s: SIGKILL comes 12 s after SIGTERM, 20 s after the start.
    assert_eq!(stops[0].at, secs(13));
    assert_eq!(
        stops[0].call,
        Call::StopContainer {
            container: "web/app".into(),
            grace: secs(12)
        }
    );
    assert!(h.api.pod(KEY).is_none());
}

#[tokio::test(start_paused = true)]
async fn a_deletion_is_finished_only_once_the_sandbox_is_removed() {
    let mut h = Harness::new();
    h.create_pod(json!({"containers": [container("app")]}));
    h.run_for(secs(3)).await;
    h.runtime
        .fail_next("remove_sandbox", "device or resource busy");
    h.mark_deleted(30);

    h.sync().await;
    assert_eq!(h.errors.len(), 1, "{:?}", h.errors);
    assert!(h.api.pod(KEY).is_some(), "kept while its sandbox is there");
    assert!(!h.api.requests().iter().any(|r| r.method == "DELETE"));

    // The worker retries: the sandbox goes, then the pod.
    h.run_for(secs(3)).await;
    assert!(h.api.pod(KEY).is_none());
    let log = h.runtime.action_log();
    let removes = log.iter().filter(|c| *c == "remove_sandbox web").count();
    assert_eq!(removes, 2, "{log:?}");
    assert!(
        h.runtime
            .list_sandboxes(&SandboxFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_container_creation_is_create_container_error_then_retried() {
    let mut h = Harness::new();
    h.runtime
        .fail_next("create_container", "no space left on device");
    h.create_pod(json!({"containers": [container("app")]}));

    h.sync().await;
    let waiting = h.container("app").state.unwrap().waiting.unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("CreateContainerError"));
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap()
            .contains("no space left on device"),
        "{waiting:?}"
    );
    let failed = h.events_of(&["Failed"]);
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].1.contains("no space left on device"),
        "{failed:?}"
    );

    h.run_for(secs(3)).await;
    assert_eq!(h.starts("web/app").len(), 1);
    let app = h.container("app");
    assert!(app.state.unwrap().running.is_some());
    assert_eq!(app.restart_count, 0);
    assert_eq!(h.phase(), "Running");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_adopts_running_containers_and_keeps_restart_counts() {
    let mut h = Harness::new();
    h.runtime.script_runs(
        "app",
        [
            Run::exits(secs(1), 1),
            Run::exits(secs(1), 1),
            Run::until_stopped(),
        ],
    );
    let mut app = container("app");
    app["readinessProbe"] = exec_probe("ready", 5);
    h.create_pod(json!({"containers": [app, container("side")]}));
    h.run_until(secs(30)).await;
    let before = h.container("app");
    assert_eq!(before.restart_count, 2);
    assert!(before.state.as_ref().unwrap().running.is_some());
    assert_eq!(h.condition("Ready"), "True");

    h.restart_agent();
    h.runtime.clear_log();
    h.run_for(secs(60)).await;

    let changes: Vec<String> = h
        .runtime
        .actions()
        .into_iter()
        .filter(|c| !matches!(c.call, Call::ExecSync { .. }))
        .map(|c| c.call.to_string())
        .collect();
    assert!(
        changes.is_empty(),
        "a healthy pod is left alone: {changes:?}"
    );
    let after = h.container("app");
    assert_eq!(after.restart_count, 2);
    assert_eq!(after.container_id, before.container_id);
    assert_eq!(h.container("side").restart_count, 0);
    assert_eq!(h.condition("Ready"), "True");
    assert_eq!(h.phase(), "Running");
}

#[tokio::test(start_paused = true)]
async fn a_restarted_agent_restarts_what_exited_while_it_was_down() {
    let mut h = Harness::new();
    h.runtime
        .script_runs("app", [Run::exits(secs(20), 2), Run::until_stopped()]);
    h.create_pod(json!({"containers": [container("app")]}));
    h.run_for(secs(5)).await;
    assert!(h.container("app").state.unwrap().running.is_some());

    // The agent is down from 5 s to 60 s; the container exits at 20 s.
    tokio::time::advance(secs(55)).await;
    h.restart_agent();
    h.run_for(secs(5)).await;

    assert_eq!(h.starts("web/app"), [secs(0), secs(60)]);
    let app = h.container("app");
    assert_eq!(app.restart_count, 1);
    assert!(app.state.unwrap().running.is_some());
    let last = app.last_state.unwrap().terminated.unwrap();
    assert_eq!((last.exit_code, last.reason.as_deref()), (2, Some("Error")));
}

#[tokio::test(start_paused = true)]
async fn a_failing_pull_is_err_image_pull_then_image_pull_back_off() {
    let mut h = Harness::new();
    let image = "registry.example/app:1";
    h.runtime.missing_image(image, Some("pull access denied"));
    h.create_pod(json!({"containers": [{"name": "app", "image": image}]}));

    h.sync().await;
    let waiting = h.container("app").state.unwrap().waiting.unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ErrImagePull"));
    assert!(
        waiting
            .message
            .as_deref()
            .unwrap()
            .contains("pull access denied"),
        "{waiting:?}"
    );
    assert_eq!(h.phase(), "Pending");

    h.run_until(secs(5)).await;
    let waiting = h.container("app").state.unwrap().waiting.unwrap();
    assert_eq!(waiting.reason.as_deref(), Some("ImagePullBackOff"));
    assert_eq!(
        waiting.message.as_deref(),
        Some(format!("Back-off pulling image \"{image}\"").as_str())
    );

    // Retries at 10 s, then 20 s, then 40 s after the last; it is there from 35 s on.
    h.run_until(secs(35)).await;
    h.runtime.missing_image(image, None);
    h.run_until(secs(80)).await;
    let pulls: Vec<Duration> = h
        .runtime
        .actions()
        .into_iter()
        .filter(|c| matches!(c.call, Call::PullImage { .. }))
        .map(|c| c.at)
        .collect();
    assert_eq!(pulls, [secs(0), secs(10), secs(30), secs(70)]);
    assert_eq!(h.starts("web/app"), [secs(70)]);
    assert!(h.container("app").state.unwrap().running.is_some());
    let events = h.events_of(&["Pulling", "Pulled", "Failed"]);
    let reasons: Vec<&str> = events.iter().map(|(r, _)| r.as_str()).collect();
    assert_eq!(
        reasons,
        [
            "Pulling", "Failed", "Pulling", "Failed", "Pulling", "Failed", "Pulling", "Pulled"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_sandbox_creation_is_retried() {
    let mut h = Harness::new();
    h.runtime.fail_next_sandbox("no IP addresses available");
    h.create_pod(json!({"containers": [container("app")]}));
    h.run_for(secs(5)).await;

    assert_eq!(h.errors.len(), 1, "{:?}", h.errors);
    assert_eq!(
        h.runtime.action_log(),
        strings(&[
            "run_sandbox web",
            "run_sandbox web",
            "create web/app",
            "start web/app"
        ])
    );
    assert_eq!(h.starts("web/app"), [SYNC_ERROR_RETRY]);
    let failed = h.events_of(&["FailedCreatePodSandBox"]);
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].1.contains("no IP addresses available"),
        "{failed:?}"
    );
    assert_eq!(h.phase(), "Running");
}

#[tokio::test(start_paused = true)]
async fn sandboxes_with_no_pod_are_removed() {
    let mut h = Harness::new();
    h.create_pod(json!({"containers": [container("app")]}));
    h.run_for(secs(3)).await;
    assert_eq!(h.phase(), "Running");

    // The pod goes away while the agent is down; the new agent lists no such pod.
    h.api.delete("pods", KEY);
    h.restart_agent();
    h.runtime.clear_log();
    h.agent.syncer.sweep_orphans().await.unwrap();

    assert_eq!(
        h.runtime.action_log(),
        strings(&["stop_sandbox web", "remove_sandbox web"])
    );
    assert!(
        h.runtime
            .list_sandboxes(&SandboxFilter::default())
            .await
            .unwrap()
            .is_empty()
    );
}
