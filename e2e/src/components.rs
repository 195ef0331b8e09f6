//! One-component `tug` processes (`tug apiserver`, `scheduler`, `controllers`, `agent`) and
//! network namespaces standing in for other machines.

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::STOP_TIMEOUT;
use crate::cluster::Watchdog;
use crate::process::{kill_and_reap, run_bounded, signal, terminate};
use crate::tug::tug_binary;

/// How long an `ip` command may take.
const IP_TIMEOUT: Duration = Duration::from_secs(20);

/// One `tug <component>` process, its output in a log file; stopped by PID when dropped.
pub struct Component {
    child: Option<Child>,
    /// Stops the process (by PID) if the test process dies without dropping us.
    watchdog: Option<Watchdog>,
    log: PathBuf,
}

impl Component {
    /// Start `tug args...` (inside network namespace `netns` if given) with its stdout and
    /// stderr in `log`.
    pub fn start(netns: Option<&str>, args: &[&str], log: &Path) -> anyhow::Result<Component> {
        let binary = tug_binary()?;
        let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("duplicating the log handle")?;
        let mut command = match netns {
            Some(name) => in_netns(name, &binary),
            None => Command::new(&binary),
        };
        let child = command
            .args(args)
            .env("TUG_LOG", "info")
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting tug {args:?}"))?;
        let watchdog = Watchdog::spawn(child.id(), None).ok();
        Ok(Component {
            child: Some(child),
            watchdog,
            log: log.to_path_buf(),
        })
    }

    /// Its PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether it has exited.
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_none_or(|child| child.try_wait().ok().flatten().is_some())
    }

    /// Everything it printed.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`, as a machine dying would: nothing of it gets to clean up.
    pub fn kill(&mut self) {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.dismiss();
        }
        if let Some(mut child) = self.child.take() {
            kill_and_reap(&mut child);
        }
    }

    /// SIGSTOP: it stays, but does nothing (a frozen machine). [`Component::resume`] undoes it.
    pub fn freeze(&self) -> anyhow::Result<()> {
        match self.pid() {
            Some(pid) => signal(pid, "STOP"),
            None => Ok(()),
        }
    }

    /// SIGCONT after [`Component::freeze`].
    pub fn resume(&self) -> anyhow::Result<()> {
        match self.pid() {
            Some(pid) => signal(pid, "CONT"),
            None => Ok(()),
        }
    }

    /// SIGTERM (a frozen process is resumed first), SIGKILL after [`STOP_TIMEOUT`]; whether
    /// it stopped by itself with exit code 0.
    pub fn stop(&mut self) -> anyhow::Result<bool> {
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.dismiss();
        }
        let Some(mut child) = self.child.take() else {
            return Ok(false);
        };
        let _ = signal(child.id(), "CONT");
        let status = terminate(&mut child, STOP_TIMEOUT)?;
        Ok(status.is_some_and(|s| s.success()))
    }
}

impl Drop for Component {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("tugboat-e2e: stopping a component: {error:#}");
        }
    }
}

/// A network namespace joined to this machine by a veth pair with two private addresses:
/// another machine, as far as the node agent in it can tell. Removed when dropped.
pub struct NetNs {
    name: String,
    host_veth: String,
    /// This machine's end of the link.
    pub host_ip: Ipv4Addr,
    /// The namespace's end.
    pub ns_ip: Ipv4Addr,
}

/// `program` in network namespace `netns` and nothing else: `nsenter --net` (not
/// `ip netns exec`, which mounts a fresh /sys and so hides the cgroup mounts runc needs).
/// nsenter execs the program: the PID of the child is the program's.
fn in_netns(netns: &str, program: &Path) -> Command {
    let mut command = Command::new("nsenter");
    command
        .arg(format!("--net=/run/netns/{netns}"))
        .arg("--")
        .arg(program);
    command
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let output = run_bounded(Command::new("ip").args(args), None, IP_TIMEOUT)?;
    anyhow::ensure!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(())
}

