//! The scheduling loop against the in-memory fake API: watches in, binds and status out.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tugboat_scheduler::{SchedulerConfig, queue::QueueConfig, run};
use tugboat_testkit::{
    fake_api::FakeApi,
    objects::{node, pod},
};

const DEADLINE: Duration = Duration::from_secs(10);

struct Running {
    api: FakeApi,
    shutdown: CancellationToken,
    task: JoinHandle<tugboat_scheduler::Result<()>>,
}

fn start(api: FakeApi, client: kube::Client) -> Running {
    let config = SchedulerConfig {
        queue: QueueConfig {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            ..QueueConfig::default()
        },
        flush_interval: Duration::from_millis(50),
        ..SchedulerConfig::default()
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(run(client, config, shutdown.clone()));
    Running {
        api,
        shutdown,
        task,
    }
}

impl Running {
    async fn stop(self) -> Result<()> {
        self.shutdown.cancel();
        tokio::time::timeout(DEADLINE, self.task)
            .await
            .context("scheduler did not stop")??
            .context("scheduler returned an error")
    }

    async fn node_of(&self, key: &str) -> Result<String> {
        self.wait_for(key, |pod| {
            pod.spec.as_ref().and_then(|spec| spec.node_name.clone())
        })
        .await
    }

    async fn wait_for<T>(
        &self,
        key: &str,
        mut check: impl FnMut(&k8s_openapi::api::core::v1::Pod) -> Option<T>,
    ) -> Result<T> {
        let started = tokio::time::Instant::now();
        loop {
            if let Some(found) = self.api.pod(key).as_ref().and_then(&mut check) {
                return Ok(found);
            }
            if started.elapsed() > DEADLINE {
                bail!("timed out waiting on pod {key}: {:?}", self.api.pod(key));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    fn binds(&self) -> usize {
        self.api
            .requests()
            .iter()
            .filter(|request| request.method == "POST" && request.path.ends_with("/binding"))
            .count()
    }
}

fn unschedulable_message(pod: &k8s_openapi::api::core::v1::Pod) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|condition| {
            condition.type_ == "PodScheduled"
                && condition.status == "False"
                && condition.reason.as_deref() == Some("Unschedulable")
        })
        .and_then(|condition| condition.message.clone())
}

#[tokio::test]
async fn binds_pending_pods_through_the_binding_subresource() -> Result<()> {
    let (api, client) = FakeApi::new();
    api.create(node("small").cpu("1").obj());
    api.create(node("big").cpu("8").obj());
    api.create(pod("web").cpu("2").obj());
    api.create(pod("elsewhere").scheduler_name("other-scheduler").obj());
    let running = start(api, client);

    assert_eq!(running.node_of("default/web").await?, "big");
    // Pods created after the initial list arrive by watch.
    running.api.create(pod("late").cpu("500m").obj());
    running.node_of("default/late").await?;

    tokio::time::sleep(Duration::from_millis(100)).await;
    let other = running.api.pod("default/elsewhere").context("pod")?;
    assert_eq!(other.spec.and_then(|spec| spec.node_name), None);
    assert_eq!(running.binds(), 2);
    running.stop().await
}

#[tokio::test]
async fn unschedulable_pods_explain_why_and_bind_once_a_node_fits() -> Result<()> {
    let (api, client) = FakeApi::new();
    api.create(node("tainted").taint("dedicated", "db", "NoSchedule").obj());
    api.create(node("full-1").cpu("1").obj());
    api.create(node("full-2").cpu("1").obj());
    api.create(pod("hog-1").cpu("1").node_name("full-1").obj());
    api.create(pod("hog-2").cpu("1").node_name("full-2").obj());
    api.create(pod("waiting").cpu("1").obj());
    let running = start(api, client);

    let message = running
        .wait_for("default/waiting", unschedulable_message)
        .await?;
    assert_eq!(
        message,
        "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: db}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
    );
    let events = running.api.objects("events");
    let failed: Vec<_> = events
        .iter()
        .filter(|event| event["reason"] == "FailedScheduling")
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0]["message"], message.as_str());
    assert_eq!(failed[0]["type"], "Warning");
    assert_eq!(failed[0]["involvedObject"]["name"], "waiting");

    // Freeing room on a node makes the pod schedulable again.
    running.api.delete("pods", "default/hog-2");
    assert_eq!(running.node_of("default/waiting").await?, "full-2");
    running.stop().await
}

#[tokio::test]
async fn a_new_node_wakes_unschedulable_pods() -> Result<()> {
    let (api, client) = FakeApi::new();
    api.create(node("labelled-wrong").label("disk", "hdd").obj());
    api.create(pod("picky").node_selector("disk", "ssd").obj());
    let running = start(api, client);
    let message = running
        .wait_for("default/picky", unschedulable_message)
        .await?;
    assert_eq!(
        message,
        "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
    );
    running.api.create(node("fast").label("disk", "ssd").obj());
    assert_eq!(running.node_of("default/picky").await?, "fast");
    running.stop().await
}

#[tokio::test]
async fn bind_conflicts_and_errors_are_retried() -> Result<()> {
    let (api, client) = FakeApi::new();
    api.fail_next_binds(&[409, 500]);
    api.create(node("n").obj());
    api.create(pod("p").obj());
    let running = start(api, client);
    assert_eq!(running.node_of("default/p").await?, "n");
    assert_eq!(running.binds(), 3);
    running.stop().await
}

#[tokio::test]
async fn assumed_pods_count_before_the_watch_confirms_them() -> Result<()> {
    let (api, client) = FakeApi::new();
    api.create(node("a").cpu("1").obj());
    api.create(node("b").cpu("1").obj());
    for name in ["p1", "p2"] {
        api.create(pod(name).cpu("1").obj());
    }
    let running = start(api, client);
    let first = running.node_of("default/p1").await?;
    let second = running.node_of("default/p2").await?;
    assert_ne!(first, second, "both pods would not fit on one node");
    running.stop().await
}

#[tokio::test]
async fn higher_priority_pods_preempt_lower_ones() -> Result<()> {
    let (api, client) = FakeApi::new();
    api.create(node("n").cpu("1").obj());
    api.create(pod("batch").cpu("1").priority(1).node_name("n").obj());
    api.create(pod("urgent").cpu("1").priority(1000).obj());
    let running = start(api, client);

    assert_eq!(running.node_of("default/urgent").await?, "n");
    assert!(running.api.pod("default/batch").is_none(), "victim deleted");
    let events = running.api.objects("events");
    assert!(
        events
            .iter()
            .any(|event| event["reason"] == "Preempted"
                && event["involvedObject"]["name"] == "batch"),
        "{events:?}"
    );
    let nominated = running
        .api
        .requests()
        .into_iter()
        .filter_map(|request| request.body)
        .any(|body| body["status"]["nominatedNodeName"] == "n");
    assert!(nominated, "the preemptor was nominated to the node");
    running.stop().await
}

#[tokio::test]
async fn shutdown_stops_the_loop_promptly() -> Result<()> {
    let (api, client) = FakeApi::new();
    let running = start(api, client);
    tokio::time::sleep(Duration::from_millis(50)).await;
    running.stop().await
}
