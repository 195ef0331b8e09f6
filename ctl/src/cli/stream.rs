//! `tug exec` and `tug port-forward`: kube's WebSocket clients (`pods/exec` over
//! `v5.channel.k8s.io`/`v4.channel.k8s.io`, `pods/portforward` over `v4.channel.k8s.io`), with
//! kubectl's flags, messages and exit codes.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use clap::Args;
use futures::SinkExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{AttachParams, TerminalSize};
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use super::Ctx;
use super::client::{encode, with_query};
use super::ops::pods_of;

// === exec ===

/// `tug exec` flags (kubectl's).
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// `POD`, `pod/POD` or `TYPE/NAME` (a deployment's, replica set's, ... first pod).
    pub target: String,
    /// The container (default: the pod's `kubectl.kubernetes.io/default-container`, else its
    /// first).
    #[arg(short = 'c', long)]
    pub container: Option<String>,
    /// Pass stdin to the container.
    #[arg(short = 'i', long)]
    pub stdin: bool,
    /// Stdin is a TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Only print output from the remote session.
    #[arg(short = 'q', long)]
    pub quiet: bool,
    /// A command given without `--` (kubectl refuses it, saying how to write it).
    #[arg(hide = true)]
    pub without_dashes: Vec<String>,
    /// The command and its arguments, after `--`.
    #[arg(last = true)]
    pub command: Vec<String>,
}

/// `tug exec`: runs the command, then exits with its exit code (kubectl's behaviour), so this
/// returns only on errors before the command's end.
pub async fn exec(ctx: &Ctx, args: ExecArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.without_dashes.is_empty(),
        "exec [POD] [COMMAND] is not supported anymore. Use exec [POD] -- [COMMAND] instead"
    );
    anyhow::ensure!(
        !args.command.is_empty(),
        "you must specify at least one command for the container"
    );
    let pod_name = first_pod(ctx, &args.target).await?;
    let pod = ctx
        .get(&format!(
            "/api/v1/namespaces/{}/pods/{}",
            ctx.namespace,
            encode(&pod_name)
        ))
        .await?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if phase == "Succeeded" || phase == "Failed" {
        anyhow::bail!("cannot exec into a container in a completed pod; current phase is {phase}");
    }
    let container = match args.container {
        Some(container) => container,
        None => default_container(&pod, args.quiet)?,
    };
    let names = container_names(&pod);
    if !names.iter().any(|(name, _)| *name == container) {
        anyhow::bail!("container {container} not found in pod {pod_name}");
    }

    // kubectl: a TTY needs stdin, and stdin that is a terminal.
    let mut tty = args.tty;
    if tty && !args.stdin {
        tty = false;
    } else if tty && !rustix::termios::isatty(std::io::stdin()) {
        tty = false;
        if !args.quiet {
            eprintln!("Unable to use a TTY - input is not a terminal or the right kind of file");
        }
    }
    let params = AttachParams {
        container: Some(container),
        stdin: args.stdin,
        stdout: true,
        // A terminal merges stderr into stdout.
        stderr: !tty,
        tty,
        ..AttachParams::default()
    };
    let pods: kube::Api<Pod> = kube::Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let command_query: Vec<(&str, &str)> = args
        .command
        .iter()
        .map(|c| ("command", c.as_str()))
        .chain([
            ("container", params.container.as_deref().unwrap_or_default()),
            ("stdout", "true"),
        ])
        .collect();
    let exec_path = with_query(
        &format!(
            "/api/v1/namespaces/{}/pods/{}/exec",
            ctx.namespace,
            encode(&pod_name)
        ),
        &command_query,
    );
    let mut process = match pods.exec(&pod_name, args.command.clone(), &params).await {
        Ok(process) => process,
        Err(error) => return Err(upgrade_error(ctx, &exec_path, error).await),
    };

    let raw = if tty { RawTerminal::enter() } else { None };
    if tty && let Some(mut resize) = process.terminal_size() {
        tokio::spawn(async move {
            let Ok(mut changes) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
            else {
                return;
            };
            loop {
                if let Some(size) = terminal_size()
                    && resize.send(size).await.is_err()
                {
                    return;
                }
                if changes.recv().await.is_none() {
                    return;
                }
            }
        });
    }
    if let Some(mut remote_stdin) = process.stdin() {
        tokio::spawn(async move {
            let mut local = tokio::io::stdin();
            let _ = tokio::io::copy(&mut local, &mut remote_stdin).await;
            // The command reads EOF (WebSocket v5's close signal); its output still comes.
            let _ = remote_stdin.shutdown().await;
        });
    }
    let stdout = process.stdout().map(|mut remote| {
        tokio::spawn(async move {
            let mut local = tokio::io::stdout();
            let _ = tokio::io::copy(&mut remote, &mut local).await;
            let _ = local.flush().await;
        })
    });
    let stderr = process.stderr().map(|mut remote| {
        tokio::spawn(async move {
            let mut local = tokio::io::stderr();
            let _ = tokio::io::copy(&mut remote, &mut local).await;
            let _ = local.flush().await;
        })
    });
    let status = match process.take_status() {
        Some(status) => status.await,
        None => None,
    };
    for output in [stdout, stderr].into_iter().flatten() {
        let _ = output.await;
    }
    drop(raw);
    let code = match status {
        None => 0,
        Some(status) if status.status.as_deref() == Some("Success") => 0,
        Some(status) => match exit_code(&status) {
            Some(code) => {
                eprintln!("command terminated with exit code {code}");
                code
            }
            None => {
                eprintln!(
                    "error: {}",
                    status.message.as_deref().unwrap_or("the command failed")
                );
                1
            }
        },
    };
    let _ = std::io::stdout().flush();
    // The stdin copy may still be blocked in a read that nothing can interrupt; the command has
    // ended, so end the process with its code, as kubectl does.
    std::process::exit(code)
}

