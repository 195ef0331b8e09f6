//! Shared informers (client-go's `SharedInformerFactory`): one watch and one cache per resource
//! for every controller of the process, however many of them read it. Each change is applied to
//! the cache once and handed to every subscriber as `Arc` clones, so a pod is decoded and held
//! once instead of once per controller.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use kube::runtime::reflector::{self, Store, store::Writer};
use kube::runtime::watcher;
use kube::{Api, Client, Resource};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Change;
use super::informer::{apply_event, watch};

/// The informers of one process, keyed by resource type, each watching every namespace.
/// A resource's watch starts the first time [`SharedInformers::informer`] asks for it and runs
/// until [`SharedInformers::shutdown`] (or the token it was built with) stops them all.
pub struct SharedInformers {
    client: Client,
    cancel: CancellationToken,
    tasks: TaskTracker,
    /// `TypeId` of `K` -> `SharedInformer<K>`.
    informers: Mutex<HashMap<TypeId, Box<dyn Any + Send + Sync>>>,
}

impl Debug for SharedInformers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedInformers")
            .field("informers", &self.informers.lock().len())
            .finish_non_exhaustive()
    }
}

impl SharedInformers {
    /// Informers reading through `client`; their watches stop when `cancel` fires.
    pub fn new(client: Client, cancel: &CancellationToken) -> Self {
        Self {
            client,
            cancel: cancel.child_token(),
            tasks: TaskTracker::new(),
            informers: Mutex::default(),
        }
    }

    /// The client the informers watch through (controllers write through it too).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The informer over every `K` in the cluster, watching from the first call on.
    pub fn informer<K>(&self) -> SharedInformer<K>
    where
        K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    {
        let mut informers = self.informers.lock();
        if let Some(informer) = informers
            .get(&TypeId::of::<K>())
            .and_then(|informer| informer.downcast_ref::<SharedInformer<K>>())
        {
            return informer.clone();
        }
        let (informer, writer) = SharedInformer::new();
        let api = Api::<K>::all(self.client.clone());
        let cancel = self.cancel.clone();
        let feed = informer.clone();
        self.tasks.spawn(async move {
            let mut writer = writer;
            watch(api, watcher::Config::default(), &cancel, |event| {
                feed.apply(&mut writer, &event);
            })
            .await;
            // Subscribers see their feed end.
            feed.shared.subscribers.lock().clear();
        });
        informers.insert(TypeId::of::<K>(), Box::new(informer.clone()));
        informer
    }

    /// Stops every watch and waits for them to end.
    pub async fn shutdown(&self) {
        self.cancel.cancel();
        self.tasks.close();
        self.tasks.wait().await;
    }
}

/// A handle on one shared informer: its cache and its change notifications. Cheap to clone.
pub struct SharedInformer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    shared: Arc<Shared<K>>,
}

struct Shared<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    store: Store<K>,
    /// Held while a change is applied and handed out, so that a new subscriber's view of the
    /// cache and its first notification follow each other with nothing lost or repeated.
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Change<K>>>>,
}

