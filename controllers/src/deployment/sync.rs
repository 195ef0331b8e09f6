//! Decisions shared by every strategy (upstream's `sync.go`): which ReplicaSet is new, whether
//! a change is a scaling event, proportional scaling, and revision-history cleanup.

use std::cmp::Ordering;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::util::{
    InvalidIntOrPercent, deployment_replicas, desired_replicas_annotation, equal_ignore_hash,
    is_recreate, max_replicas_annotation, max_surge, replica_count, rs_actual, rs_available,
    rs_replicas, rs_revision,
};

/// Upstream's `ReplicaSetsByCreationTimestamp`: oldest first, then by name.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    let created = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Upstream's `FindNewReplicaSet`: the oldest ReplicaSet whose template equals the
/// Deployment's, hash label aside.
pub fn find_new<'a>(deployment: &Deployment, sets: &[&'a ReplicaSet]) -> Option<&'a ReplicaSet> {
    let template = &deployment.spec.as_ref()?.template;
    let mut sorted = sets.to_vec();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted.into_iter().find(|rs| {
        rs.spec
            .as_ref()
            .and_then(|s| s.template.as_ref())
            .is_some_and(|t| equal_ignore_hash(t, template))
    })
}

/// Every ReplicaSet but the new one.
pub fn find_old<'a>(new_rs: Option<&ReplicaSet>, sets: &[&'a ReplicaSet]) -> Vec<&'a ReplicaSet> {
    let new_uid = new_rs.and_then(|rs| rs.metadata.uid.as_ref());
    sets.iter()
        .copied()
        .filter(|rs| new_uid.is_none() || rs.metadata.uid.as_ref() != new_uid)
        .collect()
}

/// Upstream's `FilterActiveReplicaSets`: those with pods wanted.
pub fn active<'a>(sets: impl IntoIterator<Item = &'a ReplicaSet>) -> Vec<&'a ReplicaSet> {
    sets.into_iter().filter(|rs| rs_replicas(rs) > 0).collect()
}

/// Upstream's `isScalingEvent`: an active ReplicaSet was last sized for another replica count.
pub fn is_scaling_event(deployment: &Deployment, sets: &[&ReplicaSet]) -> bool {
    let replicas = deployment_replicas(deployment);
    active(sets.iter().copied())
        .into_iter()
        .filter_map(desired_replicas_annotation)
        .any(|desired| desired != replicas)
}

/// Upstream's `IsSaturated`: the new ReplicaSet has all the Deployment's replicas available.
fn is_saturated(deployment: &Deployment, rs: &ReplicaSet) -> bool {
    let replicas = deployment_replicas(deployment);
    desired_replicas_annotation(rs) == Some(replicas)
        && rs_replicas(rs) == replicas
        && rs_available(rs) == replicas
}

/// Upstream's `FindActiveOrLatest`: the only active set, the newest if none is active, or
/// `None` when several are active and must scale proportionally.
fn active_or_latest<'a>(
    new_rs: Option<&'a ReplicaSet>,
    old: &[&'a ReplicaSet],
) -> Option<&'a ReplicaSet> {
    if new_rs.is_none() && old.is_empty() {
        return None;
    }
    let mut old_newest_first = old.to_vec();
    old_newest_first.sort_by(|a, b| by_creation(b, a));
    let all: Vec<&ReplicaSet> = old_newest_first.iter().copied().chain(new_rs).collect();
    let active = active(all.iter().copied());
    match active.len() {
        0 => new_rs.or_else(|| old_newest_first.first().copied()),
        1 => Some(active[0]),
        _ => None,
    }
}

/// Upstream's `getReplicaSetFraction`: this set's share of a resize.
fn fraction(rs: &ReplicaSet, deployment: &Deployment, surge: i32) -> i32 {
    let replicas = deployment_replicas(deployment);
    if replicas == 0 {
        return -rs_replicas(rs);
    }
    let deployment_max = replicas + surge;
    let annotated = max_replicas_annotation(rs).unwrap_or_else(|| {
        // Sets from before the annotation existed: the Deployment's last reported size.
        deployment
            .status
            .as_ref()
            .and_then(|s| s.replicas)
            .unwrap_or(0)
    });
    if annotated == 0 {
        return 0;
    }
    let scaled = f64::from(rs_replicas(rs)) * f64::from(deployment_max) / f64::from(annotated);
    // Go's math.Round rounds half away from zero, as f64::round does.
    scaled.round() as i32 - rs_replicas(rs)
}

