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
