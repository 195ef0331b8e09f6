//! Events about the objects controllers manage, as `kubectl describe` shows them.
//! Recording is best effort: a lost event never fails a sync.

use std::sync::OnceLock;

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client, Resource, ResourceExt};
use tracing::warn;

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
    let event = Event {
        metadata: ObjectMeta {
            name: Some(format!("{name}.{:x}", now.as_nanosecond())),
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
    if let Err(error) = Api::<Event>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &event)
        .await
    {
        warn!(%error, %reason, "cannot record event");
    }
}
