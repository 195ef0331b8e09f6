//! The HPA end to end on a simulated node, in one process: an API server, a sim node agent
//! pushing metrics, and the controllers. A Deployment whose pods use 200 % of their CPU request
//! is autoscaled (as `kubectl autoscale --cpu-percent=80` creates it) up to its maximum; once
//! its pods idle it scales back down, but only after the (shortened) stabilization window.
//! `kubectl get hpa` shows the `cpu: N%/80%` target when kubectl is installed. A rollout under
//! an HPA (surge pods Ready but not yet available) does not inflate the replicas.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler as HpaV1;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Event;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, StoreConfig};
use tugboat_controllers::ControllersConfig;
use tugboat_nodeagent::{AgentConfig, NodeResources, Timings};
use tugboat_runtime::{Runtime, SimNetwork, SimRuntime};

const NODE: &str = "hpa-node";
const WAIT: Duration = Duration::from_secs(60);
const STABILIZATION: Duration = Duration::from_secs(6);
const SYNC_PERIOD: Duration = Duration::from_secs(1);

/// Polls `check` until it gives `Some`, at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    tugboat_testkit::wait::eventually(what, WAIT, check).await
}

fn deployment(cpu_millicores: u32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {"tugboat.dev/sim-cpu-millicores": cpu_millicores.to_string()},
                },
                "spec": {
                    "nodeName": NODE,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "app",
                        "image": "nginx",
                        "resources": {"requests": {"cpu": "100m"}},
                    }],
                },
            },
        },
    }))
    .unwrap()
}

