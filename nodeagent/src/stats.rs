//! The stats loop: every period, the agent reads its containers' CPU and memory from the
//! runtime and pushes one PodMetrics per running pod and a NodeMetrics for the node to the
//! API server's built-in `metrics.k8s.io/v1beta1`, deleting the PodMetrics of pods that left.
//!
//! The node's usage is the sum of its pods' with the simulated runtime; with a real runtime it
//! is the host's, from `/proc/stat` (CPU rate between two ticks) and `/proc/meminfo`
//! (MemTotal − MemAvailable, as the kubelet's working set approximates it).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tugboat_runtime::{ContainerFilter, ContainerStats, Runtime};

use crate::labels;
use crate::sync::PodStore;

/// How often a simulated node pushes PodMetrics and NodeMetrics whose usage has not changed.
/// Simulated pods use what they declare (mostly constant) and the node the sum of its pods:
/// pushing the same numbers every period would cost the API server 500 requests a second for
/// 5,000 nodes, and as many again per 5,000 pods. Well within the 90 s after which the API
/// server stops serving a sample, so none goes stale. Real nodes push every period.
pub const UNCHANGED_METRICS_REFRESH: Duration = Duration::from_secs(60);

/// Each container's usage (by name) as last pushed for a pod, and when.
type PodSample = (Vec<(String, Usage)>, tokio::time::Instant);

/// What was last pushed and when, to skip pushing the same numbers again.
#[derive(Debug, Default)]
struct Pushed {
    /// Per pod (namespace, name).
    pods: BTreeMap<(String, String), PodSample>,
    node: Option<(Usage, tokio::time::Instant)>,
}

/// Where the node's own usage comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeUsage {
    /// The sum of the node's pods (simulated nodes share one host).
    SumOfPods,
    /// The host, from `/proc`.
    Host,
}

/// CPU and memory use, summed or per container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Nano-cores.
    pub cpu_nano_cores: u64,
    /// Working-set bytes.
    pub memory_bytes: u64,
}

impl Usage {
    fn add(&mut self, other: Usage) {
        self.cpu_nano_cores = self.cpu_nano_cores.saturating_add(other.cpu_nano_cores);
        self.memory_bytes = self.memory_bytes.saturating_add(other.memory_bytes);
    }

    fn to_json(self) -> Value {
        json!({
            "cpu": format!("{}n", self.cpu_nano_cores),
            "memory": format!("{}Ki", self.memory_bytes / 1024),
        })
    }
}

fn usage_of(stats: &ContainerStats) -> Usage {
    Usage {
        cpu_nano_cores: stats.cpu_usage_nano_cores.unwrap_or(0),
        memory_bytes: stats.memory_working_set_bytes.unwrap_or(0),
    }
}

/// Whether `stats` carry a CPU rate. CRI runtimes compute the rate between two of their own
/// samples, so the first sample of a container reports 0 although it has used CPU already: that
/// is "no rate yet", not "idle".
fn has_cpu_rate(stats: &ContainerStats, previously_seen: &BTreeSet<String>) -> bool {
    match stats.cpu_usage_nano_cores {
        None => false,
        Some(0) => {
            previously_seen.contains(&stats.id)
                || stats
                    .cpu_usage_core_nanoseconds
                    .is_none_or(|used| used == 0)
        }
        Some(_) => true,
    }
}

