//! The watch cache: one store watch per resource, fanned out to every client.
//!
//! For each resource the cache keeps the current objects (to serve `resourceVersion=0` lists and
//! the initial ADDED events of a watch) and a ring of recent events (to serve watches that start
//! from a resource version). A thousand watchers cost the store one watch. The cache follows the
//! store with a list, then a watch from the list's revision; if that watch breaks (the store lost
//! history, or went away) it relists, and watchers older than the new starting point get 410.
//!
//! Objects are kept as the store's bytes plus a small projection (labels, the values of the
//! resource's field selectors, whether the bytes can be written out as they are): about their
//! JSON size rather than a decoded tree's ten times. Watches and lists in the stored version
//! write those bytes straight into the answer; anything else decodes on demand.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use parking_lot::{Mutex, RwLock};
use serde_json::Value;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tugboat_api::fields;
use tugboat_api::resources::{Registry, ResourceInfo};
use tugboat_store::{EventKind, KeyValue, ListOptions, Revision, Store};

use crate::error::{ApiError, ApiResult};
use crate::objects;

/// How many recent events each resource keeps for watchers that resume.
const EVENTS_PER_RESOURCE: usize = 20_000;

/// How many bytes of stored objects those events may add up to. Events hold the stored bytes
/// (see [`CachedObject`]), so this is about what the ring costs: 20,000 heartbeats of 5,000
/// nodes (2.3 KB each) would hold some 46 MB. A watcher further behind than this gets 410 and
/// relists, as from any ring.
const EVENT_BYTES_PER_RESOURCE: usize = 8 << 20;

/// How many of the newest events keep the watch lines encoded for them.
const ENCODED_EVENTS: usize = 1024;

/// The kind of a watch event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Updated.
    Modified,
    /// Deleted.
    Deleted,
}

impl ChangeKind {
    /// The watch event type on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// The watch lines already encoded for one change, shared by every watcher that asks for the
/// same event type, version and answer form: a thousand watchers cost one conversion and one
/// serialization per change instead of a thousand.
#[derive(Debug, Default)]
pub struct Encodings {
    lines: Mutex<Vec<(EncodingKey, Bytes)>>,
}

/// What an encoded watch line depends on besides the change itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodingKey {
    /// The event type on the wire (a selector can turn a change into ADDED or DELETED).
    pub kind: &'static str,
    /// The group and version the watcher reads (`apps/v1`).
    pub version: String,
    /// Whether the watcher asked for PartialObjectMetadata instead of the object.
    pub metadata: bool,
}

impl Encodings {
    /// The line for (`kind`, `version`, `metadata`), encoded by `encode` the first time any
    /// watcher asks for it.
    pub fn get_or_encode(
        &self,
        kind: &'static str,
        version: &str,
        metadata: bool,
        encode: impl FnOnce() -> Bytes,
    ) -> Bytes {
        // Holding the lock while encoding: the other watchers of this change would only encode
        // the same bytes again.
        let mut lines = self.lines.lock();
        let found = lines
            .iter()
            .find(|(k, _)| k.kind == kind && k.metadata == metadata && k.version == version);
        if let Some((_, line)) = found {
            return line.clone();
        }
        let line = encode();
        let key = EncodingKey {
            kind,
            version: version.to_owned(),
            metadata,
        };
        lines.push((key, line.clone()));
        line
    }

    /// Drop the lines encoded so far.
    pub fn clear(&self) {
        let mut lines = self.lines.lock();
        lines.clear();
        lines.shrink_to_fit();
    }

    /// How many distinct lines have been encoded.
    pub fn len(&self) -> usize {
        self.lines.lock().len()
    }

