//! What one CronJob needs now, from the CronJob, its Jobs and the time (upstream's
//! `pkg/controller/cronjob/cronjob_controllerv2.go` `syncCronJob`). Pure: "now" is a
//! parameter, so the schedule is tested with a fake clock.

use std::time::Duration;

use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use k8s_openapi::jiff::tz::TimeZone;

use super::schedule::{Schedule, time_zone};
use crate::framework::events::EventType;

/// More missed start times than this and upstream warns that the clock or controller lagged.
const TOO_MANY_MISSED: usize = 100;

/// What the CronJob's sync should do.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// Start a Job for this scheduled time.
    pub create: Option<Timestamp>,
    /// Running Jobs to delete first (`concurrencyPolicy: Replace`).
    pub delete_active: Vec<String>,
    /// Finished Jobs beyond the history limits.
    pub delete_history: Vec<String>,
    /// The status to publish.
    pub status: CronJobStatus,
    /// When to look again: just after the next scheduled time.
    pub requeue_after: Option<Duration>,
    /// Events to record about the CronJob.
    pub events: Vec<(EventType, &'static str, String)>,
}

/// The Job name for a scheduled time: upstream's `<cronjob>-<unix minutes>`, so a restart
/// that retries the same time finds the Job it already made.
pub fn job_name(cron_job: &str, scheduled: Timestamp) -> String {
    format!("{cron_job}-{}", scheduled.as_second().div_euclid(60))
}

fn finished(job: &Job) -> Option<&'static str> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    conditions
        .iter()
        .filter(|c| c.status == "True")
        .find_map(|c| match c.type_.as_str() {
            "Complete" => Some("Complete"),
            "Failed" => Some("Failed"),
            _ => None,
        })
}

pub(crate) fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        field_path: None,
    }
}

fn started(job: &Job) -> Option<Timestamp> {
    job.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .or(job.metadata.creation_timestamp.as_ref())
        .map(|t| t.0)
}

/// The names of the oldest finished Jobs beyond `keep`.
fn beyond_limit(mut jobs: Vec<&Job>, keep: i32) -> Vec<String> {
    let keep = usize::try_from(keep.max(0)).unwrap_or(0);
    if jobs.len() <= keep {
        return Vec::new();
    }
    jobs.sort_by_key(|j| started(j));
    let excess = jobs.len() - keep;
    jobs.into_iter()
        .take(excess)
        .filter_map(|j| j.metadata.name.clone())
        .collect()
}

fn until(from: Timestamp, to: Timestamp) -> Duration {
    let nanos = to.as_nanosecond() - from.as_nanosecond();
    u64::try_from(nanos.max(0) / 1_000_000)
        .map(Duration::from_millis)
        .unwrap_or(Duration::ZERO)
}

