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
