//! TaintToleration: a node's NoSchedule and NoExecute taints must be tolerated (filter);
//! fewer untolerated PreferNoSchedule taints score higher.

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{FilterPlugin, NodeFilter, NodeScorer, Rejection, ScorePlugin, default_normalize},
};
use k8s_openapi::api::core::v1::Toleration;

pub use tugboat_api::scheduling::tolerates_taint;

#[derive(Debug)]
pub struct TaintToleration;

struct FilterCheck<'a> {
    tolerations: &'a [Toleration],
}

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>> {
        Some(Box::new(FilterCheck {
            tolerations: pod.tolerations(),
        }))
    }
}

impl NodeFilter for FilterCheck<'_> {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        let untolerated = node.taints().iter().find(|taint| {
            (taint.effect == "NoSchedule" || taint.effect == "NoExecute")
                && !self
                    .tolerations
                    .iter()
                    .any(|toleration| tolerates_taint(toleration, taint))
        });
        match untolerated {
            None => Ok(()),
            Some(taint) => Err(Rejection::unresolvable(format!(
                "node(s) had untolerated taint {{{}: {}}}",
                taint.key,
                taint.value.as_deref().unwrap_or_default()
            ))),
        }
    }
}

struct Scorer<'a> {
    /// Only tolerations that can apply to PreferNoSchedule count, as upstream.
    tolerations: Vec<&'a Toleration>,
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        "TaintToleration"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeScorer + 'a>> {
        let tolerations = pod
            .tolerations()
            .iter()
            .filter(|toleration| {
                matches!(
                    toleration.effect.as_deref(),
                    None | Some("") | Some("PreferNoSchedule")
                )
            })
            .collect();
        Some(Box::new(Scorer { tolerations }))
    }
}

impl NodeScorer for Scorer<'_> {
    fn score(&self, node: &NodeInfo) -> i64 {
        let untolerated = node
            .taints()
            .iter()
            .filter(|taint| {
                taint.effect == "PreferNoSchedule"
                    && !self
                        .tolerations
                        .iter()
                        .any(|toleration| tolerates_taint(toleration, taint))
            })
            .count();
        i64::try_from(untolerated).unwrap_or(i64::MAX)
    }

    fn normalize(&self, scores: &mut [i64]) {
        default_normalize(scores, true);
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Taint;
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::plugins::test_support::{cache_with, filter, scores};

    #[test]
    fn toleration_matching_follows_upstream_cases() {
        let taint = Taint {
            key: "foo".into(),
            value: Some("bar".into()),
            effect: "NoSchedule".into(),
            time_added: None,
        };
        let toleration = |key: &str, operator: &str, value: &str, effect: &str| Toleration {
            key: (!key.is_empty()).then(|| key.into()),
            operator: (!operator.is_empty()).then(|| operator.into()),
            value: (!value.is_empty()).then(|| value.into()),
            effect: (!effect.is_empty()).then(|| effect.into()),
            toleration_seconds: None,
        };
        let cases = [
            (toleration("foo", "Equal", "bar", "NoSchedule"), true),
            (toleration("foo", "", "bar", ""), true),
            (toleration("foo", "Exists", "", ""), true),
            (toleration("", "Exists", "", ""), true),
            (toleration("foo", "Equal", "baz", "NoSchedule"), false),
            (toleration("foo", "Equal", "bar", "NoExecute"), false),
            (toleration("other", "Exists", "", ""), false),
            (toleration("foo", "Gt", "bar", ""), false),
        ];
        for (toleration, expected) in cases {
            assert_eq!(
                tolerates_taint(&toleration, &taint),
                expected,
                "{toleration:?}"
            );
        }
    }

    #[test]
    fn untolerated_hard_taints_reject_with_the_first_taint_named() {
        let cache = cache_with(
            vec![
                node("tainted").taint("dedicated", "db", "NoSchedule").obj(),
                node("evicting")
                    .taint("node.kubernetes.io/unreachable", "", "NoExecute")
                    .obj(),
                node("soft")
                    .taint("dedicated", "db", "PreferNoSchedule")
                    .obj(),
            ],
            vec![],
        );
        assert_eq!(
            filter(&TaintToleration, pod("p").obj(), &cache, "tainted"),
            Err(Rejection::unresolvable(
                "node(s) had untolerated taint {dedicated: db}"
            ))
        );
        assert_eq!(
            filter(&TaintToleration, pod("p").obj(), &cache, "evicting"),
            Err(Rejection::unresolvable(
                "node(s) had untolerated taint {node.kubernetes.io/unreachable: }"
            ))
        );
        assert_eq!(
            filter(&TaintToleration, pod("p").obj(), &cache, "soft"),
            Ok(())
        );
        let tolerant = pod("p")
            .toleration("dedicated", "Equal", "db", "NoSchedule")
            .obj();
        assert_eq!(
            filter(&TaintToleration, tolerant, &cache, "tainted"),
            Ok(())
        );
    }

    #[test]
    fn prefer_no_schedule_taints_lower_the_score() {
        let cache = cache_with(
            vec![
                node("clean").obj(),
                node("one").taint("a", "", "PreferNoSchedule").obj(),
                node("two")
                    .taint("a", "", "PreferNoSchedule")
                    .taint("b", "", "PreferNoSchedule")
                    .obj(),
            ],
            vec![],
        );
        assert_eq!(
            scores(
                &TaintToleration,
                pod("p").obj(),
                &cache,
                &["clean", "one", "two"]
            ),
            vec![100, 50, 0]
        );
        let tolerant = pod("p")
            .toleration("a", "Exists", "", "PreferNoSchedule")
            .obj();
        assert_eq!(
            scores(&TaintToleration, tolerant, &cache, &["clean", "one", "two"]),
            vec![100, 100, 0]
        );
    }
}
