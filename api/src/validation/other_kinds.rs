//! Validation of the smaller kinds: ConfigMap, Secret, Namespace, HPA, Node, Lease, Event.

use serde_json::{Map, Value};

use super::access::{child, int_at, is_set, list_at, obj_at, str_or_empty};
use super::errors::FieldError;
use super::names::{config_map_key, path_segment_name, qualified_name};
use super::path::FieldPath;
use super::quantity::parse_quantity;

/// Largest total size of a ConfigMap's or Secret's data (`core.MaxSecretSize`).
pub(crate) const MAX_DATA_BYTES: usize = 1024 * 1024;

fn validate_data_keys(
    data: Option<&Map<String, Value>>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> usize {
    let mut total = 0;
    let mut keys: Vec<_> = data.into_iter().flatten().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, value) in keys {
        for msg in config_map_key(key) {
            errs.push(FieldError::invalid(path.key(key), key, &msg));
        }
        total += value.as_str().map_or(0, str::len);
    }
    total
}

/// ConfigMap: keys are config keys, unique across data and binaryData, 1 MiB in total.
pub(crate) fn validate_config_map(obj: &Value, errs: &mut Vec<FieldError>) {
    let data = obj_at(obj, "data");
    let binary = obj_at(obj, "binaryData");
    let mut total = validate_data_keys(data, &FieldPath::root("data"), errs);
    // binaryData is base64 on the wire; its decoded size is about 3/4 of that.
    total += validate_data_keys(binary, &FieldPath::root("binaryData"), errs) * 3 / 4;
    for key in data.into_iter().flat_map(Map::keys) {
        if binary.is_some_and(|b| b.contains_key(key)) {
            errs.push(FieldError::invalid(
                FieldPath::root("data").key(key),
                key,
                "duplicate of key present in binaryData",
            ));
            errs.push(FieldError::invalid(
                FieldPath::root("binaryData").key(key),
                key,
                "duplicate of key present in data",
            ));
        }
    }
    if total > MAX_DATA_BYTES {
        errs.push(FieldError::too_long("", MAX_DATA_BYTES));
    }
}

