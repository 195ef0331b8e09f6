//! A private etcd server for tests: Debian's `etcd` binary, one member, free loopback ports,
//! data and log in a temporary directory, killed (by PID) and removed on drop. [`EtcdCluster`]
//! is the same with several members, one process and data dir each.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use tugboat_testkit::etcd::{EtcdProcess, etcd_or_skip};
//! if etcd_or_skip().is_none() {
//!     return Ok(()); // etcd not installed and not on CI: the test skips itself
//! }
//! let etcd = EtcdProcess::spawn()?;
//! let endpoint = etcd.endpoint(); // "http://127.0.0.1:PORT"
//! # let _ = endpoint;
//! # Ok(())
//! # }
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tempfile::TempDir;

use crate::net::free_port;

/// Where Debian's `etcd-server` package installs the binary.
const DEBIAN_ETCD: &str = "/usr/bin/etcd";

/// How long `spawn` waits for etcd to answer its health check.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);

/// How many times `spawn` picks new ports when etcd dies at startup (a port taken meanwhile).
const SPAWN_ATTEMPTS: usize = 3;

/// Big enough for a value of the store's 1.5 MiB limit plus the request around it; etcd's
/// default (1.5 MiB for the whole request) is not.
const MAX_REQUEST_BYTES: u64 = 2 * 1024 * 1024;

/// A small backend quota: tests never need much, and a full disk should not be reached first.
const QUOTA_BACKEND_BYTES: u64 = 512 * 1024 * 1024;

/// The path of the `etcd` binary, if one is installed (Debian's, else the first on `PATH`).
pub fn etcd_binary() -> Option<PathBuf> {
    let debian = Path::new(DEBIAN_ETCD);
    if debian.is_file() {
        return Some(debian.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|candidate| candidate.is_file())
}

/// The `etcd` binary, or `None` after printing why the calling test skips.
///
/// # Panics
///
/// When etcd is missing and the environment variable `CI` is set: CI must never skip silently.
pub fn etcd_or_skip() -> Option<PathBuf> {
    let found = etcd_binary();
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("etcd is not installed but CI is set: install it (apt-get install etcd-server)");
        }
        eprintln!("skipping: etcd not installed (apt-get install etcd-server)");
    }
    found
}

/// A default etcd for a test, or `None` (after saying so) when etcd is not installed and the
/// test should skip; see [`etcd_or_skip`] for the CI rule.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// let Some(etcd) = tugboat_testkit::etcd::spawn_etcd()? else {
///     return Ok(());
/// };
/// # let _ = etcd;
/// # Ok(())
/// # }
/// ```
pub fn spawn_etcd() -> anyhow::Result<Option<EtcdProcess>> {
    if etcd_or_skip().is_none() {
        return Ok(None);
    }
    EtcdProcess::spawn().map(Some)
}

/// Settings of an etcd to spawn; [`EtcdProcess::spawn`] uses the defaults.
#[derive(Clone, Debug)]
pub struct EtcdBuilder {
    max_request_bytes: u64,
    quota_backend_bytes: u64,
}

impl Default for EtcdBuilder {
    fn default() -> Self {
        EtcdBuilder {
            max_request_bytes: MAX_REQUEST_BYTES,
            quota_backend_bytes: QUOTA_BACKEND_BYTES,
        }
    }
}

impl EtcdBuilder {
    /// etcd's `--max-request-bytes` (default here: 2 MiB, enough for a 1.5 MiB value).
    pub fn max_request_bytes(mut self, bytes: u64) -> Self {
        self.max_request_bytes = bytes;
        self
    }

    /// etcd's `--quota-backend-bytes` (default here: 512 MiB).
    pub fn quota_backend_bytes(mut self, bytes: u64) -> Self {
        self.quota_backend_bytes = bytes;
        self
    }

