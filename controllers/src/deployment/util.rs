//! Pure helpers of the Deployment controller (upstream's `deployment/util` and
//! `controller.ComputeHash`): template hashing and equality, revisions and annotations,
//! maxSurge/maxUnavailable, replica counting.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::Value;

/// The label that tells a Deployment's ReplicaSets (and their pods) apart.
pub const POD_TEMPLATE_HASH_LABEL: &str = "pod-template-hash";
/// A ReplicaSet's place in its Deployment's rollout sequence.
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a ReplicaSet served (set when a rollback reuses it).
pub const REVISION_HISTORY_ANNOTATION: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/desired-replicas";
/// The Deployment's replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS_ANNOTATION: &str = "deployment.kubernetes.io/max-replicas";
const LAST_APPLIED_ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
const OVERLAP_ANNOTATION: &str = "deployment.kubernetes.io/error-selector-overlapping-with";
const SELECTOR_UPDATE_ANNOTATION: &str = "deployment.kubernetes.io/selector-updated-at";

/// The alphabet of upstream's `rand.SafeEncodeString`: no vowels, no confusable digits.
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// FNV-1a, 32 bits (Go's `hash/fnv.New32a`).
#[derive(Debug, Clone, Copy)]
pub struct Fnv32a(u32);

impl Default for Fnv32a {
    fn default() -> Self {
        Self(0x811c_9dc5)
    }
}

impl Fnv32a {
    /// Feeds bytes.
    pub fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 ^= u32::from(*byte);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    /// The hash so far.
    pub fn sum32(&self) -> u32 {
        self.0
    }
}

/// Upstream's `rand.SafeEncodeString`.
pub fn safe_encode(input: &str) -> String {
    input
        .chars()
        .map(|c| char::from(SAFE_ALPHABET[(c as usize) % SAFE_ALPHABET.len()]))
        .collect()
}

/// Drops nulls, empty lists and empty maps: Go's semantic equality treats nil and empty alike,
/// and the hash must not depend on how a client spelled "nothing".
fn prune(value: Value) -> Option<Value> {
    match value {
        Value::Null => None,
        Value::Array(items) => {
            let items: Vec<Value> = items
                .into_iter()
                .map(|v| prune(v).unwrap_or(Value::Null))
                .collect();
            (!items.is_empty()).then_some(Value::Array(items))
        }
        Value::Object(map) => {
            let map: serde_json::Map<String, Value> = map
                .into_iter()
                .filter_map(|(k, v)| prune(v).map(|v| (k, v)))
                .collect();
            (!map.is_empty()).then_some(Value::Object(map))
        }
        other => Some(other),
    }
}

fn canonical(template: &PodTemplateSpec) -> Value {
    serde_json::to_value(template)
        .ok()
        .and_then(prune)
        .unwrap_or(Value::Null)
}

/// Upstream's `controller.ComputeHash`: FNV-32a of the template, then the collision count as
/// 8 little-endian bytes, rendered as the decimal sum in the safe alphabet. The template is
/// fed as canonical JSON (sorted keys, empties dropped) where Go feeds its own dump.
pub fn compute_hash(template: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut hasher = Fnv32a::default();
    hasher.write(canonical(template).to_string().as_bytes());
    if let Some(count) = collision_count {
        let mut bytes = [0u8; 8];
        bytes[..4].copy_from_slice(&(count as u32).to_le_bytes());
        hasher.write(&bytes);
    }
    safe_encode(&hasher.sum32().to_string())
}

fn without_hash_label(template: &PodTemplateSpec) -> PodTemplateSpec {
    let mut template = template.clone();
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    template
}

/// Upstream's `EqualIgnoreHash`: whether two templates are the same but for the hash label.
/// This is what makes `kubectl rollout undo` reuse the old ReplicaSet.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    canonical(&without_hash_label(a)) == canonical(&without_hash_label(b))
}

