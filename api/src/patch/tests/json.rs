//! RFC 6902 JSON patch and RFC 7386 JSON merge patch.

use serde_json::json;

use crate::patch::{
    JsonPatchLimits, PatchError, apply_json_patch, apply_json_patch_with_limits, apply_merge_patch,
};

#[test]
fn json_patch_operations_apply_in_order() {
    let document = json!({"a": {"b": [1, 2]}, "c": "x", "d": {"e": 1}});
    let patch = json!([
        {"op": "add", "path": "/a/b/1", "value": 9},
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "remove", "path": "/c"},
        {"op": "replace", "path": "/d/e", "value": 2},
        {"op": "copy", "from": "/d", "path": "/f"},
        {"op": "move", "from": "/f/e", "path": "/g"},
        {"op": "test", "path": "/g", "value": 2},
        {"op": "add", "path": "/h~1i~0j", "value": true}
    ]);
    let result = apply_json_patch(&document, &patch).unwrap();
    assert_eq!(
        result,
        json!({"a": {"b": [1, 9, 2, 3]}, "d": {"e": 2}, "f": {}, "g": 2, "h/i~j": true})
    );
}

#[test]
fn json_patch_replacing_the_root_replaces_the_document() {
    let patch = json!([{"op": "replace", "path": "", "value": {"new": 1}}]);
    assert_eq!(
        apply_json_patch(&json!({"old": 1}), &patch).unwrap(),
        json!({"new": 1})
    );
}

#[test]
fn failed_test_operation_is_an_error_and_nothing_applies() {
    let document = json!({"a": 1});
    let patch = json!([
        {"op": "replace", "path": "/a", "value": 2},
        {"op": "test", "path": "/a", "value": 3}
    ]);
    let error = apply_json_patch(&document, &patch).unwrap_err();
    assert_eq!(error, PatchError::TestFailed { path: "/a".into() });
    assert_eq!(error.status_code(), 422);
    assert_eq!(document, json!({"a": 1}));
}

#[test]
fn json_patch_errors_are_typed() {
    let document = json!({"a": [1], "s": "x"});
    let cases = [
        (json!({"op": "add"}), PatchError::JsonPatchNotAList),
        (
            json!([{"op": "jump", "path": "/a"}]),
            PatchError::InvalidJsonPatch("unknown operation \"jump\"".into()),
        ),
        (
            json!([{"op": "add", "path": "/b"}]),
            PatchError::InvalidJsonPatch("operation \"add\" needs a \"value\"".into()),
        ),
        (
            json!([{"op": "add", "path": "b", "value": 1}]),
            PatchError::InvalidPointer("b".into()),
        ),
        (
            json!([{"op": "add", "path": "/~2", "value": 1}]),
            PatchError::InvalidPointer("/~2".into()),
        ),
        (
            json!([{"op": "remove", "path": "/missing"}]),
            PatchError::PathNotFound {
                path: "/missing".into(),
            },
        ),
        (
            json!([{"op": "replace", "path": "/missing", "value": 1}]),
            PatchError::PathNotFound {
                path: "/missing".into(),
            },
        ),
        (
            json!([{"op": "add", "path": "/x/y", "value": 1}]),
            PatchError::PathNotFound {
                path: "/x/y".into(),
            },
        ),
        (
            json!([{"op": "add", "path": "/a/5", "value": 1}]),
            PatchError::PathNotFound {
                path: "/a/5".into(),
            },
        ),
        (
            json!([{"op": "add", "path": "/a/01", "value": 1}]),
            PatchError::PathNotFound {
                path: "/a/01".into(),
            },
        ),
        (
            json!([{"op": "remove", "path": "/a/-"}]),
            PatchError::PathNotFound {
                path: "/a/-".into(),
            },
        ),
        (
            json!([{"op": "add", "path": "/s/t", "value": 1}]),
            PatchError::PathNotFound {
                path: "/s/t".into(),
            },
        ),
        (
            json!([{"op": "move", "from": "/a", "path": "/a/0"}]),
            PatchError::InvalidJsonPatch("cannot move \"/a\" into itself".into()),
        ),
    ];
    for (patch, expected) in cases {
        assert_eq!(
            apply_json_patch(&document, &patch),
            Err(expected),
            "patch {patch}"
        );
    }
}

