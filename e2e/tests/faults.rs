//! Faults on real containers: `kill -9` of `tug up` in the middle of a rollout, then a restart
//! on the same data dir. No acknowledged object is lost, the rollout finishes, and containers
//! that were running are adopted, not restarted.
//!
//! Needs root and containerd (CI installs both).

use std::time::Duration;

use tugboat_e2e::containers::{answers_ok, containers_or_skip, stop_and_reset, wait_for};
use tugboat_e2e::{Cluster, kubectl_or_skip};

const STEADY: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: steady}
spec:
  containers:
  - name: web
    image: busybox
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
"#;

#[test]
fn kill_9_mid_rollout_loses_nothing_and_restarts_nothing_on_real_containers() {
    if !containers_or_skip() || kubectl_or_skip().is_none() {
        return;
    }
    let mut cluster = Cluster::start_containerd().unwrap();
    let k = cluster.kubectl().unwrap();
    wait_for("the node to be Ready", Duration::from_secs(60), || {
        k.ok(&["get", "nodes", "--no-headers"])
            .is_ok_and(|out| out.contains(" Ready "))
    });

    k.apply(STEADY).unwrap();
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/web.yaml");
    k.ok(&["apply", "-f", manifest]).unwrap();
    k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .unwrap();
    wait_for("the steady pod to run", Duration::from_secs(60), || {
        k.get_jsonpath(&["pod", "steady"], "{.status.containerStatuses[0].ready}") == "true"
    });
    let steady_before = k.get_jsonpath(&["pod", "steady"],
        "{.status.containerStatuses[0].containerID} {.status.containerStatuses[0].state.running.startedAt} {.status.containerStatuses[0].restartCount}",
    );
    let steady_ip = k.get_jsonpath(&["pod", "steady"], "{.status.podIP}");

    // Start a rollout, write more objects, and crash while the new pods come up.
    k.ok(&["set", "env", "deployment/web", "VERSION=2"])
        .unwrap();
    let mut acknowledged = Vec::new();
    for i in 0..5 {
        let name = format!("ack-{i}");
        k.ok(&["create", "configmap", &name, "--from-literal=n=1"])
            .unwrap();
        acknowledged.push(name);
    }
    // The new pods cannot be ready yet (readiness is probed every 5 s): this is mid-rollout.
    let progress = k.get_jsonpath(
        &["deployment", "web"],
        "{.status.updatedReplicas}/{.status.readyReplicas}/{.status.replicas}",
    );
    eprintln!("killing tug up at updated/ready/total {progress}");
    cluster.kill().unwrap();

    cluster.restart().unwrap();
    let configmaps = k.ok(&["get", "configmaps", "-o", "name"]).unwrap();
    for name in &acknowledged {
        assert!(
            configmaps.lines().any(|l| l == format!("configmap/{name}")),
            "{name} was acknowledged before the crash and is gone:\n{configmaps}"
        );
    }
    k.ok(&["rollout", "status", "deployment/web", "--timeout=180s"])
        .unwrap();
    let env = k.get_jsonpath(
        &["deployment", "web"],
        "{.spec.template.spec.containers[0].env[0].value}",
    );
    assert_eq!(env, "2");
    // Every web pod that is not on its way out serves.
    let serving_pods = || {
        let pods = k.get_json(&["pods", "-l", "app=web"]).unwrap_or_default();
        let live: Vec<String> = pods["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|pod| pod["metadata"]["deletionTimestamp"].is_null())
            .map(|pod| pod["status"]["podIP"].as_str().unwrap_or("").to_owned())
            .collect();
        (
            live.len(),
            live.iter()
                .filter(|ip| answers_ok(&format!("{ip}:8080"), "/health"))
                .count(),
        )
    };
    wait_for(
        "both new web pods to answer",
        Duration::from_secs(60),
        || serving_pods() == (2, 2),
    );

    // The pod that was running all along was adopted as it was: same container, same start.
    wait_for(
        "the node to be Ready again",
        Duration::from_secs(60),
        || {
            k.ok(&["get", "nodes", "--no-headers"])
                .is_ok_and(|out| out.contains(" Ready "))
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let steady_after = k.get_jsonpath(&["pod", "steady"],
        "{.status.containerStatuses[0].containerID} {.status.containerStatuses[0].state.running.startedAt} {.status.containerStatuses[0].restartCount}",
    );
    assert_eq!(
        steady_after, steady_before,
        "the running container was restarted"
    );
    assert!(answers_ok(&format!("{steady_ip}:8080"), "/"));

    stop_and_reset(&mut cluster).unwrap();
}
