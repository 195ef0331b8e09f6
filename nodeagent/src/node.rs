//! The Node object: registration with capacity, addresses and nodeInfo; the Ready condition
//! and heartbeat; and the Lease in `kube-node-lease` renewed every 10 s, the heartbeat proper:
//! the status is written when it changes and every 5 minutes otherwise, as kubelet does.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{GetParams, Patch, PatchParams, PostParams};
use tokio_util::sync::CancellationToken;
use tugboat_runtime::{Runtime, RuntimeVersion};

use crate::config::{AgentConfig, NodeResources};
use crate::error::{Error, Result};
use crate::host::HostInfo;
use crate::nodewatch::NodeStatuses;
use crate::status::api_time;

/// Namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The kubelet version this agent reports (the API level it speaks).
pub const KUBELET_VERSION: &str = "v1.32.0-tugboat";

/// What the runtime says about readiness, as the Ready condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Whether the node is Ready.
    pub ready: bool,
    /// `KubeletReady` or why not.
    pub reason: String,
    /// Details.
    pub message: String,
}

/// Asks the runtime whether it is ready.
pub async fn readiness(runtime: &dyn Runtime) -> Readiness {
    match runtime.ready().await {
        Ok(true) => Readiness {
            ready: true,
            reason: "KubeletReady".into(),
            message: "tugboat node agent is posting ready status".into(),
        },
        Ok(false) => Readiness {
            ready: false,
            reason: "KubeletNotReady".into(),
            message: "container runtime network not ready".into(),
        },
        Err(e) => Readiness {
            ready: false,
            reason: "KubeletNotReady".into(),
            message: format!("container runtime is down: {e}"),
        },
    }
}

fn quantities(r: &NodeResources) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), Quantity(r.cpus.to_string())),
        (
            "memory".to_string(),
            Quantity(format!("{}Ki", r.memory_bytes / 1024)),
        ),
        ("pods".to_string(), Quantity(r.pods.to_string())),
    ])
}

/// The Node's status (without conditions' history: see [`ready_condition`]).
pub fn node_status(
    config: &AgentConfig,
    node_ip: IpAddr,
    version: Option<&RuntimeVersion>,
    host: &HostInfo,
    condition: NodeCondition,
) -> NodeStatus {
    let runtime = version
        .map(|v| format!("{}://{}", v.runtime_name, v.runtime_version))
        .unwrap_or_default();
    NodeStatus {
        capacity: Some(quantities(&config.resources)),
        allocatable: Some(quantities(&config.resources)),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: node_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: config.node_name.clone(),
            },
        ]),
        conditions: Some(vec![condition]),
        daemon_endpoints: config.kubelet_port.map(|port| NodeDaemonEndpoints {
            kubelet_endpoint: Some(DaemonEndpoint {
                port: i32::from(port),
            }),
        }),
        node_info: Some(NodeSystemInfo {
            architecture: std::env::consts::ARCH
                .replace("x86_64", "amd64")
                .replace("aarch64", "arm64"),
            operating_system: "linux".into(),
            kernel_version: host.kernel_version.clone(),
            os_image: host.os_image.clone(),
            machine_id: host.machine_id.clone(),
            boot_id: host.boot_id.clone(),
            system_uuid: host.machine_id.clone(),
            container_runtime_version: runtime,
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
        }),
        ..Default::default()
    }
}

/// The Ready condition, keeping its transition time while the status stays the same.
pub fn ready_condition(
    readiness: &Readiness,
    previous: Option<&NodeCondition>,
    now: &Time,
) -> NodeCondition {
    let status = if readiness.ready { "True" } else { "False" };
    let last_transition_time = match previous {
        Some(p) if p.status == status => p.last_transition_time.clone(),
        _ => Some(now.clone()),
    };
    NodeCondition {
        type_: "Ready".into(),
        status: status.into(),
        reason: Some(readiness.reason.clone()),
        message: Some(readiness.message.clone()),
        last_heartbeat_time: Some(now.clone()),
        last_transition_time,
    }
}

