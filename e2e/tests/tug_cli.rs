//! The `tug` CLI (the real binary) against `tug up --runtime sim`: what a user types and sees.
//!
//! All tests share one cluster per test process (`tugboat_e2e::shared`); each works in its own
//! namespace, created with `tug apply`. Outputs are compared as whole strings where they are
//! stable (no ages, no generated names).

// Helpers outside `#[test]` fns panic on failure too: this is a test crate.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tugboat_e2e::{TugCli, kubectl_or_skip, shared, tug_binary};

/// `tug` on the shared cluster in a fresh namespace `tug-<name>`.
fn setup(name: &str) -> TugCli {
    let tug = shared().unwrap().tug().unwrap();
    let namespace = format!("tug-{name}");
    let out = tug
        .apply(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n"
        ))
        .unwrap();
    assert_eq!(out, format!("namespace/{namespace} created\n"));
    tug.namespace(&namespace)
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failed command: exit code 1 (kubectl's), and its stderr.
fn fails(tug: &TugCli, args: &[&str]) -> String {
    let output = tug.run(args).unwrap();
    assert_eq!(
        output.status.code(),
        Some(1),
        "tug {args:?} should fail with 1:\nstdout:\n{}\nstderr:\n{}",
        stdout(&output),
        stderr(&output)
    );
    stderr(&output)
}

fn deployment(name: &str, image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels:
    app: {name}
spec:
  replicas: {replicas}
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
        env:
        - name: MODE
          value: one
"
    )
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1
kind: Service
metadata:
  name: {name}
spec:
  selector:
    app: {name}
  ports:
  - port: 80
    targetPort: 8080
"
    )
}

#[test]
fn apply_get_describe_delete() {
    let tug = setup("journey");
    let manifest = format!("{}---\n{}", deployment("web", "busybox", 2), service("web"));
    assert_eq!(
        tug.apply(&manifest).unwrap(),
        "deployment.apps/web created\nservice/web created\n"
    );
    assert_eq!(
        tug.apply(&manifest).unwrap(),
        "deployment.apps/web unchanged\nservice/web unchanged\n"
    );
    let changed = deployment("web", "busybox", 3);
    // --wait follows the rollout with its progress (beyond kubectl).
    let waited = tug
        .run_with_input(
            &["apply", "-f", "-", "--wait", "--timeout", "60s"],
            &changed,
        )
        .unwrap();
    let out = stdout(&waited);
    assert!(waited.status.success(), "{out}{}", stderr(&waited));
    assert!(out.starts_with("deployment.apps/web configured\n"), "{out}");
    assert!(
        out.ends_with("deployment \"web\" successfully rolled out\n"),
        "{out}"
    );

    let status = tug
        .ok(&["rollout", "status", "deployment/web", "--timeout", "60s"])
        .unwrap();
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );

    // Server-side tables, as kubectl prints them.
    let table = tug.ok(&["get", "deployments"]).unwrap();
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some("NAME   READY   UP-TO-DATE   AVAILABLE   AGE"),
        "{table}"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("web    3/3     3            3           ")
    );
    let wide = tug.ok(&["get", "deploy", "web", "-o", "wide"]).unwrap();
    assert!(
        wide.starts_with(
            "NAME   READY   UP-TO-DATE   AVAILABLE   AGE   CONTAINERS   IMAGES    SELECTOR\n"
        ),
        "{wide}"
    );
    let both = tug.ok(&["get", "deploy,svc", "-o", "name"]).unwrap();
    assert_eq!(both, "deployment.apps/web\nservice/web\n");
    let several = tug.ok(&["get", "deploy,svc"]).unwrap();
    assert!(several.contains("\ndeployment.apps/web   3/3"), "{several}");
    assert!(
        several.contains("\n\nNAME          TYPE        CLUSTER-IP"),
        "{several}"
    );
    let names = tug
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].image}{\"\\n\"}{end}",
        ])
        .unwrap();
    assert_eq!(names, "busybox\nbusybox\nbusybox\n");
    // The `all` category, as kubectl prints it: one table per type, names prefixed.
    let all = tug.ok(&["get", "all"]).unwrap();
    for expected in [
        "\npod/web-",
        "\nservice/web ",
        "\ndeployment.apps/web ",
        "\nreplicaset.apps/web-",
    ] {
        assert!(all.contains(expected), "{expected:?} in:\n{all}");
    }
    let labels = tug.ok(&["get", "deploy", "--show-labels"]).unwrap();
    assert!(
        labels.lines().next().unwrap().ends_with("LABELS"),
        "{labels}"
    );
    assert!(labels.contains("app=web"), "{labels}");
    let yaml = tug.ok(&["get", "svc", "web", "-o", "yaml"]).unwrap();
    assert!(yaml.contains("kind: Service\n"), "{yaml}");
    assert!(
        yaml.contains("kubectl.kubernetes.io/last-applied-configuration"),
        "{yaml}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&tug.ok(&["get", "deploy", "-o", "json"]).unwrap()).unwrap();
    assert_eq!(json["kind"], "List");
    assert_eq!(json["items"][0]["kind"], "Deployment");
    let columns = tug
        .ok(&[
            "get",
            "deploy",
            "-o",
            "custom-columns=NAME:.metadata.name,REPLICAS:.spec.replicas",
        ])
        .unwrap();
    assert_eq!(columns, "NAME   REPLICAS\nweb    3\n");
    let everywhere = tug.ok(&["get", "deploy", "-A"]).unwrap();
    assert!(everywhere.starts_with("NAMESPACE   "), "{everywhere}");
    assert!(everywhere.contains("tug-journey   web"), "{everywhere}");

    // describe: kubectl's layout, with events.
    let describe = tug.ok(&["describe", "deployment", "web"]).unwrap();
    assert!(
        describe.starts_with("Name:                   web\nNamespace:              tug-journey\n"),
        "{describe}"
    );
    assert!(describe.contains("\nReplicas:               3 desired | 3 updated | 3 total | 3 available | 0 unavailable\n"), "{describe}");
    assert!(describe.contains("\nNewReplicaSet:   web-"), "{describe}");
    let pod = tug.ok(&["get", "pods", "-o", "name"]).unwrap();
    let pod = pod.lines().next().unwrap();
    let describe = tug.ok(&["describe", pod]).unwrap();
    assert!(
        describe.contains("\nStatus:           Running\n"),
        "{describe}"
    );
    assert!(
        describe.contains("\nEvents:\n  Type    Reason"),
        "{describe}"
    );
    assert!(describe.contains("Started container web"), "{describe}");
    let describe = tug.ok(&["describe", "svc", "web"]).unwrap();
    assert!(
        describe.contains("\nTargetPort:        8080/TCP\n"),
        "{describe}"
    );
    let node = tug.ok(&["get", "nodes", "-o", "name"]).unwrap();
    let describe = tug.ok(&["describe", node.lines().next().unwrap()]).unwrap();
    assert!(
        describe.contains("\nCapacity:\n  cpu:     16\n"),
        "{describe}"
    );

    // delete waits until the objects are gone.
    let deleted = tug
        .run_with_input(&["delete", "-f", "-"], &manifest)
        .unwrap();
    assert_eq!(
        stdout(&deleted),
        "deployment.apps \"web\" deleted\nservice \"web\" deleted\n"
    );
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let missing = fails(&tug, &["get", "deployment", "web"]);
    assert_eq!(
        missing,
        "Error from server (NotFound): deployments.apps \"web\" not found\n"
    );
    let output = tug.run(&["get", "deployments"]).unwrap();
    assert!(output.status.success());
    assert_eq!(stdout(&output), "");
    assert_eq!(
        stderr(&output),
        "No resources found in tug-journey namespace.\n"
    );
}

