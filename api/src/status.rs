//! `meta/v1 Status` bodies, worded exactly as kube-apiserver words them.
//!
//! kubectl prints `Error from server (<reason>): <message>` and client-go branches on
//! `reason` and `code` (`IsNotFound`, `IsConflict`, `IsResourceExpired`...), so both must
//! match upstream (apimachinery `pkg/api/errors/errors.go`, `pkg/util/validation/field`).
//! Every constructor returns a k8s-openapi [`Status`], which serializes with
//! `kind: Status` and `apiVersion: v1` as clients require.

#![warn(missing_docs)]

use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use serde_json::Value;

use crate::resources::ResourceInfo;

/// The `reason` values kube-apiserver uses (`metav1.StatusReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// 404.
    NotFound,
    /// 409 on create.
    AlreadyExists,
    /// 409 on a stale `resourceVersion`.
    Conflict,
    /// 422.
    Invalid,
    /// 400.
    BadRequest,
    /// 405.
    MethodNotAllowed,
    /// 415.
    UnsupportedMediaType,
    /// 406.
    NotAcceptable,
    /// 413.
    RequestEntityTooLarge,
    /// 410 for a resource version that was compacted away.
    Expired,
    /// 410.
    Gone,
    /// 504.
    Timeout,
    /// 401.
    Unauthorized,
    /// 403.
    Forbidden,
    /// 429.
    TooManyRequests,
    /// 500.
    InternalError,
    /// 503.
    ServiceUnavailable,
}

