//! PodSpec validation (kubernetes `pkg/apis/core/validation/validation.go`: ValidatePodSpec
//! and the container, port, probe, env, volume and resource checks it calls).
//!
//! Runs on defaulted objects, as kube-apiserver does: an empty enumeration (restartPolicy,
//! imagePullPolicy, ...) is `Required value` because defaulting would have filled it.

use std::collections::HashSet;

use serde_json::Value;

use super::access::{child, int_at, is_set, list_at, obj_at, str_at, str_or_empty};
use super::errors::FieldError;
use super::meta::validate_labels;
use super::names::{
    dns1123_label, dns1123_subdomain, env_var_name, inclusive_range_error, port_name, port_number,
};
use super::path::FieldPath;
use super::quantity::{QUANTITY_FORMAT_ERROR, parse_quantity};

/// Every volume source a Volume may name, in upstream's checking order.
const VOLUME_SOURCES: [&str; 30] = [
    "hostPath",
    "emptyDir",
    "configMap",
    "gitRepo",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "portworxVolume",
    "projected",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// Probe and lifecycle handler kinds, in upstream's checking order.
const HANDLERS: [&str; 5] = ["exec", "httpGet", "tcpSocket", "grpc", "sleep"];

const PROTOCOLS: [&str; 3] = ["SCTP", "TCP", "UDP"];

/// Validates a PodSpec at `path` (`spec` for Pods, `spec.template.spec` for workloads).
pub(crate) fn validate_pod_spec(spec: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    validate_pod_spec_with_claims(spec, path, &[], errs);
}

/// [`validate_pod_spec`] for a StatefulSet's template: volume mounts may also name its
/// `volumeClaimTemplates`, which become volumes of each pod.
pub(crate) fn validate_pod_spec_with_claims(
    spec: &Value,
    path: &FieldPath,
    claim_templates: &[&str],
    errs: &mut Vec<FieldError>,
) {
    let mut volumes = validate_volumes(list_at(spec, "volumes"), &path.child("volumes"), errs);
    volumes.extend(claim_templates.iter().map(|name| (*name).to_owned()));
    // Regular containers first; init containers are then checked against their names,
    // so a clash is reported on the init container, as upstream does.
    let mut container_names = HashSet::new();
    let containers = list_at(spec, "containers");
    if containers.is_empty() {
        errs.push(FieldError::required(path.child("containers"), ""));
    }
    for (i, container) in containers.iter().enumerate() {
        let item = path.child("containers").index(i);
        validate_container(
            container,
            &item,
            &volumes,
            &mut container_names,
            false,
            errs,
        );
    }
    for (i, container) in list_at(spec, "initContainers").iter().enumerate() {
        let item = path.child("initContainers").index(i);
        validate_container(container, &item, &volumes, &mut container_names, true, errs);
    }
    validate_enum(
        spec,
        "restartPolicy",
        &["Always", "OnFailure", "Never"],
        path,
        errs,
    );
    validate_enum(
        spec,
        "dnsPolicy",
        &["ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"],
        path,
        errs,
    );
    if let Some(deadline) = int_at(spec, "activeDeadlineSeconds")
        && !(1..=i64::from(i32::MAX)).contains(&deadline)
    {
        errs.push(FieldError::invalid(
            path.child("activeDeadlineSeconds"),
            deadline,
            &inclusive_range_error(1, i64::from(i32::MAX)),
        ));
    }
    if let Some(node_selector) = obj_at(spec, "nodeSelector") {
        validate_labels(node_selector, &path.child("nodeSelector"), errs);
    }
    for key in ["serviceAccountName", "priorityClassName"] {
        let name = str_or_empty(spec, key);
        if !name.is_empty() {
            for msg in dns1123_subdomain(name) {
                errs.push(FieldError::invalid(path.child(key), name, &msg));
            }
        }
    }
    for key in ["hostname", "subdomain"] {
        let name = str_or_empty(spec, key);
        if !name.is_empty() {
            for msg in dns1123_label(name) {
                errs.push(FieldError::invalid(path.child(key), name, &msg));
            }
        }
    }
    for (i, toleration) in list_at(spec, "tolerations").iter().enumerate() {
        validate_toleration(toleration, &path.child("tolerations").index(i), errs);
    }
}

/// `Required value` when empty, `Unsupported value` when not one of `supported`.
fn validate_enum(
    obj: &Value,
    key: &str,
    supported: &[&str],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let value = str_or_empty(obj, key);
    if value.is_empty() {
        errs.push(FieldError::required(path.child(key), ""));
    } else if !supported.contains(&value) {
        errs.push(FieldError::not_supported(path.child(key), value, supported));
    }
}

fn validate_toleration(toleration: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let operator = str_or_empty(toleration, "operator");
    let key = str_or_empty(toleration, "key");
    if !key.is_empty() {
        for msg in super::names::qualified_name(key) {
            errs.push(FieldError::invalid(path.child("key"), key, &msg));
        }
    } else if operator != "Exists" {
        errs.push(FieldError::invalid(
            path.child("operator"),
            operator,
            "operator must be Exists when `key` is empty, which means \"match all values and all keys\"",
        ));
    }
    match operator {
        "" | "Equal" => {}
        "Exists" => {
            let value = str_or_empty(toleration, "value");
            if !value.is_empty() {
                errs.push(FieldError::invalid(
                    path.child("operator"),
                    value,
                    "value must be empty when `operator` is 'Exists'",
                ));
            }
        }
        other => errs.push(FieldError::not_supported(
            path.child("operator"),
            other,
            &["Equal", "Exists"],
        )),
    }
    let effect = str_or_empty(toleration, "effect");
    if !effect.is_empty() && !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        errs.push(FieldError::not_supported(
            path.child("effect"),
            effect,
            &["NoSchedule", "PreferNoSchedule", "NoExecute"],
        ));
    }
}

