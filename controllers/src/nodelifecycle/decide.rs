//! The node lifecycle decisions, pure (upstream's `node_lifecycle_controller.go` and the
//! taint-based eviction manager):
//!
//! - A node whose agent has not renewed its Lease (nor posted status) for the grace period has
//!   its conditions set to `Unknown` (`NodeStatusUnknown`) and gets the `unreachable` taints; a
//!   node whose agent reports Ready=False gets the `not-ready` taints. Both go once it is Ready.
//! - Pods on a node with `NoExecute` taints are evicted (deleted) when they do not tolerate a
//!   taint, or once their `tolerationSeconds` have passed since the taint was added.
//! - No mass eviction: the `NoExecute` taints are added to one node at a time at the eviction
//!   rate, and not at all while most nodes are down in a small cluster; when every node is
//!   down, the controller takes it for its own connectivity problem, removes the `NoExecute`
//!   taints and evicts nothing, as upstream's zone states (Normal, PartialDisruption,
//!   FullDisruption) do for the one zone Tugboat has.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// Taint key of a node whose agent stopped reporting.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// Taint key of a node whose agent reports it not ready.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// Reason of the conditions set when the agent stopped reporting.
pub const STATUS_UNKNOWN: &str = "NodeStatusUnknown";

/// What the node's Ready condition says, as the controller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Ready=True and heartbeats are fresh.
    Ready,
    /// The agent reports Ready=False (or no Ready condition yet) with fresh heartbeats.
    NotReady,
    /// No heartbeat within the grace period.
    Unreachable,
}

/// The share of unhealthy nodes from which the cluster is partially disrupted (upstream
/// `--unhealthy-zone-threshold`).
pub const UNHEALTHY_THRESHOLD: f64 = 0.55;
/// Above this many nodes, a partially disrupted cluster still evicts, slowly (upstream
/// `--large-cluster-size-threshold`).
pub const LARGE_CLUSTER: usize = 50;
/// Nodes tainted for eviction per second normally (upstream `--node-eviction-rate`) and in a
/// partially disrupted large cluster (`--secondary-node-eviction-rate`).
pub const EVICTION_RATE: f64 = 0.1;
pub const SECONDARY_EVICTION_RATE: f64 = 0.01;

/// Upstream's zone state, for the whole cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disruption {
    Normal,
    /// More than two nodes and at least [`UNHEALTHY_THRESHOLD`] of them unhealthy.
    Partial,
    /// Every node unhealthy.
    Full,
}

/// Upstream's `ComputeZoneState` over every node's health.
pub fn disruption(healths: impl IntoIterator<Item = Health>) -> Disruption {
    let (mut ready, mut unhealthy) = (0usize, 0usize);
    for health in healths {
        match health {
            Health::Ready => ready += 1,
            Health::NotReady | Health::Unreachable => unhealthy += 1,
        }
    }
    if ready == 0 && unhealthy > 0 {
        Disruption::Full
    } else if unhealthy > 2 && unhealthy as f64 / (ready + unhealthy) as f64 >= UNHEALTHY_THRESHOLD
    {
        Disruption::Partial
    } else {
        Disruption::Normal
    }
}

/// The least time between tainting two nodes for eviction, `None` when no new node may be
/// tainted at all (upstream's `ReducedQPSFunc` and `HealthyQPSFunc`).
pub fn taint_interval(state: Disruption, nodes: usize) -> Option<Duration> {
    match state {
        Disruption::Normal => Some(Duration::from_secs_f64(1.0 / EVICTION_RATE)),
        Disruption::Partial if nodes > LARGE_CLUSTER => {
            Some(Duration::from_secs_f64(1.0 / SECONDARY_EVICTION_RATE))
        }
        Disruption::Partial | Disruption::Full => None,
    }
}

/// Whether the node carries a lifecycle `NoExecute` taint.
pub fn has_eviction_taint(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .is_some_and(|taints| {
            taints
                .iter()
                .any(|t| t.effect == "NoExecute" && (t.key == UNREACHABLE || t.key == NOT_READY))
        })
}

/// The node's health given how long ago its last heartbeat was observed.
pub fn health(node: &Node, since_heartbeat: Duration, grace: Duration) -> Health {
    if since_heartbeat > grace {
        return Health::Unreachable;
    }
    match ready_status(node).as_deref() {
        Some("True") => Health::Ready,
        // Unknown set by us earlier but the agent is heartbeating again: wait for its status.
        _ => Health::NotReady,
    }
}

