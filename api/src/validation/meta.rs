//! ObjectMeta, labels, annotations and label selectors
//! (apimachinery `api/validation/objectmeta.go`, `apis/meta/v1/validation`).

use serde_json::{Map, Value};

use super::access::{child, int_at, list_at, obj_at, str_or_empty};
use super::errors::{BadValue, FieldError, go_string_map};
use super::names::{NameRule, label_value, qualified_name};
use super::path::FieldPath;

/// Largest total size of all annotation keys and values.
pub(crate) const ANNOTATIONS_MAX_BYTES: usize = 256 * 1024;

/// Validates `metadata` of a new object of a kind with the given scope and name rule.
pub(crate) fn validate_object_meta(
    obj: &Value,
    namespaced: bool,
    name_rule: NameRule,
    errs: &mut Vec<FieldError>,
) {
    let meta = child(obj, "metadata");
    let path = FieldPath::root("metadata");
    let generate_name = str_or_empty(meta, "generateName");
    if !generate_name.is_empty() {
        for msg in name_rule.check(generate_name, true) {
            errs.push(FieldError::invalid(
                path.child("generateName"),
                generate_name,
                &msg,
            ));
        }
    }
    let name = str_or_empty(meta, "name");
    if name.is_empty() {
        // The API server turns generateName into a name before validating.
        if generate_name.is_empty() {
            errs.push(FieldError::required(
                path.child("name"),
                "name or generateName is required",
            ));
        }
    } else {
        for msg in name_rule.check(name, false) {
            errs.push(FieldError::invalid(path.child("name"), name, &msg));
        }
    }
    let namespace = str_or_empty(meta, "namespace");
    if namespaced {
        if namespace.is_empty() {
            errs.push(FieldError::required(path.child("namespace"), ""));
        } else {
            for msg in NameRule::Label.check(namespace, false) {
                errs.push(FieldError::invalid(
                    path.child("namespace"),
                    namespace,
                    &msg,
                ));
            }
        }
    } else if !namespace.is_empty() {
        errs.push(FieldError::forbidden(
            path.child("namespace"),
            "not allowed on this type",
        ));
    }
    if let Some(generation) = int_at(meta, "generation") {
        validate_nonnegative(generation, &path.child("generation"), errs);
    }
    if let Some(labels) = obj_at(meta, "labels") {
        validate_labels(labels, &path.child("labels"), errs);
    }
    if let Some(annotations) = obj_at(meta, "annotations") {
        validate_annotations(annotations, &path.child("annotations"), errs);
    }
    validate_owner_references(
        list_at(meta, "ownerReferences"),
        &path.child("ownerReferences"),
        errs,
    );
    for (i, finalizer) in list_at(meta, "finalizers").iter().enumerate() {
        let finalizer = finalizer.as_str().unwrap_or("");
        for msg in qualified_name(finalizer) {
            errs.push(FieldError::invalid(
                path.child("finalizers").index(i),
                finalizer,
                &msg,
            ));
        }
    }
}

/// `Invalid value: N: must be greater than or equal to 0` for a negative number.
pub(crate) fn validate_nonnegative(value: i64, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if value < 0 {
        errs.push(FieldError::invalid(
            path,
            value,
            "must be greater than or equal to 0",
        ));
    }
}

/// Label keys must be qualified names and values valid label values (errors at the map path).
pub(crate) fn validate_labels(
    labels: &Map<String, Value>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    for (key, value) in sorted(labels) {
        for msg in qualified_name(key) {
            errs.push(FieldError::invalid(path, key, &msg));
        }
        let value = value.as_str().unwrap_or("");
        for msg in label_value(value) {
            errs.push(FieldError::invalid(path, value, &msg));
        }
    }
}

