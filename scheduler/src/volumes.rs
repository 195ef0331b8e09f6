//! The scheduler's picture of storage: claims, volumes and storage classes, mirrored from
//! their watches, for the VolumeBinding filter.

use std::{collections::BTreeMap, sync::Arc};

use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::runtime::watcher;

/// Set on a WaitForFirstConsumer claim: the node its first pod was scheduled to.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";

/// One resource mirrored from a watch: objects by `namespace/name` (or `name`), with relists
/// that drop what disappeared while the watch was down.
#[derive(Debug)]
pub struct Mirror<K> {
    items: BTreeMap<String, Arc<K>>,
    relisting: Option<BTreeMap<String, Arc<K>>>,
    synced: bool,
}

impl<K> Default for Mirror<K> {
    fn default() -> Self {
        Self {
            items: BTreeMap::new(),
            relisting: None,
            synced: false,
        }
    }
}

impl<K: kube::Resource> Mirror<K> {
    fn key(object: &K) -> String {
        let meta = object.meta();
        match meta.namespace.as_deref() {
            Some(ns) => format!("{ns}/{}", meta.name.as_deref().unwrap_or_default()),
            None => meta.name.clone().unwrap_or_default(),
        }
    }

    /// Applies one watch event.
    pub fn apply(&mut self, event: watcher::Event<K>) {
        match event {
            watcher::Event::Init => self.relisting = Some(BTreeMap::new()),
            watcher::Event::InitApply(object) => {
                let object = Arc::new(object);
                let key = Self::key(&object);
                match self.relisting.as_mut() {
                    Some(fresh) => {
                        fresh.insert(key, object);
                    }
                    None => {
                        self.items.insert(key, object);
                    }
                }
            }
            watcher::Event::InitDone => {
                if let Some(fresh) = self.relisting.take() {
                    self.items = fresh;
                }
                self.synced = true;
            }
            watcher::Event::Apply(object) => {
                self.items.insert(Self::key(&object), Arc::new(object));
            }
            watcher::Event::Delete(object) => {
                self.items.remove(&Self::key(&object));
            }
        }
    }

    /// The object stored under `key`.
    pub fn get(&self, key: &str) -> Option<&Arc<K>> {
        self.items.get(key)
    }

    /// Stores `object` (tests, and writes the scheduler itself made).
    pub fn insert(&mut self, object: K) {
        self.items.insert(Self::key(&object), Arc::new(object));
    }

    /// Whether the first list has arrived.
    pub fn synced(&self) -> bool {
        self.synced
    }
}

/// Claims, volumes and classes.
#[derive(Debug, Default)]
pub struct VolumeCache {
    pub claims: Mirror<PersistentVolumeClaim>,
    pub volumes: Mirror<PersistentVolume>,
    pub classes: Mirror<StorageClass>,
}

impl VolumeCache {
    /// Whether every watch has listed once.
    pub fn synced(&self) -> bool {
        self.claims.synced() && self.volumes.synced() && self.classes.synced()
    }

    /// The claim `name` in `namespace`.
    pub fn claim(&self, namespace: &str, name: &str) -> Option<&Arc<PersistentVolumeClaim>> {
        self.claims.get(&format!("{namespace}/{name}"))
    }

    /// Whether `claim`'s class binds only once a pod uses it.
    pub fn is_delayed_binding(&self, claim: &PersistentVolumeClaim) -> bool {
        let class = claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.as_deref())
            .unwrap_or_default();
        !class.is_empty()
            && self
                .classes
                .get(class)
                .and_then(|c| c.volume_binding_mode.as_deref())
                == Some("WaitForFirstConsumer")
    }
}

/// The names of the claims a pod's volumes use.
pub fn claim_names(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<&str> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.persistent_volume_claim.as_ref())
        .map(|c| c.claim_name.as_str())
        .collect()
}

/// The claim's bound volume name, if bound.
pub fn bound_volume(claim: &PersistentVolumeClaim) -> Option<&str> {
    claim
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.as_deref())
        .filter(|v| !v.is_empty())
}
