//! Subresources: `status`, `scale`, `binding`, `eviction` and namespaces' `finalize`
//! (service accounts' `token` is [`crate::serviceaccount::token_request`]).
//!
//! Each speaks its own object but writes the parent: status writes change only `.status`,
//! scale writes only `.spec.replicas`, a binding only `.spec.nodeName`.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tugboat_api::resources::Verb;
use tugboat_api::status;
use tugboat_store::KeyValue;

use super::Ctx;
use super::write::{self, DeleteOptions};
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::render;

/// Route a subresource request.
pub async fn handle(ctx: &Ctx<'_>, verb: Verb, body: bytes::Bytes) -> ApiResult<Response> {
    let sub = ctx.path.subresource.as_deref().unwrap_or("");
    match (sub, verb) {
        ("status", Verb::Get) => {
            let obj = super::read::get_object(ctx).await?;
            render::object(ctx, StatusCode::OK, &obj)
        }
        ("status", Verb::Update) => {
            let decoded = write::decode_body(ctx, &body)?;
            let (code, obj) = put_with(ctx, decoded.obj, update_status).await?;
            render::object(ctx, code, &obj)
        }
        ("status", Verb::Patch) => {
            let (code, obj, _) = write::patch_with(ctx, &body, |ctx, current, patched, dry| {
                Box::pin(async move {
                    let patched =
                        crate::convert::to_storage(ctx.path.resource, patched, &ctx.path.version);
                    update_status(ctx, current, patched, dry).await
                })
            })
            .await?;
            render::object(ctx, code, &obj)
        }
        ("finalize", Verb::Update) => {
            let decoded = write::decode_body(ctx, &body)?;
            let (code, obj) = put_with(ctx, decoded.obj, update_finalize).await?;
            render::object(ctx, code, &obj)
        }
        ("scale", Verb::Get) => {
            let obj = super::read::get_object(ctx).await?;
            scale_answer(StatusCode::OK, &obj)
        }
        ("scale", Verb::Update) => {
            let scale: Value = serde_json::from_slice(&body)
                .map_err(|err| ApiError::bad_request(format!("invalid Scale: {err}")))?;
            let (code, obj) = set_replicas_from_scale(ctx, &scale, None).await?;
            scale_answer(code, &obj)
        }
        ("scale", Verb::Patch) => patch_scale(ctx, &body).await,
        ("binding", Verb::Create) => bind(ctx, &body).await,
        ("eviction", Verb::Create) => evict(ctx, &body).await,
        _ => Err(
            status::service_unavailable(format!("{sub} is not served by this API server")).into(),
        ),
    }
}

type Strategy = for<'a> fn(
    &'a Ctx<'a>,
    &'a (KeyValue, Value),
    Value,
    bool,
) -> futures::future::BoxFuture<'a, ApiResult<(StatusCode, Value)>>;

/// A PUT to a subresource that speaks the parent's kind.
async fn put_with(ctx: &Ctx<'_>, obj: Value, strategy: Strategy) -> ApiResult<(StatusCode, Value)> {
    let dry_run = ctx.query.dry_run()?;
    if let Some(sent) = objects::name(&obj)
        && Some(sent) != ctx.path.name.as_deref()
    {
        return Err(ApiError::bad_request(format!(
            "the name of the object ({sent}) does not match the name on the URL ({})",
            ctx.name()?
        )));
    }
    let Some(current) = write::read_current(ctx).await? else {
        return Err(status::not_found(&ctx.target()).into());
    };
    if let Some(rv) = objects::client_resource_version(&obj)?
        && rv != current.0.mod_revision
    {
        return Err(status::conflict(&ctx.target(), status::OBJECT_MODIFIED).into());
    }
    let obj = crate::convert::to_storage(ctx.path.resource, obj, &ctx.path.version);
    strategy(ctx, &current, obj, dry_run).await
}

/// Status strategy: the stored object with only `.status` taken from `incoming`.
fn update_status<'a>(
    ctx: &'a Ctx<'a>,
    current: &'a (KeyValue, Value),
    incoming: Value,
    dry_run: bool,
) -> futures::future::BoxFuture<'a, ApiResult<(StatusCode, Value)>> {
    Box::pin(async move {
        let (kv, old) = current;
        let mut next = old.clone();
        if let Some(map) = next.as_object_mut() {
            match incoming.get("status") {
                Some(status) => map.insert("status".into(), status.clone()),
                None => map.remove("status"),
            };
        }
        let resource = ctx.path.resource;
        let errors = tugboat_api::validation::validate_update(
            resource.storage_group,
            resource.kind,
            &next,
            old,
        );
        if !errors.is_empty() {
            return Err(write::invalid(resource, ctx.name()?, &errors));
        }
        write::write_update(ctx, kv, old, next, dry_run).await
    })
}

