//! One CronJob's sync: decide, delete what must go, start the Job that is due, publish status.

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::{DeleteParams, PostParams, PropagationPolicy};
use tracing::debug;

use super::CronJobController;
use super::decide::{decide, job_name, job_ref};
use crate::Result;
use crate::error::kube_status_is;
use crate::framework::events::{self, EventType};
use crate::framework::ownership::controller_ref;
use crate::framework::{ObjectKey, Reconciler, Requeue};

const COMPONENT: &str = "cronjob-controller";

/// The annotation upstream puts on each Job with the time it was scheduled for.
pub const SCHEDULED_TIMESTAMP_ANNOTATION: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

impl Reconciler for CronJobController {
    fn name(&self) -> &'static str {
        "cronjob"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        let Some(cron_job) = self.cached_cron_job(key) else {
            debug!("cronjob is gone");
            return Ok(Requeue::Never);
        };
        let owned = self.owned_jobs(&cron_job);
        let owned_refs: Vec<&Job> = owned.iter().map(AsRef::as_ref).collect();
        let mut decision = decide(&cron_job, &owned_refs, (self.now)());
        let jobs: Api<Job> = Api::namespaced(self.client.clone(), &key.namespace);
        let background = DeleteParams {
            propagation_policy: Some(PropagationPolicy::Background),
            ..DeleteParams::default()
        };

        for (type_, reason, message) in &decision.events {
            events::record(
                &self.client,
                COMPONENT,
                cron_job.as_ref(),
                *type_,
                reason,
                message,
            )
            .await;
        }
        for name in decision
            .delete_history
            .iter()
            .chain(&decision.delete_active)
        {
            match jobs.delete(name, &background).await {
                Ok(_) => {
                    events::record(
                        &self.client,
                        COMPONENT,
                        cron_job.as_ref(),
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted job {name}"),
                    )
                    .await
                }
                Err(error) if kube_status_is(&error, 404) => {}
                Err(error) => return Err(error.into()),
            }
        }
        if let Some(scheduled) = decision.create {
            let job = job_for(&cron_job, scheduled);
            match jobs.create(&PostParams::default(), &job).await {
                Ok(created) => {
                    // Active at once, as upstream records it: the job cache may lag.
                    let active = decision.status.active.get_or_insert_with(Vec::new);
                    active.push(job_ref(&created));
                    active.sort_by(|a, b| a.name.cmp(&b.name));
                    let name = created.metadata.name.unwrap_or_default();
                    events::record(
                        &self.client,
                        COMPONENT,
                        cron_job.as_ref(),
                        EventType::Normal,
                        "SuccessfulCreate",
                        &format!("Created job {name}"),
                    )
                    .await;
                }
                // Made before (our cache lagged): it counts as started.
                Err(error) if kube_status_is(&error, 409) => {}
                Err(error) => {
                    events::record(
                        &self.client,
                        COMPONENT,
                        cron_job.as_ref(),
                        EventType::Warning,
                        "FailedCreate",
                        &format!("Error creating job: {error}"),
                    )
                    .await;
                    return Err(error.into());
                }
            }
        }
        if cron_job.status.as_ref() != Some(&decision.status) {
            let mut published = cron_job.as_ref().clone();
            published.status = Some(decision.status.clone());
            Api::<CronJob>::namespaced(self.client.clone(), &key.namespace)
                .replace_status(&key.name, &PostParams::default(), &published)
                .await?;
        }
        Ok(decision
            .requeue_after
            .map_or(Requeue::Never, Requeue::After))
    }
}

/// The Job a CronJob starts for `scheduled`: its jobTemplate, named for the time, owned by it.
pub fn job_for(cron_job: &CronJob, scheduled: Timestamp) -> Job {
    let name = cron_job.metadata.name.clone().unwrap_or_default();
    let template = cron_job
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let template_meta = template.metadata.unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.insert(SCHEDULED_TIMESTAMP_ANNOTATION.into(), scheduled.to_string());
    Job {
        metadata: ObjectMeta {
            name: Some(job_name(&name, scheduled)),
            namespace: cron_job.metadata.namespace.clone(),
            labels: template_meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![controller_ref(cron_job)]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}
