//! Autoscaling as a user sees it with the real kubectl: `kubectl top nodes|pods` from the
//! built-in metrics API, `kubectl autoscale`, `kubectl get hpa` with its `cpu: N%/80%` target,
//! `kubectl describe hpa` with conditions and `SuccessfulRescale` events, and the same HPA read
//! back as `autoscaling/v1`.
//!
//! The simulated cluster's containers use the CPU their pod's `tugboat.dev/sim-cpu-millicores`
//! annotation says. The sync period and stabilization window are shortened with `tug up`'s
//! flags so that scaling happens within seconds.
//!
//! On real containers (root and containerd; CI has both): busy-looping busybox pods with a
//! 100m CPU request (limited to 200m) scale from 1 to the maximum after `kubectl autoscale
//! --cpu-percent=50`, and `kubectl top pods` shows the CPU their cgroups account.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tugboat_e2e::wait::wait_for_value;
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

/// Flags that make the HPA controller act within seconds.
const FAST_HPA: [&str; 2] = ["--hpa-sync-period=1s", "--hpa-downscale-stabilization=5s"];

/// How long the first metrics may take: the node agent pushes every 10 s.
const METRICS_WAIT: Duration = Duration::from_secs(45);

/// Two containers with a 100m CPU request each, each using 200m: 200 % of the request.
const SIM_WEB: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        tugboat.dev/sim-cpu-millicores: "200"
    spec:
      containers:
      - name: app
        image: nginx
        resources:
          requests: {cpu: 100m}
      - name: sidecar
        image: nginx
        resources:
          requests: {cpu: 100m}
"#;

/// stdout of `kubectl args` if it succeeded.
fn stdout_if_ok(k: &Kubectl, args: &[&str]) -> Option<String> {
    let output = k.run(args).ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Millicores of a `kubectl top` CPU column (`250m`, `2`).
fn millicores(text: &str) -> Option<u64> {
    match text.strip_suffix('m') {
        Some(milli) => milli.parse().ok(),
        None => text.parse::<u64>().ok().map(|cores| cores * 1000),
    }
}

/// The rows of a kubectl table, split on whitespace, header first.
fn rows(table: &str) -> Vec<Vec<&str>> {
    table
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect())
        .collect()
}

