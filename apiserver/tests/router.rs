//! The router over the memory store, request by request with `oneshot`: content types, error
//! paths and the exact Status bodies kubectl prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::body::Body;
use common::{Answer, Fixture, fixture};
use http::{Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;

async fn send(
    f: &Fixture,
    method: Method,
    uri: &str,
    content_type: &str,
    body: impl Into<Body>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(uri);
    if !content_type.is_empty() {
        request = request.header("content-type", content_type);
    }
    common::respond(f, request.body(body.into()).unwrap()).await
}

async fn get(f: &Fixture, uri: &str) -> Answer {
    send(f, Method::GET, uri, "", Body::empty()).await
}

async fn post_json(f: &Fixture, uri: &str, body: &Value) -> Answer {
    send(
        f,
        Method::POST,
        uri,
        "application/json",
        serde_json::to_vec(body).unwrap(),
    )
    .await
}

fn assert_status(answer: &Answer, code: u16, reason: &str) {
    assert_eq!(answer.code.as_u16(), code, "{}", answer.body);
    assert_eq!(answer.body["kind"], "Status", "{}", answer.body);
    assert_eq!(answer.body["apiVersion"], "v1");
    assert_eq!(answer.body["code"], code);
    assert_eq!(answer.body["reason"], reason, "{}", answer.body);
}

const CONFIGMAPS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYMENTS: &str = "/apis/apps/v1/namespaces/default/deployments";

#[tokio::test]
async fn version_and_health() {
    let f = fixture().await;
    let version = get(&f, "/version").await;
    assert_eq!(version.body["major"], "1");
    assert_eq!(version.body["minor"], "32");
    for path in ["/healthz", "/livez", "/readyz"] {
        let answer = get(&f, path).await;
        assert_eq!(answer.code, StatusCode::OK, "{path}");
        assert_eq!(answer.body, "ok");
    }
    let metrics = get(&f, "/metrics").await;
    assert!(
        metrics
            .body
            .as_str()
            .unwrap()
            .contains("apiserver_request_total")
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_are_statuses() {
    let f = fixture().await;
    assert_status(
        &get(&f, "/api/v1/namespaces/default/widgets").await,
        404,
        "NotFound",
    );
    assert_status(
        &get(&f, "/api/v1/namespaces/default/configmaps/missing").await,
        404,
        "NotFound",
    );
    let missing = get(&f, "/api/v1/namespaces/default/configmaps/missing").await;
    assert_eq!(missing.body["message"], "configmaps \"missing\" not found");
    let put_collection = send(&f, Method::PUT, CONFIGMAPS, "application/json", "{}").await;
    assert_status(&put_collection, 405, "MethodNotAllowed");
}

#[tokio::test]
async fn bodies_in_json_yaml_and_protobuf() {
    let f = fixture().await;
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\ndata:\n  a: b\n";
    let answer = send(&f, Method::POST, CONFIGMAPS, "application/yaml", yaml).await;
    assert_eq!(answer.code, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["data"]["a"], "b");

    // A body kubectl 1.32 sent for `kubectl create deployment web --image=busybox`.
    let pb = include_bytes!("../../api/src/protobuf/testdata/deployment.pb").to_vec();
    let answer = send(
        &f,
        Method::POST,
        DEPLOYMENTS,
        "application/vnd.kubernetes.protobuf",
        pb,
    )
    .await;
    assert_eq!(answer.code, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["metadata"]["name"], "web");
    assert_eq!(
        answer.body["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults applied"
    );

    // No Content-Type reads as JSON.
    let answer = send(
        &f,
        Method::POST,
        CONFIGMAPS,
        "",
        r#"{"metadata":{"name":"untyped"}}"#,
    )
    .await;
    assert_eq!(answer.code, StatusCode::CREATED, "{}", answer.body);

    let answer = send(
        &f,
        Method::POST,
        CONFIGMAPS,
        "application/json",
        "{not json",
    )
    .await;
    assert_status(&answer, 400, "BadRequest");
    let answer = send(&f, Method::POST, CONFIGMAPS, "text/plain", "x").await;
    assert_status(&answer, 415, "UnsupportedMediaType");
}

#[tokio::test]
async fn oversized_bodies_get_413_and_change_nothing() {
    let f = fixture().await;
    let big = vec![b' '; 3 * 1024 * 1024 + 1];
    let answer = send(&f, Method::POST, CONFIGMAPS, "application/json", big).await;
    assert_status(&answer, 413, "RequestEntityTooLarge");

    // Under the body limit but over the 1.5 MiB object limit: still 413.
    let arg = "x".repeat(800 * 1024);
    let pod = json!({"metadata": {"name": "huge"}, "spec": {"containers": [
        {"name": "a", "image": "busybox", "args": [arg]},
        {"name": "b", "image": "busybox", "args": [arg]},
    ]}});
    let pods = "/api/v1/namespaces/default/pods";
    let answer = post_json(&f, pods, &pod).await;
    assert_eq!(answer.code.as_u16(), 413, "{}", answer.body);
    assert_status(&get(&f, &format!("{pods}/huge")).await, 404, "NotFound");

    // A ConfigMap's own limit is 1 MiB of data: 422 as upstream.
    let value = "x".repeat(1024 * 1024 + 1);
    let answer = post_json(
        &f,
        CONFIGMAPS,
        &json!({"metadata": {"name": "big"}, "data": {"v": value}}),
    )
    .await;
    assert_status(&answer, 422, "Invalid");
}

#[tokio::test]
async fn yaml_bombs_and_deep_nesting_are_refused_quickly() {
    let f = fixture().await;
    let started = std::time::Instant::now();
    let bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\ni: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]\n";
    let answer = send(&f, Method::POST, CONFIGMAPS, "application/yaml", bomb).await;
    assert_eq!(answer.code.as_u16(), 400, "{}", answer.body);
    let deep = "[".repeat(20_000) + &"]".repeat(20_000);
    let answer = send(&f, Method::POST, CONFIGMAPS, "application/json", deep).await;
    assert_eq!(answer.code.as_u16(), 400, "{}", answer.body);
    assert!(started.elapsed() < std::time::Duration::from_secs(1));
}

#[tokio::test]
async fn field_validation_strict_warn_and_ignore() {
    let f = fixture().await;
    let body = json!({"metadata": {"name": "typo"}, "data": {"a": "b"}, "dataa": {"x": "y"}});
    let strict = post_json(&f, &format!("{CONFIGMAPS}?fieldValidation=Strict"), &body).await;
    assert_status(&strict, 400, "BadRequest");
    assert_eq!(
        strict.body["message"],
        "strict decoding error: unknown field \"dataa\""
    );
    assert_status(
        &get(&f, &format!("{CONFIGMAPS}/typo")).await,
        404,
        "NotFound",
    );

    let warn = post_json(&f, &format!("{CONFIGMAPS}?fieldValidation=Warn"), &body).await;
    assert_eq!(warn.code, StatusCode::CREATED);
    let warning = warn.headers.get("warning").unwrap().to_str().unwrap();
    assert!(warning.starts_with("299 - "), "{warning}");
    assert!(warning.contains("dataa"), "{warning}");
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let f = fixture().await;
    let body = json!({"metadata": {"name": "dry"}});
    let answer = post_json(&f, &format!("{CONFIGMAPS}?dryRun=All"), &body).await;
    assert_eq!(answer.code, StatusCode::CREATED);
    assert_status(
        &get(&f, &format!("{CONFIGMAPS}/dry")).await,
        404,
        "NotFound",
    );
    let bad = post_json(&f, &format!("{CONFIGMAPS}?dryRun=Some"), &body).await;
    assert_status(&bad, 400, "BadRequest");
}

#[tokio::test]
async fn validation_errors_are_422_with_causes() {
    let f = fixture().await;
    let body = json!({
        "metadata": {"name": "Bad_Name"},
        "spec": {
            "selector": {"matchLabels": {"app": "a"}},
            "template": {"metadata": {"labels": {"app": "b"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
        },
    });
    let answer = post_json(&f, DEPLOYMENTS, &body).await;
    assert_status(&answer, 422, "Invalid");
    let causes = answer.body["details"]["causes"].as_array().unwrap();
    let fields: Vec<&str> = causes
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&"metadata.name"), "{fields:?}");
    assert!(
        fields.contains(&"spec.template.metadata.labels"),
        "{fields:?}"
    );
    assert!(
        answer.body["message"]
            .as_str()
            .unwrap()
            .starts_with("Deployment.apps \"Bad_Name\" is invalid: ")
    );
}

#[tokio::test]
async fn patches_of_every_kind() {
    let f = fixture().await;
    let deployment = json!({
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}},
                         "spec": {"containers": [
                             {"name": "a", "image": "busybox", "env": [{"name": "X", "value": "1"}]},
                             {"name": "b", "image": "busybox"}]}},
        },
    });
    assert_eq!(
        post_json(&f, DEPLOYMENTS, &deployment).await.code,
        StatusCode::CREATED
    );
    let uri = format!("{DEPLOYMENTS}/web");

    // Strategic merge: containers merge by name.
    let smp = json!({"spec": {"template": {"spec": {"containers": [{"name": "b", "image": "busybox:1.36"}]}}}});
    let answer = send(
        &f,
        Method::PATCH,
        &uri,
        "application/strategic-merge-patch+json",
        serde_json::to_vec(&smp).unwrap(),
    )
    .await;
    assert_eq!(answer.code, StatusCode::OK, "{}", answer.body);
    let containers = &answer.body["spec"]["template"]["spec"]["containers"];
    assert_eq!(containers.as_array().unwrap().len(), 2);
    assert_eq!(containers[1]["image"], "busybox:1.36");
    assert_eq!(containers[0]["env"][0]["value"], "1");

    // Merge patch replaces lists.
    let merge = json!({"metadata": {"labels": {"tier": "front"}}});
    let answer = send(
        &f,
        Method::PATCH,
        &uri,
        "application/merge-patch+json",
        serde_json::to_vec(&merge).unwrap(),
    )
    .await;
    assert_eq!(answer.body["metadata"]["labels"]["tier"], "front");

    // JSON patch, with a failing test op changing nothing.
    let json_patch = json!([{"op": "replace", "path": "/spec/replicas", "value": 4}]);
    let answer = send(
        &f,
        Method::PATCH,
        &uri,
        "application/json-patch+json",
        serde_json::to_vec(&json_patch).unwrap(),
    )
    .await;
    assert_eq!(answer.body["spec"]["replicas"], 4);
    let failing = json!([{"op": "test", "path": "/spec/replicas", "value": 9}]);
    let answer = send(
        &f,
        Method::PATCH,
        &uri,
        "application/json-patch+json",
        serde_json::to_vec(&failing).unwrap(),
    )
    .await;
    assert!(answer.code.is_client_error(), "{}", answer.body);
    assert_eq!(answer.body["kind"], "Status");

    let answer = send(
        &f,
        Method::PATCH,
        &uri,
        "application/apply-patch+yaml",
        "{}",
    )
    .await;
    // Server-side apply is served (tests/server_side_apply.rs); without a fieldManager it is
    // refused as upstream refuses it.
    assert_status(&answer, 422, "Invalid");

    let missing = send(
        &f,
        Method::PATCH,
        &format!("{DEPLOYMENTS}/nope"),
        "application/merge-patch+json",
        "{}",
    )
    .await;
    assert_status(&missing, 404, "NotFound");
}

