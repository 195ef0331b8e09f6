//! RBAC as kube-apiserver evaluates it, over the watch caches: the bindings that name the
//! user (or one of its groups, or its service account) grant the rules of their role; a
//! request is allowed when one rule covers it. Nothing here reads the store.

use std::collections::HashSet;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use serde_json::Value;
use tugboat_api::resources::{Registry, ResourceInfo};
use tugboat_api::selector::Selector;

use super::attributes::Attributes;
use crate::auth::UserInfo;
use crate::cache::{ResourceCache, WatchCaches};

const GROUP: &str = "rbac.authorization.k8s.io";

/// The strings of a rule's list field (`verbs`, `apiGroups`...).
fn strings<'a>(rule: &'a Value, key: &str) -> impl Iterator<Item = &'a str> {
    rule.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn has_any(rule: &Value, key: &str) -> bool {
    strings(rule, key).next().is_some()
}

/// Whether one PolicyRule (as JSON) covers the request (`rbac.RuleAllows`).
pub fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let verb_matches = strings(rule, "verbs").any(|v| v == "*" || v == attrs.verb);
    if !verb_matches {
        return false;
    }
    if !attrs.resource_request {
        return strings(rule, "nonResourceURLs").any(|url| {
            url == "*"
                || url == attrs.path
                || url
                    .strip_suffix('*')
                    .is_some_and(|prefix| attrs.path.starts_with(prefix))
        });
    }
    let group_matches = strings(rule, "apiGroups").any(|g| g == "*" || g == attrs.api_group);
    if !group_matches {
        return false;
    }
    let combined = attrs.combined_resource();
    let resource_matches = strings(rule, "resources").any(|r| {
        r == "*"
            || r == combined
            // `*/status` covers every resource's status subresource.
            || (!attrs.subresource.is_empty()
                && r.strip_prefix("*/") == Some(attrs.subresource.as_str()))
    });
    if !resource_matches {
        return false;
    }
    !has_any(rule, "resourceNames") || strings(rule, "resourceNames").any(|n| n == attrs.name)
}

/// Whether a binding's subject stands for `user` (`appliesToUser`).
fn subject_applies(subject: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    let text = |key: &str| subject.get(key).and_then(Value::as_str).unwrap_or("");
    let name = text("name");
    match text("kind") {
        "User" => user.name == name,
        "Group" => user.in_group(name),
        "ServiceAccount" => {
            let namespace = match text("namespace") {
                "" => binding_namespace,
                ns => ns,
            };
            user.name
                .strip_prefix("system:serviceaccount:")
                .and_then(|rest| rest.split_once(':'))
                == Some((namespace, name))
        }
        _ => false,
    }
}

/// `Kind "name"` as upstream describes a subject in its reasons.
fn describe_subject(subject: &Value, binding_namespace: &str) -> String {
    let text = |key: &str| subject.get(key).and_then(Value::as_str).unwrap_or("");
    let (kind, name) = (text("kind"), text("name"));
    if kind == "ServiceAccount" {
        let namespace = match text("namespace") {
            "" => binding_namespace,
            ns => ns,
        };
        format!("{kind} {:?}", format!("{name}/{namespace}"))
    } else {
        format!("{kind} {name:?}")
    }
}

fn text<'a>(obj: &'a Value, pointer: &str) -> &'a str {
    obj.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// The RBAC objects' caches.
