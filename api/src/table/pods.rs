//! The pod printer: READY, STATUS and RESTARTS computed as `printPod` does.

use k8s_openapi::jiff::Timestamp;
use serde_json::Value;

use super::object::*;
use super::*;

pub(super) const POD_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Ready",
        "string",
        "The aggregate readiness state of this pod for accepting traffic.",
    ),
    column(
        "Status",
        "string",
        "The aggregate status of the containers in this pod.",
    ),
    column(
        "Restarts",
        "string",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    wide("IP", "string", "IP address allocated to the pod."),
    wide(
        "Node",
        "string",
        "NodeName is the node the pod is scheduled onto.",
    ),
    wide(
        "Nominated Node",
        "string",
        "The node the scheduler nominated for this pod when preempting.",
    ),
    wide(
        "Readiness Gates",
        "string",
        "Readiness gates that are true, of all the pod's readiness gates.",
    ),
];

/// What the READY, STATUS and RESTARTS columns of a pod are computed from.
pub(super) struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

/// `printPod`'s status logic: phase or reason, overridden by the first init container that
/// has not finished, then by the containers' waiting/terminated reasons, then by deletion.
pub(super) fn pod_summary(o: &Object<'_>) -> PodSummary {
    let phase = o.text("/status/phase");
    let mut reason = match o.text("/status/reason") {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    if o.list("/status/conditions")
        .iter()
        .any(|c| text(c, "/type") == "PodScheduled" && text(c, "/reason") == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }

    let init_containers = o.list("/spec/initContainers");
    let restartable = |name: &str| {
        init_containers
            .iter()
            .any(|c| text(c, "/name") == name && text(c, "/restartPolicy") == "Always")
    };
    let total = o.list("/spec/containers").len()
        + init_containers
            .iter()
            .filter(|c| text(c, "/restartPolicy") == "Always")
            .count();
    let mut ready = 0usize;
    let mut restarts = 0i64;
    let mut sidecar_restarts = 0i64;
    let mut last_restart: Option<Timestamp> = None;
    let mut last_sidecar_restart: Option<Timestamp> = None;
    let later = |a: Option<Timestamp>, b: Option<Timestamp>| match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };

    let mut initializing = false;
    let init_statuses = o.list("/status/initContainerStatuses");
    for (i, status) in init_statuses.iter().enumerate() {
        let count = int(status, "/restartCount");
        restarts += count;
        let finished = timestamp(status, "/lastState/terminated/finishedAt");
        last_restart = later(last_restart, finished);
        let is_sidecar = restartable(text(status, "/name"));
        if is_sidecar {
            sidecar_restarts += count;
            last_sidecar_restart = later(last_sidecar_restart, finished);
        }
        let terminated = status
            .pointer("/state/terminated")
            .filter(|v| v.is_object());
        let waiting_reason = text(status, "/state/waiting/reason");
        if terminated.is_some_and(|t| int(t, "/exitCode") == 0) {
            continue;
        }
        if is_sidecar && status.get("started").and_then(Value::as_bool) == Some(true) {
            if status.get("ready").and_then(Value::as_bool) == Some(true) {
                ready += 1;
            }
            continue;
        }
        if let Some(terminated) = terminated {
            reason = match text(terminated, "/reason") {
                "" if int(terminated, "/signal") != 0 => {
                    format!("Init:Signal:{}", int(terminated, "/signal"))
                }
                "" => format!("Init:ExitCode:{}", int(terminated, "/exitCode")),
                r => format!("Init:{r}"),
            };
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            reason = format!("Init:{waiting_reason}");
        } else {
            reason = format!("Init:{}/{}", i, init_containers.len());
        }
        initializing = true;
        break;
    }

    if !initializing || has_condition(o, "/status/conditions", "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for status in o.list("/status/containerStatuses").iter().rev() {
            restarts += int(status, "/restartCount");
            last_restart = later(
                last_restart,
                timestamp(status, "/lastState/terminated/finishedAt"),
            );
            let waiting_reason = text(status, "/state/waiting/reason");
            let terminated = status
                .pointer("/state/terminated")
                .filter(|v| v.is_object());
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if let Some(terminated) = terminated {
                reason = match text(terminated, "/reason") {
                    "" if int(terminated, "/signal") != 0 => {
                        format!("Signal:{}", int(terminated, "/signal"))
                    }
                    "" => format!("ExitCode:{}", int(terminated, "/exitCode")),
                    r => r.to_owned(),
                };
            } else if status.get("ready").and_then(Value::as_bool) == Some(true)
                && status
                    .pointer("/state/running")
                    .is_some_and(Value::is_object)
            {
                has_running = true;
                ready += 1;
            }
        }
        // A pod whose first container completed but another still runs is still running.
        if reason == "Completed" && has_running {
            reason = if has_condition(o, "/status/conditions", "Ready") {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }

    if o.deleting() && o.text("/status/reason") == "NodeLost" {
        reason = "Unknown".to_owned();
    } else if o.deleting() && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }
    PodSummary {
        ready,
        total,
        reason,
        restarts,
        last_restart,
    }
}

pub(super) fn pod_cells(o: &Object<'_>) -> Vec<Value> {
    let summary = pod_summary(o);
    let restarts_text = match summary.last_restart {
        Some(at) if summary.restarts != 0 => {
            format!("{} ({} ago)", summary.restarts, since(Some(at), o.now))
        }
        _ => summary.restarts.to_string(),
    };

    let pod_ip = o
        .list("/status/podIPs")
        .first()
        .map(|ip| text(ip, "/ip"))
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| o.text("/status/podIP"));
    let gates = o.list("/spec/readinessGates");
    let readiness_gates = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let conditions = o.list("/status/conditions");
        let true_count = gates
            .iter()
            .filter(|gate| {
                conditions
                    .iter()
                    .find(|c| text(c, "/type") == text(gate, "/conditionType"))
                    .is_some_and(|c| text(c, "/status") == "True")
            })
            .count();
        format!("{}/{}", true_count, gates.len())
    };

    vec![
        o.name(),
        Value::from(format!("{}/{}", summary.ready, summary.total)),
        Value::from(summary.reason),
        Value::from(restarts_text),
        o.age(),
        or_none(pod_ip),
        or_none(o.text("/spec/nodeName")),
        or_none(o.text("/status/nominatedNodeName")),
        Value::from(readiness_gates),
    ]
}

pub(super) fn pod_conditions(o: &Object<'_>) -> Vec<RowCondition> {
    let (reason, message) = match o.text("/status/phase") {
        "Succeeded" => ("Succeeded", "The pod has completed successfully."),
        "Failed" => ("Failed", "The pod failed."),
        _ => return Vec::new(),
    };
    vec![RowCondition {
        condition_type: "Completed".to_owned(),
        status: "True".to_owned(),
        reason: reason.to_owned(),
        message: message.to_owned(),
    }]
}
