//! Server-side tables (`meta.k8s.io/v1 Table`): what `kubectl get` prints.
//!
//! kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
//! cells it gets back, so the columns and cell values here follow kube-apiserver's printers
//! (kubernetes `pkg/printers/internalversion/printers.go`, 1.32). Like the API server, every
//! row carries the `-o wide` cells too; kubectl hides columns with `priority > 0` unless
//! asked. Objects are read as JSON, so a printer never fails: missing fields print as
//! upstream prints zero values.

#![warn(missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ListMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::selector::{Selector, format_label_selector, format_labels};

/// Why a table request was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// `includeObject` is not `None`, `Metadata` or `Object`.
    #[error(
        "includeObject: Unsupported value: {0:?}: supported values: \"None\", \"Metadata\", \"Object\""
    )]
    InvalidIncludeObject(String),
}

/// How much of each object a row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (the server default).
    #[default]
    Metadata,
    /// The whole object (kubectl asks for it with `--sort-by`).
    Object,
}

impl FromStr for IncludeObject {
    type Err = TableError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "None" => Ok(Self::None),
            "Metadata" | "" => Ok(Self::Metadata),
            "Object" => Ok(Self::Object),
            other => Err(TableError::InvalidIncludeObject(other.to_owned())),
        }
    }
}

/// `meta.k8s.io/v1 Table`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Table {
    /// Always `Table`.
    pub kind: String,
    /// Always `meta.k8s.io/v1`.
    pub api_version: String,
    /// List metadata (`resourceVersion`, `continue`), filled in by the server.
    pub metadata: ListMeta,
    /// The columns; the server sends them only with the first watch event.
    pub column_definitions: Vec<ColumnDefinition>,
    /// One row per object.
    pub rows: Vec<TableRow>,
}

/// `TableColumnDefinition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnDefinition {
    /// Title-case name (`Up-to-date`); kubectl upper-cases it.
    pub name: String,
    /// OpenAPI type: `string`, `integer`, `boolean`, `date`.
    #[serde(rename = "type")]
    pub column_type: String,
    /// OpenAPI format; `name` for the object-name column.
    pub format: String,
    /// What the column shows.
    pub description: String,
    /// 0 for default columns, 1 for `-o wide` ones.
    pub priority: i32,
}

/// `TableRow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableRow {
    /// One cell per column definition.
    pub cells: Vec<Value>,
    /// Row conditions (`Completed` for finished pods).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<RowCondition>,
    /// The object, per [`IncludeObject`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object: Option<Value>,
}

/// `TableRowCondition`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RowCondition {
    /// `Completed`.
    #[serde(rename = "type")]
    pub condition_type: String,
    /// `True`.
    pub status: String,
    /// Machine-readable reason.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}

/// Builds a table of `objects` of `group`/`resource` (plural).
pub fn table<'a>(
    group: &str,
    resource: &str,
    objects: impl IntoIterator<Item = &'a Value>,
    now: Timestamp,
    include: IncludeObject,
) -> Table {
    Table {
        kind: "Table".to_owned(),
        api_version: "meta.k8s.io/v1".to_owned(),
        metadata: ListMeta::default(),
        column_definitions: column_definitions(group, resource),
        rows: objects
            .into_iter()
            .map(|object| row(group, resource, object, now, include))
            .collect(),
    }
}

/// The columns of `group`/`resource`.
pub fn column_definitions(group: &str, resource: &str) -> Vec<ColumnDefinition> {
    printer(group, resource)
        .columns
        .iter()
        .map(|c| ColumnDefinition {
            name: c.name.to_owned(),
            column_type: c.column_type.to_owned(),
            format: c.format.to_owned(),
            description: c.description.to_owned(),
            priority: c.priority,
        })
        .collect()
}

/// One row for `object` of `group`/`resource`, with ages relative to `now`.
pub fn row(
    group: &str,
    resource: &str,
    object: &Value,
    now: Timestamp,
    include: IncludeObject,
) -> TableRow {
    let printer = printer(group, resource);
    let object_view = Object { value: object, now };
    let cells = (printer.cells)(&object_view);
    debug_assert_eq!(cells.len(), printer.columns.len(), "{group}/{resource}");
    TableRow {
        cells,
        conditions: (printer.conditions)(&object_view),
        object: match include {
            IncludeObject::None => None,
            IncludeObject::Object => Some(object.clone()),
            IncludeObject::Metadata => Some(partial_object_metadata(object)),
        },
    }
}

/// `PartialObjectMetadata` for `object`: its metadata under `meta.k8s.io/v1`.
pub fn partial_object_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// Converts a wall-clock time to the [`Timestamp`] the printers take as `now` (jiff's own
/// conversion needs its `std` feature, which k8s-openapi does not enable). Times outside
/// jiff's range (beyond year 9999) clamp to the Unix epoch.
pub fn timestamp_of(time: SystemTime) -> Timestamp {
    let since_epoch = match time.duration_since(UNIX_EPOCH) {
        Ok(after) => SignedDuration::try_from(after).ok(),
        Err(before) => SignedDuration::try_from(before.duration()).ok().map(|d| -d),
    };
    since_epoch
        .and_then(|d| Timestamp::from_duration(d).ok())
        .unwrap_or(Timestamp::UNIX_EPOCH)
}

