//! Server-side tables (`meta.k8s.io/v1 Table`): what `kubectl get` prints.
//!
//! kubectl asks for `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` and prints the
//! cells it gets back, so the columns and cell values here follow kube-apiserver's printers
//! (kubernetes `pkg/printers/internalversion/printers.go`, 1.32). Like the API server, every
//! row carries the `-o wide` cells too; kubectl hides columns with `priority > 0` unless
//! asked. Objects are read as JSON, so a printer never fails: missing fields print as
//! upstream prints zero values.

#![warn(missing_docs)]

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod autoscaling;
mod cluster;
mod config;
mod network;
mod object;
mod pods;
mod storage;
mod workloads;

use autoscaling::*;
use cluster::*;
use config::*;
use network::*;
use object::{Object, timestamp};
use pods::*;
pub use storage::is_default_storage_class;
use storage::*;
use workloads::*;

/// The `Content-Type` of a Table reply.
pub const TABLE_CONTENT_TYPE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

/// Whether an `Accept` header asks for a `meta.k8s.io` Table (v1, or the v1beta1 that
/// kubectl lists second and that has the same shape).
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media_range| {
        let mut parts = media_range.split(';').map(str::trim);
        if !parts
            .next()
            .is_some_and(|essence| essence.eq_ignore_ascii_case("application/json"))
        {
            return false;
        }
        let (mut group, mut version, mut kind) = (false, false, false);
        for param in parts {
            match param.split_once('=') {
                Some(("g", "meta.k8s.io")) => group = true,
                Some(("v", "v1" | "v1beta1")) => version = true,
                Some(("as", "Table")) => kind = true,
                _ => {}
            }
        }
        group && version && kind
    })
}

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
        ("storage.k8s.io", "storageclasses") => {
            printer_of(STORAGE_CLASS_COLUMNS, storage_class_cells)
        }
        ("autoscaling", "horizontalpodautoscalers") => printer_of(HPA_COLUMNS, hpa_cells),
        ("coordination.k8s.io", "leases") => printer_of(LEASE_COLUMNS, lease_cells),
        ("discovery.k8s.io", "endpointslices") => {
            printer_of(ENDPOINT_SLICE_COLUMNS, endpoint_slice_cells)
        }
        ("policy", "poddisruptionbudgets") => printer_of(PDB_COLUMNS, pdb_cells),
        ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings") => {
            printer_of(ROLE_BINDING_COLUMNS, role_binding_cells)
        }
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

#[cfg(test)]
mod tests;
