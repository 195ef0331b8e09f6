//! Pod volumes on the node: emptyDir, configMap, secret, downwardAPI and projected files
//! (with service-account tokens the agent requested) under
//! `<data_dir>/pods/<uid>/volumes/<name>`, hostPath as given, a persistentVolumeClaim as its
//! bound volume's directory; and the mounts of a container.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod, Volume};
use tugboat_runtime::cri::v1::Mount;

use crate::env::{self, ClaimSource, PodFacts, Sources};
use crate::error::{Error, Result};

/// One file of a volume: relative path, contents, mode.
type VolumeFile = (String, Vec<u8>, Option<i32>);

/// Where a pod's files live.
pub fn pod_dir(data_dir: &Path, uid: &str) -> PathBuf {
    data_dir.join("pods").join(uid)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Volume {
        path: path.to_path_buf(),
        source,
    }
}

/// A relative path without `..`: keys and item paths come from users.
fn safe_relative(path: &str) -> Result<&Path> {
    let p = Path::new(path);
    let ok = !path.is_empty()
        && p.components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if ok {
        Ok(p)
    } else {
        Err(Error::Spec(format!("invalid volume file path {path:?}")))
    }
}

/// Writes `files` into `dir`, replacing what was there, with `mode`.
fn write_files(dir: &Path, files: &[VolumeFile], mode: i32) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (rel, data, item_mode) in files {
        let path = dir.join(safe_relative(rel)?);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        // Write aside and rename: a container reading a refreshed file (a token, a changed
        // ConfigMap) sees the old contents or the new, never half of one.
        let mut aside = path.clone().into_os_string();
        aside.push(".tmp");
        let aside = PathBuf::from(aside);
        std::fs::write(&aside, data).map_err(io(&aside))?;
        let bits = u32::try_from(item_mode.unwrap_or(mode)).unwrap_or(0o644) & 0o777;
        std::fs::set_permissions(&aside, std::fs::Permissions::from_mode(bits))
            .map_err(io(&aside))?;
        std::fs::rename(&aside, &path).map_err(io(&path))?;
    }
    Ok(())
}

/// The files of a ConfigMap or Secret: every key, or only `items`.
fn key_files(
    data: Option<&std::collections::BTreeMap<String, Vec<u8>>>,
    items: Option<&Vec<KeyToPath>>,
    optional: bool,
    what: &str,
) -> Result<Vec<VolumeFile>> {
    let Some(data) = data else {
        return if optional {
            Ok(Vec::new())
        } else {
            Err(Error::Spec(format!("{what} not found")))
        };
    };
    match items {
        None => Ok(data
            .iter()
            .map(|(k, v)| (k.clone(), v.clone(), None))
            .collect()),
        Some(items) => items
            .iter()
            .filter_map(|item| match data.get(&item.key) {
                Some(v) => Some(Ok((item.path.clone(), v.clone(), item.mode))),
                None if optional => None,
                None => Some(Err(Error::Spec(format!(
                    "couldn't find key {} in {what}",
                    item.key
                )))),
            })
            .collect(),
    }
}

fn downward_files(
    pod: &Pod,
    facts: &PodFacts,
    items: &[k8s_openapi::api::core::v1::DownwardAPIVolumeFile],
) -> Result<Vec<VolumeFile>> {
    let mut files = Vec::new();
    for item in items {
        let Some(field) = &item.field_ref else {
            continue;
        };
        let value = env::field_value(pod, facts, &field.field_path)
            .map_err(|e| Error::Spec(e.to_string()))?;
        files.push((item.path.clone(), value.into_bytes(), item.mode));
    }
    Ok(files)
}

/// Prepares every volume of `pod`; returns each volume's host path.
pub fn prepare(
    pod: &Pod,
    sources: &Sources,
    facts: &PodFacts,
    data_dir: &Path,
) -> Result<HashMap<String, PathBuf>> {
    let uid = pod.metadata.uid.as_deref().unwrap_or_default();
    let base = pod_dir(data_dir, uid).join("volumes");
    let mut paths = HashMap::new();
    for volume in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let path = prepare_one(pod, volume, sources, facts, &base)?;
        paths.insert(volume.name.clone(), path);
    }
    Ok(paths)
}

