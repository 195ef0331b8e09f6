//! The kubeconfig `tug up` writes: the server, the cluster CA and the admin token.

use std::path::Path;

use base64::Engine as _;
use serde_json::json;

use crate::tls::{TlsError, write_private};

/// The kubeconfig YAML for `server` (an `https://` URL) and the admin.
pub fn render(server: &str, ca_pem: &str, token: &str) -> String {
    render_for(server, ca_pem, "admin", token)
}

/// The kubeconfig YAML for `server` and the user `user` with bearer token `token`.
pub fn render_for(server: &str, ca_pem: &str, user: &str, token: &str) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "tugboat", "cluster": { "server": server, "certificate-authority-data": ca } }],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{ "name": "tugboat", "context": { "cluster": "tugboat", "user": user, "namespace": "default" } }],
        "current-context": "tugboat",
        "preferences": {},
    });
    serde_yaml::to_string(&doc).unwrap_or_default()
}

/// Write the kubeconfig to `path` with mode 0600.
pub fn write(path: &Path, server: &str, ca_pem: &str, token: &str) -> Result<(), TlsError> {
    write_private(path, render(server, ca_pem, token).as_bytes())
}
