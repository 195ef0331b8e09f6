//! Applying a strategic merge patch, as `k8s.io/apimachinery/pkg/util/strategicpatch` does.
//!
//! Maps merge key by key and `null` deletes a key. Lists follow their field's strategy: `merge`
//! lists of objects merge item by item on the merge key, `merge` lists of primitives are a set
//! union, all other lists are replaced. Directives refine this: `$patch: replace|delete` on a map
//! or list item, `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
//!
//! Upstream's quirks are kept on purpose (kubectl's patches are computed against them): a new
//! list item is placed before the server's remaining items unless `$setElementOrder` says
//! otherwise, and `$patch: merge` is rejected. Upstream iterates Go maps in random order; here
//! `$deleteFromPrimitiveList` lists are applied after all other keys of their map. The one
//! deliberate difference: `$setElementOrder` over a `null` or empty list succeeds (upstream never
//! sees those, as Go omits empty lists, and would fail). Recursion depth is bounded by the
//! nesting of the parsed JSON (serde_json limits it to 128).

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::schema::{Field, PatchStrategy, SchemaRef};
use super::{PatchError, Result, json_type};

pub(crate) const DIRECTIVE: &str = "$patch";
pub(crate) const RETAIN_KEYS: &str = "$retainKeys";
pub(crate) const SET_ELEMENT_ORDER: &str = "$setElementOrder";
pub(crate) const DELETE_FROM_PRIMITIVE_LIST: &str = "$deleteFromPrimitiveList";

type Object = Map<String, Value>;

/// Applies a strategic merge `patch` to `original`, both JSON objects, using the patch metadata
/// of the object's kind (see [`schema_for`](super::schema_for)).
pub fn apply_strategic_merge_patch(
    original: &Value,
    patch: &Value,
    schema: SchemaRef,
) -> Result<Value> {
    let original = match original {
        Value::Object(map) => map.clone(),
        Value::Null => Object::new(),
        _ => return Err(PatchError::NotAnObject("original object")),
    };
    let Value::Object(patch) = patch else {
        return Err(PatchError::NotAnObject("strategic merge patch"));
    };
    let merged = merge_map(original, patch.clone(), schema, MergeOptions::APPLY)?;
    Ok(Value::Object(merged))
}

/// How [`merge_map`] treats directives and unmatched nulls.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MergeOptions {
    /// Apply `$setElementOrder`, `$deleteFromPrimitiveList` and `$retainKeys` (server side).
    /// When false, the directives are carried over into the result (combining two patches).
    pub merge_parallel_list: bool,
    /// Drop `null`s that match nothing in the original (server side). When false they are kept,
    /// so a combined patch still deletes.
    pub ignore_unmatched_nulls: bool,
}

impl MergeOptions {
    /// Applying a patch to an object.
    pub const APPLY: MergeOptions = MergeOptions {
        merge_parallel_list: true,
        ignore_unmatched_nulls: true,
    };
    /// Combining two patches into one (client side, three-way patches).
    pub const COMBINE: MergeOptions = MergeOptions {
        merge_parallel_list: false,
        ignore_unmatched_nulls: false,
    };
}

