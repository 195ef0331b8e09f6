//! Pod, PodSpec, container, probe and volume defaults (upstream `core/v1/defaults.go`).

use serde_json::{Value, json};

use super::core::default_pvc_spec;
use super::json::{
    child_object, ensure_object, for_each_item, is_unset, set_default, set_default_if_zero,
    str_field,
};

/// Container lists of a PodSpec that share the container defaults.
const CONTAINER_LISTS: [&str; 3] = ["initContainers", "containers", "ephemeralContainers"];

/// Defaults a whole Pod: its spec, plus what upstream applies only to Pods (not templates).
pub(super) fn default_pod(pod: &mut Value) {
    let Some(spec) = ensure_object(pod, "spec") else {
        return;
    };
    default_pod_spec(spec);
    // Requests default to limits only on Pods, so templates keep what the user wrote.
    for list in ["containers", "initContainers"] {
        for_each_item(spec, list, default_requests_from_limits);
    }
    set_default(spec, "enableServiceLinks", json!(true));
    if spec.get("hostNetwork") == Some(&Value::Bool(true)) {
        for list in ["containers", "initContainers"] {
            for_each_item(spec, list, |container| {
                for_each_item(container, "ports", |port| {
                    if let Some(container_port) = port.get("containerPort").cloned() {
                        set_default_if_zero(port, "hostPort", container_port);
                    }
                });
            });
        }
    }
}

/// Fields the ServiceAccount, Priority and DefaultTolerationSeconds admission plugins set on
/// every new Pod.
pub(super) fn default_pod_admission(spec: &mut Value, toleration_seconds: i64) {
    // ServiceAccount admission; the deprecated `serviceAccount` mirrors it on the wire.
    set_default_if_zero(spec, "serviceAccountName", json!("default"));
    if let Some(name) = spec.get("serviceAccountName").cloned() {
        set_default_if_zero(spec, "serviceAccount", name);
    }
    // Priority admission with no PriorityClass: priority 0, preempting lower priorities.
    if is_unset(spec, "priorityClassName") {
        set_default(spec, "priority", json!(0));
    }
    set_default(spec, "preemptionPolicy", json!("PreemptLowerPriority"));
    // DefaultTolerationSeconds admission: tolerate not-ready/unreachable nodes for a while.
    set_default(spec, "tolerations", json!([]));
    if let Some(Value::Array(tolerations)) = spec.get_mut("tolerations") {
        for taint in [
            "node.kubernetes.io/not-ready",
            "node.kubernetes.io/unreachable",
        ] {
            let tolerated = tolerations.iter().any(|t| {
                let effect = str_field(t, "effect").unwrap_or("");
                let key = str_field(t, "key").unwrap_or("");
                let operator = str_field(t, "operator").unwrap_or("Equal");
                (effect.is_empty() || effect == "NoExecute")
                    && (key == taint || (key.is_empty() && operator == "Exists"))
            });
            if !tolerated {
                tolerations.push(json!({
                    "key": taint,
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": toleration_seconds,
                }));
            }
        }
    }
}

/// Defaults a PodTemplateSpec (`{metadata, spec}`) as embedded in workloads and PodTemplate.
pub(super) fn default_pod_template(template: &mut Value) {
    if let Some(spec) = ensure_object(template, "spec") {
        default_pod_spec(spec);
    }
}

/// Defaults shared by Pods and pod templates (`SetDefaults_PodSpec` and nested types).
pub(super) fn default_pod_spec(spec: &mut Value) {
    set_default_if_zero(spec, "dnsPolicy", json!("ClusterFirst"));
    set_default_if_zero(spec, "restartPolicy", json!("Always"));
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default_if_zero(spec, "schedulerName", json!("default-scheduler"));
    for list in CONTAINER_LISTS {
        for_each_item(spec, list, default_container);
    }
    for_each_item(spec, "volumes", default_volume);
}

