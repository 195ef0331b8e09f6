//! The agent's HTTPS endpoint (the kubelet's port 10250): container logs, exec and
//! port-forward for the API server, which proxies `pods/log`, `pods/exec` and
//! `pods/portforward` here.
//!
//! - `GET /containerLogs/{ns}/{pod}/{container}?follow&tailLines&sinceSeconds&sinceTime&
//!   timestamps&previous&limitBytes`: the CRI log file of the container (or of its previous
//!   run), followed until the container exits or the client goes away.
//! - `GET|POST /exec/{ns}/{pod}/{container}?command=..&stdin&stdout&stderr&tty` and
//!   `GET|POST /portForward/{ns}/{pod}`: CRI `Exec` / `PortForward` give a URL on the
//!   runtime's streaming server; the client's upgrade (SPDY or WebSocket) is proxied there as
//!   is. A `101` splices both connections; any other answer goes back with
//!   `Connection: close` so the client can fall back (kubectl tries WebSocket, then SPDY).
//!
//! Only the API server may call: TLS requires a client certificate signed by the cluster CA
//! with the client-auth usage (agents' own certificates are server-only).
//!
//! One server can serve several agents of one process (simulated nodes): the API server says
//! which node it means with `?node=`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::io::AsyncReadExt as _;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tugboat_runtime::{
    ContainerFilter, ContainerState, ExecStreams, Follower, LogLine, LogOptions, Runtime,
    SandboxFilter, SandboxState,
};

use crate::labels;

/// How often a followed log is read for new lines.
const FOLLOW_POLL: Duration = Duration::from_millis(200);
/// How often a followed container is checked for having exited.
const FOLLOW_STATE_CHECK: Duration = Duration::from_secs(1);
/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reaching the runtime's streaming server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors setting up the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A certificate or key does not parse.
    #[error("the agent's {0} is not valid PEM")]
    BadPem(&'static str),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Tls(String),
    /// The port is taken.
    // The cause is the source: `{:#}` prints it once, after the hint.
    #[error("cannot listen on {addr} (choose another --kubelet-port)")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// The endpoint's TLS material (PEM).
#[derive(Clone)]
pub struct TlsMaterial {
    /// The agent's serving certificate, signed by the cluster CA.
    pub cert_pem: String,
    /// Its key.
    pub key_pem: String,
    /// The cluster CA: clients must present a certificate it signed.
    pub ca_pem: String,
}

impl std::fmt::Debug for TlsMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMaterial").finish_non_exhaustive()
    }
}

impl TlsMaterial {
    /// The rustls server configuration: this certificate, and client certificates required.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, ServerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut self.ca_pem.as_bytes()) {
            let cert = cert.map_err(|_| ServerError::BadPem("CA certificate"))?;
            roots
                .add(cert)
                .map_err(|_| ServerError::BadPem("CA certificate"))?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            roots.into(),
            provider.clone(),
        )
        .build()
        .map_err(|e| ServerError::Tls(e.to_string()))?;
        let certs: Vec<_> = rustls_pemfile::certs(&mut self.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| ServerError::BadPem("certificate"))?;
        let key = rustls_pemfile::private_key(&mut self.key_pem.as_bytes())
            .ok()
            .flatten()
            .ok_or(ServerError::BadPem("key"))?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| ServerError::Tls(e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(certs, key)
            .map_err(|e| ServerError::Tls(e.to_string()))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// The runtimes of the agents this endpoint serves, by node name.
#[derive(Clone, Default)]
pub struct Nodes {
    runtimes: Arc<HashMap<String, Arc<dyn Runtime>>>,
}

impl Nodes {
    /// An endpoint for these nodes.
    pub fn new(runtimes: impl IntoIterator<Item = (String, Arc<dyn Runtime>)>) -> Self {
        Nodes {
            runtimes: Arc::new(runtimes.into_iter().collect()),
        }
    }

    fn runtime(&self, node: Option<&str>) -> Result<Arc<dyn Runtime>, Failure> {
        match node {
            Some(node) => self
                .runtimes
                .get(node)
                .cloned()
                .ok_or_else(|| Failure::not_found(format!("node {node} is not served here"))),
            None if self.runtimes.len() == 1 => Ok(self
                .runtimes
                .values()
                .next()
                .cloned()
                .ok_or_else(|| Failure::not_found("no node is served here"))?),
            None => Err(Failure::bad_request("say which node with ?node=")),
        }
    }
}

/// Binds the endpoint's port (before the Node advertises it).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Listen { addr, source })
}