/// A refused upgrade, with the server's reason: kube keeps only the status code, so ask once
/// more without the upgrade and show the Status the node answered with, as kubectl shows it.
async fn upgrade_error(ctx: &Ctx, path: &str, error: kube::Error) -> anyhow::Error {
    if !matches!(error, kube::Error::UpgradeConnection(_)) {
        return ctx.map_error(error);
    }
    match ctx
        .call(http::Method::GET, path, None, None, Vec::new())
        .await
    {
        Err(answer) => match answer.downcast::<super::ApiError>() {
            Ok(api) => anyhow::anyhow!("unable to upgrade connection: {}", api.status.message),
            Err(other) => other,
        },
        Ok(_) => ctx.map_error(error),
    }
}

/// The remote command's exit code from a `NonZeroExitCode` status.
fn exit_code(status: &k8s_openapi::apimachinery::pkg::apis::meta::v1::Status) -> Option<i32> {
    status
        .details
        .as_ref()?
        .causes
        .iter()
        .flatten()
        .find(|c| c.reason.as_deref() == Some("ExitCode"))
        .and_then(|c| c.message.as_deref()?.parse().ok())
}

/// The pod behind `POD`, `pod/POD` or `TYPE/NAME`.
async fn first_pod(ctx: &Ctx, target: &str) -> anyhow::Result<String> {
    pods_of(ctx, target)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no pods found for {target}"))
}

/// `(name, is_init)` of every container of the pod, the app containers first.
fn container_names(pod: &Value) -> Vec<(&str, bool)> {
    let list = |field: &str| {
        pod.pointer(&format!("/spec/{field}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str))
    };
    list("containers")
        .map(|n| (n, false))
        .chain(list("initContainers").map(|n| (n, true)))
        .collect()
}

/// kubectl's default container: the `kubectl.kubernetes.io/default-container` annotation, else
/// the first, said on stderr when there was a choice.
fn default_container(pod: &Value, quiet: bool) -> anyhow::Result<String> {
    if let Some(name) = pod
        .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
        .and_then(Value::as_str)
    {
        return Ok(name.to_owned());
    }
    let names = container_names(pod);
    let (first, _) = names
        .first()
        .ok_or_else(|| anyhow::anyhow!("the pod has no containers"))?;
    if names.len() > 1 && !quiet {
        let all: Vec<String> = names
            .iter()
            .map(|(n, init)| {
                if *init {
                    format!("{n} (init)")
                } else {
                    (*n).to_owned()
                }
            })
            .collect();
        eprintln!("Defaulted container {first:?} out of: {}", all.join(", "));
    }
    Ok((*first).to_owned())
}

/// The local terminal in raw mode while the remote one runs; restored on drop.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> Option<RawTerminal> {
        let stdin = std::io::stdin();
        let saved = rustix::termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        rustix::termios::tcsetattr(&stdin, rustix::termios::OptionalActions::Now, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            std::io::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

fn terminal_size() -> Option<TerminalSize> {
    let size = rustix::termios::tcgetwinsize(std::io::stdout()).ok()?;
    (size.ws_col > 0 && size.ws_row > 0).then_some(TerminalSize {
        width: size.ws_col,
        height: size.ws_row,
    })
}

// === port-forward ===

/// `tug port-forward` flags (kubectl's).
#[derive(Args, Debug)]
pub struct PortForwardArgs {
    /// `POD`, `pod/POD`, `deploy/NAME`, `svc/NAME`, ...
    pub target: String,
    /// `[LOCAL:]REMOTE` (LOCAL empty: a free port); for a service, REMOTE is a service port.
    #[arg(required = true)]
    pub ports: Vec<String>,
    /// Addresses to listen on (comma-separated): `localhost` is 127.0.0.1 and ::1.
    #[arg(long, value_delimiter = ',', default_value = "localhost")]
    pub address: Vec<String>,
}

/// One `[LOCAL:]REMOTE`: the local port (0: any) and the pod's port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PortPair {
    local: u16,
    remote: u16,
}

/// A port as kubectl reads it: 0 is not one.
fn parse_port(text: &str, spec: &str) -> anyhow::Result<u16> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => anyhow::bail!("error parsing local port '{text}' from '{spec}'"),
    }
}

