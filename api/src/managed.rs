//! Field ownership for server-side apply: `metadata.managedFields`, the structured merge of an
//! applied configuration into a live object, and conflicts between field managers.
//!
//! This follows `sigs.k8s.io/structured-merge-diff` (v4) as kube-apiserver 1.32 uses it:
//!
//! - A [`FieldSet`] is a set of paths into an object. Its wire form is upstream's `FieldsV1`:
//!   `f:<name>` for a field, `k:{"name":"x"}` for an item of a list keyed by its fields,
//!   `v:<json>` for an item of a set, and `.` for a node that is itself a member and has
//!   members below it.
//! - Lists are atomic, sets or keyed lists ("list maps"), maps are granular. Which is which comes
//!   from the strategic-merge-patch metadata in [`crate::patch::schema`] (a merge key makes a
//!   keyed list, `merge` without key a set, everything else atomic); ports are keyed by number
//!   and protocol and label selectors are atomic, as in upstream's OpenAPI.
//! - [`update_sets`] gives what a write changed (upstream's `Compare`: added and modified paths)
//!   and removed; [`applied_set`] the paths an applied configuration sets (upstream's
//!   `ToFieldSet`); [`merge`] the structured merge; [`remove_paths`] the pruning of fields a
//!   manager applied before and no longer applies.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::patch::schema::{Field, PatchStrategy, Schema, SchemaRef};

/// A set of field paths, as a tree keyed by `FieldsV1` path elements.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// Whether the set has no member.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    /// Add the path.
    pub fn insert(&mut self, path: &[String]) {
        let mut node = self;
        for element in path {
            node = node.children.entry(element.clone()).or_default();
        }
        node.member = true;
    }

    /// Whether the path is a member.
    pub fn contains(&self, path: &[String]) -> bool {
        let mut node = self;
        for element in path {
            match node.children.get(element) {
                Some(child) => node = child,
                None => return false,
            }
        }
        node.member
    }

    /// Members of either set.
    pub fn union(&self, other: &FieldSet) -> FieldSet {
        let mut out = self.clone();
        out.union_with(other);
        out
    }

    /// Add every member of `other`.
    pub fn union_with(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (key, child) in &other.children {
            self.children
                .entry(key.clone())
                .or_default()
                .union_with(child);
        }
    }

    /// Members of `self` not in `other`.
    pub fn difference(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && !other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            let rest = match other.children.get(key) {
                Some(theirs) => child.difference(theirs),
                None => child.clone(),
            };
            if !rest.is_empty() {
                out.children.insert(key.clone(), rest);
            }
        }
        out
    }

    /// Members of both sets.
    pub fn intersection(&self, other: &FieldSet) -> FieldSet {
        let mut out = FieldSet {
            member: self.member && other.member,
            children: BTreeMap::new(),
        };
        for (key, child) in &self.children {
            if let Some(theirs) = other.children.get(key) {
                let both = child.intersection(theirs);
                if !both.is_empty() {
                    out.children.insert(key.clone(), both);
                }
            }
        }
        out
    }

    /// Whether any member lies at or below `path`.
    fn has_members_under(&self, path: &[String]) -> bool {
        let mut node = self;
        for element in path {
            match node.children.get(element) {
                Some(child) => node = child,
                None => return false,
            }
        }
        !node.is_empty()
    }

    /// Every member path, in order.
    pub fn paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect_paths(&mut Vec::new(), &mut out);
        out
    }

    fn collect_paths(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (key, child) in &self.children {
            prefix.push(key.clone());
            child.collect_paths(prefix, out);
            prefix.pop();
        }
    }

    /// The `FieldsV1` JSON form.
    pub fn to_fields_v1(&self) -> Value {
        let mut map = Map::new();
        if self.member && self.children.values().any(|c| !c.is_empty()) {
            map.insert(".".into(), Value::Object(Map::new()));
        }
        for (key, child) in &self.children {
            if !child.is_empty() {
                map.insert(key.clone(), child.to_fields_v1());
            }
        }
        Value::Object(map)
    }

    /// Read the `FieldsV1` JSON form; `None` if it is not one.
    pub fn from_fields_v1(value: &Value) -> Option<FieldSet> {
        let map = value.as_object()?;
        let mut set = FieldSet {
            member: map.is_empty(),
            children: BTreeMap::new(),
        };
        for (key, child) in map {
            if key == "." {
                set.member = true;
                continue;
            }
            set.children
                .insert(key.clone(), FieldSet::from_fields_v1(child)?);
        }
        Some(set)
    }
}

