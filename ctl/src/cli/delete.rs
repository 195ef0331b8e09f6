//! `tug delete` by names, `TYPE/NAME`, files, `-l` or `--all`; waits until the objects are gone
//! (`--wait`, on by default as in kubectl).

use std::time::{Duration, Instant};

use clap::Args;
use http::Method;
use serde_json::{Value, json};

use super::client::{is_not_found, with_query};
use super::discovery::Resource;
use super::{Ctx, Reported, manifest};

/// How long `--wait` waits when `--timeout` is 0.
const DEFAULT_WAIT: Duration = Duration::from_secs(300);

/// `tug delete` flags.
#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// `TYPE NAME...` or `TYPE/NAME ...`.
    pub args: Vec<String>,
    /// Files, directories or `-` naming the objects.
    #[arg(short = 'f', long = "filename")]
    pub filenames: Vec<String>,
    /// Process directories recursively.
    #[arg(short = 'R', long)]
    pub recursive: bool,
    /// Delete the objects matching this label selector.
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    /// Delete every object of the type in the namespace.
    #[arg(long)]
    pub all: bool,
    /// Objects that do not exist are not an error.
    #[arg(long)]
    pub ignore_not_found: bool,
    /// Wait until the objects are gone.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub wait: bool,
    /// Seconds the pods get to stop (-1: their own setting).
    #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
    pub grace_period: i64,
    /// How long to wait (`30s`, `5m`; 0: 5 minutes).
    #[arg(long, default_value = "0s", value_parser = crate::components::parse_duration)]
    pub timeout: Duration,
}

struct Victim<'a> {
    resource: &'a Resource,
    namespace: String,
    name: String,
}

/// `tug delete`.
pub async fn run(ctx: &Ctx, args: DeleteArgs) -> anyhow::Result<()> {
    let resources = ctx.resources().await?;
    let mut victims: Vec<Victim<'_>> = Vec::new();
    if !args.filenames.is_empty() {
        let docs = manifest::read(&args.filenames, args.recursive)?;
        for target in super::apply::targets(ctx, docs).await? {
            victims.push(Victim {
                resource: target.resource,
                namespace: target.namespace,
                name: target.name,
            });
        }
    } else {
        let Some(first) = args.args.first() else {
            anyhow::bail!(
                "You must provide one or more resources by argument or filename.\nExample resource specifications include:\n   '-f rsrc.yaml'\n   '--filename=rsrc.json'\n   '<resource> <name>'\n   '<resource>'"
            );
        };
        if first.contains('/') {
            for arg in &args.args {
                let (kind, name) = arg.split_once('/').ok_or_else(|| {
                    anyhow::anyhow!(
                        "arguments in resource/name form must have a single resource and name"
                    )
                })?;
                victims.push(Victim {
                    resource: resources.resolve(kind)?,
                    namespace: ctx.namespace.clone(),
                    name: name.to_owned(),
                });
            }
        } else {
            for kind in first.split(',') {
                let resource = resources.resolve(kind)?;
                let names = &args.args[1..];
                if !names.is_empty() {
                    victims.extend(names.iter().map(|name| Victim {
                        resource,
                        namespace: ctx.namespace.clone(),
                        name: name.clone(),
                    }));
                } else if args.all || args.selector.is_some() {
                    let path = with_query(
                        &resource.collection_path(Some(&ctx.namespace)),
                        &[("labelSelector", args.selector.as_deref().unwrap_or(""))],
                    );
                    let list = ctx.get(&path).await?;
                    for item in list
                        .get("items")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        victims.push(Victim {
                            resource,
                            namespace: ctx.namespace.clone(),
                            name: item
                                .pointer("/metadata/name")
                                .and_then(Value::as_str)
                                .unwrap_or_default()
                                .to_owned(),
                        });
                    }
                } else {
                    anyhow::bail!(
                        "resource(s) were provided, but no name was specified (give names, -l SELECTOR or --all)"
                    );
                }
            }
        }
    }
    if victims.is_empty() {
        eprintln!("No resources found");
        return Ok(());
    }
    let mut body = json!({"propagationPolicy": "Background"});
    if args.grace_period >= 0 {
        body["gracePeriodSeconds"] = json!(args.grace_period);
    }
    let mut failed = false;
    let mut deleted = Vec::new();
    for victim in &victims {
        let path = victim.resource.object_path(&victim.namespace, &victim.name);
        match ctx
            .send(Method::DELETE, &path, "application/json", &body)
            .await
        {
            Ok(answer) => {
                println!(
                    "{} \"{}\" deleted",
                    victim.resource.kind_group(),
                    victim.name
                );
                let uid = answer
                    .pointer("/metadata/uid")
                    .or_else(|| answer.pointer("/details/uid"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                deleted.push((path, uid));
            }
            Err(error) if is_not_found(&error) && args.ignore_not_found => {}
            Err(error) => {
                failed = true;
                super::report(&error);
            }
        }
    }
    if args.wait {
        let timeout = if args.timeout.is_zero() {
            DEFAULT_WAIT
        } else {
            args.timeout
        };
        let deadline = Instant::now() + timeout;
        for (path, uid) in deleted {
            loop {
                match ctx.get_opt(&path).await? {
                    None => break,
                    Some(object) => {
                        let now = object.pointer("/metadata/uid").and_then(Value::as_str);
                        if uid.is_some() && now != uid.as_deref() {
                            break;
                        }
                    }
                }
                if Instant::now() >= deadline {
                    anyhow::bail!(
                        "timed out waiting for {path} to be deleted after {timeout:?} (its finalizers or pods may still be running; see tug describe)"
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    if failed { Err(Reported.into()) } else { Ok(()) }
}
