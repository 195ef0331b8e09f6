//! The CronJob controller: starts a Job at each time of a cron schedule (in the CronJob's time
//! zone), honours the starting deadline, concurrency policy and suspend, and keeps only the
//! last successful and failed Jobs its history limits allow (upstream's
//! `pkg/controller/cronjob`).
//!
//! `mod.rs` wires informers to the queue; `sync.rs` converges one CronJob; `decide.rs` is the
//! pure decision and `schedule.rs` the cron parser.

pub mod decide;
pub mod schedule;
mod sync;

use std::sync::Arc;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::runtime::reflector::{ObjectRef, Store};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::framework::ownership::{cached_controller, controller_of};
use crate::framework::runner::run_workers;
use crate::framework::{Change, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Settings of the CronJob controller.
#[derive(Debug, Clone)]
pub struct CronJobConfig {
    /// Concurrent syncs (upstream `--concurrent-cron-job-syncs`, default 5).
    pub workers: usize,
}

impl Default for CronJobConfig {
    fn default() -> Self {
        Self { workers: 5 }
    }
}

/// See the module documentation.
pub struct CronJobController {
    client: Client,
    cron_jobs: Store<CronJob>,
    jobs: Store<Job>,
    queue: WorkQueue<ObjectKey>,
    config: CronJobConfig,
    /// The clock schedules are read against (fixed in tests).
    now: fn() -> Timestamp,
}

/// Runs the CronJob controller, with informers of its own, until `cancel` fires.
pub async fn run(client: Client, config: CronJobConfig, cancel: CancellationToken) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the CronJob controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: CronJobConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let cron_job_informer = informers.informer::<CronJob>();
    let job_informer = informers.informer::<Job>();
    let controller = CronJobController {
        client: informers.client().clone(),
        cron_jobs: cron_job_informer.store(),
        jobs: job_informer.store(),
        queue: WorkQueue::default(),
        config,
        now: Timestamp::now,
    };
    let workers = async {
        controller.wait_for_caches(&cancel).await?;
        info!("cronjob controller caches synced; starting workers");
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
        cron_job_informer.run(|change| controller.on_cron_job_change(change), &cancel),
        job_informer.run(|change| controller.on_job_change(change), &cancel),
    );
    controller.queue.shut_down();
    result
}

impl CronJobController {
    /// A controller over hand-filled caches and a fixed clock, for sync tests.
    #[cfg(test)]
    pub(crate) fn with_caches(
        client: Client,
        cron_jobs: Store<CronJob>,
        jobs: Store<Job>,
        now: fn() -> Timestamp,
    ) -> Self {
        Self {
            client,
            cron_jobs,
            jobs,
            queue: WorkQueue::default(),
            config: CronJobConfig::default(),
            now,
        }
    }

    async fn wait_for_caches(&self, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            () = cancel.cancelled() => Err(Error::CacheNotSynced("cronjob")),
            ready = async {
                self.cron_jobs.wait_until_ready().await?;
                self.jobs.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced("cronjob")),
        }
    }

    fn on_cron_job_change(&self, change: Change<CronJob>) {
        self.queue.add(ObjectKey::of(change.object().as_ref()));
    }

    fn on_job_change(&self, change: Change<Job>) {
        if let Some(owner) = self.owning_cron_job(change.object()) {
            self.queue.add(owner);
        }
    }

    fn owning_cron_job(&self, job: &Job) -> Option<ObjectKey> {
        cached_controller(&self.cron_jobs, &job.metadata)
    }

    fn cached_cron_job(&self, key: &ObjectKey) -> Option<Arc<CronJob>> {
        self.cron_jobs
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    /// The Jobs this CronJob controls, from the cache.
    fn owned_jobs(&self, cron_job: &CronJob) -> Vec<Arc<Job>> {
        let uid = cron_job.metadata.uid.as_deref();
        self.jobs
            .state()
            .into_iter()
            .filter(|job| job.metadata.namespace == cron_job.metadata.namespace)
            .filter(|job| controller_of(&job.metadata).is_some_and(|r| Some(r.uid.as_str()) == uid))
            .collect()
    }
}
