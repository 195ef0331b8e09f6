//! Tugboat's automatic rollback: a Deployment annotated `tugboat.dev/auto-rollback: "true"`
//! whose rollout fails goes back to the previous revision's template by itself, as `kubectl
//! rollout undo` would (Nomad's `auto_revert`; Kubernetes declined it in kubernetes#23211).
//!
//! A rollout fails when Progressing is False with reason ProgressDeadlineExceeded, or when a
//! pod of the new ReplicaSet is crash-looping: a container waiting in CrashLoopBackOff after
//! at least `tugboat.dev/auto-rollback-restarts` restarts (default 3), so a rollout whose
//! deadline is long does not crash for ten minutes first.
//!
//! The rule, so that it cannot ping-pong: roll back only when the rollout failed, there is an
//! older revision, and that older revision is not the one an earlier automatic rollback left
//! (recorded in `tugboat.dev/auto-rolled-back-from` as the failed template's hash). A rollback
//! that also fails therefore stays failed for a human.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};

use super::progress::{PROGRESSING, TIMED_OUT, get_condition};
use super::util::{POD_TEMPLATE_HASH_LABEL, revision};

/// Opt-in annotation: `"true"` enables automatic rollback.
pub const AUTO_ROLLBACK_ANNOTATION: &str = "tugboat.dev/auto-rollback";
/// The `pod-template-hash` of the template the last automatic rollback left.
pub const ROLLED_BACK_FROM_ANNOTATION: &str = "tugboat.dev/auto-rolled-back-from";
/// Restarts of a new pod's container, waiting in CrashLoopBackOff, that fail the rollout.
pub const RESTARTS_ANNOTATION: &str = "tugboat.dev/auto-rollback-restarts";
/// [`RESTARTS_ANNOTATION`]'s default.
pub const DEFAULT_RESTARTS: i32 = 3;
/// The Deployment condition an automatic rollback sets, saying why.
pub const ROLLED_BACK_CONDITION: &str = "AutoRolledBack";
/// Reasons of [`ROLLED_BACK_CONDITION`].
pub const CRASH_LOOP_REASON: &str = "CrashLoopBackOff";

/// Why a rollout failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Progressing=False, ProgressDeadlineExceeded.
    Deadline,
    /// A new pod's container keeps crashing.
    CrashLoop {
        pod: String,
        container: String,
        restarts: i32,
    },
}

impl Failure {
    /// The condition reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Deadline => TIMED_OUT,
            Failure::CrashLoop { .. } => CRASH_LOOP_REASON,
        }
    }

    /// What happened, for the event and the condition.
    pub fn describe(&self, from_revision: i64) -> String {
        match self {
            Failure::Deadline => {
                format!("revision {from_revision} made no progress within its deadline")
            }
            Failure::CrashLoop {
                pod,
                container,
                restarts,
            } => format!(
                "revision {from_revision}'s pod {pod} is crash-looping (container {container} restarted {restarts} times)"
            ),
        }
    }
}

fn opted_in(deployment: &Deployment) -> bool {
    deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(AUTO_ROLLBACK_ANNOTATION))
        .map(String::as_str)
        == Some("true")
}

/// The restart threshold of an opted-in Deployment (invalid values read as the default).
pub fn restart_threshold(deployment: &Deployment) -> i32 {
    deployment
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(RESTARTS_ANNOTATION))
        .and_then(|v| v.parse::<i32>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(DEFAULT_RESTARTS)
}

/// A crash-looping pod of `new_rs` among `pods` (any pods: those of other sets are skipped),
/// if the Deployment opted in.
pub fn crash_loop<'a>(
    deployment: &Deployment,
    new_rs: Option<&ReplicaSet>,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Option<Failure> {
    if !opted_in(deployment) {
        return None;
    }
    let new_uid = new_rs?.metadata.uid.as_deref()?;
    let threshold = restart_threshold(deployment);
    for pod in pods {
        let owned = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .any(|r| r.controller == Some(true) && r.uid == new_uid);
        if !owned || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let statuses = pod.status.iter().flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        });
        for status in statuses {
            let waiting = status
                .state
                .as_ref()
                .and_then(|s| s.waiting.as_ref())
                .and_then(|w| w.reason.as_deref());
            if waiting == Some(CRASH_LOOP_REASON) && status.restart_count >= threshold {
                return Some(Failure::CrashLoop {
                    pod: pod.metadata.name.clone().unwrap_or_default(),
                    container: status.name.clone(),
                    restarts: status.restart_count,
                });
            }
        }
    }
    None
}

