//! Resource types from the server's aggregated discovery (`/api` and `/apis`, two requests, as
//! kubectl 1.32 does), and kubectl's ways of naming them: `deployments`, `deployment`,
//! `deploy`, `Deployment`, `deployments.apps`, `deployment.v1.apps`.

use serde_json::Value;
use tugboat_api::discovery::ApiGroupDiscoveryList;

use super::Ctx;

/// What kubectl asks `/api` and `/apis` for.
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList";

/// One resource type of one group-version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// API group; empty for core.
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural (`deployments`).
    pub plural: String,
    /// Singular (`deployment`).
    pub singular: String,
    /// Kind (`Deployment`).
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names (`deploy`).
    pub short_names: Vec<String>,
    /// Verbs.
    pub verbs: Vec<String>,
    /// Subresources (`scale`, `status`).
    pub subresources: Vec<String>,
    /// Categories (`all`).
    pub categories: Vec<String>,
    /// Whether this is the group's preferred version.
    pub preferred: bool,
}

impl Resource {
    /// `apps/v1` or `v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `deployments.apps` or `pods`: how the server names it in messages.
    pub fn group_resource(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `deployment.apps` or `pod`: how kubectl prints `KIND/NAME`.
    pub fn kind_group(&self) -> String {
        let kind = self.kind.to_lowercase();
        if self.group.is_empty() {
            kind
        } else {
            format!("{kind}.{}", self.group)
        }
    }

    /// The collection's path; `namespace` is ignored for cluster-scoped types, and `None`
    /// means all namespaces.
    pub fn collection_path(&self, namespace: Option<&str>) -> String {
        let base = if self.group.is_empty() {
            format!("/api/{}", self.version)
        } else {
            format!("/apis/{}/{}", self.group, self.version)
        };
        match namespace {
            Some(ns) if self.namespaced => format!("{base}/namespaces/{ns}/{}", self.plural),
            _ => format!("{base}/{}", self.plural),
        }
    }

    /// One object's path.
    pub fn object_path(&self, namespace: &str, name: &str) -> String {
        format!("{}/{name}", self.collection_path(Some(namespace)))
    }
}

/// All resource types the server serves.
#[derive(Debug, Clone, Default)]
pub struct Resources {
    /// In discovery order (groups by priority, preferred versions first).
    pub list: Vec<Resource>,
}

impl Resources {
    /// Ask the server.
    pub async fn discover(ctx: &Ctx) -> anyhow::Result<Resources> {
        let mut list = Vec::new();
        for root in ["/api", "/apis"] {
            let text = ctx
                .call(http::Method::GET, root, None, Some(AGGREGATED), Vec::new())
                .await?;
            let doc: ApiGroupDiscoveryList = serde_json::from_str(&text).map_err(|error| {
                anyhow::anyhow!(
                    "the server's discovery at {root} is not aggregated discovery v2: {error}"
                )
            })?;
            list.extend(Self::from_document(&doc).list);
        }
        Ok(Resources { list })
    }

    /// The resources of one aggregated discovery document.
    pub fn from_document(doc: &ApiGroupDiscoveryList) -> Resources {
        let mut list = Vec::new();
        for group in &doc.items {
            let group_name = group.metadata.name.clone().unwrap_or_default();
            for (index, version) in group.versions.iter().enumerate() {
                for resource in &version.resources {
                    list.push(Resource {
                        group: group_name.clone(),
                        version: version.version.clone(),
                        plural: resource.resource.clone(),
                        singular: resource.singular_resource.clone(),
                        kind: resource.response_kind.kind.clone(),
                        namespaced: resource.scope == "Namespaced",
                        short_names: resource.short_names.clone(),
                        verbs: resource.verbs.clone(),
                        subresources: resource
                            .subresources
                            .iter()
                            .map(|s| s.subresource.clone())
                            .collect(),
                        categories: resource.categories.clone(),
                        preferred: index == 0,
                    });
                }
            }
        }
        Resources { list }
    }