/// Merges `patch` into `original` (upstream `mergeMap`).
pub(crate) fn merge_map(
    mut original: Object,
    mut patch: Object,
    schema: SchemaRef,
    options: MergeOptions,
) -> Result<Object> {
    if let Some(directive) = patch.get(DIRECTIVE) {
        return match directive.as_str() {
            Some("replace") => {
                patch.remove(DIRECTIVE);
                Ok(patch)
            }
            Some("delete") => Ok(Object::new()),
            _ => Err(PatchError::UnknownDirective(directive.to_string())),
        };
    }
    apply_retain_keys(&mut original, &mut patch, options)?;
    merge_ordered_lists(&mut original, &mut patch, schema, options)?;

    let (deletion_lists, other_keys): (Vec<_>, Vec<_>) = patch
        .into_iter()
        .partition(|(key, _)| key.starts_with(DELETE_FROM_PRIMITIVE_LIST));
    for (key, patch_value) in other_keys.into_iter().chain(deletion_lists) {
        let (key, is_deletion_list) = if key.starts_with(DELETE_FROM_PRIMITIVE_LIST) {
            if !options.merge_parallel_list {
                original.insert(key, patch_value);
                continue;
            }
            (field_of_directive(&key, DELETE_FROM_PRIMITIVE_LIST)?, true)
        } else {
            (key, false)
        };

        if patch_value.is_null() {
            original.remove(&key);
            if options.ignore_unmatched_nulls {
                continue;
            }
        }
        let Some(original_value) = original.remove(&key) else {
            if !is_deletion_list {
                insert_without_directives(&mut original, key, patch_value, options);
            }
            continue;
        };
        if !same_json_type(&original_value, &patch_value) {
            if is_deletion_list {
                original.insert(key, original_value);
            } else {
                insert_without_directives(&mut original, key, patch_value, options);
            }
            continue;
        }
        let field = schema.field(&key);
        let merged = match (original_value, patch_value) {
            (Value::Object(original_map), Value::Object(patch_map)) => {
                if field.strategy == PatchStrategy::Replace {
                    Value::Object(patch_map)
                } else {
                    Value::Object(merge_map(original_map, patch_map, field.schema, options)?)
                }
            }
            (Value::Array(original_list), Value::Array(patch_list)) => Value::Array(
                merge_list_field(original_list, patch_list, &field, is_deletion_list, options)?,
            ),
            (_, scalar) => scalar,
        };
        original.insert(key, merged);
    }
    Ok(original)
}

/// Stores a patch value that has nothing to merge with, minus its directives.
fn insert_without_directives(
    original: &mut Object,
    key: String,
    mut value: Value,
    options: MergeOptions,
) {
    if options.ignore_unmatched_nulls {
        discard_nulls(&mut value);
    }
    if let Some(value) = remove_directives(value) {
        original.insert(key, value);
    }
}