/// What an automatic rollback writes.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackPlan {
    /// The previous revision's template, without the hash label.
    pub template: PodTemplateSpec,
    /// The revision rolled back to.
    pub to_revision: i64,
    /// The revision that failed.
    pub from_revision: i64,
    /// The failed template's `pod-template-hash`.
    pub from_hash: String,
    /// Why.
    pub failure: Failure,
}

fn hash(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(POD_TEMPLATE_HASH_LABEL)
        .map(String::as_str)
}

/// The rollback to perform now, if any (see the module documentation for the rule);
/// `crash_loop` is what [`crash_loop`] found among the new pods.
pub fn plan(
    deployment: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
    crash_loop: Option<Failure>,
) -> Option<RollbackPlan> {
    if !opted_in(deployment) {
        return None;
    }
    let annotations = deployment.metadata.annotations.as_ref();
    let timed_out = deployment
        .status
        .as_ref()
        .and_then(|status| get_condition(status, PROGRESSING))
        .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some(TIMED_OUT));
    let failure = if timed_out {
        Failure::Deadline
    } else {
        crash_loop?
    };
    let new_rs = new_rs?;
    let from_hash = hash(new_rs)?.to_owned();
    let from_revision = revision(new_rs.metadata.annotations.as_ref());
    let previous = old
        .iter()
        .filter(|rs| revision(rs.metadata.annotations.as_ref()) < from_revision)
        .max_by_key(|rs| revision(rs.metadata.annotations.as_ref()))?;
    let previous_hash = hash(previous)?;
    if annotations
        .and_then(|a| a.get(ROLLED_BACK_FROM_ANNOTATION))
        .map(String::as_str)
        == Some(previous_hash)
    {
        return None;
    }
    let mut template = previous.spec.as_ref()?.template.clone()?;
    if let Some(labels) = template.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
        labels.remove(POD_TEMPLATE_HASH_LABEL);
    }
    Some(RollbackPlan {
        template,
        to_revision: revision(previous.metadata.annotations.as_ref()),
        from_revision,
        from_hash,
        failure,
    })
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::{DeploymentCondition, DeploymentStatus, ReplicaSetSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::*;
    use crate::deployment::util::REVISION_ANNOTATION;

    fn rs(hash: &str, revision: i64, image: &str) -> ReplicaSet {
        ReplicaSet {
            metadata: ObjectMeta {
                name: Some(format!("web-{hash}")),
                labels: Some([(POD_TEMPLATE_HASH_LABEL.to_owned(), hash.to_owned())].into()),
                annotations: Some([(REVISION_ANNOTATION.to_owned(), revision.to_string())].into()),
                ..ObjectMeta::default()
            },
            spec: Some(ReplicaSetSpec {
                template: Some(
                    serde_json::from_value(json!({
                        "metadata": {"labels": {"app": "web", POD_TEMPLATE_HASH_LABEL: hash}},
                        "spec": {"containers": [{"name": "web", "image": image}]}
                    }))
                    .unwrap(),
                ),
                ..ReplicaSetSpec::default()
            }),
            status: None,
        }
    }

    fn deployment(annotations: &[(&str, &str)], reason: &str, status: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(DeploymentStatus {
                conditions: Some(vec![DeploymentCondition {
                    type_: PROGRESSING.into(),
                    status: status.into(),
                    reason: Some(reason.into()),
                    ..DeploymentCondition::default()
                }]),
                ..DeploymentStatus::default()
            }),
        }
    }

    #[test]
    fn a_timed_out_opted_in_rollout_goes_back_to_the_previous_revision() {
        let good = rs("aaa", 1, "busybox");
        let older = rs("zzz", 0, "ancient");
        let bad = rs("bbb", 2, "nope:missing");
        let d = deployment(&[(AUTO_ROLLBACK_ANNOTATION, "true")], TIMED_OUT, "False");
        let plan = plan(&d, Some(&bad), &[older, good], None).expect("a rollback");
        assert_eq!((plan.to_revision, plan.from_revision), (1, 2));
        assert_eq!(plan.from_hash, "bbb");
        let template = serde_json::to_value(&plan.template).unwrap();
        assert_eq!(template["spec"]["containers"][0]["image"], "busybox");
        assert_eq!(template["metadata"]["labels"], json!({"app": "web"}));
    }

    #[test]
    fn nothing_happens_without_opt_in_deadline_or_history() {
        let (good, bad) = (rs("aaa", 1, "busybox"), rs("bbb", 2, "bad"));
        let old = [good.clone()];
        let not_opted = deployment(&[], TIMED_OUT, "False");
        assert_eq!(plan(&not_opted, Some(&bad), &old, None), None);
        let opted_out = deployment(&[(AUTO_ROLLBACK_ANNOTATION, "false")], TIMED_OUT, "False");
        assert_eq!(plan(&opted_out, Some(&bad), &old, None), None);
        let progressing = deployment(
            &[(AUTO_ROLLBACK_ANNOTATION, "true")],
            "ReplicaSetUpdated",
            "True",
        );
        assert_eq!(plan(&progressing, Some(&bad), &old, None), None);
        let timed_out = deployment(&[(AUTO_ROLLBACK_ANNOTATION, "true")], TIMED_OUT, "False");
        assert_eq!(
            plan(&timed_out, Some(&bad), &[], None),
            None,
            "no older revision"
        );
    }

    #[test]
    fn a_failed_rollback_is_not_undone_again() {
        // Revision 3 is the rollback to "aaa"; it failed too. Going back to "bbb" (the template
        // the first rollback left) would ping-pong.
        let back_again = rs("aaa", 3, "busybox");
        let bad = rs("bbb", 2, "bad");
        let d = deployment(
            &[
                (AUTO_ROLLBACK_ANNOTATION, "true"),
                (ROLLED_BACK_FROM_ANNOTATION, "bbb"),
            ],
            TIMED_OUT,
            "False",
        );
        assert_eq!(plan(&d, Some(&back_again), &[bad], None), None);
    }

    fn pod_of(rs: &ReplicaSet, name: &str, waiting: &str, restarts: i32) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "x",
                "uid": rs.metadata.uid, "controller": true}]},
            "status": {"containerStatuses": [{
                "name": "web", "image": "i", "imageID": "", "ready": false,
                "restartCount": restarts, "state": {"waiting": {"reason": waiting}}}]}
        }))
        .unwrap()
    }

    #[test]
    fn a_crash_looping_new_pod_past_the_threshold_rolls_back_before_the_deadline() {
        let good = rs("aaa", 1, "busybox");
        let mut bad = rs("bbb", 2, "crasher");
        bad.metadata.uid = Some("uid-bbb".into());
        let mut other = rs("ccc", 0, "x");
        other.metadata.uid = Some("uid-ccc".into());
        let d = deployment(
            &[(AUTO_ROLLBACK_ANNOTATION, "true")],
            "ReplicaSetUpdated",
            "True",
        );
        let below = [pod_of(&bad, "web-bbb-1", CRASH_LOOP_REASON, 2)];
        assert_eq!(crash_loop(&d, Some(&bad), &below), None, "2 < 3 restarts");
        let not_waiting = [pod_of(&bad, "web-bbb-1", "ContainerCreating", 9)];
        assert_eq!(crash_loop(&d, Some(&bad), &not_waiting), None);
        let elsewhere = [pod_of(&other, "web-ccc-1", CRASH_LOOP_REASON, 9)];
        assert_eq!(
            crash_loop(&d, Some(&bad), &elsewhere),
            None,
            "not the new set's"
        );

        let looping = [pod_of(&bad, "web-bbb-1", CRASH_LOOP_REASON, 3)];
        let failure = crash_loop(&d, Some(&bad), &looping).expect("a crash loop");
        assert_eq!(
            failure,
            Failure::CrashLoop {
                pod: "web-bbb-1".into(),
                container: "web".into(),
                restarts: 3
            }
        );
        let plan = plan(&d, Some(&bad), &[good], Some(failure)).expect("a rollback");
        assert_eq!((plan.to_revision, plan.from_revision), (1, 2));
        assert_eq!(plan.failure.reason(), CRASH_LOOP_REASON);

        let stricter = deployment(
            &[
                (AUTO_ROLLBACK_ANNOTATION, "true"),
                (RESTARTS_ANNOTATION, "5"),
            ],
            "ReplicaSetUpdated",
            "True",
        );
        assert_eq!(
            crash_loop(&stricter, Some(&bad), &looping),
            None,
            "5 wanted"
        );
        let not_opted = deployment(&[], "ReplicaSetUpdated", "True");
        assert_eq!(crash_loop(&not_opted, Some(&bad), &looping), None);
    }
}
