//! Defaults for core-group kinds other than Pod (upstream `core/v1/defaults.go` and the
//! create strategies of the Namespace and Service registries).

use serde_json::{Value, json};

use super::json::{
    child_object, ensure_object, for_each_item, is_unset, is_zero, set_default,
    set_default_if_zero, str_field,
};
use super::pod::default_pod_template;

/// ReplicationController: selector and labels from the template labels, one replica.
pub(super) fn default_replication_controller(rc: &mut Value) {
    let Some(spec) = ensure_object(rc, "spec") else {
        return;
    };
    let template_labels = spec
        .get("template")
        .and_then(|t| t.get("metadata"))
        .and_then(|m| m.get("labels"))
        .filter(|labels| labels.is_object())
        .cloned();
    if let Some(template) = child_object(spec, "template") {
        default_pod_template(template);
    }
    if let Some(labels) = &template_labels {
        set_default_if_zero(spec, "selector", labels.clone());
    }
    set_default(spec, "replicas", json!(1));
    if let Some(labels) = template_labels
        && let Some(metadata) = ensure_object(rc, "metadata")
    {
        set_default_if_zero(metadata, "labels", labels);
    }
}

/// Service: type ClusterIP, session affinity, port protocol/targetPort, traffic policies and
/// the single-stack IPv4 family the allocator picks for Tugboat's IPv4-only service CIDR.
pub(super) fn default_service(service: &mut Value) {
    let Some(spec) = ensure_object(service, "spec") else {
        return;
    };
    set_default_if_zero(spec, "sessionAffinity", json!("None"));
    match str_field(spec, "sessionAffinity") {
        Some("None") => {
            if let Some(map) = spec.as_object_mut() {
                map.remove("sessionAffinityConfig");
            }
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .pointer("/sessionAffinityConfig/clientIP/timeoutSeconds")
                .is_some_and(|t| !t.is_null());
            if !has_timeout && let Some(map) = spec.as_object_mut() {
                map.insert(
                    "sessionAffinityConfig".to_owned(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    set_default_if_zero(spec, "type", json!("ClusterIP"));
    for_each_item(spec, "ports", |port| {
        set_default_if_zero(port, "protocol", json!("TCP"));
        if let Some(number) = port.get("port").cloned() {
            set_default_if_zero(port, "targetPort", number);
        }
    });
    let service_type = str_field(spec, "type").unwrap_or("").to_owned();
    let externally_accessible = service_type == "NodePort"
        || service_type == "LoadBalancer"
        || spec
            .get("externalIPs")
            .and_then(Value::as_array)
            .is_some_and(|ips| !ips.is_empty());
    if externally_accessible {
        set_default_if_zero(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if matches!(
        service_type.as_str(),
        "ClusterIP" | "NodePort" | "LoadBalancer"
    ) {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
        // What the registry's IP allocator stores for an IPv4-only cluster.
        set_default(spec, "ipFamilyPolicy", json!("SingleStack"));
        set_default_if_zero(spec, "ipFamilies", json!(["IPv4"]));
    }
    if service_type == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
}

/// Namespace: the `kubernetes.io/metadata.name` label and phase Active.
pub(super) fn default_namespace(namespace: &mut Value) {
    let name = namespace
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty())
        .map(str::to_owned);
    if let Some(name) = name
        && let Some(metadata) = ensure_object(namespace, "metadata")
        && let Some(labels) = ensure_object(metadata, "labels")
        && let Some(labels) = labels.as_object_mut()
    {
        // Upstream overwrites this label unconditionally, so it always matches the name.
        labels.insert("kubernetes.io/metadata.name".to_owned(), json!(name));
    }
    if let Some(status) = ensure_object(namespace, "status") {
        set_default_if_zero(status, "phase", json!("Active"));
    }
}

/// On create only: the `kubernetes` finalizer, which the namespace controller removes
/// once the namespace is empty (upstream's namespace strategy `PrepareForCreate`).
pub(super) fn default_namespace_finalizers(namespace: &mut Value) {
    let Some(spec) = ensure_object(namespace, "spec") else {
        return;
    };
    set_default(spec, "finalizers", json!([]));
    if let Some(Value::Array(finalizers)) = spec.get_mut("finalizers")
        && !finalizers.iter().any(|f| f.as_str() == Some("kubernetes"))
    {
        finalizers.push(json!("kubernetes"));
    }
}

/// Secret: type Opaque.
pub(super) fn default_secret(secret: &mut Value) {
    set_default_if_zero(secret, "type", json!("Opaque"));
}

/// Node: allocatable defaults to capacity.
pub(super) fn default_node(node: &mut Value) {
    if let Some(status) = child_object(node, "status")
        && is_unset(status, "allocatable")
        && let Some(capacity) = status.get("capacity").filter(|c| c.is_object()).cloned()
    {
        set_default(status, "allocatable", capacity);
    }
}

/// PersistentVolumeClaim: volume mode Filesystem and phase Pending.
pub(super) fn default_persistent_volume_claim(pvc: &mut Value) {
    if let Some(spec) = ensure_object(pvc, "spec") {
        default_pvc_spec(spec);
    }
    if let Some(status) = ensure_object(pvc, "status") {
        set_default_if_zero(status, "phase", json!("Pending"));
    }
}

/// PersistentVolume: reclaim policy Retain, volume mode Filesystem, phase Pending.
pub(super) fn default_persistent_volume(pv: &mut Value) {
    if let Some(spec) = ensure_object(pv, "spec") {
        set_default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set_default(spec, "volumeMode", json!("Filesystem"));
    }
    if let Some(status) = ensure_object(pv, "status") {
        set_default_if_zero(status, "phase", json!("Pending"));
    }
}

/// StorageClass (storage.k8s.io/v1): reclaim policy Delete, binding mode Immediate.
pub(super) fn default_storage_class(class: &mut Value) {
    set_default(class, "reclaimPolicy", json!("Delete"));
    set_default(class, "volumeBindingMode", json!("Immediate"));
}

/// A PersistentVolumeClaimSpec, also used inside StatefulSet and ephemeral-volume templates.
pub(super) fn default_pvc_spec(spec: &mut Value) {
    set_default(spec, "volumeMode", json!("Filesystem"));
}

/// Endpoints: port protocol TCP.
pub(super) fn default_endpoints(endpoints: &mut Value) {
    for_each_item(endpoints, "subsets", |subset| {
        for_each_item(subset, "ports", |port| {
            if is_zero(port, "protocol") {
                set_default_if_zero(port, "protocol", json!("TCP"));
            }
        });
    });
}