fn validate_volumes(
    volumes: &[Value],
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) -> HashSet<String> {
    let mut names = HashSet::new();
    for (i, volume) in volumes.iter().enumerate() {
        let item = path.index(i);
        validate_volume_source(volume, &item, errs);
        let name = str_or_empty(volume, "name");
        if name.is_empty() {
            errs.push(FieldError::required(item.child("name"), ""));
        } else {
            for msg in dns1123_label(name) {
                errs.push(FieldError::invalid(item.child("name"), name, &msg));
            }
        }
        if !names.insert(name.to_owned()) {
            errs.push(FieldError::duplicate(item.child("name"), name));
        }
    }
    names
}

fn validate_volume_source(volume: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut found = 0;
    for source in VOLUME_SOURCES {
        if is_set(volume, source) {
            found += 1;
            if found > 1 {
                errs.push(FieldError::forbidden(
                    path.child(source),
                    "may not specify more than 1 volume type",
                ));
            }
        }
    }
    if found == 0 {
        errs.push(FieldError::required(path, "must specify a volume type"));
    }
    let required = [
        ("configMap", "name"),
        ("secret", "secretName"),
        ("hostPath", "path"),
        ("persistentVolumeClaim", "claimName"),
    ];
    for (source, key) in required {
        if let Some(source_value) = volume.get(source).filter(|v| v.is_object())
            && str_or_empty(source_value, key).is_empty()
        {
            errs.push(FieldError::required(path.child(source).child(key), ""));
        }
    }
    for source in ["configMap", "secret", "downwardAPI", "projected"] {
        if let Some(mode) = volume.get(source).and_then(|s| int_at(s, "defaultMode"))
            && !(0..=0o777).contains(&mode)
        {
            errs.push(FieldError::invalid(
                path.child(source).child("defaultMode"),
                mode,
                "must be a number between 0 and 0777 (octal), both inclusive",
            ));
        }
    }
}

