//! A kube-rs client for a Tugboat API server: its URL, its CA and a bearer token, exactly as a
//! remote component would connect.

use anyhow::Context as _;

/// A client for the server at `url` (`https://127.0.0.1:PORT`) trusting `ca_pem`, sending
/// `token`, with `default` as its default namespace.
pub fn client(url: &str, ca_pem: &str, token: &str) -> anyhow::Result<kube::Client> {
    let config = config(url, ca_pem, token)?;
    kube::Client::try_from(config).context("cannot build the kube client")
}

/// The kube-rs configuration behind [`client`].
pub fn config(url: &str, ca_pem: &str, token: &str) -> anyhow::Result<kube::Config> {
    let cluster_url = url.parse().context("bad server URL")?;
    let mut config = kube::Config::new(cluster_url);
    config.root_cert = Some(vec![der_of(ca_pem)?]);
    config.auth_info.token = Some(token.to_owned().into());
    config.default_namespace = "default".into();
    Ok(config)
}

/// The DER bytes of the first certificate in `pem`.
fn der_of(pem: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine as _;
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE-----"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .context("the CA is not PEM")
}

/// A client from a kubeconfig file (an API server's admin kubeconfig, say), every request
/// bounded by `timeout` (connecting, reading and writing each).
pub async fn client_from_kubeconfig(
    path: &std::path::Path,
    timeout: std::time::Duration,
) -> anyhow::Result<kube::Client> {
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .context("bad kubeconfig")?;
    config.connect_timeout = Some(timeout);
    config.read_timeout = Some(timeout);
    config.write_timeout = Some(timeout);
    kube::Client::try_from(config).context("cannot build the kube client")
}

/// The holder identity of Lease `kube-system/<name>`, if it exists and is held; `None` too
/// when the API does not answer within `timeout`.
pub async fn lease_holder(
    client: &kube::Client,
    name: &str,
    timeout: std::time::Duration,
) -> Option<String> {
    use k8s_openapi::api::coordination::v1::Lease;
    let leases: kube::Api<Lease> = kube::Api::namespaced(client.clone(), "kube-system");
    let lease = tokio::time::timeout(timeout, leases.get_opt(name))
        .await
        .ok()?
        .ok()??;
    lease
        .spec?
        .holder_identity
        .filter(|holder| !holder.is_empty())
}
