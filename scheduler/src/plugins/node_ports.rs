//! NodePorts: a pod's host ports must be free on the node.

use crate::{
    cache::{Cache, NodeInfo, PodInfo},
    framework::{FilterPlugin, NodeFilter, Rejection},
};

/// kube-scheduler's `ErrReason` for NodePorts.
pub const REASON: &str = "node(s) didn't have free ports for the requested pod ports";

#[derive(Debug)]
pub struct NodePorts;

struct Check<'a> {
    pod: &'a PodInfo,
}

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        "NodePorts"
    }

    fn prepare<'a>(&self, pod: &'a PodInfo, _cache: &'a Cache) -> Option<Box<dyn NodeFilter + 'a>> {
        (!pod.host_ports.is_empty()).then(|| Box::new(Check { pod }) as Box<dyn NodeFilter>)
    }
}

impl NodeFilter for Check<'_> {
    fn filter(&self, node: &NodeInfo) -> Result<(), Rejection> {
        let conflict = self.pod.host_ports.iter().any(|wanted| {
            node.used_ports
                .iter()
                .any(|used| used.conflicts_with(wanted))
        });
        if conflict {
            Err(Rejection::unschedulable(REASON))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use tugboat_testkit::objects::{node, pod};

    use super::*;
    use crate::plugins::test_support::{cache_with, filter};

    #[test]
    fn host_ports_must_be_free() {
        let cache = cache_with(
            vec![node("n").obj()],
            vec![
                pod("web")
                    .host_port(8080, "TCP", "127.0.0.1")
                    .node_name("n")
                    .obj(),
            ],
        );
        let rejected = Err(Rejection::unschedulable(REASON));
        let cases = [
            (pod("p").obj(), Ok(())),
            (pod("p").host_port(8080, "TCP", "").obj(), rejected.clone()),
            (pod("p").host_port(8080, "TCP", "127.0.0.1").obj(), rejected),
            (pod("p").host_port(8080, "TCP", "127.0.0.2").obj(), Ok(())),
            (pod("p").host_port(8080, "UDP", "").obj(), Ok(())),
            (pod("p").host_port(9090, "TCP", "").obj(), Ok(())),
        ];
        for (candidate, expected) in cases {
            assert_eq!(filter(&NodePorts, candidate, &cache, "n"), expected);
        }
    }
}
