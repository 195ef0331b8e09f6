//! Reading the JSON objects being printed: typed accessors that never fail, and the
//! zero values Go prints for absent fields.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::human_duration;
use crate::selector::format_label_selector;

/// An object being printed, with the time ages are measured against.
pub(super) struct Object<'a> {
    pub(super) value: &'a Value,
    pub(super) now: Timestamp,
}

impl<'a> Object<'a> {
    pub(super) fn at(&self, pointer: &str) -> Option<&'a Value> {
        self.value.pointer(pointer)
    }

    pub(super) fn text(&self, pointer: &str) -> &'a str {
        text(self.value, pointer)
    }

    pub(super) fn int(&self, pointer: &str) -> i64 {
        int(self.value, pointer)
    }

    pub(super) fn list(&self, pointer: &str) -> &'a [Value] {
        list(self.value, pointer)
    }

    pub(super) fn name(&self) -> Value {
        Value::from(self.text("/metadata/name"))
    }

    /// `translateTimestampSince(creationTimestamp)`.
    pub(super) fn age(&self) -> Value {
        Value::from(self.since("/metadata/creationTimestamp"))
    }

    pub(super) fn since(&self, pointer: &str) -> String {
        since(timestamp(self.value, pointer), self.now)
    }

    pub(super) fn deleting(&self) -> bool {
        self.at("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
    }

    pub(super) fn labels(&self, pointer: &str) -> BTreeMap<String, String> {
        string_map(self.value, pointer)
    }

    /// `layoutContainerCells`: container names and images, comma-separated.
    pub(super) fn containers(&self, pointer: &str) -> [Value; 2] {
        let containers = self.list(pointer);
        let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
        let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
        [Value::from(names.join(",")), Value::from(images.join(","))]
    }

    pub(super) fn label_selector(&self, pointer: &str) -> Option<LabelSelector> {
        self.at(pointer)
            .filter(|v| !v.is_null())
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// `metav1.FormatLabelSelector` of the selector at `pointer`.
    pub(super) fn formatted_selector(&self, pointer: &str) -> Value {
        Value::from(format_label_selector(self.label_selector(pointer).as_ref()))
    }
}

pub(super) fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

pub(super) fn int(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

pub(super) fn list<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

pub(super) fn string_map(value: &Value, pointer: &str) -> BTreeMap<String, String> {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn map_len(value: &Value, pointer: &str) -> usize {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len)
}

pub(super) fn timestamp(value: &Value, pointer: &str) -> Option<Timestamp> {
    value.pointer(pointer)?.as_str()?.parse().ok()
}

/// `translateTimestampSince`: `<unknown>` for a missing time.
pub(super) fn since(time: Option<Timestamp>, now: Timestamp) -> String {
    match time {
        Some(time) => human_duration(now.duration_since(time)),
        None => "<unknown>".to_owned(),
    }
}

pub(super) fn or_none(s: &str) -> Value {
    Value::from(if s.is_empty() { "<none>" } else { s })
}

pub(super) fn or_default(s: &str, default: &str) -> Value {
    Value::from(if s.is_empty() { default } else { s })
}

/// An IntOrString as Go's `String()` prints it.
pub(super) fn int_or_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// "a,b,c + 2 more..." (or `<unset>` when empty).
pub(super) fn list_with_more(items: &[String], max: usize) -> String {
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if items.len() > max {
        format!("{} + {} more...", shown, items.len() - max)
    } else if shown.is_empty() {
        "<unset>".to_owned()
    } else {
        shown
    }
}

/// Whether the condition of `condition_type` in the list at `conditions` is `True`.
pub(super) fn has_condition(o: &Object<'_>, conditions: &str, condition_type: &str) -> bool {
    o.list(conditions)
        .iter()
        .find(|c| text(c, "/type") == condition_type)
        .is_some_and(|c| text(c, "/status") == "True")
}
