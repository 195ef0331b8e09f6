//! Objects as the API server handles them: JSON values, with helpers for the metadata every
//! object carries, and the conversion to and from what the store holds.
//!
//! Objects stay `serde_json::Value` from request to store so that fields this server does not
//! model survive a round trip. The store holds them without `metadata.resourceVersion`; the
//! resource version is the key's `mod_revision`, set on the way out.

use bytes::Bytes;
use serde_json::{Map, Value};
use tugboat_api::resources::ResourceInfo;
use tugboat_store::KeyValue;

use crate::error::{ApiError, ApiResult};

/// The `metadata` map of an object, created if absent.
pub fn metadata_mut(obj: &mut Value) -> ApiResult<&mut Map<String, Value>> {
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    };
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))
}

/// A string field of `metadata`.
pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

/// The object's name.
pub fn name(obj: &Value) -> Option<&str> {
    meta_str(obj, "name").filter(|n| !n.is_empty())
}

/// The object's namespace.
pub fn namespace(obj: &Value) -> Option<&str> {
    meta_str(obj, "namespace").filter(|n| !n.is_empty())
}

/// The object's labels (empty when absent or malformed).
pub fn labels(obj: &Value) -> std::collections::BTreeMap<String, String> {
    obj.get("metadata")
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|labels| {
            labels
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// The object's finalizers.
pub fn finalizers(obj: &Value) -> Vec<String> {
    obj.get("metadata")
        .and_then(|m| m.get("finalizers"))
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Decode a stored object and stamp its resource version.
pub fn from_store(kv: &KeyValue) -> ApiResult<Value> {
    let mut obj: Value = serde_json::from_slice(&kv.value)
        .map_err(|err| ApiError::internal("a stored object does not decode", &err))?;
    set_resource_version(&mut obj, kv.mod_revision)?;
    Ok(obj)
}

/// Set `metadata.resourceVersion`.
pub fn set_resource_version(obj: &mut Value, revision: i64) -> ApiResult<()> {
    metadata_mut(obj)?.insert(
        "resourceVersion".into(),
        Value::String(revision.to_string()),
    );
    Ok(())
}

/// Encode an object for the store: without its resource version.
pub fn to_store(obj: &Value) -> ApiResult<Bytes> {
    let mut obj = obj.clone();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("resourceVersion");
    }
    serde_json::to_vec(&obj)
        .map(Bytes::from)
        .map_err(|err| ApiError::internal("an object does not encode", &err))
}

/// The resource version a client sent in `metadata.resourceVersion`, if any.
pub fn client_resource_version(obj: &Value) -> ApiResult<Option<i64>> {
    match meta_str(obj, "resourceVersion") {
        None | Some("") => Ok(None),
        Some(rv) => rv.parse().map(Some).map_err(|_| {
            ApiError::bad_request(format!("invalid resourceVersion {rv:?}: not a number"))
        }),
    }
}

/// Now, as Kubernetes writes timestamps (`2025-01-02T03:04:05Z`).
pub fn now_rfc3339() -> String {
    let now = tugboat_api::table::timestamp_of(std::time::SystemTime::now());
    now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Set `apiVersion` and `kind` for `resource` at `version`.
pub fn set_type_meta(obj: &mut Value, resource: &ResourceInfo, version: &str) {
    if let Some(map) = obj.as_object_mut() {
        map.insert(
            "apiVersion".into(),
            Value::String(resource.api_version(version)),
        );
        map.insert("kind".into(), Value::String(resource.kind.to_owned()));
    }
}

/// The object without `metadata` and `status`: what a spec change compares.
pub fn without_meta_and_status(obj: &Value) -> Value {
    let mut copy = obj.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
        map.remove("apiVersion");
        map.remove("kind");
    }
    copy
}
