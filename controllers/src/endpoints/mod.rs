//! The Endpoints and EndpointSlice controller: keeps, for every Service with a selector, an
//! `Endpoints` object of the same name and `EndpointSlice`s labelled with the Service's name,
//! listing the ready (and not-ready) pods that back it. Upstream runs two controllers
//! (`endpoint` and `endpointslice`); both are computed here from one sync of the Service.
//!
//! `compute.rs` is the pure decision; this module wires informers on Services and Pods to a
//! keyed queue of Services and writes the result. Services without a selector are left alone
//! (their Endpoints are written by hand).

pub mod compute;

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::error::kube_status_is;
use crate::framework::runner::{Reconciler, Requeue, run_workers};
use crate::framework::{Change, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Settings of the endpoints controller.
#[derive(Debug, Clone)]
pub struct EndpointsConfig {
    /// Concurrent syncs (upstream `--concurrent-endpoint-syncs`, default 5).
    pub workers: usize,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        Self { workers: 5 }
    }
}

/// See the module documentation.
pub struct EndpointsController {
    client: Client,
    services: Store<Service>,
    pods: Store<Pod>,
    queue: WorkQueue<ObjectKey>,
    config: EndpointsConfig,
}

/// Runs the endpoints controller, with informers of its own, until `cancel` fires.
pub async fn run(client: Client, config: EndpointsConfig, cancel: CancellationToken) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the endpoints controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: EndpointsConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let service_informer = informers.informer::<Service>();
    let pod_informer = informers.informer::<Pod>();
    let controller = EndpointsController {
        client: informers.client().clone(),
        services: service_informer.store(),
        pods: pod_informer.store(),
        queue: WorkQueue::default(),
        config,
    };
    let workers = async {
        controller.wait_for_caches(&cancel).await?;
        info!("endpoints controller caches synced; starting workers");
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
        service_informer.run(|change| controller.on_service_change(change), &cancel),
        pod_informer.run(|change| controller.on_pod_change(change), &cancel),
    );
    controller.queue.shut_down();
    result
}

impl EndpointsController {
    async fn wait_for_caches(&self, cancel: &CancellationToken) -> Result<()> {
        tokio::select! {
            () = cancel.cancelled() => Err(Error::CacheNotSynced("endpoints")),
            ready = async {
                self.services.wait_until_ready().await?;
                self.pods.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced("endpoints")),
        }
    }

    fn on_service_change(&self, change: Change<Service>) {
        let service = match change {
            Change::Added(s) | Change::Updated { new: s, .. } | Change::Deleted(s) => s,
        };
        self.queue.add(ObjectKey::of(service.as_ref()));
    }

    fn on_pod_change(&self, change: Change<Pod>) {
        match change {
            Change::Added(pod) | Change::Deleted(pod) => self.enqueue_services_of(&pod),
            Change::Updated { old, new } => {
                if old.metadata.resource_version == new.metadata.resource_version {
                    return;
                }
                self.enqueue_services_of(&new);
                if old.metadata.labels != new.metadata.labels {
                    self.enqueue_services_of(&old);
                }
            }
        }
    }

    /// Queues every Service in the pod's namespace whose selector matches it.
    fn enqueue_services_of(&self, pod: &Pod) {
        let namespace = pod.metadata.namespace.as_deref();
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        for service in self.services.state() {
            if service.metadata.namespace.as_deref() == namespace
                && compute::selects(&service, &labels)
            {
                self.queue.add(ObjectKey::of(service.as_ref()));
            }
        }
    }

    fn cached_service(&self, key: &ObjectKey) -> Option<Arc<Service>> {
        self.services
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    }

    async fn delete_managed(&self, key: &ObjectKey) -> Result<()> {
        let endpoints = Api::<Endpoints>::namespaced(self.client.clone(), &key.namespace);
        if let Some(existing) = endpoints.get_opt(&key.name).await? {
            // Only ours: hand-written Endpoints of a selectorless Service stay.
            let ours = existing
                .metadata
                .annotations
                .as_ref()
                .is_some_and(|a| a.contains_key(MANAGED_ANNOTATION));
            if ours {
                ignore_not_found(endpoints.delete(&key.name, &DeleteParams::default()).await)?;
            }
        }
        let slices = Api::<EndpointSlice>::namespaced(self.client.clone(), &key.namespace);
        for slice in slices.list(&slice_selector(&key.name)).await?.items {
            if let Some(name) = slice.metadata.name.as_deref() {
                ignore_not_found(slices.delete(name, &DeleteParams::default()).await)?;
            }
        }
        Ok(())
    }

