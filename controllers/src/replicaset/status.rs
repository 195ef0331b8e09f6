//! The status a ReplicaSet reports, computed from the pods it owns (upstream's
//! `calculateStatus`).

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::pods::{is_available, is_ready};

/// The condition type a ReplicaSet sets when it cannot create or delete pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// The new status, before observedGeneration is set. `manage_error` is the message of a failed
/// create or delete in this sync, if any.
pub fn calculate_status(
    rs: &ReplicaSet,
    owned_active: &[&Pod],
    manage_error: Option<&str>,
    now: Timestamp,
) -> ReplicaSetStatus {
    let mut status = rs.status.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let min_ready_seconds = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();

    let mut fully_labeled = 0;
    let mut ready = 0;
    let mut available = 0;
    for pod in owned_active {
        let labels = pod.metadata.labels.as_ref();
        if template_labels
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            fully_labeled += 1;
        }
        if is_ready(pod) {
            ready += 1;
            if is_available(pod, min_ready_seconds, now) {
                available += 1;
            }
        }
    }

    let has_failure = status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == REPLICA_FAILURE);
    match manage_error {
        Some(message) if !has_failure => {
            let count = i32::try_from(owned_active.len()).unwrap_or(i32::MAX);
            let reason = match count.cmp(&desired) {
                std::cmp::Ordering::Less => "FailedCreate",
                std::cmp::Ordering::Greater => "FailedDelete",
                std::cmp::Ordering::Equal => "",
            };
            status
                .conditions
                .get_or_insert_with(Vec::new)
                .push(ReplicaSetCondition {
                    type_: REPLICA_FAILURE.to_owned(),
                    status: "True".to_owned(),
                    reason: Some(reason.to_owned()),
                    message: Some(message.to_owned()),
                    last_transition_time: Some(Time(now)),
                });
        }
        None if has_failure => {
            if let Some(conditions) = status.conditions.as_mut() {
                conditions.retain(|c| c.type_ != REPLICA_FAILURE);
            }
        }
        _ => {}
    }

    status.replicas = i32::try_from(owned_active.len()).unwrap_or(i32::MAX);
    status.fully_labeled_replicas = Some(fully_labeled);
    status.ready_replicas = Some(ready);
    status.available_replicas = Some(available);
    status
}

/// Whether `status` (with observedGeneration set to the RS's generation) differs from what the
/// RS reports now, so an update is needed.
pub fn needs_update(rs: &ReplicaSet, status: &ReplicaSetStatus) -> bool {
    let current = rs.status.clone().unwrap_or_default();
    let generation = rs.metadata.generation;
    current.replicas != status.replicas
        || current.fully_labeled_replicas.unwrap_or(0) != status.fully_labeled_replicas.unwrap_or(0)
        || current.ready_replicas.unwrap_or(0) != status.ready_replicas.unwrap_or(0)
        || current.available_replicas.unwrap_or(0) != status.available_replicas.unwrap_or(0)
        || current.observed_generation != generation
        || current.conditions.clone().unwrap_or_default()
            != status.conditions.clone().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::apps::v1::ReplicaSetSpec;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn ts(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn rs(replicas: i32, min_ready_seconds: i32) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(replicas),
                min_ready_seconds: Some(min_ready_seconds),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(BTreeMap::from([
                            ("app".into(), "web".into()),
                            ("tier".into(), "front".into()),
                        ])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn pod(labels: &[(&str, &str)], ready_at: Option<i64>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).into(), (*v).into()))
                        .collect(),
                ),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                conditions: ready_at.map(|s| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(s))),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn counts_labels_readiness_and_availability() {
        let full = [("app", "web"), ("tier", "front")];
        let pods = [
            pod(&full, Some(100)),
            pod(&full, Some(195)),
            pod(&[("app", "web")], None),
        ];
        let refs: Vec<&Pod> = pods.iter().collect();
        let status = calculate_status(&rs(3, 10), &refs, None, ts(200));
        assert_eq!(status.replicas, 3);
        assert_eq!(status.fully_labeled_replicas, Some(2));
        assert_eq!(status.ready_replicas, Some(2));
        assert_eq!(
            status.available_replicas,
            Some(1),
            "one pod is ready for only 5s"
        );
    }

    #[test]
    fn failure_condition_is_set_then_cleared() {
        let mut rs = rs(2, 0);
        let status = calculate_status(&rs, &[], Some("quota exceeded"), ts(0));
        let condition = &status.conditions.as_ref().unwrap()[0];
        assert_eq!(condition.type_, REPLICA_FAILURE);
        assert_eq!(condition.reason.as_deref(), Some("FailedCreate"));
        rs.status = Some(status);
        let status = calculate_status(&rs, &[], None, ts(1));
        assert!(status.conditions.unwrap().is_empty());
    }

    #[test]
    fn needs_update_when_generation_or_counts_change() {
        let mut rs = rs(1, 0);
        let status = calculate_status(&rs, &[], None, ts(0));
        assert!(needs_update(&rs, &status), "observedGeneration missing");
        let mut published = status.clone();
        published.observed_generation = Some(3);
        rs.status = Some(published);
        assert!(!needs_update(&rs, &calculate_status(&rs, &[], None, ts(0))));
    }
}
