//! StatefulSet syncs against a stale cache.

use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tugboat_testkit::fake_api::FakeApi;

use super::{actions, cache, verbs};
use crate::framework::{ObjectKey, Reconciler};
use crate::statefulset::StatefulSetController;

const PODS: &str = "/api/v1/namespaces/default/pods";
const REVISIONS: &str = "/apis/apps/v1/namespaces/default/controllerrevisions";
const STATUS: &str = "/apis/apps/v1/namespaces/default/statefulsets/db/status";

fn stateful_set() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "db", "namespace": "default", "uid": "sts-uid",
                     "generation": 1, "resourceVersion": "1"},
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": "db"}},
            "template": {
                "metadata": {"labels": {"app": "db"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    })
}

fn controller(client: kube::Client, pods: &[Value], revisions: &[Value]) -> StatefulSetController {
    StatefulSetController::with_caches(
        client,
        cache::<StatefulSet>(&[stateful_set()]),
        cache::<Pod>(pods),
        cache::<ControllerRevision>(revisions),
    )
}

#[tokio::test]
async fn ordered_ready_creates_pod_zero_only_then_pod_one_once_zero_is_ready() {
    let (api, client) = FakeApi::new();
    api.create(serde_json::from_value::<StatefulSet>(stateful_set()).unwrap());
    let key = ObjectKey::new("default", "db");

    controller(client.clone(), &[], &[])
        .sync(&key)
        .await
        .unwrap();

    let first = actions(&api);
    assert_eq!(
        verbs(&first),
        [("POST", REVISIONS), ("POST", PODS), ("PUT", STATUS)]
    );
    assert_eq!(first[1].body["metadata"]["name"], "db-0");
    assert_eq!(first[1].body["spec"]["hostname"], "db-0");
    assert_eq!(first[1].body["spec"]["subdomain"], "db");
    assert_eq!(
        first[1].body["metadata"]["ownerReferences"][0]["uid"],
        "sts-uid"
    );

    // The cache catches up: the revision, and pod-0 now Running and Ready.
    let revisions = api.objects("controllerrevisions");
    let mut pod0 = api.objects("pods").remove(0);
    pod0["status"] = json!({"phase": "Running",
        "conditions": [{"type": "Ready", "status": "True"}]});
    controller(client, &[pod0], &revisions)
        .sync(&key)
        .await
        .unwrap();

    let second = actions(&api);
    let second = &second[first.len()..];
    assert_eq!(verbs(second), [("POST", PODS), ("PUT", STATUS)]);
    assert_eq!(second[0].body["metadata"]["name"], "db-1");
}

#[tokio::test]
async fn ordered_ready_waits_while_pod_zero_is_not_ready() {
    let (api, client) = FakeApi::new();
    api.create(serde_json::from_value::<StatefulSet>(stateful_set()).unwrap());
    let key = ObjectKey::new("default", "db");
    controller(client.clone(), &[], &[])
        .sync(&key)
        .await
        .unwrap();
    let before = actions(&api).len();

    // pod-0 exists but is still Pending: nothing more is created.
    let revisions = api.objects("controllerrevisions");
    let mut pod0 = api.objects("pods").remove(0);
    pod0["status"] = json!({"phase": "Pending"});
    controller(client, &[pod0], &revisions)
        .sync(&key)
        .await
        .unwrap();

    let after = actions(&api);
    assert!(
        after[before..].iter().all(|a| a.method != "POST"),
        "{:#?}",
        verbs(&after[before..])
    );
}
