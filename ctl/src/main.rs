//! `tug`: the whole cluster on one machine (`tug up`), its components one by one, and the
//! kubectl-like CLI (`tug apply`, `get`, `describe`, `rollout`, ...).

mod cli;
mod components;
mod join;
mod leader;
mod node;
mod sim_threads;
mod up;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc instead of glibc's malloc: the API server allocates and frees a JSON tree or more per
// request from many threads, where glibc's arenas cost a quarter of the create path's CPU
// (BENCHMARKS.md B3).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "tug",
    version,
    about = "Tugboat: a Kubernetes-compatible orchestrator in one binary"
)]
struct Cli {
    #[command(flatten)]
    global: cli::GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the cluster on this machine in the foreground: API server, controllers.
    Up(up::UpArgs),
    /// Run the API server alone.
    Apiserver(up::ApiServerFlags),
    /// Run the scheduler alone, against the cluster of the kubeconfig (--kubeconfig,
    /// $KUBECONFIG, ~/.kube/config, then the default data dir's).
    Scheduler(components::SchedulerArgs),
    /// Run the controllers alone, against the cluster of the kubeconfig.
    Controllers(components::ControllersArgs),
    /// Run this machine's node agent alone, joined to a cluster with --server URL and a join
    /// token (or to the cluster of the kubeconfig with a copy of the CA in --pki-dir).
    Agent(node::AgentArgs),
    /// Stop and remove every pod `tug up` started in a data dir, its containerd, its network
    /// setup, then the data dir.
    Reset(up::ResetArgs),
    /// Print a shell completion script: `source <(tug completion bash)`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    #[command(flatten)]
    User(cli::UserCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            // clap exits 0 for --help/--version and 2 for usage errors, as the contract wants.
            return if err.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Command::Completion { shell } = cli.command {
        cli::completion::print(shell, &mut <Cli as clap::CommandFactory>::command());
        return ExitCode::SUCCESS;
    }
    // The CLI commands stay quiet unless asked (TUG_LOG): their errors are printed as kubectl
    // prints them, and kube's own logs would only repeat them.
    // The one-component commands check the connection first and name a dead server in one
    // line; kube's log of the same failed request would only come before it.
    let default_log = match cli.command {
        Command::User(_) => "off",
        Command::Scheduler(_) | Command::Controllers(_) | Command::Agent(_) => {
            "info,kube_client::client::builder=off"
        }
        _ => "info",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TUG_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_log)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tug: cannot start the async runtime: {err}");
            return ExitCode::from(1);
        }
    };
    if let Command::User(command) = cli.command {
        // `tug get pods | head -1`: a closed stdout ends the command quietly, as it ends
        // kubectl (Rust ignores SIGPIPE, so printing panics instead).
        let default_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let message = info
                .payload()
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| info.payload().downcast_ref::<&str>().copied())
                .unwrap_or("");
            if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
                std::process::exit(141);
            }
            default_hook(info);
        }));
        // kubectl's convention: a failed command exits 1.
        return match runtime.block_on(cli::run(cli.global, command)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                cli::report(&err);
                ExitCode::from(1)
            }
        };
    }
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up::up(args).await,
            Command::Apiserver(args) => up::apiserver(args).await,
            Command::Scheduler(args) => components::scheduler(cli.global, args).await,
            Command::Controllers(args) => components::controllers(cli.global, args).await,
            Command::Agent(args) => node::agent(cli.global, args).await,
            Command::Reset(args) => up::reset(args).await,
            Command::User(_) | Command::Completion { .. } => Ok(()),
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("tug: {err:#}");
            ExitCode::from(2)
        }
    }
}
