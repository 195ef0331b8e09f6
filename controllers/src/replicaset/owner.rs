//! What the replica controller manages: ReplicaSets, and ReplicationControllers, the classic
//! core/v1 object with the same meaning and equality selectors. As upstream's
//! `ReplicationManager` does, a ReplicationController is handled as the ReplicaSet it
//! converts to, and written back in its own form.

use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{ReplicationController, ReplicationControllerStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An object that keeps a number of pods from a template running.
pub trait ReplicaOwner:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + DeserializeOwned
    + Serialize
    + Debug
    + Send
    + Sync
    + 'static
{
    /// The controller's name in logs.
    const CONTROLLER: &'static str;
    /// The component its events come from, as upstream names it.
    const COMPONENT: &'static str;

    /// The object as a ReplicaSet: the same replicas, selector, template and status.
    fn to_replica_set(&self) -> ReplicaSet;

    /// The object with `status` (a ReplicaSet status; the fields are the same).
    fn with_status(&self, status: ReplicaSetStatus) -> Self;
}

impl ReplicaOwner for ReplicaSet {
    const CONTROLLER: &'static str = "replicaset";
    const COMPONENT: &'static str = "replicaset-controller";

    fn to_replica_set(&self) -> ReplicaSet {
        self.clone()
    }

    fn with_status(&self, status: ReplicaSetStatus) -> Self {
        let mut rs = self.clone();
        rs.status = Some(status);
        rs
    }
}

impl ReplicaOwner for ReplicationController {
    const CONTROLLER: &'static str = "replicationcontroller";
    const COMPONENT: &'static str = "replication-controller";

    fn to_replica_set(&self) -> ReplicaSet {
        let spec = self.spec.clone().unwrap_or_default();
        // The API server defaults an absent selector to the template's labels.
        let match_labels = spec.selector.clone().or_else(|| {
            spec.template
                .as_ref()
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
        });
        ReplicaSet {
            metadata: self.metadata.clone(),
            spec: Some(ReplicaSetSpec {
                replicas: spec.replicas,
                min_ready_seconds: spec.min_ready_seconds,
                selector: LabelSelector {
                    match_labels,
                    match_expressions: None,
                },
                template: spec.template,
            }),
            status: self
                .status
                .as_ref()
                .and_then(|s| serde_json::to_value(s).ok())
                .and_then(|s| serde_json::from_value(s).ok()),
        }
    }

    fn with_status(&self, status: ReplicaSetStatus) -> Self {
        let mut rc = self.clone();
        rc.status = serde_json::to_value(status)
            .ok()
            .and_then(|s| serde_json::from_value::<ReplicationControllerStatus>(s).ok());
        rc
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_replication_controller_reads_as_a_replica_set_and_back() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"replicas": 3, "selector": {"app": "web"},
                     "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": []}}},
            "status": {"replicas": 1, "readyReplicas": 1}
        }))
        .expect("rc");
        let rs = rc.to_replica_set();
        let spec = rs.spec.clone().expect("spec");
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(
            spec.selector
                .match_labels
                .and_then(|l| l.get("app").cloned())
                .as_deref(),
            Some("web")
        );
        assert_eq!(rs.status.as_ref().map(|s| s.replicas), Some(1));
        let status = ReplicaSetStatus {
            replicas: 3,
            ready_replicas: Some(2),
            observed_generation: Some(4),
            ..Default::default()
        };
        let back = rc.with_status(status).status.expect("status");
        assert_eq!(
            (back.replicas, back.ready_replicas, back.observed_generation),
            (3, Some(2), Some(4))
        );
    }
}
