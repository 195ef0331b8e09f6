//! Computing strategic merge patches as kubectl does, and the round trip through applying them.

use serde_json::{Value, json};

use crate::patch::{
    apply_strategic_merge_patch, create_three_way_merge_patch, create_two_way_merge_patch,
    schema_for,
};

fn deployment(image: &str, env: Value) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [
                    {"name": "web", "image": image, "env": env},
                    {"name": "sidecar", "image": "busybox"}
                ]}
            }
        }
    })
}

#[test]
fn two_way_patch_matches_kubectl_and_round_trips() {
    let schema = schema_for("apps", "Deployment").unwrap();
    let original = deployment(
        "nginx:1.25",
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
    );
    let modified = deployment("nginx:1.27", json!([{"name": "A", "value": "1"}]));

    let patch = create_two_way_merge_patch(&original, &modified, schema).unwrap();
    assert_eq!(
        patch,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "image": "nginx:1.27",
                "name": "web"
            }]
        }}}})
    );
    assert_eq!(
        apply_strategic_merge_patch(&original, &patch, schema).unwrap(),
        modified
    );
}

#[test]
fn identical_objects_give_an_empty_patch() {
    let schema = schema_for("apps", "Deployment").unwrap();
    let object = deployment("nginx", json!([{"name": "A"}]));
    assert_eq!(
        create_two_way_merge_patch(&object, &object, schema).unwrap(),
        json!({})
    );
    assert_eq!(
        create_three_way_merge_patch(&object, &object, &object, schema).unwrap(),
        json!({})
    );
}

#[test]
fn three_way_patch_keeps_fields_set_by_others() {
    let schema = schema_for("apps", "Deployment").unwrap();
    let last_applied = deployment(
        "nginx:1.25",
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]),
    );
    let modified = deployment("nginx:1.27", json!([{"name": "A", "value": "1"}]));
    // The live object: defaulted fields, an annotation added by a controller, a scaled replica
    // count, and an env var added by `kubectl set env`.
    let mut current = last_applied.clone();
    current["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "4"});
    current["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
    current["spec"]["template"]["spec"]["containers"][0]["env"] = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "2"}, {"name": "C", "value": "3"}]);

    let patch = create_three_way_merge_patch(&last_applied, &modified, &current, schema).unwrap();
    assert_eq!(
        patch,
        json!({"spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "image": "nginx:1.27",
                "name": "web"
            }]
        }}}})
    );

    let result = apply_strategic_merge_patch(&current, &patch, schema).unwrap();
    let web = &result["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(web["image"], "nginx:1.27");
    assert_eq!(web["imagePullPolicy"], "IfNotPresent");
    assert_eq!(
        web["env"],
        json!([{"name": "A", "value": "1"}, {"name": "C", "value": "3"}])
    );
    assert_eq!(
        result["metadata"]["annotations"],
        current["metadata"]["annotations"]
    );
}

#[test]
fn three_way_patch_reverts_drift_of_applied_fields() {
    let schema = schema_for("apps", "Deployment").unwrap();
    let applied = deployment("nginx", json!([]));
    let mut current = applied.clone();
    current["spec"]["replicas"] = json!(7);
    let patch = create_three_way_merge_patch(&applied, &applied, &current, schema).unwrap();
    assert_eq!(patch, json!({"spec": {"replicas": 2}}));
}

#[test]
fn primitive_merge_list_removal_uses_delete_list_and_order() {
    let schema = schema_for("", "ConfigMap").unwrap();
    let original = json!({"metadata": {"finalizers": ["a", "b", "c"]}});
    let modified = json!({"metadata": {"finalizers": ["c", "a"]}});
    let patch = create_two_way_merge_patch(&original, &modified, schema).unwrap();
    assert_eq!(
        patch,
        json!({"metadata": {
            "$deleteFromPrimitiveList/finalizers": ["b"],
            "$setElementOrder/finalizers": ["c", "a"]
        }})
    );
    assert_eq!(
        apply_strategic_merge_patch(&original, &patch, schema).unwrap(),
        modified
    );
}

