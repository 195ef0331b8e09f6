//! One DaemonSet's sync: record the template's revision, claim pods, decide, create and
//! delete pods, publish status, trim the history.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tracing::debug;
use tugboat_api::selector::Selector;

use super::DaemonSetController;
use super::decide::{REVISION_HASH_LABEL, daemon_tolerations, decide};
use crate::error::kube_status_is;
use crate::framework::claim::{claim_objects, owner_still_current};
use crate::framework::events::{self, EventType};
use crate::framework::history::{beyond_history_limit, record_revision, template_hash};
use crate::framework::ownership::{controller_of, controller_ref};
use crate::framework::{ObjectKey, Reconciler, Requeue};
use crate::{Error, Result};

const COMPONENT: &str = "daemonset-controller";

impl Reconciler for DaemonSetController {
    fn name(&self) -> &'static str {
        "daemonset"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        let ds_key = key.to_string();
        let Some(ds) = self.cached_daemon_set(key) else {
            self.expectations.delete(&ds_key);
            return Ok(Requeue::Never);
        };
        if ds.metadata.deletion_timestamp.is_some() || !self.expectations.satisfied(&ds_key) {
            return Ok(Requeue::Never);
        }
        let selector = Selector::from_label_selector(ds.spec.as_ref().map(|s| &s.selector))
            .map_err(|source| Error::InvalidSelector {
                kind: "DaemonSet",
                key: ds_key.clone(),
                source,
            })?;
        let template = ds
            .spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default();
        let hash = template_hash(
            &template,
            ds.status.as_ref().and_then(|s| s.collision_count),
        );
        let revisions = self.owned_revisions(&ds);
        let revision_refs: Vec<&ControllerRevision> = revisions.iter().map(Arc::as_ref).collect();
        record_revision(&self.client, ds.as_ref(), &template, &hash, &revision_refs).await?;

        let candidates: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
            .collect();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let owned = claim_objects(ds.as_ref(), &selector, &pods, candidates, || {
            owner_still_current(&self.client, ds.as_ref())
        })
        .await?;
        let owned_refs: Vec<&Pod> = owned.iter().map(Arc::as_ref).collect();
        let nodes: Vec<Arc<Node>> = self.nodes.state();
        let node_refs: Vec<&Node> = nodes.iter().map(Arc::as_ref).collect();
        let decision = decide(&ds, &hash, &node_refs, &owned_refs, Timestamp::now());

        let manage = self
            .manage_pods(&ds, &hash, &pods, &decision.create_on, &decision.delete)
            .await;
        if ds.status.as_ref() != Some(&decision.status) {
            let mut published = ds.as_ref().clone();
            published.status = Some(decision.status.clone());
            Api::<DaemonSet>::namespaced(self.client.clone(), &key.namespace)
                .replace_status(&key.name, &PostParams::default(), &published)
                .await?;
        }
        manage?;

        // History: keep what live pods or the limit need.
        let in_use: Vec<&str> = owned_refs
            .iter()
            .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_HASH_LABEL))
            .map(String::as_str)
            .collect();
        let limit = ds
            .spec
            .as_ref()
            .and_then(|s| s.revision_history_limit)
            .unwrap_or(10);
        let history: Api<ControllerRevision> = Api::namespaced(self.client.clone(), &key.namespace);
        for name in beyond_history_limit(&revision_refs, &hash, &in_use, limit) {
            match history.delete(&name, &DeleteParams::default()).await {
                Ok(_) => {}
                Err(error) if kube_status_is(&error, 404) => {}
                Err(error) => return Err(error.into()),
            }
        }
        // Available counts grow with time when minReadySeconds is set.
        let min_ready = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        if min_ready > 0 && decision.status.number_available < Some(decision.status.number_ready) {
            return Ok(Requeue::After(std::time::Duration::from_secs(
                u64::from(min_ready.unsigned_abs()) + 1,
            )));
        }
        Ok(Requeue::Never)
    }
}

