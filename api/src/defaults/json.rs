//! Small helpers for filling JSON fields that are absent or `null`.

use serde_json::{Map, Value};

/// The JSON type name of `value`, for error messages.
pub(crate) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// True when `obj[key]` is missing or `null` (the same thing for a Go `omitempty` pointer).
pub(super) fn is_unset(obj: &Value, key: &str) -> bool {
    obj.get(key).is_none_or(Value::is_null)
}

/// True when `obj[key]` is missing, `null`, `""`, `0`, or an empty list/map: Go's zero value.
pub(super) fn is_zero(obj: &Value, key: &str) -> bool {
    match obj.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::Bool(b)) => !b,
        Some(Value::Array(a)) => a.is_empty(),
        Some(Value::Object(o)) => o.is_empty(),
    }
}

/// Sets `obj[key] = value` when the field is unset; does nothing when `obj` is not an object.
pub(super) fn set_default(obj: &mut Value, key: &str, value: Value) {
    set_default_if(obj, key, value, is_unset);
}

/// Sets `obj[key] = value` when the field holds Go's zero value (`""`, `0`, absent, ...).
pub(super) fn set_default_if_zero(obj: &mut Value, key: &str, value: Value) {
    set_default_if(obj, key, value, is_zero);
}

fn set_default_if(obj: &mut Value, key: &str, value: Value, needs: fn(&Value, &str) -> bool) {
    if needs(obj, key)
        && let Some(map) = obj.as_object_mut()
    {
        map.insert(key.to_owned(), value);
    }
}

/// The object at `obj[key]`, if there is one.
pub(super) fn child_object<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    obj.get_mut(key).filter(|child| child.is_object())
}

/// The object at `obj[key]`, created empty when unset; `None` when a non-object is in the way.
pub(super) fn ensure_object<'a>(obj: &'a mut Value, key: &str) -> Option<&'a mut Value> {
    set_default(obj, key, Value::Object(Map::new()));
    child_object(obj, key)
}

/// Calls `f` on every element of the array at `obj[key]`.
pub(super) fn for_each_item(obj: &mut Value, key: &str, mut f: impl FnMut(&mut Value)) {
    if let Some(Value::Array(items)) = obj.get_mut(key) {
        items.iter_mut().for_each(&mut f);
    }
}

/// A string field, if present and a string.
pub(super) fn str_field<'a>(obj: &'a Value, key: &str) -> Option<&'a str> {
    obj.get(key).and_then(Value::as_str)
}
