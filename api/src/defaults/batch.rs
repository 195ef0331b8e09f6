//! batch/v1 defaults (upstream `pkg/apis/batch/v1/defaults.go`, 1.32 feature gates).

use serde_json::{Value, json};

use super::json::{
    child_object, ensure_object, is_unset, is_zero, set_default, set_default_if_zero,
};
use super::pod::default_pod_template;

/// Job: completions/parallelism 1, backoffLimit 6, NonIndexed, not suspended, pod
/// replacement on terminating-or-failed, and labels copied from the template.
pub(super) fn default_job(job: &mut Value) {
    let template_labels = job
        .pointer("/spec/template/metadata/labels")
        .filter(|labels| labels.is_object())
        .cloned();
    if let Some(spec) = ensure_object(job, "spec") {
        default_job_spec(spec);
    }
    if let Some(labels) = template_labels
        && let Some(metadata) = ensure_object(job, "metadata")
    {
        set_default_if_zero(metadata, "labels", labels);
    }
}

fn default_job_spec(spec: &mut Value) {
    if let Some(template) = child_object(spec, "template") {
        default_pod_template(template);
    }
    if is_unset(spec, "completions") && is_unset(spec, "parallelism") {
        set_default(spec, "completions", json!(1));
    }
    set_default(spec, "parallelism", json!(1));
    // With a per-index backoff limit the global limit is effectively unlimited.
    let backoff_limit = if is_unset(spec, "backoffLimitPerIndex") {
        6
    } else {
        i32::MAX
    };
    set_default(spec, "backoffLimit", json!(backoff_limit));
    set_default(spec, "completionMode", json!("NonIndexed"));
    set_default(spec, "suspend", json!(false));
    let replacement = if is_zero(spec, "podFailurePolicy") {
        "TerminatingOrFailed"
    } else {
        "Failed"
    };
    set_default(spec, "podReplacementPolicy", json!(replacement));
}

/// CronJob: Allow concurrency, not suspended, keep 3 successful and 1 failed Job. The job
/// template gets pod-template defaults only: upstream's `SetDefaults_Job` runs on Jobs, not
/// on a CronJob's `jobTemplate`.
pub(super) fn default_cron_job(cron_job: &mut Value) {
    let Some(spec) = ensure_object(cron_job, "spec") else {
        return;
    };
    set_default_if_zero(spec, "concurrencyPolicy", json!("Allow"));
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(job_template) = child_object(spec, "jobTemplate")
        && let Some(job_spec) = child_object(job_template, "spec")
        && let Some(template) = child_object(job_spec, "template")
    {
        default_pod_template(template);
    }
}

/// Labels the Job registry adds on create unless `spec.manualSelector` is true.
const JOB_NAME_LABELS: [&str; 2] = ["job-name", "batch.kubernetes.io/job-name"];
const CONTROLLER_UID_LABELS: [&str; 2] = ["controller-uid", "batch.kubernetes.io/controller-uid"];

/// Upstream's Job `generateSelector`: pod-template labels naming the Job and its UID, and a
/// selector on `batch.kubernetes.io/controller-uid`. Labels the user already set are kept
/// (a conflicting one then fails validation, as upstream).
pub(super) fn generate_job_selector(job: &mut Value, uid: &str) {
    let manual = job.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true);
    if manual {
        return;
    }
    let name = job
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let Some(spec) = ensure_object(job, "spec") else {
        return;
    };
    if let Some(template) = ensure_object(spec, "template")
        && let Some(metadata) = ensure_object(template, "metadata")
        && let Some(Value::Object(labels)) = ensure_object(metadata, "labels")
    {
        for key in JOB_NAME_LABELS {
            labels.entry(key).or_insert_with(|| json!(name));
        }
        for key in CONTROLLER_UID_LABELS {
            labels.entry(key).or_insert_with(|| json!(uid));
        }
    }
    if let Some(selector) = ensure_object(spec, "selector")
        && let Some(Value::Object(match_labels)) = ensure_object(selector, "matchLabels")
    {
        match_labels
            .entry("batch.kubernetes.io/controller-uid")
            .or_insert_with(|| json!(uid));
    }
}
