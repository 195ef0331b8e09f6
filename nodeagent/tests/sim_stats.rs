//! The stats loop with the simulated runtime against an in-process API server: a running pod's
//! CPU (from its `tugboat.dev/sim-cpu-millicores` annotation) shows up as PodMetrics with the
//! pod's labels, the node's NodeMetrics sums its pods, and the PodMetrics go when the pod does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tugboat_nodeagent::{AgentConfig, NodeResources, Timings};
use tugboat_runtime::{Runtime, SimNetwork, SimRuntime};

const NODE: &str = "stats-node";
const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` until it gives `Some`, at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tugboat_testkit::wait::eventually(what, WAIT, check).await
}

async fn get(client: &Client, path: &str) -> Option<Value> {
    let request = http::Request::get(path).body(Vec::new()).unwrap();
    client.request::<Value>(request).await.ok()
}

/// How many PUTs of `resource` the API server has answered (from its /metrics): for `nodes`
/// and `pods`, with no Node status changing and no pod replaced, the metrics pushes.
async fn metrics_puts(client: &Client, resource: &str) -> u64 {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    let prefix = format!("apiserver_request_total{{verb=\"put\",resource=\"{resource}\",");
    text.lines()
        .filter(|line| line.starts_with(&prefix))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[tokio::test]
async fn running_pods_are_pushed_summed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let common::ApiServer {
        client,
        running,
        shutdown: api_shutdown,
    } = common::start_api_server(dir.path()).await;
    let runtime = Arc::new(SimRuntime::new(NODE, SimNetwork::new()));
    let mut agent_config = AgentConfig::new(NODE, dir.path().join("agent"));
    agent_config.resources = NodeResources::simulated();
    agent_config.node_ip = Some("127.0.0.1".parse().unwrap());
    agent_config.timings = Timings {
        pod_resync: Duration::from_millis(200),
        node_status: Duration::from_millis(500),
        stats: Duration::from_millis(200),
        ..Timings::default()
    };
    let agent_shutdown = CancellationToken::new();
    let agent = tokio::spawn(tugboat_nodeagent::run(
        client.clone(),
        runtime as Arc<dyn Runtime>,
        agent_config,
        agent_shutdown.clone(),
    ));

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, milli) in [("web-1", 250), ("web-2", 100)] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {
                "name": name,
                "labels": {"app": "web"},
                "annotations": {"tugboat.dev/sim-cpu-millicores": milli.to_string()},
            },
            "spec": {
                "nodeName": NODE,
                "terminationGracePeriodSeconds": 0,
                "containers": [{"name": "app", "image": "busybox"}],
            }
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
    }

    let metrics = eventually("pod metrics of web-1", || {
        get(
            &client,
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1",
        )
    })
    .await;
    assert_eq!(metrics["metadata"]["labels"]["app"], "web");
    assert_eq!(metrics["containers"][0]["name"], "app");
    assert_eq!(metrics["containers"][0]["usage"]["cpu"], "250000000n");

    let listed = eventually("both pods listed by label", || async {
        let list = get(
            &client,
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dweb",
        )
        .await?;
        (list["items"].as_array()?.len() == 2).then_some(list)
    })
    .await;
    assert_eq!(listed["kind"], "PodMetricsList");

    eventually("node metrics summing both pods", || async {
        let node = get(
            &client,
            &format!("/apis/metrics.k8s.io/v1beta1/nodes/{NODE}"),
        )
        .await?;
        (node["usage"]["cpu"] == "350000000n").then_some(())
    })
    .await;
    // Unchanged usage is not pushed again every period (five of them here).
    let before = (
        metrics_puts(&client, "nodes").await,
        metrics_puts(&client, "pods").await,
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let node_puts = metrics_puts(&client, "nodes").await - before.0;
    let pod_puts = metrics_puts(&client, "pods").await - before.1;
    assert!(
        node_puts <= 1 && pod_puts <= 2,
        "{node_puts} pushes of unchanged NodeMetrics and {pod_puts} of two unchanged PodMetrics in 5 periods"
    );

    pods.delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually(
        "node metrics of web-2 alone, pushed once changed",
        || async {
            let node = get(
                &client,
                &format!("/apis/metrics.k8s.io/v1beta1/nodes/{NODE}"),
            )
            .await?;
            (node["usage"]["cpu"] == "100000000n").then_some(())
        },
    )
    .await;
    eventually("pod metrics of web-1 removed", || async {
        get(
            &client,
            "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/web-1",
        )
        .await
        .is_none()
        .then_some(())
    })
    .await;

    agent_shutdown.cancel();
    tokio::time::timeout(WAIT, agent)
        .await
        .expect("agent stops in time")
        .expect("agent task")
        .expect("agent result");
    api_shutdown.cancel();
    tokio::time::timeout(WAIT, running.stopped())
        .await
        .expect("server stops in time");
}