impl DaemonSetController {
    fn owned_revisions(&self, ds: &DaemonSet) -> Vec<Arc<ControllerRevision>> {
        let uid = ds.metadata.uid.as_deref();
        self.revisions
            .state()
            .into_iter()
            .filter(|r| r.metadata.namespace == ds.metadata.namespace)
            .filter(|r| controller_of(&r.metadata).is_some_and(|o| Some(o.uid.as_str()) == uid))
            .collect()
    }

    async fn manage_pods(
        &self,
        ds: &DaemonSet,
        hash: &str,
        pods: &Api<Pod>,
        create_on: &[String],
        delete: &[String],
    ) -> Result<()> {
        let ds_key = ObjectKey::of(ds).to_string();
        let namespace = ds.metadata.namespace.as_deref().unwrap_or_default();
        let mut failure: Option<kube::Error> = None;
        if !delete.is_empty() {
            debug!(count = delete.len(), "deleting daemon pods");
            let keys: Vec<String> = delete.iter().map(|n| format!("{namespace}/{n}")).collect();
            self.expectations.expect_deletions(&ds_key, keys.clone());
            let params = DeleteParams::default();
            let results = join_all(delete.iter().map(|name| pods.delete(name, &params))).await;
            for ((result, pod_key), name) in results.into_iter().zip(&keys).zip(delete) {
                match result {
                    Ok(_) => {
                        events::record(
                            &self.client,
                            COMPONENT,
                            ds,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {name}"),
                        )
                        .await
                    }
                    Err(error) => {
                        self.expectations.deletion_observed(&ds_key, pod_key);
                        if !kube_status_is(&error, 404) {
                            failure.get_or_insert(error);
                        }
                    }
                }
            }
        }
        if !create_on.is_empty() {
            debug!(count = create_on.len(), "creating daemon pods");
            self.expectations.expect_creations(&ds_key, create_on.len());
            let post = PostParams::default();
            let new_pods: Vec<Pod> = create_on
                .iter()
                .map(|node| pod_for_node(ds, hash, node))
                .collect();
            let results = join_all(new_pods.iter().map(|pod| pods.create(&post, pod))).await;
            for (result, node) in results.into_iter().zip(create_on) {
                match result {
                    Ok(created) => {
                        let name = created.metadata.name.unwrap_or_default();
                        events::record(
                            &self.client,
                            COMPONENT,
                            ds,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {name}"),
                        )
                        .await;
                    }
                    Err(error) => {
                        self.expectations.creation_observed(&ds_key);
                        events::record(
                            &self.client,
                            COMPONENT,
                            ds,
                            EventType::Warning,
                            "FailedCreate",
                            &format!("Error creating pod on node {node}: {error}"),
                        )
                        .await;
                        failure.get_or_insert(error);
                    }
                }
            }
        }
        failure.map_or(Ok(()), |error| Err(error.into()))
    }
}

/// A daemon pod for `node`: the template, labelled with its revision, pinned to the node by
/// required node affinity (the scheduler binds it), with the daemon tolerations.
pub fn pod_for_node(ds: &DaemonSet, hash: &str, node: &str) -> Pod {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let meta = template.metadata.unwrap_or_default();
    let mut labels = meta.labels.unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.to_owned());
    if let Some(generation) = ds.metadata.generation {
        labels.insert("pod-template-generation".into(), generation.to_string());
    }
    let mut spec = template.spec.unwrap_or_default();
    spec.tolerations = Some(daemon_tolerations(&spec));
    let pin = NodeSelector {
        node_selector_terms: vec![NodeSelectorTerm {
            match_fields: Some(vec![NodeSelectorRequirement {
                key: "metadata.name".into(),
                operator: "In".into(),
                values: Some(vec![node.to_owned()]),
            }]),
            match_expressions: None,
        }],
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default)
        .required_during_scheduling_ignored_during_execution = Some(pin);
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{name}-")),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: meta.annotations,
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}
