//! Errors of protobuf body decoding.

/// Why a protobuf request body could not be turned into JSON.
///
/// [`ProtobufError::UnsupportedKind`] means the body is well formed but names a kind Tugboat
/// cannot decode from protobuf (the server answers 415, so a client may retry with JSON); every
/// other variant means the body is malformed (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    /// The body does not start with the `k8s\0` magic of Kubernetes protobuf.
    #[error("provided data does not appear to be a protobuf message, expected prefix \"k8s\\x00\"")]
    MissingMagic,
    /// The body is the magic alone.
    #[error("empty protobuf body")]
    EmptyBody,
    /// A length, varint or fixed-width value runs past the end of its message.
    #[error("truncated protobuf data in {message}")]
    Truncated {
        /// Proto name of the message being read.
        message: &'static str,
    },
    /// A varint longer than 10 bytes.
    #[error("malformed varint in {message}")]
    MalformedVarint {
        /// Proto name of the message being read.
        message: &'static str,
    },
    /// A field key with field number 0 or an unknown wire type (groups included).
    #[error("invalid field key in {message}: field {field}, wire type {wire_type}")]
    InvalidKey {
        /// Proto name of the message being read.
        message: &'static str,
        /// Field number from the key.
        field: u64,
        /// Wire type from the key.
        wire_type: u8,
    },
    /// A known field arrived with a wire type that does not match its declared type.
    #[error("field {field} of {message} has wire type {wire_type}, which does not match its type")]
    WireTypeMismatch {
        /// Proto name of the message being read.
        message: &'static str,
        /// JSON name of the field.
        field: &'static str,
        /// Wire type that arrived.
        wire_type: u8,
    },
    /// An `IntOrString` whose `type` is neither 0 (int) nor 1 (string).
    #[error("IntOrString has unknown type {type_value}")]
    InvalidIntOrString {
        /// The `type` that arrived.
        type_value: i64,
    },
    /// Embedded JSON (`FieldsV1`, `RawExtension`) that does not parse.
    #[error("embedded JSON in {message} is invalid: {reason}")]
    InvalidEmbeddedJson {
        /// Proto name of the message holding the JSON.
        message: &'static str,
        /// Parser message.
        reason: String,
    },
    /// A time outside the years 0000..=9999, which RFC 3339 (and Go's JSON) cannot express.
    #[error("time {seconds}s is outside the years 0000-9999")]
    TimeOutOfRange {
        /// Seconds since the Unix epoch.
        seconds: i64,
    },
    /// Nesting deeper than any Kubernetes object needs (guards against hostile input).
    #[error("protobuf message nested deeper than {limit} levels")]
    TooDeep {
        /// The nesting limit.
        limit: usize,
    },
    /// The envelope has no `typeMeta.kind` or `typeMeta.apiVersion`.
    #[error("protobuf envelope does not name its apiVersion and kind")]
    MissingTypeMeta,
    /// The envelope's `contentEncoding` is set (upstream clients never set it).
    #[error("unsupported protobuf content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    /// A kind Tugboat does not decode from protobuf.
    #[error("protobuf is not supported for {api_version}, Kind={kind}; send JSON")]
    UnsupportedKind {
        /// apiVersion from the envelope.
        api_version: String,
        /// kind from the envelope.
        kind: String,
    },
}

impl ProtobufError {
    /// True when the body is well formed but its kind is not decodable from protobuf: the
    /// server answers 415 Unsupported Media Type rather than 400 Bad Request.
    #[must_use]
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            Self::UnsupportedKind { .. } | Self::UnsupportedContentEncoding(_)
        )
    }
}
