//! How an agent runs: its node, where it keeps pod files, and its timings.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What the node offers to pods (capacity = allocatable: nothing is reserved yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeResources {
    /// CPUs.
    pub cpus: u32,
    /// Memory in bytes.
    pub memory_bytes: u64,
    /// Pods.
    pub pods: u32,
}

impl NodeResources {
    /// Pods per node, as the kubelet's default.
    pub const DEFAULT_PODS: u32 = 110;

    /// What the contract promises for a simulated node: 16 CPUs, 64 GiB, 110 pods.
    pub fn simulated() -> Self {
        NodeResources {
            cpus: 16,
            memory_bytes: 64 << 30,
            pods: Self::DEFAULT_PODS,
        }
    }

    /// This machine's CPUs and memory (`/proc/meminfo`).
    pub fn from_host() -> Self {
        crate::host::resources()
    }
}

/// Back-off and probe timings; tests shorten them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timings {
    /// First CrashLoopBackOff / ImagePullBackOff delay (10 s).
    pub backoff_initial: Duration,
    /// Longest back-off delay (300 s).
    pub backoff_max: Duration,
    /// Clean running time after which the back-off starts over (10 min).
    pub backoff_reset: Duration,
    /// How often the Lease is renewed (10 s).
    pub lease_renew: Duration,
    /// Lease duration written into the Lease (40 s).
    pub lease_duration: Duration,
    /// How often the Node status (Ready, capacity, addresses) is computed and compared with
    /// the Node on the server, and written if it differs (10 s, kubelet's
    /// `nodeStatusUpdateFrequency`).
    pub node_status: Duration,
    /// How often the status is written even when nothing changed (5 min, kubelet's
    /// `nodeStatusReportFrequency`): the Lease is the heartbeat.
    pub node_status_report: Duration,
    /// How often each pod is compared with the runtime even without changes (1 s, the PLEG
    /// relist period): containers exit without telling anyone.
    pub pod_resync: Duration,
    /// How often sandboxes without a pod are looked for (30 s).
    pub orphan_sweep: Duration,
    /// How often CPU and memory are pushed to the metrics API (10 s).
    pub stats: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            backoff_initial: Duration::from_secs(10),
            backoff_max: Duration::from_secs(300),
            backoff_reset: Duration::from_secs(600),
            lease_renew: Duration::from_secs(10),
            lease_duration: Duration::from_secs(40),
            node_status: Duration::from_secs(10),
            node_status_report: Duration::from_secs(300),
            pod_resync: Duration::from_secs(1),
            orphan_sweep: Duration::from_secs(30),
            stats: Duration::from_secs(10),
        }
    }
}

/// How to run one node agent.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The Node's name.
    pub node_name: String,
    /// Where pod volumes and logs live (`<data_dir>/pods/<uid>/...`).
    pub data_dir: PathBuf,
    /// The node's InternalIP; `None` looks up the host name, falling back to 127.0.0.1.
    pub node_ip: Option<IpAddr>,
    /// Capacity and allocatable of the Node.
    pub resources: NodeResources,
    /// Back-off, lease and resync timings.
    pub timings: Timings,
    /// Pods synced at once (each pod is only ever synced by one worker at a time).
    pub workers: usize,
    /// The service proxy to run beside the pods (real nodes only); `None` runs none.
    pub proxy: Option<crate::proxy::ProxyConfig>,
    /// The cluster DNS to run beside the pods (real nodes only); `None` runs none, and pods
    /// with `dnsPolicy: ClusterFirst` then get the host's resolvers, as kubelet does.
    pub dns: Option<crate::dns::DnsConfig>,
    /// The port of the logs/exec/port-forward endpoint ([`crate::server`]) serving this node,
    /// advertised in the Node's `daemonEndpoints`; `None` advertises none.
    pub kubelet_port: Option<u16>,
    /// Where the agent reads wall-clock time (container start and exit times are compared
    /// with it); tests hand in the clock of their runtime, which follows tokio's paused clock.
    pub clock: tugboat_runtime::WallClock,
}

impl AgentConfig {
    /// Defaults for `node_name` keeping its files in `data_dir`, with this host's resources.
    pub fn new(node_name: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        AgentConfig {
            node_name: node_name.into(),
            data_dir: data_dir.into(),
            node_ip: None,
            resources: NodeResources::from_host(),
            timings: Timings::default(),
            workers: 4,
            proxy: None,
            dns: None,
            kubelet_port: None,
            clock: tugboat_runtime::WallClock::system(),
        }
    }
}
