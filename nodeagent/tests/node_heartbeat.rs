//! The node's heartbeat, as kubelet keeps it: the Lease is renewed every period; the Node's
//! status is written when it changes (including when the node lifecycle controller set it
//! Unknown) and otherwise only every report period, so a cluster of idle nodes does not
//! rewrite every Node every ten seconds. One simulated agent against an in-process API server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Node;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_nodeagent::{AgentConfig, NodeResources, Timings};
use tugboat_runtime::{Runtime, SimNetwork, SimRuntime};

const NODE: &str = "beat-1";
const WAIT: Duration = Duration::from_secs(30);
/// The agent's Lease and status periods in these tests.
const PERIOD: Duration = Duration::from_millis(200);

struct Cluster {
    client: Client,
    _api_shutdown: tokio_util::sync::DropGuard,
    agent_shutdown: CancellationToken,
    agent: tokio::task::JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// An API server and one agent writing its status at least every `report`.
    async fn start(report: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let common::ApiServer {
            client,
            running: _running,
            shutdown: api_shutdown,
        } = common::start_api_server(dir.path()).await;
        let runtime: Arc<dyn Runtime> = Arc::new(SimRuntime::new(NODE, SimNetwork::new()));
        let mut agent_config = AgentConfig::new(NODE, dir.path().join("agent"));
        agent_config.resources = NodeResources::simulated();
        agent_config.node_ip = Some("127.0.0.1".parse().unwrap());
        agent_config.timings = Timings {
            lease_renew: PERIOD,
            node_status: PERIOD,
            node_status_report: report,
            ..Timings::default()
        };
        let agent_shutdown = CancellationToken::new();
        let agent = tokio::spawn({
            let (client, shutdown) = (client.clone(), agent_shutdown.clone());
            async move {
                tugboat_nodeagent::run(client, runtime, agent_config, shutdown)
                    .await
                    .unwrap();
            }
        });
        let cluster = Cluster {
            client,
            _api_shutdown: api_shutdown.drop_guard(),
            agent_shutdown,
            agent,
            _dir: dir,
        };
        cluster.ready_condition_becomes("True").await;
        cluster
    }

    fn nodes(&self) -> Api<Node> {
        Api::all(self.client.clone())
    }

    fn leases(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), "kube-node-lease")
    }

    async fn ready_condition(&self) -> Option<(String, String)> {
        let node = self.nodes().get_opt(NODE).await.ok()??;
        let ready = node
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "Ready")?;
        Some((ready.status, ready.last_transition_time?.0.to_string()))
    }

    async fn ready_condition_becomes(&self, status: &str) -> (String, String) {
        tugboat_testkit::wait::eventually(&format!("Ready={status}"), WAIT, || async {
            self.ready_condition().await.filter(|(s, _)| s == status)
        })
        .await
    }

    async fn node_version(&self) -> String {
        self.nodes()
            .get(NODE)
            .await
            .unwrap()
            .metadata
            .resource_version
            .unwrap()
    }

    async fn renew_time(&self) -> Option<String> {
        let lease = self.leases().get_opt(NODE).await.ok()??;
        Some(lease.spec?.renew_time?.0.to_string())
    }

    /// Waits until the Lease has been renewed at least `times` times more.
    async fn lease_renewed(&self, times: usize) {
        for _ in 0..times {
            let before = self.renew_time().await;
            tugboat_testkit::wait::eventually("the Lease renewed", WAIT, || async {
                let now = self.renew_time().await;
                (now.is_some() && now != before).then_some(())
            })
            .await;
        }
    }

    async fn stop(self) {
        self.agent_shutdown.cancel();
        tokio::time::timeout(WAIT, self.agent)
            .await
            .unwrap()
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_renews_its_lease_without_rewriting_its_status() {
    let cluster = Cluster::start(Duration::from_secs(3600)).await;
    let version = cluster.node_version().await;
    // Ten Lease periods, each also a status period.
    cluster.lease_renewed(10).await;
    assert_eq!(
        cluster.node_version().await,
        version,
        "the Node was written although nothing changed"
    );
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_status_is_still_reported_every_report_period() {
    let cluster = Cluster::start(Duration::from_secs(1)).await;
    let version = cluster.node_version().await;
    tugboat_testkit::wait::eventually("the status reported again", WAIT, || async {
        (cluster.node_version().await != version).then_some(())
    })
    .await;
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_set_unknown_by_the_controller_is_set_ready_again() {
    let cluster = Cluster::start(Duration::from_secs(3600)).await;
    let (_, ready_since) = cluster.ready_condition().await.unwrap();
    // Condition times have whole seconds: let the next transition fall in another one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // What the node lifecycle controller writes when it misses the heartbeats.
    let unknown = json!({"status": {"conditions": [{
        "type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
        "message": "Kubelet stopped posting node status.",
        "lastHeartbeatTime": "2026-01-01T00:00:00Z",
        "lastTransitionTime": "2030-01-01T00:00:00Z"
    }]}});
    cluster
        .nodes()
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(&unknown))
        .await
        .unwrap();
    let (_, again_since) = cluster.ready_condition_becomes("True").await;
    assert_ne!(
        again_since, ready_since,
        "coming back is a transition of its own"
    );
    assert_ne!(again_since, "2030-01-01T00:00:00Z");
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_changed_or_deleted_by_someone_else_is_renewed_again() {
    let cluster = Cluster::start(Duration::from_secs(3600)).await;
    cluster.lease_renewed(1).await;
    // Another writer changes it: the agent's next replace of its copy meets a conflict.
    cluster
        .leases()
        .patch(
            NODE,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"labels": {"touched": "yes"}}})),
        )
        .await
        .unwrap();
    cluster.lease_renewed(3).await;
    let lease = cluster.leases().get(NODE).await.unwrap();
    assert_eq!(
        lease
            .metadata
            .labels
            .unwrap_or_default()
            .get("touched")
            .map(String::as_str),
        Some("yes"),
        "the renewal read the Lease again instead of overwriting the other change"
    );
    // Deleted: the agent creates it again.
    cluster
        .leases()
        .delete(NODE, &DeleteParams::default())
        .await
        .unwrap();
    tugboat_testkit::wait::eventually("the Lease created again", WAIT, || async {
        cluster.renew_time().await
    })
    .await;
    cluster.lease_renewed(2).await;
    cluster.stop().await;
}
