//! `tug up` (the whole cluster on this machine) and `tug apiserver` (the API server alone):
//! start the components and run until SIGTERM or Ctrl-C.
//!
//! Every component other than the API server talks to it over HTTPS with a client made from
//! the kubeconfig, exactly as it would from another machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tugboat_apiserver::{ApiServerConfig, StoreConfig};
use tugboat_runtime::{ContainerdOptions, ContainerdRuntime, Runtime, SimNetwork, SimRuntime};

/// Which runtime the node agents drive.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuntimeKind {
    /// Real containers through a containerd (private unless --containerd-endpoint).
    Containerd,
    /// Simulated nodes: pods pass through their lifecycle at once, nothing is executed.
    Sim,
}

/// Flags of `tug up` (also settable as `TUG_*` environment variables).
#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    /// All state; created 0700. Default: /var/lib/tugboat as root, else $XDG_DATA_HOME/tugboat.
    #[arg(long, env = "TUG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The HTTPS API address.
    #[arg(long, env = "TUG_LISTEN", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Use an etcd cluster as the store (comma-separated URLs) instead of the embedded store.
    #[arg(long, env = "TUG_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
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
    /// An existing CRI socket instead of a private containerd.
    #[arg(long, env = "TUG_CONTAINERD_ENDPOINT")]
    pub containerd_endpoint: Option<PathBuf>,
    /// How often each HorizontalPodAutoscaler is evaluated (`15s`, `1m`, `500ms`).
    #[arg(long, env = "TUG_HPA_SYNC_PERIOD", default_value = "15s", value_parser = parse_duration)]
    pub hpa_sync_period: Duration,
    /// The default scale-down stabilization window of HorizontalPodAutoscalers (`5m`).
    #[arg(long, env = "TUG_HPA_DOWNSCALE_STABILIZATION", default_value = "5m", value_parser = parse_duration)]
    pub hpa_downscale_stabilization: Duration,
    /// How long a node may go without a heartbeat before it is marked unreachable and its
    /// pods start being evicted (upstream `--node-monitor-grace-period`).
    #[arg(long, env = "TUG_NODE_MONITOR_GRACE_PERIOD", default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// How long pods stay on a node that stopped reporting before they are evicted: the
    /// default not-ready/unreachable toleration the API server gives new pods.
    #[arg(long, env = "TUG_POD_EVICTION_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub pod_eviction_timeout: Duration,
}

/// A duration as Kubernetes' flags take them: `300ms`, `15s`, `5m`, `1h`, `1m30s`, or bare
/// seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("{text:?}: a number without a unit"))?;
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration (like 15s or 5m)"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
        };
        total = total.saturating_add(part);
        rest = next;
    }
    if text.is_empty() {
        return Err("an empty duration".into());
    }
    Ok(total)
}

/// The default data dir for this user.
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/tugboat");
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("tugboat");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/tugboat")
}

fn is_root() -> bool {
    // The effective uid owns /proc/self.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "tugboat".to_owned())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// A client as any remote component makes one: from the kubeconfig.
pub async fn client_from_kubeconfig(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("bad kubeconfig")?;
    kube::Client::try_from(config).context("cannot build the API client")
}

/// Run a component until it ends; if it fails, stop everything (a half cluster helps nobody).
fn spawn_component<F>(
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    name: &'static str,
    task: F,
) where
    F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let shutdown = shutdown.clone();
    tracker.spawn(async move {
        if let Err(err) = task.await {
            tracing::error!(
                component = name,
                error = format!("{err:#}"),
                "component stopped"
            );
            shutdown.cancel();
        }
    });
}

/// The node agents' runtimes, and the containerd to stop at exit.
struct Nodes {
    agents: Vec<(tugboat_nodeagent::AgentConfig, Arc<dyn Runtime>)>,
    containerd: Option<Arc<ContainerdRuntime>>,
}

