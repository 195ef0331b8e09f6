//! apps/v1 workload defaults (upstream `pkg/apis/apps/v1/defaults.go`).

use serde_json::{Value, json};

use super::core::default_pvc_spec;
use super::json::{
    child_object, ensure_object, for_each_item, set_default, set_default_if_zero, str_field,
};
use super::pod::default_pod_template;

/// The `spec` of a workload with its pod template already defaulted.
fn workload_spec(obj: &mut Value) -> Option<&mut Value> {
    let spec = ensure_object(obj, "spec")?;
    if let Some(template) = child_object(spec, "template") {
        default_pod_template(template);
    }
    Some(spec)
}

/// Deployment: 1 replica, RollingUpdate 25%/25%, 10 old ReplicaSets kept, 600s deadline.
pub(super) fn default_deployment(deployment: &mut Value) {
    let Some(spec) = workload_spec(deployment) else {
        return;
    };
    set_default(spec, "replicas", json!(1));
    if let Some(strategy) = ensure_object(spec, "strategy") {
        set_default_if_zero(strategy, "type", json!("RollingUpdate"));
        if str_field(strategy, "type") == Some("RollingUpdate")
            && let Some(rolling) = ensure_object(strategy, "rollingUpdate")
        {
            set_default(rolling, "maxUnavailable", json!("25%"));
            set_default(rolling, "maxSurge", json!("25%"));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
}

/// ReplicaSet: 1 replica.
pub(super) fn default_replica_set(replica_set: &mut Value) {
    if let Some(spec) = workload_spec(replica_set) {
        set_default(spec, "replicas", json!(1));
    }
}

/// DaemonSet: RollingUpdate with maxUnavailable 1 and maxSurge 0, 10 revisions kept.
pub(super) fn default_daemon_set(daemon_set: &mut Value) {
    let Some(spec) = workload_spec(daemon_set) else {
        return;
    };
    if let Some(strategy) = ensure_object(spec, "updateStrategy") {
        set_default_if_zero(strategy, "type", json!("RollingUpdate"));
        if str_field(strategy, "type") == Some("RollingUpdate")
            && let Some(rolling) = ensure_object(strategy, "rollingUpdate")
        {
            set_default(rolling, "maxUnavailable", json!(1));
            set_default(rolling, "maxSurge", json!(0));
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
}

/// StatefulSet: OrderedReady, RollingUpdate partition 0, PVCs retained, 1 replica, 10
/// revisions kept, and PVC defaults inside `volumeClaimTemplates`.
pub(super) fn default_stateful_set(stateful_set: &mut Value) {
    let Some(spec) = workload_spec(stateful_set) else {
        return;
    };
    set_default_if_zero(spec, "podManagementPolicy", json!("OrderedReady"));
    if let Some(strategy) = ensure_object(spec, "updateStrategy") {
        if super::json::is_zero(strategy, "type") {
            set_default_if_zero(strategy, "type", json!("RollingUpdate"));
            set_default(strategy, "rollingUpdate", json!({}));
        }
        if str_field(strategy, "type") == Some("RollingUpdate")
            && let Some(rolling) = child_object(strategy, "rollingUpdate")
        {
            set_default(rolling, "partition", json!(0));
        }
    }
    if let Some(retention) = ensure_object(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default_if_zero(retention, "whenDeleted", json!("Retain"));
        set_default_if_zero(retention, "whenScaled", json!("Retain"));
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    for_each_item(spec, "volumeClaimTemplates", |claim| {
        if let Some(claim_spec) = ensure_object(claim, "spec") {
            default_pvc_spec(claim_spec);
        }
        if let Some(status) = ensure_object(claim, "status") {
            set_default_if_zero(status, "phase", json!("Pending"));
        }
    });
}
