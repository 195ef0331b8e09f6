//! ReplicaSet (and ReplicationController) syncs against a stale cache.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use serde_json::{Value, json};
use tugboat_testkit::fake_api::FakeApi;

use super::{actions, cache, verbs};
use crate::framework::{ObjectKey, Reconciler};
use crate::replicaset::{ReplicaSetConfig, ReplicaSetController};

const PODS: &str = "/api/v1/namespaces/default/pods";
const RS_STATUS: &str = "/apis/apps/v1/namespaces/default/replicasets/web/status";

fn replica_set(replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web", "namespace": "default", "uid": "rs-uid",
                     "generation": 1, "resourceVersion": "1"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    })
}

/// A pod of the ReplicaSet `web`; `node` None leaves it unscheduled and Pending.
fn owned_pod(name: &str, node: Option<&str>) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default", "uid": format!("{name}-uid"),
            "resourceVersion": "1",
            "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
                                 "uid": "rs-uid", "controller": true}]
        },
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Pending"}
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
        pod["status"] = json!({"phase": "Running",
            "conditions": [{"type": "Ready", "status": "True"}]});
    }
    pod
}

/// The fake API holding `objects` (by plural), and a controller whose caches hold `cached_rs`
/// and `cached_pods` (which may disagree with the server).
fn fixture(
    server: &[(&str, &Value)],
    cached_rs: &[Value],
    cached_pods: &[Value],
) -> (FakeApi, ReplicaSetController<ReplicaSet>) {
    let (api, client) = FakeApi::new();
    for (resource, object) in server {
        seed(&api, resource, object);
    }
    let controller = ReplicaSetController::new(
        client,
        cache(cached_rs),
        cache::<Pod>(cached_pods),
        ReplicaSetConfig::default(),
    );
    (api, controller)
}

pub(super) fn seed(api: &FakeApi, resource: &str, object: &Value) {
    match resource {
        "replicasets" => api.create(serde_json::from_value::<ReplicaSet>(object.clone()).unwrap()),
        "replicationcontrollers" => {
            api.create(serde_json::from_value::<ReplicationController>(object.clone()).unwrap())
        }
        "pods" => api.create(serde_json::from_value::<Pod>(object.clone()).unwrap()),
        other => panic!("no seeding for {other}"),
    }
}

fn key() -> ObjectKey {
    ObjectKey::new("default", "web")
}

#[tokio::test]
async fn three_wanted_one_cached_creates_exactly_two_owned_pods() {
    let rs = replica_set(3);
    let pod = owned_pod("web-a", Some("n1"));
    let (api, controller) = fixture(
        &[("replicasets", &rs), ("pods", &pod)],
        std::slice::from_ref(&rs),
        std::slice::from_ref(&pod),
    );

    controller.sync(&key()).await.unwrap();

    let actions = actions(&api);
    assert_eq!(
        verbs(&actions),
        [("POST", PODS), ("POST", PODS), ("PUT", RS_STATUS)]
    );
    for create in &actions[..2] {
        assert_eq!(create.body["metadata"]["generateName"], "web-");
        assert_eq!(create.body["metadata"]["labels"]["app"], "web");
        let owner = &create.body["metadata"]["ownerReferences"][0];
        assert_eq!(
            (
                &owner["kind"],
                &owner["name"],
                &owner["uid"],
                &owner["controller"]
            ),
            (
                &json!("ReplicaSet"),
                &json!("web"),
                &json!("rs-uid"),
                &json!(true)
            )
        );
    }
    // The status counts what the cache showed, not the pods just created.
    assert_eq!(actions[2].body["status"]["replicas"], 1);
    assert_eq!(actions[2].body["status"]["observedGeneration"], 1);
}

