//! The HTTP front: one handler that authenticates, bounds the body, routes non-resource paths
//! (version, health, metrics, discovery, OpenAPI) and hands resource paths to the verbs.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tugboat_api::discovery::{self, Discovery};
use tugboat_api::resources::Registry;
use tugboat_api::status;
use tugboat_store::Store;

use crate::admission::ServiceRange;
use crate::auth::{self, Tokens};
use crate::cache::WatchCaches;
use crate::error::ApiError;
use crate::handlers::{self, json_response};
use crate::metrics::Metrics;
use crate::path::{self, ApiPath};
use crate::request::{MAX_BODY_BYTES, Query};

/// What every request handler shares.
pub struct ApiState {
    /// The store (only the API server touches it).
    pub store: Arc<dyn Store>,
    /// Watch caches, one per stored resource.
    pub caches: WatchCaches,
    /// The served resources.
    pub registry: Registry,
    /// Discovery documents.
    pub discovery: Discovery,
    /// Cancelled when the server stops: open watches end.
    pub shutdown: CancellationToken,
    /// Where Service ClusterIPs come from.
    pub service_range: ServiceRange,
    /// Create-time defaults set by flags.
    pub create_defaults: tugboat_api::defaults::CreateDefaults,
    /// Known bearer tokens; `None` turns authentication off (in-process tests only).
    pub tokens: Option<Tokens>,
    /// Request and store metrics.
    pub metrics: Metrics,
    /// The address clients reach the server at, for `/api`'s serverAddressByClientCIDRs.
    pub advertise: String,
    /// OpenAPI v3 documents, built on first use.
    pub openapi: std::sync::OnceLock<crate::openapi::OpenApiDocs>,
    /// The latest resource metrics the node agents pushed (`metrics.k8s.io`).
    pub resource_metrics: crate::metrics_api::MetricsStore,
    /// How to reach node agents (logs, exec, port-forward); `None` answers 503.
    pub agents: Option<crate::node_proxy::AgentClient>,
    /// Lets nodes of other machines join (`/cacerts`, `/v1-tugboat/join`); `None` answers 503.
    pub join: Option<crate::join::JoinService>,
    /// The cluster CA (PEM), published in every namespace as the ConfigMap
    /// `kube-root-ca.crt`; `None` publishes nothing (in-process tests).
    pub root_ca_pem: Option<String>,
    /// Signs and checks service-account tokens.
    pub sa_tokens: crate::serviceaccount::TokenSigner,
    /// Decides what each authenticated user may do.
    pub authorizer: crate::authz::Authorizer,
}

/// Who requests come from when authentication is off (in-process tests): like
/// kube-apiserver's old insecure port, a member of `system:masters`.
static UNSECURED: std::sync::LazyLock<auth::UserInfo> = std::sync::LazyLock::new(|| {
    auth::UserInfo::new("system:unsecured", "", [auth::MASTERS_GROUP.to_owned()])
});

