//! watch: a chunked stream of `{"type": ..., "object": ...}` lines from the watch cache.
//!
//! - No `resourceVersion`, or `0`: ADDED for every current object, then changes.
//! - A resource version: every change after it; one older than the cache keeps gets a single
//!   ERROR event carrying a 410 `Expired` Status, and the client relists.
//! - Selectors apply to both sides of a change: an object that stops matching arrives as
//!   DELETED, one that starts matching as ADDED.
//! - `allowWatchBookmarks` adds BOOKMARK events with the current resource version while idle.
//! - Tables and PartialObjectMetadata are sent per event when the client asked for them; table
//!   column definitions go with the first event only.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::stream;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tugboat_api::resources::ResourceInfo;
use tugboat_api::table::{self, IncludeObject};

use super::Ctx;
use crate::cache::{CacheError, CachedObject, Change, ChangeKind, ResourceCache, Subscription};
use crate::error::{ApiError, ApiResult};
use crate::request::{Answer, Filter, answer_form};

/// How often an idle watch with bookmarks enabled gets one.
const BOOKMARK_INTERVAL: Duration = Duration::from_secs(30);
/// How long a watch lasts without `timeoutSeconds` (kube-apiserver picks 30 to 60 minutes).
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1800);
/// Changes taken from the cache per lock.
const BATCH: usize = 256;
/// The most bytes of pending lines joined into one chunk.
const CHUNK_BYTES: usize = 64 * 1024;

/// watch a collection.
pub async fn watch(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let resource = ctx.path.resource;
    let filter = Filter::from_query(ctx.query, resource)?;
    let cache = ctx
        .state
        .caches
        .get(resource)
        .cloned()
        .ok_or_else(|| ApiError::internal("no watch cache", &resource.plural))?;
    let prefix = resource.storage_prefix_in(ctx.path.namespace.as_deref());
    let timeout = ctx
        .query
        .number("timeoutSeconds")?
        .filter(|&s| s > 0)
        .map_or(DEFAULT_TIMEOUT, |s| Duration::from_secs(s.unsigned_abs()));
    let form = match answer_form(ctx.headers) {
        Answer::Table => Form::Table(
            ctx.query
                .get("includeObject")
                .unwrap_or("")
                .parse()
                .map_err(|err: tugboat_api::table::TableError| {
                    ApiError::bad_request(err.to_string())
                })?,
        ),
        Answer::Metadata => Form::Metadata,
        Answer::Object => Form::Object,
    };

    let resource_version = ctx.query.get("resourceVersion").unwrap_or("");
    let not_ready = || {
        ApiError::from(tugboat_api::status::service_unavailable(
            "the watch cache is not ready yet",
        ))
    };
    let mut initial = Vec::new();
    let subscription = if resource_version.is_empty() || resource_version == "0" {
        let snapshot = cache.snapshot(&prefix).map_err(|_| not_ready())?;
        initial = snapshot
            .objects
            .into_iter()
            .filter(|o| filter.matches_cached(o))
            .collect();
        cache.subscribe(snapshot.revision)
    } else {
        let after: i64 = resource_version.parse().map_err(|_| {
            ApiError::bad_request(format!("invalid resourceVersion {resource_version:?}"))
        })?;
        cache.subscribe(after)
    };
    let mut lines: Vec<Bytes> = Vec::new();
    let mut encoder = Encoder {
        resource,
        version: ctx.path.version.clone(),
        form,
        sent_columns: false,
        api_version: resource.api_version(&ctx.path.version),
        verbatim: matches!(form, Form::Object)
            && crate::cache::serves_stored_bytes(cache.stored_as(), resource, &ctx.path.version),
    };
    let subscription = match subscription {
        Ok(subscription) => Some(subscription),
        Err(CacheError::NotReady) => return Err(not_ready()),
        Err(CacheError::TooOld { oldest }) => {
            lines.push(expired_event(resource_version, oldest));
            None
        }
    };
    for obj in &initial {
        lines.push(encoder.event("ADDED", obj));
    }
    let watcher = Watcher {
        cache,
        subscription,
        filter,
        prefix,
        encoder,
        pending: lines.into(),
        bookmarks: ctx.query.flag("allowWatchBookmarks"),
        deadline: tokio::time::Instant::now() + timeout,
        shutdown: ctx.state.shutdown.clone(),
    };
    let body = Body::from_stream(stream::unfold(watcher, Watcher::next_chunk));
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache, private"),
        ],
        body,
    )
        .into_response())
}