#[tokio::test]
async fn tables_for_kubectl_get() {
    let f = fixture().await;
    post_json(
        &f,
        CONFIGMAPS,
        &json!({"metadata": {"name": "t"}, "data": {"a": "b"}}),
    )
    .await;
    let request = Request::get(CONFIGMAPS)
        .header(
            "accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let table = common::respond(&f, request).await.body;
    assert_eq!(table["kind"], "Table");
    let columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Name", "Data", "Age"]);
    assert_eq!(table["rows"][0]["cells"][0], "t");
    assert_eq!(table["rows"][0]["cells"][1], 1);
}

#[tokio::test]
async fn watch_from_a_version_the_cache_no_longer_has_is_410() {
    let f = fixture().await;
    let answer = get(&f, &format!("{CONFIGMAPS}?watch=true&resourceVersion=1")).await;
    // Either an immediate 410 Status or a stream whose first event is an ERROR with one.
    let status = if answer.body["kind"] == "Status" {
        answer.body.clone()
    } else if answer.body["type"] == "ERROR" {
        answer.body["object"].clone()
    } else {
        let text = answer.body.as_str().unwrap_or_default().to_owned();
        let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["type"], "ERROR");
        first["object"].clone()
    };
    assert_eq!(status["code"], 410, "{status}");
    assert_eq!(status["reason"], "Expired");
    assert_eq!(status["kind"], "Status");
}