    /// Whether none has been encoded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An object as the cache keeps it: the bytes the store holds plus the few fields the hot
/// paths read, so that it costs about its JSON size instead of a decoded tree (some ten times
/// that). The whole object is decoded only when something needs more than the projection.
#[derive(Debug, Clone)]
pub struct CachedObject {
    /// The storage version's JSON, as stored (without `metadata.resourceVersion`).
    stored: Bytes,
    /// The resource version the object shows.
    revision: Revision,
    /// Where `metadata.resourceVersion` goes in `stored`, when the bytes can be written into
    /// an answer as they are.
    splice: Option<Splice>,
    /// The values of the resource's selectable fields, in [`fields::supported_fields`] order
    /// (`metadata.name` and `metadata.namespace` first).
    fields: Packed,
    /// Label keys and values, alternating; labels that are not strings are left out.
    labels: Packed,
    /// Whether the object has a `metadata` object (watch events without one are skipped).
    has_metadata: bool,
    /// Whether the object shows the storage version's `apiVersion` and `kind`.
    typed_as_stored: bool,
    /// The decoded object, kept only for resources read whole per request (RBAC).
    decoded: Option<Arc<Value>>,
}

/// Where to write `"resourceVersion":"N"` into the stored bytes: just after `metadata`'s `{`.
#[derive(Debug, Clone, Copy)]
struct Splice {
    after_brace: u32,
    metadata_empty: bool,
}

/// Strings packed into one allocation, with their end offsets.
#[derive(Debug, Clone, Default)]
struct Packed {
    text: Box<str>,
    ends: Box<[u32]>,
}

impl Packed {
    fn new<'a>(items: impl IntoIterator<Item = &'a str>) -> Self {
        let mut text = String::new();
        let mut ends = Vec::new();
        for item in items {
            text.push_str(item);
            ends.push(u32::try_from(text.len()).unwrap_or(u32::MAX));
        }
        Packed {
            text: text.into_boxed_str(),
            ends: ends.into_boxed_slice(),
        }
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    fn get(&self, index: usize) -> Option<&str> {
        let end = *self.ends.get(index)? as usize;
        let start = match index {
            0 => 0,
            _ => *self.ends.get(index - 1)? as usize,
        };
        self.text.get(start..end)
    }
}

impl CachedObject {
    /// The object stored at `kv`, projected for `resource` (its storage version's JSON).
    pub fn from_store(resource: &ResourceInfo, kv: &KeyValue) -> ApiResult<Self> {
        Self::from_bytes(resource, kv.value.clone(), kv.mod_revision)
    }

    fn from_bytes(resource: &ResourceInfo, stored: Bytes, revision: Revision) -> ApiResult<Self> {
        let mut value: Value = serde_json::from_slice(&stored)
            .map_err(|err| ApiError::internal("a stored object does not decode", &err))?;
        let metadata = value.get("metadata").and_then(Value::as_object);
        let has_metadata = metadata.is_some();
        // Bytes holding a resource version of their own, or a line break, would not make a
        // valid watch line or object when spliced: those objects are always re-encoded.
        let splice = match metadata {
            Some(meta) if !meta.contains_key("resourceVersion") && !stored.contains(&b'\n') => {
                metadata_brace(&stored).and_then(|at| {
                    Some(Splice {
                        after_brace: u32::try_from(at + 1).ok()?,
                        metadata_empty: meta.is_empty(),
                    })
                })
            }
            _ => None,
        };
        let labels = objects::labels(&value);
        let labels = Packed::new(labels.iter().flat_map(|(k, v)| [k.as_str(), v.as_str()]));
        let field_values: Vec<String> = fields::supported_fields(resource.group, resource.plural)
            .into_iter()
            .map(|field| {
                fields::field_value(resource.group, resource.plural, field, &value)
                    .unwrap_or_default()
            })
            .collect();
        let typed_as_stored = value.get("kind").and_then(Value::as_str) == Some(resource.kind)
            && value.get("apiVersion").and_then(Value::as_str)
                == Some(resource.api_version(resource.preferred_version()).as_str());
        let decoded = if keeps_decoded(resource) && value.is_object() {
            objects::set_resource_version(&mut value, revision)?;
            Some(Arc::new(value))
        } else {
            None
        };
        Ok(CachedObject {
            stored,
            revision,
            splice,
            fields: Packed::new(field_values.iter().map(String::as_str)),
            labels,
            has_metadata,
            typed_as_stored,
            decoded,
        })
    }

    /// The same object showing `revision` (a delete's last state).
    fn at_revision(&self, revision: Revision) -> Self {
        let mut object = self.clone();
        object.revision = revision;
        if let Some(decoded) = &self.decoded {
            let mut value = (**decoded).clone();
            let _ = objects::set_resource_version(&mut value, revision);
            object.decoded = Some(Arc::new(value));
        }
        object
    }

    /// An event with no object to show (a delete of something never seen).
    fn nothing(revision: Revision) -> Self {
        CachedObject {
            stored: Bytes::from_static(b"null"),
            revision,
            splice: None,
            fields: Packed::default(),
            labels: Packed::default(),
            has_metadata: false,
            typed_as_stored: false,
            decoded: None,
        }
    }

    /// The resource version the object shows.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Whether the object has metadata.
    pub fn has_metadata(&self) -> bool {
        self.has_metadata
    }

    /// The whole object, with its resource version: decoded from the stored bytes unless the
    /// cache keeps it decoded.
    pub fn value(&self) -> Arc<Value> {
        if let Some(decoded) = &self.decoded {
            return Arc::clone(decoded);
        }
        let mut value: Value = serde_json::from_slice(&self.stored).unwrap_or(Value::Null);
        if value.is_object() {
            let _ = objects::set_resource_version(&mut value, self.revision);
        }
        Arc::new(value)
    }

