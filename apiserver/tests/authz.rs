//! Authorization through the router: the default roles, RBAC bindings read from the watch
//! cache, the Node authorizer, impersonation and the review APIs, with the exact 403 bodies
//! kubectl prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use common::{Answer, Fixture};
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

const TOKENS: &str = "\
admin-token,admin
jane-token,jane,jane-uid,\"devs\"
n1-token,system:node:n1,n1,\"system:nodes\"
n2-token,system:node:n2,n2,\"system:nodes\"
";

async fn fixture() -> Fixture {
    common::fixture_with_tokens(TOKENS).await
}

async fn send(
    f: &Fixture,
    token: &str,
    method: Method,
    uri: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = match body {
        Some(body) => {
            if !headers.iter().any(|(name, _)| *name == "content-type") {
                request = request.header("content-type", "application/json");
            }
            Body::from(serde_json::to_vec(body).unwrap())
        }
        None => Body::empty(),
    };
    common::respond(f, request.body(body).unwrap()).await
}

async fn get(f: &Fixture, token: &str, uri: &str) -> Answer {
    send(f, token, Method::GET, uri, None, &[]).await
}

async fn post(f: &Fixture, token: &str, uri: &str, body: &Value) -> Answer {
    send(f, token, Method::POST, uri, Some(body), &[]).await
}

fn assert_forbidden(answer: &Answer, message: &str) {
    assert_eq!(answer.code, StatusCode::FORBIDDEN, "{}", answer.body);
    assert_eq!(answer.body["kind"], "Status");
    assert_eq!(answer.body["reason"], "Forbidden");
    assert_eq!(answer.body["message"], message);
}

/// Wait (bounded) until `token`'s request gets `code`: bindings take effect once the watch
/// cache has them.
async fn eventually(f: &Fixture, token: &str, method: Method, uri: &str, code: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = send(f, token, method.clone(), uri, None, &[]).await;
        if answer.code == code {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{method} {uri}: {} {}",
            answer.code,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn binding(kind: &str, name: &str, namespace: Option<&str>, role: &str, user: &str) -> Value {
    let mut metadata = json!({ "name": name });
    if let Some(ns) = namespace {
        metadata["namespace"] = json!(ns);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role },
        "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }],
    })
}

const PODS: &str = "/api/v1/namespaces/default/pods";

fn pod(name: &str, node: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name },
        "spec": {
            "nodeName": node,
            "containers": [{ "name": "c", "image": "busybox" }],
            "volumes": [
                { "name": "s", "secret": { "secretName": format!("{name}-secret") } },
                { "name": "d", "persistentVolumeClaim": { "claimName": format!("{name}-claim") } },
            ],
        },
    })
}

#[tokio::test]
async fn default_roles_and_bindings_are_served() {
    let f = fixture().await;
    let roles = get(
        &f,
        "admin-token",
        "/apis/rbac.authorization.k8s.io/v1/clusterroles",
    )
    .await;
    assert_eq!(roles.code, StatusCode::OK);
    let names: Vec<&str> = roles.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["metadata"]["name"].as_str().unwrap())
        .collect();
    for name in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:basic-user",
    ] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let admins = get(
        &f,
        "admin-token",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/cluster-admin",
    )
    .await;
    assert_eq!(admins.body["subjects"][0]["name"], "system:masters");
    // Anyone authenticated may discover the API, not read metrics.
    assert_eq!(get(&f, "jane-token", "/apis").await.code, StatusCode::OK);
    assert_eq!(get(&f, "jane-token", "/api/v1").await.code, StatusCode::OK);
    assert_forbidden(
        &get(&f, "jane-token", "/metrics").await,
        r#"forbidden: User "jane" cannot get path "/metrics""#,
    );
}

