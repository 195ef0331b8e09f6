use serde_json::json;

use super::*;

const NOW: &str = "2026-01-01T00:10:00Z";

fn now() -> Timestamp {
    NOW.parse().expect("time")
}

fn at(offset_secs: i64) -> String {
    let t = now()
        .checked_add(k8s_openapi::jiff::SignedDuration::from_secs(offset_secs))
        .expect("time");
    t.to_string()
}

fn job(spec: serde_json::Value) -> Job {
    let mut full = json!({
        "metadata": {"name": "pi", "namespace": "default", "uid": "u1"},
        "spec": {
            "template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}},
            "backoffLimit": 6
        },
        "status": {"startTime": at(-60)}
    });
    merge(&mut full["spec"], spec);
    serde_json::from_value(full).expect("job")
}

fn with_status(mut job: Job, status: serde_json::Value) -> Job {
    let mut current = serde_json::to_value(job.status.take().unwrap_or_default()).expect("json");
    merge(&mut current, status);
    job.status = Some(serde_json::from_value(current).expect("status"));
    job
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    if let (Some(into), serde_json::Value::Object(from)) = (into.as_object_mut(), from) {
        for (k, v) in from {
            into.insert(k, v);
        }
    }
}

/// A pod named `name` in `phase`; `finished` seconds relative to now for finished pods.
fn pod(name: &str, phase: &str, index: Option<i32>, finished: Option<i64>) -> Pod {
    let mut pod = json!({
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": at(-50)},
        "status": {"phase": phase}
    });
    if let Some(index) = index {
        pod["metadata"]["annotations"] = json!({COMPLETION_INDEX_ANNOTATION: index.to_string()});
    }
    if let Some(offset) = finished {
        pod["status"]["containerStatuses"] = json!([{
            "name": "c", "image": "busybox", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": if phase == "Failed" {1} else {0}, "finishedAt": at(offset)}}
        }]);
    }
    serde_json::from_value(pod).expect("pod")
}

fn refs(pods: &[Pod]) -> Vec<&Pod> {
    pods.iter().collect()
}

fn condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
}

#[test]
fn a_new_job_starts_parallelism_pods_up_to_completions() {
    let d = decide(
        &job(json!({"completions": 5, "parallelism": 2})),
        &[],
        now(),
    );
    assert_eq!(d.create, vec![None, None]);
    assert_eq!(d.status.active, Some(2));
    let d = decide(
        &job(json!({"completions": 1, "parallelism": 3})),
        &[],
        now(),
    );
    assert_eq!(d.create.len(), 1, "never more than the completions left");
}

#[test]
fn successes_count_and_the_job_completes_at_completions() {
    let pods = [
        pod("a", "Succeeded", None, Some(-5)),
        pod("b", "Succeeded", None, Some(-4)),
        pod("c", "Running", None, None),
    ];
    let d = decide(
        &job(json!({"completions": 3, "parallelism": 2})),
        &refs(&pods),
        now(),
    );
    assert_eq!(d.status.succeeded, Some(2));
    assert!(d.create.is_empty(), "one left to finish, and it runs");
    assert_eq!(d.status.active, Some(1));

    let pods = [
        pod("a", "Succeeded", None, Some(-5)),
        pod("b", "Succeeded", None, Some(-4)),
        pod("c", "Succeeded", None, Some(-1)),
    ];
    let d = decide(&job(json!({"completions": 3})), &refs(&pods), now());
    assert_eq!(
        condition(&d.status, "Complete").map(|c| c.status.as_str()),
        Some("True")
    );
    assert!(condition(&d.status, "SuccessCriteriaMet").is_some());
    assert!(d.status.completion_time.is_some());
    assert_eq!(d.finished.map(|f| f.0), Some("Complete"));
}

#[test]
fn counts_never_go_down_when_finished_pods_are_deleted() {
    let job = with_status(
        job(json!({"completions": 3})),
        json!({"succeeded": 2, "failed": 1}),
    );
    let pods = [pod("c", "Running", None, None)];
    let d = decide(&job, &refs(&pods), now());
    assert_eq!(d.status.succeeded, Some(2));
    assert_eq!(d.status.failed, Some(1));
}

#[test]
fn failures_back_off_exponentially_before_a_replacement() {
    assert_eq!(backoff_delay(0), Duration::ZERO);
    assert_eq!(backoff_delay(1), Duration::from_secs(10));
    assert_eq!(backoff_delay(2), Duration::from_secs(20));
    assert_eq!(backoff_delay(3), Duration::from_secs(40));
    assert_eq!(backoff_delay(10), Duration::from_secs(360));

    // One failure 4 s ago: wait 6 s more.
    let pods = [pod("a", "Failed", None, Some(-4))];
    let d = decide(&job(json!({"completions": 1})), &refs(&pods), now());
    assert!(d.create.is_empty());
    assert_eq!(d.requeue_after, Some(Duration::from_secs(6)));
    assert_eq!(d.status.failed, Some(1));

    // Two failures, the last 25 s ago: 20 s are over, start the next.
    let pods = [
        pod("a", "Failed", None, Some(-40)),
        pod("b", "Failed", None, Some(-25)),
    ];
    let d = decide(&job(json!({"completions": 1})), &refs(&pods), now());
    assert_eq!(d.create, vec![None]);
}

