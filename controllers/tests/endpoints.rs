//! The endpoints controller against a real in-process API server (memory store): a Service
//! with a selector gets Endpoints and an EndpointSlice that follow its pods' readiness, their
//! deletion and the Service's own deletion.

use std::future::Future;
use std::time::Duration;

use anyhow::Context as _;
use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::Timestamp;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tugboat_apiserver::{ApiServerConfig, StoreConfig};
use tugboat_controllers::endpoints::{EndpointsConfig, compute::SERVICE_NAME_LABEL};

const NAMESPACE: &str = "default";
const TEST_TIMEOUT: Duration = Duration::from_secs(60);

async fn with_controller<F, Fut>(body: F) -> anyhow::Result<()>
where
    F: FnOnce(Client) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let dir = tempfile::tempdir()?;
    let shutdown = CancellationToken::new();
    let mut config = ApiServerConfig::new(dir.path());
    config.listen = "127.0.0.1:0".parse()?;
    config.store = StoreConfig::Memory;
    let server = tugboat_apiserver::start(config, shutdown.clone()).await?;
    let client = tugboat_testkit::kube::client(&server.url, &server.ca_pem, &server.admin_token)?;
    let controller = tugboat_controllers::endpoints::run(
        client.clone(),
        EndpointsConfig::default(),
        shutdown.child_token(),
    );
    let test = async {
        let result = tokio::time::timeout(TEST_TIMEOUT, body(client)).await;
        shutdown.cancel();
        result.context("test timed out")?
    };
    let (controller, test) = tokio::join!(controller, test);
    server.stopped().await;
    test?;
    controller.context("controller failed")?;
    Ok(())
}

async fn eventually<T, Fut>(what: &str, mut check: impl FnMut() -> Fut) -> anyhow::Result<T>
where
    Fut: Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(value) = check().await? {
            return Ok(value);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn create_pod(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) -> anyhow::Result<()> {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": name, "namespace": NAMESPACE, "labels": { "app": "web" } },
        "spec": { "containers": [{ "name": "c", "image": "busybox", "ports": [{ "name": "http", "containerPort": 8080 }] }] }
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    set_status(pods, name, ip, ready).await
}

async fn set_status(pods: &Api<Pod>, name: &str, ip: &str, ready: bool) -> anyhow::Result<()> {
    let patch = json!({ "status": {
        "phase": "Running",
        "podIP": ip,
        "podIPs": [{ "ip": ip }],
        "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" }, "lastTransitionTime": Timestamp::now().to_string() }]
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(())
}

/// `(ready IPs, not-ready IPs, ports)` of the Endpoints object, if it exists.
async fn endpoints_state(
    api: &Api<Endpoints>,
) -> anyhow::Result<Option<(Vec<String>, Vec<String>, Vec<i32>)>> {
    let Some(endpoints) = api.get_opt("web").await? else {
        return Ok(None);
    };
    let subsets = endpoints.subsets.unwrap_or_default();
    let ips = |f: fn(
        &k8s_openapi::api::core::v1::EndpointSubset,
    ) -> Option<&Vec<k8s_openapi::api::core::v1::EndpointAddress>>| {
        let mut ips: Vec<String> = subsets
            .iter()
            .filter_map(f)
            .flatten()
            .map(|a| a.ip.clone())
            .collect();
        ips.sort();
        ips
    };
    let ports = subsets
        .iter()
        .flat_map(|s| s.ports.iter().flatten().map(|p| p.port))
        .collect();
    Ok(Some((
        ips(|s| s.addresses.as_ref()),
        ips(|s| s.not_ready_addresses.as_ref()),
        ports,
    )))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_and_slices_follow_pod_readiness_and_deletion() -> anyhow::Result<()> {
    with_controller(|client| async move {
        let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
        let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
        let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), NAMESPACE);
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);

        create_pod(&pods, "a", "10.88.0.2", true).await?;
        create_pod(&pods, "b", "10.88.0.3", false).await?;
        let service: Service = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": NAMESPACE },
            "spec": { "selector": { "app": "web" }, "ports": [{ "name": "http", "port": 80, "targetPort": "http" }] }
        }))?;
        services.create(&PostParams::default(), &service).await?;

        let expected = (vec!["10.88.0.2".to_owned()], vec!["10.88.0.3".to_owned()], vec![8080]);
        eventually("endpoints with a ready and a not-ready pod", || async {
            Ok(endpoints_state(&endpoints).await?.filter(|s| *s == expected))
        })
        .await?;

        // The slice agrees.
        let by_service = ListParams::default().labels(&format!("{SERVICE_NAME_LABEL}=web"));
        eventually("a slice with two endpoints", || async {
            let items = slices.list(&by_service).await?.items;
            Ok((items.len() == 1 && items[0].endpoints.len() == 2).then_some(()))
        })
        .await?;

        // b turns ready.
        set_status(&pods, "b", "10.88.0.3", true).await?;
        let expected = (vec!["10.88.0.2".to_owned(), "10.88.0.3".to_owned()], vec![], vec![8080]);
        eventually("both pods ready", || async {
            Ok(endpoints_state(&endpoints).await?.filter(|s| *s == expected))
        })
        .await?;

        // Deleting a (graceful: it stays as terminating) drops it at once.
        pods.delete("a", &DeleteParams::default()).await?;
        let expected = (vec!["10.88.0.3".to_owned()], vec![], vec![8080]);
        eventually("the terminating pod gone", || async {
            Ok(endpoints_state(&endpoints).await?.filter(|s| *s == expected))
        })
        .await?;
        eventually("the slice without the terminating pod", || async {
            let items = slices.list(&by_service).await?.items;
            Ok((items.len() == 1
                && items[0].endpoints.len() == 1
                && items[0].endpoints[0].addresses == ["10.88.0.3"])
                .then_some(()))
        })
        .await?;

        // Deleting the Service removes both.
        services.delete("web", &DeleteParams::default()).await?;
        eventually("endpoints and slices deleted", || async {
            let gone = endpoints.get_opt("web").await?.is_none()
                && slices.list(&by_service).await?.items.is_empty();
            Ok(gone.then_some(()))
        })
        .await?;
        Ok(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_endpoints_of_a_selectorless_service_are_left_alone() -> anyhow::Result<()> {
    with_controller(|client| async move {
        let services: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
        let endpoints: Api<Endpoints> = Api::namespaced(client.clone(), NAMESPACE);
        let service: Service = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": NAMESPACE },
            "spec": { "ports": [{ "port": 80 }] }
        }))?;
        services.create(&PostParams::default(), &service).await?;
        let manual: Endpoints = serde_json::from_value(json!({
            "metadata": { "name": "web", "namespace": NAMESPACE },
            "subsets": [{ "addresses": [{ "ip": "10.88.5.5" }], "ports": [{ "port": 9000 }] }]
        }))?;
        endpoints.create(&PostParams::default(), &manual).await?;
        // Give the controller time to (wrongly) act, then check it did not.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let state = endpoints_state(&endpoints).await?;
        assert_eq!(
            state,
            Some((vec!["10.88.5.5".to_owned()], vec![], vec![9000]))
        );
        Ok(())
    })
    .await
}