/// The router: everything goes through [`handle`].
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// One request.
async fn handle(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let span = tracing::info_span!("request", %method, %path, user = tracing::field::Empty);
    let (response, verb, resource) = async {
        let outcome = handle_inner(&state, request).await;
        let response = match outcome.response {
            Ok(response) => response,
            Err(err) => err.into_response(),
        };
        tracing::debug!(code = response.status().as_u16(), "answered");
        (response, outcome.verb, outcome.resource)
    }
    .instrument(span)
    .await;
    state.metrics.request(
        &verb,
        &resource,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

struct Outcome {
    response: Result<Response, ApiError>,
    verb: String,
    resource: String,
}

async fn handle_inner(state: &ApiState, request: Request) -> Outcome {
    let mut outcome = Outcome {
        response: Err(status::internal_error("unhandled").into()),
        verb: request.method().as_str().to_ascii_lowercase(),
        resource: String::new(),
    };
    let path = request.uri().path().to_owned();
    // Joining nodes have no credential yet: these paths check the join token themselves.
    if crate::join::is_join_path(&path) {
        outcome.resource = path.trim_start_matches('/').to_owned();
        outcome.response = crate::join::handle(state, request).await;
        return outcome;
    }
    let mut user = Cow::Borrowed(&*UNSECURED);
    if state.tokens.is_some() && !auth::is_public(&path) {
        let authorization = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let certificate = request
            .extensions()
            .get::<auth::CertificateUser>()
            .map(|c| Cow::Owned(c.0.clone()));
        let authenticated = match authorization
            .strip_prefix("Bearer ")
            .or_else(|| authorization.strip_prefix("bearer "))
        {
            // A client certificate comes first, as in kube-apiserver.
            _ if certificate.is_some() => certificate,
            Some(token) => authenticate_bearer(state, token.trim(), &[])
                .await
                .ok()
                .map(|authenticated| authenticated.user),
            None => None,
        };
        match authenticated {
            Some(authenticated) => {
                tracing::Span::current().record("user", authenticated.name.as_str());
                user = authenticated;
            }
            None => {
                outcome.response = Err(status::unauthorized().into());
                return outcome;
            }
        }
        if let Err(err) = authorize(state, &mut user, &request) {
            outcome.response = Err(err);
            return outcome;
        }
    }
    // Logs, exec and port-forward go to a node agent with the request as it came (upgrades
    // need it whole).
    if let Ok(ApiPath::Resource(resource_path)) = path::parse(&state.registry, &path)
        && crate::node_proxy::is_streaming(&resource_path)
    {
        outcome.resource = format!(
            "pods/{}",
            resource_path.subresource.as_deref().unwrap_or_default()
        );
        outcome.response = crate::node_proxy::handle(state, request, &resource_path).await;
        return outcome;
    }
    let (parts, body) = request.into_parts();
    let body = match read_body(body, &parts.headers).await {
        Ok(body) => body,
        Err(err) => {
            outcome.response = Err(err);
            return outcome;
        }
    };
    let query = match Query::from_uri(&parts.uri) {
        Ok(query) => query,
        Err(err) => {
            outcome.response = Err(err);
            return outcome;
        }
    };
    if let Some(response) = non_resource(state, &parts.method, &path, &parts.headers) {
        outcome.response = Ok(response);
        return outcome;
    }
    let parsed = match path::parse(&state.registry, &path) {
        Ok(parsed) => parsed,
        Err(_) => {
            outcome.response = Err(status::resource_not_served().into());
            return outcome;
        }
    };
    outcome.response = match parsed {
        ApiPath::Resource(resource_path) => {
            outcome.resource = match &resource_path.subresource {
                Some(sub) => format!("{}/{sub}", resource_path.resource.plural),
                None => resource_path.resource.plural.to_owned(),
            };
            if crate::serviceaccount::is_token_request(&resource_path)
                && parts.method == Method::POST
            {
                outcome.response = crate::serviceaccount::token_request(
                    state,
                    &user,
                    &resource_path,
                    &parts.headers,
                    &body,
                )
                .await;
                return outcome;
            }
            if crate::serviceaccount::is_token_review(&resource_path) {
                outcome.response = crate::serviceaccount::token_review(
                    state,
                    &parts.method,
                    &resource_path,
                    &parts.headers,
                    &body,
                )
                .await;
                return outcome;
            }
            if crate::authz::reviews::is_review(&resource_path) {
                outcome.response = crate::authz::reviews::handle(
                    &state.authorizer,
                    &user,
                    &parts.method,
                    &resource_path,
                    &parts.headers,
                    &body,
                );
                return outcome;
            }
            if resource_path.resource.group == "metrics.k8s.io" {
                outcome.response = crate::metrics_api::handle(
                    &state.resource_metrics,
                    &parts.method,
                    &resource_path,
                    &query,
                    &body,
                );
                return outcome;
            }
            handlers::dispatch(
                state,
                &user,
                &parts.method,
                &resource_path,
                &query,
                &parts.headers,
                body,
            )
            .await
        }
        other => discovery_answer(state, &parts.method, &parts.headers, &other),
    };
    outcome
}

/// Whom a bearer token stands for.
pub struct Authenticated<'a> {
    /// The user.
    pub user: Cow<'a, auth::UserInfo>,
    /// The audiences a service-account token was issued for; `None` for the other tokens,
    /// which are good for this API server only.
    pub audiences: Option<Vec<String>>,
}

/// The user `token` authenticates, by each authenticator in turn: the static token file,
/// service-account tokens, node credentials (kept in the store, shared by every API server).
/// `audiences` are those the caller accepts (none: this API server). The error says why.
pub async fn authenticate_bearer<'a>(
    state: &'a ApiState,
    token: &str,
    audiences: &[String],
) -> Result<Authenticated<'a>, String> {
    let for_this_server =
        audiences.is_empty() || audiences.iter().any(|a| a == crate::serviceaccount::ISSUER);
    if let Some(user) = state.tokens.as_ref().and_then(|t| t.user(token)) {
        return match for_this_server {
            true => Ok(Authenticated {
                user: Cow::Borrowed(user),
                audiences: None,
            }),
            false => Err("token audiences are invalid for the target audiences".into()),
        };
    }
    if crate::serviceaccount::looks_like_jwt(token) {
        return match crate::serviceaccount::authenticate(state, token, audiences).await {
            Ok((user, claims)) => Ok(Authenticated {
                user: Cow::Owned(user),
                audiences: Some(claims.aud),
            }),
            Err(error) => Err(error.to_string()),
        };
    }
    match crate::join::authenticate_node(state, token).await {
        Some(user) if for_this_server => Ok(Authenticated {
            user: Cow::Owned(user),
            audiences: None,
        }),
        Some(_) => Err("token audiences are invalid for the target audiences".into()),
        None => Err("invalid bearer token".into()),
    }
}