impl NetNs {
    /// Create namespace `tge<tag>` and the veth pair `tge<tag>h` (here, `host_ip`/30) and
    /// `tge<tag>n` (inside, `ns_ip`/30), both up, with loopback up inside. `tag` keeps the
    /// names within Linux's 15 characters and apart from other tests' (use the test's PID).
    pub fn create(tag: u32, host_ip: Ipv4Addr, ns_ip: Ipv4Addr) -> anyhow::Result<NetNs> {
        let name = format!("tge{tag}");
        let netns = NetNs {
            host_veth: format!("{name}h"),
            name,
            host_ip,
            ns_ip,
        };
        // From here on, dropping `netns` removes whatever part was made.
        let inner = format!("{}n", netns.name);
        let (host_addr, ns_addr) = (format!("{host_ip}/30"), format!("{ns_ip}/30"));
        ip(&["netns", "add", &netns.name])?;
        ip(&[
            "link",
            "add",
            &netns.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            &inner,
        ])?;
        ip(&["link", "set", &inner, "netns", &netns.name])?;
        ip(&["addr", "add", &host_addr, "dev", &netns.host_veth])?;
        ip(&["link", "set", &netns.host_veth, "up"])?;
        let exec = ["netns", "exec", netns.name.as_str(), "ip"];
        ip(&[&exec[..], &["addr", "add", &ns_addr, "dev", &inner]].concat())?;
        ip(&[&exec[..], &["link", "set", &inner, "up"]].concat())?;
        ip(&[&exec[..], &["link", "set", "lo", "up"]].concat())?;
        Ok(netns)
    }

    /// The namespace's name (for `ip netns exec`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `tug args...` inside the namespace to completion (bounded by `timeout`).
    pub fn run_tug(
        &self,
        args: &[&str],
        timeout: Duration,
    ) -> anyhow::Result<std::process::Output> {
        let binary = tug_binary()?;
        run_bounded(in_netns(&self.name, &binary).args(args), None, timeout)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        // Deleting the namespace takes its veth end, and with it the peer; the explicit delete
        // covers a namespace that never got its end.
        if let Err(error) = ip(&["netns", "delete", &self.name]) {
            eprintln!("tugboat-e2e: {error:#}");
        }
        let _ = ip(&["link", "delete", &self.host_veth]);
    }
}

/// `tug apiserver` on an etcd cluster (or its embedded store), on a free loopback port, with
/// its data in `<scratch>/<name>`: one of several API servers of one cluster. Stopped by PID
/// when dropped.
pub struct ApiServer {
    /// `None` once killed or stopped.
    component: Option<Component>,
    scratch: PathBuf,
    name: String,
    /// The address it listens on and its kubeconfig names.
    ip: Ipv4Addr,
    port: u16,
    /// `--etcd`, or `None` for the embedded store.
    etcd: Option<String>,
    /// How many times it was started (each start logs to its own file).
    starts: usize,
}

impl ApiServer {
    /// Start `tug apiserver --etcd <etcd>` and wait until it serves `/readyz`. With `pki_from`
    /// (another API server's data dir), it gets that server's certificates first: the same
    /// cluster CA, as every API server of a cluster must have.
    pub fn start_on_etcd(
        scratch: &Path,
        name: &str,
        etcd: &str,
        pki_from: Option<&Path>,
    ) -> anyhow::Result<ApiServer> {
        Self::start_with(scratch, name, Some(etcd), pki_from, Ipv4Addr::LOCALHOST)
    }

    /// [`ApiServer::start_on_etcd`] listening on `ip` (the host's end of a [`NetNs`], so that
    /// components in the namespace reach it) instead of loopback.
    pub fn start_on_etcd_at(
        scratch: &Path,
        name: &str,
        etcd: &str,
        pki_from: Option<&Path>,
        ip: Ipv4Addr,
    ) -> anyhow::Result<ApiServer> {
        Self::start_with(scratch, name, Some(etcd), pki_from, ip)
    }

    /// Start `tug apiserver` on its embedded store and wait until it serves `/readyz`.
    pub fn start_embedded(scratch: &Path, name: &str) -> anyhow::Result<ApiServer> {
        Self::start_with(scratch, name, None, None, Ipv4Addr::LOCALHOST)
    }

