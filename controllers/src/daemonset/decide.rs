//! What one DaemonSet needs now, from the DaemonSet, the nodes and its pods (upstream's
//! `pkg/controller/daemon`: `podsShouldBeOnNode`, `rollingUpdate`, `updateDaemonSetStatus`).
//! Pure: the time is a parameter.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod, PodSpec, Toleration};
use k8s_openapi::jiff::Timestamp;
use tugboat_api::scheduling::{node_selection_matches, untolerated_taints};

use crate::deployment::util::scaled_value;
use crate::replicaset::pods::is_available;

pub use crate::framework::history::REVISION_HASH_LABEL;

/// What the DaemonSet's sync should do.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Nodes to create a daemon pod on.
    pub create_on: Vec<String>,
    /// Pods to delete.
    pub delete: Vec<String>,
    /// The status to publish.
    pub status: DaemonSetStatus,
}

/// The tolerations upstream adds to every daemon pod, so that node conditions and cordons do
/// not take daemons away (`util.AddOrUpdateDaemonPodTolerations`).
pub fn daemon_tolerations(spec: &PodSpec) -> Vec<Toleration> {
    let mut tolerations = spec.tolerations.clone().unwrap_or_default();
    let mut add = |key: &str, effect: &str| {
        let exists = tolerations
            .iter()
            .any(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect));
        if !exists {
            tolerations.push(Toleration {
                key: Some(key.to_owned()),
                operator: Some("Exists".into()),
                effect: Some(effect.to_owned()),
                ..Default::default()
            });
        }
    };
    add("node.kubernetes.io/not-ready", "NoExecute");
    add("node.kubernetes.io/unreachable", "NoExecute");
    add("node.kubernetes.io/disk-pressure", "NoSchedule");
    add("node.kubernetes.io/memory-pressure", "NoSchedule");
    add("node.kubernetes.io/pid-pressure", "NoSchedule");
    add("node.kubernetes.io/unschedulable", "NoSchedule");
    if spec.host_network == Some(true) {
        add("node.kubernetes.io/network-unavailable", "NoSchedule");
    }
    tolerations
}

/// Whether a daemon pod should be started on `node`, and whether one there may stay (only
/// NoExecute taints evict a running daemon).
pub fn should_run(spec: &PodSpec, node: &Node) -> (bool, bool) {
    if !node_selection_matches(spec, node) {
        return (false, false);
    }
    let tolerations = daemon_tolerations(spec);
    let start = untolerated_taints(node, &tolerations, &["NoSchedule", "NoExecute"]).is_empty();
    let stay = untolerated_taints(node, &tolerations, &["NoExecute"]).is_empty();
    (start, stay)
}

/// The node a daemon pod is for: where it runs, or the node its affinity pins it to.
pub fn target_node(pod: &Pod) -> Option<&str> {
    let spec = pod.spec.as_ref()?;
    if let Some(node) = spec.node_name.as_deref().filter(|n| !n.is_empty()) {
        return Some(node);
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|term| term.match_fields.iter().flatten())
        .find(|field| field.key == "metadata.name" && field.operator == "In")
        .and_then(|field| field.values.as_ref()?.first())
        .map(String::as_str)
}

