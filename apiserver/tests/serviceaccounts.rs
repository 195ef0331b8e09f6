//! Service-account tokens through the router: TokenRequest (`kubectl create token`), the
//! tokens authenticating as their service account and going through RBAC, TokenReview, and
//! tokens stopping to work when their service account or bound pod is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use common::{Answer, Fixture};
use http::{Method, Request, StatusCode};
use serde_json::{Value, json};

const TOKENS: &str = "\
admin-token,admin
jane-token,jane,jane-uid
n1-token,system:node:n1,n1,\"system:nodes\"
n2-token,system:node:n2,n2,\"system:nodes\"
";

const SAS: &str = "/api/v1/namespaces/default/serviceaccounts";
const PODS: &str = "/api/v1/namespaces/default/pods";
const REVIEWS: &str = "/apis/authentication.k8s.io/v1/tokenreviews";

async fn fixture() -> Fixture {
    common::fixture_with_tokens(TOKENS).await
}

async fn send(f: &Fixture, token: &str, method: Method, uri: &str, body: Option<&Value>) -> Answer {
    let mut request = Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"));
    let body = match body {
        Some(body) => {
            request = request.header("content-type", "application/json");
            Body::from(serde_json::to_vec(body).unwrap())
        }
        None => Body::empty(),
    };
    common::respond(f, request.body(body).unwrap()).await
}

async fn get(f: &Fixture, token: &str, uri: &str) -> Answer {
    send(f, token, Method::GET, uri, None).await
}

async fn post(f: &Fixture, token: &str, uri: &str, body: &Value) -> Answer {
    send(f, token, Method::POST, uri, Some(body)).await
}

/// Wait (bounded) until `token`'s GET of `uri` gets `code`: what the watch cache has not seen
/// yet takes a moment.
async fn eventually(f: &Fixture, token: &str, uri: &str, code: StatusCode) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = get(f, token, uri).await;
        if answer.code == code {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GET {uri}: {} {}",
            answer.code,
            answer.body
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_service_account(f: &Fixture, name: &str) -> String {
    let created = post(
        f,
        "admin-token",
        SAS,
        &json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": name } }),
    )
    .await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    created.body["metadata"]["uid"].as_str().unwrap().to_owned()
}

async fn request_token(f: &Fixture, account: &str, spec: Value) -> Answer {
    post(
        f,
        "admin-token",
        &format!("{SAS}/{account}/token"),
        &json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec }),
    )
    .await
}

async fn token_for(f: &Fixture, account: &str, spec: Value) -> String {
    let answer = request_token(f, account, spec).await;
    assert_eq!(answer.code, StatusCode::CREATED, "{}", answer.body);
    answer.body["status"]["token"].as_str().unwrap().to_owned()
}

async fn review(f: &Fixture, token: &str, audiences: &[&str]) -> Value {
    let answer = post(
        f,
        "admin-token",
        REVIEWS,
        &json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
            "spec": { "token": token, "audiences": audiences },
        }),
    )
    .await;
    assert_eq!(answer.code, StatusCode::CREATED, "{}", answer.body);
    answer.body["status"].clone()
}

fn pod(name: &str, account: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": { "name": name },
        "spec": {
            "serviceAccountName": account,
            "containers": [{ "name": "c", "image": "busybox" }],
        },
    })
}

