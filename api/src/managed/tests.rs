//! Cases follow sigs.k8s.io/structured-merge-diff's `merge` tests and what kube-apiserver 1.32
//! records for kubectl.

use serde_json::{Value, json};

use super::*;

const NOW: &str = "2026-11-24T03:00:00Z";

fn deployment_schema() -> SchemaRef {
    schema_of("apps", "Deployment")
}

fn request(manager: &str, force: bool) -> ApplyRequest<'_> {
    ApplyRequest {
        manager,
        api_version: "apps/v1",
        force,
        now: NOW,
        scope: Scope::WithoutStatus,
    }
}

fn deployment(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "labels": { "app": "web" } },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{
                    "name": "web", "image": image,
                    "ports": [{ "containerPort": 80 }],
                }] },
            },
        },
    })
}

fn managers(obj: &Value) -> Vec<(String, String, String)> {
    ManagedFieldsEntry::read_all(obj)
        .into_iter()
        .map(|e| (e.manager, e.operation, e.subresource))
        .collect()
}

#[test]
fn applied_set_has_upstreams_fields_v1() {
    let set = applied_set(
        &deployment(2, "nginx:1.27"),
        deployment_schema(),
        Scope::WithoutStatus,
    )
    .expect("valid");
    // What kube-apiserver records for `kubectl apply --server-side` of this manifest.
    assert_eq!(
        set.to_fields_v1(),
        json!({
            "f:metadata": { "f:labels": { "f:app": {} } },
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:template": {
                    "f:metadata": { "f:labels": { "f:app": {} } },
                    "f:spec": { "f:containers": { "k:{\"name\":\"web\"}": {
                        ".": {},
                        "f:image": {},
                        "f:name": {},
                        "f:ports": { "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {},
                            "f:containerPort": {},
                        } },
                    } } },
                },
            },
        })
    );
}

#[test]
fn fields_v1_round_trips() {
    let wire = json!({
        "f:metadata": { "f:finalizers": { ".": {}, "v:\"a\"": {} }, "f:labels": { ".": {}, "f:x": {} } },
        "f:data": {},
    });
    let set = FieldSet::from_fields_v1(&wire).expect("fieldsV1");
    assert!(set.contains(&["f:metadata".into(), "f:labels".into()]));
    assert!(set.contains(&["f:metadata".into(), "f:labels".into(), "f:x".into()]));
    assert!(!set.contains(&["f:metadata".into()]));
    assert!(set.contains(&["f:data".into()]));
    assert_eq!(set.to_fields_v1(), wire);
}

#[test]
fn paths_print_as_upstream_does() {
    let path: Vec<String> = [
        "f:spec",
        "f:containers",
        "k:{\"name\":\"web\"}",
        "f:ports",
        "k:{\"containerPort\":80,\"protocol\":\"TCP\"}",
        "f:containerPort",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    assert_eq!(
        display_path(&path),
        ".spec.containers[name=\"web\"].ports[containerPort=80,protocol=\"TCP\"].containerPort"
    );
    assert_eq!(
        display_path(&["f:metadata".into(), "f:finalizers".into(), "v:\"x\"".into()]),
        ".metadata.finalizers[=\"x\"]"
    );
}

#[test]
fn merge_keeps_keyed_items_sets_and_replaces_atomic_lists() {
    let schema = schema_of("", "Pod");
    let live = json!({
        "metadata": { "finalizers": ["a"], "labels": { "keep": "1" } },
        "spec": { "containers": [
            { "name": "a", "image": "a:1", "args": ["x", "y"] },
            { "name": "b", "image": "b:1" },
        ] },
    });
    let config = json!({
        "metadata": { "finalizers": ["b"], "labels": { "new": "2" } },
        "spec": { "containers": [
            { "name": "b", "image": "b:2" },
            { "name": "a", "args": ["z"] },
            { "name": "c", "image": "c:1" },
        ] },
    });
    let merged = merge(&live, &config, schema).expect("merge");
    assert_eq!(
        merged,
        json!({
            "metadata": { "finalizers": ["a", "b"], "labels": { "keep": "1", "new": "2" } },
            "spec": { "containers": [
                { "name": "a", "image": "a:1", "args": ["z"] },
                { "name": "b", "image": "b:2" },
                { "name": "c", "image": "c:1" },
            ] },
        })
    );
}

#[test]
fn keyed_item_without_its_key_is_an_error() {
    let config =
        json!({ "spec": { "template": { "spec": { "containers": [{ "image": "x" }] } } } });
    let err = applied_set(&config, deployment_schema(), Scope::WithoutStatus).expect_err("no name");
    assert_eq!(
        err.to_string(),
        ".spec.template.spec.containers: element 0: associative list with keys has an element that omits key field \"name\" (and doesn't have default value)"
    );
}

#[test]
fn update_of_a_new_object_owns_what_it_set() {
    let configmap = json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": { "name": "c", "namespace": "default", "uid": "u", "labels": { "a": "b" } },
        "data": { "key": "value" },
    });
    let changes = update_sets(
        None,
        &configmap,
        schema_of("", "ConfigMap"),
        Scope::Everything,
    );
    assert!(changes.removed.is_empty());
    // kube-apiserver records this for `kubectl create configmap c --from-literal=key=value -l a=b`.
    assert_eq!(
        changes.changed.to_fields_v1(),
        json!({
            "f:data": { ".": {}, "f:key": {} },
            "f:metadata": { "f:labels": { ".": {}, "f:a": {} } },
        })
    );
}