fn expired_event(requested: &str, oldest: i64) -> Bytes {
    let status =
        tugboat_api::status::expired(format!("too old resource version: {requested} ({oldest})"));
    line(&json!({ "type": "ERROR", "object": status }))
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

#[derive(Clone, Copy)]
enum Form {
    Object,
    Metadata,
    Table(IncludeObject),
}

struct Encoder {
    resource: &'static ResourceInfo,
    version: String,
    form: Form,
    sent_columns: bool,
    /// The group and version the watcher reads: what its shared lines are keyed by (core and
    /// events.k8s.io Events share a cache and a version name, not their lines).
    api_version: String,
    /// Whether this watcher reads objects as they are stored: verbatim ones are written from
    /// the stored bytes without decoding.
    verbatim: bool,
}

/// One event line in object or metadata form (the forms that do not depend on the watcher).
fn encode_shared(
    resource: &ResourceInfo,
    version: &str,
    metadata: bool,
    kind: &str,
    obj: &Value,
) -> Bytes {
    let obj = crate::convert::as_version(resource, obj, version);
    let metadata_only;
    let object = if metadata {
        metadata_only = table::partial_object_metadata(&obj);
        &metadata_only
    } else {
        &*obj
    };
    event_line(kind, object)
}

/// The event line of a verbatim object, from its stored bytes (`None` when not verbatim).
fn verbatim_line(kind: &str, obj: &CachedObject) -> Option<Bytes> {
    if !obj.is_verbatim() {
        return None;
    }
    let mut bytes = Vec::with_capacity(obj.stored_len() + kind.len() + 48);
    bytes.extend_from_slice(b"{\"object\":");
    if !obj.write_json(&mut bytes) {
        return None;
    }
    bytes.extend_from_slice(b",\"type\":\"");
    bytes.extend_from_slice(kind.as_bytes());
    bytes.extend_from_slice(b"\"}\n");
    Some(Bytes::from(bytes))
}

/// `{"object": ..., "type": ...}` and a newline, serialized straight from the borrowed object
/// (`json!` would copy it into a new tree first). Keys in the order `json!` gives them.
fn event_line(kind: &str, object: &Value) -> Bytes {
    #[derive(serde::Serialize)]
    struct EventLine<'a> {
        object: &'a Value,
        #[serde(rename = "type")]
        kind: &'a str,
    }
    let mut bytes = serde_json::to_vec(&EventLine { object, kind }).unwrap_or_default();
    bytes.push(b'\n');
    Bytes::from(bytes)
}

impl Encoder {
    /// The line for a change from the cache: object and metadata forms are encoded once per
    /// change and shared with every other watcher asking for the same; tables (whose column
    /// definitions go with a watcher's first event only) are encoded per watcher.
    fn change(&mut self, kind: &'static str, change: &Change) -> Bytes {
        let metadata = match self.form {
            Form::Object => false,
            Form::Metadata => true,
            Form::Table(_) => return self.event(kind, &change.object),
        };
        let (resource, version, verbatim) = (self.resource, self.version.as_str(), self.verbatim);
        change
            .encoded
            .get_or_encode(kind, &self.api_version, metadata, || {
                if !metadata
                    && verbatim
                    && let Some(line) = verbatim_line(kind, &change.object)
                {
                    return line;
                }
                encode_shared(resource, version, metadata, kind, &change.object.value())
            })
    }

    fn event(&mut self, kind: &str, cached: &CachedObject) -> Bytes {
        let include = match self.form {
            Form::Object => {
                if self.verbatim
                    && let Some(line) = verbatim_line(kind, cached)
                {
                    return line;
                }
                return encode_shared(self.resource, &self.version, false, kind, &cached.value());
            }
            Form::Metadata => {
                return encode_shared(self.resource, &self.version, true, kind, &cached.value());
            }
            Form::Table(include) => include,
        };
        let obj = crate::convert::to_version(self.resource, &cached.value(), &self.version);
        let now = tugboat_api::table::timestamp_of(std::time::SystemTime::now());
        let mut t = table::table(
            self.resource.group,
            self.resource.plural,
            [&obj],
            now,
            include,
        );
        if self.sent_columns {
            t.column_definitions.clear();
        }
        self.sent_columns = true;
        t.metadata.resource_version = obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let object = serde_json::to_value(t).unwrap_or(Value::Null);
        line(&json!({ "type": kind, "object": object }))
    }

