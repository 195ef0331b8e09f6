//! What a request asks for beyond its path: query parameters, the body's format, and the form
//! of the answer (plain object, Table, or PartialObjectMetadata).

use std::collections::HashMap;

use axum::http::{HeaderMap, Uri, header};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::Value;
use tugboat_api::fields::{FieldOperator, FieldSelector};
use tugboat_api::resources::ResourceInfo;
use tugboat_api::selector::Selector;

use crate::cache::CachedObject;
use crate::error::{ApiError, ApiResult};
use crate::objects;

/// The largest request body accepted (kube-apiserver's `MaxRequestBodyBytes`).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// The query parameters, as given.
#[derive(Debug, Default, Clone)]
pub struct Query(HashMap<String, String>);

impl Query {
    /// Parse the query string of `uri`.
    pub fn from_uri(uri: &Uri) -> ApiResult<Self> {
        let raw = uri.query().unwrap_or("");
        let pairs: Vec<(String, String)> = serde_urlencoded_pairs(raw)?;
        Ok(Query(pairs.into_iter().collect()))
    }

    /// A parameter's value, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, name: &str) -> bool {
        matches!(self.get(name), Some("true" | "1"))
    }

    /// A non-negative integer parameter.
    pub fn number(&self, name: &str) -> ApiResult<Option<i64>> {
        match self.get(name) {
            None | Some("") => Ok(None),
            Some(raw) => raw.parse::<i64>().map(Some).map_err(|_| {
                ApiError::bad_request(format!("invalid value for {name}: {raw:?} is not a number"))
            }),
        }
    }

    /// `dryRun=All`.
    pub fn dry_run(&self) -> ApiResult<bool> {
        match self.get("dryRun") {
            None | Some("") => Ok(false),
            Some("All") => Ok(true),
            Some(other) => Err(ApiError::bad_request(format!(
                "Invalid dry run value: {other:?}: supported values: \"All\""
            ))),
        }
    }

    /// `fieldValidation`: Strict, Warn (the default for kubectl is Strict) or Ignore.
    pub fn field_validation(&self) -> ApiResult<FieldValidation> {
        match self.get("fieldValidation") {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation {other:?} is invalid: valid values are Ignore, Warn, Strict"
            ))),
        }
    }
}

fn serde_urlencoded_pairs(raw: &str) -> ApiResult<Vec<(String, String)>> {
    let parsed: Result<Vec<(String, String)>, _> =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(
            &format!("/?{raw}")
                .parse::<Uri>()
                .map_err(|_| ApiError::bad_request("malformed query string"))?,
        )
        .map(|q| q.0);
    parsed.map_err(|err| ApiError::bad_request(format!("malformed query string: {err}")))
}

/// How strictly unknown and duplicate fields are treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Reject with 400.
    Strict,
    /// Accept, with a `Warning` header per problem.
    Warn,
    /// Accept silently.
    Ignore,
}

/// The selection a list, watch or deletecollection applies.
#[derive(Debug, Clone)]
pub struct Filter {
    /// Label selector.
    pub labels: Selector,
    /// Field selector.
    pub fields: FieldSelector,
    resource: &'static ResourceInfo,
    /// Per field requirement, its index in the resource's supported fields: where a
    /// [`CachedObject`] keeps its value.
    field_indexes: Vec<Option<usize>>,
}

impl Filter {
    /// The selectors of `query`, validated for `resource`.
    pub fn from_query(query: &Query, resource: &'static ResourceInfo) -> ApiResult<Self> {
        let labels = match query.get("labelSelector") {
            None | Some("") => Selector::everything(),
            Some(raw) => Selector::parse(raw).map_err(|err| {
                ApiError::bad_request(format!("unable to parse requirement: {err}"))
            })?,
        };
        let fields = match query.get("fieldSelector") {
            None | Some("") => FieldSelector::everything(),
            Some(raw) => {
                let fields = FieldSelector::parse(raw)
                    .map_err(|err| ApiError::bad_request(err.to_string()))?;
                fields
                    .validate_for(resource.group, resource.plural)
                    .map_err(|err| ApiError::bad_request(err.to_string()))?;
                fields
            }
        };
        let supported = tugboat_api::fields::supported_fields(resource.group, resource.plural);
        let field_indexes = fields
            .requirements()
            .iter()
            .map(|r| supported.iter().position(|f| *f == r.field))
            .collect();
        Ok(Filter {
            labels,
            fields,
            resource,
            field_indexes,
        })
    }

    /// Whether a cached object is selected: [`Filter::matches`] over its projection, without
    /// decoding it.
    pub fn matches_cached(&self, obj: &CachedObject) -> bool {
        (self.labels.is_everything() || self.labels.matches(&obj.labels()))
            && self
                .fields
                .requirements()
                .iter()
                .zip(&self.field_indexes)
                .all(|(requirement, index)| {
                    let Some(actual) = index.and_then(|i| obj.field(i)) else {
                        return false;
                    };
                    match requirement.operator {
                        FieldOperator::Equals => actual == requirement.value,
                        FieldOperator::NotEquals => actual != requirement.value,
                    }
                })
    }

    /// Whether `obj` is selected.
    pub fn matches(&self, obj: &Value) -> bool {
        (self.labels.is_everything() || self.labels.matches(&objects::labels(obj)))
            && (self.fields.is_empty()
                || self
                    .fields
                    .matches(self.resource.group, self.resource.plural, obj))
    }

