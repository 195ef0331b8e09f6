//! Printers for Nodes, Namespaces and Events.

use std::collections::BTreeSet;

use serde_json::Value;

use super::object::*;
use super::*;

pub(super) const NODE_COLUMNS: &[Column] = &[
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

pub(super) fn node_address(o: &Object<'_>, address_type: &str) -> Value {
    Value::from(
        o.list("/status/addresses")
            .iter()
            .find(|a| text(a, "/type") == address_type)
            .map_or("<none>", |a| text(a, "/address")),
    )
}

pub(super) fn node_cells(o: &Object<'_>) -> Vec<Value> {
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

pub(super) const NAMESPACE_COLUMNS: &[Column] = &[
    NAME,
    column("Status", "string", "The status of the namespace"),
    AGE,
];

pub(super) fn namespace_cells(o: &Object<'_>) -> Vec<Value> {
    vec![o.name(), Value::from(o.text("/status/phase")), o.age()]
}

pub(super) const EVENT_COLUMNS: &[Column] = &[
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

pub(super) fn event_cells(o: &Object<'_>) -> Vec<Value> {
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
