//! `tug up` in a temporary data dir on a free loopback port.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tempfile::TempDir;

use crate::kubectl::Kubectl;
use crate::process::{kill_and_reap, terminate};
use crate::tug::tug_binary;

/// How long `tug up` may take to answer `/readyz`.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// How much longer `tug up` may take per simulated node (registration, first Lease and status).
pub const STARTUP_PER_NODE: Duration = Duration::from_millis(40);

/// How long `tug` may take to stop after SIGTERM before it gets SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// How many times a start picks a new port when `tug` exits at startup (port taken meanwhile).
const START_ATTEMPTS: usize = 3;

/// What `tug up` prints once it serves.
pub const LISTENING_LINE: &str = "Tugboat API server listening on https://";

/// One `tug up` process and its data dir.
pub struct Cluster {
    dir: TempDir,
    /// The address `tug` listens on (loopback unless a test needs another host to reach it).
    listen_ip: Ipv4Addr,
    port: u16,
    /// `sim` or `containerd`.
    runtime: &'static str,
    /// Extra `tug up` flags (kept across restarts).
    extra_args: Vec<String>,
    process: Option<TugProcess>,
}

struct TugProcess {
    child: Child,
    /// Stops `tug` (by PID) and removes the data dir if this process dies without dropping us.
    watchdog: Option<Watchdog>,
}

pub(crate) struct Watchdog {
    child: Child,
    /// Held open: its end-of-file is the watchdog's signal.
    _stdin: ChildStdin,
}

impl Cluster {
    /// Start `tug up` in a new temporary data dir on a free loopback port and wait until it is
    /// ready.
    pub fn start() -> anyhow::Result<Cluster> {
        Self::start_with(false, "sim", &[])
    }

    /// Like [`Cluster::start`], with extra `tug up` flags, e.g. `["--hpa-sync-period=1s"]`.
    pub fn start_with_args(args: &[&str]) -> anyhow::Result<Cluster> {
        Self::start_with(false, "sim", args)
    }

    /// Like [`Cluster::start`], with real containers on a private containerd (needs root).
    pub fn start_containerd() -> anyhow::Result<Cluster> {
        Self::start_with(false, "containerd", &[])
    }

    /// Like [`Cluster::start_containerd`], with extra `tug up` flags.
    pub fn start_containerd_with_args(args: &[&str]) -> anyhow::Result<Cluster> {
        Self::start_with(false, "containerd", args)
    }

    /// Like [`Cluster::start_containerd_with_args`], listening on `listen_ip` (an address of
    /// this machine) instead of loopback, so that nodes in other network namespaces reach it.
    pub fn start_containerd_listening_on(
        listen_ip: Ipv4Addr,
        args: &[&str],
    ) -> anyhow::Result<Cluster> {
        Self::start_on(listen_ip, false, "containerd", args)
    }

    fn start_with(
        remove_dir_on_orphan: bool,
        runtime: &'static str,
        args: &[&str],
    ) -> anyhow::Result<Cluster> {
        Self::start_on(Ipv4Addr::LOCALHOST, remove_dir_on_orphan, runtime, args)
    }

    fn start_on(
        listen_ip: Ipv4Addr,
        remove_dir_on_orphan: bool,
        runtime: &'static str,
        args: &[&str],
    ) -> anyhow::Result<Cluster> {
        let dir = tempfile::Builder::new()
            .prefix("tugboat-e2e-")
            .tempdir()
            .context("creating a temporary directory")?;
        let mut cluster = Cluster {
            dir,
            listen_ip,
            port: 0,
            runtime,
            extra_args: args.iter().map(|a| (*a).to_owned()).collect(),
            process: None,
        };
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            cluster.port = tugboat_testkit::net::free_port().context("finding a free port")?;
            match cluster.spawn(remove_dir_on_orphan) {
                Ok(()) => return Ok(cluster),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error
            .unwrap_or_else(|| anyhow::anyhow!("tug did not start"))
            .context(format!("tug up failed to start {START_ATTEMPTS} times")))
    }

