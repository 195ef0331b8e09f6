//! managedFields on every write and server-side apply, through the router over the memory
//! store: what kubectl and kube-rs see.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use common::{Fixture, fixture};
use http::{Method, Request};
use serde_json::{Value, json};

async fn send(
    f: &Fixture,
    method: Method,
    uri: &str,
    content_type: &str,
    body: &str,
) -> (u16, Value) {
    let mut request = Request::builder().method(method).uri(uri).header(
        "user-agent",
        "kubectl/v1.32.4 (linux/amd64) kubernetes/59526cd",
    );
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    let answer = common::respond(f, request.body(Body::from(body.to_owned())).unwrap()).await;
    (answer.code.as_u16(), answer.body)
}

async fn apply(f: &Fixture, name: &str, query: &str, manifest: &Value) -> (u16, Value) {
    send(
        f,
        Method::PATCH,
        &format!("{DEPLOYMENTS}/{name}?{query}"),
        "application/apply-patch+yaml",
        &manifest.to_string(),
    )
    .await
}

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

fn deployment(replicas: i64, labels: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "labels": labels },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": "nginx:1.27" }] },
            },
        },
    })
}

/// `(manager, operation, subresource)` of each entry.
fn managers(obj: &Value) -> Vec<(String, String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .map(|e| {
                    let text = |k: &str| e[k].as_str().unwrap_or_default().to_owned();
                    (text("manager"), text("operation"), text("subresource"))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn every_write_records_its_manager_and_fields() {
    let f = fixture().await;
    let configmap = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "c", "labels": { "team": "a" } },
        "data": { "a": "1" },
    });
    let (code, created) = send(
        &f,
        Method::POST,
        &format!("{CONFIGMAPS}?fieldManager=kubectl-create"),
        "application/json",
        &configmap.to_string(),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    let entry = &created["metadata"]["managedFields"][0];
    assert_eq!(entry["manager"], "kubectl-create");
    assert_eq!(entry["operation"], "Update");
    assert_eq!(entry["apiVersion"], "v1");
    assert_eq!(entry["fieldsType"], "FieldsV1");
    assert!(entry["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        entry["fieldsV1"],
        json!({
            "f:data": { ".": {}, "f:a": {} },
            "f:metadata": { "f:labels": { ".": {}, "f:team": {} } },
        })
    );

    // No fieldManager: the User-Agent's program name.
    let (code, patched) = send(
        &f,
        Method::PATCH,
        &format!("{CONFIGMAPS}/c"),
        "application/merge-patch+json",
        r#"{"data":{"b":"2"}}"#,
    )
    .await;
    assert_eq!(code, 200, "{patched}");
    assert_eq!(
        managers(&patched),
        [
            ("kubectl-create".into(), "Update".into(), String::new()),
            ("kubectl".into(), "Update".into(), String::new()),
        ]
    );
    assert_eq!(
        patched["metadata"]["managedFields"][1]["fieldsV1"],
        json!({ "f:data": { "f:b": {} } })
    );
    // The same manager again shares its entry; a write that changes nothing keeps the record.
    let (_, again) = send(
        &f,
        Method::PATCH,
        &format!("{CONFIGMAPS}/c?fieldManager=kubectl-create"),
        "application/merge-patch+json",
        r#"{"data":{"b":"3"}}"#,
    )
    .await;
    assert_eq!(
        managers(&again),
        [("kubectl-create".into(), "Update".into(), String::new())],
        "{again}"
    );
    let (_, unchanged) = send(
        &f,
        Method::PATCH,
        &format!("{CONFIGMAPS}/c?fieldManager=someone"),
        "application/merge-patch+json",
        r#"{"data":{"b":"3"}}"#,
    )
    .await;
    assert_eq!(
        unchanged["metadata"]["resourceVersion"],
        again["metadata"]["resourceVersion"]
    );

    // Status writes are tracked apart.
    let (code, _) = apply(&f, "web", "fieldManager=kubectl", &deployment(1, json!({}))).await;
    assert_eq!(code, 201);
    let (code, status) = send(
        &f,
        Method::PATCH,
        &format!("{DEPLOYMENTS}/web/status?fieldManager=kube-controller-manager"),
        "application/merge-patch+json",
        r#"{"status":{"replicas":1}}"#,
    )
    .await;
    assert_eq!(code, 200, "{status}");
    assert_eq!(
        managers(&status),
        [
            ("kubectl".into(), "Apply".into(), String::new()),
            (
                "kube-controller-manager".into(),
                "Update".into(),
                "status".into()
            ),
        ]
    );
    assert_eq!(
        status["metadata"]["managedFields"][1]["fieldsV1"],
        json!({ "f:status": { "f:replicas": {} } })
    );
}

#[tokio::test]
async fn apply_creates_conflicts_forces_and_removes() {
    let f = fixture().await;
    let labels = json!({ "app": "web", "tier": "front" });
    let (code, created) = apply(
        &f,
        "web",
        "fieldManager=kubectl&force=false",
        &deployment(2, labels.clone()),
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        managers(&created),
        [("kubectl".into(), "Apply".into(), String::new())]
    );
    assert_eq!(created["spec"]["replicas"], 2);
    // Defaults are there, as after any create.
    assert_eq!(created["spec"]["strategy"]["type"], "RollingUpdate");

    // Unchanged: nothing written.
    let (code, same) = apply(
        &f,
        "web",
        "fieldManager=kubectl",
        &deployment(2, labels.clone()),
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(
        same["metadata"]["resourceVersion"],
        created["metadata"]["resourceVersion"]
    );

    // kubectl scale (an Update of the scale subresource) takes spec.replicas.
    let (code, scaled) = send(
        &f,
        Method::PATCH,
        &format!("{DEPLOYMENTS}/web/scale?fieldManager=kubectl-scale"),
        "application/merge-patch+json",
        r#"{"spec":{"replicas":5}}"#,
    )
    .await;
    assert_eq!(code, 200, "{scaled}");

    // Re-applying another replicas conflicts, with upstream's Status.
    let (code, conflict) = apply(
        &f,
        "web",
        "fieldManager=kubectl&force=false",
        &deployment(3, labels.clone()),
    )
    .await;
    assert_eq!(code, 409, "{conflict}");
    assert_eq!(conflict["kind"], "Status");
    assert_eq!(conflict["reason"], "Conflict");
    let message = conflict["message"].as_str().unwrap();
    assert!(
        message.starts_with(
            "Apply failed with 1 conflict: conflict with \"kubectl-scale\" with subresource \"scale\" using apps/v1 at "
        ) && message.ends_with(": .spec.replicas"),
        "{message}"
    );
    assert_eq!(
        conflict["details"]["causes"][0]["reason"],
        "FieldManagerConflict"
    );
    assert_eq!(conflict["details"]["causes"][0]["field"], ".spec.replicas");
    let (_, live) = send(&f, Method::GET, &format!("{DEPLOYMENTS}/web"), "", "").await;
    assert_eq!(live["spec"]["replicas"], 5);

    // Forced: the applier wins and the scale manager loses the field (and its entry).
    let (code, forced) = apply(
        &f,
        "web",
        "fieldManager=kubectl&force=true",
        &deployment(3, labels.clone()),
    )
    .await;
    assert_eq!(code, 200, "{forced}");
    assert_eq!(forced["spec"]["replicas"], 3);
    assert_eq!(
        managers(&forced),
        [("kubectl".into(), "Apply".into(), String::new())]
    );

    // A label no longer applied goes.
    let (code, fewer) = apply(
        &f,
        "web",
        "fieldManager=kubectl",
        &deployment(3, json!({ "app": "web" })),
    )
    .await;
    assert_eq!(code, 200, "{fewer}");
    assert_eq!(fewer["metadata"]["labels"], json!({ "app": "web" }));

    // A second applier of the same value co-owns it: no conflict, and the first one dropping
    // the field leaves it in place.
    let (code, _) = apply(
        &f,
        "web",
        "fieldManager=other",
        &json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "web" },
            "spec": { "replicas": 3 },
        }),
    )
    .await;
    assert_eq!(code, 200);
    let mut without_replicas = deployment(3, json!({ "app": "web" }));
    without_replicas["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    let (code, kept) = apply(&f, "web", "fieldManager=kubectl", &without_replicas).await;
    assert_eq!(code, 200, "{kept}");
    assert_eq!(kept["spec"]["replicas"], 3);
}

#[tokio::test]
async fn apply_errors_and_dry_run() {
    let f = fixture().await;
    let manifest = deployment(1, json!({ "app": "web" }));
    let (code, missing) = apply(&f, "web", "", &manifest).await;
    assert_eq!(code, 422, "{missing}");
    assert_eq!(
        missing["message"],
        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"
    );
    let mut wrong = manifest.clone();
    wrong["apiVersion"] = json!("apps/v1beta1");
    let (code, _) = apply(&f, "web", "fieldManager=x", &wrong).await;
    assert_eq!(code, 400);
    let (code, _) = apply(&f, "other", "fieldManager=x", &manifest).await;
    assert_eq!(code, 400, "the name must match the path");

    let (code, dry) = apply(&f, "web", "fieldManager=x&dryRun=All", &manifest).await;
    assert_eq!(code, 201, "{dry}");
    let (code, _) = send(&f, Method::GET, &format!("{DEPLOYMENTS}/web"), "", "").await;
    assert_eq!(code, 404);

    // YAML bodies, as the media type says.
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: y\ndata:\n  k: v\n";
    let (code, created) = send(
        &f,
        Method::PATCH,
        &format!("{CONFIGMAPS}/y?fieldManager=me"),
        "application/apply-patch+yaml",
        yaml,
    )
    .await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(
        created["metadata"]["managedFields"][0]["fieldsV1"],
        json!({ "f:data": { "f:k": {} } })
    );
}
