//! A container's environment: `env` (values, `$(VAR)` references, `valueFrom` fieldRef /
//! resourceFieldRef / configMapKeyRef / secretKeyRef) and `envFrom`, as the kubelet builds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::resources;

/// The ConfigMaps and Secrets of a pod's namespace that its spec refers to, fetched once per
/// sync. A name that is absent here does not exist.
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// ConfigMap name → key → value (`data` and UTF-8 `binaryData`).
    pub config_maps: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// Secret name → key → value.
    pub secrets: BTreeMap<String, BTreeMap<String, Vec<u8>>>,
    /// PersistentVolumeClaim name → what backs it on this node.
    pub claims: BTreeMap<String, ClaimSource>,
    /// Service-account tokens of projected volumes, by (audience, expirationSeconds).
    pub service_account_tokens: BTreeMap<TokenKey, Vec<u8>>,
}

/// Which token a projected `serviceAccountToken` source asks for: its audience (empty: the
/// API server's) and lifetime in seconds.
pub type TokenKey = (String, i64);

/// A projected volume source's lifetime when it names none (as upstream).
pub const DEFAULT_TOKEN_SECONDS: i64 = 3600;

/// The token keys of every projected `serviceAccountToken` source of `pod`.
pub fn token_keys(pod: &k8s_openapi::api::core::v1::Pod) -> BTreeSet<TokenKey> {
    pod.spec
        .iter()
        .flat_map(|s| s.volumes.iter().flatten())
        .filter_map(|v| v.projected.as_ref())
        .flat_map(|p| p.sources.iter().flatten())
        .filter_map(|source| source.service_account_token.as_ref())
        .map(|token| {
            (
                token.audience.clone().unwrap_or_default(),
                token.expiration_seconds.unwrap_or(DEFAULT_TOKEN_SECONDS),
            )
        })
        .collect()
}

/// Where a pod's PersistentVolumeClaim stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimSource {
    /// Bound to a volume with this local directory.
    Directory(std::path::PathBuf),
    /// Not bound (yet), or bound to a volume that is not there: the pod waits, with this reason.
    Waiting(String),
    /// Bound to a volume this node cannot mount (not hostPath or local).
    Unsupported(String),
}

/// Which ConfigMaps and Secrets a pod refers to (env, envFrom, volumes).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct References {
    /// ConfigMap names.
    pub config_maps: BTreeSet<String>,
    /// Secret names.
    pub secrets: BTreeSet<String>,
}

/// Facts of the running pod that fieldRefs read and the spec does not carry.
#[derive(Debug, Clone, Default)]
pub struct PodFacts {
    /// The sandbox's IP.
    pub pod_ip: Option<String>,
    /// The node's IP.
    pub host_ip: Option<String>,
}

/// Why an environment could not be built (the kubelet's `CreateContainerConfigError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// A ConfigMap or Secret, or one of its keys, is missing and not optional.
    #[error("{0}")]
    Missing(String),
    /// A fieldRef or resourceFieldRef names something unsupported.
    #[error("unsupported field reference {0}")]
    BadField(String),
}

/// Every ConfigMap and Secret `pod` refers to.
pub fn references(pod: &Pod) -> References {
    let mut refs = References::default();
    let Some(spec) = &pod.spec else {
        return refs;
    };
    let containers = spec
        .init_containers
        .iter()
        .flatten()
        .chain(spec.containers.iter());
    for c in containers {
        for var in c.env.iter().flatten() {
            let Some(from) = &var.value_from else {
                continue;
            };
            if let Some(r) = &from.config_map_key_ref {
                refs.config_maps.insert(r.name.clone());
            }
            if let Some(r) = &from.secret_key_ref {
                refs.secrets.insert(r.name.clone());
            }
        }
        for source in c.env_from.iter().flatten() {
            if let Some(r) = &source.config_map_ref {
                refs.config_maps.insert(r.name.clone());
            }
            if let Some(r) = &source.secret_ref {
                refs.secrets.insert(r.name.clone());
            }
        }
    }
    for v in spec.volumes.iter().flatten() {
        if let Some(cm) = &v.config_map {
            refs.config_maps.insert(cm.name.clone());
        }
        if let Some(s) = v.secret.as_ref().and_then(|s| s.secret_name.clone()) {
            refs.secrets.insert(s);
        }
        for p in v.projected.iter().flat_map(|p| p.sources.iter().flatten()) {
            if let Some(cm) = &p.config_map {
                refs.config_maps.insert(cm.name.clone());
            }
            if let Some(s) = &p.secret {
                refs.secrets.insert(s.name.clone());
            }
        }
    }
    refs
}