/// A path as upstream prints it in conflicts: `.spec.containers[name="web"].image`.
pub fn display_path(path: &[String]) -> String {
    let mut out = String::new();
    for element in path {
        if let Some(name) = element.strip_prefix("f:") {
            out.push('.');
            out.push_str(name);
        } else if let Some(key) = element.strip_prefix("k:") {
            let fields = serde_json::from_str::<Map<String, Value>>(key).unwrap_or_default();
            let parts: Vec<String> = fields.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("[{}]", parts.join(",")));
        } else if let Some(value) = element.strip_prefix("v:") {
            out.push_str(&format!("[={value}]"));
        } else if let Some(index) = element.strip_prefix("i:") {
            out.push_str(&format!("[{index}]"));
        }
    }
    out
}

/// Why an object cannot be merged or its fields listed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManagedError {
    /// An item of a keyed list lacks a key field.
    #[error(
        "{path}: element {index}: associative list with keys has an element that omits key field {key:?} (and doesn't have default value)"
    )]
    MissingKey {
        /// The list, as [`display_path`] prints it.
        path: String,
        /// The item's index.
        index: usize,
        /// The key field.
        key: String,
    },
    /// Two items of a keyed list have the same key.
    #[error("{path}: duplicate entries for key {key}")]
    DuplicateKey {
        /// The list.
        path: String,
        /// The key, as JSON.
        key: String,
    },
}

/// How a value is merged and tracked.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Granular map: fields tracked and merged one by one.
    Map(SchemaRef),
    /// List of objects identified by their key fields.
    Keyed(&'static [&'static str], SchemaRef),
    /// List of scalars merged as a set.
    Set,
    /// Replaced and owned whole.
    Atomic,
}

/// Fields that upstream's OpenAPI marks atomic while the patch metadata leaves them as maps:
/// label selectors (`structType=atomic`, `mapType=atomic`).
const ATOMIC_FIELDS: &[&str] = &[
    "selector",
    "labelSelector",
    "namespaceSelector",
    "podSelector",
    "nodeSelectorTerms",
];

/// The shape of the value at `path` (whose last element names the field).
fn shape_of(field: &Field, value: &Value, path: &[String]) -> Shape {
    let name = path
        .last()
        .and_then(|element| element.strip_prefix("f:"))
        .unwrap_or_default();
    if ATOMIC_FIELDS.contains(&name) || field.strategy == PatchStrategy::Replace {
        return Shape::Atomic;
    }
    match value {
        Value::Object(_) => Shape::Map(field.schema),
        Value::Array(_) => match (field.strategy, field.merge_key) {
            (PatchStrategy::Merge, Some(key)) => Shape::Keyed(list_map_keys(key), field.schema),
            (PatchStrategy::Merge, None) => Shape::Set,
            _ => Shape::Atomic,
        },
        _ => Shape::Atomic,
    }
}

/// Upstream's `x-kubernetes-list-map-keys` where they differ from the patch merge key.
fn list_map_keys(merge_key: &'static str) -> &'static [&'static str] {
    match merge_key {
        "containerPort" => &["containerPort", "protocol"],
        "port" => &["port", "protocol"],
        "name" => &["name"],
        "type" => &["type"],
        "uid" => &["uid"],
        "ip" => &["ip"],
        "mountPath" => &["mountPath"],
        "devicePath" => &["devicePath"],
        "topologyKey" => &["topologyKey"],
        other => keys_leaked(other),
    }
}

fn keys_leaked(key: &'static str) -> &'static [&'static str] {
    // Rare merge keys: one small allocation each time, which is fine for them.
    Box::leak(Box::new([key]))
}

/// A field's name as a path element.
fn field_element(name: &str) -> String {
    format!("f:{name}")
}

/// The `k:{...}` path element of a keyed item (key fields sorted, protocol defaulting to TCP as
/// upstream's schema does), or the missing key.
fn key_element(item: &Value, keys: &[&str]) -> Result<String, String> {
    let mut fields = BTreeMap::new();
    for key in keys {
        match item.get(*key) {
            Some(value) if !value.is_null() => {
                fields.insert(*key, value.clone());
            }
            _ if *key == "protocol" => {
                fields.insert(*key, Value::String("TCP".into()));
            }
            _ => return Err((*key).to_owned()),
        }
    }
    let parts: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::String((*k).to_owned())))
        .collect();
    Ok(format!("k:{{{}}}", parts.join(",")))
}

