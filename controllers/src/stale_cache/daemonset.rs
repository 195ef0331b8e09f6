//! DaemonSet syncs against a stale cache.

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};
use tugboat_testkit::fake_api::FakeApi;

use super::{actions, cache, verbs};
use crate::daemonset::DaemonSetController;
use crate::framework::history::template_hash;
use crate::framework::{ObjectKey, Reconciler};

fn daemon_set() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default", "uid": "ds-uid",
                     "generation": 1, "resourceVersion": "1"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]}
            }
        }
    })
}

fn ready_node(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "uid": format!("{name}-uid"), "resourceVersion": "1"},
        "status": {"conditions": [{"type": "Ready", "status": "True"}]}
    })
}

#[tokio::test]
async fn two_eligible_nodes_and_one_pod_create_exactly_the_missing_pod() {
    let ds = daemon_set();
    let typed: DaemonSet = serde_json::from_value(ds.clone()).unwrap();
    let hash = template_hash(&typed.spec.as_ref().unwrap().template, None);
    let pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": "agent-n1", "namespace": "default", "uid": "p1-uid", "resourceVersion": "1",
            "labels": {"app": "agent", "controller-revision-hash": hash,
                       "pod-template-generation": "1"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "DaemonSet", "name": "agent",
                                 "uid": "ds-uid", "controller": true}]
        },
        "spec": {"nodeName": "n1", "containers": [{"name": "c", "image": "busybox"}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}
    });
    let (api, client) = FakeApi::new();
    api.create(typed);
    api.create(serde_json::from_value::<Pod>(pod.clone()).unwrap());
    let controller = DaemonSetController::with_caches(
        client,
        cache(std::slice::from_ref(&ds)),
        cache(std::slice::from_ref(&pod)),
        cache::<Node>(&[ready_node("n1"), ready_node("n2")]),
        cache::<ControllerRevision>(&[]),
    );

    controller
        .sync(&ObjectKey::new("default", "agent"))
        .await
        .unwrap();

    let actions = actions(&api);
    assert_eq!(
        verbs(&actions),
        [
            (
                "POST",
                "/apis/apps/v1/namespaces/default/controllerrevisions"
            ),
            ("POST", "/api/v1/namespaces/default/pods"),
            (
                "PUT",
                "/apis/apps/v1/namespaces/default/daemonsets/agent/status"
            ),
        ]
    );
    let revision = &actions[0].body;
    assert_eq!(
        revision["metadata"]["labels"]["controller-revision-hash"],
        hash
    );
    assert_eq!(revision["revision"], 1);
    let created = &actions[1].body;
    let pinned = &created["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        ["nodeSelectorTerms"][0]["matchFields"][0];
    assert_eq!(pinned["key"], "metadata.name");
    assert_eq!(pinned["values"], json!(["n2"]));
    assert_eq!(
        created["metadata"]["labels"]["controller-revision-hash"],
        hash
    );
    assert_eq!(created["metadata"]["ownerReferences"][0]["uid"], "ds-uid");
    let status = &actions[2].body["status"];
    assert_eq!(status["desiredNumberScheduled"], 2);
    assert_eq!(status["currentNumberScheduled"], 1);
}
