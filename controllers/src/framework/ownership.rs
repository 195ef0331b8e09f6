//! Controller references: who owns an object, and whether a controller should adopt, keep or
//! release it (upstream's `ControllerRefManager.ClaimObject`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Resource;
use serde_json::{Value, json};
use tugboat_api::selector::Selector;

/// The owner reference with `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|reference| reference.controller == Some(true))
}

/// The key of the cached `K` that controls the object with `meta`: its controller reference
/// names a `K` of the same API group, and the cached one has the referenced UID (a same-named
/// successor is not the owner).
pub fn cached_controller<K: Resource<DynamicType = ()> + Clone>(
    owners: &kube::runtime::reflector::Store<K>,
    meta: &ObjectMeta,
) -> Option<super::ObjectKey> {
    let reference = controller_of(meta)?;
    let group = reference
        .api_version
        .split_once('/')
        .map_or("", |(group, _)| group);
    if reference.kind != K::kind(&()) || group != K::group(&()) {
        return None;
    }
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let owner =
        owners.get(&kube::runtime::reflector::ObjectRef::new(&reference.name).within(namespace))?;
    (owner.meta().uid.as_deref() == Some(reference.uid.as_str()))
        .then(|| super::ObjectKey::of(owner.as_ref()))
}

/// A controller reference to `owner`, blocking the owner's foreground deletion as upstream.
pub fn controller_ref<K: Resource<DynamicType = ()>>(owner: &K) -> OwnerReference {
    let meta = owner.meta();
    OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// What a controller does with an object its informer shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Ours, and still matching: manage it.
    Owned,
    /// An orphan that matches: take it.
    Adopt,
    /// Ours, but no longer matching: let it go.
    Release,
    /// Someone else's, or not ours to touch right now.
    Ignore,
}

/// Decides as `ClaimObject` does. `owner` is the controller's object, `object` a candidate in
/// the same namespace.
pub fn claim(owner: &ObjectMeta, selector: &Selector, object: &ObjectMeta) -> Claim {
    let owner_deleting = owner.deletion_timestamp.is_some();
    let matches = selector.matches(&object.labels.clone().unwrap_or_default());
    match controller_of(object) {
        Some(reference) => {
            if Some(&reference.uid) != owner.uid.as_ref() {
                Claim::Ignore
            } else if matches {
                Claim::Owned
            } else if owner_deleting {
                // A deleting owner neither adopts nor releases: the garbage collector decides.
                Claim::Ignore
            } else {
                Claim::Release
            }
        }
        None => {
            if owner_deleting
                || !matches
                || object.deletion_timestamp.is_some()
                || object.namespace != owner.namespace
            {
                Claim::Ignore
            } else {
                Claim::Adopt
            }
        }
    }
}

/// A JSON merge patch that adds `reference` to `object`'s owners. It carries the object's
/// resourceVersion, so a concurrent change makes it fail with 409 instead of losing an owner.
pub fn adopt_patch(object: &ObjectMeta, reference: &OwnerReference) -> Value {
    let mut references: Vec<OwnerReference> = object
        .owner_references
        .iter()
        .flatten()
        .filter(|existing| existing.uid != reference.uid)
        .cloned()
        .collect();
    references.push(reference.clone());
    json!({
        "metadata": {
            "ownerReferences": references,
            "resourceVersion": object.resource_version,
        }
    })
}

/// A JSON merge patch that removes the owner `owner_uid` from `object`.
pub fn release_patch(object: &ObjectMeta, owner_uid: &str) -> Value {
    let references: Vec<&OwnerReference> = object
        .owner_references
        .iter()
        .flatten()
        .filter(|existing| existing.uid != owner_uid)
        .collect();
    let references = if references.is_empty() {
        Value::Null
    } else {
        json!(references)
    };
    json!({
        "metadata": {
            "ownerReferences": references,
            "resourceVersion": object.resource_version,
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    fn owner(uid: &str, deleting: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("rs".into()),
            namespace: Some("ns".into()),
            uid: Some(uid.into()),
            deletion_timestamp: deleting.then(|| Time(Default::default())),
            ..Default::default()
        }
    }

    fn object(labels: &[(&str, &str)], controller_uid: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("pod".into()),
            namespace: Some("ns".into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect::<BTreeMap<_, _>>(),
            ),
            owner_references: controller_uid.map(|uid| {
                vec![OwnerReference {
                    uid: uid.into(),
                    controller: Some(true),
                    ..Default::default()
                }]
            }),
            resource_version: Some("7".into()),
            ..Default::default()
        }
    }

    #[test]
    fn claim_follows_upstream_rules() {
        let selector = Selector::parse("app=web").unwrap();
        let cases = [
            (
                "orphan matching",
                owner("u1", false),
                object(&[("app", "web")], None),
                Claim::Adopt,
            ),
            (
                "orphan not matching",
                owner("u1", false),
                object(&[("app", "db")], None),
                Claim::Ignore,
            ),
            (
                "orphan, owner deleting",
                owner("u1", true),
                object(&[("app", "web")], None),
                Claim::Ignore,
            ),
            (
                "ours matching",
                owner("u1", false),
                object(&[("app", "web")], Some("u1")),
                Claim::Owned,
            ),
            (
                "ours not matching",
                owner("u1", false),
                object(&[("app", "db")], Some("u1")),
                Claim::Release,
            ),
            (
                "ours not matching, owner deleting",
                owner("u1", true),
                object(&[("app", "db")], Some("u1")),
                Claim::Ignore,
            ),
            (
                "ours matching, owner deleting",
                owner("u1", true),
                object(&[("app", "web")], Some("u1")),
                Claim::Owned,
            ),
            (
                "another controller's",
                owner("u1", false),
                object(&[("app", "web")], Some("u2")),
                Claim::Ignore,
            ),
        ];
        for (name, owner, object, want) in cases {
            assert_eq!(claim(&owner, &selector, &object), want, "{name}");
        }
    }

    #[test]
    fn deleting_orphan_and_other_namespace_are_not_adopted() {
        let selector = Selector::parse("app=web").unwrap();
        let mut deleting = object(&[("app", "web")], None);
        deleting.deletion_timestamp = Some(Time(Default::default()));
        assert_eq!(
            claim(&owner("u1", false), &selector, &deleting),
            Claim::Ignore
        );
        let mut elsewhere = object(&[("app", "web")], None);
        elsewhere.namespace = Some("other".into());
        assert_eq!(
            claim(&owner("u1", false), &selector, &elsewhere),
            Claim::Ignore
        );
    }

    #[test]
    fn patches_keep_other_owners_and_carry_the_resource_version() {
        let mut pod = object(&[], None);
        pod.owner_references = Some(vec![OwnerReference {
            uid: "other".into(),
            ..Default::default()
        }]);
        let reference = OwnerReference {
            uid: "u1".into(),
            controller: Some(true),
            ..Default::default()
        };
        let adopt = adopt_patch(&pod, &reference);
        assert_eq!(adopt["metadata"]["resourceVersion"], "7");
        assert_eq!(
            adopt["metadata"]["ownerReferences"]
                .as_array()
                .unwrap()
                .len(),
            2
        );

        pod.owner_references.as_mut().unwrap().push(reference);
        let release = release_patch(&pod, "u1");
        assert_eq!(release["metadata"]["ownerReferences"][0]["uid"], "other");
        assert_eq!(
            release["metadata"]["ownerReferences"]
                .as_array()
                .unwrap()
                .len(),
            1
        );

        let only_ours = object(&[], Some("u1"));
        assert!(release_patch(&only_ours, "u1")["metadata"]["ownerReferences"].is_null());
    }
}
