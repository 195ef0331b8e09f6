//! The node lifecycle controller against a real API server (memory store): a node whose agent
//! stops renewing its Lease turns Unknown and gets the unreachable taints; its pods are evicted
//! as their tolerations allow; when it reports again the taints go. When every node stops
//! reporting at once, nothing is evicted.

use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tugboat_controllers::ControllersConfig;

mod common;

use common::{eventually, with_cluster_config};

const UNREACHABLE: &str = "node.kubernetes.io/unreachable";

fn pod(name: &str, tolerations: serde_json::Value) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}],
                 "tolerations": tolerations}
    }))?)
}

fn ready_condition(status: &str) -> serde_json::Value {
    let now = Timestamp::now().to_string();
    json!({"status": {"conditions": [{"type": "Ready", "status": status, "reason": "KubeletReady",
        "lastHeartbeatTime": now, "lastTransitionTime": now}]}})
}

async fn renew_node(leases: &Api<Lease>, node: &str) -> anyhow::Result<()> {
    let renew = json!({"spec": {"holderIdentity": node, "leaseDurationSeconds": 40,
        "renewTime": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}});
    leases
        .patch(node, &PatchParams::default(), &Patch::Merge(&renew))
        .await?;
    Ok(())
}

async fn renew(leases: &Api<Lease>) -> anyhow::Result<()> {
    renew_node(leases, "n1").await
}

/// A Ready node with a renewed Lease, as an agent registers it.
async fn add_node(nodes: &Api<Node>, leases: &Api<Lease>, name: &str) -> anyhow::Result<()> {
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": name}}))?,
        )
        .await?;
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(ready_condition("True")),
        )
        .await?;
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": name, "namespace": "kube-node-lease"}}),
            )?,
        )
        .await?;
    renew_node(leases, name).await
}

/// Renews `node`'s Lease every 200 ms, for as long as it is polled.
async fn keep_alive(leases: &Api<Lease>, node: &str) -> anyhow::Result<()> {
    loop {
        renew_node(leases, node).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn has_eviction_taint(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|t| {
            t.iter()
                .any(|t| t.key == UNREACHABLE && t.effect == "NoExecute")
        })
}

async fn scenario(client: Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    // A healthy second node: with n1 its only other node, n1's loss is no mass outage.
    add_node(&nodes, &leases, "n2").await?;
    add_node(&nodes, &leases, "n1").await?;
    tokio::select! {
        result = one_node_dies(client) => result,
        result = keep_alive(&leases, "n2") => result,
    }
}

async fn one_node_dies(client: Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let unreachable = UNREACHABLE;
    // Without tolerations of its own, a pod gets the API server's default 300 s ones.
    pods.create(&PostParams::default(), &pod("intolerant", json!([]))?)
        .await?;
    pods.create(
        &PostParams::default(),
        &pod("hasty", json!([{"key": unreachable, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 0}]))?,
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &pod("patient", json!([{"key": unreachable, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 3}]))?,
    )
    .await?;
    pods.create(
        &PostParams::default(),
        &pod("stubborn", json!([{"operator": "Exists"}]))?,
    )
    .await?;

    // No more heartbeats: after the 1 s grace period the node is Unknown and tainted.
    let node = eventually(|| async {
        let node = nodes.get("n1").await?;
        let tainted = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_some_and(|t| {
                t.iter()
                    .any(|t| t.key == unreachable && t.effect == "NoExecute")
            });
        Ok(tainted.then_some(node))
    })
    .await?;
    let ready = node
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .context("no Ready condition")?;
    assert_eq!(ready.status, "Unknown");
    assert_eq!(ready.reason.as_deref(), Some("NodeStatusUnknown"));

    let marked = |name: &'static str| {
        let pods = pods.clone();
        async move {
            let pod = pods.get_opt(name).await?;
            Ok::<_, anyhow::Error>(pod.is_none_or(|p| p.metadata.deletion_timestamp.is_some()))
        }
    };
    let tainted_at = std::time::Instant::now();
    eventually(|| async { Ok(marked("hasty").await?.then_some(())) }).await?;
    assert!(
        !marked("patient").await?,
        "evicted before its toleration ran out"
    );
    eventually(|| async { Ok(marked("patient").await?.then_some(())) }).await?;
    assert!(
        tainted_at.elapsed() >= Duration::from_secs(2),
        "{:?}",
        tainted_at.elapsed()
    );
    assert!(
        !marked("stubborn").await?,
        "a pod tolerating everything stays"
    );
    assert!(
        !marked("intolerant").await?,
        "the default toleration lasts 300 s"
    );

    // The agent is back: heartbeats and Ready=True take the lifecycle taints away.
    renew(&leases).await?;
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(ready_condition("True")),
        )
        .await?;
    eventually(|| async {
        renew(&leases).await?;
        let node = nodes.get("n1").await?;
        let clean = node
            .spec
            .as_ref()
            .and_then(|s| s.taints.as_ref())
            .is_none_or(|t| t.iter().all(|t| t.key != unreachable));
        Ok(clean.then_some(()))
    })
    .await?;
    Ok(())
}

