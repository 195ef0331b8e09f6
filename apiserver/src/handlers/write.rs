//! create, update, patch, delete and deletecollection.
//!
//! Objects go through the steps kube-apiserver's generic registry takes: decode (with strict
//! field checks), prepare (server-set metadata, status reset or preserved), defaults,
//! validation, admission, then one compare-and-swap on the store.

use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};
use tugboat_api::patch::{self, PatchKind};
use tugboat_api::resources::ResourceInfo;
use tugboat_api::status::{self, Target};
use tugboat_api::strict;
use tugboat_store::{KeyValue, StoreError};

use super::Ctx;
use super::apply;
use crate::admission;
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::render;
use crate::request::{self, BodyFormat, FieldValidation, Filter};

/// How many times a patch, a delete or a generated name is tried when writes conflict.
pub(crate) const MAX_ATTEMPTS: usize = 8;

/// A decoded request body and the warnings it earned.
pub struct Decoded {
    /// The object as sent.
    pub obj: Value,
    /// `Warning` header texts (unknown or duplicate fields under `fieldValidation=Warn`).
    pub warnings: Vec<String>,
}

/// Decode a create or update body, checking unknown and duplicate fields as the client asked.
pub fn decode_body(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Decoded> {
    let resource = ctx.path.resource;
    let validation = ctx.query.field_validation()?;
    let (obj, issues) = match request::body_format(ctx.headers)? {
        BodyFormat::Json => {
            let obj = strict::parse_json(body).map_err(|err| {
                ApiError::bad_request(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf: {err}"
                ))
            })?;
            let issues = if validation == FieldValidation::Ignore {
                Vec::new()
            } else {
                strict::find_unknown_and_duplicate_fields(resource.group, resource.kind, body)
                    .map_err(|err| ApiError::bad_request(err.to_string()))?
            };
            (obj, issues)
        }
        BodyFormat::Yaml => {
            let (obj, duplicates) = strict::yaml_to_json_checked(body).map_err(|err| {
                ApiError::bad_request(format!("error converting YAML to JSON: {err}"))
            })?;
            let issues = if validation == FieldValidation::Ignore {
                Vec::new()
            } else {
                strict::issues_for_value(resource.group, resource.kind, &obj, duplicates)
                    .map_err(|err| ApiError::bad_request(err.to_string()))?
            };
            (obj, issues)
        }
        BodyFormat::Protobuf => {
            let obj = tugboat_api::protobuf::decode_to_json_with_defaults(
                body,
                &resource.api_version(&ctx.path.version),
                resource.kind,
            )
            .map_err(|err| {
                if err.is_unsupported() {
                    ApiError::from(status::unsupported_media_type(&[
                        "application/json",
                        "application/yaml",
                    ]))
                } else {
                    ApiError::bad_request(format!("cannot decode the protobuf body: {err}"))
                }
            })?;
            (obj, Vec::new())
        }
    };
    if !obj.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    let warnings = checked_issues(validation, &issues)?;
    Ok(Decoded { obj, warnings })
}

/// Strict: issues are a 400. Warn: each is a warning. Ignore: nothing.
pub(crate) fn checked_issues(
    validation: FieldValidation,
    issues: &[strict::FieldIssue],
) -> ApiResult<Vec<String>> {
    if issues.is_empty() || validation == FieldValidation::Ignore {
        return Ok(Vec::new());
    }
    if validation == FieldValidation::Strict {
        return Err(ApiError::bad_request(strict::strict_decoding_message(
            issues,
        )));
    }
    Ok(issues.iter().map(ToString::to_string).collect())
}

/// Check `apiVersion` and `kind` of a body against the path it was sent to.
fn check_type_meta(ctx: &Ctx<'_>, obj: &Value) -> ApiResult<()> {
    let resource = ctx.path.resource;
    let expected_version = resource.api_version(&ctx.path.version);
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if (!kind.is_empty() && kind != resource.kind)
        || (!api_version.is_empty() && api_version != expected_version)
    {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({expected_version})"
        ))
        .with_kind_mismatch(kind, resource.kind));
    }
    Ok(())
}

impl ApiError {
    fn with_kind_mismatch(self, sent: &str, expected: &str) -> Self {
        if !sent.is_empty() && sent != expected {
            return ApiError::bad_request(format!(
                "the kind in the data ({sent}) does not match the expected kind ({expected})"
            ));
        }
        self
    }
}

