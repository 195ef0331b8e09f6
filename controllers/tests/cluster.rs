//! In-process integration: a real API server (memory store, HTTPS on port 0) and the
//! controllers talking to it through kube-rs, as `tug up` wires them. No node agent runs: a
//! small simulated kubelet in the test marks pods Running and Ready.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context as _, bail};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;

mod common;

use common::{NAMESPACE, eventually, with_cluster};

fn deployment(replicas: i32, image: &str) -> anyhow::Result<Deployment> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "web", "namespace": NAMESPACE },
        "spec": {
            "replicas": replicas,
            "selector": { "matchLabels": { "app": "web" } },
            "strategy": { "type": "RollingUpdate", "rollingUpdate": { "maxSurge": 1, "maxUnavailable": 1 } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": { "containers": [{ "name": "web", "image": image }] }
            }
        }
    }))?)
}

/// Plays the kubelet: every live pod without a Ready condition becomes Running and Ready.
async fn mark_pods_ready(pods: &Api<Pod>) -> anyhow::Result<()> {
    mark_ready_where(pods, |_| true).await
}

fn annotation(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    key: &str,
) -> Option<String> {
    meta.annotations.as_ref().and_then(|a| a.get(key).cloned())
}

/// `kubectl rollout status`'s test for a finished rollout.
fn rollout_done(d: &Deployment) -> bool {
    let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let Some(status) = d.status.as_ref() else {
        return false;
    };
    d.metadata.generation <= status.observed_generation
        && status.updated_replicas.unwrap_or(0) >= replicas
        && status.replicas.unwrap_or(0) <= status.updated_replicas.unwrap_or(0)
        && status.available_replicas.unwrap_or(0) >= status.updated_replicas.unwrap_or(0)
}

/// Drives the simulated kubelet until the rollout is done, checking maxSurge on every poll.
async fn roll_out(
    deployments: &Api<Deployment>,
    replica_sets: &Api<ReplicaSet>,
    pods: &Api<Pod>,
    max_total: i32,
) -> anyhow::Result<Deployment> {
    eventually(|| async {
        mark_pods_ready(pods).await?;
        let wanted: i32 = replica_sets
            .list(&ListParams::default())
            .await?
            .items
            .iter()
            .map(|rs| rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0))
            .sum();
        if wanted > max_total {
            bail!("{wanted} replicas wanted at once, more than replicas + maxSurge = {max_total}");
        }
        let d = deployments.get("web").await?;
        Ok(rollout_done(&d).then_some(d))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_creates_a_hashed_replica_set_and_its_pods() -> anyhow::Result<()> {
    with_cluster(|client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        deployments
            .create(&PostParams::default(), &deployment(3, "busybox:1")?)
            .await?;

        let live = eventually(|| async {
            let live: Vec<Pod> = pods
                .list(&ListParams::default().labels("app=web"))
                .await?
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            Ok((live.len() == 3).then_some(live))
        })
        .await?;
        let sets = replica_sets.list(&ListParams::default()).await?.items;
        assert_eq!(sets.len(), 1);
        let rs = &sets[0];
        let rs_name = rs.metadata.name.clone().unwrap_or_default();
        let hash = rs
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("pod-template-hash").cloned())
            .unwrap_or_default();
        assert_eq!(rs_name, format!("web-{hash}"));
        assert_eq!(
            annotation(&rs.metadata, "deployment.kubernetes.io/revision").as_deref(),
            Some("1")
        );
        for pod in &live {
            let name = pod.metadata.name.clone().unwrap_or_default();
            assert!(
                name.starts_with(&format!("{rs_name}-")) && name.len() == rs_name.len() + 6,
                "pod name {name}"
            );
            let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
            assert_eq!(
                (owner.kind.as_str(), owner.controller),
                ("ReplicaSet", Some(true))
            );
            assert_eq!(
                pod.metadata.labels.as_ref().unwrap()["pod-template-hash"],
                hash
            );
        }

        let done = roll_out(&deployments, &replica_sets, &pods, 4).await?;
        let conditions: BTreeMap<String, String> = done
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.type_, c.reason.unwrap_or_default()))
            .collect();
        assert_eq!(
            conditions.get("Available").map(String::as_str),
            Some("MinimumReplicasAvailable")
        );
        assert_eq!(
            conditions.get("Progressing").map(String::as_str),
            Some("NewReplicaSetAvailable")
        );
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_then_kubectl_style_undo_reuses_the_old_replica_set() -> anyhow::Result<()> {
    with_cluster(|client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        deployments.create(&PostParams::default(), &deployment(4, "busybox:1")?).await?;
        roll_out(&deployments, &replica_sets, &pods, 5).await?;
        let first = replica_sets.list(&ListParams::default()).await?.items;
        assert_eq!(first.len(), 1);
        let first_rs = first[0].clone();

        // kubectl set image
        let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "busybox:2" }] } } } });
        deployments.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await?;
        let done = roll_out(&deployments, &replica_sets, &pods, 5).await?;
        assert_eq!(annotation(&done.metadata, "deployment.kubernetes.io/revision").as_deref(), Some("2"));
        let old = replica_sets.get(first_rs.metadata.name.as_deref().unwrap_or_default()).await?;
        assert_eq!(old.spec.as_ref().and_then(|s| s.replicas), Some(0));

        // kubectl rollout undo: the old set's template, hash label removed.
        let mut template = serde_json::to_value(first_rs.spec.as_ref().and_then(|s| s.template.clone()))?;
        if let Some(labels) = template.pointer_mut("/metadata/labels").and_then(|l| l.as_object_mut()) {
            labels.remove("pod-template-hash");
        }
        // kubectl sends this as a JSON patch (`replace /spec/template`); kube is built without
        // json-patch support here, and a merge patch of the whole template yields the same object.
        let undo = json!({ "spec": { "template": template } });
        deployments.patch("web", &PatchParams::default(), &Patch::Merge(&undo)).await?;
        let done = roll_out(&deployments, &replica_sets, &pods, 5).await?;

        let sets = replica_sets.list(&ListParams::default()).await?.items;
        assert_eq!(sets.len(), 2, "the old ReplicaSet is reused, not recreated");
        let reused = replica_sets.get(first_rs.metadata.name.as_deref().unwrap_or_default()).await?;
        assert_eq!(reused.spec.as_ref().and_then(|s| s.replicas), Some(4));
        assert_eq!(annotation(&reused.metadata, "deployment.kubernetes.io/revision").as_deref(), Some("3"));
        assert_eq!(annotation(&reused.metadata, "deployment.kubernetes.io/revision-history").as_deref(), Some("1"));
        assert_eq!(annotation(&done.metadata, "deployment.kubernetes.io/revision").as_deref(), Some("3"));
        Ok(())
    })
    .await
}

