//! Many simulated agents in one process, as `tug up --runtime sim --nodes N` runs them: one
//! client, one pod watch and one Node watch shared by all. Each node registers, is Ready and
//! keeps its Lease, compares its status with the shared watch's instead of reading its Node
//! each period, and sets Ready back when someone else marks it Unknown;
//! each runs exactly the pods bound to it and finishes their deletion; a pod bound to a node
//! that is not one of them is left alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::Api;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_nodeagent::{
    AgentConfig, NodeResources, NodeStatuses, PodWatch, SharedByNodes, Timings,
};
use tugboat_runtime::{Runtime, SandboxFilter, SimNetwork, SimRuntime};

const NODES: usize = 20;
const PODS_PER_NODE: usize = 2;
const WAIT: Duration = Duration::from_secs(60);

/// Polls `check` until it gives `Some`, at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tugboat_testkit::wait::eventually(what, WAIT, check).await
}

fn node_name(i: usize) -> String {
    format!("sim-{i}")
}

fn pod(name: &str, node: &str) -> Pod {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": "many" } },
        "spec": {
            "nodeName": node,
            "terminationGracePeriodSeconds": 1,
            "containers": [{ "name": "app", "image": "busybox", "command": ["sleep", "3600"] }]
        }
    }))
    .unwrap()
}