pub struct Rbac {
    roles: Option<(Arc<ResourceCache>, &'static ResourceInfo)>,
    cluster_roles: Option<(Arc<ResourceCache>, &'static ResourceInfo)>,
    role_bindings: Option<(Arc<ResourceCache>, &'static ResourceInfo)>,
    cluster_role_bindings: Option<(Arc<ResourceCache>, &'static ResourceInfo)>,
}

/// What a visitor over a user's rules wants next.
enum Visit {
    Continue,
    Stop,
}

impl Rbac {
    /// The RBAC view over `caches` (kinds the registry lacks grant nothing).
    pub fn new(registry: &Registry, caches: &WatchCaches) -> Self {
        let cache = |kind: &str| {
            let resource = registry.by_kind(GROUP, kind)?;
            Some((Arc::clone(caches.get(resource)?), resource))
        };
        Rbac {
            roles: cache("Role"),
            cluster_roles: cache("ClusterRole"),
            role_bindings: cache("RoleBinding"),
            cluster_role_bindings: cache("ClusterRoleBinding"),
        }
    }

    /// Why RBAC allows the request, or `None` when no rule covers it.
    pub fn allowed(&self, user: &UserInfo, attrs: &Attributes) -> Option<String> {
        let mut reason = None;
        self.visit_rules(user, &attrs.namespace, &mut |rule, describe| {
            if rule_allows(rule, attrs) {
                reason = Some(format!("RBAC: allowed by {}", describe()));
                Visit::Stop
            } else {
                Visit::Continue
            }
        });
        reason
    }

    /// Every rule that applies to `user` in `namespace` (cluster-wide ones included).
    pub fn rules(&self, user: &UserInfo, namespace: &str) -> Vec<Value> {
        let mut rules = Vec::new();
        self.visit_rules(user, namespace, &mut |rule, _| {
            rules.push(rule.clone());
            Visit::Continue
        });
        rules
    }

    /// Call `visit` with each rule granted to `user` by ClusterRoleBindings, then by the
    /// RoleBindings of `namespace`, with a description of the grant for reasons.
    fn visit_rules(
        &self,
        user: &UserInfo,
        namespace: &str,
        visit: &mut dyn FnMut(&Value, &dyn Fn() -> String) -> Visit,
    ) {
        if let Some((cache, resource)) = &self.cluster_role_bindings
            && let Ok(bindings) = cache.snapshot(&resource.storage_prefix())
        {
            for binding in &bindings.objects {
                let binding = &*binding.value();
                let Some(subject) = binding_subject(binding, user, "") else {
                    continue;
                };
                let describe = || {
                    format!(
                        "ClusterRoleBinding {:?} of ClusterRole {:?} to {}",
                        text(binding, "/metadata/name"),
                        text(binding, "/roleRef/name"),
                        describe_subject(subject, "")
                    )
                };
                if text(binding, "/roleRef/kind") != "ClusterRole" {
                    continue;
                }
                let mut seen = HashSet::new();
                if let Visit::Stop = self.visit_cluster_role(
                    text(binding, "/roleRef/name"),
                    &mut seen,
                    &mut |rule| visit(rule, &describe),
                ) {
                    return;
                }
            }
        }
        if namespace.is_empty() {
            return;
        }
        if let Some((cache, resource)) = &self.role_bindings
            && let Ok(bindings) = cache.snapshot(&resource.storage_prefix_in(Some(namespace)))
        {
            for binding in &bindings.objects {
                let binding = &*binding.value();
                let Some(subject) = binding_subject(binding, user, namespace) else {
                    continue;
                };
                let role_kind = text(binding, "/roleRef/kind");
                let role_name = text(binding, "/roleRef/name");
                let describe = || {
                    format!(
                        "RoleBinding {:?} of {role_kind} {role_name:?} to {}",
                        format!("{}/{namespace}", text(binding, "/metadata/name")),
                        describe_subject(subject, namespace)
                    )
                };
                let mut per_rule = |rule: &Value| visit(rule, &describe);
                let outcome = match role_kind {
                    "ClusterRole" => {
                        self.visit_cluster_role(role_name, &mut HashSet::new(), &mut per_rule)
                    }
                    "Role" => self.visit_role(namespace, role_name, &mut per_rule),
                    _ => Visit::Continue,
                };
                if let Visit::Stop = outcome {
                    return;
                }
            }
        }
    }

    fn visit_role(
        &self,
        namespace: &str,
        name: &str,
        visit: &mut dyn FnMut(&Value) -> Visit,
    ) -> Visit {
        let Some((cache, resource)) = &self.roles else {
            return Visit::Continue;
        };
        let Some(role) = cache.get(&resource.storage_key(Some(namespace), name)) else {
            return Visit::Continue;
        };
        let role = role.value();
        visit_list(&role, visit)
    }

    /// The rules of a ClusterRole; one with an aggregationRule has the rules of every
    /// ClusterRole its selectors match (as the aggregation controller would store them).
    fn visit_cluster_role(
        &self,
        name: &str,
        seen: &mut HashSet<String>,
        visit: &mut dyn FnMut(&Value) -> Visit,
    ) -> Visit {
        let Some((cache, resource)) = &self.cluster_roles else {
            return Visit::Continue;
        };
        if !seen.insert(name.to_owned()) {
            return Visit::Continue;
        }
        let Some(role) = cache.get(&resource.storage_key(None, name)) else {
            return Visit::Continue;
        };
        let role = role.value();
        let selectors: Vec<Selector> = role
            .pointer("/aggregationRule/clusterRoleSelectors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| serde_json::from_value::<LabelSelector>(s.clone()).ok())
            .filter_map(|s| Selector::from_label_selector(Some(&s)).ok())
            .collect();
        if selectors.is_empty() {
            return visit_list(&role, visit);
        }
        let Ok(all) = cache.snapshot(&resource.storage_prefix()) else {
            return Visit::Continue;
        };
        for other in &all.objects {
            let other = &*other.value();
            let other_name = text(other, "/metadata/name");
            if other_name != name
                && selectors.iter().any(|s| s.matches_object(other))
                && let Visit::Stop = self.visit_cluster_role(other_name, seen, visit)
            {
                return Visit::Stop;
            }
        }
        Visit::Continue
    }
}

fn visit_list(role: &Value, visit: &mut dyn FnMut(&Value) -> Visit) -> Visit {
    for rule in role
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Visit::Stop = visit(rule) {
            return Visit::Stop;
        }
    }
    Visit::Continue
}

/// The first subject of `binding` that stands for `user`.
fn binding_subject<'a>(binding: &'a Value, user: &UserInfo, namespace: &str) -> Option<&'a Value> {
    binding
        .get("subjects")
        .and_then(Value::as_array)?
        .iter()
        .find(|s| subject_applies(s, user, namespace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(verb: &str, group: &str, resource: &str, sub: &str, name: &str) -> Attributes {
        let mut a = Attributes::resource(verb, group, resource, "default", name);
        a.subresource = sub.to_owned();
        a
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_names() {
        let rule =
            json!({"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "pods/log"]});
        assert!(rule_allows(&rule, &request("get", "", "pods", "", "web")));
        assert!(rule_allows(
            &rule,
            &request("get", "", "pods", "log", "web")
        ));
        assert!(!rule_allows(
            &rule,
            &request("get", "", "pods", "exec", "web")
        ));
        assert!(!rule_allows(
            &rule,
            &request("delete", "", "pods", "", "web")
        ));
        assert!(!rule_allows(
            &rule,
            &request("get", "apps", "pods", "", "web")
        ));
        assert!(!rule_allows(&rule, &request("get", "", "secrets", "", "s")));

        let named = json!({"verbs": ["*"], "apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["kube-scheduler"]});
        assert!(rule_allows(
            &named,
            &request(
                "update",
                "coordination.k8s.io",
                "leases",
                "",
                "kube-scheduler"
            )
        ));
        assert!(!rule_allows(
            &named,
            &request("update", "coordination.k8s.io", "leases", "", "other")
        ));
        assert!(!rule_allows(
            &named,
            &request("list", "coordination.k8s.io", "leases", "", "")
        ));

        let wild = json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]});
        assert!(rule_allows(
            &wild,
            &request("deletecollection", "apps", "deployments", "", "")
        ));
        let statuses = json!({"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/status"]});
        assert!(rule_allows(
            &statuses,
            &request("update", "apps", "deployments", "status", "d")
        ));
        assert!(!rule_allows(
            &statuses,
            &request("update", "apps", "deployments", "", "d")
        ));
        assert!(!rule_allows(
            &statuses,
            &request("update", "apps", "deployments", "scale", "d")
        ));
        // Resource rules never cover paths, nor path rules resources.
        assert!(!rule_allows(
            &wild,
            &Attributes::non_resource("get", "/metrics")
        ));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let rule = json!({"verbs": ["get"], "nonResourceURLs": ["/healthz", "/apis/*"]});
        assert!(rule_allows(
            &rule,
            &Attributes::non_resource("get", "/healthz")
        ));
        assert!(rule_allows(
            &rule,
            &Attributes::non_resource("get", "/apis/apps/v1")
        ));
        assert!(!rule_allows(
            &rule,
            &Attributes::non_resource("get", "/healthz/etcd")
        ));
        assert!(!rule_allows(
            &rule,
            &Attributes::non_resource("post", "/healthz")
        ));
        assert!(!rule_allows(&rule, &request("get", "", "pods", "", "")));
    }

    #[test]
    fn subjects_name_users_groups_and_service_accounts() {
        let jane = UserInfo::new("jane", "", ["devs".to_owned()]);
        let sa = UserInfo::new("system:serviceaccount:dev:ci", "", []);
        let subject = |v: Value| v;
        assert!(subject_applies(
            &subject(json!({"kind": "User", "name": "jane"})),
            &jane,
            ""
        ));
        assert!(!subject_applies(
            &subject(json!({"kind": "User", "name": "joe"})),
            &jane,
            ""
        ));
        assert!(subject_applies(
            &subject(json!({"kind": "Group", "name": "devs"})),
            &jane,
            ""
        ));
        assert!(subject_applies(
            &subject(json!({"kind": "Group", "name": "system:authenticated"})),
            &jane,
            ""
        ));
        let ci = json!({"kind": "ServiceAccount", "name": "ci"});
        assert!(subject_applies(&ci, &sa, "dev"));
        assert!(!subject_applies(&ci, &sa, "prod"));
        assert!(subject_applies(
            &json!({"kind": "ServiceAccount", "name": "ci", "namespace": "dev"}),
            &sa,
            "prod"
        ));
        assert_eq!(describe_subject(&ci, "dev"), r#"ServiceAccount "ci/dev""#);
    }
}
