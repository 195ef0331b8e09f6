//! The autoscaling pipeline's cost, in process, on the embedded store.
//!
//! `cargo bench -p tugboat-e2e --bench metrics` (release) measures:
//!
//! - Collection: one node agent's stats tick for 5,000 pods, as the agent does it (one
//!   `PodMetrics` from `tugboat_nodeagent::stats::pod_metrics`, PUT one after the other to the
//!   built-in `metrics.k8s.io`): wall time, CPU time of this process (agent side and API server
//!   side together) and the resident memory the 5,000 samples add.
//! - Serving: `GET /apis/metrics.k8s.io/v1beta1/pods` over those 5,000 pods (target < 100 ms),
//!   the HPA's own query (one namespace, a label selector matching 10 pods), and `kubectl top
//!   pods -A` end to end when kubectl is installed.
//! - Decision latency: Deployments under HPAs (the real controllers, default 15 s sync period),
//!   pods kept Ready and their metrics pushed every 500 ms by the bench; at one instant every
//!   Deployment's load goes from 50 % to 200 % of its request; the time until each
//!   Deployment's replicas change (target: within one sync period).
//!
//! Set `TUGBOAT_BENCH_QUICK=1` for a short run (one tick, fewer GETs, 2 HPAs).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, Running, StoreConfig};
use tugboat_runtime::ContainerStats;

const PODS: usize = 5_000;
const PERIOD: Duration = Duration::from_secs(10);

struct Scale {
    ticks: usize,
    gets: usize,
    hpas: usize,
}

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

/// CPU time (user + system) of this process so far, from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after_comm = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after_comm
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    // Clock ticks; Linux reports them at USER_HZ = 100.
    Duration::from_millis(fields.iter().sum::<u64>() * 10)
}

/// Resident memory of this process, in bytes, from `/proc/self/status`.
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

fn stats(name: &str, milli: u64) -> ContainerStats {
    ContainerStats {
        id: name.to_owned(),
        name: name.to_owned(),
        labels: Default::default(),
        timestamp: Some(SystemTime::now()),
        cpu_usage_core_nanoseconds: Some(milli * 1_000_000 * 60),
        cpu_usage_nano_cores: Some(milli * 1_000_000),
        memory_working_set_bytes: Some(32 << 20),
    }
}

/// PUT one PodMetrics, as the node agent's stats loop does.
async fn put_metrics(client: &kube::Client, pod: &Pod, milli: u64) {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let containers = [stats("app", milli), stats("sidecar", milli / 2)];
    let refs: Vec<&ContainerStats> = containers.iter().collect();
    let body = tugboat_nodeagent::stats::pod_metrics(pod, &refs, SystemTime::now(), PERIOD);
    let request = http::Request::put(format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{ns}/pods/{name}"
    ))
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&body).unwrap())
    .unwrap();
    client.request::<Value>(request).await.unwrap();
}

struct Collection {
    tick: Vec<Duration>,
    cpu_per_tick: Duration,
    rss_added: u64,
}

/// The agent's tick for `PODS` pods in 50 namespaces, `ticks` times.
async fn collection(client: &kube::Client, ticks: usize) -> (Collection, Vec<Pod>) {
    for n in 0..50 {
        create_namespace(client, &format!("m{n}")).await;
    }
    let pods: Vec<Pod> = (0..PODS)
        .map(|i| {
            serde_json::from_value(json!({"metadata": {
                "name": format!("pod-{i}"),
                "namespace": format!("m{}", i % 50),
                "labels": {"app": format!("a{}", i % 500), "tier": "bench"},
            }}))
            .unwrap()
        })
        .collect();
    let rss_before = rss_bytes();
    let mut tick = Vec::new();
    let cpu_before = cpu_time();
    for _ in 0..ticks {
        let start = Instant::now();
        for (i, pod) in pods.iter().enumerate() {
            put_metrics(client, pod, 50 + (i as u64 % 200)).await;
        }
        tick.push(start.elapsed());
    }
    let cpu = cpu_time().saturating_sub(cpu_before);
    let result = Collection {
        tick,
        cpu_per_tick: cpu / u32::try_from(ticks).unwrap(),
        rss_added: rss_bytes().saturating_sub(rss_before),
    };
    (result, pods)
}

/// `GET path` `n` times through the client; latencies and the body size.
async fn timed_gets(client: &kube::Client, path: &str, n: usize) -> (Vec<Duration>, usize, usize) {
    let mut latencies = Vec::new();
    let mut bytes = 0;
    let mut items = 0;
    for _ in 0..n {
        let request = http::Request::get(path).body(Vec::new()).unwrap();
        let start = Instant::now();
        let text = client.request_text(request).await.unwrap();
        latencies.push(start.elapsed());
        bytes = text.len();
        items = serde_json::from_str::<Value>(&text).unwrap()["items"]
            .as_array()
            .map_or(0, Vec::len);
    }
    (latencies, bytes, items)
}

