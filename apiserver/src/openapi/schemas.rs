//! The schemas of a group-version's kinds for its OpenAPI v3 document, from k8s-openapi's
//! JSON schemas, with the extensions kubectl reads:
//!
//! - `x-kubernetes-group-version-kind` on each top-level kind (`kubectl explain` finds the
//!   kind by it);
//! - `x-kubernetes-patch-strategy` and `x-kubernetes-patch-merge-key` on lists, from the same
//!   patch metadata the server merges with. kubectl computes `apply` patches from these once a
//!   document has the kind, so they must agree with [`tugboat_api::patch`].

use std::collections::HashSet;

use k8s_openapi::api;
use schemars::SchemaGenerator;
use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};
use tugboat_api::patch::{PatchStrategy, SchemaRef, schema_for};

/// The definition name of each served kind (`io.k8s.api.apps.v1.Deployment`), added to the
/// generator.
fn add_kind(
    generator: &mut SchemaGenerator,
    group: &str,
    version: &str,
    kind: &str,
) -> Option<String> {
    macro_rules! kinds {
        ($( ($g:literal, $v:literal, $k:literal) => $ty:ty ),* $(,)?) => {
            match (group, version, kind) {
                $( ($g, $v, $k) => {
                    generator.subschema_for::<$ty>();
                    Some(<$ty as schemars::JsonSchema>::schema_name().into_owned())
                } )*
                _ => None,
            }
        };
    }
    kinds! {
        ("", "v1", "ConfigMap") => api::core::v1::ConfigMap,
        ("", "v1", "Endpoints") => api::core::v1::Endpoints,
        ("", "v1", "Event") => api::core::v1::Event,
        ("", "v1", "Namespace") => api::core::v1::Namespace,
        ("", "v1", "Node") => api::core::v1::Node,
        ("", "v1", "PersistentVolume") => api::core::v1::PersistentVolume,
        ("", "v1", "PersistentVolumeClaim") => api::core::v1::PersistentVolumeClaim,
        ("", "v1", "Pod") => api::core::v1::Pod,
        ("", "v1", "ReplicationController") => api::core::v1::ReplicationController,
        ("", "v1", "Secret") => api::core::v1::Secret,
        ("", "v1", "Service") => api::core::v1::Service,
        ("", "v1", "ServiceAccount") => api::core::v1::ServiceAccount,
        ("apps", "v1", "ControllerRevision") => api::apps::v1::ControllerRevision,
        ("apps", "v1", "DaemonSet") => api::apps::v1::DaemonSet,
        ("apps", "v1", "Deployment") => api::apps::v1::Deployment,
        ("apps", "v1", "ReplicaSet") => api::apps::v1::ReplicaSet,
        ("apps", "v1", "StatefulSet") => api::apps::v1::StatefulSet,
        ("autoscaling", "v1", "HorizontalPodAutoscaler") => api::autoscaling::v1::HorizontalPodAutoscaler,
        ("autoscaling", "v2", "HorizontalPodAutoscaler") => api::autoscaling::v2::HorizontalPodAutoscaler,
        ("batch", "v1", "CronJob") => api::batch::v1::CronJob,
        ("batch", "v1", "Job") => api::batch::v1::Job,
        ("coordination.k8s.io", "v1", "Lease") => api::coordination::v1::Lease,
        ("discovery.k8s.io", "v1", "EndpointSlice") => api::discovery::v1::EndpointSlice,
        ("events.k8s.io", "v1", "Event") => api::events::v1::Event,
        ("policy", "v1", "PodDisruptionBudget") => api::policy::v1::PodDisruptionBudget,
        ("rbac.authorization.k8s.io", "v1", "ClusterRole") => api::rbac::v1::ClusterRole,
        ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding") => api::rbac::v1::ClusterRoleBinding,
        ("rbac.authorization.k8s.io", "v1", "Role") => api::rbac::v1::Role,
        ("rbac.authorization.k8s.io", "v1", "RoleBinding") => api::rbac::v1::RoleBinding,
        ("authentication.k8s.io", "v1", "SelfSubjectReview") => api::authentication::v1::SelfSubjectReview,
        ("authentication.k8s.io", "v1", "TokenReview") => api::authentication::v1::TokenReview,
        ("authorization.k8s.io", "v1", "LocalSubjectAccessReview") => api::authorization::v1::LocalSubjectAccessReview,
        ("authorization.k8s.io", "v1", "SelfSubjectAccessReview") => api::authorization::v1::SelfSubjectAccessReview,
        ("authorization.k8s.io", "v1", "SelfSubjectRulesReview") => api::authorization::v1::SelfSubjectRulesReview,
        ("authorization.k8s.io", "v1", "SubjectAccessReview") => api::authorization::v1::SubjectAccessReview,
        ("storage.k8s.io", "v1", "StorageClass") => api::storage::v1::StorageClass,
    }
}

