//! DaemonSets as a user drives them with the real kubectl on three simulated nodes: one pod
//! per eligible node, nodes that gain or lose the selected label, a rolling update, and
//! `rollout history` / `rollout undo` through ControllerRevisions.

use std::collections::BTreeSet;
use std::time::Duration;

use tugboat_e2e::wait::wait_for_value;
use tugboat_e2e::{Cluster, Kubectl, kubectl_or_skip};

const AGENT: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels: {app: agent}
  template:
    metadata:
      labels: {app: agent}
    spec:
      nodeSelector: {tugboat.dev/agent: "yes"}
      terminationGracePeriodSeconds: 0
      containers:
      - name: work
        image: busybox:1.36
"#;

/// The nodes the DaemonSet's live pods run on.
fn daemon_nodes(k: &Kubectl) -> Option<BTreeSet<String>> {
    let out = k
        .ok(&[
            "get",
            "pods",
            "-l",
            "app=agent",
            "-o",
            "jsonpath={range .items[?(@.status.phase==\"Running\")]}{.spec.nodeName}{\"\\n\"}{end}",
        ])
        .ok()?;
    Some(
        out.lines()
            .map(str::to_owned)
            .filter(|l| !l.is_empty())
            .collect(),
    )
}

fn images(k: &Kubectl) -> BTreeSet<String> {
    k.get_jsonpath(
        &["pods", "-l", "app=agent"],
        "{.items[*].spec.containers[0].image}",
    )
    .split_whitespace()
    .map(str::to_owned)
    .collect()
}

#[test]
fn daemonsets_follow_nodes_roll_out_and_roll_back_with_kubectl() {
    if kubectl_or_skip().is_none() {
        return;
    }
    let cluster = Cluster::start_with_args(&["--nodes", "3"]).unwrap();
    let admin = cluster.kubectl().unwrap();
    let nodes: Vec<String> = admin
        .ok(&["get", "nodes", "-o", "name"])
        .unwrap()
        .lines()
        .map(|n| n.trim_start_matches("node/").to_owned())
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    for node in &nodes[..2] {
        admin
            .ok(&["label", "node", node, "tugboat.dev/agent=yes"])
            .unwrap();
    }
    admin.ok(&["create", "namespace", "daemons"]).unwrap();
    let k = admin.namespace("daemons");
    k.apply(AGENT).unwrap();
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .unwrap();
    let first_two: BTreeSet<String> = nodes[..2].iter().cloned().collect();
    assert_eq!(daemon_nodes(&k), Some(first_two.clone()));

    // The third node gains the label: it gets its daemon; the first loses it: its daemon goes.
    admin
        .ok(&["label", "node", &nodes[2], "tugboat.dev/agent=yes"])
        .unwrap();
    admin
        .ok(&["label", "node", &nodes[0], "tugboat.dev/agent-"])
        .unwrap();
    let last_two: BTreeSet<String> = nodes[1..].iter().cloned().collect();
    wait_for_value(
        "daemons on the labelled nodes only",
        Duration::from_secs(60),
        || (daemon_nodes(&k)? == last_two).then_some(()),
    );
    // The status follows the pods a moment later.
    wait_for_value(
        "DESIRED CURRENT READY UP-TO-DATE AVAILABLE all 2",
        Duration::from_secs(30),
        || {
            let table = k.ok(&["get", "daemonset", "agent", "--no-headers"]).ok()?;
            let row: Vec<&str> = table.split_whitespace().collect();
            (row.get(..6)? == ["agent", "2", "2", "2", "2", "2"]).then_some(())
        },
    );

    // Roll forward, then back.
    k.ok(&["set", "image", "daemonset/agent", "work=busybox:1.37"])
        .unwrap();
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .unwrap();
    wait_for_value(
        "every daemon on the new image",
        Duration::from_secs(30),
        || (images(&k) == BTreeSet::from(["busybox:1.37".to_owned()])).then_some(()),
    );
    let history = k.ok(&["rollout", "history", "daemonset/agent"]).unwrap();
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["1", "2"], "{history}");
    k.ok(&["rollout", "undo", "daemonset/agent"]).unwrap();
    k.ok(&["rollout", "status", "daemonset/agent", "--timeout=60s"])
        .unwrap();
    wait_for_value(
        "every daemon back on the old image",
        Duration::from_secs(30),
        || (images(&k) == BTreeSet::from(["busybox:1.36".to_owned()])).then_some(()),
    );
    assert_eq!(
        k.get_jsonpath(
            &["daemonset", "agent"],
            "{.spec.template.spec.containers[0].image}"
        )
        .trim(),
        "busybox:1.36"
    );
    // Revision 1's template is the newest again: renumbered 3, as upstream does.
    let history = k.ok(&["rollout", "history", "daemonset/agent"]).unwrap();
    let revisions: Vec<&str> = history
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<u32>().is_ok())
        .collect();
    assert_eq!(revisions, ["2", "3"], "{history}");
}
