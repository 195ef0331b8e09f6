//! Admission: the checks and allocations kube-apiserver's built-in admission and registries do
//! beyond validation.
//!
//! - Namespaced objects need an existing namespace that is not terminating.
//! - Services get a ClusterIP from the service CIDR and NodePorts from 30000-32767. Each taken
//!   address or port is a claim key in the store (`/registry/ranges/...`), created before the
//!   Service and deleted after it, so two API servers on one store never hand out the same one.

use std::net::Ipv4Addr;

use serde_json::{Value, json};
use tugboat_api::resources::ResourceInfo;
use tugboat_api::status::{self, Target};
use tugboat_store::StoreError;

use crate::error::{ApiError, ApiResult};
use crate::server::ApiState;

/// The service CIDR's first address and size (10.96.0.0/16 unless configured).
#[derive(Debug, Clone, Copy)]
pub struct ServiceRange {
    /// Network address.
    pub base: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

impl Default for ServiceRange {
    fn default() -> Self {
        ServiceRange {
            base: Ipv4Addr::new(10, 96, 0, 0),
            prefix: 16,
        }
    }
}

impl ServiceRange {
    fn size(&self) -> u32 {
        1u32 << (32 - u32::from(self.prefix.min(30)))
    }

    /// The address at `offset` in the range.
    pub fn at(&self, offset: u32) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base) + offset)
    }

    /// Whether `ip` is an assignable address of the range (not network or broadcast).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let offset = u32::from(ip).wrapping_sub(u32::from(self.base));
        offset > 0 && offset < self.size() - 1
    }

    /// The address of the `kubernetes` Service (the first one).
    pub fn api_service_ip(&self) -> Ipv4Addr {
        self.at(1)
    }
}

/// The NodePort range.
pub const NODE_PORTS: std::ops::RangeInclusive<u16> = 30000..=32767;

const IP_CLAIMS: &str = "/registry/ranges/serviceips/";
const PORT_CLAIMS: &str = "/registry/ranges/servicenodeports/";

/// What a create took, to give back if the create fails.
#[derive(Debug, Default)]
pub struct Allocation {
    keys: Vec<String>,
}

/// Refuse namespaced objects in a namespace that does not exist or is terminating.
pub async fn check_namespace(
    state: &ApiState,
    resource: &ResourceInfo,
    namespace: Option<&str>,
) -> ApiResult<()> {
    if !resource.namespaced {
        return Ok(());
    }
    let Some(namespace) = namespace else {
        return Ok(());
    };
    let key = format!("/registry/namespaces/{namespace}");
    let target = Target::new("", "namespaces", namespace);
    let kv = state
        .store
        .get(&key)
        .await
        .map_err(|err| ApiError::from_store(err, &target))?;
    let Some(kv) = kv else {
        return Err(status::not_found(&target).into());
    };
    let ns: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
    let terminating = ns.pointer("/metadata/deletionTimestamp").is_some();
    // Events about the namespace's own deletion are still welcome.
    if terminating && resource.kind != "Event" {
        return Err(status::forbidden(
            &Target::of(resource, ""),
            &format!(
                "unable to create new content in namespace {namespace} because it is being terminated"
            ),
        )
        .into());
    }
    Ok(())
}

fn is_service(resource: &ResourceInfo) -> bool {
    resource.group.is_empty() && resource.kind == "Service"
}

/// Allocate what a new object needs (Service IPs and ports), writing them into it.
pub async fn allocate(
    state: &ApiState,
    resource: &ResourceInfo,
    obj: &mut Value,
) -> ApiResult<Allocation> {
    let mut allocation = Allocation::default();
    if !is_service(resource) {
        return Ok(allocation);
    }
    let result = allocate_service(state, obj, None, &mut allocation).await;
    if let Err(err) = result {
        release(state, &allocation).await;
        return Err(err);
    }
    Ok(allocation)
}

