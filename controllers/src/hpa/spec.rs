//! An HPA's spec in the calculation's terms: which metrics (and which are unsupported),
//! bounds and behavior with upstream's defaults, and quantities in milli-units.

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerSpec, MetricSpec};

use super::replicas::{Bounds, Policy, Rules, SelectPolicy, Target};

/// A metric the controller can compute.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceMetric {
    /// `cpu` or `memory`.
    pub resource: String,
    /// What it is measured against.
    pub target: Target,
}

/// Why a metric of the spec cannot be used: upstream's condition reason and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsupported {
    /// The ScalingActive=False reason.
    pub reason: &'static str,
    /// The message.
    pub message: String,
}

/// A quantity (`500m`, `2`, `128Mi`, `250000000n`) in milli-units, rounded up.
pub fn milli(text: &str) -> Option<i64> {
    // Exact decimal arithmetic: `150000000n` is 150m, not 151m as a float would round it.
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let (negative, number) = match number.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, number.strip_prefix('+').unwrap_or(number)),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
        || whole.len() + fraction.len() > 30
    {
        return None;
    }
    // mantissa × 10^exp10 × binary; plus 3 for milli-units.
    let mut mantissa: i128 = 0;
    for digit in whole.bytes().chain(fraction.bytes()) {
        mantissa = mantissa * 10 + i128::from(digit - b'0');
    }
    let fraction_digits = i32::try_from(fraction.len()).ok()?;
    let (exp10, binary): (i32, i128) = match suffix {
        "" => (0, 1),
        "n" => (-9, 1),
        "u" => (-6, 1),
        "m" => (-3, 1),
        "k" => (3, 1),
        "M" => (6, 1),
        "G" => (9, 1),
        "T" => (12, 1),
        "P" => (15, 1),
        "E" => (18, 1),
        "Ki" => (0, 1 << 10),
        "Mi" => (0, 1 << 20),
        "Gi" => (0, 1 << 30),
        "Ti" => (0, 1 << 40),
        "Pi" => (0, 1 << 50),
        "Ei" => (0, 1 << 60),
        exp if exp.starts_with(['e', 'E']) => (exp[1..].parse().ok()?, 1),
        _ => return None,
    };
    let exp10 = exp10 + 3 - fraction_digits;
    let scaled = mantissa.checked_mul(binary)?;
    let value = if exp10 >= 0 {
        scaled.checked_mul(10i128.checked_pow(u32::try_from(exp10).ok()?)?)?
    } else {
        let divisor = 10i128.checked_pow(u32::try_from(-exp10).ok()?)?;
        // Rounded up, as Kubernetes' MilliValue.
        let quotient = scaled / divisor;
        if scaled % divisor == 0 {
            quotient
        } else {
            quotient + 1
        }
    };
    let value = if negative { -value } else { value };
    i64::try_from(value)
        .ok()
        .filter(|v| v.unsigned_abs() < 9_000_000_000_000_000_000)
}

/// Milli-units as a quantity string (`250m`).
pub fn format_milli(value: i64) -> String {
    if value % 1000 == 0 {
        format!("{}", value / 1000)
    } else {
        format!("{value}m")
    }
}

/// The metrics of `spec` (cpu at 80 % utilization when none is given, as upstream defaults).
pub fn metrics(spec: &HorizontalPodAutoscalerSpec) -> Vec<Result<ResourceMetric, Unsupported>> {
    match spec.metrics.as_deref() {
        None | Some([]) => vec![Ok(ResourceMetric {
            resource: "cpu".into(),
            target: Target::Utilization(80),
        })],
        Some(metrics) => metrics.iter().map(metric).collect(),
    }
}

fn unsupported(reason: &'static str, what: &str) -> Unsupported {
    Unsupported {
        reason,
        message: format!(
            "the HPA was unable to compute the replica count: {what} is not supported by Tugboat"
        ),
    }
}

fn metric(spec: &MetricSpec) -> Result<ResourceMetric, Unsupported> {
    match spec.type_.as_str() {
        "Resource" => {
            let Some(source) = &spec.resource else {
                return Err(unsupported(
                    "FailedGetResourceMetric",
                    "a Resource metric without its source",
                ));
            };
            if source.name != "cpu" && source.name != "memory" {
                return Err(unsupported(
                    "FailedGetResourceMetric",
                    &format!("resource {:?} (only cpu and memory)", source.name),
                ));
            }
            let target = match source.target.type_.as_str() {
                "Utilization" => source.target.average_utilization.map(Target::Utilization),
                "AverageValue" => source
                    .target
                    .average_value
                    .as_ref()
                    .and_then(|q| milli(&q.0))
                    .map(Target::AverageValue),
                other => {
                    return Err(unsupported(
                        "FailedGetResourceMetric",
                        &format!("target type {other:?} of a Resource metric"),
                    ));
                }
            };
            target
                .map(|target| ResourceMetric {
                    resource: source.name.clone(),
                    target,
                })
                .ok_or_else(|| {
                    unsupported(
                        "FailedGetResourceMetric",
                        "a Resource metric without its target value",
                    )
                })
        }
        "Pods" => Err(unsupported("FailedGetPodsMetric", "metric type Pods")),
        "Object" => Err(unsupported("FailedGetObjectMetric", "metric type Object")),
        "External" => Err(unsupported(
            "FailedGetExternalMetric",
            "metric type External",
        )),
        "ContainerResource" => Err(unsupported(
            "FailedGetContainerResourceMetric",
            "metric type ContainerResource",
        )),
        other => Err(Unsupported {
            reason: "InvalidMetricSourceType",
            message: format!(
                "the HPA was unable to compute the replica count: unknown metric source type {other:?}"
            ),
        }),
    }
}