#[test]
fn apply_directory_dry_run_and_create() {
    let tug = setup("files");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("a-deploy.yaml"),
        deployment("api", "busybox", 1),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("nested")).unwrap();
    std::fs::write(dir.path().join("nested").join("svc.yml"), service("api")).unwrap();
    std::fs::write(dir.path().join("README.md"), "not a manifest").unwrap();
    let path = dir.path().to_str().unwrap();

    let dry = tug.ok(&["apply", "-f", path, "--dry-run=client"]).unwrap();
    assert_eq!(dry, "deployment.apps/api created (dry run)\n");
    let server = tug
        .ok(&["apply", "-R", "-f", path, "--dry-run=server"])
        .unwrap();
    assert_eq!(
        server,
        "deployment.apps/api created (server dry run)\nservice/api created (server dry run)\n"
    );
    fails(&tug, &["get", "deployment", "api"]);
    let applied = tug.ok(&["apply", "-R", "-f", path]).unwrap();
    assert_eq!(
        applied,
        "deployment.apps/api created\nservice/api created\n"
    );

    let again = tug
        .run_with_input(&["create", "-f", "-"], &service("api"))
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        stderr(&again),
        "Error from server (AlreadyExists): error when creating \"STDIN\": services \"api\" already exists\n"
    );
    let created = tug
        .run_with_input(&["create", "-f", "-"], &service("other"))
        .unwrap();
    assert_eq!(stdout(&created), "service/other created\n");
    let gone = tug
        .ok(&["delete", "svc", "-l", "app!=nothing", "--all"])
        .unwrap();
    assert!(gone.contains("service \"api\" deleted\n"), "{gone}");
    assert!(gone.contains("service \"other\" deleted\n"), "{gone}");
}