/// Namespace of the body against the namespace of the path.
pub(crate) fn settle_namespace(ctx: &Ctx<'_>, obj: &mut Value) -> ApiResult<()> {
    let resource = ctx.path.resource;
    let meta = objects::metadata_mut(obj)?;
    if !resource.namespaced {
        meta.remove("namespace");
        return Ok(());
    }
    let Some(path_ns) = ctx.path.namespace.as_deref() else {
        return Err(ApiError::bad_request(
            "a namespace is required to create this object",
        ));
    };
    match meta.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            meta.insert("namespace".into(), Value::String(path_ns.to_owned()));
            Ok(())
        }
        Some(ns) if ns == path_ns => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
}

/// Whether `resource` keeps its status apart from its spec (writes to the main resource
/// leave status alone).
pub fn has_status_subresource(resource: &ResourceInfo) -> bool {
    resource.subresource("status").is_some()
}

/// Kinds whose client-sent status is dropped on create.
fn resets_status_on_create(resource: &ResourceInfo) -> bool {
    has_status_subresource(resource) && !matches!(resource.kind, "Node" | "Namespace")
}

/// Apply defaults of the stored form.
fn default_object(
    state: &crate::ApiState,
    resource: &ResourceInfo,
    obj: &mut Value,
    creating: bool,
) -> ApiResult<()> {
    let result = if creating {
        tugboat_api::defaults::apply_create_defaults_with(
            resource.storage_group,
            resource.kind,
            obj,
            &state.create_defaults,
        )
    } else {
        tugboat_api::defaults::apply_defaults(resource.storage_group, resource.kind, obj)
    };
    result.map_err(|err| ApiError::bad_request(err.to_string()))
}

/// The 422 for validation errors.
pub fn invalid(
    resource: &ResourceInfo,
    name: &str,
    errors: &[tugboat_api::validation::FieldError],
) -> ApiError {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
    let message = tugboat_api::validation::invalid_object_message(
        resource.group,
        resource.kind,
        name,
        errors,
    );
    let causes = errors
        .iter()
        .map(|e| StatusCause {
            field: Some(e.field.clone()),
            message: Some(e.message.clone()),
            reason: Some(e.reason.as_str().to_owned()),
        })
        .collect();
    ApiError::from(Status {
        status: Some("Failure".into()),
        message: Some(message),
        reason: Some("Invalid".into()),
        code: Some(422),
        details: Some(StatusDetails {
            group: (!resource.group.is_empty()).then(|| resource.group.to_owned()),
            kind: Some(resource.kind.to_owned()),
            name: (!name.is_empty()).then(|| name.to_owned()),
            causes: Some(causes),
            ..StatusDetails::default()
        }),
        ..Status::default()
    })
}

/// Characters of generated name suffixes (upstream's, without vowels and look-alikes).
const NAME_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn generated_name(prefix: &str) -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    let mut name = prefix.chars().take(58).collect::<String>();
    for _ in 0..5 {
        let i = rng.random_range(0..NAME_ALPHABET.len());
        name.push(char::from(NAME_ALPHABET[i]));
    }
    name
}

/// Add the `Warning` headers.
pub(crate) fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        let text = format!("299 - {}", go_quote(warning));
        if let Ok(value) = HeaderValue::from_str(&text) {
            response.headers_mut().append("Warning", value);
        }
    }
    response
}

fn go_quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// create: POST to a collection.
pub async fn create(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let decoded = decode_body(ctx, body)?;
    let dry_run = ctx.query.dry_run()?;
    let created = create_object(ctx, decoded.obj, dry_run).await?;
    let response = render::object(ctx, StatusCode::CREATED, &created)?;
    Ok(with_warnings(response, &decoded.warnings))
}