    /// Start etcd on free loopback ports and wait until it answers its health check.
    pub fn spawn(self) -> anyhow::Result<EtcdProcess> {
        let binary =
            etcd_binary().context("etcd is not installed (apt-get install etcd-server)")?;
        let mut last_error = None;
        for _ in 0..SPAWN_ATTEMPTS {
            match EtcdProcess::spawn_once(&binary, &self) {
                Ok(etcd) => return Ok(etcd),
                Err(SpawnError::Retryable(error)) => last_error = Some(error),
                Err(SpawnError::Fatal(error)) => return Err(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("etcd did not start"))
            .context(format!("etcd failed to start {SPAWN_ATTEMPTS} times")))
    }
}

/// A single-member etcd owned by the test that spawned it.
#[derive(Debug)]
pub struct EtcdProcess {
    /// `None` once killed.
    child: Option<Child>,
    binary: PathBuf,
    settings: EtcdBuilder,
    client_port: u16,
    peer_port: u16,
    /// The member's `--name`.
    name: String,
    /// `--initial-cluster`: every member's `name=peer URL` (only read on the first start).
    initial_cluster: String,
    // Dropped after the process is killed (`Drop` runs first), which removes data and log.
    dir: TempDir,
}

impl EtcdProcess {
    /// Settings for an etcd other than the default one.
    pub fn builder() -> EtcdBuilder {
        EtcdBuilder::default()
    }

    /// Start etcd with default settings on free loopback ports and wait until it answers.
    pub fn spawn() -> anyhow::Result<Self> {
        Self::builder().spawn()
    }

    fn spawn_once(binary: &Path, settings: &EtcdBuilder) -> Result<Self, SpawnError> {
        let fatal = SpawnError::Fatal;
        let dir = tempfile::Builder::new()
            .prefix("tugboat-etcd-")
            .tempdir()
            .context("creating a temporary directory for etcd")
            .map_err(fatal)?;
        let client_port = free_port()
            .context("finding a free client port")
            .map_err(fatal)?;
        let peer_port = free_port()
            .context("finding a free peer port")
            .map_err(fatal)?;
        let name = "tugboat-test".to_owned();
        let initial_cluster = format!("{name}=http://127.0.0.1:{peer_port}");
        let mut etcd = EtcdProcess {
            child: None,
            binary: binary.to_path_buf(),
            settings: settings.clone(),
            client_port,
            peer_port,
            name,
            initial_cluster,
            dir,
        };
        // On failure, dropping `etcd` kills the process (if alive) and removes its directory.
        etcd.start()?;
        Ok(etcd)
    }

    /// Start the process on this instance's ports and data, and wait until it answers.
    fn start(&mut self) -> Result<(), SpawnError> {
        self.launch()?;
        self.wait_until_healthy()
    }

    /// Start the process on this instance's ports and data, without waiting: a cluster member
    /// only answers once a quorum of its peers runs too.
    fn launch(&mut self) -> Result<(), SpawnError> {
        let fatal = SpawnError::Fatal;
        let client_url = format!("http://127.0.0.1:{}", self.client_port);
        let peer_url = format!("http://127.0.0.1:{}", self.peer_port);
        let log_path = self.log_path();
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("opening {}", log_path.display()))
            .map_err(fatal)?;
        let log_err = log
            .try_clone()
            .context("duplicating the log file handle")
            .map_err(fatal)?;

