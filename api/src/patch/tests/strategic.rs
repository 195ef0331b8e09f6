//! Strategic merge patch table tests, in the spirit of upstream's `patch_test.go`, over a small
//! test type that has one field of each kind of patch metadata.

use serde_json::{Value, json};

use crate::patch::{Field, PatchError, PatchStrategy, Schema, apply_strategic_merge_patch};

const fn field(
    name: &'static str,
    strategy: PatchStrategy,
    retain_keys: bool,
    merge_key: Option<&'static str>,
    schema: &'static Schema,
) -> Field {
    Field {
        name,
        strategy,
        retain_keys,
        merge_key,
        schema,
    }
}

/// `items` merge by `name` (recursively), `ports` merge by the number `port`, `tags` merge as a
/// set of primitives, `replaced` is a `replace` map, `union` a `retainKeys` map, `volumes` a
/// `merge,retainKeys` list, and `maps` a merge list without a merge key (a schema bug).
pub(super) static ITEM: Schema = Schema {
    name: "test.Item",
    fields: &[
        field("items", PatchStrategy::Merge, false, Some("name"), &ITEM),
        field(
            "ports",
            PatchStrategy::Merge,
            false,
            Some("port"),
            &Schema::UNKNOWN,
        ),
        field("tags", PatchStrategy::Merge, false, None, &Schema::UNKNOWN),
        field(
            "replaced",
            PatchStrategy::Replace,
            false,
            None,
            &Schema::UNKNOWN,
        ),
        field(
            "union",
            PatchStrategy::Default,
            true,
            None,
            &Schema::UNKNOWN,
        ),
        field(
            "volumes",
            PatchStrategy::Merge,
            true,
            Some("name"),
            &Schema::UNKNOWN,
        ),
        field("maps", PatchStrategy::Merge, false, None, &Schema::UNKNOWN),
    ],
};

struct Case {
    name: &'static str,
    original: Value,
    patch: Value,
    expected: Result<Value, PatchError>,
}

fn ok(name: &'static str, original: Value, patch: Value, expected: Value) -> Case {
    Case {
        name,
        original,
        patch,
        expected: Ok(expected),
    }
}

fn fails(name: &'static str, original: Value, patch: Value, error: PatchError) -> Case {
    Case {
        name,
        original,
        patch,
        expected: Err(error),
    }
}

