//! What one Job needs now, decided from the Job and its pods alone (upstream's
//! `pkg/controller/job/job_controller.go` `syncJob`, `manageJob`, `indexed_job_utils.go`).
//!
//! Pure: no I/O, and "now" is a parameter, so every rule is a table test.
//!
//! Counting differs from upstream in one way: upstream puts a finalizer on each pod so a pod
//! deleted before it was counted is still counted; here the counts come from the pods that
//! exist, and never go down (a finished pod someone deleted stays counted).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobSpec, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// The pod annotation (and label) holding an Indexed Job pod's completion index.
pub const COMPLETION_INDEX_ANNOTATION: &str = "batch.kubernetes.io/job-completion-index";

/// Upstream's `DefaultJobPodFailureBackOff` and `MaxJobPodFailureBackOff`.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// What the Job's sync should do.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Pods to create: one entry per pod, with its completion index for Indexed Jobs.
    pub create: Vec<Option<i32>>,
    /// Names of pods to delete (active pods beyond what is wanted, or all on finish).
    pub delete: Vec<String>,
    /// The status to publish.
    pub status: JobStatus,
    /// Why the Job finished in this sync, if it did: (condition type, reason, message).
    pub finished: Option<(&'static str, &'static str, String)>,
    /// Look again after this long (back-off, deadline, TTL), even if nothing changes.
    pub requeue_after: Option<Duration>,
    /// Delete the Job itself: finished and past `ttlSecondsAfterFinished`.
    pub delete_job: bool,
}

fn phase(pod: &Pod) -> Option<&str> {
    pod.status.as_ref().and_then(|s| s.phase.as_deref())
}

fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Not finished and not being deleted.
fn is_active(pod: &Pod) -> bool {
    !matches!(phase(pod), Some("Succeeded" | "Failed")) && !is_terminating(pod)
}

fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// A pod's completion index, if it has a valid one.
pub fn completion_index(pod: &Pod) -> Option<i32> {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(COMPLETION_INDEX_ANNOTATION))
        .or_else(|| {
            pod.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(COMPLETION_INDEX_ANNOTATION))
        })
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|i| *i >= 0)
}

/// When a finished pod finished: its last container's end, else its Ready condition's last
/// change, else its creation.
fn finish_time(pod: &Pod) -> Option<Timestamp> {
    let status = pod.status.as_ref();
    let ended = status
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.terminated.as_ref()?.finished_at.as_ref())
        .map(|t| t.0)
        .max();
    ended
        .or_else(|| {
            status
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .and_then(|c| c.last_transition_time.as_ref())
                .map(|t| t.0)
        })
        .or_else(|| pod.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

fn condition_true(status: &JobStatus, type_: &str) -> bool {
    status
        .conditions
        .iter()
        .flatten()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Whether the Job has finished (Complete or Failed).
pub fn is_finished(job: &Job) -> bool {
    job.status
        .as_ref()
        .is_some_and(|s| condition_true(s, "Complete") || condition_true(s, "Failed"))
}

fn set_condition(
    status: &mut JobStatus,
    type_: &str,
    state: &str,
    reason: &str,
    message: &str,
    now: Timestamp,
) {
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    if let Some(existing) = conditions.iter_mut().find(|c| c.type_ == type_) {
        if existing.status != state {
            existing.last_transition_time = Some(Time(now));
        }
        if existing.status != state
            || existing.reason.as_deref() != Some(reason)
            || existing.message.as_deref() != Some(message)
        {
            existing.last_probe_time = Some(Time(now));
        }
        existing.status = state.to_owned();
        existing.reason = Some(reason.to_owned());
        existing.message = Some(message.to_owned());
        return;
    }
    conditions.push(JobCondition {
        type_: type_.to_owned(),
        status: state.to_owned(),
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        last_probe_time: Some(Time(now)),
        last_transition_time: Some(Time(now)),
    });
}

/// `0-2,5,7-8`: upstream's compressed list of completed indexes.
pub fn format_indexes(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &index in indexes {
        run = match run {
            Some((first, last)) if index == last + 1 => Some((first, index)),
            Some(done) => {
                parts.push(format_run(done));
                Some((index, index))
            }
            None => Some((index, index)),
        };
    }
    if let Some(done) = run {
        parts.push(format_run(done));
    }
    parts.join(",")
}

fn format_run((first, last): (i32, i32)) -> String {
    if first == last {
        first.to_string()
    } else {
        format!("{first}-{last}")
    }
}

/// Parses what [`format_indexes`] writes; ignores malformed parts.
pub fn parse_indexes(text: &str) -> BTreeSet<i32> {
    let mut indexes = BTreeSet::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((first, last)) => {
                if let (Ok(first), Ok(last)) = (first.parse::<i32>(), last.parse::<i32>()) {
                    indexes.extend(first.max(0)..=last);
                }
            }
            None => {
                if let Ok(index) = part.parse::<i32>() {
                    indexes.insert(index);
                }
            }
        }
    }
    indexes
}