        // The --initial-* flags only matter the first time; a restart reuses the data dir.
        let child = Command::new(&self.binary)
            .arg(format!("--name={}", self.name))
            .arg(format!(
                "--data-dir={}",
                self.dir.path().join("data").display()
            ))
            .arg(format!("--listen-client-urls={client_url}"))
            .arg(format!("--advertise-client-urls={client_url}"))
            .arg(format!("--listen-peer-urls={peer_url}"))
            .arg(format!("--initial-advertise-peer-urls={peer_url}"))
            .arg(format!("--initial-cluster={}", self.initial_cluster))
            .arg("--initial-cluster-state=new")
            .arg(format!(
                "--max-request-bytes={}",
                self.settings.max_request_bytes
            ))
            .arg(format!(
                "--quota-backend-bytes={}",
                self.settings.quota_backend_bytes
            ))
            .arg("--logger=zap")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("starting {}", self.binary.display()))
            .map_err(fatal)?;
        self.child = Some(child);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    fn wait_until_healthy(&mut self) -> Result<(), SpawnError> {
        let log_path = &self.log_path();
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.client_port));
        loop {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                // Most likely a port was taken between `free_port` and etcd's bind.
                return Err(SpawnError::Retryable(anyhow::anyhow!(
                    "etcd exited at startup with {status}; log:\n{}",
                    log_tail(log_path)
                )));
            }
            if is_healthy(address) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(SpawnError::Fatal(anyhow::anyhow!(
                    "etcd did not become healthy on {address} within {STARTUP_TIMEOUT:?}; log:\n{}",
                    log_tail(log_path)
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill etcd if it runs, then start it again on the same ports with the same data, and
    /// wait until it answers: a restarted server, as clients see it.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.start().map_err(|error| match error {
            SpawnError::Retryable(error) | SpawnError::Fatal(error) => {
                error.context("restarting etcd")
            }
        })
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.client_port)
    }

    /// The etcd process's PID, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The temporary directory holding `data/` and `etcd.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Freeze etcd (SIGSTOP to its PID): connections stay open but nothing answers, as in a
    /// network partition. [`EtcdProcess::resume`] undoes it; drop kills it either way.
    /// Returns once every etcd thread is stopped: `kill` only queues the signal, and a thread
    /// already running could otherwise still answer one more request.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("STOP")?;
        let pid = self.pid().context("etcd is not running")?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid) {
            anyhow::ensure!(
                Instant::now() < deadline,
                "etcd {pid} did not stop within 5 s of SIGSTOP"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        Ok(())
    }

    /// Let a paused etcd run again (SIGCONT to its PID).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("CONT")
    }

    fn signal(&self, name: &str) -> anyhow::Result<()> {
        let pid = self.pid().context("etcd is not running")?;
        // `kill(1)` rather than libc: this workspace denies unsafe code.
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(pid.to_string())
            .status()
            .with_context(|| format!("running kill -{name} {pid}"))?;
        anyhow::ensure!(status.success(), "kill -{name} {pid} failed with {status}");
        Ok(())
    }

    /// Kill etcd now (SIGKILL to its PID) and reap it; the data directory stays until drop.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing etcd")?;
            child.wait().context("reaping etcd")?;
        }
        Ok(())
    }
}

/// Whether every thread of `pid` is in the stopped state (`T` in `/proc/<pid>/task/*/stat`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat"))
            // The state follows the parenthesised command name, which may itself hold spaces.
            .ok()
            .and_then(|stat| {
                let after_name = stat.rsplit_once(')')?.1;
                after_name
                    .split_whitespace()
                    .next()
                    .map(|state| state == "T")
            })
            .unwrap_or(false)
    })
}

impl Drop for EtcdProcess {
    fn drop(&mut self) {
        if let Err(error) = self.kill() {
            eprintln!("tugboat-testkit: {error:#}");
        }
    }
}

/// A `members`-member etcd cluster for a test, or `None` (after saying so) when etcd is not
/// installed; see [`etcd_or_skip`] for the CI rule.
pub fn spawn_etcd_cluster(members: usize) -> anyhow::Result<Option<EtcdCluster>> {
    if etcd_or_skip().is_none() {
        return Ok(None);
    }
    EtcdCluster::spawn(members).map(Some)
}

/// An etcd cluster on loopback: each member its own process, free ports and data dir, as on
/// separate machines. Members are killed (by PID) and removed on drop.
///
/// ```no_run
/// # fn main() -> anyhow::Result<()> {
/// use tugboat_testkit::etcd::EtcdCluster;
/// let mut cluster = EtcdCluster::spawn(3)?;
/// let flag = cluster.endpoints().join(","); // for `tug apiserver --etcd`
/// let leader = cluster.leader()?;
/// cluster.member_mut(leader).kill()?; // the other two elect a new leader
/// # let _ = flag;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<EtcdProcess>,
}

