//! The `tug` CLI (`tug apply`, `get`, ...) pointed at one cluster, every call bounded.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::process::run_bounded;
use crate::tug::tug_binary;

/// How long one `tug` CLI command may take.
pub const TUG_CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// `tug --kubeconfig <kubeconfig> [-n namespace] ...`.
#[derive(Debug, Clone)]
pub struct TugCli {
    binary: PathBuf,
    kubeconfig: PathBuf,
    namespace: Option<String>,
    envs: Vec<(String, String)>,
}

impl TugCli {
    /// `tug` for the cluster behind `kubeconfig`.
    pub fn new(kubeconfig: PathBuf) -> anyhow::Result<TugCli> {
        Ok(TugCli {
            binary: tug_binary()?,
            kubeconfig,
            namespace: None,
            envs: Vec::new(),
        })
    }

    /// The same, with `-n namespace` on every command.
    pub fn namespace(&self, namespace: &str) -> TugCli {
        TugCli {
            namespace: Some(namespace.to_owned()),
            ..self.clone()
        }
    }

    /// The same, with an extra environment variable (`EDITOR` for `tug edit`).
    pub fn env(&self, key: &str, value: impl AsRef<OsStr>) -> TugCli {
        let mut tug = self.clone();
        tug.envs.push((
            key.to_owned(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        tug
    }

    /// The kubeconfig in use.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The command, not started: `tug --kubeconfig K [-n NS] ARGS`, `KUBECONFIG` cleared.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .env_remove("KUBECONFIG")
            .env_remove("TUG_LOG");
        if let Some(namespace) = &self.namespace {
            command.args(["-n", namespace]);
        }
        command.args(args);
        command.envs(self.envs.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Run to completion (bounded) and return its output, whatever the exit status.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<Output> {
        run_bounded(&mut self.command(args), None, TUG_CLI_TIMEOUT)
    }

    /// Like [`TugCli::run`], with `input` on stdin.
    pub fn run_with_input<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        input: &str,
    ) -> anyhow::Result<Output> {
        run_bounded(
            &mut self.command(args),
            Some(input.as_bytes()),
            TUG_CLI_TIMEOUT,
        )
    }

    /// Run, require exit 0, and return stdout.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<String> {
        success(&self.run(args)?, args)
    }

    /// `tug apply -f -` with `manifest` on stdin; stdout.
    pub fn apply(&self, manifest: &str) -> anyhow::Result<String> {
        let args = ["apply", "-f", "-"];
        success(&self.run_with_input(&args, manifest)?, &args)
    }

    /// Spawn with piped stdout and stderr (for `get -w`); the caller stops it by PID.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<Child> {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting tug")
    }
}

fn success<S: AsRef<OsStr>>(output: &Output, args: &[S]) -> anyhow::Result<String> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    anyhow::ensure!(
        output.status.success(),
        "tug {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        shown.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).context("tug printed invalid UTF-8")
}