/// Whether two values have the same JSON type (upstream compares Go types).
fn same_json_type(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// `$retainKeys`: clears the original's keys not in the list (upstream
/// `applyRetainKeysDirective`).
fn apply_retain_keys(
    original: &mut Object,
    patch: &mut Object,
    options: MergeOptions,
) -> Result<()> {
    let Some(retain_keys) = patch.remove(RETAIN_KEYS) else {
        return Ok(());
    };
    if !options.merge_parallel_list {
        match original.get(RETAIN_KEYS) {
            Some(existing) if *existing != retain_keys => {
                return Err(PatchError::RetainKeysMismatch);
            }
            Some(_) => {}
            None => {
                original.insert(RETAIN_KEYS.to_owned(), retain_keys);
            }
        }
        return Ok(());
    }
    let Value::Array(retained) = &retain_keys else {
        return Err(PatchError::BadRetainKeysFormat);
    };
    let retained: HashSet<&str> = retained.iter().filter_map(Value::as_str).collect();
    let sets_unretained_key = patch.iter().any(|(key, value)| {
        !value.is_null()
            && !key.starts_with(DELETE_FROM_PRIMITIVE_LIST)
            && !key.starts_with(SET_ELEMENT_ORDER)
            && !retained.contains(key.as_str())
    });
    if sets_unretained_key {
        return Err(PatchError::BadRetainKeysFormat);
    }
    original.retain(|key, _| retained.contains(key.as_str()));
    Ok(())
}

/// `$setElementOrder/<list>`: merges each such list's patch and orders the result (upstream
/// `mergePatchIntoOriginal`). Precedence: `$setElementOrder`, then the patch, then the original.
fn merge_ordered_lists(
    original: &mut Object,
    patch: &mut Object,
    schema: SchemaRef,
    options: MergeOptions,
) -> Result<()> {
    let order_keys: Vec<String> = patch
        .keys()
        .filter(|key| key.starts_with(SET_ELEMENT_ORDER))
        .cloned()
        .collect();
    for order_key in order_keys {
        let Some(order_value) = patch.remove(&order_key) else {
            continue;
        };
        if !options.merge_parallel_list {
            match original.get(&order_key) {
                Some(existing) if *existing != order_value => {
                    return Err(PatchError::BadSetElementOrderFormat);
                }
                Some(_) => {}
                None => {
                    original.insert(order_key.clone(), order_value.clone());
                }
            }
        }
        let Value::Array(order) = order_value else {
            return Err(type_mismatch("list", &order_value));
        };
        let field_name = field_of_directive(&order_key, SET_ELEMENT_ORDER)?;
        let original_list = match original.get(&field_name) {
            // Lenient where upstream errors: Go's typed objects omit empty lists, ours may
            // store `null`, which means the same.
            Some(Value::Null) => None,
            _ => take_list(original, &field_name)?,
        };
        let patch_list = take_list(patch, &field_name)?;
        let field = schema.field(&field_name);
        validate_patch_order(
            patch_list.as_deref().unwrap_or_default(),
            &order,
            field.merge_key,
        )?;

        let kind = element_kind(&[
            original_list.as_deref().unwrap_or_default(),
            patch_list.as_deref().unwrap_or_default(),
        ]);
        let (merged, server_order) = match (original_list, patch_list) {
            (Some(original_list), None) => (original_list.clone(), original_list),
            (None, Some(patch_list)) => (
                patch_list
                    .into_iter()
                    .filter_map(remove_directives)
                    .collect(),
                Vec::new(),
            ),
            (Some(original_list), Some(patch_list)) => {
                merge_list_field_with_view(original_list, patch_list, &field, false, options)?
            }
            (None, None) => continue,
        };
        let Some(kind) = kind? else {
            // Only empty lists: nothing to order (upstream errors here, on input it never sees
            // because Go omits empty lists).
            original.insert(field_name, Value::Array(merged));
            continue;
        };
        let (patch_items, server_only) = partition_by_presence(merged, &order, field.merge_key)?;
        let ordered = normalize_element_order(
            patch_items,
            server_only,
            &order,
            &server_order,
            field.merge_key,
            kind,
        )?;
        original.insert(field_name, Value::Array(ordered));
    }
    Ok(())
}

/// Removes and returns the list under `key`; an error if the value is not a list.
fn take_list(object: &mut Object, key: &str) -> Result<Option<Vec<Value>>> {
    match object.remove(key) {
        None => Ok(None),
        Some(Value::Array(list)) => Ok(Some(list)),
        Some(other) => Err(type_mismatch("list", &other)),
    }
}

/// The field a `<prefix>/<field>` directive key refers to (upstream `extractKey`).
pub(crate) fn field_of_directive(key: &str, prefix: &str) -> Result<String> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix => Ok(field.to_owned()),
        _ if prefix == DELETE_FROM_PRIMITIVE_LIST => Err(PatchError::BadPrimitiveListFormat),
        _ => Err(PatchError::BadSetElementOrderFormat),
    }
}

/// Checks that the patch list's items appear in the `$setElementOrder` list in the same relative
/// order, ignoring deletions and directives (upstream `validatePatchWithSetOrderList`).
fn validate_patch_order(
    patch_list: &[Value],
    order: &[Value],
    merge_key: Option<&str>,
) -> Result<()> {
    if order.is_empty() || patch_list.is_empty() {
        return Ok(());
    }
    let mut kept = Vec::with_capacity(patch_list.len());
    for item in patch_list {
        if merge_key.is_some() {
            let map = item.as_object().ok_or_else(|| type_mismatch("map", item))?;
            if map.get(DIRECTIVE).and_then(Value::as_str) == Some("delete") {
                continue;
            }
        }
        kept.push(item);
    }
    let (mut patch_index, mut order_index) = (0, 0);
    while patch_index < kept.len() && order_index < order.len() {
        let item = kept[patch_index];
        if item
            .as_object()
            .is_some_and(|map| map.contains_key(DIRECTIVE))
        {
            patch_index += 1;
            continue;
        }
        if merge_key_equal(item, &order[order_index], merge_key)? {
            patch_index += 1;
        }
        order_index += 1;
    }
    if patch_index < kept.len() && order_index >= order.len() {
        return Err(PatchError::SetElementOrderMismatch);
    }
    Ok(())
}

