//! The cluster zone, pure: from Services and EndpointSlices to the answer for one question,
//! after the Kubernetes DNS specification (what CoreDNS's `kubernetes` plugin serves).
//!
//! - `<svc>.<ns>.svc.<zone>`: A with the ClusterIP; for a headless Service (`clusterIP: None`)
//!   one A per ready endpoint address (every address with `publishNotReadyAddresses`);
//!   CNAME to `spec.externalName` for `type: ExternalName`.
//! - `<hostname>.<svc>.<ns>.svc.<zone>` of a headless Service: A of that endpoint, whose
//!   hostname is the endpoint's `hostname` or its address with dashes (`10-88-0-5`).
//! - `_<port>._<proto>.<svc>.<ns>.svc.<zone>` for every named port: SRV to the Service name
//!   (ClusterIP) or to each endpoint's name (headless).
//! - `<a-b-c-d>.<ns>.pod.<zone>`: A of that address (CoreDNS's `pods insecure`, kubeadm's).
//! - PTR of ClusterIPs and headless endpoint addresses.
//! - A name in the zone that does not exist is NXDOMAIN; a name that exists without records
//!   of the asked type (AAAA of a Service, `svc.<zone>`) is NOERROR with no answer, so a
//!   resolver asking A and AAAA at once keeps the A.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::Arc;

use hickory_proto::rr::RecordType;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::proxy::model::SERVICE_NAME_LABEL;

/// Time to live of every answer from the cluster zone (CoreDNS's default).
pub const TTL_SECONDS: u32 = 5;

/// The data of one record.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RecordData {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// A service location: priority, weight, port, target name.
    Srv {
        /// Lower is preferred.
        priority: u16,
        /// Share among equal priorities.
        weight: u16,
        /// The port.
        port: u16,
        /// The host name serving it.
        target: String,
    },
    /// An alias.
    Cname(String),
    /// A reverse pointer.
    Ptr(String),
    /// The zone's start of authority (its fields are the server's).
    Soa,
}

impl RecordData {
    /// The record's type.
    pub fn record_type(&self) -> RecordType {
        match self {
            RecordData::A(_) => RecordType::A,
            RecordData::Srv { .. } => RecordType::SRV,
            RecordData::Cname(_) => RecordType::CNAME,
            RecordData::Ptr(_) => RecordType::PTR,
            RecordData::Soa => RecordType::SOA,
        }
    }
}

/// The answer to one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The name is in the cluster zone: these records (possibly none).
    Found(Vec<(String, RecordData)>),
    /// The name is in the cluster zone and does not exist.
    NxDomain,
    /// Not ours: ask the host's resolvers.
    Forward,
}

/// Every name of the cluster zone, rebuilt from the watched objects on each change.
#[derive(Debug, Clone, Default)]
pub struct ClusterRecords {
    domain: String,
    /// Records by lower-case name without the trailing dot.
    names: BTreeMap<String, Vec<RecordData>>,
    /// Names that exist without records of their own (`<ns>.svc.<zone>`, `_tcp.<svc>…`).
    parents: BTreeSet<String>,
    /// Reverse zones we answer for, as `(network, prefix length)`.
    reverse: Vec<(Ipv4Addr, u8)>,
}

/// Lower-case, without a trailing dot.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A ready endpoint of a Service as DNS sees it.
struct DnsEndpoint {
    ip: Ipv4Addr,
    hostname: String,
    /// Named ports: `(name, protocol, port)`.
    ports: Vec<(String, String, u16)>,
}

fn dashed(ip: Ipv4Addr) -> String {
    ip.to_string().replace('.', "-")
}

