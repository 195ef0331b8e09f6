//! Output as kubectl prints it: aligned columns (kubectl's tabwriter: 3 spaces of padding,
//! minimum width 6, the last column free), YAML, JSON, names, JSONPath templates and custom
//! columns.

use anyhow::Context as _;
use serde_json::Value;

/// kubectl's tabwriter padding.
const PADDING: usize = 3;
/// kubectl's tabwriter minimum cell width.
const MIN_WIDTH: usize = 6;

/// Column widths for `rows` (every column but the last).
pub fn widths(rows: &[Vec<String>]) -> Vec<usize> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (index, cell) in row.iter().enumerate() {
            if index + 1 == row.len() {
                break;
            }
            let width = (cell.chars().count() + PADDING).max(MIN_WIDTH);
            if index >= widths.len() {
                widths.push(width);
            } else if widths[index] < width {
                widths[index] = width;
            }
        }
    }
    widths
}

/// One line padded to `widths`.
pub fn format_row(row: &[String], widths: &[usize]) -> String {
    let mut line = String::new();
    for (index, cell) in row.iter().enumerate() {
        if index + 1 == row.len() {
            line.push_str(cell);
        } else {
            let width = widths.get(index).copied().unwrap_or(0);
            line.push_str(cell);
            let pad = width.saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    line
}

/// Render rows aligned as kubectl's tabwriter does.
pub fn columns(rows: &[Vec<String>]) -> String {
    let widths = widths(rows);
    let mut out = String::new();
    for row in rows {
        out.push_str(&format_row(row, &widths));
        out.push('\n');
    }
    out
}

/// Go's `text/tabwriter` (which kubectl uses everywhere) on tab-separated lines: a column is
/// aligned over each block of consecutive lines that have a cell in it; the last cell of a line
/// is never padded.
pub fn tabwrite(text: &str, min_width: usize, padding: usize) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut out = String::new();
    let mut widths = Vec::new();
    format_block(
        &lines,
        0,
        lines.len(),
        &mut widths,
        min_width,
        padding,
        &mut out,
    );
    out
}

fn format_block(
    lines: &[Vec<&str>],
    mut line0: usize,
    line1: usize,
    widths: &mut Vec<usize>,
    min_width: usize,
    padding: usize,
    out: &mut String,
) {
    let column = widths.len();
    let mut this = line0;
    while this < line1 {
        if column + 1 >= lines[this].len() {
            this += 1;
            continue;
        }
        write_lines(lines, line0, this, widths, out);
        line0 = this;
        let mut width = min_width;
        while this < line1 && column + 1 < lines[this].len() {
            width = width.max(lines[this][column].chars().count() + padding);
            this += 1;
        }
        widths.push(width);
        format_block(lines, line0, this, widths, min_width, padding, out);
        widths.pop();
        line0 = this;
    }
    write_lines(lines, line0, line1, widths, out);
}

fn write_lines(lines: &[Vec<&str>], from: usize, to: usize, widths: &[usize], out: &mut String) {
    for line in &lines[from..to] {
        for (index, cell) in line.iter().enumerate() {
            out.push_str(cell);
            if index + 1 < line.len() {
                let width = widths.get(index).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count());
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
}

/// Print rows aligned.
pub fn print_columns(rows: &[Vec<String>]) {
    print!("{}", columns(rows));
}

/// A table cell as kubectl prints it.
pub fn cell_text(cell: &Value) -> String {
    match cell {
        Value::Null => "<none>".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `-o yaml`.
pub fn yaml(value: &Value) -> anyhow::Result<String> {
    serde_yaml::to_string(value).context("encoding YAML")
}

/// `-o json` (kubectl indents with 4 spaces).
pub fn json(value: &Value) -> anyhow::Result<String> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut serializer).context("encoding JSON")?;
    let mut text = String::from_utf8(out).context("encoding JSON")?;
    text.push('\n');
    Ok(text)
}

/// A JSONPath expression kubectl-style (`.items[*].metadata.name`), evaluated on `root`.
pub fn jsonpath_values<'a>(expr: &str, root: &'a Value) -> anyhow::Result<Vec<&'a Value>> {
    let expr = expr.trim();
    let path = if expr.is_empty() || expr == "." || expr == "$" {
        "$".to_owned()
    } else if let Some(rest) = expr.strip_prefix('$') {
        format!("${rest}")
    } else if expr.starts_with('.') || expr.starts_with('[') {
        format!("${expr}")
    } else {
        format!("$.{expr}")
    };
    jsonpath_rust::query::js_path_vals(&bracket_escaped_fields(&path), root)
        .map_err(|error| anyhow::anyhow!("error parsing jsonpath {expr:?}: {error}"))
}

/// kubectl's escaped dot in a field name (`.metadata.annotations.kubernetes\.io/change-cause`)
/// in the bracket form the JSONPath library takes (`['kubernetes.io/change-cause']`).
fn bracket_escaped_fields(path: &str) -> String {
    if !path.contains("\\.") {
        return path.to_owned();
    }
    let mut out = String::with_capacity(path.len() + 8);
    let mut chars = path.chars().peekable();
    // Inside brackets or a filter, dots are not field separators.
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        if c != '.' || depth > 0 {
            match c {
                '[' | '(' => depth += 1,
                ']' | ')' => depth = depth.saturating_sub(1),
                _ => {}
            }
            out.push(c);
            continue;
        }
        let mut name = String::new();
        let mut escaped = false;
        while let Some(&next) = chars.peek() {
            if next == '.' || next == '[' {
                break;
            }
            chars.next();
            if next == '\\' && chars.peek() == Some(&'.') {
                chars.next();
                name.push('.');
                escaped = true;
            } else {
                name.push(next);
            }
        }
        if escaped {
            out.push_str(&format!("['{name}']"));
        } else {
            out.push('.');
            out.push_str(&name);
        }
    }
    out
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One piece of a kubectl JSONPath template.
#[derive(Debug)]
enum Piece {
    Text(String),
    Expr(String),
    Range(String, Vec<Piece>),
}

/// Parse `text{.a}{range .items[*]}{.x}{"\n"}{end}`.
fn parse_template(template: &str) -> anyhow::Result<Vec<Piece>> {
    let mut stack: Vec<(String, Vec<Piece>)> = vec![(String::new(), Vec::new())];
    let mut rest = template;
    while !rest.is_empty() {
        let Some(open) = rest.find('{') else {
            push(&mut stack, Piece::Text(rest.to_owned()));
            break;
        };
        if open > 0 {
            push(&mut stack, Piece::Text(rest[..open].to_owned()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .with_context(|| format!("unclosed action in the template {template:?}"))?;
        let action = after[..close].trim();
        rest = &after[close + 1..];
        if let Some(path) = action.strip_prefix("range ") {
            stack.push((path.trim().to_owned(), Vec::new()));
        } else if action == "end" {
            anyhow::ensure!(stack.len() > 1, "{{end}} without {{range}} in {template:?}");
            let (path, body) = stack.pop().context("unbalanced range")?;
            push(&mut stack, Piece::Range(path, body));
        } else if (action.starts_with('"') && action.ends_with('"') && action.len() >= 2)
            || (action.starts_with('\'') && action.ends_with('\'') && action.len() >= 2)
        {
            push(
                &mut stack,
                Piece::Text(unescape(&action[1..action.len() - 1])),
            );
        } else {
            push(&mut stack, Piece::Expr(action.to_owned()));
        }
    }
    anyhow::ensure!(
        stack.len() == 1,
        "{{range}} without {{end}} in {template:?}"
    );
    Ok(stack.pop().map(|(_, pieces)| pieces).unwrap_or_default())
}

fn push(stack: &mut [(String, Vec<Piece>)], piece: Piece) {
    if let Some((_, pieces)) = stack.last_mut() {
        pieces.push(piece);
    }
}

fn unescape(text: &str) -> String {
    text.replace("\\n", "\n")
        .replace("\\t", "\t")
        .replace("\\r", "\r")
}

fn render(pieces: &[Piece], root: &Value, out: &mut String) -> anyhow::Result<()> {
    for piece in pieces {
        match piece {
            Piece::Text(text) => out.push_str(text),
            Piece::Expr(expr) => {
                let values = jsonpath_values(expr, root)?;
                let texts: Vec<String> = values.into_iter().map(value_text).collect();
                out.push_str(&texts.join(" "));
            }
            Piece::Range(expr, body) => {
                let values = jsonpath_values(expr, root)?;
                let items: Vec<&Value> = match values.as_slice() {
                    [Value::Array(items)] => items.iter().collect(),
                    _ => values,
                };
                for item in items {
                    render(body, item, out)?;
                }
            }
        }
    }
    Ok(())
}

/// `-o jsonpath=TEMPLATE` (kubectl's template syntax, `{range}` included).
pub fn jsonpath(template: &str, root: &Value) -> anyhow::Result<String> {
    let pieces = parse_template(template)?;
    let mut out = String::new();
    render(&pieces, root, &mut out)?;
    Ok(out)
}

/// `-o custom-columns=NAME:.metadata.name,...` for `objects`.
pub fn custom_columns(spec: &str, objects: &[Value], headers: bool) -> anyhow::Result<String> {
    let mut columns = Vec::new();
    for column in spec.split(',') {
        let (name, path) = column.split_once(':').with_context(|| {
            format!("custom-columns format: expected NAME:PATH, found {column:?}")
        })?;
        columns.push((name.to_owned(), path.trim_matches(|c| c == '{' || c == '}')));
    }
    let mut rows = Vec::new();
    if headers {
        rows.push(columns.iter().map(|(name, _)| name.clone()).collect());
    }
    for object in objects {
        let mut row = Vec::new();
        for (_, path) in &columns {
            let values = jsonpath_values(path, object)?;
            let texts: Vec<String> = values
                .into_iter()
                .filter(|v| !v.is_null())
                .map(value_text)
                .collect();
            row.push(if texts.is_empty() {
                "<none>".to_owned()
            } else {
                texts.join(",")
            });
        }
        rows.push(row);
    }
    Ok(columns_text(&rows))
}

fn columns_text(rows: &[Vec<String>]) -> String {
    columns(rows)
}

/// `key=value,...` of a label map, `<none>` when empty.
pub fn labels_text(labels: Option<&Value>) -> String {
    let Some(Value::Object(map)) = labels else {
        return "<none>".to_owned();
    };
    if map.is_empty() {
        return "<none>".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// How long ago an RFC 3339 time was, as kubectl prints ages (`5m10s`, `3d`); `<unknown>`.
pub fn age(time: Option<&str>) -> String {
    use k8s_openapi::jiff::Timestamp;
    let Some(time) = time.and_then(|t| t.parse::<Timestamp>().ok()) else {
        return "<unknown>".to_owned();
    };
    let elapsed = Timestamp::now().duration_since(time);
    tugboat_api::table::human_duration(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_like_kubectl() {
        let rows = vec![
            vec!["NAME".into(), "READY".into(), "AGE".into()],
            vec!["web-1".into(), "1/1".into(), "5s".into()],
        ];
        assert_eq!(columns(&rows), "NAME    READY   AGE\nweb-1   1/1     5s\n");
    }

    #[test]
    fn tabwriter_blocks() {
        let text = "Name:\tweb\nLabels:\tapp=web\n\tx=y\nContainers:\n  c:\n    Image:\tbusybox\n";
        assert_eq!(
            tabwrite(text, 0, 2),
            "Name:    web\nLabels:  app=web\n         x=y\nContainers:\n  c:\n    Image:  busybox\n"
        );
    }

    #[test]
    fn jsonpath_templates() {
        let list = json!({"items": [
            {"metadata": {"name": "a"}, "spec": {"replicas": 1}},
            {"metadata": {"name": "b"}, "spec": {"replicas": 2}}
        ]});
        let out = jsonpath("{.items[*].metadata.name}", &list).unwrap_or_default();
        assert_eq!(out, "a b");
        let out = jsonpath(
            "{range .items[*]}{.metadata.name}={.spec.replicas}{\"\\n\"}{end}",
            &list,
        )
        .unwrap_or_default();
        assert_eq!(out, "a=1\nb=2\n");
        let out = jsonpath("{.items[?(@.metadata.name==\"b\")].spec.replicas}", &list)
            .unwrap_or_default();
        assert_eq!(out, "2");

        let annotated = json!({"metadata": {"annotations": {
            "kubernetes.io/change-cause": "VERSION=2", "plain": "x"
        }}});
        let out = jsonpath(
            "{.metadata.annotations.kubernetes\\.io/change-cause}",
            &annotated,
        )
        .unwrap_or_default();
        assert_eq!(out, "VERSION=2");
        let out = jsonpath("{.metadata.annotations.plain}", &annotated).unwrap_or_default();
        assert_eq!(out, "x");
    }

    #[test]
    fn custom_columns_print_paths() {
        let objects = vec![
            json!({"metadata": {"name": "a"}, "spec": {"containers": [{"image": "x"}, {"image": "y"}]}}),
        ];
        let out = custom_columns(
            "NAME:.metadata.name,IMAGES:.spec.containers[*].image,NODE:.spec.nodeName",
            &objects,
            true,
        )
        .unwrap_or_default();
        assert_eq!(out, "NAME   IMAGES   NODE\na      x,y      <none>\n");
    }
}