async fn kubectl(kubeconfig: &std::path::Path, args: &[&str]) -> Option<String> {
    let mut command = tokio::process::Command::new("kubectl");
    command
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("kubectl finishes in time")
        .ok()?;
    assert!(
        output.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn has_kubectl() -> bool {
    std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

async fn replicas(deployments: &Api<Deployment>) -> Option<i32> {
    deployments.get("web").await.ok()?.spec?.replicas
}

/// An API server, a simulated node agent pushing metrics every 300 ms, and the controllers
/// with a 1 s HPA sync period.
struct Sim {
    _dir: tempfile::TempDir,
    client: Client,
    running: tugboat_apiserver::Running,
    api_shutdown: CancellationToken,
    agent_shutdown: CancellationToken,
    agent: tokio::task::JoinHandle<tugboat_nodeagent::Result<()>>,
    controllers_shutdown: CancellationToken,
    controllers: tokio::task::JoinHandle<tugboat_controllers::Result<()>>,
}

impl Sim {
    async fn start() -> Sim {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ApiServerConfig::new(dir.path().join("api"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.store = StoreConfig::Memory;
        let api_shutdown = CancellationToken::new();
        let running = tugboat_apiserver::start(config, api_shutdown.clone())
            .await
            .unwrap();
        let client: Client =
            tugboat_testkit::kube::client(&running.url, &running.ca_pem, &running.admin_token)
                .unwrap();

        let mut agent_config = AgentConfig::new(NODE, dir.path().join("agent"));
        agent_config.resources = NodeResources::simulated();
        agent_config.node_ip = Some("127.0.0.1".parse().unwrap());
        agent_config.timings = Timings {
            pod_resync: Duration::from_millis(200),
            node_status: Duration::from_millis(500),
            stats: Duration::from_millis(300),
            ..Timings::default()
        };
        let agent_shutdown = CancellationToken::new();
        let agent = tokio::spawn(tugboat_nodeagent::run(
            client.clone(),
            Arc::new(SimRuntime::new(NODE, SimNetwork::new())) as Arc<dyn Runtime>,
            agent_config,
            agent_shutdown.clone(),
        ));
        let mut controllers_config = ControllersConfig::default();
        controllers_config.hpa.sync_period = SYNC_PERIOD;
        controllers_config.hpa.downscale_stabilization = STABILIZATION;
        let controllers_shutdown = CancellationToken::new();
        let controllers = tokio::spawn(tugboat_controllers::run(
            client.clone(),
            controllers_config,
            controllers_shutdown.clone(),
        ));
        Sim {
            _dir: dir,
            client,
            running,
            api_shutdown,
            agent_shutdown,
            agent,
            controllers_shutdown,
            controllers,
        }
    }

    async fn stop(self) {
        self.controllers_shutdown.cancel();
        tokio::time::timeout(WAIT, self.controllers)
            .await
            .expect("controllers stop in time")
            .expect("controllers task")
            .expect("controllers result");
        self.agent_shutdown.cancel();
        tokio::time::timeout(WAIT, self.agent)
            .await
            .expect("agent stops in time")
            .expect("agent task")
            .expect("agent result");
        self.api_shutdown.cancel();
        tokio::time::timeout(WAIT, self.running.stopped())
            .await
            .expect("server stops in time");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_load_scales_up_then_down_after_stabilization() {
    let sim = Sim::start().await;
    let client = sim.client.clone();
    let running = &sim.running;

    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(&PostParams::default(), &deployment(200))
        .await
        .unwrap();

    // What `kubectl autoscale deployment web --cpu-percent=80 --min=1 --max=4` creates.
    let with_kubectl = has_kubectl();
    if with_kubectl {
        kubectl(
            &running.kubeconfig,
            &[
                "autoscale",
                "deployment",
                "web",
                "--cpu-percent=80",
                "--min=1",
                "--max=4",
            ],
        )
        .await;
    } else {
        let hpa: HpaV1 = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 80,
            },
        }))
        .unwrap();
        Api::<HpaV1>::namespaced(client.clone(), "default")
            .create(&PostParams::default(), &hpa)
            .await
            .unwrap();
    }

    // 200 % of the request against 80 %: 1 → 3 (ceil 2.5), then → 4 (the maximum).
    eventually("scaled up to the maximum", || async {
        (replicas(&deployments).await? == 4).then_some(())
    })
    .await;
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    let status = eventually("status with the current metric", || async {
        let status = hpas.get("web").await.ok()?.status?;
        let metric = status.current_metrics.as_ref()?.first()?.clone();
        (status.desired_replicas == 4).then_some((status, metric))
    })
    .await;
    let (status, metric) = status;
    assert_eq!(
        metric.resource.unwrap().current.average_utilization,
        Some(200)
    );
    assert!(status.last_scale_time.is_some());
    let conditions = status.conditions.unwrap();
    let condition = |t: &str| conditions.iter().find(|c| c.type_ == t).cloned().unwrap();
    assert_eq!(condition("ScalingActive").status, "True");
    assert_eq!(
        condition("ScalingActive").reason.as_deref(),
        Some("ValidMetricFound")
    );
    assert_eq!(condition("AbleToScale").status, "True");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let rescaled = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulRescale"))
        .filter_map(|e| e.message)
        .collect::<Vec<_>>();
    assert!(
        rescaled
            .iter()
            .any(|m| m.contains("New size: 4") && m.contains("cpu resource utilization")),
        "{rescaled:?}"
    );

    if with_kubectl {
        let table = eventually("kubectl get hpa with the target", || async {
            let out = kubectl(&running.kubeconfig, &["get", "hpa", "web"]).await?;
            out.contains("cpu: 200%/80%").then_some(out)
        })
        .await;
        assert!(table.contains("Deployment/web"), "{table}");
    }

    // Idle pods: the rollout replaces them with pods using 10 % of their request. The HPA
    // must wait out the stabilization window before it scales down.
    let idle = json!({"spec": {"template": {"metadata": {"annotations": {"tugboat.dev/sim-cpu-millicores": "10"}}}}});
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&idle))
        .await
        .unwrap();
    let idle_since = tokio::time::Instant::now();
    eventually("scaled down to the minimum", || async {
        (replicas(&deployments).await? == 1).then_some(())
    })
    .await;
    // The window runs from the last high recommendation, which a sync may have made up to one
    // period before the patch.
    assert!(
        idle_since.elapsed() >= STABILIZATION - SYNC_PERIOD,
        "scaled down after {:?}, before the {STABILIZATION:?} window",
        idle_since.elapsed()
    );

    sim.stop().await;
}

/// A Deployment of 3 pods each using 70 % of its CPU request, rolled out with a full surge
/// (`maxSurge: 100%`, `maxUnavailable: 0`) whose new pods stay unavailable for
/// `minReadySeconds` while they are Ready and report metrics: for that long the target runs
/// 6 ready pods for 3 replicas.
fn surging_deployment(revision: &str) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "minReadySeconds": 8,
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "100%", "maxUnavailable": 0}},
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {
                    "labels": {"app": "web"},
                    "annotations": {
                        "tugboat.dev/sim-cpu-millicores": "70",
                        "example.com/revision": revision,
                    },
                },
                "spec": {
                    "nodeName": NODE,
                    "terminationGracePeriodSeconds": 0,
                    "containers": [{
                        "name": "app",
                        "image": "nginx",
                        "resources": {"requests": {"cpu": "100m"}},
                    }],
                },
            },
        },
    }))
    .unwrap()
}

