//! B3 (issue 6) on a whole simulated cluster: `tug up --runtime sim --nodes 5000`.
//!
//! `cargo bench -p tugboat-e2e --bench scheduling_sim` (release `tug`). The shape is
//! scheduler_perf's SchedulingBasic (5,000 nodes, 1,000 pods already placed, then 10,000 pods
//! of 100m CPU / 500Mi), but the cluster is the one a user starts: one `tug up` process with
//! the API server on its embedded (fsynced) store, the scheduler, the controllers and 5,000
//! node agents, which run every pod they are given and report its status. This bench is a
//! separate process creating the pods over HTTPS with 32 requests in flight.
//!
//! It reports pods bound per second from the first create to the last bind seen by a watch
//! (the figure, against kube-scheduler's published 680 pods/s for this shape), the
//! creates alone, how long until every pod is Running, and the CPU and memory of `tug up`
//! over the run. Sizes: `B3_NODES`, `B3_PLACED`, `B3_PODS`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::Api;
use kube::api::{ListParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::json;
use tugboat_e2e::cluster::Cluster;
use tugboat_e2e::process::usage;
use tugboat_testkit::objects::pod;

const KUBE_SCHEDULER_BASIC_PODS_PER_SECOND: f64 = 680.0;
const NAMESPACE: &str = "b3";
const CLIENTS: usize = 32;
/// Bound on every wait: placement, binds, pods running.
const TIMEOUT: Duration = Duration::from_secs(600);

fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// scheduler_perf's default pod: 100m CPU and 500Mi of memory.
fn sized_pod(name: &str, role: &str) -> Pod {
    pod(name)
        .namespace(NAMESPACE)
        .label("b3", role)
        .cpu("100m")
        .memory("500Mi")
        .obj()
}

async fn create_all(api: &Api<Pod>, pods: Vec<Pod>) {
    futures::stream::iter(pods)
        .map(|pod| async move { api.create(&PostParams::default(), &pod).await })
        .buffer_unordered(CLIENTS)
        .try_collect::<Vec<_>>()
        .await
        .unwrap();
}

fn is_bound(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_some()
}

/// Polls until every one of the `count` pods with label `b3=<role>` (all created) is Running,
/// or the deadline. Asks only for the pods not Running yet: listing every pod twice a second
/// would cost the server more than running them.
async fn wait_running(api: &Api<Pod>, role: &str, count: usize) -> Result<Duration, usize> {
    let started = Instant::now();
    let deadline = started + TIMEOUT;
    let not_running = ListParams::default()
        .labels(&format!("b3={role}"))
        .fields("status.phase!=Running");
    loop {
        let waiting = api.list(&not_running).await.unwrap().items.len();
        if waiting == 0 {
            return Ok(started.elapsed());
        }
        if Instant::now() >= deadline {
            return Err(count.saturating_sub(waiting));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn main() {
    tugboat_e2e::tug::rerun_with_release_tug().unwrap();
    let nodes = size("B3_NODES", 5000);
    let placed = size("B3_PLACED", 1000);
    let pods = size("B3_PODS", 10_000);

    let started = Instant::now();
    let mut cluster = Cluster::start_with_args(&["--nodes", &nodes.to_string()]).unwrap();
    let ready = started.elapsed();
    let pid = cluster.pid().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let kubeconfig = cluster.kubeconfig();
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        let pod_api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);

        // The pods already placed, bound by the scheduler and run by the agents before the
        // measured run starts, so that it begins on a settled cluster.
        create_all(
            &pod_api,
            (0..placed)
                .map(|i| sized_pod(&format!("placed-{i}"), "placed"))
                .collect(),
        )
        .await;
        let placed_running = wait_running(&pod_api, "placed", placed).await;
        let before = usage(pid).unwrap();
        let (rss_before, cpu_before) = (before.rss_mib, before.cpu_seconds);
        println!(
            "B3 on tug up --runtime sim: {nodes} nodes Ready {:.1} s after start; {placed} placed pods Running after {:?}; tug up RSS {rss_before:.0} MiB",
            ready.as_secs_f64(),
            placed_running.map(|d| format!("{:.1} s", d.as_secs_f64())),
        );

        // Binds counted by watch, as the issue asks.
        let watch_api = pod_api.clone();
        let counter = tokio::spawn(async move {
            let mut bound = HashSet::new();
            let config = watcher::Config::default().labels("b3=measured");
            let mut events = watcher(watch_api, config).applied_objects().boxed();
            while let Some(pod) = events.try_next().await.unwrap() {
                if is_bound(&pod) {
                    bound.insert(pod.metadata.name.clone().unwrap_or_default());
                    if bound.len() == pods {
                        return Instant::now();
                    }
                }
            }
            panic!("the watch ended early");
        });
        let measured: Vec<Pod> = (0..pods)
            .map(|i| sized_pod(&format!("measured-{i}"), "measured"))
            .collect();
        let bench_cpu_before = usage("self").unwrap().cpu_seconds;
        let first_create = Instant::now();
        create_all(&pod_api, measured).await;
        let creates = first_create.elapsed();
        let last_bind = tokio::time::timeout(TIMEOUT, counter)
            .await
            .expect("every pod bound within the timeout")
            .unwrap();
        let bound = usage(pid).unwrap();
        let (rss_bound, cpu_bound) = (bound.rss_mib, bound.cpu_seconds);
        let bench_cpu_bound = usage("self").unwrap().cpu_seconds;
        let bind_time = last_bind - first_create;
        let running = wait_running(&pod_api, "measured", pods)
            .await
            .map(|_| first_create.elapsed());
        let rss_running = usage(pid).unwrap().rss_mib;
        let rate = pods as f64 / bind_time.as_secs_f64();
        println!(
            "| nodes | placed | pods | creates | first create → last bind | pods/s | ratio to kube-scheduler (680) | all Running after | tug up CPU to last bind | bench CPU | tug up RSS at last bind | RSS all Running |"
        );
        println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
        println!(
            "| {nodes} | {placed} | {pods} | {:.2} s | {:.2} s | **{rate:.0}** | {:.2}× | {} | {:.1} s | {:.1} s | {rss_bound:.0} MiB | {rss_running:.0} MiB |",
            creates.as_secs_f64(),
            bind_time.as_secs_f64(),
            rate / KUBE_SCHEDULER_BASIC_PODS_PER_SECOND,
            match running {
                Ok(took) => format!("{:.1} s", took.as_secs_f64()),
                Err(count) => format!("only {count} after {} s", TIMEOUT.as_secs()),
            },
            cpu_bound - cpu_before,
            bench_cpu_bound - bench_cpu_before,
        );
    });
    cluster.stop().unwrap();
}