#[tokio::test]
async fn creations_not_yet_seen_in_the_cache_are_not_created_again() {
    let rs = replica_set(3);
    let (api, controller) = fixture(&[("replicasets", &rs)], std::slice::from_ref(&rs), &[]);

    controller.sync(&key()).await.unwrap();
    let creates = |api: &FakeApi| {
        actions(api)
            .iter()
            .filter(|a| a.method == "POST" && a.path == PODS)
            .count()
    };
    assert_eq!(creates(&api), 3);

    // The pod cache has not caught up (no watch runs here): the expectations hold the sync
    // back instead of creating three more pods.
    controller.sync(&key()).await.unwrap();
    controller.sync(&key()).await.unwrap();
    assert_eq!(creates(&api), 3, "{:#?}", verbs(&actions(&api)));
}

#[tokio::test]
async fn a_cached_pod_the_server_already_deleted_does_not_fail_the_sync() {
    let rs = replica_set(1);
    let running = owned_pod("web-a", Some("n1"));
    // Pending and unscheduled: the cheapest to delete. The server no longer has it.
    let gone = owned_pod("web-b", None);
    let (api, controller) = fixture(
        &[("replicasets", &rs), ("pods", &running)],
        std::slice::from_ref(&rs),
        &[running.clone(), gone],
    );

    let result = controller.sync(&key()).await;

    assert!(
        result.is_ok(),
        "a 404 on delete must not requeue: {result:?}"
    );
    let actions = actions(&api);
    let deletes: Vec<_> = verbs(&actions)
        .into_iter()
        .filter(|(method, _)| *method == "DELETE")
        .collect();
    assert_eq!(
        deletes,
        [("DELETE", "/api/v1/namespaces/default/pods/web-b")]
    );
    assert!(api.pod("default/web-a").is_some(), "the running pod stays");

    // The 404 counts as the deletion observed: the next sync is not held back waiting for it,
    // and still sees (stale) two pods, so it tries again rather than hanging.
    controller.sync(&key()).await.unwrap();
    let deletes = verbs(&super::actions(&api))
        .into_iter()
        .filter(|(method, _)| *method == "DELETE")
        .count();
    assert_eq!(deletes, 2);
}

#[tokio::test]
async fn a_replication_controller_gets_one_pod_created() {
    let rc = json!({
        "apiVersion": "v1", "kind": "ReplicationController",
        "metadata": {"name": "web", "namespace": "default", "uid": "rc-uid",
                     "generation": 1, "resourceVersion": "1"},
        "spec": {
            "replicas": 1,
            "selector": {"app": "web"},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    });
    let (api, client) = FakeApi::new();
    seed(&api, "replicationcontrollers", &rc);
    let controller = ReplicaSetController::<ReplicationController>::new(
        client,
        cache(std::slice::from_ref(&rc)),
        cache(&[]),
        ReplicaSetConfig::default(),
    );

    controller.sync(&key()).await.unwrap();

    let actions = actions(&api);
    assert_eq!(
        verbs(&actions),
        [
            ("POST", PODS),
            (
                "PUT",
                "/api/v1/namespaces/default/replicationcontrollers/web/status"
            )
        ]
    );
    let owner = &actions[0].body["metadata"]["ownerReferences"][0];
    assert_eq!(owner["kind"], "ReplicationController");
    assert_eq!(owner["apiVersion"], "v1");
    assert_eq!(owner["uid"], "rc-uid");
    assert_eq!(actions[1].body["status"]["replicas"], 0);
}

#[tokio::test]
async fn a_terminating_pod_is_replaced_once() {
    let rs = replica_set(2);
    let running = owned_pod("web-a", Some("n1"));
    let mut terminating = owned_pod("web-b", Some("n2"));
    terminating["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    let (api, controller) = fixture(
        &[
            ("replicasets", &rs),
            ("pods", &running),
            ("pods", &terminating),
        ],
        std::slice::from_ref(&rs),
        &[running.clone(), terminating.clone()],
    );

    controller.sync(&key()).await.unwrap();
    // The replacement has not reached the cache yet: a second sync must not add another.
    controller.sync(&key()).await.unwrap();

    let actions = actions(&api);
    let pod_writes: Vec<_> = verbs(&actions)
        .into_iter()
        .filter(|(_, path)| path.starts_with(PODS))
        .collect();
    // A pod being deleted no longer counts (as upstream): one replacement, and no delete.
    assert_eq!(pod_writes, [("POST", PODS)]);
}