fn kubectl_top(running: &Running, cache: &std::path::Path, n: usize) -> Option<Vec<Duration>> {
    let kubectl = tugboat_e2e::kubectl_binary()?;
    let mut latencies = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        let out = std::process::Command::new(&kubectl)
            .arg("--kubeconfig")
            .arg(&running.kubeconfig)
            .arg("--cache-dir")
            .arg(cache)
            .args(["top", "pods", "-A", "--no-headers"])
            .output()
            .unwrap();
        latencies.push(start.elapsed());
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let rows = String::from_utf8_lossy(&out.stdout).lines().count();
        assert_eq!(rows, PODS, "kubectl top pods -A rows");
    }
    Some(latencies)
}

/// The bench's kubelet and metrics source for namespace `ns`: every 500 ms, pods become
/// Running and Ready and get a PodMetrics at the load of their Deployment (millicores).
async fn kubelet(
    client: kube::Client,
    ns: String,
    load: Arc<Mutex<HashMap<String, u64>>>,
    cancel: CancellationToken,
) {
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    while !cancel.is_cancelled() {
        push_once(&client, &pods, &load).await;
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(Duration::from_millis(500)) => {}
        }
    }
}

async fn push_once(client: &kube::Client, pods: &Api<Pod>, load: &Mutex<HashMap<String, u64>>) {
    let Ok(list) = pods.list(&ListParams::default()).await else {
        return;
    };
    for pod in list.items {
        let name = pod.metadata.name.clone().unwrap_or_default();
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !ready {
            let status = json!({"status": {
                "phase": "Running",
                "conditions": [{"type": "Ready", "status": "True"}],
            }});
            let _ = pods
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await;
        }
        let app = pod
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .cloned()
            .unwrap_or_default();
        let milli = load.lock().get(&app).copied().unwrap_or(0);
        put_metrics(client, &pod, milli).await;
    }
}