#[tokio::test]
async fn a_requested_token_is_the_service_account_and_rbac_decides() {
    let f = fixture().await;
    let uid = create_service_account(&f, "robot").await;
    let answer = request_token(&f, "robot", json!({})).await;
    assert_eq!(answer.code, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["kind"], "TokenRequest");
    assert_eq!(answer.body["spec"]["expirationSeconds"], 3600);
    assert_eq!(
        answer.body["spec"]["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    assert!(
        answer.body["status"]["expirationTimestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{}",
        answer.body
    );
    let token = answer.body["status"]["token"].as_str().unwrap().to_owned();

    // Who am I: the service account, with upstream's groups.
    let whoami = post(
        &f,
        &token,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        &json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview" }),
    )
    .await;
    assert_eq!(whoami.code, StatusCode::CREATED, "{}", whoami.body);
    let user = &whoami.body["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:default:robot");
    assert_eq!(user["uid"], uid.as_str());
    assert_eq!(
        user["groups"],
        json!([
            "system:serviceaccounts",
            "system:serviceaccounts:default",
            "system:authenticated"
        ])
    );

    // RBAC denies until a RoleBinding names the service account.
    let denied = get(&f, &token, PODS).await;
    assert_eq!(denied.code, StatusCode::FORBIDDEN, "{}", denied.body);
    assert_eq!(
        denied.body["message"],
        r#"pods is forbidden: User "system:serviceaccount:default:robot" cannot list resource "pods" in API group "" in the namespace "default""#
    );
    let binding = post(
        &f,
        "admin-token",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
        &json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": { "name": "robot-view" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view" },
            "subjects": [{ "kind": "ServiceAccount", "name": "robot", "namespace": "default" }],
        }),
    )
    .await;
    assert_eq!(binding.code, StatusCode::CREATED, "{}", binding.body);
    eventually(&f, &token, PODS, StatusCode::OK).await;
    // Only in its namespace.
    assert_eq!(
        get(&f, &token, "/api/v1/namespaces/kube-system/pods")
            .await
            .code,
        StatusCode::FORBIDDEN
    );

    // TokenReview says the same; a garbage token is not authenticated.
    let status = review(&f, &token, &[]).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(
        status["user"]["username"],
        "system:serviceaccount:default:robot"
    );
    assert_eq!(
        status["audiences"],
        json!(["https://kubernetes.default.svc.cluster.local"])
    );
    let status = review(&f, "eyJhbGciOiJFUzI1NiJ9.e30.AAAA", &[]).await;
    assert_eq!(status["authenticated"], false, "{status}");
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("invalid bearer token")),
        "{status}"
    );
    // The static tokens go through TokenReview too.
    let status = review(&f, "jane-token", &[]).await;
    assert_eq!(status["user"]["username"], "jane", "{status}");
}

#[tokio::test]
async fn token_requests_are_validated_and_authorized() {
    let f = fixture().await;
    create_service_account(&f, "robot").await;
    let short = request_token(&f, "robot", json!({ "expirationSeconds": 599 })).await;
    assert_eq!(
        short.code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        short.body
    );
    assert!(
        short.body["message"]
            .as_str()
            .unwrap()
            .contains("may not specify a duration less than 10 minutes"),
        "{}",
        short.body
    );
    let long = request_token(&f, "robot", json!({ "expirationSeconds": 7200 })).await;
    assert_eq!(long.code, StatusCode::CREATED, "{}", long.body);
    assert_eq!(long.body["spec"]["expirationSeconds"], 7200);

    let missing = request_token(&f, "nobody", json!({})).await;
    assert_eq!(missing.code, StatusCode::NOT_FOUND, "{}", missing.body);
    assert_eq!(
        missing.body["message"],
        r#"serviceaccounts "nobody" not found"#
    );

    // jane has no right to mint tokens.
    let by_jane = post(
        &f,
        "jane-token",
        &format!("{SAS}/robot/token"),
        &json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {} }),
    )
    .await;
    assert_eq!(by_jane.code, StatusCode::FORBIDDEN, "{}", by_jane.body);
    assert_eq!(
        by_jane.body["message"],
        r#"serviceaccounts "robot" is forbidden: User "jane" cannot create resource "serviceaccounts/token" in API group "" in the namespace "default""#
    );

    // A token for another audience is no good for the API server, but TokenReview with that
    // audience accepts it.
    let vault = token_for(&f, "robot", json!({ "audiences": ["vault"] })).await;
    assert_eq!(get(&f, &vault, "/api").await.code, StatusCode::UNAUTHORIZED);
    let status = review(&f, &vault, &["vault", "other"]).await;
    assert_eq!(status["authenticated"], true, "{status}");
    assert_eq!(status["audiences"], json!(["vault"]));
    let status = review(&f, "jane-token", &["vault"]).await;
    assert_eq!(status["authenticated"], false, "{status}");
}

