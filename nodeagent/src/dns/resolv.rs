//! The pods' resolv.conf, as kubelet writes it, passed to the runtime as the sandbox's
//! `dns_config`: `ClusterFirst` (the default) points at the cluster DNS with the
//! `<ns>.svc.<zone> svc.<zone> <zone>` search path and `ndots:5`; `Default` gets the host's
//! resolvers; `None` only `spec.dnsConfig`. `spec.dnsConfig` adds to the first two.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use k8s_openapi::api::core::v1::Pod;
use tugboat_runtime::cri::v1::DnsConfig;

/// Kubelet's limits: resolvers read at most 3 nameservers; 32 search domains.
const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;

/// A parsed resolv.conf.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvConf {
    /// `nameserver` lines, in order.
    pub nameservers: Vec<IpAddr>,
    /// The `search` (or `domain`) list.
    pub searches: Vec<String>,
    /// `options`, e.g. `ndots:2`.
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text; unknown lines are ignored, the last `search` wins.
    pub fn parse(text: &str) -> Self {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or_default();
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(ip) = words.next().and_then(|w| w.parse().ok()) {
                        conf.nameservers.push(ip);
                    }
                }
                Some("search" | "domain") => {
                    conf.searches = words.map(str::to_owned).collect();
                }
                Some("options") => conf.options.extend(words.map(str::to_owned)),
                _ => {}
            }
        }
        conf
    }

    /// Reads and parses `path`; a missing or unreadable file is empty.
    pub fn read(path: &Path) -> Self {
        std::fs::read_to_string(path)
            .map(|text| Self::parse(&text))
            .unwrap_or_default()
    }

    /// The host's resolvers as pods can use them: loopback stub resolvers (systemd-resolved's
    /// 127.0.0.53) do not answer inside a pod's network namespace, so they are left out, and
    /// systemd-resolved's upstream list is used if that leaves none (what kubelet's
    /// `--resolv-conf` is set to on such hosts).
    pub fn host_for_pods() -> Self {
        let mut conf = Self::read(Path::new("/etc/resolv.conf"));
        conf.nameservers.retain(|ip| !ip.is_loopback());
        if conf.nameservers.is_empty() {
            let upstream = Self::read(Path::new("/run/systemd/resolve/resolv.conf"));
            conf.nameservers = upstream
                .nameservers
                .into_iter()
                .filter(|ip| !ip.is_loopback())
                .collect();
        }
        conf
    }
}

/// What the node knows to write pods' DNS settings.
#[derive(Debug, Clone, Default)]
pub struct PodDns {
    /// The cluster DNS address and domain; `None` when the node runs no cluster DNS
    /// (`ClusterFirst` then falls back to the host's settings, as kubelet does).
    pub cluster: Option<(Ipv4Addr, String)>,
    /// The host's resolvers as pods see them.
    pub host: ResolvConf,
}

impl PodDns {
    /// The sandbox's DNS settings for `pod`; `None` lets the runtime copy the host's file
    /// (only when there is nothing to say).
    pub fn sandbox_config(&self, pod: &Pod) -> Option<DnsConfig> {
        let spec = pod.spec.as_ref()?;
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
        let host_network = spec.host_network.unwrap_or(false);
        let cluster_first = match policy {
            "ClusterFirstWithHostNet" => true,
            "ClusterFirst" => !host_network,
            _ => false,
        };
        let mut conf = match (policy, cluster_first, &self.cluster) {
            ("None", _, _) => ResolvConf::default(),
            (_, true, Some((server, domain))) => ResolvConf {
                nameservers: vec![IpAddr::V4(*server)],
                searches: [
                    format!("{namespace}.svc.{domain}"),
                    format!("svc.{domain}"),
                    domain.clone(),
                ]
                .into_iter()
                .chain(self.host.searches.iter().cloned())
                .collect(),
                options: vec!["ndots:5".to_owned()],
            },
            _ => self.host.clone(),
        };
        if let Some(extra) = spec.dns_config.as_ref() {
            for server in extra.nameservers.iter().flatten() {
                if let Ok(ip) = server.parse() {
                    conf.nameservers.push(ip);
                }
            }
            conf.searches
                .extend(extra.searches.iter().flatten().cloned());
            for option in extra.options.iter().flatten() {
                let text = match option.value.as_deref() {
                    Some(value) => format!("{}:{value}", option.name.as_deref().unwrap_or("")),
                    None => option.name.clone().unwrap_or_default(),
                };
                let name = option.name.as_deref().unwrap_or_default();
                // The pod's value of an option replaces the base one.
                conf.options
                    .retain(|o| o.split(':').next().unwrap_or_default() != name);
                conf.options.push(text);
            }
        }
        let mut searches: Vec<String> = Vec::new();
        for search in conf.searches {
            if !searches.contains(&search) {
                searches.push(search);
            }
        }
        searches.truncate(MAX_SEARCHES);
        let config = DnsConfig {
            servers: conf
                .nameservers
                .iter()
                .take(MAX_NAMESERVERS)
                .map(ToString::to_string)
                .collect(),
            searches,
            options: conf.options,
        };
        let empty =
            config.servers.is_empty() && config.searches.is_empty() && config.options.is_empty();
        (!empty).then_some(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({
            "metadata": { "name": "p", "namespace": "shop" },
            "spec": spec,
        }))
        .expect("pod")
    }

