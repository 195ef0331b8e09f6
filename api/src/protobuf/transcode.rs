//! Schema-driven protobuf → JSON: one message at a time, following the generated schema.
//!
//! The output is what Go's `encoding/json` writes for the object the Go protobuf decoder
//! would build: JSON names and `omitempty` from the Go structs, inline embedded structs
//! flattened, `bytes` as base64, 64-bit integers as numbers, and the apimachinery types
//! (IntOrString, Quantity, Time, MicroTime, FieldsV1, RawExtension) in their own JSON forms.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde_json::{Map, Value};

use super::error::ProtobufError;
use super::schema_types::{Cardinality, Field, Form, Kind, Message};
use super::time::{Precision, format_rfc3339};
use super::wire::{FieldReader, WireValue, packed_varints};

/// Deeper than any Kubernetes object; bounds recursion on hostile input.
pub(crate) const MAX_DEPTH: usize = 100;

/// Decodes `bytes`, the wire form of `message`, into its JSON value.
pub(crate) fn message_to_json(
    bytes: &[u8],
    message: &'static Message,
    depth: usize,
) -> Result<Value, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep { limit: MAX_DEPTH });
    }
    match message.form {
        Form::Object => object_to_json(bytes, message, depth).map(Value::Object),
        Form::IntOrString => int_or_string(bytes, message),
        Form::Quantity => quantity(bytes, message),
        Form::Time => time(bytes, message, Precision::Seconds),
        Form::MicroTime => time(bytes, message, Precision::Micros),
        Form::FieldsV1 | Form::RawExtension => embedded_json(bytes, message, depth),
    }
}

/// Decodes an object-form message into its JSON fields.
pub(crate) fn object_to_json(
    bytes: &[u8],
    message: &'static Message,
    depth: usize,
) -> Result<Map<String, Value>, ProtobufError> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep { limit: MAX_DEPTH });
    }
    let mut object = Map::new();
    let mut reader = FieldReader::new(bytes, message.name);
    while let Some((number, wire)) = reader.next_field()? {
        // Unknown fields are skipped, as Go's generated decoders do.
        let Some(field) = message
            .fields
            .iter()
            .find(|field| u64::from(field.number) == number)
        else {
            continue;
        };
        match field.cardinality {
            Cardinality::Single if field.inline => {
                let inner = match (field.kind, wire) {
                    (Kind::Message(inner), WireValue::LengthDelimited(bytes)) => {
                        object_to_json(bytes, inner, depth + 1)?
                    }
                    _ => return Err(mismatch(message, field, wire)),
                };
                object.extend(inner);
            }
            Cardinality::Single => {
                let value = value_to_json(field.kind, wire, message, field, depth)?;
                insert_single(&mut object, field, value);
            }
            Cardinality::Repeated => {
                let values = repeated_to_json(field.kind, wire, message, field, depth)?;
                match object.get_mut(field.json_name) {
                    Some(Value::Array(existing)) => existing.extend(values),
                    _ => {
                        object.insert(field.json_name.to_owned(), Value::Array(values));
                    }
                }
            }
            Cardinality::Map => {
                let WireValue::LengthDelimited(entry) = wire else {
                    return Err(mismatch(message, field, wire));
                };
                let (key, value) = map_entry(entry, message, field, depth)?;
                match object.get_mut(field.json_name) {
                    Some(Value::Object(existing)) => {
                        existing.insert(key, value);
                    }
                    _ => {
                        object.insert(
                            field.json_name.to_owned(),
                            Value::Object(Map::from_iter([(key, value)])),
                        );
                    }
                }
            }
        }
    }
    Ok(object)
}

/// Stores a singular field: the last scalar wins and a repeated message merges into the
/// earlier one (proto semantics); Go's `omitempty` drops zero scalars of non-pointer fields.
fn insert_single(object: &mut Map<String, Value>, field: &Field, value: Value) {
    if field.omit_zero && is_zero(&value) {
        object.remove(field.json_name);
        return;
    }
    match (object.get_mut(field.json_name), value) {
        (Some(Value::Object(existing)), Value::Object(update)) => existing.extend(update),
        (_, value) => {
            object.insert(field.json_name.to_owned(), value);
        }
    }
}

