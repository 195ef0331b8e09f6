//! `tug up` and `tug apiserver`: start the control plane and run until SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, StoreConfig};

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

/// Run until a signal; `run_controllers` is false for `tug apiserver`.
pub async fn run(args: UpArgs, run_controllers: bool) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let mut config = ApiServerConfig::new(&data_dir);
    config.listen = args.listen;
    if !args.etcd.is_empty() {
        config.store = StoreConfig::Etcd(args.etcd);
    }
    let shutdown = CancellationToken::new();
    let running = tugboat_apiserver::start(config, shutdown.clone()).await?;
    let client = client_from_kubeconfig(&running.kubeconfig).await?;
    let components = tokio_util::task::TaskTracker::new();
    if run_controllers {
        let (client, shutdown) = (client.clone(), shutdown.clone());
        components.spawn(async move {
            let config = tugboat_controllers::ControllersConfig::default();
            if let Err(err) = tugboat_controllers::run(client, config, shutdown.clone()).await {
                tracing::error!(error = %err, "the controllers stopped");
                shutdown.cancel();
            }
        });
    }
    println!("Tugboat API server listening on {}", running.url);
    println!("kubeconfig: {}", running.kubeconfig.display());
    println!(
        "try: kubectl --kubeconfig {} get namespaces",
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
    running.stopped().await;
    tracing::info!("stopped");
    Ok(())
}