impl<K> Clone for SharedInformer<K>
where
    K: Resource<DynamicType = ()> + Clone + 'static,
{
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<K> SharedInformer<K>
where
    K: Resource<DynamicType = ()> + Clone + Send + Sync + 'static,
{
    /// An informer with an empty cache, and the writer that fills it.
    fn new() -> (Self, Writer<K>) {
        let (store, writer) = reflector::store();
        let informer = Self {
            shared: Arc::new(Shared {
                store,
                subscribers: Mutex::default(),
            }),
        };
        (informer, writer)
    }

    /// The cache. Ready once the first list has arrived ([`Store::wait_until_ready`]).
    pub fn store(&self) -> Store<K> {
        self.shared.store.clone()
    }

    /// A new feed of changes. It starts with an `Added` for each object already cached (as
    /// client-go's `AddEventHandler` does), then carries every change after those, in order.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Change<K>> {
        let (sender, receiver) = mpsc::unbounded_channel();
        let mut subscribers = self.shared.subscribers.lock();
        for object in self.shared.store.state() {
            // The receiver is alive: it is still ours.
            let _ = sender.send(Change::Added(object));
        }
        subscribers.push(sender);
        receiver
    }

    /// Calls `on_change` for each change (see [`SharedInformer::subscribe`]) until `cancel`
    /// fires or the informer stops.
    pub async fn run(&self, mut on_change: impl FnMut(Change<K>), cancel: &CancellationToken) {
        let mut changes = self.subscribe();
        loop {
            let change = tokio::select! {
                () = cancel.cancelled() => return,
                change = changes.recv() => change,
            };
            match change {
                Some(change) => on_change(change),
                None => return,
            }
        }
    }

    /// Applies one watch event to the cache and hands what changed to every subscriber,
    /// dropping those that went away.
    fn apply(&self, writer: &mut Writer<K>, event: &watcher::Event<K>) {
        let mut subscribers = self.shared.subscribers.lock();
        apply_event(writer, &self.shared.store, event, &mut |change| {
            subscribers.retain(|subscriber| subscriber.send(change.clone()).is_ok());
        });
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use k8s_openapi::api::core::v1::{Node, Pod};
    use kube::api::ObjectMeta;
    use tugboat_testkit::fake_api::FakeApi;
    use tugboat_testkit::objects;

    use super::*;

    fn pod(name: &str, resource_version: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some("default".to_owned()),
                resource_version: Some(resource_version.to_owned()),
                ..ObjectMeta::default()
            },
            ..Pod::default()
        }
    }

    /// `(kind, "name@resourceVersion")` of a change.
    fn describe(change: &Change<Pod>) -> (&'static str, String) {
        let kind = match change {
            Change::Added(_) => "added",
            Change::Updated { .. } => "updated",
            Change::Deleted(_) => "deleted",
        };
        let object = change.object();
        let name = object.metadata.name.as_deref().unwrap_or_default();
        let version = object.metadata.resource_version.as_deref();
        (kind, format!("{name}@{}", version.unwrap_or_default()))
    }

    /// Each change waiting in `changes`, described.
    fn drain(changes: &mut mpsc::UnboundedReceiver<Change<Pod>>) -> Vec<(&'static str, String)> {
        std::iter::from_fn(|| changes.try_recv().ok())
            .map(|change| describe(&change))
            .collect()
    }

    fn list(informer: &SharedInformer<Pod>, writer: &mut Writer<Pod>, pods: &[Pod]) {
        informer.apply(writer, &watcher::Event::Init);
        for pod in pods {
            informer.apply(writer, &watcher::Event::InitApply(pod.clone()));
        }
        informer.apply(writer, &watcher::Event::InitDone);
    }

    #[test]
    fn every_subscriber_sees_each_change_once_sharing_one_copy() {
        let (informer, mut writer) = SharedInformer::<Pod>::new();
        let mut first = informer.subscribe();
        let mut second = informer.subscribe();
        list(&informer, &mut writer, &[pod("a", "1")]);
        informer.apply(&mut writer, &watcher::Event::Apply(pod("a", "2")));
        informer.apply(&mut writer, &watcher::Event::Delete(pod("a", "3")));

        let expected = vec![
            ("added", "a@1".to_owned()),
            ("updated", "a@2".to_owned()),
            ("deleted", "a@3".to_owned()),
        ];
        assert_eq!(drain(&mut first), expected);
        assert_eq!(drain(&mut second), expected);
        assert!(informer.store().is_empty());
    }

    #[test]
    fn subscribers_share_the_cached_object() {
        let (informer, mut writer) = SharedInformer::<Pod>::new();
        let mut first = informer.subscribe();
        let mut second = informer.subscribe();
        list(&informer, &mut writer, &[pod("a", "1")]);
        let (Ok(Change::Added(a1)), Ok(Change::Added(a2))) = (first.try_recv(), second.try_recv())
        else {
            panic!("both subscribers are told about the listed pod");
        };
        assert!(Arc::ptr_eq(&a1, &a2), "one copy of the pod, not one each");
        let cached = informer.store().state();
        assert!(
            Arc::ptr_eq(&a1, &cached[0]),
            "the cache holds that same copy"
        );
    }

    #[test]
    fn a_relist_reports_what_changed_while_unwatched() {
        let (informer, mut writer) = SharedInformer::<Pod>::new();
        list(
            &informer,
            &mut writer,
            &[pod("kept", "1"), pod("changed", "2"), pod("gone", "3")],
        );
        let mut changes = informer.subscribe();
        assert_eq!(drain(&mut changes).len(), 3, "the cache, replayed as added");

        list(
            &informer,
            &mut writer,
            &[pod("kept", "1"), pod("changed", "5"), pod("new", "6")],
        );
        let mut seen = drain(&mut changes);
        seen.sort();
        assert_eq!(
            seen,
            vec![
                ("added", "new@6".to_owned()),
                ("deleted", "gone@3".to_owned()),
                ("updated", "changed@5".to_owned()),
            ],
            "an unchanged object is not reported"
        );
    }

    #[test]
    fn a_late_subscriber_starts_from_the_cache_then_follows() {
        let (informer, mut writer) = SharedInformer::<Pod>::new();
        list(&informer, &mut writer, &[pod("a", "1"), pod("b", "2")]);
        let mut late = informer.subscribe();
        informer.apply(&mut writer, &watcher::Event::Apply(pod("b", "3")));
        let mut seen = drain(&mut late);
        seen[..2].sort();
        assert_eq!(
            seen,
            vec![
                ("added", "a@1".to_owned()),
                ("added", "b@2".to_owned()),
                ("updated", "b@3".to_owned()),
            ]
        );
    }

    /// Watch requests the fake API served for `path` (`/api/v1/pods`).
    fn watches(api: &FakeApi, path: &str) -> usize {
        api.requests()
            .iter()
            .filter(|request| request.path == path && request.query.contains("watch=true"))
            .count()
    }

    async fn next_change(
        changes: &mut mpsc::UnboundedReceiver<Change<Pod>>,
    ) -> Option<(&'static str, String)> {
        let change = tokio::time::timeout(Duration::from_secs(10), changes.recv())
            .await
            .expect("a change within 10 s")?;
        Some(describe(&change))
    }

    #[tokio::test]
    async fn one_watch_per_resource_feeds_every_subscriber_until_shutdown() {
        let (api, client) = FakeApi::new();
        api.create(objects::pod("a").obj());
        let cancel = CancellationToken::new();
        let informers = SharedInformers::new(client, &cancel);
        // Two controllers asking for pods, one for nodes.
        let mut first = informers.informer::<Pod>().subscribe();
        let mut second = informers.informer::<Pod>().subscribe();
        let nodes = informers.informer::<Node>();
        tokio::time::timeout(Duration::from_secs(10), async {
            informers
                .informer::<Pod>()
                .store()
                .wait_until_ready()
                .await?;
            nodes.store().wait_until_ready().await
        })
        .await
        .expect("caches ready within 10 s")
        .expect("caches ready");
        api.create(objects::pod("b").obj());
        for changes in [&mut first, &mut second] {
            let a = next_change(changes).await.expect("a");
            let b = next_change(changes).await.expect("b");
            assert_eq!((a.0, b.0), ("added", "added"));
            assert!(a.1.starts_with("a@") && b.1.starts_with("b@"));
        }
        assert_eq!(watches(&api, "/api/v1/pods"), 1, "one pod watch for both");
        assert_eq!(watches(&api, "/api/v1/nodes"), 1);
        assert_eq!(informers.informer::<Pod>().store().state().len(), 2);

        tokio::time::timeout(Duration::from_secs(10), informers.shutdown())
            .await
            .expect("the watches stop within 10 s");
        assert!(first.recv().await.is_none(), "the feed ends with the watch");
        assert!(second.recv().await.is_none());
        assert!(!cancel.is_cancelled(), "the caller's token is left alone");
    }

    #[test]
    fn a_dropped_subscriber_is_forgotten() {
        let (informer, mut writer) = SharedInformer::<Pod>::new();
        let gone = informer.subscribe();
        let mut kept = informer.subscribe();
        drop(gone);
        informer.apply(&mut writer, &watcher::Event::Apply(pod("a", "1")));
        assert_eq!(informer.shared.subscribers.lock().len(), 1);
        assert_eq!(drain(&mut kept), vec![("added", "a@1".to_owned())]);
    }
}