/// The revision annotation of an object; missing or malformed is 0, as upstream skips it.
pub fn revision(annotations: Option<&BTreeMap<String, String>>) -> i64 {
    annotations
        .and_then(|a| a.get(REVISION_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The revision of a ReplicaSet.
pub fn rs_revision(rs: &ReplicaSet) -> i64 {
    revision(rs.metadata.annotations.as_ref())
}

/// The highest revision among `replica_sets`.
pub fn max_revision<'a>(replica_sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    replica_sets.into_iter().map(rs_revision).max().unwrap_or(0)
}

fn skip_copy_annotation(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED_ANNOTATION
            | REVISION_ANNOTATION
            | REVISION_HISTORY_ANNOTATION
            | DESIRED_REPLICAS_ANNOTATION
            | MAX_REPLICAS_ANNOTATION
            | OVERLAP_ANNOTATION
            | SELECTOR_UPDATE_ANNOTATION
    )
}

/// Upstream's `SetNewReplicaSetAnnotations`: copies the Deployment's annotations (e.g.
/// `kubernetes.io/change-cause`), raises the revision to `new_revision` if lower (keeping the
/// old one in the history when a rollback reuses the set), and for a set about to be created
/// records the replica annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(
    deployment: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
    max_surge: i32,
) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in deployment.metadata.annotations.iter().flatten() {
        if skip_copy_annotation(key) || annotations.get(key) == Some(value) {
            continue;
        }
        annotations.insert(key.clone(), value.clone());
        changed = true;
    }
    let old_revision = annotations.get(REVISION_ANNOTATION).cloned();
    let old_number = old_revision
        .as_deref()
        .and_then(|v| v.parse::<i64>().ok())
        .unwrap_or(0);
    // Compared as numbers: upstream compares strings, which orders "10" before "9".
    let mut revision_changed = false;
    if old_revision.is_none() || old_number < new_revision {
        annotations.insert(REVISION_ANNOTATION.to_owned(), new_revision.to_string());
        changed = true;
        revision_changed = true;
    }
    if let Some(old_revision) = old_revision
        && revision_changed
    {
        let history = annotations
            .get(REVISION_HISTORY_ANNOTATION)
            .cloned()
            .unwrap_or_default();
        let history = if history.is_empty() {
            old_revision
        } else {
            format!("{history},{old_revision}")
        };
        annotations.insert(REVISION_HISTORY_ANNOTATION.to_owned(), history);
    }
    if !exists {
        let replicas = deployment_replicas(deployment);
        changed |= set_replicas_annotations(rs, replicas, replicas + max_surge);
    }
    changed
}

/// Records the Deployment's desired and maximum replicas on a ReplicaSet (used by
/// proportional scaling); returns whether they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let annotations = rs.metadata.annotations.get_or_insert_with(BTreeMap::new);
    let mut changed = false;
    for (key, value) in [
        (DESIRED_REPLICAS_ANNOTATION, desired),
        (MAX_REPLICAS_ANNOTATION, max),
    ] {
        let value = value.to_string();
        if annotations.get(key) != Some(&value) {
            annotations.insert(key.to_owned(), value);
            changed = true;
        }
    }
    changed
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// The desired-replicas annotation of a ReplicaSet.
pub fn desired_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS_ANNOTATION)
}

/// The max-replicas annotation of a ReplicaSet.
pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS_ANNOTATION)
}

/// `spec.replicas` of a Deployment (1 when unset, the API default).
pub fn deployment_replicas(deployment: &Deployment) -> i32 {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1)
}

/// `spec.replicas` of a ReplicaSet (1 when unset, the API default).
pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// `status.availableReplicas` of a ReplicaSet.
pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

/// `status.readyReplicas` of a ReplicaSet.
pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

/// `status.replicas` of a ReplicaSet.
pub fn rs_actual(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map(|s| s.replicas).unwrap_or(0)
}

/// Sum of `spec.replicas`.
pub fn replica_count<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> i32 {
    sets.into_iter().map(rs_replicas).sum()
}

/// Whether the Deployment uses the Recreate strategy.
pub fn is_recreate(deployment: &Deployment) -> bool {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

/// A malformed maxSurge or maxUnavailable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {0:?}: must be an integer or a percentage")]
pub struct InvalidIntOrPercent(pub String);

/// Upstream's `GetScaledValueFromIntOrPercent`: an integer as is, a percentage of `total`
/// rounded up or down.
pub fn scaled_value(
    value: &IntOrString,
    total: i32,
    round_up: bool,
) -> Result<i32, InvalidIntOrPercent> {
    match value {
        IntOrString::Int(int) => Ok(*int),
        IntOrString::String(text) => {
            let percent: i64 = text
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| InvalidIntOrPercent(text.clone()))?;
            let product = percent * i64::from(total);
            let scaled = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            i32::try_from(scaled).map_err(|_| InvalidIntOrPercent(text.clone()))
        }
    }
}

