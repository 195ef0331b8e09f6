//! B2 and B7: real pods on the one real node, against raw CRI and `ctr run` on the same
//! containerd, in one run.
//!
//! `cargo bench -p tugboat-e2e --bench podstart` (root and containerd; builds the release
//! `tug` unless `TUGBOAT_TUG` names one) measures:
//!
//! - Cold start: `tug up` (release, fresh data dir, private containerd) until `/readyz` (the
//!   node is Ready), then until a first busybox pod is Running.
//! - Paced: 100 pods created at 5/s through the API, each timed from just before its create
//!   to the watch event that shows it Running (p50/p99; target p99 ≤ 1 s).
//! - Burst: 100 pods created at once; pods Running per second (target within 1.3× of raw
//!   CRI's rate).
//! - Anchors on the same containerd, same CNI: the sandbox + container + start of the same pod
//!   made straight through CRI (`tugboat_runtime`, the node agent's own sandbox and container
//!   configs, without its labels so it leaves them alone), paced and burst; and `ctr run -d`
//!   of busybox (no sandbox, no network) as a floor.
//! - `tug up`'s RSS and idle CPU (the whole control plane and the agent in one process).
//!
//! `TUGBOAT_BENCH_PODS` changes the 100.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::watcher;
use parking_lot::Mutex;
use serde_json::json;
use tugboat_e2e::Cluster;
use tugboat_e2e::containers::{containers_or_skip, stop_and_reset};
use tugboat_e2e::process::usage;
use tugboat_nodeagent::spec::{ContainerInputs, container_config, sandbox_config};
use tugboat_runtime::{ContainerdOptions, ContainerdRuntime, Runtime, SandboxFilter};

const PACE_PER_SEC: u64 = 5;
const LABEL: &str = "bench";

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
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

fn pod(name: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {LABEL: "podstart"}},
        "spec": {
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "main", "image": "busybox",
                            "command": ["sleep", "3600"]}]
        }
    }))
    .unwrap()
}

/// When each pod was first seen Running, by name.
type Seen = Arc<Mutex<HashMap<String, Instant>>>;

fn watch_running(api: Api<Pod>, seen: Seen) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let config = watcher::Config::default().labels(&format!("{LABEL}=podstart"));
        let mut events = std::pin::pin!(watcher(api, config));
        while let Some(event) = events.next().await {
            let pods = match event {
                Ok(watcher::Event::Apply(pod) | watcher::Event::InitApply(pod)) => vec![pod],
                _ => continue,
            };
            let now = Instant::now();
            for pod in pods {
                let running =
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
                if running && let Some(name) = pod.metadata.name {
                    seen.lock().entry(name).or_insert(now);
                }
            }
        }
    })
}