fn value_element(value: &Value) -> String {
    format!("v:{value}")
}

/// What the root of an object tracks: not `apiVersion`, `kind` or server-set metadata, and
/// status only where it belongs to the written (sub)resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The whole object but status (main resource of a kind with a status subresource).
    WithoutStatus,
    /// Only status (the status subresource).
    StatusOnly,
    /// Everything (kinds without a status subresource, other subresources).
    Everything,
}

/// Metadata fields the server owns; never tracked.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

fn tracked_root_fields(
    obj: Option<&Value>,
    scope: Scope,
) -> impl Iterator<Item = (&String, &Value)> {
    obj.and_then(Value::as_object)
        .into_iter()
        .flatten()
        .filter(move |(key, _)| match key.as_str() {
            "apiVersion" | "kind" => false,
            "status" => scope != Scope::WithoutStatus,
            _ => scope != Scope::StatusOnly,
        })
}

fn tracked_metadata(meta: &Value) -> Value {
    let mut meta = meta.as_object().cloned().unwrap_or_default();
    for field in SERVER_METADATA {
        meta.remove(*field);
    }
    Value::Object(meta)
}

/// The paths an applied configuration sets (upstream's `ToFieldSet`).
pub fn applied_set(
    config: &Value,
    schema: SchemaRef,
    scope: Scope,
) -> Result<FieldSet, ManagedError> {
    let mut set = FieldSet::default();
    let mut path = Vec::new();
    for (key, value) in tracked_root_fields(Some(config), scope) {
        path.push(field_element(key));
        let field = schema.field(key);
        if key == "metadata" {
            let meta = tracked_metadata(value);
            if meta.as_object().is_some_and(|m| !m.is_empty()) {
                collect_set(&meta, shape_of(&field, &meta, &path), &mut path, &mut set)?;
            }
        } else {
            insert_value_paths(value, &field, &mut path, &mut set)?;
        }
        path.pop();
    }
    Ok(set)
}

/// The paths of one field's value: the field itself when it is a leaf, an empty map or
/// atomic, and the paths below it otherwise.
fn insert_value_paths(
    value: &Value,
    field: &Field,
    path: &mut Vec<String>,
    set: &mut FieldSet,
) -> Result<(), ManagedError> {
    let shape = shape_of(field, value, path);
    let leaf = match (shape, value) {
        (Shape::Atomic, _) | (_, Value::Null) => true,
        (Shape::Map(_), Value::Object(map)) => map.is_empty(),
        _ => false,
    };
    if leaf {
        set.insert(path);
        return Ok(());
    }
    collect_set(value, shape, path, set)
}

fn collect_set(
    value: &Value,
    shape: Shape,
    path: &mut Vec<String>,
    set: &mut FieldSet,
) -> Result<(), ManagedError> {
    match (shape, value) {
        (Shape::Map(schema), Value::Object(map)) => {
            for (key, child) in map {
                path.push(field_element(key));
                insert_value_paths(child, &schema.field(key), path, set)?;
                path.pop();
            }
        }
        (Shape::Keyed(keys, schema), Value::Array(items)) => {
            let mut seen = std::collections::BTreeSet::new();
            for (index, item) in items.iter().enumerate() {
                let element = keyed(item, keys, path, index)?;
                if !seen.insert(element.clone()) {
                    return Err(ManagedError::DuplicateKey {
                        path: display_path(path),
                        key: element.trim_start_matches("k:").to_owned(),
                    });
                }
                path.push(element);
                set.insert(path);
                collect_set(item, Shape::Map(schema), path, set)?;
                path.pop();
            }
        }
        (Shape::Set, Value::Array(items)) => {
            for item in items {
                path.push(value_element(item));
                set.insert(path);
                path.pop();
            }
        }
        _ => set.insert(path),
    }
    Ok(())
}

