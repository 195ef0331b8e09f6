//! Discovery documents built from the resource registry.
//!
//! Two forms, both of which kubectl 1.32 understands:
//! - legacy: `/api` (`APIVersions`), `/apis` (`APIGroupList`), `/apis/<group>` (`APIGroup`)
//!   and one `APIResourceList` per group-version (`/api/v1`, `/apis/apps/v1`), with
//!   subresources listed as `pods/status`;
//! - aggregated `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList` for `/api` and `/apis`,
//!   served when the `Accept` header asks for it (see [`wants_aggregated`]), which lets
//!   client-go discover everything in two requests.

#![warn(missing_docs)]

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    APIGroup, APIGroupList, APIResource, APIResourceList, APIVersions, GroupVersionForDiscovery,
    ServerAddressByClientCIDR,
};
use serde::{Deserialize, Serialize};

use crate::resources::{Registry, ResourceInfo};

/// The `Content-Type` of an aggregated discovery reply.
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Whether an `Accept` header asks for `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
/// (client-go sends it first, then v2beta1, then plain JSON.)
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|media_range| {
        let mut parts = media_range.split(';').map(str::trim);
        let essence = parts.next().unwrap_or_default();
        if !essence.eq_ignore_ascii_case("application/json") {
            return false;
        }
        let (mut group, mut version, mut kind) = (false, false, false);
        for param in parts {
            match param.split_once('=') {
                Some(("g", "apidiscovery.k8s.io")) => group = true,
                Some(("v", "v2")) => version = true,
                Some(("as", "APIGroupDiscoveryList")) => kind = true,
                _ => {}
            }
        }
        group && version && kind
    })
}

/// `apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroupDiscoveryList {
    /// Always `APIGroupDiscoveryList`.
    pub kind: String,
    /// Always `apidiscovery.k8s.io/v2`.
    pub api_version: String,
    /// Empty list metadata.
    pub metadata: EmptyMeta,
    /// Groups in priority order.
    pub items: Vec<ApiGroupDiscovery>,
}

/// Metadata that is present but empty (`{}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmptyMeta {}

/// Object metadata carrying only a name (the group name; absent for core).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NameMeta {
    /// The group name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One group with all its versions, preferred first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiGroupDiscovery {
    /// `name` is the group (none for core).
    pub metadata: NameMeta,
    /// Versions, preferred first.
    pub versions: Vec<ApiVersionDiscovery>,
}

/// The resources of one group-version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiVersionDiscovery {
    /// The version (`v1`).
    pub version: String,
    /// Resources, in registry order.
    pub resources: Vec<ApiResourceDiscovery>,
    /// `Current` for everything served here.
    pub freshness: String,
}

/// Group, version and kind as aggregated discovery spells them (`group` always present).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupVersionKind {
    /// API group; empty for core.
    pub group: String,
    /// Version.
    pub version: String,
    /// Kind.
    pub kind: String,
}

/// One resource in aggregated discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiResourceDiscovery {
    /// Plural name.
    pub resource: String,
    /// The kind a GET returns.
    pub response_kind: GroupVersionKind,
    /// `Namespaced` or `Cluster`.
    pub scope: String,
    /// Singular name.
    pub singular_resource: String,
    /// Supported verbs.
    pub verbs: Vec<String>,
    /// Short names, omitted when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub short_names: Vec<String>,
    /// Categories, omitted when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Subresources, omitted when none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subresources: Vec<ApiSubresourceDiscovery>,
}

/// One subresource in aggregated discovery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiSubresourceDiscovery {
    /// The subresource name (`scale`).
    pub subresource: String,
    /// The kind it returns (`autoscaling/v1 Scale`).
    pub response_kind: GroupVersionKind,
    /// Supported verbs.
    pub verbs: Vec<String>,
}

/// Builds discovery documents for a registry.
#[derive(Debug, Clone)]
pub struct Discovery {
    registry: Registry,
}

impl Discovery {
    /// Discovery for exactly the resources of `registry`.
    pub fn new(registry: Registry) -> Self {
        Self { registry }
    }

    /// Switches `metrics.k8s.io/v1beta1` on or off.
    pub fn with_metrics(self, enabled: bool) -> Self {
        let registry = if enabled {
            self.registry.plus_metrics()
        } else {
            Registry::from_resources(
                self.registry
                    .all()
                    .filter(|r| r.group != "metrics.k8s.io")
                    .collect(),
            )
        };
        Self { registry }
    }

