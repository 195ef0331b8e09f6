//! A node of another machine joining the cluster with a join token (`tug agent --server URL
//! --token T`, `tug up --join URL --token T`), and its own credentials kept in
//! `<data-dir>/node/` so that a restart needs no token; its node password in
//! `<data-dir>/node-password`, so that only this machine joins again under its node name.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use serde_json::Value;
use tugboat_apiserver::join::{self, JoinToken, NodeCredentials};
use tugboat_apiserver::tls::write_private;
use tugboat_nodeagent::server::TlsMaterial;

/// The join token flags of `tug agent` and `tug up --join`.
#[derive(Args, Debug, Clone, Default)]
pub struct JoinFlags {
    /// The join token `tug up` / `tug apiserver` wrote to the server's `<data-dir>/join-token`
    /// (`K10<CA hash>::node:<secret>`: it pins the cluster CA). Needed for the first start only.
    #[arg(long, env = "TUG_TOKEN", conflicts_with = "token_file")]
    pub token: Option<String>,
    /// A file holding the join token (a copy of the server's `<data-dir>/join-token`).
    #[arg(long, env = "TUG_TOKEN_FILE", value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl JoinFlags {
    /// The join token given, parsed.
    pub fn token(&self) -> anyhow::Result<Option<JoinToken>> {
        let text = match (&self.token, &self.token_file) {
            (Some(token), _) => token.clone(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .with_context(|| format!("cannot read the join token from {}", file.display()))?,
            (None, None) => return Ok(None),
        };
        Ok(Some(JoinToken::parse(&text)?))
    }

    /// Whether a token was given at all.
    pub fn given(&self) -> bool {
        self.token.is_some() || self.token_file.is_some()
    }
}

/// A joined node's client and its endpoint's TLS material.
pub struct Joined {
    /// The client, authenticated as `system:node:<name>`.
    pub client: kube::Client,
    /// The serving certificate the cluster CA signed for the node's endpoint.
    pub tls: TlsMaterial,
}

/// The files of a joined node, under `<data-dir>/node/`.
struct NodeFiles {
    dir: PathBuf,
}

impl NodeFiles {
    fn kubeconfig(&self) -> PathBuf {
        self.dir.join("kubeconfig")
    }
    fn cert(&self) -> PathBuf {
        self.dir.join("kubelet.crt")
    }
    fn key(&self) -> PathBuf {
        self.dir.join("kubelet.key")
    }
    /// The address the serving certificate was issued for.
    fn address(&self) -> PathBuf {
        self.dir.join("kubelet.address")
    }

    fn exist(&self) -> bool {
        [self.kubeconfig(), self.cert(), self.key()]
            .iter()
            .all(|f| f.is_file())
    }

    fn save(&self, server: &str, node_ip: IpAddr, creds: &NodeCredentials) -> anyhow::Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        let issued = &creds.issued;
        let kubeconfig = tugboat_apiserver::kubeconfig::render_for(
            server,
            &creds.ca_pem,
            &issued.user,
            &issued.token,
        );
        write_private(&self.key(), issued.serving_key.as_bytes())?;
        write_private(&self.cert(), issued.serving_certificate.as_bytes())?;
        write_private(&self.address(), node_ip.to_string().as_bytes())?;
        // Last: its presence says the rest is there.
        write_private(&self.kubeconfig(), kubeconfig.as_bytes())?;
        Ok(())
    }
}

/// This machine's node password (k3s's `/etc/rancher/node/password`): made on the first join
/// and sent with every join, so that nobody else holding the join token can join under this
/// node's name. Kept in `<data-dir>/node-password`, outside `node/`: a node whose credentials
/// are removed joins again as itself.
struct NodePassword {
    path: PathBuf,
    value: String,
    /// Made by this run, with the data dir too when this run made that.
    made: Option<Option<PathBuf>>,
}