fn parse_ports(specs: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    specs
        .iter()
        .map(|spec| match spec.split_once(':') {
            Some((local, remote)) => Ok((local.to_owned(), remote.to_owned())),
            None => Ok((spec.clone(), spec.clone())),
        })
        .collect()
}

/// `tug port-forward`: listens until interrupted; every accepted connection gets its own
/// WebSocket to the pod.
pub async fn port_forward(ctx: &Ctx, args: PortForwardArgs) -> anyhow::Result<()> {
    let specs = parse_ports(&args.ports)?;
    let (pod_name, service) = match args.target.split_once('/') {
        Some((kind, name))
            if ctx
                .resources()
                .await?
                .resolve(kind)
                .is_ok_and(|r| r.group.is_empty() && r.kind == "Service") =>
        {
            let service = ctx
                .get(&format!(
                    "/api/v1/namespaces/{}/services/{}",
                    ctx.namespace,
                    encode(name)
                ))
                .await?;
            let pod = service_pod(ctx, name, &service).await?;
            (pod, Some(service))
        }
        _ => (first_pod(ctx, &args.target).await?, None),
    };
    let pod = ctx
        .get(&format!(
            "/api/v1/namespaces/{}/pods/{}",
            ctx.namespace,
            encode(&pod_name)
        ))
        .await?;
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    anyhow::ensure!(
        phase == "Running",
        "unable to forward port because pod is not running. Current status={phase}"
    );
    let mut pairs = Vec::new();
    for (local, remote) in specs {
        let spec = format!("{local}:{remote}");
        let remote_port = match &service {
            Some(service) => target_port(service, &pod, &remote)?,
            None => container_port(&pod, &remote)?,
        };
        let local_port = if local.is_empty() {
            0
        } else {
            parse_port(&local, &spec)?
        };
        pairs.push(PortPair {
            local: local_port,
            remote: remote_port,
        });
    }
    let addresses = listen_addresses(&args.address)?;

    let pods: kube::Api<Pod> = kube::Api::namespaced(ctx.client.clone(), &ctx.namespace);
    let (refusals, mut refused) = tokio::sync::mpsc::unbounded_channel();
    let mut tasks = tokio::task::JoinSet::new();
    for pair in pairs {
        let mut bound_port = pair.local;
        let mut any = false;
        for (address, required) in &addresses {
            let listener =
                match tokio::net::TcpListener::bind(SocketAddr::new(*address, bound_port)).await {
                    Ok(listener) => listener,
                    Err(error) if !required => {
                        tracing::debug!(%error, %address, "not listening");
                        continue;
                    }
                    Err(error) => {
                        anyhow::bail!("unable to listen on port {}: {error}", pair.local)
                    }
                };
            let local = listener.local_addr()?;
            // A free port chosen for the first address is used for the others too.
            bound_port = local.port();
            any = true;
            println!("Forwarding from {local} -> {}", pair.remote);
            let pods = pods.clone();
            let pod_name = pod_name.clone();
            tasks.spawn(accept_loop(
                listener,
                pods,
                pod_name,
                pair.remote,
                refusals.clone(),
            ));
        }
        anyhow::ensure!(
            any,
            "unable to listen on any of the requested ports: {:?}",
            args.ports
        );
    }
    let _ = std::io::stdout().flush();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => Ok(()),
        Some((remote, error)) = refused.recv() => {
            let path = with_query(
                &format!(
                    "/api/v1/namespaces/{}/pods/{}/portforward",
                    ctx.namespace,
                    encode(&pod_name)
                ),
                &[("ports", &remote.to_string())],
            );
            Err(upgrade_error(ctx, &path, error).await)
        }
        Some(result) = tasks.join_next() => match result {
            Ok(result) => result,
            Err(error) => Err(error.into()),
        },
    }
}