/// Create `obj` (as sent at the path's version); returns the stored object.
pub async fn create_object(ctx: &Ctx<'_>, mut obj: Value, dry_run: bool) -> ApiResult<Value> {
    let resource = ctx.path.resource;
    check_type_meta(ctx, &obj)?;
    settle_namespace(ctx, &mut obj)?;
    let mut obj = crate::convert::to_storage(resource, obj, &ctx.path.version);
    let generate_name = objects::meta_str(&obj, "generateName")
        .filter(|g| !g.is_empty())
        .map(str::to_owned);
    let explicit_name = objects::name(&obj).map(str::to_owned);
    // An apply brings its own record; other creates are recorded after defaulting, as
    // upstream decodes (and defaults) before the field manager runs.
    let applied =
        apply::is_apply(ctx).then(|| tugboat_api::managed::ManagedFieldsEntry::read_all(&obj));
    prepare_create(resource, &mut obj)?;
    default_object(ctx.state, resource, &mut obj, true)?;
    admission::default_storage_class(ctx.state, resource, &mut obj).await?;
    admission::protect_claim(resource, &mut obj);
    if resource.group == "batch" && resource.kind == "Job" {
        let uid = objects::meta_str(&obj, "uid")
            .unwrap_or_default()
            .to_owned();
        tugboat_api::defaults::generate_job_selector(&mut obj, &uid)
            .map_err(|err| ApiError::bad_request(err.to_string()))?;
    }
    match &applied {
        Some(entries) => tugboat_api::managed::write_all(&mut obj, entries),
        None => apply::record_update(ctx, None, &mut obj)?,
    }

    for attempt in 0..MAX_ATTEMPTS {
        if explicit_name.is_none()
            && let Some(prefix) = &generate_name
        {
            objects::metadata_mut(&mut obj)?
                .insert("name".into(), Value::String(generated_name(prefix)));
        }
        let name = objects::name(&obj).unwrap_or_default().to_owned();
        let errors =
            tugboat_api::validation::validate_create(resource.storage_group, resource.kind, &obj);
        if !errors.is_empty() {
            return Err(invalid(resource, &name, &errors));
        }
        let target = Target::of(resource, &name);
        let key = resource.storage_key(objects::namespace(&obj), &name);
        admission::check_namespace(ctx.state, resource, objects::namespace(&obj)).await?;
        if attempt == 0 {
            admission::node_restriction(ctx.user, resource, None, &obj)?;
            admission::service_account(ctx.state, resource, &mut obj).await?;
        }
        if dry_run {
            return Ok(obj);
        }
        // Refuse early, before allocating anything, when the name is taken.
        if ctx
            .state
            .store
            .get(&key)
            .await
            .map_err(|err| ApiError::from_store(err, &target))?
            .is_some()
        {
            if explicit_name.is_none() && attempt + 1 < MAX_ATTEMPTS {
                continue;
            }
            return Err(status::already_exists(&target).into());
        }
        let allocation = admission::allocate(ctx.state, resource, &mut obj).await?;
        match ctx.state.store.create(&key, objects::to_store(&obj)?).await {
            Ok(revision) => {
                objects::set_resource_version(&mut obj, revision)?;
                admission::after_create(ctx.state, resource, &obj).await;
                return Ok(obj);
            }
            Err(err) => {
                admission::release(ctx.state, &allocation).await;
                if matches!(err, StoreError::AlreadyExists { .. })
                    && explicit_name.is_none()
                    && attempt + 1 < MAX_ATTEMPTS
                {
                    continue;
                }
                return Err(ApiError::from_store(err, &target));
            }
        }
    }
    Err(ApiError::from(status::timeout(
        "could not generate a unique name",
        1,
    )))
}

/// Server-set metadata and the status a new object starts with.
fn prepare_create(resource: &ResourceInfo, obj: &mut Value) -> ApiResult<()> {
    let now = objects::now_rfc3339();
    let meta = objects::metadata_mut(obj)?;
    meta.insert(
        "uid".into(),
        Value::String(uuid::Uuid::new_v4().to_string()),
    );
    meta.insert("creationTimestamp".into(), Value::String(now));
    for field in [
        "resourceVersion",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "selfLink",
        "managedFields",
    ] {
        meta.remove(field);
    }
    if has_status_subresource(resource) && resource.kind != "Namespace" && resource.kind != "Node" {
        meta.insert("generation".into(), json!(1));
    } else {
        meta.remove("generation");
    }
    let Some(map) = obj.as_object_mut() else {
        return Err(ApiError::bad_request("the object must be a JSON object"));
    };
    if resets_status_on_create(resource) {
        map.remove("status");
    }
    match resource.kind {
        "Pod" if resource.group.is_empty() => {
            let qos = admission::pod_qos_class(map.get("spec").unwrap_or(&Value::Null));
            map.insert(
                "status".into(),
                json!({ "phase": "Pending", "qosClass": qos }),
            );
        }
        "Namespace" if resource.group.is_empty() => {
            map.insert("status".into(), json!({ "phase": "Active" }));
        }
        "Service" if resource.group.is_empty() => {
            map.insert("status".into(), json!({ "loadBalancer": {} }));
        }
        "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" | "HorizontalPodAutoscaler" => {
            map.insert("status".into(), json!({}));
        }
        _ => {}
    }
    Ok(())
}

