//! Tugboat's automatic rollback: a Deployment annotated `tugboat.dev/auto-rollback: "true"`
//! whose rollout missed its progress deadline goes back to the previous revision's template by
//! itself, as `kubectl rollout undo` would.
//!
//! The rule, so that it cannot ping-pong: roll back only when Progressing is False with reason
//! ProgressDeadlineExceeded, there is an older revision, and that older revision is not the
//! one an earlier automatic rollback left (recorded in `tugboat.dev/auto-rolled-back-from` as
//! the failed template's hash). A rollback that also fails therefore stays failed for a human.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;

use super::progress::{PROGRESSING, TIMED_OUT, get_condition};
use super::util::{POD_TEMPLATE_HASH_LABEL, revision};

/// Opt-in annotation: `"true"` enables automatic rollback.
pub const AUTO_ROLLBACK_ANNOTATION: &str = "tugboat.dev/auto-rollback";
/// The `pod-template-hash` of the template the last automatic rollback left.
pub const ROLLED_BACK_FROM_ANNOTATION: &str = "tugboat.dev/auto-rolled-back-from";

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
}

fn hash(rs: &ReplicaSet) -> Option<&str> {
    rs.metadata
        .labels
        .as_ref()?
        .get(POD_TEMPLATE_HASH_LABEL)
        .map(String::as_str)
}

/// The rollback to perform now, if any (see the module documentation for the rule).
pub fn plan(
    deployment: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> Option<RollbackPlan> {
    let annotations = deployment.metadata.annotations.as_ref();
    if annotations
        .and_then(|a| a.get(AUTO_ROLLBACK_ANNOTATION))
        .map(String::as_str)
        != Some("true")
    {
        return None;
    }
    let progressing = get_condition(deployment.status.as_ref()?, PROGRESSING)?;
    if progressing.status != "False" || progressing.reason.as_deref() != Some(TIMED_OUT) {
        return None;
    }
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
        let plan = plan(&d, Some(&bad), &[older, good]).expect("a rollback");
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
        assert_eq!(plan(&not_opted, Some(&bad), &old), None);
        let opted_out = deployment(&[(AUTO_ROLLBACK_ANNOTATION, "false")], TIMED_OUT, "False");
        assert_eq!(plan(&opted_out, Some(&bad), &old), None);
        let progressing = deployment(
            &[(AUTO_ROLLBACK_ANNOTATION, "true")],
            "ReplicaSetUpdated",
            "True",
        );
        assert_eq!(plan(&progressing, Some(&bad), &old), None);
        let timed_out = deployment(&[(AUTO_ROLLBACK_ANNOTATION, "true")], TIMED_OUT, "False");
        assert_eq!(plan(&timed_out, Some(&bad), &[]), None, "no older revision");
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
        assert_eq!(plan(&d, Some(&back_again), &[bad]), None);
    }
}
