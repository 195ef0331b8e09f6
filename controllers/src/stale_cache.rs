//! Sync tests with hand-filled informer caches over a recording fake API (upstream's
//! controller `fixture` with `expectActions`): the cache can be made stale against the server
//! on purpose, and each test asserts the exact writes a single `sync` sends.

use std::fmt::Debug;

use kube::Resource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tugboat_testkit::fake_api::{FakeApi, RecordedRequest};

mod cronjob;
mod daemonset;
mod deployment;
mod job;
mod replicaset;
mod statefulset;

/// A cache holding exactly `objects`, as an informer's would after its first list.
pub fn cache<K>(objects: &[Value]) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
{
    let (store, mut writer) = reflector::store();
    writer.apply_watcher_event(&watcher::Event::Init);
    for object in objects {
        let object: K = serde_json::from_value(object.clone()).expect("a valid object");
        writer.apply_watcher_event(&watcher::Event::InitApply(object));
    }
    writer.apply_watcher_event(&watcher::Event::InitDone);
    store
}

/// One write the controller sent: method and path, with its body.
#[derive(Debug, Clone)]
pub struct Action {
    pub method: String,
    pub path: String,
    pub body: Value,
}

/// The writes (everything but GET; events left out, they are best effort) sent so far.
pub fn actions(api: &FakeApi) -> Vec<Action> {
    api.requests()
        .into_iter()
        .filter(|request: &RecordedRequest| request.method != "GET")
        .filter(|request| !request.path.contains("/events"))
        .map(|request| Action {
            method: request.method,
            path: request.path,
            body: request.body.unwrap_or(Value::Null),
        })
        .collect()
}

/// `(method, path)` of each action, for comparing with an expected list.
pub fn verbs(actions: &[Action]) -> Vec<(&str, &str)> {
    actions
        .iter()
        .map(|action| (action.method.as_str(), action.path.as_str()))
        .collect()
}