fn keyed(
    item: &Value,
    keys: &[&str],
    path: &[String],
    index: usize,
) -> Result<String, ManagedError> {
    key_element(item, keys).map_err(|key| ManagedError::MissingKey {
        path: display_path(path),
        index,
        key,
    })
}

/// What a write changed: paths added or modified, and paths removed (upstream's `Compare`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Added or modified paths.
    pub changed: FieldSet,
    /// Removed paths.
    pub removed: FieldSet,
}

impl Changes {
    /// Whether nothing tracked changed.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.removed.is_empty()
    }
}

/// Compare `old` (none for a new object) with `new`.
pub fn update_sets(old: Option<&Value>, new: &Value, schema: SchemaRef, scope: Scope) -> Changes {
    // A new object is compared with an empty one; `metadata`, `spec` and `status` are compared
    // field by field even when one side lacks them, as upstream compares with the zero value of
    // the Go type, where these structs always exist.
    let nothing = Value::Null;
    let old = old.unwrap_or(&nothing);
    let mut changes = Changes::default();
    let mut path = Vec::new();
    let empty = Map::new();
    let old_fields = old.as_object().unwrap_or(&empty);
    let new_fields = new.as_object().unwrap_or(&empty);
    for key in union_keys(old_fields, new_fields) {
        let tracked = match key.as_str() {
            "apiVersion" | "kind" => false,
            "status" => scope != Scope::WithoutStatus,
            _ => scope != Scope::StatusOnly,
        };
        if !tracked {
            continue;
        }
        let field = schema.field(key);
        path.push(field_element(key));
        let (o, n) = (old_fields.get(key), new_fields.get(key));
        match (key.as_str(), as_struct(o, &empty), as_struct(n, &empty)) {
            ("metadata", Some(o), Some(n)) => {
                compare_fields(o, n, field.schema, SERVER_METADATA, &mut path, &mut changes);
            }
            ("spec" | "status", Some(o), Some(n)) => {
                compare_fields(o, n, field.schema, &[], &mut path, &mut changes);
            }
            _ => compare(o, n, &field, &mut path, &mut changes),
        }
        path.pop();
    }
    changes
}

/// A map, or an empty one for a missing value; `None` for anything else.
fn as_struct<'a>(
    value: Option<&'a Value>,
    empty: &'a Map<String, Value>,
) -> Option<&'a Map<String, Value>> {
    match value {
        None | Some(Value::Null) => Some(empty),
        Some(Value::Object(map)) => Some(map),
        Some(_) => None,
    }
}

fn union_keys<'a>(a: &'a Map<String, Value>, b: &'a Map<String, Value>) -> Vec<&'a String> {
    let mut keys: Vec<&String> = a.keys().collect();
    keys.extend(b.keys().filter(|k| !a.contains_key(*k)));
    keys
}

/// Compare two maps field by field, leaving out `skip`.
fn compare_fields(
    old: &Map<String, Value>,
    new: &Map<String, Value>,
    schema: SchemaRef,
    skip: &[&str],
    path: &mut Vec<String>,
    changes: &mut Changes,
) {
    for key in union_keys(old, new) {
        if skip.contains(&key.as_str()) {
            continue;
        }
        path.push(field_element(key));
        compare(
            old.get(key),
            new.get(key),
            &schema.field(key),
            path,
            changes,
        );
        path.pop();
    }
}

fn present(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| !v.is_null())
}