/// Ready pods of the Deployment that are not being deleted.
async fn ready_pods(client: &Client) -> usize {
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client.clone(), "default");
    let Ok(list) = pods.list(&ListParams::default().labels("app=web")).await else {
        return 0;
    };
    list.items
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .count()
}

/// kubernetes/kubernetes#72775: upstream multiplies the usage ratio by the number of ready
/// pods, so during a surge 6 pods at 70 % propose ceil(0.7 × 6) = 5 replicas although every
/// pod is below target, and the Deployment then surges on top of 5. Tugboat's rule (see
/// `replicas::propose`) keeps the replicas at 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_under_an_hpa_does_not_inflate_replicas() {
    let sim = Sim::start().await;
    let client = sim.client.clone();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "default");
    deployments
        .create(&PostParams::default(), &surging_deployment("1"))
        .await
        .unwrap();
    let hpa: HorizontalPodAutoscaler = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1, "maxReplicas": 10,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 100}}}],
        },
    }))
    .unwrap();
    let hpas: Api<HorizontalPodAutoscaler> = Api::namespaced(client.clone(), "default");
    hpas.create(&PostParams::default(), &hpa).await.unwrap();

    // Steady state: 70 % of the request on 3 pods, 3 replicas (ceil(0.7 × 3) = 3).
    eventually("the HPA to measure 70 % on 3 replicas", || async {
        let status = hpas.get("web").await.ok()?.status?;
        let utilization = status
            .current_metrics
            .as_ref()?
            .first()?
            .resource
            .as_ref()?
            .current
            .average_utilization?;
        (utilization == 70 && status.desired_replicas == 3 && ready_pods(&client).await == 3)
            .then_some(())
    })
    .await;

    // The rollout: watch the replicas until it is complete and a few syncs after.
    deployments
        .replace("web", &PostParams::default(), &{
            let mut d = deployments.get("web").await.unwrap();
            d.spec = surging_deployment("2").spec;
            d
        })
        .await
        .unwrap();
    let mut most_ready = 0;
    let mut surge_seen_since: Option<tokio::time::Instant> = None;
    let mut done_since: Option<tokio::time::Instant> = None;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let d = deployments.get("web").await.unwrap();
        let replicas = d.spec.as_ref().and_then(|s| s.replicas);
        assert_eq!(
            replicas,
            Some(3),
            "the HPA changed the replicas during the rollout (ready pods seen: {most_ready})"
        );
        let ready = ready_pods(&client).await;
        most_ready = most_ready.max(ready);
        if ready >= 6 {
            surge_seen_since.get_or_insert_with(tokio::time::Instant::now);
        }
        let status = d.status.unwrap_or_default();
        let complete = status.updated_replicas == Some(3)
            && status.available_replicas == Some(3)
            && status.replicas == Some(3)
            && ready == 3;
        if complete && surge_seen_since.is_some() {
            let since = *done_since.get_or_insert_with(tokio::time::Instant::now);
            if since.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the rollout did not complete (ready pods seen: {most_ready}, status: {status:?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The surge lasted for several syncs: the HPA looked at 6 ready pods and kept 3.
    assert_eq!(most_ready, 6);
    let status = hpas.get("web").await.unwrap().status.unwrap();
    assert_eq!(status.desired_replicas, 3);
    let rescaled = Api::<Event>::namespaced(client.clone(), "default")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("SuccessfulRescale"))
        .filter_map(|e| e.message)
        .collect::<Vec<_>>();
    assert!(rescaled.is_empty(), "{rescaled:?}");

    sim.stop().await;
}
