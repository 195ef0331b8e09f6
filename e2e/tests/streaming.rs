//! `kubectl logs`, `kubectl exec` and `kubectl port-forward` on real containers: the API
//! server proxies them to the node agent's HTTPS endpoint, which reads the CRI log files and
//! proxies exec and port-forward to containerd's streaming server.
//!
//! Needs root and containerd (CI installs both); elsewhere it says what is missing and skips.

use std::io::{BufRead as _, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tugboat_e2e::containers::{containers_or_skip, http_get as http_get_path, wait_for};
use tugboat_e2e::process::kill_and_reap;
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

/// `GET /` on `addr`; the answer if it is a 200.
fn http_get(addr: &str) -> Option<String> {
    http_get_path(addr, "/").and_then(|(code, answer)| (code == 200).then_some(answer))
}

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "for i in 1 2 3 4 5; do echo line-$i; done; echo oops >&2; while true; do echo tick; sleep 0.3; done"]
---
apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{containerPort: 8080}]
---
apiVersion: v1
kind: Pod
metadata: {name: crasher}
spec:
  containers:
  - name: main
    image: busybox
    command: ["sh", "-c", "echo run-$(cat /proc/sys/kernel/random/uuid); sleep 1; exit 1"]
"#;

fn start() -> Option<(Cluster, Kubectl)> {
    if !containers_or_skip() || kubectl_or_skip().is_none() {
        return None;
    }
    let cluster = Cluster::start_containerd().expect("tug up on containerd");
    let k = cluster.kubectl().expect("kubectl");
    wait_for("the node to be Ready", Duration::from_secs(60), || {
        k.ok(&["get", "nodes", "--no-headers"])
            .is_ok_and(|out| out.contains(" Ready "))
    });
    k.apply(PODS).expect("apply the pods");
    k.ok(&[
        "wait",
        "--for=condition=Ready",
        "pod/talker",
        "pod/web",
        "--timeout=90s",
    ])
    .expect("the pods are Ready");
    Some((cluster, k))
}

