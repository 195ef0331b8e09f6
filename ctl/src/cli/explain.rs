//! `tug explain RESOURCE[.field.path]`: the documentation of a type or field from the
//! server's OpenAPI v3 documents, printed as kubectl 1.32's `plaintext` template prints it.

use clap::Args;
use serde_json::Value;

use super::Ctx;

/// `tug explain` flags (kubectl's).
#[derive(Args, Debug)]
pub struct ExplainArgs {
    /// `TYPE[.FIELD...]`, e.g. `deployments.spec.replicas`.
    pub target: String,
    /// The group/version to explain (default: the type's preferred one).
    #[arg(long)]
    pub api_version: Option<String>,
    /// Print the fields of fields, names and types only.
    #[arg(long)]
    pub recursive: bool,
}

/// `tug explain`.
pub async fn run(ctx: &Ctx, args: ExplainArgs) -> anyhow::Result<()> {
    let mut parts = args.target.split('.');
    let type_name = parts.next().unwrap_or_default();
    let field_path: Vec<&str> = parts.collect();
    let resources = ctx.resources().await?;
    let mut resource = resources
        .resolve(type_name)
        .map_err(|_| anyhow::anyhow!("the server doesn't have a resource type {type_name:?}"))?
        .clone();
    if let Some(api_version) = &args.api_version {
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        resource = resources
            .list
            .iter()
            .find(|r| r.group == group && r.version == version && r.plural == resource.plural)
            .ok_or_else(|| {
                anyhow::anyhow!(
                    "couldn't find resource for \"{}\" in {api_version}",
                    resource.group_resource()
                )
            })?
            .clone();
    }
    let index = ctx.get("/openapi/v3").await?;
    let key = if resource.group.is_empty() {
        format!("api/{}", resource.version)
    } else {
        format!("apis/{}/{}", resource.group, resource.version)
    };
    let url = index
        .pointer(&format!(
            "/paths/{}/serverRelativeURL",
            key.replace('/', "~1")
        ))
        .and_then(Value::as_str)
        .ok_or_else(|| anyhow::anyhow!("the server has no OpenAPI v3 document for {key}"))?;
    let document = ctx.get(url).await?;
    print!(
        "{}",
        explain(
            &document,
            &resource.group,
            &resource.version,
            &resource.kind,
            &field_path,
            args.recursive,
        )?
    );
    Ok(())
}

/// The explanation of `kind` (and of `field_path` in it) from one OpenAPI v3 document.
pub fn explain(
    document: &Value,
    group: &str,
    version: &str,
    kind: &str,
    field_path: &[&str],
    recursive: bool,
) -> anyhow::Result<String> {
    let gvk = serde_json::json!({"group": group, "version": version, "kind": kind});
    let schema = document
        .pointer("/components/schemas")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(_, schema)| schema)
        .find(|schema| {
            schema
                .get("x-kubernetes-group-version-kind")
                .and_then(Value::as_array)
                .is_some_and(|list| list.contains(&gvk))
        })
        .ok_or_else(|| {
            anyhow::anyhow!("GVK {group}/{version}, Kind={kind} not found in OpenAPI schema")
        })?;
    let mut out = String::new();
    if !group.is_empty() {
        out.push_str(&format!("GROUP:      {group}\n"));
    }
    out.push_str(&format!("KIND:       {kind}\nVERSION:    {version}\n\n"));
    let explained = Explainer {
        document,
        recursive,
    }
    .output(schema, field_path, &mut Vec::new());
    match explained {
        Some(text) if !text.is_empty() => out.push_str(&text),
        _ => {
            let field = field_path.last().copied().unwrap_or_default();
            anyhow::bail!("field {field:?} does not exist");
        }
    }
    out.push('\n');
    Ok(out)
}

struct Explainer<'a> {
    document: &'a Value,
    recursive: bool,
}

