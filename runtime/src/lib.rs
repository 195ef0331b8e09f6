//! Tugboat's container runtime layer, for the node agent.
//!
//! - [`Runtime`]: what the agent drives (sandboxes, containers, exec, logs, stats, images),
//!   with [`ContainerdRuntime`] over containerd's CRI and [`SimRuntime`] that runs nothing.
//! - [`supervisor`]: a private containerd under `<data-dir>/containerd`, never a system one.
//! - [`cni`]: the pod network's CNI config; [`image`]: the busybox image and imports.
//! - [`reset()`]: what `tug reset` does to pods, containerd and the network.

#![deny(missing_docs)]

pub mod clock;
pub mod cni;
pub mod config;
pub mod containerd;
pub mod cri;
pub mod error;
pub mod image;
pub mod logs;
pub mod reset;
pub mod runtime;
pub mod sim;
pub mod supervisor;
pub mod types;

pub use clock::WallClock;
pub use cni::NetworkConfig;
pub use config::{BUSYBOX_IMAGE, ContainerdConfig};
pub use containerd::{ContainerdOptions, ContainerdRuntime};
pub use error::{Error, Result};
pub use logs::{Follower, LogLine, LogOptions, Stream};
pub use reset::{ResetReport, reset};
pub use runtime::Runtime;
pub use sim::{SimNetwork, SimRuntime};
pub use types::*;
