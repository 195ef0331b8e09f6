//! Printers for ConfigMaps, Secrets, ServiceAccounts, Leases and RBAC bindings.

use serde_json::Value;

use super::object::*;
use super::*;

pub(super) const CONFIG_MAP_COLUMNS: &[Column] = &[
    NAME,
    column("Data", "string", "Data contains the configuration data."),
    AGE,
];

pub(super) fn config_map_cells(o: &Object<'_>) -> Vec<Value> {
    let entries = map_len(o.value, "/data") + map_len(o.value, "/binaryData");
    vec![o.name(), Value::from(entries), o.age()]
}

pub(super) const SECRET_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Type",
        "string",
        "Used to facilitate programmatic handling of secret data.",
    ),
    column("Data", "string", "Data contains the secret data."),
    AGE,
];

pub(super) fn secret_cells(o: &Object<'_>) -> Vec<Value> {
    vec![
        o.name(),
        Value::from(o.text("/type")),
        Value::from(map_len(o.value, "/data")),
        o.age(),
    ]
}

pub(super) const SERVICE_ACCOUNT_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Secrets",
        "string",
        "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use.",
    ),
    AGE,
];

pub(super) fn service_account_cells(o: &Object<'_>) -> Vec<Value> {
    vec![o.name(), Value::from(o.list("/secrets").len()), o.age()]
}

pub(super) const LEASE_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Holder",
        "string",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

pub(super) fn lease_cells(o: &Object<'_>) -> Vec<Value> {
    vec![
        o.name(),
        Value::from(o.text("/spec/holderIdentity")),
        o.age(),
    ]
}

pub(super) const ROLE_BINDING_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Role",
        "string",
        "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable.",
    ),
    AGE,
    wide("Users", "string", "Users in the roleBinding"),
    wide("Groups", "string", "Groups in the roleBinding"),
    wide(
        "ServiceAccounts",
        "string",
        "ServiceAccounts in the roleBinding",
    ),
];

/// RoleBindings and ClusterRoleBindings: `Kind/name` of the role, then the subjects by kind
/// (`rbac.SubjectsStrings`).
pub(super) fn role_binding_cells(o: &Object<'_>) -> Vec<Value> {
    let role = format!("{}/{}", o.text("/roleRef/kind"), o.text("/roleRef/name"));
    let (mut users, mut groups, mut service_accounts) = (Vec::new(), Vec::new(), Vec::new());
    for subject in o.list("/subjects") {
        let name = text(subject, "/name");
        match text(subject, "/kind") {
            "User" => users.push(name.to_owned()),
            "Group" => groups.push(name.to_owned()),
            "ServiceAccount" => {
                service_accounts.push(format!("{}/{name}", text(subject, "/namespace")));
            }
            _ => {}
        }
    }
    vec![
        o.name(),
        Value::from(role),
        o.age(),
        Value::from(users.join(", ")),
        Value::from(groups.join(", ")),
        Value::from(service_accounts.join(", ")),
    ]
}