/// `components.schemas` for the kinds of one group-version.
pub fn component_schemas(group: &str, version: &str, kinds: &[&str]) -> Map<String, Value> {
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut roots = Vec::new();
    for kind in kinds {
        if let Some(name) = add_kind(&mut generator, group, version, kind) {
            roots.push((name, *kind));
        }
    }
    let mut definitions = generator.take_definitions(true);
    let mut visited = HashSet::new();
    for (name, kind) in &roots {
        if let Some(definition) = definitions.get_mut(name) {
            definition["x-kubernetes-group-version-kind"] =
                json!([{ "group": group, "version": version, "kind": kind }]);
        }
        if let Some(patch_schema) = schema_for(group, kind) {
            annotate(&mut definitions, name, patch_schema, &mut visited);
        }
    }
    definitions
}

/// The definition a property points at: `$ref`, `allOf: [{$ref}]`, or the same inside
/// `items` / `additionalProperties`.
fn referenced(property: &Value) -> Option<String> {
    let direct = |v: &Value| {
        v.get("$ref")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .or_else(|| {
                v.get("allOf")?
                    .as_array()?
                    .iter()
                    .find_map(|s| s.get("$ref").and_then(Value::as_str).map(str::to_owned))
            })
    };
    let reference = direct(property)
        .or_else(|| property.get("items").and_then(direct))
        .or_else(|| property.get("additionalProperties").and_then(direct))?;
    reference
        .strip_prefix("#/components/schemas/")
        .map(str::to_owned)
}

/// Put the patch extensions of `patch_schema` on definition `name` and, following the
/// references, on every definition under it.
fn annotate(
    definitions: &mut Map<String, Value>,
    name: &str,
    patch_schema: SchemaRef,
    visited: &mut HashSet<(String, &'static str)>,
) {
    if !visited.insert((name.to_owned(), patch_schema.name)) {
        return;
    }
    let mut children = Vec::new();
    if let Some(properties) = definitions
        .get_mut(name)
        .and_then(|d| d.get_mut("properties"))
        .and_then(Value::as_object_mut)
    {
        for field in patch_schema.fields {
            let Some(property) = properties.get_mut(field.name) else {
                continue;
            };
            let mut strategies = Vec::new();
            match field.strategy {
                PatchStrategy::Merge => strategies.push("merge"),
                PatchStrategy::Replace => strategies.push("replace"),
                PatchStrategy::Default => {}
            }
            if field.retain_keys {
                strategies.push("retainKeys");
            }
            if let Some(map) = property.as_object_mut() {
                if !strategies.is_empty() {
                    map.insert(
                        "x-kubernetes-patch-strategy".into(),
                        json!(strategies.join(",")),
                    );
                }
                if let Some(key) = field.merge_key {
                    map.insert("x-kubernetes-patch-merge-key".into(), json!(key));
                }
            }
            if !field.schema.fields.is_empty()
                && let Some(child) = referenced(property)
            {
                children.push((child, field.schema));
            }
        }
    }
    for (child, schema) in children {
        annotate(definitions, &child, schema, visited);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployments_carry_their_kind_and_patch_keys() {
        let schemas = component_schemas("apps", "v1", &["Deployment"]);
        let deployment = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            deployment["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let pod_spec = &schemas["io.k8s.api.core.v1.PodSpec"];
        let containers = &pod_spec["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        let container = &schemas["io.k8s.api.core.v1.Container"];
        assert_eq!(
            container["properties"]["ports"]["x-kubernetes-patch-merge-key"],
            "containerPort"
        );
        assert_eq!(
            container["properties"]["env"]["x-kubernetes-patch-merge-key"],
            "name"
        );
        let strategy = &schemas["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["strategy"];
        assert_eq!(strategy["x-kubernetes-patch-strategy"], "retainKeys");
        assert!(
            schemas["io.k8s.api.apps.v1.DeploymentStrategy"]["description"]
                .as_str()
                .is_some()
        );
    }
}
