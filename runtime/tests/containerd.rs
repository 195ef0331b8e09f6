//! Real pods on a private containerd in a temp dir (as root).
//!
//! Skips with a message when root, containerd, runc, ctr, the CNI plugins or busybox are
//! missing, except under `CI`, where that is a failure. Traffic goes only to the pod IPs on
//! the test's own bridge.

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tugboat_runtime::cri::v1;
use tugboat_runtime::{
    BUSYBOX_IMAGE, ContainerFilter, ContainerState, ContainerdOptions, ContainerdRuntime,
    LogOptions, NetworkConfig, Runtime, SandboxFilter, SandboxState, Stream,
};

const TEST_TIMEOUT: Duration = Duration::from_secs(240);

/// What is missing for these tests, if anything.
fn missing() -> Option<String> {
    if !rustix::process::geteuid().is_root() {
        return Some("not root".into());
    }
    for bin in ["containerd", "runc", "ctr", "ip"] {
        if tugboat_runtime::supervisor::find_in_path(bin).is_none() {
            return Some(format!("no `{bin}` (bash scripts/install-deps.sh)"));
        }
    }
    for file in [
        "/usr/lib/cni/bridge",
        "/usr/lib/cni/host-local",
        "/bin/busybox",
    ] {
        if !Path::new(file).exists() {
            return Some(format!("no {file} (bash scripts/install-deps.sh)"));
        }
    }
    None
}

/// Whether to run; panics under CI when something is missing.
fn can_run(test: &str) -> bool {
    match missing() {
        None => true,
        Some(why) if std::env::var_os("CI").is_some() => {
            panic!("{test}: cannot run under CI: {why}")
        }
        Some(why) => {
            eprintln!("skipped {test}: {why}");
            false
        }
    }
}

/// A network slot (bridge `tugt<N>`, subnet `10.89.<N>.0/24`) that no other test process on
/// this machine holds: claimed by creating a directory, released on drop, and taken over
/// when its holder died.
struct NetSlot {
    id: u32,
    lock: std::path::PathBuf,
}

impl NetSlot {
    fn claim() -> Self {
        let root = std::env::temp_dir().join("tugboat-test-nets");
        std::fs::create_dir_all(&root).expect("lock dir");
        let start = std::process::id() % 250;
        for k in 0..250 {
            let id = (start + k) % 250 + 1;
            let lock = root.join(id.to_string());
            if std::fs::create_dir(&lock).is_err() {
                let holder = std::fs::read_to_string(lock.join("pid")).unwrap_or_default();
                let dead = holder.trim().parse::<i32>().is_ok_and(|p| !alive(p));
                if !dead
                    || std::fs::remove_dir_all(&lock).is_err()
                    || std::fs::create_dir(&lock).is_err()
                {
                    continue;
                }
            }
            std::fs::write(lock.join("pid"), std::process::id().to_string()).expect("pid");
            return Self { id, lock };
        }
        panic!("no free test network slot in {}", root.display());
    }

    /// Options for a private containerd in `dir` on this slot's own bridge and subnet.
    fn options(&self, dir: &Path) -> ContainerdOptions {
        let mut opts = ContainerdOptions::new(dir);
        opts.network = NetworkConfig {
            name: format!("tugtest{}", self.id),
            bridge: format!("tugt{}", self.id),
            subnet: format!("10.89.{}.0/24", self.id),
        };
        opts
    }
}

impl Drop for NetSlot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.lock);
    }
}

