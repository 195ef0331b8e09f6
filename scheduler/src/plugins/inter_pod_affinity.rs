//! InterPodAffinity (filter): required pod affinity and anti-affinity by topology key, and
//! the anti-affinity of pods already placed against the incoming one.
//!
//! The per-pod setup walks the placed pods once and records, per term, which topology
//! domains (`key=value` of a node label) hold a matching pod; each node is then a lookup.

use std::collections::{HashMap, HashSet};

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{FilterPlugin, NodeFilter, Rejection},
};

/// kube-scheduler's `ErrReasonAffinityRulesNotMatch`.
pub const AFFINITY_REASON: &str = "node(s) didn't match pod affinity rules";
/// kube-scheduler's `ErrReasonAntiAffinityRulesNotMatch`.
pub const ANTI_AFFINITY_REASON: &str = "node(s) didn't match pod anti-affinity rules";
/// kube-scheduler's `ErrReasonExistingAntiAffinityRulesNotMatch`.
pub const EXISTING_ANTI_AFFINITY_REASON: &str =
    "node(s) didn't satisfy existing pods anti-affinity rules";

#[derive(Debug)]
pub struct InterPodAffinity;

/// A topology domain: a node label key and value.
type Domain<'a> = (&'a str, &'a str);

struct Check<'a> {
    pod: &'a PodInfo,
    /// Per required affinity term, the domains holding a matching pod.
    affinity_domains: Vec<HashSet<Domain<'a>>>,
    /// No pod anywhere matches any affinity term, and the pod matches its own terms: the
    /// first pod of a group may go anywhere that has the topology keys.
    affinity_bootstraps: bool,
    /// Per required anti-affinity term, the domains holding a matching pod.
    anti_affinity_domains: Vec<HashSet<Domain<'a>>>,
    /// Domain values, by topology key, where a placed pod's anti-affinity forbids the
    /// incoming pod; keyed so a node costs one lookup per key, not a scan of all domains.
    existing_anti_affinity_domains: HashMap<&'a str, HashSet<&'a str>>,
}

impl FilterPlugin for InterPodAffinity {
    fn name(&self) -> &'static str {
        "InterPodAffinity"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>> {
        let nodes_with_anti_affinity_pods = cache
            .nodes()
            .iter()
            .filter(|node| node.pods_with_required_anti_affinity > 0);
        let mut existing_anti_affinity_domains: HashMap<&str, HashSet<&str>> = HashMap::new();
        for node in nodes_with_anti_affinity_pods {
            for placed in node
                .pods
                .iter()
                .filter(|placed| !placed.required_anti_affinity.is_empty())
            {
                for term in &placed.required_anti_affinity {
                    if let Some(value) = node.labels.get(&term.topology_key)
                        && term.matches(pod)
                    {
                        existing_anti_affinity_domains
                            .entry(term.topology_key.as_str())
                            .or_default()
                            .insert(value.as_str());
                    }
                }
            }
        }
        if pod.required_affinity.is_empty()
            && pod.required_anti_affinity.is_empty()
            && existing_anti_affinity_domains.is_empty()
        {
            return None;
        }

        let mut affinity_domains = vec![HashSet::new(); pod.required_affinity.len()];
        let mut anti_affinity_domains = vec![HashSet::new(); pod.required_anti_affinity.len()];
        let mut any_affinity_match = false;
        if !pod.required_affinity.is_empty() || !pod.required_anti_affinity.is_empty() {
            for node in cache.nodes() {
                for placed in &node.pods {
                    for (term, domains) in pod.required_affinity.iter().zip(&mut affinity_domains) {
                        if term.matches(placed) {
                            any_affinity_match = true;
                            if let Some(value) = node.labels.get(&term.topology_key) {
                                domains.insert((term.topology_key.as_str(), value.as_str()));
                            }
                        }
                    }
                    for (term, domains) in pod
                        .required_anti_affinity
                        .iter()
                        .zip(&mut anti_affinity_domains)
                    {
                        // The selector rejects most pods; check it before the label lookup.
                        if term.matches(placed)
                            && let Some(value) = node.labels.get(&term.topology_key)
                        {
                            domains.insert((term.topology_key.as_str(), value.as_str()));
                        }
                    }
                }
            }
        }
        let affinity_bootstraps = !pod.required_affinity.is_empty()
            && !any_affinity_match
            && pod.required_affinity.iter().all(|term| term.matches(pod));
        Some(Box::new(Check {
            pod,
            affinity_domains,
            affinity_bootstraps,
            anti_affinity_domains,
            existing_anti_affinity_domains,
        }))
    }
}

