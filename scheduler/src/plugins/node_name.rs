//! NodeName: a pod that names a node fits only there.

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{FilterPlugin, NodeFilter, Rejection},
};

/// kube-scheduler's `ErrReason` for NodeName.
pub const REASON: &str = "node(s) didn't match the requested node name";

#[derive(Debug)]
pub struct NodeName;

struct Check<'a> {
    wanted: &'a str,
}

impl FilterPlugin for NodeName {
    fn name(&self) -> &'static str {
        "NodeName"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>> {
        let wanted = pod
            .spec()?
            .node_name
            .as_deref()
            .filter(|name| !name.is_empty())?;
        Some(Box::new(Check { wanted }))
    }
}

impl NodeFilter for Check<'_> {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        if node.name == self.wanted {
            Ok(())
        } else {
            Err(Rejection::unresolvable(REASON))
        }
    }
}

#[cfg(test)]
mod tests {
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::plugins::test_support::{cache_with, filter};

    #[test]
    fn only_the_named_node_fits() {
        let cache = cache_with(vec![node("a").obj(), node("b").obj()], vec![]);
        assert_eq!(filter(&NodeName, pod("p").obj(), &cache, "b"), Ok(()));
        assert_eq!(
            filter(&NodeName, pod("p").node_name("a").obj(), &cache, "a"),
            Ok(())
        );
        assert_eq!(
            filter(&NodeName, pod("p").node_name("a").obj(), &cache, "b"),
            Err(Rejection::unresolvable(REASON))
        );
    }
}
