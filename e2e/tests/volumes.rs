//! Persistent volumes as a user drives them with the real kubectl: the default `local-path`
//! StorageClass, a claim that waits for its first pod, then binds to a volume provisioned on
//! that pod's node, reclaim on delete (Delete and Retain), StatefulSet claim templates, a pod
//! whose claim does not exist, the official Python client listing claims, and, on real
//! containers, a file that outlives its pod.

use std::time::Duration;

use tugboat_e2e::python::{python_client_or_skip, run_python};
use tugboat_e2e::wait::wait_for_value;
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

const CLAIM: &str = r#"
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests: {storage: 1Gi}
"#;

const POD: &str = r#"
apiVersion: v1
kind: Pod
metadata:
  name: user
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - name: app
    image: busybox:1.36
    volumeMounts:
    - {name: data, mountPath: /data}
  volumes:
  - name: data
    persistentVolumeClaim: {claimName: data}
"#;

fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

fn phase(k: &Kubectl, what: &[&str]) -> String {
    k.get_jsonpath(what, "{.status.phase}").trim().to_owned()
}

fn volume_names(k: &Kubectl) -> Vec<String> {
    k.get_jsonpath(&["pv"], "{.items[*].metadata.name}")
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

#[test]
fn claims_bind_when_a_pod_uses_them_and_are_reclaimed_with_kubectl() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start_with_args(&["--nodes", "2"]).unwrap();
    let admin = cluster.kubectl().unwrap();

    // The default class, as kubectl shows it.
    let classes = rows(&admin.ok(&["get", "sc"]).unwrap());
    assert_eq!(
        classes[0],
        [
            "NAME",
            "PROVISIONER",
            "RECLAIMPOLICY",
            "VOLUMEBINDINGMODE",
            "ALLOWVOLUMEEXPANSION",
            "AGE"
        ]
    );
    assert_eq!(
        classes[1][..6],
        [
            "local-path",
            "(default)",
            "tugboat.dev/local-path",
            "Delete",
            "WaitForFirstConsumer",
            "false"
        ]
    );

    admin.ok(&["create", "namespace", "vols"]).unwrap();
    let k = admin.namespace("vols");

    // A claim without a class gets the default one and waits for a consumer.
    k.apply(CLAIM).unwrap();
    assert_eq!(
        k.get_jsonpath(&["pvc", "data"], "{.spec.storageClassName}")
            .trim(),
        "local-path"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(phase(&k, &["pvc", "data"]), "Pending");
    assert!(volume_names(&k).is_empty(), "{:?}", volume_names(&k));

    // A pod using it: the scheduler picks a node, the provisioner makes the volume there.
    k.apply(POD).unwrap();
    wait_for_value("the claim to bind", Duration::from_secs(60), || {
        (phase(&k, &["pvc", "data"]) == "Bound").then_some(())
    });
    k.ok(&["wait", "--for=condition=Ready", "pod/user", "--timeout=60s"])
        .unwrap();
    let node = k
        .get_jsonpath(&["pod", "user"], "{.spec.nodeName}")
        .trim()
        .to_owned();
    let selected = k.get_jsonpath(
        &["pvc", "data"],
        "{.metadata.annotations.volume\\.kubernetes\\.io/selected-node}",
    );
    assert_eq!(selected.trim(), node);
    let uid = k
        .get_jsonpath(&["pvc", "data"], "{.metadata.uid}")
        .trim()
        .to_owned();
    let pv_name = format!("pvc-{uid}");
    let pv = admin.get_json(&["pv", &pv_name]).unwrap();
    assert_eq!(
        pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0],
        serde_json::json!({"key": "kubernetes.io/hostname", "operator": "In", "values": [node]})
    );
    assert_eq!(pv["spec"]["claimRef"]["name"], "data");
    assert_eq!(pv["status"]["phase"], "Bound");
    assert_eq!(
        pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"],
        "tugboat.dev/local-path"
    );
    let claim = k.get_json(&["pvc", "data"]).unwrap();
    assert_eq!(
        claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"],
        "yes"
    );
    let dir = cluster.data_dir().join("storage").join(&pv_name);
    assert_eq!(
        pv["spec"]["hostPath"]["path"],
        dir.to_string_lossy().as_ref()
    );
    // The node agent made the directory when it mounted the volume.
    assert!(dir.is_dir(), "{} missing", dir.display());

    // kubectl's columns for claims and volumes.
    let claims = rows(&k.ok(&["get", "pvc"]).unwrap());
    assert_eq!(
        claims[0],
        [
            "NAME",
            "STATUS",
            "VOLUME",
            "CAPACITY",
            "ACCESS",
            "MODES",
            "STORAGECLASS",
            "VOLUMEATTRIBUTESCLASS",
            "AGE"
        ]
    );
    assert_eq!(
        claims[1][..7],
        [
            "data",
            "Bound",
            pv_name.as_str(),
            "1Gi",
            "RWO",
            "local-path",
            "<unset>"
        ]
    );
    let volumes = rows(&admin.ok(&["get", "pv"]).unwrap());
    assert_eq!(
        volumes[0][..8],
        [
            "NAME", "CAPACITY", "ACCESS", "MODES", "RECLAIM", "POLICY", "STATUS", "CLAIM"
        ]
    );
    assert_eq!(
        volumes[1][..6],
        [
            pv_name.as_str(),
            "1Gi",
            "RWO",
            "Delete",
            "Bound",
            "vols/data"
        ]
    );
    let both = k.ok(&["get", "pvc,pv,sc"]).unwrap();
    for expected in [
        "persistentvolumeclaim/data",
        &format!("persistentvolume/{pv_name}"),
        "storageclass.storage.k8s.io/local-path (default)",
    ] {
        assert!(both.contains(expected), "no {expected} in:\n{both}");
    }

    let described = k.ok(&["describe", "pvc", "data"]).unwrap();
    for expected in [
        "StorageClass:",
        "local-path",
        "Status:",
        "Bound",
        "ProvisioningSucceeded",
    ] {
        assert!(
            described.contains(expected),
            "no {expected} in:\n{described}"
        );
    }
    let tug_classes = cluster.tug().unwrap().ok(&["get", "sc"]).unwrap();
    assert!(
        tug_classes.contains("local-path (default)"),
        "{tug_classes}"
    );

    // A pod whose claim does not exist stays Pending and says why.
    k.apply(
        &POD.replace("name: user", "name: lost")
            .replace("claimName: data", "claimName: nope"),
    )
    .unwrap();
    let message = wait_for_value("the unschedulable message", Duration::from_secs(30), || {
        let message = k.get_jsonpath(
            &["pod", "lost"],
            "{.status.conditions[?(@.type==\"PodScheduled\")].message}",
        );
        message.contains("persistentvolumeclaim").then_some(message)
    });
    assert!(
        message.contains("persistentvolumeclaim \"nope\" not found"),
        "{message}"
    );
    k.ok(&["delete", "pod", "lost", "--wait=false"]).unwrap();

    // A claim deleted while its pod runs stays (Terminating) until the pod is gone.
    k.ok(&["delete", "pvc", "data", "--wait=false"]).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let terminating = rows(&k.ok(&["get", "pvc", "data"]).unwrap());
    assert_eq!(terminating[1][1], "Terminating", "{terminating:?}");
    assert!(volume_names(&k).contains(&pv_name));
    assert!(dir.is_dir());

    // Delete: pod gone, then claim, volume and directory gone.
    k.ok(&["delete", "pod", "user", "--timeout=60s"]).unwrap();
    wait_for_value("the claim to go", Duration::from_secs(30), || {
        k.ok(&["get", "pvc", "data"]).is_err().then_some(())
    });
    wait_for_value("the volume to be deleted", Duration::from_secs(30), || {
        (!volume_names(&k).contains(&pv_name)).then_some(())
    });
    wait_for_value("the directory to go", Duration::from_secs(10), || {
        (!dir.exists()).then_some(())
    });

    // Retain: a volume the admin made binds to a claim of its class and is Released after.
    let kept = cluster.dir().join("kept");
    std::fs::create_dir_all(&kept).unwrap();
    std::fs::write(kept.join("precious"), "data").unwrap();
    admin
        .apply(&format!(
            r#"
apiVersion: v1
kind: PersistentVolume
metadata:
  name: kept
spec:
  capacity: {{storage: 5Gi}}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: manual
  hostPath: {{path: {}}}
"#,
            kept.display()
        ))
        .unwrap();
    wait_for_value(
        "the volume to be Available",
        Duration::from_secs(30),
        || (phase(&admin, &["pv", "kept"]) == "Available").then_some(()),
    );
    k.apply(
        &CLAIM
            .replace("name: data", "name: manual")
            .replace("spec:\n", "spec:\n  storageClassName: manual\n"),
    )
    .unwrap();
    wait_for_value("the manual claim to bind", Duration::from_secs(30), || {
        (phase(&k, &["pvc", "manual"]) == "Bound").then_some(())
    });
    assert_eq!(
        k.get_jsonpath(&["pvc", "manual"], "{.spec.volumeName}")
            .trim(),
        "kept"
    );
    assert_eq!(
        k.get_jsonpath(&["pvc", "manual"], "{.status.capacity.storage}")
            .trim(),
        "5Gi"
    );
    k.ok(&["delete", "pvc", "manual", "--timeout=60s"]).unwrap();
    wait_for_value("the volume to be Released", Duration::from_secs(30), || {
        (phase(&admin, &["pv", "kept"]) == "Released").then_some(())
    });
    assert_eq!(
        std::fs::read_to_string(kept.join("precious")).unwrap(),
        "data"
    );

    // StatefulSet claim templates: one claim per pod, each provisioned and bound.
    k.apply(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 2
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
        volumeMounts:
        - {name: data, mountPath: /var/lib/db}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {storage: 100Mi}
"#,
    )
    .unwrap();
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=90s"])
        .unwrap();
    for ordinal in 0..2 {
        let claim = format!("data-db-{ordinal}");
        assert_eq!(phase(&k, &["pvc", &claim]), "Bound", "{claim}");
        let volume = k
            .get_jsonpath(&["pvc", &claim], "{.spec.volumeName}")
            .trim()
            .to_owned();
        let pod_node = k
            .get_jsonpath(&["pod", &format!("db-{ordinal}")], "{.spec.nodeName}")
            .trim()
            .to_owned();
        let pinned = admin.get_jsonpath(
            &["pv", &volume],
            "{.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]}",
        );
        assert_eq!(pinned.trim(), pod_node, "{claim}");
    }
    // The recreated pod goes back to its volume's node.
    let before = k.get_jsonpath(&["pod", "db-0"], "{.spec.nodeName}");
    k.ok(&["delete", "pod", "db-0", "--wait=false"]).unwrap();
    wait_for_value("db-0 to come back", Duration::from_secs(60), || {
        let ready = k.get_jsonpath(
            &["pod", "db-0"],
            "{.metadata.deletionTimestamp}|{.status.conditions[?(@.type==\"Ready\")].status}",
        );
        (ready.trim() == "|True").then_some(())
    });
    assert_eq!(k.get_jsonpath(&["pod", "db-0"], "{.spec.nodeName}"), before);

    python_client_lists_claims(&cluster);
}

