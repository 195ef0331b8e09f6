//! Small changes to live objects: `tug scale`, `label`, `annotate`, `set image`, `set env`.
//! The patches are kubectl's: merge patches for scale and metadata, a two-way strategic merge
//! patch for `set`.

use clap::{Args, Subcommand};
use http::Method;
use serde_json::{Map, Value, json};
use tugboat_api::patch::{Schema, create_two_way_merge_patch, schema_for};

use super::Ctx;
use super::client::with_query;
use super::discovery::Resource;

/// `TYPE NAME...` or `TYPE/NAME ...` → (type, name) pairs; the rest of `args` is returned.
pub async fn resolve_objects<'a>(
    ctx: &'a Ctx,
    args: &[String],
    is_name: impl Fn(&str) -> bool,
) -> anyhow::Result<(Vec<(&'a Resource, String)>, Vec<String>)> {
    let resources = ctx.resources().await?;
    let Some(first) = args.first() else {
        anyhow::bail!(
            "you must specify the type of resource and its name (for example deployment/web)"
        );
    };
    let mut objects = Vec::new();
    let mut index = 0;
    if first.contains('/') {
        while let Some(arg) = args.get(index) {
            // A key with a prefix (`kubernetes.io/change-cause=...`) has a slash too.
            if !is_name(arg) {
                break;
            }
            let Some((kind, name)) = arg.split_once('/') else {
                break;
            };
            objects.push((resources.resolve(kind)?, name.to_owned()));
            index += 1;
        }
    } else {
        let resource = resources.resolve(first)?;
        index = 1;
        while let Some(arg) = args.get(index) {
            if !is_name(arg) {
                break;
            }
            objects.push((resource, arg.clone()));
            index += 1;
        }
    }
    anyhow::ensure!(
        !objects.is_empty(),
        "resource(s) were provided, but no name was specified"
    );
    Ok((objects, args[index..].to_vec()))
}

/// `tug scale` flags.
#[derive(Args, Debug)]
pub struct ScaleArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// The new number of replicas.
    #[arg(long)]
    pub replicas: i32,
}

/// `tug scale`.
pub async fn scale(ctx: &Ctx, args: ScaleArgs) -> anyhow::Result<()> {
    let (objects, rest) = resolve_objects(ctx, &args.args, |_| true).await?;
    anyhow::ensure!(rest.is_empty(), "unexpected arguments: {rest:?}");
    for (resource, name) in objects {
        anyhow::ensure!(
            resource.subresources.iter().any(|s| s == "scale"),
            "cannot scale {}: it has no scale subresource",
            resource.group_resource()
        );
        let path = format!("{}/scale", resource.object_path(&ctx.namespace, &name));
        ctx.send(
            Method::PATCH,
            // kubectl 1.32 sends no fieldManager here, so its User-Agent names it `kubectl`:
            // the same owner for both tools.
            &with_query(&path, &[("fieldManager", "kubectl")]),
            "application/merge-patch+json",
            &json!({"spec": {"replicas": args.replicas}}),
        )
        .await?;
        println!("{}/{name} scaled", resource.kind_group());
    }
    Ok(())
}

/// `tug label` / `tug annotate` flags.
#[derive(Args, Debug)]
pub struct LabelArgs {
    /// `TYPE NAME... KEY=VALUE... KEY-...` or `TYPE/NAME KEY=VALUE...`.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Replace existing values.
    #[arg(long)]
    pub overwrite: bool,
}

fn is_change(arg: &str) -> bool {
    arg.contains('=') || arg.ends_with('-')
}