/// RFC 3339 in whole seconds (UTC).
fn rfc3339(at: SystemTime) -> String {
    let secs = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let secs = i64::try_from(secs).unwrap_or(0);
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

/// Window of a sample, as metrics-server writes it (`10s`).
fn window(period: Duration) -> String {
    format!("{}s", period.as_secs().max(1))
}

/// The PodMetrics object of `pod` from its containers' stats (labels copied from the pod).
pub fn pod_metrics(
    pod: &Pod,
    stats: &[&ContainerStats],
    at: SystemTime,
    period: Duration,
) -> Value {
    let mut containers: Vec<&&ContainerStats> = stats.iter().collect();
    containers.sort_by(|a, b| a.name.cmp(&b.name));
    let containers: Vec<Value> = containers
        .into_iter()
        .map(|c| json!({"name": c.name, "usage": usage_of(c).to_json()}))
        .collect();
    json!({
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": pod.metadata.name,
            "namespace": pod.metadata.namespace.as_deref().unwrap_or("default"),
            "labels": pod.metadata.labels.clone().unwrap_or_default(),
        },
        "timestamp": rfc3339(at),
        "window": window(period),
        "containers": containers,
    })
}

/// The NodeMetrics object of `node`.
pub fn node_metrics(node: &str, usage: Usage, at: SystemTime, period: Duration) -> Value {
    json!({
        "kind": "NodeMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {"name": node},
        "timestamp": rfc3339(at),
        "window": window(period),
        "usage": usage.to_json(),
    })
}

/// Cumulative CPU jiffies of `/proc/stat`'s first line: (busy, total).
pub fn proc_stat_cpu(stat: &str) -> Option<(u64, u64)> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    if fields.len() < 4 {
        return None;
    }
    let total: u64 = fields.iter().take(8).sum();
    // idle + iowait
    let idle = fields[3].saturating_add(fields.get(4).copied().unwrap_or(0));
    Some((total.saturating_sub(idle), total))
}

/// MemTotal − MemAvailable of `/proc/meminfo`, in bytes.
pub fn proc_meminfo_used(meminfo: &str) -> Option<u64> {
    let field = |name: &str| -> Option<u64> {
        let line = meminfo.lines().find(|l| l.starts_with(name))?;
        let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        kb.checked_mul(1024)
    };
    Some(field("MemTotal:")?.saturating_sub(field("MemAvailable:")?))
}

/// Host CPU rate between two `/proc/stat` samples.
#[derive(Debug, Default)]
struct HostCpu {
    last: Option<(u64, u64)>,
}

impl HostCpu {
    fn sample(&mut self, cpus: u32) -> Usage {
        let now = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| proc_stat_cpu(&s));
        let cpu = match (self.last, now) {
            (Some((busy0, total0)), Some((busy1, total1))) if total1 > total0 => {
                let busy = u128::from(busy1.saturating_sub(busy0));
                let total = u128::from(total1 - total0);
                let nano = busy * u128::from(cpus) * 1_000_000_000 / total;
                u64::try_from(nano).unwrap_or(u64::MAX)
            }
            _ => 0,
        };
        self.last = now.or(self.last);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| proc_meminfo_used(&s))
            .unwrap_or(0);
        Usage {
            cpu_nano_cores: cpu,
            memory_bytes,
        }
    }
}

/// Everything the stats loop needs.
pub struct StatsLoop {
    /// The API client.
    pub client: kube::Client,
    /// The runtime to read stats from.
    pub runtime: Arc<dyn Runtime>,
    /// This node.
    pub node_name: String,
    /// CPUs of the node (for the host CPU rate).
    pub cpus: u32,
    /// The agent's pods.
    pub store: PodStore,
    /// How often to push.
    pub period: Duration,
    /// Where the node's usage comes from.
    pub node_usage: NodeUsage,
}

