//! The pure part of the endpoints controllers: which pod addresses and ports back a Service,
//! as an `Endpoints` object and as `EndpointSlice`s (upstream's `pkg/controller/endpoint` and
//! `endpointslice`, reduced to one slice per distinct port set).
//!
//! - Only pods in the Service's namespace whose labels match its selector count.
//! - A pod without an IP, a finished pod (Succeeded/Failed) and a terminating pod (deletion
//!   timestamp set) are left out at once: traffic stops before the pod is told to stop.
//! - A Ready pod goes to `addresses`, any other to `notReadyAddresses` (all to `addresses` with
//!   `publishNotReadyAddresses`).
//! - A named `targetPort` is looked up among the pod's container ports; a pod without that name
//!   does not serve that port. Pods serving the same ports share a subset (and a slice).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service, ServicePort,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint, EndpointConditions, EndpointPort as SlicePort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Label every EndpointSlice carries: the Service it belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Label naming the controller that manages a slice.
pub const MANAGED_BY_LABEL: &str = "endpointslice.kubernetes.io/managed-by";
/// Our value of [`MANAGED_BY_LABEL`].
pub const MANAGED_BY: &str = "endpointslice-controller.tugboat.io";
/// Label upstream puts on the Endpoints of headless Services.
pub const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// One pod's contribution, before grouping by ports.
#[derive(Debug, Clone, PartialEq)]
struct PodEndpoint {
    ip: String,
    ready: bool,
    node_name: Option<String>,
    hostname: Option<String>,
    target: ObjectReference,
    /// Resolved ports, in Service port order.
    ports: Vec<ResolvedPort>,
}

/// A Service port resolved to a number on one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResolvedPort {
    /// The Service port's name (empty if unnamed).
    pub name: String,
    /// The port on the pod.
    pub port: i32,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The Service port's appProtocol.
    pub app_protocol: Option<String>,
}

/// Whether the controllers manage this Service's endpoints: it must have a non-empty selector
/// (a Service without one has hand-written Endpoints), and not be an ExternalName Service.
pub fn has_managed_endpoints(service: &Service) -> bool {
    let Some(spec) = service.spec.as_ref() else {
        return false;
    };
    if spec.type_.as_deref() == Some("ExternalName") {
        return false;
    }
    spec.selector.as_ref().is_some_and(|s| !s.is_empty())
}

/// Whether the Service's selector (`spec.selector`, equality only) matches `labels`; an absent
/// or empty selector matches nothing.
pub fn selects(service: &Service, labels: &BTreeMap<String, String>) -> bool {
    match service.spec.as_ref().and_then(|s| s.selector.as_ref()) {
        Some(selector) if !selector.is_empty() => selector
            .iter()
            .all(|(key, value)| labels.get(key) == Some(value)),
        _ => false,
    }
}

/// Whether `pod` is Ready (condition `Ready` is `True`).
pub fn pod_is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Resolves a Service port on a pod: a number stays, a name is looked up among the pod's
/// container ports with the same protocol.
pub fn resolve_target_port(port: &ServicePort, pod: &Pod) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(number)) if *number > 0 => Some(*number),
        Some(IntOrString::Int(_)) => Some(port.port),
        Some(IntOrString::String(name)) => {
            if let Ok(number) = name.parse::<i32>() {
                return Some(number);
            }
            pod.spec.as_ref()?.containers.iter().find_map(|c| {
                c.ports.as_ref()?.iter().find_map(|p| {
                    (p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol)
                        .then_some(p.container_port)
                })
            })
        }
    }
}