/// Upstream's `ResolveFenceposts`: (maxSurge, maxUnavailable) for `desired` replicas, surge
/// rounded up, unavailable down, and never both zero. Unset values are the API default 25%.
pub fn resolve_fenceposts(
    max_surge: Option<&IntOrString>,
    max_unavailable: Option<&IntOrString>,
    desired: i32,
) -> Result<(i32, i32), InvalidIntOrPercent> {
    let default = IntOrString::String("25%".into());
    let surge = scaled_value(max_surge.unwrap_or(&default), desired, true)?;
    let unavailable = scaled_value(max_unavailable.unwrap_or(&default), desired, false)?;
    if surge == 0 && unavailable == 0 {
        // Otherwise a rollout could never make progress.
        return Ok((0, 1));
    }
    Ok((surge, unavailable))
}

fn rolling_fenceposts(deployment: &Deployment) -> Result<(i32, i32), InvalidIntOrPercent> {
    let rolling = deployment
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    resolve_fenceposts(
        rolling.and_then(|r| r.max_surge.as_ref()),
        rolling.and_then(|r| r.max_unavailable.as_ref()),
        deployment_replicas(deployment),
    )
}

/// Upstream's `MaxSurge`: 0 for Recreate.
pub fn max_surge(deployment: &Deployment) -> Result<i32, InvalidIntOrPercent> {
    if is_recreate(deployment) {
        return Ok(0);
    }
    Ok(rolling_fenceposts(deployment)?.0)
}