/// Serves the endpoint over TLS on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    nodes: Nodes,
    shutdown: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(tls);
    let app = router(nodes);
    let connections = TaskTracker::new();
    loop {
        let (tcp, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "agent endpoint: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let (acceptor, app, shutdown) = (acceptor.clone(), app.clone(), shutdown.clone());
        connections.spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    tracing::debug!(%peer, %error, "agent endpoint: TLS handshake refused");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(app);
            let builder = Builder::new(TokioExecutor::new());
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
            tokio::pin!(connection);
            tokio::select! {
                result = connection.as_mut() => {
                    if let Err(error) = result {
                        tracing::debug!(%peer, %error, "agent endpoint: connection error");
                    }
                }
                () = shutdown.cancelled() => connection.as_mut().graceful_shutdown(),
            }
        });
    }
    connections.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), connections.wait()).await;
}

/// The endpoint's routes, without TLS (tests call it directly).
pub fn router(nodes: Nodes) -> Router {
    Router::new()
        .route("/containerLogs/{ns}/{pod}/{container}", get(logs))
        .route("/exec/{ns}/{pod}/{container}", get(exec).post(exec))
        .route(
            "/portForward/{ns}/{pod}",
            get(port_forward).post(port_forward),
        )
        .with_state(nodes)
}

// === errors ===

/// A failed request, answered as a Kubernetes Status.
#[derive(Debug)]
struct Failure {
    code: StatusCode,
    message: String,
}

impl Failure {
    fn bad_request(message: impl Into<String>) -> Self {
        Failure {
            code: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }

    fn not_found(message: impl Into<String>) -> Self {
        Failure {
            code: StatusCode::NOT_FOUND,
            message: message.into(),
        }
    }

    fn runtime(error: &tugboat_runtime::Error) -> Self {
        match error {
            tugboat_runtime::Error::NotFound(_) => Failure::not_found(error.to_string()),
            tugboat_runtime::Error::Invalid(_) => Failure::bad_request(error.to_string()),
            _ => Failure {
                code: StatusCode::INTERNAL_SERVER_ERROR,
                message: error.to_string(),
            },
        }
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Failure {
            code: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let reason = match self.code {
            StatusCode::BAD_REQUEST => "BadRequest",
            StatusCode::NOT_FOUND => "NotFound",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailable",
            _ => "InternalError",
        };
        let body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": reason,
            "code": self.code.as_u16(),
        });
        (
            self.code,
            [(header::CONTENT_TYPE, "application/json")],
            body.to_string(),
        )
            .into_response()
    }
}

// === query ===

/// The query as pairs (repeated keys kept: `command` is one per argument).
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(raw: Option<&str>) -> Self {
        Params(
            form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .into_owned()
                .collect(),
        )
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .collect()
    }

    fn flag(&self, key: &str) -> bool {
        matches!(self.get(key), Some("true" | "1" | "True"))
    }

    fn number(&self, key: &str) -> Result<Option<i64>, Failure> {
        match self.get(key) {
            None | Some("") => Ok(None),
            Some(raw) => raw
                .parse()
                .map(Some)
                .map_err(|_| Failure::bad_request(format!("{key}: {raw:?} is not a number"))),
        }
    }
}

// === finding containers ===