#[test]
fn kubectl_and_tug_apply_the_same_objects() {
    let Some(_) = kubectl_or_skip() else { return };
    let cluster = shared().unwrap();
    let tug = setup("interop");
    let kubectl = cluster.kubectl().unwrap().namespace("tug-interop");
    let manifest = format!(
        "{}---\n{}",
        deployment("both", "busybox", 1),
        service("both")
    );

    let out = kubectl.apply(&manifest).unwrap();
    assert_eq!(out, "deployment.apps/both created\nservice/both created\n");
    assert_eq!(
        tug.apply(&manifest).unwrap(),
        "deployment.apps/both unchanged\nservice/both unchanged\n"
    );
    // A change applied by tug (a field removed, one changed) is seen by kubectl as its own.
    let changed = deployment("both", "busybox:1.36", 2).replace(
        "        env:\n        - name: MODE\n          value: one\n",
        "",
    );
    assert_eq!(
        tug.apply(&changed).unwrap(),
        "deployment.apps/both configured\n"
    );
    let env = tug
        .ok(&[
            "get",
            "deploy",
            "both",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env}",
        ])
        .unwrap();
    assert_eq!(env, "", "the removed env must be gone");
    assert_eq!(
        kubectl.apply(&changed).unwrap(),
        "deployment.apps/both unchanged\n"
    );
    let back = deployment("both", "busybox", 1);
    assert_eq!(
        kubectl.apply(&back).unwrap(),
        "deployment.apps/both configured\n"
    );
    assert_eq!(
        tug.apply(&back).unwrap(),
        "deployment.apps/both unchanged\n"
    );
}