fn prepare_one(
    pod: &Pod,
    v: &Volume,
    sources: &Sources,
    facts: &PodFacts,
    base: &Path,
) -> Result<PathBuf> {
    let dir = base.join(safe_relative(&v.name)?);
    if let Some(host) = &v.host_path {
        let path = PathBuf::from(&host.path);
        if matches!(host.type_.as_deref(), Some("DirectoryOrCreate")) {
            std::fs::create_dir_all(&path).map_err(io(&path))?;
        }
        return Ok(path);
    }
    if let Some(claim) = &v.persistent_volume_claim {
        return match sources.claims.get(&claim.claim_name) {
            Some(ClaimSource::Directory(path)) => {
                // The local-path provisioner leaves the directory to the node that uses it.
                std::fs::create_dir_all(path).map_err(io(path))?;
                Ok(path.clone())
            }
            Some(ClaimSource::Waiting(reason)) => Err(Error::VolumeNotReady(reason.clone())),
            Some(ClaimSource::Unsupported(reason)) => Err(Error::Spec(reason.clone())),
            None => Err(Error::VolumeNotReady(format!(
                "persistentvolumeclaim \"{}\" not found",
                claim.claim_name
            ))),
        };
    }
    if let Some(cm) = &v.config_map {
        let files = key_files(
            sources.config_maps.get(&cm.name),
            cm.items.as_ref(),
            cm.optional == Some(true),
            &format!("configmap \"{}\"", cm.name),
        )?;
        write_files(&dir, &files, cm.default_mode.unwrap_or(0o644))?;
    } else if let Some(secret) = &v.secret {
        let name = secret.secret_name.clone().unwrap_or_default();
        let files = key_files(
            sources.secrets.get(&name),
            secret.items.as_ref(),
            secret.optional == Some(true),
            &format!("secret \"{name}\""),
        )?;
        write_files(&dir, &files, secret.default_mode.unwrap_or(0o644))?;
    } else if let Some(downward) = &v.downward_api {
        let files = downward_files(pod, facts, downward.items.as_deref().unwrap_or_default())?;
        write_files(&dir, &files, downward.default_mode.unwrap_or(0o644))?;
    } else if let Some(projected) = &v.projected {
        let mut files = Vec::new();
        for source in projected.sources.iter().flatten() {
            if let Some(cm) = &source.config_map {
                files.extend(key_files(
                    sources.config_maps.get(&cm.name),
                    cm.items.as_ref(),
                    cm.optional == Some(true),
                    &format!("configmap \"{}\"", cm.name),
                )?);
            }
            if let Some(s) = &source.secret {
                files.extend(key_files(
                    sources.secrets.get(&s.name),
                    s.items.as_ref(),
                    s.optional == Some(true),
                    &format!("secret \"{}\"", s.name),
                )?);
            }
            if let Some(d) = &source.downward_api {
                files.extend(downward_files(
                    pod,
                    facts,
                    d.items.as_deref().unwrap_or_default(),
                )?);
            }
            if let Some(token) = &source.service_account_token {
                let key = (
                    token.audience.clone().unwrap_or_default(),
                    token
                        .expiration_seconds
                        .unwrap_or(env::DEFAULT_TOKEN_SECONDS),
                );
                let Some(value) = sources.service_account_tokens.get(&key) else {
                    return Err(Error::VolumeNotReady(format!(
                        "no service account token yet for volume {:?}",
                        v.name
                    )));
                };
                files.push((token.path.clone(), value.clone(), None));
            }
        }
        write_files(&dir, &files, projected.default_mode.unwrap_or(0o644))?;
    } else {
        // emptyDir, and volume kinds this agent does not know: an empty directory.
        std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    }
    Ok(dir)
}

