//! Garbage collection and namespace deletion.
//!
//! Both are level-triggered sweeps over lists of every stored kind served from the API
//! server's watch cache (`resourceVersion=0`), every [`CleanupConfig::period`]: each pass
//! re-reads the world and moves it one step toward the goal, so a missed event or a restart
//! costs at most one period.
//!
//! - Garbage collection ([`plan`]): upstream's semantics for ownerReferences, propagation
//!   Background, Foreground (`foregroundDeletion`, `blockOwnerDeletion`) and Orphan, several
//!   owners, and foreground cycles.
//! - Namespaces ([`namespaces`]): the content of a terminating namespace is deleted kind by
//!   kind; once it is empty, its `kubernetes` finalizer is removed through
//!   `namespaces/finalize`.

mod namespaces;
pub mod plan;

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_api::resources::{Registry, Verb};

use crate::error::Result;
use plan::{Action, Graph, Item, Policy};

/// How often the sweeps run.
#[derive(Debug, Clone)]
pub struct CleanupConfig {
    /// Time between two sweeps.
    pub period: Duration,
}

impl Default for CleanupConfig {
    fn default() -> Self {
        CleanupConfig {
            period: Duration::from_secs(2),
        }
    }
}

/// A stored kind the collector lists: where it is served, and whether it is namespaced.
#[derive(Debug, Clone)]
struct Kind {
    resource: ApiResource,
    namespaced: bool,
}

/// Every stored kind that can be listed and deleted, from the API's own registry, so that an
/// object of any kind can own or be owned (as upstream's collector watches every resource).
/// Events are left out, as upstream leaves them out.
fn served_kinds() -> Vec<Kind> {
    Registry::builtin()
        .all()
        .filter(|info| {
            info.stored
                && info.storage_group == info.group
                && info.kind != "Event"
                && info.supports(Verb::List)
                && info.supports(Verb::Delete)
        })
        .map(|info| {
            let version = info.preferred_version();
            Kind {
                resource: ApiResource {
                    group: info.group.into(),
                    version: version.into(),
                    api_version: info.api_version(version),
                    kind: info.kind.into(),
                    plural: info.plural.into(),
                },
                namespaced: info.namespaced,
            }
        })
        .collect()
}

fn api_in(client: &Client, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) if kind.namespaced => Api::namespaced_with(client.clone(), ns, &kind.resource),
        _ => Api::all_with(client.clone(), &kind.resource),
    }
}

/// Run both sweeps until `shutdown`.
pub async fn run(client: Client, config: CleanupConfig, shutdown: CancellationToken) -> Result<()> {
    let kinds = served_kinds();
    let mut ticker = tokio::time::interval(config.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        // A failed pass is retried on the next tick; the world is re-read every time.
        if let Err(err) = collect_garbage_of(&client, &kinds).await {
            tracing::warn!(error = %err, "garbage collection pass failed");
        }
        if let Err(err) = namespaces::empty_terminating_namespaces(&client, &kinds).await {
            tracing::warn!(error = %err, "namespace deletion pass failed");
        }
    }
}

async fn collect_garbage_of(client: &Client, kinds: &[Kind]) -> Result<()> {
    let mut listed = Vec::new();
    let mut graph_items = Vec::new();
    for (index, kind) in kinds.iter().enumerate() {
        // From the watch cache. A kind that cannot be listed is left out of this pass, and
        // references to it are then never taken as dangling.
        let list = match api_in(client, kind, None)
            .list(&ListParams::default().match_any())
            .await
        {
            Ok(list) => list,
            Err(err) => {
                tracing::debug!(kind = %kind.resource.kind, error = %err, "cannot list for GC");
                continue;
            }
        };
        listed.push((kind.resource.group.clone(), kind.resource.kind.clone()));
        for obj in list.items {
            let meta = obj.metadata;
            let Some(uid) = meta.uid else { continue };
            graph_items.push(Item {
                kind: index,
                namespace: meta.namespace,
                name: meta.name.unwrap_or_default(),
                uid,
                resource_version: meta.resource_version,
                owners: meta.owner_references.unwrap_or_default(),
                finalizers: meta.finalizers.unwrap_or_default(),
                deleting: meta.deletion_timestamp.is_some(),
            });
        }
    }
    let mut graph = Graph::new(listed);
    for item in graph_items {
        graph.insert(item);
    }
    for action in graph.plan() {
        apply(client, kinds, &graph, action).await;
    }
    Ok(())
}

