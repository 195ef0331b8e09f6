//! `metrics.k8s.io/v1beta1`, built in: node agents push their NodeMetrics and PodMetrics here
//! every few seconds, and `kubectl top` and the HPA controller read them like metrics-server's.
//!
//! Samples live in memory only: they are a few seconds old by nature, and an agent that stops
//! reporting has its samples dropped after [`STALE_AFTER`], as metrics-server forgets nodes.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse as _, Response};
use parking_lot::RwLock;
use serde_json::{Value, json};
use tugboat_api::status::{self, Target};

use crate::error::{ApiError, ApiResult};
use crate::handlers::json_response;
use crate::objects;
use crate::path::ResourcePath;
use crate::request::{Filter, Query};

/// Samples older than this are no longer served.
pub const STALE_AFTER: Duration = Duration::from_secs(90);

struct Sample {
    object: Value,
    received: Instant,
}

/// The latest samples, by node and by pod.
#[derive(Default)]
pub struct MetricsStore {
    nodes: RwLock<BTreeMap<String, Sample>>,
    pods: RwLock<BTreeMap<(String, String), Sample>>,
}

impl MetricsStore {
    fn fresh(sample: &Sample) -> bool {
        sample.received.elapsed() < STALE_AFTER
    }
}

/// Handle a request under `/apis/metrics.k8s.io/v1beta1`.
pub fn handle(
    store: &MetricsStore,
    method: &Method,
    path: &ResourcePath,
    query: &Query,
    body: &[u8],
) -> ApiResult<Response> {
    let resource = path.resource;
    let is_pods = resource.kind == "PodMetrics";
    let name = path.name.as_deref();
    match (method, name) {
        (&Method::GET, Some(name)) => {
            let found = if is_pods {
                let key = (path.namespace.clone().unwrap_or_default(), name.to_owned());
                store
                    .pods
                    .read()
                    .get(&key)
                    .filter(|s| MetricsStore::fresh(s))
                    .map(|s| s.object.clone())
            } else {
                store
                    .nodes
                    .read()
                    .get(name)
                    .filter(|s| MetricsStore::fresh(s))
                    .map(|s| s.object.clone())
            };
            let obj = found
                .ok_or_else(|| ApiError::from(status::not_found(&Target::of(resource, name))))?;
            Ok(json_response(StatusCode::OK, &obj))
        }
        (&Method::GET, None) => {
            let filter = Filter::from_query(query, resource)?;
            // Serialized straight from the samples under the read lock: no copy of 5,000
            // objects per list.
            let mut body = Vec::with_capacity(64 * 1024);
            body.extend_from_slice(
                format!(
                    r#"{{"kind":"{}List","apiVersion":"metrics.k8s.io/v1beta1","metadata":{{}},"items":["#,
                    resource.kind
                )
                .as_bytes(),
            );
            let mut first = true;
            let mut write = |object: &Value| -> ApiResult<()> {
                if !first {
                    body.push(b',');
                }
                first = false;
                serde_json::to_writer(&mut body, object)
                    .map_err(|err| ApiError::internal("cannot encode the answer", &err))
            };
            if is_pods {
                let pods = store.pods.read();
                for ((ns, _), sample) in pods.iter() {
                    if MetricsStore::fresh(sample)
                        && path.namespace.as_deref().is_none_or(|want| want == ns)
                        && filter.matches(&sample.object)
                    {
                        write(&sample.object)?;
                    }
                }
            } else {
                let nodes = store.nodes.read();
                for sample in nodes.values() {
                    if MetricsStore::fresh(sample) && filter.matches(&sample.object) {
                        write(&sample.object)?;
                    }
                }
            }
            body.extend_from_slice(b"]}");
            Ok((
                StatusCode::OK,
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                body,
            )
                .into_response())
        }
        (&Method::PUT, Some(name)) => {
            let mut obj: Value = tugboat_api::strict::parse_json(body).map_err(|err| {
                ApiError::bad_request(format!("invalid {}: {err}", resource.kind))
            })?;
            if objects::name(&obj).is_some_and(|sent| sent != name) {
                return Err(ApiError::bad_request(format!(
                    "the name of the object does not match the name on the URL ({name})"
                )));
            }
            let meta = objects::metadata_mut(&mut obj)?;
            meta.insert("name".into(), json!(name));
            if let Some(ns) = &path.namespace {
                meta.insert("namespace".into(), json!(ns));
            }
            meta.insert("creationTimestamp".into(), json!(objects::now_rfc3339()));
            obj["kind"] = json!(resource.kind);
            obj["apiVersion"] = json!("metrics.k8s.io/v1beta1");
            let sample = Sample {
                object: obj.clone(),
                received: Instant::now(),
            };
            if is_pods {
                let key = (path.namespace.clone().unwrap_or_default(), name.to_owned());
                store.pods.write().insert(key, sample);
            } else {
                store.nodes.write().insert(name.to_owned(), sample);
            }
            Ok(json_response(StatusCode::OK, &obj))
        }
        (&Method::DELETE, Some(name)) => {
            let removed = if is_pods {
                let key = (path.namespace.clone().unwrap_or_default(), name.to_owned());
                store.pods.write().remove(&key).is_some()
            } else {
                store.nodes.write().remove(name).is_some()
            };
            if !removed {
                return Err(status::not_found(&Target::of(resource, name)).into());
            }
            Ok(json_response(
                StatusCode::OK,
                &serde_json::to_value(status::success()).unwrap_or_default(),
            ))
        }
        _ => Err(status::method_not_allowed(
            &Target::of(resource, name.unwrap_or("")),
            method.as_str(),
        )
        .into()),
    }
}