fn compare(
    old: Option<&Value>,
    new: Option<&Value>,
    field: &Field,
    path: &mut Vec<String>,
    changes: &mut Changes,
) {
    match (present(old), present(new)) {
        (None, None) => {}
        (None, Some(new)) => added(new, field, path, &mut changes.changed),
        (Some(old), None) => added(old, field, path, &mut changes.removed),
        (Some(old), Some(new)) => match (shape_of(field, new, path), old, new) {
            (Shape::Map(schema), Value::Object(o), Value::Object(n)) => {
                compare_fields(o, n, schema, &[], path, changes);
            }
            (Shape::Keyed(keys, schema), Value::Array(o), Value::Array(n)) => {
                let (Some(o), Some(n)) = (keyed_items(o, keys), keyed_items(n, keys)) else {
                    if old != new {
                        changes.changed.insert(path);
                    }
                    return;
                };
                let item_field = Field {
                    schema,
                    ..Field::untagged("")
                };
                for (key, item) in &n {
                    path.push(key.clone());
                    match find_keyed(&o, key) {
                        None => {
                            changes.changed.insert(path);
                            let _ =
                                collect_set(item, Shape::Map(schema), path, &mut changes.changed);
                        }
                        Some(before) => {
                            compare(Some(before), Some(*item), &item_field, path, changes)
                        }
                    }
                    path.pop();
                }
                for (key, item) in &o {
                    if find_keyed(&n, key).is_none() {
                        path.push(key.clone());
                        changes.removed.insert(path);
                        let _ = collect_set(item, Shape::Map(schema), path, &mut changes.removed);
                        path.pop();
                    }
                }
            }
            (Shape::Set, Value::Array(o), Value::Array(n)) => {
                for item in n.iter().filter(|i| !o.contains(i)) {
                    path.push(value_element(item));
                    changes.changed.insert(path);
                    path.pop();
                }
                for item in o.iter().filter(|i| !n.contains(i)) {
                    path.push(value_element(item));
                    changes.removed.insert(path);
                    path.pop();
                }
            }
            _ => {
                if old != new {
                    changes.changed.insert(path);
                }
            }
        },
    }
}

/// The items of a keyed list with their path elements; `None` if one lacks its key.
fn keyed_items<'v>(items: &'v [Value], keys: &[&str]) -> Option<Vec<(String, &'v Value)>> {
    items
        .iter()
        .map(|item| Some((key_element(item, keys).ok()?, item)))
        .collect()
}

fn find_keyed<'v>(items: &[(String, &'v Value)], key: &str) -> Option<&'v Value> {
    items.iter().find(|(k, _)| k == key).map(|(_, v)| *v)
}

/// A value that appeared (or went): the node itself when it is a map or a leaf, and everything
/// below it.
fn added(value: &Value, field: &Field, path: &mut Vec<String>, set: &mut FieldSet) {
    let shape = shape_of(field, value, path);
    if !matches!(shape, Shape::Keyed(..) | Shape::Set) {
        set.insert(path);
    }
    if !matches!(shape, Shape::Atomic) {
        let _ = collect_set(value, shape, path, set);
    }
}

/// Merge an applied configuration into the live object: maps field by field, keyed lists item
/// by item, sets by value, everything else replaced. A `null` in the configuration removes the
/// field.
pub fn merge(live: &Value, config: &Value, schema: SchemaRef) -> Result<Value, ManagedError> {
    let root = Field {
        schema,
        ..Field::untagged("")
    };
    merge_value(Some(live), config, &root, &mut Vec::new())
}