/// Keep allocations across an update of a Service: the ClusterIP is immutable; NodePorts are
/// kept, allocated when a port needs one, and freed when none uses them any more.
pub async fn check_update(
    state: &ApiState,
    resource: &ResourceInfo,
    old: &Value,
    new: &mut Value,
) -> ApiResult<()> {
    if !is_service(resource) {
        return Ok(());
    }
    let mut allocation = Allocation::default();
    if let Err(err) = allocate_service(state, new, Some(old), &mut allocation).await {
        release(state, &allocation).await;
        return Err(err);
    }
    let kept: std::collections::HashSet<u16> = node_ports(new).into_iter().collect();
    for port in node_ports(old) {
        if !kept.contains(&port) {
            let _ = state
                .store
                .delete(&format!("{PORT_CLAIMS}{port}"), None)
                .await;
        }
    }
    Ok(())
}

fn service_type(obj: &Value) -> &str {
    obj.pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
}

fn node_ports(obj: &Value) -> Vec<u16> {
    obj.pointer("/spec/ports")
        .and_then(Value::as_array)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter_map(|p| u16::try_from(p).ok())
                .collect()
        })
        .unwrap_or_default()
}

fn invalid(name: &str, field: &str, value: Value, detail: &str) -> ApiError {
    status::invalid(
        "",
        "Service",
        name,
        &[status::FieldError::invalid(field, value, detail)],
    )
    .into()
}

async fn claim(state: &ApiState, key: String, allocation: &mut Allocation) -> ApiResult<bool> {
    match state
        .store
        .create(&key, bytes::Bytes::from_static(b"{}"))
        .await
    {
        Ok(_) => {
            allocation.keys.push(key);
            Ok(true)
        }
        Err(StoreError::AlreadyExists { .. }) => Ok(false),
        Err(err) => Err(ApiError::from_store(err, &Target::new("", "services", ""))),
    }
}