#[test]
fn top_autoscale_get_and_describe_hpa_on_simulated_pods() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start_with_args(&FAST_HPA).unwrap();
    let admin = cluster.kubectl().unwrap();
    admin.ok(&["create", "namespace", "autoscale"]).unwrap();
    let k = admin.namespace("autoscale");
    k.apply(SIM_WEB).unwrap();

    // kubectl top pods: the pod's CPU is the sum of its containers' (2 × 200m).
    let top = wait_for_value("kubectl top pods to show the pod", METRICS_WAIT, || {
        stdout_if_ok(&k, &["top", "pods"]).filter(|out| out.contains("web-"))
    });
    let table = rows(&top);
    assert_eq!(
        table[0][..3],
        ["NAME", "CPU(cores)", "MEMORY(bytes)"],
        "{top}"
    );
    assert_eq!(table.len(), 2, "{top}");
    assert_eq!(millicores(table[1][1]), Some(400), "{top}");
    let pod = table[1][0].to_owned();

    let containers = k.ok(&["top", "pods", "--containers"]).unwrap();
    let table = rows(&containers);
    assert_eq!(table[0][..3], ["POD", "NAME", "CPU(cores)"], "{containers}");
    for container in ["app", "sidecar"] {
        let row = table
            .iter()
            .find(|r| r.len() > 2 && r[0] == pod && r[1] == container)
            .unwrap_or_else(|| panic!("no row for {container}:\n{containers}"));
        assert_eq!(millicores(row[2]), Some(200), "{containers}");
    }

    let selected = k.ok(&["top", "pods", "-l", "app=web"]).unwrap();
    assert!(selected.contains(&pod), "{selected}");
    let other = k.run(&["top", "pods", "-l", "app=other"]).unwrap();
    let other_out = String::from_utf8_lossy(&other.stdout);
    assert!(!other_out.contains(&pod), "{other_out}");

    let all = admin.ok(&["top", "pods", "-A"]).unwrap();
    let table = rows(&all);
    assert_eq!(table[0][..3], ["NAMESPACE", "NAME", "CPU(cores)"], "{all}");
    assert!(
        table
            .iter()
            .any(|r| r[..2] == ["autoscale", pod.as_str()] && millicores(r[2]) == Some(400)),
        "{all}"
    );

    // kubectl top nodes: the simulated node's usage is the sum of its pods'.
    let nodes = wait_for_value("kubectl top nodes", METRICS_WAIT, || {
        stdout_if_ok(&admin, &["top", "nodes"])
    });
    let table = rows(&nodes);
    assert_eq!(table[0][..3], ["NAME", "CPU(cores)", "CPU(%)"], "{nodes}");
    assert!(
        table[1..]
            .iter()
            .any(|r| millicores(r[1]).is_some_and(|m| m >= 400)),
        "{nodes}"
    );

    // kubectl autoscale (a protobuf POST to autoscaling/v1): 200 % against 80 % scales to the
    // maximum.
    let out = k
        .ok(&[
            "autoscale",
            "deployment",
            "web",
            "--cpu-percent=80",
            "--min=1",
            "--max=4",
        ])
        .unwrap();
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/web autoscaled"),
        "{out}"
    );
    let hpa = wait_for_value("kubectl get hpa to show 4 replicas", METRICS_WAIT, || {
        let out = stdout_if_ok(&k, &["get", "hpa", "web"])?;
        let table = rows(&out);
        (table.len() == 2 && table[1].get(6) == Some(&"4")).then_some(out)
    });
    let table = rows(&hpa);
    assert_eq!(
        table[0][..7],
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ],
        "{hpa}"
    );
    assert_eq!(
        table[1][..6],
        ["web", "Deployment/web", "cpu:", "200%/80%", "1", "4"],
        "{hpa}"
    );

    let describe = wait_for_value("the last rescale in describe", METRICS_WAIT, || {
        stdout_if_ok(&k, &["describe", "hpa", "web"]).filter(|out| out.contains("New size: 4"))
    });
    for expected in [
        "Reference:",
        "Deployment/web",
        "resource cpu on pods  (as a percentage of request):  200% (400m) / 80%",
        "Min replicas:",
        "Max replicas:",
        "Deployment pods:",
        "4 current / 4 desired",
        "AbleToScale     True",
        "ScalingActive   True    ValidMetricFound",
        "ScalingLimited",
        "SuccessfulRescale",
        "horizontal-pod-autoscaler",
        "reason: cpu resource utilization (percentage of request) above target",
    ] {
        assert!(
            describe.contains(expected),
            "no {expected:?} in:\n{describe}"
        );
    }
    let conditions: Vec<&str> = describe
        .lines()
        .skip_while(|l| !l.starts_with("Conditions:"))
        .skip(3)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        conditions,
        ["AbleToScale", "ScalingActive", "ScalingLimited"],
        "{describe}"
    );
    assert_eq!(
        k.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}"
        ])
        .unwrap(),
        "4"
    );
}

/// An HPA written as autoscaling/v2 with more than v1 can say.
const MIXED_V2: &str = r#"
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: mixed
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: absent}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {type: Utilization, averageUtilization: 60}
  - type: Resource
    resource:
      name: memory
      target: {type: AverageValue, averageValue: 100Mi}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 30
"#;

