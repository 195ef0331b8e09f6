//! The review APIs: answered from the authorizer, never stored.
//!
//! - `authorization.k8s.io/v1` SelfSubjectAccessReview (`kubectl auth can-i`),
//!   SubjectAccessReview, LocalSubjectAccessReview and SelfSubjectRulesReview
//!   (`kubectl auth can-i --list`);
//! - `authentication.k8s.io/v1` SelfSubjectReview (`kubectl auth whoami`).

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tugboat_api::status::{self, Target};

use super::{Attributes, Authorizer, Decision};
use crate::auth::UserInfo;
use crate::error::{ApiError, ApiResult};
use crate::handlers::json_response;
use crate::path::ResourcePath;

/// Whether `path` addresses one of the review resources.
pub fn is_review(path: &ResourcePath) -> bool {
    matches!(
        path.resource.group,
        "authorization.k8s.io" | "authentication.k8s.io"
    ) && !path.resource.stored
}

/// Answer a review `POST`.
pub fn handle(
    authorizer: &Authorizer,
    user: &UserInfo,
    method: &Method,
    path: &ResourcePath,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<Response> {
    let resource = path.resource;
    if method != Method::POST || path.name.is_some() {
        return Err(status::method_not_allowed(
            &Target::of(resource, ""),
            match *method {
                Method::GET => "get",
                Method::DELETE => "delete",
                Method::PUT => "update",
                Method::PATCH => "patch",
                _ => "this method",
            },
        )
        .into());
    }
    let mut review = crate::request::decode_object(headers, body)?;
    let spec = review.get("spec").cloned().unwrap_or(Value::Null);
    let invalid = |field: &str, detail: &str| {
        let errors = [status::FieldError::invalid(field, Value::Null, detail)];
        ApiError::from(status::invalid(resource.group, resource.kind, "", &errors))
    };
    let answer = match resource.kind {
        "SelfSubjectReview" => json!({ "userInfo": user_info(user) }),
        "SelfSubjectAccessReview" => access_status(authorizer, user, &attributes(&spec, &invalid)?),
        "LocalSubjectAccessReview" => {
            let namespace = path.namespace.as_deref().unwrap_or_default();
            if spec.get("nonResourceAttributes").is_some() {
                return Err(invalid(
                    "spec.nonResourceAttributes",
                    "disallowed on this kind of request",
                ));
            }
            let mut attrs = attributes(&spec, &invalid)?;
            if attrs.namespace.is_empty() {
                attrs.namespace = namespace.to_owned();
            } else if attrs.namespace != namespace {
                return Err(invalid(
                    "spec.resourceAttributes.namespace",
                    "must match metadata.namespace",
                ));
            }
            access_status(authorizer, &subject(&spec, &invalid)?, &attrs)
        }
        "SubjectAccessReview" => access_status(
            authorizer,
            &subject(&spec, &invalid)?,
            &attributes(&spec, &invalid)?,
        ),
        "SelfSubjectRulesReview" => {
            let namespace = spec.get("namespace").and_then(Value::as_str).unwrap_or("");
            let (resource_rules, non_resource_rules) = authorizer.rules(user, namespace);
            json!({
                "resourceRules": resource_rules.iter().map(resource_rule).collect::<Vec<_>>(),
                "nonResourceRules": non_resource_rules.iter().map(non_resource_rule).collect::<Vec<_>>(),
                "incomplete": false,
            })
        }
        _ => return Err(status::resource_not_served().into()),
    };
    review["apiVersion"] = json!(resource.api_version(&path.version));
    review["kind"] = json!(resource.kind);
    if !review.get("metadata").is_some_and(Value::is_object) {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = answer;
    Ok(json_response(StatusCode::CREATED, &review))
}

fn user_info(user: &UserInfo) -> Value {
    json!({ "username": user.name, "uid": user.uid, "groups": user.groups })
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The request a SubjectAccessReview spec asks about.
fn attributes(spec: &Value, invalid: &dyn Fn(&str, &str) -> ApiError) -> ApiResult<Attributes> {
    match (
        spec.get("resourceAttributes"),
        spec.get("nonResourceAttributes"),
    ) {
        (Some(r), None) => {
            let mut attrs = Attributes::resource(
                text(r, "verb"),
                text(r, "group"),
                text(r, "resource"),
                text(r, "namespace"),
                text(r, "name"),
            );
            attrs.subresource = text(r, "subresource").to_owned();
            attrs.api_version = text(r, "version").to_owned();
            Ok(attrs)
        }
        (None, Some(n)) => Ok(Attributes::non_resource(text(n, "verb"), text(n, "path"))),
        (Some(_), Some(_)) => Err(invalid(
            "spec.nonResourceAttributes",
            "cannot be specified in combination with resourceAttributes",
        )),
        (None, None) => Err(invalid(
            "spec.resourceAttributes",
            "exactly one of nonResourceAttributes or resourceAttributes must be specified",
        )),
    }
}

/// The user a SubjectAccessReview names: exactly the given user and groups.
fn subject(spec: &Value, invalid: &dyn Fn(&str, &str) -> ApiError) -> ApiResult<UserInfo> {
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let name = text(spec, "user");
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            "spec.user",
            "at least one of user or group must be specified",
        ));
    }
    Ok(UserInfo {
        name: name.to_owned(),
        uid: text(spec, "uid").to_owned(),
        groups,
    })
}

fn access_status(authorizer: &Authorizer, user: &UserInfo, attrs: &Attributes) -> Value {
    match authorizer.authorize(user, attrs) {
        Decision::Allow(reason) => json!({ "allowed": true, "reason": reason }),
        Decision::Deny(reason) => json!({ "allowed": false, "reason": reason }),
    }
}

fn list(rule: &Value, key: &str) -> Value {
    rule.get(key).cloned().unwrap_or_else(|| json!([]))
}

fn resource_rule(rule: &Value) -> Value {
    let mut out = json!({
        "verbs": list(rule, "verbs"),
        "apiGroups": list(rule, "apiGroups"),
        "resources": list(rule, "resources"),
    });
    if let Some(names) = rule.get("resourceNames") {
        out["resourceNames"] = names.clone();
    }
    out
}

fn non_resource_rule(rule: &Value) -> Value {
    json!({ "verbs": list(rule, "verbs"), "nonResourceURLs": list(rule, "nonResourceURLs") })
}