#[test]
fn logs_exec_and_port_forward_through_kubectl_on_real_containers() {
    let Some((mut cluster, k)) = start() else {
        return;
    };

    // Logs: everything, the tail, timestamps, stderr interleaved.
    wait_for("a few lines", Duration::from_secs(20), || {
        k.ok(&["logs", "talker"])
            .is_ok_and(|out| out.matches("tick").count() >= 3)
    });
    let all = k.ok(&["logs", "talker"]).unwrap();
    // stdout in order (stderr is read separately by the runtime and may interleave).
    let numbered: Vec<&str> = all.lines().filter(|l| l.starts_with("line-")).collect();
    assert_eq!(
        numbered,
        ["line-1", "line-2", "line-3", "line-4", "line-5"],
        "{all}"
    );
    assert!(all.contains("oops\n"), "stderr is in the log: {all}");
    let tail = k.ok(&["logs", "talker", "--tail", "2"]).unwrap();
    assert_eq!(tail.lines().count(), 2, "{tail}");
    assert!(tail.lines().all(|l| l == "tick"), "{tail}");
    let stamped = k
        .ok(&[
            "logs",
            "talker",
            "-c",
            "main",
            "--timestamps",
            "--tail",
            "1",
        ])
        .unwrap();
    let (stamp, text) = stamped.trim_end().split_once(' ').expect("timestamp");
    assert!(stamp.starts_with("20") && stamp.contains('T'), "{stamped}");
    assert_eq!(text, "tick");
    let recent = k.ok(&["logs", "talker", "--since", "1h"]).unwrap();
    assert!(recent.contains("line-1"), "{recent}");

    // Errors: a missing pod, a container that is not there, no previous run.
    let missing = k.fails(&["logs", "nobody"]).unwrap();
    assert!(
        missing.contains("NotFound") || missing.contains("not found"),
        "{missing}"
    );
    let no_previous = k.fails(&["logs", "talker", "--previous"]).unwrap();
    assert!(
        no_previous.contains("previous terminated container"),
        "{no_previous}"
    );

    // Follow: the lines written after the start arrive while kubectl waits.
    let mut follow = k.spawn(&["logs", "-f", "talker", "--tail", "1"]).unwrap();
    let stdout = follow.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut followed = Vec::new();
    while followed.len() < 5 {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => followed.push(line),
            Err(_) => break,
        }
    }
    let still_following = follow.try_wait().unwrap().is_none();
    kill_and_reap(&mut follow);
    assert_eq!(followed.len(), 5, "logs -f streamed: {followed:?}");
    assert!(still_following, "kubectl logs -f kept following");

    // Exec without a terminal; stdin piped; the exit code comes back.
    let hostname = k
        .ok(&["exec", "talker", "--", "cat", "/etc/hostname"])
        .unwrap();
    assert_eq!(hostname.trim(), "talker");
    let echoed = k
        .ok_with_input(
            &["exec", "-i", "talker", "--", "cat"],
            "piped-input\nsecond\n",
        )
        .unwrap();
    assert_eq!(echoed, "piped-input\nsecond\n");
    let failed = k
        .run(&["exec", "talker", "--", "sh", "-c", "exit 3"])
        .unwrap();
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    let both = k
        .run(&[
            "exec",
            "talker",
            "-c",
            "main",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2",
        ])
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&both.stdout), "out\n");
    assert!(String::from_utf8_lossy(&both.stderr).contains("err"));
    let bad = k
        .fails(&["exec", "talker", "-c", "nope", "--", "true"])
        .unwrap();
    assert!(bad.contains("nope"), "{bad}");

    // Port-forward: a local port reaches the pod's httpd.
    let port = tugboat_testkit::net::free_port().unwrap();
    let mut forward = k
        .spawn(&["port-forward", "pod/web", &format!("{port}:8080")])
        .unwrap();
    let mut answer = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while answer.is_none() && Instant::now() < deadline {
        answer = http_get(&format!("127.0.0.1:{port}"));
        if answer.is_none() {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    // A second connection over the same forward.
    let again = answer
        .is_some()
        .then(|| http_get(&format!("127.0.0.1:{port}")))
        .flatten();
    kill_and_reap(&mut forward);
    let answer = answer.expect("the pod answered through kubectl port-forward");
    assert!(answer.contains("hello-from-pod"), "{answer}");
    assert!(again.is_some_and(|a| a.contains("hello-from-pod")));

    // The previous run's log after a restart.
    wait_for("crasher to restart", Duration::from_secs(90), || {
        k.ok(&[
            "get",
            "pod",
            "crasher",
            "-o",
            "jsonpath={.status.containerStatuses[0].restartCount}",
        ])
        .is_ok_and(|n| n.trim().parse::<u32>().is_ok_and(|n| n >= 1))
    });
    let mut previous = String::new();
    let mut current = String::new();
    wait_for("two runs with logs", Duration::from_secs(30), || {
        previous = k.ok(&["logs", "crasher", "--previous"]).unwrap_or_default();
        current = k.ok(&["logs", "crasher"]).unwrap_or_default();
        previous.starts_with("run-") && current.starts_with("run-")
    });
    assert_ne!(previous, current, "--previous shows the run before");

    cluster.stop().unwrap();
}

/// Simulated nodes run nothing: logs are empty, exec and port-forward say why they cannot be;
/// pods without a node or on a missing node get clear errors, never a 500.
#[test]
fn simulated_nodes_answer_clearly() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let mut cluster = Cluster::start().expect("tug up --runtime sim");
    let k = cluster.kubectl().expect("kubectl");
    k.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: sim}
spec:
  containers: [{name: main, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  nodeSelector: {no-such-label: "true"}
  containers: [{name: main, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: lost}
spec:
  nodeName: no-such-node
  containers: [{name: main, image: busybox}]
"#,
    )
    .expect("apply");
    k.ok(&["wait", "--for=condition=Ready", "pod/sim", "--timeout=60s"])
        .expect("the simulated pod is Ready");

    let logs = k.run(&["logs", "sim"]).expect("kubectl logs");
    assert!(logs.status.success(), "{logs:?}");
    assert!(logs.stdout.is_empty(), "{logs:?}");
    let exec = k.fails(&["exec", "sim", "--", "true"]).expect("exec fails");
    assert!(exec.contains("simulated"), "{exec}");
    let forward = k
        .fails(&["port-forward", "pod/sim", "0:80"])
        .expect("port-forward fails");
    assert!(forward.contains("simulated"), "{forward}");

    let unscheduled = k.fails(&["logs", "nowhere"]).expect("logs fails");
    assert!(
        unscheduled.contains("does not have a host assigned"),
        "{unscheduled}"
    );
    let lost = k.fails(&["logs", "lost"]).expect("logs fails");
    assert!(
        lost.contains("no-such-node") && lost.contains("not found"),
        "{lost}"
    );
    cluster.stop().expect("stop");
}
