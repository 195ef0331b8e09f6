//! Converging one claim or one volume. Every write carries the resourceVersion it was decided
//! on: a stale cache ends in 409 and a requeue, never in a double bind.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ObjectReference, PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimStatus,
    PersistentVolumeStatus, Pod,
};
use kube::Api;
use kube::api::{DeleteParams, ListParams, PostParams, Preconditions};
use tracing::{info, warn};

use super::VolumeController;
use super::decide::{
    self, BETA_STORAGE_PROVISIONER, BIND_COMPLETED, BOUND_BY_CONTROLLER, Provisioning, Reclaim,
    SELECTED_NODE, STORAGE_PROVISIONER,
};
use crate::Result;
use crate::framework::ObjectKey;
use crate::framework::events::{EventType, record};
use crate::framework::runner::{Reconciler, Requeue};

const COMPONENT: &str = "persistentvolume-controller";
/// The finalizer that keeps a claim while pods use it.
const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";
/// How often a deleted claim still in use is looked at again.
const PROTECTION_RECHECK: std::time::Duration = std::time::Duration::from_secs(2);

impl Reconciler for VolumeController {
    fn name(&self) -> &'static str {
        "persistentvolume"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        if key.namespace.is_empty() {
            self.sync_volume(&key.name).await
        } else {
            self.sync_claim(key).await
        }
    }
}

