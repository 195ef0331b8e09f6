//! The service proxy: watches Services and EndpointSlices and programs the node's kernel so
//! ClusterIPs and NodePorts (127.0.0.1 included) reach the ready endpoints, like kube-proxy in
//! iptables mode.
//!
//! - [`rules`]: rule generation, pure.
//! - [`host`]: `iptables-restore`, jumps, `route_localnet`, the `tug-svc` route, cleanup.
//! - [`model`]: from Services and EndpointSlices to the rule generator's input, pure.
//! - [`run`]: the loop. A change marks the rules dirty; after a short debounce the whole
//!   model is recomputed and only the chains that differ from what was applied are written,
//!   in one `iptables-restore --noflush` batch. A failed apply retries with a full rewrite,
//!   and a periodic full rewrite repairs whatever changed behind our back.

pub mod host;
pub mod model;
pub mod routed;
pub mod rules;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

pub use host::{HostError, NetHost};
use rules::{RuleSet, RulesConfig};

/// Settings of the proxy.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// The service CIDR routed to `tug-svc`.
    pub service_cidr: String,
    /// The pod network; traffic from elsewhere to a ClusterIP is masqueraded.
    pub pod_cidr: String,
    /// How long to gather changes before a resync.
    pub debounce: Duration,
    /// Retry delay after a failed apply.
    pub retry: Duration,
    /// Every so often the rules are rewritten in full, repairing changes made behind our back.
    pub full_resync: Duration,
    /// Where to program: the host or a network namespace.
    pub host: NetHost,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            service_cidr: host::DEFAULT_SERVICE_CIDR.into(),
            pod_cidr: "10.88.0.0/16".into(),
            debounce: Duration::from_millis(100),
            retry: Duration::from_secs(1),
            full_resync: Duration::from_secs(300),
            host: NetHost::default(),
        }
    }
}

/// Drives a reflector store from a watch until `cancel` fires, notifying `changed`.
pub(crate) async fn reflect<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    changed: Arc<Notify>,
    cancel: CancellationToken,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + k8s_openapi::serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    futures::pin_mut!(stream);
    loop {
        let event = tokio::select! {
            () = cancel.cancelled() => return,
            event = stream.next() => event,
        };
        match event {
            None => return,
            Some(Err(error)) => warn!(%error, "proxy watch failed; retrying"),
            Some(Ok(_)) => changed.notify_one(),
        }
    }
}

/// Runs the proxy until `cancel` fires. The rules stay in place on shutdown (traffic keeps
/// flowing while the agent restarts); [`host::NetHost::cleanup`] removes them.
pub async fn run(
    client: Client,
    config: ProxyConfig,
    cancel: CancellationToken,
) -> Result<(), HostError> {
    run_publishing(client, config, routed::channel().0, cancel).await
}

/// [`run`], publishing the pod IPs of every rule set applied to `routed`.
pub async fn run_publishing(
    client: Client,
    config: ProxyConfig,
    routed: routed::RoutedEndpoints,
    cancel: CancellationToken,
) -> Result<(), HostError> {
    let host = config.host.clone();
    host.enable_route_localnet().await?;
    host.ensure_service_route(&config.service_cidr).await?;

    let (services, service_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let (endpoints, endpoints_writer) = reflector::store::<Endpoints>();
    let changed = Arc::new(Notify::new());
    let watches = futures::future::join3(
        reflect(
            Api::<Service>::all(client.clone()),
            service_writer,
            changed.clone(),
            cancel.clone(),
        ),
        reflect(
            Api::<EndpointSlice>::all(client.clone()),
            slice_writer,
            changed.clone(),
            cancel.clone(),
        ),
        reflect(
            Api::<Endpoints>::all(client),
            endpoints_writer,
            changed.clone(),
            cancel.clone(),
        ),
    );
    let stores = Stores {
        services,
        slices,
        endpoints,
    };
    let sync = sync_loop(&config, &stores, &changed, &routed, &cancel);
    let (((), (), ()), result) = tokio::join!(watches, sync);
    result
}

/// The watched objects the proxy and the cluster DNS answer from.
#[derive(Clone)]
pub(crate) struct Stores {
    pub services: Store<Service>,
    pub slices: Store<EndpointSlice>,
    pub endpoints: Store<Endpoints>,
}

impl Stores {
    /// Waits for the first list of each; `false` if a watch ended first.
    pub async fn wait_until_ready(&self) -> bool {
        self.services.wait_until_ready().await.is_ok()
            && self.slices.wait_until_ready().await.is_ok()
            && self.endpoints.wait_until_ready().await.is_ok()
    }

    /// The Services, and their slices including mirrored hand-written Endpoints.
    pub fn snapshot(&self) -> (Vec<Arc<Service>>, Vec<Arc<EndpointSlice>>) {
        let services = self.services.state();
        let slices =
            model::mirrored_slices(&services, &self.slices.state(), &self.endpoints.state());
        (services, slices)
    }
}

async fn sync_loop(
    config: &ProxyConfig,
    stores: &Stores,
    changed: &Notify,
    routed: &routed::RoutedEndpoints,
    cancel: &CancellationToken,
) -> Result<(), HostError> {
    let rules_config = RulesConfig {
        pod_cidr: config.pod_cidr.clone(),
    };
    // Wait for every first list: rules from half a picture would drop live services.
    tokio::select! {
        () = cancel.cancelled() => return Ok(()),
        ready = stores.wait_until_ready() => {
            if !ready {
                return Ok(());
            }
        }
    }
    // Unknown state on the host: the first apply rewrites every chain and drops strays.
    let mut applied: Option<RuleSet> = None;
    loop {
        let (services, slices) = stores.snapshot();
        let ports = model::service_ports(&services, &slices);
        let desired = rules::generate(&rules_config, &ports);
        let outcome = apply(&config.host, applied.as_ref(), &desired).await;
        let delay = match outcome {
            Ok(()) => {
                applied = Some(desired);
                routed.publish(&ports);
                None
            }
            Err(error) => {
                warn!(%error, "applying service rules failed; retrying with a full rewrite");
                applied = None;
                Some(config.retry)
            }
        };
        match delay {
            Some(delay) => tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(delay) => {}
            },
            None => tokio::select! {
                () = cancel.cancelled() => return Ok(()),
                () = tokio::time::sleep(config.full_resync) => applied = None,
                () = changed.notified() => {
                    // Gather a burst of changes into one resync.
                    tokio::select! {
                        () = cancel.cancelled() => return Ok(()),
                        () = tokio::time::sleep(config.debounce) => {}
                    }
                }
            },
        }
    }
}

/// Brings the host from `applied` (`None`: unknown) to `desired` in one batch.
pub async fn apply(
    host: &NetHost,
    applied: Option<&RuleSet>,
    desired: &RuleSet,
) -> Result<(), HostError> {
    let started = tokio::time::Instant::now();
    let (previous, stale) = match applied {
        Some(previous) => (previous.clone(), Default::default()),
        None => (RuleSet::default(), host.existing_chains().await?),
    };
    if let Some(text) = desired.restore_text(&previous, &stale) {
        host.restore(&text).await?;
        debug!(
            bytes = text.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "service rules applied"
        );
    }
    if applied.is_none() {
        host.ensure_jumps().await?;
        info!(chains = desired.chains().len(), "service rules in place");
    }
    Ok(())
}