fn validate_container(
    container: &Value,
    path: &FieldPath,
    volumes: &HashSet<String>,
    names: &mut HashSet<String>,
    is_init: bool,
    errs: &mut Vec<FieldError>,
) {
    let name = str_or_empty(container, "name");
    if name.is_empty() {
        errs.push(FieldError::required(path.child("name"), ""));
    } else {
        for msg in dns1123_label(name) {
            errs.push(FieldError::invalid(path.child("name"), name, &msg));
        }
        if !names.insert(name.to_owned()) {
            errs.push(FieldError::duplicate(path.child("name"), name));
        }
    }
    let image = str_or_empty(container, "image");
    if image.is_empty() {
        errs.push(FieldError::required(path.child("image"), ""));
    } else if image.trim() != image {
        errs.push(FieldError::invalid(
            path.child("image"),
            image,
            "must not have leading or trailing whitespace",
        ));
    }
    validate_enum(
        container,
        "imagePullPolicy",
        &["Always", "IfNotPresent", "Never"],
        path,
        errs,
    );
    validate_enum(
        container,
        "terminationMessagePolicy",
        &["File", "FallbackToLogsOnError"],
        path,
        errs,
    );
    validate_container_ports(list_at(container, "ports"), &path.child("ports"), errs);
    validate_env(list_at(container, "env"), &path.child("env"), errs);
    validate_volume_mounts(
        list_at(container, "volumeMounts"),
        volumes,
        &path.child("volumeMounts"),
        errs,
    );
    validate_resources(
        child(container, "resources"),
        &path.child("resources"),
        errs,
    );
    let sidecar = is_init && str_at(container, "restartPolicy") == Some("Always");
    for probe in ["livenessProbe", "readinessProbe", "startupProbe"] {
        let Some(probe_value) = container.get(probe).filter(|p| p.is_object()) else {
            continue;
        };
        let probe_path = path.child(probe);
        if is_init && !sidecar {
            errs.push(FieldError::forbidden(
                &probe_path,
                "may not be set for init containers without restartPolicy=Always",
            ));
            continue;
        }
        validate_probe(probe_value, &probe_path, errs);
        if probe != "readinessProbe"
            && let Some(threshold) = int_at(probe_value, "successThreshold")
            && threshold != 1
        {
            errs.push(FieldError::invalid(
                probe_path.child("successThreshold"),
                threshold,
                "must be 1",
            ));
        }
    }
    if let Some(lifecycle) = container.get("lifecycle").filter(|l| l.is_object()) {
        for hook in ["postStart", "preStop"] {
            if let Some(handler) = lifecycle.get(hook).filter(|h| h.is_object()) {
                validate_handler(handler, &path.child("lifecycle").child(hook), errs);
            }
        }
    }
}

fn validate_container_ports(ports: &[Value], path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let item = path.index(i);
        let name = str_or_empty(port, "name");
        if !name.is_empty() {
            let msgs = port_name(name);
            if !msgs.is_empty() {
                for msg in msgs {
                    errs.push(FieldError::invalid(item.child("name"), name, &msg));
                }
            } else if !names.insert(name.to_owned()) {
                errs.push(FieldError::duplicate(item.child("name"), name));
            }
        }
        match int_at(port, "containerPort").unwrap_or(0) {
            0 => errs.push(FieldError::required(item.child("containerPort"), "")),
            number => {
                for msg in port_number(number) {
                    errs.push(FieldError::invalid(
                        item.child("containerPort"),
                        number,
                        &msg,
                    ));
                }
            }
        }
        if let Some(host_port) = int_at(port, "hostPort").filter(|p| *p != 0) {
            for msg in port_number(host_port) {
                errs.push(FieldError::invalid(item.child("hostPort"), host_port, &msg));
            }
        }
        validate_enum(port, "protocol", &PROTOCOLS, &item, errs);
    }
}