fn is_zero(value: &Value) -> bool {
    match value {
        Value::Bool(flag) => !flag,
        Value::Number(number) => number.as_i64() == Some(0),
        Value::String(text) => text.is_empty(),
        _ => false,
    }
}

fn value_to_json(
    kind: Kind,
    wire: WireValue<'_>,
    message: &'static Message,
    field: &'static Field,
    depth: usize,
) -> Result<Value, ProtobufError> {
    // Integer casts below truncate exactly as Go's generated decoders do.
    match (kind, wire) {
        (Kind::Bool, WireValue::Varint(raw)) => Ok(Value::Bool(raw != 0)),
        (Kind::Int32, WireValue::Varint(raw)) => Ok(Value::from(raw as i32)),
        (Kind::Int64, WireValue::Varint(raw)) => Ok(Value::from(raw as i64)),
        // Go turns bytes into a string without validation; its JSON writer then replaces
        // invalid UTF-8 with U+FFFD, as the lossy conversion does.
        (Kind::String, WireValue::LengthDelimited(bytes)) => {
            Ok(Value::String(String::from_utf8_lossy(bytes).into_owned()))
        }
        (Kind::Bytes, WireValue::LengthDelimited(bytes)) => Ok(Value::String(BASE64.encode(bytes))),
        (Kind::Message(inner), WireValue::LengthDelimited(bytes)) => {
            message_to_json(bytes, inner, depth + 1)
        }
        _ => Err(mismatch(message, field, wire)),
    }
}

fn repeated_to_json(
    kind: Kind,
    wire: WireValue<'_>,
    message: &'static Message,
    field: &'static Field,
    depth: usize,
) -> Result<Vec<Value>, ProtobufError> {
    match (kind, wire) {
        // Numbers may come packed even in proto2; accept both encodings like Go does.
        (Kind::Bool | Kind::Int32 | Kind::Int64, WireValue::LengthDelimited(bytes)) => {
            packed_varints(bytes, message.name)?
                .into_iter()
                .map(|raw| value_to_json(kind, WireValue::Varint(raw), message, field, depth))
                .collect()
        }
        _ => Ok(vec![value_to_json(kind, wire, message, field, depth)?]),
    }
}

/// One `map<string, V>` entry: key = 1, value = 2; a missing part is its zero value.
fn map_entry(
    entry: &[u8],
    message: &'static Message,
    field: &'static Field,
    depth: usize,
) -> Result<(String, Value), ProtobufError> {
    let mut key = String::new();
    let mut value = None;
    let mut reader = FieldReader::new(entry, message.name);
    while let Some((number, wire)) = reader.next_field()? {
        match (number, wire) {
            (1, WireValue::LengthDelimited(bytes)) => {
                key = String::from_utf8_lossy(bytes).into_owned();
            }
            (1, _) => return Err(mismatch(message, field, wire)),
            (2, _) => value = Some(value_to_json(field.kind, wire, message, field, depth)?),
            _ => {}
        }
    }
    let value = match value {
        Some(value) => value,
        None => zero_value(field.kind, depth)?,
    };
    Ok((key, value))
}

fn zero_value(kind: Kind, depth: usize) -> Result<Value, ProtobufError> {
    Ok(match kind {
        Kind::Bool => Value::Bool(false),
        Kind::Int32 | Kind::Int64 => Value::from(0),
        Kind::String | Kind::Bytes => Value::String(String::new()),
        Kind::Message(inner) => message_to_json(&[], inner, depth + 1)?,
    })
}

fn mismatch(
    message: &'static Message,
    field: &'static Field,
    wire: WireValue<'_>,
) -> ProtobufError {
    let field = if field.inline {
        "(inline)"
    } else {
        field.json_name
    };
    ProtobufError::WireTypeMismatch {
        message: message.name,
        field,
        wire_type: wire.wire_type(),
    }
}

