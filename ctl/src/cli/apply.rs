//! `tug apply` (client-side apply, compatible with kubectl's: the
//! `kubectl.kubernetes.io/last-applied-configuration` annotation and a three-way strategic
//! merge patch) and `tug create -f`.

use anyhow::Context as _;
use clap::Args;
use http::Method;
use serde_json::{Map, Value, json};
use tugboat_api::patch::{Schema, create_three_way_merge_patch, schema_for};

use super::client::{ApiError, api_code, with_query};
use super::discovery::Resource;
use super::manifest::{self, Doc};
use super::{Ctx, Reported};

/// The annotation kubectl keeps the last applied configuration in.
pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// kubectl's field manager for client-side apply.
const FIELD_MANAGER: &str = "kubectl-client-side-apply";

/// kubectl's field manager for server-side apply.
const SERVER_SIDE_FIELD_MANAGER: &str = "kubectl";

/// What kubectl adds to an apply conflict.
const CONFLICT_HELP: &str =
    "Please review the fields above--they currently have other managers. Here
are the ways you can resolve this warning:
* If you intend to manage all of these fields, please re-run the apply
  command with the `--force-conflicts` flag.
* If you do not intend to manage all of the fields, please edit your
  manifest to remove references to the fields that should keep their
  current managers.
* You may co-own fields by updating your manifest to match the existing
  value; in this case, you'll become the manager if the other manager(s)
  stop managing the field (remove it from their configuration).
See https://kubernetes.io/docs/reference/using-api/server-side-apply/#conflicts";

/// How often kubectl retries a patch that hit a conflict (`maxPatchRetry`).
const MAX_PATCH_RETRY: usize = 5;

/// `--dry-run`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DryRun {
    /// Really do it.
    #[default]
    None,
    /// Only print what would be done.
    Client,
    /// Ask the server to do everything but store the result.
    Server,
}

impl DryRun {
    /// The suffix kubectl prints after the outcome.
    pub fn suffix(self) -> &'static str {
        match self {
            DryRun::None => "",
            DryRun::Client => " (dry run)",
            DryRun::Server => " (server dry run)",
        }
    }

    /// The `dryRun` query parameter.
    pub fn param(self) -> &'static str {
        if self == DryRun::Server { "All" } else { "" }
    }
}

/// `tug apply` flags.
#[derive(Args, Debug)]
pub struct ApplyArgs {
    /// Files, directories or `-` (stdin) with the configuration.
    #[arg(short = 'f', long = "filename", required = true)]
    pub filenames: Vec<String>,
    /// Process directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// `none`, `client` (print only) or `server` (the server checks, stores nothing).
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// `name`: print only `KIND/NAME` of each object.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Then wait for the rollouts of the applied deployments to finish, showing their progress.
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits for each rollout (`0s`: until done or past its progress
    /// deadline).
    #[arg(long, default_value = "0s", value_parser = crate::components::parse_duration)]
    pub timeout: std::time::Duration,
    /// Only the objects whose labels match this selector are applied, and with `--prune`,
    /// pruned.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete the objects that carry the last-applied annotation, match `-l` (or `--all`)
    /// and were not in this apply (kubectl's `--prune`).
    #[arg(long)]
    pub prune: bool,
    /// With `--prune`: prune every type of the allowlist without a selector.
    #[arg(long)]
    pub all: bool,
    /// With `--prune`: the types to prune, `group/version/Kind` (`core/v1/ConfigMap`),
    /// instead of kubectl's default list.
    #[arg(long = "prune-allowlist", alias = "prune-whitelist")]
    pub prune_allowlist: Vec<String>,
    /// Let the server merge the configuration and track who owns which field (server-side
    /// apply) instead of patching from the last-applied annotation.
    #[arg(long)]
    pub server_side: bool,
    /// With `--server-side`: take over fields other managers own instead of failing.
    #[arg(long)]
    pub force_conflicts: bool,
    /// The field manager the server records (default: `kubectl` with `--server-side`, as
    /// kubectl, so both tools own the same fields; `kubectl-client-side-apply` without).
    #[arg(long)]
    pub field_manager: Option<String>,
}

/// `tug create` flags.
#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Files, directories or `-` (stdin) with the objects.
    #[arg(short = 'f', long = "filename", required = true)]
    pub filenames: Vec<String>,
    /// Process directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// `none`, `client` or `server`.
    #[arg(long, value_enum, default_value = "none", num_args = 0..=1, default_missing_value = "client")]
    pub dry_run: DryRun,
    /// Store the configuration in the last-applied annotation, for later `apply`.
    #[arg(long)]
    pub save_config: bool,
}

