//! Rule generation, pure: from the Services and their ready endpoints to `iptables-restore`
//! text in Tugboat's own chains (after kube-proxy's iptables mode).
//!
//! nat table:
//! - `TUGBOAT-SERVICES` (jumped to from PREROUTING and OUTPUT): one rule per ClusterIP port to
//!   its `TUGBOAT-SVC-…` chain, then node-local destinations to `TUGBOAT-NODEPORTS`.
//! - `TUGBOAT-SVC-…`: marks traffic from outside the pod network for masquerading, then picks
//!   an endpoint with `statistic --mode random --probability 1/(n-i)` (even balancing), or
//!   with `recent` first for `sessionAffinity: ClientIP`.
//! - `TUGBOAT-SEP-…`: marks hairpin traffic (a pod reaching itself) and DNATs to `ip:port`.
//! - `TUGBOAT-POSTROUTING` (from POSTROUTING): masquerades marked packets.
//!
//! filter table: `TUGBOAT-SERVICES` (from INPUT, OUTPUT, FORWARD) rejects ClusterIP and
//! NodePort traffic of ports without endpoints, so clients fail fast.
//!
//! Chain names carry a hash of what they stand for, so the same Service always gets the same
//! chains and a resync only rewrites the chains that changed ([`RuleSet::restore_text`]).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Prefix of every chain Tugboat owns.
pub const CHAIN_PREFIX: &str = "TUGBOAT-";
/// The services dispatch chain (nat and filter).
pub const SERVICES_CHAIN: &str = "TUGBOAT-SERVICES";
/// The NodePort dispatch chain (nat).
pub const NODEPORTS_CHAIN: &str = "TUGBOAT-NODEPORTS";
/// Masquerades marked packets (nat).
pub const POSTROUTING_CHAIN: &str = "TUGBOAT-POSTROUTING";
/// Marks a packet for masquerading (nat).
pub const MARK_MASQ_CHAIN: &str = "TUGBOAT-MARK-MASQ";
/// The firewall mark bit of packets to masquerade (kube-proxy's `0x4000`).
pub const MASQ_MARK: &str = "0x4000";
/// `sessionAffinity: ClientIP` timeout when the Service does not set one (3 hours).
pub const DEFAULT_AFFINITY_SECONDS: u32 = 10_800;

/// The jumps from the built-in chains into ours: `(table, built-in chain, our chain, extra
/// match)`. Installed once by [`super::apply`], removed by [`super::cleanup`].
pub const JUMPS: &[(&str, &str, &str, &str)] = &[
    ("nat", "PREROUTING", SERVICES_CHAIN, ""),
    ("nat", "OUTPUT", SERVICES_CHAIN, ""),
    ("nat", "POSTROUTING", POSTROUTING_CHAIN, ""),
    (
        "filter",
        "INPUT",
        SERVICES_CHAIN,
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "OUTPUT",
        SERVICES_CHAIN,
        "-m conntrack --ctstate NEW",
    ),
    (
        "filter",
        "FORWARD",
        SERVICES_CHAIN,
        "-m conntrack --ctstate NEW",
    ),
];

/// A layer-4 protocol the proxy handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// SCTP.
    Sctp,
}

impl Protocol {
    /// From a Service port's `protocol` (absent means TCP).
    pub fn parse(value: Option<&str>) -> Option<Self> {
        match value.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            "SCTP" => Some(Self::Sctp),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
            Self::Sctp => "sctp",
        }
    }
}

/// One ready endpoint of a Service port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Backend {
    /// The pod's IP.
    pub ip: Ipv4Addr,
    /// The port on the pod.
    pub port: u16,
}