async fn wait_all_running(seen: &Seen, names: &[String], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let missing = names
            .iter()
            .filter(|n| !seen.lock().contains_key(*n))
            .count();
        if missing == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} pods not Running after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn delete_all(api: &Api<Pod>) {
    let params = ListParams::default().labels(&format!("{LABEL}=podstart"));
    api.delete_collection(&DeleteParams::default(), &params)
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(180);
    while !api.list(&params).await.unwrap().items.is_empty() {
        assert!(Instant::now() < deadline, "pods not gone after 180 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

struct Run {
    latencies: Vec<Duration>,
    /// First create sent to last pod Running.
    span: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.latencies.len() as f64 / self.span.as_secs_f64()
    }
}

/// `count` pods through the API: paced at [`PACE_PER_SEC`], or all at once.
async fn through_api(api: &Api<Pod>, prefix: &str, count: usize, paced: bool) -> Run {
    let seen: Seen = Arc::default();
    let watch = watch_running(api.clone(), Arc::clone(&seen));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let names: Vec<String> = (0..count).map(|i| format!("{prefix}-{i:03}")).collect();
    let created: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let start = Instant::now();
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / PACE_PER_SEC));
    let mut tasks = Vec::new();
    for name in &names {
        if paced {
            ticker.tick().await;
        }
        let (api, created, name) = (api.clone(), Arc::clone(&created), name.clone());
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            api.create(&PostParams::default(), &pod(&name))
                .await
                .unwrap();
            created.lock().insert(name, sent);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    wait_all_running(&seen, &names, Duration::from_secs(300)).await;
    watch.abort();
    let seen = seen.lock();
    let created = created.lock();
    let latencies = names.iter().map(|n| seen[n] - created[n]).collect();
    let last = names.iter().map(|n| seen[n]).max().unwrap();
    Run {
        latencies,
        span: last - start,
    }
}

/// The same pods straight through CRI: sandbox (with CNI), container, start.
async fn through_cri(runtime: &Arc<ContainerdRuntime>, count: usize, paced: bool) -> Run {
    let mut ticker = tokio::time::interval(Duration::from_millis(1000 / PACE_PER_SEC));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..count {
        if paced {
            ticker.tick().await;
        }
        let runtime = Arc::clone(runtime);
        tasks.push(tokio::spawn(async move {
            let mut pod = pod(&format!("raw-{}-{i:03}", if paced { "p" } else { "b" }));
            pod.metadata.uid = Some(format!("raw-cri-{paced}-{i}"));
            let mut sandbox = sandbox_config(&pod, 0);
            // Not the agent's labels: it removes sandboxes it manages that have no pod.
            sandbox.labels = [(LABEL.to_owned(), "raw-cri".to_owned())].into();
            let spec = pod.spec.as_ref().unwrap();
            let mut container =
                container_config(&pod, &spec.containers[0], &ContainerInputs::default());
            container.labels = sandbox.labels.clone();
            container.log_path = "main/0.log".to_owned();
            let sent = Instant::now();
            let id = runtime.run_sandbox(&sandbox).await.unwrap();
            let container_id = runtime
                .create_container(&id, &container, &sandbox)
                .await
                .unwrap();
            runtime.start_container(&container_id).await.unwrap();
            (sent.elapsed(), Instant::now())
        }));
    }
    let mut latencies = Vec::new();
    let mut last = start;
    for task in tasks {
        let (latency, done) = task.await.unwrap();
        latencies.push(latency);
        last = last.max(done);
    }
    Run {
        latencies,
        span: last - start,
    }
}

async fn remove_raw_sandboxes(runtime: &ContainerdRuntime) {
    let filter = SandboxFilter {
        labels: [(LABEL.to_owned(), "raw-cri".to_owned())].into(),
        ..SandboxFilter::default()
    };
    for sandbox in runtime.list_sandboxes(&filter).await.unwrap() {
        runtime.stop_sandbox(&sandbox.id).await.unwrap();
        runtime.remove_sandbox(&sandbox.id).await.unwrap();
    }
}

/// `ctr run -d` of busybox `sleep`, `count` times in a row: the floor (no sandbox, no CNI).
fn ctr_runs(socket: &Path, count: usize) -> Vec<Duration> {
    let ctr: PathBuf = tugboat_runtime::image::find_ctr().expect("ctr");
    let ctr = |args: &[&str]| {
        Command::new(&ctr)
            .arg("--address")
            .arg(socket)
            .args(["--namespace", "k8s.io"])
            .args(args)
            .output()
            .unwrap()
    };
    let mut latencies = Vec::new();
    for i in 0..count {
        let id = format!("bench-ctr-{i}");
        let started = Instant::now();
        let out = ctr(&[
            "run",
            "-d",
            tugboat_runtime::BUSYBOX_IMAGE,
            &id,
            "sleep",
            "3600",
        ]);
        latencies.push(started.elapsed());
        assert!(
            out.status.success(),
            "ctr run: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for i in 0..count {
        let id = format!("bench-ctr-{i}");
        ctr(&["task", "kill", "-s", "SIGKILL", &id]);
        // The task needs a moment to die before it can be removed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !ctr(&["task", "rm", &id]).status.success() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        ctr(&["container", "rm", &id]);
    }
    latencies
}

fn main() {
    if !containers_or_skip() {
        return;
    }
    let count: usize = std::env::var("TUGBOAT_BENCH_PODS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100);
    tugboat_e2e::tug::rerun_with_release_tug().unwrap();

    let cold = Instant::now();
    let mut cluster = Cluster::start_containerd().unwrap();
    let ready = cold.elapsed();
    let pid = cluster.pid().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let kubeconfig = cluster.kubeconfig();
    let socket = cluster
        .data_dir()
        .join("containerd")
        .join("containerd.sock");
    let report = runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let api: Api<Pod> = Api::namespaced(client, "default");

        let first = through_api(&api, "first", 1, false).await;
        let first_pod = ready + first.span;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = usage(pid).unwrap();
        let (rss_idle, cpu_before) = (idle.rss_mib, idle.cpu_seconds);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let cpu_after = usage(pid).unwrap().cpu_seconds;
        let idle_cpu = (cpu_after - cpu_before) / 10.0;
        delete_all(&api).await;

        // Each measurement right after its anchor, so that a change in the machine's load
        // touches both alike.
        let mut options = ContainerdOptions::new(&cluster.data_dir());
        options.endpoint = Some(socket.clone());
        let cri = Arc::new(ContainerdRuntime::start(&options).await.unwrap());
        let cri_paced = through_cri(&cri, count, true).await;
        remove_raw_sandboxes(&cri).await;
        let paced = through_api(&api, "paced", count, true).await;
        let rss_loaded = usage(pid).unwrap().rss_mib;
        delete_all(&api).await;
        let cri_burst = through_cri(&cri, count, false).await;
        remove_raw_sandboxes(&cri).await;
        let burst = through_api(&api, "burst", count, false).await;
        delete_all(&api).await;
        let socket_for_ctr = socket.clone();
        let ctr = tokio::task::spawn_blocking(move || ctr_runs(&socket_for_ctr, 10))
            .await
            .unwrap();

        let mut out = String::new();
        let row = |out: &mut String, what: &str, run: &Run| {
            out.push_str(&format!(
                "| {what} | {:.1} pods/s | {} | {} |\n",
                run.rate(),
                ms(percentile(&run.latencies, 0.5)),
                ms(percentile(&run.latencies, 0.99)),
            ));
        };
        out.push_str(&format!(
            "Load average at the end: {}\n\n",
            std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
        ));
        out.push_str("| measurement | rate | p50 | p99 |\n|---|---|---|---|\n");
        row(&mut out, &format!("tug: {count} pods created at 5/s, create → Running (watch)"), &paced);
        row(&mut out, &format!("raw CRI: {count} sandbox+container+start at 5/s"), &cri_paced);
        row(&mut out, &format!("tug: {count} pods created at once"), &burst);
        row(&mut out, &format!("raw CRI: {count} sandbox+container+start at once"), &cri_burst);
        out.push_str(&format!(
            "| floor: `ctr run -d` busybox, 10 in a row | | {} | max {} |\n",
            ms(percentile(&ctr, 0.5)),
            ms(percentile(&ctr, 1.0)),
        ));
        out.push_str(&format!(
            "\nRatios: paced p99 tug / raw CRI = {:.2}x; burst rate raw CRI / tug = {:.2}x (target ≤ 1.3x)\n",
            percentile(&paced.latencies, 0.99).as_secs_f64()
                / percentile(&cri_paced.latencies, 0.99).as_secs_f64(),
            cri_burst.rate() / burst.rate(),
        ));
        out.push_str(&format!(
            "Cold start: `tug up` to /readyz (node Ready) {}, to the first pod Running {}\n",
            ms(ready),
            ms(first_pod),
        ));
        out.push_str(&format!(
            "tug up (API server, store, scheduler, controllers, agent in one process): RSS idle {rss_idle:.1} MiB, after {count} pods {rss_loaded:.1} MiB; idle CPU {:.1}% of a core\n",
            idle_cpu * 100.0,
        ));
        if let Ok(cri) = Arc::try_unwrap(cri) {
            cri.close().await;
        }
        out
    });
    drop(runtime);
    stop_and_reset(&mut cluster).unwrap();
    println!("\n{report}");
}
