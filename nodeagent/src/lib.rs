//! Tugboat's node agent (the kubelet): registers its Node, keeps a Lease, and turns the pods
//! bound to the node into sandboxes and containers through a [`tugboat_runtime::Runtime`].
//!
//! - [`run`]: the agent until its shutdown token is cancelled.
//! - [`node`]: registration, Ready condition, heartbeat and Lease.
//! - [`podwatch`]: the pod watch feeding an agent, its own or one shared by the simulated
//!   nodes of a process.
//! - [`sync`]: the level-triggered per-pod sync (sandbox, images, init and app containers,
//!   probes, restarts, termination), fed by a keyed [`queue`].
//! - [`proxy`]: the service proxy (iptables rules for ClusterIPs and NodePorts).
//! - Pure parts: [`status`] (pod status), [`backoff`], [`env`], [`probe`], [`spec`],
//!   [`resources`], [`volumes`].
//!
//! - [`stats`]: CPU and memory pushed to the metrics API every period.
//!
//! - [`server`]: the HTTPS endpoint for logs, exec and port-forward (the kubelet's port).
//!
//! Not yet here: a token of the agent's own (it uses whatever client it is given).

pub mod agent;
pub mod backoff;
pub mod config;
pub mod dns;
pub mod env;
pub mod error;
pub mod events;
pub mod host;
pub mod labels;
pub mod node;
pub mod nodewatch;
pub mod podwatch;
pub mod probe;
pub mod proxy;
pub mod queue;
pub mod resources;
pub mod server;
pub mod spdy;
pub mod spec;
pub mod stats;
pub mod status;
pub mod sync;
pub mod volumes;

pub use agent::{SharedByNodes, run, run_fed};
pub use config::{AgentConfig, NodeResources, Timings};
pub use error::{Error, Result};
pub use nodewatch::NodeStatuses;
pub use podwatch::{PodFeed, PodWatch};
