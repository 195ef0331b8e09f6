//! A pod spec as the runtime's sandbox and container configs.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use tugboat_runtime::cri::v1::{
    ContainerConfig, ContainerMetadata, ImageSpec, Int64Value, KeyValue, LinuxContainerConfig,
    LinuxContainerResources, LinuxContainerSecurityContext, Mount, PodSandboxConfig,
    PodSandboxMetadata, PortMapping, Protocol,
};

use crate::labels;
use crate::resources::{self, CPU_PERIOD_US};

/// The pod's name, namespace and UID (empty when unset).
pub fn pod_identity(pod: &Pod) -> (&str, &str, &str) {
    (
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or_default(),
        pod.metadata.uid.as_deref().unwrap_or_default(),
    )
}

/// The sandbox config of `pod` (attempt `attempt`).
pub fn sandbox_config(pod: &Pod, attempt: u32) -> PodSandboxConfig {
    let (namespace, name, uid) = pod_identity(pod);
    let spec = pod.spec.as_ref();
    let port_mappings = spec
        .into_iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.ports.iter().flatten())
        .filter(|p| p.host_port.is_some_and(|h| h > 0))
        .map(|p| PortMapping {
            protocol: match p.protocol.as_deref() {
                Some("UDP") => Protocol::Udp as i32,
                Some("SCTP") => Protocol::Sctp as i32,
                _ => Protocol::Tcp as i32,
            },
            container_port: p.container_port,
            host_port: p.host_port.unwrap_or_default(),
            host_ip: p.host_ip.clone().unwrap_or_default(),
        })
        .collect();
    let hostname = spec
        .and_then(|s| s.hostname.clone())
        .unwrap_or_else(|| name.to_string());
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.to_string(),
            uid: uid.to_string(),
            namespace: namespace.to_string(),
            attempt,
        }),
        hostname,
        port_mappings,
        labels: labels::for_pod(namespace, name, uid).into_iter().collect(),
        // The simulated runtime reads its knobs from pod annotations.
        annotations: pod
            .metadata
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        ..Default::default()
    }
}

/// Everything resolved for one container before it is created.
#[derive(Debug, Clone, Default)]
pub struct ContainerInputs {
    /// Its environment.
    pub env: Vec<(String, String)>,
    /// Its mounts.
    pub mounts: Vec<Mount>,
    /// The CRI attempt (per sandbox).
    pub attempt: u32,
    /// Restarts so far (kept across sandboxes and agent restarts).
    pub restart_count: i32,
}

/// The container config of `container` in `pod`.
pub fn container_config(
    pod: &Pod,
    container: &Container,
    inputs: &ContainerInputs,
) -> ContainerConfig {
    let (namespace, name, uid) = pod_identity(pod);
    let vars: HashMap<String, String> = inputs.env.iter().cloned().collect();
    // $(VAR) in command and args reads the container's environment.
    let expand = |items: &Option<Vec<String>>| -> Vec<String> {
        items
            .iter()
            .flatten()
            .map(|s| crate::env::expand(s, &vars))
            .collect()
    };
    let limits = resources::limits(container);
    let pod_security = pod.spec.as_ref().and_then(|s| s.security_context.as_ref());
    let security = container.security_context.as_ref();
    let run_as_user = security
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_security.and_then(|s| s.run_as_user));
    let run_as_group = security
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_security.and_then(|s| s.run_as_group));
    let grace = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);

    let mut container_labels = labels::for_pod(namespace, name, uid);
    container_labels.insert(labels::CONTAINER_NAME.to_string(), container.name.clone());
    let mut annotations: HashMap<String, String> = pod
        .metadata
        .annotations
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    annotations.insert(
        labels::RESTART_COUNT.to_string(),
        inputs.restart_count.to_string(),
    );
    annotations.insert(labels::GRACE_SECONDS.to_string(), grace.to_string());

    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: container.name.clone(),
            attempt: inputs.attempt,
        }),
        image: Some(ImageSpec {
            image: container.image.clone().unwrap_or_default(),
            ..Default::default()
        }),
        command: expand(&container.command),
        args: expand(&container.args),
        working_dir: container.working_dir.clone().unwrap_or_default(),
        envs: inputs
            .env
            .iter()
            .map(|(key, value)| KeyValue {
                key: key.clone(),
                value: value.clone(),
            })
            .collect(),
        mounts: inputs.mounts.clone(),
        labels: container_labels.into_iter().collect(),
        annotations,
        stdin: container.stdin == Some(true),
        stdin_once: container.stdin_once == Some(true),
        tty: container.tty == Some(true),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                cpu_period: if limits.cpu_quota_us > 0 {
                    CPU_PERIOD_US
                } else {
                    0
                },
                cpu_quota: limits.cpu_quota_us,
                cpu_shares: limits.cpu_shares,
                memory_limit_in_bytes: limits.memory_bytes,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                run_as_user: run_as_user.map(|value| Int64Value { value }),
                run_as_group: run_as_group.map(|value| Int64Value { value }),
                readonly_rootfs: security.and_then(|s| s.read_only_root_filesystem) == Some(true),
                privileged: security.and_then(|s| s.privileged) == Some(true),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{
        ContainerPort, PodSpec, ResourceRequirements, SecurityContext,
    };
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn container_config_carries_the_spec() {
        let container = Container {
            name: "web".into(),
            image: Some("busybox".into()),
            command: Some(vec!["httpd".into()]),
            args: Some(vec!["-p".into(), "$(PORT)".into()]),
            working_dir: Some("/www".into()),
            ports: Some(vec![ContainerPort {
                container_port: 8080,
                host_port: Some(18080),
                ..Default::default()
            }]),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([
                    ("cpu".to_string(), Quantity("500m".into())),
                    ("memory".to_string(), Quantity("32Mi".into())),
                ])),
                ..Default::default()
            }),
            security_context: Some(SecurityContext {
                run_as_user: Some(1000),
                read_only_root_filesystem: Some(true),
                ..Default::default()
            }),
            ..Default::default()
        };
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("u".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers: vec![container.clone()],
                ..Default::default()
            }),
            ..Default::default()
        };
        let inputs = ContainerInputs {
            env: vec![("PORT".into(), "8080".into())],
            attempt: 2,
            restart_count: 5,
            ..Default::default()
        };
        let c = container_config(&pod, &container, &inputs);
        assert_eq!(c.args, ["-p", "8080"]);
        assert_eq!(c.working_dir, "/www");
        assert_eq!(c.metadata.as_ref().map(|m| m.attempt), Some(2));
        assert_eq!(
            c.labels.get(labels::CONTAINER_NAME).map(String::as_str),
            Some("web")
        );
        assert_eq!(
            c.annotations.get(labels::RESTART_COUNT).map(String::as_str),
            Some("5")
        );
        let linux = c.linux.expect("linux");
        let r = linux.resources.expect("resources");
        assert_eq!(
            (r.cpu_quota, r.cpu_period, r.cpu_shares),
            (50_000, 100_000, 512)
        );
        assert_eq!(r.memory_limit_in_bytes, 32 << 20);
        let sc = linux.security_context.expect("security");
        assert_eq!(sc.run_as_user.map(|u| u.value), Some(1000));
        assert!(sc.readonly_rootfs);

        let sb = sandbox_config(&pod, 0);
        assert_eq!(sb.port_mappings.len(), 1);
        assert_eq!(sb.port_mappings[0].host_port, 18080);
        assert_eq!(
            sb.labels.get(labels::POD_UID).map(String::as_str),
            Some("u")
        );
    }
}
