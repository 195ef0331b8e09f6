//! Deployment status and conditions (upstream's `progress.go`, `calculateStatus` and the
//! condition helpers): counts, Available, Progressing with its deadline, paused, failures.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use super::util::{
    InvalidIntOrPercent, deployment_replicas, max_unavailable, replica_count, rs_actual,
    rs_available, rs_ready,
};

/// Condition types.
pub const AVAILABLE: &str = "Available";
/// Condition type of a rollout's progress.
pub const PROGRESSING: &str = "Progressing";
/// Condition type copied from a ReplicaSet that cannot create or delete pods.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Progressing reasons.
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
/// A ReplicaSet was scaled as part of the rollout.
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
/// No progress within progressDeadlineSeconds.
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
/// A new ReplicaSet was created.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
/// An existing ReplicaSet became the new one.
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
/// The new ReplicaSet could not be created.
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
/// The Deployment is paused.
pub const PAUSED: &str = "DeploymentPaused";
/// The Deployment was resumed.
pub const RESUMED: &str = "DeploymentResumed";
/// Available reasons.
pub const MINIMUM_AVAILABLE: &str = "MinimumReplicasAvailable";
/// Fewer than replicas − maxUnavailable are available.
pub const MINIMUM_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

/// A condition with both times set to `now`.
pub fn condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
    now: Timestamp,
) -> DeploymentCondition {
    DeploymentCondition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message),
        last_update_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    }
}

/// The condition of this type.
pub fn get_condition<'a>(
    status: &'a DeploymentStatus,
    type_: &str,
) -> Option<&'a DeploymentCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

/// Upstream's `SetDeploymentCondition`: nothing changes if status and reason are the same;
/// the transition time is kept while the status is.
pub fn set_condition(status: &mut DeploymentStatus, mut new: DeploymentCondition) {
    if let Some(current) = get_condition(status, &new.type_) {
        if current.status == new.status && current.reason == new.reason {
            return;
        }
        if current.status == new.status {
            new.last_transition_time = current.last_transition_time.clone();
        }
    }
    remove_condition(status, &new.type_);
    status.conditions.get_or_insert_with(Vec::new).push(new);
}

/// Removes the condition of this type.
pub fn remove_condition(status: &mut DeploymentStatus, type_: &str) {
    if let Some(conditions) = status.conditions.as_mut() {
        conditions.retain(|c| c.type_ != type_);
    }
}

/// Upstream's `HasProgressDeadline`.
pub fn has_progress_deadline(deployment: &Deployment) -> bool {
    progress_deadline(deployment).is_some()
}

fn progress_deadline(deployment: &Deployment) -> Option<i32> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|seconds| *seconds != i32::MAX)
}