fn ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// How many single-Node GETs the API server has answered (from its /metrics).
async fn node_gets(client: &kube::Client) -> u64 {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    text.lines()
        .filter(|line| line.starts_with("apiserver_request_total{verb=\"get\",resource=\"nodes\","))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_agents_sharing_one_pod_watch_each_register_and_run_their_own_pods() {
    let dir = tempfile::tempdir().unwrap();
    let common::ApiServer {
        client,
        running,
        shutdown: api_shutdown,
    } = common::start_api_server(dir.path()).await;

    let names: Vec<String> = (1..=NODES).map(node_name).collect();
    let (watch, mut feeds) = PodWatch::shared(names.iter().map(String::as_str));
    let node_statuses = NodeStatuses::new();
    let agent_shutdown = CancellationToken::new();
    let network = SimNetwork::new();
    let mut runtimes = Vec::new();
    let mut agents = tokio::task::JoinSet::new();
    agents.spawn({
        let (client, shutdown) = (client.clone(), agent_shutdown.clone());
        async move {
            watch.run(client, shutdown).await;
            Ok(())
        }
    });
    agents.spawn({
        let (statuses, client, shutdown) = (
            node_statuses.clone(),
            client.clone(),
            agent_shutdown.clone(),
        );
        async move {
            statuses.run(client, shutdown).await;
            Ok(())
        }
    });
    for name in &names {
        let runtime = Arc::new(SimRuntime::new(name, Arc::clone(&network)));
        runtimes.push(Arc::clone(&runtime));
        let mut agent_config = AgentConfig::new(name.clone(), dir.path().join("agents").join(name));
        agent_config.resources = NodeResources::simulated();
        agent_config.node_ip = Some("127.0.0.1".parse().unwrap());
        agent_config.timings = Timings {
            lease_renew: Duration::from_millis(500),
            node_status: Duration::from_millis(500),
            ..Timings::default()
        };
        agents.spawn(tugboat_nodeagent::run_fed(
            client.clone(),
            runtime as Arc<dyn Runtime>,
            agent_config,
            feeds.remove(name).map(|pods| SharedByNodes {
                pods,
                node_statuses: node_statuses.clone(),
                heartbeat_client: client.clone(),
                heartbeat_on: None,
            }),
            agent_shutdown.clone(),
        ));
    }

    let nodes: Api<Node> = Api::all(client.clone());
    eventually("every node registered and Ready", || async {
        let list = nodes.list(&ListParams::default()).await.ok()?;
        let ready: BTreeSet<String> = list
            .items
            .iter()
            .filter(|n| ready(n))
            .filter_map(|n| n.metadata.name.clone())
            .collect();
        (ready == names.iter().cloned().collect()).then_some(())
    })
    .await;
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    for name in &names {
        let lease = eventually("the node's Lease", || async {
            leases.get_opt(name).await.ok()?
        })
        .await;
        assert_eq!(
            lease.spec.and_then(|s| s.holder_identity).as_deref(),
            Some(name.as_str())
        );
    }

    // Marked Unknown by someone else (the node lifecycle controller does this), a node sees it
    // through the shared watch and sets Ready back.
    let marked = &names[1];
    nodes
        .patch_status(
            marked,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"conditions": [
                {"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown"}
            ]}})),
        )
        .await
        .unwrap();
    eventually("the marked node Ready again", || async {
        ready(&nodes.get(marked).await.ok()?).then_some(())
    })
    .await;
    // Over four status periods, the agents read their Node from the shared watch, not with a
    // GET each (a lone agent, as kubelet, sends one per period).
    let before = node_gets(&client).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let gets = node_gets(&client).await - before;
    assert!(
        gets < NODES as u64 / 4,
        "{gets} GETs of Nodes in four status periods of {NODES} agents"
    );

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for name in &names {
        for p in 0..PODS_PER_NODE {
            pods.create(&PostParams::default(), &pod(&format!("{name}-p{p}"), name))
                .await
                .unwrap();
        }
    }
    // Bound to a node none of these agents runs: nobody may touch it.
    pods.create(&PostParams::default(), &pod("elsewhere", "not-simulated"))
        .await
        .unwrap();
    let all = NODES * PODS_PER_NODE;
    eventually("every pod Running", || async {
        let list = pods
            .list(&ListParams::default().labels("app=many"))
            .await
            .ok()?;
        let running = list
            .items
            .iter()
            .filter(|p| phase(p) == Some("Running"))
            .count();
        (running == all).then_some(())
    })
    .await;
    let list = pods.list(&ListParams::default()).await.unwrap();
    for p in &list.items {
        let name = p.metadata.name.as_deref().unwrap();
        if name == "elsewhere" {
            assert!(
                p.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Running")
                    && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_none(),
                "a pod of another node was run: {:?}",
                p.status
            );
            continue;
        }
        let status = p.status.as_ref().unwrap();
        assert!(status.pod_ip.is_some(), "{name} has an IP");
        assert_eq!(
            status.container_statuses.as_ref().unwrap()[0].restart_count,
            0
        );
    }
    // Each runtime holds exactly the sandboxes of its own node's pods.
    for (name, runtime) in names.iter().zip(&runtimes) {
        let sandboxes = runtime
            .list_sandboxes(&SandboxFilter::default())
            .await
            .unwrap();
        let mut held: Vec<String> = sandboxes.iter().map(|s| s.name.clone()).collect();
        held.sort();
        let expected: Vec<String> = (0..PODS_PER_NODE).map(|p| format!("{name}-p{p}")).collect();
        assert_eq!(held, expected, "sandboxes of {name}");
    }

    // Deleting a node's pods completes through its agent and empties its runtime.
    let first = &names[0];
    for p in 0..PODS_PER_NODE {
        pods.delete(&format!("{first}-p{p}"), &DeleteParams::default())
            .await
            .unwrap();
    }
    eventually("the first node's pods gone", || async {
        let list = pods
            .list(&ListParams::default().labels("app=many"))
            .await
            .ok()?;
        let left = list
            .items
            .iter()
            .filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(first))
            .count();
        (left == 0 && list.items.len() == all + 1 - PODS_PER_NODE).then_some(())
    })
    .await;
    eventually("the first node's sandboxes removed", || async {
        let left = runtimes[0]
            .list_sandboxes(&SandboxFilter::default())
            .await
            .ok()?;
        left.is_empty().then_some(())
    })
    .await;

    agent_shutdown.cancel();
    tokio::time::timeout(WAIT, async {
        while let Some(result) = agents.join_next().await {
            result.expect("agent task").expect("agent result");
        }
    })
    .await
    .expect("agents stop in time");
    api_shutdown.cancel();
    tokio::time::timeout(WAIT, running.stopped())
        .await
        .expect("server stops in time");
}