/// The value of a downward-API field path of `pod`.
pub fn field_value(pod: &Pod, facts: &PodFacts, path: &str) -> Result<String, EnvError> {
    let meta = &pod.metadata;
    let spec = pod.spec.as_ref();
    if let Some(key) = map_key(path, "metadata.labels") {
        return Ok(meta
            .labels
            .as_ref()
            .and_then(|l| l.get(key).cloned())
            .unwrap_or_default());
    }
    if let Some(key) = map_key(path, "metadata.annotations") {
        return Ok(meta
            .annotations
            .as_ref()
            .and_then(|l| l.get(key).cloned())
            .unwrap_or_default());
    }
    let value = match path {
        "metadata.name" => meta.name.clone(),
        "metadata.namespace" => meta.namespace.clone(),
        "metadata.uid" => meta.uid.clone(),
        "metadata.labels" => Some(format_map(meta.labels.as_ref())),
        "metadata.annotations" => Some(format_map(meta.annotations.as_ref())),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()),
        "spec.serviceAccountName" => spec.and_then(|s| s.service_account_name.clone()),
        "status.podIP" | "status.podIPs" => facts.pod_ip.clone(),
        "status.hostIP" | "status.hostIPs" => facts.host_ip.clone(),
        other => return Err(EnvError::BadField(other.to_string())),
    };
    Ok(value.unwrap_or_default())
}

/// `metadata.labels['app']` → `app`.
fn map_key<'a>(path: &'a str, field: &str) -> Option<&'a str> {
    path.strip_prefix(field)?
        .strip_prefix("['")?
        .strip_suffix("']")
}

/// Labels or annotations as the downward API writes them: `key="value"` lines, sorted.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v:?}\n"))
        .collect()
}

/// The environment of `container` in `pod`, in order, later names overriding earlier ones.
pub fn resolve(
    pod: &Pod,
    container: &Container,
    sources: &Sources,
    facts: &PodFacts,
) -> Result<Vec<(String, String)>, EnvError> {
    let mut order: Vec<String> = Vec::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let mut set = |name: String, value: String| {
        if values.insert(name.clone(), value).is_none() {
            order.push(name);
        }
    };

    for source in container.env_from.iter().flatten() {
        let prefix = source.prefix.clone().unwrap_or_default();
        let (entries, optional, what) = if let Some(r) = &source.config_map_ref {
            (
                sources.config_maps.get(&r.name),
                r.optional == Some(true),
                format!("configmap \"{}\"", r.name),
            )
        } else if let Some(r) = &source.secret_ref {
            (
                sources.secrets.get(&r.name),
                r.optional == Some(true),
                format!("secret \"{}\"", r.name),
            )
        } else {
            continue;
        };
        match entries {
            Some(entries) => {
                for (k, v) in entries {
                    set(
                        format!("{prefix}{k}"),
                        String::from_utf8_lossy(v).into_owned(),
                    );
                }
            }
            None if optional => {}
            None => return Err(EnvError::Missing(format!("{what} not found"))),
        }
    }

    for var in container.env.iter().flatten() {
        let value = match &var.value_from {
            None => Some(var.value.clone().unwrap_or_default()),
            Some(from) => value_from(pod, container, from, sources, facts)?,
        };
        if let Some(value) = value {
            set(var.name.clone(), value);
        }
    }

    // Expand $(VAR) in plain values against the variables defined so far, in order.
    let mut out: Vec<(String, String)> = Vec::with_capacity(order.len());
    let mut seen: HashMap<String, String> = HashMap::new();
    let plain: BTreeSet<&str> = container
        .env
        .iter()
        .flatten()
        .filter(|v| v.value_from.is_none())
        .map(|v| v.name.as_str())
        .collect();
    for name in order {
        let raw = values.remove(&name).unwrap_or_default();
        let value = if plain.contains(name.as_str()) {
            expand(&raw, &seen)
        } else {
            raw
        };
        seen.insert(name.clone(), value.clone());
        out.push((name, value));
    }
    Ok(out)
}