    /// The labels, as selectors read them.
    pub fn labels(&self) -> BTreeMap<String, String> {
        (0..self.labels.len() / 2)
            .filter_map(|i| {
                Some((
                    self.labels.get(2 * i)?.to_owned(),
                    self.labels.get(2 * i + 1)?.to_owned(),
                ))
            })
            .collect()
    }

    /// The value of the selectable field at `index` of the resource's
    /// [`fields::supported_fields`], as a field selector compares it ([`fields::field_value`]).
    pub fn field(&self, index: usize) -> Option<&str> {
        self.fields.get(index)
    }

    /// Whether [`CachedObject::write_json`] can write this object (for a version whose
    /// objects look like the stored ones: [`serves_stored_bytes`]).
    pub fn is_verbatim(&self) -> bool {
        self.splice.is_some() && self.typed_as_stored
    }

    /// Append the object's JSON with its resource version to `out`; false (and nothing
    /// written) when the bytes cannot be used as they are.
    pub fn write_json(&self, out: &mut Vec<u8>) -> bool {
        let Some(splice) = self.splice else {
            return false;
        };
        let (head, tail) = self.stored.split_at(splice.after_brace as usize);
        out.extend_from_slice(head);
        out.extend_from_slice(b"\"resourceVersion\":\"");
        out.extend_from_slice(self.revision.to_string().as_bytes());
        out.push(b'"');
        if !splice.metadata_empty {
            out.push(b',');
        }
        out.extend_from_slice(tail);
        true
    }

    /// The size of the stored bytes.
    pub fn stored_len(&self) -> usize {
        self.stored.len()
    }
}

/// Where [`CachedObject::field`] finds the selectable `field` of `resource`.
pub fn field_index(resource: &ResourceInfo, field: &str) -> Option<usize> {
    fields::supported_fields(resource.group, resource.plural)
        .iter()
        .position(|f| *f == field)
}

/// Whether `resource` at `version` (the stored resource, or one sharing its storage) shows
/// objects of `stored` as they are stored, so that verbatim objects need no decoding.
pub fn serves_stored_bytes(stored: &ResourceInfo, resource: &ResourceInfo, version: &str) -> bool {
    !crate::convert::converts(resource, version)
        && resource.kind == stored.kind
        && resource.api_version(version) == stored.api_version(stored.preferred_version())
}

/// RBAC objects are few, change rarely and are read whole on every authorization: decoding
/// them per request would cost more than keeping them decoded.
fn keeps_decoded(resource: &ResourceInfo) -> bool {
    resource.group == "rbac.authorization.k8s.io"
}

/// The offset of the `{` opening the top-level `metadata` object of valid JSON `bytes`.
fn metadata_brace(bytes: &[u8]) -> Option<usize> {
    let mut at = skip_whitespace(bytes, 0);
    if bytes.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        at = skip_whitespace(bytes, at);
        if bytes.get(at) != Some(&b'"') {
            return None; // `}`: no metadata
        }
        let key_end = skip_string(bytes, at)?;
        let key = &bytes[at..key_end];
        at = skip_whitespace(bytes, key_end);
        if bytes.get(at) != Some(&b':') {
            return None;
        }
        at = skip_whitespace(bytes, at + 1);
        if key == b"\"metadata\"" {
            return (bytes.get(at) == Some(&b'{')).then_some(at);
        }
        at = skip_whitespace(bytes, skip_value(bytes, at)?);
        match bytes.get(at) {
            Some(b',') => at += 1,
            _ => return None,
        }
    }
}

fn skip_whitespace(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).is_some_and(|b| b.is_ascii_whitespace()) {
        at += 1;
    }
    at
}