fn merge_value(
    live: Option<&Value>,
    config: &Value,
    field: &Field,
    path: &mut Vec<String>,
) -> Result<Value, ManagedError> {
    let Some(live) = present(live) else {
        return Ok(without_nulls(config));
    };
    match (shape_of(field, config, path), live, config) {
        (Shape::Map(schema), Value::Object(l), Value::Object(c)) => {
            let mut out = l.clone();
            for (key, value) in c {
                if value.is_null() {
                    out.remove(key);
                    continue;
                }
                path.push(field_element(key));
                let merged = merge_value(l.get(key), value, &schema.field(key), path)?;
                path.pop();
                out.insert(key.clone(), merged);
            }
            Ok(Value::Object(out))
        }
        (Shape::Keyed(keys, schema), Value::Array(l), Value::Array(c)) => {
            let item_field = Field {
                schema,
                ..Field::untagged("")
            };
            let mut out: Vec<Value> = l.clone();
            let live_keys: Vec<Option<String>> =
                l.iter().map(|item| key_element(item, keys).ok()).collect();
            for (index, item) in c.iter().enumerate() {
                let element = keyed(item, keys, path, index)?;
                match live_keys
                    .iter()
                    .position(|k| k.as_deref() == Some(&element))
                {
                    Some(at) => {
                        path.push(element);
                        out[at] = merge_value(Some(&l[at]), item, &item_field, path)?;
                        path.pop();
                    }
                    None => out.push(without_nulls(item)),
                }
            }
            Ok(Value::Array(out))
        }
        (Shape::Set, Value::Array(l), Value::Array(c)) => {
            let mut out = l.clone();
            for item in c {
                if !out.contains(item) {
                    out.push(item.clone());
                }
            }
            Ok(Value::Array(out))
        }
        _ => Ok(without_nulls(config)),
    }
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// Remove from `obj` every member of `remove`, except nodes below which `keep` has members
/// (fields another manager still owns).
pub fn remove_paths(obj: &mut Value, remove: &FieldSet, keep: &FieldSet, schema: SchemaRef) {
    let root = Field {
        schema,
        ..Field::untagged("")
    };
    remove_below(obj, remove, keep, &root, &mut Vec::new());
}

fn remove_below(
    value: &mut Value,
    remove: &FieldSet,
    keep: &FieldSet,
    field: &Field,
    path: &mut Vec<String>,
) {
    let shape = shape_of(field, value, path);
    match (shape, value) {
        (Shape::Map(schema), Value::Object(map)) => {
            for (element, below) in &remove.children {
                let Some(name) = element.strip_prefix("f:") else {
                    continue;
                };
                path.push(element.clone());
                if below.member && !keep.has_members_under(path) {
                    map.remove(name);
                } else if let Some(child) = map.get_mut(name) {
                    remove_below(child, below, keep, &schema.field(name), path);
                }
                path.pop();
            }
        }
        (Shape::Keyed(keys, schema), Value::Array(items)) => {
            let item_field = Field {
                schema,
                ..Field::untagged("")
            };
            items.retain_mut(|item| {
                let Ok(element) = key_element(item, keys) else {
                    return true;
                };
                let Some(below) = remove.children.get(&element) else {
                    return true;
                };
                path.push(element);
                let keep_item = if below.member && !keep.has_members_under(path) {
                    false
                } else {
                    remove_below(item, below, keep, &item_field, path);
                    true
                };
                path.pop();
                keep_item
            });
        }
        (Shape::Set, Value::Array(items)) => {
            items.retain(|item| {
                let element = value_element(item);
                path.push(element.clone());
                let drop = remove.children.get(&element).is_some_and(|b| b.member)
                    && !keep.has_members_under(path);
                path.pop();
                !drop
            });
        }
        _ => {}
    }
}

/// One entry of `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedFieldsEntry {
    /// The field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// The API version the manager wrote with.
    pub api_version: String,
    /// When the entry last changed (RFC 3339).
    pub time: Option<String>,
    /// The subresource written (`status`, `scale`), or empty.
    pub subresource: String,
    /// The owned fields.
    pub fields: FieldSet,
}

impl ManagedFieldsEntry {
    /// Read `metadata.managedFields`; entries that are not understood are dropped.
    pub fn read_all(obj: &Value) -> Vec<ManagedFieldsEntry> {
        let Some(entries) = obj
            .pointer("/metadata/managedFields")
            .and_then(Value::as_array)
        else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|entry| {
                let text = |name: &str| {
                    entry
                        .get(name)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                Some(ManagedFieldsEntry {
                    manager: text("manager"),
                    operation: text("operation"),
                    api_version: text("apiVersion"),
                    time: entry.get("time").and_then(Value::as_str).map(str::to_owned),
                    subresource: text("subresource"),
                    fields: FieldSet::from_fields_v1(entry.get("fieldsV1")?)?,
                })
            })
            .collect()
    }