#[tokio::test]
async fn tokens_die_with_their_service_account() {
    let f = fixture().await;
    create_service_account(&f, "robot").await;
    let token = token_for(&f, "robot", json!({})).await;
    // Any authenticated user may read /api (system:discovery).
    assert_eq!(get(&f, &token, "/api").await.code, StatusCode::OK);
    let deleted = send(
        &f,
        "admin-token",
        Method::DELETE,
        &format!("{SAS}/robot"),
        None,
    )
    .await;
    assert_eq!(deleted.code, StatusCode::OK, "{}", deleted.body);
    eventually(&f, &token, "/api", StatusCode::UNAUTHORIZED).await;
    let status = review(&f, &token, &[]).await;
    assert_eq!(status["authenticated"], false, "{status}");

    // A new account of the same name has another uid: the old token stays dead.
    create_service_account(&f, "robot").await;
    let fresh = token_for(&f, "robot", json!({})).await;
    eventually(&f, &fresh, "/api", StatusCode::OK).await;
    assert_eq!(get(&f, &token, "/api").await.code, StatusCode::UNAUTHORIZED);
    let status = review(&f, &token, &[]).await;
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("ServiceAccount UID")),
        "{status}"
    );
}

#[tokio::test]
async fn a_token_bound_to_a_pod_dies_with_the_pod() {
    let f = fixture().await;
    create_service_account(&f, "robot").await;
    let created = post(&f, "admin-token", PODS, &pod("web", "robot")).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let pod_uid = created.body["metadata"]["uid"].as_str().unwrap().to_owned();
    let bound = |uid: &str| json!({ "boundObjectRef": { "apiVersion": "v1", "kind": "Pod", "name": "web", "uid": uid } });
    let token = token_for(&f, "robot", bound(&pod_uid)).await;
    assert_eq!(review(&f, &token, &[]).await["authenticated"], true);

    // Binding to a pod that runs as another account, or to another pod's uid, is refused.
    let other = post(&f, "admin-token", PODS, &pod("other", "default")).await;
    assert_eq!(other.code, StatusCode::CREATED, "{}", other.body);
    let wrong_account = request_token(
        &f,
        "robot",
        json!({ "boundObjectRef": { "apiVersion": "v1", "kind": "Pod", "name": "other" } }),
    )
    .await;
    assert_eq!(
        wrong_account.code,
        StatusCode::BAD_REQUEST,
        "{}",
        wrong_account.body
    );
    let wrong_uid = request_token(&f, "robot", bound("not-the-uid")).await;
    assert_eq!(wrong_uid.code, StatusCode::CONFLICT, "{}", wrong_uid.body);
    let secret = request_token(
        &f,
        "robot",
        json!({ "boundObjectRef": { "apiVersion": "v1", "kind": "Secret", "name": "s" } }),
    )
    .await;
    assert_eq!(
        secret.code,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        secret.body
    );

    let deleted = send(
        &f,
        "admin-token",
        Method::DELETE,
        &format!("{PODS}/web?gracePeriodSeconds=0"),
        None,
    )
    .await;
    assert_eq!(deleted.code, StatusCode::OK, "{}", deleted.body);
    eventually(&f, &token, "/api", StatusCode::UNAUTHORIZED).await;
    let status = review(&f, &token, &[]).await;
    assert_eq!(status["authenticated"], false, "{status}");
    assert!(
        status["error"]
            .as_str()
            .is_some_and(|e| e.contains("pod default/web")),
        "{status}"
    );
}

