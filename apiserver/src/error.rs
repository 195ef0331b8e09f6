//! The API server's one error type: a `meta/v1 Status` with its HTTP code.
//!
//! Every failure a client sees goes through [`ApiError`], so kubectl prints
//! `Error from server (Reason): message` for all of them. Internal details of 5xx errors are
//! logged once here, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use tugboat_api::status::{self, Target};
use tugboat_store::StoreError;

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// The body: a failure Status.
    pub status: Box<Status>,
    /// Seconds for a `Retry-After` header (429, 503, 504).
    pub retry_after: Option<u32>,
}

/// Result with [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        ApiError {
            status: Box::new(status),
            retry_after: None,
        }
    }
}

impl ApiError {
    /// 400 Bad Request with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        status::bad_request(message).into()
    }

    /// 500, logging the cause once and sending only `what`.
    pub fn internal(what: &str, cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{what}");
        status::internal_error(what).into()
    }

    /// The HTTP code of this error.
    pub fn code(&self) -> u16 {
        status::http_code(&self.status)
    }

    /// Map a store error about `target` onto its Status.
    pub fn from_store(err: StoreError, target: &Target) -> Self {
        match err {
            StoreError::NotFound { .. } => status::not_found(target).into(),
            StoreError::AlreadyExists { .. } => status::already_exists(target).into(),
            StoreError::Conflict { .. } => status::conflict(
                target,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
            .into(),
            StoreError::Compacted { compact_revision } => status::expired(format!(
                "The resourceVersion for the provided list is too old (compacted up to {compact_revision})."
            ))
            .into(),
            StoreError::FutureRevision { requested, current } => ApiError {
                status: Box::new(status::too_large_resource_version(
                    u64::try_from(requested).unwrap_or(0),
                    u64::try_from(current).unwrap_or(0),
                )),
                retry_after: Some(1),
            },
            StoreError::TooLarge { size, limit } => status::request_entity_too_large(&format!(
                "the object is {size} bytes, over the limit of {limit} bytes"
            ))
            .into(),
            StoreError::Invalid(message) => status::bad_request(message).into(),
            err @ StoreError::Unavailable { .. } => {
                tracing::error!(error = %err, "store unavailable");
                ApiError {
                    status: Box::new(status::service_unavailable("the storage backend is unavailable")),
                    retry_after: Some(1),
                }
            }
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}",
            self.code(),
            self.status.message.as_deref().unwrap_or_default()
        )
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.status).unwrap_or_default();
        let mut response = (code, body).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}
