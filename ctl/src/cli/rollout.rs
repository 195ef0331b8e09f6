//! `tug rollout status|history|undo|restart|pause|resume` for deployments.
//!
//! `status` prints kubectl's lines, each followed by the live progress kubectl does not show
//! (updated / ready / available of desired; the new and old ReplicaSets), and on failure says
//! why: the pods of the new ReplicaSet that are not ready, their reasons and last events.

use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Map, Value, json};

use super::Ctx;
use super::client::with_query;
use super::describe::revision;
use super::discovery::Resource;
use super::edit::resolve_objects;
use super::print::{age, tabwrite};

/// Annotations `rollout undo` keeps from the Deployment rather than taking from the
/// ReplicaSet (kubectl's `annotationsToSkip`).
const ANNOTATIONS_TO_SKIP: &[&str] = &[
    super::apply::LAST_APPLIED,
    "deployment.kubernetes.io/revision",
    "deployment.kubernetes.io/revision-history",
    "deployment.kubernetes.io/desired-replicas",
    "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
];

/// `tug rollout ...`.
#[derive(Subcommand, Debug)]
pub enum RolloutCommand {
    /// Watch a rollout until it is done, with its live progress; on failure, say why.
    Status(StatusArgs),
    /// The revisions of a deployment.
    History(HistoryArgs),
    /// Roll back to the previous revision (or --to-revision).
    Undo(UndoArgs),
    /// Restart the pods (a new rollout of the same template).
    Restart(TargetArgs),
    /// Pause the rollout: template changes wait until resume.
    Pause(TargetArgs),
    /// Resume a paused rollout.
    Resume(TargetArgs),
}

/// `TYPE NAME` or `TYPE/NAME`.
#[derive(Args, Debug)]
pub struct TargetArgs {
    /// `deployment/web` or `deployment web`.
    #[arg(required = true)]
    pub target: Vec<String>,
}

/// `tug rollout status` flags.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// `deployment/web` or `deployment web`.
    #[arg(required = true)]
    pub target: Vec<String>,
    /// How long to wait (`0`: until the rollout ends or exceeds its progress deadline).
    #[arg(long, default_value = "0s", value_parser = crate::components::parse_duration)]
    pub timeout: Duration,
    /// Wait for the rollout to finish (`--watch=false`: print the status once).
    #[arg(short = 'w', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub watch: bool,
}

/// `tug rollout history` flags.
#[derive(Args, Debug)]
pub struct HistoryArgs {
    /// `deployment/web` or `deployment web`.
    #[arg(required = true)]
    pub target: Vec<String>,
    /// Show the pod template of this revision.
    #[arg(long)]
    pub revision: Option<i64>,
}

/// `tug rollout undo` flags.
#[derive(Args, Debug)]
pub struct UndoArgs {
    /// `deployment/web` or `deployment web`.
    #[arg(required = true)]
    pub target: Vec<String>,
    /// The revision to roll back to (0: the previous one).
    #[arg(long, default_value_t = 0)]
    pub to_revision: i64,
}

async fn deployment<'a>(ctx: &'a Ctx, target: &[String]) -> anyhow::Result<(&'a Resource, String)> {
    let (objects, rest) = resolve_objects(ctx, target, |_| true).await?;
    anyhow::ensure!(rest.is_empty(), "unexpected arguments: {rest:?}");
    let [(resource, name)] =
        <[_; 1]>::try_from(objects).map_err(|_| anyhow::anyhow!("give exactly one deployment"))?;
    anyhow::ensure!(
        resource.group == "apps" && resource.kind == "Deployment",
        "no rollout support for {} yet (only deployments)",
        resource.group_resource()
    );
    Ok((resource, name))
}

/// Run a `tug rollout` command.
pub async fn run(ctx: &Ctx, command: RolloutCommand) -> anyhow::Result<()> {
    match command {
        RolloutCommand::Status(args) => status(ctx, args).await,
        RolloutCommand::History(args) => history(ctx, args).await,
        RolloutCommand::Undo(args) => undo(ctx, args).await,
        RolloutCommand::Restart(args) => restart(ctx, args).await,
        RolloutCommand::Pause(args) => pause(ctx, args, true).await,
        RolloutCommand::Resume(args) => pause(ctx, args, false).await,
    }
}