/// Whether two list items have the same merge key value (the same value without a merge key).
pub(crate) fn merge_key_equal(
    left: &Value,
    right: &Value,
    merge_key: Option<&str>,
) -> Result<bool> {
    let Some(key) = merge_key else {
        return Ok(left == right);
    };
    Ok(merge_key_value(left, key)? == merge_key_value(right, key)?)
}

/// An item's merge key value; an error if the item is not a map or lacks the key.
pub(crate) fn merge_key_value<'a>(item: &'a Value, key: &str) -> Result<&'a Value> {
    let map = item.as_object().ok_or_else(|| type_mismatch("map", item))?;
    map.get(key).ok_or_else(|| missing_merge_key(item, key))
}

/// Merges two lists per the field's strategy (upstream `mergeSliceHandler`); deletion lists are
/// handled the same whatever the strategy.
fn merge_list_field(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &Field,
    is_deletion_list: bool,
    options: MergeOptions,
) -> Result<Vec<Value>> {
    merge_list_field_with_view(original, patch, field, is_deletion_list, options)
        .map(|(merged, _)| merged)
}

/// [`merge_list_field`], also returning upstream's aliased view of the original list (see
/// [`AliasedOriginal`]).
fn merge_list_field_with_view(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &Field,
    is_deletion_list: bool,
    options: MergeOptions,
) -> Result<(Vec<Value>, Vec<Value>)> {
    if field.strategy == PatchStrategy::Merge || is_deletion_list {
        merge_list(original, patch, field, is_deletion_list, options)
    } else {
        Ok((patch, original))
    }
}

/// The original list as upstream's caller sees it after `mergeSlice` edited it in place.
///
/// Go's `append(s[:i], s[i+1:]...)` (deleting an item) shifts the rest left inside the shared
/// backing array, and appending a new item then writes into the slot freed at the end. The
/// caller still holds the original length, and upstream orders `$setElementOrder` lists by that
/// view, so a new item can take a deleted item's place there. Emulated to match upstream exactly.
struct AliasedOriginal {
    backing: Vec<Value>,
    len: usize,
}

impl AliasedOriginal {
    fn new(items: &[Value]) -> AliasedOriginal {
        AliasedOriginal {
            backing: items.to_vec(),
            len: items.len(),
        }
    }

    /// Deletes the items whose merge key is in `doomed_keys` from `original` (the list this
    /// view was made from), as upstream's `deleteMatchingEntries` does for each key in turn:
    /// `s = append(s[:i], s[i+1:]...)` for every match. Each such deletion leaves the then-last
    /// item in the slot it vacates; this computes the same view in linear time.
    fn delete_items(
        &mut self,
        original: Vec<Value>,
        doomed_keys: &[String],
        merge_key: &str,
    ) -> Vec<Value> {
        let mut indexes_by_key: HashMap<String, Vec<usize>> = HashMap::new();
        for (index, item) in original.iter().enumerate() {
            if let Some(key_value) = item.as_object().and_then(|map| map.get(merge_key)) {
                indexes_by_key
                    .entry(key_value.to_string())
                    .or_default()
                    .push(index);
            }
        }
        let mut removed = vec![false; original.len()];
        // One past the last item not yet removed.
        let mut end = original.len();
        for key in doomed_keys {
            for index in indexes_by_key.remove(key).unwrap_or_default() {
                while end > 0 && removed[end - 1] {
                    end -= 1;
                }
                if let (Some(last), Some(slot)) =
                    (original.get(end.wrapping_sub(1)), self.len.checked_sub(1))
                    && let Some(vacated) = self.backing.get_mut(slot)
                {
                    *vacated = last.clone();
                }
                removed[index] = true;
                self.len = self.len.saturating_sub(1);
            }
        }
        let kept: Vec<Value> = original
            .into_iter()
            .zip(removed)
            .filter_map(|(item, removed)| (!removed).then_some(item))
            .collect();
        for (slot, item) in self.backing.iter_mut().zip(&kept) {
            *slot = item.clone();
        }
        kept
    }

