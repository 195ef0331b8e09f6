//! The official Python client (`pip install kubernetes`; `make test` installs a pinned one).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// Whether `python3 -c 'import kubernetes'` works; says why it skips when not. Under `CI` the
/// client must be there (`make test` installs it), so its absence fails instead.
pub fn python_client_or_skip() -> bool {
    let has_client = Command::new("python3")
        .args(["-c", "import kubernetes"])
        .output()
        .is_ok_and(|out| out.status.success());
    if !has_client {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the Python client checks (make test installs the client)"
        );
        eprintln!("skipping: `python3 -c 'import kubernetes'` fails (pip install kubernetes)");
    }
    has_client
}

/// Runs `script` with `python3 -c`, the kubeconfig as its first argument, within `timeout`,
/// and returns its standard output; panics with both outputs when it fails.
pub fn run_python(script: &str, kubeconfig: &Path, timeout: Duration) -> String {
    let out: Output = crate::process::run_bounded(
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(kubeconfig),
        None,
        timeout,
    )
    .expect("python3 runs within its time");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
