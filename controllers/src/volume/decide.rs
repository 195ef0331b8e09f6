//! The pure decisions of the PersistentVolume controller: which volume a claim binds to, whether
//! the local-path provisioner should make one, what that volume looks like, and what happens to a
//! volume whose claim is gone.

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::api::core::v1::{
    HostPathVolumeSource, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, ObjectReference,
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeSpec, PersistentVolumeStatus,
    VolumeNodeAffinity,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The provisioner name of the built-in local-path StorageClass.
pub const LOCAL_PATH_PROVISIONER: &str = "tugboat.dev/local-path";
/// Set by the scheduler on a WaitForFirstConsumer claim: the node of its first pod.
pub const SELECTED_NODE: &str = "volume.kubernetes.io/selected-node";
/// On both sides once the controller has finished binding (upstream's `annBindCompleted`).
pub const BIND_COMPLETED: &str = "pv.kubernetes.io/bind-completed";
/// On a side the controller bound, rather than the user (upstream's `annBoundByController`).
pub const BOUND_BY_CONTROLLER: &str = "pv.kubernetes.io/bound-by-controller";
/// On a volume a provisioner made (upstream's `annDynamicallyProvisioned`).
pub const PROVISIONED_BY: &str = "pv.kubernetes.io/provisioned-by";
/// On a claim waiting for a provisioner (upstream's `annStorageProvisioner`, both spellings).
pub const STORAGE_PROVISIONER: &str = "volume.kubernetes.io/storage-provisioner";
/// The beta spelling of [`STORAGE_PROVISIONER`], still set by upstream.
pub const BETA_STORAGE_PROVISIONER: &str = "volume.beta.kubernetes.io/storage-provisioner";
/// The node label local volumes are pinned to.
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";

/// The claim's storage class (`spec.storageClassName`, or the beta annotation), `""` for none.
pub fn claim_class(claim: &PersistentVolumeClaim) -> &str {
    annotation(&claim.metadata, "volume.beta.kubernetes.io/storage-class")
        .or_else(|| {
            claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
        })
        .unwrap_or_default()
}

/// The volume's storage class, `""` for none.
pub fn volume_class(volume: &PersistentVolume) -> &str {
    annotation(&volume.metadata, "volume.beta.kubernetes.io/storage-class")
        .or_else(|| {
            volume
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref())
        })
        .unwrap_or_default()
}

/// One annotation's value.
pub fn annotation<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.annotations.as_ref()?.get(key).map(String::as_str)
}

