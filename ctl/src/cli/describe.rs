//! `tug describe`: kubectl's describers for pods, deployments, replica sets, services, nodes
//! and namespaces (a generic one for the rest), each with its events.

use std::fmt::Write as _;

use clap::Args;
use serde_json::Value;

use super::client::with_query;
use super::discovery::Resource;
use super::print::{age, tabwrite};
use super::{Ctx, Reported};

/// `tug describe` flags.
#[derive(Args, Debug)]
pub struct DescribeArgs {
    /// `TYPE [NAME...]` or `TYPE/NAME ...` (no name: every object of the type).
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Only objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
}

/// The text being built: tab-separated, aligned at the end like kubectl's describers.
#[derive(Default)]
struct Out(String);

impl Out {
    fn kv(&mut self, indent: &str, key: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{indent}{key}:\t{value}");
    }

    fn line(&mut self, text: impl std::fmt::Display) {
        let _ = writeln!(self.0, "{text}");
    }

    /// A key with one value per line (labels, annotations), `<none>` when empty.
    fn multi(&mut self, indent: &str, key: &str, values: &[String]) {
        match values.split_first() {
            None => self.kv(indent, key, "<none>"),
            Some((first, rest)) => {
                self.kv(indent, key, first);
                for value in rest {
                    let _ = writeln!(self.0, "{indent}\t{value}");
                }
            }
        }
    }
}

fn s<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn or_none(text: &str) -> String {
    if text.is_empty() {
        "<none>".to_owned()
    } else {
        text.to_owned()
    }
}