/// Namespace finalize: only `.spec.finalizers` changes.
fn update_finalize<'a>(
    ctx: &'a Ctx<'a>,
    current: &'a (KeyValue, Value),
    incoming: Value,
    dry_run: bool,
) -> futures::future::BoxFuture<'a, ApiResult<(StatusCode, Value)>> {
    Box::pin(async move {
        let (kv, old) = current;
        let mut next = old.clone();
        let finalizers = incoming
            .pointer("/spec/finalizers")
            .cloned()
            .unwrap_or_else(|| json!([]));
        if let Some(map) = next.as_object_mut() {
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            spec["finalizers"] = finalizers;
        }
        // Once emptied by the namespace controller, write_update deletes the namespace
        // (unless metadata finalizers remain).
        write::write_update(ctx, kv, old, next, dry_run).await
    })
}

/// The `autoscaling/v1` Scale of a scalable object.
pub fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or_default();
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let status_replicas = obj
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let selector = obj
        .pointer("/spec/selector")
        .map(selector_string)
        .unwrap_or_default();
    json!({
        "apiVersion": "autoscaling/v1",
        "kind": "Scale",
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
            "creationTimestamp": meta.get("creationTimestamp"),
        },
        "spec": { "replicas": replicas },
        "status": { "replicas": status_replicas, "selector": selector },
    })
}

