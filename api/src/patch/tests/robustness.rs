//! Arbitrary (generated) documents and patches must produce a result or an error, never a
//! panic: patches come from clients.

use serde_json::{Map, Value, json};

use super::strategic::ITEM;
use crate::patch::{
    apply_json_patch, apply_merge_patch, apply_strategic_merge_patch, create_three_way_merge_patch,
    create_two_way_merge_patch, schema_for,
};

/// A small deterministic generator (xorshift), so failures reproduce.
struct Generator(u64);

impl Generator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, bound: usize) -> usize {
        usize::try_from(self.next() % bound as u64).unwrap_or(0)
    }

    fn pick<'a>(&mut self, choices: &[&'a str]) -> &'a str {
        choices[self.below(choices.len())]
    }

    /// A JSON value biased towards the keys and values the patch formats treat specially.
    fn value(&mut self, depth: usize) -> Value {
        const KEYS: &[&str] = &[
            "items",
            "tags",
            "ports",
            "union",
            "volumes",
            "maps",
            "name",
            "port",
            "a",
            "b",
            "containers",
            "env",
            "metadata",
            "spec",
            "finalizers",
            "$patch",
            "$retainKeys",
            "$setElementOrder/items",
            "$setElementOrder/tags",
            "$deleteFromPrimitiveList/tags",
            "$setElementOrder/containers",
            "$deleteFromPrimitiveList/finalizers",
        ];
        const WORDS: &[&str] = &["delete", "replace", "merge", "a", "b", "name", "items"];
        let leaf = depth == 0 || self.below(3) == 0;
        match (leaf, self.below(6)) {
            (true, 0) => Value::Null,
            (true, 1) => Value::Bool(self.below(2) == 0),
            (true, 2 | 3) => json!(self.below(4)),
            (true, _) => json!(self.pick(WORDS)),
            (false, 0 | 1) => {
                let len = self.below(4);
                Value::Array((0..len).map(|_| self.value(depth - 1)).collect())
            }
            (false, _) => {
                let mut map = Map::new();
                for _ in 0..self.below(5) {
                    map.insert(self.pick(KEYS).to_owned(), self.value(depth - 1));
                }
                Value::Object(map)
            }
        }
    }

    fn json_patch(&mut self) -> Value {
        const OPS: &[&str] = &["add", "remove", "replace", "move", "copy", "test"];
        const PATHS: &[&str] = &[
            "",
            "/a",
            "/a/0",
            "/a/-",
            "/items/1/name",
            "/b/c",
            "/~1",
            "/a/01",
        ];
        let operations = (0..self.below(4))
            .map(|_| {
                json!({
                    "op": self.pick(OPS),
                    "path": self.pick(PATHS),
                    "from": self.pick(PATHS),
                    "value": self.value(2)
                })
            })
            .collect();
        Value::Array(operations)
    }
}

#[test]
fn arbitrary_inputs_never_panic() {
    let pod = schema_for("", "Pod").unwrap();
    let mut generator = Generator(0x5eed_1234_abcd_ef01);
    for _ in 0..3000 {
        let original = generator.value(4);
        let patch = generator.value(4);
        let other = generator.value(4);
        for schema in [&ITEM, pod] {
            let _ = apply_strategic_merge_patch(&original, &patch, schema);
            if let Ok(two_way) = create_two_way_merge_patch(&original, &other, schema) {
                let _ = apply_strategic_merge_patch(&original, &two_way, schema);
            }
            let _ = create_three_way_merge_patch(&original, &other, &patch, schema);
        }
        let _ = apply_merge_patch(&original, &patch);
        let _ = apply_json_patch(&original, &generator.json_patch());
    }
}