impl NodePassword {
    fn load_or_make(data_dir: &Path) -> anyhow::Result<Self> {
        let path = data_dir.join("node-password");
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let value = text.trim().to_owned();
                anyhow::ensure!(
                    !value.is_empty() && !value.chars().any(char::is_whitespace),
                    "{} holds no password: remove it to make a new one (then a node that joined under this name before must be deleted first: kubectl delete node NAME)",
                    path.display()
                );
                return Ok(NodePassword {
                    path,
                    value,
                    made: None,
                });
            }
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
            Err(error) => {
                return Err(error).with_context(|| format!("cannot read {}", path.display()));
            }
        }
        let made_dir = (!data_dir.exists()).then(|| data_dir.to_path_buf());
        tugboat_apiserver::prepare_data_dir(data_dir)?;
        let value = tugboat_apiserver::auth::new_token();
        // Kept before it is sent: a join whose answer is lost is retried as the same node.
        write_private(&path, format!("{value}\n").as_bytes())?;
        Ok(NodePassword {
            path,
            value,
            made: Some(made_dir),
        })
    }

    fn value(&self) -> &str {
        &self.value
    }

    /// After a refused join, leave nothing behind that this run made.
    fn forget_if_made(self) {
        if let Some(made_dir) = self.made {
            let _ = std::fs::remove_file(&self.path);
            if let Some(dir) = made_dir {
                let _ = std::fs::remove_dir(dir);
            }
        }
    }
}

/// Whether the join surely did not reach the server's password check, or was refused by it:
/// not when the answer is unknown (the server may have stored the password's hash).
fn was_refused(error: &join::JoinError) -> bool {
    !matches!(
        error,
        join::JoinError::Unreachable { .. } | join::JoinError::BadResponse { .. }
    )
}

/// What a kept kubeconfig says.
struct Stored {
    server: String,
    ca_pem: String,
    user: String,
    token: String,
}

fn read_stored(path: &Path) -> anyhow::Result<Stored> {
    use base64::Engine as _;
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: Value = serde_yaml::from_str(&text)
        .with_context(|| format!("{} is not a kubeconfig", path.display()))?;
    let field = |value: &Value| value.as_str().map(str::to_owned);
    let parsed = (|| {
        let ca = field(&doc["clusters"][0]["cluster"]["certificate-authority-data"])?;
        let ca = base64::engine::general_purpose::STANDARD.decode(ca).ok()?;
        Some(Stored {
            server: field(&doc["clusters"][0]["cluster"]["server"])?,
            ca_pem: String::from_utf8(ca).ok()?,
            user: field(&doc["users"][0]["name"])?,
            token: field(&doc["users"][0]["user"]["token"])?,
        })
    })();
    parsed.with_context(|| {
        format!(
            "{} lacks the server, CA, user or token: remove {} and join again with --token",
            path.display(),
            path.parent().unwrap_or(path).display()
        )
    })
}

/// Whether this data dir holds a joined node's credentials.
pub fn has_credentials(data_dir: &Path) -> bool {
    NodeFiles {
        dir: data_dir.join("node"),
    }
    .exist()
}

