//! Pods and their service accounts with the real kubectl: ServiceAccount admission (the
//! default account, a missing one refused, `automountServiceAccountToken: false`), the
//! projected `kube-api-access-XXXXX` volume and the `kube-root-ca.crt` ConfigMap, and the node
//! agent writing a token bound to the pod that authenticates as the pod's account
//! (TokenReview) until the pod is gone.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use tugboat_e2e::containers::{containers_or_skip, wait_for};
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// Whom `token` authenticates as, by TokenReview (`kubectl create -f`); empty when nobody.
fn review(admin: &Kubectl, token: &str) -> String {
    let review = format!(
        "{{\"apiVersion\": \"authentication.k8s.io/v1\", \"kind\": \"TokenReview\", \"spec\": {{\"token\": \"{token}\"}}}}"
    );
    admin
        .ok_with_input(
            &[
                "create",
                "-f",
                "-",
                "-o",
                "jsonpath={.status.user.username}",
            ],
            &review,
        )
        .unwrap()
}

/// The file `name` in the volume `volume` of the pod `uid` under the agent's data dir.
fn volume_file(root: &Path, uid: &str, volume: &str, name: &str) -> Option<PathBuf> {
    let mut dirs = vec![(root.to_path_buf(), 0)];
    while let Some((dir, depth)) = dirs.pop() {
        let candidate = dir
            .join("pods")
            .join(uid)
            .join("volumes")
            .join(volume)
            .join(name);
        if candidate.is_file() {
            return Some(candidate);
        }
        if depth < 4 {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    dirs.push((entry.path(), depth + 1));
                }
            }
        }
    }
    None
}

#[test]
fn pods_run_as_their_service_account_with_a_mounted_token() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start().unwrap();
    let admin = cluster.kubectl().unwrap();
    admin.ok(&["create", "namespace", "sa"]).unwrap();
    let k = admin.namespace("sa");

    // Every namespace has the cluster CA.
    let ca = std::fs::read_to_string(cluster.data_dir().join("pki/ca.crt")).unwrap();
    wait_for("kube-root-ca.crt", Duration::from_secs(10), || {
        k.run(&["get", "configmap", "kube-root-ca.crt"])
            .is_ok_and(|o| o.status.success())
    });
    let published = k
        .ok(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-o",
            r"jsonpath={.data.ca\.crt}",
        ])
        .unwrap();
    assert_eq!(published.trim(), ca.trim());

    k.ok(&["run", "web", "--image=busybox"]).unwrap();
    let account = k.get_jsonpath(&["pod", "web"], "{.spec.serviceAccountName}");
    assert_eq!(account, "default");
    let volume = k.get_jsonpath(&["pod", "web"], "{.spec.volumes[0].name}");
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    assert_eq!(volume.len(), "kube-api-access-".len() + 5, "{volume}");
    let sources = k.get_jsonpath(
        &["pod", "web"],
        "{.spec.volumes[0].projected.sources[0].serviceAccountToken.expirationSeconds} {.spec.volumes[0].projected.sources[1].configMap.name} {.spec.volumes[0].projected.sources[2].downwardAPI.items[0].fieldRef.fieldPath}",
    );
    assert_eq!(sources, "3607 kube-root-ca.crt metadata.namespace");
    let mount = k.get_jsonpath(
        &["pod", "web"],
        "{.spec.containers[0].volumeMounts[0].mountPath} {.spec.containers[0].volumeMounts[0].readOnly}",
    );
    assert_eq!(mount, format!("{MOUNT_PATH} true"));

    // The node agent wrote a token bound to the pod: it is the pod's service account.
    k.ok(&["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"])
        .unwrap();
    let uid = k.get_jsonpath(&["pod", "web"], "{.metadata.uid}");
    let token_file = volume_file(&cluster.data_dir(), &uid, &volume, "token")
        .unwrap_or_else(|| panic!("no token file for pod {uid} under {:?}", cluster.data_dir()));
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    assert_eq!(review(&admin, &token), "system:serviceaccount:sa:default");
    let dir = token_file.parent().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("namespace")).unwrap(),
        "sa"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("ca.crt")).unwrap().trim(),
        ca.trim()
    );
    // Deleting the pod kills its token.
    k.ok(&["delete", "pod", "web", "--wait=true", "--timeout=60s"])
        .unwrap();
    wait_for(
        "the token to die with its pod",
        Duration::from_secs(20),
        || review(&admin, &token).is_empty(),
    );

    // A missing account is refused in upstream's words; automounting can be turned off.
    let refused = k
        .fails_with_input(
            &["create", "-f", "-"],
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ghostly"},
                "spec": {"serviceAccountName": "ghost", "containers": [{"name": "c", "image": "busybox"}]}}"#,
        )
        .unwrap();
    assert_eq!(
        refused.trim(),
        r#"Error from server (Forbidden): error when creating "STDIN": pods "ghostly" is forbidden: error looking up service account sa/ghost: serviceaccount "ghost" not found"#
    );
    k.ok_with_input(
        &["create", "-f", "-"],
        r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "quiet"},
            "spec": {"automountServiceAccountToken": false, "containers": [{"name": "c", "image": "busybox"}]}}"#,
    )
    .unwrap();
    assert_eq!(k.get_jsonpath(&["pod", "quiet"], "{.spec.volumes}"), "");
}

#[test]
fn a_busybox_pod_reads_its_service_account_token_on_real_containers() {
    if kubectl_or_skip().is_none() || !containers_or_skip() {
        return;
    }
    let mut cluster = Cluster::start_containerd().unwrap();
    let admin = cluster.kubectl().unwrap();
    admin.ok(&["create", "namespace", "sa-real"]).unwrap();
    let k = admin.namespace("sa-real");
    k.ok(&["create", "serviceaccount", "robot"]).unwrap();
    k.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata:
  name: reader
spec:
  serviceAccountName: robot
  restartPolicy: Never
  containers:
  - name: reader
    image: busybox
    imagePullPolicy: IfNotPresent
    command: ["sh", "-c", "cat {MOUNT_PATH}/namespace; echo; cat {MOUNT_PATH}/token; echo; head -1 {MOUNT_PATH}/ca.crt; touch {MOUNT_PATH}/x 2>/dev/null || echo read-only"]
"#
    ))
    .unwrap();
    wait_for("the reader to finish", Duration::from_secs(90), || {
        k.get_jsonpath(&["pod", "reader"], "{.status.phase}") == "Succeeded"
    });
    let logs = k.ok(&["logs", "reader"]).unwrap();
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 4, "{logs}");
    assert_eq!(lines[0], "sa-real");
    assert_eq!(lines[1].split('.').count(), 3, "not a JWT: {logs}");
    assert_eq!(lines[2], "-----BEGIN CERTIFICATE-----");
    assert_eq!(lines[3], "read-only");
    assert_eq!(
        review(&admin, lines[1]),
        "system:serviceaccount:sa-real:robot"
    );
    tugboat_e2e::containers::stop_and_reset(&mut cluster).unwrap();
}