#[test]
fn error_paths_are_kubectls() {
    let tug = setup("errors");
    assert_eq!(
        fails(&tug, &["apply", "-f", "/nonexistent/web.yaml"]),
        "error: the path \"/nonexistent/web.yaml\" does not exist\n"
    );
    let bad = tug
        .run_with_input(
            &["apply", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {a: b\n",
        )
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let message = stderr(&bad);
    assert!(
        message.starts_with("error: error parsing STDIN: yaml: line "),
        "{message}"
    );
    assert_eq!(
        fails(&tug, &["get", "foos"]),
        "error: the server doesn't have a resource type \"foos\"\n"
    );
    assert_eq!(
        fails(&tug, &["delete", "deployment", "nope"]),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
    assert_eq!(
        fails(&tug, &["describe", "pod", "nope"]),
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let unknown_kind = tug
        .run_with_input(
            &["apply", "-f", "-"],
            "apiVersion: example.com/v1\nkind: Foo\nmetadata:\n  name: x\n",
        )
        .unwrap();
    assert_eq!(unknown_kind.status.code(), Some(1));
    assert!(
        stderr(&unknown_kind).contains("no matches for kind \"Foo\" in version \"example.com/v1\""),
        "{}",
        stderr(&unknown_kind)
    );
    // Usage errors are clap's (exit 2), as for every tug command.
    let usage = tug.run(&["get", "--no-such-flag"]).unwrap();
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn no_cluster_names_the_fix() {
    let cluster = shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = tugboat_testkit::net::free_port().unwrap();
    let kubeconfig = std::fs::read_to_string(cluster.kubeconfig())
        .unwrap()
        .replace(&cluster.url(), &format!("https://127.0.0.1:{port}"));
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, kubeconfig).unwrap();
    let tug = TugCli::new(path).unwrap();
    assert_eq!(
        fails(&tug, &["get", "pods"]),
        format!("error: no cluster at https://127.0.0.1:{port}: start one with tug up\n")
    );
}

/// `tug` without `--kubeconfig`, with `HOME` and `KUBECONFIG` as given.
fn bare_tug(home: &std::path::Path, kubeconfig: Option<&std::path::Path>, args: &[&str]) -> Output {
    let mut command = Command::new(tug_binary().unwrap());
    command.args(args).env("HOME", home).env_remove("TUG_LOG");
    match kubeconfig {
        Some(path) => command.env("KUBECONFIG", path),
        None => command.env_remove("KUBECONFIG"),
    };
    tugboat_e2e::process::run_bounded(&mut command, None, Duration::from_secs(60)).unwrap()
}

#[test]
fn kubeconfig_is_found_as_kubectl_finds_it() {
    let cluster = shared().unwrap();
    let home = tempfile::tempdir().unwrap();
    // $KUBECONFIG, with a missing file in the list skipped as kubectl does.
    let list = std::env::join_paths([home.path().join("missing"), cluster.kubeconfig()]).unwrap();
    let output = bare_tug(
        home.path(),
        Some(std::path::Path::new(&list)),
        &["get", "ns", "default", "-o", "name"],
    );
    assert_eq!(
        stdout(&output),
        "namespace/default\n",
        "{}",
        stderr(&output)
    );
    // ~/.kube/config.
    std::fs::create_dir(home.path().join(".kube")).unwrap();
    std::fs::copy(
        cluster.kubeconfig(),
        home.path().join(".kube").join("config"),
    )
    .unwrap();
    let output = bare_tug(home.path(), None, &["config", "current-context"]);
    assert_eq!(stdout(&output), "tugboat\n", "{}", stderr(&output));
    let output = bare_tug(home.path(), None, &["get", "ns", "default", "-o", "name"]);
    assert_eq!(
        stdout(&output),
        "namespace/default\n",
        "{}",
        stderr(&output)
    );
    // Nothing anywhere (and no default tug up data dir here): the fix is named.
    let empty = tempfile::tempdir().unwrap();
    if !std::path::Path::new("/var/lib/tugboat/kubeconfig").exists() {
        let output = bare_tug(empty.path(), None, &["get", "pods"]);
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains("start a cluster with tug up, or pass --kubeconfig"),
            "{}",
            stderr(&output)
        );
    }
}

#[test]
fn config_commands() {
    let cluster = shared().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config");
    let mut doc: serde_json::Value =
        serde_yaml::from_str(&std::fs::read_to_string(cluster.kubeconfig()).unwrap()).unwrap();
    // A second context on the same cluster and user, in namespace "other".
    let mut second = doc["contexts"][0].clone();
    second["name"] = "second".into();
    second["context"]["namespace"] = "other".into();
    doc["contexts"].as_array_mut().unwrap().push(second);
    std::fs::write(&path, serde_json::to_string(&doc).unwrap()).unwrap();
    let tug = TugCli::new(path.clone()).unwrap();
    let contexts = tug.ok(&["config", "get-contexts"]).unwrap();
    assert_eq!(
        contexts,
        "CURRENT   NAME      CLUSTER   AUTHINFO   NAMESPACE\n*         tugboat   tugboat   admin      default\n          second    tugboat   admin      other\n"
    );
    assert_eq!(
        tug.ok(&["config", "use-context", "second"]).unwrap(),
        "Switched to context \"second\".\n"
    );
    assert_eq!(tug.ok(&["config", "current-context"]).unwrap(), "second\n");
    let output = tug.run(&["get", "pods"]).unwrap();
    assert_eq!(stderr(&output), "No resources found in other namespace.\n");
    let view = tug.ok(&["config", "view"]).unwrap();
    assert!(
        view.contains("certificate-authority-data: DATA+OMITTED"),
        "{view}"
    );
    assert!(view.contains("token: REDACTED"), "{view}");
    assert_eq!(
        fails(&tug, &["--context", "nope", "get", "pods"]),
        "error: context \"nope\" does not exist\n"
    );
}

#[test]
fn rollout_history_undo_restart_pause() {
    let tug = setup("rollout");
    tug.apply(&deployment("app", "busybox", 2)).unwrap();
    tug.ok(&["rollout", "status", "deploy/app", "--timeout", "60s"])
        .unwrap();
    assert_eq!(
        tug.ok(&["set", "image", "deployment/app", "app=busybox:1.36"])
            .unwrap(),
        "deployment.apps/app image updated\n"
    );
    let status = tug
        .ok(&["rollout", "status", "deployment", "app", "--timeout", "60s"])
        .unwrap();
    assert!(
        status.ends_with("deployment \"app\" successfully rolled out\n"),
        "{status}"
    );
    // Beyond kubectl: the progress line names the desired/updated/ready/available counts.
    let history = tug.ok(&["rollout", "history", "deploy/app"]).unwrap();
    assert_eq!(
        history,
        "deployment.apps/app \nREVISION  CHANGE-CAUSE\n1         <none>\n2         <none>\n\n"
    );
    assert_eq!(
        tug.ok(&["rollout", "undo", "deploy/app"]).unwrap(),
        "deployment.apps/app rolled back\n"
    );
    tug.ok(&["rollout", "status", "deploy/app", "--timeout", "60s"])
        .unwrap();
    let image = tug
        .ok(&[
            "get",
            "deploy",
            "app",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ])
        .unwrap();
    assert_eq!(image, "busybox");
    assert_eq!(
        fails(&tug, &["rollout", "undo", "deploy/app", "--to-revision=9"]),
        "error: unable to find specified revision 9 in history\n"
    );
    assert_eq!(
        tug.ok(&["rollout", "pause", "deploy/app"]).unwrap(),
        "deployment.apps/app paused\n"
    );
    assert_eq!(
        fails(&tug, &["rollout", "pause", "deploy/app"]),
        "error: deployments.apps \"app\" is already paused\n"
    );
    assert_eq!(
        tug.ok(&["rollout", "resume", "deploy/app"]).unwrap(),
        "deployment.apps/app resumed\n"
    );
    assert_eq!(
        tug.ok(&["rollout", "restart", "deploy/app"]).unwrap(),
        "deployment.apps/app restarted\n"
    );
    let restarted = tug
        .ok(&[
            "get",
            "deploy",
            "app",
            "-o",
            "jsonpath={.spec.template.metadata.annotations}",
        ])
        .unwrap();
    assert!(
        restarted.contains("kubectl.kubernetes.io/restartedAt"),
        "{restarted}"
    );
}

#[test]
fn rollout_status_explains_a_stuck_rollout() {
    let tug = setup("stuck");
    // Simulated pods whose readiness probe (an exec) always fails.
    let manifest = deployment("stuck", "busybox", 1).replace(
        "    metadata:\n      labels:\n        app: stuck\n",
        "    metadata:\n      labels:\n        app: stuck\n      annotations:\n        tugboat.dev/sim-exec-exit-code: \"1\"\n",
    ) + "        readinessProbe:\n          exec:\n            command: [\"false\"]\n          periodSeconds: 1\n";
    tug.apply(&manifest).unwrap();
    let output = tug
        .run(&["rollout", "status", "deploy/stuck", "--timeout", "4s"])
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let out = stdout(&output);
    assert!(
        out.contains("Waiting for deployment \"stuck\" rollout to finish: 0 of 1 updated replicas are available...\n  1 desired | 1 updated | 0 ready | 0 available; new stuck-"),
        "{out}"
    );
    let err = stderr(&output);
    assert!(err.contains("Pods of stuck-"), "{err}");
    assert!(err.contains("not ready (readiness probe)"), "{err}");
    assert!(
        err.ends_with(
            "error: timed out waiting for the rollout of deployment \"stuck\" after 4s\n"
        ),
        "{err}"
    );
}

#[test]
fn scale_label_annotate_set_env() {
    let tug = setup("edits");
    tug.apply(&deployment("svc", "busybox", 1)).unwrap();
    assert_eq!(
        tug.ok(&["scale", "deploy/svc", "--replicas=3"]).unwrap(),
        "deployment.apps/svc scaled\n"
    );
    let replicas = tug
        .ok(&["get", "deploy", "svc", "-o", "jsonpath={.spec.replicas}"])
        .unwrap();
    assert_eq!(replicas, "3");
    assert_eq!(
        tug.ok(&["label", "deploy", "svc", "tier=web"]).unwrap(),
        "deployment.apps/svc labeled\n"
    );
    assert_eq!(
        fails(&tug, &["label", "deploy", "svc", "tier=db"]),
        "error: 'tier' already has a value (web), and --overwrite is false\n"
    );
    assert_eq!(
        tug.ok(&["label", "deploy/svc", "tier=db", "--overwrite"])
            .unwrap(),
        "deployment.apps/svc labeled\n"
    );
    let selected = tug
        .ok(&["get", "deploy", "-l", "tier in (db)", "-o", "name"])
        .unwrap();
    assert_eq!(selected, "deployment.apps/svc\n");
    assert_eq!(
        tug.ok(&["label", "deploy/svc", "tier-"]).unwrap(),
        "deployment.apps/svc labeled\n"
    );
    assert_eq!(
        tug.ok(&["annotate", "deploy/svc", "owner=team-a"]).unwrap(),
        "deployment.apps/svc annotated\n"
    );
    // A prefixed key has a slash, as TYPE/NAME does; the README's rollout journey uses one.
    assert_eq!(
        tug.ok(&[
            "annotate",
            "deploy/svc",
            "kubernetes.io/change-cause=VERSION=2"
        ])
        .unwrap(),
        "deployment.apps/svc annotated\n"
    );
    let cause = tug
        .ok(&[
            "get",
            "deploy",
            "svc",
            "-o",
            "jsonpath={.metadata.annotations.kubernetes\\.io/change-cause}",
        ])
        .unwrap();
    assert_eq!(cause, "VERSION=2");
    assert_eq!(
        tug.ok(&["set", "env", "deploy/svc", "LEVEL=debug", "MODE-"])
            .unwrap(),
        "deployment.apps/svc env updated\n"
    );
    let env = tug
        .ok(&[
            "get",
            "deploy",
            "svc",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env}",
        ])
        .unwrap();
    assert_eq!(env, "[{\"name\":\"LEVEL\",\"value\":\"debug\"}]");
    assert_eq!(
        fails(&tug, &["set", "image", "deploy/svc", "nope=busybox:2"]),
        "error: unable to find container named \"nope\"\n"
    );
}

#[test]
fn get_watch_prints_changes() {
    let tug = setup("watch");
    let mut child = tug.spawn(&["get", "configmaps", "-w"]).unwrap();
    let stdout = child.stdout.take().unwrap();
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if sender.send(line).is_err() {
                break;
            }
        }
    });
    // The header comes first (the namespace has kube-root-ca.crt or nothing).
    let first = lines.recv_timeout(Duration::from_secs(30));
    let created = tug
        .run_with_input(
            &["create", "-f", "-"],
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: watched\ndata:\n  a: b\n",
        )
        .unwrap();
    assert!(created.status.success());
    let mut seen = vec![format!("{first:?}")];
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match lines.recv_timeout(Duration::from_millis(500)) {
            Ok(Ok(line)) => {
                let found = line.starts_with("watched ");
                seen.push(line);
                if found {
                    break;
                }
            }
            _ => continue,
        }
    }
    tugboat_e2e::process::kill_and_reap(&mut child);
    assert!(
        seen.iter()
            .any(|l| l.starts_with("watched ") && l.contains(" 1 ")),
        "{seen:?}"
    );
}