/// The official Python client lists the StatefulSet's claims (skips when it is missing).
fn python_client_lists_claims(cluster: &Cluster) {
    if !python_client_or_skip() {
        return;
    }
    let script = r#"
import sys
from kubernetes import client, config
config.load_kube_config(config_file=sys.argv[1])
core = client.CoreV1Api()
claims = core.list_namespaced_persistent_volume_claim("vols")
for c in sorted(claims.items, key=lambda c: c.metadata.name):
    print(c.metadata.name, c.status.phase, c.spec.storage_class_name)
classes = client.StorageV1Api().list_storage_class()
for s in classes.items:
    print("class", s.metadata.name, s.provisioner, s.volume_binding_mode)
"#;
    let stdout = run_python(script, &cluster.kubeconfig(), Duration::from_secs(60));
    assert_eq!(
        stdout,
        "data-db-0 Bound local-path\ndata-db-1 Bound local-path\n\
         class local-path tugboat.dev/local-path WaitForFirstConsumer\n"
    );
}

/// The issue's acceptance: a StatefulSet's claim keeps a file across its pod being deleted
/// and recreated, with real containers.
#[test]
fn a_statefulset_volume_outlives_its_pod_on_real_containers() {
    use tugboat_e2e::containers::{containers_or_skip, stop_and_reset};
    if kubectl_or_skip().is_none() || !containers_or_skip() {
        return;
    }
    let mut cluster = Cluster::start_containerd().unwrap();
    let admin = cluster.kubectl().unwrap();
    admin.ok(&["create", "namespace", "state"]).unwrap();
    let k = admin.namespace("state");
    k.apply(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 1
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      terminationGracePeriodSeconds: 0
      containers:
      - name: db
        image: busybox
        imagePullPolicy: IfNotPresent
        command:
        - sh
        - -c
        - |
          if [ -f /data/visits ]; then echo "found $(wc -l < /data/visits) earlier visit(s)"; else echo fresh; fi
          echo "visited by $(hostname)" >> /data/visits
          exec sleep 3600
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {storage: 64Mi}
"#,
    )
    .unwrap();
    k.ok(&["rollout", "status", "statefulset/db", "--timeout=120s"])
        .unwrap();
    assert_eq!(phase(&k, &["pvc", "data-db-0"]), "Bound");
    let first_uid = k.get_jsonpath(&["pod", "db-0"], "{.metadata.uid}");
    wait_for_value("the first run's log", Duration::from_secs(30), || {
        let logs = k.ok(&["logs", "db-0"]).ok()?;
        (logs == "fresh\n").then_some(())
    });
    assert_eq!(
        k.ok(&["exec", "db-0", "--", "cat", "/data/visits"])
            .unwrap(),
        "visited by db-0\n"
    );
    let volume = k
        .get_jsonpath(&["pvc", "data-db-0"], "{.spec.volumeName}")
        .trim()
        .to_owned();
    let on_host = cluster
        .data_dir()
        .join("storage")
        .join(&volume)
        .join("visits");
    assert_eq!(
        std::fs::read_to_string(&on_host).unwrap(),
        "visited by db-0\n"
    );

    k.ok(&["delete", "pod", "db-0", "--timeout=60s"]).unwrap();
    wait_for_value(
        "db-0 to be recreated and ready",
        Duration::from_secs(120),
        || {
            let uid = k.get_jsonpath(&["pod", "db-0"], "{.metadata.uid}");
            let ready = k.get_jsonpath(
                &["pod", "db-0"],
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            );
            (!uid.is_empty() && uid != first_uid && ready.trim() == "True").then_some(())
        },
    );
    wait_for_value("the second run's log", Duration::from_secs(30), || {
        let logs = k.ok(&["logs", "db-0"]).ok()?;
        (logs == "found 1 earlier visit(s)\n").then_some(())
    });
    assert_eq!(
        k.ok(&["exec", "db-0", "--", "cat", "/data/visits"])
            .unwrap(),
        "visited by db-0\nvisited by db-0\n"
    );
    stop_and_reset(&mut cluster).unwrap();
}
