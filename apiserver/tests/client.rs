//! kube-rs against an in-process API server over HTTPS with the admin token, as a remote
//! component would talk to it: CRUD, conflicts, pagination, watch, status and scale,
//! bindings and graceful deletion, Service allocation, namespaces, authentication.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Service};
use kube::api::{
    DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, Running, StoreConfig};

struct Server {
    client: Client,
    running: Option<Running>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ApiServerConfig::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".parse().unwrap();
        config.store = StoreConfig::Memory;
        let shutdown = CancellationToken::new();
        let running = tugboat_apiserver::start(config, shutdown.clone())
            .await
            .unwrap();
        let client =
            tugboat_testkit::kube::client(&running.url, &running.ca_pem, &running.admin_token)
                .unwrap();
        Server {
            client,
            running: Some(running),
            shutdown,
            _dir: dir,
        }
    }

    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(running) = self.running.take() {
            tokio::time::timeout(Duration::from_secs(20), running.stopped())
                .await
                .expect("server did not stop");
        }
    }
}

fn configmap(name: &str, value: &str) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "app": "demo" } },
        "data": { "key": value },
    }))
    .unwrap()
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "main", "image": "busybox" }] },
            },
        },
    }))
    .unwrap()
}

fn api_code(err: &kube::Error) -> Option<(u16, String)> {
    match err {
        kube::Error::Api(s) => Some((s.code, s.reason.clone())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_with_optimistic_concurrency() {
    let server = Server::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");

    let created = api
        .create(&PostParams::default(), &configmap("one", "a"))
        .await
        .unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    assert!(created.metadata.creation_timestamp.is_some());
    let first_rv = created.metadata.resource_version.clone().unwrap();

    let err = api
        .create(&PostParams::default(), &configmap("one", "a"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some((409, "AlreadyExists".into())));

    let mut fetched = api.get("one").await.unwrap();
    assert_eq!(fetched.metadata.uid.as_deref(), Some(uid.as_str()));
    fetched
        .data
        .as_mut()
        .unwrap()
        .insert("key".into(), "b".into());
    let replaced = api
        .replace("one", &PostParams::default(), &fetched)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(first_rv.as_str())
    );

    // The stale version loses and changes nothing.
    let mut stale = created.clone();
    stale
        .data
        .as_mut()
        .unwrap()
        .insert("key".into(), "c".into());
    let err = api
        .replace("one", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    assert_eq!(api_code(&err), Some((409, "Conflict".into())));
    assert_eq!(api.get("one").await.unwrap().data.unwrap()["key"], "b");

    let patched = api
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"extra": "x"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.unwrap()["extra"], "x");

    let listed = api
        .list(&ListParams::default().labels("app=demo"))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    let none = api
        .list(&ListParams::default().labels("app notin (demo)"))
        .await
        .unwrap();
    // Only the namespace's own kube-root-ca.crt (it has no labels).
    let names: Vec<_> = none.items.iter().map(|c| c.metadata.name.clone()).collect();
    assert_eq!(names, [Some("kube-root-ca.crt".to_owned())]);

    api.delete("one", &DeleteParams::default()).await.unwrap();
    let err = api.get("one").await.unwrap_err();
    assert_eq!(api_code(&err), Some((404, "NotFound".into())));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pagination_walks_every_object_once() {
    let server = Server::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    for i in 0..25 {
        api.create(
            &PostParams::default(),
            &configmap(&format!("cm-{i:02}"), "v"),
        )
        .await
        .unwrap();
    }
    let mut names = Vec::new();
    let mut params = ListParams::default().limit(10);
    let mut pages = 0;
    loop {
        let page = api.list(&params).await.unwrap();
        pages += 1;
        names.extend(page.items.iter().map(|c| c.metadata.name.clone().unwrap()));
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    // Ours and the namespace's kube-root-ca.crt.
    assert_eq!(pages, 3);
    assert_eq!(names.len(), 26);
    names.dedup();
    assert_eq!(names.len(), 26);
    assert!(names.iter().any(|n| n == "kube-root-ca.crt"));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_sees_every_change_in_order() {
    let server = Server::start().await;
    let api: Api<ConfigMap> = Api::namespaced(server.client.clone(), "default");
    let list = api.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let mut stream = api
        .watch(&WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();

    api.create(&PostParams::default(), &configmap("w", "1"))
        .await
        .unwrap();
    api.patch(
        "w",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"key": "2"}})),
    )
    .await
    .unwrap();
    api.delete("w", &DeleteParams::default()).await.unwrap();

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.try_next())
            .await
            .expect("watch event in time")
            .unwrap()
            .expect("stream open");
        let value = |cm: ConfigMap| cm.data.unwrap()["key"].clone();
        match event {
            WatchEvent::Added(cm) => seen.push(("ADDED", value(cm))),
            WatchEvent::Modified(cm) => seen.push(("MODIFIED", value(cm))),
            WatchEvent::Deleted(cm) => seen.push(("DELETED", value(cm))),
            WatchEvent::Bookmark(_) => {}
            WatchEvent::Error(err) => panic!("unexpected error event {err:?}"),
        }
    }
    assert_eq!(
        seen,
        vec![
            ("ADDED", "1".to_string()),
            ("MODIFIED", "2".into()),
            ("DELETED", "2".into())
        ]
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_spec_are_written_apart() {
    let server = Server::start().await;
    let api: Api<Deployment> = Api::namespaced(server.client.clone(), "default");
    let created = api
        .create(&PostParams::default(), &deployment("web", 2))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let spec = created.spec.clone().unwrap();
    assert_eq!(spec.revision_history_limit, Some(10));
    assert_eq!(spec.progress_deadline_seconds, Some(600));

    // A status write cannot change the spec.
    let status_patch =
        json!({"spec": {"replicas": 9}, "status": {"replicas": 2, "observedGeneration": 1}});
    let after = api
        .patch_status("web", &PatchParams::default(), &Patch::Merge(status_patch))
        .await
        .unwrap();
    assert_eq!(after.spec.unwrap().replicas, Some(2));
    assert_eq!(after.status.as_ref().unwrap().replicas, Some(2));
    assert_eq!(after.metadata.generation, Some(1));

    // A spec write cannot change the status, and bumps the generation.
    let spec_patch = json!({"spec": {"replicas": 3}, "status": {"replicas": 7}});
    let after = api
        .patch("web", &PatchParams::default(), &Patch::Merge(spec_patch))
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(2));
    assert_eq!(after.status.unwrap().replicas, Some(2));

    // Metadata-only changes keep the generation.
    let labels = json!({"metadata": {"labels": {"x": "y"}}});
    let after = api
        .patch("web", &PatchParams::default(), &Patch::Merge(labels))
        .await
        .unwrap();
    assert_eq!(after.metadata.generation, Some(2));

    // The scale subresource speaks autoscaling/v1 Scale and writes spec.replicas.
    let scale = api.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(3));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    api.patch_scale(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 5}})),
    )
    .await
    .unwrap();
    assert_eq!(
        api.get("web").await.unwrap().spec.unwrap().replicas,
        Some(5)
    );

    // Validation: 422 naming the field.
    let err = api
        .patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": -1}})),
        )
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "{s:?}");
            assert!(s.message.contains("spec.replicas"), "{}", s.message);
        }
        other => panic!("{other:?}"),
    }
    server.stop().await;
}

