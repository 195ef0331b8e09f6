//! Nodes that join from other machines, as k3s joins them.
//!
//! The API server makes a join token on first start: `K10<sha256 of the CA PEM>::node:<secret>`.
//! A joining agent fetches the CA from the unauthenticated `GET /cacerts` (without trusting
//! the connection), checks its hash against the token before it sends anything secret, then,
//! over TLS verified by that CA, sends the secret to `POST /v1-tugboat/join` and gets its own
//! bearer token for `system:node:<name>` (group `system:nodes`) and a serving certificate
//! for its logs/exec endpoint signed by the cluster CA. The admin token never leaves the server.
//! The join also carries the node's password: a name that joined before joins again only with
//! the same password, so the join token alone does not let anyone take over another node's
//! name (see [`crate::nodepassword`]).
//!
//! Both the join secret and the node credentials live in the store (Secrets in `kube-system`),
//! so every API server of an etcd-backed cluster accepts them and they survive restarts. A node
//! credential's Secret is named after a hash of the token and holds only the node name: reading
//! Secrets does not give away node tokens.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode, header};
use axum::response::{IntoResponse as _, Response};
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::BodyExt as _;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use tugboat_api::status;
use tugboat_store::{ListOptions, Store, StoreError};

use crate::auth::{UserInfo, new_token};
use crate::error::ApiError;
use crate::nodepassword::{self, MAX_NODE_NAME_LEN};
use crate::server::ApiState;
use crate::tls::{ClusterCa, TlsError, write_private};

/// The unauthenticated path that serves the cluster CA (k3s's).
pub const CACERTS_PATH: &str = "/cacerts";
/// Where a node trades the join secret for its own credential.
pub const JOIN_PATH: &str = "/v1-tugboat/join";
/// The group of every node's user.
pub const NODES_GROUP: &str = "system:nodes";
/// The prefix of a node's user name.
pub const NODE_USER_PREFIX: &str = "system:node:";

const TOKEN_PREFIX: &str = "K10";
const TOKEN_USER: &str = "node";
const SYSTEM_NAMESPACE: &str = "kube-system";
const JOIN_SECRET_NAME: &str = "tugboat-join-token";
const JOIN_SECRET_TYPE: &str = "tugboat.dev/join-token";
const NODE_TOKEN_PREFIX: &str = "tugboat-node-token-";
const NODE_TOKEN_TYPE: &str = "tugboat.dev/node-token";
/// How long one join request may take, end to end.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// The largest body the join endpoint reads.
const MAX_JOIN_BODY: usize = 64 * 1024;

/// Why joining failed.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The token is not in the `K10<hash>::node:<secret>` form.
    #[error(
        "the join token is not of the form K10<CA hash>::node:<secret> (use the server's <data-dir>/join-token): {0}"
    )]
    BadToken(&'static str),
    /// The server presents another CA than the token pins.
    #[error(
        "{server} does not serve the cluster CA of this join token (its CA hash is {actual}, the token's {expected}): refusing to send the secret"
    )]
    CaMismatch {
        /// The server's URL.
        server: String,
        /// The hash in the token.
        expected: String,
        /// The hash of what the server sent.
        actual: String,
    },
    /// The URL is not `https://HOST[:PORT]`.
    #[error("{0:?} is not an https://HOST:PORT URL")]
    BadUrl(String),
    /// No answer, or not a TLS/HTTP one.
    #[error("cannot reach {server}: {message}")]
    Unreachable {
        /// The server's URL.
        server: String,
        /// What went wrong.
        message: String,
    },
    /// The server refused the request (its Status message).
    #[error("{server} refused to let this node join ({code}): {message}")]
    Refused {
        /// The server's URL.
        server: String,
        /// The HTTP status code.
        code: u16,
        /// The server's message.
        message: String,
    },
    /// The server's answer does not parse.
    #[error("{server} sent an answer that is not a join response: {message}")]
    BadResponse {
        /// The server's URL.
        server: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A parsed join token: the CA hash it pins and the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinToken {
    /// SHA-256 of the cluster CA's PEM, lower-case hex.
    pub ca_hash: String,
    /// The join secret.
    pub secret: String,
}

impl JoinToken {
    /// The token for the CA `ca_pem` and `secret`.
    pub fn new(ca_pem: &str, secret: &str) -> Self {
        JoinToken {
            ca_hash: ca_hash(ca_pem.as_bytes()),
            secret: secret.to_owned(),
        }
    }

    /// Parse `K10<64 hex>::node:<secret>` (surrounding white space ignored).
    pub fn parse(text: &str) -> Result<Self, JoinError> {
        let text = text.trim();
        let rest = text
            .strip_prefix(TOKEN_PREFIX)
            .ok_or(JoinError::BadToken("it does not start with K10"))?;
        let (hash, credentials) = rest
            .split_once("::")
            .ok_or(JoinError::BadToken("no :: after the CA hash"))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(JoinError::BadToken(
                "the CA hash is not 64 hexadecimal digits",
            ));
        }
        let secret = credentials
            .strip_prefix(TOKEN_USER)
            .and_then(|s| s.strip_prefix(':'))
            .ok_or(JoinError::BadToken(
                "the part after :: does not start with node:",
            ))?;
        if secret.is_empty() || secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(JoinError::BadToken("the secret is empty or has spaces"));
        }
        Ok(JoinToken {
            ca_hash: hash.to_ascii_lowercase(),
            secret: secret.to_owned(),
        })
    }

    /// Whether `ca_pem` (as `/cacerts` served it) is the CA this token pins.
    pub fn pins(&self, ca_pem: &[u8]) -> bool {
        ca_hash(ca_pem) == self.ca_hash
    }
}

