//! Computing strategic merge patches, as kubectl does for client-side apply
//! (`CreateTwoWayMergePatch` and `CreateThreeWayMergePatch` in upstream `strategicpatch`).
//!
//! The output matches upstream's, directives included: `$setElementOrder/<list>` whenever a
//! merge list changes, `$patch: delete` items and `$deleteFromPrimitiveList/<list>` for removals,
//! and `$retainKeys` for `retainKeys` fields. Upstream's ordering quirks are kept: list items are
//! compared by the text of their merge key, and a primitive merge list is sorted before its
//! `$setElementOrder` is decided. The three-way patch always overwrites (kubectl's default,
//! `--overwrite=true`); conflict detection is not implemented.

use serde_json::{Map, Value};

use super::schema::{Field, PatchStrategy, SchemaRef};
use super::strategic::{
    DELETE_FROM_PRIMITIVE_LIST, DIRECTIVE, ElementKind, Identity, MergeOptions, RETAIN_KEYS,
    SET_ELEMENT_ORDER, element_kind, merge_key_equal, merge_key_value, merge_map, sort_by_order,
};
use super::{PatchError, Result, json_type};

type Object = Map<String, Value>;

/// Which parts of a difference [`diff_maps`] records (upstream `DiffOptions`).
#[derive(Debug, Clone, Copy, Default)]
struct DiffOptions {
    /// Emit `$setElementOrder` lists for changed merge lists.
    set_element_order: bool,
    /// Leave out additions and changes (keep only deletions).
    ignore_changes_and_additions: bool,
    /// Leave out deletions.
    ignore_deletions: bool,
    /// Emit `$retainKeys` for this map (its field has the `retainKeys` strategy).
    build_retain_keys: bool,
}

/// The strategic merge patch that turns `original` into `modified` (both JSON objects).
pub fn create_two_way_merge_patch(
    original: &Value,
    modified: &Value,
    schema: SchemaRef,
) -> Result<Value> {
    let original = as_object(original, "original object")?;
    let modified = as_object(modified, "modified object")?;
    let options = DiffOptions {
        set_element_order: true,
        ..DiffOptions::default()
    };
    Ok(Value::Object(diff_maps(
        &original, &modified, schema, options,
    )?))
}

/// kubectl's client-side apply patch: the changes from `current` (the live object) to `modified`
/// (the new configuration), plus the deletions from `original` (the last applied configuration)
/// to `modified`. Fields set on the live object by others are left alone.
pub fn create_three_way_merge_patch(
    original: &Value,
    modified: &Value,
    current: &Value,
    schema: SchemaRef,
) -> Result<Value> {
    let original = as_object(original, "original object")?;
    let modified = as_object(modified, "modified object")?;
    let current = as_object(current, "current object")?;
    let delta_options = DiffOptions {
        ignore_deletions: true,
        set_element_order: true,
        ..DiffOptions::default()
    };
    let delta = diff_maps(&current, &modified, schema, delta_options)?;
    let deletion_options = DiffOptions {
        set_element_order: true,
        ignore_changes_and_additions: true,
        ..DiffOptions::default()
    };
    let deletions = diff_maps(&original, &modified, schema, deletion_options)?;
    Ok(Value::Object(merge_map(
        deletions,
        delta,
        schema,
        MergeOptions::COMBINE,
    )?))
}

fn as_object(value: &Value, what: &'static str) -> Result<Object> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        Value::Null => Ok(Object::new()),
        _ => Err(PatchError::NotAnObject(what)),
    }
}

