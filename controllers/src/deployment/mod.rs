//! The Deployment controller.

pub mod progress;
pub mod recreate;
pub mod rolling;
pub mod sync;
#[cfg(test)]
mod testing;
pub mod util;

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::Result;

/// Settings of the Deployment controller.
#[derive(Debug, Clone)]
pub struct DeploymentConfig {
    /// Concurrent syncs (upstream `--concurrent-deployment-syncs`, default 5).
    pub workers: usize,
}

impl Default for DeploymentConfig {
    fn default() -> Self {
        Self { workers: 5 }
    }
}

/// Runs the Deployment controller until `cancel` fires.
pub async fn run(
    _client: Client,
    _config: DeploymentConfig,
    cancel: CancellationToken,
) -> Result<()> {
    cancel.cancelled().await;
    Ok(())
}
