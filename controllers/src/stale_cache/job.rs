//! Job syncs against a stale cache.

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tugboat_testkit::fake_api::FakeApi;

use super::{actions, cache, verbs};
use crate::framework::{ObjectKey, Reconciler};
use crate::job::{JobConfig, JobController};

const PODS: &str = "/api/v1/namespaces/default/pods";
const JOB_STATUS: &str = "/apis/batch/v1/namespaces/default/jobs/work/status";
const UID_LABEL: &str = "batch.kubernetes.io/controller-uid";

fn job() -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "work", "namespace": "default", "uid": "job-uid",
                     "resourceVersion": "1"},
        "spec": {
            "parallelism": 2,
            "completions": 3,
            "selector": {"matchLabels": {UID_LABEL: "job-uid"}},
            "template": {
                "metadata": {"labels": {UID_LABEL: "job-uid"}},
                "spec": {"restartPolicy": "Never",
                         "containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    })
}

fn job_pod(name: &str, phase: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default", "uid": format!("{name}-uid"),
            "resourceVersion": "1", "labels": {UID_LABEL: "job-uid"},
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": "work",
                                 "uid": "job-uid", "controller": true}]
        },
        "spec": {"restartPolicy": "Never", "nodeName": "n1",
                 "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": phase}
    })
}

fn fixture(pods: &[Value]) -> (FakeApi, JobController) {
    let (api, client) = FakeApi::new();
    let job = job();
    api.create(serde_json::from_value::<Job>(job.clone()).unwrap());
    for pod in pods {
        api.create(serde_json::from_value::<Pod>(pod.clone()).unwrap());
    }
    let controller = JobController::new(
        client,
        cache(std::slice::from_ref(&job)),
        cache(pods),
        JobConfig::default(),
    );
    (api, controller)
}

#[tokio::test]
async fn parallelism_two_of_three_completions_starts_two_pods() {
    let (api, controller) = fixture(&[]);

    controller
        .sync(&ObjectKey::new("default", "work"))
        .await
        .unwrap();

    let actions = actions(&api);
    assert_eq!(
        verbs(&actions),
        [("POST", PODS), ("POST", PODS), ("PUT", JOB_STATUS)]
    );
    for create in &actions[..2] {
        assert_eq!(create.body["metadata"]["generateName"], "work-");
        assert_eq!(create.body["metadata"]["labels"][UID_LABEL], "job-uid");
        assert_eq!(
            create.body["metadata"]["ownerReferences"][0]["uid"],
            "job-uid"
        );
        assert_eq!(
            create.body["metadata"]["ownerReferences"][0]["controller"],
            true
        );
    }
    assert!(actions[2].body["status"]["startTime"].is_string());
}

#[tokio::test]
async fn a_succeeded_pod_in_the_cache_is_counted_in_the_status() {
    let (api, controller) = fixture(&[job_pod("work-a", "Succeeded")]);

    controller
        .sync(&ObjectKey::new("default", "work"))
        .await
        .unwrap();

    let actions = actions(&api);
    // Two completions left, two at a time.
    assert_eq!(
        verbs(&actions),
        [("POST", PODS), ("POST", PODS), ("PUT", JOB_STATUS)]
    );
    let status = &actions[2].body["status"];
    assert_eq!(status["succeeded"], 1, "{status:#}");
    assert!(
        status["failed"].is_null() || status["failed"] == 0,
        "{status:#}"
    );
}
