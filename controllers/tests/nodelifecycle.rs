//! The node lifecycle controller against a real API server (memory store): a node whose agent
//! stops renewing its Lease turns Unknown and gets the unreachable taints; its pods are evicted
//! as their tolerations allow; when it reports again the taints go.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, StoreConfig};
use tugboat_controllers::ControllersConfig;

const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn eventually<T, Fut>(mut check: impl FnMut() -> Fut) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

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

async fn renew(leases: &Api<Lease>) -> anyhow::Result<()> {
    let renew = json!({"spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40,
        "renewTime": k8s_openapi::jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}});
    leases
        .patch("n1", &PatchParams::default(), &Patch::Merge(&renew))
        .await?;
    Ok(())
}

async fn scenario(client: Client) -> anyhow::Result<()> {
    let nodes: Api<Node> = Api::all(client.clone());
    let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-node-lease");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    nodes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "n1"}}))?,
        )
        .await?;
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(ready_condition("True")),
        )
        .await?;
    leases
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "n1", "namespace": "kube-node-lease"}}),
            )?,
        )
        .await?;
    renew(&leases).await?;
    let unreachable = "node.kubernetes.io/unreachable";
    pods.create(&PostParams::default(), &pod("intolerant", json!([]))?)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_node_is_tainted_and_its_pods_evicted_as_tolerated() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let mut config = ApiServerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse()?;
    config.store = StoreConfig::Memory;
    let server = tugboat_apiserver::start(config, shutdown.clone()).await?;
    let client = tugboat_testkit::kube::client(&server.url, &server.ca_pem, &server.admin_token)?;
    let mut controllers_config = ControllersConfig::default();
    controllers_config.node_lifecycle.grace_period = Duration::from_secs(1);
    controllers_config.node_lifecycle.monitor_period = Duration::from_millis(200);
    let controllers =
        tugboat_controllers::run(client.clone(), controllers_config, shutdown.child_token());
    let test = async {
        let result = tokio::time::timeout(TEST_TIMEOUT, scenario(client)).await;
        shutdown.cancel();
        result.context("test timed out")?
    };
    let (controllers, test) = tokio::join!(controllers, test);
    server.stopped().await;
    test?;
    controllers.context("controllers failed")?;
    Ok(())
}
