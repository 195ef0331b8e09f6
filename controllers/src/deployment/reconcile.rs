//! One Deployment's sync against the API (upstream's `syncDeployment` with `rolloutRolling`,
//! `rolloutRecreate`, `sync` and `getNewReplicaSet`). Decisions come from the sibling modules;
//! this file reads the caches, writes, and keeps its in-memory copies current.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tracing::{debug, info};
use tugboat_api::selector::Selector;

use super::DeploymentController;
use super::autorollback;
use super::progress::{
    self, FAILED_RS_CREATE, FOUND_NEW_RS, NEW_RS_CREATED, PROGRESSING, condition, get_condition,
    has_progress_deadline, set_condition,
};
use super::recreate::old_pods_running;
use super::rolling::{new_rs_new_replicas, reconcile_new, reconcile_old};
use super::sync::{active, find_new, find_old, history_to_delete, is_scaling_event, plan_scale};
use super::util::{
    InvalidIntOrPercent, POD_TEMPLATE_HASH_LABEL, REVISION_ANNOTATION, compute_hash,
    deployment_replicas, equal_ignore_hash, is_recreate, max_revision, max_surge, revision,
    rs_replicas, set_new_rs_annotations, set_replicas_annotations,
};
use crate::error::kube_status_is;
use crate::framework::claim::claim_objects;
use crate::framework::events::{self, EventType};
use crate::framework::ownership::{controller_of, controller_ref};
use crate::framework::{ObjectKey, Reconciler, Requeue};
use crate::{Error, Result};

/// The state one sync works on: the Deployment and its ReplicaSets, updated after each write.
struct Rollout {
    deployment: Deployment,
    replica_sets: Vec<ReplicaSet>,
}

impl Rollout {
    fn refs(&self) -> Vec<&ReplicaSet> {
        self.replica_sets.iter().collect()
    }

    fn replace_rs(&mut self, updated: ReplicaSet) {
        match self
            .replica_sets
            .iter_mut()
            .find(|rs| rs.metadata.name == updated.metadata.name)
        {
            Some(slot) => *slot = updated,
            None => self.replica_sets.push(updated),
        }
    }

    /// The new ReplicaSet (cloned) and the old ones, as upstream's `FindNewReplicaSet`.
    fn new_and_old(&self) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
        let refs = self.refs();
        let new_rs = find_new(&self.deployment, &refs).cloned();
        let old = find_old(new_rs.as_ref(), &refs)
            .into_iter()
            .cloned()
            .collect();
        (new_rs, old)
    }

    fn key(&self) -> String {
        ObjectKey::of(&self.deployment).to_string()
    }
}

fn invalid(key: &str, error: InvalidIntOrPercent) -> Error {
    Error::InvalidSpec {
        kind: "Deployment",
        key: key.to_owned(),
        message: error.to_string(),
    }
}

impl Reconciler for DeploymentController {
    fn name(&self) -> &'static str {
        "deployment"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(cached) = self.cached_deployment(key) else {
            debug!("deployment is gone");
            return Ok(Requeue::Never);
        };
        let deployment = cached.as_ref().clone();
        let Some(spec) = deployment.spec.as_ref() else {
            return Ok(Requeue::Never);
        };
        let selector = Selector::from_label_selector(Some(&spec.selector)).map_err(|source| {
            Error::InvalidSelector {
                kind: "Deployment",
                key: key.to_string(),
                source,
            }
        })?;
        if selector.is_everything() {
            // Selecting every pod would fight every other controller: only acknowledge the spec.
            info!("deployment selects everything; not managing it");
            if deployment.metadata.generation
                != deployment
                    .status
                    .as_ref()
                    .and_then(|s| s.observed_generation)
            {
                let mut status = deployment.status.clone().unwrap_or_default();
                status.observed_generation = deployment.metadata.generation;
                self.write_status(&deployment, status).await?;
            }
            return Ok(Requeue::Never);
        }

        let replica_sets = self.claim_replica_sets(&deployment, &selector).await?;
        let mut rollout = Rollout {
            deployment,
            replica_sets,
        };

