//! `tug get`: server-side tables (kubectl's `Accept: application/json;as=Table;...`), or the
//! objects as YAML, JSON, names, JSONPath or custom columns; `-w` watches.

use clap::Args;
use futures::TryStreamExt as _;
use http::{Method, Request};
use serde_json::{Value, json};

use super::client::{is_not_found, with_query};
use super::discovery::Resource;
use super::print::{self, cell_text, labels_text};
use super::{Ctx, Reported, manifest};

/// What kubectl sends to get tables.
pub const TABLE_ACCEPT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

/// `tug get` flags.
#[derive(Args, Debug, Default)]
pub struct GetArgs {
    /// `TYPE[,TYPE...] [NAME...]` or `TYPE/NAME ...`.
    pub args: Vec<String>,
    /// `wide`, `yaml`, `json`, `name`, `jsonpath=TEMPLATE`, `custom-columns=SPEC`.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Label selector (`app=web`, `app in (a,b)`, `!canary`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Field selector (`status.phase=Running`).
    #[arg(long)]
    pub field_selector: Option<String>,
    /// All namespaces.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Add a LABELS column.
    #[arg(long)]
    pub show_labels: bool,
    /// After listing, watch for changes.
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Leave out the header line.
    #[arg(long)]
    pub no_headers: bool,
    /// Objects named in files.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Process directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Say nothing about objects that do not exist.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Sort by a JSONPath field (`.metadata.name`, `{.spec.replicas}`).
    #[arg(long)]
    pub sort_by: Option<String>,
    /// Keep `metadata.managedFields` in `-o yaml|json|jsonpath` output (left out by default,
    /// as kubectl does).
    #[arg(long)]
    pub show_managed_fields: bool,
}

/// Sort objects (or table rows carrying them under `object`) by a JSONPath field: numbers as
/// numbers, everything else as text; objects without the field first, as kubectl does.
fn sort_values(values: &mut [Value], sort_by: &str, inside: Option<&str>) -> anyhow::Result<()> {
    let path = sort_by.trim_matches(|c| c == '{' || c == '}');
    let mut keyed = Vec::with_capacity(values.len());
    for value in values.iter() {
        let object = match inside {
            Some(field) => value.get(field).unwrap_or(&Value::Null),
            None => value,
        };
        let found = print::jsonpath_values(path, object)?;
        keyed.push(found.first().map(|v| (*v).clone()));
    }
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| compare(keyed[a].as_ref(), keyed[b].as_ref()));
    let sorted: Vec<Value> = order.iter().map(|&i| values[i].clone()).collect();
    values.clone_from_slice(&sorted);
    Ok(())
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a, b) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, Some(_)) => std::cmp::Ordering::Less,
        (Some(_), None) => std::cmp::Ordering::Greater,
        (Some(Value::Number(x)), Some(Value::Number(y))) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        (Some(x), Some(y)) => print::cell_text(x).cmp(&print::cell_text(y)),
    }
}

/// One type and the names asked for (none: list them).
pub struct Request_<'a> {
    /// The type.
    pub resource: &'a Resource,
    /// The names (empty: all).
    pub names: Vec<String>,
    /// The namespace of the named objects (from `-f`); `None`: the context's.
    pub namespace: Option<String>,
}