#[test]
fn autoscaling_v1_is_served_and_converted_from_v2() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start_with_args(&FAST_HPA).unwrap();
    let admin = cluster.kubectl().unwrap();

    // Discovery: both versions, v2 preferred (what `kubectl get hpa` uses).
    let versions = admin.ok(&["api-versions"]).unwrap();
    for version in ["autoscaling/v1", "autoscaling/v2", "metrics.k8s.io/v1beta1"] {
        assert!(
            versions.lines().any(|l| l == version),
            "{version} missing:\n{versions}"
        );
    }
    let group: serde_json::Value =
        serde_json::from_str(&admin.ok(&["get", "--raw", "/apis/autoscaling"]).unwrap()).unwrap();
    assert_eq!(group["preferredVersion"]["version"], "v2", "{group}");
    let v1: serde_json::Value =
        serde_json::from_str(&admin.ok(&["get", "--raw", "/apis/autoscaling/v1"]).unwrap())
            .unwrap();
    assert!(
        v1["resources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "horizontalpodautoscalers"),
        "{v1}"
    );

    admin.ok(&["create", "namespace", "convert"]).unwrap();
    let k = admin.namespace("convert");
    k.apply(SIM_WEB).unwrap();
    // kubectl autoscale creates it through autoscaling/v1; the controller writes v2 status.
    // (kubectl drops the version of a short name: `hpa.v1.autoscaling` would read v2.)
    k.ok(&[
        "autoscale",
        "deployment",
        "web",
        "--cpu-percent=80",
        "--min=1",
        "--max=3",
    ])
    .unwrap();
    let v1_hpa = wait_for_value("the current utilization in v1", METRICS_WAIT, || {
        let hpa = k
            .get_json(&["horizontalpodautoscalers.v1.autoscaling", "web"])
            .ok()?;
        hpa["status"]["currentCPUUtilizationPercentage"]
            .is_number()
            .then_some(hpa)
    });
    assert_eq!(v1_hpa["apiVersion"], "autoscaling/v1");
    assert_eq!(v1_hpa["spec"]["targetCPUUtilizationPercentage"], 80);
    assert_eq!(v1_hpa["status"]["currentCPUUtilizationPercentage"], 200);
    let v2_hpa = k
        .get_json(&["horizontalpodautoscalers.v2.autoscaling", "web"])
        .unwrap();
    assert_eq!(v2_hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(
        v2_hpa["spec"]["metrics"][0]["resource"]["target"],
        serde_json::json!({"type": "Utilization", "averageUtilization": 80})
    );

    // A v2-created HPA with a memory metric and behavior: v1 shows the cpu target and keeps
    // the rest in upstream's annotations; a write through v1 loses nothing.
    k.apply(MIXED_V2).unwrap();
    let mixed = k
        .get_json(&["horizontalpodautoscalers.v1.autoscaling", "mixed"])
        .unwrap();
    assert_eq!(
        mixed["spec"]["targetCPUUtilizationPercentage"], 60,
        "{mixed}"
    );
    let carried = mixed["metadata"]["annotations"]["autoscaling.alpha.kubernetes.io/metrics"]
        .as_str()
        .unwrap_or_default();
    assert!(
        carried.contains("\"targetAverageValue\":\"100Mi\""),
        "{mixed}"
    );
    k.ok(&[
        "label",
        "horizontalpodautoscalers.v1.autoscaling",
        "mixed",
        "team=a",
    ])
    .unwrap();
    let after = k
        .get_json(&["horizontalpodautoscalers.v2.autoscaling", "mixed"])
        .unwrap();
    assert_eq!(after["metadata"]["labels"]["team"], "a", "{after}");
    let metrics = after["spec"]["metrics"].as_array().unwrap();
    assert_eq!(metrics.len(), 2, "{after}");
    assert!(
        metrics.iter().any(|m| m["resource"]["name"] == "memory"
            && m["resource"]["target"]["averageValue"] == "100Mi"),
        "{after}"
    );
    assert_eq!(
        after["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"], 30,
        "{after}"
    );
    let annotations = after["metadata"]["annotations"].as_object();
    assert!(
        annotations.is_none_or(|a| !a.keys().any(|key| key.starts_with("autoscaling.alpha"))),
        "{after}"
    );
}

// === Real containers ===

/// The CPU burner: 100m requested, 200m allowed, a shell loop using all it may.
const BURNER: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: burner
spec:
  replicas: 1
  selector:
    matchLabels: {app: burner}
  template:
    metadata:
      labels: {app: burner}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: burn
        image: busybox
        command: ["sh", "-c", "while :; do :; done"]
        resources:
          requests: {cpu: 100m}
          limits: {cpu: 200m}
"#;

/// Directories named `name` under `root`, at most `depth` levels down.
fn find_dir(root: &Path, name: &str, depth: usize) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    let dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
        .collect();
    if let Some(found) = dirs
        .iter()
        .find(|d| d.file_name().is_some_and(|n| n == name))
    {
        return Some(found.clone());
    }
    if depth == 0 {
        return None;
    }
    dirs.iter().find_map(|d| find_dir(d, name, depth - 1))
}

