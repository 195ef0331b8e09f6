//! The router over the memory store, for this directory's tests: one fixture, and one way to
//! send a request and read its answer.

// Each test binary uses part of this module.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// A router over its own memory store; its background tasks stop when it is dropped.
pub struct Fixture {
    pub router: Router,
    shutdown: CancellationToken,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn memory_store() -> Arc<dyn tugboat_store::Store> {
    Arc::new(tugboat_store::memory::memory_store().unwrap())
}

/// A router that lets every request through, as `tug up`'s admin sees it.
pub async fn fixture() -> Fixture {
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let router = tugboat_apiserver::test_router(memory_store(), &shutdown, &tracker)
        .await
        .unwrap();
    Fixture {
        router,
        shutdown,
        _dir: None,
    }
}

/// A router that authenticates bearer tokens from `tokens_csv` (the `tokens.csv` format) and
/// authorizes them.
pub async fn fixture_with_tokens(tokens_csv: &str) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tokens.csv"), tokens_csv).unwrap();
    let tokens = tugboat_apiserver::auth::Tokens::load_or_create(dir.path()).unwrap();
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let router = tugboat_apiserver::test_router_with_tokens(
        memory_store(),
        Some(tokens),
        &shutdown,
        &tracker,
    )
    .await
    .unwrap();
    Fixture {
        router,
        shutdown,
        _dir: Some(dir),
    }
}

/// What came back: the body as JSON, or as a JSON string when it is not JSON.
pub struct Answer {
    pub code: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

pub async fn respond(f: &Fixture, request: Request<Body>) -> Answer {
    let response = f.router.clone().oneshot(request).await.unwrap();
    let code = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Answer {
        code,
        headers,
        body,
    }
}