impl std::fmt::Display for JoinToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{TOKEN_PREFIX}{}::{TOKEN_USER}:{}",
            self.ca_hash, self.secret
        )
    }
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn ca_hash(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal without telling a timing observer how much of the secret matched.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

// ---------------------------------------------------------------------------------------------
// Server side
// ---------------------------------------------------------------------------------------------

/// What the API server needs to let nodes join: the CA (to serve and to sign nodes' serving
/// certificates) and the join secret.
pub struct JoinService {
    ca: ClusterCa,
    secret: String,
}

impl JoinService {
    /// The join service over the CA and the cluster's join secret (see [`ensure_join_secret`]).
    pub fn new(ca: ClusterCa, secret: String) -> Self {
        JoinService { ca, secret }
    }

    /// The join token (the CA hash and the secret).
    pub fn token(&self) -> JoinToken {
        JoinToken::new(&self.ca.ca_pem, &self.secret)
    }
}

fn secret_key(name: &str) -> String {
    format!("/registry/secrets/{SYSTEM_NAMESPACE}/{name}")
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn secret_data(obj: &Value, field: &str) -> Option<String> {
    let encoded = obj.get("data")?.get(field)?.as_str()?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    String::from_utf8(bytes).ok()
}

/// The cluster's join secret: made by the first API server that starts, shared through the
/// store by every other one.
pub async fn ensure_join_secret(store: &dyn Store) -> Result<String, StoreError> {
    let key = secret_key(JOIN_SECRET_NAME);
    if store.get(&key).await?.is_none() {
        let secret = json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": { "name": JOIN_SECRET_NAME, "namespace": SYSTEM_NAMESPACE },
            "type": JOIN_SECRET_TYPE,
            "data": { "secret": b64(&new_token()) },
        });
        crate::bootstrap::create_if_absent(store, &key, secret).await?;
    }
    let stored = store.get(&key).await?;
    let secret = stored
        .and_then(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .and_then(|obj| secret_data(&obj, "secret"))
        .filter(|s| !s.is_empty());
    match secret {
        Some(secret) => Ok(secret),
        None => Err(StoreError::Invalid(format!(
            "{key} holds no join secret: delete it and restart to make a new one"
        ))),
    }
}

/// Write the join token to `path` (mode 0600).
pub fn write_token_file(path: &std::path::Path, token: &JoinToken) -> Result<(), TlsError> {
    write_private(path, format!("{token}\n").as_bytes())
}

fn node_token_secret_name(token: &str) -> String {
    // 128 bits of the hash: unique among tokens, and the token cannot be had from it.
    let hash = ca_hash(token.as_bytes());
    format!("{NODE_TOKEN_PREFIX}{}", &hash[..32])
}

fn node_user(node_name: &str) -> UserInfo {
    UserInfo::new(
        &format!("{NODE_USER_PREFIX}{node_name}"),
        "",
        [NODES_GROUP.to_owned()],
    )
}

/// The node a bearer token issued by [`JOIN_PATH`] stands for, if it is one. Read from the
/// watch cache, then (a credential issued a moment ago, or by another API server the cache
/// has not heard from yet) from the store.
pub async fn authenticate_node(state: &ApiState, token: &str) -> Option<UserInfo> {
    if token.is_empty() {
        return None;
    }
    let key = secret_key(&node_token_secret_name(token));
    let cached = state
        .registry
        .all()
        .find(|r| r.group.is_empty() && r.plural == "secrets")
        .and_then(|secrets| state.caches.get(secrets))
        .and_then(|cache| cache.get(&key));
    let obj = match cached {
        Some(obj) => Arc::unwrap_or_clone(obj.value()),
        None => {
            let kv = state.store.get(&key).await.ok()??;
            serde_json::from_slice(&kv.value).ok()?
        }
    };
    if obj.get("type").and_then(Value::as_str) != Some(NODE_TOKEN_TYPE) {
        return None;
    }
    let node_name = secret_data(&obj, "node-name")?;
    Some(node_user(&node_name))
}

/// What a joining node sends.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRequest {
    /// The node's name.
    pub node_name: String,
    /// The addresses its logs/exec endpoint serves on (the serving certificate covers them).
    #[serde(default)]
    pub addresses: Vec<String>,
    /// The node's password (see [`crate::nodepassword`]): needed with the join token, not when
    /// a joined node renews its certificate with its own credential.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// What a joined node gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinResponse {
    /// Its user name, `system:node:<name>`.
    pub user: String,
    /// Its bearer token.
    pub token: String,
    /// Its endpoint's serving certificate, signed by the cluster CA.
    pub serving_certificate: String,
    /// The key of that certificate.
    pub serving_key: String,
}

fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether this request is one of the join paths (they authenticate on their own).
pub fn is_join_path(path: &str) -> bool {
    path == CACERTS_PATH || path == JOIN_PATH
}

/// Serve `GET /cacerts` and `POST /v1-tugboat/join`.
pub async fn handle(state: &ApiState, request: Request) -> Result<Response, ApiError> {
    let Some(service) = &state.join else {
        return Err(status::service_unavailable("this API server does not let nodes join").into());
    };
    let path = request.uri().path();
    let method = request.method().clone();
    if path == CACERTS_PATH {
        if method != Method::GET {
            return Err(status::method_not_allowed_on_path().into());
        }
        return Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            service.ca.ca_pem.clone(),
        )
            .into_response());
    }
    if method != Method::POST {
        return Err(status::method_not_allowed_on_path().into());
    }
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("")
        .trim()
        .to_owned();
    let body = http_body_util::Limited::new(request.into_body(), MAX_JOIN_BODY)
        .collect()
        .await
        .map_err(|_| ApiError::from(status::bad_request("the join request is too large")))?
        .to_bytes();
    let join: JoinRequest = serde_json::from_slice(&body).map_err(|error| {
        ApiError::from(status::bad_request(format!(
            "the join request is not valid JSON: {error}"
        )))
    })?;
    if !is_dns_subdomain(&join.node_name) || join.node_name.len() > MAX_NODE_NAME_LEN {
        return Err(status::bad_request(format!(
            "node name {:?} is not a lower-case DNS subdomain of at most {MAX_NODE_NAME_LEN} characters",
            join.node_name
        ))
        .into());
    }
    let mut hosts = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
    for address in &join.addresses {
        if address.parse::<IpAddr>().is_err() {
            return Err(status::bad_request(format!("{address:?} is not an IP address")).into());
        }
        hosts.push(address.clone());
    }
    hosts.push(join.node_name.clone());
    hosts.sort();
    hosts.dedup();
    let user = node_user(&join.node_name);

    let token = if !bearer.is_empty() && same_secret(&bearer, &service.secret) {
        // Only now, with the join secret checked: hashing is work an anonymous caller must
        // not be able to ask for.
        check_node_password(state, &join).await?;
        let token = new_token();
        issue_node_token(state, &join.node_name, &token).await?;
        tracing::info!(node = %join.node_name, "node joined with the join token");
        token
    } else if authenticate_node(state, &bearer)
        .await
        .is_some_and(|known| known.name == user.name)
    {
        // A joined node renewing its serving certificate (its address changed).
        bearer
    } else {
        let mut refusal = status::unauthorized();
        refusal.message = Some(
            "the join token's secret is not this cluster's: use the token in the server's <data-dir>/join-token"
                .to_owned(),
        );
        return Err(refusal.into());
    };
    let (serving_certificate, serving_key) = service
        .ca
        .sign_server(&user.name, &hosts)
        .map_err(|error| ApiError::from(status::internal_error(&error.to_string())))?;
    let response = JoinResponse {
        user: user.name,
        token,
        serving_certificate,
        serving_key,
    };
    let body = serde_json::to_value(&response).unwrap_or_default();
    Ok(crate::handlers::json_response(StatusCode::OK, &body))
}

