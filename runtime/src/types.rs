//! What a runtime reports: sandboxes, containers, their status, exec results, stats, images.
//!
//! Plain Rust types, so the node agent never handles protobuf enums as integers or
//! timestamps as nanoseconds. Requests (sandbox and container configs) stay CRI's own types:
//! they carry everything a pod spec maps to.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::cri::v1::{ContainerConfig, PodSandboxConfig};

/// Labels or annotations.
pub type Labels = BTreeMap<String, String>;

/// A sandbox's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxState {
    /// Running, with its network set up.
    Ready,
    /// Stopped or broken.
    NotReady,
}

/// A pod sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    /// Runtime ID.
    pub id: String,
    /// Pod name.
    pub name: String,
    /// Pod namespace.
    pub namespace: String,
    /// Pod UID.
    pub uid: String,
    /// How many sandboxes this pod had before this one.
    pub attempt: u32,
    /// Its state.
    pub state: SandboxState,
    /// Pod IP (only from a status call; lists do not carry it).
    pub ip: Option<IpAddr>,
    /// Labels set at creation (how a restarted agent finds its sandboxes).
    pub labels: Labels,
    /// Annotations set at creation.
    pub annotations: Labels,
    /// Creation time.
    pub created_at: Option<SystemTime>,
}

/// A container's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited; see the exit code and reason.
    Exited,
    /// The runtime does not know.
    Unknown,
}

/// A container, as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    /// Runtime ID.
    pub id: String,
    /// Its sandbox.
    pub sandbox_id: String,
    /// Container name in the pod.
    pub name: String,
    /// How many times this container was created before in this sandbox.
    pub attempt: u32,
    /// The image as asked for.
    pub image: String,
    /// The image's digest reference.
    pub image_ref: String,
    /// Its state.
    pub state: ContainerState,
    /// Labels set at creation.
    pub labels: Labels,
    /// Annotations set at creation.
    pub annotations: Labels,
    /// Creation time.
    pub created_at: Option<SystemTime>,
}

/// A container's detailed status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStatus {
    /// Runtime ID.
    pub id: String,
    /// Container name in the pod.
    pub name: String,
    /// Attempt number.
    pub attempt: u32,
    /// Its state.
    pub state: ContainerState,
    /// Exit code (meaningful when exited).
    pub exit_code: i32,
    /// Why it exited: `Completed`, `Error`, `OOMKilled`, ...
    pub reason: String,
    /// A human-readable message.
    pub message: String,
    /// Creation time.
    pub created_at: Option<SystemTime>,
    /// Start time.
    pub started_at: Option<SystemTime>,
    /// Exit time.
    pub finished_at: Option<SystemTime>,
    /// The image as asked for.
    pub image: String,
    /// The image's digest reference.
    pub image_ref: String,
    /// Where its log is (CRI log format).
    pub log_path: Option<PathBuf>,
    /// Labels set at creation.
    pub labels: Labels,
    /// Annotations set at creation.
    pub annotations: Labels,
}

impl ContainerStatus {
    /// Whether the kernel's OOM killer ended it.
    pub fn oom_killed(&self) -> bool {
        self.reason == "OOMKilled"
    }
}

/// Which streams an interactive exec attaches (CRI `ExecRequest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ExecStreams {
    /// A terminal (stdout and stderr are then one stream).
    pub tty: bool,
    /// Standard input.
    pub stdin: bool,
    /// Standard output.
    pub stdout: bool,
    /// Standard error.
    pub stderr: bool,
}

/// What an `ExecSync` gave.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExecResult {
    /// Exit code of the command.
    pub exit_code: i32,
    /// Its stdout.
    pub stdout: Vec<u8>,
    /// Its stderr.
    pub stderr: Vec<u8>,
}

/// Resource use of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerStats {
    /// Runtime ID.
    pub id: String,
    /// Container name in the pod.
    pub name: String,
    /// Labels set at creation.
    pub labels: Labels,
    /// When sampled.
    pub timestamp: Option<SystemTime>,
    /// CPU time used so far, in core-nanoseconds.
    pub cpu_usage_core_nanoseconds: Option<u64>,
    /// Current CPU use in nano-cores (1e9 = one core); millicores = this / 1e6.
    pub cpu_usage_nano_cores: Option<u64>,
    /// Working-set memory in bytes (what the metrics API reports).
    pub memory_working_set_bytes: Option<u64>,
}

/// A local image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Image ID (config digest).
    pub id: String,
    /// Its names.
    pub repo_tags: Vec<String>,
    /// Its digest references.
    pub repo_digests: Vec<String>,
    /// Size in bytes.
    pub size: u64,
}

/// What the runtime says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuntimeVersion {
    /// e.g. `containerd`.
    pub runtime_name: String,
    /// e.g. `1.6.20~ds1`.
    pub runtime_version: String,
    /// e.g. `v1`.
    pub runtime_api_version: String,
}

/// Which sandboxes to list. Labels must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFilter {
    /// Only this state.
    pub state: Option<SandboxState>,
    /// Only sandboxes with all these labels.
    pub labels: Labels,
}

/// Which containers to list. Labels must all match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerFilter {
    /// Only in this sandbox.
    pub sandbox_id: Option<String>,
    /// Only this state.
    pub state: Option<ContainerState>,
    /// Only containers with all these labels.
    pub labels: Labels,
}

/// Nanoseconds since the epoch (CRI's timestamps) as a time; 0 means unset.
pub(crate) fn from_nanos(nanos: i64) -> Option<SystemTime> {
    u64::try_from(nanos)
        .ok()
        .filter(|n| *n > 0)
        .map(|n| UNIX_EPOCH + Duration::from_nanos(n))
}

/// Whether `labels` has every pair of `wanted`.
pub(crate) fn labels_match(labels: &Labels, wanted: &Labels) -> bool {
    wanted.iter().all(|(k, v)| labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_timestamps_are_unset() {
        assert_eq!(from_nanos(0), None);
        assert_eq!(from_nanos(-5), None);
        assert_eq!(
            from_nanos(1_000_000_000),
            Some(UNIX_EPOCH + Duration::from_secs(1))
        );
    }

    #[test]
    fn label_selectors_need_every_pair() {
        let labels: Labels = [("a", "1"), ("b", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert!(labels_match(&labels, &Labels::new()));
        assert!(labels_match(&labels, &[("a".into(), "1".into())].into()));
        assert!(!labels_match(&labels, &[("a".into(), "2".into())].into()));
        assert!(!labels_match(&labels, &[("c".into(), "1".into())].into()));
    }
}