    fn node() -> PodDns {
        PodDns {
            cluster: Some((Ipv4Addr::new(10, 96, 0, 10), "cluster.local".into())),
            host: ResolvConf::parse(
                "# generated\nnameserver 192.0.2.53\nsearch corp.example\noptions edns0\n",
            ),
        }
    }

    #[test]
    fn parses_resolv_conf_and_drops_loopback_for_pods() {
        let conf = ResolvConf::parse(
            "nameserver 127.0.0.53\nnameserver 192.0.2.1 ; comment\nnameserver bogus\ndomain a.example\nsearch b.example c.example\noptions ndots:2 rotate\n",
        );
        assert_eq!(conf.nameservers.len(), 2);
        assert_eq!(conf.searches, ["b.example", "c.example"]);
        assert_eq!(conf.options, ["ndots:2", "rotate"]);
    }

    #[test]
    fn cluster_first_points_at_the_cluster_dns_with_kubelets_search_path() {
        let config = node()
            .sandbox_config(&pod(json!({ "containers": [] })))
            .expect("config");
        assert_eq!(config.servers, ["10.96.0.10"]);
        assert_eq!(
            config.searches,
            [
                "shop.svc.cluster.local",
                "svc.cluster.local",
                "cluster.local",
                "corp.example"
            ]
        );
        assert_eq!(config.options, ["ndots:5"]);
    }

    #[test]
    fn default_and_host_network_get_the_hosts_resolvers() {
        for spec in [
            json!({ "containers": [], "dnsPolicy": "Default" }),
            json!({ "containers": [], "hostNetwork": true }),
        ] {
            let config = node().sandbox_config(&pod(spec)).expect("config");
            assert_eq!(config.servers, ["192.0.2.53"]);
            assert_eq!(config.searches, ["corp.example"]);
            assert_eq!(config.options, ["edns0"]);
        }
        // No cluster DNS on this node: ClusterFirst falls back to the host's.
        let bare = PodDns {
            cluster: None,
            ..node()
        };
        let config = bare
            .sandbox_config(&pod(json!({ "containers": [] })))
            .expect("config");
        assert_eq!(config.servers, ["192.0.2.53"]);
    }

    #[test]
    fn none_uses_only_dns_config_and_dns_config_merges_otherwise() {
        let config = node()
            .sandbox_config(&pod(json!({
                "containers": [], "dnsPolicy": "None",
                "dnsConfig": { "nameservers": ["192.0.2.9"], "searches": ["x.example"],
                               "options": [{ "name": "ndots", "value": "1" }, { "name": "edns0" }] }
            })))
            .expect("config");
        assert_eq!(config.servers, ["192.0.2.9"]);
        assert_eq!(config.searches, ["x.example"]);
        assert_eq!(config.options, ["ndots:1", "edns0"]);

        let config = node()
            .sandbox_config(&pod(json!({
                "containers": [],
                "dnsConfig": { "searches": ["cluster.local", "y.example"],
                               "options": [{ "name": "ndots", "value": "2" }] }
            })))
            .expect("config");
        assert_eq!(config.servers, ["10.96.0.10"]);
        assert_eq!(
            config.searches.last().map(String::as_str),
            Some("y.example")
        );
        assert_eq!(config.searches.len(), 5, "duplicates dropped");
        assert_eq!(config.options, ["ndots:2"]);
    }
}
