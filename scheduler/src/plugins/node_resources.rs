//! NodeResourcesFit (filter: requests against allocatable minus what is placed, and the pod
//! count; score: least allocated) and NodeResourcesBalancedAllocation (score).

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{FilterPlugin, MAX_NODE_SCORE, NodeFilter, NodeScorer, Rejection, ScorePlugin},
};

#[derive(Debug)]
pub struct NodeResourcesFit;

struct FitCheck<'a> {
    pod: &'a PodInfo,
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>> {
        Some(Box::new(FitCheck { pod }))
    }
}

/// kube-scheduler's `fitsRequest`: every reason the node falls short, in its order.
pub fn insufficient_resources(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let allocatable = &node.allocatable;
    let requested = &node.requested;
    let wanted = &pod.requests.requests;
    if i64::try_from(node.pods.len()).unwrap_or(i64::MAX) + 1 > allocatable.pods {
        reasons.push("Too many pods".to_owned());
    }
    if wanted.is_zero() {
        return reasons;
    }
    if wanted.milli_cpu > 0 && wanted.milli_cpu > allocatable.milli_cpu - requested.milli_cpu {
        reasons.push("Insufficient cpu".to_owned());
    }
    if wanted.memory > 0 && wanted.memory > allocatable.memory - requested.memory {
        reasons.push("Insufficient memory".to_owned());
    }
    if wanted.ephemeral_storage > 0
        && wanted.ephemeral_storage > allocatable.ephemeral_storage - requested.ephemeral_storage
    {
        reasons.push("Insufficient ephemeral-storage".to_owned());
    }
    for (name, amount) in &wanted.scalar {
        let free = allocatable.scalar.get(name).copied().unwrap_or(0)
            - requested.scalar.get(name).copied().unwrap_or(0);
        if *amount > 0 && *amount > free {
            reasons.push(format!("Insufficient {name}"));
        }
    }
    reasons
}

impl NodeFilter for FitCheck<'_> {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        let reasons = insufficient_resources(self.pod, node);
        if reasons.is_empty() {
            Ok(())
        } else {
            Err(Rejection {
                code: crate::framework::Code::Unschedulable,
                reasons,
            })
        }
    }
}

/// CPU and memory after placing the pod, counted with the scoring defaults.
fn requested_with_pod(pod: &PodInfo, node: &NodeInfo) -> [(i64, i64); 2] {
    [
        (
            node.non_zero_milli_cpu + pod.requests.non_zero_milli_cpu,
            node.allocatable.milli_cpu,
        ),
        (
            node.non_zero_memory + pod.requests.non_zero_memory,
            node.allocatable.memory,
        ),
    ]
}

/// LeastAllocated: the more CPU and memory stays free, the higher (equal weights, as the
/// default `NodeResourcesFitArgs`).
#[derive(Debug)]
pub struct LeastAllocated;

struct LeastAllocatedScorer<'a> {
    pod: &'a PodInfo,
}

impl ScorePlugin for LeastAllocated {
    fn name(&self) -> &'static str {
        "NodeResourcesFit"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeScorer + 'a>> {
        Some(Box::new(LeastAllocatedScorer { pod }))
    }
}

impl NodeScorer for LeastAllocatedScorer<'_> {
    fn score(&self, node: &NodeInfo) -> i64 {
        let resources = requested_with_pod(self.pod, node);
        let total: i64 = resources
            .iter()
            .map(|(requested, capacity)| {
                if *capacity == 0 || requested > capacity {
                    0
                } else {
                    (capacity - requested) * MAX_NODE_SCORE / capacity
                }
            })
            .sum();
        total / 2
    }
}

/// BalancedAllocation: nodes whose CPU and memory fill evenly score higher.
#[derive(Debug)]
pub struct BalancedAllocation;

struct BalancedScorer<'a> {
    pod: &'a PodInfo,
}

impl ScorePlugin for BalancedAllocation {
    fn name(&self) -> &'static str {
        "NodeResourcesBalancedAllocation"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeScorer + 'a>> {
        Some(Box::new(BalancedScorer { pod }))
    }
}

