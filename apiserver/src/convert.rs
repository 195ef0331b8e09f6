//! Conversion between the stored version of a resource and the versions it is served at.
//!
//! Most resources are served at one version, stored as they come. The exceptions convert here:
//! `autoscaling/v1` HorizontalPodAutoscalers are stored as `autoscaling/v2`.

use std::borrow::Cow;

use serde_json::{Value, json};
use tugboat_api::resources::ResourceInfo;

/// Whether serving `resource` at `version` changes more than the type meta.
pub fn converts(resource: &ResourceInfo, version: &str) -> bool {
    resource.group == "autoscaling" && version == "v1"
}

/// The object as version `version` of `resource` shows it.
pub fn to_version(resource: &ResourceInfo, obj: &Value, version: &str) -> Value {
    let mut out = if converts(resource, version) {
        hpa_v2_to_v1(obj)
    } else {
        obj.clone()
    };
    crate::objects::set_type_meta(&mut out, resource, version);
    out
}

/// [`to_version`] without the copy when `obj` already shows `version` (stored objects carry
/// their type meta): answers and watch lines serialize the stored object as it is.
pub fn as_version<'a>(resource: &ResourceInfo, obj: &'a Value, version: &str) -> Cow<'a, Value> {
    let shows_version = !converts(resource, version)
        && obj.get("kind").and_then(Value::as_str) == Some(resource.kind)
        && obj.get("apiVersion").and_then(Value::as_str)
            == Some(resource.api_version(version).as_str());
    if shows_version {
        Cow::Borrowed(obj)
    } else {
        Cow::Owned(to_version(resource, obj, version))
    }
}

/// The object as it is stored, from what a client sent at `version`.
pub fn to_storage(resource: &ResourceInfo, obj: Value, version: &str) -> Value {
    let storage_version = resource.preferred_version();
    let mut out = if resource.group == "autoscaling" && version == "v1" {
        hpa_v1_to_v2(&obj)
    } else {
        obj
    };
    crate::objects::set_type_meta(&mut out, resource, storage_version);
    out
}

/// Where upstream's autoscaling/v1 keeps what only v2 can say, so that a v1 client's write
/// does not lose it (kubernetes `pkg/apis/autoscaling/annotations.go`): the metrics other than
/// the cpu utilization target, their current values, the conditions, and `behavior`. Metrics
/// are written in autoscaling/v1's own `MetricSpec`/`MetricStatus` shape, as upstream does.
const METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/metrics";
const CURRENT_METRICS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/current-metrics";
const CONDITIONS_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/conditions";
const BEHAVIOR_ANNOTATION: &str = "autoscaling.alpha.kubernetes.io/behavior";

type Map = serde_json::Map<String, Value>;

/// `object[key]` when present and not null.
fn field(object: &Value, key: &str) -> Option<Value> {
    object.get(key).filter(|v| !v.is_null()).cloned()
}