/// CPU time the container's cgroup has used, in nanoseconds: cgroup v2's `cpu.stat`
/// `usage_usec`, or cgroup v1's `cpuacct.usage`.
fn cgroup_cpu_nanos(container_id: &str) -> Option<u64> {
    let root = Path::new("/sys/fs/cgroup");
    if root.join("cgroup.controllers").exists() {
        let dir = find_dir(root, container_id, 4)?;
        let stat = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
        let usec: u64 = stat
            .lines()
            .find_map(|l| l.strip_prefix("usage_usec "))?
            .trim()
            .parse()
            .ok()?;
        return Some(usec * 1000);
    }
    let accounting = ["cpuacct", "cpu,cpuacct"]
        .iter()
        .map(|c| root.join(c))
        .find(|p| p.is_dir())?;
    let dir = find_dir(&accounting, container_id, 4)?;
    std::fs::read_to_string(dir.join("cpuacct.usage"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn busy_pods_scale_up_and_top_shows_their_cgroup_cpu_on_real_containers() {
    if !tugboat_e2e::containers::containers_or_skip() || kubectl_or_skip().is_none() {
        return;
    }
    // Dropping a containerd cluster resets it: no busy loop outlives the test, even a failed one.
    let cluster = Cluster::start_containerd_with_args(&[
        "--hpa-sync-period=2s",
        "--hpa-downscale-stabilization=30s",
    ])
    .unwrap();
    let k = cluster.kubectl().unwrap();
    wait_for_value("the node to be Ready", Duration::from_secs(60), || {
        stdout_if_ok(&k, &["get", "nodes", "--no-headers"]).filter(|out| out.contains(" Ready "))
    });
    k.apply(BURNER).unwrap();
    k.ok(&["rollout", "status", "deployment/burner", "--timeout=120s"])
        .unwrap();

    // One pod burning its 200m limit: 200 % of its request against 50 % → the maximum, 3.
    let out = k
        .ok(&[
            "autoscale",
            "deployment",
            "burner",
            "--cpu-percent=50",
            "--min=1",
            "--max=3",
        ])
        .unwrap();
    assert!(out.contains("autoscaled"), "{out}");
    let started = Instant::now();
    wait_for_value("the burner to scale to 3", Duration::from_secs(120), || {
        let replicas = stdout_if_ok(
            &k,
            &[
                "get",
                "deployment",
                "burner",
                "-o",
                "jsonpath={.spec.replicas}",
            ],
        )?;
        (replicas == "3").then_some(())
    });
    eprintln!("scaled 1 → 3 in {:?}", started.elapsed());
    let describe = k.ok(&["describe", "hpa", "burner"]).unwrap();
    assert!(describe.contains("SuccessfulRescale"), "{describe}");

    // kubectl top pods: every burner uses about its 200m limit (at least more than its
    // 100m request; the machine may be busy).
    let top = wait_for_value(
        "kubectl top pods to show 3 busy pods",
        METRICS_WAIT * 2,
        || {
            let out = stdout_if_ok(&k, &["top", "pods", "-l", "app=burner"])?;
            let busy = rows(&out)[1..]
                .iter()
                .filter(|r| millicores(r[1]).is_some_and(|m| m >= 100))
                .count();
            (busy == 3).then_some(out)
        },
    );
    assert!(
        rows(&top)
            .iter()
            .skip(1)
            .all(|r| millicores(r[1]).is_some_and(|m| m <= 260)),
        "{top}"
    );

    // The figure is right: compare one pod's reported rate with its cgroup's CPU time.
    let pod = rows(&top)[1][0].to_owned();
    let container_id = k
        .ok(&[
            "get",
            "pod",
            &pod,
            "-o",
            "jsonpath={.status.containerStatuses[0].containerID}",
        ])
        .unwrap();
    let container_id = container_id
        .rsplit("://")
        .next()
        .unwrap_or_default()
        .to_owned();
    let before = cgroup_cpu_nanos(&container_id)
        .unwrap_or_else(|| panic!("no cgroup CPU accounting for container {container_id}"));
    let measure = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let after = cgroup_cpu_nanos(&container_id).unwrap();
    let cgroup_milli = (after - before) as f64 / measure.elapsed().as_nanos() as f64 * 1000.0;
    let metrics: serde_json::Value = serde_json::from_str(
        &k.ok(&[
            "get",
            "--raw",
            &format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{pod}"),
        ])
        .unwrap(),
    )
    .unwrap();
    let reported = metrics["containers"][0]["usage"]["cpu"]
        .as_str()
        .and_then(|cpu| cpu.strip_suffix('n'))
        .and_then(|n| n.parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no cpu usage in {metrics}"))
        / 1e6;
    eprintln!("pod {pod}: metrics API {reported:.0}m, cgroup {cgroup_milli:.0}m");
    assert!(
        (reported - cgroup_milli).abs() <= 0.3 * cgroup_milli.max(reported),
        "metrics API says {reported:.0}m, the cgroup used {cgroup_milli:.0}m"
    );

    k.ok(&["delete", "hpa", "burner"]).unwrap();
    k.ok(&["delete", "deployment", "burner"]).unwrap();
    drop(cluster);
}

/// manifests/hpa.yaml and manifests/burner.yaml apply and their HPAs compute a metric.
#[test]
fn sample_manifests_apply_and_their_hpas_compute() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start_with_args(&FAST_HPA).unwrap();
    let admin = cluster.kubectl().unwrap();
    admin.ok(&["create", "namespace", "samples"]).unwrap();
    let k = admin.namespace("samples");
    let manifest = |name: &str| format!("{}/../manifests/{name}", env!("CARGO_MANIFEST_DIR"));

    k.ok(&["apply", "-f", &manifest("web.yaml")]).unwrap();
    let out = k.ok(&["apply", "-f", &manifest("hpa.yaml")]).unwrap();
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/web created"),
        "{out}"
    );
    // web.yaml's pods request 50m of CPU, so utilization is computed at once.
    wait_for_value(
        "kubectl get hpa web to show cpu: 0%/80%",
        METRICS_WAIT,
        || stdout_if_ok(&k, &["get", "hpa", "web"]).filter(|out| out.contains("cpu: 0%/80%")),
    );

    let out = k.ok(&["apply", "-f", &manifest("burner.yaml")]).unwrap();
    assert!(out.contains("deployment.apps/burner created"), "{out}");
    assert!(
        out.contains("horizontalpodautoscaler.autoscaling/burner created"),
        "{out}"
    );
    // Simulated pods without the annotation use nothing: 0 % of the request, 1 replica.
    let hpa = wait_for_value(
        "kubectl get hpa burner with its target",
        METRICS_WAIT,
        || stdout_if_ok(&k, &["get", "hpa", "burner"]).filter(|out| out.contains("cpu: 0%/50%")),
    );
    let table = rows(&hpa);
    assert_eq!(
        table[1][..6],
        ["burner", "Deployment/burner", "cpu:", "0%/50%", "1", "3"],
        "{hpa}"
    );
}
