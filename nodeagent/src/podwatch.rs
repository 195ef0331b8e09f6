//! The pod watch that feeds agents their pods. A lone agent watches its own pods
//! (`spec.nodeName=<node>`, as kubelet does); the simulated nodes of one process share a single
//! watch of every bound pod (`spec.nodeName!=`), fanned out by `spec.nodeName`, instead of one
//! watch (and one HTTP connection on each end) per node. Both go through the same dispatch, so
//! an agent sees the same adds, updates, deletes and relists either way.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use tokio_util::sync::CancellationToken;

use crate::queue::WorkQueue;
use crate::sync::{PodKey, PodStore, key_of};

/// One agent's end of a pod watch: its pods, the queue of changed keys, and a one-shot signal
/// (cancelled) once the first full list is in.
#[derive(Debug, Clone, Default)]
pub struct PodFeed {
    /// The node's pods, by `namespace/name`.
    pub store: PodStore,
    /// Keys of pods that changed (added, updated or deleted).
    pub queue: Arc<WorkQueue<PodKey>>,
    /// Cancelled once the first list has been applied to `store`.
    pub listed: CancellationToken,
}

impl PodFeed {
    /// An empty feed.
    pub fn new() -> Self {
        PodFeed::default()
    }
}

/// One watch of pods for a set of nodes, each with its [`PodFeed`].
#[derive(Debug)]
pub struct PodWatch {
    selector: String,
    feeds: HashMap<String, PodFeed>,
}

impl PodWatch {
    /// A watch of `node`'s pods only.
    pub fn single(node: &str, feed: PodFeed) -> Self {
        PodWatch {
            selector: format!("spec.nodeName={node}"),
            feeds: HashMap::from([(node.to_owned(), feed)]),
        }
    }

    /// One watch of every bound pod, shared by `nodes` (the simulated nodes of one process);
    /// pods of other nodes are ignored. Returns the feed of each node, to hand to its agent.
    pub fn shared<'a>(
        nodes: impl IntoIterator<Item = &'a str>,
    ) -> (Self, HashMap<String, PodFeed>) {
        let feeds: HashMap<String, PodFeed> = nodes
            .into_iter()
            .map(|node| (node.to_owned(), PodFeed::new()))
            .collect();
        let watch = PodWatch {
            selector: "spec.nodeName!=".to_owned(),
            feeds: feeds.clone(),
        };
        (watch, feeds)
    }

    /// Watches until `shutdown`, retrying with back-off when the watch fails.
    pub async fn run(self, client: kube::Client, shutdown: CancellationToken) {
        let pods: Api<Pod> = Api::all(client);
        let config = watcher::Config::default().fields(&self.selector);
        // The agent never reads managedFields: its pod cache drops them.
        let stream = watcher::watcher(pods, config)
            .modify(|pod| pod.metadata.managed_fields = None)
            .default_backoff();
        futures::pin_mut!(stream);
        let mut dispatch = Dispatch::new(self.feeds);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = stream.next() => event,
            };
            match event {
                None => return,
                Some(Ok(event)) => dispatch.apply(event),
                Some(Err(error)) => tracing::warn!(%error, "pod watch failed; retrying"),
            }
        }
    }
}

/// Applies watch events to the feeds of the nodes they belong to.
struct Dispatch {
    feeds: HashMap<String, PodFeed>,
    /// The keys seen, per node, since the current relist began.
    relisted: HashMap<String, HashSet<PodKey>>,
}

impl Dispatch {
    fn new(feeds: HashMap<String, PodFeed>) -> Self {
        Dispatch {
            feeds,
            relisted: HashMap::new(),
        }
    }

    fn feed_of(&self, pod: &Pod) -> Option<(&str, &PodFeed)> {
        let node = pod.spec.as_ref()?.node_name.as_deref()?;
        self.feeds
            .get_key_value(node)
            .map(|(node, feed)| (node.as_str(), feed))
    }