fn phase_of_volume(volume: &PersistentVolume) -> &str {
    volume
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

fn set_annotation(meta: &mut kube::api::ObjectMeta, key: &str, value: &str) -> bool {
    let annotations = meta.annotations.get_or_insert_with(BTreeMap::new);
    if annotations.get(key).map(String::as_str) == Some(value) {
        return false;
    }
    annotations.insert(key.to_owned(), value.to_owned());
    true
}

impl VolumeController {
    async fn sync_claim(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(claim) = self.cached_claim(key) else {
            return Ok(Requeue::Never);
        };
        if claim.metadata.deletion_timestamp.is_some() {
            return self.release_protection(&claim).await;
        }
        let bound_to = claim
            .spec
            .as_ref()
            .and_then(|s| s.volume_name.clone())
            .filter(|v| !v.is_empty());
        if let Some(volume_name) = bound_to {
            match self.cached_volume(&volume_name) {
                Some(volume) => self.finish_binding(&claim, &volume).await?,
                None => self.mark_claim_lost(&claim).await?,
            }
            return Ok(Requeue::Never);
        }

        let class = self.cached_class(decide::claim_class(&claim));
        let node = decide::annotation(&claim.metadata, SELECTED_NODE).filter(|n| !n.is_empty());
        let delayed = class
            .as_ref()
            .and_then(|c| c.volume_binding_mode.as_deref())
            == Some("WaitForFirstConsumer");
        if delayed && node.is_none() {
            // The scheduler picks the node with the first pod; nothing to do until then.
            return Ok(Requeue::Never);
        }
        let volumes = self.volumes.state();
        if let Some(volume) =
            decide::find_matching_volume(&claim, volumes.iter().map(AsRef::as_ref), node)
        {
            self.finish_binding(&claim, volume).await?;
            return Ok(Requeue::Never);
        }
        match decide::provisioning(&claim, class.as_deref()) {
            Provisioning::Provision { node } => {
                let Some(class) = class else {
                    return Ok(Requeue::Never);
                };
                self.provision(&claim, &class, &node).await?;
            }
            Provisioning::NeedsNode => {
                record(
                    &self.client,
                    COMPONENT,
                    claim.as_ref(),
                    EventType::Warning,
                    "ProvisioningFailed",
                    "the local-path provisioner needs a node: use volumeBindingMode WaitForFirstConsumer",
                )
                .await;
            }
            Provisioning::WaitForFirstConsumer | Provisioning::NotOurs => {}
        }
        Ok(Requeue::Never)
    }

    /// A deleted claim keeps its `kubernetes.io/pvc-protection` finalizer while a pod that has
    /// not finished uses it (upstream's pvc-protection controller); then the finalizer goes and
    /// the claim with it. Pods are read live: a stale cache must not free a claim in use.
    async fn release_protection(&self, claim: &PersistentVolumeClaim) -> Result<Requeue> {
        let protected = claim
            .metadata
            .finalizers
            .iter()
            .flatten()
            .any(|f| f == PVC_PROTECTION);
        if !protected {
            return Ok(Requeue::Never);
        }
        let namespace = claim.metadata.namespace.as_deref().unwrap_or("default");
        let name = claim.metadata.name.as_deref().unwrap_or_default();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), namespace);
        let in_use = pods
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .any(|pod| {
                let finished = matches!(
                    pod.status.as_ref().and_then(|s| s.phase.as_deref()),
                    Some("Succeeded" | "Failed")
                );
                !finished
                    && pod
                        .spec
                        .iter()
                        .flat_map(|s| s.volumes.iter().flatten())
                        .filter_map(|v| v.persistent_volume_claim.as_ref())
                        .any(|c| c.claim_name == name)
            });
        if in_use {
            // Pods are not watched here: look again shortly.
            return Ok(Requeue::After(PROTECTION_RECHECK));
        }
        let mut released = claim.clone();
        released
            .metadata
            .finalizers
            .get_or_insert_with(Vec::new)
            .retain(|f| f != PVC_PROTECTION);
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        match claims
            .replace(name, &PostParams::default(), &released)
            .await
        {
            Ok(_) => Ok(Requeue::Never),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(Requeue::Never),
            Err(error) => Err(error.into()),
        }
    }

    /// Creates the claim's local volume on `node`, reserved for the claim; binding follows
    /// when the volume shows up in the cache.
    async fn provision(
        &self,
        claim: &PersistentVolumeClaim,
        class: &k8s_openapi::api::storage::v1::StorageClass,
        node: &str,
    ) -> Result<()> {
        // Mark the claim as waiting for us, as upstream's controller does for external
        // provisioners (kubectl describe shows it).
        let mut annotated = claim.clone();
        let changed = set_annotation(
            &mut annotated.metadata,
            STORAGE_PROVISIONER,
            decide::LOCAL_PATH_PROVISIONER,
        ) | set_annotation(
            &mut annotated.metadata,
            BETA_STORAGE_PROVISIONER,
            decide::LOCAL_PATH_PROVISIONER,
        );
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(
            self.client.clone(),
            claim.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        if changed {
            claims
                .replace(&claim_name, &PostParams::default(), &annotated)
                .await?;
        }
        let volume = decide::provisioned_volume(claim, class, node, &self.config.storage_dir);
        let volume_name = volume.metadata.name.clone().unwrap_or_default();
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        match volumes.create(&PostParams::default(), &volume).await {
            Ok(_) => {
                info!(volume = %volume_name, %node, "provisioned a local-path volume");
                record(
                    &self.client,
                    COMPONENT,
                    claim,
                    EventType::Normal,
                    "ProvisioningSucceeded",
                    &format!("Successfully provisioned volume {volume_name} on node {node}"),
                )
                .await;
                Ok(())
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// Binds both sides, each step only when not already done: the volume's claimRef, its
    /// phase, the claim's volumeName and annotations, then the claim's phase and capacity.
    async fn finish_binding(
        &self,
        claim: &PersistentVolumeClaim,
        volume: &PersistentVolume,
    ) -> Result<()> {
        let volume_name = volume.metadata.name.clone().unwrap_or_default();
        let volumes: Api<PersistentVolume> = Api::all(self.client.clone());
        let mut volume = volume.clone();
        if volume
            .spec
            .as_ref()
            .and_then(|s| s.claim_ref.as_ref())
            .is_none()
        {
            let spec = volume.spec.get_or_insert_with(Default::default);
            spec.claim_ref = Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                name: claim.metadata.name.clone(),
                namespace: claim.metadata.namespace.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                field_path: None,
            });
            set_annotation(&mut volume.metadata, BOUND_BY_CONTROLLER, "yes");
            volume = volumes
                .replace(&volume_name, &PostParams::default(), &volume)
                .await?;
        } else if !decide::reserved_for(&volume, claim) {
            // Taken by another claim meanwhile: look for another volume next time.
            return Ok(());
        }
        if phase_of_volume(&volume) != "Bound" {
            volume.status = Some(PersistentVolumeStatus {
                phase: Some("Bound".into()),
                ..volume.status.clone().unwrap_or_default()
            });
            volume = volumes
                .replace_status(&volume_name, &PostParams::default(), &volume)
                .await?;
        }

        let namespace = claim.metadata.namespace.as_deref().unwrap_or("default");
        let claim_name = claim.metadata.name.clone().unwrap_or_default();
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), namespace);
        let mut claim = claim.clone();
        let spec = claim.spec.get_or_insert_with(Default::default);
        let mut changed = false;
        if spec.volume_name.as_deref() != Some(volume_name.as_str()) {
            spec.volume_name = Some(volume_name.clone());
            changed |= set_annotation(&mut claim.metadata, BOUND_BY_CONTROLLER, "yes");
        }
        changed |= set_annotation(&mut claim.metadata, BIND_COMPLETED, "yes");
        if changed {
            claim = claims
                .replace(&claim_name, &PostParams::default(), &claim)
                .await?;
        }
        let volume_spec = volume.spec.clone().unwrap_or_default();
        let status = claim.status.clone().unwrap_or_default();
        let wanted = PersistentVolumeClaimStatus {
            phase: Some("Bound".into()),
            access_modes: volume_spec.access_modes.clone(),
            capacity: volume_spec.capacity.clone(),
            ..status.clone()
        };
        if status != wanted {
            claim.status = Some(wanted);
            claims
                .replace_status(&claim_name, &PostParams::default(), &claim)
                .await?;
            info!(claim = %format!("{namespace}/{claim_name}"), volume = %volume_name, "bound");
        }
        Ok(())
    }

    /// A bound claim whose volume is gone is Lost (upstream's `ClaimLost`).
    async fn mark_claim_lost(&self, claim: &PersistentVolumeClaim) -> Result<()> {
        let phase = claim.status.as_ref().and_then(|s| s.phase.as_deref());
        if phase != Some("Bound") {
            // Bound by the user ahead of the volume: wait for it.
            return Ok(());
        }
        let mut lost = claim.clone();
        lost.status = Some(PersistentVolumeClaimStatus {
            phase: Some("Lost".into()),
            ..claim.status.clone().unwrap_or_default()
        });
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(
            self.client.clone(),
            claim.metadata.namespace.as_deref().unwrap_or("default"),
        );
        claims
            .replace_status(
                claim.metadata.name.as_deref().unwrap_or_default(),
                &PostParams::default(),
                &lost,
            )
            .await?;
        record(
            &self.client,
            COMPONENT,
            claim,
            EventType::Warning,
            "ClaimLost",
            "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
        )
        .await;
        Ok(())
    }

    async fn sync_volume(&self, name: &str) -> Result<Requeue> {
        let Some(volume) = self.cached_volume(name) else {
            return Ok(Requeue::Never);
        };
        if volume.metadata.deletion_timestamp.is_some() {
            return Ok(Requeue::Never);
        }
        let Some(reference) = volume.spec.as_ref().and_then(|s| s.claim_ref.clone()) else {
            return self.set_volume_phase(&volume, "Available").await;
        };
        let namespace = reference.namespace.clone().unwrap_or_default();
        let claim_name = reference.name.clone().unwrap_or_default();
        let same_claim = |claim: &PersistentVolumeClaim| {
            reference
                .uid
                .as_deref()
                .is_none_or(|uid| uid.is_empty() || Some(uid) == claim.metadata.uid.as_deref())
        };
        if let Some(claim) = self.cached_claim(&ObjectKey::new(&namespace, &claim_name))
            && same_claim(&claim)
        {
            return Ok(Requeue::Never);
        }
        // The cache says the claim is gone: make sure before reclaiming anything.
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(self.client.clone(), &namespace);
        if let Some(claim) = claims.get_opt(&claim_name).await?
            && same_claim(&claim)
        {
            return Ok(Requeue::Never);
        }
        if reference.uid.as_deref().is_none_or(str::is_empty) {
            // Reserved by the user for a claim that does not exist yet.
            return self.set_volume_phase(&volume, "Available").await;
        }
        match decide::reclaim(&volume) {
            Reclaim::Release => self.set_volume_phase(&volume, "Released").await,
            Reclaim::Delete => {
                if let Some(dir) = decide::local_directory(&volume, &self.config.storage_dir) {
                    match tokio::fs::remove_dir_all(&dir).await {
                        Ok(()) => {}
                        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                        Err(error) => {
                            warn!(volume = %name, dir = %dir.display(), %error, "cannot remove the volume's directory; deleting the volume anyway");
                        }
                    }
                }
                let params = DeleteParams {
                    preconditions: Some(Preconditions {
                        uid: volume.metadata.uid.clone(),
                        resource_version: None,
                    }),
                    ..DeleteParams::default()
                };
                match Api::<PersistentVolume>::all(self.client.clone())
                    .delete(name, &params)
                    .await
                {
                    Ok(_) => {
                        info!(volume = %name, "deleted a released volume (reclaim policy Delete)")
                    }
                    Err(kube::Error::Api(status)) if status.code == 404 => {}
                    Err(error) => return Err(error.into()),
                }
                Ok(Requeue::Never)
            }
        }
    }

    async fn set_volume_phase(&self, volume: &PersistentVolume, phase: &str) -> Result<Requeue> {
        if phase_of_volume(volume) == phase {
            return Ok(Requeue::Never);
        }
        let mut updated = volume.clone();
        updated.status = Some(PersistentVolumeStatus {
            phase: Some(phase.into()),
            ..volume.status.clone().unwrap_or_default()
        });
        Api::<PersistentVolume>::all(self.client.clone())
            .replace_status(
                volume.metadata.name.as_deref().unwrap_or_default(),
                &PostParams::default(),
                &updated,
            )
            .await?;
        Ok(Requeue::Never)
    }
}