#[test]
fn json_patch_test_of_null_matches_a_missing_key_as_upstream() {
    let document = json!({"a": {"b": 1}});
    let missing = json!([{"op": "test", "path": "/a/c", "value": null}]);
    assert_eq!(apply_json_patch(&document, &missing).unwrap(), document);
    let no_parent = json!([{"op": "test", "path": "/x/c", "value": null}]);
    assert_eq!(
        apply_json_patch(&document, &no_parent),
        Err(PatchError::PathNotFound {
            path: "/x/c".into()
        })
    );
    let not_null = json!([{"op": "test", "path": "/a/b", "value": null}]);
    assert_eq!(
        apply_json_patch(&document, &not_null),
        Err(PatchError::TestFailed {
            path: "/a/b".into()
        })
    );
}

#[test]
fn json_patch_error_status_codes_follow_upstream() {
    assert_eq!(
        apply_json_patch(&json!({}), &json!({}))
            .unwrap_err()
            .status_code(),
        400
    );
    let bad_op = json!([{"op": "jump", "path": "/a"}]);
    assert_eq!(
        apply_json_patch(&json!({}), &bad_op)
            .unwrap_err()
            .status_code(),
        422
    );
    let limits = JsonPatchLimits {
        max_operations: 0,
        max_copied_bytes: 0,
    };
    let one = json!([{"op": "test", "path": "", "value": {}}]);
    let too_many = apply_json_patch_with_limits(&json!({}), &one, limits).unwrap_err();
    assert_eq!(too_many.status_code(), 413);
}

#[test]
fn json_patch_limits_bound_operations_and_copies() {
    let limits = JsonPatchLimits {
        max_operations: 2,
        max_copied_bytes: 100,
    };
    let three = json!([
        {"op": "test", "path": "", "value": {}},
        {"op": "test", "path": "", "value": {}},
        {"op": "test", "path": "", "value": {}}
    ]);
    assert_eq!(
        apply_json_patch_with_limits(&json!({}), &three, limits),
        Err(PatchError::TooManyOperations { count: 3, limit: 2 })
    );

    // Each copy doubles the document: the budget stops it long before it explodes.
    let document = json!({"a": "0123456789012345678901234567890123456789"});
    let doubling = json!([
        {"op": "copy", "from": "/a", "path": "/b"},
        {"op": "copy", "from": "", "path": "/c"}
    ]);
    assert_eq!(
        apply_json_patch_with_limits(&document, &doubling, limits),
        Err(PatchError::CopyLimitExceeded { limit: 100 })
    );
    let one_copy = json!([{"op": "copy", "from": "/a", "path": "/b"}]);
    let result = apply_json_patch_with_limits(&document, &one_copy, limits).unwrap();
    assert_eq!(result["b"], document["a"]);
}

#[test]
fn merge_patch_follows_rfc_7386() {
    // The example of RFC 7386 section 3.
    let target = json!({
        "title": "Goodbye!",
        "author": {"givenName": "John", "familyName": "Doe"},
        "tags": ["example", "sample"],
        "content": "This will be unchanged"
    });
    let patch = json!({
        "title": "Hello!",
        "phoneNumber": "+01-123-456-7890",
        "author": {"familyName": null},
        "tags": ["example"]
    });
    assert_eq!(
        apply_merge_patch(&target, &patch),
        json!({
            "title": "Hello!",
            "author": {"givenName": "John"},
            "tags": ["example"],
            "content": "This will be unchanged",
            "phoneNumber": "+01-123-456-7890"
        })
    );
}

#[test]
fn merge_patch_edge_cases() {
    assert_eq!(apply_merge_patch(&json!({"a": 1}), &json!("x")), json!("x"));
    assert_eq!(
        apply_merge_patch(&json!([1]), &json!({"a": 1})),
        json!({"a": 1})
    );
    assert_eq!(
        apply_merge_patch(&json!({"a": "b"}), &json!({"a": {"c": null}})),
        json!({"a": {}})
    );
    assert_eq!(
        apply_merge_patch(&json!({}), &json!({"a": {"bb": {"ccc": null}}})),
        json!({"a": {"bb": {}}})
    );
}