/// One port of one Service, with its ready endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePortRules {
    /// `namespace/name:port-name`, for comments and chain names.
    pub id: String,
    /// The ClusterIP (none for headless Services, which get no rules).
    pub cluster_ip: Option<Ipv4Addr>,
    /// The Service port.
    pub port: u16,
    /// The protocol.
    pub protocol: Protocol,
    /// The NodePort, if any.
    pub node_port: Option<u16>,
    /// `Some(timeout seconds)` for `sessionAffinity: ClientIP`.
    pub affinity_seconds: Option<u32>,
    /// Ready endpoints (sorted by the caller or not: the rules sort them).
    pub backends: Vec<Backend>,
}

/// Settings of rule generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesConfig {
    /// The pod network (`10.88.0.0/16`): traffic from elsewhere to a ClusterIP is masqueraded.
    pub pod_cidr: String,
}

/// A complete rule set: the lines of each of our chains, per table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleSet {
    /// `table -> chain -> rules` (each rule without the `-A <chain>` prefix).
    pub tables: BTreeMap<&'static str, BTreeMap<String, Vec<String>>>,
}

/// A chain name: prefix plus 16 base-32 characters of a stable hash (iptables allows 28).
fn chain_name(prefix: &str, key: &str) -> String {
    // FNV-1a 64: stable across builds and Rust versions.
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut name = String::from(prefix);
    for i in 0..(64 / 5) {
        let index = ((hash >> (i * 5)) & 31) as usize;
        name.push(char::from(ALPHABET[index]));
    }
    name
}

/// A comment argument, quoted for iptables-restore (no quotes or newlines inside).
fn comment(text: &str) -> String {
    let clean: String = text
        .chars()
        .filter(|c| !matches!(c, '"' | '\n' | '\r' | '\\'))
        .take(200)
        .collect();
    format!("-m comment --comment \"{clean}\"")
}