/// `duration.HumanDuration`: `5s`, `3m20s`, `15m`, `5h3m`, `2d3h`, `45d`, `2y30d`.
pub fn human_duration(duration: SignedDuration) -> String {
    let seconds = duration.as_secs();
    // Up to two seconds in the future counts as now (clock skew).
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{}h", hours / 24, h)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{}d", hours / 24 / 365, days)
        };
    }
    format!("{}y", hours / 24 / 365)
}

// === object access ===

/// An object being printed, with the time ages are measured against.
struct Object<'a> {
    value: &'a Value,
    now: Timestamp,
}

impl<'a> Object<'a> {
    fn at(&self, pointer: &str) -> Option<&'a Value> {
        self.value.pointer(pointer)
    }

    fn text(&self, pointer: &str) -> &'a str {
        text(self.value, pointer)
    }

    fn int(&self, pointer: &str) -> i64 {
        int(self.value, pointer)
    }

    fn list(&self, pointer: &str) -> &'a [Value] {
        list(self.value, pointer)
    }

    fn name(&self) -> Value {
        Value::from(self.text("/metadata/name"))
    }

    /// `translateTimestampSince(creationTimestamp)`.
    fn age(&self) -> Value {
        Value::from(self.since("/metadata/creationTimestamp"))
    }

    fn since(&self, pointer: &str) -> String {
        since(timestamp(self.value, pointer), self.now)
    }

    fn deleting(&self) -> bool {
        self.at("/metadata/deletionTimestamp")
            .is_some_and(|v| !v.is_null())
    }

    fn labels(&self, pointer: &str) -> BTreeMap<String, String> {
        string_map(self.value, pointer)
    }

    /// `layoutContainerCells`: container names and images, comma-separated.
    fn containers(&self, pointer: &str) -> [Value; 2] {
        let containers = self.list(pointer);
        let names: Vec<&str> = containers.iter().map(|c| text(c, "/name")).collect();
        let images: Vec<&str> = containers.iter().map(|c| text(c, "/image")).collect();
        [Value::from(names.join(",")), Value::from(images.join(","))]
    }

    fn label_selector(&self, pointer: &str) -> Option<LabelSelector> {
        self.at(pointer)
            .filter(|v| !v.is_null())
            .and_then(|v| serde_json::from_value(v.clone()).ok())
    }

    /// `metav1.FormatLabelSelector` of the selector at `pointer`.
    fn formatted_selector(&self, pointer: &str) -> Value {
        Value::from(format_label_selector(self.label_selector(pointer).as_ref()))
    }
}

fn text<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

fn int(value: &Value, pointer: &str) -> i64 {
    value.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

fn list<'a>(value: &'a Value, pointer: &str) -> &'a [Value] {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

