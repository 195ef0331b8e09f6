//! The watch cache: one store watch per resource, fanned out to every client.
//!
//! For each resource the cache keeps the current objects (to serve `resourceVersion=0` lists and
//! the initial ADDED events of a watch) and a ring of recent events (to serve watches that start
//! from a resource version). A thousand watchers cost the store one watch. The cache follows the
//! store with a list, then a watch from the list's revision; if that watch breaks (the store lost
//! history, or went away) it relists, and watchers older than the new starting point get 410.

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
use tugboat_api::resources::{Registry, ResourceInfo};
use tugboat_store::{EventKind, ListOptions, Revision, Store};

use crate::objects;

/// How many recent events each resource keeps for watchers that resume.
const EVENTS_PER_RESOURCE: usize = 20_000;

/// How many bytes of stored objects those events may add up to. Decoded, an object takes
/// around ten times its JSON size: 20,000 heartbeats of 5,000 nodes (2.3 KB each) would hold
/// some 400 MB. A watcher further behind than this gets 410 and relists, as from any ring.
const EVENT_BYTES_PER_RESOURCE: usize = 8 << 20;

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
    /// The version the watcher reads.
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

    /// How many distinct lines have been encoded.
    pub fn len(&self) -> usize {
        self.lines.lock().len()
    }

    /// Whether none has been encoded yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One change to one object.
#[derive(Debug, Clone)]
pub struct Change {
    /// What happened.
    pub kind: ChangeKind,
    /// The object after the change (for a delete: the last state, with the delete's revision).
    pub object: Arc<Value>,
    /// The object before the change, if it existed.
    pub previous: Option<Arc<Value>>,
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
    pub objects: Vec<Arc<Value>>,
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
    objects: BTreeMap<String, Arc<Value>>,
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
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.state.read().objects.get(key).cloned()
    }

    /// The object at `key` if the cache holds it at exactly `revision` (its last change): a list
    /// read from the store reuses the decoded object instead of parsing the stored bytes again.
    pub fn get_at(&self, key: &str, revision: Revision) -> Option<Arc<Value>> {
        let state = self.state.read();
        let obj = state.objects.get(key)?;
        let cached = objects::meta_str(obj, "resourceVersion")?
            .parse::<Revision>()
            .ok()?;
        (cached == revision).then(|| Arc::clone(obj))
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

    fn reset(&self, objects: BTreeMap<String, Arc<Value>>, revision: Revision) {
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
            match objects::from_store(kv) {
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
        // a second decoded copy in the ring.
        let previous = match &event.prev {
            Some(prev) => cache
                .get_at(&prev.key, prev.mod_revision)
                .or_else(|| objects::from_store(prev).ok().map(Arc::new)),
            None => None,
        };
        // A delete's own value is empty: it holds the last state.
        let prev_bytes = event.prev.as_ref().map_or(0, |prev| prev.value.len());
        let (kind, object) = match event.kind {
            EventKind::Put => {
                let Ok(obj) = objects::from_store(&event.kv) else {
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
                let mut last = previous.as_deref().cloned().unwrap_or(Value::Null);
                if last.is_object() {
                    let _ = objects::set_resource_version(&mut last, event.revision());
                }
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
}