fn http_post(path: &str, body: &serde_json::Value) -> http::Request<Vec<u8>> {
    http::Request::post(path)
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_bind_once_and_delete_gracefully() {
    let server = Server::start().await;
    let api: Api<Pod> = Api::namespaced(server.client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "generateName": "p-" },
        "spec": { "containers": [{ "name": "c", "image": "busybox" }] },
    }))
    .unwrap();
    let created = api.create(&PostParams::default(), &pod).await.unwrap();
    let name = created.metadata.name.clone().unwrap();
    assert!(name.starts_with("p-") && name.len() == 7, "{name}");
    let status = created.status.as_ref().unwrap();
    assert_eq!(status.phase.as_deref(), Some("Pending"));
    assert_eq!(status.qos_class.as_deref(), Some("BestEffort"));
    assert_eq!(
        created.spec.as_ref().unwrap().restart_policy.as_deref(),
        Some("Always")
    );

    let binding = json!({
        "apiVersion": "v1", "kind": "Binding",
        "metadata": { "name": name },
        "target": { "apiVersion": "v1", "kind": "Node", "name": "node-1" },
    });
    let path = format!("/api/v1/namespaces/default/pods/{name}/binding");
    server
        .client
        .request_text(http_post(&path, &binding))
        .await
        .unwrap();
    let bound = api.get(&name).await.unwrap();
    assert_eq!(bound.spec.unwrap().node_name.as_deref(), Some("node-1"));
    let scheduled = bound
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(scheduled.status, "True");
    assert!(
        server
            .client
            .request_text(http_post(&path, &binding))
            .await
            .is_err(),
        "a second binding must fail"
    );

    // A bound pod is deleted gracefully: it stays, with a deletion timestamp.
    api.delete(&name, &DeleteParams::default()).await.unwrap();
    let terminating = api.get(&name).await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.metadata.deletion_grace_period_seconds, Some(30));
    // Its node agent finishes with a zero grace period.
    let now = DeleteParams {
        grace_period_seconds: Some(0),
        ..DeleteParams::default()
    };
    api.delete(&name, &now).await.unwrap();
    assert!(api.get_opt(&name).await.unwrap().is_none());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_get_unique_cluster_ips_and_node_ports() {
    let server = Server::start().await;
    let api: Api<Service> = Api::namespaced(server.client.clone(), "default");
    let mut ips = std::collections::HashSet::new();
    for i in 0..5 {
        let svc: Service = serde_json::from_value(json!({
            "metadata": { "name": format!("s{i}") },
            "spec": { "type": "NodePort", "selector": { "app": "x" }, "ports": [{ "port": 80 }] },
        }))
        .unwrap();
        let created = api.create(&PostParams::default(), &svc).await.unwrap();
        let spec = created.spec.unwrap();
        let ip = spec.cluster_ip.unwrap();
        assert!(ip.starts_with("10.96."), "{ip}");
        assert!(ips.insert(ip));
        let port = spec.ports.unwrap()[0].node_port.unwrap();
        assert!((30000..=32767).contains(&port));
    }
    // The ClusterIP is immutable.
    let err = api
        .patch(
            "s0",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"clusterIP": "10.96.9.9"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(&err).map(|c| c.0), Some(422), "{err:?}");
    // A freed address can be asked for again; a taken one cannot.
    let taken = api
        .get("s1")
        .await
        .unwrap()
        .spec
        .unwrap()
        .cluster_ip
        .unwrap();
    let asking = |name: &str| -> Service {
        serde_json::from_value(json!({
            "metadata": { "name": name },
            "spec": { "clusterIP": taken, "ports": [{ "port": 80 }] },
        }))
        .unwrap()
    };
    let err = api
        .create(&PostParams::default(), &asking("clash"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err).map(|c| c.0), Some(422), "{err:?}");
    api.delete("s1", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &asking("again"))
        .await
        .unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_gate_creation_and_terminate() {
    let server = Server::start().await;
    let nowhere: Api<ConfigMap> = Api::namespaced(server.client.clone(), "nowhere");
    let err = nowhere
        .create(&PostParams::default(), &configmap("x", "y"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err).map(|c| c.0), Some(404), "{err:?}");

    let namespaces: Api<Namespace> = Api::all(server.client.clone());
    for system in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        namespaces.get(system).await.unwrap();
    }
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "team"}})).unwrap();
    let created = namespaces
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    assert_eq!(created.status.unwrap().phase.as_deref(), Some("Active"));
    let accounts: Api<k8s_openapi::api::core::v1::ServiceAccount> =
        Api::namespaced(server.client.clone(), "team");
    accounts
        .get("default")
        .await
        .expect("a default ServiceAccount");
    namespaces
        .delete("team", &DeleteParams::default())
        .await
        .unwrap();
    let terminating = namespaces.get("team").await.unwrap();
    assert_eq!(
        terminating.status.unwrap().phase.as_deref(),
        Some("Terminating")
    );
    let inside: Api<ConfigMap> = Api::namespaced(server.client.clone(), "team");
    let err = inside
        .create(&PostParams::default(), &configmap("x", "y"))
        .await
        .unwrap_err();
    assert_eq!(api_code(&err).map(|c| c.0), Some(403), "{err:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_token_are_refused() {
    let server = Server::start().await;
    let running = server.running.as_ref().unwrap();
    let anonymous = tugboat_testkit::kube::client(&running.url, &running.ca_pem, "wrong").unwrap();
    let api: Api<ConfigMap> = Api::namespaced(anonymous.clone(), "default");
    let err = api.list(&ListParams::default()).await.unwrap_err();
    assert_eq!(api_code(&err).map(|c| c.0), Some(401), "{err:?}");
    let version = anonymous.apiserver_version().await.unwrap();
    assert_eq!(
        (version.major.as_str(), version.minor.as_str()),
        ("1", "32")
    );
    server.stop().await;
}