/// The runs of a pod's container, oldest first.
async fn runs(
    runtime: &dyn Runtime,
    ns: &str,
    pod: &str,
    container: &str,
) -> Result<Vec<tugboat_runtime::Container>, Failure> {
    let filter = ContainerFilter {
        labels: [
            (labels::POD_NAMESPACE.to_string(), ns.to_string()),
            (labels::POD_NAME.to_string(), pod.to_string()),
            (labels::CONTAINER_NAME.to_string(), container.to_string()),
        ]
        .into(),
        ..Default::default()
    };
    let mut runs = runtime
        .list_containers(&filter)
        .await
        .map_err(|e| Failure::runtime(&e))?;
    runs.sort_by_key(|c| {
        let count = c
            .annotations
            .get(labels::RESTART_COUNT)
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0);
        (count, c.created_at)
    });
    Ok(runs)
}

fn waiting(container: &str, pod: &str) -> Failure {
    Failure::bad_request(format!(
        "container \"{container}\" in pod \"{pod}\" is waiting to start: ContainerCreating"
    ))
}

// === logs ===

async fn logs(
    State(nodes): State<Nodes>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    RawQuery(query): RawQuery,
) -> Result<Response, Failure> {
    let params = Params::parse(query.as_deref());
    let runtime = nodes.runtime(params.get("node"))?;
    let mut runs = runs(&*runtime, &ns, &pod, &container).await?;
    let chosen = if params.flag("previous") {
        if runs.len() < 2 {
            return Err(Failure::bad_request(format!(
                "previous terminated container \"{container}\" in pod \"{pod}\" not found"
            )));
        }
        runs.swap_remove(runs.len() - 2)
    } else {
        runs.pop().ok_or_else(|| waiting(&container, &pod))?
    };
    let since = match (params.number("sinceSeconds")?, params.get("sinceTime")) {
        (Some(secs), _) => Some(
            SystemTime::now()
                .checked_sub(Duration::from_secs(u64::try_from(secs).unwrap_or(0)))
                .unwrap_or(SystemTime::UNIX_EPOCH),
        ),
        (None, Some(t)) if !t.is_empty() => Some(
            tugboat_runtime::logs::parse_rfc3339(t)
                .ok_or_else(|| Failure::bad_request(format!("sinceTime: {t:?} is not a time")))?,
        ),
        _ => None,
    };
    let tail_lines = params
        .number("tailLines")?
        .filter(|n| *n >= 0)
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let format = Format {
        timestamps: params.flag("timestamps"),
        limit: params
            .number("limitBytes")?
            .filter(|n| *n > 0)
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
    };
    let opts = LogOptions { tail_lines, since };
    let status = runtime
        .container_status(&chosen.id)
        .await
        .map_err(|e| Failure::runtime(&e))?;
    let follow = params.flag("follow") && status.state == ContainerState::Running;
    let Some(path) = status.log_path.filter(|_| follow) else {
        // Whole answer at once (also for runtimes without log files).
        let lines = runtime
            .read_logs(&chosen.id, &opts)
            .await
            .map_err(|e| Failure::runtime(&e))?;
        let mut out = Vec::new();
        format.write(&lines, &mut out);
        return Ok(text(Body::from(out)));
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(follow_log(runtime, chosen.id, path, opts, format, tx));
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|chunk| (Ok::<_, std::convert::Infallible>(chunk), rx))
    });
    Ok(text(Body::from_stream(stream)))
}

fn text(body: Body) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    response
}

/// How log lines are written out.
#[derive(Debug, Clone, Copy)]
struct Format {
    timestamps: bool,
    /// Bytes left to write, if limited.
    limit: Option<usize>,
}

impl Format {
    /// Appends `lines` to `out`; returns false once the byte limit is reached.
    fn write(mut self, lines: &[LogLine], out: &mut Vec<u8>) -> bool {
        self.write_mut(lines, out)
    }

    fn write_mut(&mut self, lines: &[LogLine], out: &mut Vec<u8>) -> bool {
        for line in lines {
            let start = out.len();
            if self.timestamps {
                out.extend_from_slice(line.timestamp.as_bytes());
                out.push(b' ');
            }
            out.extend_from_slice(&line.content);
            out.push(b'\n');
            if let Some(left) = self.limit.as_mut() {
                let written = out.len() - start;
                if written >= *left {
                    out.truncate(start + *left);
                    *left = 0;
                    return false;
                }
                *left -= written;
            }
        }
        true
    }
}

