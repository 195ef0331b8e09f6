//! A DaemonSet's history as ControllerRevisions, as upstream keeps it and kubectl reads it
//! (`kubectl rollout history|undo daemonset`): one revision per distinct pod template, named
//! `<daemonset>-<hash>`, whose `data` is the strategic merge patch that restores the template.

use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use serde_json::{Value, json};

use super::decide::REVISION_HASH_LABEL;
use crate::framework::ownership::controller_ref;

/// The annotation kubectl shows as CHANGE-CAUSE.
const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels, no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The template hash: FNV-1a (32 bit) of the template and the collision count, spelled in
/// the safe alphabet, as upstream's `controller.ComputeHash` does.
pub fn template_hash(ds: &DaemonSet) -> String {
    let template = ds
        .spec
        .as_ref()
        .map(|s| serde_json::to_string(&s.template).unwrap_or_default())
        .unwrap_or_default();
    let collisions = ds.status.as_ref().and_then(|s| s.collision_count);
    let mut hash: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for byte in bytes {
            hash ^= u32::from(*byte);
            hash = hash.wrapping_mul(0x0100_0193);
        }
    };
    feed(template.as_bytes());
    if let Some(collisions) = collisions {
        feed(&collisions.to_le_bytes());
    }
    hash.to_string()
        .bytes()
        .map(|digit| char::from(SAFE_ALPHABET[usize::from(digit - b'0') % SAFE_ALPHABET.len()]))
        .collect()
}

/// The `data` of a revision: the patch that puts this template back.
pub fn revision_data(ds: &DaemonSet) -> Value {
    let mut template = ds
        .spec
        .as_ref()
        .and_then(|s| serde_json::to_value(&s.template).ok())
        .unwrap_or_else(|| json!({}));
    if let Some(map) = template.as_object_mut() {
        map.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// A new revision of `ds`'s current template, numbered `revision`.
pub fn new_revision(ds: &DaemonSet, hash: &str, revision: i64) -> ControllerRevision {
    let name = ds.metadata.name.clone().unwrap_or_default();
    let mut labels = ds
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.to_owned());
    let annotations = ds
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
        .map(|cause| [(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone())].into());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: ds.metadata.namespace.clone(),
            labels: Some(labels),
            annotations,
            owner_references: Some(vec![controller_ref(ds)]),
            ..Default::default()
        },
        data: Some(RawExtension(revision_data(ds))),
        revision,
    }
}

/// The revisions to delete beyond `limit`: the oldest ones that are neither current nor used
/// by a live pod.
pub fn beyond_history_limit(
    revisions: &[&ControllerRevision],
    current_hash: &str,
    hashes_in_use: &[&str],
    limit: i32,
) -> Vec<String> {
    let mut old: Vec<&ControllerRevision> = revisions
        .iter()
        .copied()
        .filter(|r| {
            let hash = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_HASH_LABEL))
                .map(String::as_str);
            hash != Some(current_hash) && !hash.is_some_and(|h| hashes_in_use.contains(&h))
        })
        .collect();
    let keep = usize::try_from(limit.max(0)).unwrap_or(0);
    if old.len() <= keep {
        return Vec::new();
    }
    old.sort_by_key(|r| r.revision);
    let excess = old.len() - keep;
    old.into_iter()
        .take(excess)
        .filter_map(|r| r.metadata.name.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ds(image: &str) -> DaemonSet {
        serde_json::from_value(json!({
            "metadata": {"name": "agent", "namespace": "default", "uid": "d1",
                         "annotations": {CHANGE_CAUSE_ANNOTATION: "kubectl set image"}},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}}}
        }))
        .expect("daemonset")
    }

    #[test]
    fn the_hash_follows_the_template_only() {
        let a = template_hash(&ds("busybox:1"));
        assert_eq!(a, template_hash(&ds("busybox:1")));
        assert_ne!(a, template_hash(&ds("busybox:2")));
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{a}");
    }

    #[test]
    fn a_revision_restores_its_template_and_carries_the_change_cause() {
        let daemon = ds("busybox:1");
        let revision = new_revision(&daemon, "abc", 3);
        assert_eq!(revision.metadata.name.as_deref(), Some("agent-abc"));
        assert_eq!(revision.revision, 3);
        let labels = revision.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get("app").map(String::as_str), Some("agent"));
        let data = revision.data.map(|d| d.0).unwrap_or_default();
        assert_eq!(data["spec"]["template"]["$patch"], "replace");
        assert_eq!(
            data["spec"]["template"]["spec"]["containers"][0]["image"],
            "busybox:1"
        );
        assert_eq!(
            revision
                .metadata
                .annotations
                .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION).cloned())
                .as_deref(),
            Some("kubectl set image")
        );
    }
}
