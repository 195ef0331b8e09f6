//! Child processes with bounded waits, signalled only by their own PID.

use std::io::{Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// How often bounded waits poll.
const POLL: Duration = Duration::from_millis(20);

/// Run `command` to completion with `stdin` as its input, killing it (by PID) when it takes
/// longer than `timeout`. Stdout and stderr are captured.
pub fn run_bounded(
    command: &mut Command,
    stdin: Option<&[u8]>,
    timeout: Duration,
) -> anyhow::Result<Output> {
    command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {command:?}"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Small inputs: the pipe buffer takes them; the child reads them as it starts.
        pipe.write_all(input).context("writing the child's stdin")?;
    }
    let stdout = reader(child.stdout.take());
    let stderr = reader(child.stderr.take());
    let status = match wait_bounded(&mut child, timeout)? {
        Some(status) => status,
        None => {
            kill_and_reap(&mut child);
            let out = join(stdout);
            let err = join(stderr);
            anyhow::bail!(
                "{command:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out),
                String::from_utf8_lossy(&err)
            );
        }
    };
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    pipe.map(|mut pipe| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    })
}

fn join(handle: Option<JoinHandle<Vec<u8>>>) -> Vec<u8> {
    handle
        .and_then(|handle| handle.join().ok())
        .unwrap_or_default()
}

/// Wait up to `timeout` for `child` to exit: `Some(status)`, or `None` if it still runs.
pub fn wait_bounded(child: &mut Child, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for a child")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(POLL);
    }
}

/// SIGKILL `child` (by its PID, through `Child::kill`) and reap it; errors are ignored because
/// the child may have exited meanwhile.
pub fn kill_and_reap(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Send `signal` (a name such as `TERM`) to our child `pid` with `kill(1)`: this workspace
/// denies unsafe code, so no libc.
pub fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("running kill -{signal} {pid}"))?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
    Ok(())
}

/// Stop `child` politely: SIGTERM, wait up to `grace`, then SIGKILL. Returns how it ended, or
/// `None` when it had to be killed.
pub fn terminate(child: &mut Child, grace: Duration) -> anyhow::Result<Option<ExitStatus>> {
    if let Some(status) = child.try_wait().context("checking a child")? {
        return Ok(Some(status));
    }
    signal(child.id(), "TERM")?;
    match wait_bounded(child, grace)? {
        Some(status) => Ok(Some(status)),
        None => {
            kill_and_reap(child);
            Ok(None)
        }
    }
}

/// What a process uses, from `/proc`: for benchmarks.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    /// Resident set size, MiB.
    pub rss_mib: f64,
    /// Its high-water mark, MiB.
    pub peak_rss_mib: f64,
    /// CPU time, user and system, seconds.
    pub cpu_seconds: f64,
}

/// The [`Usage`] of process `pid` (a number, or `self`).
pub fn usage(pid: impl std::fmt::Display) -> anyhow::Result<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let mib = |field: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
    let after = stat
        .rfind(')')
        .and_then(|end| stat.get(end + 2..))
        .context("malformed /proc stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .context("malformed /proc stat")
    };
    Ok(Usage {
        rss_mib: mib("VmRSS:"),
        peak_rss_mib: mib("VmHWM:"),
        // USER_HZ is 100 on every Linux architecture we run on.
        cpu_seconds: (ticks(11)? + ticks(12)?) / 100.0,
    })
}