/// Impersonate if asked, then run the authorizer chain; `system:masters` (the admin and the
/// components) skips straight through without building the request's attributes.
fn authorize(
    state: &ApiState,
    user: &mut Cow<'_, auth::UserInfo>,
    request: &Request,
) -> Result<(), ApiError> {
    if let Some(impersonated) = state.authorizer.impersonate(user, request.headers())? {
        tracing::Span::current().record("user", impersonated.name.as_str());
        *user = Cow::Owned(impersonated);
    }
    if user.in_group(auth::MASTERS_GROUP) {
        return Ok(());
    }
    let query = Query::from_uri(request.uri()).unwrap_or_default();
    let attrs = crate::authz::Attributes::from_request(
        request.method().as_str(),
        request.uri().path(),
        &query,
    );
    match state.authorizer.authorize(user, &attrs) {
        crate::authz::Decision::Allow(_) => Ok(()),
        crate::authz::Decision::Deny(reason) => Err(crate::authz::forbidden(user, &attrs, &reason)),
    }
}

/// Read the body, refusing more than [`MAX_BODY_BYTES`] before parsing anything.
async fn read_body(body: Body, headers: &HeaderMap) -> Result<bytes::Bytes, ApiError> {
    let too_large = || {
        ApiError::from(status::request_entity_too_large(&format!(
            "the request body is larger than the limit of {MAX_BODY_BYTES} bytes"
        )))
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES) {
        return Err(too_large());
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY_BYTES);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(err) if err.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Err(err) => Err(ApiError::bad_request(format!(
            "cannot read the request body: {err}"
        ))),
    }
}

fn text(code: StatusCode, body: String) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

/// Version, health, metrics and OpenAPI.
fn non_resource(
    state: &ApiState,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Option<Response> {
    let _ = headers;
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    let response = match path {
        "/version" | "/version/" => json_response(StatusCode::OK, &version()),
        "/healthz" | "/livez" => text(StatusCode::OK, "ok".into()),
        "/readyz" => {
            if state.caches.ready() {
                text(StatusCode::OK, "ok".into())
            } else {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "[-]watch-cache not ready\nreadyz check failed".into(),
                )
            }
        }
        "/metrics" => text(StatusCode::OK, state.metrics.render()),
        "/openapi/v3" | "/openapi/v3/" => json_response(StatusCode::OK, openapi(state).index()),
        _ => {
            if let Some(rest) = path.strip_prefix("/openapi/v3/") {
                match openapi(state).document(rest) {
                    Some(doc) => json_response(StatusCode::OK, doc),
                    None => ApiError::from(status::resource_not_served()).into_response(),
                }
            } else if path == "/openapi/v2" {
                ApiError::from(status::resource_not_served()).into_response()
            } else {
                return None;
            }
        }
    };
    Some(response)
}

fn openapi(state: &ApiState) -> &crate::openapi::OpenApiDocs {
    state
        .openapi
        .get_or_init(|| crate::openapi::OpenApiDocs::build(&state.registry))
}

/// `/version`, as kube-apiserver 1.32 reports it.
pub fn version() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": concat!("v1.32.0-tugboat.", env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if cfg!(target_arch = "x86_64") { "amd64" } else { std::env::consts::ARCH }),
    })
}

fn discovery_answer(
    state: &ApiState,
    method: &Method,
    headers: &HeaderMap,
    path: &ApiPath,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::HEAD {
        return Err(status::method_not_allowed_on_path().into());
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let aggregated = discovery::wants_aggregated(accept);
    let encode = |value: Result<Value, serde_json::Error>| {
        value.map_err(|err| ApiError::internal("cannot encode discovery", &err))
    };
    let d = &state.discovery;
    let response = match path {
        ApiPath::CoreVersions if aggregated => {
            aggregated_response(encode(serde_json::to_value(d.aggregated_core()))?)
        }
        ApiPath::Groups if aggregated => {
            aggregated_response(encode(serde_json::to_value(d.aggregated_groups()))?)
        }
        ApiPath::CoreVersions => {
            let mut body = encode(serde_json::to_value(d.api_versions(&state.advertise)))?;
            body["kind"] = json!("APIVersions");
            json_response(StatusCode::OK, &body)
        }
        ApiPath::Groups => {
            let mut body = encode(serde_json::to_value(d.api_group_list()))?;
            body["kind"] = json!("APIGroupList");
            body["apiVersion"] = json!("v1");
            json_response(StatusCode::OK, &body)
        }
        ApiPath::Group(group) => {
            let group = d
                .api_group(group)
                .ok_or_else(|| ApiError::from(status::resource_not_served()))?;
            let mut body = encode(serde_json::to_value(group))?;
            body["kind"] = json!("APIGroup");
            body["apiVersion"] = json!("v1");
            json_response(StatusCode::OK, &body)
        }
        ApiPath::GroupVersion { group, version } => {
            let list = d
                .resource_list(group, version)
                .ok_or_else(|| ApiError::from(status::resource_not_served()))?;
            let mut body = encode(serde_json::to_value(list))?;
            body["kind"] = json!("APIResourceList");
            body["apiVersion"] = json!("v1");
            json_response(StatusCode::OK, &body)
        }
        ApiPath::Resource(_) => return Err(status::resource_not_served().into()),
    };
    Ok(response)
}

fn aggregated_response(body: Value) -> Response {
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, discovery::AGGREGATED_CONTENT_TYPE)],
        bytes,
    )
        .into_response()
}
