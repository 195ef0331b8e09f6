//! Service validation (kubernetes `core/validation` ValidateService and the NodePort
//! allocator's range check).

use std::collections::HashSet;

use serde_json::Value;

use super::access::{child, int_at, list_at, obj_at, str_or_empty};
use super::errors::{BadValue, FieldError, go_quote};
use super::meta::validate_labels;
use super::names::{dns1123_label, dns1123_subdomain, is_ip, port_number};
use super::path::FieldPath;
use super::pod::validate_port_num_or_name;

/// Tugboat's NodePort range, as kube-apiserver's default `--service-node-port-range`.
pub(crate) const NODE_PORT_RANGE: (i64, i64) = (30000, 32767);

const SERVICE_TYPES: [&str; 4] = ["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"];

/// Validates a Service's spec.
pub(crate) fn validate_service_spec(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = child(obj, "spec");
    let path = FieldPath::root("spec");
    let service_type = str_or_empty(spec, "type");
    let cluster_ip = str_or_empty(spec, "clusterIP");
    let headless = cluster_ip == "None";
    let ports = list_at(spec, "ports");
    if ports.is_empty() && !headless && service_type != "ExternalName" {
        errs.push(FieldError::required(path.child("ports"), ""));
    }
    match service_type {
        "" => errs.push(FieldError::required(path.child("type"), "")),
        t if !SERVICE_TYPES.contains(&t) => errs.push(FieldError::not_supported(
            path.child("type"),
            t,
            &SERVICE_TYPES,
        )),
        "ExternalName" => {
            let external_name = str_or_empty(spec, "externalName");
            if external_name.is_empty() {
                errs.push(FieldError::required(path.child("externalName"), ""));
            } else {
                for msg in dns1123_subdomain(external_name.trim_end_matches('.')) {
                    errs.push(FieldError::invalid(
                        path.child("externalName"),
                        external_name,
                        &msg,
                    ));
                }
            }
        }
        _ => {}
    }
    let require_name = ports.len() > 1;
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let item = path.child("ports").index(i);
        validate_service_port(port, require_name, &mut names, &item, errs);
        if let Some(node_port) = int_at(port, "nodePort").filter(|p| *p != 0) {
            if service_type == "ClusterIP" {
                errs.push(FieldError::forbidden(
                    item.child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            } else if !(NODE_PORT_RANGE.0..=NODE_PORT_RANGE.1).contains(&node_port) {
                errs.push(FieldError::invalid(
                    item.child("nodePort"),
                    node_port,
                    &format!(
                        "provided port is not in the valid range. The range of valid ports is {}-{}",
                        NODE_PORT_RANGE.0, NODE_PORT_RANGE.1
                    ),
                ));
            }
        }
    }
    validate_cluster_ips(spec, cluster_ip, &path, errs);
    match str_or_empty(spec, "sessionAffinity") {
        "None" | "ClientIP" => {}
        "" => errs.push(FieldError::required(path.child("sessionAffinity"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("sessionAffinity"),
            other,
            &["ClientIP", "None"],
        )),
    }
    if let Some(selector) = obj_at(spec, "selector") {
        validate_labels(selector, &path.child("selector"), errs);
    }
    let externally_accessible = service_type == "NodePort"
        || service_type == "LoadBalancer"
        || !list_at(spec, "externalIPs").is_empty();
    let external_policy = str_or_empty(spec, "externalTrafficPolicy");
    if !external_policy.is_empty() {
        if !externally_accessible {
            errs.push(FieldError::invalid(
                path.child("externalTrafficPolicy"),
                external_policy,
                "may only be set for externally-accessible services",
            ));
        } else if external_policy != "Cluster" && external_policy != "Local" {
            errs.push(FieldError::not_supported(
                path.child("externalTrafficPolicy"),
                external_policy,
                &["Cluster", "Local"],
            ));
        }
    }
    let internal_policy = str_or_empty(spec, "internalTrafficPolicy");
    if !internal_policy.is_empty() && internal_policy != "Cluster" && internal_policy != "Local" {
        errs.push(FieldError::not_supported(
            path.child("internalTrafficPolicy"),
            internal_policy,
            &["Cluster", "Local"],
        ));
    }
}

/// `clusterIP` and `clusterIPs`, checked as upstream does after the registry copies a lone
/// `clusterIP` into `clusterIPs`: errors name `spec.clusterIPs[i]`.
fn validate_cluster_ips(
    spec: &Value,
    cluster_ip: &str,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let listed: Vec<&str> = list_at(spec, "clusterIPs")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    if let Some(first) = listed.first()
        && !cluster_ip.is_empty()
        && *first != cluster_ip
    {
        let quoted: Vec<String> = listed.iter().map(|ip| go_quote(ip)).collect();
        errs.push(FieldError::invalid(
            path.child("clusterIPs"),
            BadValue::Go(format!("[]string{{{}}}", quoted.join(", "))),
            "first value must match `clusterIP`",
        ));
        return;
    }
    let ips = if listed.is_empty() && !cluster_ip.is_empty() {
        vec![cluster_ip]
    } else {
        listed
    };
    for (i, ip) in ips.iter().enumerate() {
        if *ip == "None" {
            if i > 0 || ips.len() > 1 {
                errs.push(FieldError::invalid(
                    path.child("clusterIPs").index(i),
                    *ip,
                    "must be empty when the first value is 'None'",
                ));
            }
        } else if !is_ip(ip) {
            errs.push(FieldError::invalid(
                path.child("clusterIPs").index(i),
                *ip,
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
}

fn validate_service_port(
    port: &Value,
    require_name: bool,
    names: &mut HashSet<String>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let name = str_or_empty(port, "name");
    if require_name && name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else if !name.is_empty() {
        for msg in dns1123_label(name) {
            errs.push(FieldError::invalid(path.child("name"), name, &msg));
        }
        if !names.insert(name.to_owned()) {
            errs.push(FieldError::duplicate(path.child("name"), name));
        }
    }
    let number = int_at(port, "port").unwrap_or(0);
    for msg in port_number(number) {
        errs.push(FieldError::invalid(path.child("port"), number, &msg));
    }
    match str_or_empty(port, "protocol") {
        "TCP" | "UDP" | "SCTP" => {}
        "" => errs.push(FieldError::required(path.child("protocol"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("protocol"),
            other,
            &["SCTP", "TCP", "UDP"],
        )),
    }
    if let Some(target) = port.get("targetPort").filter(|t| !t.is_null()) {
        validate_port_num_or_name(Some(target), &path.child("targetPort"), errs);
    }
}