/// Refuse a join under a taken node name unless it brings the password of the node that
/// joined under it first (see [`crate::nodepassword`]).
async fn check_node_password(state: &ApiState, join: &JoinRequest) -> Result<(), ApiError> {
    let node = &join.node_name;
    let password = join.password.as_deref().unwrap_or("");
    if password.is_empty() {
        return Err(status::bad_request(
            "the join request carries no node password: join with a tug agent of this version",
        )
        .into());
    }
    let verdict = nodepassword::ensure(&*state.store, node, password)
        .await
        .map_err(|error| ApiError::from(status::internal_error(&error.to_string())))?;
    let target = status::Target::new("", "nodes", node);
    let secret = nodepassword::secret_name(node);
    match verdict {
        nodepassword::Verdict::Stored => {
            tracing::info!(%node, "first join under this node name: its password is kept");
            Ok(())
        }
        nodepassword::Verdict::Matched => Ok(()),
        nodepassword::Verdict::Rejected => {
            tracing::warn!(%node, "join refused: another node password is stored for this name");
            Err(status::forbidden(
                &target,
                &format!(
                    "node password rejected: duplicate node name, or the joining agent's <data-dir>/node-password is not the one stored for this node in the Secret {SYSTEM_NAMESPACE}/{secret} (to give the name to another machine: kubectl delete node {node})"
                ),
            )
            .into())
        }
        nodepassword::Verdict::NodeWithoutPassword => {
            tracing::warn!(%node, "join refused: the node exists and did not join with a password");
            Err(status::forbidden(
                &target,
                &format!(
                    "node password rejected: node {node} is registered but did not join with a token, so no password is stored for it (to give the name to another machine: kubectl delete node {node})"
                ),
            )
            .into())
        }
    }
}

/// Store `token` as `node_name`'s credential, dropping the node's earlier ones: a node that
/// joins again (its credentials were lost, its password kept) leaves no second key behind.
async fn issue_node_token(state: &ApiState, node_name: &str, token: &str) -> Result<(), ApiError> {
    let store_error =
        |error: StoreError| ApiError::from(status::internal_error(&error.to_string()));
    let prefix = secret_key(NODE_TOKEN_PREFIX);
    let existing = state
        .store
        .list(&prefix, ListOptions::default())
        .await
        .map_err(store_error)?;
    for kv in existing.items {
        let same_node = serde_json::from_slice::<Value>(&kv.value)
            .ok()
            .and_then(|obj| secret_data(&obj, "node-name"))
            .is_some_and(|name| name == node_name);
        if same_node {
            match state.store.delete(&kv.key, Some(kv.mod_revision)).await {
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(error) => return Err(store_error(error)),
            }
        }
    }
    let name = node_token_secret_name(token);
    let secret = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": SYSTEM_NAMESPACE,
            "annotations": { "tugboat.dev/node-name": node_name },
        },
        "type": NODE_TOKEN_TYPE,
        "data": { "node-name": b64(node_name) },
    });
    crate::bootstrap::create_if_absent(&*state.store, &secret_key(&name), secret)
        .await
        .map_err(store_error)
}

// ---------------------------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------------------------

/// What a node keeps after joining.
#[derive(Debug, Clone)]
pub struct NodeCredentials {
    /// The cluster CA (PEM), checked against the join token.
    pub ca_pem: String,
    /// The server's answer: the node's user, token and serving certificate.
    pub issued: JoinResponse,
}

/// Join `server` with `token`: fetch the CA without trusting the connection, refuse unless it
/// is the one the token pins, then send the secret and the node's `password` over TLS
/// verified by that CA.
pub async fn join(
    server: &str,
    token: &JoinToken,
    node_name: &str,
    password: &str,
    addresses: &[IpAddr],
) -> Result<NodeCredentials, JoinError> {
    let target = Target::parse(server)?;
    let (code, ca) = target
        .request(insecure_config(), Method::GET, CACERTS_PATH, None, None)
        .await?;
    if code != StatusCode::OK {
        return Err(JoinError::Refused {
            server: server.to_owned(),
            code: code.as_u16(),
            message: refusal_message(&ca),
        });
    }
    if !token.pins(&ca) {
        return Err(JoinError::CaMismatch {
            server: server.to_owned(),
            expected: token.ca_hash.clone(),
            actual: ca_hash(&ca),
        });
    }
    let ca_pem = String::from_utf8(ca.to_vec()).map_err(|_| JoinError::BadResponse {
        server: server.to_owned(),
        message: "the CA is not text".to_owned(),
    })?;
    let issued = request_credential(
        &target,
        &ca_pem,
        &token.secret,
        node_name,
        Some(password),
        addresses,
    )
    .await?;
    Ok(NodeCredentials { ca_pem, issued })
}