/// Parse `TYPE[,TYPE] NAME...` and `TYPE/NAME ...` into requests, per type in order.
pub async fn parse_targets<'a>(
    ctx: &'a Ctx,
    args: &[String],
    filenames: &[String],
    recursive: bool,
) -> anyhow::Result<Vec<Request_<'a>>> {
    let resources = ctx.resources().await?;
    let mut requests: Vec<Request_<'a>> = Vec::new();
    if !filenames.is_empty() {
        let docs = manifest::read(filenames, recursive)?;
        for target in super::apply::targets(ctx, docs).await? {
            requests.push(Request_ {
                resource: target.resource,
                names: vec![target.name],
                namespace: Some(target.namespace),
            });
        }
        return Ok(requests);
    }
    let Some(first) = args.first() else {
        anyhow::bail!(
            "You must specify the type of resource to get. Use \"tug api-resources\" for a complete list of supported resources."
        );
    };
    if first.contains('/') {
        for arg in args {
            let (kind, name) = arg.split_once('/').ok_or_else(|| {
                anyhow::anyhow!(
                    "there is no need to specify a resource type as a separate argument when passing arguments in resource/name form (e.g. 'tug get resource/<resource_name>' instead of 'tug get resource resource/<resource_name>'"
                )
            })?;
            let resource = resources.resolve(kind)?;
            match requests
                .iter_mut()
                .find(|r| std::ptr::eq(r.resource, resource))
            {
                Some(request) => request.names.push(name.to_owned()),
                None => requests.push(Request_ {
                    resource,
                    names: vec![name.to_owned()],
                    namespace: None,
                }),
            }
        }
        return Ok(requests);
    }
    let names: Vec<String> = args[1..].to_vec();
    for kind in first.split(',').filter(|k| !k.is_empty()) {
        // A category (`all`) stands for its types, unless a type has that name.
        let category = resources.category(kind);
        if !category.is_empty() && resources.resolve(kind).is_err() {
            requests.extend(category.into_iter().map(|resource| Request_ {
                resource,
                names: names.clone(),
                namespace: None,
            }));
            continue;
        }
        requests.push(Request_ {
            resource: resources.resolve(kind)?,
            names: names.clone(),
            namespace: None,
        });
    }
    Ok(requests)
}

/// A table from the server, reduced to what is printed.
struct Table {
    columns: Vec<(String, i64)>,
    rows: Vec<Value>,
    resource_version: String,
}