fn s<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn num(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// kubectl's verdict (`DeploymentStatusViewer`): (done, message), or an error when the
/// deployment exceeded its progress deadline.
pub fn verdict(deployment: &Value) -> Result<(bool, String), String> {
    let name = s(deployment, "/metadata/name");
    if num(deployment, "/metadata/generation") > num(deployment, "/status/observedGeneration") {
        return Ok((
            false,
            "Waiting for deployment spec update to be observed...".into(),
        ));
    }
    let progressing = deployment
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|l| l.iter().find(|c| s(c, "/type") == "Progressing"));
    if progressing.is_some_and(|c| s(c, "/reason") == "ProgressDeadlineExceeded") {
        return Err(format!(
            "deployment {name:?} exceeded its progress deadline"
        ));
    }
    let desired = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let updated = num(deployment, "/status/updatedReplicas");
    let replicas = num(deployment, "/status/replicas");
    let available = num(deployment, "/status/availableReplicas");
    if updated < desired {
        return Ok((
            false,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {updated} out of {desired} new replicas have been updated..."
            ),
        ));
    }
    if replicas > updated {
        return Ok((
            false,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
        ));
    }
    if available < updated {
        return Ok((
            false,
            format!(
                "Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        ));
    }
    Ok((true, format!("deployment {name:?} successfully rolled out")))
}

async fn replica_sets(ctx: &Ctx, deployment: &Value) -> anyhow::Result<Vec<Value>> {
    let namespace = s(deployment, "/metadata/namespace");
    let labels: Vec<String> = deployment
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    let list = ctx
        .get(&with_query(
            &format!("/apis/apps/v1/namespaces/{namespace}/replicasets"),
            &[("labelSelector", &labels.join(","))],
        ))
        .await?;
    let uid = s(deployment, "/metadata/uid");
    let mut sets: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|rs| {
            rs.pointer("/metadata/ownerReferences")
                .and_then(Value::as_array)
                .is_some_and(|l| l.iter().any(|o| s(o, "/uid") == uid))
        })
        .cloned()
        .collect();
    sets.sort_by_key(revision);
    Ok(sets)
}

/// The line of live progress printed under kubectl's.
fn progress(deployment: &Value, sets: &[Value]) -> String {
    let desired = deployment
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let current = revision(deployment);
    let mut line = format!(
        "  {desired} desired | {} updated | {} ready | {} available",
        num(deployment, "/status/updatedReplicas"),
        num(deployment, "/status/readyReplicas"),
        num(deployment, "/status/availableReplicas")
    );
    let describe = |rs: &Value| {
        format!(
            "{} (revision {}): {} pods, {} ready",
            s(rs, "/metadata/name"),
            revision(rs),
            num(rs, "/status/replicas"),
            num(rs, "/status/readyReplicas")
        )
    };
    if let Some(new) = sets.iter().find(|rs| revision(rs) == current) {
        line.push_str(&format!("; new {}", describe(new)));
    }
    let old: Vec<String> = sets
        .iter()
        .filter(|rs| revision(rs) != current && num(rs, "/status/replicas") > 0)
        .map(describe)
        .collect();
    if !old.is_empty() {
        line.push_str(&format!("; old {}", old.join(", ")));
    }
    line
}

async fn events_of(ctx: &Ctx, namespace: &str, kind: &str, name: &str) -> Vec<Value> {
    let selector = format!("involvedObject.kind={kind},involvedObject.name={name}");
    let Ok(list) = ctx
        .get(&with_query(
            &format!("/api/v1/namespaces/{namespace}/events"),
            &[("fieldSelector", &selector)],
        ))
        .await
    else {
        return Vec::new();
    };
    let mut items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let time = |e: &Value| {
        [
            "/lastTimestamp",
            "/eventTime",
            "/metadata/creationTimestamp",
        ]
        .into_iter()
        .map(|p| s(e, p).to_owned())
        .find(|t| !t.is_empty())
        .unwrap_or_default()
    };
    items.sort_by_key(time);
    let skip = items.len().saturating_sub(3);
    items
        .into_iter()
        .skip(skip)
        .map(|mut e| {
            let when = time(&e);
            e["__age"] = Value::String(age(Some(&when)));
            e
        })
        .collect()
}

/// Why a rollout is stuck: the new ReplicaSet's pods that are not ready, with their reasons and
/// last events (the ReplicaSet's own events when it has no pods).
async fn diagnose(ctx: &Ctx, deployment: &Value, sets: &[Value]) -> String {
    let namespace = s(deployment, "/metadata/namespace");
    let current = revision(deployment);
    let Some(new) = sets.iter().find(|rs| revision(rs) == current) else {
        return "  no ReplicaSet for the current revision yet\n".to_owned();
    };
    let rs_name = s(new, "/metadata/name");
    let mut text = String::new();
    let hash = s(new, "/metadata/labels/pod-template-hash");
    let pods = ctx
        .get(&with_query(
            &format!("/api/v1/namespaces/{namespace}/pods"),
            &[("labelSelector", &format!("pod-template-hash={hash}"))],
        ))
        .await
        .ok()
        .and_then(|l| l.get("items").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let ready = |pod: &Value| {
        pod.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|l| {
                l.iter()
                    .any(|c| s(c, "/type") == "Ready" && s(c, "/status") == "True")
            })
    };
    let failing: Vec<&Value> = pods.iter().filter(|p| !ready(p)).collect();
    if failing.is_empty() {
        text.push_str(&format!(
            "  ReplicaSet {rs_name} has {} of {} pods, all ready\n",
            pods.len(),
            num(new, "/spec/replicas")
        ));
        for event in events_of(ctx, namespace, "ReplicaSet", rs_name).await {
            text.push_str(&format!(
                "    {}\t{}\t{}\t{}\n",
                s(&event, "/type"),
                s(&event, "/reason"),
                s(&event, "/__age"),
                s(&event, "/message")
            ));
        }
        return tabwrite(&text, 0, 2);
    }
    text.push_str(&format!("  Pods of {rs_name} that are not ready:\n"));
    for pod in failing {
        let name = s(pod, "/metadata/name");
        let mut reasons = Vec::new();
        for status in pod
            .pointer("/status/containerStatuses")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let container = s(status, "/name");
            if let Some(waiting) = status.pointer("/state/waiting") {
                reasons.push(format!(
                    "container {container} waiting: {} {}",
                    s(waiting, "/reason"),
                    s(waiting, "/message")
                ));
            } else if let Some(done) = status.pointer("/state/terminated") {
                reasons.push(format!(
                    "container {container} terminated: {} (exit code {})",
                    s(done, "/reason"),
                    num(done, "/exitCode")
                ));
            } else if status.get("ready").and_then(Value::as_bool) != Some(true) {
                reasons.push(format!(
                    "container {container} running, not ready (readiness probe)"
                ));
            }
        }
        if reasons.is_empty() {
            let condition = pod
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|l| l.iter().find(|c| s(c, "/status") == "False"));
            reasons.push(match condition {
                Some(c) => format!(
                    "{} {}: {}",
                    s(c, "/type"),
                    s(c, "/reason"),
                    s(c, "/message")
                ),
                None => format!("phase {}", s(pod, "/status/phase")),
            });
        }
        text.push_str(&format!("    {name}: {}\n", reasons.join("; ").trim()));
        for event in events_of(ctx, namespace, "Pod", name).await {
            text.push_str(&format!(
                "      {}\t{}\t{}\t{}\n",
                s(&event, "/type"),
                s(&event, "/reason"),
                s(&event, "/__age"),
                s(&event, "/message")
            ));
        }
    }
    tabwrite(&text, 0, 2)
}

