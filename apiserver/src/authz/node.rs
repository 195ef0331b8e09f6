//! The Node authorizer, simplified from kube-apiserver's graph authorizer: a node's
//! credentials (`system:node:NAME` in `system:nodes`) may read what every node needs
//! (nodes, services, endpoints, pod lists), write only its own Node, Lease and the pods bound
//! to it, and read only the secrets, configmaps and claims those pods use. The pods come from
//! the watch cache.

use std::sync::Arc;

use serde_json::Value;
use tugboat_api::resources::{Registry, ResourceInfo};

use super::attributes::Attributes;
use crate::auth::UserInfo;
use crate::cache::{CachedObject, ResourceCache, WatchCaches, field_index};

/// The group node credentials carry.
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of node user names.
pub const NODE_USER_PREFIX: &str = "system:node:";

/// The node a user is, if it is one.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    let name = user.name.strip_prefix(NODE_USER_PREFIX)?;
    (user.in_group(NODES_GROUP) && !name.is_empty()).then_some(name)
}

/// What the Node authorizer says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeDecision {
    /// Allowed.
    Allow,
    /// No opinion: other authorizers decide; the reason is added to a denial.
    NoOpinion(String),
}

/// The Node authorizer.
pub struct NodeAuthorizer {
    pods: Option<(Arc<ResourceCache>, &'static ResourceInfo)>,
    claims: Option<(Arc<ResourceCache>, &'static ResourceInfo)>,
    /// Where cached pods keep `spec.nodeName`.
    node_name_field: Option<usize>,
}

const READ: [&str; 3] = ["get", "list", "watch"];

impl NodeAuthorizer {
    /// The authorizer over the pod cache.
    pub fn new(registry: &Registry, caches: &WatchCaches) -> Self {
        let cached = |kind: &str| {
            registry
                .by_kind("", kind)
                .and_then(|r| Some((Arc::clone(caches.get(r)?), r)))
        };
        let pods = cached("Pod");
        NodeAuthorizer {
            node_name_field: pods
                .as_ref()
                .and_then(|(_, r)| field_index(r, "spec.nodeName")),
            pods,
            claims: cached("PersistentVolumeClaim"),
        }
    }

    /// Decide for `node` (the user's node name).
    pub fn authorize(&self, node: &str, attrs: &Attributes) -> NodeDecision {
        let verb = attrs.verb.as_str();
        let no_relationship = || {
            NodeDecision::NoOpinion(format!(
                "no relationship found between node '{node}' and this object"
            ))
        };
        let allow_if = |allowed: bool| {
            if allowed {
                NodeDecision::Allow
            } else {
                no_relationship()
            }
        };
        if !attrs.resource_request {
            return NodeDecision::NoOpinion(String::new());
        }
        let sub = attrs.subresource.as_str();
        match (attrs.api_group.as_str(), attrs.resource.as_str()) {
            ("", "nodes") => match (verb, sub) {
                ("get" | "list" | "watch" | "create", "") => NodeDecision::Allow,
                ("update" | "patch", "" | "status") => allow_if(attrs.name == node),
                _ => no_relationship(),
            },
            ("", "pods") => match (verb, sub) {
                ("list" | "watch", "") if attrs.name.is_empty() => NodeDecision::Allow,
                ("get" | "list" | "watch", "")
                | ("delete", "")
                | ("update" | "patch", "status") => {
                    allow_if(self.pod_on(node, &attrs.namespace, &attrs.name).is_some())
                }
                // Mirror pods.
                ("create", "") => NodeDecision::Allow,
                ("create", "eviction") => {
                    allow_if(self.pod_on(node, &attrs.namespace, &attrs.name).is_some())
                }
                _ => no_relationship(),
            },
            ("", "services" | "endpoints") | ("discovery.k8s.io", "endpointslices")
                if READ.contains(&verb) && sub.is_empty() =>
            {
                NodeDecision::Allow
            }
            ("", "events") | ("events.k8s.io", "events")
                if matches!(verb, "create" | "patch" | "update") =>
            {
                NodeDecision::Allow
            }
            ("", "secrets" | "configmaps" | "persistentvolumeclaims")
                if READ.contains(&verb) && sub.is_empty() =>
            {
                // Only a named object a pod on this node uses (kubelet watches each one by a
                // metadata.name field selector).
                allow_if(
                    !attrs.name.is_empty()
                        && self.pod_uses(node, &attrs.namespace, &attrs.resource, &attrs.name),
                )
            }
            // The service accounts its pods run as: read them and request their tokens (the
            // TokenRequest itself must then bind the token to one of its pods).
            ("", "serviceaccounts") if matches!((verb, sub), ("get", "") | ("create", "token")) => {
                allow_if(
                    !attrs.name.is_empty()
                        && self.pod_uses(node, &attrs.namespace, "serviceaccounts", &attrs.name),
                )
            }
            // The volume a claim of one of its pods is bound to (to mount it).
            ("", "persistentvolumes") if READ.contains(&verb) && sub.is_empty() => {
                allow_if(!attrs.name.is_empty() && self.volume_used_by_pod_on(node, &attrs.name))
            }
            ("coordination.k8s.io", "leases") if attrs.namespace == "kube-node-lease" => match verb
            {
                "create" => NodeDecision::Allow,
                "get" | "update" | "patch" | "delete" => allow_if(attrs.name == node),
                _ => no_relationship(),
            },
            // Tugboat's agents push resource metrics into the API server.
            ("metrics.k8s.io", "nodes") => match verb {
                "list" => NodeDecision::Allow,
                _ => allow_if(attrs.name == node || attrs.name.is_empty()),
            },
            ("metrics.k8s.io", "pods") => match verb {
                "get" | "list" | "create" => NodeDecision::Allow,
                // A pod that has left may leave metrics behind for its node to delete.
                _ => allow_if(
                    self.pod_on(node, &attrs.namespace, &attrs.name).is_some()
                        || !self.pod_exists(&attrs.namespace, &attrs.name),
                ),
            },
            _ => NodeDecision::NoOpinion(String::new()),
        }
    }

    fn pod_exists(&self, namespace: &str, name: &str) -> bool {
        self.pods.as_ref().is_some_and(|(cache, resource)| {
            cache
                .get(&resource.storage_key(Some(namespace), name))
                .is_some()
        })
    }

    /// The pod `namespace/name` if it is bound to `node`.
    fn pod_on(&self, node: &str, namespace: &str, name: &str) -> Option<Arc<CachedObject>> {
        if name.is_empty() {
            return None;
        }
        let (cache, resource) = self.pods.as_ref()?;
        let pod = cache.get(&resource.storage_key(Some(namespace), name))?;
        (self.bound_node(&pod) == node).then_some(pod)
    }

    /// The node a cached pod is bound to ("" when none).
    fn bound_node<'a>(&self, pod: &'a CachedObject) -> &'a str {
        self.node_name_field
            .and_then(|i| pod.field(i))
            .unwrap_or("")
    }

