//! `tug up` (the whole cluster on this machine), `tug apiserver` (the API server alone) and
//! `tug reset`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, StoreConfig};
use tugboat_runtime::ContainerdOptions;

use crate::components::{
    Components, ControllerFlags, client_from_kubeconfig, default_data_dir, parse_duration,
};
use crate::join::JoinFlags;
use crate::node::{NodeFlags, Nodes, bind_endpoint, sign_endpoint, stop_containerd};

/// Flags of `tug apiserver`, and of the API server in `tug up` (also `TUG_*` variables).
#[derive(Args, Debug, Clone)]
pub struct ApiServerFlags {
    /// All state; created 0700. Default: /var/lib/tugboat as root, else $XDG_DATA_HOME/tugboat.
    #[arg(long, env = "TUG_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The HTTPS API address; its serving certificate covers it (every address of the host
    /// for 0.0.0.0). The kubeconfig it writes points at it (127.0.0.1 for 0.0.0.0).
    #[arg(long, env = "TUG_LISTEN", default_value = "127.0.0.1:6443")]
    pub listen: SocketAddr,
    /// Use an etcd cluster as the store (comma-separated URLs) instead of the embedded store.
    #[arg(long, env = "TUG_ETCD", value_delimiter = ',')]
    pub etcd: Vec<String>,
    /// How long pods stay on a node that stopped reporting before they are evicted: the
    /// default not-ready/unreachable toleration the API server gives new pods.
    #[arg(long, env = "TUG_POD_EVICTION_TIMEOUT", default_value = "300s", value_parser = parse_duration)]
    pub pod_eviction_timeout: std::time::Duration,
}

/// Flags of `tug up` (also settable as `TUG_*` environment variables).
#[derive(Args, Debug, Clone)]
pub struct UpArgs {
    #[command(flatten)]
    pub apiserver: ApiServerFlags,
    #[command(flatten)]
    pub node: NodeFlags,
    #[command(flatten)]
    pub controllers: ControllerFlags,
    /// Run only this machine's node, joined to the cluster of the API server at URL
    /// (`https://HOST:PORT`) with --token or --token-file, as `tug agent --server URL` does.
    #[arg(long, env = "TUG_JOIN", value_name = "URL", conflicts_with = "etcd")]
    pub join: Option<String>,
    #[command(flatten)]
    pub join_token: JoinFlags,
}

/// `tug up`: the whole cluster on this machine, until a signal.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    if let Some(server) = args.join {
        let data_dir = args.apiserver.data_dir.unwrap_or_else(default_data_dir);
        return crate::node::run_joined(data_dir, args.node, Some(server), args.join_token).await;
    }
    if args.join_token.given() {
        anyhow::bail!("--token joins another cluster: it needs --join URL");
    }
    run(args.apiserver, Some((args.node, args.controllers))).await
}

/// `tug apiserver`: the API server alone, until a signal.
pub async fn apiserver(args: ApiServerFlags) -> anyhow::Result<()> {
    run(args, None).await
}

/// The API server, and with `local` this machine's node, the scheduler and the controllers.
async fn run(
    args: ApiServerFlags,
    local: Option<(NodeFlags, ControllerFlags)>,
) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    let mut config = ApiServerConfig::new(&data_dir);
    config.listen = args.listen;
    config.create_defaults.toleration_seconds =
        i64::try_from(args.pod_eviction_timeout.as_secs()).unwrap_or(i64::MAX);
    if !args.etcd.is_empty() {
        config.store = StoreConfig::Etcd(args.etcd.clone());
    }
    // Bind the agents' port first too: a busy port must leave nothing half-made behind.
    let agent_listener = match &local {
        Some((node, _)) => Some(bind_endpoint(node).await?),
        None => None,
    };
    let shutdown = CancellationToken::new();
    let running = tugboat_apiserver::start(config, shutdown.clone()).await?;
    let components = Components::new(shutdown.clone());
    let mut containerd = None;
    if let (Some((listener, node_ip)), Some((node, mut controllers))) = (agent_listener, local) {
        controllers.storage_dir = Some(data_dir.join("storage"));
        let mut nodes = match Nodes::prepare(&node, &data_dir).await {
            Ok(nodes) => nodes,
            Err(err) => {
                shutdown.cancel();
                running.stopped().await;
                return Err(err);
            }
        };
        let started = sign_endpoint(&running.pki.cluster_ca(), node_ip)
            .and_then(|tls| nodes.start_endpoint(listener, node_ip, tls, &components));
        let clients = match started {
            Ok(()) => match client_from_kubeconfig(&running.kubeconfig).await {
                Ok(client) => nodes
                    .agents_clients(&running.kubeconfig)
                    .await
                    .map(|agents| (client, agents)),
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        let (client, agents_clients) = match clients {
            Ok(clients) => clients,
            Err(err) => {
                shutdown.cancel();
                running.stopped().await;
                nodes.abandon().await;
                return Err(err);
            }
        };
        // One process, one of each: no election.
        components.spawn_scheduler(client.clone(), None);
        components.spawn_controllers(client.clone(), &controllers, None);
        containerd = nodes.spawn_agents(&agents_clients, &components);
    }
    println!("Tugboat API server listening on {}", running.url);
    println!("kubeconfig: {}", running.kubeconfig.display());
    let join_url = if running.addr.ip().is_unspecified() {
        format!("https://<an address of this host>:{}", running.addr.port())
    } else {
        running.url.clone()
    };
    println!(
        "join a node from another machine: tug agent --server {join_url} --token-file <a copy of {}>",
        running.join_token_file.display()
    );
    println!(
        "try: kubectl --kubeconfig {} get nodes",
        running.kubeconfig.display()
    );
    let result = components.run_until_signal().await;
    // Pods keep running; the next `tug up` adopts them. The agents are done with the runtime.
    stop_containerd(containerd).await;
    running.stopped().await;
    tracing::info!("stopped");
    result
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
