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

/// Run until a signal.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let data_dir = args.data_dir.unwrap_or_else(default_data_dir);
    let mut config = ApiServerConfig::new(&data_dir);
    config.listen = args.listen;
    if !args.etcd.is_empty() {
        config.store = StoreConfig::Etcd(args.etcd);
    }
    let shutdown = CancellationToken::new();
    let running = tugboat_apiserver::start(config, shutdown.clone()).await?;
    println!("Tugboat API server listening on {}", running.url);
    println!("kubeconfig: {}", running.kubeconfig.display());
    println!(
        "try: kubectl --kubeconfig {} get namespaces",
        running.kubeconfig.display()
    );
    wait_for_signal().await?;
    tracing::info!("stopping");
    shutdown.cancel();
    running.stopped().await;
    tracing::info!("stopped");
    Ok(())
}