/// update: PUT to an object.
pub async fn update(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let decoded = decode_body(ctx, body)?;
    let dry_run = ctx.query.dry_run()?;
    check_type_meta(ctx, &decoded.obj)?;
    let name = ctx.name()?;
    match objects::name(&decoded.obj) {
        Some(sent) if sent != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({sent}) does not match the name on the URL ({name})"
            )));
        }
        _ => {}
    }
    let mut obj = decoded.obj;
    objects::metadata_mut(&mut obj)?.insert("name".into(), Value::String(name.to_owned()));
    settle_namespace(ctx, &mut obj)?;
    let precondition = objects::client_resource_version(&obj)?;
    let current = read_current(ctx).await?;
    let Some(current) = current else {
        if allows_create_on_update(ctx.path.resource) {
            let created = create_object(ctx, obj, dry_run).await?;
            let response = render::object(ctx, StatusCode::CREATED, &created)?;
            return Ok(with_warnings(response, &decoded.warnings));
        }
        return Err(status::not_found(&ctx.target()).into());
    };
    let incoming = crate::convert::to_storage(ctx.path.resource, obj, &ctx.path.version);
    let (code, stored) = update_object(ctx, &current, incoming, precondition, dry_run).await?;
    let response = render::object(ctx, code, &stored)?;
    Ok(with_warnings(response, &decoded.warnings))
}

/// Resources a PUT may create (as upstream's `AllowCreateOnUpdate`).
fn allows_create_on_update(resource: &ResourceInfo) -> bool {
    matches!(
        (resource.group, resource.kind),
        ("", "Endpoints")
            | ("", "Event")
            | ("events.k8s.io", "Event")
            | ("coordination.k8s.io", "Lease")
            | ("discovery.k8s.io", "EndpointSlice")
    )
}

/// The named object and its store entry, if it exists.
pub async fn read_current(ctx: &Ctx<'_>) -> ApiResult<Option<(KeyValue, Value)>> {
    let key = ctx.key()?;
    let kv = ctx
        .state
        .store
        .get(&key)
        .await
        .map_err(|err| ApiError::from_store(err, &ctx.target()))?;
    match kv {
        None => Ok(None),
        Some(kv) => {
            let obj = objects::from_store(&kv)?;
            Ok(Some((kv, obj)))
        }
    }
}

/// Replace the stored object `current` by `incoming` (in storage form): the main resource's
/// update strategy. Returns the answer code and the stored object.
pub async fn update_object(
    ctx: &Ctx<'_>,
    current: &(KeyValue, Value),
    mut incoming: Value,
    precondition: Option<i64>,
    dry_run: bool,
) -> ApiResult<(StatusCode, Value)> {
    let resource = ctx.path.resource;
    let (kv, old) = current;
    if let Some(rv) = precondition
        && rv != kv.mod_revision
    {
        return Err(status::conflict(&ctx.target(), status::OBJECT_MODIFIED).into());
    }
    carry_server_fields(resource, old, &mut incoming)?;
    default_object(ctx.state, resource, &mut incoming, false)?;
    if has_status_subresource(resource)
        && objects::without_meta_and_status(&incoming) != objects::without_meta_and_status(old)
    {
        let generation = old
            .pointer("/metadata/generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        objects::metadata_mut(&mut incoming)?.insert("generation".into(), json!(generation + 1));
    }
    let errors = tugboat_api::validation::validate_update(
        resource.storage_group,
        resource.kind,
        &incoming,
        old,
    );
    if !errors.is_empty() {
        return Err(invalid(resource, ctx.name()?, &errors));
    }
    admission::node_restriction(ctx.user, resource, Some(old), &incoming)?;
    admission::check_update(ctx.state, resource, old, &mut incoming).await?;
    write_update(ctx, kv, old, incoming, dry_run).await
}

/// Store `incoming` over `old` unless nothing changed; an object being deleted whose last
/// finalizer went away is deleted now.
pub async fn write_update(
    ctx: &Ctx<'_>,
    kv: &KeyValue,
    old: &Value,
    mut incoming: Value,
    dry_run: bool,
) -> ApiResult<(StatusCode, Value)> {
    if !apply::is_apply(ctx) {
        apply::record_update(ctx, Some(old), &mut incoming)?;
    }
    objects::set_resource_version(&mut incoming, kv.mod_revision)?;
    if &incoming == old {
        return Ok((StatusCode::OK, incoming));
    }
    if dry_run {
        return Ok((StatusCode::OK, incoming));
    }
    let deleting = incoming.pointer("/metadata/deletionTimestamp").is_some();
    if deleting && objects::finalizers(&incoming).is_empty() && ready_to_go(&incoming) {
        let deleted = delete_now(ctx, kv, &incoming).await?;
        return Ok((StatusCode::OK, deleted));
    }
    let revision = ctx
        .state
        .store
        .update(&kv.key, objects::to_store(&incoming)?, kv.mod_revision)
        .await
        .map_err(|err| ApiError::from_store(err, &ctx.target()))?;
    objects::set_resource_version(&mut incoming, revision)?;
    Ok((StatusCode::OK, incoming))
}

/// Whether an object with a deletion timestamp and no finalizers may go: pods on a node wait
/// for their node agent (which deletes them with a zero grace period).
fn ready_to_go(obj: &Value) -> bool {
    let kind = obj.get("kind").and_then(Value::as_str);
    let core = obj.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if core && kind == Some("Namespace") {
        // A namespace also waits for its content to go (`spec.finalizers`).
        return obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
    }
    let is_pod = obj.get("kind").and_then(Value::as_str) == Some("Pod")
        && obj.get("apiVersion").and_then(Value::as_str) == Some("v1");
    if !is_pod {
        return true;
    }
    let on_node = obj
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .is_some_and(|n| !n.is_empty());
    !on_node
        || obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64)
            == Some(0)
}

