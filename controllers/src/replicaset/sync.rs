//! One ReplicaSet's sync: claim pods, create or delete the difference, publish status.

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use tracing::debug;
use tugboat_api::selector::Selector;

use super::ReplicaOwner;
use super::ReplicaSetController;
use super::pods::{is_active, pod_from_template, pods_to_delete};
use super::status::{calculate_status, needs_update};
use crate::error::{Chain, kube_status_is};
use crate::framework::claim::{claim_objects, owner_still_current};
use crate::framework::events::{self, EventType};
use crate::framework::ownership::{controller_of, controller_ref};
use crate::framework::slow_start::{INITIAL_BATCH_SIZE, batch_sizes};
use crate::framework::{ObjectKey, Reconciler, Requeue};
use crate::{Error, Result};

/// The reason in a 403's status causes when the namespace is being deleted.
const NAMESPACE_TERMINATING_CAUSE: &str = "NamespaceTerminating";

fn is_namespace_terminating(error: &kube::Error) -> bool {
    matches!(error, kube::Error::Api(status)
        if status.details.as_ref().is_some_and(|d| d.causes.iter().any(|c| c.reason == NAMESPACE_TERMINATING_CAUSE)))
}

impl<K: ReplicaOwner> Reconciler for ReplicaSetController<K> {
    fn name(&self) -> &'static str {
        K::CONTROLLER
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        let rs_key = key.to_string();
        let Some(owner) = self.cached_replica_set(key) else {
            debug!("replicaset is gone");
            self.expectations.delete(&rs_key);
            return Ok(Requeue::Never);
        };
        let rs = owner.to_replica_set();
        // Read before listing pods: a pod event arriving in between then triggers another sync.
        let needs_sync = self.expectations.satisfied(&rs_key);
        let Some(spec) = rs.spec.as_ref() else {
            return Ok(Requeue::Never);
        };
        let selector = Selector::from_label_selector(Some(&spec.selector)).map_err(|source| {
            Error::InvalidSelector {
                kind: "ReplicaSet",
                key: rs_key.clone(),
                source,
            }
        })?;

        let candidates: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
            .filter(|pod| is_active(pod))
            .collect();
        let owned = self
            .claim_pods(owner.as_ref(), &selector, candidates)
            .await?;
        let owned_refs: Vec<&Pod> = owned.iter().map(Arc::as_ref).collect();

        let manage_result = if needs_sync && rs.metadata.deletion_timestamp.is_none() {
            self.manage_replicas(owner.as_ref(), &rs, &owned_refs).await
        } else {
            Ok(())
        };
        let manage_message = manage_result.as_ref().err().map(|e| Chain(e).to_string());

        let mut status = calculate_status(
            &rs,
            &owned_refs,
            manage_message.as_deref(),
            Timestamp::now(),
        );
        status.observed_generation = rs.metadata.generation;
        let mut published = rs.clone();
        if needs_update(&rs, &status) {
            let api: Api<K> = Api::namespaced(self.client.clone(), &key.namespace);
            published = api
                .replace_status(
                    &key.name,
                    &PostParams::default(),
                    &owner.with_status(status),
                )
                .await?
                .to_replica_set();
        }
        manage_result?;

        let desired = published
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1);
        let min_ready_seconds = published
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        let status = published.status.unwrap_or_default();
        if min_ready_seconds > 0
            && status.ready_replicas.unwrap_or(0) == desired
            && status.available_replicas.unwrap_or(0) != desired
        {
            return Ok(Requeue::After(Duration::from_secs(u64::from(
                min_ready_seconds.unsigned_abs(),
            ))));
        }
        Ok(Requeue::Never)
    }
}

impl<K: ReplicaOwner> ReplicaSetController<K> {
    /// Adopts matching orphans and releases owned pods that stopped matching; returns the pods
    /// this ReplicaSet owns afterwards.
    async fn claim_pods(
        &self,
        rs: &K,
        selector: &Selector,
        candidates: Vec<Arc<Pod>>,
    ) -> Result<Vec<Arc<Pod>>> {
        let namespace = rs.meta().namespace.as_deref().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        claim_objects(rs, selector, &pods, candidates, || {
            owner_still_current(&self.client, rs)
        })
        .await
    }

    /// Creates or deletes pods so that `owned.len()` approaches `spec.replicas`.
    async fn manage_replicas(&self, owner: &K, rs: &ReplicaSet, owned: &[&Pod]) -> Result<()> {
        let key = ObjectKey::of(rs);
        let rs_key = key.to_string();
        let desired = rs
            .spec
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(1)
            .max(0)
            .unsigned_abs() as usize;
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);

