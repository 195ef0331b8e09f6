//! What `tug up` and the one-component commands (`tug scheduler`, `tug controllers`,
//! `tug agent`) share: the data dir, the connection to the API server, the controllers' flags,
//! and running components until SIGTERM or Ctrl-C.
//!
//! Every component other than the API server talks to it over HTTPS with a client made from
//! a kubeconfig, exactly as it would from another machine.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::leader::{LeaseConfig, run_while_leading};
use tokio_util::task::TaskTracker;

use crate::cli::GlobalArgs;

/// The controllers' timings (flags of `tug up` and `tug controllers`; also `TUG_*` variables).
#[derive(Args, Debug, Clone)]
pub struct ControllerFlags {
    /// How often each HorizontalPodAutoscaler is evaluated (`15s`, `1m`, `500ms`).
    #[arg(long, env = "TUG_HPA_SYNC_PERIOD", default_value = "15s", value_parser = parse_duration)]
    pub hpa_sync_period: Duration,
    /// The default scale-down stabilization window of HorizontalPodAutoscalers (`5m`).
    #[arg(long, env = "TUG_HPA_DOWNSCALE_STABILIZATION", default_value = "5m", value_parser = parse_duration)]
    pub hpa_downscale_stabilization: Duration,
    /// How long a node may go without a heartbeat before it is marked unreachable and its
    /// pods start being evicted (upstream `--node-monitor-grace-period`).
    #[arg(long, env = "TUG_NODE_MONITOR_GRACE_PERIOD", default_value = "50s", value_parser = parse_duration)]
    pub node_monitor_grace_period: Duration,
    /// Where the local-path provisioner's volumes live (`<data-dir>/storage`); set by the
    /// command from its data dir.
    #[arg(skip)]
    pub storage_dir: Option<std::path::PathBuf>,
}

impl ControllerFlags {
    /// The controllers' configuration with these timings.
    pub fn config(&self) -> tugboat_controllers::ControllersConfig {
        let mut config = tugboat_controllers::ControllersConfig::default();
        config.hpa.sync_period = self.hpa_sync_period;
        config.hpa.downscale_stabilization = self.hpa_downscale_stabilization;
        config.node_lifecycle.grace_period = self.node_monitor_grace_period;
        config.volumes.storage_dir = self
            .storage_dir
            .clone()
            .unwrap_or_else(|| default_data_dir().join("storage"));
        config
    }
}

/// Flags of `tug controllers`.
#[derive(Args, Debug, Clone)]
pub struct ControllersArgs {
    #[command(flatten)]
    pub timings: ControllerFlags,
    #[command(flatten)]
    pub leader_election: LeaderElectionFlags,
}

/// Flags of `tug scheduler`.
#[derive(Args, Debug, Clone)]
pub struct SchedulerArgs {
    #[command(flatten)]
    pub leader_election: LeaderElectionFlags,
}

/// The Lease timings of a leader-elected component, as kube-scheduler and
/// kube-controller-manager take them. A standby replaces a dead leader one lease duration
/// after its last renewal; a shorter one fails over sooner at the cost of more renewals.
#[derive(Args, Debug, Clone)]
pub struct LeaderElectionFlags {
    /// How long a standby waits, after the leader's last renewal, before taking the Lease.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops acting.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: Duration,
    /// How often the leader renews and candidates retry.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: Duration,
}

impl LeaderElectionFlags {
    /// The Lease `kube-system/<name>` with these timings, checked as client-go checks them.
    pub fn lease(&self, name: &str) -> anyhow::Result<LeaseConfig> {
        // client-go's JitterFactor: a renewal may come that much later than its period.
        const JITTER: f64 = 1.2;
        let (lease, renew, retry) = (
            self.leader_elect_lease_duration,
            self.leader_elect_renew_deadline,
            self.leader_elect_retry_period,
        );
        if retry.is_zero() {
            anyhow::bail!("--leader-elect-retry-period must be greater than zero");
        }
        if lease <= renew {
            anyhow::bail!(
                "--leader-elect-lease-duration ({lease:?}) must be greater than --leader-elect-renew-deadline ({renew:?})"
            );
        }
        if renew.as_secs_f64() <= retry.as_secs_f64() * JITTER {
            anyhow::bail!(
                "--leader-elect-renew-deadline ({renew:?}) must be greater than --leader-elect-retry-period ({retry:?}) × {JITTER}"
            );
        }
        let mut config = LeaseConfig::new(name);
        config.lease_duration = lease;
        config.renew_deadline = renew;
        config.retry_period = retry;
        Ok(config)
    }
}