    /// The registry the documents describe.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// `/api`: the core versions and the address clients should use.
    pub fn api_versions(&self, server_address: &str) -> APIVersions {
        APIVersions {
            versions: self
                .registry
                .groups()
                .into_iter()
                .filter(|g| g.group.is_empty())
                .flat_map(|g| g.versions)
                .map(str::to_owned)
                .collect(),
            server_address_by_client_cidrs: vec![ServerAddressByClientCIDR {
                client_cidr: "0.0.0.0/0".to_owned(),
                server_address: server_address.to_owned(),
            }],
        }
    }

    /// `/apis`: every named group with its versions.
    pub fn api_group_list(&self) -> APIGroupList {
        APIGroupList {
            groups: self
                .registry
                .groups()
                .iter()
                .filter(|g| !g.group.is_empty())
                .filter_map(|g| self.api_group(g.group))
                .collect(),
        }
    }

    /// `/apis/<group>`.
    pub fn api_group(&self, group: &str) -> Option<APIGroup> {
        let found = self
            .registry
            .groups()
            .into_iter()
            .find(|g| g.group == group && !group.is_empty())?;
        let versions: Vec<GroupVersionForDiscovery> = found
            .versions
            .iter()
            .map(|v| GroupVersionForDiscovery {
                group_version: format!("{group}/{v}"),
                version: (*v).to_owned(),
            })
            .collect();
        Some(APIGroup {
            name: group.to_owned(),
            preferred_version: versions.first().cloned(),
            server_address_by_client_cidrs: None,
            versions,
        })
    }

    /// `/api/v1` or `/apis/<group>/<version>`: resources then their subresources, each
    /// subresource as `<plural>/<name>`.
    pub fn resource_list(&self, group: &str, version: &str) -> Option<APIResourceList> {
        let mut resources = Vec::new();
        for resource in self.registry.in_group_version(group, version) {
            resources.push(APIResource {
                name: resource.plural.to_owned(),
                singular_name: resource.singular.to_owned(),
                namespaced: resource.namespaced,
                kind: resource.kind.to_owned(),
                verbs: verbs(resource.verbs),
                short_names: non_empty(resource.short_names),
                categories: non_empty(resource.categories),
                group: None,
                version: None,
                storage_version_hash: None,
            });
            for sub in resource.subresources {
                let response = sub.response_kind(resource, version);
                // Group and version are only spelled out when they differ from the list's.
                let differs = response.group != group || response.version != version;
                resources.push(APIResource {
                    name: format!("{}/{}", resource.plural, sub.name),
                    singular_name: String::new(),
                    namespaced: resource.namespaced,
                    kind: response.kind.to_owned(),
                    verbs: verbs(sub.verbs),
                    short_names: None,
                    categories: None,
                    group: differs.then(|| response.group.to_owned()),
                    version: differs.then_some(response.version),
                    storage_version_hash: None,
                });
            }
        }
        if resources.is_empty() {
            return None;
        }
        Some(APIResourceList {
            group_version: group_version(group, version),
            resources,
        })
    }

    /// Aggregated discovery for `/api` (the core group only).
    pub fn aggregated_core(&self) -> ApiGroupDiscoveryList {
        self.aggregated(|group| group.is_empty())
    }

    /// Aggregated discovery for `/apis` (every named group, in priority order).
    pub fn aggregated_groups(&self) -> ApiGroupDiscoveryList {
        self.aggregated(|group| !group.is_empty())
    }

    fn aggregated(&self, include: impl Fn(&str) -> bool) -> ApiGroupDiscoveryList {
        let items = self
            .registry
            .groups()
            .into_iter()
            .filter(|g| include(g.group))
            .map(|g| ApiGroupDiscovery {
                metadata: NameMeta {
                    name: (!g.group.is_empty()).then(|| g.group.to_owned()),
                },
                versions: g
                    .versions
                    .iter()
                    .map(|version| ApiVersionDiscovery {
                        version: (*version).to_owned(),
                        resources: self
                            .registry
                            .in_group_version(g.group, version)
                            .map(|r| aggregated_resource(r, version))
                            .collect(),
                        freshness: "Current".to_owned(),
                    })
                    .collect(),
            })
            .collect();
        ApiGroupDiscoveryList {
            kind: "APIGroupDiscoveryList".to_owned(),
            api_version: "apidiscovery.k8s.io/v2".to_owned(),
            metadata: EmptyMeta {},
            items,
        }
    }
}