        if owned.len() < desired {
            let count = (desired - owned.len()).min(self.config.burst_replicas);
            let template = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .ok_or_else(|| Error::InvalidSpec {
                    kind: "ReplicaSet",
                    key: rs_key.clone(),
                    message: "spec.template is missing".into(),
                })?;
            let pod = pod_from_template(template, &key.namespace, &key.name, controller_ref(owner));
            // Expect before creating: the watch may report a pod before `create` returns.
            self.expectations.expect_creations(&rs_key, count);
            debug!(count, "creating pods");
            let mut created = 0;
            let mut made_names = Vec::new();
            let mut failure = None;
            let post_params = PostParams::default();
            for batch in batch_sizes(count, INITIAL_BATCH_SIZE) {
                let results = join_all((0..batch).map(|_| pods.create(&post_params, &pod))).await;
                for result in results {
                    match result {
                        Ok(made) => {
                            created += 1;
                            made_names.push(made.metadata.name.unwrap_or_default());
                        }
                        // Every create would fail; there is nothing to do (as upstream).
                        Err(error) if is_namespace_terminating(&error) => created += 1,
                        Err(error) => {
                            events::record(
                                &self.client,
                                K::COMPONENT,
                                owner,
                                EventType::Warning,
                                "FailedCreate",
                                &format!("Error creating: {error}"),
                            )
                            .await;
                            failure.get_or_insert(error);
                        }
                    }
                }
                if failure.is_some() {
                    break;
                }
            }
            // Creations never attempted, or failed, will never be observed.
            for _ in created..count {
                self.expectations.creation_observed(&rs_key);
            }
            self.record_each(owner, "SuccessfulCreate", "Created pod", &made_names)
                .await;
            return failure.map_or(Ok(()), |error| Err(error.into()));
        }

        if owned.len() > desired {
            let count = (owned.len() - desired).min(self.config.burst_replicas);
            let related = self.related_pods(rs);
            let related_refs: Vec<&Pod> = related.iter().map(Arc::as_ref).collect();
            let victims = pods_to_delete(owned, &related_refs, count, Timestamp::now());
            let victim_keys: Vec<String> = victims
                .iter()
                .map(|p| ObjectKey::of(*p).to_string())
                .collect();
            self.expectations
                .expect_deletions(&rs_key, victim_keys.clone());
            debug!(count, "deleting pods");
            let results = join_all(victims.iter().map(|pod| {
                let name = pod.metadata.name.clone().unwrap_or_default();
                let pods = pods.clone();
                async move { pods.delete(&name, &DeleteParams::default()).await }
            }))
            .await;
            let mut failure = None;
            let mut deleted_names = Vec::new();
            for (result, pod_key) in results.into_iter().zip(&victim_keys) {
                if result.is_ok() {
                    deleted_names.push(pod_key.rsplit('/').next().unwrap_or(pod_key).to_owned());
                }
                if let Err(error) = result {
                    self.expectations.deletion_observed(&rs_key, pod_key);
                    if !kube_status_is(&error, 404) {
                        failure.get_or_insert(error);
                    }
                }
            }
            self.record_each(owner, "SuccessfulDelete", "Deleted pod", &deleted_names)
                .await;
            return failure.map_or(Ok(()), |error| Err(error.into()));
        }
        Ok(())
    }

    /// One Normal event per pod (`Created pod: NAME`, as upstream), sent concurrently so a
    /// large batch does not wait on them one by one.
    async fn record_each(&self, owner: &K, reason: &str, what: &str, names: &[String]) {
        let messages: Vec<String> = names.iter().map(|name| format!("{what}: {name}")).collect();
        join_all(messages.iter().map(|message| {
            events::record(
                &self.client,
                K::COMPONENT,
                owner,
                EventType::Normal,
                reason,
                message,
            )
        }))
        .await;
    }

    /// The pods of every ReplicaSet that shares this one's controller (its Deployment's other
    /// revisions), this one's included: they decide which pods are "doubled up" on a node.
    fn related_pods(&self, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
        let namespace = rs.metadata.namespace.clone();
        let mut sibling_uids: Vec<String> = rs.metadata.uid.clone().into_iter().collect();
        if let Some(owner) = controller_of(&rs.metadata) {
            for other in self.replica_sets.state() {
                let other = other.to_replica_set();
                if other.metadata.namespace == namespace
                    && controller_of(&other.metadata).is_some_and(|r| r.uid == owner.uid)
                    && let Some(uid) = other.metadata.uid.clone()
                {
                    sibling_uids.push(uid);
                }
            }
        }
        self.pods
            .state()
            .into_iter()
            .filter(|pod| pod.metadata.namespace == namespace)
            .filter(|pod| {
                controller_of(&pod.metadata).is_some_and(|r| sibling_uids.contains(&r.uid))
            })
            .collect()
    }
}