fn pod_endpoint(service: &Service, pod: &Pod) -> Option<PodEndpoint> {
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let status = pod.status.as_ref()?;
    if matches!(status.phase.as_deref(), Some("Succeeded" | "Failed")) {
        return None;
    }
    let ip = status.pod_ip.clone().filter(|ip| !ip.is_empty())?;
    let spec = service.spec.as_ref()?;
    let publish = spec.publish_not_ready_addresses.unwrap_or(false);
    let service_name = service.metadata.name.as_deref().unwrap_or_default();
    let mut ports = Vec::new();
    for port in spec.ports.iter().flatten() {
        if let Some(number) = resolve_target_port(port, pod) {
            ports.push(ResolvedPort {
                name: port.name.clone().unwrap_or_default(),
                port: number,
                protocol: port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                app_protocol: port.app_protocol.clone(),
            });
        }
    }
    // A Service with ports that this pod serves none of gets nothing from it.
    if ports.is_empty() && spec.ports.as_ref().is_some_and(|p| !p.is_empty()) {
        return None;
    }
    let pod_spec = pod.spec.as_ref();
    let hostname = pod_spec
        .filter(|s| s.subdomain.as_deref() == Some(service_name))
        .and_then(|s| s.hostname.clone());
    Some(PodEndpoint {
        ip,
        ready: publish || pod_is_ready(pod),
        node_name: pod_spec.and_then(|s| s.node_name.clone()),
        hostname,
        target: ObjectReference {
            kind: Some("Pod".into()),
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            uid: pod.metadata.uid.clone(),
            ..Default::default()
        },
        ports,
    })
}

/// The pods backing `service`, grouped by the ports they serve (sorted, deterministic).
fn grouped<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> BTreeMap<Vec<ResolvedPort>, Vec<PodEndpoint>> {
    let namespace = service.metadata.namespace.as_deref();
    let mut groups: BTreeMap<Vec<ResolvedPort>, Vec<PodEndpoint>> = BTreeMap::new();
    for pod in pods {
        if pod.metadata.namespace.as_deref() != namespace {
            continue;
        }
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if !selects(service, &labels) {
            continue;
        }
        if let Some(endpoint) = pod_endpoint(service, pod) {
            let mut key = endpoint.ports.clone();
            key.sort();
            groups.entry(key).or_default().push(endpoint);
        }
    }
    for endpoints in groups.values_mut() {
        endpoints.sort_by(|a, b| a.ip.cmp(&b.ip).then(a.target.name.cmp(&b.target.name)));
    }
    groups
}

/// The `subsets` of the Service's Endpoints object.
pub fn endpoint_subsets<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<EndpointSubset> {
    grouped(service, pods)
        .into_iter()
        .map(|(ports, endpoints)| {
            let address = |e: &PodEndpoint| EndpointAddress {
                ip: e.ip.clone(),
                hostname: e.hostname.clone(),
                node_name: e.node_name.clone(),
                target_ref: Some(e.target.clone()),
            };
            let ready: Vec<_> = endpoints.iter().filter(|e| e.ready).map(address).collect();
            let not_ready: Vec<_> = endpoints.iter().filter(|e| !e.ready).map(address).collect();
            EndpointSubset {
                addresses: (!ready.is_empty()).then_some(ready),
                not_ready_addresses: (!not_ready.is_empty()).then_some(not_ready),
                ports: (!ports.is_empty()).then(|| {
                    ports
                        .iter()
                        .map(|p| EndpointPort {
                            name: (!p.name.is_empty()).then(|| p.name.clone()),
                            port: p.port,
                            protocol: Some(p.protocol.clone()),
                            app_protocol: p.app_protocol.clone(),
                        })
                        .collect()
                }),
            }
        })
        .collect()
}

/// The labels of the Service's Endpoints object.
pub fn endpoints_labels(service: &Service) -> BTreeMap<String, String> {
    let mut labels = service.metadata.labels.clone().unwrap_or_default();
    let headless = service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None");
    if headless {
        labels.insert(HEADLESS_LABEL.into(), String::new());
    } else {
        labels.remove(HEADLESS_LABEL);
    }
    labels
}