impl<'a> Explainer<'a> {
    /// `#/components/schemas/NAME` in the document.
    fn resolve(&self, reference: &str) -> Option<&'a Value> {
        let name = reference.strip_prefix("#/components/schemas/")?;
        self.document.pointer("/components/schemas")?.get(name)
    }

    fn resolved(&self, schema: &'a Value) -> &'a Value {
        schema
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| self.resolve(r))
            .unwrap_or(schema)
    }

    /// The template's `output`: follow the path, then print the schema it ends at.
    fn output(
        &self,
        schema: &'a Value,
        path: &[&str],
        history: &mut Vec<String>,
    ) -> Option<String> {
        let reference = schema.get("$ref").and_then(Value::as_str).unwrap_or("");
        let resolved = self.resolved(schema);
        let Some((first, rest)) = path.split_first() else {
            let mut out = String::from("DESCRIPTION:\n");
            let description = self.description(resolved);
            let description = if description.is_empty() {
                "<empty>".to_owned()
            } else {
                description
            };
            out.push_str(&indent(&wrap(&description, 76), 4));
            out.push('\n');
            out.push_str(&external_docs(resolved, 0));
            let fields = self.field_list(resolved, 1, self.recursive, &[]);
            if !fields.is_empty() {
                out.push_str("FIELDS:\n");
                out.push_str(&fields);
            }
            return Some(out);
        };
        if !reference.is_empty() && history.iter().any(|h| h == reference) {
            return None;
        }
        history.push(reference.to_owned());
        if let Some(sub) = resolved.get("properties").and_then(|p| p.get(*first)) {
            let mut out = String::new();
            if rest.is_empty() {
                out.push_str(&format!("FIELD: {first} <{}>\n", self.type_guess(sub)));
                out.push_str(&self.enum_text(sub, true, 0));
                out.push_str("\n\n");
            }
            out.push_str(&self.output(sub, rest, &mut Vec::new())?);
            return Some(out);
        }
        if let Some(items) = non_empty(resolved.get("items")) {
            return self.output(items, path, history);
        }
        if let Some(map) = schema_map(resolved.get("additionalProperties")) {
            return self.output(map, path, history);
        }
        for alternative in resolved
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(text) = self.output(alternative, path, history)
                && !text.is_empty()
            {
                return Some(text);
            }
        }
        None
    }

    /// The template's `description`: the schema's and those of its `allOf`, items and map
    /// values, one per line.
    fn description(&self, schema: &'a Value) -> String {
        let schema = self.resolved(schema);
        let mut out = String::new();
        if let Some(text) = schema.get("description").and_then(Value::as_str)
            && !text.is_empty()
        {
            out.push_str(text);
            out.push('\n');
        }
        for alternative in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&self.description(alternative));
        }
        if let Some(items) = non_empty(schema.get("items")) {
            out.push_str(&self.description(items));
        }
        if let Some(map) = schema_map(schema.get("additionalProperties")) {
            out.push_str(&self.description(map));
        }
        out
    }

    /// The template's `fieldList`: every property, sorted, with its type and description
    /// (with `recursive`, names and types only, each followed by its own fields one level
    /// deeper); then those of `allOf`, items and map values. A `$ref` already followed on the
    /// way here is not followed again (cycles).
    fn field_list(
        &self,
        schema: &'a Value,
        level: usize,
        recursive: bool,
        history: &[&'a str],
    ) -> String {
        let reference = schema.get("$ref").and_then(Value::as_str).unwrap_or("");
        if !reference.is_empty() && history.contains(&reference) {
            return String::new();
        }
        let mut history = history.to_vec();
        history.push(reference);
        let resolved = self.resolved(schema);
        let mut out = String::new();
        if let Some(properties) = resolved.get("properties").and_then(Value::as_object) {
            let mut names: Vec<&String> = properties.keys().collect();
            names.sort();
            for name in names {
                let field = &properties[name.as_str()];
                out.push_str(&self.field_detail(resolved, name, field, level, recursive));
                if recursive {
                    out.push_str(&self.field_list(field, level + 1, recursive, &history));
                }
            }
        }
        for alternative in resolved
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&self.field_list(alternative, level, recursive, &history));
        }
        if let Some(items) = non_empty(resolved.get("items")) {
            out.push_str(&self.field_list(items, level, recursive, &history));
        }
        if let Some(map) = schema_map(resolved.get("additionalProperties")) {
            out.push_str(&self.field_list(map, level, recursive, &history));
        }
        out
    }

    fn field_detail(
        &self,
        parent: &Value,
        name: &str,
        field: &'a Value,
        level: usize,
        short: bool,
    ) -> String {
        let indent_amount = level * 2;
        let required = parent
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|n| n.as_str() == Some(name)));
        let mut out = format!(
            "{}{name}\t<{}>{}",
            " ".repeat(indent_amount),
            self.type_guess(field),
            if required { " -required-" } else { "" }
        );
        out.push_str(&self.enum_text(field, false, indent_amount));
        out.push('\n');
        if short {
            return out;
        }
        let description = field
            .get("description")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
            .unwrap_or("<no description>");
        out.push_str(&indent(
            &wrap(description, 78usize.saturating_sub(indent_amount)),
            indent_amount + 2,
        ));
        out.push('\n');
        out.push_str(&external_docs(field, indent_amount + 2));
        out.push('\n');
        out
    }

    /// The template's `typeGuess`: `string`, `Object`, `[]Container`, `map[string]string`...
    fn type_guess(&self, schema: &'a Value) -> String {
        if let Some(items) = non_empty(schema.get("items")) {
            return format!("[]{}", self.type_guess(items));
        }
        if let Some(map) = schema_map(schema.get("additionalProperties")) {
            return format!("map[string]{}", self.type_guess(map));
        }
        let all_of = schema.get("allOf").and_then(Value::as_array);
        if let Some([only]) = all_of.map(Vec::as_slice)
            && non_empty(schema.get("properties")).is_none()
        {
            return self.type_guess(only);
        }
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let target_type = self
                .resolve(reference)
                .and_then(|t| t.get("type"))
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty());
            return match target_type {
                Some(t) if t != "object" => t.to_owned(),
                _ => {
                    let name = reference.rsplit('/').next().unwrap_or_default();
                    let short = name.rsplit('.').next().unwrap_or_default();
                    if short.is_empty() { "Object" } else { short }.to_owned()
                }
            };
        }
        match schema.get("type").and_then(Value::as_str) {
            Some("object") | None | Some("") => "Object".to_owned(),
            Some(other) => other.to_owned(),
        }
    }

    /// The template's `extractEnum`: `enum: a, b, c, d, ....` after a field, or
    /// `ENUM:` with one value a line under `FIELD:`.
    fn enum_text(&self, schema: &Value, long: bool, indent_amount: usize) -> String {
        let Some(values) = schema
            .get("enum")
            .and_then(Value::as_array)
            .filter(|v| !v.is_empty())
        else {
            return String::new();
        };
        let mut out = if long {
            "ENUM:".to_owned()
        } else {
            format!("\n{}enum: ", " ".repeat(indent_amount))
        };
        for (index, value) in values.iter().enumerate() {
            if !long && index >= 4 {
                out.push_str(", ....");
                break;
            }
            if long {
                out.push_str("\n    ");
            } else if index > 0 {
                out.push_str(", ");
            }
            match value {
                Value::String(s) if s.is_empty() => out.push_str("\"\""),
                Value::String(s) => out.push_str(s),
                other => out.push_str(&other.to_string()),
            }
        }
        out
    }
}

