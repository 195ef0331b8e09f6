//! A private containerd: its files under `<data-dir>/containerd`, started as a child, stopped
//! by PID. A system containerd is never touched.
//!
//! Stopping containerd leaves the pods running: each container's shim is in its own process
//! group and outlives containerd, and the next start reconnects to them.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use rustix::process::{Pid, Signal};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use crate::config::ContainerdConfig;
use crate::cri::{self, CriClient};

/// How long containerd gets to answer CRI after start (it takes about a second here).
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long containerd gets to exit after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors starting or stopping a private containerd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `containerd` binary.
    #[error(
        "containerd not found in PATH (install it: apt-get install containerd runc containernetworking-plugins, or pass --containerd-endpoint)"
    )]
    BinaryMissing,
    /// No CNI plugins.
    #[error("CNI plugin {0} not found (install it: apt-get install containernetworking-plugins)")]
    CniMissing(PathBuf),
    /// A directory or file under the data dir could not be made.
    #[error("cannot write {path}: {source} (make it writable, or pick another --data-dir)")]
    Unwritable {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The socket path would not fit a unix socket address.
    #[error("containerd socket path {0} is too long for a unix socket (pick a shorter --data-dir)")]
    SocketPathTooLong(PathBuf),
    /// containerd could not be spawned.
    #[error("cannot start containerd: {0}")]
    Spawn(#[source] std::io::Error),
    /// containerd exited while starting.
    #[error("containerd exited during start-up ({status}); last log lines from {log}: {tail}")]
    Exited {
        /// Its exit status.
        status: String,
        /// Its log file.
        log: PathBuf,
        /// The end of its log.
        tail: String,
    },
    /// containerd did not answer in time.
    #[error("containerd did not answer CRI on {socket} within {timeout:?} (see {log})")]
    NotReady {
        /// The socket.
        socket: PathBuf,
        /// How long we waited.
        timeout: Duration,
        /// Its log file.
        log: PathBuf,
    },
    /// The pod network config could not be written.
    #[error(transparent)]
    Cni(#[from] crate::cni::Error),
}

/// Result alias of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Finds an executable by name in `PATH`, then in the usual system directories (root's
/// `PATH` under some service managers lacks the `sbin` ones).
pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(
            [
                "/usr/local/sbin",
                "/usr/local/bin",
                "/usr/sbin",
                "/usr/bin",
                "/sbin",
                "/bin",
            ]
            .into_iter()
            .map(PathBuf::from),
        )
        .map(|dir| dir.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// A running private containerd, started or adopted by us.
#[derive(Debug)]
pub struct Supervisor {
    config: ContainerdConfig,
    pid: Pid,
    /// Present when we spawned it (so we reap it); absent when adopted from an earlier run.
    child: Option<Child>,
}

impl Supervisor {
    /// Writes the config and CNI conflist, starts containerd (or adopts one that an earlier
    /// run on the same data dir left running) and waits until CRI answers.
    pub async fn start(config: ContainerdConfig) -> Result<(Self, CriClient)> {
        let binary = find_in_path("containerd").ok_or(Error::BinaryMissing)?;
        for plugin in ["bridge", "host-local", "portmap", "loopback"] {
            let p = config.cni_bin_dir.join(plugin);
            if !p.exists() {
                return Err(Error::CniMissing(p));
            }
        }
        if !config.socket_path_fits() {
            return Err(Error::SocketPathTooLong(config.socket()));
        }
        prepare_dirs(&config)?;

        let config = match running_pid(&config) {
            Some(pid) => {
                tracing::info!(
                    pid = pid.as_raw_nonzero().get(),
                    "adopting running private containerd"
                );
                let mut sup = Self {
                    config,
                    pid,
                    child: None,
                };
                match sup.wait_ready(READY_TIMEOUT).await {
                    Ok(client) => return Ok((sup, client)),
                    Err(e) => {
                        // A stuck leftover: replace it rather than fail.
                        tracing::warn!(error = %e, "adopted containerd does not answer; restarting it");
                        sup.stop().await;
                        sup.config
                    }
                }
            }
            None => config,
        };

        // A socket left by a containerd that died would make the new one fail to listen.
        let _ = std::fs::remove_file(config.socket());
        let log_path = config.log_file();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|source| Error::Unwritable {
                path: log_path.clone(),
                source,
            })?;
        let log_err = log.try_clone().map_err(Error::Spawn)?;
        let child = Command::new(&binary)
            .arg("--config")
            .arg(config.config_path())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Its own process group: a Ctrl-C meant for `tug up` must not hit containerd
            // directly; we stop it ourselves, in order.
            .process_group(0)
            .kill_on_drop(false)
            .spawn()
            .map_err(Error::Spawn)?;
        let raw = child.id().and_then(|id| i32::try_from(id).ok());
        let pid = raw.and_then(Pid::from_raw).ok_or_else(|| {
            Error::Spawn(std::io::Error::other(
                "containerd exited before it had a PID",
            ))
        })?;
        write_private(
            &config.pid_file(),
            pid.as_raw_nonzero().get().to_string().as_bytes(),
        )?;
        tracing::info!(pid = pid.as_raw_nonzero().get(), socket = %config.socket().display(), "started private containerd");
        let mut sup = Self {
            config,
            pid,
            child: Some(child),
        };
        match sup.wait_ready(READY_TIMEOUT).await {
            Ok(client) => Ok((sup, client)),
            Err(e) => {
                sup.stop().await;
                Err(e)
            }
        }
    }

    /// The PID of containerd.
    pub fn pid(&self) -> i32 {
        self.pid.as_raw_nonzero().get()
    }

    /// Its configuration.
    pub fn config(&self) -> &ContainerdConfig {
        &self.config
    }

    /// Polls until CRI answers `Version` and `Status` reports the runtime ready.
    async fn wait_ready(&mut self, timeout: Duration) -> Result<CriClient> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(Error::Exited {
                    status: status.to_string(),
                    log: self.config.log_file(),
                    tail: log_tail(&self.config.log_file()),
                });
            }
            if let Ok(client) = ready_client(&self.config.socket()).await {
                return Ok(client);
            }
            if Instant::now() >= deadline {
                return Err(Error::NotReady {
                    socket: self.config.socket(),
                    timeout,
                    log: self.config.log_file(),
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops containerd: SIGTERM by PID, SIGKILL after a grace period. Pods keep running.
    pub async fn stop(&mut self) {
        let pid = self.pid();
        if rustix::process::kill_process(self.pid, Signal::TERM).is_err() {
            // Already gone.
            self.reap().await;
            let _ = std::fs::remove_file(self.config.pid_file());
            return;
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while self.alive().await {
            if Instant::now() >= deadline {
                tracing::warn!(pid, "containerd ignored SIGTERM; killing it");
                let _ = rustix::process::kill_process(self.pid, Signal::KILL);
                // Bounded: SIGKILL cannot be ignored, but do not wait forever on a D-state.
                let kill_deadline = Instant::now() + Duration::from_secs(5);
                while self.alive().await && Instant::now() < kill_deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_file(self.config.pid_file());
        tracing::info!(pid, "stopped private containerd");
    }

    async fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => is_our_containerd(self.pid, &self.config),
        }
    }

    async fn reap(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = tokio::time::timeout(Duration::from_secs(1), child.wait()).await;
        }
    }
}

/// Connects and checks that the runtime is ready (`Version` plus `Status`).
async fn ready_client(socket: &Path) -> Result<CriClient, ()> {
    let client = CriClient::connect(socket).await.map_err(|_| ())?;
    let mut rt = client.runtime.clone();
    let t = Duration::from_secs(2);
    rt.version(cri::request(crate::cri::v1::VersionRequest::default(), t))
        .await
        .map_err(|_| ())?;
    let status = rt
        .status(cri::request(crate::cri::v1::StatusRequest::default(), t))
        .await
        .map_err(|_| ())?
        .into_inner();
    let runtime_ready = status.status.is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.r#type == "RuntimeReady" && c.status)
    });
    if runtime_ready { Ok(client) } else { Err(()) }
}

/// Creates the directory tree (0700 at the top) and writes config.toml and the conflist.
fn prepare_dirs(config: &ContainerdConfig) -> Result<()> {
    let unwritable = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Unwritable { path, source }
    };
    std::fs::create_dir_all(&config.dir).map_err(unwritable(&config.dir))?;
    std::fs::set_permissions(&config.dir, std::fs::Permissions::from_mode(0o700))
        .map_err(unwritable(&config.dir))?;
    for dir in [config.root(), config.state()] {
        std::fs::create_dir_all(&dir).map_err(unwritable(&dir))?;
    }
    write_private(&config.config_path(), config.render().as_bytes())?;
    config
        .network
        .write(&config.cni_conf_dir(), &config.ipam_dir())?;
    Ok(())
}

fn write_private(path: &Path, data: &[u8]) -> Result<()> {
    std::fs::write(path, data).map_err(|source| Error::Unwritable {
        path: path.to_path_buf(),
        source,
    })
}

/// The PID in the pid file, if that process is still our containerd (PIDs get reused).
pub(crate) fn running_pid(config: &ContainerdConfig) -> Option<Pid> {
    let text = std::fs::read_to_string(config.pid_file()).ok()?;
    let pid = Pid::from_raw(text.trim().parse().ok()?)?;
    is_our_containerd(pid, config).then_some(pid)
}

/// Whether `pid` is a containerd started with this config file.
fn is_our_containerd(pid: Pid, config: &ContainerdConfig) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", pid.as_raw_nonzero().get())) else {
        return false;
    };
    // A zombie has an empty cmdline: not alive for our purposes.
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let config_path = config.config_path();
    let ours = config_path.as_os_str().as_encoded_bytes();
    args.first().is_some_and(|a| a.ends_with(b"containerd")) && args.contains(&ours)
}