    /// `s = append(s, item)`: writes into the caller's view only while there is room in it.
    fn push(&mut self, item: &Value) {
        if let Some(slot) = self.backing.get_mut(self.len) {
            *slot = item.clone();
        }
        self.len += 1;
    }
}

/// The JSON type shared by the items of lists, `None` if they are all empty (upstream
/// `sliceElementType`).
pub(crate) fn element_kind(lists: &[&[Value]]) -> Result<Option<ElementKind>> {
    let mut kind = None;
    for item in lists.iter().flat_map(|list| list.iter()) {
        let item_kind = ElementKind::of(item)?;
        match kind {
            None => kind = Some(item_kind),
            Some(previous) if previous != item_kind => return Err(PatchError::MixedListElements),
            Some(_) => {}
        }
    }
    Ok(kind)
}

/// The JSON type of list items: maps are merged by key, everything else by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ElementKind {
    Map,
    Primitive(std::mem::Discriminant<Value>),
}

impl ElementKind {
    fn of(item: &Value) -> Result<ElementKind> {
        match item {
            Value::Array(_) => Err(PatchError::ListOfLists),
            Value::Object(_) => Ok(ElementKind::Map),
            other => Ok(ElementKind::Primitive(std::mem::discriminant(other))),
        }
    }
}

/// Merges a `merge`-strategy list (upstream `mergeSlice`); also returns the aliased view of the
/// original list.
fn merge_list(
    original: Vec<Value>,
    patch: Vec<Value>,
    field: &Field,
    is_deletion_list: bool,
    options: MergeOptions,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let Some(kind) = element_kind(&[&original, &patch])? else {
        return Ok((original.clone(), original));
    };
    let (merged, patch, server_order, view) = if kind == ElementKind::Map {
        let Some(merge_key) = field.merge_key else {
            return Err(PatchError::MergeWithoutKey(field.schema.name));
        };
        let mut view = AliasedOriginal::new(&original);
        let (original, patch) = apply_list_item_directives(original, patch, merge_key, &mut view)?;
        let server_order = original.clone();
        let merged = merge_items_by_key(
            original,
            &patch,
            merge_key,
            field.schema,
            options,
            &mut view,
        )?;
        (merged, patch, server_order, view.backing)
    } else {
        if options.merge_parallel_list && is_deletion_list {
            let doomed: HashSet<String> = patch.iter().map(Value::to_string).collect();
            let kept = original
                .iter()
                .filter(|item| !doomed.contains(&item.to_string()))
                .cloned()
                .collect();
            return Ok((kept, original));
        }
        let server_order = original.clone();
        let mut seen = HashSet::new();
        let merged = original
            .into_iter()
            .chain(patch.iter().cloned())
            .filter(|item| seen.insert(item.to_string()))
            .collect();
        let view = server_order.clone();
        (merged, patch, server_order, view)
    };
    let (patch_items, server_only) = partition_by_presence(merged, &patch, field.merge_key)?;
    let ordered = normalize_element_order(
        patch_items,
        server_only,
        &patch,
        &server_order,
        field.merge_key,
        kind,
    )?;
    Ok((ordered, view))
}

