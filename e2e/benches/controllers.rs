//! B6: the controllers' reaction times, in process, as `tug up --runtime sim` wires them: the
//! API server on the embedded store, the scheduler, every controller and ten simulated node
//! agents, each talking to the API over HTTPS.
//!
//! `cargo bench -p tugboat-e2e --bench controllers` (release) measures:
//!
//! - Replacement: a pod of a 10-replica Deployment is deleted; the time until its replacement
//!   is Running (target < 200 ms), 20 times.
//! - Rollout: a 100-replica Deployment (maxSurge 25 %, maxUnavailable 25 %) gets a new image;
//!   the time until `kubectl rollout status` would say it is done (target < 10 s).
//! - Churn: one pod of a 200-replica Deployment deleted every 50 ms (20 deletions and 20
//!   creations a second) for 60 s (`TUGBOAT_BENCH_CHURN_SECS`); the backlog (replicas
//!   wanted but not Running), sampled every second: it must stay bounded and drain once the
//!   churn stops.
//!
//! Set `TUGBOAT_BENCH_QUICK=1` for a short run (5 replacements, 10 s of churn).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::ApiServerConfig;
use tugboat_nodeagent::{AgentConfig, NodeResources};
use tugboat_runtime::{Runtime, SimNetwork, SimRuntime};

const NODES: usize = 10;

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn deployment(name: &str, replicas: i32, image: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "app", "image": image}]}
            }
        }
    }))
    .unwrap()
}

fn running(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
}

async fn running_pods(pods: &Api<Pod>, app: &str) -> Vec<Pod> {
    pods.list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(running)
        .collect()
}

