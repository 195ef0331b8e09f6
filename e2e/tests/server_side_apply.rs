//! Server-side apply end to end: the real, unmodified kubectl (`apply --server-side`), `tug
//! apply --server-side` and kube-rs `Patch::Apply` against `tug up --runtime sim`.

// Helpers outside `#[test]` fns panic on failure too: this is a test crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use tugboat_e2e::{Kubectl, TugCli, kubectl_or_skip, shared};

fn deployment(replicas: u32, image: &str, tier: Option<&str>) -> String {
    let tier = tier.map(|t| format!("\n    tier: {t}")).unwrap_or_default();
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web{tier}
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
        ports:
        - containerPort: 80
"
    )
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What kubectl and tug print for a conflict with `kubectl scale`, up to the time.
fn assert_scale_conflict(output: &Output) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let err = stderr(output);
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(
            "error: Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1 at "
        )
            && first.ends_with(": .spec.replicas"),
        "{err}"
    );
    assert!(
        err.contains("please re-run the apply\n  command with the `--force-conflicts` flag."),
        "{err}"
    );
}

#[test]
fn kubectl_server_side_apply_creates_conflicts_forces_and_removes() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = shared().unwrap();
    let k = cluster.kubectl().unwrap();
    k.ok(&["create", "namespace", "e2e-ssa"]).unwrap();
    let k: Kubectl = k.namespace("e2e-ssa");
    let ssa = |manifest: &str, extra: &[&str]| {
        let mut args = vec!["apply", "--server-side", "-f", "-"];
        args.extend(extra);
        k.run_with_input(&args, manifest).unwrap()
    };
    let jsonpath = |path: &str| k.get_jsonpath(&["deployment", "web"], &format!("{{{path}}}"));

    let created = ssa(&deployment(2, "nginx:1.27", Some("front")), &[]);
    assert_eq!(
        stdout(&created),
        "deployment.apps/web serverside-applied\n",
        "{}",
        stderr(&created)
    );
    // (The deployment controller writes status meanwhile: compare the spec's generation and
    // the apply record's time.)
    let applied_at = || {
        (
            jsonpath(".metadata.generation"),
            k.get_jsonpath(
                &["deployment", "web", "--show-managed-fields"],
                "{.metadata.managedFields[?(@.operation==\"Apply\")].time}",
            ),
        )
    };
    let before = applied_at();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let again = ssa(&deployment(2, "nginx:1.27", Some("front")), &[]);
    assert_eq!(stdout(&again), "deployment.apps/web serverside-applied\n");
    assert_eq!(applied_at(), before, "re-applying changes nothing");

    // The record: hidden by default, shown on request.
    let yaml = k.ok(&["get", "deployment", "web", "-o", "yaml"]).unwrap();
    assert!(!yaml.contains("managedFields"), "{yaml}");
    let yaml = k
        .ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .unwrap();
    assert!(
        yaml.contains("manager: kubectl\n") && yaml.contains("operation: Apply"),
        "{yaml}"
    );
    assert!(yaml.contains("k:{\"name\":\"web\"}"), "{yaml}");

    let changed = ssa(&deployment(2, "nginx:1.28", Some("front")), &[]);
    assert!(changed.status.success(), "{}", stderr(&changed));
    assert_eq!(
        jsonpath(".spec.template.spec.containers[0].image"),
        "nginx:1.28"
    );

    // Another manager takes replicas; re-applying another value conflicts.
    k.ok(&["scale", "deployment", "web", "--replicas=5"])
        .unwrap();
    let conflict = ssa(&deployment(3, "nginx:1.28", Some("front")), &[]);
    assert_scale_conflict(&conflict);
    assert_eq!(jsonpath(".spec.replicas"), "5");
    let forced = ssa(
        &deployment(3, "nginx:1.28", Some("front")),
        &["--force-conflicts"],
    );
    assert_eq!(
        stdout(&forced),
        "deployment.apps/web serverside-applied\n",
        "{}",
        stderr(&forced)
    );
    assert_eq!(jsonpath(".spec.replicas"), "3");

    // A field left out of the manifest goes.
    let fewer = ssa(&deployment(3, "nginx:1.28", None), &[]);
    assert!(fewer.status.success(), "{}", stderr(&fewer));
    assert_eq!(jsonpath(".metadata.labels"), "{\"app\":\"web\"}");

    let dry = ssa(&deployment(4, "nginx:1.28", None), &["--dry-run=server"]);
    assert_eq!(
        stdout(&dry),
        "deployment.apps/web serverside-applied (server dry run)\n"
    );
    assert_eq!(jsonpath(".spec.replicas"), "3");
}