impl NodeScorer for BalancedScorer<'_> {
    fn score(&self, node: &NodeInfo) -> i64 {
        // Upstream uses the exact requests here, not the scoring defaults.
        let wanted = &self.pod.requests.requests;
        let fractions: Vec<f64> = [
            (
                node.requested.milli_cpu + wanted.milli_cpu,
                node.allocatable.milli_cpu,
            ),
            (
                node.requested.memory + wanted.memory,
                node.allocatable.memory,
            ),
        ]
        .iter()
        .filter(|(_, capacity)| *capacity > 0)
        .map(|(requested, capacity)| (*requested as f64 / *capacity as f64).min(1.0))
        .collect();
        let deviation = match fractions.as_slice() {
            [first, second] => (first - second).abs() / 2.0,
            _ => 0.0,
        };
        ((1.0 - deviation) * MAX_NODE_SCORE as f64) as i64
    }
}

#[cfg(test)]
mod tests {
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::{
        framework::Code,
        plugins::test_support::{cache_with, filter, scores},
    };

    fn unschedulable(reasons: &[&str]) -> Result<(), Rejection> {
        Err(Rejection {
            code: Code::Unschedulable,
            reasons: reasons.iter().map(|r| (*r).to_owned()).collect(),
        })
    }

    #[test]
    fn requests_must_fit_in_what_is_left() {
        let cache = cache_with(
            vec![
                node("n")
                    .cpu("2")
                    .memory("4Gi")
                    .pods("3")
                    .resource("example.com/gpu", "1")
                    .obj(),
            ],
            vec![
                pod("placed")
                    .cpu("1500m")
                    .memory("1Gi")
                    .node_name("n")
                    .obj(),
            ],
        );
        let cases = [
            (pod("p").cpu("500m").obj(), Ok(())),
            (
                pod("p").cpu("501m").obj(),
                unschedulable(&["Insufficient cpu"]),
            ),
            (pod("p").memory("3Gi").obj(), Ok(())),
            (
                pod("p").cpu("1").memory("4Gi").obj(),
                unschedulable(&["Insufficient cpu", "Insufficient memory"]),
            ),
            (pod("p").resource("example.com/gpu", "1").obj(), Ok(())),
            (
                pod("p").resource("example.com/gpu", "2").obj(),
                unschedulable(&["Insufficient example.com/gpu"]),
            ),
            (
                pod("p").resource("example.com/fpga", "1").obj(),
                unschedulable(&["Insufficient example.com/fpga"]),
            ),
            (
                pod("p").resource("ephemeral-storage", "1Gi").obj(),
                unschedulable(&["Insufficient ephemeral-storage"]),
            ),
        ];
        for (candidate, expected) in cases {
            assert_eq!(filter(&NodeResourcesFit, candidate, &cache, "n"), expected);
        }
    }

    #[test]
    fn the_pod_count_limits_even_best_effort_pods() {
        let cache = cache_with(
            vec![node("n").pods("1").obj()],
            vec![pod("placed").node_name("n").obj()],
        );
        assert_eq!(
            filter(&NodeResourcesFit, pod("p").obj(), &cache, "n"),
            unschedulable(&["Too many pods"])
        );
        assert_eq!(
            filter(&NodeResourcesFit, pod("p").cpu("100").obj(), &cache, "n"),
            unschedulable(&["Too many pods", "Insufficient cpu"])
        );
    }

    #[test]
    fn least_allocated_prefers_emptier_nodes() {
        // kube-scheduler's least_allocated_test: "nothing scheduled, resources requested,
        // differently sized nodes": cpu 3000m/mem 5000 requested on 4000/10000 and 6000/10000.
        let cache = cache_with(
            vec![
                node("small").cpu("4").memory("10000").obj(),
                node("large").cpu("6").memory("10000").obj(),
            ],
            vec![],
        );
        let candidate = pod("p").cpu("3").memory("5000").obj();
        // small: cpu (4000-3000)*100/4000 = 25, mem 50 -> 37; large: cpu 50, mem 50 -> 50.
        assert_eq!(
            scores(&LeastAllocated, candidate, &cache, &["small", "large"]),
            vec![37, 50]
        );
    }

    #[test]
    fn balanced_allocation_prefers_even_fractions() {
        // From balanced_allocation_test: cpu 3000/4000 and mem 5000/10000 -> |0.75-0.5|/2.
        let cache = cache_with(
            vec![
                node("uneven").cpu("4").memory("10000").obj(),
                node("even").cpu("6").memory("10000").obj(),
            ],
            vec![],
        );
        let candidate = pod("p").cpu("3").memory("5000").obj();
        assert_eq!(
            scores(&BalancedAllocation, candidate, &cache, &["uneven", "even"]),
            vec![87, 100]
        );
    }
}
