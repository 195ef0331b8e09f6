//! Garbage collection and namespace deletion.
//!
//! Both are level-triggered sweeps over lists served from the API server's watch cache
//! (`resourceVersion=0`), every [`CleanupConfig::period`]: each pass re-reads the world and moves
//! it one step toward the goal, so a missed event or a restart costs at most one period.
//!
//! - Garbage collection: a dependent whose owners are all gone is deleted (in the background);
//!   the dependents of an owner deleted with `propagationPolicy=Foreground` are deleted first
//!   and its `foregroundDeletion` finalizer removed once they are gone; `Orphan` strips the
//!   owner reference from the dependents, then removes the `orphan` finalizer.
//! - Namespaces: the content of a terminating namespace is deleted kind by kind; once it is
//!   empty, its `kubernetes` finalizer is removed through `namespaces/finalize`.

use std::collections::HashMap;
use std::time::Duration;

use kube::Client;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::error::Result;

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

/// A served kind: group, version, kind, plural, namespaced.
type Kind = (&'static str, &'static str, &'static str, &'static str, bool);

/// Kinds that own other objects.
const OWNERS: &[Kind] = &[
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    ("batch", "v1", "Job", "jobs", true),
    ("batch", "v1", "CronJob", "cronjobs", true),
    (
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
    ),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Node", "nodes", false),
    ("", "v1", "Pod", "pods", true),
    // Owning nothing, but deleted in the foreground they carry `foregroundDeletion` too, and
    // only the owners' pass takes it off (else a StatefulSet or DaemonSet deleted in the
    // foreground waits on its ControllerRevisions forever).
    (
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
    ),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
    ),
    ("coordination.k8s.io", "v1", "Lease", "leases", true),
];

/// Kinds that are owned.
const DEPENDENTS: &[Kind] = &[
    ("", "v1", "Pod", "pods", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    (
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
    ),
    ("batch", "v1", "Job", "jobs", true),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
    ),
    ("coordination.k8s.io", "v1", "Lease", "leases", true),
];

/// Namespaced kinds a terminating namespace is emptied of.
const NAMESPACED: &[Kind] = &[
    ("apps", "v1", "Deployment", "deployments", true),
    ("apps", "v1", "StatefulSet", "statefulsets", true),
    ("apps", "v1", "DaemonSet", "daemonsets", true),
    ("apps", "v1", "ReplicaSet", "replicasets", true),
    (
        "apps",
        "v1",
        "ControllerRevision",
        "controllerrevisions",
        true,
    ),
    ("batch", "v1", "CronJob", "cronjobs", true),
    ("batch", "v1", "Job", "jobs", true),
    (
        "autoscaling",
        "v2",
        "HorizontalPodAutoscaler",
        "horizontalpodautoscalers",
        true,
    ),
    (
        "policy",
        "v1",
        "PodDisruptionBudget",
        "poddisruptionbudgets",
        true,
    ),
    (
        "",
        "v1",
        "ReplicationController",
        "replicationcontrollers",
        true,
    ),
    ("", "v1", "Pod", "pods", true),
    ("", "v1", "Service", "services", true),
    ("", "v1", "Endpoints", "endpoints", true),
    (
        "discovery.k8s.io",
        "v1",
        "EndpointSlice",
        "endpointslices",
        true,
    ),
    ("", "v1", "ConfigMap", "configmaps", true),
    ("", "v1", "Secret", "secrets", true),
    ("", "v1", "ServiceAccount", "serviceaccounts", true),
    (
        "",
        "v1",
        "PersistentVolumeClaim",
        "persistentvolumeclaims",
        true,
    ),
    ("coordination.k8s.io", "v1", "Lease", "leases", true),
    ("", "v1", "Event", "events", true),
];

fn api_resource(kind: &Kind) -> ApiResource {
    let (group, version, kind_name, plural, _) = *kind;
    ApiResource {
        group: group.into(),
        version: version.into(),
        api_version: if group.is_empty() {
            version.into()
        } else {
            format!("{group}/{version}")
        },
        kind: kind_name.into(),
        plural: plural.into(),
    }
}

