//! RFC 6902 JSON patch and RFC 7386 JSON merge patch.
//!
//! JSON patch is implemented here rather than with the `json-patch` crate so that every failure
//! is one of our typed errors and so that `copy` amplification is bounded: a patch of a few
//! operations can otherwise copy a large subtree over and over.

use serde_json::{Map, Value};

use super::{PatchError, Result};

/// Bounds on the work a JSON patch may cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JsonPatchLimits {
    /// Most operations in one patch (upstream's API server allows 10 000).
    pub max_operations: usize,
    /// Most bytes (as compact JSON) that `copy` operations may add to the document in total.
    pub max_copied_bytes: usize,
}

impl Default for JsonPatchLimits {
    fn default() -> Self {
        // Objects are at most ~1.5 MiB in etcd; twice that leaves room for legitimate copies.
        JsonPatchLimits {
            max_operations: 10_000,
            max_copied_bytes: 3 * 1024 * 1024,
        }
    }
}

/// Applies an RFC 6902 JSON patch (a list of operations) with the default limits. The patch is
/// atomic: on any error nothing is applied.
pub fn apply_json_patch(document: &Value, patch: &Value) -> Result<Value> {
    apply_json_patch_with_limits(document, patch, JsonPatchLimits::default())
}

/// Applies an RFC 6902 JSON patch with explicit limits.
pub fn apply_json_patch_with_limits(
    document: &Value,
    patch: &Value,
    limits: JsonPatchLimits,
) -> Result<Value> {
    let Value::Array(operations) = patch else {
        return Err(PatchError::JsonPatchNotAList);
    };
    if operations.len() > limits.max_operations {
        return Err(PatchError::TooManyOperations {
            count: operations.len(),
            limit: limits.max_operations,
        });
    }
    let operations = operations
        .iter()
        .map(Operation::parse)
        .collect::<Result<Vec<_>>>()?;
    let mut document = document.clone();
    let mut copy_budget = limits.max_copied_bytes;
    for operation in operations {
        operation.apply(&mut document, &mut copy_budget, limits.max_copied_bytes)?;
    }
    Ok(document)
}

