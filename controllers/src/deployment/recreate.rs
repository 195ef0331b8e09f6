//! The Recreate strategy's gate (upstream's `oldPodsRunning`): the new ReplicaSet scales up
//! only once no pod of an old one may still be running.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;

use super::util::rs_actual;
use crate::framework::ownership::controller_of;

/// Whether pods of the old ReplicaSets may still run. `pods` are the Deployment's pods.
pub fn old_pods_running(new_rs: Option<&ReplicaSet>, old: &[&ReplicaSet], pods: &[&Pod]) -> bool {
    if old.iter().map(|rs| rs_actual(rs)).sum::<i32>() > 0 {
        return true;
    }
    let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_deref());
    let old_uids: Vec<&str> = old
        .iter()
        .filter_map(|rs| rs.metadata.uid.as_deref())
        .collect();
    pods.iter()
        .filter(|pod| {
            controller_of(&pod.metadata).is_some_and(|r| {
                Some(r.uid.as_str()) != new_uid && old_uids.contains(&r.uid.as_str())
            })
        })
        .any(|pod| {
            let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
            !matches!(phase, Some("Failed" | "Succeeded"))
        })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::PodStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    use super::super::testing::rs;
    use super::*;

    fn pod_of(owner_uid: &str, phase: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                owner_references: Some(vec![OwnerReference {
                    uid: owner_uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: None,
            status: Some(PodStatus {
                phase: Some(phase.into()),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn old_pods_running_as_upstream() {
        let new_rs = rs("new", 1, 0, 2);
        let scaled_down = rs("old", 0, 0, 1);
        let mut still_reporting = rs("old", 0, 0, 1);
        still_reporting.status.as_mut().unwrap().replicas = 1;
        let cases = [
            ("no pods", &scaled_down, vec![], false),
            ("old set still reports pods", &still_reporting, vec![], true),
            (
                "old running pod",
                &scaled_down,
                vec![pod_of("old-uid", "Running")],
                true,
            ),
            (
                "old unknown pod may run",
                &scaled_down,
                vec![pod_of("old-uid", "Unknown")],
                true,
            ),
            (
                "old finished pods",
                &scaled_down,
                vec![pod_of("old-uid", "Succeeded"), pod_of("old-uid", "Failed")],
                false,
            ),
            (
                "new pods do not count",
                &scaled_down,
                vec![pod_of("new-uid", "Running")],
                false,
            ),
        ];
        for (name, old, pods, want) in cases {
            let pods: Vec<&Pod> = pods.iter().collect();
            assert_eq!(
                old_pods_running(Some(&new_rs), &[old], &pods),
                want,
                "{name}"
            );
        }
    }
}
