//! Resource requests: one entry point that maps method and path onto a verb, and the verbs.
//!
//! - [`read`]: get, list (from the store, or the watch cache for `resourceVersion=0`)
//! - [`watch`]: watch streams from the watch cache
//! - [`write`]: create, update, patch, delete, deletecollection
//! - [`subresource`]: status, scale, binding, finalize

pub mod apply;
pub mod read;
pub mod subresource;
pub mod watch;
pub mod write;

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::Value;
use tugboat_api::resources::Verb;
use tugboat_api::status::{self, Target};

use crate::error::{ApiError, ApiResult};
use crate::path::ResourcePath;
use crate::request::Query;
use crate::server::ApiState;

/// Everything a verb needs about its request.
pub struct Ctx<'a> {
    /// Shared server state.
    pub state: &'a ApiState,
    /// The addressed resource, namespace, name and subresource.
    pub path: &'a ResourcePath,
    /// Query parameters.
    pub query: &'a Query,
    /// Request headers.
    pub headers: &'a HeaderMap,
    /// Who sent the request (admission plugins such as NodeRestriction look).
    pub user: &'a crate::auth::UserInfo,
}

impl Ctx<'_> {
    /// The store key of the named object.
    pub fn key(&self) -> ApiResult<String> {
        let name = self.name()?;
        Ok(self
            .path
            .resource
            .storage_key(self.path.namespace.as_deref(), name))
    }

    /// The object name from the path.
    pub fn name(&self) -> ApiResult<&str> {
        self.path
            .name
            .as_deref()
            .ok_or_else(|| ApiError::bad_request("a name is required"))
    }

    /// The error target for the named object.
    pub fn target(&self) -> Target {
        Target::of(self.path.resource, self.path.name.as_deref().unwrap_or(""))
    }
}

/// Handle a request for a resource path.
pub async fn dispatch(
    state: &ApiState,
    user: &crate::auth::UserInfo,
    method: &Method,
    path: &ResourcePath,
    query: &Query,
    headers: &HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let ctx = Ctx {
        state,
        path,
        query,
        headers,
        user,
    };
    let resource = path.resource;
    let named = path.name.is_some();
    let verb = match (method, named, path.subresource.as_deref()) {
        (&Method::GET, false, None) if query.flag("watch") => Verb::Watch,
        (&Method::GET, false, None) => Verb::List,
        (&Method::GET, true, _) => Verb::Get,
        (&Method::POST, false, None) => Verb::Create,
        (&Method::POST, true, Some(_)) => Verb::Create,
        (&Method::PUT, true, _) => Verb::Update,
        (&Method::PATCH, true, _) => Verb::Patch,
        (&Method::DELETE, true, None) => Verb::Delete,
        (&Method::DELETE, false, None) => Verb::DeleteCollection,
        _ => {
            return Err(status::method_not_allowed(&ctx.target(), method.as_str()).into());
        }
    };
    let allowed = match path.subresource.as_deref() {
        None => resource.supports(verb),
        Some(sub) => resource
            .subresource(sub)
            .is_some_and(|s| s.verbs.contains(&verb)),
    };
    if !allowed {
        return Err(status::method_not_allowed(&ctx.target(), verb.as_str()).into());
    }
    if path.subresource.is_some() {
        return subresource::handle(&ctx, verb, body).await;
    }
    match verb {
        Verb::Get => read::get(&ctx).await,
        Verb::List => read::list(&ctx).await,
        Verb::Watch => watch::watch(&ctx).await,
        Verb::Create => write::create(&ctx, &body).await,
        Verb::Update => write::update(&ctx, &body).await,
        Verb::Patch => write::patch(&ctx, &body).await,
        Verb::Delete => write::delete(&ctx, &body).await,
        Verb::DeleteCollection => write::delete_collection(&ctx, &body).await,
    }
}

/// A JSON answer with a status code.
pub fn json_response(code: StatusCode, body: &Value) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            code,
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            bytes,
        )
            .into_response(),
        Err(err) => ApiError::internal("cannot encode the answer", &err).into_response(),
    }
}