fn fast_lifecycle() -> ControllersConfig {
    let mut config = ControllersConfig::default();
    config.node_lifecycle.grace_period = Duration::from_secs(1);
    config.node_lifecycle.monitor_period = Duration::from_millis(200);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_node_is_tainted_and_its_pods_evicted_as_tolerated() -> anyhow::Result<()> {
    with_cluster_config(fast_lifecycle(), scenario).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_node_stops_reporting_nothing_is_evicted() -> anyhow::Result<()> {
    // Both nodes must go silent together: if one's last heartbeat came a grace period before
    // the other's (a loaded machine), the controller would rightly see one node down among
    // healthy ones. A longer grace period and a last renewal of both at once keep them together.
    let mut config = fast_lifecycle();
    config.node_lifecycle.grace_period = Duration::from_secs(3);
    with_cluster_config(config, |client| async move {
        let nodes: Api<Node> = Api::all(client.clone());
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        add_node(&nodes, &leases, "n1").await?;
        add_node(&nodes, &leases, "n2").await?;
        futures::try_join!(renew_node(&leases, "n1"), renew_node(&leases, "n2"))?;
        let hasty = json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute",
            "tolerationSeconds": 0}]);
        pods.create(&PostParams::default(), &pod("hasty", hasty)?)
            .await?;

        // Both go silent: both turn Unknown and unschedulable, but neither gets the NoExecute
        // taint and the pod stays (upstream's FullDisruption: the controller is more likely
        // cut off than every node dead).
        eventually(|| async {
            let all = nodes.list(&Default::default()).await?.items;
            let unknown = all.iter().all(|n| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c.type_ == "Ready" && c.status == "Unknown")
                    })
            });
            Ok(unknown.then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        for node in nodes.list(&Default::default()).await?.items {
            assert!(!has_eviction_taint(&node), "{:?}", node.spec);
        }
        let pod = pods.get("hasty").await?;
        assert!(
            pod.metadata.deletion_timestamp.is_none(),
            "evicted in a full outage"
        );

        // n2 comes back (heartbeats and Ready=True, as its agent posts them): n1 alone is
        // down now, so it is tainted and its pod evicted.
        tokio::select! {
            result = async {
                eventually(|| async {
                    nodes
                        .patch_status(
                            "n2",
                            &PatchParams::default(),
                            &Patch::Merge(ready_condition("True")),
                        )
                        .await?;
                    let gone = pods
                        .get_opt("hasty")
                        .await?
                        .is_none_or(|p| p.metadata.deletion_timestamp.is_some());
                    Ok(gone.then_some(()))
                })
                .await?;
                assert!(has_eviction_taint(&nodes.get("n1").await?));
                Ok::<_, anyhow::Error>(())
            } => result,
            result = keep_alive(&leases, "n2") => result,
        }
    })
    .await
}
