//! Strict field checking for `fieldValidation=Strict|Warn`, and safe decoding of raw bodies.
//!
//! k8s-openapi's serde impls silently drop unknown fields and `serde_json::Value` keeps only
//! the last of duplicate keys, so both checks run on the raw body:
//!
//! * duplicates: one pass over the raw tokens with a custom serde visitor that builds the
//!   `Value` and records every key seen twice in the same object;
//! * unknown fields: the value is decoded into the k8s-openapi type for its kind and encoded
//!   again; a key present in the input but missing from the round trip is unknown. Free-form
//!   maps (labels, annotations, data, selectors) survive the round trip key by key, so they
//!   are never flagged.
//!
//! Paths are worded as kube-apiserver words them: `unknown field "spec.replicass"`,
//! `duplicate field "metadata.name"`, list indices as `containers[0]`.
//!
//! Nesting is bounded twice: a cheap byte scan rejects more than [`MAX_NESTING_DEPTH`] levels
//! before any parser runs, and serde_json and serde_yaml stop at 128 levels of recursion
//! with an error instead of overflowing the stack. YAML alias bombs are stopped by
//! serde_yaml's repetition limit.

use std::collections::HashSet;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Map, Value};

/// Deepest nesting of objects and arrays accepted in a raw body (kube-apiserver's limit).
pub const MAX_NESTING_DEPTH: usize = 10_000;

/// What is wrong with one field of a raw body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldIssueKind {
    /// The type has no field of this name.
    Unknown,
    /// The same key appears more than once in one object.
    Duplicate,
}

/// One unknown or duplicate field, with its path in upstream's notation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldIssue {
    /// Unknown or duplicate.
    pub kind: FieldIssueKind,
    /// Dotted path with list indices, e.g. `spec.template.spec.containers[0].imagee`.
    pub path: String,
}

impl fmt::Display for FieldIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.kind {
            FieldIssueKind::Unknown => "unknown",
            FieldIssueKind::Duplicate => "duplicate",
        };
        write!(f, "{word} field {:?}", self.path)
    }
}

/// The text kube-apiserver reports for these issues: `strict decoding error: unknown field
/// "spec.replicass", duplicate field "metadata.name"` (400 for Strict; each issue is also
/// the text of one warning for Warn).
pub fn strict_decoding_message(issues: &[FieldIssue]) -> String {
    let parts: Vec<String> = issues.iter().map(ToString::to_string).collect();
    format!("strict decoding error: {}", parts.join(", "))
}