/// Applies `$patch: delete|replace` items of a list merged by key and returns the remaining
/// original items and patch items (upstream `mergeSliceWithSpecialElements`).
fn apply_list_item_directives(
    mut original: Vec<Value>,
    patch: Vec<Value>,
    merge_key: &str,
    view: &mut AliasedOriginal,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut plain_items = Vec::with_capacity(patch.len());
    let mut replace = false;
    let mut doomed_keys = Vec::new();
    for item in patch {
        let Some(directive) = item.as_object().and_then(|map| map.get(DIRECTIVE)) else {
            plain_items.push(item);
            continue;
        };
        match directive.as_str() {
            Some("delete") => doomed_keys.push(merge_key_value(&item, merge_key)?.to_string()),
            // Keep going: the other directive items must still be dropped.
            Some("replace") => replace = true,
            Some("merge") => return Err(PatchError::MergeDirectiveInList),
            _ => return Err(PatchError::UnknownDirective(directive.to_string())),
        }
    }
    if !doomed_keys.is_empty() {
        original = view.delete_items(original, &doomed_keys, merge_key);
    }
    if replace {
        Ok((plain_items, Vec::new()))
    } else {
        Ok((original, plain_items))
    }
}

/// Merges each patch item into the original item with the same merge key, or appends it
/// (upstream `mergeSliceWithoutSpecialElements`).
fn merge_items_by_key(
    mut merged: Vec<Value>,
    patch: &[Value],
    merge_key: &str,
    item_schema: SchemaRef,
    options: MergeOptions,
    view: &mut AliasedOriginal,
) -> Result<Vec<Value>> {
    let mut position_by_key: HashMap<String, usize> = HashMap::new();
    for (index, item) in merged.iter().enumerate() {
        if let Some(key_value) = item.as_object().and_then(|map| map.get(merge_key)) {
            position_by_key
                .entry(key_value.to_string())
                .or_insert(index);
        }
    }
    for item in patch {
        let key_value = merge_key_value(item, merge_key)?.to_string();
        match position_by_key.get(&key_value) {
            Some(&index) => {
                let original_item = std::mem::take(&mut merged[index]);
                let (Value::Object(original_map), Value::Object(patch_map)) = (original_item, item)
                else {
                    return Err(type_mismatch("map", item));
                };
                let merged_item = merge_map(original_map, patch_map.clone(), item_schema, options)?;
                merged[index] = Value::Object(merged_item);
            }
            None => {
                position_by_key.insert(key_value, merged.len());
                view.push(item);
                merged.push(item.clone());
            }
        }
    }
    Ok(merged)
}

/// Splits `merged` into the items present in `present_in` (compared by merge key, or by value
/// without one) and the rest, keeping their order.
fn partition_by_presence(
    merged: Vec<Value>,
    present_in: &[Value],
    merge_key: Option<&str>,
) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut present = HashSet::new();
    for item in present_in {
        match merge_key {
            None => {
                present.insert(item.to_string());
            }
            Some(key) => {
                let map = item.as_object().ok_or_else(|| type_mismatch("map", item))?;
                if let Some(key_value) = map.get(key) {
                    present.insert(key_value.to_string());
                }
            }
        }
    }
    let mut in_list = Vec::new();
    let mut elsewhere = Vec::new();
    for item in merged {
        let identity = match merge_key {
            None => item.to_string(),
            Some(key) => merge_key_value(&item, key)?.to_string(),
        };
        if present.contains(&identity) {
            in_list.push(item);
        } else {
            elsewhere.push(item);
        }
    }
    Ok((in_list, elsewhere))
}

/// The first position of each item's identity in an ordering list.
struct Positions(HashMap<String, usize>);

impl Positions {
    fn of(order: &[Value], identity: &Identity<'_>) -> Positions {
        let mut positions = HashMap::with_capacity(order.len());
        for (index, item) in order.iter().enumerate() {
            if let Some(id) = identity.of(item) {
                positions.entry(id).or_insert(index);
            }
        }
        Positions(positions)
    }

    fn get(&self, item: &Value, identity: &Identity<'_>) -> Option<usize> {
        identity.of(item).and_then(|id| self.0.get(&id).copied())
    }
}

/// What identifies a list item when ordering: its merge key value for maps, else itself
/// (upstream `index`).
pub(crate) struct Identity<'a> {
    pub map_key: Option<&'a str>,
}

impl Identity<'_> {
    fn of(&self, item: &Value) -> Option<String> {
        match self.map_key {
            Some(key) => item
                .as_object()
                .and_then(|map| map.get(key))
                .map(Value::to_string),
            None => Some(item.to_string()),
        }
    }
}

