//! Tugboat's API server: the Kubernetes REST API over the store, served over HTTPS.
//!
//! [`start`] opens the store, makes or loads the PKI and tokens, creates the built-in
//! namespaces, fills the watch caches and starts serving; the returned [`Running`] says where
//! and stops on the shutdown token.

pub mod admission;
pub mod auth;
pub mod authz;
pub mod cache;
pub mod convert;
pub mod error;
pub mod handlers;
pub mod join;
pub mod kubeconfig;
pub mod metrics;
pub mod metrics_api;
pub mod node_proxy;
pub mod nodepassword;
pub mod objects;
pub mod openapi;
pub mod path;
pub mod render;
pub mod request;
pub mod server;
pub mod serviceaccount;
pub mod tls;

pub mod bootstrap;
mod serve;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tugboat_api::discovery::Discovery;
use tugboat_api::resources::Registry;
use tugboat_store::Store;

use crate::admission::ServiceRange;
use crate::auth::Tokens;
use crate::cache::WatchCaches;
use crate::server::ApiState;

/// Which store the server keeps objects in.
#[derive(Debug, Clone)]
pub enum StoreConfig {
    /// The embedded store in `<data-dir>/store`.
    Embedded,
    /// An etcd cluster at these endpoints.
    Etcd(Vec<String>),
    /// In memory, gone at exit (tests).
    Memory,
}

/// How to run the API server.
#[derive(Debug, Clone)]
pub struct ApiServerConfig {
    /// All state: store, PKI, tokens, kubeconfig. Created 0700.
    pub data_dir: PathBuf,
    /// The HTTPS listen address (port 0 picks a free one).
    pub listen: SocketAddr,
    /// Where objects live.
    pub store: StoreConfig,
    /// The service CIDR.
    pub service_range: ServiceRange,
    /// Create-time defaults set by flags (default pod tolerations).
    pub create_defaults: tugboat_api::defaults::CreateDefaults,
}