/// The template's `externalDocs`, indented.
fn external_docs(schema: &Value, indent_amount: usize) -> String {
    let Some(docs) = schema
        .get("externalDocs")
        .filter(|d| non_empty(Some(d)).is_some())
    else {
        return String::new();
    };
    let mut out = indent("EXTERNAL DOCS:", indent_amount);
    out.push('\n');
    if let Some(description) = docs.get("description").and_then(Value::as_str)
        && !description.is_empty()
    {
        out.push_str(&indent(
            &wrap(description, 76 - indent_amount),
            indent_amount + 4,
        ));
        out.push('\n');
    }
    if let Some(url) = docs.get("url").and_then(Value::as_str)
        && !url.is_empty()
    {
        out.push_str(&indent(&format!("URL: {url}"), indent_amount + 4));
        out.push('\n');
    }
    if indent_amount == 0 {
        out.push('\n');
    }
    out
}

/// A schema value that Go's template would call true: present and not empty.
fn non_empty(value: Option<&Value>) -> Option<&Value> {
    value.filter(|v| match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Object(o) => !o.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::String(s) => !s.is_empty(),
        Value::Number(_) => true,
    })
}

/// `additionalProperties` when it is a schema (not `true`/`false`).
fn schema_map(value: Option<&Value>) -> Option<&Value> {
    non_empty(value).filter(|v| v.is_object())
}

/// sprig's `indent`: every line of `text` after `width` spaces.
fn indent(text: &str, width: usize) -> String {
    let pad = " ".repeat(width);
    format!("{pad}{}", text.replace('\n', &format!("\n{pad}")))
}

