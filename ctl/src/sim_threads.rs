//! The simulated nodes' own threads. Simulated nodes stand in for other machines: on a real
//! cluster their kubelets would not take the control plane's CPU. Run in the same process,
//! they get a tokio runtime of their own whose threads have a lower CPU priority (a higher
//! nice value), so the API server, the scheduler and the controllers keep the CPU they need
//! when both are busy, and the nodes catch up when they are not. Their heartbeats stay on the
//! control plane's runtime (`SharedByNodes::heartbeat_on`): a starved Lease would make the node
//! lifecycle controller take a healthy node for dead.

use std::future::Future;

use anyhow::Context as _;
use tokio::runtime::{Handle, Runtime};
use tokio::task::JoinHandle;
use tokio_util::task::TaskTracker;

/// How much nicer than the control plane the simulated nodes' threads are: CFS then gives
/// them about a tenth of a core's time while a control-plane thread on it is runnable
/// (weights 110 against 1024).
const SIM_NODES_NICE: i32 = 10;

/// The lowest priority there is.
const MAX_NICE: i32 = 19;

/// A runtime for the simulated nodes' tasks. Dropped, it stops its threads without waiting
/// (a runtime dropped the plain way would panic in async code).
pub struct SimThreads {
    /// Always `Some` until dropped.
    runtime: Option<Runtime>,
    tasks: TaskTracker,
}

impl SimThreads {
    /// As many worker threads as the machine has cores, [`SIM_NODES_NICE`] nicer than the
    /// calling thread.
    pub fn start() -> anyhow::Result<SimThreads> {
        let workers = std::thread::available_parallelism().map_or(2, usize::from);
        // From our own: threads inherit their creator's nice value, and the runtime's blocking
        // threads are created by its (already lowered) workers.
        let nice = rustix::process::getpriority_process(Some(rustix::thread::gettid()))
            .map_or(SIM_NODES_NICE, |ours| (ours + SIM_NODES_NICE).min(MAX_NICE));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .thread_name("sim-nodes")
            .on_thread_start(move || set_this_threads_nice(nice))
            .enable_all()
            .build()
            .context("cannot start the simulated nodes' threads")?;
        Ok(SimThreads {
            runtime: Some(runtime),
            tasks: TaskTracker::new(),
        })
    }

    /// Where to build what the nodes use (their API clients spawn their workers on it).
    pub fn handle(&self) -> Handle {
        match &self.runtime {
            Some(runtime) => runtime.handle().clone(),
            None => Handle::current(),
        }
    }

    /// Run `task` on the simulated nodes' threads.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tasks.spawn_on(task, &self.handle())
    }

    /// Once every spawned task has ended, stop the threads.
    pub async fn finish(self) {
        self.tasks.close();
        self.tasks.wait().await;
    }
}

impl Drop for SimThreads {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Set the calling thread's nice value (Linux's is per thread). Lowering a priority needs
/// no privilege; when it fails all the same, the nodes merely compete as equals.
fn set_this_threads_nice(nice: i32) {
    let thread = Some(rustix::thread::gettid());
    if let Err(error) = rustix::process::setpriority_process(thread, nice) {
        tracing::debug!(%error, "cannot lower the priority of a simulated node thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the calling thread.
    fn this_threads_nice() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid()))
            .expect("getpriority of this thread")
    }

    #[tokio::test]
    async fn tasks_run_on_lower_priority_threads_and_finish_stops_them() {
        let ours = this_threads_nice();
        let threads = SimThreads::start().unwrap();
        let theirs = threads.spawn(async { this_threads_nice() }).await.unwrap();
        assert_eq!(theirs, (ours + SIM_NODES_NICE).min(MAX_NICE));
        // Blocking work of the nodes (file writes) is on lower-priority threads too.
        let blocking = threads
            .spawn(async {
                tokio::task::spawn_blocking(this_threads_nice)
                    .await
                    .unwrap()
            })
            .await
            .unwrap();
        assert_eq!(blocking, theirs);
        // Our own thread is untouched.
        assert_eq!(this_threads_nice(), ours);

        let stop = tokio_util::sync::CancellationToken::new();
        let waiting = threads.spawn({
            let stop = stop.clone();
            async move { stop.cancelled().await }
        });
        let finished = tokio::spawn(threads.finish());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!finished.is_finished(), "finish waits for the tasks");
        stop.cancel();
        tokio::time::timeout(std::time::Duration::from_secs(5), finished)
            .await
            .expect("finish returns once the tasks end")
            .unwrap();
        waiting.await.unwrap();
    }
}