/// Copy what clients cannot change on the main resource from the stored object.
fn carry_server_fields(resource: &ResourceInfo, old: &Value, new: &mut Value) -> ApiResult<()> {
    let old_meta = old.get("metadata").cloned().unwrap_or_default();
    let meta = objects::metadata_mut(new)?;
    for field in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
        "namespace",
    ] {
        match old_meta.get(field) {
            Some(value) => meta.insert(field.into(), value.clone()),
            None => meta.remove(field),
        };
    }
    meta.remove("selfLink");
    if has_status_subresource(resource)
        && let Some(map) = new.as_object_mut()
    {
        match old.get("status") {
            Some(status) => map.insert("status".into(), status.clone()),
            None => map.remove("status"),
        };
    }
    Ok(())
}

/// patch: PATCH an object with a JSON, merge or strategic merge patch, or a server-side apply.
pub async fn patch(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    if apply::is_apply(ctx) {
        return apply::apply(ctx, body).await;
    }
    let (code, obj, warnings) = patch_with(ctx, body, |ctx, current, incoming, dry_run| {
        Box::pin(async move {
            let precondition = objects::client_resource_version(&incoming)?;
            let incoming =
                crate::convert::to_storage(ctx.path.resource, incoming, &ctx.path.version);
            update_object(ctx, current, incoming, precondition, dry_run).await
        })
    })
    .await?;
    let response = render::object(ctx, code, &obj)?;
    Ok(with_warnings(response, &warnings))
}

/// What a patch's result goes through: the update strategy of the main resource or of a
/// subresource.
pub type PatchApply = for<'a> fn(
    &'a Ctx<'a>,
    &'a (KeyValue, Value),
    Value,
    bool,
) -> futures::future::BoxFuture<'a, ApiResult<(StatusCode, Value)>>;