fn sandbox_config(name: &str, uid: &str) -> v1::PodSandboxConfig {
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: name.into(),
            namespace: "default".into(),
            uid: uid.into(),
            attempt: 0,
        }),
        hostname: name.into(),
        labels: [("tugboat.dev/pod-uid".to_string(), uid.to_string())].into(),
        linux: Some(v1::LinuxPodSandboxConfig {
            cgroup_parent: String::new(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, cmd: &[&str]) -> v1::ContainerConfig {
    v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(v1::ImageSpec {
            image: BUSYBOX_IMAGE.into(),
            ..Default::default()
        }),
        command: cmd.iter().map(|s| s.to_string()).collect(),
        labels: [("tugboat.dev/container".to_string(), name.to_string())].into(),
        ..Default::default()
    }
}

/// Polls `f` every 100 ms until it returns `Some`, for at most `limit`.
async fn wait_for<T, F, Fut>(limit: Duration, what: &str, mut f: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = f().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One HTTP/1.0 GET to a pod IP on our bridge; the body.
async fn http_get(ip: IpAddr, port: u16) -> anyhow::Result<String> {
    let mut s = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::net::TcpStream::connect((ip, port)),
    )
    .await
    .context("connect timeout")??;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
        .await
        .context("read timeout")??;
    Ok(out)
}

fn in_subnet(ip: IpAddr, subnet: &str) -> bool {
    let prefix = subnet.trim_end_matches("0/24");
    ip.to_string().starts_with(prefix)
}

async fn lifecycle(opts: &ContainerdOptions) -> anyhow::Result<()> {
    let rt = ContainerdRuntime::start(opts).await?;
    let v = rt.version().await?;
    ensure!(v.runtime_name == "containerd", "runtime {v:?}");
    ensure!(rt.ready().await?, "runtime and network ready");
    let images = rt.list_images().await?;
    ensure!(
        images
            .iter()
            .any(|i| i.repo_tags.iter().any(|t| t == BUSYBOX_IMAGE)),
        "busybox image bootstrapped: {images:?}"
    );

    // Sandbox with a pod IP from our bridge.
    let sb_config = sandbox_config("web", "uid-web");
    let sb = rt.run_sandbox(&sb_config).await?;
    let status = rt.sandbox_status(&sb).await?;
    ensure!(status.state == SandboxState::Ready, "sandbox ready");
    let ip = status.ip.context("sandbox has an IP")?;
    ensure!(
        in_subnet(ip, &opts.network.subnet),
        "{ip} in {}",
        opts.network.subnet
    );

    // httpd answers on the pod IP.
    let web = rt
        .create_container(
            &sb,
            &container_config("httpd", &["httpd", "-f", "-p", "8080", "-h", "/www"]),
            &sb_config,
        )
        .await?;
    rt.start_container(&web).await?;
    let st = rt.container_status(&web).await?;
    ensure!(st.state == ContainerState::Running, "httpd running: {st:?}");
    ensure!(st.started_at.is_some(), "started_at set");
    let body = wait_for(Duration::from_secs(10), "httpd to answer", || async {
        Ok(http_get(ip, 8080).await.ok())
    })
    .await?;
    ensure!(body.contains("tugboat busybox"), "body: {body}");

    // Exec.
    let r = rt
        .exec_sync(
            &web,
            &["cat".into(), "/www/index.html".into()],
            Duration::from_secs(5),
        )
        .await?;
    ensure!(
        r.exit_code == 0 && r.stdout == b"tugboat busybox\n",
        "exec: {r:?}"
    );
    let r = rt
        .exec_sync(
            &web,
            &["sh".into(), "-c".into(), "exit 3".into()],
            Duration::from_secs(5),
        )
        .await?;
    ensure!(r.exit_code == 3, "exec exit code: {r:?}");

    // Logs, both streams.
    let talker = rt
        .create_container(
            &sb,
            &container_config(
                "talker",
                &[
                    "sh",
                    "-c",
                    "echo hello-out; echo hello-err >&2; exec sleep 3600",
                ],
            ),
            &sb_config,
        )
        .await?;
    rt.start_container(&talker).await?;
    let lines = wait_for(Duration::from_secs(10), "talker's logs", || async {
        let lines = rt.read_logs(&talker, &LogOptions::default()).await?;
        Ok((lines.len() >= 2).then_some(lines))
    })
    .await?;
    ensure!(
        lines
            .iter()
            .any(|l| l.stream == Stream::Stdout && l.content == b"hello-out"),
        "stdout line: {lines:?}"
    );
    ensure!(
        lines
            .iter()
            .any(|l| l.stream == Stream::Stderr && l.content == b"hello-err"),
        "stderr line: {lines:?}"
    );

    // Exit code and reason of a failing container.
    let fails = rt
        .create_container(
            &sb,
            &container_config("fails", &["sh", "-c", "exit 7"]),
            &sb_config,
        )
        .await?;
    rt.start_container(&fails).await?;
    let st = wait_for(Duration::from_secs(10), "`exit 7` to exit", || async {
        let st = rt.container_status(&fails).await?;
        Ok((st.state == ContainerState::Exited).then_some(st))
    })
    .await?;
    ensure!(st.exit_code == 7 && st.reason == "Error", "exited: {st:?}");
    ensure!(st.finished_at.is_some(), "finished_at set");

    // OOMKilled under a memory limit.
    let mut hog = container_config(
        "hog",
        &["sh", "-c", "head -c 268435456 /dev/zero | sort > /dev/null"],
    );
    hog.linux = Some(v1::LinuxContainerConfig {
        resources: Some(v1::LinuxContainerResources {
            memory_limit_in_bytes: 16 * 1024 * 1024,
            ..Default::default()
        }),
        ..Default::default()
    });
    let hog = rt.create_container(&sb, &hog, &sb_config).await?;
    rt.start_container(&hog).await?;
    let st = wait_for(Duration::from_secs(30), "the hog to be killed", || async {
        let st = rt.container_status(&hog).await?;
        Ok((st.state == ContainerState::Exited).then_some(st))
    })
    .await?;
    ensure!(st.oom_killed() && st.exit_code == 137, "OOM killed: {st:?}");

    // Listing by label, and stats.
    let listed = rt
        .list_containers(&ContainerFilter {
            sandbox_id: Some(sb.clone()),
            state: Some(ContainerState::Running),
            ..Default::default()
        })
        .await?;
    ensure!(listed.len() == 2, "two running: {listed:?}");
    let stats = rt
        .container_stats(&ContainerFilter {
            labels: [("tugboat.dev/container".to_string(), "httpd".to_string())].into(),
            ..Default::default()
        })
        .await?;
    ensure!(
        stats.len() == 1 && stats[0].memory_working_set_bytes.unwrap_or(0) > 0,
        "stats: {stats:?}"
    );

    // Stop and remove one container.
    rt.stop_container(&talker, Duration::from_secs(1)).await?;
    ensure!(rt.container_status(&talker).await?.state == ContainerState::Exited);
    rt.remove_container(&talker).await?;
    ensure!(
        rt.container_status(&talker)
            .await
            .is_err_and(|e| e.is_not_found())
    );

    // containerd restarts; the pod keeps running and a new runtime adopts it by label.
    rt.shutdown().await;
    ensure!(
        http_get(ip, 8080).await.is_ok(),
        "pod serves while containerd is down"
    );
    let rt = ContainerdRuntime::start(opts).await?;
    let found = rt
        .list_sandboxes(&SandboxFilter {
            labels: [("tugboat.dev/pod-uid".to_string(), "uid-web".to_string())].into(),
            ..Default::default()
        })
        .await?;
    ensure!(found.len() == 1 && found[0].id == sb, "adopted: {found:?}");
    ensure!(rt.container_status(&web).await?.state == ContainerState::Running);

    // Image import from an archive.
    let archive = tugboat_runtime::image::busybox_archive(
        Path::new("/bin/busybox"),
        "docker.io/library/tugtest:1",
    )?;
    let file = opts.data_dir.join("tugtest.tar");
    std::fs::write(&file, archive)?;
    let names = rt.import_image(&file).await?;
    ensure!(
        names == ["docker.io/library/tugtest:1"],
        "imported {names:?}"
    );
    ensure!(
        rt.image_status("docker.io/library/tugtest:1")
            .await?
            .is_some()
    );

    // Stop and remove the sandbox.
    rt.stop_sandbox(&sb).await?;
    rt.remove_sandbox(&sb).await?;
    ensure!(
        rt.list_sandboxes(&SandboxFilter::default())
            .await?
            .is_empty()
    );
    ensure!(
        rt.container_status(&web)
            .await
            .is_err_and(|e| e.is_not_found())
    );
    rt.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_lifecycle_on_a_private_containerd() {
    if !can_run("pod_lifecycle_on_a_private_containerd") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let slot = NetSlot::claim();
    let opts = slot.options(dir.path());
    let result = tokio::time::timeout(TEST_TIMEOUT, lifecycle(&opts)).await;
    // Always tear down, even after a failure: no pods, containerd or bridge left behind.
    let reset = tokio::time::timeout(Duration::from_secs(60), tugboat_runtime::reset(&opts)).await;
    let log = std::fs::read_to_string(opts.containerd_config().log_file()).unwrap_or_default();
    match result {
        Err(_) => panic!("timed out after {TEST_TIMEOUT:?}"),
        Ok(Err(e)) => panic!("{e:#}\ncontainerd log tail:\n{}", tail(&log)),
        Ok(Ok(())) => {}
    }
    reset.expect("reset in time").expect("reset");
    assert!(!dir.path().join("containerd").exists());
    assert!(
        !Path::new("/sys/class/net")
            .join(&opts.network.bridge)
            .exists()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_removes_running_pods_and_containerd() {
    if !can_run("reset_removes_running_pods_and_containerd") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let slot = NetSlot::claim();
    let opts = slot.options(dir.path());
    let run = async {
        let rt = ContainerdRuntime::start(&opts).await?;
        let sb_config = sandbox_config("p", "uid-p");
        let sb = rt.run_sandbox(&sb_config).await?;
        let c = rt
            .create_container(&sb, &container_config("c", &["sleep", "3600"]), &sb_config)
            .await?;
        rt.start_container(&c).await?;
        // Leave containerd running, as a killed `tug up` would.
        let pid = rt.containerd_pid().context("pid")?;
        drop(rt);
        anyhow::Ok(pid)
    };
    let pid = tokio::time::timeout(TEST_TIMEOUT, run)
        .await
        .expect("in time")
        .expect("pod runs");
    let report = tokio::time::timeout(Duration::from_secs(60), tugboat_runtime::reset(&opts))
        .await
        .expect("reset in time")
        .expect("reset");
    assert_eq!(report.sandboxes_removed, 1);
    assert!(report.containerd_stopped);
    assert!(!alive(pid), "containerd {pid} stopped");
    assert!(!dir.path().join("containerd").exists());
    assert!(
        !Path::new("/sys/class/net")
            .join(&opts.network.bridge)
            .exists()
    );
}

/// Alive and not a zombie (the test process may not have reaped it yet).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