fn orphan_pod(name: &str, app: &str) -> anyhow::Result<Pod> {
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": name, "namespace": NAMESPACE, "labels": { "app": app } },
        "spec": { "containers": [{ "name": "c", "image": "busybox" }] }
    }))?)
}

fn controller_uid(pod: &Pod) -> Option<String> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_set_adopts_orphans_releases_strays_and_scales_down() -> anyhow::Result<()> {
    with_cluster(|client| async move {
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        pods.create(&PostParams::default(), &orphan_pod("orphan", "db")?)
            .await?;
        let rs: ReplicaSet = serde_json::from_value(json!({
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": { "name": "db", "namespace": NAMESPACE },
            "spec": {
                "replicas": 2,
                "selector": { "matchLabels": { "app": "db" } },
                "template": {
                    "metadata": { "labels": { "app": "db" } },
                    "spec": { "containers": [{ "name": "c", "image": "busybox" }] }
                }
            }
        }))?;
        let rs = replica_sets.create(&PostParams::default(), &rs).await?;
        let rs_uid = rs.metadata.uid.clone();

        // The orphan is adopted and counts: only one pod is created.
        eventually(|| async {
            let owned: Vec<Pod> = pods
                .list(&ListParams::default().labels("app=db"))
                .await?
                .items
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && controller_uid(p) == rs_uid)
                .collect();
            Ok((owned.len() == 2).then_some(()))
        })
        .await?;
        let orphan = pods.get("orphan").await?;
        assert_eq!(controller_uid(&orphan), rs_uid, "the orphan was adopted");

        // Relabelled, it is released and replaced.
        let relabel = json!({ "metadata": { "labels": { "app": "other" } } });
        pods.patch("orphan", &PatchParams::default(), &Patch::Merge(&relabel))
            .await?;
        eventually(|| async {
            let released = controller_uid(&pods.get("orphan").await?).is_none();
            let owned = pods
                .list(&ListParams::default().labels("app=db"))
                .await?
                .items
                .iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none() && controller_uid(p) == rs_uid)
                .count();
            Ok((released && owned == 2).then_some(()))
        })
        .await?;

        // Scaled to one, it deletes one pod and reports its status.
        let scale = json!({ "spec": { "replicas": 1 } });
        replica_sets
            .patch("db", &PatchParams::default(), &Patch::Merge(&scale))
            .await?;
        eventually(|| async {
            mark_pods_ready(&pods).await?;
            let rs = replica_sets.get("db").await?;
            let status = rs.status.clone().unwrap_or_default();
            Ok((status.replicas == 1
                && status.ready_replicas == Some(1)
                && status.available_replicas == Some(1)
                && status.observed_generation == rs.metadata.generation)
                .then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreate_scales_old_to_zero_before_starting_new() -> anyhow::Result<()> {
    with_cluster(|client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let replica_sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let mut recreate = deployment(3, "busybox:1")?;
        if let Some(spec) = recreate.spec.as_mut() {
            spec.strategy = serde_json::from_value(json!({ "type": "Recreate" }))?;
        }
        deployments.create(&PostParams::default(), &recreate).await?;
        roll_out(&deployments, &replica_sets, &pods, 3).await?;
        let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "busybox:2" }] } } } });
        deployments.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await?;
        // maxSurge is 0 for Recreate: never more than 3 replicas wanted at once.
        let done = roll_out(&deployments, &replica_sets, &pods, 3).await?;
        assert_eq!(annotation(&done.metadata, "deployment.kubernetes.io/revision").as_deref(), Some("2"));
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_rollout_exceeds_its_progress_deadline() -> anyhow::Result<()> {
    with_cluster(|client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let mut stalled = deployment(2, "busybox:1")?;
        if let Some(spec) = stalled.spec.as_mut() {
            spec.progress_deadline_seconds = Some(1);
        }
        deployments.create(&PostParams::default(), &stalled).await?;
        // No kubelet marks the pods ready: no progress after the first scale-up.
        let progressing = eventually(|| async {
            let d = deployments.get("web").await?;
            let condition = d
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .into_iter()
                .find(|c| {
                    c.type_ == "Progressing"
                        && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
                });
            Ok(condition)
        })
        .await?;
        assert_eq!(progressing.status, "False");
        Ok(())
    })
    .await
}