/// Upstream's `calculateStatus`: counts from the ReplicaSets and the Available condition.
pub fn calculate_status(
    deployment: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> Result<DeploymentStatus, InvalidIntOrPercent> {
    let available: i32 = all.iter().map(|rs| rs_available(rs)).sum();
    let total = replica_count(all.iter().copied());
    let current = deployment.status.clone().unwrap_or_default();
    let mut status = DeploymentStatus {
        observed_generation: deployment.metadata.generation,
        replicas: Some(all.iter().map(|rs| rs_actual(rs)).sum()),
        updated_replicas: Some(new_rs.map(rs_actual).unwrap_or(0)),
        ready_replicas: Some(all.iter().map(|rs| rs_ready(rs)).sum()),
        available_replicas: Some(available),
        // More available than wanted while scaling down is not "negative unavailable".
        unavailable_replicas: Some((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions,
    };
    if available >= deployment_replicas(deployment) - max_unavailable(deployment)? {
        set_condition(
            &mut status,
            condition(
                AVAILABLE,
                "True",
                MINIMUM_AVAILABLE,
                "Deployment has minimum availability.".into(),
                now,
            ),
        );
    } else {
        set_condition(
            &mut status,
            condition(
                AVAILABLE,
                "False",
                MINIMUM_UNAVAILABLE,
                "Deployment does not have minimum availability.".into(),
                now,
            ),
        );
    }
    Ok(status)
}

/// Upstream's `DeploymentComplete`: every replica updated and available, status current.
pub fn deployment_complete(deployment: &Deployment, status: &DeploymentStatus) -> bool {
    let replicas = deployment_replicas(deployment);
    status.updated_replicas.unwrap_or(0) == replicas
        && status.replicas.unwrap_or(0) == replicas
        && status.available_replicas.unwrap_or(0) == replicas
        && status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(0)
}

/// Upstream's `DeploymentProgressing`: more updated, ready or available pods, or fewer old ones.
pub fn deployment_progressing(deployment: &Deployment, status: &DeploymentStatus) -> bool {
    let old = deployment.status.clone().unwrap_or_default();
    let n = |v: Option<i32>| v.unwrap_or(0);
    let old_old = n(old.replicas) - n(old.updated_replicas);
    let new_old = n(status.replicas) - n(status.updated_replicas);
    n(status.updated_replicas) > n(old.updated_replicas)
        || new_old < old_old
        || n(status.ready_replicas) > n(old.ready_replicas)
        || n(status.available_replicas) > n(old.available_replicas)
}

/// Upstream's `DeploymentTimedOut`: the Progressing condition was last updated longer than
/// progressDeadlineSeconds ago.
pub fn deployment_timed_out(
    deployment: &Deployment,
    status: &DeploymentStatus,
    now: Timestamp,
) -> bool {
    let Some(deadline) = progress_deadline(deployment) else {
        return false;
    };
    let Some(progressing) = get_condition(status, PROGRESSING) else {
        return false;
    };
    match progressing.reason.as_deref() {
        Some(NEW_RS_AVAILABLE) => return false,
        Some(TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = progressing.last_update_time.as_ref() else {
        return false;
    };
    from.0.as_second() + i64::from(deadline) < now.as_second()
}

fn rs_name(rs: Option<&ReplicaSet>) -> Option<String> {
    rs.and_then(|rs| rs.metadata.name.clone())
}

/// Upstream's `syncRolloutStatus` minus the write: the status to publish, with the Progressing
/// condition judged against the deadline and ReplicaSet failures carried over.
pub fn rollout_status(
    deployment: &Deployment,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    now: Timestamp,
) -> Result<DeploymentStatus, InvalidIntOrPercent> {
    let mut status = calculate_status(deployment, all, new_rs, now)?;
    if !has_progress_deadline(deployment) {
        remove_condition(&mut status, PROGRESSING);
    }
    let current = deployment.status.clone().unwrap_or_default();
    let current_progressing = get_condition(&current, PROGRESSING);
    // A finished rollout that is merely resynced: nothing to estimate.
    let complete_before = status.replicas == status.updated_replicas
        && current_progressing.is_some_and(|c| c.reason.as_deref() == Some(NEW_RS_AVAILABLE));
    if has_progress_deadline(deployment) && !complete_before {
        let subject = match rs_name(new_rs) {
            Some(name) => format!("ReplicaSet {name:?}"),
            None => format!(
                "Deployment {:?}",
                deployment.metadata.name.clone().unwrap_or_default()
            ),
        };
        if deployment_complete(deployment, &status) {
            set_condition(
                &mut status,
                condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_AVAILABLE,
                    format!("{subject} has successfully progressed."),
                    now,
                ),
            );
        } else if deployment_progressing(deployment, &status) {
            let mut progressing = condition(
                PROGRESSING,
                "True",
                RS_UPDATED,
                format!("{subject} is progressing."),
                now,
            );
            // Same reason, new lastUpdateTime: the deadline counts from the last progress.
            if let Some(current) = current_progressing
                && current.status == "True"
            {
                progressing.last_transition_time = current.last_transition_time.clone();
            }
            remove_condition(&mut status, PROGRESSING);
            set_condition(&mut status, progressing);
        } else if deployment_timed_out(deployment, &status, now) {
            set_condition(
                &mut status,
                condition(
                    PROGRESSING,
                    "False",
                    TIMED_OUT,
                    format!("{subject} has timed out progressing."),
                    now,
                ),
            );
        }
    }
    match replica_failure(all, new_rs) {
        Some(failure) => set_condition(&mut status, failure),
        None => remove_condition(&mut status, REPLICA_FAILURE),
    }
    Ok(status)
}

/// Upstream's `getReplicaFailures`: the new set's failure first, else an old set's.
fn replica_failure(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<DeploymentCondition> {
    let failure_of = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == REPLICA_FAILURE)
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
    };
    new_rs
        .and_then(failure_of)
        .or_else(|| all.iter().find_map(|rs| failure_of(rs)))
}

/// Upstream's `requeueStuckDeployment`: when to look again so a stalled rollout times out
/// even if no event comes. `None`: no need.
pub fn recheck_progress_after(
    deployment: &Deployment,
    new_status: &DeploymentStatus,
    now: Timestamp,
) -> Option<Duration> {
    let deadline = progress_deadline(deployment)?;
    let current = deployment.status.clone().unwrap_or_default();
    let progressing = get_condition(&current, PROGRESSING)?;
    if deployment_complete(deployment, new_status)
        || progressing.reason.as_deref() == Some(TIMED_OUT)
    {
        return None;
    }
    let last_update = progressing.last_update_time.as_ref()?.0;
    let due = last_update.as_second() + i64::from(deadline);
    let remaining = due - now.as_second();
    // Past due or nearly so: check again at once (plus a second, as the check is strict).
    Some(Duration::from_secs(remaining.max(0) as u64 + 1))
}

/// Upstream's `checkPausedConditions`: the status with Progressing set to
/// DeploymentPaused/DeploymentResumed, if it changes. A timed-out rollout keeps its reason.
pub fn paused_condition_update(
    deployment: &Deployment,
    now: Timestamp,
) -> Option<DeploymentStatus> {
    if !has_progress_deadline(deployment) {
        return None;
    }
    let mut status = deployment.status.clone().unwrap_or_default();
    let reason = get_condition(&status, PROGRESSING).and_then(|c| c.reason.clone());
    if reason.as_deref() == Some(TIMED_OUT) {
        return None;
    }
    let paused = deployment
        .spec
        .as_ref()
        .and_then(|s| s.paused)
        .unwrap_or(false);
    let paused_condition_exists = reason.as_deref() == Some(PAUSED);
    if paused && !paused_condition_exists {
        set_condition(
            &mut status,
            condition(
                PROGRESSING,
                "Unknown",
                PAUSED,
                "Deployment is paused".into(),
                now,
            ),
        );
    } else if !paused && paused_condition_exists {
        set_condition(
            &mut status,
            condition(
                PROGRESSING,
                "Unknown",
                RESUMED,
                "Deployment is resumed".into(),
                now,
            ),
        );
    } else {
        return None;
    }
    Some(status)
}

#[cfg(test)]
mod tests {
    use super::super::testing::{deployment, rs};
    use super::*;

    fn ts(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    fn with_progressing(mut d: Deployment, reason: &str, updated_at: i64) -> Deployment {
        let mut status = d.status.take().unwrap_or_default();
        set_condition(
            &mut status,
            condition(PROGRESSING, "True", reason, String::new(), ts(updated_at)),
        );
        d.status = Some(status);
        d
    }

    #[test]
    fn status_counts_and_availability() {
        let d = deployment(4, "1", "1");
        let new_rs = rs("new", 2, 1, 2);
        let old_rs = rs("old", 3, 3, 1);
        let status = calculate_status(&d, &[&new_rs, &old_rs], Some(&new_rs), ts(0)).unwrap();
        assert_eq!(status.replicas, Some(5));
        assert_eq!(status.updated_replicas, Some(2));
        assert_eq!(status.available_replicas, Some(4));
        assert_eq!(status.unavailable_replicas, Some(1));
        assert_eq!(status.observed_generation, Some(1));
        let available = get_condition(&status, AVAILABLE).unwrap();
        assert_eq!(
            (available.status.as_str(), available.reason.as_deref()),
            ("True", Some(MINIMUM_AVAILABLE))
        );

        let short = rs("new", 4, 2, 2);
        let status = calculate_status(&d, &[&short], Some(&short), ts(0)).unwrap();
        assert_eq!(
            get_condition(&status, AVAILABLE).unwrap().reason.as_deref(),
            Some(MINIMUM_UNAVAILABLE)
        );
    }

    #[test]
    fn progressing_reasons_as_upstream() {
        // (name, deployment before, new rs, now, want reason, want status)
        let started = with_progressing(deployment(2, "1", "0"), RS_UPDATED, 100);
        let cases = [
            (
                "complete",
                started.clone(),
                rs("new", 2, 2, 1),
                200,
                NEW_RS_AVAILABLE,
                "True",
            ),
            (
                "progressing",
                started.clone(),
                rs("new", 2, 1, 1),
                200,
                RS_UPDATED,
                "True",
            ),
            (
                "stalled within the deadline",
                started.clone(),
                rs("new", 2, 0, 1),
                650,
                RS_UPDATED,
                "True",
            ),
            (
                "stalled past the deadline",
                started.clone(),
                rs("new", 2, 0, 1),
                701,
                TIMED_OUT,
                "False",
            ),
        ];
        for (name, d, new_rs, now, reason, status) in cases {
            let mut d = d;
            if name != "progressing" {
                // The old status already counted what the set shows: no new progress.
                d.status.as_mut().unwrap().replicas =
                    Some(new_rs.status.as_ref().unwrap().replicas);
                d.status.as_mut().unwrap().updated_replicas =
                    Some(new_rs.status.as_ref().unwrap().replicas);
                d.status.as_mut().unwrap().ready_replicas =
                    new_rs.status.as_ref().unwrap().ready_replicas;
                d.status.as_mut().unwrap().available_replicas =
                    new_rs.status.as_ref().unwrap().available_replicas;
            }
            let got = rollout_status(&d, &[&new_rs], Some(&new_rs), ts(now)).unwrap();
            let progressing = get_condition(&got, PROGRESSING).unwrap();
            assert_eq!(progressing.reason.as_deref(), Some(reason), "{name}");
            assert_eq!(progressing.status, status, "{name}");
        }
    }

    #[test]
    fn progress_keeps_transition_time_and_moves_update_time() {
        let d = with_progressing(deployment(2, "1", "0"), RS_UPDATED, 100);
        let new_rs = rs("new", 2, 1, 1);
        let got = rollout_status(&d, &[&new_rs], Some(&new_rs), ts(300)).unwrap();
        let progressing = get_condition(&got, PROGRESSING).unwrap();
        assert_eq!(progressing.last_transition_time, Some(Time(ts(100))));
        assert_eq!(progressing.last_update_time, Some(Time(ts(300))));
    }

    #[test]
    fn no_deadline_means_no_progressing_condition() {
        let mut d = with_progressing(deployment(2, "1", "0"), RS_UPDATED, 100);
        d.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
        let new_rs = rs("new", 2, 1, 1);
        let got = rollout_status(&d, &[&new_rs], Some(&new_rs), ts(300)).unwrap();
        assert!(get_condition(&got, PROGRESSING).is_none());
    }

    #[test]
    fn replica_failures_are_carried_over() {
        let d = deployment(2, "1", "0");
        let mut new_rs = rs("new", 2, 0, 1);
        new_rs.status.as_mut().unwrap().conditions =
            Some(vec![k8s_openapi::api::apps::v1::ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some("FailedCreate".into()),
                ..Default::default()
            }]);
        let got = rollout_status(&d, &[&new_rs], Some(&new_rs), ts(0)).unwrap();
        assert_eq!(
            get_condition(&got, REPLICA_FAILURE)
                .unwrap()
                .reason
                .as_deref(),
            Some("FailedCreate")
        );
    }

    #[test]
    fn stuck_rollouts_are_rechecked_at_the_deadline() {
        let d = with_progressing(deployment(2, "1", "0"), RS_UPDATED, 100);
        let stalled = calculate_status(&d, &[&rs("new", 2, 0, 1)], None, ts(0)).unwrap();
        assert_eq!(
            recheck_progress_after(&d, &stalled, ts(400)),
            Some(Duration::from_secs(301))
        );
        assert_eq!(
            recheck_progress_after(&d, &stalled, ts(900)),
            Some(Duration::from_secs(1))
        );
        let timed_out = with_progressing(deployment(2, "1", "0"), TIMED_OUT, 100);
        assert_eq!(recheck_progress_after(&timed_out, &stalled, ts(400)), None);
    }

    #[test]
    fn paused_and_resumed_conditions() {
        let mut d = deployment(2, "1", "0");
        d.spec.as_mut().unwrap().paused = Some(true);
        let status = paused_condition_update(&d, ts(0)).unwrap();
        assert_eq!(
            get_condition(&status, PROGRESSING)
                .unwrap()
                .reason
                .as_deref(),
            Some(PAUSED)
        );
        d.status = Some(status);
        assert!(
            paused_condition_update(&d, ts(1)).is_none(),
            "already paused"
        );
        d.spec.as_mut().unwrap().paused = Some(false);
        let status = paused_condition_update(&d, ts(2)).unwrap();
        assert_eq!(
            get_condition(&status, PROGRESSING)
                .unwrap()
                .reason
                .as_deref(),
            Some(RESUMED)
        );
        let timed_out = with_progressing(deployment(2, "1", "0"), TIMED_OUT, 0);
        let mut paused = timed_out;
        paused.spec.as_mut().unwrap().paused = Some(true);
        assert!(
            paused_condition_update(&paused, ts(3)).is_none(),
            "a timeout is not overwritten"
        );
    }
}
