//! Create and update validation with kube-apiserver's field paths and messages.
//!
//! [`validate_create`] and [`validate_update`] take the JSON of a *defaulted* object (run
//! [`crate::defaults::apply_defaults`] first, as kube-apiserver does) and return every
//! problem as a [`FieldError`], the `causes` of a 422 `Invalid` Status.
//! [`invalid_object_message`] builds that Status's message.
//!
//! Rules follow kubernetes/kubernetes `pkg/apis/{core,apps,batch,autoscaling}/validation`
//! and apimachinery's object-meta checks, with their wording, for the kinds Tugboat
//! serves. A value of the wrong JSON type (a string for `replicas`) is reported once as
//! `FieldValueTypeInvalid` and stops further checks, since upstream rejects such a body
//! while decoding it.

mod access;
mod errors;
mod meta;
mod names;
mod other_kinds;
mod path;
mod pod;
mod quantity;
mod service;
mod update;
mod workloads;

use serde_json::Value;

pub use errors::{BadValue, ErrorReason, FieldError, invalid_object_message};
pub use update::validate_update;

use names::NameRule;
use workloads::Workload;

/// Scope and name rule of a kind Tugboat validates.
struct KindRules {
    namespaced: bool,
    name_rule: NameRule,
}

/// Scope and name rule per kind (upstream's `ValidateNameFunc` and REST scope).
fn kind_rules(group: &str, kind: &str) -> Option<KindRules> {
    let (namespaced, name_rule) = match (group, kind) {
        ("", "Namespace") => (false, NameRule::Label),
        ("", "Service") => (true, NameRule::Dns1035),
        ("", "Node" | "PersistentVolume") => (false, NameRule::Subdomain),
        (
            "",
            "Pod"
            | "PodTemplate"
            | "ReplicationController"
            | "ConfigMap"
            | "Secret"
            | "ServiceAccount"
            | "Endpoints"
            | "PersistentVolumeClaim"
            | "LimitRange"
            | "ResourceQuota"
            | "Event",
        ) => (true, NameRule::Subdomain),
        (
            "apps",
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "ControllerRevision",
        ) => (true, NameRule::Subdomain),
        ("batch", "Job" | "CronJob") => (true, NameRule::Subdomain),
        ("autoscaling", "HorizontalPodAutoscaler") => (true, NameRule::Subdomain),
        ("coordination.k8s.io", "Lease") => (true, NameRule::Subdomain),
        ("events.k8s.io", "Event") => (true, NameRule::Subdomain),
        ("discovery.k8s.io", "EndpointSlice") => (true, NameRule::Subdomain),
        ("policy", "PodDisruptionBudget") => (true, NameRule::Subdomain),
        ("networking.k8s.io", "Ingress" | "NetworkPolicy") => (true, NameRule::Subdomain),
        ("rbac.authorization.k8s.io", "Role" | "RoleBinding") => (true, NameRule::PathSegment),
        ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding") => {
            (false, NameRule::PathSegment)
        }
        ("scheduling.k8s.io", "PriorityClass") | ("storage.k8s.io", "StorageClass") => {
            (false, NameRule::Subdomain)
        }
        _ => return None,
    };
    Some(KindRules {
        namespaced,
        name_rule,
    })
}

/// A `resource.Quantity` (`"1Gi"`, `"500m"`) in billionths of a unit, to compare amounts;
/// `None` when the text is not a quantity.
pub fn quantity_nanos(text: &str) -> Option<i128> {
    quantity::parse_quantity(text).map(quantity::Quantity::nanos)
}

/// Validates a new object of `group`/`kind` (core group = `""`).
///
/// Kinds without rules here get no errors: the API server should not serve them.
pub fn validate_create(group: &str, kind: &str, obj: &Value) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if !obj.is_object() {
        errs.push(FieldError::type_invalid("", obj, "must be a JSON object"));
        return errs;
    }
    if let Err(error) = crate::strict::check_decodes(group, kind, obj) {
        let detail = match &error {
            crate::strict::StrictError::Decode { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        errs.push(FieldError::type_invalid(
            "",
            BadValue::Plain(kind.to_owned()),
            &detail,
        ));
        return errs;
    }
    let Some(rules) = kind_rules(group, kind) else {
        return errs;
    };
    meta::validate_object_meta(obj, rules.namespaced, rules.name_rule, &mut errs);
    validate_kind(group, kind, obj, &mut errs);
    errs
}

/// The kind-specific rules, shared by create and update.
fn validate_kind(group: &str, kind: &str, obj: &Value, errs: &mut Vec<FieldError>) {
    let spec_path = path::FieldPath::root("spec");
    match (group, kind) {
        ("", "Pod") => pod::validate_pod_spec(access::child(obj, "spec"), &spec_path, errs),
        ("", "PodTemplate") => {
            let template_spec_path = path::FieldPath::root("template").child("spec");
            let template_spec = access::child(access::child(obj, "template"), "spec");
            pod::validate_pod_spec(template_spec, &template_spec_path, errs);
        }
        ("", "ReplicationController") => {
            workloads::validate_workload_spec(obj, Workload::ReplicationController, errs)
        }
        ("", "Service") => service::validate_service_spec(obj, errs),
        ("", "ConfigMap") => other_kinds::validate_config_map(obj, errs),
        ("", "Secret") => other_kinds::validate_secret(obj, errs),
        ("", "Namespace") => other_kinds::validate_namespace(obj, errs),
        ("", "Node") => other_kinds::validate_node(obj, errs),
        ("", "Event") => other_kinds::validate_event(obj, errs),
        ("", "PersistentVolumeClaim") => {
            other_kinds::validate_pvc_spec(access::child(obj, "spec"), &spec_path, errs)
        }
        ("apps", "Deployment") => {
            workloads::validate_workload_spec(obj, Workload::Deployment, errs)
        }
        ("apps", "ReplicaSet") => {
            workloads::validate_workload_spec(obj, Workload::ReplicaSet, errs)
        }
        ("apps", "DaemonSet") => workloads::validate_workload_spec(obj, Workload::DaemonSet, errs),
        ("apps", "StatefulSet") => {
            workloads::validate_workload_spec(obj, Workload::StatefulSet, errs)
        }
        ("batch", "Job") => {
            workloads::validate_job_spec(access::child(obj, "spec"), &spec_path, errs)
        }
        ("batch", "CronJob") => {
            let name = access::str_or_empty(access::child(obj, "metadata"), "name");
            if name.len() > 52 {
                errs.push(FieldError::invalid(
                    path::FieldPath::root("metadata").child("name"),
                    name,
                    "must be no more than 52 characters",
                ));
            }
            workloads::validate_cron_job_spec(obj, errs);
        }
        ("autoscaling", "HorizontalPodAutoscaler") => other_kinds::validate_hpa(obj, errs),
        ("coordination.k8s.io", "Lease") => other_kinds::validate_lease(obj, errs),
        ("rbac.authorization.k8s.io", "RoleBinding") => {
            other_kinds::validate_role_binding(obj, false, errs)
        }
        ("rbac.authorization.k8s.io", "ClusterRoleBinding") => {
            other_kinds::validate_role_binding(obj, true, errs)
        }
        ("", "PersistentVolume") => other_kinds::validate_persistent_volume(obj, errs),
        ("storage.k8s.io", "StorageClass") => other_kinds::validate_storage_class(obj, errs),
        _ => {}
    }
}

#[cfg(test)]
mod tests;
