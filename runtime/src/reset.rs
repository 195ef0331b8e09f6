//! `tug reset`: remove every pod sandbox of a data dir, its private containerd and its
//! network setup.

use std::path::{Path, PathBuf};

use crate::containerd::ContainerdOptions;
use crate::error::{Error, Result};
use crate::runtime::Runtime;
use crate::supervisor::{self, Supervisor};
use crate::types::SandboxFilter;

/// What `reset` removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ResetReport {
    /// How many sandboxes were stopped and removed.
    pub sandboxes_removed: usize,
    /// Whether a containerd was stopped.
    pub containerd_stopped: bool,
    /// Mounts that were left under the data dir and had to be detached.
    pub mounts_detached: usize,
}

/// Removes every sandbox (and so every container) of the private containerd under
/// `opts.data_dir`, stops that containerd, deletes the pod bridge, and removes
/// `<data_dir>/containerd` and the pod logs. The rest of the data dir is the caller's.
///
/// containerd is started if it is not running, because only it can tear pods down cleanly
/// (kill their shims, release their IPs and network namespaces).
pub async fn reset(opts: &ContainerdOptions) -> Result<ResetReport> {
    let config = opts.containerd_config();
    let mut report = ResetReport::default();
    if config.dir.exists() {
        match Supervisor::start(config.clone()).await {
            Ok((mut sup, client)) => {
                let rt = crate::containerd::ContainerdRuntime::from_parts(client, opts);
                let removed = remove_all_sandboxes(&rt).await;
                // Stop containerd even when a sandbox would not go, then report that.
                sup.stop().await;
                report.containerd_stopped = true;
                report.sandboxes_removed = removed?;
            }
            Err(e) => {
                // Nothing we can tear down through it; still stop a leftover and clean up.
                tracing::warn!(error = %e, "cannot start containerd for reset; removing files only");
                supervisor::stop_leftover(&config).await;
            }
        }
    }
    opts.network.delete_bridge().await?;
    report.mounts_detached = detach_mounts_under(&config.dir);
    for dir in [config.dir.clone(), opts.log_root()] {
        remove_dir(&dir)?;
    }
    tracing::info!(
        sandboxes = report.sandboxes_removed,
        data_dir = %opts.data_dir.display(),
        "reset done"
    );
    Ok(report)
}

async fn remove_all_sandboxes(rt: &crate::containerd::ContainerdRuntime) -> Result<usize> {
    let mut n = 0;
    for sandbox in rt.list_sandboxes(&SandboxFilter::default()).await? {
        rt.stop_sandbox(&sandbox.id).await?;
        rt.remove_sandbox(&sandbox.id).await?;
        n += 1;
    }
    Ok(n)
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(Error::Fs {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Lazily unmounts whatever is still mounted under `dir` (deepest first), so removing the
/// directory never walks into a container's rootfs.
fn detach_mounts_under(dir: &Path) -> usize {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return 0;
    };
    let mut mounts = mounts_under(&info, dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
    let mut n = 0;
    for m in mounts {
        match rustix::mount::unmount(&m, rustix::mount::UnmountFlags::DETACH) {
            Ok(()) => n += 1,
            Err(e) => tracing::warn!(mount = %m.display(), error = %e, "cannot unmount"),
        }
    }
    n
}

/// Mount points in a mountinfo text that lie under `dir`.
fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(unescape_mountinfo(p)))
        .filter(|p| p.starts_with(dir) && p != dir)
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 4], 8)
        {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_mounts_below_a_dir() {
        let info = "22 1 8:1 / / rw - ext4 /dev/vda rw\n\
                    90 22 0:50 / /d/containerd/state/x/shm rw - tmpfs shm rw\n\
                    91 22 0:51 / /d/containerd/root/my\\040dir rw - overlay overlay rw\n\
                    92 22 0:52 / /d/other rw - tmpfs t rw\n\
                    93 22 0:53 / /d/containerd rw - tmpfs t rw\n";
        let got = mounts_under(info, Path::new("/d/containerd"));
        assert_eq!(
            got,
            vec![
                PathBuf::from("/d/containerd/state/x/shm"),
                PathBuf::from("/d/containerd/root/my dir"),
            ]
        );
    }

    #[test]
    fn unescapes_octal() {
        assert_eq!(unescape_mountinfo(r"a\040b\134c"), r"a b\c");
        assert_eq!(unescape_mountinfo(r"trailing\04"), r"trailing\04");
    }
}
