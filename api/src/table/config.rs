//! Printers for ConfigMaps, Secrets, ServiceAccounts and Leases.

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
