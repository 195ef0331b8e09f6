use std::path::Path;

use serde_json::json;

use super::*;

fn claim(class: &str, modes: &[&str], size: &str) -> PersistentVolumeClaim {
    serde_json::from_value(json!({
        "metadata": {"name": "data", "namespace": "default", "uid": "u-1"},
        "spec": {
            "storageClassName": class,
            "accessModes": modes,
            "resources": {"requests": {"storage": size}},
        },
    }))
    .unwrap()
}

fn volume(name: &str, class: &str, modes: &[&str], size: &str, phase: &str) -> PersistentVolume {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "storageClassName": class,
            "accessModes": modes,
            "capacity": {"storage": size},
            "persistentVolumeReclaimPolicy": "Retain",
        },
        "status": {"phase": phase},
    }))
    .unwrap()
}

fn class(mode: &str, provisioner: &str) -> StorageClass {
    serde_json::from_value(json!({
        "metadata": {"name": "local-path"},
        "provisioner": provisioner,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": mode,
    }))
    .unwrap()
}

#[test]
fn the_smallest_available_volume_with_class_modes_and_room_is_chosen() {
    let claim = claim("manual", &["ReadWriteOnce"], "1Gi");
    let volumes = [
        volume("big", "manual", &["ReadWriteOnce"], "10Gi", "Available"),
        volume(
            "small",
            "manual",
            &["ReadWriteOnce", "ReadOnlyMany"],
            "2Gi",
            "Available",
        ),
        volume("tiny", "manual", &["ReadWriteOnce"], "500Mi", "Available"),
        volume(
            "other-class",
            "fast",
            &["ReadWriteOnce"],
            "1Gi",
            "Available",
        ),
        volume("rox-only", "manual", &["ReadOnlyMany"], "1Gi", "Available"),
        volume("released", "manual", &["ReadWriteOnce"], "1Gi", "Released"),
    ];
    let found = find_matching_volume(&claim, &volumes, None).and_then(|v| v.metadata.name.clone());
    assert_eq!(found.as_deref(), Some("small"));
    assert_eq!(mismatch(&volumes[2], &claim, None), Some("too small"));
    assert_eq!(
        mismatch(&volumes[3], &claim, None),
        Some("another storage class")
    );
    assert_eq!(
        mismatch(&volumes[4], &claim, None),
        Some("missing access modes")
    );
    // A claim asking for more than any volume offers finds none.
    let huge = super::tests::claim("manual", &["ReadWriteOnce"], "1Ti");
    assert!(find_matching_volume(&huge, &volumes, None).is_none());
}

#[test]
fn a_volume_reserved_for_the_claim_wins_and_one_reserved_for_another_is_skipped() {
    let claim = claim("manual", &["ReadWriteOnce"], "1Gi");
    let mut mine = volume("mine", "manual", &["ReadWriteOnce"], "5Gi", "Pending");
    mine.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
        name: Some("data".into()),
        namespace: Some("default".into()),
        uid: Some("u-1".into()),
        ..ObjectReference::default()
    });
    let mut theirs = volume("theirs", "manual", &["ReadWriteOnce"], "1Gi", "Available");
    theirs.spec.as_mut().unwrap().claim_ref = Some(ObjectReference {
        name: Some("data".into()),
        namespace: Some("default".into()),
        uid: Some("an-older-claim".into()),
        ..ObjectReference::default()
    });
    let free = volume("free", "manual", &["ReadWriteOnce"], "1Gi", "Available");
    let volumes = [theirs, free, mine];
    let found = find_matching_volume(&claim, &volumes, None).and_then(|v| v.metadata.name.clone());
    assert_eq!(found.as_deref(), Some("mine"));
    assert_eq!(
        mismatch(&volumes[0], &claim, None),
        Some("claimed by another claim")
    );
}

