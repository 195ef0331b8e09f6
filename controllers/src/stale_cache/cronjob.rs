//! CronJob syncs against a stale cache, with a fixed clock.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use serde_json::{Value, json};
use tugboat_testkit::fake_api::FakeApi;

use super::{actions, cache, verbs};
use crate::cronjob::CronJobController;
use crate::framework::{ObjectKey, Reconciler};

const JOBS: &str = "/apis/batch/v1/namespaces/default/jobs";
const STATUS: &str = "/apis/batch/v1/namespaces/default/cronjobs/report/status";

fn cron_job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "report", "namespace": "default", "uid": "cj-uid",
                     "resourceVersion": "1", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "schedule": "*/5 * * * *",
            "jobTemplate": {
                "metadata": {"labels": {"app": "report"}},
                "spec": {"template": {"spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "busybox"}]
                }}}
            }
        }
    })
}

/// Thirty seconds after the 00:05 run fell due.
fn half_past_five() -> Timestamp {
    "2026-01-01T00:05:30Z".parse().expect("a timestamp")
}

fn fixture(cached_jobs: &[Value]) -> (FakeApi, CronJobController) {
    let (api, client) = FakeApi::new();
    api.create(serde_json::from_value::<CronJob>(cron_job()).unwrap());
    let controller = CronJobController::with_caches(
        client,
        cache(&[cron_job()]),
        cache::<Job>(cached_jobs),
        half_past_five,
    );
    (api, controller)
}

#[tokio::test]
async fn a_due_schedule_creates_one_job_named_for_its_minute() {
    let (api, controller) = fixture(&[]);

    controller
        .sync(&ObjectKey::new("default", "report"))
        .await
        .unwrap();

    let actions = actions(&api);
    assert_eq!(verbs(&actions), [("POST", JOBS), ("PUT", STATUS)]);
    let job = &actions[0].body;
    // 2026-01-01T00:05:00Z is minute 29453765 of the Unix epoch.
    assert_eq!(job["metadata"]["name"], "report-29453765");
    assert_eq!(job["metadata"]["labels"]["app"], "report");
    assert_eq!(
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"],
        "2026-01-01T00:05:00Z"
    );
    assert_eq!(job["metadata"]["ownerReferences"][0]["uid"], "cj-uid");
    let status = &actions[1].body["status"];
    assert_eq!(status["lastScheduleTime"], "2026-01-01T00:05:00Z");
    assert_eq!(status["active"][0]["name"], "report-29453765");
}

#[tokio::test]
async fn a_job_the_stale_cache_has_not_seen_yet_is_not_started_twice() {
    // The job was created by an earlier sync, but the job cache has not caught up: the create
    // answers 409 and no second Job appears.
    let (api, controller) = fixture(&[]);
    controller
        .sync(&ObjectKey::new("default", "report"))
        .await
        .unwrap();
    let before = actions(&api).len();

    controller
        .sync(&ObjectKey::new("default", "report"))
        .await
        .unwrap();

    let after = actions(&api);
    let creates: Vec<_> = after[before..]
        .iter()
        .filter(|a| a.method == "POST" && a.path == JOBS)
        .collect();
    assert_eq!(creates.len(), 1, "{:#?}", verbs(&after[before..]));
    assert_eq!(api.objects("jobs").len(), 1, "still one Job on the server");
}