/// Orders `patch_items` by `patch_order` and `server_only` by `server_order`, then interleaves
/// them (upstream `normalizeElementOrder`).
fn normalize_element_order(
    patch_items: Vec<Value>,
    server_only: Vec<Value>,
    patch_order: &[Value],
    server_order: &[Value],
    merge_key: Option<&str>,
    kind: ElementKind,
) -> Result<Vec<Value>> {
    let identity = Identity {
        map_key: (kind == ElementKind::Map).then_some(merge_key.unwrap_or_default()),
    };
    let patch_items = sort_by_order(patch_items, patch_order, &identity)?;
    let server_only = sort_by_order(server_only, server_order, &identity)?;
    let server_positions = Positions::of(server_order, &identity);

    // Upstream `mergeSortedSlice`: a server item goes first only if both it and the next patch
    // item are in the server's order and it comes earlier there.
    let mut result = Vec::with_capacity(patch_items.len() + server_only.len());
    let mut server_items = server_only.into_iter().peekable();
    let mut patch_items = patch_items.into_iter().peekable();
    while let (Some(server_item), Some(patch_item)) = (server_items.peek(), patch_items.peek()) {
        let server_first = match (
            server_positions.get(server_item, &identity),
            server_positions.get(patch_item, &identity),
        ) {
            (Some(server_index), Some(patch_index)) => server_index < patch_index,
            _ => false,
        };
        let next = if server_first {
            server_items.next()
        } else {
            patch_items.next()
        };
        result.extend(next);
    }
    result.extend(server_items);
    result.extend(patch_items);
    Ok(result)
}

/// Stable-sorts `items` by their position in `order`; for maps, checks that every item of both
/// lists has the merge key and moves `$patch: delete` items to the end (upstream
/// `normalizeSliceOrder`).
pub(crate) fn sort_by_order(
    items: Vec<Value>,
    order: &[Value],
    identity: &Identity<'_>,
) -> Result<Vec<Value>> {
    let mut deletions = Vec::new();
    let mut items = if let Some(key) = identity.map_key {
        for item in items.iter().chain(order) {
            merge_key_value(item, key)?;
        }
        let (doomed, kept): (Vec<_>, Vec<_>) = items
            .into_iter()
            .partition(|item| item.get(DIRECTIVE).and_then(Value::as_str) == Some("delete"));
        deletions = doomed;
        kept
    } else {
        items
    };
    let positions = Positions::of(order, identity);
    // Items missing from the order keep their relative order after the ones found.
    items.sort_by_key(|item| positions.get(item, identity).unwrap_or(usize::MAX));
    items.extend(deletions);
    Ok(items)
}

/// Drops maps carrying a `$patch` directive, recursively (upstream `removeDirectives`); `None`
/// when the value itself is such a map.
pub(crate) fn remove_directives(value: Value) -> Option<Value> {
    match value {
        Value::Object(map) => {
            if map.contains_key(DIRECTIVE) {
                return None;
            }
            let kept = map
                .into_iter()
                .filter_map(|(key, value)| remove_directives(value).map(|value| (key, value)))
                .collect();
            Some(Value::Object(kept))
        }
        Value::Array(items) => Some(Value::Array(
            items.into_iter().filter_map(remove_directives).collect(),
        )),
        other => Some(other),
    }
}

/// Drops `null` map values, recursively (upstream `discardNullValuesFromPatch`).
fn discard_nulls(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, value| !value.is_null());
            map.values_mut().for_each(discard_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(discard_nulls),
        _ => {}
    }
}

pub(crate) fn type_mismatch(expected: &'static str, found: &Value) -> PatchError {
    PatchError::TypeMismatch {
        expected,
        found: json_type(found),
    }
}

pub(crate) fn missing_merge_key(item: &Value, key: &str) -> PatchError {
    PatchError::MissingMergeKey {
        key: key.to_owned(),
        item: item.to_string(),
    }
}