/// Secret: keys (data and stringData), size, and the keys each built-in type requires.
pub(crate) fn validate_secret(obj: &Value, errs: &mut Vec<FieldError>) {
    let data_path = FieldPath::root("data");
    let mut total = validate_data_keys(obj_at(obj, "data"), &data_path, errs) * 3 / 4;
    total += validate_data_keys(obj_at(obj, "stringData"), &data_path, errs);
    if total > MAX_DATA_BYTES {
        errs.push(FieldError::too_long(&data_path, MAX_DATA_BYTES));
    }
    let has_key = |key: &str| {
        ["data", "stringData"]
            .iter()
            .any(|section| obj_at(obj, section).is_some_and(|m| m.contains_key(key)))
    };
    let required_keys: &[&str] = match str_or_empty(obj, "type") {
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/service-account-token" => {
            let annotations = child(obj, "metadata").get("annotations");
            let named = annotations
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            if !named {
                errs.push(FieldError::required(
                    FieldPath::root("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
            &[]
        }
        _ => &[],
    };
    for key in required_keys {
        if !has_key(key) {
            errs.push(FieldError::required(data_path.key(key), ""));
        }
    }
}

/// Namespace: spec finalizers are qualified names.
pub(crate) fn validate_namespace(obj: &Value, errs: &mut Vec<FieldError>) {
    let path = FieldPath::root("spec").child("finalizers");
    for finalizer in list_at(child(obj, "spec"), "finalizers") {
        let finalizer = finalizer.as_str().unwrap_or("");
        for msg in qualified_name(finalizer) {
            errs.push(FieldError::invalid(&path, finalizer, &msg));
        }
    }
}

/// HorizontalPodAutoscaler (v2 shape; v1's targetCPUUtilizationPercentage too).
pub(crate) fn validate_hpa(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = child(obj, "spec");
    let path = FieldPath::root("spec");
    let min_replicas = int_at(spec, "minReplicas");
    if let Some(min) = min_replicas.filter(|m| *m < 1) {
        errs.push(FieldError::invalid(
            path.child("minReplicas"),
            min,
            "must be greater than or equal to 1",
        ));
    }
    let max_replicas = int_at(spec, "maxReplicas").unwrap_or(0);
    if max_replicas < 1 {
        errs.push(FieldError::invalid(
            path.child("maxReplicas"),
            max_replicas,
            "must be greater than 0",
        ));
    }
    if let Some(min) = min_replicas
        && max_replicas < min
    {
        errs.push(FieldError::invalid(
            path.child("maxReplicas"),
            max_replicas,
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let target = child(spec, "scaleTargetRef");
    let target_path = path.child("scaleTargetRef");
    for key in ["kind", "name"] {
        validate_reference_part(target, key, &target_path, errs);
    }
    if let Some(percent) = int_at(spec, "targetCPUUtilizationPercentage").filter(|p| *p < 1) {
        errs.push(FieldError::invalid(
            path.child("targetCPUUtilizationPercentage"),
            percent,
            "must be greater than 0",
        ));
    }
    for (i, metric) in list_at(spec, "metrics").iter().enumerate() {
        validate_metric(metric, &path.child("metrics").index(i), errs);
    }
    if let Some(behavior) = spec.get("behavior").filter(|b| b.is_object()) {
        for direction in ["scaleUp", "scaleDown"] {
            if let Some(rules) = behavior.get(direction).filter(|r| r.is_object()) {
                validate_scaling_rules(rules, &path.child("behavior").child(direction), errs);
            }
        }
    }
}

/// Metric source types and the field holding each, in upstream's checking order.
const METRIC_SOURCES: [(&str, &str); 5] = [
    ("Object", "object"),
    ("External", "external"),
    ("Pods", "pods"),
    ("Resource", "resource"),
    ("ContainerResource", "containerResource"),
];

/// `sets.List` of the metric source types: sorted.
const METRIC_TYPES_SORTED: [&str; 5] = [
    "ContainerResource",
    "External",
    "Object",
    "Pods",
    "Resource",
];

fn validate_metric(metric: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let metric_type = str_or_empty(metric, "type");
    if metric_type.is_empty() {
        errs.push(FieldError::required(
            path.child("type"),
            "must specify a metric source type",
        ));
    }
    if !METRIC_TYPES_SORTED.contains(&metric_type) {
        errs.push(FieldError::not_supported(
            path.child("type"),
            metric_type,
            &METRIC_TYPES_SORTED,
        ));
    }
    let present: Vec<&str> = METRIC_SOURCES
        .iter()
        .map(|(_, key)| *key)
        .filter(|key| metric.get(*key).is_some_and(Value::is_object))
        .collect();
    // Only the first source present is checked in depth, as upstream does.
    if let Some(first) = present.first() {
        validate_metric_source(first, child(metric, first), &path.child(first), errs);
    }
    let expected = METRIC_SOURCES
        .iter()
        .find(|(t, _)| *t == metric_type)
        .map(|(_, key)| *key);
    if let Some(expected) = expected
        && !present.contains(&expected)
    {
        errs.push(FieldError::required(
            path.child(expected),
            "must populate information for the given metric source",
        ));
    }
    if present.len() > 1 {
        for extra in present.iter().filter(|key| Some(**key) != expected) {
            errs.push(FieldError::forbidden(
                path.child(extra),
                "must populate the given metric source only",
            ));
        }
    }
}

fn validate_metric_source(
    source_key: &str,
    source: &Value,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let target = child(source, "target");
    let target_path = path.child("target");
    let has = |key: &str| is_set(target, key);
    match source_key {
        "object" => {
            let described = child(source, "describedObject");
            let described_path = path.child("describedObject");
            for key in ["kind", "name"] {
                validate_reference_part(described, key, &described_path, errs);
            }
            validate_metric_identifier(child(source, "metric"), &path.child("metric"), errs);
        }
        "external" | "pods" => {
            validate_metric_identifier(child(source, "metric"), &path.child("metric"), errs)
        }
        "resource" | "containerResource" => {
            if str_or_empty(source, "name").is_empty() {
                errs.push(FieldError::required(
                    path.child("name"),
                    "must specify a resource name",
                ));
            }
            if source_key == "containerResource" && str_or_empty(source, "container").is_empty() {
                errs.push(FieldError::required(
                    path.child("container"),
                    "must specify a container",
                ));
            }
        }
        _ => {}
    }
    validate_metric_target(target, &target_path, errs);
    match source_key {
        "object" if !has("value") && !has("averageValue") => errs.push(FieldError::required(
            target_path.child("averageValue"),
            "must set either a target value or averageValue",
        )),
        "external" => {
            if !has("value") && !has("averageValue") {
                errs.push(FieldError::required(
                    target_path.child("averageValue"),
                    "must set either a target value for metric or a per-pod target",
                ));
            }
            if has("value") && has("averageValue") {
                errs.push(FieldError::forbidden(
                    target_path.child("value"),
                    "may not set both a target value for metric and a per-pod target",
                ));
            }
        }
        "pods" if !has("averageValue") => errs.push(FieldError::required(
            target_path.child("averageValue"),
            "must specify a positive target averageValue",
        )),
        "resource" | "containerResource" => {
            if !has("averageUtilization") && !has("averageValue") {
                errs.push(FieldError::required(
                    target_path.child("averageUtilization"),
                    "must set either a target raw value or a target utilization",
                ));
            }
            if has("averageUtilization") && has("averageValue") {
                errs.push(FieldError::forbidden(
                    target_path.child("averageValue"),
                    "may not set both a target raw value and a target utilization",
                ));
            }
        }
        _ => {}
    }
}

fn validate_reference_part(
    reference: &Value,
    key: &str,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let value = str_or_empty(reference, key);
    if value.is_empty() {
        errs.push(FieldError::required(path.child(key), ""));
    } else {
        for msg in path_segment_name(value) {
            errs.push(FieldError::invalid(path.child(key), value, &msg));
        }
    }
}

fn validate_metric_identifier(metric: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let name = str_or_empty(metric, "name");
    if name.is_empty() {
        errs.push(FieldError::required(
            path.child("name"),
            "must specify a metric name",
        ));
    } else {
        for msg in path_segment_name(name) {
            errs.push(FieldError::invalid(path.child("name"), name, &msg));
        }
    }
}

fn validate_metric_target(target: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let target_type = str_or_empty(target, "type");
    if target_type.is_empty() {
        errs.push(FieldError::required(
            path.child("type"),
            "must specify a metric target type",
        ));
    }
    if !["Utilization", "Value", "AverageValue"].contains(&target_type) {
        errs.push(FieldError::invalid(
            path.child("type"),
            target_type,
            "must be either Utilization, Value, or AverageValue",
        ));
    }
    let zero = parse_quantity("0");
    for key in ["value", "averageValue"] {
        if let Some(amount) = target.get(key).filter(|v| !v.is_null()) {
            let text = amount
                .as_str()
                .map_or_else(|| amount.to_string(), str::to_owned);
            let positive = parse_quantity(&text).is_some_and(|q| Some(q) > zero);
            if !positive {
                errs.push(FieldError::invalid(
                    path.child(key),
                    text.as_str(),
                    "must be positive",
                ));
            }
        }
    }
    if let Some(utilization) = int_at(target, "averageUtilization").filter(|u| *u < 1) {
        errs.push(FieldError::invalid(
            path.child("averageUtilization"),
            utilization,
            "must be greater than 0",
        ));
    }
}

fn validate_scaling_rules(rules: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(window) = int_at(rules, "stabilizationWindowSeconds") {
        if window < 0 {
            errs.push(FieldError::invalid(
                path.child("stabilizationWindowSeconds"),
                window,
                "must be greater than or equal to zero",
            ));
        }
        if window > 3600 {
            errs.push(FieldError::invalid(
                path.child("stabilizationWindowSeconds"),
                window,
                "must be less than or equal to 3600",
            ));
        }
    }
    let select_policy = str_or_empty(rules, "selectPolicy");
    if is_set(rules, "selectPolicy") && !["Max", "Min", "Disabled"].contains(&select_policy) {
        errs.push(FieldError::not_supported(
            path.child("selectPolicy"),
            select_policy,
            &["Disabled", "Max", "Min"],
        ));
    }
    let policies = list_at(rules, "policies");
    if policies.is_empty() {
        errs.push(FieldError::required(
            path.child("policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, policy) in policies.iter().enumerate() {
        let item = path.child("policies").index(i);
        let policy_type = str_or_empty(policy, "type");
        if policy_type != "Pods" && policy_type != "Percent" {
            errs.push(FieldError::not_supported(
                item.child("type"),
                policy_type,
                &["Percent", "Pods"],
            ));
        }
        let value = int_at(policy, "value").unwrap_or(0);
        if value <= 0 {
            errs.push(FieldError::invalid(
                item.child("value"),
                value,
                "must be greater than zero",
            ));
        }
        let period = int_at(policy, "periodSeconds").unwrap_or(0);
        if period <= 0 {
            errs.push(FieldError::invalid(
                item.child("periodSeconds"),
                period,
                "must be greater than zero",
            ));
        }
        if period > 1800 {
            errs.push(FieldError::invalid(
                item.child("periodSeconds"),
                period,
                "must be less than or equal to 1800",
            ));
        }
    }
}

/// Node: taints are well-formed.
pub(crate) fn validate_node(obj: &Value, errs: &mut Vec<FieldError>) {
    let path = FieldPath::root("spec").child("taints");
    for (i, taint) in list_at(child(obj, "spec"), "taints").iter().enumerate() {
        let item = path.index(i);
        let key = str_or_empty(taint, "key");
        for msg in qualified_name(key) {
            errs.push(FieldError::invalid(item.child("key"), key, &msg));
        }
        match str_or_empty(taint, "effect") {
            "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
            "" => errs.push(FieldError::required(item.child("effect"), "")),
            other => errs.push(FieldError::not_supported(
                item.child("effect"),
                other,
                &["NoSchedule", "PreferNoSchedule", "NoExecute"],
            )),
        }
    }
}

/// Lease: positive duration, non-negative transitions.
pub(crate) fn validate_lease(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = child(obj, "spec");
    let path = FieldPath::root("spec");
    if let Some(duration) = int_at(spec, "leaseDurationSeconds").filter(|d| *d <= 0) {
        errs.push(FieldError::invalid(
            path.child("leaseDurationSeconds"),
            duration,
            "must be greater than 0",
        ));
    }
    if let Some(transitions) = int_at(spec, "leaseTransitions") {
        super::meta::validate_nonnegative(transitions, &path.child("leaseTransitions"), errs);
    }
}

/// core/v1 Event: the involved object lives in the event's namespace; type Normal or Warning.
pub(crate) fn validate_event(obj: &Value, errs: &mut Vec<FieldError>) {
    let namespace = str_or_empty(child(obj, "metadata"), "namespace");
    let involved = child(obj, "involvedObject");
    let involved_namespace = str_or_empty(involved, "namespace");
    if !involved_namespace.is_empty() && involved_namespace != namespace {
        errs.push(FieldError::invalid(
            FieldPath::root("involvedObject").child("namespace"),
            involved_namespace,
            "does not match event.namespace",
        ));
    }
    let event_type = str_or_empty(obj, "type");
    if !event_type.is_empty() && event_type != "Normal" && event_type != "Warning" {
        errs.push(FieldError::invalid(
            FieldPath::root("type"),
            event_type,
            "has invalid value: must be one of [Normal Warning]",
        ));
    }
}

const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

/// A PersistentVolumeClaimSpec at `path` (a PVC's `spec`, or a StatefulSet claim template's).
pub(crate) fn validate_pvc_spec(spec: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let modes = list_at(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(
            path.child("accessModes"),
            "at least 1 access mode is required",
        ));
    }
    for mode in modes {
        let mode = mode.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&mode) {
            errs.push(FieldError::not_supported(
                path.child("accessModes"),
                mode,
                &ACCESS_MODES,
            ));
        }
    }
    // Upstream names this path `resources[storage]`, without `requests`.
    let storage_path = path.child("resources").key("storage");
    match child(child(spec, "resources"), "requests").get("storage") {
        None | Some(Value::Null) => errs.push(FieldError::required(&storage_path, "")),
        Some(amount) => {
            let text = amount
                .as_str()
                .map_or_else(|| amount.to_string(), str::to_owned);
            let positive = parse_quantity(&text).is_some_and(|q| Some(q) > parse_quantity("0"));
            if !positive {
                errs.push(FieldError::invalid(
                    &storage_path,
                    text.as_str(),
                    "must be greater than zero",
                ));
            }
        }
    }
    let volume_mode = str_or_empty(spec, "volumeMode");
    if is_set(spec, "volumeMode") && volume_mode != "Block" && volume_mode != "Filesystem" {
        errs.push(FieldError::not_supported(
            path.child("volumeMode"),
            volume_mode,
            &["Block", "Filesystem"],
        ));
    }
}

const RBAC_GROUP: &str = "rbac.authorization.k8s.io";

/// RoleBinding and ClusterRoleBinding: a roleRef to a (Cluster)Role of the RBAC group and
/// subjects that name a User, Group or ServiceAccount (`ValidateRoleBinding`).
pub(crate) fn validate_role_binding(obj: &Value, cluster: bool, errs: &mut Vec<FieldError>) {
    let role_ref = child(obj, "roleRef");
    let path = FieldPath::root("roleRef");
    let group = str_or_empty(role_ref, "apiGroup");
    if group != RBAC_GROUP {
        errs.push(FieldError::not_supported(
            path.child("apiGroup"),
            group,
            &[RBAC_GROUP],
        ));
    }
    let kind = str_or_empty(role_ref, "kind");
    let kinds: &[&str] = if cluster {
        &["ClusterRole"]
    } else {
        &["Role", "ClusterRole"]
    };
    if !kinds.contains(&kind) {
        errs.push(FieldError::not_supported(path.child("kind"), kind, kinds));
    }
    if str_or_empty(role_ref, "name").is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    }
    for (i, subject) in list_at(obj, "subjects").iter().enumerate() {
        let path = FieldPath::root("subjects").index(i);
        if str_or_empty(subject, "name").is_empty() {
            errs.push(FieldError::required(path.child("name"), ""));
        }
        let api_group = str_or_empty(subject, "apiGroup");
        match str_or_empty(subject, "kind") {
            "ServiceAccount" => {
                if !api_group.is_empty() {
                    errs.push(FieldError::not_supported(
                        path.child("apiGroup"),
                        api_group,
                        &[""],
                    ));
                }
                if cluster && str_or_empty(subject, "namespace").is_empty() {
                    errs.push(FieldError::required(path.child("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if api_group != RBAC_GROUP {
                    errs.push(FieldError::not_supported(
                        path.child("apiGroup"),
                        api_group,
                        &[RBAC_GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                path.child("kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

/// A StorageClass (storage.k8s.io/v1): a provisioner, and a known reclaim policy and binding mode.
pub(crate) fn validate_storage_class(obj: &Value, errs: &mut Vec<FieldError>) {
    if str_or_empty(obj, "provisioner").is_empty() {
        errs.push(FieldError::required(FieldPath::root("provisioner"), ""));
    }
    let reclaim = str_or_empty(obj, "reclaimPolicy");
    if is_set(obj, "reclaimPolicy") && !matches!(reclaim, "Delete" | "Retain") {
        errs.push(FieldError::not_supported(
            FieldPath::root("reclaimPolicy"),
            reclaim,
            &["Delete", "Retain"],
        ));
    }
    let mode = str_or_empty(obj, "volumeBindingMode");
    if is_set(obj, "volumeBindingMode") && !matches!(mode, "Immediate" | "WaitForFirstConsumer") {
        errs.push(FieldError::not_supported(
            FieldPath::root("volumeBindingMode"),
            mode,
            &["Immediate", "WaitForFirstConsumer"],
        ));
    }
}

/// A PersistentVolume: a storage capacity, access modes and a known reclaim policy.
pub(crate) fn validate_persistent_volume(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = child(obj, "spec");
    let path = FieldPath::root("spec");
    if child(child(spec, "capacity"), "storage").is_null() {
        errs.push(FieldError::required(
            path.child("capacity").key("storage"),
            "",
        ));
    }
    let modes = list_at(spec, "accessModes");
    if modes.is_empty() {
        errs.push(FieldError::required(path.child("accessModes"), ""));
    }
    for mode in modes {
        let mode = mode.as_str().unwrap_or("");
        if !ACCESS_MODES.contains(&mode) {
            errs.push(FieldError::not_supported(
                path.child("accessModes"),
                mode,
                &ACCESS_MODES,
            ));
        }
    }
    let reclaim = str_or_empty(spec, "persistentVolumeReclaimPolicy");
    if is_set(spec, "persistentVolumeReclaimPolicy")
        && !matches!(reclaim, "Delete" | "Retain" | "Recycle")
    {
        errs.push(FieldError::not_supported(
            path.child("persistentVolumeReclaimPolicy"),
            reclaim,
            &["Delete", "Recycle", "Retain"],
        ));
    }
}