/// A new serving certificate for a node that joined before (its addresses changed), asked
/// with its own token over TLS verified by the CA it keeps.
pub async fn renew(
    server: &str,
    ca_pem: &str,
    node_token: &str,
    node_name: &str,
    addresses: &[IpAddr],
) -> Result<NodeCredentials, JoinError> {
    let target = Target::parse(server)?;
    let issued =
        request_credential(&target, ca_pem, node_token, node_name, None, addresses).await?;
    Ok(NodeCredentials {
        ca_pem: ca_pem.to_owned(),
        issued,
    })
}

async fn request_credential(
    target: &Target,
    ca_pem: &str,
    bearer: &str,
    node_name: &str,
    password: Option<&str>,
    addresses: &[IpAddr],
) -> Result<JoinResponse, JoinError> {
    let body = serde_json::to_vec(&JoinRequest {
        node_name: node_name.to_owned(),
        addresses: addresses.iter().map(IpAddr::to_string).collect(),
        password: password.map(str::to_owned),
    })
    .unwrap_or_default();
    let (code, answer) = target
        .request(
            verified_config(ca_pem, &target.url)?,
            Method::POST,
            JOIN_PATH,
            Some(bearer),
            Some(body),
        )
        .await?;
    if code != StatusCode::OK {
        return Err(JoinError::Refused {
            server: target.url.clone(),
            code: code.as_u16(),
            message: refusal_message(&answer),
        });
    }
    serde_json::from_slice(&answer).map_err(|error| JoinError::BadResponse {
        server: target.url.clone(),
        message: error.to_string(),
    })
}