    fn bookmark(&self, revision: i64) -> Bytes {
        let api_version = match self.form {
            Form::Object => self.resource.api_version(&self.version),
            _ => "meta.k8s.io/v1".to_owned(),
        };
        let kind = match self.form {
            Form::Object => self.resource.kind,
            Form::Metadata => "PartialObjectMetadata",
            Form::Table(_) => "Table",
        };
        line(&json!({
            "type": "BOOKMARK",
            "object": {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": { "resourceVersion": revision.to_string() },
            }
        }))
    }
}

struct Watcher {
    cache: Arc<ResourceCache>,
    subscription: Option<Subscription>,
    filter: Filter,
    prefix: String,
    encoder: Encoder,
    pending: std::collections::VecDeque<Bytes>,
    bookmarks: bool,
    deadline: tokio::time::Instant,
    shutdown: CancellationToken,
}

impl Watcher {
    async fn next_chunk(mut self) -> Option<(Result<Bytes, std::convert::Infallible>, Self)> {
        loop {
            if let Some(chunk) = self.take_pending() {
                return Some((Ok(chunk), self));
            }
            let subscription = self.subscription.as_mut()?;
            match self.cache.changes_after(subscription, BATCH) {
                Err(CacheError::TooOld { oldest }) => {
                    let position = subscription.position().to_string();
                    self.subscription = None;
                    self.pending.push_back(expired_event(&position, oldest));
                    continue;
                }
                Err(CacheError::NotReady) => return None,
                Ok(changes) if !changes.is_empty() => {
                    for change in changes {
                        self.encode_change(&change);
                    }
                    continue;
                }
                Ok(_) => {}
            }
            let wait = tokio::time::sleep(if self.bookmarks {
                BOOKMARK_INTERVAL
            } else {
                Duration::from_secs(3600)
            });
            let subscription = self.subscription.as_mut()?;
            tokio::select! {
                () = self.shutdown.cancelled() => return None,
                () = tokio::time::sleep_until(self.deadline) => return None,
                changed = subscription.changed() => {
                    if !changed {
                        return None;
                    }
                }
                () = wait => {
                    let revision = self.cache.revision().max(subscription.position());
                    self.pending.push_back(self.encoder.bookmark(revision));
                }
            }
        }
    }

    fn encode_change(&mut self, change: &Change) {
        // The cache holds every namespace; the key says whether this one is watched.
        if !change.object.has_metadata() || !change.key.starts_with(&self.prefix) {
            return;
        }
        let now_matches =
            change.kind != ChangeKind::Deleted && self.filter.matches_cached(&change.object);
        let was_matching = change
            .previous
            .as_ref()
            .is_some_and(|p| self.filter.matches_cached(p));
        let kind = match (change.kind, was_matching, now_matches) {
            (ChangeKind::Deleted, true, _) => "DELETED",
            (ChangeKind::Deleted, false, _) => return,
            (_, false, true) => "ADDED",
            (_, true, true) => "MODIFIED",
            (_, true, false) => "DELETED",
            (_, false, false) => return,
        };
        let chunk = self.encoder.change(kind, change);
        self.pending.push_back(chunk);
    }

    /// The pending lines as one chunk (up to [`CHUNK_BYTES`]): a watcher that fell behind
    /// catches up with one write (one TLS record, one syscall) instead of one per event.
    fn take_pending(&mut self) -> Option<Bytes> {
        let first = self.pending.pop_front()?;
        if self.pending.is_empty() || first.len() >= CHUNK_BYTES {
            return Some(first);
        }
        let mut chunk =
            BytesMut::with_capacity(CHUNK_BYTES.min(first.len() * (1 + self.pending.len())));
        chunk.extend_from_slice(&first);
        while let Some(next) = self.pending.front() {
            if chunk.len() + next.len() > CHUNK_BYTES {
                break;
            }
            chunk.extend_from_slice(next);
            self.pending.pop_front();
        }
        Some(chunk.freeze())
    }
}
