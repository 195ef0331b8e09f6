//! HorizontalPodAutoscaler defaults (upstream `pkg/apis/autoscaling/v{1,2}/defaults.go`).

use serde_json::{Value, json};

use super::json::{child_object, ensure_object, is_unset, set_default};

/// Defaults an HPA in the shape its `apiVersion` names; anything but `autoscaling/v1` is
/// treated as v2, the storage version.
pub(super) fn default_hpa(hpa: &mut Value) {
    let is_v1 = hpa.get("apiVersion").and_then(Value::as_str) == Some("autoscaling/v1");
    let Some(spec) = ensure_object(hpa, "spec") else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    if is_v1 {
        return;
    }
    let has_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_some_and(|metrics| !metrics.is_empty());
    if !has_metrics && let Some(map) = spec.as_object_mut() {
        map.insert(
            "metrics".to_owned(),
            json!([{
                "type": "Resource",
                "resource": {
                    "name": "cpu",
                    "target": {"type": "Utilization", "averageUtilization": 80},
                },
            }]),
        );
    }
    // Behavior is completed only when the user gave one (upstream keeps nil as nil).
    if let Some(behavior) = child_object(spec, "behavior") {
        if let Some(scale_up) = ensure_object(behavior, "scaleUp") {
            fill_scaling_rules(
                scale_up,
                Some(0),
                json!([
                    {"type": "Pods", "value": 4, "periodSeconds": 15},
                    {"type": "Percent", "value": 100, "periodSeconds": 15},
                ]),
            );
        }
        if let Some(scale_down) = ensure_object(behavior, "scaleDown") {
            // The scale-down window stays unset: the controller's flag (300s) applies.
            fill_scaling_rules(
                scale_down,
                None,
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
    }
}

fn fill_scaling_rules(rules: &mut Value, stabilization_window: Option<i32>, policies: Value) {
    if let Some(window) = stabilization_window {
        set_default(rules, "stabilizationWindowSeconds", json!(window));
    }
    set_default(rules, "selectPolicy", json!("Max"));
    if is_unset(rules, "policies") {
        set_default(rules, "policies", policies);
    }
}