/// The offset after the string starting at `at` (its opening quote).
fn skip_string(bytes: &[u8], mut at: usize) -> Option<usize> {
    at += 1;
    loop {
        match bytes.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

/// The offset after the value starting at `at`.
fn skip_value(bytes: &[u8], mut at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => skip_string(bytes, at),
        b'{' | b'[' => {
            let mut depth = 0usize;
            loop {
                match bytes.get(at)? {
                    b'"' => {
                        at = skip_string(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            while bytes
                .get(at)
                .is_some_and(|b| !matches!(b, b',' | b'}' | b']') && !b.is_ascii_whitespace())
            {
                at += 1;
            }
            Some(at)
        }
    }
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (for a delete: the last state, with the delete's revision).
    pub object: Arc<CachedObject>,
    /// The object before the change, if it existed.
    pub previous: Option<Arc<CachedObject>>,
    /// The store revision of the change.
    pub revision: Revision,
    /// The object's storage key.
    pub key: Arc<str>,
    /// Watch lines encoded for this change so far.
    pub encoded: Arc<Encodings>,
    /// The size of the stored object: what this change counts against the ring's budget.
    pub stored_bytes: usize,
}

/// A consistent view: the objects at one revision.
pub struct Snapshot {
    /// Objects in key order.
    pub objects: Vec<Arc<CachedObject>>,
    /// The revision they are current at.
    pub revision: Revision,
}

/// Why a watch cannot start where asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheError {
    /// The cache has not loaded yet.
    NotReady,
    /// The resource version is older than the oldest event kept.
    TooOld {
        /// The oldest resource version a watch may start from.
        oldest: Revision,
    },
}

struct State {
    objects: BTreeMap<String, Arc<CachedObject>>,
    events: VecDeque<Change>,
    /// The sum of the events' `stored_bytes`.
    event_bytes: usize,
    /// Every change after `start` is in `events`.
    start: Revision,
    /// The newest revision applied.
    revision: Revision,
    ready: bool,
}

/// The cache of one resource.
pub struct ResourceCache {
    resource: &'static ResourceInfo,
    state: RwLock<State>,
    latest: watch::Sender<Revision>,
}

/// The caches of every stored resource.
pub struct WatchCaches {
    caches: HashMap<String, Arc<ResourceCache>>,
}

impl WatchCaches {
    /// Start a cache per stored resource, each following the store until `cancel`.
    pub fn start(
        registry: &Registry,
        store: &Arc<dyn Store>,
        tracker: &TaskTracker,
        cancel: &CancellationToken,
    ) -> Self {
        let mut caches = HashMap::new();
        for resource in registry.all().filter(|r| r.stored) {
            let prefix = resource.storage_prefix();
            if caches.contains_key(&prefix) {
                continue; // events.k8s.io and core events share storage
            }
            let (latest, _) = watch::channel(0);
            let cache = Arc::new(ResourceCache {
                resource,
                state: RwLock::new(State {
                    objects: BTreeMap::new(),
                    events: VecDeque::new(),
                    event_bytes: 0,
                    start: 0,
                    revision: 0,
                    ready: false,
                }),
                latest,
            });
            tracker.spawn(follow_store(
                Arc::clone(&cache),
                Arc::clone(store),
                cancel.clone(),
            ));
            caches.insert(prefix, cache);
        }
        WatchCaches { caches }
    }

    /// The cache holding `resource`.
    pub fn get(&self, resource: &ResourceInfo) -> Option<&Arc<ResourceCache>> {
        self.caches.get(&resource.storage_prefix())
    }

    /// Whether every cache has loaded.
    pub fn ready(&self) -> bool {
        self.caches.values().all(|c| c.state.read().ready)
    }

    /// Wait (bounded) until every cache has loaded.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.ready() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }
}

impl ResourceCache {
    /// The objects under `prefix` (a namespace's prefix, or the resource's) now.
    pub fn snapshot(&self, prefix: &str) -> Result<Snapshot, CacheError> {
        let state = self.state.read();
        if !state.ready {
            return Err(CacheError::NotReady);
        }
        let objects = state
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| Arc::clone(v))
            .collect();
        Ok(Snapshot {
            objects,
            revision: state.revision,
        })
    }

    /// One object by key.
    pub fn get(&self, key: &str) -> Option<Arc<CachedObject>> {
        self.state.read().objects.get(key).cloned()
    }

    /// The object at `key` if the cache holds it at exactly `revision` (its last change): a list
    /// read from the store reuses the cached object instead of parsing the stored bytes again.
    pub fn get_at(&self, key: &str, revision: Revision) -> Option<Arc<CachedObject>> {
        let state = self.state.read();
        let obj = state.objects.get(key)?;
        (obj.revision == revision).then(|| Arc::clone(obj))
    }

    /// The object stored at `kv`, as this cache would keep it.
    pub fn project(&self, kv: &KeyValue) -> ApiResult<CachedObject> {
        CachedObject::from_store(self.resource, kv)
    }

    /// The resource whose storage version the cached objects are in.
    pub fn stored_as(&self) -> &'static ResourceInfo {
        self.resource
    }

    /// The newest revision the cache has applied.
    pub fn revision(&self) -> Revision {
        self.state.read().revision
    }

    /// Follow changes after `after`: a receiver of revision announcements plus the position.
    pub fn subscribe(&self, after: Revision) -> Result<Subscription, CacheError> {
        let state = self.state.read();
        if !state.ready {
            return Err(CacheError::NotReady);
        }
        if after < state.start {
            return Err(CacheError::TooOld {
                oldest: state.start,
            });
        }
        Ok(Subscription {
            latest: self.latest.subscribe(),
            after,
        })
    }

    /// Changes after the subscription's position (at most `max`), advancing it.
    pub fn changes_after(
        &self,
        subscription: &mut Subscription,
        max: usize,
    ) -> Result<Vec<Change>, CacheError> {
        let state = self.state.read();
        if subscription.after < state.start {
            return Err(CacheError::TooOld {
                oldest: state.start,
            });
        }
        let first = state
            .events
            .partition_point(|c| c.revision <= subscription.after);
        let changes: Vec<Change> = state.events.range(first..).take(max).cloned().collect();
        if let Some(last) = changes.last() {
            subscription.after = last.revision;
        }
        Ok(changes)
    }

    fn apply(&self, change: Change, key: String) {
        let mut state = self.state.write();
        match change.kind {
            ChangeKind::Deleted => {
                state.objects.remove(&key);
            }
            _ => {
                state.objects.insert(key, Arc::clone(&change.object));
            }
        }
        state.revision = change.revision;
        let revision = change.revision;
        state.event_bytes += change.stored_bytes;
        state.events.push_back(change);
        // Lines encoded for older events are dropped: watchers that far behind are few, and
        // encode again what they need rather than every event keeping copies.
        if let Some(aged) = state
            .events
            .len()
            .checked_sub(ENCODED_EVENTS + 1)
            .and_then(|i| state.events.get(i))
        {
            aged.encoded.clear();
        }
        // The newest event always stays: a watcher at the head must be able to continue.
        while state.events.len() > EVENTS_PER_RESOURCE
            || (state.event_bytes > EVENT_BYTES_PER_RESOURCE && state.events.len() > 1)
        {
            if let Some(old) = state.events.pop_front() {
                state.start = old.revision;
                state.event_bytes -= old.stored_bytes;
            }
        }
        drop(state);
        self.latest.send_replace(revision);
    }

    fn reset(&self, objects: BTreeMap<String, Arc<CachedObject>>, revision: Revision) {
        let mut state = self.state.write();
        state.objects = objects;
        state.events.clear();
        state.event_bytes = 0;
        state.start = revision;
        state.revision = revision;
        state.ready = true;
        drop(state);
        self.latest.send_replace(revision);
    }
}

/// A watcher's place in a resource's event ring.
pub struct Subscription {
    latest: watch::Receiver<Revision>,
    after: Revision,
}

impl Subscription {
    /// Wait until a revision newer than the position is announced. False when the cache stops.
    pub async fn changed(&mut self) -> bool {
        loop {
            if *self.latest.borrow_and_update() > self.after {
                return true;
            }
            if self.latest.changed().await.is_err() {
                return false;
            }
        }
    }

    /// The position: the revision of the last change taken.
    pub fn position(&self) -> Revision {
        self.after
    }
}

/// List, then watch from the list's revision; relist whenever the watch breaks.
async fn follow_store(cache: Arc<ResourceCache>, store: Arc<dyn Store>, cancel: CancellationToken) {
    let prefix = cache.resource.storage_prefix();
    let mut backoff = Duration::from_millis(100);
    loop {
        let followed = tokio::select! {
            () = cancel.cancelled() => return,
            result = follow_once(&cache, store.as_ref(), &prefix) => result,
        };
        if let Err(err) = followed {
            tracing::warn!(resource = cache.resource.plural, error = %err, "watch cache relisting");
        }
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

async fn follow_once(
    cache: &ResourceCache,
    store: &dyn Store,
    prefix: &str,
) -> Result<(), tugboat_store::StoreError> {
    let mut objects = BTreeMap::new();
    let mut options = ListOptions {
        limit: Some(5000),
        ..Default::default()
    };
    let revision = loop {
        let page = store.list(prefix, options.clone()).await?;
        for kv in &page.items {
            match cache.project(kv) {
                Ok(obj) => {
                    objects.insert(kv.key.clone(), Arc::new(obj));
                }
                Err(err) => {
                    tracing::error!(key = %kv.key, error = %err, "skipping undecodable object")
                }
            }
        }
        match page.next_key {
            Some(next) => {
                options.continue_from = Some(next);
                options.at_revision = Some(page.revision);
            }
            None => break page.revision,
        }
    };
    cache.reset(objects, revision);
    let mut events = store.watch(prefix, revision).await?;
    while let Some(event) = events.next().await {
        let event = event?;
        // The previous state is usually the cached object itself: share it rather than hold
        // a second copy in the ring.
        let previous = match &event.prev {
            Some(prev) => cache
                .get_at(&prev.key, prev.mod_revision)
                .or_else(|| cache.project(prev).ok().map(Arc::new)),
            None => None,
        };
        // A delete's own value is empty: it holds the last state.
        let prev_bytes = event.prev.as_ref().map_or(0, |prev| prev.value.len());
        let (kind, object) = match event.kind {
            EventKind::Put => {
                let Ok(obj) = cache.project(&event.kv) else {
                    tracing::error!(key = %event.kv.key, "skipping undecodable object");
                    continue;
                };
                let kind = if previous.is_some() {
                    ChangeKind::Modified
                } else {
                    ChangeKind::Added
                };
                (kind, Arc::new(obj))
            }
            EventKind::Delete => {
                // A delete carries the last state, stamped with the delete's revision.
                let last = match &previous {
                    Some(previous) => previous.at_revision(event.revision()),
                    None => CachedObject::nothing(event.revision()),
                };
                (ChangeKind::Deleted, Arc::new(last))
            }
        };
        let change = Change {
            kind,
            object,
            previous,
            revision: event.revision(),
            key: Arc::from(event.kv.key.as_str()),
            encoded: Arc::default(),
            stored_bytes: event.kv.value.len().max(prev_bytes),
        };
        cache.apply(change, event.kv.key.clone());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cache of ConfigMaps following a fresh in-memory store.
    async fn following() -> (Arc<ResourceCache>, Arc<dyn Store>, CancellationToken) {
        let registry = Registry::builtin();
        let store: Arc<dyn Store> = Arc::new(tugboat_store::memory::memory_store().unwrap());
        let tracker = TaskTracker::new();
        let cancel = CancellationToken::new();
        let caches = WatchCaches::start(&registry, &store, &tracker, &cancel);
        assert!(caches.wait_ready(Duration::from_secs(10)).await);
        let info = registry.by_kind("", "ConfigMap").unwrap();
        (Arc::clone(caches.get(info).unwrap()), store, cancel)
    }

    /// Waits (bounded) until the cache has applied `revision`.
    async fn caught_up(cache: &ResourceCache, revision: Revision) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while cache.revision() < revision {
            assert!(tokio::time::Instant::now() < deadline, "cache behind");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    fn config_map(data: &str) -> Bytes {
        Bytes::from(
            serde_json::json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "big", "namespace": "default"},
                "data": {"blob": data}
            })
            .to_string(),
        )
    }

    #[tokio::test]
    async fn the_event_ring_is_bounded_by_bytes_and_shares_the_previous_object() {
        let (cache, store, cancel) = following().await;
        let key = "/registry/configmaps/default/big";
        let blob = "x".repeat(256 << 10);
        let mut revision = store.create(key, config_map(&blob)).await.unwrap();
        let first = revision;
        // 64 updates of 256 KiB: twice the ring's byte budget.
        for i in 0..64 {
            let value = config_map(&format!("{i}{blob}"));
            revision = store.update(key, value, revision).await.unwrap();
            caught_up(&cache, revision).await;
        }
        let state = cache.state.read();
        assert!(state.event_bytes <= EVENT_BYTES_PER_RESOURCE);
        assert!(
            state.events.len() < 64,
            "{} events kept",
            state.events.len()
        );
        // Each event's previous state is the object of the event before it, not a copy.
        let events: Vec<&Change> = state.events.iter().collect();
        for pair in events.windows(2) {
            let previous = pair[1].previous.as_ref().unwrap();
            assert!(Arc::ptr_eq(previous, &pair[0].object));
        }
        drop(state);
        // A watcher from the start is too far behind now; one from the newest change is not.
        assert!(matches!(
            cache.subscribe(first),
            Err(CacheError::TooOld { .. })
        ));
        assert!(cache.subscribe(revision).is_ok());
        cancel.cancel();
    }

    #[test]
    fn encodings_are_made_once_per_kind_version_and_form() {
        let encodings = Encodings::default();
        let mut made = 0;
        let mut encode = |text: &'static str| {
            made += 1;
            Bytes::from_static(text.as_bytes())
        };
        let a = encodings.get_or_encode("ADDED", "v1", false, || encode("a"));
        assert_eq!(&a[..], b"a");
        let again = encodings.get_or_encode("ADDED", "v1", false, || encode("x"));
        assert_eq!(&again[..], b"a", "the first encoding is shared");
        let deleted = encodings.get_or_encode("DELETED", "v1", false, || encode("d"));
        let metadata = encodings.get_or_encode("ADDED", "v1", true, || encode("m"));
        let other = encodings.get_or_encode("ADDED", "v2", false, || encode("o"));
        assert_eq!(
            [&deleted[..], &metadata[..], &other[..]],
            [b"d".as_slice(), b"m", b"o"]
        );
        assert_eq!(made, 4);
        assert_eq!(encodings.len(), 4);
    }

    fn stored(resource: &ResourceInfo, value: &Value, revision: Revision) -> CachedObject {
        CachedObject::from_bytes(resource, Bytes::from(value.to_string()), revision).unwrap()
    }

    fn decoded(value: &Value, revision: Revision) -> Value {
        let mut value = value.clone();
        objects::set_resource_version(&mut value, revision).unwrap();
        value
    }

    fn filter(resource: &'static ResourceInfo, query: &str) -> crate::request::Filter {
        let uri: axum::http::Uri = format!("/x?{query}").parse().unwrap();
        let query = crate::request::Query::from_uri(&uri).unwrap();
        crate::request::Filter::from_query(&query, resource).unwrap()
    }

    #[test]
    fn selectors_over_the_projection_agree_with_the_whole_object() {
        let registry = Registry::builtin();
        let pods = registry.by_kind("", "Pod").unwrap();
        let nodes = registry.by_kind("", "Node").unwrap();
        let events = registry.by_kind("", "Event").unwrap();
        let pod = |name: &str, node: Option<&str>, phase: &str, labels: Value| {
            let mut spec = serde_json::json!({"restartPolicy": "Always", "hostNetwork": true});
            if let Some(node) = node {
                spec["nodeName"] = Value::from(node);
            }
            serde_json::json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default", "labels": labels},
                "spec": spec, "status": {"phase": phase}
            })
        };
        let objects = [
            (
                pods,
                pod(
                    "a",
                    Some("n1"),
                    "Running",
                    serde_json::json!({"app": "web", "tier": "1"}),
                ),
            ),
            (
                pods,
                pod(
                    "b",
                    None,
                    "Pending",
                    serde_json::json!({"app": "db", "n": 7}),
                ),
            ),
            (pods, pod("c", Some("n2"), "Succeeded", Value::Null)),
            (
                nodes,
                serde_json::json!({"metadata": {"name": "n1"}, "spec": {"unschedulable": true}}),
            ),
            (
                nodes,
                serde_json::json!({"metadata": {"name": "n2", "labels": {"zone": "a"}}}),
            ),
            (
                events,
                serde_json::json!({
                    "metadata": {"name": "e", "namespace": "default"},
                    "involvedObject": {"kind": "Pod", "name": "a", "uid": "u"},
                    "source": {"component": "kubelet"}, "reason": "Started", "type": "Normal"
                }),
            ),
        ];
        let queries = [
            "",
            "labelSelector=app%3Dweb",
            "labelSelector=app%21%3Dweb",
            "labelSelector=tier",
            "labelSelector=%21n",
            "labelSelector=zone%20in%20(a,b)",
            "fieldSelector=metadata.name%3Da",
            "fieldSelector=metadata.namespace%3Ddefault",
            "fieldSelector=spec.nodeName%3Dn1",
            "fieldSelector=spec.nodeName%3D",
            "fieldSelector=spec.nodeName%3D,status.phase%21%3DSucceeded",
            "fieldSelector=spec.hostNetwork%3Dtrue&labelSelector=app",
            "fieldSelector=spec.unschedulable%3Dtrue",
            "fieldSelector=spec.unschedulable%3Dfalse",
            "fieldSelector=source%3Dkubelet,involvedObject.name%3Da",
            "fieldSelector=involvedObject.namespace%3D",
        ];
        let mut compared = 0;
        for (resource, object) in &objects {
            let cached = stored(resource, object, 3);
            for query in queries {
                let uri: axum::http::Uri = format!("/x?{query}").parse().unwrap();
                let parsed = crate::request::Query::from_uri(&uri).unwrap();
                // Field selectors another resource cannot use are refused before matching.
                let Ok(filter) = crate::request::Filter::from_query(&parsed, resource) else {
                    continue;
                };
                let whole = filter.matches(&decoded(object, 3));
                assert_eq!(filter.matches_cached(&cached), whole, "{query} on {object}");
                compared += 1;
            }
        }
        assert!(compared > 50, "{compared}");
        // Both outcomes occur, so the comparison says something.
        let web = filter(pods, "labelSelector=app%3Dweb,tier");
        assert!(web.matches_cached(&stored(pods, &objects[0].1, 1)));
        assert!(!web.matches_cached(&stored(pods, &objects[1].1, 1)));
    }

    #[test]
    fn stored_bytes_are_written_with_their_resource_version() {
        let registry = Registry::builtin();
        let maps = registry.by_kind("", "ConfigMap").unwrap();
        let texts = [
            // What the API server stores: compact, keys sorted.
            r#"{"apiVersion":"v1","data":{"a":"b"},"kind":"ConfigMap","metadata":{"name":"m","namespace":"d"}}"#,
            // Empty metadata.
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{}}"#,
            // A nested "metadata", strings with quotes, braces and escapes before the real one.
            r#"{"apiVersion":"v1","data":{"metadata":"{\"}","x\\":"]["},"kind":"ConfigMap","list":[{"metadata":{}},1,true,null,-2.5e3], "metadata" : { "name" : "m" } }"#,
        ];
        for text in texts {
            let object = CachedObject::from_bytes(maps, Bytes::from(text), 42).unwrap();
            assert!(object.is_verbatim(), "{text}");
            let mut out = Vec::new();
            assert!(object.write_json(&mut out));
            let written: Value = serde_json::from_slice(&out).unwrap();
            let whole = decoded(&serde_json::from_str(text).unwrap(), 42);
            assert_eq!(written, whole, "{text}");
            assert_eq!(*object.value(), whole);
            // A delete shows the same object at its own revision.
            let mut out = Vec::new();
            assert!(object.at_revision(43).write_json(&mut out));
            assert_eq!(
                serde_json::from_slice::<Value>(&out).unwrap()["metadata"]["resourceVersion"],
                "43"
            );
        }
    }

    #[test]
    fn bytes_that_cannot_be_spliced_are_decoded_instead() {
        let registry = Registry::builtin();
        let maps = registry.by_kind("", "ConfigMap").unwrap();
        for text in [
            "{\"apiVersion\":\"v1\",\"kind\":\"ConfigMap\",\n\"metadata\":{\"name\":\"m\"}}",
            r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"m","resourceVersion":"1"}}"#,
            r#"{"apiVersion":"v1","kind":"ConfigMap"}"#,
            r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"m"}}"#,
        ] {
            let object = CachedObject::from_bytes(maps, Bytes::from(text), 7).unwrap();
            assert!(!object.is_verbatim(), "{text}");
            let value = object.value();
            assert!(
                value
                    .get("metadata")
                    .is_none_or(|m| m["resourceVersion"] == "7")
            );
        }
        // autoscaling/v1 converts HPAs stored as v2; the stored version is served as stored.
        let hpa_v2 = registry
            .by_kind("autoscaling", "HorizontalPodAutoscaler")
            .unwrap();
        assert!(serves_stored_bytes(
            hpa_v2,
            hpa_v2,
            hpa_v2.preferred_version()
        ));
        assert!(!serves_stored_bytes(hpa_v2, hpa_v2, "v1"));
    }

    #[test]
    fn rbac_objects_stay_decoded_and_others_do_not() {
        let registry = Registry::builtin();
        let roles = registry
            .by_kind("rbac.authorization.k8s.io", "Role")
            .unwrap();
        let maps = registry.by_kind("", "ConfigMap").unwrap();
        let object = serde_json::json!({"metadata": {"name": "r"}, "rules": []});
        let role = stored(roles, &object, 5);
        assert!(Arc::ptr_eq(&role.value(), &role.value()));
        assert_eq!(*role.value(), decoded(&object, 5));
        let map = stored(maps, &object, 5);
        assert!(!Arc::ptr_eq(&map.value(), &map.value()));
    }

    #[tokio::test]
    async fn only_the_newest_events_keep_their_encoded_lines() {
        let (cache, store, cancel) = following().await;
        let key = "/registry/configmaps/default/big";
        let mut revision = store.create(key, config_map("0")).await.unwrap();
        let events = ENCODED_EVENTS + 10;
        for i in 0..events {
            caught_up(&cache, revision).await;
            // Encode a line for the newest change, as a watcher would.
            let newest = Arc::clone(&cache.state.read().events.back().unwrap().encoded);
            newest.get_or_encode("MODIFIED", "v1", false, || Bytes::from_static(b"line"));
            revision = store
                .update(key, config_map(&i.to_string()), revision)
                .await
                .unwrap();
        }
        caught_up(&cache, revision).await;
        let state = cache.state.read();
        let encoded: Vec<bool> = state.events.iter().map(|e| !e.encoded.is_empty()).collect();
        let kept = encoded.iter().filter(|e| **e).count();
        // The window is the newest ENCODED_EVENTS events, the very newest never encoded here.
        assert_eq!(
            kept,
            ENCODED_EVENTS - 1,
            "{} of {} events",
            kept,
            encoded.len()
        );
        assert!(encoded.len() > ENCODED_EVENTS + 5);
        let window = encoded.len() - ENCODED_EVENTS..encoded.len() - 1;
        assert!(encoded[window].iter().all(|e| *e));
        drop(state);
        cancel.cancel();
    }
}