/// The node's client and serving certificate: the kept ones when this node joined before
/// (renewing the certificate when its address changed), else joined now with the token.
pub async fn join_or_reuse(
    data_dir: &Path,
    server: Option<&str>,
    token: Option<&JoinToken>,
    node_name: &str,
    node_ip: IpAddr,
) -> anyhow::Result<Joined> {
    let files = NodeFiles {
        dir: data_dir.join("node"),
    };
    let node_user = format!("{}{node_name}", join::NODE_USER_PREFIX);
    let stored = if files.exist() {
        Some(read_stored(&files.kubeconfig())?)
    } else {
        None
    };
    let stored = match stored {
        Some(stored) if stored.user == node_user => Some(stored),
        Some(stored) if token.is_none() => anyhow::bail!(
            "{} is the credential of {}, not of node {node_name}: join with --token to get one",
            files.kubeconfig().display(),
            stored.user
        ),
        _ => None,
    };
    let server_url = match (server, &stored) {
        (Some(server), _) => server.trim_end_matches('/').to_owned(),
        (None, Some(stored)) => stored.server.clone(),
        (None, None) => anyhow::bail!("joining needs --server URL (and --token)"),
    };
    match stored {
        Some(stored) => {
            let issued_for = std::fs::read_to_string(files.address()).unwrap_or_default();
            if issued_for.trim() != node_ip.to_string() {
                tracing::info!(%node_ip, "the node's address changed: renewing its serving certificate");
                let creds = join::renew(
                    &server_url,
                    &stored.ca_pem,
                    &stored.token,
                    node_name,
                    &[node_ip],
                )
                .await?;
                files.save(&server_url, node_ip, &creds)?;
            } else if server_url != stored.server {
                // The same cluster at a new address: keep the kubeconfig in step.
                let kubeconfig = tugboat_apiserver::kubeconfig::render_for(
                    &server_url,
                    &stored.ca_pem,
                    &stored.user,
                    &stored.token,
                );
                write_private(&files.kubeconfig(), kubeconfig.as_bytes())?;
            }
        }
        None => {
            let token = token.with_context(|| {
                format!(
                    "joining {server_url} needs the join token: --token or --token-file (the server's <data-dir>/join-token)"
                )
            })?;
            let password = NodePassword::load_or_make(data_dir)?;
            let joined =
                join::join(&server_url, token, node_name, password.value(), &[node_ip]).await;
            let creds = match joined {
                Ok(creds) => creds,
                Err(error) => {
                    if was_refused(&error) {
                        password.forget_if_made();
                    }
                    return Err(error.into());
                }
            };
            tugboat_apiserver::prepare_data_dir(data_dir)?;
            files.save(&server_url, node_ip, &creds)?;
            println!(
                "joined {server_url} as {}; credentials in {}",
                creds.issued.user,
                files.dir.display()
            );
        }
    }
    let client = crate::components::client_from_kubeconfig(&files.kubeconfig()).await?;
    // An authenticated request: a credential the cluster forgot (it was reset) is named now.
    if let Err(error) = client.list_core_api_versions().await {
        let hint = match &error {
            kube::Error::Api(status) if status.code == 401 => format!(
                "{server_url} does not accept this node's credential (was the cluster reset?): remove {} and join again with --token",
                files.dir.display()
            ),
            _ => format!("cannot reach {server_url}"),
        };
        return Err(anyhow::Error::from(error).context(hint));
    }
    let read = |path: PathBuf| {
        std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))
    };
    let stored = read_stored(&files.kubeconfig())?;
    Ok(Joined {
        client,
        tls: TlsMaterial {
            cert_pem: read(files.cert())?,
            key_pem: read(files.key())?,
            ca_pem: stored.ca_pem,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_node_password_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let made = NodePassword::load_or_make(&data).unwrap();
        let file = data.join("node-password");
        assert_eq!(mode(&file), 0o600);
        assert!(made.value().len() >= 43, "{}", made.value());
        let again = NodePassword::load_or_make(&data).unwrap();
        assert_eq!(again.value(), made.value());
        // Forgetting a kept password does nothing: only what this run made goes.
        again.forget_if_made();
        assert!(file.exists());
        assert_ne!(
            NodePassword::load_or_make(&dir.path().join("other"))
                .unwrap()
                .value(),
            made.value()
        );
    }

    #[test]
    fn a_refused_first_join_leaves_no_password_or_data_dir() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        NodePassword::load_or_make(&data).unwrap().forget_if_made();
        assert!(!data.exists());
        // A data dir that was there stays.
        std::fs::create_dir(&data).unwrap();
        NodePassword::load_or_make(&data).unwrap().forget_if_made();
        assert!(data.is_dir() && !data.join("node-password").exists());
    }

    #[test]
    fn an_empty_password_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("node-password"), "\n").unwrap();
        let error = NodePassword::load_or_make(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(error.contains("node-password holds no password"), "{error}");
    }

    #[test]
    fn only_a_join_with_an_unknown_outcome_keeps_a_new_password() {
        let server = "https://127.0.0.1:1".to_owned();
        assert!(!was_refused(&join::JoinError::Unreachable {
            server: server.clone(),
            message: "timed out".into(),
        }));
        assert!(!was_refused(&join::JoinError::BadResponse {
            server: server.clone(),
            message: "not JSON".into(),
        }));
        assert!(was_refused(&join::JoinError::Refused {
            server,
            code: 403,
            message: "node password rejected".into(),
        }));
    }
}