fn string_map(value: &Value, pointer: &str) -> BTreeMap<String, String> {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .map(|map| {
            map.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

fn map_len(value: &Value, pointer: &str) -> usize {
    value
        .pointer(pointer)
        .and_then(Value::as_object)
        .map_or(0, serde_json::Map::len)
}

fn timestamp(value: &Value, pointer: &str) -> Option<Timestamp> {
    value.pointer(pointer)?.as_str()?.parse().ok()
}

/// `translateTimestampSince`: `<unknown>` for a missing time.
fn since(time: Option<Timestamp>, now: Timestamp) -> String {
    match time {
        Some(time) => human_duration(now.duration_since(time)),
        None => "<unknown>".to_owned(),
    }
}

fn or_none(s: &str) -> Value {
    Value::from(if s.is_empty() { "<none>" } else { s })
}

fn or_default(s: &str, default: &str) -> Value {
    Value::from(if s.is_empty() { default } else { s })
}

/// An IntOrString as Go's `String()` prints it.
fn int_or_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// "a,b,c + 2 more..." (or `<unset>` when empty).
fn list_with_more(items: &[String], max: usize) -> String {
    let shown = items
        .iter()
        .take(max)
        .cloned()
        .collect::<Vec<_>>()
        .join(",");
    if items.len() > max {
        format!("{} + {} more...", shown, items.len() - max)
    } else if shown.is_empty() {
        "<unset>".to_owned()
    } else {
        shown
    }
}

// === printers ===

struct Column {
    name: &'static str,
    column_type: &'static str,
    format: &'static str,
    priority: i32,
    description: &'static str,
}

const fn column(
    name: &'static str,
    column_type: &'static str,
    description: &'static str,
) -> Column {
    Column {
        name,
        column_type,
        format: "",
        priority: 0,
        description,
    }
}

const fn wide(name: &'static str, column_type: &'static str, description: &'static str) -> Column {
    Column {
        name,
        column_type,
        format: "",
        priority: 1,
        description,
    }
}

const NAME: Column = Column {
    name: "Name",
    column_type: "string",
    format: "name",
    priority: 0,
    description: "Name must be unique within a namespace.",
};
const AGE: Column = column(
    "Age",
    "string",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
);
const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);
const SELECTOR: Column = wide("Selector", "string", "The label selector of the object.");

type Cells = fn(&Object<'_>) -> Vec<Value>;
type Conditions = fn(&Object<'_>) -> Vec<RowCondition>;

struct Printer {
    columns: &'static [Column],
    cells: Cells,
    conditions: Conditions,
}

fn no_conditions(_: &Object<'_>) -> Vec<RowCondition> {
    Vec::new()
}

const fn printer_of(columns: &'static [Column], cells: Cells) -> Printer {
    Printer {
        columns,
        cells,
        conditions: no_conditions,
    }
}

fn printer(group: &str, resource: &str) -> Printer {
    match (group, resource) {
        ("", "pods") => Printer {
            columns: POD_COLUMNS,
            cells: pod_cells,
            conditions: pod_conditions,
        },
        ("apps", "deployments") => printer_of(DEPLOYMENT_COLUMNS, deployment_cells),
        ("apps", "replicasets") => printer_of(REPLICA_SET_COLUMNS, replica_set_cells),
        ("", "replicationcontrollers") => {
            printer_of(REPLICA_SET_COLUMNS, replication_controller_cells)
        }
        ("apps", "daemonsets") => printer_of(DAEMON_SET_COLUMNS, daemon_set_cells),
        ("apps", "statefulsets") => printer_of(STATEFUL_SET_COLUMNS, stateful_set_cells),
        ("apps", "controllerrevisions") => {
            printer_of(CONTROLLER_REVISION_COLUMNS, controller_revision_cells)
        }
        ("batch", "jobs") => printer_of(JOB_COLUMNS, job_cells),
        ("batch", "cronjobs") => printer_of(CRON_JOB_COLUMNS, cron_job_cells),
        ("", "services") => printer_of(SERVICE_COLUMNS, service_cells),
        ("", "nodes") => printer_of(NODE_COLUMNS, node_cells),
        ("", "namespaces") => printer_of(NAMESPACE_COLUMNS, namespace_cells),
        ("", "events") | ("events.k8s.io", "events") => printer_of(EVENT_COLUMNS, event_cells),
        ("", "configmaps") => printer_of(CONFIG_MAP_COLUMNS, config_map_cells),
        ("", "secrets") => printer_of(SECRET_COLUMNS, secret_cells),
        ("", "endpoints") => printer_of(ENDPOINTS_COLUMNS, endpoints_cells),
        ("", "serviceaccounts") => printer_of(SERVICE_ACCOUNT_COLUMNS, service_account_cells),
        ("", "persistentvolumes") => printer_of(PV_COLUMNS, pv_cells),
        ("", "persistentvolumeclaims") => printer_of(PVC_COLUMNS, pvc_cells),
        ("autoscaling", "horizontalpodautoscalers") => printer_of(HPA_COLUMNS, hpa_cells),
        ("coordination.k8s.io", "leases") => printer_of(LEASE_COLUMNS, lease_cells),
        ("discovery.k8s.io", "endpointslices") => {
            printer_of(ENDPOINT_SLICE_COLUMNS, endpoint_slice_cells)
        }
        ("policy", "poddisruptionbudgets") => printer_of(PDB_COLUMNS, pdb_cells),
        _ => printer_of(DEFAULT_COLUMNS, default_cells),
    }
}

// --- default ---

const DEFAULT_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Created At",
        "date",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
    ),
];

fn default_cells(o: &Object<'_>) -> Vec<Value> {
    // The default convertor prints the creation time as RFC 3339 in UTC.
    let created = timestamp(o.value, "/metadata/creationTimestamp")
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_default();
    vec![o.name(), Value::from(created)]
}

// --- pods ---

const POD_COLUMNS: &[Column] = &[
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

fn has_condition(o: &Object<'_>, conditions: &str, condition_type: &str) -> bool {
    o.list(conditions)
        .iter()
        .find(|c| text(c, "/type") == condition_type)
        .is_some_and(|c| text(c, "/status") == "True")
}

/// What the READY, STATUS and RESTARTS columns of a pod are computed from.
struct PodSummary {
    ready: usize,
    total: usize,
    reason: String,
    restarts: i64,
    last_restart: Option<Timestamp>,
}

/// `printPod`'s status logic: phase or reason, overridden by the first init container that
/// has not finished, then by the containers' waiting/terminated reasons, then by deletion.
fn pod_summary(o: &Object<'_>) -> PodSummary {
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

fn pod_cells(o: &Object<'_>) -> Vec<Value> {
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

fn pod_conditions(o: &Object<'_>) -> Vec<RowCondition> {
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

// --- workloads ---

const DEPLOYMENT_COLUMNS: &[Column] = &[
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
fn desired_replicas(o: &Object<'_>) -> i64 {
    o.at("/spec/replicas").and_then(Value::as_i64).unwrap_or(1)
}

fn deployment_cells(o: &Object<'_>) -> Vec<Value> {
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

const REPLICA_SET_COLUMNS: &[Column] = &[
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

fn replica_set_cells(o: &Object<'_>) -> Vec<Value> {
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

fn replication_controller_cells(o: &Object<'_>) -> Vec<Value> {
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

const DAEMON_SET_COLUMNS: &[Column] = &[
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

fn daemon_set_cells(o: &Object<'_>) -> Vec<Value> {
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

const STATEFUL_SET_COLUMNS: &[Column] = &[
    NAME,
    column("Ready", "string", "Number of the pod with ready state"),
    AGE,
    CONTAINERS,
    IMAGES,
];

fn stateful_set_cells(o: &Object<'_>) -> Vec<Value> {
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

const CONTROLLER_REVISION_COLUMNS: &[Column] = &[
    NAME,
    column("Controller", "string", "Controller of the object"),
    column(
        "Revision",
        "string",
        "Revision indicates the revision of the state represented by Data.",
    ),
    AGE,
];

fn controller_revision_cells(o: &Object<'_>) -> Vec<Value> {
    let controller = o
        .list("/metadata/ownerReferences")
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
        .map_or_else(
            || "<none>".to_owned(),
            |owner| {
                let group = text(owner, "/apiVersion")
                    .rsplit_once('/')
                    .map_or("", |(group, _)| group);
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

const JOB_COLUMNS: &[Column] = &[
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

fn job_cells(o: &Object<'_>) -> Vec<Value> {
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

const CRON_JOB_COLUMNS: &[Column] = &[
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

fn cron_job_cells(o: &Object<'_>) -> Vec<Value> {
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

// --- services and networking ---

const SERVICE_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Type",
        "string",
        "type determines how the Service is exposed.",
    ),
    column(
        "Cluster-IP",
        "string",
        "clusterIP is the IP address of the service.",
    ),
    column(
        "External-IP",
        "string",
        "externalIPs is a list of IP addresses for which nodes in the cluster will also accept traffic for this service.",
    ),
    column(
        "Port(s)",
        "string",
        "The list of ports that are exposed by this service.",
    ),
    AGE,
    wide(
        "Selector",
        "string",
        "Route service traffic to pods with label keys and values matching this selector.",
    ),
];

fn service_external_ip(o: &Object<'_>, service_type: &str) -> String {
    let external_ips: Vec<&str> = o
        .list("/spec/externalIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    match service_type {
        "ClusterIP" | "NodePort" => {
            if external_ips.is_empty() {
                "<none>".to_owned()
            } else {
                external_ips.join(",")
            }
        }
        "LoadBalancer" => {
            // A sorted set of ingress IPs (or host names).
            let ingress: BTreeSet<&str> = o
                .list("/status/loadBalancer/ingress")
                .iter()
                .map(|i| match text(i, "/ip") {
                    "" => text(i, "/hostname"),
                    ip => ip,
                })
                .filter(|s| !s.is_empty())
                .collect();
            let mut all: Vec<&str> = ingress.into_iter().collect();
            all.extend(external_ips);
            if all.is_empty() {
                "<pending>".to_owned()
            } else {
                all.join(",")
            }
        }
        "ExternalName" => o.text("/spec/externalName").to_owned(),
        _ => "<unknown>".to_owned(),
    }
}

fn service_cells(o: &Object<'_>) -> Vec<Value> {
    let service_type = match o.text("/spec/type") {
        "" => "ClusterIP",
        t => t,
    };
    let cluster_ip = o
        .list("/spec/clusterIPs")
        .first()
        .and_then(Value::as_str)
        .unwrap_or_else(|| o.text("/spec/clusterIP"));
    let ports: Vec<String> = o
        .list("/spec/ports")
        .iter()
        .map(|p| {
            let protocol = match text(p, "/protocol") {
                "" => "TCP",
                proto => proto,
            };
            let node_port = int(p, "/nodePort");
            if node_port > 0 {
                format!("{}:{}/{}", int(p, "/port"), node_port, protocol)
            } else {
                format!("{}/{}", int(p, "/port"), protocol)
            }
        })
        .collect();
    vec![
        o.name(),
        Value::from(service_type),
        or_none(cluster_ip),
        Value::from(service_external_ip(o, service_type)),
        or_none(&ports.join(",")),
        o.age(),
        Value::from(format_labels(&o.labels("/spec/selector"))),
    ]
}

const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
fn endpoints_cells(o: &Object<'_>) -> Vec<Value> {
    const MAX: usize = 3;
    let subsets = o.list("/subsets");
    let text_value = if subsets.is_empty() {
        "<none>".to_owned()
    } else {
        let mut shown: Vec<String> = Vec::new();
        let mut count = 0usize;
        for subset in subsets {
            let addresses = list(subset, "/addresses");
            let ports = list(subset, "/ports");
            if ports.is_empty() {
                count += addresses.len();
                for address in addresses {
                    if shown.len() < MAX {
                        shown.push(text(address, "/ip").to_owned());
                    }
                }
                continue;
            }
            for port in ports {
                count += addresses.len();
                for address in addresses {
                    if shown.len() < MAX {
                        shown.push(join_host_port(text(address, "/ip"), int(port, "/port")));
                    }
                }
            }
        }
        if count > MAX {
            format!("{} + {} more...", shown.join(","), count - MAX)
        } else {
            shown.join(",")
        }
    };
    vec![o.name(), Value::from(text_value), o.age()]
}

/// `net.JoinHostPort`: brackets around IPv6 addresses.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
    NAME,
    column(
        "AddressType",
        "string",
        "addressType specifies the type of address carried by this EndpointSlice.",
    ),
    column(
        "Ports",
        "string",
        "ports specifies the list of network ports exposed by each endpoint in this slice.",
    ),
    column(
        "Endpoints",
        "string",
        "endpoints is a list of unique endpoints in this slice.",
    ),
    AGE,
];

fn endpoint_slice_cells(o: &Object<'_>) -> Vec<Value> {
    let ports: Vec<String> = o
        .list("/ports")
        .iter()
        .map(|p| match p.get("port").and_then(Value::as_i64) {
            Some(port) => port.to_string(),
            None => match p.get("name").and_then(Value::as_str) {
                Some(name) => name.to_owned(),
                None => "*".to_owned(),
            },
        })
        .collect();
    let addresses: Vec<String> = o
        .list("/endpoints")
        .iter()
        .flat_map(|e| list(e, "/addresses"))
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    vec![
        o.name(),
        Value::from(o.text("/addressType")),
        Value::from(list_with_more(&ports, 3)),
        Value::from(list_with_more(&addresses, 3)),
        o.age(),
    ]
}

// --- cluster ---

const NODE_COLUMNS: &[Column] = &[
    NAME,
    column("Status", "string", "The status of the node"),
    column("Roles", "string", "The roles of the node"),
    AGE,
    column("Version", "string", "Kubelet Version reported by the node."),
    wide(
        "Internal-IP",
        "string",
        "List of addresses reachable to the node.",
    ),
    wide(
        "External-IP",
        "string",
        "List of addresses reachable to the node.",
    ),
    wide(
        "OS-Image",
        "string",
        "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
    ),
    wide(
        "Kernel-Version",
        "string",
        "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
    ),
    wide(
        "Container-Runtime",
        "string",
        "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2).",
    ),
];

fn node_address(o: &Object<'_>, address_type: &str) -> Value {
    Value::from(
        o.list("/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == address_type)
            .map_or("<none>", |a| text(a, "/address")),
    )
}

fn node_cells(o: &Object<'_>) -> Vec<Value> {
    let mut status: Vec<&str> = Vec::new();
    if let Some(ready) = o
        .list("/status/conditions")
        .iter()
        .rev()
        .find(|c| text(c, "/type") == "Ready")
    {
        status.push(if text(ready, "/status") == "True" {
            "Ready"
        } else {
            "NotReady"
        });
    } else {
        status.push("Unknown");
    }
    if o.at("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: BTreeSet<String> = BTreeSet::new();
    for (key, value) in o.labels("/metadata/labels") {
        if let Some(role) = key.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role.to_owned());
            }
        } else if key == "kubernetes.io/role" && !value.is_empty() {
            roles.insert(value);
        }
    }
    let roles = roles.into_iter().collect::<Vec<_>>().join(",");
    vec![
        o.name(),
        Value::from(status.join(",")),
        or_none(&roles),
        o.age(),
        Value::from(o.text("/status/nodeInfo/kubeletVersion")),
        node_address(o, "InternalIP"),
        node_address(o, "ExternalIP"),
        or_default(o.text("/status/nodeInfo/osImage"), "<unknown>"),
        or_default(o.text("/status/nodeInfo/kernelVersion"), "<unknown>"),
        or_default(
            o.text("/status/nodeInfo/containerRuntimeVersion"),
            "<unknown>",
        ),
    ]
}

const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    column("Status", "string", "The status of the namespace"),
    AGE,
];

fn namespace_cells(o: &Object<'_>) -> Vec<Value> {
    vec![o.name(), Value::from(o.text("/status/phase")), o.age()]
}

const EVENT_COLUMNS: &[Column] = &[
    column(
        "Last Seen",
        "string",
        "The time at which the most recent occurrence of this event was recorded.",
    ),
    column(
        "Type",
        "string",
        "Type of this event (Normal, Warning), new types could be added in the future",
    ),
    column(
        "Reason",
        "string",
        "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
    ),
    column("Object", "string", "The object that this event is about."),
    wide(
        "Subobject",
        "string",
        "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement.",
    ),
    wide("Source", "string", "The component reporting this event."),
    column(
        "Message",
        "string",
        "A human-readable description of the status of this operation.",
    ),
    wide(
        "First Seen",
        "string",
        "The time at which the event was first recorded.",
    ),
    wide(
        "Count",
        "string",
        "The number of times this event has occurred.",
    ),
    Column {
        name: "Name",
        column_type: "string",
        format: "name",
        priority: 1,
        description: "Name must be unique within a namespace.",
    },
];

fn event_cells(o: &Object<'_>) -> Vec<Value> {
    // Core events and events.k8s.io events name the same fields differently.
    let pick = |core: &str, new: &str| -> &str {
        match o.text(core) {
            "" => o.text(new),
            found => found,
        }
    };
    let first_seen_at = timestamp(o.value, "/firstTimestamp")
        .or_else(|| timestamp(o.value, "/deprecatedFirstTimestamp"));
    let first_seen = match first_seen_at {
        Some(at) => since(Some(at), o.now),
        None => since(timestamp(o.value, "/eventTime"), o.now),
    };
    let last_seen_at = timestamp(o.value, "/lastTimestamp")
        .or_else(|| timestamp(o.value, "/deprecatedLastTimestamp"));
    let mut last_seen = match last_seen_at {
        Some(at) => since(Some(at), o.now),
        None => first_seen.clone(),
    };
    let mut count = match o.at("/count").and_then(Value::as_i64) {
        Some(count) => count,
        None => o.int("/deprecatedCount"),
    };
    if o.at("/series").is_some_and(Value::is_object) {
        last_seen = since(timestamp(o.value, "/series/lastObservedTime"), o.now);
        count = o.int("/series/count");
    } else if count == 0 {
        // Singleton events have no count in the new API.
        count = 1;
    }
    let kind = pick("/involvedObject/kind", "/regarding/kind").to_lowercase();
    let involved_name = pick("/involvedObject/name", "/regarding/name");
    let target = if involved_name.is_empty() {
        kind
    } else {
        format!("{kind}/{involved_name}")
    };
    let component = [
        o.text("/source/component"),
        o.text("/deprecatedSource/component"),
        o.text("/reportingController"),
        o.text("/reportingComponent"),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or("");
    let host = [
        o.text("/source/host"),
        o.text("/deprecatedSource/host"),
        o.text("/reportingInstance"),
    ]
    .into_iter()
    .find(|s| !s.is_empty())
    .unwrap_or("");
    let source = if host.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {host}")
    };
    vec![
        Value::from(last_seen),
        Value::from(o.text("/type")),
        Value::from(o.text("/reason")),
        Value::from(target),
        Value::from(pick("/involvedObject/fieldPath", "/regarding/fieldPath")),
        Value::from(source),
        Value::from(pick("/message", "/note").trim()),
        Value::from(first_seen),
        Value::from(count),
        o.name(),
    ]
}

// --- configuration ---

const CONFIG_MAP_COLUMNS: &[Column] = &[
    NAME,
    column("Data", "string", "Data contains the configuration data."),
    AGE,
];

fn config_map_cells(o: &Object<'_>) -> Vec<Value> {
    let entries = map_len(o.value, "/data") + map_len(o.value, "/binaryData");
    vec![o.name(), Value::from(entries), o.age()]
}

const SECRET_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    column("Data", "string", "Data contains the secret data."),
    AGE,
];

fn secret_cells(o: &Object<'_>) -> Vec<Value> {
    vec![
        o.name(),
        Value::from(o.text("/type")),
        Value::from(map_len(o.value, "/data")),
        o.age(),
    ]
}

const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Secrets",
        "string",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    AGE,
];

fn service_account_cells(o: &Object<'_>) -> Vec<Value> {
    vec![o.name(), Value::from(o.list("/secrets").len()), o.age()]
}

const LEASE_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

fn lease_cells(o: &Object<'_>) -> Vec<Value> {
    vec![
        o.name(),
        Value::from(o.text("/spec/holderIdentity")),
        o.age(),
    ]
}

// --- storage ---

const PV_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Capacity",
        "string",
        "capacity is the description of the persistent volume's resources and capacity.",
    ),
    column(
        "Access Modes",
        "string",
        "accessModes contains all ways the volume can be mounted.",
    ),
    column(
        "Reclaim Policy",
        "string",
        "persistentVolumeReclaimPolicy defines what happens to a persistent volume when released from its claim.",
    ),
    column(
        "Status",
        "string",
        "phase indicates if a volume is available, bound to a claim, or released by a claim.",
    ),
    column(
        "Claim",
        "string",
        "claimRef is part of a bi-directional binding between PersistentVolume and PersistentVolumeClaim.",
    ),
    column("StorageClass", "string", "StorageClass of the pv"),
    column(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pv",
    ),
    column(
        "Reason",
        "string",
        "reason is a brief CamelCase string that describes any failure.",
    ),
    AGE,
    wide(
        "VolumeMode",
        "string",
        "volumeMode defines if a volume is intended to be used with a formatted filesystem or to remain in raw block state.",
    ),
];

/// `GetAccessModesAsString`: RWO, ROX, RWX, RWOP in that order.
fn access_modes(modes: &[Value]) -> String {
    let has = |mode: &str| modes.iter().any(|m| m.as_str() == Some(mode));
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .into_iter()
    .filter(|(mode, _)| has(mode))
    .map(|(_, short)| short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class: the beta annotation wins over `spec.storageClassName`.
fn storage_class(o: &Object<'_>) -> Value {
    match o
        .labels("/metadata/annotations")
        .get("volume.beta.kubernetes.io/storage-class")
    {
        Some(class) => Value::from(class.as_str()),
        None => Value::from(o.text("/spec/storageClassName")),
    }
}

fn phase_or_terminating(o: &Object<'_>) -> Value {
    if o.deleting() {
        Value::from("Terminating")
    } else {
        Value::from(o.text("/status/phase"))
    }
}

fn pv_cells(o: &Object<'_>) -> Vec<Value> {
    let claim = if o.at("/spec/claimRef").is_some_and(Value::is_object) {
        format!(
            "{}/{}",
            o.text("/spec/claimRef/namespace"),
            o.text("/spec/claimRef/name")
        )
    } else {
        String::new()
    };
    vec![
        o.name(),
        Value::from(o.text("/spec/capacity/storage")),
        Value::from(access_modes(o.list("/spec/accessModes"))),
        Value::from(o.text("/spec/persistentVolumeReclaimPolicy")),
        phase_or_terminating(o),
        Value::from(claim),
        storage_class(o),
        or_default(o.text("/spec/volumeAttributesClassName"), "<unset>"),
        Value::from(o.text("/status/reason")),
        o.age(),
        or_default(o.text("/spec/volumeMode"), "<unset>"),
    ]
}

const PVC_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Status",
        "string",
        "phase represents the current phase of PersistentVolumeClaim.",
    ),
    column(
        "Volume",
        "string",
        "volumeName is the binding reference to the PersistentVolume backing this claim.",
    ),
    column(
        "Capacity",
        "string",
        "capacity represents the actual resources of the underlying volume.",
    ),
    column(
        "Access Modes",
        "string",
        "accessModes contains the actual access modes the volume backing the PVC has.",
    ),
    column("StorageClass", "string", "StorageClass of the pvc"),
    column(
        "VolumeAttributesClass",
        "string",
        "VolumeAttributesClass of the pvc",
    ),
    AGE,
    wide(
        "VolumeMode",
        "string",
        "volumeMode defines what type of volume is required by the claim.",
    ),
];

fn pvc_cells(o: &Object<'_>) -> Vec<Value> {
    let volume = o.text("/spec/volumeName");
    // Capacity and modes are only known once bound.
    let (capacity, modes) = if volume.is_empty() {
        (String::new(), String::new())
    } else {
        (
            o.text("/status/capacity/storage").to_owned(),
            access_modes(o.list("/status/accessModes")),
        )
    };
    vec![
        o.name(),
        phase_or_terminating(o),
        Value::from(volume),
        Value::from(capacity),
        Value::from(modes),
        storage_class(o),
        or_default(o.text("/spec/volumeAttributesClassName"), "<unset>"),
        o.age(),
        or_default(o.text("/spec/volumeMode"), "<unset>"),
    ]
}

// --- autoscaling and policy ---

const HPA_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Reference",
        "string",
        "scaleTargetRef points to the target resource to scale.",
    ),
    column(
        "Targets",
        "string",
        "metrics contains the specifications for which to use to calculate the desired replica count.",
    ),
    column(
        "MinPods",
        "string",
        "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down.",
    ),
    column(
        "MaxPods",
        "string",
        "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up.",
    ),
    column(
        "Replicas",
        "string",
        "currentReplicas is current number of replicas of pods managed by this autoscaler.",
    ),
    AGE,
];

/// The metric specs and statuses in v2 form; a v1 object's CPU target is converted.
fn hpa_metrics(o: &Object<'_>) -> (Vec<Value>, Vec<Value>) {
    let specs = o.list("/spec/metrics");
    if !specs.is_empty() {
        return (specs.to_vec(), o.list("/status/currentMetrics").to_vec());
    }
    let Some(target) = o
        .at("/spec/targetCPUUtilizationPercentage")
        .and_then(Value::as_i64)
    else {
        return (Vec::new(), Vec::new());
    };
    let spec = json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}});
    let status = o
        .at("/status/currentCPUUtilizationPercentage")
        .and_then(Value::as_i64)
        .map(|current| {
            vec![json!({"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": current}}})]
        })
        .unwrap_or_default();
    (vec![spec], status)
}

/// `formatHPAMetrics`: `cpu: 40%/80%`, at most two, then `+ N more...`.
fn format_hpa_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".to_owned();
    }
    let unknown = || "<unknown>".to_owned();
    let quantity = |v: Option<&Value>| int_or_string(v).unwrap_or_else(unknown);
    let percent = |v: Option<&Value>| v.and_then(Value::as_i64).map(|p| format!("{p}%"));
    let mut shown = Vec::new();
    for (i, spec) in specs.iter().enumerate() {
        let status = statuses.get(i);
        let field = |source: &str| status.and_then(|s| s.get(source)).filter(|v| v.is_object());
        let entry = match text(spec, "/type") {
            source_type @ ("External" | "Object") => {
                let key = if source_type == "External" {
                    "external"
                } else {
                    "object"
                };
                if spec
                    .pointer(&format!("/{key}/target/averageValue"))
                    .is_some()
                {
                    let current = field(key)
                        .and_then(|s| s.pointer("/current/averageValue"))
                        .map_or_else(unknown, |v| quantity(Some(v)));
                    format!(
                        "{}/{} (avg)",
                        current,
                        quantity(spec.pointer(&format!("/{key}/target/averageValue")))
                    )
                } else {
                    let current = field(key)
                        .and_then(|s| s.pointer("/current/value"))
                        .map_or_else(unknown, |v| quantity(Some(v)));
                    format!(
                        "{}/{}",
                        current,
                        quantity(spec.pointer(&format!("/{key}/target/value")))
                    )
                }
            }
            "Pods" => {
                let current = field("pods")
                    .and_then(|s| s.pointer("/current/averageValue"))
                    .map_or_else(unknown, |v| quantity(Some(v)));
                format!(
                    "{}/{}",
                    current,
                    quantity(spec.pointer("/pods/target/averageValue"))
                )
            }
            source_type @ ("Resource" | "ContainerResource") => {
                let key = if source_type == "Resource" {
                    "resource"
                } else {
                    "containerResource"
                };
                let name = text(spec, &format!("/{key}/name"));
                if let Some(target) = spec.pointer(&format!("/{key}/target/averageValue")) {
                    let current = field(key)
                        .and_then(|s| s.pointer("/current/averageValue"))
                        .map_or_else(unknown, |v| quantity(Some(v)));
                    format!("{}: {}/{}", name, current, quantity(Some(target)))
                } else {
                    let current = field(key)
                        .and_then(|s| percent(s.pointer("/current/averageUtilization")))
                        .unwrap_or_else(unknown);
                    let target =
                        percent(spec.pointer(&format!("/{key}/target/averageUtilization")))
                            .unwrap_or_else(|| "<auto>".to_owned());
                    format!("{name}: {current}/{target}")
                }
            }
            _ => "<unknown type>".to_owned(),
        };
        shown.push(entry);
    }
    const MAX: usize = 2;
    let count = shown.len();
    if count > MAX {
        shown.truncate(MAX);
        format!("{} + {} more...", shown.join(", "), count - MAX)
    } else {
        shown.join(", ")
    }
}

fn hpa_cells(o: &Object<'_>) -> Vec<Value> {
    let (specs, statuses) = hpa_metrics(o);
    let reference = format!(
        "{}/{}",
        o.text("/spec/scaleTargetRef/kind"),
        o.text("/spec/scaleTargetRef/name")
    );
    let min_pods = o
        .at("/spec/minReplicas")
        .and_then(Value::as_i64)
        .map_or_else(|| "<unset>".to_owned(), |m| m.to_string());
    vec![
        o.name(),
        Value::from(reference),
        Value::from(format_hpa_metrics(&specs, &statuses)),
        Value::from(min_pods),
        Value::from(o.int("/spec/maxReplicas")),
        Value::from(o.int("/status/currentReplicas")),
        o.age(),
    ]
}

const PDB_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Min Available",
        "string",
        "The minimum number of pods that must be available.",
    ),
    column(
        "Max Unavailable",
        "string",
        "The maximum number of pods that may be unavailable.",
    ),
    column(
        "Allowed Disruptions",
        "integer",
        "Calculated number of pods that may be disrupted at this time.",
    ),
    AGE,
];

fn pdb_cells(o: &Object<'_>) -> Vec<Value> {
    let or_na = |pointer: &str| int_or_string(o.at(pointer)).unwrap_or_else(|| "N/A".to_owned());
    vec![
        o.name(),
        Value::from(or_na("/spec/minAvailable")),
        Value::from(or_na("/spec/maxUnavailable")),
        Value::from(o.int("/status/disruptionsAllowed")),
        o.age(),
    ]
}

#[cfg(test)]
mod tests;
