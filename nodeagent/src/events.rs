//! Events about pods (Pulled, Created, Started, Killing, Unhealthy, BackOff, ...) through the
//! core v1 events API, as `kubectl describe pod` shows them. A failed event is logged, never
//! fatal.

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;

use crate::status::api_time;

/// `Normal` or `Warning`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// Things going as planned.
    Normal,
    /// Something went wrong.
    Warning,
}

/// Writes events on behalf of one node.
#[derive(Clone)]
pub struct Recorder {
    client: kube::Client,
    node_name: String,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recorder")
            .field("node_name", &self.node_name)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// A recorder for node `node_name`.
    pub fn new(client: kube::Client, node_name: &str) -> Self {
        Recorder {
            client,
            node_name: node_name.to_string(),
        }
    }

    /// Records `reason`/`message` about `pod` (and one of its containers).
    pub async fn emit(
        &self,
        pod: &Pod,
        container: Option<&str>,
        kind: EventType,
        reason: &str,
        message: &str,
    ) {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
        let now = std::time::SystemTime::now();
        let event = Event {
            metadata: ObjectMeta {
                name: Some(format!("{pod_name}.{}", uuid::Uuid::new_v4().simple())),
                namespace: Some(namespace.to_string()),
                ..Default::default()
            },
            involved_object: ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("Pod".into()),
                name: Some(pod_name.to_string()),
                namespace: Some(namespace.to_string()),
                uid: pod.metadata.uid.clone(),
                resource_version: pod.metadata.resource_version.clone(),
                field_path: container.map(|c| format!("spec.containers{{{c}}}")),
            },
            reason: Some(reason.to_string()),
            message: Some(message.to_string()),
            type_: Some(
                match kind {
                    EventType::Normal => "Normal",
                    EventType::Warning => "Warning",
                }
                .to_string(),
            ),
            source: Some(EventSource {
                component: Some("kubelet".into()),
                host: Some(self.node_name.clone()),
            }),
            first_timestamp: Some(api_time(now)),
            last_timestamp: Some(api_time(now)),
            event_time: Some(MicroTime(Timestamp::now())),
            count: Some(1),
            reporting_component: Some("tugboat-nodeagent".into()),
            reporting_instance: Some(self.node_name.clone()),
            action: Some(reason.to_string()),
            ..Default::default()
        };
        let api: kube::Api<Event> = kube::Api::namespaced(self.client.clone(), namespace);
        if let Err(error) = api.create(&PostParams::default(), &event).await {
            tracing::warn!(pod.name = pod_name, reason, %error, "cannot record event");
        }
    }
}
