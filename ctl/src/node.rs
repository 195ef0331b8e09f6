//! This machine's node(s): the runtime, the node agents, and their logs/exec/port-forward
//! endpoint. `tug up` runs them beside the control plane; `tug agent` runs them alone, joined
//! to an API server elsewhere.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::tls::ClusterCa;
use tugboat_nodeagent::{NodeStatuses, PodWatch, SharedByNodes, server};
use tugboat_runtime::{ContainerdOptions, ContainerdRuntime, Runtime, SimNetwork, SimRuntime};

use crate::cli::GlobalArgs;
use crate::components::{
    AgentClients, Components, agents_clients_from_kubeconfig, connect, default_data_dir, host_name,
};
use crate::join::JoinFlags;
use crate::sim_threads::SimThreads;

/// Pods a real node syncs at once.
const REAL_NODE_WORKERS: usize = 32;

/// Which runtime the node agents drive.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Real containers through a containerd (private unless --containerd-endpoint).
    Containerd,
    /// Simulated nodes: pods pass through their lifecycle at once, nothing is executed.
    Sim,
}

/// The node flags of `tug up` and `tug agent` (also `TUG_*` environment variables).
#[derive(Args, Debug, Clone)]
pub struct NodeFlags {
    /// The runtime of this machine's node(s).
    #[arg(long, env = "TUG_RUNTIME", value_enum, default_value = "containerd")]
    pub runtime: RuntimeKind,
    /// Number of simulated nodes (sim runtime only).
    #[arg(long, env = "TUG_NODES", default_value_t = 1)]
    pub nodes: usize,
    /// This node's name. Default: the host name.
    #[arg(long, env = "TUG_NODE_NAME")]
    pub node_name: Option<String>,
    /// The node agents' HTTPS port for logs, exec and port-forward (the kubelet's port);
    /// 0 picks a free one.
    #[arg(long, env = "TUG_KUBELET_PORT", default_value_t = 10250)]
    pub kubelet_port: u16,
    /// The address the node advertises (its InternalIP) and serves logs, exec and
    /// port-forward on. Default: the address the host name resolves to.
    #[arg(long, env = "TUG_NODE_IP")]
    pub node_ip: Option<IpAddr>,
    /// An existing CRI socket instead of a private containerd.
    #[arg(long, env = "TUG_CONTAINERD_ENDPOINT")]
    pub containerd_endpoint: Option<PathBuf>,
    /// This node's pod subnet (the private containerd's bridge and the service proxy's
    /// masquerading); give each node of a cluster its own.
    #[arg(long, env = "TUG_POD_CIDR", default_value = "10.88.0.0/16", value_parser = parse_ipv4_cidr)]
    pub pod_cidr: String,
}

/// `a.b.c.d/n`, as the CNI bridge and iptables take it.
fn parse_ipv4_cidr(text: &str) -> Result<String, String> {
    let bad = || format!("{text:?} is not an IPv4 CIDR like 10.88.0.0/16");
    let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
    address.parse::<std::net::Ipv4Addr>().map_err(|_| bad())?;
    let prefix: u8 = prefix.parse().map_err(|_| bad())?;
    if !(8..=30).contains(&prefix) {
        return Err(format!("{text:?}: the prefix must be between /8 and /30"));
    }
    Ok(text.to_owned())
}

/// Flags of `tug agent`.
#[derive(Args, Debug, Clone)]
pub struct AgentArgs {
    /// The node's state (pod files, the private containerd); created 0700. Default:
    /// /var/lib/tugboat as root, else $XDG_DATA_HOME/tugboat.
    #[arg(long, env = "TUG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    #[command(flatten)]
    pub node: NodeFlags,
    /// The API server to join (`https://HOST:PORT`), with --token or --token-file the first
    /// time; later starts reuse the node's own credentials in `<data-dir>/node/`.
    #[arg(long, env = "TUG_SERVER", value_name = "URL")]
    pub server: Option<String>,
    #[command(flatten)]
    pub join: JoinFlags,
    /// Without --server: a directory with a copy of the cluster CA (`ca.crt` and `ca.key`
    /// from the API server's `<data-dir>/pki`), to sign the agent's serving certificate, and
    /// the cluster of the kubeconfig. Default: `<data-dir>/pki`.
    #[arg(long, env = "TUG_PKI_DIR", conflicts_with = "server")]
    pub pki_dir: Option<PathBuf>,
}

