//! Answers in the form the client asked for: the object (or list), a `meta.k8s.io/v1` Table, or
//! `PartialObjectMetadata` (see [`crate::request::answer_form`]).

use std::str::FromStr;
use std::sync::{Arc, LazyLock};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use tugboat_api::table::{self, IncludeObject};

use tugboat_api::resources::ResourceInfo;

use crate::cache::CachedObject;
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
    let obj = crate::convert::as_version(ctx.path.resource, obj, &ctx.path.version);
    let resource = ctx.path.resource;
    let body = match answer_form(ctx.headers) {
        // Most answers are the stored object as it is: serialized without a copy.
        Answer::Object => return Ok(json_response(code, &obj)),
        Answer::Metadata => table::partial_object_metadata(&obj),
        Answer::Table => {
            let mut t = table::table(
                resource.group,
                resource.plural,
                [&*obj],
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
///
/// Tables and metadata lists are built from the objects as they are (no per-item copy to set
/// the served version's type meta, which they do not show) unless the version converts them,
/// and tables are serialized straight from borrowed rows.
pub fn list<'a>(
    ctx: &Ctx<'_>,
    items: impl IntoIterator<Item = &'a Value>,
    meta: &ListMeta,
) -> ApiResult<Response> {
    let resource = ctx.path.resource;
    let answer = answer_form(ctx.headers);
    let converts = crate::convert::converts(resource, &ctx.path.version);
    let include = match answer {
        Answer::Table => include_object(ctx)?,
        _ => IncludeObject::None,
    };
    let as_stored = match answer {
        Answer::Object => false,
        Answer::Metadata => !converts,
        Answer::Table => !converts && include != IncludeObject::Object,
    };
    let converted: Vec<Value>;
    let items: Vec<&Value> = if as_stored {
        items.into_iter().collect()
    } else {
        converted = items.into_iter().map(|o| versioned(ctx, o)).collect();
        converted.iter().collect()
    };
    let body = match answer {
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
            "items": items.iter().map(|o| table::partial_object_metadata(o)).collect::<Vec<_>>(),
        }),
        Answer::Table => {
            let now = now();
            let rows = items
                .iter()
                .map(|object| {
                    let row = table::row(
                        resource.group,
                        resource.plural,
                        object,
                        now,
                        IncludeObject::None,
                    );
                    RowBody {
                        cells: row.cells,
                        conditions: row.conditions,
                        object: match include {
                            IncludeObject::None => None,
                            IncludeObject::Object => Some(RowObject::Object(object)),
                            IncludeObject::Metadata => Some(RowObject::Metadata(PartialMetadata {
                                kind: "PartialObjectMetadata",
                                api_version: "meta.k8s.io/v1",
                                metadata: object.get("metadata").unwrap_or(&EMPTY_OBJECT),
                            })),
                        },
                    }
                })
                .collect();
            let body = TableBody {
                kind: "Table",
                api_version: "meta.k8s.io/v1",
                metadata: meta.to_json(),
                column_definitions: table::column_definitions(resource.group, resource.plural),
                rows,
            };
            let bytes = serde_json::to_vec(&body)
                .map_err(|err| ApiError::internal("cannot encode a table", &err))?;
            return Ok(bytes_response(StatusCode::OK, bytes));
        }
    };
    Ok(json_response(StatusCode::OK, &body))
}

/// Answer with a list of cached objects: written from their stored bytes when the client
/// reads them as they are stored, else decoded and answered as [`list`] does.
pub fn cached_list(
    ctx: &Ctx<'_>,
    stored_as: &ResourceInfo,
    items: &[Arc<CachedObject>],
    meta: &ListMeta,
) -> ApiResult<Response> {
    let resource = ctx.path.resource;
    let verbatim = answer_form(ctx.headers) == Answer::Object
        && crate::cache::serves_stored_bytes(stored_as, resource, &ctx.path.version)
        && items.iter().all(|o| o.is_verbatim());
    if !verbatim {
        let decoded: Vec<Arc<Value>> = items.iter().map(|o| o.value()).collect();
        return list(ctx, decoded.iter().map(|o| o.as_ref()), meta);
    }
    let encode = |value: &Value| {
        serde_json::to_vec(value).map_err(|err| ApiError::internal("cannot encode a list", &err))
    };
    let size: usize = items.iter().map(|o| o.stored_len() + 48).sum();
    let mut body = Vec::with_capacity(size + 256);
    body.extend_from_slice(b"{\"apiVersion\":");
    body.extend(encode(&Value::String(
        resource.api_version(&ctx.path.version),
    ))?);
    body.extend_from_slice(b",\"items\":[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        item.write_json(&mut body);
    }
    body.extend_from_slice(b"],\"kind\":");
    body.extend(encode(&Value::String(format!("{}List", resource.kind)))?);
    body.extend_from_slice(b",\"metadata\":");
    body.extend(encode(&meta.to_json())?);
    body.push(b'}');
    Ok(bytes_response(StatusCode::OK, body))
}

static EMPTY_OBJECT: LazyLock<Value> = LazyLock::new(|| json!({}));

/// A `meta.k8s.io/v1` Table of borrowed objects, serialized as [`table::Table`] is.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TableBody<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: Value,
    column_definitions: Vec<table::ColumnDefinition>,
    rows: Vec<RowBody<'a>>,
}

#[derive(Serialize)]
struct RowBody<'a> {
    cells: Vec<Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    conditions: Vec<table::RowCondition>,
    #[serde(skip_serializing_if = "Option::is_none")]
    object: Option<RowObject<'a>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum RowObject<'a> {
    Object(&'a Value),
    Metadata(PartialMetadata<'a>),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartialMetadata<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: &'a Value,
}

fn bytes_response(code: StatusCode, bytes: Vec<u8>) -> Response {
    (
        code,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response()
}
