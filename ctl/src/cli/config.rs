//! Which kubeconfig `tug` uses (as kubectl: `--kubeconfig`, `$KUBECONFIG`, `~/.kube/config`;
//! then the default `tug up` data dir's, so a fresh `tug up` needs no setup) and
//! `tug config view|get-contexts|current-context|use-context|set-context`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, Subcommand};
use kube::config::Kubeconfig;
use serde_yaml::Value as Yaml;

use super::GlobalArgs;
use super::print::print_columns;

/// The kubeconfig files in effect, in kubectl's order of precedence.
pub fn kubeconfig_paths(global: &GlobalArgs) -> anyhow::Result<Vec<PathBuf>> {
    if let Some(path) = &global.kubeconfig {
        anyhow::ensure!(
            path.is_file(),
            "the kubeconfig {} does not exist: check --kubeconfig",
            path.display()
        );
        return Ok(vec![path.clone()]);
    }
    if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        // kubectl skips files of $KUBECONFIG that do not exist.
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty() && p.is_file())
            .collect();
        anyhow::ensure!(
            !paths.is_empty(),
            "none of the files in $KUBECONFIG ({}) exists: fix KUBECONFIG or start a cluster with tug up",
            list.to_string_lossy()
        );
        return Ok(paths);
    }
    let mut looked = Vec::new();
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        let path = Path::new(&home).join(".kube").join("config");
        if path.is_file() {
            return Ok(vec![path]);
        }
        looked.push(path);
    }
    let path = crate::components::default_data_dir().join("kubeconfig");
    if path.is_file() {
        return Ok(vec![path]);
    }
    looked.push(path);
    let looked: Vec<String> = looked.iter().map(|p| p.display().to_string()).collect();
    anyhow::bail!(
        "no kubeconfig found (looked at {}): start a cluster with tug up, or pass --kubeconfig",
        looked.join(" and ")
    )
}

/// The merged kubeconfig (first file wins, as in kubectl) and the files it came from.
pub fn load(global: &GlobalArgs) -> anyhow::Result<(Kubeconfig, Vec<PathBuf>)> {
    let paths = kubeconfig_paths(global)?;
    let mut merged: Option<Kubeconfig> = None;
    for path in &paths {
        let config = Kubeconfig::read_from(path)
            .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
        merged = Some(match merged {
            None => config,
            Some(merged) => merged
                .merge(config)
                .with_context(|| format!("cannot merge the kubeconfig {}", path.display()))?,
        });
    }
    let merged = merged.context("no kubeconfig")?;
    Ok((merged, paths))
}

/// `tug config ...`.
#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Display the merged kubeconfig (secrets redacted unless --raw).
    View(ViewArgs),
    /// List the contexts.
    GetContexts,
    /// Print the current context.
    CurrentContext,
    /// Set the current context.
    UseContext {
        /// The context.
        name: String,
    },
    /// Change a context's namespace: `tug config set-context --current --namespace=NS`.
    SetContext(SetContextArgs),
}

/// `tug config view` flags.
#[derive(Args, Debug)]
pub struct ViewArgs {
    /// Show certificates and tokens.
    #[arg(long)]
    raw: bool,
    /// Only what the current context uses.
    #[arg(long)]
    minify: bool,
}

/// `tug config set-context` flags.
#[derive(Args, Debug)]
pub struct SetContextArgs {
    /// The context to change.
    name: Option<String>,
    /// Change the current context.
    #[arg(long)]
    current: bool,
}

/// Run a `tug config` command.
pub fn run(global: &GlobalArgs, command: ConfigCommand) -> anyhow::Result<()> {
    let (config, paths) = load(global)?;
    match command {
        ConfigCommand::View(args) => view(&config, &args),
        ConfigCommand::GetContexts => {
            let current = config.current_context.clone().unwrap_or_default();
            let mut rows = vec![vec![
                "CURRENT".to_owned(),
                "NAME".to_owned(),
                "CLUSTER".to_owned(),
                "AUTHINFO".to_owned(),
                "NAMESPACE".to_owned(),
            ]];
            for named in &config.contexts {
                let context = named.context.clone().unwrap_or_default();
                rows.push(vec![
                    if named.name == current { "*" } else { "" }.to_owned(),
                    named.name.clone(),
                    context.cluster.clone(),
                    context.user.clone().unwrap_or_default(),
                    context.namespace.clone().unwrap_or_default(),
                ]);
            }
            print_columns(&rows);
            Ok(())
        }
        ConfigCommand::CurrentContext => match config.current_context {
            Some(name) if !name.is_empty() => {
                println!("{name}");
                Ok(())
            }
            _ => anyhow::bail!("current-context is not set"),
        },
        ConfigCommand::UseContext { name } => {
            anyhow::ensure!(
                config.contexts.iter().any(|c| c.name == name),
                "no context exists with the name: {name:?}"
            );
            let path = file_with_current_context(&paths)?;
            edit_file(&path, |doc| {
                if let Yaml::Mapping(map) = doc {
                    map.insert("current-context".into(), Yaml::String(name.clone()));
                }
                Ok(())
            })?;
            println!("Switched to context \"{name}\".");
            Ok(())
        }
        ConfigCommand::SetContext(args) => {
            let name = match (args.name, args.current) {
                (Some(name), false) => name,
                (None, true) => config
                    .current_context
                    .clone()
                    .filter(|c| !c.is_empty())
                    .context("current-context is not set")?,
                _ => anyhow::bail!("give either a context name or --current"),
            };
            let namespace = global
                .namespace
                .clone()
                .context("nothing to set: pass --namespace")?;
            let path = paths
                .iter()
                .find(|p| file_has_context(p, &name))
                .cloned()
                .with_context(|| format!("no context exists with the name: {name:?}"))?;
            edit_file(&path, |doc| {
                let contexts = doc
                    .get_mut("contexts")
                    .and_then(Yaml::as_sequence_mut)
                    .context("no contexts")?;
                for entry in contexts {
                    if entry.get("name").and_then(Yaml::as_str) == Some(name.as_str())
                        && let Some(Yaml::Mapping(context)) = entry.get_mut("context")
                    {
                        context.insert("namespace".into(), Yaml::String(namespace.clone()));
                    }
                }
                Ok(())
            })?;
            println!("Context \"{name}\" modified.");
            Ok(())
        }
    }
}