/// Reads a small message of varint and string fields by number, for the special forms.
fn read_simple_fields<'a>(
    bytes: &'a [u8],
    message: &'static Message,
) -> Result<Vec<(u64, WireValue<'a>)>, ProtobufError> {
    let mut fields = Vec::new();
    let mut reader = FieldReader::new(bytes, message.name);
    while let Some(field) = reader.next_field()? {
        fields.push(field);
    }
    Ok(fields)
}

/// `{type: 0, intVal}` → number, `{type: 1, strVal}` → string.
fn int_or_string(bytes: &[u8], message: &'static Message) -> Result<Value, ProtobufError> {
    let (mut type_value, mut int_value, mut str_value) = (0i64, 0i32, String::new());
    for (number, wire) in read_simple_fields(bytes, message)? {
        match (number, wire) {
            (1, WireValue::Varint(raw)) => type_value = raw as i64,
            (2, WireValue::Varint(raw)) => int_value = raw as i32,
            (3, WireValue::LengthDelimited(text)) => {
                str_value = String::from_utf8_lossy(text).into_owned();
            }
            (1..=3, _) => return Err(special_mismatch(message, number, wire)),
            _ => {}
        }
    }
    match type_value {
        0 => Ok(Value::from(int_value)),
        1 => Ok(Value::String(str_value)),
        _ => Err(ProtobufError::InvalidIntOrString { type_value }),
    }
}

/// `{string: "500m"}` → `"500m"`; the zero Quantity is `"0"` in Go's JSON.
fn quantity(bytes: &[u8], message: &'static Message) -> Result<Value, ProtobufError> {
    let mut text = String::new();
    for (number, wire) in read_simple_fields(bytes, message)? {
        match (number, wire) {
            (1, WireValue::LengthDelimited(raw)) => {
                text = String::from_utf8_lossy(raw).into_owned()
            }
            (1, _) => return Err(special_mismatch(message, number, wire)),
            _ => {}
        }
    }
    if text.is_empty() {
        text.push('0');
    }
    Ok(Value::String(text))
}

/// `{seconds, nanos}` → RFC 3339; an empty message is Go's zero time, `null` in JSON.
fn time(
    bytes: &[u8],
    message: &'static Message,
    precision: Precision,
) -> Result<Value, ProtobufError> {
    if bytes.is_empty() {
        return Ok(Value::Null);
    }
    let (mut seconds, mut nanos) = (0i64, 0i64);
    for (number, wire) in read_simple_fields(bytes, message)? {
        match (number, wire) {
            (1, WireValue::Varint(raw)) => seconds = raw as i64,
            (2, WireValue::Varint(raw)) => nanos = i64::from(raw as i32),
            (1 | 2, _) => return Err(special_mismatch(message, number, wire)),
            _ => {}
        }
    }
    format_rfc3339(seconds, nanos, precision).map(Value::String)
}

/// `FieldsV1{Raw}` and `RawExtension{raw}` carry JSON bytes that Go writes out verbatim; a
/// RawExtension may also hold a nested `k8s\0` protobuf object.
fn embedded_json(
    bytes: &[u8],
    message: &'static Message,
    depth: usize,
) -> Result<Value, ProtobufError> {
    let mut raw: &[u8] = &[];
    for (number, wire) in read_simple_fields(bytes, message)? {
        match (number, wire) {
            (1, WireValue::LengthDelimited(data)) => raw = data,
            (1, _) => return Err(special_mismatch(message, number, wire)),
            _ => {}
        }
    }
    if raw.is_empty() {
        return Ok(Value::Null);
    }
    if message.form == Form::RawExtension && raw.starts_with(super::MAGIC) {
        return super::decode_nested(raw, depth + 1);
    }
    serde_json::from_slice(raw).map_err(|error| ProtobufError::InvalidEmbeddedJson {
        message: message.name,
        reason: error.to_string(),
    })
}

fn special_mismatch(message: &'static Message, number: u64, wire: WireValue<'_>) -> ProtobufError {
    let field = message
        .fields
        .iter()
        .find(|field| u64::from(field.number) == number)
        .map_or("?", |field| field.json_name);
    ProtobufError::WireTypeMismatch {
        message: message.name,
        field,
        wire_type: wire.wire_type(),
    }
}