impl Reason {
    /// The wire form (`NotFound`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::NotFound => "NotFound",
            Reason::AlreadyExists => "AlreadyExists",
            Reason::Conflict => "Conflict",
            Reason::Invalid => "Invalid",
            Reason::BadRequest => "BadRequest",
            Reason::MethodNotAllowed => "MethodNotAllowed",
            Reason::UnsupportedMediaType => "UnsupportedMediaType",
            Reason::NotAcceptable => "NotAcceptable",
            Reason::RequestEntityTooLarge => "RequestEntityTooLarge",
            Reason::Expired => "Expired",
            Reason::Gone => "Gone",
            Reason::Timeout => "Timeout",
            Reason::Unauthorized => "Unauthorized",
            Reason::Forbidden => "Forbidden",
            Reason::TooManyRequests => "TooManyRequests",
            Reason::InternalError => "InternalError",
            Reason::ServiceUnavailable => "ServiceUnavailable",
        }
    }

    /// The HTTP status code that goes with the reason.
    pub const fn code(self) -> u16 {
        match self {
            Reason::NotFound => 404,
            Reason::AlreadyExists | Reason::Conflict => 409,
            Reason::Invalid => 422,
            Reason::BadRequest => 400,
            Reason::MethodNotAllowed => 405,
            Reason::UnsupportedMediaType => 415,
            Reason::NotAcceptable => 406,
            Reason::RequestEntityTooLarge => 413,
            Reason::Expired | Reason::Gone => 410,
            Reason::Timeout => 504,
            Reason::Unauthorized => 401,
            Reason::Forbidden => 403,
            Reason::TooManyRequests => 429,
            Reason::InternalError => 500,
            Reason::ServiceUnavailable => 503,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The object an error is about: its group-qualified resource and name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Target {
    /// API group; empty for core.
    pub group: String,
    /// Lower-case plural (`deployments`): upstream puts the resource in `details.kind`.
    pub resource: String,
    /// Object name; empty for collection-level errors.
    pub name: String,
    /// UID, when known (kubectl's delete waits on it).
    pub uid: Option<String>,
}

impl Target {
    /// A target named by group, resource and object name.
    pub fn new(group: &str, resource: &str, name: &str) -> Self {
        Self {
            group: group.to_owned(),
            resource: resource.to_owned(),
            name: name.to_owned(),
            uid: None,
        }
    }

    /// A target for an object of a registered resource.
    pub fn of(resource: &ResourceInfo, name: &str) -> Self {
        Self::new(resource.group, resource.plural, name)
    }

    /// The same target with a UID.
    pub fn with_uid(mut self, uid: impl Into<String>) -> Self {
        self.uid = Some(uid.into());
        self
    }

    /// `pods`, `deployments.apps`: how upstream prints a `GroupResource`.
    pub fn qualified_resource(&self) -> String {
        if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        }
    }

    fn details(&self) -> StatusDetails {
        StatusDetails {
            group: non_empty(&self.group),
            kind: non_empty(&self.resource),
            name: non_empty(&self.name),
            uid: self.uid.clone(),
            ..StatusDetails::default()
        }
    }
}

fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

/// Go's `%q` for the strings we quote: a double-quoted string with `"` and `\` escaped.
fn quote(s: &str) -> String {
    // serde_json's string escaping matches Go's %q for printable text.
    Value::String(s.to_owned()).to_string()
}

fn failure(reason: Reason, message: String, details: Option<StatusDetails>) -> Status {
    Status {
        code: Some(i32::from(reason.code())),
        details,
        message: Some(message),
        reason: Some(reason.as_str().to_owned()),
        status: Some("Failure".to_owned()),
        ..Status::default()
    }
}

/// 404: `pods "web" not found`.
pub fn not_found(target: &Target) -> Status {
    let message = format!(
        "{} {} not found",
        target.qualified_resource(),
        quote(&target.name)
    );
    failure(Reason::NotFound, message, Some(target.details()))
}

/// 404 for a path that names no served resource:
/// `the server could not find the requested resource`.
pub fn resource_not_served() -> Status {
    failure(
        Reason::NotFound,
        "the server could not find the requested resource".to_owned(),
        Some(StatusDetails::default()),
    )
}

/// 409 on create: `pods "web" already exists`.
pub fn already_exists(target: &Target) -> Status {
    let message = format!(
        "{} {} already exists",
        target.qualified_resource(),
        quote(&target.name)
    );
    failure(Reason::AlreadyExists, message, Some(target.details()))
}

/// What upstream says when an update carries a stale `resourceVersion`.
pub const OBJECT_MODIFIED: &str =
    "the object has been modified; please apply your changes to the latest version and try again";

/// 409: `Operation cannot be fulfilled on deployments.apps "web": <why>`.
/// Use [`OBJECT_MODIFIED`] as `why` for a stale `resourceVersion`.
pub fn conflict(target: &Target, why: &str) -> Status {
    let message = format!(
        "Operation cannot be fulfilled on {} {}: {}",
        target.qualified_resource(),
        quote(&target.name),
        why
    );
    failure(Reason::Conflict, message, Some(target.details()))
}

/// The kind of a field validation error (`field.ErrorType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldErrorType {
    /// A referenced value does not exist.
    NotFound,
    /// A required field is missing.
    Required,
    /// A value must be unique and is not.
    Duplicate,
    /// A value is malformed or out of range.
    Invalid,
    /// A value is not one of the allowed ones.
    NotSupported,
    /// The field may not be set (here, or to this value).
    Forbidden,
    /// A string is too long.
    TooLong,
    /// A list has too many items.
    TooMany,
    /// Something went wrong while validating.
    Internal,
    /// A value has the wrong JSON type.
    TypeInvalid,
}

impl FieldErrorType {
    /// The `details.causes[].reason` string (`FieldValueInvalid`).
    pub const fn cause_reason(self) -> &'static str {
        match self {
            FieldErrorType::NotFound => "FieldValueNotFound",
            FieldErrorType::Required => "FieldValueRequired",
            FieldErrorType::Duplicate => "FieldValueDuplicate",
            FieldErrorType::Invalid => "FieldValueInvalid",
            FieldErrorType::NotSupported => "FieldValueNotSupported",
            FieldErrorType::Forbidden => "FieldValueForbidden",
            FieldErrorType::TooLong => "FieldValueTooLong",
            FieldErrorType::TooMany => "FieldValueTooMany",
            FieldErrorType::Internal => "InternalError",
            FieldErrorType::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The human phrase (`Invalid value`).
    pub const fn phrase(self) -> &'static str {
        match self {
            FieldErrorType::NotFound => "Not found",
            FieldErrorType::Required => "Required value",
            FieldErrorType::Duplicate => "Duplicate value",
            FieldErrorType::Invalid | FieldErrorType::TypeInvalid => "Invalid value",
            FieldErrorType::NotSupported => "Unsupported value",
            FieldErrorType::Forbidden => "Forbidden",
            FieldErrorType::TooLong => "Too long",
            FieldErrorType::TooMany => "Too many",
            FieldErrorType::Internal => "Internal error",
        }
    }