        if rollout.deployment.metadata.deletion_timestamp.is_some() {
            return self.sync_status_only(&mut rollout).await;
        }
        if let Some(status) =
            progress::paused_condition_update(&rollout.deployment, Timestamp::now())
        {
            rollout.deployment = self.write_status(&rollout.deployment, status).await?;
        }
        let paused = rollout
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.paused)
            .unwrap_or(false);
        if paused || is_scaling_event(&rollout.deployment, &rollout.refs()) {
            return self.sync_scale(&mut rollout).await;
        }
        if is_recreate(&rollout.deployment) {
            self.rollout_recreate(&mut rollout).await
        } else {
            self.rollout_rolling(&mut rollout).await
        }
    }
}

impl DeploymentController {
    /// The Deployment's ReplicaSets after adopting orphans and releasing strays.
    async fn claim_replica_sets(
        &self,
        deployment: &Deployment,
        selector: &Selector,
    ) -> Result<Vec<ReplicaSet>> {
        let namespace = deployment.metadata.namespace.clone().unwrap_or_default();
        let candidates: Vec<Arc<ReplicaSet>> = self
            .replica_sets
            .state()
            .into_iter()
            .filter(|rs| rs.metadata.namespace.as_deref() == Some(namespace.as_str()))
            .collect();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &namespace);
        let recheck = || async {
            let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
            let name = deployment.metadata.name.clone().unwrap_or_default();
            let fresh = api.get_opt(&name).await?;
            Ok(fresh.is_some_and(|fresh| {
                fresh.metadata.uid == deployment.metadata.uid
                    && fresh.metadata.deletion_timestamp.is_none()
            }))
        };
        let owned = claim_objects(deployment, selector, &api, candidates, recheck).await?;
        Ok(owned.iter().map(|rs| rs.as_ref().clone()).collect())
    }

    /// The Deployment's pods: those controlled by its ReplicaSets.
    fn pods_of(&self, rollout: &Rollout) -> Vec<Arc<Pod>> {
        let uids: Vec<&str> = rollout
            .replica_sets
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        self.pods
            .state()
            .into_iter()
            .filter(|pod| pod.metadata.namespace == rollout.deployment.metadata.namespace)
            .filter(|pod| {
                controller_of(&pod.metadata).is_some_and(|r| uids.contains(&r.uid.as_str()))
            })
            .collect()
    }

    async fn write_status(
        &self,
        deployment: &Deployment,
        status: k8s_openapi::api::apps::v1::DeploymentStatus,
    ) -> Result<Deployment> {
        let mut updated = deployment.clone();
        updated.status = Some(status);
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            deployment.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let name = deployment.metadata.name.clone().unwrap_or_default();
        Ok(api
            .replace_status(&name, &PostParams::default(), &updated)
            .await?)
    }

    /// Scales a ReplicaSet and records the Deployment's size on it (upstream's `scaleReplicaSet`).
    async fn scale_rs(&self, rollout: &mut Rollout, name: &str, replicas: i32) -> Result<()> {
        let key = rollout.key();
        let Some(mut rs) = rollout
            .replica_sets
            .iter()
            .find(|rs| rs.metadata.name.as_deref() == Some(name))
            .cloned()
        else {
            return Ok(());
        };
        let desired = deployment_replicas(&rollout.deployment);
        let surge = max_surge(&rollout.deployment).map_err(|e| invalid(&key, e))?;
        let size_changed = rs_replicas(&rs) != replicas;
        let annotations_changed = set_replicas_annotations(&mut rs, desired, desired + surge);
        if !size_changed && !annotations_changed {
            return Ok(());
        }
        let from = rs_replicas(&rs);
        rs.spec.get_or_insert_with(Default::default).replicas = Some(replicas);
        let api: Api<ReplicaSet> = Api::namespaced(
            self.client.clone(),
            rs.metadata.namespace.as_deref().unwrap_or_default(),
        );
        let updated = api.replace(name, &PostParams::default(), &rs).await?;
        if size_changed {
            let direction = if replicas > from { "up" } else { "down" };
            info!(
                replicaset = name,
                from,
                to = replicas,
                "scaled {direction} replica set"
            );
            // As upstream's `scaleReplicaSet`: `kubectl describe deployment` lists the steps.
            events::record(
                &self.client,
                "deployment-controller",
                &rollout.deployment,
                EventType::Normal,
                "ScalingReplicaSet",
                &format!("Scaled {direction} replica set {name} from {from} to {replicas}"),
            )
            .await;
        }
        rollout.replace_rs(updated);
        Ok(())
    }

    /// Sets the Deployment's revision annotation through a metadata patch (a status update
    /// must not be relied on to carry metadata).
    async fn sync_revision_annotation(
        &self,
        rollout: &mut Rollout,
        revision_value: &str,
    ) -> Result<()> {
        let current = rollout
            .deployment
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION));
        if current.map(String::as_str) == Some(revision_value) {
            return Ok(());
        }
        let patch = json!({
            "metadata": {
                "annotations": { REVISION_ANNOTATION: revision_value },
                "resourceVersion": rollout.deployment.metadata.resource_version,
            }
        });
        let api: Api<Deployment> = Api::namespaced(
            self.client.clone(),
            rollout
                .deployment
                .metadata
                .namespace
                .as_deref()
                .unwrap_or_default(),
        );
        let name = rollout.deployment.metadata.name.clone().unwrap_or_default();
        rollout.deployment = api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        Ok(())
    }

    /// Upstream's `getNewReplicaSet`: brings the existing new ReplicaSet's revision and
    /// annotations up to date (this is how `rollout undo` reuses an old set), or creates it.
    async fn ensure_new_rs(
        &self,
        rollout: &mut Rollout,
        create: bool,
    ) -> Result<Option<ReplicaSet>> {
        let key = rollout.key();
        let (existing, old) = rollout.new_and_old();
        let new_revision = max_revision(old.iter()) + 1;
        let surge = max_surge(&rollout.deployment).map_err(|e| invalid(&key, e))?;
        let min_ready_seconds = rollout
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds);
        let namespace = rollout
            .deployment
            .metadata
            .namespace
            .clone()
            .unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &namespace);

        if let Some(existing) = existing {
            let mut updated = existing.clone();
            let annotations_changed = set_new_rs_annotations(
                &rollout.deployment,
                &mut updated,
                new_revision,
                true,
                surge,
            );
            let min_ready_changed =
                updated.spec.as_ref().and_then(|s| s.min_ready_seconds) != min_ready_seconds;
            if annotations_changed || min_ready_changed {
                updated
                    .spec
                    .get_or_insert_with(Default::default)
                    .min_ready_seconds = min_ready_seconds;
                let name = updated.metadata.name.clone().unwrap_or_default();
                let updated = api.replace(&name, &PostParams::default(), &updated).await?;
                rollout.replace_rs(updated.clone());
                return Ok(Some(updated));
            }
            let rs_revision = revision(updated.metadata.annotations.as_ref()).to_string();
            self.sync_revision_annotation(rollout, &rs_revision).await?;
            let status = rollout.deployment.status.clone().unwrap_or_default();
            if has_progress_deadline(&rollout.deployment)
                && get_condition(&status, PROGRESSING).is_none()
            {
                let mut status = status;
                let message = format!(
                    "Found new replica set {:?}",
                    updated.metadata.name.clone().unwrap_or_default()
                );
                set_condition(
                    &mut status,
                    condition(PROGRESSING, "True", FOUND_NEW_RS, message, Timestamp::now()),
                );
                rollout.deployment = self.write_status(&rollout.deployment, status).await?;
            }
            return Ok(Some(updated));
        }
        if !create {
            return Ok(None);
        }

        let deployment = &rollout.deployment;
        let Some(spec) = deployment.spec.as_ref() else {
            return Ok(None);
        };
        let collision_count = deployment.status.as_ref().and_then(|s| s.collision_count);
        let hash = compute_hash(&spec.template, collision_count);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.clone());
        let deployment_name = deployment.metadata.name.clone().unwrap_or_default();
        let mut new_rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("{deployment_name}-{hash}")),
                namespace: Some(namespace.clone()),
                owner_references: Some(vec![controller_ref(deployment)]),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        let mut all: Vec<&ReplicaSet> = old.iter().collect();
        all.push(&new_rs);
        let replicas =
            new_rs_new_replicas(deployment, &all, &new_rs).map_err(|e| invalid(&key, e))?;
        if let Some(spec) = new_rs.spec.as_mut() {
            spec.replicas = Some(replicas);
        }
        set_new_rs_annotations(deployment, &mut new_rs, new_revision, false, surge);
        let rs_name = new_rs.metadata.name.clone().unwrap_or_default();

        let (created, already_existed) = match api.create(&PostParams::default(), &new_rs).await {
            Ok(created) => (created, false),
            Err(error) if kube_status_is(&error, 409) => {
                // Ours from an earlier sync whose create we did not see, or a hash collision.
                let found = api.get_opt(&rs_name).await?;
                let ours = found.filter(|rs| {
                    controller_of(&rs.metadata).map(|r| &r.uid) == deployment.metadata.uid.as_ref()
                        && rs
                            .spec
                            .as_ref()
                            .and_then(|s| s.template.as_ref())
                            .is_some_and(|t| equal_ignore_hash(t, &spec.template))
                });
                match ours {
                    Some(rs) => (rs, true),
                    None => {
                        let mut status = deployment.status.clone().unwrap_or_default();
                        status.collision_count =
                            Some(collision_count.unwrap_or(0).saturating_add(1));
                        info!(replicaset = %rs_name, "pod-template-hash collision; bumping collisionCount");
                        self.write_status(deployment, status).await?;
                        return Err(error.into());
                    }
                }
            }
            Err(error) => {
                if has_progress_deadline(deployment) {
                    let mut status = deployment.status.clone().unwrap_or_default();
                    let message = format!("Failed to create new replica set {rs_name:?}: {error}");
                    set_condition(
                        &mut status,
                        condition(
                            PROGRESSING,
                            "False",
                            FAILED_RS_CREATE,
                            message,
                            Timestamp::now(),
                        ),
                    );
                    // Best effort: the create error is what gets reported and retried.
                    let _ = self.write_status(deployment, status).await;
                }
                return Err(error.into());
            }
        };
        if !already_existed {
            info!(replicaset = %rs_name, replicas, "created new replica set");
        }
        rollout.replace_rs(created.clone());
        self.sync_revision_annotation(rollout, &new_revision.to_string())
            .await?;
        if !already_existed && has_progress_deadline(&rollout.deployment) {
            let mut status = rollout.deployment.status.clone().unwrap_or_default();
            let message = format!("Created new replica set {rs_name:?}");
            set_condition(
                &mut status,
                condition(
                    PROGRESSING,
                    "True",
                    NEW_RS_CREATED,
                    message,
                    Timestamp::now(),
                ),
            );
            rollout.deployment = self.write_status(&rollout.deployment, status).await?;
        }
        Ok(Some(created))
    }

    /// Upstream's `rolloutRolling`.
    async fn rollout_rolling(&self, rollout: &mut Rollout) -> Result<Requeue> {
        let key = rollout.key();
        let Some(new_rs) = self.ensure_new_rs(rollout, true).await? else {
            return Ok(Requeue::Never);
        };
        let new_name = new_rs.metadata.name.clone().unwrap_or_default();
        let target = reconcile_new(&rollout.deployment, &rollout.refs(), &new_rs)
            .map_err(|e| invalid(&key, e))?;
        if let Some(target) = target {
            self.scale_rs(rollout, &new_name, target).await?;
            return self.sync_rollout_status(rollout).await;
        }
        let (new_rs, old) = rollout.new_and_old();
        let Some(new_rs) = new_rs else {
            return Ok(Requeue::Never);
        };
        let plan = reconcile_old(&rollout.deployment, &active(old.iter()), &new_rs)
            .map_err(|e| invalid(&key, e))?;
        if !plan.is_empty() {
            for (name, size) in plan {
                self.scale_rs(rollout, &name, size).await?;
            }
            return self.sync_rollout_status(rollout).await;
        }
        if progress::deployment_complete(
            &rollout.deployment,
            &rollout.deployment.status.clone().unwrap_or_default(),
        ) {
            self.cleanup_history(rollout).await?;
        }
        self.sync_rollout_status(rollout).await
    }

    /// Upstream's `rolloutRecreate`: all old pods gone before any new one starts.
    async fn rollout_recreate(&self, rollout: &mut Rollout) -> Result<Requeue> {
        let (new_rs, old) = rollout.new_and_old();
        let active_old: Vec<String> = active(old.iter())
            .into_iter()
            .filter_map(|rs| rs.metadata.name.clone())
            .collect();
        if !active_old.is_empty() {
            for name in active_old {
                self.scale_rs(rollout, &name, 0).await?;
            }
            return self.sync_rollout_status(rollout).await;
        }
        let pods = self.pods_of(rollout);
        let pod_refs: Vec<&Pod> = pods.iter().map(Arc::as_ref).collect();
        if old_pods_running(new_rs.as_ref(), &old.iter().collect::<Vec<_>>(), &pod_refs) {
            return self.sync_rollout_status(rollout).await;
        }
        let new_rs = match new_rs {
            Some(rs) => Some(rs),
            None => self.ensure_new_rs(rollout, true).await?,
        };
        if let Some(new_rs) = new_rs {
            let replicas = deployment_replicas(&rollout.deployment);
            if rs_replicas(&new_rs) != replicas {
                let name = new_rs.metadata.name.clone().unwrap_or_default();
                self.scale_rs(rollout, &name, replicas).await?;
            }
        }
        if progress::deployment_complete(
            &rollout.deployment,
            &rollout.deployment.status.clone().unwrap_or_default(),
        ) {
            self.cleanup_history(rollout).await?;
        }
        self.sync_rollout_status(rollout).await
    }

    /// Upstream's `sync`: a scaling event or a paused Deployment. Resizes without rolling.
    async fn sync_scale(&self, rollout: &mut Rollout) -> Result<Requeue> {
        let key = rollout.key();
        self.ensure_new_rs(rollout, false).await?;
        let (new_rs, old) = rollout.new_and_old();
        let plan = plan_scale(
            &rollout.deployment,
            new_rs.as_ref(),
            &old.iter().collect::<Vec<_>>(),
        )
        .map_err(|e| invalid(&key, e))?;
        for (name, size) in plan {
            self.scale_rs(rollout, &name, size).await?;
        }
        if rollout
            .deployment
            .spec
            .as_ref()
            .and_then(|s| s.paused)
            .unwrap_or(false)
        {
            self.cleanup_history(rollout).await?;
        }
        self.sync_status_only(rollout).await
    }

    /// Upstream's `syncDeploymentStatus`: counts and Available, no progress estimate.
    async fn sync_status_only(&self, rollout: &mut Rollout) -> Result<Requeue> {
        let key = rollout.key();
        let (new_rs, _) = rollout.new_and_old();
        let status = progress::calculate_status(
            &rollout.deployment,
            &rollout.refs(),
            new_rs.as_ref(),
            Timestamp::now(),
        )
        .map_err(|e| invalid(&key, e))?;
        if rollout.deployment.status.as_ref() != Some(&status) {
            rollout.deployment = self.write_status(&rollout.deployment, status).await?;
        }
        Ok(Requeue::Never)
    }

    /// Upstream's `syncRolloutStatus`, then a timer if the rollout may be stuck.
    async fn sync_rollout_status(&self, rollout: &mut Rollout) -> Result<Requeue> {
        let key = rollout.key();
        let now = Timestamp::now();
        let (new_rs, _) = rollout.new_and_old();
        let status =
            progress::rollout_status(&rollout.deployment, &rollout.refs(), new_rs.as_ref(), now)
                .map_err(|e| invalid(&key, e))?;
        if rollout.deployment.status.as_ref() == Some(&status) {
            self.auto_rollback(rollout).await?;
            return Ok(
                match progress::recheck_progress_after(&rollout.deployment, &status, now) {
                    Some(delay) => Requeue::After(delay),
                    None => Requeue::Never,
                },
            );
        }
        rollout.deployment = self.write_status(&rollout.deployment, status).await?;
        self.auto_rollback(rollout).await?;
        Ok(Requeue::Never)
    }

    /// Tugboat's opt-in automatic rollback of a failed rollout (see [`autorollback`]): the
    /// previous template goes back in, guarded by the resourceVersion the decision was made
    /// on; a Warning event and the `AutoRolledBack` condition say why.
    async fn auto_rollback(&self, rollout: &mut Rollout) -> Result<()> {
        let (new_rs, old) = rollout.new_and_old();
        let pods = self.pods_of(rollout);
        let crash_loop = autorollback::crash_loop(
            &rollout.deployment,
            new_rs.as_ref(),
            pods.iter().map(AsRef::as_ref),
        );
        let Some(plan) = autorollback::plan(&rollout.deployment, new_rs.as_ref(), &old, crash_loop)
        else {
            return Ok(());
        };
        let mut desired = rollout.deployment.clone();
        let name = desired.metadata.name.clone().unwrap_or_default();
        let namespace = desired.metadata.namespace.clone().unwrap_or_default();
        desired
            .metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(
                autorollback::ROLLED_BACK_FROM_ANNOTATION.to_owned(),
                plan.from_hash.clone(),
            );
        if let Some(spec) = desired.spec.as_mut() {
            spec.template = plan.template.clone();
        }
        // A replace carries the resourceVersion this was decided on: a newer spec wins (409).
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), &namespace);
        let updated = api.replace(&name, &PostParams::default(), &desired).await?;
        let why = plan.failure.describe(plan.from_revision);
        let message = format!(
            "Rolled back deployment {name:?} to revision {} because {why}",
            plan.to_revision
        );
        info!(
            deployment = %name,
            from = plan.from_revision,
            to = plan.to_revision,
            reason = plan.failure.reason(),
            "rolled back automatically"
        );
        events::record(
            &self.client,
            "deployment-controller",
            &updated,
            EventType::Warning,
            "DeploymentRollback",
            &message,
        )
        .await;
        let mut status = updated.status.clone().unwrap_or_default();
        let conditions = status.conditions.get_or_insert_with(Vec::new);
        conditions.retain(|c| c.type_ != autorollback::ROLLED_BACK_CONDITION);
        let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now());
        conditions.push(k8s_openapi::api::apps::v1::DeploymentCondition {
            type_: autorollback::ROLLED_BACK_CONDITION.to_owned(),
            status: "True".to_owned(),
            reason: Some(plan.failure.reason().to_owned()),
            message: Some(message),
            last_transition_time: Some(now.clone()),
            last_update_time: Some(now),
        });
        rollout.deployment = self.write_status(&updated, status).await?;
        Ok(())
    }

    /// Deletes old ReplicaSets past `revisionHistoryLimit`.
    async fn cleanup_history(&self, rollout: &mut Rollout) -> Result<()> {
        let (_, old) = rollout.new_and_old();
        let doomed: Vec<(String, Option<String>)> =
            history_to_delete(&rollout.deployment, &old.iter().collect::<Vec<_>>())
                .into_iter()
                .map(|rs| {
                    (
                        rs.metadata.name.clone().unwrap_or_default(),
                        rs.metadata.resource_version.clone(),
                    )
                })
                .collect();
        let namespace = rollout
            .deployment
            .metadata
            .namespace
            .clone()
            .unwrap_or_default();
        let api: Api<ReplicaSet> = Api::namespaced(self.client.clone(), &namespace);
        for (name, resource_version) in doomed {
            let params = DeleteParams {
                // Only the version we judged: a set scaled up meanwhile must stay.
                preconditions: resource_version.map(|rv| kube::api::Preconditions {
                    resource_version: Some(rv),
                    uid: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &params).await {
                Ok(_) => {
                    info!(replicaset = %name, "deleted old replica set past revisionHistoryLimit")
                }
                Err(error) if kube_status_is(&error, 404) => {}
                Err(error) => return Err(error.into()),
            }
            rollout
                .replica_sets
                .retain(|rs| rs.metadata.name.as_deref() != Some(name.as_str()));
        }
        Ok(())
    }
}