/// A JSON object of the fields that are present.
fn fields(pairs: impl IntoIterator<Item = (&'static str, Option<Value>)>) -> Value {
    Value::Object(
        pairs
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect(),
    )
}

/// Whether a v2 metric (spec or status) is the cpu Resource metric v1 has its own field for.
fn is_cpu_resource(metric: &Value, value: &str) -> bool {
    metric.get("type").and_then(Value::as_str) == Some("Resource")
        && metric.pointer("/resource/name").and_then(Value::as_str) == Some("cpu")
        && metric.pointer(value).and_then(Value::as_i64).is_some()
}

/// A v2 MetricTarget as v1's `target…` fields: (value, averageValue, averageUtilization).
fn v2_target(target: Option<&Value>) -> (Option<Value>, Option<Value>, Option<Value>) {
    let target = target.cloned().unwrap_or(Value::Null);
    (
        field(&target, "value"),
        field(&target, "averageValue"),
        field(&target, "averageUtilization"),
    )
}

/// A v1 target as a v2 MetricTarget.
fn v1_target(value: Option<Value>, average: Option<Value>, utilization: Option<Value>) -> Value {
    if let Some(u) = utilization {
        json!({"type": "Utilization", "averageUtilization": u})
    } else if let Some(a) = average {
        json!({"type": "AverageValue", "averageValue": a})
    } else {
        fields([("type", Some(json!("Value"))), ("value", value)])
    }
}

/// autoscaling/v2 `MetricSpec` → v1 `MetricSpec`.
fn metric_spec_to_v1(m: &Value) -> Value {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let none = Value::Null;
    let source = |key: &str| m.get(key).unwrap_or(&none).clone();
    let body = match kind {
        "Resource" | "ContainerResource" => {
            let key = if kind == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = source(key);
            let (_, average, utilization) = v2_target(s.get("target"));
            (
                key,
                fields([
                    ("name", field(&s, "name")),
                    ("container", field(&s, "container")),
                    ("targetAverageUtilization", utilization),
                    ("targetAverageValue", average),
                ]),
            )
        }
        "Pods" => {
            let s = source("pods");
            let metric = s.get("metric").unwrap_or(&none);
            let (_, average, _) = v2_target(s.get("target"));
            (
                "pods",
                fields([
                    ("metricName", field(metric, "name")),
                    ("selector", field(metric, "selector")),
                    ("targetAverageValue", average),
                ]),
            )
        }
        "Object" => {
            let s = source("object");
            let metric = s.get("metric").unwrap_or(&none);
            let (value, average, _) = v2_target(s.get("target"));
            (
                "object",
                fields([
                    ("target", field(&s, "describedObject")),
                    ("metricName", field(metric, "name")),
                    ("selector", field(metric, "selector")),
                    ("targetValue", value),
                    ("averageValue", average),
                ]),
            )
        }
        "External" => {
            let s = source("external");
            let metric = s.get("metric").unwrap_or(&none);
            let (value, average, _) = v2_target(s.get("target"));
            (
                "external",
                fields([
                    ("metricName", field(metric, "name")),
                    ("metricSelector", field(metric, "selector")),
                    ("targetValue", value),
                    ("targetAverageValue", average),
                ]),
            )
        }
        _ => return m.clone(),
    };
    json!({"type": kind, body.0: body.1})
}

/// autoscaling/v1 `MetricSpec` → v2 `MetricSpec`.
fn metric_spec_to_v2(m: &Value) -> Value {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let none = Value::Null;
    let source = |key: &str| m.get(key).unwrap_or(&none).clone();
    let body = match kind {
        "Resource" | "ContainerResource" => {
            let key = if kind == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = source(key);
            let target = v1_target(
                None,
                field(&s, "targetAverageValue"),
                field(&s, "targetAverageUtilization"),
            );
            (
                key,
                fields([
                    ("name", field(&s, "name")),
                    ("container", field(&s, "container")),
                    ("target", Some(target)),
                ]),
            )
        }
        "Pods" => {
            let s = source("pods");
            let metric = fields([
                ("name", field(&s, "metricName")),
                ("selector", field(&s, "selector")),
            ]);
            let target = v1_target(None, field(&s, "targetAverageValue"), None);
            ("pods", json!({"metric": metric, "target": target}))
        }
        "Object" => {
            let s = source("object");
            let metric = fields([
                ("name", field(&s, "metricName")),
                ("selector", field(&s, "selector")),
            ]);
            let target = v1_target(field(&s, "targetValue"), field(&s, "averageValue"), None);
            (
                "object",
                fields([
                    ("describedObject", field(&s, "target")),
                    ("metric", Some(metric)),
                    ("target", Some(target)),
                ]),
            )
        }
        "External" => {
            let s = source("external");
            let metric = fields([
                ("name", field(&s, "metricName")),
                ("selector", field(&s, "metricSelector")),
            ]);
            let target = v1_target(
                field(&s, "targetValue"),
                field(&s, "targetAverageValue"),
                None,
            );
            ("external", json!({"metric": metric, "target": target}))
        }
        _ => return m.clone(),
    };
    json!({"type": kind, body.0: body.1})
}

/// autoscaling/v2 `MetricStatus` → v1 `MetricStatus`.
fn metric_status_to_v1(m: &Value) -> Value {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let none = Value::Null;
    let source = |key: &str| m.get(key).unwrap_or(&none).clone();
    let current = |s: &Value, key: &str| s.get("current").and_then(|c| field(c, key));
    let body = match kind {
        "Resource" | "ContainerResource" => {
            let key = if kind == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = source(key);
            (
                key,
                fields([
                    ("name", field(&s, "name")),
                    ("container", field(&s, "container")),
                    (
                        "currentAverageUtilization",
                        current(&s, "averageUtilization"),
                    ),
                    ("currentAverageValue", current(&s, "averageValue")),
                ]),
            )
        }
        "Pods" => {
            let s = source("pods");
            let metric = s.get("metric").unwrap_or(&none);
            (
                "pods",
                fields([
                    ("metricName", field(metric, "name")),
                    ("selector", field(metric, "selector")),
                    ("currentAverageValue", current(&s, "averageValue")),
                ]),
            )
        }
        "Object" => {
            let s = source("object");
            let metric = s.get("metric").unwrap_or(&none);
            (
                "object",
                fields([
                    ("target", field(&s, "describedObject")),
                    ("metricName", field(metric, "name")),
                    ("selector", field(metric, "selector")),
                    ("currentValue", current(&s, "value")),
                    ("averageValue", current(&s, "averageValue")),
                ]),
            )
        }
        "External" => {
            let s = source("external");
            let metric = s.get("metric").unwrap_or(&none);
            (
                "external",
                fields([
                    ("metricName", field(metric, "name")),
                    ("metricSelector", field(metric, "selector")),
                    ("currentValue", current(&s, "value")),
                    ("currentAverageValue", current(&s, "averageValue")),
                ]),
            )
        }
        _ => return m.clone(),
    };
    json!({"type": kind, body.0: body.1})
}

/// autoscaling/v1 `MetricStatus` → v2 `MetricStatus`.
fn metric_status_to_v2(m: &Value) -> Value {
    let kind = m.get("type").and_then(Value::as_str).unwrap_or_default();
    let none = Value::Null;
    let source = |key: &str| m.get(key).unwrap_or(&none).clone();
    let body = match kind {
        "Resource" | "ContainerResource" => {
            let key = if kind == "Resource" {
                "resource"
            } else {
                "containerResource"
            };
            let s = source(key);
            let current = fields([
                ("averageUtilization", field(&s, "currentAverageUtilization")),
                ("averageValue", field(&s, "currentAverageValue")),
            ]);
            (
                key,
                fields([
                    ("name", field(&s, "name")),
                    ("container", field(&s, "container")),
                    ("current", Some(current)),
                ]),
            )
        }
        "Pods" => {
            let s = source("pods");
            let metric = fields([
                ("name", field(&s, "metricName")),
                ("selector", field(&s, "selector")),
            ]);
            let current = fields([("averageValue", field(&s, "currentAverageValue"))]);
            ("pods", json!({"metric": metric, "current": current}))
        }
        "Object" => {
            let s = source("object");
            let metric = fields([
                ("name", field(&s, "metricName")),
                ("selector", field(&s, "selector")),
            ]);
            let current = fields([
                ("value", field(&s, "currentValue")),
                ("averageValue", field(&s, "averageValue")),
            ]);
            (
                "object",
                fields([
                    ("describedObject", field(&s, "target")),
                    ("metric", Some(metric)),
                    ("current", Some(current)),
                ]),
            )
        }
        "External" => {
            let s = source("external");
            let metric = fields([
                ("name", field(&s, "metricName")),
                ("selector", field(&s, "metricSelector")),
            ]);
            let current = fields([
                ("value", field(&s, "currentValue")),
                ("averageValue", field(&s, "currentAverageValue")),
            ]);
            ("external", json!({"metric": metric, "current": current}))
        }
        _ => return m.clone(),
    };
    json!({"type": kind, body.0: body.1})
}

/// Takes annotation `key` out of `meta`, parsed as JSON.
fn take_annotation(meta: Option<&mut Map>, key: &str) -> Option<Value> {
    let annotations = meta?.get_mut("annotations")?.as_object_mut()?;
    let parsed = serde_json::from_str(annotations.get(key)?.as_str()?).ok()?;
    annotations.remove(key);
    Some(parsed)
}

/// autoscaling/v1 → v2: `targetCPUUtilizationPercentage` becomes a cpu Resource metric, after
/// the other metrics kept in the annotations (upstream's order); the annotations go.
fn hpa_v1_to_v2(obj: &Value) -> Value {
    let mut out = obj.clone();
    let mut meta = out.get_mut("metadata").and_then(Value::as_object_mut);
    let other_metrics = take_annotation(meta.as_deref_mut(), METRICS_ANNOTATION);
    let other_current = take_annotation(meta.as_deref_mut(), CURRENT_METRICS_ANNOTATION);
    let conditions = take_annotation(meta.as_deref_mut(), CONDITIONS_ANNOTATION);
    let behavior = take_annotation(meta.as_deref_mut(), BEHAVIOR_ANNOTATION);
    if let Some(meta) = meta
        && meta
            .get("annotations")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
    {
        meta.remove("annotations");
    }
    let converted = |list: Option<Value>, convert: fn(&Value) -> Value| -> Vec<Value> {
        list.as_ref()
            .and_then(Value::as_array)
            .map(|l| l.iter().map(convert).collect())
            .unwrap_or_default()
    };
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        let mut metrics = converted(other_metrics, metric_spec_to_v2);
        if let Some(target) = spec.remove("targetCPUUtilizationPercentage") {
            metrics.push(json!({ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": target } } }));
        }
        if !metrics.is_empty() {
            spec.insert("metrics".into(), Value::Array(metrics));
        }
        if let Some(behavior) = behavior {
            spec.insert("behavior".into(), behavior);
        }
    }
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut) {
        let mut current = converted(other_current, metric_status_to_v2);
        if let Some(cpu) = status.remove("currentCPUUtilizationPercentage") {
            current.push(json!({ "type": "Resource", "resource": { "name": "cpu", "current": { "averageUtilization": cpu } } }));
        }
        if !current.is_empty() {
            status.insert("currentMetrics".into(), Value::Array(current));
        }
        if let Some(conditions) = conditions {
            status.insert("conditions".into(), conditions);
        }
    }
    out
}

/// autoscaling/v2 → v1: the cpu Utilization metric becomes `targetCPUUtilizationPercentage`
/// (its current value `currentCPUUtilizationPercentage`); other metrics, the conditions and
/// `behavior` are carried in the annotations upstream uses, so a round trip keeps them.
fn hpa_v2_to_v1(obj: &Value) -> Value {
    let mut out = obj.clone();
    let mut annotations = Map::new();
    let encode = |value: &Value| Value::String(value.to_string());
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        let metrics = spec.remove("metrics");
        let mut metrics = metrics.as_ref().and_then(Value::as_array).cloned();
        let cpu = metrics.as_mut().and_then(|list| {
            let at = list
                .iter()
                .position(|m| is_cpu_resource(m, "/resource/target/averageUtilization"))?;
            Some(list.remove(at))
        });
        if let Some(target) = cpu
            .as_ref()
            .and_then(|m| m.pointer("/resource/target/averageUtilization"))
        {
            spec.insert("targetCPUUtilizationPercentage".into(), target.clone());
        }
        if let Some(others) = metrics.filter(|l| !l.is_empty()) {
            let v1: Vec<Value> = others.iter().map(metric_spec_to_v1).collect();
            annotations.insert(METRICS_ANNOTATION.into(), encode(&Value::Array(v1)));
        }
        if let Some(behavior) = spec.remove("behavior").filter(|b| !b.is_null()) {
            annotations.insert(BEHAVIOR_ANNOTATION.into(), encode(&behavior));
        }
    }
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut) {
        let current = status.remove("currentMetrics");
        let mut current = current.as_ref().and_then(Value::as_array).cloned();
        let cpu = current.as_mut().and_then(|list| {
            let at = list
                .iter()
                .position(|m| is_cpu_resource(m, "/resource/current/averageUtilization"))?;
            Some(list.remove(at))
        });
        if let Some(value) = cpu
            .as_ref()
            .and_then(|m| m.pointer("/resource/current/averageUtilization"))
        {
            status.insert("currentCPUUtilizationPercentage".into(), value.clone());
        }
        if let Some(others) = current.filter(|l| !l.is_empty()) {
            let v1: Vec<Value> = others.iter().map(metric_status_to_v1).collect();
            annotations.insert(CURRENT_METRICS_ANNOTATION.into(), encode(&Value::Array(v1)));
        }
        if let Some(conditions) = status
            .remove("conditions")
            .filter(|c| c.as_array().is_some_and(|l| !l.is_empty()))
        {
            annotations.insert(CONDITIONS_ANNOTATION.into(), encode(&conditions));
        }
    }
    if !annotations.is_empty()
        && let Some(meta) = out.get_mut("metadata").and_then(Value::as_object_mut)
    {
        let entry = meta
            .entry("annotations")
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        if let Some(existing) = entry.as_object_mut() {
            existing.extend(annotations);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tugboat_api::resources::Registry;

    #[test]
    fn hpa_round_trips_through_v1() {
        let registry = Registry::builtin();
        let hpa = registry
            .lookup("autoscaling", "v1", "horizontalpodautoscalers")
            .unwrap();
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web"},
            "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                     "minReplicas": 1, "maxReplicas": 10, "targetCPUUtilizationPercentage": 80}
        });
        let stored = to_storage(hpa, v1.clone(), "v1");
        assert_eq!(stored["apiVersion"], "autoscaling/v2");
        assert_eq!(
            stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        assert_eq!(to_version(hpa, &stored, "v1"), v1);
    }

    #[test]
    fn as_version_copies_only_what_it_must_change() {
        let registry = Registry::builtin();
        let pods = registry.lookup("", "v1", "pods").unwrap();
        let stored = to_storage(pods, json!({"metadata": {"name": "web"}}), "v1");
        assert!(matches!(as_version(pods, &stored, "v1"), Cow::Borrowed(_)));
        assert_eq!(
            *as_version(pods, &stored, "v1"),
            to_version(pods, &stored, "v1")
        );
        // No type meta yet: it is added, as to_version adds it.
        let bare = json!({"metadata": {"name": "web"}});
        let shown = as_version(pods, &bare, "v1");
        assert!(matches!(shown, Cow::Owned(_)));
        assert_eq!(
            (shown["apiVersion"].as_str(), shown["kind"].as_str()),
            (Some("v1"), Some("Pod"))
        );
        // A stored autoscaling/v2 object read at v1 is converted.
        let hpa = registry
            .lookup("autoscaling", "v1", "horizontalpodautoscalers")
            .unwrap();
        let v2 = to_storage(hpa, json!({"metadata": {"name": "web"}, "spec": {}}), "v2");
        let shown = as_version(hpa, &v2, "v1");
        assert_eq!(shown["apiVersion"], "autoscaling/v1");
        assert_eq!(*shown, to_version(hpa, &v2, "v1"));
    }

    #[test]
    fn v2_only_fields_survive_a_v1_round_trip_in_upstreams_annotations() {
        let registry = Registry::builtin();
        let v1 = registry
            .lookup("autoscaling", "v1", "horizontalpodautoscalers")
            .unwrap();
        let stored = json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "annotations": {"team": "a"}},
            "spec": {
                "scaleTargetRef": {"kind": "Deployment", "name": "web", "apiVersion": "apps/v1"},
                "minReplicas": 1, "maxReplicas": 10,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}},
                    {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "10"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 120, "averageValue": "120m"}}},
                    {"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "50Mi"}}},
                ],
                "conditions": [{"type": "AbleToScale", "status": "True", "reason": "SucceededRescale"}],
            },
        });
        let shown = to_version(v1, &stored, "v1");
        assert_eq!(shown["apiVersion"], "autoscaling/v1");
        assert_eq!(shown["spec"]["targetCPUUtilizationPercentage"], 80);
        assert_eq!(shown["status"]["currentCPUUtilizationPercentage"], 120);
        assert!(shown["spec"].get("metrics").is_none());
        assert!(shown["status"].get("conditions").is_none());
        let annotations = &shown["metadata"]["annotations"];
        assert_eq!(annotations["team"], "a");
        let metrics: Value = serde_json::from_str(
            annotations["autoscaling.alpha.kubernetes.io/metrics"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            metrics,
            json!([
                {"type": "Resource", "resource": {"name": "memory", "targetAverageValue": "100Mi"}},
                {"type": "Pods", "pods": {"metricName": "qps", "targetAverageValue": "10"}},
            ])
        );
        let current: Value = serde_json::from_str(
            annotations["autoscaling.alpha.kubernetes.io/current-metrics"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            current,
            json!([{"type": "Resource", "resource": {"name": "memory", "currentAverageValue": "50Mi"}}])
        );

        // A v1 client writes back what it read: nothing of v2 is lost (metrics other than
        // cpu come first, as upstream orders them).
        let back = to_storage(v1, shown, "v1");
        let mut expected = stored.clone();
        expected["spec"]["metrics"] = json!([
            stored["spec"]["metrics"][0],
            stored["spec"]["metrics"][2],
            stored["spec"]["metrics"][1],
        ]);
        expected["status"]["currentMetrics"] = json!([
            stored["status"]["currentMetrics"][1],
            {"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 120}}},
        ]);
        assert_eq!(back, expected);
    }

    #[test]
    fn every_v1_metric_shape_converts_both_ways() {
        for v2 in [
            json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app", "target": {"type": "Utilization", "averageUtilization": 50}}}),
            json!({"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"}, "metric": {"name": "rps"}, "target": {"type": "Value", "value": "5"}}}),
            json!({"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"}, "metric": {"name": "rps"}, "target": {"type": "AverageValue", "averageValue": "5"}}}),
            json!({"type": "External", "external": {"metric": {"name": "queue", "selector": {"matchLabels": {"q": "a"}}}, "target": {"type": "Value", "value": "30"}}}),
        ] {
            assert_eq!(metric_spec_to_v2(&metric_spec_to_v1(&v2)), v2);
        }
        for v2 in [
            json!({"type": "Pods", "pods": {"metric": {"name": "qps"}, "current": {"averageValue": "3"}}}),
            json!({"type": "Object", "object": {"describedObject": {"kind": "Service", "name": "s"}, "metric": {"name": "rps"}, "current": {"value": "5"}}}),
            json!({"type": "External", "external": {"metric": {"name": "queue"}, "current": {"averageValue": "2"}}}),
        ] {
            assert_eq!(metric_status_to_v2(&metric_status_to_v1(&v2)), v2);
        }
    }
}
