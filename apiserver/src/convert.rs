//! Conversion between the stored version of a resource and the versions it is served at.
//!
//! Most resources are served at one version, stored as they come. The exceptions convert here:
//! `autoscaling/v1` HorizontalPodAutoscalers are stored as `autoscaling/v2`.

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

/// autoscaling/v1 → v2: `targetCPUUtilizationPercentage` becomes a cpu Resource metric.
fn hpa_v1_to_v2(obj: &Value) -> Value {
    let mut out = obj.clone();
    let spec = out.get_mut("spec").and_then(Value::as_object_mut);
    if let Some(spec) = spec
        && let Some(target) = spec.remove("targetCPUUtilizationPercentage")
    {
        spec.insert(
            "metrics".into(),
            json!([{ "type": "Resource", "resource": { "name": "cpu", "target": { "type": "Utilization", "averageUtilization": target } } }]),
        );
    }
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut)
        && let Some(current) = status.remove("currentCPUUtilizationPercentage")
    {
        status.insert(
            "currentMetrics".into(),
            json!([{ "type": "Resource", "resource": { "name": "cpu", "current": { "averageUtilization": current } } }]),
        );
    }
    out
}

/// autoscaling/v2 → v1: the cpu Utilization metric becomes `targetCPUUtilizationPercentage`;
/// other metrics are carried in the annotations upstream uses, so a round trip keeps them.
fn hpa_v2_to_v1(obj: &Value) -> Value {
    let mut out = obj.clone();
    let cpu_target = |metrics: &Value| {
        metrics.as_array()?.iter().find_map(|m| {
            let r = m.get("resource")?;
            (m.get("type")?.as_str()? == "Resource" && r.get("name")?.as_str()? == "cpu")
                .then(|| r.pointer("/target/averageUtilization").cloned())
                .flatten()
        })
    };
    if let Some(spec) = out.get_mut("spec").and_then(Value::as_object_mut) {
        let metrics = spec.remove("metrics");
        spec.remove("behavior");
        if let Some(target) = metrics.as_ref().and_then(cpu_target) {
            spec.insert("targetCPUUtilizationPercentage".into(), target);
        }
    }
    if let Some(status) = out.get_mut("status").and_then(Value::as_object_mut) {
        let current = status.remove("currentMetrics");
        status.remove("conditions");
        let cpu = current.as_ref().and_then(|metrics| {
            metrics.as_array()?.iter().find_map(|m| {
                let r = m.get("resource")?;
                (r.get("name")?.as_str()? == "cpu")
                    .then(|| r.pointer("/current/averageUtilization").cloned())
                    .flatten()
            })
        });
        if let Some(cpu) = cpu {
            status.insert("currentCPUUtilizationPercentage".into(), cpu);
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
}