fn cases() -> Vec<Case> {
    vec![
        // --- maps and null deletion ---
        ok(
            "empty patch changes nothing",
            json!({"a": 1}),
            json!({}),
            json!({"a": 1}),
        ),
        ok(
            "adds a field",
            json!({"a": 1}),
            json!({"b": 2}),
            json!({"a": 1, "b": 2}),
        ),
        ok(
            "replaces a scalar",
            json!({"a": 1}),
            json!({"a": "x"}),
            json!({"a": "x"}),
        ),
        ok(
            "null deletes a key",
            json!({"a": 1, "b": 2}),
            json!({"a": null}),
            json!({"b": 2}),
        ),
        ok(
            "null for a missing key adds nothing",
            json!({"a": 1}),
            json!({"z": null}),
            json!({"a": 1}),
        ),
        ok(
            "nested maps merge key by key",
            json!({"m": {"a": 1, "b": 2}}),
            json!({"m": {"b": 3, "c": 4}}),
            json!({"m": {"a": 1, "b": 3, "c": 4}}),
        ),
        ok(
            "nested null deletes inside a map",
            json!({"m": {"a": 1, "b": 2}}),
            json!({"m": {"a": null}}),
            json!({"m": {"b": 2}}),
        ),
        ok(
            "nulls inside a new value are dropped",
            json!({}),
            json!({"m": {"a": null, "b": {"c": null, "d": 1}}}),
            json!({"m": {"b": {"d": 1}}}),
        ),
        ok(
            "a value of another type replaces the original",
            json!({"m": "scalar"}),
            json!({"m": {"a": 1}}),
            json!({"m": {"a": 1}}),
        ),
        ok(
            "directive maps inside a new value are removed",
            json!({}),
            json!({"m": {"gone": {"$patch": "delete"}, "kept": 1, "l": [{"$patch": "replace"}, 2]}}),
            json!({"m": {"kept": 1, "l": [2]}}),
        ),
        ok(
            "a map without metadata merges like JSON merge patch",
            json!({"unknown": {"a": 1, "b": {"c": 1}}}),
            json!({"unknown": {"b": {"d": 2}}}),
            json!({"unknown": {"a": 1, "b": {"c": 1, "d": 2}}}),
        ),
        ok(
            "a list without metadata is replaced whole",
            json!({"atomic": [{"name": "a", "x": 1}, {"name": "b"}]}),
            json!({"atomic": [{"name": "a"}]}),
            json!({"atomic": [{"name": "a"}]}),
        ),
        ok(
            "a replace-strategy map is replaced whole",
            json!({"replaced": {"a": 1, "b": 2}}),
            json!({"replaced": {"c": 3}}),
            json!({"replaced": {"c": 3}}),
        ),
        ok(
            "a null original is an empty object",
            Value::Null,
            json!({"a": 1}),
            json!({"a": 1}),
        ),
        // --- $patch on maps ---
        ok(
            "$patch: replace on a map replaces it",
            json!({"m": {"a": 1, "b": 2}}),
            json!({"m": {"$patch": "replace", "c": 3}}),
            json!({"m": {"c": 3}}),
        ),
        ok(
            "$patch: delete on a map empties it",
            json!({"m": {"a": 1}, "keep": true}),
            json!({"m": {"$patch": "delete"}}),
            json!({"m": {}, "keep": true}),
        ),
        ok(
            "$patch: delete at the top level empties the object",
            json!({"a": 1}),
            json!({"$patch": "delete"}),
            json!({}),
        ),
        fails(
            "$patch: merge on a map is rejected as upstream does",
            json!({"m": {"a": 1}}),
            json!({"m": {"$patch": "merge"}}),
            PatchError::UnknownDirective("\"merge\"".into()),
        ),
        fails(
            "an unknown $patch value is an error",
            json!({}),
            json!({"$patch": "explode"}),
            PatchError::UnknownDirective("\"explode\"".into()),
        ),
        // --- lists merged by key ---
        ok(
            "an existing item merges in place",
            json!({"items": [{"name": "a", "v": 1}, {"name": "b", "v": 1}, {"name": "c"}]}),
            json!({"items": [{"name": "b", "v": 2, "w": 3}]}),
            json!({"items": [{"name": "a", "v": 1}, {"name": "b", "v": 2, "w": 3}, {"name": "c"}]}),
        ),
        ok(
            "a new item goes before the server's items without $setElementOrder",
            json!({"items": [{"name": "a"}, {"name": "b"}]}),
            json!({"items": [{"name": "c"}]}),
            json!({"items": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}),
        ),
        ok(
            "null deletes a field of a merged item",
            json!({"items": [{"name": "a", "v": 1, "w": 2}]}),
            json!({"items": [{"name": "a", "v": null}]}),
            json!({"items": [{"name": "a", "w": 2}]}),
        ),
        ok(
            "a numeric merge key matches",
            json!({"ports": [{"port": 80, "name": "http"}, {"port": 443}]}),
            json!({"ports": [{"port": 443, "name": "https"}]}),
            json!({"ports": [{"port": 80, "name": "http"}, {"port": 443, "name": "https"}]}),
        ),
        ok(
            "$patch: delete removes the item with that key",
            json!({"items": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}),
            json!({"items": [{"name": "b", "$patch": "delete"}]}),
            json!({"items": [{"name": "a"}, {"name": "c"}]}),
        ),
        ok(
            "$patch: delete of a missing item is a no-op",
            json!({"items": [{"name": "a"}]}),
            json!({"items": [{"name": "z", "$patch": "delete"}]}),
            json!({"items": [{"name": "a"}]}),
        ),
        ok(
            "$patch: replace in a list replaces the list with the other items",
            json!({"items": [{"name": "a", "v": 1}, {"name": "b"}]}),
            json!({"items": [{"$patch": "replace"}, {"name": "c"}, {"name": "a"}]}),
            json!({"items": [{"name": "c"}, {"name": "a"}]}),
        ),
        ok(
            "lists nested in merged items merge too",
            json!({"items": [{"name": "a", "items": [{"name": "x", "v": 1}, {"name": "y"}]}]}),
            json!({"items": [{"name": "a", "items": [{"name": "x", "v": 2}]}]}),
            json!({"items": [{"name": "a", "items": [{"name": "x", "v": 2}, {"name": "y"}]}]}),
        ),
        ok(
            "two patch items with one new key merge into one item",
            json!({"items": []}),
            json!({"items": [{"name": "n", "a": 1}, {"name": "n", "b": 2}]}),
            json!({"items": [{"name": "n", "a": 1, "b": 2}]}),
        ),
        ok(
            "a merge list missing from the original is taken as is",
            json!({}),
            json!({"items": [{"name": "a"}]}),
            json!({"items": [{"name": "a"}]}),
        ),
        fails(
            "$patch: merge in a list is rejected as upstream does",
            json!({"items": [{"name": "a"}]}),
            json!({"items": [{"name": "a", "$patch": "merge"}]}),
            PatchError::MergeDirectiveInList,
        ),
        fails(
            "a patch item without the merge key is an error",
            json!({"items": [{"name": "a"}]}),
            json!({"items": [{"v": 1}]}),
            PatchError::MissingMergeKey {
                key: "name".into(),
                item: r#"{"v":1}"#.into(),
            },
        ),
        fails(
            "a list of lists is an error",
            json!({"tags": [["a"]]}),
            json!({"tags": [["b"]]}),
            PatchError::ListOfLists,
        ),
        fails(
            "mixed item types are an error",
            json!({"tags": ["a"]}),
            json!({"tags": [1]}),
            PatchError::MixedListElements,
        ),
        fails(
            "a merge list of maps without a merge key is an error",
            json!({"maps": [{"a": 1}]}),
            json!({"maps": [{"b": 2}]}),
            PatchError::MergeWithoutKey("unknown"),
        ),
        // --- lists of primitives ---
        ok(
            "a primitive merge list is a union, patch items first",
            json!({"tags": ["a", "b"]}),
            json!({"tags": ["c", "a"]}),
            json!({"tags": ["c", "a", "b"]}),
        ),
        ok(
            "a primitive merge list drops duplicates",
            json!({"tags": ["a", "a", "b"]}),
            json!({"tags": ["b"]}),
            json!({"tags": ["a", "b"]}),
        ),
        ok(
            "$deleteFromPrimitiveList removes values",
            json!({"tags": ["a", "b", "c", "b"]}),
            json!({"$deleteFromPrimitiveList/tags": ["b", "z"]}),
            json!({"tags": ["a", "c"]}),
        ),
        ok(
            "$deleteFromPrimitiveList works on a list without metadata too",
            json!({"atomic": [1, 2, 3]}),
            json!({"$deleteFromPrimitiveList/atomic": [2]}),
            json!({"atomic": [1, 3]}),
        ),
        ok(
            "$deleteFromPrimitiveList of a missing list adds nothing",
            json!({"a": 1}),
            json!({"$deleteFromPrimitiveList/tags": ["x"]}),
            json!({"a": 1}),
        ),
        ok(
            "additions and deletions of one primitive list combine",
            json!({"tags": ["a", "b"]}),
            json!({"tags": ["c"], "$deleteFromPrimitiveList/tags": ["a"]}),
            json!({"tags": ["c", "b"]}),
        ),
        fails(
            "a malformed $deleteFromPrimitiveList key is an error",
            json!({"tags": ["a"]}),
            json!({"$deleteFromPrimitiveListtags": ["a"]}),
            PatchError::BadPrimitiveListFormat,
        ),
        // --- $setElementOrder ---
        ok(
            "$setElementOrder reorders a merge list",
            json!({"items": [{"name": "a", "v": 1}, {"name": "b"}, {"name": "c"}]}),
            json!({"$setElementOrder/items": [{"name": "c"}, {"name": "a"}, {"name": "b"}]}),
            json!({"items": [{"name": "c"}, {"name": "a", "v": 1}, {"name": "b"}]}),
        ),
        ok(
            "$setElementOrder places a new item, server-only items after it as upstream does",
            json!({"items": [{"name": "a"}, {"name": "server"}, {"name": "b"}]}),
            json!({
                "$setElementOrder/items": [{"name": "a"}, {"name": "new"}, {"name": "b"}],
                "items": [{"name": "new", "v": 1}]
            }),
            json!({"items": [{"name": "a"}, {"name": "new", "v": 1}, {"name": "server"}, {"name": "b"}]}),
        ),
        ok(
            "$setElementOrder with a deletion lets a new item take the deleted item's place",
            json!({"items": [{"name": "1"}, {"name": "2"}, {"name": "4"}]}),
            json!({
                "$setElementOrder/items": [{"name": "2"}, {"name": "3"}],
                "items": [{"name": "3"}, {"name": "1", "$patch": "delete"}]
            }),
            json!({"items": [{"name": "2"}, {"name": "4"}, {"name": "3"}]}),
        ),
        ok(
            "$setElementOrder reorders a primitive list",
            json!({"tags": ["a", "b", "c"]}),
            json!({"$setElementOrder/tags": ["c", "b", "a"]}),
            json!({"tags": ["c", "b", "a"]}),
        ),
        ok(
            "$setElementOrder may name items the list lacks",
            json!({"tags": [1, 3]}),
            json!({"$setElementOrder/tags": [3, 2, 1]}),
            json!({"tags": [3, 1]}),
        ),
        ok(
            "$setElementOrder for a list missing from the original orders the patch list",
            json!({}),
            json!({
                "$setElementOrder/items": [{"name": "b"}, {"name": "a"}],
                "items": [{"name": "b"}, {"name": "a", "x": {"$patch": "delete"}}]
            }),
            json!({"items": [{"name": "b"}, {"name": "a"}]}),
        ),
        ok(
            "$setElementOrder of an empty or null list keeps it empty",
            json!({"items": [], "tags": null}),
            json!({"$setElementOrder/items": [{"name": "a"}], "$setElementOrder/tags": ["a"]}),
            json!({"items": [], "tags": null}),
        ),
        fails(
            "patch items out of $setElementOrder's order are an error",
            json!({"items": [{"name": "a"}, {"name": "b"}]}),
            json!({
                "$setElementOrder/items": [{"name": "a"}, {"name": "b"}],
                "items": [{"name": "b", "v": 1}, {"name": "a", "v": 1}]
            }),
            PatchError::SetElementOrderMismatch,
        ),
        fails(
            "a $setElementOrder that is not a list is an error",
            json!({"items": []}),
            json!({"$setElementOrder/items": {"name": "a"}}),
            PatchError::TypeMismatch {
                expected: "list",
                found: "map",
            },
        ),
        fails(
            "a malformed $setElementOrder key is an error",
            json!({"items": [{"name": "a"}]}),
            json!({"$setElementOrderitems": [{"name": "a"}]}),
            PatchError::BadSetElementOrderFormat,
        ),
        // --- $retainKeys ---
        ok(
            "$retainKeys clears the keys it does not list",
            json!({"union": {"type": "A", "a": {"x": 1}, "other": 1}}),
            json!({"union": {"$retainKeys": ["type", "b"], "type": "B", "b": {"y": 2}}}),
            json!({"union": {"type": "B", "b": {"y": 2}}}),
        ),
        ok(
            "$retainKeys allows nulls for keys it does not list",
            json!({"union": {"type": "A", "a": 1}}),
            json!({"union": {"$retainKeys": ["type"], "type": "C", "a": null}}),
            json!({"union": {"type": "C"}}),
        ),
        ok(
            "$retainKeys applies inside merge list items",
            json!({"volumes": [{"name": "data", "emptyDir": {}}, {"name": "other", "emptyDir": {}}]}),
            json!({
                "$setElementOrder/volumes": [{"name": "data"}, {"name": "other"}],
                "volumes": [{"$retainKeys": ["configMap", "name"], "name": "data", "configMap": {"name": "cfg"}}]
            }),
            json!({"volumes": [{"name": "data", "configMap": {"name": "cfg"}}, {"name": "other", "emptyDir": {}}]}),
        ),
        fails(
            "a patch key missing from $retainKeys is an error",
            json!({"union": {"type": "A"}}),
            json!({"union": {"$retainKeys": ["type"], "type": "B", "b": 1}}),
            PatchError::BadRetainKeysFormat,
        ),
        fails(
            "a $retainKeys that is not a list is an error",
            json!({"union": {"type": "A"}}),
            json!({"union": {"$retainKeys": "type"}}),
            PatchError::BadRetainKeysFormat,
        ),
        // --- top-level shape ---
        fails(
            "an original that is not an object is an error",
            json!([1]),
            json!({}),
            PatchError::NotAnObject("original object"),
        ),
        fails(
            "a patch that is not an object is an error",
            json!({}),
            json!([1]),
            PatchError::NotAnObject("strategic merge patch"),
        ),
    ]
}

#[test]
fn strategic_merge_patch_table() {
    let cases = cases();
    assert!(cases.len() >= 40, "the table should stay thorough");
    let mut failures = Vec::new();
    for case in &cases {
        let actual = apply_strategic_merge_patch(&case.original, &case.patch, &ITEM);
        if actual != case.expected {
            failures.push(format!(
                "{}:\n  expected {:?}\n  actual   {:?}",
                case.name, case.expected, actual
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} case(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn inputs_are_not_modified() {
    let original = json!({"items": [{"name": "a"}]});
    let patch = json!({"items": [{"name": "a", "$patch": "delete"}]});
    let before = (original.clone(), patch.clone());
    let result = apply_strategic_merge_patch(&original, &patch, &ITEM).unwrap();
    assert_eq!(result, json!({"items": []}));
    assert_eq!((original, patch), before);
}
