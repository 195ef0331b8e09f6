//! The pod network: a CNI conflist for containerd's CRI plugin, and its teardown.
//!
//! A bridge with host-local IPAM and portmap. The loopback plugin is not in the list:
//! containerd's CRI sets up each sandbox's `lo` itself with the `loopback` binary from the
//! same `bin_dir`, so it must be installed there but not configured.

use std::path::{Path, PathBuf};

use tokio::process::Command;

/// Errors writing or removing the pod network.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The conflist could not be written.
    #[error("cannot write CNI config {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `ip link delete` could not be run or failed.
    #[error("cannot delete bridge {bridge}: {message}")]
    DeleteBridge {
        /// The bridge.
        bridge: String,
        /// What `ip` said.
        message: String,
    },
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The pod network of one node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkConfig {
    /// CNI network name (also the conflist file name).
    pub name: String,
    /// The Linux bridge (at most 15 characters).
    pub bridge: String,
    /// The pod subnet; the bridge takes its first address as gateway.
    pub subnet: String,
}

impl Default for NetworkConfig {
    /// `tug0` with 10.88.0.0/16: not used by anything on these machines (their only routes are
    /// the uplink's), and clear of the service CIDR 10.96.0.0/12.
    fn default() -> Self {
        Self {
            name: "tugboat".to_string(),
            bridge: "tug0".to_string(),
            subnet: "10.88.0.0/16".to_string(),
        }
    }
}

impl NetworkConfig {
    /// The conflist JSON.
    pub fn conflist(&self, ipam_dir: &Path) -> serde_json::Value {
        serde_json::json!({
            "cniVersion": "0.4.0",
            "name": self.name,
            "plugins": [
                {
                    "type": "bridge",
                    "bridge": self.bridge,
                    "isGateway": true,
                    // No masquerading: pods have nowhere to go but this host and each other,
                    // and it would leave iptables rules behind for `reset` to find.
                    "ipMasq": false,
                    "hairpinMode": true,
                    "ipam": {
                        "type": "host-local",
                        "ranges": [[{ "subnet": self.subnet }]],
                        "routes": [{ "dst": "0.0.0.0/0" }],
                        "dataDir": ipam_dir,
                    }
                },
                {
                    "type": "portmap",
                    "capabilities": { "portMappings": true }
                }
            ]
        })
    }

    /// Writes the conflist as `<conf_dir>/10-<name>.conflist`.
    pub fn write(&self, conf_dir: &Path, ipam_dir: &Path) -> Result<PathBuf> {
        let path = conf_dir.join(format!("10-{}.conflist", self.name));
        let err = |source| Error::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(conf_dir).map_err(err)?;
        std::fs::create_dir_all(ipam_dir).map_err(err)?;
        let text = serde_json::to_string_pretty(&self.conflist(ipam_dir))
            .map_err(|e| err(std::io::Error::other(e)))?;
        std::fs::write(&path, text).map_err(err)?;
        Ok(path)
    }

    /// Deletes the bridge; a bridge that is not there is fine.
    pub async fn delete_bridge(&self) -> Result<()> {
        if !Path::new("/sys/class/net").join(&self.bridge).exists() {
            return Ok(());
        }
        let out = Command::new("ip")
            .args(["link", "delete", &self.bridge])
            .output()
            .await
            .map_err(|e| Error::DeleteBridge {
                bridge: self.bridge.clone(),
                message: e.to_string(),
            })?;
        if !out.status.success() {
            return Err(Error::DeleteBridge {
                bridge: self.bridge.clone(),
                message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        tracing::info!(bridge = %self.bridge, "deleted pod bridge");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conflist_has_bridge_ipam_and_portmap() {
        let net = NetworkConfig::default();
        let v = net.conflist(Path::new("/d/ipam"));
        assert_eq!(v["name"], "tugboat");
        let plugins = v["plugins"].as_array().expect("plugins");
        assert_eq!(plugins[0]["type"], "bridge");
        assert_eq!(plugins[0]["bridge"], "tug0");
        assert_eq!(plugins[0]["isGateway"], true);
        assert_eq!(plugins[0]["ipam"]["type"], "host-local");
        assert_eq!(plugins[0]["ipam"]["ranges"][0][0]["subnet"], "10.88.0.0/16");
        assert_eq!(plugins[0]["ipam"]["dataDir"], "/d/ipam");
        assert_eq!(plugins[1]["type"], "portmap");
        assert_eq!(plugins[1]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn write_puts_one_conflist_in_the_conf_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let net = NetworkConfig {
            name: "t1".into(),
            bridge: "tugt1".into(),
            subnet: "10.89.1.0/24".into(),
        };
        let path = net
            .write(&dir.path().join("net.d"), &dir.path().join("ipam"))
            .expect("write");
        assert_eq!(path, dir.path().join("net.d/10-t1.conflist"));
        let v: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
        assert_eq!(v["plugins"][0]["bridge"], "tugt1");
        assert!(dir.path().join("ipam").is_dir());
    }
}
