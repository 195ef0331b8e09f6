//! The probes journey on real containers: a readiness failure takes a pod out of its Service
//! without restarting it and it comes back when the probe passes; a liveness failure restarts
//! the container with events that say why; a crash loop backs off 10 s, then 20 s.
//!
//! The probes read files from a hostPath directory the test changes, so nothing depends on
//! timing inside the container. Needs root and containerd (CI installs both).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use tugboat_e2e::containers::{
    answers_ok, containers_or_skip, shared_dir, stop_and_reset, wait_for,
};
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

/// A busybox httpd pod serving `dir` as `/www`, with the given probe stanza(s).
fn httpd_pod(name: &str, dir: &Path, probes: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {name}}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: [{{containerPort: 8080}}]
{probes}
    volumeMounts: [{{name: www, mountPath: /www}}]
  volumes:
  - name: www
    hostPath: {{path: "{dir}", type: Directory}}
"#,
        dir = dir.display()
    )
}

fn ready(k: &Kubectl, pod: &str) -> String {
    k.get_jsonpath(
        &["pod", pod],
        r#"{.status.conditions[?(@.type=="Ready")].status}"#,
    )
}

fn restarts(k: &Kubectl, pod: &str) -> u32 {
    k.get_jsonpath(&["pod", pod], "{.status.containerStatuses[0].restartCount}")
        .parse()
        .unwrap_or(0)
}

fn create_namespace(k: &Kubectl, name: &str) -> Kubectl {
    k.ok(&["create", "namespace", name])
        .expect("creating a namespace");
    k.namespace(name)
}

