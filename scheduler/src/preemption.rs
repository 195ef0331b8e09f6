//! DefaultPreemption as a pure function: when no node fits, find the node where evicting the
//! fewest, least important lower-priority pods makes room; otherwise explain, in
//! kube-scheduler's words, why preemption cannot help.

use std::sync::Arc;

use crate::{
    cache::{Cache, PodInfo},
    framework::{Code, FitError, Framework, reason_histogram},
};

/// Why a node was no preemption candidate (kube's `preemption.go` wording).
pub const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// The node has room only without pods the preemptor may not evict.
pub const NO_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Where to run the preemptor and whom to evict for it.
#[derive(Debug, Clone)]
pub struct PreemptionPlan {
    pub node_name: String,
    pub victims: Vec<Arc<PodInfo>>,
}

/// Looks for a node where evicting lower-priority pods lets `pod` fit. `Err` carries the
/// PostFilter message for the unschedulable condition, e.g.
/// `preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.`
pub fn find_preemption(
    framework: &Framework,
    pod: &PodInfo,
    cache: &Cache,
    fit_error: &FitError,
) -> Result<PreemptionPlan, String> {
    if pod.never_preempts() {
        return Err("preemption: not eligible due to preemptionPolicy=Never.".to_owned());
    }
    let mut reasons = Vec::with_capacity(fit_error.rejections.len());
    let mut best: Option<(PlanCost, PreemptionPlan)> = None;
    for (node_name, rejection) in &fit_error.rejections {
        if rejection.code == Code::UnschedulableAndUnresolvable {
            reasons.push(NOT_HELPFUL);
            continue;
        }
        let Some(node) = cache.node(node_name) else {
            reasons.push(NOT_HELPFUL);
            continue;
        };
        // Remove every lower-priority pod; if the pod still does not fit, nothing helps here.
        let mut trial = node.clone();
        let mut candidates: Vec<Arc<PodInfo>> = node
            .pods
            .iter()
            .filter(|placed| placed.priority < pod.priority)
            .cloned()
            .collect();
        for candidate in &candidates {
            trial.remove_pod(&candidate.key);
        }
        if candidates.is_empty() || framework.run_filters(pod, cache, &trial).is_err() {
            reasons.push(NO_VICTIMS);
            continue;
        }
        // Give back the most important pods first, as long as the pod still fits.
        candidates.sort_by_key(|candidate| std::cmp::Reverse(candidate.priority));
        let mut victims = Vec::new();
        for candidate in candidates {
            trial.add_pod(candidate.clone());
            if framework.run_filters(pod, cache, &trial).is_err() {
                trial.remove_pod(&candidate.key);
                victims.push(candidate);
            }
        }
        let cost = PlanCost::of(&victims);
        let plan = PreemptionPlan {
            node_name: node_name.clone(),
            victims,
        };
        if best.as_ref().is_none_or(|(best_cost, _)| cost < *best_cost) {
            best = Some((cost, plan));
        }
    }
    match best {
        Some((_, plan)) => Ok(plan),
        None => Err(format!(
            "preemption: 0/{} nodes are available: {}.",
            fit_error.num_all_nodes,
            reason_histogram(reasons.into_iter())
        )),
    }
}

/// kube's `pickOneNodeForPreemption` criteria after PDBs: lowest highest-victim priority,
/// then the smallest priority sum, then the fewest victims.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct PlanCost {
    highest_priority: i32,
    priority_sum: i64,
    victim_count: usize,
}

impl PlanCost {
    fn of(victims: &[Arc<PodInfo>]) -> Self {
        Self {
            highest_priority: victims
                .iter()
                .map(|victim| victim.priority)
                .max()
                .unwrap_or(i32::MIN),
            // Shifted so that negative priorities still sum to something ordered sensibly.
            priority_sum: victims
                .iter()
                .map(|victim| i64::from(victim.priority) - i64::from(i32::MIN))
                .sum(),
            victim_count: victims.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::{
        framework::ScheduleError,
        plugins::{default_framework, test_support::cache_with},
    };

    fn unfit(framework: &Framework, pod: &PodInfo, cache: &Cache) -> FitError {
        match framework.schedule(pod, cache) {
            Err(ScheduleError::Unfit(fit_error)) => fit_error,
            other => panic!("expected no fit, got {other:?}"),
        }
    }

    #[test]
    fn no_lower_priority_pods_means_no_victims() {
        let framework = default_framework(0);
        let cache = cache_with(
            vec![
                node("tainted")
                    .taint("dedicated", "gpu", "NoSchedule")
                    .obj(),
                node("full-1").cpu("1").obj(),
                node("full-2").cpu("1").obj(),
            ],
            vec![
                pod("a").cpu("1").node_name("full-1").obj(),
                pod("b").cpu("1").node_name("full-2").obj(),
            ],
        );
        let incoming = PodInfo::new(Arc::new(pod("p").cpu("1").obj()));
        let fit_error = unfit(&framework, &incoming, &cache);
        let message = find_preemption(&framework, &incoming, &cache, &fit_error).unwrap_err();
        let fit_error = FitError {
            post_filter_message: Some(message),
            ..fit_error
        };
        assert_eq!(
            fit_error.message(),
            "0/3 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn preemption_policy_never_is_not_eligible() {
        let framework = default_framework(0);
        let cache = cache_with(
            vec![node("n").cpu("1").obj()],
            vec![pod("low").cpu("1").node_name("n").obj()],
        );
        let incoming = PodInfo::new(Arc::new(
            pod("p")
                .cpu("1")
                .priority(100)
                .preemption_policy("Never")
                .obj(),
        ));
        let fit_error = unfit(&framework, &incoming, &cache);
        assert_eq!(
            find_preemption(&framework, &incoming, &cache, &fit_error).unwrap_err(),
            "preemption: not eligible due to preemptionPolicy=Never."
        );
    }

    #[test]
    fn evicts_the_fewest_least_important_pods() {
        let framework = default_framework(0);
        let cache = cache_with(
            vec![node("cheap").cpu("2").obj(), node("dear").cpu("2").obj()],
            vec![
                pod("cheap-1").cpu("1").priority(1).node_name("cheap").obj(),
                pod("cheap-2").cpu("1").priority(2).node_name("cheap").obj(),
                pod("dear-1").cpu("1").priority(50).node_name("dear").obj(),
                pod("dear-2").cpu("1").priority(50).node_name("dear").obj(),
            ],
        );
        let incoming = PodInfo::new(Arc::new(pod("p").cpu("1").priority(100).obj()));
        let fit_error = unfit(&framework, &incoming, &cache);
        let plan = find_preemption(&framework, &incoming, &cache, &fit_error).unwrap();
        assert_eq!(plan.node_name, "cheap");
        let victims: Vec<&str> = plan
            .victims
            .iter()
            .map(|victim| victim.key.as_str())
            .collect();
        assert_eq!(victims, vec!["default/cheap-1"]);
    }

    #[test]
    fn equal_priority_pods_are_never_victims() {
        let framework = default_framework(0);
        let cache = cache_with(
            vec![node("n").cpu("1").obj()],
            vec![pod("peer").cpu("1").priority(5).node_name("n").obj()],
        );
        let incoming = PodInfo::new(Arc::new(pod("p").cpu("1").priority(5).obj()));
        let fit_error = unfit(&framework, &incoming, &cache);
        assert_eq!(
            find_preemption(&framework, &incoming, &cache, &fit_error).unwrap_err(),
            "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        );
    }
}