#[test]
fn tug_server_side_apply_as_kubectl_does() {
    let cluster = shared().unwrap();
    let tug = cluster.tug().unwrap();
    tug.apply("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tug-ssa\n")
        .unwrap();
    let tug: TugCli = tug.namespace("tug-ssa");
    let ssa = |manifest: &str, extra: &[&str]| {
        let mut args = vec!["apply", "--server-side", "-f", "-"];
        args.extend(extra);
        tug.run_with_input(&args, manifest).unwrap()
    };
    let replicas = || {
        tug.ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.spec.replicas}",
        ])
        .unwrap()
    };

    let created = ssa(&deployment(2, "nginx:1.27", Some("front")), &[]);
    assert_eq!(
        stdout(&created),
        "deployment.apps/web serverside-applied\n",
        "{}",
        stderr(&created)
    );
    let yaml = tug
        .ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "yaml",
            "--show-managed-fields",
        ])
        .unwrap();
    assert!(
        yaml.contains("manager: kubectl\n") && yaml.contains("operation: Apply"),
        "{yaml}"
    );
    let yaml = tug.ok(&["get", "deployment", "web", "-o", "yaml"]).unwrap();
    assert!(!yaml.contains("managedFields"), "{yaml}");

    // tug edit leaves the record out of the editor too (the editor fails if it sees it).
    let edit = tug
        .env("EDITOR", "! grep -q managedFields")
        .ok(&["edit", "deployment/web"])
        .unwrap();
    assert_eq!(edit, "Edit cancelled, no changes made.\n");
    tug.ok(&["scale", "deployment", "web", "--replicas=5"])
        .unwrap();
    let conflict = ssa(&deployment(3, "nginx:1.27", Some("front")), &[]);
    assert_scale_conflict(&conflict);
    assert_eq!(replicas(), "5");
    let forced = ssa(
        &deployment(3, "nginx:1.27", Some("front")),
        &["--force-conflicts"],
    );
    assert!(forced.status.success(), "{}", stderr(&forced));
    assert_eq!(replicas(), "3");

    let fewer = ssa(&deployment(3, "nginx:1.27", None), &[]);
    assert!(fewer.status.success(), "{}", stderr(&fewer));
    let labels = tug
        .ok(&[
            "get",
            "deployment",
            "web",
            "-o",
            "jsonpath={.metadata.labels}",
        ])
        .unwrap();
    assert_eq!(labels, "{\"app\":\"web\"}");

    // kubectl's checks of the flags.
    let client = ssa(&deployment(3, "nginx:1.27", None), &["--dry-run=client"]);
    assert_eq!(
        stderr(&client),
        "error: --dry-run=client doesn't work with --server-side (did you mean --dry-run=server instead?)\n"
    );
    let force_alone = tug
        .run_with_input(
            &["apply", "--force-conflicts", "-f", "-"],
            &deployment(3, "x", None),
        )
        .unwrap();
    assert_eq!(
        stderr(&force_alone),
        "error: --force-conflicts only works with --server-side\n"
    );
}

#[test]
fn kube_rs_patch_apply() {
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, Patch, PatchParams};

    let cluster = shared().unwrap();
    let kubeconfig = cluster.kubeconfig();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let kubeconfig = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
            .await
            .unwrap();
        let client = kube::Client::try_from(config).unwrap();
        let api: Api<ConfigMap> = Api::namespaced(client, "default");
        let config_map = |value: &str| {
            serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": { "name": "kube-rs-ssa" },
                "data": { "key": value },
            })
        };
        let mine = PatchParams::apply("my-controller");
        let created = api
            .patch("kube-rs-ssa", &mine, &Patch::Apply(config_map("one")))
            .await
            .unwrap();
        let entries = created.metadata.managed_fields.unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].manager.as_deref(), Some("my-controller"));
        assert_eq!(entries[0].operation.as_deref(), Some("Apply"));

        let theirs = PatchParams::apply("someone-else");
        let err = api
            .patch("kube-rs-ssa", &theirs, &Patch::Apply(config_map("two")))
            .await
            .expect_err("conflict");
        let kube::Error::Api(status) = err else {
            panic!("not an API error: {err}");
        };
        assert_eq!(status.code, 409);
        assert_eq!(status.reason, "Conflict");
        assert_eq!(
            status.message,
            "Apply failed with 1 conflict: conflict with \"my-controller\" using v1: .data.key"
        );

        let forced = api
            .patch(
                "kube-rs-ssa",
                &theirs.force(),
                &Patch::Apply(config_map("two")),
            )
            .await
            .unwrap();
        assert_eq!(forced.data.unwrap()["key"], "two");
    });
}
