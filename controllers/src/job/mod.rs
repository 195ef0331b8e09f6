//! The Job controller: runs a Job's pods to completion (completions, parallelism, Indexed
//! mode), backs off after failures, fails the Job past its backoff limit or active deadline,
//! suspends and resumes it, and deletes it once `ttlSecondsAfterFinished` has passed
//! (upstream's `pkg/controller/job` and `pkg/controller/ttlafterfinished`).
//!
//! `mod.rs` wires informers to the queue; `sync.rs` converges one Job; `decide.rs` is the pure
//! decision.

pub mod decide;
mod sync;

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;
use tracing::info;
use tugboat_api::selector::Selector;

use crate::framework::ownership::{cached_controller, controller_of};
use crate::framework::runner::run_workers;
use crate::framework::{Change, Expectations, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Settings of the Job controller.
#[derive(Debug, Clone)]
pub struct JobConfig {
    /// Concurrent syncs (upstream `--concurrent-job-syncs`, default 5).
    pub workers: usize,
}

impl Default for JobConfig {
    fn default() -> Self {
        Self { workers: 5 }
    }
}

/// See the module documentation.
pub struct JobController {
    client: Client,
    jobs: Store<Job>,
    pods: Store<Pod>,
    queue: WorkQueue<ObjectKey>,
    expectations: Expectations,
    config: JobConfig,
}

/// Runs the Job controller, with informers of its own, until `cancel` fires.
pub async fn run(client: Client, config: JobConfig, cancel: CancellationToken) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the Job controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: JobConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let job_informer = informers.informer::<Job>();
    let pod_informer = informers.informer::<Pod>();
    let controller = JobController::new(
        informers.client().clone(),
        job_informer.store(),
        pod_informer.store(),
        config,
    );
    let workers = async {
        controller.wait_for_caches(&cancel).await?;
        info!("job controller caches synced; starting workers");
        run_workers(
            &controller,
            &controller.queue,
            controller.config.workers,
            &cancel,
        )
        .await;
        Ok::<_, Error>(())
    };
    let (result, (), ()) = tokio::join!(
        workers,
        job_informer.run(|change| controller.on_job_change(change), &cancel),
        pod_informer.run(|change| controller.on_pod_change(change), &cancel),
    );
    controller.queue.shut_down();
    result
}

impl JobController {
    /// A controller reading the given caches and writing through `client`.
    pub fn new(client: Client, jobs: Store<Job>, pods: Store<Pod>, config: JobConfig) -> Self {
        Self {
            client,
            jobs,
            pods,
            queue: WorkQueue::default(),
            expectations: Expectations::default(),
            config,
        }
    }

    /// The controller's work queue (tests drive syncs through it).
    pub fn queue(&self) -> &WorkQueue<ObjectKey> {
        &self.queue
    }

    async fn wait_for_caches(&self, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            () = cancel.cancelled() => Err(Error::CacheNotSynced("job")),
            ready = async {
                self.jobs.wait_until_ready().await?;
                self.pods.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced("job")),
        }
    }

    fn on_job_change(&self, change: Change<Job>) {
        match change {
            Change::Added(job) | Change::Updated { new: job, .. } => {
                self.queue.add(ObjectKey::of(job.as_ref()))
            }
            Change::Deleted(job) => {
                let key = ObjectKey::of(job.as_ref());
                self.expectations.delete(&key.to_string());
                self.queue.add(key);
            }
        }
    }

    fn on_pod_change(&self, change: Change<Pod>) {
        match change {
            Change::Added(pod) => match self.controlling_job(&pod) {
                Some(owner) => {
                    if pod.metadata.deletion_timestamp.is_none() {
                        self.expectations.creation_observed(&owner.to_string());
                    } else {
                        self.expectations.deletion_observed(
                            &owner.to_string(),
                            &ObjectKey::of(pod.as_ref()).to_string(),
                        );
                    }
                    self.queue.add(owner);
                }
                None => self.enqueue_possible_adopters(&pod),
            },
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                if let Some(owner) = self.controlling_job(&new) {
                    if new.metadata.deletion_timestamp.is_some() {
                        self.expectations.deletion_observed(
                            &owner.to_string(),
                            &ObjectKey::of(new.as_ref()).to_string(),
                        );
                    }
                    self.queue.add(owner);
                } else if old.metadata.labels != new.metadata.labels {
                    self.enqueue_possible_adopters(&new);
                }
                if let Some(previous) = self.controlling_job(&old)
                    && controller_of(&old.metadata).map(|r| &r.uid)
                        != controller_of(&new.metadata).map(|r| &r.uid)
                {
                    self.queue.add(previous);
                }
            }
            Change::Deleted(pod) => {
                if let Some(owner) = self.controlling_job(&pod) {
                    self.expectations.deletion_observed(
                        &owner.to_string(),
                        &ObjectKey::of(pod.as_ref()).to_string(),
                    );
                    self.queue.add(owner);
                }
            }
        }
    }

    /// The Job the pod's controller reference points at, if it is cached with the same UID.
    fn controlling_job(&self, pod: &Pod) -> Option<ObjectKey> {
        cached_controller(&self.jobs, &pod.metadata)
    }

    /// Every Job whose selector matches an orphan pod: one of them may adopt it.
    fn enqueue_possible_adopters(&self, pod: &Pod) {
        let namespace = pod.metadata.namespace.as_deref();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for job in self.jobs.state() {
            if job.metadata.namespace.as_deref() != namespace {
                continue;
            }
            let selector = job.spec.as_ref().and_then(|s| s.selector.as_ref());
            let Ok(selector) = Selector::from_label_selector(selector) else {
                continue;
            };
            if !selector.is_everything() && selector.matches(&labels) {
                self.queue.add(ObjectKey::of(job.as_ref()));
            }
        }
    }

    fn cached_job(&self, key: &ObjectKey) -> Option<Arc<Job>> {
        self.jobs
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }
}