/// The rules for `ports` (pure).
pub fn generate(config: &RulesConfig, ports: &[ServicePortRules]) -> RuleSet {
    let mut nat: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut filter: BTreeMap<String, Vec<String>> = BTreeMap::new();
    nat.insert(
        MARK_MASQ_CHAIN.into(),
        vec![format!("-j MARK --or-mark {MASQ_MARK}")],
    );
    nat.insert(
        POSTROUTING_CHAIN.into(),
        vec![
            format!("-m mark ! --mark {MASQ_MARK}/{MASQ_MARK} -j RETURN"),
            // Clear the mark so a re-traversal does not masquerade twice.
            format!("-j MARK --xor-mark {MASQ_MARK}"),
            format!(
                "{} -j MASQUERADE",
                comment("tugboat service traffic requiring SNAT")
            ),
        ],
    );
    let mut services = Vec::new();
    let mut node_ports = Vec::new();
    let mut rejects = Vec::new();

    let mut sorted: Vec<&ServicePortRules> = ports.iter().collect();
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    for port in sorted {
        let Some(cluster_ip) = port.cluster_ip else {
            continue;
        };
        let proto = port.protocol.as_str();
        let note = comment(&port.id);
        let mut backends = port.backends.clone();
        backends.sort();
        backends.dedup();
        if backends.is_empty() {
            rejects.push(format!(
                "{note} -d {cluster_ip}/32 -p {proto} -m {proto} --dport {} -j REJECT",
                port.port
            ));
            if let Some(node_port) = port.node_port {
                rejects.push(format!(
                    "{note} -m addrtype --dst-type LOCAL -p {proto} -m {proto} --dport {node_port} -j REJECT"
                ));
            }
            continue;
        }
        let svc_chain = chain_name(
            "TUGBOAT-SVC-",
            &format!("{}/{}/{}", port.id, proto, port.port),
        );
        services.push(format!(
            "{note} -d {cluster_ip}/32 -p {proto} -m {proto} --dport {} -j {svc_chain}",
            port.port
        ));
        let mut svc_rules = vec![format!(
            "{note} ! -s {} -d {cluster_ip}/32 -p {proto} -m {proto} --dport {} -j {MARK_MASQ_CHAIN}",
            config.pod_cidr, port.port
        )];
        if let Some(node_port) = port.node_port {
            let nodeport_chain = chain_name(
                "TUGBOAT-EXT-",
                &format!("{}/{}/{}", port.id, proto, node_port),
            );
            node_ports.push(format!(
                "{note} -p {proto} -m {proto} --dport {node_port} -j {nodeport_chain}"
            ));
            // Traffic to a NodePort comes from anywhere (127.0.0.1 included): always SNAT, so
            // replies come back through this node.
            nat.insert(
                nodeport_chain,
                vec![
                    format!("{note} -j {MARK_MASQ_CHAIN}"),
                    format!("{note} -j {svc_chain}"),
                ],
            );
        }
        let endpoint_chains: Vec<(Backend, String)> = backends
            .iter()
            .map(|b| {
                let chain = chain_name(
                    "TUGBOAT-SEP-",
                    &format!("{}/{}/{}:{}", port.id, proto, b.ip, b.port),
                );
                (*b, chain)
            })
            .collect();
        if let Some(seconds) = port.affinity_seconds {
            for (_, chain) in &endpoint_chains {
                svc_rules.push(format!(
                    "{note} -m recent --name {chain} --rcheck --seconds {seconds} --reap -j {chain}"
                ));
            }
        }
        let count = endpoint_chains.len();
        for (index, (backend, chain)) in endpoint_chains.iter().enumerate() {
            let remaining = count - index;
            let target = format!("{} -> {}:{}", port.id, backend.ip, backend.port);
            if remaining > 1 {
                let probability = 1.0 / remaining as f64;
                svc_rules.push(format!(
                    "{} -m statistic --mode random --probability {probability:.10} -j {chain}",
                    comment(&target)
                ));
            } else {
                svc_rules.push(format!("{} -j {chain}", comment(&target)));
            }
            let recent = if port.affinity_seconds.is_some() {
                format!(" -m recent --name {chain} --set")
            } else {
                String::new()
            };
            nat.insert(
                chain.clone(),
                vec![
                    format!(
                        "{} -s {}/32 -j {MARK_MASQ_CHAIN}",
                        comment(&target),
                        backend.ip
                    ),
                    format!(
                        "{}{recent} -p {proto} -m {proto} -j DNAT --to-destination {}:{}",
                        comment(&target),
                        backend.ip,
                        backend.port
                    ),
                ],
            );
        }
        nat.insert(svc_chain, svc_rules);
    }
    // NodePorts last: only for addresses of this node (127.0.0.1 included).
    services.push(format!(
        "{} -m addrtype --dst-type LOCAL -j {NODEPORTS_CHAIN}",
        comment("tugboat service nodeports; must be last")
    ));
    nat.insert(SERVICES_CHAIN.into(), services);
    nat.insert(NODEPORTS_CHAIN.into(), node_ports);
    filter.insert(SERVICES_CHAIN.into(), rejects);
    let mut tables = BTreeMap::new();
    tables.insert("nat", nat);
    tables.insert("filter", filter);
    RuleSet { tables }
}

impl RuleSet {
    /// Every chain, as `(table, chain)`.
    pub fn chains(&self) -> BTreeSet<(&'static str, String)> {
        self.tables
            .iter()
            .flat_map(|(table, chains)| chains.keys().map(|c| (*table, c.clone())))
            .collect()
    }