/// Plays a kubelet that can only run `image`: its pods become Ready, the others never do.
async fn mark_ready_if_image(pods: &Api<Pod>, image: &str) -> anyhow::Result<()> {
    mark_ready_where(pods, |pod| {
        pod.spec.as_ref().is_some_and(|s| {
            s.containers
                .iter()
                .all(|c| c.image.as_deref() == Some(image))
        })
    })
    .await
}

/// Every live pod that `runs` and has no Ready condition becomes Running and Ready.
async fn mark_ready_where(pods: &Api<Pod>, runs: impl Fn(&Pod) -> bool) -> anyhow::Result<()> {
    for pod in pods.list(&ListParams::default()).await?.items {
        let ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if !runs(&pod) || ready || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let patch = json!({ "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": "True", "lastTransitionTime": Timestamp::now().to_string() }]
        }});
        // A pod deleted meanwhile is fine.
        let _ = pods
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_rollout_past_its_deadline_rolls_back_by_itself() -> anyhow::Result<()> {
    with_cluster(|client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let events: Api<k8s_openapi::api::core::v1::Event> = Api::namespaced(client.clone(), NAMESPACE);
        let mut web = deployment(2, "busybox:1")?;
        web.metadata.annotations = Some([("tugboat.dev/auto-rollback".to_owned(), "true".to_owned())].into());
        if let Some(spec) = web.spec.as_mut() {
            spec.progress_deadline_seconds = Some(2);
        }
        deployments.create(&PostParams::default(), &web).await?;
        eventually(|| async {
            mark_ready_if_image(&pods, "busybox:1").await?;
            Ok(rollout_done(&deployments.get("web").await?).then_some(()))
        })
        .await?;

        // An image that never becomes ready: the rollout stalls, misses its deadline, and the
        // controller puts revision 1's template back.
        let patch = json!({ "spec": { "template": { "spec": { "containers": [{ "name": "web", "image": "busybox:broken" }] } } } });
        deployments.patch("web", &PatchParams::default(), &Patch::Merge(&patch)).await?;
        let rolled_back = eventually(|| async {
            mark_ready_if_image(&pods, "busybox:1").await?;
            let d = deployments.get("web").await?;
            let image = d.spec.as_ref().and_then(|s| s.template.spec.as_ref()).and_then(|s| s.containers[0].image.clone());
            Ok((image.as_deref() == Some("busybox:1")).then_some(d))
        })
        .await?;
        assert!(annotation(&rolled_back.metadata, "tugboat.dev/auto-rolled-back-from").is_some());
        let done = eventually(|| async {
            mark_ready_if_image(&pods, "busybox:1").await?;
            let d = deployments.get("web").await?;
            Ok(rollout_done(&d).then_some(d))
        })
        .await?;
        assert_eq!(annotation(&done.metadata, "deployment.kubernetes.io/revision").as_deref(), Some("3"));
        let recorded = events.list(&ListParams::default()).await?.items;
        let rollback = recorded
            .iter()
            .find(|e| e.reason.as_deref() == Some("DeploymentRollback"))
            .context("no DeploymentRollback event")?;
        assert!(rollback.message.as_deref().unwrap_or("").contains("to revision 1"), "{rollback:?}");
        Ok(())
    })
    .await
}