impl EtcdCluster {
    /// Start `members` members with default settings and wait until each answers its health
    /// check (which needs a leader, so a quorum).
    pub fn spawn(members: usize) -> anyhow::Result<EtcdCluster> {
        anyhow::ensure!(members > 0, "an etcd cluster needs a member");
        let binary =
            etcd_binary().context("etcd is not installed (apt-get install etcd-server)")?;
        let mut last_error = None;
        for _ in 0..SPAWN_ATTEMPTS {
            match Self::spawn_once(&binary, members) {
                Ok(cluster) => return Ok(cluster),
                Err(SpawnError::Retryable(error)) => last_error = Some(error),
                Err(SpawnError::Fatal(error)) => return Err(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("the etcd cluster did not start"))
            .context(format!(
                "the etcd cluster failed to start {SPAWN_ATTEMPTS} times"
            )))
    }

    fn spawn_once(binary: &Path, count: usize) -> Result<EtcdCluster, SpawnError> {
        let fatal = SpawnError::Fatal;
        let mut ports = Vec::with_capacity(count);
        for _ in 0..count {
            let client = free_port()
                .context("finding a free client port")
                .map_err(fatal)?;
            let peer = free_port()
                .context("finding a free peer port")
                .map_err(fatal)?;
            ports.push((client, peer));
        }
        let initial_cluster = ports
            .iter()
            .enumerate()
            .map(|(index, (_, peer))| format!("member-{index}=http://127.0.0.1:{peer}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut cluster = EtcdCluster {
            members: Vec::with_capacity(count),
        };
        // From here on, dropping `cluster` kills whatever was started.
        for (index, (client_port, peer_port)) in ports.into_iter().enumerate() {
            let dir = tempfile::Builder::new()
                .prefix("tugboat-etcd-")
                .tempdir()
                .context("creating a temporary directory for etcd")
                .map_err(fatal)?;
            let mut member = EtcdProcess {
                child: None,
                binary: binary.to_path_buf(),
                settings: EtcdBuilder::default(),
                client_port,
                peer_port,
                name: format!("member-{index}"),
                initial_cluster: initial_cluster.clone(),
                dir,
            };
            member.launch()?;
            cluster.members.push(member);
        }
        for member in &mut cluster.members {
            member.wait_until_healthy()?;
        }
        Ok(cluster)
    }

    /// Every member's client URL, `http://127.0.0.1:PORT`, in member order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(EtcdProcess::endpoint).collect()
    }

    /// How many members there are (running or not).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether there are no members (never, once spawned).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Member `index` (panics when out of range, as indexing does).
    pub fn member(&self, index: usize) -> &EtcdProcess {
        &self.members[index]
    }

    /// Member `index`, to kill, pause or restart it.
    pub fn member_mut(&mut self, index: usize) -> &mut EtcdProcess {
        &mut self.members[index]
    }

    /// The index of the member that is the Raft leader, as the running members report it
    /// (`/v3/maintenance/status`); an error when none of them knows a leader.
    pub fn leader(&self) -> anyhow::Result<usize> {
        let statuses: Vec<Option<MemberStatus>> = self
            .members
            .iter()
            .map(|member| {
                member.pid()?;
                member_status(SocketAddr::from((Ipv4Addr::LOCALHOST, member.client_port)))
            })
            .collect();
        let leader_id = statuses
            .iter()
            .flatten()
            .map(|status| status.leader)
            .find(|leader| *leader != 0)
            .context("no running etcd member knows a leader")?;
        statuses
            .iter()
            .position(|status| status.as_ref().is_some_and(|s| s.member == leader_id))
            .with_context(|| format!("the leader {leader_id:x} is not a running member"))
    }

    /// Wait (up to `timeout`) until the running members agree on a leader; its index.
    pub fn wait_for_leader(&self, timeout: Duration) -> anyhow::Result<usize> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.leader() {
                Ok(leader) => return Ok(leader),
                Err(error) if Instant::now() >= deadline => {
                    return Err(error.context(format!("no etcd leader within {timeout:?}")));
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
}

/// What one member says of itself and of the leader (Raft member IDs).
struct MemberStatus {
    member: u64,
    leader: u64,
}

/// `POST /v3/maintenance/status` (etcd's JSON gateway) on the member at `address`.
fn member_status(address: SocketAddr) -> Option<MemberStatus> {
    let timeout = Duration::from_millis(500);
    let mut stream = TcpStream::connect_timeout(&address, timeout).ok()?;
    stream.set_read_timeout(Some(timeout)).ok()?;
    stream.set_write_timeout(Some(timeout)).ok()?;
    stream
        .write_all(
            b"POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        )
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    let status: serde_json::Value = serde_json::from_str(body).ok()?;
    // The gateway writes 64-bit integers as JSON strings.
    let id = |value: &serde_json::Value| value.as_str()?.parse::<u64>().ok();
    Some(MemberStatus {
        member: id(&status["header"]["member_id"])?,
        leader: id(&status["leader"]).unwrap_or(0),
    })
}

/// Why one start attempt failed, and whether new ports may help.
enum SpawnError {
    Retryable(anyhow::Error),
    Fatal(anyhow::Error),
}

/// Whether etcd at `address` answers `GET /health` with `"health":"true"`.
fn is_healthy(address: SocketAddr) -> bool {
    let attempt = || -> std::io::Result<bool> {
        let timeout = Duration::from_millis(500);
        let mut stream = TcpStream::connect_timeout(&address, timeout)?;
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.contains("\"health\":\"true\""))
    };
    attempt().unwrap_or(false)
}

/// The last lines of etcd's log, for error messages.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spawned_etcd_answers_and_is_gone_after_drop() {
        if etcd_or_skip().is_none() {
            return;
        }
        let etcd = EtcdProcess::spawn().unwrap();
        let endpoint = etcd.endpoint();
        let port: u16 = endpoint
            .strip_prefix("http://127.0.0.1:")
            .unwrap()
            .parse()
            .unwrap();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        assert!(is_healthy(address));
        let pid = etcd.pid().unwrap();
        let dir = etcd.dir().to_path_buf();
        assert!(dir.join("etcd.log").is_file());

        drop(etcd);
        assert!(!is_healthy(address), "etcd still answers after drop");
        assert!(!dir.exists(), "temporary directory left behind");
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "etcd process {pid} still exists"
        );
    }