fn validate_env(env: &[Value], path: &FieldPath, errs: &mut Vec<FieldError>) {
    for (i, var) in env.iter().enumerate() {
        let item = path.index(i);
        let name = str_or_empty(var, "name");
        if name.is_empty() {
            errs.push(FieldError::required(item.child("name"), ""));
        } else {
            for msg in env_var_name(name) {
                errs.push(FieldError::invalid(item.child("name"), name, &msg));
            }
        }
        let Some(value_from) = var.get("valueFrom").filter(|v| v.is_object()) else {
            continue;
        };
        let from_path = item.child("valueFrom");
        let sources = [
            "fieldRef",
            "resourceFieldRef",
            "configMapKeyRef",
            "secretKeyRef",
        ];
        let count = sources.iter().filter(|s| is_set(value_from, s)).count();
        if !str_or_empty(var, "value").is_empty() && count != 0 {
            errs.push(FieldError::invalid(
                &from_path,
                "",
                "may not be specified when `value` is not empty",
            ));
        }
        match count {
            0 => errs.push(FieldError::invalid(
                &from_path,
                "",
                "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef` or `secretKeyRef`",
            )),
            1 => {}
            _ => errs.push(FieldError::invalid(&from_path, "", "may not have more than one field specified at a time")),
        }
        if let Some(field_ref) = value_from.get("fieldRef").filter(|f| f.is_object())
            && str_or_empty(field_ref, "fieldPath").is_empty()
        {
            errs.push(FieldError::required(
                from_path.child("fieldRef").child("fieldPath"),
                "",
            ));
        }
        for key_ref in ["configMapKeyRef", "secretKeyRef"] {
            if let Some(reference) = value_from.get(key_ref).filter(|r| r.is_object()) {
                if str_or_empty(reference, "name").is_empty() {
                    errs.push(FieldError::required(
                        from_path.child(key_ref).child("name"),
                        "",
                    ));
                }
                if str_or_empty(reference, "key").is_empty() {
                    errs.push(FieldError::required(
                        from_path.child(key_ref).child("key"),
                        "",
                    ));
                }
            }
        }
    }
}

fn validate_volume_mounts(
    mounts: &[Value],
    volumes: &HashSet<String>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    let mut mount_paths = HashSet::new();
    for (i, mount) in mounts.iter().enumerate() {
        let item = path.index(i);
        let name = str_or_empty(mount, "name");
        if name.is_empty() {
            errs.push(FieldError::required(item.child("name"), ""));
        }
        if !volumes.contains(name) {
            errs.push(FieldError::not_found(item.child("name"), name));
        }
        let mount_path = str_or_empty(mount, "mountPath");
        if mount_path.is_empty() {
            errs.push(FieldError::required(item.child("mountPath"), ""));
        }
        if !mount_paths.insert(mount_path.to_owned()) {
            errs.push(FieldError::invalid(
                item.child("mountPath"),
                mount_path,
                "must be unique",
            ));
        }
    }
}

/// Native resources (no domain, or a `kubernetes.io/` one) other than huge pages may be
/// overcommitted; extended resources' requests must equal their limits.
fn overcommit_allowed(resource: &str) -> bool {
    let native = !resource.contains('/') || resource.contains("kubernetes.io/");
    native && !resource.starts_with("hugepages-")
}