/// Upstream's `scale`: new sizes of the ReplicaSets when the Deployment was resized, spread
/// across them in proportion during a rollout. Only changed sets are returned, except that
/// every active set is returned when proportions apply, so its replica annotations get updated.
pub fn plan_scale(
    deployment: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[&ReplicaSet],
) -> Result<Vec<(String, i32)>, InvalidIntOrPercent> {
    let replicas = deployment_replicas(deployment);
    let name = |rs: &ReplicaSet| rs.metadata.name.clone().unwrap_or_default();
    if let Some(only) = active_or_latest(new_rs, old) {
        if rs_replicas(only) == replicas {
            return Ok(Vec::new());
        }
        return Ok(vec![(name(only), replicas)]);
    }
    if let Some(new_rs) = new_rs
        && is_saturated(deployment, new_rs)
    {
        return Ok(active(old.iter().copied())
            .into_iter()
            .map(|rs| (name(rs), 0))
            .collect());
    }
    if is_recreate(deployment) {
        return Ok(Vec::new());
    }

    let surge = max_surge(deployment)?;
    let mut sets: Vec<&ReplicaSet> = active(old.iter().copied().chain(new_rs));
    let allowed = if replicas > 0 { replicas + surge } else { 0 };
    let to_add = allowed - replica_count(sets.iter().copied());
    match to_add.cmp(&0) {
        // Larger first; among equals, newer first when growing and older first when shrinking.
        Ordering::Greater => sets.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| by_creation(b, a))
        }),
        Ordering::Less => sets.sort_by(|a, b| {
            rs_replicas(b)
                .cmp(&rs_replicas(a))
                .then_with(|| by_creation(a, b))
        }),
        Ordering::Equal => {}
    }
    let mut added = 0;
    let mut sizes: Vec<i32> = Vec::with_capacity(sets.len());
    for rs in &sets {
        let current = rs_replicas(rs);
        let proportion = if to_add == 0 || current == 0 || to_add == added {
            0
        } else {
            let share = fraction(rs, deployment, surge);
            let allowed = to_add - added;
            if to_add > 0 {
                share.min(allowed)
            } else {
                share.max(allowed)
            }
        };
        added += proportion;
        sizes.push(current + proportion);
    }
    if let Some(largest) = sizes.first_mut()
        && to_add != 0
    {
        // Rounding leftovers go to the largest set.
        *largest = (*largest + to_add - added).max(0);
    }
    Ok(sets
        .iter()
        .zip(sizes)
        .map(|(rs, size)| (name(rs), size))
        .collect())
}

