//! The agent: registers the node, then runs the node keeper, the pod watch, the sweep for
//! orphaned sandboxes, the stats loop and the sync workers until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tugboat_runtime::Runtime;

use crate::config::AgentConfig;
use crate::error::Result;
use crate::host;
use crate::node::NodeKeeper;
use crate::nodewatch::NodeStatuses;
use crate::podwatch::{PodFeed, PodWatch};
use crate::queue::WorkQueue;
use crate::stats::{NodeUsage, StatsLoop};
use crate::sync::{PodKey, PodSyncer};

/// How long to wait before retrying node registration.
const REGISTER_RETRY: Duration = Duration::from_secs(1);
/// Requeue delay after a failed sync.
const SYNC_ERROR_RETRY: Duration = Duration::from_secs(2);

/// Runs the node agent for `config.node_name` until `shutdown` is cancelled; returns once
/// every task it started has stopped. Containers keep running: the next start adopts them.
pub async fn run(
    client: kube::Client,
    runtime: Arc<dyn Runtime>,
    config: AgentConfig,
    shutdown: CancellationToken,
) -> Result<()> {
    run_fed(client, runtime, config, None, shutdown).await
}

/// What the simulated nodes of one process share instead of each watching or reading for
/// itself: the node's feed of a [`PodWatch`] shared by all of them, the Node statuses of one
/// watch of every Node (both watches run on their own), and the client for heartbeats.
#[derive(Clone)]
pub struct SharedByNodes {
    /// This node's pods.
    pub pods: PodFeed,
    /// Every Node's status.
    pub node_statuses: NodeStatuses,
    /// The client for the Node and Lease writes, apart from the one for pods, as kubelet's
    /// heartbeat client: thousands of pods starting at once must not delay the Leases past
    /// the node lifecycle controller's grace period.
    pub heartbeat_client: kube::Client,
    /// Where the heartbeats run, when not with the rest of the agent: the control plane's
    /// runtime of a process whose simulated nodes have threads of lower priority, so that a
    /// busy control plane cannot starve the Leases past the node lifecycle's grace period.
    pub heartbeat_on: Option<tokio::runtime::Handle>,
}