/// The patch from `original` to `modified` (upstream `diffMaps`).
fn diff_maps(
    original: &Object,
    modified: &Object,
    schema: SchemaRef,
    options: DiffOptions,
) -> Result<Object> {
    let mut patch = Object::new();
    let mut retained_keys = Vec::new();
    for (key, modified_value) in modified {
        if options.build_retain_keys && !modified_value.is_null() {
            retained_keys.push(Value::String(key.clone()));
        }
        let Some(original_value) = original.get(key) else {
            if !options.ignore_changes_and_additions {
                patch.insert(key.clone(), modified_value.clone());
            }
            continue;
        };
        if key == DIRECTIVE {
            let (Some(was), Some(is)) = (original_value.as_str(), modified_value.as_str()) else {
                return Err(PatchError::UnknownDirective(modified_value.to_string()));
            };
            if was != is {
                patch.insert(key.clone(), modified_value.clone());
            }
            continue;
        }
        if std::mem::discriminant(original_value) != std::mem::discriminant(modified_value) {
            if !options.ignore_changes_and_additions {
                patch.insert(key.clone(), modified_value.clone());
            }
            continue;
        }
        let field = schema.field(key);
        match (original_value, modified_value) {
            (Value::Object(was), Value::Object(is)) => {
                let options = DiffOptions {
                    build_retain_keys: field.retain_keys,
                    ..options
                };
                if field.strategy == PatchStrategy::Replace {
                    if !options.ignore_changes_and_additions {
                        patch.insert(key.clone(), modified_value.clone());
                    }
                } else {
                    let nested = diff_maps(was, is, field.schema, options)?;
                    if !nested.is_empty() {
                        patch.insert(key.clone(), Value::Object(nested));
                    }
                }
            }
            (Value::Array(was), Value::Array(is)) if field.strategy == PatchStrategy::Merge => {
                let options = DiffOptions {
                    build_retain_keys: field.retain_keys,
                    ..options
                };
                let (changes, deletions, order) = diff_lists(was, is, &field, options)?;
                if !changes.is_empty() {
                    patch.insert(key.clone(), Value::Array(changes));
                }
                if !deletions.is_empty() {
                    let directive = format!("{DELETE_FROM_PRIMITIVE_LIST}/{key}");
                    patch.insert(directive, Value::Array(deletions));
                }
                if !order.is_empty() {
                    patch.insert(format!("{SET_ELEMENT_ORDER}/{key}"), Value::Array(order));
                }
            }
            _ => {
                if !options.ignore_changes_and_additions && original_value != modified_value {
                    patch.insert(key.clone(), modified_value.clone());
                }
            }
        }
    }
    if !options.ignore_deletions {
        for key in original.keys() {
            if !modified.contains_key(key) {
                patch.insert(key.clone(), Value::Null);
            }
        }
    }
    let clears_a_field = original
        .iter()
        .any(|(key, value)| !value.is_null() && !modified.contains_key(key));
    if !retained_keys.is_empty() && (!patch.is_empty() || clears_a_field) {
        patch.insert(
            RETAIN_KEYS.to_owned(),
            Value::Array(sort_scalars(retained_keys)),
        );
    }
    Ok(patch)
}

/// The patch list, primitive deletion list and `$setElementOrder` list that turn one merge
/// list into another (upstream `diffLists`).
fn diff_lists(
    original: &[Value],
    modified: &[Value],
    field: &Field,
    options: DiffOptions,
) -> Result<(Vec<Value>, Vec<Value>, Vec<Value>)> {
    if original.is_empty() {
        if modified.is_empty() || options.ignore_changes_and_additions {
            return Ok((Vec::new(), Vec::new(), Vec::new()));
        }
        return Ok((modified.to_vec(), Vec::new(), Vec::new()));
    }
    let Some(kind) = element_kind(&[original, modified])? else {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    };
    if kind == ElementKind::Map {
        let merge_key = field.merge_key.unwrap_or_default();
        let (changes, deletions) =
            diff_lists_of_maps(original, modified, field.schema, merge_key, options)?;
        let identity = Identity {
            map_key: Some(merge_key),
        };
        let mut changes = sort_by_order(changes, modified, &identity)?;
        let order_same = is_order_same(original, modified, merge_key)?;
        changes.extend(deletions);
        let changed = !changes.is_empty();
        let wants_order = (!options.ignore_changes_and_additions && (changed || !order_same))
            || (!options.ignore_deletions && changed);
        let mut order = Vec::new();
        if options.set_element_order && wants_order {
            for item in modified {
                let mut entry = Object::new();
                entry.insert(
                    merge_key.to_owned(),
                    merge_key_value(item, merge_key)?.clone(),
                );
                order.push(Value::Object(entry));
            }
        }
        Ok((changes, Vec::new(), order))
    } else {
        let (additions, deletions) = diff_lists_of_scalars(original, modified, options);
        let additions = sort_by_order(additions, modified, &Identity { map_key: None })?;
        // Upstream sorts the original list in place while diffing, then compares it.
        let reordered_or_changed = sort_scalars(original.to_vec()) != modified;
        let wants_order = (!options.ignore_deletions && !deletions.is_empty())
            || (!options.ignore_changes_and_additions && reordered_or_changed);
        let order = if options.set_element_order && wants_order {
            modified.to_vec()
        } else {
            Vec::new()
        };
        Ok((additions, deletions, order))
    }
}

