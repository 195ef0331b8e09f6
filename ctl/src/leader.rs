//! Leader election on a coordination.k8s.io Lease, as client-go's `leaderelection` does it, so
//! several `tug scheduler`s or `tug controllers` can run for availability with one acting.
//!
//! A candidate takes the Lease when it is free, held by nobody, or not renewed for its
//! duration as measured by *this* process's clock since it last saw the record change (so
//! clock skew between machines does not matter). A standby watches the Lease, so it sees each
//! renewal as it happens, and tries again the moment the holder's term runs out rather than at
//! its next poll: a dead leader is replaced one lease duration after its last renewal, not up
//! to two retry periods later as client-go's polling does. The leader renews every retry period; if it
//! cannot within the renew deadline, or sees another holder (it was frozen, say), it stops its
//! work at once, waits for it to end, and becomes a candidate again. Every write carries the
//! resourceVersion it read, so two candidates never both win: the loser gets a 409.

use std::future::Future;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::Api;
use kube::api::PostParams;
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Where the Lease is and how long its terms are (client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This candidate's identity in `holderIdentity`: unique per process.
    pub identity: String,
    /// How long a Lease holds without renewal before others may take it.
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it gives up leading.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and the leader renews.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// The upstream timings for the Lease `kube-system/<name>`, identified by host name and a
    /// random suffix as kube-controller-manager does.
    pub fn new(name: &str) -> LeaseConfig {
        let host = std::fs::read_to_string("/etc/hostname")
            .ok()
            .map(|h| h.trim().to_owned())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "tugboat".to_owned());
        LeaseConfig {
            namespace: "kube-system".to_owned(),
            name: name.to_owned(),
            identity: format!("{host}_{}", random_suffix()),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

fn random_suffix() -> String {
    // Enough entropy to tell processes apart; no extra dependency for it.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{:08x}{:05x}", std::process::id(), nanos & 0xfffff)
}

/// Runs `work` only while this process leads; until `shutdown`. `work` gets a token that is
/// cancelled when leadership is lost or on shutdown, and must return soon after. It is started
/// again each time leadership is regained. Returns `work`'s error if it fails while leading.
pub async fn run_while_leading<F, Fut>(
    client: kube::Client,
    config: LeaseConfig,
    shutdown: CancellationToken,
    mut work: F,
) -> anyhow::Result<()>
where
    F: FnMut(CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut elector = Elector::new(client, config);
    loop {
        tracing::info!(lease = %elector.config.name, identity = %elector.config.identity, "waiting to lead");
        if !elector.acquire(&shutdown).await {
            return Ok(());
        }
        tracing::info!(lease = %elector.config.name, identity = %elector.config.identity, "leading");
        let leading = shutdown.child_token();
        let working = work(leading.clone());
        tokio::pin!(working);
        let outcome = tokio::select! {
            result = &mut working => Some(result),
            () = elector.keep_renewing(&shutdown) => None,
        };
        match outcome {
            Some(result) => {
                // The work ended by itself: on shutdown, or failed. Either way, let another lead.
                elector.release().await;
                return result;
            }
            None if shutdown.is_cancelled() => {
                leading.cancel();
                let result = working.await;
                elector.release().await;
                return result;
            }
            None => {
                tracing::warn!(lease = %elector.config.name, identity = %elector.config.identity, "lost the lease; stopping work");
                leading.cancel();
                working.await?;
            }
        }
    }
}

/// Re-watches a retry period after each failure, not backing off further: a standby must see
/// renewals again soon after its API server comes back, and one request per retry period is
/// what client-go's polling candidates cost anyway.
struct EveryRetryPeriod(Duration);

impl Iterator for EveryRetryPeriod {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(self.0)
    }
}

impl Backoff for EveryRetryPeriod {
    fn reset(&mut self) {}
}

/// The outcome of one try to acquire or renew.
#[derive(Debug, PartialEq, Eq)]
enum Attempt {
    /// We hold the Lease now.
    Held,
    /// Somebody else holds a live Lease.
    HeldByOther(String),
    /// The API could not be reached or the write lost a race: try again.
    Failed,
}

struct Elector {
    leases: Api<Lease>,
    config: LeaseConfig,
    /// The last record seen and when (by our clock) it was first seen: the other holder's
    /// lease runs from then.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    fn new(client: kube::Client, config: LeaseConfig) -> Elector {
        Elector {
            leases: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// Tries until we hold the Lease (true) or shutdown (false): every retry period while the
    /// API fails, and otherwise when the holder's term runs out, as the watch on the Lease
    /// keeps that term up to date.
    async fn acquire(&mut self, shutdown: &CancellationToken) -> bool {
        let changes = watcher(
            self.leases.clone(),
            watcher::Config::default().fields(&format!("metadata.name={}", self.config.name)),
        )
        .backoff(EveryRetryPeriod(self.config.retry_period));
        let mut changes = std::pin::pin!(changes);
        let mut watching = true;
        loop {
            let next_try = match self.try_acquire_or_renew().await {
                Attempt::Held => return true,
                Attempt::HeldByOther(_) => self.term_ends().unwrap_or_else(|| self.retry_at()),
                Attempt::Failed => self.retry_at(),
            };
            // Renewals seen on the watch push the next try back, up to a retry period; a
            // released or deleted Lease brings it forward. Trying every retry period anyway,
            // as client-go does, bounds how late a renewal is seen while the watch is down
            // (backing off after its API server went away, say).
            let mut next_try = next_try.min(self.retry_at());
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return false,
                    () = tokio::time::sleep_until(next_try) => break,
                    change = changes.next(), if watching => match change {
                        Some(Ok(watcher::Event::Apply(lease) | watcher::Event::InitApply(lease))) => {
                            self.observe(lease.spec.unwrap_or_default());
                            match self.term_ends() {
                                Some(end) => next_try = end.min(self.retry_at()),
                                None => break,
                            }
                        }
                        Some(Ok(watcher::Event::Delete(_))) => break,
                        // The watcher re-lists by itself after errors, backing off.
                        Some(Ok(_) | Err(_)) => {}
                        None => watching = false,
                    },
                }
            }
        }
    }

    fn retry_at(&self) -> Instant {
        Instant::now() + self.config.retry_period
    }

    /// Records `spec` as seen now, unless it is the record seen last.
    fn observe(&mut self, spec: LeaseSpec) -> Instant {
        match &self.observed {
            Some((seen, at)) if *seen == spec => *at,
            _ => {
                let at = Instant::now();
                self.observed = Some((spec, at));
                at
            }
        }
    }

    /// When the term of the holder last observed ends by our clock (`None`: nobody holds it).
    fn term_ends(&self) -> Option<Instant> {
        let (spec, seen_at) = self.observed.as_ref()?;
        if spec
            .holder_identity
            .as_deref()
            .unwrap_or_default()
            .is_empty()
        {
            return None;
        }
        Some(*seen_at + self.term(spec))
    }

    fn term(&self, spec: &LeaseSpec) -> Duration {
        spec.lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map_or(self.config.lease_duration, Duration::from_secs)
    }

    /// Renews every retry period; returns when leadership is lost or on shutdown.
    async fn keep_renewing(&mut self, shutdown: &CancellationToken) {
        let mut last_renewed = Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            // Frozen past the deadline (SIGSTOP, a stalled host): others may lead already.
            if last_renewed.elapsed() > self.config.renew_deadline {
                return;
            }
            match self.try_acquire_or_renew().await {
                Attempt::Held => last_renewed = Instant::now(),
                Attempt::HeldByOther(holder) => {
                    tracing::warn!(lease = %self.config.name, %holder, "another candidate holds the lease");
                    return;
                }
                Attempt::Failed if last_renewed.elapsed() > self.config.renew_deadline => return,
                Attempt::Failed => {}
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Attempt {
        let now = Timestamp::now();
        let duration_secs = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(15);
        let existing = match self.leases.get_opt(&self.config.name).await {
            Ok(existing) => existing,
            Err(error) => {
                tracing::debug!(lease = %self.config.name, %error, "cannot read the lease");
                return Attempt::Failed;
            }
        };
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            return match self.leases.create(&PostParams::default(), &lease).await {
                Ok(_) => Attempt::Held,
                Err(error) => {
                    tracing::debug!(lease = %self.config.name, %error, "cannot create the lease");
                    Attempt::Failed
                }
            };
        };
        let current = lease.spec.clone().unwrap_or_default();
        let holder = current.holder_identity.clone().unwrap_or_default();
        let seen_at = self.observe(current.clone());
        let ours = holder == self.config.identity;
        if !holder.is_empty() && !ours && seen_at.elapsed() < self.term(&current) {
            return Attempt::HeldByOther(holder);
        }
        let (acquire_time, transitions) = if ours {
            (current.acquire_time.clone(), current.lease_transitions)
        } else {
            (
                Some(MicroTime(now)),
                Some(current.lease_transitions.unwrap_or(0).saturating_add(1)),
            )
        };
        lease.spec = Some(LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(duration_secs),
            acquire_time,
            renew_time: Some(MicroTime(now)),
            lease_transitions: transitions,
            ..current
        });
        // The resourceVersion read above makes this a compare-and-swap: a race loses with 409.
        match self
            .leases
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(written) => {
                if let Some(spec) = written.spec {
                    self.observed = Some((spec, Instant::now()));
                }
                Attempt::Held
            }
            Err(error) => {
                tracing::debug!(lease = %self.config.name, %error, "cannot write the lease");
                Attempt::Failed
            }
        }
    }

    /// Gives the Lease up so a standby takes over at once rather than after its term.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.leases.get_opt(&self.config.name).await else {
            return;
        };
        let Some(spec) = lease.spec.as_mut() else {
            return;
        };
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        if let Err(error) = self
            .leases
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            tracing::debug!(lease = %self.config.name, %error, "cannot release the lease");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    struct TestApi {
        client: kube::Client,
        shutdown: CancellationToken,
        running: Option<tugboat_apiserver::Running>,
        _dir: tempfile::TempDir,
    }

    impl TestApi {
        async fn start() -> TestApi {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut config = tugboat_apiserver::ApiServerConfig::new(dir.path());
            config.listen = "127.0.0.1:0".parse().expect("address");
            let shutdown = CancellationToken::new();
            let running = tugboat_apiserver::start(config, shutdown.clone())
                .await
                .expect("API server starts");
            let client = crate::components::client_from_kubeconfig(&running.kubeconfig)
                .await
                .expect("client");
            TestApi {
                client,
                shutdown,
                running: Some(running),
                _dir: dir,
            }
        }

        async fn stop(mut self) {
            self.shutdown.cancel();
            if let Some(running) = self.running.take() {
                running.stopped().await;
            }
        }
    }

    fn quick(identity: &str) -> LeaseConfig {
        LeaseConfig {
            namespace: "kube-system".into(),
            name: "test-leader".into(),
            identity: identity.into(),
            lease_duration: Duration::from_millis(1500),
            renew_deadline: Duration::from_millis(1000),
            retry_period: Duration::from_millis(100),
        }
    }

    /// Work that counts how many candidates act at once and records the most ever seen.
    #[derive(Default)]
    struct Acting {
        now: AtomicUsize,
        most: AtomicUsize,
        starts: AtomicUsize,
    }

    impl Acting {
        async fn work(self: Arc<Self>, leading: CancellationToken) -> anyhow::Result<()> {
            let at_once = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(at_once, Ordering::SeqCst);
            self.starts.fetch_add(1, Ordering::SeqCst);
            leading.cancelled().await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        }
    }

    async fn holder(client: &kube::Client) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        leases
            .get_opt("test-leader")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    }

    async fn wait_for_holder(client: &kube::Client, want: &str, within: Duration) -> Duration {
        let start = Instant::now();
        while start.elapsed() < within {
            if holder(client).await.as_deref() == Some(want) {
                return start.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{want} did not take the lease within {within:?} (holder: {:?})",
            holder(client).await
        );
    }

    fn candidate(
        api: &TestApi,
        identity: &str,
        acting: &Arc<Acting>,
    ) -> (
        CancellationToken,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let stop = CancellationToken::new();
        let acting = Arc::clone(acting);
        let task = tokio::spawn(run_while_leading(
            api.client.clone(),
            quick(identity),
            stop.clone(),
            move |leading| Arc::clone(&acting).work(leading),
        ));
        (stop, task)
    }

    #[tokio::test]
    async fn one_leads_and_a_standby_takes_over_when_it_stops() {
        let api = TestApi::start().await;
        let acting = Arc::new(Acting::default());
        let (stop_a, task_a) = candidate(&api, "a", &acting);
        wait_for_holder(&api.client, "a", Duration::from_secs(5)).await;
        let (stop_b, task_b) = candidate(&api, "b", &acting);
        // b stays a standby while a renews, for several lease terms.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(holder(&api.client).await.as_deref(), Some("a"));
        assert_eq!(acting.most.load(Ordering::SeqCst), 1);

        // A clean stop releases the lease: b takes it well within one term.
        stop_a.cancel();
        task_a.await.expect("join").expect("a ends cleanly");
        let took = wait_for_holder(&api.client, "b", Duration::from_secs(5)).await;
        assert!(took < Duration::from_millis(1500), "took {took:?}");
        stop_b.cancel();
        task_b.await.expect("join").expect("b ends cleanly");
        assert_eq!(acting.most.load(Ordering::SeqCst), 1);
        assert_eq!(acting.starts.load(Ordering::SeqCst), 2);
        api.stop().await;
    }

    #[tokio::test]
    async fn a_killed_leader_is_replaced_one_lease_duration_after_its_last_renewal() {
        let api = TestApi::start().await;
        let acting = Arc::new(Acting::default());
        // Retries far apart: a standby that only polled would see the expiry up to two
        // retry periods late (its observation and its next try); the watch removes both.
        let slow = |identity: &str| LeaseConfig {
            lease_duration: Duration::from_millis(3000),
            renew_deadline: Duration::from_millis(2000),
            retry_period: Duration::from_millis(1000),
            ..quick(identity)
        };
        let start = |identity: &str| {
            let acting = Arc::clone(&acting);
            tokio::spawn(run_while_leading(
                api.client.clone(),
                slow(identity),
                CancellationToken::new(),
                move |leading| Arc::clone(&acting).work(leading),
            ))
        };
        let task_a = start("a");
        wait_for_holder(&api.client, "a", Duration::from_secs(5)).await;
        let task_b = start("b");
        tokio::time::sleep(Duration::from_millis(4500)).await;
        assert_eq!(holder(&api.client).await.as_deref(), Some("a"));
        // Killed: a's future is dropped between renewals and never releases the Lease.
        task_a.abort();
        let _ = task_a.await;
        let leases: Api<Lease> = Api::namespaced(api.client.clone(), "kube-system");
        let last_renewal = leases
            .get("test-leader")
            .await
            .expect("lease")
            .spec
            .expect("spec");
        assert_eq!(last_renewal.holder_identity.as_deref(), Some("a"));
        wait_for_holder(&api.client, "b", Duration::from_secs(5)).await;
        let taken = leases
            .get("test-leader")
            .await
            .expect("lease")
            .spec
            .expect("spec");
        let renewed = last_renewal.renew_time.expect("renewed").0;
        let acquired = taken.acquire_time.expect("acquired").0;
        let gap = Duration::try_from(acquired.duration_since(renewed)).expect("after");
        let lease = slow("b").lease_duration;
        assert!(
            gap >= lease && gap < lease + Duration::from_millis(400),
            "b took the lease {gap:?} after a's last renewal (lease duration {lease:?})"
        );
        task_b.abort();
        let _ = task_b.await;
        api.stop().await;
    }

    // Several threads: the API server must keep serving while candidate a's thread is frozen
    // and while the test waits for that thread to end.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frozen_leader_is_replaced_and_steps_down_when_it_resumes() {
        let api = TestApi::start().await;
        let acting = Arc::new(Acting::default());
        // Candidate a runs on its own thread's runtime so the test can freeze it as SIGSTOP
        // would: nothing of it runs while the thread sleeps. It has its own client, as another
        // process would (a shared one's pooled connections would freeze with it).
        let kubeconfig = api.running.as_ref().expect("running").kubeconfig.clone();
        let acting_a = Arc::clone(&acting);
        let (freeze_tx, freeze_rx) = std::sync::mpsc::channel::<Duration>();
        let stop_a = CancellationToken::new();
        let stop = stop_a.clone();
        let frozen_thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let client = crate::components::client_from_kubeconfig(&kubeconfig).await?;
                let elect = run_while_leading(client, quick("a"), stop, move |leading| {
                    Arc::clone(&acting_a).work(leading)
                });
                let freezer = async {
                    loop {
                        if let Ok(pause) = freeze_rx.try_recv() {
                            std::thread::sleep(pause);
                        }
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                };
                tokio::select! {
                    result = elect => result,
                    () = freezer => Ok(()),
                }
            })
        });
        wait_for_holder(&api.client, "a", Duration::from_secs(5)).await;
        let (stop_b, task_b) = candidate(&api, "b", &acting);
        tokio::time::sleep(Duration::from_millis(500)).await;

        freeze_tx.send(Duration::from_secs(4)).expect("freeze a");
        let took = wait_for_holder(&api.client, "b", Duration::from_secs(6)).await;
        assert!(
            took < Duration::from_millis(3500),
            "b took over after {took:?}"
        );
        // Once a resumes it sees b's lease and stops acting; b keeps it.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(holder(&api.client).await.as_deref(), Some("b"));
        assert_eq!(acting.now.load(Ordering::SeqCst), 1, "one leader acts");

        stop_a.cancel();
        // Joined off the runtime: a releases its lease through the API server as it ends.
        tokio::task::spawn_blocking(move || frozen_thread.join())
            .await
            .expect("join task")
            .expect("thread")
            .expect("a ends cleanly");
        stop_b.cancel();
        task_b.await.expect("join").expect("b ends cleanly");
        api.stop().await;
    }
}