/// Streams a log file as it grows until the container stops, the byte limit is reached or the
/// client goes away (the receiver is dropped).
async fn follow_log(
    runtime: Arc<dyn Runtime>,
    id: String,
    path: std::path::PathBuf,
    opts: LogOptions,
    mut format: Format,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let mut file = None;
    let mut follower = Follower::default();
    let mut first = true;
    let mut last_check = tokio::time::Instant::now();
    let mut exited = false;
    loop {
        if file.is_none() {
            file = tokio::fs::File::open(&path).await.ok();
        }
        let mut data = Vec::new();
        if let Some(f) = file.as_mut()
            && let Err(error) = f.read_to_end(&mut data).await
        {
            tracing::debug!(%error, path = %path.display(), "cannot read a followed log");
            return;
        }
        let mut lines = follower.push(&data);
        if first {
            lines = tugboat_runtime::logs::select(lines, &opts);
            first = false;
        }
        let mut out = Vec::new();
        let more = format.write_mut(&lines, &mut out);
        if !out.is_empty() && tx.send(Bytes::from(out)).await.is_err() {
            return;
        }
        if !more || exited {
            return;
        }
        if last_check.elapsed() >= FOLLOW_STATE_CHECK {
            last_check = tokio::time::Instant::now();
            // One more read after the exit picks up its last lines.
            exited = !matches!(
                runtime.container_status(&id).await.map(|s| s.state),
                Ok(ContainerState::Running)
            );
        }
        tokio::select! {
            () = tx.closed() => return,
            () = tokio::time::sleep(if exited { Duration::ZERO } else { FOLLOW_POLL }) => {}
        }
    }
}

// === exec and port-forward ===

async fn exec(
    State(nodes): State<Nodes>,
    Path((ns, pod, container)): Path<(String, String, String)>,
    request: Request,
) -> Result<Response, Failure> {
    let params = Params::parse(request.uri().query());
    let runtime = nodes.runtime(params.get("node"))?;
    let command = params.all("command");
    if command.is_empty() {
        return Err(Failure::bad_request("you must specify at least 1 command"));
    }
    let streams = ExecStreams {
        tty: params.flag("tty"),
        stdin: params.flag("stdin") || params.flag("input"),
        stdout: params.flag("stdout") || params.flag("output"),
        stderr: params.flag("stderr") || params.flag("error"),
    };
    if !(streams.stdin || streams.stdout || streams.stderr) {
        return Err(Failure::bad_request(
            "you must specify at least 1 of stdin, stdout, stderr",
        ));
    }
    let current = runs(&*runtime, &ns, &pod, &container)
        .await?
        .pop()
        .filter(|c| c.state == ContainerState::Running)
        .ok_or_else(|| {
            Failure::bad_request(format!("container {container} is not running in pod {pod}"))
        })?;
    let url = runtime
        .exec_url(&current.id, &command, streams)
        .await
        .map_err(|e| Failure::runtime(&e))?;
    if wants_websocket_v5(request.headers()) {
        // stdin without a terminal needs v5's close signal to end the input, which the
        // runtime's v4 WebSocket cannot carry: that case goes to the runtime over SPDY, whose
        // streams end one by one.
        if streams.stdin && !streams.tty {
            return websocket_v5_exec_over_spdy(&url, streams, request).await;
        }
        return websocket_v5_exec(&url, request).await;
    }
    upgrade_to(&url, request).await
}

/// The exec WebSocket protocols: kubectl 1.32 asks for v5 only; runtimes of the CRI era
/// (containerd 1.6) serve v4, which v5 extends with a close signal (channel 255).
const WS_V5: &str = "v5.channel.k8s.io";
const WS_V4: &str = "v4.channel.k8s.io";
/// The v5 close-signal channel.
const CLOSE_CHANNEL: u8 = 255;

fn wants_websocket_v5(headers: &HeaderMap) -> bool {
    let websocket = headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    websocket
        && headers
            .get_all(header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == WS_V5)
}

