//! Field errors worded as apimachinery's `field.Error` words them.

use std::fmt;

use serde_json::Value;

/// Machine-readable reason of a field error; the names are the Status cause `reason`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    /// A required field is missing or empty.
    FieldValueRequired,
    /// A value is malformed or out of range.
    FieldValueInvalid,
    /// A value is not one of an enumeration.
    FieldValueNotSupported,
    /// A value that must be unique is repeated.
    FieldValueDuplicate,
    /// A value is well-formed but not allowed here (for example an immutable field changed).
    FieldValueForbidden,
    /// A value is too long.
    FieldValueTooLong,
    /// A value has the wrong JSON type for its field.
    FieldValueTypeInvalid,
    /// A referenced item does not exist (e.g. a volume mount naming no volume).
    FieldValueNotFound,
}

impl ErrorReason {
    /// The reason as it appears in a Status cause.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FieldValueRequired => "FieldValueRequired",
            Self::FieldValueInvalid => "FieldValueInvalid",
            Self::FieldValueNotSupported => "FieldValueNotSupported",
            Self::FieldValueDuplicate => "FieldValueDuplicate",
            Self::FieldValueForbidden => "FieldValueForbidden",
            Self::FieldValueTooLong => "FieldValueTooLong",
            Self::FieldValueTypeInvalid => "FieldValueTypeInvalid",
            Self::FieldValueNotFound => "FieldValueNotFound",
        }
    }
}

/// One validation failure: the Status cause `{reason, message, field}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.template.spec.containers[0].name`.
    pub field: String,
    /// Why it failed.
    pub reason: ErrorReason,
    /// Upstream's error body, e.g. `Invalid value: -1: must be greater than or equal to 0`.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A rejected value, rendered as Go's `field.Error` renders `BadValue`.
#[derive(Debug, Clone, PartialEq)]
pub enum BadValue {
    /// A string, rendered quoted (`"abc"`).
    Str(String),
    /// A number or boolean, rendered bare (`-1`).
    Plain(String),
    /// A composite value, rendered as Go's `%#v` would (e.g. `map[string]string{"a":"b"}`).
    Go(String),
}

impl From<&str> for BadValue {
    fn from(value: &str) -> Self {
        Self::Str(value.to_owned())
    }
}

impl From<&String> for BadValue {
    fn from(value: &String) -> Self {
        Self::Str(value.clone())
    }
}

impl From<i64> for BadValue {
    fn from(value: i64) -> Self {
        Self::Plain(value.to_string())
    }
}

impl From<&Value> for BadValue {
    fn from(value: &Value) -> Self {
        match value {
            Value::String(s) => Self::Str(s.clone()),
            Value::Number(_) | Value::Bool(_) => Self::Plain(value.to_string()),
            Value::Null => Self::Plain("null".to_owned()),
            Value::Object(_) | Value::Array(_) => Self::Go(value.to_string()),
        }
    }
}

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Str(s) => write!(f, "{}", go_quote(s)),
            Self::Plain(s) | Self::Go(s) => f.write_str(s),
        }
    }
}

/// Quotes like Go's `%q`: ASCII escapes, printable Unicode kept.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Renders a string map as Go's `%#v` of `map[string]string` (keys sorted).
pub(crate) fn go_string_map(map: &serde_json::Map<String, Value>) -> String {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort_by(|a, b| a.0.cmp(b.0));
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| {
            let v = v.as_str().map_or_else(|| v.to_string(), go_quote);
            format!("{}:{}", go_quote(k), v)
        })
        .collect();
    format!("map[string]string{{{}}}", body.join(", "))
}

impl FieldError {
    fn new(field: impl AsRef<str>, reason: ErrorReason, message: String) -> Self {
        Self {
            field: field.as_ref().to_owned(),
            reason,
            message,
        }
    }

    /// `Required value`, with an optional detail.
    pub fn required(field: impl AsRef<str>, detail: &str) -> Self {
        Self::new(
            field,
            ErrorReason::FieldValueRequired,
            with_detail("Required value".to_owned(), detail),
        )
    }

    /// `Invalid value: <value>: <detail>`.
    pub fn invalid(field: impl AsRef<str>, value: impl Into<BadValue>, detail: &str) -> Self {
        Self::new(
            field,
            ErrorReason::FieldValueInvalid,
            with_detail(format!("Invalid value: {}", value.into()), detail),
        )
    }

    /// `Unsupported value: <value>: supported values: "A", "B"`.
    pub fn not_supported(
        field: impl AsRef<str>,
        value: impl Into<BadValue>,
        supported: &[&str],
    ) -> Self {
        let detail = if supported.is_empty() {
            String::new()
        } else {
            let quoted: Vec<String> = supported.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", quoted.join(", "))
        };
        Self::new(
            field,
            ErrorReason::FieldValueNotSupported,
            with_detail(format!("Unsupported value: {}", value.into()), &detail),
        )
    }

    /// `Duplicate value: <value>`.
    pub fn duplicate(field: impl AsRef<str>, value: impl Into<BadValue>) -> Self {
        Self::new(
            field,
            ErrorReason::FieldValueDuplicate,
            format!("Duplicate value: {}", value.into()),
        )
    }

    /// `Forbidden: <detail>`.
    pub fn forbidden(field: impl AsRef<str>, detail: &str) -> Self {
        Self::new(
            field,
            ErrorReason::FieldValueForbidden,
            with_detail("Forbidden".to_owned(), detail),
        )
    }

    /// `Too long: may not be more than <max> bytes`.
    pub fn too_long(field: impl AsRef<str>, max_bytes: usize) -> Self {
        Self::new(
            field,
            ErrorReason::FieldValueTooLong,
            format!("Too long: may not be more than {max_bytes} bytes"),
        )
    }

    /// `Not found: <value>`.
    pub fn not_found(field: impl AsRef<str>, value: impl Into<BadValue>) -> Self {
        Self::new(
            field,
            ErrorReason::FieldValueNotFound,
            format!("Not found: {}", value.into()),
        )
    }

    /// `Invalid value: <value>: <detail>` for a value of the wrong JSON type.
    pub fn type_invalid(field: impl AsRef<str>, value: impl Into<BadValue>, detail: &str) -> Self {
        Self::new(
            field,
            ErrorReason::FieldValueTypeInvalid,
            with_detail(format!("Invalid value: {}", value.into()), detail),
        )
    }
}

fn with_detail(mut body: String, detail: &str) -> String {
    if !detail.is_empty() {
        body.push_str(": ");
        body.push_str(detail);
    }
    body
}

/// The Status message kube-apiserver sends with a 422: `Deployment.apps "web" is invalid: ...`,
/// listing several errors as `[a, b]` (identical messages once).
pub fn invalid_object_message(
    group: &str,
    kind: &str,
    name: &str,
    errors: &[FieldError],
) -> String {
    let qualified_kind = if group.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}.{group}")
    };
    let mut messages: Vec<String> = Vec::new();
    for error in errors {
        let message = error.to_string();
        if !messages.contains(&message) {
            messages.push(message);
        }
    }
    let aggregate = match messages.as_slice() {
        [single] => single.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    format!(
        "{qualified_kind} {} is invalid: {aggregate}",
        go_quote(name)
    )
}
