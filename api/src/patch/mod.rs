//! The three patch formats of the Kubernetes API, over `serde_json::Value`.
//!
//! - [`apply_json_patch`]: RFC 6902 JSON patch (`application/json-patch+json`), sent by
//!   `kubectl rollout undo`.
//! - [`apply_merge_patch`]: RFC 7386 JSON merge patch (`application/merge-patch+json`), sent by
//!   `kubectl scale` and `kubectl label`.
//! - [`apply_strategic_merge_patch`]: Kubernetes' strategic merge patch
//!   (`application/strategic-merge-patch+json`), sent by client-side `kubectl apply`, `edit`,
//!   `set image` and `rollout restart|pause|resume`. It follows
//!   `k8s.io/apimachinery/pkg/util/strategicpatch` and needs per-type metadata from [`schema`].
//! - [`create_two_way_merge_patch`] and [`create_three_way_merge_patch`] compute strategic merge
//!   patches the way kubectl does for client-side apply.

mod diff;
mod json;
pub mod schema;
mod strategic;

pub use diff::{create_three_way_merge_patch, create_two_way_merge_patch};
pub use json::{
    JsonPatchLimits, apply_json_patch, apply_json_patch_with_limits, apply_merge_patch,
};
pub use schema::{Field, PatchStrategy, Schema, SchemaRef, schema_for};
pub use strategic::apply_strategic_merge_patch;

use serde_json::Value;