/// The addresses of the slices of `namespace/service` that DNS publishes.
fn endpoints_of(
    namespace: &str,
    service: &str,
    publish_not_ready: bool,
    slices: &[Arc<EndpointSlice>],
) -> Vec<DnsEndpoint> {
    let mut out: Vec<DnsEndpoint> = Vec::new();
    for slice in slices {
        let ours = slice.metadata.namespace.as_deref() == Some(namespace)
            && slice.address_type == "IPv4"
            && slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(SERVICE_NAME_LABEL))
                .is_some_and(|n| n == service);
        if !ours {
            continue;
        }
        let ports: Vec<(String, String, u16)> = slice
            .ports
            .iter()
            .flatten()
            .filter_map(|p| {
                let name = p.name.clone().filter(|n| !n.is_empty())?;
                let port = u16::try_from(p.port?).ok()?;
                let protocol = p.protocol.clone().unwrap_or_else(|| "TCP".into());
                Some((name, protocol.to_ascii_lowercase(), port))
            })
            .collect();
        for endpoint in &slice.endpoints {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready && !publish_not_ready {
                continue;
            }
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<Ipv4Addr>() else {
                    continue;
                };
                if out.iter().any(|e| e.ip == ip) {
                    continue;
                }
                let hostname = endpoint
                    .hostname
                    .as_deref()
                    .filter(|h| !h.is_empty())
                    .map(str::to_ascii_lowercase)
                    .unwrap_or_else(|| dashed(ip));
                out.push(DnsEndpoint {
                    ip,
                    hostname,
                    ports: ports.clone(),
                });
            }
        }
    }
    out.sort_by_key(|e| e.ip);
    out
}

impl ClusterRecords {
    /// The zone `domain` (e.g. `cluster.local`) from `services` and their `slices`; PTR
    /// questions for addresses in `reverse` (service and pod CIDRs) are answered here too.
    pub fn build(
        domain: &str,
        services: &[Arc<Service>],
        slices: &[Arc<EndpointSlice>],
        reverse: &[(Ipv4Addr, u8)],
    ) -> Self {
        let domain = normalize(domain);
        let mut records = ClusterRecords {
            names: BTreeMap::new(),
            parents: BTreeSet::new(),
            reverse: reverse.to_vec(),
            domain,
        };
        for service in services {
            records.add_service(service, slices);
        }
        for list in records.names.values_mut() {
            list.sort();
            list.dedup();
        }
        records
    }

    fn add(&mut self, name: String, data: RecordData) {
        self.names.entry(name).or_default().push(data);
    }