#[test]
fn updates_by_one_manager_share_an_entry_and_take_fields_from_others() {
    let schema = deployment_schema();
    let v1 = deployment(2, "nginx:1");
    let mut entries = Vec::new();
    let created = update_sets(None, &v1, schema, Scope::WithoutStatus);
    record_update(&mut entries, "kubectl-create", "apps/v1", "", &created, NOW);
    let v2 = deployment(5, "nginx:1");
    let scaled = update_sets(Some(&v1), &v2, schema, Scope::Everything);
    assert_eq!(
        scaled.changed.to_fields_v1(),
        json!({ "f:spec": { "f:replicas": {} } })
    );
    record_update(&mut entries, "kubectl", "apps/v1", "scale", &scaled, NOW);
    let v3 = deployment(6, "nginx:1");
    let again = update_sets(Some(&v2), &v3, schema, Scope::Everything);
    record_update(&mut entries, "kubectl", "apps/v1", "scale", &again, NOW);
    assert_eq!(entries.len(), 2, "{entries:?}");
    let spec_replicas = ["f:spec".to_owned(), "f:replicas".to_owned()];
    assert!(!entries[0].fields.contains(&spec_replicas));
    assert!(entries[1].fields.contains(&spec_replicas));
    assert_eq!(entries[1].subresource, "scale");

    // Nothing changed: nothing recorded.
    let before = entries.clone();
    let same = update_sets(Some(&v3), &v3, schema, Scope::WithoutStatus);
    record_update(&mut entries, "other", "apps/v1", "", &same, "later");
    assert_eq!(entries, before);
}

#[test]
fn apply_creates_an_entry_and_reapplying_changes_nothing() {
    let live = deployment(2, "nginx:1");
    let applied = apply(
        &live,
        &deployment(2, "nginx:1"),
        deployment_schema(),
        &request("kubectl", false),
    )
    .expect("apply");
    assert_eq!(
        managers(&applied),
        [("kubectl".into(), "Apply".into(), String::new())]
    );
    let again = apply(
        &applied,
        &deployment(2, "nginx:1"),
        deployment_schema(),
        &request("kubectl", false),
    )
    .expect("re-apply");
    assert_eq!(again, applied);
}

