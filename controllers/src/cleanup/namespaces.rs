//! Namespace deletion: a terminating namespace is emptied of every namespaced kind, events
//! last (they may describe the deletion of the rest), then finalized.

use kube::Client;
use kube::api::{Api, ApiResource, ListParams};
use serde_json::{Value, json};

use super::plan::Policy;
use super::{Kind, api_in, delete_quietly};
use crate::error::Result;

fn core_events() -> Kind {
    Kind {
        resource: ApiResource {
            group: String::new(),
            version: "v1".into(),
            api_version: "v1".into(),
            kind: "Event".into(),
            plural: "events".into(),
        },
        namespaced: true,
    }
}

/// One namespace deletion pass over `kinds` (those [`super::served_kinds`] names).
pub(super) async fn empty_terminating_namespaces(client: &Client, kinds: &[Kind]) -> Result<()> {
    let events = core_events();
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let list = namespaces.list(&ListParams::default().match_any()).await?;
    for namespace in list.items {
        if namespace.metadata.deletion_timestamp.is_none() {
            continue;
        }
        let finalizers = namespace
            .spec
            .as_ref()
            .and_then(|s| s.finalizers.clone())
            .unwrap_or_default();
        if !finalizers.iter().any(|f| f == "kubernetes") {
            continue;
        }
        let name = namespace.metadata.name.clone().unwrap_or_default();
        let mut remaining = 0usize;
        let namespaced = kinds.iter().filter(|k| k.namespaced);
        for kind in namespaced.chain(std::iter::once(&events)) {
            // Events go last: they may describe the deletion of the rest.
            if kind.resource.kind == "Event" && remaining > 0 {
                continue;
            }
            let api = api_in(client, kind, Some(&name));
            let items = api.list(&ListParams::default().match_any()).await?.items;
            remaining += items.len();
            for item in items {
                if item.metadata.deletion_timestamp.is_some() {
                    continue;
                }
                let item_name = item.metadata.name.clone().unwrap_or_default();
                let uid = item.metadata.uid.clone().unwrap_or_default();
                delete_quietly(&api, &item_name, &uid, Policy::Background).await;
            }
        }
        if remaining > 0 {
            continue;
        }
        let mut finalized = serde_json::to_value(&namespace).unwrap_or(Value::Null);
        finalized["spec"]["finalizers"] = json!(
            finalizers
                .iter()
                .filter(|f| *f != "kubernetes")
                .collect::<Vec<_>>()
        );
        let data = serde_json::to_vec(&finalized).unwrap_or_default();
        let request = http::Request::put(format!("/api/v1/namespaces/{name}/finalize"))
            .header("content-type", "application/json")
            .body(data)
            .map_err(|err| crate::error::Error::InvalidSpec {
                kind: "Namespace",
                key: name.clone(),
                message: err.to_string(),
            })?;
        match client.request_text(request).await {
            Ok(_) => tracing::info!(namespace = %name, "namespace emptied and finalized"),
            Err(err) => tracing::debug!(namespace = %name, error = %err, "finalize failed"),
        }
    }
    Ok(())
}