impl StatsLoop {
    /// Pushes stats every period until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut pushed = Pushed::default();
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut host = HostCpu::default();
        // After the first push, each node's pushes fall at its own phase of the period, so the
        // many nodes of one process do not all push at the same instant.
        let mut wait = self.period.mul_f64(crate::node::phase_of(&self.node_name));
        loop {
            match Box::pin(self.tick(&mut pushed, &mut seen, &mut host)).await {
                Ok(()) => {}
                Err(error) => tracing::warn!(%error, "cannot push metrics"),
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(wait) => {}
            }
            wait = self.period;
        }
    }

    async fn tick(
        &self,
        pushed: &mut Pushed,
        seen: &mut BTreeSet<String>,
        host: &mut HostCpu,
    ) -> Result<(), crate::Error> {
        let filter = ContainerFilter {
            labels: labels::select_managed(),
            ..ContainerFilter::default()
        };
        let stats = self
            .runtime
            .container_stats(&filter)
            .await
            .map_err(crate::Error::runtime("read container stats"))?;
        let now = SystemTime::now();
        let mut by_pod: BTreeMap<(String, String), Vec<&ContainerStats>> = BTreeMap::new();
        for s in &stats {
            let (Some(ns), Some(name)) = (
                s.labels.get(labels::POD_NAMESPACE),
                s.labels.get(labels::POD_NAME),
            ) else {
                continue;
            };
            by_pod
                .entry((ns.clone(), name.clone()))
                .or_default()
                .push(s);
        }
        let previously_seen = std::mem::replace(
            seen,
            stats.iter().map(|s| s.id.clone()).collect::<BTreeSet<_>>(),
        );
        let pods: Vec<Arc<Pod>> = self.store.read().values().cloned().collect();
        let mut now_pushed = BTreeMap::new();
        let mut total = Usage::default();
        for pod in pods {
            let running = pod
                .status
                .as_ref()
                .and_then(|s| s.phase.as_deref())
                .is_some_and(|p| p == "Running");
            let key = (
                pod.metadata
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into()),
                pod.metadata.name.clone().unwrap_or_default(),
            );
            let Some(containers) = by_pod.get(&key) else {
                continue;
            };
            if !running || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            // As metrics-server: no PodMetrics until every container has a CPU rate (the HPA
            // then treats the pod as having no metrics yet, and `kubectl top` shows no 0m).
            if containers
                .iter()
                .any(|c| !has_cpu_rate(c, &previously_seen))
            {
                continue;
            }
            for c in containers {
                total.add(usage_of(c));
            }
            let usages: Vec<(String, Usage)> = containers
                .iter()
                .map(|c| (c.name.clone(), usage_of(c)))
                .collect();
            if let Some((last, at)) = pushed.pods.remove(&key)
                && self.unchanged(&last, &usages, at)
            {
                now_pushed.insert(key, (last, at));
                continue;
            }
            let body = pod_metrics(&pod, containers, now, self.period);
            let path = format!(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/{}",
                key.0, key.1
            );
            match self.put(&path, &body).await {
                Ok(()) => {
                    now_pushed.insert(key, (usages, tokio::time::Instant::now()));
                }
                Err(error) => tracing::warn!(%error, pod = %key.1, "cannot push pod metrics"),
            }
        }
        for gone in pushed.pods.keys() {
            let path = format!(
                "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods/{}",
                gone.0, gone.1
            );
            if let Err(error) = self.delete(&path).await {
                tracing::debug!(%error, pod = %gone.1, "cannot delete pod metrics");
            }
        }
        pushed.pods = now_pushed;
        let node_usage = match self.node_usage {
            NodeUsage::SumOfPods => total,
            NodeUsage::Host => host.sample(self.cpus),
        };
        if let Some((last, at)) = pushed.node
            && self.unchanged(&last, &node_usage, at)
        {
            return Ok(());
        }
        let body = node_metrics(&self.node_name, node_usage, now, self.period);
        self.put(
            &format!("/apis/metrics.k8s.io/v1beta1/nodes/{}", self.node_name),
            &body,
        )
        .await?;
        pushed.node = Some((node_usage, tokio::time::Instant::now()));
        Ok(())
    }

    /// Whether a sample equal to `last`, pushed at `at`, need not be pushed again yet.
    fn unchanged<T: PartialEq>(&self, last: &T, now: &T, at: tokio::time::Instant) -> bool {
        self.node_usage == NodeUsage::SumOfPods
            && last == now
            && at.elapsed() < UNCHANGED_METRICS_REFRESH
    }

    async fn put(&self, path: &str, body: &Value) -> Result<(), crate::Error> {
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let request = http::Request::put(path)
            .header("content-type", "application/json")
            .body(bytes)
            .map_err(|e| crate::Error::api("build metrics request")(kube::Error::HttpError(e)))?;
        self.client
            .request::<Value>(request)
            .await
            .map(|_| ())
            .map_err(crate::Error::api("push metrics"))
    }

    async fn delete(&self, path: &str) -> Result<(), crate::Error> {
        let request = http::Request::delete(path)
            .body(Vec::new())
            .map_err(|e| crate::Error::api("build metrics request")(kube::Error::HttpError(e)))?;
        match self.client.request::<Value>(request).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
            Err(error) => Err(crate::Error::api("delete pod metrics")(error)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn stats(name: &str, milli: u64, mem: u64) -> ContainerStats {
        ContainerStats {
            id: name.into(),
            name: name.into(),
            labels: Default::default(),
            timestamp: None,
            cpu_usage_core_nanoseconds: None,
            cpu_usage_nano_cores: Some(milli * 1_000_000),
            memory_working_set_bytes: Some(mem),
        }
    }

    #[test]
    fn pod_metrics_carry_labels_and_each_container() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "namespace": "ns", "labels": {"app": "web"}},
        }))
        .unwrap();
        let (a, b) = (stats("b", 250, 2048), stats("a", 100, 1024));
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400);
        let obj = pod_metrics(&pod, &[&a, &b], at, Duration::from_secs(10));
        assert_eq!(obj["metadata"]["labels"]["app"], "web");
        assert_eq!(obj["metadata"]["namespace"], "ns");
        assert_eq!(obj["timestamp"], "1970-01-02T00:00:00Z");
        assert_eq!(obj["window"], "10s");
        assert_eq!(obj["containers"][0]["name"], "a");
        assert_eq!(obj["containers"][0]["usage"]["cpu"], "100000000n");
        assert_eq!(obj["containers"][1]["usage"]["memory"], "2Ki");
    }

    #[test]
    fn node_metrics_shape() {
        let usage = Usage {
            cpu_nano_cores: 5,
            memory_bytes: 4096,
        };
        let obj = node_metrics("n1", usage, SystemTime::UNIX_EPOCH, Duration::from_secs(10));
        assert_eq!(obj["metadata"]["name"], "n1");
        assert_eq!(obj["usage"]["cpu"], "5n");
        assert_eq!(obj["usage"]["memory"], "4Ki");
    }

    #[test]
    fn proc_parsing() {
        let stat = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 1 2 3 4\n";
        assert_eq!(proc_stat_cpu(stat), Some((200, 1000)));
        assert_eq!(proc_stat_cpu("intr 1"), None);
        let meminfo = "MemTotal: 1000 kB\nMemFree: 10 kB\nMemAvailable: 400 kB\n";
        assert_eq!(proc_meminfo_used(meminfo), Some(600 * 1024));
        assert_eq!(proc_meminfo_used("MemTotal: 1 kB\n"), None);
    }

    #[test]
    fn a_first_cri_sample_of_zero_is_no_rate_yet() {
        let seen = BTreeSet::from(["old".to_string()]);
        let mut first = stats("new", 0, 0);
        first.cpu_usage_core_nanoseconds = Some(5_000_000);
        assert!(!has_cpu_rate(&first, &seen));
        let mut again = first.clone();
        again.id = "old".into();
        assert!(has_cpu_rate(&again, &seen), "idle on its second sample");
        let mut never_ran = stats("new", 0, 0);
        never_ran.cpu_usage_core_nanoseconds = Some(0);
        assert!(has_cpu_rate(&never_ran, &seen));
        assert!(has_cpu_rate(&stats("new", 250, 0), &seen));
        let mut unknown = stats("new", 0, 0);
        unknown.cpu_usage_nano_cores = None;
        assert!(!has_cpu_rate(&unknown, &seen));
    }
}
