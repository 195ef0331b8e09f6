//! StatefulSets as a user drives them with the real kubectl on simulated nodes: stable pod
//! names and host names, ordered scaling, a rolling update held at a partition, then finished,
//! and `rollout undo`.

use std::time::Duration;

use tugboat_e2e::wait::wait_for;
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

const DB: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: db
spec:
  clusterIP: None
  selector: {app: db}
  ports:
  - port: 5432
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: db
        image: busybox:1.36
"#;

/// `name=image` of every pod of the set, sorted by name.
fn pods(k: &Kubectl) -> String {
    let out = k.get_jsonpath(
        &["pods", "-l", "app=db"],
        "{range .items[*]}{.metadata.name}={.spec.containers[0].image} {end}",
    );
    let mut pods: Vec<&str> = out.split_whitespace().collect();
    pods.sort_unstable();
    pods.join(" ")
}

#[test]
fn statefulsets_scale_in_order_and_roll_out_by_partition_with_kubectl() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let admin = cluster.kubectl().unwrap();
    admin.ok(&["create", "namespace", "state"]).unwrap();
    let k = admin.namespace("state");
    k.apply(DB).unwrap();
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .unwrap();
    assert_eq!(
        pods(&k),
        "db-0=busybox:1.36 db-1=busybox:1.36 db-2=busybox:1.36"
    );
    assert_eq!(
        k.get_jsonpath(&["pod", "db-1"], "{.spec.hostname}.{.spec.subdomain}")
            .trim(),
        "db-1.db"
    );

    // Scaling down removes the highest ordinals; scaling up brings the same names back.
    k.ok(&["scale", "statefulset/db", "--replicas=1"]).unwrap();
    wait_for("db-1 and db-2 to go", Duration::from_secs(60), || {
        pods(&k) == "db-0=busybox:1.36"
    });
    k.ok(&["scale", "statefulset/db", "--replicas=3"]).unwrap();
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .unwrap();

    // A partition of 2 updates db-2 only; lowering it to 0 finishes the rollout.
    k.ok(&[
        "patch",
        "statefulset/db",
        "-p",
        r#"{"spec":{"updateStrategy":{"type":"RollingUpdate","rollingUpdate":{"partition":2}}}}"#,
    ])
    .unwrap();
    k.ok(&["set", "image", "statefulset/db", "db=busybox:1.37"])
        .unwrap();
    wait_for("db-2 on the new image", Duration::from_secs(60), || {
        pods(&k) == "db-0=busybox:1.36 db-1=busybox:1.36 db-2=busybox:1.37"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        pods(&k),
        "db-0=busybox:1.36 db-1=busybox:1.36 db-2=busybox:1.37",
        "the partition holds"
    );
    k.ok(&[
        "patch",
        "statefulset/db",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0}}}}"#,
    ])
    .unwrap();
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .unwrap();
    wait_for(
        "every pod on the new image",
        Duration::from_secs(60),
        || pods(&k) == "db-0=busybox:1.37 db-1=busybox:1.37 db-2=busybox:1.37",
    );

    k.ok(&["rollout", "undo", "statefulset/db"]).unwrap();
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=60s"])
        .unwrap();
    wait_for(
        "every pod back on the old image",
        Duration::from_secs(60),
        || pods(&k) == "db-0=busybox:1.36 db-1=busybox:1.36 db-2=busybox:1.36",
    );
}
