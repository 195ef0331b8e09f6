//! NodeAffinity: `nodeSelector` and required node affinity must match (filter); matching
//! preferred terms add their weights (score).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorTerm, PreferredSchedulingTerm};

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{FilterPlugin, NodeFilter, NodeScorer, Rejection, ScorePlugin, default_normalize},
};

/// kube-scheduler's `ErrReasonPod` for NodeAffinity.
pub const REASON: &str = "node(s) didn't match Pod's node affinity/selector";

pub use tugboat_api::scheduling::requirement_matches;

/// True when a node selector term holds for the node (see
/// [`tugboat_api::scheduling::term_matches`]).
pub fn term_matches(term: &NodeSelectorTerm, node: &NodeInfo) -> bool {
    tugboat_api::scheduling::term_matches(term, &node.name, &node.labels)
}

#[derive(Debug)]
pub struct NodeAffinity;

struct FilterCheck<'a> {
    node_selector: Option<&'a BTreeMap<String, String>>,
    required_terms: Option<&'a [NodeSelectorTerm]>,
}

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>> {
        let spec = pod.spec()?;
        let node_selector = spec
            .node_selector
            .as_ref()
            .filter(|selector| !selector.is_empty());
        let required_terms = spec
            .affinity
            .as_ref()
            .and_then(|affinity| affinity.node_affinity.as_ref())
            .and_then(|affinity| {
                affinity
                    .required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|selector| selector.node_selector_terms.as_slice());
        if node_selector.is_none() && required_terms.is_none() {
            return None;
        }
        Some(Box::new(FilterCheck {
            node_selector,
            required_terms,
        }))
    }
}

impl NodeFilter for FilterCheck<'_> {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        let selector_matches = self.node_selector.is_none_or(|selector| {
            selector
                .iter()
                .all(|(key, value)| node.labels.get(key) == Some(value))
        });
        // Terms are ORed; an empty term list matches nothing.
        let affinity_matches = self
            .required_terms
            .is_none_or(|terms| terms.iter().any(|term| term_matches(term, node)));
        if selector_matches && affinity_matches {
            Ok(())
        } else {
            Err(Rejection::unresolvable(REASON))
        }
    }
}

struct Scorer<'a> {
    preferred: &'a [PreferredSchedulingTerm],
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        "NodeAffinity"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeScorer + 'a>> {
        let preferred = pod
            .spec()?
            .affinity
            .as_ref()?
            .node_affinity
            .as_ref()?
            .preferred_during_scheduling_ignored_during_execution
            .as_deref()
            .filter(|terms| !terms.is_empty())?;
        Some(Box::new(Scorer { preferred }))
    }
}

impl NodeScorer for Scorer<'_> {
    fn score(&self, node: &NodeInfo) -> i64 {
        self.preferred
            .iter()
            .filter(|term| term.weight != 0 && term_matches(&term.preference, node))
            .map(|term| i64::from(term.weight))
            .sum()
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, false);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::NodeSelectorRequirement;
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::plugins::test_support::{cache_with, filter, scores};

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    fn requirement(key: &str, operator: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: Some(values.iter().map(|v| (*v).into()).collect()),
        }
    }

    #[test]
    fn every_operator_matches_as_upstream() {
        let node_labels = labels(&[("zone", "a"), ("gpus", "4")]);
        let cases = [
            (requirement("zone", "In", &["a", "b"]), true),
            (requirement("zone", "In", &["b"]), false),
            (requirement("missing", "In", &["a"]), false),
            (requirement("zone", "NotIn", &["b"]), true),
            (requirement("zone", "NotIn", &["a"]), false),
            (requirement("missing", "NotIn", &["a"]), true),
            (requirement("zone", "Exists", &[]), true),
            (requirement("missing", "Exists", &[]), false),
            (requirement("missing", "DoesNotExist", &[]), true),
            (requirement("zone", "DoesNotExist", &[]), false),
            (requirement("gpus", "Gt", &["3"]), true),
            (requirement("gpus", "Gt", &["4"]), false),
            (requirement("gpus", "Lt", &["5"]), true),
            (requirement("gpus", "Lt", &["x"]), false),
            (requirement("zone", "Gt", &["1"]), false),
            (requirement("missing", "Lt", &["1"]), false),
            (requirement("zone", "Bogus", &["a"]), false),
        ];
        for (requirement, expected) in cases {
            assert_eq!(
                requirement_matches(&requirement, &node_labels),
                expected,
                "{requirement:?}"
            );
        }
    }

    #[test]
    fn node_selector_and_required_terms_must_both_hold() {
        let cache = cache_with(
            vec![
                node("ssd-a").label("disk", "ssd").label("zone", "a").obj(),
                node("ssd-b").label("disk", "ssd").label("zone", "b").obj(),
                node("hdd").label("disk", "hdd").obj(),
            ],
            vec![],
        );
        let rejected = Err(Rejection::unresolvable(REASON));
        let selector = || pod("p").node_selector("disk", "ssd");
        assert_eq!(
            filter(&NodeAffinity, selector().obj(), &cache, "ssd-a"),
            Ok(())
        );
        assert_eq!(
            filter(&NodeAffinity, selector().obj(), &cache, "hdd"),
            rejected
        );
        let both = || selector().node_affinity_required("zone", "In", &["b"]);
        assert_eq!(
            filter(&NodeAffinity, both().obj(), &cache, "ssd-a"),
            rejected
        );
        assert_eq!(filter(&NodeAffinity, both().obj(), &cache, "ssd-b"), Ok(()));
        // Two terms are ORed.
        let either = pod("p")
            .node_affinity_required("zone", "In", &["a"])
            .node_affinity_required("disk", "In", &["hdd"]);
        assert_eq!(
            filter(&NodeAffinity, either.clone().obj(), &cache, "hdd"),
            Ok(())
        );
        assert_eq!(
            filter(&NodeAffinity, either.obj(), &cache, "ssd-b"),
            rejected
        );
    }

    #[test]
    fn match_fields_select_by_node_name_and_empty_terms_match_nothing() {
        let cache = cache_with(vec![node("n1").obj()], vec![]);
        let info = cache.node("n1").unwrap();
        let by_name = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![requirement("metadata.name", "In", &["n1"])]),
        };
        assert!(term_matches(&by_name, info));
        let other_field = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![requirement("metadata.uid", "In", &["n1"])]),
        };
        assert!(!term_matches(&other_field, info));
        assert!(!term_matches(&NodeSelectorTerm::default(), info));
    }

    #[test]
    fn preferred_terms_score_by_weight() {
        let cache = cache_with(
            vec![
                node("a").label("zone", "a").label("disk", "ssd").obj(),
                node("b").label("zone", "b").label("disk", "ssd").obj(),
                node("c").obj(),
            ],
            vec![],
        );
        let preferring = pod("p")
            .node_affinity_preferred(80, "zone", "In", &["a"])
            .node_affinity_preferred(20, "disk", "In", &["ssd"])
            .obj();
        assert_eq!(
            scores(&NodeAffinity, preferring, &cache, &["a", "b", "c"]),
            vec![100, 20, 0]
        );
    }
}