/// Plays a kubelet whose `image` containers keep crashing: their pods show the container
/// waiting in CrashLoopBackOff after `restarts` restarts.
async fn crash_loop_if_image(pods: &Api<Pod>, image: &str, restarts: i32) -> anyhow::Result<()> {
    for pod in pods.list(&ListParams::default()).await?.items {
        let runs_image = pod.spec.as_ref().is_some_and(|s| {
            s.containers
                .iter()
                .all(|c| c.image.as_deref() == Some(image))
        });
        if !runs_image || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let name = pod.metadata.name.clone().unwrap_or_default();
        let patch = json!({ "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": "False" }],
            "containerStatuses": [{
                "name": "web", "image": image, "imageID": "", "ready": false,
                "restartCount": restarts,
                "state": { "waiting": { "reason": "CrashLoopBackOff",
                    "message": "back-off 40s restarting failed container" } }
            }]
        }});
        let _ = pods
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opted_in_crash_looping_rollout_rolls_back_before_its_deadline() -> anyhow::Result<()> {
    with_cluster(|client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let mut web = deployment(2, "busybox:1")?;
        web.metadata.annotations =
            Some([("tugboat.dev/auto-rollback".to_owned(), "true".to_owned())].into());
        // A deadline far away: only the crash loop can trigger the rollback in this test.
        if let Some(spec) = web.spec.as_mut() {
            spec.progress_deadline_seconds = Some(600);
        }
        deployments.create(&PostParams::default(), &web).await?;
        eventually(|| async {
            mark_ready_if_image(&pods, "busybox:1").await?;
            Ok(rollout_done(&deployments.get("web").await?).then_some(()))
        })
        .await?;

        let patch = json!({ "spec": { "template": { "spec": {
            "containers": [{ "name": "web", "image": "busybox:crasher" }] } } } });
        deployments
            .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        // Two restarts are not enough (the default threshold is three)...
        for _ in 0..10 {
            crash_loop_if_image(&pods, "busybox:crasher", 2).await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let d = deployments.get("web").await?;
        let image = d
            .spec
            .as_ref()
            .and_then(|s| s.template.spec.as_ref())
            .and_then(|s| s.containers[0].image.clone());
        assert_eq!(
            image.as_deref(),
            Some("busybox:crasher"),
            "no rollback below the threshold"
        );
        // ...three are.
        let rolled_back = eventually(|| async {
            crash_loop_if_image(&pods, "busybox:crasher", 3).await?;
            mark_ready_if_image(&pods, "busybox:1").await?;
            let d = deployments.get("web").await?;
            let image = d
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref())
                .and_then(|s| s.containers[0].image.clone());
            Ok((image.as_deref() == Some("busybox:1")).then_some(d))
        })
        .await?;
        assert!(annotation(&rolled_back.metadata, "tugboat.dev/auto-rolled-back-from").is_some());
        let condition = eventually(|| async {
            let d = deployments.get("web").await?;
            Ok(d.status
                .and_then(|s| s.conditions)
                .and_then(|c| c.into_iter().find(|c| c.type_ == "AutoRolledBack")))
        })
        .await?;
        assert_eq!(condition.reason.as_deref(), Some("CrashLoopBackOff"));
        assert!(
            condition
                .message
                .as_deref()
                .unwrap_or("")
                .contains("crash-looping"),
            "{condition:?}"
        );
        eventually(|| async {
            mark_ready_if_image(&pods, "busybox:1").await?;
            Ok(rollout_done(&deployments.get("web").await?).then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

/// The pods of app `web` as a watch sees them: name → (ready, terminating).
type PodView = BTreeMap<String, (bool, bool)>;

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_replica_rolling_update_at_25_percent_keeps_its_bounds_at_every_watch_event()
-> anyhow::Result<()> {
    use futures::StreamExt as _;
    use kube::runtime::watcher;
    with_cluster(|client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let mut web = deployment(10, "busybox:1")?;
        if let Some(spec) = web.spec.as_mut() {
            spec.strategy = Some(serde_json::from_value(json!({
                "type": "RollingUpdate",
                "rollingUpdate": { "maxSurge": "25%", "maxUnavailable": "25%" }
            }))?);
        }
        deployments.create(&PostParams::default(), &web).await?;
        eventually(|| async {
            mark_pods_ready(&pods).await?;
            Ok(rollout_done(&deployments.get("web").await?).then_some(()))
        })
        .await?;

        // Upstream rounding: maxSurge 25 % of 10 rounds up to 3, maxUnavailable down to 2.
        let (max_pods, min_ready) = (13usize, 8usize);
        let stop = CancellationToken::new();
        let watched = {
            let pods = pods.clone();
            let stop = stop.clone();
            async move {
                let mut view = PodView::new();
                let mut events = 0usize;
                // Between Init and InitDone the watch (re)lists: the view is incomplete.
                let mut listing = true;
                let mut stream = std::pin::pin!(watcher(pods, watcher::Config::default().labels("app=web")));
                loop {
                    let event = tokio::select! {
                        () = stop.cancelled() => return Ok::<_, anyhow::Error>(events),
                        event = stream.next() => event,
                    };
                    let Some(event) = event else { bail!("the watch ended") };
                    match event? {
                        watcher::Event::Apply(pod) | watcher::Event::InitApply(pod) => {
                            let name = pod.metadata.name.clone().unwrap_or_default();
                            view.insert(name, (pod_ready(&pod), pod.metadata.deletion_timestamp.is_some()));
                        }
                        watcher::Event::Delete(pod) => {
                            view.remove(&pod.metadata.name.clone().unwrap_or_default());
                        }
                        watcher::Event::Init => {
                            view.clear();
                            listing = true;
                        }
                        watcher::Event::InitDone => listing = false,
                    }
                    events += 1;
                    if listing {
                        continue;
                    }
                    let live = view.values().filter(|(_, terminating)| !terminating).count();
                    let ready = view.values().filter(|(ready, terminating)| *ready && !terminating).count();
                    if live > max_pods {
                        bail!("{live} pods at once, more than replicas + maxSurge = {max_pods}: {view:?}");
                    }
                    if ready < min_ready {
                        bail!("{ready} ready pods, fewer than replicas - maxUnavailable = {min_ready}: {view:?}");
                    }
                }
            }
        };
        let rollout = async {
            // Let the watch list the ten ready pods first.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let patch = json!({ "spec": { "template": { "spec": {
                "containers": [{ "name": "web", "image": "busybox:2" }] } } } });
            deployments
                .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            eventually(|| async {
                // The simulated kubelet readies pods a few at a time, as real ones would.
                tokio::time::sleep(Duration::from_millis(100)).await;
                mark_pods_ready(&pods).await?;
                Ok(rollout_done(&deployments.get("web").await?).then_some(()))
            })
            .await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            stop.cancel();
            Ok::<_, anyhow::Error>(())
        };
        let (events, done) = tokio::join!(watched, rollout);
        done?;
        let events = events?;
        assert!(events > 20, "the watch saw the rollout ({events} events)");
        let new_pods = pods.list(&ListParams::default().labels("app=web")).await?.items;
        assert_eq!(new_pods.len(), 10);
        assert!(new_pods.iter().all(|p| p.spec.as_ref().is_some_and(|s| s.containers[0].image.as_deref() == Some("busybox:2"))));
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_mid_rollout_rolls_over_to_the_newest_template() -> anyhow::Result<()> {
    with_cluster(|client| async move {
        let deployments: Api<Deployment> = Api::namespaced(client.clone(), NAMESPACE);
        let sets: Api<ReplicaSet> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        deployments
            .create(&PostParams::default(), &deployment(4, "busybox:1")?)
            .await?;
        eventually(|| async {
            mark_pods_ready(&pods).await?;
            Ok(rollout_done(&deployments.get("web").await?).then_some(()))
        })
        .await?;

        // v2 never becomes ready, so its rollout is still going when v3 arrives.
        let image = |tag: &str| {
            json!({ "spec": { "template": { "spec": {
            "containers": [{ "name": "web", "image": format!("busybox:{tag}") }] } } } })
        };
        deployments
            .patch("web", &PatchParams::default(), &Patch::Merge(&image("2")))
            .await?;
        eventually(|| async {
            let v2 = pods
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter(|p| {
                    p.spec
                        .as_ref()
                        .is_some_and(|s| s.containers[0].image.as_deref() == Some("busybox:2"))
                })
                .count();
            Ok((v2 > 0).then_some(()))
        })
        .await?;
        deployments
            .patch("web", &PatchParams::default(), &Patch::Merge(&image("3")))
            .await?;
        let done = eventually(|| async {
            mark_ready_where(&pods, |p| {
                p.spec
                    .as_ref()
                    .is_some_and(|s| s.containers[0].image.as_deref() != Some("busybox:2"))
            })
            .await?;
            let d = deployments.get("web").await?;
            Ok(rollout_done(&d).then_some(d))
        })
        .await?;
        assert_eq!(
            annotation(&done.metadata, "deployment.kubernetes.io/revision").as_deref(),
            Some("3")
        );
        // The half-done v2 set is scaled to zero, not finished first.
        let all = sets.list(&ListParams::default()).await?.items;
        assert_eq!(all.len(), 3);
        for rs in &all {
            let image = rs
                .spec
                .as_ref()
                .and_then(|s| s.template.as_ref())
                .and_then(|t| t.spec.as_ref())
                .and_then(|s| s.containers[0].image.clone())
                .unwrap_or_default();
            let replicas = rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
            assert_eq!(
                replicas,
                if image == "busybox:3" { 4 } else { 0 },
                "{image}"
            );
        }
        eventually(|| async {
            let images: Vec<String> = pods
                .list(&ListParams::default())
                .await?
                .items
                .into_iter()
                .filter_map(|p| p.spec.and_then(|s| s.containers[0].image.clone()))
                .collect();
            Ok((images.len() == 4 && images.iter().all(|i| i == "busybox:3")).then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_events_are_aggregated_into_one_with_a_count() -> anyhow::Result<()> {
    use k8s_openapi::api::core::v1::{ConfigMap, Event};
    use tugboat_controllers::framework::events::{EventType, record};
    with_cluster(|client| async move {
        let maps: Api<ConfigMap> = Api::namespaced(client.clone(), NAMESPACE);
        let events: Api<Event> = Api::namespaced(client.clone(), NAMESPACE);
        let subject: ConfigMap =
            serde_json::from_value(json!({ "metadata": { "name": "subject" } }))?;
        let subject = maps.create(&PostParams::default(), &subject).await?;
        for _ in 0..3 {
            record(
                &client,
                "test-controller",
                &subject,
                EventType::Warning,
                "FailedSync",
                "boom",
            )
            .await;
        }
        record(
            &client,
            "test-controller",
            &subject,
            EventType::Warning,
            "FailedSync",
            "other",
        )
        .await;
        let about: Vec<Event> = events
            .list(&ListParams::default().fields("involvedObject.name=subject"))
            .await?
            .items;
        let mut seen: Vec<(String, i32)> = about
            .iter()
            .map(|e| (e.message.clone().unwrap_or_default(), e.count.unwrap_or(0)))
            .collect();
        seen.sort();
        assert_eq!(seen, vec![("boom".to_owned(), 3), ("other".to_owned(), 1)]);
        let boom = about
            .iter()
            .find(|e| e.message.as_deref() == Some("boom"))
            .context("boom")?;
        assert!(boom.last_timestamp >= boom.first_timestamp);
        Ok(())
    })
    .await
}
