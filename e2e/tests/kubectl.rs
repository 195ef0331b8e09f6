//! The real, unmodified kubectl against `tug up`, with default flags: what a user sees.
//!
//! All tests share one `tug up` per test process (see `tugboat_e2e::shared`) and each works in
//! its own namespace. Pods stay Pending and deployments get no ReplicaSets (no scheduler, node
//! agent or controllers yet): only API behaviour is checked.

// Helpers outside `#[test]` fns panic on failure too: this is a test crate.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tugboat_e2e::{Kubectl, kubectl_or_skip, shared};

/// kubectl on the shared cluster in a fresh namespace `e2e-<name>`, or `None` to skip.
fn setup(name: &str) -> Option<Kubectl> {
    kubectl_or_skip()?;
    let cluster = shared().unwrap();
    let kubectl = cluster.kubectl().unwrap();
    let namespace = format!("e2e-{name}");
    let out = kubectl.ok(&["create", "namespace", &namespace]).unwrap();
    assert_eq!(out.trim(), format!("namespace/{namespace} created"));
    Some(kubectl.namespace(&namespace))
}

fn deployment(name: &str, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: 1
  selector:
    matchLabels:
      app: {name}
  template:
    metadata:
      labels:
        app: {name}
    spec:
      containers:
      - name: {name}
        image: {image}
        ports:
        - containerPort: 80
"
    )
}

fn configmap(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  key: {value}
"
    )
}

fn jsonpath(kubectl: &Kubectl, what: &[&str], path: &str) -> String {
    let mut args = vec!["get"];
    args.extend(what);
    let template = format!("jsonpath={{{path}}}");
    args.extend(["-o", &template]);
    kubectl.ok(&args).unwrap()
}

/// The words of each line of a table.
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|line| line.split_whitespace().map(str::to_owned).collect())
        .collect()
}

#[test]
fn apply_creates_then_unchanged_then_configured() {
    let Some(k) = setup("apply") else { return };
    let out = k.apply(&deployment("web", "nginx:1.27")).unwrap();
    assert_eq!(out.trim(), "deployment.apps/web created");
    let out = k.apply(&deployment("web", "nginx:1.27")).unwrap();
    assert_eq!(out.trim(), "deployment.apps/web unchanged");
    let out = k.apply(&deployment("web", "nginx:1.28")).unwrap();
    assert_eq!(out.trim(), "deployment.apps/web configured");
    let image = jsonpath(
        &k,
        &["deployment", "web"],
        ".spec.template.spec.containers[0].image",
    );
    assert_eq!(image, "nginx:1.28");
    let last_applied = jsonpath(
        &k,
        &["deployment", "web"],
        ".metadata.annotations.kubectl\\.kubernetes\\.io/last-applied-configuration",
    );
    assert!(last_applied.contains("nginx:1.28"), "{last_applied}");
}

#[test]
fn apply_dry_run_server_changes_nothing() {
    let Some(k) = setup("dry-run") else { return };
    let out = k
        .ok_with_input(
            &["apply", "--dry-run=server", "-f", "-"],
            &configmap("ghost", "v1"),
        )
        .unwrap();
    assert_eq!(out.trim(), "configmap/ghost created (server dry run)");
    let err = k.fails(&["get", "configmap", "ghost"]).unwrap();
    assert!(err.contains("(NotFound)"), "{err}");

    k.apply(&configmap("real", "v1")).unwrap();
    let before = jsonpath(&k, &["configmap", "real"], ".metadata.resourceVersion");
    let out = k
        .ok_with_input(
            &["apply", "--dry-run=server", "-f", "-"],
            &configmap("real", "v2"),
        )
        .unwrap();
    assert_eq!(out.trim(), "configmap/real configured (server dry run)");
    assert_eq!(jsonpath(&k, &["configmap", "real"], ".data.key"), "v1");
    assert_eq!(
        jsonpath(&k, &["configmap", "real"], ".metadata.resourceVersion"),
        before
    );
}