/// `localhost` (kubectl's default) is 127.0.0.1, and ::1 where the machine has it; other
/// names must be IP addresses. `bool`: whether failing to listen there is an error.
fn listen_addresses(names: &[String]) -> anyhow::Result<Vec<(IpAddr, bool)>> {
    let mut out = Vec::new();
    for name in names {
        let name = name.trim();
        if name == "localhost" {
            out.push((IpAddr::V4(Ipv4Addr::LOCALHOST), true));
            out.push((IpAddr::V6(Ipv6Addr::LOCALHOST), false));
        } else {
            let ip: IpAddr = name
                .parse()
                .map_err(|_| anyhow::anyhow!("{name} is not a valid IP"))?;
            out.push((ip, true));
        }
    }
    Ok(out)
}

/// A connection the API server or node refused to upgrade: the forward cannot work at all.
type Refusals = tokio::sync::mpsc::UnboundedSender<(u16, kube::Error)>;

async fn accept_loop(
    listener: tokio::net::TcpListener,
    pods: kube::Api<Pod>,
    pod_name: String,
    remote: u16,
    refusals: Refusals,
) -> anyhow::Result<()> {
    let local_port = listener.local_addr()?.port();
    loop {
        let (connection, _) = listener.accept().await?;
        println!("Handling connection for {local_port}");
        let _ = std::io::stdout().flush();
        let pods = pods.clone();
        let pod_name = pod_name.clone();
        let refusals = refusals.clone();
        tokio::spawn(async move {
            let forwarder = match pods.portforward(&pod_name, &[remote]).await {
                Ok(forwarder) => forwarder,
                Err(error @ kube::Error::UpgradeConnection(_)) => {
                    let _ = refusals.send((remote, error));
                    return;
                }
                Err(error) => {
                    eprintln!(
                        "error: an error occurred forwarding {local_port} -> {remote}: {error}"
                    );
                    return;
                }
            };
            if let Err(error) = forward(forwarder, remote, connection).await {
                eprintln!(
                    "error: an error occurred forwarding {local_port} -> {remote}: {error:#}"
                );
            }
        });
    }
}

async fn forward(
    mut forwarder: kube::api::Portforwarder,
    remote: u16,
    mut connection: tokio::net::TcpStream,
) -> anyhow::Result<()> {
    let mut upstream = forwarder
        .take_stream(remote)
        .ok_or_else(|| anyhow::anyhow!("no stream for port {remote}"))?;
    let errors = forwarder.take_error(remote);
    let copied = tokio::io::copy_bidirectional(&mut connection, &mut upstream).await;
    drop(upstream);
    if let Some(errors) = errors
        && let Some(Some(message)) = futures::FutureExt::now_or_never(errors)
    {
        anyhow::bail!("{message}");
    }
    forwarder.join().await?;
    copied?;
    Ok(())
}

/// A running pod selected by the service.
async fn service_pod(ctx: &Ctx, name: &str, service: &Value) -> anyhow::Result<String> {
    let selector: Vec<String> = service
        .pointer("/spec/selector")
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    anyhow::ensure!(
        !selector.is_empty(),
        "invalid service '{name}': Service is defined without a selector"
    );
    let list = ctx
        .get(&super::client::with_query(
            &format!("/api/v1/namespaces/{}/pods", ctx.namespace),
            &[("labelSelector", &selector.join(","))],
        ))
        .await?;
    let mut pods: Vec<&Value> = list
        .get("items")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    // Running pods first, then by name, as kubectl prefers active pods.
    pods.sort_by_key(|p| {
        (
            p.pointer("/status/phase").and_then(Value::as_str) != Some("Running"),
            p.pointer("/metadata/name").and_then(Value::as_str),
        )
    });
    pods.first()
        .and_then(|p| p.pointer("/metadata/name").and_then(Value::as_str))
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no pods found for service/{name}"))
}