/// A duration as Kubernetes' flags take them: `300ms`, `15s`, `5m`, `1h`, `1m30s`, or bare
/// seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("{text:?}: a number without a unit"))?;
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number
            .parse()
            .map_err(|_| format!("{text:?} is not a duration (like 15s or 5m)"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            _ => return Err(format!("{text:?}: unknown unit {unit:?} (ms, s, m, h)")),
        };
        total = total.saturating_add(part);
        rest = next;
    }
    if text.is_empty() {
        return Err("an empty duration".into());
    }
    Ok(total)
}

/// The default data dir for this user.
pub fn default_data_dir() -> PathBuf {
    if is_root() {
        return PathBuf::from("/var/lib/tugboat");
    }
    if let Some(data) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(data).join("tugboat");
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| ".".into());
    PathBuf::from(home).join(".local/share/tugboat")
}

fn is_root() -> bool {
    // The effective uid owns /proc/self.
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// This machine's name, lower-cased (the default node name).
pub fn host_name() -> String {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "tugboat".to_owned())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot watch SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot watch SIGINT")?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

/// The User-Agent of every request `tug` makes, as kubectl's is `kubectl/v1.32...`: the API
/// server names the field manager of a write after its first part (`tug`), as upstream does.
pub fn user_agent() -> (http::HeaderName, http::HeaderValue) {
    (
        http::header::USER_AGENT,
        http::HeaderValue::from_static(concat!("tug/v", env!("CARGO_PKG_VERSION"))),
    )
}

/// A client as `tug up`'s own components make one: from the kubeconfig it wrote.
pub async fn client_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Client> {
    kube::Client::try_from(config_from_kubeconfig(path).await?)
        .context("cannot build the API client")
}

/// How many requests the node agents of one process have in flight at once for their pods.
///
/// The agents share one client, whose connection pool keeps a connection for each request
/// that was in flight at once. Unbounded, thousands of simulated nodes starting together open
/// thousands of TLS connections and keep them (with their buffers, at both ends in one
/// process); bounded, they queue for a few dozen. A request holds its slot until the
/// response's headers arrive, so a long watch does not keep one.
pub const AGENT_REQUESTS_IN_FLIGHT: usize = 32;

/// How many heartbeat requests (Node status, Lease) the agents of one process have in flight.
/// 5,000 nodes renew 500 Leases a second, each renewal waiting its turn at the store's writer
/// behind the pods' writes: in a 30,000-pod burst, 16 in flight let 75 Leases go 50 s
/// without a renewal (nodes marked Unknown); 64 let none.
pub const AGENT_HEARTBEATS_IN_FLIGHT: usize = 64;

/// The node agents' clients: one for their pods, one for their heartbeats (kubelet's
/// `heartbeatClient`), each with its own bound on requests in flight, so that a burst of pod
/// work cannot hold the Leases back.
pub struct AgentClients {
    /// Pods: watch, status, events, tokens, volumes, metrics.
    pub pods: kube::Client,
    /// The Node and its Lease.
    pub heartbeat: kube::Client,
}

/// The [`AgentClients`] from a kubeconfig. A client's connections are driven by the runtime it
/// is built on: with `pods_on` (the simulated nodes' threads) the pods' client is built there,
/// the heartbeats' always on the calling runtime, the control plane's.
pub async fn agents_clients_from_kubeconfig(
    path: &Path,
    pods_on: Option<&tokio::runtime::Handle>,
) -> anyhow::Result<AgentClients> {
    let config = config_from_kubeconfig(path).await?;
    let limited = |in_flight: usize| -> anyhow::Result<kube::Client> {
        let builder = kube::client::ClientBuilder::try_from(config.clone())
            .context("cannot build the API client")?;
        Ok(builder
            .with_layer(&tower::limit::ConcurrencyLimitLayer::new(in_flight))
            .build())
    };
    let heartbeat = limited(AGENT_HEARTBEATS_IN_FLIGHT)?;
    let _entered = pods_on.map(tokio::runtime::Handle::enter);
    Ok(AgentClients {
        pods: limited(AGENT_REQUESTS_IN_FLIGHT)?,
        heartbeat,
    })
}

async fn config_from_kubeconfig(path: &Path) -> anyhow::Result<kube::Config> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("bad kubeconfig")?;
    config.headers.push(user_agent());
    Ok(config)
}