    /// Start `tug up` on this cluster's port and data dir and wait until `/readyz` says ok.
    fn spawn(&mut self, remove_dir_on_orphan: bool) -> anyhow::Result<()> {
        anyhow::ensure!(self.process.is_none(), "tug is already running");
        let binary = tug_binary()?;
        let log_path = self.log_path();
        let log =
            File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
        let log_err = log.try_clone().context("duplicating the log handle")?;
        let child = Command::new(&binary)
            .arg("up")
            .arg("--data-dir")
            .arg(self.data_dir())
            .arg("--listen")
            .arg(SocketAddr::from((self.listen_ip, self.port)).to_string())
            // Simulated nodes unless asked: most tests drive the API, many clusters at once.
            .args(["--runtime", self.runtime])
            // The agents' logs/exec endpoint: a free port (clusters run side by side).
            .args(["--kubelet-port", "0"])
            .args(&self.extra_args)
            .env("TUG_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let orphan_dir = remove_dir_on_orphan.then(|| self.dir.path().to_path_buf());
        let watchdog = Watchdog::spawn(child.id(), orphan_dir.as_deref());
        self.process = Some(TugProcess {
            child,
            watchdog: watchdog.ok(),
        });
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let nodes = self.expected_nodes();
        let timeout = STARTUP_TIMEOUT + STARTUP_PER_NODE * u32::try_from(nodes).unwrap_or(u32::MAX);
        // Thousands of nodes are a large list: ask less often.
        let poll = if nodes > 100 {
            Duration::from_millis(500)
        } else {
            Duration::from_millis(50)
        };
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(process) = self.process.as_mut()
                && let Some(status) = process.child.try_wait().context("checking tug")?
            {
                self.stop_quietly();
                anyhow::bail!("tug up exited at startup with {status}:\n{}", self.log());
            }
            // The line comes after the kubeconfig and PKI exist; on a restart the files are old.
            // `/readyz` speaks for the API server only: a test's first `get nodes` also wants
            // the nodes registered and Ready.
            if self.log().contains(LISTENING_LINE)
                && self.readyz().is_ok_and(|ok| ok)
                && self.ready_nodes().is_ok_and(|ready| ready >= nodes)
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop_quietly();
                anyhow::bail!(
                    "tug up did not answer /readyz with {nodes} nodes Ready within {timeout:?}:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(poll);
        }
    }

    /// How many nodes `tug up` runs: `--nodes N` (simulated), else one.
    fn expected_nodes(&self) -> usize {
        self.extra_args
            .iter()
            .position(|a| a == "--nodes")
            .and_then(|i| self.extra_args.get(i + 1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(1)
    }

    /// How many nodes have Ready=True, read with the admin token.
    fn ready_nodes(&self) -> anyhow::Result<usize> {
        let ca = std::fs::read(self.data_dir().join("pki").join("ca.crt"))
            .context("reading the cluster CA")?;
        let tokens = std::fs::read_to_string(self.data_dir().join("tokens.csv"))
            .context("reading tokens.csv")?;
        let token = tokens
            .lines()
            .find(|line| line.split(',').nth(1) == Some("admin"))
            .and_then(|line| line.split(',').next())
            .context("no admin token")?;
        let response = https_request(self.listen_ip, self.port, &ca, "/api/v1/nodes", Some(token))?;
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        let nodes: serde_json::Value = serde_json::from_str(body).context("a NodeList")?;
        let ready = nodes["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter(|node| {
                        node["status"]["conditions"]
                            .as_array()
                            .is_some_and(|conditions| {
                                conditions
                                    .iter()
                                    .any(|c| c["type"] == "Ready" && c["status"] == "True")
                            })
                    })
                    .count()
            })
            .unwrap_or(0);
        Ok(ready)
    }

    /// Whether `GET /readyz` (HTTPS, verified against the cluster CA) answers `ok`.
    pub fn readyz(&self) -> anyhow::Result<bool> {
        let ca = std::fs::read(self.data_dir().join("pki").join("ca.crt"))
            .context("reading the cluster CA")?;
        let response = https_get(self.listen_ip, self.port, &ca, "/readyz")?;
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        Ok(response.starts_with("HTTP/1.1 200") && body.contains("ok"))
    }

    /// Stop `tug` (SIGTERM, then SIGKILL after [`STOP_TIMEOUT`]); `None` if it had to be
    /// killed or was not running.
    pub fn stop(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        let Some(mut process) = self.process.take() else {
            return Ok(None);
        };
        if let Some(mut watchdog) = process.watchdog.take() {
            kill_and_reap(&mut watchdog.child);
        }
        terminate(&mut process.child, STOP_TIMEOUT)
    }

    fn stop_quietly(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("tugboat-e2e: stopping tug: {error:#}");
        }
    }

    /// `kill -9` `tug` (by PID) and reap it, as a crash would: nothing of it gets to clean up.
    /// [`Cluster::restart`] brings it back on the same data dir.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            if let Some(mut watchdog) = process.watchdog.take() {
                kill_and_reap(&mut watchdog.child);
            }
            kill_and_reap(&mut process.child);
        }
        Ok(())
    }

    /// Start `tug up` again on the same data dir and port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.spawn(false)
    }

    /// `tug`'s PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(|p| p.child.id())
    }

    /// The loopback port `tug` listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `https://127.0.0.1:PORT` (or the address it listens on).
    pub fn url(&self) -> String {
        format!("https://{}:{}", self.listen_ip, self.port)
    }

    /// The temporary directory: `data/` (tug's data dir), `kubectl-cache/`, `tug.log`.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The data dir passed to `tug up --data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The kubeconfig `tug up` wrote.
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("tug.log")
    }

    /// Everything `tug` printed (stdout and stderr) since its last start.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The `tug` CLI for this cluster.
    pub fn tug(&self) -> anyhow::Result<crate::tugcli::TugCli> {
        crate::tugcli::TugCli::new(self.kubeconfig())
    }

    /// kubectl for this cluster, with a private cache dir.
    pub fn kubectl(&self) -> anyhow::Result<Kubectl> {
        Kubectl::new(self.kubeconfig(), self.dir.path().join("kubectl-cache"))
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop_quietly();
        // Real pods outlive `tug` (their shims keep running): tear them down before the
        // temporary directory goes, or nothing could find them any more.
        if self.runtime == "containerd"
            && self.data_dir().exists()
            && let Err(error) = crate::containers::reset(&self.data_dir())
        {
            eprintln!("tugboat-e2e: tug reset: {error:#}");
        }
    }
}

