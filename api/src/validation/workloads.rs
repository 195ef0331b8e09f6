//! Workload validation: Deployment, ReplicaSet, DaemonSet, StatefulSet, ReplicationController
//! (kubernetes `pkg/apis/apps/validation`, `core/validation`) and Job, CronJob
//! (`pkg/apis/batch/validation`).

use serde_json::{Map, Value};

use super::access::{child, int_at, is_set, list_at, obj_at, str_or_empty};
use super::errors::{BadValue, FieldError, go_quote, go_string_map};
use super::meta::{
    labels_bad_value, selector_is_empty, selector_matches, validate_label_selector,
    validate_nonnegative,
};
use super::path::FieldPath;
use super::pod::{validate_pod_spec, validate_pod_spec_with_claims};

/// Which workload a pod template belongs to, for upstream's per-kind wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    Deployment,
    ReplicaSet,
    DaemonSet,
    StatefulSet,
    ReplicationController,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Deployment => "Deployment",
            Self::ReplicaSet => "ReplicaSet",
            Self::DaemonSet => "DaemonSet",
            Self::StatefulSet => "StatefulSet",
            Self::ReplicationController => "ReplicationController",
        }
    }

    /// The noun in "empty selector is invalid for ..." (ReplicaSets share Deployment's text).
    fn selector_noun(self) -> &'static str {
        match self {
            Self::Deployment | Self::ReplicaSet | Self::ReplicationController => "deployment",
            Self::DaemonSet => "daemonset",
            Self::StatefulSet => "statefulset",
        }
    }
}

/// Validates the spec of an apps/v1 workload or a ReplicationController.
pub(crate) fn validate_workload_spec(obj: &Value, workload: Workload, errs: &mut Vec<FieldError>) {
    let spec = child(obj, "spec");
    let path = FieldPath::root("spec");
    if workload != Workload::DaemonSet
        && let Some(replicas) = int_at(spec, "replicas")
    {
        validate_nonnegative(replicas, &path.child("replicas"), errs);
    }
    if let Some(min_ready) = int_at(spec, "minReadySeconds") {
        validate_nonnegative(min_ready, &path.child("minReadySeconds"), errs);
    }
    if let Some(limit) = int_at(spec, "revisionHistoryLimit") {
        validate_nonnegative(limit, &path.child("revisionHistoryLimit"), errs);
    }
    let selector_ok = if workload == Workload::ReplicationController {
        validate_rc_selector(spec, &path, errs)
    } else {
        validate_apps_selector(spec, workload, &path, errs)
    };
    let template_path = path.child("template");
    let Some(template) = spec.get("template").filter(|t| t.is_object()) else {
        errs.push(FieldError::required(&template_path, ""));
        return;
    };
    let template_labels = template.get("metadata").and_then(|m| obj_at(m, "labels"));
    if selector_ok && !template_matches(spec, workload, template_labels) {
        errs.push(FieldError::invalid(
            template_path.child("metadata").child("labels"),
            labels_bad_value(template_labels),
            "`selector` does not match template `labels`",
        ));
    }
    if let Some(labels) = template_labels {
        super::meta::validate_labels(
            labels,
            &template_path.child("metadata").child("labels"),
            errs,
        );
    }
    let template_spec = child(template, "spec");
    let template_spec_path = template_path.child("spec");
    let claim_templates: Vec<&str> = list_at(spec, "volumeClaimTemplates")
        .iter()
        .filter_map(|claim| child(claim, "metadata").get("name")?.as_str())
        .collect();
    validate_pod_spec_with_claims(template_spec, &template_spec_path, &claim_templates, errs);
    let restart_policy = str_or_empty(template_spec, "restartPolicy");
    if !restart_policy.is_empty() && restart_policy != "Always" {
        errs.push(FieldError::not_supported(
            template_spec_path.child("restartPolicy"),
            restart_policy,
            &["Always"],
        ));
    }
    if let Some(deadline) = template_spec
        .get("activeDeadlineSeconds")
        .filter(|d| !d.is_null())
    {
        let detail = format!(
            "activeDeadlineSeconds in {} is not Supported",
            workload.name()
        );
        let deadline_path = template_spec_path.child("activeDeadlineSeconds");
        if workload == Workload::DaemonSet {
            errs.push(FieldError::invalid(deadline_path, deadline, &detail));
        } else {
            errs.push(FieldError::forbidden(deadline_path, &detail));
        }
    }
    match workload {
        Workload::Deployment => validate_deployment_extras(spec, &path, errs),
        Workload::DaemonSet => validate_daemon_set_strategy(
            child(spec, "updateStrategy"),
            &path.child("updateStrategy"),
            errs,
        ),
        Workload::StatefulSet => validate_stateful_set_extras(spec, &path, errs),
        Workload::ReplicaSet | Workload::ReplicationController => {}
    }
}

