//! The worker loop: take a key, sync it, decide from the result whether and when to retry.
//! Retry policy lives here, never in `sync` (client-go's `processNextWorkItem`/`handleErr`).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use super::{ObjectKey, WorkQueue};
use crate::Error;

/// After this many consecutive failures a key is dropped (the next event brings it back), as
/// upstream's deployment controller does.
pub const MAX_RETRIES: u32 = 15;

/// What a successful sync asks of the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Nothing: wait for the next change.
    Never,
    /// Look again after this long (a timer the object's state implies, e.g. minReadySeconds).
    After(Duration),
}

/// A controller's level-triggered sync of one key.
pub trait Reconciler: Send + Sync {
    /// The controller's name, for logs.
    fn name(&self) -> &'static str;

    /// Re-reads the object behind `key` from the caches and converges the world towards it.
    fn sync(&self, key: &ObjectKey) -> impl Future<Output = Result<Requeue, Error>> + Send;
}

/// Runs `workers` concurrent workers on `queue` until `cancel` fires. The workers are futures
/// of this one task: nothing is spawned, and a worker stops only between keys.
pub async fn run_workers<R: Reconciler>(
    reconciler: &R,
    queue: &WorkQueue<ObjectKey>,
    workers: usize,
    cancel: &CancellationToken,
) {
    let workers = (0..workers.max(1)).map(|_| async {
        while let Some(key) = queue.get(cancel).await {
            process(reconciler, queue, key).await;
        }
    });
    futures::future::join_all(workers).await;
}

async fn process<R: Reconciler>(reconciler: &R, queue: &WorkQueue<ObjectKey>, key: ObjectKey) {
    let span = info_span!("reconcile", controller = reconciler.name(), object.ref = %key);
    let result = reconciler.sync(&key).instrument(span.clone()).await;
    let _entered = span.enter();
    match result {
        Ok(Requeue::Never) => queue.forget(&key),
        Ok(Requeue::After(delay)) => {
            queue.forget(&key);
            queue.add_after(key.clone(), delay);
        }
        Err(error) if error.is_conflict() => {
            // Our cache was stale: look again once the watch has caught up.
            debug!(%error, "conflict; requeueing");
            queue.add_rate_limited(key.clone());
        }
        Err(error) => {
            let retries = queue.num_requeues(&key);
            if retries < MAX_RETRIES {
                let delay = queue.add_rate_limited(key.clone());
                warn!(error = %crate::error::Chain(&error), retries, delay_ms = delay.as_millis() as u64, "sync failed; retrying");
            } else {
                queue.forget(&key);
                warn!(error = %crate::error::Chain(&error), retries, "sync failed too often; dropping the key until its next change");
            }
        }
    }
    queue.done(&key);
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use parking_lot::Mutex;

    use super::*;

    /// Fails with 409 Conflict a given number of times, then succeeds.
    struct Flaky {
        conflicts_left: AtomicU32,
        calls: Mutex<Vec<ObjectKey>>,
    }

    impl Reconciler for Flaky {
        fn name(&self) -> &'static str {
            "flaky"
        }

        async fn sync(&self, key: &ObjectKey) -> Result<Requeue, Error> {
            self.calls.lock().push(key.clone());
            let left = self.conflicts_left.load(Ordering::SeqCst);
            if left > 0 {
                self.conflicts_left.store(left - 1, Ordering::SeqCst);
                let status = kube::core::Status {
                    code: 409,
                    reason: "Conflict".into(),
                    ..Default::default()
                };
                return Err(Error::Api(kube::Error::Api(Box::new(status))));
            }
            Ok(Requeue::Never)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn conflicts_are_requeued_with_backoff_then_forgotten() {
        let reconciler = Flaky {
            conflicts_left: AtomicU32::new(2),
            calls: Mutex::new(Vec::new()),
        };
        let queue = WorkQueue::default();
        let cancel = CancellationToken::new();
        let key = ObjectKey::new("ns", "a");
        queue.add(key.clone());
        tokio::join!(run_workers(&reconciler, &queue, 2, &cancel), async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        });
        assert_eq!(
            reconciler.calls.lock().len(),
            3,
            "two conflicts, then success"
        );
        assert_eq!(queue.num_requeues(&key), 0, "success forgets the failures");
        assert!(queue.is_empty());
    }
}