#[tokio::test]
async fn view_reads_but_cannot_delete_and_edit_is_per_namespace() {
    let f = fixture().await;
    assert_eq!(
        post(&f, "admin-token", PODS, &pod("web", "")).await.code,
        StatusCode::CREATED
    );
    assert_forbidden(
        &get(&f, "jane-token", PODS).await,
        r#"pods is forbidden: User "jane" cannot list resource "pods" in API group "" in the namespace "default""#,
    );
    let view = binding("ClusterRoleBinding", "jane-view", None, "view", "jane");
    let created = post(
        &f,
        "admin-token",
        "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
        &view,
    )
    .await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    eventually(&f, "jane-token", Method::GET, PODS, StatusCode::OK).await;
    assert_eq!(
        get(&f, "jane-token", &format!("{PODS}/web")).await.code,
        StatusCode::OK
    );
    let delete = send(
        &f,
        "jane-token",
        Method::DELETE,
        &format!("{PODS}/web"),
        None,
        &[],
    )
    .await;
    assert_forbidden(
        &delete,
        r#"pods "web" is forbidden: User "jane" cannot delete resource "pods" in API group "" in the namespace "default""#,
    );
    // view does not include secrets.
    assert_eq!(
        get(&f, "jane-token", "/api/v1/namespaces/default/secrets")
            .await
            .code,
        StatusCode::FORBIDDEN
    );

    // edit in "dev" only.
    let dev = json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": "dev" } });
    assert_eq!(
        post(&f, "admin-token", "/api/v1/namespaces", &dev)
            .await
            .code,
        StatusCode::CREATED
    );
    let edit = binding("RoleBinding", "jane-edit", Some("dev"), "edit", "jane");
    let created = post(
        &f,
        "admin-token",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings",
        &edit,
    )
    .await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    eventually(
        &f,
        "jane-token",
        Method::GET,
        "/api/v1/namespaces/dev/secrets",
        StatusCode::OK,
    )
    .await;
    let cm = json!({ "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "cfg" } });
    assert_eq!(
        post(&f, "jane-token", "/api/v1/namespaces/dev/configmaps", &cm)
            .await
            .code,
        StatusCode::CREATED
    );
    assert_forbidden(
        &post(
            &f,
            "jane-token",
            "/api/v1/namespaces/default/configmaps",
            &cm,
        )
        .await,
        r#"configmaps is forbidden: User "jane" cannot create resource "configmaps" in API group "" in the namespace "default""#,
    );
    // edit may not grant roles; the binding's roleRef cannot change.
    let mut changed = get(
        &f,
        "admin-token",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings/jane-edit",
    )
    .await
    .body;
    changed["roleRef"]["name"] = json!("admin");
    let put = send(
        &f,
        "admin-token",
        Method::PUT,
        "/apis/rbac.authorization.k8s.io/v1/namespaces/dev/rolebindings/jane-edit",
        Some(&changed),
        &[],
    )
    .await;
    assert_eq!(put.code, StatusCode::UNPROCESSABLE_ENTITY, "{}", put.body);
    assert!(
        put.body["message"]
            .as_str()
            .unwrap()
            .contains("cannot change roleRef"),
        "{}",
        put.body
    );
}

fn access_review(verb: &str, resource: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SelfSubjectAccessReview",
        "spec": { "resourceAttributes": { "verb": verb, "resource": resource, "namespace": namespace } },
    })
}