    /// The JSON form.
    pub fn to_json(&self) -> Value {
        let mut entry = Map::new();
        entry.insert("manager".into(), Value::String(self.manager.clone()));
        entry.insert("operation".into(), Value::String(self.operation.clone()));
        entry.insert("apiVersion".into(), Value::String(self.api_version.clone()));
        if let Some(time) = &self.time {
            entry.insert("time".into(), Value::String(time.clone()));
        }
        entry.insert("fieldsType".into(), Value::String("FieldsV1".into()));
        entry.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            entry.insert(
                "subresource".into(),
                Value::String(self.subresource.clone()),
            );
        }
        Value::Object(entry)
    }

    /// How conflicts name the manager (upstream's `printManager`).
    pub fn describe(&self) -> String {
        let mut out = format!("{:?}", self.manager);
        if !self.subresource.is_empty() {
            out.push_str(&format!(" with subresource {:?}", self.subresource));
        }
        out.push_str(&format!(" using {}", self.api_version));
        if self.operation == "Update"
            && let Some(time) = &self.time
        {
            out.push_str(&format!(" at {time}"));
        }
        out
    }
}

/// Write the entries to `metadata.managedFields` (removing it when there are none).
pub fn write_all(obj: &mut Value, entries: &[ManagedFieldsEntry]) {
    let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    if entries.is_empty() {
        meta.remove("managedFields");
    } else {
        meta.insert(
            "managedFields".into(),
            Value::Array(entries.iter().map(ManagedFieldsEntry::to_json).collect()),
        );
    }
}

/// Record an Update by `manager`: it owns what it changed, takes those fields from the other
/// managers (updates are always forced), and loses what it removed. Consecutive updates of one
/// manager share an entry. Entries left without fields go.
pub fn record_update(
    entries: &mut Vec<ManagedFieldsEntry>,
    manager: &str,
    api_version: &str,
    subresource: &str,
    changes: &Changes,
    now: &str,
) {
    if changes.is_empty() {
        return;
    }
    for entry in entries.iter_mut() {
        entry.fields = entry
            .fields
            .difference(&changes.changed)
            .difference(&changes.removed);
    }
    let position = entries.iter().position(|e| {
        e.manager == manager
            && e.operation == "Update"
            && e.subresource == subresource
            && e.api_version == api_version
    });
    let mut entry = match position {
        Some(at) => entries.remove(at),
        None => ManagedFieldsEntry {
            manager: manager.to_owned(),
            operation: "Update".into(),
            api_version: api_version.to_owned(),
            time: None,
            subresource: subresource.to_owned(),
            fields: FieldSet::default(),
        },
    };
    entry.fields.union_with(&changes.changed);
    entry.time = Some(now.to_owned());
    entries.retain(|e| !e.fields.is_empty());
    if !entry.fields.is_empty() {
        entries.push(entry);
    }
}

/// A field another manager owns and an apply would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The other manager, as [`ManagedFieldsEntry::describe`] prints it.
    pub manager: String,
    /// The field, as [`display_path`] prints it.
    pub path: String,
}

/// Upstream's message for a list of conflicts.
pub fn conflict_message(conflicts: &[Conflict]) -> String {
    if let [only] = conflicts {
        return format!(
            "Apply failed with 1 conflict: conflict with {}: {}",
            only.manager, only.path
        );
    }
    let mut by_manager: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for conflict in conflicts {
        by_manager
            .entry(&conflict.manager)
            .or_default()
            .push(&conflict.path);
    }
    let mut lines = Vec::new();
    for (manager, paths) in by_manager {
        lines.push(format!("conflicts with {manager}:"));
        lines.extend(paths.iter().map(|p| format!("- {p}")));
    }
    format!(
        "Apply failed with {} conflicts: {}",
        conflicts.len(),
        lines.join("\n")
    )
}

/// Who applies, and how.
#[derive(Debug, Clone, Copy)]
pub struct ApplyRequest<'a> {
    /// The field manager.
    pub manager: &'a str,
    /// The API version of the configuration.
    pub api_version: &'a str,
    /// Take fields other managers own instead of failing.
    pub force: bool,
    /// The time to record (RFC 3339).
    pub now: &'a str,
    /// What the written (sub)resource tracks.
    pub scope: Scope,
}

