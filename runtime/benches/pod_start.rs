//! Pod start through CRI (sandbox + container, until Running) against `ctr run --rm` of the
//! same image on the same private containerd, as the floor.
//!
//! `cargo bench -p tugboat-runtime --bench pod_start` as root; skips when containerd is
//! missing. Sends no network traffic.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tugboat_runtime::cri::v1;
use tugboat_runtime::{
    BUSYBOX_IMAGE, ContainerState, ContainerdOptions, ContainerdRuntime, NetworkConfig, Runtime,
};

const RUNS: usize = 10;

fn sandbox(i: usize) -> v1::PodSandboxConfig {
    v1::PodSandboxConfig {
        metadata: Some(v1::PodSandboxMetadata {
            name: format!("bench-{i}"),
            namespace: "default".into(),
            uid: format!("bench-uid-{i}"),
            attempt: 0,
        }),
        ..Default::default()
    }
}

fn container() -> v1::ContainerConfig {
    v1::ContainerConfig {
        metadata: Some(v1::ContainerMetadata {
            name: "c".into(),
            attempt: 0,
        }),
        image: Some(v1::ImageSpec {
            image: BUSYBOX_IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sleep".into(), "3600".into()],
        ..Default::default()
    }
}

/// Sandbox + container from nothing to Running; cleans up outside the timed part.
async fn cri_start(rt: &ContainerdRuntime, i: usize) -> anyhow::Result<Duration> {
    let sb_config = sandbox(i);
    let t = Instant::now();
    let sb = rt.run_sandbox(&sb_config).await?;
    let c = rt.create_container(&sb, &container(), &sb_config).await?;
    rt.start_container(&c).await?;
    let st = rt.container_status(&c).await?;
    let took = t.elapsed();
    if st.state != ContainerState::Running {
        bail!("container not running: {st:?}");
    }
    rt.stop_sandbox(&sb).await?;
    rt.remove_sandbox(&sb).await?;
    Ok(took)
}

/// `ctr run --rm IMAGE ID true`: create, start, exit and delete a container, no CNI.
async fn ctr_run(socket: &Path, i: usize) -> anyhow::Result<Duration> {
    let ctr = tugboat_runtime::image::find_ctr().context("no ctr")?;
    let t = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::process::Command::new(ctr)
            .arg("--address")
            .arg(socket)
            .args(["--namespace", "k8s.io", "run", "--rm", BUSYBOX_IMAGE])
            .arg(format!("ctr-bench-{i}"))
            .arg("true")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .context("ctr run timed out")??;
    let took = t.elapsed();
    if !out.status.success() {
        bail!("ctr run: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(took)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn bench(opts: &ContainerdOptions) -> anyhow::Result<()> {
    let rt = ContainerdRuntime::start(opts).await?;
    let socket = opts.containerd_config().socket();
    // Warm-up: first sandbox sets up the bridge, first ctr run warms the snapshotter.
    cri_start(&rt, 0).await?;
    ctr_run(&socket, 0).await?;
    let mut cri = Vec::new();
    let mut ctr = Vec::new();
    for i in 1..=RUNS {
        cri.push(cri_start(&rt, i).await?);
        ctr.push(ctr_run(&socket, i).await?);
    }
    let (cri_p50, ctr_p50) = (median(cri.clone()), median(ctr.clone()));
    println!("pod_start: {RUNS} runs each, interleaved");
    println!(
        "  CRI sandbox+container to Running: p50 {:.0} ms, max {:.0} ms",
        cri_p50.as_secs_f64() * 1e3,
        cri.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  ctr run --rm (no CNI):            p50 {:.0} ms, max {:.0} ms",
        ctr_p50.as_secs_f64() * 1e3,
        ctr.iter().max().copied().unwrap_or_default().as_secs_f64() * 1e3
    );
    println!(
        "  ratio CRI/ctr (p50): {:.2}",
        cri_p50.as_secs_f64() / ctr_p50.as_secs_f64()
    );
    rt.shutdown().await;
    Ok(())
}

fn main() -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root()
        || tugboat_runtime::supervisor::find_in_path("containerd").is_none()
    {
        println!("pod_start: skipped (needs root and containerd: bash scripts/install-deps.sh)");
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let mut opts = ContainerdOptions::new(dir.path());
    let id = 100 + std::process::id() % 100;
    opts.network = NetworkConfig {
        name: format!("tugbench{id}"),
        bridge: format!("tugb{id}"),
        subnet: format!("10.90.{id}.0/24"),
    };
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let r = tokio::time::timeout(Duration::from_secs(300), bench(&opts)).await;
        // Always tear down: pods, containerd, bridge.
        tugboat_runtime::reset(&opts).await?;
        anyhow::Ok(r)
    })?;
    result.context("bench timed out")?
}
