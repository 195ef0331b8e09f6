//! `pods/log`, `pods/exec` and `pods/portforward`: answered by the node agent of the pod's
//! node, reached over HTTPS at the InternalIP and `daemonEndpoints.kubeletEndpoint.port` of the
//! Node. The API server presents a client certificate signed by the cluster CA and trusts only
//! agent certificates signed by it.
//!
//! Logs stream the agent's answer through. Exec and port-forward are HTTP upgrades (WebSocket
//! or SPDY): the request goes to the agent as is; on `101` both connections are spliced; any
//! other answer is passed back with `Connection: close`, so the client can fall back (kubectl
//! tries WebSocket first, then SPDY) on a fresh connection and nothing stays half-open.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tugboat_api::status::{self, Target};

use crate::error::{ApiError, ApiResult};
use crate::objects;
use crate::path::ResourcePath;
use crate::server::ApiState;

/// How long reaching an agent may take (TCP, TLS and the answer's head).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The subresources served by the node agents.
const STREAMING: [&str; 4] = ["log", "exec", "attach", "portforward"];

/// The TLS client the API server reaches node agents with.
#[derive(Clone)]
pub struct AgentClient {
    tls: Arc<rustls::ClientConfig>,
}

impl std::fmt::Debug for AgentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentClient").finish_non_exhaustive()
    }
}

impl AgentClient {
    /// A client with this TLS configuration (see [`crate::tls::Pki::agent_client_config`]).
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        AgentClient { tls }
    }
}

/// Whether `path` is one of the subresources the node agents serve.
pub fn is_streaming(path: &ResourcePath) -> bool {
    path.resource.group.is_empty()
        && path.resource.plural == "pods"
        && path.name.is_some()
        && path
            .subresource
            .as_deref()
            .is_some_and(|s| STREAMING.contains(&s))
}

/// Answer a streaming subresource request by proxying it to the pod's node agent.
pub async fn handle(
    state: &ApiState,
    request: Request,
    path: &ResourcePath,
) -> ApiResult<Response> {
    let sub = path.subresource.as_deref().unwrap_or_default();
    let method = request.method().clone();
    let allowed = match sub {
        "log" => method == Method::GET,
        _ => method == Method::GET || method == Method::POST,
    };
    let name = path.name.as_deref().unwrap_or_default();
    let target = Target::of(path.resource, name);
    if !allowed {
        return Err(status::method_not_allowed(&target, method.as_str()).into());
    }
    if sub == "attach" {
        return Err(ApiError::bad_request(
            "attach is not supported by this cluster yet; use exec",
        ));
    }
    let namespace = path.namespace.as_deref().unwrap_or("default");
    let query = crate::request::Query::from_uri(request.uri())?;
    let pod = get(
        state,
        path.resource.storage_key(Some(namespace), name),
        &target,
    )
    .await?;
    let node_name = pod
        .pointer("/spec/nodeName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(format!("pod {name} does not have a host assigned"))
        })?;
    let agent_path = match sub {
        "portforward" => format!("/portForward/{namespace}/{name}"),
        _ => {
            let container = container_of(&pod, name, query.get("container"))?;
            if sub == "exec"
                && let Some(phase @ ("Succeeded" | "Failed")) =
                    pod.pointer("/status/phase").and_then(Value::as_str)
            {
                return Err(ApiError::bad_request(format!(
                    "cannot exec into a container in a completed pod; current phase is {phase}"
                )));
            }
            let prefix = if sub == "log" {
                "containerLogs"
            } else {
                "exec"
            };
            format!("/{prefix}/{namespace}/{name}/{container}")
        }
    };
    let nodes = state
        .registry
        .lookup("", "v1", "nodes")
        .ok_or_else(|| ApiError::from(status::internal_error("nodes are not served")))?;
    let node = get(
        state,
        nodes.storage_key(None, node_name),
        &Target::of(nodes, node_name),
    )
    .await?;
    let addr = agent_address(&node).ok_or_else(|| {
        ApiError::bad_request(format!(
            "node {node_name} serves no logs, exec or port-forward: it advertises no \
             InternalIP and kubelet port"
        ))
    })?;
    let Some(client) = &state.agents else {
        return Err(
            status::service_unavailable("this API server has no client for node agents").into(),
        );
    };
    let mut uri = format!("{agent_path}?node={node_name}");
    if let Some(q) = request.uri().query().filter(|q| !q.is_empty()) {
        uri.push('&');
        uri.push_str(q);
    }
    proxy(client, addr, request, &uri, node_name).await
}

async fn get(state: &ApiState, key: String, target: &Target) -> ApiResult<Value> {
    let kv = state
        .store
        .get(&key)
        .await
        .map_err(|err| ApiError::from_store(err, target))?
        .ok_or_else(|| status::not_found(target))?;
    objects::from_store(&kv)
}

