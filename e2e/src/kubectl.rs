//! The real `kubectl`, pointed at one cluster, every call bounded.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use anyhow::Context as _;

use crate::process::run_bounded;

/// How long one kubectl command may take.
pub const KUBECTL_TIMEOUT: Duration = Duration::from_secs(60);

/// The `kubectl` on this machine: the first on `PATH`.
pub fn kubectl_binary() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("kubectl"))
        .find(|candidate| candidate.is_file())
}

/// The `kubectl` binary, or `None` after printing why the calling test skips.
///
/// # Panics
///
/// When kubectl is missing and the environment variable `CI` is set: CI must never skip.
pub fn kubectl_or_skip() -> Option<PathBuf> {
    let found = kubectl_binary();
    if found.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("kubectl is not installed but CI is set: install kubectl 1.32");
        }
        eprintln!("skipping: kubectl is not installed (the e2e tests drive the real kubectl)");
    }
    found
}

/// kubectl with `--kubeconfig` and a private `--cache-dir`, optionally in one namespace.
#[derive(Debug, Clone)]
pub struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
    cache_dir: PathBuf,
    namespace: Option<String>,
    envs: Vec<(String, String)>,
}

impl Kubectl {
    /// kubectl for the cluster behind `kubeconfig`, caching discovery in `cache_dir`.
    pub fn new(kubeconfig: PathBuf, cache_dir: PathBuf) -> anyhow::Result<Kubectl> {
        let binary = kubectl_binary().context("kubectl is not installed")?;
        Ok(Kubectl {
            binary,
            kubeconfig,
            cache_dir,
            namespace: None,
            envs: Vec::new(),
        })
    }

    /// The same, with `-n namespace` on every command.
    pub fn namespace(&self, namespace: &str) -> Kubectl {
        Kubectl {
            namespace: Some(namespace.to_owned()),
            ..self.clone()
        }
    }

    /// The same, with an extra environment variable (`EDITOR` for `kubectl edit`).
    pub fn env(&self, key: &str, value: impl AsRef<OsStr>) -> Kubectl {
        let mut kubectl = self.clone();
        kubectl.envs.push((
            key.to_owned(),
            value.as_ref().to_string_lossy().into_owned(),
        ));
        kubectl
    }

    /// The kubeconfig in use.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// The command line for `args`, ready to run.
    pub fn command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .arg("--cache-dir")
            .arg(&self.cache_dir);
        if let Some(namespace) = &self.namespace {
            command.arg("--namespace").arg(namespace);
        }
        command.args(args);
        // Nothing from the developer's environment may point kubectl elsewhere.
        command.env_remove("KUBECONFIG");
        for (key, value) in &self.envs {
            command.env(key, value);
        }
        command
    }

    /// Run `kubectl args` (bounded by [`KUBECTL_TIMEOUT`]) and return its output, whatever
    /// its exit status.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<Output> {
        run_bounded(&mut self.command(args), None, KUBECTL_TIMEOUT)
    }

    /// Run `kubectl args` with `input` on stdin.
    pub fn run_with_input<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        input: &str,
    ) -> anyhow::Result<Output> {
        run_bounded(
            &mut self.command(args),
            Some(input.as_bytes()),
            KUBECTL_TIMEOUT,
        )
    }

    /// Run `kubectl args`, require success, and return stdout.
    pub fn ok<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<String> {
        let output = self.run(args)?;
        success(args, &output)
    }

    /// Run `kubectl args` with `input` on stdin, require success, and return stdout.
    pub fn ok_with_input<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        input: &str,
    ) -> anyhow::Result<String> {
        let output = self.run_with_input(args, input)?;
        success(args, &output)
    }

    /// `kubectl apply -f -` with `manifest`; stdout.
    pub fn apply(&self, manifest: &str) -> anyhow::Result<String> {
        self.ok_with_input(&["apply", "-f", "-"], manifest)
    }

    /// Run `kubectl args`, require failure, and return stderr.
    pub fn fails<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<String> {
        let output = self.run(args)?;
        failure(args, &output)
    }

    /// Run `kubectl args` with `input` on stdin, require failure, and return stderr.
    pub fn fails_with_input<S: AsRef<OsStr>>(
        &self,
        args: &[S],
        input: &str,
    ) -> anyhow::Result<String> {
        let output = self.run_with_input(args, input)?;
        failure(args, &output)
    }

    /// `kubectl args` as a running child with stdout piped (for `get -w`); the caller stops it
    /// by PID.
    pub fn spawn<S: AsRef<OsStr>>(&self, args: &[S]) -> anyhow::Result<Child> {
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting kubectl")
    }

    /// `kubectl get WHAT -o jsonpath=PATH`, trimmed; empty when kubectl fails (for polling).
    pub fn get_jsonpath(&self, what: &[&str], path: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let path = format!("jsonpath={path}");
        args.extend_from_slice(&["-o", &path]);
        self.ok(&args).unwrap_or_default().trim().to_owned()
    }

    /// `kubectl get <what> -o json` parsed.
    pub fn get_json<S: AsRef<OsStr>>(&self, what: &[S]) -> anyhow::Result<serde_json::Value> {
        let mut args: Vec<&OsStr> = vec![OsStr::new("get")];
        args.extend(what.iter().map(AsRef::as_ref));
        args.extend([OsStr::new("-o"), OsStr::new("json")]);
        let stdout = self.ok(&args)?;
        serde_json::from_str(&stdout).context("kubectl -o json printed something else")
    }
}

fn show<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

fn success<S: AsRef<OsStr>>(args: &[S], output: &Output) -> anyhow::Result<String> {
    anyhow::ensure!(
        output.status.success(),
        "kubectl {} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        show(args),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn failure<S: AsRef<OsStr>>(args: &[S], output: &Output) -> anyhow::Result<String> {
    anyhow::ensure!(
        !output.status.success(),
        "kubectl {} succeeded but should have failed:\nstdout:\n{}\nstderr:\n{}",
        show(args),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8_lossy(&output.stderr).into_owned())
}
