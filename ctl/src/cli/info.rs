//! `tug version`, `tug cluster-info`, `tug api-resources`.

use clap::Args;

use super::Ctx;
use super::print::print_columns;

/// `tug version` flags.
#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Only the client's version (no server needed).
    #[arg(long)]
    pub client: bool,
}

/// `tug version`.
pub async fn version(ctx: &Ctx, args: VersionArgs) -> anyhow::Result<()> {
    println!("Client Version: tug v{}", env!("CARGO_PKG_VERSION"));
    if args.client {
        return Ok(());
    }
    let info = ctx
        .client
        .apiserver_version()
        .await
        .map_err(|e| ctx.map_error(e))?;
    println!("Server Version: {}", info.git_version);
    Ok(())
}

/// `tug cluster-info`.
pub async fn cluster_info(ctx: &Ctx) -> anyhow::Result<()> {
    // Fails with the "no cluster" message when nothing answers.
    ctx.client
        .apiserver_version()
        .await
        .map_err(|e| ctx.map_error(e))?;
    println!("Kubernetes control plane is running at {}", ctx.server);
    println!();
    println!(
        "To further debug and diagnose cluster problems, use 'tug get events -A' and 'tug describe'."
    );
    Ok(())
}

/// `tug api-resources` flags.
#[derive(Args, Debug)]
pub struct ApiResourcesArgs {
    /// Only namespaced (`true`) or cluster-scoped (`false`) types.
    #[arg(long)]
    pub namespaced: Option<bool>,
    /// `name`: only the names (`deployments.apps`); `wide`: with verbs.
    #[arg(short = 'o', long)]
    pub output: Option<String>,
    /// Only this API group.
    #[arg(long)]
    pub api_group: Option<String>,
    /// Leave out the header line.
    #[arg(long)]
    pub no_headers: bool,
}

/// `tug api-resources`, sorted as kubectl sorts them (by group, then name).
pub async fn api_resources(ctx: &Ctx, args: ApiResourcesArgs) -> anyhow::Result<()> {
    let resources = ctx.resources().await?;
    let mut list: Vec<_> = resources
        .list
        .iter()
        .filter(|r| r.preferred)
        .filter(|r| args.namespaced.is_none_or(|n| n == r.namespaced))
        .filter(|r| args.api_group.as_deref().is_none_or(|g| g == r.group))
        .collect();
    list.sort_by(|a, b| (&a.group, &a.plural).cmp(&(&b.group, &b.plural)));
    if args.output.as_deref() == Some("name") {
        for r in list {
            println!("{}", r.group_resource());
        }
        return Ok(());
    }
    let wide = args.output.as_deref() == Some("wide");
    let mut rows = Vec::new();
    if !args.no_headers {
        let mut header: Vec<String> = ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
            .map(str::to_owned)
            .to_vec();
        if wide {
            header.push("VERBS".into());
        }
        rows.push(header);
    }
    for r in list {
        let mut row = vec![
            r.plural.clone(),
            r.short_names.join(","),
            r.api_version(),
            r.namespaced.to_string(),
            r.kind.clone(),
        ];
        if wide {
            row.push(format!("[{}]", r.verbs.join(" ")));
        }
        rows.push(row);
    }
    print_columns(&rows);
    Ok(())
}