fn num(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn map_lines(value: Option<&Value>, sep: &str, skip: &[&str]) -> Vec<String> {
    value
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter(|(k, _)| !skip.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}{sep}{}", v.as_str().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// `Mon, 23 Nov 2026 18:00:00 +0000`, as kubectl prints times.
fn date(text: &str) -> String {
    text.parse::<k8s_openapi::jiff::Timestamp>()
        .map(|t| t.strftime("%a, %d %b %Y %H:%M:%S +0000").to_string())
        .unwrap_or_else(|_| or_none(text))
}

fn selector_text(selector: Option<&Value>) -> String {
    let Some(selector) = selector else {
        return "<none>".to_owned();
    };
    let mut parts = map_lines(selector.get("matchLabels"), "=", &[]);
    for expr in selector
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let values: Vec<&str> = expr
            .get("values")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let key = s(expr, "/key");
        parts.push(match s(expr, "/operator") {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            _ => format!("!{key}"),
        });
    }
    or_none(&parts.join(","))
}

fn metadata(out: &mut Out, object: &Value, namespaced: bool) {
    out.kv("", "Name", s(object, "/metadata/name"));
    if namespaced {
        out.kv("", "Namespace", s(object, "/metadata/namespace"));
    }
    out.multi(
        "",
        "Labels",
        &map_lines(object.pointer("/metadata/labels"), "=", &[]),
    );
    out.multi(
        "",
        "Annotations",
        &map_lines(
            object.pointer("/metadata/annotations"),
            ": ",
            &[super::apply::LAST_APPLIED],
        ),
    );
}

async fn events(ctx: &Ctx, out: &mut Out, object: &Value) -> anyhow::Result<()> {
    let namespace = s(object, "/metadata/namespace");
    let mut selector = format!("involvedObject.name={}", s(object, "/metadata/name"));
    if !namespace.is_empty() {
        let _ = write!(selector, ",involvedObject.namespace={namespace}");
    }
    let uid = s(object, "/metadata/uid");
    if !uid.is_empty() {
        let _ = write!(selector, ",involvedObject.uid={uid}");
    }
    let base = if namespace.is_empty() {
        "/api/v1/events".to_owned()
    } else {
        format!("/api/v1/namespaces/{namespace}/events")
    };
    let list = ctx
        .get(&with_query(&base, &[("fieldSelector", &selector)]))
        .await?;
    let mut items: Vec<Value> = list
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if items.is_empty() {
        out.kv("", "Events", "<none>");
        return Ok(());
    }
    items.sort_by_key(|e| event_time(e).to_owned());
    out.line("Events:");
    out.line("  Type\tReason\tAge\tFrom\tMessage");
    out.line("  ----\t------\t----\t----\t-------");
    for event in &items {
        let count = num(event, "/count");
        let last = age(Some(event_time(event)));
        let when = if count > 1 {
            let first = s(event, "/firstTimestamp");
            format!("{last} (x{count} over {})", age(Some(first)))
        } else {
            last
        };
        let from = [
            s(event, "/source/component"),
            s(event, "/reportingComponent"),
        ]
        .into_iter()
        .find(|f| !f.is_empty())
        .unwrap_or("");
        out.line(format!(
            "  {}\t{}\t{when}\t{from}\t{}",
            s(event, "/type"),
            s(event, "/reason"),
            s(event, "/message").trim()
        ));
    }
    Ok(())
}

fn event_time(event: &Value) -> &str {
    [
        "/lastTimestamp",
        "/eventTime",
        "/metadata/creationTimestamp",
    ]
    .into_iter()
    .map(|p| s(event, p))
    .find(|t| !t.is_empty())
    .unwrap_or("")
}

fn container_state(out: &mut Out, indent: &str, key: &str, state: Option<&Value>) {
    let Some(state) = state.and_then(Value::as_object) else {
        out.kv(indent, key, "Waiting");
        return;
    };
    if let Some(running) = state.get("running") {
        out.kv(indent, key, "Running");
        out.kv(
            &format!("{indent}  "),
            "Started",
            date(s(running, "/startedAt")),
        );
    } else if let Some(waiting) = state.get("waiting") {
        out.kv(indent, key, "Waiting");
        out.kv(
            &format!("{indent}  "),
            "Reason",
            or_none(s(waiting, "/reason")),
        );
    } else if let Some(done) = state.get("terminated") {
        out.kv(indent, key, "Terminated");
        out.kv(
            &format!("{indent}  "),
            "Reason",
            or_none(s(done, "/reason")),
        );
        out.kv(&format!("{indent}  "), "Exit Code", num(done, "/exitCode"));
    } else {
        out.kv(indent, key, "Waiting");
    }
}

fn containers(out: &mut Out, indent: &str, spec: &Value, statuses: Option<&Value>) {
    for (field, title) in [
        ("initContainers", "Init Containers"),
        ("containers", "Containers"),
    ] {
        let Some(list) = spec.get(field).and_then(Value::as_array) else {
            continue;
        };
        out.line(format!("{indent}{title}:"));
        for container in list {
            let name = s(container, "/name");
            out.line(format!("{indent}  {name}:"));
            let inner = format!("{indent}    ");
            let status = statuses
                .and_then(Value::as_array)
                .and_then(|l| l.iter().find(|c| s(c, "/name") == name));
            if let Some(status) = status {
                out.kv(&inner, "Container ID", s(status, "/containerID"));
            }
            out.kv(&inner, "Image", s(container, "/image"));
            let ports: Vec<String> = container
                .get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        num(p, "/containerPort"),
                        p.get("protocol").and_then(Value::as_str).unwrap_or("TCP")
                    )
                })
                .collect();
            out.kv(&inner, "Port", or_none(&ports.join(", ")));
            if let Some(command) = container.get("command").and_then(Value::as_array) {
                out.line(format!("{inner}Command:"));
                for part in command {
                    out.line(format!("{inner}  {}", part.as_str().unwrap_or_default()));
                }
            }
            if let Some(status) = status {
                container_state(out, &inner, "State", status.get("state"));
                if status
                    .get("lastState")
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
                {
                    container_state(out, &inner, "Last State", status.get("lastState"));
                }
                out.kv(
                    &inner,
                    "Ready",
                    if status.get("ready").and_then(Value::as_bool) == Some(true) {
                        "True"
                    } else {
                        "False"
                    },
                );
                out.kv(&inner, "Restart Count", num(status, "/restartCount"));
            }
            for (key, field) in [("Limits", "limits"), ("Requests", "requests")] {
                if let Some(values) = container
                    .pointer(&format!("/resources/{field}"))
                    .and_then(Value::as_object)
                {
                    out.line(format!("{inner}{key}:"));
                    for (k, v) in values {
                        out.kv(&format!("{inner}  "), k, v.as_str().unwrap_or_default());
                    }
                }
            }
            let env: Vec<String> = container
                .get("env")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|e| {
                    let value = e
                        .get("value")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| "(from a source)".to_owned());
                    format!("{}:\t{value}", s(e, "/name"))
                })
                .collect();
            if env.is_empty() {
                out.kv(&inner, "Environment", "<none>");
            } else {
                out.line(format!("{inner}Environment:"));
                for line in env {
                    out.line(format!("{inner}  {line}"));
                }
            }
        }
    }
}