    fn start_with(
        scratch: &Path,
        name: &str,
        etcd: Option<&str>,
        pki_from: Option<&Path>,
        ip: Ipv4Addr,
    ) -> anyhow::Result<ApiServer> {
        let data = scratch.join(name);
        if let Some(other) = pki_from {
            let pki = data.join("pki");
            std::fs::create_dir_all(&pki).with_context(|| format!("creating {}", pki.display()))?;
            for file in std::fs::read_dir(other.join("pki")).context("reading the other PKI")? {
                let file = file.context("reading the other PKI")?;
                std::fs::copy(file.path(), pki.join(file.file_name()))
                    .with_context(|| format!("copying {}", file.path().display()))?;
            }
        }
        let port = tugboat_testkit::net::free_port()?;
        let mut server = ApiServer {
            component: None,
            scratch: scratch.to_path_buf(),
            name: name.to_owned(),
            ip,
            port,
            etcd: etcd.map(str::to_owned),
            starts: 0,
        };
        server.start()?;
        Ok(server)
    }

    fn start(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let data = self.data_dir();
        let listen = format!("{}:{}", self.ip, self.port);
        let log = self
            .scratch
            .join(format!("{}-{}.log", self.name, self.starts));
        let data = data.to_string_lossy();
        let mut args = vec!["apiserver", "--data-dir", &data, "--listen", &listen];
        if let Some(etcd) = &self.etcd {
            args.extend(["--etcd", etcd]);
        }
        let component = self.component.insert(Component::start(None, &args, &log)?);
        let deadline = std::time::Instant::now() + crate::STARTUP_TIMEOUT;
        loop {
            anyhow::ensure!(
                !component.exited(),
                "tug apiserver {} exited at startup:\n{}",
                self.name,
                component.log()
            );
            if component.log().contains(crate::cluster::LISTENING_LINE)
                && ready(&self.scratch.join(&self.name), self.ip, self.port)
            {
                return Ok(());
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "tug apiserver {} did not answer /readyz within {:?}:\n{}",
                self.name,
                crate::STARTUP_TIMEOUT,
                component.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether `GET /readyz` (HTTPS, verified against the cluster CA) answers `ok`.
    pub fn ready(&self) -> bool {
        ready(&self.data_dir(), self.ip, self.port)
    }

    /// SIGKILL, as a machine dying would.
    pub fn kill(&mut self) {
        if let Some(mut component) = self.component.take() {
            component.kill();
        }
    }

    /// Start it again on the same port and data (after [`ApiServer::kill`] or a stop) and
    /// wait until it is ready.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.start()
    }

    /// SIGTERM (SIGKILL after [`STOP_TIMEOUT`]); whether it stopped by itself with exit code 0.
    pub fn stop(&mut self) -> anyhow::Result<bool> {
        match self.component.take() {
            Some(mut component) => component.stop(),
            None => Ok(false),
        }
    }

    /// Everything the current process printed.
    pub fn log(&self) -> String {
        self.component
            .as_ref()
            .map(Component::log)
            .unwrap_or_default()
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}:{}", self.ip, self.port)
    }

    /// Its data dir: `pki/`, `kubeconfig`, `join-token`.
    pub fn data_dir(&self) -> PathBuf {
        self.scratch.join(&self.name)
    }

    /// The admin kubeconfig it wrote (pointing at itself).
    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig")
    }
}

/// The PID in a Lease holder identity, `<host>_<pid as 8 hex digits><random suffix>`, as
/// `tug scheduler` and `tug controllers` make them.
pub fn identity_pid(identity: &str) -> Option<u32> {
    let suffix = identity.trim().rsplit_once('_')?.1;
    u32::from_str_radix(suffix.get(..8)?, 16).ok()
}

/// The process holding Lease `kube-system/<lease>`, from its holder identity.
pub fn holder_pid(kubectl: &crate::Kubectl, lease: &str) -> Option<u32> {
    let holder = kubectl
        .namespace("kube-system")
        .get_jsonpath(&["lease", lease], "{.spec.holderIdentity}");
    identity_pid(&holder)
}

/// Whether the API server on `port` with its data in `data_dir` answers `GET /readyz` with
/// `ok` over HTTPS verified against its cluster CA.
fn ready(data_dir: &Path, ip: Ipv4Addr, port: u16) -> bool {
    let Ok(ca) = std::fs::read(data_dir.join("pki").join("ca.crt")) else {
        return false;
    };
    crate::cluster::https_get(ip, port, &ca, "/readyz").is_ok_and(|response| {
        let body = response.split_once("\r\n\r\n").map_or("", |(_, body)| body);
        response.starts_with("HTTP/1.1 200") && body.contains("ok")
    })
}
