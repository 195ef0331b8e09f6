//! From Services and EndpointSlices to [`ServicePortRules`], pure.
//!
//! - ExternalName and headless Services get no rules.
//! - Endpoints come from every slice labelled `kubernetes.io/service-name=<service>` in the
//!   Service's namespace (so hand-written slices of selectorless Services work too); an
//!   endpoint counts when its `ready` condition is not false and it is not terminating.
//! - A Service port matches the slice port of the same name.

use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use super::rules::{Backend, DEFAULT_AFFINITY_SECONDS, Protocol, ServicePortRules};

/// The label linking a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The rule generator's input for every Service port.
pub fn service_ports(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
) -> Vec<ServicePortRules> {
    let mut out = Vec::new();
    for service in services {
        let Some(spec) = service.spec.as_ref() else {
            continue;
        };
        if spec.type_.as_deref() == Some("ExternalName") {
            continue;
        }
        let cluster_ip = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse::<Ipv4Addr>().ok());
        if cluster_ip.is_none() {
            // Headless (`None`), unallocated, or IPv6: nothing to program.
            continue;
        }
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        let affinity_seconds = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
            spec.session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds)
                .and_then(|t| u32::try_from(t).ok())
                .filter(|t| *t > 0)
                .unwrap_or(DEFAULT_AFFINITY_SECONDS)
        });
        let own_slices: Vec<&EndpointSlice> = slices
            .iter()
            .map(|s| s.as_ref())
            .filter(|s| {
                s.metadata.namespace.as_deref() == Some(namespace)
                    && s.address_type == "IPv4"
                    && s.metadata
                        .labels
                        .as_ref()
                        .and_then(|l| l.get(SERVICE_NAME_LABEL))
                        .is_some_and(|n| n == name)
            })
            .collect();
        for port in spec.ports.iter().flatten() {
            let Some(protocol) = Protocol::parse(port.protocol.as_deref()) else {
                continue;
            };
            let Ok(service_port) = u16::try_from(port.port) else {
                continue;
            };
            let port_name = port.name.clone().unwrap_or_default();
            let mut backends = Vec::new();
            for slice in &own_slices {
                let Some(target) = slice.ports.iter().flatten().find_map(|p| {
                    let same_name = p.name.clone().unwrap_or_default() == port_name;
                    let same_protocol = Protocol::parse(p.protocol.as_deref()) == Some(protocol);
                    (same_name && same_protocol)
                        .then_some(p.port)
                        .flatten()
                        .and_then(|n| u16::try_from(n).ok())
                }) else {
                    continue;
                };
                for endpoint in &slice.endpoints {
                    let conditions = endpoint.conditions.as_ref();
                    let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
                    let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
                    if !ready || terminating {
                        continue;
                    }
                    for address in &endpoint.addresses {
                        if let Ok(ip) = address.parse::<Ipv4Addr>() {
                            backends.push(Backend { ip, port: target });
                        }
                    }
                }
            }
            out.push(ServicePortRules {
                id: format!("{namespace}/{name}:{port_name}"),
                cluster_ip,
                port: service_port,
                protocol,
                node_port: port
                    .node_port
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p > 0),
                affinity_seconds,
                backends,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn ready_endpoints_of_the_service_port_by_name() {
        let service: Service = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "default" },
            "spec": {
                "type": "NodePort", "clusterIP": "10.96.0.20", "sessionAffinity": "ClientIP",
                "ports": [{ "name": "http", "port": 80, "targetPort": "http", "nodePort": 30080 }]
            }
        }))
        .expect("service");
        let slice: EndpointSlice = serde_json::from_value(json!({
            "metadata": { "name": "web-1", "namespace": "default", "labels": { "kubernetes.io/service-name": "web" } },
            "addressType": "IPv4",
            "ports": [{ "name": "http", "port": 8080, "protocol": "TCP" }],
            "endpoints": [
                { "addresses": ["10.88.0.2"], "conditions": { "ready": true } },
                { "addresses": ["10.88.0.3"], "conditions": { "ready": false } },
                { "addresses": ["10.88.0.4"] }
            ]
        }))
        .expect("slice");
        let other: EndpointSlice = serde_json::from_value(json!({
            "metadata": { "name": "db-1", "namespace": "default", "labels": { "kubernetes.io/service-name": "db" } },
            "addressType": "IPv4",
            "ports": [{ "name": "http", "port": 5432 }],
            "endpoints": [{ "addresses": ["10.88.0.9"] }]
        }))
        .expect("slice");
        let headless: Service = serde_json::from_value(json!({
            "metadata": { "name": "h", "namespace": "default" },
            "spec": { "clusterIP": "None", "ports": [{ "port": 80 }] }
        }))
        .expect("service");
        let ports = service_ports(
            &[Arc::new(service), Arc::new(headless)],
            &[Arc::new(slice), Arc::new(other)],
        );
        assert_eq!(ports.len(), 1);
        let port = &ports[0];
        assert_eq!(port.id, "default/web:http");
        assert_eq!(port.node_port, Some(30080));
        assert_eq!(port.affinity_seconds, Some(DEFAULT_AFFINITY_SECONDS));
        let ips: Vec<String> = port
            .backends
            .iter()
            .map(|b| format!("{}:{}", b.ip, b.port))
            .collect();
        assert_eq!(ips, ["10.88.0.2:8080", "10.88.0.4:8080"]);
    }
}