/// Upstream's `MaxUnavailable`: 0 for Recreate or zero replicas, at most the replicas.
pub fn max_unavailable(deployment: &Deployment) -> Result<i32, InvalidIntOrPercent> {
    let replicas = deployment_replicas(deployment);
    if is_recreate(deployment) || replicas == 0 {
        return Ok(0);
    }
    Ok(rolling_fenceposts(deployment)?.1.min(replicas))
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};
    use k8s_openapi::api::core::v1::{Container, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn template(image: &str) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            }),
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "web".into(),
                    image: Some(image.into()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    #[test]
    fn fnv32a_matches_known_vectors() {
        // From Go's hash/fnv tests.
        for (input, want) in [
            ("", 0x811c_9dc5u32),
            ("a", 0xe40c_292c),
            ("ab", 0x4d25_05ca),
            ("abc", 0x1a47_e90b),
        ] {
            let mut hasher = Fnv32a::default();
            hasher.write(input.as_bytes());
            assert_eq!(hasher.sum32(), want, "{input:?}");
        }
    }

    #[test]
    fn safe_encode_matches_upstream() {
        // '0' is 48 and 48 % 27 = 21 → '4'; '9' is 57, 57 % 27 = 3 → 'f'.
        assert_eq!(safe_encode("09"), "4f");
    }

    #[test]
    fn hash_is_stable_safe_and_changes_with_template_and_collisions() {
        let a = compute_hash(&template("nginx:1"), None);
        assert_eq!(a, compute_hash(&template("nginx:1"), None));
        assert!(a.bytes().all(|b| SAFE_ALPHABET.contains(&b)));
        assert!((6..=10).contains(&a.len()));
        assert_ne!(a, compute_hash(&template("nginx:2"), None));
        assert_ne!(a, compute_hash(&template("nginx:1"), Some(1)));
        assert_ne!(
            compute_hash(&template("nginx:1"), Some(0)),
            compute_hash(&template("nginx:1"), Some(1))
        );
    }

    #[test]
    fn hash_ignores_how_empty_fields_are_spelled() {
        let mut with_empties = template("nginx:1");
        with_empties.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
        with_empties.spec.as_mut().unwrap().volumes = Some(vec![]);
        assert_eq!(
            compute_hash(&with_empties, None),
            compute_hash(&template("nginx:1"), None)
        );
        assert!(equal_ignore_hash(&with_empties, &template("nginx:1")));
    }

    #[test]
    fn equal_ignore_hash_ignores_only_the_hash_label() {
        let mut hashed = template("nginx:1");
        hashed
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
        assert!(equal_ignore_hash(&hashed, &template("nginx:1")));
        assert!(!equal_ignore_hash(&hashed, &template("nginx:2")));
    }

    #[test]
    fn scaled_values_round_as_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        let cases = [
            (pct("25%"), 10, true, Ok(3)),
            (pct("25%"), 10, false, Ok(2)),
            (pct("50%"), 5, true, Ok(3)),
            (pct("50%"), 5, false, Ok(2)),
            (pct("0%"), 10, true, Ok(0)),
            (pct("100%"), 7, false, Ok(7)),
            (IntOrString::Int(4), 10, true, Ok(4)),
            (pct("abc"), 10, true, Err(InvalidIntOrPercent("abc".into()))),
            (pct("25"), 10, true, Err(InvalidIntOrPercent("25".into()))),
        ];
        for (value, total, up, want) in cases {
            assert_eq!(
                scaled_value(&value, total, up),
                want,
                "{value:?} of {total}, up={up}"
            );
        }
    }

    #[test]
    fn fenceposts_as_upstream() {
        let pct = |s: &str| IntOrString::String(s.into());
        let cases = [
            (None, None, 10, (3, 2)),
            (Some(pct("25%")), Some(pct("25%")), 1, (1, 0)),
            (
                Some(IntOrString::Int(0)),
                Some(IntOrString::Int(0)),
                5,
                (0, 1),
            ),
            (Some(pct("0%")), Some(pct("10%")), 5, (0, 1)),
            (Some(IntOrString::Int(2)), Some(pct("50%")), 3, (2, 1)),
        ];
        for (surge, unavailable, desired, want) in cases {
            assert_eq!(
                resolve_fenceposts(surge.as_ref(), unavailable.as_ref(), desired),
                Ok(want)
            );
        }
    }

    #[test]
    fn max_unavailable_is_capped_and_zero_for_recreate() {
        let deployment = |replicas, type_: &str, unavailable: i32| Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some(type_.into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(IntOrString::Int(1)),
                        max_unavailable: Some(IntOrString::Int(unavailable)),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(max_unavailable(&deployment(2, "RollingUpdate", 5)), Ok(2));
        assert_eq!(max_unavailable(&deployment(0, "RollingUpdate", 5)), Ok(0));
        assert_eq!(max_unavailable(&deployment(4, "Recreate", 1)), Ok(0));
        assert_eq!(max_surge(&deployment(4, "Recreate", 1)), Ok(0));
        assert_eq!(max_surge(&deployment(4, "RollingUpdate", 1)), Ok(1));
    }

    #[test]
    fn rollback_reuse_bumps_revision_and_records_history() {
        let deployment = Deployment {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([
                    ("kubernetes.io/change-cause".into(), "undo".into()),
                    (REVISION_ANNOTATION.into(), "3".into()),
                ])),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                annotations: Some(BTreeMap::from([(REVISION_ANNOTATION.into(), "1".into())])),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(set_new_rs_annotations(&deployment, &mut rs, 4, true, 1));
        let annotations = rs.metadata.annotations.as_ref().unwrap();
        assert_eq!(annotations[REVISION_ANNOTATION], "4");
        assert_eq!(annotations[REVISION_HISTORY_ANNOTATION], "1");
        assert_eq!(annotations["kubernetes.io/change-cause"], "undo");
        // A second pass changes nothing; a second rollback appends to the history.
        assert!(!set_new_rs_annotations(&deployment, &mut rs, 4, true, 1));
        assert!(set_new_rs_annotations(&deployment, &mut rs, 6, true, 1));
        assert_eq!(
            rs.metadata.annotations.as_ref().unwrap()[REVISION_HISTORY_ANNOTATION],
            "1,4"
        );
        // Revisions compare as numbers: 10 is newer than 9.
        let mut ten = ReplicaSet::default();
        set_new_rs_annotations(&deployment, &mut ten, 10, true, 1);
        assert!(!set_new_rs_annotations(&deployment, &mut ten, 9, true, 1));
    }

    #[test]
    fn new_sets_get_replica_annotations() {
        let deployment = Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(4),
                ..Default::default()
            }),
            ..Default::default()
        };
        let mut rs = ReplicaSet::default();
        set_new_rs_annotations(&deployment, &mut rs, 1, false, 1);
        assert_eq!(desired_replicas_annotation(&rs), Some(4));
        assert_eq!(max_replicas_annotation(&rs), Some(5));
    }
}
