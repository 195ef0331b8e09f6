//! `tug exec`, `tug port-forward` and `tug image import|ls` on real containers: what a user
//! types and sees, through the API server and the node agent to containerd.
//!
//! Needs root and containerd (CI installs both); elsewhere it says what is missing and skips.

// Helpers outside `#[test]` fns panic on failure too: this is a test crate.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead as _, BufReader};
use std::process::Output;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tugboat_e2e::containers::{containers_or_skip, http_get, stop_and_reset, wait_for};
use tugboat_e2e::process::kill_and_reap;
use tugboat_e2e::{Cluster, TugCli};

const PODS: &str = r#"
apiVersion: v1
kind: Pod
metadata: {name: web, labels: {app: web}}
spec:
  containers:
  - name: web
    image: busybox
    command: ["sh", "-c", "mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: [{name: http, containerPort: 8080}]
  - name: side
    image: busybox
    command: ["sleep", "3600"]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// `tug port-forward args...` until the first GET through `127.0.0.1:port` answers; checks
/// what it printed and that a second connection works too.
fn forwards(tug: &TugCli, args: &[&str], port: u16, remote: u16) {
    let mut forward = tug.spawn(args).unwrap();
    let out = forward.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(Duration::from_secs(30));
    let addr = format!("127.0.0.1:{port}");
    let mut answer = None;
    let deadline = Instant::now() + Duration::from_secs(30);
    while answer.is_none() && Instant::now() < deadline {
        answer = http_get(&addr, "/").filter(|(code, _)| *code == 200);
        if answer.is_none() {
            std::thread::sleep(Duration::from_millis(300));
        }
    }
    let again = answer.is_some().then(|| http_get(&addr, "/")).flatten();
    kill_and_reap(&mut forward);
    let printed: Vec<String> = rx.try_iter().collect();
    assert_eq!(
        first.unwrap(),
        format!("Forwarding from 127.0.0.1:{port} -> {remote}")
    );
    let (_, answer) = answer.expect("the pod answered through tug port-forward");
    assert!(answer.contains("hello-from-pod"), "{answer}");
    assert!(
        again.is_some_and(|(code, a)| code == 200 && a.contains("hello-from-pod")),
        "a second connection"
    );
    assert!(
        printed.contains(&format!("Handling connection for {port}")),
        "{printed:?}"
    );
}

#[test]
fn tug_exec_port_forward_and_image_import_on_real_containers() {
    if !containers_or_skip() {
        return;
    }
    let mut cluster = Cluster::start_containerd().expect("tug up on containerd");
    let tug = cluster.tug().unwrap();
    tug.apply(PODS).unwrap();
    wait_for("the pod to run", Duration::from_secs(90), || {
        tug.ok(&["get", "pod", "web", "-o", "jsonpath={.status.phase}"])
            .is_ok_and(|phase| phase == "Running")
    });

    // Exec: output, the default container said on stderr, the exit code passed on.
    let hostname = tug
        .run(&["exec", "web", "--", "cat", "/etc/hostname"])
        .unwrap();
    assert!(hostname.status.success(), "{hostname:?}");
    assert_eq!(stdout(&hostname), "web\n");
    assert_eq!(
        stderr(&hostname),
        "Defaulted container \"web\" out of: web, side\n"
    );
    let failed = tug
        .run(&[
            "exec",
            "web",
            "-c",
            "side",
            "--",
            "sh",
            "-c",
            "echo out; echo err >&2; exit 3",
        ])
        .unwrap();
    assert_eq!(failed.status.code(), Some(3), "{failed:?}");
    assert_eq!(stdout(&failed), "out\n");
    assert_eq!(
        stderr(&failed),
        "err\ncommand terminated with exit code 3\n"
    );
    let read = tug
        .run_with_input(
            &[
                "exec",
                "-i",
                "web",
                "-c",
                "side",
                "--",
                "sh",
                "-c",
                "read line; echo got-$line",
            ],
            "piped\n",
        )
        .unwrap();
    assert!(read.status.success(), "{read:?}");
    assert_eq!(stdout(&read), "got-piped\n");
    // The end of the input reaches the command, which then finishes with its output.
    let counted = tug
        .run_with_input(
            &["exec", "-i", "web", "-c", "side", "--", "wc", "-l"],
            "one\ntwo\nthree\n",
        )
        .unwrap();
    assert!(counted.status.success(), "{counted:?}");
    assert_eq!(stdout(&counted).trim(), "3", "{counted:?}");
    let echoed = tug
        .run_with_input(
            &[
                "exec",
                "-i",
                "web",
                "-c",
                "side",
                "--",
                "sh",
                "-c",
                "cat; echo end >&2; exit 4",
            ],
            "all of it\n",
        )
        .unwrap();
    assert_eq!(echoed.status.code(), Some(4), "{echoed:?}");
    // Input and output in flight together, well past any buffer: every byte comes back.
    let lines: String = (0..30_000).map(|n| format!("line {n}\n")).collect();
    let copied = tug
        .run_with_input(&["exec", "-i", "web", "-c", "side", "--", "cat"], &lines)
        .unwrap();
    assert!(copied.status.success(), "{:?}", copied.status);
    assert!(
        stdout(&copied) == lines,
        "{} of {} bytes came back",
        copied.stdout.len(),
        lines.len()
    );
    assert_eq!(stdout(&echoed), "all of it\n");
    assert_eq!(
        stderr(&echoed),
        "end\ncommand terminated with exit code 4\n"
    );
    // `-t` without a terminal: kubectl's warning, then the command runs without one.
    let no_tty = tug
        .run(&[
            "exec", "-i", "-t", "web", "-c", "side", "--", "echo", "plain",
        ])
        .unwrap();
    assert_eq!(stdout(&no_tty), "plain\n");
    assert!(
        stderr(&no_tty).contains("Unable to use a TTY - input is not a terminal"),
        "{no_tty:?}"
    );
    let missing = tug
        .run(&["exec", "web", "-c", "nope", "--", "true"])
        .unwrap();
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stderr(&missing),
        "error: container nope not found in pod web\n"
    );
    let nobody = tug.run(&["exec", "nobody", "--", "true"]).unwrap();
    assert_eq!(nobody.status.code(), Some(1));
    assert_eq!(
        stderr(&nobody),
        "Error from server (NotFound): pods \"nobody\" not found\n"
    );

    // Port-forward to the pod by port number, and to the service by its port (80 -> http).
    let port = tugboat_testkit::net::free_port().unwrap();
    forwards(
        &tug,
        &["port-forward", "pod/web", &format!("{port}:8080")],
        port,
        8080,
    );
    let port = tugboat_testkit::net::free_port().unwrap();
    forwards(
        &tug,
        &["port-forward", "svc/web", &format!("{port}:80")],
        port,
        8080,
    );

    // Image import: an OCI archive under a new name; `image ls` lists it; a pod runs from it
    // without pulling.
    let archive = cluster.dir().join("tools.tar");
    let bytes = tugboat_runtime::image::busybox_archive(
        std::path::Path::new("/bin/busybox"),
        "example.com/tug/tools:1.0",
    )
    .unwrap();
    std::fs::write(&archive, bytes).unwrap();
    let data_dir = cluster.data_dir();
    let data_dir = data_dir.to_str().unwrap();
    let imported = tug
        .ok(&[
            "image",
            "import",
            archive.to_str().unwrap(),
            "--data-dir",
            data_dir,
        ])
        .unwrap();
    assert_eq!(imported, "imported example.com/tug/tools:1.0\n");
    let listed = tug.ok(&["image", "ls", "--data-dir", data_dir]).unwrap();
    let rows: Vec<Vec<&str>> = listed
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["IMAGE", "TAG", "IMAGE", "ID", "SIZE"], "{listed}");
    assert!(
        rows.iter()
            .any(|r| r[..2] == ["example.com/tug/tools", "1.0"]),
        "{listed}"
    );
    assert!(
        rows.iter()
            .any(|r| r[..2] == ["docker.io/library/busybox", "latest"]),
        "{listed}"
    );
    tug.apply(
        r#"
apiVersion: v1
kind: Pod
metadata: {name: tools}
spec:
  containers:
  - name: main
    image: example.com/tug/tools:1.0
    imagePullPolicy: Never
    command: ["sleep", "3600"]
"#,
    )
    .unwrap();
    wait_for(
        "the imported image's pod to run",
        Duration::from_secs(60),
        || {
            tug.ok(&["get", "pod", "tools", "-o", "jsonpath={.status.phase}"])
                .is_ok_and(|phase| phase == "Running")
        },
    );
    let from_tools = tug
        .ok(&["exec", "tools", "--", "echo", "from-tools"])
        .unwrap();
    assert_eq!(from_tools, "from-tools\n");
    let bad = tug
        .run(&[
            "image",
            "import",
            "/nonexistent.tar",
            "--data-dir",
            data_dir,
        ])
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(stderr(&bad).contains("/nonexistent.tar"), "{bad:?}");

    stop_and_reset(&mut cluster).unwrap();
}
