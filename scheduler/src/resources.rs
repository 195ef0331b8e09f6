//! Resource amounts as the scheduler counts them: CPU in millicores, memory and storage in
//! bytes, pod slots, and extended ("scalar") resources as whole units.
//!
//! Follows kube-scheduler's `framework.Resource` and `resource.PodRequests`: a pod requests
//! the sum of its containers, or more if an init container (plus the sidecars started before
//! it) asks for more, plus the pod overhead.

use std::collections::{BTreeMap, btree_map::Entry};

use k8s_openapi::{
    api::core::v1::{Container, PodSpec},
    apimachinery::pkg::api::resource::Quantity,
};

/// kube-scheduler's default CPU request for a container that sets none, used only for scoring.
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// kube-scheduler's default memory request (200 MiB) for a container that sets none, for scoring.
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// An amount of each resource kind the scheduler tracks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
    /// Pod slots; only meaningful for a node's allocatable.
    pub pods: i64,
    /// Extended resources (`example.com/gpu`, `hugepages-2Mi`, ...), in whole units.
    pub scalar: BTreeMap<String, i64>,
}

impl Resources {
    /// Reads a `ResourceList` (requests, allocatable). Unparsable quantities count as zero:
    /// the API server validates them, so one here means a bug elsewhere, not a reason to stop.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut resources = Self::default();
        resources.add_list(list);
        resources
    }

    fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, quantity) in list {
            let Some(nanos) = parse_quantity_nanos(&quantity.0) else {
                tracing::debug!(resource = %name, quantity = %quantity.0, "ignoring unparsable quantity");
                continue;
            };
            match name.as_str() {
                "cpu" => self.milli_cpu += milli_value(nanos),
                "memory" => self.memory += value(nanos),
                "ephemeral-storage" => self.ephemeral_storage += value(nanos),
                "pods" => self.pods += value(nanos),
                other if is_scalar_resource(other) => {
                    *self.scalar.entry(other.to_owned()).or_default() += value(nanos);
                }
                _ => {}
            }
        }
    }

    /// Adds `other` to `self`, kind by kind.
    pub fn add(&mut self, other: &Resources) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.pods += other.pods;
        for (name, amount) in &other.scalar {
            *self.scalar.entry(name.clone()).or_default() += amount;
        }
    }

    /// Subtracts `other` from `self`, kind by kind; scalar entries that reach zero go away.
    pub fn subtract(&mut self, other: &Resources) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.pods -= other.pods;
        for (name, amount) in &other.scalar {
            if let Entry::Occupied(mut entry) = self.scalar.entry(name.clone()) {
                *entry.get_mut() -= amount;
                if *entry.get() == 0 {
                    entry.remove();
                }
            }
        }
    }

    /// Raises each kind of `self` to at least `other`'s amount.
    fn set_max(&mut self, other: &Resources) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        self.pods = self.pods.max(other.pods);
        for (name, amount) in &other.scalar {
            let entry = self.scalar.entry(name.clone()).or_default();
            *entry = (*entry).max(*amount);
        }
    }

    /// True when nothing at all is requested, so only the pod count matters.
    pub fn is_zero(&self) -> bool {
        self.milli_cpu == 0
            && self.memory == 0
            && self.ephemeral_storage == 0
            && self.scalar.values().all(|amount| *amount == 0)
    }
}

/// Names kube-scheduler counts as scalar resources: hugepages, and names with a domain
/// prefix outside `kubernetes.io` (extended resources such as `example.com/gpu`).
fn is_scalar_resource(name: &str) -> bool {
    if name.starts_with("hugepages-") || name.starts_with("attachable-volumes-") {
        return true;
    }
    match name.split_once('/') {
        Some((domain, _)) => {
            !(domain == "kubernetes.io"
                || domain.ends_with(".kubernetes.io")
                || name.starts_with("requests."))
        }
        None => false,
    }
}

/// What a pod asks for: the exact requests (for fit) and the requests with kube-scheduler's
/// non-zero defaults (for scoring, so best-effort pods still spread).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub requests: Resources,
    pub non_zero_milli_cpu: i64,
    pub non_zero_memory: i64,
}