fn api_all(client: &Client, kind: &Kind) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &api_resource(kind))
}

fn api_in(client: &Client, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
    match namespace {
        Some(ns) if kind.4 => Api::namespaced_with(client.clone(), ns, &api_resource(kind)),
        _ => Api::all_with(client.clone(), &api_resource(kind)),
    }
}

/// List from the watch cache.
async fn list_all(client: &Client, kind: &Kind) -> Result<Vec<DynamicObject>> {
    let params = ListParams::default().match_any();
    Ok(api_all(client, kind).list(&params).await?.items)
}

/// Run both sweeps until `shutdown`.
pub async fn run(client: Client, config: CleanupConfig, shutdown: CancellationToken) -> Result<()> {
    let mut ticker = tokio::time::interval(config.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        // A failed pass is retried on the next tick; the world is re-read every time.
        if let Err(err) = collect_garbage(&client).await {
            tracing::warn!(error = %err, "garbage collection pass failed");
        }
        if let Err(err) = empty_terminating_namespaces(&client).await {
            tracing::warn!(error = %err, "namespace deletion pass failed");
        }
    }
}

struct OwnerState {
    kind: &'static Kind,
    namespace: Option<String>,
    name: String,
    resource_version: Option<String>,
    finalizers: Vec<String>,
    deleting: bool,
}

/// One garbage collection pass.
pub async fn collect_garbage(client: &Client) -> Result<()> {
    let mut owners: HashMap<String, OwnerState> = HashMap::new();
    for kind in OWNERS {
        for obj in list_all(client, kind).await? {
            let Some(uid) = obj.metadata.uid.clone() else {
                continue;
            };
            owners.insert(
                uid,
                OwnerState {
                    kind,
                    namespace: obj.metadata.namespace.clone(),
                    name: obj.metadata.name.clone().unwrap_or_default(),
                    resource_version: obj.metadata.resource_version.clone(),
                    finalizers: obj.metadata.finalizers.clone().unwrap_or_default(),
                    deleting: obj.metadata.deletion_timestamp.is_some(),
                },
            );
        }
    }
    let known_kinds: Vec<&str> = OWNERS.iter().map(|k| k.2).collect();
    // Owners (by uid) that still have dependents pointing at them.
    let mut referenced: HashMap<String, usize> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    for kind in DEPENDENTS {
        for obj in list_all(client, kind).await? {
            let refs = obj.metadata.owner_references.clone().unwrap_or_default();
            if refs.is_empty() {
                continue;
            }
            let uid = obj.metadata.uid.clone().unwrap_or_default();
            if !seen.insert(uid.clone()) {
                continue; // an object listed as both an owner kind and a dependent kind
            }
            let name = obj.metadata.name.clone().unwrap_or_default();
            let namespace = obj.metadata.namespace.clone();
            let api = api_in(client, kind, namespace.as_deref());
            let live: Vec<_> = refs
                .iter()
                .filter(|r| owners.contains_key(&r.uid))
                .collect();
            let all_gone =
                live.is_empty() && refs.iter().all(|r| known_kinds.contains(&r.kind.as_str()));
            // The owner lists were read before this dependent list: an owner created since
            // would look gone. Confirm with a live read before deleting anything.
            let all_gone =
                all_gone && owners_really_gone(client, &refs, namespace.as_deref()).await;
            if all_gone {
                if obj.metadata.deletion_timestamp.is_none() {
                    tracing::info!(kind = kind.2, %name, "deleting a dependent whose owners are gone");
                    delete_quietly(&api, &name, &uid, "Background").await;
                }
                continue;
            }
            for reference in &refs {
                let Some(owner) = owners.get(&reference.uid) else {
                    continue;
                };
                *referenced.entry(reference.uid.clone()).or_default() += 1;
                if !owner.deleting {
                    continue;
                }
                if owner.finalizers.iter().any(|f| f == "orphan") {
                    let remaining: Vec<_> =
                        refs.iter().filter(|r| r.uid != reference.uid).collect();
                    let patch = json!({ "metadata": { "ownerReferences": remaining } });
                    if let Err(err) = api
                        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                        .await
                    {
                        tracing::debug!(%name, error = %err, "could not orphan a dependent");
                    }
                } else if owner.finalizers.iter().any(|f| f == "foregroundDeletion")
                    && obj.metadata.deletion_timestamp.is_none()
                {
                    delete_quietly(&api, &name, &uid, "Foreground").await;
                }
            }
        }
    }
    // Owners being deleted whose dependents are all handled lose their GC finalizer.
    for (uid, owner) in &owners {
        if !owner.deleting || referenced.contains_key(uid) {
            continue;
        }
        let remaining: Vec<&String> = owner
            .finalizers
            .iter()
            .filter(|f| *f != "orphan" && *f != "foregroundDeletion")
            .collect();
        if remaining.len() == owner.finalizers.len() {
            continue;
        }
        let api = api_in(client, owner.kind, owner.namespace.as_deref());
        let patch = json!({ "metadata": {
            "finalizers": remaining,
            "resourceVersion": owner.resource_version,
        } });
        if let Err(err) = api
            .patch(&owner.name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(name = %owner.name, error = %err, "could not remove a GC finalizer");
        }
    }
    Ok(())
}

