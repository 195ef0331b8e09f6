//! The in-process API server these tests run agents against: one fixture instead of a copy
//! in each file.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use kube::Client;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, Running, StoreConfig};

/// An API server on a memory store at a free loopback port, and an admin client for it.
pub struct ApiServer {
    pub client: Client,
    pub running: Running,
    /// Cancel to stop the server, then await [`Running::stopped`].
    pub shutdown: CancellationToken,
}

/// Starts an [`ApiServer`] keeping its files under `dir/api`.
pub async fn start_api_server(dir: &Path) -> ApiServer {
    let mut config = ApiServerConfig::new(dir.join("api"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.store = StoreConfig::Memory;
    let shutdown = CancellationToken::new();
    let running = tugboat_apiserver::start(config, shutdown.clone())
        .await
        .unwrap();
    let client =
        tugboat_testkit::kube::client(&running.url, &running.ca_pem, &running.admin_token).unwrap();
    ApiServer {
        client,
        running,
        shutdown,
    }
}