/// Registers the Node and keeps its status and Lease fresh until `shutdown`.
pub struct NodeKeeper {
    client: kube::Client,
    runtime: std::sync::Arc<dyn Runtime>,
    config: AgentConfig,
    node_ip: IpAddr,
    host: HostInfo,
    node_uid: Option<String>,
    previous_ready: Option<NodeCondition>,
    /// The Lease as last written, renewed without reading it again.
    lease: Option<Lease>,
    /// When the status was last written.
    last_report: Option<tokio::time::Instant>,
    /// Node statuses from a watch shared by the simulated nodes of this process, read instead
    /// of a GET per node and period.
    shared_statuses: Option<NodeStatuses>,
}

impl NodeKeeper {
    /// A keeper for `config.node_name` with InternalIP `node_ip`.
    pub fn new(
        client: kube::Client,
        runtime: std::sync::Arc<dyn Runtime>,
        config: AgentConfig,
        node_ip: IpAddr,
    ) -> Self {
        NodeKeeper {
            client,
            runtime,
            config,
            node_ip,
            host: HostInfo::read(),
            node_uid: None,
            previous_ready: None,
            lease: None,
            last_report: None,
            shared_statuses: None,
        }
    }

    /// Compares the status with the one in `statuses` (a watch shared by many nodes of this
    /// process) instead of reading the Node each period.
    pub fn reading_status_from(mut self, statuses: NodeStatuses) -> Self {
        self.shared_statuses = Some(statuses);
        self
    }

    /// Creates the Node if it does not exist, then writes its status once.
    pub async fn register(&mut self) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = self.config.node_name.clone();
        let existing = nodes
            .get_opt(&name)
            .await
            .map_err(Error::api(format!("get node {name}")))?;
        let node = match existing {
            Some(node) => node,
            None => {
                let node = Node {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(BTreeMap::from([
                            ("kubernetes.io/hostname".to_string(), name.clone()),
                            ("kubernetes.io/os".to_string(), "linux".to_string()),
                            (
                                "kubernetes.io/arch".to_string(),
                                std::env::consts::ARCH
                                    .replace("x86_64", "amd64")
                                    .replace("aarch64", "arm64"),
                            ),
                        ])),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                match nodes.create(&PostParams::default(), &node).await {
                    Ok(created) => created,
                    // Another start of this agent won the race: use its object.
                    Err(kube::Error::Api(e)) if e.code == 409 => nodes
                        .get(&name)
                        .await
                        .map_err(Error::api(format!("get node {name}")))?,
                    Err(e) => return Err(Error::api(format!("create node {name}"))(e)),
                }
            }
        };
        self.node_uid = node.metadata.uid.clone();
        tracing::info!(node.name = %name, "node registered");
        // The Node just read or created is the server's: compare with it, no second read.
        self.write_status_if_changed(&node.status.unwrap_or_default())
            .await
    }

    /// Computes the Node's status (capacity, addresses, nodeInfo, Ready) against the Node as
    /// the API server has it, and writes it when it changed or when the last report is older
    /// than the report period, as kubelet does (`tryUpdateNodeStatus`): the Lease is the
    /// heartbeat, so an unchanged status need not be rewritten every period. Reading the
    /// server's Node, not a copy kept here, means a Ready=Unknown set by the node lifecycle
    /// controller is seen and overwritten at once.
    pub async fn update_status(&mut self) -> Result<()> {
        let name = &self.config.node_name;
        if let Some(status) = self.shared_statuses.as_ref().and_then(|s| s.get(name)) {
            return self.write_status_if_changed(&status).await;
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let current = nodes
            .get_with(name, &GetParams::any())
            .await
            .map_err(Error::api(format!("get node {name}")))?;
        self.write_status_if_changed(&current.status.unwrap_or_default())
            .await
    }

    /// Writes the status computed now when it differs from `current_status` (the server's) or
    /// the report period has passed.
    async fn write_status_if_changed(&mut self, current_status: &NodeStatus) -> Result<()> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let name = &self.config.node_name;
        if let Some(ready) = current_status
            .conditions
            .as_ref()
            .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        {
            self.previous_ready = Some(ready.clone());
        }
        let readiness = readiness(self.runtime.as_ref()).await;
        let version = self.runtime.version().await.ok();
        let now = api_time(std::time::SystemTime::now());
        let condition = ready_condition(&readiness, self.previous_ready.as_ref(), &now);
        let status = node_status(
            &self.config,
            self.node_ip,
            version.as_ref(),
            &self.host,
            condition.clone(),
        );
        let report_due = self
            .last_report
            .is_none_or(|at| at.elapsed() >= self.config.timings.node_status_report);
        if !report_due && !status_changed(current_status, &status) {
            return Ok(());
        }
        let patch = serde_json::json!({ "status": status });
        nodes
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .map_err(Error::api(format!("update node {name} status")))?;
        self.last_report = Some(tokio::time::Instant::now());
        if self.previous_ready.as_ref().map(|c| &c.status) != Some(&condition.status) {
            tracing::info!(node.name = %name, ready = readiness.ready, reason = %readiness.reason, "node readiness changed");
        }
        self.previous_ready = Some(condition);
        Ok(())
    }