/// Parse the patch, then read, patch and write until the write wins.
pub async fn patch_with(
    ctx: &Ctx<'_>,
    body: &[u8],
    apply: PatchApply,
) -> ApiResult<(StatusCode, Value, Vec<String>)> {
    let resource = ctx.path.resource;
    let content_type = ctx
        .headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(kind) = PatchKind::from_content_type(content_type) else {
        return Err(status::unsupported_media_type(&[
            "application/json-patch+json",
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ])
        .into());
    };
    let dry_run = ctx.query.dry_run()?;
    let validation = ctx.query.field_validation()?;
    let patch_doc = strict::parse_json(body)
        .map_err(|err| ApiError::bad_request(format!("error decoding patch: {err}")))?;
    let schema = patch::schema_for(resource.group, resource.kind);
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) = read_current(ctx).await? else {
            return Err(status::not_found(&ctx.target()).into());
        };
        let original = render::versioned(ctx, &current.1);
        let patched = patch::apply_patch(kind, &original, &patch_doc, schema).map_err(|err| {
            let code = err.status_code();
            let message = err.to_string();
            match code {
                422 => invalid(resource, ctx.path.name.as_deref().unwrap_or(""), &[])
                    .with_message(message),
                409 => ApiError::from(status::conflict(&ctx.target(), &message)),
                415 => ApiError::from(status::unsupported_media_type(&[
                    "application/json-patch+json",
                    "application/merge-patch+json",
                ])),
                _ => ApiError::bad_request(message),
            }
        })?;
        if !patched.is_object() {
            return Err(ApiError::bad_request(
                "the patched object is not a JSON object",
            ));
        }
        let issues = if validation == FieldValidation::Ignore {
            Vec::new()
        } else {
            strict::issues_for_value(resource.group, resource.kind, &patched, Vec::new())
                .map_err(|err| ApiError::bad_request(err.to_string()))?
        };
        let warnings = checked_issues(validation, &issues)?;
        check_type_meta(ctx, &patched)?;
        if objects::name(&patched) != ctx.path.name.as_deref() {
            return Err(ApiError::bad_request(
                "the name of the object cannot be changed by a patch",
            ));
        }
        let explicit_precondition = objects::client_resource_version(&patched)?
            .is_some_and(|rv| rv != current.0.mod_revision);
        if explicit_precondition {
            return Err(status::conflict(&ctx.target(), status::OBJECT_MODIFIED).into());
        }
        match apply(ctx, &current, patched, dry_run).await {
            Ok((code, obj)) => return Ok((code, obj, warnings)),
            Err(err) if err.code() == 409 && is_store_conflict(&err) => continue,
            Err(err) => return Err(err),
        }
    }
    Err(status::conflict(&ctx.target(), status::OBJECT_MODIFIED).into())
}

pub(crate) fn is_store_conflict(err: &ApiError) -> bool {
    err.status.reason.as_deref() == Some("Conflict")
}

impl ApiError {
    fn with_message(mut self, message: String) -> Self {
        self.status.message = Some(message);
        self
    }
}

/// The options of a delete, from the body and the query.
#[derive(Debug, Default)]
pub struct DeleteOptions {
    /// `gracePeriodSeconds`.
    pub grace_period: Option<i64>,
    /// `preconditions.uid`.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<i64>,
    /// `propagationPolicy` (or the deprecated `orphanDependents`).
    pub propagation: Option<String>,
    /// `dryRun=All`.
    pub dry_run: bool,
}

impl DeleteOptions {
    /// Read the options: a `DeleteOptions` body (possibly empty) and query parameters.
    pub fn parse(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Self> {
        let mut options = DeleteOptions {
            dry_run: ctx.query.dry_run()?,
            grace_period: ctx.query.number("gracePeriodSeconds")?,
            propagation: ctx.query.get("propagationPolicy").map(str::to_owned),
            ..DeleteOptions::default()
        };
        if ctx.query.get("orphanDependents") == Some("true") {
            options.propagation = Some("Orphan".into());
        }
        if !body.iter().all(u8::is_ascii_whitespace) {
            let doc: Value = match request::body_format(ctx.headers)? {
                BodyFormat::Yaml => strict::yaml_to_json(body)
                    .map_err(|err| ApiError::bad_request(err.to_string()))?,
                BodyFormat::Protobuf => tugboat_api::protobuf::decode_to_json_with_defaults(
                    body,
                    "meta.k8s.io/v1",
                    "DeleteOptions",
                )
                .map_err(|err| ApiError::bad_request(err.to_string()))?,
                BodyFormat::Json => strict::parse_json(body).map_err(|err| {
                    ApiError::bad_request(format!("invalid DeleteOptions: {err}"))
                })?,
            };
            if let Some(grace) = doc.get("gracePeriodSeconds").and_then(Value::as_i64) {
                options.grace_period = Some(grace);
            }
            if let Some(policy) = doc.get("propagationPolicy").and_then(Value::as_str) {
                options.propagation = Some(policy.to_owned());
            }
            if doc.get("orphanDependents").and_then(Value::as_bool) == Some(true) {
                options.propagation = Some("Orphan".into());
            }
            if let Some(pre) = doc.get("preconditions") {
                options.uid = pre.get("uid").and_then(Value::as_str).map(str::to_owned);
                options.resource_version = match pre.get("resourceVersion").and_then(Value::as_str)
                {
                    None | Some("") => None,
                    Some(rv) => Some(rv.parse().map_err(|_| {
                        ApiError::bad_request(format!("invalid resourceVersion {rv:?}"))
                    })?),
                };
            }
            if doc
                .get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|d| d.iter().any(|v| v == "All"))
            {
                options.dry_run = true;
            }
        }
        match options.propagation.as_deref() {
            None | Some("Orphan" | "Background" | "Foreground") => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "propagationPolicy {other:?} is invalid: supported values: \"Background\", \"Foreground\", \"Orphan\""
                )));
            }
        }
        if options.grace_period.is_some_and(|g| g < 0) {
            options.grace_period = Some(1);
        }
        Ok(options)
    }
}

