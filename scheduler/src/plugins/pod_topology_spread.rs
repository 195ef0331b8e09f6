//! PodTopologySpread (filter): `topologySpreadConstraints` with
//! `whenUnsatisfiable: DoNotSchedule`. Placing the pod must keep, per constraint, the
//! difference between its domain's matching pods and the least-loaded domain within
//! `maxSkew`.
//!
//! As kube-scheduler's defaults: only nodes that pass the pod's node selector and required
//! node affinity count (`nodeAffinityPolicy: Honor`), taints are ignored
//! (`nodeTaintsPolicy: Ignore`), and fewer domains than `minDomains` make the global
//! minimum 0. `matchLabelKeys` is not applied.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::TopologySpreadConstraint;
use tugboat_api::selector::Selector;

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{FilterPlugin, NodeFilter, Rejection},
    plugins::node_affinity::NodeAffinity,
};

/// kube-scheduler's `ErrReasonConstraintsNotMatch`.
pub const REASON: &str = "node(s) didn't match pod topology spread constraints";
/// kube-scheduler's `ErrReasonNodeLabelNotMatch`.
pub const MISSING_LABEL_REASON: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

#[derive(Debug)]
pub struct PodTopologySpread;

struct Constraint<'a> {
    topology_key: &'a str,
    max_skew: i64,
    /// Matching pods per domain value, over eligible nodes (domains with none count 0).
    counts: HashMap<&'a str, i64>,
    global_min: i64,
    /// 1 when the incoming pod matches its own selector, so placing it adds to the count.
    self_match: i64,
}

struct Check<'a> {
    constraints: Vec<Constraint<'a>>,
}

impl FilterPlugin for PodTopologySpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>> {
        let hard: Vec<&'a TopologySpreadConstraint> = pod
            .spec()?
            .topology_spread_constraints
            .as_deref()?
            .iter()
            .filter(|constraint| constraint.when_unsatisfiable == "DoNotSchedule")
            .collect();
        if hard.is_empty() {
            return None;
        }
        // Nodes the pod could land on by its node selector and affinity.
        let node_affinity = NodeAffinity.prepare(pod, cache);
        let eligible: Vec<&'a NodeInfo> = cache
            .nodes()
            .iter()
            .filter(|node| node.node.is_some())
            .filter(|node| {
                node_affinity
                    .as_ref()
                    .is_none_or(|filter| filter.filter(node).is_ok())
            })
            .filter(|node| {
                hard.iter()
                    .all(|constraint| node.labels.contains_key(&constraint.topology_key))
            })
            .collect();
        let constraints = hard
            .into_iter()
            .map(|constraint| {
                let selector = Selector::from_label_selector(constraint.label_selector.as_ref())
                    .unwrap_or_else(|_| Selector::nothing());
                let mut counts: HashMap<&'a str, i64> = HashMap::new();
                for node in &eligible {
                    let Some(domain) = node.labels.get(&constraint.topology_key) else {
                        continue;
                    };
                    let matching = node
                        .pods
                        .iter()
                        .filter(|placed| {
                            placed.namespace == pod.namespace
                                && placed.pod.metadata.deletion_timestamp.is_none()
                                && selector.matches(&placed.labels)
                        })
                        .count();
                    *counts.entry(domain.as_str()).or_default() +=
                        i64::try_from(matching).unwrap_or(i64::MAX);
                }
                let min_domains = constraint.min_domains.unwrap_or(1).max(1);
                let global_min = if counts.len() < usize::try_from(min_domains).unwrap_or(1) {
                    0
                } else {
                    counts.values().copied().min().unwrap_or(0)
                };
                Constraint {
                    topology_key: &constraint.topology_key,
                    max_skew: i64::from(constraint.max_skew),
                    counts,
                    global_min,
                    self_match: i64::from(selector.matches(&pod.labels)),
                }
            })
            .collect();
        Some(Box::new(Check { constraints }))
    }
}