/// Carries out one action. Failures are left for the next pass, which re-reads everything.
async fn apply(client: &Client, kinds: &[Kind], graph: &Graph, action: Action) {
    let uid = match &action {
        Action::Delete { uid, .. }
        | Action::DropOwners { uid, .. }
        | Action::RemoveFinalizer { uid, .. } => uid.clone(),
    };
    let Some(item) = graph.get(&uid) else { return };
    let Some(kind) = kinds.get(item.kind) else {
        return;
    };
    let api = api_in(client, kind, item.namespace.as_deref());
    let result = match action {
        Action::Delete {
            policy,
            unblock_first,
            confirm_gone,
            ..
        } => {
            if !owners_really_gone(client, kinds, &confirm_gone, item.namespace.as_deref()).await {
                return;
            }
            if unblock_first {
                let owners: Vec<_> = item
                    .owners
                    .iter()
                    .cloned()
                    .map(|mut r| {
                        r.block_owner_deletion = Some(false);
                        r
                    })
                    .collect();
                if let Err(err) = patch_owners(&api, item, &owners).await {
                    tracing::debug!(name = %item.name, error = %err, "could not unblock owners");
                    return;
                }
            }
            tracing::info!(kind = %kind.resource.kind, name = %item.name, ?policy,
                "deleting a dependent whose owners are gone or waiting for it");
            delete_quietly(&api, &item.name, &item.uid, policy).await;
            return;
        }
        Action::DropOwners {
            owners,
            confirm_gone,
            ..
        } => {
            if !owners_really_gone(client, kinds, &confirm_gone, item.namespace.as_deref()).await {
                return;
            }
            let remaining: Vec<_> = item
                .owners
                .iter()
                .filter(|r| !owners.contains(&r.uid))
                .cloned()
                .collect();
            patch_owners(&api, item, &remaining).await
        }
        Action::RemoveFinalizer { finalizer, .. } => {
            let remaining: Vec<&String> =
                item.finalizers.iter().filter(|f| *f != finalizer).collect();
            let patch = json!({ "metadata": {
                "finalizers": remaining,
                "resourceVersion": item.resource_version,
            } });
            api.patch(&item.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map(drop)
        }
    };
    if let Err(err) = result {
        // Changed meanwhile (409) or gone: the next pass looks again.
        tracing::debug!(name = %item.name, error = %err, "GC write skipped");
    }
}

/// Replaces the item's owner references, if it has not changed since it was listed.
async fn patch_owners(
    api: &Api<DynamicObject>,
    item: &Item,
    owners: &[OwnerReference],
) -> std::result::Result<(), kube::Error> {
    let patch = json!({ "metadata": {
        "ownerReferences": owners,
        "resourceVersion": item.resource_version,
    } });
    api.patch(&item.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map(drop)
}

/// Whether every owner in `refs` is absent (or replaced by another object of the same name),
/// read live from the API server: the lists of one pass are not one snapshot, so an owner
/// created after its kind was listed would look gone.
async fn owners_really_gone(
    client: &Client,
    kinds: &[Kind],
    refs: &[OwnerReference],
    namespace: Option<&str>,
) -> bool {
    for reference in refs {
        let group = plan::group_of(&reference.api_version);
        let Some(kind) = kinds
            .iter()
            .find(|k| k.resource.group == group && k.resource.kind == reference.kind)
        else {
            return false;
        };
        let api = api_in(client, kind, namespace);
        match api.get_opt(&reference.name).await {
            Ok(Some(owner)) if owner.metadata.uid.as_deref() == Some(reference.uid.as_str()) => {
                return false;
            }
            Ok(_) => {}
            // Unsure: keep the dependent for now.
            Err(_) => return false,
        }
    }
    true
}

async fn delete_quietly(api: &Api<DynamicObject>, name: &str, uid: &str, policy: Policy) {
    let params = DeleteParams {
        propagation_policy: Some(match policy {
            Policy::Foreground => PropagationPolicy::Foreground,
            Policy::Orphan => PropagationPolicy::Orphan,
            Policy::Background => PropagationPolicy::Background,
        }),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_owned()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    if let Err(err) = api.delete(name, &params).await {
        // Gone already, or changed meanwhile: the next pass looks again.
        tracing::debug!(%name, error = %err, "delete skipped");
    }
}
