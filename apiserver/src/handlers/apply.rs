//! Field managers: `metadata.managedFields` on every write, and server-side apply
//! (`PATCH` with `application/apply-patch+yaml`), following kube-apiserver's fieldmanager.

use axum::http::StatusCode;
use axum::response::Response;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Status, StatusCause, StatusDetails};
use serde_json::Value;
use tugboat_api::managed::{self, ApplyError, ApplyRequest, ManagedFieldsEntry, Scope};
use tugboat_api::status;
use tugboat_api::strict;

use super::Ctx;
use super::write::{self, MAX_ATTEMPTS};
use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::render;
use crate::request::FieldValidation;

/// The media type of server-side apply.
const APPLY_MEDIA_TYPE: &str = "application/apply-patch+yaml";

/// Longest `fieldManager` upstream accepts.
const MAX_MANAGER_LENGTH: usize = 128;

/// Whether the request is a server-side apply.
pub fn is_apply(ctx: &Ctx<'_>) -> bool {
    ctx.headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(APPLY_MEDIA_TYPE))
}

/// The 422 for bad patch options (upstream's `PatchOptions.meta.k8s.io "" is invalid`).
fn invalid_options(kind: &str, field: &str, message: &str) -> ApiError {
    ApiError::from(Status {
        status: Some("Failure".into()),
        message: Some(format!(
            "{kind}.meta.k8s.io \"\" is invalid: {field}: {message}"
        )),
        reason: Some("Invalid".into()),
        code: Some(422),
        details: Some(StatusDetails {
            group: Some("meta.k8s.io".into()),
            kind: Some(kind.into()),
            causes: Some(vec![StatusCause {
                field: Some(field.into()),
                message: Some(message.into()),
                reason: Some("FieldValueInvalid".into()),
            }]),
            ..StatusDetails::default()
        }),
        ..Status::default()
    })
}

/// The field manager of a write: `fieldManager`, else the User-Agent up to its first `/`.
pub fn field_manager(ctx: &Ctx<'_>, options_kind: &str) -> ApiResult<String> {
    let manager = match ctx.query.get("fieldManager") {
        Some(manager) => manager.to_owned(),
        None => managed::manager_from_user_agent(
            ctx.headers
                .get(axum::http::header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        ),
    };
    if manager.chars().count() > MAX_MANAGER_LENGTH {
        return Err(invalid_options(
            options_kind,
            "fieldManager",
            &format!("Too long: may not be more than {MAX_MANAGER_LENGTH} bytes"),
        ));
    }
    Ok(manager)
}

/// What the written (sub)resource tracks.
fn scope(ctx: &Ctx<'_>) -> Scope {
    match ctx.path.subresource.as_deref() {
        Some("status") => Scope::StatusOnly,
        Some(_) => Scope::Everything,
        None if write::has_status_subresource(ctx.path.resource) => Scope::WithoutStatus,
        None => Scope::Everything,
    }
}

fn schema(ctx: &Ctx<'_>) -> tugboat_api::patch::SchemaRef {
    managed::schema_of(ctx.path.resource.group, ctx.path.resource.kind)
}

/// Record an Update of `old` (none for a create) into `new` by this request's manager: the
/// client's own `managedFields` are replaced by the server's record.
pub fn record_update(ctx: &Ctx<'_>, old: Option<&Value>, new: &mut Value) -> ApiResult<()> {
    let manager = field_manager(
        ctx,
        if old.is_some() {
            "UpdateOptions"
        } else {
            "CreateOptions"
        },
    )?;
    let mut entries = old.map(ManagedFieldsEntry::read_all).unwrap_or_default();
    let changes = managed::update_sets(old, new, schema(ctx), scope(ctx));
    managed::record_update(
        &mut entries,
        &manager,
        &ctx.path.resource.api_version(&ctx.path.version),
        ctx.path.subresource.as_deref().unwrap_or(""),
        &changes,
        &objects::now_rfc3339(),
    );
    managed::write_all(new, &entries);
    Ok(())
}

/// The 409 of an apply that conflicts with other managers (upstream's `NewApplyConflict`).
fn conflict_error(conflicts: &[managed::Conflict]) -> ApiError {
    let causes = conflicts
        .iter()
        .map(|c| StatusCause {
            field: Some(c.path.clone()),
            message: Some(format!("conflict with {}", c.manager)),
            reason: Some("FieldManagerConflict".into()),
        })
        .collect();
    ApiError::from(Status {
        status: Some("Failure".into()),
        message: Some(managed::conflict_message(conflicts)),
        reason: Some("Conflict".into()),
        code: Some(409),
        details: Some(StatusDetails {
            causes: Some(causes),
            ..StatusDetails::default()
        }),
        ..Status::default()
    })
}

fn apply_error(ctx: &Ctx<'_>, err: ApplyError) -> ApiError {
    match err {
        ApplyError::Conflicts(conflicts) => conflict_error(&conflicts),
        ApplyError::Invalid(err) => write::invalid(
            ctx.path.resource,
            ctx.path.name.as_deref().unwrap_or(""),
            &[],
        )
        .with_status_message(err.to_string()),
    }
}

impl ApiError {
    fn with_status_message(mut self, message: String) -> Self {
        self.status.message = Some(message);
        self
    }
}

/// The applied configuration, checked against the path.
fn decode_config(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<(Value, Vec<String>)> {
    {
        let resource = ctx.path.resource;
        let (mut config, duplicates) = strict::yaml_to_json_checked(body)
            .map_err(|err| ApiError::bad_request(format!("error decoding YAML: {err}")))?;
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "error decoding YAML: the applied configuration must be an object",
            ));
        }
        let validation = ctx.query.field_validation()?;
        let issues = if validation == FieldValidation::Ignore {
            Vec::new()
        } else {
            strict::issues_for_value(resource.group, resource.kind, &config, duplicates)
                .map_err(|err| ApiError::bad_request(err.to_string()))?
        };
        let warnings = write::checked_issues(validation, &issues)?;
        let expected = resource.api_version(&ctx.path.version);
        let api_version = config.get("apiVersion").and_then(Value::as_str);
        let kind = config.get("kind").and_then(Value::as_str);
        if api_version != Some(expected.as_str()) || kind != Some(resource.kind) {
            return Err(ApiError::bad_request(format!(
                "Incorrect version specified in apply patch. Specified patch version: {}, expected: {expected}",
                api_version.unwrap_or_default()
            )));
        }
        let name = ctx.name()?;
        match objects::name(&config) {
            Some(sent) if sent != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({sent}) does not match the name on the URL ({name})"
                )));
            }
            _ => {}
        }
        let meta = objects::metadata_mut(&mut config)?;
        meta.insert("name".into(), Value::String(name.to_owned()));
        // Clients may not set managedFields through an apply.
        meta.remove("managedFields");
        write::settle_namespace(ctx, &mut config)?;
        Ok((config, warnings))
    }
}