#[test]
fn readiness_liveness_and_crash_loop_on_real_containers() {
    if !containers_or_skip() || kubectl_or_skip().is_none() {
        return;
    }
    let mut cluster = Cluster::start_containerd().unwrap();
    let admin = cluster.kubectl().unwrap();
    wait_for("the node to be Ready", Duration::from_secs(60), || {
        admin
            .ok(&["get", "nodes", "--no-headers"])
            .is_ok_and(|out| out.contains(" Ready "))
    });

    // The crash loop runs on its own while the other two are driven; its restarts are timed
    // by a poller thread.
    let crash = create_namespace(&admin, "probes-crash");
    crash
        .apply(
            r#"apiVersion: v1
kind: Pod
metadata: {name: crash}
spec:
  containers:
  - name: crash
    image: busybox
    command: ["sh", "-c", "echo crashing; exit 1"]
"#,
        )
        .unwrap();

    let readiness = create_namespace(&admin, "probes-ready");
    let readiness_dir = shared_dir(&cluster, "readiness").unwrap();
    std::fs::write(readiness_dir.join("ready"), "ok\n").unwrap();
    std::fs::write(readiness_dir.join("index.html"), "web\n").unwrap();
    let probe = "    readinessProbe:\n      httpGet: {path: /ready, port: 8080}\n      periodSeconds: 1\n      failureThreshold: 1";
    readiness
        .apply(&format!(
            "{}---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec:\n  selector: {{app: web}}\n  ports: [{{port: 80, targetPort: 8080}}]\n",
            httpd_pod("web", &readiness_dir, probe)
        ))
        .unwrap();

    let liveness = create_namespace(&admin, "probes-live");
    let liveness_dir = shared_dir(&cluster, "liveness").unwrap();
    std::fs::write(liveness_dir.join("healthz"), "ok\n").unwrap();
    let probe = "    livenessProbe:\n      httpGet: {path: /healthz, port: 8080}\n      periodSeconds: 1\n      failureThreshold: 2";
    liveness
        .apply(&httpd_pod("live", &liveness_dir, probe))
        .unwrap();

    std::thread::scope(|scope| {
        let crash_timeline = scope.spawn(|| {
            // When each restart count was first seen, and whether CrashLoopBackOff showed.
            let mut first_seen: BTreeMap<u32, Instant> = BTreeMap::new();
            let mut backing_off = false;
            let deadline = Instant::now() + Duration::from_secs(120);
            while !first_seen.contains_key(&3) && Instant::now() < deadline {
                let count = restarts(&crash, "crash");
                first_seen.entry(count).or_insert_with(Instant::now);
                backing_off |= crash.get_jsonpath(
                    &["pod", "crash"],
                    "{.status.containerStatuses[0].state.waiting.reason}",
                ) == "CrashLoopBackOff";
                std::thread::sleep(Duration::from_millis(250));
            }
            (first_seen, backing_off)
        });

        // Readiness: out of the Service while failing, never restarted, back when it passes.
        let cluster_ip = readiness.get_jsonpath(&["service", "web"], "{.spec.clusterIP}");
        assert!(cluster_ip.starts_with("10.96."), "{cluster_ip}");
        let service = format!("{cluster_ip}:80");
        let ready_addresses =
            || readiness.get_jsonpath(&["endpoints", "web"], "{.subsets[*].addresses[*].ip}");
        let not_ready_addresses = || {
            readiness.get_jsonpath(
                &["endpoints", "web"],
                "{.subsets[*].notReadyAddresses[*].ip}",
            )
        };
        wait_for(
            "the readiness pod to be Ready",
            Duration::from_secs(90),
            || ready(&readiness, "web") == "True",
        );
        let pod_ip = readiness.get_jsonpath(&["pod", "web"], "{.status.podIP}");
        wait_for("the pod in the Endpoints", Duration::from_secs(30), || {
            ready_addresses() == pod_ip
        });
        wait_for("the Service to answer", Duration::from_secs(30), || {
            answers_ok(&service, "/ready")
        });

        std::fs::remove_file(readiness_dir.join("ready")).unwrap();
        wait_for("Ready to turn False", Duration::from_secs(20), || {
            ready(&readiness, "web") == "False"
        });
        wait_for(
            "the pod to move to notReadyAddresses",
            Duration::from_secs(20),
            || ready_addresses().is_empty() && not_ready_addresses() == pod_ip,
        );
        wait_for(
            "the Service to stop routing to the pod",
            Duration::from_secs(20),
            || !answers_ok(&service, "/index.html"),
        );
        // The pod itself still serves: a readiness failure never restarts it.
        assert!(answers_ok(&format!("{pod_ip}:8080"), "/index.html"));
        assert_eq!(restarts(&readiness, "web"), 0);

        std::fs::write(readiness_dir.join("ready"), "ok\n").unwrap();
        wait_for("Ready to come back", Duration::from_secs(20), || {
            ready(&readiness, "web") == "True"
        });
        wait_for(
            "the Service to route again",
            Duration::from_secs(30),
            || answers_ok(&service, "/ready"),
        );
        assert_eq!(restarts(&readiness, "web"), 0, "readiness never restarts");

        // Liveness: failing twice restarts the container, and the events say why.
        wait_for(
            "the liveness pod to be Ready",
            Duration::from_secs(90),
            || ready(&liveness, "live") == "True",
        );
        assert_eq!(restarts(&liveness, "live"), 0);
        std::fs::remove_file(liveness_dir.join("healthz")).unwrap();
        wait_for("a liveness restart", Duration::from_secs(30), || {
            restarts(&liveness, "live") >= 1
        });
        std::fs::write(liveness_dir.join("healthz"), "ok\n").unwrap();
        let described = liveness.ok(&["describe", "pod", "live"]).unwrap();
        assert!(described.contains("Unhealthy"), "{described}");
        assert!(described.contains("Liveness probe failed"), "{described}");
        assert!(described.contains("Killing"), "{described}");
        wait_for(
            "the restarted container to be Ready",
            Duration::from_secs(60),
            || ready(&liveness, "live") == "True",
        );
        let settled = restarts(&liveness, "live");
        std::thread::sleep(Duration::from_secs(4));
        assert_eq!(
            restarts(&liveness, "live"),
            settled,
            "a passing liveness probe restarts nothing"
        );

        // Crash loop: restart 1 is at once, then 10 s, then 20 s of back-off.
        let (first_seen, backing_off) = crash_timeline.join().unwrap();
        assert!(
            (1..=3).all(|n| first_seen.contains_key(&n)),
            "restart counts seen: {:?}",
            first_seen.keys()
        );
        assert!(backing_off, "CrashLoopBackOff never showed");
        let at = |n: u32| first_seen[&n];
        let (second_gap, third_gap) = (at(2) - at(1), at(3) - at(2));
        assert!(
            second_gap >= Duration::from_secs(7) && third_gap >= Duration::from_secs(15),
            "back-off gaps {second_gap:?} then {third_gap:?}"
        );
        assert!(third_gap > second_gap, "{second_gap:?} then {third_gap:?}");
        let last = crash.get_jsonpath(&["pod", "crash"],
            "{.status.containerStatuses[0].lastState.terminated.exitCode}/{.status.containerStatuses[0].lastState.terminated.reason}",
        );
        assert_eq!(last, "1/Error");
        let events = crash
            .ok(&[
                "get",
                "events",
                "--field-selector",
                "involvedObject.name=crash",
            ])
            .unwrap();
        assert!(events.contains("BackOff"), "{events}");
    });

    stop_and_reset(&mut cluster).unwrap();
}