async fn prepare_nodes(args: &UpArgs, data_dir: &std::path::Path) -> anyhow::Result<Nodes> {
    let node_name = args.node_name.clone().unwrap_or_else(host_name);
    match args.runtime {
        RuntimeKind::Containerd => {
            let mut options = ContainerdOptions::new(data_dir);
            options.endpoint = args.containerd_endpoint.clone();
            let containerd = Arc::new(
                ContainerdRuntime::start(&options)
                    .await
                    .context("cannot start containerd")?,
            );
            let runtime: Arc<dyn Runtime> = containerd.clone();
            let mut config = tugboat_nodeagent::AgentConfig::new(node_name, data_dir.join("agent"));
            config.resources = tugboat_nodeagent::NodeResources::from_host();
            // Real containers get real Service routing on this host.
            config.proxy = Some(tugboat_nodeagent::proxy::ProxyConfig::default());
            // ...and cluster DNS on 10.96.0.10 (pods' `dnsPolicy: ClusterFirst` points there).
            config.dns = Some(tugboat_nodeagent::dns::DnsConfig::default());
            Ok(Nodes {
                agents: vec![(config, runtime)],
                containerd: Some(containerd),
            })
        }
        RuntimeKind::Sim => {
            let network = SimNetwork::new();
            let count = args.nodes.max(1);
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
            })
        }
    }
}

/// Serves the agents' logs/exec/port-forward endpoint on `listener` (on the node IP) with a
/// certificate from the cluster CA for every agent of this process, and tells each agent to
/// advertise it in its Node.
fn start_agent_endpoint(
    listener: tokio::net::TcpListener,
    node_ip: std::net::IpAddr,
    running: &tugboat_apiserver::Running,
    nodes: &mut Nodes,
    components: &TaskTracker,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    use tugboat_nodeagent::server;
    let port = listener
        .local_addr()
        .context("cannot read the agent endpoint's address")?
        .port();
    let mut hosts = vec![
        node_ip.to_string(),
        "127.0.0.1".to_owned(),
        "localhost".to_owned(),
    ];
    hosts.dedup();
    let (cert_pem, key_pem) = running
        .pki
        .sign_server("tugboat-node-agent", &hosts)
        .context("cannot sign the node agent's certificate")?;
    let tls = server::TlsMaterial {
        cert_pem,
        key_pem,
        ca_pem: running.pki.ca_pem.clone(),
    }
    .server_config()?;
    let served = server::Nodes::new(
        nodes
            .agents
            .iter()
            .map(|(config, runtime)| (config.node_name.clone(), Arc::clone(runtime))),
    );
    for (config, _) in &mut nodes.agents {
        config.node_ip = Some(node_ip);
        config.kubelet_port = Some(port);
    }
    components.spawn(server::serve(listener, tls, served, shutdown.clone()));
    tracing::info!(address = %SocketAddr::new(node_ip, port), "node agent endpoint (logs, exec, port-forward) listening");
    Ok(())
}