/// A pod port: a number, or a container port's name.
fn container_port(pod: &Value, port: &str) -> anyhow::Result<u16> {
    if let Ok(number) = port.parse::<u16>() {
        anyhow::ensure!(number > 0, "error parsing remote port '{port}'");
        return Ok(number);
    }
    named_port(pod, port).ok_or_else(|| {
        anyhow::anyhow!(
            "Pod '{}' does not have a named port '{port}'",
            pod.pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
        )
    })
}

fn named_port(pod: &Value, name: &str) -> Option<u16> {
    pod.pointer("/spec/containers")?
        .as_array()?
        .iter()
        .filter_map(|c| c.get("ports").and_then(Value::as_array))
        .flatten()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        .and_then(|p| p.get("containerPort").and_then(Value::as_u64))
        .and_then(|p| u16::try_from(p).ok())
}

/// The pod port behind a service port (a number or the service port's name), as kubectl
/// translates it: the port's `targetPort`, a number or a container port's name.
fn target_port(service: &Value, pod: &Value, port: &str) -> anyhow::Result<u16> {
    let name = service
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let ports = service
        .pointer("/spec/ports")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let number = port.parse::<u64>().ok();
    let found = ports.iter().find(|p| match number {
        Some(n) => p.get("port").and_then(Value::as_u64) == Some(n),
        None => p.get("name").and_then(Value::as_str) == Some(port),
    });
    let Some(found) = found else {
        anyhow::bail!("Service {name} does not have a service port {port}");
    };
    match found.get("targetPort") {
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| anyhow::anyhow!("bad targetPort {n}")),
        Some(Value::String(target)) => match target.parse::<u16>() {
            Ok(n) => Ok(n),
            Err(_) => named_port(pod, target).ok_or_else(|| {
                anyhow::anyhow!("Pod does not have a named port '{target}' (service {name})")
            }),
        },
        _ => found
            .get("port")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok())
            .ok_or_else(|| anyhow::anyhow!("Service {name} has a port without a number")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn service_ports_translate_to_the_pods_target_ports() {
        let service = json!({"metadata": {"name": "web"}, "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": 8080},
            {"name": "admin", "port": 81, "targetPort": "admin"},
            {"port": 82},
        ]}});
        let pod = json!({"spec": {"containers": [
            {"name": "main", "ports": [{"name": "admin", "containerPort": 9090}]},
        ]}});
        assert_eq!(target_port(&service, &pod, "80").unwrap(), 8080);
        assert_eq!(target_port(&service, &pod, "http").unwrap(), 8080);
        assert_eq!(target_port(&service, &pod, "81").unwrap(), 9090);
        assert_eq!(target_port(&service, &pod, "82").unwrap(), 82);
        let missing = target_port(&service, &pod, "8080").unwrap_err();
        assert_eq!(
            missing.to_string(),
            "Service web does not have a service port 8080"
        );
        assert_eq!(container_port(&pod, "admin").unwrap(), 9090);
        assert!(container_port(&pod, "nope").is_err());
    }

    #[test]
    fn port_specs_as_kubectl_reads_them() {
        let specs = parse_ports(&["8080".into(), ":80".into(), "9000:http".into()]).unwrap();
        assert_eq!(
            specs,
            [
                ("8080".to_owned(), "8080".to_owned()),
                (String::new(), "80".to_owned()),
                ("9000".to_owned(), "http".to_owned()),
            ]
        );
        assert!(parse_port("0", "0:80").is_err());
        let localhost = listen_addresses(&["localhost".into()]).unwrap();
        assert_eq!(localhost[0], (IpAddr::V4(Ipv4Addr::LOCALHOST), true));
        assert!(listen_addresses(&["nowhere".into()]).is_err());
    }

    #[test]
    fn default_container_prefers_the_annotation() {
        let pod = json!({
            "metadata": {"annotations": {"kubectl.kubernetes.io/default-container": "side"}},
            "spec": {"containers": [{"name": "main"}, {"name": "side"}]},
        });
        assert_eq!(default_container(&pod, true).unwrap(), "side");
        let plain = json!({"spec": {"containers": [{"name": "main"}, {"name": "side"}],
            "initContainers": [{"name": "setup"}]}});
        assert_eq!(default_container(&plain, true).unwrap(), "main");
        assert_eq!(
            container_names(&plain),
            [("main", false), ("side", false), ("setup", true)]
        );
    }
}