#[tokio::test]
async fn a_node_mints_tokens_only_for_its_own_pods() {
    let f = fixture().await;
    create_service_account(&f, "robot").await;
    create_service_account(&f, "unused").await;
    let mut on_n1 = pod("web", "robot");
    on_n1["spec"]["nodeName"] = json!("n1");
    let created = post(&f, "admin-token", PODS, &on_n1).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let uid = created.body["metadata"]["uid"].as_str().unwrap().to_owned();
    let request = |bound: bool| {
        let mut spec = json!({ "expirationSeconds": 3607 });
        if bound {
            spec["boundObjectRef"] =
                json!({ "apiVersion": "v1", "kind": "Pod", "name": "web", "uid": uid });
        }
        json!({ "apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec })
    };
    let uri = format!("{SAS}/robot/token");
    // The pod cache may lag the create a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let minted = loop {
        let answer = post(&f, "n1-token", &uri, &request(true)).await;
        if answer.code == StatusCode::CREATED || Instant::now() > deadline {
            break answer;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(minted.code, StatusCode::CREATED, "{}", minted.body);
    let token = minted.body["status"]["token"].as_str().unwrap();
    let status = review(&f, token, &[]).await;
    assert_eq!(
        status["user"]["username"], "system:serviceaccount:default:robot",
        "{status}"
    );

    let unbound = post(&f, "n1-token", &uri, &request(false)).await;
    assert_eq!(unbound.code, StatusCode::FORBIDDEN, "{}", unbound.body);
    assert_eq!(
        unbound.body["message"],
        r#"serviceaccounts "robot" is forbidden: node requested token not bound to a pod"#
    );
    // n2 runs no pod of robot: the Node authorizer says no before the request is read.
    let elsewhere = post(&f, "n2-token", &uri, &request(true)).await;
    assert_eq!(elsewhere.code, StatusCode::FORBIDDEN, "{}", elsewhere.body);
    // No pod of n1 runs as `unused`.
    let unused = post(
        &f,
        "n1-token",
        &format!("{SAS}/unused/token"),
        &request(false),
    )
    .await;
    assert_eq!(unused.code, StatusCode::FORBIDDEN, "{}", unused.body);
    // A node reads the service accounts of its pods, not others.
    assert_eq!(
        get(&f, "n1-token", &format!("{SAS}/robot")).await.code,
        StatusCode::OK
    );
    assert_eq!(
        get(&f, "n1-token", &format!("{SAS}/unused")).await.code,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn pods_get_their_service_account_volume_and_a_missing_account_is_refused() {
    let f = fixture().await;
    let created = post(&f, "admin-token", PODS, &pod("web", "")).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    let spec = &created.body["spec"];
    assert_eq!(spec["serviceAccountName"], "default");
    let volume = &spec["volumes"][0];
    let name = volume["name"].as_str().unwrap();
    assert!(
        name.starts_with("kube-api-access-") && name.len() == 21,
        "{name}"
    );
    assert_eq!(
        volume["projected"]["sources"][0]["serviceAccountToken"],
        json!({ "expirationSeconds": 3607, "path": "token" })
    );
    assert_eq!(
        volume["projected"]["sources"][1]["configMap"]["name"],
        "kube-root-ca.crt"
    );
    assert_eq!(
        spec["containers"][0]["volumeMounts"][0],
        json!({
            "name": name, "readOnly": true,
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
        })
    );

    let ghost = post(&f, "admin-token", PODS, &pod("ghostly", "ghost")).await;
    assert_eq!(ghost.code, StatusCode::FORBIDDEN, "{}", ghost.body);
    assert_eq!(
        ghost.body["message"],
        r#"pods "ghostly" is forbidden: error looking up service account default/ghost: serviceaccount "ghost" not found"#
    );

    // Turned off on the pod, or on the account.
    let mut quiet = pod("quiet", "");
    quiet["spec"]["automountServiceAccountToken"] = json!(false);
    let created = post(&f, "admin-token", PODS, &quiet).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    assert!(
        created.body["spec"].get("volumes").is_none(),
        "{}",
        created.body
    );
    let account = post(
        &f,
        "admin-token",
        SAS,
        &json!({ "apiVersion": "v1", "kind": "ServiceAccount", "metadata": { "name": "shy" },
                 "automountServiceAccountToken": false }),
    )
    .await;
    assert_eq!(account.code, StatusCode::CREATED, "{}", account.body);
    let created = post(&f, "admin-token", PODS, &pod("shy-pod", "shy")).await;
    assert_eq!(created.code, StatusCode::CREATED, "{}", created.body);
    assert!(
        created.body["spec"].get("volumes").is_none(),
        "{}",
        created.body
    );
}