    /// Whether upstream leaves the bad value out of the message for this type.
    const fn omits_value(self) -> bool {
        matches!(
            self,
            FieldErrorType::Required
                | FieldErrorType::Forbidden
                | FieldErrorType::TooLong
                | FieldErrorType::Internal
        )
    }
}

/// One field validation error, as `field.Error`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldError {
    /// What is wrong.
    pub error_type: FieldErrorType,
    /// The field path (`spec.replicas`, `spec.containers[0].image`).
    pub field: String,
    /// The offending value, if it should be shown.
    pub bad_value: Option<Value>,
    /// Further explanation (`must be greater than or equal to 0`).
    pub detail: String,
}

impl FieldError {
    /// A field error of any type.
    pub fn new(
        error_type: FieldErrorType,
        field: impl Into<String>,
        bad_value: Option<Value>,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            error_type,
            field: field.into(),
            bad_value,
            detail: detail.into(),
        }
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl Into<String>, value: Value, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Invalid, field, Some(value), detail)
    }

    /// `Required value: <detail>`.
    pub fn required(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Required, field, None, detail)
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(FieldErrorType::Forbidden, field, None, detail)
    }

    /// `Unsupported value: "x": supported values: "a", "b"`.
    pub fn not_supported(field: impl Into<String>, value: Value, supported: &[&str]) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|s| quote(s)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(FieldErrorType::NotSupported, field, Some(value), detail)
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl Into<String>, value: Value) -> Self {
        Self::new(FieldErrorType::Duplicate, field, Some(value), "")
    }

    /// The message without the field path (`field.Error.ErrorBody`).
    pub fn body(&self) -> String {
        let mut body = match &self.bad_value {
            Some(value) if !self.error_type.omits_value() => {
                format!("{}: {}", self.error_type.phrase(), format_value(value))
            }
            _ => self.error_type.phrase().to_owned(),
        };
        if !self.detail.is_empty() {
            body.push_str(": ");
            body.push_str(&self.detail);
        }
        body
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// Prints a bad value as Go's `field.Error` does: strings quoted, numbers and booleans
/// bare, `null` for nil, JSON for compound values.
fn format_value(value: &Value) -> String {
    match value {
        Value::String(s) => quote(s),
        Value::Null => "null".to_owned(),
        other => other.to_string(),
    }
}

/// 422: `Deployment.apps "web" is invalid: spec.replicas: Invalid value: -1: must be
/// greater than or equal to 0`, with one `details.causes[]` entry per error.
///
/// `group` and `kind` name the object's kind (`apps`, `Deployment`), as upstream does for
/// validation errors.
pub fn invalid(group: &str, kind: &str, name: &str, errors: &[FieldError]) -> Status {
    let qualified_kind = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let aggregate = match errors {
        [] => String::new(),
        [single] => single.to_string(),
        many => {
            let parts: Vec<String> = many.iter().map(ToString::to_string).collect();
            format!("[{}]", parts.join(", "))
        }
    };
    let message = format!(
        "{} {} is invalid: {}",
        qualified_kind,
        quote(name),
        aggregate
    );
    let causes = errors
        .iter()
        .map(|e| StatusCause {
            field: Some(e.field.clone()),
            message: Some(e.body()),
            reason: Some(e.error_type.cause_reason().to_owned()),
        })
        .collect();
    let details = StatusDetails {
        group: non_empty(group),
        kind: non_empty(kind),
        name: non_empty(name),
        causes: Some(causes),
        ..StatusDetails::default()
    };
    failure(Reason::Invalid, message, Some(details))
}

/// 400 with `message` as given (`field label not supported: x`).
pub fn bad_request(message: impl Into<String>) -> Status {
    failure(Reason::BadRequest, message.into(), None)
}

/// 405: `<action> is not supported on resources of kind "pods"`.
pub fn method_not_allowed(target: &Target, action: &str) -> Status {
    let message = format!(
        "{} is not supported on resources of kind {}",
        action,
        quote(&target.qualified_resource())
    );
    let details = StatusDetails {
        group: non_empty(&target.group),
        kind: non_empty(&target.resource),
        ..StatusDetails::default()
    };
    failure(Reason::MethodNotAllowed, message, Some(details))
}

/// 405 for an HTTP method a route does not take:
/// `the server does not allow this method on the requested resource`.
pub fn method_not_allowed_on_path() -> Status {
    failure(
        Reason::MethodNotAllowed,
        "the server does not allow this method on the requested resource".to_owned(),
        Some(StatusDetails::default()),
    )
}

/// 415 for a body in a format the endpoint does not take.
pub fn unsupported_media_type(accepted: &[&str]) -> Status {
    let message = format!(
        "the body of the request was in an unknown format - accepted media types include: {}",
        accepted.join(", ")
    );
    failure(Reason::UnsupportedMediaType, message, None)
}

/// 406 when no `Accept`ed type can be produced.
pub fn not_acceptable(accepted: &[&str]) -> Status {
    let message = format!(
        "only the following media types are accepted: {}",
        accepted.join(", ")
    );
    failure(Reason::NotAcceptable, message, None)
}

/// 413: `Request entity too large: <why>`.
pub fn request_entity_too_large(why: &str) -> Status {
    failure(
        Reason::RequestEntityTooLarge,
        format!("Request entity too large: {why}"),
        None,
    )
}

/// 410 Gone with `message` as given.
pub fn gone(message: impl Into<String>) -> Status {
    failure(Reason::Gone, message.into(), None)
}

/// What upstream says in the watch ERROR event for a compacted `resourceVersion`.
pub const WATCH_TOO_OLD: &str = "The resourceVersion for the provided watch is too old.";

/// 410 Expired: client-go relists on it. Use [`WATCH_TOO_OLD`] in watch ERROR events, and
/// [`too_old_resource_version`] for lists.
pub fn expired(message: impl Into<String>) -> Status {
    failure(Reason::Expired, message.into(), None)
}

/// 410 Expired for a list at a compacted revision:
/// `too old resource version: 5 (42)`.
pub fn too_old_resource_version(requested: u64, oldest: u64) -> Status {
    expired(format!("too old resource version: {requested} ({oldest})"))
}

/// 504: `Timeout: <message>`, retry after `retry_after_seconds`.
pub fn timeout(message: &str, retry_after_seconds: i32) -> Status {
    let details = StatusDetails {
        retry_after_seconds: Some(retry_after_seconds),
        ..StatusDetails::default()
    };
    failure(
        Reason::Timeout,
        format!("Timeout: {message}"),
        Some(details),
    )
}

/// 504 for a read at a revision the store has not reached yet:
/// `Timeout: Too large resource version: 50, current: 42`.
pub fn too_large_resource_version(requested: u64, current: u64) -> Status {
    let mut status = timeout(
        &format!("Too large resource version: {requested}, current: {current}"),
        1,
    );
    if let Some(details) = status.details.as_mut() {
        details.causes = Some(vec![StatusCause {
            reason: Some("ResourceVersionTooLarge".to_owned()),
            message: Some("Too large resource version".to_owned()),
            field: None,
        }]);
    }
    status
}

/// 401 `Unauthorized`.
pub fn unauthorized() -> Status {
    failure(Reason::Unauthorized, "Unauthorized".to_owned(), None)
}

/// 403: `pods "web" is forbidden: <why>` (or `pods is forbidden: <why>` without a name).
pub fn forbidden(target: &Target, why: &str) -> Status {
    let message = match (target.resource.is_empty(), target.name.is_empty()) {
        (true, _) => format!("forbidden: {why}"),
        (false, true) => format!("{} is forbidden: {}", target.qualified_resource(), why),
        (false, false) => format!(
            "{} {} is forbidden: {}",
            target.qualified_resource(),
            quote(&target.name),
            why
        ),
    };
    failure(Reason::Forbidden, message, Some(target.details()))
}

/// 429 with a retry hint.
pub fn too_many_requests(message: impl Into<String>, retry_after_seconds: i32) -> Status {
    let details = StatusDetails {
        retry_after_seconds: Some(retry_after_seconds),
        ..StatusDetails::default()
    };
    failure(Reason::TooManyRequests, message.into(), Some(details))
}

/// 500: `Internal error occurred: <what>`. Keep internals out of `what`.
pub fn internal_error(what: &str) -> Status {
    let details = StatusDetails {
        causes: Some(vec![StatusCause {
            message: Some(what.to_owned()),
            ..StatusCause::default()
        }]),
        ..StatusDetails::default()
    };
    failure(
        Reason::InternalError,
        format!("Internal error occurred: {what}"),
        Some(details),
    )
}

/// 503 with `message` as given.
pub fn service_unavailable(message: impl Into<String>) -> Status {
    failure(Reason::ServiceUnavailable, message.into(), None)
}

/// A bare `status: Success` body, as for a collection delete that returns no list.
pub fn success() -> Status {
    Status {
        status: Some("Success".to_owned()),
        ..Status::default()
    }
}

/// The `status: Success` body kube-apiserver returns for a delete that has no object to
/// return (and that kubectl reads `details.uid` from).
pub fn success_deleted(target: &Target) -> Status {
    Status {
        status: Some("Success".to_owned()),
        details: Some(target.details()),
        ..Status::default()
    }
}

/// The HTTP status code of a `Status` (500 when missing or out of range).
pub fn http_code(status: &Status) -> u16 {
    status
        .code
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..600).contains(c))
        .unwrap_or(500)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn to_json(status: &Status) -> Value {
        serde_json::to_value(status).unwrap()
    }

    #[test]
    fn not_found_json_is_what_kubectl_reads() {
        let status = not_found(&Target::new("", "pods", "web"));
        assert_eq!(
            to_json(&status),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "pods \"web\" not found",
                "reason": "NotFound",
                "details": {"name": "web", "kind": "pods"},
                "code": 404
            })
        );
        assert_eq!(http_code(&status), 404);
    }

    #[test]
    fn grouped_resources_are_qualified() {
        let target = Target::new("apps", "deployments", "web");
        let status = already_exists(&target);
        assert_eq!(
            status.message.as_deref(),
            Some("deployments.apps \"web\" already exists")
        );
        assert_eq!(status.code, Some(409));
        assert_eq!(status.details.unwrap().group.as_deref(), Some("apps"));
    }

    #[test]
    fn conflict_uses_upstream_wording() {
        let status = conflict(&Target::new("apps", "deployments", "web"), OBJECT_MODIFIED);
        assert_eq!(
            status.message.as_deref(),
            Some(
                "Operation cannot be fulfilled on deployments.apps \"web\": the object has been \
                 modified; please apply your changes to the latest version and try again"
            )
        );
        assert_eq!(status.reason.as_deref(), Some("Conflict"));
        assert_eq!(status.code, Some(409));
    }

    #[test]
    fn invalid_lists_causes() {
        let status = invalid(
            "apps",
            "Deployment",
            "web",
            &[FieldError::invalid(
                "spec.replicas",
                json!(-1),
                "must be greater than or equal to 0",
            )],
        );
        assert_eq!(
            to_json(&status),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Failure",
                "message": "Deployment.apps \"web\" is invalid: spec.replicas: Invalid value: -1: must be greater than or equal to 0",
                "reason": "Invalid",
                "details": {
                    "name": "web",
                    "group": "apps",
                    "kind": "Deployment",
                    "causes": [{
                        "reason": "FieldValueInvalid",
                        "message": "Invalid value: -1: must be greater than or equal to 0",
                        "field": "spec.replicas"
                    }]
                },
                "code": 422
            })
        );
    }

    #[test]
    fn invalid_with_several_errors_brackets_them() {
        let status = invalid(
            "",
            "Pod",
            "web",
            &[
                FieldError::required("spec.containers[0].image", ""),
                FieldError::not_supported(
                    "spec.restartPolicy",
                    json!("Sometimes"),
                    &["Always", "OnFailure", "Never"],
                ),
            ],
        );
        assert_eq!(
            status.message.as_deref(),
            Some(
                "Pod \"web\" is invalid: [spec.containers[0].image: Required value, \
                 spec.restartPolicy: Unsupported value: \"Sometimes\": supported values: \
                 \"Always\", \"OnFailure\", \"Never\"]"
            )
        );
        let causes = status.details.unwrap().causes.unwrap();
        assert_eq!(causes[0].reason.as_deref(), Some("FieldValueRequired"));
        assert_eq!(causes[1].reason.as_deref(), Some("FieldValueNotSupported"));
    }

    #[test]
    fn simple_errors_have_the_right_codes_and_messages() {
        let pods = Target::new("", "pods", "");
        let cases: Vec<(Status, u16, &str, &str)> = vec![
            (
                bad_request("field label not supported: spec.foo"),
                400,
                "BadRequest",
                "field label not supported: spec.foo",
            ),
            (
                method_not_allowed(&pods, "deletecollection"),
                405,
                "MethodNotAllowed",
                "deletecollection is not supported on resources of kind \"pods\"",
            ),
            (
                unsupported_media_type(&["application/json", "application/yaml"]),
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml",
            ),
            (
                not_acceptable(&["application/json"]),
                406,
                "NotAcceptable",
                "only the following media types are accepted: application/json",
            ),
            (
                request_entity_too_large("limit is 3145728"),
                413,
                "RequestEntityTooLarge",
                "Request entity too large: limit is 3145728",
            ),
            (expired(WATCH_TOO_OLD), 410, "Expired", WATCH_TOO_OLD),
            (
                too_old_resource_version(5, 42),
                410,
                "Expired",
                "too old resource version: 5 (42)",
            ),
            (gone("gone"), 410, "Gone", "gone"),
            (
                resource_not_served(),
                404,
                "NotFound",
                "the server could not find the requested resource",
            ),
            (
                method_not_allowed_on_path(),
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            ),
            (
                too_large_resource_version(50, 42),
                504,
                "Timeout",
                "Timeout: Too large resource version: 50, current: 42",
            ),
            (unauthorized(), 401, "Unauthorized", "Unauthorized"),
            (
                forbidden(&Target::new("", "pods", "web"), "User \"bob\" cannot get"),
                403,
                "Forbidden",
                "pods \"web\" is forbidden: User \"bob\" cannot get",
            ),
            (
                forbidden(&pods, "nope"),
                403,
                "Forbidden",
                "pods is forbidden: nope",
            ),
            (
                too_many_requests("slow down", 1),
                429,
                "TooManyRequests",
                "slow down",
            ),
            (
                internal_error("store unavailable"),
                500,
                "InternalError",
                "Internal error occurred: store unavailable",
            ),
            (
                service_unavailable("starting"),
                503,
                "ServiceUnavailable",
                "starting",
            ),
        ];
        for (status, code, reason, message) in cases {
            assert_eq!(http_code(&status), code, "{message}");
            assert_eq!(status.reason.as_deref(), Some(reason), "{message}");
            assert_eq!(status.message.as_deref(), Some(message));
            assert_eq!(status.status.as_deref(), Some("Failure"));
            let json = to_json(&status);
            assert_eq!(json["kind"], "Status");
            assert_eq!(json["apiVersion"], "v1");
        }
    }

    #[test]
    fn too_large_resource_version_asks_to_retry() {
        let details = too_large_resource_version(50, 42).details.unwrap();
        assert_eq!(details.retry_after_seconds, Some(1));
        assert_eq!(
            details.causes.unwrap()[0].reason.as_deref(),
            Some("ResourceVersionTooLarge")
        );
    }

    #[test]
    fn delete_success_carries_the_uid() {
        let target = Target::new("apps", "deployments", "web").with_uid("1234");
        assert_eq!(
            to_json(&success_deleted(&target)),
            json!({
                "kind": "Status",
                "apiVersion": "v1",
                "metadata": {},
                "status": "Success",
                "details": {"name": "web", "group": "apps", "kind": "deployments", "uid": "1234"}
            })
        );
    }

    #[test]
    fn field_error_values_are_formatted_like_go() {
        assert_eq!(
            FieldError::invalid("metadata.name", json!("Bad_Name"), "must be lowercase")
                .to_string(),
            "metadata.name: Invalid value: \"Bad_Name\": must be lowercase"
        );
        assert_eq!(
            FieldError::forbidden("spec.selector", "field is immutable").to_string(),
            "spec.selector: Forbidden: field is immutable"
        );
        assert_eq!(
            FieldError::duplicate("spec.ports[1].port", json!(80)).to_string(),
            "spec.ports[1].port: Duplicate value: 80"
        );
    }

    #[test]
    fn bare_success() {
        assert_eq!(
            to_json(&success()),
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"})
        );
        assert_eq!(http_code(&success()), 500);
    }

    #[test]
    fn http_code_defaults_to_500() {
        assert_eq!(http_code(&Status::default()), 500);
        let odd = Status {
            code: Some(-3),
            ..Status::default()
        };
        assert_eq!(http_code(&odd), 500);
    }
}