fn aggregated_resource(resource: &ResourceInfo, version: &str) -> ApiResourceDiscovery {
    ApiResourceDiscovery {
        resource: resource.plural.to_owned(),
        response_kind: GroupVersionKind {
            group: resource.group.to_owned(),
            version: version.to_owned(),
            kind: resource.kind.to_owned(),
        },
        scope: if resource.namespaced {
            "Namespaced"
        } else {
            "Cluster"
        }
        .to_owned(),
        singular_resource: resource.singular.to_owned(),
        verbs: verbs(resource.verbs),
        short_names: resource
            .short_names
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        categories: resource
            .categories
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        subresources: resource
            .subresources
            .iter()
            .map(|sub| {
                let response = sub.response_kind(resource, version);
                ApiSubresourceDiscovery {
                    subresource: sub.name.to_owned(),
                    response_kind: GroupVersionKind {
                        group: response.group.to_owned(),
                        version: response.version,
                        kind: response.kind.to_owned(),
                    },
                    verbs: verbs(sub.verbs),
                }
            })
            .collect(),
    }
}

fn verbs(verbs: &[crate::resources::Verb]) -> Vec<String> {
    verbs.iter().map(|v| v.as_str().to_owned()).collect()
}

fn non_empty(items: &[&str]) -> Option<Vec<String>> {
    (!items.is_empty()).then(|| items.iter().map(|s| (*s).to_owned()).collect())
}

