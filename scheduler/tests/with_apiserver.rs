//! The scheduler against Tugboat's real API server, in-process on a free loopback port with
//! an in-memory store: the same HTTPS, watch and subresource paths a deployed scheduler uses.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::{
    Api, Client,
    api::{DeleteParams, ListParams, Patch, PatchParams, PostParams},
};
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, StoreConfig};
use tugboat_scheduler::{SchedulerConfig, queue::QueueConfig};
use tugboat_testkit::objects::{node, pod};

const DEADLINE: Duration = Duration::from_secs(30);

struct Cluster {
    client: Client,
    shutdown: CancellationToken,
    scheduler: tokio::task::JoinHandle<tugboat_scheduler::Result<()>>,
    _data_dir: tempfile::TempDir,
}

async fn start_cluster() -> Result<Cluster> {
    let data_dir = tempfile::tempdir()?;
    let mut config = ApiServerConfig::new(data_dir.path());
    config.listen = "127.0.0.1:0".parse()?;
    config.store = StoreConfig::Memory;
    let shutdown = CancellationToken::new();
    let running = tugboat_apiserver::start(config, shutdown.clone()).await?;
    let client =
        tugboat_testkit::kube::client(&running.url, &running.ca_pem, &running.admin_token)?;
    let scheduler_config = SchedulerConfig {
        queue: QueueConfig {
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_millis(200),
            ..QueueConfig::default()
        },
        flush_interval: Duration::from_millis(100),
        ..SchedulerConfig::default()
    };
    let scheduler = tokio::spawn(tugboat_scheduler::run(
        client.clone(),
        scheduler_config,
        shutdown.clone(),
    ));
    Ok(Cluster {
        client,
        shutdown,
        scheduler,
        _data_dir: data_dir,
    })
}

impl Cluster {
    /// Waits (bounded) for an event with `reason` and `message` about pod `name`.
    async fn wait_for_event(&self, name: &str, reason: &str, message: &str) -> Result<()> {
        let events: Api<Event> = Api::namespaced(self.client.clone(), "default");
        let deadline = std::time::Instant::now() + DEADLINE;
        loop {
            let listed = events.list(&ListParams::default()).await?;
            let found = listed.items.iter().any(|event| {
                event.reason.as_deref() == Some(reason)
                    && event.involved_object.name.as_deref() == Some(name)
                    && event.message.as_deref() == Some(message)
            });
            if found {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                bail!("no {reason} event for {name}: {:?}", listed.items);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn add_node(&self, node: Node) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = node.metadata.name.clone().context("name")?;
        let status = serde_json::json!({"status": node.status});
        nodes.create(&PostParams::default(), &node).await?;
        // Status is the node agent's to write: set allocatable as a kubelet would.
        nodes
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(status))
            .await?;
        Ok(())
    }

    async fn add_pod(&self, pod: Pod) -> Result<()> {
        Api::<Pod>::namespaced(self.client.clone(), "default")
            .create(&PostParams::default(), &pod)
            .await?;
        Ok(())
    }

    async fn wait_for<T>(&self, name: &str, check: impl Fn(&Pod) -> Option<T>) -> Result<T> {
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), "default");
        let started = tokio::time::Instant::now();
        loop {
            let pod = pods.get(name).await?;
            if let Some(found) = check(&pod) {
                return Ok(found);
            }
            if started.elapsed() > DEADLINE {
                bail!("timed out waiting on pod {name}: {pod:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn node_of(&self, name: &str) -> Result<String> {
        self.wait_for(name, |pod| pod.spec.as_ref()?.node_name.clone())
            .await
    }

    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.scheduler)
            .await
            .context("scheduler did not stop")??
            .context("scheduler failed")
    }
}

fn unschedulable_message(pod: &Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|condition| condition.type_ == "PodScheduled" && condition.status == "False")?
        .message
        .clone()
}