fn view(config: &Kubeconfig, args: &ViewArgs) -> anyhow::Result<()> {
    let mut config = config.clone();
    if args.minify {
        let current = config.current_context.clone().unwrap_or_default();
        config.contexts.retain(|c| c.name == current);
        let context = config
            .contexts
            .first()
            .and_then(|c| c.context.clone())
            .unwrap_or_default();
        config.clusters.retain(|c| c.name == context.cluster);
        let user = context.user.unwrap_or_default();
        config.auth_infos.retain(|a| a.name == user);
    }
    let mut doc = serde_yaml::to_value(&config).context("encoding the kubeconfig")?;
    if !args.raw {
        redact(&mut doc);
    }
    print!(
        "{}",
        serde_yaml::to_string(&doc).context("encoding the kubeconfig")?
    );
    Ok(())
}

/// kubectl's redaction: certificates `DATA+OMITTED`, secrets `REDACTED`.
fn redact(doc: &mut Yaml) {
    const DATA: &[&str] = &[
        "certificate-authority-data",
        "client-certificate-data",
        "client-key-data",
    ];
    const SECRETS: &[&str] = &["token", "password"];
    match doc {
        Yaml::Mapping(map) => {
            for (key, value) in map.iter_mut() {
                match key.as_str() {
                    Some(k) if DATA.contains(&k) && !value.is_null() => {
                        *value = Yaml::String("DATA+OMITTED".into());
                    }
                    Some(k) if SECRETS.contains(&k) && !value.is_null() => {
                        *value = Yaml::String("REDACTED".into());
                    }
                    _ => redact(value),
                }
            }
        }
        Yaml::Sequence(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn read_yaml(path: &Path) -> anyhow::Result<Yaml> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the kubeconfig {}", path.display()))?;
    serde_yaml::from_str(&text)
        .with_context(|| format!("cannot parse the kubeconfig {}", path.display()))
}

fn file_has_context(path: &Path, name: &str) -> bool {
    read_yaml(path).is_ok_and(|doc| {
        doc.get("contexts")
            .and_then(Yaml::as_sequence)
            .is_some_and(|list| {
                list.iter()
                    .any(|c| c.get("name").and_then(Yaml::as_str) == Some(name))
            })
    })
}

/// kubectl writes `current-context` to the first file that sets it, else the first file.
fn file_with_current_context(paths: &[PathBuf]) -> anyhow::Result<PathBuf> {
    for path in paths {
        if read_yaml(path).is_ok_and(|doc| {
            doc.get("current-context")
                .and_then(Yaml::as_str)
                .is_some_and(|c| !c.is_empty())
        }) {
            return Ok(path.clone());
        }
    }
    paths.first().cloned().context("no kubeconfig")
}

/// Edit a kubeconfig file in place, keeping its mode.
fn edit_file(
    path: &Path,
    edit: impl FnOnce(&mut Yaml) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut doc = read_yaml(path)?;
    edit(&mut doc)?;
    let text = serde_yaml::to_string(&doc).context("encoding the kubeconfig")?;
    std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_secrets_only() {
        let mut doc: Yaml = serde_yaml::from_str(
            "clusters:\n- name: c\n  cluster:\n    server: https://x\n    certificate-authority-data: QUJD\nusers:\n- name: u\n  user:\n    token: secret\n",
        )
        .unwrap_or(Yaml::Null);
        redact(&mut doc);
        let text = serde_yaml::to_string(&doc).unwrap_or_default();
        assert!(
            text.contains("certificate-authority-data: DATA+OMITTED"),
            "{text}"
        );
        assert!(text.contains("token: REDACTED"), "{text}");
        assert!(text.contains("server: https://x"), "{text}");
    }
}
