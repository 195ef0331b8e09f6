//! B3 (issue 6): pods scheduled per second.
//!
//! 1. In process: the pure core (filter, score, assume) over 5,000 nodes with 1,000 pods
//!    placed, scheduling 10,000 pods; then 1,000 pods that each carry a required
//!    anti-affinity (the shape of scheduler_perf's SchedulingPodAntiAffinity).
//! 2. End to end: the same cluster in Tugboat's API server (in process, memory store,
//!    HTTPS on loopback); pods are created as fast as 32 concurrent clients can, and the
//!    time runs from the first create to the last bind seen by a watch.
//!
//! Each rate is printed with its ratio to kube-scheduler's published CI floors
//! (shared/notes/performance.md §2: 680 pods/s SchedulingBasic 5k nodes/10k pods, 60 pods/s
//! required anti-affinity). Sizes: `B3_NODES`, `B3_PLACED`, `B3_PODS`, `B3_AFFINITY_PODS`;
//! `B3_SKIP_API=1` runs only the in-process part.

use std::{collections::HashSet, sync::Arc, time::Duration};

use anyhow::{Context, Result};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::{
    Api, Client,
    api::{Patch, PatchParams, PostParams},
    runtime::{WatchStreamExt, watcher},
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tugboat_scheduler::{
    SchedulerConfig,
    cache::{Cache, PodInfo},
    plugins::default_framework,
};
use tugboat_testkit::objects::{PodBuilder, node, pod};

// The allocator `tug` runs with, so the end-to-end figure is the API server's as shipped.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const KUBE_SCHEDULER_BASIC_PODS_PER_SECOND: f64 = 680.0;
const KUBE_SCHEDULER_ANTI_AFFINITY_PODS_PER_SECOND: f64 = 60.0;
const HOSTNAME: &str = "kubernetes.io/hostname";

fn size(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// scheduler_perf's default pod: 100m CPU and 500Mi of memory.
fn sized_pod(name: &str) -> PodBuilder {
    pod(name).cpu("100m").memory("500Mi")
}

fn anti_affine_pod(name: &str) -> PodBuilder {
    sized_pod(name)
        .label("color", "green")
        .anti_affinity("color", "green", HOSTNAME)
}

fn report(label: &str, pods: usize, elapsed: Duration, reference: f64) {
    let rate = pods as f64 / elapsed.as_secs_f64();
    println!(
        "{label}: {pods} pods in {:.3} s = {rate:.0} pods/s; {:.2}x kube-scheduler's {reference:.0} pods/s",
        elapsed.as_secs_f64(),
        rate / reference
    );
}

fn in_process(nodes: usize, placed: usize, pods: usize, anti_affinity_pods: usize) {
    let framework = default_framework(0);
    let mut cache = Cache::new();
    for index in 0..nodes {
        cache.set_node(node(&format!("node-{index}")).obj());
    }
    for index in 0..placed {
        let bound = sized_pod(&format!("placed-{index}"))
            .node_name(&format!("node-{}", index % nodes))
            .obj();
        cache.set_bound_pod(Arc::new(PodInfo::new(Arc::new(bound))));
    }
    let run = |cache: &mut Cache, pods: Vec<Pod>| -> Duration {
        let started = std::time::Instant::now();
        for pod in pods {
            let info = Arc::new(PodInfo::new(Arc::new(pod)));
            match framework.schedule(&info, cache) {
                Ok(result) => cache.assume(info, &result.node_name),
                Err(error) => panic!("pod {} did not fit: {error}", info.key),
            }
        }
        started.elapsed()
    };
    let basic: Vec<Pod> = (0..pods)
        .map(|i| sized_pod(&format!("basic-{i}")).obj())
        .collect();
    let elapsed = run(&mut cache, basic);
    report(
        &format!("in-process basic ({nodes} nodes, {placed} placed)"),
        pods,
        elapsed,
        KUBE_SCHEDULER_BASIC_PODS_PER_SECOND,
    );
    let affine: Vec<Pod> = (0..anti_affinity_pods)
        .map(|i| anti_affine_pod(&format!("anti-{i}")).obj())
        .collect();
    let elapsed = run(&mut cache, affine);
    report(
        &format!(
            "in-process required anti-affinity ({nodes} nodes, {} placed)",
            placed + pods
        ),
        anti_affinity_pods,
        elapsed,
        KUBE_SCHEDULER_ANTI_AFFINITY_PODS_PER_SECOND,
    );
}

async fn create_all<K>(api: &Api<K>, objects: Vec<K>) -> Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    futures::stream::iter(objects)
        .map(|object| async move { api.create(&PostParams::default(), &object).await })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    Ok(())
}

async fn end_to_end(nodes: usize, placed: usize, pods: usize) -> Result<()> {
    let data_dir = tempfile::tempdir()?;
    let mut config = tugboat_apiserver::ApiServerConfig::new(data_dir.path());
    config.listen = "127.0.0.1:0".parse()?;
    config.store = tugboat_apiserver::StoreConfig::Memory;
    let shutdown = CancellationToken::new();
    let running = tugboat_apiserver::start(config, shutdown.clone()).await?;
    let client: Client =
        tugboat_testkit::kube::client(&running.url, &running.ca_pem, &running.admin_token)?;

    let node_api: Api<Node> = Api::all(client.clone());
    let setup = Instant::now();
    create_all(
        &node_api,
        (0..nodes)
            .map(|i| node(&format!("node-{i}")).obj())
            .collect(),
    )
    .await?;
    futures::stream::iter(0..nodes)
        .map(|index| {
            let node_api = node_api.clone();
            async move {
                let status = serde_json::json!({"status": node("x").obj().status});
                node_api
                    .patch_status(
                        &format!("node-{index}"),
                        &PatchParams::default(),
                        &Patch::Merge(status),
                    )
                    .await
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<_>>()
        .await?;
    let pod_api: Api<Pod> = Api::namespaced(client.clone(), "default");
    create_all(
        &pod_api,
        (0..placed)
            .map(|i| {
                sized_pod(&format!("placed-{i}"))
                    .node_name(&format!("node-{}", i % nodes))
                    .obj()
            })
            .collect(),
    )
    .await?;
    println!(
        "end-to-end setup: {nodes} nodes and {placed} placed pods in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let scheduler = tokio::spawn(tugboat_scheduler::run(
        client.clone(),
        SchedulerConfig::default(),
        shutdown.clone(),
    ));
    // Count binds by watch, as the issue asks.
    let watch_api = pod_api.clone();
    let counter = tokio::spawn(async move {
        let mut bound = HashSet::new();
        let mut events = watcher(watch_api, watcher::Config::default())
            .applied_objects()
            .boxed();
        while let Some(pod) = events.try_next().await? {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if name.starts_with("measured-")
                && pod
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.node_name.as_ref())
                    .is_some()
            {
                bound.insert(name);
                if bound.len() == pods {
                    return anyhow::Ok(Instant::now());
                }
            }
        }
        anyhow::bail!("watch ended early")
    });
    let measured: Vec<Pod> = (0..pods)
        .map(|i| sized_pod(&format!("measured-{i}")).obj())
        .collect();
    let started = Instant::now();
    create_all(&pod_api, measured).await?;
    let created = started.elapsed();
    let finished = tokio::time::timeout(Duration::from_secs(600), counter)
        .await
        .context("not all pods were bound within 10 minutes")???;
    println!(
        "end-to-end: {pods} creates took {:.2} s",
        created.as_secs_f64()
    );
    report(
        &format!("end-to-end through the API ({nodes} nodes, {placed} placed)"),
        pods,
        finished - started,
        KUBE_SCHEDULER_BASIC_PODS_PER_SECOND,
    );
    shutdown.cancel();
    scheduler.await??;
    running.stopped().await;
    Ok(())
}

fn main() -> Result<()> {
    let nodes = size("B3_NODES", 5000);
    let placed = size("B3_PLACED", 1000);
    let pods = size("B3_PODS", 10_000);
    let anti_affinity_pods = size("B3_AFFINITY_PODS", 1000);
    in_process(nodes, placed, pods, anti_affinity_pods);
    if std::env::var("B3_SKIP_API").is_ok_and(|value| value == "1") {
        return Ok(());
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(end_to_end(nodes, placed, pods))
}
