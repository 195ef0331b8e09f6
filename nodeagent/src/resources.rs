//! Resource quantities and what they become in the runtime: CPU shares from requests, CFS
//! quota and memory limit from limits (the kubelet's formulas).

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// CFS period the quota is measured against (100 ms).
pub const CPU_PERIOD_US: i64 = 100_000;
const MIN_SHARES: i64 = 2;
const MIN_QUOTA_US: i64 = 1_000;

/// A quantity (`500m`, `2`, `1.5`, `128Mi`, `1G`, `1e3`) as a number of base units.
pub fn parse_quantity(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "Pi" => 1024.0f64.powi(5),
        "Ei" => 1024.0f64.powi(6),
        exp if exp.starts_with(['e', 'E']) => 10f64.powi(exp[1..].parse().ok()?),
        _ => return None,
    };
    let value = number * scale;
    value.is_finite().then_some(value)
}

fn quantity(c: &Container, which: Which, resource: &str) -> Option<f64> {
    let r = c.resources.as_ref()?;
    let map = match which {
        Which::Requests => r.requests.as_ref(),
        Which::Limits => r.limits.as_ref(),
    }?;
    parse_quantity(&map.get(resource)?.0)
}

#[derive(Clone, Copy)]
enum Which {
    Requests,
    Limits,
}

/// What the runtime enforces for one container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// cgroup CPU shares (from the CPU request, or the limit when no request).
    pub cpu_shares: i64,
    /// CFS quota in µs per [`CPU_PERIOD_US`]; 0 = none.
    pub cpu_quota_us: i64,
    /// Memory limit in bytes; 0 = none.
    pub memory_bytes: i64,
}

/// The kubelet's mapping of a container's requests and limits.
pub fn limits(c: &Container) -> Limits {
    let cpu_limit = quantity(c, Which::Limits, "cpu");
    // A request defaults to the limit, as the API server's defaulting does.
    let cpu_request = quantity(c, Which::Requests, "cpu").or(cpu_limit);
    let milli = |cores: f64| (cores * 1000.0).round() as i64;
    let cpu_shares = cpu_request
        .map(|r| (milli(r) * 1024 / 1000).max(MIN_SHARES))
        .unwrap_or(MIN_SHARES);
    let cpu_quota_us = cpu_limit
        .map(|l| (milli(l) * CPU_PERIOD_US / 1000).max(MIN_QUOTA_US))
        .unwrap_or(0);
    let memory_bytes = quantity(c, Which::Limits, "memory")
        .map(|m| m.round() as i64)
        .unwrap_or(0);
    Limits {
        cpu_shares,
        cpu_quota_us,
        memory_bytes,
    }
}

/// A `resourceFieldRef` (`limits.cpu`, `requests.memory`, ...) divided by `divisor`, rounded
/// up as the kubelet does. An unset limit reads as unset (empty is not what the kubelet does:
/// it falls back to node allocatable, which this agent does not pass in).
pub fn resource_field(c: &Container, resource: &str, divisor: Option<&Quantity>) -> Option<String> {
    let (which, name) = resource.split_once('.')?;
    let which = match which {
        "limits" => Which::Limits,
        "requests" => Which::Requests,
        _ => return None,
    };
    if !matches!(name, "cpu" | "memory" | "ephemeral-storage") {
        return None;
    }
    let value = quantity(c, which, name).unwrap_or(0.0);
    let divisor = divisor.and_then(|d| parse_quantity(&d.0)).unwrap_or(1.0);
    if divisor <= 0.0 {
        return None;
    }
    Some(format!("{}", (value / divisor).ceil() as i64))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::ResourceRequirements;

    use super::*;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |pairs: &[(&str, &str)]| -> Option<BTreeMap<String, Quantity>> {
            (!pairs.is_empty()).then(|| {
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn quantities_parse_with_every_suffix() {
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("2"), Some(2.0));
        assert_eq!(parse_quantity("128Mi"), Some(134_217_728.0));
        assert_eq!(parse_quantity("1G"), Some(1e9));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("12x"), None);
        assert_eq!(parse_quantity(""), None);
    }

    #[test]
    fn cpu_and_memory_map_to_shares_quota_and_limit() {
        let l = limits(&container(
            &[("cpu", "250m")],
            &[("cpu", "1"), ("memory", "64Mi")],
        ));
        assert_eq!(l.cpu_shares, 256);
        assert_eq!(l.cpu_quota_us, 100_000);
        assert_eq!(l.memory_bytes, 64 << 20);
        let none = limits(&container(&[], &[]));
        assert_eq!(
            none,
            Limits {
                cpu_shares: 2,
                cpu_quota_us: 0,
                memory_bytes: 0
            }
        );
        // A limit alone is also the request.
        assert_eq!(limits(&container(&[], &[("cpu", "500m")])).cpu_shares, 512);
    }

    #[test]
    fn resource_fields_divide_and_round_up() {
        let c = container(&[("cpu", "250m")], &[("memory", "64Mi")]);
        assert_eq!(
            resource_field(&c, "limits.memory", Some(&Quantity("1Mi".into()))).as_deref(),
            Some("64")
        );
        assert_eq!(
            resource_field(&c, "requests.cpu", None).as_deref(),
            Some("1")
        );
        assert_eq!(
            resource_field(&c, "requests.cpu", Some(&Quantity("1m".into()))).as_deref(),
            Some("250")
        );
        assert_eq!(resource_field(&c, "limits.gpu", None), None);
    }
}
