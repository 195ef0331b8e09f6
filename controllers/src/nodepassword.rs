//! Node password Secrets follow their Node, as k3s's node-password controller makes them.
//!
//! The API server stores a joining node's password hash in `kube-system/<node>.node-password.tugboat`
//! before the Node exists (the agent registers it after joining). Once the Node is there, this
//! controller gives the Secret an ownerReference to it, so the garbage collector deletes the
//! Secret with the Node and `kubectl delete node X` frees the name X for another machine. A
//! Secret whose Node never came (the agent stopped between joining and registering) is deleted
//! once it is [`NodePasswordConfig::orphan_age`] old, as k3s does after 10 minutes.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client};
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tracing::info;
use tugboat_api::nodepassword::{SECRET_NAMESPACE, SECRET_TYPE, node_of_secret, secret_name};

use crate::error::kube_status_is;
use crate::framework::runner::{Reconciler, Requeue, run_workers};
use crate::framework::{Informer, ObjectKey, SharedInformers, WorkQueue};
use crate::{Error, Result};

/// Settings of the node password controller.
#[derive(Debug, Clone)]
pub struct NodePasswordConfig {
    /// How old a password Secret without a Node (and without an owner) must be before it is
    /// deleted: the time an agent may take from joining to registering its Node.
    pub orphan_age: Duration,
}

impl Default for NodePasswordConfig {
    fn default() -> Self {
        Self {
            orphan_age: Duration::from_secs(600),
        }
    }
}

/// See the module documentation. Keyed by node name.
pub struct NodePasswordController {
    client: Client,
    nodes: Store<Node>,
    secrets: Store<Secret>,
    queue: WorkQueue<ObjectKey>,
    config: NodePasswordConfig,
}

/// Runs the node password controller, with informers of its own, until `cancel` fires.
pub async fn run(
    client: Client,
    config: NodePasswordConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let informers = SharedInformers::new(client, &cancel);
    let result = run_with(&informers, config, cancel).await;
    informers.shutdown().await;
    result
}

/// Runs the node password controller on `informers` (shared with the other controllers of the process) until
/// `cancel` fires.
pub async fn run_with(
    informers: &SharedInformers,
    config: NodePasswordConfig,
    cancel: CancellationToken,
) -> Result<()> {
    let node_informer = informers.informer::<Node>();
    let secret_informer = Informer::new(Api::<Secret>::namespaced(
        informers.client().clone(),
        SECRET_NAMESPACE,
    ));
    let controller = NodePasswordController {
        client: informers.client().clone(),
        nodes: node_informer.store(),
        secrets: secret_informer.store(),
        queue: WorkQueue::default(),
        config,
    };
    let workers = async {
        tokio::select! {
            () = cancel.cancelled() => return Err(Error::CacheNotSynced("node password")),
            ready = async {
                controller.nodes.wait_until_ready().await?;
                controller.secrets.wait_until_ready().await
            } => ready.map_err(|_| Error::CacheNotSynced("node password"))?,
        }
        run_workers(&controller, &controller.queue, 1, &cancel).await;
        Ok::<_, Error>(())
    };
    let enqueue = |node: Option<&str>| {
        if let Some(node) = node {
            controller.queue.add(ObjectKey::new("", node));
        }
    };
    let (result, (), ()) = tokio::join!(
        workers,
        node_informer.run(
            |change| enqueue(change.object().metadata.name.as_deref()),
            &cancel
        ),
        secret_informer.run(
            |change| {
                let secret = change.object();
                if secret.type_.as_deref() == Some(SECRET_TYPE) {
                    enqueue(secret.metadata.name.as_deref().and_then(node_of_secret));
                }
            },
            &cancel
        ),
    );
    controller.queue.shut_down();
    result
}

/// The owner reference a node password Secret gets to its Node.
fn owner_reference(node: &Node) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: node.metadata.name.clone()?,
        uid: node.metadata.uid.clone()?,
        ..OwnerReference::default()
    })
}

impl Reconciler for NodePasswordController {
    fn name(&self) -> &'static str {
        "node-password"
    }

    async fn sync(&self, key: &ObjectKey) -> Result<Requeue> {
        let name = secret_name(&key.name);
        let Some(secret) = self
            .secrets
            .get(&ObjectRef::new(&name).within(SECRET_NAMESPACE))
        else {
            return Ok(Requeue::Never);
        };
        if secret.type_.as_deref() != Some(SECRET_TYPE) {
            return Ok(Requeue::Never);
        }
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), SECRET_NAMESPACE);
        let owners = secret.metadata.owner_references.clone().unwrap_or_default();
        if let Some(node) = self.nodes.get(&ObjectRef::new(&key.name)) {
            let Some(reference) = owner_reference(&node) else {
                return Ok(Requeue::Never);
            };
            if owners.iter().any(|owner| owner.uid == reference.uid) {
                return Ok(Requeue::Never);
            }
            info!(node = %key.name, secret = %name, "tying the node password Secret to its Node");
            let mut references = owners;
            references.push(reference);
            // Against the version read: a concurrent change makes this a 409, retried.
            let patch = json!({ "metadata": {
                "ownerReferences": references,
                "resourceVersion": secret.metadata.resource_version,
            } });
            secrets
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            return Ok(Requeue::Never);
        }
        // With an owner, the garbage collector decides.
        if !owners.is_empty() {
            return Ok(Requeue::Never);
        }
        let age = secret
            .metadata
            .creation_timestamp
            .as_ref()
            .and_then(|created| {
                let since = k8s_openapi::jiff::Timestamp::now().duration_since(created.0);
                Duration::try_from(since).ok()
            })
            .unwrap_or_default();
        if age < self.config.orphan_age {
            return Ok(Requeue::After(self.config.orphan_age - age));
        }
        info!(node = %key.name, secret = %name, ?age, "deleting a node password Secret whose Node never registered");
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: secret.metadata.uid.clone(),
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match secrets.delete(&name, &params).await {
            Ok(_) => Ok(Requeue::Never),
            Err(error) if kube_status_is(&error, 404) || kube_status_is(&error, 409) => {
                Ok(Requeue::Never)
            }
            Err(error) => Err(error.into()),
        }
    }
}
