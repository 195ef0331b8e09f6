//! Server-side defaulting, as kube-apiserver applies it before validation and storage.
//!
//! Defaulting works on the JSON form of an object so that fields Tugboat does not model
//! survive untouched. Two entry points mirror where upstream fills values in:
//!
//! * [`apply_defaults`]: the `SetDefaults_*` functions (kubernetes/kubernetes
//!   `pkg/apis/{core,apps,batch,autoscaling}/v1*/defaults.go`) that kube-apiserver runs every
//!   time it decodes an object: on create, on update, and when reading from storage.
//! * [`apply_create_defaults`]: those plus what registry strategies and admission plugins add
//!   only on create (Namespace `kubernetes` finalizer; Pod service account, priority and
//!   default tolerations). These must not run on update: the namespace controller removes
//!   the finalizer, and re-adding it would block deletion forever.
//!
//! Every rule only fills a field that is absent or `null` (or Go's zero value where upstream
//! tests for it), so defaulting twice gives the same result as defaulting once.
//!
//! Pod-template defaults are shared by Pod, PodTemplate and every workload template, so a
//! Deployment's template and its ReplicaSet's template default identically (kubectl's
//! `rollout undo` compares them for equality).

mod apps;
mod autoscaling;
mod batch;
mod core;
mod json;
mod pod;

use serde_json::Value;

/// Why an object could not be defaulted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DefaultsError {
    /// The body is not a JSON object (for example an array or a string).
    #[error("object to default must be a JSON object, got {found}")]
    NotAnObject {
        /// The JSON type that was found instead.
        found: &'static str,
    },
}

/// Result type of this module.
pub type Result<T, E = DefaultsError> = std::result::Result<T, E>;

/// Fills in the defaults kube-apiserver sets for an object of `group`/`kind` (core group = `""`).
///
/// Kinds without defaults are left as they are. Fields holding a value of the wrong JSON
/// type are skipped rather than overwritten: validation reports them.
pub fn apply_defaults(group: &str, kind: &str, obj: &mut Value) -> Result<()> {
    if !obj.is_object() {
        return Err(DefaultsError::NotAnObject {
            found: json::type_name(obj),
        });
    }
    match (group, kind) {
        ("", "Pod") => pod::default_pod(obj),
        ("", "PodTemplate") => {
            if let Some(template) = json::child_object(obj, "template") {
                pod::default_pod_template(template);
            }
        }
        ("", "ReplicationController") => core::default_replication_controller(obj),
        ("", "Service") => core::default_service(obj),
        ("", "Namespace") => core::default_namespace(obj),
        ("", "Secret") => core::default_secret(obj),
        ("", "Node") => core::default_node(obj),
        ("", "PersistentVolumeClaim") => core::default_persistent_volume_claim(obj),
        ("", "PersistentVolume") => core::default_persistent_volume(obj),
        ("storage.k8s.io", "StorageClass") => core::default_storage_class(obj),
        ("", "Endpoints") => core::default_endpoints(obj),
        ("apps", "Deployment") => apps::default_deployment(obj),
        ("apps", "ReplicaSet") => apps::default_replica_set(obj),
        ("apps", "DaemonSet") => apps::default_daemon_set(obj),
        ("apps", "StatefulSet") => apps::default_stateful_set(obj),
        ("batch", "Job") => batch::default_job(obj),
        ("batch", "CronJob") => batch::default_cron_job(obj),
        ("autoscaling", "HorizontalPodAutoscaler") => autoscaling::default_hpa(obj),
        // Event, ConfigMap, Lease and the rest have no defaults visible on the wire.
        _ => {}
    }
    for field in required_status_counts(group, kind) {
        if let Some(status) = json::ensure_object(obj, "status") {
            json::set_default(status, field, Value::from(0));
        }
    }
    Ok(())
}

/// Status counters that kube-apiserver always writes (Go ints without `omitempty`, so a new
/// object shows them as 0 before its controller has run). Typed clients such as the official
/// Python client refuse an object that lacks them.
fn required_status_counts(group: &str, kind: &str) -> &'static [&'static str] {
    match (group, kind) {
        ("", "ReplicationController") | ("apps", "ReplicaSet") => &["replicas"],
        ("apps", "StatefulSet") => &["replicas", "availableReplicas"],
        ("apps", "DaemonSet") => &[
            "currentNumberScheduled",
            "numberMisscheduled",
            "desiredNumberScheduled",
            "numberReady",
        ],
        ("autoscaling", "HorizontalPodAutoscaler") => &["currentReplicas", "desiredReplicas"],
        _ => &[],
    }
}

/// Settings of the create-time defaults that kube-apiserver takes as flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateDefaults {
    /// How long pods tolerate a not-ready or unreachable node by default (DefaultTolerationSeconds
    /// admission; what `--pod-eviction-timeout` sets): 300 s.
    pub toleration_seconds: i64,
}

impl Default for CreateDefaults {
    fn default() -> Self {
        Self {
            toleration_seconds: 300,
        }
    }
}

/// [`apply_defaults`] plus the values kube-apiserver adds only when an object is created.
pub fn apply_create_defaults(group: &str, kind: &str, obj: &mut Value) -> Result<()> {
    apply_create_defaults_with(group, kind, obj, &CreateDefaults::default())
}

/// [`apply_create_defaults`] with the server's settings.
pub fn apply_create_defaults_with(
    group: &str,
    kind: &str,
    obj: &mut Value,
    settings: &CreateDefaults,
) -> Result<()> {
    apply_defaults(group, kind, obj)?;
    match (group, kind) {
        ("", "Pod") => {
            if let Some(spec) = json::child_object(obj, "spec") {
                pod::default_pod_admission(spec, settings.toleration_seconds);
            }
        }
        ("", "Namespace") => core::default_namespace_finalizers(obj),
        _ => {}
    }
    Ok(())
}

/// Adds the selector and pod-template labels the Job registry generates on create
/// (`batch.kubernetes.io/controller-uid` = `uid`, `batch.kubernetes.io/job-name`, and their
/// legacy unprefixed forms), unless `spec.manualSelector` is true. Call it once the new Job
/// has its UID, after [`apply_create_defaults`].
pub fn generate_job_selector(job: &mut Value, uid: &str) -> Result<()> {
    if !job.is_object() {
        return Err(DefaultsError::NotAnObject {
            found: json::type_name(job),
        });
    }
    batch::generate_job_selector(job, uid);
    Ok(())
}

#[cfg(test)]
mod tests;
