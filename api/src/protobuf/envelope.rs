//! The Kubernetes protobuf envelope: `k8s\0` followed by a `runtime.Unknown`.
//!
//! Layout from apimachinery `pkg/runtime/serializer/protobuf/protobuf.go`:
//! `Unknown{typeMeta = 1 {apiVersion = 1, kind = 2}, raw = 2, contentEncoding = 3,
//! contentType = 4}`, where `raw` is the object's own protobuf.

use super::MAGIC;
use super::error::ProtobufError;
use super::wire::{FieldReader, WireValue};

const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
const TYPE_META: &str = "k8s.io.apimachinery.pkg.runtime.TypeMeta";

/// A parsed envelope; `raw` borrows from the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope<'a> {
    /// `typeMeta.apiVersion`, e.g. `apps/v1`; may be empty.
    pub api_version: String,
    /// `typeMeta.kind`, e.g. `Deployment`; may be empty.
    pub kind: String,
    /// The object's protobuf bytes.
    pub raw: &'a [u8],
    /// `contentEncoding`; empty from every upstream client.
    pub content_encoding: String,
    /// `contentType`; empty means protobuf.
    pub content_type: String,
}

/// Splits a protobuf request body into its type information and the object's bytes.
pub fn parse_envelope(body: &[u8]) -> Result<Envelope<'_>, ProtobufError> {
    let Some(unknown) = body.strip_prefix(MAGIC.as_slice()) else {
        return Err(ProtobufError::MissingMagic);
    };
    if unknown.is_empty() {
        return Err(ProtobufError::EmptyBody);
    }
    let mut envelope = Envelope {
        api_version: String::new(),
        kind: String::new(),
        raw: &[],
        content_encoding: String::new(),
        content_type: String::new(),
    };
    let mut reader = FieldReader::new(unknown, UNKNOWN);
    while let Some((number, wire)) = reader.next_field()? {
        let bytes = match wire {
            WireValue::LengthDelimited(bytes) => bytes,
            _ if number <= 4 => {
                return Err(ProtobufError::WireTypeMismatch {
                    message: UNKNOWN,
                    field: UNKNOWN_FIELDS[(number - 1) as usize],
                    wire_type: wire.wire_type(),
                });
            }
            _ => continue,
        };
        match number {
            1 => parse_type_meta(bytes, &mut envelope)?,
            2 => envelope.raw = bytes,
            3 => envelope.content_encoding = lossy(bytes),
            4 => envelope.content_type = lossy(bytes),
            _ => {}
        }
    }
    Ok(envelope)
}

const UNKNOWN_FIELDS: [&str; 4] = ["typeMeta", "raw", "contentEncoding", "contentType"];

fn parse_type_meta(bytes: &[u8], envelope: &mut Envelope<'_>) -> Result<(), ProtobufError> {
    let mut reader = FieldReader::new(bytes, TYPE_META);
    while let Some((number, wire)) = reader.next_field()? {
        let target = match number {
            1 => &mut envelope.api_version,
            2 => &mut envelope.kind,
            _ => continue,
        };
        let WireValue::LengthDelimited(text) = wire else {
            return Err(ProtobufError::WireTypeMismatch {
                message: TYPE_META,
                field: if number == 1 { "apiVersion" } else { "kind" },
                wire_type: wire.wire_type(),
            });
        };
        *target = lossy(text);
    }
    Ok(())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
