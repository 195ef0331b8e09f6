//! From Services and EndpointSlices to [`ServicePortRules`], pure.
//!
//! - ExternalName and headless Services get no rules.
//! - Endpoints come from every slice labelled `kubernetes.io/service-name=<service>` in the
//!   Service's namespace (so hand-written slices of selectorless Services work too); an
//!   endpoint counts when its `ready` condition is not false and it is not terminating.
//! - A Service port matches the slice port of the same name.
//! - The hand-written `Endpoints` of a Service without a selector count as slices too
//!   ([`mirrored_slices`], what the EndpointSlice mirroring controller does upstream).

use std::net::Ipv4Addr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::rules::{Backend, DEFAULT_AFFINITY_SECONDS, Protocol, ServicePortRules};

/// The label linking a slice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Upstream's label that keeps an `Endpoints` object from being mirrored.
pub const SKIP_MIRROR_LABEL: &str = "endpointslice.kubernetes.io/skip-mirror";

/// `slices` plus, for every Service without a selector, its same-named `Endpoints` as
/// slices (one per subset; `notReadyAddresses` as not ready). Services with a selector are
/// left to the endpoints controller's own slices.
pub fn mirrored_slices(
    services: &[Arc<Service>],
    slices: &[Arc<EndpointSlice>],
    endpoints: &[Arc<Endpoints>],
) -> Vec<Arc<EndpointSlice>> {
    let mut out = slices.to_vec();
    for object in endpoints {
        let (Some(namespace), Some(name)) = (
            object.metadata.namespace.as_deref(),
            object.metadata.name.as_deref(),
        ) else {
            continue;
        };
        let skip = object
            .metadata
            .labels
            .as_ref()
            .is_some_and(|l| l.get(SKIP_MIRROR_LABEL).is_some_and(|v| v == "true"));
        let selectorless = services.iter().any(|s| {
            s.metadata.namespace.as_deref() == Some(namespace)
                && s.metadata.name.as_deref() == Some(name)
                && s.spec
                    .as_ref()
                    .is_some_and(|spec| spec.selector.as_ref().is_none_or(|m| m.is_empty()))
        });
        if skip || !selectorless {
            continue;
        }
        for (index, subset) in object.subsets.iter().flatten().enumerate() {
            let endpoint =
                |address: &k8s_openapi::api::core::v1::EndpointAddress, ready| Endpoint {
                    addresses: vec![address.ip.clone()],
                    hostname: address.hostname.clone(),
                    node_name: address.node_name.clone(),
                    conditions: Some(EndpointConditions {
                        ready: Some(ready),
                        serving: Some(ready),
                        terminating: Some(false),
                    }),
                    ..Default::default()
                };
            let ready = subset.addresses.iter().flatten().map(|a| endpoint(a, true));
            let not_ready = subset
                .not_ready_addresses
                .iter()
                .flatten()
                .map(|a| endpoint(a, false));
            out.push(Arc::new(EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-mirror-{index}")),
                    namespace: Some(namespace.to_owned()),
                    labels: Some(
                        [(SERVICE_NAME_LABEL.to_owned(), name.to_owned())]
                            .into_iter()
                            .collect(),
                    ),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: ready.chain(not_ready).collect(),
                ports: Some(
                    subset
                        .ports
                        .iter()
                        .flatten()
                        .map(|p| EndpointPort {
                            name: p.name.clone(),
                            port: Some(p.port),
                            protocol: p.protocol.clone(),
                            app_protocol: p.app_protocol.clone(),
                        })
                        .collect(),
                ),
            }));
        }
    }
    out
}

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
    fn selectorless_services_route_to_their_hand_written_endpoints() {
        let manual: Service = serde_json::from_value(json!({
            "metadata": { "name": "legacy", "namespace": "default" },
            "spec": { "clusterIP": "10.96.0.30", "ports": [{ "name": "db", "port": 5432 }] }
        }))
        .expect("service");
        let selected: Service = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "default" },
            "spec": { "clusterIP": "10.96.0.31", "selector": { "app": "web" },
                      "ports": [{ "port": 80 }] }
        }))
        .expect("service");
        let endpoints = |name: &str, labels| -> Arc<Endpoints> {
            Arc::new(
                serde_json::from_value(json!({
                    "metadata": { "name": name, "namespace": "default", "labels": labels },
                    "subsets": [{
                        "addresses": [{ "ip": "192.0.2.10" }],
                        "notReadyAddresses": [{ "ip": "192.0.2.11" }],
                        "ports": [{ "name": "db", "port": 15432 }]
                    }]
                }))
                .expect("endpoints"),
            )
        };
        let services = [Arc::new(manual), Arc::new(selected)];
        // The selected Service's Endpoints belong to the endpoints controller: not mirrored.
        let slices = mirrored_slices(
            &services,
            &[],
            &[endpoints("legacy", json!({})), endpoints("web", json!({}))],
        );
        assert_eq!(slices.len(), 1);
        let ports = service_ports(&services, &slices);
        let legacy = ports
            .iter()
            .find(|p| p.id == "default/legacy:db")
            .expect("legacy port");
        assert_eq!(legacy.cluster_ip, Some(Ipv4Addr::new(10, 96, 0, 30)));
        assert_eq!(
            legacy.backends,
            [Backend {
                ip: Ipv4Addr::new(192, 0, 2, 10),
                port: 15432
            }]
        );
        let web = ports.iter().find(|p| p.id == "default/web:").expect("web");
        assert!(web.backends.is_empty());
        // Opted out of mirroring.
        let skipped = mirrored_slices(
            &services,
            &[],
            &[endpoints(
                "legacy",
                json!({ "endpointslice.kubernetes.io/skip-mirror": "true" }),
            )],
        );
        assert!(skipped.is_empty());
    }

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
