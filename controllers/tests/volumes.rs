//! In-process integration of the PersistentVolume controller: a real API server (memory
//! store) and the controllers. Two claims racing for one volume (only one may win, whatever
//! the caches say), then the local-path provisioner and Delete reclaim in a temporary
//! storage dir.

use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tugboat_controllers::ControllersConfig;

mod common;

use common::{eventually, with_cluster_config};

/// This file's tests finish within a minute, tighter than the shared bound.
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The shared in-process cluster, with local-path volumes under `storage_dir`.
async fn with_cluster<F, Fut>(storage_dir: &std::path::Path, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut config = ControllersConfig::default();
    config.volumes.storage_dir = storage_dir.to_path_buf();
    config.volumes.workers = 4;
    with_cluster_config(config, |client| async move {
        tokio::time::timeout(TEST_TIMEOUT, body(client))
            .await
            .context("test timed out")?
    })
    .await
}

fn claim(name: &str, class: &str) -> anyhow::Result<PersistentVolumeClaim> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "storageClassName": class,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
        },
    }))?)
}

fn manual_volume(name: &str) -> anyhow::Result<PersistentVolume> {
    Ok(serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "storageClassName": "manual",
            "accessModes": ["ReadWriteOnce"],
            "capacity": {"storage": "2Gi"},
            "hostPath": {"path": "/tmp/unused"},
        },
    }))?)
}

fn phase_of(claim: &PersistentVolumeClaim) -> &str {
    claim
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_claims_racing_for_one_volume_bind_exactly_one() -> anyhow::Result<()> {
    let storage = tempfile::tempdir()?;
    with_cluster(storage.path(), |client| async move {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
        let volumes: Api<PersistentVolume> = Api::all(client.clone());
        volumes
            .create(&PostParams::default(), &manual_volume("only")?)
            .await?;
        for name in ["a", "b"] {
            claims
                .create(&PostParams::default(), &claim(name, "manual")?)
                .await?;
        }
        let winner = eventually(|| async {
            let bound: Vec<PersistentVolumeClaim> = claims
                .list(&Default::default())
                .await?
                .items
                .into_iter()
                .filter(|c| phase_of(c) == "Bound")
                .collect();
            Ok(bound
                .first()
                .map(|c| c.metadata.name.clone().unwrap_or_default()))
        })
        .await?;
        // Give a wrongly double-binding controller the time to do it.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let all = claims.list(&Default::default()).await?.items;
        let bound: Vec<_> = all.iter().filter(|c| phase_of(c) == "Bound").collect();
        if bound.len() != 1 {
            bail!("expected one bound claim, got {}", bound.len());
        }
        let volume = volumes.get("only").await?;
        let reference = volume
            .spec
            .and_then(|s| s.claim_ref)
            .context("the volume has a claimRef")?;
        assert_eq!(reference.name, Some(winner));
        // A second volume serves the loser.
        volumes
            .create(&PostParams::default(), &manual_volume("second")?)
            .await?;
        eventually(|| async {
            let all = claims.list(&Default::default()).await?.items;
            Ok(all.iter().all(|c| phase_of(c) == "Bound").then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_path_provisions_on_the_selected_node_and_deletes_with_the_claim()
-> anyhow::Result<()> {
    let storage = tempfile::tempdir()?;
    let storage_dir = storage.path().to_path_buf();
    with_cluster(storage.path(), |client| async move {
        let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), "default");
        let volumes: Api<PersistentVolume> = Api::all(client.clone());
        // No class named: the default local-path class is filled in.
        let mut data = claim("data", "")?;
        if let Some(spec) = data.spec.as_mut() {
            spec.storage_class_name = None;
        }
        let created = claims.create(&PostParams::default(), &data).await?;
        let class = created
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone());
        assert_eq!(class.as_deref(), Some("local-path"));
        // WaitForFirstConsumer: nothing happens until a node is selected.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert!(volumes.list(&Default::default()).await?.items.is_empty());
        assert_eq!(phase_of(&claims.get("data").await?), "Pending");

        // The scheduler's part.
        let patch =
            json!({"metadata": {"annotations": {"volume.kubernetes.io/selected-node": "n2"}}});
        claims
            .patch("data", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        let bound = eventually(|| async {
            let claim = claims.get("data").await?;
            Ok((phase_of(&claim) == "Bound").then_some(claim))
        })
        .await?;
        let volume_name = bound
            .spec
            .and_then(|s| s.volume_name)
            .context("bound claim names its volume")?;
        let volume = volumes.get(&volume_name).await?;
        let spec = volume.spec.clone().context("volume spec")?;
        let path = spec.host_path.context("hostPath")?.path;
        assert_eq!(
            std::path::Path::new(&path),
            storage_dir.join(&volume_name).as_path()
        );
        let pinned = spec
            .node_affinity
            .and_then(|a| a.required)
            .map(|r| r.node_selector_terms[0].clone())
            .and_then(|t| t.match_expressions)
            .and_then(|e| e[0].values.clone());
        assert_eq!(pinned, Some(vec!["n2".to_owned()]));
        let annotations = bound.metadata.annotations.unwrap_or_default();
        assert_eq!(
            annotations
                .get("pv.kubernetes.io/bind-completed")
                .map(String::as_str),
            Some("yes")
        );

        // The node agent would make the directory; reclaim must remove it.
        std::fs::create_dir_all(&path)?;
        std::fs::write(std::path::Path::new(&path).join("file"), "x")?;
        claims.delete("data", &DeleteParams::default()).await?;
        eventually(|| async { Ok(volumes.get_opt(&volume_name).await?.is_none().then_some(())) })
            .await?;
        assert!(!std::path::Path::new(&path).exists(), "{path} left behind");
        Ok(())
    })
    .await
}