    /// The type a user means by `name` (`deploy`, `deployments.apps`, `deployment.v1.apps`).
    pub fn resolve(&self, name: &str) -> anyhow::Result<&Resource> {
        let lower = name.to_lowercase();
        let (resource, rest) = match lower.split_once('.') {
            Some((resource, rest)) => (resource, Some(rest)),
            None => (lower.as_str(), None),
        };
        let names_match = |r: &Resource| {
            r.plural == resource
                || r.singular == resource
                || r.kind.to_lowercase() == resource
                || r.short_names.iter().any(|s| s == resource)
        };
        let scope_match = |r: &Resource| match rest {
            None => true,
            Some(rest) => {
                r.group == rest
                    || rest
                        .split_once('.')
                        .is_some_and(|(version, group)| r.version == version && r.group == group)
                    || (r.group.is_empty() && rest == r.version)
            }
        };
        let candidates: Vec<&Resource> = self
            .list
            .iter()
            .filter(|r| names_match(r) && scope_match(r))
            .collect();
        candidates
            .iter()
            .find(|r| r.preferred || rest.is_some_and(|rest| rest.contains(&r.version)))
            .or(candidates.first())
            .copied()
            .ok_or_else(|| anyhow::anyhow!("the server doesn't have a resource type {name:?}"))
    }

    /// The preferred types in a category (`all`), in discovery order.
    pub fn category(&self, name: &str) -> Vec<&Resource> {
        self.list
            .iter()
            .filter(|r| r.preferred && r.categories.iter().any(|c| c == name))
            .collect()
    }

    /// The type of a manifest's `apiVersion` and `kind`.
    pub fn for_kind(&self, api_version: &str, kind: &str) -> Option<&Resource> {
        let (group, version) = match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        };
        self.list
            .iter()
            .find(|r| r.group == group && r.version == version && r.kind == kind)
    }

    /// The type of an object read from a manifest, with kubectl's error when unknown.
    pub fn for_object(&self, object: &Value, source: &str) -> anyhow::Result<&Resource> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if api_version.is_empty() || kind.is_empty() {
            let mut missing = Vec::new();
            if api_version.is_empty() {
                missing.push("apiVersion not set");
            }
            if kind.is_empty() {
                missing.push("kind not set");
            }
            anyhow::bail!(
                "error validating {source:?}: error validating data: [{}]",
                missing.join(", ")
            );
        }
        self.for_kind(api_version, kind).ok_or_else(|| {
            let name = object
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let namespace = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            anyhow::anyhow!(
                "resource mapping not found for name: {name:?} namespace: {namespace:?} from {source:?}: no matches for kind {kind:?} in version {api_version:?}\nensure CRDs are installed first"
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources() -> Resources {
        let doc: ApiGroupDiscoveryList = serde_json::from_value(serde_json::json!({
            "kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {},
            "items": [
                {"metadata": {}, "versions": [{"version": "v1", "freshness": "Current", "resources": [
                    {"resource": "pods", "responseKind": {"group": "", "version": "v1", "kind": "Pod"},
                     "scope": "Namespaced", "singularResource": "pod", "verbs": ["get"], "shortNames": ["po"]},
                    {"resource": "nodes", "responseKind": {"group": "", "version": "v1", "kind": "Node"},
                     "scope": "Cluster", "singularResource": "node", "verbs": ["get"], "shortNames": ["no"]}
                ]}]},
                {"metadata": {"name": "apps"}, "versions": [{"version": "v1", "freshness": "Current", "resources": [
                    {"resource": "deployments", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"},
                     "scope": "Namespaced", "singularResource": "deployment", "verbs": ["get"], "shortNames": ["deploy"],
                     "subresources": [{"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get"]}]}
                ]}]}
            ]
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        Resources::from_document(&doc)
    }

    #[test]
    fn kubectl_names_resolve() {
        let resources = resources();
        for name in [
            "deploy",
            "deployment",
            "deployments",
            "Deployment",
            "deployments.apps",
            "deployment.v1.apps",
        ] {
            let found = resources
                .resolve(name)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(found.kind_group(), "deployment.apps");
        }
        let node = resources.resolve("no").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(node.collection_path(Some("x")), "/api/v1/nodes");
        let pod = resources.resolve("po").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pod.object_path("ns", "p"), "/api/v1/namespaces/ns/pods/p");
        let error = resources.resolve("foos").err().map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("the server doesn't have a resource type \"foos\"")
        );
    }
}