/// The back-off before the next pod after `failures` failures in a row: 10 s doubling, at most
/// 6 min; none before the first failure.
pub fn backoff_delay(failures: u32) -> Duration {
    if failures == 0 {
        return Duration::ZERO;
    }
    let exponent = failures.saturating_sub(1).min(16);
    BACKOFF_BASE.saturating_mul(1 << exponent).min(BACKOFF_MAX)
}

fn elapsed(since: Timestamp, now: Timestamp) -> Duration {
    let nanos = now.as_nanosecond() - since.as_nanosecond();
    u64::try_from(nanos / 1_000_000)
        .map(Duration::from_millis)
        .unwrap_or(Duration::ZERO)
}

fn secs(value: i64) -> Duration {
    Duration::from_secs(u64::try_from(value).unwrap_or(0))
}

fn min_requeue(current: Option<Duration>, candidate: Duration) -> Option<Duration> {
    Some(current.map_or(candidate, |c| c.min(candidate)))
}

/// Decides what `job` needs, given the pods it owns (any phase, terminating ones included).
pub fn decide(job: &Job, pods: &[&Pod], now: Timestamp) -> Decision {
    let spec = job.spec.clone().unwrap_or_default();
    let mut status = job.status.clone().unwrap_or_default();
    let mut decision = Decision {
        create: Vec::new(),
        delete: Vec::new(),
        status: JobStatus::default(),
        finished: None,
        requeue_after: None,
        delete_job: false,
    };

    let active: Vec<&Pod> = pods.iter().copied().filter(|p| is_active(p)).collect();
    let terminating = pods
        .iter()
        .filter(|p| is_terminating(p) && !matches!(phase(p), Some("Succeeded" | "Failed")))
        .count();
    let succeeded_pods: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| phase(p) == Some("Succeeded"))
        .collect();
    let failed_pods: Vec<&Pod> = pods
        .iter()
        .copied()
        .filter(|p| phase(p) == Some("Failed"))
        .collect();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;

    // Counts never go down: a counted pod that was deleted stays counted.
    let mut completed_indexes = status
        .completed_indexes
        .as_deref()
        .map(parse_indexes)
        .unwrap_or_default();
    if indexed {
        let limit = completions.unwrap_or(0);
        completed_indexes.extend(
            succeeded_pods
                .iter()
                .filter_map(|p| completion_index(p))
                .filter(|i| *i < limit),
        );
        status.completed_indexes =
            Some(format_indexes(&completed_indexes)).filter(|s| !s.is_empty());
    }
    let counted_succeeded = if indexed {
        i32::try_from(completed_indexes.len()).unwrap_or(i32::MAX)
    } else {
        i32::try_from(succeeded_pods.len()).unwrap_or(i32::MAX)
    };
    let succeeded = counted_succeeded.max(status.succeeded.unwrap_or(0));
    let failed = i32::try_from(failed_pods.len())
        .unwrap_or(i32::MAX)
        .max(status.failed.unwrap_or(0));
    status.succeeded = Some(succeeded);
    status.failed = Some(failed);
    status.terminating = Some(i32::try_from(terminating).unwrap_or(i32::MAX));
    status.ready = Some(i32::try_from(active.iter().filter(|p| is_ready(p)).count()).unwrap_or(0));

    if is_finished(job) {
        // Nothing more to run; clean up stragglers, and honour the TTL.
        decision.delete = names(&active);
        status.active = Some(0);
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            let finished_at = status
                .completion_time
                .as_ref()
                .map(|t| t.0)
                .or_else(|| finished_condition_time(&status));
            if let Some(finished_at) = finished_at {
                let age = elapsed(finished_at, now);
                if age >= secs(i64::from(ttl)) {
                    decision.delete_job = true;
                } else {
                    decision.requeue_after = Some(secs(i64::from(ttl)) - age);
                }
            }
        }
        decision.status = status;
        return decision;
    }

    let suspended = spec.suspend == Some(true);
    if suspended {
        decision.delete = names(&active);
        status.active = Some(0);
        if !condition_true(&status, "Suspended") {
            set_condition(
                &mut status,
                "Suspended",
                "True",
                "JobSuspended",
                "Job suspended",
                now,
            );
        }
        // Resuming restarts the active deadline.
        status.start_time = None;
        decision.status = status;
        return decision;
    }
    if condition_true(&status, "Suspended") {
        set_condition(
            &mut status,
            "Suspended",
            "False",
            "JobResumed",
            "Job resumed",
            now,
        );
    }
    let start_time = status.start_time.as_ref().map_or(now, |t| t.0);
    status.start_time = Some(Time(start_time));

    // Failure: too many failures, or past the deadline.
    let restart_policy = spec
        .template
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Never");
    let restarts: i32 = if restart_policy == "OnFailure" {
        active
            .iter()
            .filter_map(|p| p.status.as_ref()?.container_statuses.as_ref())
            .flatten()
            .map(|c| c.restart_count)
            .sum()
    } else {
        0
    };
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let failure = if failed.saturating_add(restarts) > backoff_limit
        || (restart_policy == "OnFailure" && backoff_limit == 0 && restarts > 0)
    {
        Some((
            "BackoffLimitExceeded",
            "Job has reached the specified backoff limit".to_owned(),
        ))
    } else if let Some(deadline) = spec.active_deadline_seconds {
        let running_for = elapsed(start_time, now);
        if running_for >= secs(deadline) {
            Some((
                "DeadlineExceeded",
                "Job was active longer than specified deadline".to_owned(),
            ))
        } else {
            decision.requeue_after =
                min_requeue(decision.requeue_after, secs(deadline) - running_for);
            None
        }
    } else {
        None
    };
    if let Some((reason, message)) = failure {
        decision.delete = names(&active);
        status.active = Some(0);
        set_condition(&mut status, "FailureTarget", "True", reason, &message, now);
        set_condition(&mut status, "Failed", "True", reason, &message, now);
        decision.finished = Some(("Failed", reason, message));
        decision.status = status;
        return decision;
    }

    // Success.
    let complete = match completions {
        Some(completions) => succeeded >= completions,
        // Without completions, the first success ends the Job once nothing else runs.
        None => succeeded > 0 && active.is_empty(),
    };
    if complete {
        decision.delete = names(&active);
        status.active = Some(0);
        let message = "Reached expected number of succeeded pods";
        set_condition(
            &mut status,
            "SuccessCriteriaMet",
            "True",
            "CompletionsReached",
            message,
            now,
        );
        set_condition(
            &mut status,
            "Complete",
            "True",
            "CompletionsReached",
            message,
            now,
        );
        status.completion_time = Some(Time(now));
        decision.finished = Some(("Complete", "Completed", "Job completed".to_owned()));
        if let Some(ttl) = spec.ttl_seconds_after_finished {
            decision.requeue_after = Some(secs(i64::from(ttl)));
        }
        decision.status = status;
        return decision;
    }

    // Running: how many pods, and which indexes.
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff = {
        let last_success = succeeded_pods.iter().filter_map(|p| finish_time(p)).max();
        let recent_failures: Vec<Timestamp> = failed_pods
            .iter()
            .filter_map(|p| finish_time(p))
            .filter(|t| last_success.is_none_or(|s| *t > s))
            .collect();
        let delay = backoff_delay(u32::try_from(recent_failures.len()).unwrap_or(u32::MAX));
        let since = recent_failures
            .iter()
            .max()
            .map_or(Duration::MAX, |t| elapsed(*t, now));
        delay.saturating_sub(since)
    };
    if indexed {
        decide_indexed(
            &spec,
            &active,
            &completed_indexes,
            parallelism,
            &mut decision,
        );
    } else {
        let want = match completions {
            Some(completions) => (completions - succeeded).clamp(0, parallelism),
            None if succeeded > 0 => i32::try_from(active.len()).unwrap_or(i32::MAX),
            None => parallelism,
        };
        let want = usize::try_from(want).unwrap_or(0);
        if active.len() > want {
            decision.delete = names(&surplus(&active, active.len() - want));
        } else {
            decision.create = vec![None; want - active.len()];
        }
    }
    if !decision.create.is_empty() && !backoff.is_zero() {
        // Failures back off before anything new starts.
        decision.create.clear();
        decision.requeue_after = min_requeue(decision.requeue_after, backoff);
    }
    let remaining_active = active.len().saturating_sub(decision.delete.len());
    status.active =
        Some(i32::try_from(remaining_active + decision.create.len()).unwrap_or(i32::MAX));
    decision.status = status;
    decision
}

