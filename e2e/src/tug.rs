//! Where the `tug` binary is, and building it when it is missing or stale.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;

use crate::process::run_bounded;

/// How long building `tug` may take (a cold debug build on 2 busy cores).
const BUILD_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The crates `tug` is built from (their `src/` and `Cargo.toml` decide whether it is stale).
const TUG_CRATES: &[&str] = &[
    "api",
    "apiserver",
    "controllers",
    "ctl",
    "nodeagent",
    "runtime",
    "scheduler",
    "store",
];

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Cargo's target directory: `CARGO_TARGET_DIR` (relative to the workspace root when
/// relative), else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR").filter(|v| !v.is_empty()) {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// The `tug` binary: `TUGBOAT_TUG` when set (benchmarks use a release build), else
/// `<target>/debug/tug`, built once per test process if it is missing or older than any source
/// file of the crates it is made of.
pub fn tug_binary() -> anyhow::Result<PathBuf> {
    if let Some(binary) = std::env::var_os("TUGBOAT_TUG").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(binary));
    }
    static TUG: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    TUG.get_or_init(|| find_or_build().map_err(|error| format!("{error:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn find_or_build() -> anyhow::Result<PathBuf> {
    let binary = target_dir().join("debug").join("tug");
    let built = modified(&binary);
    let newest_source = newest_source()?;
    let stale = match built {
        None => true,
        Some(built) => newest_source.is_some_and(|source| source > built),
    };
    if stale {
        build(&binary)?;
    }
    anyhow::ensure!(
        binary.is_file(),
        "{} missing after the build",
        binary.display()
    );
    Ok(binary)
}

fn build(binary: &Path) -> anyhow::Result<()> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    eprintln!(
        "tugboat-e2e: building {} (missing or older than its sources)",
        binary.display()
    );
    let mut command = Command::new(cargo);
    command
        .args(["build", "-p", "tugboat-ctl", "--bin", "tug"])
        .current_dir(workspace_root());
    let output = run_bounded(&mut command, None, BUILD_TIMEOUT).context("running cargo build")?;
    anyhow::ensure!(
        output.status.success(),
        "cargo build -p tugboat-ctl --bin tug failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time among the sources `tug` is built from.
fn newest_source() -> anyhow::Result<Option<SystemTime>> {
    let root = workspace_root();
    let mut newest = modified(&root.join("Cargo.lock"));
    for krate in TUG_CRATES {
        let dir = root.join(krate);
        newest = newest.max(modified(&dir.join("Cargo.toml")));
        newest = newest.max(newest_in(&dir.join("src"))?);
    }
    Ok(newest)
}

fn newest_in(dir: &Path) -> anyhow::Result<Option<SystemTime>> {
    let mut newest = None;
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            newest = newest.max(newest_in(&path)?);
        } else {
            newest = newest.max(modified(&path));
        }
    }
    Ok(newest)
}

/// For benchmarks: builds the release `tug` and runs this benchmark binary again with
/// `TUGBOAT_TUG` naming it (the harness reads the variable; setting it in this process would
/// need `unsafe`), then exits with its status. Returns at once when the variable is set.
pub fn rerun_with_release_tug() -> anyhow::Result<()> {
    if std::env::var_os("TUGBOAT_TUG").is_some() {
        return Ok(());
    }
    let status = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "-p", "tugboat-ctl", "--bin", "tug"])
        .current_dir(workspace_root())
        .status()
        .context("running cargo build --release")?;
    anyhow::ensure!(status.success(), "cargo build --release failed");
    let binary = target_dir().join("release").join("tug");
    let status = Command::new(std::env::current_exe().context("finding this benchmark")?)
        .args(std::env::args_os().skip(1))
        .env("TUGBOAT_TUG", binary)
        .status()
        .context("running the benchmark again")?;
    std::process::exit(status.code().unwrap_or(1));
}
