//! NodeUnschedulable: cordoned nodes take only pods that tolerate the
//! `node.kubernetes.io/unschedulable:NoSchedule` taint.

use k8s_openapi::api::core::v1::Taint;

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{FilterPlugin, NodeFilter, Rejection},
    plugins::taint_toleration::tolerates_taint,
};

/// kube-scheduler's `ErrReasonUnschedulable`.
pub const REASON: &str = "node(s) were unschedulable";

#[derive(Debug)]
pub struct NodeUnschedulable;

/// The per-node check for a pod that does not tolerate the cordon taint.
struct Check;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        "NodeUnschedulable"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>> {
        let cordon = Taint {
            key: "node.kubernetes.io/unschedulable".into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        let tolerates_cordon = pod
            .tolerations()
            .iter()
            .any(|toleration| tolerates_taint(toleration, &cordon));
        (!tolerates_cordon).then(|| Box::new(Check) as Box<dyn NodeFilter>)
    }
}

impl NodeFilter for Check {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        if node.is_unschedulable() {
            return Err(Rejection::unresolvable(REASON));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::plugins::test_support::{cache_with, filter};

    #[test]
    fn cordoned_nodes_reject_unless_tolerated() {
        let cache = cache_with(
            vec![node("open").obj(), node("cordoned").unschedulable().obj()],
            vec![],
        );
        assert_eq!(
            filter(&NodeUnschedulable, pod("p").obj(), &cache, "open"),
            Ok(())
        );
        assert_eq!(
            filter(&NodeUnschedulable, pod("p").obj(), &cache, "cordoned"),
            Err(Rejection::unresolvable("node(s) were unschedulable"))
        );
        let tolerant = pod("p")
            .toleration(
                "node.kubernetes.io/unschedulable",
                "Exists",
                "",
                "NoSchedule",
            )
            .obj();
        assert_eq!(
            filter(&NodeUnschedulable, tolerant, &cache, "cordoned"),
            Ok(())
        );
    }
}
