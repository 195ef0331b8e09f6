//! The agent with the simulated runtime against an in-process API server: the node registers
//! and keeps a Lease, a bound pod gets Running + Ready + an IP, a failing liveness probe
//! restarts its container, deletion completes and removes the sandbox, and sandboxes without
//! a pod are swept.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{DeleteParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::Running;
use tugboat_nodeagent::{AgentConfig, NodeResources, Timings};
use tugboat_runtime::{Runtime, SandboxFilter, SimNetwork, SimRuntime};

const NODE: &str = "sim-node-1";
const WAIT: Duration = Duration::from_secs(30);

struct Cluster {
    client: Client,
    runtime: Arc<SimRuntime>,
    running: Option<Running>,
    agent: tokio::task::JoinHandle<tugboat_nodeagent::Result<()>>,
    api_shutdown: CancellationToken,
    agent_shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
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
            backoff_initial: Duration::from_millis(200),
            backoff_max: Duration::from_secs(1),
            lease_renew: Duration::from_millis(500),
            node_status: Duration::from_millis(500),
            pod_resync: Duration::from_millis(200),
            orphan_sweep: Duration::from_millis(500),
            ..Timings::default()
        };
        let agent_shutdown = CancellationToken::new();
        let agent = tokio::spawn(tugboat_nodeagent::run(
            client.clone(),
            runtime.clone() as Arc<dyn Runtime>,
            agent_config,
            agent_shutdown.clone(),
        ));
        Cluster {
            client,
            runtime,
            running: Some(running),
            agent,
            api_shutdown,
            agent_shutdown,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.agent_shutdown.cancel();
        tokio::time::timeout(WAIT, &mut self.agent)
            .await
            .expect("agent stops in time")
            .expect("agent task")
            .expect("agent result");
        self.api_shutdown.cancel();
        if let Some(running) = self.running.take() {
            tokio::time::timeout(WAIT, running.stopped())
                .await
                .expect("server stops in time");
        }
    }

    fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.client.clone(), "default")
    }
}

/// Polls `check` until it gives `Some`, at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tugboat_testkit::wait::eventually(what, WAIT, check).await
}

fn condition(pod: &Pod, kind: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
        .map(|c| c.status.clone())
}

fn pod(name: &str, extra: serde_json::Value) -> Pod {
    let mut body = json!({
        "metadata": { "name": name },
        "spec": {
            "nodeName": NODE,
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "app",
                "image": "busybox",
                "command": ["sleep", "3600"],
                "env": [{ "name": "POD", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } }],
                "readinessProbe": { "exec": { "command": ["true"] }, "periodSeconds": 1 }
            }]
        }
    });
    merge(&mut body, extra);
    serde_json::from_value(body).unwrap()
}

fn merge(a: &mut serde_json::Value, b: serde_json::Value) {
    match (a, b) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

#[tokio::test]
async fn node_registers_pods_run_and_deletion_completes() {
    let cluster = Cluster::start().await;
    let nodes: Api<Node> = Api::all(cluster.client.clone());
    let node = eventually("node Ready", || async {
        let node = nodes.get_opt(NODE).await.ok()??;
        let ready = node
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(node)
    })
    .await;
    let capacity = node.status.unwrap().capacity.unwrap();
    assert_eq!(capacity["cpu"].0, "16");
    assert_eq!(capacity["pods"].0, "110");
    let leases: Api<Lease> = Api::namespaced(cluster.client.clone(), "kube-node-lease");
    let lease = eventually("lease", || async { leases.get_opt(NODE).await.ok()? }).await;
    assert_eq!(lease.spec.unwrap().holder_identity.as_deref(), Some(NODE));

    let pods = cluster.pods();
    pods.create(&PostParams::default(), &pod("web", json!({})))
        .await
        .unwrap();
    let running = eventually("pod Running and Ready", || async {
        let p = pods.get("web").await.ok()?;
        let phase = p.status.as_ref()?.phase.clone()?;
        (phase == "Running" && condition(&p, "Ready").as_deref() == Some("True")).then_some(p)
    })
    .await;
    let status = running.status.unwrap();
    let ip = status.pod_ip.expect("pod IP");
    assert!(ip.starts_with("198.1"), "a simulated IP: {ip}");
    assert_eq!(status.host_ip.as_deref(), Some("127.0.0.1"));
    let c = &status.container_statuses.unwrap()[0];
    assert!(c.ready);
    assert_eq!(c.restart_count, 0);
    assert!(
        c.container_id
            .as_deref()
            .unwrap()
            .starts_with("tugboat-sim://")
    );

    pods.delete("web", &DeleteParams::default()).await.unwrap();
    eventually("pod gone", || async {
        matches!(pods.get_opt("web").await, Ok(None)).then_some(())
    })
    .await;
    let left = cluster
        .runtime
        .list_sandboxes(&SandboxFilter::default())
        .await
        .unwrap();
    assert!(left.is_empty(), "sandboxes left: {left:?}");
    cluster.stop().await;
}

#[tokio::test]
async fn failing_liveness_restarts_the_container() {
    let cluster = Cluster::start().await;
    let pods = cluster.pods();
    // Every exec in this pod exits 1, so the liveness probe fails.
    let failing = pod(
        "sick",
        json!({
            "metadata": { "annotations": { "tugboat.dev/sim-exec-exit-code": "1" } },
            "spec": { "containers": [{
                "name": "app",
                "image": "busybox",
                "livenessProbe": { "exec": { "command": ["false"] }, "periodSeconds": 1, "failureThreshold": 1 }
            }] }
        }),
    );
    pods.create(&PostParams::default(), &failing).await.unwrap();
    let restarted = eventually("restartCount grows", || async {
        let p = pods.get("sick").await.ok()?;
        let c = p
            .status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .first()?
            .clone();
        (c.restart_count >= 2).then_some(c)
    })
    .await;
    let last = restarted
        .last_state
        .unwrap()
        .terminated
        .expect("lastState terminated");
    assert!(last.container_id.is_some());
    cluster.stop().await;
}

#[tokio::test]
async fn sandboxes_without_a_pod_are_swept() {
    let cluster = Cluster::start().await;
    // A sandbox the agent would have made, for a pod that no longer exists.
    let orphan = tugboat_runtime::cri::v1::PodSandboxConfig {
        metadata: Some(tugboat_runtime::cri::v1::PodSandboxMetadata {
            name: "ghost".into(),
            namespace: "default".into(),
            uid: "ghost-uid".into(),
            attempt: 0,
        }),
        labels: tugboat_nodeagent::labels::for_pod("default", "ghost", "ghost-uid")
            .into_iter()
            .collect(),
        ..Default::default()
    };
    cluster.runtime.run_sandbox(&orphan).await.unwrap();
    eventually("orphan removed", || async {
        let left = cluster
            .runtime
            .list_sandboxes(&SandboxFilter::default())
            .await
            .ok()?;
        left.is_empty().then_some(())
    })
    .await;
    cluster.stop().await;
}
