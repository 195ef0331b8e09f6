//! `tug up` as a process: a busy port, SIGTERM, and a restart on the same data dir.

use std::net::{Ipv4Addr, TcpListener};
use std::process::Command;
use std::time::Duration;

use tugboat_e2e::process::run_bounded;
use tugboat_e2e::{Cluster, kubectl_or_skip, tug_binary};

#[test]
fn tug_up_on_a_busy_port_exits_2_with_one_clear_line() {
    let busy = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let output = run_bounded(
        Command::new(tug_binary().unwrap())
            .arg("up")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("TUG_LOG", "warn"),
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(line.starts_with("tug: "), "{line}");
    assert!(line.contains(&format!("127.0.0.1:{port}")), "{line}");
    assert!(line.contains("Address already in use"), "{line}");
    assert!(line.contains("--listen"), "names the fix: {line}");
    assert_eq!(
        line.matches("Address already in use").count(),
        1,
        "the cause is said once: {line}"
    );
    assert!(output.stdout.is_empty(), "{output:?}");
    assert!(!data_dir.exists(), "a half-made data dir was left behind");
    drop(busy);
}

#[test]
fn tug_up_on_a_busy_kubelet_port_exits_2_with_one_clear_line() {
    // The agent endpoint listens on the node IP, which is 127.0.0.1 or another local address.
    let busy = TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let api_port = tugboat_testkit::net::free_port().unwrap();
    let output = run_bounded(
        Command::new(tug_binary().unwrap())
            .arg("up")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{api_port}"))
            .args(["--runtime", "sim", "--kubelet-port", &port.to_string()])
            .env("TUG_LOG", "warn"),
        None,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains(&format!(":{port}")), "{stderr}");
    assert!(
        lines[0].contains("--kubelet-port"),
        "names the fix: {stderr}"
    );
    assert_eq!(
        lines[0].matches("Address already in use").count(),
        1,
        "{stderr}"
    );
    assert!(!data_dir.exists(), "a half-made data dir was left behind");
    drop(busy);
}

#[test]
fn tug_up_stops_cleanly_on_sigterm() {
    let mut cluster = Cluster::start().unwrap();
    assert!(cluster.readyz().unwrap());
    let status = cluster.stop().unwrap().expect("tug needed SIGKILL");
    assert!(status.success(), "{status}:\n{}", cluster.log());
    assert!(cluster.readyz().is_err(), "still answering after stop");
}

#[test]
fn restart_on_the_same_data_dir_keeps_objects_and_the_kubeconfig() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let mut cluster = Cluster::start().unwrap();
    let k = cluster.kubectl().unwrap();
    let out = k
        .ok(&["create", "configmap", "survivor", "--from-literal=k=v"])
        .unwrap();
    assert_eq!(out.trim(), "configmap/survivor created");
    let uid = k
        .ok(&[
            "get",
            "configmap",
            "survivor",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .unwrap();
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig()).unwrap();

    cluster.restart().unwrap();
    assert_eq!(
        std::fs::read_to_string(cluster.kubeconfig()).unwrap(),
        kubeconfig,
        "the kubeconfig changed across the restart"
    );
    let again = k
        .ok(&[
            "get",
            "configmap",
            "survivor",
            "-o",
            "jsonpath={.metadata.uid}",
        ])
        .unwrap();
    assert_eq!(again, uid);
    let out = k
        .ok(&["create", "configmap", "newcomer", "--from-literal=k=v"])
        .unwrap();
    assert_eq!(out.trim(), "configmap/newcomer created");
}

#[test]
fn pod_eviction_timeout_sets_the_default_node_tolerations() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start_with_args(&["--pod-eviction-timeout=45s"]).unwrap();
    let k = cluster.kubectl().unwrap();
    k.apply(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers: [{name: c, image: busybox}]\n",
    )
    .unwrap();
    let seconds = k
        .ok(&[
            "get",
            "pod",
            "p",
            "-o",
            "jsonpath={.spec.tolerations[*].tolerationSeconds}",
        ])
        .unwrap();
    assert_eq!(seconds.trim(), "45 45");
}
