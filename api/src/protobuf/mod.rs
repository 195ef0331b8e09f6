//! Kubernetes protobuf request bodies (`application/vnd.kubernetes.protobuf`) decoded to JSON.
//!
//! kubectl ≥ 1.32 sends protobuf for typed-client writes (`create deployment|configmap|…`,
//! `autoscale`, …) and treats a 415 as fatal. The server stores JSON, so [`decode_to_json`]
//! turns such a body into exactly the JSON the same client would have sent: the rest of the
//! server then handles it like any JSON body.
//!
//! Decoding is driven by a generated wire schema (`schema.rs`, made by
//! `scripts/gen-proto-schema.py` from the Kubernetes 1.32 `generated.proto` and `types.go`
//! files) of the kinds in [`supported_kinds`]; no code is written per type.
//!
//! Server use: when [`is_protobuf_content_type`] holds for a write's `Content-Type`, call
//! [`decode_to_json_with_defaults`] with the endpoint's apiVersion and kind and continue with
//! the JSON; answer 415 when [`ProtobufError::is_unsupported`] holds, 400 otherwise. Replies
//! can stay JSON: client-go accepts them for protobuf requests.
//!
//! Go JSON fidelity: names, `omitempty` on non-pointer scalars (so `replicas: 0` survives
//! and `hostNetwork: false` does not appear), inline structs, `creationTimestamp: null` all
//! match `kubectl --dry-run=client -o json`. One known difference: a nil slice or map that Go
//! would print as `null` (no `omitempty`) is absent here, which every decoder treats alike.

mod envelope;
mod error;
mod schema;
mod schema_types;
mod time;
mod transcode;
mod wire;

#[cfg(test)]
mod tests;

use serde_json::Value;

pub use envelope::{Envelope, parse_envelope};
pub use error::ProtobufError;

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The four bytes every Kubernetes protobuf body starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

/// Whether a `Content-Type` header value names Kubernetes protobuf (parameters and case
/// ignored), so the server routes the body to [`decode_to_json`] instead of answering 415.
#[must_use]
pub fn is_protobuf_content_type(content_type: &str) -> bool {
    let media_type = content_type.split(';').next().unwrap_or_default().trim();
    media_type.eq_ignore_ascii_case(CONTENT_TYPE)
}

/// Decodes a protobuf request body into the JSON object the client would have sent as JSON,
/// with `apiVersion` and `kind` taken from the envelope.
pub fn decode_to_json(body: &[u8]) -> Result<Value, ProtobufError> {
    decode_to_json_with_defaults(body, "", "")
}

/// Like [`decode_to_json`], but an envelope without `apiVersion` or `kind` takes them from
/// the request path (the apiserver does the same with the endpoint's kind).
pub fn decode_to_json_with_defaults(
    body: &[u8],
    default_api_version: &str,
    default_kind: &str,
) -> Result<Value, ProtobufError> {
    let envelope = parse_envelope(body)?;
    decode_envelope(&envelope, default_api_version, default_kind, 0)
}

/// Whether [`decode_to_json`] can decode objects of this apiVersion and kind.
#[must_use]
pub fn is_supported(api_version: &str, kind: &str) -> bool {
    find_kind(api_version, kind).is_some()
}

/// Every `(apiVersion, kind)` that [`decode_to_json`] decodes.
pub fn supported_kinds() -> impl Iterator<Item = (&'static str, &'static str)> {
    schema::KINDS
        .iter()
        .map(|(api_version, kind, _)| (*api_version, *kind))
}

fn find_kind(api_version: &str, kind: &str) -> Option<&'static schema_types::Message> {
    schema::KINDS
        .iter()
        .find(|(known_version, known_kind, _)| *known_version == api_version && *known_kind == kind)
        .map(|(_, _, message)| *message)
}

fn decode_envelope(
    envelope: &Envelope<'_>,
    default_api_version: &str,
    default_kind: &str,
    depth: usize,
) -> Result<Value, ProtobufError> {
    if !envelope.content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedContentEncoding(
            envelope.content_encoding.clone(),
        ));
    }
    let api_version = if envelope.api_version.is_empty() {
        default_api_version
    } else {
        &envelope.api_version
    };
    let kind = if envelope.kind.is_empty() {
        default_kind
    } else {
        &envelope.kind
    };
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let message = find_kind(api_version, kind).ok_or_else(|| ProtobufError::UnsupportedKind {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
    })?;
    let mut object = transcode::object_to_json(envelope.raw, message, depth)?;
    object.insert(
        "apiVersion".to_owned(),
        Value::String(api_version.to_owned()),
    );
    object.insert("kind".to_owned(), Value::String(kind.to_owned()));
    Ok(Value::Object(object))
}

/// A whole `k8s\0` body nested in a RawExtension.
fn decode_nested(body: &[u8], depth: usize) -> Result<Value, ProtobufError> {
    if depth > transcode::MAX_DEPTH {
        return Err(ProtobufError::TooDeep {
            limit: transcode::MAX_DEPTH,
        });
    }
    decode_envelope(&parse_envelope(body)?, "", "", depth)
}
