//! Read-only JSON accessors that treat a missing, `null` or wrongly typed field as absent.
//!
//! Wrong types are reported once, up front, by the typed decode check in `validate_create`,
//! so the rules themselves never need to.

use serde_json::{Map, Value};

/// A string field.
pub(crate) fn str_at<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}

/// A string field, `""` when absent (Go's zero value).
pub(crate) fn str_or_empty<'a>(obj: &'a Value, key: &str) -> &'a str {
    str_at(obj, key).unwrap_or("")
}

/// An integer field.
pub(crate) fn int_at(obj: &Value, key: &str) -> Option<i64> {
    obj.get(key).and_then(Value::as_i64)
}

/// An object field.
pub(crate) fn obj_at<'a>(obj: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    obj.get(key).and_then(Value::as_object)
}

/// A list field, empty when absent.
pub(crate) fn list_at<'a>(obj: &'a Value, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// True when the field is present and not `null`.
pub(crate) fn is_set(obj: &Value, key: &str) -> bool {
    obj.get(key).is_some_and(|v| !v.is_null())
}

/// A child value, or `Value::Null` when absent, for walking optional sub-objects.
pub(crate) fn child<'a>(obj: &'a Value, key: &str) -> &'a Value {
    obj.get(key).unwrap_or(&Value::Null)
}