    /// The object name an exact `metadata.name=` field selector asks for.
    pub fn exact_name(&self) -> Option<&str> {
        self.fields.exact_match("metadata.name")
    }
}

/// The body formats this server reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// JSON (also what a request with no Content-Type is read as).
    Json,
    /// YAML.
    Yaml,
    /// Kubernetes' protobuf envelope.
    Protobuf,
}

/// The format of the body from `Content-Type`.
pub fn body_format(headers: &HeaderMap) -> ApiResult<BodyFormat> {
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let media = content_type
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "" | "application/json" | "*/*" => Ok(BodyFormat::Json),
        "application/yaml" | "application/x-yaml" | "text/yaml" => Ok(BodyFormat::Yaml),
        "application/vnd.kubernetes.protobuf" => Ok(BodyFormat::Protobuf),
        _ => Err(tugboat_api::status::unsupported_media_type(&[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ])
        .into()),
    }
}

/// Decode a create or update body into a JSON object.
pub fn decode_object(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let value: Value = match body_format(headers)? {
        BodyFormat::Json => serde_json::from_slice(body).map_err(|err| {
            ApiError::bad_request(format!("the body of the request was in an unknown format - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf: {err}"))
        })?,
        BodyFormat::Yaml => tugboat_api::strict::yaml_to_json(body)
            .map_err(|err| ApiError::bad_request(format!("error converting YAML to JSON: {err}")))?,
        BodyFormat::Protobuf => tugboat_api::protobuf::decode_to_json(body).map_err(|err| ApiError::bad_request(err.to_string()))?,
    };
    if !value.is_object() {
        return Err(ApiError::bad_request(
            "the body of the request must be a JSON object",
        ));
    }
    Ok(value)
}

/// The form of the answer the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The object or list itself.
    Object,
    /// A `meta.k8s.io/v1` Table.
    Table,
    /// `PartialObjectMetadata` / `PartialObjectMetadataList`.
    Metadata,
}

/// What the `Accept` header prefers. Protobuf is never produced: clients accept JSON too.
pub fn answer_form(headers: &HeaderMap) -> Answer {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    // The first acceptable entry wins, as kube-apiserver's negotiation does.
    for entry in accept.split(',') {
        let params: Vec<&str> = entry.split(';').map(str::trim).collect();
        let media = params.first().copied().unwrap_or("");
        if !matches!(
            media,
            "application/json" | "*/*" | "application/vnd.kubernetes.protobuf" | "application/yaml"
        ) {
            continue;
        }
        let as_kind = params.iter().find_map(|p| p.strip_prefix("as="));
        let group = params.iter().find_map(|p| p.strip_prefix("g="));
        match (as_kind, group) {
            (Some("Table"), Some("meta.k8s.io")) => return Answer::Table,
            (Some("PartialObjectMetadata" | "PartialObjectMetadataList"), Some("meta.k8s.io")) => {
                return Answer::Metadata;
            }
            (None, _) => return Answer::Object,
            _ => continue,
        }
    }
    Answer::Object
}

/// The decoded `continue` token of a paginated list.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ContinueToken {
    /// Always `meta.k8s.io/v1`.
    pub v: String,
    /// The revision the list is read at.
    pub rv: i64,
    /// The key to continue from.
    pub start: String,
}

impl ContinueToken {
    /// Encode for the client.
    pub fn encode(&self) -> String {
        BASE64.encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Decode what a client sent back.
    pub fn decode(raw: &str) -> ApiResult<Self> {
        let invalid = || ApiError::bad_request(format!("continue key is not valid: {raw:?}"));
        let bytes = BASE64.decode(raw).map_err(|_| invalid())?;
        let token: ContinueToken = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if token.v != "meta.k8s.io/v1" || token.rv <= 0 {
            return Err(invalid());
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn accept(value: &str) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_str(value).unwrap());
        answer_form(&headers)
    }

    #[test]
    fn kubectl_get_asks_for_a_table() {
        assert_eq!(
            accept(
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
            ),
            Answer::Table
        );
        assert_eq!(
            accept("application/vnd.kubernetes.protobuf, application/json"),
            Answer::Object
        );
        assert_eq!(
            accept("application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"),
            Answer::Metadata
        );
        assert_eq!(accept(""), Answer::Object);
        // An unknown `as=` is skipped for the next entry.
        assert_eq!(
            accept("application/json;as=Other;g=x,application/json"),
            Answer::Object
        );
    }

    #[test]
    fn continue_tokens_round_trip_and_reject_garbage() {
        let token = ContinueToken {
            v: "meta.k8s.io/v1".into(),
            rv: 42,
            start: "/registry/pods/default/b\0".into(),
        };
        assert_eq!(ContinueToken::decode(&token.encode()).unwrap(), token);
        assert!(ContinueToken::decode("not base64!").is_err());
        assert!(ContinueToken::decode(&BASE64.encode(b"{}")).is_err());
    }

    #[test]
    fn content_types() {
        let mut headers = HeaderMap::new();
        assert_eq!(body_format(&headers).unwrap(), BodyFormat::Json);
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/yaml; charset=utf-8"),
        );
        assert_eq!(body_format(&headers).unwrap(), BodyFormat::Yaml);
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
        assert_eq!(body_format(&headers).unwrap_err().code(), 415);
    }
}
