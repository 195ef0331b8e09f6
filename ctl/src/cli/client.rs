//! The connection to the cluster: kubeconfig → `kube::Client`, raw JSON requests with
//! kubectl-style errors.

use std::time::Duration;

use anyhow::Context as _;
use http::{Method, Request};
use serde_json::Value;
use tokio::sync::OnceCell;

use super::GlobalArgs;
use super::discovery::Resources;

/// How long connecting to the API server may take before `tug` says there is no cluster.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A `Status` the server answered with, printed as kubectl prints it.
#[derive(Debug)]
pub struct ApiError {
    /// The server's Status.
    pub status: kube::core::Status,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.status.reason.is_empty() {
            write!(f, "Error from server: {}", self.status.message)
        } else {
            write!(
                f,
                "Error from server ({}): {}",
                self.status.reason, self.status.message
            )
        }
    }
}

impl std::error::Error for ApiError {}

/// The HTTP code of an API error, if `error` is one.
pub fn api_code(error: &anyhow::Error) -> Option<u16> {
    error.downcast_ref::<ApiError>().map(|e| e.status.code)
}

/// Whether `error` is the server's 404.
pub fn is_not_found(error: &anyhow::Error) -> bool {
    api_code(error) == Some(404)
}

/// Everything a user command needs.
pub struct Ctx {
    /// The client, from the kubeconfig.
    pub client: kube::Client,
    /// `https://HOST:PORT` of the API server.
    pub server: String,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
    /// Whether `-n` was given.
    pub namespace_explicit: bool,
    discovery: OnceCell<Resources>,
}

impl Ctx {
    /// Connect as kubectl would, from the kubeconfig kubectl would use.
    pub async fn new(global: &GlobalArgs) -> anyhow::Result<Ctx> {
        let (kubeconfig, _paths) = super::config::load(global)?;
        if let Some(context) = &global.context
            && !kubeconfig.contexts.iter().any(|c| &c.name == context)
        {
            anyhow::bail!("context {context:?} does not exist");
        }
        let options = kube::config::KubeConfigOptions {
            context: global.context.clone(),
            cluster: None,
            user: None,
        };
        let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &options)
            .await
            .context("invalid kubeconfig")?;
        config.connect_timeout = Some(CONNECT_TIMEOUT);
        config.headers.push(crate::components::user_agent());
        let server = config
            .cluster_url
            .to_string()
            .trim_end_matches('/')
            .to_owned();
        let namespace = global
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).context("cannot build the API client")?;
        Ok(Ctx {
            client,
            server,
            namespace,
            namespace_explicit: global.namespace.is_some(),
            discovery: OnceCell::new(),
        })
    }

    /// The server's resource types (aggregated discovery, fetched once).
    pub async fn resources(&self) -> anyhow::Result<&Resources> {
        self.discovery
            .get_or_try_init(|| Resources::discover(self))
            .await
    }

    /// One request; the body is JSON text (or empty). Non-2xx answers become [`ApiError`].
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<String> {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(content_type) = content_type {
            request = request.header(http::header::CONTENT_TYPE, content_type);
        }
        request = request.header(http::header::ACCEPT, accept.unwrap_or("application/json"));
        let request = request
            .body(body)
            .with_context(|| format!("bad request path {path:?}"))?;
        self.client
            .request_text(request)
            .await
            .map_err(|error| self.map_error(error))
    }

    /// GET a JSON document.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let text = self.call(Method::GET, path, None, None, Vec::new()).await?;
        parse(&text)
    }

    /// GET a JSON document; `None` on 404.
    pub async fn get_opt(&self, path: &str) -> anyhow::Result<Option<Value>> {
        match self.get(path).await {
            Ok(value) => Ok(Some(value)),
            Err(error) if is_not_found(&error) => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Send a JSON body (POST, PUT, PATCH, DELETE) and parse the answer.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: &Value,
    ) -> anyhow::Result<Value> {
        let body = serde_json::to_vec(body).context("encoding the request")?;
        let text = self
            .call(method, path, Some(content_type), None, body)
            .await?;
        parse(&text)
    }

    /// kubectl-style errors: the server's Status as is, and a dead server named with the fix.
    pub fn map_error(&self, error: kube::Error) -> anyhow::Error {
        match error {
            kube::Error::Api(status) => ApiError { status: *status }.into(),
            other => {
                let text = format!("{:#}", anyhow::Error::from(other));
                let lower = text.to_lowercase();
                if lower.contains("connection refused")
                    || lower.contains("tcp connect error")
                    || lower.contains("timed out")
                    || lower.contains("deadline has elapsed")
                {
                    anyhow::anyhow!("no cluster at {}: start one with tug up", self.server)
                } else {
                    anyhow::anyhow!("cannot reach the cluster at {}: {text}", self.server)
                }
            }
        }
    }
}

/// Parse a JSON answer.
pub fn parse(text: &str) -> anyhow::Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_str(text).context("the server answered with invalid JSON")
}

/// Percent-encode a query parameter value.
pub fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// `path?k=v&...` with encoded values; empty values are left out.
pub fn with_query(path: &str, params: &[(&str, &str)]) -> String {
    let query: Vec<String> = params
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(key, value)| format!("{key}={}", encode(value)))
        .collect();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_are_encoded() {
        assert_eq!(
            with_query(
                "/api/v1/pods",
                &[("labelSelector", "app in (web),!x"), ("limit", "")]
            ),
            "/api/v1/pods?labelSelector=app%20in%20%28web%29%2C%21x"
        );
    }
}
