//! Printers for PersistentVolumes and PersistentVolumeClaims.

use std::collections::BTreeMap;

use serde_json::Value;

use super::object::*;
use super::*;

pub(super) const PV_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Capacity",
        "string",
        "capacity is the description of the persistent volume's resources and capacity.",
    ),
    column(
        "Access Modes",
        "string",
        "accessModes contains all ways the volume can be mounted.",
    ),
    column(
        "Reclaim Policy",
        "string",
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
    ),
    column(
        "Status",
        "string",
        "phase indicates if a volume is available, bound to a claim, or released by a claim.",
    ),
    column(
        "Claim",
        "string",
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
    ),
    column("StorageClass", "string", "StorageClass of the pv"),
    column(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    column(
        "Reason",
        "string",
        "reason is a brief CamelCase string that describes any failure.",
    ),
    AGE,
    wide(
        "VolumeMode",
        "string",
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
    ),
];

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order.
pub(super) fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class: the beta annotation wins over `spec.storageClassName`.
pub(super) fn storage_class(o: &Object<'_>) -> Value {
    match o
        .labels("/metadata/annotations")
        .get("volume.beta.kubernetes.io/storage-class")
    {
        Some(class) => Value::from(class.as_str()),
        None => Value::from(o.text("/spec/storageClassName")),
    }
}

pub(super) fn phase_or_terminating(o: &Object<'_>) -> Value {
    if o.deleting() {
        Value::from("Terminating")
    } else {
        Value::from(o.text("/status/phase"))
    }
}

pub(super) fn pv_cells(o: &Object<'_>) -> Vec<Value> {
    let claim = if o.at("/spec/claimRef").is_some_and(Value::is_object) {
        format!(
            "{}/{}",
            o.text("/spec/claimRef/namespace"),
            o.text("/spec/claimRef/name")
        )
    } else {
        String::new()
    };
    vec![
        o.name(),
        Value::from(o.text("/spec/capacity/storage")),
        Value::from(access_modes(o.list("/spec/accessModes"))),
        Value::from(o.text("/spec/persistentVolumeReclaimPolicy")),
        phase_or_terminating(o),
        Value::from(claim),
        storage_class(o),
        or_default(o.text("/spec/volumeAttributesClassName"), "<unset>"),
        Value::from(o.text("/status/reason")),
        o.age(),
        or_default(o.text("/spec/volumeMode"), "<unset>"),
    ]
}

pub(super) const PVC_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Status",
        "string",
        "phase represents the current phase of PersistentVolumeClaim.",
    ),
    column(
        "Volume",
        "string",
        "volumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    column(
        "Capacity",
        "string",
        "capacity represents the actual resources of the underlying volume.",
    ),
    column(
        "Access Modes",
        "string",
        "accessModes contains the actual access modes the volume backing the PVC has.",
    ),
    column("StorageClass", "string", "StorageClass of the pvc"),
    column(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    wide(
        "VolumeMode",
        "string",
        "volumeMode defines what type of volume is required by the claim.",
    ),
];

pub(super) fn pvc_cells(o: &Object<'_>) -> Vec<Value> {
    let volume = o.text("/spec/volumeName");
    // Capacity and modes are only known once bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            o.text("/status/capacity/storage").to_owned(),
            access_modes(o.list("/status/accessModes")),
        )
    };
    vec![
        o.name(),
        phase_or_terminating(o),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        storage_class(o),
        or_default(o.text("/spec/volumeAttributesClassName"), "<unset>"),
        o.age(),
        or_default(o.text("/spec/volumeMode"), "<unset>"),
    ]
}

pub(super) const STORAGE_CLASS_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Provisioner",
        "string",
        "Indicates the type of the provisioner.",
    ),
    column(
        "ReclaimPolicy",
        "string",
        "Indicates the type of the reclaim policy.",
    ),
    column(
        "VolumeBindingMode",
        "string",
        "Indicates when volume binding and dynamic provisioning should occur.",
    ),
    column(
        "AllowVolumeExpansion",
        "string",
        "Indicates whether the storage class allow volume expand.",
    ),
    AGE,
];

/// Whether a StorageClass is marked default (upstream's `IsDefaultAnnotation`, GA or beta key).
pub fn is_default_storage_class(annotations: &BTreeMap<String, String>) -> bool {
    [
        "storageclass.kubernetes.io/is-default-class",
        "storageclass.beta.kubernetes.io/is-default-class",
    ]
    .iter()
    .any(|key| annotations.get(*key).map(String::as_str) == Some("true"))
}

/// kubectl's `printStorageClass`: ` (default)` after the default class's name, upstream's
/// defaults for unset policy, mode and expansion.
pub(super) fn storage_class_cells(o: &Object<'_>) -> Vec<Value> {
    let mut name = o.text("/metadata/name").to_owned();
    if is_default_storage_class(&o.labels("/metadata/annotations")) {
        name.push_str(" (default)");
    }
    vec![
        Value::from(name),
        Value::from(o.text("/provisioner")),
        or_default(o.text("/reclaimPolicy"), "Delete"),
        or_default(o.text("/volumeBindingMode"), "Immediate"),
        Value::from(o.at("/allowVolumeExpansion").and_then(Value::as_bool) == Some(true)),
        o.age(),
    ]
}
