//! Day-2 commands: `tug logs`, `tug top nodes|pods`, `tug autoscale`, `tug cordon|uncordon`.

use std::io::Write as _;

use clap::{Args, Subcommand};
use futures::AsyncBufReadExt as _;
use http::{Method, Request};
use serde_json::{Value, json};

use super::Ctx;
use super::client::{encode, with_query};
use super::edit::resolve_objects;
use super::print::print_columns;

/// `tug logs` flags.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// `POD`, `pod/POD` or `TYPE/NAME` (a deployment's or replica set's first pod).
    pub target: Option<String>,
    /// The container (default: the pod's only or first container).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Stream new lines as they come.
    #[arg(short = 'f', long)]
    pub follow: bool,
    /// The previous instance of the container.
    #[arg(short = 'p', long)]
    pub previous: bool,
    /// Only the last N lines (-1: all).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub tail: i64,
    /// Prefix each line with its time.
    #[arg(long)]
    pub timestamps: bool,
    /// Every pod matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

pub(super) async fn pods_of(ctx: &Ctx, target: &str) -> anyhow::Result<Vec<String>> {
    let Some((kind, name)) = target.split_once('/') else {
        return Ok(vec![target.to_owned()]);
    };
    let resource = ctx.resources().await?.resolve(kind)?;
    if resource.group.is_empty() && resource.kind == "Pod" {
        return Ok(vec![name.to_owned()]);
    }
    let object = ctx.get(&resource.object_path(&ctx.namespace, name)).await?;
    let labels: Vec<String> = object
        .pointer("/spec/selector/matchLabels")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    anyhow::ensure!(
        !labels.is_empty(),
        "cannot find the pods of {kind}/{name}: it has no selector"
    );
    let pods = list_pods(ctx, &labels.join(",")).await?;
    let first = pods
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no pods found for {kind}/{name}"))?;
    Ok(vec![first])
}

async fn list_pods(ctx: &Ctx, selector: &str) -> anyhow::Result<Vec<String>> {
    let list = ctx
        .get(&with_query(
            &format!("/api/v1/namespaces/{}/pods", ctx.namespace),
            &[("labelSelector", selector)],
        ))
        .await?;
    let mut names: Vec<String> = list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_owned)
        .collect();
    names.sort();
    Ok(names)
}

/// `tug logs`.
pub async fn logs(ctx: &Ctx, args: LogsArgs) -> anyhow::Result<()> {
    let pods = match (&args.target, &args.selector) {
        (Some(target), None) => pods_of(ctx, target).await?,
        (None, Some(selector)) => list_pods(ctx, selector).await?,
        _ => anyhow::bail!("give a pod (tug logs POD) or a selector (tug logs -l app=web)"),
    };
    if pods.is_empty() {
        eprintln!("No resources found in {} namespace.", ctx.namespace);
        return Ok(());
    }
    let tail = args.tail.to_string();
    for pod in pods {
        let path = with_query(
            &format!(
                "/api/v1/namespaces/{}/pods/{}/log",
                ctx.namespace,
                encode(&pod)
            ),
            &[
                ("container", args.container.as_deref().unwrap_or("")),
                ("follow", if args.follow { "true" } else { "" }),
                ("previous", if args.previous { "true" } else { "" }),
                ("tailLines", if args.tail >= 0 { &tail } else { "" }),
                ("timestamps", if args.timestamps { "true" } else { "" }),
            ],
        );
        let request = Request::builder()
            .method(Method::GET)
            .uri(&path)
            .header(http::header::ACCEPT, "*/*")
            .body(Vec::new())?;
        let stream = ctx
            .client
            .request_stream(request)
            .await
            .map_err(|e| ctx.map_error(e))?;
        let stream = std::pin::pin!(stream);
        let mut lines = stream.lines();
        let mut stdout = std::io::stdout();
        while let Some(line) = futures::StreamExt::next(&mut lines).await {
            let line = line?;
            writeln!(stdout, "{line}")?;
            stdout.flush()?;
        }
    }
    Ok(())
}

