//! Labels the agent puts on sandboxes and containers, so that a restarted agent finds (adopts)
//! what it started, and annotations that carry what CRI does not keep.

use tugboat_runtime::Labels;

/// Pod UID of a sandbox or container.
pub const POD_UID: &str = "tugboat.dev/pod-uid";
/// Pod name.
pub const POD_NAME: &str = "tugboat.dev/pod-name";
/// Pod namespace.
pub const POD_NAMESPACE: &str = "tugboat.dev/pod-namespace";
/// Container name in the pod.
pub const CONTAINER_NAME: &str = "tugboat.dev/container";
/// Marks everything the node agent manages (and may remove when its pod is gone).
pub const MANAGED_BY: &str = "tugboat.dev/managed-by";
/// Value of [`MANAGED_BY`].
pub const AGENT: &str = "tugboat-nodeagent";
/// Annotation: the container's restart count (CRI attempts restart per sandbox).
pub const RESTART_COUNT: &str = "tugboat.dev/restart-count";
/// Annotation: the container's termination grace period in seconds.
pub const GRACE_SECONDS: &str = "tugboat.dev/termination-grace-period-seconds";

/// Labels of a pod's sandbox.
pub fn for_pod(namespace: &str, name: &str, uid: &str) -> Labels {
    [
        (POD_UID, uid),
        (POD_NAME, name),
        (POD_NAMESPACE, namespace),
        (MANAGED_BY, AGENT),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Labels selecting one pod's objects.
pub fn select_pod(uid: &str) -> Labels {
    [(POD_UID.to_string(), uid.to_string())].into()
}

/// Labels selecting everything the agent manages.
pub fn select_managed() -> Labels {
    [(MANAGED_BY.to_string(), AGENT.to_string())].into()
}