impl ApiServerConfig {
    /// Defaults for `data_dir`: embedded store, 127.0.0.1:6443.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ApiServerConfig {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 6443)),
            store: StoreConfig::Embedded,
            service_range: ServiceRange::default(),
            create_defaults: tugboat_api::defaults::CreateDefaults::default(),
        }
    }
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir could not be made or is not usable.
    #[error("data dir {path} is not usable (choose a writable --data-dir)")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The store did not open.
    #[error("store: {0}")]
    Store(#[from] tugboat_store::StoreError),
    /// Certificates or tokens could not be made or read.
    #[error("{0}")]
    Tls(#[from] tls::TlsError),
    /// The listen address is taken or not ours.
    // The cause is the source: `{:#}` prints it once, after the hint.
    #[error("cannot listen on {addr} (is another server running? choose another --listen)")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The watch caches did not fill in time.
    #[error("the watch caches did not fill within {0:?}: is the store reachable?")]
    CachesNotReady(Duration),
}

/// A started API server.
pub struct Running {
    /// Where it listens.
    pub addr: SocketAddr,
    /// `https://addr`.
    pub url: String,
    /// The cluster CA (PEM).
    pub ca_pem: String,
    /// The admin bearer token.
    pub admin_token: String,
    /// The kubeconfig written for the admin.
    pub kubeconfig: PathBuf,
    /// The cluster PKI, to sign other components' certificates.
    pub pki: tls::Pki,
    /// The file holding the join token for other machines' nodes (`tug agent --token-file`).
    pub join_token_file: PathBuf,
    tracker: TaskTracker,
}

impl Running {
    /// Wait until the server has stopped (after the shutdown token is cancelled).
    pub async fn stopped(self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Create `dir` (and parents) with mode 0700, or check an existing one is usable.
pub fn prepare_data_dir(dir: &std::path::Path) -> Result<(), StartError> {
    use std::os::unix::fs::DirBuilderExt as _;
    let err = |source| StartError::DataDir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    let probe = dir.join(".write-test");
    std::fs::write(&probe, b"").map_err(err)?;
    std::fs::remove_file(&probe).map_err(err)?;
    Ok(())
}

async fn open_store(config: &ApiServerConfig) -> Result<Arc<dyn Store>, StartError> {
    Ok(match &config.store {
        StoreConfig::Embedded => {
            let store = tugboat_store::embedded::EmbeddedStore::open(
                tugboat_store::embedded::EmbeddedConfig::new(config.data_dir.join("store")),
            )?;
            Arc::new(store)
        }
        StoreConfig::Etcd(endpoints) => {
            Arc::new(tugboat_store::etcd::EtcdStore::connect(endpoints).await?)
        }
        StoreConfig::Memory => Arc::new(tugboat_store::memory::memory_store()?),
    })
}

/// How long the watch caches may take to fill at start.
const CACHE_FILL_TIMEOUT: Duration = Duration::from_secs(60);

/// Start the API server; it runs until `shutdown` is cancelled.
pub async fn start(
    config: ApiServerConfig,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    // Bind first: a busy port must leave nothing half-made in the data dir.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Listen {
        addr: config.listen,
        source,
    })?;
    prepare_data_dir(&config.data_dir)?;
    let store = open_store(&config).await?;
    let pki = tls::load_or_create(
        &config.data_dir.join("pki"),
        &tls::serving_hosts(
            config.listen.ip(),
            std::net::IpAddr::V4(config.service_range.api_service_ip()),
        ),
    )?;
    let tokens = Tokens::load_or_create(&config.data_dir)?;
    let sa_tokens = serviceaccount::TokenSigner::load_or_create(&config.data_dir.join("pki"))?;
    let admin_token = tokens.admin_token().unwrap_or_default().to_owned();
    let advertise_ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let url = format!("https://{}", SocketAddr::new(advertise_ip, addr.port()));

    bootstrap::ensure(&*store, config.service_range, advertise_ip, addr.port()).await?;
    bootstrap::publish_root_ca(&*store, &pki.ca_pem).await?;
    let join = join::JoinService::new(pki.cluster_ca(), join::ensure_join_secret(&*store).await?);
    let join_token_file = config.data_dir.join("join-token");
    join::write_token_file(&join_token_file, &join.token())?;

    let tracker = TaskTracker::new();
    let registry = Registry::with_metrics();
    let caches = WatchCaches::start(&registry, &store, &tracker, &shutdown);
    if !caches.wait_ready(CACHE_FILL_TIMEOUT).await {
        shutdown.cancel();
        return Err(StartError::CachesNotReady(CACHE_FILL_TIMEOUT));
    }
    let state = Arc::new(ApiState {
        authorizer: authz::Authorizer::new(&registry, &caches),
        store,
        caches,
        discovery: Discovery::new(registry.clone()),
        registry,
        shutdown: shutdown.clone(),
        service_range: config.service_range,
        create_defaults: config.create_defaults,
        tokens: Some(tokens),
        root_ca_pem: Some(pki.ca_pem.clone()),
        sa_tokens,
        metrics: metrics::Metrics::default(),
        advertise: SocketAddr::new(advertise_ip, addr.port()).to_string(),
        resource_metrics: metrics_api::MetricsStore::default(),
        openapi: std::sync::OnceLock::new(),
        agents: Some(node_proxy::AgentClient::new(pki.agent_client_config()?)),
        join: Some(join),
    });
    let tls_config = pki.server_config()?;
    tracker.spawn(serve::serve(
        listener,
        tls_config,
        server::router(state),
        shutdown.clone(),
    ));

    let kubeconfig = config.data_dir.join("kubeconfig");
    kubeconfig::write(&kubeconfig, &url, &pki.ca_pem, &admin_token)?;
    Ok(Running {
        addr,
        url,
        ca_pem: pki.ca_pem.clone(),
        admin_token,
        kubeconfig,
        pki,
        join_token_file,
        tracker,
    })
}

/// The router over `store` without TLS or authentication, for in-process tests.
pub async fn test_router(
    store: Arc<dyn Store>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<axum::Router, StartError> {
    test_router_with_tokens(store, None, shutdown, tracker).await
}

/// The router over `store` without TLS, authenticating `tokens` (none: no authentication),
/// for in-process tests.
pub async fn test_router_with_tokens(
    store: Arc<dyn Store>,
    tokens: Option<Tokens>,
    shutdown: &CancellationToken,
    tracker: &TaskTracker,
) -> Result<axum::Router, StartError> {
    bootstrap::ensure(
        &*store,
        ServiceRange::default(),
        std::net::IpAddr::from([127, 0, 0, 1]),
        6443,
    )
    .await?;
    let registry = Registry::with_metrics();
    let caches = WatchCaches::start(&registry, &store, tracker, shutdown);
    if !caches.wait_ready(CACHE_FILL_TIMEOUT).await {
        return Err(StartError::CachesNotReady(CACHE_FILL_TIMEOUT));
    }
    let state = Arc::new(ApiState {
        authorizer: authz::Authorizer::new(&registry, &caches),
        store,
        caches,
        discovery: Discovery::new(registry.clone()),
        registry,
        shutdown: shutdown.clone(),
        service_range: ServiceRange::default(),
        create_defaults: tugboat_api::defaults::CreateDefaults::default(),
        tokens,
        root_ca_pem: None,
        sa_tokens: serviceaccount::TokenSigner::ephemeral()?,
        metrics: metrics::Metrics::default(),
        advertise: "127.0.0.1:6443".into(),
        resource_metrics: metrics_api::MetricsStore::default(),
        openapi: std::sync::OnceLock::new(),
        agents: None,
        join: None,
    });
    Ok(server::router(state))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_busy_port_fails_once_worded_and_leaves_no_data_dir() {
        let busy = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let mut config = ApiServerConfig::new(&data_dir);
        config.listen = busy.local_addr().unwrap();
        let Err(error) = start(config, CancellationToken::new()).await else {
            panic!("started on a busy port");
        };
        assert!(matches!(error, StartError::Listen { .. }), "{error:?}");
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(
            !error.to_string().contains(&cause),
            "cause said twice: {error}"
        );
        assert!(error.to_string().contains("--listen"), "{error}");
        assert!(!data_dir.exists(), "the data dir was made before the bind");
    }
}