/// An object from a manifest with its type and place.
pub struct Target<'a> {
    /// Its type.
    pub resource: &'a Resource,
    /// Its namespace (empty for cluster-scoped types).
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The object, namespace filled in.
    pub object: Value,
    /// The file it came from.
    pub source: String,
}

impl Target<'_> {
    /// The object's path.
    pub fn path(&self) -> String {
        self.resource.object_path(&self.namespace, &self.name)
    }

    /// `deployment.apps/web`.
    pub fn display(&self) -> String {
        format!("{}/{}", self.resource.kind_group(), self.name)
    }
}

/// Resolve every object of the manifests; kubectl's errors for unknown kinds, missing names and
/// namespace mismatches.
pub async fn targets<'a>(ctx: &'a Ctx, docs: Vec<Doc>) -> anyhow::Result<Vec<Target<'a>>> {
    let resources = ctx.resources().await?;
    let mut targets = Vec::new();
    for doc in docs {
        let resource = resources.for_object(&doc.object, &doc.source)?;
        let mut object = doc.object;
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let mut namespace = String::new();
        if resource.namespaced {
            let given = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .filter(|ns| !ns.is_empty())
                .map(str::to_owned);
            namespace = match given {
                Some(given) if ctx.namespace_explicit && given != ctx.namespace => {
                    anyhow::bail!(
                        "the namespace from the provided object {given:?} does not match the namespace {:?}. You must pass '--namespace={given}' to perform this operation.",
                        ctx.namespace
                    )
                }
                Some(given) => given,
                None => ctx.namespace.clone(),
            };
            if let Some(metadata) = object
                .as_object_mut()
                .map(|o| o.entry("metadata").or_insert_with(|| json!({})))
                .and_then(Value::as_object_mut)
            {
                metadata.insert("namespace".into(), Value::String(namespace.clone()));
            }
        }
        targets.push(Target {
            resource,
            namespace,
            name,
            object,
            source: doc.source,
        });
    }
    Ok(targets)
}

/// JSON as Go's `json.Encoder` writes it (what kubectl stores in the annotation): compact,
/// keys sorted, `<`, `>`, `&`, U+2028 and U+2029 escaped, a trailing newline.
pub fn go_json(value: &Value) -> anyhow::Result<String> {
    let text = serde_json::to_string(value).context("encoding JSON")?;
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            other => out.push(other),
        }
    }
    out.push('\n');
    Ok(out)
}

/// kubectl's `GetModifiedConfiguration`: the object with its own JSON (without the
/// annotation, `annotations: {}` kept) in the last-applied annotation.
pub fn with_last_applied(object: &Value) -> anyhow::Result<Value> {
    let mut object = object.clone();
    let metadata = object
        .as_object_mut()
        .context("a manifest must be an object")?
        .entry("metadata")
        .or_insert_with(|| json!({}));
    let metadata = metadata
        .as_object_mut()
        .context("metadata must be an object")?;
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(Map::new()));
    if annotations.is_null() {
        *annotations = Value::Object(Map::new());
    }
    let annotations = annotations
        .as_object_mut()
        .context("metadata.annotations must be an object")?;
    annotations.remove(LAST_APPLIED);
    let text = go_json(&object)?;
    if let Some(annotations) = object
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        annotations.insert(LAST_APPLIED.into(), Value::String(text));
    }
    Ok(object)
}

/// What an apply did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Created.
    Created,
    /// Patched.
    Configured,
    /// Nothing to change.
    Unchanged,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Configured => "configured",
            Outcome::Unchanged => "unchanged",
        }
    }
}

