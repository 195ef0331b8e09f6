//! A small in-memory Kubernetes API behind a real `kube::Client`, for component tests of
//! controllers and the scheduler: list and watch (with history replay from a
//! resourceVersion), get, create, delete, `pods/binding`, `pods/status` patches and events.
//!
//! Resources are told apart by their plural alone, in any group. Creates (with
//! `generateName`), replaces (PUT, status subresource included), patches (applied as JSON merge
//! patches) and deletes answer with the stored object and a fresh resourceVersion; a `pods/status`
//! patch merges `status.conditions` by type. Every request is recorded; binds, and any write by
//! method and path, can be made to fail on demand (404, 409, ...).
//!
//! Use: `let (api, client) = FakeApi::new(); api.create(node("n1").obj());`, then hand
//! `client` to the component under test.

use std::{
    collections::BTreeMap,
    convert::Infallible,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use http::{Method, Request, Response, StatusCode};
use http_body::Frame;
use k8s_openapi::{Metadata, Resource, api::core::v1::Pod, serde::Serialize};
use kube::client::Body;
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::broadcast;

/// A request the fake served: method, path and query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: Option<Value>,
}

#[derive(Debug, Clone)]
struct WatchEvent {
    resource: String,
    revision: u64,
    kind: &'static str,
    object: Value,
}

#[derive(Debug, Default)]
struct State {
    revision: u64,
    /// resource ("pods") -> "namespace/name" (or "name") -> object
    objects: BTreeMap<String, BTreeMap<String, Value>>,
    history: Vec<WatchEvent>,
    requests: Vec<RecordedRequest>,
    /// Status codes the next binds answer with instead of binding.
    bind_failures: Vec<u16>,
    /// Injected failures for writes: (method, path, status), each used once.
    write_failures: Vec<(String, String, u16)>,
}

/// The fake's handle: seed objects, inspect requests, inject failures.
#[derive(Clone)]
pub struct FakeApi {
    state: Arc<Mutex<State>>,
    events: broadcast::Sender<WatchEvent>,
}

impl std::fmt::Debug for FakeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeApi").finish_non_exhaustive()
    }
}

fn object_key(object: &Value) -> String {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(namespace) => format!("{namespace}/{name}"),
        None => name.to_owned(),
    }
}

impl FakeApi {
    /// A fake API and a client that talks to it.
    pub fn new() -> (Self, kube::Client) {
        let (events, _) = broadcast::channel(65_536);
        let api = Self {
            state: Arc::new(Mutex::new(State::default())),
            events,
        };
        let served = api.clone();
        let service = tower::service_fn(move |request: Request<Body>| {
            let api = served.clone();
            async move { Ok::<_, Infallible>(api.handle(request).await) }
        });
        (api, kube::Client::new(service, "default"))
    }

    /// Stores a new object, as a create would, and emits ADDED.
    pub fn create<K: Resource + Metadata + Serialize>(&self, object: K) {
        let mut value = serde_json::to_value(&object).unwrap_or(Value::Null);
        value["apiVersion"] = json!(K::API_VERSION);
        value["kind"] = json!(K::KIND);
        self.store(K::URL_PATH_SEGMENT, value, "ADDED");
    }

    /// Deletes an object by resource ("pods") and key ("ns/name" or "name"), emitting DELETED.
    pub fn delete(&self, resource: &str, key: &str) -> Option<Value> {
        let mut state = self.state.lock();
        let object = state.objects.get_mut(resource)?.remove(key)?;
        self.emit(&mut state, resource, "DELETED", object.clone());
        Some(object)
    }

    /// Replaces an object with a modified copy, emitting MODIFIED.
    pub fn update<K: Resource + Metadata + Serialize>(&self, object: K) {
        let mut value = serde_json::to_value(&object).unwrap_or(Value::Null);
        value["apiVersion"] = json!(K::API_VERSION);
        value["kind"] = json!(K::KIND);
        self.store(K::URL_PATH_SEGMENT, value, "MODIFIED");
    }

    /// The stored pod `namespace/name`.
    pub fn pod(&self, key: &str) -> Option<Pod> {
        let state = self.state.lock();
        let value = state.objects.get("pods")?.get(key)?.clone();
        serde_json::from_value(value).ok()
    }

