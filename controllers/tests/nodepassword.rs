//! The node password controller against a real API server (memory store): a node's password
//! Secret gets an ownerReference to the Node once the Node exists, so the garbage collector
//! deletes it with the Node; a password Secret whose Node never came is deleted once it is old
//! enough; other Secrets are left alone.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use tugboat_controllers::ControllersConfig;

mod common;

use common::{eventually, with_cluster_config};

/// A password Secret as the API server's join endpoint writes it.
async fn password_secret(secrets: &Api<Secret>, name: &str, type_: &str) -> anyhow::Result<()> {
    let secret = json!({
        "metadata": {"name": name, "namespace": "kube-system"},
        "type": type_,
        "immutable": true,
        "data": {"hash": "JHBia2RmMi1zaGEyNTYk"},
    });
    secrets
        .create(&PostParams::default(), &serde_json::from_value(secret)?)
        .await?;
    Ok(())
}

fn config() -> ControllersConfig {
    let mut config = ControllersConfig::default();
    config.cleanup.period = Duration::from_millis(200);
    config.node_password.orphan_age = Duration::from_secs(3);
    config
}

#[tokio::test]
async fn a_node_password_secret_goes_with_its_node_or_when_no_node_came() -> anyhow::Result<()> {
    with_cluster_config(config(), |client: Client| async move {
        let nodes: Api<Node> = Api::all(client.clone());
        let secrets: Api<Secret> = Api::namespaced(client, "kube-system");
        let node_type = "tugboat.dev/node-password";
        // Joined, registered: tied to the Node.
        password_secret(&secrets, "n1.node-password.tugboat", node_type).await?;
        // Joined, never registered: an orphan.
        password_secret(&secrets, "gone.node-password.tugboat", node_type).await?;
        let orphan_made = tokio::time::Instant::now();
        // Named like one, of another type: not this controller's.
        password_secret(&secrets, "other.node-password.tugboat", "Opaque").await?;
        let node = nodes
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": "n1"}}))?,
            )
            .await?;
        let uid = node.metadata.uid.clone().unwrap_or_default();
        eventually(|| async {
            let secret = secrets.get("n1.node-password.tugboat").await?;
            let owners = secret.metadata.owner_references.unwrap_or_default();
            Ok(owners
                .iter()
                .any(|o| o.kind == "Node" && o.name == "n1" && o.uid == uid)
                .then_some(()))
        })
        .await?;

        // The orphan goes once it is older than the orphan age (3 s), not before.
        eventually(|| async {
            Ok(secrets
                .get_opt("gone.node-password.tugboat")
                .await?
                .is_none()
                .then_some(()))
        })
        .await?;
        // Less one second: creationTimestamp has whole seconds.
        assert!(
            orphan_made.elapsed() >= Duration::from_secs(2),
            "deleted after {:?}",
            orphan_made.elapsed()
        );

        // Deleting the Node deletes its password Secret.
        nodes.delete("n1", &DeleteParams::default()).await?;
        eventually(|| async {
            Ok(secrets
                .get_opt("n1.node-password.tugboat")
                .await?
                .is_none()
                .then_some(()))
        })
        .await?;
        assert!(
            secrets
                .get_opt("other.node-password.tugboat")
                .await?
                .is_some(),
            "a Secret of another type was deleted"
        );
        Ok(())
    })
    .await
}
