//! What exists from the first start: the four system namespaces with their `default`
//! ServiceAccounts, the `kubernetes` Service pointing at this API server, the default
//! StorageClass `local-path` served by the built-in local provisioner, and the default RBAC
//! roles and bindings.

use std::net::IpAddr;

use serde_json::{Value, json};
use tugboat_store::{Store, StoreError};

use crate::admission::ServiceRange;

/// The namespaces every cluster has.
pub const SYSTEM_NAMESPACES: [&str; 4] =
    ["default", "kube-system", "kube-public", "kube-node-lease"];

pub(crate) fn stamp(mut obj: Value) -> Value {
    obj["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    obj["metadata"]["creationTimestamp"] = json!(crate::objects::now_rfc3339());
    obj
}

pub(crate) async fn create_if_absent(
    store: &dyn Store,
    key: &str,
    obj: Value,
) -> Result<(), StoreError> {
    if store.get(key).await?.is_some() {
        return Ok(());
    }
    let value = serde_json::to_vec(&stamp(obj)).unwrap_or_default();
    match store.create(key, value.into()).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => Ok(()),
        Err(err) => Err(err),
    }
}

/// The `default` ServiceAccount of `namespace`.
pub fn default_service_account(namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": { "name": "default", "namespace": namespace },
    })
}

/// The ConfigMap every namespace gets with the cluster CA, as upstream's
/// root-ca-cert-publisher makes it (pods' service-account volumes read `ca.crt` from it).
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// The `kube-root-ca.crt` ConfigMap of `namespace`.
pub fn root_ca_config_map(namespace: &str, ca_pem: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": ROOT_CA_CONFIG_MAP, "namespace": namespace },
        "data": { "ca.crt": ca_pem },
    })
}

/// Give every namespace that lacks it the `kube-root-ca.crt` ConfigMap (namespaces made later
/// get theirs when they are created).
pub async fn publish_root_ca(store: &dyn Store, ca_pem: &str) -> Result<(), StoreError> {
    let namespaces = store
        .list(
            "/registry/namespaces/",
            tugboat_store::ListOptions::default(),
        )
        .await?;
    for kv in namespaces.items {
        let Some(namespace) = kv.key.strip_prefix("/registry/namespaces/") else {
            continue;
        };
        create_if_absent(
            store,
            &format!("/registry/configmaps/{namespace}/{ROOT_CA_CONFIG_MAP}"),
            root_ca_config_map(namespace, ca_pem),
        )
        .await?;
    }
    Ok(())
}

/// The default StorageClass's name and provisioner (the controllers' local-path provisioner).
pub const DEFAULT_STORAGE_CLASS: &str = "local-path";
/// The provisioner of [`DEFAULT_STORAGE_CLASS`].
pub const LOCAL_PATH_PROVISIONER: &str = "tugboat.dev/local-path";

/// The default StorageClass, as k3s ships its `local-path` one: volumes are made once a pod
/// using the claim is scheduled, and deleted with their claim.
pub fn default_storage_class() -> Value {
    json!({
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {
            "name": DEFAULT_STORAGE_CLASS,
            "annotations": { "storageclass.kubernetes.io/is-default-class": "true" },
        },
        "provisioner": LOCAL_PATH_PROVISIONER,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    })
}

/// Create what is missing.
pub async fn ensure(
    store: &dyn Store,
    range: ServiceRange,
    api_ip: IpAddr,
    api_port: u16,
) -> Result<(), StoreError> {
    for namespace in SYSTEM_NAMESPACES {
        create_if_absent(
            store,
            &format!("/registry/namespaces/{namespace}"),
            json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": namespace, "labels": { "kubernetes.io/metadata.name": namespace } },
                "spec": { "finalizers": ["kubernetes"] },
                "status": { "phase": "Active" },
            }),
        )
        .await?;
        create_if_absent(
            store,
            &format!("/registry/serviceaccounts/{namespace}/default"),
            default_service_account(namespace),
        )
        .await?;
    }
    let ip = range.api_service_ip().to_string();
    match store
        .create(
            &format!("/registry/ranges/serviceips/{ip}"),
            bytes::Bytes::from_static(b"{}"),
        )
        .await
    {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(err) => return Err(err),
    }
    create_if_absent(
        store,
        "/registry/services/default/kubernetes",
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": { "name": "kubernetes", "namespace": "default",
                          "labels": { "component": "apiserver", "provider": "kubernetes" } },
            "spec": {
                "type": "ClusterIP",
                "clusterIP": ip, "clusterIPs": [ip],
                "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack",
                "sessionAffinity": "None", "internalTrafficPolicy": "Cluster",
                "ports": [{ "name": "https", "port": 443, "protocol": "TCP", "targetPort": api_port }],
            },
            "status": { "loadBalancer": {} },
        }),
    )
    .await?;
    create_if_absent(
        store,
        "/registry/endpoints/default/kubernetes",
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": { "name": "kubernetes", "namespace": "default" },
            "subsets": [{
                "addresses": [{ "ip": api_ip.to_string() }],
                "ports": [{ "name": "https", "port": api_port, "protocol": "TCP" }],
            }],
        }),
    )
    .await?;
    create_if_absent(
        store,
        &format!("/registry/storage.k8s.io/storageclasses/{DEFAULT_STORAGE_CLASS}"),
        default_storage_class(),
    )
    .await?;
    crate::authz::policy::ensure(store).await
}