#[test]
fn api_resources_version_cluster_info() {
    let cluster = shared().unwrap();
    let tug = cluster.tug().unwrap();
    let resources = tug.ok(&["api-resources"]).unwrap();
    assert!(resources.starts_with("NAME "), "{resources}");
    assert!(
        resources
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>()
                == ["deployments", "deploy", "apps/v1", "true", "Deployment"]),
        "{resources}"
    );
    let version = tug.ok(&["version"]).unwrap();
    assert!(version.contains("\nServer Version: v1.32"), "{version}");
    let info = tug.ok(&["cluster-info"]).unwrap();
    assert!(
        info.starts_with(&format!(
            "Kubernetes control plane is running at {}\n",
            cluster.url()
        )),
        "{info}"
    );
}

#[test]
fn top_and_autoscale() {
    let tug = setup("ops");
    tug.apply(&deployment("load", "busybox", 1)).unwrap();
    tug.ok(&["rollout", "status", "deploy/load", "--timeout", "60s"])
        .unwrap();
    assert_eq!(
        tug.ok(&[
            "autoscale",
            "deployment/load",
            "--min=1",
            "--max=4",
            "--cpu-percent=50"
        ])
        .unwrap(),
        "horizontalpodautoscaler.autoscaling/load autoscaled\n"
    );
    let hpa = tug.ok(&["get", "hpa", "load"]).unwrap();
    assert!(hpa.starts_with("NAME   REFERENCE         TARGETS"), "{hpa}");
    assert!(hpa.contains("load   Deployment/load"), "{hpa}");
    assert_eq!(
        fails(&tug, &["autoscale", "deployment/nope", "--max=2"]),
        "Error from server (NotFound): deployments.apps \"nope\" not found\n"
    );
    let nodes = tug.ok(&["top", "nodes"]).unwrap();
    assert!(
        nodes.starts_with("NAME   CPU(cores)   CPU(%)   MEMORY(bytes)   MEMORY(%)\n"),
        "{nodes}"
    );
    // Metrics come with the next stats push: wait for the pod to show up (bounded).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = tug.run(&["top", "pods"]).unwrap();
        let text = stdout(&output);
        if output.status.success() && text.contains("\nload-") {
            assert!(text.starts_with("NAME "), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no pod metrics: {text}{}",
            stderr(&output)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn cordon_and_uncordon() {
    // Its own cluster: a cordoned node would stall the rollouts of tests sharing one.
    let cluster = tugboat_e2e::Cluster::start().unwrap();
    let tug = cluster.tug().unwrap();
    let node = tug.ok(&["get", "nodes", "-o", "name"]).unwrap();
    let node = node
        .lines()
        .next()
        .unwrap()
        .trim_start_matches("node/")
        .to_owned();
    assert_eq!(
        tug.ok(&["cordon", &node]).unwrap(),
        format!("node/{node} cordoned\n")
    );
    assert_eq!(
        tug.ok(&["cordon", &node]).unwrap(),
        format!("node/{node} already cordoned\n")
    );
    let table = tug.ok(&["get", "node", &node]).unwrap();
    assert!(table.contains("Ready,SchedulingDisabled"), "{table}");
    assert_eq!(
        tug.ok(&["uncordon", &node]).unwrap(),
        format!("node/{node} uncordoned\n")
    );

    // drain: a bare pod stops it unless --force; then every pod is evicted.
    tug.apply(&deployment("drained", "busybox", 2)).unwrap();
    tug.ok(&["rollout", "status", "deploy/drained", "--timeout", "60s"])
        .unwrap();
    tug.apply("apiVersion: v1\nkind: Pod\nmetadata:\n  name: bare\nspec:\n  containers:\n  - name: c\n    image: busybox\n")
        .unwrap();
    let refused = fails(&tug, &["drain", &node]);
    assert!(
        refused.contains(
            "cannot delete Pods that declare no controller (use --force to override): default/bare"
        ),
        "{refused}"
    );
    let drained = tug
        .ok(&["drain", &node, "--force", "--timeout", "60s"])
        .unwrap();
    assert!(drained.contains("evicting pod default/bare\n"), "{drained}");
    assert!(drained.contains("pod/bare evicted\n"), "{drained}");
    assert!(
        drained.ends_with(&format!("node/{node} drained\n")),
        "{drained}"
    );
    let pods = tug
        .ok(&["get", "pods", "-o", "jsonpath={.items[*].status.phase}"])
        .unwrap();
    assert!(
        pods.split_whitespace().all(|phase| phase == "Pending"),
        "the replacements wait for an uncordoned node: {pods}"
    );
    tug.ok(&["uncordon", &node]).unwrap();
}

#[test]
fn edit_and_sort_by() {
    let tug = setup("edit");
    tug.apply(&deployment("ed", "busybox", 1)).unwrap();
    let edited = tug
        .env("KUBE_EDITOR", "sed -i 's/replicas: 1/replicas: 2/'")
        .ok(&["edit", "deployment/ed"])
        .unwrap();
    assert_eq!(edited, "deployment.apps/ed edited\n");
    let replicas = tug
        .ok(&["get", "deploy", "ed", "-o", "jsonpath={.spec.replicas}"])
        .unwrap();
    assert_eq!(replicas, "2");
    let untouched = tug
        .env("KUBE_EDITOR", "true")
        .ok(&["edit", "deploy", "ed"])
        .unwrap();
    assert_eq!(untouched, "Edit cancelled, no changes made.\n");

    for (name, order) in [("c", 1), ("a", 3), ("b", 2)] {
        tug.apply(&format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    order: \"{order}\"\ndata:\n  k: v\n"
        ))
        .unwrap();
    }
    let by_label = tug
        .ok(&[
            "get",
            "cm",
            "-l",
            "order",
            "--sort-by={.metadata.labels.order}",
            "-o",
            "name",
        ])
        .unwrap();
    assert_eq!(by_label, "configmap/c\nconfigmap/b\nconfigmap/a\n");
    let table = tug
        .ok(&[
            "get",
            "cm",
            "-l",
            "order",
            "--sort-by=.metadata.labels.order",
        ])
        .unwrap();
    let names: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(names, ["c", "b", "a"], "{table}");
}

#[test]
fn bash_completion_offers_names_from_the_server() {
    let tug = setup("complete");
    tug.apply(&deployment("alpha", "busybox", 1)).unwrap();
    tug.apply(&deployment("beta", "busybox", 1)).unwrap();
    let script = tug.ok(&["completion", "bash"]).unwrap();
    assert!(script.contains("complete -F _tug_with_names"), "{script}");
    let binary = tug_binary().unwrap();
    let dir = binary.parent().unwrap();
    let path = std::env::join_paths(std::iter::once(dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let complete = |words: &str, index: usize| {
        let script = format!(
            "source <(tug completion bash)\nCOMP_WORDS=({words})\nCOMP_CWORD={index}\n_tug_with_names\necho \"${{COMPREPLY[@]}}\"\n"
        );
        let mut command = Command::new("bash");
        command
            .args(["-c", &script])
            .env("PATH", &path)
            .env("KUBECONFIG", tug.kubeconfig())
            .env("HOME", "/nonexistent");
        let output =
            tugboat_e2e::process::run_bounded(&mut command, None, Duration::from_secs(60)).unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        stdout(&output).trim().to_owned()
    };
    let names = complete("tug -n tug-complete get deploy ''", 5);
    assert_eq!(names, "alpha beta");
    let names = complete("tug describe -n tug-complete deployments al", 5);
    assert_eq!(names, "alpha");
    let types = complete("tug get deplo", 2);
    assert_eq!(types, "deployments");
}

#[test]
fn readme_journey_with_tug() {
    let tug = setup("readme");
    let manifest = tugboat_e2e::workspace_root()
        .join("manifests")
        .join("web.yaml");
    let manifest = manifest.to_str().unwrap();
    assert_eq!(
        tug.ok(&["apply", "-f", manifest]).unwrap(),
        "deployment.apps/web created\nservice/web created\n"
    );
    let status = tug
        .ok(&["rollout", "status", "deployment/web", "--timeout", "60s"])
        .unwrap();
    assert!(
        status.ends_with("deployment \"web\" successfully rolled out\n"),
        "{status}"
    );
    let pods = tug.ok(&["get", "pods", "-o", "wide"]).unwrap();
    assert!(
        pods.starts_with("NAME ") && pods.contains("   IP   ") && pods.contains("Running"),
        "{pods}"
    );
    assert_eq!(
        tug.ok(&["set", "env", "deployment/web", "VERSION=2"])
            .unwrap(),
        "deployment.apps/web env updated\n"
    );
    tug.ok(&["rollout", "status", "deployment/web", "--timeout", "60s"])
        .unwrap();
    assert_eq!(
        tug.ok(&["rollout", "undo", "deployment/web"]).unwrap(),
        "deployment.apps/web rolled back\n"
    );
    tug.ok(&["rollout", "status", "deployment/web", "--timeout", "60s"])
        .unwrap();
    let env = tug
        .ok(&[
            "get",
            "deploy",
            "web",
            "-o",
            "jsonpath={.spec.template.spec.containers[0].env}",
        ])
        .unwrap();
    assert!(!env.contains("VERSION"), "{env}");
    assert_eq!(
        tug.ok(&["delete", "deployment", "web"]).unwrap(),
        "deployment.apps \"web\" deleted\n"
    );
    // The ReplicaSets and pods go with it (garbage collection), within a bounded wait.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = tug.ok(&["get", "rs,pods", "-o", "name"]).unwrap();
        if left.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still there: {left}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn explain_prints_what_kubectl_prints() {
    let Some(_) = kubectl_or_skip() else { return };
    let cluster = shared().unwrap();
    let tug = cluster.tug().unwrap();
    let kubectl = cluster.kubectl().unwrap();
    for target in [
        "deployments",
        "deploy.spec",
        "deployment.spec.replicas",
        "pods.spec.containers",
        "po.spec.containers.ports.protocol",
        "svc.spec.type",
        "nodes.status.capacity",
        "configmaps.data",
        "hpa.spec.metrics",
        "deployments --recursive",
        "pods.spec.containers --recursive",
    ] {
        let args: Vec<&str> = ["explain"]
            .into_iter()
            .chain(target.split_whitespace())
            .collect();
        let ours = tug.run(&args).unwrap();
        let theirs = kubectl.run(&args).unwrap();
        assert!(
            theirs.status.success(),
            "kubectl explain {target}: {theirs:?}"
        );
        assert!(ours.status.success(), "tug explain {target}: {ours:?}");
        assert_eq!(stdout(&ours), stdout(&theirs), "tug explain {target}");
    }
    assert_eq!(
        fails(&tug, &["explain", "deployment.spec.nope"]),
        "error: field \"nope\" does not exist\n"
    );
    assert_eq!(
        fails(&tug, &["explain", "nothings"]),
        "error: the server doesn't have a resource type \"nothings\"\n"
    );
}

#[test]
fn apply_prune_deletes_what_left_the_manifests() {
    let tug = setup("prune");
    let labelled = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    app: shop\ndata:\n  k: v\n"
        )
    };
    let all = format!(
        "{}---\n{}---\n{}",
        deployment("cart", "busybox", 1).replace("app: cart\n", "app: shop\n"),
        labelled("settings"),
        labelled("extra"),
    );
    // Not pruned: one made without apply (no last-applied annotation), one applied without
    // the label.
    let created = tug
        .run_with_input(&["create", "-f", "-"], &labelled("manual"))
        .unwrap();
    assert!(created.status.success(), "{created:?}");
    tug.apply(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\n  labels:\n    app: other\n",
    )
    .unwrap();
    let out = tug
        .run_with_input(&["apply", "--prune", "-l", "app=shop", "-f", "-"], &all)
        .unwrap();
    assert_eq!(
        stdout(&out),
        "deployment.apps/cart created\nconfigmap/settings created\nconfigmap/extra created\n",
        "{out:?}"
    );
    // `extra` and the deployment leave the manifests: both are pruned, in kubectl's type order.
    let fewer = labelled("settings");
    let out = tug
        .run_with_input(&["apply", "--prune", "-l", "app=shop", "-f", "-"], &fewer)
        .unwrap();
    assert_eq!(
        stdout(&out),
        "configmap/settings unchanged\nconfigmap/extra pruned\ndeployment.apps/cart pruned\n",
        "{out:?}"
    );
    let left = tug
        .ok(&["get", "configmaps,deployments", "-o", "name"])
        .unwrap();
    assert!(left.contains("configmap/settings\n"), "{left}");
    assert!(left.contains("configmap/other\n"), "{left}");
    assert!(left.contains("configmap/manual\n"), "{left}");
    assert!(!left.contains("configmap/extra"), "{left}");
    assert!(!left.contains("deployment.apps/cart"), "{left}");
    // The selector also picks what is applied; a dry run prunes nothing.
    let out = tug
        .run_with_input(
            &[
                "apply",
                "--prune",
                "-l",
                "app=shop",
                "--dry-run=client",
                "-f",
                "-",
            ],
            &labelled("solo"),
        )
        .unwrap();
    assert_eq!(
        stdout(&out),
        "configmap/solo created (dry run)\nconfigmap/settings pruned (dry run)\n"
    );
    assert!(tug.ok(&["get", "configmap", "settings"]).is_ok());
    // kubectl's guard: --prune needs a selector or --all.
    let err = tug
        .run_with_input(&["apply", "--prune", "-f", "-"], &fewer)
        .unwrap();
    assert_eq!(err.status.code(), Some(1));
    assert!(
        stderr(&err).starts_with(
            "error: all resources selected for prune without explicitly passing --all"
        ),
        "{err:?}"
    );
}

/// Simulated nodes run nothing: `tug exec` and `tug port-forward` say so (the node's reason,
/// not just a refused upgrade) and exit 1, as kubectl does.
#[test]
fn exec_and_port_forward_on_simulated_nodes_say_why_not() {
    let tug = setup("simstream");
    tug.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: sim\nspec:\n  containers:\n  - name: main\n    image: busybox\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while tug
        .ok(&["get", "pod", "sim", "-o", "jsonpath={.status.phase}"])
        .unwrap()
        != "Running"
    {
        assert!(Instant::now() < deadline, "the simulated pod never ran");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        fails(&tug, &["exec", "sim", "ls", "/"]),
        "error: exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead\n"
    );
    assert_eq!(
        fails(&tug, &["exec", "sim"]),
        "error: you must specify at least one command for the container\n"
    );
    let exec = fails(&tug, &["exec", "sim", "--", "true"]);
    assert!(
        exec.starts_with("error: unable to upgrade connection: ") && exec.contains("simulated"),
        "{exec}"
    );

    let port = tugboat_testkit::net::free_port().unwrap();
    let mut forward = tug
        .spawn(&["port-forward", "pod/sim", &format!("{port}:80")])
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        // Each connection tries the pod; the first refusal ends the command.
        let _ = std::net::TcpStream::connect(("127.0.0.1", port));
        if let Some(status) = forward.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            tugboat_e2e::process::kill_and_reap(&mut forward);
            panic!("tug port-forward kept running after a refused upgrade");
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut forward.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: unable to upgrade connection: ") && err.contains("simulated"),
        "{err}"
    );
}
