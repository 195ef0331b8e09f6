//! PodTopologySpread (score). A pod with `whenUnsatisfiable: ScheduleAnyway` constraints
//! prefers nodes whose domains hold fewer matching pods. A pod without constraints but with a
//! controller (ReplicaSet, StatefulSet, Job...) prefers nodes with fewer of its siblings,
//! standing in for kube-scheduler's system default constraint on `kubernetes.io/hostname`
//! (the zone default is not applied).

use std::collections::HashMap;

use tugboat_api::selector::Selector;

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{NodeScorer, ScorePlugin, default_normalize},
};

#[derive(Debug)]
pub struct ControllerSpread;

struct SiblingScorer<'a> {
    namespace: &'a str,
    controller_uid: &'a str,
}

/// One ScheduleAnyway constraint: matching pods per domain of its topology key.
struct SoftConstraint<'a> {
    topology_key: &'a str,
    counts: HashMap<&'a str, i64>,
}

struct ConstraintScorer<'a> {
    constraints: Vec<SoftConstraint<'a>>,
}

impl ScorePlugin for ControllerSpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, cache: &'a Cache) -> Option<Box<dyn NodeScorer + 'a>> {
        let soft: Vec<_> = pod
            .spec()
            .and_then(|spec| spec.topology_spread_constraints.as_deref())
            .unwrap_or_default()
            .iter()
            .filter(|constraint| constraint.when_unsatisfiable == "ScheduleAnyway")
            .collect();
        if soft.is_empty() {
            return Some(Box::new(SiblingScorer {
                namespace: &pod.namespace,
                controller_uid: pod.controller_uid.as_deref()?,
            }));
        }
        let constraints = soft
            .into_iter()
            .map(|constraint| {
                let selector = Selector::from_label_selector(constraint.label_selector.as_ref())
                    .unwrap_or_else(|_| Selector::nothing());
                let mut counts: HashMap<&'a str, i64> = HashMap::new();
                for node in cache.nodes() {
                    let Some(domain) = node.labels.get(&constraint.topology_key) else {
                        continue;
                    };
                    let matching = node
                        .pods
                        .iter()
                        .filter(|placed| {
                            placed.namespace == pod.namespace && selector.matches(&placed.labels)
                        })
                        .count();
                    *counts.entry(domain.as_str()).or_default() +=
                        i64::try_from(matching).unwrap_or(i64::MAX);
                }
                SoftConstraint {
                    topology_key: &constraint.topology_key,
                    counts,
                }
            })
            .collect();
        Some(Box::new(ConstraintScorer { constraints }))
    }
}

impl NodeScorer for SiblingScorer<'_> {
    fn score(&self, node: &NodeInfo) -> i64 {
        let siblings = node
            .pods
            .iter()
            .filter(|pod| {
                pod.controller_uid.as_deref() == Some(self.controller_uid)
                    && pod.namespace == self.namespace
            })
            .count();
        i64::try_from(siblings).unwrap_or(i64::MAX)
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

impl NodeScorer for ConstraintScorer<'_> {
    fn score(&self, node: &NodeInfo) -> i64 {
        self.constraints
            .iter()
            .map(|constraint| {
                node.labels
                    .get(constraint.topology_key)
                    .and_then(|domain| constraint.counts.get(domain.as_str()).copied())
                    .unwrap_or(0)
            })
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::{
        api::core::v1::TopologySpreadConstraint, apimachinery::pkg::apis::meta::v1::LabelSelector,
    };
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::plugins::test_support::{cache_with, scores};

    #[test]
    fn nodes_with_fewer_siblings_score_higher() {
        let cache = cache_with(
            vec![node("a").obj(), node("b").obj(), node("c").obj()],
            vec![
                pod("web-1").owned_by("rs").node_name("a").obj(),
                pod("web-2").owned_by("rs").node_name("a").obj(),
                pod("web-3").owned_by("rs").node_name("b").obj(),
                pod("other").owned_by("other-rs").node_name("c").obj(),
            ],
        );
        let candidate = pod("web-4").owned_by("rs").obj();
        assert_eq!(
            scores(&ControllerSpread, candidate, &cache, &["a", "b", "c"]),
            vec![0, 50, 100]
        );
        // A pod without a controller has nothing to spread.
        assert_eq!(
            scores(
                &ControllerSpread,
                pod("bare").obj(),
                &cache,
                &["a", "b", "c"]
            ),
            vec![0, 0, 0]
        );
    }

    #[test]
    fn schedule_anyway_constraints_prefer_emptier_domains() {
        const ZONE: &str = "topology.kubernetes.io/zone";
        let cache = cache_with(
            vec![
                node("a1").label(ZONE, "a").obj(),
                node("a2").label(ZONE, "a").obj(),
                node("b1").label(ZONE, "b").obj(),
            ],
            vec![
                pod("w1").label("app", "web").node_name("a1").obj(),
                pod("w2").label("app", "web").node_name("b1").obj(),
                pod("w3").label("app", "web").node_name("a1").obj(),
            ],
        );
        let mut candidate = pod("w4").label("app", "web").obj();
        if let Some(spec) = candidate.spec.as_mut() {
            spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
                max_skew: 1,
                topology_key: ZONE.into(),
                when_unsatisfiable: "ScheduleAnyway".into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                    match_expressions: None,
                }),
                ..Default::default()
            }]);
        }
        // Zone a holds 2, zone b 1: b1 is best, and a2 counts as zone a.
        assert_eq!(
            scores(&ControllerSpread, candidate, &cache, &["a1", "a2", "b1"]),
            vec![0, 0, 50]
        );
    }
}