impl NodeFilter for Check<'_> {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        let domain_of = |key: &str| node.labels.get(key).map(String::as_str);

        let affinity_holds = self
            .pod
            .required_affinity
            .iter()
            .zip(&self.affinity_domains)
            .all(|(term, domains)| {
                domain_of(&term.topology_key).is_some_and(|value| {
                    self.affinity_bootstraps
                        || domains.contains(&(term.topology_key.as_str(), value))
                })
            });
        if !affinity_holds {
            return Err(Rejection::unresolvable(AFFINITY_REASON));
        }

        let anti_affinity_violated = self
            .pod
            .required_anti_affinity
            .iter()
            .zip(&self.anti_affinity_domains)
            .any(|(term, domains)| {
                domain_of(&term.topology_key)
                    .is_some_and(|value| domains.contains(&(term.topology_key.as_str(), value)))
            });
        if anti_affinity_violated {
            return Err(Rejection::unschedulable(ANTI_AFFINITY_REASON));
        }

        let existing_violated = self
            .existing_anti_affinity_domains
            .iter()
            .any(|(key, values)| domain_of(key).is_some_and(|value| values.contains(value)));
        if existing_violated {
            return Err(Rejection::unschedulable(EXISTING_ANTI_AFFINITY_REASON));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::plugins::test_support::{cache_with, filter};

    const HOSTNAME: &str = "kubernetes.io/hostname";
    const ZONE: &str = "topology.kubernetes.io/zone";

    fn zoned_nodes() -> Vec<k8s_openapi::api::core::v1::Node> {
        vec![
            node("a1").label(ZONE, "a").obj(),
            node("a2").label(ZONE, "a").obj(),
            node("b1").label(ZONE, "b").obj(),
            node("nozone").obj(),
        ]
    }

    #[test]
    fn anti_affinity_keeps_matching_pods_apart_by_topology() {
        let cache = cache_with(
            zoned_nodes(),
            vec![pod("db-1").label("app", "db").node_name("a1").obj()],
        );
        let by_host = || {
            pod("db-2")
                .label("app", "db")
                .anti_affinity("app", "db", HOSTNAME)
                .obj()
        };
        let rejected = Err(Rejection::unschedulable(ANTI_AFFINITY_REASON));
        assert_eq!(filter(&InterPodAffinity, by_host(), &cache, "a1"), rejected);
        assert_eq!(filter(&InterPodAffinity, by_host(), &cache, "a2"), Ok(()));
        let by_zone = || pod("db-2").anti_affinity("app", "db", ZONE).obj();
        assert_eq!(filter(&InterPodAffinity, by_zone(), &cache, "a2"), rejected);
        assert_eq!(filter(&InterPodAffinity, by_zone(), &cache, "b1"), Ok(()));
        // A node without the topology label is its own (empty) domain.
        assert_eq!(
            filter(&InterPodAffinity, by_zone(), &cache, "nozone"),
            Ok(())
        );
        // Terms only look at the pod's own namespace by default.
        let elsewhere = pod("db-2")
            .namespace("other")
            .anti_affinity("app", "db", HOSTNAME)
            .obj();
        assert_eq!(filter(&InterPodAffinity, elsewhere, &cache, "a1"), Ok(()));
    }

    #[test]
    fn placed_pods_anti_affinity_repels_the_incoming_pod() {
        let cache = cache_with(
            zoned_nodes(),
            vec![
                pod("loner")
                    .anti_affinity("app", "web", ZONE)
                    .node_name("a1")
                    .obj(),
            ],
        );
        let web = || pod("web").label("app", "web").obj();
        assert_eq!(
            filter(&InterPodAffinity, web(), &cache, "a2"),
            Err(Rejection::unschedulable(EXISTING_ANTI_AFFINITY_REASON))
        );
        assert_eq!(filter(&InterPodAffinity, web(), &cache, "b1"), Ok(()));
        assert_eq!(
            filter(
                &InterPodAffinity,
                pod("db").label("app", "db").obj(),
                &cache,
                "a2"
            ),
            Ok(())
        );
    }

    #[test]
    fn affinity_needs_a_matching_pod_in_the_domain() {
        let cache = cache_with(
            zoned_nodes(),
            vec![pod("cache").label("app", "cache").node_name("a1").obj()],
        );
        let near_cache = || pod("web").affinity("app", "cache", ZONE).obj();
        let rejected = Err(Rejection::unresolvable(AFFINITY_REASON));
        assert_eq!(
            filter(&InterPodAffinity, near_cache(), &cache, "a2"),
            Ok(())
        );
        assert_eq!(
            filter(&InterPodAffinity, near_cache(), &cache, "b1"),
            rejected
        );
        assert_eq!(
            filter(&InterPodAffinity, near_cache(), &cache, "nozone"),
            rejected
        );
    }

    #[test]
    fn the_first_pod_of_a_self_affine_group_goes_anywhere_with_the_key() {
        let cache = cache_with(zoned_nodes(), vec![]);
        let first = || {
            pod("web-1")
                .label("app", "web")
                .affinity("app", "web", ZONE)
                .obj()
        };
        assert_eq!(filter(&InterPodAffinity, first(), &cache, "b1"), Ok(()));
        assert_eq!(
            filter(&InterPodAffinity, first(), &cache, "nozone"),
            Err(Rejection::unresolvable(AFFINITY_REASON))
        );
        // Not self-matching: no pod to be near, so nowhere fits.
        let stranger = pod("web-1").affinity("app", "web", ZONE).obj();
        assert_eq!(
            filter(&InterPodAffinity, stranger, &cache, "b1"),
            Err(Rejection::unresolvable(AFFINITY_REASON))
        );
    }
}