/// `tug label` (`field` = `labels`) and `tug annotate` (`annotations`).
pub async fn label(ctx: &Ctx, args: LabelArgs, field: &str) -> anyhow::Result<()> {
    let (objects, changes) = resolve_objects(ctx, &args.args, |a| !is_change(a)).await?;
    let verb = if field == "labels" {
        "label"
    } else {
        "annotate"
    };
    anyhow::ensure!(
        !changes.is_empty(),
        "at least one {} update is required",
        if field == "labels" {
            "label"
        } else {
            "annotation"
        }
    );
    let mut set = Map::new();
    for change in &changes {
        if let Some((key, value)) = change.split_once('=') {
            set.insert(key.to_owned(), Value::String(value.to_owned()));
        } else if let Some(key) = change.strip_suffix('-') {
            set.insert(key.to_owned(), Value::Null);
        } else {
            anyhow::bail!("invalid {verb} spec: {change:?} (KEY=VALUE or KEY-)");
        }
    }
    for (resource, name) in objects {
        let path = resource.object_path(&ctx.namespace, &name);
        let object = ctx.get(&path).await?;
        let current = object
            .pointer(&format!("/metadata/{field}"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let mut patch = Map::new();
        for (key, value) in &set {
            match (current.get(key), value) {
                (Some(old), Value::String(_)) if old != value && !args.overwrite => {
                    anyhow::bail!(
                        "'{key}' already has a value ({}), and --overwrite is false",
                        old.as_str().unwrap_or_default()
                    )
                }
                (Some(old), _) if old == value => {}
                (None, Value::Null) => {}
                _ => {
                    patch.insert(key.clone(), value.clone());
                }
            }
        }
        let past = if field == "labels" {
            "labeled"
        } else {
            "annotated"
        };
        if patch.is_empty() {
            println!("{}/{name} not {past}", resource.kind_group());
            continue;
        }
        ctx.send(
            Method::PATCH,
            &with_query(&path, &[("fieldManager", &format!("kubectl-{verb}"))]),
            "application/merge-patch+json",
            &json!({"metadata": {field: patch}}),
        )
        .await?;
        println!("{}/{name} {past}", resource.kind_group());
    }
    Ok(())
}

/// `tug set ...`.
#[derive(Subcommand, Debug)]
pub enum SetCommand {
    /// Update the image of containers: `tug set image deployment/web web=busybox:1.36`.
    Image(SetArgs),
    /// Set or remove environment variables: `tug set env deployment/web K=V K2-`.
    Env(SetEnvArgs),
}

/// `tug set image` flags.
#[derive(Args, Debug)]
pub struct SetArgs {
    /// `TYPE NAME CONTAINER=IMAGE...` or `TYPE/NAME CONTAINER=IMAGE...` (`*` for all).
    #[arg(required = true)]
    pub args: Vec<String>,
}

/// `tug set env` flags.
#[derive(Args, Debug)]
pub struct SetEnvArgs {
    /// `TYPE/NAME KEY=VALUE... KEY-...`.
    #[arg(required = true)]
    pub args: Vec<String>,
    /// Only this container.
    #[arg(short = 'c', long)]
    pub container: Option<String>,
}

/// Where a kind keeps its pod spec.
fn pod_spec_pointer(kind: &str) -> &'static str {
    match kind {
        "Pod" => "/spec",
        "CronJob" => "/spec/jobTemplate/spec/template/spec",
        _ => "/spec/template/spec",
    }
}

/// `tug set image|env`.
pub async fn set(ctx: &Ctx, command: SetCommand) -> anyhow::Result<()> {
    let (args, container, what) = match &command {
        SetCommand::Image(a) => (&a.args, None, "image"),
        SetCommand::Env(a) => (&a.args, a.container.clone(), "env"),
    };
    let (objects, changes) = resolve_objects(ctx, args, |a| !is_change(a)).await?;
    anyhow::ensure!(
        !changes.is_empty(),
        "at least one {what} update is required"
    );
    for (resource, name) in objects {
        let path = resource.object_path(&ctx.namespace, &name);
        let original = ctx.get(&path).await?;
        let mut modified = original.clone();
        let spec = modified
            .pointer_mut(pod_spec_pointer(&resource.kind))
            .and_then(Value::as_object_mut)
            .ok_or_else(|| {
                anyhow::anyhow!("{}/{name} has no pod template", resource.kind_group())
            })?;
        match &command {
            SetCommand::Image(_) => set_images(spec, &changes)?,
            SetCommand::Env(_) => set_env(spec, &changes, container.as_deref())?,
        }
        let schema = schema_for(&resource.group, &resource.kind).unwrap_or(&Schema::UNKNOWN);
        let patch = create_two_way_merge_patch(&original, &modified, schema)?;
        if patch.as_object().is_some_and(Map::is_empty) {
            continue;
        }
        ctx.send(
            Method::PATCH,
            &with_query(&path, &[("fieldManager", "kubectl-set")]),
            "application/strategic-merge-patch+json",
            &patch,
        )
        .await?;
        println!("{}/{name} {what} updated", resource.kind_group());
    }
    Ok(())
}

fn containers_mut(spec: &mut Map<String, Value>) -> Vec<&mut Map<String, Value>> {
    spec.iter_mut()
        .filter(|(key, _)| matches!(key.as_str(), "initContainers" | "containers"))
        .filter_map(|(_, list)| list.as_array_mut())
        .flat_map(|list| list.iter_mut().filter_map(Value::as_object_mut))
        .collect()
}

fn set_images(spec: &mut Map<String, Value>, changes: &[String]) -> anyhow::Result<()> {
    for change in changes {
        let (container, image) = change
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("invalid image spec {change:?} (CONTAINER=IMAGE)"))?;
        let mut found = false;
        for c in containers_mut(spec) {
            if container == "*" || c.get("name").and_then(Value::as_str) == Some(container) {
                c.insert("image".into(), Value::String(image.to_owned()));
                found = true;
            }
        }
        anyhow::ensure!(found, "unable to find container named {container:?}");
    }
    Ok(())
}