async fn allocate_service(
    state: &ApiState,
    obj: &mut Value,
    old: Option<&Value>,
    allocation: &mut Allocation,
) -> ApiResult<()> {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let kind = service_type(obj).to_owned();
    let range = state.service_range;

    // ClusterIP: kept from the old object, or the requested one, or a free one.
    let old_ip = old
        .and_then(|o| o.pointer("/spec/clusterIP"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let requested = obj
        .pointer("/spec/clusterIP")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let ip = match (&old_ip, requested.as_str()) {
        _ if kind == "ExternalName" => None,
        (Some(old_ip), "") => Some(old_ip.clone()),
        (Some(old_ip), new) if new != old_ip => {
            return Err(invalid(
                &name,
                "spec.clusterIPs[0]",
                json!(new),
                "field is immutable",
            ));
        }
        (Some(old_ip), _) => Some(old_ip.clone()),
        (None, "None") => Some("None".to_owned()),
        (None, "") => Some(allocate_ip(state, range, allocation).await?.to_string()),
        (None, wanted) => {
            let parsed: Ipv4Addr = wanted.parse().map_err(|_| {
                invalid(
                    &name,
                    "spec.clusterIPs[0]",
                    json!(wanted),
                    "must be a valid IP address",
                )
            })?;
            if !range.contains(parsed) {
                return Err(invalid(
                    &name,
                    "spec.clusterIPs[0]",
                    json!(wanted),
                    &format!(
                        "failed to allocate IP {wanted}: the provided IP ({wanted}) is not in the valid range. The range of valid IPs is {}/{}",
                        range.base, range.prefix
                    ),
                ));
            }
            if !claim(state, format!("{IP_CLAIMS}{parsed}"), allocation).await? {
                return Err(invalid(
                    &name,
                    "spec.clusterIPs[0]",
                    json!(wanted),
                    &format!("failed to allocate IP {wanted}: provided IP is already allocated"),
                ));
            }
            Some(parsed.to_string())
        }
    };
    if let (Some(ip), Some(spec)) = (ip, obj.get_mut("spec").and_then(Value::as_object_mut)) {
        spec.insert("clusterIP".into(), json!(ip));
        spec.insert("clusterIPs".into(), json!([ip]));
        if ip != "None" {
            spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
            spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        }
    }

    // NodePorts for NodePort and LoadBalancer services.
    let wants_node_ports = kind == "NodePort" || kind == "LoadBalancer";
    let old_ports = old.map(node_ports).unwrap_or_default();
    let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
        return Ok(());
    };
    for (i, port) in ports.iter_mut().enumerate() {
        let Some(port) = port.as_object_mut() else {
            continue;
        };
        if !wants_node_ports {
            port.remove("nodePort");
            continue;
        }
        match port.get("nodePort").and_then(Value::as_u64) {
            Some(wanted) => {
                let wanted_port = u16::try_from(wanted).unwrap_or(0);
                if !NODE_PORTS.contains(&wanted_port) {
                    return Err(invalid(
                        &name,
                        &format!("spec.ports[{i}].nodePort"),
                        json!(wanted),
                        "provided port is not in the valid range. The range of valid ports is 30000-32767",
                    ));
                }
                if old_ports.contains(&wanted_port) {
                    continue;
                }
                if !claim(state, format!("{PORT_CLAIMS}{wanted_port}"), allocation).await? {
                    return Err(invalid(
                        &name,
                        &format!("spec.ports[{i}].nodePort"),
                        json!(wanted),
                        "provided port is already allocated",
                    ));
                }
            }
            None => {
                let port_number = allocate_node_port(state, allocation).await?;
                port.insert("nodePort".into(), json!(port_number));
            }
        }
    }
    Ok(())
}

async fn allocate_ip(
    state: &ApiState,
    range: ServiceRange,
    allocation: &mut Allocation,
) -> ApiResult<Ipv4Addr> {
    use rand::Rng as _;
    let size = range.size();
    // Offsets 1..=10 are kept for well-known services (the API's .1, DNS's .10).
    let usable = size.saturating_sub(12).max(1);
    let start = rand::rng().random_range(0..usable);
    for step in 0..usable {
        let offset = 11 + (start + step) % usable;
        let ip = range.at(offset);
        if claim(state, format!("{IP_CLAIMS}{ip}"), allocation).await? {
            return Ok(ip);
        }
    }
    Err(status::internal_error("no ClusterIP left in the service range").into())
}

async fn allocate_node_port(state: &ApiState, allocation: &mut Allocation) -> ApiResult<u16> {
    use rand::Rng as _;
    let count = u32::from(NODE_PORTS.end() - NODE_PORTS.start()) + 1;
    let start = rand::rng().random_range(0..count);
    for step in 0..count {
        let port = *NODE_PORTS.start() + u16::try_from((start + step) % count).unwrap_or(0);
        if claim(state, format!("{PORT_CLAIMS}{port}"), allocation).await? {
            return Ok(port);
        }
    }
    Err(status::internal_error("no NodePort left in 30000-32767").into())
}

/// What a new object brings along: every namespace gets its `default` ServiceAccount and the
/// `kube-root-ca.crt` ConfigMap (the jobs of kube-controller-manager's serviceaccount and
/// root-ca-cert-publisher controllers upstream; here they cannot lag).
pub async fn after_create(state: &ApiState, resource: &ResourceInfo, obj: &Value) {
    if !(resource.group.is_empty() && resource.kind == "Namespace") {
        return;
    }
    let Some(namespace) = obj.pointer("/metadata/name").and_then(Value::as_str) else {
        return;
    };
    let mut account = crate::bootstrap::default_service_account(namespace);
    account["metadata"]["uid"] = json!(uuid::Uuid::new_v4().to_string());
    account["metadata"]["creationTimestamp"] = json!(crate::objects::now_rfc3339());
    let key = format!("/registry/serviceaccounts/{namespace}/default");
    let value = bytes::Bytes::from(serde_json::to_vec(&account).unwrap_or_default());
    match state.store.create(&key, value).await {
        Ok(_) | Err(StoreError::AlreadyExists { .. }) => {}
        Err(err) => {
            tracing::warn!(%namespace, error = %err, "could not create the default ServiceAccount")
        }
    }
    if let Some(ca_pem) = &state.root_ca_pem {
        let key = format!(
            "/registry/configmaps/{namespace}/{}",
            crate::bootstrap::ROOT_CA_CONFIG_MAP
        );
        let config_map = crate::bootstrap::root_ca_config_map(namespace, ca_pem);
        if let Err(err) = crate::bootstrap::create_if_absent(&*state.store, &key, config_map).await
        {
            tracing::warn!(%namespace, error = %err, "could not publish kube-root-ca.crt");
        }
    }
}

/// The label prefix only administrators may set on nodes (upstream's NodeRestriction).
const NODE_RESTRICTION_PREFIX: &str = "node-restriction.kubernetes.io/";

/// NodeRestriction, as upstream's admission plugin: a node (`system:node:NAME`) creates and
/// updates only its own Node object, never sets or changes its `node-restriction.kubernetes.io/`
/// labels, and creates no pods but mirror pods. Other users pass.
pub fn node_restriction(
    user: &crate::auth::UserInfo,
    resource: &ResourceInfo,
    old: Option<&Value>,
    new: &Value,
) -> ApiResult<()> {
    let Some(node) = crate::authz::node::node_name(user) else {
        return Ok(());
    };
    if !resource.group.is_empty() {
        return Ok(());
    }
    let name = crate::objects::name(new).unwrap_or_default();
    let forbid = |why: String| -> ApiResult<()> {
        Err(status::forbidden(&Target::of(resource, name), &why).into())
    };
    match resource.kind {
        "Node" => {
            if name != node {
                return forbid(format!(
                    "node {node:?} is not allowed to modify node {name:?}"
                ));
            }
            let restricted = |obj: Option<&Value>| -> Vec<(String, Value)> {
                obj.and_then(|o| o.pointer("/metadata/labels"))
                    .and_then(Value::as_object)
                    .into_iter()
                    .flatten()
                    .filter(|(key, _)| key.starts_with(NODE_RESTRICTION_PREFIX))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect()
            };
            let (before, after) = (restricted(old), restricted(Some(new)));
            if before != after {
                let mut changed: Vec<String> = before
                    .iter()
                    .chain(after.iter())
                    .filter(|pair| !(before.contains(pair) && after.contains(pair)))
                    .map(|(key, _)| key.clone())
                    .collect();
                changed.sort();
                changed.dedup();
                let verb = if old.is_some() { "modify" } else { "set" };
                return forbid(format!(
                    "node {node:?} is not allowed to {verb} labels: {}",
                    changed.join(", ")
                ));
            }
        }
        "Pod" if old.is_none() => {
            let mirror = new
                .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
                .is_some();
            if !mirror {
                return forbid(format!(
                    "pod does not have \"kubernetes.io/config.mirror\" annotation, node {node:?} can only create mirror pods"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Where pods find their service account's token, CA and namespace.
pub const SERVICE_ACCOUNT_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// ServiceAccount admission, as upstream's: a new pod runs as `spec.serviceAccountName`
/// (default `default`), which must exist; unless automounting is turned off (on the pod or
/// the account) it gets the projected volume `kube-api-access-XXXXX` (a bound token, the
/// cluster CA, its namespace) mounted read-only in every container. Mirror pods are left alone.
pub async fn service_account(
    state: &ApiState,
    resource: &ResourceInfo,
    obj: &mut Value,
) -> ApiResult<()> {
    if !(resource.group.is_empty() && resource.kind == "Pod") {
        return Ok(());
    }
    if obj
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some()
    {
        return Ok(());
    }
    let namespace = crate::objects::namespace(obj)
        .unwrap_or("default")
        .to_owned();
    let pod_name = crate::objects::name(obj).unwrap_or_default().to_owned();
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let text = |key: &str| {
        spec.get(key)
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .map(str::to_owned)
    };
    let account_name = text("serviceAccountName")
        .or_else(|| text("serviceAccount"))
        .unwrap_or_else(|| "default".to_owned());
    spec.insert("serviceAccountName".into(), json!(account_name));
    spec.insert("serviceAccount".into(), json!(account_name));
    let Some(account) =
        crate::serviceaccount::current(state, "ServiceAccount", &namespace, &account_name).await
    else {
        return Err(status::forbidden(
            &Target::of(resource, &pod_name),
            &format!(
                "error looking up service account {namespace}/{account_name}: serviceaccount \"{account_name}\" not found"
            ),
        )
        .into());
    };
    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            account
                .get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if !automount {
        return Ok(());
    }
    let mounts_at = |container: &Value| {
        container
            .get("volumeMounts")
            .and_then(Value::as_array)
            .is_some_and(|mounts| {
                mounts.iter().any(|m| {
                    m.get("mountPath").and_then(Value::as_str) == Some(SERVICE_ACCOUNT_MOUNT_PATH)
                })
            })
    };
    let volumes: Vec<String> = spec
        .get("volumes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|v| v.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    let volume_name = loop {
        let name = format!("kube-api-access-{}", random_suffix());
        if !volumes.contains(&name) {
            break name;
        }
    };
    let mut mounted = false;
    for kind in ["initContainers", "containers"] {
        for container in spec
            .get_mut(kind)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            if mounts_at(container) {
                continue;
            }
            let Some(container) = container.as_object_mut() else {
                continue;
            };
            let mounts = container.entry("volumeMounts").or_insert_with(|| json!([]));
            if let Some(mounts) = mounts.as_array_mut() {
                mounts.push(json!({
                    "name": volume_name,
                    "readOnly": true,
                    "mountPath": SERVICE_ACCOUNT_MOUNT_PATH,
                }));
                mounted = true;
            }
        }
    }
    if !mounted {
        return Ok(());
    }
    let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
    if let Some(volumes) = volumes.as_array_mut() {
        volumes.push(json!({
            "name": volume_name,
            "projected": {
                "defaultMode": 420,
                "sources": [
                    { "serviceAccountToken": { "expirationSeconds": 3607, "path": "token" } },
                    { "configMap": {
                        "name": crate::bootstrap::ROOT_CA_CONFIG_MAP,
                        "items": [{ "key": "ca.crt", "path": "ca.crt" }],
                    } },
                    { "downwardAPI": { "items": [{
                        "path": "namespace",
                        "fieldRef": { "apiVersion": "v1", "fieldPath": "metadata.namespace" },
                    }] } },
                ],
            },
        }));
    }
    Ok(())
}

/// Five characters as upstream's generated names use them (no vowels, no look-alikes).
fn random_suffix() -> String {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Give back what a failed create took.
pub async fn release(state: &ApiState, allocation: &Allocation) {
    for key in &allocation.keys {
        if let Err(err) = state.store.delete(key, None).await {
            tracing::warn!(%key, error = %err, "could not release an allocation");
        }
    }
}

/// Give back what a deleted object held.
pub async fn release_for(state: &ApiState, resource: &ResourceInfo, obj: &Value) {
    if !is_service(resource) {
        return;
    }
    let mut keys = Vec::new();
    if let Some(ip) = obj.pointer("/spec/clusterIP").and_then(Value::as_str)
        && ip.parse::<Ipv4Addr>().is_ok()
    {
        keys.push(format!("{IP_CLAIMS}{ip}"));
    }
    for port in node_ports(obj) {
        keys.push(format!("{PORT_CLAIMS}{port}"));
    }
    release(state, &Allocation { keys }).await;
}

/// A pod's QoS class from its containers' requests and limits.
pub fn pod_qos_class(spec: &Value) -> &'static str {
    let containers = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec.get(*k).and_then(Value::as_array))
        .flatten();
    let mut any = false;
    let mut guaranteed = true;
    for container in containers {
        let resources = container.get("resources");
        let requests = resources
            .and_then(|r| r.get("requests"))
            .and_then(Value::as_object);
        let limits = resources
            .and_then(|r| r.get("limits"))
            .and_then(Value::as_object);
        let has = |m: Option<&serde_json::Map<String, Value>>, k: &str| {
            m.is_some_and(|m| m.contains_key(k))
        };
        for resource in ["cpu", "memory"] {
            if has(requests, resource) || has(limits, resource) {
                any = true;
            }
            let limit = limits.and_then(|l| l.get(resource));
            let request = requests.and_then(|r| r.get(resource)).or(limit);
            if limit.is_none() || request != limit {
                guaranteed = false;
            }
        }
    }
    match (any, guaranteed) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

/// The DefaultStorageClass admission plugin: a PersistentVolumeClaim created without a
/// `storageClassName` (absent, not `""`, which asks for no class) gets the default
/// StorageClass, the newest one when several are marked default.
pub async fn default_storage_class(
    state: &ApiState,
    resource: &ResourceInfo,
    obj: &mut Value,
) -> ApiResult<()> {
    if !(resource.group.is_empty() && resource.kind == "PersistentVolumeClaim") {
        return Ok(());
    }
    let has_class = obj
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null())
        || obj
            .pointer("/metadata/annotations/volume.beta.kubernetes.io~1storage-class")
            .is_some();
    if has_class {
        return Ok(());
    }
    let page = state
        .store
        .list(STORAGE_CLASSES, tugboat_store::ListOptions::default())
        .await
        .map_err(|err| {
            ApiError::from_store(err, &Target::new("storage.k8s.io", "storageclasses", ""))
        })?;
    let mut defaults: Vec<(String, String)> = page
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .filter(|class| {
            let annotations = class
                .pointer("/metadata/annotations")
                .and_then(|a| serde_json::from_value(a.clone()).ok())
                .unwrap_or_default();
            tugboat_api::table::is_default_storage_class(&annotations)
        })
        .map(|class| {
            let meta = |field: &str| {
                class["metadata"][field]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned()
            };
            (meta("creationTimestamp"), meta("name"))
        })
        .collect();
    // Newest first, then by name, as upstream's `GetDefaultClass`.
    defaults.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    if let (Some((_, name)), Some(spec)) = (
        defaults.first(),
        obj.get_mut("spec").and_then(Value::as_object_mut),
    ) {
        spec.insert("storageClassName".into(), Value::String(name.clone()));
    }
    Ok(())
}

/// The StorageObjectInUseProtection admission plugin: every new PersistentVolumeClaim carries
/// the `kubernetes.io/pvc-protection` finalizer, which the volume controller removes once no
/// pod uses the claim, so deleting a claim never pulls the volume from under a running pod.
pub fn protect_claim(resource: &ResourceInfo, obj: &mut Value) {
    if !(resource.group.is_empty() && resource.kind == "PersistentVolumeClaim") {
        return;
    }
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let finalizers = meta
        .entry("finalizers")
        .or_insert_with(|| Value::Array(Vec::new()));
    if let Some(list) = finalizers.as_array_mut()
        && !list.iter().any(|f| f.as_str() == Some(PVC_PROTECTION))
    {
        list.push(Value::String(PVC_PROTECTION.to_owned()));
    }
}

/// The finalizer of [`protect_claim`].
pub const PVC_PROTECTION: &str = "kubernetes.io/pvc-protection";

const STORAGE_CLASSES: &str = "/registry/storage.k8s.io/storageclasses/";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_classes() {
        assert_eq!(
            pod_qos_class(&json!({"containers": [{"name": "a"}]})),
            "BestEffort"
        );
        let limited =
            json!({"containers": [{"resources": {"limits": {"cpu": "1", "memory": "1Gi"}}}]});
        assert_eq!(pod_qos_class(&limited), "Guaranteed");
        let requested = json!({"containers": [{"resources": {"requests": {"cpu": "100m"}}}]});
        assert_eq!(pod_qos_class(&requested), "Burstable");
    }

    #[test]
    fn service_range_bounds() {
        let range = ServiceRange::default();
        assert!(range.contains(Ipv4Addr::new(10, 96, 0, 1)));
        assert!(!range.contains(Ipv4Addr::new(10, 96, 0, 0)));
        assert!(!range.contains(Ipv4Addr::new(10, 96, 255, 255)));
        assert!(!range.contains(Ipv4Addr::new(10, 97, 0, 1)));
    }
}