fn ready_status(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// The node's conditions with every one set to Unknown, or `None` when they already are.
pub fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    if !conditions.iter().any(|c| c.type_ == "Ready") {
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            ..NodeCondition::default()
        });
    }
    if conditions.iter().all(|c| c.status == "Unknown") {
        return None;
    }
    for condition in &mut conditions {
        if condition.status != "Unknown" {
            condition.status = "Unknown".into();
            condition.reason = Some(STATUS_UNKNOWN.into());
            condition.message = Some("Kubelet stopped posting node status.".into());
            condition.last_transition_time = Some(Time(now));
        }
    }
    Some(conditions)
}

/// The taints the node should carry for `health`, keeping every other taint (and the time an
/// existing lifecycle taint was added); `None` when they are already right. Without
/// `no_execute` the lifecycle taints are `NoSchedule` only (an eviction held back).
pub fn desired_taints(
    node: &Node,
    health: Health,
    no_execute: bool,
    now: Timestamp,
) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let wanted_key = match health {
        Health::Ready => None,
        Health::NotReady => Some(NOT_READY),
        Health::Unreachable => Some(UNREACHABLE),
    };
    let mut taints: Vec<Taint> = current
        .iter()
        .filter(|t| {
            let lifecycle = t.key == UNREACHABLE || t.key == NOT_READY;
            !lifecycle
                || (Some(t.key.as_str()) == wanted_key && (no_execute || t.effect != "NoExecute"))
        })
        .cloned()
        .collect();
    if let Some(key) = wanted_key {
        let effects: &[&str] = if no_execute {
            &["NoSchedule", "NoExecute"]
        } else {
            &["NoSchedule"]
        };
        for &effect in effects {
            if !taints.iter().any(|t| t.key == key && t.effect == effect) {
                taints.push(Taint {
                    key: key.into(),
                    effect: effect.into(),
                    time_added: (effect == "NoExecute").then_some(Time(now)),
                    value: None,
                });
            }
        }
    }
    (taints != current).then_some(taints)
}

/// When a pod on a node with these taints must go: `Some(ZERO)` now, `Some(d)` after `d`,
/// `None` never (no NoExecute taint it does not tolerate forever).
pub fn eviction_delay(pod: &Pod, taints: &[Taint], now: Timestamp) -> Option<Duration> {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let mut soonest: Option<Duration> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        let delay = if matching.is_empty() {
            Duration::ZERO
        } else if matching.iter().any(|t| t.toleration_seconds.is_none()) {
            continue;
        } else {
            let seconds = matching
                .iter()
                .filter_map(|t| t.toleration_seconds)
                .min()
                .unwrap_or(0)
                .max(0);
            let added = taint.time_added.as_ref().map_or(now, |t| t.0);
            let elapsed = now.duration_since(added).as_secs().max(0);
            Duration::from_secs(u64::try_from(seconds - elapsed.min(seconds)).unwrap_or(0))
        };
        soonest = Some(soonest.map_or(delay, |s| s.min(delay)));
    }
    soonest
}

