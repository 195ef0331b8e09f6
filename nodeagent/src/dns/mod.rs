//! Cluster DNS, built into the agent: answers `<svc>.<ns>.svc.<zone>` and the rest of the
//! Kubernetes DNS specification from a watch of Services, EndpointSlices and Endpoints, and
//! relays every other name to the host's resolvers.
//!
//! - [`records`]: the zone, pure (objects in, answer out).
//! - [`server`]: UDP and TCP on port 53, wire format by `hickory-proto`.
//! - [`resolv`]: the pods' resolv.conf (`dnsPolicy`), handed to the runtime.
//!
//! It listens on 10.96.0.10 (the address Kubernetes gives kube-dns, kept out of ClusterIP
//! allocation by the API server), held by the proxy's `tug-svc` dummy interface: the
//! address exists before any pod does (the CNI bridge's gateway appears only with the
//! first pod), pods reach it through their default route to the host, and `tug reset`
//! takes it away with the interface.

pub mod records;
pub mod resolv;
pub mod server;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector;
use kube::{Api, Client};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::proxy::{HostError, NetHost, Stores, host::DUMMY_INTERFACE, reflect};
use records::ClusterRecords;
use resolv::ResolvConf;

/// The cluster DNS address Tugboat uses (Kubernetes' conventional kube-dns ClusterIP).
pub const DEFAULT_ADDRESS: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);
/// The cluster domain.
pub const DEFAULT_DOMAIN: &str = "cluster.local";

/// Settings of the cluster DNS.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Where to listen (UDP and TCP); pods are told its address.
    pub listen: SocketAddr,
    /// Put the listen address on `tug-svc` first (off for tests on 127.0.0.1).
    pub assign_address: bool,
    /// The cluster domain.
    pub domain: String,
    /// Reverse zones answered here: the service and pod CIDRs.
    pub reverse_zones: Vec<(Ipv4Addr, u8)>,
    /// Where other names go; `None` reads the host's /etc/resolv.conf.
    pub upstreams: Option<Vec<SocketAddr>>,
    /// How long to gather changes before the zone is rebuilt.
    pub debounce: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::new(IpAddr::V4(DEFAULT_ADDRESS), 53),
            assign_address: true,
            domain: DEFAULT_DOMAIN.into(),
            reverse_zones: vec![
                (Ipv4Addr::new(10, 96, 0, 0), 16),
                (Ipv4Addr::new(10, 88, 0, 0), 16),
            ],
            upstreams: None,
            debounce: Duration::from_millis(20),
        }
    }
}

impl DnsConfig {
    /// The address pods are told, when it is IPv4.
    pub fn pod_server(&self) -> Option<(Ipv4Addr, String)> {
        match self.listen.ip() {
            IpAddr::V4(ip) => Some((ip, self.domain.clone())),
            IpAddr::V6(_) => None,
        }
    }
}

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The address could not be put on `tug-svc`.
    #[error("cannot assign the cluster DNS address: {0}")]
    Host(#[from] HostError),
    /// A socket could not be bound.
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address.
        address: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The host's resolvers for forwarding: the non-loopback ones (what pods with
/// `dnsPolicy: Default` get too); the agent shares the host's network, so a loopback stub
/// resolver still serves if it is all there is.
pub fn host_upstreams() -> Vec<SocketAddr> {
    let mut servers = ResolvConf::host_for_pods().nameservers;
    if servers.is_empty() {
        servers = ResolvConf::read(std::path::Path::new("/etc/resolv.conf")).nameservers;
    }
    servers
        .into_iter()
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

/// Puts `address` on the `tug-svc` dummy interface (creating it and the service route
/// if the proxy has not yet).
async fn assign(host: &NetHost, address: Ipv4Addr) -> Result<(), HostError> {
    host.ensure_service_route(crate::proxy::host::DEFAULT_SERVICE_CIDR)
        .await?;
    if host
        .run("ip", &["link", "show", DUMMY_INTERFACE], None)
        .await
        .is_err()
    {
        // No dummy interfaces: the service CIDR is a local route, which covers the address.
        return Ok(());
    }
    let cidr = format!("{address}/32");
    host.run(
        "ip",
        &["addr", "replace", &cidr, "dev", DUMMY_INTERFACE],
        None,
    )
    .await
    .map(|_| ())
}

/// Binds the UDP and TCP sockets of `listen`.
pub async fn bind(listen: SocketAddr) -> Result<(UdpSocket, TcpListener), DnsError> {
    let error = |source| DnsError::Bind {
        address: listen,
        source,
    };
    let udp = UdpSocket::bind(listen).await.map_err(error)?;
    // Same port as the UDP socket when it was chosen by the kernel (tests bind port 0).
    let tcp_address = SocketAddr::new(listen.ip(), udp.local_addr().map_err(error)?.port());
    let tcp = TcpListener::bind(tcp_address).await.map_err(error)?;
    Ok((udp, tcp))
}

/// Runs the cluster DNS until `cancel` fires.
pub async fn run(
    client: Client,
    config: DnsConfig,
    cancel: CancellationToken,
) -> Result<(), DnsError> {
    if let (true, IpAddr::V4(address)) = (config.assign_address, config.listen.ip()) {
        assign(&NetHost::default(), address).await?;
    }
    let (udp, tcp) = bind(config.listen).await?;
    serve_cluster(client, config, udp, tcp, cancel).await;
    Ok(())
}

/// Watches the cluster and serves on the given sockets until `cancel` fires.
pub async fn serve_cluster(
    client: Client,
    config: DnsConfig,
    udp: UdpSocket,
    tcp: TcpListener,
    cancel: CancellationToken,
) {
    let (services, service_writer) = reflector::store::<Service>();
    let (slices, slice_writer) = reflector::store::<EndpointSlice>();
    let (endpoints, endpoints_writer) = reflector::store::<Endpoints>();
    let stores = Stores {
        services,
        slices,
        endpoints,
    };
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
    let upstreams = config.upstreams.clone().unwrap_or_else(host_upstreams);
    let serving = async {
        // Answers from half a picture would be wrong NXDOMAINs: wait for the first lists.
        let ready = tokio::select! {
            () = cancel.cancelled() => false,
            ready = stores.wait_until_ready() => ready,
        };
        if !ready {
            return;
        }
        let build = || {
            let (services, slices) = stores.snapshot();
            Arc::new(ClusterRecords::build(
                &config.domain,
                &services,
                &slices,
                &config.reverse_zones,
            ))
        };
        let (publish, records) = watch::channel(build());
        info!(listen = %config.listen, domain = %config.domain, upstreams = ?upstreams, "cluster DNS serving");
        let answerer = server::Answerer { records, upstreams };
        let rebuild = async {
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = changed.notified() => {}
                }
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(config.debounce) => {}
                }
                publish.send_replace(build());
            }
        };
        tokio::join!(server::serve(udp, tcp, answerer, cancel.clone()), rebuild);
    };
    tokio::join!(watches, serving);
}
