//! Printers for Services, Endpoints and EndpointSlices.

use std::collections::BTreeSet;

use serde_json::Value;

use super::object::*;
use super::*;
use crate::selector::format_labels;

pub(super) const SERVICE_COLUMNS: &[Column] = &[
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

pub(super) fn service_external_ip(o: &Object<'_>, service_type: &str) -> String {
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

pub(super) fn service_cells(o: &Object<'_>) -> Vec<Value> {
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

pub(super) const ENDPOINTS_COLUMNS: &[Column] = &[
    NAME,
    column(
        "Endpoints",
        "string",
        "The set of all endpoints is the union of all subsets.",
    ),
    AGE,
];

/// `formatEndpoints`: up to three `ip:port`, then `+ N more...`.
pub(super) fn endpoints_cells(o: &Object<'_>) -> Vec<Value> {
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
pub(super) fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

pub(super) const ENDPOINT_SLICE_COLUMNS: &[Column] = &[
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

pub(super) fn endpoint_slice_cells(o: &Object<'_>) -> Vec<Value> {
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