fn conditions(out: &mut Out, object: &Value, reasons: bool) {
    let Some(list) = object
        .pointer("/status/conditions")
        .and_then(Value::as_array)
    else {
        return;
    };
    out.line("Conditions:");
    if reasons {
        out.line("  Type\tStatus\tReason");
        out.line("  ----\t------\t------");
    } else {
        out.line("  Type\tStatus");
    }
    for condition in list {
        if reasons {
            out.line(format!(
                "  {}\t{}\t{}",
                s(condition, "/type"),
                s(condition, "/status"),
                s(condition, "/reason")
            ));
        } else {
            out.line(format!(
                "  {}\t{}",
                s(condition, "/type"),
                s(condition, "/status")
            ));
        }
    }
}

fn owner(object: &Value) -> Option<String> {
    object
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .and_then(|l| {
            l.iter()
                .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        })
        .map(|o| format!("{}/{}", s(o, "/kind"), s(o, "/name")))
}

fn describe_pod(out: &mut Out, pod: &Value) {
    metadata(out, pod, true);
    out.kv("", "Priority", num(pod, "/spec/priority"));
    out.kv(
        "",
        "Service Account",
        or_none(s(pod, "/spec/serviceAccountName")),
    );
    let node = s(pod, "/spec/nodeName");
    let host = s(pod, "/status/hostIP");
    out.kv(
        "",
        "Node",
        if node.is_empty() {
            "<none>".to_owned()
        } else if host.is_empty() {
            node.to_owned()
        } else {
            format!("{node}/{host}")
        },
    );
    out.kv("", "Start Time", date(s(pod, "/status/startTime")));
    let phase = s(pod, "/status/phase");
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        out.kv("", "Status", "Terminating");
    } else {
        out.kv("", "Status", or_none(phase));
    }
    let reason = s(pod, "/status/reason");
    if !reason.is_empty() {
        out.kv("", "Reason", reason);
        out.kv("", "Message", s(pod, "/status/message"));
    }
    out.kv("", "IP", s(pod, "/status/podIP"));
    if let Some(owner) = owner(pod) {
        out.kv("", "Controlled By", owner);
    }
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    containers(out, "", &spec, pod.pointer("/status/containerStatuses"));
    conditions(out, pod, false);
    out.kv("", "QoS Class", or_none(s(pod, "/status/qosClass")));
    out.multi(
        "",
        "Node-Selectors",
        &map_lines(pod.pointer("/spec/nodeSelector"), "=", &[]),
    );
}

fn strategy(out: &mut Out, object: &Value) {
    let kind = s(object, "/spec/strategy/type");
    out.kv("", "StrategyType", or_none(kind));
    out.kv("", "MinReadySeconds", num(object, "/spec/minReadySeconds"));
    if kind == "RollingUpdate" {
        let text = |p: &str| match object.pointer(p) {
            Some(Value::String(v)) => v.clone(),
            Some(v) => v.to_string(),
            None => "25%".to_owned(),
        };
        out.kv(
            "",
            "RollingUpdateStrategy",
            format!(
                "{} max unavailable, {} max surge",
                text("/spec/strategy/rollingUpdate/maxUnavailable"),
                text("/spec/strategy/rollingUpdate/maxSurge")
            ),
        );
    }
}

fn pod_template(out: &mut Out, object: &Value) {
    out.line("Pod Template:");
    let template = object
        .pointer("/spec/template")
        .cloned()
        .unwrap_or(Value::Null);
    out.multi(
        "  ",
        "Labels",
        &map_lines(template.pointer("/metadata/labels"), "=", &[]),
    );
    let annotations = map_lines(template.pointer("/metadata/annotations"), ": ", &[]);
    if !annotations.is_empty() {
        out.multi("  ", "Annotations", &annotations);
    }
    let spec = template.get("spec").cloned().unwrap_or(Value::Null);
    containers(out, "  ", &spec, None);
}

