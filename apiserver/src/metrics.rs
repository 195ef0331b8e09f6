//! Prometheus metrics: requests by verb, resource and code with latency histograms, open
//! watches, and store latency, in the text exposition format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

/// Latency bucket bounds in seconds (kube-apiserver's coarse set).
const BUCKETS: &[f64] = &[
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        for (i, bound) in BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += seconds;
        self.count += 1;
    }
}

/// The server's metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<(String, String), Histogram>>,
    store: Mutex<BTreeMap<String, Histogram>>,
    watchers: AtomicI64,
}

impl Metrics {
    /// Count one request.
    pub fn request(&self, verb: &str, resource: &str, code: u16, elapsed: Duration) {
        *self
            .requests
            .lock()
            .entry((verb.to_owned(), resource.to_owned(), code))
            .or_default() += 1;
        self.latency
            .lock()
            .entry((verb.to_owned(), resource.to_owned()))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Record one store operation's latency.
    pub fn store_op(&self, operation: &str, elapsed: Duration) {
        self.store
            .lock()
            .entry(operation.to_owned())
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// A watch opened (+1) or closed (-1).
    pub fn watchers(&self, delta: i64) {
        self.watchers.fetch_add(delta, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP apiserver_request_total Requests by verb, resource and HTTP code.\n");
        out.push_str("# TYPE apiserver_request_total counter\n");
        for ((verb, resource, code), count) in self.requests.lock().iter() {
            let _ = writeln!(
                out,
                "apiserver_request_total{{verb=\"{verb}\",resource=\"{resource}\",code=\"{code}\"}} {count}"
            );
        }
        out.push_str(
            "# HELP apiserver_request_duration_seconds Request latency by verb and resource.\n",
        );
        out.push_str("# TYPE apiserver_request_duration_seconds histogram\n");
        for ((verb, resource), h) in self.latency.lock().iter() {
            let labels = format!("verb=\"{verb}\",resource=\"{resource}\"");
            write_histogram(&mut out, "apiserver_request_duration_seconds", &labels, h);
        }
        out.push_str("# HELP apiserver_storage_duration_seconds Store operation latency.\n");
        out.push_str("# TYPE apiserver_storage_duration_seconds histogram\n");
        for (operation, h) in self.store.lock().iter() {
            let labels = format!("operation=\"{operation}\"");
            write_histogram(&mut out, "apiserver_storage_duration_seconds", &labels, h);
        }
        out.push_str("# HELP apiserver_registered_watchers Open watches.\n");
        out.push_str("# TYPE apiserver_registered_watchers gauge\n");
        let _ = writeln!(
            out,
            "apiserver_registered_watchers {}",
            self.watchers.load(Ordering::Relaxed)
        );
        out
    }
}

fn write_histogram(out: &mut String, name: &str, labels: &str, h: &Histogram) {
    for (i, bound) in BUCKETS.iter().enumerate() {
        let count = h.counts.get(i).copied().unwrap_or(0);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{bound}\"}} {count}");
    }
    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.count);
    let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum);
    let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_and_buckets() {
        let metrics = Metrics::default();
        metrics.request("get", "pods", 200, Duration::from_millis(3));
        metrics.request("get", "pods", 200, Duration::from_millis(300));
        let text = metrics.render();
        assert!(
            text.contains("apiserver_request_total{verb=\"get\",resource=\"pods\",code=\"200\"} 2")
        );
        assert!(text.contains("apiserver_request_duration_seconds_bucket{verb=\"get\",resource=\"pods\",le=\"0.005\"} 1"));
        assert!(text.contains(
            "apiserver_request_duration_seconds_count{verb=\"get\",resource=\"pods\"} 2"
        ));
    }
}
