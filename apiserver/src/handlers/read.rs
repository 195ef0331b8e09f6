//! get and list.
//!
//! Resource version semantics as kube-apiserver's: a list with no `resourceVersion` is a
//! consistent read from the store; `resourceVersion=0` is served from the watch cache; an exact
//! version with `resourceVersionMatch=Exact` (or a `continue` token) reads the store's snapshot
//! at that revision; any other version is a lower bound, and one newer than the store is a 504.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::Value;
use tugboat_store::ListOptions;

use super::Ctx;
use crate::cache::CachedObject;
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::render::{self, ListMeta};
use crate::request::{ContinueToken, Filter};

/// get: one object.
pub async fn get(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let obj = get_object(ctx).await?;
    render::object(ctx, StatusCode::OK, &obj)
}

/// The named object, from the store.
pub async fn get_object(ctx: &Ctx<'_>) -> ApiResult<Value> {
    let key = ctx.key()?;
    let kv = ctx
        .state
        .store
        .get(&key)
        .await
        .map_err(|err| ApiError::from_store(err, &ctx.target()))?
        .ok_or_else(|| tugboat_api::status::not_found(&ctx.target()))?;
    objects::from_store(&kv)
}

/// list: a collection, optionally filtered and paginated.
pub async fn list(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let filter = Filter::from_query(ctx.query, ctx.path.resource)?;
    let limit = ctx
        .query
        .number("limit")?
        .filter(|&l| l > 0)
        .map(|l| usize::try_from(l).unwrap_or(usize::MAX));
    let continue_token = match ctx.query.get("continue") {
        None | Some("") => None,
        Some(raw) => Some(ContinueToken::decode(raw)?),
    };
    let resource_version = ctx.query.get("resourceVersion").unwrap_or("");
    let exact = ctx.query.get("resourceVersionMatch") == Some("Exact");

    if resource_version == "0" && continue_token.is_none() && !exact {
        return list_from_cache(ctx, &filter);
    }
    let at_revision = match (&continue_token, resource_version) {
        (Some(token), _) => Some(token.rv),
        (None, "") => None,
        (None, raw) => {
            let requested: i64 = raw
                .parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {raw:?}")))?;
            let current = ctx
                .state
                .store
                .current_revision()
                .await
                .map_err(|err| ApiError::from_store(err, &ctx.target()))?;
            if requested > current {
                return Err(ApiError {
                    status: Box::new(tugboat_api::status::too_large_resource_version(
                        u64::try_from(requested).unwrap_or(0),
                        u64::try_from(current).unwrap_or(0),
                    )),
                    retry_after: Some(1),
                });
            }
            exact.then_some(requested)
        }
    };
    list_from_store(ctx, &filter, limit, continue_token, at_revision).await
}

async fn list_from_store(
    ctx: &Ctx<'_>,
    filter: &Filter,
    limit: Option<usize>,
    continue_token: Option<ContinueToken>,
    at_revision: Option<i64>,
) -> ApiResult<Response> {
    let resource = ctx.path.resource;
    let prefix = resource.storage_prefix_in(ctx.path.namespace.as_deref());
    let mut options = ListOptions {
        limit,
        continue_from: continue_token.map(|t| t.start),
        at_revision,
    };
    let cache = ctx.state.caches.get(resource);
    let stored_as = cache.map_or(resource, |c| c.stored_as());
    let mut items: Vec<Arc<CachedObject>> = Vec::new();
    let mut revision;
    let mut next = None;
    // With a selector, keep reading pages until `limit` objects match or the keys run out.
    loop {
        let page = ctx
            .state
            .store
            .list(&prefix, options.clone())
            .await
            .map_err(|err| ApiError::from_store(err, &ctx.target()))?;
        revision = page.revision;
        for kv in &page.items {
            // The watch cache usually holds this very version, already projected.
            let obj = match cache.and_then(|c| c.get_at(&kv.key, kv.mod_revision)) {
                Some(obj) => obj,
                None => Arc::new(CachedObject::from_store(stored_as, kv)?),
            };
            if filter.matches_cached(&obj) {
                items.push(obj);
            }
        }
        match (page.next_key, limit) {
            (Some(next_key), Some(limit)) if items.len() >= limit => {
                next = Some(next_key);
                break;
            }
            (Some(next_key), _) => {
                options.continue_from = Some(next_key);
                options.at_revision = Some(page.revision);
            }
            (None, _) => break,
        }
    }
    let meta = ListMeta {
        resource_version: revision,
        continue_token: next.map(|start| {
            ContinueToken {
                v: "meta.k8s.io/v1".into(),
                rv: revision,
                start,
            }
            .encode()
        }),
        remaining: None,
    };
    render::cached_list(ctx, stored_as, &items, &meta)
}

fn list_from_cache(ctx: &Ctx<'_>, filter: &Filter) -> ApiResult<Response> {
    let resource = ctx.path.resource;
    let cache = ctx
        .state
        .caches
        .get(resource)
        .ok_or_else(|| ApiError::internal("no watch cache", &resource.plural))?;
    let prefix = resource.storage_prefix_in(ctx.path.namespace.as_deref());
    let snapshot = cache.snapshot(&prefix).map_err(|_| {
        ApiError::from(tugboat_api::status::service_unavailable(
            "the watch cache is not ready yet",
        ))
    })?;
    let items: Vec<Arc<CachedObject>> = snapshot
        .objects
        .into_iter()
        .filter(|o| filter.matches_cached(o))
        .collect();
    let meta = ListMeta {
        resource_version: snapshot.revision,
        ..ListMeta::default()
    };
    render::cached_list(ctx, cache.stored_as(), &items, &meta)
}