async fn owned_replica_sets(ctx: &Ctx, deployment: &Value) -> anyhow::Result<Vec<Value>> {
    let namespace = s(deployment, "/metadata/namespace");
    let selector = selector_text(deployment.pointer("/spec/selector"));
    let list = ctx
        .get(&with_query(
            &format!("/apis/apps/v1/namespaces/{namespace}/replicasets"),
            &[(
                "labelSelector",
                if selector == "<none>" { "" } else { &selector },
            )],
        ))
        .await?;
    let uid = s(deployment, "/metadata/uid");
    Ok(list
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
        .collect())
}

/// The revision of a ReplicaSet or Deployment (`deployment.kubernetes.io/revision`).
pub fn revision(object: &Value) -> i64 {
    object
        .pointer("/metadata/annotations")
        .and_then(|a| a.get("deployment.kubernetes.io/revision"))
        .and_then(Value::as_str)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

async fn describe_deployment(ctx: &Ctx, out: &mut Out, deployment: &Value) -> anyhow::Result<()> {
    out.kv("", "Name", s(deployment, "/metadata/name"));
    out.kv("", "Namespace", s(deployment, "/metadata/namespace"));
    out.kv(
        "",
        "CreationTimestamp",
        date(s(deployment, "/metadata/creationTimestamp")),
    );
    out.multi(
        "",
        "Labels",
        &map_lines(deployment.pointer("/metadata/labels"), "=", &[]),
    );
    out.multi(
        "",
        "Annotations",
        &map_lines(
            deployment.pointer("/metadata/annotations"),
            ": ",
            &[super::apply::LAST_APPLIED],
        ),
    );
    out.kv(
        "",
        "Selector",
        selector_text(deployment.pointer("/spec/selector")),
    );
    out.kv(
        "",
        "Replicas",
        format!(
            "{} desired | {} updated | {} total | {} available | {} unavailable",
            num(deployment, "/spec/replicas"),
            num(deployment, "/status/updatedReplicas"),
            num(deployment, "/status/replicas"),
            num(deployment, "/status/availableReplicas"),
            num(deployment, "/status/unavailableReplicas")
        ),
    );
    strategy(out, deployment);
    pod_template(out, deployment);
    conditions(out, deployment, true);
    let sets = owned_replica_sets(ctx, deployment).await?;
    let newest = revision(deployment);
    let describe = |rs: &Value| {
        format!(
            "{} ({}/{} replicas created)",
            s(rs, "/metadata/name"),
            num(rs, "/status/replicas"),
            num(rs, "/spec/replicas")
        )
    };
    let new: Vec<String> = sets
        .iter()
        .filter(|rs| revision(rs) == newest)
        .map(describe)
        .collect();
    let old: Vec<String> = sets
        .iter()
        .filter(|rs| revision(rs) != newest && num(rs, "/spec/replicas") > 0)
        .map(describe)
        .collect();
    out.kv("", "OldReplicaSets", or_none(&old.join(", ")));
    out.kv("", "NewReplicaSet", or_none(&new.join(", ")));
    Ok(())
}

fn describe_replica_set(out: &mut Out, rs: &Value) {
    metadata(out, rs, true);
    out.kv("", "Selector", selector_text(rs.pointer("/spec/selector")));
    if let Some(owner) = owner(rs) {
        out.kv("", "Controlled By", owner);
    }
    out.kv(
        "",
        "Replicas",
        format!(
            "{} current / {} desired",
            num(rs, "/status/replicas"),
            num(rs, "/spec/replicas")
        ),
    );
    out.kv(
        "",
        "Pods Status",
        format!(
            "{} Ready / {} Available",
            num(rs, "/status/readyReplicas"),
            num(rs, "/status/availableReplicas")
        ),
    );
    pod_template(out, rs);
    conditions(out, rs, true);
}

async fn describe_service(ctx: &Ctx, out: &mut Out, service: &Value) -> anyhow::Result<()> {
    metadata(out, service, true);
    out.kv(
        "",
        "Selector",
        or_none(&map_lines(service.pointer("/spec/selector"), "=", &[]).join(",")),
    );
    out.kv("", "Type", s(service, "/spec/type"));
    let ips: Vec<&str> = service
        .pointer("/spec/clusterIPs")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    out.kv("", "IP", or_none(s(service, "/spec/clusterIP")));
    out.kv("", "IPs", or_none(&ips.join(",")));
    let namespace = s(service, "/metadata/namespace");
    let endpoints = ctx
        .get_opt(&format!(
            "/api/v1/namespaces/{namespace}/endpoints/{}",
            s(service, "/metadata/name")
        ))
        .await?
        .unwrap_or(Value::Null);
    for port in service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = s(port, "/name");
        let protocol = port
            .get("protocol")
            .and_then(Value::as_str)
            .unwrap_or("TCP");
        out.kv(
            "",
            "Port",
            format!(
                "{}  {}/{protocol}",
                if name.is_empty() { "<unset>" } else { name },
                num(port, "/port")
            ),
        );
        let target = match port.get("targetPort") {
            Some(Value::String(t)) => t.clone(),
            Some(t) => t.to_string(),
            None => num(port, "/port").to_string(),
        };
        out.kv("", "TargetPort", format!("{target}/{protocol}"));
        if port.get("nodePort").is_some() {
            out.kv(
                "",
                "NodePort",
                format!(
                    "{}  {}/{protocol}",
                    if name.is_empty() { "<unset>" } else { name },
                    num(port, "/nodePort")
                ),
            );
        }
        let mut addresses = Vec::new();
        for subset in endpoints
            .get("subsets")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let port_number = subset
                .get("ports")
                .and_then(Value::as_array)
                .and_then(|ports| ports.iter().find(|p| s(p, "/name") == name))
                .map(|p| num(p, "/port"));
            for address in subset
                .get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                addresses.push(match port_number {
                    Some(p) => format!("{}:{p}", s(address, "/ip")),
                    None => s(address, "/ip").to_owned(),
                });
            }
        }
        out.kv("", "Endpoints", addresses.join(","));
    }
    out.kv(
        "",
        "Session Affinity",
        or_none(s(service, "/spec/sessionAffinity")),
    );
    Ok(())
}

