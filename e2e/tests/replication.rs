//! ReplicationControllers, the classic core/v1 replication object, with the real kubectl:
//! the wanted number of pods from the template, scaling, replacement of a deleted pod, and
//! the pods' removal with the controller.

use std::time::Duration;

use tugboat_e2e::wait::wait_for;
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

const RC: &str = r#"
apiVersion: v1
kind: ReplicationController
metadata:
  name: web
spec:
  replicas: 3
  selector: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: web
        image: busybox
"#;

/// Names of the live (not terminating) pods of the controller.
fn live_pods(k: &Kubectl) -> Vec<String> {
    let out = k.get_jsonpath(
        &["pods", "-l", "app=web"],
        "{range .items[?(@.status.phase==\"Running\")]}{.metadata.name} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    );
    out.lines()
        .map(str::split_whitespace)
        .filter_map(|mut words| {
            let name = words.next()?;
            words.next().is_none().then(|| name.to_owned())
        })
        .collect()
}

#[test]
fn replication_controllers_keep_scale_and_replace_pods_with_kubectl() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let admin = cluster.kubectl().unwrap();
    admin.ok(&["create", "namespace", "classic"]).unwrap();
    let k = admin.namespace("classic");
    k.apply(RC).unwrap();
    wait_for("three ready replicas", Duration::from_secs(60), || {
        k.get_jsonpath(&["rc", "web"], "{.status.readyReplicas}")
            .trim()
            == "3"
    });
    let table = k.ok(&["get", "rc", "web"]).unwrap();
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[..4], ["web", "3", "3", "3"], "{table}");
    let owner = k.get_jsonpath(
        &["pods", "-l", "app=web"],
        "{.items[0].metadata.ownerReferences[0].kind}",
    );
    assert_eq!(owner.trim(), "ReplicationController");

    // A deleted pod is replaced.
    let victim = live_pods(&k).remove(0);
    k.ok(&["delete", "pod", &victim, "--wait=false"]).unwrap();
    wait_for("a replacement", Duration::from_secs(60), || {
        let pods = live_pods(&k);
        pods.len() == 3 && !pods.contains(&victim)
    });

    k.ok(&["scale", "rc", "web", "--replicas=1"]).unwrap();
    wait_for("one replica", Duration::from_secs(60), || {
        live_pods(&k).len() == 1
    });

    k.ok(&["delete", "rc", "web"]).unwrap();
    wait_for("the pods to go with it", Duration::from_secs(60), || {
        k.ok(&["get", "pods", "-l", "app=web", "-o", "name"])
            .is_ok_and(|out| out.trim().is_empty())
    });
}