fn set_env(
    spec: &mut Map<String, Value>,
    changes: &[String],
    only: Option<&str>,
) -> anyhow::Result<()> {
    let mut found = false;
    for c in containers_mut(spec) {
        if only.is_some_and(|o| c.get("name").and_then(Value::as_str) != Some(o)) {
            continue;
        }
        found = true;
        let env = c.entry("env").or_insert_with(|| Value::Array(Vec::new()));
        if !env.is_array() {
            *env = Value::Array(Vec::new());
        }
        let Some(env) = env.as_array_mut() else {
            continue;
        };
        for change in changes {
            if let Some((key, value)) = change.split_once('=') {
                match env
                    .iter_mut()
                    .find(|e| e.get("name").and_then(Value::as_str) == Some(key))
                {
                    Some(entry) => *entry = json!({"name": key, "value": value}),
                    None => env.push(json!({"name": key, "value": value})),
                }
            } else if let Some(key) = change.strip_suffix('-') {
                env.retain(|e| e.get("name").and_then(Value::as_str) != Some(key));
            } else {
                anyhow::bail!("invalid env spec {change:?} (KEY=VALUE or KEY-)");
            }
        }
        if env.is_empty() {
            c.remove("env");
        }
    }
    if let Some(only) = only {
        anyhow::ensure!(found, "unable to find container named {only:?}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_changes() {
        let mut spec = json!({"containers": [{"name": "a", "env": [{"name": "X", "value": "1"}]}]});
        let map = spec.as_object_mut().map(std::mem::take).unwrap_or_default();
        let mut map = map;
        set_env(&mut map, &["Y=2".into(), "X-".into()], None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Value::Object(map),
            json!({"containers": [{"name": "a", "env": [{"name": "Y", "value": "2"}]}]})
        );
    }

    #[test]
    fn unknown_container_is_an_error() {
        let mut map = json!({"containers": [{"name": "a", "image": "x"}]})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let error = set_images(&mut map, &["b=y".into()])
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            error.as_deref(),
            Some("unable to find container named \"b\"")
        );
    }
}

/// `tug edit` flags.
#[derive(Args, Debug)]
pub struct EditArgs {
    /// `TYPE NAME` or `TYPE/NAME`.
    #[arg(required = true)]
    pub args: Vec<String>,
}

/// `tug edit`: the object as YAML in `$KUBE_EDITOR`, `$EDITOR` or `vi`; the changes are sent as
/// a strategic merge patch (kubectl's `fieldManager=kubectl-edit`).
pub async fn edit(ctx: &Ctx, args: EditArgs) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let (objects, rest) = resolve_objects(ctx, &args.args, |_| true).await?;
    anyhow::ensure!(rest.is_empty(), "unexpected arguments: {rest:?}");
    let editor = ["KUBE_EDITOR", "EDITOR"]
        .into_iter()
        .find_map(|v| std::env::var(v).ok().filter(|e| !e.trim().is_empty()))
        .unwrap_or_else(|| "vi".to_owned());
    for (resource, name) in objects {
        let path = resource.object_path(&ctx.namespace, &name);
        let mut original = ctx.get(&path).await?;
        // Left out of the editor, as kubectl edit does without --show-managed-fields.
        if let Some(meta) = original.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let dir = std::env::temp_dir().join(format!("tug-edit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let file = dir.join(format!("{}-{name}.yaml", resource.plural));
        let text = super::print::yaml(&original)?;
        std::fs::write(&file, &text).with_context(|| format!("writing {}", file.display()))?;
        // kubectl runs the editor through the shell, so EDITOR may carry arguments.
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{editor} \"$1\""))
            .arg("tug-edit")
            .arg(&file)
            .status()
            .await
            .with_context(|| format!("running the editor {editor:?}"))?;
        let edited = std::fs::read_to_string(&file);
        let _ = std::fs::remove_dir_all(&dir);
        anyhow::ensure!(status.success(), "the editor {editor:?} failed ({status})");
        let edited = edited.context("reading the edited file")?;
        if edited == text {
            println!("Edit cancelled, no changes made.");
            continue;
        }
        let modified: Value = serde_yaml::from_str(&edited)
            .map_err(|error| anyhow::anyhow!("the edited file is not valid YAML: {error}"))?;
        let schema = schema_for(&resource.group, &resource.kind).unwrap_or(&Schema::UNKNOWN);
        let patch = create_two_way_merge_patch(&original, &modified, schema)?;
        if patch.as_object().is_some_and(Map::is_empty) {
            println!("Edit cancelled, no changes made.");
            continue;
        }
        ctx.send(
            Method::PATCH,
            &with_query(&path, &[("fieldManager", "kubectl-edit")]),
            "application/strategic-merge-patch+json",
            &patch,
        )
        .await?;
        println!("{}/{name} edited", resource.kind_group());
    }
    Ok(())
}