async fn status(ctx: &Ctx, args: StatusArgs) -> anyhow::Result<()> {
    let (resource, name) = deployment(ctx, &args.target).await?;
    let path = resource.object_path(&ctx.namespace, &name);
    wait_rollout(ctx, &path, &name, args.timeout, args.watch).await
}

/// Follow the rollout of the deployment at `path` until it is done (printing kubectl's lines
/// and the live progress), it exceeds its progress deadline, or `timeout` (0: none) passes;
/// `watch = false` prints the status once.
pub async fn wait_rollout(
    ctx: &Ctx,
    path: &str,
    name: &str,
    timeout: Duration,
    watch: bool,
) -> anyhow::Result<()> {
    let deadline = (!timeout.is_zero()).then(|| Instant::now() + timeout);
    let mut last = String::new();
    loop {
        let deployment = ctx.get(path).await?;
        let sets = replica_sets(ctx, &deployment).await?;
        match verdict(&deployment) {
            Err(failure) => {
                eprint!("{}", diagnose(ctx, &deployment, &sets).await);
                anyhow::bail!("{failure}");
            }
            Ok((true, message)) => {
                println!("{message}");
                return Ok(());
            }
            Ok((false, message)) => {
                let line = format!("{message}\n{}", progress(&deployment, &sets));
                if line != last {
                    println!("{line}");
                    last = line;
                }
                if !watch {
                    return Ok(());
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    eprint!("{}", diagnose(ctx, &deployment, &sets).await);
                    anyhow::bail!(
                        "timed out waiting for the rollout of deployment {name:?} after {timeout:?}"
                    );
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn history(ctx: &Ctx, args: HistoryArgs) -> anyhow::Result<()> {
    let (resource, name) = deployment(ctx, &args.target).await?;
    let deployment = ctx
        .get(&resource.object_path(&ctx.namespace, &name))
        .await?;
    let sets = replica_sets(ctx, &deployment).await?;
    if let Some(wanted) = args.revision {
        let rs = sets
            .iter()
            .find(|rs| revision(rs) == wanted)
            .ok_or_else(|| anyhow::anyhow!("unable to find the specified revision"))?;
        println!("{}/{name} with revision #{wanted}", resource.kind_group());
        let text = serde_yaml::to_string(rs.pointer("/spec/template").unwrap_or(&Value::Null))?;
        println!("Pod Template:");
        for line in text.lines() {
            println!("  {line}");
        }
        return Ok(());
    }
    if sets.is_empty() {
        println!("No rollout history found.");
        return Ok(());
    }
    println!("{}/{name} ", resource.kind_group());
    let mut rows = vec![vec!["REVISION".to_owned(), "CHANGE-CAUSE".to_owned()]];
    for rs in &sets {
        let cause = rs
            .pointer("/metadata/annotations")
            .and_then(|a| a.get("kubernetes.io/change-cause"))
            .and_then(Value::as_str)
            .unwrap_or("<none>");
        rows.push(vec![revision(rs).to_string(), cause.to_owned()]);
    }
    // kubectl's history printer: padding 2, a blank line after.
    let text: String = rows.iter().map(|r| format!("{}\n", r.join("\t"))).collect();
    print!("{}", tabwrite(&text, 0, 2));
    println!();
    Ok(())
}

fn without_hash(template: &Value) -> Value {
    let mut template = template.clone();
    if let Some(labels) = template
        .pointer_mut("/metadata/labels")
        .and_then(Value::as_object_mut)
    {
        labels.remove("pod-template-hash");
    }
    template
}

async fn undo(ctx: &Ctx, args: UndoArgs) -> anyhow::Result<()> {
    let (resource, name) = deployment(ctx, &args.target).await?;
    let path = resource.object_path(&ctx.namespace, &name);
    let deployment = ctx.get(&path).await?;
    if deployment.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        anyhow::bail!(
            "you cannot rollback a paused deployment; resume it first with 'tug rollout resume deployment/{name}' and try again"
        );
    }
    let sets = replica_sets(ctx, &deployment).await?;
    let target = if args.to_revision == 0 {
        let mut revisions: Vec<i64> = sets.iter().map(revision).collect();
        revisions.sort_unstable();
        revisions.dedup();
        let Some(previous) = revisions.len().checked_sub(2).map(|i| revisions[i]) else {
            anyhow::bail!("no rollout history found for deployment {name:?}");
        };
        previous
    } else {
        args.to_revision
    };
    let rs = sets
        .iter()
        .find(|rs| revision(rs) == target)
        .ok_or_else(|| anyhow::anyhow!("unable to find specified revision {target} in history"))?;
    let template = without_hash(rs.pointer("/spec/template").unwrap_or(&Value::Null));
    if template == without_hash(deployment.pointer("/spec/template").unwrap_or(&Value::Null)) {
        println!(
            "{}/{name} skipped rollback (current template already matches revision {target})",
            resource.kind_group()
        );
        return Ok(());
    }
    let mut annotations = Map::new();
    let current = deployment
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for key in ANNOTATIONS_TO_SKIP {
        if let Some(value) = current.get(*key) {
            annotations.insert((*key).to_owned(), value.clone());
        }
    }
    for (key, value) in rs
        .pointer("/metadata/annotations")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
    {
        if !ANNOTATIONS_TO_SKIP.contains(&key.as_str()) {
            annotations.insert(key.clone(), value.clone());
        }
    }
    let patch = json!([
        {"op": "replace", "path": "/spec/template", "value": template},
        {"op": "replace", "path": "/metadata/annotations", "value": annotations},
    ]);
    ctx.send(
        Method::PATCH,
        &with_query(&path, &[("fieldManager", "kubectl-rollout")]),
        "application/json-patch+json",
        &patch,
    )
    .await?;
    println!("{}/{name} rolled back", resource.kind_group());
    Ok(())
}

async fn restart(ctx: &Ctx, args: TargetArgs) -> anyhow::Result<()> {
    let (resource, name) = deployment(ctx, &args.target).await?;
    let path = resource.object_path(&ctx.namespace, &name);
    let deployment = ctx.get(&path).await?;
    if deployment.pointer("/spec/paused").and_then(Value::as_bool) == Some(true) {
        anyhow::bail!(
            "deployments.apps {name:?} can't restart paused deployment (run rollout resume first)"
        );
    }
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    ctx.send(
        Method::PATCH,
        &with_query(&path, &[("fieldManager", "kubectl-rollout")]),
        "application/strategic-merge-patch+json",
        &json!({"spec": {"template": {"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": now}}}}}),
    )
    .await?;
    println!("{}/{name} restarted", resource.kind_group());
    Ok(())
}

async fn pause(ctx: &Ctx, args: TargetArgs, paused: bool) -> anyhow::Result<()> {
    let (resource, name) = deployment(ctx, &args.target).await?;
    let path = resource.object_path(&ctx.namespace, &name);
    let deployment = ctx.get(&path).await?;
    let is_paused = deployment.pointer("/spec/paused").and_then(Value::as_bool) == Some(true);
    if is_paused == paused {
        anyhow::bail!(
            "{} {name:?} is {}",
            resource.group_resource(),
            if paused {
                "already paused"
            } else {
                "not paused"
            }
        );
    }
    ctx.send(
        Method::PATCH,
        &with_query(&path, &[("fieldManager", "kubectl-rollout")]),
        "application/strategic-merge-patch+json",
        &json!({"spec": {"paused": if paused { Value::Bool(true) } else { Value::Null }}}),
    )
    .await?;
    println!(
        "{}/{name} {}",
        resource.kind_group(),
        if paused { "paused" } else { "resumed" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_follow_kubectl() {
        let d = json!({"metadata": {"name": "web", "generation": 2},
            "spec": {"replicas": 3},
            "status": {"observedGeneration": 2, "updatedReplicas": 3, "replicas": 3, "availableReplicas": 1}});
        assert_eq!(
            verdict(&d),
            Ok((false, "Waiting for deployment \"web\" rollout to finish: 1 of 3 updated replicas are available...".into()))
        );
        let mut done = d.clone();
        done["status"]["availableReplicas"] = json!(3);
        assert_eq!(
            verdict(&done),
            Ok((true, "deployment \"web\" successfully rolled out".into()))
        );
        let mut stuck = d;
        stuck["status"]["conditions"] = json!([{"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"}]);
        assert_eq!(
            verdict(&stuck),
            Err("deployment \"web\" exceeded its progress deadline".into())
        );
    }
}
