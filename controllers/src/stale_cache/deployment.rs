//! Deployment syncs against a stale cache.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};
use tugboat_testkit::fake_api::FakeApi;

use super::{actions, cache, verbs};
use crate::deployment::DeploymentController;
use crate::deployment::util::{POD_TEMPLATE_HASH_LABEL, compute_hash};
use crate::framework::{ObjectKey, Reconciler};

const REPLICASETS: &str = "/apis/apps/v1/namespaces/default/replicasets";
const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments/web";

fn deployment(replicas: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "uid": "d-uid",
                     "generation": 1, "resourceVersion": "1"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
            }
        }
    })
}

fn fixture(
    server: &[Value],
    cached: &[Value],
    cached_rs: &[Value],
) -> (FakeApi, DeploymentController) {
    let (api, client) = FakeApi::new();
    for object in server {
        match object["kind"].as_str() {
            Some("Deployment") => {
                api.create(serde_json::from_value::<Deployment>(object.clone()).unwrap());
            }
            _ => api.create(serde_json::from_value::<ReplicaSet>(object.clone()).unwrap()),
        }
    }
    let controller = DeploymentController::with_caches(
        client,
        cache(cached),
        cache(cached_rs),
        cache::<Pod>(&[]),
    );
    (api, controller)
}

#[tokio::test]
async fn a_new_template_creates_one_replica_set_named_by_its_hash() {
    let d = deployment(3);
    let (api, controller) = fixture(std::slice::from_ref(&d), std::slice::from_ref(&d), &[]);
    let template = serde_json::from_value::<Deployment>(d.clone())
        .unwrap()
        .spec
        .unwrap()
        .template;
    let hash = compute_hash(&template, None);

    controller
        .sync(&ObjectKey::new("default", "web"))
        .await
        .unwrap();

    let actions = actions(&api);
    let creates: Vec<_> = actions
        .iter()
        .filter(|a| a.method == "POST" && a.path == REPLICASETS)
        .collect();
    assert_eq!(creates.len(), 1, "{:#?}", verbs(&actions));
    assert_eq!(verbs(&actions)[0], ("POST", REPLICASETS));
    let rs = &creates[0].body;
    assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
    assert_eq!(rs["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL], hash);
    assert_eq!(
        rs["spec"]["selector"]["matchLabels"][POD_TEMPLATE_HASH_LABEL],
        hash
    );
    assert_eq!(
        rs["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH_LABEL],
        hash
    );
    assert_eq!(
        rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
        "1"
    );
    assert_eq!(rs["metadata"]["ownerReferences"][0]["uid"], "d-uid");
    // Surge 1 over 0 existing pods allows all 3 at once on a fresh Deployment.
    assert_eq!(rs["spec"]["replicas"], 3);
    let rest: Vec<_> = verbs(&actions)[1..].to_vec();
    assert_eq!(
        rest,
        [
            ("PATCH", DEPLOYMENT),
            ("PUT", &*format!("{DEPLOYMENT}/status"))
        ],
        "then the revision annotation and the status"
    );
}

#[tokio::test]
async fn a_conflict_on_a_stale_replica_set_fails_the_sync_with_no_further_writes() {
    let mut d = deployment(3);
    // Rolled out at revision 1 when it had one replica; now scaled to 3.
    d["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "1"});
    let template = serde_json::from_value::<Deployment>(d.clone())
        .unwrap()
        .spec
        .unwrap()
        .template;
    let hash = compute_hash(&template, None);
    let mut labels = json!({"app": "web"});
    labels[POD_TEMPLATE_HASH_LABEL] = json!(hash);
    // Sized for 1 replica when the Deployment had 1: scaling the Deployment to 3 resizes it.
    let rs = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {
            "name": format!("web-{hash}"), "namespace": "default", "uid": "rs-uid",
            "resourceVersion": "1", "labels": labels,
            "annotations": {"deployment.kubernetes.io/revision": "1",
                            "deployment.kubernetes.io/desired-replicas": "1",
                            "deployment.kubernetes.io/max-replicas": "2"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web",
                                 "uid": "d-uid", "controller": true}]
        },
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}}
        },
        "status": {"replicas": 1}
    });
    let (api, controller) = fixture(
        &[d.clone(), rs.clone()],
        std::slice::from_ref(&d),
        std::slice::from_ref(&rs),
    );
    // The server's copy has moved on since the cache saw it.
    let rs_path = format!("{REPLICASETS}/web-{hash}");
    api.fail_next("PUT", &rs_path, 409);

    let result = controller.sync(&ObjectKey::new("default", "web")).await;

    let error = result.expect_err("a conflict must fail the sync so the key is requeued");
    assert!(
        error.to_string().contains("409") || format!("{error:?}").contains("Conflict"),
        "{error:?}"
    );
    let actions = actions(&api);
    assert_eq!(verbs(&actions), [("PUT", rs_path.as_str())]);
    assert_eq!(actions[0].body["spec"]["replicas"], 3);
}

#[tokio::test]
async fn a_replica_set_the_cache_has_not_seen_is_reused_not_duplicated() {
    let d = deployment(3);
    let (api, controller) = fixture(std::slice::from_ref(&d), std::slice::from_ref(&d), &[]);
    controller
        .sync(&ObjectKey::new("default", "web"))
        .await
        .unwrap();
    let before = actions(&api).len();

    // The ReplicaSet cache still lacks the set the first sync created.
    let result = controller.sync(&ObjectKey::new("default", "web")).await;

    assert!(result.is_ok(), "{result:?}");
    let after = actions(&api);
    let creates = after[before..]
        .iter()
        .filter(|a| a.method == "POST" && a.path == REPLICASETS)
        .count();
    assert_eq!(creates, 1, "{:#?}", verbs(&after[before..]));
    assert_eq!(
        api.objects("replicasets").len(),
        1,
        "one ReplicaSet on the server"
    );
}