impl NodeFilter for Check<'_> {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        for constraint in &self.constraints {
            let Some(domain) = node.labels.get(constraint.topology_key) else {
                return Err(Rejection::unresolvable(MISSING_LABEL_REASON));
            };
            let here = constraint.counts.get(domain.as_str()).copied().unwrap_or(0);
            let skew = here + constraint.self_match - constraint.global_min;
            if skew > constraint.max_skew {
                return Err(Rejection::unschedulable(REASON));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::{api::core::v1::Pod, apimachinery::pkg::apis::meta::v1::LabelSelector};
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::plugins::test_support::{cache_with, filter};

    const ZONE: &str = "topology.kubernetes.io/zone";

    fn spread(name: &str, max_skew: i32, min_domains: Option<i32>) -> Pod {
        let mut spread = pod(name).label("app", "web").obj();
        if let Some(spec) = spread.spec.as_mut() {
            spec.topology_spread_constraints = Some(vec![TopologySpreadConstraint {
                max_skew,
                min_domains,
                topology_key: ZONE.into(),
                when_unsatisfiable: "DoNotSchedule".into(),
                label_selector: Some(LabelSelector {
                    match_labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                    match_expressions: None,
                }),
                ..Default::default()
            }]);
        }
        spread
    }

    #[test]
    fn skew_against_the_least_loaded_zone_is_bounded() {
        // Zone a holds 2 matching pods, zone b 1, zone c none.
        let cache = cache_with(
            vec![
                node("a1").label(ZONE, "a").obj(),
                node("b1").label(ZONE, "b").obj(),
                node("c1").label(ZONE, "c").obj(),
                node("unlabelled").obj(),
            ],
            vec![
                pod("w1").label("app", "web").node_name("a1").obj(),
                pod("w2").label("app", "web").node_name("a1").obj(),
                pod("w3").label("app", "web").node_name("b1").obj(),
                pod("other").label("app", "db").node_name("c1").obj(),
            ],
        );
        let rejected = Err(Rejection::unschedulable(REASON));
        assert_eq!(
            filter(&PodTopologySpread, spread("p", 1, None), &cache, "a1"),
            rejected
        );
        assert_eq!(
            filter(&PodTopologySpread, spread("p", 1, None), &cache, "b1"),
            rejected
        );
        assert_eq!(
            filter(&PodTopologySpread, spread("p", 1, None), &cache, "c1"),
            Ok(())
        );
        assert_eq!(
            filter(&PodTopologySpread, spread("p", 2, None), &cache, "b1"),
            Ok(())
        );
        assert_eq!(
            filter(
                &PodTopologySpread,
                spread("p", 1, None),
                &cache,
                "unlabelled"
            ),
            Err(Rejection::unresolvable(MISSING_LABEL_REASON))
        );
    }

    #[test]
    fn fewer_domains_than_min_domains_make_the_minimum_zero() {
        let cache = cache_with(
            vec![
                node("a1").label(ZONE, "a").obj(),
                node("b1").label(ZONE, "b").obj(),
            ],
            vec![
                pod("w1").label("app", "web").node_name("a1").obj(),
                pod("w2").label("app", "web").node_name("b1").obj(),
            ],
        );
        assert_eq!(
            filter(&PodTopologySpread, spread("p", 1, None), &cache, "a1"),
            Ok(())
        );
        assert_eq!(
            filter(&PodTopologySpread, spread("p", 1, Some(3)), &cache, "a1"),
            Err(Rejection::unschedulable(REASON))
        );
    }

    #[test]
    fn schedule_anyway_constraints_do_not_filter() {
        let cache = cache_with(vec![node("a1").label(ZONE, "a").obj()], vec![]);
        let mut soft = spread("p", 1, None);
        if let Some(constraints) = soft
            .spec
            .as_mut()
            .and_then(|spec| spec.topology_spread_constraints.as_mut())
        {
            constraints[0].when_unsatisfiable = "ScheduleAnyway".into();
            constraints[0].topology_key = "missing".into();
        }
        assert_eq!(filter(&PodTopologySpread, soft, &cache, "a1"), Ok(()));
    }
}