fn storage_nanos(
    resources: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> Option<i128> {
    resources
        .and_then(|r| r.get("storage"))
        .and_then(|q| tugboat_api::validation::quantity_nanos(&q.0))
}

/// The storage the claim asks for.
pub fn requested_storage(claim: &PersistentVolumeClaim) -> Option<i128> {
    storage_nanos(
        claim
            .spec
            .as_ref()
            .and_then(|s| s.resources.as_ref())
            .and_then(|r| r.requests.as_ref()),
    )
}

fn volume_storage(volume: &PersistentVolume) -> Option<i128> {
    storage_nanos(volume.spec.as_ref().and_then(|s| s.capacity.as_ref()))
}

/// Whether `volume` is bound, or reserved, for `claim` (its claimRef names it, with its uid
/// when the reference carries one).
pub fn reserved_for(volume: &PersistentVolume, claim: &PersistentVolumeClaim) -> bool {
    let Some(reference) = volume.spec.as_ref().and_then(|s| s.claim_ref.as_ref()) else {
        return false;
    };
    reference.name == claim.metadata.name
        && reference.namespace == claim.metadata.namespace
        && reference
            .uid
            .as_deref()
            .is_none_or(|uid| uid.is_empty() || Some(uid) == claim.metadata.uid.as_deref())
}

/// Whether the volume's required node affinity admits `node` (no affinity admits every node).
pub fn volume_fits_node(
    volume: &PersistentVolume,
    node: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    let Some(required) = volume
        .spec
        .as_ref()
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
    else {
        return true;
    };
    required
        .node_selector_terms
        .iter()
        .any(|term| tugboat_api::scheduling::term_matches(term, node, labels))
}

/// Why `volume` cannot serve `claim`, or `None` when it can: the same class and volume mode,
/// every requested access mode, enough capacity, not being deleted, and free or reserved for
/// this claim; with `node`, the volume must also be reachable from that node.
pub fn mismatch(
    volume: &PersistentVolume,
    claim: &PersistentVolumeClaim,
    node: Option<&str>,
) -> Option<&'static str> {
    let spec = volume.spec.as_ref()?;
    let claim_spec = claim.spec.as_ref()?;
    if volume.metadata.deletion_timestamp.is_some() {
        return Some("being deleted");
    }
    if spec.claim_ref.is_some() && !reserved_for(volume, claim) {
        return Some("claimed by another claim");
    }
    if volume_class(volume) != claim_class(claim) {
        return Some("another storage class");
    }
    let mode = |m: Option<&String>| m.map_or("Filesystem", String::as_str).to_owned();
    if mode(spec.volume_mode.as_ref()) != mode(claim_spec.volume_mode.as_ref()) {
        return Some("another volume mode");
    }
    let offered = spec.access_modes.as_deref().unwrap_or_default();
    let wanted = claim_spec.access_modes.as_deref().unwrap_or_default();
    if !wanted.iter().all(|m| offered.contains(m)) {
        return Some("missing access modes");
    }
    match (volume_storage(volume), requested_storage(claim)) {
        (Some(has), Some(needs)) if has >= needs => {}
        (_, None) => {}
        _ => return Some("too small"),
    }
    if let Some(node) = node {
        let labels = BTreeMap::from([(HOSTNAME_LABEL.to_owned(), node.to_owned())]);
        if !volume_fits_node(volume, node, &labels) {
            return Some("not on the selected node");
        }
    }
    None
}

/// The volume `claim` should bind to: one reserved for it first, else the smallest matching
/// free volume (upstream's `FindMatchingVolume`). Only Available volumes (or ones reserved for
/// this claim) are candidates.
pub fn find_matching_volume<'a>(
    claim: &PersistentVolumeClaim,
    volumes: impl IntoIterator<Item = &'a PersistentVolume>,
    node: Option<&str>,
) -> Option<&'a PersistentVolume> {
    let mut best: Option<(&PersistentVolume, bool, i128)> = None;
    for volume in volumes {
        let reserved = reserved_for(volume, claim);
        let phase = volume
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("Pending");
        if !reserved && phase != "Available" {
            continue;
        }
        if mismatch(volume, claim, node).is_some() {
            continue;
        }
        let size = volume_storage(volume).unwrap_or(i128::MAX);
        let better = match best {
            None => true,
            Some((_, best_reserved, best_size)) => {
                (reserved && !best_reserved) || (reserved == best_reserved && size < best_size)
            }
        };
        if better {
            best = Some((volume, reserved, size));
        }
    }
    best.map(|(volume, _, _)| volume)
}

/// What the provisioner does for an unbound claim no existing volume serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provisioning {
    /// Not ours: another provisioner's class, no class, or the class is missing.
    NotOurs,
    /// WaitForFirstConsumer, and no pod using the claim has been scheduled yet.
    WaitForFirstConsumer,
    /// A local volume needs a node, and an Immediate claim has none: it cannot be made.
    NeedsNode,
    /// Make the volume on this node.
    Provision {
        /// The node the volume lives on.
        node: String,
    },
}

/// Whether and where the local-path provisioner makes a volume for `claim` of `class`.
pub fn provisioning(claim: &PersistentVolumeClaim, class: Option<&StorageClass>) -> Provisioning {
    let Some(class) = class else {
        return Provisioning::NotOurs;
    };
    if class.provisioner != LOCAL_PATH_PROVISIONER {
        return Provisioning::NotOurs;
    }
    match annotation(&claim.metadata, SELECTED_NODE).filter(|n| !n.is_empty()) {
        Some(node) => Provisioning::Provision {
            node: node.to_owned(),
        },
        None if class.volume_binding_mode.as_deref() == Some("WaitForFirstConsumer") => {
            Provisioning::WaitForFirstConsumer
        }
        None => Provisioning::NeedsNode,
    }
}