#[tokio::test]
async fn discovery_legacy_and_aggregated() {
    let f = fixture().await;
    let api = get(&f, "/api").await;
    assert_eq!(api.body["kind"], "APIVersions");
    assert_eq!(api.body["versions"][0], "v1");
    let apps = get(&f, "/apis/apps/v1").await;
    let resources = apps.body["resources"].as_array().unwrap();
    let deployments = resources
        .iter()
        .find(|r| r["name"] == "deployments")
        .unwrap();
    assert_eq!(deployments["shortNames"][0], "deploy");

    let request = Request::get("/apis")
        .header(
            "accept",
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json",
        )
        .body(Body::empty())
        .unwrap();
    let response = common::respond(&f, request).await;
    let content_type = response.headers["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        content_type.contains("as=APIGroupDiscoveryList"),
        "{content_type}"
    );
    let openapi = get(&f, "/openapi/v3").await;
    assert!(openapi.body["paths"]["apis/apps/v1"].is_object());
}

#[tokio::test]
async fn resource_metrics_pushed_by_agents_are_served() {
    let f = fixture().await;
    let node = json!({
        "metadata": {"name": "node-1"},
        "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
        "usage": {"cpu": "250m", "memory": "512Mi"},
    });
    let put = send(
        &f,
        Method::PUT,
        "/apis/metrics.k8s.io/v1beta1/nodes/node-1",
        "application/json",
        serde_json::to_vec(&node).unwrap(),
    )
    .await;
    assert_eq!(put.code, StatusCode::OK, "{}", put.body);
    for (name, app) in [("web-1", "web"), ("db-1", "db")] {
        let pod = json!({
            "metadata": {"name": name, "labels": {"app": app}},
            "timestamp": "2026-01-01T00:00:00Z", "window": "15s",
            "containers": [{"name": "main", "usage": {"cpu": "100m", "memory": "10Mi"}}],
        });
        let put = send(
            &f,
            Method::PUT,
            &format!("/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/{name}"),
            "application/json",
            serde_json::to_vec(&pod).unwrap(),
        )
        .await;
        assert_eq!(put.code, StatusCode::OK, "{}", put.body);
    }
    let nodes = get(&f, "/apis/metrics.k8s.io/v1beta1/nodes").await;
    assert_eq!(nodes.body["kind"], "NodeMetricsList");
    assert_eq!(nodes.body["items"][0]["usage"]["cpu"], "250m");
    let web = get(
        &f,
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods?labelSelector=app%3Dweb",
    )
    .await;
    let items = web.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", web.body);
    assert_eq!(items[0]["metadata"]["name"], "web-1");
    let all = get(&f, "/apis/metrics.k8s.io/v1beta1/pods").await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 2);
    assert_status(
        &get(&f, "/apis/metrics.k8s.io/v1beta1/nodes/nope").await,
        404,
        "NotFound",
    );
    let discovery = get(&f, "/apis/metrics.k8s.io/v1beta1").await;
    assert_eq!(discovery.body["kind"], "APIResourceList");
}