/// A stable 32-bit FNV-1a hash, for slice names that do not depend on the Rust version.
fn fnv1a(data: &str) -> u32 {
    data.bytes().fold(0x811c_9dc5_u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

/// The EndpointSlices the Service should have: one per distinct port set (one, empty, if no
/// pod backs it), named `<service>-<hash of the ports>`, IPv4 only.
pub fn endpoint_slices<'a>(
    service: &Service,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<EndpointSlice> {
    let name = service.metadata.name.clone().unwrap_or_default();
    let mut groups = grouped(service, pods);
    if groups.is_empty() {
        // Upstream keeps one slice with the Service's ports and no endpoints.
        let ports = service
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .map(|ports| {
                ports
                    .iter()
                    .filter_map(|p| {
                        let number = match &p.target_port {
                            None => p.port,
                            Some(IntOrString::Int(n)) if *n > 0 => *n,
                            Some(IntOrString::Int(_)) => p.port,
                            Some(IntOrString::String(_)) => return None,
                        };
                        Some(ResolvedPort {
                            name: p.name.clone().unwrap_or_default(),
                            port: number,
                            protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
                            app_protocol: p.app_protocol.clone(),
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default();
        groups.insert(ports, Vec::new());
    }
    let mut labels = endpoints_labels(service);
    labels.insert(SERVICE_NAME_LABEL.into(), name.clone());
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY.into());
    groups
        .into_iter()
        .map(|(ports, endpoints)| {
            let signature = ports
                .iter()
                .map(|p| format!("{}/{}/{}", p.name, p.port, p.protocol))
                .collect::<Vec<_>>()
                .join(",");
            EndpointSlice {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-{:08x}", fnv1a(&signature))),
                    namespace: service.metadata.namespace.clone(),
                    labels: Some(labels.clone()),
                    ..Default::default()
                },
                address_type: "IPv4".into(),
                endpoints: endpoints
                    .into_iter()
                    .filter(|e| !e.ip.contains(':'))
                    .map(|e| Endpoint {
                        addresses: vec![e.ip],
                        conditions: Some(EndpointConditions {
                            ready: Some(e.ready),
                            serving: Some(e.ready),
                            terminating: Some(false),
                        }),
                        hostname: e.hostname,
                        node_name: e.node_name,
                        target_ref: Some(e.target),
                        ..Default::default()
                    })
                    .collect(),
                ports: Some(
                    ports
                        .into_iter()
                        .map(|p| SlicePort {
                            name: Some(p.name),
                            port: Some(p.port),
                            protocol: Some(p.protocol),
                            app_protocol: p.app_protocol,
                        })
                        .collect(),
                ),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": "default" },
            "spec": spec,
        }))
        .expect("service")
    }

    fn pod(name: &str, ip: &str, ready: bool, labels: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": name, "namespace": "default", "uid": format!("uid-{name}"), "labels": labels },
            "spec": {
                "nodeName": "n1",
                "containers": [{ "name": "c", "image": "i", "ports": [{ "name": "http", "containerPort": 8080 }] }]
            },
            "status": {
                "phase": "Running",
                "podIP": ip,
                "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }]
            }
        }))
        .expect("pod")
    }

    fn web_service() -> Service {
        service(json!({
            "selector": { "app": "web" },
            "ports": [{ "name": "http", "port": 80, "targetPort": "http" }]
        }))
    }

    fn ips(addresses: &Option<Vec<EndpointAddress>>) -> Vec<&str> {
        addresses.iter().flatten().map(|a| a.ip.as_str()).collect()
    }

    #[test]
    fn ready_and_not_ready_pods_split_and_named_port_resolves() {
        let pods = [
            pod("b", "10.88.0.3", true, json!({"app": "web"})),
            pod("a", "10.88.0.2", true, json!({"app": "web"})),
            pod("c", "10.88.0.4", false, json!({"app": "web"})),
            pod("other", "10.88.0.9", true, json!({"app": "db"})),
        ];
        let subsets = endpoint_subsets(&web_service(), &pods);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.88.0.2", "10.88.0.3"]);
        assert_eq!(ips(&subsets[0].not_ready_addresses), ["10.88.0.4"]);
        let ports = subsets[0].ports.as_ref().expect("ports");
        assert_eq!(ports[0].port, 8080);
        assert_eq!(ports[0].name.as_deref(), Some("http"));
        let target = subsets[0].addresses.as_ref().expect("addresses")[0]
            .target_ref
            .as_ref()
            .expect("target");
        assert_eq!(target.name.as_deref(), Some("a"));
        assert_eq!(target.uid.as_deref(), Some("uid-a"));
    }

    #[test]
    fn terminating_finished_and_ip_less_pods_leave_at_once() {
        let mut terminating = pod("t", "10.88.0.5", true, json!({"app": "web"}));
        terminating.metadata.deletion_timestamp =
            Some(serde_json::from_value(json!("2026-01-01T00:00:00Z")).expect("timestamp"));
        let mut finished = pod("f", "10.88.0.6", false, json!({"app": "web"}));
        if let Some(status) = finished.status.as_mut() {
            status.phase = Some("Succeeded".into());
        }
        let mut pending = pod("p", "", false, json!({"app": "web"}));
        if let Some(status) = pending.status.as_mut() {
            status.pod_ip = None;
        }
        let live = pod("l", "10.88.0.7", true, json!({"app": "web"}));
        let subsets = endpoint_subsets(&web_service(), [&terminating, &finished, &pending, &live]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.88.0.7"]);
        assert!(subsets[0].not_ready_addresses.is_none());
    }

    #[test]
    fn pods_without_the_named_port_are_left_out_and_numbers_pass_through() {
        let mut no_port = pod("n", "10.88.0.8", true, json!({"app": "web"}));
        if let Some(spec) = no_port.spec.as_mut() {
            spec.containers[0].ports = None;
        }
        let with_port = pod("w", "10.88.0.2", true, json!({"app": "web"}));
        let subsets = endpoint_subsets(&web_service(), [&no_port, &with_port]);
        assert_eq!(ips(&subsets[0].addresses), ["10.88.0.2"]);

        let numeric = service(json!({
            "selector": { "app": "web" },
            "ports": [{ "port": 80, "targetPort": 9000 }, { "name": "x", "port": 81 }]
        }));
        let subsets = endpoint_subsets(&numeric, [&no_port]);
        let mut ports: Vec<i32> = subsets[0].ports.iter().flatten().map(|p| p.port).collect();
        ports.sort();
        assert_eq!(ports, [81, 9000]);
    }

    #[test]
    fn publish_not_ready_addresses_and_other_namespaces() {
        let svc = service(json!({
            "selector": { "app": "web" },
            "publishNotReadyAddresses": true,
            "ports": [{ "port": 80 }]
        }));
        let mut elsewhere = pod("e", "10.88.0.9", true, json!({"app": "web"}));
        elsewhere.metadata.namespace = Some("other".into());
        let not_ready = pod("n", "10.88.0.2", false, json!({"app": "web"}));
        let subsets = endpoint_subsets(&svc, [&elsewhere, &not_ready]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(ips(&subsets[0].addresses), ["10.88.0.2"]);
    }

    #[test]
    fn selectorless_services_are_not_managed() {
        assert!(!has_managed_endpoints(&service(
            json!({ "ports": [{ "port": 80 }] })
        )));
        assert!(has_managed_endpoints(&web_service()));
        let external =
            service(json!({ "type": "ExternalName", "externalName": "x", "selector": {"a": "b"} }));
        assert!(!has_managed_endpoints(&external));
    }

    #[test]
    fn slices_carry_conditions_labels_and_a_stable_name() {
        let pods = [
            pod("a", "10.88.0.2", true, json!({"app": "web"})),
            pod("c", "10.88.0.4", false, json!({"app": "web"})),
        ];
        let slices = endpoint_slices(&web_service(), &pods);
        assert_eq!(slices.len(), 1);
        let slice = &slices[0];
        let labels = slice.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels[SERVICE_NAME_LABEL], "web");
        assert_eq!(labels[MANAGED_BY_LABEL], MANAGED_BY);
        assert_eq!(slice.endpoints.len(), 2);
        let ready: Vec<_> = slice
            .endpoints
            .iter()
            .map(|e| e.conditions.as_ref().and_then(|c| c.ready))
            .collect();
        assert_eq!(ready, [Some(true), Some(false)]);
        assert_eq!(slice.ports.as_ref().expect("ports")[0].port, Some(8080));
        assert_eq!(
            endpoint_slices(&web_service(), &pods)[0].metadata.name,
            slice.metadata.name
        );

        // No pods: one empty slice with the Service's ports (named ports cannot resolve).
        let empty = endpoint_slices(&web_service(), []);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].endpoints.is_empty());
    }

    #[test]
    fn headless_services_get_the_headless_label() {
        let svc = service(json!({ "clusterIP": "None", "selector": { "app": "web" } }));
        assert!(endpoints_labels(&svc).contains_key(HEADLESS_LABEL));
        let subsets = endpoint_subsets(&svc, [&pod("a", "10.88.0.2", true, json!({"app": "web"}))]);
        assert_eq!(ips(&subsets[0].addresses), ["10.88.0.2"]);
        assert!(subsets[0].ports.is_none());
    }
}
