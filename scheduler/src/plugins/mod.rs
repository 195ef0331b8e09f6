//! The default plugins, named and worded as kube-scheduler's, and the default profile.

pub mod inter_pod_affinity;
pub mod node_affinity;
pub mod node_name;
pub mod node_ports;
pub mod node_resources;
pub mod node_unschedulable;
pub mod pod_topology_spread;
pub mod spread;
pub mod taint_toleration;
pub mod volume_binding;

use crate::framework::Framework;

/// kube-scheduler's default profile, in its filter order and with its score weights, for
/// the plugins Tugboat has. Filters: NodeUnschedulable, NodeName, TaintToleration,
/// NodeAffinity, NodePorts, NodeResourcesFit, VolumeBinding, PodTopologySpread (DoNotSchedule),
/// InterPodAffinity. Scores: TaintToleration (3), NodeAffinity (2), PodTopologySpread (2:
/// ScheduleAnyway constraints, else a controller's pods spread over nodes),
/// NodeResourcesFit least-allocated (1), NodeResourcesBalancedAllocation (1).
pub fn default_framework(percentage_of_nodes_to_score: usize) -> Framework {
    Framework::new(
        vec![
            Box::new(node_unschedulable::NodeUnschedulable),
            Box::new(node_name::NodeName),
            Box::new(taint_toleration::TaintToleration),
            Box::new(node_affinity::NodeAffinity),
            Box::new(node_ports::NodePorts),
            Box::new(node_resources::NodeResourcesFit),
            Box::new(volume_binding::VolumeBinding),
            Box::new(pod_topology_spread::PodTopologySpread),
            Box::new(inter_pod_affinity::InterPodAffinity),
        ],
        vec![
            (Box::new(taint_toleration::TaintToleration), 3),
            (Box::new(node_affinity::NodeAffinity), 2),
            (Box::new(spread::ControllerSpread), 2),
            (Box::new(node_resources::LeastAllocated), 1),
            (Box::new(node_resources::BalancedAllocation), 1),
        ],
        percentage_of_nodes_to_score,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use tugboat_testkit::objects::{node, pod};

    use super::{default_framework, test_support::cache_with};
    use crate::{cache::PodInfo, framework::ScheduleError};

    #[test]
    fn sampling_still_finds_the_only_feasible_node() {
        // 1,000 nodes means only 420 feasible ones are wanted, but a single fitting node
        // anywhere must still be found.
        let mut nodes: Vec<_> = (0..999)
            .map(|i| node(&format!("small-{i}")).cpu("1").obj())
            .collect();
        nodes.push(node("big").cpu("64").obj());
        let cache = cache_with(nodes, vec![]);
        let framework = default_framework(0);
        let wanted = PodInfo::new(Arc::new(pod("p").cpu("32").obj()));
        for _ in 0..3 {
            let result = framework.schedule(&wanted, &cache).unwrap();
            assert_eq!(result.node_name, "big");
            assert_eq!(result.evaluated_nodes, 1000);
        }
        let small = PodInfo::new(Arc::new(pod("q").cpu("100m").obj()));
        let result = framework.schedule(&small, &cache).unwrap();
        assert_eq!(result.feasible_nodes, 420);
    }

    #[test]
    fn the_default_profile_prefers_emptier_untainted_spread_nodes() {
        let cache = cache_with(
            vec![
                node("busy").obj(),
                node("soft-tainted")
                    .taint("a", "", "PreferNoSchedule")
                    .obj(),
                node("empty").obj(),
            ],
            vec![pod("load").cpu("8").memory("32Gi").node_name("busy").obj()],
        );
        let framework = default_framework(0);
        let candidate = PodInfo::new(Arc::new(pod("p").cpu("1").obj()));
        assert_eq!(
            framework.schedule(&candidate, &cache).unwrap().node_name,
            "empty"
        );
    }

    #[test]
    fn an_empty_cluster_has_no_nodes_available() {
        let cache = cache_with(vec![], vec![]);
        let candidate = PodInfo::new(Arc::new(pod("p").obj()));
        let error = default_framework(0)
            .schedule(&candidate, &cache)
            .unwrap_err();
        assert_eq!(error, ScheduleError::NoNodesAvailable);
        assert_eq!(error.to_string(), "no nodes available to schedule pods");
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use k8s_openapi::api::core::v1::{Node, Pod};

    use crate::{
        cache::{Cache, NodeInfo, PodInfo},
        framework::{FilterPlugin, Rejection, ScorePlugin},
    };

    /// A cache holding `nodes` and the bound `pods`.
    pub fn cache_with(nodes: Vec<Node>, pods: Vec<Pod>) -> Cache {
        let mut cache = Cache::new();
        for node in nodes {
            cache.set_node(node);
        }
        for pod in pods {
            cache.set_bound_pod(Arc::new(PodInfo::new(Arc::new(pod))));
        }
        cache
    }

    /// Runs one filter plugin for `pod` against the node named `node`.
    pub fn filter(
        plugin: &dyn FilterPlugin,
        pod: Pod,
        cache: &Cache,
        node: &str,
    ) -> Result<(), Rejection> {
        let pod = PodInfo::new(Arc::new(pod));
        let node = cache.node(node).expect("node in cache");
        match plugin.prepare(&pod, cache) {
            Some(filter) => filter.filter(node),
            None => Ok(()),
        }
    }

    /// Runs one score plugin for `pod` over every node of `cache`, in `names` order,
    /// normalized.
    pub fn scores(plugin: &dyn ScorePlugin, pod: Pod, cache: &Cache, names: &[&str]) -> Vec<i64> {
        let pod = PodInfo::new(Arc::new(pod));
        let nodes: Vec<&NodeInfo> = names
            .iter()
            .map(|name| cache.node(name).expect("node in cache"))
            .collect();
        let Some(scorer) = plugin.prepare(&pod, cache) else {
            return vec![0; nodes.len()];
        };
        let mut scores: Vec<i64> = nodes.iter().map(|node| scorer.score(node)).collect();
        scorer.normalize(&mut scores);
        scores
    }
}