/// The answer accepting a client's WebSocket upgrade with v5.
fn accept_websocket_v5(request: &Request) -> Result<Response, Failure> {
    use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
    let key = request
        .headers()
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or_else(|| Failure::bad_request("a WebSocket upgrade without Sec-WebSocket-Key"))?;
    let mut answer = Response::new(Body::empty());
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = answer.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    headers.insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(WS_V5),
    );
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    Ok(answer)
}

/// The client's side of an exec once its upgrade to WebSocket completes.
async fn client_websocket(
    client_side: hyper::upgrade::OnUpgrade,
) -> Option<tokio_tungstenite::WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>> {
    use tokio_tungstenite::tungstenite::protocol::Role;
    match client_side.await {
        Ok(upgraded) => Some(
            tokio_tungstenite::WebSocketStream::from_raw_socket(
                TokioIo::new(upgraded),
                Role::Server,
                None,
            )
            .await,
        ),
        Err(error) => {
            tracing::debug!(%error, "exec: the client's upgrade failed");
            None
        }
    }
}

/// Exec over WebSocket v5: open a v4 WebSocket to the runtime's exec URL, accept the client's
/// upgrade with v5, and pass the channel frames both ways (dropping v5 close signals).
async fn websocket_v5_exec(url: &str, mut request: Request) -> Result<Response, Failure> {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    let answer = accept_websocket_v5(&request)?;
    let bad_url = || Failure::unavailable(format!("the runtime gave a bad URL: {url}"));
    let ws_url = url
        .strip_prefix("http://")
        .map(|rest| format!("ws://{rest}"))
        .ok_or_else(bad_url)?;
    let mut upstream = ws_url
        .as_str()
        .into_client_request()
        .map_err(|_| bad_url())?;
    upstream.headers_mut().insert(
        header::SEC_WEBSOCKET_PROTOCOL,
        HeaderValue::from_static(WS_V4),
    );
    let authority = upstream.uri().authority().ok_or_else(bad_url)?.clone();
    let addr = format!(
        "{}:{}",
        authority.host(),
        authority.port_u16().unwrap_or(80)
    );
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let _ = tcp.set_nodelay(true);
        tokio_tungstenite::client_async(upstream, tcp)
            .await
            .map_err(|e| e.to_string())
    };
    // Failing here (before anything runs) answers non-101: the client falls back to SPDY.
    let (runtime_ws, _) = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| Failure::unavailable("the runtime's streaming server did not answer"))?
        .map_err(|e| Failure::unavailable(format!("the runtime's streaming server: {e}")))?;

    let client_side = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Some(client_ws) = client_websocket(client_side).await else {
            return;
        };
        let (mut to_client, mut from_client) = client_ws.split();
        let (mut to_runtime, mut from_runtime) = runtime_ws.split();
        let inbound = async {
            while let Some(Ok(message)) = from_client.next().await {
                let message = match message {
                    Message::Binary(data) if data.first() == Some(&CLOSE_CHANNEL) => continue,
                    m @ (Message::Binary(_) | Message::Text(_)) => m,
                    Message::Close(_) => break,
                    _ => continue,
                };
                if to_runtime.send(message).await.is_err() {
                    break;
                }
            }
            let _ = to_runtime.close().await;
        };
        let outbound = async {
            // kubectl reads the end as EOF only with a normal close code: pass the runtime's.
            let mut close = None;
            while let Some(Ok(message)) = from_runtime.next().await {
                let message = match message {
                    m @ (Message::Binary(_) | Message::Text(_)) => m,
                    Message::Close(frame) => {
                        close = frame;
                        break;
                    }
                    _ => continue,
                };
                if to_client.send(message).await.is_err() {
                    return;
                }
            }
            let frame = close.unwrap_or(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            });
            let _ = to_client.send(Message::Close(Some(frame))).await;
            let _ = to_client.close().await;
        };
        // The command's end (the runtime closing) ends the session.
        tokio::select! {
            () = outbound => {}
            () = async { inbound.await; std::future::pending::<()>().await } => {}
        }
    });
    Ok(answer)
}