/// The runtime mounts of `container` from its volumeMounts.
pub fn mounts(container: &Container, volumes: &HashMap<String, PathBuf>) -> Result<Vec<Mount>> {
    container
        .volume_mounts
        .iter()
        .flatten()
        .map(|m| {
            let base = volumes
                .get(&m.name)
                .ok_or_else(|| Error::Spec(format!("volumeMount {:?} names no volume", m.name)))?;
            let host_path = match m.sub_path.as_deref() {
                Some(sub) if !sub.is_empty() => {
                    let path = base.join(safe_relative(sub)?);
                    std::fs::create_dir_all(&path).map_err(io(&path))?;
                    path
                }
                _ => base.clone(),
            };
            Ok(Mount {
                container_path: m.mount_path.clone(),
                host_path: host_path.to_string_lossy().into_owned(),
                readonly: m.read_only == Some(true),
                ..Default::default()
            })
        })
        .collect()
}

/// Removes a pod's files.
pub fn remove(data_dir: &Path, uid: &str) -> Result<()> {
    let dir = pod_dir(data_dir, uid);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(&dir)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        ConfigMapVolumeSource, DownwardAPIVolumeFile, DownwardAPIVolumeSource,
        EmptyDirVolumeSource, ObjectFieldSelector, PodSpec, SecretVolumeSource, VolumeMount,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    #[test]
    fn volumes_are_written_and_mounted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                uid: Some("uid-1".into()),
                labels: Some([("app".to_string(), "x".to_string())].into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(vec![
                    Volume {
                        name: "scratch".into(),
                        empty_dir: Some(EmptyDirVolumeSource::default()),
                        ..Default::default()
                    },
                    Volume {
                        name: "cfg".into(),
                        config_map: Some(ConfigMapVolumeSource {
                            name: "files".into(),
                            items: Some(vec![KeyToPath {
                                key: "a".into(),
                                path: "sub/a.txt".into(),
                                mode: None,
                            }]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Volume {
                        name: "creds".into(),
                        secret: Some(SecretVolumeSource {
                            secret_name: Some("s".into()),
                            default_mode: Some(0o400),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                    Volume {
                        name: "info".into(),
                        downward_api: Some(DownwardAPIVolumeSource {
                            items: Some(vec![DownwardAPIVolumeFile {
                                path: "labels".into(),
                                field_ref: Some(ObjectFieldSelector {
                                    field_path: "metadata.labels".into(),
                                    api_version: None,
                                }),
                                ..Default::default()
                            }]),
                            ..Default::default()
                        }),
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut sources = Sources::default();
        sources
            .config_maps
            .insert("files".into(), [("a".to_string(), b"A".to_vec())].into());
        sources
            .secrets
            .insert("s".into(), [("pw".to_string(), b"x".to_vec())].into());
        let paths = prepare(&pod, &sources, &PodFacts::default(), dir.path()).expect("prepared");
        let read = |v: &str, f: &str| std::fs::read_to_string(paths[v].join(f)).expect("file");
        assert_eq!(read("cfg", "sub/a.txt"), "A");
        assert_eq!(read("creds", "pw"), "x");
        assert_eq!(read("info", "labels"), "app=\"x\"\n");
        let mode = std::fs::metadata(paths["creds"].join("pw"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o400);
        assert!(paths["scratch"].is_dir());

        let container = Container {
            name: "c".into(),
            volume_mounts: Some(vec![VolumeMount {
                name: "cfg".into(),
                mount_path: "/etc/cfg".into(),
                read_only: Some(true),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let m = mounts(&container, &paths).expect("mounts");
        assert_eq!(m[0].container_path, "/etc/cfg");
        assert!(m[0].readonly);
        remove(dir.path(), "uid-1").expect("removed");
        assert!(!pod_dir(dir.path(), "uid-1").exists());
    }

    #[test]
    fn a_claim_mounts_its_volume_directory_and_an_unbound_one_waits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let pod_with_claim = |claim: &str| Pod {
            metadata: ObjectMeta {
                uid: Some("uid-2".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(vec![Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(
                        k8s_openapi::api::core::v1::PersistentVolumeClaimVolumeSource {
                            claim_name: claim.into(),
                            read_only: None,
                        },
                    ),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        let volume_dir = dir.path().join("storage").join("pvc-1");
        let mut sources = Sources::default();
        sources
            .claims
            .insert("bound".into(), ClaimSource::Directory(volume_dir.clone()));
        sources.claims.insert(
            "pending".into(),
            ClaimSource::Waiting(
                "waiting for persistentvolumeclaim \"pending\" to be bound".into(),
            ),
        );
        let facts = PodFacts::default();
        let paths = prepare(&pod_with_claim("bound"), &sources, &facts, dir.path())
            .expect("a bound claim mounts");
        assert_eq!(paths["data"], volume_dir);
        assert!(volume_dir.is_dir(), "the node makes the volume's directory");
        match prepare(&pod_with_claim("pending"), &sources, &facts, dir.path()) {
            Err(Error::VolumeNotReady(reason)) => assert!(reason.contains("to be bound")),
            other => panic!("expected the pod to wait, got {other:?}"),
        }
        assert!(matches!(
            prepare(&pod_with_claim("absent"), &sources, &facts, dir.path()),
            Err(Error::VolumeNotReady(_))
        ));
    }

    #[test]
    fn paths_that_climb_out_are_refused() {
        assert!(safe_relative("../etc/passwd").is_err());
        assert!(safe_relative("/abs").is_err());
        assert!(safe_relative("a/b").is_ok());
    }

    #[test]
    fn projected_tokens_are_written_and_replaced_whole() {
        use k8s_openapi::api::core::v1::{
            ProjectedVolumeSource, ServiceAccountTokenProjection, VolumeProjection,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("dev".into()),
                uid: Some("uid-2".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                volumes: Some(vec![Volume {
                    name: "kube-api-access-abcde".into(),
                    projected: Some(ProjectedVolumeSource {
                        default_mode: Some(0o644),
                        sources: Some(vec![
                            VolumeProjection {
                                service_account_token: Some(ServiceAccountTokenProjection {
                                    expiration_seconds: Some(3607),
                                    path: "token".into(),
                                    audience: None,
                                }),
                                ..Default::default()
                            },
                            VolumeProjection {
                                downward_api: Some(
                                    k8s_openapi::api::core::v1::DownwardAPIProjection {
                                        items: Some(vec![DownwardAPIVolumeFile {
                                            path: "namespace".into(),
                                            field_ref: Some(ObjectFieldSelector {
                                                field_path: "metadata.namespace".into(),
                                                api_version: Some("v1".into()),
                                            }),
                                            ..Default::default()
                                        }]),
                                    },
                                ),
                                ..Default::default()
                            },
                        ]),
                    }),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            env::token_keys(&pod).into_iter().collect::<Vec<_>>(),
            [(String::new(), 3607)]
        );
        let mut sources = Sources::default();
        // No token yet: the pod waits in ContainerCreating rather than failing.
        assert!(matches!(
            prepare(&pod, &sources, &PodFacts::default(), dir.path()),
            Err(Error::VolumeNotReady(_))
        ));
        sources
            .service_account_tokens
            .insert((String::new(), 3607), b"first".to_vec());
        let paths = prepare(&pod, &sources, &PodFacts::default(), dir.path()).expect("prepared");
        let volume = &paths["kube-api-access-abcde"];
        let read = |f: &str| std::fs::read_to_string(volume.join(f)).expect("file");
        assert_eq!(read("token"), "first");
        assert_eq!(read("namespace"), "dev");
        // A refresh writes the new token in place of the old one, nothing left aside.
        sources
            .service_account_tokens
            .insert((String::new(), 3607), b"second".to_vec());
        prepare(&pod, &sources, &PodFacts::default(), dir.path()).expect("refreshed");
        assert_eq!(read("token"), "second");
        let mut names: Vec<String> = std::fs::read_dir(volume)
            .expect("dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["namespace", "token"]);
    }
}