    async fn sync_endpoints(&self, service: &Service, key: &ObjectKey) -> Result<()> {
        let pods: Vec<Arc<Pod>> = self
            .pods
            .state()
            .into_iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(key.namespace.as_str()))
            .collect();
        let subsets = compute::endpoint_subsets(service, pods.iter().map(|p| p.as_ref()));
        let labels = compute::endpoints_labels(service);
        let api = Api::<Endpoints>::namespaced(self.client.clone(), &key.namespace);
        let subsets = (!subsets.is_empty()).then_some(subsets);
        let labels = (!labels.is_empty()).then_some(labels);
        match api.get_opt(&key.name).await? {
            None => {
                let mut endpoints = Endpoints::default();
                endpoints.metadata.name = Some(key.name.clone());
                endpoints.metadata.namespace = Some(key.namespace.clone());
                endpoints.metadata.labels = labels;
                endpoints.metadata.annotations =
                    Some([(MANAGED_ANNOTATION.to_owned(), String::new())].into());
                endpoints.subsets = subsets;
                debug!("creating endpoints");
                match api.create(&PostParams::default(), &endpoints).await {
                    // Created meanwhile: the watch brings us back.
                    Err(error) if kube_status_is(&error, 409) => {}
                    other => {
                        other?;
                    }
                }
            }
            Some(mut existing) => {
                if existing.subsets == subsets && existing.metadata.labels == labels {
                    return Ok(());
                }
                existing.subsets = subsets;
                existing.metadata.labels = labels;
                existing
                    .metadata
                    .annotations
                    .get_or_insert_default()
                    .insert(MANAGED_ANNOTATION.to_owned(), String::new());
                debug!("updating endpoints");
                api.replace(&key.name, &PostParams::default(), &existing)
                    .await?;
            }
        }
        let slices = compute::endpoint_slices(service, pods.iter().map(|p| p.as_ref()));
        self.sync_slices(key, slices).await
    }

    async fn sync_slices(&self, key: &ObjectKey, desired: Vec<EndpointSlice>) -> Result<()> {
        let api = Api::<EndpointSlice>::namespaced(self.client.clone(), &key.namespace);
        let mut existing = api.list(&slice_selector(&key.name)).await?.items;
        for slice in desired {
            let name = slice.metadata.name.clone().unwrap_or_default();
            let position = existing
                .iter()
                .position(|s| s.metadata.name.as_deref() == Some(name.as_str()));
            match position.map(|i| existing.swap_remove(i)) {
                None => {
                    debug!(slice = %name, "creating endpointslice");
                    match api.create(&PostParams::default(), &slice).await {
                        Err(error) if kube_status_is(&error, 409) => {}
                        other => {
                            other?;
                        }
                    }
                }
                Some(mut current) => {
                    if current.endpoints == slice.endpoints
                        && current.ports == slice.ports
                        && current.metadata.labels == slice.metadata.labels
                    {
                        continue;
                    }
                    current.endpoints = slice.endpoints;
                    current.ports = slice.ports;
                    current.metadata.labels = slice.metadata.labels;
                    debug!(slice = %name, "updating endpointslice");
                    api.replace(&name, &PostParams::default(), &current).await?;
                }
            }
        }
        for stale in existing {
            if let Some(name) = stale.metadata.name.as_deref() {
                debug!(slice = %name, "deleting endpointslice");
                ignore_not_found(api.delete(name, &DeleteParams::default()).await)?;
            }
        }
        Ok(())
    }
}

/// Marks Endpoints objects this controller wrote (so a selector removed later hands them back).
pub const MANAGED_ANNOTATION: &str = "endpoints.tugboat.io/managed";

fn slice_selector(service: &str) -> ListParams {
    ListParams::default().labels(&format!(
        "{}={service},{}={}",
        compute::SERVICE_NAME_LABEL,
        compute::MANAGED_BY_LABEL,
        compute::MANAGED_BY
    ))
}

fn ignore_not_found<T>(result: kube::Result<T>) -> Result<()> {
    match result {
        Err(error) if kube_status_is(&error, 404) => Ok(()),
        Err(error) => Err(error.into()),
        Ok(_) => Ok(()),
    }
}

impl Reconciler for EndpointsController {
    fn name(&self) -> &'static str {
        "endpoints"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        match self.cached_service(key) {
            Some(service) if compute::has_managed_endpoints(&service) => {
                self.sync_endpoints(&service, key).await?;
            }
            // Gone, or selectorless now: remove what we wrote, keep what users wrote.
            _ => self.delete_managed(key).await?,
        }
        Ok(Requeue::Never)
    }
}
