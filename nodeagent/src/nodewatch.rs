//! The Node statuses that the simulated nodes of one process compare their own status with.
//!
//! Every status period kubelet reads its Node from the API server (a GET the server answers
//! from its watch cache) to see whether its status changed, or was changed by someone else
//! (the node lifecycle controller's Ready=Unknown). 5,000 simulated nodes in one process would
//! send 500 such GETs a second. One watch of every Node gives each of them the same answer,
//! kept current by the server's events, as [`crate::PodWatch::shared`] does for their pods. A
//! lone agent keeps reading its Node as kubelet does.

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, NodeStatus};
use kube::Api;
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

/// The latest status of every Node, from one watch. Cheap to clone: clones share the map.
#[derive(Debug, Clone, Default)]
pub struct NodeStatuses {
    statuses: Arc<RwLock<HashMap<String, Arc<NodeStatus>>>>,
    /// Cancelled once the first list is in: before that, an absent node says nothing.
    listed: CancellationToken,
}

impl NodeStatuses {
    /// An empty view, filled by [`NodeStatuses::run`].
    pub fn new() -> Self {
        NodeStatuses::default()
    }

    /// `node`'s status as the server last announced it; `None` before the first list or when
    /// the watch has not seen the node (just registered): the caller then reads it itself.
    pub fn get(&self, node: &str) -> Option<Arc<NodeStatus>> {
        if !self.listed.is_cancelled() {
            return None;
        }
        self.statuses.read().get(node).cloned()
    }

    /// Watches every Node until `shutdown`, retrying with back-off when the watch fails.
    pub async fn run(self, client: kube::Client, shutdown: CancellationToken) {
        let nodes: Api<Node> = Api::all(client);
        let stream = watcher::watcher(nodes, watcher::Config::default()).default_backoff();
        futures::pin_mut!(stream);
        let mut relisted = HashMap::new();
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return,
                event = stream.next() => event,
            };
            match event {
                None => return,
                Some(Ok(event)) => self.apply(event, &mut relisted),
                Some(Err(error)) => tracing::warn!(%error, "node watch failed; retrying"),
            }
        }
    }

    fn apply(&self, event: watcher::Event<Node>, relisted: &mut HashMap<String, Arc<NodeStatus>>) {
        fn entry(node: Node) -> Option<(String, Arc<NodeStatus>)> {
            Some((
                node.metadata.name?,
                Arc::new(node.status.unwrap_or_default()),
            ))
        }
        match event {
            watcher::Event::Apply(node) => {
                if let Some((name, status)) = entry(node) {
                    self.statuses.write().insert(name, status);
                }
            }
            watcher::Event::Delete(node) => {
                if let Some(name) = node.metadata.name {
                    self.statuses.write().remove(&name);
                }
            }
            watcher::Event::Init => relisted.clear(),
            watcher::Event::InitApply(node) => relisted.extend(entry(node)),
            watcher::Event::InitDone => {
                *self.statuses.write() = std::mem::take(relisted);
                self.listed.cancel();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::NodeCondition;
    use kube::api::ObjectMeta;

    use super::*;

    fn node(name: &str, ready: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn ready_of(view: &NodeStatuses, name: &str) -> Option<String> {
        let status = view.get(name)?;
        Some(status.conditions.as_ref()?[0].status.clone())
    }

    #[test]
    fn statuses_follow_the_watch_and_a_relist_replaces_them() {
        let view = NodeStatuses::new();
        let mut relisted = HashMap::new();
        view.apply(watcher::Event::Init, &mut relisted);
        view.apply(watcher::Event::InitApply(node("a", "True")), &mut relisted);
        view.apply(watcher::Event::InitApply(node("b", "True")), &mut relisted);
        assert_eq!(ready_of(&view, "a"), None, "nothing before the first list");
        view.apply(watcher::Event::InitDone, &mut relisted);
        assert_eq!(ready_of(&view, "a").as_deref(), Some("True"));

        view.apply(watcher::Event::Apply(node("a", "Unknown")), &mut relisted);
        assert_eq!(ready_of(&view, "a").as_deref(), Some("Unknown"));
        view.apply(watcher::Event::Delete(node("b", "True")), &mut relisted);
        assert_eq!(ready_of(&view, "b"), None);

        // A relist that no longer has `a` but has `c`.
        view.apply(watcher::Event::Init, &mut relisted);
        view.apply(watcher::Event::InitApply(node("c", "False")), &mut relisted);
        assert_eq!(
            ready_of(&view, "a").as_deref(),
            Some("Unknown"),
            "served until the relist completes"
        );
        view.apply(watcher::Event::InitDone, &mut relisted);
        assert_eq!(ready_of(&view, "a"), None);
        assert_eq!(ready_of(&view, "c").as_deref(), Some("False"));
    }
}