/// One `valueFrom`; `None` when an optional reference is absent (the variable is skipped).
fn value_from(
    pod: &Pod,
    container: &Container,
    from: &k8s_openapi::api::core::v1::EnvVarSource,
    sources: &Sources,
    facts: &PodFacts,
) -> Result<Option<String>, EnvError> {
    if let Some(f) = &from.field_ref {
        return field_value(pod, facts, &f.field_path).map(Some);
    }
    if let Some(r) = &from.resource_field_ref {
        return resources::resource_field(container, &r.resource, r.divisor.as_ref())
            .map(Some)
            .ok_or_else(|| EnvError::BadField(r.resource.clone()));
    }
    let (map, name, key, optional, kind) = if let Some(r) = &from.config_map_key_ref {
        (
            sources.config_maps.get(&r.name),
            &r.name,
            &r.key,
            r.optional,
            "configmap",
        )
    } else if let Some(r) = &from.secret_key_ref {
        (
            sources.secrets.get(&r.name),
            &r.name,
            &r.key,
            r.optional,
            "secret",
        )
    } else {
        return Ok(None);
    };
    match map.map(|m| m.get(key)) {
        Some(Some(v)) => Ok(Some(String::from_utf8_lossy(v).into_owned())),
        _ if optional == Some(true) => Ok(None),
        None => Err(EnvError::Missing(format!("{kind} \"{name}\" not found"))),
        Some(None) => Err(EnvError::Missing(format!(
            "couldn't find key {key} in {kind} \"{name}\""
        ))),
    }
}

/// Expands `$(NAME)` from `vars`; `$$` is a literal `$`; unknown references stay as written.
pub fn expand(input: &str, vars: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(')
            && let Some(end) = inner.find(')')
        {
            let name = &inner[..end];
            match vars.get(name) {
                Some(v) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &inner[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, PodSpec, SecretKeySelector,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("prod".into()),
                uid: Some("u-1".into()),
                labels: Some([("app".to_string(), "web".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn from(name: &str, source: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(source),
        }
    }

    fn sources() -> Sources {
        let mut s = Sources::default();
        s.config_maps.insert(
            "cfg".into(),
            [
                ("MODE".to_string(), b"fast".to_vec()),
                ("LEVEL".to_string(), b"3".to_vec()),
            ]
            .into(),
        );
        s.secrets.insert(
            "creds".into(),
            [("pw".to_string(), b"hunter2".to_vec())].into(),
        );
        s
    }

    #[test]
    fn values_refs_and_env_from_resolve_in_order() {
        let c = Container {
            name: "app".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "cfg".into(),
                    optional: None,
                }),
                prefix: Some("CFG_".into()),
                secret_ref: None,
            }]),
            env: Some(vec![
                var("GREETING", "hello"),
                from(
                    "POD",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.name".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "APP",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "metadata.labels['app']".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "IP",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "status.podIP".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "PW",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "creds".into(),
                            key: "pw".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                var("MSG", "$(GREETING) from $(POD), $$(POD) $(NOPE)"),
                var("CFG_MODE", "overridden"),
            ]),
            ..Default::default()
        };
        let facts = PodFacts {
            pod_ip: Some("10.0.0.7".into()),
            host_ip: None,
        };
        let env = resolve(&pod(), &c, &sources(), &facts).expect("resolves");
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "CFG_LEVEL",
                "CFG_MODE",
                "GREETING",
                "POD",
                "APP",
                "IP",
                "PW",
                "MSG"
            ]
        );
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_MODE"), Some("overridden"));
        assert_eq!(get("POD"), Some("web"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.0.0.7"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("MSG"), Some("hello from web, $(POD) $(NOPE)"));
    }

    #[test]
    fn missing_references_fail_unless_optional() {
        let key_ref = |optional| EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: "cfg".into(),
                key: "ABSENT".into(),
                optional,
            }),
            ..Default::default()
        };
        let c = |optional| Container {
            name: "app".into(),
            env: Some(vec![from("X", key_ref(optional))]),
            ..Default::default()
        };
        let err =
            resolve(&pod(), &c(None), &sources(), &PodFacts::default()).expect_err("required key");
        assert_eq!(
            err.to_string(),
            "couldn't find key ABSENT in configmap \"cfg\""
        );
        let env =
            resolve(&pod(), &c(Some(true)), &sources(), &PodFacts::default()).expect("optional");
        assert!(env.is_empty());
    }

    #[test]
    fn references_cover_env_env_from_and_volumes() {
        let mut p = pod();
        let spec = p.spec.as_mut().expect("spec");
        spec.containers = vec![Container {
            name: "a".into(),
            env: Some(vec![from(
                "PW",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "creds".into(),
                        key: "pw".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        }];
        spec.volumes = Some(vec![k8s_openapi::api::core::v1::Volume {
            name: "v".into(),
            config_map: Some(k8s_openapi::api::core::v1::ConfigMapVolumeSource {
                name: "files".into(),
                ..Default::default()
            }),
            ..Default::default()
        }]);
        let refs = references(&p);
        assert_eq!(refs.secrets, BTreeSet::from(["creds".to_string()]));
        assert_eq!(refs.config_maps, BTreeSet::from(["files".to_string()]));
    }
}