/// One parsed JSON patch operation.
enum Operation<'a> {
    Add { path: Pointer, value: &'a Value },
    Remove { path: Pointer },
    Replace { path: Pointer, value: &'a Value },
    Move { from: Pointer, path: Pointer },
    Copy { from: Pointer, path: Pointer },
    Test { path: Pointer, value: &'a Value },
}

impl<'a> Operation<'a> {
    fn parse(operation: &'a Value) -> Result<Operation<'a>> {
        let Value::Object(fields) = operation else {
            return Err(PatchError::InvalidJsonPatch(
                "an operation must be an object".into(),
            ));
        };
        let op = string_member(fields, "op")?;
        let path = Pointer::parse(string_member(fields, "path")?)?;
        let value = || {
            fields.get("value").ok_or_else(|| {
                PatchError::InvalidJsonPatch(format!("operation {op:?} needs a \"value\""))
            })
        };
        let from = || Pointer::parse(string_member(fields, "from")?);
        Ok(match op {
            "add" => Operation::Add {
                path,
                value: value()?,
            },
            "remove" => Operation::Remove { path },
            "replace" => Operation::Replace {
                path,
                value: value()?,
            },
            "move" => Operation::Move {
                from: from()?,
                path,
            },
            "copy" => Operation::Copy {
                from: from()?,
                path,
            },
            "test" => Operation::Test {
                path,
                value: value()?,
            },
            other => {
                return Err(PatchError::InvalidJsonPatch(format!(
                    "unknown operation {other:?}"
                )));
            }
        })
    }

    fn apply(self, document: &mut Value, copy_budget: &mut usize, copy_limit: usize) -> Result<()> {
        match self {
            Operation::Add { path, value } => add(document, &path, value.clone()),
            Operation::Remove { path } => remove(document, &path).map(drop),
            Operation::Replace { path, value } => {
                *resolve_mut(document, &path)? = value.clone();
                Ok(())
            }
            Operation::Move { from, path } => {
                if from == path {
                    return Ok(());
                }
                if path.is_inside(&from) {
                    return Err(PatchError::InvalidJsonPatch(format!(
                        "cannot move {:?} into itself",
                        from.text
                    )));
                }
                let value = remove(document, &from)?;
                add(document, &path, value)
            }
            Operation::Copy { from, path } => {
                let value = resolve(document, &from)?.clone();
                let size = json_size_up_to(&value, *copy_budget)
                    .ok_or(PatchError::CopyLimitExceeded { limit: copy_limit })?;
                *copy_budget -= size;
                add(document, &path, value)
            }
            Operation::Test { path, value } => match resolve(document, &path) {
                Ok(found) if found == value => Ok(()),
                Ok(_) => Err(PatchError::TestFailed { path: path.text }),
                // Upstream's library (evanphx/json-patch) lets `null` match a missing key.
                Err(_) if value.is_null() && is_missing_object_key(document, &path) => Ok(()),
                Err(error) => Err(error),
            },
        }
    }
}

/// Whether `pointer` names a key that is absent from an object that exists.
fn is_missing_object_key(document: &Value, pointer: &Pointer) -> bool {
    let Some((parent, last)) = pointer.split_last() else {
        return false;
    };
    let parent_pointer = Pointer {
        text: String::new(),
        tokens: parent.to_vec(),
    };
    matches!(resolve(document, &parent_pointer), Ok(Value::Object(map)) if !map.contains_key(last))
}

fn string_member<'a>(fields: &'a Map<String, Value>, name: &str) -> Result<&'a str> {
    fields.get(name).and_then(Value::as_str).ok_or_else(|| {
        PatchError::InvalidJsonPatch(format!("an operation needs a string {name:?} member"))
    })
}

/// A parsed RFC 6901 JSON pointer.
#[derive(Debug, PartialEq, Eq)]
struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    fn parse(text: &str) -> Result<Pointer> {
        if text.is_empty() {
            return Ok(Pointer {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(PatchError::InvalidPointer(text.to_owned()));
        };
        let tokens = rest
            .split('/')
            .map(|token| unescape(token).ok_or_else(|| PatchError::InvalidPointer(text.to_owned())))
            .collect::<Result<_>>()?;
        Ok(Pointer {
            text: text.to_owned(),
            tokens,
        })
    }

    /// Whether this pointer names a location strictly inside `other`.
    fn is_inside(&self, other: &Pointer) -> bool {
        self.tokens.len() > other.tokens.len() && self.tokens.starts_with(&other.tokens)
    }

    fn not_found(&self) -> PatchError {
        PatchError::PathNotFound {
            path: self.text.clone(),
        }
    }

    /// The parent's tokens and the last token; `None` for the root.
    fn split_last(&self) -> Option<(&[String], &str)> {
        self.tokens
            .split_last()
            .map(|(last, parent)| (parent, last.as_str()))
    }
}

/// Decodes `~1` to `/` and `~0` to `~`; `None` for any other `~` sequence.
fn unescape(token: &str) -> Option<String> {
    let mut decoded = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => decoded.push('~'),
                Some('1') => decoded.push('/'),
                _ => return None,
            }
        } else {
            decoded.push(c);
        }
    }
    Some(decoded)
}

/// An array index token: decimal digits without leading zeros.
fn parse_index(token: &str) -> Option<usize> {
    let well_formed = !token.is_empty()
        && token.bytes().all(|b| b.is_ascii_digit())
        && (token == "0" || !token.starts_with('0'));
    if well_formed {
        token.parse().ok()
    } else {
        None
    }
}