/// The next `n` watch lines of a streaming body.
async fn watch_lines(body: &mut Body, n: usize) -> Vec<Value> {
    let mut lines = Vec::new();
    let mut buffer = Vec::new();
    while lines.len() < n {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), body.frame())
            .await
            .expect("a watch event in time")
            .expect("the watch is still open")
            .unwrap();
        if let Ok(data) = frame.into_data() {
            buffer.extend_from_slice(&data);
        }
        while let Some(end) = buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = buffer.drain(..=end).collect();
            lines.push(serde_json::from_slice(&line).unwrap());
        }
    }
    lines
}

async fn open_watch(f: &Fixture, query: &str, accept: &str) -> Body {
    let mut request = Request::get(format!("{CONFIGMAPS}?watch=true&{query}"));
    if !accept.is_empty() {
        request = request.header("accept", accept);
    }
    let response = f
        .router
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body()
}

/// Events are encoded once per change and form, and shared: watchers with different selectors
/// and answer forms must still each get their own correct event types and bodies.
#[tokio::test]
async fn watchers_with_different_selectors_and_forms_share_events_correctly() {
    let f = fixture().await;
    let rv = get(&f, CONFIGMAPS).await.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let from = format!("resourceVersion={rv}");
    let mut all = open_watch(&f, &from, "").await;
    let mut all_again = open_watch(&f, &from, "").await;
    let mut web = open_watch(&f, &format!("{from}&labelSelector=app%3Dweb"), "").await;
    let mut metadata = open_watch(
        &f,
        &from,
        "application/json;as=PartialObjectMetadata;v=v1;g=meta.k8s.io",
    )
    .await;

    post_json(
        &f,
        CONFIGMAPS,
        &json!({"metadata": {"name": "a", "labels": {"app": "web"}}, "data": {"k": "v"}}),
    )
    .await;
    let patched = send(
        &f,
        Method::PATCH,
        &format!("{CONFIGMAPS}/a"),
        "application/merge-patch+json",
        serde_json::to_vec(&json!({"metadata": {"labels": {"app": "db"}}})).unwrap(),
    )
    .await;
    assert_eq!(patched.code, StatusCode::OK, "{}", patched.body);
    post_json(&f, CONFIGMAPS, &json!({"metadata": {"name": "b"}})).await;

    for body in [&mut all, &mut all_again] {
        let events = watch_lines(body, 3).await;
        let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["ADDED", "MODIFIED", "ADDED"]);
        assert_eq!(events[0]["object"]["kind"], "ConfigMap");
        assert_eq!(events[0]["object"]["apiVersion"], "v1");
        assert_eq!(events[0]["object"]["data"]["k"], "v");
        assert_eq!(events[1]["object"]["metadata"]["labels"]["app"], "db");
        assert_eq!(events[2]["object"]["metadata"]["name"], "b");
    }
    // The selector turns the relabel into a DELETED and never shows "b".
    let events = watch_lines(&mut web, 2).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(types, ["ADDED", "DELETED"]);
    assert_eq!(events[1]["object"]["metadata"]["name"], "a");
    let events = watch_lines(&mut metadata, 3).await;
    for event in &events {
        assert_eq!(event["object"]["kind"], "PartialObjectMetadata", "{event}");
        assert!(event["object"].get("data").is_none(), "{event}");
    }
    assert_eq!(events[1]["type"], "MODIFIED");
}

