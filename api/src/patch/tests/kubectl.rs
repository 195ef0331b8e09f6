//! The patches kubectl 1.32 really sends, applied to live objects through the built-in metadata.

use serde_json::{Value, json};

use crate::patch::{
    PatchKind, apply_json_patch, apply_merge_patch, apply_patch, apply_strategic_merge_patch,
    schema_for,
};

/// A Deployment as the server stores it: defaulted fields, a sidecar, status.
fn live_deployment() -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "backend"},
            "annotations": {"deployment.kubernetes.io/revision": "1"},
            "finalizers": ["example.com/keep"]
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}
            },
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "nginx:1.25",
                            "imagePullPolicy": "IfNotPresent",
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"containerPort": 80, "protocol": "TCP"}]
                        },
                        {"name": "sidecar", "image": "busybox:1.36"}
                    ],
                    "volumes": [{"name": "data", "emptyDir": {}}],
                    "restartPolicy": "Always"
                }
            }
        },
        "status": {
            "replicas": 2,
            "conditions": [
                {"type": "Available", "status": "True"},
                {"type": "Progressing", "status": "True"}
            ]
        }
    })
}

fn deployment_smp(patch: &Value) -> Value {
    let schema = schema_for("apps", "Deployment").expect("Deployment has metadata");
    apply_strategic_merge_patch(&live_deployment(), patch, schema).expect("patch applies")
}

#[test]
fn apply_three_way_patch_changes_image_and_removes_env_var() {
    // `kubectl apply` after the manifest changed the image and dropped env var B.
    let patch = json!({
        "metadata": {"annotations": {
            "kubectl.kubernetes.io/last-applied-configuration": "{\"kind\":\"Deployment\"}\n"
        }},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}],
                "env": [{"$patch": "delete", "name": "B"}],
                "image": "nginx:1.27",
                "name": "web"
            }]
        }}}
    });
    let result = deployment_smp(&patch);

    let mut expected = live_deployment();
    expected["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"] =
        json!("{\"kind\":\"Deployment\"}\n");
    let web = &mut expected["spec"]["template"]["spec"]["containers"][0];
    web["image"] = json!("nginx:1.27");
    web["env"] = json!([{"name": "A", "value": "1"}]);
    assert_eq!(result, expected);
}

#[test]
fn set_image_patch_changes_only_that_container() {
    // `kubectl set image deployment/web web=nginx:1.27`.
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{"image": "nginx:1.27", "name": "web"}]
    }}}});
    let result = deployment_smp(&patch);

    let containers = &result["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers[0]["name"], "web");
    assert_eq!(containers[0]["image"], "nginx:1.27");
    assert_eq!(
        containers[0]["env"],
        live_deployment()["spec"]["template"]["spec"]["containers"][0]["env"]
    );
    assert_eq!(
        containers[1],
        json!({"name": "sidecar", "image": "busybox:1.36"})
    );
}

#[test]
fn rollout_restart_adds_template_annotation() {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2026-11-23T12:00:00Z"
    }}}}});
    let result = deployment_smp(&patch);

    let mut expected = live_deployment();
    expected["spec"]["template"]["metadata"]["annotations"] =
        json!({"kubectl.kubernetes.io/restartedAt": "2026-11-23T12:00:00Z"});
    assert_eq!(result, expected);
}

#[test]
fn rollout_pause_and_resume() {
    let paused = deployment_smp(&json!({"spec": {"paused": true}}));
    assert_eq!(paused["spec"]["paused"], true);
    let schema = schema_for("apps", "Deployment").unwrap();
    let resumed =
        apply_strategic_merge_patch(&paused, &json!({"spec": {"paused": null}}), schema).unwrap();
    assert_eq!(resumed, live_deployment());
}

#[test]
fn edit_of_labels_adds_changes_and_removes() {
    // `kubectl edit`: a two-way patch between the fetched and the edited object.
    let patch = json!({"metadata": {"labels": {"tier": "frontend", "team": "a", "app": null}}});
    let result = deployment_smp(&patch);
    assert_eq!(
        result["metadata"]["labels"],
        json!({"tier": "frontend", "team": "a"})
    );
    assert_eq!(result["spec"], live_deployment()["spec"]);
}