async fn wait_running(pods: &Api<Pod>, app: &str, want: usize, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while running_pods(pods, app).await.len() != want {
        assert!(
            Instant::now() < deadline,
            "{app}: {want} pods not running in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rollout_done(d: &Deployment) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return false;
    };
    d.metadata.generation <= status.observed_generation
        && status.updated_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
}

/// Replacement latencies: a watch notes when each new pod is first Running.
struct FirstRunning {
    seen: Arc<parking_lot::Mutex<std::collections::HashMap<String, Instant>>>,
}

impl FirstRunning {
    fn start(
        pods: Api<Pod>,
        stop: CancellationToken,
    ) -> (FirstRunning, tokio::task::JoinHandle<()>) {
        let seen = Arc::new(parking_lot::Mutex::new(std::collections::HashMap::new()));
        let record = Arc::clone(&seen);
        let task = tokio::spawn(async move {
            let stream = watcher(pods, watcher::Config::default()).boxed();
            let mut stream = Box::pin(stream.take_until(stop.cancelled_owned()));
            while let Some(event) = stream.next().await {
                let pods: Vec<Pod> = match event {
                    Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => vec![pod],
                    _ => continue,
                };
                for pod in pods.iter().filter(|p| running(p)) {
                    let name = pod.metadata.name.clone().unwrap_or_default();
                    record.lock().entry(name).or_insert_with(Instant::now);
                }
            }
        });
        (FirstRunning { seen }, task)
    }

    fn new_since(&self, before: &std::collections::HashSet<String>) -> Vec<(String, Instant)> {
        self.seen
            .lock()
            .iter()
            .filter(|(name, _)| !before.contains(*name))
            .map(|(name, at)| (name.clone(), *at))
            .collect()
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let quick = std::env::var("TUGBOAT_BENCH_QUICK").is_ok();
    let churn_secs: u64 = std::env::var("TUGBOAT_BENCH_CHURN_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 10 } else { 60 });
    let replacements = if quick { 5 } else { 20 };

    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let mut config = ApiServerConfig::new(dir.path().join("data"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    let running_server = tugboat_apiserver::start(config, shutdown.clone())
        .await
        .unwrap();
    let client = tugboat_testkit::kube::client(
        &running_server.url,
        &running_server.ca_pem,
        &running_server.admin_token,
    )
    .unwrap();
    let tasks = tokio_util::task::TaskTracker::new();
    {
        let (c, s) = (client.clone(), shutdown.clone());
        tasks.spawn(async move {
            tugboat_scheduler::run(c, tugboat_scheduler::SchedulerConfig::default(), s)
                .await
                .unwrap()
        });
        let (c, s) = (client.clone(), shutdown.clone());
        tasks.spawn(async move {
            tugboat_controllers::run(c, tugboat_controllers::ControllersConfig::default(), s)
                .await
                .unwrap()
        });
        let network = SimNetwork::new();
        for i in 1..=NODES {
            let name = format!("bench-{i}");
            let runtime: Arc<dyn Runtime> = Arc::new(SimRuntime::new(&name, Arc::clone(&network)));
            let mut agent = AgentConfig::new(name.clone(), dir.path().join("agents").join(&name));
            agent.resources = NodeResources::simulated();
            let (c, s) = (client.clone(), shutdown.clone());
            tasks.spawn(async move { tugboat_nodeagent::run(c, runtime, agent, s).await.unwrap() });
        }
    }
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let watch_stop = CancellationToken::new();
    let (first_running, watch_task) = FirstRunning::start(pods.clone(), watch_stop.clone());
    println!("B6: controllers on {NODES} simulated nodes, in process, embedded store");

    // Replacement.
    deployments
        .create(&PostParams::default(), &deployment("small", 10, "app:v1"))
        .await
        .unwrap();
    wait_running(&pods, "small", 10, Duration::from_secs(60)).await;
    let mut latencies = Vec::new();
    for _ in 0..replacements {
        let before: std::collections::HashSet<String> =
            first_running.seen.lock().keys().cloned().collect();
        let victim = running_pods(&pods, "small").await.remove(0);
        let name = victim.metadata.name.clone().unwrap();
        let started = Instant::now();
        pods.delete(&name, &DeleteParams::default().grace_period(0))
            .await
            .unwrap();
        let deadline = started + Duration::from_secs(10);
        let at = loop {
            if let Some((_, at)) = first_running
                .new_since(&before)
                .into_iter()
                .min_by_key(|(_, at)| *at)
            {
                break at;
            }
            assert!(Instant::now() < deadline, "no replacement for {name}");
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        latencies.push(at.saturating_duration_since(started));
        wait_running(&pods, "small", 10, Duration::from_secs(10)).await;
    }
    println!(
        "replacement (delete → replacement Running), {replacements} runs: p50 {}, p99 {}, max {} (target < 200 ms)",
        ms(percentile(&latencies, 0.5)),
        ms(percentile(&latencies, 0.99)),
        ms(percentile(&latencies, 1.0)),
    );

    // Rollout.
    deployments
        .create(&PostParams::default(), &deployment("big", 100, "app:v1"))
        .await
        .unwrap();
    let ready_deadline = Instant::now() + Duration::from_secs(120);
    while !rollout_done(&deployments.get("big").await.unwrap()) {
        assert!(Instant::now() < ready_deadline, "100 replicas not up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let started = Instant::now();
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:v2"}]}}}});
    deployments
        .patch("big", &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
    let deadline = started + Duration::from_secs(120);
    loop {
        let d = deployments.get("big").await.unwrap();
        if d.status.as_ref().and_then(|s| s.observed_generation) >= d.metadata.generation
            && rollout_done(&d)
        {
            break;
        }
        assert!(Instant::now() < deadline, "rollout did not finish");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "rollout of 100 replicas at 25%/25%: {} (target < 10 s)",
        ms(started.elapsed())
    );
    deployments
        .delete("big", &DeleteParams::background())
        .await
        .unwrap();
    deployments
        .delete("small", &DeleteParams::background())
        .await
        .unwrap();

    // Churn.
    deployments
        .create(&PostParams::default(), &deployment("churn", 200, "app:v1"))
        .await
        .unwrap();
    wait_running(&pods, "churn", 200, Duration::from_secs(120)).await;
    let churn_start = Instant::now();
    let mut backlog = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    let mut last_sample = Instant::now();
    let mut deletions = 0usize;
    // Victims come from a list refreshed each second, so listing does not slow the pace.
    let mut victims: Vec<String> = Vec::new();
    while churn_start.elapsed() < Duration::from_secs(churn_secs) {
        tick.tick().await;
        if victims.is_empty() || last_sample.elapsed() >= Duration::from_secs(1) {
            last_sample = Instant::now();
            let live = running_pods(&pods, "churn").await;
            backlog.push(200usize.saturating_sub(live.len()));
            victims = live.into_iter().filter_map(|p| p.metadata.name).collect();
        }
        if let Some(name) = victims.pop()
            && pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await
                .is_ok()
        {
            deletions += 1;
        }
    }
    let drain_start = Instant::now();
    wait_running(&pods, "churn", 200, Duration::from_secs(60)).await;
    let drained = drain_start.elapsed();
    let rate = deletions as f64 / churn_start.elapsed().as_secs_f64();
    println!(
        "churn {churn_secs} s at {rate:.1} deletions/s (and as many creations): backlog of pods wanted but not Running, sampled each second: max {}, last {}; drained {} after the churn stopped",
        backlog.iter().max().copied().unwrap_or(0),
        backlog.last().copied().unwrap_or(0),
        ms(drained),
    );
    watch_stop.cancel();
    let _ = watch_task.await;
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    running_server.stopped().await;
}
