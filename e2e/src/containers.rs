//! Helpers for the tests that run real containers: whether this machine can, bounded polling,
//! plain HTTP to pods and Services, and `tug reset` once a test is done.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Context as _;

use crate::process::run_bounded;
use crate::{Cluster, tug_binary};

/// How long `tug reset` may take (it stops every sandbox and the private containerd).
pub const RESET_TIMEOUT: Duration = Duration::from_secs(120);

/// Whether this machine can run real containers (root and containerd installed). Elsewhere
/// it says what is missing and the test skips — except under `CI`, where it must not.
pub fn containers_or_skip() -> bool {
    let root = std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false);
    let containerd = ["/usr/bin/containerd", "/usr/sbin/containerd"]
        .iter()
        .any(|p| Path::new(p).exists());
    if root && containerd {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "CI must run the real-container tests: root={root} containerd={containerd}"
    );
    eprintln!("skipping: needs root and containerd (root={root}, containerd={containerd})");
    false
}

pub use crate::wait::wait_for;

/// `GET path` on `addr` (HTTP/1.0, 2 s to connect, 5 s to answer); the status code and the
/// whole answer, or `None` when nothing answered.
pub fn http_get(addr: &str, path: &str) -> Option<(u16, String)> {
    let mut stream =
        TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: e2e\r\n\r\n").as_bytes())
        .ok()?;
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let code = answer.split_whitespace().nth(1)?.parse().ok()?;
    Some((code, answer))
}

/// Whether `GET path` on `addr` answers 200.
pub fn answers_ok(addr: &str, path: &str) -> bool {
    http_get(addr, path).is_some_and(|(code, _)| code == 200)
}

/// Stop the cluster, then `tug reset` its data dir: every sandbox, the private containerd,
/// the service rules and the data dir go.
pub fn stop_and_reset(cluster: &mut Cluster) -> anyhow::Result<()> {
    cluster.stop()?;
    reset(&cluster.data_dir())
}

/// `tug reset --data-dir data_dir`, bounded by [`RESET_TIMEOUT`].
pub fn reset(data_dir: &Path) -> anyhow::Result<()> {
    let reset = run_bounded(
        Command::new(tug_binary()?)
            .arg("reset")
            .arg("--data-dir")
            .arg(data_dir),
        None,
        RESET_TIMEOUT,
    )?;
    anyhow::ensure!(reset.status.success(), "tug reset failed: {reset:?}");
    anyhow::ensure!(!data_dir.exists(), "tug reset left {}", data_dir.display());
    Ok(())
}

/// A host directory for hostPath volumes that the test can change while pods read it.
pub fn shared_dir(cluster: &Cluster, name: &str) -> anyhow::Result<std::path::PathBuf> {
    let dir = cluster.dir().join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