/// The container a request means: the one named, or the pod's default (its only container,
/// or the `kubectl.kubernetes.io/default-container` annotation).
fn container_of(pod: &Value, pod_name: &str, asked: Option<&str>) -> ApiResult<String> {
    let names = |list: &str| -> Vec<String> {
        pod.pointer(&format!("/spec/{list}"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|c| c.get("name").and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    let containers = names("containers");
    let all: Vec<String> = containers
        .iter()
        .cloned()
        .chain(names("initContainers"))
        .chain(names("ephemeralContainers"))
        .collect();
    match asked.filter(|c| !c.is_empty()) {
        Some(c) if all.iter().any(|n| n == c) => Ok(c.to_owned()),
        Some(c) => Err(ApiError::bad_request(format!(
            "container {c} is not valid for pod {pod_name}"
        ))),
        None => {
            let annotated = pod
                .pointer("/metadata/annotations/kubectl.kubernetes.io~1default-container")
                .and_then(Value::as_str)
                .filter(|c| containers.iter().any(|n| n == c));
            match (annotated, containers.as_slice()) {
                (Some(c), _) => Ok(c.to_owned()),
                (None, [only]) => Ok(only.clone()),
                _ => Err(ApiError::bad_request(format!(
                    "a container name must be specified for pod {pod_name}, choose one of: [{}]",
                    containers.join(" ")
                ))),
            }
        }
    }
}

/// The node agent's address: the Node's InternalIP and its kubelet endpoint port.
fn agent_address(node: &Value) -> Option<SocketAddr> {
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .and_then(|p| u16::try_from(p).ok())
        .filter(|p| *p != 0)?;
    let ip: IpAddr = node
        .pointer("/status/addresses")
        .and_then(Value::as_array)?
        .iter()
        .filter(|a| a.get("type").and_then(Value::as_str) == Some("InternalIP"))
        .find_map(|a| a.get("address").and_then(Value::as_str)?.parse().ok())?;
    Some(SocketAddr::new(ip, port))
}

fn unreachable(node: &str, why: impl std::fmt::Display) -> ApiError {
    tracing::warn!(node.name = %node, error = %why, "cannot reach the node agent");
    status::service_unavailable(format!("cannot reach the node agent of {node}: {why}")).into()
}

/// Headers that belong to one hop, or that we set ourselves.
fn forwarded(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for h in [
        header::AUTHORIZATION,
        header::HOST,
        header::CONTENT_LENGTH,
        header::TRANSFER_ENCODING,
        header::PROXY_AUTHORIZATION,
    ] {
        out.remove(h);
    }
    out
}

async fn proxy(
    client: &AgentClient,
    addr: SocketAddr,
    mut request: Request,
    uri: &str,
    node: &str,
) -> ApiResult<Response> {
    let upgrade = request.headers().contains_key(header::UPGRADE);
    let method = request.method().clone();
    let headers = forwarded(request.headers());
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| unreachable(node, e))?;
        let _ = tcp.set_nodelay(true);
        let server_name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = tokio_rustls::TlsConnector::from(client.tls.clone())
            .connect(server_name, tcp)
            .await
            .map_err(|e| unreachable(node, e))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(tls))
                .await
                .map_err(|e| unreachable(node, e))?;
        tokio::spawn(async move {
            if let Err(error) = conn.with_upgrades().await {
                tracing::debug!(%error, "node agent connection ended");
            }
        });
        let mut outgoing = hyper::Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .map_err(|e| unreachable(node, e))?;
        *outgoing.headers_mut() = headers;
        if let Ok(host) = HeaderValue::from_str(&addr.to_string()) {
            outgoing.headers_mut().insert(header::HOST, host);
        }
        sender
            .send_request(outgoing)
            .await
            .map_err(|e| unreachable(node, e))
    };
    let mut response = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| unreachable(node, "timed out"))??;

    if upgrade && response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let agent_side = hyper::upgrade::on(&mut response);
        let client_side = hyper::upgrade::on(&mut request);
        tokio::spawn(async move {
            let (agent, client) = match tokio::join!(agent_side, client_side) {
                (Ok(a), Ok(c)) => (a, c),
                (a, c) => {
                    tracing::debug!(agent = a.is_ok(), client = c.is_ok(), "upgrade failed");
                    return;
                }
            };
            let mut agent = TokioIo::new(agent);
            let mut client = TokioIo::new(client);
            if let Err(error) = tokio::io::copy_bidirectional(&mut client, &mut agent).await {
                tracing::debug!(%error, "streaming connection ended");
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
    for h in [header::CONTENT_TYPE, header::CACHE_CONTROL] {
        if let Some(v) = parts.headers.get(&h) {
            answer.headers_mut().insert(h, v.clone());
        }
    }
    if upgrade {
        // No upgrade: the client falls back on a new connection; this one is done.
        answer
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_and_named_containers() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}],
                                   "initContainers": [{"name": "init"}]}});
        assert_eq!(container_of(&pod, "p", Some("b")).unwrap(), "b");
        assert_eq!(container_of(&pod, "p", Some("init")).unwrap(), "init");
        let err = container_of(&pod, "p", Some("zz")).unwrap_err();
        assert_eq!(err.status.code, Some(400));
        let err = container_of(&pod, "p", None).unwrap_err();
        assert!(err.status.message.as_deref().unwrap().contains("[a b]"));
        let one = json!({"spec": {"containers": [{"name": "only"}]}});
        assert_eq!(container_of(&one, "p", None).unwrap(), "only");
        let annotated = json!({"metadata": {"annotations":
            {"kubectl.kubernetes.io/default-container": "b"}}, "spec": pod["spec"]});
        assert_eq!(container_of(&annotated, "p", None).unwrap(), "b");
    }

    #[test]
    fn agent_address_needs_ip_and_port() {
        let node = json!({"status": {
            "addresses": [{"type": "Hostname", "address": "n"},
                          {"type": "InternalIP", "address": "10.0.0.5"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        assert_eq!(
            agent_address(&node),
            Some("10.0.0.5:10250".parse().unwrap())
        );
        let no_port =
            json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]}});
        assert_eq!(agent_address(&no_port), None);
    }
}
