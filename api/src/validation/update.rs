//! Update validation: the create rules on the new object plus what may not change
//! (object identity, selectors, a Service's cluster IP, most of a Pod's spec, immutable
//! ConfigMaps and Secrets, a Job's selector and template).

use serde_json::{Map, Value};

use super::access::{child, list_at, str_or_empty};
use super::errors::{BadValue, FieldError, go_quote};
use super::path::FieldPath;
use super::workloads::go_label_selector;

const POD_UPDATE_FORBIDDEN: &str = "pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)";

const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";

/// Validates `new` as a replacement for the stored `old` object of `group`/`kind`.
///
/// Empty identity fields in `new` (uid, creationTimestamp) and an empty Service clusterIP
/// are taken to mean "keep the stored value", as the API server fills them from `old`.
pub fn validate_update(group: &str, kind: &str, new: &Value, old: &Value) -> Vec<FieldError> {
    let mut errs = super::validate_create(group, kind, new);
    if errs
        .iter()
        .any(|e| e.reason == super::ErrorReason::FieldValueTypeInvalid)
    {
        return errs;
    }
    validate_meta_update(new, old, &mut errs);
    let spec_path = FieldPath::root("spec");
    match (group, kind) {
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet") => {
            let new_selector = new.get("spec").and_then(|s| s.get("selector"));
            let old_selector = old.get("spec").and_then(|s| s.get("selector"));
            if !same(new_selector, old_selector) {
                errs.push(FieldError::invalid(
                    spec_path.child("selector"),
                    go_label_selector(new_selector),
                    "field is immutable",
                ));
            }
            if kind == "StatefulSet" {
                validate_stateful_set_update(new, old, &mut errs);
            }
        }
        ("batch", "Job") => {
            for key in ["selector", "template"] {
                let new_value = new.get("spec").and_then(|s| s.get(key));
                let old_value = old.get("spec").and_then(|s| s.get(key));
                if !same(new_value, old_value) {
                    let shown = if key == "selector" {
                        go_label_selector(new_value)
                    } else {
                        BadValue::Go(new_value.cloned().unwrap_or(Value::Null).to_string())
                    };
                    errs.push(FieldError::invalid(
                        spec_path.child(key),
                        shown,
                        "field is immutable",
                    ));
                }
            }
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            let (new_ref, old_ref) = (child(new, "roleRef"), child(old, "roleRef"));
            if new_ref != old_ref {
                let shown = format!(
                    "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
                    go_quote(str_or_empty(new_ref, "apiGroup")),
                    go_quote(str_or_empty(new_ref, "kind")),
                    go_quote(str_or_empty(new_ref, "name")),
                );
                errs.push(FieldError::invalid(
                    FieldPath::root("roleRef"),
                    BadValue::Go(shown),
                    "cannot change roleRef",
                ));
            }
        }
        ("", "Service") => validate_service_update(new, old, &mut errs),
        ("", "Pod") => validate_pod_update(new, old, &mut errs),
        ("", "ConfigMap") => validate_immutable_data(new, old, &["data", "binaryData"], &mut errs),
        ("", "Secret") => {
            validate_immutable_data(new, old, &["data", "stringData"], &mut errs);
            let (new_type, old_type) = (str_or_empty(new, "type"), str_or_empty(old, "type"));
            if new_type != old_type {
                errs.push(FieldError::invalid(
                    FieldPath::root("type"),
                    new_type,
                    "field is immutable",
                ));
            }
        }
        _ => {}
    }
    errs
}

fn validate_meta_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let (new_meta, old_meta) = (child(new, "metadata"), child(old, "metadata"));
    let path = FieldPath::root("metadata");
    for key in ["name", "namespace"] {
        let new_value = str_or_empty(new_meta, key);
        if new_value != str_or_empty(old_meta, key) {
            errs.push(FieldError::invalid(
                path.child(key),
                new_value,
                "field is immutable",
            ));
        }
    }
    let uid = str_or_empty(new_meta, "uid");
    if !uid.is_empty() && uid != str_or_empty(old_meta, "uid") {
        errs.push(FieldError::invalid(
            path.child("uid"),
            uid,
            "field is immutable",
        ));
    }
    let created = str_or_empty(new_meta, "creationTimestamp");
    if !created.is_empty() && created != str_or_empty(old_meta, "creationTimestamp") {
        errs.push(FieldError::invalid(
            path.child("creationTimestamp"),
            BadValue::Go(go_time(created)),
            "field is immutable",
        ));
    }
}

/// `2025-01-02T03:04:05Z` as Go's `time.Time.String()` prints it.
fn go_time(rfc3339: &str) -> String {
    match rfc3339.strip_suffix('Z').and_then(|t| t.split_once('T')) {
        Some((date, time)) => format!("{date} {time} +0000 UTC"),
        None => rfc3339.to_owned(),
    }
}

const STATEFUL_SET_MUTABLE: [&str; 7] = [
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "revisionHistoryLimit",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
];