/// The last lines of containerd's log, for an error message.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(3).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// Stops the containerd an earlier run left running under this config, if any.
pub(crate) async fn stop_leftover(config: &ContainerdConfig) {
    if let Some(pid) = running_pid(config) {
        let mut sup = Supervisor {
            config: config.clone(),
            pid,
            child: None,
        };
        sup.stop().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh() {
        assert!(find_in_path("sh").is_some());
        assert!(find_in_path("no-such-binary-tugboat").is_none());
    }

    #[test]
    fn unwritable_dir_is_a_clear_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").expect("write");
        // A data dir below a regular file cannot be created, even as root.
        let config = ContainerdConfig::new(&file.join("data"));
        let err = prepare_dirs(&config).expect_err("unwritable");
        let msg = err.to_string();
        assert!(msg.contains("pick another --data-dir"), "{msg}");
        assert!(msg.contains("file/data/containerd"), "{msg}");
    }

    #[test]
    fn prepare_writes_config_and_conflist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ContainerdConfig::new(dir.path());
        prepare_dirs(&config).expect("prepare");
        let text = std::fs::read_to_string(config.config_path()).expect("config");
        assert!(text.contains("restrict_oom_score_adj = true"));
        assert!(config.cni_conf_dir().join("10-tugboat.conflist").is_file());
        let mode = std::fs::metadata(&config.dir)
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    #[test]
    fn a_stale_pid_file_is_not_adopted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = ContainerdConfig::new(dir.path());
        prepare_dirs(&config).expect("prepare");
        // PID 1 exists but is not our containerd.
        std::fs::write(config.pid_file(), "1").expect("write");
        assert!(running_pid(&config).is_none());
        std::fs::write(config.pid_file(), "garbage").expect("write");
        assert!(running_pid(&config).is_none());
    }
}