#[tokio::test]
async fn resource_exhaustion_is_explained_and_release_schedules_the_pod() -> Result<()> {
    let cluster = start_cluster().await?;
    cluster.add_node(node("n1").cpu("2").obj()).await?;
    cluster
        .add_node(
            node("n2")
                .cpu("2")
                .taint("dedicated", "infra", "NoSchedule")
                .obj(),
        )
        .await?;
    cluster.add_pod(pod("first").cpu("1500m").obj()).await?;
    assert_eq!(cluster.node_of("first").await?, "n1");

    cluster.add_pod(pod("second").cpu("1").obj()).await?;
    let message = cluster.wait_for("second", unschedulable_message).await?;
    assert_eq!(
        message,
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) had untolerated taint {dedicated: infra}. preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling."
    );
    // The event follows the condition; wait for it, bounded.
    cluster
        .wait_for_event("second", "FailedScheduling", &message)
        .await?;

    Api::<Pod>::namespaced(cluster.client.clone(), "default")
        .delete("first", &DeleteParams::default().grace_period(0))
        .await?;
    assert_eq!(cluster.node_of("second").await?, "n1");
    cluster.stop().await
}

#[tokio::test]
async fn anti_affinity_spreads_replicas_across_zones() -> Result<()> {
    const ZONE: &str = "topology.kubernetes.io/zone";
    let cluster = start_cluster().await?;
    for (name, zone) in [("a1", "a"), ("a2", "a"), ("b1", "b"), ("c1", "c")] {
        cluster.add_node(node(name).label(ZONE, zone).obj()).await?;
    }
    for index in 0..3 {
        let replica = pod(&format!("db-{index}"))
            .label("app", "db")
            .anti_affinity("app", "db", ZONE)
            .obj();
        cluster.add_pod(replica).await?;
    }
    let mut zones = Vec::new();
    for index in 0..3 {
        let node = cluster.node_of(&format!("db-{index}")).await?;
        zones.push(node.chars().next().context("zone")?);
    }
    zones.sort_unstable();
    assert_eq!(zones, vec!['a', 'b', 'c']);

    cluster
        .add_pod(
            pod("db-3")
                .label("app", "db")
                .anti_affinity("app", "db", ZONE)
                .obj(),
        )
        .await?;
    let message = cluster.wait_for("db-3", unschedulable_message).await?;
    assert!(
        message.starts_with(
            "0/4 nodes are available: 4 node(s) didn't match pod anti-affinity rules."
        ),
        "{message}"
    );
    cluster.stop().await
}

#[tokio::test]
async fn topology_spread_balances_replicas_over_three_zones() -> Result<()> {
    use k8s_openapi::{
        api::core::v1::TopologySpreadConstraint, apimachinery::pkg::apis::meta::v1::LabelSelector,
    };
    const ZONE: &str = "topology.kubernetes.io/zone";
    let cluster = start_cluster().await?;
    for zone in ["a", "b", "c"] {
        for index in 0..2 {
            cluster
                .add_node(node(&format!("{zone}{index}")).label(ZONE, zone).obj())
                .await?;
        }
    }
    for index in 0..6 {
        let mut replica = pod(&format!("web-{index}")).label("app", "web").obj();
        if let Some(spec) = replica.spec.as_mut() {
            spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: ZONE.into(),
                when_unsatisfiable: "DoNotSchedule".into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some([("app".to_owned(), "web".to_owned())].into()),
                    match_expressions: None,
                }),
                ..Default::default()
            }]);
        }
        cluster.add_pod(replica).await?;
    }
    let mut per_zone = std::collections::BTreeMap::new();
    for index in 0..6 {
        let node = cluster.node_of(&format!("web-{index}")).await?;
        *per_zone.entry(node[..1].to_owned()).or_insert(0) += 1;
    }
    assert_eq!(
        per_zone.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2]
    );
    cluster.stop().await
}

#[tokio::test]
async fn a_bound_pod_has_a_scheduled_event_naming_its_node() -> Result<()> {
    let cluster = start_cluster().await?;
    cluster.add_node(node("n1").obj()).await?;
    cluster.add_pod(pod("web").obj()).await?;
    assert_eq!(cluster.node_of("web").await?, "n1");
    cluster
        .wait_for_event(
            "web",
            "Scheduled",
            "Successfully assigned default/web to n1",
        )
        .await?;
    cluster.stop().await
}