    fn add_service(&mut self, service: &Service, slices: &[Arc<EndpointSlice>]) {
        let (Some(namespace), Some(name), Some(spec)) = (
            service.metadata.namespace.as_deref(),
            service.metadata.name.as_deref(),
            service.spec.as_ref(),
        ) else {
            return;
        };
        let zone = &self.domain;
        let namespace_name = format!("{namespace}.svc.{zone}");
        let base = format!("{name}.{namespace_name}");
        self.parents.insert(namespace_name);
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec.external_name.as_deref().filter(|t| !t.is_empty()) {
                self.add(base, RecordData::Cname(normalize(target)));
            }
            return;
        }
        let cluster_ip = spec.cluster_ip.as_deref().unwrap_or_default();
        if cluster_ip == "None" {
            let publish = spec.publish_not_ready_addresses.unwrap_or(false);
            // Headless: the endpoints themselves, and SRV per endpoint and named port.
            self.parents.insert(base.clone());
            for endpoint in endpoints_of(namespace, name, publish, slices) {
                let host = format!("{}.{base}", endpoint.hostname);
                self.add(base.clone(), RecordData::A(endpoint.ip));
                self.add(host.clone(), RecordData::A(endpoint.ip));
                self.add(reverse_name(endpoint.ip), RecordData::Ptr(host.clone()));
                for (port_name, protocol, port) in &endpoint.ports {
                    self.add_srv(&base, port_name, protocol, *port, &host);
                }
            }
            return;
        }
        let Ok(ip) = cluster_ip.parse::<Ipv4Addr>() else {
            // Not allocated yet (or IPv6): no records, but the name exists.
            self.parents.insert(base);
            return;
        };
        self.add(base.clone(), RecordData::A(ip));
        self.add(reverse_name(ip), RecordData::Ptr(base.clone()));
        for port in spec.ports.iter().flatten() {
            let (Some(port_name), Ok(number)) = (
                port.name.as_deref().filter(|n| !n.is_empty()),
                u16::try_from(port.port),
            ) else {
                continue;
            };
            let protocol = port
                .protocol
                .as_deref()
                .unwrap_or("TCP")
                .to_ascii_lowercase();
            let target = base.clone();
            self.add_srv(&base, port_name, &protocol, number, &target);
        }
    }

    fn add_srv(&mut self, base: &str, port_name: &str, protocol: &str, port: u16, target: &str) {
        let protocol_name = format!("_{protocol}.{base}");
        let name = format!("_{}.{protocol_name}", port_name.to_ascii_lowercase());
        self.parents.insert(protocol_name);
        self.add(
            name,
            RecordData::Srv {
                priority: 0,
                weight: 100,
                port,
                target: target.to_owned(),
            },
        );
    }

    /// The cluster domain, lower-case without the trailing dot.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// Whether `name` (normalized) is in the zone.
    fn in_zone(&self, name: &str) -> bool {
        name == self.domain
            || name
                .strip_suffix(&self.domain)
                .is_some_and(|prefix| prefix.ends_with('.'))
    }

    /// The answer to `name` (any case, trailing dot or not) of type `qtype`.
    pub fn lookup(&self, name: &str, qtype: RecordType) -> Lookup {
        let name = normalize(name);
        if let Some(ip) = parse_reverse_name(&name) {
            return self.lookup_reverse(&name, ip, qtype);
        }
        if !self.in_zone(&name) {
            return Lookup::Forward;
        }
        if let Some(records) = self.names.get(&name) {
            return Lookup::Found(select(&name, records, qtype));
        }
        if let Some(ip) = self.pod_address(&name) {
            let records = [RecordData::A(ip)];
            return Lookup::Found(select(&name, &records, qtype));
        }
        let zone = &self.domain;
        let fixed = [zone.clone(), format!("svc.{zone}"), format!("pod.{zone}")];
        if name == *zone && matches!(qtype, RecordType::SOA | RecordType::ANY) {
            return Lookup::Found(vec![(name, RecordData::Soa)]);
        }
        if fixed.contains(&name) || self.parents.contains(&name) {
            return Lookup::Found(Vec::new());
        }
        // `<ns>.pod.<zone>` exists for every namespace that has Services; close enough.
        if let Some(namespace) = name
            .strip_suffix(&format!(".pod.{zone}"))
            .filter(|ns| !ns.contains('.'))
            && self.parents.contains(&format!("{namespace}.svc.{zone}"))
        {
            return Lookup::Found(Vec::new());
        }
        Lookup::NxDomain
    }

    /// `a-b-c-d.<ns>.pod.<zone>` as an address.
    fn pod_address(&self, name: &str) -> Option<Ipv4Addr> {
        let rest = name.strip_suffix(&format!(".pod.{}", self.domain))?;
        let (label, namespace) = rest.split_once('.')?;
        if namespace.contains('.') || namespace.is_empty() {
            return None;
        }
        label.replace('-', ".").parse().ok()
    }

    fn lookup_reverse(&self, name: &str, ip: Ipv4Addr, qtype: RecordType) -> Lookup {
        if let Some(records) = self.names.get(name) {
            return Lookup::Found(select(name, records, qtype));
        }
        let ours = self.reverse.iter().any(|&(network, prefix)| {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(ip) & mask == u32::from(network) & mask
        });
        if ours {
            Lookup::NxDomain
        } else {
            Lookup::Forward
        }
    }
}

/// The records of `name` that answer `qtype`: those of the type, or the CNAME.
fn select(name: &str, records: &[RecordData], qtype: RecordType) -> Vec<(String, RecordData)> {
    let cname = records
        .iter()
        .find(|r| matches!(r, RecordData::Cname(_)) && qtype != RecordType::CNAME);
    if let Some(cname) = cname {
        return vec![(name.to_owned(), cname.clone())];
    }
    records
        .iter()
        .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
        .map(|r| (name.to_owned(), r.clone()))
        .collect()
}