/// One cluster shared by every test of this process (each test uses its own namespace).
///
/// Statics are never dropped, so the shared cluster is stopped by its watchdog when the test
/// process exits: the watchdog sends SIGTERM to `tug`'s PID, SIGKILL after 10 s, and removes
/// the data dir.
pub fn shared() -> anyhow::Result<&'static Cluster> {
    static SHARED: OnceLock<Result<Arc<Cluster>, String>> = OnceLock::new();
    let cluster = SHARED
        .get_or_init(|| {
            Cluster::start_with(true, "sim", &[])
                .map(Arc::new)
                .map_err(|error| format!("{error:#}"))
        })
        .as_ref()
        .map_err(|error| anyhow::anyhow!("starting the shared cluster: {error}"))?;
    Ok(cluster.as_ref())
}

// === impl Watchdog ===

/// The watchdog's script: wait for end-of-file on stdin (our process died or dropped the
/// watchdog's stdin), then stop `$1` by PID and remove `$2` if given.
const WATCHDOG: &str = r#"
read _ignored
kill -TERM "$1" 2>/dev/null
i=0
while kill -0 "$1" 2>/dev/null; do
  i=$((i + 1))
  if [ "$i" -gt 100 ]; then kill -KILL "$1" 2>/dev/null; break; fi
  sleep 0.1
done
if [ -n "$2" ]; then rm -rf -- "$2"; fi
"#;

impl Watchdog {
    /// Stop the watchdog itself (its process is done with).
    pub(crate) fn dismiss(mut self) {
        kill_and_reap(&mut self.child);
    }

    pub(crate) fn spawn(pid: u32, remove_dir: Option<&Path>) -> anyhow::Result<Watchdog> {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("tugboat-e2e-watchdog")
            .arg(pid.to_string())
            .arg(remove_dir.map(Path::as_os_str).unwrap_or_default())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the watchdog")?;
        let stdin = child.stdin.take().context("the watchdog's stdin")?;
        Ok(Watchdog {
            child,
            _stdin: stdin,
        })
    }
}

/// `GET path` over HTTPS on `ip`:`port`, trusting only `ca_pem`; the raw response.
pub(crate) fn https_get(
    ip: Ipv4Addr,
    port: u16,
    ca_pem: &[u8],
    path: &str,
) -> anyhow::Result<String> {
    https_request(ip, port, ca_pem, path, None)
}

/// `GET path` with a bearer token if given; the whole response. With a token the request is
/// HTTP/1.0, so that the (JSON) body comes unchunked.
fn https_request(
    ip: Ipv4Addr,
    port: u16,
    ca_pem: &[u8],
    path: &str,
    bearer: Option<&str>,
) -> anyhow::Result<String> {
    let version = if bearer.is_some() { "1.0" } else { "1.1" };
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots
            .add(cert.context("parsing the CA")?)
            .context("adding the CA")?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("TLS versions")?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server_name = rustls::pki_types::ServerName::IpAddress(std::net::IpAddr::from(ip).into());
    let connection =
        rustls::ClientConnection::new(Arc::new(config), server_name).context("TLS client")?;
    let timeout = Duration::from_secs(2);
    let address = SocketAddr::from((ip, port));
    let socket = TcpStream::connect_timeout(&address, timeout).context("connecting")?;
    socket.set_read_timeout(Some(timeout))?;
    socket.set_write_timeout(Some(timeout))?;
    let mut tls = rustls::StreamOwned::new(connection, socket);
    let authorization = bearer.map_or(String::new(), |token| {
        format!("Authorization: Bearer {token}\r\n")
    });
    write!(
        tls,
        "GET {path} HTTP/{version}\r\nHost: {ip}:{port}\r\n{authorization}Connection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // Servers may close without close_notify; what we have is the response.
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(error) => return Err(error).context("reading the response"),
    }
    Ok(String::from_utf8_lossy(&response).into_owned())
}