    /// `iptables-restore --noflush` input that turns `previous` (what is applied now; empty
    /// for "unknown", which rewrites everything) into `self`: only changed chains are
    /// declared (declaring flushes them) and rewritten; chains gone are flushed and deleted.
    /// `stale` names further chains of ours found on the host to delete.
    /// Returns `None` when nothing changed.
    pub fn restore_text(
        &self,
        previous: &RuleSet,
        stale: &BTreeSet<(String, String)>,
    ) -> Option<String> {
        let mut text = String::new();
        let mut changed = false;
        for table in ["nat", "filter"] {
            let empty = BTreeMap::new();
            let now = self.tables.get(table).unwrap_or(&empty);
            let before = previous.tables.get(table).unwrap_or(&empty);
            let mut declare = Vec::new();
            let mut rules = Vec::new();
            for (chain, lines) in now {
                if before.get(chain) == Some(lines) {
                    continue;
                }
                declare.push(chain.clone());
                for line in lines {
                    rules.push(format!("-A {chain} {line}"));
                }
            }
            let mut removed: BTreeSet<String> = before
                .keys()
                .filter(|c| !now.contains_key(*c))
                .cloned()
                .collect();
            removed.extend(
                stale
                    .iter()
                    .filter(|(t, c)| t == table && !now.contains_key(c))
                    .map(|(_, c)| c.clone()),
            );
            if declare.is_empty() && removed.is_empty() {
                continue;
            }
            changed = true;
            let _ = writeln!(text, "*{table}");
            for chain in declare.iter().chain(removed.iter()) {
                let _ = writeln!(text, ":{chain} - [0:0]");
            }
            for rule in rules {
                let _ = writeln!(text, "{rule}");
            }
            // Declared (so flushed) above; nothing jumps to them any more.
            for chain in &removed {
                let _ = writeln!(text, "-X {chain}");
            }
            let _ = writeln!(text, "COMMIT");
        }
        changed.then_some(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RulesConfig {
        RulesConfig {
            pod_cidr: "10.88.0.0/16".into(),
        }
    }

    fn web(backends: &[(u8, u16)]) -> ServicePortRules {
        ServicePortRules {
            id: "default/web:http".into(),
            cluster_ip: Some(Ipv4Addr::new(10, 96, 0, 20)),
            port: 80,
            protocol: Protocol::Tcp,
            node_port: Some(30080),
            affinity_seconds: None,
            backends: backends
                .iter()
                .map(|(last, port)| Backend {
                    ip: Ipv4Addr::new(10, 88, 0, *last),
                    port: *port,
                })
                .collect(),
        }
    }

    fn full_text(rules: &RuleSet) -> String {
        rules
            .restore_text(&RuleSet::default(), &BTreeSet::new())
            .expect("text")
    }

    #[test]
    fn cluster_ip_dnats_evenly_to_every_ready_endpoint() {
        let rules = generate(&config(), &[web(&[(3, 8080), (2, 8080), (4, 8080)])]);
        let text = full_text(&rules);
        let nat = &rules.tables["nat"];
        let services = &nat[SERVICES_CHAIN];
        assert!(services[0].contains("-d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j TUGBOAT-SVC-"));
        assert!(
            services
                .last()
                .expect("rule")
                .contains("--dst-type LOCAL -j TUGBOAT-NODEPORTS")
        );
        let svc_chain = nat
            .keys()
            .find(|c| c.starts_with("TUGBOAT-SVC-"))
            .expect("svc chain");
        let svc = &nat[svc_chain];
        assert!(svc[0].contains("! -s 10.88.0.0/16 -d 10.96.0.20/32"));
        assert!(svc[0].ends_with(&format!("-j {MARK_MASQ_CHAIN}")));
        // 1/3, 1/2, then the rest: each endpoint gets a third.
        assert!(svc[1].contains("--probability 0.3333333333"));
        assert!(svc[2].contains("--probability 0.5000000000"));
        assert!(!svc[3].contains("statistic"));
        for ip in ["10.88.0.2", "10.88.0.3", "10.88.0.4"] {
            assert!(
                text.contains(&format!("-j DNAT --to-destination {ip}:8080")),
                "{text}"
            );
            assert!(
                text.contains(&format!("-s {ip}/32 -j {MARK_MASQ_CHAIN}")),
                "hairpin"
            );
        }
        assert!(text.starts_with("*nat\n"));
        assert!(text.contains(":TUGBOAT-SERVICES - [0:0]\n"));
        assert!(
            text.contains("-A TUGBOAT-POSTROUTING -j MASQUERADE") || text.contains("-j MASQUERADE")
        );
        assert_eq!(text.matches("COMMIT").count(), 2);
        // Chain names fit iptables' 28 characters.
        assert!(rules.chains().iter().all(|(_, c)| c.len() <= 28));
    }

    #[test]
    fn node_ports_masquerade_and_reach_the_service_chain() {
        let rules = generate(&config(), &[web(&[(2, 8080)])]);
        let nat = &rules.tables["nat"];
        let node_ports = &nat[NODEPORTS_CHAIN];
        assert_eq!(node_ports.len(), 1);
        assert!(node_ports[0].contains("-p tcp -m tcp --dport 30080 -j TUGBOAT-EXT-"));
        let ext = nat
            .iter()
            .find(|(c, _)| c.starts_with("TUGBOAT-EXT-"))
            .map(|(_, r)| r)
            .expect("ext chain");
        assert!(ext[0].ends_with(&format!("-j {MARK_MASQ_CHAIN}")));
        assert!(ext[1].contains("-j TUGBOAT-SVC-"));
    }

    #[test]
    fn session_affinity_uses_recent() {
        let mut port = web(&[(2, 8080), (3, 8080)]);
        port.affinity_seconds = Some(600);
        let rules = generate(&config(), &[port]);
        let text = full_text(&rules);
        assert_eq!(text.matches("--rcheck --seconds 600 --reap").count(), 2);
        assert_eq!(text.matches("-m recent --name TUGBOAT-SEP-").count(), 4);
        assert!(text.contains("--set -p tcp -m tcp -j DNAT"));
    }

    #[test]
    fn no_endpoints_reject_and_headless_get_nothing() {
        let mut headless = web(&[(2, 8080)]);
        headless.id = "default/headless:http".into();
        headless.cluster_ip = None;
        let rules = generate(&config(), &[web(&[]), headless]);
        let reject = &rules.tables["filter"][SERVICES_CHAIN];
        assert_eq!(reject.len(), 2);
        assert!(reject[0].contains("-d 10.96.0.20/32 -p tcp -m tcp --dport 80 -j REJECT"));
        assert!(reject[1].contains("--dport 30080 -j REJECT"));
        let nat = &rules.tables["nat"];
        assert!(!nat.keys().any(|c| c.starts_with("TUGBOAT-SVC-")));
        assert_eq!(nat[SERVICES_CHAIN].len(), 1, "only the nodeports jump");
    }

    #[test]
    fn resync_rewrites_only_changed_chains_and_deletes_gone_ones() {
        let before = generate(&config(), &[web(&[(2, 8080), (3, 8080)])]);
        assert_eq!(before.restore_text(&before, &BTreeSet::new()), None);
        let after = generate(&config(), &[web(&[(2, 8080)])]);
        let text = after
            .restore_text(&before, &BTreeSet::new())
            .expect("changes");
        // The service chain changed, 10.88.0.3's chain is deleted, nothing else is touched.
        assert!(text.contains("-X TUGBOAT-SEP-"));
        assert!(!text.contains(":TUGBOAT-SERVICES "));
        assert!(!text.contains("*filter"));
        let gone = before
            .chains()
            .difference(&after.chains())
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(gone.len(), 1);
        assert!(text.contains(&format!("-X {}", gone[0].1)));
        // A stale chain found on the host is removed too.
        let stale = BTreeSet::from([("nat".to_owned(), "TUGBOAT-SVC-OLD".to_owned())]);
        let text = after.restore_text(&after, &stale).expect("stale");
        assert!(text.contains(":TUGBOAT-SVC-OLD - [0:0]\n-X TUGBOAT-SVC-OLD\n"));
    }

    #[test]
    fn chain_names_are_stable_and_distinct() {
        assert_eq!(
            chain_name("TUGBOAT-SVC-", "a"),
            chain_name("TUGBOAT-SVC-", "a")
        );
        assert_ne!(
            chain_name("TUGBOAT-SVC-", "a"),
            chain_name("TUGBOAT-SVC-", "b")
        );
        assert_eq!(chain_name("TUGBOAT-SVC-", "a").len(), 24);
    }
}