/// `tug top ...`.
#[derive(Subcommand, Debug)]
pub enum TopCommand {
    /// CPU and memory use of the nodes.
    #[command(alias = "node", alias = "no")]
    Nodes {
        /// Only this node.
        name: Option<String>,
    },
    /// CPU and memory use of the pods.
    #[command(alias = "pod", alias = "po")]
    Pods {
        /// Only this pod.
        name: Option<String>,
        /// All namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        /// Only pods matching this label selector.
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
}

/// CPU in millicores from a quantity (`250m`, `2`, `123456789n`, `5u`); 0 when it is none.
pub fn millicores(quantity: &str) -> f64 {
    nanos(quantity) / 1e6
}

/// Bytes from a quantity (`64Mi`, `1Gi`, `500k`, `1024`); 0 when it is none.
pub fn bytes(quantity: &str) -> f64 {
    nanos(quantity) / 1e9
}

/// The quantity in billionths, by the API server's own parser.
fn nanos(quantity: &str) -> f64 {
    tugboat_api::validation::quantity_nanos(quantity).map_or(0.0, |n| n as f64)
}

fn mib(bytes: f64) -> String {
    format!("{}Mi", (bytes / (1024.0 * 1024.0)) as i64)
}

fn s<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// `tug top`: the metrics API (`metrics.k8s.io/v1beta1`), printed as kubectl prints it.
pub async fn top(ctx: &Ctx, command: TopCommand) -> anyhow::Result<()> {
    match command {
        TopCommand::Nodes { name } => {
            let path = match &name {
                Some(name) => format!("/apis/metrics.k8s.io/v1beta1/nodes/{name}"),
                None => "/apis/metrics.k8s.io/v1beta1/nodes".to_owned(),
            };
            let metrics = ctx.get(&path).await.map_err(metrics_error)?;
            let items = match metrics.get("items").and_then(Value::as_array) {
                Some(items) => items.clone(),
                None => vec![metrics],
            };
            let mut rows = vec![
                ["NAME", "CPU(cores)", "CPU(%)", "MEMORY(bytes)", "MEMORY(%)"]
                    .map(str::to_owned)
                    .to_vec(),
            ];
            for item in &items {
                let node_name = s(item, "/metadata/name");
                let node = ctx
                    .get_opt(&format!("/api/v1/nodes/{node_name}"))
                    .await?
                    .unwrap_or(Value::Null);
                let cpu = millicores(s(item, "/usage/cpu"));
                let memory = bytes(s(item, "/usage/memory"));
                let cpu_total = millicores(s(&node, "/status/allocatable/cpu"));
                let memory_total = bytes(s(&node, "/status/allocatable/memory"));
                let percent = |used: f64, total: f64| {
                    if total > 0.0 {
                        format!("{}%", (used * 100.0 / total) as i64)
                    } else {
                        "<unknown>".to_owned()
                    }
                };
                rows.push(vec![
                    node_name.to_owned(),
                    format!("{}m", cpu as i64),
                    percent(cpu, cpu_total),
                    mib(memory),
                    percent(memory, memory_total),
                ]);
            }
            print_columns(&rows);
        }
        TopCommand::Pods {
            name,
            all_namespaces,
            selector,
        } => {
            let base = if all_namespaces {
                "/apis/metrics.k8s.io/v1beta1/pods".to_owned()
            } else {
                format!(
                    "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
                    ctx.namespace
                )
            };
            let path = match &name {
                Some(name) => format!("{base}/{name}"),
                None => with_query(
                    &base,
                    &[("labelSelector", selector.as_deref().unwrap_or(""))],
                ),
            };
            let metrics = ctx.get(&path).await.map_err(metrics_error)?;
            let items = match metrics.get("items").and_then(Value::as_array) {
                Some(items) => items.clone(),
                None => vec![metrics],
            };
            if items.is_empty() {
                eprintln!("No resources found in {} namespace.", ctx.namespace);
                return Ok(());
            }
            let mut rows = Vec::new();
            let mut header = vec!["NAME", "CPU(cores)", "MEMORY(bytes)"];
            if all_namespaces {
                header.insert(0, "NAMESPACE");
            }
            rows.push(header.into_iter().map(str::to_owned).collect::<Vec<_>>());
            for item in &items {
                let (mut cpu, mut memory) = (0.0, 0.0);
                for container in item
                    .get("containers")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    cpu += millicores(s(container, "/usage/cpu"));
                    memory += bytes(s(container, "/usage/memory"));
                }
                let mut row = vec![
                    s(item, "/metadata/name").to_owned(),
                    format!("{}m", cpu as i64),
                    mib(memory),
                ];
                if all_namespaces {
                    row.insert(0, s(item, "/metadata/namespace").to_owned());
                }
                rows.push(row);
            }
            print_columns(&rows);
        }
    }
    Ok(())
}

fn metrics_error(error: anyhow::Error) -> anyhow::Error {
    if super::client::is_not_found(&error)
        && error.to_string().contains("the server could not find")
    {
        anyhow::anyhow!("Metrics API not available")
    } else {
        error
    }
}