    /// Renews the node's Lease: a replace of the Lease last written, without reading it first
    /// (nobody else writes it), as kubelet's lease controller does; when that fails (someone
    /// else changed or deleted it, or none was written yet), reads it and replaces or creates it.
    pub async fn renew_lease(&mut self) -> Result<()> {
        let leases: Api<Lease> = Api::namespaced(self.client.clone(), LEASE_NAMESPACE);
        let name = self.config.node_name.clone();
        let spec = LeaseSpec {
            holder_identity: Some(name.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.config.timings.lease_duration.as_secs()).unwrap_or(40),
            ),
            renew_time: Some(MicroTime(Timestamp::now())),
            ..Default::default()
        };
        if let Some(mut lease) = self.lease.take() {
            lease.spec = Some(spec.clone());
            match leases.replace(&name, &PostParams::default(), &lease).await {
                Ok(renewed) => {
                    self.lease = Some(renewed);
                    return Ok(());
                }
                Err(error) => {
                    tracing::debug!(%error, node.name = %name, "renewing the last Lease failed; reading it again");
                }
            }
        }
        let existing = leases
            .get_opt(&name)
            .await
            .map_err(Error::api(format!("get lease {name}")))?;
        let written = match existing {
            Some(mut lease) => {
                lease.spec = Some(spec);
                leases
                    .replace(&name, &PostParams::default(), &lease)
                    .await
                    .map_err(Error::api(format!("renew lease {name}")))?
            }
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(LEASE_NAMESPACE.into()),
                        // Deleting the Node deletes its Lease too.
                        owner_references: self.node_uid.clone().map(|uid| {
                            vec![OwnerReference {
                                api_version: "v1".into(),
                                kind: "Node".into(),
                                name: name.clone(),
                                uid,
                                ..Default::default()
                            }]
                        }),
                        ..Default::default()
                    },
                    spec: Some(spec),
                };
                leases
                    .create(&PostParams::default(), &lease)
                    .await
                    .map_err(Error::api(format!("create lease {name}")))?
            }
        };
        self.lease = Some(written);
        Ok(())
    }

    /// Renews the Lease and syncs the status on their periods until `shutdown`. Failures
    /// are logged and retried on the next tick: the API server may be away for a while.
    ///
    /// The Lease is written at once; after that, each node ticks at its own phase of the
    /// period (from its name), so many nodes of one process (or agents started together) spread
    /// their writes over the period instead of sending them all at the same instant.
    pub async fn keep(mut self, shutdown: CancellationToken) {
        let timings = self.config.timings.clone();
        if let Err(error) = self.renew_lease().await {
            tracing::warn!(%error, "cannot renew the node lease");
        }
        let start = tokio::time::Instant::now();
        let phase = phase_of(&self.config.node_name);
        let mut lease_tick = tokio::time::interval_at(
            start
                + timings
                    .lease_renew
                    .mul_f64(phase)
                    .max(Duration::from_millis(1)),
            timings.lease_renew,
        );
        let mut status_tick = tokio::time::interval_at(
            start
                + timings
                    .node_status
                    .mul_f64(phase)
                    .max(Duration::from_millis(1)),
            timings.node_status,
        );
        lease_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                // Boxed, here and below: the keeper of each of thousands of simulated nodes
                // then holds the state of a request only while one is in flight.
                _ = lease_tick.tick() => {
                    if let Err(error) = Box::pin(self.renew_lease()).await {
                        tracing::warn!(%error, "cannot renew the node lease");
                    }
                }
                _ = status_tick.tick() => {
                    if let Err(error) = Box::pin(self.update_status()).await {
                        tracing::warn!(%error, "cannot update the node status");
                    }
                }
            }
        }
    }
}