#[test]
fn apply_switching_to_recreate_clears_rolling_update() {
    let patch = json!({"spec": {"strategy": {
        "$retainKeys": ["type"],
        "rollingUpdate": null,
        "type": "Recreate"
    }}});
    let result = deployment_smp(&patch);
    assert_eq!(result["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn apply_changing_volume_source_drops_the_old_source() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/volumes": [{"name": "data"}],
        "volumes": [{"$retainKeys": ["configMap", "name"], "configMap": {"name": "cfg"}, "name": "data"}]
    }}}});
    let result = deployment_smp(&patch);
    assert_eq!(
        result["spec"]["template"]["spec"]["volumes"],
        json!([{"name": "data", "configMap": {"name": "cfg"}}])
    );
}

#[test]
fn finalizers_merge_as_a_set() {
    let patch = json!({"metadata": {"finalizers": ["example.com/other"]}});
    let result = deployment_smp(&patch);
    assert_eq!(
        result["metadata"]["finalizers"],
        json!(["example.com/other", "example.com/keep"])
    );

    let removal =
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["example.com/keep"]}});
    let result = deployment_smp(&removal);
    assert_eq!(result["metadata"]["finalizers"], json!([]));
}

#[test]
fn status_conditions_merge_by_type() {
    let patch = json!({"status": {"conditions": [{"type": "Progressing", "status": "False"}]}});
    let result = deployment_smp(&patch);
    assert_eq!(
        result["status"]["conditions"],
        json!([{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "False"}])
    );
}

#[test]
fn node_taints_are_replaced_whole() {
    let node = json!({"spec": {"taints": [
        {"key": "a", "effect": "NoSchedule"}, {"key": "b", "effect": "NoSchedule"}
    ]}});
    let patch = json!({"spec": {"taints": [{"key": "c", "effect": "NoExecute"}]}});
    let result =
        apply_strategic_merge_patch(&node, &patch, schema_for("", "Node").unwrap()).unwrap();
    assert_eq!(
        result["spec"]["taints"],
        json!([{"key": "c", "effect": "NoExecute"}])
    );
}

#[test]
fn service_ports_merge_by_port() {
    let service = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}]}});
    let patch = json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}]}});
    let result =
        apply_strategic_merge_patch(&service, &patch, schema_for("", "Service").unwrap()).unwrap();
    assert_eq!(
        result["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
}

#[test]
fn label_merge_patch_adds_and_removes_labels() {
    // `kubectl label deployment web env=prod tier-`.
    let patch = json!({"metadata": {"labels": {"env": "prod", "tier": null}}});
    let result = apply_merge_patch(&live_deployment(), &patch);
    assert_eq!(
        result["metadata"]["labels"],
        json!({"app": "web", "env": "prod"})
    );
}

#[test]
fn scale_merge_patch_sets_replicas() {
    let result = apply_merge_patch(&live_deployment(), &json!({"spec": {"replicas": 5}}));
    assert_eq!(result["spec"]["replicas"], 5);
    assert_eq!(
        result["spec"]["template"],
        live_deployment()["spec"]["template"]
    );
}

#[test]
fn rollout_undo_json_patch_restores_template_and_annotations() {
    let old_template = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"containers": [{"name": "web", "image": "nginx:1.24"}]}
    });
    let patch = json!([
        {"op": "replace", "path": "/spec/template", "value": old_template},
        {"op": "replace", "path": "/metadata/annotations", "value": {"deployment.kubernetes.io/revision": "3"}}
    ]);
    let result = apply_json_patch(&live_deployment(), &patch).unwrap();
    assert_eq!(result["spec"]["template"], old_template);
    assert_eq!(
        result["metadata"]["annotations"],
        json!({"deployment.kubernetes.io/revision": "3"})
    );
}

#[test]
fn apply_patch_dispatches_on_content_type() {
    let kind =
        PatchKind::from_content_type("application/strategic-merge-patch+json; charset=utf-8");
    assert_eq!(kind, Some(PatchKind::StrategicMerge));
    assert_eq!(
        PatchKind::from_content_type("application/apply-patch+yaml"),
        None
    );

    let schema = schema_for("apps", "Deployment");
    let patch = json!({"spec": {"replicas": 4}});
    let result = apply_patch(
        PatchKind::StrategicMerge,
        &live_deployment(),
        &patch,
        schema,
    )
    .unwrap();
    assert_eq!(result["spec"]["replicas"], 4);

    let crd_error = apply_patch(PatchKind::StrategicMerge, &json!({}), &patch, None).unwrap_err();
    assert_eq!(crd_error.status_code(), 415);
}