#[tokio::test]
async fn reviews_answer_for_the_caller_and_impersonation_is_checked() {
    let f = fixture().await;
    const SSAR: &str = "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews";
    let answer = post(
        &f,
        "jane-token",
        SSAR,
        &access_review("list", "pods", "default"),
    )
    .await;
    assert_eq!(answer.code, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["kind"], "SelfSubjectAccessReview");
    assert_eq!(answer.body["status"]["allowed"], false);
    let answer = post(
        &f,
        "admin-token",
        SSAR,
        &access_review("delete", "pods", "default"),
    )
    .await;
    assert_eq!(answer.body["status"]["allowed"], true);

    let who = post(
        &f,
        "jane-token",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview" }),
    )
    .await;
    assert_eq!(who.code, StatusCode::CREATED, "{}", who.body);
    assert_eq!(who.body["status"]["userInfo"]["username"], "jane");
    assert_eq!(
        who.body["status"]["userInfo"]["groups"],
        json!(["devs", "system:authenticated"])
    );

    let rules = post(
        &f,
        "jane-token",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        &json!({ "apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": { "namespace": "default" } }),
    )
    .await;
    assert_eq!(rules.code, StatusCode::CREATED, "{}", rules.body);
    let resources: Vec<&Value> = rules.body["status"]["resourceRules"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["resources"].as_array().unwrap())
        .collect();
    assert!(resources.contains(&&json!("selfsubjectaccessreviews")));
    assert!(!resources.contains(&&json!("pods")), "{resources:?}");
    assert!(
        rules.body["status"]["nonResourceRules"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["nonResourceURLs"]
                .as_array()
                .unwrap()
                .contains(&json!("/api")))
    );

    // The admin acting as jane gets jane's answers; jane may not act as anyone.
    let as_jane = send(
        &f,
        "admin-token",
        Method::DELETE,
        &format!("{PODS}/web"),
        None,
        &[("impersonate-user", "jane")],
    )
    .await;
    assert_forbidden(
        &as_jane,
        r#"pods "web" is forbidden: User "jane" cannot delete resource "pods" in API group "" in the namespace "default""#,
    );
    let as_admin = send(
        &f,
        "jane-token",
        Method::GET,
        PODS,
        None,
        &[
            ("impersonate-user", "admin"),
            ("impersonate-group", "system:masters"),
        ],
    )
    .await;
    assert_forbidden(
        &as_admin,
        r#"users "admin" is forbidden: User "jane" cannot impersonate resource "users" in API group "" at the cluster scope"#,
    );
    // A SubjectAccessReview asks about someone else (admins may create them).
    let sar = post(
        &f,
        "admin-token",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        &json!({
            "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
            "spec": { "user": "jane", "groups": ["system:authenticated"],
                      "nonResourceAttributes": { "verb": "get", "path": "/apis" } },
        }),
    )
    .await;
    assert_eq!(sar.body["status"]["allowed"], true, "{}", sar.body);
    assert!(
        sar.body["status"]["reason"]
            .as_str()
            .unwrap()
            .contains(r#"ClusterRoleBinding "system:discovery""#)
    );
}

#[tokio::test]
async fn nodes_reach_only_their_own_pods_and_secrets() {
    let f = fixture().await;
    for (name, node) in [("on-n1", "n1"), ("on-n2", "n2")] {
        let created = post(&f, "admin-token", PODS, &pod(name, node)).await;
        assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    }
    eventually(
        &f,
        "n1-token",
        Method::GET,
        &format!("{PODS}/on-n1"),
        StatusCode::OK,
    )
    .await;
    assert_forbidden(
        &get(&f, "n1-token", &format!("{PODS}/on-n2")).await,
        r#"pods "on-n2" is forbidden: User "system:node:n1" cannot get resource "pods" in API group "" in the namespace "default": no relationship found between node 'n1' and this object"#,
    );
    // The pods list (the agent's watch) is open to every node; secrets only by use.
    assert_eq!(get(&f, "n1-token", PODS).await.code, StatusCode::OK);
    assert_eq!(
        get(
            &f,
            "n1-token",
            "/api/v1/namespaces/default/secrets/on-n1-secret"
        )
        .await
        .code,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        get(
            &f,
            "n1-token",
            "/api/v1/namespaces/default/secrets/on-n2-secret"
        )
        .await
        .code,
        StatusCode::FORBIDDEN
    );
    // Its own Node only.
    let node = json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": "n1" } });
    assert_eq!(
        post(&f, "n1-token", "/api/v1/nodes", &node).await.code,
        StatusCode::CREATED
    );
    for (name, code) in [("n1", StatusCode::OK), ("n2", StatusCode::FORBIDDEN)] {
        let patched = send(
            &f,
            "n1-token",
            Method::PATCH,
            &format!("/api/v1/nodes/{name}/status"),
            Some(&json!({ "status": { "phase": "Running" } })),
            &[("content-type", "application/merge-patch+json")],
        )
        .await;
        assert_eq!(patched.code, code, "{name}: {}", patched.body);
    }
    assert_eq!(
        send(
            &f,
            "n1-token",
            Method::DELETE,
            &format!("{PODS}/on-n2"),
            None,
            &[]
        )
        .await
        .code,
        StatusCode::FORBIDDEN
    );
    // Volumes: only those bound to a claim of its own pods (to mount them).
    for name in ["on-n1", "on-n2"] {
        let claim = json!({
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": { "name": format!("{name}-claim") },
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": { "requests": { "storage": "1Gi" } },
                "volumeName": format!("{name}-volume"),
            },
        });
        let created = post(
            &f,
            "admin-token",
            "/api/v1/namespaces/default/persistentvolumeclaims",
            &claim,
        )
        .await;
        assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    }
    eventually(
        &f,
        "n1-token",
        Method::GET,
        "/api/v1/persistentvolumes/on-n1-volume",
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(
        get(&f, "n1-token", "/api/v1/persistentvolumes/on-n2-volume")
            .await
            .code,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn node_restriction_keeps_nodes_to_their_own_node_and_mirror_pods() {
    let f = fixture().await;
    let node =
        |name: &str| json!({ "apiVersion": "v1", "kind": "Node", "metadata": { "name": name } });
    let own = post(&f, "n1-token", "/api/v1/nodes", &node("n1")).await;
    assert_eq!(own.code, StatusCode::CREATED, "{}", own.body);
    assert_forbidden(
        &post(&f, "n1-token", "/api/v1/nodes", &node("n2")).await,
        r#"nodes "n2" is forbidden: node "n1" is not allowed to modify node "n2""#,
    );
    let mut labelled = node("n3");
    labelled["metadata"]["labels"] = json!({ "node-restriction.kubernetes.io/zone": "a" });
    assert_eq!(
        post(&f, "admin-token", "/api/v1/nodes", &labelled)
            .await
            .code,
        StatusCode::CREATED
    );

    // Its own labels, but not the restricted ones.
    let mut updated = own.body.clone();
    updated["metadata"]["labels"] = json!({ "team": "a" });
    let answer = send(
        &f,
        "n1-token",
        Method::PUT,
        "/api/v1/nodes/n1",
        Some(&updated),
        &[],
    )
    .await;
    assert_eq!(answer.code, StatusCode::OK, "{}", answer.body);
    let mut updated = answer.body.clone();
    updated["metadata"]["labels"]["node-restriction.kubernetes.io/zone"] = json!("b");
    assert_forbidden(
        &send(
            &f,
            "n1-token",
            Method::PUT,
            "/api/v1/nodes/n1",
            Some(&updated),
            &[],
        )
        .await,
        r#"nodes "n1" is forbidden: node "n1" is not allowed to modify labels: node-restriction.kubernetes.io/zone"#,
    );
    // The administrator may.
    let answer = send(
        &f,
        "admin-token",
        Method::PUT,
        "/api/v1/nodes/n1",
        Some(&updated),
        &[],
    )
    .await;
    assert_eq!(answer.code, StatusCode::OK, "{}", answer.body);

    // Pods: mirror pods only.
    let mut plain = pod("static", "n1");
    plain["spec"]["volumes"] = json!([]);
    assert_forbidden(
        &post(&f, "n1-token", PODS, &plain).await,
        r#"pods "static" is forbidden: pod does not have "kubernetes.io/config.mirror" annotation, node "n1" can only create mirror pods"#,
    );
    let mut mirror = plain.clone();
    mirror["metadata"]["annotations"] = json!({ "kubernetes.io/config.mirror": "hash" });
    let created = post(&f, "n1-token", PODS, &mirror).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
}