/// Server-side apply: PATCH with `application/apply-patch+yaml`.
pub async fn apply(ctx: &Ctx<'_>, body: &[u8]) -> ApiResult<Response> {
    let manager = match ctx.query.get("fieldManager") {
        Some(manager) if !manager.is_empty() => manager.to_owned(),
        _ => {
            return Err(invalid_options(
                "PatchOptions",
                "fieldManager",
                "Required value: is required for apply patch",
            ));
        }
    };
    field_manager(ctx, "PatchOptions")?;
    let force = match ctx.query.get("force") {
        None | Some("" | "false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid value for force: {other:?} is not a boolean"
            )));
        }
    };
    let dry_run = ctx.query.dry_run()?;
    let (config, warnings) = decode_config(ctx, body)?;
    let api_version = ctx.path.resource.api_version(&ctx.path.version);
    let request = ApplyRequest {
        manager: &manager,
        api_version: &api_version,
        force,
        now: &objects::now_rfc3339(),
        scope: scope(ctx),
    };
    for _ in 0..MAX_ATTEMPTS {
        let Some(current) = write::read_current(ctx).await? else {
            // Apply creates what is missing.
            let entry = managed::apply_entry(
                &config,
                schema(ctx),
                request.scope,
                request.manager,
                request.api_version,
                request.now,
            )
            .map_err(|err| apply_error(ctx, err.into()))?;
            let mut obj = config.clone();
            managed::write_all(&mut obj, &[entry]);
            match write::create_object(ctx, obj, dry_run).await {
                Ok(created) => {
                    let response = render::object(ctx, StatusCode::CREATED, &created)?;
                    return Ok(write::with_warnings(response, &warnings));
                }
                Err(err) if err.code() == 409 => continue,
                Err(err) => return Err(err),
            }
        };
        let live = render::versioned(ctx, &current.1);
        let merged = managed::apply(&live, &config, schema(ctx), &request)
            .map_err(|err| apply_error(ctx, err))?;
        let incoming = crate::convert::to_storage(ctx.path.resource, merged, &ctx.path.version);
        match write::update_object(ctx, &current, incoming, None, dry_run).await {
            Ok((code, obj)) => {
                let response = render::object(ctx, code, &obj)?;
                return Ok(write::with_warnings(response, &warnings));
            }
            Err(err) if write::is_store_conflict(&err) => continue,
            Err(err) => return Err(err),
        }
    }
    Err(status::conflict(&ctx.target(), status::OBJECT_MODIFIED).into())
}
