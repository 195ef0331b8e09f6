//! Printers for HorizontalPodAutoscalers (the TARGETS column) and PodDisruptionBudgets.

use serde_json::{Value, json};

use super::object::*;
use super::*;

pub(super) const HPA_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Reference",
        "string",
        "scaleTargetRef points to the target resource to scale.",
    ),
    column(
        "Targets",
        "string",
        "metrics contains the specifications for which to use to calculate the desired replica count.",
    ),
    column(
        "MinPods",
        "string",
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
    ),
    column(
        "MaxPods",
        "string",
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
    ),
    column(
        "Replicas",
        "string",
        "currentReplicas is current number of replicas of pods managed by this autoscaler.",
    ),
    AGE,
];

/// The metric specs and statuses in v2 form; a v1 object's CPU target is converted.
pub(super) fn hpa_metrics(o: &Object<'_>) -> (Vec<Value>, Vec<Value>) {
    let specs = o.list("/spec/metrics");
    if !specs.is_empty() {
        return (specs.to_vec(), o.list("/status/currentMetrics").to_vec());
    }
    let Some(target) = o
        .at("/spec/targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    else {
        return (Vec::new(), Vec::new());
    };
    let spec = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}});
    let status = o
        .at("/status/currentCPUUtilizationPercentage")
        .and_then(Value::as_i64)
        .map(|current| {
            vec![json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}})]
        })
        .unwrap_or_default();
    (vec![spec], status)
}

/// `formatHPAMetrics`: `cpu: 40%/80%`, at most two, then `+ N more...`.
pub(super) fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".to_owned();
    }
    let unknown = || "<unknown>".to_owned();
    let quantity = |v: Option<&Value>| int_or_string(v).unwrap_or_else(unknown);
    let percent = |v: Option<&Value>| v.and_then(Value::as_i64).map(|p| format!("{p}%"));
    let mut shown = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        let field = |source: &str| status.and_then(|s| s.get(source)).filter(|v| v.is_object());
        let entry = match text(spec, "/type") {
            source_type @ ("External" | "Object") => {
                let key = if source_type == "External" {
                    "external"
                } else {
                    "object"
                };
                if spec
                    .pointer(&format!("/{key}/target/averageValue"))
                    .is_some()
                {
                    let current = field(key)
                        .and_then(|s| s.pointer("/current/averageValue"))
                        .map_or_else(unknown, |v| quantity(Some(v)));
                    format!(
                        "{}/{} (avg)",
                        current,
                        quantity(spec.pointer(&format!("/{key}/target/averageValue")))
                    )
                } else {
                    let current = field(key)
                        .and_then(|s| s.pointer("/current/value"))
                        .map_or_else(unknown, |v| quantity(Some(v)));
                    format!(
                        "{}/{}",
                        current,
                        quantity(spec.pointer(&format!("/{key}/target/value")))
                    )
                }
            }
            "Pods" => {
                let current = field("pods")
                    .and_then(|s| s.pointer("/current/averageValue"))
                    .map_or_else(unknown, |v| quantity(Some(v)));
                format!(
                    "{}/{}",
                    current,
                    quantity(spec.pointer("/pods/target/averageValue"))
                )
            }
            source_type @ ("Resource" | "ContainerResource") => {
                let key = if source_type == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let name = text(spec, &format!("/{key}/name"));
                if let Some(target) = spec.pointer(&format!("/{key}/target/averageValue")) {
                    let current = field(key)
                        .and_then(|s| s.pointer("/current/averageValue"))
                        .map_or_else(unknown, |v| quantity(Some(v)));
                    format!("{}: {}/{}", name, current, quantity(Some(target)))
                } else {
                    let current = field(key)
                        .and_then(|s| percent(s.pointer("/current/averageUtilization")))
                        .unwrap_or_else(unknown);
                    let target =
                        percent(spec.pointer(&format!("/{key}/target/averageUtilization")))
                            .unwrap_or_else(|| "<auto>".to_owned());
                    format!("{name}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_owned(),
        };
        shown.push(entry);
    }
    const MAX: usize = 2;
    let count = shown.len();
    if count > MAX {
        shown.truncate(MAX);
        format!("{} + {} more...", shown.join(", "), count - MAX)
    } else {
        shown.join(", ")
    }
}

pub(super) fn hpa_cells(o: &Object<'_>) -> Vec<Value> {
    let (specs, statuses) = hpa_metrics(o);
    let reference = format!(
        "{}/{}",
        o.text("/spec/scaleTargetRef/kind"),
        o.text("/spec/scaleTargetRef/name")
    );
    let min_pods = o
        .at("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map_or_else(|| "<unset>".to_owned(), |m| m.to_string());
    vec![
        o.name(),
        Value::from(reference),
        Value::from(format_hpa_metrics(&specs, &statuses)),
        Value::from(min_pods),
        Value::from(o.int("/spec/maxReplicas")),
        Value::from(o.int("/status/currentReplicas")),
        o.age(),
    ]
}

pub(super) const PDB_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    column(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    column(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

pub(super) fn pdb_cells(o: &Object<'_>) -> Vec<Value> {
    let or_na = |pointer: &str| int_or_string(o.at(pointer)).unwrap_or_else(|| "N/A".to_owned());
    vec![
        o.name(),
        Value::from(or_na("/spec/minAvailable")),
        Value::from(or_na("/spec/maxUnavailable")),
        Value::from(o.int("/status/disruptionsAllowed")),
        o.age(),
    ]
}
