//! Printers for the workload controllers: Deployments, ReplicaSets, ReplicationControllers,
//! DaemonSets, StatefulSets, ControllerRevisions, Jobs and CronJobs.

use serde_json::Value;

use super::object::*;
use super::*;
use crate::resources::split_api_version;
use crate::selector::{Selector, format_labels};

pub(super) const DEPLOYMENT_COLUMNS: &[Column] = &[
    NAME,
    column("Ready", "string", "Number of the pod with ready state"),
    column(
        "Up-to-date",
        "string",
        "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
    ),
    column(
        "Available",
        "string",
        "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

/// `spec.replicas`, which defaults to 1 for the workload kinds.
pub(super) fn desired_replicas(o: &Object<'_>) -> i64 {
    o.at("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

pub(super) fn deployment_cells(o: &Object<'_>) -> Vec<Value> {
    // Deployments print the selector's string form, not FormatLabelSelector.
    let selector = match o.label_selector("/spec/selector") {
        Some(selector) => match Selector::from_label_selector(Some(&selector)) {
            Ok(parsed) => parsed.to_string(),
            Err(_) => "<invalid>".to_owned(),
        },
        None => String::new(),
    };
    let [containers, images] = o.containers("/spec/template/spec/containers");
    vec![
        o.name(),
        Value::from(format!(
            "{}/{}",
            o.int("/status/readyReplicas"),
            desired_replicas(o)
        )),
        Value::from(o.int("/status/updatedReplicas")),
        Value::from(o.int("/status/availableReplicas")),
        o.age(),
        containers,
        images,
        Value::from(selector),
    ]
}

pub(super) const REPLICA_SET_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Desired",
        "integer",
        "Replicas is the number of desired replicas.",
    ),
    column(
        "Current",
        "integer",
        "Replicas is the most recently observed number of replicas.",
    ),
    column(
        "Ready",
        "integer",
        "The number of ready replicas for this replica set.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn replica_set_cells(o: &Object<'_>) -> Vec<Value> {
    let [containers, images] = o.containers("/spec/template/spec/containers");
    vec![
        o.name(),
        Value::from(desired_replicas(o)),
        Value::from(o.int("/status/replicas")),
        Value::from(o.int("/status/readyReplicas")),
        o.age(),
        containers,
        images,
        o.formatted_selector("/spec/selector"),
    ]
}

pub(super) fn replication_controller_cells(o: &Object<'_>) -> Vec<Value> {
    let [containers, images] = o.containers("/spec/template/spec/containers");
    vec![
        o.name(),
        Value::from(desired_replicas(o)),
        Value::from(o.int("/status/replicas")),
        Value::from(o.int("/status/readyReplicas")),
        o.age(),
        containers,
        images,
        Value::from(format_labels(&o.labels("/spec/selector"))),
    ]
}

pub(super) const DAEMON_SET_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Desired",
        "integer",
        "The total number of nodes that should be running the daemon pod.",
    ),
    column(
        "Current",
        "integer",
        "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
    ),
    column(
        "Ready",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and ready.",
    ),
    column(
        "Up-to-date",
        "integer",
        "The total number of nodes that are running updated daemon pod.",
    ),
    column(
        "Available",
        "integer",
        "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available.",
    ),
    column(
        "Node Selector",
        "string",
        "NodeSelector is a selector which must be true for the pod to fit on a node.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn daemon_set_cells(o: &Object<'_>) -> Vec<Value> {
    let [containers, images] = o.containers("/spec/template/spec/containers");
    vec![
        o.name(),
        Value::from(o.int("/status/desiredNumberScheduled")),
        Value::from(o.int("/status/currentNumberScheduled")),
        Value::from(o.int("/status/numberReady")),
        Value::from(o.int("/status/updatedNumberScheduled")),
        Value::from(o.int("/status/numberAvailable")),
        Value::from(format_labels(&o.labels("/spec/template/spec/nodeSelector"))),
        o.age(),
        containers,
        images,
        o.formatted_selector("/spec/selector"),
    ]
}

pub(super) const STATEFUL_SET_COLUMNS: &[Column] = &[
    NAME,
    column("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

pub(super) fn stateful_set_cells(o: &Object<'_>) -> Vec<Value> {
    let [containers, images] = o.containers("/spec/template/spec/containers");
    vec![
        o.name(),
        Value::from(format!(
            "{}/{}",
            o.int("/status/readyReplicas"),
            desired_replicas(o)
        )),
        o.age(),
        containers,
        images,
    ]
}

pub(super) const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    NAME,
    column("Controller", "string", "Controller of the object"),
    column(
        "Revision",
        "string",
        "Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];

pub(super) fn controller_revision_cells(o: &Object<'_>) -> Vec<Value> {
    let controller = o
        .list("/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map_or_else(
            || "<none>".to_owned(),
            |owner| {
                let (group, _) = split_api_version(text(owner, "/apiVersion"));
                let kind = text(owner, "/kind");
                let group_kind = if group.is_empty() {
                    kind.to_owned()
                } else {
                    format!("{kind}.{group}")
                };
                format!("{}/{}", group_kind.to_lowercase(), text(owner, "/name"))
            },
        );
    vec![
        o.name(),
        Value::from(controller),
        Value::from(o.int("/revision")),
        o.age(),
    ]
}

pub(super) const JOB_COLUMNS: &[Column] = &[
    NAME,
    column("Status", "string", "Status of the job."),
    column(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded.",
    ),
    column("Duration", "string", "Time required to complete the job."),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn job_cells(o: &Object<'_>) -> Vec<Value> {
    let succeeded = o.int("/status/succeeded");
    let completions = match o.at("/spec/completions").and_then(Value::as_i64) {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => {
            let parallelism = o.int("/spec/parallelism");
            if parallelism > 1 {
                format!("{succeeded}/1 of {parallelism}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let start = timestamp(o.value, "/status/startTime");
    let end = timestamp(o.value, "/status/completionTime");
    let duration = match (start, end) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(o.now.duration_since(start)),
        (Some(start), Some(end)) => human_duration(end.duration_since(start)),
    };
    let conditions = "/status/conditions";
    let status = if has_condition(o, conditions, "Complete") {
        "Complete"
    } else if has_condition(o, conditions, "Failed") {
        "Failed"
    } else if o.deleting() {
        "Terminating"
    } else if has_condition(o, conditions, "Suspended") {
        "Suspended"
    } else if has_condition(o, conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [containers, images] = o.containers("/spec/template/spec/containers");
    vec![
        o.name(),
        Value::from(status),
        Value::from(completions),
        Value::from(duration),
        o.age(),
        containers,
        images,
        o.formatted_selector("/spec/selector"),
    ]
}

pub(super) const CRON_JOB_COLUMNS: &[Column] = &[
    NAME,
    column("Schedule", "string", "The schedule in Cron format."),
    column(
        "Timezone",
        "string",
        "The time zone name for the given schedule.",
    ),
    column(
        "Suspend",
        "boolean",
        "This flag tells the controller to suspend subsequent executions.",
    ),
    column(
        "Active",
        "integer",
        "A list of pointers to currently running jobs.",
    ),
    column(
        "Last Schedule",
        "string",
        "Information when was the last time the job was successfully scheduled.",
    ),
    AGE,
    CONTAINERS,
    IMAGES,
    SELECTOR,
];

pub(super) fn cron_job_cells(o: &Object<'_>) -> Vec<Value> {
    let last_schedule = if o
        .at("/status/lastScheduleTime")
        .is_some_and(|v| !v.is_null())
    {
        o.since("/status/lastScheduleTime")
    } else {
        "<none>".to_owned()
    };
    // printBoolPtr: True/False, <unset> when absent.
    let suspend = match o.at("/spec/suspend").and_then(Value::as_bool) {
        Some(true) => "True",
        Some(false) => "False",
        None => "<unset>",
    };
    let [containers, images] = o.containers("/spec/jobTemplate/spec/template/spec/containers");
    vec![
        o.name(),
        Value::from(o.text("/spec/schedule")),
        or_none(o.text("/spec/timeZone")),
        Value::from(suspend),
        Value::from(o.list("/status/active").len()),
        Value::from(last_schedule),
        o.age(),
        containers,
        images,
        o.formatted_selector("/spec/jobTemplate/spec/selector"),
    ]
}