/// The name of the volume provisioned for a claim (upstream's `pvc-<claim uid>`).
pub fn provisioned_volume_name(claim: &PersistentVolumeClaim) -> String {
    format!("pvc-{}", claim.metadata.uid.as_deref().unwrap_or_default())
}

/// The volume the local-path provisioner makes for `claim` on `node`: a directory
/// `<storage_dir>/<name>` (created by the node agent on first mount), pinned to the node,
/// reserved for the claim, with the class's reclaim policy.
pub fn provisioned_volume(
    claim: &PersistentVolumeClaim,
    class: &StorageClass,
    node: &str,
    storage_dir: &Path,
) -> PersistentVolume {
    let name = provisioned_volume_name(claim);
    let spec = claim.spec.clone().unwrap_or_default();
    let capacity = spec
        .resources
        .as_ref()
        .and_then(|r| r.requests.as_ref())
        .and_then(|r| r.get("storage").cloned())
        .map(|q| BTreeMap::from([("storage".to_owned(), q)]));
    PersistentVolume {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            annotations: Some(BTreeMap::from([(
                PROVISIONED_BY.to_owned(),
                LOCAL_PATH_PROVISIONER.to_owned(),
            )])),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeSpec {
            access_modes: spec.access_modes.clone(),
            capacity,
            claim_ref: Some(ObjectReference {
                api_version: Some("v1".into()),
                kind: Some("PersistentVolumeClaim".into()),
                name: claim.metadata.name.clone(),
                namespace: claim.metadata.namespace.clone(),
                uid: claim.metadata.uid.clone(),
                resource_version: claim.metadata.resource_version.clone(),
                field_path: None,
            }),
            host_path: Some(HostPathVolumeSource {
                path: storage_dir.join(&name).to_string_lossy().into_owned(),
                type_: Some("DirectoryOrCreate".into()),
            }),
            node_affinity: Some(VolumeNodeAffinity {
                required: Some(NodeSelector {
                    node_selector_terms: vec![NodeSelectorTerm {
                        match_expressions: Some(vec![NodeSelectorRequirement {
                            key: HOSTNAME_LABEL.into(),
                            operator: "In".into(),
                            values: Some(vec![node.to_owned()]),
                        }]),
                        match_fields: None,
                    }],
                }),
            }),
            persistent_volume_reclaim_policy: Some(
                class
                    .reclaim_policy
                    .clone()
                    .unwrap_or_else(|| "Delete".into()),
            ),
            storage_class_name: class.metadata.name.clone(),
            volume_mode: spec.volume_mode.clone(),
            mount_options: class.mount_options.clone(),
            ..PersistentVolumeSpec::default()
        }),
        status: Some(PersistentVolumeStatus::default()),
    }
}

/// What becomes of a volume whose claim no longer exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reclaim {
    /// Retain (or a Delete volume no provisioner here can remove): Released, data kept.
    Release,
    /// Delete the volume, and with it the directory of a local-path volume.
    Delete,
}

/// Upstream's `reclaimVolume`, for the volumes this controller knows how to delete.
pub fn reclaim(volume: &PersistentVolume) -> Reclaim {
    let policy = volume
        .spec
        .as_ref()
        .and_then(|s| s.persistent_volume_reclaim_policy.as_deref())
        .unwrap_or("Retain");
    let ours = annotation(&volume.metadata, PROVISIONED_BY) == Some(LOCAL_PATH_PROVISIONER);
    if policy == "Delete" && ours {
        Reclaim::Delete
    } else {
        Reclaim::Release
    }
}

/// The local directory of a local-path volume, when it lies inside `storage_dir` (never
/// remove anything else).
pub fn local_directory(
    volume: &PersistentVolume,
    storage_dir: &Path,
) -> Option<std::path::PathBuf> {
    let path = Path::new(&volume.spec.as_ref()?.host_path.as_ref()?.path).to_path_buf();
    let inside = path.parent() == Some(storage_dir)
        && path
            .file_name()
            .is_some_and(|n| n.to_str().is_some_and(|n| n.starts_with("pvc-")));
    inside.then_some(path)
}

#[cfg(test)]
mod tests;
