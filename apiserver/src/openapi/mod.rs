//! OpenAPI v3 documents: the index at `/openapi/v3` and one document per group-version.
//!
//! kubectl reads them to learn that the server honours `fieldValidation` (so `kubectl apply`
//! validates server-side by default): it looks for the PATCH operation whose
//! `x-kubernetes-group-version-kind` matches the object and a `fieldValidation` parameter.

use serde_json::{Map, Value, json};
use tugboat_api::resources::Registry;

mod schemas;

/// The path of a group-version's document (`api/v1`, `apis/apps/v1`).
fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// A stable hash of a document, for the `?hash=` clients cache by.
fn hash_of(doc: &Value) -> String {
    // FNV-1a over the serialized document: stable across runs of the same build.
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in doc.to_string().bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016X}")
}

/// Every document, built once (schemas take a while to generate).
pub struct OpenApiDocs {
    index: Value,
    documents: std::collections::HashMap<String, Value>,
}

impl OpenApiDocs {
    /// Build the index and every group-version document of `registry`.
    pub fn build(registry: &Registry) -> Self {
        let mut documents = std::collections::HashMap::new();
        for group in registry.groups() {
            for version in &group.versions {
                if let Some(doc) = document(registry, group.group, version) {
                    documents.insert(gv_path(group.group, version), doc);
                }
            }
        }
        OpenApiDocs {
            index: index(registry),
            documents,
        }
    }

    /// `/openapi/v3`.
    pub fn index(&self) -> &Value {
        &self.index
    }

    /// `/openapi/v3/<path>`.
    pub fn document(&self, path: &str) -> Option<&Value> {
        self.documents.get(path.trim_matches('/'))
    }
}

/// `/openapi/v3`: every group-version and where its document is.
pub fn index(registry: &Registry) -> Value {
    let mut paths = Map::new();
    for group in registry.groups() {
        for version in &group.versions {
            let path = gv_path(group.group, version);
            let doc = document(registry, group.group, version).unwrap_or_default();
            paths.insert(
                path.clone(),
                json!({ "serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash_of(&doc)) }),
            );
        }
    }
    json!({ "paths": paths })
}

/// The document of `path` (`api/v1`, `apis/apps/v1`), if served.
pub fn document_at(registry: &Registry, path: &str) -> Option<Value> {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["api", version] => document(registry, "", version),
        ["apis", group, version] => document(registry, group, version),
        _ => None,
    }
}

fn document(registry: &Registry, group: &str, version: &str) -> Option<Value> {
    let resources: Vec<_> = registry
        .all()
        .filter(|r| r.group == group && r.serves_version(version))
        .collect();
    if resources.is_empty() {
        return None;
    }
    let kinds: Vec<&str> = resources.iter().map(|r| r.kind).collect();
    let component_schemas = schemas::component_schemas(group, version, &kinds);
    let prefix = format!("/{}", gv_path(group, version));
    let mut paths = Map::new();
    for resource in resources {
        let gvk = json!({ "group": group, "version": version, "kind": resource.kind });
        let item_path = if resource.namespaced {
            format!(
                "{prefix}/namespaces/{{namespace}}/{}/{{name}}",
                resource.plural
            )
        } else {
            format!("{prefix}/{}/{{name}}", resource.plural)
        };
        let write_params = json!([
            { "name": "dryRun", "in": "query", "schema": { "type": "string" } },
            { "name": "fieldManager", "in": "query", "schema": { "type": "string" } },
            { "name": "fieldValidation", "in": "query", "schema": { "type": "string" } },
        ]);
        paths.insert(
            item_path,
            json!({
                "get": { "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk },
                "put": { "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk, "parameters": write_params },
                "patch": {
                    "x-kubernetes-action": "patch",
                    "x-kubernetes-group-version-kind": gvk,
                    "parameters": write_params,
                    "requestBody": { "content": {
                        "application/json-patch+json": { "schema": { "type": "object" } },
                        "application/merge-patch+json": { "schema": { "type": "object" } },
                        "application/strategic-merge-patch+json": { "schema": { "type": "object" } },
                    } },
                },
                "delete": { "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk },
            }),
        );
        let collection = if resource.namespaced {
            format!("{prefix}/namespaces/{{namespace}}/{}", resource.plural)
        } else {
            format!("{prefix}/{}", resource.plural)
        };
        paths.insert(
            collection,
            json!({
                "get": { "x-kubernetes-action": "list", "x-kubernetes-group-version-kind": gvk },
                "post": { "x-kubernetes-action": "post", "x-kubernetes-group-version-kind": gvk, "parameters": write_params },
            }),
        );
    }
    Some(json!({
        "openapi": "3.0.0",
        "info": { "title": "Kubernetes", "version": "v1.32.0" },
        "paths": paths,
        "components": { "schemas": component_schemas },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_patch_declares_field_validation() {
        let registry = Registry::builtin();
        let index = index(&registry);
        assert!(
            index["paths"]["apis/apps/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/apis/apps/v1?hash=")
        );
        let doc = document_at(&registry, "apis/apps/v1").unwrap();
        let patch =
            &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"];
        assert_eq!(
            patch["x-kubernetes-group-version-kind"]["kind"],
            "Deployment"
        );
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(document_at(&registry, "apis/nope/v1").is_none());
    }
}