/// Why an apply failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    /// The configuration cannot be merged.
    #[error(transparent)]
    Invalid(#[from] ManagedError),
    /// Other managers own fields the apply would change.
    #[error("{}", conflict_message(.0))]
    Conflicts(Vec<Conflict>),
}

/// Server-side apply of `config` onto `live` (both in the same API version): merge, detect
/// conflicts (or take the fields over with `force`), prune what the manager applied before and
/// no longer applies, and record the Apply entry. Returns the merged object.
pub fn apply(
    live: &Value,
    config: &Value,
    schema: SchemaRef,
    request: &ApplyRequest<'_>,
) -> Result<Value, ApplyError> {
    let ApplyRequest {
        manager,
        api_version,
        force,
        now,
        scope,
    } = *request;
    let applied = applied_set(config, schema, scope)?;
    let mut merged = merge(live, config, schema)?;
    let changes = update_sets(Some(live), &merged, schema, scope);
    let mut entries = ManagedFieldsEntry::read_all(live);
    let is_mine = |e: &ManagedFieldsEntry| {
        e.manager == manager && e.operation == "Apply" && e.subresource.is_empty()
    };

    let mut conflicts = Vec::new();
    for entry in entries.iter_mut().filter(|e| !is_mine(e)) {
        let taken = entry.fields.intersection(&changes.changed);
        if taken.is_empty() {
            continue;
        }
        if force {
            entry.fields = entry.fields.difference(&taken);
        } else {
            conflicts.extend(taken.paths().iter().map(|path| Conflict {
                manager: entry.describe(),
                path: display_path(path),
            }));
        }
    }
    if !conflicts.is_empty() {
        return Err(ApplyError::Conflicts(conflicts));
    }

    let previous = entries
        .iter()
        .find(|e| is_mine(e))
        .map(|e| e.fields.clone())
        .unwrap_or_default();
    let mut others = FieldSet::default();
    for entry in entries.iter().filter(|e| !is_mine(e)) {
        others.union_with(&entry.fields);
    }
    let dropped = previous.difference(&applied);
    remove_paths(&mut merged, &dropped.difference(&others), &others, schema);

    match entries.iter_mut().find(|e| is_mine(e)) {
        Some(entry) => {
            if entry.fields != applied || entry.api_version != api_version {
                entry.fields = applied;
                entry.api_version = api_version.to_owned();
                entry.time = Some(now.to_owned());
            }
        }
        None => entries.insert(
            0,
            ManagedFieldsEntry {
                manager: manager.to_owned(),
                operation: "Apply".into(),
                api_version: api_version.to_owned(),
                time: Some(now.to_owned()),
                subresource: String::new(),
                fields: applied,
            },
        ),
    }
    entries.retain(|e| !e.fields.is_empty());
    write_all(&mut merged, &entries);
    Ok(merged)
}

/// The Apply entry of a new object created by an apply.
pub fn apply_entry(
    config: &Value,
    schema: SchemaRef,
    scope: Scope,
    manager: &str,
    api_version: &str,
    now: &str,
) -> Result<ManagedFieldsEntry, ManagedError> {
    Ok(ManagedFieldsEntry {
        manager: manager.to_owned(),
        operation: "Apply".into(),
        api_version: api_version.to_owned(),
        time: Some(now.to_owned()),
        subresource: String::new(),
        fields: applied_set(config, schema, scope)?,
    })
}

/// The manager of a request without `fieldManager`: the User-Agent up to its first `/`.
pub fn manager_from_user_agent(user_agent: &str) -> String {
    user_agent.split('/').next().unwrap_or_default().to_owned()
}

/// The schema to use for a kind (unknown kinds: every map granular, every list atomic).
pub fn schema_of(group: &str, kind: &str) -> SchemaRef {
    crate::patch::schema_for(group, kind).unwrap_or(&Schema::UNKNOWN)
}

#[cfg(test)]
mod tests;
