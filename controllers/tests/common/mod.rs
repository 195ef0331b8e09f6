//! The in-process cluster the controller integration tests share: a real API server (memory
//! store, HTTPS on port 0) and the controllers talking to it through kube-rs, as `tug up`
//! wires them. No node agent runs.

#![allow(dead_code)] // each test file uses its own subset

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, StoreConfig};
use tugboat_controllers::ControllersConfig;

pub const NAMESPACE: &str = "default";
pub const TEST_TIMEOUT: Duration = Duration::from_secs(90);

/// Starts an API server and the controllers (default settings, but garbage collection every
/// 200 ms), runs `body` with a client, then shuts both down.
pub async fn with_cluster<F, Fut>(body: F) -> anyhow::Result<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut config = ControllersConfig::default();
    config.cleanup.period = Duration::from_millis(200);
    with_cluster_config(config, body).await
}

/// [`with_cluster`] with these controller settings.
pub async fn with_cluster_config<F, Fut>(config: ControllersConfig, body: F) -> anyhow::Result<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let mut server_config = ApiServerConfig::new(dir.path());
    server_config.listen = "127.0.0.1:0".parse()?;
    server_config.store = StoreConfig::Memory;
    let server = tugboat_apiserver::start(server_config, shutdown.clone()).await?;
    let client = tugboat_testkit::kube::client(&server.url, &server.ca_pem, &server.admin_token)?;

    let controllers = tugboat_controllers::run(client.clone(), config, shutdown.child_token());
    let test = async {
        let result = tokio::time::timeout(TEST_TIMEOUT, body(client)).await;
        shutdown.cancel();
        result.context("test timed out")?
    };
    let (controllers, test) = tokio::join!(controllers, test);
    server.stopped().await;
    test?;
    controllers.context("controllers failed")?;
    Ok(())
}

/// Polls `check` every 50 ms until it yields `Some` (bounded by the test's timeout).
pub async fn eventually<T, Fut>(mut check: impl FnMut() -> Fut) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