#[test]
fn more_failures_than_the_backoff_limit_fail_the_job_and_stop_its_pods() {
    let pods = [
        pod("a", "Failed", None, Some(-40)),
        pod("b", "Failed", None, Some(-25)),
        pod("c", "Running", None, None),
    ];
    let d = decide(
        &job(json!({"completions": 2, "parallelism": 2, "backoffLimit": 1})),
        &refs(&pods),
        now(),
    );
    let failed = condition(&d.status, "Failed").expect("Failed condition");
    assert_eq!(failed.reason.as_deref(), Some("BackoffLimitExceeded"));
    assert_eq!(d.delete, vec!["c".to_owned()]);
    assert!(d.create.is_empty());
    assert_eq!(d.status.active, Some(0));
}

#[test]
fn on_failure_counts_container_restarts_against_the_limit() {
    let mut running = pod("a", "Running", None, None);
    running.status = Some(
        serde_json::from_value(json!({"phase": "Running", "containerStatuses": [
            {"name": "c", "image": "busybox", "imageID": "", "ready": false, "restartCount": 3}
        ]}))
        .expect("status"),
    );
    let mut job = job(json!({"backoffLimit": 2}));
    if let Some(spec) = job.spec.as_mut().and_then(|s| s.template.spec.as_mut()) {
        spec.restart_policy = Some("OnFailure".into());
    }
    let d = decide(&job, &[&running], now());
    assert_eq!(d.finished.map(|f| f.1), Some("BackoffLimitExceeded"));
}

#[test]
fn the_active_deadline_fails_the_job_and_is_waited_for() {
    let d = decide(&job(json!({"activeDeadlineSeconds": 100})), &[], now());
    assert_eq!(d.requeue_after, Some(Duration::from_secs(40)));
    assert!(d.finished.is_none());
    let pods = [pod("a", "Running", None, None)];
    let d = decide(
        &job(json!({"activeDeadlineSeconds": 30})),
        &refs(&pods),
        now(),
    );
    assert_eq!(d.finished.map(|f| f.1), Some("DeadlineExceeded"));
    assert_eq!(d.delete, vec!["a".to_owned()]);
}

#[test]
fn a_suspended_job_stops_its_pods_and_resuming_restarts_the_clock() {
    let pods = [pod("a", "Running", None, None)];
    let d = decide(&job(json!({"suspend": true})), &refs(&pods), now());
    assert_eq!(d.delete, vec!["a".to_owned()]);
    assert_eq!(
        condition(&d.status, "Suspended").map(|c| c.status.as_str()),
        Some("True")
    );
    assert_eq!(d.status.start_time, None);

    let mut resumed = job(json!({}));
    resumed.status = Some(d.status);
    let d = decide(&resumed, &[], now());
    assert_eq!(
        condition(&d.status, "Suspended").map(|c| c.status.as_str()),
        Some("False")
    );
    assert_eq!(d.status.start_time.map(|t| t.0), Some(now()));
    assert_eq!(d.create, vec![None]);
}

#[test]
fn without_completions_the_first_success_ends_the_job_once_the_rest_finish() {
    let pods = [
        pod("a", "Succeeded", None, Some(-3)),
        pod("b", "Running", None, None),
    ];
    let d = decide(&job(json!({"parallelism": 3})), &refs(&pods), now());
    assert!(d.create.is_empty(), "no new pods after a success");
    assert!(d.finished.is_none());
    let pods = [
        pod("a", "Succeeded", None, Some(-3)),
        pod("b", "Succeeded", None, Some(-1)),
    ];
    let d = decide(&job(json!({"parallelism": 3})), &refs(&pods), now());
    assert_eq!(d.finished.map(|f| f.0), Some("Complete"));
}

#[test]
fn indexed_jobs_run_each_missing_index_once() {
    let spec = json!({"completions": 5, "parallelism": 3, "completionMode": "Indexed"});
    let pods = [
        pod("a", "Succeeded", Some(0), Some(-3)),
        pod("b", "Running", Some(1), None),
        pod("b2", "Running", Some(1), None),
        pod("c", "Failed", Some(2), Some(-100)),
    ];
    let d = decide(&job(spec.clone()), &refs(&pods), now());
    assert_eq!(d.status.completed_indexes.as_deref(), Some("0"));
    assert_eq!(d.status.succeeded, Some(1));
    assert_eq!(d.delete.len(), 1, "one of the two pods of index 1 goes");
    assert_eq!(d.create, vec![Some(2), Some(3)]);

    let done: Vec<Pod> = (0..5)
        .map(|i| pod(&format!("p{i}"), "Succeeded", Some(i), Some(-1)))
        .collect();
    let d = decide(&job(spec), &refs(&done), now());
    assert_eq!(d.status.completed_indexes.as_deref(), Some("0-4"));
    assert_eq!(d.finished.map(|f| f.0), Some("Complete"));
}

#[test]
fn completed_indexes_round_trip() {
    let set: BTreeSet<i32> = [0, 1, 2, 5, 7, 8].into_iter().collect();
    assert_eq!(format_indexes(&set), "0-2,5,7-8");
    assert_eq!(parse_indexes("0-2,5,7-8"), set);
    assert_eq!(format_indexes(&BTreeSet::new()), "");
}

#[test]
fn a_finished_job_is_deleted_after_its_ttl() {
    let finished = with_status(
        job(json!({"ttlSecondsAfterFinished": 100})),
        json!({"completionTime": at(-30), "conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": at(-30)}
        ]}),
    );
    let d = decide(&finished, &[], now());
    assert!(!d.delete_job);
    assert_eq!(d.requeue_after, Some(Duration::from_secs(70)));
    let old = with_status(
        job(json!({"ttlSecondsAfterFinished": 10})),
        json!({"completionTime": at(-30), "conditions": [
            {"type": "Complete", "status": "True", "lastTransitionTime": at(-30)}
        ]}),
    );
    assert!(decide(&old, &[], now()).delete_job);
}