/// delete: DELETE an object.
pub async fn delete(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let options = DeleteOptions::parse(ctx, body)?;
    let Some(current) = read_current(ctx).await? else {
        return Err(status::not_found(&ctx.target()).into());
    };
    let (code, answer) = delete_object(ctx, &current, &options).await?;
    match answer {
        DeleteAnswer::Object(obj) => render::object(ctx, code, &obj),
        DeleteAnswer::Status(body) => Ok(super::json_response(code, &body)),
    }
}

/// What a delete answers with.
pub enum DeleteAnswer {
    /// The object (still there, being deleted; or a deleted pod).
    Object(Value),
    /// A Success Status naming the deleted object.
    Status(Value),
}

/// Delete or start deleting one object, `current` as last read.
///
/// Without a uid or resourceVersion precondition, a delete that races another write (it sets
/// deletionTimestamp and finalizers with a compare-and-swap) reads the object again and
/// retries, as kube-apiserver's GuaranteedUpdate does: the caller asked for no particular
/// version.
pub async fn delete_object(
    ctx: &Ctx<'_>,
    current: &(KeyValue, Value),
    options: &DeleteOptions,
) -> ApiResult<(StatusCode, DeleteAnswer)> {
    let unconditional = options.resource_version.is_none() && options.uid.is_none();
    let mut current = current.clone();
    let mut attempt = 0;
    loop {
        match delete_once(ctx, &current, options).await {
            Err(err) if unconditional && is_store_conflict(&err) && attempt + 1 < MAX_ATTEMPTS => {
                attempt += 1;
                let name = objects::name(&current.1).unwrap_or_default().to_owned();
                let reread = ctx.state.store.get(&current.0.key).await.map_err(|err| {
                    ApiError::from_store(err, &Target::of(ctx.path.resource, &name))
                })?;
                let Some(kv) = reread else {
                    return Err(status::not_found(&Target::of(ctx.path.resource, &name)).into());
                };
                let obj = objects::from_store(&kv)?;
                current = (kv, obj);
            }
            outcome => return outcome,
        }
    }
}