/// Apply one object.
pub async fn apply_one(
    ctx: &Ctx,
    target: &Target<'_>,
    dry_run: DryRun,
    field_manager: Option<&str>,
) -> anyhow::Result<Outcome> {
    anyhow::ensure!(
        !target.name.is_empty(),
        "error when retrieving current configuration of {} from {:?}: resource name may not be empty",
        target.resource.kind,
        target.source
    );
    let modified = with_last_applied(&target.object)?;
    let path = target.path();
    let query = [
        ("fieldManager", field_manager.unwrap_or(FIELD_MANAGER)),
        ("fieldValidation", "Strict"),
        ("dryRun", dry_run.param()),
    ];
    let Some(mut current) = ctx.get_opt(&path).await? else {
        if dry_run != DryRun::Client {
            let collection = target
                .resource
                .collection_path(Some(target.namespace.as_str()));
            ctx.send(
                Method::POST,
                &with_query(&collection, &query),
                "application/json",
                &modified,
            )
            .await
            .map_err(|e| context_error(e, "creating", &target.source))?;
        }
        return Ok(Outcome::Created);
    };
    let schema = schema_for(&target.resource.group, &target.resource.kind);
    let content_type = if schema.is_some() {
        "application/strategic-merge-patch+json"
    } else {
        "application/merge-patch+json"
    };
    let schema = schema.unwrap_or(&Schema::UNKNOWN);
    for attempt in 1..=MAX_PATCH_RETRY {
        let original = match current
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(Value::as_str)
        {
            Some(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            None => {
                if attempt == 1 {
                    eprintln!(
                        "Warning: resource {}/{} is missing the {LAST_APPLIED} annotation which is required by tug apply and kubectl apply. tug apply should only be used on resources created declaratively by either tug create --save-config or tug apply. The missing annotation will be patched automatically.",
                        target.resource.plural, target.name
                    );
                }
                Value::Null
            }
        };
        let patch = create_three_way_merge_patch(&original, &modified, &current, schema)
            .with_context(|| format!("computing the patch for {}", target.display()))?;
        if patch.as_object().is_some_and(Map::is_empty) {
            return Ok(Outcome::Unchanged);
        }
        if dry_run == DryRun::Client {
            return Ok(Outcome::Configured);
        }
        match ctx
            .send(
                Method::PATCH,
                &with_query(&path, &query),
                content_type,
                &patch,
            )
            .await
        {
            Ok(_) => return Ok(Outcome::Configured),
            Err(error) if api_code(&error) == Some(409) && attempt < MAX_PATCH_RETRY => {
                current = ctx.get(&path).await?;
            }
            Err(error) => return Err(context_error(error, "applying patch", &target.source)),
        }
    }
    anyhow::bail!("{}: too many conflicts", target.display())
}

/// Server-side apply of one object: the server merges it and records `manager` as the owner
/// of its fields.
pub async fn apply_server_side(
    ctx: &Ctx,
    target: &Target<'_>,
    dry_run: DryRun,
    manager: &str,
    force: bool,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        !target.name.is_empty(),
        "error when retrieving current configuration of {} from {:?}: resource name may not be empty",
        target.resource.kind,
        target.source
    );
    let query = [
        ("fieldManager", manager),
        ("force", if force { "true" } else { "false" }),
        ("fieldValidation", "Strict"),
        ("dryRun", dry_run.param()),
    ];
    match ctx
        .send(
            Method::PATCH,
            &with_query(&target.path(), &query),
            "application/apply-patch+yaml",
            &target.object,
        )
        .await
    {
        Ok(_) => Ok(()),
        // kubectl wraps a conflict in its advice and prints it as its own error.
        Err(error) if api_code(&error) == Some(409) => {
            let message = error
                .downcast_ref::<ApiError>()
                .map(|api| api.status.message.clone())
                .unwrap_or_else(|| error.to_string());
            Err(anyhow::anyhow!("{message}\n{CONFLICT_HELP}"))
        }
        Err(error) => Err(context_error(error, "applying patch", &target.source)),
    }
}