/// [`run`], with the agent's pods and Node status coming from `shared` watches, or with
/// `None` from a watch and reads of the agent's own.
pub async fn run_fed(
    client: kube::Client,
    runtime: Arc<dyn Runtime>,
    config: AgentConfig,
    shared: Option<SharedByNodes>,
    shutdown: CancellationToken,
) -> Result<()> {
    let node_ip = match config.node_ip {
        Some(ip) => ip,
        None => host::node_ip().await,
    };
    let scheme = runtime
        .version()
        .await
        .map(|v| v.runtime_name)
        .unwrap_or_else(|_| "unknown".to_string());

    let (pods, node_statuses, heartbeat_client, heartbeat_on) = match shared {
        Some(SharedByNodes {
            pods,
            node_statuses,
            heartbeat_client,
            heartbeat_on,
        }) => (
            Some(pods),
            Some(node_statuses),
            heartbeat_client,
            heartbeat_on,
        ),
        None => (None, None, client.clone(), None),
    };
    let mut keeper = NodeKeeper::new(heartbeat_client, runtime.clone(), config.clone(), node_ip);
    if let Some(statuses) = node_statuses {
        keeper = keeper.reading_status_from(statuses);
    }
    // The API server may still be starting: keep trying until it answers.
    loop {
        match Box::pin(keeper.register()).await {
            Ok(()) => break,
            Err(error) => {
                tracing::warn!(%error, node.name = %config.node_name, "cannot register the node yet");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(()),
                    () = tokio::time::sleep(REGISTER_RETRY) => {}
                }
            }
        }
    }

    let node_usage = if scheme.to_ascii_lowercase().contains("sim") {
        NodeUsage::SumOfPods
    } else {
        NodeUsage::Host
    };
    let own_watch = pods.is_none();
    let PodFeed {
        store,
        queue,
        listed,
    } = pods.unwrap_or_default();
    let stats = StatsLoop {
        client: client.clone(),
        runtime: runtime.clone(),
        node_name: config.node_name.clone(),
        cpus: config.resources.cpus,
        store: store.clone(),
        period: config.timings.stats,
        node_usage,
    };
    let (routed, routed_view) = crate::proxy::routed::channel();
    let mut syncer = PodSyncer::new(
        client.clone(),
        runtime,
        config.clone(),
        node_ip,
        scheme,
        store.clone(),
    );
    if config.proxy.is_some() {
        syncer = syncer.stopping_after_unrouted(routed_view);
    }
    let syncer = Arc::new(syncer);
    let tasks = TaskTracker::new();

    let heartbeat = keeper.keep(shutdown.clone());
    match heartbeat_on {
        Some(runtime) => tasks.spawn_on(heartbeat, &runtime),
        None => tasks.spawn(heartbeat),
    };
    tasks.spawn(stats.run(shutdown.clone()));
    if let Some(proxy_config) = config.proxy.clone() {
        let (client, shutdown) = (client.clone(), shutdown.clone());
        tasks.spawn(async move {
            // The pods still run without it; their Services just do not route here.
            let proxy = crate::proxy::run_publishing(client, proxy_config, routed, shutdown);
            if let Err(error) = proxy.await {
                tracing::error!(%error, "service proxy stopped");
            }
        });
    }
    if let Some(dns_config) = config.dns.clone() {
        let (client, shutdown) = (client.clone(), shutdown.clone());
        tasks.spawn(async move {
            // Pods still run without it; their names just do not resolve.
            if let Err(error) = crate::dns::run(client, dns_config, shutdown).await {
                tracing::error!(%error, "cluster DNS stopped");
            }
        });
    }
    if own_watch {
        let feed = PodFeed {
            store,
            queue: queue.clone(),
            listed: listed.clone(),
        };
        tasks.spawn(PodWatch::single(&config.node_name, feed).run(client, shutdown.clone()));
    }
    tasks.spawn(sweep(
        syncer.clone(),
        config.timings.orphan_sweep,
        listed,
        shutdown.clone(),
    ));
    for _ in 0..config.workers.max(1) {
        tasks.spawn(worker(syncer.clone(), queue.clone(), shutdown.clone()));
    }
    tracing::info!(node.name = %config.node_name, %node_ip, "node agent running");

    shutdown.cancelled().await;
    queue.shut_down();
    tasks.close();
    tasks.wait().await;
    tracing::info!(node.name = %config.node_name, "node agent stopped");
    Ok(())
}

/// Syncs keys from the queue until shutdown; a sync in flight is abandoned at shutdown (the
/// next start picks up where the runtime is).
async fn worker(
    syncer: Arc<PodSyncer>,
    queue: Arc<WorkQueue<PodKey>>,
    shutdown: CancellationToken,
) {
    while let Some(key) = queue.next().await {
        let span = tracing::info_span!("sync pod", pod = %key);
        let outcome = tokio::select! {
            () = shutdown.cancelled() => {
                queue.done(&key);
                return;
            }
            // Boxed: an idle worker (most of them, on simulated nodes) then holds a few bytes, not
            // the whole state of a sync.
            outcome = Box::pin(tracing::Instrument::instrument(syncer.sync(&key), span)) => outcome,
        };
        queue.done(&key);
        match outcome {
            Ok(Some(after)) => queue.add_after(key, after),
            Ok(None) => queue.forget(&key),
            Err(error) => {
                tracing::warn!(pod = %key, %error, "pod sync failed; retrying");
                queue.add_after(key, SYNC_ERROR_RETRY);
            }
        }
    }
}

/// Once the pods are listed, and then periodically, removes sandboxes whose pod is gone.
async fn sweep(
    syncer: Arc<PodSyncer>,
    period: Duration,
    listed: CancellationToken,
    shutdown: CancellationToken,
) {
    tokio::select! {
        () = shutdown.cancelled() => return,
        () = listed.cancelled() => {}
    }
    loop {
        if let Err(error) = Box::pin(syncer.sweep_orphans()).await {
            tracing::warn!(%error, "cannot sweep orphaned sandboxes");
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}