fn walk_mut<'v>(
    document: &'v mut Value,
    tokens: &[String],
    pointer: &Pointer,
) -> Result<&'v mut Value> {
    let mut current = document;
    for token in tokens {
        current = match current {
            Value::Object(map) => map.get_mut(token),
            Value::Array(items) => parse_index(token).and_then(|index| items.get_mut(index)),
            _ => None,
        }
        .ok_or_else(|| pointer.not_found())?;
    }
    Ok(current)
}

fn resolve<'v>(document: &'v Value, pointer: &Pointer) -> Result<&'v Value> {
    let mut current = document;
    for token in &pointer.tokens {
        current = match current {
            Value::Object(map) => map.get(token),
            Value::Array(items) => parse_index(token).and_then(|index| items.get(index)),
            _ => None,
        }
        .ok_or_else(|| pointer.not_found())?;
    }
    Ok(current)
}

fn resolve_mut<'v>(document: &'v mut Value, pointer: &Pointer) -> Result<&'v mut Value> {
    walk_mut(document, &pointer.tokens, pointer)
}

fn add(document: &mut Value, pointer: &Pointer, value: Value) -> Result<()> {
    let Some((parent, last)) = pointer.split_last() else {
        *document = value;
        return Ok(());
    };
    match walk_mut(document, parent, pointer)? {
        Value::Object(map) => {
            map.insert(last.to_owned(), value);
            Ok(())
        }
        Value::Array(items) => {
            let index = if last == "-" {
                Some(items.len())
            } else {
                parse_index(last)
            };
            match index {
                Some(index) if index <= items.len() => {
                    items.insert(index, value);
                    Ok(())
                }
                _ => Err(pointer.not_found()),
            }
        }
        _ => Err(pointer.not_found()),
    }
}

fn remove(document: &mut Value, pointer: &Pointer) -> Result<Value> {
    let Some((parent, last)) = pointer.split_last() else {
        return Err(PatchError::InvalidJsonPatch(
            "cannot remove the whole document".into(),
        ));
    };
    match walk_mut(document, parent, pointer)? {
        Value::Object(map) => map.remove(last).ok_or_else(|| pointer.not_found()),
        Value::Array(items) => match parse_index(last) {
            Some(index) if index < items.len() => Ok(items.remove(index)),
            _ => Err(pointer.not_found()),
        },
        _ => Err(pointer.not_found()),
    }
}

/// The size of `value` as compact JSON, or `None` once it exceeds `budget` (so a huge value is
/// not walked in full).
fn json_size_up_to(value: &Value, budget: usize) -> Option<usize> {
    fn walk(value: &Value, used: &mut usize, budget: usize) -> Option<()> {
        let own = match value {
            Value::Null => 4,
            Value::Bool(flag) => {
                if *flag {
                    4
                } else {
                    5
                }
            }
            Value::Number(number) => number.to_string().len(),
            Value::String(text) => text.len() + 2,
            Value::Array(items) => {
                for item in items {
                    walk(item, used, budget)?;
                }
                items.len().max(1) + 1
            }
            Value::Object(map) => {
                for (key, item) in map {
                    *used = used.checked_add(key.len() + 3)?;
                    walk(item, used, budget)?;
                }
                map.len().max(1) + 1
            }
        };
        *used = used.checked_add(own)?;
        (*used <= budget).then_some(())
    }
    let mut used = 0;
    walk(value, &mut used, budget).map(|()| used)
}

/// Applies an RFC 7386 JSON merge patch: objects merge recursively, `null` deletes a key, and
/// anything else (including lists) replaces the target.
pub fn apply_merge_patch(document: &Value, patch: &Value) -> Value {
    merge_into(document.clone(), patch)
}

fn merge_into(target: Value, patch: &Value) -> Value {
    let Value::Object(patch_map) = patch else {
        return patch.clone();
    };
    let mut target = match target {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    for (key, patch_value) in patch_map {
        if patch_value.is_null() {
            target.remove(key);
        } else {
            let current = target.remove(key).unwrap_or(Value::Null);
            target.insert(key.clone(), merge_into(current, patch_value));
        }
    }
    Value::Object(target)
}