/// `Error from server (Reason): error when creating "f.yaml": message`, as kubectl says it.
pub fn context_error(error: anyhow::Error, doing: &str, source: &str) -> anyhow::Error {
    match error.downcast::<ApiError>() {
        Ok(mut api) => {
            api.status.message = format!("error when {doing} {source:?}: {}", api.status.message);
            api.into()
        }
        Err(other) => other,
    }
}

fn print_outcome(output: Option<&str>, target: &Target<'_>, word: &str, dry_run: DryRun) {
    if output == Some("name") {
        println!("{}", target.display());
    } else {
        println!("{} {word}{}", target.display(), dry_run.suffix());
    }
}

/// `tug apply`.
pub async fn apply(ctx: &Ctx, args: ApplyArgs) -> anyhow::Result<()> {
    if let Some(output) = &args.output {
        anyhow::ensure!(
            output == "name",
            "unable to match a printer suitable for the output format {output:?}, allowed formats are: name"
        );
    }
    if args.all && args.selector.is_some() {
        anyhow::bail!("cannot set --all and --selector at the same time");
    }
    if args.prune && !args.all && args.selector.is_none() {
        anyhow::bail!(
            "all resources selected for prune without explicitly passing --all. To prune all resources, pass the --all flag. If you did not mean to prune all resources, specify a label selector"
        );
    }
    if args.server_side && args.dry_run == DryRun::Client {
        anyhow::bail!(
            "--dry-run=client doesn't work with --server-side (did you mean --dry-run=server instead?)"
        );
    }
    if args.force_conflicts && !args.server_side {
        anyhow::bail!("--force-conflicts only works with --server-side");
    }
    if args.server_side && args.prune {
        anyhow::bail!("--prune with --server-side is not supported by tug yet");
    }
    let selector = match &args.selector {
        Some(text) => Some(
            tugboat_api::selector::Selector::parse(text)
                .map_err(|e| anyhow::anyhow!("unable to parse {text:?}: {e}"))?,
        ),
        None => None,
    };
    let docs = manifest::read(&args.filenames, args.recursive)?;
    anyhow::ensure!(!docs.is_empty(), "no objects passed to apply");
    let mut targets = targets(ctx, docs).await?;
    // kubectl applies only the objects the selector matches.
    if let Some(selector) = &selector {
        targets.retain(|t| selector.matches_object(&t.object));
    }
    let mut failed = false;
    for target in &targets {
        if args.server_side {
            let manager = args
                .field_manager
                .as_deref()
                .unwrap_or(SERVER_SIDE_FIELD_MANAGER);
            match apply_server_side(ctx, target, args.dry_run, manager, args.force_conflicts).await
            {
                Ok(()) => print_outcome(
                    args.output.as_deref(),
                    target,
                    "serverside-applied",
                    args.dry_run,
                ),
                Err(error) => {
                    failed = true;
                    super::report(&error);
                }
            }
            continue;
        }
        match apply_one(ctx, target, args.dry_run, args.field_manager.as_deref()).await {
            Ok(outcome) => {
                print_outcome(args.output.as_deref(), target, outcome.word(), args.dry_run)
            }
            Err(error) => {
                failed = true;
                super::report(&error);
            }
        }
    }
    if failed {
        return Err(Reported.into());
    }
    if args.prune {
        prune(ctx, &args, &targets).await?;
    }
    if args.wait && args.dry_run == DryRun::None {
        for target in &targets {
            if target.resource.group == "apps" && target.resource.kind == "Deployment" {
                super::rollout::wait_rollout(ctx, &target.path(), &target.name, args.timeout, true)
                    .await?;
            }
        }
    }
    Ok(())
}

/// What kubectl prunes when no `--prune-allowlist` is given (its `getRESTMappings`):
/// `(group, version, kind)`.
const DEFAULT_PRUNE_TYPES: [(&str, &str, &str); 16] = [
    ("", "v1", "ConfigMap"),
    ("", "v1", "Endpoints"),
    ("", "v1", "Namespace"),
    ("", "v1", "PersistentVolumeClaim"),
    ("", "v1", "PersistentVolume"),
    ("", "v1", "Pod"),
    ("", "v1", "ReplicationController"),
    ("", "v1", "Secret"),
    ("", "v1", "Service"),
    ("batch", "v1", "Job"),
    ("batch", "v1", "CronJob"),
    ("networking.k8s.io", "v1", "Ingress"),
    ("apps", "v1", "DaemonSet"),
    ("apps", "v1", "Deployment"),
    ("apps", "v1", "ReplicaSet"),
    ("apps", "v1", "StatefulSet"),
];

