//! Authorization: every authenticated request passes the chain kube-apiserver runs with
//! `--authorization-mode=Node,RBAC` (plus the `system:masters` short cut) before it is
//! routed. Decisions read only the watch caches.
//!
//! - `system:masters` may do anything (the admin and today's components);
//! - the Node authorizer ([`node`]) decides for node credentials;
//! - RBAC ([`rbac`]) allows what the user's bindings grant; anything else is 403.
//!
//! Impersonation (`Impersonate-User`/`-Group`/`-Uid` headers, `kubectl --as`) is checked
//! here too, with the `impersonate` verb, and swaps the user for the rest of the request.

pub mod attributes;
pub mod node;
pub mod policy;
pub mod rbac;
pub mod reviews;

use axum::http::HeaderMap;
use serde_json::Value;
use tugboat_api::resources::Registry;
use tugboat_api::status::{self, Target};

pub use attributes::Attributes;

use crate::auth::{MASTERS_GROUP, UserInfo};
use crate::cache::WatchCaches;
use crate::error::ApiError;
use node::{NodeAuthorizer, NodeDecision};
use rbac::Rbac;

/// The authorizer chain's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; the reason names the grant where RBAC gave it.
    Allow(String),
    /// Not allowed; the reason, if any, explains (the Node authorizer's words).
    Deny(String),
}

impl Decision {
    /// Whether the request may go on.
    pub fn allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// The authorizer chain over the watch caches.
pub struct Authorizer {
    node: NodeAuthorizer,
    rbac: Rbac,
}

impl Authorizer {
    /// The chain over `caches`.
    pub fn new(registry: &Registry, caches: &WatchCaches) -> Self {
        Authorizer {
            node: NodeAuthorizer::new(registry, caches),
            rbac: Rbac::new(registry, caches),
        }
    }

    /// Decide whether `user` may do what `attrs` describe.
    pub fn authorize(&self, user: &UserInfo, attrs: &Attributes) -> Decision {
        if user.in_group(MASTERS_GROUP) {
            return Decision::Allow(String::new());
        }
        let mut reasons = Vec::new();
        if let Some(node) = node::node_name(user) {
            match self.node.authorize(node, attrs) {
                NodeDecision::Allow => return Decision::Allow(String::new()),
                NodeDecision::NoOpinion(reason) if !reason.is_empty() => reasons.push(reason),
                NodeDecision::NoOpinion(_) => {}
            }
        }
        if let Some(reason) = self.rbac.allowed(user, attrs) {
            return Decision::Allow(reason);
        }
        Decision::Deny(reasons.join("\n"))
    }

    /// The rules `user` has in `namespace`, as (resource rules, non-resource rules), for
    /// SelfSubjectRulesReview: RBAC's, plus the node rules for node credentials.
    pub fn rules(&self, user: &UserInfo, namespace: &str) -> (Vec<Value>, Vec<Value>) {
        let mut rules = self.rbac.rules(user, namespace);
        if node::node_name(user).is_some() {
            rules.extend(policy::node_rules());
        }
        rules
            .into_iter()
            .partition(|rule| rule.get("nonResourceURLs").is_none())
    }

    /// The user a request acts as: `user` itself, or the one its impersonation headers name
    /// once `user` may impersonate it (each name checked with the `impersonate` verb).
    pub fn impersonate(
        &self,
        user: &UserInfo,
        headers: &HeaderMap,
    ) -> Result<Option<UserInfo>, ApiError> {
        let header = |name: &str| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned)
                .collect::<Vec<String>>()
        };
        let names = header("impersonate-user");
        let groups = header("impersonate-group");
        let uids = header("impersonate-uid");
        let Some(name) = names.first() else {
            if groups.is_empty() && uids.is_empty() {
                return Ok(None);
            }
            return Err(ApiError::bad_request(
                "requested impersonation of groups or a uid without impersonating a user",
            ));
        };
        let mut checks = Vec::new();
        let mut extra_groups = Vec::new();
        match name
            .strip_prefix("system:serviceaccount:")
            .and_then(|rest| rest.split_once(':'))
        {
            Some((namespace, account)) => {
                checks.push(Attributes::resource(
                    "impersonate",
                    "",
                    "serviceaccounts",
                    namespace,
                    account,
                ));
                extra_groups.push("system:serviceaccounts".to_owned());
                extra_groups.push(format!("system:serviceaccounts:{namespace}"));
            }
            None => checks.push(Attributes::resource("impersonate", "", "users", "", name)),
        }
        for group in &groups {
            checks.push(Attributes::resource("impersonate", "", "groups", "", group));
        }
        for uid in &uids {
            checks.push(Attributes::resource(
                "impersonate",
                "authentication.k8s.io",
                "uids",
                "",
                uid,
            ));
        }
        for check in &checks {
            if let Decision::Deny(reason) = self.authorize(user, check) {
                return Err(forbidden(user, check, &reason));
            }
        }
        let uid = uids.first().map(String::as_str).unwrap_or("");
        let mut impersonated = UserInfo::new(name, uid, groups.into_iter().chain(extra_groups));
        // Without an explicit uid the impersonated user has none (the name is not a uid).
        impersonated.uid = uid.to_owned();
        Ok(Some(impersonated))
    }
}

/// kube-apiserver's 403 for a denied request:
/// `pods "web" is forbidden: User "jane" cannot delete resource "pods" in API group "" in the
/// namespace "default"`.
pub fn forbidden(user: &UserInfo, attrs: &Attributes, reason: &str) -> ApiError {
    let mut why = format!("User {:?} cannot {attrs}", user.name);
    if !reason.is_empty() {
        why = format!("{why}: {reason}");
    }
    let target = if attrs.resource_request {
        Target::new(&attrs.api_group, &attrs.resource, &attrs.name)
    } else {
        Target::new("", "", "")
    };
    status::forbidden(&target, &why).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_messages_match_kube_apiserver() {
        let jane = UserInfo::new("jane", "", []);
        let delete = Attributes::resource("delete", "", "pods", "default", "web");
        let err = forbidden(&jane, &delete, "");
        assert_eq!(err.code(), 403);
        assert_eq!(
            err.status.message.as_deref(),
            Some(
                r#"pods "web" is forbidden: User "jane" cannot delete resource "pods" in API group "" in the namespace "default""#
            )
        );
        let list = Attributes::resource("list", "apps", "deployments", "", "");
        assert_eq!(
            forbidden(&jane, &list, "").status.message.as_deref(),
            Some(
                r#"deployments.apps is forbidden: User "jane" cannot list resource "deployments" in API group "apps" at the cluster scope"#
            )
        );
        let metrics = Attributes::non_resource("get", "/metrics");
        assert_eq!(
            forbidden(&jane, &metrics, "").status.message.as_deref(),
            Some(r#"forbidden: User "jane" cannot get path "/metrics""#)
        );
    }
}