fn rules(given: Option<&HPAScalingRules>, default: Rules) -> Rules {
    let Some(given) = given else { return default };
    let policies = given
        .policies
        .as_ref()
        .map(|policies| {
            policies
                .iter()
                .filter_map(|p| match p.type_.as_str() {
                    "Pods" => Some(Policy::Pods {
                        value: p.value,
                        period_seconds: p.period_seconds,
                    }),
                    "Percent" => Some(Policy::Percent {
                        value: p.value,
                        period_seconds: p.period_seconds,
                    }),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .filter(|p| !p.is_empty())
        .unwrap_or(default.policies);
    let select = match given.select_policy.as_deref() {
        Some("Min") => SelectPolicy::Min,
        Some("Disabled") => SelectPolicy::Disabled,
        _ => SelectPolicy::Max,
    };
    Rules {
        stabilization_seconds: given
            .stabilization_window_seconds
            .map(i64::from)
            .unwrap_or(default.stabilization_seconds),
        policies,
        select,
    }
}

/// minReplicas (default 1), maxReplicas and behavior with defaults; `downscale_seconds` is the
/// default scale-down window.
pub fn bounds(spec: &HorizontalPodAutoscalerSpec, downscale_seconds: i64) -> Bounds {
    let behavior = spec.behavior.as_ref();
    Bounds {
        min: spec.min_replicas.unwrap_or(1),
        max: spec.max_replicas,
        up: rules(
            behavior.and_then(|b| b.scale_up.as_ref()),
            Rules::default_up(),
        ),
        down: rules(
            behavior.and_then(|b| b.scale_down.as_ref()),
            Rules::default_down(downscale_seconds),
        ),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use serde_json::json;

    use super::*;

    fn spec(value: serde_json::Value) -> HorizontalPodAutoscalerSpec {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn quantities() {
        assert_eq!(milli("250m"), Some(250));
        assert_eq!(milli("250000000n"), Some(250));
        assert_eq!(milli("2"), Some(2000));
        assert_eq!(milli("1Ki"), Some(1_024_000));
        assert_eq!(milli("x"), None);
        // Exact: a float would make this 151.
        assert_eq!(milli("150000000n"), Some(150));
        assert_eq!(milli("150000001n"), Some(151));
        assert_eq!(milli("0.5"), Some(500));
        assert_eq!(milli("1.5Gi"), Some(1_610_612_736_000));
        assert_eq!(milli("64Mi"), Some(67_108_864_000));
        assert_eq!(milli("1e3"), Some(1_000_000));
        assert_eq!(milli("-100m"), Some(-100));
        assert_eq!(milli("."), None);
        assert_eq!(format_milli(250), "250m");
        assert_eq!(format_milli(3000), "3");
    }

    #[test]
    fn metrics_default_and_unsupported() {
        let base =
            json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5});
        let got = metrics(&spec(base.clone()));
        assert_eq!(
            got,
            vec![Ok(ResourceMetric {
                resource: "cpu".into(),
                target: Target::Utilization(80)
            })]
        );
        let mut with = base;
        with["metrics"] = json!([
            {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
            {"type": "Pods", "pods": {"metric": {"name": "qps"}, "target": {"type": "AverageValue", "averageValue": "1"}}},
            {"type": "Resource", "resource": {"name": "ephemeral-storage", "target": {"type": "Utilization", "averageUtilization": 50}}},
        ]);
        let got = metrics(&spec(with));
        assert_eq!(
            got[0],
            Ok(ResourceMetric {
                resource: "memory".into(),
                target: Target::AverageValue(100 * 1024 * 1024 * 1000)
            })
        );
        let pods = got[1].clone().unwrap_err();
        assert_eq!(pods.reason, "FailedGetPodsMetric");
        assert!(pods.message.contains("Pods"), "{}", pods.message);
        assert_eq!(
            got[2].clone().unwrap_err().reason,
            "FailedGetResourceMetric"
        );
    }

    #[test]
    fn behavior_defaults_and_overrides() {
        let b = bounds(
            &spec(
                json!({"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}),
            ),
            30,
        );
        assert_eq!((b.min, b.max), (1, 5));
        assert_eq!(b.up, Rules::default_up());
        assert_eq!(b.down, Rules::default_down(30));
        let b = bounds(
            &spec(json!({
                "scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 2, "maxReplicas": 5,
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 10, "selectPolicy": "Min",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}]}}
            })),
            30,
        );
        assert_eq!(b.min, 2);
        assert_eq!(b.down.stabilization_seconds, 10);
        assert_eq!(b.down.select, SelectPolicy::Min);
        assert_eq!(
            b.down.policies,
            vec![Policy::Pods {
                value: 1,
                period_seconds: 60
            }]
        );
    }
}