/// Whether both lists hold the same merge keys in the same order (upstream `isOrderSame`).
fn is_order_same(original: &[Value], modified: &[Value], merge_key: &str) -> Result<bool> {
    if original.len() != modified.len() {
        return Ok(false);
    }
    for (was, is) in original.iter().zip(modified) {
        if !merge_key_equal(was, is, Some(merge_key))? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Changed and added items (with their merge key) and `$patch: delete` items for removed ones
/// (upstream `diffListsOfMaps`). Items are paired by the text of their merge key.
fn diff_lists_of_maps(
    original: &[Value],
    modified: &[Value],
    item_schema: SchemaRef,
    merge_key: &str,
    options: DiffOptions,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let original = sorted_by_merge_key(original, merge_key)?;
    let modified = sorted_by_merge_key(modified, merge_key)?;
    let mut changes = Vec::with_capacity(modified.len());
    let mut deletions = Vec::new();
    let (mut original_index, mut modified_index) = (0, 0);
    loop {
        let was = original.get(original_index);
        let is = modified.get(modified_index);
        match (was, is) {
            (None, None) => break,
            (Some((was_key, was_item)), Some((is_key, is_item))) if was_key == is_key => {
                let (Value::Object(was_map), Value::Object(is_map)) = (was_item, is_item) else {
                    return Err(PatchError::TypeMismatch {
                        expected: "map",
                        found: json_type(was_item),
                    });
                };
                let mut item_patch = diff_maps(was_map, is_map, item_schema, options)?;
                if !item_patch.is_empty() {
                    let key_value = merge_key_value(is_item, merge_key)?.clone();
                    item_patch.insert(merge_key.to_owned(), key_value);
                    changes.push(Value::Object(item_patch));
                }
                original_index += 1;
                modified_index += 1;
            }
            (None, Some((_, is_item))) => {
                if !options.ignore_changes_and_additions {
                    changes.push((*is_item).clone());
                }
                modified_index += 1;
            }
            (Some((was_key, _)), Some((is_key, is_item))) if was_key > is_key => {
                if !options.ignore_changes_and_additions {
                    changes.push((*is_item).clone());
                }
                modified_index += 1;
            }
            (Some((_, was_item)), _) => {
                if !options.ignore_deletions {
                    let mut directive = Object::new();
                    let key_value = merge_key_value(was_item, merge_key)?.clone();
                    directive.insert(merge_key.to_owned(), key_value);
                    directive.insert(DIRECTIVE.to_owned(), Value::String("delete".to_owned()));
                    deletions.push(Value::Object(directive));
                }
                original_index += 1;
            }
        }
    }
    Ok((changes, deletions))
}

/// The items paired with the text of their merge key, sorted by it.
fn sorted_by_merge_key<'a>(
    items: &'a [Value],
    merge_key: &str,
) -> Result<Vec<(String, &'a Value)>> {
    let mut keyed = items
        .iter()
        .map(|item| Ok((go_text(merge_key_value(item, merge_key)?), item)))
        .collect::<Result<Vec<_>>>()?;
    keyed.sort_by(|(a, _), (b, _)| a.cmp(b));
    Ok(keyed)
}

/// Added values and removed values of a primitive merge list (upstream `diffListsOfScalars`).
fn diff_lists_of_scalars(
    original: &[Value],
    modified: &[Value],
    options: DiffOptions,
) -> (Vec<Value>, Vec<Value>) {
    let original = sort_scalars(original.to_vec());
    let modified = sort_scalars(modified.to_vec());
    let mut additions = Vec::new();
    let mut deletions = Vec::new();
    let (mut original_index, mut modified_index) = (0, 0);
    loop {
        let was = original.get(original_index);
        let is = modified.get(modified_index);
        let (was_text, is_text) = (was.map(go_text), is.map(go_text));
        match (was, is) {
            (None, None) => break,
            (Some(_), Some(_)) if was_text == is_text => {
                original_index += 1;
                modified_index += 1;
            }
            (None, Some(value)) => {
                if !options.ignore_changes_and_additions {
                    additions.push(value.clone());
                }
                modified_index += 1;
            }
            (Some(_), Some(value)) if was_text > is_text => {
                if !options.ignore_changes_and_additions {
                    additions.push(value.clone());
                }
                modified_index += 1;
            }
            (Some(value), _) => {
                if !options.ignore_deletions {
                    deletions.push(value.clone());
                }
                original_index += 1;
            }
        }
    }
    (additions, deduplicate_scalars(deletions))
}

/// Sorts primitives by their text, as upstream's `sortScalars` does.
fn sort_scalars(mut values: Vec<Value>) -> Vec<Value> {
    values.sort_by_cached_key(go_text);
    values
}

/// Upstream's `deduplicateScalars`: a duplicate is overwritten by the last item, so the order
/// changes exactly as it does upstream.
fn deduplicate_scalars(mut values: Vec<Value>) -> Vec<Value> {
    let mut i = 0;
    while i + 1 < values.len() {
        let mut j = i + 1;
        while j < values.len() {
            if values[i] == values[j] {
                values.swap_remove(j);
            } else {
                j += 1;
            }
        }
        i += 1;
    }
    values
}

/// A value as Go's `fmt.Sprintf("%v")` prints a decoded JSON value, for upstream's ordering.
fn go_text(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        Value::Null => "<nil>".to_owned(),
        other => other.to_string(),
    }
}
