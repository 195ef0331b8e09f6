//! `tug apply` when its patch meets a conflict (409): as kubectl, it reads the object again,
//! computes the patch against what another writer left, and retries, up to five attempts.
//!
//! The real `tug` binary talks over plain HTTP to the API server's router on a memory store,
//! behind a layer that answers chosen PATCHes with 409 after letting another writer change the
//! object, as a race with a controller would.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use http::{Method, StatusCode};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

const DEPLOYMENT: &str = "/apis/apps/v1/namespaces/default/deployments/web";

/// The API server on 127.0.0.1, its PATCHes of `web` counted; the first `conflicts` of them get
/// 409 after another writer labels the deployment `raced=<n>`.
struct Server {
    url: String,
    router: Router,
    patches: Arc<AtomicUsize>,
    reads: Arc<AtomicUsize>,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl Server {
    async fn start(conflicts: usize) -> Self {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let store = Arc::new(tugboat_store::memory::memory_store().unwrap());
        let router = tugboat_apiserver::test_router(store, &shutdown, &tracker)
            .await
            .unwrap();
        let patches = Arc::new(AtomicUsize::new(0));
        let reads = Arc::new(AtomicUsize::new(0));
        let layered = {
            let router = router.clone();
            let patches = patches.clone();
            let reads = reads.clone();
            router
                .clone()
                .layer(middleware::from_fn(move |request: Request, next: Next| {
                    let router = router.clone();
                    let patches = patches.clone();
                    let reads = reads.clone();
                    async move {
                        if request.method() == Method::GET && request.uri().path() == DEPLOYMENT {
                            reads.fetch_add(1, Ordering::SeqCst);
                        }
                        if request.method() == Method::PATCH && request.uri().path() == DEPLOYMENT {
                            let n = patches.fetch_add(1, Ordering::SeqCst) + 1;
                            if n <= conflicts {
                                label(&router, "raced", &n.to_string()).await;
                                return conflict();
                            }
                        }
                        next.run(request).await
                    }
                }))
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = shutdown.clone();
        tokio::spawn(async move {
            axum::serve(listener, layered)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await
        });
        Server {
            url,
            router,
            patches,
            reads,
            shutdown,
            _dir: tempfile::tempdir().unwrap(),
        }
    }

    fn kubeconfig(&self) -> std::path::PathBuf {
        let path = self._dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {}
contexts:
- name: test
  context:
    cluster: test
    user: test
current-context: test
users:
- name: test
  user: {{}}
",
                self.url
            ),
        )
        .unwrap();
        path
    }

    /// `tug apply -f -` of `manifest`, run off the runtime so the server keeps answering.
    async fn apply(&self, manifest: &str) -> Output {
        let kubeconfig = self.kubeconfig();
        let manifest = manifest.to_owned();
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_tug"))
                .args(["--kubeconfig"])
                .arg(&kubeconfig)
                .args(["apply", "-f", "-"])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            child
                .stdin
                .take()
                .unwrap()
                .write_all(manifest.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }

    async fn deployment(&self) -> serde_json::Value {
        let response = self
            .router
            .clone()
            .oneshot(Request::get(DEPLOYMENT).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&body).unwrap()
    }
}

/// Another writer's change: a merge patch adding one label.
async fn label(router: &Router, key: &str, value: &str) {
    let patch = serde_json::json!({"metadata": {"labels": {key: value}}});
    let response = router
        .clone()
        .oneshot(
            Request::patch(DEPLOYMENT)
                .header("content-type", "application/merge-patch+json")
                .body(Body::from(patch.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

/// What the API server answers when a write loses a race.
fn conflict() -> Response {
    let status = serde_json::json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again",
        "reason": "Conflict",
        "details": {"name": "web", "group": "apps", "kind": "deployments"},
        "code": 409
    });
    (
        StatusCode::CONFLICT,
        [("content-type", "application/json")],
        status.to_string(),
    )
        .into_response()
}

fn deployment(replicas: u32, image: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
spec:
  replicas: {replicas}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: {image}
"
    )
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_patch_is_computed_again_and_retried() {
    let server = Server::start(2).await;
    let created = server.apply(&deployment(1, "nginx:1.25")).await;
    assert_eq!(text(&created.stdout), "deployment.apps/web created\n");

    let configured = server.apply(&deployment(3, "nginx:1.26")).await;
    assert!(
        configured.status.success(),
        "stderr: {}",
        text(&configured.stderr)
    );
    assert_eq!(text(&configured.stdout), "deployment.apps/web configured\n");
    assert_eq!(
        server.patches.load(Ordering::SeqCst),
        3,
        "two conflicts, then the patch that landed"
    );
    assert_eq!(
        server.reads.load(Ordering::SeqCst),
        1 + 1 + 2,
        "one read per apply, then one read again after each conflict"
    );

    // The applied change landed, and the other writer's, made while tug was retrying, stayed.
    let web = server.deployment().await;
    assert_eq!(web["spec"]["replicas"], 3);
    assert_eq!(
        web["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.26"
    );
    assert_eq!(web["metadata"]["labels"]["raced"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_conflicts_in_a_row_fail_with_the_servers_reason() {
    let server = Server::start(usize::MAX).await;
    let created = server.apply(&deployment(1, "nginx:1.25")).await;
    assert_eq!(text(&created.stdout), "deployment.apps/web created\n");

    let failed = server.apply(&deployment(3, "nginx:1.26")).await;
    assert_eq!(failed.status.code(), Some(1), "kubectl's exit code");
    assert_eq!(text(&failed.stdout), "");
    assert_eq!(
        text(&failed.stderr),
        "Error from server (Conflict): error when applying patch \"STDIN\": Operation cannot be fulfilled on deployments.apps \"web\": the object has been modified; please apply your changes to the latest version and try again\n"
    );
    assert_eq!(
        server.patches.load(Ordering::SeqCst),
        5,
        "kubectl's maxPatchRetry"
    );

    // Nothing of the failed apply landed.
    let web = server.deployment().await;
    assert_eq!(web["spec"]["replicas"], 1);
}
