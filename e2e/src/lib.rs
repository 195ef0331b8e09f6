//! End-to-end harness: the real `tug` binary, driven by the real, unmodified `kubectl`.
//!
//! - [`tug_binary`] finds `<target>/debug/tug` (honouring `CARGO_TARGET_DIR`) and builds it with
//!   `cargo build -p tugboat-ctl --bin tug` first when it is missing or older than the sources
//!   of the crates it is made of.
//! - [`Cluster`] runs `tug up` on a free loopback port with its own temporary data dir, waits
//!   (bounded) for `/readyz`, and stops it by PID on drop: SIGTERM, then SIGKILL after
//!   [`STOP_TIMEOUT`]. A watchdog process stops it too if the test process dies first.
//! - [`Kubectl`] runs `kubectl --kubeconfig <data>/kubeconfig --cache-dir <private>` with a
//!   timeout on every call.
//! - [`TugCli`] runs the `tug` CLI (`tug apply`, `get`, ...) with the cluster's kubeconfig,
//!   bounded like kubectl.
//! - [`kubectl_or_skip`]: tests skip when kubectl is missing, except when `CI` is set.
//!
//! Nothing here ever signals a process it did not start, and every wait is bounded.

pub mod cluster;
pub mod components;
pub mod containers;
pub mod kubectl;
pub mod process;
pub mod python;
pub mod tug;
pub mod tugcli;
pub mod wait;

pub use cluster::{Cluster, STARTUP_TIMEOUT, STOP_TIMEOUT, shared};
pub use kubectl::{KUBECTL_TIMEOUT, Kubectl, kubectl_binary, kubectl_or_skip};
pub use tug::{target_dir, tug_binary, workspace_root};
pub use tugcli::{TUG_CLI_TIMEOUT, TugCli};
