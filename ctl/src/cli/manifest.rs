//! Reading manifests as kubectl does: files, directories (`.yaml`, `.yml`, `.json`; `-R` for
//! subdirectories), `-` for stdin; multi-document YAML and `kind: List`.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize as _;
use serde_json::Value;

/// One object from a manifest.
#[derive(Debug, Clone)]
pub struct Doc {
    /// The file it came from (`STDIN` for `-`), as kubectl names it in messages.
    pub source: String,
    /// The object.
    pub object: Value,
}

/// Every object of every `-f` argument, in order.
pub fn read(files: &[String], recursive: bool) -> anyhow::Result<Vec<Doc>> {
    anyhow::ensure!(
        !files.is_empty(),
        "must specify one of -f and -k (for example: tug apply -f web.yaml)"
    );
    let mut docs = Vec::new();
    for file in files {
        if file == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("reading stdin")?;
            docs.extend(parse("STDIN", &text)?);
            continue;
        }
        let path = Path::new(file);
        if !path.exists() {
            anyhow::bail!("the path {file:?} does not exist");
        }
        let paths = if path.is_dir() {
            let mut found = Vec::new();
            walk(path, recursive, &mut found)?;
            found
        } else {
            vec![path.to_path_buf()]
        };
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            docs.extend(parse(&path.display().to_string(), &text)?);
        }
    }
    Ok(docs)
}

fn walk(dir: &Path, recursive: bool, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            if recursive {
                walk(&path, recursive, found)?;
            }
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            found.push(path);
        }
    }
    Ok(())
}

/// The objects of one YAML (or JSON) stream; errors carry the line number.
pub fn parse(source: &str, text: &str) -> anyhow::Result<Vec<Doc>> {
    let mut docs = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|error| {
            let place = error
                .location()
                .map(|l| format!("line {}, column {}: ", l.line(), l.column()))
                .unwrap_or_default();
            let message = error.to_string();
            // serde_yaml appends " at line X column Y"; the place is already in front.
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned();
            anyhow::anyhow!("error parsing {source}: yaml: {place}{message}")
        })?;
        match value {
            Value::Null => {}
            Value::Object(_) => {
                if value.get("kind").and_then(Value::as_str) == Some("List")
                    && let Some(items) = value.get("items").and_then(Value::as_array)
                {
                    docs.extend(items.iter().map(|item| Doc {
                        source: source.to_owned(),
                        object: item.clone(),
                    }));
                } else {
                    docs.push(Doc {
                        source: source.to_owned(),
                        object: value,
                    });
                }
            }
            other => anyhow::bail!(
                "error parsing {source}: expected an object, found {}",
                serde_json::to_string(&other).unwrap_or_default()
            ),
        }
    }
    Ok(docs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multi_document_yaml_and_lists() {
        let docs = parse(
            "f.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\nkind: List\napiVersion: v1\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: b}}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let names: Vec<&str> = docs
            .iter()
            .filter_map(|d| d.object.pointer("/metadata/name").and_then(Value::as_str))
            .collect();
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn yaml_errors_name_the_line() {
        let error = parse(
            "bad.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n   bad: [\n",
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            error.starts_with("error parsing bad.yaml: yaml: line 5"),
            "{error}"
        );
    }
}
