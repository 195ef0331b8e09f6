//! Informers: a kube `watcher` feeding a reflector store, with client-go style change
//! notifications (added, updated with the old object, deleted) so controllers can enqueue the
//! right keys, owners included.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use futures::StreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store, store::Writer};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;
use tracing::warn;

/// One change seen by an informer. The cache already reflects it when the handler runs.
#[derive(Debug)]
pub enum Change<K> {
    /// A new object.
    Added(Arc<K>),
    /// An object changed (or was listed again after a relist).
    Updated {
        /// The cached object before the change.
        old: Arc<K>,
        /// The object now.
        new: Arc<K>,
    },
    /// An object is gone (also for objects found missing on a relist).
    Deleted(Arc<K>),
}

// Not derived: cloning a change clones its `Arc`s, whatever `K` is.
impl<K> Clone for Change<K> {
    fn clone(&self) -> Self {
        match self {
            Change::Added(object) => Change::Added(Arc::clone(object)),
            Change::Updated { old, new } => Change::Updated {
                old: Arc::clone(old),
                new: Arc::clone(new),
            },
            Change::Deleted(object) => Change::Deleted(Arc::clone(object)),
        }
    }
}

impl<K> Change<K> {
    /// The object as it is now (or was last, when deleted).
    pub fn object(&self) -> &Arc<K> {
        match self {
            Change::Added(object) | Change::Deleted(object) => object,
            Change::Updated { new, .. } => new,
        }
    }
}

/// A watch on one resource with a read-only cache, private to whoever builds it. Build it, hand
/// [`Informer::store`] to whoever reads, then drive it with [`Informer::run`]. Controllers read
/// cluster-wide resources through [`super::SharedInformers`] instead, so that each is watched
/// once per process; this one is for a scope of their own (one namespace's Leases, say).
pub struct Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    api: Api<K>,
    config: watcher::Config,
    writer: Writer<K>,
    store: Store<K>,
}

impl<K> Informer<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    /// An informer over every object `api` reaches.
    pub fn new(api: Api<K>) -> Self {
        let (store, writer) = reflector::store();
        Self {
            api,
            config: watcher::Config::default(),
            writer,
            store,
        }
    }

    /// The cache this informer fills. Ready once the first list has arrived
    /// ([`Store::wait_until_ready`]).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Watches until `cancel` fires, calling `on_change` for each change. Watch errors are
    /// logged and retried with the watcher's default backoff.
    pub async fn run(self, mut on_change: impl FnMut(Change<K>), cancel: &CancellationToken) {
        let Self {
            api,
            config,
            mut writer,
            store,
        } = self;
        watch(api, config, cancel, |event| {
            apply_event(&mut writer, &store, &event, &mut on_change);
        })
        .await;
    }
}

/// Watches every object `api` reaches until `cancel` fires, handing each event to `handle`.
/// Watch errors are logged and retried with the watcher's default backoff.
pub(crate) async fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    cancel: &CancellationToken,
    mut handle: impl FnMut(watcher::Event<K>),
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let kind = K::kind(&());
    // No controller reads managedFields, and they are often the bulk of an object: the
    // cache drops them, as kube-controller-manager's informers do
    // (`TransformStripManagedFields`), so that the cached copy of every pod stays small.
    let events = watcher(api, config)
        .modify(|object| object.meta_mut().managed_fields = None)
        .default_backoff();
    futures::pin_mut!(events);
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = events.next() => event,
        };
        match event {
            None => return,
            Some(Err(error)) => warn!(%kind, %error, "watch failed; retrying"),
            Some(Ok(event)) => handle(event),
        }
    }
}

/// Applies one watch event to the cache behind `writer` (whose reader is `store`), then reports
/// what changed to `on_change`: the object itself for single events, and the diff between the
/// old and the new cache when a (re)list completes.
pub(crate) fn apply_event<K>(
    writer: &mut Writer<K>,
    store: &Store<K>,
    event: &watcher::Event<K>,
    on_change: &mut impl FnMut(Change<K>),
) where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    match event {
        watcher::Event::Apply(object) => {
            let object_ref = ObjectRef::from_obj(object);
            let old = store.get(&object_ref);
            writer.apply_watcher_event(event);
            let new = store
                .get(&object_ref)
                .unwrap_or_else(|| Arc::new(object.clone()));
            match old {
                Some(old) => on_change(Change::Updated { old, new }),
                None => on_change(Change::Added(new)),
            }
        }
        watcher::Event::Delete(object) => {
            writer.apply_watcher_event(event);
            on_change(Change::Deleted(Arc::new(object.clone())));
        }
        watcher::Event::Init | watcher::Event::InitApply(_) => {
            writer.apply_watcher_event(event);
        }
        watcher::Event::InitDone => {
            // The store swaps in the relisted objects now: diff to report what changed
            // while we were not watching, deletions included.
            let mut before: HashMap<ObjectRef<K>, Arc<K>> = store
                .state()
                .into_iter()
                .map(|object| (ObjectRef::from_obj(object.as_ref()), object))
                .collect();
            writer.apply_watcher_event(event);
            for new in store.state() {
                match before.remove(&ObjectRef::from_obj(new.as_ref())) {
                    None => on_change(Change::Added(new)),
                    Some(old) => {
                        if old.meta().resource_version != new.meta().resource_version {
                            on_change(Change::Updated { old, new });
                        }
                    }
                }
            }
            for (_, gone) in before {
                on_change(Change::Deleted(gone));
            }
        }
    }
}