/// Exec over WebSocket v5 for a command that reads stdin without a terminal: SPDY to the
/// runtime, so that the client's close signal for stdin ends the command's input (a FIN on
/// its stream) while its output and status still come back.
async fn websocket_v5_exec_over_spdy(
    url: &str,
    streams: ExecStreams,
    mut request: Request,
) -> Result<Response, Failure> {
    use futures::{SinkExt as _, StreamExt as _};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use crate::spdy::{Channel, Incoming};

    let answer = accept_websocket_v5(&request)?;
    let channels: Vec<Channel> = [
        (streams.stdin, Channel::Stdin),
        (streams.stdout, Channel::Stdout),
        (streams.stderr, Channel::Stderr),
    ]
    .into_iter()
    .filter_map(|(wanted, channel)| wanted.then_some(channel))
    .collect();
    // Failing here (before anything runs) answers non-101: the client says why.
    let (to_runtime, mut from_runtime) =
        tokio::time::timeout(CONNECT_TIMEOUT, crate::spdy::connect(url, &channels))
            .await
            .map_err(|_| Failure::unavailable("the runtime's streaming server did not answer"))?
            .map_err(|e| Failure::unavailable(format!("the runtime's streaming server: {e}")))?;

    let client_side = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Some(client_ws) = client_websocket(client_side).await else {
            return;
        };
        let (mut to_client, mut from_client) = client_ws.split();
        // Both directions run as whole futures side by side: reading a SPDY frame must never
        // be cut short by the other side's traffic.
        let to_runtime = tokio::sync::Mutex::new(to_runtime);
        let inbound = async {
            while let Some(Ok(message)) = from_client.next().await {
                let Message::Binary(data) = message else {
                    continue;
                };
                let sent = match data.first() {
                    Some(0) => to_runtime.lock().await.stdin(&data[1..]).await,
                    Some(&CLOSE_CHANNEL) if data.get(1) == Some(&0) => {
                        to_runtime.lock().await.close_stdin().await
                    }
                    _ => Ok(()),
                };
                if let Err(error) = sent {
                    tracing::debug!(%error, "exec: writing to the runtime failed");
                    break;
                }
            }
        };
        let outbound = async {
            loop {
                let data = match from_runtime.next().await {
                    Ok(Incoming::Data(channel, data)) => data_for(channel, data),
                    Ok(Incoming::End) => return true,
                    Err(error) => {
                        tracing::debug!(%error, "exec: reading from the runtime failed");
                        return true;
                    }
                };
                if from_runtime.has_pings() {
                    let _ = to_runtime.lock().await.pong(&mut from_runtime).await;
                }
                if to_client.send(Message::binary(data)).await.is_err() {
                    return false;
                }
            }
        };
        // The command's end (the runtime closing) ends the session; the client going away
        // ends it too, taking the connection to the runtime with it.
        let runtime_ended = tokio::select! {
            ended = outbound => ended,
            () = inbound => false,
        };
        if !runtime_ended {
            to_runtime.lock().await.shutdown().await;
            return;
        }
        // kubectl reads the end as EOF only with a normal close code.
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = to_client.send(Message::Close(Some(frame))).await;
        let _ = to_client.close().await;
    });
    Ok(answer)
}

/// A WebSocket frame of `channel`: its number, then the data.
fn data_for(channel: crate::spdy::Channel, data: Vec<u8>) -> Vec<u8> {
    let mut frame = Vec::with_capacity(data.len() + 1);
    frame.push(channel.websocket_channel());
    frame.extend_from_slice(&data);
    frame
}

