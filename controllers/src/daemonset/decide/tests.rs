use serde_json::json;

use super::*;

fn now() -> Timestamp {
    "2026-01-01T00:10:00Z".parse().expect("time")
}

fn ds(spec: serde_json::Value) -> DaemonSet {
    let mut full = json!({
        "metadata": {"name": "agent", "namespace": "default", "uid": "d1", "generation": 2},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {"metadata": {"labels": {"app": "agent"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }
    });
    if let (Some(into), serde_json::Value::Object(from)) = (full["spec"].as_object_mut(), spec) {
        into.extend(from);
    }
    serde_json::from_value(full).expect("daemonset")
}

fn node(name: &str, labels: serde_json::Value, taints: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "spec": {"taints": taints}
    }))
    .expect("node")
}

fn pod(name: &str, node: &str, hash: &str, ready: bool) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"app": "agent", REVISION_HASH_LABEL: hash},
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"nodeName": node, "containers": []},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                   "lastTransitionTime": "2026-01-01T00:01:00Z"}]}
    }))
    .expect("pod")
}

#[test]
fn one_pod_per_eligible_node() {
    let nodes = [
        node("a", json!({"role": "edge"}), json!([])),
        node("b", json!({"role": "core"}), json!([])),
        node(
            "c",
            json!({"role": "edge"}),
            json!([{"key": "gpu", "effect": "NoSchedule"}]),
        ),
        node(
            "d",
            json!({"role": "edge"}),
            json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}]),
        ),
    ];
    let nodes: Vec<&Node> = nodes.iter().collect();
    let d = decide(
        &ds(
            json!({"template": {"metadata": {"labels": {"app": "agent"}},
            "spec": {"nodeSelector": {"role": "edge"}, "containers": []}}}),
        ),
        "h1",
        &nodes,
        &[],
        now(),
    );
    // b does not match, c's taint is not tolerated, a cordoned d still gets its daemon.
    assert_eq!(d.create_on, vec!["a".to_owned(), "d".to_owned()]);
    assert_eq!(d.status.desired_number_scheduled, 2);
    assert_eq!(d.status.number_unavailable, Some(2));
}

#[test]
fn pods_leave_nodes_that_stop_matching_and_duplicates_go() {
    let nodes = [
        node("a", json!({}), json!([])),
        node(
            "b",
            json!({}),
            json!([
                {"key": "evict", "effect": "NoExecute"}
            ]),
        ),
    ];
    let nodes: Vec<&Node> = nodes.iter().collect();
    let pods = [
        pod("a-1", "a", "h1", true),
        pod("a-2", "a", "h1", true),
        pod("b-1", "b", "h1", true),
        pod("gone-1", "gone", "h1", true),
    ];
    let pods: Vec<&Pod> = pods.iter().collect();
    let d = decide(&ds(json!({})), "h1", &nodes, &pods, now());
    assert_eq!(
        d.delete,
        vec!["a-2".to_owned(), "b-1".to_owned(), "gone-1".to_owned()]
    );
    assert!(d.create_on.is_empty());
    assert_eq!(d.status.desired_number_scheduled, 1);
    assert_eq!(d.status.number_misscheduled, 2);
    assert_eq!(d.status.number_ready, 1);
    assert_eq!(d.status.updated_number_scheduled, Some(1));
}

#[test]
fn rolling_update_replaces_max_unavailable_nodes_at_a_time() {
    let nodes = [
        node("a", json!({}), json!([])),
        node("b", json!({}), json!([])),
        node("c", json!({}), json!([])),
    ];
    let nodes: Vec<&Node> = nodes.iter().collect();
    let pods = [
        pod("a-old", "a", "h1", true),
        pod("b-old", "b", "h1", true),
        pod("c-old", "c", "h1", true),
    ];
    let pods: Vec<&Pod> = pods.iter().collect();
    let d = decide(&ds(json!({})), "h2", &nodes, &pods, now());
    assert_eq!(
        d.delete,
        vec!["a-old".to_owned()],
        "one at a time by default"
    );
    assert!(
        d.create_on.is_empty(),
        "the new pod follows the old one's deletion"
    );

    // a is being replaced (its new pod not ready yet): nothing else moves.
    let pods = [
        pod("a-new", "a", "h2", false),
        pod("b-old", "b", "h1", true),
        pod("c-old", "c", "h1", true),
    ];
    let pods: Vec<&Pod> = pods.iter().collect();
    let d = decide(&ds(json!({})), "h2", &nodes, &pods, now());
    assert!(d.delete.is_empty(), "{:?}", d.delete);
    assert_eq!(d.status.updated_number_scheduled, Some(1));

    let d = decide(
        &ds(
            json!({"updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 2}}}),
        ),
        "h2",
        &nodes,
        &pods,
        now(),
    );
    assert_eq!(
        d.delete,
        vec!["b-old".to_owned()],
        "two may be down: a and b"
    );

    let d = decide(
        &ds(json!({"updateStrategy": {"type": "OnDelete"}})),
        "h2",
        &nodes,
        &pods,
        now(),
    );
    assert!(d.delete.is_empty(), "OnDelete waits for the user");
}

#[test]
fn surge_starts_the_new_pod_before_the_old_one_goes() {
    let nodes = [
        node("a", json!({}), json!([])),
        node("b", json!({}), json!([])),
    ];
    let nodes: Vec<&Node> = nodes.iter().collect();
    let strategy = json!({"updateStrategy": {"type": "RollingUpdate",
        "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}});
    let pods = [pod("a-old", "a", "h1", true), pod("b-old", "b", "h1", true)];
    let pods: Vec<&Pod> = pods.iter().collect();
    let d = decide(&ds(strategy.clone()), "h2", &nodes, &pods, now());
    assert_eq!(d.create_on, vec!["a".to_owned()]);
    assert!(d.delete.is_empty());

    let pods = [
        pod("a-old", "a", "h1", true),
        pod("a-new", "a", "h2", true),
        pod("b-old", "b", "h1", true),
    ];
    let pods: Vec<&Pod> = pods.iter().collect();
    let d = decide(&ds(strategy), "h2", &nodes, &pods, now());
    assert_eq!(d.delete, vec!["a-old".to_owned()]);
    assert!(d.create_on.is_empty(), "the surge slot is still taken on a");
}