fn default_container(container: &mut Value) {
    if super::json::is_zero(container, "imagePullPolicy") {
        let image = str_field(container, "image").unwrap_or("");
        let policy = if image_tag(image) == "latest" {
            "Always"
        } else {
            "IfNotPresent"
        };
        set_default_if_zero(container, "imagePullPolicy", json!(policy));
    }
    set_default_if_zero(
        container,
        "terminationMessagePath",
        json!("/dev/termination-log"),
    );
    set_default_if_zero(container, "terminationMessagePolicy", json!("File"));
    for_each_item(container, "ports", |port| {
        set_default_if_zero(port, "protocol", json!("TCP"));
    });
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(probe) = child_object(container, probe) {
            default_probe(probe);
        }
    }
    if let Some(lifecycle) = child_object(container, "lifecycle") {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = child_object(lifecycle, hook) {
                default_handler(handler);
            }
        }
    }
    for_each_item(container, "env", |env| {
        if let Some(value_from) = child_object(env, "valueFrom")
            && let Some(field_ref) = child_object(value_from, "fieldRef")
        {
            set_default_if_zero(field_ref, "apiVersion", json!("v1"));
        }
    });
}

/// The tag kubelet and upstream defaulting see in an image reference: `"latest"` when the
/// reference has neither tag nor digest, `""` when it has only a digest or is empty.
pub(crate) fn image_tag(image: &str) -> &str {
    if image.is_empty() {
        return "";
    }
    let (name, has_digest) = match image.split_once('@') {
        Some((name, _digest)) => (name, true),
        None => (image, false),
    };
    // Only the last path component may carry a tag: `host:5000/app` has a port, not a tag.
    let last_component = name.rsplit('/').next().unwrap_or(name);
    match last_component.split_once(':') {
        Some((_, tag)) => tag,
        None if has_digest => "",
        None => "latest",
    }
}

fn default_probe(probe: &mut Value) {
    set_default_if_zero(probe, "timeoutSeconds", json!(1));
    set_default_if_zero(probe, "periodSeconds", json!(10));
    set_default_if_zero(probe, "successThreshold", json!(1));
    set_default_if_zero(probe, "failureThreshold", json!(3));
    default_handler(probe);
}

fn default_handler(handler: &mut Value) {
    if let Some(http_get) = child_object(handler, "httpGet") {
        set_default_if_zero(http_get, "path", json!("/"));
        set_default_if_zero(http_get, "scheme", json!("HTTP"));
    }
    if let Some(grpc) = child_object(handler, "grpc") {
        set_default(grpc, "service", json!(""));
    }
}

/// Keys of a Volume object that are not a volume source.
const VOLUME_NON_SOURCE_KEYS: [&str; 1] = ["name"];

fn default_volume(volume: &mut Value) {
    let has_source = volume.as_object().is_some_and(|map| {
        map.iter()
            .any(|(key, value)| !VOLUME_NON_SOURCE_KEYS.contains(&key.as_str()) && !value.is_null())
    });
    if !has_source {
        set_default(volume, "emptyDir", json!({}));
    }
    for source in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(source) = child_object(volume, source) {
            set_default(source, "defaultMode", json!(420));
            for_each_item(source, "items", default_downward_api_item);
        }
    }
    if let Some(projected) = child_object(volume, "projected") {
        for_each_item(projected, "sources", |projection| {
            if let Some(token) = child_object(projection, "serviceAccountToken") {
                set_default(token, "expirationSeconds", json!(3600));
            }
            if let Some(downward) = child_object(projection, "downwardAPI") {
                for_each_item(downward, "items", default_downward_api_item);
            }
        });
    }
    if let Some(host_path) = child_object(volume, "hostPath") {
        set_default(host_path, "type", json!(""));
    }
    if let Some(ephemeral) = child_object(volume, "ephemeral")
        && let Some(template) = child_object(ephemeral, "volumeClaimTemplate")
        && let Some(spec) = child_object(template, "spec")
    {
        default_pvc_spec(spec);
    }
}

fn default_downward_api_item(item: &mut Value) {
    if let Some(field_ref) = child_object(item, "fieldRef") {
        set_default_if_zero(field_ref, "apiVersion", json!("v1"));
    }
}

fn default_requests_from_limits(container: &mut Value) {
    let Some(resources) = child_object(container, "resources") else {
        return;
    };
    let Some(Value::Object(limits)) = resources.get("limits").cloned() else {
        return;
    };
    if limits.is_empty() {
        return;
    }
    let Some(Value::Object(requests)) = ensure_object(resources, "requests") else {
        return;
    };
    for (resource, quantity) in limits {
        requests.entry(resource).or_insert(quantity);
    }
}
