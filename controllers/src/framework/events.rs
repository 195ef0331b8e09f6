//! Events about the objects controllers manage, as `kubectl describe` shows them.
//! Recording is best effort: a lost event never fails a sync.
//!
//! Repeats are aggregated as client-go's event correlator does: the same event (object,
//! component, type, reason and message) seen again within [`AGGREGATION_WINDOW`] bumps the
//! `count` and `lastTimestamp` of the event already written instead of writing a new one, so
//! a controller retrying a failing sync shows `x12 over 3m` rather than twelve lines.

use std::collections::HashMap;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use parking_lot::Mutex;
use serde_json::json;
use tracing::warn;

/// How long a written event takes repeats (client-go keeps its cache for as long as the
/// event lives; the API server keeps events for an hour).
pub const AGGREGATION_WINDOW: Duration = Duration::from_secs(10 * 60);
/// The most events remembered (client-go's LRU holds 4,096).
const CACHE_SIZE: usize = 4096;

/// What makes two events the same: the object (its uid, unique across clusters, so one
/// process-wide cache serves every client), who reports, and what.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct EventKey {
    object: String,
    component: String,
    type_: &'static str,
    reason: String,
    message: String,
}

/// An event already written.
#[derive(Debug, Clone)]
struct Written {
    name: String,
    count: i32,
    last: Instant,
}

static WRITTEN: LazyLock<Mutex<HashMap<EventKey, Written>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// The event to bump for `key`, if one was written within the window.
fn repeat_of(key: &EventKey, now: Instant) -> Option<Written> {
    let mut written = WRITTEN.lock();
    let entry = written.get_mut(key)?;
    if now.duration_since(entry.last) > AGGREGATION_WINDOW {
        written.remove(key);
        return None;
    }
    entry.count += 1;
    entry.last = now;
    Some(entry.clone())
}

fn remember(key: EventKey, event: Written) {
    let mut written = WRITTEN.lock();
    if written.len() >= CACHE_SIZE {
        // Drop the stale ones; if none is, the least recently seen.
        let now = Instant::now();
        written.retain(|_, w| now.duration_since(w.last) <= AGGREGATION_WINDOW);
        if written.len() >= CACHE_SIZE
            && let Some(oldest) = written
                .iter()
                .min_by_key(|(_, w)| w.last)
                .map(|(k, _)| k.clone())
        {
            written.remove(&oldest);
        }
    }
    written.insert(key, event);
}

/// `Normal` or `Warning`, as the Event API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Something expected happened.
    Normal,
    /// Something the user should look at.
    Warning,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            EventType::Normal => "Normal",
            EventType::Warning => "Warning",
        }
    }
}

/// The `reportingInstance` of every event this process records, once set.
static REPORTING_INSTANCE: OnceLock<String> = OnceLock::new();

/// What events name as their writer until [`set_reporting_instance`] is called.
const DEFAULT_REPORTING_INSTANCE: &str = "tugboat";

/// Names this process in every event it records from now on (`reportingInstance`): a
/// leader-elected `tug controllers` passes its Lease identity, so each event tells which of
/// several instances acted (upstream puts the host name there). The first call wins.
pub fn set_reporting_instance(instance: String) {
    let _ = REPORTING_INSTANCE.set(instance);
}

fn reporting_instance() -> &'static str {
    REPORTING_INSTANCE
        .get()
        .map_or(DEFAULT_REPORTING_INSTANCE, String::as_str)
}

/// Records an event about `object` from `component` (e.g. `deployment-controller`).
pub async fn record<K>(
    client: &Client,
    component: &str,
    object: &K,
    type_: EventType,
    reason: &str,
    message: &str,
) where
    K: Resource<DynamicType = ()>,
{
    let namespace = object.namespace().unwrap_or_else(|| "default".to_owned());
    let name = object.name_any();
    let now = Timestamp::now();
    let key = EventKey {
        object: object
            .meta()
            .uid
            .clone()
            .unwrap_or_else(|| format!("{}/{namespace}/{name}", K::kind(&()))),
        component: component.to_owned(),
        type_: type_.as_str(),
        reason: reason.to_owned(),
        message: message.to_owned(),
    };
    let api = Api::<Event>::namespaced(client.clone(), &namespace);
    if let Some(repeat) = repeat_of(&key, Instant::now()) {
        let patch = json!({ "count": repeat.count, "lastTimestamp": Time(now) });
        match api
            .patch(&repeat.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return,
            // Expired or deleted meanwhile: write it anew below.
            Err(error) => tracing::debug!(%error, %reason, "cannot bump event"),
        }
    }
    let event_name = format!("{name}.{:x}", now.as_nanosecond());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(event_name.clone()),
            namespace: Some(namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(K::api_version(&()).into_owned()),
            kind: Some(K::kind(&()).into_owned()),
            name: Some(name),
            namespace: object.namespace(),
            uid: object.meta().uid.clone(),
            resource_version: object.meta().resource_version.clone(),
            field_path: None,
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        type_: Some(type_.as_str().into()),
        source: Some(EventSource {
            component: Some(component.into()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        reporting_component: Some(component.into()),
        reporting_instance: Some(reporting_instance().to_owned()),
        action: None,
        related: None,
        series: None,
    };
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => remember(
            key,
            Written {
                name: event_name,
                count: 1,
                last: Instant::now(),
            },
        ),
        Err(error) => warn!(%error, %reason, "cannot record event"),
    }
}