/// One attempt of [`delete_object`].
async fn delete_once(
    ctx: &Ctx<'_>,
    current: &(KeyValue, Value),
    options: &DeleteOptions,
) -> ApiResult<(StatusCode, DeleteAnswer)> {
    let resource = ctx.path.resource;
    let (kv, old) = current;
    let name = objects::name(old).unwrap_or_default().to_owned();
    let target = Target::of(resource, &name);
    if let Some(uid) = &options.uid
        && objects::meta_str(old, "uid") != Some(uid.as_str())
    {
        return Err(status::conflict(
            &target,
            &format!(
                "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                objects::meta_str(old, "uid").unwrap_or_default()
            ),
        )
        .into());
    }
    if let Some(rv) = options.resource_version
        && rv != kv.mod_revision
    {
        return Err(status::conflict(
            &target,
            &format!(
                "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                kv.mod_revision
            ),
        )
        .into());
    }

    let mut obj = old.clone();
    let mut finalizers = objects::finalizers(&obj);
    match options.propagation.as_deref() {
        Some("Orphan") if !finalizers.iter().any(|f| f == "orphan") => {
            finalizers.push("orphan".into());
        }
        Some("Foreground") if !finalizers.iter().any(|f| f == "foregroundDeletion") => {
            finalizers.push("foregroundDeletion".into());
        }
        _ => {}
    }
    let is_pod = resource.group.is_empty() && resource.kind == "Pod";
    let is_namespace = resource.group.is_empty() && resource.kind == "Namespace";
    let on_node = is_pod
        && obj
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
    let already_deleting = obj.pointer("/metadata/deletionTimestamp").is_some();

    // Graceful pod deletion: mark it and let the node agent stop it.
    let grace = if on_node {
        let default = obj
            .pointer("/spec/terminationGracePeriodSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(30);
        let grace = options.grace_period.unwrap_or(default);
        let current_grace = obj
            .pointer("/metadata/deletionGracePeriodSeconds")
            .and_then(Value::as_i64);
        match current_grace {
            Some(existing) if existing <= grace => existing,
            _ => grace,
        }
    } else {
        0
    };
    let namespace_pending = is_namespace
        && obj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
    let deferred = !finalizers.is_empty() || grace > 0 || namespace_pending;
    if !deferred {
        if options.dry_run {
            return Ok((StatusCode::OK, deleted_answer(resource, &obj)));
        }
        let deleted = delete_now(ctx, kv, &obj).await?;
        return Ok((StatusCode::OK, deleted_answer(resource, &deleted)));
    }

    let meta = objects::metadata_mut(&mut obj)?;
    if !finalizers.is_empty() {
        meta.insert("finalizers".into(), json!(finalizers));
    }
    let grace_changed = meta
        .get("deletionGracePeriodSeconds")
        .and_then(Value::as_i64)
        != Some(grace);
    if !already_deleting || grace_changed {
        let when =
            std::time::SystemTime::now() + std::time::Duration::from_secs(grace.unsigned_abs());
        meta.insert(
            "deletionTimestamp".into(),
            Value::String(
                tugboat_api::table::timestamp_of(when)
                    .strftime("%Y-%m-%dT%H:%M:%SZ")
                    .to_string(),
            ),
        );
        meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
    }
    if is_namespace && let Some(map) = obj.as_object_mut() {
        map.insert("status".into(), json!({ "phase": "Terminating" }));
    }
    let code = if options.propagation.as_deref() == Some("Foreground") {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    if options.dry_run || (&obj == old && already_deleting) {
        return Ok((code, DeleteAnswer::Object(obj)));
    }
    let revision = ctx
        .state
        .store
        .update(&kv.key, objects::to_store(&obj)?, kv.mod_revision)
        .await
        .map_err(|err| ApiError::from_store(err, &target))?;
    objects::set_resource_version(&mut obj, revision)?;
    Ok((code, DeleteAnswer::Object(obj)))
}

fn deleted_answer(resource: &ResourceInfo, obj: &Value) -> DeleteAnswer {
    // Pods and a few others answer with the deleted object, the rest with a Status.
    if resource.group.is_empty() && matches!(resource.kind, "Pod" | "Namespace") {
        return DeleteAnswer::Object(obj.clone());
    }
    let target = Target::of(resource, objects::name(obj).unwrap_or_default())
        .with_uid(objects::meta_str(obj, "uid").unwrap_or_default());
    DeleteAnswer::Status(serde_json::to_value(status::success_deleted(&target)).unwrap_or_default())
}

/// Remove the object from the store now (only if unchanged since `kv`), releasing what
/// admission allocated for it.
async fn delete_now(ctx: &Ctx<'_>, kv: &KeyValue, obj: &Value) -> ApiResult<Value> {
    let resource = ctx.path.resource;
    let target = Target::of(resource, objects::name(obj).unwrap_or_default());
    let deleted = ctx
        .state
        .store
        .delete(&kv.key, Some(kv.mod_revision))
        .await
        .map_err(|err| ApiError::from_store(err, &target))?;
    admission::release_for(ctx.state, resource, obj).await;
    let mut obj = obj.clone();
    objects::set_resource_version(&mut obj, deleted.revision)?;
    Ok(obj)
}

/// deletecollection: DELETE a collection, with selectors.
pub async fn delete_collection(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let options = DeleteOptions::parse(ctx, body)?;
    let filter = Filter::from_query(ctx.query, ctx.path.resource)?;
    let resource = ctx.path.resource;
    let prefix = resource.storage_prefix_in(ctx.path.namespace.as_deref());
    let listed = ctx
        .state
        .store
        .list(&prefix, tugboat_store::ListOptions::default())
        .await
        .map_err(|err| ApiError::from_store(err, &ctx.target()))?;
    let mut items = Vec::new();
    for kv in &listed.items {
        let obj = objects::from_store(kv)?;
        if !filter.matches(&obj) {
            continue;
        }
        match delete_object(ctx, &(kv.clone(), obj.clone()), &options).await {
            Ok((_, DeleteAnswer::Object(obj))) => items.push(render::versioned(ctx, &obj)),
            Ok((_, DeleteAnswer::Status(_))) => items.push(render::versioned(ctx, &obj)),
            // Gone or changed meanwhile: someone else is handling it.
            Err(err) if err.code() == 404 || err.code() == 409 => {}
            Err(err) => return Err(err),
        }
    }
    let body = json!({
        "apiVersion": resource.api_version(&ctx.path.version),
        "kind": format!("{}List", resource.kind),
        "metadata": { "resourceVersion": listed.revision.to_string() },
        "items": items,
    });
    Ok(super::json_response(StatusCode::OK, &body))
}
