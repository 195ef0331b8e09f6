//! Acting on [`ownership::claim`](super::ownership::claim) decisions: adopt orphans, release
//! objects that stopped matching, and return what the owner controls afterwards.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tracing::info;
use tugboat_api::selector::Selector;

use super::ownership::{Claim, adopt_patch, claim, controller_ref, release_patch};
use crate::Result;
use crate::error::kube_status_is;

/// Claims `candidates` (objects in the owner's namespace) for `owner`. `owner_still_current`
/// is consulted once, before the first adoption: a quorum read that the cached owner is live
/// and not being deleted (upstream's `RecheckDeletionTimestamp`).
pub async fn claim_objects<O, K, F>(
    owner: &O,
    selector: &Selector,
    api: &Api<K>,
    candidates: Vec<Arc<K>>,
    owner_still_current: impl FnOnce() -> F,
) -> Result<Vec<Arc<K>>>
where
    O: Resource<DynamicType = ()>,
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
    F: Future<Output = Result<bool>>,
{
    let owner_meta: &ObjectMeta = owner.meta();
    let owner_uid = owner_meta.uid.clone().unwrap_or_default();
    let reference = controller_ref(owner);
    let kind = K::kind(&());
    let mut recheck = Some(owner_still_current);
    let mut may_adopt = false;
    let mut owned = Vec::new();
    for object in candidates {
        let name = object.meta().name.clone().unwrap_or_default();
        match claim(owner_meta, selector, object.meta()) {
            Claim::Owned => owned.push(object),
            Claim::Ignore => {}
            Claim::Adopt => {
                if let Some(recheck) = recheck.take() {
                    may_adopt = recheck().await?;
                }
                if !may_adopt {
                    continue;
                }
                let patch = adopt_patch(object.meta(), &reference);
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(adopted) => {
                        info!(%kind, object = %name, "adopted orphan");
                        owned.push(Arc::new(adopted));
                    }
                    Err(error) if kube_status_is(&error, 404) => {}
                    Err(error) => return Err(error.into()),
                }
            }
            Claim::Release => {
                let patch = release_patch(object.meta(), &owner_uid);
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => info!(%kind, object = %name, "released object that no longer matches"),
                    Err(error) if kube_status_is(&error, 404) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    Ok(owned)
}

/// Upstream's `RecheckDeletionTimestamp`: before adopting, a quorum read confirms the cached
/// owner is still the live one (same UID) and not being deleted.
pub async fn owner_still_current<K>(client: &kube::Client, owner: &K) -> Result<bool>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let meta = owner.meta();
    let namespace = meta.namespace.as_deref().unwrap_or_default();
    let name = meta.name.as_deref().unwrap_or_default();
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let fresh = api.get_opt(name).await?;
    Ok(fresh.is_some_and(|fresh| {
        fresh.meta().uid == meta.uid && fresh.meta().deletion_timestamp.is_none()
    }))
}