    /// Whether the volume `name` is bound to a claim that a pod bound to `node` uses.
    fn volume_used_by_pod_on(&self, node: &str, name: &str) -> bool {
        let Some((cache, claims)) = self.claims.as_ref() else {
            return false;
        };
        let Ok(snapshot) = cache.snapshot(&claims.storage_prefix_in(None)) else {
            return false;
        };
        snapshot.objects.iter().any(|claim| {
            let claim = claim.value();
            claim.pointer("/spec/volumeName").and_then(Value::as_str) == Some(name)
                && self.pod_uses(
                    node,
                    claim
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    "persistentvolumeclaims",
                    claim
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                )
        })
    }

    /// Whether a pod bound to `node` in `namespace` uses the secret, configmap or claim.
    fn pod_uses(&self, node: &str, namespace: &str, resource: &str, name: &str) -> bool {
        let Some((cache, pods)) = self.pods.as_ref() else {
            return false;
        };
        let Ok(snapshot) = cache.snapshot(&pods.storage_prefix_in(Some(namespace))) else {
            return false;
        };
        snapshot
            .objects
            .iter()
            .filter(|pod| self.bound_node(pod) == node)
            .any(|pod| references(&pod.value(), resource).iter().any(|r| r == name))
    }
}

/// The names of the `resource` objects (secrets, configmaps, persistentvolumeclaims) a pod
/// refers to: volumes, projected sources, env, envFrom and image pull secrets; for
/// `serviceaccounts`, the one it runs as.
pub fn references(pod: &Value, resource: &str) -> Vec<String> {
    if resource == "serviceaccounts" {
        let name = pod
            .pointer("/spec/serviceAccountName")
            .and_then(Value::as_str)
            .filter(|name| !name.is_empty())
            .unwrap_or("default");
        return vec![name.to_owned()];
    }
    let mut names = Vec::new();
    let mut add = |value: Option<&Value>| {
        if let Some(name) = value.and_then(Value::as_str)
            && !name.is_empty()
        {
            names.push(name.to_owned());
        }
    };
    let list = |value: &Value, key: &str| -> Vec<Value> {
        value
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let spec = pod.get("spec").cloned().unwrap_or(Value::Null);
    for volume in list(&spec, "volumes") {
        match resource {
            "secrets" => add(volume.pointer("/secret/secretName")),
            "configmaps" => add(volume.pointer("/configMap/name")),
            "persistentvolumeclaims" => add(volume.pointer("/persistentVolumeClaim/claimName")),
            _ => {}
        }
        for source in volume
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            match resource {
                "secrets" => add(source.pointer("/secret/name")),
                "configmaps" => add(source.pointer("/configMap/name")),
                _ => {}
            }
        }
    }
    if resource == "secrets" {
        for secret in list(&spec, "imagePullSecrets") {
            add(secret.get("name"));
        }
    }
    for kind in ["initContainers", "containers", "ephemeralContainers"] {
        for container in list(&spec, kind) {
            for env in list(&container, "env") {
                match resource {
                    "secrets" => add(env.pointer("/valueFrom/secretKeyRef/name")),
                    "configmaps" => add(env.pointer("/valueFrom/configMapKeyRef/name")),
                    _ => {}
                }
            }
            for from in list(&container, "envFrom") {
                match resource {
                    "secrets" => add(from.pointer("/secretRef/name")),
                    "configmaps" => add(from.pointer("/configMapRef/name")),
                    _ => {}
                }
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pods_refer_to_secrets_configmaps_and_claims() {
        let pod = json!({"spec": {
            "nodeName": "n1",
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [
                {"name": "a", "secret": {"secretName": "vol-secret"}},
                {"name": "b", "configMap": {"name": "vol-cm"}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "d", "projected": {"sources": [{"secret": {"name": "proj-secret"}}, {"configMap": {"name": "proj-cm"}}]}},
            ],
            "containers": [{"name": "c", "env": [
                {"name": "X", "valueFrom": {"secretKeyRef": {"name": "env-secret", "key": "k"}}},
                {"name": "Y", "valueFrom": {"configMapKeyRef": {"name": "env-cm", "key": "k"}}},
            ], "envFrom": [{"secretRef": {"name": "from-secret"}}, {"configMapRef": {"name": "from-cm"}}]}],
        }});
        let mut secrets = references(&pod, "secrets");
        secrets.sort();
        assert_eq!(
            secrets,
            [
                "env-secret",
                "from-secret",
                "proj-secret",
                "pull",
                "vol-secret"
            ]
        );
        let mut maps = references(&pod, "configmaps");
        maps.sort();
        assert_eq!(maps, ["env-cm", "from-cm", "proj-cm", "vol-cm"]);
        assert_eq!(references(&pod, "persistentvolumeclaims"), ["data"]);
        assert_eq!(references(&pod, "serviceaccounts"), ["default"]);
        let robot = json!({"spec": {"serviceAccountName": "robot"}});
        assert_eq!(references(&robot, "serviceaccounts"), ["robot"]);
    }

    #[test]
    fn node_users_are_named_and_grouped() {
        let node = UserInfo::new("system:node:n1", "", [NODES_GROUP.to_owned()]);
        assert_eq!(node_name(&node), Some("n1"));
        let pretender = UserInfo::new("system:node:n1", "", []);
        assert_eq!(node_name(&pretender), None);
    }

    #[test]
    fn own_node_and_lease_only() {
        let authorizer = NodeAuthorizer {
            pods: None,
            claims: None,
            node_name_field: None,
        };
        let allow = |a: &Attributes| authorizer.authorize("n1", a) == NodeDecision::Allow;
        let mut status = Attributes::resource("patch", "", "nodes", "", "n1");
        status.subresource = "status".into();
        assert!(allow(&status));
        status.name = "n2".into();
        assert!(!allow(&status));
        assert!(allow(&Attributes::resource("list", "", "nodes", "", "")));
        assert!(!allow(&Attributes::resource(
            "delete", "", "nodes", "", "n1"
        )));
        let lease = |verb: &str, ns: &str, name: &str| {
            Attributes::resource(verb, "coordination.k8s.io", "leases", ns, name)
        };
        assert!(allow(&lease("update", "kube-node-lease", "n1")));
        assert!(!allow(&lease("update", "kube-node-lease", "n2")));
        assert!(!allow(&lease("update", "kube-system", "n1")));
        // Nothing in the cache: no pod is bound to n1.
        assert!(!allow(&Attributes::resource(
            "get", "", "pods", "default", "web"
        )));
        assert!(!allow(&Attributes::resource(
            "get", "", "secrets", "default", "s"
        )));
        assert!(allow(&Attributes::resource("watch", "", "pods", "", "")));
    }
}
