//! The PersistentVolume controller with the built-in local-path provisioner (upstream's
//! `pkg/controller/volume/persistentvolume` plus k3s's local-path provisioner, in one).
//!
//! - A claim binds to the smallest matching Available volume (class, access modes, capacity,
//!   volume mode; for a WaitForFirstConsumer claim, one reachable from its selected node).
//! - A claim of the `tugboat.dev/local-path` class that no volume serves gets a new volume
//!   once the scheduler has picked a node for its first pod (`volume.kubernetes.io/selected-node`):
//!   a directory `<storage_dir>/<volume>` pinned to that node, created by the node agent there.
//! - A volume whose claim is gone is reclaimed: Delete removes the volume and its directory,
//!   Retain leaves it Released with its data.
//!
//! One queue holds both kinds: claims by `namespace/name`, volumes by `/name` (an empty
//! namespace, since volumes are cluster-scoped).

pub mod decide;
mod sync;

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::framework::runner::run_workers;
use crate::framework::{Change, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Settings of the PersistentVolume controller.
#[derive(Debug, Clone)]
pub struct VolumeConfig {
    /// Concurrent syncs.
    pub workers: usize,
    /// Where local-path volumes live (`<data-dir>/storage`); the directories themselves are
    /// made by the node agent of the volume's node and removed here on Delete reclaim.
    pub storage_dir: PathBuf,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        Self {
            workers: 2,
            storage_dir: PathBuf::from("/var/lib/tugboat/storage"),
        }
    }
}

/// See the module documentation.
pub struct VolumeController {
    client: Client,
    claims: Store<PersistentVolumeClaim>,
    volumes: Store<PersistentVolume>,
    classes: Store<StorageClass>,
    queue: WorkQueue<ObjectKey>,
    config: VolumeConfig,
}

/// Runs the PersistentVolume controller, with informers of its own, until `cancel` fires.
pub async fn run(client: Client, config: VolumeConfig, cancel: CancellationToken) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the PersistentVolume controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: VolumeConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let claim_informer = informers.informer::<PersistentVolumeClaim>();
    let volume_informer = informers.informer::<PersistentVolume>();
    let class_informer = informers.informer::<StorageClass>();
    let controller = VolumeController {
        client: informers.client().clone(),
        claims: claim_informer.store(),
        volumes: volume_informer.store(),
        classes: class_informer.store(),
        queue: WorkQueue::default(),
        config,
    };
    let workers = async {
        controller.wait_for_caches(&cancel).await?;
        info!(storage_dir = %controller.config.storage_dir.display(), "persistentvolume controller caches synced; starting workers");
        run_workers(
            &controller,
            &controller.queue,
            controller.config.workers,
            &cancel,
        )
        .await;
        Ok::<_, Error>(())
    };
    let (result, (), (), ()) = tokio::join!(
        workers,
        claim_informer.run(|change| controller.on_claim_change(change), &cancel),
        volume_informer.run(|change| controller.on_volume_change(change), &cancel),
        class_informer.run(|change| controller.on_class_change(change), &cancel),
    );
    controller.queue.shut_down();
    result
}

impl VolumeController {
    async fn wait_for_caches(&self, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            () = cancel.cancelled() => Err(Error::CacheNotSynced("persistentvolume")),
            ready = async {
                self.claims.wait_until_ready().await?;
                self.volumes.wait_until_ready().await?;
                self.classes.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced("persistentvolume")),
        }
    }

    fn on_claim_change(&self, change: Change<PersistentVolumeClaim>) {
        let claim = change.object();
        self.queue.add(ObjectKey::of(claim.as_ref()));
        // A deleted claim releases its volume.
        if let Some(volume) = claim.spec.as_ref().and_then(|s| s.volume_name.as_deref())
            && !volume.is_empty()
        {
            self.queue.add(ObjectKey::new("", volume));
        }
        if matches!(change, Change::Deleted(_)) {
            for volume in self.volumes.state() {
                if decide::reserved_for(&volume, claim) {
                    self.queue.add(ObjectKey::of(volume.as_ref()));
                }
            }
        }
    }

    fn on_volume_change(&self, change: Change<PersistentVolume>) {
        let volume = change.object();
        self.queue.add(ObjectKey::of(volume.as_ref()));
        if let Some(reference) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) {
            self.queue.add(ObjectKey::new(
                reference.namespace.clone().unwrap_or_default(),
                reference.name.clone().unwrap_or_default(),
            ));
        } else {
            // A volume became free: pending claims may now find it.
            self.requeue_pending_claims();
        }
    }

    fn on_class_change(&self, _change: Change<StorageClass>) {
        self.requeue_pending_claims();
    }

    fn requeue_pending_claims(&self) {
        for claim in self.claims.state() {
            let bound = claim
                .spec
                .as_ref()
                .and_then(|s| s.volume_name.as_deref())
                .is_some_and(|v| !v.is_empty());
            if !bound {
                self.queue.add(ObjectKey::of(claim.as_ref()));
            }
        }
    }

    fn cached_claim(&self, key: &ObjectKey) -> Option<Arc<PersistentVolumeClaim>> {
        self.claims
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    fn cached_volume(&self, name: &str) -> Option<Arc<PersistentVolume>> {
        self.volumes.get(&ObjectRef::new(name))
    }

    fn cached_class(&self, name: &str) -> Option<Arc<StorageClass>> {
        if name.is_empty() {
            return None;
        }
        self.classes.get(&ObjectRef::new(name))
    }
}