/// Where in each period a node's periodic work falls, in [0, 1): fixed per node name, spread
/// evenly over many names.
pub fn phase_of(node_name: &str) -> f64 {
    use std::hash::{Hash as _, Hasher as _};
    let mut hasher = std::hash::DefaultHasher::new();
    node_name.hash(&mut hasher);
    (hasher.finish() % 1_000_000) as f64 / 1_000_000.0
}

/// Whether `desired` says something `current` does not: any field this agent writes, with
/// conditions compared by type, status, reason and message (their heartbeat and transition
/// times change without anything happening), as kubelet's `nodeStatusHasChanged`.
fn status_changed(current: &NodeStatus, desired: &NodeStatus) -> bool {
    fn condition_key(c: &NodeCondition) -> (&str, &str, Option<&str>, Option<&str>) {
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_deref(),
            c.message.as_deref(),
        )
    }
    fn conditions(status: &NodeStatus) -> Vec<(&str, &str, Option<&str>, Option<&str>)> {
        let mut keys: Vec<_> = status
            .conditions
            .iter()
            .flatten()
            .map(condition_key)
            .collect();
        keys.sort_unstable();
        keys
    }
    conditions(current) != conditions(desired)
        || current.capacity != desired.capacity
        || current.allocatable != desired.allocatable
        || current.addresses != desired.addresses
        || current.node_info != desired.node_info
        || (desired.daemon_endpoints.is_some()
            && current.daemon_endpoints != desired.daemon_endpoints)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn simulated_nodes_report_the_contract_capacity() {
        let mut config = AgentConfig::new("sim-1", "/tmp/x");
        config.resources = NodeResources::simulated();
        config.kubelet_port = Some(10250);
        let ready = ready_condition(
            &Readiness {
                ready: true,
                reason: "KubeletReady".into(),
                message: String::new(),
            },
            None,
            &api_time(std::time::SystemTime::now()),
        );
        let status = node_status(
            &config,
            IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)),
            Some(&RuntimeVersion {
                runtime_name: "containerd".into(),
                runtime_version: "1.6.20".into(),
                runtime_api_version: "v1".into(),
            }),
            &HostInfo::default(),
            ready,
        );
        let cap = status.capacity.expect("capacity");
        assert_eq!(cap["cpu"].0, "16");
        assert_eq!(cap["memory"].0, "67108864Ki");
        assert_eq!(cap["pods"].0, "110");
        let addrs = status.addresses.expect("addresses");
        assert_eq!(addrs[0].type_, "InternalIP");
        assert_eq!(addrs[0].address, "192.0.2.7");
        assert_eq!(addrs[1].type_, "Hostname");
        let endpoint = status.daemon_endpoints.and_then(|d| d.kubelet_endpoint);
        assert_eq!(
            endpoint.map(|e| e.port),
            Some(10250),
            "the logs/exec endpoint"
        );
        assert_eq!(
            status.node_info.expect("info").container_runtime_version,
            "containerd://1.6.20"
        );
    }

    #[test]
    fn ready_transition_time_moves_only_on_change() {
        let yes = Readiness {
            ready: true,
            reason: "KubeletReady".into(),
            message: String::new(),
        };
        let t1 = api_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(10));
        let t2 = api_time(std::time::UNIX_EPOCH + std::time::Duration::from_secs(20));
        let first = ready_condition(&yes, None, &t1);
        let again = ready_condition(&yes, Some(&first), &t2);
        assert_eq!(again.last_transition_time, Some(t1.clone()));
        assert_eq!(again.last_heartbeat_time, Some(t2.clone()));
        let no = Readiness {
            ready: false,
            ..yes
        };
        let down = ready_condition(&no, Some(&again), &t2);
        assert_eq!(down.last_transition_time, Some(t2));
        assert_eq!(down.status, "False");
    }
}