async fn open_watch_at(f: &Fixture, collection: &str, query: &str) -> Body {
    let response = f
        .router
        .clone()
        .oneshot(
            Request::get(format!("{collection}?watch=true&{query}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body()
}

/// Watches and lists in the stored version are written from the stored bytes: each must show
/// exactly the object a GET decodes, resource version included.
#[tokio::test]
async fn watches_and_lists_show_the_object_a_get_shows() {
    let f = fixture().await;
    let rv = get(&f, CONFIGMAPS).await.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut watch = open_watch(&f, &format!("resourceVersion={rv}"), "").await;
    let created = post_json(
        &f,
        CONFIGMAPS,
        &json!({"metadata": {"name": "same", "labels": {"app": "web"}},
                "data": {"quote": "a \"b\" {c}\n", "n": "1"}}),
    )
    .await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let fetched = get(&f, &format!("{CONFIGMAPS}/same")).await.body;
    let event = watch_lines(&mut watch, 1).await.remove(0);
    assert_eq!(event["type"], "ADDED");
    assert_eq!(event["object"], fetched);
    // A watch from now (initial ADDED from the cache), a list from the cache and one from the
    // store.
    let mut from_now = open_watch(&f, "labelSelector=app%3Dweb", "").await;
    let initial = watch_lines(&mut from_now, 1).await.remove(0);
    assert_eq!(initial["object"], fetched);
    for query in ["?resourceVersion=0", "", "?labelSelector=app%3Dweb"] {
        let list = get(&f, &format!("{CONFIGMAPS}{query}")).await.body;
        assert_eq!(list["kind"], "ConfigMapList", "{query}");
        assert_eq!(list["apiVersion"], "v1");
        assert!(list["metadata"]["resourceVersion"].is_string());
        let item = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "same")
            .unwrap();
        assert_eq!(*item, fetched, "{query}");
    }
    // A delete shows the last state at the delete's resource version.
    let deleted = send(
        &f,
        Method::DELETE,
        &format!("{CONFIGMAPS}/same"),
        "",
        Vec::new(),
    )
    .await;
    assert_eq!(deleted.code, StatusCode::OK, "{}", deleted.body);
    let event = watch_lines(&mut watch, 1).await.remove(0);
    assert_eq!(event["type"], "DELETED");
    assert_eq!(event["object"]["data"], fetched["data"]);
    assert_ne!(
        event["object"]["metadata"]["resourceVersion"],
        fetched["metadata"]["resourceVersion"]
    );
}

/// Core and events.k8s.io Events share one cache and the version name v1: their watchers must
/// not share encoded lines.
#[tokio::test]
async fn core_and_events_k8s_io_watchers_each_see_their_group() {
    let f = fixture().await;
    let core = "/api/v1/namespaces/default/events";
    let events_k8s_io = "/apis/events.k8s.io/v1/namespaces/default/events";
    let rv = get(&f, core).await.body["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let from = format!("resourceVersion={rv}");
    let mut core_watch = open_watch_at(&f, core, &from).await;
    let mut group_watch = open_watch_at(&f, events_k8s_io, &from).await;
    let created = post_json(
        &f,
        core,
        &json!({"metadata": {"name": "e1"}, "reason": "Started", "type": "Normal",
                "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}}),
    )
    .await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let from_core = watch_lines(&mut core_watch, 1).await.remove(0);
    let from_group = watch_lines(&mut group_watch, 1).await.remove(0);
    assert_eq!(from_core["object"]["apiVersion"], "v1");
    assert_eq!(from_group["object"]["apiVersion"], "events.k8s.io/v1");
}