fn decide_indexed(
    spec: &JobSpec,
    active: &[&Pod],
    completed: &BTreeSet<i32>,
    parallelism: i32,
    decision: &mut Decision,
) {
    let completions = spec.completions.unwrap_or(0).max(0);
    // Active pods per index: duplicates, completed or out-of-range indexes go.
    let mut by_index: BTreeMap<i32, Vec<&Pod>> = BTreeMap::new();
    let mut extra: Vec<&Pod> = Vec::new();
    for pod in active {
        match completion_index(pod) {
            Some(index) if index < completions && !completed.contains(&index) => {
                by_index.entry(index).or_default().push(pod)
            }
            _ => extra.push(pod),
        }
    }
    for pods in by_index.values_mut() {
        if pods.len() > 1 {
            let keep = one_to_keep(pods);
            extra.extend(pods.iter().copied().filter(|p| !std::ptr::eq(*p, keep)));
        }
    }
    let running = by_index.len();
    let parallelism = usize::try_from(parallelism).unwrap_or(0);
    if running > parallelism {
        // Keep the lowest indexes running.
        extra.extend(
            by_index
                .values()
                .rev()
                .take(running - parallelism)
                .flatten()
                .copied(),
        );
    }
    decision.delete = names(&extra);
    let room = parallelism.saturating_sub(running);
    decision.create = (0..completions)
        .filter(|i| !completed.contains(i) && !by_index.contains_key(i))
        .take(room)
        .map(Some)
        .collect();
}

/// Which pod of several for one index to keep: a ready one, else the oldest.
fn one_to_keep<'a>(pods: &[&'a Pod]) -> &'a Pod {
    pods.iter()
        .copied()
        .find(|p| is_ready(p))
        .or_else(|| {
            pods.iter()
                .copied()
                .min_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0))
        })
        .unwrap_or(pods[0])
}

/// The `count` active pods to delete when there are too many: not-ready first, then newest.
fn surplus<'a>(active: &[&'a Pod], count: usize) -> Vec<&'a Pod> {
    let mut ranked: Vec<&Pod> = active.to_vec();
    ranked.sort_by_key(|p| {
        (
            is_ready(p),
            std::cmp::Reverse(p.metadata.creation_timestamp.as_ref().map(|t| t.0)),
        )
    });
    ranked.truncate(count);
    ranked
}

fn names(pods: &[&Pod]) -> Vec<String> {
    pods.iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect()
}

fn finished_condition_time(status: &JobStatus) -> Option<Timestamp> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

#[cfg(test)]
mod tests;