/// apps/v1 selectors: required, valid and non-empty. Returns whether label matching applies.
fn validate_apps_selector(
    spec: &Value,
    workload: Workload,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> bool {
    let Some(selector) = spec.get("selector").filter(|s| s.is_object()) else {
        errs.push(FieldError::required(path.child("selector"), ""));
        return false;
    };
    validate_label_selector(selector, &path.child("selector"), errs);
    if selector_is_empty(selector) {
        errs.push(FieldError::invalid(
            path.child("selector"),
            go_label_selector(Some(selector)),
            &format!("empty selector is invalid for {}", workload.selector_noun()),
        ));
        return false;
    }
    true
}

/// ReplicationController selectors are plain label maps and must not be empty.
fn validate_rc_selector(spec: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) -> bool {
    match obj_at(spec, "selector") {
        Some(selector) if !selector.is_empty() => {
            super::meta::validate_labels(selector, &path.child("selector"), errs);
            true
        }
        _ => {
            errs.push(FieldError::required(path.child("selector"), ""));
            false
        }
    }
}

fn template_matches(spec: &Value, workload: Workload, labels: Option<&Map<String, Value>>) -> bool {
    let selector = child(spec, "selector");
    if workload == Workload::ReplicationController {
        let wanted = selector.as_object().cloned().unwrap_or_default();
        let as_label_selector = serde_json::json!({"matchLabels": wanted});
        return selector_matches(&as_label_selector, labels);
    }
    selector_matches(selector, labels)
}

fn validate_deployment_extras(spec: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let strategy = child(spec, "strategy");
    let strategy_path = path.child("strategy");
    match str_or_empty(strategy, "type") {
        "Recreate" => {
            if is_set(strategy, "rollingUpdate") {
                errs.push(FieldError::forbidden(
                    strategy_path.child("rollingUpdate"),
                    "may not be specified when strategy `type` is 'Recreate'",
                ));
            }
        }
        "RollingUpdate" => match strategy.get("rollingUpdate").filter(|r| r.is_object()) {
            None => errs.push(FieldError::required(
                strategy_path.child("rollingUpdate"),
                "this should be defaulted and never be nil",
            )),
            Some(rolling) => {
                let rolling_path = strategy_path.child("rollingUpdate");
                let max_unavailable = rolling.get("maxUnavailable");
                let max_surge = rolling.get("maxSurge");
                validate_int_or_percent(
                    max_unavailable,
                    &rolling_path.child("maxUnavailable"),
                    errs,
                );
                validate_int_or_percent(max_surge, &rolling_path.child("maxSurge"), errs);
                if int_or_percent_value(max_unavailable) == 0
                    && int_or_percent_value(max_surge) == 0
                {
                    errs.push(FieldError::invalid(
                        rolling_path.child("maxUnavailable"),
                        go_int_or_string(max_unavailable),
                        "may not be 0 when `maxSurge` is 0",
                    ));
                }
                not_more_than_100_percent(
                    max_unavailable,
                    &rolling_path.child("maxUnavailable"),
                    errs,
                );
            }
        },
        other => {
            let rolling = if is_set(strategy, "rollingUpdate") {
                "(*apps.RollingUpdateDeployment)(0xc000000000)"
            } else {
                "(*apps.RollingUpdateDeployment)(nil)"
            };
            errs.push(FieldError::not_supported(
                &strategy_path,
                BadValue::Go(format!(
                    "apps.DeploymentStrategy{{Type:{}, RollingUpdate:{rolling}}}",
                    go_quote(other)
                )),
                &["Recreate", "RollingUpdate"],
            ));
        }
    }
    if let Some(deadline) = int_at(spec, "progressDeadlineSeconds") {
        validate_nonnegative(deadline, &path.child("progressDeadlineSeconds"), errs);
        if deadline <= int_at(spec, "minReadySeconds").unwrap_or(0) {
            errs.push(FieldError::invalid(
                path.child("progressDeadlineSeconds"),
                deadline,
                "must be greater than minReadySeconds",
            ));
        }
    }
}

fn validate_daemon_set_strategy(strategy: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    match str_or_empty(strategy, "type") {
        "OnDelete" => {}
        "RollingUpdate" => {
            let Some(rolling) = strategy.get("rollingUpdate").filter(|r| r.is_object()) else {
                errs.push(FieldError::required(path.child("rollingUpdate"), ""));
                return;
            };
            let rolling_path = path.child("rollingUpdate");
            let max_unavailable = rolling.get("maxUnavailable");
            let max_surge = rolling.get("maxSurge");
            validate_int_or_percent(max_unavailable, &rolling_path.child("maxUnavailable"), errs);
            validate_int_or_percent(max_surge, &rolling_path.child("maxSurge"), errs);
            not_more_than_100_percent(max_unavailable, &rolling_path.child("maxUnavailable"), errs);
            not_more_than_100_percent(max_surge, &rolling_path.child("maxSurge"), errs);
            let has_unavailable = int_or_percent_value(max_unavailable) != 0;
            let has_surge = int_or_percent_value(max_surge) != 0;
            if has_unavailable && has_surge {
                errs.push(FieldError::invalid(
                    rolling_path.child("maxSurge"),
                    go_int_or_string(max_surge),
                    "may not be set when maxUnavailable is non-zero",
                ));
            } else if !has_unavailable && !has_surge {
                errs.push(FieldError::required(
                    rolling_path.child("maxUnavailable"),
                    "cannot be 0 when maxSurge is 0",
                ));
            }
        }
        "" => errs.push(FieldError::required(path.child("type"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("type"),
            other,
            &["OnDelete", "RollingUpdate"],
        )),
    }
}

fn validate_stateful_set_extras(spec: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    for (i, claim) in list_at(spec, "volumeClaimTemplates").iter().enumerate() {
        let claim_path = path.child("volumeClaimTemplates").index(i);
        super::other_kinds::validate_pvc_spec(
            child(claim, "spec"),
            &claim_path.child("spec"),
            errs,
        );
    }
    match str_or_empty(spec, "podManagementPolicy") {
        "OrderedReady" | "Parallel" => {}
        "" => errs.push(FieldError::required(path.child("podManagementPolicy"), "")),
        other => errs.push(FieldError::invalid(
            path.child("podManagementPolicy"),
            other,
            "must be 'OrderedReady' or 'Parallel'",
        )),
    }
    let strategy = child(spec, "updateStrategy");
    let strategy_path = path.child("updateStrategy");
    match str_or_empty(strategy, "type") {
        "RollingUpdate" => {
            if let Some(partition) = strategy
                .get("rollingUpdate")
                .and_then(|r| int_at(r, "partition"))
            {
                validate_nonnegative(
                    partition,
                    &strategy_path.child("rollingUpdate").child("partition"),
                    errs,
                );
            }
        }
        "OnDelete" => {
            if is_set(strategy, "rollingUpdate") {
                errs.push(FieldError::invalid(
                    strategy_path.child("rollingUpdate"),
                    BadValue::Go(child(strategy, "rollingUpdate").to_string()),
                    "only allowed for updateStrategy 'RollingUpdate'",
                ));
            }
        }
        "" => errs.push(FieldError::required(&strategy_path, "")),
        other => errs.push(FieldError::invalid(
            &strategy_path,
            BadValue::Go(format!(
                "apps.StatefulSetUpdateStrategy{{Type:{}}}",
                go_quote(other)
            )),
            "must be 'RollingUpdate' or 'OnDelete'",
        )),
    }
}

/// A maxSurge/maxUnavailable value: a non-negative integer or a percent string.
fn validate_int_or_percent(value: Option<&Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    match value {
        Some(Value::String(text)) => {
            let is_percent = text.strip_suffix('%').is_some_and(|digits| {
                !digits.is_empty() && digits.bytes().all(|c| c.is_ascii_digit())
            });
            if !is_percent {
                errs.push(FieldError::invalid(
                    path,
                    go_int_or_string(value),
                    "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
                ));
            }
        }
        Some(Value::Number(n)) => validate_nonnegative(n.as_i64().unwrap_or(0), path, errs),
        _ => {}
    }
}

fn int_or_percent_value(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        Some(Value::String(text)) => text.trim_end_matches('%').parse().unwrap_or(0),
        _ => 0,
    }
}

fn not_more_than_100_percent(value: Option<&Value>, path: &FieldPath, errs: &mut Vec<FieldError>) {
    if let Some(Value::String(text)) = value
        && let Some(percent) = text.strip_suffix('%').and_then(|d| d.parse::<i64>().ok())
        && percent > 100
    {
        errs.push(FieldError::invalid(
            path,
            go_int_or_string(value),
            "must not be greater than 100%",
        ));
    }
}

/// An IntOrString as Go's `%#v` prints it.
fn go_int_or_string(value: Option<&Value>) -> BadValue {
    BadValue::Go(match value {
        Some(Value::String(s)) => format!(
            "intstr.IntOrString{{Type:1, IntVal:0, StrVal:{}}}",
            go_quote(s)
        ),
        Some(Value::Number(n)) => format!(
            "intstr.IntOrString{{Type:0, IntVal:{}, StrVal:\"\"}}",
            n.as_i64().unwrap_or(0)
        ),
        _ => "intstr.IntOrString{Type:0, IntVal:0, StrVal:\"\"}".to_owned(),
    })
}

/// A LabelSelector as Go's `%#v` prints it (expressions abbreviated to JSON).
pub(crate) fn go_label_selector(selector: Option<&Value>) -> BadValue {
    let Some(selector) = selector.filter(|s| s.is_object()) else {
        return BadValue::Go("null".to_owned());
    };
    let match_labels = obj_at(selector, "matchLabels")
        .map_or_else(|| "map[string]string(nil)".to_owned(), go_string_map);
    let expressions = list_at(selector, "matchExpressions");
    let match_expressions = if expressions.is_empty() {
        "[]v1.LabelSelectorRequirement(nil)".to_owned()
    } else {
        format!(
            "[]v1.LabelSelectorRequirement{}",
            Value::Array(expressions.to_vec())
        )
    };
    BadValue::Go(format!(
        "v1.LabelSelector{{MatchLabels:{match_labels}, MatchExpressions:{match_expressions}}}"
    ))
}

// === batch ===

/// Validates a Job's spec at `path` (`spec`, or `spec.jobTemplate.spec` in a CronJob).
pub(crate) fn validate_job_spec(spec: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    for key in [
        "parallelism",
        "completions",
        "activeDeadlineSeconds",
        "backoffLimit",
        "ttlSecondsAfterFinished",
    ] {
        if let Some(value) = int_at(spec, key) {
            validate_nonnegative(value, &path.child(key), errs);
        }
    }
    match str_or_empty(spec, "completionMode") {
        "" | "NonIndexed" => {}
        "Indexed" => {
            if !is_set(spec, "completions") {
                errs.push(FieldError::required(
                    path.child("completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            path.child("completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    let template_path = path.child("template");
    let Some(template) = spec.get("template").filter(|t| t.is_object()) else {
        errs.push(FieldError::required(&template_path, ""));
        return;
    };
    let template_labels = template.get("metadata").and_then(|m| obj_at(m, "labels"));
    // Without manualSelector the API server generates the selector and its labels.
    if let Some(selector) = spec.get("selector").filter(|s| s.is_object()) {
        validate_label_selector(selector, &path.child("selector"), errs);
        if !selector_matches(selector, template_labels) {
            errs.push(FieldError::invalid(
                template_path.child("metadata").child("labels"),
                labels_bad_value(template_labels),
                "`selector` does not match template `labels`",
            ));
        }
    }
    let template_spec = child(template, "spec");
    validate_pod_spec(template_spec, &template_path.child("spec"), errs);
    let restart_policy = str_or_empty(template_spec, "restartPolicy");
    if restart_policy != "OnFailure" && restart_policy != "Never" {
        errs.push(FieldError::not_supported(
            template_path.child("spec").child("restartPolicy"),
            restart_policy,
            &["OnFailure", "Never"],
        ));
    }
}

/// Validates a CronJob's spec and its job template.
pub(crate) fn validate_cron_job_spec(obj: &Value, errs: &mut Vec<FieldError>) {
    let spec = child(obj, "spec");
    let path = FieldPath::root("spec");
    let schedule = str_or_empty(spec, "schedule");
    if schedule.is_empty() {
        errs.push(FieldError::required(path.child("schedule"), ""));
    } else if let Err(detail) = check_cron_schedule(schedule) {
        errs.push(FieldError::invalid(
            path.child("schedule"),
            schedule,
            &detail,
        ));
    }
    match str_or_empty(spec, "concurrencyPolicy") {
        "Allow" | "Forbid" | "Replace" => {}
        "" => errs.push(FieldError::required(path.child("concurrencyPolicy"), "")),
        other => errs.push(FieldError::not_supported(
            path.child("concurrencyPolicy"),
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    for key in [
        "startingDeadlineSeconds",
        "successfulJobsHistoryLimit",
        "failedJobsHistoryLimit",
    ] {
        if let Some(value) = int_at(spec, key) {
            validate_nonnegative(value, &path.child(key), errs);
        }
    }
    let job_spec_path = path.child("jobTemplate").child("spec");
    validate_job_spec(
        child(child(spec, "jobTemplate"), "spec"),
        &job_spec_path,
        errs,
    );
}

/// The shape checks robfig/cron applies: five fields or a `@` descriptor.
fn check_cron_schedule(schedule: &str) -> Result<(), String> {
    let trimmed = schedule.trim();
    if let Some(descriptor) = trimmed.strip_prefix('@') {
        let known = [
            "yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly",
        ];
        if known.contains(&descriptor) || descriptor.starts_with("every ") {
            return Ok(());
        }
        return Err(format!("unrecognized descriptor: {trimmed}"));
    }
    // A leading TZ=/CRON_TZ= is rejected by the API in favour of spec.timeZone.
    if trimmed.starts_with("TZ=") || trimmed.starts_with("CRON_TZ=") {
        return Err("cannot use TZ or CRON_TZ in schedule, use timeZone field instead".to_owned());
    }
    let fields: Vec<&str> = trimmed.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: [{}]",
            fields.len(),
            fields.join(" ")
        ));
    }
    Ok(())
}