async fn describe_node(ctx: &Ctx, out: &mut Out, node: &Value) -> anyhow::Result<()> {
    metadata(out, node, false);
    out.kv(
        "",
        "CreationTimestamp",
        date(s(node, "/metadata/creationTimestamp")),
    );
    let taints: Vec<String> = node
        .pointer("/spec/taints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            let value = s(t, "/value");
            if value.is_empty() {
                format!("{}:{}", s(t, "/key"), s(t, "/effect"))
            } else {
                format!("{}={value}:{}", s(t, "/key"), s(t, "/effect"))
            }
        })
        .collect();
    out.multi("", "Taints", &taints);
    out.kv(
        "",
        "Unschedulable",
        node.pointer("/spec/unschedulable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    );
    if let Some(list) = node.pointer("/status/conditions").and_then(Value::as_array) {
        out.line("Conditions:");
        out.line("  Type\tStatus\tLastHeartbeatTime\tLastTransitionTime\tReason\tMessage");
        out.line("  ----\t------\t-----------------\t------------------\t------\t-------");
        for c in list {
            out.line(format!(
                "  {}\t{}\t{}\t{}\t{}\t{}",
                s(c, "/type"),
                s(c, "/status"),
                date(s(c, "/lastHeartbeatTime")),
                date(s(c, "/lastTransitionTime")),
                s(c, "/reason"),
                s(c, "/message")
            ));
        }
    }
    out.line("Addresses:");
    for address in node
        .pointer("/status/addresses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.kv("  ", s(address, "/type"), s(address, "/address"));
    }
    for (title, field) in [("Capacity", "capacity"), ("Allocatable", "allocatable")] {
        out.line(format!("{title}:"));
        for (k, v) in node
            .pointer(&format!("/status/{field}"))
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            out.kv("  ", k, v.as_str().unwrap_or_default());
        }
    }
    out.line("System Info:");
    for (key, field) in [
        ("Machine ID", "machineID"),
        ("Kernel Version", "kernelVersion"),
        ("OS Image", "osImage"),
        ("Operating System", "operatingSystem"),
        ("Architecture", "architecture"),
        ("Container Runtime Version", "containerRuntimeVersion"),
        ("Kubelet Version", "kubeletVersion"),
    ] {
        out.kv("  ", key, s(node, &format!("/status/nodeInfo/{field}")));
    }
    let name = s(node, "/metadata/name");
    let pods = ctx
        .get(&with_query(
            "/api/v1/pods",
            &[(
                "fieldSelector",
                &format!("spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed"),
            )],
        ))
        .await?;
    let pods: Vec<Value> = pods
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    out.kv(
        "",
        "Non-terminated Pods",
        format!("({} in total)", pods.len()),
    );
    if !pods.is_empty() {
        out.line("  Namespace\tName\tAge");
        out.line("  ---------\t----\t---");
        for pod in &pods {
            out.line(format!(
                "  {}\t{}\t{}",
                s(pod, "/metadata/namespace"),
                s(pod, "/metadata/name"),
                age(pod
                    .pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str))
            ));
        }
    }
    Ok(())
}