/// A LabelSelector (or a ReplicationController's plain map) as a selector string.
fn selector_string(selector: &Value) -> String {
    let Some(map) = selector.as_object() else {
        return String::new();
    };
    let is_label_selector = map.contains_key("matchLabels") || map.contains_key("matchExpressions");
    let mut parts = Vec::new();
    let labels = if is_label_selector {
        map.get("matchLabels").and_then(Value::as_object)
    } else {
        Some(map)
    };
    if let Some(labels) = labels {
        for (k, v) in labels {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    if let Some(expressions) = map.get("matchExpressions").and_then(Value::as_array) {
        for expr in expressions {
            let key = expr.get("key").and_then(Value::as_str).unwrap_or_default();
            let values: Vec<&str> = expr
                .get("values")
                .and_then(Value::as_array)
                .map(|v| v.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            match expr.get("operator").and_then(Value::as_str) {
                Some("In") => parts.push(format!("{key} in ({})", values.join(","))),
                Some("NotIn") => parts.push(format!("{key} notin ({})", values.join(","))),
                Some("Exists") => parts.push(key.to_owned()),
                Some("DoesNotExist") => parts.push(format!("!{key}")),
                _ => {}
            }
        }
    }
    parts.join(",")
}

fn scale_answer(code: StatusCode, obj: &Value) -> ApiResult<Response> {
    Ok(super::json_response(code, &scale_of(obj)))
}

/// Write `scale.spec.replicas` into the parent, honouring a resourceVersion precondition.
async fn set_replicas_from_scale(
    ctx: &Ctx<'_>,
    scale: &Value,
    current: Option<(KeyValue, Value)>,
) -> ApiResult<(StatusCode, Value)> {
    let dry_run = ctx.query.dry_run()?;
    let current = match current {
        Some(current) => current,
        None => write::read_current(ctx)
            .await?
            .ok_or_else(|| ApiError::from(status::not_found(&ctx.target())))?,
    };
    let replicas = scale.pointer("/spec/replicas").and_then(Value::as_i64);
    let Some(replicas) = replicas else {
        return Err(write::invalid(ctx.path.resource, ctx.name()?, &[]).with_scale_message(ctx));
    };
    if replicas < 0 {
        return Err(ApiError::from(status::invalid(
            "autoscaling",
            "Scale",
            ctx.name()?,
            &[status::FieldError::invalid(
                "spec.replicas",
                json!(replicas),
                "must be greater than or equal to 0",
            )],
        )));
    }
    if let Some(rv) = objects::client_resource_version(scale)?
        && rv != current.0.mod_revision
    {
        return Err(status::conflict(&ctx.target(), status::OBJECT_MODIFIED).into());
    }
    let mut next = current.1.clone();
    if let Some(map) = next.as_object_mut() {
        let spec = map.entry("spec").or_insert_with(|| json!({}));
        spec["replicas"] = json!(replicas);
    }
    write::update_object(ctx, &current, next, None, dry_run).await
}

impl ApiError {
    fn with_scale_message(mut self, ctx: &Ctx<'_>) -> Self {
        self.status.message = Some(format!(
            "Scale.autoscaling {:?} is invalid: spec.replicas: Required value",
            ctx.path.name.as_deref().unwrap_or("")
        ));
        self
    }
}

/// PATCH on `scale`: the patch applies to the Scale object.
async fn patch_scale(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let content_type = ctx
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(kind) = tugboat_api::patch::PatchKind::from_content_type(content_type) else {
        return Err(status::unsupported_media_type(&[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ])
        .into());
    };
    let patch: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("error decoding patch: {err}")))?;
    let schema = tugboat_api::patch::schema_for("autoscaling", "Scale");
    let mut last = None;
    for _ in 0..8 {
        let Some(current) = write::read_current(ctx).await? else {
            return Err(status::not_found(&ctx.target()).into());
        };
        let scale = scale_of(&current.1);
        let kind_for_scale = match (kind, schema) {
            (tugboat_api::patch::PatchKind::StrategicMerge, None) => {
                tugboat_api::patch::PatchKind::Merge
            }
            (k, _) => k,
        };
        let patched = tugboat_api::patch::apply_patch(kind_for_scale, &scale, &patch, schema)
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
        match set_replicas_from_scale(ctx, &patched, Some(current)).await {
            Ok((code, obj)) => return scale_answer(code, &obj),
            Err(err) if err.code() == 409 => last = Some(err),
            Err(err) => return Err(err),
        }
    }
    Err(last.unwrap_or_else(|| status::conflict(&ctx.target(), status::OBJECT_MODIFIED).into()))
}

/// `pods/binding`: set `spec.nodeName` once.
async fn bind(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let binding: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("invalid Binding: {err}")))?;
    let node = binding
        .pointer("/target/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::from(status::invalid(
                "",
                "Binding",
                ctx.path.name.as_deref().unwrap_or(""),
                &[status::FieldError::required("target.name", "")],
            ))
        })?
        .to_owned();
    let dry_run = ctx.query.dry_run()?;
    for _ in 0..8 {
        let Some((kv, pod)) = write::read_current(ctx).await? else {
            return Err(status::not_found(&ctx.target()).into());
        };
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            return Err(status::conflict(
                &ctx.target(),
                &format!(
                    "pod {} is being deleted, cannot be assigned to a host",
                    ctx.name()?
                ),
            )
            .into());
        }
        if let Some(existing) = pod
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            return Err(status::conflict(
                &ctx.target(),
                &format!(
                    "pod {} is already assigned to node {existing:?}",
                    ctx.name()?
                ),
            )
            .into());
        }
        if let Some(uid) = binding.pointer("/metadata/uid").and_then(Value::as_str)
            && !uid.is_empty()
            && objects::meta_str(&pod, "uid") != Some(uid)
        {
            return Err(status::conflict(
                &ctx.target(),
                "the pod's UID does not match the binding",
            )
            .into());
        }
        let mut next = pod.clone();
        next["spec"]["nodeName"] = json!(node);
        set_condition(
            &mut next,
            json!({
                "type": "PodScheduled",
                "status": "True",
                "lastProbeTime": null,
                "lastTransitionTime": objects::now_rfc3339(),
            }),
        );
        if dry_run {
            break;
        }
        match ctx
            .state
            .store
            .update(&kv.key, objects::to_store(&next)?, kv.mod_revision)
            .await
        {
            Ok(_) => break,
            Err(tugboat_store::StoreError::Conflict { .. }) => continue,
            Err(err) => return Err(ApiError::from_store(err, &ctx.target())),
        }
    }
    Ok(super::json_response(
        StatusCode::CREATED,
        &serde_json::to_value(status::success()).unwrap_or_default(),
    ))
}

/// Put a condition into `status.conditions`, replacing one of the same type.
pub fn set_condition(obj: &mut Value, condition: Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let status = map.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let conditions = status
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(conditions)) = conditions else {
        return;
    };
    let kind = condition.get("type").cloned();
    conditions.retain(|c| c.get("type") != kind.as_ref());
    conditions.push(condition);
}

/// `pods/eviction`: a delete with the eviction's options (no disruption budgets yet).
async fn evict(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let eviction: Value = serde_json::from_slice(body)
        .map_err(|err| ApiError::bad_request(format!("invalid Eviction: {err}")))?;
    let options_body = eviction
        .get("deleteOptions")
        .map(|o| serde_json::to_vec(o).unwrap_or_default())
        .unwrap_or_default();
    let options = DeleteOptions::parse(ctx, &options_body)?;
    let Some(current) = write::read_current(ctx).await? else {
        return Err(status::not_found(&ctx.target()).into());
    };
    write::delete_object(ctx, &current, &options).await?;
    Ok(super::json_response(
        StatusCode::CREATED,
        &serde_json::to_value(status::success()).unwrap_or_default(),
    ))
}