/// Upstream's `cleanupDeployment`: the old ReplicaSets past `revisionHistoryLimit` that may be
/// deleted, lowest revision first. Sets still holding pods, or not yet observed, stay.
pub fn history_to_delete<'a>(
    deployment: &Deployment,
    old: &[&'a ReplicaSet],
) -> Vec<&'a ReplicaSet> {
    let Some(limit) = deployment
        .spec
        .as_ref()
        .and_then(|s| s.revision_history_limit)
    else {
        return Vec::new();
    };
    if limit == i32::MAX {
        return Vec::new();
    }
    let mut cleanable: Vec<&ReplicaSet> = old
        .iter()
        .copied()
        .filter(|rs| rs.metadata.deletion_timestamp.is_none())
        .collect();
    let excess = cleanable.len() as i64 - i64::from(limit.max(0));
    if excess <= 0 {
        return Vec::new();
    }
    cleanable.sort_by(|a, b| {
        rs_revision(a)
            .cmp(&rs_revision(b))
            .then_with(|| by_creation(a, b))
    });
    cleanable
        .into_iter()
        .take(excess as usize)
        .filter(|rs| {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            rs_actual(rs) == 0
                && rs_replicas(rs) == 0
                && rs.metadata.generation.unwrap_or(0) <= observed
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::testing::{deployment, rs, template};
    use super::super::util::{
        DESIRED_REPLICAS_ANNOTATION, MAX_REPLICAS_ANNOTATION, REVISION_ANNOTATION,
    };
    use super::*;

    fn annotated(mut set: ReplicaSet, desired: i32, max: i32) -> ReplicaSet {
        set.metadata.annotations = Some(BTreeMap::from([
            (DESIRED_REPLICAS_ANNOTATION.into(), desired.to_string()),
            (MAX_REPLICAS_ANNOTATION.into(), max.to_string()),
        ]));
        set
    }

    #[test]
    fn find_new_matches_template_ignoring_hash_and_prefers_oldest() {
        let d = deployment(3, "1", "0");
        let mut other = rs("other", 1, 1, 1);
        other.spec.as_mut().unwrap().template = Some(template("nginx:2"));
        let mut hashed = rs("hashed", 1, 1, 2);
        hashed
            .spec
            .as_mut()
            .unwrap()
            .template
            .as_mut()
            .unwrap()
            .metadata
            .as_mut()
            .unwrap()
            .labels
            .as_mut()
            .unwrap()
            .insert("pod-template-hash".into(), "x".into());
        let newer_twin = rs("twin", 1, 1, 3);
        let sets = [&newer_twin, &other, &hashed];
        assert_eq!(
            find_new(&d, &sets)
                .and_then(|r| r.metadata.name.clone())
                .as_deref(),
            Some("hashed")
        );
        assert_eq!(find_old(find_new(&d, &sets), &sets).len(), 2);
    }

    #[test]
    fn proportional_scaling_as_upstream() {
        // From upstream's TestScale.
        struct Case {
            name: &'static str,
            replicas: i32,
            surge: &'static str,
            was: (i32, i32), // deployment replicas and max when the sets were last sized
            new_size: i32,
            old_sizes: Vec<i32>,
            want_new: i32,
            want_old: Vec<i32>,
        }
        let cases = [
            Case {
                name: "proportional scale up",
                replicas: 12,
                surge: "0",
                was: (10, 10),
                new_size: 5,
                old_sizes: vec![5],
                want_new: 6,
                want_old: vec![6],
            },
            Case {
                name: "proportional scale down",
                replicas: 8,
                surge: "0",
                was: (10, 10),
                new_size: 5,
                old_sizes: vec![5],
                want_new: 4,
                want_old: vec![4],
            },
            Case {
                name: "leftover goes to the largest (newest on ties when growing)",
                replicas: 11,
                surge: "0",
                was: (10, 10),
                new_size: 5,
                old_sizes: vec![5],
                want_new: 6,
                want_old: vec![5],
            },
            Case {
                name: "three sets with surge",
                replicas: 20,
                surge: "3",
                was: (10, 13),
                new_size: 6,
                old_sizes: vec![4, 3],
                want_new: 11,
                want_old: vec![7, 5],
            },
            Case {
                name: "scale to zero",
                replicas: 0,
                surge: "1",
                was: (10, 11),
                new_size: 6,
                old_sizes: vec![5],
                want_new: 0,
                want_old: vec![0],
            },
        ];
        for case in cases {
            let d = deployment(case.replicas, case.surge, "0");
            let new_rs = annotated(rs("new", case.new_size, 0, 10), case.was.0, case.was.1);
            let old: Vec<ReplicaSet> = case
                .old_sizes
                .iter()
                .enumerate()
                .map(|(i, size)| {
                    annotated(
                        rs(&format!("old{i}"), *size, *size, i as i64),
                        case.was.0,
                        case.was.1,
                    )
                })
                .collect();
            let old_refs: Vec<&ReplicaSet> = old.iter().collect();
            let plan: BTreeMap<String, i32> = plan_scale(&d, Some(&new_rs), &old_refs)
                .unwrap()
                .into_iter()
                .collect();
            assert_eq!(
                plan.get("new").copied(),
                Some(case.want_new),
                "{}: new",
                case.name
            );
            for (i, want) in case.want_old.iter().enumerate() {
                assert_eq!(
                    plan.get(&format!("old{i}")).copied(),
                    Some(*want),
                    "{}: old{i}",
                    case.name
                );
            }
        }
    }

    #[test]
    fn single_active_set_takes_the_whole_count() {
        let d = deployment(5, "1", "0");
        let new_rs = rs("new", 3, 3, 2);
        let old = rs("old", 0, 0, 1);
        assert_eq!(
            plan_scale(&d, Some(&new_rs), &[&old]).unwrap(),
            vec![("new".to_string(), 5)]
        );
        let done = rs("new", 5, 5, 2);
        assert!(plan_scale(&d, Some(&done), &[&old]).unwrap().is_empty());
    }

    #[test]
    fn saturated_new_set_scales_old_ones_to_zero() {
        let d = deployment(3, "1", "0");
        let new_rs = annotated(rs("new", 3, 3, 2), 3, 4);
        let old = rs("old", 1, 1, 1);
        let extra = rs("extra", 1, 1, 0);
        let plan = plan_scale(&d, Some(&new_rs), &[&old, &extra]).unwrap();
        assert_eq!(plan, vec![("old".to_string(), 0), ("extra".to_string(), 0)]);
    }

    #[test]
    fn scaling_event_detection() {
        let d = deployment(5, "1", "0");
        let same = annotated(rs("a", 2, 2, 1), 5, 6);
        let resized = annotated(rs("b", 2, 2, 2), 4, 5);
        let idle = annotated(rs("c", 0, 0, 3), 1, 2);
        assert!(!is_scaling_event(&d, &[&same, &idle]));
        assert!(is_scaling_event(&d, &[&same, &resized]));
    }

    #[test]
    fn history_cleanup_as_upstream() {
        let with_revision = |name: &str, replicas: i32, revision: i64| {
            let mut set = rs(name, replicas, replicas, revision);
            set.metadata.annotations = Some(BTreeMap::from([(
                REVISION_ANNOTATION.into(),
                revision.to_string(),
            )]));
            set
        };
        let mut d = deployment(1, "1", "0");
        d.spec.as_mut().unwrap().revision_history_limit = Some(1);
        let (r1, r2, r3) = (
            with_revision("r1", 0, 1),
            with_revision("r2", 1, 2),
            with_revision("r3", 0, 3),
        );
        let names: Vec<_> = history_to_delete(&d, &[&r3, &r2, &r1])
            .into_iter()
            .filter_map(|rs| rs.metadata.name.clone())
            .collect();
        // Two past the limit: r1 and r2, but r2 still has pods.
        assert_eq!(names, vec!["r1"]);
        d.spec.as_mut().unwrap().revision_history_limit = None;
        assert!(history_to_delete(&d, &[&r3, &r2, &r1]).is_empty());
    }
}
