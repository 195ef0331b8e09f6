//! The first user journey on real containers: `tug up` on a private containerd, `kubectl
//! apply` a Deployment, reach a pod, reach its Service on the ClusterIP and on the NodePort at
//! 127.0.0.1, roll forward, roll back, delete, `tug reset` (which removes the service rules).
//!
//! Needs root and containerd (CI installs both); elsewhere it says what is missing and skips.

use std::process::Command;
use std::time::Duration;

use tugboat_e2e::containers::{answers_ok, containers_or_skip, stop_and_reset, wait_for};
use tugboat_e2e::{Cluster, kubectl_or_skip};

#[test]
fn apply_reach_roll_forward_roll_back_delete_on_real_containers() {
    if !containers_or_skip() || kubectl_or_skip().is_none() {
        return;
    }
    let mut cluster = Cluster::start_containerd().unwrap();
    let k = cluster.kubectl().unwrap();
    wait_for("the node to be Ready", Duration::from_secs(60), || {
        k.ok(&["get", "nodes", "--no-headers"])
            .is_ok_and(|out| out.contains(" Ready "))
    });

    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../manifests/web.yaml");
    let out = k.ok(&["apply", "-f", manifest]).unwrap();
    assert!(out.contains("deployment.apps/web created"), "{out}");
    k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .unwrap();

    // A pod answers on its IP on our bridge.
    let ips = k
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={.items[*].status.podIP}",
        ])
        .unwrap();
    let ip = ips.split_whitespace().next().expect("a pod IP").to_owned();
    assert!(ip.starts_with("10.88."), "{ip}");
    let mut stream = None;
    wait_for("the pod to answer", Duration::from_secs(30), || {
        stream = std::net::TcpStream::connect_timeout(
            &format!("{ip}:8080").parse().unwrap(),
            Duration::from_secs(2),
        )
        .ok();
        stream.is_some()
    });
    use std::io::{Read as _, Write as _};
    let mut stream = stream.unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n")
        .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200") || answer.starts_with("HTTP/1.0 200"),
        "{answer}"
    );

    // The Service: its ClusterIP (routed by the agent's proxy) and its NodePort on 127.0.0.1.
    let cluster_ip = k
        .ok(&["get", "service", "web", "-o", "jsonpath={.spec.clusterIP}"])
        .unwrap();
    assert!(cluster_ip.starts_with("10.96."), "{cluster_ip}");
    let node_port = k
        .ok(&[
            "get",
            "service",
            "web",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .unwrap();
    let endpoints = || {
        k.ok(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[*].addresses[*].ip}",
        ])
        .unwrap_or_default()
    };
    wait_for(
        "the Endpoints to list both pods",
        Duration::from_secs(30),
        || endpoints().split_whitespace().count() == 2,
    );
    wait_for("the ClusterIP to answer", Duration::from_secs(30), || {
        answers_ok(&format!("{}:80", cluster_ip.trim()), "/")
    });
    wait_for(
        "the NodePort on 127.0.0.1 to answer",
        Duration::from_secs(30),
        || answers_ok(&format!("127.0.0.1:{}", node_port.trim()), "/"),
    );

    // Roll forward, then back.
    k.ok(&["set", "env", "deployment/web", "VERSION=2"])
        .unwrap();
    k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .unwrap();
    let history = k.ok(&["rollout", "history", "deployment/web"]).unwrap();
    assert!(history.contains('2'), "{history}");
    k.ok(&["rollout", "undo", "deployment/web"]).unwrap();
    k.ok(&["rollout", "status", "deployment/web", "--timeout=120s"])
        .unwrap();
    let env = k
        .ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env}",
        ])
        .unwrap();
    assert!(!env.contains("VERSION"), "rolled back: {env}");

    // Delete: the ReplicaSets and pods go with the Deployment.
    k.ok(&["delete", "deployment", "web"]).unwrap();
    wait_for("the pods to go", Duration::from_secs(120), || {
        k.ok(&["get", "pods", "--no-headers"])
            .is_ok_and(|out| out.trim().is_empty())
    });

    stop_and_reset(&mut cluster).unwrap();
    let rules = Command::new("iptables-save").output().unwrap();
    let rules = String::from_utf8_lossy(&rules.stdout);
    assert!(!rules.contains("TUGBOAT-"), "tug reset left rules: {rules}");
    let links = Command::new("ip").args(["link", "show"]).output().unwrap();
    assert!(
        !String::from_utf8_lossy(&links.stdout).contains("tug-svc"),
        "tug reset left tug-svc"
    );
}