async fn port_forward(
    State(nodes): State<Nodes>,
    Path((ns, pod)): Path<(String, String)>,
    request: Request,
) -> Result<Response, Failure> {
    let params = Params::parse(request.uri().query());
    let runtime = nodes.runtime(params.get("node"))?;
    let filter = SandboxFilter {
        state: Some(SandboxState::Ready),
        labels: [
            (labels::POD_NAMESPACE.to_string(), ns.clone()),
            (labels::POD_NAME.to_string(), pod.clone()),
        ]
        .into(),
    };
    let sandbox = runtime
        .list_sandboxes(&filter)
        .await
        .map_err(|e| Failure::runtime(&e))?
        .into_iter()
        .max_by_key(|s| s.attempt)
        .ok_or_else(|| Failure::bad_request(format!("pod {ns}/{pod} has no running sandbox")))?;
    // Ports come with each stream (a header); CRI takes the list for information only.
    let ports: Vec<u16> = params
        .all("ports")
        .iter()
        .flat_map(|p| p.split(','))
        .filter_map(|p| p.trim().parse().ok())
        .collect();
    let url = runtime
        .port_forward_url(&sandbox.id, &ports)
        .await
        .map_err(|e| Failure::runtime(&e))?;
    upgrade_to(&url, request).await
}

/// Proxies the client's request to `url` (the runtime's streaming server, plain HTTP on
/// loopback); splices both connections when it answers `101`.
async fn upgrade_to(url: &str, mut request: Request) -> Result<Response, Failure> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|_| Failure::unavailable(format!("the runtime gave a bad URL: {url}")))?;
    let authority = uri
        .authority()
        .ok_or_else(|| Failure::unavailable(format!("the runtime gave a bad URL: {url}")))?
        .clone();
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let method = request.method().clone();
    let headers = forwarded(request.headers(), authority.as_str());
    let connect = async {
        let addr = format!(
            "{}:{}",
            authority.host(),
            authority.port_u16().unwrap_or(80)
        );
        let tcp = tokio::net::TcpStream::connect(addr).await?;
        let _ = tcp.set_nodelay(true);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(tcp))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "streaming server connection ended");
            }
        });
        let mut outgoing = hyper::Request::builder()
            .method(method)
            .uri(path)
            .body(Body::empty())
            .map_err(std::io::Error::other)?;
        *outgoing.headers_mut() = headers;
        sender
            .send_request(outgoing)
            .await
            .map_err(std::io::Error::other)
    };
    let mut response = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| Failure::unavailable("the runtime's streaming server did not answer"))?
        .map_err(|e| Failure::unavailable(format!("the runtime's streaming server: {e}")))?;
    let upgrade = request.headers().contains_key(header::UPGRADE);
    if upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let runtime_side = hyper::upgrade::on(&mut response);
        let client_side = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let (runtime, client) = match tokio::join!(runtime_side, client_side) {
                (Ok(r), Ok(c)) => (r, c),
                (r, c) => {
                    tracing::debug!(runtime = r.is_ok(), client = c.is_ok(), "upgrade failed");
                    return;
                }
            };
            let mut runtime = TokioIo::new(runtime);
            let mut client = TokioIo::new(client);
            if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut runtime).await {
                tracing::debug!(%error, "stream ended");
            }
        });
        let mut answer = Response::new(Body::empty());
        *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        *answer.headers_mut() = response.headers().clone();
        return Ok(answer);
    }
    let (parts, body) = response.into_parts();
    let mut answer = Response::new(Body::new(body));
    *answer.status_mut() = parts.status;
    if let Some(v) = parts.headers.get(header::CONTENT_TYPE) {
        answer.headers_mut().insert(header::CONTENT_TYPE, v.clone());
    }
    if upgrade {
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(answer)
}