/// Whether every owner in `refs` is absent (or replaced by another object of the same name),
/// read live from the API server.
async fn owners_really_gone(
    client: &Client,
    refs: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference],
    namespace: Option<&str>,
) -> bool {
    for reference in refs {
        let Some(kind) = OWNERS.iter().find(|k| k.2 == reference.kind) else {
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

async fn delete_quietly(api: &Api<DynamicObject>, name: &str, uid: &str, policy: &str) {
    let params = DeleteParams {
        propagation_policy: Some(match policy {
            "Foreground" => kube::api::PropagationPolicy::Foreground,
            _ => kube::api::PropagationPolicy::Background,
        }),
        preconditions: Some(kube::api::Preconditions {
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

/// One namespace deletion pass.
pub async fn empty_terminating_namespaces(client: &Client) -> Result<()> {
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let list = namespaces.list(&ListParams::default().match_any()).await?;
    for namespace in list.items {
        if namespace.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let finalizers = namespace
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == "kubernetes") {
            continue;
        }
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let mut remaining = 0usize;
        for kind in NAMESPACED {
            let api = api_in(client, kind, Some(&name));
            let items = api.list(&ListParams::default().match_any()).await?.items;
            // Events go last: they may describe the deletion of the rest.
            if kind.2 == "Event" && remaining > 0 {
                continue;
            }
            remaining += items.len();
            for item in items {
                if item.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let item_name = item.metadata.name.clone().unwrap_or_default();
                let uid = item.metadata.uid.clone().unwrap_or_default();
                delete_quietly(&api, &item_name, &uid, "Background").await;
            }
        }
        if remaining > 0 {
            continue;
        }
        let mut finalized = serde_json::to_value(&namespace).unwrap_or(Value::Null);
        finalized["spec"]["finalizers"] = json!(
            finalizers
                .iter()
                .filter(|f| *f != "kubernetes")
                .collect::<Vec<_>>()
        );
        let data = serde_json::to_vec(&finalized).unwrap_or_default();
        let request = http::Request::put(format!("/api/v1/namespaces/{name}/finalize"))
            .header("content-type", "application/json")
            .body(data)
            .map_err(|err| crate::error::Error::InvalidSpec {
                kind: "Namespace",
                key: name.clone(),
                message: err.to_string(),
            })?;
        match client.request_text(request).await {
            Ok(_) => tracing::info!(namespace = %name, "namespace emptied and finalized"),
            Err(err) => tracing::debug!(namespace = %name, error = %err, "finalize failed"),
        }
    }
    Ok(())
}