/// A client for a component in its own process, from the kubeconfig kubectl would use
/// (`--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`, the default data dir's), checked
/// against the server before anything starts: a component without a cluster says so at once.
pub async fn connect(global: &GlobalArgs) -> anyhow::Result<kube::Client> {
    let ctx = crate::cli::Ctx::new(global).await?;
    ctx.client
        .apiserver_version()
        .await
        .map_err(|error| ctx.map_error(error))?;
    Ok(ctx.client)
}

/// Components running in this process: each in its own task; the first to fail stops them
/// all (a half cluster helps nobody) and is what [`Components::run_until_signal`] returns.
pub struct Components {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    failure: Arc<Mutex<Option<String>>>,
}

impl Components {
    /// Components stopping when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Components {
            tracker: TaskTracker::new(),
            shutdown,
            failure: Arc::default(),
        }
    }

    /// The token that stops every component.
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Run a task that is not a component (a server): waited for at the end, never failing.
    pub fn spawn_task<F>(&self, task: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(task);
    }

    /// Run a component until it ends; if it fails, stop everything.
    pub fn spawn<F>(&self, name: &'static str, task: F)
    where
        F: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        let failure = Arc::clone(&self.failure);
        self.tracker.spawn(async move {
            if let Err(err) = task.await {
                let error = format!("{err:#}");
                tracing::error!(component = name, error, "component stopped");
                // An error while stopping is not why the process stops.
                if !shutdown.is_cancelled()
                    && let Ok(mut first) = failure.lock()
                {
                    first.get_or_insert_with(|| format!("{name}: {error}"));
                }
                shutdown.cancel();
            }
        });
    }

    /// The scheduler; with `lease`, only while it holds that Lease (several may run).
    pub fn spawn_scheduler(&self, client: kube::Client, lease: Option<LeaseConfig>) {
        let shutdown = self.shutdown.clone();
        self.spawn("scheduler", async move {
            let schedule = |client: kube::Client, stop: CancellationToken| async move {
                tugboat_scheduler::run(client, tugboat_scheduler::SchedulerConfig::default(), stop)
                    .await
                    .map_err(anyhow::Error::from)
            };
            match lease {
                Some(lease) => {
                    let c = client.clone();
                    run_while_leading(client, lease, shutdown, move |stop| {
                        schedule(c.clone(), stop)
                    })
                    .await
                }
                None => schedule(client, shutdown).await,
            }
        });
    }

    /// The controller manager; with `lease`, only while it holds that Lease.
    pub fn spawn_controllers(
        &self,
        client: kube::Client,
        timings: &ControllerFlags,
        lease: Option<LeaseConfig>,
    ) {
        let shutdown = self.shutdown.clone();
        let config = timings.config();
        self.spawn("controllers", async move {
            let control = |client: kube::Client, config, stop: CancellationToken| async move {
                tugboat_controllers::run(client, config, stop)
                    .await
                    .map_err(anyhow::Error::from)
            };
            match lease {
                Some(lease) => {
                    let c = client.clone();
                    run_while_leading(client, lease, shutdown, move |stop| {
                        control(c.clone(), config.clone(), stop)
                    })
                    .await
                }
                None => control(client, config, shutdown).await,
            }
        });
    }

    /// Run until SIGTERM, Ctrl-C or a component failing; then stop every component and wait
    /// for them. A failed component is the error.
    pub async fn run_until_signal(self) -> anyhow::Result<()> {
        tokio::select! {
            signal = wait_for_signal() => signal?,
            () = self.shutdown.cancelled() => {}
        }
        tracing::info!("stopping");
        self.shutdown.cancel();
        self.tracker.close();
        self.tracker.wait().await;
        let failure = self.failure.lock().ok().and_then(|mut f| f.take());
        match failure {
            Some(failure) => Err(anyhow::anyhow!(
                "stopped because a component failed: {failure}"
            )),
            None => Ok(()),
        }
    }
}