    #[test]
    fn restart_serves_again_on_the_same_endpoint() {
        if etcd_or_skip().is_none() {
            return;
        }
        let mut etcd = EtcdProcess::builder()
            .max_request_bytes(1024 * 1024)
            .spawn()
            .unwrap();
        let endpoint = etcd.endpoint();
        let first_pid = etcd.pid().unwrap();
        etcd.restart().unwrap();
        assert_eq!(etcd.endpoint(), endpoint);
        assert_ne!(etcd.pid().unwrap(), first_pid);
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, etcd.client_port));
        assert!(is_healthy(address));
        let log = std::fs::read_to_string(etcd.dir().join("etcd.log")).unwrap();
        assert!(log.contains("1048576"), "the setting did not reach etcd");
    }

    #[test]
    fn paused_etcd_does_not_answer_until_resumed() {
        if etcd_or_skip().is_none() {
            return;
        }
        let etcd = EtcdProcess::spawn().unwrap();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, etcd.client_port));
        etcd.pause().unwrap();
        assert!(!is_healthy(address), "a paused etcd answered");
        etcd.resume().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !is_healthy(address) {
            assert!(
                Instant::now() < deadline,
                "etcd did not answer after resume"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn kill_stops_serving_but_keeps_the_data_dir() {
        if etcd_or_skip().is_none() {
            return;
        }
        let mut etcd = EtcdProcess::spawn().unwrap();
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, etcd.client_port));
        etcd.kill().unwrap();
        assert_eq!(etcd.pid(), None);
        assert!(!is_healthy(address));
        assert!(etcd.dir().join("data").is_dir());
    }

    #[test]
    fn a_three_member_cluster_elects_a_new_leader_when_the_leader_dies() {
        if etcd_or_skip().is_none() {
            return;
        }
        let mut cluster = EtcdCluster::spawn(3).unwrap();
        assert_eq!(cluster.endpoints().len(), 3);
        let leader = cluster.wait_for_leader(Duration::from_secs(10)).unwrap();
        let log = std::fs::read_to_string(cluster.member(0).dir().join("etcd.log")).unwrap();
        assert!(
            log.contains("member-2"),
            "the members do not know each other"
        );
        cluster.member_mut(leader).kill().unwrap();
        let next = cluster.wait_for_leader(Duration::from_secs(10)).unwrap();
        assert_ne!(next, leader);
        for (index, endpoint) in cluster.endpoints().iter().enumerate() {
            let port: u16 = endpoint.rsplit(':').next().unwrap().parse().unwrap();
            let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
            assert_eq!(is_healthy(address), index != leader, "member {index}");
        }
        // The old leader rejoins with its data (restart waits until it answers).
        cluster.member_mut(leader).restart().unwrap();
        cluster.wait_for_leader(Duration::from_secs(10)).unwrap();
    }
}
