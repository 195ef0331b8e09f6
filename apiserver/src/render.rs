//! Answers in the form the client asked for: the object (or list), a `meta.k8s.io/v1` Table, or
//! `PartialObjectMetadata` (see [`crate::request::answer_form`]).

use std::str::FromStr;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tugboat_api::table::{self, IncludeObject};

use crate::error::{ApiError, ApiResult};
use crate::handlers::{Ctx, json_response};
use crate::request::{Answer, answer_form};

/// List metadata to send with a list.
#[derive(Debug, Default, Clone)]
pub struct ListMeta {
    /// The revision the list is current at.
    pub resource_version: i64,
    /// The token for the next page.
    pub continue_token: Option<String>,
    /// Items left after this page, when known.
    pub remaining: Option<u64>,
}

impl ListMeta {
    fn to_json(&self) -> Value {
        let mut meta = json!({ "resourceVersion": self.resource_version.to_string() });
        if let Some(token) = &self.continue_token {
            meta["continue"] = Value::String(token.clone());
        }
        if let Some(remaining) = self.remaining {
            meta["remainingItemCount"] = json!(remaining);
        }
        meta
    }
}

fn include_object(ctx: &Ctx<'_>) -> ApiResult<IncludeObject> {
    IncludeObject::from_str(ctx.query.get("includeObject").unwrap_or(""))
        .map_err(|err| ApiError::bad_request(err.to_string()))
}

fn now() -> k8s_openapi::jiff::Timestamp {
    tugboat_api::table::timestamp_of(std::time::SystemTime::now())
}

/// The object as the client's version shows it.
pub fn versioned(ctx: &Ctx<'_>, obj: &Value) -> Value {
    crate::convert::to_version(ctx.path.resource, obj, &ctx.path.version)
}

/// Answer with one object, with `code`.
pub fn object(ctx: &Ctx<'_>, code: StatusCode, obj: &Value) -> ApiResult<Response> {
    let obj = versioned(ctx, obj);
    let resource = ctx.path.resource;
    let body = match answer_form(ctx.headers) {
        Answer::Object => obj,
        Answer::Metadata => table::partial_object_metadata(&obj),
        Answer::Table => {
            let mut t = table::table(
                resource.group,
                resource.plural,
                [&obj],
                now(),
                include_object(ctx)?,
            );
            t.metadata.resource_version = obj
                .pointer("/metadata/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_owned);
            serde_json::to_value(t)
                .map_err(|err| ApiError::internal("cannot encode a table", &err))?
        }
    };
    Ok(json_response(code, &body))
}

/// Answer with a list of objects.
pub fn list<'a>(
    ctx: &Ctx<'_>,
    items: impl IntoIterator<Item = &'a Value>,
    meta: &ListMeta,
) -> ApiResult<Response> {
    let resource = ctx.path.resource;
    let items: Vec<Value> = items.into_iter().map(|o| versioned(ctx, o)).collect();
    let body = match answer_form(ctx.headers) {
        Answer::Object => json!({
            "apiVersion": resource.api_version(&ctx.path.version),
            "kind": format!("{}List", resource.kind),
            "metadata": meta.to_json(),
            "items": items,
        }),
        Answer::Metadata => json!({
            "apiVersion": "meta.k8s.io/v1",
            "kind": "PartialObjectMetadataList",
            "metadata": meta.to_json(),
            "items": items.iter().map(table::partial_object_metadata).collect::<Vec<_>>(),
        }),
        Answer::Table => {
            let t = table::table(
                resource.group,
                resource.plural,
                items.iter(),
                now(),
                include_object(ctx)?,
            );
            let mut body = serde_json::to_value(t)
                .map_err(|err| ApiError::internal("cannot encode a table", &err))?;
            body["metadata"] = meta.to_json();
            body
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}