fn table_of(value: &Value) -> Table {
    let columns = value
        .get("columnDefinitions")
        .and_then(Value::as_array)
        .map(|defs| {
            defs.iter()
                .map(|d| {
                    (
                        d.get("name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                            .to_uppercase(),
                        d.get("priority").and_then(Value::as_i64).unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let rows = value
        .get("rows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let resource_version = value
        .pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Table {
        columns,
        rows,
        resource_version,
    }
}

/// How rows are turned into printed lines.
struct Layout {
    wide: bool,
    namespace_column: bool,
    show_labels: bool,
    /// `deployment.apps/` before names when several types are printed.
    prefix: Option<String>,
}

impl Layout {
    fn header(&self, table: &Table) -> Vec<String> {
        let mut header = Vec::new();
        if self.namespace_column {
            header.push("NAMESPACE".to_owned());
        }
        for (name, priority) in &table.columns {
            if *priority == 0 || self.wide {
                header.push(name.clone());
            }
        }
        if self.show_labels {
            header.push("LABELS".to_owned());
        }
        header
    }

    fn line(&self, table: &Table, row: &Value) -> Vec<String> {
        let mut line = Vec::new();
        let object = row.get("object");
        if self.namespace_column {
            line.push(
                object
                    .and_then(|o| o.pointer("/metadata/namespace"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
        let cells = row
            .get("cells")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        for (index, (_, priority)) in table.columns.iter().enumerate() {
            if *priority != 0 && !self.wide {
                continue;
            }
            let mut text = cells.get(index).map(cell_text).unwrap_or_default();
            if index == 0
                && let Some(prefix) = &self.prefix
            {
                text = format!("{prefix}/{text}");
            }
            line.push(text);
        }
        if self.show_labels {
            line.push(labels_text(
                object.and_then(|o| o.pointer("/metadata/labels")),
            ));
        }
        line
    }
}

/// The output format.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Output {
    Table { wide: bool },
    Yaml,
    Json,
    Name,
    JsonPath(String),
    CustomColumns(String),
}

fn output_of(flag: Option<&str>) -> anyhow::Result<Output> {
    Ok(match flag {
        None | Some("") => Output::Table { wide: false },
        Some("wide") => Output::Table { wide: true },
        Some("yaml") => Output::Yaml,
        Some("json") => Output::Json,
        Some("name") => Output::Name,
        Some(other) => {
            if let Some(template) = other.strip_prefix("jsonpath=") {
                Output::JsonPath(template.to_owned())
            } else if let Some(spec) = other.strip_prefix("custom-columns=") {
                Output::CustomColumns(spec.to_owned())
            } else {
                anyhow::bail!(
                    "unable to match a printer suitable for the output format {other:?}, allowed formats are: custom-columns,json,jsonpath,name,wide,yaml"
                )
            }
        }
    })
}

fn namespace_of<'a>(ctx: &'a Ctx, args: &GetArgs, request: &'a Request_<'_>) -> Option<&'a str> {
    if args.all_namespaces && request.names.is_empty() {
        None
    } else {
        Some(request.namespace.as_deref().unwrap_or(&ctx.namespace))
    }
}

/// `tug get`.
pub async fn run(ctx: &Ctx, args: GetArgs) -> anyhow::Result<()> {
    let output = output_of(args.output.as_deref())?;
    let requests = parse_targets(ctx, &args.args, &args.filenames, args.recursive).await?;
    match output {
        Output::Table { wide } => tables(ctx, &args, &requests, wide).await,
        other => objects(ctx, &args, &requests, &other).await,
    }
}

async fn tables(
    ctx: &Ctx,
    args: &GetArgs,
    requests: &[Request_<'_>],
    wide: bool,
) -> anyhow::Result<()> {
    let several = requests.len() > 1;
    // kubectl asks for whole objects in the rows only to sort them.
    let include_object = if args.sort_by.is_some() {
        "Object"
    } else {
        "Metadata"
    };
    let mut failed = false;
    let mut printed_any = false;
    let mut last: Option<(Table, Layout, Vec<usize>)> = None;
    for request in requests {
        let namespace = namespace_of(ctx, args, request);
        let mut table: Option<Table> = None;
        if request.names.is_empty() {
            let path = with_query(
                &request.resource.collection_path(namespace),
                &[
                    ("labelSelector", args.selector.as_deref().unwrap_or("")),
                    (
                        "fieldSelector",
                        args.field_selector.as_deref().unwrap_or(""),
                    ),
                    ("includeObject", include_object),
                ],
            );
            let text = ctx
                .call(Method::GET, &path, None, Some(TABLE_ACCEPT), Vec::new())
                .await?;
            table = Some(table_of(&super::client::parse(&text)?));
        } else {
            for name in &request.names {
                let path = with_query(
                    &request.resource.object_path(namespace.unwrap_or(""), name),
                    &[("includeObject", include_object)],
                );
                match ctx
                    .call(Method::GET, &path, None, Some(TABLE_ACCEPT), Vec::new())
                    .await
                {
                    Ok(text) => {
                        let one = table_of(&super::client::parse(&text)?);
                        match &mut table {
                            None => table = Some(one),
                            Some(table) => table.rows.extend(one.rows),
                        }
                    }
                    Err(error) if is_not_found(&error) && args.ignore_not_found => {}
                    Err(error) => {
                        failed = true;
                        super::report(&error);
                    }
                }
            }
        }
        let Some(mut table) = table else { continue };
        if let Some(sort_by) = &args.sort_by {
            sort_values(&mut table.rows, sort_by, Some("object"))?;
        }
        if table.rows.is_empty() && !args.watch {
            continue;
        }
        let layout = Layout {
            wide,
            namespace_column: args.all_namespaces && request.names.is_empty(),
            show_labels: args.show_labels,
            prefix: several.then(|| request.resource.kind_group()),
        };
        let mut rows = Vec::new();
        if !args.no_headers {
            rows.push(layout.header(&table));
        }
        for row in &table.rows {
            rows.push(layout.line(&table, row));
        }
        if printed_any {
            println!();
        }
        let widths = print::widths(&rows);
        print!("{}", print::columns(&rows));
        printed_any = true;
        last = Some((table, layout, widths));
    }
    if !printed_any && !failed {
        if requests.iter().any(|r| r.resource.namespaced) && !args.all_namespaces {
            eprintln!("No resources found in {} namespace.", ctx.namespace);
        } else {
            eprintln!("No resources found");
        }
    }
    if args.watch
        && let (Some(request), Some((table, layout, widths))) = (requests.last(), last)
    {
        watch(ctx, args, request, table, layout, widths).await?;
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}

async fn watch(
    ctx: &Ctx,
    args: &GetArgs,
    request: &Request_<'_>,
    mut table: Table,
    layout: Layout,
    mut widths: Vec<usize>,
) -> anyhow::Result<()> {
    let namespace = namespace_of(ctx, args, request);
    let field_selector = match request.names.as_slice() {
        [name] => format!("metadata.name={name}"),
        _ => args.field_selector.clone().unwrap_or_default(),
    };
    let path = with_query(
        &request.resource.collection_path(namespace),
        &[
            ("watch", "true"),
            ("resourceVersion", &table.resource_version),
            ("labelSelector", args.selector.as_deref().unwrap_or("")),
            ("fieldSelector", &field_selector),
            ("includeObject", "Metadata"),
        ],
    );
    let http_request = Request::builder()
        .method(Method::GET)
        .uri(&path)
        .header(http::header::ACCEPT, TABLE_ACCEPT)
        .body(Vec::new())?;
    let events = ctx
        .client
        .request_events::<Value>(http_request)
        .await
        .map_err(|e| ctx.map_error(e))?;
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.try_next().await.map_err(|e| ctx.map_error(e))? {
        let event: kube::core::WatchEvent<Value> = event;
        let object = match event {
            kube::core::WatchEvent::Added(o)
            | kube::core::WatchEvent::Modified(o)
            | kube::core::WatchEvent::Deleted(o) => o,
            kube::core::WatchEvent::Bookmark(_) => continue,
            kube::core::WatchEvent::Error(status) => {
                anyhow::bail!("the watch ended: {}", status.message)
            }
        };
        let update = table_of(&object);
        if !update.columns.is_empty() {
            table.columns = update.columns;
        }
        for row in &update.rows {
            let line = layout.line(&table, row);
            for (index, cell) in line.iter().enumerate().take(line.len().saturating_sub(1)) {
                let width = print::widths(&[vec![cell.clone(), String::new()]])[0];
                match widths.get_mut(index) {
                    Some(known) => *known = (*known).max(width),
                    None => widths.push(width),
                }
            }
            println!("{}", print::format_row(&line, &widths));
        }
    }
    Ok(())
}

async fn objects(
    ctx: &Ctx,
    args: &GetArgs,
    requests: &[Request_<'_>],
    output: &Output,
) -> anyhow::Result<()> {
    let mut items = Vec::new();
    let mut failed = false;
    let mut single = requests.len() == 1 && requests[0].names.len() == 1;
    for request in requests {
        let namespace = namespace_of(ctx, args, request);
        let api_version = request.resource.api_version();
        let with_type = |mut object: Value| {
            if let Some(map) = object.as_object_mut() {
                map.insert("apiVersion".into(), Value::String(api_version.clone()));
                map.insert("kind".into(), Value::String(request.resource.kind.clone()));
            }
            object
        };
        if request.names.is_empty() {
            single = false;
            let path = with_query(
                &request.resource.collection_path(namespace),
                &[
                    ("labelSelector", args.selector.as_deref().unwrap_or("")),
                    (
                        "fieldSelector",
                        args.field_selector.as_deref().unwrap_or(""),
                    ),
                ],
            );
            let list = ctx.get(&path).await?;
            if let Some(list) = list.get("items").and_then(Value::as_array) {
                items.extend(list.iter().cloned().map(with_type));
            }
        } else {
            for name in &request.names {
                match ctx
                    .get(&request.resource.object_path(namespace.unwrap_or(""), name))
                    .await
                {
                    Ok(object) => items.push(with_type(object)),
                    Err(error) if is_not_found(&error) && args.ignore_not_found => {}
                    Err(error) => {
                        failed = true;
                        super::report(&error);
                    }
                }
            }
        }
    }
    if let Some(sort_by) = &args.sort_by {
        sort_values(&mut items, sort_by, None)?;
    }
    if !args.show_managed_fields {
        for item in &mut items {
            if let Some(meta) = item.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.remove("managedFields");
            }
        }
    }
    let document = if single && items.len() == 1 {
        items[0].clone()
    } else {
        json!({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}})
    };
    match output {
        Output::Yaml => print!("{}", print::yaml(&document)?),
        Output::Json => print!("{}", print::json(&document)?),
        Output::JsonPath(template) => print!("{}", print::jsonpath(template, &document)?),
        Output::Name => {
            for item in &items {
                let resource = requests
                    .iter()
                    .map(|r| r.resource)
                    .find(|r| item.get("kind").and_then(Value::as_str) == Some(&r.kind));
                if let Some(resource) = resource {
                    println!(
                        "{}/{}",
                        resource.kind_group(),
                        item.pointer("/metadata/name")
                            .and_then(Value::as_str)
                            .unwrap_or_default()
                    );
                }
            }
        }
        Output::CustomColumns(spec) => {
            print!("{}", print::custom_columns(spec, &items, !args.no_headers)?)
        }
        Output::Table { .. } => {}
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}