fn validate_annotations(
    annotations: &Map<String, Value>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let mut total = 0usize;
    for (key, value) in sorted(annotations) {
        // Annotation keys are qualified names except that case does not matter.
        for msg in qualified_name(&key.to_lowercase()) {
            errs.push(FieldError::invalid(path, key, &msg));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > ANNOTATIONS_MAX_BYTES {
        errs.push(FieldError::too_long(path, ANNOTATIONS_MAX_BYTES));
    }
}

fn validate_owner_references(refs: &[Value], path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut controllers = Vec::new();
    for (i, reference) in refs.iter().enumerate() {
        let item = path.index(i);
        let api_version = str_or_empty(reference, "apiVersion");
        let version = api_version.rsplit('/').next().unwrap_or("");
        if version.is_empty() {
            errs.push(FieldError::invalid(
                item.child("apiVersion"),
                api_version,
                "version must not be empty",
            ));
        }
        let required = [
            ("kind", "kind must not be empty"),
            ("name", "name must not be empty"),
            ("uid", "uid must not be empty"),
        ];
        for (key, detail) in required {
            if str_or_empty(reference, key).is_empty() {
                errs.push(FieldError::invalid(item.child(key), "", detail));
            }
        }
        if reference.get("controller").and_then(Value::as_bool) == Some(true) {
            controllers.push(format!(
                "Kind={}, Name={}, UID={}",
                str_or_empty(reference, "kind"),
                str_or_empty(reference, "name"),
                str_or_empty(reference, "uid")
            ));
        }
    }
    if controllers.len() > 1 {
        errs.push(FieldError::invalid(
            path,
            BadValue::Go(Value::Array(refs.to_vec()).to_string()),
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {}",
                controllers.join(" and ")
            ),
        ));
    }
}

/// Validates a `metav1.LabelSelector` (match labels strictly, expressions' operators/values).
pub(crate) fn validate_label_selector(
    selector: &Value,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    if let Some(match_labels) = obj_at(selector, "matchLabels") {
        validate_labels(match_labels, &path.child("matchLabels"), errs);
    }
    for (i, requirement) in list_at(selector, "matchExpressions").iter().enumerate() {
        let item = path.child("matchExpressions").index(i);
        let operator = str_or_empty(requirement, "operator");
        let values = list_at(requirement, "values");
        match operator {
            "In" | "NotIn" => {
                if values.is_empty() {
                    errs.push(FieldError::required(
                        item.child("values"),
                        "must be specified when `operator` is 'In' or 'NotIn'",
                    ));
                }
            }
            "Exists" | "DoesNotExist" => {
                if !values.is_empty() {
                    errs.push(FieldError::forbidden(
                        item.child("values"),
                        "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                    ));
                }
            }
            _ => errs.push(FieldError::invalid(
                item.child("operator"),
                operator,
                "not a valid selector operator",
            )),
        }
        let key = str_or_empty(requirement, "key");
        for msg in qualified_name(key) {
            errs.push(FieldError::invalid(item.child("key"), key, &msg));
        }
        for (j, value) in values.iter().enumerate() {
            let value = value.as_str().unwrap_or("");
            for msg in label_value(value) {
                errs.push(FieldError::invalid(
                    item.child("values").index(j),
                    value,
                    &msg,
                ));
            }
        }
    }
}

/// True when a selector has neither match labels nor expressions (it selects everything).
pub(crate) fn selector_is_empty(selector: &Value) -> bool {
    obj_at(selector, "matchLabels").is_none_or(Map::is_empty)
        && list_at(selector, "matchExpressions").is_empty()
}

/// Whether `labels` satisfy a `metav1.LabelSelector`; unknown operators match nothing.
pub(crate) fn selector_matches(selector: &Value, labels: Option<&Map<String, Value>>) -> bool {
    let empty = Map::new();
    let labels = labels.unwrap_or(&empty);
    let label = |key: &str| labels.get(key).and_then(Value::as_str);
    let labels_match = obj_at(selector, "matchLabels")
        .is_none_or(|wanted| wanted.iter().all(|(k, v)| label(k) == v.as_str()));
    let expressions_match = list_at(selector, "matchExpressions")
        .iter()
        .all(|requirement| {
            let key = str_or_empty(requirement, "key");
            let in_values = || {
                label(key).is_some_and(|actual| {
                    list_at(requirement, "values")
                        .iter()
                        .any(|v| v.as_str() == Some(actual))
                })
            };
            match str_or_empty(requirement, "operator") {
                "In" => in_values(),
                "NotIn" => !in_values(),
                "Exists" => label(key).is_some(),
                "DoesNotExist" => label(key).is_none(),
                _ => false,
            }
        });
    labels_match && expressions_match
}

/// A label map as Go's `%#v` prints it, for `Invalid value:` messages.
pub(crate) fn labels_bad_value(labels: Option<&Map<String, Value>>) -> BadValue {
    BadValue::Go(labels.map_or_else(|| "map[string]string(nil)".to_owned(), go_string_map))
}

fn sorted(map: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    entries
}