/// `d.c.b.a.in-addr.arpa` of `a.b.c.d`.
pub fn reverse_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("{d}.{c}.{b}.{a}.in-addr.arpa")
}

/// The address of a full `d.c.b.a.in-addr.arpa` name.
fn parse_reverse_name(name: &str) -> Option<Ipv4Addr> {
    let octets = name.strip_suffix(".in-addr.arpa")?;
    let parts: Vec<u8> = octets
        .split('.')
        .map(|p| p.parse::<u8>())
        .collect::<Result<_, _>>()
        .ok()?;
    let [d, c, b, a] = parts.as_slice() else {
        return None;
    };
    Some(Ipv4Addr::new(*a, *b, *c, *d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn service(value: serde_json::Value) -> Arc<Service> {
        Arc::new(serde_json::from_value(value).expect("service"))
    }

    fn slice(value: serde_json::Value) -> Arc<EndpointSlice> {
        Arc::new(serde_json::from_value(value).expect("slice"))
    }

    fn zone() -> ClusterRecords {
        let web = service(json!({
            "metadata": { "name": "web", "namespace": "shop" },
            "spec": { "clusterIP": "10.96.0.20", "ports": [
                { "name": "http", "port": 80, "targetPort": 8080 },
                { "name": "dns", "port": 53, "protocol": "UDP" },
                { "port": 9000 }
            ] }
        }));
        let db = service(json!({
            "metadata": { "name": "db", "namespace": "shop" },
            "spec": { "clusterIP": "None", "ports": [{ "name": "pg", "port": 5432 }] }
        }));
        let external = service(json!({
            "metadata": { "name": "ext", "namespace": "shop" },
            "spec": { "type": "ExternalName", "externalName": "Example.COM." }
        }));
        let db_slice = slice(json!({
            "metadata": { "name": "db-1", "namespace": "shop",
                          "labels": { "kubernetes.io/service-name": "db" } },
            "addressType": "IPv4",
            "ports": [{ "name": "pg", "port": 15432, "protocol": "TCP" }],
            "endpoints": [
                { "addresses": ["10.88.0.7"], "conditions": { "ready": true }, "hostname": "db-0" },
                { "addresses": ["10.88.0.5"] },
                { "addresses": ["10.88.0.9"], "conditions": { "ready": false } }
            ]
        }));
        // Same name, other namespace: must not leak into shop's db.
        let other_slice = slice(json!({
            "metadata": { "name": "db-x", "namespace": "other",
                          "labels": { "kubernetes.io/service-name": "db" } },
            "addressType": "IPv4",
            "endpoints": [{ "addresses": ["10.88.0.99"] }]
        }));
        ClusterRecords::build(
            "Cluster.Local.",
            &[web, db, external],
            &[db_slice, other_slice],
            &[(Ipv4Addr::new(10, 96, 0, 0), 16)],
        )
    }

    fn found(lookup: Lookup) -> Vec<RecordData> {
        match lookup {
            Lookup::Found(records) => records.into_iter().map(|(_, r)| r).collect(),
            other => panic!("expected records, got {other:?}"),
        }
    }

    #[test]
    fn a_service_name_is_its_cluster_ip_in_any_case() {
        let zone = zone();
        assert_eq!(
            found(zone.lookup("web.shop.svc.cluster.local.", RecordType::A)),
            [RecordData::A(Ipv4Addr::new(10, 96, 0, 20))]
        );
        assert_eq!(
            found(zone.lookup("WEB.Shop.SVC.cluster.local", RecordType::A)),
            [RecordData::A(Ipv4Addr::new(10, 96, 0, 20))]
        );
    }

    #[test]
    fn existing_names_without_the_type_are_empty_and_unknown_ones_nxdomain() {
        let zone = zone();
        assert!(found(zone.lookup("web.shop.svc.cluster.local", RecordType::AAAA)).is_empty());
        assert_eq!(
            found(zone.lookup("cluster.local", RecordType::SOA)),
            [RecordData::Soa]
        );
        for name in [
            "cluster.local",
            "svc.cluster.local",
            "shop.svc.cluster.local",
            "_tcp.web.shop.svc.cluster.local",
        ] {
            assert!(found(zone.lookup(name, RecordType::A)).is_empty(), "{name}");
        }
        for name in [
            "nope.shop.svc.cluster.local",
            "web.nope.svc.cluster.local",
            "web.shop.svc.cluster.local.shop.svc.cluster.local",
            "example.com.cluster.local",
            "_http._udp.web.shop.svc.cluster.local",
        ] {
            assert_eq!(zone.lookup(name, RecordType::A), Lookup::NxDomain, "{name}");
        }
    }

    #[test]
    fn names_outside_the_zone_are_forwarded() {
        let zone = zone();
        for name in ["example.com", "cluster.local.example.com", "xcluster.local"] {
            assert_eq!(zone.lookup(name, RecordType::A), Lookup::Forward, "{name}");
        }
        // A reverse name outside the service CIDR is not ours either.
        assert_eq!(
            zone.lookup("1.0.0.127.in-addr.arpa", RecordType::PTR),
            Lookup::Forward
        );
    }

    #[test]
    fn headless_services_answer_ready_pod_ips_and_endpoint_names() {
        let zone = zone();
        assert_eq!(
            found(zone.lookup("db.shop.svc.cluster.local", RecordType::A)),
            [
                RecordData::A(Ipv4Addr::new(10, 88, 0, 5)),
                RecordData::A(Ipv4Addr::new(10, 88, 0, 7)),
            ]
        );
        assert_eq!(
            found(zone.lookup("db-0.db.shop.svc.cluster.local", RecordType::A)),
            [RecordData::A(Ipv4Addr::new(10, 88, 0, 7))]
        );
        assert_eq!(
            found(zone.lookup("10-88-0-5.db.shop.svc.cluster.local", RecordType::A)),
            [RecordData::A(Ipv4Addr::new(10, 88, 0, 5))]
        );
        // The not-ready endpoint has no name.
        assert_eq!(
            zone.lookup("10-88-0-9.db.shop.svc.cluster.local", RecordType::A),
            Lookup::NxDomain
        );
    }

    #[test]
    fn srv_records_for_named_ports() {
        let zone = zone();
        assert_eq!(
            found(zone.lookup("_http._tcp.web.shop.svc.cluster.local", RecordType::SRV)),
            [RecordData::Srv {
                priority: 0,
                weight: 100,
                port: 80,
                target: "web.shop.svc.cluster.local".into()
            }]
        );
        assert_eq!(
            found(zone.lookup("_dns._udp.web.shop.svc.cluster.local", RecordType::SRV)).len(),
            1
        );
        // Headless: one per endpoint, to its name and the endpoint's port.
        assert_eq!(
            found(zone.lookup("_pg._tcp.db.shop.svc.cluster.local", RecordType::SRV)),
            [
                RecordData::Srv {
                    priority: 0,
                    weight: 100,
                    port: 15432,
                    target: "10-88-0-5.db.shop.svc.cluster.local".into()
                },
                RecordData::Srv {
                    priority: 0,
                    weight: 100,
                    port: 15432,
                    target: "db-0.db.shop.svc.cluster.local".into()
                },
            ]
        );
    }

    #[test]
    fn external_names_pods_and_reverse_lookups() {
        let zone = zone();
        assert_eq!(
            found(zone.lookup("ext.shop.svc.cluster.local", RecordType::A)),
            [RecordData::Cname("example.com".into())]
        );
        assert_eq!(
            found(zone.lookup("10-88-0-42.shop.pod.cluster.local", RecordType::A)),
            [RecordData::A(Ipv4Addr::new(10, 88, 0, 42))]
        );
        assert_eq!(
            found(zone.lookup("20.0.96.10.in-addr.arpa.", RecordType::PTR)),
            [RecordData::Ptr("web.shop.svc.cluster.local".into())]
        );
        assert_eq!(
            zone.lookup("21.0.96.10.in-addr.arpa", RecordType::PTR),
            Lookup::NxDomain
        );
    }
}
