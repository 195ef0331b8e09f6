//! Spreads the pods of one controller (ReplicaSet, StatefulSet, Job...) across nodes: fewer
//! siblings on a node scores higher. This stands in for PodTopologySpread's system default
//! constraint on `kubernetes.io/hostname`; zones and explicit constraints are not handled.

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{NodeScorer, ScorePlugin, default_normalize},
};

#[derive(Debug)]
pub struct ControllerSpread;

struct Scorer<'a> {
    namespace: &'a str,
    controller_uid: &'a str,
}

impl ScorePlugin for ControllerSpread {
    fn name(&self) -> &'static str {
        "PodTopologySpread"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeScorer + 'a>> {
        Some(Box::new(Scorer {
            namespace: &pod.namespace,
            controller_uid: pod.controller_uid.as_deref()?,
        }))
    }
}

impl NodeScorer for Scorer<'_> {
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

#[cfg(test)]
mod tests {
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
}