/// `tug autoscale` flags.
#[derive(Args, Debug)]
pub struct AutoscaleArgs {
    /// `deployment/web` or `deployment web`.
    #[arg(required = true)]
    pub target: Vec<String>,
    /// The lower limit of replicas (default 1).
    #[arg(long)]
    pub min: Option<i32>,
    /// The upper limit of replicas.
    #[arg(long)]
    pub max: i32,
    /// The target average CPU use, in percent of the requests.
    #[arg(long)]
    pub cpu_percent: Option<i32>,
    /// The autoscaler's name (default: the target's).
    #[arg(long)]
    pub name: Option<String>,
}

/// `tug autoscale`: an `autoscaling/v2` HorizontalPodAutoscaler for a scalable object.
pub async fn autoscale(ctx: &Ctx, args: AutoscaleArgs) -> anyhow::Result<()> {
    let (objects, rest) = resolve_objects(ctx, &args.target, |_| true).await?;
    anyhow::ensure!(rest.is_empty(), "unexpected arguments: {rest:?}");
    for (resource, name) in objects {
        anyhow::ensure!(
            resource.subresources.iter().any(|s| s == "scale"),
            "cannot autoscale {}: it has no scale subresource",
            resource.group_resource()
        );
        // Fails with NotFound when the target is missing, as kubectl does.
        ctx.get(&resource.object_path(&ctx.namespace, &name))
            .await?;
        let hpa_name = args.name.clone().unwrap_or_else(|| name.clone());
        let mut spec = json!({
            "scaleTargetRef": {"apiVersion": resource.api_version(), "kind": resource.kind, "name": name},
            "maxReplicas": args.max,
        });
        if let Some(min) = args.min {
            spec["minReplicas"] = json!(min);
        }
        if let Some(cpu) = args.cpu_percent {
            spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": cpu}}}]);
        }
        let hpa = json!({
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": hpa_name, "namespace": ctx.namespace},
            "spec": spec,
        });
        ctx.send(
            Method::POST,
            &with_query(
                &format!(
                    "/apis/autoscaling/v2/namespaces/{}/horizontalpodautoscalers",
                    ctx.namespace
                ),
                &[("fieldManager", "kubectl-autoscale")],
            ),
            "application/json",
            &hpa,
        )
        .await?;
        println!("horizontalpodautoscaler.autoscaling/{hpa_name} autoscaled");
    }
    Ok(())
}

/// `tug cordon` / `tug uncordon` flags.
#[derive(Args, Debug)]
pub struct CordonArgs {
    /// Node names.
    #[arg(required = true)]
    pub nodes: Vec<String>,
}