#[test]
fn a_local_volume_only_serves_claims_whose_selected_node_it_is_on() {
    let claim = claim("local-path", &["ReadWriteOnce"], "1Gi");
    let class = class("WaitForFirstConsumer", LOCAL_PATH_PROVISIONER);
    let mut on_n1 = provisioned_volume(&claim, &class, "n1", Path::new("/data/storage"));
    on_n1.metadata.name = Some("local".into());
    on_n1.spec.as_mut().unwrap().claim_ref = None;
    on_n1.status = Some(PersistentVolumeStatus {
        phase: Some("Available".into()),
        ..Default::default()
    });
    assert!(find_matching_volume(&claim, [&on_n1], Some("n1")).is_some());
    assert!(find_matching_volume(&claim, [&on_n1], Some("n2")).is_none());
}

#[test]
fn the_provisioner_waits_for_a_scheduled_consumer_and_ignores_other_classes() {
    let mut claim = claim("local-path", &["ReadWriteOnce"], "1Gi");
    let wffc = class("WaitForFirstConsumer", LOCAL_PATH_PROVISIONER);
    let immediate = class("Immediate", LOCAL_PATH_PROVISIONER);
    let foreign = class("Immediate", "ebs.csi.aws.com");
    assert_eq!(provisioning(&claim, None), Provisioning::NotOurs);
    assert_eq!(provisioning(&claim, Some(&foreign)), Provisioning::NotOurs);
    assert_eq!(
        provisioning(&claim, Some(&wffc)),
        Provisioning::WaitForFirstConsumer
    );
    assert_eq!(
        provisioning(&claim, Some(&immediate)),
        Provisioning::NeedsNode
    );
    claim.metadata.annotations = Some(BTreeMap::from([(SELECTED_NODE.into(), "n2".into())]));
    assert_eq!(
        provisioning(&claim, Some(&wffc)),
        Provisioning::Provision { node: "n2".into() }
    );
}

#[test]
fn a_provisioned_volume_is_a_directory_under_the_storage_dir_pinned_to_its_node() {
    let claim = claim("local-path", &["ReadWriteOnce"], "1Gi");
    let class = class("WaitForFirstConsumer", LOCAL_PATH_PROVISIONER);
    let volume = provisioned_volume(&claim, &class, "n2", Path::new("/data/storage"));
    assert_eq!(volume.metadata.name.as_deref(), Some("pvc-u-1"));
    let spec = volume.spec.as_ref().unwrap();
    assert_eq!(
        spec.host_path.as_ref().unwrap().path,
        "/data/storage/pvc-u-1"
    );
    assert_eq!(spec.storage_class_name.as_deref(), Some("local-path"));
    assert_eq!(
        spec.persistent_volume_reclaim_policy.as_deref(),
        Some("Delete")
    );
    assert_eq!(spec.capacity.as_ref().unwrap()["storage"].0, "1Gi");
    assert!(reserved_for(&volume, &claim));
    let n2 = BTreeMap::from([(HOSTNAME_LABEL.to_owned(), "n2".to_owned())]);
    let n1 = BTreeMap::from([(HOSTNAME_LABEL.to_owned(), "n1".to_owned())]);
    assert!(volume_fits_node(&volume, "n2", &n2));
    assert!(!volume_fits_node(&volume, "n1", &n1));
    // Provisioned for this claim, it is this claim's match.
    assert!(find_matching_volume(&claim, [&volume], Some("n2")).is_some());
    assert_eq!(
        local_directory(&volume, Path::new("/data/storage")),
        Some("/data/storage/pvc-u-1".into())
    );
    assert_eq!(local_directory(&volume, Path::new("/elsewhere")), None);
}

#[test]
fn only_our_delete_volumes_are_deleted_on_reclaim() {
    let claim = claim("local-path", &["ReadWriteOnce"], "1Gi");
    let delete = provisioned_volume(
        &claim,
        &class("WaitForFirstConsumer", LOCAL_PATH_PROVISIONER),
        "n1",
        Path::new("/s"),
    );
    assert_eq!(reclaim(&delete), Reclaim::Delete);
    let mut retain = delete.clone();
    retain
        .spec
        .as_mut()
        .unwrap()
        .persistent_volume_reclaim_policy = Some("Retain".into());
    assert_eq!(reclaim(&retain), Reclaim::Release);
    let foreign = volume("nfs", "manual", &["ReadWriteOnce"], "1Gi", "Bound");
    assert_eq!(reclaim(&foreign), Reclaim::Release);
}