/// The client's headers for the next hop: the upgrade headers stay, our own go.
fn forwarded(headers: &HeaderMap, host: &str) -> HeaderMap {
    let mut out = headers.clone();
    for h in [
        header::AUTHORIZATION,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
    ] {
        out.remove(h);
    }
    if let Ok(host) = HeaderValue::from_str(host) {
        out.insert(header::HOST, host);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use tugboat_runtime::cri::v1;
    use tugboat_runtime::{SimNetwork, SimRuntime};

    use super::*;

    fn line(t: &str, s: &str) -> LogLine {
        LogLine {
            time: tugboat_runtime::logs::parse_rfc3339(t).unwrap_or(SystemTime::UNIX_EPOCH),
            timestamp: t.into(),
            stream: tugboat_runtime::Stream::Stdout,
            content: s.as_bytes().to_vec(),
        }
    }

    #[test]
    fn timestamps_and_byte_limit() {
        let lines = [
            line("2026-01-01T00:00:01Z", "one"),
            line("2026-01-01T00:00:02Z", "two"),
        ];
        let mut out = Vec::new();
        let plain = Format {
            timestamps: false,
            limit: None,
        };
        assert!(plain.write(&lines, &mut out));
        assert_eq!(out, b"one\ntwo\n");
        out.clear();
        let stamped = Format {
            timestamps: true,
            limit: Some(26),
        };
        assert!(!stamped.write(&lines, &mut out), "the limit ends the log");
        assert_eq!(out, b"2026-01-01T00:00:01Z one\n2");
    }

    #[test]
    fn exec_query_keeps_every_command_argument() {
        let p = Params::parse(Some(
            "command=sh&command=-c&command=echo+a%26b&stdin=true&tty=1",
        ));
        assert_eq!(p.all("command"), ["sh", "-c", "echo a&b"]);
        assert!(p.flag("stdin") && p.flag("tty") && !p.flag("stdout"));
    }

    #[test]
    fn websocket_v5_is_recognised() {
        let mut headers = HeaderMap::new();
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("v4.channel.k8s.io, v5.channel.k8s.io"),
        );
        assert!(wants_websocket_v5(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("SPDY/3.1"));
        assert!(!wants_websocket_v5(&headers));
        headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        headers.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("SPDY/3.1+portforward.k8s.io"),
        );
        assert!(!wants_websocket_v5(&headers));
    }

    async fn running_container(runtime: &SimRuntime) -> String {
        let sandbox = v1::PodSandboxConfig {
            metadata: Some(v1::PodSandboxMetadata {
                name: "p".into(),
                namespace: "default".into(),
                uid: "u".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        let sandbox_id = runtime.run_sandbox(&sandbox).await.expect("sandbox");
        let config = v1::ContainerConfig {
            metadata: Some(v1::ContainerMetadata {
                name: "c".into(),
                attempt: 0,
            }),
            ..Default::default()
        };
        let id = runtime
            .create_container(&sandbox_id, &config, &sandbox)
            .await
            .expect("create");
        runtime.start_container(&id).await.expect("start");
        id
    }

    async fn next(rx: &mut tokio::sync::mpsc::Receiver<Bytes>) -> Option<Bytes> {
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("a chunk or the end within 10 s")
    }

    #[tokio::test]
    async fn follow_tails_then_streams_until_the_container_exits() {
        let runtime = Arc::new(SimRuntime::new("n", SimNetwork::new()));
        let id = running_container(&runtime).await;
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("0.log");
        let mut file = std::fs::File::create(&path).expect("log");
        file.write_all(b"2026-01-01T00:00:01Z stdout F old\n2026-01-01T00:00:02Z stdout F last\n")
            .expect("write");
        let (tx, mut rx) = tokio::sync::mpsc::channel(16);
        let opts = LogOptions {
            tail_lines: Some(1),
            since: None,
        };
        let format = Format {
            timestamps: false,
            limit: None,
        };
        let dynamic: Arc<dyn Runtime> = runtime.clone();
        let task = tokio::spawn(follow_log(dynamic, id.clone(), path, opts, format, tx));
        assert_eq!(next(&mut rx).await.as_deref(), Some(&b"last\n"[..]));

        // A line written in two parts arrives whole.
        file.write_all(b"2026-01-01T00:00:03Z stderr P ne")
            .expect("write");
        file.flush().expect("flush");
        tokio::time::sleep(FOLLOW_POLL * 2).await;
        file.write_all(b"\n2026-01-01T00:00:04Z stderr F w\n")
            .expect("write");
        assert_eq!(next(&mut rx).await.as_deref(), Some(&b"new\n"[..]));

        runtime
            .stop_container(&id, Duration::ZERO)
            .await
            .expect("stop");
        assert_eq!(
            next(&mut rx).await,
            None,
            "the stream ends with the container"
        );
        task.await.expect("follow task");
    }
}