/// The node agents' runtimes, and the containerd to stop at exit.
pub struct Nodes {
    agents: Vec<(tugboat_nodeagent::AgentConfig, Arc<dyn Runtime>)>,
    containerd: Option<Arc<ContainerdRuntime>>,
    /// Simulated nodes share one pod watch: thousands of watches (and connections) would cost
    /// far more than the pods themselves.
    share_watches: bool,
    /// Simulated nodes run on threads of their own, below the control plane's priority.
    threads: Option<SimThreads>,
}

impl Nodes {
    /// Start the runtime (a private containerd unless `--containerd-endpoint`, or simulated
    /// nodes) with the agents' files under `data_dir`.
    pub async fn prepare(flags: &NodeFlags, data_dir: &Path) -> anyhow::Result<Nodes> {
        let node_name = flags.node_name.clone().unwrap_or_else(host_name);
        match flags.runtime {
            RuntimeKind::Containerd => {
                let mut options = ContainerdOptions::new(data_dir);
                options.endpoint = flags.containerd_endpoint.clone();
                options.network.subnet = flags.pod_cidr.clone();
                let containerd = Arc::new(
                    ContainerdRuntime::start(&options)
                        .await
                        .context("cannot start containerd")?,
                );
                let runtime: Arc<dyn Runtime> = containerd.clone();
                let mut config =
                    tugboat_nodeagent::AgentConfig::new(node_name, data_dir.join("agent"));
                config.resources = tugboat_nodeagent::NodeResources::from_host();
                // Real containers get real Service routing on this host.
                config.proxy = Some(tugboat_nodeagent::proxy::ProxyConfig {
                    pod_cidr: flags.pod_cidr.clone(),
                    ..Default::default()
                });
                // ...and cluster DNS on 10.96.0.10 (pods' `dnsPolicy: ClusterFirst` points there).
                config.dns = Some(tugboat_nodeagent::dns::DnsConfig::default());
                // containerd does its best with many pods in flight (kubelet starts every pod
                // at once); simulated nodes keep the default, being thousands in one process.
                config.workers = REAL_NODE_WORKERS;
                Ok(Nodes {
                    agents: vec![(config, runtime)],
                    containerd: Some(containerd),
                    share_watches: false,
                    threads: None,
                })
            }
            RuntimeKind::Sim => {
                let network = SimNetwork::new();
                let count = flags.nodes.max(1);
                let agents = (1..=count)
                    .map(|i| {
                        let name = if count == 1 {
                            node_name.clone()
                        } else {
                            format!("{node_name}-{i}")
                        };
                        let runtime: Arc<dyn Runtime> =
                            Arc::new(SimRuntime::new(&name, Arc::clone(&network)));
                        let mut config = tugboat_nodeagent::AgentConfig::new(
                            name.clone(),
                            data_dir.join("agents").join(&name),
                        );
                        config.resources = tugboat_nodeagent::NodeResources::simulated();
                        (config, runtime)
                    })
                    .collect();
                Ok(Nodes {
                    agents,
                    containerd: None,
                    share_watches: count > 1,
                    threads: Some(SimThreads::start()?),
                })
            }
        }
    }

    /// Serve the agents' logs/exec/port-forward endpoint on `listener` (on `node_ip`) with
    /// `tls` (a certificate from the cluster CA), and tell each agent to advertise it in its
    /// Node.
    pub fn start_endpoint(
        &mut self,
        listener: tokio::net::TcpListener,
        node_ip: IpAddr,
        tls: server::TlsMaterial,
        components: &Components,
    ) -> anyhow::Result<()> {
        let port = listener
            .local_addr()
            .context("cannot read the agent endpoint's address")?
            .port();
        let tls = tls.server_config()?;
        let served = server::Nodes::new(
            self.agents
                .iter()
                .map(|(config, runtime)| (config.node_name.clone(), Arc::clone(runtime))),
        );
        for (config, _) in &mut self.agents {
            config.node_ip = Some(node_ip);
            config.kubelet_port = Some(port);
        }
        components.spawn_task(server::serve(
            listener,
            tls,
            served,
            components.shutdown().clone(),
        ));
        tracing::info!(address = %SocketAddr::new(node_ip, port), "node agent endpoint (logs, exec, port-forward) listening");
        Ok(())
    }