/// The message of a Kubernetes Status body, else the body itself.
fn refusal_message(body: &[u8]) -> String {
    serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

/// The server part of an `https://HOST[:PORT][/]` URL.
struct Target {
    url: String,
    host: String,
    port: u16,
}

impl Target {
    fn parse(url: &str) -> Result<Self, JoinError> {
        let bad = || JoinError::BadUrl(url.to_owned());
        let uri: http::Uri = url.parse().map_err(|_| bad())?;
        if uri.scheme_str() != Some("https") || !matches!(uri.path(), "" | "/") {
            return Err(bad());
        }
        let host = uri.host().ok_or_else(bad)?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Target {
            url: url.trim_end_matches('/').to_owned(),
            host,
            port: uri.port_u16().unwrap_or(443),
        })
    }

    /// `host:port`, an IPv6 address in brackets.
    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// One HTTP/1.1 request on a fresh TLS connection.
    async fn request(
        &self,
        tls: Arc<rustls::ClientConfig>,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), JoinError> {
        let unreachable = |message: String| JoinError::Unreachable {
            server: self.url.clone(),
            message,
        };
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect((self.host.as_str(), self.port))
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let name = rustls::pki_types::ServerName::try_from(self.host.clone())
                .map_err(|_| JoinError::BadUrl(self.url.clone()))?;
            let stream = tokio_rustls::TlsConnector::from(tls)
                .connect(name, tcp)
                .await
                .map_err(|e| unreachable(format!("TLS: {e}")))?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| unreachable(e.to_string()))?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            let mut builder = http::Request::builder()
                .method(method)
                .uri(path)
                .header(header::HOST, self.authority())
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(bearer) = bearer {
                builder = builder.header(header::AUTHORIZATION, format!("Bearer {bearer}"));
            }
            let request = builder
                .body(http_body_util::Full::new(Bytes::from(
                    body.unwrap_or_default(),
                )))
                .map_err(|e| unreachable(e.to_string()))?;
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| unreachable(e.to_string()))?;
            let code = response.status();
            let body = http_body_util::Limited::new(response.into_body(), MAX_JOIN_BODY)
                .collect()
                .await
                .map_err(|e| unreachable(e.to_string()))?
                .to_bytes();
            Ok((code, body))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| unreachable(format!("no answer within {REQUEST_TIMEOUT:?}")))?
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// TLS that accepts any certificate: only for `GET /cacerts`, whose answer is checked
/// against the token's hash before anything is trusted or sent.
fn insecure_config() -> Arc<rustls::ClientConfig> {
    let provider = provider();
    let verifier = Arc::new(AcceptAnyCertificate(Arc::clone(&provider)));
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::DEFAULT_VERSIONS)
        .unwrap_or_else(|_| rustls::ClientConfig::builder())
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// TLS that trusts only the cluster CA `ca_pem`.
fn verified_config(ca_pem: &str, server: &str) -> Result<Arc<rustls::ClientConfig>, JoinError> {
    let bad = || JoinError::BadResponse {
        server: server.to_owned(),
        message: "the CA it served is not a PEM certificate".to_owned(),
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut ca_pem.as_bytes()) {
        roots.add(cert.map_err(|_| bad())?).map_err(|_| bad())?;
    }
    if roots.is_empty() {
        return Err(bad());
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| JoinError::Unreachable {
            server: server.to_owned(),
            message: e.to_string(),
        })?;
    let mut config = builder.with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[derive(Debug)]
struct AcceptAnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";

    #[test]
    fn tokens_format_and_parse_back() {
        let token = JoinToken::new(CA, "s3cr3t-_x");
        let text = token.to_string();
        assert!(text.starts_with("K10"), "{text}");
        assert!(text.ends_with("::node:s3cr3t-_x"), "{text}");
        assert_eq!(JoinToken::parse(&format!(" {text}\n")).unwrap(), token);
        assert_eq!(token.ca_hash.len(), 64);
    }

    #[test]
    fn the_token_pins_exactly_its_ca() {
        let token = JoinToken::new(CA, "s");
        assert!(token.pins(CA.as_bytes()));
        assert!(!token.pins(CA.replace("MIIB", "MIIC").as_bytes()));
        assert!(!token.pins(b""));
        // Upper-case hex in a hand-typed token is the same hash.
        let upper = format!("K10{}::node:s", token.ca_hash.to_uppercase());
        assert!(JoinToken::parse(&upper).unwrap().pins(CA.as_bytes()));
    }

    #[test]
    fn malformed_tokens_are_refused_with_the_reason() {
        let hash = "a".repeat(64);
        let cases = [
            ("just-a-secret", "K10"),
            (&format!("K10{hash}:node:s") as &str, "::"),
            (&format!("K10{}::node:s", "a".repeat(63)), "64"),
            (&format!("K10{}::node:s", "g".repeat(64)), "64"),
            (&format!("K10{hash}::admin:s"), "node:"),
            (&format!("K10{hash}::node:"), "empty"),
            (&format!("K10{hash}::node:a b"), "spaces"),
        ];
        for (text, reason) in cases {
            let error = JoinToken::parse(text).unwrap_err().to_string();
            assert!(error.contains(reason), "{text}: {error}");
            assert!(error.contains("join-token"), "{error}");
        }
    }

    #[test]
    fn node_token_secrets_are_named_by_a_hash_of_the_token() {
        let name = node_token_secret_name("abc");
        assert!(name.starts_with(NODE_TOKEN_PREFIX));
        assert!(!name.contains("abc"));
        assert_eq!(name, node_token_secret_name("abc"));
        assert_ne!(name, node_token_secret_name("abd"));
        assert!(is_dns_subdomain(&name));
    }

    #[test]
    fn node_names_and_urls() {
        assert!(is_dns_subdomain("worker-1.example"));
        assert!(!is_dns_subdomain("Worker"));
        assert!(!is_dns_subdomain("-a"));
        assert!(!is_dns_subdomain(""));
        let target = Target::parse("https://10.0.0.1:6443/").unwrap();
        assert_eq!((target.host.as_str(), target.port), ("10.0.0.1", 6443));
        assert_eq!(target.url, "https://10.0.0.1:6443");
        let v6 = Target::parse("https://[::1]:7443").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.authority().as_str()),
            ("::1", "[::1]:7443")
        );
        assert_eq!(Target::parse("https://example.org").unwrap().port, 443);
        assert!(Target::parse("http://10.0.0.1:6443").is_err());
        assert!(Target::parse("10.0.0.1:6443").is_err());
        assert!(Target::parse("https://10.0.0.1:6443/api").is_err());
    }

    #[test]
    fn same_secret_compares_whole_strings() {
        assert!(same_secret("abc", "abc"));
        assert!(!same_secret("abc", "abd"));
        assert!(!same_secret("abc", "abcd"));
        assert!(!same_secret("", "a"));
    }
}