    fn apply(&mut self, event: watcher::Event<Pod>) {
        match event {
            watcher::Event::Apply(pod) => {
                if let Some((_, feed)) = self.feed_of(&pod) {
                    let key = key_of(&pod);
                    feed.store.write().insert(key.clone(), Arc::new(pod));
                    feed.queue.add(key);
                }
            }
            watcher::Event::InitApply(pod) => {
                if let Some((node, feed)) = self.feed_of(&pod) {
                    let key = key_of(&pod);
                    let node = node.to_owned();
                    feed.store.write().insert(key.clone(), Arc::new(pod));
                    feed.queue.add(key.clone());
                    self.relisted.entry(node).or_default().insert(key);
                }
            }
            watcher::Event::Delete(pod) => {
                if let Some((_, feed)) = self.feed_of(&pod) {
                    let key = key_of(&pod);
                    feed.store.write().remove(&key);
                    feed.queue.add(key);
                }
            }
            watcher::Event::Init => self.relisted.clear(),
            watcher::Event::InitDone => {
                // Pods missing from the new list were deleted while the watch was down.
                let relisted = std::mem::take(&mut self.relisted);
                let empty = HashSet::new();
                for (node, feed) in &self.feeds {
                    let seen = relisted.get(node).unwrap_or(&empty);
                    let gone: Vec<PodKey> = feed
                        .store
                        .read()
                        .keys()
                        .filter(|key| !seen.contains(*key))
                        .cloned()
                        .collect();
                    if !gone.is_empty() {
                        let mut store = feed.store.write();
                        for key in &gone {
                            store.remove(key);
                        }
                    }
                    for key in gone {
                        feed.queue.add(key);
                    }
                    feed.listed.cancel();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    fn pod(name: &str, node: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("default".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some(node.into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn keys(feed: &PodFeed) -> Vec<String> {
        let mut keys: Vec<String> = feed.store.read().keys().cloned().collect();
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn a_shared_watch_gives_each_node_its_own_pods_and_relists_per_node() {
        let (watch, feeds) = PodWatch::shared(["n1", "n2"]);
        assert_eq!(watch.selector, "spec.nodeName!=");
        let mut dispatch = Dispatch::new(watch.feeds);
        let (n1, n2) = (&feeds["n1"], &feeds["n2"]);

        dispatch.apply(watcher::Event::Init);
        dispatch.apply(watcher::Event::InitApply(pod("a", "n1")));
        dispatch.apply(watcher::Event::InitApply(pod("b", "n2")));
        dispatch.apply(watcher::Event::InitApply(pod("elsewhere", "n3")));
        assert!(!n1.listed.is_cancelled(), "listed before the list is done");
        dispatch.apply(watcher::Event::InitDone);
        assert!(n1.listed.is_cancelled() && n2.listed.is_cancelled());
        assert_eq!(keys(n1), ["default/a"]);
        assert_eq!(keys(n2), ["default/b"]);

        dispatch.apply(watcher::Event::Apply(pod("c", "n2")));
        assert_eq!(keys(n2), ["default/b", "default/c"]);
        dispatch.apply(watcher::Event::Delete(pod("a", "n1")));
        assert!(keys(n1).is_empty());

        // A relist in which b is gone (deleted while the watch was down).
        dispatch.apply(watcher::Event::Init);
        dispatch.apply(watcher::Event::InitApply(pod("c", "n2")));
        dispatch.apply(watcher::Event::InitDone);
        assert_eq!(keys(n2), ["default/c"]);

        // Every change was queued for the node's workers.
        let mut queued = Vec::new();
        while let Some(key) = tokio::time::timeout(std::time::Duration::ZERO, n2.queue.next())
            .await
            .ok()
            .flatten()
        {
            n2.queue.done(&key);
            n2.queue.forget(&key);
            queued.push(key);
        }
        queued.sort();
        assert_eq!(queued, ["default/b", "default/c"]);
        assert!(
            tokio::time::timeout(std::time::Duration::ZERO, n1.queue.next())
                .await
                .is_ok(),
            "n1 has queued keys"
        );
    }
}
