//! The kubectl-like commands of `tug`: one module per command family, all on one [`Ctx`]
//! (a `kube::Client` from the kubeconfig kubectl would use, the namespace, and the server's
//! discovery, fetched once).

pub mod apply;
pub mod client;
pub mod completion;
pub mod config;
pub mod delete;
pub mod describe;
pub mod discovery;
pub mod edit;
pub mod explain;
pub mod get;
pub mod image;
pub mod info;
pub mod manifest;
pub mod ops;
pub mod print;
pub mod rollout;
pub mod stream;

use std::path::PathBuf;

use clap::{Args, Subcommand};

pub use client::{ApiError, Ctx};

/// Flags every user command takes, as kubectl spells them.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (else $KUBECONFIG, ~/.kube/config, then the default
    /// `tug up` data dir's kubeconfig).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,
    /// The namespace (else the context's, else `default`).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,
}

/// The user commands.
#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Apply a configuration to resources by file name or stdin (client-side apply).
    Apply(apply::ApplyArgs),
    /// Create resources from files or stdin.
    Create(apply::CreateArgs),
    /// Display one or many resources (server-side tables).
    Get(get::GetArgs),
    /// Show details of a resource or group of resources, with events.
    Describe(describe::DescribeArgs),
    /// Delete resources by file names, stdin, names, or label selectors.
    Delete(delete::DeleteArgs),
    /// Manage the rollout of a deployment.
    #[command(subcommand)]
    Rollout(rollout::RolloutCommand),
    /// Set a new size for a deployment, replica set or stateful set.
    Scale(edit::ScaleArgs),
    /// Edit a resource in $KUBE_EDITOR / $EDITOR (default vi).
    Edit(edit::EditArgs),
    /// Update the labels on a resource.
    Label(edit::LabelArgs),
    /// Update the annotations on a resource.
    Annotate(edit::LabelArgs),
    /// Set specific features on objects (image, env).
    #[command(subcommand)]
    Set(edit::SetCommand),
    /// Print the logs of a container in a pod.
    Logs(ops::LogsArgs),
    /// Execute a command in a container.
    Exec(stream::ExecArgs),
    /// Forward one or more local ports to a pod.
    PortForward(stream::PortForwardArgs),
    /// CPU and memory use of nodes or pods (the metrics API).
    #[command(subcommand)]
    Top(ops::TopCommand),
    /// Create a HorizontalPodAutoscaler for a deployment, replica set or stateful set.
    Autoscale(ops::AutoscaleArgs),
    /// Mark nodes unschedulable.
    Cordon(ops::CordonArgs),
    /// Mark nodes schedulable again.
    Uncordon(ops::CordonArgs),
    /// Cordon a node and evict its pods (through the eviction API).
    Drain(ops::DrainArgs),
    /// Print the client and server versions.
    Version(info::VersionArgs),
    /// Display the address of the control plane.
    ClusterInfo,
    /// Documentation of a resource type or field (the server's OpenAPI v3).
    Explain(explain::ExplainArgs),
    /// Print the resource types the server supports.
    ApiResources(info::ApiResourcesArgs),
    /// Local images for pods (OCI or docker archives) in the `tug up` containerd.
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Inspect and change kubeconfig files.
    #[command(subcommand)]
    Config(config::ConfigCommand),
}

/// Run one user command.
pub async fn run(global: GlobalArgs, command: UserCommand) -> anyhow::Result<()> {
    // `config` works on files only: no client, no server needed.
    if let UserCommand::Config(command) = command {
        return config::run(&global, command);
    }
    // `image` talks to the node's containerd, not to the API server.
    if let UserCommand::Image(command) = command {
        return image::run(command).await;
    }
    let ctx = Ctx::new(&global).await?;
    match command {
        UserCommand::Apply(args) => apply::apply(&ctx, args).await,
        UserCommand::Create(args) => apply::create(&ctx, args).await,
        UserCommand::Get(args) => get::run(&ctx, args).await,
        UserCommand::Describe(args) => describe::run(&ctx, args).await,
        UserCommand::Delete(args) => delete::run(&ctx, args).await,
        UserCommand::Rollout(command) => rollout::run(&ctx, command).await,
        UserCommand::Scale(args) => edit::scale(&ctx, args).await,
        UserCommand::Edit(args) => edit::edit(&ctx, args).await,
        UserCommand::Label(args) => edit::label(&ctx, args, "labels").await,
        UserCommand::Annotate(args) => edit::label(&ctx, args, "annotations").await,
        UserCommand::Set(command) => edit::set(&ctx, command).await,
        UserCommand::Logs(args) => ops::logs(&ctx, args).await,
        UserCommand::Exec(args) => stream::exec(&ctx, args).await,
        UserCommand::PortForward(args) => stream::port_forward(&ctx, args).await,
        UserCommand::Top(command) => ops::top(&ctx, command).await,
        UserCommand::Autoscale(args) => ops::autoscale(&ctx, args).await,
        UserCommand::Cordon(args) => ops::cordon(&ctx, args, true).await,
        UserCommand::Uncordon(args) => ops::cordon(&ctx, args, false).await,
        UserCommand::Drain(args) => ops::drain(&ctx, args).await,
        UserCommand::Version(args) => info::version(&ctx, args).await,
        UserCommand::ClusterInfo => info::cluster_info(&ctx).await,
        UserCommand::Explain(args) => explain::run(&ctx, args).await,
        UserCommand::ApiResources(args) => info::api_resources(&ctx, args).await,
        UserCommand::Config(_) | UserCommand::Image(_) => Ok(()),
    }
}

/// An error already reported per object (kubectl goes on with the other objects, then exits
/// 1): nothing more to print.
#[derive(Debug)]
pub struct Reported;

impl std::fmt::Display for Reported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("errors were reported above")
    }
}

impl std::error::Error for Reported {}

/// Print a command's failure as kubectl does (`Error from server (NotFound): ...` or
/// `error: ...`); the exit code is 1.
pub fn report(error: &anyhow::Error) {
    if error.downcast_ref::<Reported>().is_some() {
        return;
    }
    if let Some(api) = error.downcast_ref::<ApiError>() {
        eprintln!("{api}");
        return;
    }
    eprintln!("error: {error:#}");
}
