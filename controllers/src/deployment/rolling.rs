//! RollingUpdate arithmetic (upstream's `rolling.go` and `NewRSNewReplicas`): how far the new
//! ReplicaSet may grow and the old ones shrink without breaking maxSurge or maxUnavailable.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::sync::by_creation;
use super::util::{
    InvalidIntOrPercent, deployment_replicas, is_recreate, max_surge, max_unavailable,
    replica_count, rs_available, rs_replicas,
};

/// Upstream's `NewRSNewReplicas`: the size the new ReplicaSet may have now.
pub fn new_rs_new_replicas(
    deployment: &Deployment,
    all: &[&ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<i32, InvalidIntOrPercent> {
    let desired = deployment_replicas(deployment);
    if is_recreate(deployment) {
        return Ok(desired);
    }
    let current = replica_count(all.iter().copied());
    let max_total = desired + max_surge(deployment)?;
    let new_replicas = rs_replicas(new_rs);
    if current >= max_total {
        return Ok(new_replicas);
    }
    let scale_up = (max_total - current).min(desired - new_replicas);
    Ok(new_replicas + scale_up)
}

/// Upstream's `reconcileNewReplicaSet`: the new ReplicaSet's target size, if it changes.
pub fn reconcile_new(
    deployment: &Deployment,
    all: &[&ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<Option<i32>, InvalidIntOrPercent> {
    let desired = deployment_replicas(deployment);
    let current = rs_replicas(new_rs);
    if current == desired {
        return Ok(None);
    }
    if current > desired {
        return Ok(Some(desired));
    }
    let target = new_rs_new_replicas(deployment, all, new_rs)?;
    Ok((target != current).then_some(target))
}

/// Upstream's `reconcileOldReplicaSets` (with `cleanupUnhealthyReplicas` and
/// `scaleDownOldReplicaSetsForRollingUpdate`): new sizes for the old active ReplicaSets,
/// oldest first, only for those that change.
pub fn reconcile_old(
    deployment: &Deployment,
    old_active: &[&ReplicaSet],
    new_rs: &ReplicaSet,
) -> Result<Vec<(String, i32)>, InvalidIntOrPercent> {
    let old_count = replica_count(old_active.iter().copied());
    if old_count == 0 {
        return Ok(Vec::new());
    }
    let all_count = old_count + rs_replicas(new_rs);
    let min_available = deployment_replicas(deployment) - max_unavailable(deployment)?;
    let new_unavailable = rs_replicas(new_rs) - rs_available(new_rs);
    let max_scaled_down = all_count - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(Vec::new());
    }

    let mut old: Vec<&ReplicaSet> = old_active.to_vec();
    old.sort_by(|a, b| by_creation(a, b));
    let mut sizes: Vec<i32> = old.iter().map(|rs| rs_replicas(rs)).collect();

    // Unhealthy replicas first: removing them costs no availability.
    let mut cleaned = 0;
    for (rs, size) in old.iter().zip(sizes.iter_mut()) {
        if cleaned >= max_scaled_down {
            break;
        }
        let available = rs_available(rs);
        if *size == 0 || *size == available {
            continue;
        }
        let count = (max_scaled_down - cleaned).min(*size - available);
        *size -= count;
        cleaned += count;
    }

    // Then healthy ones, as far as minAvailable allows.
    let available_total: i32 =
        old.iter().map(|rs| rs_available(rs)).sum::<i32>() + rs_available(new_rs);
    if available_total > min_available {
        let to_scale_down = available_total - min_available;
        let mut scaled = 0;
        for size in sizes.iter_mut() {
            if scaled >= to_scale_down {
                break;
            }
            if *size == 0 {
                continue;
            }
            let count = (*size).min(to_scale_down - scaled);
            *size -= count;
            scaled += count;
        }
    }

    Ok(old
        .iter()
        .zip(sizes)
        .filter(|(rs, size)| rs_replicas(rs) != *size)
        .map(|(rs, size)| (rs.metadata.name.clone().unwrap_or_default(), size))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::super::testing::{deployment, rs};
    use super::*;

    #[test]
    fn new_rs_new_replicas_as_upstream() {
        // (replicas, surge, new rs size, old rs size, want) from upstream's TestNewRSNewReplicas.
        let cases = [
            ("can not scale up - to newRSReplicas", 1, "1", 5, 1, 5),
            ("scale up - to deployment replicas", 6, "1", 5, 0, 6),
            ("scale up - respects surge", 10, "25%", 0, 10, 3),
            ("nothing left under the surge", 10, "0", 0, 10, 0),
        ];
        for (name, replicas, surge, new_size, old_size, want) in cases {
            let d = deployment(replicas, surge, "0");
            let new_rs = rs("new", new_size, new_size, 2);
            let old_rs = rs("old", old_size, old_size, 1);
            let all = [&new_rs, &old_rs];
            assert_eq!(new_rs_new_replicas(&d, &all, &new_rs), Ok(want), "{name}");
        }
    }

    #[test]
    fn reconcile_new_as_upstream() {
        // From upstream's TestDeploymentController_reconcileNewReplicaSet.
        let cases = [
            // (deployment replicas, maxSurge, old size, new size, want)
            (10, 0, 10, 0, None),
            (10, 2, 10, 0, Some(2)),
            (10, 2, 5, 0, Some(7)),
            (10, 2, 10, 2, None),
            (10, 2, 2, 11, Some(10)),
        ];
        for (replicas, surge, old_size, new_size, want) in cases {
            let d = deployment(replicas, &surge.to_string(), "0");
            let old_rs = rs("old", old_size, old_size, 1);
            let new_rs = rs("new", new_size, new_size, 2);
            let all = [&old_rs, &new_rs];
            assert_eq!(
                reconcile_new(&d, &all, &new_rs),
                Ok(want),
                "{replicas} {surge} {old_size} {new_size}"
            );
        }
    }

    #[test]
    fn reconcile_old_as_upstream() {
        // From upstream's TestDeploymentController_reconcileOldReplicaSets:
        // (replicas, maxUnavailable, old size, new size, ready old, ready new, scale down by).
        let cases = [
            (10, 0, 10, 0, 10, 0, 0),
            (10, 2, 10, 0, 10, 0, 2),
            (10, 2, 8, 2, 8, 0, 0),
            (10, 2, 10, 0, 8, 0, 2), // two unhealthy old pods are cleaned up
            (10, 2, 8, 2, 8, 2, 2),
            (10, 2, 2, 8, 2, 8, 2),
            (10, 0, 10, 2, 10, 2, 2), // surge pods available: old may give way
        ];
        for (replicas, unavailable, old_size, new_size, old_ready, new_ready, want) in cases {
            let d = deployment(replicas, "25%", &unavailable.to_string());
            let old_rs = rs("old", old_size, old_ready, 1);
            let new_rs = rs("new", new_size, new_ready, 2);
            let plan = reconcile_old(&d, &[&old_rs], &new_rs).unwrap();
            let scaled_down = plan.first().map_or(0, |(_, size)| old_size - size);
            assert_eq!(
                scaled_down, want,
                "{replicas} {unavailable} {old_size} {new_size} {old_ready} {new_ready}"
            );
        }
    }

    #[test]
    fn cleanup_takes_unhealthy_pods_from_the_oldest_first() {
        // From upstream's TestDeploymentController_cleanupUnhealthyReplicas.
        let d = deployment(10, "25%", "2");
        let oldest = rs("oldest", 4, 2, 1);
        let older = rs("older", 4, 4, 2);
        let new_rs = rs("new", 4, 4, 3);
        let plan = reconcile_old(&d, &[&older, &oldest], &new_rs).unwrap();
        assert_eq!(
            plan[0],
            ("oldest".to_string(), 0),
            "unhealthy first, then healthy"
        );
        // 12 total, minAvailable 8, 0 unavailable in new: 4 may go; 2 unhealthy + 2 healthy
        // (available 10 - 8 = 2) from the oldest.
        assert_eq!(plan.len(), 1);
    }
}
