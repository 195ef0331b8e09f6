//! The interface the node agent drives: one implementation over containerd's CRI, one
//! simulated.

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::logs::{LogLine, LogOptions};
use crate::types::{
    Container, ContainerConfig, ContainerFilter, ContainerStats, ContainerStatus, ExecResult,
    ExecStreams, ImageInfo, PodSandboxConfig, RuntimeVersion, Sandbox, SandboxFilter,
};

/// A container runtime, as the node agent sees it (the shape of CRI, with plain types out).
///
/// Everything the agent starts carries its labels, so after a restart it lists sandboxes and
/// containers by label and adopts them instead of starting new ones.
#[async_trait]
pub trait Runtime: Send + Sync {
    /// Name and version of the runtime (for the Node's `nodeInfo`).
    async fn version(&self) -> Result<RuntimeVersion>;

    /// Whether the runtime and its network are ready (drives the Node's Ready condition).
    async fn ready(&self) -> Result<bool>;

    /// Creates and starts a pod sandbox with its network; returns its ID.
    async fn run_sandbox(&self, config: &PodSandboxConfig) -> Result<String>;

    /// Stops a sandbox and every container in it, and frees its IP. Idempotent.
    async fn stop_sandbox(&self, id: &str) -> Result<()>;

    /// Removes a stopped sandbox and its containers. Removing a missing one is fine.
    async fn remove_sandbox(&self, id: &str) -> Result<()>;

    /// A sandbox's status, with its IP.
    async fn sandbox_status(&self, id: &str) -> Result<Sandbox>;

    /// Sandboxes matching a filter (without IPs: ask `sandbox_status` for those).
    async fn list_sandboxes(&self, filter: &SandboxFilter) -> Result<Vec<Sandbox>>;

    /// Creates a container in a sandbox; returns its ID. `sandbox` is the config the sandbox
    /// was created with.
    async fn create_container(
        &self,
        sandbox_id: &str,
        config: &ContainerConfig,
        sandbox: &PodSandboxConfig,
    ) -> Result<String>;

    /// Starts a created container.
    async fn start_container(&self, id: &str) -> Result<()>;

    /// Stops a container: SIGTERM (or the image's stop signal), SIGKILL after `grace`.
    async fn stop_container(&self, id: &str, grace: Duration) -> Result<()>;

    /// Removes a container (stopping it first if needed). Removing a missing one is fine.
    async fn remove_container(&self, id: &str) -> Result<()>;

    /// Containers matching a filter.
    async fn list_containers(&self, filter: &ContainerFilter) -> Result<Vec<Container>>;

    /// A container's status: state, exit code, reason (`OOMKilled` included) and times.
    async fn container_status(&self, id: &str) -> Result<ContainerStatus>;

    /// Whether pod IPs are fake and nothing listens on them: HTTP and TCP probes must then not
    /// touch the network, and are answered by [`Runtime::exec_sync`] instead.
    fn simulated(&self) -> bool {
        false
    }

    /// Runs a command in a container and waits for it (exec probes); `timeout` of zero
    /// means none.
    async fn exec_sync(&self, id: &str, cmd: &[String], timeout: Duration) -> Result<ExecResult>;

    /// A URL on the runtime's streaming server that runs `cmd` in the container for one
    /// client (CRI `Exec`): the caller proxies the client's SPDY or WebSocket upgrade to it.
    async fn exec_url(&self, id: &str, cmd: &[String], streams: ExecStreams) -> Result<String>;

    /// A URL on the runtime's streaming server that forwards connections to the sandbox's
    /// network namespace (CRI `PortForward`); the ports come with the client's streams.
    async fn port_forward_url(&self, sandbox_id: &str, ports: &[u16]) -> Result<String>;

    /// A container's log lines.
    async fn read_logs(&self, id: &str, opts: &LogOptions) -> Result<Vec<LogLine>>;

    /// CPU and memory use of the matching containers.
    async fn container_stats(&self, filter: &ContainerFilter) -> Result<Vec<ContainerStats>>;

    /// The local image `image`, if present.
    async fn image_status(&self, image: &str) -> Result<Option<ImageInfo>>;

    /// Pulls an image; returns its reference.
    async fn pull_image(&self, image: &str) -> Result<String>;

    /// Every local image.
    async fn list_images(&self) -> Result<Vec<ImageInfo>>;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::sim::{SimNetwork, SimRuntime};

    #[test]
    fn usable_as_a_shared_trait_object() {
        fn assert_send_sync<T: Send + Sync>(_: &T) {}
        let rt: Arc<dyn Runtime> = Arc::new(SimRuntime::new("n", SimNetwork::new()));
        assert_send_sync(&rt);
    }
}