fn validate_stateful_set_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let strip = |obj: &Value| -> Value {
        let mut spec = child(obj, "spec").clone();
        if let Some(map) = spec.as_object_mut() {
            for key in STATEFUL_SET_MUTABLE.iter().chain(["selector"].iter()) {
                map.remove(*key);
            }
        }
        spec
    };
    if !same(Some(&strip(new)), Some(&strip(old))) {
        errs.push(FieldError::forbidden(
            FieldPath::root("spec"),
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

fn validate_service_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let (new_spec, old_spec) = (child(new, "spec"), child(old, "spec"));
    // Converting to or from ExternalName releases or allocates the IP: any change is fine.
    if str_or_empty(new_spec, "type") == "ExternalName"
        || str_or_empty(old_spec, "type") == "ExternalName"
    {
        return;
    }
    let (new_ip, old_ip) = (
        str_or_empty(new_spec, "clusterIP"),
        str_or_empty(old_spec, "clusterIP"),
    );
    if !new_ip.is_empty() && !old_ip.is_empty() && new_ip != old_ip {
        errs.push(FieldError::invalid(
            FieldPath::root("spec").child("clusterIPs").index(0),
            BadValue::Go(format!("[]string{{{}}}", go_quote(new_ip))),
            "may not change once set",
        ));
    }
}

fn validate_immutable_data(
    new: &Value,
    old: &Value,
    sections: &[&str],
    errs: &mut Vec<FieldError>,
) {
    if old.get("immutable").and_then(Value::as_bool) != Some(true) {
        return;
    }
    if new.get("immutable").and_then(Value::as_bool) != Some(true) {
        errs.push(FieldError::forbidden(
            FieldPath::root("immutable"),
            IMMUTABLE_WHEN_SET,
        ));
    }
    for section in sections {
        if !same(new.get(*section), old.get(*section)) {
            errs.push(FieldError::forbidden(
                FieldPath::root(section),
                IMMUTABLE_WHEN_SET,
            ));
        }
    }
}

/// Upstream's `ValidatePodUpdate`: copy what may change from the old spec into the new
/// one, then any remaining difference is forbidden.
fn validate_pod_update(new: &Value, old: &Value, errs: &mut Vec<FieldError>) {
    let old_spec = child(old, "spec");
    let mut new_spec = child(new, "spec").clone();
    let Some(spec) = new_spec.as_object_mut() else {
        return;
    };
    for list in ["containers", "initContainers"] {
        let old_containers = list_at(old_spec, list);
        if let Some(Value::Array(containers)) = spec.get_mut(list)
            && containers.len() == old_containers.len()
        {
            for (container, old_container) in containers.iter_mut().zip(old_containers) {
                if let (Some(container), Some(old_image)) =
                    (container.as_object_mut(), old_container.get("image"))
                {
                    container.insert("image".to_owned(), old_image.clone());
                }
            }
        }
    }
    let new_deadline = spec.get("activeDeadlineSeconds").and_then(Value::as_i64);
    let old_deadline = old_spec
        .get("activeDeadlineSeconds")
        .and_then(Value::as_i64);
    let deadline_ok = match (new_deadline, old_deadline) {
        (Some(_), None) => true,
        (Some(new), Some(old)) => new <= old,
        (None, old) => old.is_none(),
    };
    if deadline_ok {
        copy_field(spec, old_spec, "activeDeadlineSeconds");
    }
    let old_tolerations = list_at(old_spec, "tolerations");
    let keeps_old_tolerations = old_tolerations.iter().all(|t| {
        spec.get("tolerations")
            .and_then(Value::as_array)
            .is_some_and(|new| new.contains(t))
    });
    if keeps_old_tolerations {
        copy_field(spec, old_spec, "tolerations");
    }
    let old_grace = old_spec
        .get("terminationGracePeriodSeconds")
        .and_then(Value::as_i64);
    if old_grace.is_some_and(|g| g < 0)
        && spec
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(1)
    {
        copy_field(spec, old_spec, "terminationGracePeriodSeconds");
    }
    let changed: Vec<String> = changed_keys(spec, old_spec.as_object());
    if !changed.is_empty() {
        let diff: Vec<String> = changed
            .iter()
            .map(|k| format!("  spec.{k}: changed"))
            .collect();
        errs.push(FieldError::forbidden(
            FieldPath::root("spec"),
            &format!("{POD_UPDATE_FORBIDDEN}\n{}", diff.join("\n")),
        ));
    }
}

fn copy_field(spec: &mut Map<String, Value>, old_spec: &Value, key: &str) {
    match old_spec.get(key) {
        Some(value) => spec.insert(key.to_owned(), value.clone()),
        None => spec.remove(key),
    };
}

fn changed_keys(new: &Map<String, Value>, old: Option<&Map<String, Value>>) -> Vec<String> {
    let empty = Map::new();
    let old = old.unwrap_or(&empty);
    let mut keys: Vec<&String> = new.keys().chain(old.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| !same(new.get(*k), old.get(*k)))
        .cloned()
        .collect()
}

/// Semantic equality as Go compares decoded structs: `null`, absent and empty are alike.
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    normalize(a) == normalize(b)
}

fn normalize(value: Option<&Value>) -> Option<Value> {
    match value? {
        Value::Null => None,
        Value::Object(map) => {
            let cleaned: Map<String, Value> = map
                .iter()
                .filter_map(|(k, v)| normalize(Some(v)).map(|v| (k.clone(), v)))
                .collect();
            (!cleaned.is_empty()).then_some(Value::Object(cleaned))
        }
        Value::Array(items) if items.is_empty() => None,
        Value::Array(items) => Some(Value::Array(
            items
                .iter()
                .map(|item| normalize(Some(item)).unwrap_or(Value::Null))
                .collect(),
        )),
        other => Some(other.clone()),
    }
}