impl PodRequests {
    /// Computes a pod's requests as kube-scheduler's `computePodResourceRequest` does.
    pub fn of(spec: &PodSpec) -> Self {
        let mut requests = Resources::default();
        let mut non_zero = Resources::default();
        for container in &spec.containers {
            let container_requests = container_requests(container);
            non_zero.add(&with_non_zero_defaults(container, &container_requests));
            requests.add(&container_requests);
        }

        // Sidecars (init containers with restartPolicy Always) keep running, so they add to
        // the total; each plain init container runs alongside the sidecars started before it.
        let mut sidecars = Resources::default();
        let mut sidecars_non_zero = Resources::default();
        let mut init_peak = Resources::default();
        let mut init_peak_non_zero = Resources::default();
        for container in spec.init_containers.iter().flatten() {
            let container_requests = container_requests(container);
            let container_non_zero = with_non_zero_defaults(container, &container_requests);
            let is_sidecar = container.restart_policy.as_deref() == Some("Always");
            if is_sidecar {
                requests.add(&container_requests);
                non_zero.add(&container_non_zero);
                sidecars.add(&container_requests);
                sidecars_non_zero.add(&container_non_zero);
                init_peak.set_max(&sidecars);
                init_peak_non_zero.set_max(&sidecars_non_zero);
            } else {
                let mut running = container_requests;
                running.add(&sidecars);
                init_peak.set_max(&running);
                let mut running_non_zero = container_non_zero;
                running_non_zero.add(&sidecars_non_zero);
                init_peak_non_zero.set_max(&running_non_zero);
            }
        }
        requests.set_max(&init_peak);
        non_zero.set_max(&init_peak_non_zero);

        if let Some(overhead) = &spec.overhead {
            let overhead = Resources::from_list(overhead);
            requests.add(&overhead);
            non_zero.add(&overhead);
        }
        Self {
            requests,
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
        }
    }
}

fn container_requests(container: &Container) -> Resources {
    container
        .resources
        .as_ref()
        .and_then(|resources| resources.requests.as_ref())
        .map(Resources::from_list)
        .unwrap_or_default()
}

/// A container with no CPU or memory request still counts for spreading purposes.
fn with_non_zero_defaults(container: &Container, requests: &Resources) -> Resources {
    let requested = container
        .resources
        .as_ref()
        .and_then(|resources| resources.requests.as_ref());
    let has = |name: &str| requested.is_some_and(|list| list.contains_key(name));
    Resources {
        milli_cpu: if has("cpu") {
            requests.milli_cpu
        } else {
            DEFAULT_MILLI_CPU_REQUEST
        },
        memory: if has("memory") {
            requests.memory
        } else {
            DEFAULT_MEMORY_REQUEST
        },
        ..Resources::default()
    }
}

const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// Parses a `resource.Quantity` string (`"500m"`, `"1.5Gi"`, `"1e3"`) into billionths of a
/// unit, with the API server's own parser; `None` when it is not a quantity.
pub fn parse_quantity_nanos(text: &str) -> Option<i128> {
    tugboat_api::validation::quantity_nanos(text.trim())
}

/// Millicores, rounded up as `Quantity.MilliValue()` does.
fn milli_value(nanos: i128) -> i64 {
    saturate(ceil_div(nanos, 1_000_000))
}

/// Whole units, rounded up as `Quantity.Value()` does.
fn value(nanos: i128) -> i64 {
    saturate(ceil_div(nanos, NANOS_PER_UNIT))
}