/// Decides what `cron_job` needs, given the Jobs it owns.
pub fn decide(cron_job: &CronJob, jobs: &[&Job], now: Timestamp) -> Decision {
    let spec = cron_job.spec.clone().unwrap_or_default();
    let mut status = cron_job.status.clone().unwrap_or_default();
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    let mut decision = Decision {
        create: None,
        delete_active: Vec::new(),
        delete_history: Vec::new(),
        status: CronJobStatus::default(),
        requeue_after: None,
        events: Vec::new(),
    };

    let active: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| finished(j).is_none() && j.metadata.deletion_timestamp.is_none())
        .collect();
    let mut active_refs: Vec<ObjectReference> = active.iter().map(|j| job_ref(j)).collect();
    active_refs.sort_by(|a, b| a.name.cmp(&b.name));
    let last_success = jobs
        .iter()
        .filter(|j| finished(j) == Some("Complete"))
        .filter_map(|j| j.status.as_ref()?.completion_time.as_ref().map(|t| t.0))
        .max();
    if let Some(last_success) = last_success
        && status
            .last_successful_time
            .as_ref()
            .is_none_or(|t| t.0 < last_success)
    {
        status.last_successful_time = Some(Time(last_success));
    }
    let succeeded: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| finished(j) == Some("Complete"))
        .collect();
    let failed: Vec<&Job> = jobs
        .iter()
        .copied()
        .filter(|j| finished(j) == Some("Failed"))
        .collect();
    decision.delete_history =
        beyond_limit(succeeded, spec.successful_jobs_history_limit.unwrap_or(3));
    decision.delete_history.extend(beyond_limit(
        failed,
        spec.failed_jobs_history_limit.unwrap_or(1),
    ));

    let finish = |mut decision: Decision, status: CronJobStatus, active: Vec<ObjectReference>| {
        decision.status = CronJobStatus {
            active: Some(active).filter(|a| !a.is_empty()),
            ..status
        };
        decision
    };
    if cron_job.metadata.deletion_timestamp.is_some() {
        return finish(decision, status, active_refs);
    }
    let zone: TimeZone = match time_zone(spec.time_zone.as_deref()) {
        Ok(zone) => zone,
        Err(message) => {
            decision
                .events
                .push((EventType::Warning, "UnknownTimeZone", message));
            return finish(decision, status, active_refs);
        }
    };
    let schedule = match Schedule::parse(&spec.schedule) {
        Ok(schedule) => schedule,
        Err(error) => {
            decision
                .events
                .push((EventType::Warning, "UnparseableSchedule", error.to_string()));
            return finish(decision, status, active_refs);
        }
    };
    if let Some(next) = schedule.next_after(now, &zone) {
        // A little after, so the clock has surely passed it.
        decision.requeue_after = Some(until(now, next) + Duration::from_millis(100));
    }
    if spec.suspend == Some(true) {
        return finish(decision, status, active_refs);
    }

    let deadline = spec
        .starting_deadline_seconds
        .map(|s| Duration::from_secs(u64::try_from(s).unwrap_or(0)));
    let mut earliest = status
        .last_schedule_time
        .as_ref()
        .or(cron_job.metadata.creation_timestamp.as_ref())
        .map_or(now, |t| t.0);
    if let Some(deadline) = deadline
        && let Ok(window_start) = now.checked_sub(deadline)
    {
        earliest = earliest.max(window_start);
    }
    let (latest, missed) = schedule.missed(earliest, now, &zone, TOO_MANY_MISSED);
    let Some(scheduled) = latest else {
        return finish(decision, status, active_refs);
    };
    if missed > TOO_MANY_MISSED {
        decision.events.push((
            EventType::Warning,
            "TooManyMissedTimes",
            format!(
                "too many missed start times: {missed}. Set or decrease .spec.startingDeadlineSeconds or check clock skew"
            ),
        ));
    }
    let job_name = job_name(&name, scheduled);
    if jobs
        .iter()
        .any(|j| j.metadata.name.as_deref() == Some(job_name.as_str()))
    {
        // Made already (a restart, or a stale status): just record it.
        status.last_schedule_time = Some(Time(scheduled));
        return finish(decision, status, active_refs);
    }
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            decision.events.push((
                EventType::Normal,
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid".into(),
            ));
            return finish(decision, status, active_refs);
        }
        Some("Replace") if !active.is_empty() => {
            decision.delete_active = active
                .iter()
                .filter_map(|j| j.metadata.name.clone())
                .collect();
            active_refs.clear();
        }
        _ => {}
    }
    decision.create = Some(scheduled);
    status.last_schedule_time = Some(Time(scheduled));
    finish(decision, status, active_refs)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn t(text: &str) -> Timestamp {
        text.parse().expect("time")
    }

    fn cron_job(spec: serde_json::Value, status: serde_json::Value) -> CronJob {
        let mut full = json!({
            "metadata": {"name": "tick", "namespace": "default", "uid": "c1",
                         "creationTimestamp": "2026-03-01T09:58:30Z"},
            "spec": {"schedule": "*/5 * * * *", "timeZone": "Etc/UTC",
                     "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}},
            "status": status
        });
        if let (Some(into), serde_json::Value::Object(from)) = (full["spec"].as_object_mut(), spec)
        {
            into.extend(from);
        }
        serde_json::from_value(full).expect("cronjob")
    }

    fn job(name: &str, state: Option<&str>, started: &str) -> Job {
        let conditions = state.map_or(json!([]), |s| json!([{"type": s, "status": "True"}]));
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "creationTimestamp": started},
            "status": {"startTime": started, "conditions": conditions,
                       "completionTime": if state == Some("Complete") { json!(started) } else { json!(null) }}
        }))
        .expect("job")
    }

    #[test]
    fn starts_a_job_at_each_scheduled_time_and_waits_for_the_next() {
        let cj = cron_job(json!({}), json!({}));
        let d = decide(&cj, &[], t("2026-03-01T10:00:20Z"));
        assert_eq!(d.create, Some(t("2026-03-01T10:00:00Z")));
        assert_eq!(
            d.status.last_schedule_time.map(|t| t.0),
            Some(t("2026-03-01T10:00:00Z"))
        );
        // Next at 10:05: 4 min 40 s later, and a hair.
        assert_eq!(d.requeue_after, Some(Duration::from_millis(280_100)));
        assert_eq!(job_name("tick", t("2026-03-01T10:00:00Z")), "tick-29539320");

        // Already scheduled for 10:00: nothing until 10:05.
        let cj = cron_job(
            json!({}),
            json!({"lastScheduleTime": "2026-03-01T10:00:00Z"}),
        );
        assert_eq!(decide(&cj, &[], t("2026-03-01T10:04:59Z")).create, None);
        assert_eq!(
            decide(&cj, &[], t("2026-03-01T10:05:01Z")).create,
            Some(t("2026-03-01T10:05:00Z"))
        );
    }

    #[test]
    fn missed_times_start_only_the_latest_within_the_deadline() {
        let cj = cron_job(
            json!({}),
            json!({"lastScheduleTime": "2026-03-01T10:00:00Z"}),
        );
        let d = decide(&cj, &[], t("2026-03-01T10:17:00Z"));
        assert_eq!(d.create, Some(t("2026-03-01T10:15:00Z")));
        // With a 60 s starting deadline, 10:15 is too late at 10:17.
        let cj = cron_job(
            json!({"startingDeadlineSeconds": 60}),
            json!({"lastScheduleTime": "2026-03-01T10:00:00Z"}),
        );
        assert_eq!(decide(&cj, &[], t("2026-03-01T10:17:00Z")).create, None);
        assert_eq!(
            decide(&cj, &[], t("2026-03-01T10:15:30Z")).create,
            Some(t("2026-03-01T10:15:00Z"))
        );
    }

    #[test]
    fn concurrency_policies() {
        let running = job("tick-1", None, "2026-03-01T09:55:00Z");
        let now = t("2026-03-01T10:00:10Z");
        let status = json!({"lastScheduleTime": "2026-03-01T09:55:00Z"});
        let allow = decide(&cron_job(json!({}), status.clone()), &[&running], now);
        assert!(allow.create.is_some());
        assert_eq!(allow.status.active.map(|a| a.len()), Some(1));

        let forbid = decide(
            &cron_job(json!({"concurrencyPolicy": "Forbid"}), status.clone()),
            &[&running],
            now,
        );
        assert_eq!(forbid.create, None);
        assert_eq!(forbid.events[0].1, "JobAlreadyActive");

        let replace = decide(
            &cron_job(json!({"concurrencyPolicy": "Replace"}), status),
            &[&running],
            now,
        );
        assert!(replace.create.is_some());
        assert_eq!(replace.delete_active, vec!["tick-1".to_owned()]);
    }

    #[test]
    fn history_limits_keep_the_newest_finished_jobs() {
        let jobs = [
            job("ok-1", Some("Complete"), "2026-03-01T09:00:00Z"),
            job("ok-2", Some("Complete"), "2026-03-01T09:05:00Z"),
            job("ok-3", Some("Complete"), "2026-03-01T09:10:00Z"),
            job("bad-1", Some("Failed"), "2026-03-01T09:15:00Z"),
            job("bad-2", Some("Failed"), "2026-03-01T09:20:00Z"),
        ];
        let refs: Vec<&Job> = jobs.iter().collect();
        let cj = cron_job(
            json!({"successfulJobsHistoryLimit": 2, "failedJobsHistoryLimit": 1, "suspend": true}),
            json!({}),
        );
        let d = decide(&cj, &refs, t("2026-03-01T10:00:10Z"));
        assert_eq!(
            d.delete_history,
            vec!["ok-1".to_owned(), "bad-1".to_owned()]
        );
        assert_eq!(d.create, None, "suspended");
        assert_eq!(
            d.status.last_successful_time.map(|t| t.0),
            Some(t("2026-03-01T09:10:00Z"))
        );
    }

    #[test]
    fn bad_schedules_and_zones_are_reported_not_run() {
        let d = decide(
            &cron_job(json!({"schedule": "every minute"}), json!({})),
            &[],
            t("2026-03-01T10:00:10Z"),
        );
        assert_eq!(d.create, None);
        assert_eq!(d.events[0].1, "UnparseableSchedule");
        let d = decide(
            &cron_job(json!({"timeZone": "Nowhere/Land"}), json!({})),
            &[],
            t("2026-03-01T10:00:10Z"),
        );
        assert_eq!(d.events[0].1, "UnknownTimeZone");
    }
}