/// kubectl's `wrap` (go-wordwrap's `WrapString`): break at spaces so lines stay within
/// `limit` characters, keep existing newlines, never split a word.
fn wrap(text: &str, limit: usize) -> String {
    const NBSP: char = '\u{a0}';
    let mut out = String::with_capacity(text.len());
    let mut current = 0usize;
    let (mut word, mut space) = (String::new(), String::new());
    let (mut word_len, mut space_len) = (0usize, 0usize);
    for c in text.chars() {
        if c == '\n' {
            if word.is_empty() {
                if current + space_len <= limit {
                    out.push_str(&space);
                }
            } else {
                out.push_str(&space);
                out.push_str(&word);
                word.clear();
                word_len = 0;
            }
            space.clear();
            space_len = 0;
            out.push('\n');
            current = 0;
        } else if c.is_whitespace() && c != NBSP {
            if space.is_empty() || !word.is_empty() {
                current += space_len + word_len;
                out.push_str(&space);
                out.push_str(&word);
                space.clear();
                word.clear();
                space_len = 0;
                word_len = 0;
            }
            space.push(c);
            space_len += 1;
        } else {
            word.push(c);
            word_len += 1;
            if current + space_len + word_len > limit && word_len < limit {
                out.push('\n');
                current = 0;
                space.clear();
                space_len = 0;
            }
        }
    }
    if word.is_empty() {
        if current + space_len <= limit {
            out.push_str(&space);
        }
    } else {
        out.push_str(&space);
        out.push_str(&word);
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn wraps_as_kubectl_does() {
        assert_eq!(wrap("aaa bbb ccc", 7), "aaa bbb\nccc");
        assert_eq!(wrap("aaaaaaaaaa bb", 4), "aaaaaaaaaa\nbb");
        assert_eq!(wrap("one\ntwo three", 8), "one\ntwo\nthree");
        assert_eq!(wrap("short\n", 76), "short\n");
        assert_eq!(indent("a\nb", 4), "    a\n    b");
    }

    #[test]
    fn explains_a_kind_and_a_field() {
        let document = json!({"components": {"schemas": {
            "io.k8s.api.apps.v1.Thing": {
                "description": "Thing is a thing.",
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "kind": {"type": "string", "description": "Kind of it."},
                    "spec": {"allOf": [{"$ref": "#/components/schemas/io.k8s.api.apps.v1.ThingSpec"}], "description": "The spec."},
                },
                "x-kubernetes-group-version-kind": [{"group": "apps", "version": "v1", "kind": "Thing"}],
            },
            "io.k8s.api.apps.v1.ThingSpec": {
                "description": "ThingSpec says how.",
                "type": "object",
                "properties": {
                    "mode": {"type": "string", "enum": ["", "Fast", "Slow"], "description": "How fast."},
                    "ports": {"type": "array", "items": {"type": "integer"}},
                },
            },
        }}});
        assert_eq!(
            explain(&document, "apps", "v1", "Thing", &[], false).unwrap(),
            "GROUP:      apps\nKIND:       Thing\nVERSION:    v1\n\nDESCRIPTION:\n    Thing is a thing.\n    \nFIELDS:\n  kind\t<string>\n    Kind of it.\n\n  spec\t<ThingSpec> -required-\n    The spec.\n\n\n"
        );
        assert_eq!(
            explain(&document, "apps", "v1", "Thing", &["spec", "mode"], false).unwrap(),
            "GROUP:      apps\nKIND:       Thing\nVERSION:    v1\n\nFIELD: mode <string>\nENUM:\n    \"\"\n    Fast\n    Slow\n\nDESCRIPTION:\n    How fast.\n    \n\n"
        );
        let spec = explain(&document, "apps", "v1", "Thing", &["spec"], false).unwrap();
        assert!(
            spec.contains("  mode\t<string>\n  enum: \"\", Fast, Slow\n"),
            "{spec}"
        );
        assert!(
            spec.contains("  ports\t<[]integer>\n    <no description>\n"),
            "{spec}"
        );
        let missing =
            explain(&document, "apps", "v1", "Thing", &["spec", "nope"], false).unwrap_err();
        assert_eq!(missing.to_string(), "field \"nope\" does not exist");
    }
}