/// Run until a signal; `whole_cluster` is false for `tug apiserver`.
pub async fn run(args: UpArgs, whole_cluster: bool) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let mut config = ApiServerConfig::new(&data_dir);
    config.listen = args.listen;
    config.create_defaults.toleration_seconds =
        i64::try_from(args.pod_eviction_timeout.as_secs()).unwrap_or(i64::MAX);
    if !args.etcd.is_empty() {
        config.store = StoreConfig::Etcd(args.etcd.clone());
    }
    // Bind the agents' port first too: a busy port must leave nothing half-made behind.
    let agent_listener = if whole_cluster {
        let node_ip = tugboat_nodeagent::host::node_ip().await;
        let addr = SocketAddr::new(node_ip, args.kubelet_port);
        Some((tugboat_nodeagent::server::bind(addr).await?, node_ip))
    } else {
        None
    };
    let shutdown = CancellationToken::new();
    let running = tugboat_apiserver::start(config, shutdown.clone()).await?;
    let components = TaskTracker::new();
    let mut containerd = None;
    if whole_cluster {
        let mut nodes = match prepare_nodes(&args, &data_dir).await {
            Ok(nodes) => nodes,
            Err(err) => {
                shutdown.cancel();
                running.stopped().await;
                return Err(err);
            }
        };
        let started = match agent_listener {
            Some((listener, node_ip)) => start_agent_endpoint(
                listener,
                node_ip,
                &running,
                &mut nodes,
                &components,
                &shutdown,
            ),
            None => Ok(()),
        };
        if let Err(err) = started {
            shutdown.cancel();
            running.stopped().await;
            if let Some(containerd) = nodes.containerd.and_then(|c| Arc::try_unwrap(c).ok()) {
                containerd.shutdown().await;
            }
            return Err(err);
        }
        let client = client_from_kubeconfig(&running.kubeconfig).await?;
        let c = client.clone();
        let s = shutdown.clone();
        spawn_component(&components, &shutdown, "scheduler", async move {
            tugboat_scheduler::run(c, tugboat_scheduler::SchedulerConfig::default(), s)
                .await
                .map_err(anyhow::Error::from)
        });
        let c = client.clone();
        let s = shutdown.clone();
        let mut controllers_config = tugboat_controllers::ControllersConfig::default();
        controllers_config.hpa.sync_period = args.hpa_sync_period;
        controllers_config.hpa.downscale_stabilization = args.hpa_downscale_stabilization;
        controllers_config.node_lifecycle.grace_period = args.node_monitor_grace_period;
        spawn_component(&components, &shutdown, "controllers", async move {
            tugboat_controllers::run(c, controllers_config, s)
                .await
                .map_err(anyhow::Error::from)
        });
        for (agent_config, runtime) in nodes.agents {
            let c = client.clone();
            let s = shutdown.clone();
            spawn_component(&components, &shutdown, "node agent", async move {
                tugboat_nodeagent::run(c, runtime, agent_config, s)
                    .await
                    .map_err(anyhow::Error::from)
            });
        }
        containerd = nodes.containerd;
    }
    println!("Tugboat API server listening on {}", running.url);
    println!("kubeconfig: {}", running.kubeconfig.display());
    println!(
        "try: kubectl --kubeconfig {} get nodes",
        running.kubeconfig.display()
    );
    tokio::select! {
        signal = wait_for_signal() => signal?,
        () = shutdown.cancelled() => {}
    }
    tracing::info!("stopping");
    shutdown.cancel();
    components.close();
    components.wait().await;
    // Pods keep running; the next `tug up` adopts them. The agents are done with the runtime.
    if let Some(containerd) = containerd.and_then(|c| Arc::try_unwrap(c).ok()) {
        containerd.shutdown().await;
    }
    running.stopped().await;
    tracing::info!("stopped");
    Ok(())
}

/// Flags of `tug reset`.
#[derive(Args, Debug, Clone)]
pub struct ResetArgs {
    /// The data dir `tug up` used.
    #[arg(long, env = "TUG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

/// `tug reset`: pods, containerd, network, then the data dir.
pub async fn reset(args: ResetArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    if !data_dir.exists() {
        println!("nothing to reset: {} does not exist", data_dir.display());
        return Ok(());
    }
    if data_dir.join("containerd").exists() {
        let report = tugboat_runtime::reset(&ContainerdOptions::new(&data_dir))
            .await
            .context("cannot reset the containerd state")?;
        println!(
            "removed {} pod sandbox(es){}",
            report.sandboxes_removed,
            if report.containerd_stopped {
                ", stopped containerd"
            } else {
                ""
            }
        );
    }
    // The service proxy's iptables chains, jumps and the tug-svc interface (none if it never ran).
    match tugboat_nodeagent::proxy::NetHost::default().cleanup().await {
        Ok(()) => println!("removed the service rules"),
        Err(error) => println!("could not remove every service rule: {error}"),
    }
    std::fs::remove_dir_all(&data_dir)
        .with_context(|| format!("cannot remove {}", data_dir.display()))?;
    println!("removed {}", data_dir.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }
}