fn validate_resources(resources: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut parsed = |section: &str| {
        let mut amounts = Vec::new();
        for (resource, amount) in obj_at(resources, section).into_iter().flatten() {
            let item = path.child(section).key(resource);
            let text = amount
                .as_str()
                .map_or_else(|| amount.to_string(), str::to_owned);
            match parse_quantity(&text) {
                None => errs.push(FieldError::invalid(
                    &item,
                    text.as_str(),
                    QUANTITY_FORMAT_ERROR,
                )),
                Some(q) if q.is_negative() => {
                    errs.push(FieldError::invalid(
                        &item,
                        text.as_str(),
                        "must be greater than or equal to 0",
                    ));
                }
                Some(q) => amounts.push((resource.clone(), text, q)),
            }
        }
        amounts
    };
    let limits = parsed("limits");
    let requests = parsed("requests");
    for (resource, text, request) in &requests {
        let Some((_, limit_text, limit)) = limits.iter().find(|(name, _, _)| name == resource)
        else {
            continue;
        };
        let item = path.child("requests").key(resource);
        if request != limit && !overcommit_allowed(resource) {
            errs.push(FieldError::invalid(
                &item,
                text.as_str(),
                &format!("must be equal to {resource} limit of {limit_text}"),
            ));
        } else if request > limit {
            errs.push(FieldError::invalid(
                &item,
                text.as_str(),
                &format!("must be less than or equal to {resource} limit of {limit_text}"),
            ));
        }
    }
}

fn validate_probe(probe: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    validate_handler(probe, path, errs);
    for key in [
        "initialDelaySeconds",
        "timeoutSeconds",
        "periodSeconds",
        "successThreshold",
        "failureThreshold",
    ] {
        if let Some(value) = int_at(probe, key) {
            super::meta::validate_nonnegative(value, &path.child(key), errs);
        }
    }
    if let Some(grace) = int_at(probe, "terminationGracePeriodSeconds")
        && grace <= 0
    {
        errs.push(FieldError::invalid(
            path.child("terminationGracePeriodSeconds"),
            grace,
            "must be greater than 0",
        ));
    }
}

/// Exactly one handler, each well-formed.
fn validate_handler(handler: &Value, path: &FieldPath, errs: &mut Vec<FieldError>) {
    let mut found = 0;
    for kind in HANDLERS {
        let Some(action) = handler.get(kind).filter(|a| !a.is_null()) else {
            continue;
        };
        found += 1;
        if found > 1 {
            errs.push(FieldError::forbidden(
                path.child(kind),
                "may not specify more than 1 handler type",
            ));
            continue;
        }
        let action_path = path.child(kind);
        match kind {
            "exec" if list_at(action, "command").is_empty() => {
                errs.push(FieldError::required(action_path.child("command"), ""));
            }
            "httpGet" => {
                if str_or_empty(action, "path").is_empty() {
                    errs.push(FieldError::required(action_path.child("path"), ""));
                }
                validate_port_num_or_name(action.get("port"), &action_path.child("port"), errs);
                let scheme = str_or_empty(action, "scheme");
                if !["HTTP", "HTTPS"].contains(&scheme) {
                    errs.push(FieldError::not_supported(
                        action_path.child("scheme"),
                        scheme,
                        &["HTTP", "HTTPS"],
                    ));
                }
            }
            "tcpSocket" => {
                validate_port_num_or_name(action.get("port"), &action_path.child("port"), errs)
            }
            "grpc" => {
                let port = int_at(action, "port").unwrap_or(0);
                for msg in port_number(port) {
                    errs.push(FieldError::invalid(action_path.child("port"), port, &msg));
                }
            }
            _ => {}
        }
    }
    if found == 0 {
        errs.push(FieldError::required(path, "must specify a handler type"));
    }
}

/// An IntOrString port: a number in range or a valid port name.
pub(crate) fn validate_port_num_or_name(
    port: Option<&Value>,
    path: &FieldPath,
    errs: &mut Vec<FieldError>,
) {
    match port {
        Some(Value::Number(n)) => {
            let number = n.as_i64().unwrap_or(0);
            for msg in port_number(number) {
                errs.push(FieldError::invalid(path, number, &msg));
            }
        }
        Some(Value::String(name)) => {
            for msg in port_name(name) {
                errs.push(FieldError::invalid(path, name, &msg));
            }
        }
        // An absent port is the IntOrString zero value: integer 0.
        _ => {
            for msg in port_number(0) {
                errs.push(FieldError::invalid(path, 0, &msg));
            }
        }
    }
}