fn ceil_div(numerator: i128, denominator: i128) -> i128 {
    let quotient = numerator / denominator;
    if numerator % denominator > 0 {
        quotient + 1
    } else {
        quotient
    }
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ResourceRequirements;

    use super::*;

    fn list(pairs: &[(&str, &str)]) -> BTreeMap<String, Quantity> {
        pairs
            .iter()
            .map(|(name, amount)| ((*name).to_owned(), Quantity((*amount).to_owned())))
            .collect()
    }

    fn container(pairs: &[(&str, &str)]) -> Container {
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: (!pairs.is_empty()).then(|| list(pairs)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn quantities_parse_like_kubernetes() {
        let cases = [
            ("1", 1000, 1),
            ("500m", 500, 1),
            ("0.5", 500, 1),
            ("1.5Gi", 1_610_612_736_000, 1_610_612_736),
            ("2k", 2_000_000, 2000),
            ("1e3", 1_000_000, 1000),
            ("100Mi", 104_857_600_000, 104_857_600),
            ("1n", 1, 1),
        ];
        for (text, milli, whole) in cases {
            let nanos = parse_quantity_nanos(text).unwrap();
            assert_eq!(milli_value(nanos), milli, "{text} millis");
            assert_eq!(value(nanos), whole, "{text} value");
        }
        for bad in ["", "abc", "1.2.3", "5Qi", "--1"] {
            assert_eq!(parse_quantity_nanos(bad), None, "{bad}");
        }
    }

    #[test]
    fn resource_list_reads_every_kind() {
        let resources = Resources::from_list(&list(&[
            ("cpu", "4"),
            ("memory", "8Gi"),
            ("pods", "110"),
            ("ephemeral-storage", "10Gi"),
            ("example.com/gpu", "2"),
            ("hugepages-2Mi", "4Mi"),
            ("kubernetes.io/ignored", "1"),
        ]));
        assert_eq!(resources.milli_cpu, 4000);
        assert_eq!(resources.memory, 8 << 30);
        assert_eq!(resources.pods, 110);
        assert_eq!(resources.ephemeral_storage, 10 << 30);
        assert_eq!(resources.scalar.get("example.com/gpu"), Some(&2));
        assert_eq!(resources.scalar.get("hugepages-2Mi"), Some(&(4 << 20)));
        assert_eq!(resources.scalar.len(), 2);
    }

    #[test]
    fn pod_requests_sum_containers_and_take_init_peak() {
        // From kube-scheduler's fit tests: init containers raise the request only if larger.
        let spec = PodSpec {
            containers: vec![
                container(&[("cpu", "1"), ("memory", "1Gi")]),
                container(&[("cpu", "1")]),
            ],
            init_containers: Some(vec![container(&[("cpu", "3"), ("memory", "512Mi")])]),
            ..Default::default()
        };
        let requests = PodRequests::of(&spec);
        assert_eq!(requests.requests.milli_cpu, 3000);
        assert_eq!(requests.requests.memory, 1 << 30);
        // The second container sets no memory: the scoring default applies to it.
        assert_eq!(requests.non_zero_memory, (1 << 30) + DEFAULT_MEMORY_REQUEST);
        assert_eq!(requests.non_zero_milli_cpu, 3000);
    }

    #[test]
    fn sidecars_add_to_the_total_and_to_later_init_containers() {
        let mut sidecar = container(&[("cpu", "1")]);
        sidecar.restart_policy = Some("Always".into());
        let spec = PodSpec {
            containers: vec![container(&[("cpu", "1")])],
            init_containers: Some(vec![sidecar, container(&[("cpu", "2500m")])]),
            overhead: Some(list(&[("cpu", "100m")])),
            ..Default::default()
        };
        // Regular + sidecar = 2; init 2.5 + sidecar 1 = 3.5 wins; plus 0.1 overhead.
        assert_eq!(PodRequests::of(&spec).requests.milli_cpu, 3600);
    }

    #[test]
    fn best_effort_pods_get_scoring_defaults_only() {
        let spec = PodSpec {
            containers: vec![container(&[])],
            ..Default::default()
        };
        let requests = PodRequests::of(&spec);
        assert!(requests.requests.is_zero());
        assert_eq!(requests.non_zero_milli_cpu, DEFAULT_MILLI_CPU_REQUEST);
        assert_eq!(requests.non_zero_memory, DEFAULT_MEMORY_REQUEST);
    }
}