/// `tug cordon` (`unschedulable` = true) and `tug uncordon`.
pub async fn cordon(ctx: &Ctx, args: CordonArgs, unschedulable: bool) -> anyhow::Result<()> {
    let word = if unschedulable {
        "cordoned"
    } else {
        "uncordoned"
    };
    for node in args.nodes {
        let node = node.strip_prefix("node/").unwrap_or(&node).to_owned();
        let path = format!("/api/v1/nodes/{node}");
        let current = ctx.get(&path).await?;
        let now = current
            .pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        if now == unschedulable {
            println!("node/{node} already {word}");
            continue;
        }
        ctx.send(
            Method::PATCH,
            &path,
            "application/strategic-merge-patch+json",
            &json!({"spec": {"unschedulable": if unschedulable { Value::Bool(true) } else { Value::Null }}}),
        )
        .await?;
        println!("node/{node} {word}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        assert_eq!(millicores("250m"), 250.0);
        assert_eq!(millicores("2"), 2000.0);
        assert_eq!(millicores("1500000n"), 1.5);
        assert_eq!(bytes("64Mi"), 64.0 * 1024.0 * 1024.0);
        assert_eq!(bytes("1k"), 1000.0);
        assert_eq!(mib(bytes("67108864Ki")), "65536Mi");
        assert_eq!(bytes("1e3"), 1000.0);
        assert_eq!(millicores("not a quantity"), 0.0);
    }
}

/// `tug drain` flags.
#[derive(Args, Debug)]
pub struct DrainArgs {
    /// The node.
    pub node: String,
    /// Leave DaemonSet-managed pods alone instead of refusing.
    #[arg(long)]
    pub ignore_daemonsets: bool,
    /// Evict pods with emptyDir volumes too (their data is lost).
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Evict pods that no controller will recreate too.
    #[arg(long)]
    pub force: bool,
    /// How long to wait for the evicted pods to go (`0s`: 5 minutes).
    #[arg(long, default_value = "0s", value_parser = crate::components::parse_duration)]
    pub timeout: std::time::Duration,
}

/// `tug drain`: cordon, then evict every pod of the node through the eviction API (so
/// PodDisruptionBudgets are honoured, retrying on 429 as kubectl does), and wait until they
/// are gone.
pub async fn drain(ctx: &Ctx, args: DrainArgs) -> anyhow::Result<()> {
    use std::time::{Duration, Instant};
    let node = args
        .node
        .strip_prefix("node/")
        .unwrap_or(&args.node)
        .to_owned();
    cordon(
        ctx,
        CordonArgs {
            nodes: vec![node.clone()],
        },
        true,
    )
    .await?;
    let list = ctx
        .get(&with_query(
            "/api/v1/pods",
            &[(
                "fieldSelector",
                &format!("spec.nodeName={node},status.phase!=Succeeded,status.phase!=Failed"),
            )],
        ))
        .await?;
    let pods: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let id = |pod: &Value| {
        format!(
            "{}/{}",
            s(pod, "/metadata/namespace"),
            s(pod, "/metadata/name")
        )
    };
    let controller = |pod: &Value| {
        pod.pointer("/metadata/ownerReferences")
            .and_then(Value::as_array)
            .and_then(|l| {
                l.iter()
                    .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
            })
            .map(|o| s(o, "/kind").to_owned())
    };
    let (mut daemons, mut unmanaged, mut empty_dirs, mut evict) = (vec![], vec![], vec![], vec![]);
    for pod in &pods {
        if pod
            .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
            .is_some()
        {
            continue;
        }
        match controller(pod).as_deref() {
            Some("DaemonSet") => {
                daemons.push(id(pod));
                continue;
            }
            None => unmanaged.push(id(pod)),
            Some(_) => {}
        }
        let has_empty_dir = pod
            .pointer("/spec/volumes")
            .and_then(Value::as_array)
            .is_some_and(|l| l.iter().any(|v| v.get("emptyDir").is_some()));
        if has_empty_dir {
            empty_dirs.push(id(pod));
        }
        evict.push(pod.clone());
    }
    let mut problems = Vec::new();
    if !daemons.is_empty() && !args.ignore_daemonsets {
        problems.push(format!(
            "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): {}",
            daemons.join(", ")
        ));
    }
    if !unmanaged.is_empty() && !args.force {
        problems.push(format!(
            "cannot delete Pods that declare no controller (use --force to override): {}",
            unmanaged.join(", ")
        ));
    }
    if !empty_dirs.is_empty() && !args.delete_emptydir_data {
        problems.push(format!(
            "cannot delete Pods with local storage (use --delete-emptydir-data to override): {}",
            empty_dirs.join(", ")
        ));
    }
    if !problems.is_empty() {
        anyhow::bail!(
            "unable to drain node {node:?} due to error: [{}], continuing command...\nThere are pending nodes to be drained:\n {node}",
            problems.join(", ")
        );
    }
    if !daemons.is_empty() {
        eprintln!(
            "Warning: ignoring DaemonSet-managed Pods: {}",
            daemons.join(", ")
        );
    }
    let timeout = if args.timeout.is_zero() {
        Duration::from_secs(300)
    } else {
        args.timeout
    };
    let deadline = Instant::now() + timeout;
    for pod in &evict {
        let (namespace, name) = (s(pod, "/metadata/namespace"), s(pod, "/metadata/name"));
        println!("evicting pod {namespace}/{name}");
        let eviction = json!({
            "apiVersion": "policy/v1", "kind": "Eviction",
            "metadata": {"name": name, "namespace": namespace},
        });
        loop {
            match ctx
                .send(
                    Method::POST,
                    &format!("/api/v1/namespaces/{namespace}/pods/{name}/eviction"),
                    "application/json",
                    &eviction,
                )
                .await
            {
                Ok(_) => break,
                Err(error) if super::client::is_not_found(&error) => break,
                Err(error) if super::client::api_code(&error) == Some(429) => {
                    eprintln!(
                        "error when evicting pods/{name:?} -n {namespace:?} (will retry after 5s): {error}"
                    );
                    anyhow::ensure!(
                        Instant::now() < deadline,
                        "drain did not complete within {timeout:?}"
                    );
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
    for pod in &evict {
        let (namespace, name) = (s(pod, "/metadata/namespace"), s(pod, "/metadata/name"));
        let uid = s(pod, "/metadata/uid");
        loop {
            match ctx
                .get_opt(&format!("/api/v1/namespaces/{namespace}/pods/{name}"))
                .await?
            {
                Some(now) if s(&now, "/metadata/uid") == uid => {}
                _ => break,
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "drain did not complete within {timeout:?}: pod {namespace}/{name} is still there"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        println!("pod/{name} evicted");
    }
    println!("node/{node} drained");
    Ok(())
}
