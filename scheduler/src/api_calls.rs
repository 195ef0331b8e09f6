//! The scheduler's writes to the API: bind, report an unschedulable pod (condition and
//! event), and preempt (evict victims, nominate the node). Each runs in its own task.

use k8s_openapi::{
    api::core::v1::{Event, EventSource, ObjectReference, Pod},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, Time},
    jiff::Timestamp,
};
use kube::{
    Api, Client,
    api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions},
};
use serde_json::json;

use crate::{cache::PodKey, error::Result};

fn pods_api(client: &Client, pod: &Pod) -> Api<Pod> {
    Api::namespaced(
        client.clone(),
        pod.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

fn name_of(pod: &Pod) -> &str {
    pod.metadata.name.as_deref().unwrap_or_default()
}

/// Records `node_name` on each named claim of `pod` (`volume.kubernetes.io/selected-node`),
/// so the provisioner makes its volume where the pod runs.
pub async fn select_node_for_claims(
    client: &Client,
    pod: &Pod,
    claims: &[String],
    node_name: &str,
) -> Result<()> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let api: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(client.clone(), namespace);
    let patch = json!({"metadata": {"annotations": {crate::volumes::SELECTED_NODE: node_name}}});
    for claim in claims {
        api.patch(claim, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
    }
    Ok(())
}

/// POSTs the `pods/binding` subresource, as kube-scheduler's DefaultBinder does.
pub async fn bind(client: &Client, pod: &Pod, node_name: &str) -> Result<()> {
    let binding = json!({
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {
            "name": name_of(pod),
            "namespace": pod.metadata.namespace,
            "uid": pod.metadata.uid,
        },
        "target": {"apiVersion": "v1", "kind": "Node", "name": node_name},
    });
    pods_api(client, pod)
        .create_subresource::<_, serde_json::Value>(
            "binding",
            name_of(pod),
            &PostParams::default(),
            &binding,
        )
        .await?;
    Ok(())
}

/// True when the pod already carries this exact unschedulable condition, so writing it
/// again would only churn the API.
pub fn already_reported(pod: &Pod, message: &str) -> bool {
    pod.status
        .as_ref()
        .and_then(|status| status.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|condition| {
            condition.type_ == "PodScheduled"
                && condition.status == "False"
                && condition.message.as_deref() == Some(message)
        })
}

/// Sets `PodScheduled=False` with reason `reason` (Unschedulable or SchedulerError) and
/// records a `FailedScheduling` Warning event, as `kubectl describe pod` shows them.
pub async fn report_failure(
    client: &Client,
    scheduler_name: &str,
    pod: &Pod,
    reason: &str,
    message: &str,
    nominated_node: Option<&str>,
) -> Result<()> {
    let now = Time(Timestamp::now());
    let mut status = json!({
        "conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": now,
        }],
    });
    if let Some(node) = nominated_node {
        status["nominatedNodeName"] = json!(node);
    }
    pods_api(client, pod)
        .patch_status(
            name_of(pod),
            &PatchParams::default(),
            &Patch::Strategic(json!({ "status": status })),
        )
        .await?;
    record_event(
        client,
        scheduler_name,
        pod,
        "Warning",
        "FailedScheduling",
        message,
    )
    .await
}

/// Creates a core/v1 Event about `pod`.
pub async fn record_event(
    client: &Client,
    scheduler_name: &str,
    pod: &Pod,
    event_type: &str,
    reason: &str,
    message: &str,
) -> Result<()> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let now = Timestamp::now();
    let event = Event {
        metadata: ObjectMeta {
            // kube's recorder names events `<object>.<unique hex>`.
            name: Some(format!("{}.{:x}", name_of(pod), now.as_nanosecond())),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: pod.metadata.name.clone(),
            namespace: Some(namespace.to_owned()),
            uid: pod.metadata.uid.clone(),
            resource_version: pod.metadata.resource_version.clone(),
            ..Default::default()
        },
        reason: Some(reason.to_owned()),
        message: Some(message.to_owned()),
        type_: Some(event_type.to_owned()),
        source: Some(EventSource {
            component: Some(scheduler_name.to_owned()),
            host: None,
        }),
        reporting_component: Some(scheduler_name.to_owned()),
        reporting_instance: Some(scheduler_name.to_owned()),
        action: Some("Scheduling".into()),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        count: Some(1),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &event)
        .await?;
    Ok(())
}

/// Deletes the victims (each guarded by its UID so a replacement with the same name is
/// never hit), records a `Preempted` event on each, and nominates the node on the
/// preemptor.
pub async fn preempt(
    client: &Client,
    scheduler_name: &str,
    preemptor: &Pod,
    node_name: &str,
    victims: &[(PodKey, Pod)],
) -> Result<()> {
    for (_, victim) in victims {
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: victim.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match pods_api(client, victim)
            .delete(name_of(victim), &params)
            .await
        {
            Ok(_) => {}
            // Already gone: that is what we wanted.
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(error) => return Err(error.into()),
        }
        let message = format!(
            "Preempted by pod {} on node {node_name}",
            preemptor.metadata.uid.as_deref().unwrap_or_default()
        );
        record_event(
            client,
            scheduler_name,
            victim,
            "Normal",
            "Preempted",
            &message,
        )
        .await?;
    }
    let patch = json!({"status": {"nominatedNodeName": node_name}});
    pods_api(client, preemptor)
        .patch_status(
            name_of(preemptor),
            &PatchParams::default(),
            &Patch::Strategic(patch),
        )
        .await?;
    Ok(())
}
