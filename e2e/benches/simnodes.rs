//! Simulated nodes at scale (issue 5's target: 5,000 simulated nodes in under 1 GB).
//!
//! `cargo bench -p tugboat-e2e --bench simnodes` (release `tug`) starts `tug up --runtime sim
//! --nodes N` for each N and reports, for the one `tug up` process (API server, store,
//! scheduler, controllers and the N node agents):
//!
//! - the time from start until all N nodes are Ready;
//! - RSS and CPU once the nodes are Ready and have renewed their Leases a few times (idle);
//! - RSS once one pod per node (a Deployment of N replicas) is Running on them.
//!
//! `TUGBOAT_BENCH_SIM_NODES=500,1000,2000` (the default) picks the sizes; add 5000 for the
//! target (about three minutes more). `TUGBOAT_BENCH_SIM_SETTLE_SECS` (default 25) is how long
//! the idle cluster runs before it is measured.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use tugboat_e2e::cluster::Cluster;
use tugboat_e2e::process::usage;

/// Bound on the wait for the pods to run.
const PODS_TIMEOUT: Duration = Duration::from_secs(300);

/// TCP connections of a process (its sockets: both ends of the agents' connections to the
/// API server live in it).
fn sockets(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
                })
                .count()
        })
        .unwrap_or(0)
}

fn deployment(replicas: usize) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "simnodes", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "simnodes"}},
            "template": {
                "metadata": {"labels": {"app": "simnodes"}},
                "spec": {"terminationGracePeriodSeconds": 0,
                         "containers": [{"name": "main", "image": "busybox",
                                         "command": ["sleep", "3600"]}]}
            }
        }
    }))
    .unwrap()
}

struct Report {
    nodes: usize,
    ready: Duration,
    idle_rss: f64,
    idle_cpu: f64,
    idle_sockets: usize,
    /// How long until every pod ran, or how many ran by the deadline.
    pods_running: Result<Duration, usize>,
    loaded_rss: f64,
    peak_rss: f64,
}

fn measure(nodes: usize, settle: Duration) -> Report {
    let started = Instant::now();
    let nodes_arg = nodes.to_string();
    let mut cluster = Cluster::start_with_args(&["--nodes", &nodes_arg]).unwrap();
    let ready = started.elapsed();
    let pid = cluster.pid().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let kubeconfig = cluster.kubeconfig();
    let report = runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let registered = Api::<Node>::all(client.clone())
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len();
        assert_eq!(registered, nodes, "every simulated node registered");

        // Idle: the agents renew their Leases and write their Node status every 10 s.
        let cpu_before = usage(pid).unwrap().cpu_seconds;
        tokio::time::sleep(settle).await;
        let idle = usage(pid).unwrap();
        let (idle_rss, cpu_after) = (idle.rss_mib, idle.cpu_seconds);
        let idle_cpu = (cpu_after - cpu_before) / settle.as_secs_f64();
        let idle_sockets = sockets(pid);

        // One pod per node on average, placed by the scheduler, run by the agents.
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
        let pods_started = Instant::now();
        deployments
            .create(&PostParams::default(), &deployment(nodes))
            .await
            .unwrap();
        let pods: Api<Pod> = Api::namespaced(client, "default");
        let deadline = Instant::now() + PODS_TIMEOUT;
        let pods_running = loop {
            let list = pods
                .list(&ListParams::default().labels("app=simnodes"))
                .await
                .unwrap();
            let running = list
                .items
                .iter()
                .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
                .count();
            if running >= nodes {
                break Ok(pods_started.elapsed());
            }
            if Instant::now() >= deadline {
                break Err(running);
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        // A few more status rounds with the pods in place.
        tokio::time::sleep(Duration::from_secs(12)).await;
        let loaded = usage(pid).unwrap();
        let (loaded_rss, peak_rss) = (loaded.rss_mib, loaded.peak_rss_mib);
        Report {
            nodes,
            ready,
            idle_rss,
            idle_cpu,
            idle_sockets,
            pods_running,
            loaded_rss,
            peak_rss,
        }
    });
    cluster.stop().unwrap();
    report
}

fn main() {
    tugboat_e2e::tug::rerun_with_release_tug().unwrap();
    let sizes: Vec<usize> = std::env::var("TUGBOAT_BENCH_SIM_NODES")
        .unwrap_or_else(|_| "500,1000,2000".to_owned())
        .split(',')
        .map(|n| {
            n.trim()
                .parse()
                .expect("TUGBOAT_BENCH_SIM_NODES: numbers, comma-separated")
        })
        .collect();
    let settle = Duration::from_secs(
        std::env::var("TUGBOAT_BENCH_SIM_SETTLE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(25),
    );
    println!(
        "| sim nodes | all Ready after | RSS idle | per node | CPU idle | sockets | 1 pod/node Running after | RSS with pods | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for nodes in sizes {
        let r = measure(nodes, settle);
        let pods_running = match r.pods_running {
            Ok(took) => format!("{:.1} s", took.as_secs_f64()),
            Err(running) => format!("only {running} after {} s", PODS_TIMEOUT.as_secs()),
        };
        println!(
            "| {} | {:.1} s | {:.0} MiB | {:.0} KiB | {:.0} % of a core | {} | {} | {:.0} MiB | {:.0} MiB |",
            r.nodes,
            r.ready.as_secs_f64(),
            r.idle_rss,
            r.idle_rss * 1024.0 / r.nodes as f64,
            r.idle_cpu * 100.0,
            r.idle_sockets,
            pods_running,
            r.loaded_rss,
            r.peak_rss,
        );
    }
}