#[test]
fn retain_keys_field_gets_a_retain_keys_directive() {
    let schema = schema_for("apps", "Deployment").unwrap();
    let original =
        json!({"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}});
    let modified = json!({"spec": {"strategy": {"type": "Recreate"}}});
    let patch = create_two_way_merge_patch(&original, &modified, schema).unwrap();
    assert_eq!(
        patch,
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": null, "type": "Recreate"}}})
    );
    assert_eq!(
        apply_strategic_merge_patch(&original, &patch, schema).unwrap(),
        modified
    );
}

#[test]
fn two_way_patches_round_trip() {
    let pod = schema_for("", "Pod").unwrap();
    let pairs = [
        (json!({}), json!({"metadata": {"name": "p"}})),
        (
            json!({"metadata": {"labels": {"a": "1", "b": "2"}}}),
            json!({"metadata": {"labels": {"b": "3"}}}),
        ),
        (
            json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}}),
            json!({"spec": {"containers": [{"name": "c"}, {"name": "a", "image": "x"}]}}),
        ),
        (
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}, {"containerPort": 443}]}]}}),
            json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 443, "name": "https"}]}]}}),
        ),
        (
            json!({"spec": {"volumes": [{"name": "v", "emptyDir": {}}]}}),
            json!({"spec": {"volumes": [{"name": "v", "hostPath": {"path": "/x"}}]}}),
        ),
        (
            json!({"spec": {"tolerations": [{"key": "a"}]}}),
            json!({"spec": {"tolerations": [{"key": "b"}]}}),
        ),
        (
            json!({"metadata": {"finalizers": ["x"]}}),
            json!({"metadata": {"finalizers": ["y", "x", "z"]}}),
        ),
        (
            json!({"spec": {"nodeName": "n1", "hostNetwork": true}}),
            json!({"spec": {"nodeName": "n2"}}),
        ),
    ];
    for (original, modified) in pairs {
        let patch = create_two_way_merge_patch(&original, &modified, pod).unwrap();
        let result = apply_strategic_merge_patch(&original, &patch, pod).unwrap();
        assert_eq!(result, modified, "patch {patch} from {original}");
    }
}

/// Whether every field of `wanted` is in `actual` with the same value; lists must have the
/// same length and contain their counterpart item by item.
fn contains(actual: &Value, wanted: &Value) -> bool {
    match (actual, wanted) {
        (Value::Object(actual), Value::Object(wanted)) => wanted
            .iter()
            .all(|(key, value)| actual.get(key).is_some_and(|found| contains(found, value))),
        (Value::Array(actual), Value::Array(wanted)) => {
            actual.len() == wanted.len() && actual.iter().zip(wanted).all(|(a, w)| contains(a, w))
        }
        _ => actual == wanted,
    }
}

#[test]
fn three_way_patches_yield_the_modified_fields_and_keep_server_defaults() {
    let schema = schema_for("apps", "Deployment").unwrap();
    let base = deployment("nginx:1", json!([{"name": "A", "value": "1"}]));
    let with = |path: &[&str], value: Value| {
        let mut object = base.clone();
        let mut cursor = &mut object;
        for segment in path {
            cursor = &mut cursor[*segment];
        }
        *cursor = value;
        object
    };
    let containers = ["spec", "template", "spec", "containers"];
    let modified_variants = [
        with(&["spec", "replicas"], json!(5)),
        with(&["metadata", "labels"], json!({"app": "web", "new": "x"})),
        with(&containers, json!([{"name": "web", "image": "nginx:2"}])),
        with(
            &containers,
            json!([{"name": "sidecar", "image": "busybox"}, {"name": "web", "image": "nginx:1"}]),
        ),
        with(&["spec", "strategy"], json!({"type": "Recreate"})),
    ];
    // The server defaulted some fields the user never set.
    let mut current = base.clone();
    current["spec"]["revisionHistoryLimit"] = json!(10);
    current["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("Always");
    current["status"] = json!({"replicas": 2});

    for modified in modified_variants {
        let patch = create_three_way_merge_patch(&base, &modified, &current, schema).unwrap();
        let result = apply_strategic_merge_patch(&current, &patch, schema).unwrap();
        assert!(contains(&result, &modified), "patch {patch} gave {result}");
        assert_eq!(result["spec"]["revisionHistoryLimit"], 10, "patch {patch}");
        assert_eq!(result["status"], current["status"], "patch {patch}");
    }
}