/// Why a raw body could not be checked.
#[derive(Debug, thiserror::Error)]
pub enum StrictError {
    /// Objects and arrays nest deeper than the limit.
    #[error("object nested too deeply: more than {limit} levels")]
    TooDeep {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// The body is not well-formed JSON (this includes serde_json's 128-level recursion limit).
    #[error("invalid JSON: {0}")]
    Json(#[source] serde_json::Error),
    /// The body is not well-formed YAML, or expands aliases beyond serde_yaml's limit.
    #[error("invalid YAML: {0}")]
    Yaml(#[source] serde_yaml::Error),
    /// Well-formed JSON whose values do not fit the kind's schema (e.g. a string for a number).
    #[error("cannot decode {kind}: {source}")]
    Decode {
        /// The kind being decoded.
        kind: String,
        /// What serde reported.
        #[source]
        source: serde_json::Error,
    },
}

/// Result type of this module.
pub type Result<T, E = StrictError> = std::result::Result<T, E>;

/// Finds unknown and duplicate fields in a raw JSON body of `group`/`kind`.
///
/// Kinds Tugboat has no schema for (custom resources) get the duplicate check only. Unknown
/// fields whose value is `null` are not reported: a null and an absent field decode alike.
pub fn find_unknown_and_duplicate_fields(
    group: &str,
    kind: &str,
    raw_json: &[u8],
) -> Result<Vec<FieldIssue>> {
    check_nesting_depth(raw_json, MAX_NESTING_DEPTH)?;
    let mut deserializer = serde_json::Deserializer::from_slice(raw_json);
    let (value, duplicates) =
        parse_recording_duplicates(&mut deserializer).map_err(StrictError::Json)?;
    deserializer.end().map_err(StrictError::Json)?;
    issues_for_value(group, kind, &value, duplicates)
}

/// Like [`find_unknown_and_duplicate_fields`] for an already-parsed value, adding the
/// duplicates found while parsing it (e.g. by [`yaml_to_json_checked`]).
pub fn issues_for_value(
    group: &str,
    kind: &str,
    value: &Value,
    mut duplicates: Vec<FieldIssue>,
) -> Result<Vec<FieldIssue>> {
    let mut issues = Vec::new();
    if let Some(round_tripped) = round_trip(group, kind, value)? {
        let mut path = String::new();
        collect_unknown(value, &round_tripped, &mut path, &mut issues);
    }
    issues.append(&mut duplicates);
    Ok(issues)
}

/// Checks that `value` decodes as the kind's k8s-openapi type: no value has the wrong JSON
/// type. Kinds without a schema here always pass.
pub fn check_decodes(group: &str, kind: &str, value: &Value) -> Result<()> {
    round_trip(group, kind, value).map(|_| ())
}

/// Parses raw JSON into a `Value` after the depth check; duplicates keep the last value.
pub fn parse_json(raw_json: &[u8]) -> Result<Value> {
    check_nesting_depth(raw_json, MAX_NESTING_DEPTH)?;
    serde_json::from_slice(raw_json).map_err(StrictError::Json)
}

/// Converts one YAML document to JSON, bounded in depth and alias expansion.
pub fn yaml_to_json(yaml: &[u8]) -> Result<Value> {
    yaml_to_json_checked(yaml).map(|(value, _duplicates)| value)
}

/// Converts one YAML document to JSON and reports keys repeated within one mapping.
///
/// Non-string keys (`1: x`, `true: y`) become strings, as sigs.k8s.io/yaml does.
pub fn yaml_to_json_checked(yaml: &[u8]) -> Result<(Value, Vec<FieldIssue>)> {
    // Flow-style YAML nests with brackets, which the byte scan bounds; block style is
    // bounded by serde_yaml's own recursion limit.
    check_nesting_depth(yaml, MAX_NESTING_DEPTH)?;
    let deserializer = serde_yaml::Deserializer::from_slice(yaml);
    parse_recording_duplicates(deserializer).map_err(StrictError::Yaml)
}

/// Rejects input whose brackets nest deeper than `limit`, without recursion.
///
/// Brackets inside JSON strings do not count; for YAML the scan is an over-estimate only
/// when brackets appear in plain scalars, which is harmless at this limit.
pub fn check_nesting_depth(raw: &[u8], limit: usize) -> Result<()> {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in raw {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return Err(StrictError::TooDeep { limit });
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

// === duplicate detection ===

/// Deserializes any self-describing input into a `Value`, recording duplicate keys.
fn parse_recording_duplicates<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<(Value, Vec<FieldIssue>), D::Error> {
    let mut duplicates = Vec::new();
    let value = ValueSeed {
        path: String::new(),
        duplicates: &mut duplicates,
    }
    .deserialize(deserializer)?;
    Ok((value, duplicates))
}

/// Builds a `Value` for the node at `path`.
struct ValueSeed<'a> {
    path: String,
    duplicates: &'a mut Vec<FieldIssue>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<Value, E> {
        // NaN and infinities (possible in YAML) have no JSON form.
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> std::result::Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(ValueSeed {
            path: format!("{}[{}]", self.path, items.len()),
            duplicates: &mut *self.duplicates,
        })? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Value, A::Error> {
        let mut object = Map::new();
        let mut seen = HashSet::new();
        while let Some(key) = map.next_key_seed(KeySeed)? {
            let path = join_path(&self.path, &key);
            let value = map.next_value_seed(ValueSeed {
                path: path.clone(),
                duplicates: &mut *self.duplicates,
            })?;
            if !seen.insert(key.clone()) {
                self.duplicates.push(FieldIssue {
                    kind: FieldIssueKind::Duplicate,
                    path,
                });
            }
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Reads a map key as a string, accepting YAML's scalar keys.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<String, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = String;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a scalar map key")
    }

    fn visit_str<E>(self, v: &str) -> std::result::Result<String, E> {
        Ok(v.to_owned())
    }

    fn visit_string<E>(self, v: String) -> std::result::Result<String, E> {
        Ok(v)
    }

    fn visit_bool<E>(self, v: bool) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_i64<E>(self, v: i64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_u64<E>(self, v: u64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_f64<E>(self, v: f64) -> std::result::Result<String, E> {
        Ok(v.to_string())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<String, E> {
        Ok("null".to_owned())
    }
}

fn join_path(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

// === unknown-field detection ===

/// Decodes `value` as the k8s-openapi type of `group`/`kind` and encodes it again; `None`
/// for kinds without a schema here.
fn round_trip(group: &str, kind: &str, value: &Value) -> Result<Option<Value>> {
    use k8s_openapi::api::{
        apps, autoscaling, batch, coordination, core, discovery, events, networking, policy, rbac,
        scheduling, storage,
    };

    // apiVersion/kind are checked elsewhere; nulls decode as absent, as in Go.
    let mut input = strip_nulls(value);
    if let Some(map) = input.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    let hpa_v1 = value.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1");
    let decode = match (group, kind) {
        ("", "Pod") => typed::<core::v1::Pod>,
        ("", "PodTemplate") => typed::<core::v1::PodTemplate>,
        ("", "ReplicationController") => typed::<core::v1::ReplicationController>,
        ("", "Service") => typed::<core::v1::Service>,
        ("", "Endpoints") => typed::<core::v1::Endpoints>,
        ("", "Namespace") => typed::<core::v1::Namespace>,
        ("", "Node") => typed::<core::v1::Node>,
        ("", "ConfigMap") => typed::<core::v1::ConfigMap>,
        ("", "Secret") => typed::<core::v1::Secret>,
        ("", "ServiceAccount") => typed::<core::v1::ServiceAccount>,
        ("", "Event") => typed::<core::v1::Event>,
        ("", "PersistentVolume") => typed::<core::v1::PersistentVolume>,
        ("", "PersistentVolumeClaim") => typed::<core::v1::PersistentVolumeClaim>,
        ("", "LimitRange") => typed::<core::v1::LimitRange>,
        ("", "ResourceQuota") => typed::<core::v1::ResourceQuota>,
        ("", "Binding") => typed::<core::v1::Binding>,
        ("apps", "Deployment") => typed::<apps::v1::Deployment>,
        ("apps", "ReplicaSet") => typed::<apps::v1::ReplicaSet>,
        ("apps", "DaemonSet") => typed::<apps::v1::DaemonSet>,
        ("apps", "StatefulSet") => typed::<apps::v1::StatefulSet>,
        ("apps", "ControllerRevision") => typed::<apps::v1::ControllerRevision>,
        ("batch", "Job") => typed::<batch::v1::Job>,
        ("batch", "CronJob") => typed::<batch::v1::CronJob>,
        ("autoscaling", "HorizontalPodAutoscaler") if hpa_v1 => {
            typed::<autoscaling::v1::HorizontalPodAutoscaler>
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            typed::<autoscaling::v2::HorizontalPodAutoscaler>
        }
        ("autoscaling", "Scale") => typed::<autoscaling::v1::Scale>,
        ("coordination.k8s.io", "Lease") => typed::<coordination::v1::Lease>,
        ("events.k8s.io", "Event") => typed::<events::v1::Event>,
        ("discovery.k8s.io", "EndpointSlice") => typed::<discovery::v1::EndpointSlice>,
        ("networking.k8s.io", "Ingress") => typed::<networking::v1::Ingress>,
        ("networking.k8s.io", "NetworkPolicy") => typed::<networking::v1::NetworkPolicy>,
        ("policy", "PodDisruptionBudget") => typed::<policy::v1::PodDisruptionBudget>,
        ("policy", "Eviction") => typed::<policy::v1::Eviction>,
        ("rbac.authorization.k8s.io", "Role") => typed::<rbac::v1::Role>,
        ("rbac.authorization.k8s.io", "RoleBinding") => typed::<rbac::v1::RoleBinding>,
        ("rbac.authorization.k8s.io", "ClusterRole") => typed::<rbac::v1::ClusterRole>,
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            typed::<rbac::v1::ClusterRoleBinding>
        }
        ("scheduling.k8s.io", "PriorityClass") => typed::<scheduling::v1::PriorityClass>,
        ("storage.k8s.io", "StorageClass") => typed::<storage::v1::StorageClass>,
        _ => return Ok(None),
    };
    decode(input)
        .map(Some)
        .map_err(|source| StrictError::Decode {
            kind: kind.to_owned(),
            source,
        })
}

fn typed<T: DeserializeOwned + Serialize>(value: Value) -> serde_json::Result<Value> {
    let decoded: T = serde_json::from_value(value)?;
    serde_json::to_value(decoded)
}

fn strip_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(strip_nulls).collect()),
        other => other.clone(),
    }
}

/// Records every key of `raw` that the typed round trip lost.
fn collect_unknown(
    raw: &Value,
    round_tripped: &Value,
    path: &mut String,
    issues: &mut Vec<FieldIssue>,
) {
    match (raw, round_tripped) {
        (Value::Object(raw_map), Value::Object(known_map)) => {
            for (key, raw_child) in raw_map {
                if raw_child.is_null()
                    || (path.is_empty() && (key == "apiVersion" || key == "kind"))
                {
                    continue;
                }
                let parent_len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(key);
                match known_map.get(key) {
                    Some(known_child) => collect_unknown(raw_child, known_child, path, issues),
                    None => issues.push(FieldIssue {
                        kind: FieldIssueKind::Unknown,
                        path: path.clone(),
                    }),
                }
                path.truncate(parent_len);
            }
        }
        (Value::Array(raw_items), Value::Array(known_items)) => {
            for (index, (raw_item, known_item)) in raw_items.iter().zip(known_items).enumerate() {
                let parent_len = path.len();
                path.push_str(&format!("[{index}]"));
                collect_unknown(raw_item, known_item, path, issues);
                path.truncate(parent_len);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use serde_json::json;

    use super::*;

    fn issues(group: &str, kind: &str, body: &str) -> Vec<String> {
        find_unknown_and_duplicate_fields(group, kind, body.as_bytes())
            .unwrap()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    /// A Deployment as `kubectl apply` sends it, with the last-applied annotation.
    const KUBECTL_DEPLOYMENT: &str = r#"{
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{}", "any/key": "v"},
            "labels": {"app": "web", "whatever.example.com/free-form": "yes"},
            "name": "web", "namespace": "default", "creationTimestamp": null
        },
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "web"}, "creationTimestamp": null},
                "spec": {
                    "containers": [{
                        "name": "nginx", "image": "nginx:1.27",
                        "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": "500m", "nvidia.com/gpu": "1"}},
                        "env": [{"name": "A", "value": "b"}]
                    }],
                    "nodeSelector": {"disk": "ssd"}
                }
            }
        },
        "status": {}
    }"#;

    #[test]
    fn clean_kubectl_body_has_no_issues() {
        assert_eq!(
            issues("apps", "Deployment", KUBECTL_DEPLOYMENT),
            Vec::<String>::new()
        );
    }

    /// A Pod as kube-apiserver returns it: status, managedFields, projected token volume.
    const SERVER_POD: &str = r#"{
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "web-7d4b9c-x2x", "generateName": "web-7d4b9c-", "namespace": "default",
            "uid": "0c6b3c1e-0000-4000-8000-000000000001", "resourceVersion": "1234",
            "creationTimestamp": "2025-01-02T03:04:05Z",
            "labels": {"app": "web", "pod-template-hash": "7d4b9c"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-7d4b9c",
                "uid": "0c6b3c1e-0000-4000-8000-000000000002", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": [{"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                "time": "2025-01-02T03:04:05Z", "fieldsType": "FieldsV1",
                "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]
        },
        "spec": {
            "volumes": [{"name": "kube-api-access-abcde", "projected": {"sources": [
                {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
                {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}
            ], "defaultMode": 420}}],
            "containers": [{"name": "nginx", "image": "nginx:1.27",
                "ports": [{"containerPort": 80, "protocol": "TCP"}],
                "resources": {}, "volumeMounts": [{"name": "kube-api-access-abcde", "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}],
                "readinessProbe": {"httpGet": {"path": "/", "port": 80, "scheme": "HTTP"}, "timeoutSeconds": 1,
                    "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3},
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"}],
            "restartPolicy": "Always", "terminationGracePeriodSeconds": 30, "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default", "serviceAccount": "default", "nodeName": "node-1",
            "securityContext": {}, "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}],
            "priority": 0, "enableServiceLinks": true, "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {
            "phase": "Running",
            "conditions": [{"type": "Ready", "status": "True", "lastProbeTime": null, "lastTransitionTime": "2025-01-02T03:04:09Z"}],
            "hostIP": "10.0.0.1", "hostIPs": [{"ip": "10.0.0.1"}], "podIP": "10.244.0.5", "podIPs": [{"ip": "10.244.0.5"}],
            "startTime": "2025-01-02T03:04:05Z",
            "containerStatuses": [{"name": "nginx", "state": {"running": {"startedAt": "2025-01-02T03:04:07Z"}},
                "lastState": {}, "ready": true, "restartCount": 0, "image": "docker.io/library/nginx:1.27",
                "imageID": "docker.io/library/nginx@sha256:abc", "containerID": "containerd://abc", "started": true}],
            "qosClass": "BestEffort"
        }
    }"#;

    #[test]
    fn full_server_side_objects_have_no_false_positives() {
        assert_eq!(issues("", "Pod", SERVER_POD), Vec::<String>::new());
        let service = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
            "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080}],
                "selector": {"app": "web"}, "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "type": "NodePort",
                "sessionAffinity": "None", "externalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"},
            "status": {"loadBalancer": {}}}"#;
        assert_eq!(issues("", "Service", service), Vec::<String>::new());
        let hpa = r#"{"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 5, "targetCPUUtilizationPercentage": 50}}"#;
        assert_eq!(
            issues("autoscaling", "HorizontalPodAutoscaler", hpa),
            Vec::<String>::new()
        );
        let hpa_v2_typo = hpa.replace("autoscaling/v1", "autoscaling/v2");
        assert_eq!(
            issues("autoscaling", "HorizontalPodAutoscaler", &hpa_v2_typo),
            vec![r#"unknown field "spec.targetCPUUtilizationPercentage""#]
        );
    }

    #[test]
    fn typo_nested_in_a_container_is_reported_with_its_path() {
        let body =
            KUBECTL_DEPLOYMENT.replace(r#""image": "nginx:1.27""#, r#""imagee": "nginx:1.27""#);
        assert_eq!(
            issues("apps", "Deployment", &body),
            vec![r#"unknown field "spec.template.spec.containers[0].imagee""#]
        );
        let body = KUBECTL_DEPLOYMENT.replace(r#""replicas": 2"#, r#""replicass": 2"#);
        assert_eq!(
            issues("apps", "Deployment", &body),
            vec![r#"unknown field "spec.replicass""#]
        );
    }

    #[test]
    fn duplicate_keys_are_reported_with_their_path() {
        let body = r#"{"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "name": "b", "labels": {"x": "1", "x": "2"}},
            "data": {"k": "v"}}"#;
        assert_eq!(
            issues("", "ConfigMap", body),
            vec![
                r#"duplicate field "metadata.name""#,
                r#"duplicate field "metadata.labels.x""#
            ]
        );
    }

    #[test]
    fn free_form_maps_and_unknown_top_level_fields() {
        let body = r#"{"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"},
            "data": {"any-key": "dmFsdWU="}, "stringData": {"other": "x"}, "typo": 1}"#;
        assert_eq!(issues("", "Secret", body), vec![r#"unknown field "typo""#]);
        let body = r#"{"kind": "Service", "spec": {"selector": {"free": "form"},
            "ports": [{"port": 80, "targetPort": "http", "nodeport": 30080}]}}"#;
        assert_eq!(
            issues("", "Service", body),
            vec![r#"unknown field "spec.ports[0].nodeport""#]
        );
    }

    #[test]
    fn yaml_bodies_get_the_same_checks() {
        let yaml = b"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  name: web2\nspec:\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: c\n        imagee: busybox\n";
        let (value, duplicates) = yaml_to_json_checked(yaml).unwrap();
        let found = issues_for_value("apps", "Deployment", &value, duplicates).unwrap();
        assert_eq!(
            strict_decoding_message(&found),
            r#"strict decoding error: unknown field "spec.template.spec.containers[0].imagee", duplicate field "metadata.name""#
        );
    }

    #[test]
    fn wrong_value_types_are_decode_errors() {
        let body = r#"{"spec": {"replicas": "two"}}"#;
        let err =
            find_unknown_and_duplicate_fields("apps", "Deployment", body.as_bytes()).unwrap_err();
        assert!(matches!(err, StrictError::Decode { .. }), "{err}");
    }

    #[test]
    fn unknown_kinds_get_only_the_duplicate_check() {
        let body = r#"{"spec": {"anything": 1, "anything": 2}}"#;
        assert_eq!(
            issues("example.com", "Widget", body),
            vec![r#"duplicate field "spec.anything""#]
        );
    }

    #[test]
    fn malformed_json_is_an_error() {
        let err = find_unknown_and_duplicate_fields("", "Pod", b"{\"a\":").unwrap_err();
        assert!(matches!(err, StrictError::Json(_)));
        let err = find_unknown_and_duplicate_fields("", "Pod", b"{} {}").unwrap_err();
        assert!(matches!(err, StrictError::Json(_)));
    }

    #[test]
    fn deep_json_fails_fast_and_cleanly() {
        for depth in [200, 10_001, 1_000_000] {
            let body = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
            let started = Instant::now();
            let err = find_unknown_and_duplicate_fields("", "Pod", body.as_bytes()).unwrap_err();
            assert!(
                started.elapsed() < Duration::from_millis(500),
                "depth {depth}"
            );
            if depth > MAX_NESTING_DEPTH {
                assert!(
                    matches!(
                        err,
                        StrictError::TooDeep {
                            limit: MAX_NESTING_DEPTH
                        }
                    ),
                    "{err}"
                );
            } else {
                assert!(
                    err.to_string().contains("recursion limit exceeded"),
                    "{err}"
                );
            }
            assert!(parse_json(body.as_bytes()).is_err());
        }
    }

    #[test]
    fn brackets_in_strings_do_not_count_as_nesting() {
        let body = format!(
            r#"{{"data": {{"k": "{}\"{}"}}}}"#,
            "[".repeat(20_000),
            "{".repeat(10)
        );
        assert!(check_nesting_depth(body.as_bytes(), MAX_NESTING_DEPTH).is_ok());
        assert_eq!(issues("", "ConfigMap", &body), Vec::<String>::new());
    }

    #[test]
    fn yaml_converts_to_json() {
        let yaml = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  1: one\n  ok: \"yes\"\n";
        assert_eq!(
            yaml_to_json(yaml).unwrap(),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cm"},
                   "data": {"1": "one", "ok": "yes"}})
        );
        let (_, duplicates) = yaml_to_json_checked(b"metadata:\n  name: a\n  name: b\n").unwrap();
        assert_eq!(
            duplicates[0].to_string(),
            r#"duplicate field "metadata.name""#
        );
    }

    #[test]
    fn yaml_billion_laughs_fails_fast() {
        let mut doc = String::from(
            "a0: &a0 [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for level in 1..10 {
            let prev = format!("*a{}", level - 1);
            let refs = [prev.as_str(); 9].join(",");
            doc.push_str(&format!("a{level}: &a{level} [{refs}]\n"));
        }
        let started = Instant::now();
        let err = yaml_to_json(doc.as_bytes()).unwrap_err();
        assert!(started.elapsed() < Duration::from_millis(500));
        assert!(
            err.to_string().contains("repetition limit exceeded"),
            "{err}"
        );
    }

    #[test]
    fn deep_yaml_fails_fast() {
        let flow = format!("{}{}", "[".repeat(10_001), "]".repeat(10_001));
        // Compact block sequences: `- - - ... x`, 10,000 levels in 20 KB.
        let block = format!("{}x\n", "- ".repeat(10_000));
        for doc in [flow, block] {
            let started = Instant::now();
            assert!(yaml_to_json(doc.as_bytes()).is_err());
            assert!(started.elapsed() < Duration::from_secs(1));
        }
    }
}