fn group_version(group: &str, version: &str) -> String {
    if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn discovery() -> Discovery {
        Discovery::new(Registry::builtin())
    }

    fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
        list["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["name"] == name || r["resource"] == name)
            .unwrap_or_else(|| panic!("{name} missing"))
    }

    #[test]
    fn api_versions_lists_v1() {
        let json = serde_json::to_value(discovery().api_versions("127.0.0.1:6443")).unwrap();
        assert_eq!(
            json,
            json!({
                "kind": "APIVersions",
                "apiVersion": "v1",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}
                ]
            })
        );
    }

    #[test]
    fn api_group_list_has_preferred_versions() {
        let json = serde_json::to_value(discovery().api_group_list()).unwrap();
        assert_eq!(json["kind"], "APIGroupList");
        assert_eq!(json["apiVersion"], "v1");
        let groups = json["groups"].as_array().unwrap();
        assert_eq!(groups[0]["name"], "apps");
        let autoscaling = groups.iter().find(|g| g["name"] == "autoscaling").unwrap();
        assert_eq!(
            autoscaling["preferredVersion"],
            json!({"groupVersion": "autoscaling/v2", "version": "v2"})
        );
        assert_eq!(
            autoscaling["versions"],
            json!([
                {"groupVersion": "autoscaling/v2", "version": "v2"},
                {"groupVersion": "autoscaling/v1", "version": "v1"}
            ])
        );
        assert!(groups.iter().all(|g| g["name"] != "metrics.k8s.io"));
        assert!(discovery().api_group("").is_none());
        assert!(discovery().api_group("nope").is_none());
    }

    #[test]
    fn core_resource_list_includes_subresources() {
        let list = discovery().resource_list("", "v1").unwrap();
        let json = serde_json::to_value(&list).unwrap();
        assert_eq!(json["kind"], "APIResourceList");
        assert_eq!(json["groupVersion"], "v1");
        assert_eq!(
            find(&json, "pods"),
            &json!({
                "name": "pods",
                "singularName": "pod",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                "shortNames": ["po"],
                "categories": ["all"]
            })
        );
        assert_eq!(
            find(&json, "pods/status"),
            &json!({
                "name": "pods/status",
                "singularName": "",
                "namespaced": true,
                "kind": "Pod",
                "verbs": ["get", "patch", "update"]
            })
        );
        assert_eq!(
            find(&json, "pods/eviction"),
            &json!({
                "name": "pods/eviction",
                "singularName": "",
                "namespaced": true,
                "group": "policy",
                "version": "v1",
                "kind": "Eviction",
                "verbs": ["create"]
            })
        );
        assert_eq!(find(&json, "pods/binding")["kind"], "Binding");
        assert_eq!(find(&json, "namespaces")["namespaced"], false);
        assert_eq!(
            find(&json, "namespaces/finalize")["verbs"],
            json!(["update"])
        );
    }

    #[test]
    fn grouped_resource_lists() {
        let json = serde_json::to_value(discovery().resource_list("apps", "v1").unwrap()).unwrap();
        assert_eq!(json["groupVersion"], "apps/v1");
        let scale = find(&json, "deployments/scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
        assert_eq!(find(&json, "deployments")["shortNames"], json!(["deploy"]));
        // Both HPA versions are served.
        for version in ["v1", "v2"] {
            let list = discovery().resource_list("autoscaling", version).unwrap();
            assert_eq!(list.resources[0].name, "horizontalpodautoscalers");
        }
        assert!(discovery().resource_list("apps", "v2").is_none());
        assert!(
            discovery()
                .resource_list("metrics.k8s.io", "v1beta1")
                .is_none()
        );
    }

    #[test]
    fn aggregated_core_shape() {
        let json = serde_json::to_value(discovery().aggregated_core()).unwrap();
        assert_eq!(json["kind"], "APIGroupDiscoveryList");
        assert_eq!(json["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = json["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["metadata"], json!({}));
        let v1 = &items[0]["versions"][0];
        assert_eq!(v1["version"], "v1");
        assert_eq!(v1["freshness"], "Current");
        let pods = find(v1, "pods");
        assert_eq!(
            pods["responseKind"],
            json!({"group": "", "version": "v1", "kind": "Pod"})
        );
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["singularResource"], "pod");
        assert_eq!(pods["shortNames"], json!(["po"]));
        assert_eq!(pods["categories"], json!(["all"]));
        let log = pods["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["subresource"] == "log")
            .unwrap();
        assert_eq!(log["verbs"], json!(["get"]));
        let nodes = find(v1, "nodes");
        assert_eq!(nodes["scope"], "Cluster");
        // Empty lists are omitted, as upstream's omitempty does.
        let secrets = find(v1, "secrets");
        assert!(secrets.get("shortNames").is_none());
        assert!(secrets.get("subresources").is_none());
    }

    #[test]
    fn aggregated_groups_shape() {
        let json = serde_json::to_value(discovery().aggregated_groups()).unwrap();
        let items = json["items"].as_array().unwrap();
        assert_eq!(items[0]["metadata"]["name"], "apps");
        let apps_v1 = &items[0]["versions"][0];
        let deployments = find(apps_v1, "deployments");
        assert_eq!(
            deployments["subresources"],
            json!([
                {"subresource": "scale", "responseKind": {"group": "autoscaling", "version": "v1", "kind": "Scale"}, "verbs": ["get", "patch", "update"]},
                {"subresource": "status", "responseKind": {"group": "apps", "version": "v1", "kind": "Deployment"}, "verbs": ["get", "patch", "update"]}
            ])
        );
        let autoscaling = items
            .iter()
            .find(|i| i["metadata"]["name"] == "autoscaling")
            .unwrap();
        let versions: Vec<&str> = autoscaling["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["version"].as_str().unwrap())
            .collect();
        assert_eq!(versions, ["v2", "v1"]);
        let hpa_v1 = find(&autoscaling["versions"][1], "horizontalpodautoscalers");
        assert_eq!(hpa_v1["responseKind"]["version"], "v1");
        assert!(
            items
                .iter()
                .all(|i| i["metadata"]["name"] != "metrics.k8s.io")
        );
        // Round-trips through our own types.
        let back: ApiGroupDiscoveryList = serde_json::from_value(json).unwrap();
        assert_eq!(back, discovery().aggregated_groups());
    }

    #[test]
    fn metrics_group_is_switchable() {
        let with = discovery().with_metrics(true);
        let json = serde_json::to_value(with.aggregated_groups()).unwrap();
        let metrics = json["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "metrics.k8s.io")
            .unwrap();
        let v1beta1 = &metrics["versions"][0];
        assert_eq!(v1beta1["version"], "v1beta1");
        assert_eq!(find(v1beta1, "nodes")["verbs"], json!(["get", "list"]));
        assert_eq!(find(v1beta1, "pods")["scope"], "Namespaced");
        assert_eq!(find(v1beta1, "pods")["responseKind"]["kind"], "PodMetrics");
        assert!(with.resource_list("metrics.k8s.io", "v1beta1").is_some());
        let without = with.with_metrics(false);
        assert!(without.resource_list("metrics.k8s.io", "v1beta1").is_none());
        assert!(without.api_group("metrics.k8s.io").is_none());
    }

    #[test]
    fn accept_header_negotiation() {
        assert!(wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
        ));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        ));
        assert!(!wants_aggregated("application/vnd.kubernetes.protobuf"));
    }
}