/// Seconds from the load change (the new metrics are in the API) to each HPA's decision.
async fn decision_latency(client: &kube::Client, hpas: usize) -> Vec<Duration> {
    let ns = "decide";
    create_namespace(client, ns).await;
    let load = Arc::new(Mutex::new(HashMap::new()));
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let hpa_api: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), ns);
    for i in 0..hpas {
        let app = format!("load-{i}");
        // Two containers requesting 100m + 50m; at 50 % the pod uses 75m.
        load.lock().insert(app.clone(), 50);
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": app},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": app}},
                "template": {
                    "metadata": {"labels": {"app": app}},
                    "spec": {"containers": [
                        {"name": "app", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}},
                        {"name": "sidecar", "image": "busybox", "resources": {"requests": {"cpu": "50m"}}},
                    ]},
                },
            },
        }))
        .unwrap();
        deployments
            .create(&PostParams::default(), &d)
            .await
            .unwrap();
        let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
            "metadata": {"name": app},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": app},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}],
            },
        }))
        .unwrap();
        hpa_api.create(&PostParams::default(), &hpa).await.unwrap();
    }
    let cancel = CancellationToken::new();
    let kubelet = tokio::spawn(kubelet(
        client.clone(),
        ns.to_owned(),
        load.clone(),
        cancel.clone(),
    ));

    // Steady: every HPA has measured 50 % on 2 replicas.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list = hpa_api.list(&ListParams::default()).await.unwrap();
        let steady = list
            .items
            .iter()
            .filter(|h| {
                h.status.as_ref().is_some_and(|s| {
                    s.current_metrics
                        .as_ref()
                        .and_then(|m| m.first())
                        .and_then(|m| m.resource.as_ref())
                        .and_then(|r| r.current.average_utilization)
                        == Some(50)
                })
            })
            .count();
        if steady == hpas {
            break;
        }
        assert!(Instant::now() < deadline, "HPAs did not reach steady state");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The HPAs' sync phases are now spread by when each was first synced; wait a random part
    // of a period more so the change does not land right after a sync by construction.
    tokio::time::sleep(Duration::from_millis(3_700)).await;

    // The load change: 200 % everywhere, pushed at once.
    for value in load.lock().values_mut() {
        *value = 200;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
    push_once(client, &pods, &load).await;
    let changed = Instant::now();
    let mut decided: HashMap<String, Duration> = HashMap::new();
    let deadline = changed + Duration::from_secs(60);
    while decided.len() < hpas {
        for d in deployments
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
        {
            let name = d.metadata.name.clone().unwrap_or_default();
            if d.spec.and_then(|s| s.replicas) != Some(2) {
                decided.entry(name).or_insert_with(|| changed.elapsed());
            }
        }
        assert!(Instant::now() < deadline, "not every HPA decided in 60 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cancel.cancel();
    kubelet.await.unwrap();
    decided.into_values().collect()
}

fn main() {
    let quick = std::env::var_os("TUGBOAT_BENCH_QUICK").is_some();
    let scale = if quick {
        Scale {
            ticks: 1,
            gets: 5,
            hpas: 2,
        }
    } else {
        Scale {
            ticks: 3,
            gets: 30,
            hpas: 8,
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(&scale));
}

async fn run(scale: &Scale) {
    let dir = tempfile::Builder::new()
        .prefix("tugboat-bench-metrics-")
        .tempdir()
        .unwrap();
    let mut config = ApiServerConfig::new(dir.path().join("data"));
    config.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.store = StoreConfig::Embedded;
    let shutdown = CancellationToken::new();
    let running = tugboat_apiserver::start(config, shutdown.clone())
        .await
        .unwrap();
    let client =
        tugboat_testkit::kube::client(&running.url, &running.ca_pem, &running.admin_token).unwrap();
    println!("API server on {} (embedded store)", running.url);

    let (collected, _pods) = collection(&client, scale.ticks).await;
    let (all, all_bytes, all_items) =
        timed_gets(&client, "/apis/metrics.k8s.io/v1beta1/pods", scale.gets).await;
    assert_eq!(all_items, PODS);
    let (hpa_query, _, hpa_items) = timed_gets(
        &client,
        "/apis/metrics.k8s.io/v1beta1/namespaces/m7/pods?labelSelector=app%3Da7",
        scale.gets,
    )
    .await;
    assert_eq!(hpa_items, 10);
    let top = kubectl_top(&running, &dir.path().join("kubectl-cache"), 3);

    let controllers_cancel = CancellationToken::new();
    let sync_period = tugboat_controllers::ControllersConfig::default()
        .hpa
        .sync_period;
    let controllers = tokio::spawn(tugboat_controllers::run(
        client.clone(),
        tugboat_controllers::ControllersConfig::default(),
        controllers_cancel.clone(),
    ));
    let decisions = decision_latency(&client, scale.hpas).await;
    controllers_cancel.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(30), controllers).await;

    let mean_tick = collected.tick.iter().sum::<Duration>() / u32::try_from(scale.ticks).unwrap();
    println!();
    println!("| measurement | result | target |");
    println!("|---|---|---|");
    println!(
        "| one agent stats tick, {PODS} PodMetrics PUT in turn (mean of {}) | {} | < {}s period |",
        scale.ticks,
        ms(mean_tick),
        PERIOD.as_secs()
    );
    println!(
        "| CPU per tick (agent and API server sides, this process) | {} ({:.1} % of one core at a {} s period) | |",
        ms(collected.cpu_per_tick),
        collected.cpu_per_tick.as_secs_f64() / PERIOD.as_secs_f64() * 100.0,
        PERIOD.as_secs()
    );
    println!(
        "| resident memory added by {PODS} samples | {:.1} MiB | |",
        collected.rss_added as f64 / f64::from(1 << 20)
    );
    println!(
        "| GET /apis/metrics.k8s.io/v1beta1/pods, {PODS} pods, {:.1} MiB ({} runs) | p50 {}, max {} | < 100 ms |",
        all_bytes as f64 / f64::from(1 << 20),
        all.len(),
        ms(percentile(&all, 0.5)),
        ms(percentile(&all, 1.0)),
    );
    println!(
        "| the HPA's query: one namespace, selector matching 10 of {PODS} | p50 {}, max {} | |",
        ms(percentile(&hpa_query, 0.5)),
        ms(percentile(&hpa_query, 1.0)),
    );
    match top {
        Some(top) => println!(
            "| `kubectl top pods -A`, {PODS} pods, end to end ({} runs) | p50 {}, max {} | |",
            top.len(),
            ms(percentile(&top, 0.5)),
            ms(percentile(&top, 1.0)),
        ),
        None => println!("| `kubectl top pods -A` | kubectl not installed | |"),
    }
    println!(
        "| load change → scale decision, {} HPAs, {} s sync period | p50 {}, max {} | ≤ {} s |",
        decisions.len(),
        sync_period.as_secs(),
        ms(percentile(&decisions, 0.5)),
        ms(percentile(&decisions, 1.0)),
        sync_period.as_secs(),
    );

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), running.stopped())
        .await
        .expect("the server did not stop");
}