use tugboat_api::scheduling::tolerates_taint as tolerates;

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(ready: &str, taints: serde_json::Value) -> Node {
        serde_json::from_value(json!({
            "metadata": {"name": "n1"},
            "spec": {"taints": taints},
            "status": {"conditions": [
                {"type": "Ready", "status": ready},
                {"type": "MemoryPressure", "status": "False"}
            ]}
        }))
        .unwrap()
    }

    fn pod(tolerations: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c"}], "tolerations": tolerations}
        }))
        .unwrap()
    }

    fn ts(seconds: i64) -> Timestamp {
        Timestamp::from_second(seconds).unwrap()
    }

    #[test]
    fn health_follows_heartbeats_then_the_ready_condition() {
        let grace = Duration::from_secs(40);
        let ready = node("True", json!([]));
        assert_eq!(health(&ready, Duration::from_secs(5), grace), Health::Ready);
        assert_eq!(
            health(&ready, Duration::from_secs(41), grace),
            Health::Unreachable
        );
        let not_ready = node("False", json!([]));
        assert_eq!(
            health(&not_ready, Duration::from_secs(5), grace),
            Health::NotReady
        );
    }

    #[test]
    fn unreachable_nodes_get_unknown_conditions_once() {
        let conditions = unknown_conditions(&node("True", json!([])), ts(100)).unwrap();
        assert!(conditions.iter().all(|c| c.status == "Unknown"));
        assert_eq!(conditions[0].reason.as_deref(), Some(STATUS_UNKNOWN));
        let mut already = node("True", json!([]));
        already.status.as_mut().unwrap().conditions = Some(conditions);
        assert_eq!(unknown_conditions(&already, ts(200)), None);
    }

    #[test]
    fn lifecycle_taints_follow_health_and_keep_the_others() {
        let user = json!([{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]);
        let n = node("True", user.clone());
        assert_eq!(desired_taints(&n, Health::Ready, true, ts(1)), None);
        let tainted = desired_taints(&n, Health::Unreachable, true, ts(1)).unwrap();
        let keys: Vec<(&str, &str)> = tainted
            .iter()
            .map(|t| (t.key.as_str(), t.effect.as_str()))
            .collect();
        assert_eq!(
            keys,
            [
                ("dedicated", "NoSchedule"),
                (UNREACHABLE, "NoSchedule"),
                (UNREACHABLE, "NoExecute")
            ]
        );
        // Already tainted: nothing to do, and the time added is kept.
        let mut n2 = n.clone();
        n2.spec.as_mut().unwrap().taints = Some(tainted.clone());
        assert_eq!(desired_taints(&n2, Health::Unreachable, true, ts(99)), None);
        // Unreachable becomes not-ready, then ready: the lifecycle taints go, the user's stays.
        let not_ready = desired_taints(&n2, Health::NotReady, true, ts(5)).unwrap();
        assert!(not_ready.iter().all(|t| t.key != UNREACHABLE));
        assert!(
            not_ready
                .iter()
                .any(|t| t.key == NOT_READY && t.effect == "NoExecute")
        );
        let back = desired_taints(&n2, Health::Ready, true, ts(5)).unwrap();
        assert_eq!(serde_json::to_value(back).unwrap(), user);
    }

    #[test]
    fn eviction_waits_for_toleration_seconds() {
        let taints = vec![Taint {
            key: UNREACHABLE.into(),
            effect: "NoExecute".into(),
            time_added: Some(Time(ts(1000))),
            value: None,
        }];
        let intolerant = pod(json!([]));
        assert_eq!(
            eviction_delay(&intolerant, &taints, ts(1000)),
            Some(Duration::ZERO)
        );
        let defaulted = pod(
            json!([{"key": UNREACHABLE, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
        );
        assert_eq!(
            eviction_delay(&defaulted, &taints, ts(1100)),
            Some(Duration::from_secs(200))
        );
        assert_eq!(
            eviction_delay(&defaulted, &taints, ts(1400)),
            Some(Duration::ZERO)
        );
        let forever = pod(json!([{"operator": "Exists"}]));
        assert_eq!(eviction_delay(&forever, &taints, ts(5000)), None);
        let no_schedule_only = vec![Taint {
            effect: "NoSchedule".into(),
            ..taints[0].clone()
        }];
        assert_eq!(
            eviction_delay(&intolerant, &no_schedule_only, ts(1000)),
            None
        );
    }

    #[test]
    fn zone_states_as_upstream() {
        use Health::{NotReady, Ready, Unreachable};
        assert_eq!(disruption([]), Disruption::Normal);
        assert_eq!(disruption([Unreachable]), Disruption::Full);
        assert_eq!(disruption([Unreachable, NotReady]), Disruption::Full);
        assert_eq!(disruption([Unreachable, Ready]), Disruption::Normal);
        // Two of three is past 55 %, but upstream wants more than two unhealthy nodes.
        assert_eq!(
            disruption([Unreachable, Unreachable, Ready]),
            Disruption::Normal
        );
        assert_eq!(
            disruption([Unreachable, Unreachable, Unreachable, Ready]),
            Disruption::Partial
        );
        assert_eq!(
            disruption([Unreachable, Unreachable, Unreachable, Ready, Ready, Ready]),
            Disruption::Normal
        );
        assert_eq!(
            taint_interval(Disruption::Normal, 3),
            Some(Duration::from_secs(10))
        );
        assert_eq!(taint_interval(Disruption::Partial, 50), None);
        assert_eq!(
            taint_interval(Disruption::Partial, 51),
            Some(Duration::from_secs(100))
        );
        assert_eq!(taint_interval(Disruption::Full, 51), None);
    }

    #[test]
    fn a_held_back_eviction_taints_no_schedule_only_and_drops_no_execute() {
        let n = node("Unknown", json!([]));
        let held = desired_taints(&n, Health::Unreachable, false, ts(1)).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].effect, "NoSchedule");
        let full = desired_taints(&n, Health::Unreachable, true, ts(1)).unwrap();
        let mut tainted = n.clone();
        tainted.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
            taints: Some(full),
            ..Default::default()
        });
        assert!(has_eviction_taint(&tainted));
        let reachable_again = desired_taints(&tainted, Health::Unreachable, false, ts(2)).unwrap();
        assert_eq!(reachable_again, held);
    }
}