fn hash_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref()?.phase.as_deref()
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Decides what `ds` needs for template `hash`, given all nodes and the pods it owns.
pub fn decide(
    ds: &DaemonSet,
    hash: &str,
    nodes: &[&Node],
    pods: &[&Pod],
    now: Timestamp,
) -> Decision {
    let spec = ds.spec.clone().unwrap_or_default();
    let template = spec.template.spec.clone().unwrap_or_default();
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let mut on_node: BTreeMap<&str, Vec<&Pod>> = BTreeMap::new();
    let mut delete: Vec<String> = Vec::new();
    for pod in pods {
        match target_node(pod) {
            Some(node) => on_node.entry(node).or_default().push(pod),
            // A daemon pod for no node: nothing will ever run it.
            None => delete.extend(pod.metadata.name.clone()),
        }
    }

    let mut create_on = Vec::new();
    let (mut desired, mut current, mut misscheduled, mut ready, mut available, mut updated) =
        (0, 0, 0, 0, 0, 0);
    // Per desired node: (old pod, new pod) as they stand after this sync's clean-up.
    let mut rolling: Vec<(&str, Option<&Pod>, Option<&Pod>)> = Vec::new();
    for node in nodes {
        let name = node.metadata.name.as_deref().unwrap_or_default();
        let (start, stay) = should_run(&template, node);
        let here = on_node.remove(name).unwrap_or_default();
        let live: Vec<&Pod> = here
            .iter()
            .copied()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .collect();
        if start {
            desired += 1;
        }
        if !stay {
            if !live.is_empty() {
                misscheduled += 1;
            }
            delete.extend(live.iter().filter_map(|p| p.metadata.name.clone()));
            continue;
        }
        if !start && live.is_empty() {
            continue;
        }
        if !live.is_empty() {
            current += 1;
        }
        // Failed pods go (a fresh one follows); beyond one old and one new, the newest go.
        let (failed, running): (Vec<&Pod>, Vec<&Pod>) =
            live.into_iter().partition(|p| phase(p) == Some("Failed"));
        delete.extend(failed.iter().filter_map(|p| p.metadata.name.clone()));
        let mut by_age = running;
        by_age.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
        let new = by_age.iter().copied().find(|p| hash_of(p) == Some(hash));
        let old = by_age.iter().copied().find(|p| hash_of(p) != Some(hash));
        for pod in &by_age {
            let keep = new.is_some_and(|n| std::ptr::eq(n, *pod))
                || old.is_some_and(|o| std::ptr::eq(o, *pod));
            if !keep {
                delete.extend(pod.metadata.name.clone());
            }
        }
        if start && here.is_empty() {
            create_on.push(name.to_owned());
            rolling.push((name, None, None));
            continue;
        }
        if new.is_some() {
            updated += 1;
        }
        let serving = new.or(old);
        if serving.is_some_and(is_ready) {
            ready += 1;
        }
        if serving.is_some_and(|p| is_available(p, min_ready, now)) {
            available += 1;
        }
        rolling.push((name, old, new));
    }
    // Pods on nodes that no longer exist.
    for pods in on_node.values() {
        misscheduled += 1;
        delete.extend(
            pods.iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .filter_map(|p| p.metadata.name.clone()),
        );
    }

    let strategy = spec.update_strategy.clone().unwrap_or_default();
    if strategy.type_.as_deref() != Some("OnDelete") {
        let rolling_update = strategy.rolling_update.unwrap_or_default();
        let surge = rolling_update
            .max_surge
            .as_ref()
            .and_then(|v| scaled_value(v, desired, true).ok())
            .unwrap_or(0)
            .max(0);
        let unavailable_budget = rolling_update
            .max_unavailable
            .as_ref()
            .and_then(|v| scaled_value(v, desired, true).ok())
            .unwrap_or(if surge > 0 { 0 } else { 1 })
            .max(if surge > 0 { 0 } else { 1 });
        roll(
            &rolling,
            surge,
            unavailable_budget,
            min_ready,
            now,
            &mut create_on,
            &mut delete,
        );
    }

    delete.sort();
    delete.dedup();
    let status = DaemonSetStatus {
        current_number_scheduled: current,
        desired_number_scheduled: desired,
        number_misscheduled: misscheduled,
        number_ready: ready,
        number_available: Some(available),
        number_unavailable: Some(desired - available).filter(|n| *n > 0),
        updated_number_scheduled: Some(updated),
        observed_generation: ds.metadata.generation,
        collision_count: ds.status.as_ref().and_then(|s| s.collision_count),
        conditions: ds.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    Decision {
        create_on,
        delete,
        status,
    }
}

/// Replaces old pods node by node: with no surge, deletes old pods (unavailable ones first,
/// free) while at most `max_unavailable` nodes lack an available pod; with surge, starts the
/// new pod beside the old one on up to `max_surge` nodes and deletes the old one once the new
/// one is available.
fn roll(
    nodes: &[(&str, Option<&Pod>, Option<&Pod>)],
    max_surge: i32,
    max_unavailable: i32,
    min_ready: i32,
    now: Timestamp,
    create_on: &mut Vec<String>,
    delete: &mut Vec<String>,
) {
    let up = |pod: Option<&Pod>| pod.is_some_and(|p| is_available(p, min_ready, now));
    let mut unavailable = nodes
        .iter()
        .filter(|(_, old, new)| !up(new.or(*old)))
        .count();
    let mut surging = nodes
        .iter()
        .filter(|(_, old, new)| old.is_some() && new.is_some())
        .count();
    let budget = usize::try_from(max_unavailable).unwrap_or(0);
    let surge = usize::try_from(max_surge).unwrap_or(0);
    let name = |pod: &Pod| pod.metadata.name.clone().unwrap_or_default();
    // Old pods that do not serve anyway go first, whatever the budget.
    for (_, old, new) in nodes {
        if let (Some(old), None) = (old, new)
            && !up(Some(old))
        {
            delete.push(name(old));
        }
    }
    for (node, old, new) in nodes {
        let Some(old) = old else { continue };
        match new {
            // Both run: the old one goes once the new one serves.
            Some(new) => {
                if up(Some(new)) {
                    delete.push(name(old));
                }
            }
            None if !up(Some(old)) => {}
            None if surge > 0 => {
                if surging < surge {
                    surging += 1;
                    create_on.push((*node).to_owned());
                }
            }
            None => {
                if unavailable < budget {
                    unavailable += 1;
                    delete.push(name(old));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
