//! Garbage collection on an in-process cluster, as the Kubernetes conformance tests for the
//! collector describe it (test/e2e/apimachinery/garbage_collector.go): cascades in the
//! background, in the foreground and orphaning; dependents of several owners; dependency
//! cycles; dependents of owners that never existed. ConfigMaps stand in for arbitrary kinds
//! where no controller should interfere.

use std::collections::BTreeSet;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

mod common;

use common::{NAMESPACE, eventually, with_cluster};

/// An owner reference to `owner`, blocking its foreground deletion when `block`.
fn reference(owner: &ConfigMap, block: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner.metadata.name,
        "uid": owner.metadata.uid,
        "blockOwnerDeletion": block,
    })
}

async fn config_map(
    api: &Api<ConfigMap>,
    name: &str,
    owners: Vec<Value>,
    finalizers: &[&str],
) -> anyhow::Result<ConfigMap> {
    let object: ConfigMap = serde_json::from_value(json!({
        "metadata": { "name": name, "ownerReferences": owners, "finalizers": finalizers },
    }))?;
    Ok(api.create(&PostParams::default(), &object).await?)
}

async fn names(api: &Api<ConfigMap>) -> anyhow::Result<BTreeSet<String>> {
    Ok(api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter_map(|c| c.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect())
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

async fn until_names(api: &Api<ConfigMap>, wanted: &[&str]) -> anyhow::Result<()> {
    let wanted = set(wanted);
    eventually(|| async { Ok((names(api).await? == wanted).then_some(())) }).await
}

fn replica_set(name: &str, replicas: i32) -> anyhow::Result<ReplicaSet> {
    Ok(serde_json::from_value(json!({
        "metadata": { "name": name },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": name } },
            "template": {
                "metadata": { "labels": { "app": name } },
                "spec": { "containers": [{ "name": "c", "image": "busybox" }] }
            }
        }
    }))?)
}

async fn pods_of(pods: &Api<Pod>, app: &str) -> anyhow::Result<Vec<Pod>> {
    Ok(pods
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await?
        .items)
}

fn delete_with(policy: kube::api::PropagationPolicy) -> DeleteParams {
    DeleteParams {
        propagation_policy: Some(policy),
        ..DeleteParams::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_orphan_and_foreground_cascades_of_a_replica_set() -> anyhow::Result<()> {
    use kube::api::PropagationPolicy::{Background, Foreground, Orphan};
    with_cluster(|client| async move {
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        for name in ["bg", "orphan", "fg"] {
            sets.create(&PostParams::default(), &replica_set(name, 2)?)
                .await?;
        }
        for name in ["bg", "orphan", "fg"] {
            eventually(|| async { Ok((pods_of(&pods, name).await?.len() == 2).then_some(())) })
                .await?;
        }

        // Background (kubectl's default): the set goes at once, its pods after it.
        sets.delete("bg", &delete_with(Background)).await?;
        eventually(|| async { Ok(pods_of(&pods, "bg").await?.is_empty().then_some(())) }).await?;
        assert!(sets.get_opt("bg").await?.is_none());

        // Orphan: the set goes, its pods stay and no longer name it.
        sets.delete("orphan", &delete_with(Orphan)).await?;
        eventually(|| async { Ok(sets.get_opt("orphan").await?.is_none().then_some(())) }).await?;
        let orphans = pods_of(&pods, "orphan").await?;
        assert_eq!(orphans.len(), 2, "orphaned pods are kept");
        for pod in &orphans {
            assert!(
                pod.metadata
                    .owner_references
                    .clone()
                    .unwrap_or_default()
                    .is_empty(),
                "an orphaned pod keeps no owner reference: {:?}",
                pod.metadata.owner_references
            );
        }
        // And stay kept: the collector does not come back for them.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(pods_of(&pods, "orphan").await?.len(), 2);

        // Foreground: the set stays, terminating, as long as a pod is left. A finalizer of
        // the test's own holds one pod back.
        let held = pods_of(&pods, "fg").await?.remove(0);
        let held_name = held.metadata.name.clone().unwrap_or_default();
        let hold = json!({ "metadata": { "finalizers": ["example.com/hold"] } });
        pods.patch(&held_name, &PatchParams::default(), &Patch::Merge(&hold))
            .await?;
        sets.delete("fg", &delete_with(Foreground)).await?;
        eventually(|| async {
            let left = pods_of(&pods, "fg").await?;
            Ok((left.len() == 1 && left[0].metadata.deletion_timestamp.is_some()).then_some(()))
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(800)).await;
        let waiting = sets.get("fg").await?;
        assert!(waiting.metadata.deletion_timestamp.is_some());
        assert!(
            waiting
                .metadata
                .finalizers
                .unwrap_or_default()
                .contains(&"foregroundDeletion".to_owned()),
            "the owner waits for its dependents"
        );
        let release = json!({ "metadata": { "finalizers": null } });
        pods.patch(&held_name, &PatchParams::default(), &Patch::Merge(&release))
            .await?;
        eventually(|| async { Ok(sets.get_opt("fg").await?.is_none().then_some(())) }).await?;
        assert!(pods_of(&pods, "fg").await?.is_empty());
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_deployment_removes_its_replica_sets_and_pods_unless_orphaned()
-> anyhow::Result<()> {
    with_cluster(|client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        for name in ["gone", "kept"] {
            let deployment: Deployment = serde_json::from_value(json!({
                "metadata": { "name": name },
                "spec": {
                    "replicas": 2,
                    "selector": { "matchLabels": { "app": name } },
                    "template": {
                        "metadata": { "labels": { "app": name } },
                        "spec": { "containers": [{ "name": "c", "image": "busybox" }] }
                    }
                }
            }))?;
            deployments
                .create(&PostParams::default(), &deployment)
                .await?;
            eventually(|| async { Ok((pods_of(&pods, name).await?.len() == 2).then_some(())) })
                .await?;
        }
        let sets_of = |app: &'static str| {
            let sets = sets.clone();
            async move {
                Ok::<_, anyhow::Error>(
                    sets.list(&ListParams::default().labels(&format!("app={app}")))
                        .await?
                        .items,
                )
            }
        };

        deployments.delete("gone", &DeleteParams::default()).await?;
        eventually(|| async {
            Ok(
                (sets_of("gone").await?.is_empty() && pods_of(&pods, "gone").await?.is_empty())
                    .then_some(()),
            )
        })
        .await?;

        deployments
            .delete("kept", &delete_with(kube::api::PropagationPolicy::Orphan))
            .await?;
        eventually(|| async { Ok(deployments.get_opt("kept").await?.is_none().then_some(())) })
            .await?;
        let kept = sets_of("kept").await?;
        assert_eq!(kept.len(), 1, "the orphaned ReplicaSet stays");
        assert!(
            kept[0]
                .metadata
                .owner_references
                .clone()
                .unwrap_or_default()
                .is_empty()
        );
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(pods_of(&pods, "kept").await?.len(), 2, "and so do its pods");
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_with_another_valid_owner_survives_a_foreground_delete() -> anyhow::Result<()> {
    // Conformance: "should not delete dependents that have both valid owner and owner that's
    // waiting for dependents to be deleted".
    with_cluster(|client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
        let doomed = config_map(&maps, "doomed", vec![], &[]).await?;
        let keeper = config_map(&maps, "keeper", vec![], &[]).await?;
        config_map(&maps, "only-doomed", vec![reference(&doomed, true)], &[]).await?;
        config_map(
            &maps,
            "shared",
            vec![reference(&doomed, true), reference(&keeper, true)],
            &[],
        )
        .await?;

        maps.delete(
            "doomed",
            &delete_with(kube::api::PropagationPolicy::Foreground),
        )
        .await?;
        until_names(&maps, &["keeper", "shared"]).await?;
        let shared = maps.get("shared").await?;
        let owners: Vec<String> = shared
            .metadata
            .owner_references
            .unwrap_or_default()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(
            owners,
            vec!["keeper".to_owned()],
            "only the valid owner is left"
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreground_delete_is_not_blocked_by_a_dependency_cycle() -> anyhow::Result<()> {
    // Conformance: "should not be blocked by dependency circle": 1 is owned by 3, 2 by 1 and 3
    // by 2, every reference blocking; deleting 1 in the foreground removes all three.
    with_cluster(|client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
        let one = config_map(&maps, "one", vec![], &[]).await?;
        let two = config_map(&maps, "two", vec![reference(&one, true)], &[]).await?;
        let three = config_map(&maps, "three", vec![reference(&two, true)], &[]).await?;
        let close = json!({ "metadata": { "ownerReferences": [reference(&three, true)] } });
        maps.patch("one", &PatchParams::default(), &Patch::Merge(&close))
            .await?;

        maps.delete(
            "one",
            &delete_with(kube::api::PropagationPolicy::Foreground),
        )
        .await?;
        until_names(&maps, &[]).await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependents_of_absent_owners_go_and_a_chain_cascades_in_the_foreground()
-> anyhow::Result<()> {
    with_cluster(|client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
        // An owner that never existed (a uid nobody has): the dependent is collected.
        let ghost: ConfigMap = serde_json::from_value(json!({
            "metadata": { "name": "ghost", "uid": "00000000-0000-0000-0000-000000000000" }
        }))?;
        config_map(&maps, "haunted", vec![reference(&ghost, false)], &[]).await?;
        // An owner of a kind nobody serves: the dependent is kept.
        let foreign = json!({ "apiVersion": "example.com/v1", "kind": "Widget",
            "name": "w", "uid": "11111111-1111-1111-1111-111111111111" });
        config_map(&maps, "foreign", vec![foreign], &[]).await?;
        until_names(&maps, &["foreign"]).await?;

        // A chain root <- child <- grandchild, all blocking: the foreground delete of the
        // root reaches the grandchild; the root is the last to go.
        let root = config_map(&maps, "root", vec![], &[]).await?;
        let child = config_map(&maps, "child", vec![reference(&root, true)], &[]).await?;
        config_map(
            &maps,
            "grandchild",
            vec![reference(&child, true)],
            &["example.com/hold"],
        )
        .await?;
        maps.delete(
            "root",
            &delete_with(kube::api::PropagationPolicy::Foreground),
        )
        .await?;
        eventually(|| async {
            let grandchild = maps.get("grandchild").await?;
            Ok(grandchild.metadata.deletion_timestamp.map(|_| ()))
        })
        .await?;
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(
            names(&maps).await?,
            set(&["child", "foreign", "grandchild", "root"]),
            "the chain waits for its held leaf"
        );
        let release = json!({ "metadata": { "finalizers": null } });
        maps.patch(
            "grandchild",
            &PatchParams::default(),
            &Patch::Merge(&release),
        )
        .await?;
        until_names(&maps, &["foreign"]).await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_deletes_everything_in_it_then_the_namespace() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::rbac::v1::Role;
    with_cluster(|client| async move {
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let team: Namespace = serde_json::from_value(json!({ "metadata": { "name": "team" } }))?;
        namespaces.create(&PostParams::default(), &team).await?;
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), "team");
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), "team");
        let roles: Api<Role> = Api::namespaced(client.clone(), "team");
        let pods: Api<Pod> = Api::namespaced(client.clone(), "team");
        config_map(&maps, "settings", vec![], &[]).await?;
        sets.create(&PostParams::default(), &replica_set("app", 2)?)
            .await?;
        let role: Role = serde_json::from_value(json!({
            "metadata": { "name": "reader" },
            "rules": [{ "apiGroups": [""], "resources": ["pods"], "verbs": ["get"] }]
        }))?;
        roles.create(&PostParams::default(), &role).await?;
        eventually(|| async { Ok((pods_of(&pods, "app").await?.len() == 2).then_some(())) })
            .await?;

        namespaces.delete("team", &DeleteParams::default()).await?;
        eventually(|| async { Ok(namespaces.get_opt("team").await?.is_none().then_some(())) })
            .await?;
        // Re-created, it starts empty: nothing of the old one is left behind.
        namespaces.create(&PostParams::default(), &team).await?;
        assert!(maps.get_opt("settings").await?.is_none());
        assert!(sets.list(&ListParams::default()).await?.items.is_empty());
        assert!(roles.list(&ListParams::default()).await?.items.is_empty());
        assert!(pods.list(&ListParams::default()).await?.items.is_empty());
        Ok(())
    })
    .await
}