/// Why a patch could not be applied (or computed).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatchError {
    /// The original document or the patch is not a JSON object where one is required.
    #[error("the {0} must be a JSON object")]
    NotAnObject(&'static str),
    /// A JSON patch is not a list.
    #[error("a JSON patch must be a list of operations")]
    JsonPatchNotAList,
    /// A JSON patch operation is malformed or cannot be carried out.
    #[error("invalid JSON patch: {0}")]
    InvalidJsonPatch(String),
    /// A JSON pointer in a JSON patch is malformed.
    #[error("invalid JSON pointer {0:?}")]
    InvalidPointer(String),
    /// A JSON patch has more operations than allowed.
    #[error("the JSON patch has {count} operations, more than the limit of {limit}")]
    TooManyOperations {
        /// Operations in the patch.
        count: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The `copy` operations of a JSON patch would grow the document by more than allowed.
    #[error("the JSON patch copies more than {limit} bytes")]
    CopyLimitExceeded {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A JSON patch operation refers to a location that does not exist.
    #[error("the JSON patch refers to {path:?}, which does not exist")]
    PathNotFound {
        /// The JSON pointer.
        path: String,
    },
    /// A JSON patch `test` operation found a different value.
    #[error("the JSON patch test at {path:?} failed")]
    TestFailed {
        /// The JSON pointer of the test.
        path: String,
    },
    /// A `$patch` directive has a value other than `replace`, `delete` (or `merge` in a list).
    #[error("unknown patch type: {0}")]
    UnknownDirective(String),
    /// `$patch: merge` inside a list, which upstream rejects too.
    #[error("merging lists cannot yet be specified in the patch")]
    MergeDirectiveInList,
    /// An item of a list merged by key lacks the key.
    #[error("map: {item} does not contain declared merge key: {key}")]
    MissingMergeKey {
        /// The declared merge key.
        key: String,
        /// The offending item, as JSON.
        item: String,
    },
    /// A list with the merge strategy holds objects but declares no merge key.
    #[error("cannot merge lists without merge key for {0}")]
    MergeWithoutKey(&'static str),
    /// A merged list holds lists.
    #[error("lists of lists are not supported")]
    ListOfLists,
    /// A merged list mixes items of different JSON types.
    #[error("list element types are not identical")]
    MixedListElements,
    /// A value has another JSON type than the patch format requires there.
    #[error("expected a {expected}, but received a {found}")]
    TypeMismatch {
        /// The required JSON type.
        expected: &'static str,
        /// The JSON type found.
        found: &'static str,
    },
    /// A `$deleteFromPrimitiveList/<field>` key is malformed.
    #[error("invalid patch format of primitive list")]
    BadPrimitiveListFormat,
    /// A `$retainKeys` directive is not a list, or the patch sets a key it does not retain.
    #[error("invalid patch format of retainKeys")]
    BadRetainKeysFormat,
    /// A `$setElementOrder/<field>` directive is malformed.
    #[error("invalid patch format of setElementOrder list")]
    BadSetElementOrderFormat,
    /// The items of a patch list are not in the order its `$setElementOrder` list gives.
    #[error("the order in the patch list doesn't match the $setElementOrder list")]
    SetElementOrderMismatch,
    /// Two patches being combined carry different `$retainKeys` lists.
    #[error("conflicting $retainKeys lists")]
    RetainKeysMismatch,
    /// The kind has no strategic-merge-patch metadata (for example a custom resource).
    #[error("strategic merge patch format is not supported")]
    StrategicMergeUnsupported,
}

impl PatchError {
    /// The HTTP status the API server should answer with, following upstream's patch handler:
    /// 400 for a malformed patch document, 413 for too many JSON patch operations, 415 for a
    /// strategic merge patch of a kind without metadata, and 422 for a patch that cannot be
    /// applied to this object. (Upstream answers 500 for some strategic-merge-patch errors that
    /// are the client's fault; those get 422 here.)
    pub fn status_code(&self) -> u16 {
        match self {
            PatchError::NotAnObject(_)
            | PatchError::JsonPatchNotAList
            | PatchError::UnknownDirective(_)
            | PatchError::MergeDirectiveInList
            | PatchError::BadPrimitiveListFormat
            | PatchError::BadRetainKeysFormat
            | PatchError::BadSetElementOrderFormat
            | PatchError::SetElementOrderMismatch
            | PatchError::RetainKeysMismatch => 400,
            PatchError::TooManyOperations { .. } => 413,
            PatchError::StrategicMergeUnsupported => 415,
            PatchError::InvalidJsonPatch(_)
            | PatchError::InvalidPointer(_)
            | PatchError::CopyLimitExceeded { .. }
            | PatchError::PathNotFound { .. }
            | PatchError::TestFailed { .. }
            | PatchError::MissingMergeKey { .. }
            | PatchError::MergeWithoutKey(_)
            | PatchError::ListOfLists
            | PatchError::MixedListElements
            | PatchError::TypeMismatch { .. } => 422,
        }
    }
}

/// The result type of this module.
pub type Result<T, E = PatchError> = std::result::Result<T, E>;

/// A patch format, as named by the request's `Content-Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/json-patch+json`.
    Json,
    /// `application/merge-patch+json`.
    Merge,
    /// `application/strategic-merge-patch+json`.
    StrategicMerge,
}

impl PatchKind {
    /// The patch format of a `Content-Type` header value (parameters are ignored), or `None`
    /// for types that are not one of these three (such as server-side apply).
    pub fn from_content_type(content_type: &str) -> Option<PatchKind> {
        let media_type = content_type.split(';').next().unwrap_or_default().trim();
        match media_type.to_ascii_lowercase().as_str() {
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/strategic-merge-patch+json" => Some(PatchKind::StrategicMerge),
            _ => None,
        }
    }
}

/// Applies a patch of the given format to `original`. `schema` is the kind's metadata from
/// [`schema_for`]; a strategic merge patch without it fails with
/// [`PatchError::StrategicMergeUnsupported`], as upstream does for custom resources.
pub fn apply_patch(
    kind: PatchKind,
    original: &Value,
    patch: &Value,
    schema: Option<SchemaRef>,
) -> Result<Value> {
    match kind {
        PatchKind::Json => apply_json_patch(original, patch),
        PatchKind::Merge => Ok(apply_merge_patch(original, patch)),
        PatchKind::StrategicMerge => {
            let schema = schema.ok_or(PatchError::StrategicMergeUnsupported)?;
            apply_strategic_merge_patch(original, patch, schema)
        }
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "map",
    }
}

#[cfg(test)]
mod tests;
