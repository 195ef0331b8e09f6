//! A DaemonSet's or StatefulSet's history as ControllerRevisions, as upstream keeps it and
//! kubectl reads it (`kubectl rollout history|undo`): one revision per distinct pod template,
//! named `<owner>-<hash>`, whose `data` is the strategic merge patch that restores the
//! template.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::Resource;
use serde_json::{Value, json};

use super::ownership::controller_ref;

/// The label naming the ControllerRevision (template hash) a pod was made from.
pub const REVISION_HASH_LABEL: &str = "controller-revision-hash";

/// The annotation kubectl shows as CHANGE-CAUSE.
const CHANGE_CAUSE_ANNOTATION: &str = "kubernetes.io/change-cause";

/// Upstream's `rand.SafeEncodeString` alphabet: no vowels, no look-alikes.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// The template hash: FNV-1a (32 bit) of the template and the collision count, spelled in
/// the safe alphabet, as upstream's `controller.ComputeHash` does.
pub fn template_hash(template: &PodTemplateSpec, collisions: Option<i32>) -> String {
    let template = serde_json::to_string(template).unwrap_or_default();
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
pub fn revision_data(template: &PodTemplateSpec) -> Value {
    let mut template = serde_json::to_value(template).unwrap_or_else(|_| json!({}));
    if let Some(map) = template.as_object_mut() {
        map.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// A new revision of `owner`'s current `template`, numbered `revision`.
pub fn new_revision<K: Resource<DynamicType = ()>>(
    owner: &K,
    template: &PodTemplateSpec,
    hash: &str,
    revision: i64,
) -> ControllerRevision {
    let meta = owner.meta();
    let name = meta.name.clone().unwrap_or_default();
    let mut labels = template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(REVISION_HASH_LABEL.into(), hash.to_owned());
    let annotations = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(CHANGE_CAUSE_ANNOTATION))
        .map(|cause| [(CHANGE_CAUSE_ANNOTATION.to_owned(), cause.clone())].into());
    ControllerRevision {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{hash}")),
            namespace: meta.namespace.clone(),
            labels: Some(labels),
            annotations,
            owner_references: Some(vec![controller_ref(owner)]),
            ..Default::default()
        },
        data: Some(RawExtension(revision_data(template))),
        revision,
    }
}

/// The pod template a revision restores.
pub fn template_of(revision: &ControllerRevision) -> Option<PodTemplateSpec> {
    let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
    if let Some(map) = template.as_object_mut() {
        map.remove("$patch");
    }
    serde_json::from_value(template).ok()
}

/// The revision hash a ControllerRevision carries.
pub fn hash_of(revision: &ControllerRevision) -> Option<&str> {
    revision
        .metadata
        .labels
        .as_ref()?
        .get(REVISION_HASH_LABEL)
        .map(String::as_str)
}

/// Makes `template` (hash `hash`) the newest of `owner`'s `revisions`: a new
/// ControllerRevision, or (after a `rollout undo`) the old one for the same template
/// renumbered as the newest. Returns its name.
pub async fn record_revision<K: Resource<DynamicType = ()>>(
    client: &kube::Client,
    owner: &K,
    template: &PodTemplateSpec,
    hash: &str,
    revisions: &[&ControllerRevision],
) -> crate::Result<String> {
    let namespace = owner.meta().namespace.as_deref().unwrap_or_default();
    let api: kube::Api<ControllerRevision> = kube::Api::namespaced(client.clone(), namespace);
    let newest = revisions.iter().map(|r| r.revision).max().unwrap_or(0);
    match revisions.iter().find(|r| hash_of(r) == Some(hash)) {
        Some(current) => {
            let name = current.metadata.name.clone().unwrap_or_default();
            if current.revision != newest {
                let patch = json!({"revision": newest + 1});
                api.patch(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&patch),
                )
                .await?;
            }
            Ok(name)
        }
        None => {
            let revision = new_revision(owner, template, hash, newest + 1);
            let name = revision.metadata.name.clone().unwrap_or_default();
            match api
                .create(&kube::api::PostParams::default(), &revision)
                .await
            {
                Ok(_) => Ok(name),
                // Our cache lags behind a revision we made: it is there.
                Err(error) if crate::error::kube_status_is(&error, 409) => Ok(name),
                Err(error) => Err(error.into()),
            }
        }
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
            let hash = hash_of(r);
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
    use k8s_openapi::api::apps::v1::DaemonSet;

    use super::*;

    fn template(ds: &DaemonSet) -> PodTemplateSpec {
        ds.spec
            .as_ref()
            .map(|s| s.template.clone())
            .unwrap_or_default()
    }

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
        let a = template_hash(&template(&ds("busybox:1")), None);
        assert_eq!(a, template_hash(&template(&ds("busybox:1")), None));
        assert_ne!(a, template_hash(&template(&ds("busybox:2")), None));
        assert_ne!(a, template_hash(&template(&ds("busybox:1")), Some(1)));
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{a}");
    }

    #[test]
    fn a_revision_restores_its_template_and_carries_the_change_cause() {
        let daemon = ds("busybox:1");
        let revision = new_revision(&daemon, &template(&daemon), "abc", 3);
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
