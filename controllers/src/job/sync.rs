//! One Job's sync: claim its pods, decide, then create and delete pods and publish status.

use std::sync::Arc;

use futures::future::join_all;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use tracing::debug;
use tugboat_api::selector::Selector;

use super::JobController;
use super::decide::{COMPLETION_INDEX_ANNOTATION, Decision, decide};
use crate::error::kube_status_is;
use crate::framework::claim::{claim_objects, owner_still_current};
use crate::framework::events::{self, EventType};
use crate::framework::ownership::controller_ref;
use crate::framework::{ObjectKey, Reconciler, Requeue};
use crate::{Error, Result};

const COMPONENT: &str = "job-controller";

impl Reconciler for JobController {
    fn name(&self) -> &'static str {
        "job"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        let job_key = key.to_string();
        let Some(job) = self.cached_job(key) else {
            debug!("job is gone");
            self.expectations.delete(&job_key);
            return Ok(Requeue::Never);
        };
        if job.metadata.deletion_timestamp.is_some() {
            // The garbage collector removes its pods.
            return Ok(Requeue::Never);
        }
        // Until the pods we created or deleted show up in the cache, counting them is wrong.
        if !self.expectations.satisfied(&job_key) {
            return Ok(Requeue::Never);
        }
        let selector =
            Selector::from_label_selector(job.spec.as_ref().and_then(|s| s.selector.as_ref()))
                .map_err(|source| Error::InvalidSelector {
                    kind: "Job",
                    key: job_key.clone(),
                    source,
                })?;
        let candidates: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|pod| pod.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
            .collect();
        let pods: Api<Pod> = Api::namespaced(self.client.clone(), &key.namespace);
        let owned = claim_objects(job.as_ref(), &selector, &pods, candidates, || {
            owner_still_current(&self.client, job.as_ref())
        })
        .await?;
        let owned_refs: Vec<&Pod> = owned.iter().map(Arc::as_ref).collect();

        let decision = decide(&job, &owned_refs, Timestamp::now());
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &key.namespace);
        if decision.delete_job {
            debug!("ttlSecondsAfterFinished passed; deleting the job");
            let params = DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            };
            return match jobs.delete(&key.name, &params).await {
                Ok(_) => Ok(Requeue::Never),
                Err(error) if kube_status_is(&error, 404) => Ok(Requeue::Never),
                Err(error) => Err(error.into()),
            };
        }
        let manage_result = self.manage_pods(&job, &pods, &decision).await;

        if job.status.as_ref() != Some(&decision.status) {
            let mut published = job.as_ref().clone();
            published.status = Some(decision.status.clone());
            jobs.replace_status(&key.name, &PostParams::default(), &published)
                .await?;
            if let Some((condition, reason, message)) = &decision.finished {
                let type_ = if *condition == "Failed" {
                    EventType::Warning
                } else {
                    EventType::Normal
                };
                events::record(
                    &self.client,
                    COMPONENT,
                    job.as_ref(),
                    type_,
                    reason,
                    message,
                )
                .await;
            }
        }
        manage_result?;
        Ok(decision
            .requeue_after
            .map_or(Requeue::Never, Requeue::After))
    }
}

impl JobController {
    /// Deletes and creates the pods the decision names, recording expectations first (the
    /// watch may report a pod before the request returns).
    async fn manage_pods(&self, job: &Job, pods: &Api<Pod>, decision: &Decision) -> Result<()> {
        let job_key = ObjectKey::of(job).to_string();
        let namespace = job.metadata.namespace.as_deref().unwrap_or_default();
        let mut failure: Option<kube::Error> = None;

        if !decision.delete.is_empty() {
            let keys: Vec<String> = decision
                .delete
                .iter()
                .map(|name| format!("{namespace}/{name}"))
                .collect();
            self.expectations.expect_deletions(&job_key, keys.clone());
            let params = DeleteParams::default();
            let results = join_all(
                decision
                    .delete
                    .iter()
                    .map(|name| pods.delete(name, &params)),
            )
            .await;
            for ((result, pod_key), name) in results.into_iter().zip(&keys).zip(&decision.delete) {
                match result {
                    Ok(_) => {
                        events::record(
                            &self.client,
                            COMPONENT,
                            job,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {name}"),
                        )
                        .await
                    }
                    Err(error) => {
                        self.expectations.deletion_observed(&job_key, pod_key);
                        if !kube_status_is(&error, 404) {
                            failure.get_or_insert(error);
                        }
                    }
                }
            }
        }

        if !decision.create.is_empty() {
            self.expectations
                .expect_creations(&job_key, decision.create.len());
            let post = PostParams::default();
            let new_pods: Vec<Pod> = decision
                .create
                .iter()
                .map(|index| pod_for_job(job, *index))
                .collect();
            let results = join_all(new_pods.iter().map(|pod| pods.create(&post, pod))).await;
            for result in results {
                match result {
                    Ok(created) => {
                        let name = created.metadata.name.unwrap_or_default();
                        events::record(
                            &self.client,
                            COMPONENT,
                            job,
                            EventType::Normal,
                            "SuccessfulCreate",
                            &format!("Created pod: {name}"),
                        )
                        .await;
                    }
                    Err(error) => {
                        // A failed create is never observed.
                        self.expectations.creation_observed(&job_key);
                        failure.get_or_insert(error);
                    }
                }
            }
        }
        failure.map_or(Ok(()), |error| Err(error.into()))
    }
}

/// A pod for `job` from its template; for Indexed Jobs, for completion `index`: named
/// `<job>-<index>-<random>`, with the index as annotation, label, host name and
/// `JOB_COMPLETION_INDEX` in every container, as upstream creates them.
pub fn pod_for_job(job: &Job, index: Option<i32>) -> Pod {
    let job_name = job.metadata.name.clone().unwrap_or_default();
    let template = job
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut pod = Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{job_name}-")),
            namespace: job.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: template_meta.annotations,
            finalizers: template_meta.finalizers,
            owner_references: Some(vec![controller_ref(job)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    };
    if let Some(index) = index {
        let index_text = index.to_string();
        pod.metadata.generate_name = Some(format!("{job_name}-{index}-"));
        pod.metadata
            .annotations
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX_ANNOTATION.into(), index_text.clone());
        pod.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert(COMPLETION_INDEX_ANNOTATION.into(), index_text);
        if let Some(spec) = pod.spec.as_mut() {
            spec.hostname
                .get_or_insert_with(|| format!("{job_name}-{index}"));
            let env = EnvVar {
                name: "JOB_COMPLETION_INDEX".into(),
                value: None,
                value_from: Some(EnvVarSource {
                    field_ref: Some(ObjectFieldSelector {
                        api_version: Some("v1".into()),
                        field_path: format!(
                            "metadata.annotations['{COMPLETION_INDEX_ANNOTATION}']"
                        ),
                    }),
                    ..Default::default()
                }),
            };
            for container in spec
                .init_containers
                .iter_mut()
                .flatten()
                .chain(spec.containers.iter_mut())
            {
                let vars = container.env.get_or_insert_with(Vec::new);
                if !vars.iter().any(|v| v.name == env.name) {
                    vars.push(env.clone());
                }
            }
        }
    }
    pod
}