    /// The agents' API clients for the cluster of `kubeconfig`: the pods' driven by the
    /// simulated nodes' threads if there are any, the heartbeats' by the control plane's.
    pub async fn agents_clients(&self, kubeconfig: &Path) -> anyhow::Result<AgentClients> {
        let pods_on = self.threads.as_ref().map(SimThreads::handle);
        agents_clients_from_kubeconfig(kubeconfig, pods_on.as_ref()).await
    }

    /// Run every agent; returns the containerd to stop once they are done.
    pub fn spawn_agents(
        self,
        clients: &AgentClients,
        components: &Components,
    ) -> Option<Arc<ContainerdRuntime>> {
        let threads = self.threads.as_ref();
        let client = &clients.pods;
        let mut feeds = HashMap::new();
        let node_statuses = NodeStatuses::new();
        if self.share_watches {
            let (watch, node_feeds) = PodWatch::shared(
                self.agents
                    .iter()
                    .map(|(config, _)| config.node_name.as_str()),
            );
            feeds = node_feeds;
            spawn_task_on(
                threads,
                components,
                watch.run(client.clone(), components.shutdown().clone()),
            );
            spawn_task_on(
                threads,
                components,
                node_statuses
                    .clone()
                    .run(client.clone(), components.shutdown().clone()),
            );
        }
        for (agent_config, runtime) in self.agents {
            let client = client.clone();
            let shutdown = components.shutdown().clone();
            let shared = feeds
                .remove(&agent_config.node_name)
                .map(|pods| SharedByNodes {
                    pods,
                    node_statuses: node_statuses.clone(),
                    heartbeat_client: clients.heartbeat.clone(),
                    // Called on the control plane's runtime.
                    heartbeat_on: threads.map(|_| tokio::runtime::Handle::current()),
                });
            let agent = async move {
                tugboat_nodeagent::run_fed(client, runtime, agent_config, shared, shutdown)
                    .await
                    .map_err(anyhow::Error::from)
            };
            match threads {
                Some(threads) => {
                    let agent = threads.spawn(agent);
                    components.spawn("node agent", async move {
                        agent.await.context("a simulated node panicked")?
                    });
                }
                None => components.spawn("node agent", agent),
            }
        }
        if let Some(threads) = self.threads {
            components.spawn_task(threads.finish());
        }
        self.containerd
    }

    /// Stop the private containerd (if any) without running the agents: a start that failed
    /// half-way.
    pub async fn abandon(self) {
        stop_containerd(self.containerd).await;
    }
}

/// Run `task` (not a component: never failing) on the simulated nodes' threads if there are
/// any; either way, the process waits for it at the end.
fn spawn_task_on<F>(threads: Option<&SimThreads>, components: &Components, task: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    match threads {
        Some(threads) => {
            let task = threads.spawn(task);
            components.spawn_task(async move {
                if let Err(error) = task.await {
                    tracing::error!(%error, "a simulated nodes' task panicked");
                }
            });
        }
        None => components.spawn_task(task),
    }
}

/// A serving certificate for the node endpoint on `node_ip`, signed with the CA itself (the
/// node of `tug up`, and agents given a copy of the CA).
pub fn sign_endpoint(ca: &ClusterCa, node_ip: IpAddr) -> anyhow::Result<server::TlsMaterial> {
    let mut hosts = vec![
        node_ip.to_string(),
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
    ];
    hosts.dedup();
    let (cert_pem, key_pem) = ca
        .sign_server("tugboat-node-agent", &hosts)
        .context("cannot sign the node agent's certificate")?;
    Ok(server::TlsMaterial {
        cert_pem,
        key_pem,
        ca_pem: ca.ca_pem.clone(),
    })
}

/// Stop the private containerd once nothing uses it any more. Pods keep running; the next
/// start adopts them.
pub async fn stop_containerd(containerd: Option<Arc<ContainerdRuntime>>) {
    if let Some(containerd) = containerd.and_then(|c| Arc::try_unwrap(c).ok()) {
        containerd.shutdown().await;
    }
}