fn describe_namespace(out: &mut Out, namespace: &Value) {
    metadata(out, namespace, false);
    out.kv("", "Status", or_none(s(namespace, "/status/phase")));
}

/// Anything else: metadata, then the rest of the object as indented YAML.
fn describe_generic(out: &mut Out, object: &Value, namespaced: bool) {
    metadata(out, object, namespaced);
    if let Some(map) = object.as_object() {
        for (key, value) in map {
            if matches!(key.as_str(), "metadata" | "apiVersion" | "kind") {
                continue;
            }
            let yaml = serde_yaml::to_string(value).unwrap_or_default();
            if value.is_object() || value.is_array() {
                out.line(format!("{}:", capitalize(key)));
                for line in yaml.lines() {
                    out.line(format!("  {line}"));
                }
            } else {
                out.kv("", &capitalize(key), yaml.trim());
            }
        }
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// The description of one object, events included.
pub async fn describe_object(
    ctx: &Ctx,
    resource: &Resource,
    object: &Value,
) -> anyhow::Result<String> {
    let mut out = Out::default();
    match (resource.group.as_str(), resource.kind.as_str()) {
        ("", "Pod") => describe_pod(&mut out, object),
        ("apps", "Deployment") => describe_deployment(ctx, &mut out, object).await?,
        ("apps", "ReplicaSet") => describe_replica_set(&mut out, object),
        ("", "Service") => describe_service(ctx, &mut out, object).await?,
        ("", "Node") => describe_node(ctx, &mut out, object).await?,
        ("", "Namespace") => describe_namespace(&mut out, object),
        _ => describe_generic(&mut out, object, resource.namespaced),
    }
    events(ctx, &mut out, object).await?;
    Ok(tabwrite(&out.0, 0, 2))
}

/// `tug describe`.
pub async fn run(ctx: &Ctx, args: DescribeArgs) -> anyhow::Result<()> {
    let requests = super::get::parse_targets(ctx, &args.args, &[], false).await?;
    let mut failed = false;
    let mut first = true;
    for request in &requests {
        let resource = request.resource;
        let mut objects = Vec::new();
        if request.names.is_empty() {
            let list = ctx
                .get(&with_query(
                    &resource.collection_path(Some(&ctx.namespace)),
                    &[("labelSelector", args.selector.as_deref().unwrap_or(""))],
                ))
                .await?;
            objects.extend(
                list.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            );
            if objects.is_empty() {
                eprintln!("No resources found in {} namespace.", ctx.namespace);
            }
        } else {
            for name in &request.names {
                match ctx.get(&resource.object_path(&ctx.namespace, name)).await {
                    Ok(object) => objects.push(object),
                    Err(error) => {
                        failed = true;
                        super::report(&error);
                    }
                }
            }
        }
        for object in &objects {
            if !first {
                println!();
                println!();
            }
            first = false;
            print!("{}", describe_object(ctx, resource, object).await?);
        }
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}