/// The types `--prune` looks at: the allowlist given, else kubectl's default list (the types
/// this server does not serve are skipped).
fn prune_types<'a>(
    ctx_resources: &'a super::discovery::Resources,
    allowlist: &[String],
) -> anyhow::Result<Vec<&'a Resource>> {
    let wanted: Vec<(String, String, String)> = if allowlist.is_empty() {
        DEFAULT_PRUNE_TYPES
            .iter()
            .map(|(g, v, k)| ((*g).to_owned(), (*v).to_owned(), (*k).to_owned()))
            .collect()
    } else {
        allowlist
            .iter()
            .map(|entry| {
                let parts: Vec<&str> = entry.split('/').collect();
                match parts.as_slice() {
                    [group, version, kind] => {
                        let group = if *group == "core" { "" } else { group };
                        Ok((group.to_owned(), (*version).to_owned(), (*kind).to_owned()))
                    }
                    _ => anyhow::bail!(
                        "invalid GroupVersionKind format: {entry}, please follow <group/version/kind>"
                    ),
                }
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mut out = Vec::new();
    for (group, version, kind) in wanted {
        let api_version = if group.is_empty() {
            version.clone()
        } else {
            format!("{group}/{version}")
        };
        match ctx_resources.for_kind(&api_version, &kind) {
            Some(resource) => out.push(resource),
            None if allowlist.is_empty() => {}
            None => anyhow::bail!("no matches for kind {kind:?} in version {api_version:?}"),
        }
    }
    Ok(out)
}

/// kubectl's `--prune`: in every namespace this apply visited (and once for cluster-scoped
/// types), delete the objects of the prune types that match the selector, carry the
/// last-applied annotation and were not applied now.
async fn prune(ctx: &Ctx, args: &ApplyArgs, applied: &[Target<'_>]) -> anyhow::Result<()> {
    let resources = ctx.resources().await?;
    let types = prune_types(resources, &args.prune_allowlist)?;
    let mut namespaces: Vec<&str> = applied
        .iter()
        .filter(|t| t.resource.namespaced)
        .map(|t| t.namespace.as_str())
        .collect();
    namespaces.sort_unstable();
    namespaces.dedup();
    let selector = args.selector.as_deref().unwrap_or("");
    let was_applied = |resource: &Resource, namespace: &str, name: &str| {
        applied.iter().any(|t| {
            t.resource.group == resource.group
                && t.resource.kind == resource.kind
                && t.namespace == namespace
                && t.name == name
        })
    };
    let mut scopes: Vec<(&Resource, Option<&str>)> = Vec::new();
    for namespace in &namespaces {
        scopes.extend(
            types
                .iter()
                .filter(|r| r.namespaced)
                .map(|r| (*r, Some(*namespace))),
        );
    }
    scopes.extend(types.iter().filter(|r| !r.namespaced).map(|r| (*r, None)));
    for (resource, namespace) in scopes {
        let list = ctx
            .get(&with_query(
                &resource.collection_path(namespace),
                &[("labelSelector", selector)],
            ))
            .await?;
        for item in list
            .get("items")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = item
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let item_namespace = item
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let annotated = item
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(LAST_APPLIED))
                .is_some();
            let deleting = item.pointer("/metadata/deletionTimestamp").is_some();
            if !annotated || deleting || was_applied(resource, item_namespace, name) {
                continue;
            }
            if args.dry_run != DryRun::Client {
                let uid = item
                    .pointer("/metadata/uid")
                    .cloned()
                    .unwrap_or(Value::Null);
                let options = json!({
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                    "preconditions": {"uid": uid},
                });
                let deleted = ctx
                    .send(
                        Method::DELETE,
                        &with_query(
                            &resource.object_path(item_namespace, name),
                            &[("dryRun", args.dry_run.param())],
                        ),
                        "application/json",
                        &options,
                    )
                    .await;
                match deleted {
                    Ok(_) => {}
                    // Gone meanwhile: nothing left to prune.
                    Err(error) if api_code(&error) == Some(404) => continue,
                    Err(error) => return Err(error),
                }
            }
            let shown = format!("{}/{name}", resource.kind_group());
            if args.output.as_deref() == Some("name") {
                println!("{shown}");
            } else {
                println!("{shown} pruned{}", args.dry_run.suffix());
            }
        }
    }
    Ok(())
}

/// `tug create -f`.
pub async fn create(ctx: &Ctx, args: CreateArgs) -> anyhow::Result<()> {
    let docs = manifest::read(&args.filenames, args.recursive)?;
    anyhow::ensure!(!docs.is_empty(), "no objects passed to create");
    let targets = targets(ctx, docs).await?;
    let mut failed = false;
    for target in &targets {
        let body = if args.save_config {
            with_last_applied(&target.object)?
        } else {
            target.object.clone()
        };
        let collection = target
            .resource
            .collection_path(Some(target.namespace.as_str()));
        let result = if args.dry_run == DryRun::Client {
            Ok(Value::Null)
        } else {
            ctx.send(
                Method::POST,
                &with_query(
                    &collection,
                    &[
                        ("fieldManager", "kubectl-create"),
                        ("fieldValidation", "Strict"),
                        ("dryRun", args.dry_run.param()),
                    ],
                ),
                "application/json",
                &body,
            )
            .await
        };
        match result {
            Ok(created) => {
                let name = created
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or(&target.name);
                println!(
                    "{}/{name} created{}",
                    target.resource.kind_group(),
                    args.dry_run.suffix()
                );
            }
            Err(error) => {
                failed = true;
                super::report(&context_error(error, "creating", &target.source));
            }
        }
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(group: &str, kind: &str, namespaced: bool) -> Resource {
        Resource {
            group: group.into(),
            version: "v1".into(),
            plural: format!("{}s", kind.to_lowercase()),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            short_names: Vec::new(),
            verbs: Vec::new(),
            subresources: Vec::new(),
            categories: Vec::new(),
            preferred: true,
        }
    }

    #[test]
    fn prune_types_follow_kubectls_list_or_the_allowlist() {
        let resources = super::super::discovery::Resources {
            list: vec![
                resource("apps", "Deployment", true),
                resource("", "ConfigMap", true),
                resource("", "Namespace", false),
            ],
        };
        let kinds = |list: Vec<&Resource>| list.iter().map(|r| r.kind.clone()).collect::<Vec<_>>();
        // kubectl's order; types the server lacks are skipped.
        assert_eq!(
            kinds(prune_types(&resources, &[]).unwrap()),
            ["ConfigMap", "Namespace", "Deployment"]
        );
        assert_eq!(
            kinds(prune_types(&resources, &["apps/v1/Deployment".into()]).unwrap()),
            ["Deployment"]
        );
        assert_eq!(
            kinds(prune_types(&resources, &["core/v1/ConfigMap".into()]).unwrap()),
            ["ConfigMap"]
        );
        assert!(prune_types(&resources, &["batch/v1/Job".into()]).is_err());
        assert!(prune_types(&resources, &["Deployment".into()]).is_err());
    }

    #[test]
    fn last_applied_is_what_kubectl_writes() {
        let object = json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "a", "namespace": "default"},
            "data": {"k": "<b> & c"}
        });
        let modified = with_last_applied(&object).unwrap_or_default();
        let annotation = modified
            .pointer("/metadata/annotations")
            .and_then(|a| a.get(LAST_APPLIED))
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert_eq!(
            annotation,
            "{\"apiVersion\":\"v1\",\"data\":{\"k\":\"\\u003cb\\u003e \\u0026 c\"},\"kind\":\"ConfigMap\",\"metadata\":{\"annotations\":{},\"name\":\"a\",\"namespace\":\"default\"}}\n"
        );
    }
}