    /// Every stored object of `resource`.
    pub fn objects(&self, resource: &str) -> Vec<Value> {
        let state = self.state.lock();
        state
            .objects
            .get(resource)
            .map(|objects| objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every request served so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.lock().requests.clone()
    }

    /// The next `statuses.len()` binds fail with these HTTP statuses, in order.
    pub fn fail_next_binds(&self, statuses: &[u16]) {
        self.state.lock().bind_failures.extend_from_slice(statuses);
    }

    /// The next `method` request on exactly `path` (e.g. `DELETE`,
    /// `/api/v1/namespaces/ns/pods/p`) answers `status` (404, 409, ...) without touching state.
    pub fn fail_next(&self, method: &str, path: &str, status: u16) {
        self.state
            .lock()
            .write_failures
            .push((method.to_owned(), path.to_owned(), status));
    }

    /// The requests that change state (everything but GET), in order, as `(method, path)`.
    pub fn writes(&self) -> Vec<RecordedRequest> {
        self.requests()
            .into_iter()
            .filter(|request| request.method != "GET")
            .collect()
    }

    fn store(&self, resource: &str, mut value: Value, kind: &'static str) -> Value {
        let mut state = self.state.lock();
        state.revision += 1;
        let revision = state.revision;
        value["metadata"]["resourceVersion"] = json!(revision.to_string());
        if value["metadata"]["uid"].is_null() {
            value["metadata"]["uid"] = json!(format!("uid-{revision}"));
        }
        state
            .objects
            .entry(resource.to_owned())
            .or_default()
            .insert(object_key(&value), value.clone());
        self.emit_at(&mut state, resource, kind, value.clone(), revision);
        value
    }

    fn emit(&self, state: &mut State, resource: &str, kind: &'static str, mut object: Value) {
        state.revision += 1;
        let revision = state.revision;
        object["metadata"]["resourceVersion"] = json!(revision.to_string());
        self.emit_at(state, resource, kind, object, revision);
    }

    fn emit_at(
        &self,
        state: &mut State,
        resource: &str,
        kind: &'static str,
        object: Value,
        revision: u64,
    ) {
        let event = WatchEvent {
            resource: resource.to_owned(),
            revision,
            kind,
            object,
        };
        state.history.push(event.clone());
        // Nobody watching is fine.
        let _ = self.events.send(event);
    }

    async fn handle(&self, request: Request<Body>) -> Response<StreamBody> {
        let (parts, body) = request.into_parts();
        let body = body.collect_bytes().await.unwrap_or_default();
        let body: Option<Value> = serde_json::from_slice(&body).ok();
        let path = parts.uri.path().to_owned();
        let query = parts.uri.query().unwrap_or_default().to_owned();
        self.state.lock().requests.push(RecordedRequest {
            method: parts.method.to_string(),
            path: path.clone(),
            query: query.clone(),
            body: body.clone(),
        });
        let params: BTreeMap<&str, &str> = query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .collect();
        {
            let mut state = self.state.lock();
            let method = parts.method.as_str();
            if let Some(index) = state
                .write_failures
                .iter()
                .position(|(m, p, _)| m == method && *p == path)
            {
                let (_, _, code) = state.write_failures.remove(index);
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                let reason = match code {
                    404 => "NotFound",
                    409 => "Conflict",
                    _ => "Injected",
                };
                return status_response(status, reason, "injected failure");
            }
        }
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // /api/v1/{resource} | /api/v1/namespaces/{ns}/{resource}[/{name}[/{sub}]], and the
        // same under /apis/{group}/{version} (resources are told apart by plural alone).
        let (namespace, rest) = match segments.as_slice() {
            ["api", "v1", "namespaces", namespace, rest @ ..]
            | ["apis", _, _, "namespaces", namespace, rest @ ..]
                if !rest.is_empty() =>
            {
                (Some(*namespace), rest)
            }
            ["api", "v1", rest @ ..] | ["apis", _, _, rest @ ..] => (None, rest),
            _ => return status_response(StatusCode::NOT_FOUND, "NotFound", "unknown path"),
        };
        let key = |name: &str| match namespace {
            Some(namespace) => format!("{namespace}/{name}"),
            None => name.to_owned(),
        };
        match (&parts.method, rest) {
            (&Method::GET, [resource]) => {
                let watch = matches!(params.get("watch"), Some(&"true") | Some(&"1"));
                if watch {
                    let from = params
                        .get("resourceVersion")
                        .and_then(|rv| rv.parse().ok())
                        .unwrap_or(0);
                    self.watch(resource, namespace, from)
                } else {
                    self.list(resource, namespace)
                }
            }
            (&Method::GET, [resource, name]) => {
                let state = self.state.lock();
                match state
                    .objects
                    .get(*resource)
                    .and_then(|objects| objects.get(&key(name)))
                {
                    Some(object) => json_response(StatusCode::OK, object),
                    None => status_response(StatusCode::NOT_FOUND, "NotFound", "not found"),
                }
            }
            (&Method::POST, ["pods", name, "binding"]) => self.bind(&key(name), body),
            (&Method::PATCH, ["pods", name, "status"]) => self.patch_status(&key(name), body),
            (&Method::POST, [resource]) => {
                let Some(mut object) = body else {
                    return status_response(StatusCode::BAD_REQUEST, "BadRequest", "no body");
                };
                if let Some(namespace) = namespace {
                    object["metadata"]["namespace"] = json!(namespace);
                }
                if object["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .is_empty()
                {
                    // generateName: the prefix and a counter, unique enough for one fake.
                    let prefix = object["metadata"]["generateName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned();
                    let suffix = self.state.lock().revision + 1;
                    object["metadata"]["name"] = json!(format!("{prefix}{suffix:05x}"));
                }
                let taken = self
                    .state
                    .lock()
                    .objects
                    .get(*resource)
                    .is_some_and(|objects| objects.contains_key(&object_key(&object)));
                if taken {
                    return status_response(
                        StatusCode::CONFLICT,
                        "AlreadyExists",
                        "already exists",
                    );
                }
                let stored = self.store(resource, object, "ADDED");
                json_response(StatusCode::CREATED, &stored)
            }
            (&Method::PUT, [resource, name] | [resource, name, _]) => {
                // Replace (or replace the status subresource): the body is stored as sent.
                let Some(mut object) = body else {
                    return status_response(StatusCode::BAD_REQUEST, "BadRequest", "no body");
                };
                let exists = self
                    .state
                    .lock()
                    .objects
                    .get(*resource)
                    .is_some_and(|objects| objects.contains_key(&key(name)));
                if !exists {
                    return status_response(StatusCode::NOT_FOUND, "NotFound", "not found");
                }
                if let Some(namespace) = namespace {
                    object["metadata"]["namespace"] = json!(namespace);
                }
                let stored = self.store(resource, object, "MODIFIED");
                json_response(StatusCode::OK, &stored)
            }
            (&Method::PATCH, [resource, name] | [resource, name, _]) => {
                let current = self
                    .state
                    .lock()
                    .objects
                    .get(*resource)
                    .and_then(|objects| objects.get(&key(name)).cloned());
                let Some(mut object) = current else {
                    return status_response(StatusCode::NOT_FOUND, "NotFound", "not found");
                };
                // Merge and strategic-merge patches alike, as a JSON merge patch: enough for
                // the metadata, spec and status fields controllers patch.
                merge_patch(&mut object, &body.unwrap_or(Value::Null));
                let stored = self.store(resource, object, "MODIFIED");
                json_response(StatusCode::OK, &stored)
            }
            (&Method::DELETE, [resource, name]) => match self.delete(resource, &key(name)) {
                Some(object) => json_response(StatusCode::OK, &object),
                None => status_response(StatusCode::NOT_FOUND, "NotFound", "not found"),
            },
            _ => status_response(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                "unsupported",
            ),
        }
    }

    fn list(&self, resource: &str, namespace: Option<&str>) -> Response<StreamBody> {
        let state = self.state.lock();
        let items: Vec<Value> = state
            .objects
            .get(resource)
            .into_iter()
            .flat_map(|objects| objects.values())
            .filter(|object| {
                namespace
                    .is_none_or(|namespace| object["metadata"]["namespace"] == json!(namespace))
            })
            .cloned()
            .collect();
        json_response(
            StatusCode::OK,
            &json!({
                "apiVersion": "v1",
                "kind": "List",
                "metadata": {"resourceVersion": state.revision.to_string()},
                "items": items,
            }),
        )
    }

    fn watch(&self, resource: &str, namespace: Option<&str>, from: u64) -> Response<StreamBody> {
        // Subscribe under the lock so no event falls between the replay and the live feed.
        let state = self.state.lock();
        let live = self.events.subscribe();
        let matches = {
            let resource = resource.to_owned();
            let namespace = namespace.map(str::to_owned);
            move |event: &WatchEvent| {
                event.resource == resource
                    && event.revision > from
                    && namespace.as_ref().is_none_or(|namespace| {
                        event.object["metadata"]["namespace"] == json!(namespace)
                    })
            }
        };
        let replay: Vec<Bytes> = state
            .history
            .iter()
            .filter(|event| matches(event))
            .map(watch_line)
            .collect();
        drop(state);
        let live = futures::stream::unfold(live, move |mut live| {
            let matches = matches.clone();
            async move {
                loop {
                    match live.recv().await {
                        Ok(event) if matches(&event) => return Some((watch_line(&event), live)),
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            }
        });
        let stream = futures::stream::iter(replay).chain(live).boxed();
        response(StatusCode::OK, StreamBody(stream))
    }

    fn bind(&self, key: &str, body: Option<Value>) -> Response<StreamBody> {
        let mut state = self.state.lock();
        if !state.bind_failures.is_empty() {
            let code = state.bind_failures.remove(0);
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return status_response(status, "Injected", "injected bind failure");
        }
        let target = body
            .as_ref()
            .and_then(|body| body["target"]["name"].as_str())
            .unwrap_or_default()
            .to_owned();
        let Some(pod) = state
            .objects
            .get_mut("pods")
            .and_then(|pods| pods.get_mut(key))
        else {
            return status_response(StatusCode::NOT_FOUND, "NotFound", "pod not found");
        };
        if pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|node| !node.is_empty())
        {
            return status_response(
                StatusCode::CONFLICT,
                "Conflict",
                "pod is already assigned to a node",
            );
        }
        pod["spec"]["nodeName"] = json!(target);
        let pod = pod.clone();
        self.emit(&mut state, "pods", "MODIFIED", pod.clone());
        let revision = state.revision;
        if let Some(stored) = state
            .objects
            .get_mut("pods")
            .and_then(|pods| pods.get_mut(key))
        {
            stored["metadata"]["resourceVersion"] = json!(revision.to_string());
        }
        json_response(
            StatusCode::CREATED,
            &json!({"apiVersion": "v1", "kind": "Status", "status": "Success", "code": 201}),
        )
    }

    fn patch_status(&self, key: &str, body: Option<Value>) -> Response<StreamBody> {
        let mut state = self.state.lock();
        let Some(pod) = state
            .objects
            .get_mut("pods")
            .and_then(|pods| pods.get_mut(key))
        else {
            return status_response(StatusCode::NOT_FOUND, "NotFound", "pod not found");
        };
        let patch = body.unwrap_or(Value::Null);
        if let Some(fields) = patch["status"].as_object() {
            for (field, value) in fields {
                if field == "conditions" {
                    let mut conditions = pod["status"]["conditions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    for condition in value.as_array().into_iter().flatten() {
                        conditions.retain(|existing| existing["type"] != condition["type"]);
                        conditions.push(condition.clone());
                    }
                    pod["status"]["conditions"] = json!(conditions);
                } else {
                    pod["status"][field] = value.clone();
                }
            }
        }
        let pod = pod.clone();
        self.emit(&mut state, "pods", "MODIFIED", pod.clone());
        let revision = state.revision;
        if let Some(stored) = state
            .objects
            .get_mut("pods")
            .and_then(|pods| pods.get_mut(key))
        {
            stored["metadata"]["resourceVersion"] = json!(revision.to_string());
        }
        json_response(StatusCode::OK, &pod)
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Some(fields) = patch.as_object() else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    if let Some(target) = target.as_object_mut() {
        for (field, value) in fields {
            if value.is_null() {
                target.remove(field);
            } else {
                merge_patch(target.entry(field.clone()).or_insert(Value::Null), value);
            }
        }
    }
}

fn watch_line(event: &WatchEvent) -> Bytes {
    let mut line = serde_json::to_vec(&json!({"type": event.kind, "object": event.object}))
        .unwrap_or_default();
    line.push(b'\n');
    Bytes::from(line)
}

fn response(status: StatusCode, body: StreamBody) -> Response<StreamBody> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

fn json_response(status: StatusCode, value: &Value) -> Response<StreamBody> {
    let bytes = Bytes::from(serde_json::to_vec(value).unwrap_or_default());
    response(status, StreamBody(futures::stream::iter([bytes]).boxed()))
}

fn status_response(status: StatusCode, reason: &str, message: &str) -> Response<StreamBody> {
    json_response(
        status,
        &json!({
            "apiVersion": "v1",
            "kind": "Status",
            "status": "Failure",
            "reason": reason,
            "message": message,
            "code": status.as_u16(),
        }),
    )
}

/// A response body fed by a stream of chunks (one for plain responses, open-ended for
/// watches).
pub struct StreamBody(BoxStream<'static, Bytes>);

impl http_body::Body for StreamBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0
            .poll_next_unpin(cx)
            .map(|chunk| chunk.map(|bytes| Ok(Frame::data(bytes))))
    }
}