#[test]
fn apply_conflicts_with_a_field_another_manager_changed() {
    let schema = deployment_schema();
    let applied = apply(
        &deployment(2, "nginx:1"),
        &deployment(2, "nginx:1"),
        schema,
        &request("kubectl", false),
    )
    .expect("apply");
    // `kubectl scale --replicas=5`.
    let mut scaled = applied.clone();
    scaled["spec"]["replicas"] = json!(5);
    let mut entries = ManagedFieldsEntry::read_all(&scaled);
    let changes = update_sets(Some(&applied), &scaled, schema, Scope::Everything);
    record_update(&mut entries, "kubectl", "apps/v1", "scale", &changes, NOW);
    write_all(&mut scaled, &entries);

    // Re-applying the same manifest changes replicas back: a conflict.
    let err = apply(
        &scaled,
        &deployment(2, "nginx:1"),
        schema,
        &request("kubectl", false),
    )
    .expect_err("conflict");
    assert_eq!(
        err.to_string(),
        format!(
            "Apply failed with 1 conflict: conflict with \"kubectl\" with subresource \"scale\" using apps/v1 at {NOW}: .spec.replicas"
        )
    );
    // Applying the value the other manager set is no conflict: both own it.
    let shared = apply(
        &scaled,
        &deployment(5, "nginx:1"),
        schema,
        &request("kubectl", false),
    )
    .expect("same value");
    let owners = ManagedFieldsEntry::read_all(&shared)
        .iter()
        .filter(|e| e.fields.contains(&["f:spec".into(), "f:replicas".into()]))
        .count();
    assert_eq!(owners, 2);
    // Forced: the applier takes the field.
    let forced = apply(
        &scaled,
        &deployment(3, "nginx:1"),
        schema,
        &request("kubectl", true),
    )
    .expect("forced");
    assert_eq!(forced["spec"]["replicas"], json!(3));
    assert_eq!(
        managers(&forced),
        [("kubectl".into(), "Apply".into(), String::new())]
    );
}

#[test]
fn conflicts_with_several_fields_are_listed_per_manager() {
    let conflicts = vec![
        Conflict {
            manager: "\"b\" using v1".into(),
            path: ".data.x".into(),
        },
        Conflict {
            manager: "\"a\" using v1".into(),
            path: ".data.y".into(),
        },
        Conflict {
            manager: "\"b\" using v1".into(),
            path: ".data.z".into(),
        },
    ];
    assert_eq!(
        conflict_message(&conflicts),
        "Apply failed with 3 conflicts: conflicts with \"a\" using v1:\n- .data.y\nconflicts with \"b\" using v1:\n- .data.x\n- .data.z"
    );
}

#[test]
fn fields_no_longer_applied_are_removed_unless_another_manager_owns_them() {
    let schema = schema_of("", "ConfigMap");
    let config = |data: Value| json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "c" }, "data": data });
    let req = ApplyRequest {
        api_version: "v1",
        scope: Scope::Everything,
        ..request("a", false)
    };
    let first = apply(
        &config(json!({})),
        &config(json!({ "x": "1", "y": "2", "z": "3" })),
        schema,
        &req,
    )
    .expect("apply");
    // Manager b applies z too.
    let req_b = ApplyRequest {
        manager: "b",
        ..req
    };
    let shared = apply(&first, &config(json!({ "z": "3" })), schema, &req_b).expect("apply b");
    // a stops applying y and z: y goes, z stays (b owns it).
    let pruned = apply(&shared, &config(json!({ "x": "1" })), schema, &req).expect("apply a");
    assert_eq!(pruned["data"], json!({ "x": "1", "z": "3" }));

    // Keyed items go too.
    let pod_schema = schema_of("", "Pod");
    let req_pod = ApplyRequest {
        api_version: "v1",
        ..request("a", false)
    };
    let pod = |names: &[&str]| {
        let containers: Vec<Value> = names
            .iter()
            .map(|n| json!({ "name": n, "image": "i" }))
            .collect();
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p" }, "spec": { "containers": containers } })
    };
    let two = apply(&pod(&[]), &pod(&["a", "b"]), pod_schema, &req_pod).expect("two");
    let one = apply(&two, &pod(&["a"]), pod_schema, &req_pod).expect("one");
    assert_eq!(
        one["spec"]["containers"],
        json!([{ "name": "a", "image": "i" }])
    );
}

#[test]
fn manager_from_the_user_agent_is_its_first_part() {
    assert_eq!(
        manager_from_user_agent("kubectl/v1.32.4 (linux/amd64) kubernetes/59526cd"),
        "kubectl"
    );
    assert_eq!(manager_from_user_agent("kube-rs"), "kube-rs");
}
