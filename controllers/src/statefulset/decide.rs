//! What one StatefulSet needs now (upstream's `pkg/controller/statefulset`
//! `stateful_set_control.go`): pods named `<set>-<ordinal>`, created in order and each only
//! once its predecessors are Running and Ready (`OrderedReady`) or all at once (`Parallel`),
//! removed from the highest ordinal down, and updated from the highest ordinal down to the
//! partition, one at a time. Pure: the time is a parameter.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;

use crate::framework::history::REVISION_HASH_LABEL;
use crate::replicaset::pods::is_available;

/// What the StatefulSet's sync should do.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Ordinals to create, each with the revision (name) whose template it gets.
    pub create: Vec<(i32, String)>,
    /// Pods to delete.
    pub delete: Vec<String>,
    /// The status to publish.
    pub status: StatefulSetStatus,
}

/// The ordinal of a pod named `<set>-<ordinal>`.
pub fn ordinal(set: &str, pod: &Pod) -> Option<i32> {
    pod.metadata
        .name
        .as_deref()?
        .strip_prefix(set)?
        .strip_prefix('-')?
        .parse()
        .ok()
        .filter(|n: &i32| *n >= 0)
}

fn revision_of(pod: &Pod) -> Option<&str> {
    pod.metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
}

fn running_and_ready(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

fn failed(pod: &Pod) -> bool {
    pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed")
}

/// Decides for `set`, whose template is revision `update_revision` and whose pods before the
/// update were `current_revision`.
pub fn decide(set: &StatefulSet, update_revision: &str, pods: &[&Pod], now: Timestamp) -> Decision {
    let name = set.metadata.name.clone().unwrap_or_default();
    let spec = set.spec.clone().unwrap_or_default();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let start = spec
        .ordinals
        .as_ref()
        .and_then(|o| o.start)
        .unwrap_or(0)
        .max(0);
    let end = start.saturating_add(replicas);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let current_revision = set
        .status
        .as_ref()
        .and_then(|s| s.current_revision.clone())
        .unwrap_or_else(|| update_revision.to_owned());
    let partition = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.rolling_update.as_ref())
        .and_then(|r| r.partition)
        .unwrap_or(0)
        .max(0);
    let on_delete = spec
        .update_strategy
        .as_ref()
        .and_then(|s| s.type_.as_deref())
        == Some("OnDelete");

    let mut by_ordinal: BTreeMap<i32, &Pod> = BTreeMap::new();
    for pod in pods {
        if let Some(n) = ordinal(&name, pod) {
            by_ordinal.insert(n, pod);
        }
    }
    let mut create = Vec::new();
    let mut delete = Vec::new();
    let name_of = |pod: &Pod| pod.metadata.name.clone().unwrap_or_default();

    // Replicas, in order.
    let mut blocked = false;
    for n in start..end {
        match by_ordinal.get(&n) {
            None => {
                if !blocked || parallel {
                    // Below the partition a re-created pod keeps the old revision.
                    let revision = if n - start < partition {
                        current_revision.clone()
                    } else {
                        update_revision.to_owned()
                    };
                    create.push((n, revision));
                }
                blocked = true;
            }
            Some(pod) if failed(pod) && !terminating(pod) => {
                delete.push(name_of(pod));
                blocked = true;
            }
            Some(pod) => {
                if !running_and_ready(pod) || terminating(pod) {
                    blocked = true;
                }
            }
        }
    }
    // Condemned: beyond the replicas, highest first; in order only once the rest is healthy.
    let condemned: Vec<&Pod> = by_ordinal
        .iter()
        .filter(|(n, _)| **n < start || **n >= end)
        .rev()
        .map(|(_, pod)| *pod)
        .collect();
    let condemned_live: Vec<&Pod> = condemned
        .iter()
        .copied()
        .filter(|p| !terminating(p))
        .collect();
    if parallel {
        delete.extend(condemned_live.iter().map(|p| name_of(p)));
    } else if !blocked && condemned.len() == condemned_live.len() {
        delete.extend(condemned_live.first().map(|p| name_of(p)));
    }
    let scaling_done = condemned.is_empty() && !blocked;

    // Rolling update: highest ordinal first, down to the partition, one pod at a time.
    if scaling_done && !on_delete {
        for n in (start + partition..end).rev() {
            let Some(pod) = by_ordinal.get(&n) else {
                break;
            };
            if revision_of(pod) != Some(update_revision) {
                delete.push(name_of(pod));
                break;
            }
            if !running_and_ready(pod) {
                break;
            }
        }
    }

    let replicas_now: Vec<&Pod> = by_ordinal
        .iter()
        .filter(|(n, _)| (start..end).contains(*n))
        .map(|(_, pod)| *pod)
        .collect();
    let count = |f: &dyn Fn(&Pod) -> bool| {
        i32::try_from(replicas_now.iter().filter(|p| f(p)).count()).unwrap_or(i32::MAX)
    };
    let updated = count(&|p| revision_of(p) == Some(update_revision));
    let ready = count(&running_and_ready);
    let rolled_out = updated == replicas && ready == replicas;
    let status = StatefulSetStatus {
        replicas: count(&|p| !terminating(p)),
        ready_replicas: Some(ready),
        available_replicas: Some(count(&|p| is_available(p, min_ready, now))),
        current_replicas: Some(count(&|p| {
            revision_of(p) == Some(current_revision.as_str())
        })),
        updated_replicas: Some(updated),
        current_revision: Some(if rolled_out {
            update_revision.to_owned()
        } else {
            current_revision.clone()
        }),
        update_revision: Some(update_revision.to_owned()),
        observed_generation: set.metadata.generation,
        collision_count: set.status.as_ref().and_then(|s| s.collision_count),
        conditions: set.status.as_ref().and_then(|s| s.conditions.clone()),
    };
    delete.sort();
    delete.dedup();
    Decision {
        create,
        delete,
        status,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2026-01-01T00:10:00Z".parse().expect("time")
    }

    fn set(spec: serde_json::Value) -> StatefulSet {
        let mut full = json!({
            "metadata": {"name": "db", "namespace": "default", "generation": 1},
            "spec": {"replicas": 3, "serviceName": "db",
                     "selector": {"matchLabels": {"app": "db"}},
                     "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": []}}},
            "status": {"replicas": 0, "currentRevision": "db-r1"}
        });
        if let (Some(into), serde_json::Value::Object(from)) = (full["spec"].as_object_mut(), spec)
        {
            into.extend(from);
        }
        serde_json::from_value(full).expect("statefulset")
    }

    fn pod(n: i32, revision: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": format!("db-{n}"), "labels": {"app": "db", REVISION_HASH_LABEL: revision},
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"},
                       "lastTransitionTime": "2026-01-01T00:01:00Z"}]}
        }))
        .expect("pod")
    }

    #[test]
    fn ordered_ready_creates_one_pod_at_a_time() {
        let d = decide(&set(json!({})), "db-r1", &[], now());
        assert_eq!(d.create, vec![(0, "db-r1".to_owned())]);
        let p0 = pod(0, "db-r1", false);
        let d = decide(&set(json!({})), "db-r1", &[&p0], now());
        assert!(d.create.is_empty(), "db-0 is not ready yet");
        let p0 = pod(0, "db-r1", true);
        let d = decide(&set(json!({})), "db-r1", &[&p0], now());
        assert_eq!(d.create, vec![(1, "db-r1".to_owned())]);
        let d = decide(
            &set(json!({"podManagementPolicy": "Parallel"})),
            "db-r1",
            &[],
            now(),
        );
        assert_eq!(d.create.len(), 3);
    }

    #[test]
    fn scale_down_removes_the_highest_ordinal_first() {
        let pods = [
            pod(0, "db-r1", true),
            pod(1, "db-r1", true),
            pod(2, "db-r1", true),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let d = decide(&set(json!({"replicas": 1})), "db-r1", &refs, now());
        assert_eq!(d.delete, vec!["db-2".to_owned()]);
        assert_eq!(d.status.replicas, 1);
    }

    #[test]
    fn rolling_update_goes_from_the_top_down_to_the_partition() {
        let pods = [
            pod(0, "db-r1", true),
            pod(1, "db-r1", true),
            pod(2, "db-r1", true),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let d = decide(&set(json!({})), "db-r2", &refs, now());
        assert_eq!(d.delete, vec!["db-2".to_owned()]);
        // db-2 replaced and ready: db-1 next; with partition 2, db-1 stays.
        let pods = [
            pod(0, "db-r1", true),
            pod(1, "db-r1", true),
            pod(2, "db-r2", true),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let d = decide(&set(json!({})), "db-r2", &refs, now());
        assert_eq!(d.delete, vec!["db-1".to_owned()]);
        let partitioned = set(json!({"updateStrategy": {"type": "RollingUpdate",
            "rollingUpdate": {"partition": 2}}}));
        let d = decide(&partitioned, "db-r2", &refs, now());
        assert!(d.delete.is_empty());
        assert_eq!(d.status.updated_replicas, Some(1));
        assert_eq!(d.status.current_revision.as_deref(), Some("db-r1"));
        // A pod below the partition that is re-created keeps the old revision.
        let d = decide(&partitioned, "db-r2", &[&pods[0], &pods[2]], now());
        assert_eq!(d.create, vec![(1, "db-r1".to_owned())]);
    }

    #[test]
    fn the_current_revision_moves_once_every_pod_is_updated_and_ready() {
        let pods = [
            pod(0, "db-r2", true),
            pod(1, "db-r2", true),
            pod(2, "db-r2", true),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let d = decide(&set(json!({})), "db-r2", &refs, now());
        assert_eq!(d.status.current_revision.as_deref(), Some("db-r2"));
        assert_eq!(d.status.ready_replicas, Some(3));
    }
}