/// Where the node's endpoint listens: `--node-ip` or the host's address, and `--kubelet-port`.
/// Bound before anything is started: a busy port must leave nothing half-made behind.
pub async fn bind_endpoint(flags: &NodeFlags) -> anyhow::Result<(tokio::net::TcpListener, IpAddr)> {
    let node_ip = match flags.node_ip {
        Some(ip) => ip,
        None => tugboat_nodeagent::host::node_ip().await,
    };
    let addr = SocketAddr::new(node_ip, flags.kubelet_port);
    let listener = tugboat_nodeagent::server::bind(addr)
        .await
        .context("choose another --kubelet-port or --node-ip")?;
    Ok((listener, node_ip))
}

/// `tug agent`: this machine's node joined to a cluster: with `--server` and a join token
/// (or the credentials of an earlier join), else the cluster of the kubeconfig with a copy of
/// the CA in `--pki-dir`.
pub async fn agent(global: GlobalArgs, args: AgentArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let joining = args.server.is_some()
        || args.join.given()
        || (args.pki_dir.is_none() && crate::join::has_credentials(&data_dir));
    if joining {
        return run_joined(data_dir, args.node, args.server, args.join).await;
    }
    let pki_dir = args.pki_dir.clone().unwrap_or_else(|| data_dir.join("pki"));
    // The error's own text names the file and the cause once; its chain would repeat them.
    let ca = ClusterCa::load(&pki_dir).map_err(|error| {
        anyhow::anyhow!(
            "no cluster CA in {}: join with --server URL --token T (the server's <data-dir>/join-token), or copy ca.crt and ca.key from the API server's <data-dir>/pki there, or pass --pki-dir ({error})",
            pki_dir.display()
        )
    })?;
    let client = connect(&global).await?;
    let (listener, node_ip) = bind_endpoint(&args.node).await?;
    let tls = sign_endpoint(&ca, node_ip)?;
    run_node(data_dir, &args.node, client, listener, node_ip, tls).await
}

/// The node alone, joined to `server` with the join token, or with the credentials of an
/// earlier join kept in the data dir (`tug agent --server`, `tug up --join`).
pub async fn run_joined(
    data_dir: PathBuf,
    node: NodeFlags,
    server: Option<String>,
    join: JoinFlags,
) -> anyhow::Result<()> {
    if node.runtime == RuntimeKind::Sim && node.nodes > 1 {
        anyhow::bail!("a joined agent runs one node with its own credentials: drop --nodes");
    }
    let token = join.token()?;
    if token.is_some() && server.is_none() && !crate::join::has_credentials(&data_dir) {
        anyhow::bail!("--token needs --server URL: the API server to join");
    }
    let node_name = node.node_name.clone().unwrap_or_else(host_name);
    let (listener, node_ip) = bind_endpoint(&node).await?;
    let joined = crate::join::join_or_reuse(
        &data_dir,
        server.as_deref(),
        token.as_ref(),
        &node_name,
        node_ip,
    )
    .await?;
    run_node(
        data_dir,
        &node,
        joined.client,
        listener,
        node_ip,
        joined.tls,
    )
    .await
}

/// This machine's node(s) with `client`, until a signal.
async fn run_node(
    data_dir: PathBuf,
    node: &NodeFlags,
    client: kube::Client,
    listener: tokio::net::TcpListener,
    node_ip: IpAddr,
    tls: server::TlsMaterial,
) -> anyhow::Result<()> {
    tugboat_apiserver::prepare_data_dir(&data_dir)?;
    let mut nodes = Nodes::prepare(node, &data_dir).await?;
    let components = Components::new(CancellationToken::new());
    if let Err(err) = nodes.start_endpoint(listener, node_ip, tls, &components) {
        nodes.abandon().await;
        return Err(err);
    }
    // One node: its few heartbeats need no pool of their own.
    let clients = AgentClients {
        pods: client.clone(),
        heartbeat: client,
    };
    let containerd = nodes.spawn_agents(&clients, &components);
    println!(
        "Tugboat node agent running: {}",
        node.node_name.clone().unwrap_or_else(host_name)
    );
    let result = components.run_until_signal().await;
    stop_containerd(containerd).await;
    tracing::info!("stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pod_cidrs() {
        assert_eq!(
            parse_ipv4_cidr("10.89.0.0/16"),
            Ok("10.89.0.0/16".to_owned())
        );
        assert!(parse_ipv4_cidr("10.89.0.0").is_err());
        assert!(parse_ipv4_cidr("10.89.0/16").is_err());
        assert!(parse_ipv4_cidr("10.89.0.0/33").is_err());
        assert!(parse_ipv4_cidr("fd00::/64").is_err());
    }
}