#[test]
fn create_deployment_and_configmap_send_protobuf() {
    let Some(k) = setup("create") else { return };
    let out = k
        .ok(&[
            "create",
            "deployment",
            "web",
            "--image=nginx:1.27",
            "--replicas=2",
        ])
        .unwrap();
    assert_eq!(out.trim(), "deployment.apps/web created");
    let object = k.get_json(&["deployment", "web"]).unwrap();
    assert_eq!(object["spec"]["replicas"], 2);
    assert_eq!(object["spec"]["selector"]["matchLabels"]["app"], "web");
    assert_eq!(
        object["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    // Server-side defaults reached the object decoded from protobuf.
    assert_eq!(object["spec"]["strategy"]["type"], "RollingUpdate");
    assert_eq!(object["spec"]["revisionHistoryLimit"], 10);
    assert_eq!(object["metadata"]["generation"], 1);

    let out = k
        .ok(&[
            "create",
            "configmap",
            "settings",
            "--from-literal=color=blue",
            "--from-literal=size=10",
        ])
        .unwrap();
    assert_eq!(out.trim(), "configmap/settings created");
    let object = k.get_json(&["configmap", "settings"]).unwrap();
    assert_eq!(object["data"]["color"], "blue");
    assert_eq!(object["data"]["size"], "10");
}

#[test]
fn get_prints_wide_yaml_json_and_name() {
    let Some(k) = setup("get-output") else { return };
    k.apply(&deployment("web", "nginx:1.27")).unwrap();

    let table = k.ok(&["get", "deployments"]).unwrap();
    let table = rows(&table);
    assert_eq!(
        table[0],
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    // Simulated nodes run the pod at once: the row may already show it ready.
    assert_eq!(table[1][0], "web");
    assert!(
        ["0/1", "1/1"].contains(&table[1][1].as_str()),
        "{:?}",
        table[1]
    );

    let wide = k.ok(&["get", "deployments", "-o", "wide"]).unwrap();
    let wide = rows(&wide);
    assert_eq!(
        wide[0],
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert_eq!(wide[1][5..], ["web", "nginx:1.27", "app=web"]);

    let yaml = k.ok(&["get", "deployment", "web", "-o", "yaml"]).unwrap();
    assert!(yaml.starts_with("apiVersion: apps/v1\n"), "{yaml}");
    assert!(yaml.contains("\nkind: Deployment\n"), "{yaml}");
    assert!(yaml.contains("  name: web\n"), "{yaml}");
    assert!(yaml.contains("image: nginx:1.27"), "{yaml}");

    let json = k.get_json(&["deployment", "web"]).unwrap();
    assert_eq!(json["kind"], "Deployment");
    assert_eq!(json["apiVersion"], "apps/v1");
    assert!(
        json["metadata"]["uid"]
            .as_str()
            .is_some_and(|u| !u.is_empty())
    );

    let list = k.get_json(&["deployments"]).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"][0]["metadata"]["name"], "web");

    let names = k
        .ok(&["get", "deployments,configmaps", "-o", "name"])
        .unwrap();
    assert!(names.lines().any(|l| l == "deployment.apps/web"), "{names}");
    // Every namespace gets its root CA bundle? Not in Tugboat yet; only our deployment must be
    // there, with nothing but names.
    assert!(names.lines().all(|l| l.contains('/')), "{names}");
}

#[test]
fn get_watch_sees_an_update_arrive() {
    let Some(k) = setup("watch") else { return };
    k.apply(&configmap("watched", "v1")).unwrap();
    let mut child = k.spawn(&["get", "configmap", "watched", "-w"]).unwrap();
    let stdout = child.stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let next_line = |what: &str| -> String {
        lines
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("kubectl get -w printed no {what} within 20 s"))
    };
    assert_eq!(
        rows(&next_line("header"))[0],
        ["NAME", "DATA", "AGE"],
        "header"
    );
    assert_eq!(rows(&next_line("first row"))[0][..2], ["watched", "1"]);

    // Change the object: the watch must print it again with two data keys.
    k.ok(&[
        "patch",
        "configmap",
        "watched",
        "--type=merge",
        "-p",
        r#"{"data":{"second":"2"}}"#,
    ])
    .unwrap();
    let updated = next_line("update");
    assert_eq!(rows(&updated)[0][..2], ["watched", "2"], "{updated}");

    // Stop kubectl by its PID; the reader ends with its stdout.
    child.kill().unwrap();
    child.wait().unwrap();
    reader.join().unwrap();
}

#[test]
fn get_with_label_selectors_all_namespaces_and_show_labels() {
    let Some(k) = setup("labels") else { return };
    let other = k.namespace("e2e-labels-other");
    k.namespace("default")
        .ok(&["create", "namespace", "e2e-labels-other"])
        .unwrap();
    for (kubectl, name, labels) in [
        (&k, "web", "app=web,tier=front"),
        (&k, "db", "app=db"),
        (&k, "plain", ""),
        (&other, "cache", "app=web,tier=back"),
    ] {
        kubectl
            .ok(&["create", "configmap", name, "--from-literal=k=v"])
            .unwrap();
        if !labels.is_empty() {
            let mut args = vec!["label", "configmap", name];
            args.extend(labels.split(','));
            kubectl.ok(&args).unwrap();
        }
    }
    let names = |kubectl: &Kubectl, selector: &str| -> Vec<String> {
        let out = kubectl
            .ok(&["get", "configmaps", "-l", selector, "-o", "name"])
            .unwrap();
        out.lines().map(str::to_owned).collect()
    };
    assert_eq!(names(&k, "app=web"), ["configmap/web"]);
    assert_eq!(names(&k, "app==db"), ["configmap/db"]);
    assert_eq!(names(&k, "app!=web,app"), ["configmap/db"]);
    assert_eq!(names(&k, "app in (web,db),!tier"), ["configmap/db"]);
    // `notin` also matches objects without the key, as in Kubernetes (the namespace's own
    // kube-root-ca.crt has no labels).
    assert_eq!(
        names(&k, "app notin (web)"),
        [
            "configmap/db",
            "configmap/kube-root-ca.crt",
            "configmap/plain"
        ]
    );
    assert_eq!(
        names(&k, "!app"),
        ["configmap/kube-root-ca.crt", "configmap/plain"]
    );
    assert_eq!(names(&k, "tier"), ["configmap/web"]);

    let table = k.ok(&["get", "configmaps", "-A", "-l", "app=web"]).unwrap();
    let table = rows(&table);
    assert_eq!(table[0], ["NAMESPACE", "NAME", "DATA", "AGE"]);
    let found: Vec<(&str, &str)> = table[1..]
        .iter()
        .map(|row| (row[0].as_str(), row[1].as_str()))
        .collect();
    // Key order, as etcd gives it to kube-apiserver: "e2e-labels-other/" < "e2e-labels/".
    assert_eq!(
        found,
        [("e2e-labels-other", "cache"), ("e2e-labels", "web")]
    );

    let table = k
        .ok(&["get", "configmaps", "web", "--show-labels"])
        .unwrap();
    let table = rows(&table);
    assert_eq!(table[0], ["NAME", "DATA", "AGE", "LABELS"]);
    assert_eq!(table[1][0], "web");
    assert_eq!(table[1][3], "app=web,tier=front");

    // Every namespace shows up in -A for namespaced kinds with no selector too.
    let all = k.ok(&["get", "configmaps", "-A", "-o", "name"]).unwrap();
    assert!(all.lines().count() >= 4, "{all}");
}

#[test]
fn describe_shows_the_object() {
    let Some(k) = setup("describe") else { return };
    k.apply(&deployment("web", "nginx:1.27")).unwrap();
    let out = k.ok(&["describe", "deployment", "web"]).unwrap();
    for expected in [
        "Name:",
        "Namespace:              e2e-describe",
        "Selector:               app=web",
        "Replicas:               1 desired",
        "StrategyType:           RollingUpdate",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
        "Image:         nginx:1.27",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }

    k.ok(&["run", "lonely", "--image=busybox", "--restart=Never"])
        .unwrap();
    let out = k.ok(&["describe", "pod", "lonely"]).unwrap();
    for expected in ["Name:", "lonely", "Status:", "Image:", "busybox"] {
        assert!(out.contains(expected), "missing {expected:?} in:\n{out}");
    }
    assert!(
        out.contains("Pending") || out.contains("Running"),
        "no phase in:\n{out}"
    );

    k.apply(&configmap("settings", "blue")).unwrap();
    let out = k.ok(&["describe", "configmap", "settings"]).unwrap();
    assert!(out.contains("key:\n----\nblue"), "{out}");
}

#[test]
fn label_and_annotate() {
    let Some(k) = setup("label") else { return };
    k.apply(&configmap("tagged", "v")).unwrap();
    let out = k.ok(&["label", "configmap", "tagged", "env=prod"]).unwrap();
    assert_eq!(out.trim(), "configmap/tagged labeled");
    assert_eq!(
        jsonpath(&k, &["configmap", "tagged"], ".metadata.labels.env"),
        "prod"
    );
    // Changing a label needs --overwrite, as in Kubernetes.
    let err = k
        .fails(&["label", "configmap", "tagged", "env=dev"])
        .unwrap();
    assert!(err.contains("already has a value (prod)"), "{err}");
    k.ok(&["label", "--overwrite", "configmap", "tagged", "env=dev"])
        .unwrap();
    assert_eq!(
        jsonpath(&k, &["configmap", "tagged"], ".metadata.labels.env"),
        "dev"
    );
    let out = k.ok(&["label", "configmap", "tagged", "env-"]).unwrap();
    assert_eq!(out.trim(), "configmap/tagged unlabeled");
    assert_eq!(
        jsonpath(&k, &["configmap", "tagged"], ".metadata.labels.env"),
        ""
    );

    let out = k
        .ok(&["annotate", "configmap", "tagged", "owner=team-a"])
        .unwrap();
    assert_eq!(out.trim(), "configmap/tagged annotated");
    assert_eq!(
        jsonpath(&k, &["configmap", "tagged"], ".metadata.annotations.owner"),
        "team-a"
    );
}

#[test]
fn scale_uses_the_scale_subresource() {
    let Some(k) = setup("scale") else { return };
    k.apply(&deployment("web", "nginx:1.27")).unwrap();
    let out = k
        .ok(&["scale", "deployment", "web", "--replicas=3"])
        .unwrap();
    assert_eq!(out.trim(), "deployment.apps/web scaled");
    assert_eq!(jsonpath(&k, &["deployment", "web"], ".spec.replicas"), "3");
    // A precondition on the current size: kubectl reads the Scale first and refuses.
    let err = k
        .fails(&[
            "scale",
            "deployment",
            "web",
            "--current-replicas=1",
            "--replicas=5",
        ])
        .unwrap();
    assert!(err.contains("Expected replicas to be 1, was 3"), "{err}");
    assert_eq!(jsonpath(&k, &["deployment", "web"], ".spec.replicas"), "3");
}

#[test]
fn set_image_and_rollout_restart() {
    let Some(k) = setup("set-image") else { return };
    k.apply(&deployment("web", "nginx:1.27")).unwrap();
    let out = k
        .ok(&["set", "image", "deployment/web", "web=nginx:1.28"])
        .unwrap();
    assert_eq!(out.trim(), "deployment.apps/web image updated");
    let object = k.get_json(&["deployment", "web"]).unwrap();
    let containers = &object["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["image"], "nginx:1.28");
    assert_eq!(containers.as_array().map(Vec::len), Some(1));
    assert_eq!(containers[0]["ports"][0]["containerPort"], 80);
    assert_eq!(object["metadata"]["generation"], 2);

    let out = k.ok(&["rollout", "restart", "deployment/web"]).unwrap();
    assert_eq!(out.trim(), "deployment.apps/web restarted");
    let restarted = jsonpath(
        &k,
        &["deployment", "web"],
        ".spec.template.metadata.annotations.kubectl\\.kubernetes\\.io/restartedAt",
    );
    assert!(!restarted.is_empty(), "no restartedAt annotation");
}

#[test]
fn edit_with_a_scripted_editor() {
    let Some(k) = setup("edit") else { return };
    k.apply(&configmap("edited", "before")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let editor = dir.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nsed -i 's/key: before/key: after/' \"$1\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&editor, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = k
        .env("EDITOR", &editor)
        .ok(&["edit", "configmap", "edited"])
        .unwrap();
    assert_eq!(out.trim(), "configmap/edited edited");
    assert_eq!(jsonpath(&k, &["configmap", "edited"], ".data.key"), "after");

    // An editor that changes nothing: kubectl says so and sends nothing.
    let output = k
        .env("EDITOR", "true")
        .run(&["edit", "configmap", "edited"])
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr).trim(),
        "Edit cancelled, no changes made."
    );
}

#[test]
fn delete_and_delete_wait_complete() {
    let Some(k) = setup("delete") else { return };
    k.apply(&configmap("doomed", "v")).unwrap();
    k.apply(&configmap("doomed-too", "v")).unwrap();
    k.apply(&deployment("web", "nginx:1.27")).unwrap();

    let started = Instant::now();
    let out = k.ok(&["delete", "configmap", "doomed"]).unwrap();
    assert_eq!(out.trim(), "configmap \"doomed\" deleted");
    let out = k
        .ok(&["delete", "configmap", "doomed-too", "--wait"])
        .unwrap();
    assert_eq!(out.trim(), "configmap \"doomed-too\" deleted");
    let out = k.ok(&["delete", "deployment", "web", "--wait"]).unwrap();
    assert_eq!(out.trim(), "deployment.apps \"web\" deleted");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "deletes took {:?}",
        started.elapsed()
    );
    for what in [
        ["configmap", "doomed"],
        ["configmap", "doomed-too"],
        ["deployment", "web"],
    ] {
        let err = k.fails(&["get", what[0], what[1]]).unwrap();
        assert!(err.contains("Error from server (NotFound)"), "{err}");
    }
}

#[test]
fn explain_shows_field_docs() {
    let Some(k) = setup("explain") else { return };
    let out = k.ok(&["explain", "deployment.spec.strategy"]).unwrap();
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(
        out.contains("FIELD: strategy <DeploymentStrategy>"),
        "{out}"
    );
    assert!(out.contains("rollingUpdate"), "{out}");
}

#[test]
fn api_resources_lists_the_served_kinds() {
    let Some(k) = setup("api-resources") else {
        return;
    };
    let out = k.ok(&["api-resources"]).unwrap();
    let table = rows(&out);
    assert_eq!(
        table[0],
        ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    );
    for expected in [
        ["pods", "po", "v1", "true", "Pod"],
        ["services", "svc", "v1", "true", "Service"],
        ["configmaps", "cm", "v1", "true", "ConfigMap"],
        ["namespaces", "ns", "v1", "false", "Namespace"],
        ["nodes", "no", "v1", "false", "Node"],
        ["deployments", "deploy", "apps/v1", "true", "Deployment"],
        ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"],
        [
            "horizontalpodautoscalers",
            "hpa",
            "autoscaling/v2",
            "true",
            "HorizontalPodAutoscaler",
        ],
    ] {
        assert!(
            table.iter().any(|row| row == &expected),
            "no row {expected:?} in:\n{out}"
        );
    }
    let apps = k
        .ok(&["api-resources", "--api-group=apps", "-o", "name"])
        .unwrap();
    let apps: Vec<&str> = apps.lines().collect();
    for expected in [
        "controllerrevisions.apps",
        "deployments.apps",
        "replicasets.apps",
    ] {
        assert!(apps.contains(&expected), "no {expected} in {apps:?}");
    }
    assert!(apps.iter().all(|name| name.ends_with(".apps")), "{apps:?}");
}

#[test]
fn version_reports_server_1_32() {
    let Some(k) = setup("version") else { return };
    let out = k.ok(&["version"]).unwrap();
    let server = out
        .lines()
        .find_map(|l| l.strip_prefix("Server Version: "))
        .unwrap_or_else(|| panic!("no server version in:\n{out}"));
    assert!(server.starts_with("v1.32."), "{out}");
    let json: serde_json::Value =
        serde_json::from_str(&k.ok(&["version", "-o", "json"]).unwrap()).unwrap();
    assert_eq!(json["serverVersion"]["major"], "1");
    assert_eq!(json["serverVersion"]["minor"], "32");
}

#[test]
fn get_missing_object_is_not_found() {
    let Some(k) = setup("not-found") else { return };
    let err = k.fails(&["get", "configmap", "missing"]).unwrap();
    assert_eq!(
        err.trim(),
        "Error from server (NotFound): configmaps \"missing\" not found"
    );
    let err = k.fails(&["get", "deployment", "missing"]).unwrap();
    assert_eq!(
        err.trim(),
        "Error from server (NotFound): deployments.apps \"missing\" not found"
    );
}

#[test]
fn apply_rejects_an_unknown_field_naming_it() {
    let Some(k) = setup("unknown-field") else {
        return;
    };
    let manifest = deployment("web", "nginx:1.27").replace("  replicas: 1", "  replicaz: 1");
    let err = k
        .fails_with_input(&["apply", "-f", "-"], &manifest)
        .unwrap();
    assert!(err.contains("Error from server (BadRequest)"), "{err}");
    assert!(err.contains("unknown field \"spec.replicaz\""), "{err}");
    let err = k.fails(&["get", "deployment", "web"]).unwrap();
    assert!(err.contains("(NotFound)"), "{err}");
}

#[test]
fn replace_with_a_stale_object_conflicts() {
    let Some(k) = setup("conflict") else { return };
    k.apply(&configmap("contended", "v1")).unwrap();
    let stale = k
        .ok(&["get", "configmap", "contended", "-o", "yaml"])
        .unwrap();
    k.ok(&["label", "configmap", "contended", "touched=yes"])
        .unwrap();
    let edited = stale.replace("key: v1", "key: v2");
    let err = k
        .fails_with_input(&["replace", "-f", "-"], &edited)
        .unwrap();
    assert!(err.contains("Error from server (Conflict)"), "{err}");
    assert!(
        err.contains("the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );
    assert_eq!(jsonpath(&k, &["configmap", "contended"], ".data.key"), "v1");
}