/// `tug scheduler`: the scheduler alone, against the cluster of the kubeconfig.
pub async fn scheduler(global: GlobalArgs, args: SchedulerArgs) -> anyhow::Result<()> {
    let lease = args.leader_election.lease("kube-scheduler")?;
    let client = connect(&global).await?;
    let components = Components::new(CancellationToken::new());
    // Several schedulers may run for availability: one acts, on upstream's Lease.
    components.spawn_scheduler(client, Some(lease));
    println!("Tugboat scheduler running (leader-elected on kube-system/kube-scheduler)");
    let result = components.run_until_signal().await;
    tracing::info!("stopped");
    result
}

/// `tug controllers`: the controller manager alone, against the cluster of the kubeconfig.
pub async fn controllers(global: GlobalArgs, args: ControllersArgs) -> anyhow::Result<()> {
    let lease = args.leader_election.lease("kube-controller-manager")?;
    let client = connect(&global).await?;
    let components = Components::new(CancellationToken::new());
    // Events name the instance that wrote them, so one can tell which of several acted.
    tugboat_controllers::framework::events::set_reporting_instance(lease.identity.clone());
    components.spawn_controllers(client, &args.timings, Some(lease));
    println!("Tugboat controllers running (leader-elected on kube-system/kube-controller-manager)");
    let result = components.run_until_signal().await;
    tracing::info!("stopped");
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_timings_are_checked_as_client_go_checks_them() {
        let flags = |lease: u64, renew: u64, retry: u64| LeaderElectionFlags {
            leader_elect_lease_duration: Duration::from_secs(lease),
            leader_elect_renew_deadline: Duration::from_secs(renew),
            leader_elect_retry_period: Duration::from_secs(retry),
        };
        let fast = flags(6, 4, 1).lease("kube-scheduler").expect("valid");
        assert_eq!(fast.lease_duration, Duration::from_secs(6));
        assert_eq!(fast.renew_deadline, Duration::from_secs(4));
        assert_eq!(fast.retry_period, Duration::from_secs(1));
        assert_eq!(fast.name, "kube-scheduler");
        let error = |f: LeaderElectionFlags| f.lease("x").expect_err("invalid").to_string();
        assert!(error(flags(10, 10, 2)).contains("--leader-elect-lease-duration"));
        assert!(error(flags(15, 2, 2)).contains("--leader-elect-renew-deadline"));
        assert!(error(flags(15, 10, 0)).contains("greater than zero"));
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("20"), Ok(Duration::from_secs(20)));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn controller_flags_set_the_controllers_timings() {
        let flags = ControllerFlags {
            hpa_sync_period: Duration::from_secs(1),
            hpa_downscale_stabilization: Duration::from_secs(2),
            node_monitor_grace_period: Duration::from_secs(3),
            storage_dir: Some("/data/storage".into()),
        };
        let config = flags.config();
        assert_eq!(config.hpa.sync_period, Duration::from_secs(1));
        assert_eq!(config.hpa.downscale_stabilization, Duration::from_secs(2));
        assert_eq!(config.node_lifecycle.grace_period, Duration::from_secs(3));
        assert_eq!(
            config.volumes.storage_dir,
            std::path::PathBuf::from("/data/storage")
        );
    }
}
