//! Pure pod predicates and the order in which a ReplicaSet deletes pods (upstream's
//! `controller.ActivePodsWithRanks`, with PodDeletionCost and LogarithmicScaleDown on, as they
//! are by default since 1.22).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::jiff::Timestamp;

/// The annotation that lets users say which pods are cheaper to delete.
pub const DELETION_COST_ANNOTATION: &str = "controller.kubernetes.io/pod-deletion-cost";

/// Neither finished nor being deleted.
pub fn is_active(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    !matches!(phase, Some("Succeeded" | "Failed")) && pod.metadata.deletion_timestamp.is_none()
}

/// The time the pod became Ready, if it is Ready.
pub fn ready_since(pod: &Pod) -> Option<Option<Timestamp>> {
    let condition = pod
        .status
        .as_ref()?
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "Ready")?;
    (condition.status == "True").then(|| condition.last_transition_time.as_ref().map(|t| t.0))
}

/// Whether the pod's Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for longer than `min_ready_seconds` (strictly, as upstream's `IsPodAvailable`).
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => {
            let min_ready_nanos = i128::from(min_ready_seconds) * 1_000_000_000;
            since.as_nanosecond() + min_ready_nanos < now.as_nanosecond()
        }
    }
}

/// The pod a controller creates from `template`: named `<owner>-<random>` by the API
/// server through generateName, owned by `controller`.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner_name: &str,
    controller: OwnerReference,
) -> Pod {
    let template_meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{owner_name}-")),
            namespace: Some(namespace.to_owned()),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match pod.status.as_ref().and_then(|s| s.phase.as_deref()) {
        Some("Unknown") => 1,
        Some("Running") => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST_ANNOTATION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .max()
        .unwrap_or(0)
}

/// Upstream's `logarithmicRankDiff`: compares ages in powers of two, so pods of similar age
/// count as equally old and a random (UID) choice spreads deletions.
fn logarithmic_rank(time: Timestamp, now: Timestamp) -> i64 {
    let nanos = now.as_nanosecond() - time.as_nanosecond();
    if nanos > 0 {
        (nanos as f64).log2() as i64
    } else {
        -1
    }
}

/// A pod's place in upstream's `ActivePodsWithRanks` order, as one sort key (earlier is
/// deleted first). Upstream's `Less` is not transitive once logarithmic ranks tie on some
/// pairs and not others (Go's sort shrugs, Rust's panics), so the criteria are taken in
/// upstream's order as one lexicographic key, with the UID as the last tie-break: unassigned
/// before assigned; Pending, Unknown, then Running; not ready before ready; lower deletion
/// cost; doubled up (more related pods on the node); ready for a shorter time (by powers of
/// two); more restarts; newer (by powers of two).
fn deletion_key(pod: &Pod, rank: usize, now: Timestamp) -> impl Ord + use<> {
    let assigned = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    // A missing time sorts first, as upstream's `afterOrZero`.
    let age_rank = |time: Option<Timestamp>| time.map_or(i64::MIN, |t| logarithmic_rank(t, now));
    let ready_rank = match ready_since(pod) {
        Some(since) => age_rank(since),
        None => 0,
    };
    let created = pod.metadata.creation_timestamp.as_ref().map(|t: &Time| t.0);
    (
        assigned,
        phase_ordinal(pod),
        is_ready(pod),
        deletion_cost(pod),
        std::cmp::Reverse(rank),
        ready_rank,
        std::cmp::Reverse(max_restarts(pod)),
        age_rank(created),
        pod.metadata.uid.clone(),
    )
}

/// The `count` pods of `owned` to delete first. `related` are the active and inactive pods of
/// every ReplicaSet sharing this one's owner: a pod whose node runs more of them goes first.
pub fn pods_to_delete<'a>(
    owned: &[&'a Pod],
    related: &[&Pod],
    count: usize,
    now: Timestamp,
) -> Vec<&'a Pod> {
    if count >= owned.len() {
        return owned.to_vec();
    }
    let mut pods_on_node: HashMap<String, usize> = HashMap::new();
    for pod in related.iter().filter(|p| is_active(p)) {
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        *pods_on_node.entry(node).or_default() += 1;
    }
    let mut ranked: Vec<(&'a Pod, usize)> = owned
        .iter()
        .map(|pod| {
            let node = pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            (*pod, pods_on_node.get(&node).copied().unwrap_or(0))
        })
        .collect();
    ranked.sort_by_cached_key(|(pod, rank)| deletion_key(pod, *rank, now));
    ranked.into_iter().take(count).map(|(pod, _)| pod).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};

    use super::*;

    fn ts(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[derive(Default, Clone)]
    struct PodSpecForTest {
        name: &'static str,
        node: &'static str,
        phase: &'static str,
        ready_at: Option<i64>,
        created_at: Option<i64>,
        restarts: i32,
        cost: Option<&'static str>,
    }

    fn pod(p: PodSpecForTest) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(p.name.into()),
                uid: Some(p.name.into()),
                creation_timestamp: p.created_at.map(|s| Time(ts(s))),
                annotations: p
                    .cost
                    .map(|c| BTreeMap::from([(DELETION_COST_ANNOTATION.to_owned(), c.to_owned())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!p.node.is_empty()).then(|| p.node.to_owned()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(p.phase.into()),
                conditions: p.ready_at.map(|s| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(Time(ts(s))),
                        ..Default::default()
                    }]
                }),
                container_statuses: Some(vec![ContainerStatus {
                    restart_count: p.restarts,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn running(name: &'static str, node: &'static str) -> PodSpecForTest {
        PodSpecForTest {
            name,
            node,
            phase: "Running",
            ready_at: Some(1_000),
            created_at: Some(900),
            ..Default::default()
        }
    }

    fn order(pods: &[Pod], related: &[Pod], now: i64) -> Vec<String> {
        let owned: Vec<&Pod> = pods.iter().collect();
        let related: Vec<&Pod> = related.iter().collect();
        pods_to_delete(&owned, &related, pods.len() - 1, ts(now))
            .into_iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect()
    }

    #[test]
    fn deletion_order_mirrors_upstream_ranking() {
        let now = 1_000_000;
        let cases: Vec<(&str, Vec<PodSpecForTest>, Vec<&str>)> = vec![
            (
                "unscheduled before scheduled",
                vec![
                    running("assigned", "n1"),
                    PodSpecForTest {
                        name: "unassigned",
                        phase: "Pending",
                        ..Default::default()
                    },
                ],
                vec!["unassigned"],
            ),
            (
                "pending before unknown before running",
                vec![
                    running("running", "n1"),
                    PodSpecForTest {
                        name: "unknown",
                        node: "n1",
                        phase: "Unknown",
                        ..Default::default()
                    },
                    PodSpecForTest {
                        name: "pending",
                        node: "n1",
                        phase: "Pending",
                        ..Default::default()
                    },
                ],
                vec!["pending", "unknown"],
            ),
            (
                "not ready before ready",
                vec![
                    running("ready", "n1"),
                    PodSpecForTest {
                        ready_at: None,
                        ..running("not-ready", "n1")
                    },
                ],
                vec!["not-ready"],
            ),
            (
                "lower deletion cost first",
                vec![
                    PodSpecForTest {
                        cost: Some("10"),
                        ..running("expensive", "n1")
                    },
                    PodSpecForTest {
                        cost: Some("-5"),
                        ..running("cheap", "n1")
                    },
                ],
                vec!["cheap"],
            ),
            (
                "ready for a shorter time first",
                vec![
                    PodSpecForTest {
                        ready_at: Some(10),
                        ..running("old-ready", "n1")
                    },
                    PodSpecForTest {
                        ready_at: Some(now - 5),
                        ..running("new-ready", "n1")
                    },
                ],
                vec!["new-ready"],
            ),
            (
                "more restarts first",
                vec![
                    running("calm", "n1"),
                    PodSpecForTest {
                        restarts: 4,
                        ..running("crashy", "n1")
                    },
                ],
                vec!["crashy"],
            ),
            (
                "newer first",
                vec![
                    PodSpecForTest {
                        created_at: Some(10),
                        ..running("old", "n1")
                    },
                    PodSpecForTest {
                        created_at: Some(now - 3),
                        ..running("new", "n1")
                    },
                ],
                vec!["new"],
            ),
        ];
        for (name, pods, want) in cases {
            let pods: Vec<Pod> = pods.into_iter().map(pod).collect();
            assert_eq!(order(&pods, &pods, now), want, "{name}");
        }
    }

    #[test]
    fn doubled_up_pods_go_first() {
        let pods = vec![pod(running("alone", "n1")), pod(running("crowded", "n2"))];
        let mut related = pods.clone();
        related.push(pod(running("sibling", "n2")));
        assert_eq!(order(&pods, &related, 2_000), vec!["crowded"]);
    }

    #[test]
    fn a_hundred_pods_of_mixed_ages_sort_without_contradiction() {
        // The shape that made the old pairwise order panic in Rust's sort: ready times that
        // tie exactly on some pairs and by powers of two on others.
        let names: Vec<&'static str> = (0..100)
            .map(|i| &*Box::leak(format!("p{i:03}").into_boxed_str()))
            .collect();
        let pods: Vec<Pod> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let i = i64::try_from(i).unwrap_or(0);
                pod(PodSpecForTest {
                    name,
                    node: if i % 7 == 0 { "" } else { "n1" },
                    phase: "Running",
                    ready_at: Some(1000 - (i * 37) % 500),
                    created_at: Some(900 - (i * 13) % 300),
                    restarts: i32::try_from(i % 3).unwrap_or(0),
                    cost: None,
                })
            })
            .collect();
        let owned: Vec<&Pod> = pods.iter().collect();
        let victims = pods_to_delete(&owned, &owned, 30, ts(2000));
        assert_eq!(victims.len(), 30);
        assert!(
            victims[..15].iter().all(|p| p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.as_deref())
                .is_none_or(str::is_empty)),
            "unassigned pods go first"
        );
    }

    #[test]
    fn deleting_all_keeps_every_pod() {
        let pods = [pod(running("a", "n1")), pod(running("b", "n1"))];
        let owned: Vec<&Pod> = pods.iter().collect();
        assert_eq!(pods_to_delete(&owned, &[], 5, ts(0)).len(), 2);
    }

    #[test]
    fn activity_readiness_and_availability() {
        let ready = pod(running("a", "n1"));
        assert!(is_active(&ready) && is_ready(&ready));
        assert!(is_available(&ready, 0, ts(0)));
        assert!(
            !is_available(&ready, 10, ts(1_010)),
            "exactly minReadySeconds is not enough"
        );
        assert!(is_available(&ready, 10, ts(1_011)));
        let failed = pod(PodSpecForTest {
            phase: "Failed",
            ..running("f", "n1")
        });
        assert!(!is_active(&failed));
        let mut deleting = pod(running("d", "n1"));
        deleting.metadata.deletion_timestamp = Some(Time(ts(5)));
        assert!(!is_active(&deleting));
    }

    #[test]
    fn pods_from_a_template_use_generate_name_and_a_controller_ref() {
        let template = PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(BTreeMap::from([("app".into(), "web".into())])),
                ..Default::default()
            }),
            spec: Some(PodSpec::default()),
        };
        let reference = OwnerReference {
            uid: "u1".into(),
            controller: Some(true),
            ..Default::default()
        };
        let pod = pod_from_template(&template, "ns", "web-abc", reference);
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("web-abc-"));
        assert_eq!(pod.metadata.name, None);
        assert_eq!(pod.metadata.labels.unwrap()["app"], "web");
        assert_eq!(pod.metadata.owner_references.unwrap()[0].uid, "u1");
    }
}
